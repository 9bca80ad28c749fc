"""The NeuroGaze-Distill EEG teacher (paper Sec. 4.1): a CNN regressing valence/arousal from
5-band EEG topomaps, with a 256-D penultimate layer whose validation embeddings form the prototype
bank (Algorithm 1).

The paper names only "a CNN/ViT teacher"; its depth and widths are unpublished. Ours: three
conv-BN-ReLU blocks (32, 64, 128 channels, 3x3, each followed by 2x2 max-pooling), global average
pooling, a 256-D fully connected penultimate layer with ReLU and dropout, and a 2-unit output with
``tanh`` so predictions lie in [-1, 1] like the targets.
"""

from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class TopomapVATeacher(nn.Module):
    """Topomaps (B, bands, H, W) -> ``{"pred": (B, 2) V/A in [-1, 1], "features": (B, 256)}``."""

    def __init__(self, n_bands: int = 5, feature_dim: int = 256, dropout: float = 0.3):
        super().__init__()
        self.body = nn.Sequential(_block(n_bands, 32), _block(32, 64), _block(64, 128))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.penultimate = nn.Sequential(nn.Flatten(), nn.Linear(128, feature_dim), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(feature_dim, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.penultimate(self.pool(self.body(x)))
        return {"pred": torch.tanh(self.out(self.dropout(features))), "features": features}
