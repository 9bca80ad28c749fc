"""What the chapter concludes (paper 003): the deviations table
(:func:`affectlab.reporting.deviations_table`), the headline numbers recorded into
``04_poster_var.results.json`` (:func:`record_headline_numbers`) and the findings text computed from
them."""

from __future__ import annotations


import numpy as np
import pandas as pd

from affectlab import metrics, stats
from affectlab.config import RunConfig
from affectlab.reporting import ResultsRecorder, deviations_table

from .calibration import PRIOR_ROW, CalibrationResult
from .config import RESULT_KEYS, ROW_LABELS, ChapterConfig, amp_description, input_description, landmark_face_count
from .data import ChapterData
from .experiments import AblationResult
from .figures import GradcamResult
from .paper import PAPER_TABLE_3
from .pretrain import ImageTrunk, LandmarkBranch, accuracy_percent
from .tables import ablation_differences, accuracy_summary, paired_accuracy_difference, row_summary
from .votes import LINEAR_RULE, MC_RULE, MU_RULE, VoteComparison


def deviations_frame(cfg: ChapterConfig, run: RunConfig, data: ChapterData) -> pd.DataFrame:
    """Every difference between this run and the paper (Table 1, FER+ column, and the public code),
    as :func:`affectlab.reporting.deviations_table` (aspect, paper, here, why), indexed by aspect."""
    ferplus = data["ferplus"]
    source = "generated stand-in (no data root)" if ferplus.generated else "the user's FERPlus copy"
    reduced = (cfg.poster_width, cfg.poster_depth) != (1.0, 1.0)
    rows = [
        ("data", "FER+ (28,709 / 3,589 / 3,589 images), RAF-DB, AffectNet",
         f"{source}: {len(ferplus.train)} train / {len(ferplus.test)} test labelled images"
         + ("" if len(data.datasets) > 1 else "; RAF-DB and AffectNet absent from the data root"),
         "the data root holds what it holds; smaller subsets keep the profile within its CPU budget"),
        ("labels", "FER+ without 'unknown' / 'not a face' samples",
         "FERPlus majority vote (images without a majority, or with an unknown / NF majority, dropped); "
         "training targets = the votes over the 8 emotions, normalised",
         "the public code divides the votes by 10 (unknown / NF votes stay in the denominator); renormalising "
         "over the 8 emotions gives every target the same total weight"),
        ("loss", "CE + KL (text and Table 1)", "plain CE on the vote distribution, no KL term (as the public code)",
         "the published training code has no KL term (loss_name: cross_entropy)"),
        ("image backbone", "IR-50 pretrained on MS-Celeb-1M (face recognition)",
         "IR-50 from scratch" if cfg.trunk_epochs == 0 else
         cfg.trunk_description() + "; the rows' training images are among the trunk's",
         "no pretrained weights can be downloaded here"),
        ("image backbone in the rows", "fine-tuned with the rest of the network",
         "random weights, trained with the rest" if cfg.trunk_epochs == 0 else
         ("frozen (weights and BatchNorm statistics): only the fusion, token embedding, ViT, SE gate and head "
          "train" if cfg.freeze_trunk else "fine-tuned with the rest of the network"),
         "the few steps of this profile go to the parts the ablation compares" if cfg.freeze_trunk else "as the paper"),
        ("landmark branch", "MobileFaceNet landmark detector (pytorch_face_landmark), frozen",
         f"MobileFaceNet trained here on {landmark_face_count(cfg)} generated faces (70% of the identities; "
         "exact 68 landmarks from the face model), then frozen",
         "no pretrained detector can be downloaded; generated faces have exact landmarks"),
        ("network size", "width 1 (token width 768), IR-50 units 3/4/14",
         f"width {cfg.poster_width}, depth {cfg.poster_depth}"
         + (" (PosterConfig.reduced(): token width 192, IR units 1/1/4)" if (cfg.poster_width, cfg.poster_depth) == (0.25, 0.25) else ""),
         "CPU budget" if reduced else "as the paper"),
        ("input", "224 x 224 RGB, resized to 112 inside the model",
         "; ".join(f"{d.display_name}: {input_description(d.train)}" for d in data.datasets.values()),
         "the model resizes to 112 px anyway; FERPlus images are 48 px greyscale"),
        ("IR-50 input and pyramid", "112 px (pyramid 56/28/14), stride-2 level convolutions to 28/14/7, same width as the rest",
         f"{cfg.trunk_input_size} px" + (" (pyramid 28/14/7), stride-1 level convolutions that also project the trunk's "
                                         f"channels to the level channels; trunk width {cfg.trunk_scale[0]:g}, depth "
                                         f"{cfg.trunk_scale[1]:g}" if cfg.trunk_input_size != 112 else " as the paper"),
         "a quarter of the trunk's multiply-adds; 56 px still holds every pixel of a 48-px FERPlus face"
         if cfg.trunk_input_size != 112 else "as the paper"),
        ("datasets", "FER+, RAF-DB, AffectNet (Table 1: RAF-DB lr 9e-6 / 250 epochs, AffectNet lr 2e-5; both add "
         "rotation and random crop)",
         ", ".join(d.display_name for d in data.datasets.values())
         + ("" if cfg.extra_datasets else " (this profile leaves RAF-DB and AffectNet out for time)")
         + ("" if len(data.datasets) == 1 else
            "; RAF-DB / AffectNet use their Table 1 epochs and lr, not their rotation / crop" if cfg.table_1_per_dataset
            else "; every dataset uses the FER+ settings of this table"),
         "the paper does not print the rotation / crop parameters; the other datasets cost time"),
        ("epochs / batch", "200 epochs, batch 48",
         (cfg.row_description() if cfg.fast_recipe else f"{cfg.epochs} epoch(s)")
         + (f"; at most {cfg.steps_per_epoch} step(s) per epoch" if cfg.steps_per_epoch else "")
         + ("" if cfg.fast_recipe else f", batch {cfg.batch_size}"),
         "CPU budget: the wall-clock budget decides how many steps fit" if cfg.fast_recipe else
         ("CPU budget" if (cfg.epochs, cfg.batch_size) != (200, 48) or cfg.steps_per_epoch else "as the paper")),
        ("optimiser", "SAM over AdamW (rho 0.05), FERPlus lr 3.5e-6 (the issue and the public config; Table 1 "
         "prints 3e-5), wd 1e-4, ExponentialLR gamma 0.98",
         ("AdamW, no SAM, one-cycle schedule over the budget (the fast FER recipe), weight decay 0.01, "
          + (f"lr chosen on validation among {', '.join(f'{v:g}' for v in cfg.row_lr_candidates)}"
             if cfg.row_lr_candidates else f"lr {cfg.lr:g}") if cfg.fast_recipe else
          f"{'SAM over AdamW' if cfg.optimizer == 'sam' else 'AdamW, no SAM'} lr {cfg.lr:g}, wd {cfg.weight_decay:g}, "
          f"gamma {cfg.gamma}" + (f", rho {cfg.sam_rho}" if cfg.optimizer == "sam" else "")
          + (f", after a {cfg.warmup_epochs:g}-epoch linear warm-up (not in the paper)" if cfg.warmup_epochs else "")),
         ("the project's fast CPU recipe; a few minutes of steps need a far larger lr than 3.5e-6; SAM doubles the "
          "cost of a step" if cfg.lr > 3.5e-6 or cfg.fast_recipe else "as the public config")),
        ("precision", "not stated", amp_description(cfg, run), "the trainer's automatic choice for this device"),
        ("augmentation", "H. flip, colour jitter 0.2, random erasing (FER+ column of Table 1)",
         ("rows: none (they train on the cached maps of the unaugmented images); trunk: flip + "
          f"{cfg.trunk_crop_padding}-px crop" if cfg.cache_pyramids else cfg.augment_description()),
         "as Table 1" if cfg.color_jitter and cfg.erase_p and not cfg.cache_pyramids else
         "cached maps cannot be augmented; each row sees each training image about once or twice in its budget"
         if cfg.cache_pyramids else "no jitter / erasing in this profile"),
        ("model selection", "best validation epoch",
         "last epoch" if cfg.valid_size == 0 else
         ("rows' lr chosen by the baseline row's FERPlus-validation accuracy (short trial); " if cfg.row_lr_candidates
          else "") + "best epoch by validation accuracy; the test split is scored once per row, after training",
         "no validation split in this profile" if cfg.valid_size == 0 else
         "as the paper; nothing is chosen on test images"),
        ("seeds", "one run per row (no seeds or intervals reported)", f"{cfg.n_seeds} seed(s) per row, 95% CIs",
         "the paper's differences are tenths of a point: they need intervals"),
        ("inference time", "mean of 1000 runs, RTX 3090", f"median of {cfg.timing_repeats} runs, {run.device}, "
         f"{cfg.timing_threads} thread(s), batch 1" + (", trained rows and untrained paper-size rows" if cfg.time_paper_size
                                                      else "") + "; FLOPs counted per image",
         "no GPU here; the median resists other jobs on a shared CPU, FLOPs do not depend on the load"),
    ]
    return deviations_table(rows).set_index("aspect")


