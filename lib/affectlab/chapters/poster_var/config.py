"""Chapter 04 (POSTER-Var, Lv, Zhang & Tsoi; paper 003): the chapter's sizes per profile.

:class:`ChapterConfig` and :func:`chapter_config` hold every size of the chapter (smoke / quick /
paper; paper = Table 1, FER+ column, and the public code), plus the constants the other modules
share: the ablation rows' labels (Table 3), the datasets' split plans and the input pipeline
(112 px, ImageNet normalisation, as POSTER++ feeds both branches).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from affectlab import data as datasets
from affectlab.augment import AugmentConfig, BatchAugment
from affectlab.config import FieldCheck, RunConfig, check_profile, profile_config
from affectlab.data.generate.faces import DEFAULT_INTENSITIES
from affectlab.data.sets import FaceSet
from affectlab.models.ir50 import IR50_INPUT_SIZES
from affectlab.models.mobilefacenet import MOBILEFACENET_INPUT_SIZE
from affectlab.models.poster import PosterConfig
from affectlab.train import resolve_amp

CHAPTER = "04_poster_var"
IMAGE_SIZE = MOBILEFACENET_INPUT_SIZE  # both branches of POSTER++ work at 112 x 112
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the POSTER++ / POSTER-Var Normalize()
IMAGENET_STD = (0.229, 0.224, 0.225)
OUTER_EYE_CORNERS = (36, 45)  # iBUG landmarks 37 and 46 (0-based): the inter-ocular distance

ROW_LABELS: dict[str, str] = {
    "full": "Ours (POSTER-Var)",
    "w/o layer emb.": "w/o Layer Emb.",
    "w/o VI": "w/o VI Module",
    "baseline": "Baseline (POSTER++)",
}
"""Ablation rows (:data:`affectlab.models.poster.ABLATION_ROWS`) -> the paper's Table 3 labels."""

ROW_SLUGS: dict[str, str] = {"full": "full", "w/o layer emb.": "wo-layer-emb", "w/o VI": "wo-vi", "baseline": "baseline"}
"""Ablation row -> the name part of its run folder."""

RESULT_KEYS: dict[str, str] = {"full": "poster_var", "w/o layer emb.": "no_layer_embedding", "w/o VI": "no_vich",
                               "baseline": "poster_pp"}
"""Ablation row -> the first part of its keys in ``04_poster_var.results.json`` (issue 17, item 7)."""

DISPLAY_NAME = {"ferplus": "FERPlus", "rafdb": "RAF-DB", "affectnet": "AffectNet", "affectnet7": "AffectNet (7 cls)"}
DATASET_SPLITS: dict[str, tuple[str, str | None, str]] = {
    "ferplus": ("train", "valid", "test"),
    "rafdb": ("train", None, "test"),
    "affectnet": ("train", None, "valid"),  # the paper evaluates AffectNet on its validation set
    "affectnet7": ("train", None, "valid"),
}
"""Registry name -> (training split, validation split or None, evaluation split)."""

EXTRA_DATASETS: tuple[str, ...] = ("rafdb", "affectnet", "affectnet7")
REGISTRY_NAME: dict[str, str] = {"affectnet7": "affectnet"}
"""Chapter dataset -> registry dataset it is loaded from (default: the same name)."""
DROPPED_CLASSES: dict[str, tuple[str, ...]] = {"affectnet7": ("contempt",)}
"""Classes a chapter dataset drops (Table 3's AffectNet 7-class column: AffectNet without contempt)."""
LAYER_SIDES = {f"cross_attention.{i}": side for i, side in enumerate((28, 14, 7))}
"""The fused image-landmark maps of PosterModel and their side in pixels (Grad-CAM layers)."""


