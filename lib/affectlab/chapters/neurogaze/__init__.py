"""Chapter 01, NeuroGaze-Distill (Li, Xu, Zhao, Zhu 2025, paper 000): what ``notebooks/01_neurogaze_distill.py``
calls, one public name per step; the notebook only shows what these return.

Reading order (one module per concern):

1. :mod:`.config`: the paper's variants and numbers, :class:`ChapterConfig` / :func:`chapter_config`
   (sizes and hyperparameters per profile, Sec. 4.4, App. A.3).
2. :mod:`.data`: EEG teacher data (Sec. 3.1, 3.3, Fig. 3: :func:`load_teacher_eeg`,
   :func:`va_targets`, :func:`prepare_teacher_data`, :func:`raw_eeg_topomaps`) and faces (Sec. 3.2:
   :func:`prepare_faces`, :func:`mild_class_weights`).
3. :mod:`.terms`: the loss terms of each variant (Sec. 4.3, Algorithm 2: :func:`variant_terms`).
4. :mod:`.experiments`: :func:`train_eeg_teacher`, :func:`prototype_banks` (Algorithm 1),
   :func:`train_students` (Sec. 4.2-4.4, 5.2-5.3), :func:`student_predictions`;
   :mod:`.eeg_teacher_alternatives`: :func:`teacher_alternatives` (band ratios, one teacher per dataset).
5. :mod:`.tables`: Table 3 (:func:`ablation_table`), Table 2 (:func:`cross_dataset_table`), the grid
   ablation, teacher CCC, bank coverage, feature geometry, paired differences (App. A.1-A.2).
6. :mod:`.probe`: the known-ground-truth V/A probe on generated faces and the grid ablation on the
   continuous-V/A bank (:func:`continuous_grid_ablation`).
7. :mod:`.figures`: Figs. 4-7 (Fig. 3 is :func:`affectlab.plots.topomap_grid_figure`).
8. :mod:`.artifacts`: Sec. 7 / Table 1 artefacts with SHA-256 sums.
9. :mod:`.report`: recorded headline numbers, findings, deviations.
   :mod:`.apply`: :func:`predict_faces`, a trained student on your own faces.
10. :mod:`.dry_run`: :func:`paper_dry_run`, the paper profile on a handful of items.

Every training goes through :func:`affectlab.train.fit` (train-or-load: a rerun with the same data
and configuration loads the finished run from ``AFFECTLAB_RUNS``).
"""

from affectlab.data.taxonomy import FERPLUS_CLASSES

from .apply import StudentPrediction, load_student, predict_faces
from .artifacts import write_artifacts
from .config import (
    CHAPTER,
    PAPER_TABLE2,
    PAPER_TABLE3,
    VARIANT_LABELS,
    VARIANT_TERMS,
    VARIANTS,
    ChapterConfig,
    DGeoParams,
    artifact_dir,
    chapter_config,
)
from .data import (
    FaceData,
    TeacherData,
    face_data_from_sets,
    load_teacher_eeg,
    mild_class_weights,
    prepare_faces,
    prepare_teacher_data,
    raw_eeg_topomaps,
    short_source,
    subject_disjoint_split,
    va_targets,
    valence_contrast_maps,
)
from .dry_run import paper_dry_run
from .eeg_teacher_alternatives import teacher_alternatives, with_band_ratios
from .experiments import (
    PrototypeBanks,
    StudentRuns,
    TeacherRun,
    generated_eeg_bank,
    prototype_banks,
    sec53_sweep,
    student_predictions,
    teacher_split,
    train_eeg_teacher,
    train_students,
)
from .figures import (
    ablation_timeline_figure,
    embedding_grid_figure,
    present_only_confusion,
    student_curves_figure,
    teacher_curves_figure,
)
from .probe import ProbeResult, continuous_grid_ablation, known_ground_truth_probe, probe_config, probe_verdict
from .report import (
    deviations,
    findings,
    kd_loss_share,
    probe_verdict_text,
    record_generated_bank,
    record_headline_numbers,
)
from .tables import (
    ablation_table,
    bank_coverage_table,
    baseline_scores,
    cross_dataset_table,
    feature_geometry_table,
    grid_ablation_table,
    paired_variant_difference,
    seed_spread_table,
    teacher_scores,
)
from .terms import variant_terms

__all__ = [
    "FERPLUS_CLASSES",
    "CHAPTER",
    "VARIANTS",
    "VARIANT_LABELS",
    "VARIANT_TERMS",
    "PAPER_TABLE2",
    "PAPER_TABLE3",
    "DGeoParams",
    "ChapterConfig",
    "chapter_config",
    "artifact_dir",
    "short_source",
    "load_teacher_eeg",
    "va_targets",
    "TeacherData",
    "prepare_teacher_data",
    "raw_eeg_topomaps",
    "valence_contrast_maps",
    "subject_disjoint_split",
    "FaceData",
    "prepare_faces",
    "face_data_from_sets",
    "mild_class_weights",
    "variant_terms",
    "TeacherRun",
    "train_eeg_teacher",
    "teacher_scores",
    "PrototypeBanks",
    "prototype_banks",
    "generated_eeg_bank",
    "bank_coverage_table",
    "StudentRuns",
    "train_students",
    "student_predictions",
    "sec53_sweep",
    "baseline_scores",
    "ablation_table",
    "cross_dataset_table",
    "grid_ablation_table",
    "feature_geometry_table",
    "paired_variant_difference",
    "ProbeResult",
    "probe_verdict",
    "known_ground_truth_probe",
    "teacher_alternatives",
    "with_band_ratios",
    "continuous_grid_ablation",
    "probe_config",
    "write_artifacts",
    "ablation_timeline_figure",
    "present_only_confusion",
    "embedding_grid_figure",
    "student_curves_figure",
    "teacher_curves_figure",
    "record_headline_numbers",
    "findings",
    "deviations",
    "kd_loss_share",
    "probe_verdict_text",
    "record_generated_bank",
    "paper_dry_run",
    "teacher_split",
    "seed_spread_table",
    "StudentPrediction",
    "load_student",
    "predict_faces",
]