def neurogaze_vich_statement() -> str:
    """Whether the NeuroGaze-Distill student (chapter 01) can take a VICH head, read from its signature."""
    import inspect

    from affectlab.models.resnet_student import FERStudent

    parameters = inspect.signature(FERStudent.__init__).parameters
    flags = [name for name in parameters if name in ("head", "head_type", "classifier", "vich")]
    if flags:
        return (f"The NeuroGaze-Distill student (FERStudent) has a head parameter ({', '.join(flags)}); "
                "a VICH variant can be trained there.")
    return ("The NeuroGaze-Distill student (affectlab.models.FERStudent) has a fixed linear classifier and no "
            f"head-type flag (its parameters: {', '.join(p for p in parameters if p != 'self')}), so the issue's "
            "optional VICH-on-the-student experiment does not apply and is not run.")


def _ece(n_bins: int):
    def ece(y_true: np.ndarray, probs: np.ndarray) -> float:
        return metrics.expected_calibration_error(probs, y_true, n_bins)
    return ece


def _macro_f1_percent(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return 100.0 * metrics.macro_f1(y_true, y_pred)


def record_headline_numbers(results: ResultsRecorder, result: AblationResult, dataset: str = "ferplus",
                            trunk: ImageTrunk | None = None, landmarks: LandmarkBranch | None = None,
                            votes: VoteComparison | None = None) -> dict[str, str]:
    """Record the chapter's headline numbers (issue 17, item 7) into ``04_poster_var.results.json``
    and return the text of each, keyed like the file: per ablation row (``poster_var``,
    ``no_layer_embedding``, ``no_vich``, ``poster_pp``) ``<row>.test.accuracy``, ``.macro_f1`` (%)
    and ``.ece`` (deployed rule: softmax of mu / of the linear head), with their intervals
    (:func:`~.tables.row_summary`); ``majority.test.accuracy``; ``trunk.test.accuracy``;
    ``diff.poster_var_vs_no_vich.test.accuracy`` (paired, pp); ``inference_ms.<row>`` (median, batch
    1); ``landmarks.test.nme`` and ``landmarks.test.nme_mean_shape`` (%). With ``votes`` also
    ``<row>.test.vote_js`` (mean JS divergence to the vote distribution, nats: the Monte-Carlo
    predictive for VICH rows, the softmax for the others), ``poster_var.test.vote_js_mu`` (softmax of
    mu), ``<row>.test.vote_entropy_r``, ``<row>.test.vote_top2`` and
    ``diff.poster_var_vs_no_vich.test.vote_js`` (paired)."""
    splits = result.data[dataset]
    source = f"{'generated' if splits.generated else 'real'}: {splits.name}/{splits.test.split}"
    n_test = len(splits.test)
    column = "FER+" if dataset == "ferplus" else None
    texts: dict[str, str] = {}

    def record(key: str, value: float, ci: tuple[float, float] | None, unit: str, n: int | None, seeds: list[int] | None,
               paper: float | None = None, digits: int = 1, number_source: str = source) -> None:
        texts[key] = results.record(key, value, ci=ci, unit=unit, n=n, seeds=seeds, source=number_source,
                                    paper=paper, digits=digits)

    metrics_by_key = {"accuracy": (accuracy_percent, "labels", "%", 1), "macro_f1": (_macro_f1_percent, "labels", "%", 1),
                      "ece": (_ece(result.cfg.calibration_bins), "probabilities", "", 3)}
    for row in result.rows:
        key = RESULT_KEYS.get(row, row.replace(" ", "_"))
        for name, (metric, scores, unit, digits) in metrics_by_key.items():
            s = row_summary(result, dataset, row, metric, scores)
            paper = PAPER_TABLE_3[row][column] if (name == "accuracy" and column and row in PAPER_TABLE_3) else None
            record(f"{key}.test.{name}", s["value"], (s["low"], s["high"]), unit, s["n"], s["seeds"], paper, digits)
        timing = accuracy_summary(result, dataset, row)
        record(f"inference_ms.{key}", timing["inference_ms"], timing["inference_iqr_ms"], "ms", None,
               result.seeds(dataset), PAPER_TABLE_3.get(row, {}).get("Inf. Time (ms)"), 2,
               f"median single-image time (IQR), {result.cfg.timing_threads} CPU thread(s)")
    _, majority = splits.majority_class()
    record("majority.test.accuracy", majority, None, "%", n_test, [])
    if trunk is not None:
        point, low, high = stats.bootstrap_ci(accuracy_percent, trunk.test_labels, trunk.test_predicted,
                                              n_resamples=result.cfg.n_bootstrap, seed=0)
        record("trunk.test.accuracy", point, (low, high), "%", len(trunk.test_labels), None)
    if "full" in result.rows and "w/o VI" in result.rows:
        seed = result.seeds(dataset)[0]
        diff = paired_accuracy_difference(result, dataset, "full", "w/o VI", seed)
        paper = (PAPER_TABLE_3["full"][column] - PAPER_TABLE_3["w/o VI"][column]) if column else None
        record("diff.poster_var_vs_no_vich.test.accuracy", diff.value, (diff.low, diff.high), "pp", n_test, [seed],
               None if paper is None else round(paper, 2), 2)
    if votes is not None:
        n_boot = result.cfg.n_bootstrap
        seeds = [votes.seed]
        for row in result.rows:
            key = RESULT_KEYS.get(row, row.replace(" ", "_"))
            rules = [(MC_RULE, ""), (MU_RULE, "_mu")] if (row, MC_RULE) in votes.probabilities else [(LINEAR_RULE, "")]
            for rule, suffix in rules:
                s = votes.summary((row, rule), n_bootstrap=n_boot, seed=0)
                record(f"{key}.test.vote_js{suffix}", s["js"][0], s["js"][1:], "nats", len(votes.labels), seeds, digits=4)
                if not suffix:
                    record(f"{key}.test.vote_entropy_r", s["entropy_r"][0], s["entropy_r"][1:], "", len(votes.labels),
                           seeds, digits=3)
                    record(f"{key}.test.vote_top2", s["top2"][0], s["top2"][1:], "", len(votes.labels), seeds, digits=3)
        if ("full", MC_RULE) in votes.probabilities and ("w/o VI", LINEAR_RULE) in votes.probabilities:
            d = votes.difference(("full", MC_RULE), ("w/o VI", LINEAR_RULE), "js", n_bootstrap=n_boot, seed=0)
            record("diff.poster_var_vs_no_vich.test.vote_js", d.value, (d.low, d.high), "nats", len(votes.labels), seeds,
                   digits=4)
    if landmarks is not None:
        nme = list(landmarks.nme.values())
        for key, values in zip(("landmarks.test.nme", "landmarks.test.nme_mean_shape"), nme[:2]):
            point, low, high = stats.bootstrap_ci(lambda _t, v: float(np.mean(v)), np.zeros(len(values), int), values,
                                                  n_resamples=result.cfg.n_bootstrap, seed=0, stratified=False)
            record(key, 100 * point, (100 * low, 100 * high), "%", len(values), None,
                   number_source="generated: held-out identities (landmark branch)")
    return texts


def findings(result: AblationResult, calibration: CalibrationResult, results: ResultsRecorder,
             dataset: str = "ferplus", landmarks: LandmarkBranch | None = None, gradcam: GradcamResult | None = None,
             trunk: ImageTrunk | None = None, votes: VoteComparison | None = None) -> list[str]:
    """Plain statements computed from this run's numbers (no claim without its interval); every
    headline number is first recorded through ``results`` (:func:`record_headline_numbers`), so the
    text shows the number in ``04_poster_var.results.json``."""
    texts = record_headline_numbers(results, result, dataset, trunk=trunk, landmarks=landmarks, votes=votes)
    out = []
    if landmarks is not None:
        (_, branch_nme), (_, mean_nme) = list(landmarks.nme.items())[:2]
        ratio = float(branch_nme.mean() / mean_nme.mean())
        out.append(f"Landmark branch: NME {texts['landmarks.test.nme']} on {len(branch_nme)} held-out generated faces, "
                   f"against {texts['landmarks.test.nme_mean_shape']} for the mean training shape (ratio {ratio:.2f})"
                   + (": it has learned little beyond the mean face, so the frozen landmark queries carry little "
                      "face-specific information in this run." if ratio > 0.9 else
                      ("; it locates the face's landmarks, so the frozen queries carry face-specific information."
                       if ratio < 0.5 else "; it has learned part of the face shape.")))
    splits = result.data[dataset]
    _, majority = splits.majority_class()
    majority_text = texts["majority.test.accuracy"]
    if trunk is not None:
        low, high = results.numbers["trunk.test.accuracy"]["ci"] or (float("nan"), float("nan"))
        verdict = stats.VERDICT_WORDS[stats.verdict_from_ci(low, high, null=majority)]
        out.append(f"The pretrained IR-50 trunk alone (pooled linear classifier) reaches {texts['trunk.test.accuracy']} "
                   f"on the {splits.display_name} test images, {verdict} the majority-class "
                   f"rate ({majority_text}); the rows " + ("keep it frozen, so they can only add what the layers after "
                   "it learn from its features." if result.cfg.freeze_trunk else "fine-tune it with the rest."))
    keys = {row: RESULT_KEYS.get(row, row.replace(" ", "_")) for row in result.rows}
    if "full" in keys and "baseline" in keys:
        out.append(f"POSTER-Var reached {texts[keys['full'] + '.test.accuracy']} and the POSTER++ baseline "
                   f"{texts[keys['baseline'] + '.test.accuracy']} on {len(splits.test)} {splits.display_name} test "
                   f"images; always answering the most frequent training class would score {majority_text} and chance "
                   f"is {100 / len(splits.class_names):.1f} %. The paper reports 91.89 % and 91.62 % on FER+.")
    for row in result.rows:
        number = results.numbers[f"{keys[row]}.test.accuracy"]
        low, high = number["ci"] or (float("nan"), float("nan"))
        verdict = stats.VERDICT_WORDS[stats.verdict_from_ci(low, high, null=majority)]
        out.append(f"{ROW_LABELS.get(row, row)}: {texts[keys[row] + '.test.accuracy']}, {verdict} the majority-class "
                   f"rate ({majority_text}); macro-F1 {texts[keys[row] + '.test.macro_f1']}.")
    for row in ("full", "baseline"):
        if row not in keys:
            continue
        answers = np.unique(result.get(dataset, row).predicted)
        if len(answers) == 1:
            out.append(f"{ROW_LABELS[row]} answers '{splits.class_names[int(answers[0])]}' for every test image: it has "
                       "learned no more than a constant guess, and its bootstrap interval has zero width because the "
                       "stratified resampling keeps the class counts fixed.")
    diffs = ablation_differences(result)
    diffs = diffs[diffs["dataset"] == splits.display_name]
    for _, d in diffs.iterrows():
        verdict = "excludes 0" if d["CI excludes 0"] else "includes 0: this run cannot tell the two apart"
        out.append(f"{d['comparison']}: {d['difference (pp)']:+.2f} pp, 95% CI {d['95% CI (paired bootstrap)']} "
                   f"(seed {d['seed']}), which {verdict}; the paper's difference is {d['paper (pp)']:+.2f} pp.")
    times = {row: accuracy_summary(result, dataset, row) for row in result.rows}
    if "full" in times and "baseline" in times:
        full, base = times["full"], times["baseline"]
        change = 100 * (full["inference_ms"] / base["inference_ms"] - 1)
        overlap = full["inference_iqr_ms"][0] <= base["inference_iqr_ms"][1] and base["inference_iqr_ms"][0] <= full["inference_iqr_ms"][1]
        out.append(f"Inference at this run's size: {texts['inference_ms.' + keys['full']]} (POSTER-Var, median "
                   f"[IQR]) vs {texts['inference_ms.' + keys['baseline']]} (baseline) per image on "
                   f"{result.cfg.timing_threads} thread(s) "
                   f"({change:+.1f}%)" + ("; the spreads overlap, so the difference is within this machine's noise"
                                         if overlap else "") + ".")
    if "full" in result.paper_size_ms and "baseline" in result.paper_size_ms:
        f_ms, b_ms = (float(np.median(result.paper_size_ms[r])) for r in ("full", "baseline"))
        out.append(f"Paper-size network (untrained weights, same cost): {f_ms:.1f} ms (POSTER-Var) vs {b_ms:.1f} ms "
                   f"(POSTER++) per image on {result.cfg.timing_threads} CPU thread(s) ({100 * (f_ms / b_ms - 1):+.1f}%); "
                   "the paper reports 1.502 vs 1.491 ms (+0.7%) on an RTX 3090.")
    if ("paper size", "full") in result.flops and ("paper size", "baseline") in result.flops:
        f_fl, b_fl = result.flops[("paper size", "full")], result.flops[("paper size", "baseline")]
        out.append(f"FLOPs per image at paper size: {f_fl / 1e9:.3f} G (POSTER-Var) vs {b_fl / 1e9:.3f} G (POSTER++): "
                   f"the additions cost {(f_fl - b_fl) / 1e6:+.2f} MFLOPs ({100 * (f_fl / b_fl - 1):+.4f}%), almost "
                   "nothing, as the paper says. In "
                   f"multiply-adds that is {b_fl / 2e9:.1f} G for POSTER++, to compare with the 8.4 G its authors "
                   "(Mao et al.) report.")
    if gradcam is not None and gradcam.caveat() is not None:
        out.append(str(gradcam.caveat()))
    cal = calibration.table()
    ece_col = [c for c in cal.columns if c.startswith("ECE")][0]
    for (model, rule), row in cal.iterrows():
        out.append(f"Calibration, {model} / {rule}: accuracy {row['accuracy (%)']:.1f}%, ECE {row[ece_col]:.3f}, "
                   f"NLL {row['NLL (nats)']:.3f} nats.")
    for (a, b), d in calibration.differences(n_bootstrap=result.cfg.n_bootstrap, seed=calibration.seed).iterrows():
        parts = []
        for name in ("ECE", "NLL (nats)"):
            verdict = ("lower" if d[f"{name} a - b"] < 0 else "higher") if d[f"{name}: CI excludes 0"] else "not distinguishable"
            parts.append(f"{name.split()[0]} {d[f'{name} a - b']:+.4f} {d[f'{name} 95% CI (paired bootstrap)']} ({verdict})")
        out.append(f"Paired, {a} minus {b}: " + "; ".join(parts) + ".")
    prior = cal.loc[(PRIOR_ROW, "training class frequencies")]
    better = [f"{m} / {r}" for (m, r), row in cal.iterrows() if m != PRIOR_ROW and row["NLL (nats)"] < prior["NLL (nats)"]]
    out.append("Against the class prior (NLL " + f"{prior['NLL (nats)']:.3f}; point estimates, the paired intervals "
               "above say which differences exceed the test set's noise): "
               + (f"lower NLL for {', '.join(better)}." if better else
                  "no model has a lower NLL than answering the training class frequencies, so its low ECE is not "
                  "evidence of useful uncertainty."))
    if votes is not None and "full" in keys:
        out.append(f"Against the human votes: POSTER-Var's Monte-Carlo predictive is {texts[keys['full'] + '.test.vote_js']} "
                   f"nats from the vote distribution (Jensen-Shannon, mean over test faces), its softmax(mu) "
                   f"{texts[keys['full'] + '.test.vote_js_mu']}"
                   + (f", the linear head without VICH {texts[keys['w/o VI'] + '.test.vote_js']}" if "w/o VI" in keys else "")
                   + ".")
        if "diff.poster_var_vs_no_vich.test.vote_js" in texts:
            low, high = results.numbers["diff.poster_var_vs_no_vich.test.vote_js"]["ci"]
            verdict = {"greater": "further from the votes than", "less": "closer to the votes than",
                       "undecided": "not distinguishable from"}[stats.verdict_from_ci(low, high)]
            out.append(f"Paired, POSTER-Var (Monte-Carlo) minus w/o VI: {texts['diff.poster_var_vs_no_vich.test.vote_js']} "
                       f"nats, so VICH's predictive distribution is {verdict} the linear head's in this run: "
                       + ("the paper's claim that VICH learns the distribution of expressions is not supported here."
                          if verdict != "closer to the votes than" else
                          "a measured (if small) gain for the paper's claim that VICH learns the distribution of expressions."))
    out.append(neurogaze_vich_statement())
    return out
