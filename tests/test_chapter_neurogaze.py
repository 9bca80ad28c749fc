"""Chapter 01 package (affectlab.chapters.neurogaze) on tiny generated data: V/A targets, the
subject-disjoint split, class weights, the loss-term composition of every variant, train-or-load of
the whole student set, the tables and paired differences, the recorded headline numbers, and the
smoke numbers of the chapter's pipeline (pinned)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from affectlab.config import ConfigError, RunConfig
from affectlab.data.generate.eeg import generate_band_power_set
from affectlab.data.sets import EEGSet, FaceSet
from affectlab.data.taxonomy import FERPLUS_CLASSES
from affectlab.chapters import neurogaze as ng
from affectlab.chapters.neurogaze import experiments, probe, tables
from affectlab.losses import dgeo_loss, dgeo_weight, kd_logit_loss
from affectlab.train import TrainConfig, Trainer

K = len(FERPLUS_CLASSES)
#: The per-variant schedule without the fast recipe's shared teacher and warm start (tiny tests).
PAPER_STYLE = dict(recipe="paper", vision_teacher="b0", warm_start_budget_s=None)


def _eeg(labels: dict, n: int = 6, name: str = "deap") -> EEGSet:
    return EEGSet(data=np.zeros((n, 5, 4), np.float32), kind="band_power", ch_names=("Fz", "Cz", "Pz", "Oz"),
                  name=name, split="all", source="test", labels=labels, subject=np.arange(n) // 2)


# ---------------------------------------------------------------- V/A targets


def test_va_targets_maps_binary_labels_to_plus_minus_level():
    eeg = _eeg({"valence_binary": np.array([1, 0, 1, 0, 1, 0]), "arousal_binary": np.array([1, 1, 0, 0, 1, 0])})
    va, rule = ng.va_targets(eeg, binary_level=0.5)
    np.testing.assert_array_equal(va[:4], [[0.5, 0.5], [-0.5, 0.5], [0.5, -0.5], [-0.5, -0.5]])
    assert "+-0.5" in rule and va.dtype == np.float32


def test_va_targets_prefers_continuous_labels():
    v = np.linspace(-0.9, 0.9, 6).astype(np.float32)
    eeg = _eeg({"valence": v, "arousal": -v, "valence_binary": (v > 0).astype(int),
                "arousal_binary": (v < 0).astype(int), "emotion_code": np.zeros(6, int)})
    va, rule = ng.va_targets(eeg)
    np.testing.assert_allclose(va, np.stack([v, -v], 1))
    assert "circumplex" in rule


def test_va_targets_errors_name_the_dataset():
    with pytest.raises(ValueError, match="mahnob.*no V/A labels"):
        ng.va_targets(_eeg({"video": np.arange(6)}, name="mahnob"))
    with pytest.raises(ValueError, match="within \\[-1, 1\\]"):
        ng.va_targets(_eeg({"valence": np.full(6, 2.0), "arousal": np.zeros(6)}))


def test_prepare_teacher_data_renders_generated_band_power():
    eeg = generate_band_power_set(n_subjects=3, trials_per_subject=4, seed=1)
    cfg = ng.chapter_config("smoke", topomap_size=16)
    data = ng.prepare_teacher_data({"deap": (eeg, "generated")}, cfg)
    assert data.maps.shape == (12, 5, 16, 16) and data.mask.shape == (16, 16)
    assert np.all(data.maps[:, :, ~data.mask] == 0) and np.isfinite(data.maps).all()
    np.testing.assert_allclose(data.va[:, 0], eeg.labels["valence"])
    assert set(data.groups) == {"deap:1", "deap:2", "deap:3"}
    assert data.info.loc[0, "trials"] == 12


# ---------------------------------------------------------------- subject-disjoint split


def test_subject_disjoint_split_holds_out_whole_subjects_per_dataset():
    groups = np.array([f"{d}:{s}" for d in ("deap", "mahnob") for s in range(10) for _ in range(3)])
    strata = np.array([g.split(":")[0] for g in groups])
    train, val = ng.subject_disjoint_split(groups, 0.2, seed=3, strata=strata)
    assert not set(groups[train]) & set(groups[val])
    assert len(train) + len(val) == len(groups) and not set(train) & set(val)
    for d in ("deap", "mahnob"):  # 2 of 10 subjects of each dataset held out
        assert len({g for g in groups[val] if g.startswith(d)}) == 2
    again = ng.subject_disjoint_split(groups, 0.2, seed=3, strata=strata)
    np.testing.assert_array_equal(val, again[1])
    other = ng.subject_disjoint_split(groups, 0.2, seed=4, strata=strata)
    assert set(groups[other[1]]) != set(groups[val])


def test_subject_disjoint_split_needs_two_subjects():
    with pytest.raises(ValueError, match="fewer than 2 subjects"):
        ng.subject_disjoint_split(np.array(["a", "a", "a"]), 0.5)
    with pytest.raises(ValueError, match="val_fraction"):
        ng.subject_disjoint_split(np.array(["a", "b"]), 1.5)


# ---------------------------------------------------------------- class weights


def test_mild_class_weights():
    labels = np.array([0] * 50 + [1] * 20 + [2] * 5 + [-1] * 7)
    w = np.array(ng.mild_class_weights(labels, 4, power=0.5))
    n = np.bincount(labels[labels >= 0], minlength=4)
    assert np.isclose((n * w).sum() / n.sum(), 1.0)  # mean sample weight 1
    assert w[2] > w[1] > w[0] and w[3] == w.max()  # rarer -> heavier; absent -> largest
    np.testing.assert_allclose(w[2] / w[0], np.sqrt(50 / 5))
    assert ng.mild_class_weights(labels, 4, power=0.0) == (1.0, 1.0, 1.0, 1.0)


# ---------------------------------------------------------------- loss-term composition


class TinyStudent(nn.Module):
    """Stand-in for FERStudent: {"logits": (B, 8), "features": (B, 256) unit norm}."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16 * 16, 256)
        self.head = nn.Linear(256, K)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = F.normalize(self.proj(x.flatten(1)), dim=1)
        return {"logits": self.head(f), "features": f}


