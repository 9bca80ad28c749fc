"""Chapter 02 figures, each returning a ``matplotlib.figure.Figure``: the embedding grids of Studies
1-2 (Figs. 2a-c, 3), faces along embedding or PC axes (Figs. 2d, 6), silhouettes of the role
layers (Fig. 4), layer profiles, the penultimate-layer PCs against valence/arousal (Fig. 5), the
predictions on the PC plane (Fig. 7) and Grad-CAM per block (Fig. 2e-f) of paper 001. Only
generated faces are ever drawn (:func:`~.data.require_generated`)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from affectlab import plots
from affectlab.data.taxonomy import FERPLUS_CLASSES

from .config import ROLES
from .data import ProbeSet, require_generated
from .experiments import PCStudy


def generated_faces_figure(probe: ProbeSet, identities: int = 2) -> Figure:
    """The first face of every expression of the first ``identities`` identities of a generated
    set (e.g. KDEF-like faces rendered from the ICT-FaceKit model), one row per identity."""
    require_generated(probe)
    identity, labels = probe.faces.identity.numpy(), probe.faces.labels.numpy()
    expressions = np.unique(labels)
    first = [int(np.flatnonzero((identity == i) & (labels == c))[0])
             for i in np.unique(identity)[:identities] for c in expressions if ((identity == i) & (labels == c)).any()]
    return plots.image_grid_figure(probe.faces.images[first], [FERPLUS_CLASSES[int(labels[i])] for i in first],
                                   columns=len(expressions),
                                   title=f"{probe.title}, {identities} identities (rendered from the ICT-FaceKit model)")


_PALETTE = [f"C{i}" for i in range(10)] + ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
                                             "#e6550d", "#31a354", "#756bb1", "#636363"]


def _scatter_by_label(ax: Any, xy: np.ndarray, labels: np.ndarray, names: Sequence[str] | None, legend: bool) -> None:
    values = np.unique(labels)
    for i, value in enumerate(values):
        rows = labels == value
        name = names[int(value)] if names is not None and 0 <= int(value) < len(names) else str(value)
        colour = "lightgrey" if value < 0 else _PALETTE[i % len(_PALETTE)]
        ax.scatter(xy[rows, 0], xy[rows, 1], s=6, alpha=0.7, color=colour, label=name if value >= 0 else "unknown")
    if legend and len(values) <= 12:
        ax.legend(fontsize=7, markerscale=2, loc="best", frameon=False)


def probe_colourings(probe: ProbeSet, max_named_identities: int = 12) -> dict[str, tuple[np.ndarray, Sequence[str] | None]]:
    """The two colourings of every embedding figure in Studies 1-2 (Figs. 2-3): by identity (named in
    the legend when there are at most ``max_named_identities``) and by expression (FERPlus names)."""
    names = probe.faces.identity_names if probe.n_subjects <= max_named_identities else None
    return {"identity": (probe.faces.identity.numpy(), names),
            "expression": (probe.faces.labels.numpy(), FERPLUS_CLASSES)}


def embedding_grid_figure(embeddings: Mapping[str, np.ndarray], colourings: Mapping[str, tuple[np.ndarray, Sequence[str] | None]],
                          title: str, axis_names: tuple[str, str] = ("UMAP1", "UMAP2"),
                          subtitles: Mapping[str, str] | None = None) -> Figure:
    """Rows = colourings (e.g. by identity, by expression), columns = embeddings; each panel is a
    scatter of one 2-D embedding coloured by one label (legend when there are at most 12 labels)."""
    if not embeddings or not colourings:
        raise ValueError("embedding_grid_figure needs at least one embedding and one colouring")
    cols, rows = list(embeddings), list(colourings)
    fig = Figure(figsize=(3.6 * len(cols), 3.3 * len(rows) + 0.5), layout="constrained")
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for i, colouring in enumerate(rows):
        labels, names = colourings[colouring]
        for j, name in enumerate(cols):
            xy = np.asarray(embeddings[name])
            ax = axes[i, j]
            _scatter_by_label(ax, xy, np.asarray(labels), names, legend=j == len(cols) - 1)
            ax.set_title(f"{name}\n{(subtitles or {}).get(name, '')}".strip() + f" - by {colouring}", fontsize=9)
            axis = axis_names if "PCA" not in name else ("PC1", "PC2")
            ax.set_xlabel(f"{axis[0]} (a.u.)", fontsize=8)
            ax.set_ylabel(f"{axis[1]} (a.u.)", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=11)
    return fig


def face_strip_figure(probe: ProbeSet, strips: Mapping[str, np.ndarray], title: str) -> Figure:
    """Rows of generated faces (e.g. sampled along UMAP1/UMAP2 or PC1/PC2), low to high; each face
    captioned with its planted expression. Research datasets' faces are refused."""
    require_generated(probe)
    n = max(len(v) for v in strips.values())
    fig = Figure(figsize=(0.75 * n + 1.2, 1.05 * len(strips) + 0.6), layout="constrained")
    axes = fig.subplots(len(strips), n, squeeze=False)
    for i, (name, idx) in enumerate(strips.items()):
        for j in range(n):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(idx):
                ax.imshow(probe.faces.images[int(idx[j]), 0].numpy(), cmap="gray", vmin=0, vmax=255)
                label = int(probe.faces.labels[int(idx[j])])
                ax.set_title(FERPLUS_CLASSES[label][:4] if label >= 0 else "?", fontsize=6)
            if j == 0:
                ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=10)
    return fig


