"""The Keras HDF5 -> PyTorch conversion of mini-Xception, checked against an independent NumPy forward.

The NumPy reference below re-reads the HDF5 file itself and implements each Keras layer in NHWC
float64 from the TensorFlow definitions (no code shared with ``affectlab.models.minixception``).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from affectlab.models.minixception import (
    MINIXCEPTION_CLASSES,
    KerasFormatError,
    load_keras_hdf5,
    load_minixception,
    prepare_minixception_input,
    same_padding,
)

MINI = "fer2013_mini_XCEPTION.102-0.66.hdf5"
BIG = "fer2013_big_XCEPTION.54-0.66.hdf5"


# --------------------------------------------------------------------------------------------
# independent NumPy reference (NHWC, float64)
# --------------------------------------------------------------------------------------------


def _tf_pad(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], value: float) -> np.ndarray:
    pads = []
    for n, kk, ss in zip(x.shape[1:3], k, s):
        out = -(-n // ss)
        total = max((out - 1) * ss + kk - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def _windows(x: np.ndarray, k: tuple[int, int], s: tuple[int, int]) -> np.ndarray:
    return sliding_window_view(x, k, axis=(1, 2))[:, :: s[0], :: s[1]]  # N, Ho, Wo, C, kh, kw


def _np_layer(cls: str, cfg: dict, w: dict, xs: list[np.ndarray], is_output: bool) -> np.ndarray:
    x = xs[0]
    act = cfg.get("activation", "linear")
    if cls in ("Conv2D", "SeparableConv2D"):
        k, s = tuple(cfg["kernel_size"]), tuple(cfg["strides"])
        if cfg["padding"] == "same":
            x = _tf_pad(x, k, s, 0.0)
        win = _windows(x, k, s)
        if cls == "Conv2D":
            y = np.einsum("nhwcij,ijco->nhwo", win, w["kernel"])
        else:
            dw = np.einsum("nhwcij,ijcm->nhwcm", win, w["depthwise_kernel"])
            dw = dw.reshape(*dw.shape[:3], -1)
            y = np.einsum("nhwc,co->nhwo", dw, w["pointwise_kernel"][0, 0])
        if "bias" in w:
            y = y + w["bias"]
    elif cls == "Dense":
        y = x @ w["kernel"] + w.get("bias", 0.0)
    elif cls == "BatchNormalization":
        y = (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + cfg["epsilon"]) * w["gamma"] + w["beta"]
    elif cls in ("MaxPooling2D", "AveragePooling2D"):
        k, s = tuple(cfg["pool_size"]), tuple(cfg["strides"])
        if cls == "MaxPooling2D":
            xp = _tf_pad(x, k, s, -np.inf) if cfg["padding"] == "same" else x
            y = _windows(xp, k, s).max(axis=(-2, -1))
        else:
            xp = _tf_pad(x, k, s, 0.0) if cfg["padding"] == "same" else x
            ones = _tf_pad(np.ones_like(x[:1, ..., :1]), k, s, 0.0) if cfg["padding"] == "same" else None
            sums = _windows(xp, k, s).sum(axis=(-2, -1))
            counts = _windows(ones, k, s).sum(axis=(-2, -1)) if ones is not None else k[0] * k[1]
            y = sums / counts
    elif cls == "Add":
        y = sum(xs)
    elif cls == "GlobalAveragePooling2D":
        y = x.mean(axis=(1, 2))
    elif cls == "Flatten":
        y = x.reshape(len(x), -1)  # NHWC order, as Keras
    elif cls in ("Activation", "Dropout"):
        y = x
    else:
        raise AssertionError(f"reference has no {cls}")
    if act == "softmax" and is_output:
        return y  # compare logits
    if act == "relu":
        y = np.maximum(y, 0.0)
    elif act == "softmax":
        e = np.exp(y - y.max(axis=-1, keepdims=True))
        y = e / e.sum(axis=-1, keepdims=True)
    elif act != "linear":
        raise AssertionError(f"reference has no activation {act}")
    return y


def numpy_forward(path: Path, x_nchw: np.ndarray) -> np.ndarray:
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])["config"]
        group = f["model_weights"]
        weights = {}
        for layer in config["layers"]:
            g = group[layer["name"]]
            weights[layer["name"]] = {
                n.decode().split("/")[-1].split(":")[0]: np.asarray(g[n], dtype=np.float64)
                for n in g.attrs["weight_names"]
            }
    output = config["output_layers"][0][0]
    tensors = {}
    for layer in config["layers"]:
        name, cls = layer["name"], layer["class_name"]
        if cls == "InputLayer":
            tensors[name] = x_nchw.transpose(0, 2, 3, 1).astype(np.float64)
            continue
        inputs = [tensors[entry[0]] for entry in layer["inbound_nodes"][0]]
        tensors[name] = _np_layer(cls, layer["config"], weights[name], inputs, name == output)
    return tensors[output]


# --------------------------------------------------------------------------------------------
# a small Keras 2.0.5-format file written in the real layout
# --------------------------------------------------------------------------------------------


def _layer(cls: str, name: str, inbound: list[str], **cfg) -> dict:
    nodes = [[[src, 0, 0, {}] for src in inbound]] if inbound else []
    return {"class_name": cls, "name": name, "config": {"name": name, "trainable": True, **cfg},
            "inbound_nodes": nodes}


def write_small_keras_file(path: Path, seed: int = 0) -> None:
    """conv(stride 2, same) -> BN -> relu -> [sepconv same | 1x1 conv] add -> avgpool same -> flatten -> dense softmax."""
    rng = np.random.default_rng(seed)
    conv = dict(data_format="channels_last", dilation_rate=[1, 1], activation="linear")
    layers = [
        _layer("InputLayer", "input_1", [], batch_input_shape=[None, 10, 10, 1], dtype="float32", sparse=False),
        _layer("Conv2D", "conv2d_1", ["input_1"], filters=4, kernel_size=[3, 3], strides=[2, 2],
               padding="same", use_bias=True, **conv),
        _layer("BatchNormalization", "bn_1", ["conv2d_1"], axis=-1, momentum=0.99, epsilon=0.001,
               center=True, scale=True),
        _layer("Activation", "act_1", ["bn_1"], activation="relu"),
        _layer("SeparableConv2D", "sep_1", ["act_1"], filters=6, kernel_size=[3, 3], strides=[1, 1],
               padding="same", depth_multiplier=2, use_bias=True, **conv),
        _layer("Conv2D", "conv2d_2", ["act_1"], filters=6, kernel_size=[1, 1], strides=[1, 1],
               padding="valid", use_bias=False, **conv),
        _layer("Add", "add_1", ["sep_1", "conv2d_2"]),
        _layer("AveragePooling2D", "avg_1", ["add_1"], pool_size=[2, 2], strides=[2, 2], padding="same",
               data_format="channels_last"),
        _layer("Flatten", "flatten_1", ["avg_1"]),
        _layer("Dropout", "dropout_1", ["flatten_1"], rate=0.5),
        _layer("Dense", "out", ["dropout_1"], units=3, use_bias=True, activation="softmax"),
    ]
    shapes = {
        "conv2d_1": {"kernel": (3, 3, 1, 4), "bias": (4,)},
        "bn_1": {"gamma": (4,), "beta": (4,), "moving_mean": (4,), "moving_variance": (4,)},
        "sep_1": {"depthwise_kernel": (3, 3, 4, 2), "pointwise_kernel": (1, 1, 8, 6), "bias": (6,)},
        "conv2d_2": {"kernel": (1, 1, 4, 6)},
        "out": {"kernel": (3 * 3 * 6, 3), "bias": (3,)},  # 10 -> 5 -> 3, both pads bottom/right
    }
    config = {"class_name": "Model", "config": {"name": "model_1", "layers": layers,
                                                 "input_layers": [["input_1", 0, 0]],
                                                 "output_layers": [["out", 0, 0]]}}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.0.5"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = np.array([layer["name"].encode() for layer in layers])
        for layer in layers:
            g = group.create_group(layer["name"])
            names = []
            for short, shape in shapes.get(layer["name"], {}).items():
                full = f"{layer['name']}_1/{short}:0"
                value = rng.normal(size=shape).astype(np.float32)
                if short == "moving_variance":
                    value = np.abs(value) + 0.5
                g.create_dataset(full, data=value)
                names.append(full.encode())
            g.attrs["weight_names"] = np.array(names, dtype="S64")


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------


def test_same_padding_puts_the_odd_pixel_bottom_right():
    assert same_padding(60, 3, 2) == (0, 1)
    assert same_padding(15, 3, 2) == (1, 1)
    assert same_padding(8, 3, 2) == (0, 1)
    assert same_padding(60, 1, 2) == (0, 0)
    assert same_padding(29, 3, 1) == (1, 1)
    assert same_padding(10, 3, 1, dilation=2) == (2, 2)


def test_stride2_same_maxpool_matches_hand_computation():
    from affectlab.models.minixception import KerasPool2d

    x = torch.arange(16.0).reshape(1, 1, 4, 4) * torch.tensor([1.0, -1.0, 1.0, -1.0])  # sign pattern
    y = KerasPool2d("max", (3, 3), (2, 2), "same")(x)
    # out 2x2, total padding 1 -> none top/left, one row/column of -inf bottom/right
    expected = torch.tensor([[x[0, 0, 0:3, 0:3].max(), x[0, 0, 0:3, 2:4].max()],
                             [x[0, 0, 2:4, 0:3].max(), x[0, 0, 2:4, 2:4].max()]])
    torch.testing.assert_close(y[0, 0], expected)


def test_small_keras_file_matches_numpy_reference(tmp_path):
    path = tmp_path / "small.hdf5"
    write_small_keras_file(path)
    model = load_keras_hdf5(path)
    assert not model.training
    assert model.input_shape == (1, 10, 10)
    names = dict(model.named_modules())
    assert {"conv2d_1", "bn_1", "act_1", "sep_1", "add_1", "avg_1", "flatten_1", "out"} <= set(names)
    x = np.random.default_rng(1).uniform(-1, 1, size=(3, 1, 10, 10)).astype(np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    reference = numpy_forward(path, x)
    assert logits.shape == (3, 3)
    np.testing.assert_allclose(logits, reference, atol=1e-4, rtol=0)
    probs = model.probabilities(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)


def test_wrong_input_shape_and_bad_files_raise_clear_errors(tmp_path):
    path = tmp_path / "small.hdf5"
    write_small_keras_file(path)
    model = load_keras_hdf5(path)
    with pytest.raises(ValueError, match=r"small.hdf5 expects input \(N, 1, 10, 10\)"):
        model(torch.zeros(2, 1, 9, 9))
    with pytest.raises(FileNotFoundError, match="missing.hdf5"):
        load_keras_hdf5(tmp_path / "missing.hdf5")
    not_hdf5 = tmp_path / "text.hdf5"
    not_hdf5.write_text("hello")
    with pytest.raises(KerasFormatError, match="text.hdf5: not a readable HDF5"):
        load_keras_hdf5(not_hdf5)
    with h5py.File(path, "a") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][3]["class_name"] = "LeakyReLU"
        f.attrs["model_config"] = json.dumps(config).encode()
    with pytest.raises(KerasFormatError, match="layer 'act_1' \\(LeakyReLU\\).*not supported"):
        load_keras_hdf5(path)
    write_small_keras_file(path)
    with pytest.raises(KerasFormatError, match="7 FER2013 outputs"):
        load_minixception(path)  # single-channel, but 3 outputs


def test_prepare_minixception_input_scales_to_minus_one_one():
    images = torch.tensor([0, 255], dtype=torch.uint8).repeat(48 * 24).reshape(1, 1, 48, 48)
    x = prepare_minixception_input(images)
    assert x.shape == (1, 1, 64, 64) and x.dtype == torch.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    flat = prepare_minixception_input(torch.full((2, 1, 48, 48), 255, dtype=torch.uint8))
    torch.testing.assert_close(flat, torch.ones(2, 1, 64, 64))
    with pytest.raises(ValueError, match="uint8"):
        prepare_minixception_input(torch.zeros(1, 1, 48, 48))


@pytest.mark.parametrize("filename", [MINI, BIG])
def test_real_weights_match_numpy_reference(shared_root, filename):
    path = shared_root / "minixception" / filename
    model = load_minixception(path)
    assert model.class_names == MINIXCEPTION_CLASSES
    names = dict(model.named_modules())
    assert {"conv2d_1", "add_1", "add_2", "global_average_pooling2d_1", "predictions"} <= set(names)
    x = np.random.default_rng(0).uniform(-1, 1, size=(3, 1, 64, 64)).astype(np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    reference = numpy_forward(path, x)
    assert np.abs(logits - reference).max() < 1e-4


def test_installed_weights_match_numpy_reference():
    """The copy the set-up installs (no shared data needed): same check as above."""
    from affectlab.data.registry import INSTALLED_ASSETS

    path = INSTALLED_ASSETS["minixception"]
    if not path.is_file():
        pytest.skip(f"the set-up has not installed {path}")
    model = load_minixception(path)
    x = np.random.default_rng(1).uniform(-1, 1, size=(2, 1, 64, 64)).astype(np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy()
    assert logits.shape == (2, 7)
    assert np.abs(logits - numpy_forward(path, x)).max() < 1e-4


def _fer2013_private_test(root: Path) -> tuple[torch.Tensor, np.ndarray]:
    """FER2013 PrivateTest faces with their original 7-class labels, read straight from the files.

    ``fer2013_original_labels.csv`` and ``fer2013new.csv`` both have one row per ``fer2013.csv``
    row, in order; PrivateTest rows name their PNG in ``FER2013Test/``. Keep reliable labels only.
    """
    ferplus = root / "ferplus"
    original = pd.read_csv(ferplus / "fer2013_original_labels.csv")
    votes = pd.read_csv(ferplus / "fer2013new.csv")
    assert len(original) == len(votes) == 35887
    assert (original["usage"].to_numpy() == votes["Usage"].to_numpy()).all()
    assert (original["image_name"].fillna("").to_numpy() == votes["Image name"].fillna("").to_numpy()).all()
    keep = (
        (original["usage"] == "PrivateTest")
        & original["status"].isin(["ok", "dup_same_label"])
        & (original["fer2013_emotion"] >= 0)
        & votes["Image name"].notna()
    )
    rows = original[keep]
    images = np.stack([np.asarray(Image.open(ferplus / "FER2013Test" / name)) for name in rows["image_name"]])
    return torch.from_numpy(images)[:, None], rows["fer2013_emotion"].to_numpy()


def test_minixception_accuracy_on_fer2013_private_test(shared_root):
    images, labels = _fer2013_private_test(shared_root)
    assert len(images) > 3500 and images.shape[1:] == (1, 48, 48)
    model = load_minixception(shared_root / "minixception" / MINI)
    x = prepare_minixception_input(images)
    with torch.no_grad():
        predictions = torch.cat([model(batch).argmax(1) for batch in x.split(64)]).numpy()
    accuracy = float((predictions == labels).mean())
    print(f"mini-Xception FER2013 PrivateTest accuracy: {accuracy:.4f} on {len(labels)} faces")
    assert accuracy >= 0.65
