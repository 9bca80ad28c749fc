"""Chapter 03's experiments (EEG2Face): one content encoder end to end (:func:`run_pipeline`), every
encoder of the thesis's Table 4.1 on the same data (:func:`run_table_4_1`), the coupling sweep
(:func:`run_coupling_sweep`), and the paper-profile dry run (:func:`paper_dry_run`, foundation
issue item 7) through the same functions.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from affectlab import stats
from affectlab.chapters.eeg2face.config import CONTENT_INPUTS, ENCODER_LABELS, METRIC_NAMES, ChapterConfig, chapter_config
from affectlab.chapters.eeg2face.data import BackgroundEEG, ChapterData, background_eeg, build_chapter_data, data_label
from affectlab.chapters.eeg2face.evaluation import (
    EEG_RIDGE,
    PER_EMOTION_MEAN_FACE,
    baseline_frames,
    baseline_rows,
    comparison_columns,
    emotion_accuracy,
    frame_difference,
    frame_vertex_errors,
    pool_seeds,
    predict_test_latents,
    predicted_test_emotions,
    summarise_errors,
)
from affectlab.chapters.eeg2face.stages import train_content_encoder, train_emotion_encoder, train_heads
from affectlab.config import RunConfig, resolve_run
from affectlab.facemodel import FaceModel
from affectlab.models.eeg2face import EEG2Face, EEGEmotionEncoder
from affectlab.train import FitResult


@dataclasses.dataclass
class PipelineResult:
    """One content encoder through both stages with one training seed: the assembled model, the
    frozen encoders' outputs on every sample, the three fits, and the per-frame test errors of each
    inference mode (:func:`~affectlab.chapters.eeg2face.evaluation.frame_vertex_errors`)."""

    encoder_name: str
    seed: int
    model: EEG2Face
    features: dict[str, torch.Tensor]
    fits: dict[str, FitResult]
    per_frame: dict[str, pd.DataFrame]
    latents: dict[str, torch.Tensor]
    content_input: str | None = None


def run_pipeline(encoder_name: str, data: ChapterData, cfg: ChapterConfig, run: RunConfig,
                 emotion: tuple[EEGEmotionEncoder, FitResult] | None = None,
                 stage1_epochs: int | None = None, stage2_epochs: int | None = None,
                 content_input: str | None = None) -> PipelineResult:
    """Stage 1 (``E_e`` unless given, and the content encoder ``encoder_name``), stage 2 (heads), all
    with ``run.seed``, then LVE / MCE / EVE per test frame for content-only and emotion-enhanced
    inference. ``content_input``: what ``E_r`` reads (default ``cfg.content_input``)."""
    emotion_encoder, emotion_fit = emotion if emotion is not None else train_emotion_encoder(data, cfg, run)
    content_encoder, content_fit = train_content_encoder(encoder_name, data, cfg, run, stage1_epochs, content_input)
    model, heads_fit, features = train_heads(content_encoder, emotion_encoder, data, cfg, run, encoder_name,
                                             [content_fit.config_hash, emotion_fit.config_hash], stage2_epochs)
    latents = predict_test_latents(model, features, data)
    per_frame = {mode: frame_vertex_errors(z, data, data.test, seed=run.seed) for mode, z in latents.items()}
    fits = {"E_e": emotion_fit, "content": content_fit, "heads": heads_fit}
    used = (content_input or cfg.content_input) if encoder_name == "eeg2face" else None
    return PipelineResult(encoder_name, run.seed, model, features, fits, per_frame, latents, used)


def model_rows(pipelines: Mapping[str, Sequence[PipelineResult]], references: Mapping[str, pd.DataFrame],
               cfg: ChapterConfig, run: RunConfig) -> pd.DataFrame:
    """One row per (encoder, inference mode): the errors pooled over its seeds with CIs over test
    trials x background segments x seeds, and the paired differences to the references
    (:func:`~affectlab.chapters.eeg2face.evaluation.comparison_columns`)."""
    rows = []
    for name, seeds in pipelines.items():
        for mode in seeds[0].per_frame:
            frames = pool_seeds([p.per_frame[mode] for p in seeds])
            rows.append({"method": ENCODER_LABELS[name], "encoder": name, "mode": mode,
                         "parameters": sum(p.numel() for p in seeds[0].model.content_encoder.parameters()),
                         **summarise_errors(frames, cfg.n_bootstrap, run.seed),
                         **comparison_columns(frames, references, cfg, run)})
    return pd.DataFrame(rows)


@dataclasses.dataclass
class Table41Result:
    """Every encoder of Table 4.1 trained on the same data with the same ``E_e``, heads and losses,
    once per training seed: ``seed_pipelines[name]`` holds one :class:`PipelineResult` per seed and
    ``pipelines[name]`` the first (for the figures). ``references`` are the reference predictors'
    per-frame errors; ``selection`` the choice of ``E_r``'s input (:func:`run_content_input_selection`)."""

    pipelines: dict[str, PipelineResult]
    baselines: pd.DataFrame
    emotion: dict[str, Any]
    errors: pd.DataFrame
    label: str = ""
    seed_pipelines: dict[str, list[PipelineResult]] = dataclasses.field(default_factory=dict)
    references: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)
    selection: dict[str, Any] = dataclasses.field(default_factory=dict)
    seeds: list[int] = dataclasses.field(default_factory=list)
    n_bootstrap: int = 1000

    @property
    def ours(self) -> PipelineResult:
        return self.pipelines["eeg2face"] if "eeg2face" in self.pipelines else next(iter(self.pipelines.values()))

    def frames(self, encoder: str, mode: str = "emotion_enhanced") -> pd.DataFrame:
        """Per-frame test errors of ``encoder`` in ``mode``, all seeds."""
        return pool_seeds([p.per_frame[mode] for p in self.seed_pipelines[encoder]])


