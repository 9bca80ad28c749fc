"""Chapter 04 package (POSTER-Var, ``affectlab.chapters.poster_var``): landmark targets from generated faces, data preparation, the
ablation runner (one row per config, train-or-load), tables and figures, and the calibration wiring.

The end-to-end fixture trains the four rows at a tiny width on a FERPlus copy written in the real
PNG layout (random pixels; 3 labelled classes), one step each, so the whole module stays fast."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from affectlab import metrics
from affectlab.config import ConfigError, resolve_run
from affectlab.reporting import ResultsRecorder, read_results
from affectlab.data.generate.faces import generate_faces
from affectlab.data.sets import FaceSet
from affectlab.models.poster import ABLATION_ROWS, VICHead, vich_loss
from affectlab.chapters import poster_var as pv
from affectlab.train import TensorData, model_outputs, task_loss

from fixtures_faces import ferplus_rows, install_manifests, make_ferplus_png, make_rafdb

TINY = dict(poster_width=0.125, poster_depth=0.1, train_size=None, test_size=None, batch_size=8,
            landmark_batch_size=24, timing_repeats=2, timing_warmup=0, n_bootstrap=50, mc_samples=8,
            gradcam_classes=("happiness", "neutral"), distribution_images=2)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _faces(labels: list[int], soft: torch.Tensor | None = None, num_classes: int = 8) -> FaceSet:
    n = len(labels)
    names = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")[:num_classes]
    return FaceSet(images=torch.zeros(n, 1, 4, 4, dtype=torch.uint8), labels=torch.tensor(labels), class_names=names,
                   name="toy", split="train", source="generated: toy", soft_labels=soft,
                   meta={"file_names": [f"img{i}.png" for i in range(n)]})


# ---- configuration ---------------------------------------------------------------------------


def test_profiles_state_their_sizes_and_bad_values_name_the_field() -> None:
    quick, paper = pv.chapter_config("quick"), pv.chapter_config("paper")
    assert (quick.poster_width, quick.poster_depth) == (0.25, 0.25)  # PosterConfig.reduced()
    assert quick.poster_config(8) == dataclasses.replace(pv.PosterConfig.poster_var(num_classes=8).reduced(),
                                                         trunk_width=0.5, trunk_depth=0.25, trunk_input_size=56)
    assert paper.poster_config(8) == pv.PosterConfig.poster_var(num_classes=8)  # the paper's 112-px path
    # quick: every choice on validation images, all test images scored, the trunk on all training images
    assert quick.valid_size and quick.test_size is None and quick.trunk_train_size is None and quick.row_lr_candidates
    assert quick.fast_recipe and quick.cache_pyramids and quick.trunk_budget_s and quick.row_budget_s
    with pytest.raises(ConfigError, match="ChapterConfig.row_lr_candidates"):
        pv.chapter_config("quick", valid_size=0)
    with pytest.raises(ConfigError, match="ChapterConfig.cache_pyramids"):
        pv.chapter_config("quick", freeze_trunk=False)
    with pytest.raises(ConfigError, match="ChapterConfig.trunk_input_size"):
        pv.chapter_config("quick", trunk_input_size=64)
    assert (paper.epochs, paper.batch_size, paper.lr, paper.weight_decay, paper.gamma) == (200, 48, 3.5e-6, 1e-4, 0.98)
    assert paper.optimizer == "sam" and paper.sam_rho == 0.05 and paper.n_seeds == 3
    assert paper.train_size is None and paper.test_size is None
    with pytest.raises(ConfigError, match="ChapterConfig.optimizer"):
        pv.chapter_config("quick", optimizer="sgd")
    with pytest.raises(ConfigError, match="ChapterConfig.landmark_identities"):
        pv.chapter_config("quick", landmark_identities=2)
    with pytest.raises(ConfigError, match="gradcam_classes"):
        pv.chapter_config("quick", gradcam_classes=("joy",))
    with pytest.raises(ConfigError, match="unknown field"):
        pv.chapter_config("quick", epoch=3)
    # paper: Table 1's FER+ augmentation; quick: the light recipe (flip + crop), stated as a deviation
    assert paper.augment_description() == "flip p=0.5, brightness/contrast 0.2, random erasing p=0.5 scale 0.02-0.25"
    assert pv.chapter_config("quick", crop_padding=8).augment_description() == "flip p=0.5, 8-px random crop (reflected padding)"
    assert quick.augment().config.erase_p == 0
    with pytest.raises(ConfigError, match="ChapterConfig.crop_padding"):
        pv.chapter_config("quick", crop_padding=-1)
    with pytest.raises(ConfigError, match="ChapterConfig.warmup_epochs"):
        pv.chapter_config("quick", epochs=2, warmup_epochs=2)
    with pytest.raises(ConfigError, match="ChapterConfig.table_1_per_dataset"):
        pv.chapter_config("quick", table_1_per_dataset="yes")
    with pytest.raises(ConfigError, match="PROFILE"):
        pv.chapter_config("fast")


def test_rows_train_with_plain_cross_entropy_on_the_votes() -> None:
    """The trainer's soft-target loss is vich_loss without KL (the public code), on the VICH sample."""
    train = pv.row_train_config(pv.chapter_config("paper"), seed=1, soft=True)
    assert (train.target, train.schedule, train.optimizer, train.grad_clip, train.seed) == ("soft", "exponential", "sam", None, 1)
    assert pv.row_train_config(pv.chapter_config("quick"), seed=0, soft=False).target == "hard"
    # Table 1's own epochs and lr for RAF-DB and AffectNet in the paper profile; FER+ keeps the issue's lr
    paper = pv.chapter_config("paper")
    assert [(c.epochs, c.lr) for c in (pv.row_train_config(paper, 0, True, d) for d in ("ferplus", "rafdb", "affectnet"))] \
        == [(200, 3.5e-6), (250, 9e-6), (200, 2e-5)]
    quick = pv.chapter_config("quick")
    configs = [pv.row_train_config(quick, 0, True, d, lr=5e-4) for d in ("ferplus", "rafdb")]
    # the fast FER recipe over the row budget, at the lr chosen on validation, no label smoothing
    assert {(c.epochs, c.lr, c.budget_s, c.schedule, c.label_smoothing) for c in configs} \
        == {(quick.epochs, 5e-4, quick.row_budget_s, "onecycle", 0.0)}
    logits = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    votes = torch.softmax(torch.randn(5, 8, generator=torch.Generator().manual_seed(1)), dim=1)
    outputs = model_outputs({"logits": logits, "mu": logits, "logvar": torch.zeros_like(logits)}, "classification")
    assert torch.allclose(task_loss(outputs, {"soft": votes}, train), vich_loss(outputs, votes, kl_weight=0.0))
    assert not torch.allclose(task_loss(outputs, {"soft": votes}, train), vich_loss(outputs, votes, kl_weight=1.0))


