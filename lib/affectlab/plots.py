"""The book's recurring figures (matplotlib; every function returns a ``Figure``).

Figures are built with ``matplotlib.figure.Figure`` directly, not ``pyplot``: they work under the
Agg backend, do not pile up in pyplot's registry, and show once when a notebook cell returns them.
Save with ``fig.savefig(path)``.

- :func:`confusion_matrix_figure`: counts or row-normalised confusions (paper 000 Fig. 5).
- :func:`training_curves_figure`: per-epoch history with an optional shaded window (the D-Geo
  window epochs 20 -> 60 of paper 000 Fig. 7).
- :func:`embedding_figure`: 2-D embedding (UMAP / t-SNE / PCA) coloured by label (paper 000 Fig. 6,
  paper 001 Figs. 3-5).
- :func:`coverage_heatmap`: V/A prototype-bin counts, heatmap and centre markers (paper 000 Fig. 2).
- :func:`reliability_diagram`: calibration of a classifier (POSTER-Var chapter).
- :func:`bar_with_ci`: a results table as bars with confidence intervals.
- :func:`class_balance_figure`: images per class for several datasets/splits (data chapter).
- :func:`electrode_layout_figure`: 2-D electrode positions of a montage, labelled (data chapter).
- :func:`topomap_grid_figure`: rows of band topomaps, nose up with head outline and sensors, the
  one topomap figure of the book (paper 000 Fig. 3; chapters 00 and 01).
- :func:`image_grid_figure`: a labelled grid of greyscale images (generated faces only: research
  datasets' face images are never shown in the book).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from affectlab.metrics import expected_calibration_error, reliability_curve

__all__ = [
    "confusion_matrix_figure",
    "training_curves_figure",
    "embedding_figure",
    "coverage_heatmap",
    "reliability_diagram",
    "bar_with_ci",
    "class_balance_figure",
    "electrode_layout_figure",
    "topomap_grid_figure",
    "sensor_positions_unit",
    "image_grid_figure",
]

def _figure_png(fig: Figure) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def enable_notebook_display() -> bool:
    """Show ``Figure`` objects returned by a notebook cell as PNG, whatever the matplotlib backend.

    Figures here are built without pyplot, so IPython's inline backend never registers them; this
    registers a PNG formatter for :class:`~matplotlib.figure.Figure` in the running IPython shell
    (papermill and JupyterLab kernels). Called on import; returns whether a shell was found.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.display_formatter.formatters["image/png"].for_type(Figure, _figure_png)
    return True


enable_notebook_display()

FONT = {"title": 12, "label": 11, "tick": 9, "annot": 8}


def _style(ax: Any, xlabel: str, ylabel: str, title: str | None = None) -> None:
    ax.set_xlabel(xlabel, fontsize=FONT["label"])
    ax.set_ylabel(ylabel, fontsize=FONT["label"])
    if title:
        ax.set_title(title, fontsize=FONT["title"])
    ax.tick_params(labelsize=FONT["tick"])


