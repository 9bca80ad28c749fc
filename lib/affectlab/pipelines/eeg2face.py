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
   windows with their exact ``z_v`` and the ``z_v`` of the same frames re-posed into each emotion,
   the stand-in for Sec. 3.0.6's retargeted faces).
3. Stage 1 (Sec. 3.0.7) - :func:`train_emotion_encoder` (``E_e``, cross-entropy) and
   :func:`train_content_encoder` (``E_r`` or a Table 4.1 baseline, one-sided InfoNCE).
4. Stage 2 (Sec. 3.0.7, Eq. 3.1) - :func:`stage2_loss` (``0.7 MSE(z_v) + 0.3 L_vertex``),
   :func:`stage2_training_rows` (``E_e``-code rows + re-posed rows with one-hot codes, Sec. 3.0.6)
   and :func:`train_heads` (heads ``f``, ``g`` on frozen encoders, emotion code dropped for 50 %).
5. Evaluation (Sec. 4.0.2) - :func:`segment_vertex_errors` (LVE / MCE / EVE in mm per test
   segment), :func:`summarise_errors` and :func:`difference_ci` (CIs resampling whole test trials),
   :func:`emotion_accuracy` (``E_e`` against chance, per window and per trial), the references
   (:func:`reference_latents`: mean face, per-emotion mean face of the true and of
   ``E_e``'s predicted emotion, ridge ceilings on the planted EMG).
6. Experiments - :func:`run_pipeline` (one encoder end to end), :func:`run_table_4_1` (all encoders
   beside the thesis's numbers) and :func:`run_coupling_sweep` (errors as the planted EMG-to-face
   coupling falls to zero).
7. Figures - reconstructions (Figs. 4-1 / 4-3), emotion control (Fig. 4-2, and measured:
   :func:`emotion_control_frame`), error maps, the sweep.
8. Text - :func:`deviations`, :func:`table_caption`, :func:`findings`.

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

from affectlab import stats
from affectlab import metrics
from affectlab.config import ConfigError, FieldCheck, RunConfig, check_profile, config_hash, is_int, profile_config
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
    dropped in stage 2 (0.5, Sec. 3.0.7). ``n_bootstrap``: resamples of every CI (whole test trials are
    resampled). ``reposed_per_frame``: re-posed faces of Sec. 3.0.6 added to stage 2 per training
    frame (the frame re-posed into an emotion on the upper face, paired with that emotion's one-hot
    code; 5 = all five emotions, 0 = none).
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
    reposed_per_frame: int = 5

    def __post_init__(self) -> None:
        check_profile(self.profile)
        check = FieldCheck(self, "ChapterConfig")
        check.ints("n_subjects", "frame_step", "frame_size", "stage1_epochs", "emotion_epochs", "stage2_epochs",
                   "sweep_epochs", "batch_size", "n_bootstrap")
        check.require(is_int(self.trials_per_emotion) and self.trials_per_emotion >= 4 and self.trials_per_emotion % 4 == 0,
                      "trials_per_emotion", "a positive multiple of 4 (the 6:2 split)")
        check.require(self.window_seconds * SFREQ >= 100, "window_seconds",
                      "at least 1.0 s (100 samples: the baselines' time kernels and pooling)")
        check.require(self.trial_seconds >= max(self.segment_seconds, self.window_seconds + 1.0), "trial_seconds",
                      "at least one segment and one window + 1 s long")
        check.require(self.coupling >= 0 and all(c >= 0 for c in self.sweep_couplings), "coupling",
                      "a number >= 0 (and every sweep level too)")
        check.require(bool(self.encoders) and all(e in ENCODER_NAMES for e in self.encoders), "encoders",
                      f"a non-empty subset of {ENCODER_NAMES}")
        check.numbers("temperature")
        check.require(0.0 <= self.drop_prob < 1.0, "drop_prob", "in [0, 1)")
        check.require(is_int(self.reposed_per_frame) and 0 <= self.reposed_per_frame <= len(EMOTIONS),
                      "reposed_per_frame", f"an int in [0, {len(EMOTIONS)}]")

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * SFREQ))


