"""Chapter 03's measurements (EEG2Face, Sec. 4.0.2): LVE / MCE / EVE per test frame, pooled over
training seeds, with intervals that resample whole test trials, the background-recording segments
they share and the seeds at once (:func:`affectlab.stats.crossed_bootstrap_mean`); paired
differences to the reference predictors (mean face, per-emotion mean faces, ridge ceilings on the
planted EMG, a ridge control on the EEG itself) and between encoders; ``E_e``'s accuracy; and what
the emotion code does to the face (Fig. 4-2, measured).

Why three factors: every test frame belongs to a trial (its face trajectory), its EEG was cut from a
segment of the ONE background recording that several test trials reuse, and every model row is
trained with several seeds; none of these is nested in another, so each is resampled (Owen's
pigeonhole bootstrap; resampling trials alone is too narrow when backgrounds are shared).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from affectlab import reporting, stats
from affectlab.chapters.eeg2face.config import METRIC_NAMES, SAMPLES_PER_FRAME, ChapterConfig
from affectlab.chapters.eeg2face.data import ChapterData
from affectlab.chapters.eeg2face.latent import region_vertex_ids
from affectlab.config import RunConfig
from affectlab.models.eeg2face import EMOTIONS, EEG2Face

FACTORS = ("trial", "background_segment", "seed")
"""The crossed factors every interval resamples (:func:`affectlab.stats.crossed_bootstrap_mean`)."""
METRIC_REGIONS = {"LVE": "lips", "MCE": "mouth_corners", "EVE": "emotional"}
"""Sec. 4.0.2's metric -> region of :func:`affectlab.chapters.eeg2face.latent.region_vertex_ids`."""


def frame_vertex_errors(z_hat: torch.Tensor, data: ChapterData, mask: torch.Tensor, seed: int = -1,
                        chunk: int = 256) -> pd.DataFrame:
    """Per frame of ``mask``: LVE, MCE and EVE (mm) of the predicted latents ``z_hat`` (one row per
    sample of ``mask``) against the TRUE meshes of those frames (exact blendshapes and jaw).

    Each metric is the thesis's per-frame maximum L2 error over the region's vertices (the frame
    term of :func:`affectlab.metrics.lip_vertex_error` and siblings, whose mean over frames it is).
    Columns: ``sample`` (index into ``data``), ``trial``, ``emotion``, ``background_segment``,
    ``seed`` (the training seed of the predictor, -1 for one that has none), LVE, MCE, EVE.
    """
    idx = torch.nonzero(mask).flatten()
    if len(z_hat) != len(idx):
        raise ValueError(f"z_hat has {len(z_hat)} rows but the mask selects {len(idx)} samples")
    latent, face_model = data.latent, data.latent.face_model
    regions = region_vertex_ids(face_model)
    errors = {name: [] for name in METRIC_NAMES}
    with torch.no_grad():
        for start in range(0, len(idx), chunk):
            rows = idx[start:start + chunk]
            pred = latent.vertices(z_hat[start:start + chunk].float())
            true = face_model.vertices(psi=data.psi[rows], jaw=data.jaw[rows])
            dist = torch.linalg.vector_norm(pred.double() - true.double(), dim=-1)  # (B, V)
            for name, region in METRIC_REGIONS.items():
                errors[name].append(dist[:, regions[region]].amax(1))
    return pd.DataFrame({"sample": idx.numpy(), "trial": data.trial[idx].numpy(), "emotion": data.emotion[idx].numpy(),
                         "background_segment": data.background_segment[idx].numpy(),
                         "seed": np.full(len(idx), int(seed)),
                         **{name: torch.cat(v).numpy() if v else np.zeros(0) for name, v in errors.items()}})


