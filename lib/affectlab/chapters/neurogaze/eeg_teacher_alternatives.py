"""Chapter 01, what helps the EEG teacher across subjects (issue 14, item 4; paper Sec. 3.1/4.1).

The paper's teacher (per-subject normalised band-power topomaps, one network pooled over its EEG
datasets) is :func:`~.experiments.train_eeg_teacher`. Here two alternatives are trained on the
*same* training subjects, their checkpoints chosen on the *same* validation subjects, and scored on
the *same* test trials, so each is compared with the paper-style teacher as a paired difference
whose interval resamples whole test subjects:

- **log band-ratio maps**: the maps of the log power ratio of each pair of adjacent bands (e.g.
  theta/alpha, alpha/beta; the feature files hold log powers, so a ratio is a difference) are added
  as input channels, normalised per subject like the bands;
- **one teacher per dataset**: a separate network for each EEG dataset (its own trunk and head,
  the limit of per-dataset heads), trained and selected on that dataset's subjects only; skipped
  when the run has a single dataset (e.g. the embedded generated set).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
import pandas as pd
import torch

from affectlab import metrics
from affectlab.config import RunConfig
from affectlab.data.sets import EEGSet

from .config import ChapterConfig
from .data import TeacherData, prepare_teacher_data
from .experiments import TeacherRun, fit_eeg_teacher_run, predict_va_in_order
from .tables import bootstrap_rows

__all__ = ["with_band_ratios", "teacher_alternatives"]

RATIOS = "+ log band-ratio maps (adjacent bands)"
PER_DATASET = "one teacher per dataset"


def with_band_ratios(eeg: EEGSet) -> EEGSet:
    """``eeg`` (band power, log values, (trials, bands, channels)) with one more "band" per pair
    of adjacent bands: ``log P_a - log P_b`` (the log of their power ratio), named ``"a/b"``."""
    if eeg.kind != "band_power" or eeg.bands is None or eeg.data.ndim != 3:
        raise ValueError(f"{eeg.name}: band ratios need band-power features (trials, bands, channels) with band names")
    if len(eeg.bands) < 2:
        raise ValueError(f"{eeg.name}: band ratios need at least two bands, got {eeg.bands}")
    ratios = np.stack([eeg.data[:, i] - eeg.data[:, i + 1] for i in range(len(eeg.bands) - 1)], axis=1)
    names = tuple(f"{a}/{b}" for a, b in zip(eeg.bands[:-1], eeg.bands[1:]))
    return dataclasses.replace(eeg, data=np.concatenate([eeg.data, ratios], axis=1).astype(eeg.data.dtype),
                               bands=tuple(eeg.bands) + names)


def _ratio_teacher_test_pred(eeg_sets: Mapping[str, tuple[EEGSet, str]], teacher: TeacherRun, data: TeacherData,
                             cfg: ChapterConfig, run: RunConfig) -> np.ndarray:
    ratio_data = prepare_teacher_data({k: (with_band_ratios(e), note) for k, (e, note) in eeg_sets.items()}, cfg)
    if not np.array_equal(ratio_data.groups, data.groups):
        raise ValueError("band-ratio teacher data: trials are not in the order of the paper-style teacher's data")
    maps, va = torch.from_numpy(ratio_data.maps), torch.from_numpy(ratio_data.va)
    fit = fit_eeg_teacher_run(maps, va, teacher.train_idx, teacher.val_idx, ratio_data, cfg, run,
                           "eeg_teacher_band_ratios")
    return predict_va_in_order(fit.model, maps, ratio_data.va, teacher.test_idx, run)[0]


def _per_dataset_test_pred(teacher: TeacherRun, data: TeacherData, cfg: ChapterConfig,
                           run: RunConfig) -> np.ndarray:
    maps, va = torch.from_numpy(data.maps), torch.from_numpy(data.va)
    test_dataset = data.dataset[teacher.test_idx]
    pred = np.full((len(teacher.test_idx), 2), np.nan, dtype=np.float32)
    for name in dict.fromkeys(test_dataset.tolist()):
        train_idx = teacher.train_idx[data.dataset[teacher.train_idx] == name]
        val_idx = teacher.val_idx[data.dataset[teacher.val_idx] == name]
        if len(train_idx) == 0 or len(val_idx) == 0:
            raise ValueError(f"{name}: no training or validation subjects for a per-dataset teacher")
        fit = fit_eeg_teacher_run(maps, va, train_idx, val_idx, data, cfg, run, f"eeg_teacher_only_{name}")
        sel = test_dataset == name
        pred[sel] = predict_va_in_order(fit.model, maps, data.va, teacher.test_idx[sel], run)[0]
    return pred


def teacher_alternatives(eeg_sets: Mapping[str, tuple[EEGSet, str]], teacher: TeacherRun, data: TeacherData,
                         cfg: ChapterConfig, run: RunConfig) -> pd.DataFrame:
    """Train (or load) the alternatives of the module docstring and score them on the paper-style
    teacher's test trials. One row per alternative and axis: its CCC, the paper-style teacher's
    CCC on the same trials, and the paired difference (alternative - paper-style) with a 95%
    bootstrap CI over whole test subjects (``cfg.bootstrap_resamples``); "helps" when the CI lies
    above 0. ``eeg_sets`` are what ``data`` was prepared from (:func:`~.data.load_teacher_eeg`)."""
    if teacher.test_pred is None or teacher.test_va is None:
        raise ValueError("teacher_alternatives: the TeacherRun has no test-subject predictions")
    alternatives = {RATIOS: _ratio_teacher_test_pred(eeg_sets, teacher, data, cfg, run)}
    if len(set(data.dataset.tolist())) > 1:
        alternatives[PER_DATASET] = _per_dataset_test_pred(teacher, data, cfg, run)
    true, base = teacher.test_va, teacher.test_pred
    groups = data.groups[teacher.test_idx]
    clusters = np.unique(groups, return_inverse=True)[1] if len(set(groups.tolist())) >= 2 else None
    rows = []
    for label, pred in alternatives.items():
        for axis, axis_name in enumerate(("valence", "arousal")):
            def ccc_of(p: np.ndarray, idx: np.ndarray, axis: int = axis) -> float:
                return metrics.ccc(true[idx, axis], p[idx, axis])

            n = len(true)
            point, low, high = bootstrap_rows(lambda idx: ccc_of(pred, idx), n, cfg.bootstrap_resamples, seed=0,
                                              clusters=clusters)
            diff, d_low, d_high = bootstrap_rows(lambda idx: ccc_of(pred, idx) - ccc_of(base, idx), n,
                                                 cfg.bootstrap_resamples, seed=0, clusters=clusters)
            rows.append({"alternative": label, "axis": axis_name, "test trials": n,
                         "test subjects": len(set(groups.tolist())), "CCC": point, "CCC 95% CI": f"[{low:.3f}, {high:.3f}]",
                         "paper-style CCC": ccc_of(base, np.arange(n)),
                         "difference": diff, "difference 95% CI": f"[{d_low:+.3f}, {d_high:+.3f}]",
                         "verdict": "helps" if d_low > 0 else "hurts" if d_high < 0 else "no detectable difference",
                         "CI resamples": "subjects" if clusters is not None else "trials (1 subject)"})
    return pd.DataFrame(rows)