def chapter_config(profile: str, **overrides: Any) -> ChapterConfig:
    """The chapter's sizes for ``profile``; ``overrides`` replace single fields (for tests).

    - smoke: one subject, 8 s trials, one short epoch per model: proves every cell runs.
    - quick: 4 subjects x 5 emotions x 8 trials of 20 s (every 8th frame: 3,840 samples) on a 2-core
      CPU, all five encoders, 6 epochs per encoder, one re-posed face per training frame, three
      coupling levels (coupling 1 reuses the main runs); the measured wall time is printed at the
      end of the chapter (the budget is 20 minutes on two cores).
    - paper: the thesis's sizes (20 subjects, 20 trials per emotion, 400 / 300 epochs): for a GPU
      (every 2nd frame: ~190k windows, ~2.3 GB of float32 EEG in memory).
    """
    table = {
        "smoke": dict(n_subjects=1, trials_per_emotion=4, trial_seconds=8.0, window_seconds=1.0, frame_step=5,
                      segment_seconds=4.0, frame_size=48, coupling=1.0, sweep_couplings=(1.0, 0.0),
                      encoders=ENCODER_NAMES, stage1_epochs=1, emotion_epochs=1, stage2_epochs=1, sweep_epochs=1,
                      steps_per_epoch=1, n_bootstrap=100, reposed_per_frame=1),
        "quick": dict(n_subjects=4, trials_per_emotion=8, trial_seconds=20.0, window_seconds=1.0, frame_step=8,
                      segment_seconds=5.0, frame_size=64, coupling=1.0, sweep_couplings=(1.0, 0.25, 0.0),
                      encoders=ENCODER_NAMES, stage1_epochs=6, emotion_epochs=6, stage2_epochs=10,
                      sweep_epochs=6, n_bootstrap=1000, reposed_per_frame=1),
        "paper": dict(n_subjects=20, trials_per_emotion=20, trial_seconds=20.0, window_seconds=1.0, frame_step=2,
                      segment_seconds=5.0, frame_size=96, coupling=1.0,
                      sweep_couplings=(2.0, 1.0, 0.5, 0.25, 0.125, 0.0), encoders=ENCODER_NAMES,
                      stage1_epochs=400, emotion_epochs=400, stage2_epochs=300, sweep_epochs=100, n_bootstrap=2000),
    }
    return profile_config(ChapterConfig, profile, table, overrides)


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

    def vertex_difference(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        """``F(z_a) - F(z_b)`` (B, V, 3) in mm with one product with the blendshape basis: the meshes
        differ only through their effective blendshape coefficients (identity and template cancel).
        Differentiable; equal to ``vertices(z_a) - vertices(z_b)``."""
        fm = self.face_model
        psi_a, jaw_a = self.decode(z_a)
        psi_b, jaw_b = self.decode(z_b)
        delta = fm.effective_expression(psi_a, jaw_a) - fm.effective_expression(psi_b, jaw_b)
        basis = fm.expression_basis.reshape(fm.n_expression, -1)
        return (delta @ basis).reshape(len(delta), fm.n_vertices, 3)

    @property
    def dropped_variance(self) -> float:
        """Fraction of the training blendshape variance outside the 50 kept components."""
        return max(0.0, float(1.0 - self.explained_variance_ratio.sum()))


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

    def __len__(self) -> int:
        return len(self.eeg)

    @property
    def emg_channels(self) -> dict[str, list[str]]:
        """The EEG channels the planted EMG reaches: ``mouth`` (temporal) and ``brow`` (frontal)."""
        groups = self.paired.meta.get("eeg_meta", {}).get("emg_channels") or [[], []]
        return {"mouth": list(groups[0]), "brow": list(groups[1]) if len(groups) > 1 else []}

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
    from affectlab.data.generate.paired import generate_paired, repose_upper_face

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
              "seed": run.seed, "n_subjects": cfg.n_subjects, "background_seconds": background.seconds},
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
    per-vertex Euclidean distance in mm (``vertex_loss(..., reduction="mean_vertex")``), computed
    from :meth:`VisionLatent.vertex_difference` (one basis product instead of two meshes)."""
    difference = latent.vertex_difference(z_hat, z_v)
    return vertex_loss(difference, torch.zeros_like(difference), reduction="mean_vertex")


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
    """Stage 2 on the frozen encoders' outputs ``x = [z_r | code | droppable]`` (B, d + 5 + 1): the
    heads' training forward ``f(z_r + m g(code))``. ``m`` is the 50 % code drop on rows whose
    ``droppable`` flag is 1 (rows with ``E_e``'s code ``z_bar``); rows with a one-hot code of a
    re-posed face (Sec. 3.0.6, flag 0) always keep their code, since their target depends on it.
    ``x`` of width d + 5 means every row is droppable. The encoders are frozen and in eval mode
    (deterministic), so their outputs are computed once (:func:`encode_features`) instead of every
    step; the gradients of the heads are the same. ``pred`` is detached as in
    :class:`ContrastiveStage`: the objective is exactly the two terms of :func:`stage2_terms`."""

    def __init__(self, heads: EEG2FaceHeads) -> None:
        super().__init__()
        self.heads = heads

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        d, k = self.heads.content_dim, self.heads.n_emotions
        if x.shape[1] not in (d + k, d + k + 1):
            raise ValueError(f"stage-2 features must be (batch, {d} + {k} [+ 1]); got {tuple(x.shape)}")
        z_r, code = x[:, :d], x[:, d:d + k]
        keep = self.heads.sample_keep_mask(len(x)).to(x.device)
        if x.shape[1] == d + k + 1:
            keep = keep | (x[:, d + k] < 0.5)
        z_hat = self.heads.f(z_r + keep.unsqueeze(1).to(z_r.dtype) * self.heads.g(code))
        return {"pred": z_hat.detach(), "z_v_hat": z_hat}


def stage2_training_rows(features: Mapping[str, torch.Tensor], data: ChapterData, reposed_per_frame: int,
                         seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The stage-2 training set: inputs ``[z_r | code | droppable]`` and targets ``z_v``.

    One row per training frame with ``E_e``'s code ``z_bar`` (droppable) and, for
    ``reposed_per_frame`` = r > 0, r rows per frame of its re-posed faces (Sec. 3.0.6): ``z_r`` of the
    frame's EEG with the one-hot code of emotion k and, as target, ``z_v`` of the frame re-posed into
    k (``data.z_v_reposed``), not droppable. With r < 5 the r emotions of each frame are drawn at
    random without replacement (``seed``); r = 5 takes all five.
    """
    if isinstance(reposed_per_frame, bool) or not 0 <= int(reposed_per_frame) <= len(EMOTIONS):
        raise ValueError(f"reposed_per_frame must be an int in [0, {len(EMOTIONS)}]; got {reposed_per_frame!r}")
    train = data.train
    z_r, code = features["z_r"][train], features["code"][train]
    x = [torch.cat([z_r, code, torch.ones(len(z_r), 1)], 1)]
    y = [data.z_v[train]]
    if reposed_per_frame:
        if data.z_v_reposed is None:
            raise ValueError("reposed_per_frame > 0 needs ChapterData.z_v_reposed (built by build_chapter_data)")
        generator = torch.Generator().manual_seed(seed)
        order = torch.argsort(torch.rand(len(z_r), len(EMOTIONS), generator=generator), dim=1)[:, :reposed_per_frame]
        reposed = data.z_v_reposed[train]
        eye = torch.eye(len(EMOTIONS))
        for j in range(int(reposed_per_frame)):
            k = order[:, j]
            x.append(torch.cat([z_r, eye[k], torch.zeros(len(z_r), 1)], 1))
            y.append(reposed[torch.arange(len(z_r)), k])
    return torch.cat(x), torch.cat(y)


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
    """Stage 2 (Sec. 3.0.7): freeze ``E_r``/``E_e``, train ``f``/``g`` with Eq. 3.1 on
    :func:`stage2_training_rows` (with ``cfg.reposed_per_frame`` re-posed faces per training frame,
    Sec. 3.0.6); train-or-load.

    Returns the assembled :class:`EEG2Face` (frozen encoders + trained heads, eval mode), the fit
    result and the frozen encoders' outputs on every sample (``z_r``, ``code``, ``logits``).
    """
    features = encode_features(content_encoder, emotion_encoder, data.eeg, run.device)
    x, y = stage2_training_rows(features, data, cfg.reposed_per_frame, run.seed)
    train_data = TensorData(x, y, batch_size=cfg.batch_size, name=f"eeg2face-stage2-{encoder_name}-c{data.coupling:g}")
    torch.manual_seed(run.seed)
    heads = EEG2FaceHeads(content_dim=content_encoder.embedding_dim, n_emotions=len(EMOTIONS),
                          drop_prob=cfg.drop_prob, seed=run.seed)
    latent = data.latent.to(run.device)
    result = fit(HeadsOnFeatures(heads), train_data, None,
                 train_config(cfg, run, epochs or cfg.stage2_epochs, "regression"),
                 key=_run_key(data, cfg, run, stage="2-heads", model=encoder_name, weights=list(LOSS_WEIGHTS),
                              drop_prob=cfg.drop_prob, stage1=list(stage1_hashes), reposed=cfg.reposed_per_frame),
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


def difference_ci(a: pd.DataFrame, b: pd.DataFrame, metric: str, n_bootstrap: int, seed: int) -> dict[str, float]:
    """Mean over test segments of ``a[metric] - b[metric]`` (two per-segment tables of
    :func:`segment_vertex_errors` on the same segments) with a 95 % paired cluster-bootstrap CI over
    test trials: negative = ``a`` has the lower error. Keys ``diff``, ``low``, ``high``, ``relative``
    (= diff / mean of ``b``)."""
    merged = a.merge(b, on=["segment", "trial", "emotion"], suffixes=("_a", "_b"))
    if len(merged) != len(a) or len(merged) != len(b):
        raise ValueError(f"difference_ci: the two tables must hold the same segments ({len(a)} vs {len(b)} rows)")
    diff = (merged[f"{metric}_a"] - merged[f"{metric}_b"]).to_numpy()
    point, low, high = stats.bootstrap_ci(_mean_of_values, merged["emotion"].to_numpy(), diff,
                                            n_resamples=n_bootstrap, seed=seed, stratified=False,
                                            clusters=merged["trial"].to_numpy())
    return {"diff": point, "low": low, "high": high, "relative": point / float(merged[f"{metric}_b"].mean())}


def difference_verdict(ci: Mapping[str, float]) -> str:
    """'lower than' / 'higher than' / 'not distinguishable from' by a paired difference CI."""
    if ci["high"] < 0:
        return "lower than"
    if ci["low"] > 0:
        return "higher than"
    return "not distinguishable from"


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
    majority = float(np.bincount(y, minlength=len(EMOTIONS)).max() / len(y))
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
            ci = difference_ci(per_segment, references[name], metric, cfg.n_bootstrap, run.seed)
            out.update({f"{metric}_{tag}": ci["diff"], f"{metric}_{tag}_low": ci["low"],
                        f"{metric}_{tag}_high": ci["high"], f"{metric}_{tag}_rel": ci["relative"]})
    return out


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
                 stage1_epochs: int | None = None, stage2_epochs: int | None = None,
                 references: Mapping[str, pd.DataFrame] | None = None) -> PipelineResult:
    """Stage 1 (``E_e`` unless given, and the content encoder ``encoder_name``), stage 2 (heads),
    then LVE / MCE / EVE on the test segments for content-only and emotion-enhanced inference, each
    with paired differences to the mean-face references (:func:`comparison_columns`; ``references``
    = :func:`baseline_segments`, computed when not given)."""
    emotion_encoder, emotion_fit = emotion if emotion is not None else train_emotion_encoder(data, cfg, run)
    content_encoder, content_fit = train_content_encoder(encoder_name, data, cfg, run, stage1_epochs)
    model, heads_fit, features = train_heads(content_encoder, emotion_encoder, data, cfg, run, encoder_name,
                                             [content_fit.config_hash, emotion_fit.config_hash], stage2_epochs)
    latents = predict_test_latents(model, features, data)
    per_segment = {mode: segment_vertex_errors(z, data, data.test) for mode, z in latents.items()}
    references = baseline_segments(data) if references is None else references
    rows = [{"method": ENCODER_LABELS[encoder_name], "encoder": encoder_name, "mode": mode,
             "parameters": sum(p.numel() for p in content_encoder.parameters()),
             **summarise_errors(table, cfg.n_bootstrap, run.seed),
             **comparison_columns(table, references, cfg, run)} for mode, table in per_segment.items()]
    fits = {"E_e": emotion_fit, "content": content_fit, "heads": heads_fit}
    return PipelineResult(encoder_name, model, features, fits, per_segment, rows, latents)


@dataclasses.dataclass
class Table41Result:
    """Every encoder of Table 4.1 trained on the same data with the same ``E_e``, heads and losses."""

    pipelines: dict[str, PipelineResult]
    baselines: pd.DataFrame
    emotion: dict[str, float]
    errors: pd.DataFrame
    label: str = ""

    @property
    def ours(self) -> PipelineResult:
        return self.pipelines["eeg2face"] if "eeg2face" in self.pipelines else next(iter(self.pipelines.values()))


def run_table_4_1(data: ChapterData, cfg: ChapterConfig, run: RunConfig) -> Table41Result:
    """Table 4.1: ``E_e`` once, then every encoder of ``cfg.encoders`` through both stages."""
    emotion = train_emotion_encoder(data, cfg, run)
    references = baseline_segments(data, predicted_test_emotions(emotion[0], data, run.device))
    pipelines = {name: run_pipeline(name, data, cfg, run, emotion, references=references) for name in cfg.encoders}
    first = next(iter(pipelines.values()))
    accuracy = emotion_accuracy(first.features["logits"][data.test], data.emotion[data.test], cfg.n_bootstrap,
                                run.seed, trials=data.trial[data.test])
    rows = [row for p in pipelines.values() for row in p.rows]
    return Table41Result(pipelines, pd.DataFrame(baseline_rows(references, cfg, run)), accuracy, pd.DataFrame(rows),
                         data_label(data))


def _with_ci(row: Mapping[str, Any], name: str) -> str:
    return f"{row[name]:.3f} [{row[name + '_low']:.3f}, {row[name + '_high']:.3f}]"


def table_4_1_frame(result: Table41Result, mode: str = "emotion_enhanced") -> pd.DataFrame:
    """The chapter's Table 4.1: ours (mean over test segments [95 % CI over test trials], mm) beside
    the thesis's numbers, then the reference predictors (mean faces, ridge ceilings). ``mode``:
    "emotion_enhanced" (the full model) or "content_only". See :func:`table_caption`."""
    if mode not in ("emotion_enhanced", "content_only"):
        raise ValueError(f"mode must be 'emotion_enhanced' or 'content_only'; got {mode!r}")
    rows = []
    for _, r in result.errors[result.errors["mode"] == mode].iterrows():
        paper = PAPER_TABLE_4_1[r["encoder"]]
        rows.append({"method": r["method"], **{f"{m} ours, mm [95% CI]": _with_ci(r, m) for m in METRIC_NAMES},
                     **{f"{m} thesis": p for m, p in zip(METRIC_NAMES, paper)},
                     "encoder parameters": int(r["parameters"]) if "parameters" in r else np.nan})
    for _, r in result.baselines.iterrows():
        rows.append({"method": r["method"], **{f"{m} ours, mm [95% CI]": _with_ci(r, m) for m in METRIC_NAMES},
                     **{f"{m} thesis": np.nan for m in METRIC_NAMES}, "encoder parameters": np.nan})
    frame = pd.DataFrame(rows).set_index("method")
    frame["encoder parameters"] = frame["encoder parameters"].astype("Int64")
    return frame


def table_caption(result: Table41Result | pd.DataFrame, what: str, unit: str = "segments",
                  thesis_columns: bool = False) -> str:
    """A caption naming the data, seed and background of a table (``result``: a Table 4.1 result or
    a sweep frame), what its numbers average over (``unit``: "segments" or "windows") and how its
    intervals are drawn; ``thesis_columns`` adds where the thesis's numbers come from."""
    if unit not in ("segments", "windows"):
        raise ValueError(f"unit must be 'segments' or 'windows'; got {unit!r}")
    if isinstance(result, Table41Result):
        label = result.label
        first = result.errors.iloc[0] if len(result.errors) else {}
        count = int(result.emotion.get("windows", 0)) if unit == "windows" else int(first.get("segments", 0))
        n = f"{count} test {unit} of {int(first.get('trials', 0))} test trials"
    else:
        label = str(result.attrs.get("label", "EAV-like set"))
        n = f"the test {unit}"
    caption = (f"{what}: {label}; one seed; mean over {n}, 95% CI = percentile bootstrap resampling whole "
               f"test trials.")
    if thesis_columns:
        caption += (" Thesis columns copied from its Table 4.1 (EAV + EMOCA/FLAME; unit printed as mm in the "
                    "table, as x10^-4 mm in its text).")
    return caption


def comparison_frame(result: Table41Result, mode: str = "emotion_enhanced") -> pd.DataFrame:
    """Per encoder: its error minus the mean face's, minus the per-emotion mean face's (true label,
    oracle) and minus the per-emotion mean face of ``E_e``'s predicted emotion, per metric, in mm
    with the paired 95 % CI over test trials (negative = the encoder is better)."""
    rows = []
    for _, r in result.errors[result.errors["mode"] == mode].iterrows():
        row: dict[str, Any] = {"method": r["method"]}
        for tag, name in (("vs_mean", "mean face"), ("vs_oracle", "oracle per-emotion mean face"),
                          ("vs_predicted", "E_e-predicted per-emotion mean face")):
            if f"LVE_{tag}" not in r or pd.isna(r[f"LVE_{tag}"]):
                continue
            for m in METRIC_NAMES:
                row[f"{m} - {name} (mm)"] = (f"{r[f'{m}_{tag}']:+.3f} [{r[f'{m}_{tag}_low']:+.3f}, "
                                              f"{r[f'{m}_{tag}_high']:+.3f}]")
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def emotion_accuracy_frame(result: Table41Result) -> pd.DataFrame:
    """``E_e`` accuracy on the test windows and by majority vote per test trial, against chance."""
    e = result.emotion
    rows = [{"unit": "window", "E_e accuracy (%)": 100 * e["accuracy"],
             "95% CI (%)": f"[{100 * e['accuracy_low']:.1f}, {100 * e['accuracy_high']:.1f}]",
             "chance (%)": 100 * e["chance"], "majority class (%)": 100 * e["majority_rate"], "n": int(e["windows"])}]
    if "trial_accuracy" in e:
        rows.append({"unit": "trial (majority vote of its windows)", "E_e accuracy (%)": 100 * e["trial_accuracy"],
                     "95% CI (%)": f"[{100 * e['trial_accuracy_low']:.1f}, {100 * e['trial_accuracy_high']:.1f}]",
                     "chance (%)": 100 * e["chance"], "majority class (%)": 100 * e["majority_rate"],
                     "n": int(e["trials"])})
    return pd.DataFrame(rows).set_index("unit")


def run_coupling_sweep(cfg: ChapterConfig, run: RunConfig, background: "BackgroundEEG",
                       encoder_name: str = "eeg2face", face_model: FaceModel | None = None) -> pd.DataFrame:
    """Rebuild the paired set at each ``cfg.sweep_couplings`` level (same trajectories, backgrounds
    and seeds: only the planted EMG-to-face coupling changes), retrain ``E_e``, the encoder and the
    heads (``cfg.sweep_epochs`` epochs) and measure both inference modes and the baselines.

    Returns one row per (coupling, method, mode) with the metrics, CIs (whole test trials
    resampled), the paired differences of the model rows to the mean-face references and the EMG
    SNR in dB. The baselines include the ridge ceilings on the planted EMG (:func:`reference_latents`).
    """
    rows = []
    for coupling in cfg.sweep_couplings:
        data = build_chapter_data(cfg, run, background, coupling=coupling, face_model=face_model)
        sweep_cfg = dataclasses.replace(cfg, emotion_epochs=cfg.sweep_epochs)
        emotion = train_emotion_encoder(data, sweep_cfg, run)
        references = baseline_segments(data, predicted_test_emotions(emotion[0], data, run.device))
        result = run_pipeline(encoder_name, data, sweep_cfg, run, emotion, stage1_epochs=cfg.sweep_epochs,
                              references=references)
        accuracy = emotion_accuracy(result.features["logits"][data.test], data.emotion[data.test], cfg.n_bootstrap,
                                    run.seed, trials=data.trial[data.test])
        for row in result.rows + baseline_rows(references, cfg, run):
            rows.append({"coupling": coupling, "snr_db": data.info.get("emg_snr_db", np.nan),
                         "E_e accuracy": accuracy["accuracy"], **row})
    frame = pd.DataFrame(rows)
    frame.attrs["label"] = data_label(data).replace(f"coupling {data.coupling:g}, ", "couplings "
                                                    + "/".join(f"{c:g}" for c in cfg.sweep_couplings) + ", ")
    return frame


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


UPPER_FACE_REGIONS = ("eyes", "brows", "forehead")


def _region_distance(z_a: torch.Tensor, z_b: torch.Tensor, latent: VisionLatent, regions: Mapping[str, torch.Tensor],
                     chunk: int = 128) -> dict[str, float]:
    """Mean Euclidean distance (mm) between the meshes ``F(z_a)`` and ``F(z_b)`` over each region's
    vertices and all rows."""
    totals = {name: 0.0 for name in regions}
    with torch.no_grad():
        for start in range(0, len(z_a), chunk):
            dist = torch.linalg.vector_norm(latent.vertices(z_a[start:start + chunk].float())
                                            - latent.vertices(z_b[start:start + chunk].float()), dim=-1)
            for name, ids in regions.items():
                totals[name] += float(dist[:, ids].mean(1).sum())
    return {name: total / max(len(z_a), 1) for name, total in totals.items()}


def emotion_control_frame(data: ChapterData, result: PipelineResult) -> pd.DataFrame:
    """What the emotion code does (Fig. 4-2, measured): for each emotion k, the mean displacement (mm)
    of ``f(z_r + g(one-hot k))`` from ``f(z_r + g(one-hot Neutral))`` on the lips and on the upper
    face (eyes, brows, forehead), over the test windows; beside it the same displacement between the
    test frames re-posed into k and into Neutral (:func:`affectlab.data.generate.paired.repose_upper_face`,
    what stage 2 learned from when ``reposed_per_frame`` > 0), and the model's upper-face error against
    the re-posed face of k."""
    face_model = data.latent.face_model
    regions = {"lips": face_model.regions["lips"],
               "upper face": torch.unique(torch.cat([face_model.regions[r] for r in UPPER_FACE_REGIONS]))}
    z_r = result.features["z_r"][data.test]
    heads = result.model.heads.cpu().eval()
    eye = torch.eye(len(EMOTIONS))
    with torch.no_grad():
        modulated = [heads.with_code(z_r, eye[k].expand(len(z_r), -1)) for k in range(len(EMOTIONS))]
    rows = []
    for k, name in enumerate(EMOTIONS):
        model_shift = _region_distance(modulated[k], modulated[0], data.latent, regions)
        row: dict[str, Any] = {"emotion code": name, "model: lips (mm)": model_shift["lips"],
                               "model: upper face (mm)": model_shift["upper face"]}
        if data.z_v_reposed is not None:
            truth = data.z_v_reposed[data.test]
            true_shift = _region_distance(truth[:, k], truth[:, 0], data.latent, regions)
            error = _region_distance(modulated[k], truth[:, k], data.latent, regions)
            row.update({"re-posed truth: lips (mm)": true_shift["lips"],
                        "re-posed truth: upper face (mm)": true_shift["upper face"],
                        "model vs re-posed truth: upper-face error (mm)": error["upper face"]})
        rows.append(row)
    return pd.DataFrame(rows).set_index("emotion code")


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
              (("baseline", MEAN_FACE), "mean face", "--"),
              (("baseline", PER_EMOTION_MEAN_FACE), "per-emotion mean face (oracle)", ":"),
              (("baseline", PREDICTED_EMOTION_MEAN_FACE), "per-emotion mean face (E_e's prediction)", ":x"),
              (("baseline", DRIVE_CEILING), "ceiling: ridge on planted EMG drive + true emotion", "-.^")]
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


