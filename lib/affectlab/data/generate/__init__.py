"""Generated data: the embedded default that stands in for every registry dataset without a data root.

:func:`embedded` maps a registry name and split to a generator call (sizes kept modest so a smoke
run builds its data in seconds; results are cached under ``config.default_cache_dir()/generated``,
keyed by the generator's parameters, the packaged face model and :func:`generator_fingerprint`, the
source of every ``generate/*.py`` and of the package modules they import (face model, renderer,
taxonomy, ...), so a changed generator never serves an old cache; later runs load in well under a
second):

==============  ===========================================================================
ferplus         generated 8-class faces (:func:`faces.generate_faces`, 40 identities x 8 x 3
                intensities), identity-disjoint train / valid / test (70/15/15 % of identities),
                FERPlus-style soft labels from 10 simulated annotators
fer2013         the same images without contempt, FER2013's 7 labels (0 angry ... 6 neutral),
                splits train / public_test / private_test = the ferplus identity splits;
                ``meta["ferplus_label"]`` holds the 8-class index (FER2013 and FERPlus share
                images, so the stand-ins do too)
ckplus          7 classes without neutral (FERPlus indices), 40 identities x 3 apex frames
                (intensities 0.8, 0.9, 1.0), near-frontal, split "all"
kdef            :func:`faces.generate_kdef_like`: 35 identities x 7, split "frontal" (yaw 0) or
                "all" (yaw -45, 0, 45)
rafdb           7 basic classes, wide pose jitter (25 deg), identity-disjoint train / test
affectnet       8 classes with valence/arousal, pose jitter 25 deg, train / valid
affectnet_mini  as affectnet, train / valid / test
disfa           :func:`faces.generate_disfa_like` sequences with AU intensities, split "all"
deap            :func:`eeg.generate_band_power_set` (32 subjects x 40 trials)
mahnob_hci      band-power set (27 subjects x 20 trials)
dreamer         band-power set (23 subjects x 18 trials; the real DREAMER is 14-channel signals)
eeglab_sample   :func:`eeg.simulate_eeg`: one 60 s recording of the 30 EEG channels at 128 Hz
eav             :func:`paired.generate_paired` EEG (5 s trials at 100 Hz, 30 channels, 4 subjects
                x 5 emotions x 4 trials per task) with the face trajectories in ``meta`` (no
                frames: call ``generate_paired(render=True)`` for those); splits speaking /
                listening / all
==============  ===========================================================================

Every returned set says "generated: ..." in ``source``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import pkgutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from affectlab.config import code_fingerprint, config_hash, default_cache_dir
from affectlab.data.sets import EEGSet, FaceSet

FACE_SEED = 20240601
EEG_SEED = 20240602

# name -> (kind, splits, generator parameters)
FACE_SETS: dict[str, dict[str, Any]] = {
    "ferplus": {"splits": ("train", "valid", "test"), "n_identities": 40, "intensities": (0.4, 0.7, 1.0),
                "pose_jitter_deg": 15.0},
    "fer2013": {"splits": ("train", "public_test", "private_test"), "base": "ferplus"},
    "ckplus": {"splits": ("all",), "n_identities": 40, "intensities": (0.8, 0.9, 1.0), "pose_jitter_deg": 4.0,
               "drop": ("neutral",)},
    "kdef": {"splits": ("all", "frontal"), "n_identities": 35},
    "rafdb": {"splits": ("train", "test"), "n_identities": 40, "intensities": (0.5, 0.75, 1.0),
              "pose_jitter_deg": 25.0, "drop": ("contempt",), "fractions": (0.8, 0.2)},
    "affectnet": {"splits": ("train", "valid"), "n_identities": 40, "intensities": (0.4, 0.7, 1.0),
                  "pose_jitter_deg": 25.0, "fractions": (0.85, 0.15)},
    "affectnet_mini": {"splits": ("train", "valid", "test"), "n_identities": 40, "intensities": (0.4, 0.7, 1.0),
                       "pose_jitter_deg": 25.0},
    "disfa": {"splits": ("all",), "n_identities": 6, "seconds": 60.0, "fps": 2.0},
}
EEG_SETS: dict[str, dict[str, Any]] = {
    "deap": {"splits": ("all",), "n_subjects": 32, "trials_per_subject": 40},
    "mahnob_hci": {"splits": ("all",), "n_subjects": 27, "trials_per_subject": 20},
    "dreamer": {"splits": ("all",), "n_subjects": 23, "trials_per_subject": 18},
    "eeglab_sample": {"splits": ("all",), "seconds": 60.0, "sfreq": 128.0},
    "eav": {"splits": ("speaking", "listening", "all"), "n_subjects": 4, "trials_per_emotion": 4, "seconds": 5.0},
}
EEGLAB_EEG_CHANNELS: tuple[str, ...] = (
    "FPz", "F3", "Fz", "F4", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "C4", "Cz", "T8", "CP5", "CP1", "CP2",
    "CP6", "P7", "P3", "Pz", "P4", "P8", "PO7", "PO3", "POz", "PO4", "PO8", "O1", "Oz", "O2",
)  # fmt: skip


def known_names() -> tuple[str, ...]:
    return tuple(FACE_SETS) + tuple(EEG_SETS)


# ------------------------------------------------------------------------------------------------
# Cache: torch.save of plain containers (tensors, numbers, strings); numpy arrays become tensors
# tagged so they come back as numpy; loaded with weights_only=True.
# ------------------------------------------------------------------------------------------------


def _pack(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "US":
            return {"__str_array__": [str(v) for v in value.ravel()], "shape": list(value.shape)}
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, dict):
        return {"__dict__": [[_pack(k), _pack(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [_pack(v) for v in value]}
    if isinstance(value, list):
        return [_pack(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool, torch.Tensor)):
        return value
    raise TypeError(f"cannot cache a value of type {type(value).__name__}")


def _unpack(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return value["__ndarray__"].numpy()
        if "__str_array__" in value:
            return np.array(value["__str_array__"]).reshape(value["shape"])
        if "__dict__" in value:
            return {_unpack(k): _unpack(v) for k, v in value["__dict__"]}
        if "__tuple__" in value:
            return tuple(_unpack(v) for v in value["__tuple__"])
    if isinstance(value, list):
        return [_unpack(v) for v in value]
    return value


def save_set(dataset: FaceSet | EEGSet, path: Path) -> None:
    """Write a FaceSet / EEGSet atomically (``path`` + ".tmp", then rename)."""
    fields = {f.name: getattr(dataset, f.name) for f in dataclasses.fields(dataset)}
    payload = {"kind": type(dataset).__name__, "fields": _pack(fields)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_set(path: Path) -> FaceSet | EEGSet:
    """Read what :func:`save_set` wrote."""
    payload = torch.load(path, weights_only=True)
    cls = {"FaceSet": FaceSet, "EEGSet": EEGSet}[payload["kind"]]
    return cls(**_unpack(payload["fields"]))


@functools.lru_cache(maxsize=1)
def _model_digest() -> str:
    """SHA-256 of the packaged face model (generated faces depend on it)."""
    from affectlab.facemodel import PACKAGED_FILE

    return hashlib.sha256(PACKAGED_FILE.read_bytes()).hexdigest() if PACKAGED_FILE.is_file() else "absent"


def generator_fingerprint() -> str:
    """Fingerprint of the generators' code: every module of this package (``generate/*.py``) and,
    transitively, the ``affectlab`` modules they import (:func:`affectlab.config.code_fingerprint`).
    Replaces a hand-bumped version number, which was forgotten when the generators changed."""
    modules = [__name__] + [f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__)]
    return code_fingerprint(*modules)


def cached(name: str, params: dict[str, Any], build: Callable[[], FaceSet | EEGSet]) -> FaceSet | EEGSet:
    """``build()`` once per parameter set and generator code; later calls read
    ``<cache>/generated/<name>-<hash>.pt`` (the hash covers ``params``, the packaged face model and
    :func:`generator_fingerprint`).

    An unreadable cache file (e.g. truncated) is rebuilt, not trusted.
    """
    key = config_hash({"name": name, "params": params, "code": generator_fingerprint(), "model": _model_digest()})
    path = default_cache_dir() / "generated" / f"{name}-{key}.pt"
    if path.is_file():
        try:
            return load_set(path)
        except Exception:  # noqa: BLE001 - a broken cache is rebuilt
            path.unlink(missing_ok=True)
    result = build()
    save_set(result, path)
    return result


# ------------------------------------------------------------------------------------------------
# The embedded default per registry name
# ------------------------------------------------------------------------------------------------


def _named(dataset: FaceSet | EEGSet, name: str, split: str) -> FaceSet | EEGSet:
    return dataclasses.replace(dataset, name=name, split=split)


def _face_pool(name: str) -> FaceSet:
    """All images of a face stand-in before splitting (cached)."""
    from affectlab.data.generate import faces as gen
    from affectlab.data.taxonomy import FERPLUS_CLASSES

    spec = FACE_SETS[name]
    if name == "kdef":
        raise AssertionError("kdef is built per split")
    if name == "disfa":
        params = {k: spec[k] for k in ("n_identities", "seconds", "fps")}
        return cached(name, params, lambda: gen.generate_disfa_like(**params, seed=FACE_SEED, name=name))
    classes = tuple(c for c in FERPLUS_CLASSES if c not in spec.get("drop", ()))
    params = {"n_identities": spec["n_identities"], "intensities": spec["intensities"],
              "pose_jitter_deg": spec["pose_jitter_deg"], "class_names": classes}
    seed = FACE_SEED + sorted(FACE_SETS).index(name)
    built = lambda: gen.generate_faces(**params, seed=seed, name=name)  # noqa: E731
    pool = cached(name, {**params, "seed": seed}, built)
    if classes != FERPLUS_CLASSES:  # keep FERPlus indices (the loaders' convention)
        ferplus_labels = torch.tensor([FERPLUS_CLASSES.index(classes[i]) for i in pool.labels.tolist()])
        soft = None
        if pool.soft_labels is not None:
            soft = torch.zeros(len(pool), len(FERPLUS_CLASSES))
            soft[:, [FERPLUS_CLASSES.index(c) for c in classes]] = pool.soft_labels
        pool = dataclasses.replace(pool, labels=ferplus_labels, class_names=FERPLUS_CLASSES, soft_labels=soft)
    return pool


def _face_split(name: str, split: str) -> FaceSet:
    from affectlab.data.generate import faces as gen
    from affectlab.data.taxonomy import FER2013_CLASSES, FER2013_TO_FERPLUS, FERPLUS_CLASSES

    spec = FACE_SETS[name]
    if name == "kdef":
        views = (0.0,) if split == "frontal" else (-45.0, 0.0, 45.0)
        params = {"n_identities": spec["n_identities"], "yaw_views": views}
        built = lambda: gen.generate_kdef_like(**params, seed=FACE_SEED, name=name)  # noqa: E731
        return _named(cached(f"{name}-{split}", params, built), name, split)
    if name == "fer2013":
        base = _face_split("ferplus", {"train": "train", "public_test": "valid", "private_test": "test"}[split])
        to_fer = {FERPLUS_CLASSES.index(v): k for k, v in FER2013_TO_FERPLUS.items()}
        keep = np.flatnonzero([int(lab) in to_fer for lab in base.labels])
        sub = base.subset(keep)
        return dataclasses.replace(
            sub, labels=torch.tensor([to_fer[int(v)] for v in sub.labels], dtype=torch.long),
            class_names=FER2013_CLASSES, soft_labels=None, name=name, split=split,
            meta={**sub.meta, "ferplus_label": sub.labels.numpy()},
            source=sub.source + "; FER2013 7-class labels (contempt images dropped)",
        )
    pool = _face_pool(name)
    if spec["splits"] == ("all",):
        return _named(pool, name, split)
    fractions = spec.get("fractions", gen.SPLIT_FRACTIONS)
    parts = gen.split_by_identity(pool, fractions, seed=FACE_SEED, names=spec["splits"])
    return _named(parts[split], name, split)


def _eeg_split(name: str, split: str) -> EEGSet:
    from affectlab.data.generate import eeg as gen_eeg

    spec = EEG_SETS[name]
    if name in ("deap", "mahnob_hci", "dreamer"):
        params = {"n_subjects": spec["n_subjects"], "trials_per_subject": spec["trials_per_subject"]}
        seed = EEG_SEED + sorted(EEG_SETS).index(name)
        built = lambda: gen_eeg.generate_band_power_set(**params, seed=seed)  # noqa: E731
        return _named(cached(name, {**params, "seed": seed}, built), name, split)
    if name == "eeglab_sample":
        params = {"seconds": spec["seconds"], "sfreq": spec["sfreq"], "ch_names": EEGLAB_EEG_CHANNELS}
        built = lambda: gen_eeg.simulate_eeg(1, params["seconds"], params["sfreq"], 0.0, 0.0,  # noqa: E731
                                             ch_names=EEGLAB_EEG_CHANNELS, seed=EEG_SEED)
        return _named(cached(name, params, built), name, split)
    from affectlab.data.generate.paired import TASKS, generate_paired

    params = {k: spec[k] for k in ("n_subjects", "trials_per_emotion", "seconds")}
    tasks = TASKS if split == "all" else (split,)

    def build_eav() -> EEGSet:
        return generate_paired(**params, tasks=tasks, render=False, seed=EEG_SEED).to_eegset(name, split)

    return _named(cached(f"{name}-{split}", {**params, "tasks": tasks}, build_eav), name, split)


def embedded(name: str, split: str) -> FaceSet | EEGSet:
    """The generated stand-in for registry dataset ``name`` and ``split`` (see the module docstring)."""
    spec = FACE_SETS.get(name) or EEG_SETS.get(name)
    if spec is None:
        raise ValueError(
            f"no embedded default for {name!r}: known datasets {', '.join(known_names())} "
            "(assets such as ict_facekit, surrey_face_model and minixception need a data root)"
        )
    if split not in spec["splits"]:
        raise ValueError(f"{name}: split {split!r} unknown for the embedded default; choose one of {spec['splits']}")
    return _face_split(name, split) if name in FACE_SETS else _eeg_split(name, split)


__all__ = ["EEG_SETS", "FACE_SETS", "cached", "embedded", "generator_fingerprint", "known_names", "load_set", "save_set"]
