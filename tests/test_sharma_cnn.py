"""The Sharma (2020) DCNN of T et al. Figure 1: layer names, shapes, Keras conventions."""

from __future__ import annotations

import math

import pytest
import torch

from affectlab.models.sharma_cnn import (
    FER2013_CLASSES,
    LAYER_NAMES,
    SHARMA_VARIANTS,
    build_sharma_cnn,
    build_sharma_variant,
    prepare_sharma_input,
)


def _outputs_by_layer(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    outputs: dict[str, torch.Tensor] = {}
    handles = [
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o))
        for name in LAYER_NAMES
    ]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return outputs


def test_children_carry_the_paper_layer_names_in_order():
    model = build_sharma_cnn(3)
    figure_1b = (  # Figure 1(b) with Keras names for pool/dropout, written out here, not taken from the module
        "conv2d_1", "batchnorm_1", "conv2d_2", "batchnorm_2", "maxpool2d_1", "dropout_1",
        "conv2d_3", "batchnorm_3", "conv2d_4", "batchnorm_4", "maxpool2d_2", "dropout_2",
        "conv2d_5", "batchnorm_5", "conv2d_6", "batchnorm_6", "maxpool2d_3", "dropout_3",
        "flatten", "dense_1", "batchnorm_7", "dropout_4", "out_layer",
    )  # fmt: skip
    assert tuple(name for name, _ in model.named_children()) == figure_1b
    assert LAYER_NAMES == figure_1b


def test_layer_shapes_follow_figure_1():
    torch.manual_seed(0)
    model = build_sharma_cnn(7).eval()
    outputs = _outputs_by_layer(model, torch.rand(2, 1, 48, 48))
    assert outputs["conv2d_1"].shape == (2, 64, 48, 48)  # 'same' padding keeps 48 x 48
    assert outputs["maxpool2d_1"].shape == (2, 64, 24, 24)
    assert outputs["conv2d_4"].shape == (2, 128, 24, 24)
    assert outputs["maxpool2d_3"].shape == (2, 256, 6, 6)
    assert outputs["flatten"].shape == (2, 9216)
    assert outputs["dense_1"].shape == outputs["dropout_4"].shape == (2, 128)
    assert outputs["out_layer"].shape == (2, 7)
    # conv -> ELU inside conv2d_k (Keras activation='elu'), BatchNorm after it
    assert outputs["conv2d_1"].min() >= -1.0 and outputs["dense_1"].min() >= -1.0
    # fresh BatchNorm in eval: (x - 0) / sqrt(1 + eps) applied to the post-ELU conv output
    torch.testing.assert_close(outputs["batchnorm_1"], outputs["conv2d_1"] / math.sqrt(1 + 1e-3))
    torch.testing.assert_close(outputs["batchnorm_7"], outputs["dense_1"] / math.sqrt(1 + 1e-3))


def test_parameter_count_and_keras_batchnorm_defaults():
    model = build_sharma_cnn(3)
    conv = (1 * 64 * 25 + 64) + (64 * 64 * 25 + 64) + (64 * 128 * 9 + 128) + (128 * 128 * 9 + 128) \
        + (128 * 256 * 9 + 256) + (256 * 256 * 9 + 256)
    batchnorm = 2 * (64 + 64 + 128 + 128 + 256 + 256 + 128)
    dense = (9216 * 128 + 128) + (128 * 3 + 3)
    assert sum(p.numel() for p in model.parameters()) == conv + batchnorm + dense
    for name in ("batchnorm_1", "batchnorm_6", "batchnorm_7"):
        bn = getattr(model, name)
        assert bn.eps == pytest.approx(1e-3) and bn.momentum == pytest.approx(0.01)
    assert [getattr(model, f"dropout_{k}").p for k in (1, 2, 3, 4)] == [0.4, 0.4, 0.5, 0.6]


def test_he_normal_initialisation():
    torch.manual_seed(0)
    model = build_sharma_cnn(3)
    for name, fan_in in (("conv2d_2", 64 * 25), ("conv2d_6", 256 * 9), ("dense_1", 9216)):
        layer = getattr(model, name)
        weight = (layer.conv if hasattr(layer, "conv") else layer.linear).weight.detach()
        target = math.sqrt(2.0 / fan_in)
        assert weight.std().item() == pytest.approx(target, rel=0.05), name
        assert weight.abs().max().item() <= 2 * target / 0.8796 + 1e-6  # truncated at 2 std
        bias = (layer.conv if hasattr(layer, "conv") else layer.linear).bias
        assert torch.count_nonzero(bias) == 0


def test_variants_and_gradient_flow():
    assert build_sharma_variant("NN1").class_names == ("happy", "sad", "neutral")
    assert build_sharma_variant("NN2").class_names == FER2013_CLASSES
    nn3 = build_sharma_variant("NN3")
    assert nn3.n_classes == 3 and nn3.class_names == SHARMA_VARIANTS["NN1"]
    with pytest.raises(ValueError, match="variant 'NN4' is unknown"):
        build_sharma_variant("NN4")
    torch.manual_seed(0)
    model = build_sharma_cnn(3).train()
    loss = torch.nn.functional.cross_entropy(model(torch.rand(2, 1, 48, 48)), torch.tensor([0, 2]))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    probs = model.eval().probabilities(torch.rand(3, 1, 48, 48))
    torch.testing.assert_close(probs.sum(1), torch.ones(3))


def test_bad_input_and_arguments_raise_clear_errors():
    model = build_sharma_cnn(3)
    with pytest.raises(ValueError, match=r"expects input \(N, 1, 48, 48\).*\(2, 1, 64, 64\)"):
        model(torch.rand(2, 1, 64, 64))
    with pytest.raises(ValueError, match="float input"):
        model(torch.zeros(2, 1, 48, 48, dtype=torch.uint8))
    with pytest.raises(ValueError, match="n_classes must be an int >= 2"):
        build_sharma_cnn(1)
    with pytest.raises(ValueError, match="class_names has 2 names"):
        build_sharma_cnn(3, ("a", "b"))


def test_prepare_sharma_input_divides_by_255():
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).repeat_interleave(768).reshape(1, 1, 48, 48)
    x = prepare_sharma_input(images)
    assert x.dtype == torch.float32 and x.shape == (1, 1, 48, 48)
    assert sorted(x.unique().tolist()) == pytest.approx([0.0, 0.2, 1.0])
    with pytest.raises(ValueError, match=r"\(N, 1, 48, 48\)"):
        prepare_sharma_input(torch.zeros(1, 1, 64, 64, dtype=torch.uint8))
