"""Chapter 03's text (EEG2Face): the deviations from the thesis as a table
(:func:`deviations`, :func:`affectlab.reporting.deviations_table`), the verdicts and sentences of
"What we learned" (:func:`findings`; every comparison a paired difference read with
:func:`affectlab.stats.verdict_from_ci`), and the headline numbers recorded into
``03_eeg2face.results.json`` (:func:`record_headline_numbers`, foundation issue item 3).
"""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from affectlab import reporting, stats
from affectlab.chapters.eeg2face.config import ENCODER_LABELS, METRIC_NAMES, PAPER_TABLE_4_1, SFREQ, ChapterConfig
from affectlab.chapters.eeg2face.data import ChapterData
from affectlab.chapters.eeg2face.evaluation import (
    DRIVE_CEILING,
    MEAN_FACE,
    PER_EMOTION_MEAN_FACE,
    PREDICTED_EMOTION_MEAN_FACE,
)
from affectlab.chapters.eeg2face.experiments import Table41Result
from affectlab.chapters.eeg2face.tables import metric_cell


def deviations(cfg: ChapterConfig, data: ChapterData, table: Table41Result | None = None) -> pd.DataFrame:
    """Every known deviation from the thesis, with the values of this run: one row per deviation
    (aspect, what the thesis does, what this run does, why), :func:`affectlab.reporting.deviations_table`."""
    from affectlab.models.eeg_baselines import rate_scaled_time_kwargs, time_tokens

    emg = data.emg_channels
    test_seconds = float(data.info.get("test_background_seconds", float("nan")))
    test_reuse = data.info["test_trials"] * cfg.trial_seconds / test_seconds if test_seconds > 0 else float("nan")
    chosen = (table.selection.get("chosen") if table is not None else None) or cfg.content_input
    selection_reason = (table.selection.get("reason", "") if table is not None else "") or "not run"
    scaled = rate_scaled_time_kwargs(SFREQ)
    tokens = time_tokens(cfg.window_samples, **scaled)
    backbone = ""
    if table is not None:
        sizes = {name: getattr(p.model.content_encoder, "n_backbone_features", None)
                 for name, p in table.pipelines.items()}
        backbone = " Backbone features before the embedding layer: " + ", ".join(
            f"{ENCODER_LABELS[n]} {v}" for n, v in sizes.items() if v is not None) + "."
    background = ("ONE recording (EEGLAB tutorial data, a visual attention task, one person)"
                  if data.info.get("real_background") else
                  "ONE generated recording (the embedded default's stand-in for the EEGLAB tutorial data)")
    reposed = (
        ("exact re-posing by the generator (affectlab.data.generate.paired.repose_upper_face): training frames "
         "re-posed into an emotion on the upper face (brow, eye, cheek-squint and nose-sneer blendshapes; the lower "
         "face and jaw kept), paired with the frame's EEG window and the emotion's one-hot code, added to stage 2 "
         f"({cfg.reposed_per_frame} of the five emotions per frame, drawn at random). The 50 % code drop applies "
         "to the rows with E_e's code only; re-posed rows always keep their code, since their target depends on it.",
         "LivePortrait is not available here, and the generator re-poses exactly; the thesis does not say whether "
         "the drop applies to retargeted rows"
         + ("; fewer than five rows per frame keep stage 2 within this profile's budget"
            if cfg.reposed_per_frame < 5 else ""))
        if cfg.reposed_per_frame else
        ("NOT used in this run (reposed_per_frame=0): g is trained on E_e's code with the 50 % drop only.",
         "this run's configuration"))
    rows = [
        ("data", "EAV: 20 subjects, 100 trials each, EEG and video",
         f"a semi-synthetic EAV-like set: {data.info['n_subjects']} subject(s) x 5 emotions x "
         f"{cfg.trials_per_emotion} trials of {cfg.trial_seconds:g} s. Its EEG background is {background}: "
         "'subjects' differ in face identity, expressivity and trajectories, not in their EEG.",
         "EAV's videos are licence-gated and EMOCA / FLAME cannot be downloaded; a planted EMG-to-face coupling "
         "gives known ground truth"),
        ("background reuse", "every trial has its own EEG",
         f"test trials take their background from the last {100 * cfg.test_background_share:.0f} % of the whole "
         f"recording (about {test_seconds:.0f} s, {data.info.get('test_background_segments', '?')} segments of "
         f"{cfg.segment_seconds:g} s), laid end to end so each second is reused about {test_reuse:.1f} times by the "
         f"{data.info['test_trials']} test trials; training trials use the rest. Every interval therefore resamples "
         "the background segments as well as the trials (and the seeds): affectlab.stats.crossed_bootstrap_mean.",
         "one recording; test EEG stays disjoint from training EEG"),
        ("planted EMG", "the facial EMG in EAV's EEG, with an unknown coupling to the video",
         "the face drives only two envelopes (mouth = jaw opening + 0.5 x mean of 8 mouth blendshapes: smile, "
         "press, stretch, funnel, pucker; brow = mean of 6 brow blendshapes). With this montage the mouth EMG "
         f"reaches {', '.join(emg['mouth']) or 'no channel'} and the brow EMG "
         f"{', '.join(emg['brow']) or 'no channel'}. Lip shape reaches the EEG only through the mouth envelope "
         "(smile, press, stretch, funnel and pucker enter it, averaged with the jaw opening: one number per "
         "instant, not the shape); eye and cheek blendshapes have no path into the EEG. The face-independent EMG "
         "surrogate of each trial is the face of a separately generated trial whose emotion is drawn at random, "
         "independently of the trial's, so at coupling 0 the EMG carries neither the frame nor the emotion. "
         "Emotion rhythms are planted too: valence as frontal alpha asymmetry (8-12 Hz), arousal as a 13-19 Hz "
         "low-beta rhythm, both outside the 20-45 Hz EMG band (affectlab.data.generate.paired, version 2).",
         "a known coupling is what lets the chapter test what EEG2Face recovers (the coupling sweep)"),
        ("EAV pairing", "speaking trials paired with their video",
         "the public EAV EEG loader keeps the listening columns; load a real EAV copy with "
         "affectlab.data.load('eav', root, split='speaking') to pair it the thesis's way.",
         "no EAV video here: the chapter runs on the semi-synthetic set"),
        ("vision latent", "FLAME's 50 expression + 3 jaw-pose codes regressed from video by EMOCA",
         "ICT-FaceKit (MIT) with exact codes: 50 PCA components of its 53 blendshapes + a 3-parameter jaw mapped "
         "onto its jaw blendshapes (FLAME's jaw is a rotation). Shape and global pose are fixed at zero, as in the "
         "thesis. The jaw blendshapes are always 0 (their motion lives in the jaw), so 49 components are exact "
         "and the PCA drops nothing.",
         "FLAME and EMOCA cannot be downloaded here; exact codes remove EMOCA's fitting error"),
        ("emotion disentanglement (Sec. 3.0.6)",
         "LivePortrait retargets each frame's face into the five emotions (and a 'neutral' face), paired with "
         "one-hot codes", *reposed),
        ("samples", "each face frame paired with its own 10 EEG samples (Sec. 3.0.1, x_i with t = 10)",
         f"one sample per face frame with an EEG window of {cfg.window_seconds:g} s ({cfg.window_samples} samples) "
         f"centred on it, one frame in {cfg.frame_step}. E_r reads '{chosen}': "
         + ("only the frame's own 10 samples of that window, as the thesis pairs them."
            if chosen == "frame" else
            "the whole window with a learned position embedding on its tokens (the thesis uses no positional "
            "encoding, Sec. 4.1.1), so attention pooling can find the frame's own 100 ms.")
         + f" Choice: {selection_reason}. The baselines read the whole window.",
         "the baselines' time kernels and pooling need at least 1 s (100 samples); without positions a 1 s window "
         "hides which 100 ms is the frame's"),
        ("seeds", "one run per encoder, point estimates",
         f"{cfg.n_seeds} training seed(s) per encoder ({', '.join(map(str, cfg.training_seeds(int(data.info['seed']))))}; "
         "initialisation, batch order and code drop), on the same data; every row pools its seeds and the ranking "
         "is reported as paired differences on the same test frames.",
         "a ranking of point estimates from one seed cannot be told from seed noise"),
        ("split", "subject-dependent 6:2",
         "each subject's trials are split 6:2 per emotion and ONE model is trained on all subjects' training trials.",
         "the thesis does not say whether one model per subject was trained"),
        ("training length", "Adam, lr 1e-3, batch 64; 400 epochs (stage 1), 300 (stage 2)",
         f"Adam, lr {cfg.lr:g}, batch {cfg.batch_size}; {cfg.stage1_epochs} epochs for E_r and the baselines, "
         f"{cfg.emotion_epochs} for E_e, {cfg.stage2_epochs} for the heads, {cfg.sweep_epochs} for E_e and E_r per "
         "sweep level. No validation set, final weights. Stage 2 runs on the frozen encoders' outputs computed "
         "once (same gradients).",
         f"the '{cfg.profile}' profile's budget; the thesis reports no validation set"),
        ("stage-2 freezing", "Sec. 3.0.7 and Fig. 4-2 freeze both encoders; Sec. 3.0.8 freezes only E_e (\"The EEG "
         "Emotion Decoder is then frozen, and the entire loss is trained\")",
         "E_r is frozen in stage 2 as well as E_e, although Sec. 3.0.8 freezes only E_e: f and g train on fixed "
         "content features.",
         "follows Sec. 3.0.7 and Fig. 4-2; training E_r on Eq. 3.1 (the reading of Sec. 3.0.8) would also make "
         "stage 2 much costlier here"),
        ("losses", "InfoNCE between E_r(x) and E_v(x), no temperature; L_mse written as an L2 norm; L_vertex the "
         "L2 norm of the whole mesh difference in metres",
         f"InfoNCE with temperature {cfg.temperature:g} on a learned linear 128 -> 53 projection of z_r; L_mse the "
         "mean squared error; L_vertex the mean per-vertex distance in mm.",
         "E_r's 128-d output and the 53 vision codes differ in size; the vertex loss's unit sets how the "
         "0.7 / 0.3 weights balance"),
        ("architecture", "not stated beyond Fig. 3-2 and Sec. 3.0.8",
         "BatchNorm after both tokenizer convolutions and an ELU after the spatial one; pre-norm transformer layers "
         "with GELU and dropout 0.1; the strided convolution padded to ceil(T / 5) tokens instead of 'same'; E_e "
         "with 16 filters and no patch embedding; heads f and g are two-layer MLPs (hidden 128, GELU).",
         "unstated details filled in; E_e's filters follow Sec. 3.0.8 (Fig. 3-2 says 40)"),
        ("metrics", "LVE; MCE without a formula; EVE over 'forehead, cheeks, and eyes' (the caption says 'Eye "
         "Vertex Error'); no intervals",
         "MCE is the LVE recipe on the mouth-corner vertices (within 6 mm of landmarks 48 and 54); EVE is the "
         "per-frame maximum over the union of forehead, cheeks and eyes (the EmoTalk choice); 95 % intervals "
         "resample test trials, background segments and training seeds at once (pigeonhole bootstrap).",
         "frames of one trial, frames cut from one background segment and rows of one seed are not independent"),
        ("baselines", "EEGNet, ShallowConvNet, TCT and an EEG transformer, settings not given",
         "braindecode's EEGNet (defaults), ShallowFBCSPNet and EEGConformer with a linear embedding in place of the "
         f"classifier; the latter two with their time kernel and pooling rate-scaled from 250 Hz to 100 Hz "
         f"({scaled['filter_time_length']} / {scaled['pool_time_length']} / {scaled['pool_time_stride']} samples), "
         f"so EEGConformer attends over {tokens} tokens of a {cfg.window_seconds:g} s window instead of one. 'TCT' "
         f"is a reconstruction (no code available); one E_e is shared by all content encoders.{backbone}",
         "no baseline code or settings in the thesis; kernels designed for 250 Hz would span 2.5x longer at 100 Hz"),
        ("figures not reproduced", "Fig. 4-4 (photorealistic avatars from albedo maps) and the 'Detail' row of "
         "Fig. 4-1 (DECA displacement maps)",
         "not shown; frames in the figures are frontal (the generator's slow head motion is omitted).",
         "the project renderer is greyscale and DECA is not available"),
    ]
    return reporting.deviations_table(rows)