def _bank(grid: int = 5, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    k = grid * grid
    return {"grid": grid, "prototypes": torch.rand(k, 256, generator=g).numpy(), "prior": np.full(k, 1 / k),
            "coverage": np.ones((grid, grid), int), "path": Path(f"bank{grid}.npz"), "sha256": f"sha{grid}"}


@pytest.mark.parametrize("variant", ng.VARIANTS)
def test_each_variant_adds_exactly_its_loss_terms(variant):
    cfg = ng.chapter_config("smoke", epochs=10)
    bank = _bank()
    terms = ng.variant_terms(variant, cfg, bank["prototypes"], bank["prior"], ng.DGeoParams(0.1, 1.0))
    assert tuple(terms) == ng.VARIANT_TERMS[variant]
    torch.manual_seed(0)
    model = TinyStudent()
    trainer = Trainer(model, TrainConfig(epochs=10, label_smoothing=0.055, progress=False, tensorboard=False),
                      steps_per_epoch=1, extra_terms=terms)
    batch = {"x": torch.rand(16, 1, 16, 16), "y": torch.arange(16) % K, "index": torch.arange(16),
             "teacher_logits": torch.randn(16, K) * 3}
    total, parts, outputs = trainer.losses(batch, epoch=10)
    assert set(parts) == {"task_loss", *ng.VARIANT_TERMS[variant]}
    assert torch.isclose(total, sum(parts.values()))
    if "kd" in parts:  # logit-MSE KD (the chapter's default reading), weight 0.30, T = 5 (T = 1 for "Full")
        T = 1.0 if variant == "Full" else 5.0
        expected = 0.30 * ((outputs["logits"] - batch["teacher_logits"]) ** 2).mean() / T**2
        assert torch.isclose(parts["kd"], expected)
        probs = dataclasses.replace(cfg, kd_kind="mse_probs")
        kd_probs = ng.variant_terms(variant, probs, bank["prototypes"], bank["prior"], ng.DGeoParams(0.1, 1.0))["kd"]
        assert torch.isclose(kd_probs(outputs, batch, 10),
                             0.30 * kd_logit_loss(outputs["logits"], batch["teacher_logits"], T=T, kind="mse_probs"))
    if "dgeo" in parts:
        assert parts["dgeo"] > 0  # margin 1 between unit-norm class means is violated at init


def test_dgeo_is_off_before_its_scaled_window():
    cfg = ng.chapter_config("smoke", epochs=10)  # paper window 20 -> 60 of 100 epochs -> 2 -> 6
    assert cfg.geo_window() == (2.0, 6.0)
    term = ng.variant_terms("B3", cfg, _bank()["prototypes"], _bank()["prior"], ng.DGeoParams(0.1, 1.0))["dgeo"]
    torch.manual_seed(0)
    out = TinyStudent()(torch.rand(16, 1, 16, 16))
    batch = {"y": torch.arange(16) % K}
    assert term(out, batch, 1) == 0
    assert 0 < term(out, batch, 3) < term(out, batch, 7)


def test_dgeo_ramp_advances_per_step():
    """With steps_per_epoch = 4 and the window 2 -> 6 of a 10-epoch run, epoch 3's steps sit at
    t = 2.25, 2.5, 2.75, 3.0: the weight grows step by step and the last step equals the per-epoch value."""
    cfg = ng.chapter_config("smoke", epochs=10)
    bank = _bank()
    params = ng.DGeoParams(0.1, 1.0)
    per_step = ng.variant_terms("B3", cfg, bank["prototypes"], bank["prior"], params, steps_per_epoch=4)["dgeo"]
    per_epoch = ng.variant_terms("B3", cfg, bank["prototypes"], bank["prior"], params)["dgeo"]
    torch.manual_seed(0)
    with torch.no_grad():
        out = TinyStudent()(torch.rand(16, 1, 16, 16))
    batch = {"y": torch.arange(16) % K}
    raw = float(dgeo_loss(out["features"], batch["y"], [1, 2], 0.1, 1.0))
    values = [float(per_step(out, batch, 3)) for _ in range(4)]
    expected = [dgeo_weight(t, 10, 0.012, 20, 60, 100) * raw for t in (2.25, 2.5, 2.75, 3.0)]
    np.testing.assert_allclose(values, expected, rtol=1e-5)
    assert values[0] < values[1] < values[2] < values[3]
    np.testing.assert_allclose(values[-1], float(per_epoch(out, batch, 3)), rtol=1e-6)
    assert float(per_step(out, batch, 2)) == 0.0  # a new epoch restarts the count: t = 1.25 < 2


def test_variant_terms_reject_missing_ingredients():
    cfg = ng.chapter_config("smoke")
    with pytest.raises(ValueError, match="unknown variant"):
        ng.variant_terms("B9", cfg)
    with pytest.raises(ValueError, match="prototype bank"):
        ng.variant_terms("B2", cfg)
    with pytest.raises(ValueError, match="D-Geo parameters"):
        ng.variant_terms("B3", cfg, _bank()["prototypes"], _bank()["prior"])
    kd = ng.variant_terms("B1", cfg)["kd"]
    with pytest.raises(ValueError, match="teacher_logits"):
        kd({"logits": torch.zeros(2, K)}, {"x": torch.zeros(2, 1)}, 1)


def test_chapter_config_profiles_and_bad_values():
    for profile in ("smoke", "quick", "paper"):
        cfg = ng.chapter_config(profile)
        assert cfg.kd_weight == 0.30 and cfg.proto_tau == 0.90 and cfg.geo_weight == 0.012
        assert cfg.label_smoothing == 0.055 and cfg.grid == 5
    assert ng.chapter_config("paper").arch == "resnet50"
    assert ng.chapter_config("quick").kd_kind == "mse_logits" and ng.chapter_config("paper").dgeo_alpha_candidates
    with pytest.raises(ConfigError, match="ChapterConfig.kd_kind"):
        ng.chapter_config("smoke", kd_kind="mse")
    with pytest.raises(ConfigError, match="ChapterConfig.noise_seeds"):
        ng.chapter_config("smoke", noise_seeds=-1)
    with pytest.raises(ConfigError, match="ChapterConfig.epochs"):
        ng.chapter_config("smoke", epochs=0)
    with pytest.raises(ConfigError, match="ChapterConfig.kd_source"):
        ng.chapter_config("smoke", kd_source="wrong")
    with pytest.raises(ConfigError, match="DGeoParams.margin"):
        ng.DGeoParams(0.5, -1.0)


# ---------------------------------------------------------------- students end to end (tiny)


def _faces(n: int, split: str, seed: int, drop_neutral: bool = False) -> FaceSet:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % K
    if drop_neutral:
        labels = 1 + torch.arange(n) % (K - 1)
    images = (torch.rand(n, 1, 16, 16, generator=g) * 80 + labels[:, None, None, None] * 20).to(torch.uint8)
    soft = F.one_hot(labels, K).float() * 0.8 + 0.2 / K
    return FaceSet(images=images, labels=labels, class_names=FERPLUS_CLASSES, name="ferplus", split=split,
                   source=f"generated: test {split}", soft_labels=soft)


def test_train_students_composes_variants_and_reloads(monkeypatch, tmp_path):
    monkeypatch.setattr(experiments, "_student_model", lambda arch, seed, scale=None: (torch.manual_seed(seed), TinyStudent())[1])
    run = RunConfig(profile="smoke", data_root=None, seed=0, device=torch.device("cpu"))
    cfg = ng.chapter_config("smoke", image_size=16, epochs=2, bootstrap_resamples=20, embedding_points=24,
                            dgeo_candidates=(ng.DGeoParams(0.3, 0.5), ng.DGeoParams(0.6, 1.0)),
                            dgeo_alpha_candidates=((2.0, 0.5),), noise_seeds=1, **PAPER_STYLE)
    train = _faces(64, "train", 0)
    data = ng.FaceData(train=train, val=_faces(32, "valid", 1), test=_faces(40, "test", 2),
                       cross={"ckplus": _faces(28, "all", 3, drop_neutral=True)}, mean=0.3, std=0.2,
                       class_weights=ng.mild_class_weights(train.labels, K), notes={}, tag="tiny")
    banks = ng.PrototypeBanks(main=_bank(5), ablation=_bank(7, seed=1))
    students = ng.train_students(data, banks, cfg, run)
    assert set(students.runs) == {(v, 0) for v in ng.VARIANTS}
    assert students.vision_teacher is students.runs[("B0", 0)]  # "b0" teacher in smoke
    selection = students.dgeo_selection
    assert len(selection) == 3 and selection["chosen"].sum() == 1 and len(students.dgeo_runs) == 3
    assert list(selection["stage"]) == ["sigma_max, m", "sigma_max, m", "alpha_var, alpha_mar"]
    first = selection.iloc[:2]
    best_sm = first.loc[first["val macro-F1 (best epoch)"].idxmax(), ["sigma_max", "margin"]].tolist()
    assert selection.iloc[2][["sigma_max", "margin", "alpha_var", "alpha_mar"]].tolist() == best_sm + [2.0, 0.5]
    chosen_row = selection[selection["chosen"]].iloc[0]
    assert chosen_row["val macro-F1 (best epoch)"] == selection["val macro-F1 (best epoch)"].max()
    assert set(students.ablation) == {(7, 0)} and set(students.noise) == {1}
    for (variant, _), result in students.runs.items():
        extra = [c for c in result.history.columns if c in ("kd", "proto_kd", "dgeo")]
        assert tuple(extra) == ng.VARIANT_TERMS[variant]
    # B3 is one of the D-Geo candidate runs (reused, not retrained)
    assert students.runs[("B3", 0)].run_dir.name in set(students.dgeo_selection["run"])
    again = ng.train_students(data, banks, cfg, run)
    assert all(r.loaded_from_cache for r in again.runs.values())
    assert again.dgeo == students.dgeo

    table3, raw3 = ng.ablation_table(again, data, cfg, run)
    assert list(table3.index)[:5] == [ng.VARIANT_LABELS[v] for v in ng.VARIANTS]
    assert list(table3.index)[5:] == ["B0, seed 1 (run-to-run spread)", "majority class (neutral)",
                                      "chance (uniform guess, expected)"]
    assert table3.loc["B0 CE only", "Macro-F1 (%) paper"] == "51.29" and (table3["n"] == 40).all()
    assert table3.loc["chance (uniform guess, expected)", "Acc (%) ours"] == "12.50 [12.50, 12.50]"
    acc = raw3["B0"]["accuracy"]
    assert acc["low"] <= acc["mean"] <= acc["high"] and len(acc["per_seed"]) == 1
    with pytest.raises(ValueError, match="split"):
        ng.ablation_table(again, data, cfg, run, split="train")
    table2, raw2 = ng.cross_dataset_table(again, data, cfg, run)
    assert list(table2.index) == ["ckplus", "ferplus_valid", "ferplus_test"]
    assert "neutral" not in raw2["ckplus"]["present"]
    assert table2.loc["ckplus", "8-way Acc (%) paper"] == "55.86"
    assert table2.loc["ckplus", "present-only chance Acc / Macro-F1 / bACC (%)"].startswith("14.29 /")
    with pytest.raises(ValueError, match="parameter variant"):
        ng.cross_dataset_table(again, data, cfg, run, variant="B7")
    geometry = ng.feature_geometry_table(again, data.test, data, cfg, run)
    spreads = geometry[["high-valence spread", "other-class spread"]].to_numpy()
    assert ((spreads > 0) & (spreads <= 1)).all()  # E|f - mu|^2 = 1 - |mu|^2 for unit features
    assert (geometry["min class-mean distance"] <= geometry["mean class-mean distance"]).all()
    assert (geometry["mean class-mean distance"] <= 2).all()



def test_baseline_scores_hand_values():
    # 6 rows: class 1 x3, class 2 x2, class 3 x1 (FERPlus indices: happiness, surprise, sadness)
    true = np.array([1, 1, 1, 2, 2, 3])
    eight = ng.baseline_scores(true, "8-way")
    assert eight["majority"]["class"] == 1
    assert eight["majority"]["accuracy"] == pytest.approx(0.5)
    # majority F1: precision 1/2, recall 1 -> 2/3; the other 7 classes score 0
    assert eight["majority"]["macro_f1"] == pytest.approx((2 / 3) / 8)
    assert eight["majority"]["balanced_accuracy"] == pytest.approx(1 / 3)
    # chance, 8-way: F1_c = 2 p_c (1/8) / (p_c + 1/8) for p = 1/2, 1/3, 1/6; absent classes 0
    f1 = [2 * p / 8 / (p + 1 / 8) for p in (1 / 2, 1 / 3, 1 / 6)]
    assert eight["chance"]["accuracy"] == 0.125 and eight["chance"]["balanced_accuracy"] == 0.125
    assert eight["chance"]["macro_f1"] == pytest.approx(sum(f1) / 8)
    present = ng.baseline_scores(true, "present-only")
    assert present["chance"]["accuracy"] == pytest.approx(1 / 3)
    f1p = [2 * p / 3 / (p + 1 / 3) for p in (1 / 2, 1 / 3, 1 / 6)]
    assert present["chance"]["macro_f1"] == pytest.approx(sum(f1p) / 3)
    assert present["majority"]["macro_f1"] == pytest.approx((2 / 3) / 3)
    with pytest.raises(ValueError, match="setting"):
        ng.baseline_scores(true, "7-way")


def test_present_only_takes_argmax_over_present_classes():
    true = np.array([1, 2, 1, 2])
    scores = np.zeros((4, K))
    scores[:, 0] = 5.0  # neutral (absent) wins the 8-way arg-max everywhere
    scores[[0, 2], 1] = 1.0
    scores[[1, 3], 2] = 1.0
    assert tables._present_only(true, scores, "accuracy") == 1.0
    assert tables._present_only(true, scores, "macro_f1") == 1.0
    assert tables._eight_way(true, scores, "accuracy") == 0.0
    assert tables._eight_way(true, scores, "macro_f1") == 0.0


def test_prototype_banks_are_saved_verified_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("AFFECTLAB_RUNS", str(tmp_path))
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    feats = rng.random((40, 256)).astype(np.float32)
    feats[3] = 0.0  # a dead ReLU feature: no direction, left out of the bank
    va = np.clip(rng.normal(0, 0.5, (40, 2)), -1, 1).astype(np.float32)
    teacher = ng.TeacherRun(fit=SimpleNamespace(config_hash="abc"), train_idx=np.arange(0), val_idx=np.arange(40),
                            val_pred=va, val_features=feats, val_va=va, data_source="generated: test")
    run = RunConfig(profile="smoke", data_root=None, seed=0, device=torch.device("cpu"))
    cfg = ng.chapter_config("smoke")
    banks = ng.prototype_banks(teacher, cfg, run)
    assert banks.main["prototypes"].shape == (25, 256) and banks.ablation["prototypes"].shape == (49, 256)
    assert banks.main["coverage"].sum() == 39 and banks.main["fingerprint"]["dropped_zero_features"] == 1
    np.testing.assert_allclose(banks.main["prior"].sum(), 1.0)
    table = ng.bank_coverage_table(banks)
    assert list(table["bins"]) == [25, 49]
    assert list(table["empty bins"]) == [int((b["coverage"] == 0).sum()) for b in (banks.main, banks.ablation)]
    assert list(table["validation trials"]) == [39, 39]
    again = ng.prototype_banks(teacher, cfg, run)
    assert again.main["sha256"] == banks.main["sha256"]
    path = banks.main["path"]
    path.write_bytes(path.read_bytes()[:-8] + b"corrupt!")
    with pytest.raises(ValueError, match="SHA-256"):
        ng.prototype_banks(teacher, cfg, run)


def test_probe_verdict_follows_the_interval():
    assert ng.probe_verdict(0.05, 0.01, 0.09)[0] is True
    assert ng.probe_verdict(-0.05, -0.09, -0.01)[0] is False
    organises, text = ng.probe_verdict(0.01, -0.02, 0.04)
    assert organises is None and "contains 0" in text and "+0.010 [-0.020, +0.040]" in text
    with pytest.raises(ValueError, match="low <= high"):
        ng.probe_verdict(0.05, 0.1, 0.0)


def test_ridge_probe_recovers_a_linear_target_and_not_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 32))
    y = x[:, 0] - 0.5 * x[:, 3]
    pred = probe._ridge_probe(x[:100], y[:100], x[100:])
    assert probe._r2(y[100:], pred) > 0.95
    noise = rng.normal(size=200)
    assert probe._r2(noise[100:], probe._ridge_probe(x[:100], noise[:100], x[100:])) < 0.1
    assert np.isnan(probe._r2(np.ones(5), np.zeros(5)))


