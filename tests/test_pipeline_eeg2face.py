"""Chapter 03 pipeline (EEG2Face, paper 002): paired-set builder, stage-2 loss, baselines, train-or-load.

Everything runs on a tiny generated set (one subject, 4 s trials, a random 30-channel background),
so no data root is needed.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from affectlab import metrics
from affectlab.config import ConfigError, resolve_run
from affectlab.data.generate import EEGLAB_EEG_CHANNELS
from affectlab.facemodel import FaceModel
from affectlab.models.eeg2face import EMOTIONS, VISION_LATENT_DIM
from affectlab.pipelines import eeg2face as pipe


@pytest.fixture(scope="module")
def face_model() -> FaceModel:
    return FaceModel.packaged()


@pytest.fixture(scope="module")
def tiny() -> tuple[pipe.ChapterConfig, pipe.BackgroundEEG]:
    cfg = pipe.chapter_config("smoke", n_subjects=1, trials_per_emotion=4, trial_seconds=4.0, window_seconds=1.0,
                              frame_step=2, segment_seconds=2.0, batch_size=16, n_bootstrap=50,
                              encoders=("eeg2face",))
    rng = np.random.default_rng(1)
    recording = (10.0 * rng.standard_normal((30, 8000))).astype(np.float32)  # 80 s at 100 Hz
    background = pipe.BackgroundEEG(recording, EEGLAB_EEG_CHANNELS, "test: white noise", False, "white-noise-1")
    return cfg, background


@pytest.fixture(scope="module")
def data(tiny, face_model) -> pipe.ChapterData:
    cfg, background = tiny
    run = resolve_run("smoke", None, 0, "cpu")
    return pipe.build_chapter_data(cfg, run, background, face_model=face_model)


# ---------------------------------------------------------------------------------------------
# the paired-set builder
# ---------------------------------------------------------------------------------------------


def test_builder_shapes(data, tiny):
    cfg, _ = tiny
    n_trials = cfg.n_subjects * len(EMOTIONS) * cfg.trials_per_emotion
    # frames whose 1 s window fits in a 4 s trial: 5..35 (centre sample 10 f), every 2nd
    frames = np.arange(5, 36, 2)
    n = n_trials * len(frames)
    assert data.eeg.shape == (n, 30, 100) and data.eeg.dtype == torch.float32
    assert data.z_v.shape == (n, VISION_LATENT_DIM)
    assert data.psi.shape == (n, 53) and data.jaw.shape == (n, 3)
    for field in ("emotion", "subject", "trial", "frame", "segment", "train"):
        assert getattr(data, field).shape == (n,), field
    assert torch.equal(torch.unique(data.frame), torch.as_tensor(frames))
    assert data.paired.eeg.shape == (n_trials, 30, 400)


def test_builder_subject_dependent_6_2_split(data):
    for k in range(len(EMOTIONS)):
        trials = data.trial[data.emotion == k]
        train_trials = torch.unique(trials[data.train[data.emotion == k]])
        test_trials = torch.unique(trials[data.test[data.emotion == k]])
        assert len(train_trials) == 3 and len(test_trials) == 1  # 6:2 per subject and emotion
        assert not set(train_trials.tolist()) & set(test_trials.tolist())
    # a trial is entirely train or entirely test
    for t in torch.unique(data.trial):
        assert data.train[data.trial == t].unique().numel() == 1


def test_windows_are_centred_on_their_frame_and_standardised(data):
    i = 7
    trial, frame = int(data.trial[i]), int(data.frame[i])
    raw = data.paired.eeg[trial]
    start = 10 * frame - 50
    expected = (raw[:, start:start + 100] - data.channel_mean.numpy()[:, None]) / data.channel_std.numpy()[:, None]
    np.testing.assert_allclose(data.eeg[i].numpy(), expected, rtol=1e-4, atol=1e-4)
    # training EEG is standardised per channel
    train_trials = torch.unique(data.trial[data.train]).numpy()
    mean, std = data.channel_mean.numpy()[None, :, None], data.channel_std.numpy()[None, :, None]
    z = (data.paired.eeg[train_trials] - mean) / std
    np.testing.assert_allclose(z.mean(axis=(0, 2)), 0.0, atol=1e-3)
    np.testing.assert_allclose(z.std(axis=(0, 2)), 1.0, atol=1e-3)


def test_test_trials_take_background_from_the_held_out_part(tiny):
    _, background = tiny
    is_test = np.array([False, True, False, True])
    pieces = pipe.background_pieces(background, is_test, 400, seed=3)
    cut = int(round(background.data.shape[1] * 0.75))
    train_part, test_part = background.data[:, :cut], background.data[:, cut:]
    for piece, test in zip(pieces, is_test):
        part = test_part if test else train_part
        first = piece[0, 0]
        assert np.isclose(part[0], first).any()
        other = train_part if test else test_part
        assert not np.isclose(other[0], first).any()


def test_vision_latent_is_exact_and_matches_the_face_model(data, face_model):
    psi, jaw = data.latent.decode(data.z_v)
    torch.testing.assert_close(psi, data.psi, atol=1e-5, rtol=0)
    torch.testing.assert_close(jaw, data.jaw)
    assert data.latent.dropped_variance < 1e-6  # the 4 jaw blendshapes are 0: rank <= 49 < 50
    v = data.latent.vertices(data.z_v[:3])
    torch.testing.assert_close(v, face_model.vertices(psi=data.psi[:3], jaw=data.jaw[:3]), atol=1e-3, rtol=0)


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="trials_per_emotion"):
        pipe.chapter_config("smoke", trials_per_emotion=6)
    with pytest.raises(ConfigError, match="encoders"):
        pipe.chapter_config("smoke", encoders=("resnet",))
    with pytest.raises(ConfigError, match="PROFILE"):
        pipe.chapter_config("fast")


# ---------------------------------------------------------------------------------------------
# stage 2: 0.7 MSE(z_v) + 0.3 L_vertex
# ---------------------------------------------------------------------------------------------


def test_stage2_loss_is_0_7_mse_plus_0_3_vertex(data, face_model):
    torch.manual_seed(0)
    z_v = data.z_v[:6]
    z_hat = z_v + 0.05 * torch.randn_like(z_v)
    parts = pipe.stage2_loss(z_hat, z_v, data.latent)
    mse = ((z_hat - z_v) ** 2).mean()
    psi_hat, jaw_hat = data.latent.decode(z_hat)
    psi_v, jaw_v = data.latent.decode(z_v)
    distance = (face_model.vertices(psi=psi_hat, jaw=jaw_hat) - face_model.vertices(psi=psi_v, jaw=jaw_v)).norm(dim=-1)
    torch.testing.assert_close(parts["mse_zv"], 0.7 * mse)
    torch.testing.assert_close(parts["vertex"], 0.3 * distance.mean(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(parts["total"], 0.7 * mse + 0.3 * distance.mean(), rtol=1e-4, atol=1e-6)
    # the trainer terms are the same two weighted parts
    terms = pipe.stage2_terms(data.latent)
    outputs, batch = {"z_v_hat": z_hat}, {"y": z_v}
    torch.testing.assert_close(sum(t(outputs, batch, 1) for t in terms.values()), parts["total"])
    # other weights change the mix; a perfect prediction costs nothing
    swapped = pipe.stage2_loss(z_hat, z_v, data.latent, weights=(0.3, 0.7))
    torch.testing.assert_close(swapped["total"], 0.3 * mse + 0.7 * distance.mean(), rtol=1e-4, atol=1e-6)
    assert float(pipe.stage2_loss(z_v, z_v, data.latent)["total"]) == 0.0


def test_only_the_named_terms_send_gradients(data):
    """The trainer's own MSE sees a detached prediction: stage 1 trains on InfoNCE only and stage 2
    on the two weighted terms only."""
    heads = pipe.EEG2FaceHeads(content_dim=8, hidden_dim=0)
    out = pipe.HeadsOnFeatures(heads)(torch.randn(4, 13))
    assert not out["pred"].requires_grad and out["z_v_hat"].requires_grad
    encoder = pipe.build_content_encoder("tct", n_chans=30, n_times=100)
    stage = pipe.ContrastiveStage(encoder)(data.eeg[:4])
    assert not stage["pred"].requires_grad and stage["projection"].requires_grad


# ---------------------------------------------------------------------------------------------
# evaluation and the mean-face baseline
# ---------------------------------------------------------------------------------------------


def _direct_segment_errors(z_hat, data, region):
    idx = torch.nonzero(data.test).flatten()
    pred = data.latent.vertices(z_hat).detach().numpy()
    true = data.latent.face_model.vertices(psi=data.psi[idx], jaw=data.jaw[idx]).numpy()
    per_frame = np.linalg.norm(pred - true, axis=-1)[:, region].max(axis=1)
    segments = data.segment[idx].numpy()
    return np.array([per_frame[segments == s].mean() for s in np.unique(segments)])


def test_mean_face_baseline(data):
    z_mean = pipe.mean_face_latents(data)
    assert z_mean.shape == (int(data.test.sum()), VISION_LATENT_DIM)
    torch.testing.assert_close(z_mean, data.z_v[data.train].mean(0).expand_as(z_mean))
    per_emotion = pipe.mean_face_latents(data, per_emotion=True)
    for k in range(len(EMOTIONS)):
        rows = data.emotion[data.test] == k
        torch.testing.assert_close(per_emotion[rows][0], data.z_v[data.train & (data.emotion == k)].mean(0))
    table = pipe.segment_vertex_errors(z_mean, data, data.test)
    lips = data.latent.face_model.regions["lips"].numpy()
    np.testing.assert_allclose(table["LVE"].to_numpy(), _direct_segment_errors(z_mean, data, lips), rtol=1e-5)
    assert (table[["LVE", "MCE", "EVE"]].to_numpy() > 0).all()
    # the exact latents reproduce the true meshes: the floor is ~0 mm
    floor = pipe.segment_vertex_errors(pipe.latent_roundtrip(data), data, data.test)
    assert float(floor[["LVE", "MCE", "EVE"]].to_numpy().max()) < 1e-2
    summary = pipe.summarise_errors(table, n_bootstrap=50, seed=0)
    for m in ("LVE", "MCE", "EVE"):
        assert summary[f"{m}_low"] <= summary[m] <= summary[f"{m}_high"]
        assert math.isclose(summary[m], table[m].mean(), rel_tol=1e-9)


def test_emotion_accuracy_against_chance():
    labels = torch.arange(5).repeat(20)
    perfect = F.one_hot(labels, 5).float()
    out = pipe.emotion_accuracy(perfect, labels, n_bootstrap=50, seed=0)
    assert out["accuracy"] == 1.0 and out["chance"] == 0.2 and out["majority_rate"] == 0.2
    wrong = F.one_hot((labels + 1) % 5, 5).float()
    expected = metrics.accuracy(labels.numpy(), ((labels + 1) % 5).numpy())
    assert pipe.emotion_accuracy(wrong, labels, 50, 0)["accuracy"] == expected == 0.0


# ---------------------------------------------------------------------------------------------
# both stages end to end, then train-or-load
# ---------------------------------------------------------------------------------------------


def test_pipeline_end_to_end_and_reload(data, tiny):
    cfg = dataclasses.replace(tiny[0], steps_per_epoch=1, stage2_epochs=1)
    run = resolve_run("smoke", None, 0, "cpu")
    first = pipe.run_pipeline("eeg2face", data, cfg, run)
    assert set(first.latents) == {"content_only", "emotion_enhanced"}
    assert first.latents["content_only"].shape == (int(data.test.sum()), VISION_LATENT_DIM)
    assert not any(f.loaded_from_cache for f in first.fits.values())
    assert {"info_nce"} <= set(first.fits["content"].history.columns)
    assert {"mse_zv", "vertex"} <= set(first.fits["heads"].history.columns)
    again = pipe.run_pipeline("eeg2face", data, cfg, run)
    assert all(f.loaded_from_cache for f in again.fits.values())
    torch.testing.assert_close(again.latents["emotion_enhanced"], first.latents["emotion_enhanced"])
