"""The lightweight FER DCNN of Sharma (2020) probed in T et al., Table 1(a) and Figure 1.

The paper's networks NN1 (3 classes: happy, sad, neutral), NN2 (7 FER2013 classes) and NN3 (NN1's
architecture, untrained control) all share the Keras model of Figure 1(b); this is its PyTorch port
with the paper's layer names as submodule names, so ``dict(model.named_modules())["dropout_4"]``
is the 128-D penultimate layer of Study 1 and Study 3 and forward hooks by name work.

Keras semantics kept:

- ``Conv2D(..., activation='elu', padding='same', kernel_initializer='he_normal')`` is one layer: the
  output of ``conv2d_k`` is *after* the ELU, as in Keras, followed by ``batchnorm_k``
  (the order conv -> ELU -> BatchNorm of Sharma's notebook);
- ``BatchNormalization()`` defaults: momentum 0.99 (torch ``momentum=0.01``), epsilon 1e-3;
- ``he_normal`` = truncated normal, stddev ``sqrt(2 / fan_in) / 0.8796`` cut at 2 stddev, biases 0;
  the output ``Dense`` keeps the Keras default ``glorot_uniform``;
- ``out_layer`` returns logits: the Keras softmax is left to the loss (``nn.CrossEntropyLoss``) or to
  :meth:`SharmaCNN.probabilities`.

Input: ``(N, 1, 48, 48)`` float in ``[0, 1]`` = uint8 pixels / 255, with no mean or standard-deviation
normalisation (Sharma's notebook divides by 255 only); :func:`prepare_sharma_input` does this.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from affectlab.data.taxonomy import FER2013_CLASSES  # 0 angry ... 6 neutral

INPUT_SIDE = 48

SHARMA_VARIANTS: dict[str, tuple[str, ...]] = {
    "NN1": ("happy", "sad", "neutral"),
    "NN2": FER2013_CLASSES,
    "NN3": ("happy", "sad", "neutral"),
}
"""Table 1(a): the class names of each network; NN3 is NN1's architecture, left untrained."""

LAYER_NAMES: tuple[str, ...] = (
    "conv2d_1", "batchnorm_1", "conv2d_2", "batchnorm_2", "maxpool2d_1", "dropout_1",
    "conv2d_3", "batchnorm_3", "conv2d_4", "batchnorm_4", "maxpool2d_2", "dropout_2",
    "conv2d_5", "batchnorm_5", "conv2d_6", "batchnorm_6", "maxpool2d_3", "dropout_3",
    "flatten", "dense_1", "batchnorm_7", "dropout_4", "out_layer",
)  # fmt: skip
"""Figure 1(b) layer names, in forward order (the names of the model's direct submodules)."""

KERAS_BN_MOMENTUM = 0.01  # torch convention: 1 - Keras momentum 0.99
KERAS_BN_EPS = 1e-3
_TRUNC_NORMAL_STD_CORRECTION = 0.87962566103423978  # std of a unit normal truncated at +-2


def he_normal_(weight: torch.Tensor) -> torch.Tensor:
    """Keras ``he_normal`` in place: truncated normal (+-2 std), variance ``2 / fan_in``."""
    fan_in = weight[0].numel()  # in_channels * kh * kw for convolutions, in_features for Linear
    std = math.sqrt(2.0 / fan_in) / _TRUNC_NORMAL_STD_CORRECTION
    with torch.no_grad():
        return nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2 * std, b=2 * std)


class ConvELU(nn.Module):
    """Keras ``Conv2D(filters, k, activation='elu', padding='same')``: output is after the ELU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for symmetric 'same' padding, got {kernel_size}")
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.act = nn.ELU()
        he_normal_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class DenseELU(nn.Module):
    """Keras ``Dense(units, activation='elu', kernel_initializer='he_normal')``."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.act = nn.ELU()
        he_normal_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(x))


def _keras_batchnorm(num_features: int, dims: int) -> nn.Module:
    cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    return cls(num_features, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)


