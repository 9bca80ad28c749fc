"""EEG2Face encoders and stage-2 heads (Kabidenova, *EEG2Face*, MSc thesis 2025, chapter 3).

What the thesis states, and this module implements:

- **Content regressor** ``E_r`` (Sec. 3.0.4, Fig. 3-2 left, Sec. 3.0.8): convolution over the
  30 x T EEG with kernel 1x30, stride 1x5 and 16 filters, then a channel (spatial) convolution to
  ``d = 128`` filters whose output "is directly used as the input sequence to the transformer" (no
  patch embedding); ``L = 2`` transformer layers, ``h = 8`` heads, FFN expansion 4; attention pooling
  over time with one learnable query ``q`` shared across the batch,
  ``z_r = sum_t alpha_t Z_L[:, t]``, ``alpha_t = softmax_t(q^T Z_L[:, t])``.
- A linear projection of ``z_r`` to the vision latent ``z_v`` (50 FLAME expression + 3 jaw = 53,
  Sec. 3.0.2) on which the one-sided InfoNCE with cosine similarity is computed (Sec. 3.0.7).
- **Emotion encoder** ``E_e`` (Sec. 3.0.5, 3.0.8): spectral convolution 1x30 / stride 1x5, spatial
  projection ``W_f`` (a 30x1 convolution) to ``d``-dimensional tokens, the same transformer, then
  ``z_bar_e = Softmax(FC(log(AvgPool(Z_L^2))))`` over the five EAV emotions; the logits train with
  cross-entropy and ``z_bar_e`` is the emotion code.
- **Heads** ``f`` and ``g`` (Sec. 3.0.7): ``z~_v = f(z_r + g(z_bar))``; during training ``z_bar`` is
  dropped for 50 % of the samples, in which case "only the content vector z_r is used", i.e. the
  ``g`` term is removed (``f(z_r)``), not replaced by ``g(0)``.
- **Inference** (Sec. 3.0.9): content-only ``f(z_r)``; emotion-enhanced ``f(z_r + g(z_bar))``;
  emotion modulation ``f(z_r + g(z_bar_c))`` with a chosen code (a one-hot emotion); blending
  ``f(z_r + g(Softmax(z_bar + z_bar_c)))``; and interpolation between two codes
  ``(1 - t) z_a + t z_b`` (Sec. 4.0.1, Fig. 4-2: neutral -> happy/sad/angry).
- No positional encoding and no class token (Sec. 4.1.1).
- Each face frame is paired with its own 10 EEG samples (Sec. 3.0.1, ``x_i`` with ``t = 10``).
  ``EEGContentRegressor(frame_samples=10)`` follows that pairing when it is given a longer window
  (the baselines need 1 s): it reads only the frame's own 10 samples, ``x[..., T//2 : T//2 + 10]``
  of a window whose sample ``T//2`` is the frame's time. ``n_positions`` instead keeps the whole
  window and adds a learned position embedding to the tokens (a stated deviation from Sec. 4.1.1),
  so that attention pooling can tell the frame's own tokens from the context.

What the thesis leaves open, and the choice made here:

- Padding of the strided temporal convolution: the text says "same padding ... to preserve T" but
  also stride 5; we pad so that the token count is ``ceil(T / 5)`` (100 tokens for 5 s at 100 Hz).
- Layers between the two convolutions: BatchNorm after each convolution and an ELU after the spatial
  one (as in the ShallowNet / EEGConformer patch embedding the thesis builds on), then dropout.
- ``E_e`` filters: Sec. 3.0.8 says 16 filters per layer, Fig. 3-2 says 40; default 16 (``n_filters``).
- Transformer: pre-norm (``norm_first=True``) with a final LayerNorm, GELU, dropout 0.1 (the thesis
  gives none of these); AvgPool of ``E_e`` is a global mean over time of the squared tokens.
- Heads: ``f`` is Linear(d, d) - GELU - Linear(d, 53); ``g`` is Linear(5, d) - GELU - Linear(d, d),
  because ``g(z_bar)`` is added to ``z_r`` (d = 128) before ``f``. ``hidden_dim=0`` makes both linear.
- Emotion order: ``EMOTIONS`` below (the EAV label order); the thesis lists the names only.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

EMOTIONS: tuple[str, ...] = ("Neutral", "Sadness", "Anger", "Happiness", "Calmness")
EXPRESSION_DIM = 50
JAW_DIM = 3
VISION_LATENT_DIM = EXPRESSION_DIM + JAW_DIM

EmotionSpec = Union[int, str, torch.Tensor]


def as_eeg_batch(x: torch.Tensor, n_chans: int, who: str) -> torch.Tensor:
    """Return ``x`` as (batch, 1, n_chans, time); (batch, n_chans, time) is accepted too."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: EEG input must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{who}: EEG input must be floating point, got {x.dtype}")
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != n_chans:
        raise ValueError(
            f"{who}: expected EEG of shape (batch, 1, {n_chans}, time) or (batch, {n_chans}, time); "
            f"got {tuple(x.shape)}"
        )
    return x


