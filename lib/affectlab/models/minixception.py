"""FER2013-trained mini-Xception (Arriaga et al. 2017) from its Keras HDF5 file, with h5py alone.

Chapter 02 probes a second, independently trained FER network alongside the Sharma CNN (T et al.,
Study 3 and Study 4 use several networks: NN2, ResMaskNet, EmoFAN; ResMaskNet and EmoFAN weights
cannot be shipped, the MIT-licensed mini-Xception can). :func:`load_minixception` reads the Keras
2.x ``model_config`` JSON stored in the file's attributes, builds the same layer graph in PyTorch
(one submodule per Keras layer, named like the Keras layer, so probing hooks find
``"add_4"`` or ``"global_average_pooling2d_1"``) and copies the weights:

- ``Conv2D`` kernel (kh, kw, in, out) -> (out, in, kh, kw); ``SeparableConv2D`` depthwise kernel
  (kh, kw, in, m) -> grouped conv (in * m, 1, kh, kw) and pointwise (1, 1, in * m, out) ->
  (out, in * m, 1, 1), bias after the pointwise step; ``Dense`` (in, out) -> (out, in);
- ``BatchNormalization`` gamma, beta, moving mean and variance, epsilon from the layer config;
- TensorFlow ``'same'`` padding reproduced exactly: total padding ``max((ceil(n / s) - 1) * s +
  (k - 1) * d + 1 - n, 0)``, the odd pixel at the bottom/right (max pooling pads with -inf, average
  pooling excludes padded pixels from the mean).

Keras models end in ``softmax``; the loaded model returns the **pre-softmax logits** (a final softmax
``Activation`` becomes ``nn.Identity`` under its Keras name, a final softmax ``Dense`` becomes
linear); :meth:`KerasGraphModel.probabilities` applies the softmax. The mini-Xception input is
(N, 1, 64, 64) float in [-1, 1] (``pixels / 255 * 2 - 1``): :func:`prepare_minixception_input`.
Output classes are FER2013's: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
``fer2013_big_XCEPTION.54-0.66.hdf5`` loads the same way.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from affectlab.data.taxonomy import FER2013_CLASSES

MINIXCEPTION_CLASSES: tuple[str, ...] = FER2013_CLASSES
MINIXCEPTION_INPUT_SIDE = 64


class KerasFormatError(ValueError):
    """The Keras HDF5 file cannot be converted; the message names the file and the layer."""


# ---------------------------------------------------------------------------------------------
# TensorFlow padding semantics
# ---------------------------------------------------------------------------------------------


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow ``'same'`` padding of one spatial axis: (before, after), after >= before."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _static_same_padding(kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
                         padding: str) -> tuple[int, int] | None:
    """Symmetric padding a torch conv can apply itself (stride 1, even total), else None."""
    if padding != "same":
        return (0, 0)
    totals = [(k - 1) * d for k, d in zip(kernel, dilation)]
    if all(s == 1 for s in stride) and all(t % 2 == 0 for t in totals):
        return (totals[0] // 2, totals[1] // 2)
    return None  # size-dependent, possibly asymmetric: F.pad at run time


def _pad_same(
    x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int], value: float
) -> torch.Tensor:
    top, bottom = same_padding(x.shape[2], kernel[0], stride[0], dilation[0])
    left, right = same_padding(x.shape[3], kernel[1], stride[1], dilation[1])
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda x: x,
    "relu": F.relu,
    "elu": F.elu,
    "selu": F.selu,
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": lambda x: torch.clamp(0.2 * x + 0.5, 0.0, 1.0),  # Keras 2 definition
    "tanh": torch.tanh,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "softmax": lambda x: torch.softmax(x, dim=1),  # channels axis in NCHW / features in (N, D)
}


def _activation(name: str, where: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name not in _ACTIVATIONS:
        raise KerasFormatError(f"{where}: activation {name!r} is not supported; known: {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


# ---------------------------------------------------------------------------------------------
# Keras layers as torch modules (NCHW inside; Keras channels-last semantics at Flatten)
# ---------------------------------------------------------------------------------------------


class KerasConv2d(nn.Module):
    """Keras ``Conv2D``: 'same'/'valid' padding, stride, dilation, optional bias and activation."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int], stride: tuple[int, int],
                 dilation: tuple[int, int], padding: str, bias: bool, activation: str, where: str):
        super().__init__()
        static = _static_same_padding(kernel, stride, dilation, padding)
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, dilation=dilation, bias=bias,
                              padding=static or 0)
        self.padding, self.activation = padding, activation
        self._pad_at_run_time = static is None
        self._act = _activation(activation, where)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pad_at_run_time:
            x = _pad_same(x, self.conv.kernel_size, self.conv.stride, self.conv.dilation, 0.0)
        return self._act(self.conv(x))

    def load_keras(self, w: dict[str, np.ndarray]) -> None:
        _copy(self.conv.weight, w["kernel"].transpose(3, 2, 0, 1))
        if self.conv.bias is not None:
            _copy(self.conv.bias, w["bias"])


