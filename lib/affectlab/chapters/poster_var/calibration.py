"""Beyond paper 003: is VICH calibrated? ECE, NLL and error-detection AUROC of the deployed
softmax(mu), the Monte-Carlo predictive of Eq. 5 sampled at test time, the linear-head rows and a
class-prior reference, with paired bootstrap differences (:func:`affectlab.stats.paired_difference`);
and whether sigma flags wrong predictions."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from affectlab import metrics, plots, stats
from affectlab.models.poster import VICHead
from affectlab.reporting import ci_text

from .config import ROW_LABELS
from .experiments import AblationResult


PRIOR_ROW = "class prior (reference)"
"""Calibration reference: every image gets the training class frequencies (a constant predictor
that is calibrated by construction, and uninformative)."""


def softmax_probabilities(logits: torch.Tensor) -> np.ndarray:
    """Row-wise softmax in float64 (rows sum to 1 to machine precision)."""
    return torch.softmax(logits.double(), dim=-1).numpy()


def monte_carlo_probabilities(head: VICHead, features: torch.Tensor, n_samples: int, seed: int) -> np.ndarray:
    """Predictive distribution of the VICH head: the mean over ``n_samples`` draws of
    softmax(mu + sigma * eps), eps ~ N(0, I) (Eq. 5 sampled at test time, which the paper does not do).
    Drawn under a forked, seeded RNG, so the global random state is untouched."""
    if not isinstance(head, VICHead):
        raise TypeError(f"monte_carlo_probabilities needs a VICHead; got {type(head).__name__}")
    device = next(head.parameters()).device
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        samples = head.sample_logits(features.to(device), n_samples)
        return torch.softmax(samples.double(), dim=-1).mean(dim=0).cpu().numpy()


def _error_detection_auroc(probs: np.ndarray, labels: np.ndarray) -> float:
    """AUROC of 1 - max probability for telling wrong predictions from right ones (NaN if one kind is absent)."""
    from sklearn.metrics import roc_auc_score

    wrong = probs.argmax(1) != labels
    if wrong.all() or not wrong.any():
        return float("nan")
    return float(roc_auc_score(wrong, 1.0 - probs.max(1)))


@dataclasses.dataclass
class CalibrationResult:
    """Probabilities of each (row, prediction rule) on the same test images, and their scores."""

    probabilities: dict[tuple[str, str], np.ndarray]
    labels: np.ndarray
    n_bins: int
    dataset: str
    dataset_label: str
    seed: int
    class_names: tuple[str, ...]

    def table(self) -> pd.DataFrame:
        """Accuracy, ECE, NLL, mean confidence and error-detection AUROC per prediction rule."""
        records = []
        for (row, rule), probs in self.probabilities.items():
            records.append({
                "model": ROW_LABELS.get(row, row), "prediction": rule,
                "accuracy (%)": round(100 * metrics.accuracy(self.labels, probs.argmax(1)), 2),
                f"ECE ({self.n_bins} bins)": round(metrics.expected_calibration_error(probs, self.labels, self.n_bins), 4),
                "NLL (nats)": round(metrics.negative_log_likelihood(probs, self.labels), 4),
                "mean confidence": round(float(probs.max(1).mean()), 4),
                "error-detection AUROC": round(_error_detection_auroc(probs, self.labels), 3),
            })
        return pd.DataFrame(records).set_index(["model", "prediction"])

    def main_keys(self) -> list[tuple[str, str]]:
        """The comparison that matters: the first VICH row's mu-only and Monte-Carlo rules and the
        last linear-head row (the baseline in Table 3 order)."""
        vich = [k for k in self.probabilities if k[1] != "linear head" and k[0] != PRIOR_ROW]
        linear = [k for k in self.probabilities if k[1] == "linear head"]
        return vich[:2] + linear[-1:]

    def comparison_pairs(self) -> list[tuple[tuple[str, str], tuple[str, str]]]:
        """(a, b) pairs compared by :meth:`differences`: the first VICH row's Monte-Carlo rule against its
        mu-only rule, then each of those against the baseline's linear head (:meth:`main_keys`), then
        every predictor of :meth:`main_keys` against the class-prior reference (has it learned more
        than the class frequencies?)."""
        keys = self.main_keys()
        vich = [k for k in keys if k[1] != "linear head"]
        linear = [k for k in keys if k[1] == "linear head"]
        pairs = [(vich[1], vich[0])] if len(vich) == 2 else []
        prior = [k for k in self.probabilities if k[0] == PRIOR_ROW]
        return pairs + [(v, lin) for v in vich for lin in linear] + [(k, p) for p in prior for k in keys]

    def differences(self, pairs: Sequence[tuple[tuple[str, str], tuple[str, str]]] | None = None,
                    n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
        """ECE and NLL of a minus b for each pair (default :meth:`comparison_pairs`) with paired 95%
        bootstrap intervals: each resample draws test images (stratified by class) and recomputes both
        predictors' scores on the same images. Negative = a is better calibrated / more likely."""
        pairs = list(pairs) if pairs is not None else self.comparison_pairs()
        missing = sorted({k for pair in pairs for k in pair if k not in self.probabilities})
        if missing:
            raise KeyError(f"no predictions for {missing}; have {list(self.probabilities)}")
        scores = {"ECE": lambda t, pr: metrics.expected_calibration_error(pr, t, self.n_bins),
                  "NLL (nats)": lambda t, pr: metrics.negative_log_likelihood(pr, t)}
        records = []
        for a, b in pairs:
            record: dict[str, Any] = {"a": f"{ROW_LABELS.get(a[0], a[0])} / {a[1]}",
                                      "b": f"{ROW_LABELS.get(b[0], b[0])} / {b[1]}"}
            for name, score in scores.items():
                diff = stats.paired_difference(score, self.labels, self.probabilities[a], self.probabilities[b],
                                               n_resamples=n_bootstrap, seed=seed)
                record[f"{name} a - b"] = round(diff.value, 4)
                record[f"{name} 95% CI (paired bootstrap)"] = ci_text(diff.low, diff.high, digits=4)
                record[f"{name}: CI excludes 0"] = stats.verdict_from_ci(diff.low, diff.high) != "undecided"
            records.append(record)
        return pd.DataFrame(records).set_index(["a", "b"])

    def diagrams(self, keys: Sequence[tuple[str, str]] | None = None) -> list[Figure]:
        """Reliability diagrams (accuracy vs confidence per bin) of ``keys`` (default :meth:`main_keys`)."""
        keys = list(keys) if keys is not None else self.main_keys()
        missing = [k for k in keys if k not in self.probabilities]
        if missing:
            raise KeyError(f"no predictions for {missing}; have {list(self.probabilities)}")
        return [plots.reliability_diagram(self.probabilities[k], self.labels, self.n_bins,
                                          title=f"{ROW_LABELS.get(k[0], k[0])}, {k[1]}\n"
                                                f"{self.dataset_label} test, seed {self.seed}")
                for k in keys]


