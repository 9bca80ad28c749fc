"""Chapter 02 report: the text the notebook shows around its tables, every number in it recorded
through :class:`affectlab.reporting.ResultsRecorder` (``02_dcnn_hierarchy.results.json``), and the
deviations from paper 001 (T, Atas, Goldstein, Vilenchik & Sofer).

Result keys (lower-case dotted): ``<net>.private_test.accuracy`` (Table 1, %),
``<net>.private_test.minus_majority`` / ``.minus_untrained`` (paired differences, percentage points),
``<net>.<set>.identity_silhouette.<early|late>``, ``<net>.<set>.expression_silhouette.<early|late>``
(Fig. 4: "late" is the output layer), ``<net>.<set>.va_r2.<early|late>`` (cross-validated V/A R^2
from 10 PCs; "late" is the penultimate layer, Study 4's), ``<net>.<set>.va_partial_r2.<early|late>``
(partial R^2 of V/A after the category, same layers; null on CK+, whose V/A is the label's
circumplex point), ``nn1|nn2.training.steps`` and ``.extrapolated_2x`` (learning curve),
``minixception.ckplus.present_only.accuracy`` (a clean test), ``<net>.kdef_like.r_pc1_valence`` /
``r_pc2_arousal`` (Study 4), ``<net>.kdef_like.accuracy`` and
``pixels.disfa_like.<identity|expression>_silhouette.pca10`` (Study 2). Networks: ``nn1``, ``nn2``,
``nn3``, ``minixception``; sets: ``ckplus``, ``kdef_like``, ``disfa_like`` (generated), ``kdef``,
``disfa`` (real).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from affectlab.config import RunConfig
from affectlab.probing import silhouette_ci_by_subject
from affectlab.reporting import ResultsRecorder, deviations_table

from .config import FER2013_ORIGINAL_SIZES, MINIXCEPTION_ROLES, PAPER_TABLE1, ROLES, STUDENT_MIN_ACCURACY, ChapterConfig
from .data import FERData, ProbeSet, last_rows_per_subject_expression
from .experiments import EmbeddingStudy, PCStudy
from .layers import LayerCodes
from .networks import ProbedNetwork
from .students import StudentStudy
from .training import amp_probe_of, training_steps

#: Issue 15's floors for the quick profile's NN1 / NN2 on PrivateTest (%).
ACCURACY_FLOORS: dict[str, float] = {"NN1": 70.0, "NN2": 50.0}

#: Probing-set keys -> the set names used in result keys.
SET_KEYS: dict[str, str] = {"ckplus": "ckplus", "kdef_gen": "kdef_like", "disfa_gen": "disfa_like", "kdef": "kdef",
                            "disfa": "disfa"}
PAPER_COLUMN = "paper's accuracy (%)"


def network_key(name: str) -> str:
    """A network's name in result keys: "NN1" -> "nn1", "mini-Xception" -> "minixception"."""
    key = "".join(c for c in name.lower() if c.isalnum() or c == "_")
    if not key:
        raise ValueError(f"network name {name!r} gives an empty result key")
    return key


def _signed(value: float, low: float, high: float) -> str:
    """``"+3.1 pp [+1.0, +5.2]"``: a difference in percentage points with its interval."""
    return f"{value:+.1f} pp [{low:+.1f}, {high:+.1f}]"


def _paper_number(text: str) -> float | str:
    """The paper's Table 1 cell as a number when it is one ("82.32"), else the text ("74.14 / 65.94")."""
    try:
        return float(text)
    except ValueError:
        return text


def recipe_text(cfg: ChapterConfig) -> str:
    """The training recipe of NN1/NN2 in words (:func:`~.training.sharma_train_config`)."""
    if cfg.recipe == "fast":
        length = (f"wall-clock budgets of {cfg.budget_s['NN1']:.0f} s (NN1) and {cfg.budget_s['NN2']:.0f} s (NN2)"
                  if cfg.budget_s else f"{cfg.epochs} epoch(s)")
        return ("the project's fast FER recipe (affectlab.train.fer_recipe: AdamW lr 2e-3, weight decay 0.01, "
                f"one-cycle schedule laid over the run, label smoothing 0.05, flip + 4-px crop, channels-last, bf16 "
                f"autocast only where a probe measures it faster), batch {cfg.batch_size}, {length}")
    return (f"{'Adam' if cfg.weight_decay == 0 else 'AdamW'} lr {cfg.lr:g}"
            + (f", weight decay {cfg.weight_decay:g}" if cfg.weight_decay else "")
            + f", cosine schedule, batch {cfg.batch_size}, {cfg.epochs} epochs, "
            + ("crop+flip augmentation" if cfg.augment else "no augmentation"))


def training_summary(cfg: ChapterConfig, fer: FERData) -> str:
    """One sentence on how NN1 and NN2 are trained in this run (recipe, length, faces drawn from,
    validation)."""
    every = f"every {cfg.steps_per_epoch} steps" if cfg.steps_per_epoch else "after every epoch"
    return (f"Training here: {recipe_text(cfg)}; NN1 draws from {len(fer.train['NN1']):,} and NN2 from "
            f"{len(fer.train['NN2']):,} training faces; validation {every} on {len(fer.val['NN1'])} (NN1) / "
            f"{len(fer.val['NN2'])} (NN2) PublicTest faces, whose best epoch is kept.")