class KerasDepthwiseConv2d(nn.Module):
    """Keras ``DepthwiseConv2D`` (a grouped convolution, ``depth_multiplier`` outputs per channel)."""

    def __init__(self, c_in: int, multiplier: int, kernel: tuple[int, int], stride: tuple[int, int],
                 dilation: tuple[int, int], padding: str, bias: bool, activation: str, where: str):
        super().__init__()
        static = _static_same_padding(kernel, stride, dilation, padding)
        self.conv = nn.Conv2d(c_in, c_in * multiplier, kernel, stride=stride, dilation=dilation,
                              groups=c_in, bias=bias, padding=static or 0)
        self.padding, self.activation = padding, activation
        self._pad_at_run_time = static is None
        self._act = _activation(activation, where)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pad_at_run_time:
            x = _pad_same(x, self.conv.kernel_size, self.conv.stride, self.conv.dilation, 0.0)
        return self._act(self.conv(x))

    def load_keras(self, w: dict[str, np.ndarray]) -> None:
        _copy(self.conv.weight, _depthwise_to_torch(w["depthwise_kernel"]))
        if self.conv.bias is not None:
            _copy(self.conv.bias, w["bias"])


class KerasSeparableConv2d(nn.Module):
    """Keras ``SeparableConv2D``: depthwise (padded, strided) -> pointwise 1x1 -> bias -> activation."""

    def __init__(self, c_in: int, c_out: int, multiplier: int, kernel: tuple[int, int],
                 stride: tuple[int, int], dilation: tuple[int, int], padding: str, bias: bool,
                 activation: str, where: str):
        super().__init__()
        static = _static_same_padding(kernel, stride, dilation, padding)
        self.depthwise = nn.Conv2d(c_in, c_in * multiplier, kernel, stride=stride, dilation=dilation,
                                   groups=c_in, bias=False, padding=static or 0)
        self.pointwise = nn.Conv2d(c_in * multiplier, c_out, 1, bias=bias)
        self.padding, self.activation = padding, activation
        self._pad_at_run_time = static is None
        self._act = _activation(activation, where)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pad_at_run_time:
            dw = self.depthwise
            x = _pad_same(x, dw.kernel_size, dw.stride, dw.dilation, 0.0)
        return self._act(self.pointwise(self.depthwise(x)))

    def load_keras(self, w: dict[str, np.ndarray]) -> None:
        _copy(self.depthwise.weight, _depthwise_to_torch(w["depthwise_kernel"]))
        _copy(self.pointwise.weight, w["pointwise_kernel"].transpose(3, 2, 0, 1))
        if self.pointwise.bias is not None:
            _copy(self.pointwise.bias, w["bias"])