# ---- landmark branch -------------------------------------------------------------------------


def test_landmark_targets_are_the_generated_landmarks_as_image_fractions() -> None:
    faces = generate_faces(n_identities=1, class_names=("neutral", "happiness"), intensities=(1.0,), size=48, seed=3)
    targets = pv.landmark_targets(faces)
    lm = faces.meta["landmarks"]
    assert targets.shape == (2, 136) and targets.dtype == torch.float32
    assert torch.allclose(targets[:, 0::2] * 48, torch.from_numpy(lm[..., 0]), atol=1e-4)
    assert torch.allclose(targets[:, 1::2] * 48, torch.from_numpy(lm[..., 1]), atol=1e-4)
    assert float(targets.min()) > -0.1 and float(targets.max()) < 1.1  # the chin may leave the 48-px crop a little
    assert float(((targets > 0) & (targets < 1)).float().mean()) > 0.95
    # iBUG 37 (outer corner of the subject's right eye) is left of iBUG 46 in the image
    assert bool((targets[:, 2 * 36] < targets[:, 2 * 45]).all())
    # a face rendered at 112 px has the same landmarks as fractions of the image
    big = generate_faces(n_identities=1, class_names=("neutral", "happiness"), intensities=(1.0,), size=112, seed=3)
    assert torch.allclose(pv.landmark_targets(big), targets, atol=2e-3)
    with pytest.raises(ValueError, match="meta\\['landmarks'\\]"):
        pv.landmark_targets(dataclasses.replace(faces, meta={}))


def test_nme_is_point_error_over_outer_eye_distance() -> None:
    true = np.random.default_rng(0).uniform(0, 1, (3, 68, 2))
    ocular = np.linalg.norm(true[:, 36] - true[:, 45], axis=1)
    shift = np.zeros_like(true)
    shift[..., 0] = 0.1 * ocular[:, None]
    assert np.allclose(pv.normalised_mean_error(true, true), 0.0)
    assert np.allclose(pv.normalised_mean_error(true + shift, true), 0.1)
    assert np.allclose(pv.normalised_mean_error((true + shift).reshape(3, 136), true), 0.1)
    with pytest.raises(ValueError, match="\\(N, 68, 2\\)"):
        pv.normalised_mean_error(true[:, :5], true[:, :5])


# ---- data preparation ------------------------------------------------------------------------


def test_stratified_faces_keep_class_proportions_and_are_deterministic() -> None:
    faces = _faces([0] * 60 + [1] * 30 + [2] * 10)
    part = pv.stratified_faces(faces, 10, seed=4)  # affectlab.sampling.stratified_indices
    assert torch.bincount(part.labels).tolist() == [6, 3, 1]
    assert part.meta["file_names"] == pv.stratified_faces(faces, 10, seed=4).meta["file_names"]
    assert part.meta["file_names"] != pv.stratified_faces(faces, 10, seed=5).meta["file_names"]
    assert pv.stratified_faces(faces, None, seed=0).meta["file_names"] == faces.meta["file_names"]
    assert len(pv.stratified_faces(faces, 500, 0)) == len(faces)


def test_classes_absent_from_training_are_dropped_and_votes_renormalised() -> None:
    soft = torch.zeros(5, 8)
    soft[0, 0], soft[1, 1], soft[2, 1], soft[2, 7], soft[3, 7], soft[4, 1] = 1.0, 1.0, 0.5, 0.5, 1.0, 1.0
    train = _faces([0, 1, 1], soft[:3])
    test = _faces([7, 1], soft[3:])
    new_train, new_test = pv.keep_present_classes(train, test)
    assert new_train.class_names == ("neutral", "happiness") and new_test.class_names == ("neutral", "happiness")
    assert new_test.labels.tolist() == [-1, 1]  # contempt is not a class of this run
    assert torch.allclose(new_train.soft_labels[2], torch.tensor([0.0, 1.0]))  # half a contempt vote dropped
    assert torch.equal(new_test.soft_labels[0], torch.zeros(2))  # only contempt votes: nothing left
    prepared = pv.prepare_splits("toy", train, None, test, pv.chapter_config("smoke", train_size=None, test_size=None))
    assert prepared.test.labels.tolist() == [1] and prepared.test.meta["file_names"] == ["img1.png"]
    assert prepared.class_names == ("neutral", "happiness") and prepared.soft
    unchanged = _faces([0, 1, 2, 3, 4, 5, 6, 7])
    assert pv.keep_present_classes(unchanged)[0] is unchanged


