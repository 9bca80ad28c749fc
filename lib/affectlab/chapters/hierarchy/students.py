"""Beyond paper 001: chapter 01's NeuroGaze-Distill students probed like the chapter's networks.
The students are read from the runs folder (the run directories :func:`affectlab.train.fit` wrote
for chapter 01): :func:`find_student_runs`, :func:`latest_student_per_variant`, :func:`load_student`;
:func:`probe_students` profiles their layers on one probing set and :func:`student_va_comparison`
asks whether Proto-KD makes valence/arousal readable earlier or more clearly than cross-entropy
alone (B0)."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from affectlab import stats
from affectlab.config import RunConfig, default_runs_dir
from affectlab.data.taxonomy import FERPLUS_CLASSES

from .config import NEUROGAZE_CHAPTER, STUDENT_MIN_ACCURACY, STUDENT_PROBE_LAYERS, STUDENT_ROLES, ChapterConfig
from .data import ProbeSet
from .layers import (
    LayerCodes,
    half_max_depth,
    layer_codes,
    layer_profile,
    role_layer,
    va_predictions_per_layer,
    va_r2_metric,
)
from .networks import ProbedNetwork


def student_va_comparison(codes: Mapping[str, LayerCodes], probe: ProbeSet, roles: Mapping[str, Mapping[str, str]],
                          cfg: ChapterConfig, seed: int = 0, reference: str = "B0") -> pd.DataFrame:
    """Does Proto-KD (chapter 01) make valence/arousal emerge earlier or more clearly?
    For each student (``codes`` by variant, all on the same probing faces), the cross-validated V/A
    R^2 of its penultimate layer and the relative depth at which V/A R^2 first reaches half its
    maximum (:func:`half_max_depth`), each minus ``reference`` (B0, cross-entropy only), with paired
    95 % CIs from resampling subjects (:func:`affectlab.stats.paired_difference` with ``clusters``;
    the same seed gives every comparison the same resamples). "clearer" = penultimate R^2
    difference CI above 0, "earlier" = depth difference CI below 0, else "no" (the other direction)
    or "undecided" (:func:`affectlab.stats.verdict_from_ci`)."""
    if reference not in codes:
        raise KeyError(f"student_va_comparison needs the reference student {reference!r}; got {list(codes)}")
    every_face = np.arange(len(probe.faces))
    r2_of = va_r2_metric(probe)
    per_layer, penultimate = {}, {}
    for name, c in codes.items():
        preds = va_predictions_per_layer(c, probe, cfg)
        missing = np.full((len(every_face), 2), np.nan)
        per_layer[name] = np.stack([missing if p is None else p for p in preds.values()], 1)  # (N, layers, 2)
        penultimate[name] = per_layer[name][:, list(c.layers).index(role_layer(roles, name, "penultimate"))]

    def depth_of(rows: np.ndarray, stacked: np.ndarray) -> float:
        return half_max_depth(np.array([r2_of(rows, stacked[:, j]) for j in range(stacked.shape[1])]))

    paired = dict(n_resamples=cfg.bootstrap_resamples, seed=seed, clusters=probe.faces.identity.numpy())
    clearer = {"greater": "yes", "less": "no", "undecided": "undecided"}
    earlier = {"less": "yes", "greater": "no", "undecided": "undecided"}
    rows = []
    for name in codes:
        row: dict[str, Any] = {"student": name, "penultimate V/A R2": r2_of(every_face, penultimate[name]),
                               "half-max depth": depth_of(every_face, per_layer[name])}
        if name != reference:
            d_r2 = stats.paired_difference(r2_of, every_face, penultimate[name], penultimate[reference], **paired)
            d_depth = stats.paired_difference(depth_of, every_face, per_layer[name], per_layer[reference], **paired)
            row.update({f"R2 minus {reference}": d_r2.value, "R2 diff low": d_r2.low, "R2 diff high": d_r2.high,
                        f"depth minus {reference}": d_depth.value, "depth diff low": d_depth.low,
                        "depth diff high": d_depth.high,
                        "V/A clearer": clearer[stats.verdict_from_ci(d_r2.low, d_r2.high)],
                        "V/A earlier": earlier[stats.verdict_from_ci(d_depth.low, d_depth.high)]})
        rows.append(row)
    return pd.DataFrame(rows).set_index("student")


def _history_epochs(path: Path) -> int:
    if not path.is_file():
        return 0
    with open(path, newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def find_student_runs(runs_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Finished NeuroGaze-Distill student runs under ``runs_dir`` (default ``$AFFECTLAB_RUNS``).

    A run directory written by :func:`affectlab.train.fit` counts when its ``config.json`` key says
    chapter ``01_neurogaze_distill`` and role ``student``, its ``history.csv`` has every epoch and
    ``best.pt`` exists. Columns: variant, seed, arch, grid (prototype bank size, None without
    Proto-KD), input side, mean, std, epochs, run_dir, best_path, modified (newest first), and
    ``in ch01 table``: the run is one of the main-table students that a chapter 01 run listed in its
    artifacts (``ch01-artifacts-*/ablation_fingerprint.json``, "runs").
    """
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    listed: set[str] = set()
    for fingerprint in root.glob("ch01-artifacts-*/ablation_fingerprint.json"):
        try:
            listed.update(str(h) for h in (json.loads(fingerprint.read_text()).get("runs") or {}).values())
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
    rows = []
    for config_path in sorted(root.glob("*/config.json")):
        try:
            config = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        key = config.get("key") or {}
        if key.get("chapter") != NEUROGAZE_CHAPTER or key.get("role") != "student":
            continue
        run_dir = config_path.parent
        best = run_dir / "best.pt"
        epochs = int(config.get("train", {}).get("epochs", 0))
        if not best.is_file() or epochs < 1 or _history_epochs(run_dir / "history.csv") < epochs:
            continue
        data = config.get("train_data") or {}
        resize, shape = data.get("resize"), (data.get("x") or {}).get("shape") or [0, 1, 0, 0]
        rows.append({
            "variant": key.get("variant"), "seed": key.get("init_seed"), "arch": key.get("arch", "resnet18"),
            "grid": (key.get("proto") or {}).get("grid"), "faces": key.get("faces"),
            "input side": int(resize[0]) if resize else int(shape[-1]),
            "mean": float((data.get("mean") or [0.0])[0]), "std": float((data.get("std") or [1.0])[0]),
            "epochs": epochs, "run_dir": str(run_dir), "best_path": str(best), "modified": best.stat().st_mtime,
            "in ch01 table": config.get("config_hash") in listed,
        })
    columns = ["variant", "seed", "arch", "grid", "faces", "input side", "mean", "std", "epochs", "run_dir",
               "best_path", "modified", "in ch01 table"]
    return pd.DataFrame(rows, columns=columns).sort_values("modified", ascending=False, ignore_index=True)


