"""Generated EEG: planted effects are recoverable, reproducible with a seed, finite."""

from __future__ import annotations

import numpy as np
import pytest

from affectlab.data.eeg import DEAP_CHANNELS, EAV_CHANNELS, FEATURE_BANDS
from affectlab.data.generate.eeg import (
    ALPHA_ASYMMETRY,
    BETA_AROUSAL,
    FRONTAL_EMG_CHANNELS,
    TEMPORAL_EMG_CHANNELS,
    frontal_side,
    generate_band_power_set,
    simulate_eeg,
)
from affectlab.topomap import band_power_welch

BANDS = {"alpha": (8.0, 12.0), "beta": (13.0, 30.0), "gamma": (30.0, 45.0), "emg": (20.0, 45.0)}


@pytest.fixture(scope="module")
def simulated():
    rng = np.random.default_rng(11)
    valence = rng.uniform(-1, 1, 60)
    arousal = rng.uniform(-1, 1, 60)
    return simulate_eeg(60, 4.0, 128.0, valence, arousal, seed=3)


def test_simulated_shapes_units_finite(simulated):
    assert simulated.data.shape == (60, 32, 512) and simulated.data.dtype == np.float32
    assert simulated.ch_names == DEAP_CHANNELS and simulated.sfreq == 128.0
    assert np.isfinite(simulated.data).all()
    assert 5.0 < float(simulated.data.std()) < 30.0  # microvolts
    assert simulated.source.startswith("generated:")


def test_planted_alpha_asymmetry_recoverable(simulated):
    bp = band_power_welch(simulated.data, simulated.sfreq, BANDS)
    names = list(simulated.ch_names)
    asymmetry = bp[:, 0, names.index("F4")] - bp[:, 0, names.index("F3")]
    valence = simulated.labels["valence"]
    assert np.corrcoef(asymmetry, valence)[0, 1] > 0.5
    slope = np.polyfit(valence, asymmetry, 1)[0]
    assert 0.3 < slope < 1.2 * ALPHA_ASYMMETRY  # diluted by the 1/f background, never inflated
    # posterior alpha (no asymmetry planted there) does not track valence
    posterior = bp[:, 0, names.index("P4")] - bp[:, 0, names.index("P3")]
    assert abs(np.corrcoef(posterior, valence)[0, 1]) < 0.4


def test_planted_arousal_in_fast_bands(simulated):
    bp = band_power_welch(simulated.data, simulated.sfreq, BANDS)
    arousal = simulated.labels["arousal"]
    assert np.corrcoef(bp[:, 1].mean(axis=1), arousal)[0, 1] > 0.5
    assert np.corrcoef(bp[:, 2].mean(axis=1), arousal)[0, 1] > 0.5
    assert np.corrcoef(bp[:, 0].mean(axis=1), arousal)[0, 1] < 0


def test_reproducible_with_seed():
    a = simulate_eeg(3, 2.0, 100.0, [0.5, -0.5, 0.0], 0.2, ch_names=EAV_CHANNELS, seed=7)
    b = simulate_eeg(3, 2.0, 100.0, [0.5, -0.5, 0.0], 0.2, ch_names=EAV_CHANNELS, seed=7)
    c = simulate_eeg(3, 2.0, 100.0, [0.5, -0.5, 0.0], 0.2, ch_names=EAV_CHANNELS, seed=8)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.allclose(a.data, c.data)
    assert a.data.shape == (3, 30, 200)


def test_emg_bursts_land_on_the_named_channels_when_driven():
    drive = np.zeros((6, 512, 2))
    drive[:, 256:, 0] = 1.0  # jaw/mouth drive in the second half
    eeg = simulate_eeg(6, 4.0, 128.0, 0.0, 0.0, emg_drive=drive, seed=1)
    assert eeg.meta["emg_channels"][0] == [n for n in DEAP_CHANNELS if n in TEMPORAL_EMG_CHANNELS]
    assert eeg.meta["emg_channels"][1] == [n for n in DEAP_CHANNELS if n in FRONTAL_EMG_CHANNELS]
    late = band_power_welch(eeg.data[:, :, 256:], 128.0, {"emg": BANDS["emg"]})[:, 0]
    early = band_power_welch(eeg.data[:, :, :256], 128.0, {"emg": BANDS["emg"]})[:, 0]
    gain = (late - early).mean(axis=0)
    temporal = [DEAP_CHANNELS.index(n) for n in eeg.meta["emg_channels"][0]]
    others = [i for i, n in enumerate(DEAP_CHANNELS) if n not in eeg.meta["emg_channels"][0]]
    assert gain[temporal].min() > 1.5  # e^1.5 = 4.5 x the 20-45 Hz power
    assert np.abs(gain[others]).max() < 0.7
    custom = simulate_eeg(2, 1.0, 128.0, 0.0, 0.0, emg_drive=np.ones((2, 128, 1)), emg_groups=[["Cz"]], seed=0)
    assert custom.meta["emg_channels"] == [["Cz"]]