def _seed_run(run: RunConfig, seed: int) -> RunConfig:
    return dataclasses.replace(run, seed=int(seed))


def run_encoders(data: ChapterData, cfg: ChapterConfig, run: RunConfig, encoders: Sequence[str],
                 content_inputs: Mapping[str, str] | None = None, stage1_epochs: int | None = None,
                 emotion_epochs: int | None = None, n_seeds: int | None = None,
                 ) -> tuple[dict[str, list[PipelineResult]], list[tuple[Any, FitResult]]]:
    """For every training seed of ``cfg`` (the first ``n_seeds`` of them when given): ``E_e`` once,
    then every encoder of ``encoders`` through both stages. ``encoders`` may name a variant as
    "eeg2face:<content_input>" (``content_inputs`` maps a row name to its input otherwise). Returns
    {row name: [PipelineResult per seed]} and the ``E_e`` of each seed."""
    seeds = cfg.training_seeds(run.seed)[:n_seeds]
    emotion_cfg = cfg if emotion_epochs is None else dataclasses.replace(cfg, emotion_epochs=emotion_epochs)
    out: dict[str, list[PipelineResult]] = {name: [] for name in encoders}
    emotions = []
    for s in seeds:
        seed_run = _seed_run(run, s)
        emotion = train_emotion_encoder(data, emotion_cfg, seed_run)
        emotions.append(emotion)
        for row in encoders:
            name, _, variant = row.partition(":")
            variant = variant or (content_inputs or {}).get(row) or None
            out[row].append(run_pipeline(name, data, cfg, seed_run, emotion, stage1_epochs=stage1_epochs,
                                         content_input=variant))
    return out, emotions


