"""Chapter 04, POSTER-Var (Lv, Zhang & Tsoi; paper 003): the experiment behind the notebook.

The notebook ``notebooks/04_poster_var.py`` calls this module and only shows what it returns; the
model (:mod:`affectlab.models.poster`), trainer (:mod:`affectlab.train`), metrics and plots are the
library's. Reading order:

1. :class:`ChapterConfig` and :func:`chapter_config`: sizes per profile (smoke / quick / paper).
2. Landmark branch (section "Baseline"): POSTER++ freezes a pretrained MobileFaceNet landmark
   detector. No weights can be downloaded here, so :func:`pretrain_landmark_branch` trains it on
   generated faces whose 68 iBUG landmarks are known exactly (:func:`landmark_targets`), reports
   the inter-ocular NME (:func:`normalised_mean_error`) and returns it for freezing.
3. Data: :func:`load_chapter_data` (FERPlus, plus RAF-DB / AffectNet when the data root has them;
   the embedded generated stand-in when there is no data root), :func:`stratified_subset`,
   :func:`keep_present_classes` and :func:`face_tensor_data` (48 px faces -> 112 px, 3 channels,
   ImageNet normalisation, flip / colour jitter / random erasing).
4. Table 3 (section "Ablation study"): :func:`run_table_3` trains (or loads) every ablation row of
   :func:`affectlab.models.poster.ablation_configs` per seed through :func:`affectlab.train.fit`,
   predicts the test set (cached beside the run) and times inference (:func:`time_rows`).
   :func:`table_3_frame` puts the result beside the paper's numbers, :func:`ablation_differences`
   gives paired bootstrap CIs of each row's difference to the full model.
5. Table 4 / Fig. 4: :func:`table_4_frame` (per-class recall / precision) and
   :func:`confusion_figure`. Fig. 5: :func:`expression_distribution_figure` (per-image
   N(mu, sigma^2) of every class). Fig. 3: :func:`gradcam_on_generated_faces` (captum Grad-CAM).
6. Beyond the paper: :func:`calibration_comparison` (ECE, NLL, reliability diagrams of the VICH
   mean, of Monte-Carlo sampled logits, and of the linear-head rows).
7. :func:`deviations_frame` and :func:`findings`: what differs from the paper, and what the numbers
   of this run say.

Loss: plain cross-entropy against the FERPlus vote distribution (votes over the 8 emotions,
normalised), no KL term, as the published code (``loss_name: cross_entropy``, ``votes_sum: 10``);
the paper's text and Table 1 say "CE + KL". The trainer's soft-target cross-entropy equals
:func:`affectlab.models.poster.vich_loss` with ``kl_weight=0``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from affectlab import data as datasets
from affectlab import stats
from affectlab import metrics, plots
from affectlab.augment import AugmentConfig, BatchAugment
from affectlab.config import FieldCheck, RunConfig, check_profile, profile_config, seed_everything
from affectlab.data.generate.faces import DEFAULT_INTENSITIES, generate_faces, split_by_identity
from affectlab.data.sets import FaceSet
from affectlab.models.ir50 import IR50Classifier
from affectlab.models.mobilefacenet import MOBILEFACENET_INPUT_SIZE, NUM_LANDMARKS, MobileFaceNet
from affectlab.models.poster import ABLATION_ROWS, PosterConfig, PosterModel, VICHead, ablation_configs
from affectlab.train import FitResult, TensorData, TrainConfig, fit, from_faceset, predict, resolve_amp

CHAPTER = "04_poster_var"
IMAGE_SIZE = MOBILEFACENET_INPUT_SIZE  # both branches of POSTER++ work at 112 x 112
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the POSTER++ / POSTER-Var Normalize()
IMAGENET_STD = (0.229, 0.224, 0.225)
OUTER_EYE_CORNERS = (36, 45)  # iBUG landmarks 37 and 46 (0-based): the inter-ocular distance
PREDICTIONS_FORMAT = "affectlab.poster_var.predictions/1"

ROW_LABELS: dict[str, str] = {
    "full": "Ours (POSTER-Var)",
    "w/o layer emb.": "w/o Layer Emb.",
    "w/o VI": "w/o VI Module",
    "baseline": "Baseline (POSTER++)",
}
"""Ablation rows (:data:`affectlab.models.poster.ABLATION_ROWS`) -> the paper's Table 3 labels."""

ROW_SLUGS: dict[str, str] = {"full": "full", "w/o layer emb.": "wo-layer-emb", "w/o VI": "wo-vi", "baseline": "baseline"}

PAPER_TABLE_3: dict[str, dict[str, float]] = {
    "full": {"RAF-DB": 92.76, "AffectNet (7 cls)": 67.91, "AffectNet (8 cls)": 64.27, "FER+": 91.89, "Inf. Time (ms)": 1.502},
    "w/o layer emb.": {"RAF-DB": 92.66, "AffectNet (7 cls)": 67.85, "AffectNet (8 cls)": 64.24, "FER+": 91.85, "Inf. Time (ms)": 1.502},
    "w/o VI": {"RAF-DB": 92.50, "AffectNet (7 cls)": 67.66, "AffectNet (8 cls)": 64.02, "FER+": 91.69, "Inf. Time (ms)": 1.492},
    "baseline": {"RAF-DB": 92.21, "AffectNet (7 cls)": 67.49, "AffectNet (8 cls)": 63.77, "FER+": 91.62, "Inf. Time (ms)": 1.491},
}
"""Table 3 of the paper: test accuracy (%) and inference time (ms, mean of 1000 runs, RTX 3090)."""

PAPER_TABLE_4: dict[str, dict[str, float]] = {
    "surprise": {"Training samples": 1290, "Testing samples": 329, "Recall": 91.79, "Precision": 92.35},
    "anger": {"Training samples": 705, "Testing samples": 162, "Recall": 86.42, "Precision": 90.91},
    "sadness": {"Training samples": 1982, "Testing samples": 478, "Recall": 92.68, "Precision": 89.68},
    "neutral": {"Training samples": 2524, "Testing samples": 680, "Recall": 93.53, "Precision": 90.47},
    "fear": {"Training samples": 281, "Testing samples": 74, "Recall": 70.27, "Precision": 85.25},
    "happiness": {"Training samples": 4772, "Testing samples": 1185, "Recall": 96.79, "Precision": 97.20},
    "disgust": {"Training samples": 717, "Testing samples": 160, "Recall": 78.75, "Precision": 84.56},
}
"""Table 4 of the paper: POSTER-Var on RAF-DB per class (recall / precision in %)."""

PAPER_TABLE_2: list[tuple[str, str, dict[str, float]]] = [
    ("PSR", "CVPR 2020", {"RAF-DB": 88.98, "AffectNet (7 cls)": 63.77, "AffectNet (8 cls)": 60.68, "FER+": 89.75}),
    ("EfficientFace", "AAAI 2021", {"RAF-DB": 88.36, "AffectNet (7 cls)": 63.70, "AffectNet (8 cls)": 60.23}),
    ("Meta-Face2Exp", "CVPR 2022", {"RAF-DB": 88.54, "AffectNet (7 cls)": 64.23}),
    ("POSTER", "ICCV 2023", {"RAF-DB": 92.05, "AffectNet (7 cls)": 67.31, "AffectNet (8 cls)": 63.34, "FER+": 91.62}),
    ("MFER", "T-AFFC 2024", {"RAF-DB": 92.08, "AffectNet (7 cls)": 67.06, "AffectNet (8 cls)": 63.15, "FER+": 91.09}),
    ("POSTER++", "PR 2025", {"RAF-DB": 92.21, "AffectNet (7 cls)": 67.49, "AffectNet (8 cls)": 63.77}),
    ("DCS", "AAAI 2025", {"RAF-DB": 92.57, "AffectNet (7 cls)": 67.66, "AffectNet (8 cls)": 64.40, "FER+": 91.41}),
    ("MTSD-CF", "ESWA 2025", {"RAF-DB": 92.63, "AffectNet (7 cls)": 66.26}),
    ("POSTER-Var", "2026", {"RAF-DB": 92.76, "AffectNet (7 cls)": 67.91, "AffectNet (8 cls)": 64.27, "FER+": 91.89}),
]
"""Table 2 of the paper: test accuracy (%) of published methods as the paper quotes them ("-" = not reported)."""

PAPER_COLUMN = {"ferplus": "FER+", "rafdb": "RAF-DB", "affectnet": "AffectNet (8 cls)"}


