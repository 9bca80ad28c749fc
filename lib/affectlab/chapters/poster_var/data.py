"""Chapter 04 data (paper 003, "Datasets"): FERPlus (votes -> the training targets), plus RAF-DB
and AffectNet when the data root holds them; labelled rows, classes present in training, stratified
subsets (:func:`affectlab.sampling.stratified_indices`) and the 112-px tensors both POSTER++
branches take."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import torch

from affectlab import data as datasets
from affectlab.augment import BatchAugment
from affectlab.config import RunConfig
from affectlab.data.sets import FaceSet
from affectlab.sampling import stratified_indices
from affectlab.train import TensorData, from_faceset

from .config import (DATASET_SPLITS, DISPLAY_NAME, DROPPED_CLASSES, IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD,
                     REGISTRY_NAME, ChapterConfig)


def stratified_faces(faces: FaceSet, size: int | None, seed: int) -> FaceSet:
    """``size`` labelled rows of ``faces`` keeping the class proportions
    (:func:`affectlab.sampling.stratified_indices`); ``None`` keeps every labelled row."""
    return faces.subset(stratified_indices(faces.labels, size, seed))


def labelled(faces: FaceSet, soft: bool) -> FaceSet:
    """Rows with a known label (FERPlus majority vote; -1 = excluded, e.g. unknown / not a face);
    with ``soft`` also a vote distribution that sums to > 0."""
    keep = faces.labels >= 0
    if soft:
        if faces.soft_labels is None:
            raise ValueError(f"FaceSet {faces.name}/{faces.split} has no soft labels (votes)")
        keep &= faces.soft_labels.sum(dim=1) > 0
    return faces.subset(torch.nonzero(keep).flatten())


def keep_present_classes(train: FaceSet, *others: FaceSet | None) -> tuple[FaceSet | None, ...]:
    """Restrict every split to the classes present in ``train`` (e.g. RAF-DB has no contempt: 7 classes).

    Labels are re-indexed in the original order; rows of other classes become -1; soft labels keep
    the present classes' columns, renormalised. Returns (train, *others) with the new ``class_names``.
    """
    present = sorted(int(c) for c in torch.unique(train.labels[train.labels >= 0]))
    if not present:
        raise ValueError(f"FaceSet {train.name}/{train.split} has no labelled rows")
    if present == list(range(train.num_classes)):
        return (train, *others)
    lookup = torch.full((train.num_classes,), -1, dtype=torch.long)
    lookup[present] = torch.arange(len(present))
    names = tuple(train.class_names[c] for c in present)

    def restrict(faces: FaceSet | None) -> FaceSet | None:
        if faces is None:
            return None
        labels = torch.where(faces.labels >= 0, lookup[faces.labels.clamp_min(0)], faces.labels)
        soft = faces.soft_labels
        if soft is not None:
            soft = soft[:, present]
            total = soft.sum(dim=1, keepdim=True)
            soft = torch.where(total > 0, soft / total.clamp_min(1e-12), soft)
        return dataclasses.replace(faces, labels=labels, soft_labels=soft, class_names=names)

    return tuple(restrict(f) for f in (train, *others))


def drop_classes(faces: FaceSet | None, names: tuple[str, ...]) -> FaceSet | None:
    """Mark the rows of the classes ``names`` unknown (-1) and zero their vote columns, so that
    :func:`keep_present_classes` removes those classes from every split (e.g. AffectNet without
    contempt for Table 3's 7-class column). Unknown names raise, naming the FaceSet's classes."""
    if faces is None or not names:
        return faces
    missing = [n for n in names if n not in faces.class_names]
    if missing:
        raise ValueError(f"drop_classes: {missing} not among {faces.name}/{faces.split} classes {faces.class_names}")
    dropped = torch.tensor([faces.class_names.index(n) for n in names])
    hit = torch.isin(faces.labels, dropped)
    soft = faces.soft_labels
    if soft is not None:
        soft = soft.clone()
        soft[:, dropped] = 0
    return dataclasses.replace(faces, labels=torch.where(hit, torch.full_like(faces.labels, -1), faces.labels),
                               soft_labels=soft)


@dataclasses.dataclass
class DatasetSplits:
    """One dataset as the chapter uses it: labelled, class-restricted, subsampled splits."""

    name: str
    train: FaceSet
    valid: FaceSet | None
    test: FaceSet
    soft: bool
    train_pool: FaceSet | None = None

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names

    @property
    def generated(self) -> bool:
        return self.train.source.startswith("generated")

    @property
    def display_name(self) -> str:
        """e.g. "FERPlus", or "FERPlus (generated stand-in)" for the embedded default."""
        name = DISPLAY_NAME.get(self.name, self.name)
        return f"{name} (generated stand-in)" if self.generated else name

    def majority_class(self) -> tuple[int, float]:
        """(index, test accuracy in %) of always answering the most frequent *training* class: the
        reference every accuracy of the chapter is read against (chosen without the test labels)."""
        counts = np.bincount(self.train.labels.numpy(), minlength=len(self.class_names))
        majority = int(counts.argmax())
        return majority, 100.0 * float(np.mean(self.test.labels.numpy() == majority))

    def summary_rows(self) -> list[dict[str, Any]]:
        rows = []
        for role, faces in (("train", self.train), ("valid", self.valid), ("test", self.test)):
            if faces is None:
                continue
            rows.append({"dataset": self.display_name, "role": role, "split": faces.split, "images": len(faces),
                         "classes": len(self.class_names), "targets": "vote distribution" if self.soft else "hard labels",
                         "source": faces.source})
        return rows


@dataclasses.dataclass
class ChapterData:
    """Every dataset of the run, FERPlus first."""

    datasets: dict[str, DatasetSplits]

    def __getitem__(self, name: str) -> DatasetSplits:
        if name not in self.datasets:
            raise KeyError(f"dataset {name!r} is not part of this run; have {list(self.datasets)}")
        return self.datasets[name]

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([r for d in self.datasets.values() for r in d.summary_rows()])


def prepare_splits(name: str, train: FaceSet, valid: FaceSet | None, test: FaceSet, cfg: ChapterConfig) -> DatasetSplits:
    """Labelled rows, classes present in training, stratified subsets of the configured sizes."""
    soft = train.soft_labels is not None
    valid = None if cfg.valid_size == 0 else valid
    train, valid, test = (None if f is None else labelled(f, soft) for f in (train, valid, test))
    train, valid, test = keep_present_classes(train, valid, test)
    train, valid, test = (None if f is None else labelled(f, soft) for f in (train, valid, test))
    return DatasetSplits(
        name=name,
        train=stratified_faces(train, cfg.train_size, cfg.subset_seed),
        train_pool=train,
        valid=None if valid is None or len(valid) == 0 else stratified_faces(valid, cfg.valid_size, cfg.subset_seed),
        test=stratified_faces(test, cfg.test_size, cfg.subset_seed),
        soft=soft,
    )


def load_dataset_splits(name: str, cfg: ChapterConfig, run: RunConfig) -> DatasetSplits:
    """Load ``name`` from the run's data root (or its embedded default) and prepare its splits."""
    if name not in DATASET_SPLITS:
        raise ValueError(f"dataset {name!r} has no split plan; known {sorted(DATASET_SPLITS)}")
    train_split, valid_split, test_split = DATASET_SPLITS[name]
    source = REGISTRY_NAME.get(name, name)
    train = datasets.load(source, run.data_root, train_split)
    valid = None if valid_split is None or cfg.valid_size == 0 else datasets.load(source, run.data_root, valid_split)
    test = datasets.load(source, run.data_root, test_split)
    dropped = DROPPED_CLASSES.get(name, ())
    train, valid, test = (drop_classes(f, dropped) for f in (train, valid, test))
    return prepare_splits(name, train, valid, test, cfg)


def load_chapter_data(cfg: ChapterConfig, run: RunConfig) -> ChapterData:
    """FERPlus (the user's copy, or the generated stand-in when there is no data root), plus
    RAF-DB and AffectNet when the data root holds them."""
    loaded = {"ferplus": load_dataset_splits("ferplus", cfg, run)}
    if run.data_root is not None:
        for name in cfg.extra_datasets:
            if datasets.available(REGISTRY_NAME.get(name, name), run.data_root):
                loaded[name] = load_dataset_splits(name, cfg, run)
    return ChapterData(loaded)


def face_tensor_data(faces: FaceSet, cfg: ChapterConfig, *, train: bool, soft: bool,
                     augment: BatchAugment | None = None) -> TensorData:
    """A FaceSet as the POSTER models take it: 112 px, 3 channels, ImageNet normalisation;
    augmented (``augment``, default the rows' :meth:`ChapterConfig.augment`) and shuffled for
    training; ``soft`` carries the vote distributions."""
    if train and augment is None:
        augment = cfg.augment()
    return from_faceset(faces, soft=soft, batch_size=cfg.batch_size, shuffle=train, resize=IMAGE_SIZE, channels=3,
                        mean=IMAGENET_MEAN, std=IMAGENET_STD, augment=augment if train else None,
                        name=f"{faces.name}/{faces.split}")