def deviations(cfg: ChapterConfig, data: ChapterData, table: Table41Result | None = None) -> list[str]:
    """Every known deviation from the thesis, with the values of this run (for the chapter's list)."""
    from affectlab.models.eeg_baselines import rate_scaled_time_kwargs, time_tokens

    emg = data.emg_channels
    test_seconds = 0.25 * float(data.info.get("background_seconds", float("nan")))
    scaled = rate_scaled_time_kwargs(SFREQ)
    tokens = time_tokens(cfg.window_samples, **scaled)
    backbone = ""
    if table is not None:
        sizes = {name: getattr(p.model.content_encoder, "n_backbone_features", None)
                 for name, p in table.pipelines.items()}
        backbone = " Backbone features before the embedding layer: " + ", ".join(
            f"{ENCODER_LABELS[n]} {v}" for n, v in sizes.items() if v is not None) + "."
    out = [
        "Data: EAV's EEG and video (20 subjects, 100 trials each) are replaced by the semi-synthetic set of this "
        f"chapter ({data.info['n_subjects']} subject(s) x 5 emotions x {cfg.trials_per_emotion} trials of "
        f"{cfg.trial_seconds:g} s). Its EEG background is ONE recording (EEGLAB tutorial data, a visual attention "
        "task, one person): 'subjects' differ in face identity, expressivity and trajectories, not in their EEG.",
        f"Background reuse: test trials take their background from the last 25 % of the recording (about "
        f"{test_seconds:.0f} s) and wrap around within it, so all {data.info['test_trials']} test trials share "
        "those seconds (training trials use the first 75 %).",
        "Planted EMG: the face drives only two envelopes (mouth = jaw opening + 0.5 x mean of 8 mouth "
        "blendshapes; brow = mean of 6 brow blendshapes). With this montage the mouth EMG reaches "
        f"{', '.join(emg['mouth']) or 'no channel'} and the brow EMG {', '.join(emg['brow']) or 'no channel'}; "
        "everything else about the frame (eyes, cheeks, lip shape) has no path into the EEG. The 'unrelated' EMG "
        "surrogate of trial i is the face of trial i + k (one fixed shift k per set), so at coupling 0 the EMG "
        "still carries emotion but no frame-level content. Emotion rhythms in the EEG are planted too "
        "(affectlab.data.generate.eeg).",
        "EAV pairing: the public EAV EEG loader keeps the listening columns while the thesis pairs speaking "
        "trials with video; load a real EAV copy with affectlab.data.load('eav', root, split='speaking').",
        "Vision latent: FLAME + EMOCA are replaced by ICT-FaceKit (MIT) with exact codes: 50 PCA components of its "
        "53 blendshapes + a 3-parameter jaw mapped onto its jaw blendshapes (FLAME's jaw is a rotation). Shape "
        "and global pose are fixed at zero, as in the thesis. The jaw blendshapes are always 0 (their motion lives "
        "in the jaw), so 49 components are exact and the PCA drops nothing.",
        ("Sec. 3.0.6 (emotion disentanglement): LivePortrait's retargeted faces are replaced by the generator's "
         "exact re-posing (affectlab.data.generate.paired.repose_upper_face): training frames re-posed into an "
         "emotion on the upper face (brow, eye, cheek-squint and nose-sneer blendshapes; the lower face and jaw "
         "kept), paired with the frame's EEG window and the emotion's one-hot code, are added to stage 2 "
         f"({cfg.reposed_per_frame} of the five emotions per frame, drawn at random; the thesis uses all five "
         "and its retargeted 'neutral' face). The 50 % drop applies to the rows with E_e's code only (the thesis "
         "does not say); re-posed rows always keep their code, since their target depends on it.")
        if cfg.reposed_per_frame else
        ("Sec. 3.0.6 (retargeted emotional faces with one-hot codes) is NOT used in this run "
         "(reposed_per_frame=0): g is trained on E_e's code with the 50 % drop only."),
        f"Samples: one sample per face frame with an EEG window of {cfg.window_seconds:g} s ({cfg.window_samples} "
        f"samples) centred on it, one frame in {cfg.frame_step}; the thesis pairs each frame with its 10 EEG "
        "samples but does not state the encoder's input window.",
        "Split: each subject's trials are split 6:2 per emotion and ONE model is trained on all subjects' training "
        "trials (the thesis says 'subject-dependent' without saying whether one model per subject was trained).",
        f"Training length: Adam, lr {cfg.lr:g} (thesis: 1e-3), batch {cfg.batch_size} (thesis: 64); "
        f"{cfg.stage1_epochs} epochs for "
        f"E_r and the baselines, {cfg.emotion_epochs} for E_e, {cfg.stage2_epochs} for the heads, "
        f"{cfg.sweep_epochs} per sweep level (the thesis: 400 and 300). No validation set, final weights, as the "
        "thesis reports none. Stage 2 runs on the frozen encoders' outputs computed once (same gradients).",
        f"Losses: InfoNCE with temperature {cfg.temperature:g} (the thesis writes none) on a learned linear "
        "128 -> 53 projection of z_r (the thesis compares E_r(x) with E_v(x) directly, whose sizes differ); "
        "L_mse is the mean squared error (the thesis writes an L2 norm and calls it MSE); L_vertex is the mean "
        "per-vertex distance in mm (the thesis writes the L2 norm of the whole mesh difference in metres), which "
        "sets how the 0.7 / 0.3 weights balance.",
        "Architecture (not stated in the thesis): BatchNorm after both tokenizer convolutions and an ELU after the "
        "spatial one; pre-norm transformer layers with GELU and dropout 0.1; the strided convolution padded to "
        "ceil(T / 5) tokens instead of 'same'; E_e with 16 filters (Sec. 3.0.8; Fig. 3-2 says 40) and no patch "
        "embedding; heads f and g are two-layer MLPs (hidden 128, GELU).",
        "Metrics: MCE has no formula in the thesis: the LVE recipe on the mouth-corner vertices (within 6 mm of "
        "landmarks 48 and 54). EVE follows the text (forehead, cheeks, eyes) as the per-frame maximum over that "
        "union (the EmoTalk choice); the table's caption calls it 'Eye Vertex Error'. The thesis gives no "
        "intervals; ours resample whole test trials (segments of one trial are not independent).",
        "Baselines: braindecode's EEGNet (defaults), ShallowFBCSPNet and EEGConformer with a linear embedding in "
        f"place of the classifier; the latter two with their time kernel and pooling rate-scaled from 250 Hz to "
        f"100 Hz ({scaled['filter_time_length']} / {scaled['pool_time_length']} / {scaled['pool_time_stride']} "
        f"samples), so EEGConformer attends over {tokens} tokens of a {cfg.window_seconds:g} s window instead of "
        f"one. 'TCT' is a reconstruction (no code available); one E_e is shared by all content encoders.{backbone}",
        "Not reproduced: Fig. 4-4 (photorealistic avatars from albedo maps; the project renderer is greyscale) and "
        "the 'Detail' row of Fig. 4-1 (DECA displacement maps). Frames in the figures are frontal (the "
        "generator's slow head motion is omitted).",
    ]
    return out


