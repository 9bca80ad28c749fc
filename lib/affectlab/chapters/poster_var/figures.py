"""The chapter's figures (paper 003): Fig. 4 (confusions), Fig. 5 (per-image VICH distributions),
Fig. 3 (Grad-CAM of the true class on generated faces, with the landmark branch's points) and
Fig. 1 (evidence for every class in one face)."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from affectlab import metrics, plots
from affectlab.config import RunConfig
from affectlab.data.generate.faces import generate_faces
from affectlab.data.sets import FaceSet
from affectlab.models.mobilefacenet import NUM_LANDMARKS
from affectlab.models.poster import PosterModel
from affectlab.train import TensorData

from .calibration import softmax_probabilities
from .config import IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD, LAYER_SIDES, ROW_LABELS, ChapterConfig
from .experiments import AblationResult
from .pretrain import LandmarkBranch, landmark_targets


class LogitsOf(nn.Module):
    """A PosterModel seen as ``images -> logits`` (captum's Grad-CAM needs a tensor output)."""

    def __init__(self, model: PosterModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)["logits"]

def confusion_figure(result: AblationResult, dataset: str = "ferplus", row: str = "full", seed: int | None = None) -> Figure:
    """Fig. 4: the confusion matrix (counts) of ``row`` on the test images."""
    r = result.get(dataset, row, seed)
    splits = result.data[dataset]
    cm = metrics.confusion_matrix(r.labels.numpy(), r.predicted, labels=list(range(len(splits.class_names))))
    title = (f"{ROW_LABELS.get(row, row)} on {splits.display_name} test ({len(r.labels)} images), seed {r.seed}")
    return plots.confusion_matrix_figure(cm, splits.class_names, title=title)


def distribution_image_rows(result: AblationResult, dataset: str = "ferplus", n: int = 3, seed: int | None = None) -> list[int]:
    """Test rows for Fig. 5: first those where POSTER-Var is right and the baseline wrong (the paper's
    example), then disagreements, then any; at most ``n``."""
    full, base = result.get(dataset, "full", seed), result.get(dataset, "baseline", seed)
    y = full.labels.numpy()
    right_wrong = np.flatnonzero((full.predicted == y) & (base.predicted != y))
    disagree = np.flatnonzero(full.predicted != base.predicted)
    ordered = list(dict.fromkeys([*right_wrong.tolist(), *disagree.tolist(), *range(len(y))]))
    return ordered[:n]


def _gaussian(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def expression_distribution_figure(result: AblationResult, dataset: str = "ferplus", rows: Sequence[int] | None = None,
                                   seed: int | None = None) -> Figure:
    """Fig. 5: per test image, the VICH Gaussians N(mu_c, sigma_c^2) of every class (curves) and the
    baseline's logits (points on the axis). The class with the largest mu is POSTER-Var's answer.
    Images are named by their file index only (no face is shown)."""
    full, base = result.get(dataset, "full", seed), result.get(dataset, "baseline", seed)
    splits = result.data[dataset]
    rows = list(rows) if rows is not None else distribution_image_rows(result, dataset, result.cfg.distribution_images, seed)
    mu, sigma = full.distribution()
    names = splits.class_names
    files = splits.test.meta.get("file_names")
    fig = Figure(figsize=(9.5, 3.2 * len(rows) + 0.6), layout="constrained")
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, i in zip(axes, rows):
        m, s, b = mu[i].numpy(), sigma[i].numpy(), base.logits[i].numpy()
        low = min((m - 4 * s).min(), b.min()) - 0.5
        high = max((m + 4 * s).max(), b.max()) + 0.5
        xs = np.linspace(low, high, 400)
        for c, name in enumerate(names):
            ax.plot(xs, _gaussian(xs, float(m[c]), float(s[c])), color=f"C{c}", linewidth=1.6,
                    label=f"{name} (mu {m[c]:.2f}, sigma {s[c]:.2f})")
            ax.plot([b[c]], [0.0], "o", color=f"C{c}", markersize=6, markeredgecolor="black", clip_on=False)
        label = files[i] if isinstance(files, list) and i < len(files) else f"row {i}"
        ax.set_title(f"{splits.display_name} test {label}\ntrue {names[int(full.labels[i])]}; POSTER-Var "
                     f"{names[int(full.predicted[i])]}; baseline {names[int(base.predicted[i])]}", fontsize=10)
        ax.set_xlabel("expression intensity (logit)")
        ax.set_ylabel("density")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        ax.grid(alpha=0.3)
    fig.suptitle(f"VICH class distributions (curves) and baseline logits (points):\nPOSTER-Var vs POSTER++ "
                 f"(width {full.config.width}) trained on {splits.display_name}, seed {full.seed}", fontsize=11)
    return fig


@dataclasses.dataclass
class GradcamResult:
    """Grad-CAM maps (captum) of several rows on generated faces, with true and predicted landmarks.

    ``images`` (N, 112, 112) in [0, 1]; ``landmarks_true`` / ``landmarks_predicted`` (N, 68, 2) in
    pixels of the 112-px image with pixel centres at integers (matplotlib's ``imshow``); ``cams`` row -> (N, 112, 112) in [0, 1]; ``predicted`` row -> class
    indices; ``layer``: the module the maps come from.
    """

    images: np.ndarray
    classes: tuple[str, ...]
    targets: np.ndarray
    class_names: tuple[str, ...]
    landmarks_true: np.ndarray
    landmarks_predicted: np.ndarray
    cams: dict[str, np.ndarray]
    predicted: dict[str, np.ndarray]
    layer: str
    dataset: str
    dataset_label: str
    seed: int

    def spread_table(self, threshold: float = 0.5) -> pd.DataFrame:
        """Per row: mean share of the image where the CAM >= ``threshold`` (the paper: POSTER-Var's
        regions are "more extensive") and how often the target class was predicted."""
        return pd.DataFrame([
            {"model": ROW_LABELS.get(row, row), f"CAM area >= {threshold} (% of image)": round(100 * float((cam >= threshold).mean()), 1),
             "target class predicted": f"{int((self.predicted[row] == self.targets).sum())} / {len(self.targets)}"}
            for row, cam in self.cams.items()
        ]).set_index("model")

    def caveat(self, least_share: float = 0.5) -> str | None:
        """A warning when some row predicts the target class for fewer than ``least_share`` of the faces
        (then its map shows where evidence for an unpredicted class would be), else None."""
        hits = {row: int((p == self.targets).sum()) for row, p in self.predicted.items()}
        n = len(self.targets)
        if min(hits.values()) >= least_share * n:
            return None
        return ("Grad-CAM caveat: the target class was predicted for " + ", ".join(
            f"{hits[row]} / {n} faces by {ROW_LABELS.get(row, row)}" for row in hits)
            + "; maps of a class the model does not predict show where evidence for it would be, so the spread "
            "table cannot test the paper's 'more extensive regions' claim in this run.")

    def figure(self) -> Figure:
        """Fig. 3 analogue: each face with its landmarks, then one CAM overlay per row."""
        n, rows = len(self.images), list(self.cams)
        fig = Figure(figsize=(2.6 * (1 + len(rows)), 2.7 * n), layout="constrained")
        axes = fig.subplots(n, 1 + len(rows), squeeze=False)
        for i in range(n):
            ax = axes[i, 0]
            ax.imshow(self.images[i], cmap="gray", vmin=0, vmax=1)
            ax.scatter(*self.landmarks_true[i].T, s=4, c="lime", label="true (face model)")
            ax.scatter(*self.landmarks_predicted[i].T, s=4, c="red", label="landmark branch")
            ax.set_xlim(-0.5, self.images.shape[2] - 0.5)
            ax.set_ylim(self.images.shape[1] - 0.5, -0.5)
            ax.set_title(f"generated: {self.classes[i]}", fontsize=9)
            if i == 0:
                ax.legend(fontsize=6, loc="lower left")
            for j, row in enumerate(rows, start=1):
                ax = axes[i, j]
                ax.imshow(self.images[i], cmap="gray", vmin=0, vmax=1)
                overlay = ax.imshow(self.cams[row][i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
                ax.set_title(f"{ROW_LABELS.get(row, row)}\npredicts {self.class_names[int(self.predicted[row][i])]}", fontsize=8)
            for ax in axes[i]:
                ax.set_xticks([])
                ax.set_yticks([])
        if rows:
            bar = fig.colorbar(overlay, ax=list(axes[:, -1]), shrink=0.6)
            bar.set_label("Grad-CAM (fraction of the image's maximum)")
        fig.suptitle(f"Grad-CAM (captum) for the true class at {self.layer} ({LAYER_SIDES.get(self.layer, '?')} px); models trained on "
                     f"{self.dataset_label}, seed {self.seed}; generated faces", fontsize=10)
        return fig


def generated_probe_faces(cfg: ChapterConfig, classes: Sequence[str]) -> tuple[FaceSet, torch.Tensor, np.ndarray]:
    """One generated face per class in ``classes`` (a new identity, full intensity, +-5 degree pose),
    as (faces, model inputs (N, 3, 112, 112) normalised as in training, greyscale (N, 112, 112) in
    [0, 1] for display)."""
    faces = generate_faces(n_identities=1, class_names=tuple(classes), intensities=(1.0,), size=cfg.landmark_render_side,
                           seed=cfg.generated_seed + 1, pose_jitter_deg=5.0, name="generated_gradcam_faces")
    data = TensorData(faces.images, batch_size=len(faces), shuffle=False, resize=IMAGE_SIZE, channels=3,
                      mean=IMAGENET_MEAN, std=IMAGENET_STD, name="generated_gradcam_faces")
    x = data.convert(faces.images, torch.device("cpu"))
    shown = torch.nn.functional.interpolate(faces.images.float() / 255.0, size=IMAGE_SIZE, mode="bilinear",
                                            align_corners=False, antialias=False)[:, 0].numpy()
    return faces, x, shown


def _gradcam(model: PosterModel, x: torch.Tensor, targets: np.ndarray, layer: str) -> np.ndarray:
    """Grad-CAM maps (N, 112, 112) of ``targets`` at ``layer`` of a PosterModel (captum, via probing)."""
    from tqdm import TqdmWarning  # captum imports tqdm.auto, which warns in a kernel without ipywidgets

    from affectlab.probing import gradcam_per_block

    device = next(model.parameters()).device
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        return gradcam_per_block(LogitsOf(model), x.to(device), targets, [f"model.{layer}"])[f"model.{layer}"]


@dataclasses.dataclass
class ClassEvidenceMaps:
    """Fig. 1 analogue: for one face, the Grad-CAM map of every class (also those not predicted) and
    the model's probability of each class (softmax of the evaluation logits, mu for VICH)."""

    image: np.ndarray
    face_class: str
    class_names: tuple[str, ...]
    probabilities: np.ndarray
    cams: np.ndarray
    row: str
    layer: str
    dataset_label: str
    seed: int

    def table(self) -> pd.DataFrame:
        """Probability (%) of each class and the share of the image where its map is >= 0.5."""
        return pd.DataFrame({"class": self.class_names, "probability (%)": np.round(100 * self.probabilities, 1),
                             "CAM area >= 0.5 (% of image)": np.round(100 * (self.cams >= 0.5).mean(axis=(1, 2)), 1)}
                            ).set_index("class")

    def figure(self) -> Figure:
        """The face, then one CAM per class (classes by decreasing probability)."""
        order = np.argsort(-self.probabilities)
        n = 1 + len(order)
        cols = min(n, 5)
        nrows = math.ceil(n / cols)
        fig = Figure(figsize=(2.3 * cols, 2.5 * nrows), layout="constrained")
        axes = fig.subplots(nrows, cols, squeeze=False).ravel()
        axes[0].imshow(self.image, cmap="gray", vmin=0, vmax=1)
        axes[0].set_title(f"generated: {self.face_class}", fontsize=9)
        overlay = None
        for ax, c in zip(axes[1:], order):
            ax.imshow(self.image, cmap="gray", vmin=0, vmax=1)
            overlay = ax.imshow(self.cams[c], cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.set_title(f"{self.class_names[c]}: p = {self.probabilities[c]:.2f}", fontsize=9,
                         fontweight="bold" if c == order[0] else "normal")
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in axes[n:]:
            ax.set_visible(False)
        if overlay is not None:
            fig.colorbar(overlay, ax=list(axes[:n]), shrink=0.6).set_label("Grad-CAM (fraction of its maximum)")
        fig.suptitle(f"Evidence for every class in one face: {ROW_LABELS.get(self.row, self.row)} trained on "
                     f"{self.dataset_label}, seed {self.seed}; Grad-CAM at {self.layer} "
                     f"({LAYER_SIDES.get(self.layer, '?')} px), generated face", fontsize=10)
        return fig


def class_evidence_maps(result: AblationResult, dataset: str = "ferplus", row: str = "full",
                        face_class: str = "happiness", layer: str = "cross_attention.1",
                        seed: int | None = None) -> ClassEvidenceMaps:
    """Fig. 1 on a generated face of ``face_class``: the Grad-CAM map of each class (the paper: "which
    regions of the image contribute positively to a specific class, even if that class is not the
    model's final prediction") and the class probabilities (the paper's line thickness)."""
    names = result.data[dataset].class_names
    if face_class not in names:
        raise ValueError(f"class_evidence_maps: face_class {face_class!r} is not a class of {dataset} {names}")
    r = result.get(dataset, row, seed)
    _, x, shown = generated_probe_faces(result.cfg, (face_class,))
    model = r.model.eval()
    with torch.no_grad():
        probabilities = softmax_probabilities(model(x.to(next(model.parameters()).device))["logits"].cpu())[0]
    everyone = x.expand(len(names), -1, -1, -1).contiguous()
    cams = _gradcam(model, everyone, np.arange(len(names)), layer)
    return ClassEvidenceMaps(image=shown[0], face_class=face_class, class_names=names, probabilities=probabilities,
                             cams=cams, row=row, layer=layer, dataset_label=result.data[dataset].display_name, seed=r.seed)


def gradcam_on_generated_faces(result: AblationResult, landmarks: LandmarkBranch, run: RunConfig,
                               dataset: str = "ferplus", rows: Sequence[str] = ("full", "baseline"),
                               layer: str = "cross_attention.1", seed: int | None = None) -> GradcamResult:
    """Fig. 3 on generated faces (one per ``cfg.gradcam_classes``, full intensity, a new identity):
    Grad-CAM of the true class at ``layer`` (default the 14-px fused image-landmark level) for each
    row, and the frozen landmark branch's 68 points beside the face model's exact ones."""
    cfg = result.cfg
    names = result.data[dataset].class_names
    classes = tuple(c for c in cfg.gradcam_classes if c in names)
    if not classes:
        raise ValueError(f"none of gradcam_classes {cfg.gradcam_classes} is a class of {dataset} {names}")
    faces, x, shown = generated_probe_faces(cfg, classes)
    targets = np.array([names.index(c) for c in classes])
    cams, predicted = {}, {}
    chosen_seed = result.get(dataset, rows[0], seed).seed
    for row in rows:
        model = result.get(dataset, row, chosen_seed).model
        cams[row] = _gradcam(model, x, targets, layer)
        with torch.no_grad():
            predicted[row] = model.eval()(x.to(next(model.parameters()).device))["logits"].argmax(1).cpu().numpy()
    lm_pred = landmarks.predict_fractions(x)
    lm_true = landmark_targets(faces).numpy().reshape(-1, NUM_LANDMARKS, 2)
    return GradcamResult(images=shown, classes=classes, targets=targets, class_names=names,
                         landmarks_true=lm_true * IMAGE_SIZE - 0.5, landmarks_predicted=lm_pred * IMAGE_SIZE - 0.5, cams=cams,
                         predicted=predicted, layer=layer, dataset=dataset,
                         dataset_label=result.data[dataset].display_name, seed=chosen_seed)

