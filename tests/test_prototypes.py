"""Tests of affectlab.prototypes (paper 000 Algorithm 1): binning, filling, prior, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from affectlab import prototypes as P

FINGERPRINT = {"grid": 3, "eps": 1.0, "teacher_config_hash": "abc123", "data_source": "unit test"}


def test_bin_centres():
    np.testing.assert_allclose(P.bin_centres(5), [-0.8, -0.4, 0.0, 0.4, 0.8])
    np.testing.assert_allclose(P.bin_centres(3), [-0.8, 0.0, 0.8])


def test_binning_nearest_centre_and_boundaries():
    va = np.array([
        [-1.0, 1.0],    # beyond the outer centres -> (0, 4)
        [-0.6, 0.2],    # both exactly half-way: ties go to the lower centre -> (0, 2)
        [-0.2, 0.6],    # half-way again -> (1, 3)
        [0.0, -0.59],   # just closer to -0.4 -> (2, 1)
        [0.79, -0.61],  # -> (4, 0)
    ])
    expected = [0 * 5 + 4, 0 * 5 + 2, 1 * 5 + 3, 2 * 5 + 1, 4 * 5 + 0]
    np.testing.assert_array_equal(P.bin_index(va, 5), expected)
    counts = P.coverage(va, 5)
    assert counts.shape == (5, 5) and counts.sum() == 5
    assert counts[0, 4] == 1 and counts[4, 0] == 1
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        P.bin_index(np.array([[1.5, 0.0]]), 5)
    with pytest.raises(ValueError, match="va"):
        P.bin_index(np.zeros((3, 3)), 5)


def test_build_bank_hand_made_case():
    # grid 3: centres -0.8, 0, 0.8; bins k = u * 3 + v
    features = np.array([
        [2.0, 0.0],   # -> (1, 0, ...) normalised [1, 0]; bin (0, 0) = 0
        [0.0, 3.0],   # -> [0, 1]; bin 0 as well -> mean [0.5, 0.5] (not re-normalised)
        [0.0, -1.0],  # bin (2, 2) = 8
        [1.0, 1.0],   # bin (1, 1) = 4 -> [1/sqrt2, 1/sqrt2]
    ])
    va = np.array([[-0.9, -0.7], [-0.5, -0.5], [0.9, 0.6], [0.1, -0.2]])
    protos, prior = P.build_prototype_bank(features, va, grid=3, eps=1.0)
    assert protos.shape == (9, 2) and prior.shape == (9,)
    r = 1 / np.sqrt(2)
    np.testing.assert_allclose(protos[0], [0.5, 0.5], atol=1e-7)
    np.testing.assert_allclose(protos[4], [r, r], atol=1e-7)
    np.testing.assert_allclose(protos[8], [0.0, -1.0], atol=1e-7)
    # empty bins take the nearest non-empty bin (grid distance; ties -> lowest bin index):
    # bin 1 (0,1): bin 0 and bin 4 both at distance 1 -> bin 0
    np.testing.assert_allclose(protos[1], protos[0])
    # bin 5 (1,2): bin 4 and bin 8 at distance 1 -> bin 4 (lower index)
    np.testing.assert_allclose(protos[5], protos[4])
    # bin 7 (2,1): bins 4 and 8 at distance 1 -> bin 4
    np.testing.assert_allclose(protos[7], protos[4])
    # bin 2 (0,2): bin 4 at sqrt2, bin 0 at 2, bin 8 at 2 -> bin 4
    np.testing.assert_allclose(protos[2], protos[4])
    # prior (N_k + 1) / (4 + 9)
    expected = np.array([3, 1, 1, 1, 2, 1, 1, 1, 2]) / 13
    np.testing.assert_allclose(prior, expected)
    assert prior.sum() == pytest.approx(1.0)


def test_nearest_fill_prefers_closer_bin():
    features = np.array([[1.0, 0.0], [0.0, 1.0]])
    va = np.array([[-0.8, -0.8], [0.8, 0.8]])  # bins 0 and 24 of the 5x5 grid
    protos, prior = P.build_prototype_bank(features, va, grid=5, eps=0.0)
    np.testing.assert_allclose(protos[1], [1.0, 0.0])   # (0,1): next to bin 0
    np.testing.assert_allclose(protos[23], [0.0, 1.0])  # (4,3): next to bin 24
    np.testing.assert_allclose(protos[4], [1.0, 0.0])   # (0,4): tie at distance 4 -> lower index 0
    assert prior[0] == prior[24] == 0.5 and prior[1:24].sum() == 0


def test_build_bank_rejects_bad_input():
    with pytest.raises(ValueError, match="rows"):
        P.build_prototype_bank(np.ones((3, 4)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="no samples"):
        P.build_prototype_bank(np.ones((0, 4)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="all-zero"):
        P.build_prototype_bank(np.zeros((1, 4)), np.zeros((1, 2)))


def _bank():
    rng = np.random.default_rng(0)
    return P.build_prototype_bank(rng.normal(size=(40, 8)), rng.uniform(-1, 1, size=(40, 2)), grid=3)


def test_save_load_round_trip(tmp_path):
    protos, prior = _bank()
    path = P.save_prototype_bank(tmp_path / "bank.npz", protos, prior, FINGERPRINT)
    sidecar = json.loads((tmp_path / "bank.npz.json").read_text())
    assert sidecar["fingerprint"] == FINGERPRINT and len(sidecar["sha256"]) == 64
    bank = P.load_prototype_bank(path)
    np.testing.assert_array_equal(bank.prototypes, protos)
    np.testing.assert_array_equal(bank.prior, prior)
    assert bank.fingerprint == FINGERPRINT
    assert bank.sha256 == sidecar["sha256"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_tampered_bank_is_detected(tmp_path):
    protos, prior = _bank()
    path = P.save_prototype_bank(tmp_path / "bank.npz", protos, prior, FINGERPRINT)
    P.save_prototype_bank(tmp_path / "other.npz", protos * 2, prior, FINGERPRINT)
    (tmp_path / "other.npz").replace(path)  # swap the content, keep the old sidecar
    with pytest.raises(ValueError, match=r"bank\.npz.*SHA-256"):
        P.load_prototype_bank(path)
    (tmp_path / "bank.npz.json").unlink()
    with pytest.raises(FileNotFoundError, match="sidecar"):
        P.load_prototype_bank(path)


def test_save_requires_a_complete_fingerprint(tmp_path):
    protos, prior = _bank()
    with pytest.raises(ValueError, match="teacher_config_hash"):
        incomplete = {"grid": 3, "eps": 1.0, "data_source": "x"}
        P.save_prototype_bank(tmp_path / "b.npz", protos, prior, incomplete)
    with pytest.raises(ValueError, match="grid=5"):
        P.save_prototype_bank(tmp_path / "b.npz", protos, prior, {**FINGERPRINT, "grid": 5})