def run_content_input_selection(data: ChapterData, cfg: ChapterConfig, run: RunConfig) -> dict[str, Any]:
    """What ``E_r`` should read (chapter issue, item 2), chosen on VALIDATION trials: the thesis's
    pairing ("frame": the frame's own 10 EEG samples, Sec. 3.0.1) against the whole window with learned
    positions ("positional"). Both go through both stages with the first ``cfg.selection_seeds``
    training seeds on
    :meth:`ChapterData.validation_view` (``cfg.validation_trials_per_emotion`` training trials per
    subject and emotion held out; the test trials are not touched) and are scored on the held-out
    trials (emotion-enhanced inference). The one with the lower mean LVE is chosen.

    Returns ``{"chosen", "rows" (DataFrame: LVE/MCE/EVE per input with CIs), "difference"
    (frame - positional, LVE, Estimate), "validation_trials", "reason"}``.
    """
    view = data.validation_view(cfg.validation_trials_per_emotion, seed=run.seed)
    rows_by_input = [f"eeg2face:{c}" for c in CONTENT_INPUTS]
    pipelines, _ = run_encoders(view, cfg, run, rows_by_input, n_seeds=cfg.selection_seeds)
    frames = {row.split(":")[1]: pool_seeds([p.per_frame["emotion_enhanced"] for p in seeds])
              for row, seeds in pipelines.items()}
    rows = pd.DataFrame([{"E_r input": c, **summarise_errors(f, cfg.n_bootstrap, run.seed)} for c, f in frames.items()])
    diff = frame_difference(frames["frame"], frames["positional"], "LVE", cfg.n_bootstrap, run.seed)
    chosen = "frame" if diff.value <= 0 else "positional"
    verdict = stats.verdict_from_ci(diff.low, diff.high)
    strength = ("clearly (paired 95% CI excludes 0)" if verdict != "undecided" else
                "but the paired 95% CI includes 0, so the two are not distinguishable here")
    reason = (f"'{chosen}' has the lower validation LVE ({frames[chosen]['LVE'].mean():.3f} mm vs "
              f"{frames['positional' if chosen == 'frame' else 'frame']['LVE'].mean():.3f} mm; frame minus positional "
              f"{diff.value:+.3f} mm [{diff.low:+.3f}, {diff.high:+.3f}]), {strength}; chosen on "
              f"{view.info['validation_trials']} held-out training trials, {cfg.selection_seeds} seed(s), before any test "
              "frame was scored")
    return {"chosen": chosen, "rows": rows.set_index("E_r input"), "difference": diff,
            "seeds": cfg.training_seeds(run.seed)[:cfg.selection_seeds],
            "validation_trials": view.info["validation_trials"], "reason": reason}


def run_table_4_1(data: ChapterData, cfg: ChapterConfig, run: RunConfig) -> Table41Result:
    """Table 4.1: for each training seed ``E_e`` once, then every encoder of ``cfg.encoders`` through
    both stages; rows pooled over seeds (:func:`model_rows`). With ``cfg.content_input == "auto"``
    ``E_r``'s input is first chosen on validation trials (:func:`run_content_input_selection`)."""
    selection: dict[str, Any] = {}
    content_input = cfg.content_input
    if "eeg2face" in cfg.encoders and content_input == "auto":
        selection = run_content_input_selection(data, cfg, run)
        content_input = selection["chosen"]
    elif "eeg2face" in cfg.encoders:
        selection = {"chosen": content_input, "reason": f"set in the configuration (content_input={content_input!r})"}
    inputs = {"eeg2face": content_input} if content_input != "auto" else {}
    pipelines, emotions = run_encoders(data, cfg, run, cfg.encoders, inputs)
    seeds = cfg.training_seeds(run.seed)
    predicted = [predicted_test_emotions(e[0], data, run.device) for e in emotions]
    references = baseline_frames(data, predicted, seeds)
    first = next(iter(pipelines.values()))
    accuracy = emotion_accuracy([p.features["logits"][data.test] for p in first], data, cfg.n_bootstrap, run.seed,
                                seeds=seeds)
    return Table41Result({name: p[0] for name, p in pipelines.items()},
                         pd.DataFrame(baseline_rows(references, cfg, run)), accuracy,
                         model_rows(pipelines, references, cfg, run), data_label(data), pipelines, references,
                         selection, seeds, cfg.n_bootstrap)


