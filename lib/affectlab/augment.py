"""Batch augmentation on the device: whole batches of float images, no per-sample PIL work.

The recipes the book's papers use are the standard FER ones: random crop with padding or random
resized crop, horizontal flip, mild brightness/contrast jitter and random erasing (POSTER-Var,
"Experiment details": "random horizontal flipping and random erasing"; Table 1 adds rotation and
random crop). Every random number is drawn from a ``torch.Generator`` the caller passes (the data
module's shuffling generator, whose state the trainer checkpoints), on that generator's device,
and then moved to the batch's device, so a seed gives the same augmented batch on CPU and CUDA.

Inputs are float images (N, C, H, W) in [0, 1], before normalisation; outputs keep the shape.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from affectlab.config import ConfigError


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """What :class:`BatchAugment` does; every default is "off" except the flip.

    Attributes:
        crop_padding: random crop with this many pixels of padding on each side (0 = off).
        crop_padding_mode: "constant" (zeros), "reflect" or "replicate" padding.
        resized_crop_scale: (min, max) fraction of the image area kept by a random resized crop,
            e.g. (0.8, 1.0); None = off. Uses ``resized_crop_ratio`` for the aspect ratio range.
        rotation_degrees: random rotation in [-d, d] degrees (0 = off); shares one bilinear resample
            with the resized crop.
        hflip_p: probability of a horizontal flip per image.
        brightness: brightness factor drawn in [1 - b, 1 + b] (0 = off).
        contrast: contrast factor drawn in [1 - c, 1 + c] around each image's mean (0 = off).
        erase_p: probability of random erasing per image (0 = off).
        erase_scale: (min, max) fraction of the area erased; erase_ratio: aspect ratio range.
        erase_value: the value written into the erased rectangle (images are in [0, 1]).
    """

    crop_padding: int = 0
    crop_padding_mode: str = "constant"
    resized_crop_scale: tuple[float, float] | None = None
    resized_crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    rotation_degrees: float = 0.0
    hflip_p: float = 0.5
    brightness: float = 0.0
    contrast: float = 0.0
    erase_p: float = 0.0
    erase_scale: tuple[float, float] = (0.02, 0.33)
    erase_ratio: tuple[float, float] = (0.3, 3.3)
    erase_value: float = 0.0

    def __post_init__(self) -> None:
        def fail(field: str, expected: str) -> None:
            raise ConfigError(f"AugmentConfig.{field} must be {expected}; got {getattr(self, field)!r}")

        if isinstance(self.crop_padding, bool) or not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            fail("crop_padding", "an int >= 0")
        if self.crop_padding_mode not in ("constant", "reflect", "replicate"):
            fail("crop_padding_mode", "one of 'constant', 'reflect', 'replicate'")
        if self.resized_crop_scale is not None:
            object.__setattr__(self, "resized_crop_scale", tuple(self.resized_crop_scale))
            lo, hi = self.resized_crop_scale
            if not 0 < lo <= hi <= 1:
                fail("resized_crop_scale", "(min, max) with 0 < min <= max <= 1, or None")
        for field in ("resized_crop_ratio", "erase_ratio"):
            value = tuple(getattr(self, field))
            object.__setattr__(self, field, value)
            if len(value) != 2 or not 0 < value[0] <= value[1]:
                fail(field, "(min, max) with 0 < min <= max")
        object.__setattr__(self, "erase_scale", tuple(self.erase_scale))
        if len(self.erase_scale) != 2 or not 0 < self.erase_scale[0] <= self.erase_scale[1] <= 1:
            fail("erase_scale", "(min, max) with 0 < min <= max <= 1")
        if self.crop_padding and self.resized_crop_scale is not None:
            fail("crop_padding", "0 when resized_crop_scale is set (choose one crop)")
        for field in ("hflip_p", "erase_p"):
            if not 0 <= getattr(self, field) <= 1:
                fail(field, "a probability in [0, 1]")
        for field in ("brightness", "contrast"):
            if not 0 <= getattr(self, field) < 1:
                fail(field, "in [0, 1)")
        if not 0 <= self.rotation_degrees <= 180:
            fail("rotation_degrees", "in [0, 180]")


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``n`` uniform draws in [low, high) from ``generator`` (on its device), moved to ``device``."""
    draws = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64)
    return (low + (high - low) * draws).to(device)


