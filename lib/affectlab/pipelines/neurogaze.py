"""Chapter 01, NeuroGaze-Distill (Li, Xu, Zhao, Zhu 2025, paper 000): the experiment behind the notebook.

The notebook ``notebooks/01_neurogaze_distill.py`` calls this module and only shows what it returns;
every step of the paper's pipeline lives here, on top of the library pieces (topomaps, trainer,
losses, prototype bank, metrics, plots).

Reading order:

1. :class:`ChapterConfig` / :func:`chapter_config`: sizes and the paper's hyperparameters per profile.
2. EEG teacher data (Sec. 3.1, Fig. 3): :func:`load_teacher_eeg`, :func:`va_targets` (continuous
   V/A in [-1, 1] from the labels the feature files carry), :func:`prepare_teacher_data` (per-subject
   normalisation, 5-band topomaps on MNE 10-20 positions), :func:`raw_eeg_topomaps` (Welch band
   power of a raw recording), :func:`subject_disjoint_split`.
3. Teacher and prototypes (Sec. 4.1, Algorithm 1, Fig. 2): :func:`train_eeg_teacher` (CNN regressing
   V/A, 256-D penultimate), :func:`teacher_scores` (CCC with bootstrap CIs),
   :func:`prototype_banks` (5x5 bank and the 7x7 ablation, saved with SHA-256 and a fingerprint).
4. Students (Sec. 4.2-4.4, Algorithm 2): :func:`prepare_faces` (FERPlus subsets, CK+, AffectNet-mini),
   :func:`mild_class_weights`, :func:`variant_terms` (exactly the loss terms of B0, B1, B2, B3, Full),
   :func:`train_students` (vision KD teacher, D-Geo internals chosen on FERPlus validation, every
   variant x seed, the 7x7 grid ablation).
5. Evaluation (Sec. 5, App. A.1-A.2): :func:`ablation_table` (Table 3), :func:`cross_dataset_table`
   (Table 2), :func:`feature_geometry_table`, :func:`known_ground_truth_probe` (V/A linear probe on
   the generated faces), :func:`write_artifacts` (bank, checkpoints, metrics JSON, SHA-256 sums).
6. Figures: :func:`topomap_grid_figure` (Fig. 3), :func:`ablation_timeline_figure` (Fig. 4),
   :func:`present_only_confusion` (Fig. 5), :func:`embedding_grid_figure` (Fig. 6),
   :func:`student_curves_figure` / :func:`teacher_curves_figure` (Fig. 7).

Every training goes through :func:`affectlab.train.fit` (train-or-load: a rerun with the same data
and configuration loads the finished run from ``AFFECTLAB_RUNS``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from affectlab import data as datasets
from affectlab import stats
from affectlab import metrics, plots
from affectlab.augment import AugmentConfig, BatchAugment
from affectlab.config import (
    ConfigError,
    FieldCheck,
    RunConfig,
    check_profile,
    config_hash,
    default_runs_dir,
    is_number,
    profile_config,
    seed_everything,
)
from affectlab.data.sets import EEGSet, FaceSet
from affectlab.data.taxonomy import FERPLUS_CLASSES
from affectlab.losses import KD_KINDS, dgeo_loss, dgeo_weight, kd_logit_loss, proto_kd_loss
from affectlab.models.resnet_student import FERStudent
from affectlab.models.va_teacher import TopomapVATeacher
from affectlab.prototypes import (
    build_prototype_bank,
    coverage,
    file_sha256,
    load_prototype_bank,
    save_prototype_bank,
)
from affectlab.topomap import PAPER_BANDS, band_power_welch, normalize_per_subject, topomaps_from_band_power
from affectlab.train import FitResult, LossTerm, Predictions, TensorData, TrainConfig, fit, predict

__all__ = [
    "VARIANTS",
    "VARIANT_LABELS",
    "VARIANT_TERMS",
    "PAPER_TABLE2",
    "PAPER_TABLE3",
    "DGeoParams",
    "ChapterConfig",
    "chapter_config",
    "short_source",
    "load_teacher_eeg",
    "va_targets",
    "TeacherData",
    "prepare_teacher_data",
    "raw_eeg_topomaps",
    "valence_contrast_maps",
    "subject_disjoint_split",
    "TeacherRun",
    "train_eeg_teacher",
    "teacher_scores",
    "PrototypeBanks",
    "prototype_banks",
    "bank_coverage_table",
    "FaceData",
    "prepare_faces",
    "class_capped_subset",
    "stratified_subset",
    "mild_class_weights",
    "variant_terms",
    "StudentRuns",
    "train_students",
    "student_predictions",
    "ablation_table",
    "cross_dataset_table",
    "grid_ablation_table",
    "present_only_confusion",
    "feature_geometry_table",
    "ProbeResult",
    "known_ground_truth_probe",
    "probe_verdict",
    "baseline_scores",
    "write_artifacts",
    "topomap_grid_figure",
    "ablation_timeline_figure",
    "embedding_grid_figure",
    "student_curves_figure",
    "teacher_curves_figure",
]

# ----------------------------------------------------------------------------------------------
# the paper's variants and numbers
# ----------------------------------------------------------------------------------------------

#: Sec. 5.2 / Table 3: B0 CE; B1 + logit KD; B2 + Proto-KD; B3 + D-Geo (= A3_full); Full with T = 1.
VARIANTS: tuple[str, ...] = ("B0", "B1", "B2", "B3", "Full")
VARIANT_LABELS: dict[str, str] = {
    "B0": "B0 CE only",
    "B1": "B1 +KD",
    "B2": "B2 +KD+Proto",
    "B3": "B3 Full (+D-Geo)",
    "Full": "Full (T=1)",
}
#: The extra loss terms (besides CE with label smoothing and class weights) of each variant.
VARIANT_TERMS: dict[str, tuple[str, ...]] = {
    "B0": (),
    "B1": ("kd",),
    "B2": ("kd", "proto_kd"),
    "B3": ("kd", "proto_kd", "dgeo"),
    "Full": ("kd", "proto_kd", "dgeo"),
}
#: Paper Table 3 (FERPlus validation, 8-way, %): accuracy, macro-F1, balanced accuracy.
PAPER_TABLE3: dict[str, tuple[float, float, float]] = {
    "B0": (78.22, 51.29, 49.77),
    "B1": (82.31, 63.56, 59.28),
    "B2": (81.48, 64.21, 60.30),
    "B3": (83.06, 64.74, 59.90),
    "Full": (83.66, 65.39, 61.32),
}
#: Paper Table 2 (A3_full = B3, %): present-only (Acc, Macro-F1, bACC) then 8-way (Acc, Macro-F1, bACC).
PAPER_TABLE2: dict[str, tuple[float, ...]] = {
    "affectnet_mini": (76.30, 75.60, 75.77, 76.30, 75.60, 75.77),
    "ckplus": (64.93, 49.33, 52.46, 55.86, 39.23, 36.25),
    "ferplus_valid": (83.06, 64.74, 59.90, 83.06, 64.74, 59.90),
}
CHAPTER = "01_neurogaze_distill"


# ----------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DGeoParams:
    """D-Geo's unpublished internals (Algorithm 2 lines 12-14): ``sigma_max`` (cap on the
    within-class spread of the positive classes), ``margin`` ``m`` between class means, and the
    term weights ``alpha_var``, ``alpha_mar``. Distances are on the unit-norm 256-D features."""

    sigma_max: float
    margin: float
    alpha_var: float = 1.0
    alpha_mar: float = 1.0

    def __post_init__(self) -> None:
        for name in ("sigma_max", "margin", "alpha_var", "alpha_mar"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise ConfigError(f"DGeoParams.{name} must be a number >= 0; got {value!r}")

    @property
    def label(self) -> str:
        return f"sigma_max={self.sigma_max:g}, m={self.margin:g}, a_var={self.alpha_var:g}, a_mar={self.alpha_mar:g}"


@dataclasses.dataclass(frozen=True)
class ChapterConfig:
    """Every size and hyperparameter of the chapter; :func:`chapter_config` gives them per profile.

    EEG teacher (Sec. 3.1, 4.1): topomaps of ``topomap_size`` px; ``teacher_val_fraction`` of the
    subjects of each dataset form the validation split; DEAP's binary labels become
    ``+-deap_binary_level``; prototype grid ``grid`` (5) and the ablation grid ``ablation_grid``
    (7); Laplace smoothing ``bank_eps`` (Algorithm 1 line 14).

    Faces (Sec. 3.2): ``image_size`` (48 = FERPlus native; the paper's inference used 224);
    ``train_per_class`` caps the FERPlus training images per class (None = all), ``val_size``,
    ``test_size`` and ``cross_size`` (CK+, AffectNet-mini) draw class-stratified subsets (None = all).

    KD teacher (Sec. 4.3 "a vision teacher", unnamed in the paper): ``vision_teacher`` "soft" = a
    separate ``vision_teacher_arch`` network trained on the FERPlus vote distributions; "b0" = the
    first-seed B0 student (the same architecture trained with CE; self-distillation), which saves
    one training run on a CPU.

    Student recipe (Sec. 4.4, App. A.3): AdamW lr 2e-4 (``lr``), weight decay 0.05, cosine
    schedule, batch 128 (``batch_size``), clipping 1.0, label smoothing 0.055, class weights
    ``(N / (K n_c)) ** class_weight_power`` (normalised to a mean sample weight of 1); the head's
    input scale ``head_input_scale`` (None = sqrt(256) = 16, see
    :class:`~affectlab.models.resnet_student.FERStudent`); logit KD weight 0.30 at T = 5 with
    ``kd_kind`` "mse_logits" (MSE of z/T; "mse_probs" and "kl" selectable, see
    :func:`affectlab.losses.kd_logit_loss`) and ``kd_source`` "cached" (teacher logits of the
    un-augmented image) or "live" (on the augmented batch, Algorithm 2 line 6); Proto-KD weight 0.12,
    tau 0.90; D-Geo weight 0.012 with the cosine ramp over epochs 20 -> 60 of a
    ``geo_paper_epochs``-epoch run (A3_full: 100), scaled to ``epochs`` and advanced per step;
    positives happiness and surprise. D-Geo's internals are chosen on FERPlus validation (B3,
    first seed) in two stages: ``dgeo_candidates`` (sigma_max, m; alpha_var = alpha_mar = 1), then
    ``dgeo_alpha_candidates`` ((alpha_var, alpha_mar) pairs) at the best (sigma_max, m); an empty
    tuple keeps alpha_var = alpha_mar = 1.

    ``n_seeds`` seeds start at the run's SEED; ``noise_seeds`` extra B0 runs (seeds after those)
    measure run-to-run variation when ``n_seeds`` is 1. ``embedding_methods`` of Fig. 6 ("tsne",
    "umap", "pca"); ``probe_*`` size the known-ground-truth probe on generated faces.
    """

    profile: str
    n_seeds: int
    teacher_epochs: int
    train_per_class: int | None
    val_size: int | None
    test_size: int | None
    epochs: int
    dgeo_candidates: tuple[DGeoParams, ...]
    embedding_points: int
    embedding_methods: tuple[str, ...]
    # EEG teacher
    topomap_size: int = 32
    teacher_val_fraction: float = 0.2
    teacher_batch_size: int = 64
    teacher_lr: float = 1e-3
    teacher_weight_decay: float = 1e-4
    teacher_steps_per_epoch: int | None = None
    deap_binary_level: float = 0.5
    grid: int = 5
    ablation_grid: int = 7
    bank_eps: float = 1.0
    # faces and student recipe
    image_size: int = 48
    arch: str = "resnet18"
    vision_teacher: str = "soft"
    vision_teacher_arch: str = "resnet18"
    cross_size: int | None = None
    batch_size: int = 128
    steps_per_epoch: int | None = None
    lr: float = 2e-4
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    label_smoothing: float = 0.055
    class_weight_power: float = 0.5
    channels_last: bool = False
    head_input_scale: float | None = None
    crop_padding: int = 3
    jitter: float = 0.1
    kd_weight: float = 0.30
    kd_temperature: float = 5.0
    full_kd_temperature: float = 1.0
    kd_kind: str = "mse_logits"
    kd_source: str = "cached"
    proto_weight: float = 0.12
    proto_tau: float = 0.90
    geo_weight: float = 0.012
    geo_start: float = 20.0
    geo_end: float = 60.0
    geo_paper_epochs: int = 100
    positive_classes: tuple[str, ...] = ("happiness", "surprise")
    ablation_seeds: int = 1
    dgeo_alpha_candidates: tuple[tuple[float, float], ...] = ()
    noise_seeds: int = 0
    # analysis
    bootstrap_resamples: int = 1000
    probe_epochs: int = 6

    def __post_init__(self) -> None:
        check_profile(self.profile)
        check = FieldCheck(self, "ChapterConfig")
        check.ints("n_seeds", "teacher_epochs", "epochs", "embedding_points", "topomap_size", "grid", "ablation_grid",
                   "image_size", "batch_size", "teacher_batch_size", "bootstrap_resamples", "probe_epochs",
                   "geo_paper_epochs")
        check.ints("train_per_class", "val_size", "test_size", "cross_size", "steps_per_epoch", "teacher_steps_per_epoch",
                   optional=True)
        check.require(0 < self.teacher_val_fraction < 1, "teacher_val_fraction", "in (0, 1)")
        check.require(0 < self.deap_binary_level <= 1, "deap_binary_level", "in (0, 1]")
        check.one_of("kd_kind", KD_KINDS)
        check.ints("noise_seeds", minimum=0)
        check.require(self.head_input_scale is None or self.head_input_scale > 0, "head_input_scale",
                      "a number > 0 or None (= sqrt(256))")
        check.require(all(len(pair) == 2 and all(is_number(a) and a >= 0 for a in pair)
                          for pair in self.dgeo_alpha_candidates),
                      "dgeo_alpha_candidates", "a tuple of (alpha_var, alpha_mar) pairs of numbers >= 0")
        check.one_of("kd_source", ("cached", "live"))
        check.one_of("vision_teacher", ("soft", "b0"))
        check.require(all(c in FERPLUS_CLASSES for c in self.positive_classes), "positive_classes",
                      f"FERPlus class names {FERPLUS_CLASSES}")
        check.require(bool(self.dgeo_candidates), "dgeo_candidates", "a non-empty tuple of DGeoParams")
        check.require(bool(self.embedding_methods) and all(m in ("tsne", "umap", "pca") for m in self.embedding_methods),
                      "embedding_methods", "a non-empty tuple of 'tsne', 'umap', 'pca'")
        check.require(0 <= self.geo_start < self.geo_end, "geo_start", f"in [0, geo_end={self.geo_end})")

    def seeds(self, first: int) -> tuple[int, ...]:
        """The seeds of the multi-seed runs: ``first, first + 1, ...`` (``n_seeds`` of them)."""
        return tuple(first + i for i in range(self.n_seeds))

    def geo_window(self) -> tuple[float, float]:
        """D-Geo's ramp window in this run's epochs (the paper's 20 -> 60 of 100, scaled)."""
        scale = self.epochs / self.geo_paper_epochs
        return self.geo_start * scale, self.geo_end * scale


def chapter_config(profile: str, **overrides: Any) -> ChapterConfig:
    """The chapter's sizes for ``profile``; ``overrides`` replace single fields (for tests).

    - smoke: tiny FERPlus subsets, one short epoch per model, one seed: proves every cell runs.
    - quick: this 2-core CPU, budgeted for <= 15 minutes. Measured on this machine: one ResNet-18
      epoch at 32 px, batch 64, costs ~4 ms per image (8 s for 1,736 images; 12.5 s for the 3,236
      used here); 48 px costs ~2.3x as much per image. The EEG teacher takes ~1 min and tables,
      embeddings and the probe ~4 min. The chapter trains 8 FERPlus students (B0, B1, B2, two B3
      candidates, Full, the 7x7 B2, a second B0 seed for the run-to-run spread) and 2 probe
      students, so faces stay at 32 px and the time goes into more images and steps instead: at
      most 500 training images per class (3,236), 4 epochs (204 optimiser steps, ~55 s per
      student; the previous 250-per-class setting had 112 steps). A trial B0 of this setting
      reached 37% validation accuracy and 28% macro-F1 (35% / 26% on test, against 34.5% / 6.4%
      for always answering "neutral"), with the head-input scale of :class:`FERStudent`. The
      first-seed B0 is the KD teacher; the EEG teacher trains 20 epochs. With ~200 steps instead
      of the paper's ~22,000, the learning rate is 1e-3 and the batch 64 (the paper: 2e-4, 128).
    - paper: the paper's recipe (ResNet-50, 224 px, all data, 100 epochs, 3 seeds, a 3x3
      (sigma_max, m) grid then 2 (alpha_var, alpha_mar) alternatives, a separate ResNet-50 KD
      teacher on the vote distributions used live, channels-last): for a GPU.
    """
    two = (DGeoParams(sigma_max=0.5, margin=0.5), DGeoParams(sigma_max=0.7, margin=1.0))
    grid = tuple(DGeoParams(sigma_max=s, margin=m) for s in (0.4, 0.55, 0.7) for m in (0.5, 0.8, 1.1))
    table: dict[str, dict[str, Any]] = {
        "smoke": dict(n_seeds=1, teacher_epochs=1, train_per_class=8, val_size=32, test_size=64, cross_size=64,
                      epochs=1, batch_size=16, lr=1e-3, steps_per_epoch=2, teacher_steps_per_epoch=2,
                      dgeo_candidates=two[:1], embedding_points=64, embedding_methods=("pca",),
                      bootstrap_resamples=50, probe_epochs=1, topomap_size=24, vision_teacher="b0"),
        "quick": dict(n_seeds=1, teacher_epochs=20, train_per_class=500, val_size=600, test_size=None, epochs=4,
                      lr=1e-3, batch_size=64, image_size=32,
                      dgeo_candidates=two, embedding_points=500, embedding_methods=("tsne", "umap"),
                      probe_epochs=6, vision_teacher="b0", noise_seeds=1),
        "paper": dict(n_seeds=3, teacher_epochs=100, train_per_class=None, val_size=None, test_size=None,
                      epochs=100, dgeo_candidates=grid, dgeo_alpha_candidates=((2.0, 0.5), (0.5, 2.0)),
                      embedding_points=3000,
                      embedding_methods=("tsne", "umap"), image_size=224, arch="resnet50",
                      vision_teacher_arch="resnet50", channels_last=True, kd_source="live", probe_epochs=30,
                      ablation_seeds=3),
    }
    return profile_config(ChapterConfig, profile, table, overrides)


def _train_config(cfg: ChapterConfig, seed: int, **changes: Any) -> TrainConfig:
    """The student recipe of Sec. 4.4 / App. A.3 as a :class:`TrainConfig` (progress bars off)."""
    base = dict(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, schedule="cosine",
                grad_clip=cfg.grad_clip, label_smoothing=cfg.label_smoothing, channels_last=cfg.channels_last,
                steps_per_epoch=cfg.steps_per_epoch, seed=seed, progress=False, tensorboard=True)
    base.update(changes)
    return TrainConfig(**base)


def _run_key(run: RunConfig) -> dict[str, Any]:
    return {"data_root": None if run.data_root is None else str(run.data_root)}


# ----------------------------------------------------------------------------------------------
# EEG teacher data (Sec. 3.1, Fig. 3)
# ----------------------------------------------------------------------------------------------


def short_source(source: str, width: int = 48) -> str:
    """A caption-sized form of a data ``source`` string: "real: <last two path parts>" for a
    user's copy, the generator's description cut to ``width`` characters for generated data."""
    kind, _, rest = source.partition(":")
    rest = rest.strip()
    if kind == "real":
        return f"real: {'/'.join(Path(rest.split(' (')[0]).parts[-2:])}"
    return f"{kind}: {rest[:width]}..." if len(rest) > width else source


def _load_or_embedded(name: str, run: RunConfig, split: str | None = None) -> tuple[Any, str]:
    """``name`` from the run's data root when it holds it, else the embedded generated default.

    Returns the set and a note saying which one was used (the root is never ignored silently).
    """
    if run.data_root is not None and datasets.available(name, run.data_root):
        return datasets.load(name, run.data_root, split), "real copy under the data root"
    from affectlab.data.generate import embedded

    note = ("embedded generated default (no data root)" if run.data_root is None
            else f"embedded generated default: the data root {run.data_root} has no {name}")
    return embedded(name, split or datasets.get_manifest(name).get("default_split", "all")), note


def load_teacher_eeg(run: RunConfig) -> dict[str, tuple[EEGSet, str]]:
    """The teacher's EEG (Sec. 3.1): DEAP and MAHNOB-HCI band-power features from the data root.

    The paper uses DREAMER with MAHNOB-HCI; we have DEAP's and MAHNOB-HCI's released feature files
    (5 bands x 32 electrodes). Without a data root both are the generated band-power set; when
    both names give the same generated set, it is used once. Returns ``{name: (EEGSet, note)}``.
    """
    out: dict[str, tuple[EEGSet, str]] = {}
    seen_sources: set[str] = set()
    for name in ("deap", "mahnob_hci"):
        eeg, note = _load_or_embedded(name, run)
        if not isinstance(eeg, EEGSet) or eeg.kind != "band_power":
            raise TypeError(f"{name}: expected band-power EEG features, got {type(eeg).__name__}")
        if eeg.source in seen_sources:
            continue
        seen_sources.add(eeg.source)
        out[name] = (eeg, note)
    return out


def va_targets(eeg: EEGSet, binary_level: float = 0.5) -> tuple[np.ndarray, str]:
    """Continuous (valence, arousal) in [-1, 1] per trial and a sentence stating the rule.

    - Continuous ``valence``/``arousal`` labels present (MAHNOB-HCI: the circumplex point of the
      trial's emotion category, see :mod:`affectlab.data.taxonomy`; generated sets: the planted
      V/A): used as they are.
    - Otherwise the binaries (DEAP: ``valence_binary`` 1 = positive, ``arousal_binary`` 1 = high)
      become ``+binary_level`` / ``-binary_level``: the two halves of each axis at the centre of
      their half of [-1, 1] for 0.5. The paper "linearly maps reported V/A to [-1, 1]" (Sec. 3.3);
      DEAP's released labels are only binary, so this is the closest linear map.
    """
    labels = eeg.labels
    if "valence" in labels and "arousal" in labels:
        va = np.stack([labels["valence"], labels["arousal"]], axis=1).astype(np.float32)
        rule = ("circumplex coordinates of the emotion category" if "emotion_code" in labels
                else "continuous V/A given with the data")
    elif "valence_binary" in labels and "arousal_binary" in labels:
        if not 0 < binary_level <= 1:
            raise ValueError(f"parameter binary_level must be in (0, 1]; got {binary_level}")
        binary = np.stack([labels["valence_binary"], labels["arousal_binary"]], axis=1)
        if not np.isin(binary, (0, 1)).all():
            raise ValueError(f"{eeg.name}: valence_binary/arousal_binary must hold 0/1")
        va = np.where(binary == 1, binary_level, -binary_level).astype(np.float32)
        rule = f"binary labels mapped to +-{binary_level:g} (positive/high = +{binary_level:g})"
    else:
        raise ValueError(
            f"{eeg.name}: no V/A labels; expected 'valence' and 'arousal' or 'valence_binary' and "
            f"'arousal_binary' in EEGSet.labels, got {sorted(labels)}"
        )
    if not np.isfinite(va).all() or np.abs(va).max() > 1:
        raise ValueError(f"{eeg.name}: V/A targets must be finite and within [-1, 1]")
    return va, rule


@dataclasses.dataclass
class TeacherData:
    """Topomaps of every teacher trial with V/A targets and subject groups.

    ``maps`` (N, bands, S, S) float32 (0 outside the head), ``mask`` (S, S), ``va`` (N, 2),
    ``groups`` (N,) "dataset:subject" strings, ``dataset`` (N,) dataset names, ``info`` a table
    of the datasets (trials, subjects, V/A rule, source, note), ``assumptions`` from the loaders.
    """

    maps: np.ndarray
    mask: np.ndarray
    va: np.ndarray
    groups: np.ndarray
    dataset: np.ndarray
    bands: tuple[str, ...]
    ch_names: tuple[str, ...]
    info: pd.DataFrame
    assumptions: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.maps)

    @property
    def source(self) -> str:
        return "; ".join(f"{r.dataset}: {r.source}" for r in self.info.itertuples())


