"""The two pretrained branches POSTER++ starts from (paper 003, Sec. 3.1; POSTER++ Sec. 3): the
MobileFaceNet landmark branch, trained here on generated faces with exact 68 iBUG landmarks and then
frozen, and the IR-50 image trunk, pretrained once on FERPlus as a stand-in for the MS-Celeb-1M
weights that cannot be downloaded."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch

from affectlab import data as datasets
from affectlab import metrics, stats
from affectlab.config import RunConfig, seed_everything
from affectlab.data.generate.faces import generate_faces, split_by_identity
from affectlab.data.sets import FaceSet
from affectlab.models.ir50 import IR50Classifier
from affectlab.models.mobilefacenet import NUM_LANDMARKS, MobileFaceNet
from affectlab.reporting import ci_text
from affectlab.train import FitResult, TensorData, TrainConfig, fer_recipe, fit, predict

from .config import CHAPTER, IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD, OUTER_EYE_CORNERS, ChapterConfig
from .data import DatasetSplits, face_tensor_data, stratified_faces


def accuracy_percent(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Accuracy in % (the metric every bootstrap of this chapter resamples)."""
    return 100.0 * metrics.accuracy(y_true, y_pred)


def landmark_targets(faces: FaceSet) -> torch.Tensor:
    """(N, 136) regression targets x1, y1, ..., x68, y68 as fractions of the image (0..1; a chin point
    may fall just outside the crop), from ``meta["landmarks"]``.

    The generator's landmarks are pixel coordinates with pixel centres at i + 0.5, so dividing by the
    image side gives the position as a fraction of the image, which a bilinear resize (align_corners
    False) to 112 px leaves unchanged.
    """
    lm = faces.meta.get("landmarks")
    where = f"FaceSet {faces.name}/{faces.split}"
    if lm is None:
        raise ValueError(f"{where} has no meta['landmarks'] (use affectlab.data.generate.faces.generate_faces)")
    lm = np.asarray(lm, dtype=np.float32)
    if lm.shape != (len(faces), NUM_LANDMARKS, 2) or not np.isfinite(lm).all():
        raise ValueError(f"{where}: meta['landmarks'] must be finite ({len(faces)}, {NUM_LANDMARKS}, 2); got {lm.shape}")
    height, width = faces.images.shape[-2:]
    scaled = lm / np.array([width, height], dtype=np.float32)
    return torch.from_numpy(scaled.reshape(len(faces), 2 * NUM_LANDMARKS))


