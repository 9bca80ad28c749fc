"""Probing a network layer by layer: the computational lens of T et al. (Studies 1-4).

- :func:`layer_activations`: outputs of named layers of any ``nn.Module`` (forward hooks by module
  name), flattened per sample to (N, D), cached on disk. Study 1: "if you feed N samples ... and the
  layer (say dropout_4) is 128 dimensional, you end up with an N x 128 array".
- :func:`silhouette_per_layer`: Study 3, silhouette scores (Euclidean) of expression or identity
  labels on the projection of each layer onto its first 10 principal components;
  :func:`silhouette_ci_by_subject` adds confidence intervals by resampling subjects.
- :func:`pca_embed`, :func:`umap_embed`: the 2-D embeddings of Figures 2, 3, 5 and 6.
- :func:`va_regression`: Study 4, PC1/PC2 of the penultimate layer against valence/arousal (Pearson
  r and p, linear-regression slope, intercept and R^2; Figure 5b).
- :func:`gradcam_per_block`: Grad-CAM (Selvaraju et al. 2017) of several convolutional blocks,
  upsampled to the input (Figure 2e-f), with captum's ``LayerGradCam``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_samples
from torch import nn

from affectlab.config import default_cache_dir

ArrayLike = np.ndarray | torch.Tensor | Sequence[float]
_CACHE_VERSION = b"affectlab-activations-v1"


# ---------------------------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------------------------


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def activation_cache_key(model: nn.Module, inputs: torch.Tensor, layer_names: Sequence[str]) -> str:
    """SHA-256 (24 hex digits) of the model class, its state_dict, the layer names and the inputs."""
    h = hashlib.sha256(_CACHE_VERSION)
    h.update(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for name, value in model.state_dict().items():
        h.update(name.encode())
        if isinstance(value, torch.Tensor):
            h.update(f"{value.dtype}{tuple(value.shape)}".encode())
            h.update(_tensor_bytes(value))
        else:
            h.update(repr(value).encode())
    h.update("\x00".join(layer_names).encode())
    h.update(f"{inputs.dtype}{tuple(inputs.shape)}".encode())
    h.update(_tensor_bytes(inputs))
    return h.hexdigest()[:24]


def _model_device(model: nn.Module) -> torch.device:
    for tensor in [*model.parameters(), *model.buffers()]:
        return tensor.device
    return torch.device("cpu")


def _check_layers(model: nn.Module, layer_names: Sequence[str]) -> dict[str, nn.Module]:
    if isinstance(layer_names, str):
        raise TypeError(f"layer_names must be a sequence of module names, not the string {layer_names!r}")
    layer_names = list(layer_names)
    if len(layer_names) == 0:
        raise ValueError("layer_names is empty; name at least one module of the model")
    if len(set(layer_names)) != len(layer_names):
        raise ValueError(f"layer_names has duplicates: {list(layer_names)}")
    modules = dict(model.named_modules())
    unknown = [n for n in layer_names if n not in modules]
    if unknown:
        available = [n for n in modules if n]
        raise KeyError(f"layers {unknown} are not modules of {type(model).__name__}; available: {available}")
    return {name: modules[name] for name in layer_names}


def save_npz_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` (name -> array) to the ``.npz`` file ``path`` atomically: a temporary file
    in the same folder, then ``os.replace``, so a reader never sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_cached(path: Path, layer_names: Sequence[str]) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            names = [str(n) for n in data["names"]]
            if names != list(layer_names):
                return None
            return {name: data[f"a{i}"] for i, name in enumerate(names)}
    except (OSError, KeyError, ValueError):
        return None  # unreadable or partial file: recompute and overwrite


def layer_activations(
    model: nn.Module,
    inputs: torch.Tensor | np.ndarray,
    layer_names: Sequence[str],
    *,
    batch_size: int = 128,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, np.ndarray]:
    """Outputs of ``layer_names`` for every input, flattened per sample: ``{name: (N, D) float32}``.

    Forward hooks on the modules named as in ``model.named_modules()``; batches of ``batch_size``
    on the model's device, eval mode (restored afterwards), no gradient. The result is cached in
    ``<cache_dir or default_cache_dir()/activations>/<key>.npz`` (written atomically), the key being
    :func:`activation_cache_key` of the model's state_dict, the layer names and the input bytes, so a
    retrained model or other inputs never hit a stale entry. Memory: N x D float32 per layer (the
    first Sharma CNN block is 147,456 values per face).
    """
    x = torch.as_tensor(inputs)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"inputs must be a batch (N, ...) with N >= 1; got shape {tuple(x.shape)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
    modules = _check_layers(model, layer_names)
    layer_names = list(modules)
    path = None
    if cache:
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "activations"
        path = root / f"{activation_cache_key(model, x, layer_names)}.npz"
        if path.is_file():
            cached = _load_cached(path, layer_names)
            if cached is not None:
                return cached

    n = len(x)
    device = _model_device(model)
    batch_outputs: dict[str, list[torch.Tensor]] = {name: [] for name in layer_names}

    def hook_for(name: str):
        def hook(module: nn.Module, args: object, output: object) -> None:
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"layer {name!r} returned {type(output).__name__}, not a tensor; "
                                "probe one of its tensor-valued submodules instead")
            batch_outputs[name].append(output.detach())
        return hook

    result: dict[str, np.ndarray] = {}
    handles = [modules[name].register_forward_hook(hook_for(name)) for name in layer_names]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                batch = x[start : start + batch_size].to(device)
                for outputs in batch_outputs.values():
                    outputs.clear()
                model(batch)
                for name in layer_names:
                    got = batch_outputs[name]
                    if len(got) != 1:
                        raise RuntimeError(f"layer {name!r} ran {len(got)} times in one forward pass; "
                                           "its activation is ambiguous (shared or unused module)")
                    flat = got[0].reshape(len(batch), -1).float().cpu().numpy()
                    if name not in result:
                        result[name] = np.empty((n, flat.shape[1]), dtype=np.float32)
                    result[name][start : start + len(batch)] = flat
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if path is not None:
        save_npz_atomic(path, {"names": np.array(list(result)),
                               **{f"a{i}": a for i, a in enumerate(result.values())}})
    return result


# ---------------------------------------------------------------------------------------------
# PCA / UMAP embeddings
# ---------------------------------------------------------------------------------------------


def _as_matrix(x: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)
    if a.dtype not in (np.float32, np.float64):  # float32 layer outputs stay float32 (memory)
        a = a.astype(np.float64)
    if a.ndim != 2 or len(a) < 2:
        raise ValueError(f"{name} must be a 2-D array (N >= 2 samples, D features); got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has NaN or inf values")
    return a


def _as_vector(x: ArrayLike, n: int, name: str) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)
    if a.ndim != 1 or len(a) != n:
        raise ValueError(f"{name} must be 1-D with {n} entries (one per sample); got shape {a.shape}")
    return a


def pca_embed(x: ArrayLike, n_components: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores on the first principal components and their explained-variance ratios.

    ``n_components`` is capped at min(N, D). Signs follow scikit-learn's ``svd_flip`` convention
    (deterministic, but arbitrary: only |r| with valence/arousal is meaningful).
    """
    scores, ratio = _pca(_as_matrix(x, "x"), n_components, seed)
    return scores.astype(np.float32), ratio


