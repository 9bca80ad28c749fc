"""Chapter 02 verdicts: did NN1 and NN2 learn (Table 1 of paper 001, against the majority class and
their untrained twins, paired bootstrap), and do the paper's three stages (identity early, V/A at
the penultimate layer, categories at the output; Studies 1-4) hold on faces whose factors are
planted (:func:`ground_truth_checks`). Intervals and verdicts come from :mod:`affectlab.stats`."""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from affectlab import metrics, stats
from affectlab.config import RunConfig

from .config import ROLES, ChapterConfig
from .data import FERData
from .layers import role_rows
from .networks import ProbedNetwork, sharma_network
from .tables import table1_predictions
from .training import untrained_sharma

#: :func:`affectlab.stats.verdict_from_ci` of "network minus baseline" -> "is the network above it?"
ABOVE = {"greater": "yes", "less": "no", "undecided": "undecided"}


def learning_verdicts(nets: Mapping[str, ProbedNetwork], fer: FERData, cfg: ChapterConfig,
                      run: RunConfig) -> pd.DataFrame:
    """Did NN1 and NN2 learn? For each trained Sharma network, its accuracy minus (a) the
    majority-class rate of its test faces and (b) the same architecture untrained from the same
    initial weights with the same BatchNorm recalibration (NN3 for NN1; NN2's own initialisation
    for NN2, :func:`~.training.untrained_sharma`), on the same faces, in
    percentage points with paired, class-stratified 95 % bootstrap CIs over test faces
    (:func:`affectlab.stats.paired_difference`). "above it" is the verdict of the interval
    (:func:`affectlab.stats.verdict_from_ci`: yes / no / undecided); a network "learned" when both
    intervals lie above 0.

    Returns one row per (network, comparison); ``attrs["learned"]`` maps each network to True/False.
    """
    rows, learned = [], {}
    for name in ("NN1", "NN2"):
        if name not in nets or nets[name].fit is None:
            continue
        net = nets[name]
        test, pred = table1_predictions(net, fer)
        y = test.labels.numpy()
        if name == "NN1" and "NN3" in nets:
            base_name, base_pred = "NN3 (untrained, same initial weights)", table1_predictions(nets["NN3"], fer)[1]
        else:
            untrained = dataclasses.replace(sharma_network(name, untrained_sharma(name, fer, cfg, run.seed).to(run.device),
                                                           f"{name} untrained"), trained=False)
            base_name, base_pred = f"{name} before training (same initial weights)", table1_predictions(untrained, fer)[1]
        majority = int(np.bincount(y).argmax())
        comparisons = [(f"majority class ({net.class_names[majority]})", np.full_like(pred, majority)),
                       (base_name, base_pred)]
        ok = True
        for label, other in comparisons:
            diff = stats.paired_difference(metrics.accuracy, y, pred, other, n_resamples=cfg.bootstrap_resamples,
                                           seed=run.seed).scaled(100)
            verdict = stats.verdict_from_ci(diff.low, diff.high)
            ok &= verdict == "greater"
            rows.append({"network": name, "compared with": label, "accuracy difference (pp)": diff.value,
                         "95% CI low": diff.low, "95% CI high": diff.high, "test faces": len(y),
                         "above it": ABOVE[verdict]})
        learned[name] = bool(ok)
    table = pd.DataFrame(rows, columns=["network", "compared with", "accuracy difference (pp)", "95% CI low",
                                        "95% CI high", "test faces", "above it"]).set_index(["network", "compared with"])
    table.attrs["learned"] = learned
    return table


def layer_claim_verdict(a: tuple[float, float, float], b: tuple[float, float, float], greater: bool = True) -> str:
    """Three-way verdict on "a > b" (``greater``) or "a < b" from two (value, CI low, CI high)
    triples measured on the same faces: :func:`affectlab.stats.verdict_from_ci` of the interval
    ``[a.low - b.high, a.high - b.low]`` that the two 95 % intervals imply for ``a - b``. "yes" when
    the intervals do not overlap in the claimed direction, "no" when they do not overlap the other
    way, "undecided" when they overlap or a value is missing. Non-overlap of two 95 % intervals is
    a conservative test (it implies p < 0.05 for the difference)."""
    if not all(np.isfinite(v) for v in (*a, *b)):
        return "undecided"
    verdict = stats.verdict_from_ci(a[1] - b[2], a[2] - b[1])
    if verdict == "undecided":
        return verdict
    return "yes" if verdict == ("greater" if greater else "less") else "no"


