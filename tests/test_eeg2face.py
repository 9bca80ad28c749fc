"""EEG2Face encoders, heads, inference modes and Table 4.1 baselines (chapter 03)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from affectlab.models.eeg2face import (
    EMOTIONS,
    VISION_LATENT_DIM,
    AttentionPooling,
    EEG2Face,
    EEG2FaceHeads,
    EEGContentRegressor,
    EEGEmotionEncoder,
    emotion_code,
    interpolate_codes,
    split_vision_latent,
)
from affectlab.models.eeg_baselines import (
    ENCODER_NAMES,
    EmotionClassifierFromEmbedding,
    build_content_encoder,
    rate_scaled_time_kwargs,
    time_tokens,
)


def eeg(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 1, 30, 500, generator=torch.Generator().manual_seed(seed))


def small_model(drop_prob: float = 0.5) -> EEG2Face:
    torch.manual_seed(0)
    content = EEGContentRegressor(d_model=32, n_heads=4)
    emotion = EEGEmotionEncoder(d_model=32, n_heads=4)
    return EEG2Face(content, emotion, EEG2FaceHeads(content_dim=32, drop_prob=drop_prob, seed=1))


def test_paper_sized_encoders_shapes_and_attention():
    torch.manual_seed(0)
    regressor, encoder = EEGContentRegressor(), EEGEmotionEncoder()
    x = eeg()
    z_r, alpha = regressor.forward_with_attention(x)
    assert z_r.shape == (2, 128) and alpha.shape == (2, 100)  # ceil(500 / 5) tokens
    torch.testing.assert_close(alpha.sum(1), torch.ones(2))
    assert regressor.project_to_vision(z_r).shape == (2, VISION_LATENT_DIM)
    assert regressor(x.squeeze(1)).shape == (2, 128)  # (B, C, T) accepted too
    out = encoder(x)
    assert out.logits.shape == (2, 5) and out.features.shape == (2, 128)
    torch.testing.assert_close(out.code, torch.softmax(out.logits, -1))
    expression, jaw = split_vision_latent(torch.zeros(2, 53))
    assert expression.shape == (2, 50) and jaw.shape == (2, 3)


def test_bad_input_is_named():
    regressor = EEGContentRegressor(d_model=32, n_heads=4)
    with pytest.raises(ValueError, match=r"EEGContentRegressor.*\(batch, 1, 30, time\).*\(2, 1, 32, 500\)"):
        regressor(torch.randn(2, 1, 32, 500))
    with pytest.raises(TypeError, match="floating point"):
        regressor(torch.zeros(2, 1, 30, 500, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        EEGContentRegressor(d_model=30, n_heads=8)
    with pytest.raises(ValueError, match="unknown"):
        build_content_encoder("resnet")


def test_content_regressor_reads_the_frames_own_samples_or_the_window_with_positions():
    """Sec. 3.0.1 pairs each frame with its own 10 EEG samples: ``frame_samples=10`` reads only
    ``x[..., T//2 : T//2 + 10]`` of a longer window; ``n_positions`` keeps the window and adds a
    learned position embedding (not in the thesis, Sec. 4.1.1), so tokens at different places differ."""
    torch.manual_seed(0)
    frame = EEGContentRegressor(d_model=32, n_heads=4, frame_samples=10).eval()
    x = torch.randn(2, 1, 30, 100)
    z, alpha = frame.forward_with_attention(x)
    assert alpha.shape == (2, 2)  # ceil(10 / 5) tokens
    changed = x.clone()
    changed[..., :50] = 0.0
    changed[..., 60:] = 0.0  # everything but the frame's own 10 samples
    torch.testing.assert_close(frame(changed), z)
    changed[..., 55] += 1.0
    assert not torch.allclose(frame(changed), z)
    positional = EEGContentRegressor(d_model=32, n_heads=4, n_positions=20).eval()
    assert positional.position.shape == (20, 32) and positional.position.requires_grad
    with torch.no_grad():
        positional.position.zero_()
        plain = positional(x)
        positional.position[0] += 1.0
        assert not torch.allclose(positional(x), plain)
    with pytest.raises(ValueError, match="n_positions"):
        positional(torch.randn(2, 1, 30, 50))
    with pytest.raises(ValueError, match="not both"):
        EEGContentRegressor(frame_samples=10, n_positions=20)
    with pytest.raises(ValueError, match="frame_samples"):
        EEGContentRegressor(frame_samples=0)
    with pytest.raises(ValueError, match="holds no 10 samples"):
        frame(torch.randn(2, 1, 30, 12))


def test_attention_pooling_is_a_softmax_weighted_mean():
    torch.manual_seed(0)
    pooling = AttentionPooling(16)
    tokens = torch.randn(3, 7, 16)
    pooled, alpha = pooling(tokens)
    torch.testing.assert_close(alpha.sum(1), torch.ones(3))
    assert (alpha > 0).all()
    expected = torch.softmax(tokens @ pooling.query, 1)
    torch.testing.assert_close(alpha, expected)
    torch.testing.assert_close(pooled, (expected.unsqueeze(-1) * tokens).sum(1))


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_every_table_4_1_encoder_feeds_the_same_heads(name):
    torch.manual_seed(0)
    encoder = build_content_encoder(name)
    x = eeg()
    z = encoder(x)
    assert z.shape == (2, 128) and torch.isfinite(z).all()
    assert encoder.project_to_vision(z).shape == (2, 53)
    heads = EEG2FaceHeads(content_dim=encoder.embedding_dim).eval()
    assert heads.with_code(z, emotion_code("Anger", 2)).shape == (2, 53)
    if name in ("tct", "eegnet"):
        classifier = EmotionClassifierFromEmbedding(encoder)
        out = classifier(x)
        assert out.logits.shape == (2, 5)
        torch.testing.assert_close(out.code.sum(1), torch.ones(2))


def test_emotion_code_is_dropped_for_half_the_samples_in_training_only():
    torch.manual_seed(0)
    heads = EEG2FaceHeads(content_dim=8, hidden_dim=8, drop_prob=0.5, seed=3)
    z_r, code = torch.randn(4000, 8), torch.softmax(torch.randn(4000, 5), -1)
    out, keep = heads(z_r, code, return_keep_mask=True)
    dropped = ~keep
    assert 0.47 < dropped.float().mean().item() < 0.53
    with torch.no_grad():
        torch.testing.assert_close(out[dropped], heads.content_only(z_r[dropped]))
        torch.testing.assert_close(out[keep], heads.with_code(z_r[keep], code[keep]))
    same_seed = EEG2FaceHeads(content_dim=8, hidden_dim=8, drop_prob=0.5, seed=3)
    other_seed = EEG2FaceHeads(content_dim=8, hidden_dim=8, drop_prob=0.5, seed=4)
    assert torch.equal(same_seed.sample_keep_mask(4000), keep)
    assert not torch.equal(other_seed.sample_keep_mask(4000), keep)
    heads.eval()
    out_eval, keep_eval = heads(z_r, code, return_keep_mask=True)
    assert keep_eval.all()
    torch.testing.assert_close(out_eval, heads.with_code(z_r, code))


def test_inference_modes():
    model = small_model().eval()
    x = eeg(3)
    with torch.no_grad():
        content = model.content_only(x)
        enhanced = model.emotion_enhanced(x)
        anger, happy = model.modulate(x, "Anger"), model.modulate(x, EMOTIONS.index("Happiness"))
        assert content.shape == enhanced.shape == anger.shape == (3, 53)
        assert not torch.allclose(anger, happy, atol=1e-5)
        assert not torch.allclose(content, enhanced, atol=1e-5)
        # content-only ignores the emotion pathway entirely
        for p in model.emotion_encoder.parameters():
            p.add_(torch.randn_like(p))
        for p in model.heads.g.parameters():
            p.add_(torch.randn_like(p))
        torch.testing.assert_close(model.content_only(x), content)
        assert not torch.allclose(model.emotion_enhanced(x), enhanced, atol=1e-5)
        anger, happy = model.modulate(x, "Anger"), model.modulate(x, "Happiness")
        torch.testing.assert_close(model.interpolate(x, "Anger", "Happiness", 0.0), anger)
        torch.testing.assert_close(model.interpolate(x, "Anger", "Happiness", 1.0), happy)
        middle = model.interpolate(x, "Anger", "Happiness", 0.5)
        assert not torch.allclose(middle, anger, atol=1e-5) and not torch.allclose(middle, happy, atol=1e-5)
        sweep = model.interpolate(x, "Neutral", "Sadness", [0.0, 0.5, 1.0])
        assert sweep.shape == (3, 3, 53)
        torch.testing.assert_close(sweep[2], model.modulate(x, "Sadness"))
        z_r, predicted = model.encode(x)
        blended = torch.softmax(predicted.code + emotion_code("Calmness", 3), -1)
        torch.testing.assert_close(model.blend(x, "Calmness"), model.heads.with_code(z_r, blended))


def test_emotion_codes_and_their_errors():
    code = emotion_code("happiness", 2)
    assert code.shape == (2, 5) and code[:, EMOTIONS.index("Happiness")].eq(1).all() and code.sum() == 2
    torch.testing.assert_close(emotion_code(torch.full((5,), 0.2), 4), torch.full((4, 5), 0.2))
    mixed = interpolate_codes(emotion_code(0, 1), emotion_code(2, 1), 0.25)
    torch.testing.assert_close(mixed, torch.tensor([[0.75, 0.0, 0.25, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="unknown"):
        emotion_code("Surprise", 1)
    with pytest.raises(ValueError, match=r"index in \[0, 5\)"):
        emotion_code(5, 1)
    with pytest.raises(ValueError, match="shape"):
        emotion_code(torch.zeros(3), 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate_codes(code, code, 1.5)
    with pytest.raises(ValueError, match="drop_prob"):
        EEG2FaceHeads(drop_prob=1.0)


def test_freeze_keeps_encoders_in_eval_and_without_gradients():
    model = small_model()
    model.freeze_encoders()
    model.train()
    assert not model.content_encoder.training and not model.emotion_encoder.training
    assert model.heads.training
    assert all(not p.requires_grad for p in model.content_encoder.parameters())
    assert all(p.requires_grad for p in model.heads.parameters())
    copy.deepcopy(model)  # the seeded drop generator survives copying


def one_step_reduces(loss_fn, params, lr: float = 1e-2) -> tuple[float, float]:
    """One plain gradient-descent step (torch.optim's first step costs seconds of lazy imports)."""
    params = [p for p in params if p.requires_grad]
    before = loss_fn()
    grads = torch.autograd.grad(before, params)
    assert any(g.abs().sum() > 0 for g in grads), "no gradient reaches the parameters"
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(lr * g)
        after = loss_fn()
    return before.item(), after.item()


def test_one_optimisation_step_reduces_stage_losses():
    model = small_model().eval()  # eval: no dropout / no code drop, so the loss is one function
    x, z_v = eeg(8, seed=1), torch.randn(8, 53, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(8) % 5
    before, after = one_step_reduces(lambda: F.cross_entropy(model.emotion_encoder(x).logits, labels),
                                     model.emotion_encoder.parameters())
    assert after < before
    model.freeze_encoders()
    before, after = one_step_reduces(lambda: F.mse_loss(model(x), z_v), model.heads.parameters())
    assert after < before


def test_one_step_reduces_info_nce_when_losses_exist():
    from affectlab import losses

    model = small_model().eval()
    x, z_v = eeg(8, seed=1), torch.randn(8, 53, generator=torch.Generator().manual_seed(2))
    encoder = model.content_encoder
    before, after = one_step_reduces(
        lambda: losses.info_nce_loss(encoder.project_to_vision(encoder(x)), z_v, temperature=0.1),
        encoder.parameters(),
    )
    assert after < before


def test_braindecode_time_pooling_is_rate_scaled_so_the_conformer_sees_several_tokens():
    assert rate_scaled_time_kwargs(250.0) == {"filter_time_length": 25, "pool_time_length": 75, "pool_time_stride": 15}
    scaled = rate_scaled_time_kwargs(100.0)
    assert scaled == {"filter_time_length": 10, "pool_time_length": 30, "pool_time_stride": 6}
    assert time_tokens(100, 25, 75, 15) == 1  # braindecode's defaults on a 1 s window at 100 Hz
    assert time_tokens(100, **scaled) == 11
    conformer = build_content_encoder("eegtransformer", n_times=100, sfreq=100.0)
    # the transformer of EEGConformer attends over the patch embedding's tokens: (batch, 11, 40)
    assert conformer.backbone.patch_embedding(torch.randn(2, 1, 30, 100)).shape == (2, 11, 40)
    shallow = build_content_encoder("shallowconvnet", n_times=100, sfreq=100.0)
    assert shallow.n_backbone_features == 40 * 11
    explicit = build_content_encoder("shallowconvnet", n_times=100, sfreq=100.0, pool_time_length=75,
                                     pool_time_stride=15, filter_time_length=25)
    assert explicit.n_backbone_features == 40
    assert conformer(eeg(2)[..., :100]).shape == (2, 128)
    with pytest.raises(ValueError, match="sfreq"):
        rate_scaled_time_kwargs(0.0)