def paper_column(dataset: str, num_classes: int) -> str | None:
    """The paper's Table 3 column for ``dataset`` (AffectNet: 7 or 8 classes by ``num_classes``)."""
    if dataset == "affectnet":
        return f"AffectNet ({7 if num_classes == 7 else 8} cls)"
    return PAPER_COLUMN.get(dataset)


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
# 1. configuration
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
      row, 4 test images: proves every cell runs.
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
        "smoke": dict(landmark_identities=3, landmark_repeats=1, landmark_epochs=1, train_size=4, valid_size=0,
                      test_size=4, epochs=1, lr=1e-3, optimizer="adamw", n_seeds=1, poster_width=0.25,
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


def config_frame(cfg: ChapterConfig, run: RunConfig, data: "ChapterData | None" = None) -> pd.DataFrame:
    """What this run does, in one table: data sizes, image size, network, epochs, optimiser, seeds."""
    def size(value: int | None) -> str:
        return "all labelled" if value is None else ("none" if value == 0 else f"{value} (stratified)")

    images = ("; ".join(f"{d.display_name}: {input_description(d.train)}" for d in data.datasets.values())
              if data is not None else f"resized to {IMAGE_SIZE} x {IMAGE_SIZE}, 3 channels, ImageNet normalisation")
    trunk = cfg.trunk_description() + ("" if cfg.trunk_epochs == 0 else " (stand-in for MS-Celeb-1M weights)")
    rows = [
        ("profile", cfg.profile),
        ("data", run.data_label),
        ("device", f"{run.device} ({torch.get_num_threads()} threads)"),
        ("images", images),
        ("network", f"POSTER-Var / POSTER++ width {cfg.poster_width}, depth {cfg.poster_depth}"
                    + (" (PosterConfig.reduced())" if (cfg.poster_width, cfg.poster_depth) == (0.25, 0.25) else "")),
        ("landmark branch", f"MobileFaceNet pretrained on {landmark_face_count(cfg)} "
                            f"generated faces, {cfg.landmark_epochs} epoch(s), then frozen"),
        ("image trunk", trunk),
        ("training images per row", size(cfg.train_size)),
        ("validation images", size(cfg.valid_size)),
        ("test images", size(cfg.test_size)),
        ("extra datasets (when present)", ", ".join(DISPLAY_NAME[d] for d in cfg.extra_datasets) or "none (this profile)"),
        ("epochs per row", cfg.epochs if cfg.steps_per_epoch is None else f"{cfg.epochs} (at most {cfg.steps_per_epoch} step(s) each)"),
        ("batch size", cfg.batch_size),
        ("optimiser", f"AdamW lr {cfg.lr:g}, weight decay {cfg.weight_decay:g}"
                      + (f", {cfg.warmup_epochs:g}-epoch linear warm-up" if cfg.warmup_epochs else "")
                      + f", exponential gamma {cfg.gamma}"
                      + (f", SAM rho {cfg.sam_rho}" if cfg.optimizer == "sam" else ", no SAM")),
        ("other datasets' epochs / lr", "Table 1: " + ", ".join(f"{DISPLAY_NAME[d]} {e} epochs, lr {lr:g}"
                                                                for d, (e, lr) in TABLE_1_ROW_SCHEDULES.items())
         if cfg.table_1_per_dataset else "as FERPlus (this profile)"),
        ("precision", amp_description(cfg, run)),
        ("loss", "cross-entropy against the normalised FERPlus votes (no KL term)"),
        ("augmentation", cfg.augment_description()),
        ("seeds per row", ", ".join(str(s) for s in cfg.seeds(run))),
        ("Monte-Carlo samples (VICH)", cfg.mc_samples),
        ("bootstrap resamples", cfg.n_bootstrap),
        ("inference timing", f"median of {cfg.timing_repeats} single-image passes after {cfg.timing_warmup} warm-up, "
                             f"{cfg.timing_threads} CPU thread(s)" + (", trained rows and untrained paper-size rows"
                                                                       if cfg.time_paper_size else "")),
    ]
    return pd.DataFrame(rows, columns=["setting", "value"]).set_index("setting")


# ----------------------------------------------------------------------------------------------
# 2. the landmark branch, pretrained on generated faces
# ----------------------------------------------------------------------------------------------


def landmark_targets(faces: FaceSet) -> torch.Tensor:
    """(N, 136) regression targets x1, y1, ..., x68, y68 as fractions of the image (0..1; a chin point
    may fall just outside the crop), from ``meta["landmarks"]``.

    The generator's landmarks are pixel coordinates with pixel centres at i + 0.5, so dividing by the
    image side gives the position as a fraction of the image, which a bilinear resize (align_corners
    False) to 112 px leaves unchanged.
    """
    lm = faces.meta.get("landmarks")
    where = f"FaceSet {faces.name}/{faces.split}"
    if lm is None:
        raise ValueError(f"{where} has no meta['landmarks'] (use affectlab.data.generate.faces.generate_faces)")
    lm = np.asarray(lm, dtype=np.float32)
    if lm.shape != (len(faces), NUM_LANDMARKS, 2) or not np.isfinite(lm).all():
        raise ValueError(f"{where}: meta['landmarks'] must be finite ({len(faces)}, {NUM_LANDMARKS}, 2); got {lm.shape}")
    height, width = faces.images.shape[-2:]
    scaled = lm / np.array([width, height], dtype=np.float32)
    return torch.from_numpy(scaled.reshape(len(faces), 2 * NUM_LANDMARKS))


def normalised_mean_error(pred: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per-image NME: mean point-to-point distance / inter-ocular distance (outer eye corners 37-46).

    ``pred`` and ``true`` are (N, 68, 2) (or (N, 136)) in the same units.
    """
    p = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1, 2)
    t = np.asarray(true, dtype=np.float64).reshape(len(true), -1, 2)
    if p.shape != t.shape or p.shape[1] != NUM_LANDMARKS:
        raise ValueError(f"normalised_mean_error: pred {p.shape} and true {t.shape} must both be (N, 68, 2)")
    ocular = np.linalg.norm(t[:, OUTER_EYE_CORNERS[0]] - t[:, OUTER_EYE_CORNERS[1]], axis=1)
    if np.any(ocular <= 0):
        raise ValueError("normalised_mean_error: a true face has coincident outer eye corners")
    return np.linalg.norm(p - t, axis=2).mean(axis=1) / ocular


def generate_landmark_faces(cfg: ChapterConfig) -> dict[str, FaceSet]:
    """Generated faces for the landmark branch, split train / valid / test by identity."""
    faces = generate_faces(n_identities=cfg.landmark_identities, size=cfg.landmark_render_side,
                           repeats=cfg.landmark_repeats, seed=cfg.generated_seed, name="generated_landmark_faces")
    return split_by_identity(faces, seed=cfg.generated_seed)


def landmark_tensor_data(faces: FaceSet, batch_size: int, train: bool, centre: torch.Tensor,
                         scale: torch.Tensor) -> TensorData:
    """Faces -> 112 px, 3 channels, ImageNet normalisation; y = the 136 landmark targets standardised
    with ``centre`` and ``scale`` (the regression head ends in BatchNorm1d, whose outputs start near
    N(0, 1)). No flips: a mirrored face would need its landmark indices permuted."""
    return TensorData(faces.images, (landmark_targets(faces) - centre) / scale, batch_size=batch_size, shuffle=train,
                      resize=IMAGE_SIZE, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                      name=f"{faces.name}/{faces.split}")


@dataclasses.dataclass
class LandmarkBranch:
    """The pretrained MobileFaceNet, its run and its held-out error.

    The network regresses standardised coordinates: fraction = output * ``scale`` + ``centre``
    (per coordinate, from the training faces). ``nme`` holds per-image NMEs on the test faces for
    the model and for the mean-shape baseline (the training faces' mean landmarks for every face);
    ``predicted`` (N, 68, 2) in fractions of the image.
    """

    model: MobileFaceNet
    fit: FitResult
    faces: dict[str, FaceSet]
    centre: torch.Tensor
    scale: torch.Tensor
    predicted: np.ndarray
    nme: dict[str, np.ndarray]

    @property
    def run_hash(self) -> str:
        return self.fit.config_hash

    def predict_fractions(self, images: torch.Tensor) -> np.ndarray:
        """(N, 68, 2) landmarks as fractions of the image for normalised 112-px inputs (N, 3, 112, 112)."""
        model = self.model.eval()
        with torch.no_grad():
            out = model(images.to(next(model.parameters()).device)).cpu()
        return (out * self.scale + self.centre).numpy().reshape(-1, NUM_LANDMARKS, 2)

    def table(self, n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
        """Test NME (%) of the branch and of the mean shape, with bootstrap 95% CIs over faces, and
        each NME as a fraction of the mean shape's (1 = no better than a constant face)."""
        rows = []
        reference = float(np.mean(self.nme["mean training shape"]))
        for name, values in self.nme.items():
            point, low, high = stats.bootstrap_ci(lambda _t, v: float(np.mean(v)), np.zeros(len(values), int),
                                                    values, n_resamples=n_bootstrap, seed=seed, stratified=False)
            rows.append({"predictor": name, "test faces": len(values), "NME (%)": 100 * point,
                         "95% CI (bootstrap)": f"[{100 * low:.2f}, {100 * high:.2f}]",
                         "NME / mean-shape NME": round(float(np.mean(values)) / reference, 3)})
        return pd.DataFrame(rows).set_index("predictor")


def pretrain_landmark_branch(cfg: ChapterConfig, run: RunConfig) -> LandmarkBranch:
    """Train (or load) MobileFaceNet to regress the 68 landmarks of generated faces (MSE, AdamW, cosine).

    The branch has the chapter's network size (``cfg.poster_width`` / ``poster_depth``) so it loads
    into every ablation row, where it is frozen (POSTER++ freezes its landmark detector).
    """
    faces = generate_landmark_faces(cfg)
    train_targets = landmark_targets(faces["train"])
    centre, scale = train_targets.mean(dim=0), train_targets.std(dim=0).clamp_min(1e-3)
    train, valid, test = (landmark_tensor_data(faces[split], cfg.landmark_batch_size, split == "train", centre, scale)
                          for split in ("train", "valid", "test"))
    seed_everything(run.seed)
    model = cfg.poster_config(num_classes=len(datasets.FERPLUS_CLASSES)).make_landmark_branch()
    config = TrainConfig(epochs=cfg.landmark_epochs, lr=cfg.landmark_lr, weight_decay=1e-4, schedule="cosine",
                         task="regression", monitor="mse", grad_clip=None, steps_per_epoch=cfg.steps_per_epoch,
                         seed=run.seed, progress=False, tensorboard=cfg.profile != "smoke")
    key = {"chapter": CHAPTER, "stage": "landmark pretraining", "width": cfg.poster_width,
           "depth": cfg.poster_depth, "faces": faces["train"].source, "init_seed": run.seed}
    result = fit(model, train, valid, config, key=key, name="poster_var-landmarks", device=run.device)
    model = result.model.eval()
    standardised = predict(model, test, run.device, task="regression").outputs
    predicted = (standardised * scale + centre).numpy().reshape(-1, NUM_LANDMARKS, 2)
    true = landmark_targets(faces["test"]).numpy().reshape(-1, NUM_LANDMARKS, 2)
    mean_shape = centre.numpy().reshape(NUM_LANDMARKS, 2)
    nme = {"MobileFaceNet (pretrained here)": normalised_mean_error(predicted, true),
           "mean training shape": normalised_mean_error(np.broadcast_to(mean_shape, true.shape), true)}
    return LandmarkBranch(model=model.cpu(), fit=result, faces=faces, centre=centre, scale=scale,
                          predicted=predicted, nme=nme)


# ----------------------------------------------------------------------------------------------
# 3. data
# ----------------------------------------------------------------------------------------------


def labelled(faces: FaceSet, soft: bool) -> FaceSet:
    """Rows with a known label (FERPlus majority vote; -1 = excluded, e.g. unknown / not a face);
    with ``soft`` also a vote distribution that sums to > 0."""
    keep = faces.labels >= 0
    if soft:
        if faces.soft_labels is None:
            raise ValueError(f"FaceSet {faces.name}/{faces.split} has no soft labels (votes)")
        keep &= faces.soft_labels.sum(dim=1) > 0
    return faces.subset(torch.nonzero(keep).flatten())


def stratified_subset(faces: FaceSet, size: int | None, seed: int) -> FaceSet:
    """``size`` rows drawn without replacement keeping the class proportions (largest remainder),
    deterministic for a seed; ``None`` or a size >= the set returns every row."""
    if size is None or size >= len(faces):
        return faces
    labels = faces.labels.numpy()
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts / counts.sum() * size
    take = np.floor(quota).astype(int)
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: size - take.sum()]] += 1
    rng = np.random.default_rng(seed)
    rows = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    return faces.subset(np.sort(np.concatenate(rows)))


def keep_present_classes(train: FaceSet, *others: FaceSet | None) -> tuple[FaceSet | None, ...]:
    """Restrict every split to the classes present in ``train`` (e.g. RAF-DB has no contempt: 7 classes).

    Labels are re-indexed in the original order; rows of other classes become -1; soft labels keep
    the present classes' columns, renormalised. Returns (train, *others) with the new ``class_names``.
    """
    present = sorted(int(c) for c in torch.unique(train.labels[train.labels >= 0]))
    if not present:
        raise ValueError(f"FaceSet {train.name}/{train.split} has no labelled rows")
    if present == list(range(train.num_classes)):
        return (train, *others)
    lookup = torch.full((train.num_classes,), -1, dtype=torch.long)
    lookup[present] = torch.arange(len(present))
    names = tuple(train.class_names[c] for c in present)

    def restrict(faces: FaceSet | None) -> FaceSet | None:
        if faces is None:
            return None
        labels = torch.where(faces.labels >= 0, lookup[faces.labels.clamp_min(0)], faces.labels)
        soft = faces.soft_labels
        if soft is not None:
            soft = soft[:, present]
            total = soft.sum(dim=1, keepdim=True)
            soft = torch.where(total > 0, soft / total.clamp_min(1e-12), soft)
        return dataclasses.replace(faces, labels=labels, soft_labels=soft, class_names=names)

    return tuple(restrict(f) for f in (train, *others))


@dataclasses.dataclass
class DatasetSplits:
    """One dataset as the chapter uses it: labelled, class-restricted, subsampled splits."""

    name: str
    train: FaceSet
    valid: FaceSet | None
    test: FaceSet
    soft: bool
    train_pool: FaceSet | None = None

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names

    @property
    def generated(self) -> bool:
        return self.train.source.startswith("generated")

    @property
    def display_name(self) -> str:
        """e.g. "FERPlus", or "FERPlus (generated stand-in)" for the embedded default."""
        name = DISPLAY_NAME.get(self.name, self.name)
        return f"{name} (generated stand-in)" if self.generated else name

    def summary_rows(self) -> list[dict[str, Any]]:
        rows = []
        for role, faces in (("train", self.train), ("valid", self.valid), ("test", self.test)):
            if faces is None:
                continue
            rows.append({"dataset": self.display_name, "role": role, "split": faces.split, "images": len(faces),
                         "classes": len(self.class_names), "targets": "vote distribution" if self.soft else "hard labels",
                         "source": faces.source})
        return rows


@dataclasses.dataclass
class ChapterData:
    """Every dataset of the run, FERPlus first."""

    datasets: dict[str, DatasetSplits]

    def __getitem__(self, name: str) -> DatasetSplits:
        if name not in self.datasets:
            raise KeyError(f"dataset {name!r} is not part of this run; have {list(self.datasets)}")
        return self.datasets[name]

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([r for d in self.datasets.values() for r in d.summary_rows()])


def prepare_splits(name: str, train: FaceSet, valid: FaceSet | None, test: FaceSet, cfg: ChapterConfig) -> DatasetSplits:
    """Labelled rows, classes present in training, stratified subsets of the configured sizes."""
    soft = train.soft_labels is not None
    valid = None if cfg.valid_size == 0 else valid
    train, valid, test = (None if f is None else labelled(f, soft) for f in (train, valid, test))
    train, valid, test = keep_present_classes(train, valid, test)
    train, valid, test = (None if f is None else labelled(f, soft) for f in (train, valid, test))
    return DatasetSplits(
        name=name,
        train=stratified_subset(train, cfg.train_size, cfg.subset_seed),
        train_pool=train,
        valid=None if valid is None or len(valid) == 0 else stratified_subset(valid, cfg.valid_size, cfg.subset_seed),
        test=stratified_subset(test, cfg.test_size, cfg.subset_seed),
        soft=soft,
    )


def load_dataset_splits(name: str, cfg: ChapterConfig, run: RunConfig) -> DatasetSplits:
    """Load ``name`` from the run's data root (or its embedded default) and prepare its splits."""
    if name not in DATASET_SPLITS:
        raise ValueError(f"dataset {name!r} has no split plan; known {sorted(DATASET_SPLITS)}")
    train_split, valid_split, test_split = DATASET_SPLITS[name]
    train = datasets.load(name, run.data_root, train_split)
    valid = None if valid_split is None or cfg.valid_size == 0 else datasets.load(name, run.data_root, valid_split)
    test = datasets.load(name, run.data_root, test_split)
    return prepare_splits(name, train, valid, test, cfg)


def load_chapter_data(cfg: ChapterConfig, run: RunConfig) -> ChapterData:
    """FERPlus (the user's copy, or the generated stand-in when there is no data root), plus
    RAF-DB and AffectNet when the data root holds them."""
    loaded = {"ferplus": load_dataset_splits("ferplus", cfg, run)}
    if run.data_root is not None:
        for name in cfg.extra_datasets:
            if datasets.available(name, run.data_root):
                loaded[name] = load_dataset_splits(name, cfg, run)
    return ChapterData(loaded)


def face_tensor_data(faces: FaceSet, cfg: ChapterConfig, *, train: bool, soft: bool,
                     augment: BatchAugment | None = None) -> TensorData:
    """A FaceSet as the POSTER models take it: 112 px, 3 channels, ImageNet normalisation;
    augmented (``augment``, default the rows' :meth:`ChapterConfig.augment`) and shuffled for
    training; ``soft`` carries the vote distributions."""
    if train and augment is None:
        augment = cfg.augment()
    return from_faceset(faces, soft=soft, batch_size=cfg.batch_size, shuffle=train, resize=IMAGE_SIZE, channels=3,
                        mean=IMAGENET_MEAN, std=IMAGENET_STD, augment=augment if train else None,
                        name=f"{faces.name}/{faces.split}")


# ----------------------------------------------------------------------------------------------
# 3b. the image trunk, pretrained once and shared by every row
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ImageTrunk:
    """The pretrained IR-50 classifier (:class:`~affectlab.models.ir50.IR50Classifier`), its run, the
    images it saw and its own test accuracy (the trunk alone, pooled + linear)."""

    model: IR50Classifier
    fit: FitResult
    train_images: int
    dataset: str
    test_labels: np.ndarray
    test_predicted: np.ndarray

    @property
    def run_hash(self) -> str:
        return self.fit.config_hash

    def table(self, n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
        """Test accuracy (%) of the trunk's own pooled linear classifier, with a bootstrap 95% CI."""
        point, low, high = stats.bootstrap_ci(_accuracy_percent, self.test_labels, self.test_predicted,
                                                n_resamples=n_bootstrap, seed=seed)
        return pd.DataFrame([{"model": "IR-50 trunk + pooled linear classifier (pretraining task)",
                              "training images": self.train_images, "epochs": len(self.fit.history),
                              "test images": len(self.test_labels), "accuracy (%)": round(point, 2),
                              "95% CI (bootstrap)": _ci_text(low, high),
                              "from cache": self.fit.loaded_from_cache}]).set_index("model")


def majority_rate(splits: DatasetSplits) -> tuple[str, float]:
    """(name, test accuracy in %) of always answering the most frequent class of ``splits.train``."""
    counts = np.bincount(splits.train.labels.numpy(), minlength=len(splits.class_names))
    majority = int(counts.argmax())
    return splits.class_names[majority], 100.0 * float(np.mean(splits.test.labels.numpy() == majority))


def trunk_frame(trunk: ImageTrunk, splits: DatasetSplits, n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """:meth:`ImageTrunk.table` with the majority-class rate of the same test images beside it."""
    frame = trunk.table(n_bootstrap, seed)
    name, rate = majority_rate(splits)
    frame[f"majority class '{name}' (%)"] = round(rate, 2)
    return frame


def pretrain_image_trunk(splits: DatasetSplits, cfg: ChapterConfig, run: RunConfig) -> ImageTrunk | None:
    """Train (or load) the IR-50 trunk once on ``cfg.trunk_train_size`` stratified training images
    of ``splits`` (soft targets when available), the stand-in for POSTER++'s MS-Celeb-1M weights.
    None when ``cfg.trunk_epochs`` is 0 (rows then start from random weights)."""
    if cfg.trunk_epochs == 0:
        return None
    pool = splits.train_pool if splits.train_pool is not None else splits.train
    images = stratified_subset(pool, cfg.trunk_train_size, cfg.subset_seed)
    train = face_tensor_data(images, cfg, train=True, soft=splits.soft, augment=cfg.trunk_augment())
    test = face_tensor_data(splits.test, cfg, train=False, soft=False)
    seed_everything(run.seed)
    model = IR50Classifier(len(splits.class_names), width=cfg.poster_width, depth=cfg.poster_depth)
    config = TrainConfig(epochs=cfg.trunk_epochs, lr=cfg.trunk_lr, weight_decay=cfg.weight_decay, schedule="cosine",
                         warmup_epochs=cfg.trunk_warmup_epochs,
                         target="soft" if splits.soft else "hard", grad_clip=None, steps_per_epoch=cfg.steps_per_epoch,
                         monitor="accuracy", seed=run.seed, progress=False, tensorboard=cfg.profile != "smoke")
    key = {"chapter": CHAPTER, "stage": "image trunk pretraining", "dataset": splits.name,
           "classes": list(splits.class_names), "init_seed": run.seed}
    result = fit(model, train, None, config, key=key, name=f"poster_var-trunk-{splits.name}", device=run.device)
    preds = predict(result.model.eval(), test, run.device, task="classification")
    assert preds.labels is not None
    return ImageTrunk(model=result.model.cpu(), fit=result, train_images=len(images), dataset=splits.name,
                      test_labels=preds.labels.numpy(), test_predicted=preds.outputs.argmax(1).numpy())


# ----------------------------------------------------------------------------------------------
# 4. Table 3: the ablation rows
# ----------------------------------------------------------------------------------------------


def ablation_flags_frame(cfg: ChapterConfig, num_classes: int) -> pd.DataFrame:
    """The four rows of Table 3 as flags of one model, with their parameter counts at this size."""
    records = []
    for row, config in ablation_configs(cfg.poster_config(num_classes)).items():
        model = PosterModel(config)
        records.append({
            "model": ROW_LABELS[row], "level embedding (Eq. 3)": config.level_embedding,
            "GELU token embedding": config.nonlinear_embedding, "token LayerNorm": config.token_norm,
            "SE gate (Eq. 4)": config.se_gate, "VICH head (Eq. 5)": config.vich,
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable (landmark branch frozen)": sum(p.numel() for p in model.parameters() if p.requires_grad),
        })
    return pd.DataFrame(records).set_index("model")



class LogitsOf(nn.Module):
    """A PosterModel seen as ``images -> logits`` (captum's Grad-CAM needs a tensor output)."""

    def __init__(self, model: PosterModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)["logits"]


def build_row_model(config: PosterConfig, landmarks: LandmarkBranch, seed: int,
                    trunk: ImageTrunk | None = None, freeze_trunk: bool = False) -> PosterModel:
    """A freshly initialised row (seeded) with the pretrained landmark branch loaded and frozen and,
    when given, the pretrained IR-50 trunk loaded: frozen with ``freeze_trunk``, else fine-tuned
    with the rest."""
    seed_everything(seed)
    model = PosterModel(dataclasses.replace(config, freeze_landmarks=True))
    model.load_landmark_branch(landmarks.model)
    if trunk is not None:
        model.load_image_backbone(trunk.model.backbone)
        model.freeze_image_backbone(freeze_trunk)
    return model.freeze_landmark_branch(True)


def row_train_config(cfg: ChapterConfig, seed: int, soft: bool, dataset: str = "ferplus") -> TrainConfig:
    """Table 1 / public code: AdamW (+ SAM), exponential schedule per epoch (after an optional
    linear warm-up of ``cfg.warmup_epochs``, not in the paper), no gradient clipping, cross-entropy
    on soft targets (FERPlus votes) or hard labels; best epoch by validation accuracy; epochs and lr
    from :meth:`ChapterConfig.row_schedule`. TensorBoard logs are written except in the smoke
    profile (its import costs seconds)."""
    epochs, lr = cfg.row_schedule(dataset)
    return TrainConfig(epochs=epochs, lr=lr, weight_decay=cfg.weight_decay, schedule="exponential",
                       warmup_epochs=cfg.warmup_epochs, gamma=cfg.gamma, optimizer=cfg.optimizer, sam_rho=cfg.sam_rho, grad_clip=None,
                       target="soft" if soft else "hard", steps_per_epoch=cfg.steps_per_epoch, monitor="accuracy",
                       seed=seed, progress=False, tensorboard=cfg.profile != "smoke")


@dataclasses.dataclass
class RowRun:
    """One trained ablation row on one dataset and seed, with its test-set outputs.

    ``logits`` are the evaluation logits (mu for VICH rows); ``features`` the SE-gated CLS
    features the head sees; ``labels`` the test labels; ``inference_ms`` the median single-image
    forward time.
    """

    dataset: str
    row: str
    seed: int
    config: PosterConfig
    model: PosterModel
    fit: FitResult
    logits: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    inference_ms: float = float("nan")
    inference_samples_ms: np.ndarray | None = None

    @property
    def vich(self) -> bool:
        return self.config.vich

    @property
    def predicted(self) -> np.ndarray:
        return self.logits.argmax(1).numpy()

    @property
    def accuracy(self) -> float:
        return metrics.accuracy(self.labels.numpy(), self.predicted)

    def distribution(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, sigma) of the VICH head for every test image (Eq. 5)."""
        if not self.vich:
            raise ValueError(f"row {self.row!r} has a linear head, no distribution")
        head: VICHead = self.model.head  # type: ignore[assignment]
        with torch.no_grad():
            mu, logvar = head.distribution(self.features.to(next(head.parameters()).device))
        return mu.cpu(), torch.exp(0.5 * logvar).cpu()


def cached_predictions(model: nn.Module, data: TensorData, result: FitResult, device: torch.device) -> dict[str, torch.Tensor]:
    """Test-set logits, features and labels, computed once per (run, data) and stored beside the run."""
    fingerprint = data.describe()["fingerprint"]
    path = Path(result.run_dir) / f"predictions-{fingerprint}.pt"
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") == PREDICTIONS_FORMAT and state.get("config_hash") == result.config_hash:
            return state
    preds = predict(model, data, device, task="classification")
    if preds.features is None or preds.labels is None:
        raise ValueError(f"{data.name}: the model must return 'features' and the data labels")
    state = {"format": PREDICTIONS_FORMAT, "config_hash": result.config_hash, "logits": preds.outputs,
             "features": preds.features, "labels": preds.labels, "index": preds.index}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return state


def measure_inference_times(models: Sequence[nn.Module], device: torch.device, repeats: int, warmup: int = 3,
                            seed: int = 0) -> list[np.ndarray]:
    """Wall times (ms, one array of ``repeats`` per model) of one 112-px image through each model
    (evaluation mode, no gradients).

    The models are timed in interleaved rounds (each round times every model once, starting from a
    different model), so a change of load on a shared machine hits every model alike. The paper
    reports the mean of 1000 runs on an RTX 3090; the median resists other jobs' bursts. CUDA work
    is synchronised before each clock read.
    """
    if repeats < 1 or warmup < 0 or not models:
        raise ValueError(f"measure_inference_times: need models, repeats >= 1 and warmup >= 0; got "
                         f"{len(models)} model(s), repeats={repeats}, warmup={warmup}")
    image = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(seed)).to(device)
    modes = [m.training for m in models]
    times: list[list[float]] = [[] for _ in models]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    try:
        with torch.inference_mode():
            for model in models:
                model.eval()
                for _ in range(warmup):
                    model(image)
            for round_ in range(repeats):
                for k in range(len(models)):
                    i = (round_ + k) % len(models)
                    sync()
                    start = time.perf_counter()
                    models[i](image)
                    sync()
                    times[i].append(time.perf_counter() - start)
    finally:
        for model, mode in zip(models, modes):
            model.train(mode)
    return [1000.0 * np.asarray(t) for t in times]


def time_inference(model: nn.Module, device: torch.device, repeats: int, warmup: int = 3, seed: int = 0) -> float:
    """Median wall time (ms) of one 112-px image through ``model`` (see :func:`measure_inference_times`)."""
    return float(np.median(measure_inference_times([model], device, repeats, warmup, seed)[0]))


def train_row(splits: DatasetSplits, row: str, config: PosterConfig, seed: int, landmarks: LandmarkBranch,
              cfg: ChapterConfig, run: RunConfig, trunk: ImageTrunk | None = None) -> RowRun:
    """Train (or load) one ablation row and predict its test set (cached); timing comes later
    (:func:`time_rows`), interleaved over all rows."""
    model = build_row_model(config, landmarks, seed, trunk, freeze_trunk=cfg.freeze_trunk)
    train = face_tensor_data(splits.train, cfg, train=True, soft=splits.soft)
    valid = None if splits.valid is None else face_tensor_data(splits.valid, cfg, train=False, soft=False)
    test = face_tensor_data(splits.test, cfg, train=False, soft=False)
    key = {"chapter": CHAPTER, "dataset": splits.name, "row": row, "poster": dataclasses.asdict(config),
           "landmark_run": landmarks.run_hash, "trunk_run": None if trunk is None else trunk.run_hash,
           "trunk_frozen": trunk is not None and cfg.freeze_trunk, "init_seed": seed, "classes": list(splits.class_names)}
    result = fit(model, train, valid, row_train_config(cfg, seed, splits.soft, splits.name), key=key,
                 name=f"poster_var-{splits.name}-{ROW_SLUGS.get(row, row)}-s{seed}", device=run.device)
    model = result.model.eval()
    outputs = cached_predictions(model, test, result, run.device)
    return RowRun(dataset=splits.name, row=row, seed=seed, config=config, model=model, fit=result,
                  logits=outputs["logits"], features=outputs["features"], labels=outputs["labels"])


@contextlib.contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run the block on ``n`` CPU threads (``torch.set_num_threads``), then restore the previous count."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"cpu_threads: n must be an int >= 1; got {n!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def count_flops(model: nn.Module) -> int:
    """Floating-point operations of one 112-px image through ``model`` in evaluation mode
    (``torch.utils.flop_counter``: convolutions, matrix products and attention; a multiply-add
    counts 2). Independent of the machine's load, unlike the wall time."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    image = torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE, device=device)
    mode = model.training
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.eval()(image)
    finally:
        model.train(mode)
    return int(counter.get_total_flops())


def time_rows(runs: Sequence[RowRun], cfg: ChapterConfig, run: RunConfig) -> None:
    """Set ``inference_ms`` (median) and ``inference_samples_ms`` of every run, timed in interleaved
    rounds (:func:`measure_inference_times`) on ``cfg.timing_threads`` threads."""
    with cpu_threads(cfg.timing_threads):
        times = measure_inference_times([r.model for r in runs], run.device, cfg.timing_repeats, cfg.timing_warmup,
                                        run.seed)
    for r, samples in zip(runs, times):
        r.inference_samples_ms = samples
        r.inference_ms = float(np.median(samples))


def time_paper_size_rows(cfg: ChapterConfig, num_classes: int, run: RunConfig,
                         rows: Sequence[str] = ABLATION_ROWS) -> dict[str, np.ndarray]:
    """Single-image wall times (ms) of the paper-size rows (width 1, depth 1), untrained: a forward
    pass costs the same whatever the weights, so this times the architecture the paper's Table 3
    compares, like for like. Interleaved rounds on ``cfg.timing_threads`` threads."""
    configs = ablation_configs(PosterConfig.poster_var(num_classes=num_classes))
    seed_everything(run.seed)
    models = [PosterModel(configs[row]).to(run.device) for row in rows]
    with cpu_threads(cfg.timing_threads):
        times = measure_inference_times(models, run.device, cfg.timing_repeats, cfg.timing_warmup, run.seed)
    return dict(zip(rows, times))


@dataclasses.dataclass
class AblationResult:
    """Every trained row: dataset x ablation row x seed, in training order."""

    runs: list[RowRun]
    data: ChapterData
    cfg: ChapterConfig
    paper_size_ms: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    flops: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)

    def get(self, dataset: str = "ferplus", row: str = "full", seed: int | None = None) -> RowRun:
        """The run of ``row`` on ``dataset`` (first seed when ``seed`` is None)."""
        for r in self.runs:
            if r.dataset == dataset and r.row == row and (seed is None or r.seed == seed):
                return r
        raise KeyError(f"no run for dataset={dataset!r}, row={row!r}, seed={seed!r}")

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(r.dataset for r in self.runs))

    @property
    def rows(self) -> list[str]:
        return list(dict.fromkeys(r.row for r in self.runs))

    def seeds(self, dataset: str = "ferplus") -> list[int]:
        return sorted({r.seed for r in self.runs if r.dataset == dataset})

    def histories(self, dataset: str = "ferplus") -> pd.DataFrame:
        """Per-epoch training histories of every row and seed (one frame, ``row``/``seed`` columns)."""
        frames = [r.fit.history.assign(row=r.row, seed=r.seed) for r in self.runs if r.dataset == dataset]
        return pd.concat(frames, ignore_index=True)


def run_ablation(splits: DatasetSplits, landmarks: LandmarkBranch, cfg: ChapterConfig, run: RunConfig,
                 rows: Sequence[str] = ABLATION_ROWS, trunk: ImageTrunk | None = None) -> list[RowRun]:
    """Every requested row of Table 3 on one dataset, for each of the configured seeds."""
    configs = ablation_configs(cfg.poster_config(len(splits.class_names)))
    unknown = [r for r in rows if r not in configs]
    if unknown:
        raise ValueError(f"unknown ablation row(s) {unknown}; known {list(configs)}")
    return [train_row(splits, row, configs[row], seed, landmarks, cfg, run, trunk)
            for seed in cfg.seeds(run) for row in rows]


def run_table_3(data: ChapterData, landmarks: LandmarkBranch, cfg: ChapterConfig, run: RunConfig,
                rows: Sequence[str] = ABLATION_ROWS, trunk: ImageTrunk | None = None) -> AblationResult:
    """Train or load every ablation row on every dataset of the run (FERPlus first) from the shared
    pretrained ``trunk`` (None = random), then time them and, with ``cfg.time_paper_size``, the
    untrained paper-size rows; count the FLOPs of one image at both sizes."""
    runs = [r for splits in data.datasets.values() for r in run_ablation(splits, landmarks, cfg, run, rows, trunk)]
    time_rows(runs, cfg, run)
    num_classes = len(data["ferplus"].class_names)
    paper_ms = time_paper_size_rows(cfg, num_classes, run, rows) if cfg.time_paper_size else {}
    flops = {("this run's size", r.row): count_flops(r.model) for r in runs if r.dataset == runs[0].dataset and r.seed == runs[0].seed}
    if cfg.time_paper_size or (cfg.poster_width, cfg.poster_depth) == (1.0, 1.0):
        configs = ablation_configs(PosterConfig.poster_var(num_classes=num_classes))
        for row in rows:
            flops[("paper size", row)] = count_flops(PosterModel(configs[row]))
    return AblationResult(runs=runs, data=data, cfg=cfg, paper_size_ms=paper_ms, flops=flops)


def _accuracy_percent(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return 100.0 * metrics.accuracy(y_true, y_pred)


def _ci_text(low: float, high: float, digits: int = 2) -> str:
    return "n/a" if not (math.isfinite(low) and math.isfinite(high)) else f"[{low:.{digits}f}, {high:.{digits}f}]"


def accuracy_summary(result: AblationResult, dataset: str, row: str) -> dict[str, Any]:
    """Accuracy (%) of a row over its seeds: one seed -> bootstrap CI over test images; several ->
    t interval over seeds (and each seed's bootstrap CI is in :func:`per_seed_frame`)."""
    runs = [r for r in result.runs if r.dataset == dataset and r.row == row]
    if not runs:
        raise KeyError(f"no runs for dataset={dataset!r}, row={row!r}")
    values = [100 * r.accuracy for r in runs]
    if len(runs) == 1:
        point, low, high = stats.bootstrap_ci(_accuracy_percent, runs[0].labels.numpy(), runs[0].predicted,
                                                n_resamples=result.cfg.n_bootstrap, seed=runs[0].seed)
        kind = f"bootstrap over {len(runs[0].labels)} test images"
    else:
        summary = stats.mean_ci_over_seeds(values)
        point, low, high = summary.mean, summary.low, summary.high
        kind = f"t interval over {len(runs)} seeds"
    samples = np.concatenate([r.inference_samples_ms for r in runs if r.inference_samples_ms is not None] or [[np.nan]])
    return {"accuracy": point, "low": low, "high": high, "ci": kind, "seeds": len(runs),
            "inference_ms": float(np.median([r.inference_ms for r in runs])),
            "inference_iqr_ms": tuple(float(q) for q in np.percentile(samples, [25, 75]))}


def majority_class(result: AblationResult, dataset: str) -> tuple[int, float]:
    """(index, test accuracy in %) of always answering the most frequent training class."""
    splits = result.data[dataset]
    labels = result.get(dataset, result.rows[0]).labels.numpy()
    majority = int(np.bincount(splits.train.labels.numpy(), minlength=len(splits.class_names)).argmax())
    return majority, 100.0 * float(np.mean(labels == majority))


def table_3_frame(result: AblationResult) -> pd.DataFrame:
    """Table 3: our accuracy (%) with 95% CI per dataset, inference time and FLOPs, beside the paper's.

    Columns are a MultiIndex: ("this run: <dataset> (<n> test images)", ...), ("this run: inference
    (batch 1, <threads> thread(s))", ...), then ("paper, Table 3 ...", <column>). Two reference rows
    follow the ablation rows: always answering the most frequent training class, and chance (1/C).
    """
    table: dict[tuple[str, str], list[Any]] = {}
    rows = result.rows
    blank = [float("nan"), float("nan")]
    index = [ROW_LABELS.get(r, r) for r in rows]
    first = result.datasets[0]
    majority_name = result.data[first].class_names[majority_class(result, first)[0]]
    index += [f"most frequent training class ('{majority_name}')", "chance (1 / number of classes)"]
    for dataset in result.datasets:
        splits = result.data[dataset]
        group = f"this run: {splits.display_name} ({len(splits.test)} test images)"
        summaries = [accuracy_summary(result, dataset, row) for row in rows]
        _, majority_rate = majority_class(result, dataset)
        table[(group, "accuracy (%)")] = [round(s["accuracy"], 2) for s in summaries] + [
            round(majority_rate, 2), round(100.0 / len(splits.class_names), 2)]
        table[(group, "95% CI")] = [_ci_text(s["low"], s["high"]) for s in summaries] + ["constant", "-"]
        table[(group, "CI over")] = [s["ci"] for s in summaries] + ["-", "-"]
    device = str(next(result.runs[0].model.parameters()).device)
    timing = [accuracy_summary(result, first, row) for row in rows]
    group = f"this run: inference (batch 1, {device}, {result.cfg.timing_threads} thread(s), median of {result.cfg.timing_repeats})"
    table[(group, "trained rows: ms / image")] = [round(t["inference_ms"], 2) for t in timing] + blank
    table[(group, "trained rows: IQR (ms)")] = [_ci_text(*t["inference_iqr_ms"], digits=1) for t in timing] + ["-", "-"]
    if result.paper_size_ms:
        table[(group, "paper size, untrained: ms / image")] = [
            round(float(np.median(result.paper_size_ms[r])), 1) if r in result.paper_size_ms else float("nan")
            for r in rows] + blank
        table[(group, "paper size: IQR (ms)")] = [
            _ci_text(*np.percentile(result.paper_size_ms[r], [25, 75]), digits=1) if r in result.paper_size_ms else "-"
            for r in rows] + ["-", "-"]
    for size in dict.fromkeys(k[0] for k in result.flops):
        table[(group, f"{size}: GFLOPs / image")] = [
            round(result.flops[(size, r)] / 1e9, 4) if (size, r) in result.flops else float("nan") for r in rows] + blank
    paper_group = "paper, Table 3 (RTX 3090, full size, pretrained backbones)"
    for column in ("FER+", "RAF-DB", "AffectNet (7 cls)", "AffectNet (8 cls)", "Inf. Time (ms)"):
        table[(paper_group, column if column.endswith("(ms)") else f"{column} (%)")] = [
            PAPER_TABLE_3[r][column] for r in rows] + blank
    frame = pd.DataFrame(table, index=index)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    frame.index.name = "model"
    return frame


def per_seed_frame(result: AblationResult) -> pd.DataFrame:
    """Every run: dataset, row, seed, test accuracy (%) with its bootstrap CI, epochs, loaded or trained."""
    records = []
    for r in result.runs:
        point, low, high = stats.bootstrap_ci(_accuracy_percent, r.labels.numpy(), r.predicted,
                                                n_resamples=result.cfg.n_bootstrap, seed=r.seed)
        records.append({"dataset": result.data[r.dataset].display_name, "model": ROW_LABELS.get(r.row, r.row),
                        "seed": r.seed, "accuracy (%)": round(point, 2), "95% CI (bootstrap)": _ci_text(low, high),
                        "epochs trained": len(r.fit.history),
                        "last epoch train loss": round(float(r.fit.history["loss"].iloc[-1]), 4),
                        "trainable parameters":
                        sum(p.numel() for p in r.model.parameters() if p.requires_grad),
                        "from cache": r.fit.loaded_from_cache, "run": Path(r.fit.run_dir).name})
    return pd.DataFrame(records)


def ablation_differences(result: AblationResult, reference: str = "full") -> pd.DataFrame:
    """Accuracy of ``reference`` minus each other row (percentage points), paired on the same test
    images: a stratified bootstrap resamples images and recomputes both accuracies. Beside it, the
    paper's difference for the same dataset."""
    records = []
    for dataset in result.datasets:
        for seed in result.seeds(dataset):
            ref = result.get(dataset, reference, seed)
            for row in result.rows:
                if row == reference:
                    continue
                other = result.get(dataset, row, seed)
                if not torch.equal(ref.labels, other.labels):
                    raise ValueError(f"rows {reference!r} and {row!r} were tested on different images")
                paired = np.stack([ref.predicted, other.predicted], axis=1)

                def difference(t: np.ndarray, p: np.ndarray) -> float:
                    return 100.0 * (np.mean(p[:, 0] == t) - np.mean(p[:, 1] == t))

                point, low, high = stats.bootstrap_ci(difference, ref.labels.numpy(), paired,
                                                        n_resamples=result.cfg.n_bootstrap, seed=seed)
                column = paper_column(dataset, len(result.data[dataset].class_names))
                paper = (PAPER_TABLE_3[reference][column] - PAPER_TABLE_3[row][column]) if column else float("nan")
                records.append({"dataset": result.data[dataset].display_name, "seed": seed,
                                "comparison": f"{ROW_LABELS[reference]} - {ROW_LABELS.get(row, row)}",
                                "difference (pp)": round(point, 2), "95% CI (paired bootstrap)": _ci_text(low, high),
                                "CI excludes 0": bool(low > 0 or high < 0), "paper (pp)": round(paper, 2)})
    return pd.DataFrame(records)


# ----------------------------------------------------------------------------------------------
# 5. Table 4, Fig. 4, Fig. 5
# ----------------------------------------------------------------------------------------------


def _counts_as_integers(frame: pd.DataFrame) -> pd.DataFrame:
    """Object dtype so the sample-count rows print as integers beside the percentage rows."""
    frame = frame.astype(object)
    for row in ("Training samples", "Testing samples"):
        frame.loc[row] = [int(v) for v in frame.loc[row]]
    return frame


def table_4_frame(result: AblationResult, dataset: str = "ferplus", row: str = "full", seed: int | None = None) -> pd.DataFrame:
    """Table 4 layout: per class, training / test samples, recall, precision and false-positive rate
    (%) of ``row`` (the paper discusses FPRs: neutral 9.92 %, happy 3.21 % on RAF-DB)."""
    r = result.get(dataset, row, seed)
    splits = result.data[dataset]
    names = splits.class_names
    scores = metrics.per_class_precision_recall(r.labels.numpy(), r.predicted, labels=list(range(len(names))))
    train_counts = torch.bincount(splits.train.labels, minlength=len(names)).numpy()
    y, pred = r.labels.numpy(), r.predicted

    def false_positive_rate(c: int) -> float:
        negatives = y != c
        return 100 * float(np.mean(pred[negatives] == c)) if negatives.any() else float("nan")

    frame = _counts_as_integers(pd.DataFrame(
        {name: {"Training samples": int(train_counts[i]), "Testing samples": int(scores["support"][i]),
                "Recall (%)": round(100 * scores["recall"][i], 2), "Precision (%)": round(100 * scores["precision"][i], 2),
                "False-positive rate (%)": round(false_positive_rate(i), 2)}
         for i, name in enumerate(names)}
    ))
    frame.columns.name = f"{ROW_LABELS.get(row, row)}, {splits.display_name}, seed {r.seed}"
    return frame


def paper_table_2_frame() -> pd.DataFrame:
    """The paper's Table 2 (comparison with published methods), as the paper prints it; none of these
    numbers was measured here (missing = not reported)."""
    frame = pd.DataFrame([{"method": name, "venue": venue, **scores} for name, venue, scores in PAPER_TABLE_2])
    frame = frame.set_index("method")[["venue", "RAF-DB", "AffectNet (7 cls)", "AffectNet (8 cls)", "FER+"]]
    frame.columns.name = "paper, Table 2: accuracy (%) as reported (not run here)"
    return frame


def paper_table_4_frame() -> pd.DataFrame:
    """The paper's Table 4 (POSTER-Var on RAF-DB), in the same layout as :func:`table_4_frame`."""
    frame = pd.DataFrame(PAPER_TABLE_4)
    frame.index = ["Training samples", "Testing samples", "Recall (%)", "Precision (%)"]
    frame = _counts_as_integers(frame)
    frame.columns.name = "paper, Table 4: POSTER-Var on RAF-DB"
    return frame


def confusion_figure(result: AblationResult, dataset: str = "ferplus", row: str = "full", seed: int | None = None) -> Figure:
    """Fig. 4: the confusion matrix (counts) of ``row`` on the test images."""
    r = result.get(dataset, row, seed)
    splits = result.data[dataset]
    cm = metrics.confusion_matrix(r.labels.numpy(), r.predicted, labels=list(range(len(splits.class_names))))
    title = (f"{ROW_LABELS.get(row, row)} on {splits.display_name} test ({len(r.labels)} images), seed {r.seed}")
    return plots.confusion_matrix_figure(cm, splits.class_names, title=title)


def distribution_image_rows(result: AblationResult, dataset: str = "ferplus", n: int = 3, seed: int | None = None) -> list[int]:
    """Test rows for Fig. 5: first those where POSTER-Var is right and the baseline wrong (the paper's
    example), then disagreements, then any; at most ``n``."""
    full, base = result.get(dataset, "full", seed), result.get(dataset, "baseline", seed)
    y = full.labels.numpy()
    right_wrong = np.flatnonzero((full.predicted == y) & (base.predicted != y))
    disagree = np.flatnonzero(full.predicted != base.predicted)
    ordered = list(dict.fromkeys([*right_wrong.tolist(), *disagree.tolist(), *range(len(y))]))
    return ordered[:n]


def _gaussian(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def expression_distribution_figure(result: AblationResult, dataset: str = "ferplus", rows: Sequence[int] | None = None,
                                   seed: int | None = None) -> Figure:
    """Fig. 5: per test image, the VICH Gaussians N(mu_c, sigma_c^2) of every class (curves) and the
    baseline's logits (points on the axis). The class with the largest mu is POSTER-Var's answer.
    Images are named by their file index only (no face is shown)."""
    full, base = result.get(dataset, "full", seed), result.get(dataset, "baseline", seed)
    splits = result.data[dataset]
    rows = list(rows) if rows is not None else distribution_image_rows(result, dataset, result.cfg.distribution_images, seed)
    mu, sigma = full.distribution()
    names = splits.class_names
    files = splits.test.meta.get("file_names")
    fig = Figure(figsize=(9.5, 3.2 * len(rows) + 0.6), layout="constrained")
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, i in zip(axes, rows):
        m, s, b = mu[i].numpy(), sigma[i].numpy(), base.logits[i].numpy()
        low = min((m - 4 * s).min(), b.min()) - 0.5
        high = max((m + 4 * s).max(), b.max()) + 0.5
        xs = np.linspace(low, high, 400)
        for c, name in enumerate(names):
            ax.plot(xs, _gaussian(xs, float(m[c]), float(s[c])), color=f"C{c}", linewidth=1.6,
                    label=f"{name} (mu {m[c]:.2f}, sigma {s[c]:.2f})")
            ax.plot([b[c]], [0.0], "o", color=f"C{c}", markersize=6, markeredgecolor="black", clip_on=False)
        label = files[i] if isinstance(files, list) and i < len(files) else f"row {i}"
        ax.set_title(f"{splits.display_name} test {label}\ntrue {names[int(full.labels[i])]}; POSTER-Var "
                     f"{names[int(full.predicted[i])]}; baseline {names[int(base.predicted[i])]}", fontsize=10)
        ax.set_xlabel("expression intensity (logit)")
        ax.set_ylabel("density")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        ax.grid(alpha=0.3)
    fig.suptitle(f"VICH class distributions (curves) and baseline logits (points):\nPOSTER-Var vs POSTER++ "
                 f"(width {full.config.width}) trained on {splits.display_name}, seed {full.seed}", fontsize=11)
    return fig


# ----------------------------------------------------------------------------------------------
# Fig. 3: Grad-CAM on generated faces
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class GradcamResult:
    """Grad-CAM maps (captum) of several rows on generated faces, with true and predicted landmarks.

    ``images`` (N, 112, 112) in [0, 1]; ``landmarks_true`` / ``landmarks_predicted`` (N, 68, 2) in
    pixels of the 112-px image with pixel centres at integers (matplotlib's ``imshow``); ``cams`` row -> (N, 112, 112) in [0, 1]; ``predicted`` row -> class
    indices; ``layer``: the module the maps come from.
    """

    images: np.ndarray
    classes: tuple[str, ...]
    targets: np.ndarray
    class_names: tuple[str, ...]
    landmarks_true: np.ndarray
    landmarks_predicted: np.ndarray
    cams: dict[str, np.ndarray]
    predicted: dict[str, np.ndarray]
    layer: str
    dataset: str
    dataset_label: str
    seed: int

    def spread_table(self, threshold: float = 0.5) -> pd.DataFrame:
        """Per row: mean share of the image where the CAM >= ``threshold`` (the paper: POSTER-Var's
        regions are "more extensive") and how often the target class was predicted."""
        return pd.DataFrame([
            {"model": ROW_LABELS.get(row, row), f"CAM area >= {threshold} (% of image)": round(100 * float((cam >= threshold).mean()), 1),
             "target class predicted": f"{int((self.predicted[row] == self.targets).sum())} / {len(self.targets)}"}
            for row, cam in self.cams.items()
        ]).set_index("model")

    def caveat(self, least_share: float = 0.5) -> str | None:
        """A warning when some row predicts the target class for fewer than ``least_share`` of the faces
        (then its map shows where evidence for an unpredicted class would be), else None."""
        hits = {row: int((p == self.targets).sum()) for row, p in self.predicted.items()}
        n = len(self.targets)
        if min(hits.values()) >= least_share * n:
            return None
        return ("Grad-CAM caveat: the target class was predicted for " + ", ".join(
            f"{hits[row]} / {n} faces by {ROW_LABELS.get(row, row)}" for row in hits)
            + "; maps of a class the model does not predict show where evidence for it would be, so the spread "
            "table cannot test the paper's 'more extensive regions' claim in this run.")

    def figure(self) -> Figure:
        """Fig. 3 analogue: each face with its landmarks, then one CAM overlay per row."""
        n, rows = len(self.images), list(self.cams)
        fig = Figure(figsize=(2.6 * (1 + len(rows)), 2.7 * n), layout="constrained")
        axes = fig.subplots(n, 1 + len(rows), squeeze=False)
        for i in range(n):
            ax = axes[i, 0]
            ax.imshow(self.images[i], cmap="gray", vmin=0, vmax=1)
            ax.scatter(*self.landmarks_true[i].T, s=4, c="lime", label="true (face model)")
            ax.scatter(*self.landmarks_predicted[i].T, s=4, c="red", label="landmark branch")
            ax.set_xlim(-0.5, self.images.shape[2] - 0.5)
            ax.set_ylim(self.images.shape[1] - 0.5, -0.5)
            ax.set_title(f"generated: {self.classes[i]}", fontsize=9)
            if i == 0:
                ax.legend(fontsize=6, loc="lower left")
            for j, row in enumerate(rows, start=1):
                ax = axes[i, j]
                ax.imshow(self.images[i], cmap="gray", vmin=0, vmax=1)
                overlay = ax.imshow(self.cams[row][i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
                ax.set_title(f"{ROW_LABELS.get(row, row)}\npredicts {self.class_names[int(self.predicted[row][i])]}", fontsize=8)
            for ax in axes[i]:
                ax.set_xticks([])
                ax.set_yticks([])
        if rows:
            bar = fig.colorbar(overlay, ax=list(axes[:, -1]), shrink=0.6)
            bar.set_label("Grad-CAM (fraction of the image's maximum)")
        fig.suptitle(f"Grad-CAM (captum) for the true class at {self.layer} ({LAYER_SIDES.get(self.layer, '?')} px); models trained on "
                     f"{self.dataset_label}, seed {self.seed}; generated faces", fontsize=10)
        return fig


def generated_probe_faces(cfg: ChapterConfig, classes: Sequence[str]) -> tuple[FaceSet, torch.Tensor, np.ndarray]:
    """One generated face per class in ``classes`` (a new identity, full intensity, +-5 degree pose),
    as (faces, model inputs (N, 3, 112, 112) normalised as in training, greyscale (N, 112, 112) in
    [0, 1] for display)."""
    faces = generate_faces(n_identities=1, class_names=tuple(classes), intensities=(1.0,), size=cfg.landmark_render_side,
                           seed=cfg.generated_seed + 1, pose_jitter_deg=5.0, name="generated_gradcam_faces")
    data = TensorData(faces.images, batch_size=len(faces), shuffle=False, resize=IMAGE_SIZE, channels=3,
                      mean=IMAGENET_MEAN, std=IMAGENET_STD, name="generated_gradcam_faces")
    x = data.convert(faces.images, torch.device("cpu"))
    shown = torch.nn.functional.interpolate(faces.images.float() / 255.0, size=IMAGE_SIZE, mode="bilinear",
                                            align_corners=False, antialias=False)[:, 0].numpy()
    return faces, x, shown


def _gradcam(model: PosterModel, x: torch.Tensor, targets: np.ndarray, layer: str) -> np.ndarray:
    """Grad-CAM maps (N, 112, 112) of ``targets`` at ``layer`` of a PosterModel (captum, via probing)."""
    from tqdm import TqdmWarning  # captum imports tqdm.auto, which warns in a kernel without ipywidgets

    from affectlab.probing import gradcam_per_block

    device = next(model.parameters()).device
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        return gradcam_per_block(LogitsOf(model), x.to(device), targets, [f"model.{layer}"])[f"model.{layer}"]


@dataclasses.dataclass
class ClassEvidenceMaps:
    """Fig. 1 analogue: for one face, the Grad-CAM map of every class (also those not predicted) and
    the model's probability of each class (softmax of the evaluation logits, mu for VICH)."""

    image: np.ndarray
    face_class: str
    class_names: tuple[str, ...]
    probabilities: np.ndarray
    cams: np.ndarray
    row: str
    layer: str
    dataset_label: str
    seed: int

    def table(self) -> pd.DataFrame:
        """Probability (%) of each class and the share of the image where its map is >= 0.5."""
        return pd.DataFrame({"class": self.class_names, "probability (%)": np.round(100 * self.probabilities, 1),
                             "CAM area >= 0.5 (% of image)": np.round(100 * (self.cams >= 0.5).mean(axis=(1, 2)), 1)}
                            ).set_index("class")

    def figure(self) -> Figure:
        """The face, then one CAM per class (classes by decreasing probability)."""
        order = np.argsort(-self.probabilities)
        n = 1 + len(order)
        cols = min(n, 5)
        nrows = math.ceil(n / cols)
        fig = Figure(figsize=(2.3 * cols, 2.5 * nrows), layout="constrained")
        axes = fig.subplots(nrows, cols, squeeze=False).ravel()
        axes[0].imshow(self.image, cmap="gray", vmin=0, vmax=1)
        axes[0].set_title(f"generated: {self.face_class}", fontsize=9)
        overlay = None
        for ax, c in zip(axes[1:], order):
            ax.imshow(self.image, cmap="gray", vmin=0, vmax=1)
            overlay = ax.imshow(self.cams[c], cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.set_title(f"{self.class_names[c]}: p = {self.probabilities[c]:.2f}", fontsize=9,
                         fontweight="bold" if c == order[0] else "normal")
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in axes[n:]:
            ax.set_visible(False)
        if overlay is not None:
            fig.colorbar(overlay, ax=list(axes[:n]), shrink=0.6).set_label("Grad-CAM (fraction of its maximum)")
        fig.suptitle(f"Evidence for every class in one face: {ROW_LABELS.get(self.row, self.row)} trained on "
                     f"{self.dataset_label}, seed {self.seed}; Grad-CAM at {self.layer} "
                     f"({LAYER_SIDES.get(self.layer, '?')} px), generated face", fontsize=10)
        return fig


def class_evidence_maps(result: AblationResult, dataset: str = "ferplus", row: str = "full",
                        face_class: str = "happiness", layer: str = "cross_attention.1",
                        seed: int | None = None) -> ClassEvidenceMaps:
    """Fig. 1 on a generated face of ``face_class``: the Grad-CAM map of each class (the paper: "which
    regions of the image contribute positively to a specific class, even if that class is not the
    model's final prediction") and the class probabilities (the paper's line thickness)."""
    names = result.data[dataset].class_names
    if face_class not in names:
        raise ValueError(f"class_evidence_maps: face_class {face_class!r} is not a class of {dataset} {names}")
    r = result.get(dataset, row, seed)
    _, x, shown = generated_probe_faces(result.cfg, (face_class,))
    model = r.model.eval()
    with torch.no_grad():
        probabilities = softmax_probabilities(model(x.to(next(model.parameters()).device))["logits"].cpu())[0]
    everyone = x.expand(len(names), -1, -1, -1).contiguous()
    cams = _gradcam(model, everyone, np.arange(len(names)), layer)
    return ClassEvidenceMaps(image=shown[0], face_class=face_class, class_names=names, probabilities=probabilities,
                             cams=cams, row=row, layer=layer, dataset_label=result.data[dataset].display_name, seed=r.seed)


def gradcam_on_generated_faces(result: AblationResult, landmarks: LandmarkBranch, run: RunConfig,
                               dataset: str = "ferplus", rows: Sequence[str] = ("full", "baseline"),
                               layer: str = "cross_attention.1", seed: int | None = None) -> GradcamResult:
    """Fig. 3 on generated faces (one per ``cfg.gradcam_classes``, full intensity, a new identity):
    Grad-CAM of the true class at ``layer`` (default the 14-px fused image-landmark level) for each
    row, and the frozen landmark branch's 68 points beside the face model's exact ones."""
    cfg = result.cfg
    names = result.data[dataset].class_names
    classes = tuple(c for c in cfg.gradcam_classes if c in names)
    if not classes:
        raise ValueError(f"none of gradcam_classes {cfg.gradcam_classes} is a class of {dataset} {names}")
    faces, x, shown = generated_probe_faces(cfg, classes)
    targets = np.array([names.index(c) for c in classes])
    cams, predicted = {}, {}
    chosen_seed = result.get(dataset, rows[0], seed).seed
    for row in rows:
        model = result.get(dataset, row, chosen_seed).model
        cams[row] = _gradcam(model, x, targets, layer)
        with torch.no_grad():
            predicted[row] = model.eval()(x.to(next(model.parameters()).device))["logits"].argmax(1).cpu().numpy()
    lm_pred = landmarks.predict_fractions(x)
    lm_true = landmark_targets(faces).numpy().reshape(-1, NUM_LANDMARKS, 2)
    return GradcamResult(images=shown, classes=classes, targets=targets, class_names=names,
                         landmarks_true=lm_true * IMAGE_SIZE - 0.5, landmarks_predicted=lm_pred * IMAGE_SIZE - 0.5, cams=cams,
                         predicted=predicted, layer=layer, dataset=dataset,
                         dataset_label=result.data[dataset].display_name, seed=chosen_seed)


# ----------------------------------------------------------------------------------------------
# 6. beyond the paper: calibration of mu-only, Monte-Carlo and linear-head predictions
# ----------------------------------------------------------------------------------------------


def softmax_probabilities(logits: torch.Tensor) -> np.ndarray:
    """Row-wise softmax in float64 (rows sum to 1 to machine precision)."""
    return torch.softmax(logits.double(), dim=-1).numpy()


def monte_carlo_probabilities(head: VICHead, features: torch.Tensor, n_samples: int, seed: int) -> np.ndarray:
    """Predictive distribution of the VICH head: the mean over ``n_samples`` draws of
    softmax(mu + sigma * eps), eps ~ N(0, I) (Eq. 5 sampled at test time, which the paper does not do).
    Drawn under a forked, seeded RNG, so the global random state is untouched."""
    if not isinstance(head, VICHead):
        raise TypeError(f"monte_carlo_probabilities needs a VICHead; got {type(head).__name__}")
    device = next(head.parameters()).device
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        samples = head.sample_logits(features.to(device), n_samples)
        return torch.softmax(samples.double(), dim=-1).mean(dim=0).cpu().numpy()


def _error_detection_auroc(probs: np.ndarray, labels: np.ndarray) -> float:
    """AUROC of 1 - max probability for telling wrong predictions from right ones (NaN if one kind is absent)."""
    from sklearn.metrics import roc_auc_score

    wrong = probs.argmax(1) != labels
    if wrong.all() or not wrong.any():
        return float("nan")
    return float(roc_auc_score(wrong, 1.0 - probs.max(1)))


@dataclasses.dataclass
class CalibrationResult:
    """Probabilities of each (row, prediction rule) on the same test images, and their scores."""

    probabilities: dict[tuple[str, str], np.ndarray]
    labels: np.ndarray
    n_bins: int
    dataset: str
    dataset_label: str
    seed: int
    class_names: tuple[str, ...]

    def table(self) -> pd.DataFrame:
        """Accuracy, ECE, NLL, mean confidence and error-detection AUROC per prediction rule."""
        records = []
        for (row, rule), probs in self.probabilities.items():
            records.append({
                "model": ROW_LABELS.get(row, row), "prediction": rule,
                "accuracy (%)": round(100 * metrics.accuracy(self.labels, probs.argmax(1)), 2),
                f"ECE ({self.n_bins} bins)": round(metrics.expected_calibration_error(probs, self.labels, self.n_bins), 4),
                "NLL (nats)": round(metrics.negative_log_likelihood(probs, self.labels), 4),
                "mean confidence": round(float(probs.max(1).mean()), 4),
                "error-detection AUROC": round(_error_detection_auroc(probs, self.labels), 3),
            })
        return pd.DataFrame(records).set_index(["model", "prediction"])

    def main_keys(self) -> list[tuple[str, str]]:
        """The comparison that matters: the first VICH row's mu-only and Monte-Carlo rules and the
        last linear-head row (the baseline in Table 3 order)."""
        vich = [k for k in self.probabilities if k[1] != "linear head" and k[0] != PRIOR_ROW]
        linear = [k for k in self.probabilities if k[1] == "linear head"]
        return vich[:2] + linear[-1:]

    def comparison_pairs(self) -> list[tuple[tuple[str, str], tuple[str, str]]]:
        """(a, b) pairs compared by :meth:`differences`: the first VICH row's Monte-Carlo rule against its
        mu-only rule, then each of those against the baseline's linear head (:meth:`main_keys`), then
        every predictor of :meth:`main_keys` against the class-prior reference (has it learned more
        than the class frequencies?)."""
        keys = self.main_keys()
        vich = [k for k in keys if k[1] != "linear head"]
        linear = [k for k in keys if k[1] == "linear head"]
        pairs = [(vich[1], vich[0])] if len(vich) == 2 else []
        prior = [k for k in self.probabilities if k[0] == PRIOR_ROW]
        return pairs + [(v, lin) for v in vich for lin in linear] + [(k, p) for p in prior for k in keys]

    def differences(self, pairs: Sequence[tuple[tuple[str, str], tuple[str, str]]] | None = None,
                    n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
        """ECE and NLL of a minus b for each pair (default :meth:`comparison_pairs`) with paired 95%
        bootstrap intervals: each resample draws test images (stratified by class) and recomputes both
        predictors' scores on the same images. Negative = a is better calibrated / more likely."""
        pairs = list(pairs) if pairs is not None else self.comparison_pairs()
        missing = sorted({k for pair in pairs for k in pair if k not in self.probabilities})
        if missing:
            raise KeyError(f"no predictions for {missing}; have {list(self.probabilities)}")
        n_classes = len(self.class_names)
        scores = {"ECE": lambda pr, t: metrics.expected_calibration_error(pr, t, self.n_bins),
                  "NLL (nats)": metrics.negative_log_likelihood}
        records = []
        for a, b in pairs:
            paired = np.concatenate([self.probabilities[a], self.probabilities[b]], axis=1)
            record: dict[str, Any] = {"a": f"{ROW_LABELS.get(a[0], a[0])} / {a[1]}",
                                      "b": f"{ROW_LABELS.get(b[0], b[0])} / {b[1]}"}
            for name, score in scores.items():
                def difference(t: np.ndarray, p: np.ndarray, score=score) -> float:
                    return float(score(p[:, :n_classes], t) - score(p[:, n_classes:], t))

                point, low, high = stats.bootstrap_ci(difference, self.labels, paired, n_resamples=n_bootstrap,
                                                        seed=seed)
                record[f"{name} a - b"] = round(point, 4)
                record[f"{name} 95% CI (paired bootstrap)"] = _ci_text(low, high, digits=4)
                record[f"{name}: CI excludes 0"] = bool(low > 0 or high < 0)
            records.append(record)
        return pd.DataFrame(records).set_index(["a", "b"])

    def diagrams(self, keys: Sequence[tuple[str, str]] | None = None) -> list[Figure]:
        """Reliability diagrams (accuracy vs confidence per bin) of ``keys`` (default :meth:`main_keys`)."""
        keys = list(keys) if keys is not None else self.main_keys()
        missing = [k for k in keys if k not in self.probabilities]
        if missing:
            raise KeyError(f"no predictions for {missing}; have {list(self.probabilities)}")
        return [plots.reliability_diagram(self.probabilities[k], self.labels, self.n_bins,
                                          title=f"{ROW_LABELS.get(k[0], k[0])}, {k[1]}\n"
                                                f"{self.dataset_label} test, seed {self.seed}")
                for k in keys]


PRIOR_ROW = "class prior (reference)"
"""Calibration reference: every image gets the training class frequencies (a constant predictor
that is calibrated by construction, and uninformative)."""


def calibration_comparison(result: AblationResult, dataset: str = "ferplus", seed: int | None = None) -> CalibrationResult:
    """VICH claims to model uncertainty: compare, on the same test images, the deployed mu-only
    softmax and the Monte-Carlo predictive (mean softmax of ``cfg.mc_samples`` sampled logits) of
    every VICH row with the softmax of every linear-head row, and with the class-prior reference
    (:data:`PRIOR_ROW`)."""
    cfg = result.cfg
    probabilities: dict[tuple[str, str], np.ndarray] = {}
    labels = None
    chosen = result.get(dataset, result.rows[0], seed).seed
    for row in result.rows:
        r = result.get(dataset, row, chosen)
        if labels is None:
            labels = r.labels.numpy()
        elif not np.array_equal(labels, r.labels.numpy()):
            raise ValueError(f"row {row!r} was tested on other images than {result.rows[0]!r}")
        if r.vich:
            probabilities[(row, "mu only (deployed)")] = softmax_probabilities(r.logits)
            probabilities[(row, f"Monte-Carlo mean of {cfg.mc_samples} samples")] = monte_carlo_probabilities(
                r.model.head, r.features, cfg.mc_samples, r.seed)  # type: ignore[arg-type]
        else:
            probabilities[(row, "linear head")] = softmax_probabilities(r.logits)
    assert labels is not None
    splits = result.data[dataset]
    prior = np.bincount(splits.train.labels.numpy(), minlength=len(splits.class_names)).astype(np.float64)
    probabilities[(PRIOR_ROW, "training class frequencies")] = np.tile(prior / prior.sum(), (len(labels), 1))
    return CalibrationResult(probabilities=probabilities, labels=labels, n_bins=cfg.calibration_bins, dataset=dataset,
                             dataset_label=result.data[dataset].display_name, seed=chosen, class_names=result.data[dataset].class_names)


def sigma_summary(result: AblationResult, dataset: str = "ferplus", seed: int | None = None) -> pd.DataFrame:
    """Mean VICH sigma of the predicted class for right and wrong predictions (per VICH row), and the
    AUROC of that sigma for telling wrong from right predictions with a bootstrap 95% CI over test
    images (0.5 = sigma carries no information about errors)."""
    from sklearn.metrics import roc_auc_score

    records = []
    for row in result.rows:
        r = result.get(dataset, row, seed)
        if not r.vich:
            continue
        _, sigma = r.distribution()
        top = sigma[torch.arange(len(sigma)), torch.as_tensor(r.predicted)].numpy().astype(np.float64)
        wrong = (r.predicted != r.labels.numpy()).astype(int)
        if 0 < wrong.sum() < len(wrong):
            point, low, high = stats.bootstrap_ci(lambda t, p: float(roc_auc_score(t, p)), wrong, top,
                                                    n_resamples=result.cfg.n_bootstrap, seed=r.seed)
        else:
            point = low = high = float("nan")
        right = wrong == 0
        records.append({"model": ROW_LABELS.get(row, row),
                        "sigma of predicted class, right": round(float(top[right].mean()), 4) if right.any() else float("nan"),
                        "sigma of predicted class, wrong": round(float(top[~right].mean()), 4) if (~right).any() else float("nan"),
                        "AUROC sigma -> wrong": round(point, 3), "95% CI (bootstrap)": _ci_text(low, high, digits=3),
                        "mean sigma, all classes": round(float(sigma.mean()), 4)})
    return pd.DataFrame(records).set_index("model")


# ----------------------------------------------------------------------------------------------
# 7. deviations and findings
# ----------------------------------------------------------------------------------------------


def deviations_frame(cfg: ChapterConfig, run: RunConfig, data: ChapterData) -> pd.DataFrame:
    """Every difference between this run and the paper (Table 1, FER+ column, and the public code)."""
    ferplus = data["ferplus"]
    source = "generated stand-in (no data root)" if ferplus.generated else "the user's FERPlus copy"
    rows = [
        ("data", "FER+ (28,709 / 3,589 / 3,589 images), RAF-DB, AffectNet",
         f"{source}: {len(ferplus.train)} train / {len(ferplus.test)} test labelled images"
         + ("" if len(data.datasets) > 1 else "; RAF-DB and AffectNet absent from the data root")),
        ("labels", "FER+ without 'unknown' / 'not a face' samples",
         "FERPlus majority vote (images without a majority, or with an unknown / NF majority, dropped); "
         "training targets = the votes over the 8 emotions, normalised"),
        ("loss", "CE + KL (text and Table 1)", "plain CE on the vote distribution, no KL term (as the public code)"),
        ("image backbone", "IR-50 pretrained on MS-Celeb-1M (face recognition)",
         "IR-50 from scratch (no weights can be downloaded)" if cfg.trunk_epochs == 0 else
         cfg.trunk_description() + "; the rows' training images are among the trunk's; no weights can be downloaded"),
        ("image backbone in the rows", "fine-tuned with the rest of the network",
         "random weights, trained with the rest" if cfg.trunk_epochs == 0 else
         ("frozen (weights and BatchNorm statistics): only the fusion, token embedding, ViT, SE gate and head "
          "train, so the few steps of this profile go to the parts the ablation compares" if cfg.freeze_trunk
          else "fine-tuned with the rest of the network")),
        ("landmark branch", "MobileFaceNet landmark detector (pytorch_face_landmark), frozen",
         f"MobileFaceNet trained here on {landmark_face_count(cfg)} generated faces (70% of the identities; "
         "exact 68 landmarks from the face model), then frozen"),
        ("network size", "width 1 (token width 768), IR-50 units 3/4/14",
         f"width {cfg.poster_width}, depth {cfg.poster_depth}"
         + (" (PosterConfig.reduced(): token width 192, IR units 1/1/4)" if (cfg.poster_width, cfg.poster_depth) == (0.25, 0.25) else "")),
        ("input", "224 x 224 RGB, resized to 112 inside the model",
         "; ".join(f"{d.display_name}: {input_description(d.train)}" for d in data.datasets.values())),
        ("datasets", "FER+, RAF-DB, AffectNet (Table 1: RAF-DB lr 9e-6 / 250 epochs, AffectNet lr 2e-5; both add "
         "rotation and random crop)",
         ", ".join(d.display_name for d in data.datasets.values())
         + ("" if cfg.extra_datasets else " (this profile leaves RAF-DB and AffectNet out for time)")
         + ("" if len(data.datasets) == 1 else
            "; RAF-DB / AffectNet use their Table 1 epochs and lr, not their rotation / crop" if cfg.table_1_per_dataset
            else "; every dataset uses the FER+ settings of this table")),
        ("epochs / batch", "200 epochs, batch 48", f"{cfg.epochs} epoch(s)"
         + (f" of at most {cfg.steps_per_epoch} step(s)" if cfg.steps_per_epoch else "") + f", batch {cfg.batch_size}"),
        ("optimiser", "SAM over AdamW (rho 0.05), FERPlus lr 3.5e-6 (the issue and the public config; Table 1 "
         "prints 3e-5), wd 1e-4, ExponentialLR gamma 0.98",
         f"{'SAM over AdamW' if cfg.optimizer == 'sam' else 'AdamW, no SAM'} lr {cfg.lr:g}, wd {cfg.weight_decay:g}, "
         f"gamma {cfg.gamma}" + (f", rho {cfg.sam_rho}" if cfg.optimizer == "sam" else "")
         + (f", after a {cfg.warmup_epochs:g}-epoch linear warm-up (not in the paper)" if cfg.warmup_epochs else "")
         + (" (a larger lr, so that a few steps move the weights)" if cfg.lr > 3.5e-6 else "")),
        ("precision", "not stated", amp_description(cfg, run)),
        ("augmentation", "H. flip, colour jitter 0.2, random erasing (FER+ column of Table 1)",
         cfg.augment_description() + ("" if cfg.color_jitter and cfg.erase_p else
                                      " (no jitter / erasing: in a few epochs they slowed learning; measured)")),
        ("model selection", "best validation epoch", "last epoch" if cfg.valid_size == 0 else "best validation accuracy"),
        ("seeds", "one run per row (no seeds or intervals reported)", f"{cfg.n_seeds} seed(s) per row, 95% CIs"),
        ("inference time", "mean of 1000 runs, RTX 3090", f"median of {cfg.timing_repeats} runs, {run.device}, "
         f"{cfg.timing_threads} thread(s), batch 1" + (", trained rows and untrained paper-size rows" if cfg.time_paper_size
                                                      else "") + "; FLOPs counted per image"),
    ]
    return pd.DataFrame(rows, columns=["aspect", "paper", "this run"]).set_index("aspect")


def neurogaze_vich_statement() -> str:
    """Whether the NeuroGaze-Distill student (chapter 01) can take a VICH head, read from its signature."""
    import inspect

    from affectlab.models.resnet_student import FERStudent

    parameters = inspect.signature(FERStudent.__init__).parameters
    flags = [name for name in parameters if name in ("head", "head_type", "classifier", "vich")]
    if flags:
        return (f"The NeuroGaze-Distill student (FERStudent) has a head parameter ({', '.join(flags)}); "
                "a VICH variant can be trained there.")
    return ("The NeuroGaze-Distill student (affectlab.models.FERStudent) has a fixed linear classifier and no "
            f"head-type flag (its parameters: {', '.join(p for p in parameters if p != 'self')}), so the issue's "
            "optional VICH-on-the-student experiment does not apply and is not run.")


def findings(result: AblationResult, calibration: CalibrationResult, dataset: str = "ferplus",
             landmarks: LandmarkBranch | None = None, gradcam: GradcamResult | None = None,
             trunk: ImageTrunk | None = None) -> list[str]:
    """Plain statements computed from this run's numbers (no claim without its interval)."""
    out = []
    if landmarks is not None:
        (branch, branch_nme), (_, mean_nme) = list(landmarks.nme.items())[:2]
        ratio = float(branch_nme.mean() / mean_nme.mean())
        out.append(f"Landmark branch: NME {100 * branch_nme.mean():.1f}% on {len(branch_nme)} held-out generated faces, "
                   f"against {100 * mean_nme.mean():.1f}% for the mean training shape (ratio {ratio:.2f})"
                   + (": it has learned little beyond the mean face, so the frozen landmark queries carry little "
                      "face-specific information in this run." if ratio > 0.9 else
                      ("; it locates the face's landmarks, so the frozen queries carry face-specific information."
                       if ratio < 0.5 else "; it has learned part of the face shape.")))
    splits = result.data[dataset]
    _, majority = majority_class(result, dataset)
    if trunk is not None:
        point, low, high = stats.bootstrap_ci(_accuracy_percent, trunk.test_labels, trunk.test_predicted,
                                                n_resamples=result.cfg.n_bootstrap, seed=0)
        verdict = ("above" if low > majority else "below" if high < majority else "not distinguishable from")
        out.append(f"The pretrained IR-50 trunk alone (pooled linear classifier) reaches {point:.1f}% "
                   f"{_ci_text(low, high)} on the {splits.display_name} test images, {verdict} the majority-class "
                   f"rate ({majority:.1f}%); the rows " + ("keep it frozen, so they can only add what the layers after "
                   "it learn from its features." if result.cfg.freeze_trunk else "fine-tune it with the rest."))
    table = accuracy_summary(result, dataset, "full"), accuracy_summary(result, dataset, "baseline")
    out.append(f"POSTER-Var reached {table[0]['accuracy']:.1f}% [{table[0]['low']:.1f}, {table[0]['high']:.1f}] and the "
               f"POSTER++ baseline {table[1]['accuracy']:.1f}% [{table[1]['low']:.1f}, {table[1]['high']:.1f}] on "
               f"{len(splits.test)} {splits.display_name} test images; always answering the most frequent training "
               f"class would score {majority:.1f}% and chance is {100 / len(splits.class_names):.1f}%. The paper "
               "reports 91.89% and 91.62% on FER+.")
    for row in result.rows:
        s = accuracy_summary(result, dataset, row)
        verdict = ("above" if s["low"] > majority else "below" if s["high"] < majority else "not distinguishable from")
        out.append(f"{ROW_LABELS.get(row, row)}: {s['accuracy']:.1f}% [{s['low']:.1f}, {s['high']:.1f}], {verdict} the "
                   f"majority-class rate ({majority:.1f}%).")
    for row in ("full", "baseline"):
        answers = np.unique(result.get(dataset, row).predicted)
        if len(answers) == 1:
            out.append(f"{ROW_LABELS[row]} answers '{splits.class_names[int(answers[0])]}' for every test image: it has "
                       "learned no more than a constant guess, and its bootstrap interval has zero width because the "
                       "stratified resampling keeps the class counts fixed.")
    diffs = ablation_differences(result)
    diffs = diffs[diffs["dataset"] == splits.display_name]
    for _, d in diffs.iterrows():
        verdict = "excludes 0" if d["CI excludes 0"] else "includes 0: this run cannot tell the two apart"
        out.append(f"{d['comparison']}: {d['difference (pp)']:+.2f} pp, 95% CI {d['95% CI (paired bootstrap)']} "
                   f"(seed {d['seed']}), which {verdict}; the paper's difference is {d['paper (pp)']:+.2f} pp.")
    times = {row: accuracy_summary(result, dataset, row) for row in result.rows}
    if "full" in times and "baseline" in times:
        full, base = times["full"], times["baseline"]
        change = 100 * (full["inference_ms"] / base["inference_ms"] - 1)
        overlap = full["inference_iqr_ms"][0] <= base["inference_iqr_ms"][1] and base["inference_iqr_ms"][0] <= full["inference_iqr_ms"][1]
        out.append(f"Inference at this run's size: {full['inference_ms']:.1f} ms (POSTER-Var, IQR "
                   f"{_ci_text(*full['inference_iqr_ms'], digits=1)}) vs {base['inference_ms']:.1f} ms (baseline, IQR "
                   f"{_ci_text(*base['inference_iqr_ms'], digits=1)}) per image on {result.cfg.timing_threads} thread(s) "
                   f"({change:+.1f}%)" + ("; the spreads overlap, so the difference is within this machine's noise"
                                         if overlap else "") + ".")
    if "full" in result.paper_size_ms and "baseline" in result.paper_size_ms:
        f_ms, b_ms = (float(np.median(result.paper_size_ms[r])) for r in ("full", "baseline"))
        out.append(f"Paper-size network (untrained weights, same cost): {f_ms:.1f} ms (POSTER-Var) vs {b_ms:.1f} ms "
                   f"(POSTER++) per image on {result.cfg.timing_threads} CPU thread(s) ({100 * (f_ms / b_ms - 1):+.1f}%); "
                   "the paper reports 1.502 vs 1.491 ms (+0.7%) on an RTX 3090.")
    if ("paper size", "full") in result.flops and ("paper size", "baseline") in result.flops:
        f_fl, b_fl = result.flops[("paper size", "full")], result.flops[("paper size", "baseline")]
        out.append(f"FLOPs per image at paper size: {f_fl / 1e9:.3f} G (POSTER-Var) vs {b_fl / 1e9:.3f} G (POSTER++): "
                   f"the additions cost {(f_fl - b_fl) / 1e6:+.2f} MFLOPs ({100 * (f_fl / b_fl - 1):+.4f}%), almost "
                   "nothing, as the paper says. In "
                   f"multiply-adds that is {b_fl / 2e9:.1f} G for POSTER++, to compare with the 8.4 G its authors "
                   "(Mao et al.) report.")
    if gradcam is not None and gradcam.caveat() is not None:
        out.append(str(gradcam.caveat()))
    cal = calibration.table()
    ece_col = [c for c in cal.columns if c.startswith("ECE")][0]
    for (model, rule), row in cal.iterrows():
        out.append(f"Calibration, {model} / {rule}: accuracy {row['accuracy (%)']:.1f}%, ECE {row[ece_col]:.3f}, "
                   f"NLL {row['NLL (nats)']:.3f} nats.")
    for (a, b), d in calibration.differences(n_bootstrap=result.cfg.n_bootstrap, seed=calibration.seed).iterrows():
        parts = []
        for name in ("ECE", "NLL (nats)"):
            verdict = ("lower" if d[f"{name} a - b"] < 0 else "higher") if d[f"{name}: CI excludes 0"] else "not distinguishable"
            parts.append(f"{name.split()[0]} {d[f'{name} a - b']:+.4f} {d[f'{name} 95% CI (paired bootstrap)']} ({verdict})")
        out.append(f"Paired, {a} minus {b}: " + "; ".join(parts) + ".")
    prior = cal.loc[(PRIOR_ROW, "training class frequencies")]
    better = [f"{m} / {r}" for (m, r), row in cal.iterrows() if m != PRIOR_ROW and row["NLL (nats)"] < prior["NLL (nats)"]]
    out.append("Against the class prior (NLL " + f"{prior['NLL (nats)']:.3f}; point estimates, the paired intervals "
               "above say which differences exceed the test set's noise): "
               + (f"lower NLL for {', '.join(better)}." if better else
                  "no model has a lower NLL than answering the training class frequencies, so its low ECE is not "
                  "evidence of useful uncertainty."))
    out.append(neurogaze_vich_statement())
    return out
