"""Chapter 02 training (Table 1): NN1 and NN2 trained on FER2013 through :func:`affectlab.train.fit`
(train-or-load), their BatchNorm statistics recalibrated after a short run, NN3 = NN1's untrained
initial weights, and the mini-Xception stand-in; paper 001, Sec. 3 (the paper states no recipe:
ours is in :class:`~affectlab.chapters.hierarchy.config.ChapterConfig`)."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from affectlab.augment import AugmentConfig, BatchAugment
from affectlab.config import RunConfig, config_hash
from affectlab.data.sets import FaceSet
from affectlab.models.sharma_cnn import KERAS_BN_MOMENTUM, SHARMA_VARIANTS, prepare_sharma_input
from affectlab.train import FitResult, TrainConfig, fit, from_faceset

from .config import CHAPTER, ChapterConfig
from .data import FERData
from .networks import ProbedNetwork, minixception_network, sharma_initial_model, sharma_network


def train_sharma(variant: str, fer: FERData, cfg: ChapterConfig, run: RunConfig, retrain: bool = False) -> FitResult:
    """Train (or load the finished run of) NN1 or NN2 on FER2013 with :func:`affectlab.train.fit`.

    Cross-entropy on the Keras-initialised Sharma CNN (initial weights from the run's seed),
    inputs pixels / 255 (Sharma's only preprocessing), Adam (AdamW with ``cfg.weight_decay``) with
    a cosine schedule, BatchNorm momentum ``cfg.batchnorm_momentum`` while training, the best epoch
    by validation accuracy (Table 1 reports accuracy). ``retrain=True`` discards a finished run with
    the same key and trains again (:func:`paper_dry_run` always takes real steps).
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
    model = sharma_initial_model(variant, run.seed)
    if cfg.batchnorm_momentum is not None:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = cfg.batchnorm_momentum
    result = fit(model, train, val, config, key=key, name=f"ch02-{variant}-s{run.seed}", device=run.device,
                 retrain=retrain)
    if retrain and not result.loaded_from_cache:  # statistics recalibrated for discarded weights must go
        for stale in result.run_dir.glob("batchnorm-*.pt"):
            stale.unlink()
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


def build_networks(fer: FERData, cfg: ChapterConfig, run: RunConfig, retrain: bool = False
                   ) -> tuple[dict[str, ProbedNetwork], dict[str, str]]:
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
        result = train_sharma(variant, fer, cfg, run, retrain=retrain)
        n_train = len(fer.train[variant])
        model = _recalibrated(result, fer.train[variant], cfg, run.seed)
        nets[variant] = sharma_network(
            variant, model.to(run.device),
            f"{variant}: Sharma CNN, {len(SHARMA_VARIANTS[variant])} classes, trained on {n_train} {data_note} "
            f"faces, best epoch {result.best_epoch} of {cfg.epochs}", result)
        notes[variant] = ("loaded finished run " if result.loaded_from_cache else "trained ") + str(result.run_dir)
    nets["NN3"] = sharma_network("NN3", sharma_initial_model("NN3", run.seed).to(run.device),
                                 f"NN3: NN1's architecture and initial weights (seed {run.seed}), untrained")
    notes["NN3"] = "untrained control: NN1's initial weights"
    mx, notes["mini-Xception"] = minixception_network(run)
    if mx is not None:
        nets["mini-Xception"] = mx
    return nets, notes


def training_steps(cfg: ChapterConfig, n_train: int) -> int:
    """Optimiser steps of one Sharma network: epochs x batches per epoch (capped by
    ``steps_per_epoch``; the last incomplete batch is dropped)."""
    per_epoch = max(n_train // cfg.batch_size, 1)
    return cfg.epochs * (min(per_epoch, cfg.steps_per_epoch) if cfg.steps_per_epoch else per_epoch)
