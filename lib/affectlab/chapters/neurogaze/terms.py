"""Chapter 01 loss terms (Sec. 4.3, Algorithm 2): logit KD, Proto-KD against the frozen bank and the
late-activated D-Geo prior, composed per variant by :func:`variant_terms`. The task loss (CE with
label smoothing and class weights) is the trainer's; these are its extra terms.
"""

from __future__ import annotations


import numpy as np
import torch

from affectlab.data.taxonomy import FERPLUS_CLASSES
from affectlab.losses import dgeo_loss, dgeo_weight, kd_logit_loss, proto_kd_loss
from affectlab.train import LossTerm

from .config import VARIANT_TERMS, VARIANTS, ChapterConfig, DGeoParams

__all__ = ["variant_terms"]


def _kd_term(weight: float, temperature: float, kind: str, teacher: torch.nn.Module | None) -> LossTerm:
    """``weight * KD(z_s, z_t; T)`` (Alg. 2 line 7): teacher logits from the batch's
    "teacher_logits" (cached) or from ``teacher(batch["x"])`` (live, no gradient)."""

    def kd(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], epoch: int) -> torch.Tensor:
        if teacher is None:
            if "teacher_logits" not in batch:
                raise ValueError("KD term: the batch has no 'teacher_logits' (build the data with cached logits)")
            target = batch["teacher_logits"]
        else:
            was_training = teacher.training
            teacher.eval()
            with torch.no_grad():
                target = teacher(batch["x"])["logits"].float()
            teacher.train(was_training)
        return weight * kd_logit_loss(outputs["logits"], target, T=temperature, kind=kind)

    return kd


def _proto_term(weight: float, tau: float, prototypes: torch.Tensor, prior: torch.Tensor) -> LossTerm:
    """``weight * KL(q_pro || softmax(cos(f, P) / tau))`` (Alg. 2 line 11) against the frozen bank."""

    def proto_kd(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], epoch: int) -> torch.Tensor:
        feats = outputs["features"]
        return weight * proto_kd_loss(feats, prototypes.to(feats.device), prior.to(feats.device), tau=tau)

    return proto_kd


def _dgeo_term(cfg: ChapterConfig, params: DGeoParams, steps_per_epoch: int | None = None) -> LossTerm:
    """``lambda_geo * s_geo(t) * (alpha_var L_var + alpha_mar L_margin)`` (Alg. 2 lines 12-14), zero
    (and not computed) before the scaled late window.

    With ``steps_per_epoch`` the ramp advances per optimiser step: the k-th call of epoch e (the
    trainer counts epochs from 1) uses ``t = e - 1 + k / steps_per_epoch``, so the last step of
    epoch e sees ``t = e``. Without it the whole of epoch e uses ``t = e``.
    """
    positives = [FERPLUS_CLASSES.index(c) for c in cfg.positive_classes]
    if steps_per_epoch is not None and (isinstance(steps_per_epoch, bool) or steps_per_epoch < 1):
        raise ValueError(f"parameter steps_per_epoch must be an int >= 1 or None; got {steps_per_epoch!r}")
    state = {"epoch": None, "step": 0}

    def progress(epoch: int) -> float:
        if steps_per_epoch is None:
            return float(epoch)
        if state["epoch"] != epoch:
            state["epoch"], state["step"] = epoch, 0
        state["step"] = min(state["step"] + 1, steps_per_epoch)
        return epoch - 1 + state["step"] / steps_per_epoch

    def dgeo(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], epoch: int) -> torch.Tensor:
        feats = outputs["features"]
        w = dgeo_weight(progress(epoch), cfg.epochs, cfg.geo_weight, cfg.geo_start, cfg.geo_end,
                        cfg.geo_paper_epochs)
        if w == 0.0:
            return feats.new_zeros(())
        return w * dgeo_loss(feats, batch["y"], positives, params.sigma_max, params.margin,
                             params.alpha_var, params.alpha_mar)

    return dgeo


def variant_terms(
    variant: str,
    cfg: ChapterConfig,
    prototypes: np.ndarray | torch.Tensor | None = None,
    prior: np.ndarray | torch.Tensor | None = None,
    dgeo: DGeoParams | None = None,
    teacher: torch.nn.Module | None = None,
    steps_per_epoch: int | None = None,
) -> dict[str, LossTerm]:
    """The extra loss terms of ``variant`` (CE with label smoothing and class weights is the
    trainer's task loss): exactly :data:`VARIANT_TERMS` [variant]. KD uses T = ``kd_temperature``
    (5) except "Full" (``full_kd_temperature``, 1). ``teacher`` given = live KD, else cached
    logits from the batch; ``steps_per_epoch`` makes D-Geo's ramp advance per step. Missing
    ingredients for a term raise a clear error."""
    if variant not in VARIANT_TERMS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
    terms: dict[str, LossTerm] = {}
    for name in VARIANT_TERMS[variant]:
        if name == "kd":
            temperature = cfg.full_kd_temperature if variant == "Full" else cfg.kd_temperature
            terms["kd"] = _kd_term(cfg.kd_weight, temperature, cfg.kd_kind, teacher)
        elif name == "proto_kd":
            if prototypes is None or prior is None:
                raise ValueError(f"variant {variant} needs the prototype bank (prototypes and prior)")
            terms["proto_kd"] = _proto_term(cfg.proto_weight, cfg.proto_tau,
                                            torch.as_tensor(np.asarray(prototypes), dtype=torch.float32),
                                            torch.as_tensor(np.asarray(prior), dtype=torch.float32))
        elif name == "dgeo":
            if dgeo is None:
                raise ValueError(f"variant {variant} needs D-Geo parameters (DGeoParams)")
            terms["dgeo"] = _dgeo_term(cfg, dgeo, steps_per_epoch)
    return terms

