"""Table 3 of paper 003: every ablation row (:func:`affectlab.models.poster.ablation_configs`) is
built from the shared pretrained branches, trained or loaded through :func:`affectlab.train.fit`,
its test outputs cached beside the run, then timed (:mod:`.timing`).

With ``cfg.cache_pyramids`` (quick profile) the frozen branches' maps are computed once
(:mod:`.pyramids`) and every row trains on them; the rows' learning rate is chosen on validation
images first (:func:`~.selection.select_row_lr`), and the test split is scored once per row, after
its training (:func:`train_row`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from affectlab import metrics
from affectlab.config import RunConfig, seed_everything
from affectlab.models.poster import ABLATION_ROWS, PosterConfig, PosterModel, VICHead, ablation_configs
from affectlab.train import FitResult, TensorData, TrainConfig, fer_recipe, fit, predict

from .config import CHAPTER, ROW_SLUGS, ChapterConfig
from .data import ChapterData, DatasetSplits, face_tensor_data
from .pretrain import ImageTrunk, LandmarkBranch
from .pyramids import CachedPyramidRow, compute_pyramids, pyramid_data
from .selection import LearningRateSelection, select_row_lr, subset_rows
from .timing import count_flops, time_paper_size_rows, time_rows

PREDICTIONS_FORMAT = "affectlab.poster_var.predictions/1"


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


def row_train_config(cfg: ChapterConfig, seed: int, soft: bool, dataset: str = "ferplus",
                     lr: float | None = None) -> TrainConfig:
    """With ``cfg.fast_recipe`` (smoke / quick): the project's fast FER recipe
    (:func:`affectlab.train.fer_recipe`) over ``cfg.row_budget_s`` seconds and at most ``cfg.epochs``
    epochs, at ``lr`` (default ``cfg.lr``), without label smoothing (the target stays the vote
    distribution), best epoch by validation accuracy. Otherwise Table 1 / public code: AdamW (+ SAM), exponential schedule per epoch (after an optional
    linear warm-up of ``cfg.warmup_epochs``, not in the paper), no gradient clipping, cross-entropy
    on soft targets (FERPlus votes) or hard labels; best epoch by validation accuracy; epochs and lr
    from :meth:`ChapterConfig.row_schedule`. TensorBoard logs are written except in the smoke
    profile (its import costs seconds)."""
    if cfg.fast_recipe:
        return fer_recipe(budget_s=cfg.row_budget_s, epochs=cfg.epochs, seed=seed, lr=cfg.lr if lr is None else lr,
                          target="soft" if soft else "hard", label_smoothing=0.0, channels_last=not cfg.cache_pyramids,
                          steps_per_epoch=cfg.steps_per_epoch, monitor="accuracy", progress=False, amp=cfg.amp)
    epochs, lr = cfg.row_schedule(dataset)
    return TrainConfig(epochs=epochs, lr=lr, weight_decay=cfg.weight_decay, schedule="exponential",
                       warmup_epochs=cfg.warmup_epochs, gamma=cfg.gamma, optimizer=cfg.optimizer, sam_rho=cfg.sam_rho, grad_clip=None,
                       target="soft" if soft else "hard", steps_per_epoch=cfg.steps_per_epoch, monitor="accuracy",
                       seed=seed, progress=False, tensorboard=cfg.profile != "smoke", amp=cfg.amp)


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


@dataclasses.dataclass
class RowPyramids:
    """The frozen branches' maps (:mod:`.pyramids`) of one dataset's training and validation images,
    as the trainer's data; the test maps are computed only for the final scoring (:func:`train_row`)."""

    train: TensorData
    valid: TensorData | None
    trunk_run: str | None
    landmark_run: str


def frozen_branches(splits: DatasetSplits, landmarks: LandmarkBranch, trunk: ImageTrunk | None, cfg: ChapterConfig,
                    seed: int = 0) -> PosterModel:
    """A row model with both pretrained branches loaded and frozen: what computes the cached maps."""
    config = cfg.poster_config(len(splits.class_names))
    return build_row_model(config, landmarks, seed, trunk, freeze_trunk=True)


