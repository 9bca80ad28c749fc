"""Intervals and verdicts shared by every chapter: bootstrap (stratified or clustered), paired
differences between two rows scored on the same items, means over seeds, and the verdict a CI gives.

The bootstrap follows NeuroGaze-Distill (paper 000) App. A.1: percentile intervals, 1,000 resamples,
fixed seed, 2.5 / 97.5 percentiles [Efron & Tibshirani 1994]. Where rows are not independent
(windows of one trial, faces of one subject, frames sharing a background segment) pass ``clusters``
so whole clusters are resampled. A comparison between two rows is a *paired* difference: both rows
are scored on the same resample of the same items (:func:`paired_difference`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
from scipy import stats as _scipy_stats

from affectlab.metrics import _as_numpy, _labels_1d

ArrayLike = Any

__all__ = [
    "bootstrap_ci",
    "MeanCI",
    "mean_ci_over_seeds",
    "Estimate",
    "paired_difference",
    "verdict_from_ci",
    "VERDICT_WORDS",
    "crossed_bootstrap_mean",
]


def _resample_indices(t: np.ndarray, rng: np.random.Generator, n_resamples: int, stratified: bool,
                      clusters: np.ndarray | None) -> list[np.ndarray]:
    """The row indices of each bootstrap resample (whole clusters, per-class, or plain)."""
    if clusters is not None:
        members = [np.flatnonzero(clusters == k) for k in np.unique(clusters)]
        if len(members) < 2:
            raise ValueError("parameter clusters: the cluster bootstrap needs at least 2 clusters")
        return [np.concatenate([members[k] for k in rng.integers(0, len(members), size=len(members))])
                for _ in range(n_resamples)]
    groups = [np.flatnonzero(t == c) for c in np.unique(t)] if stratified else [np.arange(len(t))]
    return [np.concatenate([g[rng.integers(0, len(g), size=len(g))] for g in groups])
            for _ in range(n_resamples)]


def _check_resampling(n_resamples: Any, alpha: float) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"parameter n_resamples must be a positive int; got {n_resamples!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"parameter alpha must be in (0, 1); got {alpha!r}")


def _percentiles(values: np.ndarray, alpha: float, caller: str) -> tuple[float, float]:
    finite = np.isfinite(values)
    if not finite.all():
        warnings.warn(
            f"{caller}: the metric was undefined in {int((~finite).sum())} of {len(values)} "
            "resamples; they are dropped",
            UserWarning,
            stacklevel=3,
        )
    if not finite.any():
        return float("nan"), float("nan")
    low, high = np.percentile(values[finite], [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def bootstrap_ci(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    y_true: ArrayLike,
    y_pred: ArrayLike,
    n_resamples: int = 1000,
    seed: int = 0,
    stratified: bool = True,
    alpha: float = 0.05,
    clusters: ArrayLike | None = None,
) -> tuple[float, float, float]:
    """Percentile bootstrap interval of ``metric_fn(y_true, y_pred)`` (paper 000 App. A.1).

    ``clusters`` (N,), e.g. subject or trial ids, switches to the cluster bootstrap: each resample
    draws whole clusters with replacement (as many as there are), so rows that are not independent
    (windows of one trial, faces of one subject) move together and the interval is not too narrow.
    It cannot be combined with ``stratified=True``'s per-class draw; the cluster draw replaces it.

    Stratified: each resample draws, with replacement, ``n_c`` rows from the rows of each true
    class ``c``, so class proportions stay fixed. ``y_pred`` may be labels (N,) or scores (N, K)
    (e.g. for :func:`macro_auroc`); rows are resampled together. Resamples where the metric is
    NaN are dropped (with a warning). Returns ``(point, low, high)`` with ``low``/``high`` the
    ``alpha/2`` and ``1 - alpha/2`` percentiles (2.5 / 97.5 for the default).
    """
    t = _labels_1d(y_true, "y_true")
    p = _as_numpy(y_pred, "y_pred")
    if len(p) != len(t) or len(t) == 0:
        raise ValueError(
            f"y_true ({len(t)} rows) and y_pred ({len(p)} rows) must be non-empty and match"
        )
    _check_resampling(n_resamples, alpha)
    point = float(metric_fn(t, p))
    c = None
    if clusters is not None:
        c = _labels_1d(clusters, "clusters")
        if len(c) != len(t):
            raise ValueError(f"parameter clusters has {len(c)} rows; y_true has {len(t)}")
    rng = np.random.default_rng(seed)
    draws = _resample_indices(t, rng, n_resamples, stratified, c)
    values = np.array([metric_fn(t[idx], p[idx]) for idx in draws], dtype=np.float64)
    low, high = _percentiles(values, alpha, "bootstrap_ci")
    return point, low, high


class MeanCI(NamedTuple):
    """Mean over runs with its t-based interval; ``note`` says when no interval exists."""

    mean: float
    low: float
    high: float
    n: int
    note: str


def mean_ci_over_seeds(values: ArrayLike, confidence: float = 0.95) -> MeanCI:
    """Mean of per-seed results and the t interval ``mean +- t_{n-1} * s / sqrt(n)`` (paper 000
    Sec. 5.1: "mean over 3 seeds").

    With a single value the interval is undefined: ``low`` and ``high`` are NaN and ``note`` says so.
    """
    v = _as_numpy(values, "values").astype(np.float64).ravel()
    if len(v) == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"parameter values must be a non-empty list of finite numbers; got {values!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"parameter confidence must be in (0, 1); got {confidence!r}")
    mean = float(v.mean())
    n = len(v)
    if n == 1:
        return MeanCI(mean, float("nan"), float("nan"), 1, "one seed: no confidence interval")
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, df=n - 1) * v.std(ddof=1) / math.sqrt(n))
    return MeanCI(mean, mean - half, mean + half, n, f"t interval over {n} seeds, {confidence:.0%}")


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A number with its interval: ``value`` and ``low``/``high`` (NaN where none applies)."""

    value: float
    low: float = float("nan")
    high: float = float("nan")

    @property
    def ci(self) -> tuple[float, float] | None:
        """``(low, high)``, or None when the interval is undefined."""
        if math.isfinite(self.low) and math.isfinite(self.high):
            return (self.low, self.high)
        return None

    def scaled(self, factor: float) -> "Estimate":
        """The same estimate in other units (e.g. ``factor=100`` for a percentage)."""
        return Estimate(self.value * factor, self.low * factor, self.high * factor)


