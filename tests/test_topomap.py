"""Band power and scalp topomaps (NeuroGaze-Distill Sec. 3)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from affectlab.data.eeg import DEAP_CHANNELS, EAV_CHANNELS, EMOTIV_CHANNELS, load_eeglab_sample
from affectlab.data.manifest import read_manifest
from affectlab.topomap import (
    FEATURE_BANDS,
    PAPER_BANDS,
    TopomapLayout,
    band_power_welch,
    electrode_positions_2d,
    normalize_per_subject,
    standard_montage,
    topomaps_from_band_power,
)

INTERIOR = ("F3", "F4", "Fz", "FC1", "FC2", "C3", "C4", "Cz", "CP1", "CP2", "P3", "P4", "Pz", "AF3", "PO4")


@pytest.fixture(scope="module")
def deap_layout() -> TopomapLayout:
    return TopomapLayout.create(DEAP_CHANNELS, size=32)


def test_positions_match_mne_projection(deap_layout):
    import mne

    layout_module = pytest.importorskip("mne.channels.layout")
    find_coords = getattr(layout_module, "_find_topomap_coords", None)
    if find_coords is None:
        pytest.skip("MNE private helper _find_topomap_coords not available in this MNE version")
    info = mne.create_info(list(DEAP_CHANNELS), 128.0, "eeg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info.set_montage(standard_montage("standard_1020"))
    expected = find_coords(info, None, sphere=np.array(deap_layout.sphere))
    np.testing.assert_allclose(deap_layout.pos, expected, atol=1e-9)


def test_interpolation_matches_mne_griddata(deap_layout):
    topomap_module = pytest.importorskip("mne.viz.topomap")
    grid_data = getattr(topomap_module, "_GridData", None)
    if grid_data is None:
        pytest.skip("MNE private class _GridData not available in this MNE version")
    values = np.random.default_rng(0).normal(size=len(DEAP_CHANNELS))
    radius = deap_layout.radius
    reference = grid_data(deap_layout.pos, "cubic", "head", deap_layout.sphere[:2], (radius, radius), "mean")
    reference.set_values(values)
    inside = deap_layout.pixel_xy[deap_layout.mask]
    expected = reference(inside[:, 0], inside[:, 1])
    ours = deap_layout.render(values)[deap_layout.mask]
    # same method; tiny differences come from Delaunay tie-breaking of the extra ring
    assert np.abs(ours - expected).max() < 0.01 * np.abs(expected).max()


def test_single_active_electrode_peaks_at_its_position(deap_layout):
    for name in INTERIOR:
        values = np.zeros(len(DEAP_CHANNELS))
        values[DEAP_CHANNELS.index(name)] = 1.0
        image = deap_layout.render(values)
        peak = np.unravel_index(np.argmax(image), image.shape)
        row, col = deap_layout.pixel_of(name)
        assert abs(peak[0] - row) <= 1 and abs(peak[1] - col) <= 1, (name, peak, (row, col))
        assert image.max() == pytest.approx(1.0, abs=0.1)


def test_orientation_front_up_left_left(deap_layout):
    fz_row, _ = deap_layout.pixel_of("Fz")
    oz_row, _ = deap_layout.pixel_of("Oz")
    _, t7_col = deap_layout.pixel_of("T7")
    _, t8_col = deap_layout.pixel_of("T8")
    assert fz_row < oz_row and t7_col < t8_col


def test_topomaps_shapes_mask_and_constant_field():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(3, 5, 32)).astype(np.float32)
    maps, mask = topomaps_from_band_power(features, DEAP_CHANNELS, size=24)
    assert maps.shape == (3, 5, 24, 24) and maps.dtype == np.float32
    assert mask.shape == (24, 24) and mask.dtype == bool
    assert mask[12, 12] and not mask[0, 0] and not mask[23, 23]
    assert (maps[..., ~mask] == 0).all()
    constant = np.full((1, 1, 32), 2.5)
    flat, mask = topomaps_from_band_power(constant, DEAP_CHANNELS, size=24)
    np.testing.assert_allclose(flat[0, 0][mask], 2.5, atol=1e-4)


def test_every_channel_set_shares_geometry_and_fits_in_the_head():
    layouts = [TopomapLayout.create(names, size=32) for names in (DEAP_CHANNELS, EMOTIV_CHANNELS)]
    assert layouts[0].radius == layouts[1].radius
    np.testing.assert_array_equal(layouts[0].mask, layouts[1].mask)
    for layout in layouts:
        r = np.linalg.norm(layout.pos - np.asarray(layout.sphere[:2]), axis=1)
        assert (r < layout.radius).all()
    eav = TopomapLayout.create(EAV_CHANNELS, size=32)  # PO9/PO10 lie below the ring: allowed
    assert eav.render(np.ones(len(EAV_CHANNELS))).shape == (32, 32)


def test_channel_name_matching_and_errors():
    pos, _ = electrode_positions_2d(["FPz", "EEG Fp1", "T3", "t7"])
    np.testing.assert_allclose(pos[2], pos[3])  # T3 is the old name of T7
    with pytest.raises(ValueError, match=r"\['EOG1'\] have no position"):
        electrode_positions_2d(["Fz", "EOG1"])
    with pytest.raises(ValueError, match="features have 31 channels but 32 channel names"):
        topomaps_from_band_power(np.zeros((1, 5, 31)), DEAP_CHANNELS)
    with pytest.raises(ValueError, match="size must be an int >= 4"):
        TopomapLayout.create(DEAP_CHANNELS, size=2)


def test_band_power_welch_sine_amplitudes():
    sfreq, seconds = 128.0, 8.0
    t = np.arange(int(sfreq * seconds)) / sfreq
    x = np.stack([3.0 * np.sin(2 * np.pi * 10 * t), 2.0 * np.sin(2 * np.pi * 20 * t)])
    x = x + 0.01 * np.random.default_rng(0).normal(size=x.shape)
    bp = band_power_welch(x, sfreq, PAPER_BANDS)
    assert bp.shape == (1, 5, 2) and bp.dtype == np.float32
    names = list(PAPER_BANDS)
    assert int(np.argmax(bp[0, :, 0])) == names.index("alpha")
    assert int(np.argmax(bp[0, :, 1])) == names.index("beta")
    # a sine of amplitude A has power A^2 / 2
    assert np.exp(bp[0, names.index("alpha"), 0]) == pytest.approx(9.0 / 2, rel=0.1)
    assert np.exp(bp[0, names.index("beta"), 1]) == pytest.approx(4.0 / 2, rel=0.1)
    with pytest.raises(ValueError, match="above Nyquist"):
        band_power_welch(x, 50.0, FEATURE_BANDS)


def test_normalize_per_subject_ranges():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(20, 5, 32)) + np.repeat([0.0, 5.0], 10)[:, None, None]
    subject = np.repeat([1, 2], 10)
    out = normalize_per_subject(features, subject)
    for s in (1, 2):
        block = out[subject == s]
        np.testing.assert_allclose(block.min(axis=(0, 2)), 0.0, atol=1e-6)
        np.testing.assert_allclose(block.max(axis=(0, 2)), 1.0, atol=1e-6)
    # the subject offset of 5 is gone
    assert abs(out[subject == 1].mean() - out[subject == 2].mean()) < 0.1


def test_eeglab_sample_band_power_and_maps(shared_root):
    data = load_eeglab_sample(shared_root / "eeglab_sample", "all", read_manifest("eeglab_sample"))
    picks = [i for i, kind in enumerate(data.meta["ch_types"]) if kind == "eeg"]
    names = [data.ch_names[i] for i in picks]
    bp = band_power_welch(data.data[:, picks], data.sfreq, PAPER_BANDS)
    assert bp.shape == (1, 5, 30) and np.isfinite(bp).all()
    maps, mask = topomaps_from_band_power(bp, names, size=32)
    assert np.isfinite(maps).all() and maps[..., mask].std() > 0