def random_crop_with_padding(
    x: torch.Tensor, padding: int, generator: torch.Generator, mode: str = "constant"
) -> torch.Tensor:
    """Pad every image by ``padding`` pixels and cut a random (H, W) window from each (integer shift)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4, mode=mode)
    top = (_uniform(n, 0, 2 * padding + 1, generator, x.device)).floor().long().clamp_max(2 * padding)
    left = (_uniform(n, 0, 2 * padding + 1, generator, x.device)).floor().long().clamp_max(2 * padding)
    rows = top[:, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = left[:, None] + torch.arange(w, device=x.device)  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    channels_last = padded.permute(0, 2, 3, 1)  # (N, H+2p, W+2p, C)
    return channels_last[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def random_affine_crop(
    x: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] | None,
    ratio: tuple[float, float],
    degrees: float,
) -> torch.Tensor:
    """Random resized crop (area fraction in ``scale``, aspect in ``ratio``) and rotation in one resample.

    Each image gets a crop box of area ``s * H * W`` and aspect ``r`` (log-uniform), at a random
    position inside the image, rotated by an angle in [-degrees, degrees], resampled bilinearly to
    (H, W) with ``affine_grid``/``grid_sample`` (zeros outside the image).
    """
    n = x.shape[0]
    dev = x.device
    if scale is not None:
        area = _uniform(n, scale[0], scale[1], generator, dev)
        log_r = _uniform(n, math.log(ratio[0]), math.log(ratio[1]), generator, dev)
        aspect = log_r.exp()
        # Box side fractions (of W and H); clipped to the image.
        fw = (area * aspect).sqrt().clamp(max=1.0)
        fh = (area / aspect).sqrt().clamp(max=1.0)
        # Centre in normalised coordinates so the box stays inside [-1, 1].
        cx = (1 - fw) * _uniform(n, -1, 1, generator, dev)
        cy = (1 - fh) * _uniform(n, -1, 1, generator, dev)
    else:
        fw = fh = torch.ones(n, device=dev, dtype=torch.float64)
        cx = cy = torch.zeros(n, device=dev, dtype=torch.float64)
    angle = _uniform(n, -degrees, degrees, generator, dev) * (math.pi / 180) if degrees else torch.zeros_like(fw)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack(
        [
            torch.stack([fw * cos, -fh * sin, cx], dim=1),
            torch.stack([fw * sin, fh * cos, cy], dim=1),
        ],
        dim=1,
    ).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_hflip(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Flip each image left-right with probability ``p``."""
    flip = _uniform(x.shape[0], 0, 1, generator, x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_brightness_contrast(
    x: torch.Tensor, brightness: float, contrast: float, generator: torch.Generator
) -> torch.Tensor:
    """Scale intensities by b in [1-brightness, 1+brightness], then stretch around each image's mean
    by c in [1-contrast, 1+contrast] (torchvision ColorJitter semantics); clamp to [0, 1]."""
    n = x.shape[0]
    if brightness:
        b = _uniform(n, 1 - brightness, 1 + brightness, generator, x.device).to(x.dtype)
        x = x * b[:, None, None, None]
    if contrast:
        c = _uniform(n, 1 - contrast, 1 + contrast, generator, x.device).to(x.dtype)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * c[:, None, None, None] + mean
    return x.clamp(0.0, 1.0)


def random_erasing(
    x: torch.Tensor,
    p: float,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    value: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Random erasing (Zhong et al. 2020): with probability ``p`` per image, fill one rectangle of
    area fraction in ``scale`` and aspect ratio in ``ratio`` (log-uniform) with ``value``.
    Rectangles are clipped to the image instead of torchvision's 10 retries."""
    n, _, h, w = x.shape
    dev = x.device
    apply = _uniform(n, 0, 1, generator, dev) < p
    area = _uniform(n, scale[0], scale[1], generator, dev) * (h * w)
    aspect = _uniform(n, math.log(ratio[0]), math.log(ratio[1]), generator, dev).exp()
    eh = (area * aspect).sqrt().round().clamp(1, h).long()
    ew = (area / aspect).sqrt().round().clamp(1, w).long()
    top = (_uniform(n, 0, 1, generator, dev) * (h - eh + 1)).floor().long()
    left = (_uniform(n, 0, 1, generator, dev) * (w - ew + 1)).floor().long()
    rows = torch.arange(h, device=dev)[None, :]
    cols = torch.arange(w, device=dev)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])  # (N, H)
    in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])  # (N, W)
    mask = in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None]  # (N, H, W)
    return x.masked_fill(mask[:, None], value)


class BatchAugment(nn.Module):
    """Augment a float batch (N, C, H, W) in [0, 1] on its device, seeded by a passed generator.

    Order: crop (padding crop, or resized crop + rotation) -> horizontal flip ->
    brightness/contrast -> random erasing. In ``eval()`` mode the batch passes through unchanged.
    """

    def __init__(self, config: AugmentConfig | None = None) -> None:
        super().__init__()
        self.config = config or AugmentConfig()

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if not self.training:
            return x
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"BatchAugment expects a float batch (N, C, H, W); got {x.dtype} {tuple(x.shape)}")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"BatchAugment needs a torch.Generator; got {type(generator).__name__}")
        c = self.config
        if c.crop_padding:
            x = random_crop_with_padding(x, c.crop_padding, generator, c.crop_padding_mode)
        if c.resized_crop_scale is not None or c.rotation_degrees:
            x = random_affine_crop(x, generator, c.resized_crop_scale, c.resized_crop_ratio, c.rotation_degrees)
        if c.hflip_p:
            x = random_hflip(x, c.hflip_p, generator)
        if c.brightness or c.contrast:
            x = random_brightness_contrast(x, c.brightness, c.contrast, generator)
        if c.erase_p:
            x = random_erasing(x, c.erase_p, c.erase_scale, c.erase_ratio, c.erase_value, generator)
        return x

    def describe(self) -> dict:
        """The configuration as a plain dict (enters the trainer's configuration hash)."""
        return dataclasses.asdict(self.config)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.describe().items())