def _versus(r: Mapping[str, Any], metric: str, tag: str, name: str) -> str:
    """"LVE 4.27 mm, -3% vs the mean face (difference ..., 95% CI ...: better than it)": a row's
    paired difference ``tag`` (see :func:`affectlab.chapters.eeg2face.evaluation.comparison_columns`)
    read with :func:`affectlab.stats.verdict_from_ci` (an error: lower is better)."""
    verdict = {"less": "better than", "greater": "WORSE than", "undecided": "not distinguishable from"}[
        stats.verdict_from_ci(r[f"{metric}_{tag}_low"], r[f"{metric}_{tag}_high"])]
    return (f"{metric} {r[metric]:.2f} mm, {100 * r[f'{metric}_{tag}_rel']:+.0f}% vs the {name} "
            f"(difference {r[f'{metric}_{tag}']:+.2f} mm, 95% CI {r[f'{metric}_{tag}_low']:+.2f} to "
            f"{r[f'{metric}_{tag}_high']:+.2f}: {verdict} it)")


def gap_closed(model: float, mean_face: float, ceiling: float) -> float:
    """Share of the distance from the mean face's error to the ceiling's that a model closes
    (1 = at the ceiling, 0 = at the mean face, < 0 = worse than the mean face)."""
    span = mean_face - ceiling
    return float("nan") if abs(span) < 1e-12 else (mean_face - model) / span


