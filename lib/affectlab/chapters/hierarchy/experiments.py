"""Chapter 02 experiments (paper 001): Study 1 (UMAP of NN1's layers, Fig. 2a-d), Study 2
(identity in pixels and the untrained NN3, Fig. 3), the layer profiles of every network on every
probing set (Study 3, Fig. 4), Study 4 (the penultimate layer's PC1/PC2 against valence/arousal and
the U-shape, Figs. 5-7), and Grad-CAM per block (Fig. 2e-f) with the region table measured on
generated faces."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from affectlab import metrics, stats
from affectlab.data.sets import FaceSet
from affectlab.data.taxonomy import FERPLUS_CLASSES
from affectlab.probing import gradcam_per_block, silhouette_ci_by_subject, umap_embed, va_regression

from .config import (
    PAPER_STUDY1_SILHOUETTES,
    PAPER_STUDY2_SILHOUETTES,
    TO_FERPLUS_NAME,
    ChapterConfig,
    import_quietly,
)
from .data import ProbeSet, probe_set, require_generated
from .layers import LayerCodes, layer_codes, layer_pcs, layer_profile, principal_components, role_layer
from .networks import ProbedNetwork, ferplus_predictions, network_logits


def probe_networks(nets: Mapping[str, ProbedNetwork], probes: Mapping[str, ProbeSet], cfg: ChapterConfig,
                   seed: int = 0) -> tuple[dict[tuple[str, str], LayerCodes], dict[tuple[str, str], pd.DataFrame]]:
    """Every network on every probing set (Study 3): the layer codes (:func:`layer_codes`, cached)
    and the layer profiles (:func:`layer_profile`), both keyed ``(network, probing set)``."""
    codes = {(name, key): layer_codes(net, probe, cfg) for name, net in nets.items() for key, probe in probes.items()}
    profiles = {(name, key): layer_profile(codes[(name, key)], probes[key], nets[name].roles, cfg, seed=seed)
                for name, key in codes}
    return codes, profiles


def axis_samples(coords: np.ndarray, n: int) -> np.ndarray:
    """Row indices of the samples nearest to ``n`` equally spaced points from the minimum to the
    maximum of ``coords`` (Fig. 2d and 6: "21 equally spaced faces projected onto the axis")."""
    c = np.asarray(coords, dtype=np.float64)
    if c.ndim != 1 or len(c) == 0 or not np.isfinite(c).all():
        raise ValueError(f"coords must be a non-empty finite 1-D array; got shape {c.shape}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1; got {n!r}")
    targets = np.linspace(c.min(), c.max(), n)
    return np.abs(c[None, :] - targets[:, None]).argmin(axis=1)


@dataclasses.dataclass
class EmbeddingStudy:
    """2-D embeddings (``name -> (N, 2)``) of one probing set with their silhouettes (``table``)."""

    network: str
    dataset: str
    embeddings: dict[str, np.ndarray]
    table: pd.DataFrame


def _silhouette_ci(xy: np.ndarray, labels: np.ndarray, subjects: np.ndarray, cfg: ChapterConfig,
                   seed: int) -> tuple[float, float, float]:
    """Silhouette of ``labels`` on ``xy`` (all its columns) with the 95 % subject-bootstrap CI of
    :func:`affectlab.probing.silhouette_ci_by_subject`; NaNs when fewer than 2 labels are known."""
    known = labels >= 0
    if len(np.unique(labels[known])) < 2 or len(np.unique(subjects[known])) < 2:
        return float("nan"), float("nan"), float("nan")
    t = silhouette_ci_by_subject({"x": xy[known]}, labels[known], subjects[known], n_components=xy.shape[1],
                                 n_resamples=cfg.bootstrap_resamples, seed=seed).loc["x"]
    return float(t["silhouette"]), float(t["ci_low"]), float(t["ci_high"])


def _embed(x: np.ndarray, cfg: ChapterConfig, seed: int) -> np.ndarray:
    """The Study 1-2 scatter-plot embedding: UMAP (the paper), or the first 2 PCs (smoke)."""
    if cfg.embedding == "pca":
        return principal_components(x, 2)[0]
    import_quietly("umap")
    return umap_embed(x, n_neighbors=cfg.umap_neighbors, min_dist=cfg.umap_min_dist, seed=seed)


def study1_umaps(codes: LayerCodes, probe: ProbeSet, cfg: ChapterConfig, seed: int = 0,
                 layers: Sequence[str] = ("batchnorm_1", "flatten", "dropout_4")) -> EmbeddingStudy:
    """Study 1 / Fig. 2(a-c): UMAP (``cfg.embedding``) of ``layers`` and the silhouette w.r.t.
    identity of each 2-D embedding and on the first 10 PCs, each with a 95 % CI from resampling
    subjects (the embedding is held fixed), beside the paper's numbers for NN1 on DISFA."""
    identity, labels = probe.faces.identity.numpy(), probe.faces.labels.numpy()
    embeddings, rows = {}, []
    method = cfg.embedding.upper()
    for layer in layers:
        x, note = codes.umap_input(layer)
        xy = _embed(x, cfg, seed)
        embeddings[layer] = xy
        row: dict[str, Any] = {"layer": layer, f"{method} input": note}
        for name, rep_xy, labs in ((f"identity silhouette, {method} 2-D", xy, identity),
                                   ("identity silhouette, 10 PCs", layer_pcs(codes, layer)[:, : cfg.n_pcs], identity),
                                   (f"expression silhouette, {method} 2-D", xy, labels)):
            row[name], row[f"{name} low"], row[f"{name} high"] = _silhouette_ci(rep_xy, labs, identity, cfg, seed)
        row["paper (NN1, DISFA, identity)"] = PAPER_STUDY1_SILHOUETTES.get(layer, np.nan)
        rows.append(row)
    return EmbeddingStudy(codes.network, probe.key, embeddings, pd.DataFrame(rows).set_index("layer"))