def prepare_teacher_data(eeg_sets: Mapping[str, tuple[EEGSet, str]], cfg: ChapterConfig) -> TeacherData:
    """Per-subject normalisation and topomaps (Sec. 3.1): for each dataset, per subject and band
    z-score and min-max to [0, 1] (:func:`affectlab.topomap.normalize_per_subject`), then render
    every band on the 10-20 positions at ``cfg.topomap_size`` px."""
    if not eeg_sets:
        raise ValueError("prepare_teacher_data: no EEG sets given")
    maps, vas, groups, names, rows, assumptions = [], [], [], [], [], []
    bands = ch_names = mask = None
    for name, (eeg, note) in eeg_sets.items():
        if eeg.subject is None:
            raise ValueError(f"{name}: the teacher split needs subject ids (EEGSet.subject is None)")
        if bands is not None and (eeg.bands != bands or eeg.ch_names != ch_names):
            raise ValueError(f"{name}: bands/channels {eeg.bands}/{eeg.ch_names} differ from the first set's")
        bands, ch_names = eeg.bands, eeg.ch_names
        va, rule = va_targets(eeg, cfg.deap_binary_level)
        normalised = normalize_per_subject(eeg.data, eeg.subject)
        rendered = topomaps_from_band_power(normalised, eeg.ch_names, size=cfg.topomap_size, montage=eeg.montage)
        mask = rendered.mask
        maps.append(rendered.maps)
        vas.append(va)
        groups.append(np.array([f"{name}:{s}" for s in eeg.subject]))
        names.append(np.full(len(eeg), name))
        rows.append({"dataset": name, "trials": len(eeg), "subjects": len(np.unique(eeg.subject)),
                     "V/A rule": rule, "source": eeg.source, "note": note})
        assumptions.extend(eeg.assumptions)
    return TeacherData(
        maps=np.concatenate(maps).astype(np.float32),
        mask=mask,
        va=np.concatenate(vas),
        groups=np.concatenate(groups),
        dataset=np.concatenate(names),
        bands=tuple(bands),
        ch_names=tuple(ch_names),
        info=pd.DataFrame(rows),
        assumptions=tuple(dict.fromkeys(assumptions)),
    )


