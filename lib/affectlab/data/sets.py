"""The two in-memory dataset containers every loader returns.

:class:`FaceSet` holds face images as one uint8 tensor (N, 1, H, W) with labels in the 8-class
FERPlus taxonomy (see :mod:`affectlab.data.taxonomy`); :class:`EEGSet` holds EEG as a float32
array (trials, channels, samples) or band-power features (trials, bands, channels).
Both carry ``source``: a human-readable statement of where the data came from, for captions.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch


@dataclasses.dataclass
class FaceSet:
    """Faces in memory.

    Attributes:
        images: uint8 tensor (N, C, H, W), C = 1 (greyscale) unless stated.
        labels: int64 tensor (N,), index into ``class_names``; -1 = unknown.
        class_names: names of the label indices (the FERPlus 8 for mapped sets).
        soft_labels: float32 (N, K) vote distributions (FERPlus), rows sum to 1, or None.
        identity: int64 (N,) subject index, or None when unknown.
        identity_names: names of the identity indices (e.g. CK+ ``S010``), or None.
        valence, arousal: float32 (N,) in [-1, 1], or None.
        name: dataset name in the registry; split: split name.
        source: "real: <path>" or "generated: <recipe>", for captions.
        meta: anything else a loader knows (file names, original labels, ...).
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    name: str
    split: str
    source: str
    soft_labels: torch.Tensor | None = None
    identity: torch.Tensor | None = None
    identity_names: tuple[str, ...] | None = None
    valence: torch.Tensor | None = None
    arousal: torch.Tensor | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"{self.name}/{self.split}: images must be uint8 (N, C, H, W); got "
                f"{self.images.dtype} {tuple(self.images.shape)}"
            )
        for field in ("labels", "soft_labels", "identity", "valence", "arousal"):
            value = getattr(self, field)
            if value is not None and len(value) != n:
                raise ValueError(f"{self.name}/{self.split}: {field} has {len(value)} rows, images {n}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, index: torch.Tensor | np.ndarray | list[int] | slice) -> "FaceSet":
        """Rows ``index`` of every per-sample field (meta arrays of length N included)."""
        if isinstance(index, slice):
            idx = torch.arange(len(self))[index]
        else:
            arr = np.asarray(index.cpu() if isinstance(index, torch.Tensor) else index)
            if arr.dtype == bool:
                if len(arr) != len(self):
                    raise ValueError(f"{self.name}/{self.split}: boolean mask of length {len(arr)}, need {len(self)}")
                arr = np.flatnonzero(arr)
            idx = torch.as_tensor(arr, dtype=torch.long)
        n = len(self)

        def take(v: Any) -> Any:
            if v is None:
                return None
            if isinstance(v, torch.Tensor):
                return v[idx]
            if isinstance(v, np.ndarray) and len(v) == n:
                return v[idx.numpy()]
            if isinstance(v, list) and len(v) == n:
                return [v[i] for i in idx.tolist()]
            return v

        return dataclasses.replace(
            self,
            images=self.images[idx],
            labels=self.labels[idx],
            soft_labels=take(self.soft_labels),
            identity=take(self.identity),
            valence=take(self.valence),
            arousal=take(self.arousal),
            meta={k: take(v) for k, v in self.meta.items()},
        )

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.labels[self.labels >= 0], minlength=self.num_classes)
        return {c: int(k) for c, k in zip(self.class_names, counts)}


@dataclasses.dataclass
class EEGSet:
    """EEG in memory.

    Attributes:
        data: float32 array, (trials, channels, samples) for signals or (trials, bands, channels)
            for band-power features (``kind`` says which).
        kind: "signal" or "band_power".
        sfreq: sampling rate in Hz (signals), or None for features.
        ch_names: channel names, in the order of the channel axis.
        montage: name of the MNE standard montage the names refer to (e.g. "standard_1020").
        bands: band names for band-power features, e.g. ("theta", "slow_alpha", ...), else None.
        labels: dict of per-trial label arrays (e.g. "valence_binary", "emotion", "valence").
        subject: int64 (trials,) subject index, or None.
        name, split, source: as for :class:`FaceSet`.
        assumptions: statements a user must know (e.g. an undocumented electrode order).
    """

    data: np.ndarray
    kind: str
    ch_names: tuple[str, ...]
    name: str
    split: str
    source: str
    sfreq: float | None = None
    montage: str = "standard_1020"
    bands: tuple[str, ...] | None = None
    labels: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    subject: np.ndarray | None = None
    assumptions: tuple[str, ...] = ()
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("signal", "band_power"):
            raise ValueError(f"{self.name}: kind must be 'signal' or 'band_power', got {self.kind!r}")
        if self.data.ndim != 3:
            raise ValueError(f"{self.name}: data must be 3-D, got shape {self.data.shape}")
        ch_axis = 1 if self.kind == "signal" else 2
        if self.data.shape[ch_axis] != len(self.ch_names):
            raise ValueError(
                f"{self.name}: {len(self.ch_names)} channel names but data has "
                f"{self.data.shape[ch_axis]} channels (shape {self.data.shape})"
            )
        if not np.isfinite(self.data).all():
            bad = np.argwhere(~np.isfinite(self.data))[0].tolist()
            raise ValueError(f"{self.name}/{self.split}: data has NaN/inf (first at index {bad})")
        for key, value in self.labels.items():
            if len(value) != len(self.data):
                raise ValueError(f"{self.name}: label {key!r} has {len(value)} rows, data {len(self.data)}")

    def __len__(self) -> int:
        return len(self.data)

    def subset(self, index: np.ndarray | list[int]) -> "EEGSet":
        idx = np.asarray(index)
        if idx.dtype == bool:
            if len(idx) != len(self):
                raise ValueError(f"{self.name}/{self.split}: boolean mask of length {len(idx)}, need {len(self)}")
            idx = np.flatnonzero(idx)
        n = len(self)

        def take(v: Any) -> Any:
            if isinstance(v, (np.ndarray, torch.Tensor)) and len(v) == n:
                return v[idx]
            if isinstance(v, list) and len(v) == n:
                return [v[i] for i in idx.tolist()]
            return v

        return dataclasses.replace(
            self,
            data=self.data[idx],
            labels={k: v[idx] for k, v in self.labels.items()},
            subject=None if self.subject is None else self.subject[idx],
            meta={k: take(v) for k, v in self.meta.items()},
        )
