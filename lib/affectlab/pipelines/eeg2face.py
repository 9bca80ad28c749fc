"""Chapter 03, EEG2Face (Kabidenova 2025, MSc thesis, paper 002): the experiment behind the notebook.

The notebook ``notebooks/03_eeg2face.py`` calls this module and only shows what it returns; every
step of the thesis's pipeline lives here, on top of the library pieces (models, losses, metrics,
face model, renderer, trainer, generators).

Reading order:

1. :class:`ChapterConfig` and :func:`chapter_config` - sizes per profile (smoke / quick / paper).
2. Data - :func:`background_eeg` (the real EEGLAB recording, 30 EEG channels resampled to 100 Hz,
   or the embedded default's generated EEG), :func:`build_paired_set` (EAV-like semi-synthetic
   trials: EEG + 10 fps face frames from ONE blendshape trajectory, subject-dependent 6:2 split),
   :class:`VisionLatent` (the stand-in for ``E_v``: ``z_v`` = 50 PCA expression coefficients of the
   53 ICT blendshapes + 3 jaw parameters, Sec. 3.0.2) and :class:`ChapterData` (frame-aligned EEG
   windows with their exact ``z_v``).
3. Stage 1 (Sec. 3.0.7) - :func:`train_emotion_encoder` (``E_e``, cross-entropy) and
   :func:`train_content_encoder` (``E_r`` or a Table 4.1 baseline, one-sided InfoNCE).
4. Stage 2 (Sec. 3.0.7, Eq. 3.1) - :func:`stage2_loss` (``0.7 MSE(z_v) + 0.3 L_vertex``) and
   :func:`train_heads` (heads ``f``, ``g`` on frozen encoders, emotion code dropped for 50 %).
5. Evaluation (Sec. 4.0.2) - :func:`evaluate_vertex_errors` (LVE / MCE / EVE in mm with bootstrap
   CIs over test segments), :func:`emotion_accuracy` (``E_e`` against chance), the mean-face
   baselines.
6. Experiments - :func:`run_pipeline` (one encoder end to end), :func:`run_table_4_1` (all encoders
   beside the thesis's numbers) and :func:`run_coupling_sweep` (errors as the planted EMG-to-face
   coupling falls to zero).
7. Figures - reconstructions (Figs. 4-1 / 4-3), emotion control (Fig. 4-2), error maps, the sweep.

Every training goes through :func:`affectlab.train.fit` (train-or-load: a rerun with the same data
and configuration loads the finished run from ``AFFECTLAB_RUNS``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from affectlab import metrics
from affectlab.config import ConfigError, RunConfig, check_profile, config_hash
from affectlab.facemodel import FaceModel
from affectlab.losses import info_nce_loss, vertex_loss
from affectlab.models.eeg2face import (
    EMOTIONS,
    EXPRESSION_DIM,
    JAW_DIM,
    VISION_LATENT_DIM,
    EEG2Face,
    EEG2FaceHeads,
    EEGContentEncoder,
    EEGEmotionEncoder,
)
from affectlab.models.eeg_baselines import ENCODER_NAMES, build_content_encoder
from affectlab.train import FitResult, TensorData, TrainConfig, fit

CHAPTER = "03_eeg2face"
SFREQ = 100.0  # Hz, the thesis's EEG rate (Sec. 3.0.1)
FPS = 10.0  # face frames per second after the thesis's 30 -> 10 fps downsampling
SAMPLES_PER_FRAME = int(SFREQ / FPS)  # 10 EEG samples per face frame (Sec. 3.0.1, t = 10)
LOSS_WEIGHTS = (0.7, 0.3)  # lambda_1 (MSE on z_v), lambda_2 (vertex loss), Sec. 3.0.8
EVE_REGIONS = ("forehead", "cheeks", "eyes")  # Sec. 4.0.2: "forehead, cheeks, and eye vertices"

PAPER_TABLE_4_1: dict[str, tuple[float, float, float]] = {
    "eegnet": (1.0975, 2.4331, 0.5385),
    "shallowconvnet": (1.0439, 1.2331, 0.4554),
    "tct": (0.8658, 2.7552, 0.5055),
    "eegtransformer": (0.7856, 0.8329, 0.2699),
    "eeg2face": (0.6647, 0.4864, 0.1541),
}
"""Table 4.1 of the thesis: (LVE, MCE, EVE), printed with the unit "mm" in the table but as
"x 10^-4 mm" in the text below it; FLAME meshes are in metres, so neither unit is certain."""

ENCODER_LABELS: dict[str, str] = {
    "eegnet": "EEGNet [25]",
    "shallowconvnet": "ShallowConvNet [40]",
    "tct": "TCT-style [31]",
    "eegtransformer": "EEG-transformer (EEGConformer) [1]",
    "eeg2face": "EEG2Face E_r (ours)",
}


# ================================================================================================
# 1. configuration
# ================================================================================================


@dataclasses.dataclass(frozen=True)
class ChapterConfig:
    """Every size of the chapter; :func:`chapter_config` gives the values per profile.

    Data: ``n_subjects`` x 5 emotions x ``trials_per_emotion`` trials of ``trial_seconds`` (EAV: 20
    subjects used by the thesis, 20 speaking trials per emotion, 20 s). ``trials_per_emotion`` must
    be a multiple of 4 for the 6:2 split. Each sample is one face frame with the EEG window of
    ``window_seconds`` centred on it; every ``frame_step``-th frame is used. ``segment_seconds``
    groups a trial's windows into the 5 s segments over which CIs are drawn (EAV's segment length).
    ``coupling``: the planted EMG-to-face coupling of the main experiment; ``sweep_couplings``: the
    levels of the coupling sweep (0 = no coupling). ``frame_size``: side (px) of the rendered faces
    in the figures.

    Training (Sec. 3.0.8: Adam, lr 1e-3, batch 64; 400 epochs stage 1, 300 stage 2):
    ``stage1_epochs`` (``E_r`` and baselines), ``emotion_epochs`` (``E_e``), ``stage2_epochs``
    (heads), ``sweep_epochs`` (``E_e`` and ``E_r`` at each sweep level). ``steps_per_epoch`` caps
    batches per epoch (smoke only). ``temperature`` of InfoNCE (the thesis writes none: 1).
    ``encoders``: the Table 4.1 rows to train. ``drop_prob``: share of samples whose emotion code is
    dropped in stage 2 (0.5, Sec. 3.0.7). ``n_bootstrap``: resamples of every CI.
    """

    profile: str
    n_subjects: int
    trials_per_emotion: int
    trial_seconds: float
    window_seconds: float
    frame_step: int
    segment_seconds: float
    frame_size: int
    coupling: float
    sweep_couplings: tuple[float, ...]
    encoders: tuple[str, ...]
    stage1_epochs: int
    emotion_epochs: int
    stage2_epochs: int
    sweep_epochs: int
    batch_size: int = 64
    lr: float = 1e-3
    temperature: float = 1.0
    steps_per_epoch: int | None = None
    n_bootstrap: int = 1000
    drop_prob: float = 0.5

    def __post_init__(self) -> None:
        check_profile(self.profile)

        def fail(field: str, expected: str) -> None:
            raise ConfigError(f"ChapterConfig.{field} must be {expected}; got {getattr(self, field)!r}")

        for field in ("n_subjects", "frame_step", "frame_size", "stage1_epochs", "emotion_epochs",
                      "stage2_epochs", "sweep_epochs", "batch_size", "n_bootstrap"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fail(field, "an int >= 1")
        if not isinstance(self.trials_per_emotion, int) or self.trials_per_emotion < 4 or self.trials_per_emotion % 4:
            fail("trials_per_emotion", "a positive multiple of 4 (the 6:2 split)")
        if not self.window_seconds * SFREQ >= 100:
            fail("window_seconds", "at least 1.0 s (braindecode's ShallowFBCSPNet pools 75 samples)")
        if not self.trial_seconds >= max(self.segment_seconds, self.window_seconds + 1.0):
            fail("trial_seconds", "at least one segment and one window + 1 s long")
        if not 0.0 <= self.coupling or not all(c >= 0 for c in self.sweep_couplings):
            fail("coupling", "a number >= 0 (and every sweep level too)")
        unknown = [e for e in self.encoders if e not in ENCODER_NAMES]
        if unknown or not self.encoders:
            fail("encoders", f"a non-empty subset of {ENCODER_NAMES}")
        if not self.temperature > 0:
            fail("temperature", "> 0")
        if not 0.0 <= self.drop_prob < 1.0:
            fail("drop_prob", "in [0, 1)")

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * SFREQ))


def chapter_config(profile: str, **overrides: Any) -> ChapterConfig:
    """The chapter's sizes for ``profile``; ``overrides`` replace single fields (for tests).

    - smoke: one subject, 8 s trials, one short epoch per model: proves every cell runs.
    - quick: 4 subjects x 5 emotions x 8 trials of 20 s (every 8th frame: 3,840 samples) on a 2-core
      CPU, all five encoders, 6 epochs per encoder, four coupling levels; about 1,100 CPU-seconds
      of work (measured per model), i.e. 12-15 minutes on two idle cores.
    - paper: the thesis's sizes (20 subjects, 20 trials per emotion, 400 / 300 epochs): for a GPU
      (every 2nd frame: ~190k windows, ~2.3 GB of float32 EEG in memory).
    """
    profile = check_profile(profile)
    table = {
        "smoke": dict(n_subjects=1, trials_per_emotion=4, trial_seconds=8.0, window_seconds=1.0, frame_step=5,
                      segment_seconds=4.0, frame_size=48, coupling=1.0, sweep_couplings=(1.0, 0.0),
                      encoders=ENCODER_NAMES, stage1_epochs=1, emotion_epochs=1, stage2_epochs=1, sweep_epochs=1,
                      steps_per_epoch=1, n_bootstrap=100),
        "quick": dict(n_subjects=4, trials_per_emotion=8, trial_seconds=20.0, window_seconds=1.0, frame_step=8,
                      segment_seconds=5.0, frame_size=64, coupling=1.0, sweep_couplings=(1.0, 0.5, 0.25, 0.0),
                      encoders=ENCODER_NAMES, stage1_epochs=6, emotion_epochs=6, stage2_epochs=10,
                      sweep_epochs=6, n_bootstrap=1000),
        "paper": dict(n_subjects=20, trials_per_emotion=20, trial_seconds=20.0, window_seconds=1.0, frame_step=2,
                      segment_seconds=5.0, frame_size=96, coupling=1.0,
                      sweep_couplings=(2.0, 1.0, 0.5, 0.25, 0.125, 0.0), encoders=ENCODER_NAMES,
                      stage1_epochs=400, emotion_epochs=400, stage2_epochs=300, sweep_epochs=100, n_bootstrap=2000),
    }[profile]
    table.update(overrides)
    return ChapterConfig(profile=profile, **table)


def train_config(cfg: ChapterConfig, run: RunConfig, epochs: int, task: str) -> TrainConfig:
    """The thesis's optimiser (Sec. 3.0.8): Adam, lr 1e-3, constant; AdamW with weight decay 0 is
    Adam. No gradient clipping and no schedule are stated, so none are used."""
    return TrainConfig(epochs=epochs, lr=cfg.lr, weight_decay=0.0, schedule="constant", grad_clip=None,
                       task=task, amp="off", steps_per_epoch=cfg.steps_per_epoch, seed=run.seed,
                       progress=False, tensorboard=False)


# ================================================================================================
# 2. the vision latent z_v (stand-in for E_v) and the frame-aligned samples
# ================================================================================================


class VisionLatent(nn.Module):
    """``z_v`` = 50 expression coefficients + 3 jaw parameters, as FLAME's 53 (Sec. 3.0.2), and
    ``F(z_v)``: the mesh of the book's face model.

    The thesis regresses FLAME's ``psi_exp`` (50) and jaw pose (3) with EMOCA from video frames
    (pseudo-ground-truth). Here the frames are rendered from known blendshapes, so ``z_v`` is exact:
    ``psi_exp`` = the first 50 principal components (orthonormal, not whitened: FLAME's expression
    space is a PCA basis too) of the 53 ICT blendshape coefficients over the training frames, and
    the jaw = the face model's (open, lateral, forward). ``decode`` inverts it; the 3 dropped
    components carry ``1 - explained_variance_ratio.sum()`` of the variance (reported).
    """

    def __init__(self, mean: torch.Tensor, components: torch.Tensor, explained_variance_ratio: torch.Tensor,
                 face_model: FaceModel) -> None:
        super().__init__()
        if components.shape != (EXPRESSION_DIM, face_model.n_expression) or mean.shape != (face_model.n_expression,):
            raise ValueError(f"VisionLatent needs mean ({face_model.n_expression},) and components "
                             f"({EXPRESSION_DIM}, {face_model.n_expression}); got {tuple(mean.shape)}, "
                             f"{tuple(components.shape)}")
        self.register_buffer("mean", mean.float())
        self.register_buffer("components", components.float())
        self.register_buffer("explained_variance_ratio", explained_variance_ratio.float())
        self.face_model = face_model

    @classmethod
    def fit(cls, blendshapes: torch.Tensor, face_model: FaceModel) -> "VisionLatent":
        """PCA of (frames, 53) training blendshape coefficients (SVD of the centred matrix)."""
        x = torch.as_tensor(blendshapes, dtype=torch.float64).reshape(-1, face_model.n_expression)
        if len(x) < 2:
            raise ValueError(f"VisionLatent.fit needs at least 2 frames of blendshapes; got {len(x)}")
        mean = x.mean(0)
        _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
        var = s**2
        total = var.sum().clamp_min(1e-12)
        comps = vh[:EXPRESSION_DIM]
        if comps.shape[0] < EXPRESSION_DIM:  # fewer frames than components: pad with an orthonormal complement
            q, _ = torch.linalg.qr(torch.cat([comps.T, torch.eye(face_model.n_expression, dtype=x.dtype)], 1))
            comps = q.T[:EXPRESSION_DIM]
        # a fixed sign per component (largest loading positive) so the basis is reproducible
        sign = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True))).squeeze(1)
        comps = comps * torch.where(sign == 0, torch.ones_like(sign), sign)[:, None]
        ratio = torch.zeros(EXPRESSION_DIM, dtype=x.dtype)
        k = min(EXPRESSION_DIM, len(var))
        ratio[:k] = var[:k] / total
        return cls(mean, comps, ratio, face_model)

    def encode(self, psi: torch.Tensor, jaw: torch.Tensor) -> torch.Tensor:
        """Blendshapes (..., 53) and jaw (..., 3) -> ``z_v`` (..., 53)."""
        psi = torch.as_tensor(psi, dtype=torch.float32, device=self.mean.device)
        jaw = torch.as_tensor(jaw, dtype=torch.float32, device=self.mean.device)
        return torch.cat([(psi - self.mean) @ self.components.T, jaw], dim=-1)

    def decode(self, z_v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z_v`` (..., 53) -> blendshapes (..., 53) and jaw (..., 3)."""
        if z_v.shape[-1] != VISION_LATENT_DIM:
            raise ValueError(f"z_v must end in {VISION_LATENT_DIM} (50 expression + 3 jaw); got {tuple(z_v.shape)}")
        return self.mean + z_v[..., :EXPRESSION_DIM] @ self.components, z_v[..., EXPRESSION_DIM:]

    def vertices(self, z_v: torch.Tensor) -> torch.Tensor:
        """``F(z_v)``: (B, 53) -> meshes (B, V, 3) in mm, identity and global pose fixed at zero
        (the thesis drops FLAME's shape and global pose, Sec. 3.0.2). Differentiable."""
        psi, jaw = self.decode(z_v)
        return self.face_model.vertices(psi=psi, jaw=jaw)

    @property
    def dropped_variance(self) -> float:
        """Fraction of the training blendshape variance outside the 50 kept components."""
        return float(1.0 - self.explained_variance_ratio.sum())