def confusion_matrix_figure(
    cm: Any,
    class_names: Sequence[str],
    title: str = "Confusion matrix",
    normalize: bool = False,
) -> Figure:
    """Heatmap of a confusion matrix (rows true, columns predicted) with each cell annotated.

    ``normalize=True`` divides each row by its count (recall on the diagonal); an empty row stays 0.
    """
    mat = np.asarray(cm, dtype=np.float64)
    k = len(class_names)
    if mat.shape != (k, k):
        raise ValueError(f"cm must be ({k}, {k}) for {k} class_names; got shape {mat.shape}")
    if normalize:
        rows = mat.sum(axis=1, keepdims=True)
        mat = np.divide(mat, rows, out=np.zeros_like(mat), where=rows > 0)
    fig = Figure(figsize=(1.0 + 0.65 * k, 0.6 + 0.6 * k), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(mat, cmap="Blues", vmin=0, vmax=1 if normalize else max(mat.max(), 1))
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    threshold = (1 if normalize else max(mat.max(), 1)) / 2
    for i in range(k):
        for j in range(k):
            text = f"{mat[i, j]:.2f}" if normalize else f"{int(round(mat[i, j]))}"
            ax.text(j, i, text, ha="center", va="center", fontsize=FONT["annot"],
                    color="white" if mat[i, j] > threshold else "black")
    _style(ax, "Predicted class", "True class", title)
    bar = fig.colorbar(image, ax=ax, shrink=0.8)
    bar.set_label("Fraction of true class" if normalize else "Count (samples)", fontsize=FONT["label"])
    return fig


def training_curves_figure(
    history: pd.DataFrame,
    columns: Sequence[str],
    shade: tuple[float, float] | None = None,
    title: str = "Training curves",
    x: str = "epoch",
    ylabels: dict[str, str] | None = None,
    shade_label: str = "D-Geo window",
) -> Figure:
    """One panel per column of ``history`` against ``x`` (the index when ``x`` is not a column).

    ``ylabels`` maps a column to its axis label with units (default: the column name).
    ``shade=(start, end)`` greys that span of epochs in every panel (paper 000 Fig. 7).
    """
    if not isinstance(history, pd.DataFrame) or history.empty:
        raise ValueError("parameter history must be a non-empty pandas DataFrame (one row per epoch)")
    columns = list(columns)
    missing = [c for c in columns if c not in history.columns]
    if not columns or missing:
        raise ValueError(f"columns {missing or columns} not in history; it has {list(history.columns)}")
    xs = history[x].to_numpy() if x in history.columns else history.index.to_numpy()
    ylabels = ylabels or {}
    n = len(columns)
    ncols = min(n, 3)
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, column in zip(axes, columns):
        ax.plot(xs, history[column].to_numpy(), marker="o", markersize=3, linewidth=1.5)
        if shade is not None:
            ax.axvspan(shade[0], shade[1], color="grey", alpha=0.2, label=shade_label)
            ax.legend(fontsize=FONT["annot"])
        _style(ax, "Epoch" if x == "epoch" else x, ylabels.get(column, column), column)
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=FONT["title"] + 1)
    return fig


def embedding_figure(
    xy: Any,
    colour_labels: Any,
    names: Sequence[str] | None = None,
    title: str = "Embedding",
    axis_labels: tuple[str, str] = ("Component 1 (a.u.)", "Component 2 (a.u.)"),
) -> Figure:
    """Scatter of a 2-D embedding, one colour per label, with a legend naming the labels.

    ``names[label]`` is the legend text of integer label ``label`` (default: the label itself).
    """
    pts = np.asarray(xy, dtype=np.float64)
    lab = np.asarray(colour_labels)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"parameter xy must be (N, 2); got shape {pts.shape}")
    if lab.shape != (len(pts),):
        raise ValueError(f"colour_labels must be ({len(pts)},); got shape {lab.shape}")
    fig = Figure(figsize=(6.0, 5.0), layout="constrained")
    ax = fig.add_subplot()
    palette = [f"C{i}" for i in range(10)] + ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"]
    integer_labels = np.issubdtype(lab.dtype, np.integer)
    for i, value in enumerate(np.unique(lab)):
        rows = lab == value
        name = names[int(value)] if names is not None and integer_labels else str(value)
        ax.scatter(pts[rows, 0], pts[rows, 1], s=8, alpha=0.7, color=palette[i % len(palette)],
                   label=name)
    ax.legend(fontsize=FONT["annot"], markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5),
              frameon=False)
    _style(ax, axis_labels[0], axis_labels[1], title)
    return fig


