"""Chapter 03's tables (EEG2Face): Table 4.1 beside the thesis (:func:`table_4_1_frame`), the paired
differences to the reference predictors (:func:`comparison_frame`), ``E_e``'s accuracy, the coupling
sweep (:func:`sweep_frame`), what the emotion code does (Fig. 4-2 measured,
:func:`emotion_control_frame`), training status and histories, and the captions that say which
data, seed and intervals each table has.

"Value [lo, hi]" cells come from :func:`affectlab.reporting.ci_cell`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from affectlab.chapters.eeg2face.config import ENCODER_LABELS, METRIC_NAMES, PAPER_TABLE_4_1
from affectlab.chapters.eeg2face.data import ChapterData
from affectlab.chapters.eeg2face.evaluation import (
    ACTIONS_CEILING,
    DRIVE_CEILING,
    EEG_RIDGE,
    MEAN_FACE,
    PER_EMOTION_MEAN_FACE,
    PREDICTED_EMOTION_MEAN_FACE,
)
from affectlab.chapters.eeg2face.experiments import PipelineResult, Table41Result, ranking_frame
from affectlab.chapters.eeg2face.latent import VisionLatent
from affectlab.models.eeg2face import EMOTIONS
from affectlab.reporting import ci_cell, ci_text


def metric_cell(row: Mapping[str, Any], name: str) -> str:
    """``row[name]`` with its interval ``row[name_low]``, ``row[name_high]`` as "4.500 [4.400, 4.600]"
    (:func:`affectlab.reporting.ci_cell`, 3 decimals: mm)."""
    return ci_cell(row[name], row[f"{name}_low"], row[f"{name}_high"], digits=3)


def table_4_1_frame(result: Table41Result, mode: str = "emotion_enhanced") -> pd.DataFrame:
    """The chapter's Table 4.1: ours (mean over test frames and training seeds [95 % CI over test
    trials x background segments x seeds], mm) beside the thesis's numbers, the per-seed means, then
    the reference predictors (mean faces, ridge ceilings, the EEG ridge control). ``mode``:
    "emotion_enhanced" (the full model) or "content_only". See :func:`table_caption`."""
    if mode not in ("emotion_enhanced", "content_only"):
        raise ValueError(f"mode must be 'emotion_enhanced' or 'content_only'; got {mode!r}")
    rows = []
    for _, r in result.errors[result.errors["mode"] == mode].iterrows():
        paper = PAPER_TABLE_4_1[r["encoder"]]
        rows.append({"method": r["method"], **{f"{m} ours, mm [95% CI]": metric_cell(r, m) for m in METRIC_NAMES},
                     **{f"{m} thesis": p for m, p in zip(METRIC_NAMES, paper)},
                     "LVE per seed": ", ".join(f"{v:.3f}" for v in r.get("LVE_per_seed", [])),
                     "encoder parameters": int(r["parameters"]) if "parameters" in r else np.nan})
    for _, r in result.baselines.iterrows():
        rows.append({"method": r["method"], **{f"{m} ours, mm [95% CI]": metric_cell(r, m) for m in METRIC_NAMES},
                     **{f"{m} thesis": np.nan for m in METRIC_NAMES},
                     "LVE per seed": ", ".join(f"{v:.3f}" for v in r.get("LVE_per_seed", [])) if len(
                         r.get("seeds", [])) > 1 else "", "encoder parameters": np.nan})
    frame = pd.DataFrame(rows).set_index("method")
    frame["encoder parameters"] = frame["encoder parameters"].astype("Int64")
    return frame


def table_caption(result: Table41Result | pd.DataFrame, what: str, unit: str = "frames",
                  thesis_columns: bool = False) -> str:
    """A caption naming the data, seeds and background of a table (``result``: a Table 4.1 result or
    a sweep frame), what its numbers average over (``unit``: "frames" or "windows": both are test
    frames with their EEG window) and how its intervals are drawn; ``thesis_columns`` adds where the
    thesis's numbers come from."""
    if unit not in ("frames", "windows"):
        raise ValueError(f"unit must be 'frames' or 'windows'; got {unit!r}")
    if isinstance(result, Table41Result):
        label = result.label
        first = result.errors.iloc[0] if len(result.errors) else {}
        seeds = result.seeds or [0]
        n = (f"{int(first.get('frames', 0))} test {unit} of {int(first.get('trials', 0))} test trials (EEG cut from "
             f"{int(first.get('background_segments', 0))} segments of the background recording) x {len(seeds)} "
             f"training seed(s) {seeds}")
    else:
        label = str(result.attrs.get("label", "EAV-like set"))
        seeds = sorted({s for v in result.get("seeds", pd.Series(dtype=object)) for s in (v or [])})
        n = f"the test {unit} x training seeds {seeds}"
    caption = (f"{what}: {label}; mean over {n}; 95% CI = pigeonhole bootstrap resampling test trials, "
               "background segments and seeds at once (affectlab.stats.crossed_bootstrap_mean).")
    if thesis_columns:
        caption += (" Thesis columns copied from its Table 4.1 (EAV + EMOCA/FLAME; unit printed as mm in the "
                    "table, as x10^-4 mm in its text).")
    return caption


