"""Training losses of the book's papers (torch; every function is differentiable and batched).

NeuroGaze-Distill (paper 000, Sec. 4.3 and Algorithm 2):
    :func:`label_smoothed_ce` (CE with label smoothing and class weights), :func:`kd_logit_loss`
    (logit KD at temperature T: MSE of scaled logits, MSE of softened
    distributions, or KL), :func:`proto_kd_loss` with :func:`prototype_targets`
    (Proto-KD), :func:`dgeo_loss` / :func:`dgeo_terms` with :func:`dgeo_weight` (D-Geo and its late
    cosine schedule).
POSTER-Var (paper 003) / FERPlus (Barsoum et al. 2016): :func:`soft_target_ce` (vote distributions
    as targets).
EEG2Face (paper 002, Sec. 3.0.7): :func:`info_nce_loss` (one-sided InfoNCE, L_Info) and
    :func:`vertex_loss` (L_vertex).

Every loss averages over the batch (mean), where Algorithm 2 writes sums over the minibatch: the
two differ by the constant batch size, which the loss weights absorb.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "label_smoothed_ce",
    "soft_target_ce",
    "KD_KINDS",
    "kd_logit_loss",
    "prototype_targets",
    "proto_kd_loss",
    "dgeo_terms",
    "dgeo_loss",
    "dgeo_weight",
    "info_nce_loss",
    "vertex_loss",
]


def _check_logits(logits: torch.Tensor, name: str = "logits") -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"parameter {name} must be a (batch, classes) tensor; got {shape}")


def _check_distribution(dist: torch.Tensor, name: str) -> None:
    if (dist < 0).any():
        raise ValueError(f"parameter {name} must be non-negative (a probability distribution)")
    worst = float((dist.sum(dim=-1) - 1).abs().max())
    if worst > 1e-4:
        raise ValueError(f"rows of {name} must sum to 1; the worst row is off by {worst:.3g}")


# ----------------------------------------------------------------------------------------------
# classification
# ----------------------------------------------------------------------------------------------


def label_smoothed_ce(
    logits: torch.Tensor,
    target: torch.Tensor,
    smoothing: float,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """CE with label smoothing and class weights (paper 000 Sec. 4.3 "CE (LS+CW)", Alg. 2 line 4).

    The smoothed target is ``y~ = (1 - a) onehot(y) + a / K`` (Szegedy et al. 2016; a = 0.055 in
    the paper). With class weights ``w`` we follow ``torch.nn.functional.cross_entropy``: per
    sample ``(1 - a) w_y (-log p_y) + (a / K) sum_c w_c (-log p_c)``, summed over the batch and
    divided by ``sum_i w_{y_i}``. Equals ``F.cross_entropy(logits, target, weight=class_weights,
    label_smoothing=smoothing)``.
    """
    _check_logits(logits)
    if target.ndim != 1 or len(target) != len(logits) or target.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"parameter target must be int64 class indices of shape ({len(logits)},); got "
            f"{target.dtype} {tuple(target.shape)}"
        )
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"parameter smoothing must be in [0, 1); got {smoothing}")
    k = logits.shape[1]
    if int(target.min()) < 0 or int(target.max()) >= k:
        raise ValueError(f"parameter target must hold class indices in 0..{k - 1}")
    target = target.long()
    w = class_weights if class_weights is not None else torch.ones(k, dtype=logits.dtype)
    if w.shape != (k,):
        raise ValueError(f"parameter class_weights must have shape ({k},); got {tuple(w.shape)}")
    w = w.to(dtype=logits.dtype, device=logits.device)
    logp = F.log_softmax(logits, dim=1)
    w_y = w[target]
    nll = -(logp.gather(1, target[:, None]).squeeze(1)) * w_y
    smooth = -(logp * w).sum(dim=1) / k
    return ((1 - smoothing) * nll + smoothing * smooth).sum() / w_y.sum()


def soft_target_ce(logits: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a target distribution: mean over the batch of ``-sum_c q_c log p_c``.

    The FERPlus "cross-entropy loss" training scheme (Barsoum et al. 2016): ``q`` is the
    crowd-vote distribution (votes / 10). POSTER-Var (paper 003, "Experiment details" and Table 1,
    "CE + KL") pairs it with a KL term; CE and KL to ``q`` differ only by the entropy of ``q``.
    """
    _check_logits(logits)
    if soft.shape != logits.shape:
        raise ValueError(
            f"parameter soft must have the shape of logits {tuple(logits.shape)}; got {tuple(soft.shape)}"
        )
    _check_distribution(soft, "soft")
    return -(soft.to(logits.dtype) * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


KD_KINDS: tuple[str, ...] = ("mse_logits", "mse_probs", "kl")


def kd_logit_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    T: float = 5.0,
    kind: str = "mse_logits",
) -> torch.Tensor:
    """Logit distillation at temperature ``T`` (paper 000 Sec. 4.3 "Logit distillation", Alg. 2 l. 7).

    The authors' released configuration says only "logit KD as MSE, weight 0.30, T = 5". Two
    readings of "MSE at temperature T" are offered:

    - ``kind="mse_logits"`` (default): MSE between the temperature-scaled logits,
      ``mean_{i,c} (z_s/T - z_t/T)^2`` (logit matching, Ba & Caruana 2014; it is the high-``T``
      limit of ``T^2 KL``, Hinton et al. 2015, Sec. 2.1, up to a factor ``2K``). Gradient
      ``dL/dz_s = 2 (z_s - z_t) / (T^2 B K)``.
    - ``kind="mse_probs"``: MSE between the softened distributions,
      ``mean_{i,c} (softmax(z_s/T) - softmax(z_t/T))^2``. At T = 5 with 8 classes the two
      distributions are both close to uniform, so this term is ~1e-5 and, at weight 0.30, inert.
    - ``kind="kl"``: Hinton et al. (2015), ``T^2 KL(softmax(z_t/T) || softmax(z_s/T))`` averaged
      over the batch (Algorithm 2 line 7 writes the KL without ``T^2``; the factor keeps gradient
      magnitudes independent of ``T`` and is a constant the weight absorbs).

    The teacher logits are detached (no gradient flows into the teacher).
    """
    _check_logits(student_logits, "student_logits")
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(
            f"teacher_logits {tuple(teacher_logits.shape)} must match student_logits "
            f"{tuple(student_logits.shape)}"
        )
    if not T > 0:
        raise ValueError(f"parameter T (temperature) must be > 0; got {T}")
    teacher = teacher_logits.detach().to(student_logits.dtype)
    if kind == "mse_logits":
        return F.mse_loss(student_logits / T, teacher / T)
    if kind == "mse_probs":
        return F.mse_loss(F.softmax(student_logits / T, dim=1), F.softmax(teacher / T, dim=1))
    if kind == "kl":
        log_p_s = F.log_softmax(student_logits / T, dim=1)
        log_p_t = F.log_softmax(teacher / T, dim=1)
        kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1).mean()
        return kl * T * T
    raise ValueError(f"parameter kind must be one of {KD_KINDS}; got {kind!r}")