def _steps(nets: Mapping[str, ProbedNetwork] | None, cfg: ChapterConfig, fer: FERData, variant: str) -> int:
    """Optimiser steps NN1/NN2 took (from their fit when given), else the plan."""
    fit_result = nets[variant].fit if nets is not None and variant in nets else None
    return training_steps(cfg, len(fer.train[variant]), fit_result)


def learning_curve_extrapolation(history: pd.DataFrame, batch_size: int, factor: float = 2.0
                                 ) -> tuple[float, float, float]:
    """What a longer run might give, read off the validation curve: least squares of validation
    accuracy (%) on log(faces seen) over the epochs after the first quarter of the run (the
    warm-up), evaluated at ``factor`` times the faces seen. Returns (accuracy at the end of the
    run's fitted line, extrapolated accuracy, slope in points per doubling of faces seen); NaNs
    with fewer than 3 usable epochs. A rough guide, not a prediction: a longer run also anneals
    its learning rate later (one-cycle), and curves of this kind flatten."""
    if "val_accuracy" not in history or "steps" not in history or len(history) < 3:
        return float("nan"), float("nan"), float("nan")
    seen = history["steps"].cumsum().to_numpy(float) * batch_size
    acc = 100 * history["val_accuracy"].to_numpy(float)
    use = np.arange(len(seen)) >= len(seen) // 4
    use &= np.isfinite(acc) & (seen > 0)
    if use.sum() < 3:
        return float("nan"), float("nan"), float("nan")
    slope, intercept = np.polyfit(np.log2(seen[use]), acc[use], 1)
    end = float(intercept + slope * np.log2(seen[-1]))
    return end, float(intercept + slope * np.log2(factor * seen[-1])), float(slope)


def learning_curve_findings(results: ResultsRecorder, nets: Mapping[str, ProbedNetwork], cfg: ChapterConfig,
                            fer: FERData) -> str:
    """NN1/NN2's training in numbers (Markdown bullets): steps and faces seen, passes over the
    data, the best validation epoch, the trainer's bf16-vs-fp32 probe, and the extrapolated gain of
    twice the training (:func:`learning_curve_extrapolation`); steps and the extrapolation are
    recorded (``nn1.training.steps``, ``nn1.training.extrapolated_2x``)."""
    lines = []
    for variant in [v for v in ("NN1", "NN2") if v in nets and nets[v].fit is not None]:
        fit_result = nets[variant].fit
        history = fit_result.history
        steps = training_steps(cfg, len(fer.train[variant]), fit_result)
        seen = steps * cfg.batch_size
        key = network_key(variant)
        results.record(f"{key}.training.steps", steps, n=len(fer.train[variant]), source=fer.source, digits=0)
        best = float(fit_result.best_value) * 100 if fit_result.best_value is not None else float("nan")
        seconds = float(history["seconds"].sum()) if "seconds" in history else float("nan")
        probe = amp_probe_of(fit_result)
        if probe and probe.get("speedup"):
            amp = (f"bf16 autocast {'used' if probe['use_bf16'] else 'not used'} (the trainer's probe: "
                   f"{probe['fp32_s']:.2f} s per fp32 training step of "
                   f"{(probe.get('input_shape') or [cfg.batch_size])[0]} faces, {probe['bf16_s']:.2f} s in bf16, "
                   f"x{probe['speedup']:.2f})")
        elif probe:
            amp = f"fp32 ({probe.get('reason', 'no bf16 probe')})"
        else:
            amp = "precision not recorded (a run loaded from before the probe was stored)"
        end, longer, slope = learning_curve_extrapolation(history, cfg.batch_size)
        said = results.record(f"{key}.training.extrapolated_2x", longer, unit="%", n=len(fer.val[variant]),
                              source=f"{fer.source}: PublicTest validation curve", digits=1)
        lines.append(
            f"- **{variant}**: {steps:,} steps, {seen:,} faces seen ({seen / len(fer.train[variant]):.2f} passes over "
            f"its {len(fer.train[variant]):,} training faces) in {seconds / 60:.1f} min "
            f"({seen / seconds if seconds > 0 else float('nan'):.0f} faces/s including validation), {amp}; best "
            f"validation accuracy {best:.1f} % at epoch {fit_result.best_epoch} of {len(history)}. "
            + (f"The validation curve rises {slope:+.1f} points per doubling of the faces seen after the warm-up; "
               f"twice the training would give about {said} on this line (a rough guide: curves flatten, and "
               "the paper's numbers come from training to convergence)." if np.isfinite(slope) else
               "Too few validations to read a trend off the curve."))
    return "\n".join(lines)


