"""The NeuroGaze-Distill FER student (paper Sec. 4.2, Algorithm 2, line 3).

``F = HEAD o PROJ o BACKBONE``: a torchvision ResNet-18 (ResNet-50 in the paper profile) without its
ImageNet classifier, a linear 256-D projection, an L2-normalised feature ``f(x)`` and an 8-way linear
head ``z(x) = HEAD(f(x))``. No pretrained weights are loaded (none can be downloaded here); the
paper does not say whether its backbone was ImageNet-initialised, so we train from scratch and say so
in the chapter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tv_models

BACKBONES = {"resnet18": (tv_models.resnet18, 512), "resnet50": (tv_models.resnet50, 2048)}


class FERStudent(nn.Module):
    """ResNet backbone -> 256-D projection -> L2 norm -> linear head.

    Args:
        arch: ``"resnet18"`` or ``"resnet50"``.
        n_classes: classes of the head (8 FERPlus classes).
        proj_dim: dimension of the projected, L2-normalised feature (256 in the paper).
        in_channels: 1 for greyscale input (the stem's first convolution takes one channel), or 3.

    ``forward`` returns ``{"logits": (B, n_classes), "features": (B, proj_dim)}`` with unit-norm
    features, which the Proto-KD and D-Geo losses consume.
    """

    def __init__(self, arch: str = "resnet18", n_classes: int = 8, proj_dim: int = 256, in_channels: int = 1):
        super().__init__()
        if arch not in BACKBONES:
            raise ValueError(f"arch={arch!r} is unknown; choose one of {sorted(BACKBONES)}")
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        factory, width = BACKBONES[arch]
        backbone = factory(weights=None)
        if in_channels != 3:
            backbone.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(backbone.conv1.weight, mode="fan_out", nonlinearity="relu")
        backbone.fc = nn.Identity()
        self.arch = arch
        self.backbone = backbone
        self.proj = nn.Linear(width, proj_dim)
        self.head = nn.Linear(proj_dim, n_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = F.normalize(self.proj(self.backbone(x)).float(), dim=1)
        return {"logits": self.head(features.to(self.head.weight.dtype)), "features": features}
