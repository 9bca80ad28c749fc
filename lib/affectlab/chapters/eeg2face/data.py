"""Chapter 03's data (EEG2Face, Sec. 3.0.1): an EAV-like semi-synthetic paired set.

:func:`background_eeg` reads the real EEGLAB recording (30 EEG channels resampled to 100 Hz) or the
embedded default's generated stand-in; :func:`build_chapter_data` builds the trials on it (generated
EMG, emotion rhythms and ONE blendshape trajectory per trial driving both the EEG and the face),
splits them 6:2 per subject and emotion (:func:`split_trials`) and cuts the frame-aligned EEG windows
with their exact ``z_v`` (:class:`ChapterData`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from affectlab.chapters.eeg2face.config import FPS, SAMPLES_PER_FRAME, SFREQ, ChapterConfig
from affectlab.chapters.eeg2face.latent import VisionLatent
from affectlab.config import ConfigError, RunConfig, code_fingerprint, config_hash
from affectlab.facemodel import FaceModel
from affectlab.models.eeg2face import EMOTIONS, JAW_DIM
from affectlab.train import TensorData


@dataclasses.dataclass
class ChapterData:
    """Frame-aligned samples of the paired set, split subject-dependently 6:2.

    Sample ``i`` is face frame ``frame[i]`` of trial ``trial[i]`` with the EEG window of
    ``window_samples`` centred on the frame's time (EEG sample ``10 * frame``; Sec. 3.0.1: one frame
    per 10 EEG samples).

    Attributes:
        eeg: (N, channels, window) float32, standardised per channel with training statistics.
        z_v: (N, 53) exact vision latent; psi (N, 53) and jaw (N, 3) the frame's true parameters.
        emotion, subject, trial, frame, segment: (N,) int64 (segment = global id of the 5 s
            segment of the trial the frame falls in).
        background_segment: (N,) int64, the ``segment_seconds`` piece of the background RECORDING
            that the frame's EEG sample was cut from (trials reuse the recording, so frames of
            different trials share these; intervals cluster on them as well as on trials).
        train: (N,) bool, True for the 6 of every 8 trials per subject and emotion used to train.
        heldout: (N,) bool or None: the samples scored as "test"; None means every non-training
            sample (the test trials). :meth:`validation_view` sets it to held-out training trials.
        latent: the fitted :class:`VisionLatent` (on the training frames).
        paired: the generator's output for all trials (EEG in uV, trajectories, EMG drive; frames
            are not rendered, see :func:`render_trial_frames`).
        source: what is real and what is generated.
        z_v_reposed: (N, 5, 53) ``z_v`` of every frame re-posed into each emotion on the upper face
            (:func:`affectlab.data.generate.paired.repose_upper_face`; Sec. 3.0.6's retargeted faces).
    """

    eeg: torch.Tensor
    z_v: torch.Tensor
    psi: torch.Tensor
    jaw: torch.Tensor
    emotion: torch.Tensor
    subject: torch.Tensor
    trial: torch.Tensor
    frame: torch.Tensor
    segment: torch.Tensor
    background_segment: torch.Tensor
    train: torch.Tensor
    latent: VisionLatent
    ch_names: tuple[str, ...]
    coupling: float
    source: str
    paired: Any
    channel_mean: torch.Tensor
    channel_std: torch.Tensor
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    z_v_reposed: torch.Tensor | None = None
    heldout: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.eeg)

    @property
    def emg_channels(self) -> dict[str, list[str]]:
        """The EEG channels the planted EMG reaches: ``mouth`` (temporal) and ``brow`` (frontal)."""
        groups = self.paired.meta.get("eeg_meta", {}).get("emg_channels") or [[], []]
        return {"mouth": list(groups[0]), "brow": list(groups[1]) if len(groups) > 1 else []}

    @property
    def test(self) -> torch.Tensor:
        """The samples scored as test: the test trials, or the held-out validation trials of a
        :meth:`validation_view`."""
        return ~self.train if self.heldout is None else self.heldout

    def validation_view(self, trials_per_emotion: int = 1, seed: int = 0) -> "ChapterData":
        """The same data with ``trials_per_emotion`` of each subject's and emotion's TRAINING trials
        held out as validation: ``train`` loses them and ``test`` is them (the test trials are not
        used at all). For choices made on data, never on the test split. The data hash changes, so
        fits on the view are stored apart from the full data's."""
        rng = np.random.default_rng(seed)
        trial_ids = torch.unique(self.trial[self.train])
        held = []
        for s in torch.unique(self.subject).tolist():
            for e in range(len(EMOTIONS)):
                ids = torch.unique(self.trial[self.train & (self.subject == s) & (self.emotion == e)]).numpy()
                if len(ids) <= trials_per_emotion:
                    raise ConfigError(f"validation_view: subject {s}, {EMOTIONS[e]} has {len(ids)} training trials; "
                                      f"cannot hold out {trials_per_emotion}")
                held.extend(rng.choice(ids, trials_per_emotion, replace=False).tolist())
        val = torch.isin(self.trial, torch.as_tensor(held)) & self.train
        info = {**self.info, "hash": config_hash({"data": self.info.get("hash"), "validation": sorted(held)}),
                "validation_trials": len(held), "train_trials": int(len(trial_ids)) - len(held)}
        return dataclasses.replace(self, train=self.train & ~val, heldout=val, info=info)

    def counts(self) -> pd.DataFrame:
        """Trials and samples per split and emotion."""
        rows = []
        for split, mask in (("train", self.train), ("test", self.test)):
            for k, name in enumerate(EMOTIONS):
                sel = mask & (self.emotion == k)
                rows.append({"split": split, "emotion": name, "trials": int(torch.unique(self.trial[sel]).numel()),
                             "samples (frames)": int(sel.sum())})
        return pd.DataFrame(rows).pivot(index="emotion", columns="split").reindex(list(EMOTIONS))

    def tensor_data(self, split: str, target: str, batch_size: int, shuffle: bool | None = None) -> TensorData:
        """A :class:`TensorData` of ``split`` ("train"/"test") with ``y`` = "z_v" or "emotion"."""
        if split not in ("train", "test") or target not in ("z_v", "emotion"):
            raise ValueError(f"split must be 'train'/'test' and target 'z_v'/'emotion'; got {split!r}, {target!r}")
        mask = self.train if split == "train" else self.test
        y = self.z_v[mask] if target == "z_v" else self.emotion[mask]
        return TensorData(self.eeg[mask], y, batch_size=batch_size,
                          shuffle=split == "train" if shuffle is None else shuffle,
                          name=f"eeg2face-{split}-c{self.coupling:g}")


@dataclasses.dataclass
class BackgroundEEG:
    """A continuous recording (channels, samples) in uV at 100 Hz that every trial's EEG is built on."""

    data: np.ndarray
    ch_names: tuple[str, ...]
    source: str
    real: bool
    fingerprint: str

    @property
    def seconds(self) -> float:
        return self.data.shape[1] / SFREQ


def background_eeg(run: RunConfig, settle_seconds: float = 2.0) -> BackgroundEEG:
    """The 30 EEG channels of the EEGLAB sample recording (EOG1/EOG2 dropped) from the data root,
    or of the embedded default's generated stand-in when there is none, resampled 128 -> 100 Hz
    and band-passed 0.5-45 Hz with EAV's preprocessing (:func:`affectlab.data.eeg.preprocess_eav`);
    the first ``settle_seconds`` (the causal filter's transient) are dropped."""
    from affectlab import data as datasets
    from affectlab.data.eeg import preprocess_eav

    eeg = datasets.load("eeglab_sample", root=run.data_root)
    types = eeg.meta.get("ch_types") or ("eeg",) * len(eeg.ch_names)
    keep = [i for i, (name, kind) in enumerate(zip(eeg.ch_names, types))
            if kind == "eeg" and not name.upper().startswith("EOG")]
    if len(keep) != 30:
        raise ValueError(f"{eeg.source}: expected 30 EEG channels besides EOG; found {len(keep)} "
                         f"({[eeg.ch_names[i] for i in keep]})")
    x = eeg.data[0][keep].astype(np.float64)
    x = x - np.median(x, axis=1, keepdims=True)
    x = preprocess_eav(x, sfreq_in=float(eeg.sfreq), sfreq_out=SFREQ)[:, int(settle_seconds * SFREQ):]
    x = np.ascontiguousarray(x, dtype=np.float32)
    real = run.data_root is not None
    source = (f"EEG background ({'real recording' if real else 'embedded default, generated'}): {eeg.source} "
              f"({len(keep)} EEG channels, {eeg.sfreq:g} -> {SFREQ:g} Hz, 0.5-45 Hz, {x.shape[1] / SFREQ:.0f} s)")
    return BackgroundEEG(x, tuple(eeg.ch_names[i] for i in keep), source, real,
                         hashlib.sha256(x.tobytes()).hexdigest()[:16])


def split_trials(n_subjects: int, trials_per_emotion: int, seed: int) -> np.ndarray:
    """Subject-dependent 6:2 split (Sec. 3.0.1): for every subject and emotion a random quarter of
    the trials is test. Returns a bool (trials,) test mask in :func:`generate_paired`'s row order
    (subject, emotion, trial)."""
    rng = np.random.default_rng(seed)
    test = np.zeros((n_subjects, len(EMOTIONS), trials_per_emotion), dtype=bool)
    for s in range(n_subjects):
        for e in range(len(EMOTIONS)):
            test[s, e, rng.permutation(trials_per_emotion)[: trials_per_emotion // 4]] = True
    return test.reshape(-1)


TEST_BACKGROUND_SHARE = 0.5
"""Share of the background recording that the test trials' EEG is cut from (the rest trains)."""


def background_pieces(background: BackgroundEEG, is_test: np.ndarray, n_samples: int, seed: int,
                      test_fraction: float = TEST_BACKGROUND_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """One background piece (channels, n_samples) per trial, cut from the WHOLE recording: test
    trials from its last ``test_fraction``, training trials from the rest, so no test trial shares
    real EEG with a training trial. Within each part the pieces are laid end to end (from a random
    offset, in random trial order, wrapping around at the part's end), so every second of the part
    is reused as evenly as its length allows (a 20 s trial on 120 s of test recording: each second
    serves about n_test x 20 / 120 test trials).

    Returns the pieces (trials, channels, n_samples) and, per trial and EEG sample, the recording
    sample it came from (trials, n_samples) (for clustering intervals on shared recording segments).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"background_pieces: test_fraction must be in (0, 1); got {test_fraction!r}")
    length = background.data.shape[1]
    cut = int(round(length * (1.0 - test_fraction)))
    parts = {False: (0, cut), True: (cut, length)}
    rng = np.random.default_rng(seed)
    out = np.empty((len(is_test), background.data.shape[0], n_samples), dtype=np.float32)
    source = np.empty((len(is_test), n_samples), dtype=np.int64)
    for test, (lo, hi) in parts.items():
        rows = np.flatnonzero(np.asarray(is_test, dtype=bool) == test)
        span = hi - lo
        offset = int(rng.integers(span))
        for k, i in enumerate(rng.permutation(rows)):
            idx = lo + (offset + k * n_samples + np.arange(n_samples)) % span
            out[i] = background.data[:, idx]
            source[i] = idx
    return out, source


def _frame_windows(eeg: np.ndarray, frames: np.ndarray, window: int) -> np.ndarray:
    """EEG windows (trials, len(frames), channels, window) centred on each frame's EEG sample."""
    starts = frames * SAMPLES_PER_FRAME - window // 2
    idx = starts[:, None] + np.arange(window)[None]  # (F, window)
    return np.ascontiguousarray(eeg[:, :, idx].transpose(0, 2, 1, 3))


def build_chapter_data(cfg: ChapterConfig, run: RunConfig, background: BackgroundEEG, coupling: float | None = None,
                       face_model: FaceModel | None = None) -> ChapterData:
    """The EAV-like semi-synthetic paired set of the chapter, as frame-aligned samples.

    ``n_subjects`` x 5 emotions x ``trials_per_emotion`` speaking trials of ``trial_seconds`` from
    :func:`affectlab.data.generate.paired.generate_paired` (one blendshape trajectory per trial drives
    the EMG in the EEG and the face), built on pieces of the real background recording
    (:func:`background_pieces`), split 6:2 per subject and emotion (:func:`split_trials`). ``z_v`` is
    fitted on the training frames (:class:`VisionLatent`); EEG is standardised per channel with the
    training trials' mean and SD. ``coupling`` defaults to ``cfg.coupling``.
    """
    from affectlab.data.generate.paired import generate_paired, repose_upper_face

    coupling = cfg.coupling if coupling is None else float(coupling)
    face_model = face_model or FaceModel.load(run.data_root)
    is_test = split_trials(cfg.n_subjects, cfg.trials_per_emotion, run.seed)
    n_samples = int(round(cfg.trial_seconds * SFREQ))
    pieces, recording_sample = background_pieces(background, is_test, n_samples, run.seed, cfg.test_background_share)
    paired = generate_paired(n_subjects=cfg.n_subjects, trials_per_emotion=cfg.trials_per_emotion,
                             seconds=cfg.trial_seconds, sfreq=SFREQ, fps=FPS, tasks=("speaking",), coupling=coupling,
                             background=pieces, render=False, ch_names=background.ch_names, seed=run.seed,
                             model=face_model)
    n_trials, n_frames = paired.blendshapes.shape[:2]
    if len(is_test) != n_trials:
        raise RuntimeError(f"generate_paired returned {n_trials} trials; the split expects {len(is_test)}")
    window = cfg.window_samples
    first = math.ceil((window // 2) / SAMPLES_PER_FRAME)
    last = (n_samples - (window - window // 2)) // SAMPLES_PER_FRAME
    frames = np.arange(first, last + 1, cfg.frame_step)
    if len(frames) == 0:
        raise ConfigError(f"ChapterConfig: trials of {cfg.trial_seconds} s hold no {cfg.window_seconds} s window")

    train_trials = ~is_test
    signal = paired.eeg[train_trials].astype(np.float64)
    mean = signal.mean(axis=(0, 2))
    std = signal.std(axis=(0, 2)).clip(min=1e-6)
    eeg = (paired.eeg - mean[None, :, None]) / std[None, :, None]
    windows = _frame_windows(eeg.astype(np.float32), frames, window)  # (trials, F, ch, W)

    latent = VisionLatent.fit(torch.as_tensor(paired.blendshapes[train_trials]), face_model)
    psi = torch.as_tensor(paired.blendshapes[:, frames]).reshape(-1, face_model.n_expression)
    jaw = torch.as_tensor(paired.jaw[:, frames]).reshape(-1, JAW_DIM)
    with torch.no_grad():
        z_v = latent.encode(psi, jaw)
        reposed = []
        for k in range(len(EMOTIONS)):
            psi_k, jaw_k = repose_upper_face(paired, k, face_model)
            reposed.append(latent.encode(torch.as_tensor(psi_k[:, frames]).reshape(-1, face_model.n_expression),
                                         torch.as_tensor(jaw_k[:, frames]).reshape(-1, JAW_DIM)))
    n_f = len(frames)
    trial = torch.arange(n_trials).repeat_interleave(n_f)
    frame = torch.as_tensor(frames).repeat(n_trials)
    frames_per_segment = int(round(cfg.segment_seconds * FPS))
    n_segments = math.ceil(n_frames / frames_per_segment)
    emg_snr_db = 20.0 * math.log10(coupling) if coupling > 0 else -math.inf
    samples_per_segment = int(round(cfg.segment_seconds * SFREQ))
    background_segment = torch.as_tensor(recording_sample[:, frames * SAMPLES_PER_FRAME] // samples_per_segment)
    data_fields = ("n_subjects", "trials_per_emotion", "trial_seconds", "window_seconds", "frame_step",
                   "test_background_share")
    description = {"cfg": {k: getattr(cfg, k) for k in data_fields},
                   "generator": code_fingerprint("affectlab.data.generate.paired", "affectlab.chapters.eeg2face.data"),
                   "coupling": coupling, "seed": run.seed, "background": background.fingerprint,
                   "face_model": face_model.source_sha256}
    source = (f"{background.source}; generated: EMG and valence rhythm (affectlab.data.generate.eeg.simulate_eeg), "
              f"arousal rhythm at 13-19 Hz (affectlab.data.generate.paired.arousal_rhythm), "
              f"face trajectories and z_v (affectlab.data.generate.paired, exact, no EMOCA); {paired.source}")
    return ChapterData(
        eeg=torch.as_tensor(windows.reshape(-1, windows.shape[2], window)),
        z_v=z_v.float(),
        psi=psi.float(),
        jaw=jaw.float(),
        emotion=torch.as_tensor(paired.emotion).repeat_interleave(n_f),
        subject=torch.as_tensor(paired.subject).repeat_interleave(n_f),
        trial=trial,
        frame=frame,
        segment=trial * n_segments + frame // frames_per_segment,
        background_segment=background_segment.reshape(-1),
        train=torch.as_tensor(train_trials).repeat_interleave(n_f),
        latent=latent,
        ch_names=background.ch_names,
        coupling=coupling,
        source=source,
        paired=paired,
        channel_mean=torch.as_tensor(mean, dtype=torch.float32),
        channel_std=torch.as_tensor(std, dtype=torch.float32),
        info={"hash": config_hash(description), "emg_snr_db": emg_snr_db, "window_samples": window,
              "frames_per_trial": n_f, "n_trials": n_trials, "test_trials": int(is_test.sum()),
              "dropped_variance": latent.dropped_variance, "real_background": background.real,
              "seed": run.seed, "n_subjects": cfg.n_subjects, "background_seconds": background.seconds,
              "test_background_seconds": background.seconds * cfg.test_background_share,
              "test_background_segments": int(torch.unique(background_segment[torch.as_tensor(is_test)]).numel()),
              "paired_version": paired.meta.get("paired_version")},
        z_v_reposed=torch.stack(reposed, dim=1).float(),
    )


def render_trial_frames(data: ChapterData, trial: int, frames: torch.Tensor, size: int = 96) -> torch.Tensor:
    """The "video" frames of ``trial`` at ``frames`` (B, 1, size, size): the trial's true blendshapes
    and jaw on its subject's identity and appearance, rendered as the generator renders its frames
    (frontal here; the generator adds slow head motion). Only the frames a figure shows are
    rendered: no model uses frames (``z_v`` is exact)."""
    from affectlab.data.generate.faces import draw_identities
    from affectlab.render import render_face

    face_model = data.latent.face_model
    beta, look = draw_identities(data.info["n_subjects"], face_model, np.random.default_rng(data.info["seed"]))
    s = int(data.paired.subject[trial]) - 1
    frames = torch.as_tensor(frames).long()
    psi = torch.as_tensor(data.paired.blendshapes[trial])[frames]
    jaw = torch.as_tensor(data.paired.jaw[trial])[frames]
    with torch.no_grad():
        vertices = face_model.vertices(beta[s:s + 1], psi, jaw)
        frame = face_model.frame_points(face_model.vertices(beta[s:s + 1]))
        return render_face(face_model, vertices, size=size, frame_points=frame,
                           appearance={"skin": float(look.skin[s]), "brows": float(look.brows[s]),
                                       "lips": float(look.lips[s])},
                           light=(0.2, 0.4, 1.0), ambient=0.35, background=0.45)


def data_label(data: ChapterData) -> str:
    """Short text for figure titles: which EEG background, coupling and seed."""
    background = "real EEGLAB background" if data.info.get("real_background") else "generated background"
    return f"EAV-like set ({background}), coupling {data.coupling:g}, seed {data.info.get('seed')}"