# ------------------------------------------------------------------------------------------------
# 8b. the sweep and the findings
# ------------------------------------------------------------------------------------------------


SWEEP_LABELS: dict[str, str] = {"emotion_enhanced": "EEG2Face emotion-enhanced",
                                "content_only": "EEG2Face content-only", MEAN_FACE: "mean face",
                                PER_EMOTION_MEAN_FACE: "per-emotion mean face (oracle)",
                                PREDICTED_EMOTION_MEAN_FACE: "per-emotion mean face (E_e's prediction)",
                                DRIVE_CEILING: "ceiling: EMG drive", ACTIONS_CEILING: "ceiling: face actions"}


def sweep_frame(sweep: pd.DataFrame, metrics_shown: Sequence[str] | str = METRIC_NAMES) -> pd.DataFrame:
    """The coupling sweep as a table: one row per (coupling, metric), one column per predictor,
    values "mean [95 % CI]" in mm, plus the EMG SNR in dB and ``E_e``'s test accuracy."""
    shown = (metrics_shown,) if isinstance(metrics_shown, str) else tuple(metrics_shown)
    bad = [m for m in shown if m not in METRIC_NAMES]
    if bad or not shown:
        raise ValueError(f"metrics must be among {METRIC_NAMES}; got {shown!r}")
    rows = []
    for coupling, group in sweep.groupby("coupling", sort=False):
        for metric in shown:
            row: dict[str, Any] = {"coupling": coupling, "metric (mm)": metric,
                                   "face-locked : unrelated EMG (dB)": group["snr_db"].iloc[0],
                                   "E_e accuracy (%)": 100 * group["E_e accuracy"].iloc[0]}
            for _, r in group.iterrows():
                key = SWEEP_LABELS.get(r["mode"]) if r["mode"] != "baseline" else SWEEP_LABELS.get(r["method"])
                if key is not None:
                    row[key] = _with_ci(r, metric)
            rows.append(row)
    return pd.DataFrame(rows).set_index(["coupling", "metric (mm)"]).sort_index(ascending=[False, True])