class KerasBatchNorm(nn.BatchNorm2d):
    """Keras ``BatchNormalization`` on the channel axis of (N, C, H, W) or the feature axis of (N, C)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 4):
            raise ValueError(f"KerasBatchNorm expects (N, C) or (N, C, H, W); got {tuple(input.shape)}")

    def load_keras(self, w: dict[str, np.ndarray]) -> None:
        _copy(self.weight, w.get("gamma", np.ones(self.num_features, np.float32)))
        _copy(self.bias, w.get("beta", np.zeros(self.num_features, np.float32)))
        _copy(self.running_mean, w["moving_mean"])
        _copy(self.running_var, w["moving_variance"])


class KerasActivation(nn.Module):
    """Keras ``Activation`` layer."""

    def __init__(self, activation: str, where: str):
        super().__init__()
        self.activation = activation
        self._act = _activation(activation, where)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._act(x)

    def extra_repr(self) -> str:
        return self.activation


class KerasPool2d(nn.Module):
    """Keras ``MaxPooling2D`` / ``AveragePooling2D`` with TensorFlow 'same' semantics."""

    def __init__(self, kind: str, pool: tuple[int, int], stride: tuple[int, int], padding: str):
        super().__init__()
        self.kind, self.pool, self.stride, self.padding = kind, pool, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "max":
            if self.padding == "same":
                x = _pad_same(x, self.pool, self.stride, (1, 1), float("-inf"))
            return F.max_pool2d(x, self.pool, self.stride)
        if self.padding != "same":
            return F.avg_pool2d(x, self.pool, self.stride)
        ones = torch.ones_like(x[:1, :1])
        sums = F.avg_pool2d(_pad_same(x, self.pool, self.stride, (1, 1), 0.0), self.pool, self.stride)
        counts = F.avg_pool2d(_pad_same(ones, self.pool, self.stride, (1, 1), 0.0), self.pool, self.stride)
        return sums / counts  # TF excludes padded pixels from the average

    def extra_repr(self) -> str:
        return f"{self.kind}, pool={self.pool}, stride={self.stride}, padding={self.padding!r}"


class KerasGlobalPool2d(nn.Module):
    """Keras ``GlobalAveragePooling2D`` / ``GlobalMaxPooling2D``: (N, C, H, W) -> (N, C)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) if self.kind == "avg" else x.amax(dim=(2, 3))


class KerasMerge(nn.Module):
    """Keras ``Add``, ``Multiply``, ``Average``, ``Maximum`` or ``Concatenate`` (channels-last axis)."""

    def __init__(self, kind: str, axis: int = -1):
        super().__init__()
        self.kind, self.axis = kind, axis

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.kind == "concatenate":
            nd = xs[0].ndim
            axis = self.axis % nd  # Keras axis of channels-last data -> torch axis of NCHW
            dim = {1: 2, 2: 3, 3: 1}[axis] if nd == 4 else axis
            return torch.cat(xs, dim=dim)
        out = xs[0]
        for x in xs[1:]:
            if self.kind in ("add", "average"):
                out = out + x
            elif self.kind == "multiply":
                out = out * x
            else:
                out = torch.maximum(out, x)
        return out / len(xs) if self.kind == "average" else out

    def extra_repr(self) -> str:
        return self.kind


class KerasDense(nn.Module):
    """Keras ``Dense``: kernel (in, out), optional bias and activation."""

    def __init__(self, c_in: int, c_out: int, bias: bool, activation: str, where: str):
        super().__init__()
        self.linear = nn.Linear(c_in, c_out, bias=bias)
        self.activation = activation
        self._act = _activation(activation, where)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._act(self.linear(x))

    def load_keras(self, w: dict[str, np.ndarray]) -> None:
        _copy(self.linear.weight, w["kernel"].T)
        if self.linear.bias is not None:
            _copy(self.linear.bias, w["bias"])


