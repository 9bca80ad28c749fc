"""The NeuroGaze-Distill FER student (paper Sec. 4.2, Algorithm 2, line 3).

``F = HEAD o PROJ o BACKBONE``: a torchvision ResNet-18 (ResNet-50 in the paper profile) without its
ImageNet classifier, a linear 256-D projection, an L2-normalised feature ``f(x)`` and an 8-way linear
head ``z(x) = HEAD(f(x))``. No pretrained weights are loaded (none can be downloaded here); the
paper does not say whether its backbone was ImageNet-initialised, so we train from scratch and say so
in the chapter.

The head is linear in ``f`` as in the paper, parametrised as ``z = W (s f) + b`` with a fixed scale
``s = head_input_scale`` (default ``sqrt(proj_dim)`` = 16). A unit-norm 256-D vector has coordinates
of size ~1/16, while a default-initialised ``nn.Linear`` expects inputs of size ~1: without ``s`` the
initial logits are ~0.06, the softmax is uniform, and the head weights must grow ~16-fold before the
cross-entropy can fall (with AdamW at lr 1e-3 that takes thousands of steps). ``s`` changes the
conditioning only, not the function class (``W s`` is again a linear map); ``s = 1`` is the plain head.
"""

from __future__ import annotations

import math
from typing import Any

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
        head_input_scale: the fixed factor ``s`` the head's input is multiplied by (``None`` =
            ``sqrt(proj_dim)``; 1.0 = the plain head of checkpoints saved before this option). It is
            stored in the state dict (buffer ``head_input_scale``); a state dict without it loads
            with 1.0, the value those weights were trained with.

    ``forward`` returns ``{"logits": (B, n_classes), "features": (B, proj_dim)}`` with unit-norm
    features, which the Proto-KD and D-Geo losses consume.
    """

    def __init__(self, arch: str = "resnet18", n_classes: int = 8, proj_dim: int = 256, in_channels: int = 1,
                 head_input_scale: float | None = None):
        super().__init__()
        if arch not in BACKBONES:
            raise ValueError(f"arch={arch!r} is unknown; choose one of {sorted(BACKBONES)}")
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        scale = math.sqrt(proj_dim) if head_input_scale is None else float(head_input_scale)
        if not scale > 0 or not math.isfinite(scale):
            raise ValueError(f"head_input_scale must be a finite number > 0 (or None); got {head_input_scale!r}")
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
        self.register_buffer("head_input_scale", torch.tensor(scale, dtype=torch.float32))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        key = f"{prefix}head_input_scale"
        if key not in state_dict:  # a checkpoint from before the scale existed: it was trained with s = 1
            state_dict[key] = torch.tensor(1.0)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = F.normalize(self.proj(self.backbone(x)).float(), dim=1)
        head_in = (features * self.head_input_scale).to(self.head.weight.dtype)
        return {"logits": self.head(head_in), "features": features}
