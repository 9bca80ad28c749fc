"""Chapter 03's two training stages (EEG2Face, Sec. 3.0.7), all through :func:`affectlab.train.fit`
(train-or-load).

Stage 1: ``E_e`` with cross-entropy (:func:`train_emotion_encoder`) and ``E_r`` or a Table 4.1
baseline with one-sided InfoNCE to ``z_v`` (:func:`train_content_encoder`). Stage 2: heads ``f`` and
``g`` on the frozen encoders with Eq. 3.1, ``0.7 MSE(z_v) + 0.3 L_vertex`` (:func:`stage2_loss`), on
``E_e``-code rows plus the re-posed faces of Sec. 3.0.6 (:func:`stage2_training_rows`,
:func:`train_heads`).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from affectlab.chapters.eeg2face.config import (
    CHAPTER,
    LOSS_WEIGHTS,
    SFREQ,
    ChapterConfig,
    content_encoder_kwargs,
    train_config,
)
from affectlab.chapters.eeg2face.data import ChapterData
from affectlab.chapters.eeg2face.latent import VisionLatent
from affectlab.config import RunConfig
from affectlab.losses import info_nce_loss, vertex_loss
from affectlab.models.eeg2face import EMOTIONS, EEG2Face, EEG2FaceHeads, EEGContentEncoder, EEGEmotionEncoder
from affectlab.models.eeg_baselines import build_content_encoder
from affectlab.train import FitResult, TensorData, fit


class EmotionLogits(nn.Module):
    """``E_e`` with the trainer's dict output: ``logits`` for ``L_emo`` = CE (Sec. 3.0.7)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.encoder(x)
        return {"logits": out.logits, "features": out.features}


class ContrastiveStage(nn.Module):
    """A content encoder and its projection to the 53-d vision latent, trained with InfoNCE only.

    The trainer always adds its task loss (here MSE on ``pred``); ``pred`` is therefore the
    *detached* projection, so that MSE is logged (``task_loss``) but sends no gradient: the only
    objective is the ``info_nce`` term on ``projection`` (Sec. 3.0.7, ``L_Info``).
    """

    def __init__(self, encoder: EEGContentEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        projection = self.encoder.project_to_vision(self.encoder(x))
        return {"pred": projection.detach(), "projection": projection}


LossTerm = Callable[[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor], int], torch.Tensor]


def info_nce_term(temperature: float = 1.0) -> LossTerm:
    """``L_Info`` as a trainer term: one-sided InfoNCE of the projections against the batch's ``z_v``."""

    def term(outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor], epoch: int) -> torch.Tensor:
        return info_nce_loss(outputs["projection"], batch["y"], temperature)

    return term


def _run_key(data: ChapterData, cfg: ChapterConfig, run: RunConfig, **extra: Any) -> dict[str, Any]:
    return {"chapter": CHAPTER, "data": data.info.get("hash"), "init_seed": run.seed, **extra}


def train_emotion_encoder(data: ChapterData, cfg: ChapterConfig, run: RunConfig) -> tuple[EEGEmotionEncoder, FitResult]:
    """Stage 1, ``E_e`` (Sec. 3.0.5, 3.0.7): cross-entropy on the five emotions; train-or-load."""
    torch.manual_seed(run.seed)
    encoder = EEGEmotionEncoder(n_chans=len(data.ch_names))
    result = fit(EmotionLogits(encoder), data.tensor_data("train", "emotion", cfg.batch_size), None,
                 train_config(cfg, run, cfg.emotion_epochs, "classification"),
                 key=_run_key(data, cfg, run, stage="1-emotion", model="E_e"),
                 name=f"eeg2face-Ee-c{data.coupling:g}", device=run.device)
    return encoder.eval(), result