def _compare(a: Mapping[str, Any], b: Mapping[str, Any], metric: str) -> str:
    """'lower than' / 'higher than' / 'not distinguishable from' by the two 95 % CIs."""
    if a[f"{metric}_high"] < b[f"{metric}_low"]:
        return "lower than"
    if a[f"{metric}_low"] > b[f"{metric}_high"]:
        return "higher than"
    return "not distinguishable from (overlapping 95% CIs)"


def _versus(r: Mapping[str, Any], metric: str, tag: str, name: str) -> str:
    ci = {"high": r[f"{metric}_{tag}_high"], "low": r[f"{metric}_{tag}_low"]}
    verdict = {"lower than": "better than", "higher than": "WORSE than",
               "not distinguishable from": "not distinguishable from"}[difference_verdict(ci)]
    return (f"{metric} {r[metric]:.2f} mm, {100 * r[f'{metric}_{tag}_rel']:+.0f}% vs the {name} "
            f"(difference {r[f'{metric}_{tag}']:+.2f} mm, 95% CI {r[f'{metric}_{tag}_low']:+.2f} to "
            f"{r[f'{metric}_{tag}_high']:+.2f}: {verdict} it)")


def gap_closed(model: float, mean_face: float, ceiling: float) -> float:
    """Share of the distance from the mean face's error to the ceiling's that a model closes
    (1 = at the ceiling, 0 = at the mean face, < 0 = worse than the mean face)."""
    span = mean_face - ceiling
    return float("nan") if abs(span) < 1e-12 else (mean_face - model) / span


