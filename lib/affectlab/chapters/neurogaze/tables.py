"""Chapter 01 tables (Sec. 5, App. A.1-A.2): the EEG teacher's CCC, bank coverage, Table 3 (ablation
B0-B3, Full), Table 2 (cross-dataset, present-only and 8-way), the grid ablation and the feature
geometry D-Geo targets, each beside the paper's numbers with 95% bootstrap CIs
(:mod:`affectlab.stats`) and majority-class / chance reference points.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from affectlab import metrics, stats
from affectlab.config import RunConfig
from affectlab.data.sets import FaceSet
from affectlab.data.taxonomy import FERPLUS_CLASSES
from affectlab.reporting import ci_cell

from .config import PAPER_TABLE2, PAPER_TABLE3, VARIANT_LABELS, VARIANT_TERMS, ChapterConfig
from .data import FaceData, TeacherData, short_source
from .experiments import PrototypeBanks, StudentRuns, TeacherRun, student_predictions

__all__ = [
    "METRIC_NAMES",
    "bootstrap_rows",
    "teacher_scores",
    "bank_coverage_table",
    "baseline_scores",
    "ablation_table",
    "cross_dataset_table",
    "grid_ablation_table",
    "feature_geometry_table",
    "paired_variant_difference",
    "seed_spread_table",
]


def bootstrap_rows(fn: Callable[[np.ndarray], float], n: int, resamples: int, seed: int,
                    clusters: np.ndarray | None = None) -> tuple[float, float, float]:
    """Percentile bootstrap of a statistic of row indices (via :func:`stats.bootstrap_ci`):
    rows resampled independently, or whole ``clusters`` (e.g. subjects) when given."""
    rows = np.arange(n)
    return stats.bootstrap_ci(lambda idx, _: fn(idx), rows, rows, n_resamples=resamples, seed=seed,
                                stratified=False, clusters=clusters)


def teacher_scores(teacher: TeacherRun, data: TeacherData, cfg: ChapterConfig) -> pd.DataFrame:
    """CCC of the teacher's V/A on the held-out *test* subjects (its checkpoint was chosen on
    separate validation subjects) per axis and dataset, with 95% cluster-bootstrap CIs: each
    resample draws whole test *subjects* with replacement (``cfg.bootstrap_resamples``), because
    trials of one subject are not independent. A set with a single test subject falls back to
    resampling trials (the "CI resamples" column says which). With a shuffled-label null
    (``teacher.null_test_pred``) each row also gives the null teacher's CCC on the same trials and
    the paired difference (teacher - null) with its subject-bootstrap CI."""
    if teacher.test_pred is None or teacher.test_va is None:
        raise ValueError("teacher_scores: the TeacherRun has no test-subject predictions (train_eeg_teacher gives them)")
    rows = []
    test_dataset = data.dataset[teacher.test_idx]
    test_groups = data.groups[teacher.test_idx]
    for name in ["all", *dict.fromkeys(test_dataset.tolist())]:
        sel = np.ones(len(test_dataset), bool) if name == "all" else test_dataset == name
        true, pred, groups = teacher.test_va[sel], teacher.test_pred[sel], test_groups[sel]
        null = None if teacher.null_test_pred is None else teacher.null_test_pred[sel]
        n_subjects = len(set(groups.tolist()))
        clusters = np.unique(groups, return_inverse=True)[1] if n_subjects >= 2 else None
        for axis, label in enumerate(("valence", "arousal")):
            point, low, high = bootstrap_rows(
                lambda idx: metrics.ccc(true[idx, axis], pred[idx, axis]), int(sel.sum()),
                cfg.bootstrap_resamples, seed=0, clusters=clusters)
            row = {"test set": name, "axis": label, "trials": int(sel.sum()),
                   "subjects": n_subjects, "CCC": point, "CCC 95% CI": f"[{low:.3f}, {high:.3f}]",
                   "CI low": low, "CI high": high,
                   "CI resamples": "subjects" if clusters is not None else "trials (1 subject)"}
            if null is not None:
                row["null CCC (shuffled V/A)"] = metrics.ccc(true[:, axis], null[:, axis])
                d, d_low, d_high = bootstrap_rows(
                    lambda idx: metrics.ccc(true[idx, axis], pred[idx, axis]) - metrics.ccc(true[idx, axis], null[idx, axis]),
                    int(sel.sum()), cfg.bootstrap_resamples, seed=0, clusters=clusters)
                row["CCC - null"] = f"{d:+.3f} [{d_low:+.3f}, {d_high:+.3f}]"
                row["above null"] = bool(d_low > 0)
            rows.append(row)
    return pd.DataFrame(rows)


def bank_coverage_table(banks: PrototypeBanks) -> pd.DataFrame:
    """Coverage statistics of each grid: bins, empty bins (filled from the nearest bin), smallest
    and largest non-empty count, and the bank's SHA-256 (paper Table 1 / Sec. 5.3 "grid size")."""
    rows = []
    for bank in (banks.main, banks.ablation):
        counts = bank["coverage"].ravel()
        filled = counts[counts > 0]
        rows.append({"grid": f"{bank['grid']}x{bank['grid']}", "bins": len(counts),
                     "empty bins": int((counts == 0).sum()), "min non-empty count": int(filled.min()),
                     "max count": int(filled.max()), "validation trials": int(counts.sum()),
                     "file": bank["path"].name, "SHA-256": bank["sha256"]})
    return pd.DataFrame(rows)



