"""POSTER++ / POSTER-Var (chapter 04): shapes through every stage, the VICH head, the ablation flags,
the frozen landmark branch. Tiny widths keep every test fast; one test builds the paper-size network."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from affectlab.config import ConfigError, config_hash
from affectlab.models.ir50 import IR50, ImprovedResidualUnit
from affectlab.models.mobilefacenet import MobileFaceNet
from affectlab.models.poster import (
    ABLATION_ROWS,
    LandmarkQueryCrossAttention,
    PosterConfig,
    PosterModel,
    VICHead,
    ablation_configs,
    gaussian_kl_to_standard_normal,
    relative_position_index,
    vich_loss,
)

TINY = PosterConfig(width=0.125, depth=0.1)  # channels 8/16/32, token width 96, one unit per stage


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These small tensors run fastest on one thread (the shared 2-core machine); restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _images(batch: int = 2, size: int = 112, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _model(config: PosterConfig, seed: int = 0) -> PosterModel:
    torch.manual_seed(seed)
    return PosterModel(config)


# ---- shapes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [224, 112])
def test_every_stage_has_the_poster_pp_shapes(size: int) -> None:
    model = _model(TINY).eval()
    c1, c2, c3 = TINY.level_channels
    d = TINY.embed_dim
    with torch.no_grad():
        st = model.forward_stages(_images(2, size))
    for key in ("landmark_maps", "image_maps", "fused_maps"):
        assert [tuple(t.shape) for t in st[key]] == [(2, c1, 28, 28), (2, c2, 14, 14), (2, c3, 7, 7)], key
    assert [tuple(t.shape) for t in st["level_tokens"]] == [(2, 49, d)] * 3
    assert st["tokens"].shape == (2, 147, d)
    assert st["sequence"].shape == (2, 148, d)  # 49 + 49 + 49 + CLS
    assert torch.equal(st["cls"], st["sequence"][:, 0])
    assert st["features"].shape == (2, d)
    assert st["logits"].shape == st["mu"].shape == st["logvar"].shape == (2, TINY.num_classes)


def test_224_and_112_inputs_give_the_same_pyramid() -> None:
    """Both branches resize to 112 px by nearest neighbour, so a 2x-upsampled 112 image is identical."""
    model = _model(TINY).eval()
    small = _images(1, 112)
    big = small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    with torch.no_grad():
        assert torch.allclose(model(small)["logits"], model(big)["logits"], atol=1e-5)


def test_paper_size_network() -> None:
    config = PosterConfig(num_classes=8)
    assert config.level_channels == (64, 128, 256) and config.embed_dim == 768 and config.num_tokens == 147
    model = PosterModel(config).eval()
    assert model.image_backbone.units == (3, 4, 14)
    assert model.level_embedding.shape == (3, 1, 768) and not model.level_embedding.any()
    assert model.head.fc_mu.weight.shape == model.head.fc_logvar.weight.shape == (8, 768)
    assert [lvl.attention.num_heads for lvl in model.cross_attention] == [2, 4, 8]
    assert [lvl.drop_path.p for lvl in model.cross_attention] == [0.0, 0.125, 0.25]
    assert all(torch.all(lvl.gamma1 == 1e-5) for lvl in model.cross_attention)
    assert len(model.transformer.blocks) == 2 and model.transformer.blocks[0].attn.num_heads == 8
    assert model.transformer.blocks[0].mlp.fc1.out_features == 4 * 768
    n_params = sum(p.numel() for p in model.parameters())
    assert 43.0e6 < n_params < 44.5e6  # POSTER++ reports 43.7 M
    with torch.no_grad():
        st = model.forward_stages(_images(1, 112))
    assert [tuple(t.shape[1:]) for t in st["fused_maps"]] == [(64, 28, 28), (128, 14, 14), (256, 7, 7)]
    assert st["sequence"].shape == (1, 148, 768) and st["logits"].shape == (1, 8)


def test_ir50_pyramid_and_units() -> None:
    net = IR50(width=0.125, depth=0.25).eval()
    x1, x2, x3 = net(_images(1, 224))
    assert (x1.shape[1:], x2.shape[1:], x3.shape[1:]) == ((8, 56, 56), (16, 28, 28), (32, 14, 14))
    assert net.units == (1, 1, 4)
    assert sum(isinstance(m, ImprovedResidualUnit) for m in net.modules()) == 6
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.randn(1, 1, 112, 112))


def test_reduced_config_is_the_stated_cpu_variant() -> None:
    reduced = PosterConfig.poster_pp().reduced()
    assert (reduced.width, reduced.depth) == (0.25, 0.25)
    assert reduced.level_channels == (16, 32, 64) and reduced.embed_dim == 192
    assert not reduced.vich and reduced.se_gate  # flags kept
    assert IR50(reduced.width, reduced.depth).units == (1, 1, 4)
    assert config_hash(reduced) != config_hash(PosterConfig.poster_pp())


# ---- cross-attention (Eq. 1-2) -------------------------------------------------------------------
def test_relative_position_index_encodes_offsets() -> None:
    idx = relative_position_index(3)
    assert idx.shape == (9, 9) and idx.min() == 0 and idx.max() == 24
    assert torch.all(idx.diagonal() == 12)  # zero offset is the table centre
    assert idx[0, 1] == idx[3, 4] == idx[4, 5]  # same (dy, dx) -> same bias row


def test_landmark_queries_drive_the_cross_attention() -> None:
    torch.manual_seed(0)
    attn = LandmarkQueryCrossAttention(dim=8, num_heads=2, map_size=4)
    torch.nn.init.zeros_(attn.relative_position_bias_table)
    image = torch.randn(2, 16, 8)
    # zero queries and zero bias -> uniform attention -> proj(mean of V)
    out = attn(image, torch.zeros(2, 16, 8))
    v = attn.kv(image)[..., 8:]
    expected = attn.proj(v.mean(dim=1, keepdim=True)).expand(-1, 16, -1)
    assert torch.allclose(out, expected, atol=1e-6)
    assert not torch.allclose(attn(image, torch.randn(2, 16, 8)), out)
    with pytest.raises(ValueError, match="map 4"):
        attn(image, torch.zeros(2, 9, 8))


# ---- VICH (Eq. 5) --------------------------------------------------------------------------------
def test_vich_samples_in_training_and_returns_mu_in_evaluation() -> None:
    torch.manual_seed(0)
    head = VICHead(16, 7)
    x = torch.randn(4, 16)
    head.train()
    a, b = head(x), head(x)
    assert a.shape == (4, 7) and not torch.allclose(a, b)
    head.eval()
    assert torch.equal(head(x), head.fc_mu(x))
    mu, logvar = head.distribution(x)
    assert torch.equal(mu, head.fc_mu(x)) and torch.equal(logvar, head.fc_logvar(x))


def test_vich_gradients_reach_fc_logvar_only_when_sampling() -> None:
    torch.manual_seed(0)
    head = VICHead(16, 7).train()
    x, y = torch.randn(8, 16), torch.randint(0, 7, (8,))
    F.cross_entropy(head(x), y).backward()
    assert head.fc_logvar.weight.grad is not None and head.fc_logvar.weight.grad.abs().sum() > 0
    head.zero_grad(set_to_none=True)
    head.eval()
    F.cross_entropy(head(x), y).backward()
    assert head.fc_logvar.weight.grad is None  # mu only in evaluation


def test_vich_monte_carlo_samples_have_the_learned_spread() -> None:
    torch.manual_seed(0)
    head = VICHead(5, 3).eval()
    with torch.no_grad():
        head.fc_logvar.weight.zero_()
        head.fc_logvar.bias.fill_(torch.log(torch.tensor(4.0)))  # std 2
    x = torch.randn(2, 5)
    samples = head.sample_logits(x, 4000)
    assert samples.shape == (4000, 2, 3)
    assert torch.allclose(samples.mean(0), head.fc_mu(x), atol=0.15)
    assert torch.allclose(samples.std(0), torch.full((2, 3), 2.0), rtol=0.06)
    with pytest.raises(ValueError, match="n_samples"):
        head.sample_logits(x, 0)


def test_model_vich_output_is_a_sample_around_mu_in_training() -> None:
    config = dataclasses.replace(TINY, cross_attention_drop_path=(0.0, 0.0, 0.0))
    model = _model(config).train()
    x = _images(2)
    a, b = model(x), model(x)
    assert set(a) == {"logits", "features", "mu", "logvar"}
    assert torch.allclose(a["features"], b["features"]) and torch.allclose(a["mu"], b["mu"])
    assert not torch.allclose(a["logits"], b["logits"])
    eps = (a["logits"] - a["mu"]) / torch.exp(0.5 * a["logvar"])
    assert torch.all(eps.abs() < 6)
    a["logits"].sum().backward()
    assert model.head.fc_logvar.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert torch.equal(out["logits"], out["mu"])
    assert torch.allclose(out["logits"], model.head.fc_mu(out["features"]))
    assert model.sample_logits(x, 5).shape == (5, 2, config.num_classes)


# ---- ablation flags ------------------------------------------------------------------------------
def _names(config: PosterConfig) -> set[str]:
    return set(_model(config).state_dict())


def test_flags_add_and_remove_only_their_parameters() -> None:
    full = _names(TINY)
    expected_only = {
        "level_embedding": {"level_embedding"},
        "token_norm": {"token_norm.weight", "token_norm.bias"},
        "se_gate": {"se_gate.fc1.weight", "se_gate.fc1.bias", "se_gate.fc2.weight", "se_gate.fc2.bias"},
        "vich": {"head.fc_mu.weight", "head.fc_mu.bias", "head.fc_logvar.weight", "head.fc_logvar.bias"},
    }
    for flag, names in expected_only.items():
        without = _names(dataclasses.replace(TINY, **{flag: False}))
        assert full - without == names, flag
        assert without - full == ({"head.weight", "head.bias"} if flag == "vich" else set()), flag
    assert _names(dataclasses.replace(TINY, nonlinear_embedding=False)) == full  # GELU has no weights


def test_level_embedding_is_zero_initialised_and_only_adds_a_per_level_offset() -> None:
    with_emb = _model(TINY).eval()
    without = PosterModel(dataclasses.replace(TINY, level_embedding=False)).eval()
    missing = without.load_state_dict(with_emb.state_dict(), strict=False)
    assert missing.unexpected_keys == ["level_embedding"]
    x = _images(2)
    with torch.no_grad():
        assert torch.equal(with_emb(x)["logits"], without(x)["logits"])  # zero init: same network
        with_emb.level_embedding.normal_()
        st_with, st_without = with_emb.forward_stages(x), without.forward_stages(x)
    for level in range(3):
        assert torch.allclose(
            st_with["level_tokens"][level] - st_without["level_tokens"][level],
            with_emb.level_embedding[level].expand_as(st_with["level_tokens"][level]),
            atol=1e-5,
        )
    assert not torch.allclose(st_with["logits"], st_without["logits"])


def test_nonlinear_embedding_switches_only_the_gelu() -> None:
    gelu = _model(TINY).eval()
    linear = PosterModel(dataclasses.replace(TINY, nonlinear_embedding=False)).eval()
    linear.load_state_dict(gelu.state_dict())
    x = _images(2)
    with torch.no_grad():
        sg, sl = gelu.forward_stages(x), linear.forward_stages(x)
        assert torch.equal(sg["fused_maps"][2], sl["fused_maps"][2])  # identical up to the embedding
        raw = linear.token_embeddings[2](sl["fused_maps"][2]).flatten(2).transpose(1, 2)
        assert torch.allclose(gelu.token_embeddings[2](sg["fused_maps"][2]).flatten(2).transpose(1, 2), F.gelu(raw))
    assert not torch.allclose(sg["logits"], sl["logits"])


def test_se_gate_off_feeds_the_raw_cls_token() -> None:
    gated = _model(TINY).eval()
    plain = PosterModel(dataclasses.replace(TINY, se_gate=False)).eval()
    plain.load_state_dict(gated.state_dict(), strict=False)
    x = _images(2)
    with torch.no_grad():
        sg, sp = gated.forward_stages(x), plain.forward_stages(x)
    assert torch.equal(sp["features"], sp["cls"]) and torch.equal(sg["cls"], sp["cls"])
    assert torch.allclose(sg["features"], gated.se_gate(sg["cls"]))
    assert not torch.allclose(sg["features"], sg["cls"])


def test_vich_off_is_a_linear_head_equal_to_fc_mu_in_evaluation() -> None:
    var = _model(TINY).eval()
    lin = PosterModel(dataclasses.replace(TINY, vich=False)).eval()
    state = {k: v for k, v in var.state_dict().items() if not k.startswith("head.")}
    state.update({"head.weight": var.head.fc_mu.weight, "head.bias": var.head.fc_mu.bias})
    lin.load_state_dict(state)
    x = _images(2)
    with torch.no_grad():
        out_var, out_lin = var(x), lin(x)
    assert set(out_lin) == {"logits", "features"}
    assert torch.allclose(out_var["logits"], out_lin["logits"], atol=1e-6)
    with pytest.raises(ValueError, match="vich=False"):
        lin.sample_logits(x, 3)


def test_ablation_rows_differ_from_the_full_model_only_in_their_flags() -> None:
    rows = ablation_configs(TINY)
    assert tuple(rows) == ABLATION_ROWS
    full = dataclasses.asdict(rows["full"])
    expected = {
        "full": set(),
        "w/o layer emb.": {"level_embedding"},
        "w/o VI": {"vich"},
        "baseline": {"level_embedding", "nonlinear_embedding", "token_norm", "vich"},
    }
    for name, config in rows.items():
        changed = {k for k, v in dataclasses.asdict(config).items() if v != full[k]}
        assert changed == expected[name], name
        assert (config.width, config.depth) == (TINY.width, TINY.depth)
    assert rows["baseline"] == PosterConfig.poster_pp(width=TINY.width, depth=TINY.depth)


def test_rows_share_the_initial_value_of_every_parameter_they_share() -> None:
    """The flags change only what they name, initial weights included: at one seed, every parameter
    two ablation rows both have is equal, and fc_mu of the VICH head starts as the linear head."""
    models = {row: _model(config, seed=3) for row, config in ablation_configs(TINY).items()}
    states = {row: m.state_dict() for row, m in models.items()}
    compared = 0
    for a in ABLATION_ROWS:
        for b in ABLATION_ROWS:
            if a >= b:
                continue
            shared = set(states[a]) & set(states[b])
            assert len(shared) > 100
            for name in shared:
                assert torch.equal(states[a][name], states[b][name]), (a, b, name)
                compared += 1
    assert compared > 600
    assert torch.equal(states["full"]["head.fc_mu.weight"], states["w/o VI"]["head.weight"])
    assert not torch.equal(states["full"]["head.fc_mu.weight"], states["full"]["head.fc_logvar.weight"])
    other_seed = _model(ablation_configs(TINY)["full"], seed=4).state_dict()
    assert not torch.equal(other_seed["transformer.blocks.0.attn.qkv.weight"], states["full"]["transformer.blocks.0.attn.qkv.weight"])


def test_token_norm_switches_only_the_layernorm_over_the_tokens() -> None:
    on = _model(dataclasses.replace(TINY, token_norm=True), seed=5).eval()
    off = PosterModel(dataclasses.replace(TINY, token_norm=False)).eval()
    missing, unexpected = off.load_state_dict(on.state_dict(), strict=False)
    assert missing == [] and set(unexpected) == {"token_norm.weight", "token_norm.bias"}
    with torch.no_grad():
        a, b = on.forward_stages(_images()), off.forward_stages(_images())
    for x, y in zip(a["level_tokens"], b["level_tokens"]):
        assert torch.equal(x, y)  # everything before the norm is the same computation
    raw = torch.cat(b["level_tokens"], dim=1)
    assert torch.equal(b["tokens"], raw)  # off: the tokens enter the ViT unnormalised
    assert torch.allclose(a["tokens"], F.layer_norm(raw, raw.shape[-1:]), atol=1e-5)  # on: LayerNorm per token
    assert not torch.allclose(a["logits"], b["logits"])


def test_vich_head_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="in_features"):
        VICHead(0, 3)
    with pytest.raises(ValueError, match="num_classes"):
        VICHead(4, 1)


# ---- landmark branch -----------------------------------------------------------------------------
def test_frozen_landmark_branch_gets_no_gradient_and_keeps_its_statistics() -> None:
    model = _model(TINY).train()
    assert model.landmark_branch_frozen and not model.landmark_branch.training
    stats = model.landmark_branch.conv1.bn.running_mean.clone()
    model(_images(2))["logits"].sum().backward()
    assert all(p.grad is None for p in model.landmark_branch.parameters())
    assert torch.equal(model.landmark_branch.conv1.bn.running_mean, stats)
    assert model.landmark_out_conv.weight.grad is not None  # the 512 -> 256 conv still trains
    assert model.image_backbone.stem[0].weight.grad.abs().sum() > 0
    model.eval().train()
    assert not model.landmark_branch.training
    model.zero_grad(set_to_none=True)
    model.freeze_landmark_branch(False)
    assert model.landmark_branch.training
    model(_images(2))["logits"].sum().backward()
    assert model.landmark_branch.conv1.conv.weight.grad is not None


def test_frozen_image_backbone_gets_no_gradient_and_keeps_its_statistics() -> None:
    model = _model(TINY).freeze_image_backbone(True).train()
    assert model.image_backbone_frozen and not model.image_backbone.training
    stats = model.image_backbone.stem[1].running_mean.clone()
    model(_images(2))["logits"].sum().backward()
    assert all(p.grad is None for p in model.image_backbone.parameters())
    assert torch.equal(model.image_backbone.stem[1].running_mean, stats)
    assert model.level_convs[0].weight.grad is not None  # everything after the trunk still trains
    assert model.transformer.blocks[0].attn.qkv.weight.grad is not None
    model.eval().train()
    assert not model.image_backbone.training
    model.zero_grad(set_to_none=True)
    model.freeze_image_backbone(False)
    assert model.image_backbone.training
    model(_images(2))["logits"].sum().backward()
    assert model.image_backbone.stem[0].weight.grad.abs().sum() > 0


def test_mobilefacenet_regresses_68_landmarks_and_loads_into_poster() -> None:
    torch.manual_seed(0)
    net = TINY.make_landmark_branch()
    x = _images(4)
    assert net(x).shape == (4, 136) and net.predict_landmarks(x).shape == (4, 68, 2)
    level1, level2, level3 = net.feature_pyramid(x)
    assert (level1.shape[2:], level2.shape[2:], level3.shape[2:]) == ((28, 28), (14, 14), (7, 7))
    with pytest.raises(ValueError, match="112"):
        net(_images(1, 224))
    target = torch.rand(4, 136)
    losses = []
    for _ in range(8):  # plain gradient descent (torch.optim's first use imports dynamo: ~10 s)
        net.zero_grad()
        loss = F.mse_loss(net(x), target)
        loss.backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= 0.3 * p.grad
        losses.append(loss.item())
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < 0.85 * losses[0]
    model = PosterModel(TINY).load_landmark_branch(net)
    for (k, a), b in zip(net.state_dict().items(), model.landmark_branch.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="width"):
        model.load_landmark_branch(MobileFaceNet(width=0.25, depth=0.1))


def test_image_backbone_loads_a_matching_trunk_and_names_a_mismatch() -> None:
    torch.manual_seed(0)
    source = PosterModel(TINY)
    torch.manual_seed(1)
    model = PosterModel(TINY)
    first = "stem.0.weight"
    assert not torch.equal(source.image_backbone.state_dict()[first], model.image_backbone.state_dict()[first])
    model.load_image_backbone(source.image_backbone.state_dict())
    for k, v in source.image_backbone.state_dict().items():
        assert torch.equal(v, model.image_backbone.state_dict()[k]), k
    with pytest.raises(ValueError, match="image-backbone weights do not fit"):
        model.load_image_backbone({"not_a_trunk_key": torch.zeros(1)})


# ---- configuration, input and loss errors ------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_classes": 1}, "num_classes"),
        ({"width": 0}, "width"),
        ({"vit_heads": 5}, "vit_heads"),
        ({"cross_attention_heads": (3, 4, 8)}, "cross_attention_heads"),
        ({"cross_attention_drop_path": (0.0, 1.0, 0.0)}, "drop-path"),
    ],
)
def test_bad_config_names_the_parameter(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        PosterConfig(**kwargs)


def test_bad_images_raise_a_clear_error() -> None:
    model = _model(TINY)
    with pytest.raises(ValueError, match="greyscale"):
        model(torch.randn(1, 1, 112, 112))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(1, 3, 112, 112, dtype=torch.uint8))


def test_vich_loss_soft_targets_and_optional_kl() -> None:
    logits = torch.randn(4, 8)
    hard = torch.tensor([0, 3, 7, 2])
    out = {"logits": logits, "mu": logits, "logvar": torch.zeros(4, 8)}
    assert torch.allclose(vich_loss(out, hard), vich_loss(out, F.one_hot(hard, 8).float()))
    votes = torch.tensor([[6, 4, 0, 0, 0, 0, 0, 0]] * 4, dtype=torch.float32) / 10
    assert torch.allclose(vich_loss(out, votes), -(votes * logits.log_softmax(-1)).sum(-1).mean())
    kl = gaussian_kl_to_standard_normal(out["mu"], out["logvar"])
    assert torch.allclose(kl, 0.5 * logits.pow(2).sum(-1).mean())
    assert gaussian_kl_to_standard_normal(torch.zeros(2, 3), torch.zeros(2, 3)) == 0
    assert torch.allclose(vich_loss(out, hard, kl_weight=0.1), vich_loss(out, hard) + 0.1 * kl)
    with pytest.raises(ValueError, match="vich=True"):
        vich_loss({"logits": logits}, hard, kl_weight=0.1)
    with pytest.raises(ValueError, match="target"):
        vich_loss(out, torch.rand(4, 7))


def test_vich_loss_soft_targets_use_the_shared_soft_target_ce() -> None:
    """One soft-target cross-entropy in the library (affectlab.losses); vich_loss delegates to it, so
    vote rows that do not sum to 1 (e.g. unknown / not-a-face votes left in a /10 denominator) are
    refused with the shared check's message instead of silently down-weighting the row."""
    from affectlab.losses import soft_target_ce

    logits = torch.randn(3, 8, generator=torch.Generator().manual_seed(2))
    votes = torch.softmax(torch.randn(3, 8, generator=torch.Generator().manual_seed(3)), dim=1)
    assert torch.equal(vich_loss({"logits": logits}, votes), soft_target_ce(logits, votes))
    with pytest.raises(ValueError, match="sum to 1"):
        vich_loss({"logits": logits}, votes * 0.8)


