"""Chapter 02 pipeline (DCNN hierarchy probing): FER2013 class subsets, the per-layer study table on a
tiny model with planted identity/expression, PCA, axis sampling, the ground-truth checks, the
NeuroGaze-Distill run discovery, and the train-or-load path on a FER2013 fixture."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.decomposition import PCA
from torch import nn

from affectlab.config import ConfigError, resolve_run
from affectlab.data.sets import FaceSet
from affectlab.data.taxonomy import FER2013_CLASSES, FERPLUS_CLASSES
from affectlab.pipelines import dcnn_hierarchy as dh
from affectlab.train import CHECKPOINT_FORMAT, save_checkpoint
from fixtures_faces import ferplus_rows, install_manifests, make_fer2013_labels, make_ferplus_png


def fer_faces(labels: list[int]) -> FaceSet:
    n = len(labels)
    return FaceSet(images=torch.arange(n, dtype=torch.uint8).reshape(n, 1, 1, 1).expand(n, 1, 48, 48).clone(),
                   labels=torch.tensor(labels), class_names=FER2013_CLASSES, name="fer2013", split="train",
                   source="real: test")


# ---------------------------------------------------------------------------------------------
# FER2013 subsets (NN1 = happy, sad, neutral)
# ---------------------------------------------------------------------------------------------


def test_nn1_subset_keeps_and_relabels_happy_sad_neutral():
    faces = fer_faces([0, 3, 4, 6, 5, 3, -1, 6, 1])  # angry happy sad neutral surprise happy ? neutral disgust
    sub = dh.nn1_subset(faces)
    assert sub.class_names == ("happy", "sad", "neutral")
    assert sub.labels.tolist() == [0, 1, 2, 0, 2]
    assert sub.images[:, 0, 0, 0].tolist() == [1, 2, 3, 5, 7]  # the original rows, in order


def test_nn1_subset_rejects_other_taxonomies():
    faces = FaceSet(images=torch.zeros(2, 1, 48, 48, dtype=torch.uint8), labels=torch.tensor([0, 1]),
                    class_names=FERPLUS_CLASSES, name="ferplus", split="train", source="x")
    with pytest.raises(ValueError, match="7 FER2013 classes"):
        dh.nn1_subset(faces)


def test_class_capped_and_stratified_indices():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20 + [-1] * 5)
    capped = dh.class_capped_indices(labels, 25, seed=0)
    assert np.bincount(labels[capped]).tolist() == [25, 25, 20]
    assert np.array_equal(capped, dh.class_capped_indices(labels, 25, seed=0))
    assert len(dh.class_capped_indices(labels, None, seed=0)) == 100  # -1 never kept
    strat = dh.stratified_indices(labels, 50, seed=1)
    assert np.bincount(labels[strat]).tolist() == [25, 15, 10]  # class proportions kept
    assert np.all(np.diff(strat) > 0)
    assert len(dh.stratified_indices(labels, None, seed=0)) == 100
    with pytest.raises(ValueError, match="integer class labels"):
        dh.class_capped_indices(np.array([0.5, 1.0]), 1, seed=0)


def test_chapter_config_profiles_and_errors():
    for profile in ("smoke", "quick", "paper"):
        cfg = dh.chapter_config(profile)
        assert cfg.profile == profile
    assert dh.chapter_config("smoke").embedding == "pca" and dh.chapter_config("quick").embedding == "umap"
    with pytest.raises(ConfigError, match="probe_subjects"):
        dh.chapter_config("smoke", probe_subjects=1)
    with pytest.raises(ConfigError, match="embedding"):
        dh.chapter_config("smoke", embedding="tsne")


# ---------------------------------------------------------------------------------------------
# PCA, axis sampling
# ---------------------------------------------------------------------------------------------


def test_principal_components_match_sklearn_for_wide_layers():
    x = np.random.default_rng(0).normal(size=(30, 500)).astype(np.float32)
    x[:, :3] *= 10  # a few dominant directions
    scores, ratio = dh.principal_components(x, 5, block=64)
    ref = PCA(5).fit(x.astype(np.float64))
    ref_scores = ref.transform(x.astype(np.float64))
    np.testing.assert_allclose(np.abs(scores), np.abs(ref_scores), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(ratio, ref.explained_variance_ratio_, rtol=1e-4)
    assert scores.dtype == np.float32


def test_axis_samples_picks_nearest_equally_spaced_points():
    coords = np.array([0.0, 10.0, 4.9, 2.6, 7.4])
    idx = dh.axis_samples(coords, 5)  # targets 0, 2.5, 5, 7.5, 10
    assert idx.tolist() == [0, 3, 2, 4, 1]
    with pytest.raises(ValueError, match="1-D"):
        dh.axis_samples(np.zeros((2, 2)), 3)


# ---------------------------------------------------------------------------------------------
# the per-layer study on a tiny model with planted identity and expression
# ---------------------------------------------------------------------------------------------


class TinyProbe(nn.Module):
    """pixels -> 'pixels' (identity: strong per-person pattern) -> 'expr' (reads the expression
    patch only) -> 'out' (3 logits)."""

    def __init__(self, expression_rows: slice):
        super().__init__()
        self.rows = expression_rows
        self.pixels = nn.Flatten()
        self.expr = nn.Flatten()
        self.out = nn.Linear(4 * 48, 3)

    def forward(self, x):
        self.pixels(x)
        return self.out(self.expr(x[:, :, self.rows, :]))


def planted_probe(n_ids: int = 12, n_expr: int = 3, reps: int = 1, seed: int = 0) -> dh.ProbeSet:
    rng = np.random.default_rng(seed)
    people = rng.normal(0, 60, size=(n_ids, 48, 48))
    patterns = rng.normal(0, 60, size=(n_expr, 4, 48))
    images, ident, expr = [], [], []
    for i in range(n_ids):
        for e in range(n_expr):
            for _ in range(reps):
                img = 128 + people[i] + rng.normal(0, 3, (48, 48))
                img[:4] = 128 + patterns[e] + rng.normal(0, 3, (4, 48))  # expression lives in rows 0-3 only
                images.append(img)
                ident.append(i)
                expr.append(e + 1)  # FERPlus: happiness, surprise, sadness
    images = torch.as_tensor(np.clip(images, 0, 255).astype(np.uint8))[:, None]
    labels = torch.tensor(expr)
    va = np.array([[0.81, 0.51], [0.40, 0.67], [-0.63, -0.27]])[np.array(expr) - 1]
    faces = FaceSet(images=images, labels=labels, class_names=FERPLUS_CLASSES, name="planted", split="all",
                    source="generated: test", identity=torch.tensor(ident),
                    identity_names=tuple(f"P{i}" for i in range(n_ids)),
                    valence=torch.tensor(va[:, 0], dtype=torch.float32), arousal=torch.tensor(va[:, 1], dtype=torch.float32))
    return dh.ProbeSet("planted", "planted faces", faces, va[:, 0], va[:, 1], "planted", "planted")


def tiny_network() -> dh.ProbedNetwork:
    torch.manual_seed(0)
    model = TinyProbe(slice(0, 4))
    roles = {"early": "pixels", "identity": "pixels", "penultimate": "expr", "final": "out"}
    return dh.ProbedNetwork(name="tiny", model=model, class_names=("happy", "surprise", "sad"),
                            layers=("pixels", "expr", "out"), roles=roles, gradcam_layers=(),
                            prepare=lambda im: im.float() / 255.0, description="tiny", trained=True)


def test_layer_profile_recovers_planted_identity_and_expression():
    probe, net = planted_probe(), tiny_network()
    cfg = dh.chapter_config("smoke", bootstrap_resamples=50, reduce_pcs=10)
    codes = dh.layer_codes(net, probe, cfg)
    assert codes.dims == {"pixels": 2304, "expr": 192, "out": 3}
    assert codes.pcs["pixels"].shape == (36, 10) and "expr" in codes.raw and "pixels" not in codes.raw
    table = dh.layer_profile(codes, probe, net.roles, cfg)
    assert list(table.index) == ["pixels", "expr", "out"]
    assert table.loc["pixels", "role"] == "early, identity" and table.loc["expr", "role"] == "penultimate"
    for target in ("identity", "expression"):
        s, lo, hi = (table[f"{target} silhouette{c}"] for c in ("", " low", " high"))
        assert ((lo <= s + 1e-9) & (s <= hi + 1e-9) & (s.abs() <= 1)).all()
    # pixels: people dominate; the expression patch: expressions dominate, people vanish
    assert table.loc["pixels", "identity silhouette"] > 0.5 > table.loc["pixels", "expression silhouette"]
    assert table.loc["expr", "expression silhouette"] > 0.5 > table.loc["expr", "identity silhouette"]
    # V/A is a function of the expression: decodable across people from the patch, not from pixels
    assert table.loc["expr", "V/A R2 (CV by subject)"] > 0.9
    assert table.loc["expr", "V/A R2 (CV by subject)"] > table.loc["pixels", "V/A R2 (CV by subject)"]
    cached = dh.layer_codes(net, probe, cfg)  # second call reads the cache
    np.testing.assert_array_equal(cached.pcs["pixels"], codes.pcs["pixels"])

    profiles = {("tiny", "planted"): table}
    checks = dh.ground_truth_checks(profiles, {"tiny": net.roles}, {"tiny": True}, ("planted",))
    holds = checks.set_index("claim")["holds here"]
    assert holds["identity dominates the early layer"]
    assert holds["training lifts expression towards the output"]
    assert holds["identity fades towards the output"]
    study3 = dh.study3_table(profiles, {"tiny": net.roles})
    assert list(study3["role"]) == list(dh.ROLES)
    emergence = dh.va_emergence_table({"tiny": table}, {"tiny": net.roles})
    assert emergence.loc["tiny", "half-max reached at depth"] == pytest.approx(0.5)


def test_studies_1_2_4_on_the_tiny_model():
    probe, net = planted_probe(), tiny_network()
    cfg = dh.chapter_config("smoke", bootstrap_resamples=20, reduce_pcs=10)
    codes = dh.layer_codes(net, probe, cfg)
    s1 = dh.study1_umaps(codes, probe, cfg, layers=("pixels", "expr"))
    assert s1.embeddings["pixels"].shape == (36, 2)
    assert s1.table.loc["pixels", "identity silhouette, PCA 2-D"] > s1.table.loc["expr", "identity silhouette, PCA 2-D"]
    nn3_like = dataclass_copy(codes, {"dropout_4": codes.raw["expr"]})
    s2 = dh.study2_identity_dominance(probe, nn3_like, cfg)
    assert s2.table.loc["pixels, PCA (10 PCs)", "identity silhouette"] > 0.5
    assert s2.table.loc["pixels, PCA (10 PCs)", "paper (DISFA, identity)"] == 0.501
    assert np.isnan(s2.table.loc["VGG16 fc2, UMAP", "identity silhouette"])
    net.roles["penultimate"] = "expr"
    s4 = dh.study4_penultimate(net, codes, probe)
    assert s4.regression.loc[("PC1", "valence"), "r"] > 0  # signs aligned with valence
    assert s4.predicted.shape == (36,) and set(np.unique(s4.predicted)) <= {1, 2, 3}  # FERPlus indices
    corr = dh.axis_va_correlation(s1.embeddings["expr"], probe)
    assert corr.shape == (4, 3)


def dataclass_copy(codes: dh.LayerCodes, raw: dict) -> dh.LayerCodes:
    layers = tuple(raw)
    return dh.LayerCodes(network="copy", dataset=codes.dataset, layers=layers, dims={k: v.shape[1] for k, v in raw.items()},
                         pcs={k: dh.principal_components(v, 10)[0] for k, v in raw.items()},
                         explained={k: dh.principal_components(v, 10)[1] for k, v in raw.items()}, raw=raw)


def test_face_images_of_research_datasets_are_refused():
    probe = planted_probe(n_ids=2, n_expr=2, reps=1)
    real = dh.ProbeSet("ck", "CK+48", FaceSet(**{**probe.faces.__dict__, "source": "real: /data/ckplus"}),
                       probe.valence, probe.arousal, "x", "x")
    with pytest.raises(ValueError, match="never shown"):
        dh.face_strip_figure(real, {"row": np.array([0, 1])}, "t")
    fig = dh.face_strip_figure(probe, {"row": np.array([0, 1])}, "t")
    assert fig.axes


# ---------------------------------------------------------------------------------------------
# NeuroGaze-Distill run discovery
# ---------------------------------------------------------------------------------------------


def fake_student_run(root, name, variant, grid=5, epochs=2, finished=True, chapter="01_neurogaze_distill",
                     state=None):
    run_dir = root / name
    run_dir.mkdir(parents=True)
    key = {"chapter": chapter, "role": "student", "variant": variant, "arch": "resnet18", "init_seed": 0,
           "proto": None if grid is None else {"grid": grid}}
    config = {"train": {"epochs": epochs}, "key": key,
              "train_data": {"x": {"shape": [10, 1, 48, 48]}, "resize": None, "mean": [0.5], "std": [0.25]}}
    (run_dir / "config.json").write_text(json.dumps(config))
    rows = epochs if finished else epochs - 1
    (run_dir / "history.csv").write_text("epoch,loss\n" + "".join(f"{e + 1},1.0\n" for e in range(rows)))
    save_checkpoint({"format": CHECKPOINT_FORMAT, "model": state if state is not None else {}}, run_dir / "best.pt")
    return run_dir


def test_find_student_runs_and_latest_per_variant(tmp_path):
    from affectlab.models.resnet_student import FERStudent

    torch.manual_seed(0)
    state = FERStudent().state_dict()
    fake_student_run(tmp_path, "ch01-B0-s0-aaa", "B0", grid=None, state=state)
    fake_student_run(tmp_path, "ch01-B2-s0-bbb", "B2")
    fake_student_run(tmp_path, "ch01-B2-g7-s0-ccc", "B2", grid=7)  # grid ablation
    fake_student_run(tmp_path, "ch01-B3-s0-ddd", "B3", finished=False)  # unfinished
    fake_student_run(tmp_path, "ch02-NN1-s0-eee", "B1", chapter="02_dcnn_hierarchy")  # another chapter
    runs = dh.find_student_runs(tmp_path)
    assert sorted(runs["variant"]) == ["B0", "B2", "B2"]
    latest = dh.latest_student_per_variant(runs)
    assert list(latest["variant"]) == ["B0", "B2"] and latest.loc[1, "grid"] == 5
    assert dh.find_student_runs(tmp_path / "absent").empty

    net = dh.load_student(latest.iloc[0])
    x = net.prepare(torch.full((2, 1, 48, 48), 128, dtype=torch.uint8))
    assert torch.allclose(x, torch.full_like(x, (128 / 255 - 0.5) / 0.25), atol=1e-6)
    assert net.roles["penultimate"] == "proj"


# ---------------------------------------------------------------------------------------------
# FER2013 fixture: load, train-or-load, Table 1
# ---------------------------------------------------------------------------------------------


def test_fer2013_fixture_train_or_load_and_table1(tmp_path, monkeypatch):
    rows = ferplus_rows((21, 14, 14))  # emotion = row index % 7: every class in every split
    base = make_ferplus_png(tmp_path, rows)
    make_fer2013_labels(base, rows)
    install_manifests(monkeypatch, tmp_path, {"fer2013": base})
    run = resolve_run("smoke", str(tmp_path), 0, "cpu")
    cfg = dh.chapter_config("smoke", train_per_class=2, val_size=7, test_size=None, batch_size=4, steps_per_epoch=1)
    fer = dh.load_fer2013(run, cfg)
    assert fer.real and fer.full_sizes == {"train": 21, "public_test": 14, "private_test": 14}
    assert len(fer.train["NN2"]) == 14 and len(fer.train["NN1"]) == 6
    assert fer.train["NN1"].class_names == dh.NN1_CLASSES
    assert len(fer.test["NN1"]) == 6 and len(fer.test["NN2"]) == 14
    counts = fer.counts_table()
    assert counts.loc["NN1 train", "total"] == 6

    nets, notes = dh.build_networks(fer, cfg, run)
    assert {"NN1", "NN2", "NN3"} <= set(nets)
    assert not nets["NN1"].fit.loaded_from_cache
    nn1_init = dh._sharma_model("NN1", run.seed).state_dict()
    for name, value in nets["NN3"].model.state_dict().items():  # NN3 = NN1 before training
        torch.testing.assert_close(value.cpu(), nn1_init[name])
    again = dh.train_sharma("NN2", fer, cfg, run)
    assert again.loaded_from_cache and again.run_dir == nets["NN2"].fit.run_dir  # train-or-load
    assert list(again.run_dir.glob("batchnorm-*.pt"))  # the recalibrated statistics are cached
    table = dh.accuracy_table(nets, fer, cfg, run)
    assert table.loc["NN1", "test faces"] == 6 and table.loc["NN2", "test faces"] == 14
    ok = table.drop(index="RMN (ResMaskNet)")
    assert ((ok["95% CI low"] <= ok["accuracy here (%)"] + 1e-9) & (ok["accuracy here (%)"] <= ok["95% CI high"] + 1e-9)).all()
    assert table.loc["NN2", "paper's accuracy (%)"] == "65.90"
    assert np.isnan(table.loc["RMN (ResMaskNet)", "accuracy here (%)"])


def test_recalibrate_batchnorm_sets_exact_population_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Dropout(0.5), nn.Linear(5, 4), nn.BatchNorm1d(4, momentum=0.01), nn.Linear(4, 2))
    x = torch.randn(40, 5) * 3 + 1
    dh.recalibrate_batchnorm(model, x, batch_size=8)
    bn = model[2]
    with torch.no_grad():
        h = model[1](x)  # dropout is left in eval mode: the statistics of what the evaluated model sees
    torch.testing.assert_close(bn.running_mean, h.mean(0), rtol=1e-5, atol=1e-5)
    batch_vars = torch.stack([h[i:i + 8].var(0, unbiased=True) for i in range(0, 40, 8)])
    torch.testing.assert_close(bn.running_var, batch_vars.mean(0), rtol=1e-5, atol=1e-5)
    assert bn.momentum == 0.01 and not model.training
    with pytest.raises(ValueError, match="at least 2 inputs"):
        dh.recalibrate_batchnorm(model, x[:1])