def row_pyramids(splits: DatasetSplits, landmarks: LandmarkBranch, trunk: ImageTrunk | None, cfg: ChapterConfig,
                 run: RunConfig) -> RowPyramids:
    """Compute the cached maps of ``splits.train`` and ``splits.valid`` once, for every row."""
    model = frozen_branches(splits, landmarks, trunk, cfg)
    train = pyramid_data(compute_pyramids(model, splits.train, cfg, run.device), splits.train, cfg, train=True,
                         soft=splits.soft)
    valid = None if splits.valid is None else pyramid_data(compute_pyramids(model, splits.valid, cfg, run.device),
                                                           splits.valid, cfg, train=False, soft=False)
    return RowPyramids(train=train, valid=valid, trunk_run=None if trunk is None else trunk.run_hash,
                       landmark_run=landmarks.run_hash)


def train_row(splits: DatasetSplits, row: str, config: PosterConfig, seed: int, landmarks: LandmarkBranch,
              cfg: ChapterConfig, run: RunConfig, trunk: ImageTrunk | None = None,
              pyramids: RowPyramids | None = None, lr: float | None = None,
              test_pyramids: TensorData | None = None) -> RowRun:
    """Train (or load) one ablation row, then predict its test set once (cached beside the run);
    timing comes later (:func:`time_rows`), interleaved over all rows.

    With ``pyramids`` the row trains on the cached maps (:class:`~.pyramids.CachedPyramidRow`) and
    is scored on ``test_pyramids``; otherwise on images. ``lr`` overrides the profile's rate (the
    value chosen on validation)."""
    model = build_row_model(config, landmarks, seed, trunk, freeze_trunk=cfg.freeze_trunk or pyramids is not None)
    key = {"chapter": CHAPTER, "dataset": splits.name, "row": row, "poster": dataclasses.asdict(config),
           "landmark_run": landmarks.run_hash, "trunk_run": None if trunk is None else trunk.run_hash,
           "trunk_frozen": trunk is not None and cfg.freeze_trunk, "init_seed": seed, "classes": list(splits.class_names),
           "cached_pyramids": pyramids is not None, "lr": lr}
    train_config = row_train_config(cfg, seed, splits.soft, splits.name, lr=lr)
    name = f"poster_var-{splits.name}-{ROW_SLUGS.get(row, row)}-s{seed}"
    if pyramids is not None:
        if test_pyramids is None:
            raise ValueError("train_row: pyramids given without test_pyramids (the maps of the test images)")
        result = fit(CachedPyramidRow(model), pyramids.train, pyramids.valid, train_config, key=key, name=name,
                     device=run.device)
        outputs = cached_predictions(result.model.eval(), test_pyramids, result, run.device)
        model = result.model.model.eval()
    else:
        train = face_tensor_data(splits.train, cfg, train=True, soft=splits.soft)
        valid = None if splits.valid is None else face_tensor_data(splits.valid, cfg, train=False, soft=False)
        test = face_tensor_data(splits.test, cfg, train=False, soft=False)
        result = fit(model, train, valid, train_config, key=key, name=name, device=run.device)
        model = result.model.eval()
        outputs = cached_predictions(model, test, result, run.device)
    return RowRun(dataset=splits.name, row=row, seed=seed, config=config, model=model, fit=result,
                  logits=outputs["logits"], features=outputs["features"], labels=outputs["labels"])


