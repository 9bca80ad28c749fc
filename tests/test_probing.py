"""Layer probing: activations (hooks, batching, cache), silhouettes, embeddings, V/A regression, Grad-CAM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from sklearn.metrics import silhouette_samples, silhouette_score
from torch import nn

from affectlab.config import default_cache_dir
from affectlab.probing import (
    activation_cache_key,
    gradcam_per_block,
    layer_activations,
    pca_embed,
    silhouette_ci_by_subject,
    silhouette_per_layer,
    umap_embed,
    va_regression,
)


class TinyCNN(nn.Module):
    """8x8 greyscale -> 3 classes, with BatchNorm and Dropout so eval mode matters."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.act2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(6 * 4 * 4, 3)

    def forward(self, x):
        x = self.act1(self.bn(self.conv1(x)))
        x = self.pool(self.act2(self.conv2(x)))
        return self.fc(self.drop(self.flatten(x)))


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    model = TinyCNN()
    with torch.no_grad():  # non-trivial running statistics
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model


def _cache_files():
    folder = default_cache_dir() / "activations"
    return sorted(folder.glob("*")) if folder.is_dir() else []


# --------------------------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------------------------


def test_activations_equal_eval_forward_flattened(tiny):
    x = torch.rand(7, 1, 8, 8)
    tiny.train()
    acts = layer_activations(tiny, x, ["conv1", "act1", "pool", "fc"], batch_size=3, cache=False)
    assert tiny.training  # mode restored
    tiny.eval()
    with torch.no_grad():
        conv1 = tiny.conv1(x)
        act1 = tiny.act1(tiny.bn(conv1))
        pool = tiny.pool(tiny.act2(tiny.conv2(act1)))
        logits = tiny(x)
    assert list(acts) == ["conv1", "act1", "pool", "fc"]
    assert acts["conv1"].shape == (7, 4 * 8 * 8) and acts["conv1"].dtype == np.float32
    np.testing.assert_allclose(acts["conv1"], conv1.reshape(7, -1).numpy(), atol=1e-6)
    np.testing.assert_allclose(acts["act1"], act1.reshape(7, -1).numpy(), atol=1e-6)
    np.testing.assert_allclose(acts["pool"], pool.reshape(7, -1).numpy(), atol=1e-6)
    np.testing.assert_allclose(acts["fc"], logits.numpy(), atol=1e-6)  # no dropout: eval mode
    one_batch = layer_activations(tiny, x, ["fc"], batch_size=100, cache=False)
    np.testing.assert_allclose(one_batch["fc"], acts["fc"], atol=1e-6)


