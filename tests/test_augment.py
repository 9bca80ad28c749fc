"""Batch augmentation: shapes, seeded determinism, and that each operation does what it says."""

from __future__ import annotations

import pytest
import torch

from affectlab.augment import (
    AugmentConfig,
    BatchAugment,
    random_affine_crop,
    random_brightness_contrast,
    random_crop_with_padding,
    random_erasing,
    random_hflip,
)
from affectlab.config import ConfigError

FULL = AugmentConfig(crop_padding=2, hflip_p=0.5, brightness=0.2, contrast=0.2, erase_p=0.5)
RESIZED = AugmentConfig(resized_crop_scale=(0.6, 1.0), rotation_degrees=10, hflip_p=0.5, erase_p=0.5)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batch(n: int = 8, c: int = 1, side: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, c, side, side, generator=gen(seed))


@pytest.mark.parametrize("config", [FULL, RESIZED, AugmentConfig()], ids=["pad-crop", "resized-crop", "default"])
@pytest.mark.parametrize("shape", [(8, 1, 12, 12), (4, 3, 10, 14)])
def test_shapes_dtype_and_range_are_kept(config, shape):
    x = torch.rand(*shape, generator=gen(3))
    out = BatchAugment(config)(x, gen())
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.mark.parametrize("config", [FULL, RESIZED], ids=["pad-crop", "resized-crop"])
def test_same_seed_same_batch_other_seed_other_batch(config):
    x = batch()
    aug = BatchAugment(config)
    a, b, c = aug(x, gen(5)), aug(x, gen(5)), aug(x, gen(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, x)


def test_generator_state_advances_so_consecutive_batches_differ():
    x = batch()
    g = gen(0)
    aug = BatchAugment(FULL)
    assert not torch.equal(aug(x, g), aug(x, g))


def test_flip_actually_flips():
    x = batch()
    assert torch.equal(random_hflip(x, 1.0, gen()), x.flip(-1))
    assert torch.equal(random_hflip(x, 0.0, gen()), x)
    mixed = random_hflip(x, 0.5, gen(2))
    flipped = [bool(torch.equal(m, xi.flip(-1))) for m, xi in zip(mixed, x)]
    kept = [bool(torch.equal(m, xi)) for m, xi in zip(mixed, x)]
    assert all(f != k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
    only_flip = BatchAugment(AugmentConfig(hflip_p=1.0))
    assert torch.equal(only_flip(x, gen()), x.flip(-1))


def test_eval_mode_passes_through():
    x = batch()
    aug = BatchAugment(FULL).eval()
    assert aug(x, gen()) is x


def test_padding_crop_is_an_integer_shift_of_the_padded_image():
    x = batch(n=6, side=8)
    p = 2
    out = random_crop_with_padding(x, p, gen(4))
    padded = torch.nn.functional.pad(x, (p,) * 4)
    for o, pi in zip(out, padded):
        windows = [pi[:, t:t + 8, s:s + 8] for t in range(2 * p + 1) for s in range(2 * p + 1)]
        assert any(torch.equal(o, w) for w in windows)
    assert not torch.equal(out, x)  # with 25 offsets and 6 images some shift happened


def test_resized_crop_of_full_area_without_rotation_is_identity():
    x = batch()
    out = random_affine_crop(x, gen(), scale=(1.0, 1.0), ratio=(1.0, 1.0), degrees=0.0)
    assert torch.allclose(out, x, atol=1e-5)


def test_resized_crop_zooms_a_ramp_by_the_side_fraction():
    side = 16
    ramp = torch.arange(side, dtype=torch.float32).repeat(side, 1) / side  # value = column / side
    x = ramp.expand(4, 1, side, side).contiguous()
    out = random_affine_crop(x, gen(7), scale=(0.25, 0.25), ratio=(1.0, 1.0), degrees=0.0)
    slope = out[:, 0, :, 3:-3].diff(dim=-1)  # interior columns: bilinear is exact on a ramp
    assert torch.allclose(slope, torch.full_like(slope, 0.5 / side), atol=1e-5)


def test_brightness_scales_each_image_by_one_factor():
    x = batch() * 0.5  # factors <= 1.3 keep values below 1: no clamping
    out = random_brightness_contrast(x, brightness=0.3, contrast=0.0, generator=gen())
    ratio = out / x
    per_image = ratio.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-5)
    assert float(per_image.min()) >= 0.7 - 1e-6 and float(per_image.max()) <= 1.3 + 1e-6


def test_contrast_keeps_the_image_mean():
    x = 0.25 + 0.5 * batch()
    out = random_brightness_contrast(x, brightness=0.0, contrast=0.3, generator=gen())
    assert torch.allclose(out.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-5)
    assert not torch.allclose(out, x)


def test_erasing_fills_one_rectangle_per_image_within_the_area_range():
    x = batch(n=16, side=20) * 0.9 + 0.05  # strictly inside (0, 1), so value 1.0 marks erased pixels
    out = random_erasing(x, p=1.0, scale=(0.05, 0.2), ratio=(0.5, 2.0), value=1.0, generator=gen())
    for o in out[:, 0]:
        erased = o == 1.0
        rows, cols = erased.any(1).nonzero().flatten(), erased.any(0).nonzero().flatten()
        box = erased[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert bool(box.all())  # a filled rectangle
        assert 0.02 * 400 <= int(erased.sum()) <= 0.3 * 400
    none = random_erasing(x, p=0.0, scale=(0.05, 0.2), ratio=(0.5, 2.0), value=1.0, generator=gen())
    assert torch.equal(none, x)


@pytest.mark.parametrize(
    "field, value",
    [("crop_padding", -1), ("hflip_p", 1.5), ("brightness", 1.0), ("resized_crop_scale", (0.5, 1.2)),
     ("erase_scale", (0.0, 0.1)), ("crop_padding_mode", "wrap"), ("rotation_degrees", -5)],
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        AugmentConfig(**{field: value})


def test_bad_inputs_raise_clear_errors():
    aug = BatchAugment(FULL)
    with pytest.raises(ValueError, match="float batch"):
        aug(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), gen())
    with pytest.raises(TypeError, match="torch.Generator"):
        aug(batch(), 0)
