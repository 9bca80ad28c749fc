"""Chapter 01 artefacts (Sec. 7, Table 1): prototype banks, best checkpoints, metrics JSON per dataset,
tables as CSV and the ablation fingerprint, listed with SHA-256 digests in ``SHA256SUMS.txt``.

Chapter 02 reads ``ablation_fingerprint.json`` ("runs": the main-table students' config hashes) from
the ``ch01-artifacts-*`` folder; keep that layout.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from affectlab.config import RunConfig
from affectlab.prototypes import file_sha256
from affectlab.reporting import write_text_atomic

from .config import ChapterConfig, artifact_dir, run_key
from .experiments import PrototypeBanks, StudentRuns

__all__ = ["write_artifacts"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_artifacts(banks: PrototypeBanks, students: StudentRuns, metrics_by_dataset: Mapping[str, Any],
                    cfg: ChapterConfig, run: RunConfig,
                    tables: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Paper Sec. 7 / Table 1: the prototype banks, the best checkpoint of every trained network
    (variants x seeds, every D-Geo candidate, the grid-ablation and run-to-run B0 runs, a separate
    vision teacher), one metrics JSON per dataset, ``tables`` as CSV (e.g. the D-Geo selection and
    the grid ablation) and an ablation fingerprint JSON, listed with SHA-256 digests in
    ``SHA256SUMS.txt`` (paths relative to it; check with ``sha256sum -c SHA256SUMS.txt``)."""
    out = artifact_dir(cfg, run)
    files: list[tuple[str, Path]] = [("prototype bank 5x5" if b["grid"] == cfg.grid else f"prototype bank {b['grid']}x{b['grid']}", b["path"])
                                     for b in (banks.main, banks.ablation)]
    for name, payload in metrics_by_dataset.items():
        path = out / f"metrics_{name}.json"
        write_text_atomic(path, json.dumps(_jsonable(payload), indent=2, sort_keys=True) + "\n")
        files.append((f"metrics {name}", path))
    fingerprint = {
        "config": dataclasses.asdict(cfg), "run": run_key(run), "seed": run.seed,
        "dgeo_chosen": dataclasses.asdict(students.dgeo), "bank_sha256": banks.main["sha256"],
        "runs": {f"{v}-s{s}": r.config_hash for (v, s), r in students.runs.items()},
        "vision_teacher": students.vision_teacher.config_hash,
        "warm_start": None if students.warm_start is None else students.warm_start.config_hash,
    }
    fp_path = out / "ablation_fingerprint.json"
    write_text_atomic(fp_path, json.dumps(_jsonable(fingerprint), indent=2, sort_keys=True) + "\n")
    files.append(("ablation fingerprint", fp_path))
    for name, table in (tables or {}).items():
        path = out / f"table_{name}.csv"
        write_text_atomic(path, table.to_csv())
        files.append((f"table {name}", path))
    checkpoints: dict[Path, str] = {}
    for (variant, seed), result in students.runs.items():
        checkpoints.setdefault(result.best_path, f"student {variant} seed {seed} (best)")
    for label, result in students.dgeo_runs.items():
        checkpoints.setdefault(result.best_path, f"student B3 D-Geo candidate {label} (best)")
    for (grid, seed), result in students.ablation.items():
        checkpoints.setdefault(result.best_path, f"student B2 {grid}x{grid} bank seed {seed} (best)")
    for seed, result in students.noise.items():
        checkpoints.setdefault(result.best_path, f"student B0 seed {seed}, run-to-run spread (best)")
    checkpoints.setdefault(students.vision_teacher.best_path, "vision KD teacher (best)")
    if students.warm_start is not None:
        checkpoints.setdefault(students.warm_start.best_path, "shared CE warm start of every student (best)")
    files.extend((label, path) for path, label in checkpoints.items() if path is not None)
    rows, lines = [], []
    for label, path in files:
        digest = file_sha256(path)
        rel = os.path.relpath(path, out)
        rows.append({"artifact": label, "file": rel, "bytes": path.stat().st_size, "SHA-256": digest})
        lines.append(f"{digest}  {rel}")
    write_text_atomic(out / "SHA256SUMS.txt", "\n".join(lines) + "\n")
    return pd.DataFrame(rows)

