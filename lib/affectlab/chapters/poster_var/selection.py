"""Every choice of the quick profile is made on validation images (issue 17, item 2): the rows'
learning rate (:func:`select_row_lr`) and each row's best epoch (the trainer's ``monitor`` on the
validation split). The test split is scored once per row, after training (:mod:`.experiments`).

:func:`require_selection_faces` is the guard: a function that chooses something calls it on every
FaceSet it receives, and it raises when one of them is (or overlaps) the dataset's evaluation
split, so no code path can choose on test images by mistake (a unit test checks this).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch

from affectlab import metrics
from affectlab.config import RunConfig
from affectlab.data.sets import FaceSet
from affectlab.models.poster import ablation_configs
from affectlab.train import TensorData, fit, predict

from .config import CHAPTER, DATASET_SPLITS, ChapterConfig


def require_selection_faces(dataset: str, *faces: FaceSet) -> None:
    """Raise ValueError when any of ``faces`` comes from ``dataset``'s evaluation split
    (:data:`~.config.DATASET_SPLITS`): choices must be made on training or validation images."""
    if dataset not in DATASET_SPLITS:
        raise ValueError(f"require_selection_faces: dataset {dataset!r} has no split plan; known {sorted(DATASET_SPLITS)}")
    _, valid_split, test_split = DATASET_SPLITS[dataset]
    for f in faces:
        if f.split == test_split:
            raise ValueError(f"selection on {f.name}/{f.split}: that is {dataset}'s evaluation split; choose on "
                             f"{valid_split or 'a validation split'} images instead")


@dataclasses.dataclass
class LearningRateSelection:
    """The rows' learning rate, chosen by validation accuracy (``scores``: lr -> accuracy in %)."""

    chosen: float
    scores: dict[float, float]
    row: str
    train_images: int
    valid_images: int
    budget_s: float | None

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"learning rate": f"{lr:g}", "validation accuracy (%)": round(acc, 2),
                              "chosen": lr == self.chosen} for lr, acc in self.scores.items()]).set_index("learning rate")

    def description(self) -> str:
        budget = f"{self.budget_s:g}-s" if self.budget_s else "short"
        return (f"lr {self.chosen:g}, chosen among {', '.join(f'{lr:g}' for lr in self.scores)} by the {self.row} row's "
                f"accuracy on {self.valid_images} validation images after a {budget} trial on {self.train_images} "
                "training images")


def select_row_lr(dataset: str, train_faces: FaceSet, valid_faces: FaceSet, train: TensorData, valid: TensorData,
                  make_row, cfg: ChapterConfig, run: RunConfig, row: str = "baseline") -> LearningRateSelection:
    """Try each of ``cfg.row_lr_candidates`` on ``row`` (a short run of ``cfg.selection_budget_s``
    seconds on ``train``, the cached maps of ``train_faces``) and keep the one with the highest
    accuracy on ``valid`` (the maps of ``valid_faces``); ties go to the first candidate.
    ``make_row(config, seed)`` builds the trainable row. Never sees test images
    (:func:`require_selection_faces`)."""
    from .experiments import row_train_config  # import here: experiments imports this module

    require_selection_faces(dataset, train_faces, valid_faces)
    if not cfg.row_lr_candidates:
        raise ValueError("select_row_lr: cfg.row_lr_candidates is empty (nothing to choose)")
    config = ablation_configs(cfg.poster_config(len(train_faces.class_names)))[row]
    scores: dict[float, float] = {}
    for lr in cfg.row_lr_candidates:
        model = make_row(config, run.seed)
        train_config = dataclasses.replace(row_train_config(cfg, run.seed, train.soft is not None, dataset, lr=lr),
                                           budget_s=cfg.selection_budget_s)
        key = {"chapter": CHAPTER, "stage": "row lr selection", "dataset": dataset, "row": row, "lr": lr,
               "init_seed": run.seed, "poster": dataclasses.asdict(config)}
        result = fit(model, train, None, train_config, key=key, name=f"poster_var-{dataset}-lr-selection",
                     device=run.device)
        preds = predict(result.model.eval(), valid, run.device, task="classification")
        assert preds.labels is not None
        scores[lr] = 100.0 * metrics.accuracy(preds.labels.numpy(), preds.outputs.argmax(1).numpy())
    best = max(scores.values())
    chosen = next(lr for lr, acc in scores.items() if acc == best)
    return LearningRateSelection(chosen=chosen, scores=scores, row=row, train_images=train.num_samples,
                                 valid_images=valid.num_samples, budget_s=cfg.selection_budget_s)


def subset_rows(data: TensorData, size: int | None, seed: int) -> TensorData:
    """A stratified subset of ``size`` rows of ``data`` (same batch size and shuffling); None = all."""
    from affectlab.sampling import stratified_indices

    if size is None or size >= data.num_samples:
        return data
    assert data.y is not None
    keep = torch.as_tensor(np.asarray(stratified_indices(data.y, size, seed)), dtype=torch.long)
    return TensorData(data.x[keep], data.y[keep], soft=None if data.soft is None else data.soft[keep],
                      batch_size=data.batch_size, shuffle=data.shuffle, name=f"{data.name} ({size} stratified)")
