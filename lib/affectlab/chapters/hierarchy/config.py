"""Chapter 02 configuration: the paper's reference numbers, the probed layers and their roles, and
:class:`ChapterConfig` with its sizes per profile (:func:`chapter_config`).

Paper: T, Atas, Goldstein, Vilenchik & Sofer, *Face processing in humans and deep neural networks
share similar computational principles* (paper 001). The reference numbers are Table 1(a) and the
silhouettes of Figs. 2-3; the four role layers are those of Fig. 4.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from affectlab.config import FieldCheck, check_profile, is_int, profile_config
from affectlab.data.taxonomy import FERPLUS_CLASSES
from affectlab.models.sharma_cnn import SHARMA_VARIANTS

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
#: Chapter 01 students count as trained networks for the paper's claims when their FERPlus test
#: accuracy (chapter 01's recorded ``<variant>.test.accuracy``) reaches this (%; issue 15, item 2).
STUDENT_MIN_ACCURACY = 72.0
#: Quick profile: wall-clock training budget (s) of NN1 and NN2 on the fast FER recipe
#: (:func:`affectlab.train.fer_recipe`); with the probing, the chapter fits 30 minutes on 2 cores.
QUICK_BUDGET_S: dict[str, float] = {"NN1": 420.0, "NN2": 600.0}
#: Quick profile: optimiser steps between two validations (the learning curve's resolution).
QUICK_STEPS_PER_EPOCH = 40
#: Intensities of the generated KDEF-like faces (quick/paper): valence/arousal are the circumplex
#: point scaled by the intensity, so they vary within each category (issue 15, item 4).
KDEF_INTENSITIES: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
#: Bumped when the stored layout of the layer-code cache (:func:`layers.layer_codes`) changes.
CODES_VERSION = 2


def import_quietly(module: str) -> None:
    """Import ``module`` (captum.attr, umap) with tqdm's "IProgress not found" notebook warning
    silenced: both import ``tqdm.auto``, and the book shows no progress widgets."""
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        importlib.import_module(module)


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
    the initial statistics, more than a short CPU run takes; the untrained controls (NN3, NN2's
    twin) get the same recalibration on the same faces, so they differ from NN1/NN2 by training
    alone. ``batchnorm_momentum`` (torch
    convention, None = Keras's 0.01) replaces the running-average momentum while training, so the
    validation scores that pick the best epoch of a short run use current statistics.
    ``recipe``: "paper" = the settings above (Adam, cosine, ``epochs`` x ``steps_per_epoch``);
    "fast" = the project's fast FER recipe (:func:`affectlab.train.fer_recipe`: AdamW lr 2e-3,
    weight decay 0.01, one-cycle schedule laid over the wall-clock budget, label smoothing 0.05,
    bf16 autocast where a probe measures it faster, channels-last, flip + crop augmentation) with
    ``budget_s`` seconds per network (``{"NN1": s, "NN2": s}``; None = ``epochs`` epochs) and
    ``lr``/``weight_decay``/``label_smoothing``/``augment`` ignored.

    Probing sets: ``probe_subjects`` keeps that many subjects of each set (None = all);
    ``faces_per_subject_expression`` keeps the last k faces of each (subject, expression) pair of
    the posed sets (CK+48: the apex frame of each sequence, its other two frames are near-copies;
    generated CK+/KDEF-like: the strongest intensity), None = all; ``sequence_frame_step`` keeps every
    k-th frame of each DISFA(-like) sequence;
    ``generated_kdef_identities`` (None = the embedded KDEF-like default, 35 identities x 7
    expressions; with ``kdef_intensities``, 35 identities x 7 expressions x the intensities) and ``generated_disfa`` ``(identities, seconds, fps)`` (None = the embedded
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
    recipe: str = "paper"
    budget_s: dict[str, float] | None = None
    kdef_intensities: tuple[float, ...] | None = None
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
        check.one_of("recipe", ("paper", "fast"))
        check.require(self.budget_s is None or (set(self.budget_s) == {"NN1", "NN2"} and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in self.budget_s.values())),
            "budget_s", "None or {'NN1': seconds > 0, 'NN2': seconds > 0}")
        check.require(self.budget_s is None or self.recipe == "fast", "budget_s", "only with recipe='fast'")
        check.require(self.kdef_intensities is None or (len(self.kdef_intensities) > 0 and all(
            0 < float(v) <= 1.5 for v in self.kdef_intensities)), "kdef_intensities",
            "None or a non-empty tuple of intensities in (0, 1.5]")

    def __hash__(self) -> int:  # budget_s is a dict: hash its items
        return hash(tuple((f.name, repr(getattr(self, f.name))) for f in dataclasses.fields(self)))


def chapter_config(profile: str, **overrides: Any) -> ChapterConfig:
    """The chapter's sizes for ``profile``; ``overrides`` replace single fields (tests).

    - smoke: a few dozen FER2013 images, two training steps per network, 6 subjects per probing
      set, small generated sets, PCA instead of UMAP for the scatter plots: proves every cell runs
      in under 2 minutes.
    - quick: this shared 2-core CPU, <= 30 minutes with FER2013 and CK+ under the data root. The
      Sharma CNN trains at about 45 faces/s in fp32 here (its 5x5, 64->64 convolution at 48x48 px
      alone costs 0.24 GMAC per face), so NN1 and NN2 get the fast FER recipe
      (``recipe="fast"``) with the wall-clock budgets :data:`QUICK_BUDGET_S`, batch 64, a
      validation on 300 PublicTest faces every :data:`QUICK_STEPS_PER_EPOCH` steps (the learning
      curve), bf16 autocast only where the trainer's probe measures it faster. Table 1 uses 1,000
      PrivateTest faces per network (mini-Xception: all of PrivateTest); CK+ keeps all 981 frames
      (118 subjects); the KDEF-like faces are 35 identities x 7 expressions x 4 intensities
      (:data:`KDEF_INTENSITIES`, 980 faces, as many as KDEF's frontal set), the DISFA-like
      sequences every 3rd frame.
    - paper: all of FER2013, 60 epochs, a 70-identity KDEF-like and a 12-identity DISFA-like set:
      for a GPU.
    """
    table: dict[str, dict[str, Any]] = {
        "smoke": dict(train_per_class=8, val_size=32, test_size=32, epochs=1, batch_size=16, steps_per_epoch=2,
                      batchnorm_recalibration=32,
                      probe_subjects=3, generated_kdef_identities=3, generated_disfa=(3, 8.0, 2.0),
                      bootstrap_resamples=100, n_axis_faces=5, gradcam_faces_per_class=2, reduce_pcs=20,
                      embedding="pca", recipe="fast", kdef_intensities=(0.5, 1.0)),
        "quick": dict(train_per_class=None, val_size=300, test_size=1000, epochs=1000,
                      steps_per_epoch=QUICK_STEPS_PER_EPOCH, batch_size=64, recipe="fast",
                      budget_s=dict(QUICK_BUDGET_S), batchnorm_recalibration=512, batchnorm_momentum=0.1,
                      probe_subjects=None, generated_kdef_identities=35, kdef_intensities=KDEF_INTENSITIES,
                      faces_per_subject_expression=None, generated_disfa=None, sequence_frame_step=3),
        "paper": dict(train_per_class=None, val_size=None, test_size=None, epochs=60, weight_decay=0.0,
                      probe_subjects=None,
                      generated_kdef_identities=70, generated_disfa=(12, 120.0, 2.0), batch_size=32,
                      kdef_intensities=KDEF_INTENSITIES,
                      gradcam_faces_per_class=35, faces_per_subject_expression=None),
    }
    return profile_config(ChapterConfig, profile, table, overrides)


#: FER2013 as released (Goodfellow et al. 2013): Training / PublicTest / PrivateTest faces.
FER2013_ORIGINAL_SIZES: dict[str, int] = {"train": 28709, "public_test": 3589, "private_test": 3589}