def latest_student_per_variant(runs: pd.DataFrame) -> pd.DataFrame:
    """The newest finished run of each variant of chapter 01's main comparison, variants in its order.

    Chapter 01 also trains students outside that comparison (the known-ground-truth probe trains
    B0 / B2 on generated faces, a second B0 seed measures run-to-run spread, two B3 D-Geo candidates
    compete, a 7x7 bank is an ablation). When chapter 01's artifacts list its main-table runs
    (``in ch01 table``), only those are kept. Otherwise (runs from before the artifacts existed)
    the runs that share the training faces and the seed most variants share and the most common
    grid are kept.
    """
    if runs.empty:
        return runs
    if "in ch01 table" in runs and runs["in ch01 table"].any():
        runs = runs[runs["in ch01 table"]]
    for column in ("faces", "seed"):
        shared = runs.groupby(column, dropna=False)["variant"].nunique()
        if len(shared) > 1:
            best = shared.idxmax()
            runs = runs[runs[column].isna()] if pd.isna(best) else runs[runs[column] == best]
    grids = runs["grid"].dropna()
    main_grid = grids.mode().iloc[0] if len(grids) else None
    keep = runs[runs["grid"].isna() | (runs["grid"] == main_grid)]
    order = {v: i for i, v in enumerate(("B0", "B1", "B2", "B3", "Full"))}
    latest = keep.sort_values("modified", ascending=False).drop_duplicates("variant")
    return latest.sort_values("variant", key=lambda v: v.map(lambda x: order.get(x, 99)), ignore_index=True)


