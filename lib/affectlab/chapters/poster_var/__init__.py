"""Chapter 04, POSTER-Var (Lv, Zhang & Tsoi; paper 003): what ``notebooks/04_poster_var.py`` calls.

The notebook shows what these functions return; the model (:mod:`affectlab.models.poster`),
trainer (:mod:`affectlab.train`), statistics (:mod:`affectlab.stats`), sampling and reporting are
the library's. Reading order, one module per concern:

1. :mod:`.config`: :class:`ChapterConfig` / :func:`chapter_config`, sizes per profile (smoke /
   quick / paper = Table 1, FER+ column, and the public code).
2. :mod:`.data`: :func:`load_chapter_data` (FERPlus, plus RAF-DB / AffectNet when the data root
   has them; the generated stand-in without a data root), stratified subsets, 112-px tensors.
3. :mod:`.pretrain`: the landmark branch trained on generated faces with exact landmarks
   (:func:`pretrain_landmark_branch`, NME) and the IR-50 trunk pretrained once
   (:func:`pretrain_image_trunk`), stand-ins for weights that cannot be downloaded.
4. :mod:`.experiments`: Table 3, every ablation row trained or loaded (:func:`run_table_3`),
   timed by :mod:`.timing`.
5. :mod:`.tables`: Table 3 beside the paper's, paired row differences, Table 4; :mod:`.paper`:
   the paper's own numbers.
6. :mod:`.figures`: Figs. 4, 5, 3 (Grad-CAM on generated faces) and 1 (evidence per class).
7. :mod:`.calibration`: beyond the paper, is VICH calibrated (ECE, NLL, Monte-Carlo predictive)?
8. :mod:`.pyramids`: the frozen branches' maps computed once for every row (quick profile);
   :mod:`.selection`: every choice made on validation images, never on test;
   :mod:`.votes`: VICH against the FERPlus human votes (JS / KL, entropy correlation, top-2).
9. :mod:`.report`: deviations, recorded headline numbers and findings; :mod:`.dry_run`: the
   paper profile for one step on the CPU.

Loss: plain cross-entropy against the FERPlus vote distribution (votes over the 8 emotions,
renormalised; the public code divides by 10, keeping unknown / not-a-face votes in the denominator:
a stated deviation), no KL term, as the published code (``loss_name: cross_entropy``); the paper's text
and Table 1 say "CE + KL". The trainer's soft-target cross-entropy equals
:func:`affectlab.models.poster.vich_loss` with ``kl_weight=0``.
"""

from affectlab.models.poster import ABLATION_ROWS, PosterConfig, PosterModel, ablation_configs

from .calibration import (PRIOR_ROW, CalibrationResult, calibration_comparison, monte_carlo_probabilities,
                          sigma_summary, softmax_probabilities)
from .config import (CHAPTER, IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD, RESULT_KEYS, ROW_LABELS, ChapterConfig,
                     chapter_config)
from .data import (ChapterData, DatasetSplits, face_tensor_data, keep_present_classes, labelled, load_chapter_data,
                   prepare_splits, stratified_faces)
from .dry_run import paper_dry_run
from .experiments import (AblationResult, RowPyramids, RowRun, build_row_model, choose_row_lr, row_pyramids,
                          row_train_config, run_ablation, run_table_3, train_row)
from .figures import (ClassEvidenceMaps, GradcamResult, class_evidence_maps, confusion_figure,
                      distribution_image_rows, expression_distribution_figure, gradcam_on_generated_faces)
from .paper import PAPER_TABLE_2, PAPER_TABLE_3, PAPER_TABLE_4
from .pretrain import (ImageTrunk, LandmarkBranch, landmark_targets, normalised_mean_error, pretrain_image_trunk,
                       pretrain_landmark_branch)
from .pyramids import CachedPyramidRow, compute_pyramids, pyramid_data, pyramid_shapes
from .selection import LearningRateSelection, require_selection_faces, select_row_lr
from .votes import (VoteComparison, entropy, entropy_correlation, js_divergence, kl_divergence, top2_agreement,
                    vote_comparison)
from .report import deviations_frame, findings, neurogaze_vich_statement, record_headline_numbers
from .tables import (ablation_differences, ablation_flags_frame, accuracy_summary, config_frame,
                     paired_accuracy_difference, paper_table_2_frame, paper_table_4_frame, per_seed_frame,
                     row_summary, table_3_frame, table_4_frame, trunk_frame)
from .timing import count_flops, cpu_threads, measure_inference_times, time_inference

__all__ = [
    "ABLATION_ROWS", "PosterConfig", "PosterModel", "ablation_configs",
    "PRIOR_ROW", "CalibrationResult", "calibration_comparison", "monte_carlo_probabilities", "sigma_summary",
    "softmax_probabilities",
    "CHAPTER", "IMAGE_SIZE", "IMAGENET_MEAN", "IMAGENET_STD", "RESULT_KEYS", "ROW_LABELS", "ChapterConfig",
    "chapter_config",
    "ChapterData", "DatasetSplits", "face_tensor_data", "keep_present_classes", "labelled", "load_chapter_data",
    "prepare_splits", "stratified_faces",
    "paper_dry_run",
    "AblationResult", "RowPyramids", "RowRun", "build_row_model", "choose_row_lr", "row_pyramids", "row_train_config",
    "run_ablation", "run_table_3", "train_row",
    "CachedPyramidRow", "compute_pyramids", "pyramid_data", "pyramid_shapes",
    "LearningRateSelection", "require_selection_faces", "select_row_lr",
    "VoteComparison", "entropy", "entropy_correlation", "js_divergence", "kl_divergence", "top2_agreement",
    "vote_comparison",
    "ClassEvidenceMaps", "GradcamResult", "class_evidence_maps", "confusion_figure", "distribution_image_rows",
    "expression_distribution_figure", "gradcam_on_generated_faces",
    "PAPER_TABLE_2", "PAPER_TABLE_3", "PAPER_TABLE_4",
    "ImageTrunk", "LandmarkBranch", "landmark_targets", "normalised_mean_error", "pretrain_image_trunk",
    "pretrain_landmark_branch",
    "deviations_frame", "findings", "neurogaze_vich_statement", "record_headline_numbers",
    "ablation_differences", "ablation_flags_frame", "accuracy_summary", "config_frame", "paired_accuracy_difference",
    "paper_table_2_frame", "paper_table_4_frame", "per_seed_frame", "row_summary", "table_3_frame", "table_4_frame",
    "trunk_frame",
    "count_flops", "cpu_threads", "measure_inference_times", "time_inference",
]