def table1_findings(results: ResultsRecorder, table1: pd.DataFrame, verdicts: pd.DataFrame, fer: FERData,
                    cfg: ChapterConfig, nets: Mapping[str, ProbedNetwork] | None = None) -> str:
    """Table 1 in words (Markdown bullets): each network's PrivateTest accuracy beside the paper's
    and the baselines, whether NN1/NN2 learned (the paired differences of
    :func:`~.verdicts.learning_verdicts`), and the gap to the paper. Every number is recorded."""
    learned = verdicts.attrs["learned"]
    acc = {}
    for name in table1.index:
        row = table1.loc[name]
        if not np.isfinite(row["accuracy here (%)"]):
            continue
        acc[name] = results.record(
            f"{network_key(name)}.private_test.accuracy", row["accuracy here (%)"],
            ci=(row["95% CI low"], row["95% CI high"]), unit="%", n=int(row["test faces"]),
            source=f"{fer.source}: {row['test split']}", paper=_paper_number(row[PAPER_COLUMN]), digits=1)
    lines = []
    for name in [n for n in ("NN1", "NN2") if n in learned]:
        row, diffs = table1.loc[name], verdicts.loc[name]
        said = []
        for i, what in enumerate(("minus_majority", "minus_untrained")):
            d = diffs.iloc[i]
            results.record(f"{network_key(name)}.private_test.{what}", d["accuracy difference (pp)"],
                           ci=(d["95% CI low"], d["95% CI high"]), unit="pp", n=int(d["test faces"]),
                           source=f"{fer.source}: {row['test split']}")
            said.append(_signed(d["accuracy difference (pp)"], d["95% CI low"], d["95% CI high"]))
        lines.append(
            f"- **{name}** scores {acc[name]} on {row['test faces']} faces (paper: {row[PAPER_COLUMN]} %); "
            f"the majority class ({row['majority class']}) gives {row['majority class (%)']:.1f} %, uniform chance "
            f"{row['chance, uniform (%)']:.1f} %. Against the majority class: {said[0]}; against "
            f"{diffs.index[1]}: {said[1]}. "
            + ("It **learned**: both intervals lie above zero." if learned[name] else
               f"It does **not** beat {' or '.join(diffs.index[(diffs['above it'] != 'yes').to_numpy()])} "
               "(interval not above zero): every later result for it describes an untrained-equivalent network.")
            + (f" The quick profile's floor ({ACCURACY_FLOORS[name]:.0f} %) is "
               + ("**met**." if row["accuracy here (%)"] >= ACCURACY_FLOORS[name] else
                  f"**not met** (short by {ACCURACY_FLOORS[name] - row['accuracy here (%)']:.1f} points).")
               if cfg.profile == "quick" and fer.real else ""))
    if "NN3" in acc:
        lines.append(f"- **NN3** (untrained) scores {acc['NN3']} (paper: {PAPER_TABLE1['NN3']} %).")
    if "mini-Xception" in acc:
        row = table1.loc["mini-Xception"]
        lines.append(
            f"- **mini-Xception** (published weights) scores {acc['mini-Xception']} on {row['test split']}"
            + ((f"; its authors report about 66 %. This is **not a clean test**: the released checkpoint "
                "(fer2013_mini_XCEPTION.102-0.66) was trained on the first 80 % of fer2013.csv, which is exactly "
                "the Training split, and kept by validation loss on the last 20 %, PublicTest + PrivateTest "
                "(face_classification's train_emotion_classifier.py, validation_split 0.2): PrivateTest chose its "
                "epoch. Its clean test is CK+ below.") if fer.real else
               ": the generated stand-in, far from the real FER2013 photographs it was trained on."))
    gaps = {n: float(PAPER_TABLE1[n]) - table1.loc[n, "accuracy here (%)"] for n in ("NN1", "NN2") if n in acc}
    if cfg.profile != "paper" and gaps:
        lines.append(f"- NN1 and NN2 are trained for {_steps(nets, cfg, fer, 'NN1'):,} and "
                     f"{_steps(nets, cfg, fer, 'NN2'):,} steps here, not to convergence as in the paper (see the "
                     "deviations and the learning curves): "
                     + ", ".join(f"{n} is {g:.1f} points {'below' if g > 0 else 'above'} the paper's number"
                                 for n, g in gaps.items())
                     + ". mini-Xception shows what a fully trained FER2013 network looks like in the same analyses.")
    return "\n".join(lines)


def record_headline_numbers(results: ResultsRecorder, profiles: Mapping[tuple[str, str], pd.DataFrame],
                            roles: Mapping[str, Mapping[str, str]], probes: Mapping[str, ProbeSet]
                            ) -> dict[str, str]:
    """Record, for every profiled (network, probing set), the identity and expression silhouettes of
    the early and output layers and the V/A R^2 and V/A partial R^2 after category of the early and
    penultimate layers, each with its 95 % subject-bootstrap CI (Fig. 4, Study 4). Returns the
    formatted text by result key."""
    said = {}
    for (network, key), table in profiles.items():
        probe = probes[key]
        prefix = f"{network_key(network)}.{SET_KEYS.get(key, key)}"
        common = dict(n=len(probe.faces), source=probe.faces.source, digits=2)
        for stage, role in (("early", "early"), ("late", "final")):
            row = table.loc[roles[network][role]]
            for target in ("identity", "expression"):
                col = f"{target} silhouette"
                said[f"{prefix}.{target}_silhouette.{stage}"] = results.record(
                    f"{prefix}.{target}_silhouette.{stage}", row[col], ci=(row[f"{col} low"], row[f"{col} high"]),
                    **common)
        for stage, role in (("early", "early"), ("late", "penultimate")):
            row = table.loc[roles[network][role]]
            said[f"{prefix}.va_r2.{stage}"] = results.record(
                f"{prefix}.va_r2.{stage}", row["V/A R2 (CV by subject)"], ci=(row["V/A R2 low"], row["V/A R2 high"]),
                **common)
            if "V/A partial R2 after category" in row:
                said[f"{prefix}.va_partial_r2.{stage}"] = results.record(
                    f"{prefix}.va_partial_r2.{stage}", row["V/A partial R2 after category"],
                    ci=(row["V/A partial R2 low"], row["V/A partial R2 high"]), **common)
    return said