def test_labelled_rows_need_a_label_and_votes() -> None:
    soft = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.5, 0.5]])
    faces = _faces([0, 1, -1], soft, num_classes=2)
    assert pv.labelled(faces, soft=True).meta["file_names"] == ["img0.png"]
    assert pv.labelled(faces, soft=False).meta["file_names"] == ["img0.png", "img1.png"]
    with pytest.raises(ValueError, match="no soft labels"):
        pv.labelled(_faces([0, 1]), soft=True)


def test_extra_datasets_join_when_the_data_root_has_them(tmp_path, monkeypatch) -> None:
    ferplus, rafdb = make_ferplus_png(tmp_path), make_rafdb(tmp_path, n_train=8, n_test=4)
    install_manifests(monkeypatch, tmp_path, {"ferplus": ferplus, "rafdb": rafdb})
    run = resolve_run("smoke", str(tmp_path), 0, "cpu")
    data = pv.load_chapter_data(pv.chapter_config("smoke", **TINY), run)
    assert list(data.datasets) == ["ferplus", "rafdb"]
    assert data["rafdb"].soft is False and "contempt" not in data["rafdb"].class_names
    assert set(data.summary()["dataset"]) == {"FERPlus", "RAF-DB"}
    only_ferplus = pv.load_chapter_data(pv.chapter_config("smoke", extra_datasets=()), run)
    assert list(only_ferplus.datasets) == ["ferplus"]
    with pytest.raises(KeyError, match="affectnet"):
        data["affectnet"]


# ---- the ablation runner, end to end on a tiny FERPlus copy ----------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("poster_var_data")
    rows = ferplus_rows((24, 6, 12))
    with pytest.MonkeyPatch.context() as patch:
        install_manifests(patch, root, {"ferplus": make_ferplus_png(root, rows)})
        run = resolve_run("smoke", str(root), 0, "cpu")
        cfg = pv.chapter_config("smoke", **TINY)
        data = pv.load_chapter_data(cfg, run)
        landmarks = pv.pretrain_landmark_branch(cfg, run)
        trunk = pv.pretrain_image_trunk(data["ferplus"], cfg, run)
        selections = []  # every call of the selection function, to check it never sees test images
        real_select = pv.experiments.select_row_lr

        def spy(dataset, train_faces, valid_faces, *args, **kwargs):
            selections.append((dataset, train_faces, valid_faces))
            return real_select(dataset, train_faces, valid_faces, *args, **kwargs)

        patch.setattr(pv.experiments, "select_row_lr", spy)
        result = pv.run_table_3(data, landmarks, cfg, run, trunk=trunk)
        again = pv.run_table_3(data, landmarks, cfg, run, trunk=trunk)
        yield {"run": run, "cfg": cfg, "data": data, "landmarks": landmarks, "result": result, "again": again,
               "trunk": trunk, "selections": selections}


def test_landmark_branch_is_pretrained_and_frozen_in_every_row(trained) -> None:
    landmarks, result = trained["landmarks"], trained["result"]
    table = landmarks.table(n_bootstrap=20)
    assert list(table.index) == ["MobileFaceNet (pretrained here)", "mean training shape"]
    assert len(landmarks.predicted) == len(landmarks.faces["test"]) and np.isfinite(landmarks.predicted).all()
    for r in result.runs:
        assert r.model.landmark_branch_frozen
        for name, value in r.model.landmark_branch.state_dict().items():
            assert torch.equal(value, landmarks.model.state_dict()[name]), name


def test_ablation_runner_gives_one_row_per_config_and_reloads(trained) -> None:
    result, again, data = trained["result"], trained["again"], trained["data"]
    classes = data["ferplus"].class_names
    assert classes == ("neutral", "happiness", "contempt")  # the fixture's labelled classes, compacted
    assert [(r.dataset, r.row, r.seed) for r in result.runs] == [("ferplus", row, 0) for row in ABLATION_ROWS]
    assert [r.vich for r in result.runs] == [True, True, False, False]
    for r in result.runs:
        assert r.logits.shape == (len(data["ferplus"].test), len(classes)) and r.inference_ms > 0
        assert r.inference_ms == pytest.approx(float(np.median(r.inference_samples_ms)))
        assert not r.fit.loaded_from_cache and len(r.fit.history) == 1
    for first, second in zip(result.runs, again.runs):
        assert second.fit.loaded_from_cache and second.fit.run_dir == first.fit.run_dir
        assert torch.equal(first.logits, second.logits)
        assert list(first.fit.run_dir.glob("predictions-*.pt"))
    table = pv.table_3_frame(result)
    assert list(table.index)[:4] == [pv.ROW_LABELS[r] for r in ABLATION_ROWS]
    assert list(table.index)[4:] == ["most frequent training class ('neutral')", "chance (1 / number of classes)"]
    ours = [c for c in table.columns if c[0].startswith("this run: FERPlus")]
    assert [c[1] for c in ours] == ["accuracy (%)", "95% CI", "CI over"]
    paper = table[("paper, Table 3 (RTX 3090, full size, pretrained backbones)", "FER+ (%)")]
    assert paper.tolist()[:4] == [91.89, 91.85, 91.69, 91.62]
    accuracy = table[ours[0]].tolist()
    assert accuracy[:4] == [round(100 * r.accuracy, 2) for r in result.runs]
    labels = result.runs[0].labels.numpy()
    majority = int(np.bincount(data["ferplus"].train.labels.numpy()).argmax())
    assert accuracy[4] == pytest.approx(100 * np.mean(labels == majority), abs=0.01)
    assert accuracy[5] == pytest.approx(100 / 3, abs=0.01)
    assert len(pv.per_seed_frame(result)) == 4
    with pytest.raises(ValueError, match="unknown ablation row"):
        pv.run_ablation(data["ferplus"], trained["landmarks"], trained["cfg"], trained["run"], rows=("nope",))


