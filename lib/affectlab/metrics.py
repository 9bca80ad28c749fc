"""Evaluation metrics of the book: classification, calibration, confidence intervals, CCC, vertices.

Numpy arrays in, Python floats (or numpy arrays) out. Everything is written out here (no
scikit-learn at run time) and the tests check it against scikit-learn to 1e-9.

Classification follows NeuroGaze-Distill (paper 000) App. A.1 and Sec. 5.1:

- ``Acc = sum_c TP_c / sum_c n_c``; ``Macro-F1 = mean_c F1_c``; ``bACC = mean_c TPR_c`` [Brodersen
  et al. 2010]; Macro-AUROC = mean of one-vs-rest AUROCs.
- Intervals (bootstrap, paired differences, seeds) live in :mod:`affectlab.stats`.
- Present-only metrics for label-set mismatch across datasets: :func:`present_only_metrics`.

Regression: Lin's concordance correlation coefficient :func:`ccc` (teacher V/A, paper 000 Fig. 7).
Calibration: :func:`expected_calibration_error`, :func:`negative_log_likelihood`,
:func:`reliability_curve`.
Face geometry (EEG2Face, paper 002 Sec. 4.0.2, Table 4.1): :func:`lip_vertex_error`,
:func:`mouth_corner_error`, :func:`emotional_vertex_error` (alias :func:`upper_face_error`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np
from scipy import stats

ArrayLike = Any  # numpy array, list, or CPU torch tensor

__all__ = [
    "accuracy",
    "macro_f1",
    "balanced_accuracy",
    "macro_auroc",
    "per_class_auroc",
    "confusion_matrix",
    "per_class_precision_recall",
    "present_only_metrics",
    "ccc",
    "reliability_curve",
    "expected_calibration_error",
    "negative_log_likelihood",
    "lip_vertex_error",
    "mouth_corner_error",
    "emotional_vertex_error",
    "upper_face_error",
    "eye_region_error",
]


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------


def _as_numpy(value: ArrayLike, name: str) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic input
        raise TypeError(f"parameter {name} must be array-like; got {type(value).__name__}") from exc


def _labels_1d(value: ArrayLike, name: str) -> np.ndarray:
    arr = _as_numpy(value, name)
    if arr.ndim != 1:
        raise ValueError(f"parameter {name} must be a 1-D array of class labels; got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"parameter {name} must hold integer class labels; got non-integer floats")
        arr = arr.astype(np.int64)
    return arr


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = _labels_1d(y_true, "y_true")
    p = _labels_1d(y_pred, "y_pred")
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} labels but y_pred has {len(p)}; they must match")
    if len(t) == 0:
        raise ValueError("y_true and y_pred are empty; a metric needs at least one sample")
    return t, p


def _probs_2d(probs: ArrayLike, n: int, name: str = "probs") -> np.ndarray:
    arr = _as_numpy(probs, name).astype(np.float64)
    if arr.ndim != 2:
        raise ValueError(f"parameter {name} must be (n_samples, n_classes); got shape {arr.shape}")
    if len(arr) != n:
        raise ValueError(f"parameter {name} has {len(arr)} rows but y_true has {n}")
    if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"parameter {name} must hold probabilities in [0, 1]")
    return arr


def _check_rows_sum_to_one(probs: np.ndarray, name: str = "probs") -> None:
    worst = float(np.max(np.abs(probs.sum(axis=1) - 1.0)))
    if worst > 1e-6:
        raise ValueError(
            f"rows of {name} must sum to 1 (softmax outputs); the worst row is off by {worst:.3g}"
        )


def _label_list(labels: Sequence[Any] | None, *arrays: np.ndarray) -> np.ndarray:
    if labels is None:
        if all(a.dtype.kind in "iu" and a.min() >= 0 and a.max() < 100_000 for a in arrays):
            seen = sum(np.bincount(a, minlength=max(int(b.max()) for b in arrays) + 1) for a in arrays)
            return np.flatnonzero(seen)  # sorted union without a sort (fast in bootstrap loops)
        return np.unique(np.concatenate(arrays))
    out = np.asarray(list(labels))
    if out.ndim != 1 or len(out) == 0:
        raise ValueError(f"parameter labels must be a non-empty list of class labels; got {labels!r}")
    if len(np.unique(out)) != len(out):
        raise ValueError(f"parameter labels has duplicates: {labels!r}")
    return out


# ----------------------------------------------------------------------------------------------
# classification
# ----------------------------------------------------------------------------------------------


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of correct predictions, ``sum_c TP_c / sum_c n_c`` (paper 000 App. A.1)."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p))


def confusion_matrix(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    labels: Sequence[Any] | None = None,
    normalize: str | None = None,
) -> np.ndarray:
    """Counts ``C[i, j]`` = samples of true class ``labels[i]`` predicted as ``labels[j]``.

    ``labels=None`` uses the sorted union of labels in ``y_true`` and ``y_pred``; samples whose
    true or predicted label is not in ``labels`` are left out (as scikit-learn does).
    ``normalize="true"`` divides each row by its count (rows of absent classes stay 0).
    """
    t, p = _pair(y_true, y_pred)
    lab = _label_list(labels, t, p)
    if normalize not in (None, "true"):
        raise ValueError(f"parameter normalize must be None or 'true'; got {normalize!r}")
    index = {label: i for i, label in enumerate(lab.tolist())}
    ti = np.array([index.get(v, -1) for v in t.tolist()])
    pi = np.array([index.get(v, -1) for v in p.tolist()])
    keep = (ti >= 0) & (pi >= 0)
    k = len(lab)
    cm = np.bincount(ti[keep] * k + pi[keep], minlength=k * k).reshape(k, k).astype(np.int64)
    if normalize == "true":
        rows = cm.sum(axis=1, keepdims=True).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(rows > 0, cm / np.where(rows > 0, rows, 1.0), 0.0)
    return cm


def _codes(t: np.ndarray, p: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, ...]:
    """Integer codes of true, predicted and listed labels in one shared range (for bincount)."""
    arrays = (t, p, lab)
    if all(a.dtype.kind in "iu" for a in arrays):
        low = min(int(a.min()) for a in arrays)
        high = max(int(a.max()) for a in arrays)
        if low >= 0 and high < 100_000:
            return t, p, lab, high + 1
    universe, codes = np.unique(np.concatenate(arrays), return_inverse=True)
    n = len(t)
    return codes[:n], codes[n : 2 * n], codes[2 * n :], len(universe)


def per_class_precision_recall(
    y_true: ArrayLike, y_pred: ArrayLike, labels: Sequence[Any] | None = None
) -> dict[str, np.ndarray]:
    """Per-class precision, recall (TPR), F1 and support, in the order of ``labels``.

    ``labels=None`` uses the union of labels present in ``y_true`` and ``y_pred``. A ratio whose
    denominator is 0 (class never predicted, or absent from ``y_true``) is 0, as in scikit-learn's
    ``zero_division=0``.
    """
    t, p = _pair(y_true, y_pred)
    lab = _label_list(labels, t, p)
    # counts over all samples (a prediction of c for a row outside ``labels`` is still a FP of c)
    tc, pc, lc, m = _codes(t, p, lab)
    tp = np.bincount(tc[tc == pc], minlength=m)[lc].astype(np.float64)
    predicted = np.bincount(pc, minlength=m)[lc].astype(np.float64)
    support = np.bincount(tc, minlength=m)[lc].astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        "labels": lab,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support.astype(np.int64),
    }


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike, labels: Sequence[Any] | None = None) -> float:
    """Unweighted mean of per-class F1 (paper 000 App. A.1).

    ``labels=None`` averages over the union of labels present in ``y_true`` and ``y_pred``
    (scikit-learn's default); an explicit list averages over exactly those classes, a listed class
    with no samples and no predictions counting as F1 = 0 (the fixed 8-way protocol).
    """
    return float(np.mean(per_class_precision_recall(y_true, y_pred, labels)["f1"]))


def balanced_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean per-class recall over the classes present in ``y_true`` (bACC, paper 000 App. A.1)."""
    t, p = _pair(y_true, y_pred)
    tc, _, _, m = _codes(t, p, t[:1])
    support = np.bincount(tc, minlength=m)
    hits = np.bincount(tc[t == p], minlength=m)
    present = support > 0
    return float(np.mean(hits[present] / support[present]))


def _binary_auroc(is_positive: np.ndarray, score: np.ndarray) -> float:
    """AUROC as the Mann-Whitney statistic with mid-ranks for ties (equals the trapezoid ROC area)."""
    n_pos = int(is_positive.sum())
    n_neg = len(is_positive) - n_pos
    ranks = stats.rankdata(score)  # average ranks for ties
    u = ranks[is_positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def per_class_auroc(
    y_true: ArrayLike, probs: ArrayLike, labels: Sequence[Any] | None = None
) -> dict[Any, float]:
    """One-vs-rest AUROC of each column of ``probs``; NaN for a class absent from ``y_true``.

    ``labels[j]`` names column ``j`` of ``probs`` (default ``0..K-1``).
    """
    t = _labels_1d(y_true, "y_true")
    pr = _probs_2d(probs, len(t))
    lab = np.arange(pr.shape[1]) if labels is None else _label_list(labels)
    if len(lab) != pr.shape[1]:
        raise ValueError(f"labels has {len(lab)} entries but probs has {pr.shape[1]} columns")
    out: dict[Any, float] = {}
    for j, c in enumerate(lab.tolist()):
        pos = t == c
        out[c] = _binary_auroc(pos, pr[:, j]) if 0 < pos.sum() < len(t) else float("nan")
    return out


def macro_auroc(y_true: ArrayLike, probs: ArrayLike, labels: Sequence[Any] | None = None) -> float:
    """Mean one-vs-rest AUROC over classes (paper 000 App. A.1, "Macro-AUROC").

    Classes absent from ``y_true`` (or the only class present) have no AUROC; they are skipped and
    a ``UserWarning`` names them. ``labels[j]`` names column ``j`` of ``probs`` (default ``0..K-1``).
    """
    per_class = per_class_auroc(y_true, probs, labels)
    skipped = [c for c, v in per_class.items() if math.isnan(v)]
    if skipped:
        warnings.warn(
            f"macro_auroc: classes {skipped} have no positives (or only positives) in y_true; "
            f"they are skipped and the mean is over {len(per_class) - len(skipped)} classes",
            UserWarning,
            stacklevel=2,
        )
    values = [v for v in per_class.values() if not math.isnan(v)]
    if not values:
        raise ValueError("macro_auroc: no class has both positives and negatives in y_true")
    return float(np.mean(values))


def present_only_metrics(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    labels: Sequence[Any] | None = None,
    scores: ArrayLike | None = None,
) -> dict[str, Any]:
    """Present-only Acc / Macro-F1 / bACC (NeuroGaze-Distill Sec. 5.1 and App. A.2).

    The paper: "present-only metrics computed using only the classes available in the target set";
    "metrics are computed only over the set of labels that exist in the target dataset
    annotations". Implemented as:

    - the present set is the classes of ``labels`` (the fixed taxonomy, e.g. FERPlus 0..7) that
      occur in ``y_true``; rows whose true label is not in ``labels`` are dropped;
    - macro averages (F1, recall) run over the present classes only;
    - predictions of an absent class are kept and count as errors (they lower accuracy and the
      recall of the true class, and are no class's false positive).

    ``scores`` (N, len(labels)), optional: the model's logits or probabilities over ``labels``.
    When given, the prediction is re-taken as the arg-max over the present classes only (absent
    classes masked out), so a student cannot predict an absent class at all. The paper's Table 2
    needs this reading: on CK+ (no neutral) its present-only Acc (64.93%) differs from its 8-way Acc
    (55.86%), which cannot happen when absent-class predictions merely count as errors.
    ``mode`` in the result says which reading was used.

    Returns a dict: ``accuracy``, ``macro_f1``, ``balanced_accuracy``, ``present`` (present labels),
    ``n`` (rows used), ``mode`` ("absent_predictions_are_errors" or "argmax_over_present").
    """
    t, p = _pair(y_true, y_pred)
    lab = _label_list(labels, t, p)
    in_taxonomy = np.isin(t, lab)
    if not in_taxonomy.any():
        raise ValueError(f"present_only_metrics: no true label of y_true is in labels {lab.tolist()}")
    present = np.array([c for c in lab if np.any(t == c)])
    t, p = t[in_taxonomy], p[in_taxonomy]
    mode = "absent_predictions_are_errors"
    if scores is not None:
        sc = _as_numpy(scores, "scores").astype(np.float64)
        if sc.ndim != 2 or sc.shape != (len(in_taxonomy), len(lab)):
            raise ValueError(
                f"parameter scores must be (n_samples={len(in_taxonomy)}, len(labels)={len(lab)}); "
                f"got {sc.shape}"
            )
        cols = np.array([int(np.flatnonzero(lab == c)[0]) for c in present])
        p = present[np.argmax(sc[in_taxonomy][:, cols], axis=1)]
        mode = "argmax_over_present"
    return {
        "accuracy": accuracy(t, p),
        "macro_f1": macro_f1(t, p, labels=present),
        "balanced_accuracy": balanced_accuracy(t, p),
        "present": present.tolist(),
        "n": int(len(t)),
        "mode": mode,
    }


# ----------------------------------------------------------------------------------------------
# confidence intervals
# ----------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------
# regression
# ----------------------------------------------------------------------------------------------


def ccc(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Lin's concordance correlation coefficient (Lin 1989), used for teacher V/A (paper 000 Fig. 7).

    ``CCC = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2)`` with population (1/N)
    moments. Two constant, equal series give 1; constant unequal series give 0.
    """
    x = _as_numpy(y_true, "y_true").astype(np.float64).ravel()
    y = _as_numpy(y_pred, "y_pred").astype(np.float64).ravel()
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"y_true ({len(x)}) and y_pred ({len(y)}) must be non-empty and match")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("ccc: y_true and y_pred must be finite")
    mx, my = x.mean(), y.mean()
    cov = np.mean((x - mx) * (y - my))
    denom = x.var() + y.var() + (mx - my) ** 2
    if denom == 0:
        return 1.0
    return float(2 * cov / denom)


# ----------------------------------------------------------------------------------------------
# calibration
# ----------------------------------------------------------------------------------------------


def reliability_curve(probs: ArrayLike, y_true: ArrayLike, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Confidence (max probability) vs accuracy in ``n_bins`` equal-width bins (Guo et al. 2017).

    Bin ``b`` holds confidences in ``(b/n, (b+1)/n]`` (the first bin also takes 0). Returns arrays
    ``lower``, ``upper``, ``confidence`` (mean confidence, NaN if empty), ``accuracy`` (NaN if
    empty) and ``count``.
    """
    t = _labels_1d(y_true, "y_true")
    pr = _probs_2d(probs, len(t))
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"parameter n_bins must be a positive int; got {n_bins!r}")
    conf = pr.max(axis=1)
    correct = (pr.argmax(axis=1) == t).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    sum_conf = np.bincount(which, weights=conf, minlength=n_bins)
    sum_acc = np.bincount(which, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, sum_conf / np.maximum(count, 1), np.nan)
        mean_acc = np.where(count > 0, sum_acc / np.maximum(count, 1), np.nan)
    return {
        "lower": edges[:-1],
        "upper": edges[1:],
        "confidence": mean_conf,
        "accuracy": mean_acc,
        "count": count,
    }


def expected_calibration_error(probs: ArrayLike, y_true: ArrayLike, n_bins: int = 15) -> float:
    """ECE = ``sum_b (|B_b| / N) |acc(B_b) - conf(B_b)|`` over equal-width bins (Guo et al. 2017)."""
    curve = reliability_curve(probs, y_true, n_bins)
    used = curve["count"] > 0
    weights = curve["count"][used] / curve["count"].sum()
    return float(np.sum(weights * np.abs(curve["accuracy"][used] - curve["confidence"][used])))


def negative_log_likelihood(probs: ArrayLike, y_true: ArrayLike) -> float:
    """Mean ``-log p(y_i)`` (natural log). Rows of ``probs`` must sum to 1; columns are classes
    ``0..K-1``. Probabilities are clipped below at float64 eps so a wrong 0 costs ~36 nats, not inf.
    """
    t = _labels_1d(y_true, "y_true")
    pr = _probs_2d(probs, len(t))
    _check_rows_sum_to_one(pr)
    if t.min() < 0 or t.max() >= pr.shape[1]:
        raise ValueError(
            f"y_true labels must index the {pr.shape[1]} columns of probs; got {t.min()}..{t.max()}"
        )
    picked = np.clip(pr[np.arange(len(t)), t], np.finfo(np.float64).eps, 1.0)
    return float(-np.mean(np.log(picked)))


# ----------------------------------------------------------------------------------------------
# vertex errors (EEG2Face, paper 002 Sec. 4.0.2)
# ----------------------------------------------------------------------------------------------


def _max_region_error(pred: ArrayLike, target: ArrayLike, idx: ArrayLike, name: str) -> float:
    a = _as_numpy(pred, "pred").astype(np.float64)
    b = _as_numpy(target, "target").astype(np.float64)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"parameter pred must be (frames, vertices, 3); got shape {a.shape}")
    if a.shape != b.shape:
        raise ValueError(f"pred {a.shape} and target {b.shape} must have the same shape")
    ids = _as_numpy(idx, name).astype(np.int64).ravel()
    if len(ids) == 0:
        raise ValueError(f"parameter {name} is empty; give the vertex ids of the region")
    if ids.min() < 0 or ids.max() >= a.shape[1]:
        raise ValueError(f"parameter {name} has ids outside 0..{a.shape[1] - 1}")
    dist = np.linalg.norm(a[:, ids] - b[:, ids], axis=-1)  # (frames, region vertices)
    return float(dist.max(axis=1).mean())