def _eight_way(true: np.ndarray, scores: np.ndarray, key: str) -> float:
    """The fixed 8-way FER mapping (arg-max over all 8 classes): accuracy, macro-F1 over all 8
    classes (an absent class counts as F1 = 0) or bACC over the classes present in ``true``."""
    pred = scores.argmax(1)
    if key == "accuracy":
        return metrics.accuracy(true, pred)
    if key == "macro_f1":
        return metrics.macro_f1(true, pred, labels=list(range(len(FERPLUS_CLASSES))))
    return metrics.balanced_accuracy(true, pred)


def _present_only(true: np.ndarray, scores: np.ndarray, key: str) -> float:
    """Present-only metrics with the arg-max over the present classes (metrics.present_only_metrics
    with ``scores``: the reading that matches the paper's Table 2)."""
    labels = list(range(len(FERPLUS_CLASSES)))
    return metrics.present_only_metrics(true, scores.argmax(1), labels=labels, scores=scores)[key]


METRIC_NAMES = {"accuracy": "Acc", "macro_f1": "Macro-F1", "balanced_accuracy": "bACC"}
Scorer = Callable[[np.ndarray, np.ndarray, str], float]


def _seed_mean_with_ci(true: np.ndarray, per_seed_scores: Sequence[np.ndarray], scorer: Scorer,
                       resamples: int, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per metric: the mean over seeds, its 95% stratified-bootstrap CI (``resamples`` resamples of
    the test rows, the same rows for every seed, App. A.1) and the per-seed values."""
    scores = np.stack(per_seed_scores)  # (S, N, K)
    flat = scores.transpose(1, 0, 2).reshape(len(true), -1)  # the seeds' rows are resampled together
    k = scores.shape[2]
    out: dict[str, dict[str, Any]] = {}
    for key in METRIC_NAMES:
        def mean_over_seeds(t: np.ndarray, p: np.ndarray, key: str = key) -> float:
            return float(np.mean([scorer(t, p[:, s * k:(s + 1) * k], key) for s in range(len(scores))]))

        point, low, high = stats.bootstrap_ci(mean_over_seeds, true, flat, n_resamples=resamples, seed=seed)
        out[key] = {"mean": point, "low": low, "high": high, "per_seed": [scorer(true, s, key) for s in scores]}
    return out


def _fmt(m: Mapping[str, float]) -> str:
    """A ``{"mean", "low", "high"}`` fraction as a "value [lo, hi]" cell in %."""
    return ci_cell(100 * m["mean"], 100 * m["low"], 100 * m["high"], digits=2)


def _collect(students: StudentRuns, variant: str, faces: FaceSet, data: FaceData, cfg: ChapterConfig,
             run: RunConfig) -> tuple[np.ndarray, list[np.ndarray]]:
    students.require(variant)
    preds = [student_predictions(students.runs[(variant, s)], faces, data, cfg, run) for s in students.seeds_of(variant)]
    return preds[0].labels.numpy(), [p.outputs.numpy() for p in preds]


def baseline_scores(true: np.ndarray, setting: str = "8-way") -> dict[str, dict[str, float]]:
    """Reference points for a label vector ``true`` (fractions, not %):

    - ``"majority"``: always predicting the most frequent class of ``true`` (exact values; the
      class is ``["majority"]["class"]``, an index into :data:`FERPLUS_CLASSES`);
    - ``"chance"``: guessing uniformly among the K classes of the arg-max (``setting`` "8-way":
      K = 8; "present-only": the classes present in ``true``), as large-sample expectations:
      Acc = bACC = 1/K and per-class F1 = 2 p_c (1/K) / (p_c + 1/K) with p_c the class share
      (precision p_c, recall 1/K), macro-averaged like the models (8-way: over all 8 classes, an
      absent class scoring 0; present-only: over the present classes).
    """
    true = np.asarray(true)
    if true.ndim != 1 or len(true) == 0:
        raise ValueError(f"parameter true must be a non-empty 1-D label array; got shape {true.shape}")
    if setting not in ("8-way", "present-only"):
        raise ValueError(f"parameter setting must be '8-way' or 'present-only'; got {setting!r}")
    n_all = len(FERPLUS_CLASSES)
    present = sorted(set(true.tolist()))
    counts = np.bincount(true, minlength=n_all)
    majority = int(np.argmax(counts))
    constant = np.full(len(true), majority)
    labels = list(range(n_all)) if setting == "8-way" else present
    out = {"majority": {"class": majority, "accuracy": metrics.accuracy(true, constant),
                        "macro_f1": metrics.macro_f1(true, constant, labels=labels),
                        "balanced_accuracy": metrics.balanced_accuracy(true, constant)}}
    k = n_all if setting == "8-way" else len(present)
    share = counts[labels] / len(true)
    f1 = np.where(share > 0, 2 * share / k / np.maximum(share + 1 / k, 1e-12), 0.0)
    out["chance"] = {"accuracy": 1 / k, "macro_f1": float(f1.mean()), "balanced_accuracy": 1 / k}
    return out


def _baseline_text(values: Mapping[str, float]) -> str:
    return " / ".join(f"{100 * values[key]:.2f}" for key in METRIC_NAMES)


def ablation_table(students: StudentRuns, data: FaceData, cfg: ChapterConfig, run: RunConfig,
                   split: str = "test") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Table 3: each variant's 8-way Acc / Macro-F1 / bACC (%) on the FERPlus ``split`` ("test" or
    "val"): mean over seeds [95% stratified bootstrap CI], beside the paper's numbers (its Table 3,
    FERPlus validation), with ``n`` and the data source. Below the variants: B0 at the extra
    ``noise`` seeds (same recipe, another seed: the run-to-run spread), the majority-class
    predictor and uniform chance (:func:`baseline_scores`). Returns the display table and the raw
    numbers (for the metrics JSON; baselines under ``"_baselines"``, noise runs under ``"_noise"``)."""
    if split not in ("test", "val"):
        raise ValueError(f"parameter split must be 'test' or 'val'; got {split!r}")
    faces = {"test": data.test, "val": data.val}[split]
    rows, raw = [], {}
    source = short_source(faces.source)

    def add_row(label: str, terms: str, res: Mapping[str, Any], paper: Sequence[float] | None, seeds: Any) -> None:
        row: dict[str, Any] = {"variant": label, "terms": terms}
        for key, short in METRIC_NAMES.items():
            row[f"{short} (%) ours"] = _fmt(res[key])
        for i, short in enumerate(METRIC_NAMES.values()):
            row[f"{short} (%) paper"] = "-" if paper is None else f"{paper[i]:.2f}"
        row.update({"seeds": seeds, "n": len(faces), "data": source})
        rows.append(row)

    for variant in students.variants:
        true, scores = _collect(students, variant, faces, data, cfg, run)
        res = _seed_mean_with_ci(true, scores, _eight_way, cfg.bootstrap_resamples)
        raw[variant] = res
        add_row(VARIANT_LABELS[variant], "CE(LS+CW)" + "".join(f" + {t}" for t in VARIANT_TERMS[variant]), res,
                PAPER_TABLE3[variant], len(scores))
    raw["_noise"] = {}
    for seed, result in students.noise.items():
        pred = student_predictions(result, faces, data, cfg, run)
        res = _seed_mean_with_ci(pred.labels.numpy(), [pred.outputs.numpy()], _eight_way, cfg.bootstrap_resamples)
        raw["_noise"][seed] = res
        add_row(f"B0, seed {seed} (run-to-run spread)", "CE(LS+CW)", res, None, 1)
    true = faces.labels.numpy()
    base = baseline_scores(true[true >= 0], "8-way")
    raw["_baselines"] = base
    exact = {key: {"mean": v, "low": v, "high": v} for key, v in base["majority"].items() if key != "class"}
    add_row(f"majority class ({FERPLUS_CLASSES[base['majority']['class']]})", "constant prediction", exact, None, "-")
    chance = {key: {"mean": v, "low": v, "high": v} for key, v in base["chance"].items()}
    add_row("chance (uniform guess, expected)", "-", chance, None, "-")
    return pd.DataFrame(rows).set_index("variant"), raw


def cross_dataset_table(students: StudentRuns, data: FaceData, cfg: ChapterConfig, run: RunConfig,
                        variant: str = "B3") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Table 2 for ``variant`` (the paper: A3_full = B3): for each target set (CK+, AffectNet-mini
    when present, FERPlus valid and test) the present classes, present-only and fixed 8-way
    Acc / Macro-F1 / bACC (%) as mean over seeds [95% bootstrap CI], with the paper's values, and
    the majority-class and uniform-chance reference points of both settings as "Acc / Macro-F1 /
    bACC" (:func:`baseline_scores`)."""
    students.require(variant)
    targets = dict(data.cross)
    targets["ferplus_valid"] = data.val
    targets["ferplus_test"] = data.test
    rows, raw = [], {}
    for name, faces in targets.items():
        true, scores = _collect(students, variant, faces, data, cfg, run)
        present = [FERPLUS_CLASSES[c] for c in sorted(set(true.tolist()))]
        res_present = _seed_mean_with_ci(true, scores, _present_only, cfg.bootstrap_resamples)
        res_eight = _seed_mean_with_ci(true, scores, _eight_way, cfg.bootstrap_resamples)
        base = {setting: baseline_scores(true, setting) for setting in ("present-only", "8-way")}
        raw[name] = {"present_only": res_present, "eight_way": res_eight, "present": present, "n": int(len(true)),
                     "source": faces.source, "baselines": base}
        row: dict[str, Any] = {"dataset": name, "n": len(true), "data": short_source(faces.source),
                               "present classes": ", ".join(present)}
        for key, short in METRIC_NAMES.items():
            row[f"present-only {short} (%) ours"] = _fmt(res_present[key])
        for key, short in METRIC_NAMES.items():
            row[f"8-way {short} (%) ours"] = _fmt(res_eight[key])
        paper = PAPER_TABLE2.get(name)
        for i, short in enumerate(f"{p} {m}" for p in ("present-only", "8-way") for m in METRIC_NAMES.values()):
            row[f"{short} (%) paper"] = "-" if paper is None else f"{paper[i]:.2f}"
        row["majority class"] = FERPLUS_CLASSES[base["8-way"]["majority"]["class"]]
        for setting in ("present-only", "8-way"):
            row[f"{setting} majority Acc / Macro-F1 / bACC (%)"] = _baseline_text(base[setting]["majority"])
            row[f"{setting} chance Acc / Macro-F1 / bACC (%)"] = _baseline_text(base[setting]["chance"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("dataset"), raw


def grid_ablation_table(students: StudentRuns, banks: PrototypeBanks, data: FaceData, cfg: ChapterConfig,
                        run: RunConfig) -> pd.DataFrame:
    """Sec. 5.3 "grid size": B2 with the 5x5 bank against B2 with the 7x7 bank (same seeds,
    ``cfg.ablation_seeds``): empty bins of each bank, best validation macro-F1, and test Acc /
    Macro-F1 (%) as mean over seeds [95% bootstrap CI]."""
    rows = []
    seeds = [s for s in students.seeds[: cfg.ablation_seeds] if (banks.ablation["grid"], s) in students.ablation]
    if not seeds:
        raise ValueError("no grid-ablation runs (train_students(..., grid_ablation=True) with variant B2)")
    for bank, results in ((banks.main, [students.runs[("B2", s)] for s in seeds]),
                          (banks.ablation, [students.ablation[(banks.ablation["grid"], s)] for s in seeds])):
        preds = [student_predictions(r, data.test, data, cfg, run) for r in results]
        res = _seed_mean_with_ci(preds[0].labels.numpy(), [p.outputs.numpy() for p in preds],
                                 _eight_way, cfg.bootstrap_resamples)
        rows.append({"bank": f"{bank['grid']}x{bank['grid']}", "empty bins": int((bank["coverage"] == 0).sum()),
                     "bins": int(bank["coverage"].size),
                     "val macro-F1 (%) best epoch": 100 * float(np.mean([r.best_value for r in results])),
                     "test Acc (%)": _fmt(res["accuracy"]), "test Macro-F1 (%)": _fmt(res["macro_f1"]),
                     "seeds": len(seeds)})
    return pd.DataFrame(rows).set_index("bank")


def feature_geometry_table(students: StudentRuns, faces: FaceSet, data: FaceData, cfg: ChapterConfig,
                           run: RunConfig) -> pd.DataFrame:
    """The geometry D-Geo targets (Sec. 5.4, Fig. 6), on ``faces``: per variant (mean over seeds) the
    within-class spread (mean squared distance to the class mean of the unit-norm features) of
    the high-valence classes and of the others, and the smallest / mean distance between class means."""
    positives = [FERPLUS_CLASSES.index(c) for c in cfg.positive_classes]
    rows = []
    for variant in students.variants:
        values: dict[str, list[float]] = {}
        for seed in students.seeds_of(variant):
            pred = student_predictions(students.runs[(variant, seed)], faces, data, cfg, run)
            f, y = pred.features.numpy().astype(np.float64), pred.labels.numpy()
            classes = [c for c in np.unique(y) if (y == c).sum() >= 2]
            means = {c: f[y == c].mean(0) for c in classes}
            spread = {c: float(((f[y == c] - means[c]) ** 2).sum(1).mean()) for c in classes}
            dists = [np.linalg.norm(means[a] - means[b]) for i, a in enumerate(classes) for b in classes[i + 1:]]
            values.setdefault("high-valence spread", []).append(np.mean([spread[c] for c in classes if c in positives]))
            values.setdefault("other-class spread", []).append(np.mean([spread[c] for c in classes if c not in positives]))
            values.setdefault("min class-mean distance", []).append(float(np.min(dists)))
            values.setdefault("mean class-mean distance", []).append(float(np.mean(dists)))
        rows.append({"variant": VARIANT_LABELS[variant], **{k: float(np.mean(v)) for k, v in values.items()}})
    return pd.DataFrame(rows).set_index("variant")



def paired_variant_difference(students: StudentRuns, a: str, b: str, faces: FaceSet, data: FaceData,
                              cfg: ChapterConfig, run: RunConfig, key: str = "macro_f1") -> stats.Estimate:
    """``metric(a) - metric(b)`` on the same ``faces`` (8-way, fraction; each variant's metric is
    the mean over the seeds it was trained at) with a paired 95% stratified-bootstrap CI
    (:func:`affectlab.stats.paired_difference`, App. A.1): both variants are scored on the same
    resampled images each time. The CI covers test sampling; the seed spread is shown beside it
    (:func:`seed_spread_table`)."""
    if key not in METRIC_NAMES:
        raise ValueError(f"parameter key must be one of {tuple(METRIC_NAMES)}; got {key!r}")
    true_a, scores_a = _collect(students, a, faces, data, cfg, run)
    _, scores_b = _collect(students, b, faces, data, cfg, run)
    k = scores_a[0].shape[1]
    width = max(len(scores_a), len(scores_b))

    def seed_mean(t: np.ndarray, flat: np.ndarray) -> float:
        n_seeds = int(np.isfinite(flat[0]).sum()) // k  # padded columns (a variant with fewer seeds) are NaN
        return float(np.mean([_eight_way(t, flat[:, s * k:(s + 1) * k], key) for s in range(n_seeds)]))

    def flat(scores: Sequence[np.ndarray]) -> np.ndarray:
        padded = list(scores) + [np.full_like(scores[0], np.nan)] * (width - len(scores))
        return np.stack(padded).transpose(1, 0, 2).reshape(len(true_a), -1)

    return stats.paired_difference(seed_mean, true_a, flat(scores_a), flat(scores_b),
                                   n_resamples=cfg.bootstrap_resamples, seed=0)


def seed_spread_table(students: StudentRuns, faces: FaceSet, data: FaceData, cfg: ChapterConfig,
                      run: RunConfig) -> pd.DataFrame:
    """The run-to-run spread the bootstrap CIs do not cover: 8-way accuracy and macro-F1 (%) of
    every variant at each seed it was trained at on ``faces``, with the range over seeds."""
    rows = []
    for variant in students.variants:
        true, scores = _collect(students, variant, faces, data, cfg, run)
        for key in ("accuracy", "macro_f1"):
            values = [100 * _eight_way(true, s, key) for s in scores]
            rows.append({"variant": VARIANT_LABELS[variant], "metric": METRIC_NAMES[key],
                         "seeds": ", ".join(map(str, students.seeds_of(variant))),
                         "per seed (%)": ", ".join(f"{v:.2f}" for v in values),
                         "range (points)": float(max(values) - min(values)) if len(values) > 1 else float("nan")})
    return pd.DataFrame(rows).set_index(["variant", "metric"])
