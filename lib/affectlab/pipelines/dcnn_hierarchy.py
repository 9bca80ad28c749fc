"""Chapter 02, DCNN hierarchy probing (T, Atas, Goldstein, Vilenchik & Sofer, paper 001).

The notebook ``notebooks/02_dcnn_hierarchy.py`` calls this module and only shows what it returns.
The paper's claim: a DCNN trained for categorical facial expressions processes a face in three
stages, identity first (early layers, Study 1-2), then valence/arousal (penultimate layer, Study
1 and 4), then the categories (output); identity dominates raw pixels and even untrained networks
(Study 2); supervised training lifts the expression signal layer by layer (Study 3, Fig. 4).

Reading order:

1. :class:`ChapterConfig` / :func:`chapter_config`: sizes per profile (the paper gives no training
   recipe; ours is stated there).
2. FER2013 (Sec. 3, Table 1): :func:`nn1_subset` (happy, sad, neutral relabelled for NN1),
   :func:`class_capped_indices`, :func:`stratified_indices`, :func:`load_fer2013`.
3. Networks (Table 1, Fig. 1): :func:`train_sharma` (NN1, NN2 through :func:`affectlab.train.fit`,
   train-or-load), :func:`build_networks` (plus NN3 = NN1's untrained initial weights and the real
   FER2013-trained mini-Xception standing in for ResMaskNet/EmoFAN), :func:`accuracy_table`.
4. Probing sets (Sec. 3, Study 3): :func:`load_probe_sets` (CK+48 and generated KDEF-like and
   DISFA-like faces with planted identity, expression and valence/arousal; real KDEF/DISFA too
   when the data root has them).
5. Layers (Study 1-4): :func:`layer_codes` (activations of the named layers reduced to principal
   components, cached), :func:`layer_profile` (silhouettes on the first 10 PCs with CIs by
   resampling subjects, PC1/PC2 against valence/arousal, cross-validated V/A decoding),
   :func:`study1_umaps`, :func:`study2_identity_dominance`, :func:`study3_table`,
   :func:`study4_penultimate`, :func:`gradcam_examples`, :func:`gradcam_region_table`,
   :func:`ground_truth_checks`.
6. NeuroGaze-Distill students (chapter 01): :func:`find_student_runs`, :func:`load_student`.
7. Figures (each returns a ``matplotlib.figure.Figure``) and :func:`deviations`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from affectlab import data as datasets
from affectlab import stats
from affectlab import metrics
from affectlab.augment import AugmentConfig, BatchAugment
from affectlab.config import (
    FieldCheck,
    RunConfig,
    check_profile,
    config_hash,
    default_cache_dir,
    default_runs_dir,
    is_int,
    profile_config,
    seed_everything,
)
from affectlab.data.sets import FaceSet
from affectlab.data.taxonomy import FER2013_CLASSES, FERPLUS_CLASSES, category_va
from affectlab.models.minixception import load_minixception, prepare_minixception_input
from affectlab.models.sharma_cnn import KERAS_BN_MOMENTUM, SHARMA_VARIANTS, build_sharma_variant, prepare_sharma_input
from affectlab.probing import (
    activation_cache_key,
    gradcam_per_block,
    layer_activations,
    pca_embed,
    silhouette_ci_by_subject,
    silhouette_per_layer,
    umap_embed,
    va_regression,
)
from affectlab.train import FitResult, TrainConfig, fit, from_faceset

__all__ = [
    "CHAPTER",
    "PAPER_TABLE1",
    "PAPER_STUDY1_SILHOUETTES",
    "PAPER_STUDY2_SILHOUETTES",
    "NN1_CLASSES",
    "ROLES",
    "ChapterConfig",
    "chapter_config",
    "nn1_subset",
    "class_capped_indices",
    "stratified_indices",
    "FERData",
    "load_fer2013",
    "ProbedNetwork",
    "train_sharma",
    "recalibrate_batchnorm",
    "sharma_network",
    "minixception_network",
    "build_networks",
    "network_logits",
    "ferplus_predictions",
    "training_steps",
    "table1_test_set",
    "table1_predictions",
    "accuracy_table",
    "learning_verdicts",
    "ProbeSet",
    "load_probe_sets",
    "LayerCodes",
    "principal_components",
    "layer_codes",
    "layer_profile",
    "va_decoding_predictions",
    "va_decoding_r2",
    "subject_resamples",
    "va_r2_resampled",
    "axis_samples",
    "EmbeddingStudy",
    "study1_umaps",
    "study2_identity_dominance",
    "study3_table",
    "with_ci",
    "study3_summary",
    "fisher_ci",
    "u_shape_test",
    "study4_table",
    "PCStudy",
    "study4_penultimate",
    "gradcam_examples",
    "gradcam_region_table",
    "ci_verdict",
    "ground_truth_checks",
    "planted_factor_codes",
    "positive_control_table",
    "axis_va_correlation",
    "va_emergence_table",
    "half_max_depth",
    "student_va_comparison",
    "find_student_runs",
    "load_student",
    "latest_student_per_variant",
    "deviations",
    "embedding_grid_figure",
    "face_strip_figure",
    "silhouette_roles_figure",
    "layer_profile_figure",
    "penultimate_figure",
    "prediction_map_figure",
    "gradcam_figure",
]

CHAPTER = "02_dcnn_hierarchy"

#: Table 1(a): accuracy (%) the paper reports for each network (RMN: FER2013 and VEMO test sets).
PAPER_TABLE1: dict[str, str] = {
    "NN1": "82.32",
    "NN2": "65.90",
    "NN3": "31.41",
    "RMN (ResMaskNet)": "74.14 / 65.94",
}
#: Fig. 2(a-c): silhouette w.r.t. identity of NN1's layers on DISFA (UMAP scatter plots).
PAPER_STUDY1_SILHOUETTES: dict[str, float] = {"batchnorm_1": 0.417, "flatten": 0.498, "dropout_4": -0.138}
#: Fig. 3: silhouettes w.r.t. identity on DISFA faces (pixels and networks).
PAPER_STUDY2_SILHOUETTES: dict[str, float] = {
    "pixels, UMAP": 0.458,
    "pixels, PCA (2 PCs)": 0.301,
    "pixels, PCA (10 PCs)": 0.501,
    "NN3 dropout_4, UMAP": 0.561,
    "VGG16 fc2, UMAP": 0.63,
}
NN1_CLASSES: tuple[str, ...] = SHARMA_VARIANTS["NN1"]  # ("happy", "sad", "neutral")
#: The four layers of Fig. 4 ("early", "ID layer", penultimate, final), in this order.
ROLES: tuple[str, ...] = ("early", "identity", "penultimate", "final")

SHARMA_PROBE_LAYERS: tuple[str, ...] = (
    "batchnorm_1", "dropout_1", "dropout_2", "flatten", "dense_1", "dropout_4", "out_layer",
)  # fmt: skip
SHARMA_ROLES: dict[str, str] = {"early": "batchnorm_1", "identity": "flatten", "penultimate": "dropout_4",
                                "final": "out_layer"}
SHARMA_GRADCAM_LAYERS: tuple[str, ...] = ("batchnorm_1", "conv2d_4", "conv2d_6")  # Fig. 2(e-f)
MINIXCEPTION_PROBE_LAYERS: tuple[str, ...] = (
    "activation_2", "add_1", "add_2", "add_3", "add_4", "conv2d_7", "predictions",
)  # fmt: skip
MINIXCEPTION_ROLES: dict[str, str] = {"early": "activation_2", "identity": "add_2", "penultimate": "add_4",
                                      "final": "predictions"}
MINIXCEPTION_GRADCAM_LAYERS: tuple[str, ...] = ("activation_2", "add_2", "add_4")
STUDENT_PROBE_LAYERS: tuple[str, ...] = (
    "backbone.layer1", "backbone.layer2", "backbone.layer3", "backbone.layer4", "proj", "head",
)  # fmt: skip
STUDENT_ROLES: dict[str, str] = {"early": "backbone.layer1", "identity": "backbone.layer3", "penultimate": "proj",
                                 "final": "head"}
#: FER2013 (and NN1) class names -> FERPlus class names (the probing sets' label space).
TO_FERPLUS_NAME: dict[str, str] = {
    "angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness", "sad": "sadness",
    "surprise": "surprise", "neutral": "neutral", **{name: name for name in FERPLUS_CLASSES},
}  # fmt: skip
NEUROGAZE_CHAPTER = "01_neurogaze_distill"
#: Quick profile: Adam steps (batch 64) per Sharma network, spread over QUICK_EPOCHS validations.
QUICK_TRAIN_STEPS = 144
QUICK_EPOCHS = 4
_CODES_VERSION = 2


def _import_quietly(module: str) -> None:
    """Import ``module`` (captum.attr, umap) with tqdm's "IProgress not found" notebook warning
    silenced: both import ``tqdm.auto``, and the book shows no progress widgets."""
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        importlib.import_module(module)


# ----------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ChapterConfig:
    """Every size and hyperparameter of the chapter; :func:`chapter_config` gives them per profile.

    FER2013 training (Table 1; the paper states no optimiser, schedule or epochs, so these are ours):
    ``train_per_class`` caps the training images per class (None = all), ``val_size`` draws a
    class-proportional PublicTest subset for choosing the best epoch, ``test_size`` a
    class-proportional PrivateTest subset for Table 1 (None = all); AdamW ``lr``, ``weight_decay``
    (0 = plain Adam, Keras's optimiser), cosine schedule, ``batch_size``, ``epochs``,
    ``steps_per_epoch`` (cap; every epoch reshuffles the whole training set, so a cap draws a fresh
    random subset each epoch); ``augment`` = random crop (2 px padding) and horizontal flip. ``batchnorm_recalibration``: after training,
    set the BatchNorm running statistics to their exact averages over that many training faces
    (None = keep the running averages): Keras's momentum 0.99 needs thousands of steps to forget
    the initial statistics, more than a short CPU run takes. ``batchnorm_momentum`` (torch
    convention, None = Keras's 0.01) replaces the running-average momentum while training, so the
    validation scores that pick the best epoch of a short run use current statistics.

    Probing sets: ``probe_subjects`` keeps that many subjects of each set (None = all);
    ``faces_per_subject_expression`` keeps the last k faces of each (subject, expression) pair of
    the posed sets (CK+48: the apex frame of each sequence, its other two frames are near-copies;
    generated CK+/KDEF-like: the strongest intensity), None = all; ``sequence_frame_step`` keeps every
    k-th frame of each DISFA(-like) sequence;
    ``generated_kdef_identities`` (None = the embedded KDEF-like default, 35 identities x 7
    expressions) and ``generated_disfa`` ``(identities, seconds, fps)`` (None = the embedded
    DISFA-like default, 6 identities x 120 frames) size the generated faces.

    Analysis: silhouettes on the first ``n_pcs`` principal components (Study 3); layers wider than
    ``keep_raw_max`` are kept as their first ``reduce_pcs`` PCs (UMAP then runs on those, a speed
    choice); ``embedding`` of the Study 1-2 scatter plots, "umap" (the paper) or "pca" (smoke only:
    UMAP's numba compilation alone takes 30-90 s per process on this machine); UMAP
    ``umap_neighbors`` / ``umap_min_dist``; ``bootstrap_resamples`` for every CI;
    ``n_axis_faces`` faces per axis strip (Fig. 2d, 6); ``gradcam_faces_per_class`` for the
    Grad-CAM region table.
    """

    profile: str
    train_per_class: int | None
    val_size: int | None
    test_size: int | None
    epochs: int
    probe_subjects: int | None
    generated_kdef_identities: int | None
    generated_disfa: tuple[int, float, float] | None
    faces_per_subject_expression: int | None = 1
    sequence_frame_step: int = 1
    embedding: str = "umap"
    batch_size: int = 64
    steps_per_epoch: int | None = None
    lr: float = 1e-3
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    augment: bool = True
    batchnorm_recalibration: int | None = None
    batchnorm_momentum: float | None = None
    n_pcs: int = 10
    reduce_pcs: int = 50
    keep_raw_max: int = 512
    umap_neighbors: int = 15
    umap_min_dist: float = 0.1
    bootstrap_resamples: int = 1000
    n_axis_faces: int = 21
    gradcam_faces_per_class: int = 12
    probe_batch_size: int = 128

    def __post_init__(self) -> None:
        check_profile(self.profile)
        check = FieldCheck(self, "ChapterConfig")
        check.ints("epochs", "batch_size", "sequence_frame_step", "n_pcs", "reduce_pcs", "keep_raw_max", "umap_neighbors",
                   "bootstrap_resamples", "n_axis_faces", "gradcam_faces_per_class", "probe_batch_size")
        check.ints("train_per_class", "val_size", "test_size", "steps_per_epoch", "probe_subjects",
                   "generated_kdef_identities", "batchnorm_recalibration", "faces_per_subject_expression", optional=True)
        check.require(self.probe_subjects is None or self.probe_subjects >= 2, "probe_subjects",
                      "at least 2 (silhouettes need two identities) or None")
        check.require(self.reduce_pcs >= self.n_pcs, "reduce_pcs", f"at least n_pcs={self.n_pcs}")
        if self.generated_disfa is not None:
            ids, seconds, fps = self.generated_disfa
            check.require(is_int(ids) and ids >= 2 and seconds > 0 and fps > 0, "generated_disfa",
                          "(identities >= 2, seconds > 0, fps > 0) or None")
        check.require(self.batchnorm_momentum is None or 0 < self.batchnorm_momentum <= 1, "batchnorm_momentum",
                      "in (0, 1] or None")
        check.require(self.lr > 0 and self.weight_decay >= 0 and 0 <= self.label_smoothing < 1, "lr",
                      "> 0 with weight_decay >= 0 and label_smoothing in [0, 1)")
        check.require(0 <= self.umap_min_dist <= 1, "umap_min_dist", "in [0, 1]")
        check.one_of("embedding", ("umap", "pca"))


def chapter_config(profile: str, **overrides: Any) -> ChapterConfig:
    """The chapter's sizes for ``profile``; ``overrides`` replace single fields (tests).

    - smoke: a few dozen FER2013 images, two training steps per network, 6 subjects per probing
      set, small generated sets, PCA instead of UMAP for the scatter plots: proves every cell runs
      in under 2 minutes.
    - quick: this shared 2-core CPU, <= 20 minutes with FER2013 under the data root. Measured
      unloaded (2 threads, batch 64, channels-last): the Sharma CNN trains at about 33 faces/s and
      runs inference at about 110 (its 5x5, 64->64 convolution at 48x48 px alone costs 0.24 GMAC
      per face). NN1 and NN2 therefore get QUICK_TRAIN_STEPS Adam steps each (lr 1e-3 as Keras's Adam, batch 64,
      no augmentation) drawn from the whole Training split with its natural class mix: every
      "epoch" is a fresh random draw of ``steps_per_epoch`` batches, so almost every face is seen
      once, which generalises better per step than repeating a small subset. Table 1 uses 1,000
      PrivateTest faces per network (mini-Xception: all of PrivateTest), the DISFA-like sequences
      every 3rd frame.
    - paper: all of FER2013, 60 epochs, a 70-identity KDEF-like and a 12-identity DISFA-like set:
      for a GPU.
    """
    table: dict[str, dict[str, Any]] = {
        "smoke": dict(train_per_class=8, val_size=32, test_size=32, epochs=1, batch_size=16, steps_per_epoch=2,
                      batchnorm_recalibration=32,
                      probe_subjects=3, generated_kdef_identities=3, generated_disfa=(3, 8.0, 2.0),
                      bootstrap_resamples=100, n_axis_faces=5, gradcam_faces_per_class=2, reduce_pcs=20,
                      embedding="pca"),
        "quick": dict(train_per_class=None, val_size=300, test_size=1000, epochs=QUICK_EPOCHS,
                      steps_per_epoch=QUICK_TRAIN_STEPS // QUICK_EPOCHS, batch_size=64, weight_decay=0.0,
                      augment=False, batchnorm_recalibration=512, batchnorm_momentum=0.1, probe_subjects=None,
                      generated_kdef_identities=None, generated_disfa=None, sequence_frame_step=3),
        "paper": dict(train_per_class=None, val_size=None, test_size=None, epochs=60, weight_decay=0.0,
                      probe_subjects=None,
                      generated_kdef_identities=70, generated_disfa=(12, 120.0, 2.0), batch_size=32,
                      gradcam_faces_per_class=35, faces_per_subject_expression=None),
    }
    return profile_config(ChapterConfig, profile, table, overrides)


# ----------------------------------------------------------------------------------------------
# FER2013 (Sec. 3, Table 1)
# ----------------------------------------------------------------------------------------------


def nn1_subset(faces: FaceSet) -> FaceSet:
    """FER2013 faces of NN1's classes (happy, sad, neutral), relabelled 0 happy, 1 sad, 2 neutral.

    ``faces`` must carry the 7 original FER2013 labels (``class_names`` = 0 angry ... 6 neutral),
    as ``load_or_embedded("fer2013", ...)`` returns them. Rows labelled -1 are dropped.
    """
    if tuple(faces.class_names) != FER2013_CLASSES:
        raise ValueError(f"{faces.name}/{faces.split}: nn1_subset needs the 7 FER2013 classes "
                         f"{FER2013_CLASSES}; got {faces.class_names}")
    old = [FER2013_CLASSES.index(c) for c in NN1_CLASSES]
    lookup = torch.full((len(FER2013_CLASSES),), -1, dtype=torch.long)
    lookup[old] = torch.arange(len(NN1_CLASSES))
    keep = torch.nonzero((faces.labels >= 0) & torch.isin(faces.labels, torch.tensor(old))).flatten()
    sub = faces.subset(keep)
    return dataclasses.replace(sub, labels=lookup[sub.labels], class_names=NN1_CLASSES,
                               source=sub.source + "; NN1 classes happy/sad/neutral")


def _check_labels(labels: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be 1-D integer class labels; got {y.dtype} {y.shape}")
    return y


def class_capped_indices(labels: np.ndarray | torch.Tensor, cap: int | None, seed: int) -> np.ndarray:
    """Sorted row indices keeping at most ``cap`` random rows of each class (None = every row).

    Rows labelled -1 are never kept.
    """
    y = _check_labels(labels, "labels")
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y[y >= 0]):
        rows = np.flatnonzero(y == c)
        keep.append(rows if cap is None or len(rows) <= cap else rng.choice(rows, cap, replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def stratified_indices(labels: np.ndarray | torch.Tensor, size: int | None, seed: int) -> np.ndarray:
    """Sorted row indices of a class-proportional random subset of ``size`` rows (None = all).

    Each class gets ``round(size * share)`` rows (at least one), so accuracies on the subset
    estimate those on the full split. Rows labelled -1 are never kept.
    """
    y = _check_labels(labels, "labels")
    known = np.flatnonzero(y >= 0)
    if size is None or size >= len(known):
        return known
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y[known], return_counts=True)
    quota = np.maximum(np.round(size * counts / counts.sum()).astype(int), 1)
    keep = [rng.choice(np.flatnonzero(y == c), min(q, n), replace=False) for c, q, n in zip(classes, quota, counts)]
    return np.sort(np.concatenate(keep))


@dataclasses.dataclass
class FERData:
    """FER2013 (original 7 labels) for the networks of Table 1, reduced per profile.

    ``train``/``val``/``test`` map "NN2" (7 classes) and "NN1" (happy, sad, neutral; NN3 is tested
    on it too) to :class:`FaceSet` s: training subset of Training, validation subset of PublicTest,
    test subset of PrivateTest. ``full_sizes`` counts the full splits; ``source`` says where the
    faces came from (the real copy or the generated stand-in); ``private_test`` is the whole
    PrivateTest split (7 classes), on which networks with published weights are scored.
    """

    train: dict[str, FaceSet]
    val: dict[str, FaceSet]
    test: dict[str, FaceSet]
    full_sizes: dict[str, int]
    source: str
    real: bool
    private_test: FaceSet | None = None

    def counts_table(self) -> pd.DataFrame:
        """Images per class in every set used (one row per set)."""
        rows = {}
        for split_name, sets in (("train", self.train), ("validation", self.val), ("test", self.test)):
            for variant, faces in sets.items():
                counts = faces.class_counts()
                rows[f"{variant} {split_name}"] = {**counts, "total": len(faces)}
        return pd.DataFrame(rows).T.fillna(0).astype(int)


def load_fer2013(run: RunConfig, cfg: ChapterConfig) -> FERData:
    """FER2013 Training / PublicTest / PrivateTest with the original 7 labels (``load_or_embedded``:
    the copy under the data root, else the generated stand-in), reduced per ``cfg`` with the run's
    seed: class-capped training subsets and class-proportional validation and test subsets, for
    NN2 (7 classes) and NN1 (happy, sad, neutral)."""
    splits = {s: datasets.load_or_embedded("fer2013", run.data_root, s) for s in ("train", "public_test", "private_test")}
    out: dict[str, dict[str, FaceSet]] = {"train": {}, "val": {}, "test": {}}
    for variant, select in (("NN2", lambda f: f), ("NN1", nn1_subset)):
        train, val, test = (select(splits[s]) for s in ("train", "public_test", "private_test"))
        out["train"][variant] = train.subset(class_capped_indices(train.labels, cfg.train_per_class, run.seed))
        out["val"][variant] = val.subset(stratified_indices(val.labels, cfg.val_size, run.seed))
        out["test"][variant] = test.subset(stratified_indices(test.labels, cfg.test_size, run.seed))
    source = splits["train"].source
    known = splits["private_test"].subset(torch.nonzero(splits["private_test"].labels >= 0).flatten())
    return FERData(train=out["train"], val=out["val"], test=out["test"],
                   full_sizes={s: len(f) for s, f in splits.items()}, source=source,
                   real=source.startswith("real"), private_test=known)


# ----------------------------------------------------------------------------------------------
# networks (Table 1, Fig. 1)
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ProbedNetwork:
    """A network with what probing needs: the layers to read (input -> output order), which of them
    play the four roles of Fig. 4 (:data:`ROLES`), the convolutional layers for Grad-CAM, and
    ``prepare`` turning uint8 faces (N, 1, H, W) into the model's input."""

    name: str
    model: nn.Module
    class_names: tuple[str, ...]
    layers: tuple[str, ...]
    roles: dict[str, str]
    gradcam_layers: tuple[str, ...]
    prepare: Callable[[torch.Tensor], torch.Tensor]
    description: str
    trained: bool
    fit: FitResult | None = None

    def __post_init__(self) -> None:
        missing = [layer for layer in self.roles.values() if layer not in self.layers]
        if missing or set(self.roles) != set(ROLES):
            raise ValueError(f"{self.name}: roles must map {ROLES} to probed layers; bad: {missing or self.roles}")

    @property
    def output_layer(self) -> str:
        return self.roles["final"]


def _sharma_model(variant: str, init_seed: int) -> nn.Module:
    seed_everything(init_seed)
    return build_sharma_variant(variant)


def train_sharma(variant: str, fer: FERData, cfg: ChapterConfig, run: RunConfig) -> FitResult:
    """Train (or load the finished run of) NN1 or NN2 on FER2013 with :func:`affectlab.train.fit`.

    Cross-entropy on the Keras-initialised Sharma CNN (initial weights from the run's seed),
    inputs pixels / 255 (Sharma's only preprocessing), Adam (AdamW with ``cfg.weight_decay``) with
    a cosine schedule, BatchNorm momentum ``cfg.batchnorm_momentum`` while training, the best epoch
    by validation accuracy (Table 1 reports accuracy).
    """
    if variant not in ("NN1", "NN2"):
        raise ValueError(f"train_sharma trains 'NN1' or 'NN2'; got {variant!r} (NN3 stays untrained)")
    augment = BatchAugment(AugmentConfig(crop_padding=2, crop_padding_mode="reflect", hflip_p=0.5)) if cfg.augment else None
    train = from_faceset(fer.train[variant], batch_size=cfg.batch_size, augment=augment,
                         name=f"fer2013/train-{variant}")
    val = from_faceset(fer.val[variant], batch_size=256, shuffle=False, name=f"fer2013/public_test-{variant}")
    config = TrainConfig(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, schedule="cosine",
                         grad_clip=None, label_smoothing=cfg.label_smoothing, amp="off", channels_last=True,
                         steps_per_epoch=cfg.steps_per_epoch, monitor="accuracy", seed=run.seed,
                         progress=False, tensorboard=True)
    key = {"chapter": CHAPTER, "role": "sharma", "variant": variant, "init_seed": run.seed,
           "classes": list(SHARMA_VARIANTS[variant]), "batchnorm_momentum": cfg.batchnorm_momentum}
    model = _sharma_model(variant, run.seed)
    if cfg.batchnorm_momentum is not None:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = cfg.batchnorm_momentum
    result = fit(model, train, val, config, key=key, name=f"ch02-{variant}-s{run.seed}", device=run.device)
    for module in result.model.modules():  # back to Keras's momentum for anything done later
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = KERAS_BN_MOMENTUM
    return result


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, inputs: torch.Tensor, batch_size: int = 128) -> None:
    """Set every BatchNorm layer's running mean and variance to their exact averages over
    ``inputs`` (model inputs, already prepared): BatchNorm layers run in training mode with a
    cumulative average (``momentum=None``) while everything else, dropout included, stays in eval
    mode, so the statistics are those of the activations the evaluated network sees. The model is
    left in eval mode with each layer's momentum restored."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    if len(inputs) < 2:
        raise ValueError(f"recalibrate_batchnorm needs at least 2 inputs; got {len(inputs)}")
    momenta = [m.momentum for m in norms]
    model.eval()
    device = next(model.parameters()).device
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start:start + batch_size]
            if len(batch) > 1:  # a batch of one has no variance
                model(batch.to(device))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()


def _recalibrated(result: FitResult, faces: FaceSet, cfg: ChapterConfig, seed: int) -> nn.Module:
    """``result.model`` with BatchNorm statistics recalibrated on ``cfg.batchnorm_recalibration``
    training faces (a seeded random choice), cached beside the checkpoint."""
    model = result.model.eval()
    if cfg.batchnorm_recalibration is None:
        return model
    n = min(cfg.batchnorm_recalibration, len(faces))
    tag = config_hash({"run": result.config_hash, "best_epoch": result.best_epoch, "n": n, "seed": seed})
    path = result.run_dir / f"batchnorm-{tag}.pt"
    buffers = {k for k in model.state_dict() if "running_" in k or "num_batches" in k}
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if set(stored) == buffers:
            model.load_state_dict({**model.state_dict(), **stored})
            return model
    rows = np.sort(np.random.default_rng(seed).choice(len(faces), n, replace=False))
    recalibrate_batchnorm(model, prepare_sharma_input(faces.images[rows]))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if k in buffers}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return model


def sharma_network(variant: str, model: nn.Module, description: str, fit_result: FitResult | None = None) -> ProbedNetwork:
    """Wrap a Sharma CNN (NN1, NN2 or NN3) for probing: the layers of Fig. 1(b) we read."""
    return ProbedNetwork(
        name=variant, model=model.eval(), class_names=tuple(SHARMA_VARIANTS[variant]), layers=SHARMA_PROBE_LAYERS,
        roles=dict(SHARMA_ROLES), gradcam_layers=SHARMA_GRADCAM_LAYERS, prepare=prepare_sharma_input,
        description=description, trained=variant != "NN3", fit=fit_result,
    )


def _minixception_path(run: RunConfig) -> tuple[Path | None, str]:
    """The mini-Xception weights: the data root's copy, else the set-up's installed copy (SHA-256
    checked against the manifest), else None and the reason."""
    from affectlab.data.manifest import sha256_file
    from affectlab.data.registry import INSTALLED_ASSETS

    try:
        return datasets.asset_path("minixception", run.data_root), "data root" if run.data_root else "installed copy"
    except (datasets.DatasetNotFoundError, datasets.DatasetValidationError) as exc:
        reason = str(exc)
    installed = INSTALLED_ASSETS["minixception"]
    if run.data_root is None or not installed.is_file():
        return None, reason
    manifest = datasets.get_manifest("minixception")
    expected = [f.get("sha256") for layout in manifest["layouts"] for f in layout.get("files", [])
                if f["path"] == installed.name]
    if expected and expected[0] == sha256_file(installed):
        return installed, "installed copy; the data root has none"
    return None, f"{reason}; the installed copy {installed} fails its SHA-256 check"


def minixception_network(run: RunConfig) -> tuple[ProbedNetwork | None, str]:
    """The FER2013-trained mini-Xception (Arriaga et al. 2017) wrapped for probing, or None and
    the reason it is unavailable. It stands in for ResMaskNet and EmoFAN, whose weights cannot be
    obtained here."""
    path, where = _minixception_path(run)
    if path is None:
        return None, where
    model = load_minixception(path).to(run.device)
    net = ProbedNetwork(
        name="mini-Xception", model=model, class_names=FER2013_CLASSES, layers=MINIXCEPTION_PROBE_LAYERS,
        roles=dict(MINIXCEPTION_ROLES), gradcam_layers=MINIXCEPTION_GRADCAM_LAYERS,
        prepare=prepare_minixception_input, trained=True,
        description=f"mini-Xception (Arriaga et al. 2017), FER2013-trained Keras weights {path.name} ({where})",
    )
    return net, f"loaded from {path} ({where})"


def build_networks(fer: FERData, cfg: ChapterConfig, run: RunConfig) -> tuple[dict[str, ProbedNetwork], dict[str, str]]:
    """NN1 and NN2 trained on FER2013 (train-or-load), NN3 = NN1's architecture with NN1's initial
    weights left untrained (the paper's control), and mini-Xception when its weights are found.
    NN1 and NN2 get their BatchNorm statistics recalibrated when ``cfg.batchnorm_recalibration``
    is set (:func:`recalibrate_batchnorm`).

    Returns the networks by name and notes (e.g. why mini-Xception is missing).
    """
    nets: dict[str, ProbedNetwork] = {}
    notes: dict[str, str] = {}
    data_note = "FER2013" if fer.real else "generated FER2013 stand-in"
    for variant in ("NN1", "NN2"):
        result = train_sharma(variant, fer, cfg, run)
        n_train = len(fer.train[variant])
        model = _recalibrated(result, fer.train[variant], cfg, run.seed)
        nets[variant] = sharma_network(
            variant, model.to(run.device),
            f"{variant}: Sharma CNN, {len(SHARMA_VARIANTS[variant])} classes, trained on {n_train} {data_note} "
            f"faces, best epoch {result.best_epoch} of {cfg.epochs}", result)
        notes[variant] = ("loaded finished run " if result.loaded_from_cache else "trained ") + str(result.run_dir)
    nets["NN3"] = sharma_network("NN3", _sharma_model("NN3", run.seed).to(run.device),
                                 f"NN3: NN1's architecture and initial weights (seed {run.seed}), untrained")
    notes["NN3"] = "untrained control: NN1's initial weights"
    mx, notes["mini-Xception"] = minixception_network(run)
    if mx is not None:
        nets["mini-Xception"] = mx
    return nets, notes


@torch.no_grad()
def network_logits(net: ProbedNetwork, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Outputs of the network's final layer (N, K) for uint8 faces; cached on disk by
    :func:`affectlab.probing.layer_activations` (keyed by weights and inputs)."""
    x = net.prepare(images)
    return layer_activations(net.model, x, [net.output_layer], batch_size=batch_size)[net.output_layer]


def ferplus_predictions(net: ProbedNetwork, logits: np.ndarray) -> np.ndarray:
    """Predicted classes as FERPlus indices (FER2013 "happy" -> "happiness", ...)."""
    names = [TO_FERPLUS_NAME[c] for c in net.class_names]
    lookup = np.array([FERPLUS_CLASSES.index(n) for n in names])
    return lookup[np.asarray(logits).argmax(axis=1)]


def training_steps(cfg: ChapterConfig, n_train: int) -> int:
    """Optimiser steps of one Sharma network: epochs x batches per epoch (capped by
    ``steps_per_epoch``; the last incomplete batch is dropped)."""
    per_epoch = max(n_train // cfg.batch_size, 1)
    return cfg.epochs * (min(per_epoch, cfg.steps_per_epoch) if cfg.steps_per_epoch else per_epoch)


def table1_test_set(net: ProbedNetwork, fer: FERData) -> tuple[FaceSet, str]:
    """The PrivateTest faces ``net`` is scored on in Table 1 and their description: NN1's classes
    (happy, sad, neutral: NN1, NN3) -> NN1's class-proportional test subset; the 7 FER2013 classes
    -> NN2's subset, or the whole PrivateTest split for published weights (mini-Xception). Any
    other label set is an error naming the network (e.g. an 8-class FERPlus student)."""
    names = tuple(net.class_names)
    if names == NN1_CLASSES:
        return fer.test["NN1"], f"PrivateTest, happy/sad/neutral subset ({len(fer.test['NN1'])} faces, class-proportional)"
    if names == FER2013_CLASSES:
        if net.fit is None and net.trained and fer.private_test is not None:
            return fer.private_test, f"PrivateTest, all {len(fer.private_test)} faces"
        return fer.test["NN2"], f"PrivateTest, 7-class subset ({len(fer.test['NN2'])} faces, class-proportional)"
    raise ValueError(f"Table 1 cannot score network {net.name!r}: its classes {names} are neither NN1's "
                     f"{NN1_CLASSES} nor FER2013's {FER2013_CLASSES}")


def table1_predictions(net: ProbedNetwork, fer: FERData) -> tuple[FaceSet, np.ndarray]:
    """``net``'s predicted classes on its Table 1 test faces (:func:`table1_test_set`)."""
    test, _ = table1_test_set(net, fer)
    return test, network_logits(net, test.images).argmax(axis=1)


def accuracy_table(nets: Mapping[str, ProbedNetwork], fer: FERData, cfg: ChapterConfig, run: RunConfig) -> pd.DataFrame:
    """Table 1(a) with ours: PrivateTest accuracy (%) with a class-stratified 95 % bootstrap CI
    over test faces, beside the split, the seed, the two baselines a reader needs (uniform chance
    and always answering the majority class of that test set) and the paper's number (clearly
    labelled). Faces per network: :func:`table1_test_set`. ResMaskNet is listed, not run."""
    rows = []
    for name, net in nets.items():
        test, split = table1_test_set(net, fer)
        _, pred = table1_predictions(net, fer)
        y = test.labels.numpy()
        point, low, high = stats.bootstrap_ci(metrics.accuracy, y, pred, n_resamples=cfg.bootstrap_resamples,
                                                seed=run.seed)
        counts = np.bincount(y, minlength=len(net.class_names))
        variant = "NN1" if tuple(net.class_names) == NN1_CLASSES else "NN2"
        if not net.trained:
            train_note = "untrained"
        elif net.fit is not None:
            steps = training_steps(cfg, len(fer.train[variant]))
            train_note = (f"{steps} Adam steps of {cfg.batch_size} faces drawn from {len(fer.train[variant]):,} "
                          f"(weights of epoch {net.fit.best_epoch} of {cfg.epochs})")
        else:
            train_note = "published weights"
        paper = PAPER_TABLE1.get(name, "~66 (its authors)" if name == "mini-Xception" else "-")
        rows.append({"network": name, "classes": ", ".join(net.class_names), "training (here)": train_note,
                     "seed": run.seed if net.fit is not None or not net.trained else "-", "test split": split,
                     "test faces": len(test), "accuracy here (%)": 100 * point, "95% CI low": 100 * low,
                     "95% CI high": 100 * high, "chance, uniform (%)": 100 / len(net.class_names),
                     "majority class (%)": 100 * counts.max() / counts.sum(),
                     "majority class": net.class_names[int(counts.argmax())],
                     "paper's accuracy (%)": paper})
    rows.append({"network": "RMN (ResMaskNet)", "classes": ", ".join(FER2013_CLASSES),
                 "training (here)": "not run: weights unavailable", "seed": "-", "test split": "-", "test faces": 0,
                 "accuracy here (%)": np.nan, "95% CI low": np.nan, "95% CI high": np.nan,
                 "chance, uniform (%)": 100 / len(FER2013_CLASSES), "majority class (%)": np.nan,
                 "majority class": "-", "paper's accuracy (%)": PAPER_TABLE1["RMN (ResMaskNet)"]})
    return pd.DataFrame(rows).set_index("network")


def _accuracy_difference(y: np.ndarray, both: np.ndarray) -> float:
    return float(np.mean(both[:, 0] == y) - np.mean(both[:, 1] == y))


def learning_verdicts(nets: Mapping[str, ProbedNetwork], fer: FERData, cfg: ChapterConfig,
                      run: RunConfig) -> pd.DataFrame:
    """Did NN1 and NN2 learn? For each trained Sharma network, its accuracy minus (a) the
    majority-class rate of its test faces and (b) the same architecture untrained from the same
    initial weights (NN3 for NN1; NN2's own initialisation for NN2), on the same faces, in
    percentage points with paired, class-stratified 95 % bootstrap CIs over test faces. Verdict
    "learned" when both intervals lie above 0, else "not distinguishable from ...".

    Returns one row per (network, comparison) plus a "verdict" column; ``attrs["learned"]`` maps
    each network to True/False.
    """
    rows, learned = [], {}
    for name in ("NN1", "NN2"):
        if name not in nets or nets[name].fit is None:
            continue
        net = nets[name]
        test, pred = table1_predictions(net, fer)
        y = test.labels.numpy()
        if name == "NN1" and "NN3" in nets:
            base_name, base_pred = "NN3 (untrained, same initial weights)", table1_predictions(nets["NN3"], fer)[1]
        else:
            untrained = dataclasses.replace(sharma_network(name, _sharma_model(name, run.seed).to(run.device),
                                                           f"{name} untrained"), trained=False)
            base_name, base_pred = f"{name} before training (same initial weights)", table1_predictions(untrained, fer)[1]
        majority = int(np.bincount(y).argmax())
        comparisons = [(f"majority class ({net.class_names[majority]})", np.full_like(pred, majority)),
                       (base_name, base_pred)]
        ok = True
        for label, other in comparisons:
            point, low, high = stats.bootstrap_ci(_accuracy_difference, y, np.stack([pred, other], 1),
                                                    n_resamples=cfg.bootstrap_resamples, seed=run.seed)
            above = low > 0
            ok &= above
            rows.append({"network": name, "compared with": label, "accuracy difference (pp)": 100 * point,
                         "95% CI low": 100 * low, "95% CI high": 100 * high, "test faces": len(y),
                         "above it": "yes" if above else ("no" if high < 0 else "undecided")})
        learned[name] = bool(ok)
    table = pd.DataFrame(rows, columns=["network", "compared with", "accuracy difference (pp)", "95% CI low",
                                        "95% CI high", "test faces", "above it"]).set_index(["network", "compared with"])
    table.attrs["learned"] = learned
    return table


# ----------------------------------------------------------------------------------------------
# probing sets (Sec. 3)
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ProbeSet:
    """Identity-labelled faces to probe: 48x48 greyscale, ``faces.labels`` FERPlus indices
    (-1 = unknown), ``faces.identity`` subjects, ``valence``/``arousal`` per face (planted for
    generated faces, else the circumplex point of the label: ``va_source`` says which)."""

    key: str
    title: str
    faces: FaceSet
    valence: np.ndarray
    arousal: np.ndarray
    va_source: str
    label_source: str

    @property
    def generated(self) -> bool:
        """Generated faces may be shown as images; research datasets' faces never are."""
        return self.faces.source.startswith("generated")

    @property
    def n_subjects(self) -> int:
        return int(len(torch.unique(self.faces.identity)))


def _first_subjects(faces: FaceSet, k: int | None) -> FaceSet:
    if k is None:
        return faces
    ids = torch.unique(faces.identity)[:k]
    return faces.subset(torch.nonzero(torch.isin(faces.identity, ids)).flatten())


def _last_per_subject_expression(faces: FaceSet, k: int | None) -> FaceSet:
    """Keep the last ``k`` rows of each (subject, expression) pair, in the set's own order."""
    if k is None:
        return faces
    pairs = faces.identity.numpy().astype(np.int64) * 1000 + faces.labels.numpy().astype(np.int64)
    keep = np.zeros(len(faces), dtype=bool)
    for pair in np.unique(pairs):
        keep[np.flatnonzero(pairs == pair)[-k:]] = True
    return faces.subset(np.flatnonzero(keep))


def _to_ferplus_labels(faces: FaceSet) -> FaceSet:
    if tuple(faces.class_names) == FERPLUS_CLASSES:
        return faces
    lookup = torch.tensor([FERPLUS_CLASSES.index(TO_FERPLUS_NAME[c]) for c in faces.class_names])
    labels = torch.where(faces.labels >= 0, lookup[faces.labels.clamp_min(0)], faces.labels)
    return dataclasses.replace(faces, labels=labels, class_names=FERPLUS_CLASSES)


def _probe_set(key: str, title: str, faces: FaceSet, label_source: str, cfg: ChapterConfig,
               posed: bool = False, sequence: bool = False) -> ProbeSet:
    if faces.identity is None:
        raise ValueError(f"{faces.name}/{faces.split}: probing needs identity labels")
    if tuple(faces.images.shape[1:]) != (1, 48, 48):
        raise ValueError(f"{faces.name}/{faces.split}: probing expects 48x48 greyscale faces; got {tuple(faces.images.shape[1:])}")
    faces = _first_subjects(_to_ferplus_labels(faces), cfg.probe_subjects)
    if posed:
        faces = _last_per_subject_expression(faces, cfg.faces_per_subject_expression)
    if sequence and cfg.sequence_frame_step > 1:
        faces = faces.subset(np.arange(0, len(faces), cfg.sequence_frame_step))
    if faces.valence is not None and faces.arousal is not None:
        va, va_source = np.stack([faces.valence.numpy(), faces.arousal.numpy()], 1), "planted by the generator"
    else:
        va, va_source = category_va(faces.labels, FERPLUS_CLASSES).numpy(), "circumplex point of the expression label"
    return ProbeSet(key=key, title=title, faces=faces, valence=va[:, 0].astype(np.float64),
                    arousal=va[:, 1].astype(np.float64), va_source=va_source, label_source=label_source)


def _generated_kdef(cfg: ChapterConfig) -> FaceSet:
    from affectlab.data.generate import cached, embedded
    from affectlab.data.generate import faces as gen

    if cfg.generated_kdef_identities is None:
        return embedded("kdef", "frontal")
    n = cfg.generated_kdef_identities
    return cached(f"ch02-kdef-{n}", {"n_identities": n, "seed": 2},
                  lambda: gen.generate_kdef_like(n_identities=n, seed=2, name="generated_kdef"))


def _generated_disfa(cfg: ChapterConfig) -> FaceSet:
    from affectlab.data.generate import cached, embedded
    from affectlab.data.generate import faces as gen

    if cfg.generated_disfa is None:
        return embedded("disfa", "all")
    ids, seconds, fps = cfg.generated_disfa
    params = {"n_identities": int(ids), "seconds": float(seconds), "fps": float(fps), "seed": 3}
    return cached(f"ch02-disfa-{ids}", params, lambda: gen.generate_disfa_like(**params, name="generated_disfa"))


def load_probe_sets(run: RunConfig, cfg: ChapterConfig, labeller: ProbedNetwork | None = None) -> dict[str, ProbeSet]:
    """The identity-labelled faces of Studies 1-4, keyed ``ckplus``, ``kdef_gen``, ``disfa_gen``
    (plus ``kdef`` and ``disfa`` when the data root holds the real sets).

    - CK+48 (118 subjects, 7 expressions without neutral) from the data root, else its generated
      stand-in (``load_or_embedded``).
    - KDEF-like and DISFA-like generated faces, always: their identity, expression and V/A are
      planted, so they are the known ground truth, and the only faces this chapter shows.
    - Real DISFA has no expression labels: the paper labelled its frames with ResMaskNet; we label
      them with ``labeller`` (mini-Xception) when given, else they stay unknown (-1).
    """
    sets: dict[str, ProbeSet] = {}
    ck = datasets.load_or_embedded("ckplus", run.data_root, "all")
    real_ck = ck.source.startswith("real")
    sets["ckplus"] = _probe_set("ckplus", "CK+48" if real_ck else "CK+48 stand-in (generated)", ck,
                                "CK+ emotion folders" if real_ck else "planted", cfg, posed=True)
    sets["kdef_gen"] = _probe_set("kdef_gen", "KDEF-like (generated)", _generated_kdef(cfg), "planted", cfg, posed=True)
    sets["disfa_gen"] = _probe_set("disfa_gen", "DISFA-like (generated)", _generated_disfa(cfg), "planted", cfg,
                                   sequence=True)
    if run.data_root is not None and datasets.available("kdef", run.data_root):
        sets["kdef"] = _probe_set("kdef", "KDEF (frontal)", datasets.load("kdef", run.data_root, "frontal"),
                                  "KDEF file codes", cfg, posed=True)
    if run.data_root is not None and datasets.available("disfa", run.data_root):
        disfa = datasets.load("disfa", run.data_root, "all")
        note = "none (DISFA has no emotion labels)"
        if labeller is not None:
            disfa = dataclasses.replace(disfa, labels=torch.as_tensor(
                ferplus_predictions(labeller, network_logits(labeller, disfa.images))), class_names=FERPLUS_CLASSES)
            note = f"predicted by {labeller.name} (the paper used ResMaskNet)"
        sets["disfa"] = _probe_set("disfa", "DISFA", disfa, note, cfg, sequence=True)
    return sets


# ----------------------------------------------------------------------------------------------
# layers reduced to principal components (Studies 1-4)
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class LayerCodes:
    """One network's probed layers on one probing set.

    ``pcs[layer]``: scores on the layer's first principal components (N, <= ``reduce_pcs``),
    ``explained[layer]`` their explained-variance ratios; ``raw[layer]``: the flattened outputs of
    layers at most ``keep_raw_max`` wide (UMAP reads these; wider layers are embedded from their
    PCs); ``dims[layer]`` the layer's width.
    """

    network: str
    dataset: str
    layers: tuple[str, ...]
    dims: dict[str, int]
    pcs: dict[str, np.ndarray]
    explained: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]

    def umap_input(self, layer: str) -> tuple[np.ndarray, str]:
        """What UMAP embeds for ``layer`` and a note saying so."""
        if layer not in self.pcs:
            raise KeyError(f"network {self.network!r} on {self.dataset!r} has no probed layer {layer!r}; "
                           f"probed: {list(self.pcs)}")
        if layer in self.raw:
            return self.raw[layer], f"raw {self.dims[layer]:,}-D outputs"
        return self.pcs[layer], f"first {self.pcs[layer].shape[1]} PCs of the {self.dims[layer]:,}-D outputs"


def _save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def principal_components(x: np.ndarray, n_components: int, block: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """PCA scores (N, k) float32 and explained-variance ratios of the rows of ``x`` (N, D).

    For layers wider than the number of faces (D > N) the exact scores come from the eigenvectors
    of the centred N x N Gram matrix, accumulated over column blocks: ``U sqrt(lambda)``, ratios
    ``lambda / sum(lambda)`` (identical to PCA, and far faster than a randomized SVD of a
    1,000 x 147,456 matrix). Otherwise :func:`affectlab.probing.pca_embed`. Signs are made
    deterministic (each component's largest-magnitude score is positive); they are arbitrary.
    """
    a = np.asarray(x)
    if a.ndim != 2 or len(a) < 2:
        raise ValueError(f"x must be (N >= 2, D); got shape {a.shape}")
    n, d = a.shape
    if d <= n:
        return pca_embed(a, n_components)
    mean = a.mean(axis=0, dtype=np.float64).astype(np.float32)
    gram = np.zeros((n, n), dtype=np.float64)
    for start in range(0, d, block):
        part = a[:, start:start + block].astype(np.float32) - mean[start:start + block]
        gram += part @ part.T
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    k = min(int(n_components), n)
    scores = vectors[:, :k] * np.sqrt(values[:k])
    signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(k)])
    scores *= np.where(signs == 0, 1.0, signs)
    total = values.sum()
    ratio = values[:k] / total if total > 0 else np.zeros(k)
    return scores.astype(np.float32), ratio


def layer_codes(net: ProbedNetwork, probe: ProbeSet, cfg: ChapterConfig) -> LayerCodes:
    """Activations of ``net.layers`` for every face of ``probe`` (forward hooks, eval mode), each
    reduced by PCA to its first ``cfg.reduce_pcs`` components (narrow layers also kept raw).

    Cached in ``<cache>/dcnn_hierarchy/codes-<key>.npz``, the key covering the weights, the input
    tensor, the layers and the reduction sizes. Peak memory: N x (sum of layer widths) float32
    (about 0.85 MB per face for the Sharma CNN, whose first block alone is 147,456-D).
    """
    x = net.prepare(probe.faces.images)
    key = config_hash({"acts": activation_cache_key(net.model, x, net.layers), "reduce": cfg.reduce_pcs,
                       "raw": cfg.keep_raw_max, "version": _CODES_VERSION}, length=20)
    path = default_cache_dir() / "dcnn_hierarchy" / f"codes-{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                dims = {layer: int(d) for layer, d in zip(net.layers, stored["dims"])}
                return LayerCodes(
                    network=net.name, dataset=probe.key, layers=net.layers, dims=dims,
                    pcs={layer: stored[f"pcs{i}"] for i, layer in enumerate(net.layers)},
                    explained={layer: stored[f"ratio{i}"] for i, layer in enumerate(net.layers)},
                    raw={layer: stored[f"raw{i}"] for i, layer in enumerate(net.layers) if f"raw{i}" in stored},
                )
        except (OSError, KeyError, ValueError):
            pass  # unreadable cache entry: recompute and overwrite
    acts = layer_activations(net.model, x, net.layers, batch_size=cfg.probe_batch_size, cache=False)
    dims, pcs, explained, raw = {}, {}, {}, {}
    for layer in net.layers:
        a = acts.pop(layer)  # free each layer once reduced
        dims[layer] = a.shape[1]
        if a.shape[1] <= cfg.keep_raw_max:
            raw[layer] = a
        if np.ptp(a, axis=0).max() == 0:
            pcs[layer], explained[layer] = np.zeros((len(a), 1), np.float32), np.zeros(1)
        else:
            pcs[layer], explained[layer] = principal_components(a, cfg.reduce_pcs)
        del a
    arrays = {"dims": np.array([dims[layer] for layer in net.layers])}
    for i, layer in enumerate(net.layers):
        arrays[f"pcs{i}"], arrays[f"ratio{i}"] = pcs[layer], explained[layer]
        if layer in raw:
            arrays[f"raw{i}"] = raw[layer]
    _save_npz(path, arrays)
    return LayerCodes(network=net.name, dataset=probe.key, layers=net.layers, dims=dims, pcs=pcs,
                      explained=explained, raw=raw)


def va_decoding_predictions(pcs: np.ndarray, valence: np.ndarray, arousal: np.ndarray, groups: np.ndarray,
                            n_splits: int = 5) -> np.ndarray | None:
    """Out-of-fold least-squares predictions (N, 2) of valence and arousal from ``pcs``, folds split
    by subject (``groups``: GroupKFold), so each face is predicted by a model that never saw its
    person. None when there are fewer than 2 subjects or a target is constant."""
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import GroupKFold

    x = np.asarray(pcs, dtype=np.float64)
    targets = np.stack([valence, arousal], 1).astype(np.float64)
    subjects = np.unique(groups)
    if len(subjects) < 2 or np.ptp(targets, axis=0).min() == 0 or x.ndim != 2:
        return None
    pred = np.zeros_like(targets)
    for train, test in GroupKFold(n_splits=min(n_splits, len(subjects))).split(x, targets, groups):
        pred[test] = LinearRegression().fit(x[train], targets[train]).predict(x[test])
    return pred


def _mean_r2(targets: np.ndarray, pred: np.ndarray) -> float:
    """Mean over the columns (valence, arousal) of R^2 = 1 - SS_res / SS_tot."""
    ss_res = ((targets - pred) ** 2).sum(axis=0)
    ss_tot = ((targets - targets.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.mean(1.0 - ss_res / np.where(ss_tot > 0, ss_tot, np.nan)))


def va_decoding_r2(pcs: np.ndarray, valence: np.ndarray, arousal: np.ndarray, groups: np.ndarray,
                   n_splits: int = 5) -> float:
    """Mean cross-validated R^2 of valence and arousal from ``pcs`` by least squares, with folds
    split by subject (``groups``), so it measures V/A read-out that generalises to new people.
    NaN when there are fewer than 2 subjects or a target is constant."""
    pred = va_decoding_predictions(pcs, valence, arousal, groups, n_splits)
    if pred is None:
        return float("nan")
    return _mean_r2(np.stack([valence, arousal], 1).astype(np.float64), pred)


def subject_resamples(groups: np.ndarray, n_resamples: int, seed: int) -> list[np.ndarray]:
    """Row indices of ``n_resamples`` cluster-bootstrap resamples: each draws as many subjects as
    there are, with replacement, and takes all their rows (a subject drawn twice counts twice)."""
    g = np.asarray(groups)
    members = [np.flatnonzero(g == k) for k in np.unique(g)]
    if len(members) < 2:
        raise ValueError(f"groups must name at least 2 subjects to resample; got {len(members)}")
    rng = np.random.default_rng(seed)
    return [np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])
            for _ in range(n_resamples)]


def va_r2_resampled(codes: LayerCodes, probe: ProbeSet, cfg: ChapterConfig, draws: Sequence[np.ndarray]
                    ) -> pd.DataFrame:
    """Cross-validated V/A R^2 (from the first ``cfg.n_pcs`` PCs) of every layer of ``codes``,
    recomputed on each subject resample in ``draws`` (:func:`subject_resamples`; the out-of-fold
    predictions are fixed, the faces scored are resampled). Rows = resamples, columns = layers;
    NaN columns for layers without a prediction. The same draws for two networks on the same faces
    give paired differences."""
    targets = np.stack([probe.valence, probe.arousal], 1).astype(np.float64)
    out = {}
    for layer in codes.layers:
        pred = va_decoding_predictions(_layer(codes, layer)[:, : cfg.n_pcs], probe.valence, probe.arousal,
                                       probe.faces.identity.numpy())
        out[layer] = (np.full(len(draws), np.nan) if pred is None
                      else np.array([_mean_r2(targets[idx], pred[idx]) for idx in draws]))
    return pd.DataFrame(out)


def _layer(codes: LayerCodes, layer: str) -> np.ndarray:
    """``codes.pcs[layer]`` or a clear error naming the network, the probing set and the layer."""
    if layer not in codes.pcs:
        raise KeyError(f"network {codes.network!r} on {codes.dataset!r} has no probed layer {layer!r}; "
                       f"probed: {list(codes.pcs)}")
    return codes.pcs[layer]


def _role_layer(roles: Mapping[str, Mapping[str, str]], network: str, role: str) -> str:
    """The layer playing ``role`` in ``network``, or a clear error naming both."""
    if network not in roles:
        raise KeyError(f"no roles given for network {network!r}; roles cover {list(roles)}")
    if role not in roles[network]:
        raise KeyError(f"network {network!r} has no layer for role {role!r}; its roles: {dict(roles[network])}")
    return roles[network][role]


def layer_profile(codes: LayerCodes, probe: ProbeSet, roles: Mapping[str, str], cfg: ChapterConfig,
                  seed: int = 0) -> pd.DataFrame:
    """Per layer (input -> output): silhouettes w.r.t. identity and expression on the first
    ``cfg.n_pcs`` PCs (Study 3; Euclidean) with 95 % CIs from resampling subjects, PC1/PC2 against
    valence/arousal (Study 4: Pearson r), and cross-validated V/A R^2 from the 10 PCs with a 95 %
    subject-bootstrap CI (:func:`va_r2_resampled`).

    Rows whose expression label is unknown (-1) are left out of the expression silhouette.
    """
    faces = probe.faces
    identity = faces.identity.numpy()
    labels = faces.labels.numpy()
    known = labels >= 0
    ten = {layer: codes.pcs[layer][:, : cfg.n_pcs] for layer in codes.layers}
    kwargs = dict(n_components=cfg.n_pcs, n_resamples=cfg.bootstrap_resamples, seed=seed)
    sil_id = silhouette_ci_by_subject(ten, identity, identity, **kwargs)
    sil_ex = None
    if known.sum() > 2 and 2 <= len(np.unique(labels[known])) < known.sum():
        sil_ex = silhouette_ci_by_subject({k: v[known] for k, v in ten.items()}, labels[known], identity[known], **kwargs)
    resampled = va_r2_resampled(codes, probe, cfg, subject_resamples(identity, cfg.bootstrap_resamples, seed))
    role_of: dict[str, str] = {}
    for role, layer in roles.items():
        role_of[layer] = f"{role_of[layer]}, {role}" if layer in role_of else role
    rows = []
    for depth, layer in enumerate(codes.layers):
        pcs = codes.pcs[layer]
        row = {"layer": layer, "depth": depth, "role": role_of.get(layer, ""), "width": codes.dims[layer],
               "explained variance, 10 PCs": float(codes.explained[layer][: cfg.n_pcs].sum())}
        for target, table in (("identity", sil_id), ("expression", sil_ex)):
            for col, src in (("", "silhouette"), (" low", "ci_low"), (" high", "ci_high")):
                row[f"{target} silhouette{col}"] = float(table.loc[layer, src]) if table is not None else np.nan
        if pcs.shape[1] >= 2 and np.ptp(probe.valence) > 0 and np.ptp(probe.arousal) > 0:
            reg = va_regression(pcs[:, :2], probe.valence, probe.arousal)
            row["r(PC1, valence)"] = float(reg.loc[("PC1", "valence"), "r"])
            row["r(PC2, arousal)"] = float(reg.loc[("PC2", "arousal"), "r"])
        else:
            row["r(PC1, valence)"] = row["r(PC2, arousal)"] = np.nan
        row["V/A R2 (CV by subject)"] = va_decoding_r2(pcs[:, : cfg.n_pcs], probe.valence, probe.arousal, identity)
        values = resampled[layer].to_numpy(float)
        finite = values[np.isfinite(values)]
        row["V/A R2 low"], row["V/A R2 high"] = (np.quantile(finite, [0.025, 0.975]) if len(finite) else (np.nan, np.nan))
        rows.append(row)
    table = pd.DataFrame(rows).set_index("layer")
    table.attrs.update(network=codes.network, dataset=probe.key)
    return table


# ----------------------------------------------------------------------------------------------
# Study 1 and 2: UMAP scatter plots, silhouettes, faces along the axes
# ----------------------------------------------------------------------------------------------


def axis_samples(coords: np.ndarray, n: int) -> np.ndarray:
    """Row indices of the samples nearest to ``n`` equally spaced points from the minimum to the
    maximum of ``coords`` (Fig. 2d and 6: "21 equally spaced faces projected onto the axis")."""
    c = np.asarray(coords, dtype=np.float64)
    if c.ndim != 1 or len(c) == 0 or not np.isfinite(c).all():
        raise ValueError(f"coords must be a non-empty finite 1-D array; got shape {c.shape}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1; got {n!r}")
    targets = np.linspace(c.min(), c.max(), n)
    return np.abs(c[None, :] - targets[:, None]).argmin(axis=1)


@dataclasses.dataclass
class EmbeddingStudy:
    """2-D embeddings (``name -> (N, 2)``) of one probing set with their silhouettes (``table``)."""

    network: str
    dataset: str
    embeddings: dict[str, np.ndarray]
    table: pd.DataFrame


def _silhouette(xy: np.ndarray, labels: np.ndarray) -> float:
    known = labels >= 0
    if len(np.unique(labels[known])) < 2:
        return float("nan")
    return float(silhouette_per_layer({"x": xy[known]}, labels[known], n_components=xy.shape[1]).loc["x", "silhouette"])


def _silhouette_ci(xy: np.ndarray, labels: np.ndarray, subjects: np.ndarray, cfg: ChapterConfig,
                   seed: int) -> tuple[float, float, float]:
    """Silhouette of ``labels`` on ``xy`` (all its columns) with the 95 % subject-bootstrap CI of
    :func:`affectlab.probing.silhouette_ci_by_subject`; NaNs when fewer than 2 labels are known."""
    known = labels >= 0
    if len(np.unique(labels[known])) < 2 or len(np.unique(subjects[known])) < 2:
        return float("nan"), float("nan"), float("nan")
    t = silhouette_ci_by_subject({"x": xy[known]}, labels[known], subjects[known], n_components=xy.shape[1],
                                 n_resamples=cfg.bootstrap_resamples, seed=seed).loc["x"]
    return float(t["silhouette"]), float(t["ci_low"]), float(t["ci_high"])


def _embed(x: np.ndarray, cfg: ChapterConfig, seed: int) -> np.ndarray:
    """The Study 1-2 scatter-plot embedding: UMAP (the paper), or the first 2 PCs (smoke)."""
    if cfg.embedding == "pca":
        return principal_components(x, 2)[0]
    _import_quietly("umap")
    return umap_embed(x, n_neighbors=cfg.umap_neighbors, min_dist=cfg.umap_min_dist, seed=seed)


def study1_umaps(codes: LayerCodes, probe: ProbeSet, cfg: ChapterConfig, seed: int = 0,
                 layers: Sequence[str] = ("batchnorm_1", "flatten", "dropout_4")) -> EmbeddingStudy:
    """Study 1 / Fig. 2(a-c): UMAP (``cfg.embedding``) of ``layers`` and the silhouette w.r.t.
    identity of each 2-D embedding and on the first 10 PCs, each with a 95 % CI from resampling
    subjects (the embedding is held fixed), beside the paper's numbers for NN1 on DISFA."""
    identity, labels = probe.faces.identity.numpy(), probe.faces.labels.numpy()
    embeddings, rows = {}, []
    method = cfg.embedding.upper()
    for layer in layers:
        x, note = codes.umap_input(layer)
        xy = _embed(x, cfg, seed)
        embeddings[layer] = xy
        row: dict[str, Any] = {"layer": layer, f"{method} input": note}
        for name, rep_xy, labs in ((f"identity silhouette, {method} 2-D", xy, identity),
                                   ("identity silhouette, 10 PCs", _layer(codes, layer)[:, : cfg.n_pcs], identity),
                                   (f"expression silhouette, {method} 2-D", xy, labels)):
            row[name], row[f"{name} low"], row[f"{name} high"] = _silhouette_ci(rep_xy, labs, identity, cfg, seed)
        row["paper (NN1, DISFA, identity)"] = PAPER_STUDY1_SILHOUETTES.get(layer, np.nan)
        rows.append(row)
    return EmbeddingStudy(codes.network, probe.key, embeddings, pd.DataFrame(rows).set_index("layer"))


def study2_identity_dominance(probe: ProbeSet, nn3_codes: LayerCodes, cfg: ChapterConfig, seed: int = 0) -> EmbeddingStudy:
    """Study 2 / Fig. 3: identity in raw pixels (UMAP; PCA on 2 and 10 PCs) and in the untrained
    NN3's penultimate layer (UMAP), with silhouettes w.r.t. identity and expression and their 95 %
    subject-bootstrap CIs (embeddings held fixed). VGG16 (Fig. 3d)
    is listed with the paper's value only: its ImageNet weights cannot be downloaded here."""
    identity, labels = probe.faces.identity.numpy(), probe.faces.labels.numpy()
    pixels = probe.faces.images.reshape(len(probe.faces), -1).float().numpy() / 255.0
    pcs, ratio = principal_components(pixels, cfg.n_pcs)
    nn3_x, nn3_note = nn3_codes.umap_input("dropout_4")
    method = cfg.embedding.upper()
    # (name shown, paper's row of Fig. 3, 2-D embedding or 10 PCs, what went in)
    reps = [
        (f"pixels, {method}", "pixels, UMAP", _embed(pixels, cfg, seed), f"{pixels.shape[1]:,} pixel values"),
        ("pixels, PCA (2 PCs)", "pixels, PCA (2 PCs)", pcs[:, :2],
         f"PC1 {100 * ratio[0]:.1f} %, PC2 {100 * ratio[1]:.1f} % of variance"),
        ("pixels, PCA (10 PCs)", "pixels, PCA (10 PCs)", pcs, f"{100 * ratio[: cfg.n_pcs].sum():.1f} % of variance"),
        (f"NN3 dropout_4, {method}", "NN3 dropout_4, UMAP", _embed(nn3_x, cfg, seed), nn3_note),
    ]
    rows = []
    for name, paper, xy, note in reps:
        row: dict[str, Any] = {"representation": name, "input": note}
        for target, labs in (("identity", identity), ("expression", labels)):
            col = f"{target} silhouette"
            row[col], row[f"{col} low"], row[f"{col} high"] = _silhouette_ci(xy, labs, identity, cfg, seed)
        row["paper (DISFA, identity)"] = PAPER_STUDY2_SILHOUETTES[paper]
        rows.append(row)
    rows.append({"representation": "VGG16 fc2, UMAP", "input": "not run: ImageNet VGG16 weights cannot be downloaded here",
                 **{f"{t} silhouette{c}": np.nan for t in ("identity", "expression") for c in ("", " low", " high")},
                 "paper (DISFA, identity)": PAPER_STUDY2_SILHOUETTES["VGG16 fc2, UMAP"]})
    embeddings = {name: xy for name, _, xy, _ in reps if xy.shape[1] == 2}
    return EmbeddingStudy("pixels and NN3", probe.key, embeddings, pd.DataFrame(rows).set_index("representation"))


# ----------------------------------------------------------------------------------------------
# Study 3 and 4
# ----------------------------------------------------------------------------------------------


def study3_table(profiles: Mapping[tuple[str, str], pd.DataFrame], roles: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """Fig. 4 as a table: for each (network, dataset) the silhouettes (with CIs) of the four role
    layers (early, identity layer, penultimate, final), from :func:`layer_profile` tables."""
    rows = []
    for (network, dataset), table in profiles.items():
        for role in ROLES:
            layer = _role_layer(roles, network, role)
            if layer not in table.index:
                raise KeyError(f"the layer profile of {network!r} on {dataset!r} has no row for layer {layer!r} "
                               f"(role {role!r})")
            r = table.loc[layer]
            rows.append({"network": network, "dataset": dataset, "role": role, "layer": layer,
                         **{c: r[c] for c in table.columns if "silhouette" in c}})
    return pd.DataFrame(rows)


def with_ci(value: float, low: float, high: float, digits: int = 2) -> str:
    """``"0.12 [0.08, 0.15]"``; "-" for a missing value."""
    if not np.isfinite(value):
        return "-"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def study3_summary(study3: pd.DataFrame, targets: Sequence[str] = ("expression", "identity")) -> pd.DataFrame:
    """Fig. 4 as a readable table: rows (dataset, network), columns (target, role), cells
    "silhouette [95 % CI]" from :func:`study3_table`."""
    cells = {}
    for (dataset, network), sub in study3.groupby(["dataset", "network"], sort=False):
        by_role = sub.set_index("role")
        cells[(dataset, network)] = {
            (f"{target} silhouette", role): with_ci(*(float(by_role.loc[role, f"{target} silhouette{c}"])
                                                      for c in ("", " low", " high")))
            for target in targets for role in ROLES}
    table = pd.DataFrame.from_dict(cells, orient="index")
    table.index.names = ["dataset", "network"]
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


@dataclasses.dataclass
class PCStudy:
    """Study 4: the penultimate layer's PC1/PC2 (signs flipped so PC1 rises with valence and PC2
    with arousal; PCA signs are arbitrary), their regression on V/A, and the network's predictions
    (FERPlus indices) for Fig. 7."""

    network: str
    dataset: str
    layer: str
    pcs: np.ndarray
    explained: np.ndarray
    regression: pd.DataFrame
    labels: np.ndarray
    predicted: np.ndarray
    valence: np.ndarray
    arousal: np.ndarray
    u_shape: dict[str, float] = dataclasses.field(default_factory=dict)


def fisher_ci(r: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Confidence interval of a Pearson r by Fisher's z-transform (atanh(r) +- z / sqrt(n - 3))."""
    from scipy import stats

    if n <= 3 or not np.isfinite(r):
        return float("nan"), float("nan")
    z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    half = stats.norm.ppf(0.5 + confidence / 2) / np.sqrt(n - 3)
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def u_shape_test(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The U-shape of Fig. 5a measured: least squares ``y = b0 + b1 x + b2 x^2`` on standardised
    ``x``; ``b2`` > 0 with a small two-sided p (t-test, n - 3 df) is a U opening upwards (as IAPS
    arousal against valence). Returns b2, its standard error, t, p, n and the R^2 gained over the
    straight line."""
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 5 or np.ptp(x) == 0:
        raise ValueError(f"u_shape_test needs two equal-length 1-D arrays of >= 5 values with x not constant; "
                         f"got {x.shape} and {y.shape}")
    z = (x - x.mean()) / x.std()
    design = np.stack([np.ones_like(z), z, z**2], 1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    dof = len(y) - 3
    sigma2 = float(resid @ resid) / dof
    se = float(np.sqrt(sigma2 * np.linalg.inv(design.T @ design)[2, 2]))
    t = float(coef[2] / se) if se > 0 else float("inf") * np.sign(coef[2])
    p = float(2 * stats.t.sf(abs(t), dof))
    line = np.stack([np.ones_like(z), z], 1)
    line_resid = y - line @ np.linalg.lstsq(line, y, rcond=None)[0]
    ss_tot = float(((y - y.mean()) ** 2).sum())
    gain = (float(line_resid @ line_resid) - float(resid @ resid)) / ss_tot if ss_tot > 0 else float("nan")
    return {"b2": float(coef[2]), "se": se, "t": t, "p": p, "n": float(len(y)), "R2 gain over a line": gain}


def study4_table(studies: Mapping[str, PCStudy]) -> pd.DataFrame:
    """Study 4 summary per network: r(PC1, valence) and r(PC2, arousal) with Fisher 95 % CIs and p,
    and the U-shape test (:func:`u_shape_test` of PC2 on PC1: curvature b2, p)."""
    rows = []
    for name, st in studies.items():
        row: dict[str, Any] = {"network": name, "dataset": st.dataset, "layer": st.layer}
        for comp, target in (("PC1", "valence"), ("PC2", "arousal")):
            reg = st.regression.loc[(comp, target)]
            row[f"r({comp}, {target})"] = with_ci(reg["r"], reg["r low"], reg["r high"])
            row[f"p({comp}, {target})"] = reg["p"]
        row["U-shape b2 (PC2 on PC1^2)"] = st.u_shape.get("b2", np.nan)
        row["U-shape p"] = st.u_shape.get("p", np.nan)
        row["faces"] = len(st.labels)
        rows.append(row)
    return pd.DataFrame(rows).set_index("network")


def study4_penultimate(net: ProbedNetwork, codes: LayerCodes, probe: ProbeSet) -> PCStudy:
    """Study 4 / Figs. 5 and 7: PCA of the penultimate layer, PC1 vs valence and PC2 vs arousal
    (Pearson r with Fisher 95 % CIs, p, least-squares line), the U-shape of the PC1/PC2 scatter
    (:func:`u_shape_test`), and which faces the network classifies correctly."""
    layer = _role_layer({net.name: net.roles}, net.name, "penultimate")
    pcs = _layer(codes, layer)[:, :2].astype(np.float64).copy()
    if pcs.shape[1] < 2:
        raise ValueError(f"{net.name} {layer} on {probe.key}: Study 4 needs 2 principal components; "
                         f"the layer gives {pcs.shape[1]} (constant output?)")
    signs = np.sign([np.corrcoef(pcs[:, 0], probe.valence)[0, 1], np.corrcoef(pcs[:, 1], probe.arousal)[0, 1]])
    pcs *= np.where(signs == 0, 1.0, signs)
    final = net.roles["final"]
    logits = codes.raw[final] if final in codes.raw else network_logits(net, probe.faces.images)
    regression = va_regression(pcs, probe.valence, probe.arousal)
    bounds = [fisher_ci(r, int(n)) for r, n in zip(regression["r"], regression["n"])]
    regression["r low"], regression["r high"] = [b[0] for b in bounds], [b[1] for b in bounds]
    return PCStudy(network=net.name, dataset=probe.key, layer=layer, pcs=pcs, explained=codes.explained[layer][:2],
                   regression=regression, labels=probe.faces.labels.numpy(),
                   predicted=ferplus_predictions(net, logits), valence=probe.valence, arousal=probe.arousal,
                   u_shape=u_shape_test(pcs[:, 0], pcs[:, 1]))


# ----------------------------------------------------------------------------------------------
# Grad-CAM (Fig. 2e-f)
# ----------------------------------------------------------------------------------------------


def _require_generated(probe: ProbeSet) -> None:
    if not probe.generated:
        raise ValueError(f"{probe.title}: images of research datasets are never shown; use generated faces")


def gradcam_examples(net: ProbedNetwork, probe: ProbeSet, categories: Sequence[str] = ("happiness", "anger"),
                     ) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """Grad-CAM of ``net.gradcam_layers`` (Fig. 2e-f: batchnorm_1, conv2d_4, conv2d_6) for the first
    face of each category (the paper: a smiling face and an eyebrow frown) of a generated set,
    for the network's predicted class. Returns the images (K, 48, 48) uint8, ``{layer: (K, 48, 48)}``
    maps in [0, 1] and a caption per face."""
    _require_generated(probe)
    _import_quietly("captum.attr")
    labels = probe.faces.labels
    rows = [int(torch.nonzero(labels == FERPLUS_CLASSES.index(c)).flatten()[0]) for c in categories
            if bool((labels == FERPLUS_CLASSES.index(c)).any())]
    if not rows:
        raise ValueError(f"{probe.title}: no face of the categories {tuple(categories)}")
    images = probe.faces.images[rows]
    x = net.prepare(images)
    cams = gradcam_per_block(net.model, x, None, net.gradcam_layers)
    predicted = network_logits(net, images).argmax(axis=1)
    captions = [f"{FERPLUS_CLASSES[int(labels[r])]} face, {net.name} says {net.class_names[p]}"
                for r, p in zip(rows, predicted)]
    if x.shape[-1] != images.shape[-1]:  # mini-Xception reads 64 px: bring maps back to 48 px
        cams = {k: torch.nn.functional.interpolate(torch.as_tensor(v)[:, None], size=images.shape[-2:], mode="bilinear",
                                                   align_corners=False)[:, 0].numpy() for k, v in cams.items()}
    return images[:, 0].numpy(), cams, captions


#: iBUG-68 landmark rows (0-based) of the face regions the region table measures.
REGION_LANDMARKS: dict[str, tuple[int, ...]] = {
    "brows and eyes": tuple(range(17, 27)) + tuple(range(36, 48)),
    "mouth": tuple(range(48, 68)),
}


def _region_masks(landmarks: np.ndarray, side: int, pad: float = 2.0) -> dict[str, np.ndarray]:
    """Boolean (side, side) masks of the landmark bounding boxes (``pad`` px around them)."""
    yy, xx = np.mgrid[0:side, 0:side] + 0.5
    masks = {}
    for region, idx in REGION_LANDMARKS.items():
        pts = landmarks[list(idx)]
        (x0, y0), (x1, y1) = pts.min(0) - pad, pts.max(0) + pad
        masks[region] = (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)
    return masks


def gradcam_region_table(net: ProbedNetwork, probe: ProbeSet, cfg: ChapterConfig,
                         categories: Sequence[str] = ("happiness", "anger", "surprise", "sadness"),
                         seed: int = 0) -> pd.DataFrame:
    """Where each Grad-CAM layer looks, measured on generated faces (landmarks are known): the mean
    share of the map's mass inside the brows-and-eyes box and the mouth box, per expression, beside
    the share of the image those boxes cover (what a uniform map would give) and their ratio,
    the enrichment (1 = no preference, 2 = twice the uniform share), with a 95 % bootstrap CI over
    faces (each face is a different generated identity). The paper reports this qualitatively
    (Fig. 2e-f: the last block focuses on lips for a smile, brows for a frown)."""
    _require_generated(probe)
    if "landmarks" not in probe.faces.meta:
        raise ValueError(f"{probe.title}: the region table needs meta['landmarks'] (generated faces)")
    _import_quietly("captum.attr")
    side = probe.faces.images.shape[-1]
    chosen = {c: torch.nonzero(probe.faces.labels == FERPLUS_CLASSES.index(c)).flatten()[: cfg.gradcam_faces_per_class]
              for c in categories}
    chosen = {c: idx for c, idx in chosen.items() if len(idx)}
    if not chosen:
        raise ValueError(f"{probe.title}: no face of the categories {tuple(categories)}")
    rows_all = torch.cat(list(chosen.values()))
    cams = gradcam_per_block(net.model, net.prepare(probe.faces.images[rows_all]), None, net.gradcam_layers)
    landmarks = np.asarray(probe.faces.meta["landmarks"])[rows_all.numpy()]
    masks = [_region_masks(lm, side) for lm in landmarks]
    category_of = np.concatenate([[c] * len(idx) for c, idx in chosen.items()])
    rng = np.random.default_rng(seed)
    rows = []
    for layer, maps in cams.items():
        maps = torch.nn.functional.interpolate(torch.as_tensor(maps)[:, None], size=(side, side), mode="bilinear",
                                               align_corners=False)[:, 0].numpy()
        for category in chosen:
            faces = np.flatnonzero(category_of == category)
            row = {"network": net.name, "layer": layer, "expression": category, "faces": len(faces)}
            for region in REGION_LANDMARKS:
                share = np.array([float(masks[i][region].astype(float).ravel() @ maps[i].ravel()
                                        / max(maps[i].sum(), 1e-12)) for i in faces])
                area = np.array([masks[i][region].mean() for i in faces])
                row[f"{region}: share of Grad-CAM (%)"] = 100 * float(np.mean(share))
                row[f"{region}: share of image (%)"] = 100 * float(np.mean(area))
                row[f"{region}: enrichment"] = row[f"{region}: share of Grad-CAM (%)"] / row[f"{region}: share of image (%)"]
                draws = rng.integers(0, len(faces), size=(cfg.bootstrap_resamples, len(faces)))
                ratios = share[draws].mean(axis=1) / area[draws].mean(axis=1)
                row[f"{region}: enrichment low"], row[f"{region}: enrichment high"] = np.quantile(ratios, [0.025, 0.975])
            rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# known ground truth (generated faces)
# ----------------------------------------------------------------------------------------------


def ci_verdict(a: tuple[float, float, float], b: tuple[float, float, float], greater: bool = True) -> str:
    """Three-way verdict on "a > b" (``greater``) or "a < b" from (value, CI low, CI high) triples:
    "yes" when the two 95 % intervals do not overlap in the claimed direction, "no" when they do not
    overlap the other way, "undecided" when they overlap or a value is missing. Non-overlap of two
    95 % intervals is a conservative test (it implies p < 0.05 for the difference)."""
    if not all(np.isfinite(v) for v in (*a, *b)):
        return "undecided"
    lo_a, hi_a, lo_b, hi_b = a[1], a[2], b[1], b[2]
    if not greater:
        lo_a, hi_a, lo_b, hi_b = -hi_a, -lo_a, -hi_b, -lo_b
    if lo_a > hi_b:
        return "yes"
    if hi_a < lo_b:
        return "no"
    return "undecided"


def ground_truth_checks(profiles: Mapping[tuple[str, str], pd.DataFrame], roles: Mapping[str, Mapping[str, str]],
                        trained: Mapping[str, bool], datasets_: Sequence[str],
                        learned: Mapping[str, bool] | None = None) -> pd.DataFrame:
    """On faces whose identity, expression and V/A are planted, does the analysis recover the
    paper's three stages? One row per (network, dataset, claim) with both numbers, their 95 %
    subject-bootstrap CIs and a three-way verdict (:func:`ci_verdict`: yes / no / undecided):

    1. identity dominates the early layer (identity silhouette > expression silhouette);
    2. training lifts expression (final-layer expression silhouette > early-layer's), expected for
       trained networks only (NN3 is the control);
    3. identity fades towards the output (final identity silhouette < early);
    4. V/A are read out of the penultimate layer better than out of the early layer
       (cross-validated R^2 from 10 PCs, across subjects).

    ``learned`` (from :func:`learning_verdicts`) adds whether each network beat its untrained twin
    and the majority class in Table 1; a trained network that did not is marked
    "untrained-equivalent", and its claims test an untrained network.
    """
    def triple(row: pd.Series, column: str, low: str, high: str) -> tuple[float, float, float]:
        return float(row[column]), float(row[low]), float(row[high])

    rows = []
    for (network, dataset), t in profiles.items():
        if dataset not in datasets_:
            continue
        r = {}
        for role in ROLES:
            layer = _role_layer(roles, network, role)
            if layer not in t.index:
                raise KeyError(f"the layer profile of {network!r} on {dataset!r} has no row for layer {layer!r} "
                               f"(role {role!r})")
            r[role] = t.loc[layer]
        sil = {(role, target): triple(r[role], f"{target} silhouette", f"{target} silhouette low",
                                      f"{target} silhouette high")
               for role in ROLES for target in ("identity", "expression")}
        va = {role: triple(r[role], "V/A R2 (CV by subject)", "V/A R2 low", "V/A R2 high") for role in ROLES}
        claims = [
            ("identity dominates the early layer", sil[("early", "identity")], sil[("early", "expression")],
             "identity sil.", "expression sil.", True),
            ("training lifts expression towards the output", sil[("final", "expression")],
             sil[("early", "expression")], "final", "early", True),
            ("identity fades towards the output", sil[("final", "identity")], sil[("early", "identity")],
             "final", "early", False),
            ("V/A readable from the penultimate layer", va["penultimate"], va["early"], "penultimate R2",
             "early R2", True),
        ]
        if learned is None or network not in learned:
            status = "untrained control" if not trained[network] else "published weights"
        else:
            status = "learned" if learned[network] else "untrained-equivalent"
        for claim, a, b, a_name, b_name, greater in claims:
            rows.append({"network": network, "trained": trained[network], "training status": status,
                         "dataset": dataset, "claim": claim,
                         "value": f"{a_name} {a[0]:.3f} [{a[1]:.3f}, {a[2]:.3f}] vs {b_name} {b[0]:.3f} "
                                  f"[{b[1]:.3f}, {b[2]:.3f}]",
                         "holds here": ci_verdict(a, b, greater)})
    return pd.DataFrame(rows)


def planted_factor_codes(probe: ProbeSet, cfg: ChapterConfig) -> LayerCodes:
    """Positive control for the ground-truth checks: the generator's own factors of each face as
    "layers", reduced to PCs like a network layer. "planted expression" = the 53 expression
    blendshape weights (``meta['blendshapes']``); "planted identity" = the identity shape
    coefficients (``meta['beta']``, KDEF-like faces) when present. Run through
    :func:`layer_profile`, they give the best score each measure can reach on these faces: the
    ceiling a network's layer is compared with."""
    meta = probe.faces.meta
    if "blendshapes" not in meta:
        raise ValueError(f"{probe.title}: the positive control needs the generator's meta['blendshapes']")
    factors = {"planted expression": np.asarray(meta["blendshapes"], dtype=np.float32)}
    if "beta" in meta:
        factors["planted identity"] = np.asarray(meta["beta"], dtype=np.float32)
    pcs, explained, dims = {}, {}, {}
    for name, x in factors.items():
        dims[name] = x.shape[1]
        pcs[name], explained[name] = principal_components(x, min(cfg.reduce_pcs, x.shape[1]))
    return LayerCodes(network="planted factors", dataset=probe.key, layers=tuple(factors), dims=dims, pcs=pcs,
                      explained=explained, raw=dict(factors))


def positive_control_table(controls: Mapping[str, pd.DataFrame], profiles: Mapping[tuple[str, str], pd.DataFrame],
                           roles: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """The ceiling beside the networks: for each generated set (``controls``: dataset ->
    :func:`layer_profile` of :func:`planted_factor_codes`), the planted factors' identity and
    expression silhouettes and V/A R^2, then each network's early and penultimate layers on the
    same faces; cells "value [95 % CI]"."""
    def cells(row: pd.Series) -> dict[str, str]:
        return {"identity silhouette": with_ci(row["identity silhouette"], row["identity silhouette low"],
                                               row["identity silhouette high"]),
                "expression silhouette": with_ci(row["expression silhouette"], row["expression silhouette low"],
                                                 row["expression silhouette high"]),
                "V/A R2 (CV by subject)": with_ci(row["V/A R2 (CV by subject)"], row["V/A R2 low"], row["V/A R2 high"])}

    rows = []
    for dataset, control in controls.items():
        for layer, row in control.iterrows():
            rows.append({"dataset": dataset, "representation": f"{layer} (positive control)", **cells(row)})
        for (network, key), table in profiles.items():
            if key != dataset:
                continue
            for role in ("early", "penultimate"):
                layer = _role_layer(roles, network, role)
                rows.append({"dataset": dataset, "representation": f"{network} {layer} ({role})", **cells(table.loc[layer])})
    return pd.DataFrame(rows).set_index(["dataset", "representation"])


def axis_va_correlation(xy: np.ndarray, probe: ProbeSet, names: tuple[str, str] = ("UMAP1", "UMAP2")) -> pd.DataFrame:
    """Pearson r (and p) of each embedding axis with the planted valence and arousal: does the
    axis the paper reads as valence (UMAP1) or arousal (UMAP2) carry it? Axis signs are arbitrary."""
    from scipy import stats

    rows = []
    for j, axis in enumerate(names):
        for target, values in (("valence", probe.valence), ("arousal", probe.arousal)):
            r, p = stats.pearsonr(xy[:, j], values) if np.ptp(values) > 0 and np.ptp(xy[:, j]) > 0 else (np.nan, np.nan)
            rows.append({"axis": axis, "target": target, "r": float(r), "p": float(p), "n": len(values)})
    return pd.DataFrame(rows).set_index(["axis", "target"])


def va_emergence_table(profiles: Mapping[str, pd.DataFrame], roles: Mapping[str, Mapping[str, str]],
                       column: str = "V/A R2 (CV by subject)") -> pd.DataFrame:
    """How early V/A become readable in each network: ``column`` (default cross-validated V/A R^2
    from 10 PCs) at the four role layers (named in "role layers"), its maximum over all probed
    layers, and the relative depth (0 = first probed layer, 1 = output) of the first layer reaching
    half of that maximum."""
    rows = []
    for name, table in profiles.items():
        values = table[column].to_numpy(float)
        depth = table["depth"].to_numpy(float) / max(table["depth"].max(), 1)
        best = np.nanmax(values) if np.isfinite(values).any() else np.nan
        reached = np.flatnonzero(values >= 0.5 * best) if best > 0 else np.array([], dtype=int)
        row = {"network": name, **{role: table.loc[_role_layer(roles, name, role), column] for role in ROLES}}
        row.update({"max": best, "half-max reached at depth": float(depth[reached[0]]) if len(reached) else np.nan,
                    "role layers": ", ".join(_role_layer(roles, name, role) for role in ROLES)})
        rows.append(row)
    return pd.DataFrame(rows).set_index("network")


def half_max_depth(values: np.ndarray) -> float:
    """Relative depth (0 = first layer, 1 = last) of the first layer whose value reaches half of
    the maximum over layers; NaN when the maximum is not positive."""
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(v).any() or np.nanmax(v) <= 0:
        return float("nan")
    first = int(np.flatnonzero(v >= 0.5 * np.nanmax(v))[0])
    return first / max(len(v) - 1, 1)


def student_va_comparison(codes: Mapping[str, LayerCodes], probe: ProbeSet, roles: Mapping[str, Mapping[str, str]],
                          cfg: ChapterConfig, seed: int = 0, reference: str = "B0") -> pd.DataFrame:
    """Issue item 8 answered: does Proto-KD make valence/arousal emerge earlier or more clearly?
    For each student (``codes`` by variant, all on the same probing faces), the cross-validated V/A
    R^2 of its penultimate layer and the relative depth at which V/A R^2 first reaches half its
    maximum, each minus ``reference`` (B0, cross-entropy only), with 95 % CIs from one shared set of
    subject resamples (paired). "clearer" = penultimate R^2 difference CI above 0, "earlier" =
    depth difference CI below 0, else "no" (the other direction) or "undecided"."""
    if reference not in codes:
        raise KeyError(f"student_va_comparison needs the reference student {reference!r}; got {list(codes)}")
    draws = subject_resamples(probe.faces.identity.numpy(), cfg.bootstrap_resamples, seed)
    identity = probe.faces.identity.numpy()
    point, boot = {}, {}
    for name, c in codes.items():
        pen = _role_layer(roles, name, "penultimate")
        r2 = np.array([va_decoding_r2(_layer(c, layer)[:, : cfg.n_pcs], probe.valence, probe.arousal, identity)
                       for layer in c.layers])
        resampled = va_r2_resampled(c, probe, cfg, draws)
        point[name] = (r2[list(c.layers).index(pen)], half_max_depth(r2))
        boot[name] = (resampled[pen].to_numpy(float), np.array([half_max_depth(row) for row in resampled.to_numpy(float)]))

    def ci(values: np.ndarray) -> tuple[float, float]:
        finite = values[np.isfinite(values)]
        return tuple(np.quantile(finite, [0.025, 0.975])) if len(finite) else (np.nan, np.nan)

    def verdict(low: float, high: float, good_if_positive: bool, good: str) -> str:
        if not (np.isfinite(low) and np.isfinite(high)):
            return "undecided"
        if (low > 0) if good_if_positive else (high < 0):
            return good
        if (high < 0) if good_if_positive else (low > 0):
            return "no"
        return "undecided"

    rows = []
    for name in codes:
        row: dict[str, Any] = {"student": name, "penultimate V/A R2": point[name][0],
                               "half-max depth": point[name][1]}
        if name != reference:
            d_r2 = boot[name][0] - boot[reference][0]
            d_depth = boot[name][1] - boot[reference][1]
            (r2_lo, r2_hi), (dp_lo, dp_hi) = ci(d_r2), ci(d_depth)
            row.update({f"R2 minus {reference}": point[name][0] - point[reference][0], "R2 diff low": r2_lo,
                        "R2 diff high": r2_hi, f"depth minus {reference}": point[name][1] - point[reference][1],
                        "depth diff low": dp_lo, "depth diff high": dp_hi,
                        "V/A clearer": verdict(r2_lo, r2_hi, True, "yes"),
                        "V/A earlier": verdict(dp_lo, dp_hi, False, "yes")})
        rows.append(row)
    return pd.DataFrame(rows).set_index("student")


# ----------------------------------------------------------------------------------------------
# NeuroGaze-Distill students (chapter 01)
# ----------------------------------------------------------------------------------------------


def _history_epochs(path: Path) -> int:
    if not path.is_file():
        return 0
    with open(path, newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def find_student_runs(runs_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Finished NeuroGaze-Distill student runs under ``runs_dir`` (default ``$AFFECTLAB_RUNS``).

    A run directory written by :func:`affectlab.train.fit` counts when its ``config.json`` key says
    chapter ``01_neurogaze_distill`` and role ``student``, its ``history.csv`` has every epoch and
    ``best.pt`` exists. Columns: variant, seed, arch, grid (prototype bank size, None without
    Proto-KD), input side, mean, std, epochs, run_dir, best_path, modified (newest first), and
    ``in ch01 table``: the run is one of the main-table students that a chapter 01 run listed in its
    artifacts (``ch01-artifacts-*/ablation_fingerprint.json``, "runs").
    """
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    listed: set[str] = set()
    for fingerprint in root.glob("ch01-artifacts-*/ablation_fingerprint.json"):
        try:
            listed.update(str(h) for h in (json.loads(fingerprint.read_text()).get("runs") or {}).values())
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
    rows = []
    for config_path in sorted(root.glob("*/config.json")):
        try:
            config = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        key = config.get("key") or {}
        if key.get("chapter") != NEUROGAZE_CHAPTER or key.get("role") != "student":
            continue
        run_dir = config_path.parent
        best = run_dir / "best.pt"
        epochs = int(config.get("train", {}).get("epochs", 0))
        if not best.is_file() or epochs < 1 or _history_epochs(run_dir / "history.csv") < epochs:
            continue
        data = config.get("train_data") or {}
        resize, shape = data.get("resize"), (data.get("x") or {}).get("shape") or [0, 1, 0, 0]
        rows.append({
            "variant": key.get("variant"), "seed": key.get("init_seed"), "arch": key.get("arch", "resnet18"),
            "grid": (key.get("proto") or {}).get("grid"), "faces": key.get("faces"),
            "input side": int(resize[0]) if resize else int(shape[-1]),
            "mean": float((data.get("mean") or [0.0])[0]), "std": float((data.get("std") or [1.0])[0]),
            "epochs": epochs, "run_dir": str(run_dir), "best_path": str(best), "modified": best.stat().st_mtime,
            "in ch01 table": config.get("config_hash") in listed,
        })
    columns = ["variant", "seed", "arch", "grid", "faces", "input side", "mean", "std", "epochs", "run_dir",
               "best_path", "modified", "in ch01 table"]
    return pd.DataFrame(rows, columns=columns).sort_values("modified", ascending=False, ignore_index=True)


def latest_student_per_variant(runs: pd.DataFrame) -> pd.DataFrame:
    """The newest finished run of each variant of chapter 01's main comparison, variants in its order.

    Chapter 01 also trains students outside that comparison (the known-ground-truth probe trains
    B0 / B2 on generated faces, a second B0 seed measures run-to-run spread, two B3 D-Geo candidates
    compete, a 7x7 bank is an ablation). When chapter 01's artifacts list its main-table runs
    (``in ch01 table``), only those are kept. Otherwise (runs from before the artifacts existed)
    the runs that share the training faces and the seed most variants share and the most common
    grid are kept.
    """
    if runs.empty:
        return runs
    if "in ch01 table" in runs and runs["in ch01 table"].any():
        runs = runs[runs["in ch01 table"]]
    for column in ("faces", "seed"):
        shared = runs.groupby(column, dropna=False)["variant"].nunique()
        if len(shared) > 1:
            best = shared.idxmax()
            runs = runs[runs[column].isna()] if pd.isna(best) else runs[runs[column] == best]
    grids = runs["grid"].dropna()
    main_grid = grids.mode().iloc[0] if len(grids) else None
    keep = runs[runs["grid"].isna() | (runs["grid"] == main_grid)]
    order = {v: i for i, v in enumerate(("B0", "B1", "B2", "B3", "Full"))}
    latest = keep.sort_values("modified", ascending=False).drop_duplicates("variant")
    return latest.sort_values("variant", key=lambda v: v.map(lambda x: order.get(x, 99)), ignore_index=True)


def load_student(row: Mapping[str, Any], device: torch.device | str = "cpu") -> ProbedNetwork:
    """A NeuroGaze-Distill student (a row of :func:`find_student_runs`) with its best weights,
    wrapped for probing: ResNet stages, the 256-D projection (penultimate) and the 8-way head; the
    input is prepared as its training data was (pixels / 255, resize, normalisation)."""
    from affectlab.models.resnet_student import FERStudent
    from affectlab.train import load_checkpoint

    model = FERStudent(arch=row["arch"], n_classes=len(FERPLUS_CLASSES), proj_dim=256, in_channels=1)
    model.load_state_dict(load_checkpoint(row["best_path"])["model"])
    model.to(device).eval()
    side, mean, std = int(row["input side"]), float(row["mean"]), float(row["std"])
    if std <= 0:
        raise ValueError(f"{row['run_dir']}: training std must be > 0; got {std}")

    def prepare(images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        if x.shape[-1] != side:
            x = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False,
                                                antialias=side < x.shape[-1])
        return (x - mean) / std

    name = f"{row['variant']} (seed {row['seed']})"
    return ProbedNetwork(name=name, model=model, class_names=FERPLUS_CLASSES, layers=STUDENT_PROBE_LAYERS,
                         roles=dict(STUDENT_ROLES), gradcam_layers=("backbone.layer1", "backbone.layer3"),
                         prepare=prepare, trained=True,
                         description=f"NeuroGaze-Distill student {name}, {row['arch']}, run {Path(row['run_dir']).name}")


# ----------------------------------------------------------------------------------------------
# deviations from the paper
# ----------------------------------------------------------------------------------------------


#: FER2013 as released (Goodfellow et al. 2013): Training / PublicTest / PrivateTest faces.
FER2013_ORIGINAL_SIZES: dict[str, int] = {"train": 28709, "public_test": 3589, "private_test": 3589}


def deviations(cfg: ChapterConfig, run: RunConfig, fer: FERData, nets: Mapping[str, ProbedNetwork],
               probes: Mapping[str, ProbeSet]) -> pd.DataFrame:
    """Every way this run differs from the paper, with the reason (rows depend on the profile and
    on what the data root holds)."""
    sizes = " / ".join(f"{fer.full_sizes[k]:,}" for k in ("train", "public_test", "private_test"))
    original = " / ".join(f"{v:,}" for v in FER2013_ORIGINAL_SIZES.values())
    balanced = cfg.train_per_class is not None
    rebuilt = fer.real and "fer2013_original_labels" in fer.source
    steps = {v: training_steps(cfg, len(fer.train[v])) for v in ("NN1", "NN2")}
    rows = [
        ("FER2013 copy", f"the Kaggle release: {original} faces (Training / PublicTest / PrivateTest)",
         f"{fer.source}: {sizes} faces" + (" (rebuilt from the FERPlus images with their original FER2013 labels "
                                            "recovered by pixel matching; unmatched or conflicting rows dropped)"
                                            if rebuilt else ""),
         ("the Kaggle CSV is not under the data root; the FERPlus images are the same faces" if rebuilt else "")
         if fer.real else "no FER2013 under the data root: a generated stand-in"),
        ("training data", "FER2013 Training, natural class mix (NN1: its happy/sad/neutral faces)",
         (f"at most {cfg.train_per_class} faces per class (class-balanced): " if balanced else "the whole split, natural class mix: ")
         + f"{len(fer.train['NN2']):,} (NN2) and {len(fer.train['NN1']):,} (NN1) faces",
         "the CPU budget of this profile (the paper credits NN1's accuracy to balanced classes)" if balanced else ""),
        ("training length", "not stated",
         f"{steps['NN1']} (NN1) and {steps['NN2']} (NN2) optimiser steps of {cfg.batch_size} faces"
         + (f" = {steps['NN2'] * cfg.batch_size / max(len(fer.train['NN2']), 1):.2f} passes over NN2's data"
            if cfg.steps_per_epoch else ""),
         "about 33 faces/s on this 2-core CPU; the quick profile's 20-minute budget" if cfg.profile != "paper" else ""),
        ("training recipe", "not stated", f"{'Adam' if cfg.weight_decay == 0 else 'AdamW'} lr {cfg.lr:g}"
         + (f", weight decay {cfg.weight_decay:g}" if cfg.weight_decay else "") + f", cosine schedule, batch "
         f"{cfg.batch_size}, {'crop+flip augmentation' if cfg.augment else 'no augmentation'}, one seed ({run.seed})",
         "the paper gives none; Adam at lr 1e-3 is Keras's default"),
        ("model selection", "not stated", f"best of {cfg.epochs} validations on {len(fer.val['NN2'])} (NN2) / "
         f"{len(fer.val['NN1'])} (NN1) PublicTest faces (class-proportional)", "PrivateTest stays untouched for Table 1"),
        ("test set", "accuracy on an unstated split",
         f"PrivateTest: NN2 on {len(fer.test['NN2'])} faces, NN1 and NN3 on their own {len(fer.test['NN1'])} "
         "happy/sad/neutral faces (class-proportional subsets)"
         + (f"; published weights on all {len(fer.private_test):,}" if fer.private_test is not None else ""),
         "the paper does not say which split its Table 1 uses"),
        ("uncertainty of Table 1", "none", f"95 % bootstrap CIs over test faces, one training seed ({run.seed})",
         "CIs cover the test sample, not training randomness (one seed fits the budget)"),
        ("BatchNorm statistics", "Keras running averages (momentum 0.99)",
         (f"momentum {1 - cfg.batchnorm_momentum:g} (Keras convention) while training; " if cfg.batchnorm_momentum else "")
         + (f"recalibrated on {cfg.batchnorm_recalibration} training faces after training"
            if cfg.batchnorm_recalibration else "running averages (momentum 0.99)"),
         "a short run leaves the running averages close to their initial values" if cfg.batchnorm_recalibration else ""),
        ("NN3", "untrained, same architecture as NN1", "NN1's own initial weights (same seed), untrained",
         "a matched control: NN3 is NN1 before training"),
        ("ResMaskNet, EmoFAN", "pretrained PyTorch networks",
         "mini-Xception (FER2013-trained, MIT) stands in" if "mini-Xception" in nets else "not available",
         "their weights cannot be obtained here"),
        ("role layers of the stand-in", "RMN: maxpool / mask4.conv2.downsample / fc.0 / fc.1",
         "mini-Xception: " + " / ".join(MINIXCEPTION_ROLES[r] for r in ROLES) + " (stem, 2nd and 4th residual "
         "blocks, class scores)", "the closest layers of a different architecture"),
        ("probe input size", "each network's own input", "probe faces are 48x48; mini-Xception reads them resized "
         "to 64x64 (bilinear), its Grad-CAM maps are resized back", "mini-Xception was trained at 64x64"),
        ("VGG16 (Study 2)", "ImageNet VGG16 fc2", "not run", "ImageNet weights cannot be downloaded here"),
        ("probing faces", "DISFA (27 people, ~5,700 frames; 12 women, ~970 frames in Study 3), KDEF (980 frontal: "
         "70 actors x 7 expressions x 2 sessions)",
         "; ".join(f"{p.title}: {len(p.faces)} faces of {p.n_subjects} subjects" for p in probes.values()),
         "DISFA and KDEF are licence-gated; generated faces carry known identity, expression and V/A; "
         "the generator renders one session per identity"),
        ("expression labels of DISFA", "predicted by ResMaskNet", "planted by the generator (DISFA-like faces)",
         "ResMaskNet is unavailable; planted labels are exact"),
        ("valence/arousal reference (Study 4)", "EmoFAN's V/A outputs",
         "planted V/A (generated faces); circumplex point of the label (CK+48)", "EmoFAN is unavailable"),
        ("scatter-plot embedding (Studies 1-2)", "UMAP",
         "UMAP" if cfg.embedding == "umap" else "the first 2 PCs (PCA) instead of UMAP",
         "" if cfg.embedding == "umap" else "smoke profile: UMAP's numba compilation alone takes 30-90 s"),
        ("UMAP input", "raw layer outputs",
         f"raw outputs for layers up to {cfg.keep_raw_max} wide, else their first {cfg.reduce_pcs} PCs",
         "speed on CPU (the first block is 147,456-D)"),
        ("silhouettes of Fig. 2/3", "on the UMAP scatter (not stated exactly)",
         "on the 2-D embedding and on the first 10 PCs", "the paper's wording is ambiguous"),
        ("layers of Fig. 4", "4 layers per network",
         "the same 4 roles plus intermediate layers (dropout_1, dropout_2, dense_1 for the Sharma CNN)",
         "a finer curve at no extra cost"),
        ("Grad-CAM target", "not stated", "the network's predicted class", "what the network itself attends to"),
        ("confidence intervals", "none", f"95 % percentile CIs from {cfg.bootstrap_resamples} resamples of subjects",
         "how much the score depends on which people were photographed"),
    ]
    if cfg.probe_subjects is not None:
        rows.append(("probing subjects", "all", f"first {cfg.probe_subjects} subjects of each set",
                     f"{cfg.profile} profile"))
    return pd.DataFrame(rows, columns=["aspect", "paper", "this run", "why"]).set_index("aspect")


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------

_PALETTE = [f"C{i}" for i in range(10)] + ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
                                             "#e6550d", "#31a354", "#756bb1", "#636363"]


def _scatter_by_label(ax: Any, xy: np.ndarray, labels: np.ndarray, names: Sequence[str] | None, legend: bool) -> None:
    values = np.unique(labels)
    for i, value in enumerate(values):
        rows = labels == value
        name = names[int(value)] if names is not None and 0 <= int(value) < len(names) else str(value)
        colour = "lightgrey" if value < 0 else _PALETTE[i % len(_PALETTE)]
        ax.scatter(xy[rows, 0], xy[rows, 1], s=6, alpha=0.7, color=colour, label=name if value >= 0 else "unknown")
    if legend and len(values) <= 12:
        ax.legend(fontsize=7, markerscale=2, loc="best", frameon=False)


def embedding_grid_figure(embeddings: Mapping[str, np.ndarray], colourings: Mapping[str, tuple[np.ndarray, Sequence[str] | None]],
                          title: str, axis_names: tuple[str, str] = ("UMAP1", "UMAP2"),
                          subtitles: Mapping[str, str] | None = None) -> Figure:
    """Rows = colourings (e.g. by identity, by expression), columns = embeddings; each panel is a
    scatter of one 2-D embedding coloured by one label (legend when there are at most 12 labels)."""
    if not embeddings or not colourings:
        raise ValueError("embedding_grid_figure needs at least one embedding and one colouring")
    cols, rows = list(embeddings), list(colourings)
    fig = Figure(figsize=(3.6 * len(cols), 3.3 * len(rows) + 0.5), layout="constrained")
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for i, colouring in enumerate(rows):
        labels, names = colourings[colouring]
        for j, name in enumerate(cols):
            xy = np.asarray(embeddings[name])
            ax = axes[i, j]
            _scatter_by_label(ax, xy, np.asarray(labels), names, legend=j == len(cols) - 1)
            ax.set_title(f"{name}\n{(subtitles or {}).get(name, '')}".strip() + f" - by {colouring}", fontsize=9)
            axis = axis_names if "PCA" not in name else ("PC1", "PC2")
            ax.set_xlabel(f"{axis[0]} (a.u.)", fontsize=8)
            ax.set_ylabel(f"{axis[1]} (a.u.)", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=11)
    return fig


def face_strip_figure(probe: ProbeSet, strips: Mapping[str, np.ndarray], title: str) -> Figure:
    """Rows of generated faces (e.g. sampled along UMAP1/UMAP2 or PC1/PC2), low to high; each face
    captioned with its planted expression. Research datasets' faces are refused."""
    _require_generated(probe)
    n = max(len(v) for v in strips.values())
    fig = Figure(figsize=(0.75 * n + 1.2, 1.05 * len(strips) + 0.6), layout="constrained")
    axes = fig.subplots(len(strips), n, squeeze=False)
    for i, (name, idx) in enumerate(strips.items()):
        for j in range(n):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(idx):
                ax.imshow(probe.faces.images[int(idx[j]), 0].numpy(), cmap="gray", vmin=0, vmax=255)
                label = int(probe.faces.labels[int(idx[j])])
                ax.set_title(FERPLUS_CLASSES[label][:4] if label >= 0 else "?", fontsize=6)
            if j == 0:
                ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=10)
    return fig


def silhouette_roles_figure(table: pd.DataFrame, title: str, titles: Mapping[str, str] | None = None) -> Figure:
    """Fig. 4: silhouette per role layer (early, identity layer, penultimate, final) w.r.t.
    expression (left) and identity (right), one line per network, 95 % CI error bars; one row of
    panels per dataset (``table`` from :func:`study3_table`; ``titles`` names the datasets)."""
    data_names = list(dict.fromkeys(table["dataset"]))
    fig = Figure(figsize=(10, 3.2 * len(data_names) + 0.5), layout="constrained")
    axes = fig.subplots(len(data_names), 2, squeeze=False)
    x = np.arange(len(ROLES))
    for i, dataset in enumerate(data_names):
        sub = table[table["dataset"] == dataset]
        for j, target in enumerate(("expression", "identity")):
            ax = axes[i, j]
            for k, network in enumerate(dict.fromkeys(sub["network"])):
                rows = sub[sub["network"] == network].set_index("role").loc[list(ROLES)]
                y = rows[f"{target} silhouette"].to_numpy(float)
                err = np.stack([y - rows[f"{target} silhouette low"].to_numpy(float),
                                rows[f"{target} silhouette high"].to_numpy(float) - y])
                ax.errorbar(x + 0.05 * (k - 1.5), y, yerr=np.nan_to_num(err), marker="o", capsize=3, label=network,
                            linestyle="--" if network == "NN3" else "-")
            ax.axhline(0, color="grey", linewidth=0.8)
            ax.set_xticks(x, ["early", "ID layer", "penultimate", "final"], fontsize=8)
            ax.set_ylabel(f"silhouette w.r.t. {target}", fontsize=9)
            ax.set_title(f"{(titles or {}).get(dataset, dataset)}: {target}", fontsize=10)
            ax.grid(alpha=0.3)
            if j == 1:
                ax.legend(fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=11)
    return fig


def layer_profile_figure(profiles: Mapping[str, pd.DataFrame], columns: Sequence[str], title: str) -> Figure:
    """One panel per column of :func:`layer_profile` tables (e.g. identity silhouette, V/A R^2),
    one line per network against relative depth (first probed layer 0, output 1)."""
    fig = Figure(figsize=(4.3 * len(columns), 3.5), layout="constrained")
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    for ax, column in zip(axes, columns):
        for name, table in profiles.items():
            depth = table["depth"].to_numpy(float)
            ax.plot(depth / max(depth.max(), 1), table[column].to_numpy(float), marker="o", markersize=3, label=name)
        ax.set_xlabel("relative depth (0 = first probed layer, 1 = output)", fontsize=8)
        ax.set_ylabel(column, fontsize=9)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=11)
    return fig


def penultimate_figure(studies: Sequence[PCStudy], title: str) -> Figure:
    """Fig. 5: per network, PC1 vs PC2 of the penultimate layer coloured by expression (the U-shaped
    scatter), then PC1 against valence and PC2 against arousal with the least-squares line and r."""
    fig = Figure(figsize=(12, 3.4 * len(studies) + 0.5), layout="constrained")
    axes = fig.subplots(len(studies), 3, squeeze=False)
    for i, s in enumerate(studies):
        ax = axes[i, 0]
        _scatter_by_label(ax, s.pcs, s.labels, FERPLUS_CLASSES, legend=True)
        ax.set_xlabel(f"PC1 ({100 * s.explained[0]:.1f} % var.)", fontsize=8)
        ax.set_ylabel(f"PC2 ({100 * s.explained[1]:.1f} % var.)", fontsize=8)
        ax.set_title(f"{s.network} {s.layer}", fontsize=9)
        for ax, comp, target, y in ((axes[i, 1], 0, "valence", s.valence), (axes[i, 2], 1, "arousal", s.arousal)):
            reg = s.regression.loc[(f"PC{comp + 1}", target)]
            ax.scatter(s.pcs[:, comp], y, s=6, alpha=0.5)
            xs = np.linspace(s.pcs[:, comp].min(), s.pcs[:, comp].max(), 2)
            ax.plot(xs, reg["slope"] * xs + reg["intercept"], color="C3")
            ax.set_xlabel(f"PC{comp + 1} (a.u.)", fontsize=8)
            ax.set_ylabel(f"{target} (-1 to 1)", fontsize=8)
            ax.set_title(f"{s.network}: r = {reg['r']:.2f}, p = {reg['p']:.1e}, n = {int(reg['n'])}", fontsize=9)
    fig.suptitle(title, fontsize=11)
    return fig


def prediction_map_figure(study: PCStudy, title: str) -> Figure:
    """Fig. 7: one panel per expression on the penultimate PC1/PC2 plane: green = faces of that
    expression classified correctly, red = wrongly, grey = other expressions."""
    present = [c for c in np.unique(study.labels) if c >= 0]
    cols = min(4, len(present))
    rows = int(np.ceil(len(present) / cols))
    fig = Figure(figsize=(3.2 * cols, 3.0 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, c in zip(axes, present):
        this = study.labels == c
        correct = this & (study.predicted == c)
        ax.scatter(*study.pcs[~this].T, s=4, color="lightgrey")
        ax.scatter(*study.pcs[this & ~correct].T, s=8, color="tab:red", label="wrong")
        ax.scatter(*study.pcs[correct].T, s=8, color="tab:green", label="correct")
        ax.set_title(f"{FERPLUS_CLASSES[c]} ({100 * correct.sum() / this.sum():.0f} % correct, n = {this.sum()})", fontsize=9)
        ax.set_xlabel("PC1 (a.u.)", fontsize=8)
        ax.set_ylabel("PC2 (a.u.)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(present):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=11)
    return fig


def gradcam_figure(images: np.ndarray, cams: Mapping[str, np.ndarray], captions: Sequence[str], title: str) -> Figure:
    """Fig. 2(e-f): each face, then its Grad-CAM map per layer over the face (blue 0 ... red 1)."""
    layers = list(cams)
    fig = Figure(figsize=(2.2 * (len(layers) + 1), 2.4 * len(images) + 0.5), layout="constrained")
    axes = fig.subplots(len(images), len(layers) + 1, squeeze=False)
    for i, image in enumerate(images):
        axes[i, 0].imshow(image, cmap="gray", vmin=0, vmax=255)
        axes[i, 0].set_title(captions[i], fontsize=7)
        for j, layer in enumerate(layers, start=1):
            axes[i, j].imshow(image, cmap="gray", vmin=0, vmax=255)
            shown = axes[i, j].imshow(cams[layer][i], cmap="jet", alpha=0.5, vmin=0, vmax=1)
            axes[i, j].set_title(layer, fontsize=8)
        for ax in axes[i]:
            ax.axis("off")
    fig.colorbar(shown, ax=axes[:, -1].tolist(), shrink=0.7, label="Grad-CAM (0-1)")
    fig.suptitle(title, fontsize=10)
    return fig
