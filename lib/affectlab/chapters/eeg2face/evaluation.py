"""Chapter 03's measurements (EEG2Face, Sec. 4.0.2): LVE / MCE / EVE per test segment with
intervals that resample whole test trials, paired differences to the reference predictors (mean
face, per-emotion mean faces, ridge ceilings on the planted EMG), ``E_e``'s accuracy, and what the
emotion code does to the face (Fig. 4-2, measured).

Every interval comes from :mod:`affectlab.stats` (cluster bootstrap over test trials); the mean
faces and ceilings are the references a decoder of this semi-synthetic set must be compared with.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from affectlab import metrics, reporting, stats
from affectlab.chapters.eeg2face.config import METRIC_NAMES, SAMPLES_PER_FRAME, ChapterConfig
from affectlab.chapters.eeg2face.data import ChapterData
from affectlab.chapters.eeg2face.latent import region_vertex_ids
from affectlab.config import RunConfig
from affectlab.models.eeg2face import EMOTIONS, EEG2Face


def segment_vertex_errors(z_hat: torch.Tensor, data: ChapterData, mask: torch.Tensor) -> pd.DataFrame:
    """Per test segment: LVE, MCE and EVE (mm) of the predicted latents ``z_hat`` (one row per
    sample of ``mask``) against the TRUE meshes of those frames (their exact blendshapes and jaw).

    Each metric is the thesis's frame-wise maximum L2 error over the region's vertices averaged over
    the segment's frames (:func:`affectlab.metrics.lip_vertex_error` and siblings); returns one row
    per segment with its trial and emotion.
    """
    idx = torch.nonzero(mask).flatten()
    if len(z_hat) != len(idx):
        raise ValueError(f"z_hat has {len(z_hat)} rows but the mask selects {len(idx)} samples")
    latent, face_model = data.latent, data.latent.face_model
    regions = region_vertex_ids(face_model)
    segments = data.segment[idx]
    rows = []
    with torch.no_grad():
        for seg in torch.unique(segments).tolist():
            rows_in = torch.nonzero(segments == seg).flatten()
            frames = idx[rows_in]
            pred = latent.vertices(z_hat[rows_in].float()).numpy()
            true = face_model.vertices(psi=data.psi[frames], jaw=data.jaw[frames]).numpy()
            rows.append({
                "segment": seg,
                "trial": int(data.trial[frames[0]]),
                "emotion": int(data.emotion[frames[0]]),
                "frames": len(frames),
                "LVE": metrics.lip_vertex_error(pred, true, regions["lips"].numpy()),
                "MCE": metrics.mouth_corner_error(pred, true, regions["mouth_corners"].numpy()),
                "EVE": metrics.emotional_vertex_error(pred, true, regions["emotional"].numpy()),
            })
    return pd.DataFrame(rows)


def _mean_of_values(_: np.ndarray, values: np.ndarray) -> float:
    return float(np.mean(values))


def summarise_errors(per_segment: pd.DataFrame, n_bootstrap: int, seed: int) -> dict[str, float]:
    """Mean over test segments of each metric and its 95 % percentile-bootstrap CI. The segments of
    one trial share its background EEG and its face trajectory, so whole test TRIALS are resampled
    (cluster bootstrap, :func:`affectlab.stats.bootstrap_ci` with ``clusters``). Keys ``LVE``,
    ``LVE_low``, ``LVE_high``, ... (mm), ``segments`` and ``trials``."""
    out: dict[str, float] = {"segments": float(len(per_segment)), "trials": float(per_segment["trial"].nunique())}
    labels = per_segment["emotion"].to_numpy()
    for name in METRIC_NAMES:
        point, low, high = stats.bootstrap_ci(_mean_of_values, labels, per_segment[name].to_numpy(),
                                                n_resamples=n_bootstrap, seed=seed, stratified=False,
                                                clusters=per_segment["trial"].to_numpy())
        out.update({name: point, f"{name}_low": low, f"{name}_high": high})
    return out


def segment_difference(a: pd.DataFrame, b: pd.DataFrame, metric: str, n_bootstrap: int, seed: int) -> stats.Estimate:
    """Mean over test segments of ``a[metric] - b[metric]`` (two per-segment tables of
    :func:`segment_vertex_errors` on the same segments) with a 95 % paired cluster-bootstrap CI over
    test trials (:func:`affectlab.stats.paired_difference`): negative = ``a`` has the lower error.
    Read it with :func:`affectlab.stats.verdict_from_ci` ("less" = ``a`` lower)."""
    merged = a.merge(b, on=["segment", "trial", "emotion"], suffixes=("_a", "_b"))
    if len(merged) != len(a) or len(merged) != len(b):
        raise ValueError(f"segment_difference: the two tables must hold the same segments ({len(a)} vs {len(b)} rows)")
    return stats.paired_difference(_mean_of_values, merged["emotion"].to_numpy(), merged[f"{metric}_a"].to_numpy(),
                                   merged[f"{metric}_b"].to_numpy(), n_resamples=n_bootstrap, seed=seed,
                                   stratified=False, clusters=merged["trial"].to_numpy())


def mean_face_latents(data: ChapterData, per_emotion: bool = False,
                      test_emotions: torch.Tensor | None = None) -> torch.Tensor:
    """Baselines for the test samples: the mean training ``z_v`` (the mean face), or with
    ``per_emotion`` the mean training ``z_v`` of each sample's TRUE emotion (an oracle that knows
    the label: what emotion alone, without any frame-level content, can explain).

    ``test_emotions`` (one label per test sample, e.g. ``E_e``'s predictions from
    :func:`predicted_test_emotions`) replaces the true labels: the non-oracle per-emotion mean face,
    i.e. what a decoder that only recognises the emotion and outputs its average face achieves.
    """
    z_train, e_train = data.z_v[data.train], data.emotion[data.train]
    e_test = data.emotion[data.test]
    if test_emotions is not None:
        test_emotions = torch.as_tensor(test_emotions, dtype=torch.long)
        if test_emotions.shape != e_test.shape:
            raise ValueError(f"test_emotions must hold one label per test sample, shape {tuple(e_test.shape)}; "
                             f"got {tuple(test_emotions.shape)}")
        if len(test_emotions) and (int(test_emotions.min()) < 0 or int(test_emotions.max()) >= len(EMOTIONS)):
            raise ValueError(f"test_emotions must be labels in 0..{len(EMOTIONS) - 1}")
        per_emotion, e_test = True, test_emotions
    if not per_emotion:
        return z_train.mean(0).expand(len(e_test), -1).clone()
    missing = [EMOTIONS[k] for k in range(len(EMOTIONS)) if not bool((e_train == k).any())]
    if missing:
        raise ValueError(f"per-emotion mean face: no training sample of {missing}")
    means = torch.stack([z_train[e_train == k].mean(0) for k in range(len(EMOTIONS))])
    return means[e_test]


@torch.no_grad()
def predicted_test_emotions(emotion_encoder: nn.Module, data: ChapterData, device: torch.device | str = "cpu",
                            batch_size: int = 256) -> torch.Tensor:
    """``E_e``'s predicted emotion (argmax of its logits) for every test window (the labels of the
    non-oracle per-emotion mean face, :func:`mean_face_latents` with ``test_emotions``)."""
    emotion_encoder.eval().to(device)
    eeg = data.eeg[data.test]
    logits = [emotion_encoder(eeg[start:start + batch_size].to(device)).logits.cpu()
              for start in range(0, len(eeg), batch_size)]
    emotion_encoder.to("cpu")
    return torch.cat(logits).argmax(1) if logits else torch.zeros(0, dtype=torch.long)


def latent_roundtrip(data: ChapterData) -> torch.Tensor:
    """``z_v`` of the test samples themselves: the floor of the errors (0 here: the PCA is exact)."""
    return data.z_v[data.test]


def emotion_accuracy(logits: torch.Tensor, labels: torch.Tensor, n_bootstrap: int, seed: int,
                     trials: torch.Tensor | None = None) -> dict[str, float]:
    """Accuracy of ``E_e`` on test windows, chance (1 / classes) and the majority-class rate of the
    test labels. With ``trials`` (the trial id of each window) the CI resamples whole trials (the
    windows of a trial share its label and background), and the per-trial majority vote of the
    windows is scored too (``trial_accuracy`` with a bootstrap CI over trials)."""
    y = labels.numpy()
    pred = logits.argmax(1).numpy()
    clusters = None if trials is None else trials.numpy()
    point, low, high = stats.bootstrap_ci(metrics.accuracy, y, pred, n_resamples=n_bootstrap, seed=seed,
                                            stratified=clusters is None, clusters=clusters)
    majority = float(reporting.reference_rows(y, EMOTIONS, scale=1.0)["accuracy"].iloc[0])
    out = {"accuracy": point, "accuracy_low": low, "accuracy_high": high, "chance": 1.0 / len(EMOTIONS),
           "majority_rate": majority, "windows": float(len(y))}
    if clusters is not None:
        ids = np.unique(clusters)
        votes = np.array([np.bincount(pred[clusters == t], minlength=len(EMOTIONS)).argmax() for t in ids])
        truth = np.array([y[clusters == t][0] for t in ids])
        t_point, t_low, t_high = stats.bootstrap_ci(metrics.accuracy, truth, votes, n_resamples=n_bootstrap,
                                                      seed=seed, stratified=False)
        out.update({"trial_accuracy": t_point, "trial_accuracy_low": t_low, "trial_accuracy_high": t_high,
                    "trials": float(len(ids))})
    return out


def predict_test_latents(model: EEG2Face, features: Mapping[str, torch.Tensor],
                         data: ChapterData) -> dict[str, torch.Tensor]:
    """The thesis's first two inference modes (Sec. 3.0.9) on the test samples:
    ``content_only`` = ``f(z_r)`` and ``emotion_enhanced`` = ``f(z_r + g(z_bar))``."""
    z_r, code = features["z_r"][data.test], features["code"][data.test]
    heads = model.heads.cpu().eval()
    with torch.no_grad():
        return {"content_only": heads.content_only(z_r), "emotion_enhanced": heads.with_code(z_r, code)}


MEAN_FACE = "mean face (training mean z_v)"
PER_EMOTION_MEAN_FACE = "per-emotion mean face (true label: oracle)"
PREDICTED_EMOTION_MEAN_FACE = "per-emotion mean face (E_e's predicted emotion)"
DRIVE_CEILING = "ceiling: planted EMG drive + true emotion (ridge)"
ACTIONS_CEILING = "ceiling: face-locked actions + true emotion (ridge)"


def planted_window_features(data: ChapterData, source: str = "emg_drive") -> torch.Tensor:
    """Per sample, the planted signal over the sample's EEG window (2 x window values, mouth then brow)
    and the one-hot TRUE emotion (5): the input of the known-ground-truth ceilings.

    ``source``: "emg_drive" (the EMG envelope that is actually in the EEG at this coupling: the
    face-locked part mixed with the unrelated surrogate) or "face_actions" (the face-locked part alone).
    """
    if source not in ("emg_drive", "face_actions"):
        raise ValueError(f"source must be 'emg_drive' or 'face_actions'; got {source!r}")
    signal = np.asarray(getattr(data.paired, source))  # (trials, samples, 2)
    window = int(data.info["window_samples"])
    starts = data.frame.numpy() * SAMPLES_PER_FRAME - window // 2
    idx = starts[:, None] + np.arange(window)[None]
    values = signal[data.trial.numpy()[:, None], idx]  # (N, window, 2)
    onehot = np.eye(len(EMOTIONS))[data.emotion.numpy()]
    return torch.as_tensor(np.concatenate([values.transpose(0, 2, 1).reshape(len(values), -1), onehot], 1),
                           dtype=torch.float32)


def ridge_ceiling_latents(data: ChapterData, source: str = "emg_drive") -> torch.Tensor:
    """A known-ground-truth ceiling for the test samples: ridge regression (penalty chosen by
    leave-one-out on the training samples) from :func:`planted_window_features` to ``z_v``, fitted
    on the training frames. It reads the planted signal directly, without the EEG background, the
    emotion rhythms or the other channels, and knows the true emotion: a linear decoder of the
    EEG's EMG can hardly do better (a non-linear one might, a little)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = planted_window_features(data, source).numpy()
    train, test = data.train.numpy(), data.test.numpy()
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    model.fit(x[train], data.z_v[data.train].numpy())
    return torch.as_tensor(model.predict(x[test]), dtype=torch.float32)