def test_paired_differences_and_per_class_tables(trained) -> None:
    result = trained["result"]
    diffs = pv.ablation_differences(result)
    assert len(diffs) == 3 and diffs["paper (pp)"].tolist() == [0.04, 0.2, 0.27]
    full, base = result.get("ferplus", "full"), result.get("ferplus", "baseline")
    expected = 100 * (full.accuracy - base.accuracy)
    assert diffs.iloc[2]["difference (pp)"] == pytest.approx(expected, abs=0.01)
    table4 = pv.table_4_frame(result)
    scores = metrics.per_class_precision_recall(full.labels.numpy(), full.predicted, labels=[0, 1, 2])
    assert list(table4.columns) == list(result.data["ferplus"].class_names)
    assert table4.loc["Recall (%)"].tolist() == [round(100 * v, 2) for v in scores["recall"]]
    assert table4.loc["Testing samples"].sum() == len(full.labels)
    assert all(isinstance(v, int) for v in table4.loc["Training samples"])
    assert isinstance(pv.confusion_figure(result), Figure)
    assert list(pv.paper_table_4_frame().columns)[0] == "surprise"


def test_expression_distributions_use_mu_and_sigma_of_the_vich_head(trained) -> None:
    result = trained["result"]
    full = result.get("ferplus", "full")
    mu, sigma = full.distribution()
    assert torch.allclose(mu, full.logits, atol=1e-5)  # evaluation logits are mu (Eq. 5 at test time)
    assert bool((sigma > 0).all())
    with pytest.raises(ValueError, match="linear head"):
        result.get("ferplus", "baseline").distribution()
    rows = pv.distribution_image_rows(result, n=2)
    assert len(rows) == 2 and len(set(rows)) == 2
    fig = pv.expression_distribution_figure(result, rows=rows)
    assert len([ax for ax in fig.axes if ax.get_title()]) == 2
    assert "fer0" in fig.axes[0].get_title()  # named by file, no face shown


def test_calibration_comparison_wiring(trained, tmp_path) -> None:
    result, cfg = trained["result"], trained["cfg"]
    calibration = pv.calibration_comparison(result)
    keys = list(calibration.probabilities)
    mc = f"Monte-Carlo mean of {cfg.mc_samples} samples"
    assert keys == [("full", "mu only (deployed)"), ("full", mc), ("w/o layer emb.", "mu only (deployed)"),
                    ("w/o layer emb.", mc), ("w/o VI", "linear head"), ("baseline", "linear head"),
                    (pv.PRIOR_ROW, "training class frequencies")]
    prior = calibration.probabilities[(pv.PRIOR_ROW, "training class frequencies")]
    counts = np.bincount(result.data["ferplus"].train.labels.numpy(), minlength=3)
    assert np.allclose(prior, counts / counts.sum())  # every image gets the training frequencies
    full, base = result.get("ferplus", "full"), result.get("ferplus", "baseline")
    assert np.allclose(calibration.probabilities[("full", "mu only (deployed)")], torch.softmax(full.logits.double(), 1).numpy())
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(full.seed)
        samples = full.model.head.sample_logits(full.features, cfg.mc_samples)
    assert np.allclose(calibration.probabilities[("full", mc)], torch.softmax(samples.double(), -1).mean(0).numpy())
    table = calibration.table()
    base_probs = torch.softmax(base.logits.double(), 1).numpy()
    row = table.loc[(pv.ROW_LABELS["baseline"], "linear head")]
    assert row["ECE (15 bins)"] == pytest.approx(metrics.expected_calibration_error(base_probs, base.labels.numpy()), abs=1e-4)
    assert row["NLL (nats)"] == pytest.approx(metrics.negative_log_likelihood(base_probs, base.labels.numpy()), abs=1e-4)
    assert calibration.main_keys() == [("full", "mu only (deployed)"), ("full", mc), ("baseline", "linear head")]
    assert all(isinstance(f, Figure) for f in calibration.diagrams())
    assert list(pv.sigma_summary(result).index) == [pv.ROW_LABELS["full"], pv.ROW_LABELS["w/o layer emb."]]
    results = ResultsRecorder("04_poster_var", profile="smoke", seed=0, data="test fixture", out_dir=tmp_path)
    statements = pv.findings(result, calibration, results, landmarks=trained["landmarks"], trunk=trained["trunk"])
    assert any("majority-class rate" in s for s in statements)
    assert statements[-1] == pv.neurogaze_vich_statement() and "FERStudent" in statements[-1]
    assert any("ECE" in s for s in statements) and any("pp" in s for s in statements)
    assert statements[0].startswith("Landmark branch: NME")
    # every headline number in the text is the number in 04_poster_var.results.json
    recorded = read_results(tmp_path / "04_poster_var.results.json")["numbers"]
    for row in ("poster_var", "no_layer_embedding", "no_vich", "poster_pp"):
        assert {f"{row}.test.accuracy", f"{row}.test.macro_f1", f"{row}.test.ece", f"inference_ms.{row}"} <= set(recorded)
    for key in ("trunk.test.accuracy", "majority.test.accuracy", "diff.poster_var_vs_no_vich.test.accuracy",
                "landmarks.test.nme"):
        assert key in recorded, key
    assert recorded["poster_var.test.accuracy"]["value"] == pytest.approx(100 * full.accuracy)
    assert recorded["poster_var.test.accuracy"]["paper"] == 91.89 and recorded["poster_var.test.accuracy"]["n"] == len(full.labels)
    no_vi = result.get("ferplus", "w/o VI")
    assert recorded["diff.poster_var_vs_no_vich.test.accuracy"]["value"] == pytest.approx(100 * (full.accuracy - no_vi.accuracy))
    assert recorded["poster_pp.test.ece"]["value"] == pytest.approx(
        metrics.expected_calibration_error(base_probs, base.labels.numpy()), abs=1e-9)
    text = results.record("poster_var.test.accuracy", **{k: recorded["poster_var.test.accuracy"][k] for k in ("value", "ci", "unit")})
    assert any(text in s for s in statements)
    deviations = pv.deviations_frame(cfg, trained["run"], trained["data"])
    assert list(deviations.columns) == ["paper", "here", "why"] and deviations["why"].str.len().min() > 0
    assert "no KL term" in deviations.loc["loss", "here"]
    # the input row is computed from the stored images (the fixture writes 48 px greyscale PNGs)
    side = trained["data"]["ferplus"].train.images.shape[-1]
    assert deviations.loc["input", "here"].startswith(f"FERPlus: {side} x {side} px greyscale")
    assert "3.5e-6" in deviations.loc["optimiser", "paper"]