def silhouette_roles_figure(table: pd.DataFrame, title: str, titles: Mapping[str, str] | None = None) -> Figure:
    """Fig. 4: silhouette per role layer (early, identity layer, penultimate, final) w.r.t.
    expression (left) and identity (right), one line per network, 95 % CI error bars; one row of
    panels per dataset (``table`` from :func:`study3_table`; ``titles`` names the datasets)."""
    data_names = list(dict.fromkeys(table["dataset"]))
    fig = Figure(figsize=(10, 3.2 * len(data_names) + 0.5), layout="constrained")
    axes = fig.subplots(len(data_names), 2, squeeze=False)
    x = np.arange(len(ROLES))
    for i, dataset in enumerate(data_names):
        sub = table[table["dataset"] == dataset]
        for j, target in enumerate(("expression", "identity")):
            ax = axes[i, j]
            for k, network in enumerate(dict.fromkeys(sub["network"])):
                rows = sub[sub["network"] == network].set_index("role").loc[list(ROLES)]
                y = rows[f"{target} silhouette"].to_numpy(float)
                err = np.stack([y - rows[f"{target} silhouette low"].to_numpy(float),
                                rows[f"{target} silhouette high"].to_numpy(float) - y])
                ax.errorbar(x + 0.05 * (k - 1.5), y, yerr=np.nan_to_num(err), marker="o", capsize=3, label=network,
                            linestyle="--" if network == "NN3" else "-")
            ax.axhline(0, color="grey", linewidth=0.8)
            ax.set_xticks(x, ["early", "ID layer", "penultimate", "final"], fontsize=8)
            ax.set_ylabel(f"silhouette w.r.t. {target}", fontsize=9)
            ax.set_title(f"{(titles or {}).get(dataset, dataset)}: {target}", fontsize=10)
            ax.grid(alpha=0.3)
            if j == 1:
                ax.legend(fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=11)
    return fig


def layer_profile_figure(profiles: Mapping[str, pd.DataFrame], columns: Sequence[str], title: str) -> Figure:
    """One panel per column of :func:`layer_profile` tables (e.g. identity silhouette, V/A R^2),
    one line per network against relative depth (first probed layer 0, output 1)."""
    fig = Figure(figsize=(4.3 * len(columns), 3.5), layout="constrained")
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    for ax, column in zip(axes, columns):
        for name, table in profiles.items():
            depth = table["depth"].to_numpy(float)
            ax.plot(depth / max(depth.max(), 1), table[column].to_numpy(float), marker="o", markersize=3, label=name)
        ax.set_xlabel("relative depth (0 = first probed layer, 1 = output)", fontsize=8)
        ax.set_ylabel(column, fontsize=9)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=11)
    return fig


