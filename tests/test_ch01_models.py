"""Shapes and contracts of the NeuroGaze-Distill student and EEG teacher."""

from __future__ import annotations

import pytest
import torch

from affectlab.models.resnet_student import FERStudent
from affectlab.models.va_teacher import TopomapVATeacher


@pytest.mark.parametrize("in_channels,side", [(1, 48), (3, 64)])
def test_student_outputs_unit_norm_features_and_logits(in_channels, side):
    model = FERStudent("resnet18", n_classes=8, proj_dim=256, in_channels=in_channels).eval()
    out = model(torch.rand(2, in_channels, side, side))
    assert out["logits"].shape == (2, 8)
    assert out["features"].shape == (2, 256)
    torch.testing.assert_close(out["features"].norm(dim=1), torch.ones(2))


def test_student_rejects_unknown_arch():
    with pytest.raises(ValueError, match="arch='vgg' is unknown"):
        FERStudent("vgg")


def test_teacher_regresses_va_in_range_with_256d_features():
    model = TopomapVATeacher().eval()
    out = model(torch.randn(3, 5, 32, 32) * 10)
    assert out["pred"].shape == (3, 2) and out["features"].shape == (3, 256)
    assert out["pred"].abs().max() <= 1.0
