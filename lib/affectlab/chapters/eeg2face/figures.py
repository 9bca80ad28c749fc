"""Chapter 03's figures (EEG2Face): reconstructions from EEG (Figs. 4-1 / 4-3), emotion control
(Fig. 4-2), where the errors are on the face, the coupling sweep, and one planted trial.

Meshes are rendered with the book's headless renderer (:func:`affectlab.render.render_face`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from affectlab.chapters.eeg2face.config import ENCODER_LABELS, FPS, METRIC_NAMES, SFREQ
from affectlab.chapters.eeg2face.data import ChapterData, data_label, render_trial_frames
from affectlab.chapters.eeg2face.evaluation import (
    DRIVE_CEILING,
    EEG_RIDGE,
    MEAN_FACE,
    PER_EMOTION_MEAN_FACE,
    PREDICTED_EMOTION_MEAN_FACE,
    mean_face_latents,
    vertex_error_map,
)
from affectlab.chapters.eeg2face.experiments import PipelineResult
from affectlab.chapters.eeg2face.latent import VisionLatent
from affectlab.facemodel import FaceModel
from affectlab.models.eeg2face import EMOTIONS


RENDER_SETTINGS: dict[str, Any] = {"light": (0.2, 0.4, 1.0), "ambient": 0.35, "background": 0.5}


def render_latents(latent: VisionLatent, z_v: torch.Tensor, size: int = 96) -> torch.Tensor:
    """Meshes ``F(z_v)`` rendered as greyscale crops (B, 1, size, size), all framed by the neutral
    template (so a jaw opening shows as motion, not as a zoom) with the project renderer."""
    from affectlab.render import render_face

    face_model = latent.face_model
    with torch.no_grad():
        vertices = latent.vertices(z_v.float())
        frame = face_model.frame_points(face_model.template[None])
        return render_face(face_model, vertices, size=size, frame_points=frame, **RENDER_SETTINGS)


def _image_rows(rows: Sequence[tuple[str, torch.Tensor]], column_titles: Sequence[str], title: str) -> Figure:
    n_cols = max(len(images) for _, images in rows)
    fig = Figure(figsize=(1.45 * n_cols + 1.2, 1.55 * len(rows) + 0.6), layout="constrained")
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                ax.imshow(images[c, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=255)
            else:
                ax.set_visible(False)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if r == 0 and c < len(column_titles):
                ax.set_title(column_titles[c], fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig


def reconstruction_samples(data: ChapterData) -> torch.Tensor:
    """One test sample per emotion (Figs. 4-1 / 4-3 span the emotions and the subjects): for emotion
    k, the middle frame of the first test trial of subject ``k mod n_subjects`` (or of any subject)
    with that emotion."""
    test_idx = torch.nonzero(data.test).flatten()
    subjects = torch.unique(data.subject[test_idx])
    picks = []
    for k in range(len(EMOTIONS)):
        wanted = subjects[k % len(subjects)]
        rows = test_idx[(data.emotion[test_idx] == k) & (data.subject[test_idx] == wanted)]
        if len(rows) == 0:
            rows = test_idx[data.emotion[test_idx] == k]
        if len(rows) == 0:
            continue
        trial_rows = rows[data.trial[rows] == data.trial[rows[0]]]
        picks.append(int(trial_rows[len(trial_rows) // 2]))
    return torch.as_tensor(picks, dtype=torch.long)


def reconstruction_figure(data: ChapterData, result: PipelineResult, trial: int | None = None, n_frames: int = 8,
                          size: int = 96) -> Figure:
    """Figs. 4-1 / 4-3: rows = the generated video frame, the exact ``z_v`` mesh (what EMOCA's
    pseudo-ground-truth stands for), EEG2Face emotion-enhanced and content-only reconstructions from
    the EEG alone. Columns: one test frame per emotion, across subjects (:func:`reconstruction_samples`),
    or, with ``trial``, ``n_frames`` frames of that test trial."""
    test_idx = torch.nonzero(data.test).flatten()
    if trial is None:
        samples = reconstruction_samples(data)
        titles = [f"{EMOTIONS[int(data.emotion[i])]}\nsubj. {int(data.subject[i])}, "
                  f"t = {float(data.frame[i]) / FPS:.1f} s" for i in samples]
        subtitle = "one test frame per emotion"
    else:
        trials = torch.unique(data.trial[test_idx])
        if trial not in trials.tolist():
            raise ValueError(f"trial {trial} is not a test trial; test trials: {trials.tolist()}")
        in_trial = torch.nonzero(data.trial[test_idx] == trial).flatten()
        samples = test_idx[in_trial[torch.linspace(0, len(in_trial) - 1, min(n_frames, len(in_trial))).round().long()]]
        titles = [f"t = {float(f) / FPS:.1f} s" for f in data.frame[samples]]
        subtitle = f"test trial {trial} ({EMOTIONS[int(data.emotion[samples[0]])]})"
    position = {int(i): p for p, i in enumerate(test_idx.tolist())}
    pick = torch.as_tensor([position[int(i)] for i in samples], dtype=torch.long)
    frames = torch.cat([render_trial_frames(data, int(data.trial[i]), data.frame[i:i + 1], size) for i in samples])
    rows = [("video frame\n(generated)", frames),
            ("exact z_v mesh", render_latents(data.latent, data.z_v[samples], size)),
            ("EEG2Face\nemotion-enhanced", render_latents(data.latent, result.latents["emotion_enhanced"][pick], size)),
            ("EEG2Face\ncontent-only", render_latents(data.latent, result.latents["content_only"][pick], size))]
    return _image_rows(rows, titles, f"{ENCODER_LABELS[result.encoder_name]}: {subtitle}; {data_label(data)}")


def emotion_control_figure(data: ChapterData, result: PipelineResult, sample: int | None = None, steps: int = 5,
                           size: int = 96) -> Figure:
    """Fig. 4-2: one test EEG window decoded with chosen emotion codes. Rows 1-3: neutral ->
    happiness / sadness / anger, ``(1 - t) z_N + t z_E`` for t = 0 ... 1 (the column titles);
    rows 4-6: transitions through neutral (first emotion -> N -> second, the row label says which);
    row 7: blending (Sec. 3.0.9) ``f(z_r + g(Softmax(z_bar + one-hot k)))`` for the five emotions."""
    test_idx = torch.nonzero(data.test).flatten()
    sample = int(test_idx[len(test_idx) // 2]) if sample is None else int(sample)
    if sample not in set(test_idx.tolist()):
        raise ValueError(f"sample {sample} is not a test window (test windows are rows where data.test is True, "
                         f"{len(test_idx)} of {len(data)})")
    x = data.eeg[sample:sample + 1]
    model = result.model.cpu().eval()
    ts = torch.linspace(0, 1, steps).tolist()
    half = torch.linspace(0, 1, steps // 2 + 1).tolist()
    rows = []
    with torch.no_grad():
        for target in ("Happiness", "Sadness", "Anger"):
            z = model.interpolate(x, "Neutral", target, ts)[:, 0]
            rows.append((f"N -> {target[0]}\n(t = 0 ... 1)", render_latents(data.latent, z, size)))
        for a, b in (("Happiness", "Sadness"), ("Anger", "Sadness"), ("Happiness", "Anger")):
            first = model.interpolate(x, a, "Neutral", half)[:, 0]
            second = model.interpolate(x, "Neutral", b, half[1:])[:, 0]
            rows.append((f"{a[0]} -> N -> {b[0]}\n({a[0]}, .., N, .., {b[0]})",
                         render_latents(data.latent, torch.cat([first, second]), size)))
        blended = torch.cat([model.blend(x, k) for k in range(len(EMOTIONS))])
        rows.append(("blend z_bar + one-hot\n(N, S, A, H, C)", render_latents(data.latent, blended, size)))
    titles = [f"t = {t:.2f}" for t in ts]
    return _image_rows(rows, titles, f"{ENCODER_LABELS[result.encoder_name]}: emotion control f(z_r + g(z_c)) on test "
                                     f"window {sample} ({EMOTIONS[int(data.emotion[sample])]}); {data_label(data)}")



def error_map_figure(maps: Mapping[str, torch.Tensor], face_model: FaceModel, title: str) -> Figure:
    """Frontal views of the template coloured by mean per-vertex error (mm), one panel per map."""
    xyz = face_model.template.cpu().numpy()
    order = np.argsort(xyz[:, 2])  # draw back to front
    vmax = float(max(m.max() for m in maps.values()))
    fig = Figure(figsize=(3.6 * len(maps) + 0.8, 4.0), layout="constrained")
    axes = fig.subplots(1, len(maps), squeeze=False)[0]
    for ax, (name, values) in zip(axes, maps.items()):
        points = ax.scatter(xyz[order, 0], xyz[order, 1], c=values.numpy()[order], s=1.5, cmap="magma",
                            vmin=0.0, vmax=vmax)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{name}\nmean {float(values.mean()):.2f} mm", fontsize=9)
    fig.colorbar(points, ax=list(axes), label="mean vertex error (mm)", shrink=0.8)
    fig.suptitle(title, fontsize=11)
    return fig


def error_maps_figure(data: ChapterData, result: PipelineResult) -> Figure:
    """Where the errors are: the mean per-vertex error over the test frames of ``result``'s
    emotion-enhanced reconstructions beside the mean face's (:func:`vertex_error_map`)."""
    maps = {
        f"{ENCODER_LABELS[result.encoder_name]}, emotion-enhanced":
            vertex_error_map(result.latents["emotion_enhanced"], data),
        MEAN_FACE: vertex_error_map(mean_face_latents(data), data),
    }
    return error_map_figure(maps, data.latent.face_model, f"Mean vertex error on test frames: {data_label(data)}")