def calibration_comparison(result: AblationResult, dataset: str = "ferplus", seed: int | None = None) -> CalibrationResult:
    """VICH claims to model uncertainty: compare, on the same test images, the deployed mu-only
    softmax and the Monte-Carlo predictive (mean softmax of ``cfg.mc_samples`` sampled logits) of
    every VICH row with the softmax of every linear-head row, and with the class-prior reference
    (:data:`PRIOR_ROW`)."""
    cfg = result.cfg
    probabilities: dict[tuple[str, str], np.ndarray] = {}
    labels = None
    chosen = result.get(dataset, result.rows[0], seed).seed
    for row in result.rows:
        r = result.get(dataset, row, chosen)
        if labels is None:
            labels = r.labels.numpy()
        elif not np.array_equal(labels, r.labels.numpy()):
            raise ValueError(f"row {row!r} was tested on other images than {result.rows[0]!r}")
        if r.vich:
            probabilities[(row, "mu only (deployed)")] = softmax_probabilities(r.logits)
            probabilities[(row, f"Monte-Carlo mean of {cfg.mc_samples} samples")] = monte_carlo_probabilities(
                r.model.head, r.features, cfg.mc_samples, r.seed)  # type: ignore[arg-type]
        else:
            probabilities[(row, "linear head")] = softmax_probabilities(r.logits)
    assert labels is not None
    splits = result.data[dataset]
    prior = np.bincount(splits.train.labels.numpy(), minlength=len(splits.class_names)).astype(np.float64)
    probabilities[(PRIOR_ROW, "training class frequencies")] = np.tile(prior / prior.sum(), (len(labels), 1))
    return CalibrationResult(probabilities=probabilities, labels=labels, n_bins=cfg.calibration_bins, dataset=dataset,
                             dataset_label=result.data[dataset].display_name, seed=chosen, class_names=result.data[dataset].class_names)


def sigma_summary(result: AblationResult, dataset: str = "ferplus", seed: int | None = None) -> pd.DataFrame:
    """Mean VICH sigma of the predicted class for right and wrong predictions (per VICH row), and the
    AUROC of that sigma for telling wrong from right predictions with a bootstrap 95% CI over test
    images (0.5 = sigma carries no information about errors)."""
    from sklearn.metrics import roc_auc_score

    records = []
    for row in result.rows:
        r = result.get(dataset, row, seed)
        if not r.vich:
            continue
        _, sigma = r.distribution()
        top = sigma[torch.arange(len(sigma)), torch.as_tensor(r.predicted)].numpy().astype(np.float64)
        wrong = (r.predicted != r.labels.numpy()).astype(int)
        if 0 < wrong.sum() < len(wrong):
            point, low, high = stats.bootstrap_ci(lambda t, p: float(roc_auc_score(t, p)), wrong, top,
                                                    n_resamples=result.cfg.n_bootstrap, seed=r.seed)
        else:
            point = low = high = float("nan")
        right = wrong == 0
        records.append({"model": ROW_LABELS.get(row, row),
                        "sigma of predicted class, right": round(float(top[right].mean()), 4) if right.any() else float("nan"),
                        "sigma of predicted class, wrong": round(float(top[~right].mean()), 4) if (~right).any() else float("nan"),
                        "AUROC sigma -> wrong": round(point, 3), "95% CI (bootstrap)": ci_text(low, high, digits=3),
                        "mean sigma, all classes": round(float(sigma.mean()), 4)})
    return pd.DataFrame(records).set_index("model")

