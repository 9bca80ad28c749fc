"""MobileFaceNet landmark branch of POSTER++ (the ``pytorch_face_landmark`` detector, Chen 2021).

POSTER-Var, section "Baseline": "MobileFaceNet is used to obtain the landmark features at the
corresponding scales". The network takes a 112 x 112 face and regresses 68 landmarks (136 numbers)
through a global depthwise-convolution head (GDC); POSTER++ discards the 136 outputs and uses three
intermediate maps, 64@28, 128@14 and 512@7, as attention queries. Layer layout (channels at
``width = 1``; residual block counts at ``depth = 1``):

====================  ==========================  ==========
block                 operation                   output
====================  ==========================  ==========
conv1                 3x3 s2 conv-BN-PReLU         64 @ 56
conv2_dw              3x3 depthwise                64 @ 56
conv_23               inverted bottleneck s2       64 @ 28
conv_3 (x4)           residual bottlenecks         64 @ 28   -> level 1
conv_34               inverted bottleneck s2      128 @ 14
conv_4 (x6)           residual bottlenecks        128 @ 14   -> level 2
conv_45               inverted bottleneck s2      128 @ 7
conv_5 (x2)           residual bottlenecks        128 @ 7
conv_6_sep            1x1 conv-BN-PReLU           512 @ 7    -> level 3
GDC                   7x7 depthwise, linear, BN   136
====================  ==========================  ==========

No pretrained weights exist here. The book pretrains this branch on generated faces whose 68
landmarks are known exactly, through :meth:`MobileFaceNet.forward` (136 outputs ordered
x1, y1, ..., x68, y68, in whatever normalisation the targets use, e.g. [0, 1] of the 112-px crop),
then loads it into POSTER++ and freezes it.
"""

from __future__ import annotations

import torch
from torch import nn

from affectlab.models.ir50 import scale_channels, scale_units

MOBILEFACENET_INPUT_SIZE = 112
NUM_LANDMARKS = 68


class ConvBNPReLU(nn.Module):
    """Convolution (no bias), BatchNorm, PReLU: the ``Conv_block`` of MobileFaceNet."""

    def __init__(self, in_c: int, out_c: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)
        self.prelu = nn.PReLU(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


class ConvBN(nn.Module):
    """Convolution (no bias) and BatchNorm without activation: the ``Linear_block``."""

    def __init__(self, in_c: int, out_c: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class InvertedBottleneck(nn.Module):
    """1x1 expand to ``hidden`` channels, 3x3 depthwise (stride), 1x1 linear projection (``Depth_Wise``)."""

    def __init__(self, in_c: int, out_c: int, hidden: int, stride: int, residual: bool) -> None:
        super().__init__()
        if residual and (in_c != out_c or stride != 1):
            raise ValueError("InvertedBottleneck: a residual block needs in_c == out_c and stride 1")
        self.expand = ConvBNPReLU(in_c, hidden)
        self.depthwise = ConvBNPReLU(hidden, hidden, 3, stride, 1, groups=hidden)
        self.project = ConvBN(hidden, out_c)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.residual else out


def _residual_stack(channels: int, hidden: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*[InvertedBottleneck(channels, channels, hidden, 1, True) for _ in range(blocks)])


class GlobalDepthwiseHead(nn.Module):
    """GDC output layer: 7x7 depthwise conv + BN, flatten, bias-free linear, BatchNorm1d."""

    def __init__(self, channels: int, out_features: int) -> None:
        super().__init__()
        self.depthwise = ConvBN(channels, channels, kernel=7, groups=channels)
        self.linear = nn.Linear(channels, out_features, bias=False)
        self.bn = nn.BatchNorm1d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.linear(self.depthwise(x).flatten(1)))


class MobileFaceNet(nn.Module):
    """MobileFaceNet with a 68-landmark regression head; also the POSTER++ landmark pyramid.

    Args:
        width: channel multiplier (1.0 = the published 64/128/512 channels).
        depth: multiplier of the residual block counts (1.0 = 4/6/2 blocks).
        num_landmarks: landmarks regressed by the GDC head (68 -> 136 outputs).

    ``forward(x)`` returns the landmark regression (B, 2 * num_landmarks), for pretraining;
    :meth:`feature_pyramid` returns the three maps POSTER++ uses as queries.
    """

    def __init__(self, width: float = 1.0, depth: float = 1.0, num_landmarks: int = NUM_LANDMARKS) -> None:
        super().__init__()
        if width <= 0 or depth <= 0:
            raise ValueError(f"MobileFaceNet: width and depth must be > 0; got width={width}, depth={depth}")
        if num_landmarks < 1:
            raise ValueError(f"MobileFaceNet: num_landmarks must be >= 1; got {num_landmarks}")
        c64, c128, c256, c512 = (scale_channels(c, width) for c in (64, 128, 256, 512))
        self.num_landmarks = num_landmarks
        self.pyramid_channels = (c64, c128, c512)
        self.conv1 = ConvBNPReLU(3, c64, 3, 2, 1)
        self.conv2_dw = ConvBNPReLU(c64, c64, 3, 1, 1, groups=c64)
        self.conv_23 = InvertedBottleneck(c64, c64, c128, 2, False)
        self.conv_3 = _residual_stack(c64, c128, scale_units(4, depth))
        self.conv_34 = InvertedBottleneck(c64, c128, c256, 2, False)
        self.conv_4 = _residual_stack(c128, c256, scale_units(6, depth))
        self.conv_45 = InvertedBottleneck(c128, c128, c512, 2, False)
        self.conv_5 = _residual_stack(c128, c256, scale_units(2, depth))
        self.conv_6_sep = ConvBNPReLU(c128, c512)
        self.landmark_head = GlobalDepthwiseHead(c512, 2 * num_landmarks)
        self._initialise()

    def _initialise(self) -> None:
        """Kaiming-normal (fan-out) convs and linears, unit BatchNorm: as the published code."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _check_input(self, x: torch.Tensor) -> None:
        size = MOBILEFACENET_INPUT_SIZE
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (size, size):
            raise ValueError(
                f"MobileFaceNet expects a float batch (B, 3, {size}, {size}); got shape {tuple(x.shape)}"
            )

    def _trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self._check_input(x)
        out = self.conv_23(self.conv2_dw(self.conv1(x)))
        level1 = self.conv_3(out)
        level2 = self.conv_4(self.conv_34(level1))
        level3 = self.conv_6_sep(self.conv_5(self.conv_45(level2)))
        return level1, level2, level3

    def feature_pyramid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The POSTER++ landmark maps for a 112-px batch: (B, c64, 28, 28), (B, c128, 14, 14), (B, c512, 7, 7)."""
        return self._trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Landmark regression (B, 2 * num_landmarks), ordered x1, y1, x2, y2, ..."""
        return self.landmark_head(self._trunk(x)[2])

    def predict_landmarks(self, x: torch.Tensor) -> torch.Tensor:
        """Landmarks as (B, num_landmarks, 2) (x, y) pairs."""
        return self.forward(x).view(x.shape[0], self.num_landmarks, 2)
