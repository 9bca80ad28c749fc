"""POSTER++ and POSTER-Var (Lv, Zhang & Tsoi): one model class, the additions switched by flags.

Paper sections implemented (the numbers are the paper's equations):

- Baseline (POSTER++, Mao et al. 2025): an IR-50 image pyramid (:mod:`affectlab.models.ir50`) and a
  MobileFaceNet landmark pyramid (:mod:`affectlab.models.mobilefacenet`) at three levels, 28/14/7 px.
  At each level the image features give keys and values and the landmark features, reshaped without
  a projection, are the queries of a global-window cross-attention (Eq. 1-2; windows equal the whole
  map, 2/4/8 heads, relative position bias, then a layer-scaled residual MLP, drop-path 0/0.125/0.25,
  layer scale 1e-5). Convolutions embed each level to 49 tokens of width 768 (147 in all); a CLS
  token is prepended and a 2-layer ViT (8 heads, MLP ratio 4) runs over the 148 tokens; an SE gate
  recalibrates the CLS feature (Eq. 4) and a linear layer classifies it.
- "Attention-based multi-stage feature representation" (POSTER-Var): a GELU after every token
  embedding convolution (``nonlinear_embedding``), learnable zero-initialised level embeddings
  3 x 1 x 768 added to each level's tokens (``level_embedding``, Eq. 3) and a LayerNorm over the 147
  tokens (``token_norm``).
- "VI-based classifier" (Eq. 5): :class:`VICHead`, ``fc_mu`` and ``fc_logvar`` on the SE-gated CLS
  feature; in training the logits are one reparameterised sample mu + eps * exp(logvar / 2), in
  evaluation they are mu (``vich``).

Facts taken from the public code (lg2578/poster-var, Talented-Q/POSTER_V2) where the paper is
silent or differs: the POSTER++ SE gate is already in the baseline (768 -> 768 -> 768, no reduction),
so ``se_gate`` is on in every row of the ablation; the published training loss is plain
cross-entropy (soft FERPlus targets: votes / 10) with no KL term, although Table 1 says "CE + KL"
(:func:`vich_loss` has ``kl_weight=0`` by default and offers the KL term for the comparison).

``width`` and ``depth`` scale the CNN channels (and the token width 768) and the CNN block counts;
the defaults are the paper's network. ``trunk_width`` / ``trunk_depth`` / ``trunk_input_size`` size
the IR-50 trunk on its own (default: as the rest, 112 px); at 56 px its pyramid is already
28/14/7, so the level convolutions keep stride 1 (and project the trunk's channels to the level
channels). :meth:`PosterModel.pyramids` and :meth:`PosterModel.forward_from_pyramids` split the
forward pass at the two frozen branches, so their outputs can be computed once and cached. :meth:`PosterConfig.reduced` is the CPU variant of the quick
profile (width 0.25, depth 0.25: channels 16/32/64, token width 192, IR units 1/1/4).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from affectlab.config import ConfigError
from affectlab.losses import soft_target_ce
from affectlab.models.ir50 import IR50, IR50_CHANNELS, IR50_INPUT_SIZE, IR50_INPUT_SIZES, scale_channels
from affectlab.models.mobilefacenet import MOBILEFACENET_INPUT_SIZE, MobileFaceNet

LEVEL_MAP_SIZES: tuple[int, int, int] = (28, 14, 7)
TOKENS_PER_LEVEL = 49
EMBED_DIM = 768
REDUCED_SCALE: dict[str, float] = {"width": 0.25, "depth": 0.25}
ABLATION_ROWS: tuple[str, ...] = ("full", "w/o layer emb.", "w/o VI", "baseline")


@dataclasses.dataclass(frozen=True)
class PosterConfig:
    """Architecture of POSTER++ / POSTER-Var. Defaults: full POSTER-Var at the paper's size.

    Attributes:
        num_classes: classes of the head (7 RAF-DB/AffectNet-7, 8 FERPlus/AffectNet-8).
        level_embedding: add the learnable 3 x 1 x D level embeddings (Eq. 3).
        nonlinear_embedding: GELU after each token-embedding convolution.
        token_norm: LayerNorm over the 147 fused tokens before the ViT.
        se_gate: SE recalibration of the CLS feature (Eq. 4; present in POSTER++ too).
        vich: variational head (Eq. 5) instead of a linear classifier.
        width, depth: multipliers of CNN channels (and the token width) and of CNN block counts.
        vit_depth, vit_heads, mlp_ratio, vit_drop_path: the fusion ViT (2, 8, 4.0, 0.0).
        cross_attention_heads: heads at the 28/14/7 levels (2, 4, 8).
        cross_attention_drop_path: drop-path of the three level MLPs (0, 0.125, 0.25).
        layer_scale: initial layer-scale of the cross-attention residuals (1e-5).
        freeze_landmarks: landmark branch frozen (no gradient, BatchNorm in eval) at construction.
        trunk_width, trunk_depth: the IR-50 trunk's own multipliers (None = ``width`` / ``depth``).
        trunk_input_size: the trunk's input side, 112 (POSTER++) or 56 (level convs then stride 1).
    """

    num_classes: int = 7
    level_embedding: bool = True
    nonlinear_embedding: bool = True
    token_norm: bool = True
    se_gate: bool = True
    vich: bool = True
    width: float = 1.0
    depth: float = 1.0
    vit_depth: int = 2
    vit_heads: int = 8
    mlp_ratio: float = 4.0
    vit_drop_path: float = 0.0
    cross_attention_heads: tuple[int, int, int] = (2, 4, 8)
    cross_attention_drop_path: tuple[float, float, float] = (0.0, 0.125, 0.25)
    layer_scale: float = 1e-5
    freeze_landmarks: bool = True
    trunk_width: float | None = None
    trunk_depth: float | None = None
    trunk_input_size: int = IR50_INPUT_SIZE

    def __post_init__(self) -> None:
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ConfigError(f"PosterConfig.num_classes must be an int >= 2; got {self.num_classes!r}")
        for name in ("width", "depth", "mlp_ratio", "layer_scale"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"PosterConfig.{name} must be a number > 0; got {value!r}")
        for name in ("trunk_width", "trunk_depth"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
                raise ConfigError(f"PosterConfig.{name} must be None or a number > 0; got {value!r}")
        if self.trunk_input_size not in IR50_INPUT_SIZES:
            raise ConfigError(f"PosterConfig.trunk_input_size must be one of {IR50_INPUT_SIZES}; "
                              f"got {self.trunk_input_size!r}")
        for name in ("vit_depth", "vit_heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"PosterConfig.{name} must be an int >= 1; got {value!r}")
        for name in ("cross_attention_heads", "cross_attention_drop_path"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or len(value) != 3:
                raise ConfigError(f"PosterConfig.{name} must be 3 values (one per level); got {value!r}")
        rates = [self.vit_drop_path, *self.cross_attention_drop_path]
        if any(not 0.0 <= float(r) < 1.0 for r in rates):
            raise ConfigError(f"PosterConfig drop-path rates must be in [0, 1); got {rates}")
        for level, (channels, heads) in enumerate(zip(self.level_channels, self.cross_attention_heads), 1):
            if heads < 1 or channels % heads:
                raise ConfigError(
                    f"PosterConfig.cross_attention_heads[{level - 1}]={heads} must divide the level-{level} "
                    f"channel count {channels} (width={self.width})"
                )
        if self.embed_dim % self.vit_heads:
            raise ConfigError(
                f"PosterConfig.vit_heads={self.vit_heads} must divide the token width {self.embed_dim}"
            )

    @property
    def level_channels(self) -> tuple[int, int, int]:
        """Channels of the three pyramid levels (64/128/256 at width 1)."""
        return tuple(scale_channels(c, self.width) for c in IR50_CHANNELS)  # type: ignore[return-value]

    @property
    def trunk_scale(self) -> tuple[float, float]:
        """(width, depth) of the IR-50 trunk."""
        return (self.width if self.trunk_width is None else float(self.trunk_width),
                self.depth if self.trunk_depth is None else float(self.trunk_depth))

    @property
    def trunk_channels(self) -> tuple[int, int, int]:
        """Channels of the IR-50 trunk's three stages (the level convolutions' inputs)."""
        return tuple(scale_channels(c, self.trunk_scale[0]) for c in IR50_CHANNELS)  # type: ignore[return-value]

    def make_image_trunk(self) -> IR50:
        """A standalone IR-50 trunk of this config's trunk size, e.g. for pretraining."""
        width, depth = self.trunk_scale
        return IR50(width=width, depth=depth, input_size=self.trunk_input_size)

    @property
    def embed_dim(self) -> int:
        """Token width D (768 at width 1)."""
        return scale_channels(EMBED_DIM, self.width)

    @property
    def num_tokens(self) -> int:
        """Fused tokens entering the ViT, CLS excluded (49 + 49 + 49)."""
        return len(LEVEL_MAP_SIZES) * TOKENS_PER_LEVEL

    @classmethod
    def poster_pp(cls, num_classes: int = 7, **overrides: Any) -> "PosterConfig":
        """The POSTER++ baseline: no level embedding, no GELU, no token LayerNorm, linear head."""
        flags = dict(level_embedding=False, nonlinear_embedding=False, token_norm=False, se_gate=True, vich=False)
        return cls(num_classes=num_classes, **{**flags, **overrides})

    @classmethod
    def poster_var(cls, num_classes: int = 7, **overrides: Any) -> "PosterConfig":
        """Full POSTER-Var (every flag on)."""
        return cls(num_classes=num_classes, **overrides)

    def reduced(self) -> "PosterConfig":
        """The same flags at the CPU size of the quick profile (:data:`REDUCED_SCALE`)."""
        return dataclasses.replace(self, **REDUCED_SCALE)

    def make_landmark_branch(self) -> MobileFaceNet:
        """A standalone MobileFaceNet of this config's size, e.g. for landmark pretraining."""
        return MobileFaceNet(width=self.width, depth=self.depth)


def ablation_configs(config: PosterConfig | None = None) -> dict[str, PosterConfig]:
    """The four rows of Table 3 at the size (and other settings) of ``config``.

    ``full``: all flags; ``w/o layer emb.``: no level embedding; ``w/o VI``: linear head;
    ``baseline``: POSTER++ (no level embedding, no GELU, no token LayerNorm, linear head).
    """
    base = dataclasses.replace(
        config or PosterConfig(), level_embedding=True, nonlinear_embedding=True, token_norm=True, vich=True
    )
    return {
        "full": base,
        "w/o layer emb.": dataclasses.replace(base, level_embedding=False),
        "w/o VI": dataclasses.replace(base, vich=False),
        "baseline": dataclasses.replace(
            base, level_embedding=False, nonlinear_embedding=False, token_norm=False, vich=False
        ),
    }


class StochasticDepth(nn.Module):
    """Drop-path: zero a sample's residual branch with probability ``p`` in training, rescale the rest."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class FeedForward(nn.Module):
    """Linear -> GELU -> Linear (the transformer MLP)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def relative_position_index(size: int) -> torch.Tensor:
    """(size^2, size^2) index into a ((2 size - 1)^2)-row bias table (Swin / GC ViT convention)."""
    coords = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (size - 1)
    return rel[..., 0] * (2 * size - 1) + rel[..., 1]


