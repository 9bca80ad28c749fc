"""A shared FERPlus vision teacher: the project's fast FER recipe (issue 13) trained once on all
FERPlus training images, reused by every chapter that needs a strong face-expression network.

NeuroGaze-Distill (Li, Xu, Zhao, Zhu 2025) Sec. 4.3 distils the student's logits from "a vision
teacher" it does not name; its KD gain (+12 macro-F1 points over CE, Table 3) implies a teacher
stronger than the CE student. :func:`train_or_load_fer_teacher` is that teacher for chapter 01 and
is written to be reused (e.g. as a KD source or a reference network in other chapters):

- network: :func:`affectlab.train.fer_recipe_model` (torchvision ResNet-18, 48 px greyscale
  repeated to 3 channels, 8 FERPlus classes), no pretrained weights;
- data: every labelled FERPlus training image (majority-vote labels, the loader's rule), uint8 in
  memory, flip + 4-px crop (:func:`affectlab.train.fer_recipe_data`);
- recipe: :func:`affectlab.train.fer_recipe` with a wall-clock ``budget_s``; the checkpoint is
  chosen by macro-F1 on FERPlus *valid* (the test split is never looked at while training);
- train-or-load through :func:`affectlab.train.fit` (run ``fer-teacher-<hash>`` under
  ``AFFECTLAB_RUNS``): a rerun with the same data, budget and seed loads the finished run;
- :func:`teacher_logits` caches the teacher's logits for a whole :class:`FaceSet` (un-augmented,
  row order) beside the checkpoint, so KD students of any chapter read them instead of
  recomputing them per variant.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch

from affectlab import data as datasets
from affectlab.config import RunConfig, config_hash, seed_everything
from affectlab.data.sets import FaceSet
from affectlab.train import FitResult, TensorData, fer_recipe, fer_recipe_data, fer_recipe_model, fit, predict

__all__ = ["FERTeacher", "train_or_load_fer_teacher", "teacher_inputs", "teacher_logits", "FER_TEACHER_NAME"]

#: Run-name prefix of the shared teacher (``$AFFECTLAB_RUNS/fer-teacher-<hash>``).
FER_TEACHER_NAME = "fer-teacher"


@dataclasses.dataclass
class FERTeacher:
    """The trained teacher: ``fit`` (its :class:`FitResult`, best checkpoint by FERPlus-valid
    macro-F1 loaded), the FERPlus ``splits`` it was trained/selected on and their ``source``, and a
    one-line ``description`` for captions."""

    fit: FitResult
    splits: dict[str, FaceSet]
    budget_s: float
    seed: int

    @property
    def model(self) -> torch.nn.Module:
        return self.fit.model

    @property
    def description(self) -> str:
        return (f"ResNet-18 (torchvision, 48 px, from scratch) on all {len(self.splits['train']):,} FERPlus training "
                f"images, fast FER recipe, {self.budget_s:g} s budget, seed {self.seed}, checkpoint chosen on "
                f"FERPlus valid (epoch {self.fit.best_epoch})")


def teacher_inputs(faces: FaceSet, *, batch_size: int = 256) -> TensorData:
    """Un-augmented recipe inputs for every row of ``faces`` (unknown labels kept, row order):
    what :func:`teacher_logits` and any prediction with the teacher read."""
    side = min(faces.images.shape[-2:])
    return TensorData(faces.images, faces.labels, batch_size=batch_size, shuffle=False, drop_last=False,
                      channels=3, resize=None if side == 48 else 48, name=f"{faces.name}/{faces.split} (teacher)")


def train_or_load_fer_teacher(run: RunConfig, budget_s: float = 480.0, seed: int = 0) -> FERTeacher:
    """Train (or load) the shared FERPlus teacher (see the module docstring).

    Args:
        run: the run (data root and device); FERPlus comes from ``run.data_root`` when it holds a
            copy, else from the embedded generated faces (the run key records which).
        budget_s: wall-clock training budget in seconds (issue 13: 8 min reach ~78% FERPlus test
            on 2 CPU cores; more on a CPU with native bf16).
        seed: initial weights and data order.
    """
    if not isinstance(budget_s, (int, float)) or isinstance(budget_s, bool) or not budget_s > 0:
        raise ValueError(f"parameter budget_s must be a number of seconds > 0; got {budget_s!r}")
    splits = {s: datasets.load_or_embedded("ferplus", run.data_root, s) for s in ("train", "valid")}
    train = fer_recipe_data(splits["train"], train=True, side=48)
    val = fer_recipe_data(splits["valid"], train=False, side=48)
    seed_everything(seed)
    model = fer_recipe_model(8)
    config = fer_recipe(budget_s=float(budget_s), seed=seed, progress=False)
    key = {"role": "fer_teacher", "arch": "torchvision-resnet18", "side": 48, "init_seed": seed,
           "faces": {s: f.source for s, f in splits.items()}, "selection": "FERPlus valid macro-F1"}
    result = fit(model, train, val, config, key=key, name=FER_TEACHER_NAME, device=run.device)
    return FERTeacher(fit=result, splits=splits, budget_s=float(budget_s), seed=seed)


def teacher_logits(teacher: FERTeacher | FitResult, faces: FaceSet, device: Any = "cpu") -> torch.Tensor:
    """The teacher's logits (N, 8) for every row of ``faces`` (un-augmented, row order), cached
    beside its checkpoint as ``logits-<fingerprint>.pt`` so they are computed once per face set."""
    result = teacher.fit if isinstance(teacher, FERTeacher) else teacher
    data = teacher_inputs(faces)
    tag = config_hash({"data": data.describe(), "best": result.best_epoch, "hash": result.config_hash})
    path = result.run_dir / f"logits-{tag}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    preds = predict(result.model, data, device, task="classification")
    logits = torch.empty_like(preds.outputs, dtype=torch.float32)
    logits[preds.index] = preds.outputs.float()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(logits, tmp)
    os.replace(tmp, path)
    return logits