def load_student(row: Mapping[str, Any], device: torch.device | str = "cpu") -> ProbedNetwork:
    """A NeuroGaze-Distill student (a row of :func:`find_student_runs`) with its best weights,
    wrapped for probing: ResNet stages, the 256-D projection (penultimate) and the 8-way head; the
    input is prepared as its training data was (pixels / 255, resize, normalisation)."""
    from affectlab.models.resnet_student import FERStudent
    from affectlab.train import load_checkpoint

    model = FERStudent(arch=row["arch"], n_classes=len(FERPLUS_CLASSES), proj_dim=256, in_channels=1)
    model.load_state_dict(load_checkpoint(row["best_path"])["model"])
    model.to(device).eval()
    side, mean, std = int(row["input side"]), float(row["mean"]), float(row["std"])
    if std <= 0:
        raise ValueError(f"{row['run_dir']}: training std must be > 0; got {std}")

    def prepare(images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        if x.shape[-1] != side:
            x = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False,
                                                antialias=side < x.shape[-1])
        return (x - mean) / std

    name = f"{row['variant']} (seed {row['seed']})"
    return ProbedNetwork(name=name, model=model, class_names=FERPLUS_CLASSES, layers=STUDENT_PROBE_LAYERS,
                         roles=dict(STUDENT_ROLES), gradcam_layers=("backbone.layer1", "backbone.layer3"),
                         prepare=prepare, trained=True,
                         description=f"NeuroGaze-Distill student {name}, {row['arch']}, run {Path(row['run_dir']).name}")




def student_test_accuracies(results_path: str | os.PathLike | None = None) -> dict[str, float]:
    """Chapter 01's recorded FERPlus test accuracy (%) of each student variant (``b0.test.accuracy``
    ... in ``01_neurogaze_distill.results.json``; default: the results folder of this run,
    :func:`affectlab.reporting.results_dir`), keyed by variant as the runs name it ("B0", "Full");
    empty when the file is absent or unreadable."""
    from affectlab.reporting import read_results, results_dir

    path = Path(results_path) if results_path is not None else results_dir() / f"{NEUROGAZE_CHAPTER}.results.json"
    try:
        numbers = read_results(path)["numbers"]
    except (OSError, ValueError, KeyError):
        return {}
    names = {"b0": "B0", "b1": "B1", "b2": "B2", "b3": "B3", "full": "Full", "full_t1": "Full"}
    out = {}
    for key, entry in numbers.items():
        variant, _, rest = key.partition(".")
        if rest == "test.accuracy" and variant in names and entry.get("value") is not None:
            out.setdefault(names[variant], float(entry["value"]))
    return out


def learned_students(runs: pd.DataFrame, accuracies: Mapping[str, float],
                     minimum: float = STUDENT_MIN_ACCURACY) -> pd.DataFrame:
    """``runs`` with a "test accuracy (%)" column (from ``accuracies``, NaN when unknown) and
    "counts as trained": True when the accuracy reaches ``minimum``, False below it, and None when
    chapter 01 recorded none (the student is probed but not counted)."""
    out = runs.copy()
    acc = [accuracies.get(v, float("nan")) for v in out["variant"]] if len(out) else []
    out["test accuracy (%)"] = acc
    out["counts as trained"] = [None if not np.isfinite(a) else bool(a >= minimum) for a in acc]
    return out


@dataclasses.dataclass
class StudentStudy:
    """Chapter 01's students probed on one set: the runs used (``runs``, empty when none were
    found), the wrapped networks, their layer codes, roles and :func:`layer_profile` tables, and the
    comparison with B0 (:func:`student_va_comparison`; None without B0 or without a second student)."""

    probe: str
    runs: pd.DataFrame
    networks: dict[str, ProbedNetwork]
    codes: dict[str, LayerCodes]
    roles: dict[str, dict[str, str]]
    profiles: dict[str, pd.DataFrame]
    comparison: pd.DataFrame | None


def probe_students(probe: ProbeSet, cfg: ChapterConfig, run: RunConfig,
                   runs_dir: str | os.PathLike | None = None) -> StudentStudy:
    """The newest finished student of each variant of chapter 01's main comparison
    (:func:`latest_student_per_variant` of :func:`find_student_runs` under ``runs_dir``, default
    ``$AFFECTLAB_RUNS``), probed on ``probe`` exactly like the chapter's networks; ``runs`` says
    which reached :data:`~.config.STUDENT_MIN_ACCURACY` on FERPlus test in chapter 01
    (:func:`learned_students`)."""
    runs = learned_students(latest_student_per_variant(find_student_runs(runs_dir)), student_test_accuracies())
    students = {row["variant"]: load_student(row, run.device) for _, row in runs.iterrows()}
    codes = {v: layer_codes(net, probe, cfg) for v, net in students.items()}
    roles = {v: dict(net.roles) for v, net in students.items()}
    profiles = {v: layer_profile(codes[v], probe, roles[v], cfg, seed=run.seed) for v in students}
    comparison = (student_va_comparison(codes, probe, roles, cfg, seed=run.seed)
                  if "B0" in students and len(students) > 1 else None)
    return StudentStudy(probe=probe.key, runs=runs, networks=students, codes=codes, roles=roles, profiles=profiles,
                        comparison=comparison)