def findings(result: Table41Result, sweep: pd.DataFrame | None = None,
             control: pd.DataFrame | None = None) -> list[str]:
    """Sentences stating what this run measured (every number computed here, none typed in).
    Comparisons with the mean faces use paired differences over the same test segments with
    95 % CIs that resample whole test trials."""
    out = []
    errors = result.errors[result.errors["mode"] == "emotion_enhanced"].set_index("encoder")
    base = result.baselines.set_index("method")
    mean_face, oracle = base.loc[MEAN_FACE], base.loc[PER_EMOTION_MEAN_FACE]
    for encoder, r in errors.iterrows():
        out.append(f"{ENCODER_LABELS[encoder]} (emotion-enhanced): "
                   + "; ".join(_versus(r, m, "vs_mean", "mean face") for m in METRIC_NAMES) + ".")
    worse = [ENCODER_LABELS[k] for k, r in errors.iterrows() if r["LVE_vs_mean_low"] > 0]
    if worse:
        out.append("Worse than predicting the mean face on the lips (LVE): " + ", ".join(worse) + ".")
    if "LVE_vs_oracle" in errors.columns:
        beat = [ENCODER_LABELS[k] for k, r in errors.iterrows() if r["LVE_vs_oracle_high"] < 0]
        lost = [ENCODER_LABELS[k] for k, r in errors.iterrows() if r["LVE_vs_oracle_low"] > 0]
        out.append("Against the per-emotion mean face (the true emotion's average face, no frame-level content), "
                   f"LVE: lower for {', '.join(beat) or 'no encoder'}; higher for {', '.join(lost) or 'no encoder'}"
                   " (paired 95% CIs). An encoder must beat this to show that it reads frame-level mouth motion "
                   "rather than only the emotion.")
    if PREDICTED_EMOTION_MEAN_FACE in base.index:
        out.extend(beyond_emotion_findings(errors, base.loc[PREDICTED_EMOTION_MEAN_FACE]))
    ranking = errors["LVE"].sort_values().index.tolist()
    thesis = [k for k in sorted(PAPER_TABLE_4_1, key=lambda k: PAPER_TABLE_4_1[k][0]) if k in ranking]
    out.append("Ranking by LVE here: " + " < ".join(ENCODER_LABELS[k] for k in ranking) + "; in the thesis: "
               + " < ".join(ENCODER_LABELS[k] for k in thesis) + ".")
    out.append(f"Per-emotion mean face (knowing the true emotion, no frame-level content): LVE {oracle['LVE']:.2f}, "
               f"MCE {oracle['MCE']:.2f}, EVE {oracle['EVE']:.2f} mm; mean face LVE {mean_face['LVE']:.2f}, "
               f"MCE {mean_face['MCE']:.2f}, EVE {mean_face['EVE']:.2f} mm.")
    if DRIVE_CEILING in base.index and "eeg2face" in errors.index:
        ceiling, ours = base.loc[DRIVE_CEILING], errors.loc["eeg2face"]
        out.append(f"Ceiling (ridge on the planted EMG drive + true emotion): LVE {ceiling['LVE']:.2f}, MCE "
                   f"{ceiling['MCE']:.2f}, EVE {ceiling['EVE']:.2f} mm. E_r closes "
                   + ", ".join(f"{100 * gap_closed(ours[m], mean_face[m], ceiling[m]):.0f}% ({m})"
                               for m in METRIC_NAMES)
                   + " of the distance from the mean face to this ceiling.")
    e = result.emotion
    verdict = "above" if e["accuracy_low"] > e["chance"] else "not distinguishable from"
    sentence = (f"E_e recognises the five emotions in {100 * e['accuracy']:.1f}% of test windows "
                f"(95% CI over trials {100 * e['accuracy_low']:.1f}-{100 * e['accuracy_high']:.1f}%), {verdict} "
                f"chance ({100 * e['chance']:.0f}%)")
    if "trial_accuracy" in e:
        sentence += (f"; by majority vote per trial {100 * e['trial_accuracy']:.0f}% of {int(e['trials'])} test trials "
                     f"({100 * e['trial_accuracy_low']:.0f}-{100 * e['trial_accuracy_high']:.0f}%)")
    out.append(sentence + ".")
    if "eeg2face" in result.pipelines:
        rows = result.errors[result.errors["encoder"] == "eeg2face"].set_index("mode")
        out.append("E_r emotion-enhanced vs content-only: " + ", ".join(
            f"{m} {rows.loc['emotion_enhanced', m]:.2f} vs {rows.loc['content_only', m]:.2f} mm" for m in METRIC_NAMES)
            + ".")
    if control is not None and not control.empty:
        shift = control.drop("Neutral", errors="ignore").mean()
        sentence = (f"Emotion control: switching the code from Neutral moves the upper face by "
                    f"{shift['model: upper face (mm)']:.2f} mm and the lips by {shift['model: lips (mm)']:.2f} mm on "
                    f"average over the other four emotions")
        if "re-posed truth: upper face (mm)" in shift:
            sentence += (f"; the re-posed faces move them by {shift['re-posed truth: upper face (mm)']:.2f} and "
                         f"{shift['re-posed truth: lips (mm)']:.2f} mm (lip vertices near the nose and cheeks follow "
                         f"the upper-face blendshapes), and the model's upper face stays "
                         f"{shift['model vs re-posed truth: upper-face error (mm)']:.2f} mm from them")
        out.append(sentence + ".")
    if sweep is not None and not sweep.empty:
        out.extend(sweep_findings(sweep))
    return out