def coverage_heatmap(
    counts: Any,
    title: str = "Prototype coverage",
    centres: Any | None = None,
    with_centres: bool = True,
) -> Figure:
    """Counts per V/A bin (paper 000 Fig. 2). ``counts[u, v]``: u = valence bin, v = arousal bin
    (as :func:`affectlab.prototypes.coverage` returns). Left: heatmap with valence on x and arousal
    on y; right (``with_centres``): grid centres with marker area proportional to counts.
    """
    mat = np.asarray(counts, dtype=np.float64)
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        raise ValueError(f"parameter counts must be a square (grid, grid) array; got shape {mat.shape}")
    grid = mat.shape[0]
    if centres is None:
        centres = np.linspace(-0.8, 0.8, grid) if grid > 1 else np.zeros(1)
    centres = np.asarray(centres, dtype=np.float64)
    ticks = [f"{c:+.1f}" for c in centres]
    fig = Figure(figsize=(10.0 if with_centres else 5.2, 4.4), layout="constrained")
    axes = fig.subplots(1, 2 if with_centres else 1, squeeze=False).ravel()
    ax = axes[0]
    image = ax.imshow(mat.T, origin="lower", cmap="viridis")
    ax.set_xticks(range(grid), ticks)
    ax.set_yticks(range(grid), ticks)
    for u in range(grid):
        for v in range(grid):
            ax.text(u, v, f"{int(mat[u, v])}", ha="center", va="center", fontsize=FONT["annot"],
                    color="white" if mat[u, v] < mat.max() / 2 else "black")
    _style(ax, "Valence bin centre (scaled to [-1, 1])", "Arousal bin centre (scaled to [-1, 1])",
           "Samples per bin")
    bar = fig.colorbar(image, ax=ax, shrink=0.85)
    bar.set_label("Count (samples)", fontsize=FONT["label"])
    if with_centres:
        ax2 = axes[1]
        vv, aa = np.meshgrid(centres, centres, indexing="ij")
        area = 600.0 * mat / max(mat.max(), 1.0)
        ax2.scatter(vv.ravel(), aa.ravel(), s=np.maximum(area.ravel(), 4.0), alpha=0.6,
                    edgecolor="black")
        ax2.set_xlim(-1, 1)
        ax2.set_ylim(-1, 1)
        ax2.set_xticks(centres, ticks)
        ax2.set_yticks(centres, ticks)
        ax2.set_aspect("equal")
        ax2.grid(alpha=0.3)
        _style(ax2, "Valence (scaled to [-1, 1])", "Arousal (scaled to [-1, 1])",
               "Grid centres, marker area \u221d count")
    fig.suptitle(title, fontsize=FONT["title"] + 1)
    return fig