def test_paired_calibration_differences_recompute_both_scores_on_the_same_images() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
    rng = np.random.default_rng(0)
    sharp = np.eye(3)[labels] * 0.8 + 0.2 / 3  # right and confident
    flat = np.full((12, 3), 1 / 3)
    noisy = rng.dirichlet(np.ones(3), size=12)
    calibration = pv.CalibrationResult(
        probabilities={("full", "mu only (deployed)"): sharp, ("full", "Monte-Carlo mean of 4 samples"): noisy,
                       ("baseline", "linear head"): flat},
        labels=labels, n_bins=5, dataset="ferplus", dataset_label="toy", seed=0, class_names=("a", "b", "c"))
    assert calibration.comparison_pairs() == [
        (("full", "Monte-Carlo mean of 4 samples"), ("full", "mu only (deployed)")),
        (("full", "mu only (deployed)"), ("baseline", "linear head")),
        (("full", "Monte-Carlo mean of 4 samples"), ("baseline", "linear head"))]  # no class-prior row here
    diffs = calibration.differences(n_bootstrap=200, seed=1)
    row = diffs.iloc[1]  # sharp minus flat
    nll = metrics.negative_log_likelihood(sharp, labels) - metrics.negative_log_likelihood(flat, labels)
    ece = metrics.expected_calibration_error(sharp, labels, 5) - metrics.expected_calibration_error(flat, labels, 5)
    assert row["NLL (nats) a - b"] == pytest.approx(nll, abs=1e-4) and nll < 0
    assert row["ECE a - b"] == pytest.approx(ece, abs=1e-4)
    # the sharp predictor is right on every resample, so its NLL advantage never changes sign
    assert row["NLL (nats): CI excludes 0"]
    low, high = (float(v) for v in row["NLL (nats) 95% CI (paired bootstrap)"].strip("[]").split(","))
    assert low - 1e-4 <= nll <= high + 1e-4 and high < 0  # CI printed to 4 decimals
    with pytest.raises(KeyError, match="no predictions"):
        calibration.differences([(("full", "mu only (deployed)"), ("w/o VI", "linear head"))])


def test_paper_table_2_is_quoted_and_agrees_with_table_3() -> None:
    table = pv.paper_table_2_frame()
    assert "not run here" in table.columns.name
    assert table.loc["POSTER-Var", "FER+"] == pv.PAPER_TABLE_3["full"]["FER+"]
    assert table.loc["POSTER++", "RAF-DB"] == pv.PAPER_TABLE_3["baseline"]["RAF-DB"]
    assert np.isnan(table.loc["POSTER++", "FER+"])  # not reported in the paper


def test_class_evidence_maps_cover_every_class(trained) -> None:
    result = trained["result"]
    evidence = pv.class_evidence_maps(result, face_class="happiness")
    names = result.data["ferplus"].class_names
    assert evidence.cams.shape == (len(names), 112, 112) and evidence.cams.min() >= 0 and evidence.cams.max() <= 1
    assert evidence.probabilities.sum() == pytest.approx(1.0) and list(evidence.table().index) == list(names)
    # the maps differ between classes (each target has its own gradient)
    assert not np.allclose(evidence.cams[0], evidence.cams[1])
    assert isinstance(evidence.figure(), Figure)
    with pytest.raises(ValueError, match="face_class 'fear'"):
        pv.class_evidence_maps(result, face_class="fear")


def test_gradcam_on_generated_faces(trained) -> None:
    gradcam = pv.gradcam_on_generated_faces(trained["result"], trained["landmarks"], trained["run"])
    assert gradcam.classes == ("happiness", "neutral")
    for cam in gradcam.cams.values():
        assert cam.shape == (2, 112, 112) and cam.min() >= 0 and cam.max() <= 1
    assert gradcam.landmarks_true.shape == (2, 68, 2) and gradcam.images.shape == (2, 112, 112)
    assert list(gradcam.spread_table().index) == [pv.ROW_LABELS["full"], pv.ROW_LABELS["baseline"]]
    assert isinstance(gradcam.figure(), Figure)


# ---- small pieces ----------------------------------------------------------------------------