class SharmaCNN(nn.Module):
    """Sharma (2020) DCNN, Figure 1(b) of T et al.; submodules carry the paper's layer names.

    Args:
        n_classes: size of ``out_layer`` (3 for NN1/NN3, 7 for NN2).
        class_names: optional names of the output classes (stored, for plots); length ``n_classes``.

    ``forward(x)``: ``x`` (N, 1, 48, 48) float in [0, 1] -> logits (N, n_classes).
    """

    def __init__(self, n_classes: int, class_names: tuple[str, ...] | None = None):
        super().__init__()
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
        if class_names is not None and len(class_names) != n_classes:
            raise ValueError(f"class_names has {len(class_names)} names but n_classes={n_classes}")
        self.n_classes = n_classes
        self.class_names = tuple(class_names) if class_names is not None else None
        blocks = ((1, 64, 5, 0.4), (64, 128, 3, 0.4), (128, 256, 3, 0.5))
        for b, (c_in, c_out, k, p_drop) in enumerate(blocks):
            first, second = 2 * b + 1, 2 * b + 2
            self.add_module(f"conv2d_{first}", ConvELU(c_in, c_out, k))
            self.add_module(f"batchnorm_{first}", _keras_batchnorm(c_out, 2))
            self.add_module(f"conv2d_{second}", ConvELU(c_out, c_out, k))
            self.add_module(f"batchnorm_{second}", _keras_batchnorm(c_out, 2))
            self.add_module(f"maxpool2d_{b + 1}", nn.MaxPool2d(2))
            self.add_module(f"dropout_{b + 1}", nn.Dropout(p_drop))
        side = INPUT_SIDE // 8
        self.flatten = nn.Flatten()
        self.dense_1 = DenseELU(256 * side * side, 128)  # 9,216 -> 128
        self.batchnorm_7 = _keras_batchnorm(128, 1)
        self.dropout_4 = nn.Dropout(0.6)
        self.out_layer = nn.Linear(128, n_classes)
        nn.init.xavier_uniform_(self.out_layer.weight)  # Keras Dense default: glorot_uniform
        nn.init.zeros_(self.out_layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, INPUT_SIDE, INPUT_SIDE):
            raise ValueError(
                f"SharmaCNN expects input (N, 1, {INPUT_SIDE}, {INPUT_SIDE}) float in [0, 1]; "
                f"got shape {tuple(x.shape)}"
            )
        if not torch.is_floating_point(x):
            raise ValueError(f"SharmaCNN expects float input in [0, 1] (pixels / 255); got {x.dtype}")
        # Keras flattens channels-last (H, W, C); we flatten (C, H, W). The order of the 9,216
        # features differs but no Keras weights are loaded here, so nothing depends on it.
        for name in LAYER_NAMES:
            x = getattr(self, name)(x)
        return x

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax of the logits (the Keras ``out_layer`` activation), without gradient."""
        return torch.softmax(self(x), dim=1)


def build_sharma_cnn(n_classes: int, class_names: tuple[str, ...] | None = None) -> SharmaCNN:
    """A freshly initialised Sharma CNN with ``n_classes`` outputs (Keras initialisers)."""
    return SharmaCNN(n_classes, class_names)


def build_sharma_variant(name: str) -> SharmaCNN:
    """NN1, NN2 or NN3 of Table 1(a), untrained (NN3 stays so; train NN1 and NN2 on FER2013)."""
    if name not in SHARMA_VARIANTS:
        raise ValueError(f"variant {name!r} is unknown; choose one of {sorted(SHARMA_VARIANTS)}")
    classes = SHARMA_VARIANTS[name]
    return SharmaCNN(len(classes), classes)


def prepare_sharma_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 faces (N, 1, 48, 48) -> float32 in [0, 1] (pixels / 255), Sharma's only preprocessing."""
    if images.dtype != torch.uint8:
        raise ValueError(f"prepare_sharma_input expects uint8 pixels; got {images.dtype}")
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, INPUT_SIDE, INPUT_SIDE):
        raise ValueError(
            f"prepare_sharma_input expects (N, 1, {INPUT_SIDE}, {INPUT_SIDE}); got {tuple(images.shape)}"
        )
    return images.float() / 255.0
