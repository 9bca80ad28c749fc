"""The frozen branches' pyramids, computed once for every row (quick profile; paper 003 Sec. 3.1,
POSTER++ Sec. 3): with the IR-50 trunk and the MobileFaceNet landmark branch both frozen, their six
feature maps depend only on the image, so :func:`pyramid_data` computes them once per image (float16,
flattened to one row per image) and every ablation row trains only what follows them through
:class:`CachedPyramidRow`, which feeds the maps to :meth:`PosterModel.forward_from_pyramids`. The
row's :class:`PosterModel` is the same object, so after training it runs on images as usual
(timing, Grad-CAM, figures); a unit test checks that both paths give the same logits.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from affectlab.data.sets import FaceSet
from affectlab.models.poster import PosterModel
from affectlab.train import TensorData

from .config import ChapterConfig
from .data import face_tensor_data

PYRAMID_DTYPE = torch.float16
"""Storage type of the cached maps (half the memory of float32; the rows compute in float32)."""


def pyramid_shapes(model: PosterModel) -> list[tuple[int, ...]]:
    """Per-image shapes (C, H, W) of the six cached maps: IR-50 x1, x2, x3, then landmark lm1, lm2, lm3."""
    probe = torch.zeros(1, 3, 112, 112)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        image_pyramid, landmark_pyramid = model.pyramids(probe)
    model.train(was_training)
    return [tuple(t.shape[1:]) for t in (*image_pyramid, *landmark_pyramid)]


class CachedPyramidRow(nn.Module):
    """An ablation row trained on cached pyramids: ``forward(x)`` with ``x`` (B, F) the six flattened
    maps of :func:`pyramid_shapes` returns what ``model(images)`` returns for those images.

    The two branches inside ``model`` must be frozen (their weights are what produced the cache)."""

    def __init__(self, model: PosterModel) -> None:
        super().__init__()
        if not (model.image_backbone_frozen and model.landmark_branch_frozen):
            raise ValueError("CachedPyramidRow needs a PosterModel whose image trunk and landmark branch are frozen "
                             "(freeze_image_backbone(True), freeze_landmark_branch(True))")
        self.model = model
        self.shapes = pyramid_shapes(model)
        self.sizes = [math.prod(s) for s in self.shapes]

    @property
    def num_features(self) -> int:
        return sum(self.sizes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"CachedPyramidRow expects (B, {self.num_features}) cached maps; got {tuple(x.shape)}")
        parts = [p.reshape(len(x), *s) for p, s in zip(torch.split(x.float(), self.sizes, dim=1), self.shapes)]
        stages = self.model.forward_from_pyramids(tuple(parts[:3]), tuple(parts[3:]))
        keys = ("logits", "features", "mu", "logvar") if self.model.config.vich else ("logits", "features")
        return {k: stages[k] for k in keys}


def compute_pyramids(model: PosterModel, faces: FaceSet, cfg: ChapterConfig, device: torch.device | str = "cpu",
                     batch_size: int = 256) -> torch.Tensor:
    """(N, F) float16: the frozen branches' six maps for every image of ``faces`` (model input as
    :func:`~.data.face_tensor_data`, no augmentation), in the FaceSet's order."""
    data = face_tensor_data(faces, cfg, train=False, soft=False)
    data.batch_size = batch_size
    model = model.to(device).eval()
    out = []
    with torch.no_grad():
        for batch in data.batches(device, train=False):
            image_pyramid, landmark_pyramid = model.pyramids(batch["x"])
            out.append(torch.cat([t.flatten(1) for t in (*image_pyramid, *landmark_pyramid)], 1).to("cpu", PYRAMID_DTYPE))
    return torch.cat(out)


def pyramid_data(features: torch.Tensor, faces: FaceSet, cfg: ChapterConfig, *, train: bool, soft: bool) -> TensorData:
    """Cached maps of ``faces`` (:func:`compute_pyramids`) as the trainer's data: labels, the vote
    distributions with ``soft``, shuffled batches of ``cfg.batch_size`` for training (no augmentation:
    the maps are those of the unaugmented images)."""
    if len(features) != len(faces):
        raise ValueError(f"pyramid_data: {len(features)} cached rows for {len(faces)} faces of {faces.name}/{faces.split}")
    keep = faces.labels >= 0
    return TensorData(features[keep], faces.labels[keep], soft=faces.soft_labels[keep].float() if soft else None,
                      batch_size=cfg.batch_size, shuffle=train, name=f"{faces.name}/{faces.split} (cached pyramids)")