def test_simulate_bad_parameters():
    with pytest.raises(ValueError, match="parameter valence"):
        simulate_eeg(3, 1.0, 128.0, [0.1, 0.2], 0.0)
    with pytest.raises(ValueError, match=r"parameter arousal must be finite and in \[-1, 1\]"):
        simulate_eeg(2, 1.0, 128.0, 0.0, [2.0, 0.0])
    with pytest.raises(ValueError, match="parameter emg_drive"):
        simulate_eeg(2, 1.0, 128.0, 0.0, 0.0, emg_drive=np.ones((2, 100, 1)))
    with pytest.raises(ValueError, match="parameter sfreq"):
        simulate_eeg(2, 1.0, 20.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="parameter background"):
        simulate_eeg(2, 1.0, 128.0, 0.0, 0.0, background=np.zeros((2, 31, 128)))


def test_real_background_replaces_pink_noise():
    background = np.zeros((2, 32, 256))
    eeg = simulate_eeg(2, 2.0, 128.0, 0.0, 0.0, background=background, seed=0)
    bp = band_power_welch(eeg.data, 128.0, {"theta": (4.0, 7.0), "alpha": (8.0, 12.0)})
    assert (bp[:, 1] - bp[:, 0]).min() > 3.0  # only the planted rhythms remain: no 1/f theta


def test_band_power_set_planted_effects_and_labels():
    data = generate_band_power_set(n_subjects=16, trials_per_subject=40, seed=0)
    assert data.data.shape == (640, 5, 32) and data.kind == "band_power"
    assert data.bands == FEATURE_BANDS and data.ch_names == DEAP_CHANNELS
    assert np.isfinite(data.data).all() and 1.0 < data.data.mean() < 8.0
    v, a = data.labels["valence"], data.labels["arousal"]
    assert v.min() >= -1 and v.max() <= 1
    np.testing.assert_array_equal(data.labels["valence_binary"], (v > 0).astype(int))
    np.testing.assert_array_equal(data.labels["arousal_binary"], (a > 0).astype(int))
    assert np.bincount(data.labels["emotion"]).tolist() == [80] * 8
    names = list(DEAP_CHANNELS)
    alpha = FEATURE_BANDS.index("alpha")
    asymmetry = data.data[:, alpha, names.index("F4")] - data.data[:, alpha, names.index("F3")]
    assert np.corrcoef(asymmetry, v)[0, 1] > 0.5
    assert np.polyfit(v, asymmetry, 1)[0] == pytest.approx(ALPHA_ASYMMETRY, abs=0.25)
    beta = data.data[:, FEATURE_BANDS.index("beta")].mean(axis=1)
    assert np.polyfit(a, beta, 1)[0] == pytest.approx(BETA_AROUSAL, abs=0.25)
    # the class's circumplex point is the mean of its trials' (v, a)
    happy = data.meta["class_names"].index("happiness")
    centre = np.array(data.meta["circumplex"]["happiness"])
    rows = data.labels["emotion"] == happy
    np.testing.assert_allclose([v[rows].mean(), a[rows].mean()], centre, atol=0.06)


def test_band_power_set_reproducible_and_validated():
    a = generate_band_power_set(2, 8, seed=4)
    b = generate_band_power_set(2, 8, seed=4)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.labels["emotion"], b.labels["emotion"])
    assert not np.allclose(a.data, generate_band_power_set(2, 8, seed=5).data)
    with pytest.raises(ValueError, match="parameter n_subjects"):
        generate_band_power_set(0, 8)
    with pytest.raises(ValueError, match="no circumplex point"):
        generate_band_power_set(2, 8, class_names=("neutral", "boredom"))


def test_frontal_side_convention():
    assert [frontal_side(n) for n in ("F3", "F4", "Fp1", "AF4", "Fz", "FC5", "C4")] == [-1, 1, -1, 1, 0, 0, 0]