def reference_latents(data: ChapterData, predicted_emotions: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The reference predictors of the test samples: the mean face (a decoder that learned nothing),
    the per-emotion mean face (knows the true emotion, no frame-level content), with
    ``predicted_emotions`` (``E_e``'s label per test window, :func:`predicted_test_emotions`) the
    per-emotion mean face of the PREDICTED emotion (non-oracle: emotion recognition alone), and the
    two ridge ceilings of :func:`ridge_ceiling_latents` (what the planted signal allows)."""
    out = {MEAN_FACE: mean_face_latents(data), PER_EMOTION_MEAN_FACE: mean_face_latents(data, per_emotion=True)}
    if predicted_emotions is not None:
        out[PREDICTED_EMOTION_MEAN_FACE] = mean_face_latents(data, test_emotions=predicted_emotions)
    out.update({DRIVE_CEILING: ridge_ceiling_latents(data, "emg_drive"),
                ACTIONS_CEILING: ridge_ceiling_latents(data, "face_actions")})
    return out


def baseline_segments(data: ChapterData, predicted_emotions: torch.Tensor | None = None) -> dict[str, pd.DataFrame]:
    """Per-segment test errors (:func:`segment_vertex_errors`) of every :func:`reference_latents` predictor."""
    return {name: segment_vertex_errors(z, data, data.test)
            for name, z in reference_latents(data, predicted_emotions).items()}


def baseline_rows(segments: Mapping[str, pd.DataFrame], cfg: ChapterConfig, run: RunConfig) -> list[dict[str, Any]]:
    """LVE / MCE / EVE with CIs of the reference predictors (:func:`baseline_segments`)."""
    return [{"method": name, "mode": "baseline", **summarise_errors(table, cfg.n_bootstrap, run.seed)}
            for name, table in segments.items()]


COMPARISON_REFERENCES = (("vs_mean", MEAN_FACE), ("vs_oracle", PER_EMOTION_MEAN_FACE),
                         ("vs_predicted", PREDICTED_EMOTION_MEAN_FACE))


def comparison_columns(per_segment: pd.DataFrame, references: Mapping[str, pd.DataFrame], cfg: ChapterConfig,
                       run: RunConfig) -> dict[str, float]:
    """Paired differences (mm, 95 % cluster-bootstrap CI over test trials) of a model's per-segment
    errors against the mean face (``vs_mean``), the per-emotion mean face (``vs_oracle``) and, when
    ``references`` holds it, the per-emotion mean face of ``E_e``'s predicted emotion
    (``vs_predicted``): keys like ``LVE_vs_mean``, ``LVE_vs_mean_low``, ``LVE_vs_mean_high``,
    ``LVE_vs_mean_rel``."""
    out: dict[str, float] = {}
    for tag, name in COMPARISON_REFERENCES:
        if name not in references:
            continue
        for metric in METRIC_NAMES:
            diff = segment_difference(per_segment, references[name], metric, cfg.n_bootstrap, run.seed)
            out.update({f"{metric}_{tag}": diff.value, f"{metric}_{tag}_low": diff.low,
                        f"{metric}_{tag}_high": diff.high,
                        f"{metric}_{tag}_rel": diff.value / float(references[name][metric].mean())})
    return out


def vertex_error_map(z_hat: torch.Tensor, data: ChapterData, chunk: int = 128) -> torch.Tensor:
    """Mean per-vertex Euclidean error (V,) in mm over the test samples of the predictions ``z_hat``."""
    idx = torch.nonzero(data.test).flatten()
    total = torch.zeros(data.latent.face_model.n_vertices)
    with torch.no_grad():
        for start in range(0, len(idx), chunk):
            rows = idx[start:start + chunk]
            pred = data.latent.vertices(z_hat[start:start + chunk].float())
            true = data.latent.face_model.vertices(psi=data.psi[rows], jaw=data.jaw[rows])
            total += torch.linalg.vector_norm(pred - true, dim=-1).sum(0)
    return total / len(idx)