def train_content_encoder(name: str, data: ChapterData, cfg: ChapterConfig, run: RunConfig,
                          epochs: int | None = None, content_input: str | None = None) -> tuple[EEGContentEncoder, FitResult]:
    """Stage 1, ``E_r`` or a Table 4.1 baseline: one-sided InfoNCE to ``z_v`` (Sec. 3.0.7).

    ``content_input`` ("frame" or "positional", :data:`~affectlab.chapters.eeg2face.config.CONTENT_INPUTS`)
    says what ``E_r`` reads of its window; default ``cfg.content_input`` (must then not be "auto":
    :func:`~affectlab.chapters.eeg2face.experiments.run_table_4_1` resolves it first). Baselines
    always read the whole window."""
    torch.manual_seed(run.seed)
    kwargs: dict[str, Any] = {}
    if name == "eeg2face":
        content_input = content_input or cfg.content_input
        if content_input == "auto":
            raise ValueError("train_content_encoder: content_input 'auto' must be resolved first "
                             "(experiments.run_content_input_selection chooses it on validation trials); pass "
                             "content_input='frame' or 'positional'")
        kwargs = content_encoder_kwargs(content_input, cfg.window_samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # braindecode import and constructor warnings
        encoder = build_content_encoder(name, n_chans=len(data.ch_names), n_times=cfg.window_samples, sfreq=SFREQ,
                                        **kwargs)
    extra = {"content_input": content_input} if name == "eeg2face" else {}
    result = fit(ContrastiveStage(encoder), data.tensor_data("train", "z_v", cfg.batch_size), None,
                 train_config(cfg, run, epochs or cfg.stage1_epochs, "regression"),
                 key=_run_key(data, cfg, run, stage="1-content", model=name, temperature=cfg.temperature, **extra),
                 name=f"eeg2face-Er-{name}{'-' + content_input if extra else ''}-c{data.coupling:g}", device=run.device,
                 extra_terms={"info_nce": info_nce_term(cfg.temperature)})
    return encoder.eval(), result


# stage 2: heads f and g on the frozen encoders, 0.7 MSE(z_v) + 0.3 L_vertex


def stage2_mse(z_hat: torch.Tensor, z_v: torch.Tensor) -> torch.Tensor:
    """``L_mse`` (Sec. 3.0.7): mean squared error between predicted and vision latents."""
    return F.mse_loss(z_hat, z_v)


def stage2_vertex(z_hat: torch.Tensor, z_v: torch.Tensor, latent: VisionLatent) -> torch.Tensor:
    """``L_vertex`` (Sec. 3.0.7): distance between ``F(z_hat)`` and ``F(z_v)``, as the mean
    per-vertex Euclidean distance in mm (``vertex_loss(..., reduction="mean_vertex")``), computed
    from :meth:`VisionLatent.vertex_difference` (one basis product instead of two meshes)."""
    difference = latent.vertex_difference(z_hat, z_v)
    return vertex_loss(difference, torch.zeros_like(difference), reduction="mean_vertex")


def stage2_loss(z_hat: torch.Tensor, z_v: torch.Tensor, latent: VisionLatent,
                weights: tuple[float, float] = LOSS_WEIGHTS) -> dict[str, torch.Tensor]:
    """Eq. 3.1: ``L = lambda_1 L_mse + lambda_2 L_vertex`` with (0.7, 0.3) (Sec. 3.0.8).

    Returns the weighted parts ``mse_zv`` and ``vertex`` and their sum ``total``.
    """
    parts = {"mse_zv": weights[0] * stage2_mse(z_hat, z_v), "vertex": weights[1] * stage2_vertex(z_hat, z_v, latent)}
    parts["total"] = parts["mse_zv"] + parts["vertex"]
    return parts


def stage2_terms(latent: VisionLatent, weights: tuple[float, float] = LOSS_WEIGHTS) -> dict[str, LossTerm]:
    """The two weighted parts of :func:`stage2_loss` as trainer terms ``term(outputs, batch, epoch)``."""
    return {
        "mse_zv": lambda outputs, batch, epoch: weights[0] * stage2_mse(outputs["z_v_hat"], batch["y"]),
        "vertex": lambda outputs, batch, epoch: weights[1] * stage2_vertex(outputs["z_v_hat"], batch["y"], latent),
    }


class HeadsOnFeatures(nn.Module):
    """Stage 2 on the frozen encoders' outputs ``x = [z_r | code | droppable]`` (B, d + 5 + 1): the
    heads' training forward ``f(z_r + m g(code))``. ``m`` is the 50 % code drop on rows whose
    ``droppable`` flag is 1 (rows with ``E_e``'s code ``z_bar``); rows with a one-hot code of a
    re-posed face (Sec. 3.0.6, flag 0) always keep their code, since their target depends on it.
    ``x`` of width d + 5 means every row is droppable. The encoders are frozen and in eval mode
    (deterministic), so their outputs are computed once (:func:`encode_features`) instead of every
    step; the gradients of the heads are the same. ``pred`` is detached as in
    :class:`ContrastiveStage`: the objective is exactly the two terms of :func:`stage2_terms`."""

    def __init__(self, heads: EEG2FaceHeads) -> None:
        super().__init__()
        self.heads = heads

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        d, k = self.heads.content_dim, self.heads.n_emotions
        if x.shape[1] not in (d + k, d + k + 1):
            raise ValueError(f"stage-2 features must be (batch, {d} + {k} [+ 1]); got {tuple(x.shape)}")
        z_r, code = x[:, :d], x[:, d:d + k]
        keep = self.heads.sample_keep_mask(len(x)).to(x.device)
        if x.shape[1] == d + k + 1:
            keep = keep | (x[:, d + k] < 0.5)
        z_hat = self.heads.f(z_r + keep.unsqueeze(1).to(z_r.dtype) * self.heads.g(code))
        return {"pred": z_hat.detach(), "z_v_hat": z_hat}


def stage2_training_rows(features: Mapping[str, torch.Tensor], data: ChapterData, reposed_per_frame: int,
                         seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The stage-2 training set: inputs ``[z_r | code | droppable]`` and targets ``z_v``.

    One row per training frame with ``E_e``'s code ``z_bar`` (droppable) and, for
    ``reposed_per_frame`` = r > 0, r rows per frame of its re-posed faces (Sec. 3.0.6): ``z_r`` of the
    frame's EEG with the one-hot code of emotion k and, as target, ``z_v`` of the frame re-posed into
    k (``data.z_v_reposed``), not droppable. With r < 5 the r emotions of each frame are drawn at
    random without replacement (``seed``); r = 5 takes all five.
    """
    if isinstance(reposed_per_frame, bool) or not 0 <= int(reposed_per_frame) <= len(EMOTIONS):
        raise ValueError(f"reposed_per_frame must be an int in [0, {len(EMOTIONS)}]; got {reposed_per_frame!r}")
    train = data.train
    z_r, code = features["z_r"][train], features["code"][train]
    x = [torch.cat([z_r, code, torch.ones(len(z_r), 1)], 1)]
    y = [data.z_v[train]]
    if reposed_per_frame:
        if data.z_v_reposed is None:
            raise ValueError("reposed_per_frame > 0 needs ChapterData.z_v_reposed (built by build_chapter_data)")
        generator = torch.Generator().manual_seed(seed)
        order = torch.argsort(torch.rand(len(z_r), len(EMOTIONS), generator=generator), dim=1)[:, :reposed_per_frame]
        reposed = data.z_v_reposed[train]
        eye = torch.eye(len(EMOTIONS))
        for j in range(int(reposed_per_frame)):
            k = order[:, j]
            x.append(torch.cat([z_r, eye[k], torch.zeros(len(z_r), 1)], 1))
            y.append(reposed[torch.arange(len(z_r)), k])
    return torch.cat(x), torch.cat(y)


@torch.no_grad()
def encode_features(content_encoder: nn.Module, emotion_encoder: nn.Module, eeg: torch.Tensor,
                    device: torch.device, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """``z_r`` (N, d), the emotion code ``z_bar`` (N, 5) and the emotion logits of EEG windows."""
    content_encoder.eval().to(device)
    emotion_encoder.eval().to(device)
    z_r, code, logits = [], [], []
    for start in range(0, len(eeg), batch_size):
        x = eeg[start:start + batch_size].to(device)
        z_r.append(content_encoder(x).cpu())
        out = emotion_encoder(x)
        code.append(out.code.cpu())
        logits.append(out.logits.cpu())
    return {"z_r": torch.cat(z_r), "code": torch.cat(code), "logits": torch.cat(logits)}


def train_heads(content_encoder: EEGContentEncoder, emotion_encoder: EEGEmotionEncoder, data: ChapterData,
                cfg: ChapterConfig, run: RunConfig, encoder_name: str, stage1_hashes: Sequence[str],
                epochs: int | None = None) -> tuple[EEG2Face, FitResult, dict[str, torch.Tensor]]:
    """Stage 2 (Sec. 3.0.7): freeze ``E_r``/``E_e``, train ``f``/``g`` with Eq. 3.1 on
    :func:`stage2_training_rows` (with ``cfg.reposed_per_frame`` re-posed faces per training frame,
    Sec. 3.0.6); train-or-load.

    Returns the assembled :class:`EEG2Face` (frozen encoders + trained heads, eval mode), the fit
    result and the frozen encoders' outputs on every sample (``z_r``, ``code``, ``logits``).
    """
    features = encode_features(content_encoder, emotion_encoder, data.eeg, run.device)
    x, y = stage2_training_rows(features, data, cfg.reposed_per_frame, run.seed)
    train_data = TensorData(x, y, batch_size=cfg.batch_size, name=f"eeg2face-stage2-{encoder_name}-c{data.coupling:g}")
    torch.manual_seed(run.seed)
    heads = EEG2FaceHeads(content_dim=content_encoder.embedding_dim, n_emotions=len(EMOTIONS),
                          drop_prob=cfg.drop_prob, seed=run.seed)
    latent = data.latent.to(run.device)
    result = fit(HeadsOnFeatures(heads), train_data, None,
                 train_config(cfg, run, epochs or cfg.stage2_epochs, "regression"),
                 key=_run_key(data, cfg, run, stage="2-heads", model=encoder_name, weights=list(LOSS_WEIGHTS),
                              drop_prob=cfg.drop_prob, stage1=list(stage1_hashes), reposed=cfg.reposed_per_frame),
                 name=f"eeg2face-heads-{encoder_name}-c{data.coupling:g}", device=run.device,
                 extra_terms=stage2_terms(latent))
    data.latent.to("cpu")
    model = EEG2Face(content_encoder, emotion_encoder, heads)
    model.freeze_encoders()
    return model.eval(), result, features