def raw_eeg_topomaps(run: RunConfig, size: int = 32, segment_seconds: float = 4.0) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """Topomaps from a raw recording (Fig. 1B / Fig. 3 pipeline on signals): the EEGLAB sample
    (or its generated stand-in), EOG channels dropped, cut into ``segment_seconds`` segments, log
    band power by Welch in the paper's bands (delta, theta, alpha, beta, gamma), averaged over
    segments. Returns (maps (bands, S, S), mask, band names, source)."""
    eeg, _ = _load_or_embedded("eeglab_sample", run)
    if eeg.kind != "signal" or eeg.sfreq is None:
        raise TypeError(f"eeglab_sample: expected raw signals, got kind {eeg.kind!r}")
    types = eeg.meta.get("ch_types") or ("eeg",) * len(eeg.ch_names)
    keep = [i for i, (n, t) in enumerate(zip(eeg.ch_names, types)) if t == "eeg" and not n.upper().startswith("EOG")]
    signal = eeg.data[0][keep]
    step = int(round(segment_seconds * eeg.sfreq))
    n_seg = signal.shape[-1] // step
    if n_seg < 1:
        raise ValueError(f"eeglab_sample: recording shorter than one {segment_seconds} s segment")
    segments = signal[:, : n_seg * step].reshape(len(keep), n_seg, step).transpose(1, 0, 2)
    power = band_power_welch(segments, eeg.sfreq, PAPER_BANDS).mean(axis=0, keepdims=True)  # (1, bands, ch)
    names = tuple(eeg.ch_names[i] for i in keep)
    rendered = topomaps_from_band_power(power, names, size=size, montage=eeg.montage)
    return rendered.maps[0], rendered.mask, tuple(PAPER_BANDS), eeg.source


def valence_contrast_maps(data: TeacherData, dataset: str) -> dict[str, np.ndarray]:
    """Fig. 3 rows for one dataset: the mean normalised topomap (bands, S, S) of the trials with
    positive and with negative valence target, and their difference (positive - negative)."""
    sel = data.dataset == dataset
    if not sel.any():
        raise ValueError(f"no trials of dataset {dataset!r}; have {sorted(set(data.dataset.tolist()))}")
    pos, neg = sel & (data.va[:, 0] > 0), sel & (data.va[:, 0] < 0)
    if not pos.any() or not neg.any():
        raise ValueError(f"{dataset}: needs trials with both positive and negative valence targets")
    mean_pos, mean_neg = data.maps[pos].mean(0), data.maps[neg].mean(0)
    return {f"valence > 0 (n={int(pos.sum())})": mean_pos, f"valence < 0 (n={int(neg.sum())})": mean_neg,
            "difference": mean_pos - mean_neg}


def subject_disjoint_split(
    groups: Sequence[str] | np.ndarray,
    val_fraction: float = 0.2,
    seed: int = 0,
    strata: Sequence[str] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation row indices with no subject (group) on both sides.

    Within each stratum (dataset) the sorted unique groups are permuted by ``seed`` and
    ``max(1, round(val_fraction * n_groups))`` of them go to validation (a stratum with a single
    group stays in training). Returns sorted ``(train_idx, val_idx)``.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) == 0:
        raise ValueError(f"parameter groups must be a non-empty 1-D array; got shape {groups.shape}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"parameter val_fraction must be in (0, 1); got {val_fraction}")
    strata = np.zeros(len(groups), dtype=int) if strata is None else np.asarray(strata)
    if strata.shape != groups.shape:
        raise ValueError(f"parameter strata must match groups {groups.shape}; got {strata.shape}")
    rng = np.random.default_rng(seed)
    val_groups: set = set()
    for stratum in sorted(set(strata.tolist())):
        unique = np.array(sorted(set(groups[strata == stratum].tolist())))
        if len(unique) < 2:
            continue
        n_val = min(len(unique) - 1, max(1, int(round(val_fraction * len(unique)))))
        val_groups.update(unique[rng.permutation(len(unique))[:n_val]].tolist())
    is_val = np.isin(groups, list(val_groups))
    if not is_val.any():
        raise ValueError("subject_disjoint_split: fewer than 2 subjects; cannot hold any out")
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


# ----------------------------------------------------------------------------------------------
# teacher and prototypes (Sec. 4.1, Algorithm 1, Fig. 2)
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TeacherRun:
    """The trained EEG teacher: fit result, split, and its validation predictions and features."""

    fit: FitResult
    train_idx: np.ndarray
    val_idx: np.ndarray
    val_pred: np.ndarray
    val_features: np.ndarray
    val_va: np.ndarray
    data_source: str


def train_eeg_teacher(data: TeacherData, cfg: ChapterConfig, run: RunConfig) -> TeacherRun:
    """Train (or load) :class:`~affectlab.models.va_teacher.TopomapVATeacher` regressing V/A from
    the topomaps (MSE, AdamW lr ``teacher_lr``, cosine, best checkpoint by validation CCC), on a
    subject-disjoint split, then take its validation predictions and 256-D penultimate features."""
    train_idx, val_idx = subject_disjoint_split(data.groups, cfg.teacher_val_fraction, run.seed, data.dataset)
    maps = torch.from_numpy(data.maps)
    va = torch.from_numpy(data.va)
    train = TensorData(maps[train_idx], va[train_idx], batch_size=cfg.teacher_batch_size, name="eeg-topomaps/train")
    val = TensorData(maps[val_idx], va[val_idx], batch_size=256, shuffle=False, name="eeg-topomaps/val")
    seed_everything(run.seed)
    model = TopomapVATeacher(n_bands=len(data.bands))
    config = TrainConfig(epochs=cfg.teacher_epochs, lr=cfg.teacher_lr, weight_decay=cfg.teacher_weight_decay,
                         task="regression", monitor="ccc", steps_per_epoch=cfg.teacher_steps_per_epoch,
                         seed=run.seed, progress=False, tensorboard=True)
    key = {"chapter": CHAPTER, "role": "eeg_teacher", "init_seed": run.seed, "source": data.source,
           "va_rules": data.info["V/A rule"].tolist()}
    result = fit(model, train, val, config, key=key, name="ch01-eeg-teacher", device=run.device)
    preds = predict(result.model, val, run.device, task="regression")
    order = np.argsort(preds.index.numpy())
    return TeacherRun(
        fit=result,
        train_idx=train_idx,
        val_idx=val_idx,
        val_pred=preds.outputs.numpy()[order],
        val_features=preds.features.numpy()[order],
        val_va=data.va[val_idx],
        data_source=data.source,
    )


def _bootstrap_rows(fn: Callable[[np.ndarray], float], n: int, resamples: int, seed: int,
                    clusters: np.ndarray | None = None) -> tuple[float, float, float]:
    """Percentile bootstrap of a statistic of row indices (via :func:`stats.bootstrap_ci`):
    rows resampled independently, or whole ``clusters`` (e.g. subjects) when given."""
    rows = np.arange(n)
    return stats.bootstrap_ci(lambda idx, _: fn(idx), rows, rows, n_resamples=resamples, seed=seed,
                                stratified=False, clusters=clusters)


def teacher_scores(teacher: TeacherRun, data: TeacherData, cfg: ChapterConfig) -> pd.DataFrame:
    """CCC of the teacher's validation V/A per axis and dataset, with 95% cluster-bootstrap CIs:
    each resample draws whole validation *subjects* with replacement (``cfg.bootstrap_resamples``
    of them), because trials of one subject are not independent. A set with a single validation
    subject falls back to resampling trials (the "CI resamples" column says which)."""
    rows = []
    val_dataset = data.dataset[teacher.val_idx]
    val_groups = data.groups[teacher.val_idx]
    for name in ["all", *dict.fromkeys(val_dataset.tolist())]:
        sel = np.ones(len(val_dataset), bool) if name == "all" else val_dataset == name
        true, pred, groups = teacher.val_va[sel], teacher.val_pred[sel], val_groups[sel]
        n_subjects = len(set(groups.tolist()))
        clusters = np.unique(groups, return_inverse=True)[1] if n_subjects >= 2 else None
        for axis, label in enumerate(("valence", "arousal")):
            point, low, high = _bootstrap_rows(
                lambda idx: metrics.ccc(true[idx, axis], pred[idx, axis]), int(sel.sum()),
                cfg.bootstrap_resamples, seed=0, clusters=clusters)
            rows.append({"validation set": name, "axis": label, "trials": int(sel.sum()),
                         "subjects": n_subjects, "CCC": point, "CCC 95% CI": f"[{low:.3f}, {high:.3f}]",
                         "CI low": low, "CI high": high,
                         "CI resamples": "subjects" if clusters is not None else "trials (1 subject)"})
    return pd.DataFrame(rows)


@dataclasses.dataclass
class PrototypeBanks:
    """The frozen banks (Algorithm 1): ``main`` (G = 5) and ``ablation`` (G = 7), each a dict with
    ``prototypes`` (K, 256), ``prior`` (K,), ``coverage`` (G, G), ``path`` and ``sha256``."""

    main: dict[str, Any]
    ablation: dict[str, Any]

    def by_grid(self, grid: int) -> dict[str, Any]:
        for bank in (self.main, self.ablation):
            if bank["grid"] == grid:
                return bank
        raise ValueError(f"no prototype bank with grid {grid}; have {self.main['grid']}, {self.ablation['grid']}")


def artifact_dir(cfg: ChapterConfig, run: RunConfig) -> Path:
    """``$AFFECTLAB_RUNS/ch01-artifacts-<hash of profile config, seed, data root>``."""
    tag = config_hash({"cfg": cfg, "seed": run.seed, **_run_key(run)})
    path = default_runs_dir() / f"ch01-artifacts-{tag}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def prototype_banks(teacher: TeacherRun, cfg: ChapterConfig, run: RunConfig) -> PrototypeBanks:
    """Build (or load, SHA-256 verified) the 5x5 bank and the 7x7 ablation bank from the teacher's
    validation features binned by their V/A labels (Algorithm 1); saved as
    ``prototypes_<G>x<G>.npz`` with a JSON sidecar (digest + fingerprint) in :func:`artifact_dir`."""
    banks = []
    # an all-zero ReLU feature has no direction (L2Norm undefined): such trials are left out
    usable = np.linalg.norm(teacher.val_features, axis=1) > 0
    features, va = teacher.val_features[usable], teacher.val_va[usable]
    for grid in (cfg.grid, cfg.ablation_grid):
        fingerprint = {
            "grid": grid,
            "eps": cfg.bank_eps,
            "teacher_config_hash": teacher.fit.config_hash,
            "data_source": teacher.data_source,
            "binned_by": "validation V/A labels (Algorithm 1 line 4)",
            "n_validation": int(usable.sum()),
            "dropped_zero_features": int((~usable).sum()),
            "feature": "TopomapVATeacher penultimate (256-D, ReLU), L2-normalised",
        }
        path = artifact_dir(cfg, run) / f"prototypes_{grid}x{grid}.npz"
        loaded = None
        if path.exists():
            loaded = load_prototype_bank(path)
            if loaded.fingerprint != json.loads(json.dumps(fingerprint)):
                loaded = None
        if loaded is None:
            protos, prior = build_prototype_bank(features, va, grid=grid, eps=cfg.bank_eps)
            save_prototype_bank(path, protos, prior, fingerprint)
            loaded = load_prototype_bank(path)
        banks.append({"grid": grid, "prototypes": loaded.prototypes, "prior": loaded.prior,
                      "coverage": coverage(va, grid), "path": path, "sha256": loaded.sha256,
                      "fingerprint": loaded.fingerprint})
    return PrototypeBanks(main=banks[0], ablation=banks[1])


def bank_coverage_table(banks: PrototypeBanks) -> pd.DataFrame:
    """Coverage statistics of each grid: bins, empty bins (filled from the nearest bin), smallest
    and largest non-empty count, and the bank's SHA-256 (paper Table 1 / Sec. 5.3 "grid size")."""
    rows = []
    for bank in (banks.main, banks.ablation):
        counts = bank["coverage"].ravel()
        filled = counts[counts > 0]
        rows.append({"grid": f"{bank['grid']}x{bank['grid']}", "bins": len(counts),
                     "empty bins": int((counts == 0).sum()), "min non-empty count": int(filled.min()),
                     "max count": int(filled.max()), "validation trials": int(counts.sum()),
                     "file": bank["path"].name, "SHA-256": bank["sha256"]})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# face data (Sec. 3.2)
# ----------------------------------------------------------------------------------------------


def class_capped_subset(labels: np.ndarray | torch.Tensor, cap: int | None, seed: int) -> np.ndarray:
    """Sorted row indices: every labelled row (label >= 0) of each class, at most ``cap`` per class
    (drawn at random with ``seed``); ``cap=None`` keeps all labelled rows."""
    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y[y >= 0]):
        rows = np.flatnonzero(y == c)
        if cap is not None and len(rows) > cap:
            rows = rng.choice(rows, size=cap, replace=False)
        keep.append(rows)
    if not keep:
        raise ValueError("class_capped_subset: no labelled rows (all labels < 0)")
    return np.sort(np.concatenate(keep))