def test_activation_cache_round_trip_and_invalidation(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("AFFECTLAB_CACHE", str(tmp_path))  # a fresh default_cache_dir()
    x = torch.rand(5, 1, 8, 8)
    before = set(_cache_files())
    assert before == set()
    first = layer_activations(tiny, x, ["conv2", "fc"])
    written = set(_cache_files()) - before
    assert len(written) == 1 and next(iter(written)).suffix == ".npz"  # atomic: no .tmp left behind
    assert next(iter(written)).parent == tmp_path / "activations"

    def refuse(*_):
        raise AssertionError("the model ran although the activations were cached")

    handle = tiny.register_forward_pre_hook(refuse)
    second = layer_activations(tiny, x, ["conv2", "fc"])
    handle.remove()
    assert list(second) == list(first)
    for name in first:
        assert second[name].dtype == first[name].dtype and np.array_equal(second[name], first[name])

    key = activation_cache_key(tiny, x, ["conv2", "fc"])
    assert key != activation_cache_key(tiny, x + 1e-3, ["conv2", "fc"])
    assert key != activation_cache_key(tiny, x, ["fc", "conv2"])
    with torch.no_grad():
        tiny.fc.bias.add_(1.0)
    assert key != activation_cache_key(tiny, x, ["conv2", "fc"])
    changed = layer_activations(tiny, x, ["conv2", "fc"])
    np.testing.assert_allclose(changed["fc"], first["fc"] + 1.0, atol=1e-5)
    assert len(set(_cache_files()) - before) == 2


def test_corrupt_cache_file_is_recomputed(tiny, tmp_path):
    x = torch.rand(4, 1, 8, 8)
    reference = layer_activations(tiny, x, ["fc"], cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    path.write_bytes(b"truncated")
    again = layer_activations(tiny, x, ["fc"], cache_dir=tmp_path)
    np.testing.assert_array_equal(again["fc"], reference["fc"])
    assert np.load(path)["a0"].shape == (4, 3)


def test_activation_errors_name_the_problem(tiny):
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(KeyError, match=r"layers \['conv9'\] are not modules of TinyCNN.*conv1"):
        layer_activations(tiny, x, ["conv9"], cache=False)
    with pytest.raises(TypeError, match="sequence of module names"):
        layer_activations(tiny, x, "fc", cache=False)

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, v):
            return self.lin(self.lin(v))

    with pytest.raises(RuntimeError, match="'lin' ran 2 times"):
        layer_activations(Shared(), torch.rand(2, 3), ["lin"], cache=False)


# --------------------------------------------------------------------------------------------
# silhouettes
# --------------------------------------------------------------------------------------------


def _clustered(n_per: int = 12, k: int = 4, d: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(k, d))
    labels = np.repeat(np.arange(k), n_per)
    return centres[labels] + rng.normal(size=(len(labels), d)), labels


def _top_pcs(x: np.ndarray, k: int) -> np.ndarray:
    centred = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    return u[:, :k] * s[:k]


def test_silhouette_per_layer_equals_sklearn_on_ten_pcs():
    wide, labels = _clustered()
    narrow = wide[:, :4]
    table = silhouette_per_layer({"wide": wide, "narrow": narrow}, labels)
    assert list(table.index) == ["wide", "narrow"]
    assert table.loc["wide", "silhouette"] == pytest.approx(silhouette_score(_top_pcs(wide, 10), labels), abs=1e-6)
    # 4 features < 10 PCs: all PCs = a rotation of the centred data, distances unchanged
    assert table.loc["narrow", "n_components"] == 4
    assert table.loc["narrow", "silhouette"] == pytest.approx(silhouette_score(narrow, labels), abs=1e-6)
    assert table.loc["narrow", "explained_variance"] == pytest.approx(1.0)
    shuffled = silhouette_per_layer({"wide": wide}, np.random.default_rng(1).permutation(labels))
    assert shuffled.loc["wide", "silhouette"] < table.loc["wide", "silhouette"] - 0.3
    with pytest.raises(ValueError, match="between 2 and N - 1"):
        silhouette_per_layer({"wide": wide}, np.zeros(len(labels)))
    with pytest.raises(ValueError, match="labels must be 1-D with 48 entries"):
        silhouette_per_layer({"wide": wide}, labels[:-1])


def test_silhouette_ci_by_subject_matches_an_explicit_bootstrap():
    x, expression = _clustered(n_per=15, k=4, seed=2)
    subject = np.tile(np.arange(15), 4)  # every subject shows every expression once
    table = silhouette_ci_by_subject({"layer": x}, expression, subject, n_resamples=4000, seed=0)
    row = table.loc["layer"]
    assert row["silhouette"] == pytest.approx(silhouette_per_layer({"layer": x}, expression).loc["layer", "silhouette"])
    assert row["ci_low"] < row["silhouette"] < row["ci_high"]
    assert row["n_subjects"] == 15

    per_sample = silhouette_samples(_top_pcs(x, 10), expression)
    rng = np.random.default_rng(123)
    means = []
    for _ in range(4000):
        drawn = rng.choice(15, size=15, replace=True)
        means.append(np.concatenate([per_sample[subject == s] for s in drawn]).mean())
    low, high = np.quantile(means, [0.025, 0.975])
    assert row["ci_low"] == pytest.approx(low, abs=0.01) and row["ci_high"] == pytest.approx(high, abs=0.01)
    again = silhouette_ci_by_subject({"layer": x}, expression, subject, n_resamples=4000, seed=0)
    assert again.equals(table)
    with pytest.raises(ValueError, match="at least 2 subjects"):
        silhouette_ci_by_subject({"layer": x}, expression, np.zeros(len(x)), n_resamples=10)


# --------------------------------------------------------------------------------------------
# embeddings and V/A regression
# --------------------------------------------------------------------------------------------


def test_pca_embed_matches_svd_up_to_sign():
    x, _ = _clustered(seed=3)
    scores, ratio = pca_embed(x, n_components=3)
    reference = _top_pcs(x, 3)
    for j in range(3):
        sign = np.sign(scores[:, j] @ reference[:, j])
        np.testing.assert_allclose(scores[:, j], sign * reference[:, j], atol=1e-4)
    centred = x - x.mean(0)
    eig = np.linalg.svd(centred, compute_uv=False) ** 2
    np.testing.assert_allclose(ratio, eig[:3] / eig.sum(), rtol=1e-6)


def test_umap_embed_is_seeded_and_keeps_clusters():
    x, labels = _clustered(n_per=15, k=3, d=10, seed=4)
    first = umap_embed(x, n_neighbors=10, seed=0)
    second = umap_embed(x, n_neighbors=10, seed=0)
    assert first.shape == (45, 2) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    assert silhouette_score(first, labels) > 0.5


def test_va_regression_against_numpy():
    rng = np.random.default_rng(5)
    valence, arousal = rng.uniform(-1, 1, 80), rng.uniform(-1, 1, 80)
    pcs = np.column_stack([3 * valence + rng.normal(scale=0.3, size=80), -arousal + rng.normal(scale=0.8, size=80)])
    table = va_regression(pcs, valence, arousal)
    assert list(table.index) == [("PC1", "valence"), ("PC2", "arousal"), ("PC1", "arousal"), ("PC2", "valence")]
    for (comp, target), row in table.iterrows():
        x = pcs[:, 0 if comp == "PC1" else 1]
        y = valence if target == "valence" else arousal
        r, p = stats.pearsonr(x, y)
        slope, intercept = np.polyfit(x, y, 1)
        residual = y - (slope * x + intercept)
        r2 = 1 - (residual**2).sum() / ((y - y.mean()) ** 2).sum()
        assert row["r"] == pytest.approx(r) and row["p"] == pytest.approx(p, rel=1e-6)
        assert row["slope"] == pytest.approx(slope) and row["intercept"] == pytest.approx(intercept, abs=1e-9)
        assert row["r2"] == pytest.approx(r2)
    assert table.loc[("PC1", "valence"), "r"] > 0.9 and table.loc[("PC2", "arousal"), "r"] < -0.4
    with pytest.raises(ValueError, match="valence must be finite and not constant"):
        va_regression(pcs, np.zeros(80), arousal)
    with pytest.raises(ValueError, match="at least 2 columns"):
        va_regression(pcs[:, :1], valence, arousal)


# --------------------------------------------------------------------------------------------
# Grad-CAM
# --------------------------------------------------------------------------------------------


def _manual_gradcam(model: nn.Module, module: nn.Module, x: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    store = {}
    handle = module.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    scores = model(x)
    handle.remove()
    activation = store["a"]
    grads = torch.autograd.grad(scores.gather(1, target[:, None]).sum(), activation)[0]
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam)).detach().numpy()