def penultimate_figure(studies: Sequence[PCStudy], title: str) -> Figure:
    """Fig. 5: per network, PC1 vs PC2 of the penultimate layer coloured by expression (the U-shaped
    scatter), then PC1 against valence and PC2 against arousal with the least-squares line and r."""
    fig = Figure(figsize=(12, 3.4 * len(studies) + 0.5), layout="constrained")
    axes = fig.subplots(len(studies), 3, squeeze=False)
    for i, s in enumerate(studies):
        ax = axes[i, 0]
        _scatter_by_label(ax, s.pcs, s.labels, FERPLUS_CLASSES, legend=True)
        ax.set_xlabel(f"PC1 ({100 * s.explained[0]:.1f} % var.)", fontsize=8)
        ax.set_ylabel(f"PC2 ({100 * s.explained[1]:.1f} % var.)", fontsize=8)
        ax.set_title(f"{s.network} {s.layer}", fontsize=9)
        for ax, comp, target, y in ((axes[i, 1], 0, "valence", s.valence), (axes[i, 2], 1, "arousal", s.arousal)):
            reg = s.regression.loc[(f"PC{comp + 1}", target)]
            ax.scatter(s.pcs[:, comp], y, s=6, alpha=0.5)
            xs = np.linspace(s.pcs[:, comp].min(), s.pcs[:, comp].max(), 2)
            ax.plot(xs, reg["slope"] * xs + reg["intercept"], color="C3")
            ax.set_xlabel(f"PC{comp + 1} (a.u.)", fontsize=8)
            ax.set_ylabel(f"{target} (-1 to 1)", fontsize=8)
            ax.set_title(f"{s.network}: r = {reg['r']:.2f}, p = {reg['p']:.1e}, n = {int(reg['n'])}", fontsize=9)
    fig.suptitle(title, fontsize=11)
    return fig


