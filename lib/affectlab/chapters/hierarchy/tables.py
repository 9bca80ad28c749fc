"""Chapter 02 tables: Table 1(a) of paper 001 with ours beside it (accuracy with 95 % bootstrap CIs,
majority-class and chance baselines), Fig. 4 as tables (Study 3), the Study 4 summary, the
positive control, the V/A emergence table, and the descriptive tables of the networks, probing sets
and probed layers. Cells "value [lo, hi]" come from :func:`affectlab.reporting.ci_cell`."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from affectlab import metrics, stats
from affectlab.config import RunConfig
from affectlab.data.sets import FaceSet
from affectlab.data.taxonomy import FER2013_CLASSES
from affectlab.reporting import ci_cell

from .config import NN1_CLASSES, PAPER_TABLE1, ROLES, ChapterConfig
from .data import FERData, ProbeSet
from .experiments import PCStudy
from .layers import LayerCodes, role_layer, role_rows
from .networks import ProbedNetwork, network_logits
from .training import training_steps


def table1_test_set(net: ProbedNetwork, fer: FERData) -> tuple[FaceSet, str]:
    """The PrivateTest faces ``net`` is scored on in Table 1 and their description: NN1's classes
    (happy, sad, neutral: NN1, NN3) -> NN1's class-proportional test subset; the 7 FER2013 classes
    -> NN2's subset, or the whole PrivateTest split for published weights (mini-Xception). Any
    other label set is an error naming the network (e.g. an 8-class FERPlus student)."""
    names = tuple(net.class_names)
    if names == NN1_CLASSES:
        return fer.test["NN1"], f"PrivateTest, happy/sad/neutral subset ({len(fer.test['NN1'])} faces, class-proportional)"
    if names == FER2013_CLASSES:
        if net.fit is None and net.trained and fer.private_test is not None:
            return fer.private_test, f"PrivateTest, all {len(fer.private_test)} faces"
        return fer.test["NN2"], f"PrivateTest, 7-class subset ({len(fer.test['NN2'])} faces, class-proportional)"
    raise ValueError(f"Table 1 cannot score network {net.name!r}: its classes {names} are neither NN1's "
                     f"{NN1_CLASSES} nor FER2013's {FER2013_CLASSES}")


def table1_predictions(net: ProbedNetwork, fer: FERData) -> tuple[FaceSet, np.ndarray]:
    """``net``'s predicted classes on its Table 1 test faces (:func:`table1_test_set`)."""
    test, _ = table1_test_set(net, fer)
    return test, network_logits(net, test.images).argmax(axis=1)


def accuracy_table(nets: Mapping[str, ProbedNetwork], fer: FERData, cfg: ChapterConfig, run: RunConfig) -> pd.DataFrame:
    """Table 1(a) with ours: PrivateTest accuracy (%) with a class-stratified 95 % bootstrap CI
    over test faces, beside the split, the seed, the two baselines a reader needs (uniform chance
    and always answering the majority class of that test set) and the paper's number (clearly
    labelled). Faces per network: :func:`table1_test_set`. ResMaskNet is listed, not run."""
    rows = []
    for name, net in nets.items():
        test, split = table1_test_set(net, fer)
        _, pred = table1_predictions(net, fer)
        y = test.labels.numpy()
        point, low, high = stats.bootstrap_ci(metrics.accuracy, y, pred, n_resamples=cfg.bootstrap_resamples,
                                                seed=run.seed)
        counts = np.bincount(y, minlength=len(net.class_names))
        variant = "NN1" if tuple(net.class_names) == NN1_CLASSES else "NN2"
        if not net.trained:
            train_note = "untrained"
        elif net.fit is not None:
            steps = training_steps(cfg, len(fer.train[variant]))
            train_note = (f"{steps} Adam steps of {cfg.batch_size} faces drawn from {len(fer.train[variant]):,} "
                          f"(weights of epoch {net.fit.best_epoch} of {cfg.epochs})")
        else:
            train_note = "published weights"
        paper = PAPER_TABLE1.get(name, "~66 (its authors)" if name == "mini-Xception" else "-")
        rows.append({"network": name, "classes": ", ".join(net.class_names), "training (here)": train_note,
                     "seed": run.seed if net.fit is not None or not net.trained else "-", "test split": split,
                     "test faces": len(test), "accuracy here (%)": 100 * point, "95% CI low": 100 * low,
                     "95% CI high": 100 * high, "chance, uniform (%)": 100 / len(net.class_names),
                     "majority class (%)": 100 * counts.max() / counts.sum(),
                     "majority class": net.class_names[int(counts.argmax())],
                     "paper's accuracy (%)": paper})
    rows.append({"network": "RMN (ResMaskNet)", "classes": ", ".join(FER2013_CLASSES),
                 "training (here)": "not run: weights unavailable", "seed": "-", "test split": "-", "test faces": 0,
                 "accuracy here (%)": np.nan, "95% CI low": np.nan, "95% CI high": np.nan,
                 "chance, uniform (%)": 100 / len(FER2013_CLASSES), "majority class (%)": np.nan,
                 "majority class": "-", "paper's accuracy (%)": PAPER_TABLE1["RMN (ResMaskNet)"]})
    return pd.DataFrame(rows).set_index("network")