def what_we_learned(results: ResultsRecorder, profiles: Mapping[tuple[str, str], pd.DataFrame],
                    roles: Mapping[str, Mapping[str, str]], probes: Mapping[str, ProbeSet],
                    study2: EmbeddingStudy, study4: Mapping[str, PCStudy], verdicts: pd.DataFrame) -> str:
    """The chapter's findings (Markdown bullets): identity and expression silhouettes from the early
    to the output layer (NN2, mini-Xception), Study 4's correlations, Table 1's verdicts, accuracy
    on the generated faces and Study 2's pixel silhouettes; every number recorded."""
    said = record_headline_numbers(results, profiles, roles, probes)
    nets = {network for network, _ in profiles}
    lines = []
    for key in [k for k in ("ckplus", "kdef_gen", "disfa_gen") if k in probes]:
        for net in [n for n in ("NN2", "mini-Xception") if n in nets]:
            p = f"{network_key(net)}.{SET_KEYS[key]}"
            lines.append(
                f"- **{net}, {probes[key].title}**: identity silhouette {said[f'{p}.identity_silhouette.early']} "
                f"(early) -> {said[f'{p}.identity_silhouette.late']} (output); expression silhouette "
                f"{said[f'{p}.expression_silhouette.early']} -> {said[f'{p}.expression_silhouette.late']}.")
    kdef = probes.get("kdef_gen")
    r4 = []
    for n, s in study4.items():
        cells = []
        for comp, target in (("PC1", "valence"), ("PC2", "arousal")):
            reg = s.regression.loc[(comp, target)]
            cells.append(results.record(f"{network_key(n)}.{SET_KEYS.get(s.dataset, s.dataset)}.r_{comp.lower()}_{target}",
                                        reg["r"], ci=(reg["r low"], reg["r high"]), n=int(reg["n"]),
                                        source=kdef.faces.source if kdef is not None else "", digits=2))
        r4.append(f"{n} r(PC1, valence) = {cells[0]}, r(PC2, arousal) = {cells[1]}")
    cis = {s.regression.attrs.get("ci", "Fisher z over faces") for s in study4.values()}
    lines.append(f"- Study 4 on KDEF-like faces (signs aligned, 95 % intervals: {'; '.join(sorted(cis))}): "
                 + "; ".join(r4) + ".")
    learned = verdicts.attrs["learned"]
    for name in [n for n in ("NN1", "NN2") if n in learned]:
        d = verdicts.loc[name].iloc[1]
        lines.append(f"- Table 1 verdict: {name} {'learned' if learned[name] else 'did NOT learn'} "
                     f"({name} minus its untrained twin: "
                     f"{_signed(d['accuracy difference (pp)'], d['95% CI low'], d['95% CI high'])}).")
    accuracies = []
    for n, st in study4.items():
        if n == "NN3":
            continue
        value = results.record(f"{network_key(n)}.{SET_KEYS.get(st.dataset, st.dataset)}.accuracy",
                               100 * np.mean(st.predicted == st.labels), unit="%", n=len(st.labels),
                               source=kdef.faces.source if kdef is not None else "", digits=0)
        accuracies.append(f"{n} {value}")
    lines.append("- Accuracy on the KDEF-like generated faces (7 expressions): " + "; ".join(accuracies)
                 + ". The FER2013-trained networks meet rendered faces here for the first time, so a low score"
                 " means their later layers may not read these faces the way they read photographs.")
    pixels = study2.table.loc["pixels, PCA (10 PCs)"]
    set_key = SET_KEYS.get(study2.dataset, study2.dataset)
    for target in ("identity", "expression"):
        results.record(f"pixels.{set_key}.{target}_silhouette.pca10", pixels[f"{target} silhouette"],
                       ci=(pixels[f"{target} silhouette low"], pixels[f"{target} silhouette high"]),
                       n=len(probes[study2.dataset].faces), source=probes[study2.dataset].faces.source)
    sil = {target: f"{pixels[f'{target} silhouette']:.2f}" for target in ("identity", "expression")}
    lines.append(f"- Study 2 on {probes[study2.dataset].title}: identity silhouette of the raw pixels on 10 PCs "
                 f"{sil['identity']} against an expression silhouette of {sil['expression']}.")
    return "\n".join(lines)


