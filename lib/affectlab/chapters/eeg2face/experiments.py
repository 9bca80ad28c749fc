"""Chapter 03's experiments (EEG2Face): one content encoder end to end (:func:`run_pipeline`), every
encoder of the thesis's Table 4.1 on the same data (:func:`run_table_4_1`), the coupling sweep
(:func:`run_coupling_sweep`), and the paper-profile dry run (:func:`paper_dry_run`, foundation
issue item 7) through the same functions.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from affectlab.chapters.eeg2face.config import ENCODER_LABELS, ChapterConfig, chapter_config
from affectlab.chapters.eeg2face.data import BackgroundEEG, ChapterData, background_eeg, build_chapter_data, data_label
from affectlab.chapters.eeg2face.evaluation import (
    baseline_rows,
    baseline_segments,
    comparison_columns,
    emotion_accuracy,
    predict_test_latents,
    predicted_test_emotions,
    segment_vertex_errors,
    summarise_errors,
)
from affectlab.chapters.eeg2face.stages import train_content_encoder, train_emotion_encoder, train_heads
from affectlab.config import RunConfig, resolve_run
from affectlab.facemodel import FaceModel
from affectlab.models.eeg2face import EEG2Face, EEGEmotionEncoder
from affectlab.train import FitResult


@dataclasses.dataclass
class PipelineResult:
    """One content encoder through both stages: the assembled model, the frozen encoders' outputs
    on every sample, the three fits, and the per-segment test errors of each inference mode."""

    encoder_name: str
    model: EEG2Face
    features: dict[str, torch.Tensor]
    fits: dict[str, FitResult]
    per_segment: dict[str, pd.DataFrame]
    rows: list[dict[str, Any]]
    latents: dict[str, torch.Tensor]


def run_pipeline(encoder_name: str, data: ChapterData, cfg: ChapterConfig, run: RunConfig,
                 emotion: tuple[EEGEmotionEncoder, FitResult] | None = None,
                 stage1_epochs: int | None = None, stage2_epochs: int | None = None,
                 references: Mapping[str, pd.DataFrame] | None = None) -> PipelineResult:
    """Stage 1 (``E_e`` unless given, and the content encoder ``encoder_name``), stage 2 (heads),
    then LVE / MCE / EVE on the test segments for content-only and emotion-enhanced inference, each
    with paired differences to the mean-face references (:func:`comparison_columns`; ``references``
    = :func:`baseline_segments`, computed when not given)."""
    emotion_encoder, emotion_fit = emotion if emotion is not None else train_emotion_encoder(data, cfg, run)
    content_encoder, content_fit = train_content_encoder(encoder_name, data, cfg, run, stage1_epochs)
    model, heads_fit, features = train_heads(content_encoder, emotion_encoder, data, cfg, run, encoder_name,
                                             [content_fit.config_hash, emotion_fit.config_hash], stage2_epochs)
    latents = predict_test_latents(model, features, data)
    per_segment = {mode: segment_vertex_errors(z, data, data.test) for mode, z in latents.items()}
    references = baseline_segments(data) if references is None else references
    rows = [{"method": ENCODER_LABELS[encoder_name], "encoder": encoder_name, "mode": mode,
             "parameters": sum(p.numel() for p in content_encoder.parameters()),
             **summarise_errors(table, cfg.n_bootstrap, run.seed),
             **comparison_columns(table, references, cfg, run)} for mode, table in per_segment.items()]
    fits = {"E_e": emotion_fit, "content": content_fit, "heads": heads_fit}
    return PipelineResult(encoder_name, model, features, fits, per_segment, rows, latents)


@dataclasses.dataclass
class Table41Result:
    """Every encoder of Table 4.1 trained on the same data with the same ``E_e``, heads and losses."""

    pipelines: dict[str, PipelineResult]
    baselines: pd.DataFrame
    emotion: dict[str, float]
    errors: pd.DataFrame
    label: str = ""

    @property
    def ours(self) -> PipelineResult:
        return self.pipelines["eeg2face"] if "eeg2face" in self.pipelines else next(iter(self.pipelines.values()))


def run_table_4_1(data: ChapterData, cfg: ChapterConfig, run: RunConfig) -> Table41Result:
    """Table 4.1: ``E_e`` once, then every encoder of ``cfg.encoders`` through both stages."""
    emotion = train_emotion_encoder(data, cfg, run)
    references = baseline_segments(data, predicted_test_emotions(emotion[0], data, run.device))
    pipelines = {name: run_pipeline(name, data, cfg, run, emotion, references=references) for name in cfg.encoders}
    first = next(iter(pipelines.values()))
    accuracy = emotion_accuracy(first.features["logits"][data.test], data.emotion[data.test], cfg.n_bootstrap,
                                run.seed, trials=data.trial[data.test])
    rows = [row for p in pipelines.values() for row in p.rows]
    return Table41Result(pipelines, pd.DataFrame(baseline_rows(references, cfg, run)), accuracy, pd.DataFrame(rows),
                         data_label(data))


def run_coupling_sweep(cfg: ChapterConfig, run: RunConfig, background: BackgroundEEG,
                       encoder_name: str = "eeg2face", face_model: FaceModel | None = None) -> pd.DataFrame:
    """Rebuild the paired set at each ``cfg.sweep_couplings`` level (same trajectories, backgrounds
    and seeds: only the planted EMG-to-face coupling changes), retrain ``E_e`` and the encoder
    (``cfg.sweep_epochs`` epochs each) and the heads (``cfg.stage2_epochs``), and measure both
    inference modes and the baselines.

    Returns one row per (coupling, method, mode) with the metrics, CIs (whole test trials
    resampled), the paired differences of the model rows to the mean-face references and the EMG
    SNR in dB. The baselines include the ridge ceilings on the planted EMG (:func:`reference_latents`).
    """
    rows = []
    for coupling in cfg.sweep_couplings:
        data = build_chapter_data(cfg, run, background, coupling=coupling, face_model=face_model)
        sweep_cfg = dataclasses.replace(cfg, emotion_epochs=cfg.sweep_epochs)
        emotion = train_emotion_encoder(data, sweep_cfg, run)
        references = baseline_segments(data, predicted_test_emotions(emotion[0], data, run.device))
        result = run_pipeline(encoder_name, data, sweep_cfg, run, emotion, stage1_epochs=cfg.sweep_epochs,
                              references=references)
        accuracy = emotion_accuracy(result.features["logits"][data.test], data.emotion[data.test], cfg.n_bootstrap,
                                    run.seed, trials=data.trial[data.test])
        for row in result.rows + baseline_rows(references, cfg, run):
            rows.append({"coupling": coupling, "snr_db": data.info.get("emg_snr_db", np.nan),
                         "E_e accuracy": accuracy["accuracy"], **row})
    frame = pd.DataFrame(rows)
    frame.attrs["label"] = data_label(data).replace(f"coupling {data.coupling:g}, ", "couplings "
                                                    + "/".join(f"{c:g}" for c in cfg.sweep_couplings) + ", ")
    return frame



def paper_dry_run(max_steps: int = 1, max_items: int = 4) -> dict[str, Any]:
    """The paper profile must not rot (foundation issue, item 7): the *paper* configuration of this
    chapter (the thesis's models at their true sizes, Sec. 3.0.4-3.0.8: ``E_e``, ``E_r`` and the four
    Table 4.1 baselines, heads ``f``/``g``; Adam at lr 1e-3) trained for ``max_steps`` optimiser steps
    of ``max_items`` EEG windows per fit, on CPU, through :func:`run_table_4_1` (both stages and the
    evaluation, exactly as the chapter runs them).

    Only the data and the intervals shrink: one subject x 5 emotions x 4 trials of 2 s (the smallest set
    the 6:2 split allows; one 2 s segment per trial) on the embedded default's generated EEG background,
    whatever ``AFFECTLAB_DATA`` says, and 20 bootstrap resamples instead of 2,000.

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
                         emotion_epochs=1, stage2_epochs=1, sweep_epochs=1, n_bootstrap=20)
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