def study3_table(profiles: Mapping[tuple[str, str], pd.DataFrame], roles: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """Fig. 4 as a table: for each (network, dataset) the silhouettes (with CIs) of the four role
    layers (early, identity layer, penultimate, final), from :func:`layer_profile` tables."""
    rows = []
    for (network, dataset), table in profiles.items():
        for role, r in role_rows(table, roles, network, dataset).items():
            rows.append({"network": network, "dataset": dataset, "role": role, "layer": roles[network][role],
                         **{c: r[c] for c in table.columns if "silhouette" in c}})
    return pd.DataFrame(rows)


def study3_summary(study3: pd.DataFrame, targets: Sequence[str] = ("expression", "identity")) -> pd.DataFrame:
    """Fig. 4 as a readable table: rows (dataset, network), columns (target, role), cells
    "silhouette [95 % CI]" from :func:`study3_table`."""
    cells = {}
    for (dataset, network), sub in study3.groupby(["dataset", "network"], sort=False):
        by_role = sub.set_index("role")
        cells[(dataset, network)] = {
            (f"{target} silhouette", role): ci_cell(*(float(by_role.loc[role, f"{target} silhouette{c}"])
                                                      for c in ("", " low", " high")))
            for target in targets for role in ROLES}
    table = pd.DataFrame.from_dict(cells, orient="index")
    table.index.names = ["dataset", "network"]
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def study4_table(studies: Mapping[str, PCStudy]) -> pd.DataFrame:
    """Study 4 summary per network: r(PC1, valence) and r(PC2, arousal) with Fisher 95 % CIs and p,
    and the U-shape test (:func:`u_shape_test` of PC2 on PC1: curvature b2, p)."""
    rows = []
    for name, st in studies.items():
        row: dict[str, Any] = {"network": name, "dataset": st.dataset, "layer": st.layer}
        for comp, target in (("PC1", "valence"), ("PC2", "arousal")):
            reg = st.regression.loc[(comp, target)]
            row[f"r({comp}, {target})"] = ci_cell(reg["r"], reg["r low"], reg["r high"])
            row[f"p({comp}, {target})"] = reg["p"]
        row["U-shape b2 (PC2 on PC1^2)"] = st.u_shape.get("b2", np.nan)
        row["U-shape p"] = st.u_shape.get("p", np.nan)
        row["faces"] = len(st.labels)
        rows.append(row)
    return pd.DataFrame(rows).set_index("network")


def positive_control_table(controls: Mapping[str, pd.DataFrame], profiles: Mapping[tuple[str, str], pd.DataFrame],
                           roles: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """The ceiling beside the networks: for each generated set (``controls``: dataset ->
    :func:`layer_profile` of :func:`planted_factor_codes`), the planted factors' identity and
    expression silhouettes and V/A R^2, then each network's early and penultimate layers on the
    same faces; cells "value [95 % CI]"."""
    def cells(row: pd.Series) -> dict[str, str]:
        return {"identity silhouette": ci_cell(row["identity silhouette"], row["identity silhouette low"],
                                               row["identity silhouette high"]),
                "expression silhouette": ci_cell(row["expression silhouette"], row["expression silhouette low"],
                                                 row["expression silhouette high"]),
                "V/A R2 (CV by subject)": ci_cell(row["V/A R2 (CV by subject)"], row["V/A R2 low"], row["V/A R2 high"])}

    rows = []
    for dataset, control in controls.items():
        for layer, row in control.iterrows():
            rows.append({"dataset": dataset, "representation": f"{layer} (positive control)", **cells(row)})
        for (network, key), table in profiles.items():
            if key != dataset:
                continue
            for role in ("early", "penultimate"):
                layer = role_layer(roles, network, role)
                rows.append({"dataset": dataset, "representation": f"{network} {layer} ({role})", **cells(table.loc[layer])})
    return pd.DataFrame(rows).set_index(["dataset", "representation"])


def va_emergence_table(profiles: Mapping[str, pd.DataFrame], roles: Mapping[str, Mapping[str, str]],
                       column: str = "V/A R2 (CV by subject)") -> pd.DataFrame:
    """How early V/A become readable in each network: ``column`` (default cross-validated V/A R^2
    from 10 PCs) at the four role layers (named in "role layers"), its maximum over all probed
    layers, and the relative depth (0 = first probed layer, 1 = output) of the first layer reaching
    half of that maximum."""
    rows = []
    for name, table in profiles.items():
        values = table[column].to_numpy(float)
        depth = table["depth"].to_numpy(float) / max(table["depth"].max(), 1)
        best = np.nanmax(values) if np.isfinite(values).any() else np.nan
        reached = np.flatnonzero(values >= 0.5 * best) if best > 0 else np.array([], dtype=int)
        row = {"network": name, **{role: table.loc[role_layer(roles, name, role), column] for role in ROLES}}
        row.update({"max": best, "half-max reached at depth": float(depth[reached[0]]) if len(reached) else np.nan,
                    "role layers": ", ".join(role_layer(roles, name, role) for role in ROLES)})
        rows.append(row)
    return pd.DataFrame(rows).set_index("network")


def network_table(nets: Mapping[str, ProbedNetwork], notes: Mapping[str, str]) -> pd.DataFrame:
    """What each network is and where it came from (trained now, loaded finished run, untrained
    control, published weights): one row per network of :func:`~.training.build_networks`."""
    return pd.DataFrame({"network": list(nets), "what it is": [n.description for n in nets.values()],
                         "run": [notes[n] for n in nets]}).set_index("network")


def probe_set_table(probes: Mapping[str, ProbeSet]) -> pd.DataFrame:
    """The probing sets of Studies 1-4: source, faces, subjects, expressions present and where the
    expression labels and valence/arousal come from."""
    return pd.DataFrame([{"set": p.title, "source": p.faces.source, "faces": len(p.faces), "subjects": p.n_subjects,
                          "expressions": ", ".join(c for c, n in p.faces.class_counts().items() if n),
                          "labels": p.label_source, "valence/arousal": p.va_source}
                         for p in probes.values()]).set_index("set")


def layer_widths_table(codes: Mapping[tuple[str, str], LayerCodes], roles: Mapping[str, Mapping[str, str]],
                       probe_key: str) -> pd.DataFrame:
    """Values per face of every probed layer of every network (read on ``probe_key``) and the role
    each plays in Fig. 4."""
    rows = []
    for (network, key), c in codes.items():
        if key != probe_key:
            continue
        role_of = {layer: role for role, layer in roles[network].items()}
        rows.extend({"network": network, "layer": layer, "values per face": width,
                     "role in Fig. 4": role_of.get(layer, "")} for layer, width in c.dims.items())
    return pd.DataFrame(rows).set_index(["network", "layer"])


def va_partial_table(profiles: Mapping[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """V/A beyond the category per layer (Study 4 made testable): rows (dataset, network), one
    column per probed layer, cells "partial R^2 [95 % CI]" (:func:`~.layers.va_partial_r2_ci`;
    "n/a" where V/A is a function of the label, e.g. CK+'s circumplex points)."""
    cells = {}
    for (network, dataset), table in profiles.items():
        cells[(dataset, network)] = {
            layer: (ci_cell(row["V/A partial R2 after category"], row["V/A partial R2 low"], row["V/A partial R2 high"])
                    if np.isfinite(row["V/A partial R2 after category"]) else "n/a")
            for layer, row in table.iterrows()}
    out = pd.DataFrame.from_dict(cells, orient="index")
    out.index.names = ["dataset", "network"]
    return out