class KerasFlatten(nn.Module):
    """Keras ``Flatten`` of channels-last data: (N, C, H, W) is flattened in (H, W, C) order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            x = x.permute(0, 2, 3, 1)
        return x.reshape(x.shape[0], -1)


class KerasZeroPadding2d(nn.Module):
    """Keras ``ZeroPadding2D`` with ((top, bottom), (left, right))."""

    def __init__(self, top: int, bottom: int, left: int, right: int):
        super().__init__()
        self.pads = (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads)


def _depthwise_to_torch(kernel: np.ndarray) -> np.ndarray:
    kh, kw, c_in, mult = kernel.shape  # torch output channel c * mult + m == TF's
    return kernel.transpose(2, 3, 0, 1).reshape(c_in * mult, 1, kh, kw)


def _copy(target: torch.Tensor, value: np.ndarray) -> None:
    value = np.ascontiguousarray(value, dtype=np.float32)
    if tuple(target.shape) != value.shape:
        raise KerasFormatError(f"weight shape {value.shape} does not fit parameter {tuple(target.shape)}")
    with torch.no_grad():
        target.copy_(torch.from_numpy(value))


# ---------------------------------------------------------------------------------------------
# The graph
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphNode:
    """One Keras layer in the graph: its module name and the names of the layers feeding it."""

    name: str
    class_name: str
    inbound: tuple[str, ...]


class KerasGraphModel(nn.Module):
    """A Keras functional/sequential model run in PyTorch, one submodule per Keras layer.

    ``forward(x)``: ``x`` (N, C, H, W) float, channels-first (the Keras input transposed) ->
    the output of the Keras model with its final softmax removed (logits).
    Attributes: ``nodes`` (the graph, in execution order), ``input_shape`` (C, H, W; None for a free
    axis), ``class_names``, ``source`` (the file it came from), ``keras_version``.
    """

    def __init__(self, nodes: list[GraphNode], modules: dict[str, nn.Module], input_name: str,
                 output_name: str, input_shape: tuple[int | None, ...], class_names: tuple[str, ...] | None,
                 source: str, keras_version: str):
        super().__init__()
        self.nodes = tuple(nodes)
        for name, module in modules.items():
            self.add_module(name, module)
        self.input_name, self.output_name = input_name, output_name
        self.input_shape = input_shape
        self.class_names = class_names
        self.source, self.keras_version = source, keras_version
        last_use: dict[str, int] = {}
        for i, node in enumerate(self.nodes):
            for src in node.inbound:
                last_use[src] = i
        self._last_use = last_use

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = self.input_shape
        ok = x.ndim == 1 + len(expected) and all(e is None or e == s for e, s in zip(expected, x.shape[1:]))
        if not ok:
            want = ", ".join("*" if e is None else str(e) for e in expected)
            raise ValueError(f"{Path(self.source).name} expects input (N, {want}); got {tuple(x.shape)}")
        if x.ndim == 4:  # NHWC in memory: the Keras layout, and 2-3x faster pooling on CPU
            x = x.contiguous(memory_format=torch.channels_last)
        tensors = {self.input_name: x}
        for i, node in enumerate(self.nodes):
            inputs = [tensors[src] for src in node.inbound]
            tensors[node.name] = getattr(self, node.name)(*inputs)
            for src in node.inbound:  # free intermediate tensors once no later layer reads them
                if self._last_use.get(src) == i and src != self.output_name:
                    tensors.pop(src, None)
        return tensors[self.output_name]

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax of the logits: the Keras model's own output."""
        return torch.softmax(self(x), dim=1)


_RESERVED_NAMES = frozenset(dir(KerasGraphModel)) | {
    "nodes", "input_name", "output_name", "input_shape", "class_names", "source", "keras_version", "_last_use",
}


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, (int, float)) else (int(value[0]), int(value[1]))


def _module_name(keras_name: str) -> str:
    name = re.sub(r"\W", "_", keras_name)
    return name if name and not name[0].isdigit() else f"layer_{name}"