def ranking_table(result: Table41Result, n_bootstrap: int, seed: int = 0, mode: str = "emotion_enhanced") -> pd.DataFrame:
    """Table 4.1's ranking as paired differences (:func:`~affectlab.chapters.eeg2face.experiments.ranking_frame`):
    each baseline's error minus ``E_r``'s on the same test frames and seeds, "value [95 % CI]" mm, and
    the verdict (the thesis: every baseline is worse than ``E_r``)."""
    frame = ranking_frame(result, n_bootstrap, seed, mode)
    words = {"greater": "worse than E_r", "less": "better than E_r", "undecided": "not distinguishable"}
    rows = []
    for _, r in frame.iterrows():
        row: dict[str, Any] = {"encoder": r["method"]}
        for m in METRIC_NAMES:
            row[f"{m}: encoder - E_r (mm)"] = f"{r[f'{m}_diff']:+.3f} [{r[f'{m}_diff_low']:+.3f}, {r[f'{m}_diff_high']:+.3f}]"
            row[f"{m} verdict"] = words[r[f"{m}_verdict"]]
        row["thesis (LVE)"] = "worse than E_r" if PAPER_TABLE_4_1[r["encoder"]][0] > PAPER_TABLE_4_1["eeg2face"][0] else "better"
        rows.append(row)
    return pd.DataFrame(rows).set_index("encoder")


def selection_frame(result: Table41Result) -> pd.DataFrame:
    """``E_r``'s two inputs on the validation trials (LVE / MCE / EVE [95 % CI]) and which was chosen."""
    selection = result.selection
    if "rows" not in selection:
        return pd.DataFrame([{"E_r input": selection.get("chosen", "?"), "chosen": "yes (configured)"}]).set_index("E_r input")
    rows = []
    for name, r in selection["rows"].iterrows():
        rows.append({"E_r input": {"frame": "frame: the frame's own 10 samples (thesis, Sec. 3.0.1)",
                                   "positional": "positional: 1 s window + learned positions"}[name],
                     **{f"{m} validation, mm [95% CI]": metric_cell(r, m) for m in METRIC_NAMES},
                     "chosen": "yes" if name == selection["chosen"] else ""})
    return pd.DataFrame(rows).set_index("E_r input")