def study2_identity_dominance(probe: ProbeSet, nn3_codes: LayerCodes, cfg: ChapterConfig, seed: int = 0) -> EmbeddingStudy:
    """Study 2 / Fig. 3: identity in raw pixels (UMAP; PCA on 2 and 10 PCs) and in the untrained
    NN3's penultimate layer (UMAP), with silhouettes w.r.t. identity and expression and their 95 %
    subject-bootstrap CIs (embeddings held fixed). VGG16 (Fig. 3d)
    is listed with the paper's value only: its ImageNet weights cannot be downloaded here."""
    identity, labels = probe.faces.identity.numpy(), probe.faces.labels.numpy()
    pixels = probe.faces.images.reshape(len(probe.faces), -1).float().numpy() / 255.0
    pcs, ratio = principal_components(pixels, cfg.n_pcs)
    nn3_x, nn3_note = nn3_codes.umap_input("dropout_4")
    method = cfg.embedding.upper()
    # (name shown, paper's row of Fig. 3, 2-D embedding or 10 PCs, what went in)
    reps = [
        (f"pixels, {method}", "pixels, UMAP", _embed(pixels, cfg, seed), f"{pixels.shape[1]:,} pixel values"),
        ("pixels, PCA (2 PCs)", "pixels, PCA (2 PCs)", pcs[:, :2],
         f"PC1 {100 * ratio[0]:.1f} %, PC2 {100 * ratio[1]:.1f} % of variance"),
        ("pixels, PCA (10 PCs)", "pixels, PCA (10 PCs)", pcs, f"{100 * ratio[: cfg.n_pcs].sum():.1f} % of variance"),
        (f"NN3 dropout_4, {method}", "NN3 dropout_4, UMAP", _embed(nn3_x, cfg, seed), nn3_note),
    ]
    rows = []
    for name, paper, xy, note in reps:
        row: dict[str, Any] = {"representation": name, "input": note}
        for target, labs in (("identity", identity), ("expression", labels)):
            col = f"{target} silhouette"
            row[col], row[f"{col} low"], row[f"{col} high"] = _silhouette_ci(xy, labs, identity, cfg, seed)
        row["paper (DISFA, identity)"] = PAPER_STUDY2_SILHOUETTES[paper]
        rows.append(row)
    rows.append({"representation": "VGG16 fc2, UMAP", "input": "not run: ImageNet VGG16 weights cannot be downloaded here",
                 **{f"{t} silhouette{c}": np.nan for t in ("identity", "expression") for c in ("", " low", " high")},
                 "paper (DISFA, identity)": PAPER_STUDY2_SILHOUETTES["VGG16 fc2, UMAP"]})
    embeddings = {name: xy for name, _, xy, _ in reps if xy.shape[1] == 2}
    return EmbeddingStudy("pixels and NN3", probe.key, embeddings, pd.DataFrame(rows).set_index("representation"))


