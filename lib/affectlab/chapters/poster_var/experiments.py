"""Table 3 of paper 003: every ablation row (:func:`affectlab.models.poster.ablation_configs`) is
built from the shared pretrained branches, trained or loaded through :func:`affectlab.train.fit`,
its test outputs cached beside the run, then timed (:mod:`.timing`)."""

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
from affectlab.train import FitResult, TensorData, TrainConfig, fit, predict

from .config import CHAPTER, ROW_SLUGS, ChapterConfig
from .data import ChapterData, DatasetSplits, face_tensor_data
from .pretrain import ImageTrunk, LandmarkBranch
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