def paired_difference(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    y_true: ArrayLike,
    pred_a: ArrayLike,
    pred_b: ArrayLike,
    n_resamples: int = 1000,
    seed: int = 0,
    stratified: bool = True,
    alpha: float = 0.05,
    clusters: ArrayLike | None = None,
) -> Estimate:
    """``metric(a) - metric(b)`` on the same items, with a paired percentile-bootstrap interval.

    Both rows are scored on *the same* resample each time, so what they share (the test items'
    difficulty) cancels; the interval is that of the difference, not two overlapping intervals.
    ``pred_a``/``pred_b`` may be labels (N,) or scores (N, K). ``clusters`` resamples whole clusters
    (subjects, identities, trials, shared recording segments) as in :func:`bootstrap_ci`.
    A CI entirely above 0 means ``a`` scores higher (see :func:`verdict_from_ci`).
    """
    t = _labels_1d(y_true, "y_true")
    a = _as_numpy(pred_a, "pred_a")
    b = _as_numpy(pred_b, "pred_b")
    if not (len(a) == len(b) == len(t)) or len(t) == 0:
        raise ValueError(f"y_true ({len(t)}), pred_a ({len(a)}) and pred_b ({len(b)}) must be non-empty "
                         "and hold the same items")
    _check_resampling(n_resamples, alpha)
    c = None
    if clusters is not None:
        c = _labels_1d(clusters, "clusters")
        if len(c) != len(t):
            raise ValueError(f"parameter clusters has {len(c)} rows; y_true has {len(t)}")
    point = float(metric_fn(t, a) - metric_fn(t, b))
    rng = np.random.default_rng(seed)
    draws = _resample_indices(t, rng, n_resamples, stratified, c)
    values = np.array([metric_fn(t[i], a[i]) - metric_fn(t[i], b[i]) for i in draws], dtype=np.float64)
    low, high = _percentiles(values, alpha, "paired_difference")
    return Estimate(point, low, high)


VERDICT_WORDS = {"greater": "higher than", "less": "lower than", "undecided": "not distinguishable from"}


def verdict_from_ci(low: float, high: float, null: float = 0.0) -> str:
    """"greater" when the interval lies above ``null``, "less" when below, else "undecided"
    (including a missing interval). For a paired difference ``a - b`` this reads "a > b"."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "undecided"
    if low > high:
        raise ValueError(f"the interval must have low <= high; got [{low}, {high}]")
    if low > null:
        return "greater"
    if high < null:
        return "less"
    return "undecided"


def crossed_bootstrap_mean(
    values: ArrayLike,
    factors: "dict[str, ArrayLike]",
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> Estimate:
    """Mean of ``values`` (N,) with a percentile interval that resamples several CROSSED cluster
    factors at once: the pigeonhole (product-weight) bootstrap of Owen (2007, Ann. Appl. Stat. 1(2),
    "The pigeonhole bootstrap"). For a paired difference pass the per-row differences ``a - b``.

    ``factors`` maps a name to one label per row (e.g. ``{"trial": ..., "background segment": ...,
    "seed": ...}``): rows that share a trial, or a background segment, or a training seed, are not
    independent, and the factors are not nested (one background segment is reused by several
    trials, one trial spans several segments), so no single cluster id captures both. Each resample
    draws, independently per factor, as many of its levels as it has, with replacement; a row's weight
    is the product of its levels' counts, and the statistic is the weighted mean. Owen shows this
    variance estimate is conservative (slightly too wide) for crossed random effects, where
    resampling one factor alone is too narrow. A factor with one level adds nothing (its weight is
    constant); resamples whose weights are all zero are dropped (with a warning).
    """
    v = _as_numpy(values, "values").astype(np.float64).ravel()
    if len(v) == 0 or not np.all(np.isfinite(v)):
        raise ValueError("parameter values must be a non-empty array of finite numbers")
    if not factors:
        raise ValueError("parameter factors must name at least one factor (name -> one label per row)")
    _check_resampling(n_resamples, alpha)
    rng = np.random.default_rng(seed)
    weights = np.ones((n_resamples, len(v)))
    for name, labels in factors.items():
        labels = np.asarray(labels).ravel()
        if len(labels) != len(v):
            raise ValueError(f"factor {name!r} has {len(labels)} labels; values has {len(v)} rows")
        levels, codes = np.unique(labels, return_inverse=True)
        counts = rng.multinomial(len(levels), np.full(len(levels), 1.0 / len(levels)), size=n_resamples)
        weights *= counts[:, codes]
    total = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (weights @ v) / total
    low, high = _percentiles(np.where(total > 0, means, np.nan), alpha, "crossed_bootstrap_mean")
    return Estimate(float(v.mean()), low, high)