def test_monte_carlo_probabilities_are_seeded_and_leave_the_global_rng_alone() -> None:
    head = VICHead(4, 3)
    features = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    state = torch.get_rng_state()
    first = pv.monte_carlo_probabilities(head, features, 32, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert np.allclose(first, pv.monte_carlo_probabilities(head, features, 32, seed=7))
    assert np.allclose(first.sum(1), 1.0)
    with torch.no_grad():
        head.fc_logvar.weight.zero_()
        head.fc_logvar.bias.fill_(-40.0)  # sigma ~ 2e-9: sampling changes nothing
    mu = head.distribution(features)[0].detach()
    assert np.allclose(pv.monte_carlo_probabilities(head, features, 4, seed=0), torch.softmax(mu.double(), 1).numpy())
    with pytest.raises(TypeError, match="VICHead"):
        pv.monte_carlo_probabilities(torch.nn.Linear(4, 3), features, 4, seed=0)  # type: ignore[arg-type]


class _CountingModel(torch.nn.Module):
    def __init__(self, log: list, name: str) -> None:
        super().__init__()
        self.log, self.name = log, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.log.append((self.name, self.training))
        return x.mean()


def test_inference_timing_interleaves_models_and_restores_their_mode() -> None:
    log: list = []
    a, b = _CountingModel(log, "a"), _CountingModel(log, "b")
    a.train()
    b.eval()
    times = pv.measure_inference_times([a, b], torch.device("cpu"), repeats=3, warmup=1)
    assert len(times) == 2 and all(t.shape == (3,) and ((0 < t) & (t < 5000)).all() for t in times)
    assert [name for name, _ in log] == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then rotating rounds
    assert not any(training for _, training in log) and a.training and not b.training
    assert 0 < pv.time_inference(torch.nn.Conv2d(3, 2, 3), torch.device("cpu"), repeats=2, warmup=0) < 5000
    with pytest.raises(ValueError, match="repeats"):
        pv.time_inference(a, torch.device("cpu"), repeats=0)


def test_face_tensor_data_feeds_112_px_three_channel_normalised_images() -> None:
    soft = torch.softmax(torch.randn(4, 8), 1)
    faces = dataclasses.replace(_faces([0, 1, 2, 3], soft), images=torch.full((4, 1, 48, 48), 255, dtype=torch.uint8))
    data = pv.face_tensor_data(faces, pv.chapter_config("smoke"), train=False, soft=True)
    assert isinstance(data, TensorData) and data.augment is None and data.soft is not None
    batch = next(data.batches("cpu"))
    assert batch["x"].shape == (4, 3, 112, 112)
    expected = (1.0 - torch.tensor(pv.IMAGENET_MEAN)) / torch.tensor(pv.IMAGENET_STD)
    assert torch.allclose(batch["x"][0, :, 50, 50], expected, atol=1e-5)
    assert pv.face_tensor_data(faces, pv.chapter_config("smoke"), train=True, soft=True).augment is not None


# ---- the shared trunk, FLOPs, timing threads, Table 4 FPR, Grad-CAM caveat ------------------------


def test_every_row_starts_from_the_pretrained_trunk(trained) -> None:
    trunk, landmarks, cfg = trained["trunk"], trained["landmarks"], trained["cfg"]
    assert trunk is not None and trunk.train_images == cfg.trunk_train_size
    assert len(trunk.test_predicted) == len(trained["data"]["ferplus"].test)
    for row, config in pv.ablation_configs(cfg.poster_config(3)).items():
        model = pv.build_row_model(config, landmarks, seed=0, trunk=trunk)
        for name, value in model.image_backbone.state_dict().items():
            assert torch.equal(value, trunk.model.backbone.state_dict()[name]), (row, name)
    assert pv.pretrain_image_trunk(trained["data"]["ferplus"], pv.chapter_config("smoke", trunk_epochs=0), trained["run"]) is None
    assert "accuracy (%)" in trunk.table(n_bootstrap=20).columns
    splits = trained["data"]["ferplus"]
    majority, rate = splits.majority_class()
    counts = np.bincount(splits.train.labels.numpy(), minlength=len(splits.class_names))
    assert majority == int(counts.argmax())
    name = splits.class_names[majority]
    assert rate == pytest.approx(100 * float(np.mean(splits.test.labels.numpy() == counts.argmax())))
    assert pv.trunk_frame(trunk, splits, n_bootstrap=20)[f"majority class '{name}' (%)"].iloc[0] == round(rate, 2)
    assert all(r.fit.loaded_from_cache for r in trained["again"].runs)


def test_frozen_trunk_stays_the_pretrained_trunk_after_row_training(trained) -> None:
    trunk, cfg, landmarks = trained["trunk"], trained["cfg"], trained["landmarks"]
    assert cfg.freeze_trunk and pv.chapter_config("quick").freeze_trunk and not pv.chapter_config("paper").freeze_trunk
    reference = trunk.model.backbone.state_dict()
    for r in trained["result"].runs:
        assert r.model.image_backbone_frozen, r.row
        for name, value in r.model.image_backbone.state_dict().items():  # weights and BatchNorm statistics
            assert torch.equal(value, reference[name]), (r.row, name)
        frozen = [*r.model.image_backbone.parameters(), *r.model.landmark_branch.parameters()]
        trainable = sum(p.numel() for p in r.model.parameters() if p.requires_grad)
        assert trainable == sum(p.numel() for p in r.model.parameters()) - sum(p.numel() for p in frozen) > 0
    config = pv.ablation_configs(cfg.poster_config(3))["full"]
    tuned = pv.build_row_model(config, landmarks, seed=0, trunk=trunk, freeze_trunk=False)
    assert not tuned.image_backbone_frozen and all(p.requires_grad for p in tuned.image_backbone.parameters())
    frame = pv.deviations_frame(cfg, trained["run"], trained["data"])
    assert "frozen" in frame.loc["image backbone in the rows", "here"]
    for bad in (dict(freeze_trunk=1), dict(trunk_warmup_epochs=-0.5), dict(trunk_warmup_epochs=1.0),
                dict(trunk_crop_padding=-1)):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            pv.chapter_config("smoke", **bad)


def test_flops_differ_between_rows_by_exactly_the_added_head() -> None:
    """FlopCounterMode counts matrix products and convolutions: fc_logvar (D x C) is the only one
    VICH adds, 2 D C FLOPs per image."""
    config = pv.PosterConfig.poster_var(num_classes=8, width=0.125, depth=0.1)
    rows = pv.ablation_configs(config)
    flops = {row: pv.count_flops(pv.PosterModel(c)) for row, c in rows.items()}
    assert flops["full"] - flops["w/o VI"] == 2 * config.embed_dim * config.num_classes
    assert flops["full"] == flops["w/o layer emb."] and flops["w/o VI"] == flops["baseline"] > 10**6


def test_cpu_threads_sets_and_restores_the_thread_count() -> None:
    before = torch.get_num_threads()
    with pv.cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="n must be"):
        with pv.cpu_threads(0):
            pass