def comparison_frame(result: Table41Result, mode: str = "emotion_enhanced") -> pd.DataFrame:
    """Per encoder: its error minus the mean face's, minus the per-emotion mean face's (true label,
    oracle) and minus the per-emotion mean face of ``E_e``'s predicted emotion, per metric, in mm
    with the paired 95 % CI over test trials (negative = the encoder is better)."""
    rows = []
    for _, r in result.errors[result.errors["mode"] == mode].iterrows():
        row: dict[str, Any] = {"method": r["method"]}
        for tag, name in (("vs_mean", "mean face"), ("vs_oracle", "oracle per-emotion mean face"),
                          ("vs_predicted", "E_e-predicted per-emotion mean face")):
            if f"LVE_{tag}" not in r or pd.isna(r[f"LVE_{tag}"]):
                continue
            for m in METRIC_NAMES:
                row[f"{m} - {name} (mm)"] = (f"{r[f'{m}_{tag}']:+.3f} [{r[f'{m}_{tag}_low']:+.3f}, "
                                              f"{r[f'{m}_{tag}_high']:+.3f}]")
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def emotion_accuracy_frame(result: Table41Result) -> pd.DataFrame:
    """``E_e`` accuracy on the test windows and by majority vote per test trial, against chance."""
    e = result.emotion
    rows = [{"unit": "window", "E_e accuracy (%)": 100 * e["accuracy"],
             "95% CI (%)": ci_text(100 * e["accuracy_low"], 100 * e["accuracy_high"], digits=1),
             "chance (%)": 100 * e["chance"], "majority class (%)": 100 * e["majority_rate"], "n": int(e["windows"])}]
    if "trial_accuracy" in e:
        rows.append({"unit": "trial (majority vote of its windows)", "E_e accuracy (%)": 100 * e["trial_accuracy"],
                     "95% CI (%)": ci_text(100 * e["trial_accuracy_low"], 100 * e["trial_accuracy_high"], digits=1),
                     "chance (%)": 100 * e["chance"], "majority class (%)": 100 * e["majority_rate"],
                     "n": int(e["trials"])})
    return pd.DataFrame(rows).set_index("unit")


def training_history(result: PipelineResult) -> pd.DataFrame:
    """The per-epoch objectives of the three fits side by side (epochs of different lengths)."""
    parts = []
    for fit_name, column, label in (("E_e", "task_loss", "E_e cross-entropy"),
                                    ("content", "info_nce", "E_r InfoNCE"),
                                    ("heads", "mse_zv", "heads 0.7 MSE(z_v)"),
                                    ("heads", "vertex", "heads 0.3 L_vertex (mm)")):
        history = result.fits[fit_name].history
        if column in history.columns:
            parts.append(history.set_index("epoch")[[column]].rename(columns={column: label}))
    return pd.concat(parts, axis=1).reset_index()


def training_status_frame(result: Table41Result) -> pd.DataFrame:
    """Per encoder of Table 4.1 and training seed: whether each of its three fits (``E_e``, content
    encoder, heads) was trained in this run or loaded from ``AFFECTLAB_RUNS`` (same data and
    configuration)."""
    pipelines = result.seed_pipelines or {name: [p] for name, p in result.pipelines.items()}
    rows = {(ENCODER_LABELS[name], p.seed): {stage: "loaded" if fit.loaded_from_cache else "trained"
                                             for stage, fit in p.fits.items()}
            for name, seeds in pipelines.items() for p in seeds}
    frame = pd.DataFrame(rows).T
    frame.index.names = ["encoder", "seed"]
    return frame


SWEEP_LABELS: dict[str, str] = {"emotion_enhanced": "EEG2Face emotion-enhanced",
                                "content_only": "EEG2Face content-only", MEAN_FACE: "mean face",
                                PER_EMOTION_MEAN_FACE: "per-emotion mean face (oracle)",
                                PREDICTED_EMOTION_MEAN_FACE: "per-emotion mean face (E_e's prediction)",
                                DRIVE_CEILING: "ceiling: EMG drive", ACTIONS_CEILING: "ceiling: face actions",
                                EEG_RIDGE: "control: ridge on EEG power"}