def lip_vertex_error(pred: ArrayLike, target: ArrayLike, lip_idx: ArrayLike) -> float:
    """LVE (paper 002 Sec. 4.0.2, after MeshTalk): per frame the maximum L2 error over the lip
    vertices, averaged over frames. ``pred``/``target`` are (frames, vertices, 3); the result is in
    the units of the inputs (mm for the book's face model).
    """
    return _max_region_error(pred, target, lip_idx, "lip_idx")


def mouth_corner_error(pred: ArrayLike, target: ArrayLike, corner_idx: ArrayLike) -> float:
    """MCE (paper 002 Table 4.1). The thesis names it but gives no formula; we use the LVE recipe
    on the mouth-corner vertices: per frame the maximum L2 error over ``corner_idx``, averaged over
    frames (same units as the inputs).
    """
    return _max_region_error(pred, target, corner_idx, "corner_idx")


def emotional_vertex_error(pred: ArrayLike, target: ArrayLike, region_idx: ArrayLike) -> float:
    """EVE (paper 002 Sec. 4.0.2, after EmoTalk): L2 error in the emotion-related regions
    "including the forehead, cheeks, and eye vertices". As in EmoTalk we take per frame the maximum
    L2 error over the union of those vertices (pass the union as ``region_idx``), averaged over
    frames (same units as the inputs).
    """
    return _max_region_error(pred, target, region_idx, "region_idx")


upper_face_error = emotional_vertex_error
eye_region_error = emotional_vertex_error