def _apex_silhouettes(codes: LayerCodes, layer: str, probe: ProbeSet, cfg: ChapterConfig, seed: int
                      ) -> tuple[tuple[float, float, float], tuple[float, float, float], int] | None:
    """Identity and expression silhouettes (value, CI low, CI high) of ``layer`` on one frame per
    (subject, expression) pair (:func:`~.data.last_rows_per_subject_expression`; the PCs of all
    frames, rows subset), and the number of faces kept; None when every pair has one frame."""
    identity, labels = probe.faces.identity.numpy(), probe.faces.labels.numpy()
    rows = last_rows_per_subject_expression(identity, labels, 1)
    rows = rows[labels[rows] >= 0]
    if len(rows) == len(identity) or len(np.unique(identity[rows])) < 2 or len(np.unique(labels[rows])) < 2:
        return None
    x = {layer: codes.pcs[layer][rows, : cfg.n_pcs]}
    kwargs = dict(n_components=cfg.n_pcs, n_resamples=cfg.bootstrap_resamples, seed=seed)
    out = []
    for target in (identity[rows], labels[rows]):
        t = silhouette_ci_by_subject(x, target, identity[rows], **kwargs).loc[layer]
        out.append((float(t["silhouette"]), float(t["ci_low"]), float(t["ci_high"])))
    return out[0], out[1], len(rows)


def identity_findings(results: ResultsRecorder, profiles: Mapping[tuple[str, str], pd.DataFrame],
                      roles: Mapping[str, Mapping[str, str]], probes: Mapping[str, ProbeSet],
                      study2s: Mapping[str, EmbeddingStudy],
                      codes: Mapping[tuple[str, str], LayerCodes] | None = None, cfg: ChapterConfig | None = None,
                      seed: int = 0) -> str:
    """Does identity dominate (Study 2-3, "identity first")? Per probing set, real CK+ beside the
    generated sets (Markdown bullets): the raw pixels' identity and expression silhouettes on 10 PCs
    (recorded as ``pixels.<set>.<identity|expression>_silhouette.pca10``), and per network the early
    layer's identity silhouette against its expression silhouette with a verdict
    (:func:`~.verdicts.layer_claim_verdict`), with the number of clusters each silhouette separates.
    With ``codes`` and ``cfg``, a real posed set with several frames per (subject, expression) (CK+:
    the last three frames of each sequence, near-copies) is also scored on one frame per pair, so
    near-duplicate frames cannot make a person's faces cluster: the control recorded as
    ``<net>.<set>.identity_silhouette.early_one_frame``. Ends with what the real faces say about the
    paper's claim (from the one-frame control when there is one)."""
    from .verdicts import layer_claim_verdict

    lines, early_real, early_generated = [], [], []
    controlled = False
    for key in [k for k in ("ckplus", "kdef_gen", "disfa_gen", "kdef", "disfa") if k in probes]:
        probe = probes[key]
        set_key = SET_KEYS.get(key, key)
        n_expr = len(np.unique(probe.faces.labels.numpy()[probe.faces.labels.numpy() >= 0]))
        head = (f"- **{probe.title}** ({'real' if not probe.generated else 'generated'}: {len(probe.faces)} faces, "
                f"identity = {probe.n_subjects} clusters of about {len(probe.faces) / max(probe.n_subjects, 1):.0f} "
                f"faces, expression = {n_expr} clusters of about {len(probe.faces) / max(n_expr, 1):.0f}): ")
        parts = []
        if key in study2s:
            pixels = study2s[key].table.loc["pixels, PCA (10 PCs)"]
            cells = {}
            for target in ("identity", "expression"):
                cells[target] = results.record(
                    f"pixels.{set_key}.{target}_silhouette.pca10", pixels[f"{target} silhouette"],
                    ci=(pixels[f"{target} silhouette low"], pixels[f"{target} silhouette high"]),
                    n=len(probe.faces), source=probe.faces.source, digits=2)
            parts.append(f"pixels (10 PCs) identity {cells['identity']} vs expression {cells['expression']}")
        for (network, dataset), table in profiles.items():
            if dataset != key:
                continue
            row = table.loc[roles[network]["early"]]
            ident = tuple(float(row[f"identity silhouette{c}"]) for c in ("", " low", " high"))
            expr = tuple(float(row[f"expression silhouette{c}"]) for c in ("", " low", " high"))
            verdict = layer_claim_verdict(ident, expr)
            text = (f"{network} early layer identity {ident[0]:.2f} [{ident[1]:.2f}, {ident[2]:.2f}] vs "
                    f"expression {expr[0]:.2f} [{expr[1]:.2f}, {expr[2]:.2f}] (identity dominates: {verdict})")
            apex = (_apex_silhouettes(codes[(network, key)], roles[network]["early"], probe, cfg, seed)
                    if codes is not None and cfg is not None and not probe.generated and (network, key) in codes
                    else None)
            if apex is not None:
                a_id, a_ex, n_apex = apex
                results.record(f"{network_key(network)}.{set_key}.identity_silhouette.early_one_frame", a_id[0],
                               ci=a_id[1:], n=n_apex, source=probe.faces.source, digits=2)
                ident, verdict, controlled = a_id, layer_claim_verdict(a_id, a_ex), True
                text += (f"; one frame per sequence ({n_apex} faces): identity {a_id[0]:.2f} [{a_id[1]:.2f}, "
                         f"{a_id[2]:.2f}] vs expression {a_ex[0]:.2f} [{a_ex[1]:.2f}, {a_ex[2]:.2f}] (identity "
                         f"dominates: {verdict})")
            (early_generated if probe.generated else early_real).append((network, probe.title, ident, verdict))
            parts.append(text)
        lines.append(head + "; ".join(parts) + ".")
    if early_real:
        held = sum(v == "yes" for *_, v in early_real)
        mean_real = float(np.mean([i[0] for _, _, i, _ in early_real]))
        gen = [i[0] for _, _, i, _ in early_generated]
        mean_gen = f"{float(np.mean(gen)):.2f}" if gen else "n/a"
        real_sets = {title for _, title, _, _ in early_real}
        real_probes = [p for p in probes.values() if not p.generated and p.title in real_sets]
        sizes = "; ".join(f"{p.title}: {p.n_subjects} people with about {len(p.faces) / max(p.n_subjects, 1):.0f} "
                          "frames each" for p in real_probes)
        lines.append(
            f"- **What the real faces say.** On real faces"
            + (" (one frame per sequence, so near-copies of a frame cannot form a cluster)" if controlled else "")
            + f" identity dominates the early layer in {held} of "
            f"{len(early_real)} network-set pairs (mean early identity silhouette {mean_real:.2f}, against "
            f"{mean_gen} on the generated sets). The generated faces carry identity by construction (per-identity "
            "face shape, skin, brow and lip albedo, fixed across expressions), so their \"identity dominates\" is "
            f"planted, not found. The real set ({sizes}) is closer to the paper's setting (posed expressions of "
            "many people) but differs from its DISFA probe (12-27 people with hundreds of near-identical video "
            "frames each, which pile up into tight clusters): few frames per person, tight crops aligned by the "
            "dataset, strong posed expressions. "
            + ("Identity clusters are also found on these real faces, so the paper's claim survives here"
               + (", though more weakly than on the generated faces." if gen and mean_real < float(np.mean(gen))
                  else ".")
               if 2 * held >= len(early_real) and mean_real > 0 else
               "On these real faces a person's frames are not reliably closer to each other than to other "
               "people's: the paper's \"identity dominates\" does not carry over to this real set, and may "
               "depend on how many near-identical frames per person the probing set holds."))
    return "\n".join(lines)