# ---------------------------------------------------------------- pinned numbers and recorded results


def _tiny_students(monkeypatch, noise_seeds: int = 0):
    monkeypatch.setattr(experiments, "_student_model", lambda arch, seed, scale=None: (torch.manual_seed(seed), TinyStudent())[1])
    run = RunConfig(profile="smoke", data_root=None, seed=0, device=torch.device("cpu"))
    cfg = ng.chapter_config("smoke", image_size=16, epochs=2, bootstrap_resamples=20, embedding_points=24,
                            dgeo_candidates=(ng.DGeoParams(0.3, 0.5), ng.DGeoParams(0.6, 1.0)), noise_seeds=noise_seeds,
                            **PAPER_STYLE)
    train = _faces(64, "train", 0)
    data = ng.FaceData(train=train, val=_faces(32, "valid", 1), test=_faces(40, "test", 2),
                       cross={"ckplus": _faces(28, "all", 3, drop_neutral=True)}, mean=0.3, std=0.2,
                       class_weights=ng.mild_class_weights(train.labels, K), notes={}, tag="tiny")
    banks = ng.PrototypeBanks(main=_bank(5), ablation=_bank(7, seed=1))
    return ng.train_students(data, banks, cfg, run), data, banks, cfg, run


def test_pipeline_numbers_match_the_pre_package_pipeline(monkeypatch, tmp_path):
    """Foundation issue item 1, "this step changes no result": the tiny pipeline above gives exactly
    the numbers that ``affectlab.pipelines.neurogaze`` gave before it became this package (measured
    on both with the same trainer). A change of the trainer's numerics changes them legitimately;
    then re-measure and say so."""
    monkeypatch.setenv("AFFECTLAB_RUNS", str(tmp_path))
    students, data, _, cfg, run = _tiny_students(monkeypatch, noise_seeds=1)
    _, raw3 = ng.ablation_table(students, data, cfg, run)
    b0 = raw3["B0"]
    np.testing.assert_allclose([b0["accuracy"][k] for k in ("mean", "low", "high")], [0.3, 0.261875, 0.363125])
    np.testing.assert_allclose([b0["macro_f1"][k] for k in ("mean", "low", "high")],
                               [0.20085470085470086, 0.1419560185185185, 0.2551359577922078])
    np.testing.assert_allclose(raw3["B3"]["accuracy"]["mean"], 0.25)
    groups = np.array([f"deap:{s}" for s in range(1, 5) for _ in range(6)])
    train_idx, val_idx = ng.subject_disjoint_split(groups, 0.25, 0, np.full(len(groups), "deap"))
    assert val_idx.tolist() == [12, 13, 14, 15, 16, 17]


