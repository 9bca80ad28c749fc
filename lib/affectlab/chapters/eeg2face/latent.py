"""The vision latent ``z_v`` of chapter 03 (EEG2Face, Sec. 3.0.2): the stand-in for ``E_v`` (EMOCA's
FLAME expression and jaw codes) on the book's ICT-FaceKit face model, and the vertex regions of
the thesis's metrics (Sec. 4.0.2)."""

from __future__ import annotations

import torch
from torch import nn

from affectlab.chapters.eeg2face.config import EVE_REGIONS
from affectlab.facemodel import FaceModel
from affectlab.models.eeg2face import EXPRESSION_DIM, VISION_LATENT_DIM


class VisionLatent(nn.Module):
    """``z_v`` = 50 expression coefficients + 3 jaw parameters, as FLAME's 53 (Sec. 3.0.2), and
    ``F(z_v)``: the mesh of the book's face model.

    The thesis regresses FLAME's ``psi_exp`` (50) and jaw pose (3) with EMOCA from video frames
    (pseudo-ground-truth). Here the frames are rendered from known blendshapes, so ``z_v`` is exact:
    ``psi_exp`` = the first 50 principal components (orthonormal, not whitened: FLAME's expression
    space is a PCA basis too) of the 53 ICT blendshape coefficients over the training frames, and
    the jaw = the face model's (open, lateral, forward). ``decode`` inverts it; the 3 dropped
    components carry ``1 - explained_variance_ratio.sum()`` of the variance (reported).
    """

    def __init__(self, mean: torch.Tensor, components: torch.Tensor, explained_variance_ratio: torch.Tensor,
                 face_model: FaceModel) -> None:
        super().__init__()
        if components.shape != (EXPRESSION_DIM, face_model.n_expression) or mean.shape != (face_model.n_expression,):
            raise ValueError(f"VisionLatent needs mean ({face_model.n_expression},) and components "
                             f"({EXPRESSION_DIM}, {face_model.n_expression}); got {tuple(mean.shape)}, "
                             f"{tuple(components.shape)}")
        self.register_buffer("mean", mean.float())
        self.register_buffer("components", components.float())
        self.register_buffer("explained_variance_ratio", explained_variance_ratio.float())
        self.face_model = face_model

    @classmethod
    def fit(cls, blendshapes: torch.Tensor, face_model: FaceModel) -> "VisionLatent":
        """PCA of (frames, 53) training blendshape coefficients (SVD of the centred matrix)."""
        x = torch.as_tensor(blendshapes, dtype=torch.float64).reshape(-1, face_model.n_expression)
        if len(x) < 2:
            raise ValueError(f"VisionLatent.fit needs at least 2 frames of blendshapes; got {len(x)}")
        mean = x.mean(0)
        _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
        var = s**2
        total = var.sum().clamp_min(1e-12)
        comps = vh[:EXPRESSION_DIM]
        if comps.shape[0] < EXPRESSION_DIM:  # fewer frames than components: pad with an orthonormal complement
            q, _ = torch.linalg.qr(torch.cat([comps.T, torch.eye(face_model.n_expression, dtype=x.dtype)], 1))
            comps = q.T[:EXPRESSION_DIM]
        # a fixed sign per component (largest loading positive) so the basis is reproducible
        sign = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True))).squeeze(1)
        comps = comps * torch.where(sign == 0, torch.ones_like(sign), sign)[:, None]
        ratio = torch.zeros(EXPRESSION_DIM, dtype=x.dtype)
        k = min(EXPRESSION_DIM, len(var))
        ratio[:k] = var[:k] / total
        return cls(mean, comps, ratio, face_model)

    def encode(self, psi: torch.Tensor, jaw: torch.Tensor) -> torch.Tensor:
        """Blendshapes (..., 53) and jaw (..., 3) -> ``z_v`` (..., 53)."""
        psi = torch.as_tensor(psi, dtype=torch.float32, device=self.mean.device)
        jaw = torch.as_tensor(jaw, dtype=torch.float32, device=self.mean.device)
        return torch.cat([(psi - self.mean) @ self.components.T, jaw], dim=-1)

    def decode(self, z_v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z_v`` (..., 53) -> blendshapes (..., 53) and jaw (..., 3)."""
        if z_v.shape[-1] != VISION_LATENT_DIM:
            raise ValueError(f"z_v must end in {VISION_LATENT_DIM} (50 expression + 3 jaw); got {tuple(z_v.shape)}")
        return self.mean + z_v[..., :EXPRESSION_DIM] @ self.components, z_v[..., EXPRESSION_DIM:]

    def vertices(self, z_v: torch.Tensor) -> torch.Tensor:
        """``F(z_v)``: (B, 53) -> meshes (B, V, 3) in mm, identity and global pose fixed at zero
        (the thesis drops FLAME's shape and global pose, Sec. 3.0.2). Differentiable."""
        psi, jaw = self.decode(z_v)
        return self.face_model.vertices(psi=psi, jaw=jaw)

    def vertex_difference(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        """``F(z_a) - F(z_b)`` (B, V, 3) in mm with one product with the blendshape basis: the meshes
        differ only through their effective blendshape coefficients (identity and template cancel).
        Differentiable; equal to ``vertices(z_a) - vertices(z_b)``."""
        fm = self.face_model
        psi_a, jaw_a = self.decode(z_a)
        psi_b, jaw_b = self.decode(z_b)
        delta = fm.effective_expression(psi_a, jaw_a) - fm.effective_expression(psi_b, jaw_b)
        basis = fm.expression_basis.reshape(fm.n_expression, -1)
        return (delta @ basis).reshape(len(delta), fm.n_vertices, 3)

    @property
    def dropped_variance(self) -> float:
        """Fraction of the training blendshape variance outside the 50 kept components."""
        return max(0.0, float(1.0 - self.explained_variance_ratio.sum()))


def region_vertex_ids(face_model: FaceModel) -> dict[str, torch.Tensor]:
    """Vertex ids of the metric regions: ``lips`` (LVE), ``mouth_corners`` (MCE) and ``emotional``
    = forehead + cheeks + eyes (EVE, Sec. 4.0.2)."""
    emotional = torch.unique(torch.cat([face_model.regions[r] for r in EVE_REGIONS]))
    return {"lips": face_model.regions["lips"], "mouth_corners": face_model.regions["mouth_corners"],
            "emotional": emotional}