def _layer_weights(group: h5py.Group, keras_name: str, where: str) -> dict[str, np.ndarray]:
    """Weights of one layer keyed by their short name (kernel, bias, gamma, moving_mean, ...)."""
    if keras_name not in group:
        return {}
    layer_group = group[keras_name]
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in layer_group.attrs.get("weight_names", [])]
    weights: dict[str, np.ndarray] = {}
    for full in names:
        short = full.split("/")[-1].split(":")[0]
        if short in weights:
            raise KerasFormatError(f"{where}: two weights named {short!r}")
        weights[short] = np.asarray(layer_group[full], dtype=np.float32)
    return weights


def _build_layer(class_name: str, cfg: dict[str, Any], w: dict[str, np.ndarray], channels: list[int],
                 where: str) -> tuple[nn.Module, int | None]:
    """The torch module of one Keras layer and its output channel count (None if unknown)."""
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise KerasFormatError(f"{where}: only data_format='channels_last' is supported")
    activation = cfg.get("activation", "linear")
    if class_name == "Conv2D":
        kh, kw, c_in, c_out = w["kernel"].shape
        module = KerasConv2d(c_in, c_out, (kh, kw), _pair(cfg["strides"]), _pair(cfg.get("dilation_rate", 1)),
                             cfg["padding"], cfg.get("use_bias", True), activation, where)
        return module, c_out
    if class_name == "SeparableConv2D":
        kh, kw, c_in, mult = w["depthwise_kernel"].shape
        c_out = w["pointwise_kernel"].shape[-1]
        module = KerasSeparableConv2d(c_in, c_out, mult, (kh, kw), _pair(cfg["strides"]),
                                      _pair(cfg.get("dilation_rate", 1)), cfg["padding"],
                                      cfg.get("use_bias", True), activation, where)
        return module, c_out
    if class_name == "DepthwiseConv2D":
        kh, kw, c_in, mult = w["depthwise_kernel"].shape
        module = KerasDepthwiseConv2d(c_in, mult, (kh, kw), _pair(cfg["strides"]),
                                      _pair(cfg.get("dilation_rate", 1)), cfg["padding"],
                                      cfg.get("use_bias", True), activation, where)
        return module, c_in * mult
    if class_name == "BatchNormalization":
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if axis not in (-1, 3):
            raise KerasFormatError(f"{where}: BatchNormalization axis={axis}; only the last (channel) axis is supported")
        n = len(w["moving_mean"])
        module = KerasBatchNorm(n, eps=float(cfg.get("epsilon", 1e-3)), momentum=round(1.0 - float(cfg.get("momentum", 0.99)), 9))
        return module, n
    if class_name == "Activation":
        return KerasActivation(activation, where), channels[0]
    if class_name in ("MaxPooling2D", "AveragePooling2D"):
        pool = _pair(cfg["pool_size"])
        stride = _pair(cfg.get("strides") or pool)
        kind = "max" if class_name == "MaxPooling2D" else "avg"
        return KerasPool2d(kind, pool, stride, cfg.get("padding", "valid")), channels[0]
    if class_name in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        return KerasGlobalPool2d("avg" if "Average" in class_name else "max"), channels[0]
    if class_name in ("Add", "Multiply", "Average", "Maximum"):
        return KerasMerge(class_name.lower()), channels[0]
    if class_name == "Concatenate":
        known = None if any(c is None for c in channels) else sum(channels)
        return KerasMerge("concatenate", int(cfg.get("axis", -1))), known
    if class_name == "Dense":
        c_in, c_out = w["kernel"].shape
        return KerasDense(c_in, c_out, cfg.get("use_bias", True), activation, where), c_out
    if class_name == "Flatten":
        return KerasFlatten(), None
    if class_name == "Dropout":
        return nn.Dropout(float(cfg.get("rate", 0.0))), channels[0]
    if class_name == "ZeroPadding2D":
        pad = cfg.get("padding", 1)
        if isinstance(pad, int):
            top = bottom = left = right = pad
        elif isinstance(pad[0], int):
            (top, bottom), (left, right) = (pad[0], pad[0]), (pad[1], pad[1])
        else:
            (top, bottom), (left, right) = pad
        return KerasZeroPadding2d(top, bottom, left, right), channels[0]
    raise KerasFormatError(f"{where}: Keras layer class {class_name!r} is not supported")