def minixception_findings(results: ResultsRecorder, clean: Mapping[str, object] | None, probe: ProbeSet | None) -> str:
    """mini-Xception's clean test on CK+ (:func:`~.experiments.present_only_accuracy`), recorded as
    ``minixception.ckplus.present_only.accuracy``, or why there is none."""
    if clean is None or probe is None:
        return "mini-Xception is not available, so it has no clean test here."
    said = results.record("minixception.ckplus.present_only.accuracy", clean["value"],
                          ci=(clean["low"], clean["high"]), unit="%", n=int(clean["n"]), source=probe.faces.source,
                          digits=1)
    return (f"**mini-Xception on {probe.title}**, a set it never saw in training or selection: present-only accuracy "
            f"{said} on {clean['n']} faces of {clean['subjects']} people (classes {', '.join(clean['classes'])}; "
            "arg-max over these classes; 95 % interval resampling people). CK+'s posed, well-lit, frontal faces "
            "are easier than FER2013's, so this is a clean test but not of the same difficulty as PrivateTest.")


def caveats(cfg: ChapterConfig, fer: FERData, learned: Mapping[str, bool],
            nets: Mapping[str, ProbedNetwork] | None = None) -> str:
    """What to keep in mind when reading the findings: how little NN1/NN2 trained (outside the
    paper profile), which networks did not learn, and what the generated faces make easier."""
    said = []
    if cfg.profile != "paper":
        n1, n2 = _steps(nets, cfg, fer, "NN1"), _steps(nets, cfg, fer, "NN2")
        said.append(
            f"NN1 and NN2 were trained for {n1} and {n2} steps of {cfg.batch_size} faces "
            f"({n2 * cfg.batch_size:,} NN2 faces seen, {n2 * cfg.batch_size / len(fer.train['NN2']):.2f} passes over "
            "its training data), far short of the paper's training to convergence; mini-Xception, fully "
            "trained on FER2013, is the stronger test of the claims about trained networks.")
    not_learned = [n for n, ok in learned.items() if not ok]
    if not_learned:
        said.append(f"{' and '.join(not_learned)} did not beat its untrained twin and the majority class in Table 1: "
                    "its rows describe an untrained-equivalent network.")
    said.append("The generated faces have clean, planted factors: identity (face shape, skin, brows, lips) and "
                "expression (FACS action units) are independent by construction, which makes the check exact but "
                "easier than real photographs.")
    return "Read these numbers with the deviations below in mind. " + " ".join(said)