def stratified_subset(labels: np.ndarray | torch.Tensor, size: int | None, seed: int) -> np.ndarray:
    """Sorted indices of ``size`` labelled rows keeping class proportions (largest remainder; at
    least one row of every class); ``size=None`` or ``>=`` the labelled count keeps all of them."""
    y = np.asarray(labels)
    labelled = np.flatnonzero(y >= 0)
    if len(labelled) == 0:
        raise ValueError("stratified_subset: no labelled rows (all labels < 0)")
    if size is None or size >= len(labelled):
        return labelled
    classes, counts = np.unique(y[labelled], return_counts=True)
    if size < len(classes):
        raise ValueError(f"stratified_subset: size {size} is below the {len(classes)} classes present")
    exact = counts / counts.sum() * size
    take = np.maximum(1, np.floor(exact).astype(int))
    order = np.argsort(-(exact - np.floor(exact)))
    i = 0
    while take.sum() < size:
        c = order[i % len(order)]
        if take[c] < counts[c]:
            take[c] += 1
        i += 1
    while take.sum() > size:
        c = int(np.argmax(take))
        take[c] -= 1
    rng = np.random.default_rng(seed)
    rows = [rng.choice(np.flatnonzero(y == c), size=int(k), replace=False) for c, k in zip(classes, take)]
    return np.sort(np.concatenate(rows))


def mild_class_weights(labels: np.ndarray | torch.Tensor, n_classes: int, power: float = 0.5) -> tuple[float, ...]:
    """"Mild class weights" (Sec. 4.3): ``w_c = (N / (K n_c)) ** power``, rescaled so the mean
    weight over training samples is 1; a class absent from ``labels`` gets the largest weight.
    ``power`` = 1 is inverse frequency, 0 no weighting; the paper gives no value (we use 0.5)."""
    y = np.asarray(labels)
    y = y[y >= 0]
    if len(y) == 0:
        raise ValueError("mild_class_weights: no labelled rows")
    if not 0 <= power <= 1:
        raise ValueError(f"parameter power must be in [0, 1]; got {power}")
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    if len(counts) > n_classes:
        raise ValueError(f"labels hold class {len(counts) - 1} but n_classes={n_classes}")
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = (len(y) / (n_classes * counts[present])) ** power
    w[~present] = w[present].max()
    w /= float((counts * w).sum() / len(y))
    return tuple(float(v) for v in w)


@dataclasses.dataclass
class FaceData:
    """The student's faces: FERPlus ``train`` (subset), ``val`` (subset, for checkpoint and D-Geo
    selection), ``test``; ``cross`` target sets for Table 2 (``ckplus``, ``affectnet_mini`` when
    present); normalisation ``mean``/``std`` of the training pixels (in [0, 1]); ``class_weights``;
    ``notes`` on where each set came from."""

    train: FaceSet
    val: FaceSet
    test: FaceSet
    cross: dict[str, FaceSet]
    mean: float
    std: float
    class_weights: tuple[float, ...]
    notes: dict[str, str]
    tag: str

    def counts_table(self) -> pd.DataFrame:
        sets = {"FERPlus train (used)": self.train, "FERPlus valid (used)": self.val, "FERPlus test": self.test}
        sets.update({f"{k} (cross-dataset)": v for k, v in self.cross.items()})
        table = pd.DataFrame({name: s.class_counts() for name, s in sets.items()}).T
        table["total"] = table.sum(axis=1)
        table["source"] = [s.source for s in sets.values()]
        return table


def prepare_faces(run: RunConfig, cfg: ChapterConfig, generated: bool = False) -> FaceData:
    """FERPlus train/valid/test from the data root (or the embedded generated faces), reduced per
    ``cfg`` (class-capped training subset, stratified validation/test subsets, drawn with the run's
    seed), and the cross-dataset targets: CK+ (``all``) and AffectNet-mini (``test``) when the data
    root holds them (CK+ from the generated default when there is no root).

    ``generated=True`` forces the embedded generated faces (the known-ground-truth probe), even
    when the run has a data root.
    """
    from affectlab.data.generate import embedded

    notes: dict[str, str] = {}
    if generated:
        splits = {s: embedded("ferplus", s) for s in ("train", "valid", "test")}
        notes["ferplus"] = "embedded generated faces (forced: known V/A ground truth)"
    else:
        loaded = {s: _load_or_embedded("ferplus", run, s) for s in ("train", "valid", "test")}
        splits = {s: v[0] for s, v in loaded.items()}
        notes["ferplus"] = loaded["train"][1]
    train_full, valid_full, test_full = splits["train"], splits["valid"], splits["test"]
    train = train_full.subset(class_capped_subset(train_full.labels, cfg.train_per_class, run.seed))
    val = valid_full.subset(stratified_subset(valid_full.labels, cfg.val_size, run.seed))
    test = test_full.subset(stratified_subset(test_full.labels, cfg.test_size, run.seed))
    cross: dict[str, FaceSet] = {}
    if not generated:
        ck, notes["ckplus"] = _load_or_embedded("ckplus", run, "all")
        cross["ckplus"] = ck.subset(stratified_subset(ck.labels, cfg.cross_size, run.seed))
        if run.data_root is not None and datasets.available("affectnet_mini", run.data_root):
            mini = datasets.load("affectnet_mini", run.data_root, "test")
            cross["affectnet_mini"] = mini.subset(stratified_subset(mini.labels, cfg.cross_size, run.seed))
            notes["affectnet_mini"] = "real copy under the data root"
        else:
            notes["affectnet_mini"] = "absent: not in the data root (the paper's AffectNet-mini is unpublished)"
    pixels = train.images.float() / 255.0
    weights = mild_class_weights(train.labels, len(FERPLUS_CLASSES), cfg.class_weight_power)
    tag = config_hash({"train": train.source, "n": len(train), "val": len(val), "test": len(test),
                       "seed": run.seed, "generated": generated})
    return FaceData(train=train, val=val, test=test, cross=cross, mean=float(pixels.mean()),
                    std=float(pixels.std()), class_weights=weights, notes=notes, tag=tag)


def _face_data(faces: FaceSet, data: FaceData, cfg: ChapterConfig, *, train: bool,
               extras: Mapping[str, torch.Tensor] | None = None) -> TensorData:
    """A :class:`TensorData` of a face set with the chapter's resize, normalisation and (training
    only) the paper's "safe" augmentation: random crop, flip, mild brightness/contrast jitter."""
    augment = None
    if train:
        augment = BatchAugment(AugmentConfig(crop_padding=cfg.crop_padding, crop_padding_mode="reflect",
                                             hflip_p=0.5, brightness=cfg.jitter, contrast=cfg.jitter))
    side = faces.images.shape[-1]
    return TensorData(
        faces.images, faces.labels, soft=faces.soft_labels.float() if (train and faces.soft_labels is not None) else None,
        extras=extras, batch_size=cfg.batch_size if train else 256, shuffle=train, drop_last=False,
        resize=None if side == cfg.image_size else cfg.image_size, mean=data.mean, std=data.std,
        augment=augment, name=f"{faces.name}/{faces.split}",
    )


# ----------------------------------------------------------------------------------------------
# loss terms (Sec. 4.3, Algorithm 2)
# ----------------------------------------------------------------------------------------------


def _kd_term(weight: float, temperature: float, kind: str, teacher: torch.nn.Module | None) -> LossTerm:
    """``weight * KD(z_s, z_t; T)`` (Alg. 2 line 7): teacher logits from the batch's
    "teacher_logits" (cached) or from ``teacher(batch["x"])`` (live, no gradient)."""

    def kd(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], epoch: int) -> torch.Tensor:
        if teacher is None:
            if "teacher_logits" not in batch:
                raise ValueError("KD term: the batch has no 'teacher_logits' (build the data with cached logits)")
            target = batch["teacher_logits"]
        else:
            was_training = teacher.training
            teacher.eval()
            with torch.no_grad():
                target = teacher(batch["x"])["logits"].float()
            teacher.train(was_training)
        return weight * kd_logit_loss(outputs["logits"], target, T=temperature, kind=kind)

    return kd


def _proto_term(weight: float, tau: float, prototypes: torch.Tensor, prior: torch.Tensor) -> LossTerm:
    """``weight * KL(q_pro || softmax(cos(f, P) / tau))`` (Alg. 2 line 11) against the frozen bank."""

    def proto_kd(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], epoch: int) -> torch.Tensor:
        feats = outputs["features"]
        return weight * proto_kd_loss(feats, prototypes.to(feats.device), prior.to(feats.device), tau=tau)

    return proto_kd


