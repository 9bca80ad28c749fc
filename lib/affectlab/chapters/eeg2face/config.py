"""Chapter 03 (EEG2Face, Kabidenova 2025, MSc thesis): constants and sizes per profile.

The thesis's rates (Sec. 3.0.1: EEG at 100 Hz, faces at 10 fps), loss weights (Sec. 3.0.8), metric
regions (Sec. 4.0.2), its Table 4.1, and :class:`ChapterConfig` / :func:`chapter_config` (smoke /
quick / paper) with the optimiser of Sec. 3.0.8 (:func:`train_config`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from affectlab.config import FieldCheck, RunConfig, check_profile, is_int, profile_config
from affectlab.models.eeg2face import EMOTIONS
from affectlab.models.eeg_baselines import ENCODER_NAMES
from affectlab.train import TrainConfig

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
CONTENT_INPUTS = ("frame", "positional")
"""What ``E_r`` reads of its window: the frame's own 10 samples (thesis, Sec. 3.0.1) or the whole
window with learned positions (deviation from Sec. 4.1.1)."""
METRIC_NAMES = ("LVE", "MCE", "EVE")
"""Sec. 4.0.2's three vertex errors (mm): lips, mouth corners, emotional upper face."""


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
    ``encoders``: the Table 4.1 rows to train. ``n_seeds``: training seeds per encoder (``run.seed``,
    ``run.seed + 1``, ...; the data stay those of ``run.seed``). ``content_input``: what ``E_r``
    reads (:data:`CONTENT_INPUTS`): "frame" = the frame's own 10 EEG samples (the thesis's pairing,
    Sec. 3.0.1), "positional" = the whole window with a learned position embedding (a deviation from
    Sec. 4.1.1), "auto" = whichever of the two has the lower LVE on held-out TRAINING trials
    (``validation_trials_per_emotion`` per subject and emotion, the first ``selection_seeds``
    training seeds; :func:`~affectlab.chapters.eeg2face.experiments.run_content_input_selection`).
    ``test_background_share``: share of the background recording the test trials are cut from.
    ``torch_threads``: intra-op threads for the chapter's training (:func:`configure_threads`; None
    leaves PyTorch's default). ``drop_prob``: share of samples whose emotion code is
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
    n_seeds: int = 3
    selection_seeds: int = 1
    content_input: str = "auto"
    validation_trials_per_emotion: int = 1
    test_background_share: float = 0.5
    torch_threads: int | None = None

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
        check.require(is_int(self.n_seeds) and self.n_seeds >= 1, "n_seeds", "a positive int")
        check.require(is_int(self.selection_seeds) and 1 <= self.selection_seeds <= self.n_seeds, "selection_seeds",
                      "a positive int <= n_seeds")
        check.require(self.content_input in CONTENT_INPUTS + ("auto",), "content_input",
                      f"one of {CONTENT_INPUTS + ('auto',)}")
        check.require(is_int(self.validation_trials_per_emotion) and 1 <= self.validation_trials_per_emotion
                      < self.trials_per_emotion * 3 // 4, "validation_trials_per_emotion",
                      "a positive int below the training trials per subject and emotion")
        check.require(0.0 < self.test_background_share < 1.0, "test_background_share", "in (0, 1)")
        check.require(self.torch_threads is None or (is_int(self.torch_threads) and self.torch_threads >= 1),
                      "torch_threads", "None or a positive int")
        check.require(is_int(self.reposed_per_frame) and 0 <= self.reposed_per_frame <= len(EMOTIONS),
                      "reposed_per_frame", f"an int in [0, {len(EMOTIONS)}]")

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * SFREQ))

    def training_seeds(self, seed: int) -> list[int]:
        """The ``n_seeds`` training seeds of a run with base seed ``seed``."""
        return [int(seed) + k for k in range(self.n_seeds)]


def configure_threads(cfg: ChapterConfig) -> int:
    """Set PyTorch's intra-op threads to ``cfg.torch_threads`` (when given) and return the number in use.

    Why the quick profile uses ONE thread on the two-core machine: its models are small (batch 64 of
    30 x 100 samples), so a step is dominated by thread synchronisation. Measured on that machine
    while other jobs ran (13:58 UTC, 3 Dec 2026): one ``E_e`` training step took 0.15 s with one
    thread and 0.6-3.5 s with two, and a quick run with two threads spent 10 minutes on its first
    ``E_e`` (6 epochs)."""
    import torch

    if cfg.torch_threads is not None:
        torch.set_num_threads(int(cfg.torch_threads))
    return torch.get_num_threads()