def test_paired_difference_and_recorded_headline_numbers(monkeypatch, tmp_path):
    monkeypatch.setenv("AFFECTLAB_RUNS", str(tmp_path / "runs"))
    students, data, banks, cfg, run = _tiny_students(monkeypatch)
    same = ng.paired_variant_difference(students, "B0", "B0", data.test, data, cfg, run)
    assert same.value == 0 and same.ci == (0.0, 0.0)  # a variant against itself: exactly zero
    _, raw3 = ng.ablation_table(students, data, cfg, run)
    diff = ng.paired_variant_difference(students, "B3", "B0", data.test, data, cfg, run, key="accuracy")
    assert diff.value == pytest.approx(raw3["B3"]["accuracy"]["mean"] - raw3["B0"]["accuracy"]["mean"])
    assert diff.low <= diff.value <= diff.high
    with pytest.raises(ValueError, match="parameter key"):
        ng.paired_variant_difference(students, "B3", "B0", data.test, data, cfg, run, key="auc")
    _, raw2 = ng.cross_dataset_table(students, data, cfg, run)
    teacher_table = pd.DataFrame([{"test set": "all", "axis": a, "trials": 12, "CCC": c, "CI low": c - 0.1,
                                   "CI high": c + 0.1} for a, c in (("valence", 0.3), ("arousal", 0.1))])
    delta = pd.DataFrame([{"target": "V/A: V/A mean", "delta R2 (B2 - B1)": 0.02, "low": -0.01, "high": 0.05}])
    probe_result = ng.ProbeResult(table=pd.DataFrame(), delta=delta, verdict="v", organises=None,
                                  students=students, faces=data)
    from affectlab.reporting import ResultsRecorder, read_results

    results = ResultsRecorder(ng.CHAPTER, profile="smoke", seed=0, data="tiny", out_dir=tmp_path)
    texts = ng.record_headline_numbers(results, teacher_table, raw3, raw2, probe_result, students, data, cfg, run)
    numbers = read_results(tmp_path / "01_neurogaze_distill.results.json")["numbers"]
    for key in ("teacher.test.ccc_valence", "teacher.test.ccc_arousal", "b0.test.accuracy", "b0.test.macro_f1",
                "b1.test.accuracy", "b1.test.macro_f1", "b2.test.accuracy", "b2.test.macro_f1", "b3.test.accuracy",
                "b3.test.macro_f1", "full_t1.test.accuracy", "diff.b1_b0.test.macro_f1", "diff.b2_b1.test.macro_f1",
                "diff.b3_b2.test.macro_f1", "kd_teacher.test.accuracy", "ckplus.b3.present_only.accuracy",
                "probe.b2_b1.delta_r2"):
        assert key in numbers and key in texts, key
    assert numbers["b0.test.accuracy"]["value"] == pytest.approx(100 * raw3["B0"]["accuracy"]["mean"])
    assert numbers["b0.test.accuracy"]["paper"] == 78.22 and numbers["b0.test.accuracy"]["n"] == 40
    assert texts["teacher.test.ccc_valence"] == "0.300 [0.200, 0.400]"
    assert "teacher.val.ccc_valence" not in numbers and "probe.b2_b0.delta_r2" not in numbers
    text = ng.findings(texts, teacher_table, banks, raw3, raw2, students, probe_result, cfg, run)
    assert texts["b0.test.macro_f1"] in text and "B3 - B2" in text
    table = ng.deviations(data, students, cfg)
    assert list(table.columns) == ["paper", "here", "why"] and "D-Geo internals" in table.index