def test_table_4_false_positive_rate_and_gradcam_caveat(trained) -> None:
    result = trained["result"]
    full = result.get("ferplus", "full")
    table4 = pv.table_4_frame(result)
    y, p = full.labels.numpy(), full.predicted
    for c, name in enumerate(result.data["ferplus"].class_names):
        assert table4.loc["False-positive rate (%)", name] == pytest.approx(100 * np.mean(p[y != c] == c), abs=0.01)
    gradcam = pv.gradcam_on_generated_faces(result, trained["landmarks"], trained["run"])
    never = dataclasses.replace(gradcam, predicted={k: (gradcam.targets + 1) % 3 for k in gradcam.predicted})
    assert "0 / 2" in never.caveat()
    always = dataclasses.replace(gradcam, predicted={k: gradcam.targets.copy() for k in gradcam.predicted})
    assert always.caveat() is None


# ---- no choice on test images; cached pyramids; VICH against the votes ------------------------------


def test_selection_functions_never_receive_test_faces(trained) -> None:
    """The lr is chosen on training / validation faces only (issue 17, item 2), disjoint from the test faces."""
    selections, data, result = trained["selections"], trained["data"], trained["result"]
    splits = data["ferplus"]
    assert len(selections) == 2 and result.lr_selection is not None  # one per run_table_3 call
    test_files = set(splits.test.meta["file_names"])
    for dataset, train_faces, valid_faces in selections:
        assert dataset == "ferplus" and (train_faces.split, valid_faces.split) == ("train", "valid")
        assert not test_files & (set(train_faces.meta["file_names"]) | set(valid_faces.meta["file_names"]))
    assert set(result.lr_selection.scores) == set(trained["cfg"].row_lr_candidates)
    assert result.lr_selection.chosen == max(result.lr_selection.scores, key=result.lr_selection.scores.get)
    assert result.lr_selection.valid_images == len(splits.valid)
    with pytest.raises(ValueError, match="evaluation split"):
        pv.require_selection_faces("ferplus", splits.train, splits.test)
    with pytest.raises(ValueError, match="evaluation split"):
        pv.select_row_lr("ferplus", splits.train, splits.test, None, None, None, trained["cfg"], trained["run"])
    pv.require_selection_faces("ferplus", splits.train, splits.valid)  # fine


def test_cached_pyramid_rows_give_the_image_path_outputs(trained) -> None:
    """A row trained on cached maps is the same network as the row run on images."""
    splits, cfg = trained["data"]["ferplus"], trained["cfg"]
    for r in trained["result"].runs:
        model = r.model.eval()
        features = pv.compute_pyramids(model, splits.test, cfg)
        assert features.dtype == torch.float16
        with torch.no_grad():
            cached = pv.CachedPyramidRow(model)(features)["logits"]
            images = pv.face_tensor_data(splits.test, cfg, train=False, soft=False)
            direct = model(next(images.batches("cpu"))["x"])["logits"]
        assert torch.allclose(cached[:len(direct)], direct, atol=1e-2), r.row  # float16 storage of the maps
        assert torch.allclose(r.logits, cached, atol=1e-4), r.row
    unfrozen = pv.build_row_model(pv.ablation_configs(cfg.poster_config(3))["full"], trained["landmarks"], 0,
                                  trained["trunk"], freeze_trunk=False)
    with pytest.raises(ValueError, match="frozen"):
        pv.CachedPyramidRow(unfrozen)