def ranking_frame(result: Table41Result, n_bootstrap: int = 1000, seed: int = 0, mode: str = "emotion_enhanced",
                  against: str = "eeg2face") -> pd.DataFrame:
    """The Table 4.1 ranking as paired differences: every other encoder's error minus ``against``'s
    (default ``E_r``) on the same test frames and seeds, per metric, with 95 % CIs over test trials x
    background segments x seeds, read with :func:`affectlab.stats.verdict_from_ci` (positive = the
    other encoder is worse, as the thesis claims)."""
    if against not in result.seed_pipelines:
        raise ValueError(f"ranking_frame: {against!r} was not trained; encoders {list(result.seed_pipelines)}")
    base = result.frames(against, mode)
    rows = []
    for name in result.seed_pipelines:
        if name == against:
            continue
        row: dict[str, Any] = {"encoder": name, "method": ENCODER_LABELS[name]}
        for metric in METRIC_NAMES:
            diff = frame_difference(result.frames(name, mode), base, metric, n_bootstrap, seed)
            row.update({f"{metric}_diff": diff.value, f"{metric}_diff_low": diff.low, f"{metric}_diff_high": diff.high,
                        f"{metric}_verdict": stats.verdict_from_ci(diff.low, diff.high)})
        rows.append(row)
    return pd.DataFrame(rows)


def run_coupling_sweep(cfg: ChapterConfig, run: RunConfig, background: BackgroundEEG,
                       encoder_name: str = "eeg2face", face_model: FaceModel | None = None,
                       content_input: str | None = None) -> pd.DataFrame:
    """Rebuild the paired set at each ``cfg.sweep_couplings`` level (same trajectories, backgrounds
    and seeds: only the planted EMG-to-face coupling changes), retrain ``E_e`` and the encoder
    (``cfg.sweep_epochs`` epochs each) and the heads (``cfg.stage2_epochs`` epochs, as in the main
    table) with every training seed, and measure both inference modes and the references.

    ``content_input``: ``E_r``'s input (the one chosen for Table 4.1; "auto" is not resolved here:
    default "frame"). Returns one row per (coupling, method, mode) with the metrics pooled over
    seeds, CIs (test trials x background segments x seeds), the paired differences of the model rows
    to the references and the EMG SNR in dB. The references include the ridge ceilings on the
    planted EMG and the ridge control on the EEG (:func:`reference_latents`).
    """
    content_input = content_input or (cfg.content_input if cfg.content_input != "auto" else "frame")
    rows = []
    data = None
    for coupling in cfg.sweep_couplings:
        data = build_chapter_data(cfg, run, background, coupling=coupling, face_model=face_model)
        pipelines, emotions = run_encoders(data, cfg, run, [encoder_name], {encoder_name: content_input},
                                           stage1_epochs=cfg.sweep_epochs, emotion_epochs=cfg.sweep_epochs)
        seeds = cfg.training_seeds(run.seed)
        references = baseline_frames(data, [predicted_test_emotions(e[0], data, run.device) for e in emotions], seeds)
        accuracy = emotion_accuracy([p.features["logits"][data.test] for p in pipelines[encoder_name]], data,
                                    cfg.n_bootstrap, run.seed, seeds=seeds)
        eeg_ridge = references[EEG_RIDGE]
        ridge_vs_oracle = frame_difference(eeg_ridge, references[PER_EMOTION_MEAN_FACE], "LVE", cfg.n_bootstrap,
                                           run.seed)
        for row in model_rows(pipelines, references, cfg, run).to_dict("records") + baseline_rows(references, cfg, run):
            rows.append({"coupling": coupling, "snr_db": data.info.get("emg_snr_db", np.nan),
                         "E_e accuracy": accuracy["accuracy"], "content_input": content_input,
                         "eeg_ridge_vs_oracle_LVE": ridge_vs_oracle.value,
                         "eeg_ridge_vs_oracle_LVE_low": ridge_vs_oracle.low,
                         "eeg_ridge_vs_oracle_LVE_high": ridge_vs_oracle.high, **row})
    frame = pd.DataFrame(rows)
    if data is not None:
        frame.attrs["label"] = data_label(data).replace(f"coupling {data.coupling:g}, ", "couplings "
                                                        + "/".join(f"{c:g}" for c in cfg.sweep_couplings) + ", ")
    return frame