def student_findings(study: StudentStudy, n_subjects: int) -> str:
    """The students' comparison with B0 in words (Markdown), or why there is none."""
    if study.runs.empty:
        return ("**Skipped**: no finished NeuroGaze-Distill student runs were found under the runs directory "
                "(`AFFECTLAB_RUNS`, default `./runs`). Run chapter 01 (`notebooks/01_neurogaze_distill.py`) first "
                "with the same runs directory.")
    if "counts as trained" in study.runs:
        known = study.runs.dropna(subset=["test accuracy (%)"])
        if len(known):
            cells = ", ".join(f"{r['variant']} {r['test accuracy (%)']:.1f} %" for _, r in known.iterrows())
            strong = [r["variant"] for _, r in known.iterrows() if r["counts as trained"]]
            lead = (f"Chapter 01's FERPlus test accuracies: {cells}; "
                    + (f"{', '.join(strong)} reach {STUDENT_MIN_ACCURACY:.0f} % and count as trained networks for the "
                       "paper's claims" if strong else f"none reaches {STUDENT_MIN_ACCURACY:.0f} %, so none counts as "
                       "a trained network for the paper's claims") + ". ")
        else:
            lead = ("Chapter 01 recorded no test accuracy for these students (its results file is absent), so "
                    "whether they learned is not known here. ")
    else:
        lead = ""
    if study.comparison is None:
        if "B0" in study.networks:
            return lead + "Only the B0 (cross-entropy) student was found: there is no other student to compare with it."
        return lead + "No B0 (cross-entropy) student was found, so the students cannot be compared with it."
    lines = []
    for v in [v for v in ("B1", "B2", "B3", "Full") if v in study.comparison.index]:
        r = study.comparison.loc[v]
        lines.append(f"- **{v} vs B0**: penultimate V/A R^2 {r['R2 minus B0']:+.3f} [{r['R2 diff low']:+.3f}, "
                     f"{r['R2 diff high']:+.3f}] (clearer: {r['V/A clearer']}); half-max depth "
                     f"{r['depth minus B0']:+.2f} [{r['depth diff low']:+.2f}, {r['depth diff high']:+.2f}] "
                     f"(earlier: {r['V/A earlier']}).")
    return (lead + "Does Proto-KD make V/A emerge earlier or more clearly? Paired 95 % intervals from resampling the "
            f"{n_subjects} KDEF-like identities (the only probing set used here; one student run per variant):\n"
            + "\n".join(lines))