def sweep_frame(sweep: pd.DataFrame, metrics_shown: Sequence[str] | str = METRIC_NAMES) -> pd.DataFrame:
    """The coupling sweep as a table: one row per (coupling, metric), one column per predictor,
    values "mean [95 % CI]" in mm, plus the EMG SNR in dB and ``E_e``'s test accuracy."""
    shown = (metrics_shown,) if isinstance(metrics_shown, str) else tuple(metrics_shown)
    bad = [m for m in shown if m not in METRIC_NAMES]
    if bad or not shown:
        raise ValueError(f"metrics must be among {METRIC_NAMES}; got {shown!r}")
    rows = []
    for coupling, group in sweep.groupby("coupling", sort=False):
        for metric in shown:
            row: dict[str, Any] = {"coupling": coupling, "metric (mm)": metric,
                                   "face-locked : unrelated EMG (dB)": group["snr_db"].iloc[0],
                                   "E_e accuracy (%)": 100 * group["E_e accuracy"].iloc[0]}
            for _, r in group.iterrows():
                key = SWEEP_LABELS.get(r["mode"]) if r["mode"] != "baseline" else SWEEP_LABELS.get(r["method"])
                if key is not None:
                    row[key] = metric_cell(r, metric)
            rows.append(row)
    return pd.DataFrame(rows).set_index(["coupling", "metric (mm)"]).sort_index(ascending=[False, True])



UPPER_FACE_REGIONS = ("eyes", "brows", "forehead")


def _region_distance(z_a: torch.Tensor, z_b: torch.Tensor, latent: VisionLatent, regions: Mapping[str, torch.Tensor],
                     chunk: int = 128) -> dict[str, float]:
    """Mean Euclidean distance (mm) between the meshes ``F(z_a)`` and ``F(z_b)`` over each region's
    vertices and all rows."""
    totals = {name: 0.0 for name in regions}
    with torch.no_grad():
        for start in range(0, len(z_a), chunk):
            dist = torch.linalg.vector_norm(latent.vertices(z_a[start:start + chunk].float())
                                            - latent.vertices(z_b[start:start + chunk].float()), dim=-1)
            for name, ids in regions.items():
                totals[name] += float(dist[:, ids].mean(1).sum())
    return {name: total / max(len(z_a), 1) for name, total in totals.items()}


def emotion_control_frame(data: ChapterData, result: PipelineResult) -> pd.DataFrame:
    """What the emotion code does (Fig. 4-2, measured): for each emotion k, the mean displacement (mm)
    of ``f(z_r + g(one-hot k))`` from ``f(z_r + g(one-hot Neutral))`` on the lips and on the upper
    face (eyes, brows, forehead), over the test windows; beside it the same displacement between the
    test frames re-posed into k and into Neutral (:func:`affectlab.data.generate.paired.repose_upper_face`,
    what stage 2 learned from when ``reposed_per_frame`` > 0), and the model's upper-face error against
    the re-posed face of k."""
    face_model = data.latent.face_model
    regions = {"lips": face_model.regions["lips"],
               "upper face": torch.unique(torch.cat([face_model.regions[r] for r in UPPER_FACE_REGIONS]))}
    z_r = result.features["z_r"][data.test]
    heads = result.model.heads.cpu().eval()
    eye = torch.eye(len(EMOTIONS))
    with torch.no_grad():
        modulated = [heads.with_code(z_r, eye[k].expand(len(z_r), -1)) for k in range(len(EMOTIONS))]
    rows = []
    for k, name in enumerate(EMOTIONS):
        model_shift = _region_distance(modulated[k], modulated[0], data.latent, regions)
        row: dict[str, Any] = {"emotion code": name, "model: lips (mm)": model_shift["lips"],
                               "model: upper face (mm)": model_shift["upper face"]}
        if data.z_v_reposed is not None:
            truth = data.z_v_reposed[data.test]
            true_shift = _region_distance(truth[:, k], truth[:, 0], data.latent, regions)
            error = _region_distance(modulated[k], truth[:, k], data.latent, regions)
            row.update({"re-posed truth: lips (mm)": true_shift["lips"],
                        "re-posed truth: upper face (mm)": true_shift["upper face"],
                        "model vs re-posed truth: upper-face error (mm)": error["upper face"]})
        rows.append(row)
    return pd.DataFrame(rows).set_index("emotion code")