def content_encoder_kwargs(content_input: str, window_samples: int) -> dict[str, int]:
    """Keyword arguments of :class:`~affectlab.models.eeg2face.EEGContentRegressor` for ``content_input``
    ("frame": ``frame_samples=10``; "positional": ``n_positions`` = the window's token count)."""
    if content_input == "frame":
        return {"frame_samples": SAMPLES_PER_FRAME}
    if content_input == "positional":
        return {"n_positions": -(-window_samples // 5)}
    raise ValueError(f"content_input must be one of {CONTENT_INPUTS}; got {content_input!r}")


def chapter_config(profile: str, **overrides: Any) -> ChapterConfig:
    """The chapter's sizes for ``profile``; ``overrides`` replace single fields (for tests).

    - smoke: one subject, 8 s trials, one short epoch per model: proves every cell runs.
    - quick: 4 subjects x 5 emotions x 8 trials of 20 s (every 8th frame: 3,840 samples) on a 2-core
      CPU, all five encoders x 3 training seeds, 6 epochs per encoder and per head (stage 2: 20 head
      fits of 540 steps, the costliest part: the vertex loss maps every batch to the mesh), one
      re-posed face per training frame, one PyTorch thread (:func:`configure_threads`); E_r's input
      chosen on validation trials with one seed; two coupling levels, 1 and 0 (coupling 1 reuses the
      main runs), 3 seeds each. The measured wall time is printed at the end of the chapter (the
      budget is 30 minutes on two cores). Measured (2026-12-03, AMD EPYC, 2 cores, real EEGLAB
      background, fresh runs folder): 19.1 minutes.
    - paper: the thesis's sizes (20 subjects, 20 trials per emotion, 400 / 300 epochs): for a GPU
      (every 2nd frame: ~190k windows, ~2.3 GB of float32 EEG in memory).
    """
    table = {
        "smoke": dict(n_subjects=1, trials_per_emotion=4, trial_seconds=8.0, window_seconds=1.0, frame_step=5,
                      segment_seconds=4.0, frame_size=48, coupling=1.0, sweep_couplings=(1.0, 0.0),
                      encoders=ENCODER_NAMES, stage1_epochs=1, emotion_epochs=1, stage2_epochs=1, sweep_epochs=1,
                      steps_per_epoch=1, n_bootstrap=100, reposed_per_frame=1, n_seeds=2, torch_threads=1),
        "quick": dict(n_subjects=4, trials_per_emotion=8, trial_seconds=20.0, window_seconds=1.0, frame_step=8,
                      segment_seconds=5.0, frame_size=64, coupling=1.0, sweep_couplings=(1.0, 0.0),
                      encoders=ENCODER_NAMES, stage1_epochs=6, emotion_epochs=6, stage2_epochs=6,
                      sweep_epochs=6, n_bootstrap=1000, reposed_per_frame=1, n_seeds=3, torch_threads=1),
        "paper": dict(n_subjects=20, trials_per_emotion=20, trial_seconds=20.0, window_seconds=1.0, frame_step=2,
                      segment_seconds=5.0, frame_size=96, coupling=1.0,
                      sweep_couplings=(2.0, 1.0, 0.5, 0.25, 0.125, 0.0), encoders=ENCODER_NAMES,
                      stage1_epochs=400, emotion_epochs=400, stage2_epochs=300, sweep_epochs=100, n_bootstrap=2000,
                      n_seeds=3, selection_seeds=3),
    }
    return profile_config(ChapterConfig, profile, table, overrides)


def train_config(cfg: ChapterConfig, run: RunConfig, epochs: int, task: str) -> TrainConfig:
    """The thesis's optimiser (Sec. 3.0.8): Adam, lr 1e-3, constant; AdamW with weight decay 0 is
    Adam. No gradient clipping and no schedule are stated, so none are used."""
    return TrainConfig(epochs=epochs, lr=cfg.lr, weight_decay=0.0, schedule="constant", grad_clip=None,
                       task=task, amp="off", steps_per_epoch=cfg.steps_per_epoch, seed=run.seed,
                       progress=False, tensorboard=False)