def deviations(cfg: ChapterConfig, run: RunConfig, fer: FERData, nets: Mapping[str, ProbedNetwork],
               probes: Mapping[str, ProbeSet]) -> pd.DataFrame:
    """Every way this run differs from the paper, with the reason (rows depend on the profile and
    on what the data root holds); columns of :func:`affectlab.reporting.deviations_table`
    (aspect, paper, here, why), indexed by aspect."""
    sizes = " / ".join(f"{fer.full_sizes[k]:,}" for k in ("train", "public_test", "private_test"))
    original = " / ".join(f"{v:,}" for v in FER2013_ORIGINAL_SIZES.values())
    balanced = cfg.train_per_class is not None
    rebuilt = fer.real and "fer2013_original_labels" in fer.source
    steps = {v: _steps(nets, cfg, fer, v) for v in ("NN1", "NN2")}
    rows = [
        ("FER2013 copy", f"the Kaggle release: {original} faces (Training / PublicTest / PrivateTest)",
         f"{fer.source}: {sizes} faces" + (" (rebuilt from the FERPlus images with their original FER2013 labels "
                                            "recovered by pixel matching; unmatched or conflicting rows dropped)"
                                            if rebuilt else ""),
         ("the Kaggle CSV is not under the data root; the FERPlus images are the same faces" if rebuilt else "")
         if fer.real else "no FER2013 under the data root: a generated stand-in"),
        ("training data", "FER2013 Training, natural class mix (NN1: its happy/sad/neutral faces)",
         (f"at most {cfg.train_per_class} faces per class (class-balanced): " if balanced else "the whole split, natural class mix: ")
         + f"{len(fer.train['NN2']):,} (NN2) and {len(fer.train['NN1']):,} (NN1) faces",
         "the CPU budget of this profile (the paper credits NN1's accuracy to balanced classes)" if balanced else ""),
        ("training length", "not stated (to convergence, by the accuracies)",
         f"{steps['NN1']:,} (NN1) and {steps['NN2']:,} (NN2) optimiser steps of {cfg.batch_size} faces = "
         f"{steps['NN1'] * cfg.batch_size / max(len(fer.train['NN1']), 1):.2f} and "
         f"{steps['NN2'] * cfg.batch_size / max(len(fer.train['NN2']), 1):.2f} passes over their data"
         + (f" (wall-clock budgets {cfg.budget_s['NN1']:.0f} s and {cfg.budget_s['NN2']:.0f} s)" if cfg.budget_s else ""),
         "the Sharma CNN trains at about 45 faces/s in fp32 on this 2-core CPU (more with bf16); the quick "
         "profile's 30-minute budget" if cfg.profile != "paper" else ""),
        ("training recipe", "not stated", recipe_text(cfg) + f", one seed ({run.seed})",
         "the paper gives none; the quick profile uses the project's measured fast FER recipe (issue 13)"
         if cfg.recipe == "fast" else "the paper gives none; Adam at lr 1e-3 is Keras's default"),
        ("model selection", "not stated", f"best of the validations on {len(fer.val['NN2'])} (NN2) / "
         f"{len(fer.val['NN1'])} (NN1) PublicTest faces (class-proportional)", "PrivateTest stays untouched for Table 1"),
        ("test set", "accuracy on an unstated split",
         f"PrivateTest: NN2 on {len(fer.test['NN2'])} faces, NN1 and NN3 on their own {len(fer.test['NN1'])} "
         "happy/sad/neutral faces (class-proportional subsets)"
         + (f"; published weights on all {len(fer.private_test):,}" if fer.private_test is not None else ""),
         "the paper does not say which split its Table 1 uses"),
        ("uncertainty of Table 1", "none", f"95 % bootstrap CIs over test faces, one training seed ({run.seed})",
         "CIs cover the test sample, not training randomness (one seed fits the budget)"),
        ("BatchNorm statistics", "Keras running averages (momentum 0.99)",
         (f"momentum {1 - cfg.batchnorm_momentum:g} (Keras convention) while training; " if cfg.batchnorm_momentum else "")
         + (f"recalibrated on {cfg.batchnorm_recalibration} training faces after training"
            if cfg.batchnorm_recalibration else "running averages (momentum 0.99)"),
         "a short run leaves the running averages close to their initial values" if cfg.batchnorm_recalibration else ""),
        ("NN3", "untrained, same architecture as NN1", "NN1's own initial weights (same seed), untrained"
         + (f", BatchNorm statistics recalibrated on the same {cfg.batchnorm_recalibration} training faces as NN1's"
            if cfg.batchnorm_recalibration else ""),
         "a matched control: NN3 is NN1 before training, with the same BatchNorm treatment (without it, NN3's "
         "initial statistics (mean 0, variance 1) would confound 'untrained' with 'badly normalised')"),
        ("mini-Xception's test", "-", "PrivateTest (Table 1) and CK+ (present-only, a clean test)",
         "its released checkpoint was selected by validation loss on PublicTest + PrivateTest, so its PrivateTest "
         "score is optimistic; CK+ was never used in its training"),
        ("output layer probed", "the softmax probabilities (Keras out_layer activation)",
         "the logits (pre-softmax) of out_layer / predictions",
         "logits keep the class evidence linear; the softmax is a per-face monotone squashing that compresses "
         "confident faces together, so output-layer silhouettes on probabilities would differ; the argmax, and "
         "so every accuracy, is the same"),
        ("ResMaskNet, EmoFAN", "pretrained PyTorch networks",
         "mini-Xception (FER2013-trained, MIT) stands in" if "mini-Xception" in nets else "not available",
         "their weights cannot be obtained here"),
        ("role layers of the stand-in", "RMN: maxpool / mask4.conv2.downsample / fc.0 / fc.1",
         "mini-Xception: " + " / ".join(MINIXCEPTION_ROLES[r] for r in ROLES) + " (stem, 2nd and 4th residual "
         "blocks, class scores)", "the closest layers of a different architecture"),
        ("probe input size", "each network's own input", "probe faces are 48x48; mini-Xception reads them resized "
         "to 64x64 (bilinear), its Grad-CAM maps are resized back", "mini-Xception was trained at 64x64"),
        ("VGG16 (Study 2)", "ImageNet VGG16 fc2", "not run", "ImageNet weights cannot be downloaded here"),
        ("probing faces", "DISFA (27 people, ~5,700 frames; 12 women, ~970 frames in Study 3), KDEF (980 frontal: "
         "70 actors x 7 expressions x 2 sessions)",
         "; ".join(f"{p.title}: {len(p.faces)} faces of {p.n_subjects} subjects" for p in probes.values()),
         "DISFA and KDEF are licence-gated; generated faces carry known identity, expression and V/A; "
         "the generator renders one session per identity"),
        ("expression labels of DISFA", "predicted by ResMaskNet", "planted by the generator (DISFA-like faces)",
         "ResMaskNet is unavailable; planted labels are exact"),
        ("valence/arousal reference (Study 4)", "EmoFAN's V/A outputs",
         "planted V/A (generated faces: the circumplex point scaled by the expression's intensity"
         + (f", {len(cfg.kdef_intensities)} intensities on the KDEF-like faces" if cfg.kdef_intensities else "")
         + "); circumplex point of the label (CK+48)",
         "EmoFAN is unavailable; intensities make V/A vary within a category, so V/A beyond the category "
         "(partial R^2) can be measured; on CK+ V/A is the label in disguise and has no partial R^2"),
        ("intervals of Study 4", "p-values over faces",
         "r with 95 % cluster-bootstrap intervals resampling identities",
         "faces of one person are not independent; Fisher's interval over faces is too narrow"),
        ("scatter-plot embedding (Studies 1-2)", "UMAP",
         "UMAP" if cfg.embedding == "umap" else "the first 2 PCs (PCA) instead of UMAP",
         "" if cfg.embedding == "umap" else "smoke profile: UMAP's numba compilation alone takes 30-90 s"),
        ("UMAP input", "raw layer outputs",
         f"raw outputs for layers up to {cfg.keep_raw_max} wide, else their first {cfg.reduce_pcs} PCs",
         "speed on CPU (the first block is 147,456-D)"),
        ("silhouettes of Fig. 2/3", "on the UMAP scatter (not stated exactly)",
         "on the 2-D embedding and on the first 10 PCs", "the paper's wording is ambiguous"),
        ("layers of Fig. 4", "4 layers per network",
         "the same 4 roles plus intermediate layers (dropout_1, dropout_2, dense_1 for the Sharma CNN)",
         "a finer curve at no extra cost"),
        ("Grad-CAM target", "not stated", "the network's predicted class", "what the network itself attends to"),
        ("confidence intervals", "none", f"95 % percentile CIs from {cfg.bootstrap_resamples} resamples of subjects",
         "how much the score depends on which people were photographed"),
    ]
    if cfg.probe_subjects is not None:
        rows.append(("probing subjects", "all", f"first {cfg.probe_subjects} subjects of each set",
                     f"{cfg.profile} profile"))
    return deviations_table(rows).set_index("aspect")