def test_56_px_trunk_gives_the_28_14_7_levels_directly() -> None:
    """The CPU path: the IR-50 trunk at 56 px (its own width), stride-1 level convs projecting to the
    level channels; the six branch maps split the forward pass without changing it."""
    config = PosterConfig.poster_var(num_classes=8, width=0.125, depth=0.1, trunk_width=0.25, trunk_input_size=56)
    assert config.trunk_channels == (16, 32, 64) and config.level_channels == (8, 16, 32)
    torch.manual_seed(0)
    model = PosterModel(config).eval()
    assert [conv.stride for conv in model.level_convs] == [(1, 1)] * 3
    assert [(c.in_channels, c.out_channels) for c in model.level_convs] == [(16, 8), (32, 16), (64, 32)]
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        stages = model.forward_stages(x)
        image_pyramid, landmark_pyramid = model.pyramids(x)
        again = model.forward_from_pyramids(image_pyramid, landmark_pyramid)
    assert [tuple(t.shape[-2:]) for t in image_pyramid] == [(28, 28), (14, 14), (7, 7)]
    assert [tuple(t.shape[-2:]) for t in stages["image_maps"]] == [(28, 28), (14, 14), (7, 7)]
    assert torch.equal(stages["logits"], again["logits"]) and stages["logits"].shape == (2, 8)
    trunk = config.make_image_trunk()
    assert (trunk.input_size, trunk.channels) == (56, (16, 32, 64))
    assert [tuple(t.shape) for t in IR50(width=0.125, depth=0.1, input_size=56)(torch.randn(1, 3, 48, 48))] == \
        [(1, 8, 28, 28), (1, 16, 14, 14), (1, 32, 7, 7)]
    model.load_image_backbone(trunk)  # a trunk of the config's trunk size loads
    with pytest.raises(ValueError, match="make_image_trunk"):
        model.load_image_backbone(IR50(width=0.125, depth=0.1, input_size=56))
    with pytest.raises(ConfigError, match="trunk_input_size"):
        PosterConfig(trunk_input_size=64)
    with pytest.raises(ConfigError, match="trunk_width"):
        PosterConfig(trunk_width=0)
    with pytest.raises(ValueError, match="input_size"):
        IR50(input_size=64)
    default = PosterModel(PosterConfig.poster_var(num_classes=8, width=0.125, depth=0.1))
    assert [conv.stride for conv in default.level_convs] == [(2, 2)] * 3  # the paper's 112-px path is unchanged