def test_vote_metrics_match_hand_computed_values() -> None:
    p = np.array([[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])
    q = np.array([[0.0, 1.0], [0.5, 0.5], [0.25, 0.75]])
    assert pv.js_divergence(p, q)[:2] == pytest.approx([np.log(2), 0.0])
    m = np.array([0.375, 0.625])  # JS of row 3 by hand: (KL(p||m) + KL(q||m)) / 2
    by_hand = 0.5 * (0.5 * np.log(0.5 / m[0]) + 0.5 * np.log(0.5 / m[1])) \
        + 0.5 * (0.25 * np.log(0.25 / m[0]) + 0.75 * np.log(0.75 / m[1]))
    assert pv.js_divergence(p, q)[2] == pytest.approx(by_hand)
    assert pv.kl_divergence(p[1:], q[1:]) == pytest.approx([0.0, 0.5 * np.log(2) + 0.5 * np.log(0.5 / 0.75)])
    # q = 0 where p > 0: floored at 1e-12, a large finite divergence instead of infinity
    assert pv.kl_divergence(np.array([[0.5, 0.5]]), np.array([[1.0, 0.0]]))[0] == pytest.approx(
        0.5 * np.log(0.5) + 0.5 * np.log(0.5 / 1e-12))
    assert pv.entropy(np.array([[1.0, 0.0], [0.5, 0.5], [0.25, 0.75]])) == pytest.approx(
        [0.0, np.log(2), -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))])
    pred = np.array([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.4, 0.4, 0.2]])
    votes = np.array([[0.1, 0.6, 0.3], [0.0, 0.4, 0.6], [0.0, 0.0, 1.0]])
    # row 1: {0, 1} vs {1, 2}; row 2: {2, 1} vs {2, 1}; row 3: {0, 1} vs {2, 0} (the tie 0 / 1 of the
    # votes goes to the lower class index)
    assert pv.top2_agreement(pred, votes).tolist() == [0.5, 1.0, 0.5]
    four = np.array([[0.4, 0.3, 0.2, 0.1]])
    assert pv.top2_agreement(four, four[:, ::-1].copy()).tolist() == [0.0]
    assert pv.entropy_correlation(np.array([[0.1, 1.0], [0.2, 2.0], [0.3, 3.5]])) == pytest.approx(
        np.corrcoef([0.1, 0.2, 0.3], [1.0, 2.0, 3.5])[0, 1])
    assert np.isnan(pv.entropy_correlation(np.array([[0.1, 1.0], [0.1, 2.0]])))
    with pytest.raises(ValueError, match="sum to 1"):
        pv.js_divergence(np.array([[0.5, 0.6]]), np.array([[0.5, 0.5]]))


def test_vote_comparison_wiring(trained, tmp_path) -> None:
    result, cfg = trained["result"], trained["cfg"]
    votes = pv.vote_comparison(result)
    splits = result.data["ferplus"]
    assert np.allclose(votes.votes, splits.test.soft_labels.double().numpy())
    full, no_vi = result.get("ferplus", "full"), result.get("ferplus", "w/o VI")
    assert list(votes.probabilities) == [("full", "Monte-Carlo predictive"), ("full", "softmax(mu) (deployed)"),
                                         ("w/o layer emb.", "Monte-Carlo predictive"),
                                         ("w/o layer emb.", "softmax(mu) (deployed)"),
                                         ("w/o VI", "softmax (linear head)"), ("baseline", "softmax (linear head)")]
    soft = torch.softmax(no_vi.logits.double(), 1).numpy()
    table = votes.table(n_bootstrap=20)
    row = table.loc[(pv.ROW_LABELS["w/o VI"], "softmax (linear head)")]
    assert row["JS to votes (nats)"] == pytest.approx(pv.js_divergence(soft, votes.votes).mean(), abs=1e-4)
    assert row["top-2 agreement"] == pytest.approx(pv.top2_agreement(soft, votes.votes).mean(), abs=1e-3)
    d = votes.difference(("full", "Monte-Carlo predictive"), ("w/o VI", "softmax (linear head)"), "js", n_bootstrap=20)
    mc = votes.probabilities[("full", "Monte-Carlo predictive")]
    assert d.value == pytest.approx(pv.js_divergence(mc, votes.votes).mean() - pv.js_divergence(soft, votes.votes).mean())
    assert d.low <= d.value <= d.high
    assert votes.differences(n_bootstrap=20).index[0] == (f"{pv.ROW_LABELS['full']} / Monte-Carlo predictive",
                                                          f"{pv.ROW_LABELS['w/o VI']} / softmax (linear head)")
    results = ResultsRecorder("04_poster_var", profile="smoke", seed=0, data="test fixture", out_dir=tmp_path)
    pv.findings(result, pv.calibration_comparison(result), results, trunk=trained["trunk"], votes=votes)
    recorded = read_results(tmp_path / "04_poster_var.results.json")["numbers"]
    for row in ("poster_var", "no_layer_embedding", "no_vich", "poster_pp"):
        assert {f"{row}.test.accuracy", f"{row}.test.macro_f1", f"{row}.test.ece", f"{row}.test.vote_js"} <= set(recorded)
    for key in ("trunk.test.accuracy", "diff.poster_var_vs_no_vich.test.accuracy", "diff.poster_var_vs_no_vich.test.vote_js",
                "inference_ms.poster_var", "poster_var.test.vote_js_mu"):
        assert key in recorded, key
    assert recorded["no_vich.test.vote_js"]["value"] == pytest.approx(pv.js_divergence(soft, votes.votes).mean())
    assert recorded["diff.poster_var_vs_no_vich.test.vote_js"]["value"] == pytest.approx(d.value)


def test_affectnet_seven_class_column_drops_contempt() -> None:
    """Table 3's AffectNet (7 cls) column: AffectNet without contempt, as the paper evaluates it."""
    soft = torch.eye(8)[[0, 1, 7, 7, 2]]
    faces = _faces([0, 1, 7, 7, 2], soft=soft)
    dropped = pv.data.drop_classes(faces, ("contempt",))
    assert dropped.labels.tolist() == [0, 1, -1, -1, 2] and dropped.soft_labels[:, 7].sum() == 0
    (train,) = pv.keep_present_classes(dropped)
    assert "contempt" not in train.class_names and len(train.class_names) == 3
    assert pv.paper.paper_column("affectnet7", 7) == "AffectNet (7 cls)"
    assert pv.paper.paper_column("affectnet", 8) == "AffectNet (8 cls)"
    assert pv.config.REGISTRY_NAME["affectnet7"] == "affectnet" and "affectnet7" in pv.chapter_config("paper").extra_datasets
    with pytest.raises(ValueError, match="joy"):
        pv.data.drop_classes(faces, ("joy",))