def _graph_layers(model_config: dict[str, Any], where: str) -> tuple[list[dict[str, Any]], str, str]:
    """(layers with ``inbound`` name lists, input layer name, output layer name) of a model config."""
    kind, config = model_config.get("class_name"), model_config.get("config")
    if kind == "Sequential":
        layers = config if isinstance(config, list) else config.get("layers", [])
        out: list[dict[str, Any]] = []
        previous = "input"
        first = layers[0]["config"] if layers else {}
        if "batch_input_shape" not in first:
            raise KerasFormatError(f"{where}: first layer of the Sequential model has no batch_input_shape")
        out.append({"class_name": "InputLayer", "name": previous, "config": first, "inbound": []})
        for layer in layers:
            name = layer["config"]["name"]
            out.append({"class_name": layer["class_name"], "name": name, "config": layer["config"],
                        "inbound": [previous]})
            previous = name
        return out, "input", previous
    if kind not in ("Model", "Functional"):
        raise KerasFormatError(f"{where}: model_config class {kind!r} is not a Keras Model or Sequential")
    layers = []
    for layer in config["layers"]:
        nodes = layer.get("inbound_nodes", [])
        if len(nodes) > 1:
            raise KerasFormatError(f"{where}: layer {layer['name']!r} is shared (called {len(nodes)} times)")
        inbound = [entry[0] for entry in nodes[0]] if nodes else []
        layers.append({"class_name": layer["class_name"], "name": layer["name"], "config": layer["config"],
                       "inbound": inbound})
    if len(config["input_layers"]) != 1 or len(config["output_layers"]) != 1:
        raise KerasFormatError(f"{where}: only single-input, single-output models are supported")
    return layers, config["input_layers"][0][0], config["output_layers"][0][0]


