"""The chapter's tables (paper 003): what the run does, the ablation flags, Table 3 beside the
paper's with intervals and reference rows, paired row differences, Table 4 per class, and the
paper's Tables 2 and 4 as printed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from affectlab import metrics, stats
from affectlab.config import RunConfig
from affectlab.models.poster import PosterModel, ablation_configs
from affectlab.reporting import ci_text

from .config import (DISPLAY_NAME, IMAGE_SIZE, ROW_LABELS, TABLE_1_ROW_SCHEDULES, ChapterConfig, amp_description,
                     input_description, landmark_face_count)
from .data import ChapterData, DatasetSplits
from .experiments import AblationResult
from .paper import PAPER_TABLE_2, PAPER_TABLE_3, PAPER_TABLE_4, paper_column
from .pretrain import ImageTrunk, accuracy_percent


def config_frame(cfg: ChapterConfig, run: RunConfig, data: "ChapterData | None" = None) -> pd.DataFrame:
    """What this run does, in one table: data sizes, image size, network, epochs, optimiser, seeds."""
    def size(value: int | None) -> str:
        return "all labelled" if value is None else ("none" if value == 0 else f"{value} (stratified)")

    images = ("; ".join(f"{d.display_name}: {input_description(d.train)}" for d in data.datasets.values())
              if data is not None else f"resized to {IMAGE_SIZE} x {IMAGE_SIZE}, 3 channels, ImageNet normalisation")
    trunk = cfg.trunk_description() + ("" if cfg.trunk_epochs == 0 else " (stand-in for MS-Celeb-1M weights)")
    rows = [
        ("profile", cfg.profile),
        ("data", run.data_label),
        ("device", f"{run.device} ({torch.get_num_threads()} threads)"),
        ("images", images),
        ("network", f"POSTER-Var / POSTER++ width {cfg.poster_width}, depth {cfg.poster_depth}"
                    + (" (PosterConfig.reduced())" if (cfg.poster_width, cfg.poster_depth) == (0.25, 0.25) else "")),
        ("landmark branch", f"MobileFaceNet pretrained on {landmark_face_count(cfg)} "
                            f"generated faces, {cfg.landmark_epochs} epoch(s), then frozen"),
        ("image trunk", trunk),
        ("row training", cfg.row_description() or "Table 1 schedule (below)"),
        ("training images per row", size(cfg.train_size)),
        ("validation images", size(cfg.valid_size)),
        ("test images", size(cfg.test_size)),
        ("extra datasets (when present)", ", ".join(DISPLAY_NAME[d] for d in cfg.extra_datasets) or "none (this profile)"),
        ("epochs per row", cfg.epochs if cfg.steps_per_epoch is None else f"{cfg.epochs} (at most {cfg.steps_per_epoch} step(s) each)"),
        ("batch size", cfg.batch_size),
        ("optimiser", f"AdamW lr {cfg.lr:g}, weight decay {cfg.weight_decay:g}"
                      + (f", {cfg.warmup_epochs:g}-epoch linear warm-up" if cfg.warmup_epochs else "")
                      + f", exponential gamma {cfg.gamma}"
                      + (f", SAM rho {cfg.sam_rho}" if cfg.optimizer == "sam" else ", no SAM")),
        ("other datasets' epochs / lr", "Table 1: " + ", ".join(f"{DISPLAY_NAME[d]} {e} epochs, lr {lr:g}"
                                                                for d, (e, lr) in TABLE_1_ROW_SCHEDULES.items())
         if cfg.table_1_per_dataset else "as FERPlus (this profile)"),
        ("precision", amp_description(cfg, run)),
        ("loss", "cross-entropy against the normalised FERPlus votes (no KL term)"),
        ("augmentation", cfg.augment_description()),
        ("seeds per row", ", ".join(str(s) for s in cfg.seeds(run))),
        ("Monte-Carlo samples (VICH)", cfg.mc_samples),
        ("bootstrap resamples", cfg.n_bootstrap),
        ("inference timing", f"median of {cfg.timing_repeats} single-image passes after {cfg.timing_warmup} warm-up, "
                             f"{cfg.timing_threads} CPU thread(s)" + (", trained rows and untrained paper-size rows"
                                                                       if cfg.time_paper_size else "")),
    ]
    return pd.DataFrame(rows, columns=["setting", "value"]).set_index("setting")


def ablation_flags_frame(cfg: ChapterConfig, num_classes: int) -> pd.DataFrame:
    """The four rows of Table 3 as flags of one model, with their parameter counts at this size."""
    records = []
    for row, config in ablation_configs(cfg.poster_config(num_classes)).items():
        model = PosterModel(config)
        records.append({
            "model": ROW_LABELS[row], "level embedding (Eq. 3)": config.level_embedding,
            "GELU token embedding": config.nonlinear_embedding, "token LayerNorm": config.token_norm,
            "SE gate (Eq. 4)": config.se_gate, "VICH head (Eq. 5)": config.vich,
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable (landmark branch frozen)": sum(p.numel() for p in model.parameters() if p.requires_grad),
        })
    return pd.DataFrame(records).set_index("model")


def trunk_frame(trunk: ImageTrunk, splits: DatasetSplits, n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """:meth:`ImageTrunk.table` with the majority-class rate of the same test images beside it."""
    frame = trunk.table(n_bootstrap, seed)
    majority, rate = splits.majority_class()
    frame[f"majority class '{splits.class_names[majority]}' (%)"] = round(rate, 2)
    return frame


def row_summary(result: AblationResult, dataset: str, row: str,
                metric: Callable[[np.ndarray, np.ndarray], float] = accuracy_percent,
                scores: str = "labels") -> dict[str, Any]:
    """``metric(y_true, y_pred)`` of a row over its seeds, with its interval: one seed -> a
    class-stratified bootstrap over the test images; several -> the t interval over seeds.
    ``scores``: "labels" passes predicted classes, "probabilities" softmax(evaluation logits)."""
    runs = [r for r in result.runs if r.dataset == dataset and r.row == row]
    if not runs:
        raise KeyError(f"no runs for dataset={dataset!r}, row={row!r}")
    if scores not in ("labels", "probabilities"):
        raise ValueError(f"parameter scores must be 'labels' or 'probabilities'; got {scores!r}")

    def predictions(r: Any) -> np.ndarray:
        return r.predicted if scores == "labels" else torch.softmax(r.logits.double(), dim=-1).numpy()

    if len(runs) == 1:
        point, low, high = stats.bootstrap_ci(metric, runs[0].labels.numpy(), predictions(runs[0]),
                                              n_resamples=result.cfg.n_bootstrap, seed=runs[0].seed)
        kind = f"bootstrap over {len(runs[0].labels)} test images"
    else:
        summary = stats.mean_ci_over_seeds([metric(r.labels.numpy(), predictions(r)) for r in runs])
        point, low, high = summary.mean, summary.low, summary.high
        kind = f"t interval over {len(runs)} seeds"
    return {"value": point, "low": low, "high": high, "ci": kind, "seeds": [r.seed for r in runs],
            "n": len(runs[0].labels)}


def accuracy_summary(result: AblationResult, dataset: str, row: str) -> dict[str, Any]:
    """Accuracy (%) of a row over its seeds (:func:`row_summary`; each seed's bootstrap CI is in
    :func:`per_seed_frame`) and its median single-image inference time with the IQR."""
    summary = row_summary(result, dataset, row)
    runs = [r for r in result.runs if r.dataset == dataset and r.row == row]
    samples = np.concatenate([r.inference_samples_ms for r in runs if r.inference_samples_ms is not None] or [[np.nan]])
    return {"accuracy": summary["value"], "low": summary["low"], "high": summary["high"], "ci": summary["ci"],
            "seeds": len(runs), "inference_ms": float(np.median([r.inference_ms for r in runs])),
            "inference_iqr_ms": tuple(float(q) for q in np.percentile(samples, [25, 75]))}


def table_3_frame(result: AblationResult) -> pd.DataFrame:
    """Table 3: our accuracy (%) with 95% CI per dataset, inference time and FLOPs, beside the paper's.

    Columns are a MultiIndex: ("this run: <dataset> (<n> test images)", ...), ("this run: inference
    (batch 1, <threads> thread(s))", ...), then ("paper, Table 3 ...", <column>). Two reference rows
    follow the ablation rows: always answering the most frequent training class, and chance (1/C).
    """
    table: dict[tuple[str, str], list[Any]] = {}
    rows = result.rows
    blank = [float("nan"), float("nan")]
    index = [ROW_LABELS.get(r, r) for r in rows]
    first = result.datasets[0]
    majority_name = result.data[first].class_names[result.data[first].majority_class()[0]]
    index += [f"most frequent training class ('{majority_name}')", "chance (1 / number of classes)"]
    for dataset in result.datasets:
        splits = result.data[dataset]
        group = f"this run: {splits.display_name} ({len(splits.test)} test images)"
        summaries = [accuracy_summary(result, dataset, row) for row in rows]
        _, majority_rate = splits.majority_class()
        table[(group, "accuracy (%)")] = [round(s["accuracy"], 2) for s in summaries] + [
            round(majority_rate, 2), round(100.0 / len(splits.class_names), 2)]
        table[(group, "95% CI")] = [ci_text(s["low"], s["high"]) for s in summaries] + ["constant", "-"]
        table[(group, "CI over")] = [s["ci"] for s in summaries] + ["-", "-"]
    device = str(next(result.runs[0].model.parameters()).device)
    timing = [accuracy_summary(result, first, row) for row in rows]
    group = f"this run: inference (batch 1, {device}, {result.cfg.timing_threads} thread(s), median of {result.cfg.timing_repeats})"
    table[(group, "trained rows: ms / image")] = [round(t["inference_ms"], 2) for t in timing] + blank
    table[(group, "trained rows: IQR (ms)")] = [ci_text(*t["inference_iqr_ms"], digits=1) for t in timing] + ["-", "-"]
    if result.paper_size_ms:
        table[(group, "paper size, untrained: ms / image")] = [
            round(float(np.median(result.paper_size_ms[r])), 1) if r in result.paper_size_ms else float("nan")
            for r in rows] + blank
        table[(group, "paper size: IQR (ms)")] = [
            ci_text(*np.percentile(result.paper_size_ms[r], [25, 75]), digits=1) if r in result.paper_size_ms else "-"
            for r in rows] + ["-", "-"]
    for size in dict.fromkeys(k[0] for k in result.flops):
        table[(group, f"{size}: GFLOPs / image")] = [
            round(result.flops[(size, r)] / 1e9, 4) if (size, r) in result.flops else float("nan") for r in rows] + blank
    paper_group = "paper, Table 3 (RTX 3090, full size, pretrained backbones)"
    for column in ("FER+", "RAF-DB", "AffectNet (7 cls)", "AffectNet (8 cls)", "Inf. Time (ms)"):
        table[(paper_group, column if column.endswith("(ms)") else f"{column} (%)")] = [
            PAPER_TABLE_3[r][column] for r in rows] + blank
    frame = pd.DataFrame(table, index=index)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    frame.index.name = "model"
    return frame


def per_seed_frame(result: AblationResult) -> pd.DataFrame:
    """Every run: dataset, row, seed, test accuracy (%) with its bootstrap CI, epochs, loaded or trained."""
    records = []
    for r in result.runs:
        point, low, high = stats.bootstrap_ci(accuracy_percent, r.labels.numpy(), r.predicted,
                                                n_resamples=result.cfg.n_bootstrap, seed=r.seed)
        records.append({"dataset": result.data[r.dataset].display_name, "model": ROW_LABELS.get(r.row, r.row),
                        "seed": r.seed, "accuracy (%)": round(point, 2), "95% CI (bootstrap)": ci_text(low, high),
                        "epochs trained": len(r.fit.history),
                        "last epoch train loss": round(float(r.fit.history["loss"].iloc[-1]), 4),
                        "trainable parameters":
                        sum(p.numel() for p in r.model.parameters() if p.requires_grad),
                        "from cache": r.fit.loaded_from_cache, "run": Path(r.fit.run_dir).name})
    return pd.DataFrame(records)


def paired_accuracy_difference(result: AblationResult, dataset: str, a: str, b: str, seed: int) -> stats.Estimate:
    """Accuracy of row ``a`` minus row ``b`` (percentage points) on the same test images, with a
    paired, class-stratified bootstrap interval (:func:`affectlab.stats.paired_difference`)."""
    run_a, run_b = result.get(dataset, a, seed), result.get(dataset, b, seed)
    if not torch.equal(run_a.labels, run_b.labels):
        raise ValueError(f"rows {a!r} and {b!r} were tested on different images")
    return stats.paired_difference(accuracy_percent, run_a.labels.numpy(), run_a.predicted, run_b.predicted,
                                   n_resamples=result.cfg.n_bootstrap, seed=seed)


def ablation_differences(result: AblationResult, reference: str = "full") -> pd.DataFrame:
    """Accuracy of ``reference`` minus each other row (percentage points), paired on the same test
    images (:func:`paired_accuracy_difference`). Beside it, the paper's difference for the same
    dataset (Table 3)."""
    records = []
    for dataset in result.datasets:
        for seed in result.seeds(dataset):
            for row in result.rows:
                if row == reference:
                    continue
                diff = paired_accuracy_difference(result, dataset, reference, row, seed)
                column = paper_column(dataset, len(result.data[dataset].class_names))
                paper = (PAPER_TABLE_3[reference][column] - PAPER_TABLE_3[row][column]) if column else float("nan")
                records.append({"dataset": result.data[dataset].display_name, "seed": seed,
                                "comparison": f"{ROW_LABELS[reference]} - {ROW_LABELS.get(row, row)}",
                                "difference (pp)": round(diff.value, 2),
                                "95% CI (paired bootstrap)": ci_text(diff.low, diff.high),
                                "CI excludes 0": stats.verdict_from_ci(diff.low, diff.high) != "undecided",
                                "paper (pp)": round(paper, 2)})
    return pd.DataFrame(records)


def _counts_as_integers(frame: pd.DataFrame) -> pd.DataFrame:
    """Object dtype so the sample-count rows print as integers beside the percentage rows."""
    frame = frame.astype(object)
    for row in ("Training samples", "Testing samples"):
        frame.loc[row] = [int(v) for v in frame.loc[row]]
    return frame


def table_4_frame(result: AblationResult, dataset: str = "ferplus", row: str = "full", seed: int | None = None) -> pd.DataFrame:
    """Table 4 layout: per class, training / test samples, recall, precision and false-positive rate
    (%) of ``row`` (the paper discusses FPRs: neutral 9.92 %, happy 3.21 % on RAF-DB)."""
    r = result.get(dataset, row, seed)
    splits = result.data[dataset]
    names = splits.class_names
    scores = metrics.per_class_precision_recall(r.labels.numpy(), r.predicted, labels=list(range(len(names))))
    train_counts = torch.bincount(splits.train.labels, minlength=len(names)).numpy()
    y, pred = r.labels.numpy(), r.predicted

    def false_positive_rate(c: int) -> float:
        negatives = y != c
        return 100 * float(np.mean(pred[negatives] == c)) if negatives.any() else float("nan")

    frame = _counts_as_integers(pd.DataFrame(
        {name: {"Training samples": int(train_counts[i]), "Testing samples": int(scores["support"][i]),
                "Recall (%)": round(100 * scores["recall"][i], 2), "Precision (%)": round(100 * scores["precision"][i], 2),
                "False-positive rate (%)": round(false_positive_rate(i), 2)}
         for i, name in enumerate(names)}
    ))
    frame.columns.name = f"{ROW_LABELS.get(row, row)}, {splits.display_name}, seed {r.seed}"
    return frame


def paper_table_2_frame() -> pd.DataFrame:
    """The paper's Table 2 (comparison with published methods), as the paper prints it; none of these
    numbers was measured here (missing = not reported)."""
    frame = pd.DataFrame([{"method": name, "venue": venue, **scores} for name, venue, scores in PAPER_TABLE_2])
    frame = frame.set_index("method")[["venue", "RAF-DB", "AffectNet (7 cls)", "AffectNet (8 cls)", "FER+"]]
    frame.columns.name = "paper, Table 2: accuracy (%) as reported (not run here)"
    return frame


def paper_table_4_frame() -> pd.DataFrame:
    """The paper's Table 4 (POSTER-Var on RAF-DB), in the same layout as :func:`table_4_frame`."""
    frame = pd.DataFrame(PAPER_TABLE_4)
    frame.index = ["Training samples", "Testing samples", "Recall (%)", "Precision (%)"]
    frame = _counts_as_integers(frame)
    frame.columns.name = "paper, Table 4: POSTER-Var on RAF-DB"
    return frame