def reliability_diagram(
    probs: Any, y_true: Any, n_bins: int = 15, title: str = "Reliability diagram"
) -> Figure:
    """Accuracy vs confidence per bin (bars), the identity line and the ECE in the legend;
    below, the share of samples per bin. Uses :func:`affectlab.metrics.reliability_curve`.
    """
    curve = reliability_curve(probs, y_true, n_bins)
    ece = expected_calibration_error(probs, y_true, n_bins)
    fig = Figure(figsize=(5.2, 6.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = curve["upper"] - curve["lower"]
    centres = curve["lower"] + width / 2
    acc = np.nan_to_num(curve["accuracy"])
    conf = np.nan_to_num(curve["confidence"])
    top.bar(centres, acc, width=width, edgecolor="black", color="C0", alpha=0.8,
            label=f"accuracy per bin (ECE = {ece:.3f})")
    used = curve["count"] > 0
    top.bar(centres[used], (conf - acc)[used], bottom=acc[used], width=width[used], color="C3",
            alpha=0.3, edgecolor="C3", label="gap to confidence")
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.legend(fontsize=FONT["annot"], loc="upper left")
    _style(top, "", "Accuracy (fraction correct)", title)
    total = max(curve["count"].sum(), 1)
    bottom.bar(centres, curve["count"] / total, width=width, color="grey", edgecolor="black")
    _style(bottom, "Confidence (max predicted probability)", "Fraction of samples")
    return fig


def bar_with_ci(
    table: pd.DataFrame,
    x: str = "model",
    y: str = "value",
    low: str = "low",
    high: str = "high",
    hue: str | None = None,
    title: str = "Results with 95% CI",
    ylabel: str | None = None,
) -> Figure:
    """Bars of ``table[y]`` per ``table[x]`` (grouped by ``hue``) with error bars from ``low`` to
    ``high``. Rows with NaN bounds (e.g. a single seed, no interval) get no error bar.
    """
    if not isinstance(table, pd.DataFrame) or table.empty:
        raise ValueError("parameter table must be a non-empty pandas DataFrame")
    needed = [c for c in (x, y, low, high) + ((hue,) if hue else ()) if c not in table.columns]
    if needed:
        raise ValueError(f"table lacks columns {needed}; it has {list(table.columns)}")
    bad = table[(table[low] > table[y] + 1e-12) | (table[high] < table[y] - 1e-12)]
    if len(bad):
        raise ValueError(f"rows {bad.index.tolist()} have {y} outside [{low}, {high}]")
    xs = list(dict.fromkeys(table[x].tolist()))
    groups = list(dict.fromkeys(table[hue].tolist())) if hue else [None]
    fig = Figure(figsize=(max(5.0, 1.1 * len(xs) * len(groups) + 1.5), 4.2), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(groups)
    for g_i, group in enumerate(groups):
        sub = table if group is None else table[table[hue] == group]
        pos, val, err_lo, err_hi = [], [], [], []
        for x_i, name in enumerate(xs):
            row = sub[sub[x] == name]
            if row.empty:
                continue
            r = row.iloc[0]
            pos.append(x_i - 0.4 + width * (g_i + 0.5))
            val.append(r[y])
            err_lo.append(r[y] - r[low] if np.isfinite(r[low]) else np.nan)  # NaN: no bar drawn
            err_hi.append(r[high] - r[y] if np.isfinite(r[high]) else np.nan)
        ax.bar(pos, val, width=width * 0.95, yerr=[err_lo, err_hi], capsize=3,
               color=f"C{g_i}", label=None if group is None else str(group))
    ax.set_xticks(range(len(xs)), [str(v) for v in xs], rotation=20, ha="right")
    if hue:
        ax.legend(fontsize=FONT["annot"], title=hue)
    ax.grid(axis="y", alpha=0.3)
    _style(ax, x, ylabel or y, title)
    return fig


def class_balance_figure(counts: dict[str, dict[str, int]], title: str = "Class balance") -> Figure:
    """Grouped bars: ``counts[set_name][class_name]`` images per class, one bar group per class."""
    if not counts:
        raise ValueError("parameter counts is empty: give at least one {set: {class: count}}")
    classes: list[str] = []
    for per_class in counts.values():
        classes += [c for c in per_class if c not in classes]
    n_sets = len(counts)
    width = 0.8 / n_sets
    fig = Figure(figsize=(max(6.0, 0.9 * len(classes) + 2), 3.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(classes))
    for i, (name, per_class) in enumerate(counts.items()):
        values = [per_class.get(c, 0) for c in classes]
        ax.bar(x + (i - (n_sets - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x, classes, rotation=30, ha="right")
    _style(ax, "Class", "Images (count)", title)
    ax.legend(fontsize=FONT["tick"], frameon=False)
    return fig


def electrode_layout_figure(
    positions: Any, ch_names: Sequence[str], head_radius: float, title: str = "Electrode layout"
) -> Figure:
    """Electrodes at their 2-D topomap positions (nose up), each labelled, with the head outline."""
    pos = np.asarray(positions, dtype=np.float64)
    if pos.shape != (len(ch_names), 2):
        raise ValueError(f"positions must be ({len(ch_names)}, 2) for {len(ch_names)} channels; got {pos.shape}")
    fig = Figure(figsize=(4.8, 4.8), layout="constrained")
    ax = fig.subplots()
    theta = np.linspace(0, 2 * np.pi, 200)
    ax.plot(head_radius * np.cos(theta), head_radius * np.sin(theta), color="black", lw=1)
    ax.plot([-0.1 * head_radius, 0, 0.1 * head_radius],
            [head_radius, 1.1 * head_radius, head_radius], color="black", lw=1)
    ax.scatter(pos[:, 0], pos[:, 1], s=18, color="tab:blue")
    for (x, y), name in zip(pos, ch_names):
        ax.annotate(name, (x, y), xytext=(0, 4), textcoords="offset points", ha="center",
                    fontsize=FONT["annot"])
    ax.set_aspect("equal")
    _style(ax, "Left – right (m)", "Posterior – anterior (m)", title)
    return fig


#: Head outline in units of the head radius, as ``mne.viz.plot_topomap`` draws it (its ear and nose
#: coordinates, given there for a head of radius 0.5, doubled): nose at +y (front), ears at +-x.
_NOSE_XY = np.array([[-0.18, 0.984], [0.0, 1.15], [0.18, 0.984]])
_EAR_X = 2 * np.array([0.497, 0.510, 0.518, 0.5299, 0.5419, 0.54, 0.547, 0.532, 0.510, 0.489])
_EAR_Y = 2 * np.array([0.0555, 0.0775, 0.0783, 0.0746, 0.0555, -0.0055, -0.0932, -0.1313, -0.1384, -0.1199])
TOPOMAP_SCALES = ("shared", "symmetric", "own")


def _draw_head(ax: Any, sensors: np.ndarray | None) -> None:
    """Head circle (radius 1), nose, ears and, when given, sensor dots on a topomap axes."""
    theta = np.linspace(0, 2 * np.pi, 200)
    style = dict(color="black", lw=0.9)
    ax.plot(np.cos(theta), np.sin(theta), **style)
    ax.plot(_NOSE_XY[:, 0], _NOSE_XY[:, 1], **style)
    ax.plot(_EAR_X, _EAR_Y, **style)
    ax.plot(-_EAR_X, _EAR_Y, **style)
    if sensors is not None:
        ax.scatter(sensors[:, 0], sensors[:, 1], s=4, color="black", linewidths=0, zorder=3)
    ax.set_xlim(-1.2, 1.2)
    ax.set_ylim(-1.15, 1.25)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def sensor_positions_unit(ch_names: Sequence[str], montage: str = "standard_1020") -> np.ndarray:
    """Electrode positions (n, 2) in the frame of :mod:`affectlab.topomap`'s images: head centre at
    (0, 0), head-circle radius 1, +y the nose (front), +x the subject's right."""
    from affectlab import topomap

    pos, sphere = topomap.electrode_positions_2d(ch_names, montage)
    return (pos - np.asarray(sphere[:2])) / topomap.head_radius(montage)


def topomap_grid_figure(
    rows: Any,
    band_names: Sequence[str],
    mask: Any,
    title: str = "Topomaps",
    *,
    ch_names: Sequence[str] | None = None,
    montage: str = "standard_1020",
    scales: Sequence[str] | None = None,
    cmap: str = "RdBu_r",
    colorbar_label: str = "Band power (normalised, a.u.)",
) -> Figure:
    """The book's topomap figure (paper 000 Fig. 3), drawn as MNE draws scalp maps: one row of band
    maps per entry of ``rows`` ({label: (bands, H, W)} images from
    :func:`affectlab.topomap.topomaps_from_band_power`: row 0 the front, column 0 the subject's
    left), nose up, the subject's left on the left, with the head outline (nose, ears) and, when
    ``ch_names`` are given, the sensor positions of ``montage`` as dots. Pixels outside ``mask``
    (the head circle) stay blank.

    ``scales[i]`` sets row i's colour range: "shared" rows share one range (min to max over all
    of them; the default for every row), "symmetric" rows get their own range symmetric about 0
    (differences), "own" their own min-max. Every row has a colour bar labelled ``colorbar_label``.
    """
    if not isinstance(rows, Mapping):
        raise TypeError(f"parameter rows must be a dict {{row label: (bands, H, W) maps}}; got {type(rows).__name__}")
    names = list(rows)
    if not names:
        raise ValueError("parameter rows is empty: give at least one row of maps")
    inside = np.asarray(mask, dtype=bool)
    arrays = {n: np.asarray(rows[n], dtype=np.float64) for n in names}
    for name, maps in arrays.items():
        if maps.ndim != 3 or maps.shape[0] != len(band_names) or maps.shape[1:] != inside.shape:
            raise ValueError(f"row {name!r}: maps must be (bands={len(band_names)}, H, W) with (H, W) = mask "
                             f"shape {inside.shape}; got {maps.shape}")
    scales = list(scales) if scales is not None else ["shared"] * len(names)
    if len(scales) != len(names) or any(m not in TOPOMAP_SCALES for m in scales):
        raise ValueError(f"parameter scales must give one of {TOPOMAP_SCALES} for each of {len(names)} rows; "
                         f"got {scales!r}")
    sensors = None if ch_names is None else sensor_positions_unit(ch_names, montage)
    shared = [arrays[n][:, inside] for n, m in zip(names, scales) if m == "shared"]
    shared_range = (min(a.min() for a in shared), max(a.max() for a in shared)) if shared else None
    fig = Figure(figsize=(1.9 * len(band_names) + 1.4, 1.9 * len(names) + 0.7), layout="constrained")
    axes = fig.subplots(len(names), len(band_names), squeeze=False)
    for r, (name, mode) in enumerate(zip(names, scales)):
        maps = arrays[name]
        values = maps[:, inside]
        if mode == "shared":
            vmin, vmax = shared_range
        elif mode == "symmetric":
            bound = float(np.abs(values).max()) or 1.0
            vmin, vmax = -bound, bound
        else:
            vmin, vmax = float(values.min()), float(values.max())
        image = None
        for b, band in enumerate(band_names):
            ax = axes[r, b]
            # origin="upper" puts image row 0 (the front of the head) at y = +1 (the nose)
            image = ax.imshow(np.where(inside, maps[b], np.nan), cmap=cmap, vmin=vmin, vmax=vmax,
                              origin="upper", extent=(-1.0, 1.0, -1.0, 1.0), interpolation="nearest")
            image.set_clip_path(Circle((0.0, 0.0), 1.0, transform=ax.transData))  # pixels end at the scalp
            _draw_head(ax, sensors)
            if r == 0:
                ax.set_title(str(band).replace("_", " "), fontsize=FONT["label"])
            if b == 0:
                ax.set_ylabel(name, fontsize=FONT["annot"])
        bar = fig.colorbar(image, ax=axes[r, :], shrink=0.85)
        bar.set_label(colorbar_label, fontsize=FONT["annot"])
    fig.suptitle(title, fontsize=FONT["title"])
    return fig


def image_grid_figure(
    images: Any, labels: Sequence[str], columns: int = 8, title: str = "Images"
) -> Figure:
    """Greyscale images (N, 1, H, W) or (N, H, W) in a grid, each titled with its label."""
    arr = np.asarray(images)
    if arr.ndim == 4:
        arr = arr[:, 0]
    if arr.ndim != 3 or len(arr) != len(labels):
        raise ValueError(f"images must be (N, H, W) with N = len(labels) = {len(labels)}; got {arr.shape}")
    n = len(arr)
    rows = int(np.ceil(n / columns))
    fig = Figure(figsize=(1.5 * columns, 1.7 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(arr[i], cmap="gray", vmin=0, vmax=255)
            ax.set_title(labels[i], fontsize=FONT["annot"])
    fig.suptitle(title, fontsize=FONT["title"])
    return fig