def findings(result: Table41Result, sweep: pd.DataFrame | None = None,
             control: pd.DataFrame | None = None) -> list[str]:
    """Sentences stating what this run measured (every number computed here, none typed in).
    Comparisons use paired differences over the same test frames and training seeds with 95 % CIs
    that resample test trials, background segments and seeds (pigeonhole bootstrap)."""
    out = []
    errors = result.errors[result.errors["mode"] == "emotion_enhanced"].set_index("encoder")
    base = result.baselines.set_index("method")
    mean_face, oracle = base.loc[MEAN_FACE], base.loc[PER_EMOTION_MEAN_FACE]
    for encoder, r in errors.iterrows():
        out.append(f"{ENCODER_LABELS[encoder]} (emotion-enhanced): "
                   + "; ".join(_versus(r, m, "vs_mean", "mean face") for m in METRIC_NAMES) + ".")
    worse = [ENCODER_LABELS[k] for k, r in errors.iterrows() if r["LVE_vs_mean_low"] > 0]
    if worse:
        out.append("Worse than predicting the mean face on the lips (LVE): " + ", ".join(worse) + ".")
    if "LVE_vs_oracle" in errors.columns:
        beat = [ENCODER_LABELS[k] for k, r in errors.iterrows() if r["LVE_vs_oracle_high"] < 0]
        lost = [ENCODER_LABELS[k] for k, r in errors.iterrows() if r["LVE_vs_oracle_low"] > 0]
        out.append("Against the per-emotion mean face (the true emotion's average face, no frame-level content), "
                   f"LVE: lower for {', '.join(beat) or 'no encoder'}; higher for {', '.join(lost) or 'no encoder'}"
                   " (paired 95% CIs). An encoder must beat this to show that it reads frame-level mouth motion "
                   "rather than only the emotion.")
    if PREDICTED_EMOTION_MEAN_FACE in base.index:
        out.extend(beyond_emotion_findings(errors, base.loc[PREDICTED_EMOTION_MEAN_FACE]))
    ranking = errors["LVE"].sort_values().index.tolist()
    thesis = [k for k in sorted(PAPER_TABLE_4_1, key=lambda k: PAPER_TABLE_4_1[k][0]) if k in ranking]
    out.append("Ranking by LVE here: " + " < ".join(ENCODER_LABELS[k] for k in ranking) + "; in the thesis: "
               + " < ".join(ENCODER_LABELS[k] for k in thesis) + ".")
    out.append(f"Per-emotion mean face (knowing the true emotion, no frame-level content): LVE {oracle['LVE']:.2f}, "
               f"MCE {oracle['MCE']:.2f}, EVE {oracle['EVE']:.2f} mm; mean face LVE {mean_face['LVE']:.2f}, "
               f"MCE {mean_face['MCE']:.2f}, EVE {mean_face['EVE']:.2f} mm.")
    if DRIVE_CEILING in base.index and "eeg2face" in errors.index:
        ceiling, ours = base.loc[DRIVE_CEILING], errors.loc["eeg2face"]
        out.append(f"Ceiling (ridge on the planted EMG drive + true emotion): LVE {ceiling['LVE']:.2f}, MCE "
                   f"{ceiling['MCE']:.2f}, EVE {ceiling['EVE']:.2f} mm. E_r closes "
                   + ", ".join(f"{100 * gap_closed(ours[m], mean_face[m], ceiling[m]):.0f}% ({m})"
                               for m in METRIC_NAMES)
                   + " of the distance from the mean face to this ceiling.")
    e = result.emotion
    verdict = "above" if e["accuracy_low"] > e["chance"] else "not distinguishable from"
    sentence = (f"E_e recognises the five emotions in {100 * e['accuracy']:.1f}% of test windows "
                f"(95% CI over trials {100 * e['accuracy_low']:.1f}-{100 * e['accuracy_high']:.1f}%), {verdict} "
                f"chance ({100 * e['chance']:.0f}%)")
    if "trial_accuracy" in e:
        sentence += (f"; by majority vote per trial {100 * e['trial_accuracy']:.0f}% of {int(e['trials'])} test trials "
                     f"({100 * e['trial_accuracy_low']:.0f}-{100 * e['trial_accuracy_high']:.0f}%)")
    out.append(sentence + ".")
    if "eeg2face" in result.pipelines:
        rows = result.errors[result.errors["encoder"] == "eeg2face"].set_index("mode")
        out.append("E_r emotion-enhanced vs content-only: " + ", ".join(
            f"{m} {rows.loc['emotion_enhanced', m]:.2f} vs {rows.loc['content_only', m]:.2f} mm" for m in METRIC_NAMES)
            + ".")
    if control is not None and not control.empty:
        shift = control.drop("Neutral", errors="ignore").mean()
        sentence = (f"Emotion control: switching the code from Neutral moves the upper face by "
                    f"{shift['model: upper face (mm)']:.2f} mm and the lips by {shift['model: lips (mm)']:.2f} mm on "
                    f"average over the other four emotions")
        if "re-posed truth: upper face (mm)" in shift:
            sentence += (f"; the re-posed faces move them by {shift['re-posed truth: upper face (mm)']:.2f} and "
                         f"{shift['re-posed truth: lips (mm)']:.2f} mm (lip vertices near the nose and cheeks follow "
                         f"the upper-face blendshapes), and the model's upper face stays "
                         f"{shift['model vs re-posed truth: upper-face error (mm)']:.2f} mm from them")
        out.append(sentence + ".")
    if sweep is not None and not sweep.empty:
        out.extend(sweep_findings(sweep))
    return out