def region_vertex_ids(face_model: FaceModel) -> dict[str, torch.Tensor]:
    """Vertex ids of the metric regions: ``lips`` (LVE), ``mouth_corners`` (MCE) and ``emotional``
    = forehead + cheeks + eyes (EVE, Sec. 4.0.2)."""
    emotional = torch.unique(torch.cat([face_model.regions[r] for r in EVE_REGIONS]))
    return {"lips": face_model.regions["lips"], "mouth_corners": face_model.regions["mouth_corners"],
            "emotional": emotional}


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
        train: (N,) bool, True for the 6 of every 8 trials per subject and emotion used to train.
        latent: the fitted :class:`VisionLatent` (on the training frames).
        paired: the generator's output for all trials (EEG in uV, trajectories, EMG drive; frames
            are not rendered, see :func:`render_trial_frames`).
        source: what is real and what is generated.
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
    train: torch.Tensor
    latent: VisionLatent
    ch_names: tuple[str, ...]
    coupling: float
    source: str
    paired: Any
    channel_mean: torch.Tensor
    channel_std: torch.Tensor
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.eeg)

    @property
    def test(self) -> torch.Tensor:
        return ~self.train

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


# ================================================================================================
# 2b. building the paired set: real (or embedded) EEG background + generated EMG, emotion and faces
# ================================================================================================


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
    import hashlib

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