def prediction_map_figure(study: PCStudy, title: str) -> Figure:
    """Fig. 7: one panel per expression on the penultimate PC1/PC2 plane: green = faces of that
    expression classified correctly, red = wrongly, grey = other expressions."""
    present = [c for c in np.unique(study.labels) if c >= 0]
    cols = min(4, len(present))
    rows = int(np.ceil(len(present) / cols))
    fig = Figure(figsize=(3.2 * cols, 3.0 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, c in zip(axes, present):
        this = study.labels == c
        correct = this & (study.predicted == c)
        ax.scatter(*study.pcs[~this].T, s=4, color="lightgrey")
        ax.scatter(*study.pcs[this & ~correct].T, s=8, color="tab:red", label="wrong")
        ax.scatter(*study.pcs[correct].T, s=8, color="tab:green", label="correct")
        ax.set_title(f"{FERPLUS_CLASSES[c]} ({100 * correct.sum() / this.sum():.0f} % correct, n = {this.sum()})", fontsize=9)
        ax.set_xlabel("PC1 (a.u.)", fontsize=8)
        ax.set_ylabel("PC2 (a.u.)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(present):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=11)
    return fig


def gradcam_figure(images: np.ndarray, cams: Mapping[str, np.ndarray], captions: Sequence[str], title: str) -> Figure:
    """Fig. 2(e-f): each face, then its Grad-CAM map per layer over the face (blue 0 ... red 1)."""
    layers = list(cams)
    fig = Figure(figsize=(2.2 * (len(layers) + 1), 2.4 * len(images) + 0.5), layout="constrained")
    axes = fig.subplots(len(images), len(layers) + 1, squeeze=False)
    for i, image in enumerate(images):
        axes[i, 0].imshow(image, cmap="gray", vmin=0, vmax=255)
        axes[i, 0].set_title(captions[i], fontsize=7)
        for j, layer in enumerate(layers, start=1):
            axes[i, j].imshow(image, cmap="gray", vmin=0, vmax=255)
            shown = axes[i, j].imshow(cams[layer][i], cmap="jet", alpha=0.5, vmin=0, vmax=1)
            axes[i, j].set_title(layer, fontsize=8)
        for ax in axes[i]:
            ax.axis("off")
    fig.colorbar(shown, ax=axes[:, -1].tolist(), shrink=0.7, label="Grad-CAM (0-1)")
    fig.suptitle(title, fontsize=10)
    return fig


#: The curves of the three-stage figure: (profile column, CI columns, label, colour).
THREE_STAGE_CURVES: tuple[tuple[str, str, str, str, str], ...] = (
    ("identity silhouette", "identity silhouette low", "identity silhouette high", "identity (silhouette)", "C0"),
    ("V/A partial R2 after category", "V/A partial R2 low", "V/A partial R2 high",
     "V/A beyond category (partial R^2)", "C2"),
    ("expression silhouette", "expression silhouette low", "expression silhouette high",
     "category (expression silhouette)", "C1"),
)


def three_stage_figure(profiles: Mapping[str, pd.DataFrame], title: str,
                       paper_identity: Mapping[str, float] | None = None,
                       paper_layers: Sequence[str] = ()) -> Figure:
    """The paper's three-stage picture (identity early, V/A at the penultimate layer, categories at
    the output) measured: one panel per network (:func:`~.layers.layer_profile` tables on one
    probing set), the identity silhouette, the partial R^2 of V/A after category and the expression
    silhouette against the probed layers, each with its 95 % cluster-bootstrap band (identities
    resampled). A curve that is NaN everywhere (e.g. V/A beyond category on CK+, whose V/A is the
    label's circumplex point) is left out and named in the panel. With ``paper_identity`` (layer ->
    silhouette, Fig. 2a-c) and ``paper_layers`` (the Sharma layers in order), a first panel draws
    the paper's picture: its identity silhouettes and where it places V/A (penultimate) and the
    categories (output); it has no per-layer V/A or category curve to draw."""
    panels = (["paper"] if paper_identity else []) + list(profiles)
    fig = Figure(figsize=(3.6 * len(panels), 3.7), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    start = 0
    if paper_identity:
        ax = axes[0]
        xs = np.arange(len(paper_layers))
        known = [(list(paper_layers).index(k), v) for k, v in paper_identity.items() if k in paper_layers]
        ax.plot([x for x, _ in known], [v for _, v in known], "o-", color="C0", label="identity (silhouette)")
        for layer, text, colour in (("dropout_4", "V/A", "C2"), ("out_layer", "categories", "C1")):
            if layer in paper_layers:
                x = list(paper_layers).index(layer)
                ax.axvspan(x - 0.4, x + 0.4, color=colour, alpha=0.2)
                ax.text(x, 0.9, text, ha="center", fontsize=7, color=colour)
        ax.set_xticks(xs, list(paper_layers), rotation=60, fontsize=6)
        ax.set_title("paper: NN1 on DISFA (Fig. 2, Study 4)", fontsize=9)
        ax.axhline(0, color="grey", lw=0.5)
        ax.grid(alpha=0.3)
        start = 1
    for ax, (name, table) in zip(axes[start:], profiles.items()):
        xs = np.arange(len(table))
        missing = []
        for column, low, high, label, colour in THREE_STAGE_CURVES:
            values = table[column].to_numpy(float) if column in table else np.full(len(table), np.nan)
            if not np.isfinite(values).any():
                missing.append(label.split(" (")[0])
                continue
            ax.plot(xs, values, "o-", markersize=3, color=colour, label=label)
            ax.fill_between(xs, table[low].to_numpy(float), table[high].to_numpy(float), color=colour, alpha=0.2)
        if missing:
            ax.text(0.02, 0.02, "not defined here: " + ", ".join(missing), transform=ax.transAxes, fontsize=6)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xticks(xs, list(table.index), rotation=60, fontsize=6)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("silhouette / partial R^2", fontsize=8)
    handles = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=3, fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig
