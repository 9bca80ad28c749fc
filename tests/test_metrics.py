"""Tests of affectlab.metrics: agreement with scikit-learn, hand-made cases, bootstrap, vertex errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from affectlab import metrics as M
from affectlab import stats as S


def _random_case(seed: int, n: int = 120, k: int = 6, drop: tuple[int, ...] = ()):
    """Labels in 0..k-1 with classes ``drop`` absent from y_true; predictions right ~60% of the time."""
    rng = np.random.default_rng(seed)
    keep = [c for c in range(k) if c not in drop]
    y_true = rng.choice(keep, size=n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, k, size=n))
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y_true]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y_true, y_pred, probs


CASES = [(0, ()), (1, (2,)), (2, (0, 5)), (3, ())]


@pytest.mark.parametrize("seed,drop", CASES)
def test_classification_metrics_agree_with_sklearn(seed, drop):
    y_true, y_pred, _ = _random_case(seed, drop=drop)
    assert M.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-9)
    assert M.macro_f1(y_true, y_pred) == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", zero_division=0), abs=1e-9
    )
    labels = list(range(6))
    assert M.macro_f1(y_true, y_pred, labels=labels) == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0), abs=1e-9
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about classes only in y_pred
        expected_bacc = skm.balanced_accuracy_score(y_true, y_pred)
    assert M.balanced_accuracy(y_true, y_pred) == pytest.approx(expected_bacc, abs=1e-9)
    for normalize in (None, "true"):
        np.testing.assert_allclose(
            M.confusion_matrix(y_true, y_pred, labels, normalize=normalize),
            skm.confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize),
            atol=1e-12,
        )
    prf = M.per_class_precision_recall(y_true, y_pred, labels)
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    np.testing.assert_allclose(prf["precision"], p, atol=1e-12)
    np.testing.assert_allclose(prf["recall"], r, atol=1e-12)
    np.testing.assert_allclose(prf["f1"], f, atol=1e-12)
    np.testing.assert_array_equal(prf["support"], s)


def test_confusion_matrix_subset_of_labels_matches_sklearn():
    y_true, y_pred, _ = _random_case(4)
    labels = [4, 0, 2]
    np.testing.assert_array_equal(
        M.confusion_matrix(y_true, y_pred, labels), skm.confusion_matrix(y_true, y_pred, labels=labels)
    )
    prf = M.per_class_precision_recall(y_true, y_pred, labels)
    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    ours = np.c_[prf["precision"], prf["recall"], prf["f1"]]
    np.testing.assert_allclose(ours, np.c_[p, r, f], atol=1e-12)


def test_macro_auroc_agrees_with_sklearn_all_classes_present():
    y_true, _, probs = _random_case(5, n=200)
    expected = skm.roc_auc_score(y_true, probs, multi_class="ovr", average="macro")
    assert M.macro_auroc(y_true, probs) == pytest.approx(expected, abs=1e-9)


def test_macro_auroc_handles_ties_like_sklearn():
    rng = np.random.default_rng(6)
    y_true = rng.integers(0, 3, size=90)
    y_true[:3] = [0, 1, 2]
    probs = np.round(rng.dirichlet(np.ones(3), size=90), 1)  # many tied scores
    probs = probs / probs.sum(axis=1, keepdims=True)
    expected = np.mean([skm.roc_auc_score(y_true == c, probs[:, c]) for c in range(3)])
    assert M.macro_auroc(y_true, probs) == pytest.approx(expected, abs=1e-9)


def test_macro_auroc_skips_absent_classes_with_a_warning():
    y_true, _, probs = _random_case(7, n=150, drop=(1, 4))
    present = [0, 2, 3, 5]
    expected = np.mean([skm.roc_auc_score(y_true == c, probs[:, c]) for c in present])
    with pytest.warns(UserWarning, match=r"\[1, 4\]"):
        value = M.macro_auroc(y_true, probs)
    assert value == pytest.approx(expected, abs=1e-9)
    assert math.isnan(M.per_class_auroc(y_true, probs)[1])


def test_negative_log_likelihood_agrees_with_sklearn_log_loss():
    y_true, _, probs = _random_case(8, drop=(3,))
    expected = skm.log_loss(y_true, probs, labels=list(range(6)))
    assert M.negative_log_likelihood(probs, y_true) == pytest.approx(expected, abs=1e-9)
    with pytest.raises(ValueError, match="sum to 1"):
        M.negative_log_likelihood(probs * 0.5, y_true)


def test_present_only_hand_made_case():
    # taxonomy 0..3; class 0 absent from the target set (like neutral in CK+)
    y_true = np.array([1, 1, 2, 2, 3, 3])
    y_pred = np.array([1, 0, 2, 1, 3, 3])  # one prediction of the absent class 0
    out = M.present_only_metrics(y_true, y_pred, labels=[0, 1, 2, 3])
    assert out["present"] == [1, 2, 3]
    assert out["mode"] == "absent_predictions_are_errors"
    assert out["accuracy"] == pytest.approx(4 / 6)
    # recalls 1/2, 1/2, 1 ; precisions 1/2 (1 of 2 predicted 1), 1, 1
    assert out["balanced_accuracy"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    f1 = [2 * 0.5 * 0.5 / 1.0, 2 * 1 * 0.5 / 1.5, 1.0]
    assert out["macro_f1"] == pytest.approx(np.mean(f1))
    # 8-way style macro-F1 over the whole taxonomy counts absent class 0 as F1 = 0
    assert M.macro_f1(y_true, y_pred, labels=[0, 1, 2, 3]) == pytest.approx(np.sum(f1) / 4)


def test_present_only_with_scores_takes_argmax_over_present_classes():
    y_true = np.array([1, 2, 3])
    scores = np.array([[0.9, 0.1, 0.0, 0.0],  # argmax is absent class 0; among present: 1
                       [0.1, 0.2, 0.7, 0.0],
                       [0.5, 0.0, 0.0, 0.5]])
    y_pred = scores.argmax(axis=1)
    errors = M.present_only_metrics(y_true, y_pred, labels=[0, 1, 2, 3])
    restricted = M.present_only_metrics(y_true, y_pred, labels=[0, 1, 2, 3], scores=scores)
    assert errors["accuracy"] == pytest.approx(1 / 3)
    assert restricted["accuracy"] == pytest.approx(1.0)
    assert restricted["mode"] == "argmax_over_present"
    with pytest.raises(ValueError, match="scores"):
        M.present_only_metrics(y_true, y_pred, labels=[0, 1, 2, 3], scores=scores[:, :3])


def test_bootstrap_all_correct_is_degenerate():
    y = np.array([0, 1, 2, 0, 1, 2, 2])
    assert S.bootstrap_ci(M.accuracy, y, y, n_resamples=200) == (1.0, 1.0, 1.0)


def test_bootstrap_contains_point_and_is_reproducible():
    y_true, y_pred, _ = _random_case(9, n=150)
    a = S.bootstrap_ci(M.macro_f1, y_true, y_pred, n_resamples=300, seed=3)
    b = S.bootstrap_ci(M.macro_f1, y_true, y_pred, n_resamples=300, seed=3)
    c = S.bootstrap_ci(M.macro_f1, y_true, y_pred, n_resamples=300, seed=4)
    assert a == b
    assert a != c
    point, low, high = a
    assert low < point < high
    assert point == pytest.approx(M.macro_f1(y_true, y_pred))
    assert 0.02 < high - low < 0.4


def test_stratified_bootstrap_keeps_class_counts():
    y_true = np.array([0] * 5 + [1] * 15)
    seen = []

    def count_class0(t, p):
        seen.append(int(np.sum(t == 0)))
        return float(np.mean(t == p))

    S.bootstrap_ci(count_class0, y_true, y_true, n_resamples=50, stratified=True)
    assert set(seen) == {5}
    seen.clear()
    S.bootstrap_ci(count_class0, y_true, y_true, n_resamples=50, stratified=False)
    assert len(set(seen)) > 1


def test_cluster_bootstrap_moves_whole_clusters_and_widens_the_interval():
    # 10 clusters of 20 rows each; every row of a cluster is right or wrong together
    clusters = np.repeat(np.arange(10), 20)
    y_true = np.zeros(200, dtype=int)
    y_pred = np.where(np.isin(clusters, [0, 1, 2, 3]), 1, 0)  # 6 of 10 clusters right: accuracy 0.6
    sizes = []

    def accuracy_and_record(t, p):
        sizes.append(len(t))
        return float(np.mean(t == p))

    point, low, high = S.bootstrap_ci(accuracy_and_record, y_true, y_pred, n_resamples=400, seed=0,
                                      clusters=clusters)
    assert point == pytest.approx(0.6)
    # resampled accuracies are multiples of 1/10 (whole clusters), not of 1/200
    assert set(sizes[1:]) == {200}
    naive = S.bootstrap_ci(M.accuracy, y_true, y_pred, n_resamples=400, seed=0, stratified=False)
    assert (high - low) > 2 * (naive[2] - naive[1])
    with pytest.raises(ValueError, match="clusters"):
        S.bootstrap_ci(M.accuracy, y_true, y_pred, clusters=clusters[:10])
    with pytest.raises(ValueError, match="clusters"):
        S.bootstrap_ci(M.accuracy, y_true, y_pred, clusters=np.zeros(200))


def test_bootstrap_accepts_score_matrices():
    y_true, _, probs = _random_case(10, n=100)
    point, low, high = S.bootstrap_ci(M.macro_auroc, y_true, probs, n_resamples=100)
    assert low <= point <= high


def test_mean_ci_over_seeds():
    out = S.mean_ci_over_seeds([0.80, 0.82, 0.84])
    half = 4.302652729911275 * 0.02 / math.sqrt(3)  # t_{0.975, 2} * s / sqrt(n)
    assert out.mean == pytest.approx(0.82)
    assert out.low == pytest.approx(0.82 - half)
    assert out.high == pytest.approx(0.82 + half)
    assert out.n == 3
    single = S.mean_ci_over_seeds([0.7])
    assert single.mean == 0.7 and math.isnan(single.low) and math.isnan(single.high)
    assert "no confidence interval" in single.note


def test_ccc_hand_computed():
    x = np.array([1.0, 2.0, 3.0])
    y = np.array([2.0, 2.0, 5.0])
    # means 2, 3; population var 2/3, 2; cov = (-1*-1 + 0 + 1*2)/3 = 1 ; (mx-my)^2 = 1
    assert M.ccc(x, y) == pytest.approx(2 * 1 / (2 / 3 + 2 + 1))
    assert M.ccc(x, x) == pytest.approx(1.0)
    assert M.ccc(x - 2, 2 - x) == pytest.approx(-1.0)  # mirrored about a common mean
    assert M.ccc(x, x + 10) < 0.1  # perfectly correlated but biased: CCC punishes the shift


def test_reliability_curve_and_ece_hand_made():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    y_true = np.array([0, 1, 1, 1])
    curve = M.reliability_curve(probs, y_true, n_bins=2)
    np.testing.assert_array_equal(curve["count"], [0, 4])
    ece_1bin = abs(np.mean([1, 0, 1, 1]) - np.mean([0.9, 0.8, 0.7, 0.6]))
    assert M.expected_calibration_error(probs, y_true, n_bins=2) == pytest.approx(ece_1bin)
    curve = M.reliability_curve(probs, y_true, n_bins=10)
    # confidences 0.9, 0.8, 0.7, 0.6 fall in bins (0.8,0.9], (0.7,0.8], (0.6,0.7], (0.5,0.6]
    np.testing.assert_array_equal(np.flatnonzero(curve["count"]), [5, 6, 7, 8])
    ece = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.7) + abs(1 - 0.6)) / 4
    assert M.expected_calibration_error(probs, y_true, n_bins=10) == pytest.approx(ece)


def _mesh_pair():
    target = np.zeros((2, 6, 3))
    pred = target.copy()
    pred[0, 0] = [3.0, 4.0, 0.0]  # vertex 0 (lip) off by 5 mm in frame 0
    pred[0, 1] = [1.0, 0.0, 0.0]  # vertex 1 (lip) off by 1 mm
    pred[1, 1] = [0.0, 2.0, 0.0]  # frame 1: vertex 1 off by 2 mm
    pred[0, 4] = [0.0, 0.0, 7.0]  # vertex 4 (eye) off by 7 mm in frame 0 only
    pred[1, 5] = [0.0, 0.0, 1.0]  # vertex 5 (forehead) off by 1 mm in frame 1
    return pred, target


def test_vertex_errors_hand_made():
    pred, target = _mesh_pair()
    assert M.lip_vertex_error(pred, target, [0, 1]) == pytest.approx((5 + 2) / 2)
    assert M.mouth_corner_error(pred, target, [1]) == pytest.approx((1 + 2) / 2)
    assert M.emotional_vertex_error(pred, target, [4, 5]) == pytest.approx((7 + 1) / 2)
    assert M.upper_face_error is M.emotional_vertex_error
    assert M.lip_vertex_error(target, target, [0, 1, 2]) == 0.0


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="y_pred has 2"):
        M.accuracy([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="lip_idx"):
        M.lip_vertex_error(np.zeros((1, 3, 3)), np.zeros((1, 3, 3)), [5])
    with pytest.raises(ValueError, match="frames, vertices, 3"):
        M.lip_vertex_error(np.zeros((3, 3)), np.zeros((3, 3)), [0])
    with pytest.raises(ValueError, match="normalize"):
        M.confusion_matrix([0, 1], [0, 1], normalize="all")