def background_pieces(background: BackgroundEEG, is_test: np.ndarray, n_samples: int, seed: int,
                      test_fraction: float = 0.25) -> np.ndarray:
    """One background piece (channels, n_samples) per trial: training trials take theirs from the
    first ``1 - test_fraction`` of the recording, test trials from the rest, so no test trial shares
    real EEG with a training trial. Pieces start at random offsets and wrap around within their part
    when the part is shorter than a trial (the 60 s embedded recording)."""
    length = background.data.shape[1]
    cut = int(round(length * (1.0 - test_fraction)))
    parts = {False: background.data[:, :cut], True: background.data[:, cut:]}
    rng = np.random.default_rng(seed)
    out = np.empty((len(is_test), background.data.shape[0], n_samples), dtype=np.float32)
    for i, test in enumerate(is_test):
        part = parts[bool(test)]
        start = int(rng.integers(part.shape[1]))
        out[i] = part[:, (start + np.arange(n_samples)) % part.shape[1]]
    return out


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
    from affectlab.data.generate.paired import generate_paired

    coupling = cfg.coupling if coupling is None else float(coupling)
    face_model = face_model or FaceModel.load(run.data_root)
    is_test = split_trials(cfg.n_subjects, cfg.trials_per_emotion, run.seed)
    n_samples = int(round(cfg.trial_seconds * SFREQ))
    pieces = background_pieces(background, is_test, n_samples, run.seed)
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
    n_f = len(frames)
    trial = torch.arange(n_trials).repeat_interleave(n_f)
    frame = torch.as_tensor(frames).repeat(n_trials)
    frames_per_segment = int(round(cfg.segment_seconds * FPS))
    n_segments = math.ceil(n_frames / frames_per_segment)
    emg_snr_db = 20.0 * math.log10(coupling) if coupling > 0 else -math.inf
    data_fields = ("n_subjects", "trials_per_emotion", "trial_seconds", "window_seconds", "frame_step")
    description = {"cfg": {k: getattr(cfg, k) for k in data_fields},
                   "coupling": coupling, "seed": run.seed, "background": background.fingerprint,
                   "face_model": face_model.source_sha256}
    source = (f"{background.source}; generated: EMG and emotion rhythms (affectlab.data.generate.eeg.simulate_eeg), "
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
              "seed": run.seed, "n_subjects": cfg.n_subjects},
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


