"""Subsets and splits every chapter draws: class-capped and stratified subsets, group-disjoint splits.

All return sorted row indices (numpy int64) and are deterministic for a seed. Rows labelled < 0
(unknown / no label) are never kept.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["class_capped_indices", "stratified_indices", "group_disjoint_split"]


def _labels(labels: Any, name: str = "labels") -> np.ndarray:
    y = np.asarray(labels.numpy() if hasattr(labels, "numpy") else labels)
    if y.ndim != 1:
        raise ValueError(f"parameter {name} must be 1-D (one label per row); got shape {y.shape}")
    return y.astype(np.int64, copy=False)


def class_capped_indices(labels: Any, cap: int | None, seed: int) -> np.ndarray:
    """Every labelled row of each class, at most ``cap`` per class (drawn at random with ``seed``);
    ``cap=None`` keeps all labelled rows."""
    y = _labels(labels)
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1):
        raise ValueError(f"parameter cap must be a positive int or None; got {cap!r}")
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y[y >= 0]):
        rows = np.flatnonzero(y == c)
        if cap is not None and len(rows) > cap:
            rows = rng.choice(rows, size=int(cap), replace=False)
        keep.append(rows)
    if not keep:
        raise ValueError("class_capped_indices: no labelled rows (all labels < 0)")
    return np.sort(np.concatenate(keep)).astype(np.int64)


def stratified_indices(labels: Any, size: int | None, seed: int) -> np.ndarray:
    """``size`` labelled rows keeping the class proportions: each class gets the floor of its share,
    the remaining rows go to the largest remainders, and every class present keeps at least one
    row. ``size=None`` or ``size >=`` the labelled count keeps all labelled rows."""
    y = _labels(labels)
    labelled = np.flatnonzero(y >= 0)
    if len(labelled) == 0:
        raise ValueError("stratified_indices: no labelled rows (all labels < 0)")
    if size is None or size >= len(labelled):
        return labelled.astype(np.int64)
    classes, counts = np.unique(y[labelled], return_counts=True)
    if size < len(classes):
        raise ValueError(f"stratified_indices: size {size} is below the {len(classes)} classes present")
    exact = counts / counts.sum() * size
    take = np.maximum(1, np.floor(exact).astype(int))
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    i = 0
    while take.sum() < size:
        c = order[i % len(order)]
        if take[c] < counts[c]:
            take[c] += 1
        i += 1
    while take.sum() > size:
        take[int(np.argmax(take))] -= 1
    rng = np.random.default_rng(seed)
    rows = [rng.choice(np.flatnonzero(y == c), size=int(k), replace=False) for c, k in zip(classes, take)]
    return np.sort(np.concatenate(rows)).astype(np.int64)


def group_disjoint_split(groups: Any, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split rows into parts whose *groups* (subjects, identities, trials) do not overlap.

    ``fractions`` (summing to 1) are shares of the groups, not of the rows; groups are shuffled with
    ``seed`` and dealt in order; every part gets at least one group. Returns one sorted index array
    per fraction.
    """
    g = np.asarray(groups.numpy() if hasattr(groups, "numpy") else groups)
    f = np.asarray(fractions, dtype=np.float64)
    if f.ndim != 1 or len(f) < 2 or np.any(f <= 0) or not np.isclose(f.sum(), 1.0):
        raise ValueError(f"parameter fractions must be >= 2 positive shares summing to 1; got {fractions!r}")
    unique = np.unique(g)
    if len(unique) < len(f):
        raise ValueError(f"group_disjoint_split: {len(unique)} groups cannot fill {len(f)} parts")
    order = np.random.default_rng(seed).permutation(unique)
    bounds = np.round(np.cumsum(f) * len(unique)).astype(int)
    bounds = np.maximum(bounds, np.arange(1, len(f) + 1))
    bounds = np.minimum(bounds, len(unique) - (len(f) - 1 - np.arange(len(f))))
    parts, start = [], 0
    for end in bounds:
        parts.append(np.sort(np.flatnonzero(np.isin(g, order[start:end]))).astype(np.int64))
        start = end
    return parts