def beyond_emotion_verdict(r: Mapping[str, Any], metric: str = "LVE") -> str:
    """Whether a model row decodes frame-level content beyond ``E_e``'s emotion: its paired
    difference to the per-emotion mean face of ``E_e``'s predicted emotion (``vs_predicted``) by
    its 95 % CI. Returns "yes" (CI below 0), "no: worse" (CI above 0) or "not shown" (CI spans 0)."""
    verdict = stats.verdict_from_ci(r[f"{metric}_vs_predicted_low"], r[f"{metric}_vs_predicted_high"])
    return {"less": "yes", "greater": "no: worse", "undecided": "not shown"}[verdict]


def beyond_emotion_findings(errors: pd.DataFrame, predicted: Mapping[str, Any]) -> list[str]:
    """Sentences on the non-oracle reference: the per-emotion mean face of ``E_e``'s predicted
    emotion (same ``E_e`` as the model's), and whether ``E_r`` (emotion-enhanced; ``errors`` indexed
    by encoder) beats it, i.e. decodes frame-level content beyond the emotion, by the paired CIs."""
    out = [f"Per-emotion mean face of E_e's predicted emotion (non-oracle: recognise the emotion, output its "
           f"average training face): " + ", ".join(f"{m} {metric_cell(predicted, m)} mm" for m in METRIC_NAMES) + "."]
    if "LVE_vs_predicted" not in errors.columns:
        return out
    if "eeg2face" in errors.index:
        r = errors.loc["eeg2face"]
        verdict = beyond_emotion_verdict(r, "LVE")
        conclusion = {"yes": "so E_r decodes frame-level lip content beyond E_e's emotion",
                      "no: worse": "so E_r does not even match emotion recognition plus the average face on the lips; "
                                   "no evidence that it decodes frame-level content beyond the emotion",
                      "not shown": "so this run shows no frame-level lip content beyond E_e's emotion"}[verdict]
        out.append("E_r (emotion-enhanced) against it: "
                   + "; ".join(_versus(r, m, "vs_predicted", "predicted-emotion mean face") for m in METRIC_NAMES)
                   + f"; {conclusion}.")
    beat = [ENCODER_LABELS[k] for k, r in errors.iterrows() if beyond_emotion_verdict(r) == "yes"]
    out.append("Encoders with a lower LVE than the predicted-emotion mean face (paired 95% CI below 0): "
               + (", ".join(beat) or "none") + ".")
    return out


