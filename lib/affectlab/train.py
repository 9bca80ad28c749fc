"""The one training loop every chapter reuses: ``fit`` a model on in-memory tensors.

The recipe is the one NeuroGaze-Distill states in Sec. 4.4 and App. A (paper 000): AdamW with a
cosine schedule (here per step, with optional linear warm-up), weight decay, gradient clipping,
label smoothing and mild class weights, mixed precision and channels-last. POSTER-Var (paper 003,
Table 1) uses AdamW with an exponential schedule, and POSTER++ adds Sharpness-Aware Minimisation
(:class:`SAM`, Foret et al. 2021). Chapters add their own loss terms (KD, Proto-KD, D-Geo, ...)
as callables ``term(outputs, batch, epoch) -> scalar tensor`` instead of writing a new loop.

Reading order: :class:`TrainConfig` (every knob, checked), :class:`TensorData` (batches of dicts
from tensors in memory), :class:`SAM`, :class:`Trainer` (one step, one epoch, evaluation),
:func:`fit` (train-or-load, checkpoints, resume, logs) and :func:`predict`; at the end the fast
FER recipe of issue 13 (:func:`fer_recipe`, :func:`fer_recipe_data`, :func:`fer_recipe_model`).

Runs are keyed by :func:`affectlab.config.config_hash` over the train config, a caller-given
``key`` (model recipe, data set, init seed: whatever the tensors do not show), the data modules'
descriptions and content fingerprints, the extra-term names, the model's parameter shapes and
the code that trains them (:func:`run_code_fingerprint`: package source, model classes and loss
terms defined elsewhere, torch version). A finished run with the same hash is loaded instead of
retrained; an unfinished one resumes from its last checkpoint and ends with weights identical to
an uninterrupted run (CPU, deterministic; with a wall-clock budget, given the same timings).
Training can be bounded by epochs or by a wall-clock budget (``TrainConfig.budget_s``), with the
lr schedule laid out over the steps that fit (:class:`BudgetPlan`). CPU bf16 autocast is chosen
per CPU by detection and measurement (:func:`cpu_info`, :func:`probe_cpu_bf16`).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import functools
import hashlib
import inspect
import json
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from affectlab import metrics
from affectlab.augment import AugmentConfig, BatchAugment
from affectlab.config import (
    ConfigError,
    code_fingerprint as package_code_fingerprint,
    config_hash,
    config_to_json,
    default_cache_dir,
    default_runs_dir,
    resolve_device,
    seed_everything,
)
from affectlab.data.sets import FaceSet
from affectlab.losses import soft_target_ce

CHECKPOINT_FORMAT = "affectlab.train/1"
AMP_MODES = ("auto", "bf16", "fp16", "off")
SCHEDULES = ("cosine", "onecycle", "exponential", "constant")
ONECYCLE_START = 1 / 25  # one-cycle warm-up starts at lr / 25 (torch OneCycleLR's div_factor)
OPTIMIZERS = ("adamw", "sam")
TASKS = ("classification", "regression")
TARGETS = ("hard", "soft")
HIGHER_IS_BETTER = {"accuracy": True, "macro_f1": True, "balanced_accuracy": True, "ccc": True,
                    "loss": False, "mse": False, "mae": False}
TASK_METRICS = {"classification": ("loss", "accuracy", "macro_f1", "balanced_accuracy"),
                "regression": ("loss", "mse", "mae", "ccc")}
AMP_PROBE_MIN_SPEEDUP = 1.10  # amp="auto" takes CPU bf16 only when a probe measures it >= 10% faster
BUDGET_CALIBRATION_STEPS = 6  # steps timed before the first budget plan (the first one is not counted)
BUDGET_REPLAN_EVERY = 20  # re-plan the budgeted step count every this many steps

LossTerm = Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor], int], torch.Tensor]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message names the epoch and step."""


class CorruptCheckpointError(RuntimeError):
    """A run's ``last.pt``/``best.pt`` cannot be read; the message names the file and the way out."""


def _now() -> float:
    """The clock budgets are measured with (a function so tests can replace it)."""
    return time.perf_counter()