def load_keras_hdf5(path: str | Path, class_names: tuple[str, ...] | None = None) -> KerasGraphModel:
    """Any supported Keras 2.x HDF5 model file (``model.save``) as a :class:`KerasGraphModel` in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Keras weights file {path} does not exist")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise KerasFormatError(f"{path}: not a readable HDF5 file ({exc})") from None
    with h5:
        raw = h5.attrs.get("model_config")
        if raw is None:
            raise KerasFormatError(f"{path}: no 'model_config' attribute (saved with save_weights?); "
                                   "the architecture cannot be rebuilt")
        model_config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        keras_version = h5.attrs.get("keras_version", b"unknown")
        keras_version = keras_version.decode() if isinstance(keras_version, bytes) else str(keras_version)
        group = h5["model_weights"] if "model_weights" in h5 else h5
        layers, input_name, output_name = _graph_layers(model_config, str(path))

        nodes: list[GraphNode] = []
        modules: dict[str, nn.Module] = {}
        renamed: dict[str, str] = {}
        out_channels: dict[str, int | None] = {}
        input_shape: tuple[int | None, ...] | None = None
        for layer in layers:
            keras_name, class_name, cfg = layer["name"], layer["class_name"], layer["config"]
            where = f"{path}: layer {keras_name!r} ({class_name})"
            name = _module_name(keras_name)
            if name in renamed.values() or name in _RESERVED_NAMES:
                raise KerasFormatError(f"{where}: module name {name!r} collides with another layer or attribute")
            renamed[keras_name] = name
            if class_name == "InputLayer" or keras_name == input_name:
                shape = cfg["batch_input_shape"][1:]
                input_shape = (shape[-1], *shape[:-1]) if len(shape) == 3 else tuple(shape)
                out_channels[keras_name] = shape[-1]
                if class_name != "InputLayer":
                    raise KerasFormatError(f"{where}: the input must be an InputLayer")
                continue
            weights = _layer_weights(group, keras_name, where)
            if class_name == "Activation" and keras_name == output_name and cfg.get("activation") == "softmax":
                module: nn.Module = nn.Identity()  # return logits; the softmax is in probabilities()
                out_channels[keras_name] = out_channels[layer["inbound"][0]]
            else:
                if class_name == "Dense" and keras_name == output_name and cfg.get("activation") == "softmax":
                    cfg = {**cfg, "activation": "linear"}
                try:
                    module, out_channels[keras_name] = _build_layer(
                        class_name, cfg, weights, [out_channels[s] for s in layer["inbound"]], where)
                    if hasattr(module, "load_keras"):
                        module.load_keras(weights)
                    elif weights:
                        raise KerasFormatError(f"{where}: has weights {sorted(weights)} but the layer takes none")
                except KeyError as exc:
                    raise KerasFormatError(f"{where}: missing weight or config key {exc}") from None
                except KerasFormatError as exc:
                    if str(exc).startswith(str(path)):
                        raise
                    raise KerasFormatError(f"{where}: {exc}") from None
            modules[name] = module
            missing = [s for s in layer["inbound"] if s not in renamed]
            if missing:
                raise KerasFormatError(f"{where}: inputs {missing} are not defined before it")
            nodes.append(GraphNode(name, class_name, tuple(renamed[s] for s in layer["inbound"])))
    if input_shape is None:
        raise KerasFormatError(f"{path}: no input layer found")
    model = KerasGraphModel(nodes, modules, renamed[input_name], renamed[output_name], input_shape,
                            class_names, str(path), keras_version)
    return model.to(memory_format=torch.channels_last).eval()


def load_minixception(path: str | Path) -> KerasGraphModel:
    """The FER2013 mini-Xception (or big-Xception) from its Keras 2.0.5 HDF5 file, in eval mode.

    Input (N, 1, 64, 64) float in [-1, 1] (see :func:`prepare_minixception_input`); output 7
    pre-softmax logits, classes :data:`MINIXCEPTION_CLASSES` (0 angry ... 6 neutral).
    """
    model = load_keras_hdf5(path, class_names=MINIXCEPTION_CLASSES)
    if model.input_shape[0] != 1:
        raise KerasFormatError(f"{path}: expected a 1-channel (greyscale) input, got shape {model.input_shape}")
    with torch.no_grad():
        side = [s or MINIXCEPTION_INPUT_SIDE for s in model.input_shape[1:]]
        n_out = model(torch.zeros(1, 1, *side)).shape[1]
    if n_out != len(MINIXCEPTION_CLASSES):
        raise KerasFormatError(f"{path}: expected {len(MINIXCEPTION_CLASSES)} FER2013 outputs, got {n_out}")
    return model


def prepare_minixception_input(images: torch.Tensor, side: int = MINIXCEPTION_INPUT_SIDE) -> torch.Tensor:
    """uint8 faces (N, 1, H, W) -> float32 (N, 1, side, side) in [-1, 1], as Arriaga et al. feed them.

    Bilinear resize (half-pixel centres, as OpenCV's ``INTER_LINEAR`` used by the original code;
    anti-aliased when shrinking), then ``pixels / 255 * 2 - 1``.
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"prepare_minixception_input expects uint8 pixels; got {images.dtype}")
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"prepare_minixception_input expects (N, 1, H, W); got {tuple(images.shape)}")
    x = images.float()
    if tuple(x.shape[2:]) != (side, side):
        shrink = min(x.shape[2:]) > side
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=shrink)
        x = x.clamp(0.0, 255.0)
    return x / 255.0 * 2.0 - 1.0
