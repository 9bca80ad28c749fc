"""Apply a trained chapter-01 student to your own faces (issue 14, item 9): one call loads a
student's best checkpoint from its run folder and predicts on any :class:`FaceSet` (e.g. from
:func:`affectlab.data.load_image_csv`), returning present-only and 8-way metrics (paper Sec. 5.1,
App. A.2; the two readings of Table 2).

Everything the prediction needs is read from the run folder itself: the architecture, head scale
and input side from the run key in ``config.json``, the pixel normalisation from its training-data
description, the weights from ``best.pt``; nothing depends on the chapter's configuration objects.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affectlab import metrics
from affectlab.config import default_runs_dir
from affectlab.data.sets import FaceSet
from affectlab.data.taxonomy import FERPLUS_CLASSES
from affectlab.models.resnet_student import FERStudent
from affectlab.train import TensorData, load_checkpoint, predict

from .config import CHAPTER

__all__ = ["StudentPrediction", "load_student", "predict_faces"]


@dataclasses.dataclass
class StudentPrediction:
    """What :func:`predict_faces` returns: ``logits`` (N, 8) and ``predicted`` class names (8-way
    arg-max) for every face; ``present_only`` and ``eight_way`` metric dicts (accuracy, macro_f1,
    balanced_accuracy; fractions) over the labelled faces (None when no face is labelled); the
    ``present`` classes of the labels; ``run_dir`` and ``variant`` of the student."""

    logits: np.ndarray
    predicted: list[str]
    present_only: dict[str, float] | None
    eight_way: dict[str, float] | None
    present: list[str]
    run_dir: Path
    variant: str


def _resolve_run_dir(student: str | Path) -> Path:
    path = Path(student)
    if not path.is_dir():
        path = default_runs_dir() / str(student)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"parameter student: {student!r} is not a run folder with config.json (looked at "
                                f"{path}); pass a folder such as $AFFECTLAB_RUNS/ch01-B3-s0-<hash>")
    return path


def load_student(student: str | Path, device: str | torch.device = "cpu") -> tuple[FERStudent, dict[str, Any]]:
    """The best checkpoint of a chapter-01 student run folder (a path, or a folder name under
    ``$AFFECTLAB_RUNS``) as an eval-mode :class:`FERStudent`, with its run description
    (``config.json``). Raises a clear error for a folder that is not a finished chapter-01 student."""
    run_dir = _resolve_run_dir(student)
    description = json.loads((run_dir / "config.json").read_text())
    key = description.get("key", {})
    if key.get("chapter") != CHAPTER or key.get("role") not in ("student", "warm_start"):
        raise ValueError(f"{run_dir / 'config.json'}: not a chapter-01 student (chapter={key.get('chapter')!r}, "
                         f"role={key.get('role')!r})")
    if "image_size" not in key:
        raise ValueError(f"{run_dir / 'config.json'}: the run key has no image_size (a run from before issue 14); "
                         "retrain it with the current chapter")
    best = run_dir / "best.pt"
    if not best.exists():
        raise FileNotFoundError(f"{best}: the run has no best checkpoint (unfinished run?)")
    model = FERStudent(arch=key["arch"], n_classes=len(FERPLUS_CLASSES), proj_dim=256, in_channels=1,
                       head_input_scale=key.get("head_input_scale"))
    model.load_state_dict(load_checkpoint(best)["model"])
    model.to(device).eval()
    return model, description


def predict_faces(student: str | Path, faces: FaceSet, device: str | torch.device = "cpu") -> StudentPrediction:
    """Predict the 8 FERPlus classes for ``faces`` with a trained student and score it.

    Args:
        student: the student's run folder (path or folder name under ``$AFFECTLAB_RUNS``).
        faces: any greyscale :class:`FaceSet` whose labels index the FERPlus taxonomy (-1 =
            unknown; unknown faces are predicted but not scored); resized to the student's side.
        device: where to run the network.

    Returns a :class:`StudentPrediction` with the present-only reading (arg-max over the classes
    present in the labels, macro averages over them) and the fixed 8-way reading (arg-max over
    all 8; macro-F1 averages all 8, an absent class scoring 0).
    """
    if not isinstance(faces, FaceSet):
        raise TypeError(f"parameter faces must be a FaceSet; got {type(faces).__name__}")
    if faces.images.shape[1] != 1:
        raise ValueError(f"parameter faces: {faces.name}/{faces.split} has {faces.images.shape[1]} channels; "
                         "the students read greyscale (1 channel)")
    if tuple(faces.class_names) != tuple(FERPLUS_CLASSES):
        raise ValueError(f"parameter faces: class_names {faces.class_names} are not the FERPlus taxonomy "
                         f"{FERPLUS_CLASSES}; map the labels first")
    model, description = load_student(student, device)
    side = int(description["key"]["image_size"])
    norm = description["train_data"]
    data = TensorData(faces.images, faces.labels, batch_size=256, shuffle=False, drop_last=False,
                      resize=None if faces.images.shape[-1] == side else side,
                      mean=norm["mean"][0] if norm.get("mean") else None,
                      std=norm["std"][0] if norm.get("std") else None, name=f"{faces.name}/{faces.split}")
    preds = predict(model, data, device, task="classification")
    logits = torch.empty_like(preds.outputs)
    logits[preds.index] = preds.outputs
    scores = logits.float().numpy()
    true = faces.labels.numpy()
    known = true >= 0
    labels = list(range(len(FERPLUS_CLASSES)))
    present_only = eight_way = None
    if known.any():
        t, s = true[known], scores[known]
        pred = s.argmax(1)
        eight_way = {"accuracy": metrics.accuracy(t, pred), "macro_f1": metrics.macro_f1(t, pred, labels=labels),
                     "balanced_accuracy": metrics.balanced_accuracy(t, pred)}
        po = metrics.present_only_metrics(t, pred, labels=labels, scores=s)
        present_only = {k: float(po[k]) for k in ("accuracy", "macro_f1", "balanced_accuracy")}
    return StudentPrediction(
        logits=scores, predicted=[FERPLUS_CLASSES[i] for i in scores.argmax(1)], present_only=present_only,
        eight_way=eight_way, present=[FERPLUS_CLASSES[c] for c in sorted(set(true[known].tolist()))],
        run_dir=_resolve_run_dir(student), variant=str(description["key"].get("variant", "warm start")))
