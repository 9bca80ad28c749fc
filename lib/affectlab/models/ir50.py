"""IR-50 image backbone of POSTER++ (first three stages of the ArcFace improved-residual ResNet-50).

POSTER-Var, section "Baseline": POSTER++ "employs IR50 to extract image features at three different
scales". The ArcFace IR-50 (Deng et al., CVPR 2019) has a 3x3 stem at stride 1 and four stages of
``bottleneck_IR`` units (BN -> 3x3 conv -> PReLU -> 3x3 conv(stride) -> BN, plus a shortcut); POSTER++
keeps the first three stages (3, 4 and 14 units of 64, 128 and 256 channels) and resizes every input
to 112 x 112 first, so the pyramid is 64@56, 128@28, 256@14 whatever the input size.

``width`` scales every channel count and ``depth`` every unit count, so a small variant can train on
a CPU; ``width = depth = 1`` is the published network. ``input_size`` (default 112, the published
path) may be 56 for a CPU budget: the pyramid is then 28/14/7 px, a quarter of the multiply-adds;
FERPlus faces are 48 px, so 56 px loses none of their pixels (:data:`IR50_INPUT_SIZES`). No MS-Celeb weights exist here: the backbone
starts from PyTorch's default initialisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IR50_CHANNELS: tuple[int, int, int] = (64, 128, 256)
IR50_UNITS: tuple[int, int, int] = (3, 4, 14)
IR50_INPUT_SIZE = 112
IR50_INPUT_SIZES: tuple[int, ...] = (112, 56)
"""Input sides the trunk accepts: 112 (POSTER++; pyramid 56/28/14) or 56 (pyramid 28/14/7)."""


def scale_channels(channels: int, width: float, divisor: int = 8) -> int:
    """``channels * width`` rounded to a multiple of ``divisor`` (at least ``divisor``)."""
    return max(divisor, int(round(channels * width / divisor)) * divisor)


def scale_units(units: int, depth: float) -> int:
    """``units * depth`` rounded, at least 1 (a stage always keeps its strided unit)."""
    return max(1, int(round(units * depth)))


class Subsample(nn.Module):
    """Keep every ``stride``-th pixel: the ``MaxPool2d(1, stride)`` identity shortcut, without a pooling op."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.stride == 1 else x[:, :, :: self.stride, :: self.stride]


class ImprovedResidualUnit(nn.Module):
    """ArcFace ``bottleneck_IR``: BN, 3x3 conv, PReLU, 3x3 conv with the stride, BN; plus shortcut.

    The shortcut is a stride-``stride`` subsampling (:class:`Subsample`, equal to ``MaxPool2d(1, stride)``) when the channel count
    is kept, else a strided 1x1 conv + BN, as in the ArcFace/POSTER++ code.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if in_channels == out_channels:
            self.shortcut: nn.Module = Subsample(stride)
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        self.residual = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


def _stage(in_channels: int, out_channels: int, units: int) -> nn.Sequential:
    """One IR stage: a stride-2 unit then ``units - 1`` stride-1 units."""
    layers = [ImprovedResidualUnit(in_channels, out_channels, 2)]
    layers += [ImprovedResidualUnit(out_channels, out_channels, 1) for _ in range(units - 1)]
    return nn.Sequential(*layers)


class IR50(nn.Module):
    """The three-stage IR-50 of POSTER++; ``forward`` returns the feature pyramid (x1, x2, x3).

    Args:
        width: channel multiplier (1.0 = 64/128/256 channels).
        depth: unit-count multiplier (1.0 = 3/4/14 units).
        input_size: side the input is resized to, one of :data:`IR50_INPUT_SIZES` (112 = POSTER++).

    Input: float (B, 3, H, W), any H, W (resized to ``input_size`` by nearest-neighbour
    interpolation, as ``F.interpolate(x, size=112)`` in the POSTER++ code). Output at 112:
    (B, c1, 56, 56), (B, c2, 28, 28), (B, c3, 14, 14); at 56 every side is halved.
    """

    def __init__(self, width: float = 1.0, depth: float = 1.0, input_size: int = IR50_INPUT_SIZE) -> None:
        super().__init__()
        if width <= 0 or depth <= 0:
            raise ValueError(f"IR50: width and depth must be > 0; got width={width}, depth={depth}")
        if input_size not in IR50_INPUT_SIZES:
            raise ValueError(f"IR50: input_size must be one of {IR50_INPUT_SIZES}; got {input_size!r}")
        self.input_size = int(input_size)
        self.channels = tuple(scale_channels(c, width) for c in IR50_CHANNELS)
        self.units = tuple(scale_units(u, depth) for u in IR50_UNITS)
        c0 = self.channels[0]
        self.stem = nn.Sequential(nn.Conv2d(3, c0, 3, 1, 1, bias=False), nn.BatchNorm2d(c0), nn.PReLU(c0))
        self.stage1 = _stage(c0, self.channels[0], self.units[0])
        self.stage2 = _stage(self.channels[0], self.channels[1], self.units[1])
        self.stage3 = _stage(self.channels[1], self.channels[2], self.units[2])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"IR50 expects a float batch (B, 3, H, W); got shape {tuple(x.shape)}")
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=self.input_size)
        x = self.stem(x)
        x1 = self.stage1(x)
        x2 = self.stage2(x1)
        x3 = self.stage3(x2)
        return x1, x2, x3


class IR50Classifier(nn.Module):
    """The IR-50 trunk with a pooled linear classifier: the task that pretrains the trunk here.

    POSTER++ starts from an IR-50 pretrained on MS-Celeb-1M face recognition; no such weights can be
    downloaded, so the chapter pretrains the trunk on expression labels instead and loads
    ``backbone`` into every ablation row. The three pyramid levels are average-pooled and
    concatenated (so every stage the rows use is supervised directly), then one linear layer
    classifies. ``forward`` returns ``{"logits": (B, C), "features": (B, c1 + c2 + c3)}``.
    """

    def __init__(self, num_classes: int, width: float = 1.0, depth: float = 1.0,
                 input_size: int = IR50_INPUT_SIZE) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"IR50Classifier: num_classes must be an int >= 2; got {num_classes!r}")
        self.backbone = IR50(width=width, depth=depth, input_size=input_size)
        self.classifier = nn.Linear(sum(self.backbone.channels), num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = torch.cat([level.mean(dim=(2, 3)) for level in self.backbone(x)], dim=1)
        return {"logits": self.classifier(features), "features": features}
