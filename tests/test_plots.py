"""Tests of affectlab.plots: every figure renders under Agg with a title and labelled axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from affectlab import plots  # noqa: E402


def _check(fig, tmp_path, name: str) -> None:
    assert isinstance(fig, Figure)
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert visible, "figure has no axes"
    for ax in visible:
        assert ax.get_xlabel() or ax.get_shared_x_axes().get_siblings(ax) != [ax], f"{name}: x label"
        assert ax.get_ylabel(), f"{name}: y label missing"
    titles = [ax.get_title() for ax in visible] + [fig.get_suptitle()]
    assert any(titles), f"{name}: no title"
    fig.savefig(tmp_path / f"{name}.png", dpi=50)
    assert (tmp_path / f"{name}.png").stat().st_size > 1000
    plt.close(fig)


def test_confusion_matrix_figure(tmp_path):
    cm = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 0]])
    names = ["neutral", "happiness", "surprise"]
    fig = plots.confusion_matrix_figure(cm, names, "ResNet-18 on FERPlus", normalize=True)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Predicted class" and ax.get_ylabel() == "True class"
    assert ax.get_title() == "ResNet-18 on FERPlus"
    texts = [t.get_text() for t in ax.texts]
    assert "0.83" in texts  # 5 / 6 on the diagonal; the empty row stays 0
    _check(fig, tmp_path, "cm")
    with pytest.raises(ValueError, match="class_names"):
        plots.confusion_matrix_figure(cm, ["a", "b"])


def test_training_curves_figure(tmp_path):
    history = pd.DataFrame({"epoch": range(1, 11), "train_loss": np.linspace(2, 1, 10),
                            "val_macro_f1": np.linspace(0.2, 0.6, 10)})
    ylabels = {"train_loss": "Loss (nats)", "val_macro_f1": "Macro-F1 (fraction)"}
    fig = plots.training_curves_figure(history, ["train_loss", "val_macro_f1"], shade=(4, 8),
                                       title="B3 on FERPlus (quick)", ylabels=ylabels)
    assert fig.axes[0].get_xlabel() == "Epoch" and fig.axes[0].get_ylabel() == "Loss (nats)"
    assert len(fig.axes[0].patches) == 1  # the shaded D-Geo window
    _check(fig, tmp_path, "curves")
    with pytest.raises(ValueError, match="not in history"):
        plots.training_curves_figure(history, ["nope"])


def test_embedding_figure(tmp_path):
    rng = np.random.default_rng(0)
    fig = plots.embedding_figure(rng.normal(size=(60, 2)), rng.integers(0, 3, 60),
                                 ["anger", "fear", "joy"], "UMAP of layer4 features",
                                 axis_labels=("UMAP 1 (a.u.)", "UMAP 2 (a.u.)"))
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["anger", "fear", "joy"]
    _check(fig, tmp_path, "embedding")


def test_coverage_heatmap(tmp_path):
    counts = np.arange(25).reshape(5, 5)
    fig = plots.coverage_heatmap(counts, "Prototype coverage, DEAP teacher (5x5)")
    heat = fig.axes[0]
    assert "Valence" in heat.get_xlabel() and "Arousal" in heat.get_ylabel()
    # valence on x: the image shows counts transposed (row = arousal)
    np.testing.assert_array_equal(heat.images[0].get_array(), counts.T)
    _check(fig, tmp_path, "coverage")


def test_reliability_diagram(tmp_path):
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4), size=200)
    y = rng.integers(0, 4, 200)
    fig = plots.reliability_diagram(probs, y, n_bins=10, title="POSTER-Var head, FERPlus test")
    assert "ECE" in " ".join(t.get_text() for t in fig.axes[0].get_legend().get_texts())
    _check(fig, tmp_path, "reliability")


def test_bar_with_ci(tmp_path):
    table = pd.DataFrame({
        "model": ["B0", "B1", "B0", "B1"],
        "metric": ["acc", "acc", "macro_f1", "macro_f1"],
        "value": [0.7, 0.75, 0.5, 0.55],
        "low": [0.68, 0.73, np.nan, 0.52],
        "high": [0.72, 0.77, np.nan, 0.58],
    })
    fig = plots.bar_with_ci(table, x="model", hue="metric", title="Ablation, FERPlus valid",
                            ylabel="Score (fraction)")
    assert fig.axes[0].get_ylabel() == "Score (fraction)"
    _check(fig, tmp_path, "bars")
    bad = table.assign(low=[0.8, 0.73, 0.4, 0.5])
    with pytest.raises(ValueError, match="outside"):
        plots.bar_with_ci(bad, x="model", hue="metric")


def test_data_chapter_figures_have_titles_and_labels():
    from affectlab import plots

    fig = plots.class_balance_figure({"train": {"a": 3, "b": 1}, "test": {"a": 1, "c": 2}}, title="T")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "Images (count)" and [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    fig = plots.electrode_layout_figure(np.array([[0.0, 0.05], [0.02, -0.03]]), ["Fz", "Pz"], 0.095)
    assert {t.get_text() for t in fig.axes[0].texts} == {"Fz", "Pz"}
    maps = np.random.default_rng(0).normal(size=(2, 3, 8, 8))
    fig = plots.topomap_grid_figure({"s1": maps[0], "s2": maps[1]}, ["theta", "alpha", "beta"], np.ones((8, 8)))
    assert fig.axes[0].get_title() == "theta" and fig.axes[0].get_ylabel() == "s1"
    with pytest.raises(ValueError, match="maps must be"):
        plots.topomap_grid_figure({"s1": maps[0]}, ["theta"], np.ones((8, 8)))
    with pytest.raises(ValueError, match="scales"):
        plots.topomap_grid_figure({"s1": maps[0]}, ["theta", "alpha", "beta"], np.ones((8, 8)), scales=["log"])
    fig = plots.image_grid_figure(np.zeros((3, 1, 4, 4), dtype=np.uint8), ["x", "y", "z"], columns=2)
    assert [ax.get_title() for ax in fig.axes[:3]] == ["x", "y", "z"]


def test_figures_render_as_png_for_notebooks():
    from affectlab.plots import _figure_png

    fig = plots.image_grid_figure(np.zeros((1, 1, 4, 4), dtype=np.uint8), ["x"], columns=1)
    assert _figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_topomap_figure_draws_frontal_electrodes_at_the_top_and_left_on_the_left():
    """One topomap figure for the book, read as MNE users read it: a map that is high only at the
    frontal electrodes is red in the top half of the drawn head (nose up), one high only at the
    left-hemisphere electrodes in the left half; the sensor dots sit where the electrodes are."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from affectlab import topomap
    from affectlab.data.eeg import DEAP_CHANNELS

    ch = list(DEAP_CHANNELS)
    frontal = np.array([c.upper().startswith(("FP", "AF", "F")) and not c.upper().startswith("FC") for c in ch])
    left = np.array([c[-1].isdigit() and int(c[-1]) % 2 == 1 for c in ch])  # odd 10-20 numbers: left
    rendered = topomap.topomaps_from_band_power(np.stack([frontal, left]).astype(float)[:, None, :], ch, size=32)
    fig = plots.topomap_grid_figure({"frontal": rendered.maps[0], "left": rendered.maps[1]}, ["power"],
                                    rendered.mask, title="orientation", ch_names=ch, scales=["own", "own"])
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba()).astype(int)
    height = rgba.shape[0]
    red = (rgba[..., 0] > 150) & (rgba[..., 1] < 90) & (rgba[..., 2] < 90)
    for ax, axis in ((fig.axes[0], 1), (fig.axes[1], 0)):  # the map axes come first, colour bars after
        x0, y0, x1, y1 = np.asarray(ax.get_window_extent().extents).round().astype(int)
        box = np.zeros_like(red)
        box[height - y1:height - y0, x0:x1] = True
        rows, cols = np.nonzero(red & box)
        assert len(rows) > 20, "no strongly red pixels drawn in the map"
        centre_x, centre_y = ax.transData.transform((0.0, 0.0))  # head centre, display pixels (y up)
        if axis == 1:  # frontal: red pixels above the head centre (image rows grow downwards)
            assert np.mean(height - rows) > centre_y + 5
            assert np.mean((height - rows) > centre_y) > 0.9
        else:  # left hemisphere: red pixels left of the head centre
            assert np.mean(cols) < centre_x - 5
    dots = fig.axes[0].collections[0].get_offsets()
    assert dots.shape == (len(ch), 2)
    assert dots[ch.index("Fz"), 1] > 0.3 and dots[ch.index("Oz"), 1] < -0.3  # Fz front, Oz back
    assert dots[ch.index("C3"), 0] < -0.3 and dots[ch.index("C4"), 0] > 0.3  # C3 left, C4 right