# ================================================================================================
# 3. stage 1: E_e with cross-entropy, E_r (or a baseline) with one-sided InfoNCE
# ================================================================================================


class EmotionLogits(nn.Module):
    """``E_e`` with the trainer's dict output: ``logits`` for ``L_emo`` = CE (Sec. 3.0.7)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.encoder(x)
        return {"logits": out.logits, "features": out.features}


class ContrastiveStage(nn.Module):
    """A content encoder and its projection to the 53-d vision latent, trained with InfoNCE only.

    The trainer always adds its task loss (here MSE on ``pred``); ``pred`` is therefore the
    *detached* projection, so that MSE is logged (``task_loss``) but sends no gradient: the only
    objective is the ``info_nce`` term on ``projection`` (Sec. 3.0.7, ``L_Info``).
    """

    def __init__(self, encoder: EEGContentEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        projection = self.encoder.project_to_vision(self.encoder(x))
        return {"pred": projection.detach(), "projection": projection}


LossTerm = Callable[[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor], int], torch.Tensor]


def info_nce_term(temperature: float = 1.0) -> LossTerm:
    """``L_Info`` as a trainer term: one-sided InfoNCE of the projections against the batch's ``z_v``."""

    def term(outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor], epoch: int) -> torch.Tensor:
        return info_nce_loss(outputs["projection"], batch["y"], temperature)

    return term


def _run_key(data: ChapterData, cfg: ChapterConfig, run: RunConfig, **extra: Any) -> dict[str, Any]:
    return {"chapter": CHAPTER, "data": data.info.get("hash"), "init_seed": run.seed, **extra}


def train_emotion_encoder(data: ChapterData, cfg: ChapterConfig, run: RunConfig) -> tuple[EEGEmotionEncoder, FitResult]:
    """Stage 1, ``E_e`` (Sec. 3.0.5, 3.0.7): cross-entropy on the five emotions; train-or-load."""
    torch.manual_seed(run.seed)
    encoder = EEGEmotionEncoder(n_chans=len(data.ch_names))
    result = fit(EmotionLogits(encoder), data.tensor_data("train", "emotion", cfg.batch_size), None,
                 train_config(cfg, run, cfg.emotion_epochs, "classification"),
                 key=_run_key(data, cfg, run, stage="1-emotion", model="E_e"),
                 name=f"eeg2face-Ee-c{data.coupling:g}", device=run.device)
    return encoder.eval(), result