class LandmarkQueryCrossAttention(nn.Module):
    """Eq. 1-2: global-window cross-attention (GC ViT) whose queries are landmark features.

    K and V are a learnable projection of the image tokens; Q is the landmark feature map reshaped
    into heads with no projection. The window is the whole ``map_size`` x ``map_size`` map, so there
    is one window per image, with a learnable relative position bias per head.
    """

    def __init__(self, dim: int, num_heads: int, map_size: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"LandmarkQueryCrossAttention: num_heads={num_heads} must divide dim={dim}")
        self.dim, self.num_heads, self.map_size = dim, num_heads, map_size
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * map_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(map_size), persistent=False)

    def position_bias(self) -> torch.Tensor:
        """(heads, N, N) additive attention bias."""
        n = self.map_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1)

    def forward(self, image_tokens: torch.Tensor, landmark_tokens: torch.Tensor) -> torch.Tensor:
        """image_tokens, landmark_tokens: (B, N, C) with N = map_size^2 -> (B, N, C)."""
        b, n, c = image_tokens.shape
        if landmark_tokens.shape != image_tokens.shape or n != self.map_size**2 or c != self.dim:
            raise ValueError(
                f"cross-attention at map {self.map_size}: image tokens {tuple(image_tokens.shape)} and landmark "
                f"tokens {tuple(landmark_tokens.shape)} must both be (B, {self.map_size ** 2}, {self.dim})"
            )
        head_dim = c // self.num_heads
        k, v = self.kv(image_tokens).view(b, n, 2, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        q = landmark_tokens.reshape(b, n, self.num_heads, head_dim).transpose(1, 2)
        # softmax(q k^T / sqrt(d) + bias) v, fused (the 784 x 784 scores of the 28-px level are never stored)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.position_bias().unsqueeze(0).to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class CrossAttentionLevel(nn.Module):
    """One pyramid level of POSTER++: LayerNorm, landmark cross-attention, layer-scaled MLP residual.

    As the public code: x = LN(image); x = x + dp(gamma1 * attn(x, landmarks));
    x = x + dp(gamma2 * MLP(LN(x))).
    """

    def __init__(self, dim: int, num_heads: int, map_size: int, mlp_ratio: float, drop_path: float,
                 layer_scale: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = LandmarkQueryCrossAttention(dim, num_heads, map_size)
        self.gamma1 = nn.Parameter(torch.full((dim,), float(layer_scale)))
        self.gamma2 = nn.Parameter(torch.full((dim,), float(layer_scale)))
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio))
        self.drop_path = StochasticDepth(drop_path)

    def forward(self, image_map: torch.Tensor, landmark_map: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) image and landmark maps -> fused (B, C, H, W)."""
        b, c, h, w = image_map.shape
        x = self.norm(image_map.permute(0, 2, 3, 1))
        attended = self.attention(x.reshape(b, h * w, c), landmark_map.permute(0, 2, 3, 1).reshape(b, h * w, c))
        x = x + self.drop_path(self.gamma1 * attended.view(b, h, w, c))
        x = x + self.drop_path(self.gamma2 * self.mlp(self.mlp_norm(x)))
        return x.permute(0, 3, 1, 2)


def _token_embedding(in_channels: int, embed_dim: int, level: int, nonlinear: bool) -> nn.Sequential:
    """Level -> 7 x 7 x D: two stride-2 3x3 convs (28 px), one (14 px), a 1x1 conv (7 px).

    With ``nonlinear`` a GELU follows every conv (POSTER-Var); otherwise an Identity keeps the
    parameter names of both variants equal.
    """
    act = nn.GELU if nonlinear else nn.Identity
    if level == 0:
        return nn.Sequential(
            nn.Conv2d(in_channels, embed_dim, 3, 2, 1), act(), nn.Conv2d(embed_dim, embed_dim, 3, 2, 1), act()
        )
    if level == 1:
        return nn.Sequential(nn.Conv2d(in_channels, embed_dim, 3, 2, 1), act())
    return nn.Sequential(nn.Conv2d(in_channels, embed_dim, 1), act())


class MultiHeadSelfAttention(nn.Module):
    """Standard ViT self-attention (qkv with bias, scaled dot product, output projection)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class TransformerBlock(nn.Module):
    """Pre-norm ViT block (LayerNorm eps 1e-6), drop-path on both residuals."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiHeadSelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio))
        self.drop_path = StochasticDepth(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PyramidTransformer(nn.Module):
    """The 2-layer ViT over [CLS; 147 tokens] with a learnable position embedding (148 x D)."""

    def __init__(self, num_tokens: int, dim: int, depth: int, num_heads: int, mlp_ratio: float,
                 drop_path: float) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens + 1, dim))
        rates = torch.linspace(0, drop_path, depth).tolist()
        self.blocks = nn.Sequential(*[TransformerBlock(dim, num_heads, mlp_ratio, r) for r in rates])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T + 1, D); index 0 is the CLS token."""
        if tokens.shape[1] + 1 != self.pos_embed.shape[1]:
            raise ValueError(f"PyramidTransformer expects {self.pos_embed.shape[1] - 1} tokens; got {tokens.shape[1]}")
        x = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1) + self.pos_embed
        return self.norm(self.blocks(x))


