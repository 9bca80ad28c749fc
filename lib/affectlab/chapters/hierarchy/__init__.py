"""Chapter 02, DCNN hierarchy probing (T, Atas, Goldstein, Vilenchik & Sofer, paper 001).

The notebook ``notebooks/02_dcnn_hierarchy.py`` calls this package and only shows what it returns.
The paper's claim: a DCNN trained for categorical facial expressions processes a face in three
stages, identity first (early layers, Studies 1-2), then valence/arousal (penultimate layer,
Studies 1 and 4), then the categories (output); identity dominates raw pixels and even untrained
networks (Study 2); supervised training lifts the expression signal layer by layer (Study 3, Fig. 4).

Modules, in reading order:

- :mod:`.config`: the paper's numbers, probed layers and roles, :class:`ChapterConfig` per profile;
- :mod:`.data`: FER2013 for Table 1 (:func:`load_fer2013`) and the probing sets (:func:`load_probe_sets`);
- :mod:`.networks` and :mod:`.training`: NN1-NN3 and mini-Xception (:func:`build_networks`);
- :mod:`.layers`: activations reduced to PCs (:func:`layer_codes`) and per-layer profiles (:func:`layer_profile`);
- :mod:`.experiments`: Studies 1, 2 and 4, Grad-CAM, Studies 2-3 on any identity-labelled set in one
  call (:func:`identity_studies`, e.g. a user's CSV), mini-Xception's clean CK+ test;
- :mod:`.students`: chapter 01's NeuroGaze-Distill students, read from the runs folder;
- :mod:`.tables`, :mod:`.figures`: what the notebook shows;
- :mod:`.verdicts`: did the networks learn, do the paper's claims hold on planted faces;
- :mod:`.report`: the text around the tables, recorded results, deviations from the paper;
- :mod:`.dry_run`: :func:`paper_dry_run`, the paper profile on a handful of faces.
"""

from .config import (
    CHAPTER,
    NN1_CLASSES,
    PAPER_STUDY1_SILHOUETTES,
    PAPER_STUDY2_SILHOUETTES,
    PAPER_TABLE1,
    QUICK_BUDGET_S,
    QUICK_STEPS_PER_EPOCH,
    ROLES,
    SHARMA_PROBE_LAYERS,
    ChapterConfig,
    chapter_config,
)
from .data import FERData, ProbeSet, load_fer2013, load_probe_sets, nn1_subset, probe_set
from .dry_run import paper_dry_run
from .experiments import (
    REGION_LANDMARKS,
    EmbeddingStudy,
    IdentityStudy,
    PCStudy,
    axis_samples,
    axis_va_correlation,
    cluster_r_ci,
    fisher_ci,
    gradcam_examples,
    gradcam_region_table,
    identity_studies,
    present_only_accuracy,
    probe_networks,
    study1_umaps,
    study2_identity_dominance,
    study4_penultimate,
    u_shape_test,
)
from .figures import (
    embedding_grid_figure,
    probe_colourings,
    face_strip_figure,
    generated_faces_figure,
    gradcam_figure,
    layer_profile_figure,
    penultimate_figure,
    prediction_map_figure,
    silhouette_roles_figure,
    three_stage_figure,
)
from .layers import (
    LayerCodes,
    half_max_depth,
    layer_codes,
    layer_profile,
    partial_r2,
    planted_factor_codes,
    principal_components,
    va_partial_predictions,
    va_partial_r2_ci,
    va_decoding_predictions,
    va_decoding_r2,
)
from .networks import ProbedNetwork, ferplus_predictions, network_logits, sharma_initial_model, sharma_network
from .report import (
    ACCURACY_FLOORS,
    caveats,
    deviations,
    identity_findings,
    learning_curve_extrapolation,
    learning_curve_findings,
    minixception_findings,
    record_headline_numbers,
    student_findings,
    table1_findings,
    training_summary,
    what_we_learned,
)
from .students import (
    StudentStudy,
    find_student_runs,
    latest_student_per_variant,
    learned_students,
    load_student,
    probe_students,
    student_test_accuracies,
    student_va_comparison,
)
from .tables import (
    accuracy_table,
    layer_widths_table,
    network_table,
    positive_control_table,
    probe_set_table,
    study3_summary,
    study3_table,
    study4_table,
    table1_predictions,
    table1_test_set,
    va_emergence_table,
    va_partial_table,
)
from .training import (
    amp_probe_of,
    build_networks,
    recalibrate_batchnorm,
    sharma_train_config,
    train_sharma,
    training_steps,
    untrained_sharma,
)
from .verdicts import ground_truth_checks, layer_claim_verdict, learning_verdicts

__all__ = [
    "CHAPTER", "NN1_CLASSES", "PAPER_STUDY1_SILHOUETTES", "PAPER_STUDY2_SILHOUETTES", "PAPER_TABLE1",
    "QUICK_BUDGET_S", "QUICK_STEPS_PER_EPOCH", "ROLES", "SHARMA_PROBE_LAYERS", "ChapterConfig", "chapter_config",
    "FERData", "ProbeSet", "load_fer2013", "load_probe_sets", "nn1_subset", "probe_set",
    "paper_dry_run",
    "REGION_LANDMARKS", "EmbeddingStudy", "IdentityStudy", "PCStudy", "axis_samples", "axis_va_correlation",
    "cluster_r_ci", "fisher_ci", "gradcam_examples", "gradcam_region_table", "identity_studies",
    "present_only_accuracy", "probe_networks", "study1_umaps", "study2_identity_dominance",
    "study4_penultimate", "u_shape_test",
    "embedding_grid_figure", "probe_colourings", "face_strip_figure", "generated_faces_figure", "gradcam_figure", "layer_profile_figure",
    "penultimate_figure", "prediction_map_figure", "silhouette_roles_figure", "three_stage_figure",
    "LayerCodes", "half_max_depth", "layer_codes", "layer_profile", "partial_r2", "planted_factor_codes",
    "principal_components", "va_partial_predictions", "va_partial_r2_ci",
    "va_decoding_predictions", "va_decoding_r2",
    "ProbedNetwork", "ferplus_predictions", "network_logits", "sharma_initial_model", "sharma_network",
    "ACCURACY_FLOORS", "caveats", "deviations", "identity_findings", "learning_curve_extrapolation",
    "learning_curve_findings", "minixception_findings", "record_headline_numbers", "student_findings", "table1_findings", "training_summary",
    "what_we_learned",
    "StudentStudy", "find_student_runs", "latest_student_per_variant", "learned_students", "load_student",
    "probe_students", "student_test_accuracies",
    "student_va_comparison",
    "accuracy_table", "layer_widths_table", "network_table", "positive_control_table", "probe_set_table",
    "study3_summary", "study3_table", "study4_table", "table1_predictions", "table1_test_set", "va_emergence_table",
    "va_partial_table",
    "amp_probe_of", "build_networks", "recalibrate_batchnorm", "sharma_train_config", "train_sharma",
    "training_steps", "untrained_sharma",
    "ground_truth_checks", "layer_claim_verdict", "learning_verdicts",
]  # fmt: skip