def _dgeo_term(cfg: ChapterConfig, params: DGeoParams, steps_per_epoch: int | None = None) -> LossTerm:
    """``lambda_geo * s_geo(t) * (alpha_var L_var + alpha_mar L_margin)`` (Alg. 2 lines 12-14), zero
    (and not computed) before the scaled late window.

    With ``steps_per_epoch`` the ramp advances per optimiser step: the k-th call of epoch e (the
    trainer counts epochs from 1) uses ``t = e - 1 + k / steps_per_epoch``, so the last step of
    epoch e sees ``t = e``. Without it the whole of epoch e uses ``t = e``.
    """
    positives = [FERPLUS_CLASSES.index(c) for c in cfg.positive_classes]
    if steps_per_epoch is not None and (isinstance(steps_per_epoch, bool) or steps_per_epoch < 1):
        raise ValueError(f"parameter steps_per_epoch must be an int >= 1 or None; got {steps_per_epoch!r}")
    state = {"epoch": None, "step": 0}

    def progress(epoch: int) -> float:
        if steps_per_epoch is None:
            return float(epoch)
        if state["epoch"] != epoch:
            state["epoch"], state["step"] = epoch, 0
        state["step"] = min(state["step"] + 1, steps_per_epoch)
        return epoch - 1 + state["step"] / steps_per_epoch

    def dgeo(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], epoch: int) -> torch.Tensor:
        feats = outputs["features"]
        w = dgeo_weight(progress(epoch), cfg.epochs, cfg.geo_weight, cfg.geo_start, cfg.geo_end,
                        cfg.geo_paper_epochs)
        if w == 0.0:
            return feats.new_zeros(())
        return w * dgeo_loss(feats, batch["y"], positives, params.sigma_max, params.margin,
                             params.alpha_var, params.alpha_mar)

    return dgeo


def variant_terms(
    variant: str,
    cfg: ChapterConfig,
    prototypes: np.ndarray | torch.Tensor | None = None,
    prior: np.ndarray | torch.Tensor | None = None,
    dgeo: DGeoParams | None = None,
    teacher: torch.nn.Module | None = None,
    steps_per_epoch: int | None = None,
) -> dict[str, LossTerm]:
    """The extra loss terms of ``variant`` (CE with label smoothing and class weights is the
    trainer's task loss): exactly :data:`VARIANT_TERMS` [variant]. KD uses T = ``kd_temperature``
    (5) except "Full" (``full_kd_temperature``, 1). ``teacher`` given = live KD, else cached
    logits from the batch; ``steps_per_epoch`` makes D-Geo's ramp advance per step. Missing
    ingredients for a term raise a clear error."""
    if variant not in VARIANT_TERMS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
    terms: dict[str, LossTerm] = {}
    for name in VARIANT_TERMS[variant]:
        if name == "kd":
            temperature = cfg.full_kd_temperature if variant == "Full" else cfg.kd_temperature
            terms["kd"] = _kd_term(cfg.kd_weight, temperature, cfg.kd_kind, teacher)
        elif name == "proto_kd":
            if prototypes is None or prior is None:
                raise ValueError(f"variant {variant} needs the prototype bank (prototypes and prior)")
            terms["proto_kd"] = _proto_term(cfg.proto_weight, cfg.proto_tau,
                                            torch.as_tensor(np.asarray(prototypes), dtype=torch.float32),
                                            torch.as_tensor(np.asarray(prior), dtype=torch.float32))
        elif name == "dgeo":
            if dgeo is None:
                raise ValueError(f"variant {variant} needs D-Geo parameters (DGeoParams)")
            terms["dgeo"] = _dgeo_term(cfg, dgeo, steps_per_epoch)
    return terms


# ----------------------------------------------------------------------------------------------
# students (Sec. 4.2-4.4, 5.2-5.3)
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class StudentRuns:
    """All trained students of one face-data setting.

    ``runs[(variant, seed)]`` -> :class:`FitResult`; ``vision_teacher`` the KD teacher's result
    (the first-seed B0 run itself when ``cfg.vision_teacher == "b0"``);
    ``dgeo`` the chosen D-Geo internals, ``dgeo_selection`` the candidates' validation scores and
    ``dgeo_runs`` every candidate run; ``ablation[(grid, seed)]`` the B2 runs with the
    ``ablation_grid`` bank; ``noise[seed]`` the extra B0 runs (``cfg.noise_seeds``) that measure
    run-to-run variation; ``seeds`` used.
    """

    runs: dict[tuple[str, int], FitResult]
    vision_teacher: FitResult
    dgeo: DGeoParams
    dgeo_selection: pd.DataFrame
    ablation: dict[tuple[int, int], FitResult]
    seeds: tuple[int, ...]
    variants: tuple[str, ...]
    prefix: str
    dgeo_runs: dict[str, FitResult] = dataclasses.field(default_factory=dict)
    noise: dict[int, FitResult] = dataclasses.field(default_factory=dict)

    def require(self, variant: str) -> None:
        """Raise a clear error unless ``variant`` was trained (for every seed)."""
        missing = [s for s in self.seeds if (variant, s) not in self.runs]
        if variant not in VARIANTS or missing:
            raise ValueError(f"parameter variant: {variant!r} was not trained here; trained variants are "
                             f"{self.variants}")

    def histories(self, variant: str) -> list[pd.DataFrame]:
        return [self.runs[(variant, s)].history for s in self.seeds if (variant, s) in self.runs]


def _student_model(arch: str, seed: int, head_input_scale: float | None = None) -> FERStudent:
    seed_everything(seed)
    return FERStudent(arch=arch, n_classes=len(FERPLUS_CLASSES), proj_dim=256, in_channels=1,
                      head_input_scale=head_input_scale)


def _train_vision_teacher(data: FaceData, cfg: ChapterConfig, run: RunConfig, prefix: str) -> FitResult:
    """The KD teacher (Sec. 4.3 "a vision teacher"; unnamed in the paper): the student's
    architecture (``vision_teacher_arch``) trained on the FERPlus crowd-vote distributions
    (soft-target CE, Barsoum et al. 2016's best scheme) with the same recipe, so its logits carry
    the annotators' confusions. Falls back to hard labels with label smoothing when a set has no
    vote distributions (generated faces)."""
    soft = data.train.soft_labels is not None
    train = _face_data(data.train, data, cfg, train=True)
    val = _face_data(data.val, data, cfg, train=False)
    seed = run.seed + 1000
    config = _train_config(cfg, seed, target="soft" if soft else "hard", label_smoothing=0.0 if soft else cfg.label_smoothing)
    key = {"chapter": CHAPTER, "role": "vision_teacher", "arch": cfg.vision_teacher_arch, "init_seed": seed,
           "faces": data.tag}
    key["head_input_scale"] = cfg.head_input_scale
    return fit(_student_model(cfg.vision_teacher_arch, seed, cfg.head_input_scale), train, val, config, key=key,
               name=f"{prefix}-vision-teacher", device=run.device)


def _cached_teacher_logits(teacher: FitResult, data: FaceData, cfg: ChapterConfig, run: RunConfig) -> torch.Tensor:
    """The teacher's logits for every training row (un-augmented images), in row order."""
    plain = _face_data(data.train, data, cfg, train=False)
    preds = predict(teacher.model, plain, run.device, task="classification")
    logits = torch.empty_like(preds.outputs)
    logits[preds.index] = preds.outputs
    return logits


def _train_one_student(
    variant: str, seed: int, data: FaceData, bank: Mapping[str, Any], dgeo: DGeoParams | None,
    teacher: FitResult | None, teacher_logits: torch.Tensor | None, cfg: ChapterConfig, run: RunConfig,
    prefix: str,
) -> FitResult:
    """One student run (train-or-load); the key covers every loss-term setting the tensors don't."""
    uses_kd = "kd" in VARIANT_TERMS[variant]
    live = cfg.kd_source == "live"
    if uses_kd and (teacher is None or (not live and teacher_logits is None)):
        raise ValueError(f"variant {variant} uses KD but no vision teacher (or its cached logits) was given")
    extras = {"teacher_logits": teacher_logits} if (uses_kd and not live) else None
    train = _face_data(data.train, data, cfg, train=True, extras=extras)
    val = _face_data(data.val, data, cfg, train=False)
    if live and uses_kd:
        teacher.model.to(run.device)
    steps = train.num_batches(train=True)
    if cfg.steps_per_epoch is not None:
        steps = min(steps, cfg.steps_per_epoch)
    terms = variant_terms(variant, cfg, bank["prototypes"], bank["prior"], dgeo,
                          teacher=teacher.model if (live and uses_kd) else None, steps_per_epoch=steps)
    config = _train_config(cfg, seed, class_weights=data.class_weights)
    key = {
        "chapter": CHAPTER, "role": "student", "variant": variant, "arch": cfg.arch, "init_seed": seed,
        "faces": data.tag, "head_input_scale": cfg.head_input_scale,
        "kd": None if not uses_kd else {"weight": cfg.kd_weight, "kind": cfg.kd_kind, "source": cfg.kd_source,
                                        "T": cfg.full_kd_temperature if variant == "Full" else cfg.kd_temperature,
                                        "teacher": teacher.config_hash},
        "proto": None if "proto_kd" not in terms else {"weight": cfg.proto_weight, "tau": cfg.proto_tau,
                                                       "bank_sha256": bank["sha256"], "grid": bank["grid"]},
        "dgeo": None if "dgeo" not in terms else {
            **dataclasses.asdict(dgeo), "weight": cfg.geo_weight, "window": [cfg.geo_start, cfg.geo_end],
            "paper_epochs": cfg.geo_paper_epochs, "positives": list(cfg.positive_classes), "ramp": "per step"},
    }
    grid_tag = "" if bank["grid"] == cfg.grid else f"-g{bank['grid']}"
    return fit(_student_model(cfg.arch, seed, cfg.head_input_scale), train, val, config, key=key, extra_terms=terms,
               name=f"{prefix}-{variant}{grid_tag}-s{seed}", device=run.device)