def paper_dry_run(max_steps: int = 1, max_items: int = 4) -> dict[str, Any]:
    """The paper profile must not rot (foundation issue, item 7): the *paper* configuration of this
    chapter (the thesis's models at their true sizes, Sec. 3.0.4-3.0.8: ``E_e``, ``E_r`` and the four
    Table 4.1 baselines, heads ``f``/``g``; Adam at lr 1e-3) trained for ``max_steps`` optimiser steps
    of ``max_items`` EEG windows per fit, on CPU, through :func:`run_table_4_1` (both stages and the
    evaluation, exactly as the chapter runs them).

    Only the data, the seeds and the intervals shrink: one subject x 5 emotions x 4 trials of 2 s (the
    smallest set the 6:2 split allows; one 2 s segment per trial) on the embedded default's generated EEG
    background, whatever ``AFFECTLAB_DATA`` says, one training seed instead of three, and 20 bootstrap
    resamples instead of 2,000. ``E_r``'s input is chosen on a validation view as in the chapter.

    Returns ``{"profile": "paper", "steps": ..., "losses": {fit: last training loss}, "models":
    {name: description}, "items": ..., "seconds": ...}``; ``steps`` is the fewest optimiser steps any
    fit took.
    """
    for name, value in (("max_steps", max_steps), ("max_items", max_items)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"paper_dry_run: parameter {name} must be a positive int; got {value!r}")
    started = time.perf_counter()
    run = dataclasses.replace(resolve_run("paper", None, 0, "cpu"), data_root=None)  # generated background
    cfg = chapter_config("paper", n_subjects=1, trials_per_emotion=4, trial_seconds=2.0, segment_seconds=2.0,
                         frame_step=2, batch_size=max_items, steps_per_epoch=max_steps, stage1_epochs=1,
                         emotion_epochs=1, stage2_epochs=1, sweep_epochs=1, n_bootstrap=20, n_seeds=1,
                         selection_seeds=1)
    data = build_chapter_data(cfg, run, background_eeg(run))
    table = run_table_4_1(data, cfg, run)
    losses: dict[str, float] = {}
    models: dict[str, str] = {}
    steps = []
    for name, pipeline in table.pipelines.items():
        for stage, result in pipeline.fits.items():
            key = "E_e" if stage == "E_e" else f"{name}.{stage}"
            losses[key] = float(result.history["loss"].iloc[-1])
            steps.append(_optimiser_steps(result, cfg))
        encoder = pipeline.model.content_encoder
        models[name] = (f"{ENCODER_LABELS[name]}: {type(encoder).__name__}, "
                        f"{sum(p.numel() for p in encoder.parameters()):,} parameters, input "
                        f"({len(data.ch_names)} channels x {cfg.window_samples} samples); heads "
                        f"{sum(p.numel() for p in pipeline.model.heads.parameters()):,} parameters")
    emotion = table.ours.model.emotion_encoder
    models["E_e"] = (f"{type(emotion).__name__}: {sum(p.numel() for p in emotion.parameters()):,} parameters, "
                     f"{len(table.ours.features['logits'][0])} emotions")
    return {"profile": run.profile, "steps": min(steps), "losses": losses, "models": models,
            "items": {"train_windows": int(data.train.sum()), "test_windows": int(data.test.sum()),
                      "per_step": max_items},
            "seconds": round(time.perf_counter() - started, 1)}


def _optimiser_steps(result: FitResult, cfg: ChapterConfig) -> int:
    """Optimiser steps a finished fit took: its epochs x the batches per epoch (capped by
    ``cfg.steps_per_epoch``), from the history's ``steps`` column when the trainer logs one."""
    history = result.history
    if "steps" in history.columns:
        return int(history["steps"].sum())
    return len(history) * int(cfg.steps_per_epoch or 0)