def ground_truth_checks(profiles: Mapping[tuple[str, str], pd.DataFrame], roles: Mapping[str, Mapping[str, str]],
                        trained: Mapping[str, bool], datasets_: Sequence[str],
                        learned: Mapping[str, bool] | None = None) -> pd.DataFrame:
    """On faces whose identity, expression and V/A are planted, does the analysis recover the
    paper's three stages? One row per (network, dataset, claim) with both numbers, their 95 %
    subject-bootstrap CIs and a three-way verdict (:func:`layer_claim_verdict`: yes / no / undecided):

    1. identity dominates the early layer (identity silhouette > expression silhouette);
    2. training lifts expression (final-layer expression silhouette > early-layer's), expected for
       trained networks only (NN3 is the control);
    3. identity fades towards the output (final identity silhouette < early);
    4. V/A are read out of the penultimate layer better than out of the early layer
       (cross-validated R^2 from 10 PCs, across subjects);
    5. V/A *beyond the category* are read out of the penultimate layer better than out of the
       early layer (partial R^2 after category; undecided where V/A is the label in disguise).

    ``learned`` (from :func:`learning_verdicts`) adds whether each network beat its untrained twin
    and the majority class in Table 1; a trained network that did not is marked
    "untrained-equivalent", and its claims test an untrained network.
    """
    def triple(row: pd.Series, column: str, low: str, high: str) -> tuple[float, float, float]:
        return float(row[column]), float(row[low]), float(row[high])

    rows = []
    for (network, dataset), t in profiles.items():
        if dataset not in datasets_:
            continue
        r = role_rows(t, roles, network, dataset)
        sil = {(role, target): triple(r[role], f"{target} silhouette", f"{target} silhouette low",
                                      f"{target} silhouette high")
               for role in ROLES for target in ("identity", "expression")}
        va = {role: triple(r[role], "V/A R2 (CV by subject)", "V/A R2 low", "V/A R2 high") for role in ROLES}
        nan3 = (float("nan"),) * 3
        partial = {role: (triple(r[role], "V/A partial R2 after category", "V/A partial R2 low", "V/A partial R2 high")
                          if "V/A partial R2 after category" in r[role] else nan3) for role in ROLES}
        claims = [
            ("identity dominates the early layer", sil[("early", "identity")], sil[("early", "expression")],
             "identity sil.", "expression sil.", True),
            ("training lifts expression towards the output", sil[("final", "expression")],
             sil[("early", "expression")], "final", "early", True),
            ("identity fades towards the output", sil[("final", "identity")], sil[("early", "identity")],
             "final", "early", False),
            ("V/A readable from the penultimate layer", va["penultimate"], va["early"], "penultimate R2",
             "early R2", True),
            ("V/A beyond category at the penultimate layer", partial["penultimate"], partial["early"],
             "penultimate partial R2", "early partial R2", True),
        ]
        if learned is None or network not in learned:
            status = "untrained control" if not trained[network] else "published weights"
        else:
            status = "learned" if learned[network] else "untrained-equivalent"
        for claim, a, b, a_name, b_name, greater in claims:
            rows.append({"network": network, "trained": trained[network], "training status": status,
                         "dataset": dataset, "claim": claim,
                         "value": f"{a_name} {a[0]:.3f} [{a[1]:.3f}, {a[2]:.3f}] vs {b_name} {b[0]:.3f} "
                                  f"[{b[1]:.3f}, {b[2]:.3f}]",
                         "holds here": layer_claim_verdict(a, b, greater)})
    return pd.DataFrame(rows)


