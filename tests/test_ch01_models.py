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


def test_student_head_input_scale_and_old_checkpoints():
    torch.manual_seed(0)
    model = FERStudent("resnet18").eval()
    assert float(model.head_input_scale) == 16.0  # sqrt(256)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        out = model(x)
        # the head is linear in f: z = W (16 f) + b
        expected = 16.0 * out["features"] @ model.head.weight.T + model.head.bias
        torch.testing.assert_close(out["logits"], expected)
    # a state dict saved before the scale existed loads with s = 1 (what it was trained with)
    old_state = {k: v for k, v in model.state_dict().items() if k != "head_input_scale"}
    plain = FERStudent("resnet18")
    plain.load_state_dict(old_state)
    assert float(plain.head_input_scale) == 1.0
    plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(x)["logits"], out["features"] @ model.head.weight.T + model.head.bias)
    with pytest.raises(ValueError, match="head_input_scale"):
        FERStudent(head_input_scale=0.0)


def test_student_rejects_unknown_arch():
    with pytest.raises(ValueError, match="arch='vgg' is unknown"):
        FERStudent("vgg")


def test_teacher_regresses_va_in_range_with_256d_features():
    model = TopomapVATeacher().eval()
    out = model(torch.randn(3, 5, 32, 32) * 10)
    assert out["pred"].shape == (3, 2) and out["features"].shape == (3, 256)
    assert out["pred"].abs().max() <= 1.0