class SEGate(nn.Module):
    """Eq. 4: F_out = F * sigmoid(W2 ReLU(W1 F)), W1, W2 both D x D (the POSTER++ SE_block)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x))))


class VICHead(nn.Module):
    """Variational-inference classification head (Eq. 5): the logits are a Gaussian sample.

    mu = fc_mu(x), logvar = fc_logvar(x). ``forward`` returns one reparameterised sample
    mu + eps * exp(logvar / 2), eps ~ N(0, I), in training mode and mu in evaluation mode; there is
    no classifier after the sample (the paper removes the decoder and the final FC layer).
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        for name, value, least in (("in_features", in_features, 1), ("num_classes", num_classes, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"VICHead: {name} must be an int >= {least}; got {value!r}")
        self.fc_mu = nn.Linear(in_features, num_classes)
        self.fc_logvar = nn.Linear(in_features, num_classes)

    def distribution(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar), each (B, num_classes): the per-class Gaussians of Fig. 5."""
        x = x.flatten(1)
        return self.fc_mu(x), self.fc_logvar(x)

    @staticmethod
    def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, n_samples: int | None = None) -> torch.Tensor:
        """mu + eps * exp(logvar / 2); with ``n_samples`` a leading sample axis is added."""
        std = torch.exp(0.5 * logvar)
        if n_samples is None:
            return mu + torch.randn_like(std) * std
        eps = torch.randn((n_samples, *std.shape), dtype=std.dtype, device=std.device)
        return mu.unsqueeze(0) + eps * std.unsqueeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.distribution(x)
        return self.reparameterise(mu, logvar) if self.training else mu

    def sample_logits(self, x: torch.Tensor, n_samples: int) -> torch.Tensor:
        """(n_samples, B, num_classes) Monte-Carlo logits, sampled in either mode."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"VICHead.sample_logits: n_samples must be an int >= 1; got {n_samples!r}")
        mu, logvar = self.distribution(x)
        return self.reparameterise(mu, logvar, n_samples)


def _vit_init(module: nn.Module) -> None:
    """The ViT initialisation POSTER++ applies to its transformer, SE gate and head."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class PosterModel(nn.Module):
    """POSTER++ / POSTER-Var, switched by the flags of :class:`PosterConfig`.

    ``forward(images)`` takes a float batch (B, 3, H, W) normalised as for training (any size: both
    branches resize to 112 px, so 224 and 112 give the same pyramid) and returns a dict:
    ``logits`` (B, C), ``features`` (B, D: the CLS feature the head sees, SE-gated when ``se_gate``)
    and, with ``vich``, ``mu`` and ``logvar`` (B, C). :meth:`forward_stages` also returns every
    intermediate tensor.
    """

    def __init__(self, config: PosterConfig | None = None) -> None:
        super().__init__()
        config = config or PosterConfig()
        if not isinstance(config, PosterConfig):
            raise TypeError(f"PosterModel: config must be a PosterConfig; got {type(config).__name__}")
        self.config = config
        c1, c2, c3 = config.level_channels
        d = config.embed_dim

        self.landmark_branch = MobileFaceNet(width=config.width, depth=config.depth)
        lm1, lm2, lm3 = self.landmark_branch.pyramid_channels
        if (lm1, lm2) != (c1, c2):
            raise ConfigError(f"landmark channels {(lm1, lm2)} do not match image channels {(c1, c2)}")
        self.landmark_out_conv = nn.Conv2d(lm3, c3, 3, padding=1)
        self.image_backbone = config.make_image_trunk()
        stride = config.trunk_input_size // LEVEL_MAP_SIZES[0] // 2  # 112 px: 56 -> 28 (stride 2); 56 px: 1
        self.level_convs = nn.ModuleList(nn.Conv2d(t, c, 3, stride, 1)
                                         for t, c in zip(config.trunk_channels, (c1, c2, c3)))
        self.cross_attention = nn.ModuleList(
            CrossAttentionLevel(c, heads, size, config.mlp_ratio, rate, config.layer_scale)
            for c, heads, size, rate in zip(
                (c1, c2, c3), config.cross_attention_heads, LEVEL_MAP_SIZES, config.cross_attention_drop_path
            )
        )
        self.token_embeddings = nn.ModuleList(
            _token_embedding(c, d, level, config.nonlinear_embedding) for level, c in enumerate((c1, c2, c3))
        )
        if config.level_embedding:
            self.level_embedding = nn.Parameter(torch.zeros(len(LEVEL_MAP_SIZES), 1, d))
        if config.token_norm:
            self.token_norm = nn.LayerNorm(d)
        self.transformer = PyramidTransformer(
            config.num_tokens, d, config.vit_depth, config.vit_heads, config.mlp_ratio, config.vit_drop_path
        )
        if config.se_gate:
            self.se_gate = SEGate(d)
        _vit_init(self.transformer)
        if config.se_gate:
            _vit_init(self.se_gate)
        self.head: nn.Module = self._make_head(config, d)
        self._landmarks_frozen = False
        self._image_backbone_frozen = False
        if config.freeze_landmarks:
            self.freeze_landmark_branch()

    @staticmethod
    def _make_head(config: PosterConfig, dim: int) -> nn.Module:
        """The classifier, built last and under a forked RNG seeded by one draw from the global one.

        Every row of the ablation consumes the same random numbers before and after this call, so
        the parameters two rows share start equal at the same seed (the flags change only what they
        name); ``fc_mu`` of a VICH head starts equal to the linear head of a row without VICH.
        """
        head_seed = int(torch.randint(0, 2**62, (1,)))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(head_seed)
            head: nn.Module = VICHead(dim, config.num_classes) if config.vich else nn.Linear(dim, config.num_classes)
            torch.manual_seed(head_seed)  # fc_mu draws first, as the linear head does
            _vit_init(head)
        return head

    def load_image_backbone(self, source: nn.Module | Mapping[str, torch.Tensor]) -> "PosterModel":
        """Load pretrained IR-50 trunk weights (an :class:`IR50` or its state dict) of the same width/depth."""
        return self._load_branch(self.image_backbone, source, "image-backbone", "; pretrain config.make_image_trunk()")

    # ---- landmark branch -------------------------------------------------------------------
    @property
    def landmark_branch_frozen(self) -> bool:
        return self._landmarks_frozen

    def freeze_landmark_branch(self, frozen: bool = True) -> "PosterModel":
        """Freeze (or unfreeze) MobileFaceNet: no gradients, and its BatchNorm stays in eval mode."""
        self._landmarks_frozen = frozen
        self._set_trainable(self.landmark_branch, not frozen)
        return self

    @property
    def image_backbone_frozen(self) -> bool:
        return self._image_backbone_frozen

    def freeze_image_backbone(self, frozen: bool = True) -> "PosterModel":
        """Freeze (or unfreeze) the IR-50 trunk: no gradients, and its BatchNorm stays in eval mode.

        Not part of POSTER++ (which fine-tunes its MS-Celeb-1M IR-50); used when a trunk pretrained
        elsewhere should stay fixed while only the fusion, transformer and head learn.
        """
        self._image_backbone_frozen = frozen
        self._set_trainable(self.image_backbone, not frozen)
        return self

    def _set_trainable(self, module: nn.Module, trainable: bool) -> None:
        """Gradients on or off for ``module``; a frozen module's BatchNorm stays in eval mode."""
        for p in module.parameters():
            p.requires_grad_(trainable)
        module.train(self.training and trainable)

    def train(self, mode: bool = True) -> "PosterModel":
        super().train(mode)
        if self._landmarks_frozen:
            self.landmark_branch.eval()
        if self._image_backbone_frozen:
            self.image_backbone.eval()
        return self

    def load_landmark_branch(self, source: MobileFaceNet | Mapping[str, torch.Tensor]) -> "PosterModel":
        """Load pretrained landmark weights (a MobileFaceNet or its state dict) of the same width/depth."""
        return self._load_branch(self.landmark_branch, source, "landmark",
                                 "; pretrain config.make_landmark_branch()")

    def _load_branch(self, branch: nn.Module, source: nn.Module | Mapping[str, torch.Tensor], what: str,
                     hint: str) -> "PosterModel":
        """Load ``source`` (a module or its state dict) into ``branch``; a mismatch names the branch."""
        state = source.state_dict() if isinstance(source, nn.Module) else source
        try:
            branch.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(
                f"{what} weights do not fit this PosterModel (width={self.config.width}, "
                f"depth={self.config.depth}){hint}: {exc}"
            ) from None
        return self

    # ---- forward ---------------------------------------------------------------------------
    def _check_images(self, images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(
                f"PosterModel expects float images (B, 3, H, W) (repeat greyscale to 3 channels); got {shape}"
            )
        if not images.is_floating_point():
            raise ValueError(f"PosterModel expects float images, normalised; got dtype {images.dtype}")

    def forward_stages(self, images: torch.Tensor) -> dict[str, Any]:
        """Every stage: ``landmark_maps``, ``image_maps``, ``fused_maps`` (3-tuples of (B, C, s, s),
        s = 28/14/7), ``level_tokens`` (3 x (B, 49, D)), ``tokens`` (B, 147, D), ``sequence``
        (B, 148, D), ``cls`` (B, D), ``features`` (B, D), ``logits`` and, with VICH, ``mu``/``logvar``.
        """
        return self.forward_from_pyramids(*self.pyramids(images))

    def pyramids(self, images: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """The outputs of the two branches: (IR-50 pyramid (x1, x2, x3), landmark pyramid (lm1, lm2,
        lm3)). When both branches are frozen these depend only on the image and can be cached."""
        self._check_images(images)
        size = MOBILEFACENET_INPUT_SIZE
        faces = images if images.shape[-2:] == (size, size) else F.interpolate(images, size=size)
        return tuple(self.image_backbone(images)), tuple(self.landmark_branch.feature_pyramid(faces))

    def forward_from_pyramids(self, image_pyramid: tuple[torch.Tensor, ...],
                              landmark_pyramid: tuple[torch.Tensor, ...]) -> dict[str, Any]:
        """Every stage after the two branches (:meth:`pyramids`), as :meth:`forward_stages` returns them."""
        lm1, lm2, lm3 = landmark_pyramid
        landmark_maps = (lm1, lm2, self.landmark_out_conv(lm3))
        image_maps = tuple(conv(x) for conv, x in zip(self.level_convs, image_pyramid))
        fused_maps = tuple(
            level(x, q) for level, x, q in zip(self.cross_attention, image_maps, landmark_maps)
        )
        level_tokens = [embed(x).flatten(2).transpose(1, 2) for embed, x in zip(self.token_embeddings, fused_maps)]
        if self.config.level_embedding:
            level_tokens = [t + self.level_embedding[i] for i, t in enumerate(level_tokens)]
        tokens = torch.cat(level_tokens, dim=1)
        if self.config.token_norm:
            tokens = self.token_norm(tokens)
        sequence = self.transformer(tokens)
        cls = sequence[:, 0]
        features = self.se_gate(cls) if self.config.se_gate else cls
        out: dict[str, Any] = {
            "landmark_maps": landmark_maps,
            "image_maps": image_maps,
            "fused_maps": fused_maps,
            "level_tokens": tuple(level_tokens),
            "tokens": tokens,
            "sequence": sequence,
            "cls": cls,
            "features": features,
        }
        if self.config.vich:
            mu, logvar = self.head.distribution(features)
            out["mu"], out["logvar"] = mu, logvar
            out["logits"] = VICHead.reparameterise(mu, logvar) if self.training else mu
        else:
            out["logits"] = self.head(features)
        return out

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        stages = self.forward_stages(images)
        keys = ("logits", "features", "mu", "logvar") if self.config.vich else ("logits", "features")
        return {k: stages[k] for k in keys}

    def sample_logits(self, images: torch.Tensor, n_samples: int) -> torch.Tensor:
        """(n_samples, B, C) Monte-Carlo logits from the VICH distribution (features computed once)."""
        if not self.config.vich:
            raise ValueError("PosterModel.sample_logits needs a VICH head; this config has vich=False")
        return self.head.sample_logits(self.forward(images)["features"], n_samples)


def gaussian_kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Batch mean of KL(N(mu, diag exp(logvar)) || N(0, I)) = 0.5 sum(mu^2 + e^logvar - 1 - logvar)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1).mean()


def vich_loss(output: Mapping[str, torch.Tensor], target: torch.Tensor, kl_weight: float = 0.0) -> torch.Tensor:
    """Cross-entropy of ``output['logits']`` (+ ``kl_weight`` x KL to N(0, I) when the model has VICH).

    ``target`` is either class indices (B,) or a probability distribution (B, C) whose rows sum to 1,
    e.g. the FERPlus votes over the emotions, normalised (the soft-target CE is
    :func:`affectlab.losses.soft_target_ce`). ``kl_weight = 0`` is the published training code; the
    paper's text says "CE + KL".
    """
    logits = output["logits"]
    if target.ndim == 1 and not target.is_floating_point():
        loss = F.cross_entropy(logits, target)
    elif target.ndim == 2 and target.shape == logits.shape:
        loss = soft_target_ce(logits, target)
    else:
        raise ValueError(
            f"vich_loss: target must be class indices (B,) or probabilities {tuple(logits.shape)}; "
            f"got {target.dtype} {tuple(target.shape)}"
        )
    if kl_weight:
        if "mu" not in output:
            raise ValueError("vich_loss: kl_weight > 0 needs 'mu' and 'logvar' (a model with vich=True)")
        loss = loss + kl_weight * gaussian_kl_to_standard_normal(output["mu"], output["logvar"])
    return loss