def sweep_findings(sweep: pd.DataFrame) -> list[str]:
    """Sentences on the coupling sweep: content-only LVE per coupling beside the mean face and the
    ceiling, and the verdict at coupling 0 against the mean face and the per-emotion mean face."""
    out = []
    model_rows = sweep[sweep["mode"] == "content_only"].sort_values("coupling")
    enhanced = sweep[sweep["mode"] == "emotion_enhanced"].set_index("coupling")
    base = sweep[sweep["mode"] == "baseline"]
    mean_rows = base[base["method"] == MEAN_FACE].set_index("coupling")
    ceiling = base[base["method"] == DRIVE_CEILING].set_index("coupling")
    parts = []
    for _, r in model_rows.iterrows():
        c = r["coupling"]
        extra = f", ceiling {ceiling.loc[c, 'LVE']:.2f}" if c in ceiling.index else ""
        parts.append(f"{c:g}: {r['LVE']:.2f} mm (mean face {mean_rows.loc[c, 'LVE']:.2f}{extra})")
    out.append("Coupling sweep, E_r content-only LVE by coupling: " + "; ".join(parts) + ".")
    if "LVE_vs_predicted" in enhanced.columns:
        parts = [f"{c:g}: {r['LVE_vs_predicted']:+.2f} mm [{r['LVE_vs_predicted_low']:+.2f}, "
                 f"{r['LVE_vs_predicted_high']:+.2f}] ({beyond_emotion_verdict(r)})"
                 for c, r in enhanced.sort_index(ascending=False).iterrows() if not pd.isna(r["LVE_vs_predicted"])]
        out.append("Coupling sweep, E_r emotion-enhanced LVE minus the predicted-emotion mean face's (paired 95% CI; "
                   "frame-level content beyond the emotion?) by coupling: " + "; ".join(parts) + ".")
    if 0.0 in enhanced.index:
        z = enhanced.loc[0.0]
        out.append("With no coupling, E_r emotion-enhanced: "
                   + "; ".join(_versus(z, m, "vs_mean", "mean face") for m in ("LVE", "EVE")) + "; "
                   + "; ".join(_versus(z, m, "vs_oracle", "per-emotion mean face") for m in ("LVE", "EVE")) + ".")
        if "LVE_vs_predicted" in enhanced.columns and not pd.isna(z["LVE_vs_predicted"]):
            out.append("With no coupling, E_r emotion-enhanced against the per-emotion mean face of E_e's predicted "
                       "emotion: " + "; ".join(_versus(z, m, "vs_predicted", "predicted-emotion mean face")
                                                for m in METRIC_NAMES)
                       + f" (frame-level lip content beyond the emotion: {beyond_emotion_verdict(z)}).")
        if 0.0 in ceiling.index:
            oracle = base[base["method"] == PER_EMOTION_MEAN_FACE].set_index("coupling").loc[0.0]
            c0 = ceiling.loc[0.0, "LVE"]
            out.append(f"At coupling 0 the ridge ceiling on the EMG drive (+ true emotion) gives LVE {c0:.2f} mm, "
                       f"{100 * (c0 / oracle['LVE'] - 1):+.0f}% vs the per-emotion mean face's {oracle['LVE']:.2f} mm "
                       f"(the face-independent EMG adds next to nothing to knowing the emotion when this is near 0).")
    return out