def split_vision_latent(z_v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``z_v`` (..., 53) into FLAME expression ``psi_exp`` (..., 50) and jaw pose (..., 3)."""
    if z_v.shape[-1] != VISION_LATENT_DIM:
        raise ValueError(f"z_v must end in {VISION_LATENT_DIM} = 50 expression + 3 jaw; got {tuple(z_v.shape)}")
    return z_v[..., :EXPRESSION_DIM], z_v[..., EXPRESSION_DIM:]


def emotion_code(emotion: EmotionSpec, batch_size: int, n_emotions: int = len(EMOTIONS),
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A (batch_size, n_emotions) emotion code: one-hot for an index or a name in ``EMOTIONS``,
    or a given code of shape (n_emotions,) (repeated) or (batch_size, n_emotions)."""
    if isinstance(emotion, torch.Tensor):
        code = emotion.to(device=device, dtype=dtype)
        if code.shape == (n_emotions,):
            return code.expand(batch_size, n_emotions).clone()
        if code.shape == (batch_size, n_emotions):
            return code
        raise ValueError(
            f"emotion code must have shape ({n_emotions},) or ({batch_size}, {n_emotions}); got {tuple(code.shape)}"
        )
    if isinstance(emotion, str):
        names = [e.lower() for e in EMOTIONS[:n_emotions]]
        if emotion.lower() not in names:
            raise ValueError(f"emotion {emotion!r} is unknown; choose one of {EMOTIONS[:n_emotions]}")
        emotion = names.index(emotion.lower())
    if isinstance(emotion, bool) or not isinstance(emotion, numbers.Integral) or not 0 <= emotion < n_emotions:
        raise ValueError(f"emotion must be an index in [0, {n_emotions}), a name or a code tensor; got {emotion!r}")
    code = torch.zeros(batch_size, n_emotions, device=device, dtype=dtype)
    code[:, int(emotion)] = 1.0
    return code


def interpolate_codes(code_a: torch.Tensor, code_b: torch.Tensor, t: float) -> torch.Tensor:
    """``(1 - t) code_a + t code_b`` for ``0 <= t <= 1`` (Sec. 4.0.1 emotion interpolation)."""
    if isinstance(t, bool) or not isinstance(t, numbers.Real) or not 0.0 <= float(t) <= 1.0:
        raise ValueError(f"interpolation weight t must be a number in [0, 1]; got {t!r}")
    if t == 0:
        return code_a
    if t == 1:
        return code_b
    return (1.0 - t) * code_a + t * code_b


class TemporalSpatialTokenizer(nn.Module):
    """1 x k temporal convolution (stride s) then a channels x 1 spatial convolution to ``d`` filters.

    (B, 1, C, T) -> tokens (B, ceil(T / s), d): one token per stride step, as the input sequence of
    the transformer (Sec. 3.0.4 "the output is directly used as the input sequence").
    """

    def __init__(self, n_chans: int, n_filters: int, kernel_size: int, stride: int, d_model: int,
                 dropout: float) -> None:
        super().__init__()
        for name, value in (("n_chans", n_chans), ("n_filters", n_filters), ("kernel_size", kernel_size),
                            ("stride", stride), ("d_model", d_model)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        self.kernel_size, self.stride = kernel_size, stride
        self.conv_temporal = nn.Conv2d(1, n_filters, (1, kernel_size), stride=(1, stride), bias=False)
        self.bn_temporal = nn.BatchNorm2d(n_filters)
        self.conv_spatial = nn.Conv2d(n_filters, d_model, (n_chans, 1), bias=False)
        self.bn_spatial = nn.BatchNorm2d(d_model)
        self.activation = nn.ELU()
        self.dropout = nn.Dropout(dropout)

    def n_tokens(self, n_times: int) -> int:
        return math.ceil(n_times / self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_times = x.shape[-1]
        pad = max((self.n_tokens(n_times) - 1) * self.stride + self.kernel_size - n_times, 0)
        x = F.pad(x, (pad // 2, pad - pad // 2))
        x = self.bn_temporal(self.conv_temporal(x))
        x = self.activation(self.bn_spatial(self.conv_spatial(x)))  # (B, d, 1, T')
        return self.dropout(x.squeeze(2).transpose(1, 2))  # (B, T', d)


def transformer_stack(d_model: int, n_heads: int, n_layers: int, ffn_mult: int, dropout: float) -> nn.Module:
    """``L`` pre-norm transformer encoder layers (d, h heads, FFN d*ffn_mult) and a final LayerNorm."""
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
    layer = nn.TransformerEncoderLayer(d_model, n_heads, d_model * ffn_mult, dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, n_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)


class AttentionPooling(nn.Module):
    """Sec. 3.0.4: ``z = sum_t alpha_t Z[:, t]``, ``alpha = softmax_t(q^T Z[:, t])``, learnable ``q``."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(d_model) / math.sqrt(d_model))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, d) -> pooled (B, d) and weights alpha (B, T), each row summing to 1."""
        alpha = torch.softmax(tokens @ self.query, dim=1)
        return torch.einsum("bt,btd->bd", alpha, tokens), alpha


class EEGContentEncoder(nn.Module):
    """Base of every content encoder (``E_r`` and the baselines): EEG -> embedding (B, embedding_dim),
    plus ``project_to_vision`` to the 53-d vision latent used by the stage-1 InfoNCE loss."""

    def __init__(self, n_chans: int, embedding_dim: int, latent_dim: int = VISION_LATENT_DIM) -> None:
        super().__init__()
        self.n_chans = n_chans
        self.embedding_dim = embedding_dim
        self.vision_projection = nn.Linear(embedding_dim, latent_dim)

    def project_to_vision(self, embedding: torch.Tensor) -> torch.Tensor:
        """Embedding (B, embedding_dim) -> (B, 53), compared with ``z_v`` by cosine similarity."""
        return self.vision_projection(embedding)


class EEGContentRegressor(EEGContentEncoder):
    """``E_r`` (Sec. 3.0.4): tokenizer, L transformer layers, attention pooling -> ``z_r`` (B, d).

    ``frame_samples``: read only the frame's own samples ``x[..., T//2 : T//2 + frame_samples]`` of
    the input window (the thesis's pairing, Sec. 3.0.1: 10 samples per frame). ``n_positions``: add a
    learned position embedding (``n_positions`` tokens, the window's ``ceil(T / stride)``) to the
    tokens before the transformer (not in the thesis, Sec. 4.1.1). At most one of the two.
    """

    def __init__(self, n_chans: int = 30, n_filters: int = 16, kernel_size: int = 30, stride: int = 5,
                 d_model: int = 128, n_heads: int = 8, n_layers: int = 2, ffn_mult: int = 4,
                 dropout: float = 0.1, latent_dim: int = VISION_LATENT_DIM, frame_samples: int | None = None,
                 n_positions: int | None = None) -> None:
        super().__init__(n_chans, d_model, latent_dim)
        for name, value in (("frame_samples", frame_samples), ("n_positions", n_positions)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"EEGContentRegressor: {name} must be a positive int or None; got {value!r}")
        if frame_samples is not None and n_positions is not None:
            raise ValueError("EEGContentRegressor: give frame_samples (thesis pairing) or n_positions (positional "
                             "context), not both")
        self.frame_samples, self.n_positions = frame_samples, n_positions
        self.tokenizer = TemporalSpatialTokenizer(n_chans, n_filters, kernel_size, stride, d_model, dropout)
        self.position = None
        if n_positions is not None:
            self.position = nn.Parameter(torch.zeros(n_positions, d_model))
            nn.init.trunc_normal_(self.position, std=0.02)
        self.transformer = transformer_stack(d_model, n_heads, n_layers, ffn_mult, dropout)
        self.pooling = AttentionPooling(d_model)

    def frame_input(self, x: torch.Tensor) -> torch.Tensor:
        """The part of the window the encoder reads: the frame's own samples, or all of it."""
        if self.frame_samples is None:
            return x
        centre = x.shape[-1] // 2
        if centre + self.frame_samples > x.shape[-1]:
            raise ValueError(f"EEGContentRegressor: a window of {x.shape[-1]} samples holds no {self.frame_samples} "
                             "samples from its centre on")
        return x[..., centre:centre + self.frame_samples]

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """EEG (B, 1, C, T) -> ``z_r`` (B, d) and the pooling weights alpha (B, tokens)."""
        tokens = self.tokenizer(self.frame_input(as_eeg_batch(x, self.n_chans, type(self).__name__)))
        if self.position is not None:
            if tokens.shape[1] != self.position.shape[0]:
                raise ValueError(f"EEGContentRegressor was built for {self.position.shape[0]} tokens "
                                 f"(n_positions); the input gives {tokens.shape[1]}")
            tokens = tokens + self.position
        return self.pooling(self.transformer(tokens))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_attention(x)[0]


@dataclasses.dataclass
class EmotionOutput:
    """Output of an emotion encoder: ``logits`` (B, K) for cross-entropy, ``code`` = softmax(logits)
    (the emotion latent code ``z_bar_e``, Sec. 3.0.5) and the pre-classifier ``features`` (B, F)."""

    logits: torch.Tensor
    code: torch.Tensor
    features: torch.Tensor


class EEGEmotionEncoder(nn.Module):
    """``E_e`` (Sec. 3.0.5): tokenizer, L transformer layers, ``log(AvgPool(Z_L^2))``, FC, softmax."""

    def __init__(self, n_chans: int = 30, n_emotions: int = len(EMOTIONS), n_filters: int = 16,
                 kernel_size: int = 30, stride: int = 5, d_model: int = 128, n_heads: int = 8,
                 n_layers: int = 2, ffn_mult: int = 4, dropout: float = 0.1, log_eps: float = 1e-6) -> None:
        super().__init__()
        self.n_chans, self.n_emotions, self.log_eps = n_chans, n_emotions, log_eps
        self.embedding_dim = d_model
        self.tokenizer = TemporalSpatialTokenizer(n_chans, n_filters, kernel_size, stride, d_model, dropout)
        self.transformer = transformer_stack(d_model, n_heads, n_layers, ffn_mult, dropout)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(d_model, n_emotions)

    def forward(self, x: torch.Tensor) -> EmotionOutput:
        tokens = self.transformer(self.tokenizer(as_eeg_batch(x, self.n_chans, type(self).__name__)))
        log_power = torch.log(tokens.pow(2).mean(dim=1).clamp_min(self.log_eps))  # (B, d)
        logits = self.classifier(self.dropout(log_power))
        return EmotionOutput(logits=logits, code=torch.softmax(logits, dim=-1), features=log_power)


class EEG2FaceHeads(nn.Module):
    """Stage-2 heads (Sec. 3.0.7): ``z~_v = f(z_r + m * g(z_bar))`` with ``m ~ Bernoulli(1 - drop_prob)``
    per sample in training (the emotion code is dropped for ``drop_prob`` of the samples) and
    ``m = 1`` in eval. The drop mask comes from a generator seeded with ``seed``."""

    def __init__(self, content_dim: int = 128, n_emotions: int = len(EMOTIONS),
                 latent_dim: int = VISION_LATENT_DIM, hidden_dim: int | None = None,
                 drop_prob: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1); got {drop_prob!r}")
        hidden = content_dim if hidden_dim is None else hidden_dim
        self.content_dim, self.n_emotions, self.drop_prob = content_dim, n_emotions, drop_prob
        if hidden:
            self.f: nn.Module = nn.Sequential(nn.Linear(content_dim, hidden), nn.GELU(), nn.Linear(hidden, latent_dim))
            self.g: nn.Module = nn.Sequential(nn.Linear(n_emotions, hidden), nn.GELU(), nn.Linear(hidden, content_dim))
        else:
            self.f, self.g = nn.Linear(content_dim, latent_dim), nn.Linear(n_emotions, content_dim)
        self.seed = seed
        self.drop_generator = torch.Generator().manual_seed(seed)

    def _check(self, z_r: torch.Tensor, code: torch.Tensor | None = None) -> None:
        if z_r.ndim != 2 or z_r.shape[1] != self.content_dim:
            raise ValueError(f"content embedding z_r must be (batch, {self.content_dim}); got {tuple(z_r.shape)}")
        if code is not None and code.shape != (z_r.shape[0], self.n_emotions):
            raise ValueError(f"emotion code must be ({z_r.shape[0]}, {self.n_emotions}); got {tuple(code.shape)}")

    def sample_keep_mask(self, batch_size: int) -> torch.Tensor:
        """Bool (batch_size,): True where the emotion code is kept (always True in eval mode)."""
        if not self.training or self.drop_prob == 0.0:
            return torch.ones(batch_size, dtype=torch.bool)
        return torch.rand(batch_size, generator=self.drop_generator) >= self.drop_prob

    def content_only(self, z_r: torch.Tensor) -> torch.Tensor:
        """``f(z_r)`` (Sec. 3.0.9 mode 1)."""
        self._check(z_r)
        return self.f(z_r)

    def with_code(self, z_r: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """``f(z_r + g(code))``, no dropping (modes 2 and 3 of Sec. 3.0.9)."""
        self._check(z_r, code)
        return self.f(z_r + self.g(code))

    def forward(self, z_r: torch.Tensor, code: torch.Tensor,
                return_keep_mask: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Training forward: ``f(z_r + m * g(code))``, ``m`` the per-sample keep mask."""
        self._check(z_r, code)
        keep = self.sample_keep_mask(len(z_r)).to(z_r.device)
        out = self.f(z_r + keep.unsqueeze(1).to(z_r.dtype) * self.g(code))
        return (out, keep) if return_keep_mask else out


class EEG2Face(nn.Module):
    """The full EEG -> ``z_v`` model: a content encoder (``E_r`` or a baseline), an emotion encoder
    (``E_e``) and the heads; the methods are the inference modes of Sec. 3.0.9."""

    def __init__(self, content_encoder: EEGContentEncoder, emotion_encoder: nn.Module, heads: EEG2FaceHeads) -> None:
        super().__init__()
        if getattr(content_encoder, "embedding_dim", None) != heads.content_dim:
            raise ValueError(
                f"content encoder embedding_dim={getattr(content_encoder, 'embedding_dim', None)} differs from "
                f"heads content_dim={heads.content_dim}"
            )
        self.content_encoder, self.emotion_encoder, self.heads = content_encoder, emotion_encoder, heads
        self.encoders_frozen = False

    def freeze_encoders(self) -> None:
        """Stage 2 (Sec. 3.0.7): freeze ``E_r`` and ``E_e``; they stay in eval mode from now on."""
        for module in (self.content_encoder, self.emotion_encoder):
            module.requires_grad_(False)
            module.eval()
        self.encoders_frozen = True

    def train(self, mode: bool = True) -> "EEG2Face":
        super().train(mode)
        if self.encoders_frozen:
            self.content_encoder.eval()
            self.emotion_encoder.eval()
        return self

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, EmotionOutput]:
        """EEG -> (``z_r`` (B, d), emotion output with ``code`` = ``z_bar`` (B, 5))."""
        return self.content_encoder(x), self.emotion_encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training forward with the 50 % emotion-code drop (eval: emotion-enhanced)."""
        z_r, emotion = self.encode(x)
        return self.heads(z_r, emotion.code)

    def content_only(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads.content_only(self.content_encoder(x))

    def emotion_enhanced(self, x: torch.Tensor) -> torch.Tensor:
        z_r, emotion = self.encode(x)
        return self.heads.with_code(z_r, emotion.code)

    def modulate(self, x: torch.Tensor, emotion: EmotionSpec) -> torch.Tensor:
        """``f(z_r + g(z_bar_c))`` with ``z_bar_c`` a one-hot emotion (index or name) or a code."""
        z_r = self.content_encoder(x)
        chosen = emotion_code(emotion, len(z_r), self.heads.n_emotions, z_r.device, z_r.dtype)
        return self.heads.with_code(z_r, chosen)

    def blend(self, x: torch.Tensor, emotion: EmotionSpec) -> torch.Tensor:
        """``f(z_r + g(Softmax(z_bar + z_bar_c)))`` (Sec. 3.0.9, blended expressions)."""
        z_r, predicted = self.encode(x)
        chosen = emotion_code(emotion, len(z_r), self.heads.n_emotions, z_r.device, z_r.dtype)
        return self.heads.with_code(z_r, torch.softmax(predicted.code + chosen, dim=-1))

    def interpolate(self, x: torch.Tensor, emotion_a: EmotionSpec, emotion_b: EmotionSpec,
                    t: float | Sequence[float]) -> torch.Tensor:
        """``f(z_r + g((1 - t) z_a + t z_b))``; a sequence of ``t`` gives (len(t), B, 53)."""
        z_r = self.content_encoder(x)
        code_a = emotion_code(emotion_a, len(z_r), self.heads.n_emotions, z_r.device, z_r.dtype)
        code_b = emotion_code(emotion_b, len(z_r), self.heads.n_emotions, z_r.device, z_r.dtype)
        if isinstance(t, numbers.Real):
            return self.heads.with_code(z_r, interpolate_codes(code_a, code_b, t))
        return torch.stack([self.heads.with_code(z_r, interpolate_codes(code_a, code_b, w)) for w in t])
