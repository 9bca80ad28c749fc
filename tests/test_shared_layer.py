"""Tests of the shared layer every chapter calls: affectlab.stats, affectlab.sampling, affectlab.reporting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from affectlab import metrics as M
from affectlab import reporting, sampling
from affectlab import stats as S


def test_paired_difference_cancels_shared_item_difficulty():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    a = np.where(rng.random(400) < 0.8, y, (y + 1) % 3)
    b = np.where(rng.random(400) < 0.02, (a + 1) % 3, a)  # b = a with a few extra errors
    diff = S.paired_difference(M.accuracy, y, a, b, n_resamples=300, seed=1)
    assert diff.value == pytest.approx(M.accuracy(y, a) - M.accuracy(y, b))
    assert diff.low > 0, "a beats b on the same items: the paired CI must exclude 0"
    # the two unpaired intervals overlap although the paired one does not
    _, lo_a, hi_a = S.bootstrap_ci(M.accuracy, y, a, n_resamples=300, seed=1)
    _, lo_b, hi_b = S.bootstrap_ci(M.accuracy, y, b, n_resamples=300, seed=1)
    assert lo_a < hi_b
    assert S.verdict_from_ci(diff.low, diff.high) == "greater"
    assert S.verdict_from_ci(-diff.high, -diff.low) == "less"
    assert S.verdict_from_ci(-0.1, 0.1) == "undecided"
    assert S.verdict_from_ci(float("nan"), 0.1) == "undecided"
    with pytest.raises(ValueError, match="low <= high"):
        S.verdict_from_ci(0.2, 0.1)
    with pytest.raises(ValueError, match="same items"):
        S.paired_difference(M.accuracy, y, a, b[:10])


def test_paired_difference_clusters_move_whole_clusters():
    y = np.zeros(100, int)
    a = np.repeat([0, 1], 50)
    b = np.zeros(100, int)
    clusters = np.repeat(np.arange(2), 50)
    diff = S.paired_difference(M.accuracy, y, a, b, n_resamples=200, seed=0, clusters=clusters)
    # with two clusters each resample holds 0, 1 or 2 copies of the perfect cluster
    assert diff.low <= 0.0 and diff.high >= -1.0


def test_stratified_indices_keep_proportions_and_every_class():
    y = np.array([0] * 70 + [1] * 25 + [2] * 5 + [-1] * 3)
    idx = sampling.stratified_indices(y, 20, seed=0)
    assert len(idx) == 20 and np.all(np.diff(idx) > 0)
    counts = np.bincount(y[idx], minlength=3)
    assert counts.tolist() == [14, 5, 1]
    assert np.array_equal(idx, sampling.stratified_indices(y, 20, seed=0))
    assert len(sampling.stratified_indices(y, None, seed=0)) == 100
    with pytest.raises(ValueError, match="below the 3 classes"):
        sampling.stratified_indices(y, 2, seed=0)


def test_class_capped_indices_cap_each_class():
    y = np.array([0] * 10 + [1] * 3 + [-1] * 2)
    idx = sampling.class_capped_indices(y, 4, seed=0)
    assert np.bincount(y[idx]).tolist() == [4, 3]
    assert len(sampling.class_capped_indices(y, None, seed=0)) == 13
    with pytest.raises(ValueError, match="cap"):
        sampling.class_capped_indices(y, 0, seed=0)


def test_group_disjoint_split_never_shares_a_group():
    groups = np.repeat(np.arange(10), 7)
    parts = sampling.group_disjoint_split(groups, [0.6, 0.2, 0.2], seed=3)
    assert sum(len(p) for p in parts) == 70
    sets = [set(groups[p]) for p in parts]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert [len(s) for s in sets] == [6, 2, 2]
    with pytest.raises(ValueError, match="fractions"):
        sampling.group_disjoint_split(groups, [0.5, 0.6], seed=0)


def test_cells_and_tables():
    assert reporting.ci_cell(0.123, 0.1, 0.2) == "0.12 [0.10, 0.20]"
    assert reporting.ci_cell(74.06, 72.6, 75.6, digits=1, unit=" %") == "74.1 % [72.6, 75.6]"
    assert reporting.ci_cell(float("nan")) == "-"
    assert reporting.ci_cell(1.0) == "1.00"
    dev = reporting.deviations_table([("input", "224 px", "48 px", "CPU budget")])
    assert list(dev.columns) == ["aspect", "paper", "here", "why"] and dev.iloc[0]["here"] == "48 px"
    with pytest.raises(ValueError, match="expected"):
        reporting.deviations_table([("too", "few")])
    ref = reporting.reference_rows(np.array([0, 0, 0, 1]), ["neutral", "happiness"])
    assert ref.iloc[0]["accuracy"] == pytest.approx(75.0)
    assert "neutral" in ref.index[0]
    table = reporting.ours_beside_paper({"B0": "70 [68, 72]"}, {"B0": 78.2, "Full": 83.1})
    assert table.loc["Full", "ours"] == "-" and table.loc["B0", "paper"] == 78.2


def test_results_recorder_writes_the_documented_schema(tmp_path):
    rec = reporting.ResultsRecorder("01_neurogaze_distill", profile="smoke", seed=0, data="embedded",
                                    out_dir=tmp_path)
    text = rec.record("b0.test.accuracy", 74.06, ci=(72.6, 75.6), unit="%", n=3137, seeds=[0, 1],
                      source="real: ferplus/FER2013Test", paper=78.2)
    assert text == "74.1 % [72.6, 75.6]"
    rec.record("teacher.ccc_valence", 0.08, ci=None, unit="", n=40)
    obj = reporting.read_results(tmp_path / "01_neurogaze_distill.results.json")
    assert obj["chapter"] == "01_neurogaze_distill" and obj["profile"] == "smoke"
    number = obj["numbers"]["b0.test.accuracy"]
    assert number == {"value": 74.06, "ci": [72.6, 75.6], "unit": "%", "n": 3137, "seeds": [0, 1],
                      "source": "real: ferplus/FER2013Test", "paper": 78.2}
    assert obj["numbers"]["teacher.ccc_valence"]["ci"] is None
    assert obj["numbers"]["teacher.ccc_valence"]["seeds"] == [0]
    with pytest.raises(ValueError, match="lower-case dotted"):
        rec.record("B0 accuracy", 1.0)
    bad = tmp_path / "bad.results.json"
    bad.write_text(json.dumps({"chapter": "x"}))
    with pytest.raises(ValueError, match="bad.results.json"):
        reporting.read_results(bad)