def train_content_encoder(name: str, data: ChapterData, cfg: ChapterConfig, run: RunConfig,
                          epochs: int | None = None) -> tuple[EEGContentEncoder, FitResult]:
    """Stage 1, ``E_r`` or a Table 4.1 baseline: one-sided InfoNCE to ``z_v`` (Sec. 3.0.7)."""
    torch.manual_seed(run.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # braindecode import and constructor warnings
        encoder = build_content_encoder(name, n_chans=len(data.ch_names), n_times=cfg.window_samples, sfreq=SFREQ)
    result = fit(ContrastiveStage(encoder), data.tensor_data("train", "z_v", cfg.batch_size), None,
                 train_config(cfg, run, epochs or cfg.stage1_epochs, "regression"),
                 key=_run_key(data, cfg, run, stage="1-content", model=name, temperature=cfg.temperature),
                 name=f"eeg2face-Er-{name}-c{data.coupling:g}", device=run.device,
                 extra_terms={"info_nce": info_nce_term(cfg.temperature)})
    return encoder.eval(), result


# ================================================================================================
# 4. stage 2: heads f and g on the frozen encoders, 0.7 MSE(z_v) + 0.3 L_vertex
# ================================================================================================


def stage2_mse(z_hat: torch.Tensor, z_v: torch.Tensor) -> torch.Tensor:
    """``L_mse`` (Sec. 3.0.7): mean squared error between predicted and vision latents."""
    return F.mse_loss(z_hat, z_v)


def stage2_vertex(z_hat: torch.Tensor, z_v: torch.Tensor, latent: VisionLatent) -> torch.Tensor:
    """``L_vertex`` (Sec. 3.0.7): distance between ``F(z_hat)`` and ``F(z_v)``, as the mean
    per-vertex Euclidean distance in mm (``vertex_loss(..., reduction="mean_vertex")``)."""
    return vertex_loss(latent.vertices(z_hat), latent.vertices(z_v), reduction="mean_vertex")


def stage2_loss(z_hat: torch.Tensor, z_v: torch.Tensor, latent: VisionLatent,
                weights: tuple[float, float] = LOSS_WEIGHTS) -> dict[str, torch.Tensor]:
    """Eq. 3.1: ``L = lambda_1 L_mse + lambda_2 L_vertex`` with (0.7, 0.3) (Sec. 3.0.8).

    Returns the weighted parts ``mse_zv`` and ``vertex`` and their sum ``total``.
    """
    parts = {"mse_zv": weights[0] * stage2_mse(z_hat, z_v), "vertex": weights[1] * stage2_vertex(z_hat, z_v, latent)}
    parts["total"] = parts["mse_zv"] + parts["vertex"]
    return parts


def stage2_terms(latent: VisionLatent, weights: tuple[float, float] = LOSS_WEIGHTS) -> dict[str, LossTerm]:
    """The two weighted parts of :func:`stage2_loss` as trainer terms ``term(outputs, batch, epoch)``."""
    return {
        "mse_zv": lambda outputs, batch, epoch: weights[0] * stage2_mse(outputs["z_v_hat"], batch["y"]),
        "vertex": lambda outputs, batch, epoch: weights[1] * stage2_vertex(outputs["z_v_hat"], batch["y"], latent),
    }


class HeadsOnFeatures(nn.Module):
    """Stage 2 on the frozen encoders' outputs ``x = [z_r | z_bar]`` (B, d + 5): the heads' training
    forward ``f(z_r + m g(z_bar))`` with the 50 % code drop. The encoders are frozen and in eval mode
    (deterministic), so their outputs are computed once (:func:`encode_features`) instead of every
    step; the gradients of the heads are the same. ``pred`` is detached as in
    :class:`ContrastiveStage`: the objective is exactly the two terms of :func:`stage2_terms`."""

    def __init__(self, heads: EEG2FaceHeads) -> None:
        super().__init__()
        self.heads = heads

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        d = self.heads.content_dim
        z_hat = self.heads(x[:, :d], x[:, d:])
        return {"pred": z_hat.detach(), "z_v_hat": z_hat}


@torch.no_grad()
def encode_features(content_encoder: nn.Module, emotion_encoder: nn.Module, eeg: torch.Tensor,
                    device: torch.device, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """``z_r`` (N, d), the emotion code ``z_bar`` (N, 5) and the emotion logits of EEG windows."""
    content_encoder.eval().to(device)
    emotion_encoder.eval().to(device)
    z_r, code, logits = [], [], []
    for start in range(0, len(eeg), batch_size):
        x = eeg[start:start + batch_size].to(device)
        z_r.append(content_encoder(x).cpu())
        out = emotion_encoder(x)
        code.append(out.code.cpu())
        logits.append(out.logits.cpu())
    return {"z_r": torch.cat(z_r), "code": torch.cat(code), "logits": torch.cat(logits)}


def train_heads(content_encoder: EEGContentEncoder, emotion_encoder: EEGEmotionEncoder, data: ChapterData,
                cfg: ChapterConfig, run: RunConfig, encoder_name: str, stage1_hashes: Sequence[str],
                epochs: int | None = None) -> tuple[EEG2Face, FitResult, dict[str, torch.Tensor]]:
    """Stage 2 (Sec. 3.0.7): freeze ``E_r``/``E_e``, train ``f``/``g`` with Eq. 3.1; train-or-load.

    Returns the assembled :class:`EEG2Face` (frozen encoders + trained heads, eval mode), the fit
    result and the frozen encoders' outputs on every sample (``z_r``, ``code``, ``logits``).
    """
    features = encode_features(content_encoder, emotion_encoder, data.eeg, run.device)
    x = torch.cat([features["z_r"], features["code"]], dim=1)
    train_data = TensorData(x[data.train], data.z_v[data.train], batch_size=cfg.batch_size,
                            name=f"eeg2face-stage2-{encoder_name}-c{data.coupling:g}")
    torch.manual_seed(run.seed)
    heads = EEG2FaceHeads(content_dim=content_encoder.embedding_dim, n_emotions=len(EMOTIONS),
                          drop_prob=cfg.drop_prob, seed=run.seed)
    latent = data.latent.to(run.device)
    result = fit(HeadsOnFeatures(heads), train_data, None,
                 train_config(cfg, run, epochs or cfg.stage2_epochs, "regression"),
                 key=_run_key(data, cfg, run, stage="2-heads", model=encoder_name, weights=list(LOSS_WEIGHTS),
                              drop_prob=cfg.drop_prob, stage1=list(stage1_hashes)),
                 name=f"eeg2face-heads-{encoder_name}-c{data.coupling:g}", device=run.device,
                 extra_terms=stage2_terms(latent))
    data.latent.to("cpu")
    model = EEG2Face(content_encoder, emotion_encoder, heads)
    model.freeze_encoders()
    return model.eval(), result, features


# ================================================================================================
# 5. evaluation: LVE / MCE / EVE with CIs over test segments, emotion accuracy, mean-face baselines
# ================================================================================================

METRIC_NAMES = ("LVE", "MCE", "EVE")


def segment_vertex_errors(z_hat: torch.Tensor, data: ChapterData, mask: torch.Tensor) -> pd.DataFrame:
    """Per test segment: LVE, MCE and EVE (mm) of the predicted latents ``z_hat`` (one row per
    sample of ``mask``) against the TRUE meshes of those frames (their exact blendshapes and jaw).

    Each metric is the thesis's frame-wise maximum L2 error over the region's vertices averaged over
    the segment's frames (:func:`affectlab.metrics.lip_vertex_error` and siblings); returns one row
    per segment with its emotion.
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
    """Mean over test segments of each metric and its 95 % percentile-bootstrap CI (segments
    resampled within each emotion). Keys ``LVE``, ``LVE_low``, ``LVE_high``, ... (mm)."""
    out: dict[str, float] = {"segments": float(len(per_segment))}
    labels = per_segment["emotion"].to_numpy()
    for name in METRIC_NAMES:
        point, low, high = metrics.bootstrap_ci(_mean_of_values, labels, per_segment[name].to_numpy(),
                                                n_resamples=n_bootstrap, seed=seed)
        out.update({name: point, f"{name}_low": low, f"{name}_high": high})
    return out


def mean_face_latents(data: ChapterData, per_emotion: bool = False) -> torch.Tensor:
    """Baselines for the test samples: the mean training ``z_v`` (the mean face), or with
    ``per_emotion`` the mean training ``z_v`` of each sample's TRUE emotion (an oracle that knows
    the label: what emotion alone, without any frame-level content, can explain)."""
    z_train, e_train = data.z_v[data.train], data.emotion[data.train]
    e_test = data.emotion[data.test]
    if not per_emotion:
        return z_train.mean(0).expand(len(e_test), -1).clone()
    means = torch.stack([z_train[e_train == k].mean(0) for k in range(len(EMOTIONS))])
    return means[e_test]


def latent_roundtrip(data: ChapterData) -> torch.Tensor:
    """``z_v`` of the test samples themselves: the floor of the errors (the PCA's dropped variance)."""
    return data.z_v[data.test]


def emotion_accuracy(logits: torch.Tensor, labels: torch.Tensor, n_bootstrap: int, seed: int) -> dict[str, float]:
    """Accuracy of ``E_e`` on test windows with its stratified bootstrap CI, chance (1 / classes)
    and the majority-class rate of the test labels."""
    y = labels.numpy()
    pred = logits.argmax(1).numpy()
    point, low, high = metrics.bootstrap_ci(metrics.accuracy, y, pred, n_resamples=n_bootstrap, seed=seed)
    majority = float(np.bincount(y, minlength=len(EMOTIONS)).max() / len(y))
    return {"accuracy": point, "accuracy_low": low, "accuracy_high": high, "chance": 1.0 / len(EMOTIONS),
            "majority_rate": majority, "windows": float(len(y))}


def predict_test_latents(model: EEG2Face, features: Mapping[str, torch.Tensor],
                         data: ChapterData) -> dict[str, torch.Tensor]:
    """The thesis's first two inference modes (Sec. 3.0.9) on the test samples:
    ``content_only`` = ``f(z_r)`` and ``emotion_enhanced`` = ``f(z_r + g(z_bar))``."""
    z_r, code = features["z_r"][data.test], features["code"][data.test]
    heads = model.heads.cpu().eval()
    with torch.no_grad():
        return {"content_only": heads.content_only(z_r), "emotion_enhanced": heads.with_code(z_r, code)}


def baseline_rows(data: ChapterData, cfg: ChapterConfig, run: RunConfig) -> list[dict[str, Any]]:
    """LVE / MCE / EVE of the reference predictors: mean face, per-emotion mean face (oracle label)
    and the z_v round trip (PCA floor)."""
    rows = []
    for name, z_hat in (("mean face (training mean z_v)", mean_face_latents(data)),
                        ("per-emotion mean face (true label: oracle)", mean_face_latents(data, per_emotion=True)),
                        ("z_v itself (PCA floor)", latent_roundtrip(data))):
        per_segment = segment_vertex_errors(z_hat, data, data.test)
        rows.append({"method": name, "mode": "baseline", **summarise_errors(per_segment, cfg.n_bootstrap, run.seed)})
    return rows


# ================================================================================================
# 6. experiments: one encoder end to end, Table 4.1, the coupling sweep
# ================================================================================================


@dataclasses.dataclass
class PipelineResult:
    """One content encoder through both stages: the assembled model, the frozen encoders' outputs
    on every sample, the three fits, and the per-segment test errors of each inference mode."""

    encoder_name: str
    model: EEG2Face
    features: dict[str, torch.Tensor]
    fits: dict[str, FitResult]
    per_segment: dict[str, pd.DataFrame]
    rows: list[dict[str, Any]]
    latents: dict[str, torch.Tensor]


def run_pipeline(encoder_name: str, data: ChapterData, cfg: ChapterConfig, run: RunConfig,
                 emotion: tuple[EEGEmotionEncoder, FitResult] | None = None,
                 stage1_epochs: int | None = None, stage2_epochs: int | None = None) -> PipelineResult:
    """Stage 1 (``E_e`` unless given, and the content encoder ``encoder_name``), stage 2 (heads),
    then LVE / MCE / EVE on the test segments for content-only and emotion-enhanced inference."""
    emotion_encoder, emotion_fit = emotion if emotion is not None else train_emotion_encoder(data, cfg, run)
    content_encoder, content_fit = train_content_encoder(encoder_name, data, cfg, run, stage1_epochs)
    model, heads_fit, features = train_heads(content_encoder, emotion_encoder, data, cfg, run, encoder_name,
                                             [content_fit.config_hash, emotion_fit.config_hash], stage2_epochs)
    latents = predict_test_latents(model, features, data)
    per_segment = {mode: segment_vertex_errors(z, data, data.test) for mode, z in latents.items()}
    rows = [{"method": ENCODER_LABELS[encoder_name], "encoder": encoder_name, "mode": mode,
             **summarise_errors(table, cfg.n_bootstrap, run.seed)} for mode, table in per_segment.items()]
    fits = {"E_e": emotion_fit, "content": content_fit, "heads": heads_fit}
    return PipelineResult(encoder_name, model, features, fits, per_segment, rows, latents)


@dataclasses.dataclass
class Table41Result:
    """Every encoder of Table 4.1 trained on the same data with the same ``E_e``, heads and losses."""

    pipelines: dict[str, PipelineResult]
    baselines: pd.DataFrame
    emotion: dict[str, float]
    errors: pd.DataFrame

    @property
    def ours(self) -> PipelineResult:
        return self.pipelines["eeg2face"] if "eeg2face" in self.pipelines else next(iter(self.pipelines.values()))


def run_table_4_1(data: ChapterData, cfg: ChapterConfig, run: RunConfig) -> Table41Result:
    """Table 4.1: ``E_e`` once, then every encoder of ``cfg.encoders`` through both stages."""
    emotion = train_emotion_encoder(data, cfg, run)
    pipelines = {name: run_pipeline(name, data, cfg, run, emotion) for name in cfg.encoders}
    first = next(iter(pipelines.values()))
    accuracy = emotion_accuracy(first.features["logits"][data.test], data.emotion[data.test], cfg.n_bootstrap, run.seed)
    rows = [row for p in pipelines.values() for row in p.rows]
    return Table41Result(pipelines, pd.DataFrame(baseline_rows(data, cfg, run)), accuracy, pd.DataFrame(rows))


def _with_ci(row: Mapping[str, Any], name: str) -> str:
    return f"{row[name]:.3f} [{row[name + '_low']:.3f}, {row[name + '_high']:.3f}]"


def table_4_1_frame(result: Table41Result, mode: str = "emotion_enhanced") -> pd.DataFrame:
    """The chapter's Table 4.1: ours (mean over test segments [95 % CI], mm) beside the thesis's
    numbers, then the baselines. ``mode``: "emotion_enhanced" (the full model) or "content_only"."""
    rows = []
    for _, r in result.errors[result.errors["mode"] == mode].iterrows():
        paper = PAPER_TABLE_4_1[r["encoder"]]
        rows.append({"method": r["method"], **{f"{m} ours, mm [95% CI]": _with_ci(r, m) for m in METRIC_NAMES},
                     **{f"{m} thesis": p for m, p in zip(METRIC_NAMES, paper)}})
    for _, r in result.baselines.iterrows():
        rows.append({"method": r["method"], **{f"{m} ours, mm [95% CI]": _with_ci(r, m) for m in METRIC_NAMES},
                     **{f"{m} thesis": np.nan for m in METRIC_NAMES}})
    return pd.DataFrame(rows).set_index("method")


def emotion_accuracy_frame(result: Table41Result) -> pd.DataFrame:
    """``E_e`` accuracy on the test windows against chance, as a one-row table."""
    e = result.emotion
    return pd.DataFrame([{
        "E_e accuracy (%)": 100 * e["accuracy"],
        "95% CI (%)": f"[{100 * e['accuracy_low']:.1f}, {100 * e['accuracy_high']:.1f}]",
        "chance (%)": 100 * e["chance"],
        "majority class (%)": 100 * e["majority_rate"],
        "test windows": int(e["windows"]),
    }], index=["E_e, 5 emotions"])


def run_coupling_sweep(cfg: ChapterConfig, run: RunConfig, background: "BackgroundEEG",
                       encoder_name: str = "eeg2face", face_model: FaceModel | None = None) -> pd.DataFrame:
    """Rebuild the paired set at each ``cfg.sweep_couplings`` level (same trajectories, backgrounds
    and seeds: only the planted EMG-to-face coupling changes), retrain ``E_e``, the encoder and the
    heads (``cfg.sweep_epochs`` epochs) and measure both inference modes and the baselines.

    Returns one row per (coupling, method, mode) with the metrics, CIs and the EMG SNR in dB.
    """
    rows = []
    for coupling in cfg.sweep_couplings:
        data = build_chapter_data(cfg, run, background, coupling=coupling, face_model=face_model)
        sweep_cfg = dataclasses.replace(cfg, emotion_epochs=cfg.sweep_epochs)
        result = run_pipeline(encoder_name, data, sweep_cfg, run, stage1_epochs=cfg.sweep_epochs)
        accuracy = emotion_accuracy(result.features["logits"][data.test], data.emotion[data.test], cfg.n_bootstrap,
                                    run.seed)
        for row in result.rows + baseline_rows(data, cfg, run):
            rows.append({"coupling": coupling, "snr_db": data.info.get("emg_snr_db", np.nan),
                         "E_e accuracy": accuracy["accuracy"], **row})
    return pd.DataFrame(rows)


# ================================================================================================
# 7. figures
# ================================================================================================

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


def reconstruction_figure(data: ChapterData, result: PipelineResult, trial: int | None = None, n_frames: int = 8,
                          size: int = 96) -> Figure:
    """Figs. 4-1 / 4-3: frames of one test trial; rows = the generated video frame, the exact
    ``z_v`` mesh (what EMOCA's pseudo-ground-truth stands for), EEG2Face emotion-enhanced and
    content-only reconstructions from the EEG alone."""
    test_idx = torch.nonzero(data.test).flatten()
    trials = torch.unique(data.trial[test_idx])
    if trial is None:
        trial = int(trials[0])
    if trial not in trials.tolist():
        raise ValueError(f"trial {trial} is not a test trial; test trials: {trials.tolist()}")
    in_trial = torch.nonzero(data.trial[test_idx] == trial).flatten()
    pick = in_trial[torch.linspace(0, len(in_trial) - 1, min(n_frames, len(in_trial))).round().long()]
    samples = test_idx[pick]
    frames = render_trial_frames(data, trial, data.frame[samples], size)
    rows = [("video frame\n(generated)", frames),
            ("exact z_v mesh", render_latents(data.latent, data.z_v[samples], size)),
            ("EEG2Face\nemotion-enhanced", render_latents(data.latent, result.latents["emotion_enhanced"][pick], size)),
            ("EEG2Face\ncontent-only", render_latents(data.latent, result.latents["content_only"][pick], size))]
    times = [f"t = {float(f) / FPS:.1f} s" for f in data.frame[samples]]
    emotion = EMOTIONS[int(data.emotion[samples[0]])]
    return _image_rows(rows, times, f"{ENCODER_LABELS[result.encoder_name]}: test trial {trial} ({emotion}); "
                                    f"{data_label(data)}")


def emotion_control_figure(data: ChapterData, result: PipelineResult, sample: int | None = None, steps: int = 5,
                           size: int = 96) -> Figure:
    """Fig. 4-2: one test EEG window decoded with a chosen emotion code. Top rows: neutral ->
    happiness / sadness / anger (``(1 - t) z_N + t z_E``); bottom rows: transitions through neutral
    (happy - neutral - sad, angry - neutral - sad, happy - neutral - angry)."""
    test_idx = torch.nonzero(data.test).flatten()
    sample = int(test_idx[len(test_idx) // 2]) if sample is None else int(sample)
    x = data.eeg[sample:sample + 1]
    model = result.model.cpu().eval()
    ts = torch.linspace(0, 1, steps).tolist()
    half = torch.linspace(0, 1, steps // 2 + 1).tolist()
    rows = []
    with torch.no_grad():
        for target in ("Happiness", "Sadness", "Anger"):
            z = model.interpolate(x, "Neutral", target, ts)[:, 0]
            rows.append((f"N -> {target[0]}", render_latents(data.latent, z, size)))
        for a, b in (("Happiness", "Sadness"), ("Anger", "Sadness"), ("Happiness", "Anger")):
            first = model.interpolate(x, a, "Neutral", half)[:, 0]
            second = model.interpolate(x, "Neutral", b, half[1:])[:, 0]
            rows.append((f"{a[0]} - N - {b[0]}", render_latents(data.latent, torch.cat([first, second]), size)))
    titles = [f"t = {t:.2f}" for t in ts]
    return _image_rows(rows, titles, f"{ENCODER_LABELS[result.encoder_name]}: emotion control f(z_r + g(z_c)) on "
                                     f"test window {sample}; {data_label(data)}")


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


def coupling_sweep_figure(sweep: pd.DataFrame, title: str) -> Figure:
    """LVE / MCE / EVE (mm, 95 % CI) against the planted EMG coupling, for both inference modes and
    the mean-face baselines (dashed)."""
    fig = Figure(figsize=(12.5, 3.8), layout="constrained")
    axes = fig.subplots(1, len(METRIC_NAMES))
    series = [(("emotion_enhanced", None), "EEG2Face emotion-enhanced", "-o"),
              (("content_only", None), "EEG2Face content-only", "-s"),
              (("baseline", "mean face (training mean z_v)"), "mean face", "--"),
              (("baseline", "per-emotion mean face (true label: oracle)"), "per-emotion mean face (oracle)", ":")]
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


def training_history(result: PipelineResult) -> pd.DataFrame:
    """The per-epoch objectives of the three fits side by side (epochs of different lengths)."""
    parts = []
    for fit_name, column, label in (("E_e", "task_loss", "E_e cross-entropy"),
                                    ("content", "info_nce", "E_r InfoNCE"),
                                    ("heads", "mse_zv", "heads 0.7 MSE(z_v)"),
                                    ("heads", "vertex", "heads 0.3 L_vertex (mm)")):
        history = result.fits[fit_name].history
        if column in history.columns:
            parts.append(history.set_index("epoch")[[column]].rename(columns={column: label}))
    return pd.concat(parts, axis=1).reset_index()


def data_label(data: ChapterData) -> str:
    """Short text for figure titles: which EEG background, coupling and seed."""
    background = "real EEGLAB background" if data.info.get("real_background") else "generated background"
    return f"EAV-like set ({background}), coupling {data.coupling:g}, seed {data.info.get('seed')}"


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


# ================================================================================================
# 8. summaries for the text
# ================================================================================================


def sweep_frame(sweep: pd.DataFrame, metric: str = "LVE") -> pd.DataFrame:
    """The coupling sweep as a table: one row per coupling, one column per predictor, values
    "mean [95 % CI]" of ``metric`` in mm, plus the EMG SNR in dB and ``E_e``'s test accuracy."""
    if metric not in METRIC_NAMES:
        raise ValueError(f"metric must be one of {METRIC_NAMES}; got {metric!r}")
    labels = {"emotion_enhanced": "EEG2Face emotion-enhanced", "content_only": "EEG2Face content-only",
              "mean face (training mean z_v)": "mean face",
              "per-emotion mean face (true label: oracle)": "per-emotion mean face (oracle)"}
    rows = []
    for coupling, group in sweep.groupby("coupling", sort=False):
        row: dict[str, Any] = {"coupling": coupling, "face-locked : unrelated EMG (dB)": group["snr_db"].iloc[0],
                               "E_e accuracy (%)": 100 * group["E_e accuracy"].iloc[0]}
        for _, r in group.iterrows():
            key = labels.get(r["mode"]) or labels.get(r["method"])
            if key is not None:
                row[f"{key}, {metric} (mm)"] = _with_ci(r, metric)
        rows.append(row)
    return pd.DataFrame(rows).set_index("coupling").sort_index(ascending=False)


def _compare(a: Mapping[str, Any], b: Mapping[str, Any], metric: str) -> str:
    """'lower than' / 'higher than' / 'not distinguishable from' by the two 95 % CIs."""
    if a[f"{metric}_high"] < b[f"{metric}_low"]:
        return "lower than"
    if a[f"{metric}_low"] > b[f"{metric}_high"]:
        return "higher than"
    return "not distinguishable from (overlapping 95% CIs)"


def findings(result: Table41Result, sweep: pd.DataFrame | None = None) -> list[str]:
    """Sentences stating what this run measured (every number computed here, none typed in)."""
    out = []
    errors = result.errors[result.errors["mode"] == "emotion_enhanced"].set_index("encoder")
    base = result.baselines.set_index("method")
    mean_face = base.loc["mean face (training mean z_v)"]
    oracle = base.loc["per-emotion mean face (true label: oracle)"]
    for encoder, r in errors.iterrows():
        gains = ", ".join(f"{m} {r[m]:.2f} mm ({100 * (r[m] / mean_face[m] - 1):+.0f}% vs the mean face's "
                          f"{mean_face[m]:.2f}; {_compare(r, mean_face, m)})" for m in METRIC_NAMES)
        out.append(f"{ENCODER_LABELS[encoder]}: {gains}.")
    ranking = errors["LVE"].sort_values().index.tolist()
    thesis = sorted(PAPER_TABLE_4_1, key=lambda k: PAPER_TABLE_4_1[k][0])
    thesis = [k for k in thesis if k in ranking]
    out.append("Ranking by LVE here: " + " < ".join(ENCODER_LABELS[k] for k in ranking) + "; in the thesis: "
               + " < ".join(ENCODER_LABELS[k] for k in thesis) + ".")
    out.append(f"Per-emotion mean face (knowing the true emotion, no frame-level content): LVE {oracle['LVE']:.2f}, "
               f"MCE {oracle['MCE']:.2f}, EVE {oracle['EVE']:.2f} mm.")
    e = result.emotion
    verdict = "above" if e["accuracy_low"] > e["chance"] else "not distinguishable from"
    out.append(f"E_e recognises the five emotions in {100 * e['accuracy']:.1f}% of test windows "
               f"(95% CI {100 * e['accuracy_low']:.1f}-{100 * e['accuracy_high']:.1f}%), {verdict} chance "
               f"({100 * e['chance']:.0f}%).")
    if "eeg2face" in result.pipelines:
        rows = result.errors[result.errors["encoder"] == "eeg2face"].set_index("mode")
        out.append("E_r emotion-enhanced vs content-only: " + ", ".join(
            f"{m} {rows.loc['emotion_enhanced', m]:.2f} vs {rows.loc['content_only', m]:.2f} mm" for m in METRIC_NAMES)
            + ".")
    if sweep is not None and not sweep.empty:
        model_rows = sweep[sweep["mode"] == "content_only"].sort_values("coupling")
        mean_rows = sweep[sweep["method"] == "mean face (training mean z_v)"].set_index("coupling")
        series = ", ".join(f"{r['coupling']:g}: {r['LVE']:.2f} mm" for _, r in model_rows.iterrows())
        out.append(f"Coupling sweep, content-only LVE by coupling: {series} (mean face "
                   f"{float(mean_rows['LVE'].mean()):.2f} mm).")
        zero = model_rows[model_rows["coupling"] == 0.0]
        if not zero.empty:
            z, m = zero.iloc[0], mean_rows.loc[0.0]
            out.append(f"With no coupling, content-only LVE is {_compare(z, m, 'LVE')} the mean face "
                       f"({z['LVE']:.2f} vs {m['LVE']:.2f} mm) and EVE is {_compare(z, m, 'EVE')} it "
                       f"({z['EVE']:.2f} vs {m['EVE']:.2f} mm).")
    return out
