"""Chapter 02 layers (Studies 1-4 of paper 001): every probed layer's activations reduced to
principal components and cached (:func:`layer_codes`), and the per-layer profile of Study 3/4
(:func:`layer_profile`): silhouettes w.r.t. identity and expression on the first 10 PCs ("10 PCs
explain more than 60 % of the variance"), PC1/PC2 against valence/arousal, cross-validated V/A
read-out and V/A read-out beyond the category (partial R^2 after category, :func:`va_partial_r2_ci`),
each with a 95 % CI from resampling subjects (:mod:`affectlab.stats` cluster bootstrap).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from affectlab import stats
from affectlab.config import config_hash, default_cache_dir
from affectlab.probing import (
    activation_cache_key,
    layer_activations,
    pca_embed,
    save_npz_atomic,
    silhouette_ci_by_subject,
    va_regression,
)

from .config import CODES_VERSION, ROLES, ChapterConfig
from .data import ProbeSet
from .networks import ProbedNetwork


@dataclasses.dataclass
class LayerCodes:
    """One network's probed layers on one probing set.

    ``pcs[layer]``: scores on the layer's first principal components (N, <= ``reduce_pcs``),
    ``explained[layer]`` their explained-variance ratios; ``raw[layer]``: the flattened outputs of
    layers at most ``keep_raw_max`` wide (UMAP reads these; wider layers are embedded from their
    PCs); ``dims[layer]`` the layer's width.
    """

    network: str
    dataset: str
    layers: tuple[str, ...]
    dims: dict[str, int]
    pcs: dict[str, np.ndarray]
    explained: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]

    def umap_input(self, layer: str) -> tuple[np.ndarray, str]:
        """What UMAP embeds for ``layer`` and a note saying so."""
        if layer not in self.pcs:
            raise KeyError(f"network {self.network!r} on {self.dataset!r} has no probed layer {layer!r}; "
                           f"probed: {list(self.pcs)}")
        if layer in self.raw:
            return self.raw[layer], f"raw {self.dims[layer]:,}-D outputs"
        return self.pcs[layer], f"first {self.pcs[layer].shape[1]} PCs of the {self.dims[layer]:,}-D outputs"


def principal_components(x: np.ndarray, n_components: int, block: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """PCA scores (N, k) float32 and explained-variance ratios of the rows of ``x`` (N, D).

    For layers wider than the number of faces (D > N) the exact scores come from the eigenvectors
    of the centred N x N Gram matrix, accumulated over column blocks: ``U sqrt(lambda)``, ratios
    ``lambda / sum(lambda)`` (identical to PCA, and far faster than a randomized SVD of a
    1,000 x 147,456 matrix). Otherwise :func:`affectlab.probing.pca_embed`. Signs are made
    deterministic (each component's largest-magnitude score is positive); they are arbitrary.
    """
    a = np.asarray(x)
    if a.ndim != 2 or len(a) < 2:
        raise ValueError(f"x must be (N >= 2, D); got shape {a.shape}")
    n, d = a.shape
    if d <= n:
        return pca_embed(a, n_components)
    mean = a.mean(axis=0, dtype=np.float64).astype(np.float32)
    gram = np.zeros((n, n), dtype=np.float64)
    for start in range(0, d, block):
        part = a[:, start:start + block].astype(np.float32) - mean[start:start + block]
        gram += part @ part.T
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    k = min(int(n_components), n)
    scores = vectors[:, :k] * np.sqrt(values[:k])
    signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(k)])
    scores *= np.where(signs == 0, 1.0, signs)
    total = values.sum()
    ratio = values[:k] / total if total > 0 else np.zeros(k)
    return scores.astype(np.float32), ratio


def layer_codes(net: ProbedNetwork, probe: ProbeSet, cfg: ChapterConfig) -> LayerCodes:
    """Activations of ``net.layers`` for every face of ``probe`` (forward hooks, eval mode), each
    reduced by PCA to its first ``cfg.reduce_pcs`` components (narrow layers also kept raw).

    Cached in ``<cache>/dcnn_hierarchy/codes-<key>.npz``, the key covering the weights, the input
    tensor, the layers and the reduction sizes. Peak memory: N x (sum of layer widths) float32
    (about 0.85 MB per face for the Sharma CNN, whose first block alone is 147,456-D).
    """
    x = net.prepare(probe.faces.images)
    key = config_hash({"acts": activation_cache_key(net.model, x, net.layers), "reduce": cfg.reduce_pcs,
                       "raw": cfg.keep_raw_max, "version": CODES_VERSION}, length=20)
    path = default_cache_dir() / "dcnn_hierarchy" / f"codes-{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                dims = {layer: int(d) for layer, d in zip(net.layers, stored["dims"])}
                return LayerCodes(
                    network=net.name, dataset=probe.key, layers=net.layers, dims=dims,
                    pcs={layer: stored[f"pcs{i}"] for i, layer in enumerate(net.layers)},
                    explained={layer: stored[f"ratio{i}"] for i, layer in enumerate(net.layers)},
                    raw={layer: stored[f"raw{i}"] for i, layer in enumerate(net.layers) if f"raw{i}" in stored},
                )
        except (OSError, KeyError, ValueError):
            pass  # unreadable cache entry: recompute and overwrite
    acts = layer_activations(net.model, x, net.layers, batch_size=cfg.probe_batch_size, cache=False)
    dims, pcs, explained, raw = {}, {}, {}, {}
    for layer in net.layers:
        a = acts.pop(layer)  # free each layer once reduced
        dims[layer] = a.shape[1]
        if a.shape[1] <= cfg.keep_raw_max:
            raw[layer] = a
        if np.ptp(a, axis=0).max() == 0:
            pcs[layer], explained[layer] = np.zeros((len(a), 1), np.float32), np.zeros(1)
        else:
            pcs[layer], explained[layer] = principal_components(a, cfg.reduce_pcs)
        del a
    arrays = {"dims": np.array([dims[layer] for layer in net.layers])}
    for i, layer in enumerate(net.layers):
        arrays[f"pcs{i}"], arrays[f"ratio{i}"] = pcs[layer], explained[layer]
        if layer in raw:
            arrays[f"raw{i}"] = raw[layer]
    save_npz_atomic(path, arrays)
    return LayerCodes(network=net.name, dataset=probe.key, layers=net.layers, dims=dims, pcs=pcs,
                      explained=explained, raw=raw)


def va_decoding_predictions(pcs: np.ndarray, valence: np.ndarray, arousal: np.ndarray, groups: np.ndarray,
                            n_splits: int = 5) -> np.ndarray | None:
    """Out-of-fold least-squares predictions (N, 2) of valence and arousal from ``pcs``, folds split
    by subject (``groups``: GroupKFold), so each face is predicted by a model that never saw its
    person. None when there are fewer than 2 subjects or a target is constant."""
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import GroupKFold

    x = np.asarray(pcs, dtype=np.float64)
    targets = np.stack([valence, arousal], 1).astype(np.float64)
    subjects = np.unique(groups)
    if len(subjects) < 2 or np.ptp(targets, axis=0).min() == 0 or x.ndim != 2:
        return None
    pred = np.zeros_like(targets)
    for train, test in GroupKFold(n_splits=min(n_splits, len(subjects))).split(x, targets, groups):
        pred[test] = LinearRegression().fit(x[train], targets[train]).predict(x[test])
    return pred


def _mean_r2(targets: np.ndarray, pred: np.ndarray) -> float:
    """Mean over the columns (valence, arousal) of R^2 = 1 - SS_res / SS_tot."""
    ss_res = ((targets - pred) ** 2).sum(axis=0)
    ss_tot = ((targets - targets.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.mean(1.0 - ss_res / np.where(ss_tot > 0, ss_tot, np.nan)))


def va_decoding_r2(pcs: np.ndarray, valence: np.ndarray, arousal: np.ndarray, groups: np.ndarray,
                   n_splits: int = 5) -> float:
    """Mean cross-validated R^2 of valence and arousal from ``pcs`` by least squares, with folds
    split by subject (``groups``), so it measures V/A read-out that generalises to new people.
    NaN when there are fewer than 2 subjects or a target is constant."""
    pred = va_decoding_predictions(pcs, valence, arousal, groups, n_splits)
    if pred is None:
        return float("nan")
    return _mean_r2(np.stack([valence, arousal], 1).astype(np.float64), pred)


def va_predictions_per_layer(codes: LayerCodes, probe: ProbeSet, cfg: ChapterConfig) -> dict[str, np.ndarray | None]:
    """Out-of-fold V/A predictions (N, 2) of every layer of ``codes`` from its first ``cfg.n_pcs``
    PCs (:func:`va_decoding_predictions`, folds split by subject); None for a layer without one."""
    identity = probe.faces.identity.numpy()
    return {layer: va_decoding_predictions(layer_pcs(codes, layer)[:, : cfg.n_pcs], probe.valence, probe.arousal,
                                           identity)
            for layer in codes.layers}


def va_r2_metric(probe: ProbeSet) -> Callable[[np.ndarray, np.ndarray], float]:
    """``metric(rows, pred)``: mean V/A R^2 of ``pred`` against ``probe``'s valence and arousal on
    the faces ``rows``, for :func:`affectlab.stats.bootstrap_ci` / ``paired_difference`` called with
    ``y_true = np.arange(N)`` (row ids) and ``clusters`` = subjects: the out-of-fold predictions are
    held fixed and the faces scored are resampled by subject."""
    targets = np.stack([probe.valence, probe.arousal], 1).astype(np.float64)

    def metric(rows: np.ndarray, pred: np.ndarray) -> float:
        return _mean_r2(targets[rows], pred)

    return metric


def va_r2_ci(pred: np.ndarray | None, probe: ProbeSet, cfg: ChapterConfig, seed: int) -> tuple[float, float, float]:
    """V/A R^2 of the out-of-fold predictions ``pred`` with its 95 % cluster-bootstrap CI
    (``cfg.bootstrap_resamples`` resamples of subjects, :func:`affectlab.stats.bootstrap_ci` with
    ``clusters``); NaNs when ``pred`` is None."""
    if pred is None:
        return float("nan"), float("nan"), float("nan")
    rows = np.arange(len(pred))
    return stats.bootstrap_ci(va_r2_metric(probe), rows, pred, n_resamples=cfg.bootstrap_resamples, seed=seed,
                              clusters=probe.faces.identity.numpy())


def va_partial_predictions(pcs: np.ndarray, valence: np.ndarray, arousal: np.ndarray, labels: np.ndarray,
                           groups: np.ndarray, n_splits: int = 5) -> np.ndarray | None:
    """Out-of-fold V/A predictions (N, 4) from the category alone (columns 0-1: valence, arousal;
    one-hot least squares = the category's mean V/A in the training folds) and from the category
    plus ``pcs`` (columns 2-3), folds split by subject (``groups``: GroupKFold), so the layer is
    credited only with V/A it carries beyond the label, for people it never saw. Rows with an
    unknown label (-1) are NaN. None with fewer than 2 subjects or 2 categories among known rows,
    a constant target, or V/A that do not vary within any category (V/A = a function of the label,
    as the circumplex point of CK+'s labels: there is nothing beyond the category to read)."""
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import GroupKFold

    x = np.asarray(pcs, dtype=np.float64)
    labels = np.asarray(labels)
    known = np.flatnonzero(labels >= 0)
    targets = np.stack([valence, arousal], 1).astype(np.float64)
    if x.ndim != 2 or len(known) < 4:
        return None
    subjects = np.unique(np.asarray(groups)[known])
    categories = np.unique(labels[known])
    if len(subjects) < 2 or len(categories) < 2 or np.ptp(targets[known], axis=0).min() == 0:
        return None
    onehot = (labels[known][:, None] == categories[None, :]).astype(np.float64)
    category_means = onehot.T @ targets[known] / onehot.sum(axis=0)[:, None]
    within = ((targets[known] - onehot @ category_means) ** 2).sum()
    if within <= 1e-9 * ((targets[known] - targets[known].mean(axis=0)) ** 2).sum():
        return None  # V/A is a function of the category (e.g. the label's circumplex point): nothing beyond it
    both = np.concatenate([onehot, x[known]], 1)
    pred = np.full((len(labels), 4), np.nan)
    part = np.zeros((len(known), 4))
    for train, test in GroupKFold(n_splits=min(n_splits, len(subjects))).split(both, groups=np.asarray(groups)[known]):
        y = targets[known][train]
        part[test, :2] = LinearRegression(fit_intercept=False).fit(onehot[train], y).predict(onehot[test])
        part[test, 2:] = LinearRegression(fit_intercept=False).fit(both[train], y).predict(both[test])
    pred[known] = part
    return pred


def partial_r2(targets: np.ndarray, pred: np.ndarray) -> float:
    """Mean over valence and arousal of the partial R^2 after category, ``1 - SS_res(category +
    layer) / SS_res(category)``, from :func:`va_partial_predictions` (N, 4) on ``targets`` (N, 2):
    the share of what the category leaves unexplained that the layer explains (negative when the
    layer's read-out does worse out of fold). A target the category already explains exactly
    (SS_res(category) ~ 0, e.g. V/A that are the circumplex point of the label) gives NaN:
    there is nothing beyond the category to read. Rows with NaN predictions are skipped."""
    ok = np.isfinite(pred).all(axis=1)
    t, p = targets[ok], pred[ok]
    if len(t) < 2:
        return float("nan")
    ss_cat = ((t - p[:, :2]) ** 2).sum(axis=0)
    ss_full = ((t - p[:, 2:]) ** 2).sum(axis=0)
    scale = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    usable = ss_cat > 1e-9 * np.maximum(scale, 1e-12)
    if not usable.any():
        return float("nan")
    return float(np.mean(1.0 - ss_full[usable] / ss_cat[usable]))


def va_partial_r2_ci(pred: np.ndarray | None, probe: ProbeSet, cfg: ChapterConfig, seed: int
                     ) -> tuple[float, float, float]:
    """:func:`partial_r2` of the out-of-fold predictions ``pred`` with its 95 % cluster-bootstrap
    CI over subjects (predictions held fixed, faces resampled by person); NaNs when ``pred`` is
    None or the category explains V/A exactly."""
    if pred is None:
        return float("nan"), float("nan"), float("nan")
    targets = np.stack([probe.valence, probe.arousal], 1).astype(np.float64)
    if not np.isfinite(partial_r2(targets, pred)):
        return float("nan"), float("nan"), float("nan")

    def metric(rows: np.ndarray, p: np.ndarray) -> float:
        return partial_r2(targets[rows], p)

    return stats.bootstrap_ci(metric, np.arange(len(pred)), pred, n_resamples=cfg.bootstrap_resamples, seed=seed,
                              clusters=probe.faces.identity.numpy())


def layer_pcs(codes: LayerCodes, layer: str) -> np.ndarray:
    """``codes.pcs[layer]`` or a clear error naming the network, the probing set and the layer."""
    if layer not in codes.pcs:
        raise KeyError(f"network {codes.network!r} on {codes.dataset!r} has no probed layer {layer!r}; "
                       f"probed: {list(codes.pcs)}")
    return codes.pcs[layer]


def role_layer(roles: Mapping[str, Mapping[str, str]], network: str, role: str) -> str:
    """The layer playing ``role`` in ``network``, or a clear error naming both."""
    if network not in roles:
        raise KeyError(f"no roles given for network {network!r}; roles cover {list(roles)}")
    if role not in roles[network]:
        raise KeyError(f"network {network!r} has no layer for role {role!r}; its roles: {dict(roles[network])}")
    return roles[network][role]


def role_rows(table: pd.DataFrame, roles: Mapping[str, Mapping[str, str]], network: str, dataset: str
              ) -> dict[str, pd.Series]:
    """The rows of a :func:`layer_profile` table for the four role layers of Fig. 4
    (:data:`~.config.ROLES`), or a clear error naming the network, the probing set and the layer."""
    rows = {}
    for role in ROLES:
        layer = role_layer(roles, network, role)
        if layer not in table.index:
            raise KeyError(f"the layer profile of {network!r} on {dataset!r} has no row for layer {layer!r} "
                           f"(role {role!r})")
        rows[role] = table.loc[layer]
    return rows


def layer_profile(codes: LayerCodes, probe: ProbeSet, roles: Mapping[str, str], cfg: ChapterConfig,
                  seed: int = 0) -> pd.DataFrame:
    """Per layer (input -> output): silhouettes w.r.t. identity and expression on the first
    ``cfg.n_pcs`` PCs (Study 3; Euclidean) with 95 % CIs from resampling subjects, PC1/PC2 against
    valence/arousal (Study 4: Pearson r), cross-validated V/A R^2 from the 10 PCs with a 95 %
    subject-bootstrap CI (:func:`va_r2_ci`), and the partial R^2 of V/A after the category
    (:func:`va_partial_predictions`, :func:`va_partial_r2_ci`: V/A read beyond the label).
    "identity clusters" / "expression clusters" count the groups each silhouette separates (e.g.
    118 CK+ subjects against 7 expressions): a silhouette over many small clusters and one over a
    few large ones are not on the same footing; both CIs resample the same subjects.

    Rows whose expression label is unknown (-1) are left out of the expression silhouette.
    """
    faces = probe.faces
    identity = faces.identity.numpy()
    labels = faces.labels.numpy()
    known = labels >= 0
    ten = {layer: codes.pcs[layer][:, : cfg.n_pcs] for layer in codes.layers}
    kwargs = dict(n_components=cfg.n_pcs, n_resamples=cfg.bootstrap_resamples, seed=seed)
    sil_id = silhouette_ci_by_subject(ten, identity, identity, **kwargs)
    sil_ex = None
    if known.sum() > 2 and 2 <= len(np.unique(labels[known])) < known.sum():
        sil_ex = silhouette_ci_by_subject({k: v[known] for k, v in ten.items()}, labels[known], identity[known], **kwargs)
    va_pred = va_predictions_per_layer(codes, probe, cfg)
    n_identities = len(np.unique(identity))
    n_expressions = len(np.unique(labels[known]))
    role_of: dict[str, str] = {}
    for role, layer in roles.items():
        role_of[layer] = f"{role_of[layer]}, {role}" if layer in role_of else role
    rows = []
    for depth, layer in enumerate(codes.layers):
        pcs = codes.pcs[layer]
        row = {"layer": layer, "depth": depth, "role": role_of.get(layer, ""), "width": codes.dims[layer],
               "explained variance, 10 PCs": float(codes.explained[layer][: cfg.n_pcs].sum())}
        for target, table in (("identity", sil_id), ("expression", sil_ex)):
            for col, src in (("", "silhouette"), (" low", "ci_low"), (" high", "ci_high")):
                row[f"{target} silhouette{col}"] = float(table.loc[layer, src]) if table is not None else np.nan
        if pcs.shape[1] >= 2 and np.ptp(probe.valence) > 0 and np.ptp(probe.arousal) > 0:
            reg = va_regression(pcs[:, :2], probe.valence, probe.arousal)
            row["r(PC1, valence)"] = float(reg.loc[("PC1", "valence"), "r"])
            row["r(PC2, arousal)"] = float(reg.loc[("PC2", "arousal"), "r"])
        else:
            row["r(PC1, valence)"] = row["r(PC2, arousal)"] = np.nan
        row["V/A R2 (CV by subject)"], row["V/A R2 low"], row["V/A R2 high"] = va_r2_ci(va_pred[layer], probe, cfg,
                                                                                        seed)
        partial = va_partial_predictions(pcs[:, : cfg.n_pcs], probe.valence, probe.arousal, labels, identity)
        (row["V/A partial R2 after category"], row["V/A partial R2 low"],
         row["V/A partial R2 high"]) = va_partial_r2_ci(partial, probe, cfg, seed)
        row["identity clusters"], row["expression clusters"] = n_identities, n_expressions
        rows.append(row)
    table = pd.DataFrame(rows).set_index("layer")
    table.attrs.update(network=codes.network, dataset=probe.key)
    return table


def planted_factor_codes(probe: ProbeSet, cfg: ChapterConfig) -> LayerCodes:
    """Positive control for the ground-truth checks: the generator's own factors of each face as
    "layers", reduced to PCs like a network layer. "planted expression" = the 53 expression
    blendshape weights (``meta['blendshapes']``); "planted identity" = the identity shape
    coefficients (``meta['beta']``, KDEF-like faces) when present. Run through
    :func:`layer_profile`, they give the best score each measure can reach on these faces: the
    ceiling a network's layer is compared with."""
    meta = probe.faces.meta
    if "blendshapes" not in meta:
        raise ValueError(f"{probe.title}: the positive control needs the generator's meta['blendshapes']")
    factors = {"planted expression": np.asarray(meta["blendshapes"], dtype=np.float32)}
    if "beta" in meta:
        factors["planted identity"] = np.asarray(meta["beta"], dtype=np.float32)
    pcs, explained, dims = {}, {}, {}
    for name, x in factors.items():
        dims[name] = x.shape[1]
        pcs[name], explained[name] = principal_components(x, min(cfg.reduce_pcs, x.shape[1]))
    return LayerCodes(network="planted factors", dataset=probe.key, layers=tuple(factors), dims=dims, pcs=pcs,
                      explained=explained, raw=dict(factors))


def half_max_depth(values: np.ndarray) -> float:
    """Relative depth (0 = first layer, 1 = last) of the first layer whose value reaches half of
    the maximum over layers; NaN when the maximum is not positive."""
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(v).any() or np.nanmax(v) <= 0:
        return float("nan")
    first = int(np.flatnonzero(v >= 0.5 * np.nanmax(v))[0])
    return first / max(len(v) - 1, 1)