# ----------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every training knob; invalid values raise :class:`ConfigError` naming the field.

    Defaults are the NeuroGaze-Distill recipe (paper 000, Sec. 4.4): AdamW, lr 2e-4, weight decay
    0.05, cosine schedule, gradient clipping at 1.0. Epochs and steps count from 1.

    Attributes:
        epochs: number of passes over the training data.
        lr, weight_decay, betas: AdamW (Loshchilov & Hutter 2019); weight decay on all parameters.
        schedule: "cosine" (per step, from lr down to ``min_lr_ratio * lr``), "onecycle" (Smith &
            Topin 2019: half-cosine warm-up from lr/25 to lr, then cosine down to
            ``min_lr_ratio * lr``), "exponential" (lr * gamma ** (epoch - 1), POSTER-Var Table 1)
            or "constant".
        warmup_epochs: warm-up length in epochs (may be fractional), applied per step; linear
            for "cosine", half-cosine for "onecycle".
        warmup_fraction: warm-up length as a fraction of all planned steps (use instead of
            ``warmup_epochs``, e.g. 0.25 with a budget, where the step count is measured).
        budget_s: wall-clock budget in seconds, or None. With a budget, ``epochs`` is only an upper
            bound: the trainer times its steps (and per-epoch evaluation), plans how many steps fit
            into the budget after :data:`BUDGET_CALIBRATION_STEPS` steps, re-plans every
            :data:`BUDGET_REPLAN_EVERY` steps and at each epoch end, lays the lr schedule
            (cosine / one-cycle / warm-up) over the planned steps, and stops when they are done or
            the budget is spent (the last epoch may be partial). The plan is checkpointed, so a
            resumed run continues it with the budget that was left.
        optimizer: "adamw" or "sam" (SAM over AdamW with radius ``sam_rho``).
        grad_clip: max global gradient L2 norm, or None for no clipping.
        task: "classification" (cross-entropy on "logits") or "regression" (MSE on "pred").
        target: "hard" (batch["y"] class indices, -1 ignored) or "soft" (batch["soft"] rows,
            e.g. FERPlus vote distributions).
        label_smoothing, class_weights: passed to ``F.cross_entropy`` (both target kinds).
        amp: "auto" | "bf16" | "fp16" | "off". "auto" = bf16 (else fp16) on CUDA; on CPU bf16 only
            where the CPU has native bf16 (AVX512-BF16 or AMX, :func:`cpu_info`) *and* a probe of
            this model at this input shape measures bf16 at least 10% faster than fp32
            (:func:`probe_cpu_bf16`); else off.
        channels_last: convert model and 4-D inputs to channels-last memory format.
        steps_per_epoch: cap on training steps per epoch (smoke runs), or None for all batches.
        monitor: validation metric choosing the best checkpoint; "auto" = macro_f1 for
            classification, ccc for regression. One of :data:`TASK_METRICS` of the task.
        seed: seeds Python, NumPy, torch and the data shuffling generator at the start of a run.
        deterministic: ask torch for deterministic kernels.
        progress: show a tqdm bar per epoch. tensorboard: write TensorBoard scalars.
            (These two do not enter the configuration hash.)
    """

    epochs: int = 10
    lr: float = 2e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    warmup_fraction: float = 0.0
    budget_s: float | None = None
    min_lr_ratio: float = 0.0
    gamma: float = 0.98
    optimizer: str = "adamw"
    sam_rho: float = 0.05
    grad_clip: float | None = 1.0
    task: str = "classification"
    target: str = "hard"
    label_smoothing: float = 0.0
    class_weights: tuple[float, ...] | None = None
    amp: str = "auto"
    channels_last: bool = False
    steps_per_epoch: int | None = None
    monitor: str = "auto"
    seed: int = 0
    deterministic: bool = True
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        def fail(field: str, expected: str) -> None:
            raise ConfigError(f"TrainConfig.{field} must be {expected}; got {getattr(self, field)!r}")

        def is_int(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) \
                and math.isfinite(v)

        if not is_int(self.epochs) or self.epochs < 1:
            fail("epochs", "an int >= 1")
        if not is_num(self.lr) or self.lr <= 0:
            fail("lr", "a finite number > 0")
        if not is_num(self.weight_decay) or self.weight_decay < 0:
            fail("weight_decay", "a finite number >= 0")
        object.__setattr__(self, "betas", tuple(self.betas))
        if len(self.betas) != 2 or not all(is_num(b) and 0 <= b < 1 for b in self.betas):
            fail("betas", "two numbers in [0, 1)")
        for field, allowed in (("schedule", SCHEDULES), ("optimizer", OPTIMIZERS), ("task", TASKS),
                               ("target", TARGETS), ("amp", AMP_MODES)):
            if getattr(self, field) not in allowed:
                fail(field, f"one of {allowed}")
        if not is_num(self.warmup_epochs) or not 0 <= self.warmup_epochs < self.epochs:
            fail("warmup_epochs", f"a number in [0, epochs={self.epochs})")
        if not is_num(self.warmup_fraction) or not 0 <= self.warmup_fraction < 1:
            fail("warmup_fraction", "a number in [0, 1)")
        if self.warmup_fraction and self.warmup_epochs:
            fail("warmup_fraction", "0 when warmup_epochs is set (choose one warm-up length)")
        if self.budget_s is not None and (not is_num(self.budget_s) or self.budget_s <= 0):
            fail("budget_s", "a number of seconds > 0, or None")
        if not is_num(self.min_lr_ratio) or not 0 <= self.min_lr_ratio <= 1:
            fail("min_lr_ratio", "in [0, 1]")
        if not is_num(self.gamma) or not 0 < self.gamma <= 1:
            fail("gamma", "in (0, 1]")
        if not is_num(self.sam_rho) or self.sam_rho <= 0:
            fail("sam_rho", "a number > 0")
        if self.grad_clip is not None and (not is_num(self.grad_clip) or self.grad_clip <= 0):
            fail("grad_clip", "a number > 0 or None")
        if not is_num(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            fail("label_smoothing", "in [0, 1)")
        if self.class_weights is not None:
            object.__setattr__(self, "class_weights", tuple(float(w) for w in self.class_weights))
            if not self.class_weights or not all(math.isfinite(w) and w > 0 for w in self.class_weights):
                fail("class_weights", "a non-empty sequence of positive numbers, or None")
        if self.target == "soft" and self.class_weights is not None:
            fail("class_weights", "None with target='soft' (losses.soft_target_ce takes no class weights)")
        if self.task == "regression" and (self.target != "hard" or self.label_smoothing or self.class_weights):
            fail("task", "'classification' when target='soft', label_smoothing or class_weights are set")
        if self.optimizer == "sam" and self.amp == "fp16":
            fail("amp", "'bf16', 'auto' or 'off' with optimizer='sam' (no GradScaler support in SAM)")
        if self.steps_per_epoch is not None and (not is_int(self.steps_per_epoch) or self.steps_per_epoch < 1):
            fail("steps_per_epoch", "an int >= 1 or None")
        allowed_monitor = ("auto",) + TASK_METRICS[self.task]
        if self.monitor not in allowed_monitor:
            fail("monitor", f"one of {allowed_monitor} for task={self.task!r}")
        if not is_int(self.seed) or self.seed < 0:
            fail("seed", "an int >= 0")
        for field in ("channels_last", "deterministic", "progress", "tensorboard"):
            if not isinstance(getattr(self, field), bool):
                fail(field, "a bool")

    @property
    def monitor_metric(self) -> str:
        """The resolved validation metric for the best checkpoint."""
        if self.monitor != "auto":
            return self.monitor
        return "macro_f1" if self.task == "classification" else "ccc"

    def hashed(self) -> dict[str, Any]:
        """The fields that change the trained weights (progress and tensorboard do not)."""
        fields = dataclasses.asdict(self)
        fields.pop("progress")
        fields.pop("tensorboard")
        return fields


# ----------------------------------------------------------------------------------------------
# data: tensors in memory -> batches of dicts on the device
# ----------------------------------------------------------------------------------------------


def _tensor_fingerprint(tensors: Sequence[torch.Tensor | None]) -> str:
    digest = hashlib.sha256()
    for t in tensors:
        if t is None:
            digest.update(b"none")
            continue
        t = t.detach().cpu().contiguous()
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class TensorData:
    """Shuffled batches from tensors in memory, as dicts on the device ("images in memory").

    Each batch is ``{"x", "y", "index", ["soft"], *extras}``: ``x`` is converted on the fly (uint8 ->
    float in [0, 1]; optional bilinear resize of 4-D images to ``resize``; in training iteration the
    optional :class:`~affectlab.augment.BatchAugment`; optional repeat of one channel to
    ``channels``; optional per-channel ``(x - mean) / std``). ``index`` holds the row indices into
    these tensors. Shuffling and augmentation draw from one seeded CPU ``torch.Generator`` whose
    state :func:`fit` checkpoints, so a resumed run sees the same batches.

    Args:
        x: inputs (N, ...); uint8 images (N, C, H, W) or float features.
        y: class indices (N,) int64 or regression targets (N,) / (N, D) float; None = unlabelled.
        soft: soft targets (N, K), rows summing to 1 (e.g. FERPlus vote distributions), or None.
        extras: more per-sample tensors carried into every batch under their names (e.g. "va").
        batch_size, shuffle, drop_last: as for a DataLoader (shuffle/drop_last only when training).
        resize: target side (int) or (H, W) for 4-D inputs. channels: repeat 1 channel to this many.
        mean, std: per-channel normalisation applied last (scalars or sequences).
        augment: batch augmentation applied in training iteration only.
        seed: initial generator seed (``fit`` reseeds with ``TrainConfig.seed``).
        name: shown in error messages and the run description.
    """

    RESERVED = ("x", "y", "soft", "index")

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        soft: torch.Tensor | None = None,
        extras: Mapping[str, torch.Tensor] | None = None,
        batch_size: int = 128,
        shuffle: bool = True,
        drop_last: bool = False,
        resize: int | tuple[int, int] | None = None,
        channels: int | None = None,
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        augment: BatchAugment | None = None,
        seed: int = 0,
        name: str = "data",
    ) -> None:
        self.name = name
        if not isinstance(x, torch.Tensor) or x.ndim < 2 or len(x) == 0:
            raise ValueError(f"{name}: x must be a non-empty tensor (N, ...); got {type(x).__name__} "
                             f"{tuple(getattr(x, 'shape', ()))}")
        n = len(x)
        fields = {"y": y, "soft": soft, **dict(extras or {})}
        for key, value in fields.items():
            if value is None:
                continue
            if not isinstance(value, torch.Tensor):
                raise ValueError(f"{name}: {key} must be a tensor; got {type(value).__name__}")
            if len(value) != n:
                raise ValueError(f"{name}: {key} has {len(value)} rows but x has {n}")
        for key in dict(extras or {}):
            if key in self.RESERVED:
                raise ValueError(f"{name}: extra name {key!r} is reserved (reserved: {self.RESERVED})")
        if soft is not None and (soft.ndim != 2 or not soft.is_floating_point()):
            raise ValueError(f"{name}: soft must be float (N, K); got {soft.dtype} {tuple(soft.shape)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"{name}: batch_size must be an int >= 1; got {batch_size!r}")
        if (resize is not None or channels is not None) and x.ndim != 4:
            raise ValueError(f"{name}: resize/channels need 4-D images (N, C, H, W); x is {tuple(x.shape)}")
        if isinstance(resize, int):
            resize = (resize, resize)
        if resize is not None and (len(resize) != 2 or min(resize) < 1):
            raise ValueError(f"{name}: resize must be a side or (H, W) of positive ints; got {resize!r}")
        if channels is not None and x.shape[1] not in (1, channels):
            raise ValueError(f"{name}: channels={channels} needs x with 1 or {channels} channels; x has {x.shape[1]}")
        if (mean is None) != (std is None):
            raise ValueError(f"{name}: give both mean and std, or neither")
        self.x, self.y, self.soft = x, y, soft
        self.extras = dict(extras or {})
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.resize = None if resize is None else (int(resize[0]), int(resize[1]))
        self.channels = channels
        out_channels = channels or x.shape[1]
        self.mean = self._per_channel(mean, "mean", out_channels)
        self.std = self._per_channel(std, "std", out_channels)
        if self.std is not None and bool((self.std <= 0).any()):
            raise ValueError(f"{name}: std must be > 0; got {std!r}")
        self.augment = augment
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(seed)

    def _per_channel(self, value: Any, what: str, channels: int) -> torch.Tensor | None:
        if value is None:
            return None
        t = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
        if len(t) not in (1, channels):
            raise ValueError(f"{self.name}: {what} has {len(t)} values for {channels} channels (axis 1 of x)")
        return t.reshape(1, -1, *[1] * (self.x.ndim - 2))  # broadcast over axis 1 (channels)

    @property
    def num_samples(self) -> int:
        return len(self.x)

    def num_batches(self, train: bool = True) -> int:
        if train and self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one converted sample ``x`` as the model sees it."""
        shape = list(self.x.shape[1:])
        if self.x.ndim == 4:
            if self.channels is not None:
                shape[0] = self.channels
            if self.resize is not None:
                shape[1:] = self.resize
        return tuple(shape)

    @property
    def input_side(self) -> int | None:
        """Smaller spatial side of converted 4-D images (None for other inputs); drives amp='auto'."""
        return min(self.output_shape[1:]) if self.x.ndim == 4 else None

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])

    def describe(self) -> dict[str, Any]:
        """Plain description (sizes, transforms, content fingerprint) entering the run hash."""

        def spec(t: torch.Tensor | None) -> Any:
            return None if t is None else {"dtype": str(t.dtype), "shape": list(t.shape)}

        return {
            "name": self.name,
            "x": spec(self.x), "y": spec(self.y), "soft": spec(self.soft),
            "extras": {k: spec(v) for k, v in sorted(self.extras.items())},
            "batch_size": self.batch_size, "shuffle": self.shuffle, "drop_last": self.drop_last,
            "resize": self.resize, "channels": self.channels,
            "mean": None if self.mean is None else self.mean.reshape(-1).tolist(),
            "std": None if self.std is None else self.std.reshape(-1).tolist(),
            "augment": None if self.augment is None else self.augment.describe(),
            "fingerprint": _tensor_fingerprint([self.x, self.y, self.soft, *[self.extras[k] for k in sorted(self.extras)]]),
        }

    def convert(self, x: torch.Tensor, device: torch.device, train: bool = False) -> torch.Tensor:
        """Raw rows of ``x`` -> model input on ``device`` (scale, resize, augment, repeat, normalise)."""
        x = x.to(device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        elif not x.is_floating_point():
            x = x.float()
        if self.resize is not None and tuple(x.shape[-2:]) != self.resize:
            shrinking = self.resize[0] < x.shape[-2] or self.resize[1] < x.shape[-1]
            x = F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False, antialias=shrinking)
        if train and self.augment is not None:
            self.augment.train()
            x = self.augment(x, self.generator)
        if self.channels is not None and x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        if self.mean is not None:
            x = (x - self.mean.to(device)) / self.std.to(device)
        return x.contiguous()

    def batches(self, device: torch.device | str = "cpu", train: bool = False) -> Iterator[dict[str, torch.Tensor]]:
        """Yield batch dicts on ``device``; ``train`` = shuffle, drop_last and augment as configured."""
        device = torch.device(device)
        n = self.num_samples
        if train and self.shuffle:
            order = torch.randperm(n, generator=self.generator)
        else:
            order = torch.arange(n)
        stop = self.num_batches(train) * self.batch_size
        for start in range(0, min(stop, n), self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = {"x": self.convert(self.x[idx], device, train), "index": idx.to(device)}
            if self.y is not None:
                batch["y"] = self.y[idx].to(device, non_blocking=True)
            if self.soft is not None:
                batch["soft"] = self.soft[idx].to(device, non_blocking=True)
            for key, value in self.extras.items():
                batch[key] = value[idx].to(device, non_blocking=True)
            yield batch


FACESET_FIELDS = ("labels", "valence", "arousal", "va", "identity", "soft_labels")


def _faceset_field(faceset: FaceSet, field: str) -> torch.Tensor:
    where = f"FaceSet {faceset.name}/{faceset.split}"
    if field not in FACESET_FIELDS:
        raise ValueError(f"{where}: unknown field {field!r}; choose from {FACESET_FIELDS}")
    if field == "va":
        if faceset.valence is None or faceset.arousal is None:
            raise ValueError(f"{where} has no valence/arousal, needed for field 'va'")
        return torch.stack([faceset.valence, faceset.arousal], dim=1).float()
    value = getattr(faceset, field)
    if value is None:
        raise ValueError(f"{where} has no {field}")
    return value


def from_faceset(
    faceset: FaceSet,
    *,
    target: str = "labels",
    soft: bool = False,
    extras: Sequence[str] = (),
    drop_unknown: bool = True,
    **data_kwargs: Any,
) -> TensorData:
    """A :class:`TensorData` over a :class:`FaceSet`'s uint8 images.

    Args:
        target: FaceSet field used as ``y``: "labels" (class indices), "valence", "arousal" or
            "va" ((N, 2) valence and arousal, a regression target).
        soft: also carry ``faceset.soft_labels`` as batch["soft"] (FERPlus vote distributions).
        extras: more FaceSet fields to carry under their own names (from :data:`FACESET_FIELDS`).
        drop_unknown: with target="labels", drop rows labelled -1 (unknown).
        data_kwargs: passed to :class:`TensorData` (batch_size, resize, channels, augment, ...).
    """
    if target not in ("labels", "valence", "arousal", "va"):
        raise ValueError(f"from_faceset: target must be 'labels', 'valence', 'arousal' or 'va'; got {target!r}")
    if target == "labels" and drop_unknown and bool((faceset.labels < 0).any()):
        faceset = faceset.subset(torch.nonzero(faceset.labels >= 0).flatten())
    y = _faceset_field(faceset, target)
    if target != "labels":
        y = y.float()
    data_kwargs.setdefault("name", f"{faceset.name}/{faceset.split}")
    return TensorData(
        faceset.images,
        y,
        soft=_faceset_field(faceset, "soft_labels").float() if soft else None,
        extras={name: _faceset_field(faceset, name) for name in extras},
        **data_kwargs,
    )


# ----------------------------------------------------------------------------------------------
# model outputs, losses and metrics
# ----------------------------------------------------------------------------------------------


def model_outputs(raw: Any, task: str) -> dict[str, Any]:
    """Normalise what a model returns to a dict with "logits" (classification) or "pred" (regression).

    A tensor becomes that single entry; a dict must contain the key; floating tensors become float32
    (outputs of autocast regions may be bf16/fp16) so losses are computed in full precision.
    """
    key = "logits" if task == "classification" else "pred"
    if isinstance(raw, torch.Tensor):
        out: dict[str, Any] = {key: raw}
    elif isinstance(raw, Mapping):
        if key not in raw:
            raise ValueError(f"model returned a dict with keys {sorted(raw)}; task={task!r} needs {key!r}")
        out = dict(raw)
    else:
        raise TypeError(f"model must return a tensor or a dict with {key!r}; got {type(raw).__name__}")
    return {k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in out.items()}


def _match_regression(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if pred.shape != y.shape:
        if pred.numel() != y.numel():
            raise ValueError(f"regression prediction shape {tuple(pred.shape)} does not match target {tuple(y.shape)}")
        pred = pred.reshape(y.shape)
    return pred


def task_loss(outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor], config: TrainConfig,
              class_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy (hard labels with -1 ignored, or soft targets through
    :func:`affectlab.losses.soft_target_ce`; label smoothing and class weights as
    ``F.cross_entropy`` defines them: a soft target ``q`` is smoothed to ``(1 - a) q + a / K``)
    or MSE for regression."""
    if config.task == "regression":
        y = batch["y"].float()
        return F.mse_loss(_match_regression(outputs["pred"], y), y)
    logits = outputs["logits"]
    if class_weight is not None and class_weight.numel() != logits.shape[1]:
        raise ConfigError(f"TrainConfig.class_weights has {class_weight.numel()} values but the model "
                          f"outputs {logits.shape[1]} classes")
    if config.target == "soft":
        if "soft" not in batch:
            raise ValueError("target='soft' needs batch['soft'] (build the data with soft targets)")
        soft = batch["soft"].float()
        if config.label_smoothing:
            soft = (1 - config.label_smoothing) * soft + config.label_smoothing / soft.shape[1]
        return soft_target_ce(logits, soft)
    return F.cross_entropy(logits, batch["y"], weight=class_weight, label_smoothing=config.label_smoothing,
                           ignore_index=-1)


def score_predictions(outputs: torch.Tensor, y: torch.Tensor, task: str) -> dict[str, float]:
    """Validation metrics: loss (plain CE / MSE), accuracy, macro-F1, balanced accuracy, or MSE,
    MAE and CCC (mean over target columns); computed with :mod:`affectlab.metrics`."""
    if task == "classification":
        keep = y >= 0
        logits, labels = outputs[keep], y[keep]
        if len(labels) == 0:
            raise ValueError("validation data has no known labels (all -1)")
        pred = logits.argmax(1).numpy()
        true = labels.numpy()
        return {
            "loss": float(F.cross_entropy(logits, labels)),
            "accuracy": metrics.accuracy(true, pred),
            "macro_f1": metrics.macro_f1(true, pred),
            "balanced_accuracy": metrics.balanced_accuracy(true, pred),
        }
    y = y.float()
    pred = _match_regression(outputs, y)
    columns = y.reshape(len(y), -1).numpy(), pred.reshape(len(y), -1).numpy()
    mse = float(F.mse_loss(pred, y))
    return {
        "loss": mse,
        "mse": mse,
        "mae": float((pred - y).abs().mean()),
        "ccc": float(np.mean([metrics.ccc(columns[0][:, j], columns[1][:, j]) for j in range(columns[0].shape[1])])),
    }


# ----------------------------------------------------------------------------------------------
# mixed precision, SAM, schedules
# ----------------------------------------------------------------------------------------------


CPU_FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                         "amx_tile", "amx_bf16", "amx_int8")


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """The CPU model, the instruction-set flags that matter for training speed, and whether bf16 is
    native (AVX512-BF16 or AMX-BF16). The one place flags are detected (Linux ``/proc/cpuinfo``;
    elsewhere only torch's AMX probe); benchmarks report this dict."""
    model, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        torch_amx = bool(probe()) if probe is not None else False
    except RuntimeError:
        torch_amx = False
    present = [f for f in CPU_FLAGS_OF_INTEREST if f in flags]
    return {
        "model": model,
        "flags": present,
        "native_bf16": "avx512_bf16" in flags or "amx_bf16" in flags or torch_amx,
        "torch_amx_tiles": torch_amx,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }


def cpu_has_native_bf16() -> bool:
    """True when the CPU executes bf16 natively (AVX512-BF16 or AMX-BF16, see :func:`cpu_info`).

    Without either, CPU bf16 autocast is emulated and slower than fp32 (measured: about 2.5x
    slower for ResNet-18 at 112 px on an AVX-512 host without them), so amp="auto" never probes.
    """
    return bool(cpu_info()["native_bf16"])


_AMP_PROBES: dict[tuple, dict[str, Any]] = {}  # probe results of this process, by model and input shape


def probe_cpu_bf16(model: nn.Module, example_input: torch.Tensor, task: str = "classification",
                   channels_last: bool = False, steps: int = 3) -> dict[str, Any]:
    """Time forward+backward of a copy of ``model`` on ``example_input`` in fp32 and in bf16 autocast.

    One untimed step per precision, then ``steps`` alternating timed steps; medians. The copy, a
    forked RNG and no optimiser step leave the model and every RNG untouched. Returns
    ``{"fp32_s", "bf16_s", "speedup", "use_bf16"}`` (speedup = fp32 / bf16 seconds per step;
    ``use_bf16`` when >= :data:`AMP_PROBE_MIN_SPEEDUP`). Cached per process by model parameter
    shapes, input shape, memory format and thread count.
    """
    key = (_model_signature(model)["shapes_sha256"], tuple(example_input.shape), channels_last,
           torch.get_num_threads(), task)
    if key in _AMP_PROBES:
        return _AMP_PROBES[key]
    stored = _stored_amp_probe(key)
    if stored is not None:
        _AMP_PROBES[key] = stored
        return stored
    probe_model = copy.deepcopy(model).train()
    x = example_input.contiguous(memory_format=torch.channels_last) if channels_last and example_input.ndim == 4 \
        else example_input

    def step(dtype: torch.dtype | None) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext():
            out = model_outputs(probe_model(x), task)
        out["logits" if task == "classification" else "pred"].float().square().mean().backward()
        probe_model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    with torch.random.fork_rng(devices=[]):
        step(None), step(torch.bfloat16)
        for _ in range(steps):
            times["fp32"].append(step(None))
            times["bf16"].append(step(torch.bfloat16))
    fp32, bf16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
    result = {"fp32_s": fp32, "bf16_s": bf16, "speedup": fp32 / bf16,
              "use_bf16": fp32 / bf16 >= AMP_PROBE_MIN_SPEEDUP, "input_shape": list(example_input.shape)}
    _AMP_PROBES[key] = result
    _store_amp_probe(key, result)
    return result


def _amp_probe_file() -> Path:
    return default_cache_dir() / "amp_probes.json"


def _amp_probe_id(key: tuple) -> str:
    """The probe's key on disk: the model/input key plus this machine's CPU and torch version, so a
    decision measured on one CPU is never reused on another."""
    info = cpu_info()
    text = json.dumps([list(map(str, key)), info["model"], info["flags"], torch.__version__])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _stored_amp_probe(key: tuple) -> dict[str, Any] | None:
    """A probe measured earlier on this machine (``<cache>/amp_probes.json``), so the fp32-vs-bf16
    timing is paid once per machine and model shape, not at every run."""
    try:
        stored = json.loads(_amp_probe_file().read_text())
    except (OSError, ValueError):
        return None
    entry = stored.get(_amp_probe_id(key)) if isinstance(stored, dict) else None
    return entry if isinstance(entry, dict) and "use_bf16" in entry else None


def _store_amp_probe(key: tuple, result: Mapping[str, Any]) -> None:
    path = _amp_probe_file()
    try:
        stored = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(stored, dict):
            stored = {}
    except (OSError, ValueError):
        stored = {}
    stored[_amp_probe_id(key)] = dict(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(stored, indent=1))
    os.replace(tmp, path)


def resolve_amp(amp: str, device: torch.device, input_side: int | None = None,
                optimizer: str = "adamw", *, model: nn.Module | None = None,
                example_input: torch.Tensor | None = None, task: str = "classification",
                channels_last: bool = False) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (None = full fp32).

    "auto": CUDA -> bf16 when supported, else fp16 (not with SAM). CPU -> bf16 only where the
    CPU has native bf16 (:func:`cpu_has_native_bf16`) and it measures faster: with ``model`` and
    ``example_input`` the decision is :func:`probe_cpu_bf16`'s; without them, the latest probe of
    this process at the same input side decides (e.g. prediction after training), and with no
    probe at all it stays fp32. Never bf16 by assumption.
    """
    if amp not in AMP_MODES:
        raise ConfigError(f"amp must be one of {AMP_MODES}; got {amp!r}")
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None if optimizer == "sam" else torch.float16
    if device.type != "cpu" or not cpu_has_native_bf16():
        return None
    if model is not None and example_input is not None:
        probe = probe_cpu_bf16(model, example_input, task=task, channels_last=channels_last)
        return torch.bfloat16 if probe["use_bf16"] else None
    if input_side is None:
        return None
    same_side = [p for p in _AMP_PROBES.values() if len(p["input_shape"]) == 4 and min(p["input_shape"][2:]) == input_side]
    return torch.bfloat16 if same_side and same_side[-1]["use_bf16"] else None


def _dtype_name(dtype: torch.dtype | None) -> str:
    return "off" if dtype is None else str(dtype).removeprefix("torch.")


class SAM(torch.optim.Optimizer):
    """Sharpness-Aware Minimisation (Foret et al., ICLR 2021, Algorithm 1) over a base optimiser.

    A step needs two gradients: at ``w`` (call :meth:`first_step`, which moves to
    ``w + e(w)`` with ``e(w) = rho * g / ||g||_2``, the global L2 norm over all parameters) and at
    ``w + e(w)`` (then :meth:`second_step` restores ``w`` exactly and lets the base optimiser step
    with that second gradient). :meth:`step` does both given a closure that recomputes the loss
    and calls ``backward``. ``state_dict`` is the base optimiser's (the perturbation is transient).
    """

    def __init__(self, params: Any, base_optimizer: type[torch.optim.Optimizer] = torch.optim.AdamW,
                 rho: float = 0.05, **base_kwargs: Any) -> None:
        if not rho > 0:
            raise ConfigError(f"SAM rho must be > 0; got {rho!r}")
        super().__init__(params, dict(rho=rho, **base_kwargs))
        self.base = base_optimizer(self.param_groups, **base_kwargs)
        self.param_groups = self.base.param_groups
        self.defaults.update(self.base.defaults)

    @torch.no_grad()
    def first_step(self) -> None:
        """``w <- w + rho * g / ||g||`` (remembering ``w``)."""
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            raise RuntimeError("SAM.first_step: no parameter has a gradient; call backward() first")
        grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        for group in self.param_groups:
            scale = group["rho"] / (grad_norm + 1e-12)
            for p in group["params"]:
                if p.grad is None:
                    continue
                self.state[p]["w"] = p.detach().clone()
                p.add_(p.grad * scale.to(p.dtype))

    @torch.no_grad()
    def second_step(self) -> None:
        """Restore ``w`` and step the base optimiser with the gradient taken at ``w + e(w)``."""
        for group in self.param_groups:
            for p in group["params"]:
                if "w" in self.state[p]:
                    p.copy_(self.state[p].pop("w"))
        self.base.step()

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:  # type: ignore[override]
        if closure is None:
            raise RuntimeError("SAM.step needs a closure that zeroes grads, computes the loss and calls backward()")
        loss = closure()
        self.first_step()
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            closure()
        self.second_step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return self.base.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base.load_state_dict(state_dict)
        self.param_groups = self.base.param_groups


@contextlib.contextmanager
def _frozen_batchnorm_stats(model: nn.Module) -> Iterator[None]:
    """Keep BatchNorm running statistics unchanged during SAM's second forward pass."""
    saved = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.momentum is not None:
            saved.append((module, module.momentum))
            module.momentum = 0.0
    try:
        yield
    finally:
        for module, momentum in saved:
            module.momentum = momentum


def lr_factor(step: int, *, schedule: str, total_steps: int, warmup_steps: int, min_lr_ratio: float,
              gamma: float, steps_per_epoch: int) -> float:
    """Multiplier of the base lr before optimiser step ``step`` (0-based).

    Warm-up over ``warmup_steps``: linear ``(step + 1) / warmup_steps`` (cosine and the others) or,
    for "onecycle" (Smith & Topin 2019, as torch's OneCycleLR with cosine annealing), a half-cosine
    rise from :data:`ONECYCLE_START` to 1. Then cosine (Loshchilov & Hutter 2017, no restarts) and
    one-cycle anneal ``m + (1 - m) * (1 + cos(pi * t)) / 2`` with ``t`` the fraction of
    post-warm-up steps done (``m = min_lr_ratio``), or ``gamma ** (epoch - 1)`` per epoch
    (exponential), or 1 (constant).
    """
    if step < warmup_steps:
        if schedule == "onecycle":
            t = step / warmup_steps
            return ONECYCLE_START + (1 - ONECYCLE_START) * 0.5 * (1 - math.cos(math.pi * t))
        return (step + 1) / warmup_steps
    if schedule in ("cosine", "onecycle"):
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if schedule == "exponential":
        return gamma ** (step // steps_per_epoch)
    return 1.0


class BudgetPlan:
    """How many optimiser steps fit into a wall-clock budget, measured while training.

    ``elapsed_s`` sums the timed work of the run (training steps with their batch preparation, and
    as ``overhead_s`` the setup of a fresh run, e.g. the bf16 probe, and per-epoch evaluation); a
    resumed run starts from the checkpointed sums. After
    :data:`BUDGET_CALIBRATION_STEPS` steps, every :data:`BUDGET_REPLAN_EVERY` steps and after each
    epoch's evaluation, :meth:`replan` sets ``planned_steps = steps_done + remaining / cost`` where
    ``cost`` is an exponential moving average of seconds per step (the first step, with its
    allocator warm-up, is left out) plus the evaluation overhead per step so far. The trainer lays
    its lr schedule over ``planned_steps`` (never above ``max_steps = epochs * steps_per_epoch``)
    and stops at :attr:`exhausted`.
    """

    EMA = 0.2

    def __init__(self, budget_s: float, max_steps: int) -> None:
        self.budget_s, self.max_steps = float(budget_s), int(max_steps)
        self.elapsed_s = self.overhead_s = 0.0
        self.steps_done = 0
        self.step_s: float | None = None
        self.planned_steps = self.max_steps

    def record_step(self, seconds: float) -> None:
        self.elapsed_s += seconds
        self.steps_done += 1
        if self.steps_done > 1:
            self.step_s = seconds if self.step_s is None else (1 - self.EMA) * self.step_s + self.EMA * seconds
        if self.steps_done == BUDGET_CALIBRATION_STEPS or (
                self.steps_done > BUDGET_CALIBRATION_STEPS and self.steps_done % BUDGET_REPLAN_EVERY == 0):
            self.replan()

    def record_overhead(self, seconds: float) -> None:
        self.elapsed_s += seconds
        self.overhead_s += seconds
        self.replan()

    def replan(self) -> None:
        if self.step_s is None:
            return
        cost = self.step_s + self.overhead_s / max(1, self.steps_done)
        remaining = max(0.0, self.budget_s - self.elapsed_s)
        self.planned_steps = min(self.max_steps, max(self.steps_done, self.steps_done + int(remaining / cost)))

    @property
    def exhausted(self) -> bool:
        return self.steps_done >= self.planned_steps or self.elapsed_s >= self.budget_s

    def state_dict(self) -> dict[str, Any]:
        return {"budget_s": self.budget_s, "max_steps": self.max_steps, "elapsed_s": self.elapsed_s,
                "overhead_s": self.overhead_s, "steps_done": self.steps_done,
                "step_s": -1.0 if self.step_s is None else self.step_s, "planned_steps": self.planned_steps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.elapsed_s, self.overhead_s = float(state["elapsed_s"]), float(state["overhead_s"])
        self.steps_done, self.planned_steps = int(state["steps_done"]), int(state["planned_steps"])
        self.step_s = None if state["step_s"] < 0 else float(state["step_s"])


# ----------------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------------


def save_checkpoint(obj: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``obj`` with ``torch.save`` atomically: to a temp file in the same dir, then os.replace.

    A failing write removes the temp file and leaves any previous checkpoint at ``path`` intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise RuntimeError(f"checkpoint {path} could not be loaded with weights_only=True: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise RuntimeError(f"checkpoint {path} is not an {CHECKPOINT_FORMAT} checkpoint")
    return state


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU (and CUDA) RNG states as tensors/lists/ints (weights_only-safe)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": list(py_state), "gauss_next": gauss_next},
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


# ----------------------------------------------------------------------------------------------
# the trainer: one step, one epoch, evaluation
# ----------------------------------------------------------------------------------------------


class Trainer:
    """A model with its optimiser, per-step lr schedule, grad scaler and extra loss terms.

    ``example_input`` (one batch of model inputs) lets amp="auto" probe CPU bf16 on this model
    (:func:`resolve_amp`); ``amp_dtype`` ("bfloat16", "float16", "off") skips the resolution (a resumed
    run keeps the precision it started with). ``total_steps`` is what the lr schedule is laid over:
    ``epochs * steps_per_epoch``, or the :class:`BudgetPlan`'s planned steps that :func:`fit` sets.

    ``train_step`` is the unit the throughput benchmark times: forward under autocast (when
    enabled), task loss + extra terms in fp32, NaN/inf guard, backward (scaled for fp16), gradient
    clipping, optimiser step (two passes for SAM), schedule step.
    """

    def __init__(self, model: nn.Module, config: TrainConfig, *, device: torch.device | str = "cpu",
                 steps_per_epoch: int, input_side: int | None = None,
                 extra_terms: Mapping[str, LossTerm] | None = None,
                 example_input: torch.Tensor | None = None, amp_dtype: str | None = None) -> None:
        if not isinstance(config, TrainConfig):
            raise ConfigError(f"config must be a TrainConfig; got {type(config).__name__}")
        self.config = config
        self.device = torch.device(device)
        self.model = model.to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.terms = dict(extra_terms or {})
        for name, term in self.terms.items():
            if not callable(term):
                raise ConfigError(f"extra term {name!r} must be callable(outputs, batch, epoch)")
            if name in ("loss", "task_loss", "train_accuracy", "epoch", "lr", "seconds", "steps") or name.startswith("val_"):
                raise ConfigError(f"extra term name {name!r} clashes with a history column")
        if amp_dtype is not None:
            self.amp_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "off": None}[amp_dtype]
        else:
            self.amp_dtype = resolve_amp(config.amp, self.device, input_side, config.optimizer, model=self.model,
                                         example_input=None if example_input is None else example_input.to(self.device),
                                         task=config.task, channels_last=config.channels_last)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters")
        adamw = dict(lr=config.lr, weight_decay=config.weight_decay, betas=config.betas,
                     fused=self.device.type in ("cpu", "cuda"))
        if config.optimizer == "sam":
            self.optimizer: torch.optim.Optimizer = SAM(params, torch.optim.AdamW, rho=config.sam_rho, **adamw)
            base = self.optimizer.base
        else:
            self.optimizer = base = torch.optim.AdamW(params, **adamw)
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = config.epochs * steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(base, self._lr_factor)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.class_weight = (None if config.class_weights is None
                             else torch.tensor(config.class_weights, dtype=torch.float32, device=self.device))
        self.epoch = 0  # epochs completed

    @property
    def warmup_steps(self) -> int:
        if self.config.warmup_fraction:
            return round(self.config.warmup_fraction * self.total_steps)
        return round(self.config.warmup_epochs * self.steps_per_epoch)

    def _lr_factor(self, step: int) -> float:
        cfg = self.config
        return lr_factor(step, schedule=cfg.schedule, total_steps=self.total_steps, warmup_steps=self.warmup_steps,
                         min_lr_ratio=cfg.min_lr_ratio, gamma=cfg.gamma, steps_per_epoch=self.steps_per_epoch)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _input(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        x = batch["x"]
        if self.config.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def losses(self, batch: dict[str, torch.Tensor], epoch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, Any]]:
        """Forward pass; returns (total loss, named parts, normalised outputs)."""
        with self._autocast():
            raw = self.model(self._input(batch))
        outputs = model_outputs(raw, self.config.task)
        parts = {"task_loss": task_loss(outputs, batch, self.config, self.class_weight)}
        for name, term in self.terms.items():
            value = term(outputs, batch, epoch)
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                raise ValueError(f"extra term {name!r} must return a scalar tensor; got {type(value).__name__} "
                                 f"{tuple(getattr(value, 'shape', ()))}")
            parts[name] = value.reshape(())
        total = torch.stack([p.float() for p in parts.values()]).sum()
        return total, parts, outputs

    def train_step(self, batch: dict[str, torch.Tensor], epoch: int = 1, step: int = 1) -> tuple[dict[str, float], dict[str, Any]]:
        """One optimisation step on ``batch``; returns (float loss parts incl. "loss", outputs)."""
        model, cfg = self.model, self.config
        model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total, parts, outputs = self.losses(batch, epoch)
        values = {name: float(v.detach()) for name, v in parts.items()}
        values["loss"] = float(total.detach())
        if not math.isfinite(values["loss"]):
            bad = ", ".join(f"{k}={v}" for k, v in values.items() if k != "loss" and not math.isfinite(v))
            raise NonFiniteLossError(f"non-finite training loss ({values['loss']}) at epoch {epoch}, step {step}"
                                     f" (global step {self.scheduler.last_epoch + 1}); non-finite parts: {bad}")
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        if isinstance(self.optimizer, SAM):
            total.backward()
            self.optimizer.first_step()
            self.optimizer.zero_grad(set_to_none=True)
            with _frozen_batchnorm_stats(model):
                second, _, _ = self.losses(batch, epoch)
            second.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            self.optimizer.second_step()
        else:
            self.scaler.scale(total).backward()
            if cfg.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.scheduler.step()
        return values, outputs

    def train_epoch(self, data: TensorData, epoch: int, *, plan: BudgetPlan | None = None,
                    bar: tqdm | None = None) -> dict[str, float]:
        """One pass over ``data`` (capped at ``steps_per_epoch``); sample-weighted means of the parts.

        With a ``plan`` each step (with its batch preparation) is timed into it, the lr schedule
        follows its planned steps, and the epoch ends early when the plan is exhausted. ``bar`` is
        a run-wide progress bar (one tick per step); without one, an epoch bar is shown when
        ``config.progress``.
        """
        sums: dict[str, float] = {}
        seen = correct = labelled = step = 0
        total = self.steps_per_epoch
        own_bar = bar is None
        if own_bar:
            bar = tqdm(total=total, desc=f"epoch {epoch}/{self.config.epochs}", leave=False,
                       disable=not self.config.progress, file=sys.stderr)
        mark = _now()
        for step, batch in enumerate(data.batches(self.device, train=True), start=1):
            values, outputs = self.train_step(batch, epoch, step)
            n = len(batch["x"])
            seen += n
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value * n
            if self.config.task == "classification" and "y" in batch:
                known = batch["y"] >= 0
                labelled += int(known.sum())
                correct += int((outputs["logits"].argmax(1) == batch["y"])[known].sum())
            if plan is not None:
                now = _now()
                plan.record_step(now - mark)
                mark = now
                if plan.planned_steps != self.total_steps:
                    self.total_steps = plan.planned_steps
                    if not own_bar:
                        bar.total = plan.planned_steps
            bar.set_postfix(epoch=epoch, loss=f"{values['loss']:.4f}", refresh=False)
            bar.update(1)
            if step >= total or (plan is not None and plan.exhausted):
                break
        if own_bar:
            bar.close()
        means = {key: value / seen for key, value in sums.items()}
        means["steps"] = step
        if labelled:
            means["train_accuracy"] = correct / labelled
        return means

    def evaluate(self, data: TensorData) -> dict[str, float]:
        """Validation metrics of the current model on ``data`` (see :func:`score_predictions`)."""
        preds = predict(self.model, data, self.device, amp=self.amp_dtype, channels_last=self.config.channels_last,
                        task=self.config.task)
        if preds.labels is None:
            raise ValueError(f"{data.name}: validation data needs targets y")
        return score_predictions(preds.outputs, preds.labels, self.config.task)

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "amp_dtype": _dtype_name(self.amp_dtype),
            "total_steps": self.total_steps,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.total_steps = int(state.get("total_steps", self.total_steps))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])


# ----------------------------------------------------------------------------------------------
# prediction
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Predictions:
    """Outputs of :func:`predict`, on the CPU in the data's row order.

    ``outputs`` are logits (``kind="logits"``) or regression predictions (``kind="pred"``);
    ``labels`` are the data's ``y`` (class indices or regression targets) or None; ``features``
    the model's "features" output when it returns one; ``index`` the row indices.
    """

    outputs: torch.Tensor
    labels: torch.Tensor | None
    features: torch.Tensor | None
    index: torch.Tensor
    kind: str

    @property
    def predicted_classes(self) -> torch.Tensor:
        if self.kind != "logits":
            raise ValueError("predicted_classes needs classification logits")
        return self.outputs.argmax(1)


@torch.no_grad()
def predict(model: nn.Module, data: TensorData, device: torch.device | str = "auto",
            amp: str | torch.dtype | None = "off", channels_last: bool = False,
            task: str | None = None) -> Predictions:
    """Run ``model`` over ``data`` in eval mode without gradients, batched, in the data's order.

    ``amp`` is a mode of :data:`AMP_MODES` (resolved for this device and the data's input side) or
    an autocast dtype. ``task`` picks "logits"/"pred" from dict outputs; None accepts either.
    The model's train/eval mode is restored afterwards.
    """
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    dtype = resolve_amp(amp, device, data.input_side) if isinstance(amp, str) else amp
    was_training = model.training
    model.eval()
    outs, feats, labels, index = [], [], [], []
    kind = None
    try:
        for batch in data.batches(device, train=False):
            x = batch["x"]
            if channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
                raw = model(x)
            if task is not None:
                out = model_outputs(raw, task)
            elif isinstance(raw, Mapping) and "pred" in raw and "logits" not in raw:
                out = model_outputs(raw, "regression")
            else:
                out = model_outputs(raw, "classification")
            key = "logits" if "logits" in out else "pred"
            kind = kind or key
            outs.append(out[key].cpu())
            if isinstance(out.get("features"), torch.Tensor):
                feats.append(out["features"].cpu())
            if "y" in batch:
                labels.append(batch["y"].cpu())
            index.append(batch["index"].cpu())
    finally:
        model.train(was_training)
    return Predictions(
        outputs=torch.cat(outs),
        labels=torch.cat(labels) if labels else None,
        features=torch.cat(feats) if feats else None,
        index=torch.cat(index),
        kind=kind or "logits",
    )


def evaluate(model: nn.Module, data: TensorData, task: str = "classification",
             device: torch.device | str = "auto", amp: str = "off") -> dict[str, float]:
    """Metrics of ``model`` on ``data`` (see :func:`score_predictions`)."""
    preds = predict(model, data, device, amp=amp, task=task)
    if preds.labels is None:
        raise ValueError(f"{data.name}: evaluation needs targets y")
    return score_predictions(preds.outputs, preds.labels, task)


# ----------------------------------------------------------------------------------------------
# fit: train-or-load, checkpoints, resume, logs
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    ``model`` carries the best weights (by ``monitor``) unless ``load_best=False`` or there is no
    validation data, then the final ones. ``history`` has one row per epoch: epoch, loss (total),
    task_loss, each extra term, train_accuracy (classification), val_<metric>..., lr (at the
    epoch's first step), seconds.
    """

    model: nn.Module
    history: pd.DataFrame
    run_dir: Path
    best_path: Path | None
    last_path: Path
    config_hash: str
    loaded_from_cache: bool
    best_epoch: int | None
    best_value: float | None
    monitor: str


def _model_signature(model: nn.Module) -> dict[str, Any]:
    shapes = [[name, list(p.shape)] for name, p in model.state_dict().items()]
    return {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        "shapes_sha256": hashlib.sha256(json.dumps(shapes).encode()).hexdigest()[:16],
    }


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _callable_source_sha(obj: Any) -> str:
    """Hash of the source of a function (partials and bound methods unwrapped; other callables:
    their class). Falls back to the compiled bytecode, then the qualified name."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    obj = getattr(obj, "__func__", obj)
    if not inspect.isfunction(obj) and not inspect.isclass(obj) and not inspect.isbuiltin(obj):
        obj = type(obj)
    try:
        return _sha256_text(inspect.getsource(obj))
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        if code is not None:
            return hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest()[:16]
        return _sha256_text(f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}")


def run_code_fingerprint(model: nn.Module, extra_terms: Mapping[str, LossTerm] | None = None) -> dict[str, Any]:
    """The code that produced a run, for its key (issue 12, "caches that notice code changes").

    Covers :func:`affectlab.config.code_fingerprint` of this module and of every ``affectlab``
    module defining one of the model's submodule classes (their source and, transitively, every
    package module they import: augmentation, losses, metrics, data containers, ...); the source of
    each model class defined outside ``affectlab`` and torch (notebooks, tests); the source of each
    extra loss term, wherever it is defined; and the versions of torch and of any other library a
    model class comes from (e.g. torchvision). Editing any of them gives a new run key, so an old
    run is not silently reloaded.
    """
    modules = {__name__}
    outside: dict[str, str] = {}
    libraries = {"torch": torch.__version__}
    for module in model.modules():
        cls = type(module)
        top = cls.__module__.split(".")[0]
        if top == "affectlab":
            modules.add(cls.__module__)
        elif top != "torch":
            version = getattr(sys.modules.get(top), "__version__", None)
            if version is not None:
                libraries[top] = str(version)
            else:
                outside[f"{cls.__module__}.{cls.__qualname__}"] = _callable_source_sha(cls)
    return {
        "affectlab": package_code_fingerprint(*sorted(modules)),
        "model_classes": dict(sorted(outside.items())),
        "extra_terms": {name: _callable_source_sha(term) for name, term in (extra_terms or {}).items()},
        "libraries": libraries,
    }


def run_description(model: nn.Module, train_data: TensorData, val_data: TensorData | None, config: TrainConfig,
                    key: Mapping[str, Any] | None, extra_terms: Mapping[str, LossTerm] | None) -> dict[str, Any]:
    """Everything the configuration hash covers (saved as config.json), including
    :func:`run_code_fingerprint`."""
    description = {
        "train": config.hashed(),
        "key": dict(key or {}),
        "model": _model_signature(model),
        "extra_terms": list(extra_terms or {}),
        "train_data": train_data.describe(),
        "val_data": None if val_data is None else val_data.describe(),
        "code": run_code_fingerprint(model, extra_terms),
    }
    try:
        config_to_json(description)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"fit key must hold only JSON-serialisable values (str, numbers, lists, dicts): {exc}") from None
    return description


def _write_history_csv(history: list[dict[str, Any]], path: Path) -> None:
    columns: list[str] = []
    for row in history:
        columns += [c for c in row if c not in columns]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, path)


def _history_frame(history: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(history) if history else pd.DataFrame(columns=["epoch"])


def fit(
    model: nn.Module,
    train_data: TensorData,
    val_data: TensorData | None = None,
    config: TrainConfig | None = None,
    *,
    key: Mapping[str, Any] | None = None,
    name: str = "run",
    device: torch.device | str = "auto",
    extra_terms: Mapping[str, LossTerm] | None = None,
    run_dir: str | os.PathLike | None = None,
    load_best: bool = True,
    retrain: bool = False,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``train_data`` (validating on ``val_data`` each epoch), or load the result.

    Train-or-load: the run lives in ``run_dir`` (default ``default_runs_dir() / f"{name}-{hash}"``).
    If its ``last.pt`` is finished the weights are loaded, not retrained; if unfinished, training
    resumes from it (model, optimiser, schedule, scaler, epoch and RNG states: torch, NumPy,
    Python, data shuffling, budget plan, autocast precision) and ends bit-identical to an
    uninterrupted run on CPU. ``retrain=True`` discards an existing run. A ``last.pt``/``best.pt``
    that cannot be read raises :class:`CorruptCheckpointError` naming the file and the way out
    (``retrain=True`` or deleting the run folder).

    With ``config.budget_s`` training stops when the measured budget is spent (see
    :class:`BudgetPlan`); the last epoch may be partial (history column ``steps``). Progress: one
    tqdm bar for the run (step count, ETA, epoch and loss) and one line per epoch, on stderr, when
    ``config.progress`` (papermill's captured stdout stays clean).

    Each epoch writes ``last.pt`` (atomic), ``best.pt`` when ``config.monitor_metric`` improves,
    ``history.csv`` and TensorBoard scalars (``tb/``); ``config.json`` holds the hashed description.
    ``extra_terms`` maps names to ``term(outputs, batch, epoch) -> weighted scalar``; with SAM each
    term is called twice per step. ``on_epoch_end(epoch, row)`` runs after the checkpoints.
    Raises :class:`NonFiniteLossError` on a NaN/inf loss, naming the epoch and step.
    """
    config = config or TrainConfig()
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"config must be a TrainConfig; got {type(config).__name__}")
    if not isinstance(train_data, TensorData) or (val_data is not None and not isinstance(val_data, TensorData)):
        raise TypeError("train_data and val_data must be TensorData (see from_faceset)")
    if train_data.y is None:
        raise ValueError(f"{train_data.name}: training data needs targets y")
    if config.target == "soft" and train_data.soft is None:
        raise ConfigError(f"TrainConfig.target='soft' but {train_data.name} has no soft targets")
    if config.task == "classification" and train_data.y.is_floating_point() and config.target == "hard":
        raise ConfigError(f"TrainConfig.task='classification' but {train_data.name}.y is float; "
                          "use task='regression' or integer class labels")
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    description = run_description(model, train_data, val_data, config, key, extra_terms)
    run_hash = config_hash(description)
    run_dir = Path(run_dir) if run_dir is not None else default_runs_dir() / f"{name}-{run_hash}"
    run_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    monitor = config.monitor_metric

    def read_checkpoint(path: Path) -> dict[str, Any]:
        try:
            return load_checkpoint(path)
        except (RuntimeError, OSError, EOFError) as exc:
            raise CorruptCheckpointError(
                f"{path} is corrupt or unreadable ({exc}). Retrain with fit(..., retrain=True) or delete the run "
                f"folder {run_dir}") from exc

    steps_per_epoch = train_data.num_batches(train=True)
    if steps_per_epoch == 0:
        raise ValueError(f"{train_data.name}: no full batch of {train_data.batch_size} (drop_last=True, "
                         f"{train_data.num_samples} samples)")
    if config.steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)

    state: dict[str, Any] | None = None
    if retrain or not last_path.exists():  # a fresh run: nothing of an earlier attempt may survive
        for stale in (last_path, best_path, run_dir / "history.csv"):
            stale.unlink(missing_ok=True)
    else:
        state = read_checkpoint(last_path)
        if state["config_hash"] != run_hash:
            raise ConfigError(f"run dir {run_dir} holds a run with config hash {state['config_hash']}, this fit has "
                              f"{run_hash}; use another run_dir or retrain=True")
    history: list[dict[str, Any]] = list(state["history"]) if state else []
    best = dict(state["best"]) if state else {"epoch": None, "value": None}

    if state is not None and state["finished"]:
        use_best = load_best and best_path.exists()
        weights = read_checkpoint(best_path)["model"] if use_best else state["model"]
        model = model.to(device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.load_state_dict(weights)
        return FitResult(model, _history_frame(history), run_dir, best_path if best_path.exists() else None,
                         last_path, run_hash, True, best["epoch"], best["value"], monitor)

    seed_everything(config.seed, deterministic=config.deterministic)
    train_data.seed(config.seed)
    setup_start = _now()  # a fresh budgeted run counts its setup (e.g. the bf16 probe) into the budget
    example = None
    if state is None and config.amp == "auto" and train_data.x.ndim == 4:
        generator = torch.Generator().manual_seed(0)
        example = torch.rand((train_data.batch_size, *train_data.output_shape), generator=generator)
    trainer = Trainer(model, config, device=device, steps_per_epoch=steps_per_epoch,
                      input_side=train_data.input_side, extra_terms=extra_terms, example_input=example,
                      amp_dtype=None if state is None else state.get("amp_dtype"))
    plan = None if config.budget_s is None else BudgetPlan(config.budget_s, config.epochs * steps_per_epoch)
    if plan is not None:
        trainer.total_steps = plan.planned_steps
        if state is None:
            plan.record_overhead(_now() - setup_start)
    if state is not None:
        trainer.load_state_dict(state)
        train_data.load_state_dict(state["data"])
        restore_rng_state(state["rng"])
        if plan is not None:
            plan.load_state_dict(state["budget"])
            trainer.total_steps = plan.planned_steps
    description_json = config_to_json(description)
    (run_dir / "config.json").write_text(json.dumps({"config_hash": run_hash, **json.loads(description_json)}, indent=2))

    writer = None
    if config.tensorboard:
        from torch.utils.tensorboard import SummaryWriter  # imported here: slow import, optional

        writer = SummaryWriter(log_dir=str(run_dir / "tb"))
    done_steps = trainer.scheduler.last_epoch
    bar = tqdm(total=trainer.total_steps, initial=done_steps, desc=name, unit="step", file=sys.stderr,
               disable=not config.progress, dynamic_ncols=True)
    try:
        for epoch in range(trainer.epoch + 1, config.epochs + 1):
            start = time.perf_counter()
            lr = trainer.scheduler.get_last_lr()[0]
            bar.set_description(f"{name} epoch {epoch}/{config.epochs}" if plan is None else
                                f"{name} epoch {epoch} (budget {config.budget_s:.0f} s)")
            row: dict[str, Any] = {"epoch": epoch, **trainer.train_epoch(train_data, epoch, plan=plan, bar=bar)}
            if val_data is not None:
                eval_start = _now()
                row.update({f"val_{k}": v for k, v in trainer.evaluate(val_data).items()})
                if plan is not None:
                    plan.record_overhead(_now() - eval_start)
                    trainer.total_steps = bar.total = plan.planned_steps
            row["lr"] = lr
            row["seconds"] = time.perf_counter() - start
            history.append(row)
            trainer.epoch = epoch
            finished = epoch == config.epochs or (plan is not None and plan.exhausted)
            if val_data is not None:
                value = row[f"val_{monitor}"]
                better = best["value"] is None or (value > best["value"] if HIGHER_IS_BETTER[monitor]
                                                   else value < best["value"])
                if better and math.isfinite(value):
                    best = {"epoch": epoch, "value": float(value)}
                    save_checkpoint({"format": CHECKPOINT_FORMAT, "config_json": description_json,
                                     "config_hash": run_hash, "epoch": epoch, "monitor": monitor,
                                     "value": float(value), "model": trainer.model.state_dict()}, best_path)
            save_checkpoint({"format": CHECKPOINT_FORMAT, "config_json": description_json, "config_hash": run_hash,
                             "finished": finished, "history": history, "best": best,
                             "budget": None if plan is None else plan.state_dict(),
                             "data": train_data.state_dict(), "rng": capture_rng_state(), **trainer.state_dict()},
                            last_path)
            _write_history_csv(history, run_dir / "history.csv")
            if writer is not None:
                for column, value in row.items():
                    if column != "epoch":
                        writer.add_scalar(column, value, epoch)
                writer.flush()
            if config.progress:
                tqdm.write(f"{name} epoch {epoch}: " + ", ".join(
                    f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"), file=sys.stderr)
            if on_epoch_end is not None:
                on_epoch_end(epoch, row)
            if finished:
                break
    finally:
        bar.close()
        if writer is not None:
            writer.close()

    if load_best and best_path.exists():
        trainer.model.load_state_dict(read_checkpoint(best_path)["model"])
    return FitResult(trainer.model, _history_frame(history), run_dir, best_path if best_path.exists() else None,
                     last_path, run_hash, False, best["epoch"], best["value"], monitor)


# ----------------------------------------------------------------------------------------------
# the fast FER recipe (issue 13): what chapters use in their quick profile
# ----------------------------------------------------------------------------------------------

FER_RECIPE_AUGMENT = AugmentConfig(crop_padding=4, crop_padding_mode="replicate", hflip_p=0.5)
FER_RECIPE_BATCH_SIZE = 128


def fer_recipe(budget_s: float | None = 480.0, epochs: int | None = None, *, seed: int = 0,
               **changes: Any) -> TrainConfig:
    """The project's fast FER training recipe on CPU, as a :class:`TrainConfig` (issue 13).

    Measured on 2 CPU cores by ``benchmarks/time_to_accuracy.py`` against a plain PyTorch script
    (README, "Training speed on this CPU"): AdamW (lr 2e-3, weight decay 0.01), a one-cycle
    schedule (25% half-cosine warm-up from lr/25, cosine to 0) laid out over the *wall-clock
    budget* (``budget_s``; the trainer measures its steps and plans how many fit), label smoothing
    0.05, no gradient clipping, channels-last, and amp="auto" (bf16 autocast only where the CPU has
    native bf16 and a probe measures it faster). Pair it with :func:`fer_recipe_data` (uint8
    images in memory, batch 128, flip + 4-px replicate-pad crop on whole batches) and
    :func:`fer_recipe_model` (torchvision ResNet-18, 48 px grey repeated to 3 channels).

    Args:
        budget_s: wall-clock training budget in seconds, or None to train ``epochs`` epochs.
        epochs: epochs to train without a budget, or the cap with one (default: no practical cap).
        seed: the run's seed.
        changes: any other :class:`TrainConfig` field (e.g. ``progress=False``, ``target="soft"``).

    Example (a chapter's quick profile)::

        config = fer_recipe(budget_s=120, seed=seed, progress=False)
        result = fit(fer_recipe_model(8), fer_recipe_data(train_faces), None, config, key=..., name="b0")
    """
    if budget_s is None and epochs is None:
        raise ConfigError("fer_recipe needs budget_s (seconds) or epochs (or both: budget with an epoch cap)")
    base: dict[str, Any] = dict(
        epochs=epochs if epochs is not None else 1000, budget_s=budget_s, lr=2e-3, weight_decay=0.01,
        schedule="onecycle", warmup_fraction=0.25, min_lr_ratio=0.0, grad_clip=None, label_smoothing=0.05,
        amp="auto", channels_last=True, seed=seed, tensorboard=False)
    base.update(changes)
    return TrainConfig(**base)


def fer_recipe_data(faces: FaceSet, *, train: bool = True, batch_size: int = FER_RECIPE_BATCH_SIZE,
                    side: int | None = None, soft: bool = False, **data_kwargs: Any) -> TensorData:
    """The recipe's data: a FaceSet's uint8 images kept in memory, converted per batch to float in
    [0, 1], repeated to 3 channels, resized only when ``side`` differs, and (``train=True``)
    augmented per batch with :data:`FER_RECIPE_AUGMENT`; unknown labels (-1) dropped."""
    return from_faceset(
        faces, soft=soft, batch_size=batch_size, shuffle=train, drop_last=train, channels=3,
        resize=side if side is not None and side != min(faces.images.shape[-2:]) else None,
        augment=BatchAugment(FER_RECIPE_AUGMENT) if train else None, **data_kwargs)


def fer_recipe_model(num_classes: int = 8) -> nn.Module:
    """The recipe's network: torchvision ResNet-18 (weights=None) with ``num_classes`` outputs.

    The standard stem (7x7 stride-2 conv + max-pool) is kept at 48 px: dropping the max-pool gives
    24x24 instead of 12x12 maps to every residual stage, four times their multiply-adds per image,
    which a CPU budget cannot afford (``benchmarks/train_throughput.py --candidates`` times it)."""
    import torchvision  # imported here: only the recipe needs it

    return torchvision.models.resnet18(weights=None, num_classes=num_classes)
