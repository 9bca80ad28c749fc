"""Chapter 03, EEG2Face (Kabidenova 2025, MSc thesis, paper 002): what ``notebooks/03_eeg2face.py`` calls.

Reading order (one module per concern):

1. :mod:`.config` - constants of the thesis, :class:`ChapterConfig` / :func:`chapter_config` per profile.
2. :mod:`.latent` and :mod:`.data` - the vision latent ``z_v`` (Sec. 3.0.2) and the EAV-like paired set
   (:func:`background_eeg`, :func:`build_chapter_data`; Sec. 3.0.1).
3. :mod:`.stages` - stage 1 (``E_e``, ``E_r`` / baselines with InfoNCE) and stage 2 (heads ``f``, ``g``,
   Eq. 3.1), Sec. 3.0.7.
4. :mod:`.evaluation` - LVE / MCE / EVE per test frame pooled over training seeds, paired differences
   to the mean faces, ceilings and the EEG ridge control with CIs over test trials x background
   segments x seeds, ``E_e`` accuracy (Sec. 4.0.2).
5. :mod:`.experiments` - :func:`run_content_input_selection` (what ``E_r`` reads, chosen on validation
   trials), :func:`run_table_4_1` (every encoder x seeds), :func:`ranking_frame`,
   :func:`run_coupling_sweep`, :func:`paper_dry_run`.
6. :mod:`.tables`, :mod:`.figures` - Table 4.1 beside the thesis, Figs. 4-1 to 4-3, the sweep.
7. :mod:`.report` - :func:`deviations`, :func:`findings`, :func:`record_headline_numbers`.

Each of the two stages is train-or-load (:func:`affectlab.train.fit`): rerunning the chapter with
unchanged data and configuration reloads every encoder and head from ``AFFECTLAB_RUNS``.
"""

from affectlab.chapters.eeg2face.config import (
    CHAPTER,
    CONTENT_INPUTS,
    ENCODER_LABELS,
    METRIC_NAMES,
    PAPER_TABLE_4_1,
    ChapterConfig,
    chapter_config,
    configure_threads,
)
from affectlab.chapters.eeg2face.data import BackgroundEEG, ChapterData, background_eeg, build_chapter_data, data_label
from affectlab.chapters.eeg2face.evaluation import mean_face_latents, vertex_error_map
from affectlab.chapters.eeg2face.experiments import (
    PipelineResult,
    Table41Result,
    paper_dry_run,
    ranking_frame,
    run_content_input_selection,
    run_coupling_sweep,
    run_pipeline,
    run_table_4_1,
)
from affectlab.chapters.eeg2face.figures import (
    coupling_sweep_figure,
    emotion_control_figure,
    error_map_figure,
    error_maps_figure,
    reconstruction_figure,
    trial_figure,
)
from affectlab.chapters.eeg2face.report import content_verdict, deviations, findings, record_headline_numbers
from affectlab.chapters.eeg2face.tables import (
    comparison_frame,
    emotion_accuracy_frame,
    emotion_control_frame,
    ranking_table,
    selection_frame,
    sweep_frame,
    table_4_1_frame,
    table_caption,
    training_history,
    training_status_frame,
)

__all__ = [
    "CHAPTER", "CONTENT_INPUTS", "ENCODER_LABELS", "METRIC_NAMES", "PAPER_TABLE_4_1", "ChapterConfig", "chapter_config", "configure_threads",
    "BackgroundEEG", "ChapterData", "background_eeg", "build_chapter_data", "data_label",
    "mean_face_latents", "vertex_error_map",
    "PipelineResult", "Table41Result", "paper_dry_run", "ranking_frame", "run_content_input_selection",
    "run_coupling_sweep", "run_pipeline", "run_table_4_1",
    "coupling_sweep_figure", "emotion_control_figure", "error_map_figure", "error_maps_figure",
    "reconstruction_figure", "trial_figure",
    "content_verdict", "deviations", "findings", "record_headline_numbers",
    "comparison_frame", "emotion_accuracy_frame", "emotion_control_frame", "ranking_table", "selection_frame",
    "sweep_frame", "table_4_1_frame",
    "table_caption", "training_history", "training_status_frame",
]