def normalised_mean_error(pred: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per-image NME: mean point-to-point distance / inter-ocular distance (outer eye corners 37-46).

    ``pred`` and ``true`` are (N, 68, 2) (or (N, 136)) in the same units.
    """
    p = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1, 2)
    t = np.asarray(true, dtype=np.float64).reshape(len(true), -1, 2)
    if p.shape != t.shape or p.shape[1] != NUM_LANDMARKS:
        raise ValueError(f"normalised_mean_error: pred {p.shape} and true {t.shape} must both be (N, 68, 2)")
    ocular = np.linalg.norm(t[:, OUTER_EYE_CORNERS[0]] - t[:, OUTER_EYE_CORNERS[1]], axis=1)
    if np.any(ocular <= 0):
        raise ValueError("normalised_mean_error: a true face has coincident outer eye corners")
    return np.linalg.norm(p - t, axis=2).mean(axis=1) / ocular


def generate_landmark_faces(cfg: ChapterConfig) -> dict[str, FaceSet]:
    """Generated faces for the landmark branch, split train / valid / test by identity."""
    faces = generate_faces(n_identities=cfg.landmark_identities, size=cfg.landmark_render_side,
                           repeats=cfg.landmark_repeats, seed=cfg.generated_seed, name="generated_landmark_faces")
    return split_by_identity(faces, seed=cfg.generated_seed)


def landmark_tensor_data(faces: FaceSet, batch_size: int, train: bool, centre: torch.Tensor,
                         scale: torch.Tensor) -> TensorData:
    """Faces -> 112 px, 3 channels, ImageNet normalisation; y = the 136 landmark targets standardised
    with ``centre`` and ``scale`` (the regression head ends in BatchNorm1d, whose outputs start near
    N(0, 1)). No flips: a mirrored face would need its landmark indices permuted."""
    return TensorData(faces.images, (landmark_targets(faces) - centre) / scale, batch_size=batch_size, shuffle=train,
                      resize=IMAGE_SIZE, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                      name=f"{faces.name}/{faces.split}")


@dataclasses.dataclass
class LandmarkBranch:
    """The pretrained MobileFaceNet, its run and its held-out error.

    The network regresses standardised coordinates: fraction = output * ``scale`` + ``centre``
    (per coordinate, from the training faces). ``nme`` holds per-image NMEs on the test faces for
    the model and for the mean-shape baseline (the training faces' mean landmarks for every face);
    ``predicted`` (N, 68, 2) in fractions of the image.
    """

    model: MobileFaceNet
    fit: FitResult
    faces: dict[str, FaceSet]
    centre: torch.Tensor
    scale: torch.Tensor
    predicted: np.ndarray
    nme: dict[str, np.ndarray]

    @property
    def run_hash(self) -> str:
        return self.fit.config_hash

    def predict_fractions(self, images: torch.Tensor) -> np.ndarray:
        """(N, 68, 2) landmarks as fractions of the image for normalised 112-px inputs (N, 3, 112, 112)."""
        model = self.model.eval()
        with torch.no_grad():
            out = model(images.to(next(model.parameters()).device)).cpu()
        return (out * self.scale + self.centre).numpy().reshape(-1, NUM_LANDMARKS, 2)

    def table(self, n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
        """Test NME (%) of the branch and of the mean shape, with bootstrap 95% CIs over faces, and
        each NME as a fraction of the mean shape's (1 = no better than a constant face)."""
        rows = []
        reference = float(np.mean(self.nme["mean training shape"]))
        for name, values in self.nme.items():
            point, low, high = stats.bootstrap_ci(lambda _t, v: float(np.mean(v)), np.zeros(len(values), int),
                                                    values, n_resamples=n_bootstrap, seed=seed, stratified=False)
            rows.append({"predictor": name, "test faces": len(values), "NME (%)": 100 * point,
                         "95% CI (bootstrap)": f"[{100 * low:.2f}, {100 * high:.2f}]",
                         "NME / mean-shape NME": round(float(np.mean(values)) / reference, 3)})
        return pd.DataFrame(rows).set_index("predictor")


def pretrain_landmark_branch(cfg: ChapterConfig, run: RunConfig) -> LandmarkBranch:
    """Train (or load) MobileFaceNet to regress the 68 landmarks of generated faces (MSE, AdamW, cosine).

    The branch has the chapter's network size (``cfg.poster_width`` / ``poster_depth``) so it loads
    into every ablation row, where it is frozen (POSTER++ freezes its landmark detector).
    """
    faces = generate_landmark_faces(cfg)
    train_targets = landmark_targets(faces["train"])
    centre, scale = train_targets.mean(dim=0), train_targets.std(dim=0).clamp_min(1e-3)
    train, valid, test = (landmark_tensor_data(faces[split], cfg.landmark_batch_size, split == "train", centre, scale)
                          for split in ("train", "valid", "test"))
    seed_everything(run.seed)
    model = cfg.poster_config(num_classes=len(datasets.FERPLUS_CLASSES)).make_landmark_branch()
    config = TrainConfig(epochs=cfg.landmark_epochs, lr=cfg.landmark_lr, weight_decay=1e-4, schedule="cosine",
                         task="regression", monitor="mse", grad_clip=None, steps_per_epoch=cfg.steps_per_epoch,
                         seed=run.seed, progress=False, tensorboard=cfg.profile != "smoke", amp=cfg.amp)
    key = {"chapter": CHAPTER, "stage": "landmark pretraining", "width": cfg.poster_width,
           "depth": cfg.poster_depth, "faces": faces["train"].source, "init_seed": run.seed}
    result = fit(model, train, valid, config, key=key, name="poster_var-landmarks", device=run.device)
    model = result.model.eval()
    standardised = predict(model, test, run.device, task="regression").outputs
    predicted = (standardised * scale + centre).numpy().reshape(-1, NUM_LANDMARKS, 2)
    true = landmark_targets(faces["test"]).numpy().reshape(-1, NUM_LANDMARKS, 2)
    mean_shape = centre.numpy().reshape(NUM_LANDMARKS, 2)
    nme = {"MobileFaceNet (pretrained here)": normalised_mean_error(predicted, true),
           "mean training shape": normalised_mean_error(np.broadcast_to(mean_shape, true.shape), true)}
    return LandmarkBranch(model=model.cpu(), fit=result, faces=faces, centre=centre, scale=scale,
                          predicted=predicted, nme=nme)


@dataclasses.dataclass
class ImageTrunk:
    """The pretrained IR-50 classifier (:class:`~affectlab.models.ir50.IR50Classifier`), its run, the
    images it saw and its own test accuracy (the trunk alone, pooled + linear)."""

    model: IR50Classifier
    fit: FitResult
    train_images: int
    dataset: str
    test_labels: np.ndarray
    test_predicted: np.ndarray

    @property
    def run_hash(self) -> str:
        return self.fit.config_hash

    def table(self, n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
        """Test accuracy (%) of the trunk's own pooled linear classifier, with a bootstrap 95% CI."""
        point, low, high = stats.bootstrap_ci(accuracy_percent, self.test_labels, self.test_predicted,
                                                n_resamples=n_bootstrap, seed=seed)
        return pd.DataFrame([{"model": "IR-50 trunk + pooled linear classifier (pretraining task)",
                              "training images": self.train_images, "epochs": len(self.fit.history),
                              "test images": len(self.test_labels), "accuracy (%)": round(point, 2),
                              "95% CI (bootstrap)": ci_text(low, high),
                              "from cache": self.fit.loaded_from_cache}]).set_index("model")


def trunk_train_config(cfg: ChapterConfig, run: RunConfig, soft: bool) -> TrainConfig:
    """The trunk's pretraining schedule: the project's fast FER recipe (:func:`affectlab.train.fer_recipe`,
    over ``cfg.trunk_budget_s`` seconds with at most ``cfg.trunk_epochs`` epochs) when
    ``cfg.fast_recipe``, else AdamW (``cfg.trunk_lr``, warm-up, cosine) for ``cfg.trunk_epochs`` epochs.
    No validation split: the last step is kept (nothing is chosen by a score)."""
    target = "soft" if soft else "hard"
    if cfg.fast_recipe:
        return fer_recipe(budget_s=cfg.trunk_budget_s, epochs=cfg.trunk_epochs, seed=run.seed, target=target,
                          steps_per_epoch=cfg.steps_per_epoch, monitor="accuracy", progress=False, amp=cfg.amp)
    return TrainConfig(epochs=cfg.trunk_epochs, lr=cfg.trunk_lr, weight_decay=cfg.weight_decay, schedule="cosine",
                       warmup_epochs=cfg.trunk_warmup_epochs, target=target, grad_clip=None,
                       steps_per_epoch=cfg.steps_per_epoch, monitor="accuracy", seed=run.seed, progress=False,
                       tensorboard=cfg.profile != "smoke", amp=cfg.amp)


def pretrain_image_trunk(splits: DatasetSplits, cfg: ChapterConfig, run: RunConfig) -> ImageTrunk | None:
    """Train (or load) the IR-50 trunk once on ``cfg.trunk_train_size`` stratified training images
    of ``splits`` (None = the whole training split; soft targets when available), the stand-in for
    POSTER++'s MS-Celeb-1M weights, at the trunk size and input side of ``cfg``
    (:meth:`ChapterConfig.poster_config`). None when ``cfg.trunk_epochs`` is 0 (rows then start from
    random weights). Its test accuracy is measured once, after training."""
    if cfg.trunk_epochs == 0:
        return None
    pool = splits.train_pool if splits.train_pool is not None else splits.train
    images = stratified_faces(pool, cfg.trunk_train_size, cfg.subset_seed)
    train = face_tensor_data(images, cfg, train=True, soft=splits.soft, augment=cfg.trunk_augment())
    train.batch_size = cfg.trunk_batch
    test = face_tensor_data(splits.test, cfg, train=False, soft=False)
    seed_everything(run.seed)
    poster = cfg.poster_config(len(splits.class_names))
    width, depth = poster.trunk_scale
    model = IR50Classifier(len(splits.class_names), width=width, depth=depth, input_size=poster.trunk_input_size)
    config = trunk_train_config(cfg, run, splits.soft)
    key = {"chapter": CHAPTER, "stage": "image trunk pretraining", "dataset": splits.name,
           "classes": list(splits.class_names), "init_seed": run.seed}
    result = fit(model, train, None, config, key=key, name=f"poster_var-trunk-{splits.name}", device=run.device)
    preds = predict(result.model.eval(), test, run.device, task="classification")
    assert preds.labels is not None
    return ImageTrunk(model=result.model.cpu(), fit=result, train_images=len(images), dataset=splits.name,
                      test_labels=preds.labels.numpy(), test_predicted=preds.outputs.argmax(1).numpy())
