"""Chapter 01 known-ground-truth probe (the chapter's own check of Sec. 4.3's claim that Proto-KD
organises student features along V/A): B1 and B2 trained on the embedded generated faces, whose V/A
is planted per image, and a ridge probe of V/A from their 256-D features with paired bootstrap CIs.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from affectlab import stats
from affectlab.config import RunConfig

from .config import VARIANT_LABELS, ChapterConfig
from .data import FaceData, prepare_faces
from .experiments import PrototypeBanks, StudentRuns, student_predictions, train_students
from .tables import bootstrap_rows, grid_ablation_table

__all__ = ["ProbeResult", "probe_verdict", "known_ground_truth_probe", "continuous_grid_ablation"]


def _ridge_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    """Test predictions of a ridge probe (standardised features; alpha by efficient leave-one-out
    CV on the training rows over 1e-2 ... 1e4) fit on ``train_x`` -> ``train_y``."""
    from sklearn.linear_model import RidgeCV
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    probe = RidgeCV(alphas=np.logspace(-2, 4, 13)).fit(scaler.transform(train_x), train_y)
    return probe.predict(scaler.transform(test_x))


def _r2(true: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (NaN for a constant target)."""
    denom = float(((true - true.mean()) ** 2).sum())
    return float("nan") if denom == 0 else 1.0 - float(((true - pred) ** 2).sum()) / denom


@dataclasses.dataclass
class ProbeResult:
    """The known-ground-truth probe: ``table`` (R^2 per variant, target and axis with 95% CIs),
    ``delta`` (paired R^2(B2) - R^2(B1) per target and axis, plus the V/A mean, with 95% CIs over
    the same resampled test identities), ``verdict`` (a sentence computed from the V/A-mean row),
    ``organises`` (True / False / None = no detectable difference), and the trained runs and data."""

    table: pd.DataFrame
    delta: pd.DataFrame
    verdict: str
    organises: bool | None
    students: StudentRuns
    faces: FaceData


def probe_verdict(delta: float, low: float, high: float) -> tuple[bool | None, str]:
    """The probe's conclusion from the paired ``R^2(B2) - R^2(B1)`` (Proto-KD alone) and its 95% CI: True
    ("organises") when the CI lies above 0, False when below, None (no detectable difference)
    when it contains 0; with the sentence to print."""
    organises = {"greater": True, "less": False, "undecided": None}[stats.verdict_from_ci(low, high)]
    summary = f"delta R^2 = {delta:+.3f} [{low:+.3f}, {high:+.3f}]"
    verdict = {True: f"Proto-KD (B2) organises the features along V/A more than CE + KD alone (B1): {summary}.",
               False: f"Proto-KD (B2) leaves the features *less* linearly related to V/A than CE + KD alone (B1): {summary}.",
               None: f"No detectable difference between B2 and B1 in how linearly the features encode V/A: {summary} "
                     "(the 95% CI contains 0)."}[organises]
    return organises, verdict


def probe_config(cfg: ChapterConfig) -> ChapterConfig:
    """The generated-face students' settings: the paper-style per-variant schedule (``probe_epochs``
    epochs, no shared warm start, no noise seeds), the generated-face B0 as KD teacher (the shared
    FERPlus teacher has never seen generated faces), one seed in the fast recipe."""
    fast = cfg.recipe == "fast"
    return dataclasses.replace(
        cfg, epochs=cfg.probe_epochs, batch_size=min(cfg.batch_size, 64), noise_seeds=0, recipe="paper",
        warm_start_budget_s=None, multi_seed_variants=None, grid_ablation=False, warmup_fraction=0.0,
        vision_teacher="b0" if cfg.vision_teacher == "fer_teacher" else cfg.vision_teacher,
        n_seeds=1 if fast else cfg.n_seeds, steps_per_epoch=None if fast else cfg.steps_per_epoch,
        lr=1e-3 if fast else cfg.lr)


def continuous_grid_ablation(banks: PrototypeBanks, cfg: ChapterConfig, run: RunConfig) -> pd.DataFrame:
    """Sec. 5.3 "grid size" where it can mean something (issue 14, item 6): B2 with the
    ``cfg.grid`` bank against B2 with the ``cfg.ablation_grid`` bank, both built from ``banks`` (use
    the generated-EEG teacher's banks, whose validation trials carry *continuous* planted V/A, so
    a finer grid really leaves more cells empty), trained and scored on the generated faces with
    the probe's settings (:func:`probe_config`; B0, B1 and the main-grid B2 are the probe's own runs,
    loaded). On the real FERPlus targets V/A takes ~9 distinct points, one per category, so both
    grids have the same occupied cells and the ablation cannot show sparsity there.

    Returns :func:`grid_ablation_table`'s rows (empty bins, best validation macro-F1, test accuracy
    and macro-F1 with 95% CIs) and ``"occupied bins"``."""
    data = prepare_faces(run, cfg, generated=True)
    probe_cfg = dataclasses.replace(probe_config(cfg), grid_ablation=True)
    students = train_students(data, banks, probe_cfg, run, variants=("B0", "B1", "B2"), prefix="ch01-probe",
                              select_dgeo=False, grid_ablation=True)
    table = grid_ablation_table(students, banks, data, probe_cfg, run)
    table["occupied bins"] = table["bins"] - table["empty bins"]
    return table