def _pca(a: np.ndarray, n_components: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(int(n_components), *a.shape)
    if k < 1:
        raise ValueError(f"n_components must be >= 1; got {n_components}")
    pca = PCA(n_components=k, random_state=seed)
    scores = pca.fit_transform(a).astype(np.float64)
    return scores, pca.explained_variance_ratio_.astype(np.float64)


def umap_embed(
    x: ArrayLike,
    n_components: int = 2,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    seed: int = 0,
    pca_components: int | None = None,
) -> np.ndarray:
    """UMAP (McInnes et al. 2018) embedding, seeded and single-threaded, so it is reproducible.

    ``n_neighbors`` is capped at N - 1 for small sets. ``pca_components``: optionally reduce to that
    many principal components first (the paper runs UMAP on the raw layer outputs; PCA first is a
    speed option for wide layers on CPU, say so when used). The first call in a process spends
    ~30 s compiling umap's numba kernels.
    """
    a = _as_matrix(x, "x")
    if pca_components is not None:
        a = _pca(a, pca_components, seed)[0]
    import umap  # deferred: importing umap-learn costs seconds

    reducer = umap.UMAP(
        n_components=n_components,
        n_neighbors=max(2, min(int(n_neighbors), len(a) - 1)),
        min_dist=min_dist,
        metric=metric,
        random_state=seed,
        n_jobs=1,
    )
    return reducer.fit_transform(a).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# silhouettes (Study 3)
# ---------------------------------------------------------------------------------------------


def _check_labels(labels: ArrayLike, n: int, name: str = "labels") -> np.ndarray:
    lab = _as_vector(labels, n, name)
    k = len(np.unique(lab))
    if not 2 <= k <= n - 1:
        raise ValueError(f"{name} must have between 2 and N - 1 = {n - 1} distinct values; got {k}")
    return lab


def _layer_silhouettes(acts: Mapping[str, ArrayLike], labels: ArrayLike, n_components: int, seed: int):
    if not acts:
        raise ValueError("acts is empty; pass {layer name: (N, D) activations}")
    for name, x in acts.items():
        a = _as_matrix(x, f"acts[{name!r}]")
        lab = _check_labels(labels, len(a))
        pcs, ratio = _pca(a, n_components, seed)
        yield name, silhouette_samples(pcs, lab, metric="euclidean"), ratio


def silhouette_per_layer(
    acts: Mapping[str, ArrayLike], labels: ArrayLike, n_components: int = 10, seed: int = 0
) -> pd.DataFrame:
    """Study 3: mean silhouette of ``labels`` on each layer's first ``n_components`` PCs (Euclidean).

    Returns a DataFrame indexed by layer (input order) with ``silhouette``, ``n_components`` used
    (capped at min(N, D), e.g. 7 for a 7-way output layer), ``explained_variance`` of those PCs (the
    paper reports > 60 %) and ``n_samples``.
    """
    rows = []
    for name, per_sample, ratio in _layer_silhouettes(acts, labels, n_components, seed):
        rows.append({"layer": name, "silhouette": float(per_sample.mean()), "n_components": len(ratio),
                     "explained_variance": float(ratio.sum()), "n_samples": len(per_sample)})
    return pd.DataFrame(rows).set_index("layer")


def silhouette_ci_by_subject(
    acts: Mapping[str, ArrayLike],
    labels: ArrayLike,
    groups: ArrayLike,
    n_components: int = 10,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Silhouettes per layer with percentile confidence intervals from resampling subjects.

    Per-sample silhouettes s(i) are computed once on all faces (as :func:`silhouette_per_layer`);
    each resample draws subjects (``groups``) with replacement and averages s(i) over the drawn
    subjects' faces, counting a subject drawn twice twice. This cluster bootstrap captures how the
    score depends on which people were photographed; it holds the PCA and the neighbours of each
    face fixed (recomputing silhouettes on resampled sets would put duplicated faces at distance 0
    and inflate the score).
    """
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive int; got {n_resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    rng = np.random.default_rng(seed)
    rows = []
    draws = None
    for name, per_sample, ratio in _layer_silhouettes(acts, labels, n_components, seed):
        grp = _as_vector(groups, len(per_sample), "groups")
        subjects, index = np.unique(grp, return_inverse=True)
        if len(subjects) < 2:
            raise ValueError(f"groups must name at least 2 subjects to resample; got {len(subjects)}")
        sums = np.bincount(index, weights=per_sample, minlength=len(subjects))
        counts = np.bincount(index, minlength=len(subjects)).astype(np.float64)
        if draws is None:  # the same subject draws for every layer: intervals are comparable
            draws = rng.multinomial(len(subjects), np.full(len(subjects), 1.0 / len(subjects)), size=n_resamples)
        means = (draws @ sums) / (draws @ counts)
        alpha = (1.0 - confidence) / 2.0
        low, high = np.quantile(means, [alpha, 1.0 - alpha])
        rows.append({"layer": name, "silhouette": float(per_sample.mean()), "ci_low": float(low),
                     "ci_high": float(high), "n_subjects": len(subjects), "n_resamples": n_resamples,
                     "n_components": len(ratio), "explained_variance": float(ratio.sum())})
    return pd.DataFrame(rows).set_index("layer")


# ---------------------------------------------------------------------------------------------
# valence / arousal (Study 4)
# ---------------------------------------------------------------------------------------------


def va_regression(pcs: ArrayLike, valence: ArrayLike, arousal: ArrayLike) -> pd.DataFrame:
    """Study 4 / Figure 5b: PC1 against valence and PC2 against arousal (plus the cross pairs).

    For each (component, target) pair: Pearson ``r`` and two-sided ``p``, and the least-squares line
    ``target = slope * component + intercept`` with its ``r2`` (= r^2 for one predictor). Rows are
    indexed (component, target): (PC1, valence), (PC2, arousal), then (PC1, arousal), (PC2, valence).
    PCA signs are arbitrary, so judge |r|.
    """
    p = _as_matrix(pcs, "pcs")
    if p.shape[1] < 2:
        raise ValueError(f"pcs needs at least 2 columns (PC1, PC2); got shape {p.shape}")
    targets = {"valence": _as_vector(valence, len(p), "valence").astype(np.float64),
               "arousal": _as_vector(arousal, len(p), "arousal").astype(np.float64)}
    for name, t in targets.items():
        if not np.isfinite(t).all() or np.ptp(t) == 0:
            raise ValueError(f"{name} must be finite and not constant")
    rows = []
    for comp, target in (("PC1", "valence"), ("PC2", "arousal"), ("PC1", "arousal"), ("PC2", "valence")):
        x = p[:, 0 if comp == "PC1" else 1]
        fit = stats.linregress(x, targets[target])
        rows.append({"component": comp, "target": target, "r": fit.rvalue, "p": fit.pvalue,
                     "slope": fit.slope, "intercept": fit.intercept, "r2": fit.rvalue**2, "n": len(x)})
    return pd.DataFrame(rows).set_index(["component", "target"])


# ---------------------------------------------------------------------------------------------
# Grad-CAM per block (Figure 2e-f)
# ---------------------------------------------------------------------------------------------


def _check_target(target: int | Sequence[int] | torch.Tensor | np.ndarray, n: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(target) if not isinstance(target, torch.Tensor) else target)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise ValueError(f"target must hold integer class indices; got {t.dtype}")
    t = t.long().cpu()
    if t.ndim == 0:
        return t.expand(n).clone()
    if t.shape != (n,):
        raise ValueError(f"target must be an int, None or one class index per image ({n}); got shape {tuple(t.shape)}")
    return t


def gradcam_per_block(
    model: nn.Module,
    images: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None,
    layer_names: Sequence[str],
    *,
    relu: bool = True,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Grad-CAM heatmaps of each named convolutional layer, upsampled to the input size.

    ``model(images)`` must return class scores (N, K); ``target`` is a class index, one per image,
    or None for the predicted class. For each layer, captum's ``LayerGradCam`` weights the layer's
    channels by their spatially averaged gradients, sums them (ReLU if ``relu``, as Selvaraju et al.),
    and the map is upsampled bilinearly to (H, W) and scaled to [0, 1] per image (divided by its
    maximum; min-max when ``relu=False``), as the paper's colour scale (blue 0 ... red 1).
    Returns ``{name: (N, H, W) float32}``. Eval mode; the model's mode is restored afterwards.
    """
    from captum.attr import LayerAttribution, LayerGradCam  # deferred: importing captum costs seconds

    modules = _check_layers(model, layer_names)
    x = torch.as_tensor(images)
    if x.ndim != 4 or not torch.is_floating_point(x):
        raise ValueError(f"images must be float (N, C, H, W) as the model takes them; got {x.dtype} {tuple(x.shape)}")
    targets = None if target is None else _check_target(target, len(x))
    device = _model_device(model)
    was_training = model.training
    model.eval()
    out: dict[str, list[np.ndarray]] = {name: [] for name in modules}
    try:
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size].to(device)
            if targets is None:
                with torch.no_grad():
                    tgt = model(batch).argmax(dim=1)
            else:
                tgt = targets[start : start + batch_size].to(device)
            for name, module in modules.items():
                cam = LayerGradCam(model, module).attribute(batch, target=tgt, relu_attributions=relu)
                if cam.ndim != 4:
                    raise ValueError(f"layer {name!r} has no spatial map (Grad-CAM shape {tuple(cam.shape)}); "
                                     "choose a convolutional layer with output (N, C, H, W)")
                cam = LayerAttribution.interpolate(cam.detach(), tuple(batch.shape[2:]), interpolate_mode="bilinear")
                cam = cam[:, 0].float()
                low = cam.amin(dim=(1, 2), keepdim=True) if not relu else torch.zeros_like(cam[:, :1, :1])
                cam = (cam - low).clamp_min(0)
                peak = cam.amax(dim=(1, 2), keepdim=True)
                cam = torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam))
                out[name].append(cam.cpu().numpy().astype(np.float32))
    finally:
        model.train(was_training)
    return {name: np.concatenate(parts) for name, parts in out.items()}
