"""Chapter 02 training (Table 1): NN1 and NN2 trained on FER2013 through :func:`affectlab.train.fit`
(train-or-load; quick profile: the project's fast FER recipe over a wall-clock budget), their
BatchNorm statistics recalibrated after a short run, NN3 = NN1's untrained initial weights with the
same recalibration, and the mini-Xception stand-in; paper 001, Sec. 3 (the paper states no recipe:
ours is in :class:`~affectlab.chapters.hierarchy.config.ChapterConfig`)."""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from torch import nn

from affectlab.augment import AugmentConfig, BatchAugment
from affectlab.config import RunConfig, config_hash
from affectlab.data.sets import FaceSet
from affectlab.models.sharma_cnn import KERAS_BN_MOMENTUM, SHARMA_VARIANTS, prepare_sharma_input
from affectlab.train import (
    FER_RECIPE_AUGMENT,
    FitResult,
    TrainConfig,
    cpu_has_native_bf16,
    fer_recipe,
    fit,
    from_faceset,
    probe_cpu_bf16,
)

from .config import CHAPTER, ChapterConfig
from .data import FERData
from .networks import ProbedNetwork, minixception_network, sharma_initial_model, sharma_network


def sharma_train_config(variant: str, cfg: ChapterConfig, seed: int) -> TrainConfig:
    """The :class:`~affectlab.train.TrainConfig` of NN1 or NN2: ``cfg.recipe == "fast"`` ->
    :func:`affectlab.train.fer_recipe` with ``cfg.budget_s[variant]`` seconds (or ``cfg.epochs``
    epochs without a budget), batch ``cfg.batch_size``, a validation every ``cfg.steps_per_epoch``
    steps, best epoch by accuracy; "paper" -> Adam(W) at ``cfg.lr`` with a cosine schedule over
    ``cfg.epochs`` epochs, fp32."""
    common = dict(steps_per_epoch=cfg.steps_per_epoch, monitor="accuracy", seed=seed, progress=False,
                  tensorboard=True)
    if cfg.recipe == "fast":
        budget = None if cfg.budget_s is None else float(cfg.budget_s[variant])
        return fer_recipe(budget_s=budget, epochs=cfg.epochs, **common)
    return TrainConfig(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, schedule="cosine",
                       grad_clip=None, label_smoothing=cfg.label_smoothing, amp="off", channels_last=True, **common)


def train_sharma(variant: str, fer: FERData, cfg: ChapterConfig, run: RunConfig, retrain: bool = False) -> FitResult:
    """Train (or load the finished run of) NN1 or NN2 on FER2013 with :func:`affectlab.train.fit`.

    Cross-entropy on the Keras-initialised Sharma CNN (initial weights from the run's seed),
    inputs pixels / 255 (Sharma's only preprocessing), the recipe of :func:`sharma_train_config`,
    BatchNorm momentum ``cfg.batchnorm_momentum`` while training, the best epoch by validation
    accuracy (Table 1 reports accuracy). With the fast recipe, the training faces are flipped and
    shifted (the recipe's augmentation); with the paper recipe, ``cfg.augment`` decides.
    ``retrain=True`` discards a finished run with the same key and trains again
    (:func:`paper_dry_run` always takes real steps). A freshly trained run stores the trainer's
    bf16-vs-fp32 probe of this model as ``amp_probe.json`` beside its checkpoint
    (:func:`amp_probe_of`).
    """
    if variant not in ("NN1", "NN2"):
        raise ValueError(f"train_sharma trains 'NN1' or 'NN2'; got {variant!r} (NN3 stays untrained)")
    if cfg.recipe == "fast":
        augment = BatchAugment(FER_RECIPE_AUGMENT)
    else:
        augment = (BatchAugment(AugmentConfig(crop_padding=2, crop_padding_mode="reflect", hflip_p=0.5))
                   if cfg.augment else None)
    train = from_faceset(fer.train[variant], batch_size=cfg.batch_size, augment=augment,
                         name=f"fer2013/train-{variant}")
    val = from_faceset(fer.val[variant], batch_size=256, shuffle=False, name=f"fer2013/public_test-{variant}")
    config = sharma_train_config(variant, cfg, run.seed)
    key = {"chapter": CHAPTER, "role": "sharma", "variant": variant, "init_seed": run.seed,
           "classes": list(SHARMA_VARIANTS[variant]), "batchnorm_momentum": cfg.batchnorm_momentum,
           "recipe": cfg.recipe}
    model = sharma_initial_model(variant, run.seed)
    if cfg.batchnorm_momentum is not None:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = cfg.batchnorm_momentum
    probe = None
    if config.amp == "auto" and run.device.type == "cpu" and cpu_has_native_bf16():
        # the trainer's own probe (cached per process, so fit reuses it): recorded for the chapter
        probe = probe_cpu_bf16(model, torch.zeros(cfg.batch_size, 1, 48, 48), channels_last=config.channels_last)
    result = fit(model, train, val, config, key=key, name=f"ch02-{variant}-s{run.seed}", device=run.device,
                 retrain=retrain)
    if retrain and not result.loaded_from_cache:  # statistics recalibrated for discarded weights must go
        for stale in result.run_dir.glob("batchnorm-*.pt"):
            stale.unlink()
    if not result.loaded_from_cache:
        note = probe if probe is not None else {"use_bf16": config.amp == "bf16", "speedup": None,
                                                "reason": f"amp={config.amp!r} on {run.device.type}"}
        tmp = result.run_dir / f".amp_probe.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(note))
        os.replace(tmp, result.run_dir / "amp_probe.json")
    for module in result.model.modules():  # back to Keras's momentum for anything done later
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = KERAS_BN_MOMENTUM
    return result