@dataclasses.dataclass
class AblationResult:
    """Every trained row: dataset x ablation row x seed, in training order."""

    runs: list[RowRun]
    data: ChapterData
    cfg: ChapterConfig
    paper_size_ms: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    flops: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    lr_selection: LearningRateSelection | None = None

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
                 rows: Sequence[str] = ABLATION_ROWS, trunk: ImageTrunk | None = None,
                 lr: float | None = None, pyramids: RowPyramids | None = None) -> list[RowRun]:
    """Every requested row of Table 3 on one dataset, for each of the configured seeds. With
    ``cfg.cache_pyramids`` the frozen branches' maps are computed once (``pyramids``, or here) and
    the test maps only after the choices are made."""
    configs = ablation_configs(cfg.poster_config(len(splits.class_names)))
    unknown = [r for r in rows if r not in configs]
    if unknown:
        raise ValueError(f"unknown ablation row(s) {unknown}; known {list(configs)}")
    test_pyramids = None
    if cfg.cache_pyramids:
        pyramids = pyramids or row_pyramids(splits, landmarks, trunk, cfg, run)
        test_pyramids = pyramid_data(compute_pyramids(frozen_branches(splits, landmarks, trunk, cfg), splits.test, cfg,
                                                      run.device), splits.test, cfg, train=False, soft=False)
    return [train_row(splits, row, configs[row], seed, landmarks, cfg, run, trunk, pyramids=pyramids, lr=lr,
                      test_pyramids=test_pyramids)
            for seed in cfg.seeds(run) for row in rows]


def choose_row_lr(splits: DatasetSplits, landmarks: LandmarkBranch, trunk: ImageTrunk | None, cfg: ChapterConfig,
                  run: RunConfig, pyramids: RowPyramids) -> LearningRateSelection | None:
    """The rows' learning rate chosen on ``splits.valid`` (:func:`~.selection.select_row_lr`), or None
    when the profile has no candidates or no validation split."""
    if not cfg.row_lr_candidates or pyramids.valid is None or splits.valid is None:
        return None

    def make_row(config: PosterConfig, seed: int) -> CachedPyramidRow:
        return CachedPyramidRow(build_row_model(config, landmarks, seed, trunk, freeze_trunk=True))

    return select_row_lr(splits.name, splits.train, splits.valid,
                         subset_rows(pyramids.train, cfg.selection_train_size, cfg.subset_seed), pyramids.valid,
                         make_row, cfg, run)


def run_table_3(data: ChapterData, landmarks: LandmarkBranch, cfg: ChapterConfig, run: RunConfig,
                rows: Sequence[str] = ABLATION_ROWS, trunk: ImageTrunk | None = None) -> AblationResult:
    """Choose the rows' learning rate on FERPlus validation images (``cfg.row_lr_candidates``), then
    train or load every ablation row on every dataset of the run (FERPlus first) from the shared
    pretrained ``trunk`` (None = random) and score each on its test split once; then time them and,
    with ``cfg.time_paper_size``, the untrained paper-size rows; count the FLOPs of one image at
    both sizes."""
    runs: list[RowRun] = []
    selection = None
    for splits in data.datasets.values():
        pyramids = row_pyramids(splits, landmarks, trunk, cfg, run) if cfg.cache_pyramids else None
        if selection is None and pyramids is not None and splits.name == "ferplus":
            selection = choose_row_lr(splits, landmarks, trunk, cfg, run, pyramids)
        lr = None if selection is None else selection.chosen
        runs += run_ablation(splits, landmarks, cfg, run, rows, trunk, lr=lr, pyramids=pyramids)
    time_rows(runs, cfg, run)
    num_classes = len(data["ferplus"].class_names)
    paper_ms = time_paper_size_rows(cfg, num_classes, run, rows) if cfg.time_paper_size else {}
    flops = {("this run's size", r.row): count_flops(r.model) for r in runs if r.dataset == runs[0].dataset and r.seed == runs[0].seed}
    if cfg.time_paper_size or (cfg.poster_width, cfg.poster_depth) == (1.0, 1.0):
        configs = ablation_configs(PosterConfig.poster_var(num_classes=num_classes))
        for row in rows:
            flops[("paper size", row)] = count_flops(PosterModel(configs[row]))
    return AblationResult(runs=runs, data=data, cfg=cfg, paper_size_ms=paper_ms, flops=flops, lr_selection=selection)