# ----------------------------------------------------------------------------------------------
# the chapter configuration
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ChapterConfig:
    """Every size of the chapter; :func:`chapter_config` gives the values per profile.

    Landmark pretraining: ``landmark_identities`` generated people x 8 expressions x 3
    intensities x ``landmark_repeats`` poses, rendered at ``landmark_render_side`` px (the FER2013
    resolution, so the branch sees the same upsampled 48 px faces as in FERPlus), split 70/15/15
    by identity; ``landmark_epochs`` of AdamW (``landmark_lr``, cosine) on the MSE of the 136
    coordinates (fractions of the image, standardised per coordinate).

    Expression training (Table 1, FER+ column, and the public code): ``train_size`` /
    ``valid_size`` / ``test_size`` labelled images drawn stratified from each split (None = all;
    ``valid_size=0`` = no validation, the last epoch is kept), ``epochs``, ``batch_size``, ``lr``,
    ``weight_decay``, exponential schedule ``gamma`` per epoch, ``optimizer`` "adamw" or "sam"
    (radius ``sam_rho``), ``steps_per_epoch`` cap (smoke). ``n_seeds`` seeds per row starting at
    the run's seed. ``poster_width`` / ``poster_depth`` scale the network (0.25 / 0.25 =
    :meth:`PosterConfig.reduced`; 1 / 1 = the paper's size).

    Image trunk (stand-in for the MS-Celeb-1M IR-50): ``trunk_epochs`` (0 = rows start from
    random weights) of AdamW (``trunk_lr``, linear warm-up over ``trunk_warmup_epochs``, then
    cosine) on ``trunk_train_size`` stratified FERPlus training images (None = all; the rows'
    ``train_size`` images are a subset of them), with light augmentation (flip, random crop with
    ``trunk_crop_padding`` px of reflected padding at 112 px), loaded into every row. With
    ``freeze_trunk`` the rows keep it fixed (weights and BatchNorm statistics) and train only what
    follows it; otherwise they fine-tune it with the rest, as POSTER++ does.

    CPU path (smoke / quick): ``trunk_width`` / ``trunk_depth`` / ``trunk_input_size`` size the
    IR-50 trunk on its own (:class:`PosterConfig`; 56 px gives its 28/14/7 pyramid directly);
    ``fast_recipe`` trains the trunk and the rows with :func:`affectlab.train.fer_recipe` under the
    wall-clock budgets ``trunk_budget_s`` / ``row_budget_s`` (batch ``trunk_batch_size`` for the
    trunk); ``cache_pyramids`` computes the frozen branches' maps once for every row; the rows' lr
    is chosen among ``row_lr_candidates`` on the validation images (a ``selection_budget_s`` trial
    of the baseline row on ``selection_train_size`` training images). ``amp`` is the trainer's
    mixed-precision setting (the paper dry run turns its probe off).

    Evaluation: ``n_bootstrap`` resamples of the test images; ``mc_samples`` Monte-Carlo draws of
    the VICH logits; ``calibration_bins`` of the ECE; ``timing_repeats`` single-image forward
    passes (after ``timing_warmup``) on ``timing_threads`` CPU threads, median reported, and with
    ``time_paper_size`` also the untrained paper-size rows; ``gradcam_classes`` generated faces for
    Fig. 3; ``distribution_images`` test images for Fig. 5.
    """

    profile: str
    landmark_identities: int
    landmark_repeats: int
    landmark_epochs: int
    train_size: int | None
    valid_size: int | None
    test_size: int | None
    epochs: int
    lr: float
    optimizer: str
    n_seeds: int
    poster_width: float
    poster_depth: float
    n_bootstrap: int
    mc_samples: int
    timing_repeats: int
    gradcam_classes: tuple[str, ...]
    distribution_images: int
    warmup_epochs: float = 0.0
    table_1_per_dataset: bool = False
    trunk_train_size: int | None = None
    trunk_epochs: int = 0
    trunk_lr: float = 1e-3
    trunk_warmup_epochs: float = 0.0
    trunk_crop_padding: int = 8
    freeze_trunk: bool = False
    timing_threads: int = 1
    time_paper_size: bool = True
    landmark_render_side: int = 48
    landmark_batch_size: int = 32
    landmark_lr: float = 2e-3
    batch_size: int = 48
    weight_decay: float = 1e-4
    gamma: float = 0.98
    sam_rho: float = 0.05
    steps_per_epoch: int | None = None
    hflip_p: float = 0.5
    color_jitter: float = 0.2
    erase_p: float = 0.5
    crop_padding: int = 0
    calibration_bins: int = 15
    timing_warmup: int = 3
    subset_seed: int = 0
    generated_seed: int = 4004
    extra_datasets: tuple[str, ...] = EXTRA_DATASETS
    trunk_width: float | None = None
    trunk_depth: float | None = None
    trunk_input_size: int = IMAGE_SIZE
    fast_recipe: bool = False
    trunk_budget_s: float | None = None
    row_budget_s: float | None = None
    cache_pyramids: bool = False
    row_lr_candidates: tuple[float, ...] = ()
    selection_budget_s: float | None = None
    selection_train_size: int | None = None
    trunk_batch_size: int | None = None
    amp: str = "auto"

    def __post_init__(self) -> None:
        check_profile(self.profile)
        check = FieldCheck(self, "ChapterConfig")
        check.ints("landmark_identities", "landmark_repeats", "landmark_epochs", "epochs", "n_seeds", "n_bootstrap",
                   "mc_samples", "timing_repeats", "distribution_images", "landmark_render_side",
                   "landmark_batch_size", "batch_size", "calibration_bins", "timing_threads")
        check.require(self.landmark_identities >= 3, "landmark_identities", "an int >= 3 (train / valid / test identities)")
        check.ints("timing_warmup", "subset_seed", "generated_seed", "trunk_epochs", "trunk_crop_padding", "crop_padding",
                   minimum=0)
        check.ints("train_size", "test_size", "trunk_train_size", "steps_per_epoch", optional=True)
        check.ints("valid_size", minimum=0, optional=True)  # 0 = no validation, None = all
        check.numbers("lr", "landmark_lr", "trunk_lr", "poster_width", "poster_depth", "sam_rho", "gamma")
        check.numbers("weight_decay", "warmup_epochs", "trunk_warmup_epochs", inclusive=True)
        check.bools("freeze_trunk", "table_1_per_dataset", "fast_recipe", "cache_pyramids")
        check.ints("selection_train_size", "trunk_batch_size", optional=True)
        check.require(self.trunk_input_size in IR50_INPUT_SIZES, "trunk_input_size", f"one of {IR50_INPUT_SIZES}")
        for field in ("trunk_width", "trunk_depth", "trunk_budget_s", "row_budget_s", "selection_budget_s"):
            value = getattr(self, field)
            check.require(value is None or (not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0),
                          field, "None or a number > 0")
        check.require(all(isinstance(v, float) and v > 0 for v in self.row_lr_candidates), "row_lr_candidates",
                      "a tuple of learning rates > 0 (empty = use lr)")
        check.require(not self.cache_pyramids or self.freeze_trunk, "cache_pyramids",
                      "False unless freeze_trunk (cached maps need a frozen trunk)")
        check.require(not self.row_lr_candidates or self.valid_size != 0, "row_lr_candidates",
                      "empty when valid_size=0 (the choice is made on validation images)")
        check.require(self.trunk_warmup_epochs < max(self.trunk_epochs, 1), "trunk_warmup_epochs",
                      "a number in [0, trunk_epochs)")
        check.require(self.warmup_epochs < self.epochs, "warmup_epochs", "a number in [0, epochs)")
        check.require(self.gamma <= 1, "gamma", "in (0, 1]")
        check.one_of("optimizer", ("adamw", "sam"))
        check.one_of("amp", ("auto", "off", "bf16", "fp16"))
        for field in ("hflip_p", "erase_p"):
            check.require(0 <= getattr(self, field) <= 1, field, "a probability in [0, 1]")
        check.require(0 <= self.color_jitter < 1, "color_jitter", "in [0, 1)")
        check.require(bool(self.gradcam_classes) and all(c in datasets.FERPLUS_CLASSES for c in self.gradcam_classes),
                      "gradcam_classes", f"a non-empty subset of {datasets.FERPLUS_CLASSES}")
        check.require(all(d in EXTRA_DATASETS for d in self.extra_datasets), "extra_datasets",
                      f"a subset of {EXTRA_DATASETS}")

    def row_schedule(self, dataset: str) -> tuple[int, float]:
        """(epochs, initial lr) of the ablation rows on ``dataset``: Table 1's column for that dataset
        with ``table_1_per_dataset`` (paper profile), else this profile's ``epochs`` / ``lr`` for all."""
        if self.table_1_per_dataset and dataset in TABLE_1_ROW_SCHEDULES:
            return TABLE_1_ROW_SCHEDULES[dataset]
        return self.epochs, self.lr

    def poster_config(self, num_classes: int) -> PosterConfig:
        """The full POSTER-Var at this chapter's network size (the ablation rows switch its flags)."""
        return PosterConfig.poster_var(num_classes=num_classes, width=self.poster_width, depth=self.poster_depth,
                                       trunk_width=self.trunk_width, trunk_depth=self.trunk_depth,
                                       trunk_input_size=self.trunk_input_size)

    def seeds(self, run: RunConfig) -> tuple[int, ...]:
        """The seeds of every ablation row: the run's seed and the next ``n_seeds - 1``."""
        return tuple(run.seed + k for k in range(self.n_seeds))

    def augment(self) -> BatchAugment:
        """The rows' training augmentation on images: Table 1's FER+ column (flip, colour jitter 0.2,
        random erasing) by default, optionally a small random crop (``crop_padding`` px of reflected
        padding). Unused with ``cache_pyramids`` (the rows then train on the maps of the unaugmented
        images)."""
        return BatchAugment(AugmentConfig(hflip_p=self.hflip_p, brightness=self.color_jitter, contrast=self.color_jitter,
                                          erase_p=self.erase_p, erase_scale=(0.02, 0.25), crop_padding=self.crop_padding,
                                          crop_padding_mode="reflect"))

    def augment_description(self) -> str:
        """The rows' augmentation in words (configuration and deviations tables)."""
        parts = [f"flip p={self.hflip_p}"]
        if self.crop_padding:
            parts.append(f"{self.crop_padding}-px random crop (reflected padding)")
        if self.color_jitter:
            parts.append(f"brightness/contrast {self.color_jitter}")
        if self.erase_p:
            parts.append(f"random erasing p={self.erase_p} scale 0.02-0.25")
        return ", ".join(parts)

    def trunk_augment(self) -> BatchAugment:
        """Trunk pretraining augmentation: flip and a small random crop (``trunk_crop_padding`` px of
        reflected padding at 112 px), the light FER recipe; no erasing or colour jitter, which slow
        a from-scratch network down on a few thousand images."""
        return BatchAugment(AugmentConfig(hflip_p=self.hflip_p, crop_padding=self.trunk_crop_padding,
                                          crop_padding_mode="reflect"))

    def trunk_description(self) -> str:
        """The trunk pretraining recipe, in words (config frame and deviations)."""
        if self.trunk_epochs == 0:
            return "none: rows start from random weights"
        images = "all" if self.trunk_train_size is None else f"{self.trunk_train_size} stratified"
        width, depth = self.trunk_scale
        size = f"IR-50 width {width:g}, depth {depth:g}, input {self.trunk_input_size} px"
        if self.fast_recipe:
            schedule = (f"the fast FER recipe (affectlab.train.fer_recipe: AdamW lr 2e-3, one-cycle over a "
                        f"{self.trunk_budget_s:g}-s wall-clock budget, at most {self.trunk_epochs} epoch(s)"
                        if self.trunk_budget_s else
                        f"the fast FER recipe (affectlab.train.fer_recipe, {self.trunk_epochs} epoch(s)")
            schedule += f", batch {self.trunk_batch}, flip + {self.trunk_crop_padding}-px random crop at 112 px)"
        else:
            warmup = f", {self.trunk_warmup_epochs:g}-epoch warm-up" if self.trunk_warmup_epochs else ""
            schedule = (f"{self.trunk_epochs} epoch(s) of AdamW lr {self.trunk_lr:g}{warmup}, cosine, batch "
                        f"{self.trunk_batch}, flip + {self.trunk_crop_padding}-px random crop")
        return (f"{size}, pretrained here on {images} FERPlus training images with {schedule}, then "
                + ("loaded into every row and frozen there (only the layers after it train"
                   + ("; its maps are computed once per image and cached for all rows)" if self.cache_pyramids else ")")
                   if self.freeze_trunk else "loaded into every row and fine-tuned with the rest"))

    @property
    def trunk_batch(self) -> int:
        """Batch size of the trunk's pretraining (``trunk_batch_size``, else the rows' ``batch_size``)."""
        return self.batch_size if self.trunk_batch_size is None else self.trunk_batch_size

    @property
    def trunk_scale(self) -> tuple[float, float]:
        """(width, depth) of the IR-50 trunk (the network's own when not set)."""
        return (self.poster_width if self.trunk_width is None else self.trunk_width,
                self.poster_depth if self.trunk_depth is None else self.trunk_depth)

    def row_description(self) -> str:
        """How each ablation row trains, in words (config frame and deviations)."""
        if not self.fast_recipe:
            return ""
        budget = f"a {self.row_budget_s:g}-s wall-clock budget, " if self.row_budget_s else ""
        lr = (f"lr chosen on validation among {', '.join(f'{v:g}' for v in self.row_lr_candidates)}"
              if self.row_lr_candidates else f"lr {self.lr:g}")
        return (f"the fast FER recipe (AdamW, one-cycle over {budget}at most {self.epochs} epoch(s), {lr}, "
                f"weight decay 0.01, no label smoothing), batch {self.batch_size}"
                + (", on the cached maps of the unaugmented images" if self.cache_pyramids else ""))