def known_ground_truth_probe(banks: PrototypeBanks, cfg: ChapterConfig, run: RunConfig) -> ProbeResult:
    """Item 8 of the chapter: on the embedded generated faces (valence/arousal planted per image:
    the category's circumplex point scaled by the expression intensity), train B1 and B2 (same
    frozen bank, the generated-face B0 as KD teacher, so the pair differs by Proto-KD alone) and probe V/A linearly from the 256-D
    features: a ridge probe fit on the validation faces, R^2 on the test faces (mean over seeds)
    with a 95% bootstrap CI over test faces. "within-class" probes the V/A left after subtracting
    each class's mean V/A (what the category alone cannot explain).

    The verdict uses the paired difference ``R^2(B2) - R^2(B1)`` averaged over valence and arousal,
    bootstrapped over the *same* resampled test faces for both variants, whole identities at a time
    (faces of one identity are not independent; faces when the set has no identities): "organises"
    when its 95% CI lies above 0, "disorganises" below 0, otherwise no detectable difference.

    The probe students use :func:`probe_config`."""
    data = prepare_faces(run, cfg, generated=True)
    for split in ("val", "test"):
        faces = getattr(data, split)
        if faces.valence is None or faces.arousal is None:
            raise ValueError(f"generated faces ({split}) carry no valence/arousal; the probe needs them")
    probe_cfg = probe_config(cfg)
    students = train_students(data, banks, probe_cfg, run, variants=("B0", "B1", "B2"), prefix="ch01-probe",
                              select_dgeo=False, grid_ablation=False)
    identity = data.test.identity
    clusters = None if identity is None else np.unique(identity.numpy(), return_inverse=True)[1]
    va = {s: torch.stack([getattr(data, s).valence, getattr(data, s).arousal], 1).numpy() for s in ("val", "test")}
    labels = {s: getattr(data, s).labels.numpy() for s in ("val", "test")}
    class_mean = {c: va["val"][labels["val"] == c].mean(0) for c in np.unique(labels["val"])}
    residual = {s: va[s] - np.stack([class_mean.get(c, np.zeros(2)) for c in labels[s]]) for s in ("val", "test")}
    features = {(v, s): {split: student_predictions(students.runs[(v, s)], getattr(data, split), data, probe_cfg,
                                                    run).features.numpy() for split in ("val", "test")}
                for v in ("B1", "B2") for s in students.seeds}
    rows, deltas = [], []
    preds: dict[tuple[str, str, int], list[np.ndarray]] = {}
    n_test = len(labels["test"])
    for target_name, targets in (("V/A", va), ("within-class V/A", residual)):
        for axis, axis_name in enumerate(("valence", "arousal")):
            for variant in ("B1", "B2"):
                preds[(variant, target_name, axis)] = [
                    _ridge_probe(features[(variant, seed)]["val"], targets["val"][:, axis],
                                 features[(variant, seed)]["test"]) for seed in students.seeds]
    truth = {(t, a): (va if t == "V/A" else residual)["test"][:, a] for t in ("V/A", "within-class V/A") for a in (0, 1)}

    def r2(variant: str, target: str, axes: Sequence[int], idx: np.ndarray) -> float:
        return float(np.mean([np.mean([_r2(truth[(target, a)][idx], p[idx]) for p in preds[(variant, target, a)]])
                              for a in axes]))

    for target_name in ("V/A", "within-class V/A"):
        for axes, axis_name in (((0,), "valence"), ((1,), "arousal"), ((0, 1), "V/A mean")):
            for variant in ("B1", "B2"):
                if len(axes) == 1:
                    point, low, high = bootstrap_rows(lambda idx: r2(variant, target_name, axes, idx), n_test,
                                                       cfg.bootstrap_resamples, seed=0, clusters=clusters)
                    rows.append({"variant": VARIANT_LABELS[variant], "target": f"{target_name}: {axis_name}",
                                 "R2": point, "low": low, "high": high,
                                 "R2 per seed": ", ".join(f"{_r2(truth[(target_name, axes[0])], p):.3f}"
                                                          for p in preds[(variant, target_name, axes[0])])})
            point, low, high = bootstrap_rows(
                lambda idx: r2("B2", target_name, axes, idx) - r2("B1", target_name, axes, idx), n_test,
                cfg.bootstrap_resamples, seed=0, clusters=clusters)
            deltas.append({"target": f"{target_name}: {axis_name}", "R2 B1": r2("B1", target_name, axes, np.arange(n_test)),
                           "R2 B2": r2("B2", target_name, axes, np.arange(n_test)), "delta R2 (B2 - B1)": point,
                           "low": low, "high": high,
                           "CI resamples": "identities" if clusters is not None else "faces (no identities)"})
    delta = pd.DataFrame(deltas)
    main = delta.set_index("target").loc["V/A: V/A mean"]
    organises, verdict = probe_verdict(main["delta R2 (B2 - B1)"], main["low"], main["high"])
    return ProbeResult(table=pd.DataFrame(rows), delta=delta, verdict=verdict, organises=organises,
                       students=students, faces=data)