# ---------------------------------------------------------------- issue 14: fast recipe, splits, apply, probe


def test_teacher_split_is_subject_disjoint_three_ways_per_dataset():
    groups = np.array([f"deap:{s}" for s in range(10) for _ in range(3)] + [f"mahnob:{s}" for s in range(5) for _ in range(2)])
    dataset = np.array(["deap"] * 30 + ["mahnob"] * 10)
    fake = type("D", (), {"groups": groups, "dataset": dataset})()
    cfg = ng.chapter_config("smoke")
    train, val, test = ng.teacher_split(fake, cfg, seed=0)
    assert len(train) + len(val) + len(test) == len(groups)
    sides = [set(groups[i]) for i in (train, val, test)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    for name in ("deap", "mahnob"):  # every dataset contributes to every part
        assert all((dataset[i] == name).any() for i in (train, val, test))
    with pytest.raises(ConfigError, match="teacher_test_fraction"):
        ng.chapter_config("smoke", teacher_val_fraction=0.5, teacher_test_fraction=0.5)


def test_quick_profile_is_the_fast_recipe_on_all_faces():
    cfg = ng.chapter_config("quick")
    assert cfg.recipe == "fast" and cfg.vision_teacher == "fer_teacher" and cfg.image_size == 48
    assert cfg.train_per_class is None and cfg.warm_start_budget_s and cfg.kd_teacher_budget_s
    assert cfg.variant_seeds("B0", 0) == (0, 1) and cfg.variant_seeds("B3", 0) == (0, 1)
    assert cfg.variant_seeds("B1", 0) == (0,) and ng.chapter_config("paper").variant_seeds("B1", 0) == (0, 1, 2)
    with pytest.raises(ConfigError, match="multi_seed_variants"):
        ng.chapter_config("smoke", multi_seed_variants=("B9",))


def _tiny_data(n_train: int = 64) -> "ng.FaceData":
    train = _faces(n_train, "train", 0)
    return ng.FaceData(train=train, val=_faces(32, "valid", 1), test=_faces(40, "test", 2),
                       cross={"ckplus": _faces(28, "all", 3, drop_neutral=True)}, mean=0.3, std=0.2,
                       class_weights=ng.mild_class_weights(train.labels, K), notes={}, tag="tiny")


def test_warm_start_and_per_variant_seeds(monkeypatch, tmp_path):
    monkeypatch.setenv("AFFECTLAB_RUNS", str(tmp_path))
    monkeypatch.setattr(experiments, "_student_model", lambda arch, seed, scale=None: (torch.manual_seed(seed), TinyStudent())[1])
    run = RunConfig(profile="smoke", data_root=None, seed=0, device=torch.device("cpu"))
    cfg = ng.chapter_config("smoke", image_size=16, epochs=2, bootstrap_resamples=20, recipe="paper",
                            vision_teacher="b0", warm_start_budget_s=2.0, n_seeds=2, multi_seed_variants=("B0", "B3"))
    data = _tiny_data()
    banks = ng.PrototypeBanks(main=_bank(5), ablation=_bank(7, seed=1))
    students = ng.train_students(data, banks, cfg, run, variants=("B0", "B1", "B3"), grid_ablation=False)
    assert set(students.runs) == {("B0", 0), ("B0", 1), ("B1", 0), ("B3", 0), ("B3", 1)}
    assert students.seeds_of("B1") == (0,) and students.seeds_of("B3") == (0, 1)
    warm = students.warm_start
    assert warm is not None and warm.history["steps"].sum() >= 1
    for result in students.runs.values():  # every student continues from the warm start's weights
        assert json_key(result)["warm_start"] == warm.config_hash
    # a variant with one seed against one with two: each is the mean over its own seeds
    diff = ng.paired_variant_difference(students, "B1", "B0", data.test, data, cfg, run, key="accuracy")
    _, raw3 = ng.ablation_table(students, data, cfg, run)
    assert len(raw3["B0"]["accuracy"]["per_seed"]) == 2 and len(raw3["B1"]["accuracy"]["per_seed"]) == 1
    assert diff.value == pytest.approx(raw3["B1"]["accuracy"]["mean"] - raw3["B0"]["accuracy"]["mean"])
    assert diff.low <= diff.value <= diff.high
    spread = ng.seed_spread_table(students, data.test, data, cfg, run)
    assert spread.loc[(ng.VARIANT_LABELS["B0"], "Acc"), "seeds"] == "0, 1"
    assert np.isnan(spread.loc[(ng.VARIANT_LABELS["B1"], "Acc"), "range (points)"])


def json_key(result) -> dict:
    import json

    return json.loads((result.run_dir / "config.json").read_text())["key"]


def test_dgeo_refuses_a_wall_clock_budget(monkeypatch, tmp_path):
    monkeypatch.setenv("AFFECTLAB_RUNS", str(tmp_path))
    monkeypatch.setattr(experiments, "_student_model", lambda arch, seed, scale=None: TinyStudent())
    monkeypatch.setattr(experiments, "student_train_config",
                        lambda cfg, seed, **kw: TrainConfig(epochs=1, budget_s=5.0, progress=False, tensorboard=False))
    run = RunConfig(profile="smoke", data_root=None, seed=0, device=torch.device("cpu"))
    cfg = ng.chapter_config("smoke", image_size=16, **PAPER_STYLE)
    with pytest.raises(ConfigError, match="D-Geo's late window needs a known step count"):
        experiments._train_one_student("B3", 0, _tiny_data(), _bank(5), ng.DGeoParams(0.5, 0.5),
                                       SimpleNamespace(config_hash="t", model=None), torch.zeros(64, K), cfg, run, "t")


def test_predict_faces_loads_a_student_from_its_run_folder(monkeypatch, tmp_path):
    """Issue 14 item 9: one call, a run folder and any FaceSet -> logits equal to the trained
    model's, both metric readings, and clear errors for what it cannot read."""
    monkeypatch.setenv("AFFECTLAB_RUNS", str(tmp_path))
    run = RunConfig(profile="smoke", data_root=None, seed=0, device=torch.device("cpu"))
    cfg = ng.chapter_config("smoke", image_size=16, epochs=1, steps_per_epoch=1, batch_size=16, **PAPER_STYLE)
    data = _tiny_data(32)
    result = experiments._train_one_student("B0", 0, data, _bank(5), None, None, None, cfg, run, "apply")
    faces = _faces(28, "all", 3, drop_neutral=True)
    out = ng.predict_faces(result.run_dir, faces)
    direct = experiments.student_predictions(result, faces, data, cfg, run).outputs.numpy()
    np.testing.assert_allclose(out.logits, direct, rtol=1e-5, atol=1e-5)
    assert out.variant == "B0" and len(out.predicted) == 28 and "neutral" not in out.present
    truth = faces.labels.numpy()
    assert out.eight_way["accuracy"] == pytest.approx(float((direct.argmax(1) == truth).mean()))
    assert set(out.present_only) == {"accuracy", "macro_f1", "balanced_accuracy"}
    assert out.present_only["accuracy"] >= out.eight_way["accuracy"]  # the arg-max over fewer classes
    same = ng.predict_faces(result.run_dir.name, faces)  # a folder name under AFFECTLAB_RUNS works too
    np.testing.assert_allclose(same.logits, out.logits)
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        ng.predict_faces(tmp_path / "nowhere", faces)
    rgb = FaceSet(images=faces.images.repeat(1, 3, 1, 1), labels=faces.labels, class_names=FERPLUS_CLASSES,
                  name="mine", split="all", source="test")
    with pytest.raises(ValueError, match="greyscale"):
        ng.predict_faces(result.run_dir, rgb)


def test_probe_compares_b2_with_b1_and_resamples_identities(monkeypatch, tmp_path):
    """Issue 14 item 5: the known-ground-truth probe's pair is B2 vs B1 (Proto-KD alone) and its
    CIs resample whole identities."""
    monkeypatch.setenv("AFFECTLAB_RUNS", str(tmp_path))
    monkeypatch.setattr(experiments, "_student_model", lambda arch, seed, scale=None: (torch.manual_seed(seed), TinyStudent())[1])

    def with_va(faces: FaceSet, seed: int) -> FaceSet:
        g = torch.Generator().manual_seed(seed)
        v = torch.rand(len(faces), generator=g) * 2 - 1
        return dataclasses.replace(faces, valence=v, arousal=-v, identity=torch.arange(len(faces)) // 4)

    data = _tiny_data()
    data = dataclasses.replace(data, train=with_va(data.train, 0), val=with_va(data.val, 1), test=with_va(data.test, 2))
    monkeypatch.setattr(probe, "prepare_faces", lambda run, cfg, generated=False: data)
    calls = []
    real_bootstrap = probe.bootstrap_rows
    monkeypatch.setattr(probe, "bootstrap_rows", lambda *a, **k: calls.append(k.get("clusters")) or real_bootstrap(*a, **k))
    run = RunConfig(profile="smoke", data_root=None, seed=0, device=torch.device("cpu"))
    cfg = ng.chapter_config("smoke", image_size=16, bootstrap_resamples=20)  # the fast recipe: the probe drops it
    result = ng.known_ground_truth_probe(ng.PrototypeBanks(main=_bank(5), ablation=_bank(7, seed=1)), cfg, run)
    assert set(result.students.variants) == {"B0", "B1", "B2"} and result.students.warm_start is None
    assert "delta R2 (B2 - B1)" in result.delta.columns and set(result.delta["CI resamples"]) == {"identities"}
    assert set(result.table["variant"]) == {ng.VARIANT_LABELS["B1"], ng.VARIANT_LABELS["B2"]}
    identity_clusters = np.unique(data.test.identity.numpy(), return_inverse=True)[1]
    assert calls and all(c is not None and np.array_equal(c, identity_clusters) for c in calls)
    assert "B1" in result.verdict or "B2 and B1" in result.verdict


def test_sec53_sweep_scores_on_validation_and_reuses_b3(monkeypatch, tmp_path):
    monkeypatch.setenv("AFFECTLAB_RUNS", str(tmp_path))
    monkeypatch.setattr(experiments, "_student_model", lambda arch, seed, scale=None: (torch.manual_seed(seed), TinyStudent())[1])
    run = RunConfig(profile="smoke", data_root=None, seed=0, device=torch.device("cpu"))
    cfg = ng.chapter_config("smoke", image_size=16, epochs=2, bootstrap_resamples=20, **PAPER_STYLE,
                            sweep_proto_weights=(0.0, 0.12), sweep_dgeo_early=True)
    data = _tiny_data()
    banks = ng.PrototypeBanks(main=_bank(5), ablation=_bank(7, seed=1))
    students = ng.train_students(data, banks, cfg, run, variants=("B0", "B3"), grid_ablation=False)
    sweep = ng.sec53_sweep(students, data, banks, cfg, run)
    assert list(sweep.index) == ["lambda_proto = 0, D-Geo late", "lambda_proto = 0.12, D-Geo late",
                                 "lambda_proto = 0.12, D-Geo from epoch 0"]
    assert sweep.loc["lambda_proto = 0.12, D-Geo late", "run"] == students.runs[("B3", 0)].run_dir.name
    assert sweep["run"].nunique() == 3
    early = json_key(SimpleNamespace(run_dir=tmp_path / sweep.iloc[2]["run"]))
    assert early["dgeo"]["window"] == [0.0, 40.0] and early["proto"]["weight"] == 0.12
    zero = json_key(SimpleNamespace(run_dir=tmp_path / sweep.iloc[0]["run"]))
    assert zero["proto"]["weight"] == 0.0
    best = students.runs[("B3", 0)]
    assert sweep.iloc[1]["val macro-F1 (%)"] == pytest.approx(100 * best.best_value)


def test_generated_teacher_eeg_is_forced_even_with_a_data_root(monkeypatch, tmp_path):
    """Issue 14 item 4: the generated-EEG bank must come from the planted sets even when
    AFFECTLAB_DATA (or the run) names a data root that holds real EEG."""
    from affectlab.chapters.neurogaze import data as ng_data

    monkeypatch.setattr(ng_data, "load_chapter_set",
                        lambda name, run, split=None: (_ for _ in ()).throw(AssertionError("read the data root")))
    run = RunConfig(profile="smoke", data_root=tmp_path, seed=0, device=torch.device("cpu"))
    sets = ng.load_teacher_eeg(run, generated=True)
    assert set(sets) <= {"deap", "mahnob_hci"} and sets
    for eeg, note in sets.values():
        assert eeg.source.startswith("generated") and "forced" in note


def test_continuous_grid_ablation_reuses_the_probe_b2_and_adds_the_fine_grid(monkeypatch, tmp_path):
    """Issue 14 item 6: the grid ablation on the continuous-V/A bank compares B2 with the main grid
    (the probe's own B2 run, loaded) against B2 with the ablation grid, on the generated faces."""
    monkeypatch.setenv("AFFECTLAB_RUNS", str(tmp_path))
    monkeypatch.setattr(experiments, "_student_model", lambda arch, seed, scale=None: (torch.manual_seed(seed), TinyStudent())[1])
    data = _tiny_data()
    monkeypatch.setattr(probe, "prepare_faces", lambda run, cfg, generated=False: data)
    run = RunConfig(profile="smoke", data_root=None, seed=0, device=torch.device("cpu"))
    cfg = ng.chapter_config("smoke", image_size=16, bootstrap_resamples=20)
    fine = _bank(7, seed=1)
    fine["coverage"] = np.eye(7, dtype=int)  # continuous V/A: a finer grid leaves cells empty
    banks = ng.PrototypeBanks(main=_bank(5), ablation=fine)
    probe_students = probe.train_students(data, banks, ng.probe_config(cfg), run, variants=("B0", "B1", "B2"),
                                          prefix="ch01-probe", select_dgeo=False, grid_ablation=False)
    before = {p.name for p in tmp_path.iterdir()}
    table = ng.continuous_grid_ablation(banks, cfg, run)
    new = {p.name for p in tmp_path.iterdir()} - before
    assert list(table.index) == ["5x5", "7x7"]
    assert table.loc["5x5", "empty bins"] == 0 and table.loc["7x7", "empty bins"] == 42
    assert table.loc["7x7", "occupied bins"] == 7 and table.loc["5x5", "occupied bins"] == 25
    assert len(new) == 1 and next(iter(new)).startswith("ch01-probe-B2-g7")  # only the fine-grid B2 is new
    assert table.loc["5x5", "val macro-F1 (%) best epoch"] == pytest.approx(
        100 * probe_students.runs[("B2", 0)].best_value)


def test_band_ratios_are_log_power_differences_of_adjacent_bands():
    eeg = generate_band_power_set(n_subjects=2, trials_per_subject=3, seed=0)
    out = ng.with_band_ratios(eeg)
    n_bands = len(eeg.bands)
    assert out.data.shape == (len(eeg), 2 * n_bands - 1, eeg.data.shape[2])
    assert out.bands[n_bands] == f"{eeg.bands[0]}/{eeg.bands[1]}"
    np.testing.assert_allclose(out.data[:, n_bands + 1], eeg.data[:, 1] - eeg.data[:, 2], rtol=1e-6)
    np.testing.assert_array_equal(out.data[:, :n_bands], eeg.data)
    with pytest.raises(ValueError, match="at least two bands"):
        ng.with_band_ratios(dataclasses.replace(eeg, data=eeg.data[:, :1], bands=eeg.bands[:1]))


def test_teacher_alternatives_share_the_split_and_pair_on_test_subjects(monkeypatch, tmp_path):
    """Issue 14 item 4: every alternative teacher is trained on the paper-style teacher's training
    subjects, selected on its validation subjects and compared on its test trials."""
    monkeypatch.setenv("AFFECTLAB_RUNS", str(tmp_path))
    sets = {name: (dataclasses.replace(generate_band_power_set(n_subjects=6, trials_per_subject=4, seed=i), name=name),
                   "generated") for i, name in enumerate(("deap", "mahnob_hci"))}
    cfg = ng.chapter_config("smoke", topomap_size=16, bootstrap_resamples=20, teacher_null=False)
    run = RunConfig(profile="smoke", data_root=None, seed=0, device=torch.device("cpu"))
    data = ng.prepare_teacher_data(sets, cfg)
    teacher = ng.train_eeg_teacher(data, cfg, run)
    seen = []
    real_fit = experiments.fit_eeg_teacher_run

    def spy(maps, va, train_idx, val_idx, d, c, r, role):
        seen.append((role, set(train_idx.tolist()), set(val_idx.tolist()), maps.shape[1]))
        return real_fit(maps, va, train_idx, val_idx, d, c, r, role)

    from affectlab.chapters.neurogaze import eeg_teacher_alternatives as alt
    monkeypatch.setattr(alt, "fit_eeg_teacher_run", spy)
    table = ng.teacher_alternatives(sets, teacher, data, cfg, run)
    assert set(table["alternative"]) == {alt.RATIOS, alt.PER_DATASET} and len(table) == 4
    train, val = set(teacher.train_idx.tolist()), set(teacher.val_idx.tolist())
    roles = {role: (tr, va, bands) for role, tr, va, bands in seen}
    assert roles["eeg_teacher_band_ratios"][:2] == (train, val) and roles["eeg_teacher_band_ratios"][2] == 9
    per_dataset = [v for k, v in roles.items() if k.startswith("eeg_teacher_only_")]
    assert len(per_dataset) == 2 and set().union(*(tr for tr, _, _ in per_dataset)) == train
    assert set().union(*(va for _, va, _ in per_dataset)) == val
    from affectlab.metrics import ccc
    assert table.iloc[0]["paper-style CCC"] == pytest.approx(ccc(teacher.test_va[:, 0], teacher.test_pred[:, 0]))
    assert set(table["CI resamples"]) == {"subjects"} and table["test trials"].iloc[0] == len(teacher.test_idx)