FER_CLASSES_FOR_GRADCAM = ("happiness", "surprise", "sadness", "anger")

#: Table 1 (max epochs, initial lr) of the other datasets. FER+ is the profile's own ``epochs`` /
#: ``lr``: Table 1 prints 3e-5, the issue and the public code use 3.5e-6 (the paper profile's lr).
TABLE_1_ROW_SCHEDULES: dict[str, tuple[int, float]] = {"rafdb": (250, 9e-6), "affectnet": (200, 2e-5),
                                                       "affectnet7": (200, 2e-5)}


def chapter_config(profile: str, **overrides: Any) -> ChapterConfig:
    """The chapter's sizes for ``profile``; ``overrides`` replace single fields (tests, experiments).

    - smoke: 72 generated faces for the landmark branch, one step of 4 images for the trunk and per
      row (drawn from 8 stratified training images: one per FERPlus class at least), 8 test images:
      proves every cell runs.
    - quick: this shared 2-core CPU, <= 30 minutes in all. FERPlus faces are 48 px, so the IR-50
      trunk stand-in (width 0.5, depth 0.25: channels 32/64/128, units 1/1/4) takes them at 56 px
      (its pyramid is then 28/14/7, a quarter of the 112-px path's multiply-adds; the level
      convolutions keep stride 1) and is pretrained on **all** FERPlus training images with the
      project's fast recipe (:func:`affectlab.train.fer_recipe`, one-cycle AdamW laid out over a
      480-s wall-clock budget, flip + crop). The trunk and the landmark branch are then frozen, so
      their six maps are computed once per image (:mod:`.pyramids`) for 6,144 stratified training
      images, 1,024 stratified validation images and the whole test split, and every row trains
      only what follows them (fusion, token embedding, ViT, SE gate, head) with the fast recipe
      under a 150-s budget each (epoch cap 20, no augmentation: the maps are those of the
      unaugmented images; no label smoothing, so the target is the vote distribution itself). The
      rows' learning rate is chosen among ``row_lr_candidates`` by the baseline row's accuracy on
      the validation images after a 30-s trial on 2,048 of the training images
      (:func:`~.selection.select_row_lr`), and each row keeps its best epoch by validation
      accuracy; the test split is scored once per row, after training. The landmark branch trains
      6 epochs on the 864 training faces of 24 generated identities x 2 poses (about 1 min).
      RAF-DB and AffectNet are left out of quick (each would add the four rows again).
      Measured (2026-12-03, AMD EPYC with AVX512-BF16, 2 threads, fresh runs folder): 26.2 minutes;
      trunk 73.1% FERPlus test; lr 2e-3 chosen (67.7% vs 60.3% validation); each row did 87 steps
      (one epoch of the 6,144 faces, ~1.8 s per step of 64) in its 150 s and reached 66.5-71.2% test,
      *below* the frozen trunk's own linear classifier: the rows are step-limited, and ~3-4 epochs
      per row (~10 min each) would not fit the 30 minutes.
    - paper: Table 1 (FER+) and the issue: the paper-size network, all images, 200 epochs, batch 48,
      AdamW + SAM (rho 0.05), lr 3.5e-6 (the issue's and the public code's FERPlus value; Table 1
      prints 3e-5), weight decay 1e-4, gamma 0.98, 3 seeds; the trunk stand-in is pretrained for 40
      epochs on every training image: for a GPU.
    """
    table: dict[str, dict[str, Any]] = {
        "smoke": dict(landmark_identities=3, landmark_repeats=1, landmark_epochs=1, train_size=8, valid_size=8,
                      test_size=8, epochs=1, lr=1e-3, optimizer="adamw", n_seeds=1, poster_width=0.25,
                      poster_depth=0.25, n_bootstrap=200, mc_samples=16, timing_repeats=1,
                      gradcam_classes=("happiness",), distribution_images=2, batch_size=4,
                      landmark_batch_size=8, steps_per_epoch=1, timing_warmup=1, trunk_train_size=8,
                      trunk_epochs=1, time_paper_size=False, freeze_trunk=True, trunk_input_size=56,
                      fast_recipe=True, cache_pyramids=True, row_lr_candidates=(1e-3, 2e-3),
                      selection_train_size=8, color_jitter=0.0, erase_p=0.0),
        "quick": dict(landmark_identities=24, landmark_repeats=2, landmark_epochs=6, train_size=6144, valid_size=1024,
                      test_size=None, epochs=20, lr=1e-3, color_jitter=0.0, erase_p=0.0, optimizer="adamw",
                      n_seeds=1, poster_width=0.25, poster_depth=0.25, n_bootstrap=1000, mc_samples=64,
                      timing_repeats=30, timing_warmup=3, gradcam_classes=FER_CLASSES_FOR_GRADCAM,
                      distribution_images=3, batch_size=64, landmark_batch_size=32, trunk_train_size=None,
                      trunk_epochs=40, trunk_lr=2e-3, freeze_trunk=True, extra_datasets=(), trunk_width=0.5,
                      trunk_depth=0.25, trunk_input_size=56, fast_recipe=True, trunk_budget_s=480.0, trunk_batch_size=128,
                      row_budget_s=150.0, cache_pyramids=True, row_lr_candidates=(5e-4, 2e-3),
                      selection_budget_s=30.0, selection_train_size=2048),
        "paper": dict(landmark_identities=200, landmark_repeats=2, landmark_epochs=30, train_size=None, valid_size=None,
                      test_size=None, epochs=200, lr=3.5e-6, optimizer="sam", n_seeds=3, poster_width=1.0,
                      poster_depth=1.0, n_bootstrap=1000, mc_samples=100, timing_repeats=1000,
                      gradcam_classes=FER_CLASSES_FOR_GRADCAM, distribution_images=3, landmark_lr=1e-3,
                      trunk_train_size=None, trunk_epochs=40, trunk_lr=1e-3, table_1_per_dataset=True),
    }
    return profile_config(ChapterConfig, profile, table, overrides)


def landmark_face_count(cfg: ChapterConfig) -> int:
    """Generated faces rendered for the landmark branch (all splits): identities x 8 x 3 x repeats."""
    return cfg.landmark_identities * len(datasets.FERPLUS_CLASSES) * len(DEFAULT_INTENSITIES) * cfg.landmark_repeats


def input_description(faces: FaceSet) -> str:
    """What the stored images are and what the models see, computed from ``faces.images``."""
    channels, height, width = faces.images.shape[1:]
    kind = "greyscale" if channels == 1 else ("RGB" if channels == 3 else f"{channels}-channel")
    return (f"{height} x {width} px {kind} -> bilinear {IMAGE_SIZE} x {IMAGE_SIZE}"
            + (", repeated to 3 channels" if channels == 1 else "") + ", ImageNet normalisation")


def amp_description(cfg: ChapterConfig, run: RunConfig) -> str:
    """The trainer's mixed-precision choice for this run (``TrainConfig.amp='auto'``)."""
    dtype = resolve_amp("auto", run.device, IMAGE_SIZE, cfg.optimizer)
    return "float32 (no autocast on this device)" if dtype is None else f"autocast {str(dtype).replace('torch.', '')}"


