"""VICH against the human votes (issue 17, item 4): paper 003 says VICH "learns the underlying
distribution of expression intensities" and never measures it. FERPlus has 10 crowd votes per face,
so every row's predictive distribution can be compared with the vote distribution of the same test
face: the VICH rows by the Monte-Carlo mean of softmax(mu + sigma * eps) (its noise) and by
softmax(mu) (its mean, the deployed rule); the linear-head rows by their softmax.

Per image (all in nats, natural logarithms): the Jensen-Shannon divergence
JS(p, q) = KL(p || m) / 2 + KL(q || m) / 2 with m = (p + q) / 2 (0 = equal, ln 2 = disjoint
support); KL(votes || prediction) (the cross-entropy the model was trained on, minus the votes'
entropy); the entropies of both (correlated over images: does the model hesitate where people
disagree?); and the top-2 agreement, the share of the vote distribution's two most voted classes
among the model's two most probable ones (0, 0.5 or 1; ties broken by class order). Intervals
resample test images (class-stratified bootstrap, :func:`affectlab.stats.bootstrap_ci`); rows are
compared by paired differences on the same resamples (:func:`affectlab.stats.paired_difference`).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from affectlab import stats
from affectlab.reporting import ci_text

from .calibration import monte_carlo_probabilities, softmax_probabilities
from .config import ROW_LABELS
from .experiments import AblationResult

EPS = 1e-12
MC_RULE = "Monte-Carlo predictive"
MU_RULE = "softmax(mu) (deployed)"
LINEAR_RULE = "softmax (linear head)"


def _rows(p: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"{name} must be (N, K) probability rows; got shape {a.shape}")
    if np.any(a < -1e-9) or not np.allclose(a.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError(f"{name} rows must be non-negative and sum to 1")
    return np.clip(a, 0.0, None)


def entropy(p: np.ndarray) -> np.ndarray:
    """Per-row Shannon entropy in nats, 0 log 0 = 0."""
    p = _rows(p, "p")
    return -np.sum(np.where(p > 0, p * np.log(np.maximum(p, EPS)), 0.0), axis=1)


def kl_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row KL(p || q) in nats (terms with p = 0 vanish; q is floored at 1e-12)."""
    p, q = _rows(p, "p"), _rows(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"kl_divergence: p {p.shape} and q {q.shape} must match")
    return np.sum(np.where(p > 0, p * (np.log(np.maximum(p, EPS)) - np.log(np.maximum(q, EPS))), 0.0), axis=1)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row Jensen-Shannon divergence in nats (symmetric, between 0 and ln 2)."""
    p, q = _rows(p, "p"), _rows(q, "q")
    m = 0.5 * (p + q)
    return 0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m)


def top2_agreement(pred: np.ndarray, votes: np.ndarray) -> np.ndarray:
    """Per row: |top-2 classes of ``pred`` & top-2 of ``votes``| / 2 (ties broken by class order)."""
    pred, votes = _rows(pred, "pred"), _rows(votes, "votes")
    if pred.shape != votes.shape:
        raise ValueError(f"top2_agreement: pred {pred.shape} and votes {votes.shape} must match")
    a = np.argsort(-pred, axis=1, kind="stable")[:, :2]
    b = np.argsort(-votes, axis=1, kind="stable")[:, :2]
    return np.array([len(set(x) & set(y)) / 2.0 for x, y in zip(a.tolist(), b.tolist())])


def entropy_correlation(values: np.ndarray) -> float:
    """Pearson correlation of column 0 (predictive entropy) with column 1 (vote entropy); NaN when
    either is constant."""
    v = np.asarray(values, dtype=np.float64)
    if v.std(axis=0).min() == 0:
        return float("nan")
    return float(np.corrcoef(v[:, 0], v[:, 1])[0, 1])


def _mean(_t: np.ndarray, v: np.ndarray) -> float:
    return float(np.mean(v))


def per_image_scores(probs: np.ndarray, votes: np.ndarray) -> dict[str, np.ndarray]:
    """Every per-image quantity of one predictor against the votes."""
    return {"js": js_divergence(probs, votes), "kl": kl_divergence(votes, probs), "top2": top2_agreement(probs, votes),
            "entropies": np.stack([entropy(probs), entropy(votes)], axis=1)}


@dataclasses.dataclass
class VoteComparison:
    """Predictive distributions of every row (``probabilities``: (row, rule) -> (N, K)) beside the
    test faces' vote distributions (``votes``, (N, K)) and labels."""

    probabilities: dict[tuple[str, str], np.ndarray]
    votes: np.ndarray
    labels: np.ndarray
    dataset_label: str
    seed: int

    def scores(self, key: tuple[str, str]) -> dict[str, np.ndarray]:
        if key not in self.probabilities:
            raise KeyError(f"no predictions for {key}; have {list(self.probabilities)}")
        return per_image_scores(self.probabilities[key], self.votes)

    def summary(self, key: tuple[str, str], n_bootstrap: int = 1000, seed: int = 0) -> dict[str, tuple[float, float, float]]:
        """(point, low, high) of mean JS, mean KL, entropy correlation and mean top-2 agreement."""
        s = self.scores(key)
        out = {name: stats.bootstrap_ci(_mean, self.labels, s[name], n_resamples=n_bootstrap, seed=seed)
               for name in ("js", "kl", "top2")}
        out["entropy_r"] = stats.bootstrap_ci(lambda _t, v: entropy_correlation(v), self.labels, s["entropies"],
                                              n_resamples=n_bootstrap, seed=seed)
        return out

    def table(self, n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
        """One line per (row, rule): the four scores with bootstrap 95% CIs over test images."""
        records = []
        for key in self.probabilities:
            s = self.summary(key, n_bootstrap, seed)
            records.append({"model": ROW_LABELS.get(key[0], key[0]), "predictive distribution": key[1],
                            "JS to votes (nats)": round(s["js"][0], 4), "JS 95% CI": ci_text(*s["js"][1:], digits=4),
                            "KL(votes || model) (nats)": round(s["kl"][0], 4), "KL 95% CI": ci_text(*s["kl"][1:], digits=4),
                            "r(entropy, vote entropy)": round(s["entropy_r"][0], 3),
                            "r 95% CI": ci_text(*s["entropy_r"][1:], digits=3),
                            "top-2 agreement": round(s["top2"][0], 3), "top-2 95% CI": ci_text(*s["top2"][1:], digits=3)})
        return pd.DataFrame(records).set_index(["model", "predictive distribution"])

    def default_pairs(self) -> list[tuple[tuple[str, str], tuple[str, str]]]:
        """POSTER-Var (Monte-Carlo, then mu) against w/o VI (the VICH effect), its Monte-Carlo rule
        against its mu rule (does sampling matter?), and every other row against the baseline."""
        keys = list(self.probabilities)
        pairs = []
        full_mc, full_mu = ("full", MC_RULE), ("full", MU_RULE)
        no_vi, base = ("w/o VI", LINEAR_RULE), ("baseline", LINEAR_RULE)
        for a, b in ((full_mc, no_vi), (full_mu, no_vi), (full_mc, full_mu)):
            if a in keys and b in keys:
                pairs.append((a, b))
        if base in keys:
            pairs += [(k, base) for k in keys if k[0] not in ("baseline",) and k[1] != MU_RULE]
        return list(dict.fromkeys(pairs))

    def difference(self, a: tuple[str, str], b: tuple[str, str], score: str, n_bootstrap: int = 1000,
                   seed: int = 0) -> stats.Estimate:
        """Paired a - b of the mean per-image ``score`` ("js", "kl", "top2") or of the entropy
        correlation ("entropy_r") on the same bootstrap resamples of the test images."""
        sa, sb = self.scores(a), self.scores(b)
        if score == "entropy_r":
            return stats.paired_difference(lambda _t, v: entropy_correlation(v), self.labels, sa["entropies"],
                                           sb["entropies"], n_resamples=n_bootstrap, seed=seed)
        if score not in sa:
            raise ValueError(f"difference: score must be one of js, kl, top2, entropy_r; got {score!r}")
        return stats.paired_difference(_mean, self.labels, sa[score], sb[score], n_resamples=n_bootstrap, seed=seed)

    def differences(self, pairs: Sequence[tuple[tuple[str, str], tuple[str, str]]] | None = None,
                    n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
        """Paired differences (a - b) with 95% CIs for each pair (default :meth:`default_pairs`).
        Lower JS / KL and higher r / top-2 mean closer to the votes."""
        records = []
        for a, b in (pairs if pairs is not None else self.default_pairs()):
            record = {"a": f"{ROW_LABELS.get(a[0], a[0])} / {a[1]}", "b": f"{ROW_LABELS.get(b[0], b[0])} / {b[1]}"}
            for score, label, digits in (("js", "JS", 4), ("kl", "KL", 4), ("entropy_r", "r(entropy)", 3),
                                         ("top2", "top-2", 3)):
                d = self.difference(a, b, score, n_bootstrap, seed)
                record[f"{label} a - b"] = round(d.value, digits)
                record[f"{label} 95% CI"] = ci_text(d.low, d.high, digits=digits)
            records.append(record)
        return pd.DataFrame(records).set_index(["a", "b"])


def vote_comparison(result: AblationResult, dataset: str = "ferplus", seed: int | None = None) -> VoteComparison:
    """Every row's predictive distribution on ``dataset``'s test faces beside their vote distributions
    (the FERPlus votes over the 8 emotions, renormalised: the chapter's training targets)."""
    splits = result.data[dataset]
    if splits.test.soft_labels is None:
        raise ValueError(f"{splits.display_name} has no vote distributions: the vote comparison needs FERPlus votes")
    votes = splits.test.soft_labels.double().numpy()
    chosen = result.get(dataset, result.rows[0], seed).seed
    probabilities: dict[tuple[str, str], np.ndarray] = {}
    labels = None
    for row in result.rows:
        r = result.get(dataset, row, chosen)
        if len(r.labels) != len(votes) or not np.array_equal(r.labels.numpy(), splits.test.labels.numpy()):
            raise ValueError(f"row {row!r} was not scored on {splits.display_name}'s test faces in their order")
        labels = r.labels.numpy()
        if r.vich:
            probabilities[(row, MC_RULE)] = monte_carlo_probabilities(r.model.head, r.features, result.cfg.mc_samples,
                                                                      r.seed)  # type: ignore[arg-type]
            probabilities[(row, MU_RULE)] = softmax_probabilities(r.logits)
        else:
            probabilities[(row, LINEAR_RULE)] = softmax_probabilities(r.logits)
    assert labels is not None
    return VoteComparison(probabilities=probabilities, votes=votes / votes.sum(axis=1, keepdims=True), labels=labels,
                          dataset_label=splits.display_name, seed=chosen)