# ----------------------------------------------------------------------------------------------
# Proto-KD
# ----------------------------------------------------------------------------------------------


def prototype_targets(prior: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Per-sample Proto-KD targets ``q^pro`` (paper 000 Sec. 4.3 and Alg. 2 line 11).

    The paper defines ``q^pro`` as "the (frozen) per-bin prior induced by P", i.e. the Laplace-
    smoothed bin occupancy of Algorithm 1 line 14, the same for every sample: it does not depend on
    a face's class or V/A (faces have no V/A in FERPlus). This returns that prior repeated for
    ``batch_size`` rows, shape (batch_size, K).
    """
    if prior.ndim != 1:
        raise ValueError(f"parameter prior must be 1-D (K bins); got shape {tuple(prior.shape)}")
    _check_distribution(prior, "prior")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"parameter batch_size must be a positive int; got {batch_size!r}")
    return prior[None, :].expand(batch_size, -1)


def proto_kd_loss(
    features: torch.Tensor,
    prototypes: torch.Tensor,
    q_pro: torch.Tensor,
    tau: float = 0.90,
) -> torch.Tensor:
    """Proto-KD (paper 000 Sec. 4.3, Alg. 2 line 11): ``KL(q^pro || softmax(s / tau))``.

    ``s_k = cos(f, p_k)`` with features (B, D) and prototypes (K, D) both L2-normalised here;
    ``q^pro`` is (K,) (the bank prior, shared by all samples) or (B, K); tau = 0.90 in the paper.
    Returns the KL averaged over the batch. Bins with ``q^pro = 0`` contribute 0.
    """
    if features.ndim != 2 or prototypes.ndim != 2 or features.shape[1] != prototypes.shape[1]:
        raise ValueError(
            f"features (B, D) and prototypes (K, D) must share D; got {tuple(features.shape)} and "
            f"{tuple(prototypes.shape)}"
        )
    if not tau > 0:
        raise ValueError(f"parameter tau must be > 0; got {tau}")
    k = prototypes.shape[0]
    q = q_pro.to(device=features.device, dtype=features.dtype)
    if q.ndim == 1:
        q = q[None, :].expand(len(features), -1)
    if q.shape != (len(features), k):
        raise ValueError(
            f"parameter q_pro must be ({k},) or ({len(features)}, {k}); got {tuple(q_pro.shape)}"
        )
    _check_distribution(q, "q_pro")
    f = F.normalize(features, dim=1)
    p = F.normalize(prototypes.to(device=features.device, dtype=features.dtype), dim=1)
    log_q_stu = F.log_softmax(f @ p.T / tau, dim=1)
    kl = torch.xlogy(q, q) - q * log_q_stu
    return kl.sum(dim=1).mean()


# ----------------------------------------------------------------------------------------------
# D-Geo
# ----------------------------------------------------------------------------------------------


def dgeo_terms(
    features: torch.Tensor,
    labels: torch.Tensor,
    positive_classes: Sequence[int],
    sigma_max: float,
    margin: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two D-Geo terms of paper 000 Algorithm 2 lines 12-13, on one minibatch.

    - ``L_var = sum_{c in H} max(0, sigma_c^2 - sigma_max^2)`` with ``H`` = ``positive_classes``
      (happiness, surprise in the paper) and ``sigma_c^2`` the within-class variance of the
      features, taken as the mean squared distance to the class mean (trace of the biased
      covariance). A class with fewer than 2 samples in the batch contributes 0.
    - ``L_margin = sum_{c != c'} max(0, m - ||mu_c - mu_c'||_2)`` over ordered pairs of classes
      present in the batch (each unordered pair counted twice, as the sum is written).

    The paper leaves ``sigma_max``, ``m`` and the variance definition unpublished; they are
    parameters here. ``features`` should be the L2-normalised student features ``f_b``.
    """
    if features.ndim != 2 or labels.ndim != 1 or len(labels) != len(features):
        raise ValueError(
            f"features must be (B, D) and labels (B,); got {tuple(features.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if sigma_max < 0 or margin < 0:
        raise ValueError(f"sigma_max and margin must be >= 0; got {sigma_max}, {margin}")
    classes = torch.unique(labels)
    means = torch.stack([features[labels == c].mean(dim=0) for c in classes])
    zero = features.new_zeros(())
    l_var = zero
    for c in positive_classes:
        rows = features[labels == int(c)]
        if len(rows) >= 2:
            var = ((rows - rows.mean(dim=0)) ** 2).sum(dim=1).mean()
            l_var = l_var + torch.clamp(var - sigma_max**2, min=0)
    l_margin = zero
    if len(classes) >= 2:
        diff = means[:, None, :] - means[None, :, :]
        off = ~torch.eye(len(classes), dtype=torch.bool, device=features.device)
        # sqrt of a clamped square keeps the gradient finite for coinciding means
        dist = torch.sqrt((diff[off] ** 2).sum(dim=-1).clamp_min(1e-12))
        l_margin = torch.clamp(margin - dist, min=0).sum()
    return l_var, l_margin


def dgeo_loss(
    features: torch.Tensor,
    labels: torch.Tensor,
    positive_classes: Sequence[int],
    sigma_max: float,
    margin: float,
    alpha_var: float = 1.0,
    alpha_mar: float = 1.0,
) -> torch.Tensor:
    """D-Geo (paper 000 Sec. 4.3, Alg. 2 line 14 without the schedule):
    ``alpha_var L_var + alpha_mar L_margin`` (see :func:`dgeo_terms`). Multiply by
    :func:`dgeo_weight` (``lambda_geo * s_geo(e)``) in the training loop.
    """
    l_var, l_margin = dgeo_terms(features, labels, positive_classes, sigma_max, margin)
    return alpha_var * l_var + alpha_mar * l_margin


def dgeo_weight(
    epoch: float,
    total_epochs: int,
    base_weight: float = 0.012,
    start: float = 20,
    end: float = 60,
    paper_epochs: int = 100,
    hold_after_end: bool = True,
) -> float:
    """``lambda_geo * s_geo(e)``: the late cosine ramp of D-Geo (paper 000 Sec. 4.3, Alg. 2).

    The paper activates D-Geo "late" with a cosine ramp over epochs 20 -> 60 (weight 0.012 in the
    released config). For a run of ``total_epochs`` the window is scaled proportionally:
    ``start' = start * total_epochs / paper_epochs`` and likewise ``end'``. The default
    ``paper_epochs=100`` is the authors' main model A3_full (100 epochs, window 20 -> 60), so a
    10-epoch run ramps over 2 -> 6; ``paper_epochs=60`` reads the window as ending the run.
    Inside the window ``w = base * (1 - cos(pi * (e - start') / (end' - start'))) / 2``;
    before it 0; after it ``base`` (``hold_after_end=True``, the ramp has reached full weight) or
    0 (``False``, "active on epochs 20 -> 60" read literally).
    ``epoch`` uses the same counting as ``start``/``end`` (fractions allowed for per-step ramps).
    """
    if total_epochs <= 0 or paper_epochs <= 0:
        raise ValueError(
            f"total_epochs and paper_epochs must be > 0; got {total_epochs}, {paper_epochs}"
        )
    if not 0 <= start < end:
        raise ValueError(f"need 0 <= start < end; got start={start}, end={end}")
    scale = total_epochs / paper_epochs
    s, e = start * scale, end * scale
    if epoch < s:
        return 0.0
    if epoch > e:
        return float(base_weight) if hold_after_end else 0.0
    return float(base_weight * 0.5 * (1.0 - math.cos(math.pi * (epoch - s) / (e - s))))


# ----------------------------------------------------------------------------------------------
# EEG2Face
# ----------------------------------------------------------------------------------------------


def info_nce_loss(pred: torch.Tensor, target: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """One-sided InfoNCE (paper 002 Sec. 3.0.7, L_Info): EEG embeddings ``E_r(x_e^i)`` (rows of
    ``pred``) against all vision codes ``E_v(x_v^j)`` (rows of ``target``) of the batch:

    ``-1/N sum_i log( exp(sim(p_i, t_i)/tau) / sum_j exp(sim(p_i, t_j)/tau) )``, sim = cosine.

    The thesis writes no temperature (tau = 1, the default). Only ``pred -> target`` is scored
    (one-sided); ``target`` is not detached, detach it yourself when it comes from a frozen encoder.
    """
    if pred.ndim != 2 or pred.shape != target.shape:
        raise ValueError(
            f"pred and target must both be (N, D) with the same shape; got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"parameter temperature must be > 0; got {temperature}")
    sim = F.normalize(pred, dim=1) @ F.normalize(target.to(pred.dtype), dim=1).T / temperature
    return F.cross_entropy(sim, torch.arange(len(pred), device=pred.device))


def vertex_loss(
    pred_vertices: torch.Tensor,
    target_vertices: torch.Tensor,
    region_idx: torch.Tensor | Sequence[int] | None = None,
    reduction: str = "mesh_norm",
) -> torch.Tensor:
    """L_vertex (paper 002 Sec. 3.0.7): ``|| F(f(z_r + g(z))) - F(z_v) ||_2`` between the mesh from
    the EEG prediction and the mesh from the vision code; meshes are (B, V, 3).

    - ``reduction="mesh_norm"`` (the formula as written): per sample the L2 norm of the whole
      (flattened) vertex difference, averaged over the batch.
    - ``reduction="mean_vertex"``: per sample the mean per-vertex Euclidean distance, averaged
      over the batch (independent of the vertex count; a common practical variant).

    ``region_idx`` restricts both to a vertex subset (e.g. the face area).
    """
    shape = pred_vertices.shape
    if pred_vertices.ndim != 3 or shape[-1] != 3 or shape != target_vertices.shape:
        raise ValueError(
            f"pred_vertices and target_vertices must both be (B, V, 3); got "
            f"{tuple(pred_vertices.shape)} and {tuple(target_vertices.shape)}"
        )
    diff = pred_vertices - target_vertices.to(pred_vertices.dtype)
    if region_idx is not None:
        idx = torch.as_tensor(region_idx, dtype=torch.long, device=diff.device).ravel()
        if idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= diff.shape[1]:
            raise ValueError(f"parameter region_idx must be non-empty ids in 0..{diff.shape[1] - 1}")
        diff = diff[:, idx]
    if reduction == "mesh_norm":
        return torch.linalg.vector_norm(diff.flatten(1), dim=1).mean()
    if reduction == "mean_vertex":
        return torch.linalg.vector_norm(diff, dim=-1).mean()
    raise ValueError(f"parameter reduction must be 'mesh_norm' or 'mean_vertex'; got {reduction!r}")
