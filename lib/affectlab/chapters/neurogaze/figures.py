"""Chapter 01 figures: Fig. 4 (ablation timelines), Fig. 5 (present-only confusion), Fig. 6 (feature
embeddings), Fig. 7 (student and EEG-teacher training curves). Fig. 3's topomaps are the book's one
topomap figure, :func:`affectlab.plots.topomap_grid_figure`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from affectlab import metrics, plots
from affectlab.config import RunConfig
from affectlab.data.sets import FaceSet
from affectlab.data.taxonomy import FERPLUS_CLASSES
from affectlab.probing import pca_embed, umap_embed
from affectlab.sampling import stratified_indices

from .config import VARIANT_LABELS, ChapterConfig
from .data import FaceData
from .experiments import StudentRuns, TeacherRun, student_predictions

__all__ = [
    "ablation_timeline_figure",
    "present_only_confusion",
    "embedding_grid_figure",
    "student_curves_figure",
    "teacher_curves_figure",
]


def present_only_confusion(students: StudentRuns, faces: FaceSet, data: FaceData, cfg: ChapterConfig,
                           run: RunConfig, variant: str = "B3", title: str = "") -> Figure:
    """Fig. 5: row-normalised confusion over the classes present in ``faces`` with the prediction
    taken as the arg-max over those classes (present-only), for ``variant``'s first seed."""
    students.require(variant)
    pred = student_predictions(students.runs[(variant, students.seeds[0])], faces, data, cfg, run)
    true = pred.labels.numpy()
    present = sorted(set(true.tolist()))
    guess = np.array(present)[pred.outputs.numpy()[:, present].argmax(1)]
    cm = metrics.confusion_matrix(true, guess, labels=present)
    return plots.confusion_matrix_figure(cm, [FERPLUS_CLASSES[c] for c in present], title=title, normalize=True)


def ablation_timeline_figure(students: StudentRuns, title: str,
                             window: tuple[float, float] | None = None) -> Figure:
    """Fig. 4: validation macro-F1 and accuracy (%) per epoch for B0-B3 (mean over seeds, shaded
    min-max across seeds), with D-Geo's scaled ramp ``window`` (``cfg.geo_window()``) shaded grey
    when given (epoch e on the axis is the end of epoch e)."""
    fig = Figure(figsize=(10.0, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    for i, variant in enumerate(v for v in ("B0", "B1", "B2", "B3") if v in students.variants):
        hist = students.histories(variant)
        for ax, column, label in zip(axes, ("val_macro_f1", "val_accuracy"), ("Macro-F1 (%)", "Accuracy (%)")):
            values = np.stack([h[column].to_numpy() for h in hist]) * 100
            epochs = hist[0]["epoch"].to_numpy()
            ax.plot(epochs, values.mean(0), marker="o", markersize=3, color=f"C{i}", label=VARIANT_LABELS[variant])
            if len(values) > 1:
                ax.fill_between(epochs, values.min(0), values.max(0), color=f"C{i}", alpha=0.15)
            ax.set_xlabel("Epoch")
            ax.set_ylabel(f"FERPlus valid {label}")
            ax.grid(alpha=0.3)
    epochs = students.runs[(students.variants[0], students.seeds[0])].history["epoch"].to_numpy()
    for ax in axes:
        ax.set_xticks(epochs)
        if window is not None:
            ax.axvspan(*window, color="0.5", alpha=0.15, label="D-Geo ramp window")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig


def _embed(features: np.ndarray, method: str, seed: int) -> np.ndarray:
    """2-D embedding of Fig. 6: PCA and UMAP from :mod:`affectlab.probing`; t-SNE (the paper's
    Fig. 6 method, not used elsewhere in the book) with scikit-learn, single-threaded."""
    if method == "pca":
        return pca_embed(features, n_components=2, seed=seed)[0]
    if method == "umap":
        return umap_embed(features, n_neighbors=15, min_dist=0.1, seed=seed)
    if method == "tsne":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        perplexity = float(min(30.0, max(5.0, (len(features) - 1) / 3)))
        with threadpool_limits(1):  # OpenMP threads of sklearn's t-SNE spin badly on a busy CPU
            return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(features)
    raise ValueError(f"unknown embedding method {method!r}; choose 'tsne', 'umap' or 'pca'")


def embedding_grid_figure(students: StudentRuns, faces: FaceSet, data: FaceData, cfg: ChapterConfig,
                          run: RunConfig, title: str) -> Figure:
    """Fig. 6: 2-D embeddings (rows: ``cfg.embedding_methods``) of the student features of B0-B3
    (columns; first seed) on a class-stratified subset of ``cfg.embedding_points`` rows of
    ``faces``, coloured by the true class."""
    variants = [v for v in ("B0", "B1", "B2", "B3") if v in students.variants]
    rows_idx = stratified_indices(faces.labels, cfg.embedding_points, run.seed)
    fig = Figure(figsize=(3.4 * len(variants) + 1.6, 3.2 * len(cfg.embedding_methods)), layout="constrained")
    axes = fig.subplots(len(cfg.embedding_methods), len(variants), squeeze=False)
    for c, variant in enumerate(variants):
        pred = student_predictions(students.runs[(variant, students.seeds[0])], faces, data, cfg, run)
        feats = pred.features.numpy()[rows_idx].astype(np.float64)
        y = pred.labels.numpy()[rows_idx]
        for r, method in enumerate(cfg.embedding_methods):
            xy = _embed(feats, method, run.seed)
            ax = axes[r, c]
            for k in np.unique(y):
                ax.scatter(xy[y == k, 0], xy[y == k, 1], s=5, alpha=0.7, color=f"C{k}", label=FERPLUS_CLASSES[k])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{VARIANT_LABELS[variant]}", fontsize=9)
            if c == 0:
                ax.set_ylabel({"tsne": "t-SNE", "umap": "UMAP", "pca": "PCA"}[method], fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, markerscale=2, frameon=False)
    fig.suptitle(title, fontsize=11)
    return fig


def student_curves_figure(students: StudentRuns, cfg: ChapterConfig, variant: str, title: str) -> Figure:
    """Fig. 7 (top): ``variant``'s first-seed validation accuracy, macro-F1 and training loss per
    epoch, with D-Geo's (scaled) activation window shaded."""
    hist = students.runs[(variant, students.seeds[0])].history.copy()
    hist["val accuracy (%)"] = hist["val_accuracy"] * 100
    hist["val macro-F1 (%)"] = hist["val_macro_f1"] * 100
    hist["training loss"] = hist["loss"]
    return plots.training_curves_figure(hist, ["val accuracy (%)", "val macro-F1 (%)", "training loss"],
                                        shade=cfg.geo_window(), title=title,
                                        ylabels={"training loss": "Total loss (nats)"})


def teacher_curves_figure(teacher: TeacherRun, title: str) -> Figure:
    """Fig. 7 (bottom): the EEG teacher's validation CCC (mean of V and A) and training loss (MSE)."""
    hist = teacher.fit.history.copy()
    hist["val CCC (V/A mean)"] = hist["val_ccc"]
    hist["training MSE"] = hist["loss"]
    return plots.training_curves_figure(hist, ["val CCC (V/A mean)", "training MSE"], title=title,
                                        ylabels={"training MSE": "MSE (V/A units^2)", "val CCC (V/A mean)": "CCC"})