def coupling_sweep_figure(sweep: pd.DataFrame, title: str) -> Figure:
    """LVE / MCE / EVE (mm, 95 % CI) against the planted EMG coupling, for both inference modes and
    the mean-face baselines (dashed)."""
    fig = Figure(figsize=(12.5, 3.8), layout="constrained")
    axes = fig.subplots(1, len(METRIC_NAMES))
    series = [(("emotion_enhanced", None), "EEG2Face emotion-enhanced", "-o"),
              (("content_only", None), "EEG2Face content-only", "-s"),
              (("baseline", MEAN_FACE), "mean face", "--"),
              (("baseline", PER_EMOTION_MEAN_FACE), "per-emotion mean face (oracle)", ":"),
              (("baseline", PREDICTED_EMOTION_MEAN_FACE), "per-emotion mean face (E_e's prediction)", ":x"),
              (("baseline", DRIVE_CEILING), "ceiling: ridge on planted EMG drive + true emotion", "-.^"),
              (("baseline", EEG_RIDGE), "control: ridge on the EEG's 20-45 Hz envelope + true emotion", "-.v")]
    for ax, metric in zip(axes, METRIC_NAMES):
        for (mode, method), label, style in series:
            sel = sweep[sweep["mode"] == mode]
            if method is not None:
                sel = sel[sel["method"] == method]
            sel = sel.sort_values("coupling")
            if sel.empty:
                continue
            x = sel["coupling"].to_numpy()
            y = sel[metric].to_numpy()
            err = np.vstack([y - sel[f"{metric}_low"].to_numpy(), sel[f"{metric}_high"].to_numpy() - y])
            ax.errorbar(x, y, yerr=err, fmt=style, capsize=3, markersize=4, label=label)
        ax.set_xlabel("EMG-to-face coupling (0 = none)")
        ax.set_ylabel(f"{metric} (mm)")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig



def trial_figure(data: ChapterData, trial: int | None = None, channels: Sequence[str] = ("T7", "FC5", "FPz"),
                 seconds: float = 8.0) -> Figure:
    """What is planted in one trial: the face parameters, the EMG drive they produce (face-locked
    part mixed with an unrelated surrogate at the chosen coupling) and the resulting EEG (uV)."""
    paired = data.paired
    trial = int(data.trial[data.test][0]) if trial is None else int(trial)
    n = min(int(seconds * SFREQ), paired.eeg.shape[-1])
    t_eeg = np.arange(n) / SFREQ
    frames = np.arange(paired.blendshapes.shape[1])
    keep = frames / FPS < n / SFREQ
    t_frames = frames[keep] / FPS
    names = list(paired.blendshape_names)
    smile = paired.blendshapes[trial][keep][:, [names.index("mouthSmile_L"), names.index("mouthSmile_R")]].mean(1)
    brow = paired.blendshapes[trial][keep][:, [i for i, s in enumerate(names) if s.startswith("brow")]].mean(1)
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    axes[0].plot(t_frames, paired.jaw[trial][keep][:, 0], label="jaw open")
    axes[0].plot(t_frames, smile, label="mouthSmile (mean L/R)")
    axes[0].plot(t_frames, brow, label="brow blendshapes (mean)")
    axes[0].set_ylabel("coefficient (0-1)")
    axes[0].set_title("face trajectory at 10 fps (the frames and z_v come from it)")
    axes[1].plot(t_eeg, paired.face_actions[trial, :n, 0], label="face-locked mouth action", alpha=0.8)
    axes[1].plot(t_eeg, paired.emg_drive[trial, :n, 0], label="EMG drive, temporal channels", alpha=0.8)
    axes[1].plot(t_eeg, paired.emg_drive[trial, :n, 1], label="EMG drive, frontal channels", alpha=0.8)
    axes[1].set_ylabel("drive (unit mean)")
    axes[1].set_title("EMG drive = (coupling x face + unrelated surrogate) / (coupling + 1), "
                      f"coupling {data.coupling:g}")
    offset = 0.0
    for name in channels:
        if name not in data.ch_names:
            continue
        signal = paired.eeg[trial, data.ch_names.index(name), :n]
        axes[2].plot(t_eeg, signal + offset, linewidth=0.6, label=name)
        offset -= 6 * float(np.std(signal)) + 1e-6
    axes[2].set_ylabel("EEG (uV, offset)")
    axes[2].set_xlabel("time in trial (s)")
    axes[2].set_title("EEG = background + emotion rhythms + EMG")
    for ax in axes:
        ax.legend(fontsize=8, loc="upper right")
        ax.grid(alpha=0.3)
    fig.suptitle(f"Trial {trial} ({EMOTIONS[int(paired.emotion[trial])]}, subject {int(paired.subject[trial])}): "
                 f"{data_label(data)}", fontsize=11)
    return fig