@dataclasses.dataclass
class PCStudy:
    """Study 4: the penultimate layer's PC1/PC2 (signs flipped so PC1 rises with valence and PC2
    with arousal; PCA signs are arbitrary), their regression on V/A, and the network's predictions
    (FERPlus indices) for Fig. 7."""

    network: str
    dataset: str
    layer: str
    pcs: np.ndarray
    explained: np.ndarray
    regression: pd.DataFrame
    labels: np.ndarray
    predicted: np.ndarray
    valence: np.ndarray
    arousal: np.ndarray
    u_shape: dict[str, float] = dataclasses.field(default_factory=dict)


def fisher_ci(r: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Confidence interval of a Pearson r by Fisher's z-transform (atanh(r) +- z / sqrt(n - 3))."""
    from scipy import stats

    if n <= 3 or not np.isfinite(r):
        return float("nan"), float("nan")
    z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    half = stats.norm.ppf(0.5 + confidence / 2) / np.sqrt(n - 3)
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def u_shape_test(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The U-shape of Fig. 5a measured: least squares ``y = b0 + b1 x + b2 x^2`` on standardised
    ``x``; ``b2`` > 0 with a small two-sided p (t-test, n - 3 df) is a U opening upwards (as IAPS
    arousal against valence). Returns b2, its standard error, t, p, n and the R^2 gained over the
    straight line."""
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 5 or np.ptp(x) == 0:
        raise ValueError(f"u_shape_test needs two equal-length 1-D arrays of >= 5 values with x not constant; "
                         f"got {x.shape} and {y.shape}")
    z = (x - x.mean()) / x.std()
    design = np.stack([np.ones_like(z), z, z**2], 1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    dof = len(y) - 3
    sigma2 = float(resid @ resid) / dof
    se = float(np.sqrt(sigma2 * np.linalg.inv(design.T @ design)[2, 2]))
    t = float(coef[2] / se) if se > 0 else float("inf") * np.sign(coef[2])
    p = float(2 * stats.t.sf(abs(t), dof))
    line = np.stack([np.ones_like(z), z], 1)
    line_resid = y - line @ np.linalg.lstsq(line, y, rcond=None)[0]
    ss_tot = float(((y - y.mean()) ** 2).sum())
    gain = (float(line_resid @ line_resid) - float(resid @ resid)) / ss_tot if ss_tot > 0 else float("nan")
    return {"b2": float(coef[2]), "se": se, "t": t, "p": p, "n": float(len(y)), "R2 gain over a line": gain}


def pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two 1-D arrays; NaN when either is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def cluster_r_ci(x: np.ndarray, y: np.ndarray, clusters: np.ndarray, n_resamples: int = 1000, seed: int = 0
                 ) -> tuple[float, float, float]:
    """Pearson r of ``x`` and ``y`` with its 95 % cluster-bootstrap CI: each resample draws whole
    ``clusters`` (identities) with replacement (:func:`affectlab.stats.bootstrap_ci` with
    ``clusters``), so faces of one person move together. Fisher's z interval treats every face as
    independent and is too narrow when each person contributes many faces (issue 15, item 5)."""
    xy = np.stack([np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)], 1)

    def metric(rows: np.ndarray, pair: np.ndarray) -> float:
        return pearson_r(pair[:, 0], pair[:, 1])

    return stats.bootstrap_ci(metric, np.arange(len(xy)), xy, n_resamples=n_resamples, seed=seed,
                              clusters=np.asarray(clusters))


def study4_penultimate(net: ProbedNetwork, codes: LayerCodes, probe: ProbeSet, cfg: ChapterConfig | None = None,
                       seed: int = 0) -> PCStudy:
    """Study 4 / Figs. 5 and 7: PCA of the penultimate layer, PC1 vs valence and PC2 vs arousal
    (Pearson r, p, least-squares line) with 95 % CIs resampling identities
    (:func:`cluster_r_ci`, ``cfg.bootstrap_resamples``; without ``cfg``, Fisher's z over faces),
    the U-shape of the PC1/PC2 scatter (:func:`u_shape_test`), and which faces the network
    classifies correctly. ``regression.attrs["ci"]`` says which interval was used."""
    layer = role_layer({net.name: net.roles}, net.name, "penultimate")
    pcs = layer_pcs(codes, layer)[:, :2].astype(np.float64).copy()
    if pcs.shape[1] < 2:
        raise ValueError(f"{net.name} {layer} on {probe.key}: Study 4 needs 2 principal components; "
                         f"the layer gives {pcs.shape[1]} (constant output?)")
    signs = np.sign([np.corrcoef(pcs[:, 0], probe.valence)[0, 1], np.corrcoef(pcs[:, 1], probe.arousal)[0, 1]])
    pcs *= np.where(signs == 0, 1.0, signs)
    final = net.roles["final"]
    logits = codes.raw[final] if final in codes.raw else network_logits(net, probe.faces.images)
    regression = va_regression(pcs, probe.valence, probe.arousal)
    if cfg is None:
        bounds = [fisher_ci(r, int(n)) for r, n in zip(regression["r"], regression["n"])]
        regression.attrs["ci"] = "Fisher z over faces"
    else:
        columns = {"PC1": pcs[:, 0], "PC2": pcs[:, 1]}
        targets = {"valence": probe.valence, "arousal": probe.arousal}
        identity = probe.faces.identity.numpy()
        bounds = [cluster_r_ci(columns[comp], targets[target], identity, cfg.bootstrap_resamples, seed)[1:]
                  for comp, target in regression.index]
        regression.attrs["ci"] = f"cluster bootstrap over {probe.n_subjects} identities"
    regression["r low"], regression["r high"] = [b[0] for b in bounds], [b[1] for b in bounds]
    return PCStudy(network=net.name, dataset=probe.key, layer=layer, pcs=pcs, explained=codes.explained[layer][:2],
                   regression=regression, labels=probe.faces.labels.numpy(),
                   predicted=ferplus_predictions(net, logits), valence=probe.valence, arousal=probe.arousal,
                   u_shape=u_shape_test(pcs[:, 0], pcs[:, 1]))




def present_only_accuracy(net: ProbedNetwork, probe: ProbeSet, cfg: ChapterConfig, seed: int = 0
                          ) -> dict[str, Any]:
    """A clean test of a FER2013 network on an identity-labelled set (CK+ for mini-Xception):
    present-only accuracy (:func:`affectlab.metrics.present_only_metrics`: faces whose expression
    the network has, arg-max over the network's classes present in the set, e.g. no neutral on
    CK+) with a 95 % cluster-bootstrap CI over subjects. Returns value/low/high (%), n faces,
    n subjects and the classes scored."""
    names = [TO_FERPLUS_NAME[c] for c in net.class_names]
    labels = [FERPLUS_CLASSES.index(n) for n in names]
    logits = network_logits(net, probe.faces.images)
    true = probe.faces.labels.numpy()
    keep = np.isin(true, labels)
    if keep.sum() < 2:
        raise ValueError(f"{probe.title}: fewer than 2 faces of {net.name}'s classes {names}")
    t, scores, subjects = true[keep], logits[keep], probe.faces.identity.numpy()[keep]

    def accuracy(y: np.ndarray, sc: np.ndarray) -> float:
        return float(metrics.present_only_metrics(y, np.asarray(labels)[sc.argmax(1)], labels=labels,
                                                  scores=sc)["accuracy"])

    value, low, high = stats.bootstrap_ci(accuracy, t, scores, n_resamples=cfg.bootstrap_resamples, seed=seed,
                                          clusters=subjects)
    present = [FERPLUS_CLASSES[c] for c in labels if c in set(t.tolist())]
    return {"value": 100 * value, "low": 100 * low, "high": 100 * high, "n": int(keep.sum()),
            "subjects": int(len(np.unique(subjects))), "classes": present}


@dataclasses.dataclass
class IdentityStudy:
    """Studies 2-3 on one identity-labelled set (:func:`identity_studies`): the probing set, Study 2
    (pixels and, when NN3 is given, the untrained NN3) and the per-layer profiles of every network
    (Study 3) with the Fig. 4 table of their role layers."""

    probe: ProbeSet
    study2: EmbeddingStudy | None
    codes: dict[str, LayerCodes]
    profiles: dict[str, pd.DataFrame]
    study3: pd.DataFrame


def identity_studies(faces: FaceSet | ProbeSet, nets: Mapping[str, ProbedNetwork], cfg: ChapterConfig,
                     seed: int = 0, key: str = "user", title: str | None = None) -> IdentityStudy:
    """Studies 2 and 3 of paper 001 on any identity-labelled faces, in one call: e.g. a user's
    CSV read by ``affectlab.data.faces.load_image_csv(path)`` with ``path,label,identity`` columns
    (48x48 greyscale after loading; at least 2 identities and 2 expressions). Study 2 = identity
    and expression silhouettes of the raw pixels and of the untrained NN3 (when ``nets`` has
    "NN3"; needs ``umap-learn`` unless ``cfg.embedding == "pca"``); Study 3 = the per-layer
    silhouettes, V/A read-out and partial R^2 after category of every network in ``nets``
    (:func:`~.layers.layer_profile`), each with 95 % CIs over identities."""
    from .tables import study3_table

    probe = faces if isinstance(faces, ProbeSet) else probe_set(
        key, title or f"{faces.name}/{faces.split}", faces, "the set's labels", cfg)
    if probe.n_subjects < 2:
        raise ValueError(f"{probe.title}: identity studies need at least 2 identities; got {probe.n_subjects}")
    codes = {name: layer_codes(net, probe, cfg) for name, net in nets.items()}
    roles = {name: net.roles for name, net in nets.items()}
    profiles = {name: layer_profile(codes[name], probe, roles[name], cfg, seed=seed) for name in nets}
    study2 = study2_identity_dominance(probe, codes["NN3"], cfg, seed) if "NN3" in codes else None
    study3 = study3_table({(name, probe.key): t for name, t in profiles.items()}, roles)
    return IdentityStudy(probe=probe, study2=study2, codes=codes, profiles=profiles, study3=study3)


def gradcam_examples(net: ProbedNetwork, probe: ProbeSet, categories: Sequence[str] = ("happiness", "anger"),
                     ) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """Grad-CAM of ``net.gradcam_layers`` (Fig. 2e-f: batchnorm_1, conv2d_4, conv2d_6) for the first
    face of each category (the paper: a smiling face and an eyebrow frown) of a generated set,
    for the network's predicted class. Returns the images (K, 48, 48) uint8, ``{layer: (K, 48, 48)}``
    maps in [0, 1] and a caption per face."""
    require_generated(probe)
    import_quietly("captum.attr")
    labels = probe.faces.labels
    rows = [int(torch.nonzero(labels == FERPLUS_CLASSES.index(c)).flatten()[0]) for c in categories
            if bool((labels == FERPLUS_CLASSES.index(c)).any())]
    if not rows:
        raise ValueError(f"{probe.title}: no face of the categories {tuple(categories)}")
    images = probe.faces.images[rows]
    x = net.prepare(images)
    cams = gradcam_per_block(net.model, x, None, net.gradcam_layers)
    predicted = network_logits(net, images).argmax(axis=1)
    captions = [f"{FERPLUS_CLASSES[int(labels[r])]} face, {net.name} says {net.class_names[p]}"
                for r, p in zip(rows, predicted)]
    if x.shape[-1] != images.shape[-1]:  # mini-Xception reads 64 px: bring maps back to 48 px
        cams = {k: torch.nn.functional.interpolate(torch.as_tensor(v)[:, None], size=images.shape[-2:], mode="bilinear",
                                                   align_corners=False)[:, 0].numpy() for k, v in cams.items()}
    return images[:, 0].numpy(), cams, captions


#: iBUG-68 landmark rows (0-based) of the face regions the region table measures.
REGION_LANDMARKS: dict[str, tuple[int, ...]] = {
    "brows and eyes": tuple(range(17, 27)) + tuple(range(36, 48)),
    "mouth": tuple(range(48, 68)),
}


def region_masks(landmarks: np.ndarray, side: int, pad: float = 2.0) -> dict[str, np.ndarray]:
    """Boolean (side, side) masks of the landmark bounding boxes (``pad`` px around them)."""
    yy, xx = np.mgrid[0:side, 0:side] + 0.5
    masks = {}
    for region, idx in REGION_LANDMARKS.items():
        pts = landmarks[list(idx)]
        (x0, y0), (x1, y1) = pts.min(0) - pad, pts.max(0) + pad
        masks[region] = (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)
    return masks


def gradcam_region_table(net: ProbedNetwork, probe: ProbeSet, cfg: ChapterConfig,
                         categories: Sequence[str] = ("happiness", "anger", "surprise", "sadness"),
                         seed: int = 0) -> pd.DataFrame:
    """Where each Grad-CAM layer looks, measured on generated faces (landmarks are known): the mean
    share of the map's mass inside the brows-and-eyes box and the mouth box, per expression, beside
    the share of the image those boxes cover (what a uniform map would give) and their ratio,
    the enrichment (1 = no preference, 2 = twice the uniform share), with a 95 % bootstrap CI over
    faces (each face is a different generated identity). The paper reports this qualitatively
    (Fig. 2e-f: the last block focuses on lips for a smile, brows for a frown)."""
    require_generated(probe)
    if "landmarks" not in probe.faces.meta:
        raise ValueError(f"{probe.title}: the region table needs meta['landmarks'] (generated faces)")
    import_quietly("captum.attr")
    side = probe.faces.images.shape[-1]
    chosen = {c: torch.nonzero(probe.faces.labels == FERPLUS_CLASSES.index(c)).flatten()[: cfg.gradcam_faces_per_class]
              for c in categories}
    chosen = {c: idx for c, idx in chosen.items() if len(idx)}
    if not chosen:
        raise ValueError(f"{probe.title}: no face of the categories {tuple(categories)}")
    rows_all = torch.cat(list(chosen.values()))
    cams = gradcam_per_block(net.model, net.prepare(probe.faces.images[rows_all]), None, net.gradcam_layers)
    landmarks = np.asarray(probe.faces.meta["landmarks"])[rows_all.numpy()]
    masks = [region_masks(lm, side) for lm in landmarks]
    category_of = np.concatenate([[c] * len(idx) for c, idx in chosen.items()])
    rng = np.random.default_rng(seed)
    rows = []
    for layer, maps in cams.items():
        maps = torch.nn.functional.interpolate(torch.as_tensor(maps)[:, None], size=(side, side), mode="bilinear",
                                               align_corners=False)[:, 0].numpy()
        for category in chosen:
            faces = np.flatnonzero(category_of == category)
            row = {"network": net.name, "layer": layer, "expression": category, "faces": len(faces)}
            for region in REGION_LANDMARKS:
                share = np.array([float(masks[i][region].astype(float).ravel() @ maps[i].ravel()
                                        / max(maps[i].sum(), 1e-12)) for i in faces])
                area = np.array([masks[i][region].mean() for i in faces])
                row[f"{region}: share of Grad-CAM (%)"] = 100 * float(np.mean(share))
                row[f"{region}: share of image (%)"] = 100 * float(np.mean(area))
                row[f"{region}: enrichment"] = row[f"{region}: share of Grad-CAM (%)"] / row[f"{region}: share of image (%)"]
                draws = rng.integers(0, len(faces), size=(cfg.bootstrap_resamples, len(faces)))
                ratios = share[draws].mean(axis=1) / area[draws].mean(axis=1)
                row[f"{region}: enrichment low"], row[f"{region}: enrichment high"] = np.quantile(ratios, [0.025, 0.975])
            rows.append(row)
    return pd.DataFrame(rows)


def axis_va_correlation(xy: np.ndarray, probe: ProbeSet, names: tuple[str, str] = ("UMAP1", "UMAP2")) -> pd.DataFrame:
    """Pearson r (and p) of each embedding axis with the planted valence and arousal: does the
    axis the paper reads as valence (UMAP1) or arousal (UMAP2) carry it? Axis signs are arbitrary."""
    from scipy import stats

    rows = []
    for j, axis in enumerate(names):
        for target, values in (("valence", probe.valence), ("arousal", probe.arousal)):
            r, p = stats.pearsonr(xy[:, j], values) if np.ptp(values) > 0 and np.ptp(xy[:, j]) > 0 else (np.nan, np.nan)
            rows.append({"axis": axis, "target": target, "r": float(r), "p": float(p), "n": len(values)})
    return pd.DataFrame(rows).set_index(["axis", "target"])
