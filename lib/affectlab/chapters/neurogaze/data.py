"""Chapter 01 data: the EEG teacher's topomaps and V/A targets (Sec. 3.1, 3.3, Fig. 3) and the
students' faces (Sec. 3.2): FERPlus subsets, CK+ and AffectNet-mini for Table 2, mild class weights
(Sec. 4.3) and the tensors the trainer reads (the paper's "safe" augmentation).

Every set comes from :func:`affectlab.data.load_or_embedded`: the data root's copy when it holds
one, else the embedded generated stand-in; a note says which.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from affectlab import data as datasets
from affectlab.augment import AugmentConfig, BatchAugment
from affectlab.config import RunConfig, config_hash
from affectlab.data.sets import EEGSet, FaceSet
from affectlab.data.taxonomy import FERPLUS_CLASSES
from affectlab.sampling import class_capped_indices, stratified_indices
from affectlab.topomap import PAPER_BANDS, band_power_welch, normalize_per_subject, topomaps_from_band_power
from affectlab.train import TensorData

from .config import ChapterConfig

__all__ = [
    "short_source",
    "load_chapter_set",
    "load_teacher_eeg",
    "va_targets",
    "TeacherData",
    "prepare_teacher_data",
    "raw_eeg_topomaps",
    "valence_contrast_maps",
    "subject_disjoint_split",
    "mild_class_weights",
    "FaceData",
    "prepare_faces",
    "face_data_from_sets",
    "face_tensors",
]


def short_source(source: str, width: int = 48) -> str:
    """A caption-sized form of a data ``source`` string: "real: <last two path parts>" for a
    user's copy, the generator's description cut to ``width`` characters for generated data."""
    kind, _, rest = source.partition(":")
    rest = rest.strip()
    if kind == "real":
        return f"real: {'/'.join(Path(rest.split(' (')[0]).parts[-2:])}"
    return f"{kind}: {rest[:width]}..." if len(rest) > width else source


def load_chapter_set(name: str, run: RunConfig, split: str | None = None) -> tuple[Any, str]:
    """``name`` through :func:`affectlab.data.load_or_embedded` (the data root's copy, else the
    embedded generated default; an invalid copy raises) and a note saying which one was used."""
    loaded = datasets.load_or_embedded(name, run.data_root, split)
    if loaded.source.startswith("real:"):
        note = "real copy under the data root"
    elif run.data_root is None:
        note = "embedded generated default (no data root)"
    else:
        note = f"embedded generated default: the data root {run.data_root} has no {name}"
    return loaded, note


def load_teacher_eeg(run: RunConfig, generated: bool = False) -> dict[str, tuple[EEGSet, str]]:
    """The teacher's EEG (Sec. 3.1): DEAP and MAHNOB-HCI band-power features from the data root.

    The paper uses DREAMER with MAHNOB-HCI; we have DEAP's and MAHNOB-HCI's released feature files
    (5 bands x 32 electrodes). Without a data root both are the generated band-power set; when
    both names give the same generated set, it is used once. ``generated=True`` forces the
    embedded generated sets (continuous V/A planted per trial) even when a data root (argument or
    ``AFFECTLAB_DATA``) holds the real files. Returns ``{name: (EEGSet, note)}``.
    """
    from affectlab.data.generate import embedded

    out: dict[str, tuple[EEGSet, str]] = {}
    seen_sources: set[str] = set()
    for name in ("deap", "mahnob_hci"):
        if generated:
            eeg, note = embedded(name, "all"), "embedded generated set (forced: planted continuous V/A)"
        else:
            eeg, note = load_chapter_set(name, run)
        if not isinstance(eeg, EEGSet) or eeg.kind != "band_power":
            raise TypeError(f"{name}: expected band-power EEG features, got {type(eeg).__name__}")
        if eeg.source in seen_sources:
            continue
        seen_sources.add(eeg.source)
        out[name] = (eeg, note)
    return out


def va_targets(eeg: EEGSet, binary_level: float = 0.5) -> tuple[np.ndarray, str]:
    """Continuous (valence, arousal) in [-1, 1] per trial and a sentence stating the rule.

    - Continuous ``valence``/``arousal`` labels present (MAHNOB-HCI: the circumplex point of the
      trial's emotion category, see :mod:`affectlab.data.taxonomy`; generated sets: the planted
      V/A): used as they are.
    - Otherwise the binaries (DEAP: ``valence_binary`` 1 = positive, ``arousal_binary`` 1 = high)
      become ``+binary_level`` / ``-binary_level``: the two halves of each axis at the centre of
      their half of [-1, 1] for 0.5. The paper "linearly maps reported V/A to [-1, 1]" (Sec. 3.3);
      DEAP's released labels are only binary, so this is the closest linear map.
    """
    labels = eeg.labels
    if "valence" in labels and "arousal" in labels:
        va = np.stack([labels["valence"], labels["arousal"]], axis=1).astype(np.float32)
        rule = ("circumplex coordinates of the emotion category" if "emotion_code" in labels
                else "continuous V/A given with the data")
    elif "valence_binary" in labels and "arousal_binary" in labels:
        if not 0 < binary_level <= 1:
            raise ValueError(f"parameter binary_level must be in (0, 1]; got {binary_level}")
        binary = np.stack([labels["valence_binary"], labels["arousal_binary"]], axis=1)
        if not np.isin(binary, (0, 1)).all():
            raise ValueError(f"{eeg.name}: valence_binary/arousal_binary must hold 0/1")
        va = np.where(binary == 1, binary_level, -binary_level).astype(np.float32)
        rule = f"binary labels mapped to +-{binary_level:g} (positive/high = +{binary_level:g})"
    else:
        raise ValueError(
            f"{eeg.name}: no V/A labels; expected 'valence' and 'arousal' or 'valence_binary' and "
            f"'arousal_binary' in EEGSet.labels, got {sorted(labels)}"
        )
    if not np.isfinite(va).all() or np.abs(va).max() > 1:
        raise ValueError(f"{eeg.name}: V/A targets must be finite and within [-1, 1]")
    return va, rule


@dataclasses.dataclass
class TeacherData:
    """Topomaps of every teacher trial with V/A targets and subject groups.

    ``maps`` (N, bands, S, S) float32 (0 outside the head), ``mask`` (S, S), ``va`` (N, 2),
    ``groups`` (N,) "dataset:subject" strings, ``dataset`` (N,) dataset names, ``info`` a table
    of the datasets (trials, subjects, V/A rule, source, note), ``assumptions`` from the loaders.
    """

    maps: np.ndarray
    mask: np.ndarray
    va: np.ndarray
    groups: np.ndarray
    dataset: np.ndarray
    bands: tuple[str, ...]
    ch_names: tuple[str, ...]
    info: pd.DataFrame
    assumptions: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.maps)

    @property
    def source(self) -> str:
        return "; ".join(f"{r.dataset}: {r.source}" for r in self.info.itertuples())


def prepare_teacher_data(eeg_sets: Mapping[str, tuple[EEGSet, str]], cfg: ChapterConfig) -> TeacherData:
    """Per-subject normalisation and topomaps (Sec. 3.1): for each dataset, per subject and band
    z-score and min-max to [0, 1] (:func:`affectlab.topomap.normalize_per_subject`), then render
    every band on the 10-20 positions at ``cfg.topomap_size`` px."""
    if not eeg_sets:
        raise ValueError("prepare_teacher_data: no EEG sets given")
    maps, vas, groups, names, rows, assumptions = [], [], [], [], [], []
    bands = ch_names = mask = None
    for name, (eeg, note) in eeg_sets.items():
        if eeg.subject is None:
            raise ValueError(f"{name}: the teacher split needs subject ids (EEGSet.subject is None)")
        if bands is not None and (eeg.bands != bands or eeg.ch_names != ch_names):
            raise ValueError(f"{name}: bands/channels {eeg.bands}/{eeg.ch_names} differ from the first set's")
        bands, ch_names = eeg.bands, eeg.ch_names
        va, rule = va_targets(eeg, cfg.deap_binary_level)
        normalised = normalize_per_subject(eeg.data, eeg.subject)
        rendered = topomaps_from_band_power(normalised, eeg.ch_names, size=cfg.topomap_size, montage=eeg.montage)
        mask = rendered.mask
        maps.append(rendered.maps)
        vas.append(va)
        groups.append(np.array([f"{name}:{s}" for s in eeg.subject]))
        names.append(np.full(len(eeg), name))
        rows.append({"dataset": name, "trials": len(eeg), "subjects": len(np.unique(eeg.subject)),
                     "V/A rule": rule, "source": eeg.source, "note": note})
        assumptions.extend(eeg.assumptions)
    return TeacherData(
        maps=np.concatenate(maps).astype(np.float32),
        mask=mask,
        va=np.concatenate(vas),
        groups=np.concatenate(groups),
        dataset=np.concatenate(names),
        bands=tuple(bands),
        ch_names=tuple(ch_names),
        info=pd.DataFrame(rows),
        assumptions=tuple(dict.fromkeys(assumptions)),
    )


def raw_eeg_topomaps(run: RunConfig, size: int = 32, segment_seconds: float = 4.0) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """Topomaps from a raw recording (Fig. 1B / Fig. 3 pipeline on signals): the EEGLAB sample
    (or its generated stand-in), EOG channels dropped, cut into ``segment_seconds`` segments, log
    band power by Welch in the paper's bands (delta, theta, alpha, beta, gamma), averaged over
    segments. Returns (maps (bands, S, S), mask, band names, source)."""
    eeg, _ = load_chapter_set("eeglab_sample", run)
    if eeg.kind != "signal" or eeg.sfreq is None:
        raise TypeError(f"eeglab_sample: expected raw signals, got kind {eeg.kind!r}")
    types = eeg.meta.get("ch_types") or ("eeg",) * len(eeg.ch_names)
    keep = [i for i, (n, t) in enumerate(zip(eeg.ch_names, types)) if t == "eeg" and not n.upper().startswith("EOG")]
    signal = eeg.data[0][keep]
    step = int(round(segment_seconds * eeg.sfreq))
    n_seg = signal.shape[-1] // step
    if n_seg < 1:
        raise ValueError(f"eeglab_sample: recording shorter than one {segment_seconds} s segment")
    segments = signal[:, : n_seg * step].reshape(len(keep), n_seg, step).transpose(1, 0, 2)
    power = band_power_welch(segments, eeg.sfreq, PAPER_BANDS).mean(axis=0, keepdims=True)  # (1, bands, ch)
    names = tuple(eeg.ch_names[i] for i in keep)
    rendered = topomaps_from_band_power(power, names, size=size, montage=eeg.montage)
    return rendered.maps[0], rendered.mask, tuple(PAPER_BANDS), eeg.source


def valence_contrast_maps(data: TeacherData, dataset: str) -> dict[str, np.ndarray]:
    """Fig. 3 rows for one dataset: the mean normalised topomap (bands, S, S) of the trials with
    positive and with negative valence target, and their difference (positive - negative)."""
    sel = data.dataset == dataset
    if not sel.any():
        raise ValueError(f"no trials of dataset {dataset!r}; have {sorted(set(data.dataset.tolist()))}")
    pos, neg = sel & (data.va[:, 0] > 0), sel & (data.va[:, 0] < 0)
    if not pos.any() or not neg.any():
        raise ValueError(f"{dataset}: needs trials with both positive and negative valence targets")
    mean_pos, mean_neg = data.maps[pos].mean(0), data.maps[neg].mean(0)
    return {f"valence > 0 (n={int(pos.sum())})": mean_pos, f"valence < 0 (n={int(neg.sum())})": mean_neg,
            "difference": mean_pos - mean_neg}


def subject_disjoint_split(
    groups: Sequence[str] | np.ndarray,
    val_fraction: float = 0.2,
    seed: int = 0,
    strata: Sequence[str] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation row indices with no subject (group) on both sides.

    Within each stratum (dataset) the sorted unique groups are permuted by ``seed`` and
    ``max(1, round(val_fraction * n_groups))`` of them go to validation (a stratum with a single
    group stays in training). Returns sorted ``(train_idx, val_idx)``.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) == 0:
        raise ValueError(f"parameter groups must be a non-empty 1-D array; got shape {groups.shape}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"parameter val_fraction must be in (0, 1); got {val_fraction}")
    strata = np.zeros(len(groups), dtype=int) if strata is None else np.asarray(strata)
    if strata.shape != groups.shape:
        raise ValueError(f"parameter strata must match groups {groups.shape}; got {strata.shape}")
    rng = np.random.default_rng(seed)
    val_groups: set = set()
    for stratum in sorted(set(strata.tolist())):
        unique = np.array(sorted(set(groups[strata == stratum].tolist())))
        if len(unique) < 2:
            continue
        n_val = min(len(unique) - 1, max(1, int(round(val_fraction * len(unique)))))
        val_groups.update(unique[rng.permutation(len(unique))[:n_val]].tolist())
    is_val = np.isin(groups, list(val_groups))
    if not is_val.any():
        raise ValueError("subject_disjoint_split: fewer than 2 subjects; cannot hold any out")
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)



def mild_class_weights(labels: np.ndarray | torch.Tensor, n_classes: int, power: float = 0.5) -> tuple[float, ...]:
    """"Mild class weights" (Sec. 4.3): ``w_c = (N / (K n_c)) ** power``, rescaled so the mean
    weight over training samples is 1; a class absent from ``labels`` gets the largest weight.
    ``power`` = 1 is inverse frequency, 0 no weighting; the paper gives no value (we use 0.5)."""
    y = np.asarray(labels)
    y = y[y >= 0]
    if len(y) == 0:
        raise ValueError("mild_class_weights: no labelled rows")
    if not 0 <= power <= 1:
        raise ValueError(f"parameter power must be in [0, 1]; got {power}")
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    if len(counts) > n_classes:
        raise ValueError(f"labels hold class {len(counts) - 1} but n_classes={n_classes}")
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = (len(y) / (n_classes * counts[present])) ** power
    w[~present] = w[present].max()
    w /= float((counts * w).sum() / len(y))
    return tuple(float(v) for v in w)


@dataclasses.dataclass
class FaceData:
    """The student's faces: FERPlus ``train`` (subset), ``val`` (subset, for checkpoint and D-Geo
    selection), ``test``; ``cross`` target sets for Table 2 (``ckplus``, ``affectnet_mini`` when
    present); normalisation ``mean``/``std`` of the training pixels (in [0, 1]); ``class_weights``;
    ``notes`` on where each set came from."""

    train: FaceSet
    val: FaceSet
    test: FaceSet
    cross: dict[str, FaceSet]
    mean: float
    std: float
    class_weights: tuple[float, ...]
    notes: dict[str, str]
    tag: str

    def counts_table(self) -> pd.DataFrame:
        sets = {"FERPlus train (used)": self.train, "FERPlus valid (used)": self.val, "FERPlus test": self.test}
        sets.update({f"{k} (cross-dataset)": v for k, v in self.cross.items()})
        table = pd.DataFrame({name: s.class_counts() for name, s in sets.items()}).T
        table["total"] = table.sum(axis=1)
        table["source"] = [s.source for s in sets.values()]
        return table


def prepare_faces(run: RunConfig, cfg: ChapterConfig, generated: bool = False) -> FaceData:
    """FERPlus train/valid/test from the data root (or the embedded generated faces), reduced per
    ``cfg`` (class-capped training subset, stratified validation/test subsets, drawn with the run's
    seed), and the cross-dataset targets: CK+ (``all``) and AffectNet-mini (``test``) when the data
    root holds them (CK+ from the generated default when there is no root).

    ``generated=True`` forces the embedded generated faces (the known-ground-truth probe), even
    when the run has a data root.
    """
    from affectlab.data.generate import embedded

    notes: dict[str, str] = {}
    if generated:
        splits = {s: embedded("ferplus", s) for s in ("train", "valid", "test")}
        notes["ferplus"] = "embedded generated faces (forced: known V/A ground truth)"
    else:
        loaded = {s: load_chapter_set("ferplus", run, s) for s in ("train", "valid", "test")}
        splits = {s: v[0] for s, v in loaded.items()}
        notes["ferplus"] = loaded["train"][1]
    cross: dict[str, FaceSet] = {}
    if not generated:
        ck, notes["ckplus"] = load_chapter_set("ckplus", run, "all")
        cross["ckplus"] = ck
        if run.data_root is not None and datasets.available("affectnet_mini", run.data_root):
            cross["affectnet_mini"] = datasets.load("affectnet_mini", run.data_root, "test")
            notes["affectnet_mini"] = "real copy under the data root"
        else:
            notes["affectnet_mini"] = "absent: not in the data root (the paper's AffectNet-mini is unpublished)"
    return face_data_from_sets(splits["train"], splits["valid"], splits["test"], cross, notes, cfg, run,
                               generated=generated)


def face_data_from_sets(train_full: FaceSet, valid_full: FaceSet, test_full: FaceSet, cross_full: Mapping[str, FaceSet],
                        notes: dict[str, str], cfg: ChapterConfig, run: RunConfig, generated: bool) -> FaceData:
    """:class:`FaceData` from whole sets, reduced per ``cfg`` with the run's seed: the class-capped
    training subset (``train_per_class``), stratified validation, test and cross-dataset subsets
    (``val_size``, ``test_size``, ``cross_size``), the training pixels' mean/std and the mild class
    weights; ``tag`` identifies the faces in the run keys."""
    train = train_full.subset(class_capped_indices(train_full.labels, cfg.train_per_class, run.seed))
    val = valid_full.subset(stratified_indices(valid_full.labels, cfg.val_size, run.seed))
    test = test_full.subset(stratified_indices(test_full.labels, cfg.test_size, run.seed))
    cross = {name: faces.subset(stratified_indices(faces.labels, cfg.cross_size, run.seed))
             for name, faces in cross_full.items()}
    pixels = train.images.float() / 255.0
    weights = mild_class_weights(train.labels, len(FERPLUS_CLASSES), cfg.class_weight_power)
    tag = config_hash({"train": train.source, "n": len(train), "val": len(val), "test": len(test),
                       "seed": run.seed, "generated": generated})
    return FaceData(train=train, val=val, test=test, cross=cross, mean=float(pixels.mean()),
                    std=float(pixels.std()), class_weights=weights, notes=notes, tag=tag)


def face_tensors(faces: FaceSet, data: FaceData, cfg: ChapterConfig, *, train: bool,
               extras: Mapping[str, torch.Tensor] | None = None) -> TensorData:
    """A :class:`TensorData` of a face set with the chapter's resize, normalisation and (training
    only) the paper's "safe" augmentation: random crop, flip, mild brightness/contrast jitter."""
    augment = None
    if train:
        augment = BatchAugment(AugmentConfig(crop_padding=cfg.crop_padding, crop_padding_mode="reflect",
                                             hflip_p=0.5, brightness=cfg.jitter, contrast=cfg.jitter))
    side = faces.images.shape[-1]
    return TensorData(
        faces.images, faces.labels, soft=faces.soft_labels.float() if (train and faces.soft_labels is not None) else None,
        extras=extras, batch_size=cfg.batch_size if train else 256, shuffle=train, drop_last=False,
        resize=None if side == cfg.image_size else cfg.image_size, mean=data.mean, std=data.std,
        augment=augment, name=f"{faces.name}/{faces.split}",
    )