def content_verdict(result: Table41Result, sweep: pd.DataFrame | None = None) -> str:
    """The chapter's answer (chapter issue, acceptance): does EEG2Face decode frame-level content
    beyond the emotion in this construction? Read from E_r's paired LVE difference to the
    per-emotion mean face of E_e's predicted emotion at the main coupling and, when the sweep ran,
    at coupling 0, beside the ridge control on the EEG itself (a linear decoder of the EEG's 20-45 Hz
    power that knows the true emotion, against the oracle per-emotion mean face)."""
    errors = result.errors[result.errors["mode"] == "emotion_enhanced"].set_index("encoder")
    if "eeg2face" not in errors.index or "LVE_vs_predicted" not in errors.columns:
        return "E_r was not run against the predicted-emotion mean face; no verdict."
    r = errors.loc["eeg2face"]
    main = beyond_emotion_verdict(r)
    parts = [f"E_r (emotion-enhanced, {len(r['seeds'])} seeds) minus the predicted-emotion mean face, LVE: "
             f"{r['LVE_vs_predicted']:+.3f} mm [{r['LVE_vs_predicted_low']:+.3f}, {r['LVE_vs_predicted_high']:+.3f}] "
             f"at the main coupling"]
    zero_verdict = None
    if sweep is not None and not sweep.empty:
        enhanced = sweep[sweep["mode"] == "emotion_enhanced"].set_index("coupling")
        if 0.0 in enhanced.index:
            z = enhanced.loc[0.0]
            zero_verdict = beyond_emotion_verdict(z)
            parts.append(f"{z['LVE_vs_predicted']:+.3f} mm [{z['LVE_vs_predicted_low']:+.3f}, "
                         f"{z['LVE_vs_predicted_high']:+.3f}] at coupling 0")
        ridge = sweep.drop_duplicates("coupling").set_index("coupling")
        if "eeg_ridge_vs_oracle_LVE" in ridge.columns:
            parts.append("the ridge control on the EEG minus the oracle per-emotion mean face: " + "; ".join(
                f"coupling {c:g}: {q['eeg_ridge_vs_oracle_LVE']:+.3f} mm [{q['eeg_ridge_vs_oracle_LVE_low']:+.3f}, "
                f"{q['eeg_ridge_vs_oracle_LVE_high']:+.3f}]" for c, q in ridge.sort_index(ascending=False).iterrows()))
    answer = {"yes": "YES: E_r decodes frame-level lip content beyond the emotion in this construction",
              "no: worse": "NO: E_r is worse than recognising the emotion and outputting its average face",
              "not shown": "NOT SHOWN: E_r cannot be told from recognising the emotion and outputting its average "
                           "face"}[main]
    if main == "yes" and zero_verdict == "yes":
        answer += " (but it also 'beats' that reference at coupling 0, where the EEG holds no frame content: suspect)"
    elif main == "yes" and zero_verdict is not None:
        answer += ", and not at coupling 0, where the EEG holds no frame content (the negative control holds)"
    return f"Verdict: {answer}. " + "; ".join(parts) + " (paired 95% CIs over test trials x background segments x seeds)."