def test_gradcam_per_block_matches_a_manual_gradcam(tiny):
    x = torch.rand(5, 1, 8, 8)
    target = torch.tensor([0, 1, 2, 0, 1])
    tiny.train()
    maps = gradcam_per_block(tiny, x, target, ["act1", "conv2"], batch_size=2)
    assert tiny.training
    tiny.eval()
    assert list(maps) == ["act1", "conv2"]
    for name in maps:
        assert maps[name].shape == (5, 8, 8) and maps[name].dtype == np.float32
        assert maps[name].min() >= 0.0 and maps[name].max() <= 1.0
        manual = _manual_gradcam(tiny, getattr(tiny, name), x, target)
        np.testing.assert_allclose(maps[name], manual, atol=1e-5)
    predicted = tiny(x).argmax(1)
    by_prediction = gradcam_per_block(tiny, x, None, ["conv2"])
    np.testing.assert_allclose(by_prediction["conv2"], _manual_gradcam(tiny, tiny.conv2, x, predicted), atol=1e-5)
    single = gradcam_per_block(tiny, x, 2, ["conv2"])
    np.testing.assert_allclose(single["conv2"], _manual_gradcam(tiny, tiny.conv2, x, torch.full((5,), 2)), atol=1e-5)
    with pytest.raises(ValueError, match="'fc' has no spatial map"):
        gradcam_per_block(tiny, x, 0, ["fc"])
    with pytest.raises(ValueError, match="one class index per image"):
        gradcam_per_block(tiny, x, [0, 1], ["conv2"])
