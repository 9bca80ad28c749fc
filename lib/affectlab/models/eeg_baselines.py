"""Baseline EEG content encoders of Table 4.1 of EEG2Face (Kabidenova 2025, Sec. 4.0.2).

The thesis compares its ``E_r`` with four architectures, keeping "the original backbone structures
... while suitably modifying them for regression and classification tasks". Here each backbone's
classifier is replaced by an embedding layer (Linear to ``embedding_dim`` = 128, the size of
``z_r``), so every baseline plugs into the same stage-1 InfoNCE projection and the same stage-2
heads ``f``/``g`` (:class:`affectlab.models.eeg2face.EEG2FaceHeads`):

=================  ======  =============================================================================
name               ref.    what
=================  ======  =============================================================================
``eegnet``         [25]    ``braindecode.models.EEGNet`` (Lawhern et al. 2018), braindecode defaults
``shallowconvnet`` [40]    ``braindecode.models.ShallowFBCSPNet`` (Schirrmeister et al. 2017), time
                           kernel and pooling rate-scaled (see below)
``tct``            [31]    :class:`TCTStyleEncoder`, written here: temporal convolution, then a
                           transformer over time tokens and one over electrode tokens ("Temporal and
                           Channel Transformer", Liu et al. 2022; no code of it is available here, so
                           this is a reconstruction from its title and the thesis's description)
``eegtransformer`` [1]     ``braindecode.models.EEGConformer`` (CNN patch embedding + transformer + MLP,
                           the family of Al-Fahsi's "CNN, Transformer, and MLP" model), time kernel and
                           pooling rate-scaled (see below)
``eeg2face``       ours    :class:`affectlab.models.eeg2face.EEGContentRegressor` (``E_r``)
=================  ======  =============================================================================

ShallowFBCSPNet's and EEGConformer's defaults (time kernel 25, pooling 75 / stride 15 samples) were
set for 250 Hz motor-imagery data. At the thesis's 100 Hz and a 1 s window they pool 100 samples to a
single time step, so EEGConformer's self-attention would see ONE token. :func:`rate_scaled_time_kwargs`
keeps their durations instead (0.1 s kernel, 0.3 s pooling, 60 ms stride: 10 / 30 / 6 samples at
100 Hz), which gives 11 time tokens per 1 s window; explicit keyword arguments override it.
EEGNet's defaults (kernel 64 samples, pooling 4 x 8) leave 3 time steps of a 1 s window and are kept.
braindecode is imported only when a braindecode baseline is built (its import takes seconds).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import torch
from torch import nn

from affectlab.models.eeg2face import (
    EMOTIONS,
    VISION_LATENT_DIM,
    EEGContentEncoder,
    EEGContentRegressor,
    EmotionOutput,
    as_eeg_batch,
    transformer_stack,
)

PAPER_REFERENCES: dict[str, str] = {
    "eegnet": "[25] EEGNet (Lawhern et al., 2018)",
    "shallowconvnet": "[40] ShallowConvNet (Schirrmeister et al., 2017)",
    "tct": "[31] TCT, temporal and channel transformer (Liu, Zhou, Zhang, 2022)",
    "eegtransformer": "[1] EEG transformer: CNN + transformer + MLP (Al-Fahsi); here EEGConformer",
    "eeg2face": "ours: EEG2Face content regressor E_r",
}
ENCODER_NAMES: tuple[str, ...] = tuple(PAPER_REFERENCES)


def _braindecode_model(class_name: str) -> type[nn.Module]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # braindecode's import warns about MNE montage names
        import braindecode.models as models
    return getattr(models, class_name)


class BraindecodeEmbedding(EEGContentEncoder):
    """A braindecode backbone whose ``final_layer`` (classifier) is replaced by Flatten, followed by
    Linear(backbone features, ``embedding_dim``): EEG (B, 1, C, T) -> embedding (B, embedding_dim)."""

    def __init__(self, backbone_class: str, n_chans: int = 30, n_times: int = 500, sfreq: float = 100.0,
                 embedding_dim: int = 128, latent_dim: int = VISION_LATENT_DIM, **backbone_kwargs: Any) -> None:
        super().__init__(n_chans, embedding_dim, latent_dim)
        model_class = _braindecode_model(backbone_class)
        self.n_times = n_times
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # EEGNet: final-layer option we replace anyway
            self.backbone = model_class(n_chans=n_chans, n_outputs=len(EMOTIONS), n_times=n_times, sfreq=sfreq,
                                        **backbone_kwargs)
        if not hasattr(self.backbone, "final_layer"):
            raise TypeError(f"braindecode {backbone_class} has no final_layer to replace with an embedding")
        self.backbone.final_layer = nn.Flatten()
        was_training = self.backbone.training
        self.backbone.eval()
        with torch.no_grad():
            n_features = self.backbone(torch.zeros(1, n_chans, n_times)).reshape(1, -1).shape[1]
        self.backbone.train(was_training)
        self.n_backbone_features = n_features
        self.embedding = nn.Linear(n_features, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_eeg_batch(x, self.n_chans, f"{type(self.backbone).__name__} baseline")
        if x.shape[-1] != self.n_times:
            raise ValueError(
                f"{type(self.backbone).__name__} baseline was built for n_times={self.n_times}; got {x.shape[-1]}"
            )
        return self.embedding(self.backbone(x.squeeze(1)).flatten(1))


class TCTStyleEncoder(EEGContentEncoder):
    """TCT-style baseline [31]: a 1 x k temporal convolution per electrode, then

    - a temporal transformer over ``ceil(T / stride)`` time tokens (all electrodes x filters -> d), and
    - a channel transformer over the ``C`` electrode tokens (all time steps x filters -> d),

    each with a learnable position (time step / electrode) embedding; the token means of both are
    concatenated and mapped to the embedding (B, embedding_dim).
    """

    def __init__(self, n_chans: int = 30, n_times: int = 500, n_filters: int = 8, kernel_size: int = 30,
                 stride: int = 5, d_model: int = 64, n_heads: int = 4, n_layers: int = 1, ffn_mult: int = 4,
                 dropout: float = 0.1, embedding_dim: int = 128, latent_dim: int = VISION_LATENT_DIM) -> None:
        super().__init__(n_chans, embedding_dim, latent_dim)
        self.n_times, self.kernel_size, self.stride = n_times, kernel_size, stride
        self.n_steps = math.ceil(n_times / stride)
        self.temporal_conv = nn.Sequential(
            nn.Conv2d(1, n_filters, (1, kernel_size), stride=(1, stride), bias=False),
            nn.BatchNorm2d(n_filters),
            nn.ELU(),
        )
        self.time_tokens = nn.Linear(n_filters * n_chans, d_model)
        self.channel_tokens = nn.Linear(n_filters * self.n_steps, d_model)
        self.time_position = nn.Parameter(torch.zeros(self.n_steps, d_model))
        self.channel_position = nn.Parameter(torch.zeros(n_chans, d_model))
        nn.init.trunc_normal_(self.time_position, std=0.02)
        nn.init.trunc_normal_(self.channel_position, std=0.02)
        self.temporal_transformer = transformer_stack(d_model, n_heads, n_layers, ffn_mult, dropout)
        self.channel_transformer = transformer_stack(d_model, n_heads, n_layers, ffn_mult, dropout)
        self.embedding = nn.Linear(2 * d_model, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_eeg_batch(x, self.n_chans, type(self).__name__)
        if x.shape[-1] != self.n_times:
            raise ValueError(f"{type(self).__name__} was built for n_times={self.n_times}; got {x.shape[-1]}")
        pad = max((self.n_steps - 1) * self.stride + self.kernel_size - self.n_times, 0)
        features = self.temporal_conv(nn.functional.pad(x, (pad // 2, pad - pad // 2)))  # (B, F, C, T')
        batch = len(features)
        time_seq = self.time_tokens(features.permute(0, 3, 1, 2).reshape(batch, self.n_steps, -1))
        chan_seq = self.channel_tokens(features.permute(0, 2, 1, 3).reshape(batch, self.n_chans, -1))
        time_seq = self.temporal_transformer(time_seq + self.time_position)
        chan_seq = self.channel_transformer(chan_seq + self.channel_position)
        return self.embedding(torch.cat([time_seq.mean(1), chan_seq.mean(1)], dim=1))


class EmotionClassifierFromEmbedding(nn.Module):
    """Any content encoder turned into an emotion encoder (the "classification" variant of a
    baseline): embedding -> Linear -> logits; returns :class:`EmotionOutput` like ``E_e``."""

    def __init__(self, encoder: EEGContentEncoder, n_emotions: int = len(EMOTIONS)) -> None:
        super().__init__()
        self.encoder, self.n_emotions = encoder, n_emotions
        self.classifier = nn.Linear(encoder.embedding_dim, n_emotions)

    def forward(self, x: torch.Tensor) -> EmotionOutput:
        features = self.encoder(x)
        logits = self.classifier(features)
        return EmotionOutput(logits=logits, code=torch.softmax(logits, dim=-1), features=features)


BRAINDECODE_DESIGN_RATE = 250.0  # Hz: the rate ShallowFBCSPNet's and EEGConformer's defaults were set for
_SHALLOW_TIME_DEFAULTS = {"filter_time_length": 25, "pool_time_length": 75, "pool_time_stride": 15}


def rate_scaled_time_kwargs(sfreq: float) -> dict[str, int]:
    """ShallowFBCSPNet / EEGConformer time kernel and pooling (samples) with the durations of their
    250 Hz defaults at ``sfreq`` (at 100 Hz: 10, 30, 6)."""
    if not sfreq > 0:
        raise ValueError(f"parameter sfreq must be > 0; got {sfreq!r}")
    return {k: max(1, int(round(v * sfreq / BRAINDECODE_DESIGN_RATE))) for k, v in _SHALLOW_TIME_DEFAULTS.items()}


def time_tokens(n_times: int, filter_time_length: int, pool_time_length: int, pool_time_stride: int) -> int:
    """Time steps left after a valid time convolution and pooling (EEGConformer's token count)."""
    return max(0, (n_times - filter_time_length + 1 - pool_time_length) // pool_time_stride + 1)


def build_content_encoder(name: str, n_chans: int = 30, n_times: int = 500, sfreq: float = 100.0,
                          embedding_dim: int = 128, **kwargs: Any) -> EEGContentEncoder:
    """Build one encoder of Table 4.1 by name (see ``ENCODER_NAMES``); ``kwargs`` go to its constructor.

    ``eeg2face`` (``E_r``) always has ``embedding_dim = d_model``. ``shallowconvnet`` and
    ``eegtransformer`` get :func:`rate_scaled_time_kwargs` unless ``kwargs`` set those arguments.
    """
    scaled = {**rate_scaled_time_kwargs(sfreq), **kwargs}
    builders: dict[str, Callable[[], EEGContentEncoder]] = {
        "eegnet": lambda: BraindecodeEmbedding("EEGNet", n_chans, n_times, sfreq, embedding_dim, **kwargs),
        "shallowconvnet": lambda: BraindecodeEmbedding("ShallowFBCSPNet", n_chans, n_times, sfreq, embedding_dim,
                                                       **scaled),
        "tct": lambda: TCTStyleEncoder(n_chans, n_times, embedding_dim=embedding_dim, **kwargs),
        "eegtransformer": lambda: BraindecodeEmbedding("EEGConformer", n_chans, n_times, sfreq, embedding_dim,
                                                       **scaled),
        "eeg2face": lambda: EEGContentRegressor(n_chans, d_model=embedding_dim, **kwargs),
    }
    if name not in builders:
        raise ValueError(f"encoder name {name!r} is unknown; choose one of {ENCODER_NAMES}")
    return builders[name]()