def beyond_emotion_verdict(r: Mapping[str, Any], metric: str = "LVE") -> str:
    """Whether a model row decodes frame-level content beyond ``E_e``'s emotion: its paired
    difference to the per-emotion mean face of ``E_e``'s predicted emotion (``vs_predicted``) by
    its 95 % CI. Returns "yes" (CI below 0), "no: worse" (CI above 0) or "not shown" (CI spans 0)."""
    verdict = difference_verdict({"low": r[f"{metric}_vs_predicted_low"], "high": r[f"{metric}_vs_predicted_high"]})
    return {"lower than": "yes", "higher than": "no: worse", "not distinguishable from": "not shown"}[verdict]


def beyond_emotion_findings(errors: pd.DataFrame, predicted: Mapping[str, Any]) -> list[str]:
    """Sentences on the non-oracle reference: the per-emotion mean face of ``E_e``'s predicted
    emotion (same ``E_e`` as the model's), and whether ``E_r`` (emotion-enhanced; ``errors`` indexed
    by encoder) beats it, i.e. decodes frame-level content beyond the emotion, by the paired CIs."""
    out = [f"Per-emotion mean face of E_e's predicted emotion (non-oracle: recognise the emotion, output its "
           f"average training face): " + ", ".join(f"{m} {_with_ci(predicted, m)} mm" for m in METRIC_NAMES) + "."]
    if "LVE_vs_predicted" not in errors.columns:
        return out
    if "eeg2face" in errors.index:
        r = errors.loc["eeg2face"]
        verdict = beyond_emotion_verdict(r, "LVE")
        conclusion = {"yes": "so E_r decodes frame-level lip content beyond E_e's emotion",
                      "no: worse": "so E_r does not even match emotion recognition plus the average face on the lips; "
                                   "no evidence that it decodes frame-level content beyond the emotion",
                      "not shown": "so this run shows no frame-level lip content beyond E_e's emotion"}[verdict]
        out.append("E_r (emotion-enhanced) against it: "
                   + "; ".join(_versus(r, m, "vs_predicted", "predicted-emotion mean face") for m in METRIC_NAMES)
                   + f"; {conclusion}.")
    beat = [ENCODER_LABELS[k] for k, r in errors.iterrows() if beyond_emotion_verdict(r) == "yes"]
    out.append("Encoders with a lower LVE than the predicted-emotion mean face (paired 95% CI below 0): "
               + (", ".join(beat) or "none") + ".")
    return out