def pool_seeds(tables: pd.DataFrame | Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One frame table of :func:`frame_vertex_errors` per seed -> one table (rows of every seed)."""
    if isinstance(tables, pd.DataFrame):
        return tables
    if not tables:
        raise ValueError("pool_seeds: no frame tables given")
    return pd.concat(list(tables), ignore_index=True)


def summarise_errors(frames: pd.DataFrame | Sequence[pd.DataFrame], n_bootstrap: int, seed: int) -> dict[str, Any]:
    """Mean over test frames (and training seeds) of each metric with its 95 % CI from
    :func:`affectlab.stats.crossed_bootstrap_mean` over test trials x background segments x seeds.
    Keys ``LVE``, ``LVE_low``, ``LVE_high``, ``LVE_per_seed`` (list, one mean per seed), ...,
    ``frames`` (test frames per seed), ``trials``, ``background_segments``, ``seeds``."""
    table = pool_seeds(frames)
    seeds = sorted(table["seed"].unique().tolist())
    out: dict[str, Any] = {"frames": float(len(table) // max(len(seeds), 1)), "trials": float(table["trial"].nunique()),
                           "background_segments": float(table["background_segment"].nunique()),
                           "seeds": [int(s) for s in seeds if s >= 0]}
    factors = {f: table[f].to_numpy() for f in FACTORS}
    for name in METRIC_NAMES:
        est = stats.crossed_bootstrap_mean(table[name].to_numpy(), factors, n_resamples=n_bootstrap, seed=seed)
        out.update({name: est.value, f"{name}_low": est.low, f"{name}_high": est.high,
                    f"{name}_per_seed": [float(v) for v in table.groupby("seed")[name].mean().tolist()]})
    return out


def _aligned(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``a`` and ``b`` on the same (seed, sample); a seedless ``b`` (seed -1) pairs with every seed of ``a``."""
    if (b["seed"] < 0).all() and not (a["seed"] < 0).all():
        b = pd.concat([b.assign(seed=s) for s in a["seed"].unique()], ignore_index=True)
    elif (a["seed"] < 0).all() and not (b["seed"] < 0).all():
        a = pd.concat([a.assign(seed=s) for s in b["seed"].unique()], ignore_index=True)
    merged = a.merge(b, on=["seed", "sample", "trial", "emotion", "background_segment"], suffixes=("_a", "_b"))
    if len(merged) != len(a) or len(merged) != len(b):
        raise ValueError(f"paired difference: the two tables must hold the same frames and seeds ({len(a)} vs {len(b)} "
                         f"rows, {len(merged)} matched)")
    return merged


def frame_difference(a: pd.DataFrame | Sequence[pd.DataFrame], b: pd.DataFrame | Sequence[pd.DataFrame], metric: str,
                     n_bootstrap: int, seed: int) -> stats.Estimate:
    """Mean over the same test frames (and seeds) of ``a[metric] - b[metric]`` with the 95 % CI of
    :func:`affectlab.stats.crossed_bootstrap_mean` (test trials x background segments x seeds):
    negative = ``a`` has the lower error. A seedless reference ``b`` is paired with every seed of
    ``a``. Read it with :func:`affectlab.stats.verdict_from_ci` ("less" = ``a`` lower)."""
    merged = _aligned(pool_seeds(a), pool_seeds(b))
    factors = {f: merged[f].to_numpy() for f in FACTORS}
    return stats.crossed_bootstrap_mean(merged[f"{metric}_a"].to_numpy() - merged[f"{metric}_b"].to_numpy(), factors,
                                        n_resamples=n_bootstrap, seed=seed)


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


def emotion_accuracy(logits: torch.Tensor | Sequence[torch.Tensor], data: ChapterData, n_bootstrap: int, seed: int,
                     seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """Accuracy of ``E_e`` on the test windows (``logits``: one (test windows, 5) tensor per
    training seed), pooled over seeds, against chance (1 / classes) and the majority-class rate of
    the test labels. The CI resamples test trials x background segments x seeds
    (:func:`affectlab.stats.crossed_bootstrap_mean`); the per-trial majority vote of the windows
    (``trial_accuracy``) resamples trials x seeds."""
    logits = [logits] if isinstance(logits, torch.Tensor) else list(logits)
    seeds = list(range(len(logits))) if seeds is None else list(seeds)
    mask = data.test
    y = data.emotion[mask].numpy()
    trials, segments = data.trial[mask].numpy(), data.background_segment[mask].numpy()
    correct, votes_ok, vote_trials, vote_seeds, per_seed = [], [], [], [], []
    for s, lg in zip(seeds, logits):
        pred = lg.argmax(1).numpy()
        if len(pred) != len(y):
            raise ValueError(f"emotion_accuracy: {len(pred)} predictions for {len(y)} test windows")
        correct.append(pred == y)
        per_seed.append(float((pred == y).mean()))
        for t in np.unique(trials):
            rows = trials == t
            votes_ok.append(np.bincount(pred[rows], minlength=len(EMOTIONS)).argmax() == y[rows][0])
            vote_trials.append(t)
            vote_seeds.append(s)
    n = len(y)
    factors = {"trial": np.tile(trials, len(logits)), "background_segment": np.tile(segments, len(logits)),
               "seed": np.repeat(seeds, n)}
    acc = stats.crossed_bootstrap_mean(np.concatenate(correct).astype(float), factors, n_bootstrap, seed)
    majority = float(reporting.reference_rows(y, EMOTIONS, scale=1.0)["accuracy"].iloc[0])
    out: dict[str, Any] = {"accuracy": acc.value, "accuracy_low": acc.low, "accuracy_high": acc.high,
                           "accuracy_per_seed": per_seed, "chance": 1.0 / len(EMOTIONS), "majority_rate": majority,
                           "windows": float(n), "seeds": [int(s) for s in seeds]}
    votes = stats.crossed_bootstrap_mean(np.asarray(votes_ok, dtype=float),
                                         {"trial": np.asarray(vote_trials), "seed": np.asarray(vote_seeds)},
                                         n_bootstrap, seed)
    out.update({"trial_accuracy": votes.value, "trial_accuracy_low": votes.low, "trial_accuracy_high": votes.high,
                "trials": float(len(np.unique(trials)))})
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
EEG_RIDGE = "control: ridge on the EEG's 20-45 Hz envelope + true emotion"


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


def _ridge_latents(x: np.ndarray, data: ChapterData) -> torch.Tensor:
    """Ridge regression (standardised inputs, penalty chosen by leave-one-out on the training samples)
    from per-sample features ``x`` (N, k) to ``z_v``, fitted on the training samples; predictions for
    the test samples."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = data.train.numpy(), data.test.numpy()
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    model.fit(x[train], data.z_v[data.train].numpy())
    return torch.as_tensor(model.predict(x[test]), dtype=torch.float32)


def ridge_ceiling_latents(data: ChapterData, source: str = "emg_drive") -> torch.Tensor:
    """A known-ground-truth ceiling for the test samples: :func:`_ridge_latents` from
    :func:`planted_window_features` to ``z_v``. It reads the planted signal directly, without the
    EEG background, the emotion rhythms or the other channels, and knows the true emotion: a linear
    decoder of the EEG's EMG can hardly do better (a non-linear one might, a little)."""
    return _ridge_latents(planted_window_features(data, source).numpy(), data)


EMG_LOW_HZ = 20.0
"""Lower edge of the EMG band the EEG ridge control reads (the generator's EMG is 20-45 Hz)."""


EEG_POWER_BIN = 5
"""Samples per bin (50 ms) of :func:`eeg_power_features`' envelope."""


def eeg_power_features(data: ChapterData) -> torch.Tensor:
    """Per sample, from the EEG itself (never the planted drive): the EMG envelope of the window, i.e.
    the EEG high-passed at :data:`EMG_LOW_HZ` (FFT mask), its RMS in bins of :data:`EEG_POWER_BIN`
    samples across the whole window, averaged over the temporal channels and over the frontal
    channels (the two electrode groups where facial muscles show: ``data.emg_channels``; averaging
    independent channels is what makes a 50 ms envelope readable), then the one-hot TRUE emotion (5).
    RMS, not log power: the EMG amplitude is linear in the drive."""
    x = data.eeg.double()
    window = x.shape[-1]
    spectrum = torch.fft.rfft(x, dim=-1)
    spectrum[..., torch.fft.rfftfreq(window, 1.0 / 100.0) < EMG_LOW_HZ] = 0
    high = torch.fft.irfft(spectrum, n=window, dim=-1)
    usable = window // EEG_POWER_BIN * EEG_POWER_BIN
    envelope = high[..., :usable].reshape(*high.shape[:2], -1, EEG_POWER_BIN).pow(2).mean(-1).sqrt()  # (N, C, bins)
    groups = [[data.ch_names.index(c) for c in data.emg_channels[g]] for g in ("mouth", "brow")]
    if not all(groups):
        raise ValueError(f"eeg_power_features: no EMG channel group among {data.ch_names} ({data.emg_channels})")
    parts = [envelope[:, idx].mean(1) for idx in groups]
    onehot = torch.eye(len(EMOTIONS), dtype=torch.float64)[data.emotion]
    return torch.cat(parts + [onehot], 1).float()


def eeg_ridge_latents(data: ChapterData) -> torch.Tensor:
    """The control on the EEG itself (chapter issue, item 5): :func:`_ridge_latents` from
    :func:`eeg_power_features`. With a face-locked EMG (coupling > 0) it should beat the per-emotion
    mean face, which knows the same true emotion but nothing about the frame; at coupling 0 it
    should not (the EEG then holds no frame-level content)."""
    return _ridge_latents(eeg_power_features(data).numpy(), data)


def reference_latents(data: ChapterData) -> dict[str, torch.Tensor]:
    """The seed-free reference predictors of the test samples: the mean face (a decoder that learned
    nothing), the per-emotion mean face (knows the true emotion, no frame-level content), the two ridge
    ceilings of :func:`ridge_ceiling_latents` (what the planted signal allows) and the EEG ridge
    control (:func:`eeg_ridge_latents`). The per-emotion mean face of ``E_e``'s PREDICTED emotion
    depends on ``E_e``'s training seed: :func:`baseline_frames`."""
    return {MEAN_FACE: mean_face_latents(data), PER_EMOTION_MEAN_FACE: mean_face_latents(data, per_emotion=True),
            DRIVE_CEILING: ridge_ceiling_latents(data, "emg_drive"),
            ACTIONS_CEILING: ridge_ceiling_latents(data, "face_actions"), EEG_RIDGE: eeg_ridge_latents(data)}


def baseline_frames(data: ChapterData, predicted_emotions: Sequence[torch.Tensor] | None = None,
                    seeds: Sequence[int] | None = None) -> dict[str, pd.DataFrame]:
    """Per-frame test errors (:func:`frame_vertex_errors`) of every reference predictor: the seed-free
    ones of :func:`reference_latents` (seed -1) and, with ``predicted_emotions`` (``E_e``'s label per
    test window, one tensor per training seed, :func:`predicted_test_emotions`), the per-emotion mean
    face of the predicted emotion (non-oracle: emotion recognition alone), one table per seed pooled."""
    out = {name: frame_vertex_errors(z, data, data.test) for name, z in reference_latents(data).items()}
    if predicted_emotions is not None:
        seeds = list(range(len(predicted_emotions))) if seeds is None else list(seeds)
        out[PREDICTED_EMOTION_MEAN_FACE] = pool_seeds([
            frame_vertex_errors(mean_face_latents(data, test_emotions=p), data, data.test, seed=s)
            for s, p in zip(seeds, predicted_emotions)])
    return out


def baseline_rows(frames: Mapping[str, pd.DataFrame], cfg: ChapterConfig, run: RunConfig) -> list[dict[str, Any]]:
    """LVE / MCE / EVE with CIs of the reference predictors (:func:`baseline_frames`)."""
    return [{"method": name, "mode": "baseline", **summarise_errors(table, cfg.n_bootstrap, run.seed)}
            for name, table in frames.items()]


COMPARISON_REFERENCES = (("vs_mean", MEAN_FACE), ("vs_oracle", PER_EMOTION_MEAN_FACE),
                         ("vs_predicted", PREDICTED_EMOTION_MEAN_FACE))


def comparison_columns(frames: pd.DataFrame, references: Mapping[str, pd.DataFrame], cfg: ChapterConfig,
                       run: RunConfig) -> dict[str, float]:
    """Paired differences (mm, 95 % CI over test trials x background segments x seeds) of a model's
    per-frame errors against the mean face (``vs_mean``), the per-emotion mean face (``vs_oracle``)
    and, when ``references`` holds it, the per-emotion mean face of ``E_e``'s predicted emotion
    (``vs_predicted``, paired seed by seed: the same ``E_e``): keys like ``LVE_vs_mean``,
    ``LVE_vs_mean_low``, ``LVE_vs_mean_high``, ``LVE_vs_mean_rel``."""
    out: dict[str, float] = {}
    for tag, name in COMPARISON_REFERENCES:
        if name not in references:
            continue
        for metric in METRIC_NAMES:
            diff = frame_difference(frames, references[name], metric, cfg.n_bootstrap, run.seed)
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


