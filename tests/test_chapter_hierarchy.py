"""Chapter 02 package (DCNN hierarchy probing, ``affectlab.chapters.hierarchy``): FER2013 class
subsets, the per-layer study table on a tiny model with planted identity/expression (with numbers
pinned from before the move to the package), PCA, axis sampling, the ground-truth checks, the
NeuroGaze-Distill run discovery and probing, recorded results, and the train-or-load path on a
FER2013 fixture."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.decomposition import PCA
from torch import nn

from affectlab.config import ConfigError, resolve_run
from affectlab.data.sets import FaceSet
from affectlab.data.taxonomy import FER2013_CLASSES, FERPLUS_CLASSES
from affectlab.chapters import hierarchy as dh
from affectlab.chapters.hierarchy.experiments import region_masks
from affectlab.reporting import ResultsRecorder, read_results
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
    r2, lo, hi = (table[c] for c in ("V/A R2 (CV by subject)", "V/A R2 low", "V/A R2 high"))
    assert (hi > lo).all() and ((lo - 0.05 <= r2) & (r2 <= hi + 0.05)).all()  # percentile CI around the point
    # pixels: people dominate; the expression patch: expressions dominate, people vanish
    assert table.loc["pixels", "identity silhouette"] > 0.5 > table.loc["pixels", "expression silhouette"]
    assert table.loc["expr", "expression silhouette"] > 0.5 > table.loc["expr", "identity silhouette"]
    # V/A is a function of the expression: decodable across people from the patch, not from pixels
    assert table.loc["expr", "V/A R2 (CV by subject)"] > 0.9
    assert table.loc["expr", "V/A R2 (CV by subject)"] > table.loc["pixels", "V/A R2 (CV by subject)"]
    cached = dh.layer_codes(net, probe, cfg)  # second call reads the cache
    np.testing.assert_array_equal(cached.pcs["pixels"], codes.pcs["pixels"])

    profiles = {("tiny", "planted"): table}
    checks = dh.ground_truth_checks(profiles, {"tiny": net.roles}, {"tiny": True}, ("planted",),
                                    learned={"tiny": False})
    holds = checks.set_index("claim")["holds here"]
    assert holds["identity dominates the early layer"] == "yes"
    assert holds["training lifts expression towards the output"] == "yes"
    assert holds["identity fades towards the output"] == "yes"
    assert holds["V/A readable from the penultimate layer"] == "yes"
    # V/A here is a function of the expression: nothing beyond the category, so no verdict
    assert np.isnan(table["V/A partial R2 after category"]).all()
    assert holds["V/A beyond category at the penultimate layer"] == "undecided"
    assert set(checks["training status"]) == {"untrained-equivalent"}
    # the same profile with early and final swapped: every decidable claim must flip to "no"
    swapped = {"tiny": {**net.roles, "early": "expr", "final": "pixels", "penultimate": "pixels"}}
    flipped = dh.ground_truth_checks(profiles, swapped, {"tiny": True}, ("planted",)).set_index("claim")["holds here"]
    assert (flipped.drop("V/A beyond category at the penultimate layer") == "no").all()
    with pytest.raises(KeyError, match="no layer for role 'identity'"):
        dh.ground_truth_checks(profiles, {"tiny": {"early": "pixels"}}, {"tiny": True}, ("planted",))
    study3 = dh.study3_table(profiles, {"tiny": net.roles})
    assert list(study3["role"]) == list(dh.ROLES)
    summary = dh.study3_summary(study3)
    cell = summary.loc[("planted", "tiny"), ("identity silhouette", "early")]
    t = table.loc["pixels"]
    assert cell == (f"{t['identity silhouette']:.2f} [{t['identity silhouette low']:.2f}, "
                    f"{t['identity silhouette high']:.2f}]")
    emergence = dh.va_emergence_table({"tiny": table}, {"tiny": net.roles})
    assert emergence.loc["tiny", "half-max reached at depth"] == pytest.approx(0.5)


def test_studies_1_2_4_on_the_tiny_model():
    probe, net = planted_probe(), tiny_network()
    cfg = dh.chapter_config("smoke", bootstrap_resamples=20, reduce_pcs=10)
    codes = dh.layer_codes(net, probe, cfg)
    s1 = dh.study1_umaps(codes, probe, cfg, layers=("pixels", "expr"))
    assert s1.embeddings["pixels"].shape == (36, 2)
    assert s1.table.loc["pixels", "identity silhouette, PCA 2-D"] > s1.table.loc["expr", "identity silhouette, PCA 2-D"]
    col = "identity silhouette, 10 PCs"
    t1 = s1.table
    assert (t1[f"{col} low"] <= t1[col] + 1e-9).all() and (t1[col] <= t1[f"{col} high"] + 1e-9).all()
    # the 10-PC silhouette with its CI is the layer profile's (same PCs, same resampling of subjects)
    profile = dh.layer_profile(codes, probe, net.roles, cfg)
    assert t1.loc["pixels", col] == pytest.approx(profile.loc["pixels", "identity silhouette"])
    nn3_like = dataclass_copy(codes, {"dropout_4": codes.raw["expr"]})
    s2 = dh.study2_identity_dominance(probe, nn3_like, cfg)
    t2 = s2.table.drop(index="VGG16 fc2, UMAP")
    assert t2.loc["pixels, PCA (10 PCs)", "identity silhouette"] > 0.5
    assert t2.loc["pixels, PCA (10 PCs)", "identity silhouette low"] > t2.loc["pixels, PCA (10 PCs)", "expression silhouette high"]
    for target in ("identity", "expression"):
        c = f"{target} silhouette"
        assert ((t2[f"{c} low"] <= t2[c] + 1e-9) & (t2[c] <= t2[f"{c} high"] + 1e-9)).all()
    # NN3 stand-in reads the expression patch: expression beats identity there
    assert t2.loc["NN3 dropout_4, PCA", "expression silhouette"] > t2.loc["NN3 dropout_4, PCA", "identity silhouette"]
    net.roles["penultimate"] = "expr"
    s4 = dh.study4_penultimate(net, codes, probe)
    reg = s4.regression.loc[("PC1", "valence")]
    assert reg["r"] > 0  # signs aligned with valence
    assert reg["r low"] < reg["r"] < reg["r high"]
    assert (reg["r low"], reg["r high"]) == pytest.approx(dh.fisher_ci(reg["r"], 36))
    assert s4.predicted.shape == (36,) and set(np.unique(s4.predicted)) <= {1, 2, 3}  # FERPlus indices
    assert set(s4.u_shape) >= {"b2", "p"}
    assert "U-shape p" in dh.study4_table({"tiny": s4}).columns
    corr = dh.axis_va_correlation(s1.embeddings["expr"], probe)
    assert corr.xs("valence", level="target")["r"].abs().max() > 0.5  # the expression patch carries valence
    with pytest.raises(KeyError, match="no probed layer 'dropout_4'"):
        dh.study1_umaps(codes, probe, cfg, layers=("dropout_4",))


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
                     state=None, faces="main", seed=0):
    run_dir = root / name
    run_dir.mkdir(parents=True)
    key = {"chapter": chapter, "role": "student", "variant": variant, "arch": "resnet18", "init_seed": seed,
           "faces": faces, "proto": None if grid is None else {"grid": grid}}
    config = {"train": {"epochs": epochs}, "key": key, "config_hash": name.rsplit("-", 1)[-1],
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
    # runs outside chapter 01's main comparison are newer but not chosen: the known-ground-truth probe
    # (other training faces) and the second B0 seed
    fake_student_run(tmp_path, "ch01-B1-s0-fff", "B1")
    fake_student_run(tmp_path, "ch01-probe-B0-s0-ggg", "B0", grid=None, faces="probe")
    fake_student_run(tmp_path, "ch01-probe-B2-s0-hhh", "B2", faces="probe")
    fake_student_run(tmp_path, "ch01-B0-s1-iii", "B0", grid=None, seed=1)
    chosen = dh.latest_student_per_variant(dh.find_student_runs(tmp_path))
    assert [Path(d).name for d in chosen["run_dir"]] == ["ch01-B0-s0-aaa", "ch01-B1-s0-fff", "ch01-B2-s0-bbb"]
    # of two B3 D-Geo candidates the newest is not always chapter 01's choice: its artifacts say which
    fake_student_run(tmp_path, "ch01-B3-s0-jjj", "B3")
    fake_student_run(tmp_path, "ch01-B3-s0-kkk", "B3")
    (tmp_path / "ch01-artifacts-x").mkdir()
    (tmp_path / "ch01-artifacts-x" / "ablation_fingerprint.json").write_text(json.dumps(
        {"runs": {"B0-s0": "aaa", "B1-s0": "fff", "B2-s0": "bbb", "B3-s0": "jjj"}}))
    chosen = dh.latest_student_per_variant(dh.find_student_runs(tmp_path))
    assert [Path(d).name for d in chosen["run_dir"]] == ["ch01-B0-s0-aaa", "ch01-B1-s0-fff", "ch01-B2-s0-bbb",
                                                         "ch01-B3-s0-jjj"]

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
    nn1_init = dh.sharma_initial_model("NN1", run.seed).state_dict()
    nn3_state = nets["NN3"].model.state_dict()
    for name, value in nets["NN3"].model.named_parameters():  # NN3 = NN1 before training
        torch.testing.assert_close(value.detach().cpu(), nn1_init[name])
    # NN3 gets NN1's BatchNorm treatment: statistics recalibrated on the same training faces
    same_faces = dh.untrained_sharma("NN3", fer, cfg, run.seed).state_dict()
    stats_keys = [k for k in nn3_state if "running_" in k]
    assert stats_keys and not torch.equal(nn3_state[stats_keys[0]].cpu(), nn1_init[stats_keys[0]])
    for name in stats_keys:
        torch.testing.assert_close(nn3_state[name].cpu(), same_faces[name])
    rows = dh.training.recalibration_rows(fer.train["NN1"], cfg, run.seed)
    reference = dh.sharma_initial_model("NN1", run.seed)
    dh.recalibrate_batchnorm(reference, fer.train["NN1"].images[rows].float() / 255.0)
    torch.testing.assert_close(nn3_state["batchnorm_1.running_mean"].cpu(), reference.state_dict()["batchnorm_1.running_mean"])
    again = dh.train_sharma("NN2", fer, cfg, run)
    assert again.loaded_from_cache and again.run_dir == nets["NN2"].fit.run_dir  # train-or-load
    assert list(again.run_dir.glob("batchnorm-*.pt"))  # the recalibrated statistics are cached
    published = dh.ProbedNetwork(
        name="published", model=nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, 7)), class_names=FER2013_CLASSES,
        layers=("1",), roles={r: "1" for r in dh.ROLES}, gradcam_layers=(), prepare=lambda im: im.float() / 255,
        description="stand-in for published weights", trained=True)
    table = dh.accuracy_table({**nets, "published": published}, fer, cfg, run)
    assert table.loc["NN1", "test faces"] == 6 and table.loc["NN2", "test faces"] == 14
    assert table.loc["published", "test faces"] == len(fer.private_test) == 14  # published weights: whole split
    ok = table.drop(index="RMN (ResMaskNet)")
    assert ((ok["95% CI low"] <= ok["accuracy here (%)"] + 1e-9) & (ok["accuracy here (%)"] <= ok["95% CI high"] + 1e-9)).all()
    nn1_labels = fer.test["NN1"].labels.numpy()
    assert table.loc["NN1", "majority class (%)"] == pytest.approx(100 * np.bincount(nn1_labels).max() / len(nn1_labels))
    assert table.loc["NN1", "chance, uniform (%)"] == pytest.approx(100 / 3)
    assert table.loc["NN2", "chance, uniform (%)"] == pytest.approx(100 / 7)
    assert table.loc["NN3", "training (here)"] == "untrained" and table.loc["NN1", "seed"] == run.seed
    pred = dh.network_logits(nets["NN2"], fer.test["NN2"].images).argmax(1)
    assert table.loc["NN2", "accuracy here (%)"] == pytest.approx(100 * np.mean(pred == fer.test["NN2"].labels.numpy()))
    student = dataclasses.replace(published, name="FERPlus student", class_names=FERPLUS_CLASSES)
    with pytest.raises(ValueError, match="cannot score network 'FERPlus student'"):
        dh.accuracy_table({"FERPlus student": student}, fer, cfg, run)

    verdicts = dh.learning_verdicts(nets, fer, cfg, run)
    assert set(verdicts.attrs["learned"]) == {"NN1", "NN2"}
    nn1 = verdicts.loc["NN1"]
    assert list(nn1.index) == ["majority class (" + nets["NN1"].class_names[int(np.bincount(nn1_labels).argmax())] + ")",
                               "NN3 (untrained, same initial weights)"]
    nn3_pred = dh.network_logits(nets["NN3"], fer.test["NN1"].images).argmax(1)
    nn1_pred = dh.network_logits(nets["NN1"], fer.test["NN1"].images).argmax(1)
    assert nn1.iloc[1]["accuracy difference (pp)"] == pytest.approx(
        100 * (np.mean(nn1_pred == nn1_labels) - np.mean(nn3_pred == nn1_labels)))
    for _, row in verdicts.iterrows():
        assert row["95% CI low"] <= row["accuracy difference (pp)"] + 1e-9 <= row["95% CI high"] + 2e-9
        assert row["above it"] == ("yes" if row["95% CI low"] > 0 else "no" if row["95% CI high"] < 0 else "undecided")

    results = ResultsRecorder("02_dcnn_hierarchy", profile="smoke", seed=0, data="fixture", out_dir=tmp_path)
    said = dh.table1_findings(results, table, verdicts, fer, cfg)
    stored = read_results(tmp_path / "02_dcnn_hierarchy.results.json")["numbers"]
    nn1 = stored["nn1.private_test.accuracy"]
    assert nn1["value"] == pytest.approx(table.loc["NN1", "accuracy here (%)"]) and nn1["paper"] == 82.32
    assert nn1["n"] == 6 and nn1["unit"] == "%"
    assert stored["nn2.private_test.minus_untrained"]["value"] == pytest.approx(
        verdicts.loc["NN2"].iloc[1]["accuracy difference (pp)"])
    assert f"**NN1** scores {nn1['value']:.1f} %" in said and "rmn" not in " ".join(stored)

    dev = dh.deviations(cfg, run, fer, nets, {})
    assert "rebuilt from the FERPlus images" in dev.loc["FER2013 copy", "here"]
    assert "21 / 14 / 14" in dev.loc["FER2013 copy", "here"]
    assert "at most 2 faces per class" in dev.loc["training data", "here"]
    assert "first 2 PCs" in dev.loc["scatter-plot embedding (Studies 1-2)", "here"]
    assert "first 3 subjects" in dev.loc["probing subjects", "here"]


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


# ---------------------------------------------------------------------------------------------
# verdicts, Study 4 statistics, positive control, students
# ---------------------------------------------------------------------------------------------


def test_layer_claim_verdict_is_three_way():
    assert dh.layer_claim_verdict((0.5, 0.4, 0.6), (0.2, 0.1, 0.3)) == "yes"
    assert dh.layer_claim_verdict((0.2, 0.1, 0.3), (0.5, 0.4, 0.6)) == "no"
    assert dh.layer_claim_verdict((0.5, 0.3, 0.6), (0.4, 0.2, 0.45)) == "undecided"  # intervals overlap
    assert dh.layer_claim_verdict((0.2, 0.1, 0.3), (0.5, 0.4, 0.6), greater=False) == "yes"
    assert dh.layer_claim_verdict((0.5, 0.4, 0.6), (0.2, 0.1, 0.3), greater=False) == "no"
    assert dh.layer_claim_verdict((np.nan, 0.1, 0.3), (0.5, 0.4, 0.6)) == "undecided"


def test_fisher_ci_and_u_shape_test():
    from scipy import stats

    low, high = dh.fisher_ci(0.5, 103)
    half = stats.norm.ppf(0.975) / 10.0
    assert (low, high) == pytest.approx((np.tanh(np.arctanh(0.5) - half), np.tanh(np.arctanh(0.5) + half)))
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 200)
    u = dh.u_shape_test(x, x**2 + rng.normal(0, 0.05, 200))
    assert u["b2"] > 0 and u["p"] < 1e-10 and u["R2 gain over a line"] > 0.8
    line = dh.u_shape_test(x, 2 * x + rng.normal(0, 0.05, 200))
    assert line["p"] > 0.001 and abs(line["R2 gain over a line"]) < 0.01
    # the coefficient equals numpy's polynomial fit on the standardised x
    z = (x - x.mean()) / x.std()
    assert u["b2"] == pytest.approx(np.polyfit(z, x**2 + rng.normal(0, 0, 200), 2)[0], rel=0.05)
    with pytest.raises(ValueError, match="x not constant"):
        dh.u_shape_test(np.ones(10), np.arange(10.0))


def test_positive_control_reaches_the_ceiling():
    probe = planted_probe(n_ids=8, n_expr=3)
    n = len(probe.faces)
    rng = np.random.default_rng(1)
    expr = probe.faces.labels.numpy() - 1
    ident = probe.faces.identity.numpy()
    blend = np.eye(3)[expr] @ rng.normal(size=(3, 53)) + rng.normal(0, 0.01, (n, 53))
    beta = rng.normal(size=(8, 20))[ident]
    probe.faces.meta.update(blendshapes=blend.astype(np.float32), beta=beta.astype(np.float32))
    cfg = dh.chapter_config("smoke", bootstrap_resamples=30, reduce_pcs=10)
    codes = dh.planted_factor_codes(probe, cfg)
    assert codes.layers == ("planted expression", "planted identity")
    control = dh.layer_profile(codes, probe, {}, cfg)
    assert control.loc["planted expression", "expression silhouette"] > 0.9
    assert control.loc["planted identity", "identity silhouette"] == pytest.approx(1.0)
    assert control.loc["planted expression", "V/A R2 (CV by subject)"] > 0.95
    net = tiny_network()
    profiles = {("tiny", "planted"): dh.layer_profile(dh.layer_codes(net, probe, cfg), probe, net.roles, cfg)}
    table = dh.positive_control_table({"planted": control}, profiles, {"tiny": net.roles})
    assert list(table.index.get_level_values(1)) == ["planted expression (positive control)",
                                                    "planted identity (positive control)",
                                                    "tiny pixels (early)", "tiny expr (penultimate)"]
    bare = dataclasses.replace(probe, faces=dataclasses.replace(probe.faces, meta={}))
    with pytest.raises(ValueError, match="blendshapes"):
        dh.planted_factor_codes(bare, cfg)


def test_student_comparison_finds_earlier_and_clearer_va():
    probe = planted_probe(n_ids=10, n_expr=3)
    rng = np.random.default_rng(2)
    va = np.stack([probe.valence, probe.arousal], 1)
    n = len(va)

    def codes(name, informative_from):
        pcs = {}
        for depth, layer in enumerate(("l1", "l2", "l3", "pen")):
            noise = rng.normal(size=(n, 10))
            signal = np.zeros((n, 10))
            if depth >= informative_from:
                signal[:, :2] = va * 5
            pcs[layer] = (signal + noise).astype(np.float32)
        return dh.LayerCodes(name, "planted", ("l1", "l2", "l3", "pen"), {k: 10 for k in pcs}, pcs,
                             {k: np.full(10, 0.1) for k in pcs}, {})

    roles = {v: {"early": "l1", "identity": "l2", "penultimate": "pen", "final": "pen"} for v in ("B0", "B2")}
    cfg = dh.chapter_config("smoke", bootstrap_resamples=100)
    table = dh.student_va_comparison({"B0": codes("B0", 3), "B2": codes("B2", 1)}, probe, roles, cfg)
    assert table.loc["B0", "half-max depth"] == pytest.approx(1.0)
    assert table.loc["B2", "half-max depth"] == pytest.approx(1 / 3)
    assert table.loc["B2", "V/A earlier"] == "yes"
    assert table.loc["B2", "V/A clearer"] == "undecided"  # same signal strength at the penultimate layer
    with pytest.raises(KeyError, match="reference student 'B0'"):
        dh.student_va_comparison({"B2": codes("B2", 1)}, probe, roles, cfg)


def test_region_masks_cover_the_landmark_boxes():
    landmarks = np.zeros((68, 2))
    landmarks[17:27] = [10, 10]
    landmarks[36:48] = [20, 14]
    landmarks[48:68] = [24, 36]
    masks = region_masks(landmarks, 48, pad=2.0)
    brows = masks["brows and eyes"]
    ys, xs = np.nonzero(brows)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (8, 21, 8, 15)  # pixel centres within [8, 22] x [8, 16]
    assert masks["mouth"].sum() == 4 * 4 and not (brows & masks["mouth"]).any()


def test_training_steps_and_quick_recipe():
    cfg = dh.chapter_config("quick")
    assert cfg.batch_size == 64 and cfg.recipe == "fast" and cfg.train_per_class is None
    assert cfg.budget_s == dh.QUICK_BUDGET_S and cfg.steps_per_epoch == dh.QUICK_STEPS_PER_EPOCH
    fast = dh.sharma_train_config("NN2", cfg, seed=3)
    assert fast.budget_s == dh.QUICK_BUDGET_S["NN2"] and fast.schedule == "onecycle" and fast.lr == 2e-3
    assert fast.monitor == "accuracy" and fast.amp == "auto" and fast.seed == 3 and fast.steps_per_epoch == 40
    paper = dh.sharma_train_config("NN1", dh.chapter_config("paper"), seed=0)
    assert paper.budget_s is None and paper.lr == 1e-3 and paper.weight_decay == 0.0 and paper.amp == "off"
    with pytest.raises(ConfigError, match="budget_s"):
        dh.chapter_config("paper", budget_s={"NN1": 10.0, "NN2": 10.0})  # a budget needs the fast recipe
    with pytest.raises(ConfigError, match="budget_s"):
        dh.chapter_config("quick", budget_s={"NN1": 10.0})
    # with a finished run, the steps are those it took (the sum of its epochs' steps)
    history = pd.DataFrame({"steps": [40, 40, 17], "val_accuracy": [0.3, 0.4, 0.45]})
    ran = type("Fit", (), {"history": history})()
    assert dh.training_steps(cfg, 28_000, ran) == 97
    assert dh.training_steps(dh.chapter_config("paper"), 6400) == 60 * 200  # batch 32
    small = dh.chapter_config("smoke", steps_per_epoch=None, batch_size=16, epochs=3)
    assert dh.training_steps(small, 40) == 3 * 2  # the last incomplete batch is dropped


def test_gradcam_region_table_on_a_tiny_convnet():
    class TinyConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 4, 3, padding=1)
            self.out = nn.Linear(4 * 48 * 48, 3)

        def forward(self, x):
            return self.out(torch.relu(self.c1(x)).flatten(1))

    torch.manual_seed(0)
    probe = planted_probe(n_ids=6, n_expr=3)
    landmarks = np.zeros((len(probe.faces), 68, 2))
    landmarks[:, 17:48] = [[10, 10]] * 15 + [[30, 16]] * 16
    landmarks[:, 48:68] = [[18, 30]] * 10 + [[30, 38]] * 10
    probe.faces.meta["landmarks"] = landmarks
    net = dh.ProbedNetwork(name="tinyconv", model=TinyConv(), class_names=("happy", "surprise", "sad"),
                           layers=("c1", "out"), roles={"early": "c1", "identity": "c1", "penultimate": "c1",
                                                        "final": "out"},
                           gradcam_layers=("c1",), prepare=lambda im: im.float() / 255.0, description="t", trained=True)
    cfg = dh.chapter_config("smoke", gradcam_faces_per_class=4, bootstrap_resamples=50)
    table = dh.gradcam_region_table(net, probe, cfg, categories=("happiness", "sadness", "contempt"))
    assert list(table["expression"]) == ["happiness", "sadness"] and (table["faces"] == 4).all()
    for region in dh.REGION_LANDMARKS:
        e, lo, hi = (table[f"{region}: enrichment{c}"] for c in ("", " low", " high"))
        ratio = table[f"{region}: share of Grad-CAM (%)"] / table[f"{region}: share of image (%)"]
        np.testing.assert_allclose(e, ratio)
        assert ((lo <= e + 1e-9) & (e <= hi + 1e-9)).all()
    assert table["mouth: share of image (%)"].iloc[0] == pytest.approx(100 * 16 * 12 / 48**2)


# ---------------------------------------------------------------------------------------------
# numbers pinned before the move to affectlab.chapters.hierarchy (the move changes no result)
# ---------------------------------------------------------------------------------------------


def test_layer_profile_numbers_are_unchanged_by_the_move():
    """Computed with ``affectlab.pipelines.dcnn_hierarchy`` before it became this package; the
    subject resamples now come from ``affectlab.stats.bootstrap_ci(clusters=)`` and must match."""
    probe, net = planted_probe(), tiny_network()
    cfg = dh.chapter_config("smoke", bootstrap_resamples=50, reduce_pcs=10)
    table = dh.layer_profile(dh.layer_codes(net, probe, cfg), probe, net.roles, cfg, seed=3)
    pinned = {
        ("pixels", "identity silhouette"): 0.9958801465, ("pixels", "identity silhouette low"): 0.9955862402,
        ("pixels", "identity silhouette high"): 0.9962958816, ("out", "expression silhouette low"): 0.9067327168,
        ("expr", "V/A R2 (CV by subject)"): 0.9999352725, ("expr", "V/A R2 low"): 0.9999062854,
        ("expr", "V/A R2 high"): 0.999960514, ("out", "V/A R2 (CV by subject)"): 0.9864272952,
        ("out", "V/A R2 low"): 0.9834647959, ("out", "V/A R2 high"): 0.9900844692,
        ("pixels", "V/A R2 low"): -129261.9721218928, ("pixels", "V/A R2 high"): -50511.0434941104,
    }
    for (layer, column), value in pinned.items():
        assert table.loc[layer, column] == pytest.approx(value, rel=1e-8), (layer, column)


def test_student_comparison_numbers_are_unchanged_by_the_move():
    probe = planted_probe(n_ids=10, n_expr=3)
    rng = np.random.default_rng(2)
    va = np.stack([probe.valence, probe.arousal], 1)

    def codes(name, informative_from):
        pcs = {}
        for depth, layer in enumerate(("l1", "l2", "l3", "pen")):
            noise, signal = rng.normal(size=(len(va), 10)), np.zeros((len(va), 10))
            if depth >= informative_from:
                signal[:, :2] = va * 2
            pcs[layer] = (signal + noise).astype(np.float32)
        return dh.LayerCodes(name, "planted", ("l1", "l2", "l3", "pen"), {k: 10 for k in pcs}, pcs,
                             {k: np.full(10, 0.1) for k in pcs}, {})

    roles = {v: {"early": "l1", "identity": "l2", "penultimate": "pen", "final": "pen"} for v in ("B0", "B2")}
    cfg = dh.chapter_config("smoke", bootstrap_resamples=100)
    with pytest.warns(UserWarning, match="undefined in 31 of 100 resamples"):  # half-max depth needs max > 0
        table = dh.student_va_comparison({"B0": codes("B0", 3), "B2": codes("B2", 1)}, probe, roles, cfg, seed=1)
    b2 = table.loc["B2"]
    assert b2["penultimate V/A R2"] == pytest.approx(0.5251534578302929, rel=1e-10)
    assert table.loc["B0", "penultimate V/A R2"] == pytest.approx(0.11537173577692655, rel=1e-10)
    assert (b2["R2 minus B0"], b2["R2 diff low"], b2["R2 diff high"]) == pytest.approx(
        (0.4097817220533663, -0.03755119922798809, 0.9617600415110175), rel=1e-10)
    assert (b2["depth minus B0"], b2["depth diff low"], b2["depth diff high"]) == pytest.approx((-2 / 3,) * 3)
    assert (b2["V/A clearer"], b2["V/A earlier"]) == ("undecided", "yes")


def test_probe_students_reads_chapter_01_runs_and_compares_with_b0(tmp_path):
    from affectlab.models.resnet_student import FERStudent

    torch.manual_seed(0)
    for name, variant, grid in (("ch01-B0-s0-aaa", "B0", None), ("ch01-B2-s0-bbb", "B2", 5)):
        fake_student_run(tmp_path, name, variant, grid=grid, state=FERStudent().state_dict())
    probe = planted_probe(n_ids=4, n_expr=3)
    cfg = dh.chapter_config("smoke", bootstrap_resamples=20, reduce_pcs=10)
    run = resolve_run("smoke", None, 0, "cpu")
    study = dh.probe_students(probe, cfg, run, runs_dir=tmp_path)
    assert list(study.runs["variant"]) == ["B0", "B2"] and set(study.profiles) == {"B0", "B2"}
    assert list(study.profiles["B0"].index) == list(dh.load_student(study.runs.iloc[0]).layers)
    assert list(study.comparison.index) == ["B0", "B2"]
    assert "**B2 vs B0**" in dh.student_findings(study, probe.n_subjects)
    empty = dh.probe_students(probe, cfg, run, runs_dir=tmp_path / "none")
    assert empty.comparison is None and "Skipped" in dh.student_findings(empty, probe.n_subjects)


def test_what_we_learned_records_every_number_it_states(tmp_path):
    probe, net = planted_probe(), tiny_network()
    net.roles["penultimate"] = "expr"
    cfg = dh.chapter_config("smoke", bootstrap_resamples=20, reduce_pcs=10)
    probes = {"kdef_gen": dataclasses.replace(probe, key="kdef_gen"), "disfa_gen": dataclasses.replace(probe, key="disfa_gen")}
    nets = {"NN2": dataclasses.replace(net, name="NN2")}
    codes, profiles = dh.probe_networks(nets, probes, cfg, seed=0)
    roles = {"NN2": net.roles}
    study4 = {"NN2": dh.study4_penultimate(nets["NN2"], codes[("NN2", "kdef_gen")], probes["kdef_gen"])}
    nn3_like = dataclass_copy(codes[("NN2", "disfa_gen")], {"dropout_4": codes[("NN2", "disfa_gen")].raw["expr"]})
    study2 = dh.study2_identity_dominance(probes["disfa_gen"], nn3_like, cfg)
    verdicts = pd.DataFrame()
    verdicts.attrs["learned"] = {}
    results = ResultsRecorder("02_dcnn_hierarchy", profile="smoke", seed=0, data="generated: test", out_dir=tmp_path)
    text = dh.what_we_learned(results, profiles, roles, probes, study2, study4, verdicts)
    stored = read_results(tmp_path / "02_dcnn_hierarchy.results.json")["numbers"]
    early = stored["nn2.kdef_like.identity_silhouette.early"]
    row = profiles[("NN2", "kdef_gen")].loc["pixels"]
    assert early["value"] == pytest.approx(row["identity silhouette"])
    assert early["ci"] == pytest.approx([row["identity silhouette low"], row["identity silhouette high"]])
    assert early["n"] == len(probe.faces) and early["source"] == probe.faces.source
    assert f"identity silhouette {row['identity silhouette']:.2f} [" in text
    for key in ("nn2.disfa_like.expression_silhouette.late", "nn2.kdef_like.va_r2.late", "nn2.kdef_like.r_pc1_valence",
                "nn2.kdef_like.accuracy", "pixels.disfa_like.identity_silhouette.pca10"):
        assert key in stored, key
    assert stored["nn2.kdef_like.va_r2.late"]["value"] == pytest.approx(
        profiles[("NN2", "kdef_gen")].loc["expr", "V/A R2 (CV by subject)"])


# ---------------------------------------------------------------------------------------------
# issue 15: a user's identity CSV through Studies 2-3, the cluster bootstrap, V/A beyond category
# ---------------------------------------------------------------------------------------------


def test_user_identity_csv_runs_studies_2_and_3_in_one_call(tmp_path):
    from PIL import Image

    from affectlab.data.faces import load_image_csv

    probe = planted_probe(n_ids=6, n_expr=3, reps=2)
    names = {1: "happy", 2: "surprise", 3: "sad"}
    lines = ["path,label,identity"]
    for i, (img, label, person) in enumerate(zip(probe.faces.images, probe.faces.labels, probe.faces.identity)):
        Image.fromarray(img[0].numpy()).save(tmp_path / f"face{i}.png")
        lines.append(f"face{i}.png,{names[int(label)]},person-{int(person)}")
    (tmp_path / "faces.csv").write_text("\n".join(lines) + "\n")
    faces = load_image_csv(tmp_path / "faces.csv")
    cfg = dh.chapter_config("smoke", bootstrap_resamples=50, reduce_pcs=10, probe_subjects=None)
    nn3 = dh.sharma_network("NN3", dh.sharma_initial_model("NN3", 0), "untrained NN3")
    study = dh.identity_studies(faces, {"tiny": tiny_network(), "NN3": nn3}, cfg, seed=0, title="my faces")

    assert study.probe.n_subjects == 6 and len(study.probe.faces) == 36 and study.probe.title == "my faces"
    assert study.probe.va_source == "circumplex point of the expression label"
    pixels = study.study2.table.loc["pixels, PCA (10 PCs)"]
    # identity is planted as a strong per-person pattern, expression in 4 rows only
    assert pixels["identity silhouette"] > 0.5 > pixels["expression silhouette"]
    assert pixels["identity silhouette low"] <= pixels["identity silhouette"] <= pixels["identity silhouette high"]
    assert set(study.profiles) == {"tiny", "NN3"}
    assert set(study.study3["network"]) == {"tiny", "NN3"} and list(study.study3["role"][:4]) == list(dh.ROLES)
    tiny = study.profiles["tiny"]
    assert tiny.loc["expr", "expression silhouette"] > 0.5 > tiny.loc["expr", "identity silhouette"]
    assert (tiny["identity clusters"] == 6).all() and (tiny["expression clusters"] == 3).all()
    no_ids = dataclasses.replace(faces, identity=None)
    with pytest.raises(ValueError, match="identity"):
        dh.identity_studies(no_ids, {"tiny": tiny_network()}, cfg)


def test_cluster_bootstrap_of_r_resamples_identities_not_faces():
    rng = np.random.default_rng(0)
    n_people, per_person = 12, 20
    person_effect = rng.normal(0, 1, n_people)
    clusters = np.repeat(np.arange(n_people), per_person)
    # x and y share a per-person effect: faces of one person are far from independent
    x = person_effect[clusters] + rng.normal(0, 0.1, len(clusters))
    y = person_effect[clusters] + rng.normal(0, 1.0, len(clusters))
    r, low, high = dh.cluster_r_ci(x, y, clusters, n_resamples=400, seed=0)
    assert r == pytest.approx(np.corrcoef(x, y)[0, 1])
    f_low, f_high = dh.fisher_ci(r, len(x))
    assert low <= r <= high
    assert (high - low) > 1.5 * (f_high - f_low)  # 12 people, not 240 faces, set the width
    # the same faces with every face its own cluster: about Fisher's width
    _, i_low, i_high = dh.cluster_r_ci(x, y, np.arange(len(x)), n_resamples=400, seed=0)
    assert (i_high - i_low) < 1.5 * (f_high - f_low)

    # Study 4 uses it: intervals by identity, named in the regression's attrs
    probe, net = planted_probe(n_ids=8, reps=2), tiny_network()
    cfg = dh.chapter_config("smoke", bootstrap_resamples=50, reduce_pcs=10)
    codes = dh.layer_codes(net, probe, cfg)
    study = dh.study4_penultimate(net, codes, probe, cfg, seed=0)
    assert study.regression.attrs["ci"] == "cluster bootstrap over 8 identities"
    reg = study.regression.loc[("PC1", "valence")]
    assert reg["r low"] <= reg["r"] <= reg["r high"]
    assert dh.study4_penultimate(net, codes, probe).regression.attrs["ci"] == "Fisher z over faces"


def intensity_probe(n_ids: int = 10, seed: int = 0) -> tuple[dh.ProbeSet, dict[str, np.ndarray]]:
    """Faces of 3 categories at 4 intensities, V/A = circumplex point x intensity (as the
    generated KDEF-like faces), and two 'layers': one that carries the category and the
    intensity, one that carries the category only."""
    rng = np.random.default_rng(seed)
    circumplex = np.array([[0.81, 0.51], [0.40, 0.67], [-0.63, -0.27]])
    levels = np.array([0.25, 0.5, 0.75, 1.0])
    ident, expr, level = (g.ravel() for g in np.meshgrid(np.arange(n_ids), np.arange(3), np.arange(4), indexing="ij"))
    va = circumplex[expr] * levels[level][:, None]
    onehot = np.eye(3)[expr]
    with_intensity = np.concatenate([onehot * 3, levels[level][:, None] * onehot * 2, rng.normal(0, 0.05, (len(expr), 4))], 1)
    category_only = np.concatenate([onehot * 3, rng.normal(0, 0.05, (len(expr), 4))], 1)
    n = len(expr)
    faces = FaceSet(images=torch.zeros(n, 1, 48, 48, dtype=torch.uint8), labels=torch.tensor(expr + 1),
                    class_names=FERPLUS_CLASSES, name="intensities", split="all", source="generated: test",
                    identity=torch.tensor(ident), valence=torch.tensor(va[:, 0], dtype=torch.float32),
                    arousal=torch.tensor(va[:, 1], dtype=torch.float32))
    probe = dh.ProbeSet("kdef_gen", "intensities", faces, va[:, 0], va[:, 1], "planted", "planted")
    return probe, {"category and intensity": with_intensity, "category only": category_only}


def test_va_beyond_category_is_found_where_planted_and_not_elsewhere():
    probe, layers = intensity_probe()
    cfg = dh.chapter_config("smoke", bootstrap_resamples=200, reduce_pcs=10)
    identity, labels = probe.faces.identity.numpy(), probe.faces.labels.numpy()
    targets = np.stack([probe.valence, probe.arousal], 1)
    scores = {}
    for name, x in layers.items():
        pred = dh.va_partial_predictions(x, probe.valence, probe.arousal, labels, identity)
        scores[name] = dh.partial_r2(targets, pred)
    assert scores["category and intensity"] > 0.9  # the layer explains what the category leaves
    assert abs(scores["category only"]) < 0.1  # nothing beyond the category to explain
    # the same through layer_profile, with cluster-bootstrap intervals over the 10 identities
    pcs, explained = {}, {}
    for name, x in layers.items():
        pcs[name], explained[name] = dh.principal_components(x.astype(np.float32), 10)
    codes = dh.LayerCodes(network="known", dataset="kdef_gen", layers=tuple(layers),
                          dims={k: v.shape[1] for k, v in layers.items()}, pcs=pcs, explained=explained, raw={})
    roles = {"early": "category only", "identity": "category only", "penultimate": "category and intensity",
             "final": "category and intensity"}
    table = dh.layer_profile(codes, probe, roles, cfg, seed=0)
    hi, lo = table.loc["category and intensity"], table.loc["category only"]
    assert hi["V/A partial R2 low"] > 0.8 and lo["V/A partial R2 high"] < 0.2
    assert hi["V/A partial R2 low"] <= hi["V/A partial R2 after category"] <= hi["V/A partial R2 high"]
    # plain V/A R^2 cannot tell the two apart: both read the category
    assert lo["V/A R2 (CV by subject)"] > 0.6
    checks = dh.ground_truth_checks({("known", "kdef_gen"): table}, {"known": roles}, {"known": True}, ("kdef_gen",))
    assert checks.set_index("claim").loc["V/A beyond category at the penultimate layer", "holds here"] == "yes"
    # V/A = the label's circumplex point (CK+): no partial R^2 (None -> NaN), not a spurious number
    flat = dh.va_partial_predictions(layers["category only"], *(circ := np.array(
        [[0.81, 0.51], [0.40, 0.67], [-0.63, -0.27]])[labels - 1]).T, labels, identity)
    assert flat is None and circ.shape == (len(labels), 2)


def test_present_only_accuracy_on_an_identity_set_with_a_cluster_interval():
    probe = planted_probe(n_ids=8, reps=2)

    class Oracle(nn.Module):  # reads the expression rows: always right on 'happy', 'surprise', 'sad'
        def __init__(self, patterns: torch.Tensor):
            super().__init__()
            self.patterns = patterns
            self.out = nn.Identity()

        def forward(self, x):
            rows = x[:, 0, :4, :].reshape(len(x), -1)
            d = torch.cdist(rows, self.patterns)
            logits = torch.full((len(x), 7), -1e3)
            logits[:, [3, 5, 4]] = -d  # FER2013 order: happy=3, surprise=5, sad=4
            return self.out(logits)

    faces = probe.faces
    means = torch.stack([faces.images[faces.labels == c][:, 0, :4, :].float().mean(0).reshape(-1) / 255 for c in (1, 2, 3)])
    net = dh.ProbedNetwork(name="oracle", model=Oracle(means), class_names=FER2013_CLASSES, layers=("out",),
                           roles={r: "out" for r in dh.ROLES}, gradcam_layers=(), prepare=lambda im: im.float() / 255,
                           description="oracle", trained=True)
    cfg = dh.chapter_config("smoke", bootstrap_resamples=50)
    clean = dh.present_only_accuracy(net, probe, cfg)
    assert clean["value"] == pytest.approx(100.0) and clean["n"] == len(faces) and clean["subjects"] == 8
    assert clean["classes"] == ["happiness", "sadness", "surprise"]  # the network's class order
    assert clean["low"] <= clean["value"] <= clean["high"]
    # a network that always says 'sad': one third right, and people resampled give an interval
    always_sad = nn.Sequential()
    always_sad.add_module("flat", nn.Flatten())
    always_sad.add_module("out", nn.Linear(48 * 48, 7))
    with torch.no_grad():
        always_sad.out.weight.zero_()
        always_sad.out.bias.copy_(torch.tensor([0, 0, 0, 0, 1.0, 0, 0]))
    blind = dataclasses.replace(net, model=always_sad)
    sad = dh.present_only_accuracy(blind, probe, cfg)
    assert sad["value"] == pytest.approx(100 / 3)


def test_identity_findings_compare_real_and_generated_faces_and_record_them(tmp_path):
    generated = planted_probe(n_ids=6, reps=2)
    real_faces = dataclasses.replace(generated.faces, source="real: test CK+")
    real = dataclasses.replace(generated, key="ckplus", title="CK+ (test)", faces=real_faces)
    probes = {"ckplus": real, "kdef_gen": dataclasses.replace(generated, key="kdef_gen", title="generated")}
    cfg = dh.chapter_config("smoke", bootstrap_resamples=50, reduce_pcs=10, probe_subjects=None)
    net = tiny_network()
    nn3 = dh.sharma_network("NN3", dh.sharma_initial_model("NN3", 0), "untrained NN3")
    profiles = {("tiny", key): dh.layer_profile(dh.layer_codes(net, p, cfg), p, net.roles, cfg) for key, p in probes.items()}
    study2s = {"ckplus": dh.study2_identity_dominance(real, dh.layer_codes(nn3, real, cfg), cfg)}
    results = ResultsRecorder("02_dcnn_hierarchy", profile="smoke", seed=0, data="fixture", out_dir=tmp_path)
    text = dh.identity_findings(results, profiles, {"tiny": net.roles}, probes, study2s)
    stored = read_results(tmp_path / "02_dcnn_hierarchy.results.json")["numbers"]
    pixels = study2s["ckplus"].table.loc["pixels, PCA (10 PCs)"]
    assert stored["pixels.ckplus.identity_silhouette.pca10"]["value"] == pytest.approx(pixels["identity silhouette"])
    assert "identity = 6 clusters of about 6 faces, expression = 3 clusters of about 12" in text
    assert text.count("(identity dominates: yes)") == 2  # the planted pattern dominates on both sets
    assert "**What the real faces say.**" in text and "CK+ (test): 6 people with about 6 frames each" in text
    assert "the paper's claim survives here" in text
    # the one-frame control: with two near-copies per (person, expression), one frame each is scored
    codes = {("tiny", key): dh.layer_codes(net, p, cfg) for key, p in probes.items()}
    controlled = dh.identity_findings(results, profiles, {"tiny": net.roles}, probes, study2s, codes, cfg)
    assert "one frame per sequence (18 faces)" in controlled
    assert "one frame per sequence, so near-copies" in controlled
    stored = read_results(tmp_path / "02_dcnn_hierarchy.results.json")["numbers"]
    assert stored["tiny.ckplus.identity_silhouette.early_one_frame"]["n"] == 18
    assert "kdef_like.identity_silhouette.early_one_frame" not in " ".join(stored)  # generated sets: no control
    rows = dh.data.last_rows_per_subject_expression(np.array([0, 0, 0, 1, 1]), np.array([2, 2, 3, 2, 2]))
    assert list(rows) == [1, 2, 4]


def test_students_count_as_trained_only_from_chapter_01s_recorded_accuracy(tmp_path):
    results = ResultsRecorder("01_neurogaze_distill", profile="quick", seed=0, data="fixture", out_dir=tmp_path)
    results.record("b0.test.accuracy", 74.0, unit="%")
    results.record("b2.test.accuracy", 61.5, unit="%")
    results.record("b0.test.macro_f1", 50.0, unit="%")
    accuracies = dh.student_test_accuracies(tmp_path / "01_neurogaze_distill.results.json")
    assert accuracies == {"B0": 74.0, "B2": 61.5}
    assert dh.student_test_accuracies(tmp_path / "absent.json") == {}
    runs = pd.DataFrame({"variant": ["B0", "B2", "B3"]})
    marked = dh.learned_students(runs, accuracies)
    assert list(marked["counts as trained"]) == [True, False, None]
    assert marked["test accuracy (%)"].iloc[0] == 74.0 and np.isnan(marked["test accuracy (%)"].iloc[2])


def test_probe_colourings_name_identities_only_when_few():
    few = planted_probe(n_ids=4)
    colourings = dh.probe_colourings(few)
    assert list(colourings) == ["identity", "expression"]
    assert colourings["identity"][1] == ("P0", "P1", "P2", "P3")
    assert np.array_equal(colourings["expression"][0], few.faces.labels.numpy())
    assert colourings["expression"][1] == FERPLUS_CLASSES
    assert dh.probe_colourings(planted_probe(n_ids=13))["identity"][1] is None