def record_headline_numbers(results: reporting.ResultsRecorder, table: Table41Result, data: ChapterData,
                            sweep: pd.DataFrame | None = None) -> str:
    """Record the chapter's headline numbers into ``03_eeg2face.results.json`` (foundation issue item
    3; keys of the chapter issue) and return them as Markdown bullets for "What we learned".

    Per encoder (emotion-enhanced inference, Table 4.1): ``<encoder>.lve_mm`` / ``.mce_mm`` /
    ``.eve_mm`` with the thesis's value beside it; the references ``reference.mean_face.lve_mm``,
    ``reference.emotion_mean_oracle.lve_mm``, ``reference.emotion_mean_predicted.lve_mm``; the paired
    difference ``diff.eeg2face_vs_emotion_mean.lve_mm`` (EEG2Face minus the per-emotion mean face of
    ``E_e``'s predicted emotion: frame-level content beyond the emotion when its CI is below 0);
    ``coupling0.eeg2face.lve_mm`` from the sweep; ``ee.accuracy`` and ``ee.trial_accuracy`` (%);
    ``diff.<encoder>_vs_eeg2face.lve_mm`` (the ranking, paired); ``selection.frame_minus_positional.lve_mm``
    (E_r's two inputs on validation trials); ``control.eeg_ridge_vs_emotion_mean.coupling<c>.lve_mm`` (the
    EEG ridge control, per sweep coupling). Every CI resamples test trials x background segments x
    training seeds (:func:`affectlab.stats.crossed_bootstrap_mean`); ``n`` is test frames per seed.
    """
    from affectlab.chapters.eeg2face.experiments import ranking_frame

    errors = table.errors[table.errors["mode"] == "emotion_enhanced"].set_index("encoder")
    base = table.baselines.set_index("method")
    data_seed = [int(data.info["seed"])]
    all_seeds = list(table.seeds) or data_seed

    def mm(key: str, row: Mapping[str, Any], column: str, paper: float | None = None,
           seeds: list[int] | None = None) -> str:
        # a reference without training seeds (mean faces, ridges) depends on the data seed only
        used = seeds if seeds is not None else (list(row["seeds"]) if len(row.get("seeds", [])) else data_seed)
        return results.record(key, float(row[column]), ci=(row[f"{column}_low"], row[f"{column}_high"]), unit="mm",
                              n=int(row["frames"]) if "frames" in row else None, seeds=used, paper=paper,
                              digits=2)

    lines = []
    for encoder, row in errors.iterrows():
        cells = [f"{m} {mm(f'{encoder}.{m.lower()}_mm', row, m, PAPER_TABLE_4_1[encoder][i])}"
                 for i, m in enumerate(METRIC_NAMES)]
        lines.append(f"{ENCODER_LABELS[encoder]}, emotion-enhanced: " + ", ".join(cells) + ".")
    references = (("mean_face", MEAN_FACE, "mean face"),
                  ("emotion_mean_oracle", PER_EMOTION_MEAN_FACE, "per-emotion mean face (true emotion, oracle)"),
                  ("emotion_mean_predicted", PREDICTED_EMOTION_MEAN_FACE,
                   "per-emotion mean face of E_e's predicted emotion"))
    cells = [f"{label} {mm(f'reference.{key}.lve_mm', base.loc[method], 'LVE')}"
             for key, method, label in references if method in base.index]
    lines.append("Reference predictors, LVE: " + "; ".join(cells) + ".")
    if "eeg2face" in errors.index and "LVE_vs_predicted" in errors.columns:
        row = errors.loc["eeg2face"]
        text = results.record("diff.eeg2face_vs_emotion_mean.lve_mm", float(row["LVE_vs_predicted"]),
                              ci=(row["LVE_vs_predicted_low"], row["LVE_vs_predicted_high"]), unit="mm",
                              n=int(row["frames"]), seeds=list(row["seeds"]), digits=2)
        lines.append(f"EEG2Face minus the predicted-emotion mean face, LVE: {text} (paired; 95% CI over test "
                     f"trials, background segments and seeds): frame-level lip content beyond E_e's emotion: "
                     f"{beyond_emotion_verdict(row)}.")
    if "eeg2face" in table.seed_pipelines and len(table.seed_pipelines) > 1:
        ranking = ranking_frame(table, table.n_bootstrap, 0)
        cells = []
        for _, r in ranking.iterrows():
            cells.append(f"{ENCODER_LABELS[r['encoder']]} {results.record(f'diff.{r.encoder}_vs_eeg2face.lve_mm', float(r['LVE_diff']), ci=(r['LVE_diff_low'], r['LVE_diff_high']), unit='mm', n=int(errors.loc['eeg2face', 'frames']), seeds=all_seeds, digits=2)}")
        lines.append("Ranking, LVE of each baseline minus E_r's (paired; positive = the baseline is worse, as the thesis "
                     "claims): " + "; ".join(cells) + ".")
    if "difference" in table.selection:
        d = table.selection["difference"]
        text = results.record("selection.frame_minus_positional.lve_mm", d.value, ci=d.ci, unit="mm",
                              n=int(table.selection["rows"]["frames"].iloc[0]),
                              seeds=list(table.selection.get("seeds", all_seeds)), digits=3,
                              source="validation trials (held-out training trials)")
        lines.append(f"E_r's input, chosen on validation trials: '{table.selection['chosen']}' (LVE of the thesis's "
                     f"frame pairing minus the positional window: {text}).")
    if sweep is not None and not sweep.empty:
        zero = sweep[(sweep["coupling"] == 0.0) & (sweep["mode"] == "emotion_enhanced")]
        if not zero.empty:
            lines.append("With no EMG-to-face coupling, EEG2Face (emotion-enhanced) LVE "
                         f"{mm('coupling0.eeg2face.lve_mm', zero.iloc[0], 'LVE')}.")
        ridge = sweep.drop_duplicates("coupling")
        if "eeg_ridge_vs_oracle_LVE" in ridge.columns:
            cells = [f"coupling {r['coupling']:g}: " + results.record(
                f"control.eeg_ridge_vs_emotion_mean.coupling{r['coupling']:g}.lve_mm", float(r["eeg_ridge_vs_oracle_LVE"]),
                ci=(r["eeg_ridge_vs_oracle_LVE_low"], r["eeg_ridge_vs_oracle_LVE_high"]), unit="mm", digits=2,
                n=int(r["frames"]) if "frames" in r and not pd.isna(r["frames"]) else None, seeds=data_seed)
                for _, r in ridge.iterrows()]
            lines.append("Ridge control on the EEG's 20-45 Hz envelope (+ true emotion) minus the oracle per-emotion mean "
                         "face, LVE: " + "; ".join(cells) + " (below 0: frame-level content is in the EEG).")
    e = table.emotion
    seeds = list(e.get("seeds") or all_seeds)
    accuracy = results.record("ee.accuracy", 100 * e["accuracy"], ci=(100 * e["accuracy_low"],
                              100 * e["accuracy_high"]), unit="%", n=int(e["windows"]), seeds=seeds)
    sentence = f"E_e recognises the five emotions in {accuracy} of test windows (chance {100 * e['chance']:.0f} %)"
    if "trial_accuracy" in e:
        votes = results.record("ee.trial_accuracy", 100 * e["trial_accuracy"],
                               ci=(100 * e["trial_accuracy_low"], 100 * e["trial_accuracy_high"]), unit="%",
                               n=int(e["trials"]), seeds=seeds)
        sentence += f", and {votes} of test trials by majority vote of their windows"
    lines.append(sentence + ".")
    lines.append(content_verdict(table, sweep))
    return "\n".join(f"- {line}" for line in lines)