def amp_probe_of(result: FitResult) -> dict | None:
    """The bf16-vs-fp32 probe stored by :func:`train_sharma` beside a run (``fp32_s``/``bf16_s``
    seconds per training step of the batch, ``speedup``, ``use_bf16``), or None when absent."""
    path = result.run_dir / "amp_probe.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


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


def recalibration_rows(faces: FaceSet, cfg: ChapterConfig, seed: int) -> np.ndarray:
    """The training faces (row indices, sorted) whose activations set the BatchNorm statistics:
    ``cfg.batchnorm_recalibration`` of them, a seeded random choice; the same rows for a trained
    network and its untrained control."""
    n = min(int(cfg.batchnorm_recalibration or 0), len(faces))
    return np.sort(np.random.default_rng(seed).choice(len(faces), n, replace=False))


def untrained_sharma(variant: str, fer: FERData, cfg: ChapterConfig, seed: int) -> nn.Module:
    """The Sharma CNN ``variant`` with its initial weights (seed ``seed``), untrained, with the same
    BatchNorm treatment as the trained networks: when ``cfg.batchnorm_recalibration`` is set, its
    statistics are recalibrated on the same training faces (of NN1's classes for NN1/NN3), so an
    untrained control differs from its trained twin by training alone, not by stale statistics."""
    model = sharma_initial_model(variant, seed).eval()
    if cfg.batchnorm_recalibration is not None:
        faces = fer.train["NN2" if variant == "NN2" else "NN1"]
        recalibrate_batchnorm(model, prepare_sharma_input(faces.images[recalibration_rows(faces, cfg, seed)]))
    return model


def _recalibrated(result: FitResult, faces: FaceSet, cfg: ChapterConfig, seed: int) -> nn.Module:
    """``result.model`` with BatchNorm statistics recalibrated on ``cfg.batchnorm_recalibration``
    training faces (:func:`recalibration_rows`), cached beside the checkpoint."""
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
    recalibrate_batchnorm(model, prepare_sharma_input(faces.images[recalibration_rows(faces, cfg, seed)]))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if k in buffers}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return model


def build_networks(fer: FERData, cfg: ChapterConfig, run: RunConfig, retrain: bool = False
                   ) -> tuple[dict[str, ProbedNetwork], dict[str, str]]:
    """NN1 and NN2 trained on FER2013 (train-or-load), NN3 = NN1's architecture with NN1's initial
    weights left untrained (the paper's control), and mini-Xception when its weights are found.
    NN1, NN2 and NN3 get their BatchNorm statistics recalibrated on the same training faces when
    ``cfg.batchnorm_recalibration`` is set (:func:`recalibrate_batchnorm`, :func:`untrained_sharma`).

    Returns the networks by name and notes (e.g. why mini-Xception is missing).
    """
    nets: dict[str, ProbedNetwork] = {}
    notes: dict[str, str] = {}
    data_note = "FER2013" if fer.real else "generated FER2013 stand-in"
    for variant in ("NN1", "NN2"):
        result = train_sharma(variant, fer, cfg, run, retrain=retrain)
        n_train = len(fer.train[variant])
        model = _recalibrated(result, fer.train[variant], cfg, run.seed)
        nets[variant] = sharma_network(
            variant, model.to(run.device),
            f"{variant}: Sharma CNN, {len(SHARMA_VARIANTS[variant])} classes, trained on {n_train} {data_note} "
            f"faces, best epoch {result.best_epoch} of {len(result.history)}", result)
        notes[variant] = ("loaded finished run " if result.loaded_from_cache else "trained ") + str(result.run_dir)
    recal = (f", BatchNorm statistics recalibrated on {cfg.batchnorm_recalibration} training faces like NN1's"
             if cfg.batchnorm_recalibration is not None else "")
    nets["NN3"] = sharma_network("NN3", untrained_sharma("NN3", fer, cfg, run.seed).to(run.device),
                                 f"NN3: NN1's architecture and initial weights (seed {run.seed}), untrained{recal}")
    notes["NN3"] = "untrained control: NN1's initial weights" + recal
    mx, notes["mini-Xception"] = minixception_network(run)
    if mx is not None:
        nets["mini-Xception"] = mx
    return nets, notes


def training_steps(cfg: ChapterConfig, n_train: int, result: FitResult | None = None) -> int:
    """Optimiser steps of one Sharma network: those ``result`` took (the sum of its history's
    per-epoch "steps") when given, else the plan without a budget: epochs x batches per epoch
    (capped by ``steps_per_epoch``; the last incomplete batch is dropped). With a wall-clock budget
    the count is only known after training: pass ``result``."""
    if result is not None and "steps" in result.history and len(result.history):
        return int(result.history["steps"].sum())
    per_epoch = max(n_train // cfg.batch_size, 1)
    return cfg.epochs * (min(per_epoch, cfg.steps_per_epoch) if cfg.steps_per_epoch else per_epoch)