def train_students(
    data: FaceData,
    banks: PrototypeBanks,
    cfg: ChapterConfig,
    run: RunConfig,
    variants: Sequence[str] = VARIANTS,
    prefix: str = "ch01",
    select_dgeo: bool = True,
    grid_ablation: bool = True,
) -> StudentRuns:
    """Train (or load) everything the tables need, in this order:

    1. the vision KD teacher and its cached logits: the first-seed B0 (``cfg.vision_teacher="b0"``)
       or a separate network on the vote distributions (:func:`_train_vision_teacher`);
    2. D-Geo internals: B3 with each of ``cfg.dgeo_candidates`` (sigma_max, m) on the first seed,
       then the best one with each of ``cfg.dgeo_alpha_candidates`` (alpha_var, alpha_mar); the
       best FERPlus-validation macro-F1 wins (the chosen run is B3's first-seed run, reused by
       train-or-load); ``select_dgeo=False`` takes the first candidate;
    3. every variant x seed (best checkpoint by validation macro-F1);
    4. the grid ablation: B2 with the ``ablation_grid`` bank on ``cfg.ablation_seeds`` seeds;
    5. ``cfg.noise_seeds`` extra B0 seeds (the run-to-run spread of the recipe).
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {VARIANTS}")
    seeds = cfg.seeds(run.seed)
    main = banks.main
    runs: dict[tuple[str, int], FitResult] = {}
    if cfg.vision_teacher == "b0":
        teacher = runs[("B0", seeds[0])] = _train_one_student("B0", seeds[0], data, main, None, None, None, cfg,
                                                              run, prefix)
    else:
        teacher = _train_vision_teacher(data, cfg, run, prefix)
    needs_logits = cfg.kd_source == "cached" and any("kd" in VARIANT_TERMS[v] for v in variants)
    logits = _cached_teacher_logits(teacher, data, cfg, run) if needs_logits else None
    rows: list[dict[str, Any]] = []
    dgeo_runs: dict[str, FitResult] = {}
    needs_dgeo = any("dgeo" in VARIANT_TERMS[v] for v in variants)
    best: tuple[float, DGeoParams] | None = None

    def try_candidate(params: DGeoParams, stage: str) -> None:
        nonlocal best
        result = _train_one_student("B3", seeds[0], data, main, params, teacher, logits, cfg, run, prefix)
        value = float(result.best_value) if result.best_value is not None else float("nan")
        dgeo_runs[params.label] = result
        rows.append({"stage": stage, **dataclasses.asdict(params), "val macro-F1 (best epoch)": value,
                     "best epoch": result.best_epoch, "run": result.run_dir.name})
        if best is None or value > best[0]:
            best = (value, params)

    if needs_dgeo:
        for params in (cfg.dgeo_candidates if select_dgeo else cfg.dgeo_candidates[:1]):
            try_candidate(params, "sigma_max, m")
        if select_dgeo:
            for alpha_var, alpha_mar in cfg.dgeo_alpha_candidates:
                params = dataclasses.replace(best[1], alpha_var=float(alpha_var), alpha_mar=float(alpha_mar))
                if params.label not in dgeo_runs:
                    try_candidate(params, "alpha_var, alpha_mar")
    chosen = best[1] if best is not None else cfg.dgeo_candidates[0]
    selection = pd.DataFrame(rows)
    if len(selection):
        selection["chosen"] = [DGeoParams(r["sigma_max"], r["margin"], r["alpha_var"], r["alpha_mar"]) == chosen
                               for r in rows]
    for variant in variants:
        for seed in seeds:
            if (variant, seed) not in runs:
                runs[(variant, seed)] = _train_one_student(variant, seed, data, main, chosen, teacher, logits,
                                                           cfg, run, prefix)
    ablation: dict[tuple[int, int], FitResult] = {}
    if grid_ablation and "B2" in variants:
        for seed in seeds[: cfg.ablation_seeds]:
            ablation[(banks.ablation["grid"], seed)] = _train_one_student(
                "B2", seed, data, banks.ablation, chosen, teacher, logits, cfg, run, prefix)
    noise: dict[int, FitResult] = {}
    if "B0" in variants:
        for seed in range(seeds[-1] + 1, seeds[-1] + 1 + cfg.noise_seeds):
            noise[seed] = _train_one_student("B0", seed, data, main, None, None, None, cfg, run, prefix)
    return StudentRuns(runs=runs, vision_teacher=teacher, dgeo=chosen, dgeo_selection=selection,
                       ablation=ablation, seeds=seeds, variants=tuple(variants), prefix=prefix,
                       dgeo_runs=dgeo_runs, noise=noise)


def student_predictions(result: FitResult, faces: FaceSet, data: FaceData, cfg: ChapterConfig,
                        run: RunConfig) -> Predictions:
    """Logits and 256-D features of the best checkpoint on ``faces`` (row order), cached beside the
    checkpoint as ``predictions-<fingerprint>.pt`` so a rerun does not recompute them."""
    td = _face_data(faces, data, cfg, train=False)
    tag = config_hash({"data": td.describe(), "best": result.best_epoch, "hash": result.config_hash})
    path = result.run_dir / f"predictions-{tag}.pt"
    if path.exists():
        state = torch.load(path, weights_only=True)
        return Predictions(state["outputs"], state["labels"], state["features"], state["index"], "logits")
    preds = predict(result.model, td, run.device, task="classification")
    order = torch.argsort(preds.index)
    out = Predictions(preds.outputs[order], preds.labels[order], preds.features[order], preds.index[order], "logits")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"outputs": out.outputs, "labels": out.labels, "features": out.features, "index": out.index}, tmp)
    os.replace(tmp, path)
    return out


# ----------------------------------------------------------------------------------------------
# tables (Sec. 5, App. A.1-A.2)
# ----------------------------------------------------------------------------------------------


def _eight_way(true: np.ndarray, scores: np.ndarray, key: str) -> float:
    """The fixed 8-way FER mapping (arg-max over all 8 classes): accuracy, macro-F1 over all 8
    classes (an absent class counts as F1 = 0) or bACC over the classes present in ``true``."""
    pred = scores.argmax(1)
    if key == "accuracy":
        return metrics.accuracy(true, pred)
    if key == "macro_f1":
        return metrics.macro_f1(true, pred, labels=list(range(len(FERPLUS_CLASSES))))
    return metrics.balanced_accuracy(true, pred)


def _present_only(true: np.ndarray, scores: np.ndarray, key: str) -> float:
    """Present-only metrics with the arg-max over the present classes (metrics.present_only_metrics
    with ``scores``: the reading that matches the paper's Table 2)."""
    labels = list(range(len(FERPLUS_CLASSES)))
    return metrics.present_only_metrics(true, scores.argmax(1), labels=labels, scores=scores)[key]


METRIC_NAMES = {"accuracy": "Acc", "macro_f1": "Macro-F1", "balanced_accuracy": "bACC"}
Scorer = Callable[[np.ndarray, np.ndarray, str], float]


def _seed_mean_with_ci(true: np.ndarray, per_seed_scores: Sequence[np.ndarray], scorer: Scorer,
                       resamples: int, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per metric: the mean over seeds, its 95% stratified-bootstrap CI (``resamples`` resamples of
    the test rows, the same rows for every seed, App. A.1) and the per-seed values."""
    scores = np.stack(per_seed_scores)  # (S, N, K)
    flat = scores.transpose(1, 0, 2).reshape(len(true), -1)  # the seeds' rows are resampled together
    k = scores.shape[2]
    out: dict[str, dict[str, Any]] = {}
    for key in METRIC_NAMES:
        def mean_over_seeds(t: np.ndarray, p: np.ndarray, key: str = key) -> float:
            return float(np.mean([scorer(t, p[:, s * k:(s + 1) * k], key) for s in range(len(scores))]))

        point, low, high = stats.bootstrap_ci(mean_over_seeds, true, flat, n_resamples=resamples, seed=seed)
        out[key] = {"mean": point, "low": low, "high": high, "per_seed": [scorer(true, s, key) for s in scores]}
    return out


def _fmt(m: Mapping[str, float]) -> str:
    return f"{100 * m['mean']:.2f} [{100 * m['low']:.2f}, {100 * m['high']:.2f}]"


def _collect(students: StudentRuns, variant: str, faces: FaceSet, data: FaceData, cfg: ChapterConfig,
             run: RunConfig) -> tuple[np.ndarray, list[np.ndarray]]:
    students.require(variant)
    preds = [student_predictions(students.runs[(variant, s)], faces, data, cfg, run) for s in students.seeds]
    return preds[0].labels.numpy(), [p.outputs.numpy() for p in preds]


def baseline_scores(true: np.ndarray, setting: str = "8-way") -> dict[str, dict[str, float]]:
    """Reference points for a label vector ``true`` (fractions, not %):

    - ``"majority"``: always predicting the most frequent class of ``true`` (exact values; the
      class is ``["majority"]["class"]``, an index into :data:`FERPLUS_CLASSES`);
    - ``"chance"``: guessing uniformly among the K classes of the arg-max (``setting`` "8-way":
      K = 8; "present-only": the classes present in ``true``), as large-sample expectations:
      Acc = bACC = 1/K and per-class F1 = 2 p_c (1/K) / (p_c + 1/K) with p_c the class share
      (precision p_c, recall 1/K), macro-averaged like the models (8-way: over all 8 classes, an
      absent class scoring 0; present-only: over the present classes).
    """
    true = np.asarray(true)
    if true.ndim != 1 or len(true) == 0:
        raise ValueError(f"parameter true must be a non-empty 1-D label array; got shape {true.shape}")
    if setting not in ("8-way", "present-only"):
        raise ValueError(f"parameter setting must be '8-way' or 'present-only'; got {setting!r}")
    n_all = len(FERPLUS_CLASSES)
    present = sorted(set(true.tolist()))
    counts = np.bincount(true, minlength=n_all)
    majority = int(np.argmax(counts))
    constant = np.full(len(true), majority)
    labels = list(range(n_all)) if setting == "8-way" else present
    out = {"majority": {"class": majority, "accuracy": metrics.accuracy(true, constant),
                        "macro_f1": metrics.macro_f1(true, constant, labels=labels),
                        "balanced_accuracy": metrics.balanced_accuracy(true, constant)}}
    k = n_all if setting == "8-way" else len(present)
    share = counts[labels] / len(true)
    f1 = np.where(share > 0, 2 * share / k / np.maximum(share + 1 / k, 1e-12), 0.0)
    out["chance"] = {"accuracy": 1 / k, "macro_f1": float(f1.mean()), "balanced_accuracy": 1 / k}
    return out


def _baseline_text(values: Mapping[str, float]) -> str:
    return " / ".join(f"{100 * values[key]:.2f}" for key in METRIC_NAMES)


def ablation_table(students: StudentRuns, data: FaceData, cfg: ChapterConfig, run: RunConfig,
                   split: str = "test") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Table 3: each variant's 8-way Acc / Macro-F1 / bACC (%) on the FERPlus ``split`` ("test" or
    "val"): mean over seeds [95% stratified bootstrap CI], beside the paper's numbers (its Table 3,
    FERPlus validation), with ``n`` and the data source. Below the variants: B0 at the extra
    ``noise`` seeds (same recipe, another seed: the run-to-run spread), the majority-class
    predictor and uniform chance (:func:`baseline_scores`). Returns the display table and the raw
    numbers (for the metrics JSON; baselines under ``"_baselines"``, noise runs under ``"_noise"``)."""
    if split not in ("test", "val"):
        raise ValueError(f"parameter split must be 'test' or 'val'; got {split!r}")
    faces = {"test": data.test, "val": data.val}[split]
    rows, raw = [], {}
    source = short_source(faces.source)

    def add_row(label: str, terms: str, res: Mapping[str, Any], paper: Sequence[float] | None, seeds: Any) -> None:
        row: dict[str, Any] = {"variant": label, "terms": terms}
        for key, short in METRIC_NAMES.items():
            row[f"{short} (%) ours"] = _fmt(res[key])
        for i, short in enumerate(METRIC_NAMES.values()):
            row[f"{short} (%) paper"] = "-" if paper is None else f"{paper[i]:.2f}"
        row.update({"seeds": seeds, "n": len(faces), "data": source})
        rows.append(row)

    for variant in students.variants:
        true, scores = _collect(students, variant, faces, data, cfg, run)
        res = _seed_mean_with_ci(true, scores, _eight_way, cfg.bootstrap_resamples)
        raw[variant] = res
        add_row(VARIANT_LABELS[variant], "CE(LS+CW)" + "".join(f" + {t}" for t in VARIANT_TERMS[variant]), res,
                PAPER_TABLE3[variant], len(scores))
    raw["_noise"] = {}
    for seed, result in students.noise.items():
        pred = student_predictions(result, faces, data, cfg, run)
        res = _seed_mean_with_ci(pred.labels.numpy(), [pred.outputs.numpy()], _eight_way, cfg.bootstrap_resamples)
        raw["_noise"][seed] = res
        add_row(f"B0, seed {seed} (run-to-run spread)", "CE(LS+CW)", res, None, 1)
    true = faces.labels.numpy()
    base = baseline_scores(true[true >= 0], "8-way")
    raw["_baselines"] = base
    exact = {key: {"mean": v, "low": v, "high": v} for key, v in base["majority"].items() if key != "class"}
    add_row(f"majority class ({FERPLUS_CLASSES[base['majority']['class']]})", "constant prediction", exact, None, "-")
    chance = {key: {"mean": v, "low": v, "high": v} for key, v in base["chance"].items()}
    add_row("chance (uniform guess, expected)", "-", chance, None, "-")
    return pd.DataFrame(rows).set_index("variant"), raw


def cross_dataset_table(students: StudentRuns, data: FaceData, cfg: ChapterConfig, run: RunConfig,
                        variant: str = "B3") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Table 2 for ``variant`` (the paper: A3_full = B3): for each target set (CK+, AffectNet-mini
    when present, FERPlus valid and test) the present classes, present-only and fixed 8-way
    Acc / Macro-F1 / bACC (%) as mean over seeds [95% bootstrap CI], with the paper's values, and
    the majority-class and uniform-chance reference points of both settings as "Acc / Macro-F1 /
    bACC" (:func:`baseline_scores`)."""
    students.require(variant)
    targets = dict(data.cross)
    targets["ferplus_valid"] = data.val
    targets["ferplus_test"] = data.test
    rows, raw = [], {}
    for name, faces in targets.items():
        true, scores = _collect(students, variant, faces, data, cfg, run)
        present = [FERPLUS_CLASSES[c] for c in sorted(set(true.tolist()))]
        res_present = _seed_mean_with_ci(true, scores, _present_only, cfg.bootstrap_resamples)
        res_eight = _seed_mean_with_ci(true, scores, _eight_way, cfg.bootstrap_resamples)
        base = {setting: baseline_scores(true, setting) for setting in ("present-only", "8-way")}
        raw[name] = {"present_only": res_present, "eight_way": res_eight, "present": present, "n": int(len(true)),
                     "source": faces.source, "baselines": base}
        row: dict[str, Any] = {"dataset": name, "n": len(true), "data": short_source(faces.source),
                               "present classes": ", ".join(present)}
        for key, short in METRIC_NAMES.items():
            row[f"present-only {short} (%) ours"] = _fmt(res_present[key])
        for key, short in METRIC_NAMES.items():
            row[f"8-way {short} (%) ours"] = _fmt(res_eight[key])
        paper = PAPER_TABLE2.get(name)
        for i, short in enumerate(f"{p} {m}" for p in ("present-only", "8-way") for m in METRIC_NAMES.values()):
            row[f"{short} (%) paper"] = "-" if paper is None else f"{paper[i]:.2f}"
        row["majority class"] = FERPLUS_CLASSES[base["8-way"]["majority"]["class"]]
        for setting in ("present-only", "8-way"):
            row[f"{setting} majority Acc / Macro-F1 / bACC (%)"] = _baseline_text(base[setting]["majority"])
            row[f"{setting} chance Acc / Macro-F1 / bACC (%)"] = _baseline_text(base[setting]["chance"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("dataset"), raw


def grid_ablation_table(students: StudentRuns, banks: PrototypeBanks, data: FaceData, cfg: ChapterConfig,
                        run: RunConfig) -> pd.DataFrame:
    """Sec. 5.3 "grid size": B2 with the 5x5 bank against B2 with the 7x7 bank (same seeds,
    ``cfg.ablation_seeds``): empty bins of each bank, best validation macro-F1, and test Acc /
    Macro-F1 (%) as mean over seeds [95% bootstrap CI]."""
    rows = []
    seeds = [s for s in students.seeds[: cfg.ablation_seeds] if (banks.ablation["grid"], s) in students.ablation]
    if not seeds:
        raise ValueError("no grid-ablation runs (train_students(..., grid_ablation=True) with variant B2)")
    for bank, results in ((banks.main, [students.runs[("B2", s)] for s in seeds]),
                          (banks.ablation, [students.ablation[(banks.ablation["grid"], s)] for s in seeds])):
        preds = [student_predictions(r, data.test, data, cfg, run) for r in results]
        res = _seed_mean_with_ci(preds[0].labels.numpy(), [p.outputs.numpy() for p in preds],
                                 _eight_way, cfg.bootstrap_resamples)
        rows.append({"bank": f"{bank['grid']}x{bank['grid']}", "empty bins": int((bank["coverage"] == 0).sum()),
                     "bins": int(bank["coverage"].size),
                     "val macro-F1 (%) best epoch": 100 * float(np.mean([r.best_value for r in results])),
                     "test Acc (%)": _fmt(res["accuracy"]), "test Macro-F1 (%)": _fmt(res["macro_f1"]),
                     "seeds": len(seeds)})
    return pd.DataFrame(rows).set_index("bank")


def present_only_confusion(students: StudentRuns, faces: FaceSet, data: FaceData, cfg: ChapterConfig,
                           run: RunConfig, variant: str = "B3", title: str = "") -> Figure:
    """Fig. 5: row-normalised confusion over the classes present in ``faces`` with the prediction
    taken as the arg-max over those classes (present-only), for ``variant``'s first seed."""
    students.require(variant)
    pred = student_predictions(students.runs[(variant, students.seeds[0])], faces, data, cfg, run)
    true = pred.labels.numpy()
    present = sorted(set(true.tolist()))
    guess = np.array(present)[pred.outputs.numpy()[:, present].argmax(1)]
    cm = metrics.confusion_matrix(true, guess, labels=present)
    return plots.confusion_matrix_figure(cm, [FERPLUS_CLASSES[c] for c in present], title=title, normalize=True)


def feature_geometry_table(students: StudentRuns, faces: FaceSet, data: FaceData, cfg: ChapterConfig,
                           run: RunConfig) -> pd.DataFrame:
    """The geometry D-Geo targets (Sec. 5.4, Fig. 6), on ``faces``: per variant (mean over seeds) the
    within-class spread (mean squared distance to the class mean of the unit-norm features) of
    the high-valence classes and of the others, and the smallest / mean distance between class means."""
    positives = [FERPLUS_CLASSES.index(c) for c in cfg.positive_classes]
    rows = []
    for variant in students.variants:
        values: dict[str, list[float]] = {}
        for seed in students.seeds:
            pred = student_predictions(students.runs[(variant, seed)], faces, data, cfg, run)
            f, y = pred.features.numpy().astype(np.float64), pred.labels.numpy()
            classes = [c for c in np.unique(y) if (y == c).sum() >= 2]
            means = {c: f[y == c].mean(0) for c in classes}
            spread = {c: float(((f[y == c] - means[c]) ** 2).sum(1).mean()) for c in classes}
            dists = [np.linalg.norm(means[a] - means[b]) for i, a in enumerate(classes) for b in classes[i + 1:]]
            values.setdefault("high-valence spread", []).append(np.mean([spread[c] for c in classes if c in positives]))
            values.setdefault("other-class spread", []).append(np.mean([spread[c] for c in classes if c not in positives]))
            values.setdefault("min class-mean distance", []).append(float(np.min(dists)))
            values.setdefault("mean class-mean distance", []).append(float(np.mean(dists)))
        rows.append({"variant": VARIANT_LABELS[variant], **{k: float(np.mean(v)) for k, v in values.items()}})
    return pd.DataFrame(rows).set_index("variant")


# ----------------------------------------------------------------------------------------------
# known ground truth: does Proto-KD organise features along V/A? (generated faces)
# ----------------------------------------------------------------------------------------------


def _ridge_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    """Test predictions of a ridge probe (standardised features; alpha by efficient leave-one-out
    CV on the training rows over 1e-2 ... 1e4) fit on ``train_x`` -> ``train_y``."""
    from sklearn.linear_model import RidgeCV
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    probe = RidgeCV(alphas=np.logspace(-2, 4, 13)).fit(scaler.transform(train_x), train_y)
    return probe.predict(scaler.transform(test_x))


def _r2(true: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (NaN for a constant target)."""
    denom = float(((true - true.mean()) ** 2).sum())
    return float("nan") if denom == 0 else 1.0 - float(((true - pred) ** 2).sum()) / denom


@dataclasses.dataclass
class ProbeResult:
    """The known-ground-truth probe: ``table`` (R^2 per variant, target and axis with 95% CIs),
    ``delta`` (paired R^2(B2) - R^2(B0) per target and axis, plus the V/A mean, with 95% CIs over
    the same resampled test faces), ``verdict`` (a sentence computed from the V/A-mean row),
    ``organises`` (True / False / None = no detectable difference), and the trained runs and data."""

    table: pd.DataFrame
    delta: pd.DataFrame
    verdict: str
    organises: bool | None
    students: StudentRuns
    faces: FaceData


def probe_verdict(delta: float, low: float, high: float) -> tuple[bool | None, str]:
    """The probe's conclusion from the paired ``R^2(B2) - R^2(B0)`` and its 95% CI: True
    ("organises") when the CI lies above 0, False when below, None (no detectable difference)
    when it contains 0; with the sentence to print."""
    if not low <= high:
        raise ValueError(f"the interval must have low <= high; got [{low}, {high}]")
    organises = True if low > 0 else False if high < 0 else None
    summary = f"delta R^2 = {delta:+.3f} [{low:+.3f}, {high:+.3f}]"
    verdict = {True: f"Proto-KD (B2) organises the features along V/A more than CE alone (B0): {summary}.",
               False: f"Proto-KD (B2) leaves the features *less* linearly related to V/A than CE alone (B0): {summary}.",
               None: f"No detectable difference between B2 and B0 in how linearly the features encode V/A: {summary} "
                     "(the 95% CI contains 0)."}[organises]
    return organises, verdict


def known_ground_truth_probe(banks: PrototypeBanks, cfg: ChapterConfig, run: RunConfig) -> ProbeResult:
    """Item 8 of the chapter: on the embedded generated faces (valence/arousal planted per image:
    the category's circumplex point scaled by the expression intensity), train B0 and B2 (same
    frozen bank, the generated-face B0 as KD teacher) and probe V/A linearly from the 256-D
    features: a ridge probe fit on the validation faces, R^2 on the test faces (mean over seeds)
    with a 95% bootstrap CI over test faces. "within-class" probes the V/A left after subtracting
    each class's mean V/A (what the category alone cannot explain).

    The verdict uses the paired difference ``R^2(B2) - R^2(B0)`` averaged over valence and arousal,
    bootstrapped over the *same* resampled test faces for both variants: "organises" when its 95%
    CI lies above 0, "disorganises" below 0, otherwise no detectable difference."""
    data = prepare_faces(run, cfg, generated=True)
    for split in ("val", "test"):
        faces = getattr(data, split)
        if faces.valence is None or faces.arousal is None:
            raise ValueError(f"generated faces ({split}) carry no valence/arousal; the probe needs them")
    probe_cfg = dataclasses.replace(cfg, epochs=cfg.probe_epochs, batch_size=min(cfg.batch_size, 64), noise_seeds=0)
    students = train_students(data, banks, probe_cfg, run, variants=("B0", "B2"), prefix="ch01-probe",
                              select_dgeo=False, grid_ablation=False)
    va = {s: torch.stack([getattr(data, s).valence, getattr(data, s).arousal], 1).numpy() for s in ("val", "test")}
    labels = {s: getattr(data, s).labels.numpy() for s in ("val", "test")}
    class_mean = {c: va["val"][labels["val"] == c].mean(0) for c in np.unique(labels["val"])}
    residual = {s: va[s] - np.stack([class_mean.get(c, np.zeros(2)) for c in labels[s]]) for s in ("val", "test")}
    features = {(v, s): {split: student_predictions(students.runs[(v, s)], getattr(data, split), data, probe_cfg,
                                                    run).features.numpy() for split in ("val", "test")}
                for v in ("B0", "B2") for s in students.seeds}
    rows, deltas = [], []
    preds: dict[tuple[str, str, int], list[np.ndarray]] = {}
    n_test = len(labels["test"])
    for target_name, targets in (("V/A", va), ("within-class V/A", residual)):
        for axis, axis_name in enumerate(("valence", "arousal")):
            for variant in ("B0", "B2"):
                preds[(variant, target_name, axis)] = [
                    _ridge_probe(features[(variant, seed)]["val"], targets["val"][:, axis],
                                 features[(variant, seed)]["test"]) for seed in students.seeds]
    truth = {(t, a): (va if t == "V/A" else residual)["test"][:, a] for t in ("V/A", "within-class V/A") for a in (0, 1)}

    def r2(variant: str, target: str, axes: Sequence[int], idx: np.ndarray) -> float:
        return float(np.mean([np.mean([_r2(truth[(target, a)][idx], p[idx]) for p in preds[(variant, target, a)]])
                              for a in axes]))

    for target_name in ("V/A", "within-class V/A"):
        for axes, axis_name in (((0,), "valence"), ((1,), "arousal"), ((0, 1), "V/A mean")):
            for variant in ("B0", "B2"):
                if len(axes) == 1:
                    point, low, high = _bootstrap_rows(lambda idx: r2(variant, target_name, axes, idx), n_test,
                                                       cfg.bootstrap_resamples, seed=0)
                    rows.append({"variant": VARIANT_LABELS[variant], "target": f"{target_name}: {axis_name}",
                                 "R2": point, "low": low, "high": high,
                                 "R2 per seed": ", ".join(f"{_r2(truth[(target_name, axes[0])], p):.3f}"
                                                          for p in preds[(variant, target_name, axes[0])])})
            point, low, high = _bootstrap_rows(
                lambda idx: r2("B2", target_name, axes, idx) - r2("B0", target_name, axes, idx), n_test,
                cfg.bootstrap_resamples, seed=0)
            deltas.append({"target": f"{target_name}: {axis_name}", "R2 B0": r2("B0", target_name, axes, np.arange(n_test)),
                           "R2 B2": r2("B2", target_name, axes, np.arange(n_test)), "delta R2 (B2 - B0)": point,
                           "low": low, "high": high})
    delta = pd.DataFrame(deltas)
    main = delta.set_index("target").loc["V/A: V/A mean"]
    organises, verdict = probe_verdict(main["delta R2 (B2 - B0)"], main["low"], main["high"])
    return ProbeResult(table=pd.DataFrame(rows), delta=delta, verdict=verdict, organises=organises,
                       students=students, faces=data)


# ----------------------------------------------------------------------------------------------
# artifacts (Sec. 7, Table 1)
# ----------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_artifacts(banks: PrototypeBanks, students: StudentRuns, metrics_by_dataset: Mapping[str, Any],
                    cfg: ChapterConfig, run: RunConfig,
                    tables: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Paper Sec. 7 / Table 1: the prototype banks, the best checkpoint of every trained network
    (variants x seeds, every D-Geo candidate, the grid-ablation and run-to-run B0 runs, a separate
    vision teacher), one metrics JSON per dataset, ``tables`` as CSV (e.g. the D-Geo selection and
    the grid ablation) and an ablation fingerprint JSON, listed with SHA-256 digests in
    ``SHA256SUMS.txt`` (paths relative to it; check with ``sha256sum -c SHA256SUMS.txt``)."""
    out = artifact_dir(cfg, run)
    files: list[tuple[str, Path]] = [("prototype bank 5x5" if b["grid"] == cfg.grid else f"prototype bank {b['grid']}x{b['grid']}", b["path"])
                                     for b in (banks.main, banks.ablation)]
    for name, payload in metrics_by_dataset.items():
        path = out / f"metrics_{name}.json"
        path.write_text(json.dumps(_jsonable(payload), indent=2, sort_keys=True) + "\n")
        files.append((f"metrics {name}", path))
    fingerprint = {
        "config": dataclasses.asdict(cfg), "run": _run_key(run), "seed": run.seed,
        "dgeo_chosen": dataclasses.asdict(students.dgeo), "bank_sha256": banks.main["sha256"],
        "runs": {f"{v}-s{s}": r.config_hash for (v, s), r in students.runs.items()},
        "vision_teacher": students.vision_teacher.config_hash,
    }
    fp_path = out / "ablation_fingerprint.json"
    fp_path.write_text(json.dumps(_jsonable(fingerprint), indent=2, sort_keys=True) + "\n")
    files.append(("ablation fingerprint", fp_path))
    for name, table in (tables or {}).items():
        path = out / f"table_{name}.csv"
        table.to_csv(path)
        files.append((f"table {name}", path))
    checkpoints: dict[Path, str] = {}
    for (variant, seed), result in students.runs.items():
        checkpoints.setdefault(result.best_path, f"student {variant} seed {seed} (best)")
    for label, result in students.dgeo_runs.items():
        checkpoints.setdefault(result.best_path, f"student B3 D-Geo candidate {label} (best)")
    for (grid, seed), result in students.ablation.items():
        checkpoints.setdefault(result.best_path, f"student B2 {grid}x{grid} bank seed {seed} (best)")
    for seed, result in students.noise.items():
        checkpoints.setdefault(result.best_path, f"student B0 seed {seed}, run-to-run spread (best)")
    checkpoints.setdefault(students.vision_teacher.best_path, "vision KD teacher (best)")
    files.extend((label, path) for path, label in checkpoints.items() if path is not None)
    rows, lines = [], []
    for label, path in files:
        digest = file_sha256(path)
        rel = os.path.relpath(path, out)
        rows.append({"artifact": label, "file": rel, "bytes": path.stat().st_size, "SHA-256": digest})
        lines.append(f"{digest}  {rel}")
    (out / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------


def topomap_grid_figure(rows: Mapping[str, np.ndarray], mask: np.ndarray, bands: Sequence[str], title: str,
                        scales: Sequence[str] | None = None, colorbar_label: str = "a.u.",
                        cmap: str = "RdBu_r") -> Figure:
    """Fig. 3: one row of band topomaps per entry of ``rows`` ((bands, S, S) each; outside the head
    blank), nose up (row 0 of a map is the front), subject's left on the left.

    ``scales[i]`` sets row i's colour range: "shared" rows share one range (min to max over all of
    them), "symmetric" rows get their own range symmetric about 0 (differences), "own" their own
    min-max. Every row has a colour bar labelled ``colorbar_label``.
    """
    names = list(rows)
    scales = list(scales) if scales is not None else ["own"] * len(names)
    if len(scales) != len(names) or any(m not in ("shared", "symmetric", "own") for m in scales):
        raise ValueError(f"scales must give 'shared', 'symmetric' or 'own' for each of {len(names)} rows")
    arrays = {n: np.asarray(rows[n], dtype=np.float64) for n in names}
    shared = [arrays[n][:, mask] for n, m in zip(names, scales) if m == "shared"]
    shared_range = (min(a.min() for a in shared), max(a.max() for a in shared)) if shared else None
    fig = Figure(figsize=(1.9 * len(bands) + 1.4, 1.9 * len(names) + 0.7), layout="constrained")
    axes = fig.subplots(len(names), len(bands), squeeze=False)
    for r, (name, mode) in enumerate(zip(names, scales)):
        maps = arrays[name]
        if maps.shape[0] != len(bands):
            raise ValueError(f"row {name!r} has {maps.shape[0]} maps for {len(bands)} bands")
        inside = maps[:, mask]
        if mode == "shared":
            vmin, vmax = shared_range
        elif mode == "symmetric":
            bound = float(np.abs(inside).max()) or 1.0
            vmin, vmax = -bound, bound
        else:
            vmin, vmax = float(inside.min()), float(inside.max())
        for b, band in enumerate(bands):
            ax = axes[r, b]
            image = ax.imshow(np.where(mask, maps[b], np.nan), cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(band.replace("_", " "), fontsize=10)
            if b == 0:
                ax.set_ylabel(name, fontsize=8)
        bar = fig.colorbar(image, ax=axes[r, :], shrink=0.85)
        bar.set_label(colorbar_label, fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig


def ablation_timeline_figure(students: StudentRuns, title: str,
                             window: tuple[float, float] | None = None) -> Figure:
    """Fig. 4: validation macro-F1 and accuracy (%) per epoch for B0-B3 (mean over seeds, shaded
    min-max across seeds), with D-Geo's scaled ramp ``window`` (``cfg.geo_window()``) shaded grey
    when given (epoch e on the axis is the end of epoch e)."""
    fig = Figure(figsize=(10.0, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    for i, variant in enumerate(v for v in ("B0", "B1", "B2", "B3") if v in students.variants):
        hist = students.histories(variant)
        for ax, column, label in zip(axes, ("val_macro_f1", "val_accuracy"), ("Macro-F1 (%)", "Accuracy (%)")):
            values = np.stack([h[column].to_numpy() for h in hist]) * 100
            epochs = hist[0]["epoch"].to_numpy()
            ax.plot(epochs, values.mean(0), marker="o", markersize=3, color=f"C{i}", label=VARIANT_LABELS[variant])
            if len(values) > 1:
                ax.fill_between(epochs, values.min(0), values.max(0), color=f"C{i}", alpha=0.15)
            ax.set_xlabel("Epoch")
            ax.set_ylabel(f"FERPlus valid {label}")
            ax.grid(alpha=0.3)
    epochs = students.runs[(students.variants[0], students.seeds[0])].history["epoch"].to_numpy()
    for ax in axes:
        ax.set_xticks(epochs)
        if window is not None:
            ax.axvspan(*window, color="0.5", alpha=0.15, label="D-Geo ramp window")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig


def _embed(features: np.ndarray, method: str, seed: int) -> np.ndarray:
    if method == "tsne":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        perplexity = float(min(30.0, max(5.0, (len(features) - 1) / 3)))
        with threadpool_limits(1):  # OpenMP threads of sklearn's t-SNE spin badly on a busy CPU
            return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(features)
    if method == "umap":
        import warnings

        with warnings.catch_warnings():  # umap's import-time tqdm notice; "n_jobs overridden by random_state"
            warnings.simplefilter("ignore")
            import umap

            return umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=seed).fit_transform(features)
    if method == "pca":
        centred = features - features.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        return centred @ vt[:2].T
    raise ValueError(f"unknown embedding method {method!r}; choose 'tsne', 'umap' or 'pca'")


def embedding_grid_figure(students: StudentRuns, faces: FaceSet, data: FaceData, cfg: ChapterConfig,
                          run: RunConfig, title: str) -> Figure:
    """Fig. 6: 2-D embeddings (rows: ``cfg.embedding_methods``) of the student features of B0-B3
    (columns; first seed) on a class-stratified subset of ``cfg.embedding_points`` rows of
    ``faces``, coloured by the true class."""
    variants = [v for v in ("B0", "B1", "B2", "B3") if v in students.variants]
    rows_idx = stratified_subset(faces.labels, cfg.embedding_points, run.seed)
    fig = Figure(figsize=(3.4 * len(variants) + 1.6, 3.2 * len(cfg.embedding_methods)), layout="constrained")
    axes = fig.subplots(len(cfg.embedding_methods), len(variants), squeeze=False)
    for c, variant in enumerate(variants):
        pred = student_predictions(students.runs[(variant, students.seeds[0])], faces, data, cfg, run)
        feats = pred.features.numpy()[rows_idx].astype(np.float64)
        y = pred.labels.numpy()[rows_idx]
        for r, method in enumerate(cfg.embedding_methods):
            xy = _embed(feats, method, run.seed)
            ax = axes[r, c]
            for k in np.unique(y):
                ax.scatter(xy[y == k, 0], xy[y == k, 1], s=5, alpha=0.7, color=f"C{k}", label=FERPLUS_CLASSES[k])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{VARIANT_LABELS[variant]}", fontsize=9)
            if c == 0:
                ax.set_ylabel({"tsne": "t-SNE", "umap": "UMAP", "pca": "PCA"}[method], fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, markerscale=2, frameon=False)
    fig.suptitle(title, fontsize=11)
    return fig


def student_curves_figure(students: StudentRuns, cfg: ChapterConfig, variant: str, title: str) -> Figure:
    """Fig. 7 (top): ``variant``'s first-seed validation accuracy, macro-F1 and training loss per
    epoch, with D-Geo's (scaled) activation window shaded."""
    hist = students.runs[(variant, students.seeds[0])].history.copy()
    hist["val accuracy (%)"] = hist["val_accuracy"] * 100
    hist["val macro-F1 (%)"] = hist["val_macro_f1"] * 100
    hist["training loss"] = hist["loss"]
    return plots.training_curves_figure(hist, ["val accuracy (%)", "val macro-F1 (%)", "training loss"],
                                        shade=cfg.geo_window(), title=title,
                                        ylabels={"training loss": "Total loss (nats)"})


def teacher_curves_figure(teacher: TeacherRun, title: str) -> Figure:
    """Fig. 7 (bottom): the EEG teacher's validation CCC (mean of V and A) and training loss (MSE)."""
    hist = teacher.fit.history.copy()
    hist["val CCC (V/A mean)"] = hist["val_ccc"]
    hist["training MSE"] = hist["loss"]
    return plots.training_curves_figure(hist, ["val CCC (V/A mean)", "training MSE"], title=title,
                                        ylabels={"training MSE": "MSE (V/A units^2)", "val CCC (V/A mean)": "CCC"})
