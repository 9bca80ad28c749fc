"""Chapter 02 networks wrapped for probing (Table 1, Fig. 1): :class:`ProbedNetwork` names the
layers read and the four roles of Fig. 4; the Sharma CNN (NN1-NN3) and the FER2013-trained
mini-Xception that stands in for ResMaskNet/EmoFAN (paper 001, Sec. 3); their outputs as logits and
as FERPlus class indices."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from affectlab import data as datasets
from affectlab.config import RunConfig, seed_everything
from affectlab.data.taxonomy import FER2013_CLASSES, FERPLUS_CLASSES
from affectlab.models.minixception import load_minixception, prepare_minixception_input
from affectlab.models.sharma_cnn import SHARMA_VARIANTS, build_sharma_variant, prepare_sharma_input
from affectlab.probing import layer_activations
from affectlab.train import FitResult

from .config import (
    MINIXCEPTION_GRADCAM_LAYERS,
    MINIXCEPTION_PROBE_LAYERS,
    MINIXCEPTION_ROLES,
    ROLES,
    SHARMA_GRADCAM_LAYERS,
    SHARMA_PROBE_LAYERS,
    SHARMA_ROLES,
    TO_FERPLUS_NAME,
)


@dataclasses.dataclass
class ProbedNetwork:
    """A network with what probing needs: the layers to read (input -> output order), which of them
    play the four roles of Fig. 4 (:data:`ROLES`), the convolutional layers for Grad-CAM, and
    ``prepare`` turning uint8 faces (N, 1, H, W) into the model's input."""

    name: str
    model: nn.Module
    class_names: tuple[str, ...]
    layers: tuple[str, ...]
    roles: dict[str, str]
    gradcam_layers: tuple[str, ...]
    prepare: Callable[[torch.Tensor], torch.Tensor]
    description: str
    trained: bool
    fit: FitResult | None = None

    def __post_init__(self) -> None:
        missing = [layer for layer in self.roles.values() if layer not in self.layers]
        if missing or set(self.roles) != set(ROLES):
            raise ValueError(f"{self.name}: roles must map {ROLES} to probed layers; bad: {missing or self.roles}")

    @property
    def output_layer(self) -> str:
        return self.roles["final"]


def sharma_initial_model(variant: str, init_seed: int) -> nn.Module:
    """The Sharma CNN ``variant`` with its Keras initial weights drawn from ``init_seed``: NN1 and
    NN2 start training from it, NN3 is NN1's left untrained (the paper's control)."""
    seed_everything(init_seed)
    return build_sharma_variant(variant)


def sharma_network(variant: str, model: nn.Module, description: str, fit_result: FitResult | None = None) -> ProbedNetwork:
    """Wrap a Sharma CNN (NN1, NN2 or NN3) for probing: the layers of Fig. 1(b) we read."""
    return ProbedNetwork(
        name=variant, model=model.eval(), class_names=tuple(SHARMA_VARIANTS[variant]), layers=SHARMA_PROBE_LAYERS,
        roles=dict(SHARMA_ROLES), gradcam_layers=SHARMA_GRADCAM_LAYERS, prepare=prepare_sharma_input,
        description=description, trained=variant != "NN3", fit=fit_result,
    )


def _minixception_path(run: RunConfig) -> tuple[Path | None, str]:
    """The mini-Xception weights: the data root's copy, else the set-up's installed copy (SHA-256
    checked against the manifest), else None and the reason."""
    from affectlab.data.manifest import sha256_file
    from affectlab.data.registry import INSTALLED_ASSETS

    try:
        return datasets.asset_path("minixception", run.data_root), "data root" if run.data_root else "installed copy"
    except (datasets.DatasetNotFoundError, datasets.DatasetValidationError) as exc:
        reason = str(exc)
    installed = INSTALLED_ASSETS["minixception"]
    if run.data_root is None or not installed.is_file():
        return None, reason
    manifest = datasets.get_manifest("minixception")
    expected = [f.get("sha256") for layout in manifest["layouts"] for f in layout.get("files", [])
                if f["path"] == installed.name]
    if expected and expected[0] == sha256_file(installed):
        return installed, "installed copy; the data root has none"
    return None, f"{reason}; the installed copy {installed} fails its SHA-256 check"


def minixception_network(run: RunConfig) -> tuple[ProbedNetwork | None, str]:
    """The FER2013-trained mini-Xception (Arriaga et al. 2017) wrapped for probing, or None and
    the reason it is unavailable. It stands in for ResMaskNet and EmoFAN, whose weights cannot be
    obtained here."""
    path, where = _minixception_path(run)
    if path is None:
        return None, where
    model = load_minixception(path).to(run.device)
    net = ProbedNetwork(
        name="mini-Xception", model=model, class_names=FER2013_CLASSES, layers=MINIXCEPTION_PROBE_LAYERS,
        roles=dict(MINIXCEPTION_ROLES), gradcam_layers=MINIXCEPTION_GRADCAM_LAYERS,
        prepare=prepare_minixception_input, trained=True,
        description=f"mini-Xception (Arriaga et al. 2017), FER2013-trained Keras weights {path.name} ({where})",
    )
    return net, f"loaded from {path} ({where})"


@torch.no_grad()
def network_logits(net: ProbedNetwork, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Outputs of the network's final layer (N, K) for uint8 faces; cached on disk by
    :func:`affectlab.probing.layer_activations` (keyed by weights and inputs)."""
    x = net.prepare(images)
    return layer_activations(net.model, x, [net.output_layer], batch_size=batch_size)[net.output_layer]


def ferplus_predictions(net: ProbedNetwork, logits: np.ndarray) -> np.ndarray:
    """Predicted classes as FERPlus indices (FER2013 "happy" -> "happiness", ...)."""
    names = [TO_FERPLUS_NAME[c] for c in net.class_names]
    lookup = np.array([FERPLUS_CLASSES.index(n) for n in names])
    return lookup[np.asarray(logits).argmax(axis=1)]