def sweep_findings(sweep: pd.DataFrame) -> list[str]:
    """Sentences on the coupling sweep: content-only LVE per coupling beside the mean face and the
    ceiling, and the verdict at coupling 0 against the mean face and the per-emotion mean face."""
    out = []
    model_rows = sweep[sweep["mode"] == "content_only"].sort_values("coupling")
    enhanced = sweep[sweep["mode"] == "emotion_enhanced"].set_index("coupling")
    base = sweep[sweep["mode"] == "baseline"]
    mean_rows = base[base["method"] == MEAN_FACE].set_index("coupling")
    ceiling = base[base["method"] == DRIVE_CEILING].set_index("coupling")
    parts = []
    for _, r in model_rows.iterrows():
        c = r["coupling"]
        extra = f", ceiling {ceiling.loc[c, 'LVE']:.2f}" if c in ceiling.index else ""
        parts.append(f"{c:g}: {r['LVE']:.2f} mm (mean face {mean_rows.loc[c, 'LVE']:.2f}{extra})")
    out.append("Coupling sweep, E_r content-only LVE by coupling: " + "; ".join(parts) + ".")
    if "LVE_vs_predicted" in enhanced.columns:
        parts = [f"{c:g}: {r['LVE_vs_predicted']:+.2f} mm [{r['LVE_vs_predicted_low']:+.2f}, "
                 f"{r['LVE_vs_predicted_high']:+.2f}] ({beyond_emotion_verdict(r)})"
                 for c, r in enhanced.sort_index(ascending=False).iterrows() if not pd.isna(r["LVE_vs_predicted"])]
        out.append("Coupling sweep, E_r emotion-enhanced LVE minus the predicted-emotion mean face's (paired 95% CI; "
                   "frame-level content beyond the emotion?) by coupling: " + "; ".join(parts) + ".")
    if 0.0 in enhanced.index:
        z = enhanced.loc[0.0]
        out.append("With no coupling, E_r emotion-enhanced: "
                   + "; ".join(_versus(z, m, "vs_mean", "mean face") for m in ("LVE", "EVE")) + "; "
                   + "; ".join(_versus(z, m, "vs_oracle", "per-emotion mean face") for m in ("LVE", "EVE")) + ".")
        if "LVE_vs_predicted" in enhanced.columns and not pd.isna(z["LVE_vs_predicted"]):
            out.append("With no coupling, E_r emotion-enhanced against the per-emotion mean face of E_e's predicted "
                       "emotion: " + "; ".join(_versus(z, m, "vs_predicted", "predicted-emotion mean face")
                                                for m in METRIC_NAMES)
                       + f" (frame-level lip content beyond the emotion: {beyond_emotion_verdict(z)}).")
        if 0.0 in ceiling.index:
            oracle = base[base["method"] == PER_EMOTION_MEAN_FACE].set_index("coupling").loc[0.0]
            c0 = ceiling.loc[0.0, "LVE"]
            out.append(f"At coupling 0 the ridge ceiling on the EMG drive (+ true emotion) gives LVE {c0:.2f} mm, "
                       f"{100 * (c0 / oracle['LVE'] - 1):+.0f}% vs the per-emotion mean face's {oracle['LVE']:.2f} mm "
                       f"(the face-independent EMG adds next to nothing to knowing the emotion when this is near 0).")
    return out
