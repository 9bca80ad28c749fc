"""Face dataset loaders: files on disk -> :class:`~affectlab.data.sets.FaceSet`.

Every registry loader has the signature ``loader(dataset_dir, split, manifest) -> FaceSet`` and
returns uint8 greyscale images (N, 1, H, W) with labels as FERPlus 8-class indices (except
``fer2013``, which keeps its 7 original labels). Layout, expected counts and image sizes come from
the manifest (``data_manifests/<name>.toml``); every file is treated as untrusted and problems raise
:class:`~affectlab.data.manifest.DatasetValidationError` naming the file.

FERPlus labels (Barsoum et al. 2016, "Training deep networks for facial expression recognition
with crowd-sourced label distribution", Sec. 3-4, and the authors' reference reader
``FERPlus/src/ferplus.py``), exactly as implemented in :func:`ferplus_targets`:

- ``soft_labels``: the 8 emotion vote counts divided by their sum (unknown and NF votes dropped,
  then renormalised). Images whose 10 votes are all unknown/NF (2 in the released train split) get
  a uniform row and ``meta["no_emotion_votes"]`` True.
- ``labels`` (hard): the paper's majority-voting (MV) scheme as the reference reader implements it:
  votes of 1 are removed as outliers, then the top class must hold more than half of the remaining
  votes, and it must be an emotion (not unknown or NF); otherwise the label is -1 and FERPlus
  training excludes the image. All images are returned (28,558 / 3,579 / 3,573), so counts match the
  released folders; use :func:`labelled_only` for the MV subset (25,045 / 3,191 / 3,137 images
  with the ``label.csv`` files of the PNG layout).
- ``meta["plurality_labels"]``: the looser convention many later papers use: argmax of the 10 raw
  votes (ties -> lower column index), -1 when that is unknown or NF (28,385 / 3,555 / 3,545).

The two layouts do not carry identical votes: the ``label.csv`` files of the FERPlus PNG folders
differ from ``fer2013new.csv`` for 1,601 of the 35,710 images (1,073 / 246 / 282 per split;
apparently two releases of the votes). Each layout uses its own vote file; ``source`` says which.
"""

from __future__ import annotations

import csv
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from affectlab.data.manifest import DatasetValidationError, list_folder, select_layout
from affectlab.data.sets import FaceSet
from affectlab.data.taxonomy import (
    AFFECTNET_TO_FERPLUS,
    CKPLUS_TO_FERPLUS,
    FER2013_CLASSES,
    FER2013_TO_FERPLUS,
    FERPLUS_CLASSES,
    FERPLUS_INDEX,
    KDEF_TO_FERPLUS,
    RAFDB_TO_FERPLUS,
    map_to_ferplus,
)

NUM_VOTES = 10
EMOTION_VOTES = 8
# PIL decodes a 48x48 PNG in ~0.5 ms, mostly under the GIL: threads only pay off with spare cores.
_DECODE_WORKERS = min(4, os.cpu_count() or 1) if (os.cpu_count() or 1) >= 4 else 1

# ----------------------------------------------------------------------------------------------
# Image decoding
# ----------------------------------------------------------------------------------------------


def _center_square(img: Image.Image) -> Image.Image:
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def decode_grey(
    path: Path,
    expected_size: tuple[int, int] | None = None,
    size: int | None = None,
    crop: tuple[int, int, int, int] | None = None,
    square: bool = False,
) -> np.ndarray:
    """Read one image as uint8 greyscale (H, W).

    Args:
        path: image file (any format PIL reads).
        expected_size: (width, height) the file must have, else an error naming the file.
        size: resize (bilinear) to ``size`` x ``size`` after cropping; None keeps the size.
        crop: (left, top, right, bottom) box applied first (e.g. AffectNet face box).
        square: centre-crop to a square before resizing (keeps the aspect ratio of faces).
    """
    try:
        with Image.open(path) as img:
            img.load()
            if expected_size is not None and img.size != tuple(expected_size):
                raise DatasetValidationError(
                    f"{path}: image is {img.size[0]}x{img.size[1]}, expected {expected_size[0]}x{expected_size[1]}"
                )
            grey = img if img.mode == "L" else img.convert("L")
            if crop is not None:
                grey = grey.crop(crop)
            if square:
                grey = _center_square(grey)
            if size is not None and grey.size != (size, size):
                grey = grey.resize((size, size), Image.BILINEAR)
            return np.asarray(grey, dtype=np.uint8)
    except FileNotFoundError:
        raise DatasetValidationError(f"{path}: image file is missing") from None
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as exc:
        if isinstance(exc, DatasetValidationError):
            raise
        raise DatasetValidationError(f"{path}: cannot decode image (truncated or corrupt?): {exc}") from None


def decode_images(paths: Sequence[Path], decode: Callable[[Path], np.ndarray] | None = None) -> torch.Tensor:
    """Decode ``paths`` (in order) into a uint8 tensor (N, 1, H, W), using a small thread pool.

    ``decode`` defaults to :func:`decode_grey` without checks; all images must end up the same size.
    """
    decode = decode or decode_grey
    if not paths:
        raise DatasetValidationError("no images to decode (empty file list)")
    if len(paths) < 256 or _DECODE_WORKERS == 1:
        arrays = [decode(p) for p in paths]
    else:
        with ThreadPoolExecutor(max_workers=_DECODE_WORKERS) as pool:
            arrays = list(pool.map(decode, paths, chunksize=256))
    shape = arrays[0].shape
    for path, arr in zip(paths, arrays):
        if arr.shape != shape:
            raise DatasetValidationError(f"{path}: decoded to {arr.shape[::-1]}, other images are {shape[::-1]}")
    return torch.from_numpy(np.stack(arrays)[:, None])


# ----------------------------------------------------------------------------------------------
# FERPlus votes -> labels
# ----------------------------------------------------------------------------------------------


def ferplus_targets(votes: np.ndarray) -> dict[str, torch.Tensor]:
    """Soft labels, MV hard labels and plurality labels from (N, 10) FERPlus vote counts.

    See the module docstring for the exact rules (Barsoum et al. 2016, Sec. 4 "majority voting";
    reference reader ``_process_data(mode='majority')``).
    """
    votes = np.asarray(votes, dtype=np.int64)
    if votes.ndim != 2 or votes.shape[1] != NUM_VOTES:
        raise ValueError(f"votes must be (N, {NUM_VOTES}), got {votes.shape}")
    emotion = votes[:, :EMOTION_VOTES].astype(np.float64)
    total = emotion.sum(1, keepdims=True)
    no_votes = total[:, 0] == 0
    soft = np.where(total > 0, emotion / np.maximum(total, 1), 1.0 / EMOTION_VOTES)
    # Majority voting (reference reader): drop single votes, top class must exceed half the rest.
    kept = np.where(votes > 1, votes, 0)
    top = kept.argmax(1)
    top_votes = kept[np.arange(len(kept)), top]
    majority = (top_votes > 0.5 * kept.sum(1)) & (top < EMOTION_VOTES)
    labels = np.where(majority, top, -1)
    plural = votes.argmax(1)
    plurality = np.where(plural < EMOTION_VOTES, plural, -1)
    return {
        "soft_labels": torch.from_numpy(soft.astype(np.float32)),
        "labels": torch.from_numpy(labels.astype(np.int64)),
        "plurality_labels": torch.from_numpy(plurality.astype(np.int64)),
        "no_emotion_votes": torch.from_numpy(no_votes),
    }


def labelled_only(faces: FaceSet) -> FaceSet:
    """The rows with a hard label (``labels >= 0``), e.g. the FERPlus majority-vote subset."""
    return faces.subset(torch.nonzero(faces.labels >= 0).flatten())


def _parse_votes(cells: Sequence[str], path: Path, line: int) -> list[int]:
    try:
        values = [int(c) for c in cells]
    except ValueError:
        raise DatasetValidationError(
            f"{path} line {line}: vote counts must be integers, got {list(cells)}"
        ) from None
    if any(v < 0 for v in values):
        raise DatasetValidationError(f"{path} line {line}: vote counts must be >= 0, got {values}")
    return values


def read_ferplus_label_csv(path: Path) -> tuple[list[str], np.ndarray]:
    """FERPlus ``label.csv``: rows ``fer0000000.png,"(0, 0, 48, 48)",`` + 10 vote counts.

    Returns image names and votes (N, 10). Any other row shape is an error naming file and line.
    """
    if not path.is_file():
        raise DatasetValidationError(f"{path}: FERPlus label file is missing (expected label.csv in each split folder)")
    names: list[str] = []
    votes: list[list[int]] = []
    with open(path, newline="") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            if len(row) != 2 + NUM_VOTES:
                raise DatasetValidationError(
                    f"{path} line {line}: expected {2 + NUM_VOTES} columns (image name, face box, "
                    f"{NUM_VOTES} vote counts), found {len(row)}"
                )
            if not row[0].endswith(".png"):
                raise DatasetValidationError(f"{path} line {line}: first column must be a .png name, got {row[0]!r}")
            names.append(row[0])
            votes.append(_parse_votes(row[2:], path, line))
    if not names:
        raise DatasetValidationError(f"{path}: label file has no rows")
    return names, np.asarray(votes, dtype=np.int64)


def _split_folder(manifest: dict, layout: dict, split: str) -> dict:
    for entry in layout.get("folders", []):
        if entry.get("split") == split:
            return entry
    known = [e.get("split") for e in layout.get("folders", []) if "split" in e]
    raise ValueError(f"{manifest['name']}: split {split!r} unknown for layout {layout['name']}; choose one of {known}")


def _check_split(manifest: dict, split: str) -> None:
    if split not in manifest["splits"]:
        raise ValueError(f"{manifest['name']}: split {split!r} unknown; choose one of {manifest['splits']}")


def _faceset_from_votes(
    images: torch.Tensor, votes: np.ndarray, names: list[str], manifest: dict, split: str, source: str
) -> FaceSet:
    targets = ferplus_targets(votes)
    return FaceSet(
        images=images,
        labels=targets["labels"],
        class_names=FERPLUS_CLASSES,
        name=manifest["name"],
        split=split,
        source=source,
        soft_labels=targets["soft_labels"],
        meta={
            "file_names": names,
            "votes": torch.from_numpy(votes),
            "plurality_labels": targets["plurality_labels"],
            "no_emotion_votes": targets["no_emotion_votes"],
            "label_rule": "FERPlus majority voting (reference reader): -1 = excluded",
        },
    )


# ----------------------------------------------------------------------------------------------
# Kaggle fer2013.csv (+ fer2013new.csv)
# ----------------------------------------------------------------------------------------------


def _read_csv_dicts(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise DatasetValidationError(f"{path}: file is missing")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise DatasetValidationError(f"{path}: missing column(s) {missing}; expected columns {list(required)}, found {header}")
        rows = list(reader)
    if not rows:
        raise DatasetValidationError(f"{path}: file has a header but no rows")
    return rows


def _pixels_to_image(text: str, path: Path, line: int, side: int = 48) -> np.ndarray:
    values = np.array(text.split(), dtype=np.int64) if text else np.empty(0, dtype=np.int64)
    if values.size != side * side or values.min(initial=0) < 0 or values.max(initial=0) > 255:
        raise DatasetValidationError(
            f"{path} line {line}: pixels must be {side * side} integers in 0..255, found {values.size} values"
        )
    return values.astype(np.uint8).reshape(side, side)


def read_fer2013_csv(path: Path) -> list[dict[str, str]]:
    """Kaggle ``fer2013.csv`` rows (columns emotion, pixels, Usage), checked for the columns."""
    return _read_csv_dicts(path, ("emotion", "pixels", "Usage"))


def read_fer2013new_csv(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """FERPlus ``fer2013new.csv``: Usage, Image name, 10 vote columns -> (usage, names, votes)."""
    if not path.is_file():
        raise DatasetValidationError(f"{path}: FERPlus vote file is missing")
    usage, names, votes = [], [], []
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or len(header) != 2 + NUM_VOTES:
            raise DatasetValidationError(
                f"{path}: header must have {2 + NUM_VOTES} columns (Usage, Image name, {NUM_VOTES} vote "
                f"columns), found {header}"
            )
        for line, row in enumerate(reader, start=2):
            if len(row) != 2 + NUM_VOTES:
                raise DatasetValidationError(f"{path} line {line}: expected {2 + NUM_VOTES} columns, found {len(row)}")
            usage.append(row[0])
            names.append(row[1].strip())
            votes.append(_parse_votes(row[2:], path, line))
    return usage, names, np.asarray(votes, dtype=np.int64)


def _usage_of(manifest: dict, split: str) -> str:
    usage = manifest.get("params", {}).get("usage", {})
    if split not in usage:
        raise ValueError(f"{manifest['name']}: manifest [params.usage] has no entry for split {split!r}")
    return usage[split]


# ----------------------------------------------------------------------------------------------
# FERPlus
# ----------------------------------------------------------------------------------------------


def load_ferplus(dataset_dir: Path, split: str, manifest: dict) -> FaceSet:
    """FERPlus (Barsoum et al. 2016) from either layout; splits train / valid / test.

    - ``png_folders``: FER2013Train/Valid/Test, each with ``label.csv`` and the 48x48 PNGs it names.
    - ``kaggle_csv``: ``fer2013.csv`` (pixels) + ``fer2013new.csv`` (votes), same row order; rows with
      an empty image name have no image and are skipped; a name that repeats keeps its first row
      (the released PNG folders keep the first row's votes for such names).
    """
    _check_split(manifest, split)
    layout = select_layout(manifest, dataset_dir)
    if layout["name"] == "png_folders":
        entry = _split_folder(manifest, layout, split)
        folder = dataset_dir / entry["path"]
        names, votes = read_ferplus_label_csv(folder / "label.csv")
        size = tuple(entry.get("image_size", (48, 48)))
        paths = [folder / n for n in names]
        for p in paths:
            if not p.is_file():
                raise DatasetValidationError(f"{p}: image named in {folder / 'label.csv'} is missing")
        images = decode_images(paths, lambda p: decode_grey(p, expected_size=size))  # type: ignore[arg-type]
        return _faceset_from_votes(images, votes, names, manifest, split, f"real: {folder} (FERPlus PNG layout)")
    if layout["name"] == "kaggle_csv":
        pixels_csv, votes_csv = dataset_dir / "fer2013.csv", dataset_dir / "fer2013new.csv"
        rows = read_fer2013_csv(pixels_csv)
        usage, names, votes = read_fer2013new_csv(votes_csv)
        if len(rows) != len(names):
            raise DatasetValidationError(
                f"{pixels_csv} has {len(rows)} rows but {votes_csv} has {len(names)}: they must match row by row"
            )
        wanted = _usage_of(manifest, split)
        keep, seen = [], set()
        for i, (row, use, name) in enumerate(zip(rows, usage, names)):
            if row["Usage"] != use:
                raise DatasetValidationError(
                    f"{pixels_csv} line {i + 2} Usage {row['Usage']!r} differs from {votes_csv} line {i + 2} {use!r}"
                )
            if use == wanted and name and name not in seen:
                seen.add(name)
                keep.append(i)
        if not keep:
            raise DatasetValidationError(f"{votes_csv}: no named rows with Usage {wanted!r}")
        images = torch.from_numpy(
            np.stack([_pixels_to_image(rows[i]["pixels"], pixels_csv, i + 2) for i in keep])[:, None]
        )
        return _faceset_from_votes(
            images, votes[keep], [names[i] for i in keep], manifest, split, f"real: {dataset_dir} (fer2013.csv + fer2013new.csv)"
        )
    raise ValueError(f"{manifest['name']}: layout {layout['name']!r} has no reader")


# ----------------------------------------------------------------------------------------------
# FER2013 original 7 labels
# ----------------------------------------------------------------------------------------------

RELIABLE_STATUS = ("ok", "dup_same_label")


def load_fer2013(dataset_dir: Path, split: str, manifest: dict) -> FaceSet:
    """FER2013 with its original 7 labels (Goodfellow et al. 2013); splits train / public_test /
    private_test (= Usage Training / PublicTest / PrivateTest).

    ``class_names`` are the 7 FER2013 names (0 angry .. 6 neutral); ``meta["ferplus_labels"]`` gives
    the same labels as FERPlus indices. Layouts:

    - ``kaggle_csv``: ``fer2013.csv`` (every row of the split; labels from its ``emotion`` column).
    - ``png_folders``: the FERPlus PNG folders + ``fer2013_original_labels.csv`` (labels recovered by
      pixel matching; columns row, usage, image_name, fer2013_emotion, status). Rows whose status is
      ``ok`` or ``dup_same_label`` and whose emotion is not -1 are kept; the PNG is
      ``<split folder>/<image_name>``.
    """
    _check_split(manifest, split)
    layout = select_layout(manifest, dataset_dir)
    wanted = _usage_of(manifest, split)
    if layout["name"] == "kaggle_csv":
        path = dataset_dir / "fer2013.csv"
        rows = read_fer2013_csv(path)
        keep = [i for i, r in enumerate(rows) if r["Usage"] == wanted]
        if not keep:
            raise DatasetValidationError(f"{path}: no rows with Usage {wanted!r}")
        labels = np.array([_int_label(rows[i]["emotion"], path, i + 2, 0, 6) for i in keep])
        images = torch.from_numpy(np.stack([_pixels_to_image(rows[i]["pixels"], path, i + 2) for i in keep])[:, None])
        rows_index, names, source = keep, None, f"real: {path}"
    elif layout["name"] == "png_folders":
        path = dataset_dir / "fer2013_original_labels.csv"
        rows = _read_csv_dicts(path, ("row", "usage", "image_name", "fer2013_emotion", "status"))
        folder = dataset_dir / _split_folder(manifest, layout, split)["path"]
        keep, labels_list = [], []
        for i, r in enumerate(rows):
            if r["usage"] != wanted or r["status"] not in RELIABLE_STATUS:
                continue
            label = _int_label(r["fer2013_emotion"], path, i + 2, -1, 6)
            if label >= 0:
                keep.append(i)
                labels_list.append(label)
        if not keep:
            raise DatasetValidationError(f"{path}: no reliable rows with usage {wanted!r}")
        labels = np.array(labels_list)
        names = [rows[i]["image_name"] for i in keep]
        rows_index = [int(rows[i]["row"]) for i in keep]
        images = decode_images([folder / n for n in names], lambda p: decode_grey(p, expected_size=(48, 48)))
        source = f"real: {folder} + {path.name}"
    else:
        raise ValueError(f"{manifest['name']}: layout {layout['name']!r} has no reader")
    labels_t = torch.from_numpy(labels.astype(np.int64))
    meta = {
        "fer2013_row": torch.tensor(rows_index, dtype=torch.long),
        "ferplus_labels": map_to_ferplus(labels_t, FER2013_TO_FERPLUS),
    }
    if names is not None:
        meta["file_names"] = names
    return FaceSet(
        images=images, labels=labels_t, class_names=FER2013_CLASSES, name=manifest["name"], split=split,
        source=source, meta=meta,
    )


def _int_label(text: str, path: Path, line: int, low: int, high: int) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise DatasetValidationError(f"{path} line {line}: label {text!r} is not an integer") from None
    if not low <= value <= high:
        raise DatasetValidationError(f"{path} line {line}: label {value} out of range {low}..{high}")
    return value


# ----------------------------------------------------------------------------------------------
# CK+48
# ----------------------------------------------------------------------------------------------

CKPLUS_NAME = re.compile(r"^(S\d{3})_(\d{3})_(\d{8})\.png$")


def load_ckplus(dataset_dir: Path, split: str, manifest: dict) -> FaceSet:
    """CK+48 (Lucey et al. 2010): one folder per emotion, files ``S010_004_00000017.png`` (subject
    S010, sequence 004, frame 17); identity = subject. Split ``all``. No neutral class."""
    _check_split(manifest, split)
    layout = select_layout(manifest, dataset_dir)
    size = tuple(layout["folders"][0].get("image_size", (48, 48))) if layout.get("folders") else (48, 48)
    paths, emotions, subjects, sequences, frames = [], [], [], [], []
    for emotion in sorted(CKPLUS_TO_FERPLUS):
        folder = dataset_dir / emotion
        if not folder.is_dir():
            raise DatasetValidationError(f"{folder}: emotion folder is missing (expected {sorted(CKPLUS_TO_FERPLUS)})")
        files = list_folder(folder, "*.png")
        if not files:
            raise DatasetValidationError(f"{folder}: emotion folder is empty (expected *.png files)")
        for path in files:
            match = CKPLUS_NAME.match(path.name)
            if not match:
                raise DatasetValidationError(f"{path}: file name must look like S010_004_00000017.png")
            paths.append(path)
            emotions.append(emotion)
            subjects.append(match.group(1))
            sequences.append(int(match.group(2)))
            frames.append(int(match.group(3)))
    identity_names = tuple(sorted(set(subjects)))
    index = {s: i for i, s in enumerate(identity_names)}
    images = decode_images(paths, lambda p: decode_grey(p, expected_size=size))  # type: ignore[arg-type]
    return FaceSet(
        images=images,
        labels=map_to_ferplus(emotions, CKPLUS_TO_FERPLUS),
        class_names=FERPLUS_CLASSES,
        name=manifest["name"],
        split=split,
        source=f"real: {dataset_dir} (CK+48)",
        identity=torch.tensor([index[s] for s in subjects], dtype=torch.long),
        identity_names=identity_names,
        meta={
            "file_names": [str(p.relative_to(dataset_dir)) for p in paths],
            "sequence": torch.tensor(sequences, dtype=torch.long),
            "frame": torch.tensor(frames, dtype=torch.long),
        },
    )


# ----------------------------------------------------------------------------------------------
# Generic CSV of labelled images
# ----------------------------------------------------------------------------------------------

CLASS_ALIASES = {
    "happy": "happiness",
    "sad": "sadness",
    "angry": "anger",
    "fearful": "fear",
    "afraid": "fear",
    "surprised": "surprise",
    "disgusted": "disgust",
}


def ferplus_label(value: str, path: Path, line: int) -> int:
    """A label cell (FERPlus class name, common alias, or int 0..7) -> FERPlus index."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < len(FERPLUS_CLASSES):
            raise DatasetValidationError(f"{path} line {line}: label {index} out of range 0..{len(FERPLUS_CLASSES) - 1}")
        return index
    name = CLASS_ALIASES.get(text.lower(), text.lower())
    if name not in FERPLUS_INDEX:
        raise DatasetValidationError(
            f"{path} line {line}: label {text!r} is not a FERPlus class {FERPLUS_CLASSES} or an int 0..7"
        )
    return FERPLUS_INDEX[name]


def _float_in_range(text: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DatasetValidationError(f"{path} line {line}: {column} {text!r} is not a number") from None
    if not -1.0 <= value <= 1.0:
        raise DatasetValidationError(f"{path} line {line}: {column} {value} outside [-1, 1]")
    return value


def load_image_csv(
    csv_path: str | Path,
    image_root: str | Path | None = None,
    size: int = 48,
    name: str = "image_csv",
    split: str = "all",
    square: bool = False,
) -> FaceSet:
    """Any labelled image folder: a CSV with columns ``path,label[,identity,valence,arousal]``.

    ``path`` is relative to ``image_root`` (default: the CSV's folder); ``label`` is a FERPlus class
    name (or alias such as "happy") or an int 0..7; ``identity`` any string; valence/arousal floats in
    [-1, 1] (both or neither). Images are converted to greyscale and resized to ``size`` x ``size``
    (``square=True`` centre-crops to a square first).
    """
    csv_path = Path(csv_path)
    root = Path(image_root) if image_root is not None else csv_path.parent
    rows = _read_csv_dicts(csv_path, ("path", "label"))
    header = set(rows[0])
    has_va = {"valence", "arousal"} <= header
    if ("valence" in header) != ("arousal" in header):
        raise DatasetValidationError(f"{csv_path}: give both valence and arousal columns or neither")
    paths, labels, identities, valence, arousal = [], [], [], [], []
    for line, row in enumerate(rows, start=2):
        rel = (row["path"] or "").strip()
        if not rel:
            raise DatasetValidationError(f"{csv_path} line {line}: empty path")
        path = root / rel
        if not path.is_file():
            raise DatasetValidationError(f"{path}: image listed in {csv_path} line {line} is missing")
        paths.append(path)
        labels.append(ferplus_label(row["label"], csv_path, line))
        if "identity" in header:
            identities.append((row["identity"] or "").strip())
        if has_va:
            valence.append(_float_in_range(row["valence"], csv_path, line, "valence"))
            arousal.append(_float_in_range(row["arousal"], csv_path, line, "arousal"))
    images = decode_images(paths, lambda p: decode_grey(p, size=size, square=square))
    identity = identity_names = None
    if identities:
        identity_names = tuple(sorted(set(identities)))
        lookup = {s: i for i, s in enumerate(identity_names)}
        identity = torch.tensor([lookup[s] for s in identities], dtype=torch.long)
    return FaceSet(
        images=images,
        labels=torch.tensor(labels, dtype=torch.long),
        class_names=FERPLUS_CLASSES,
        name=name,
        split=split,
        source=f"real: {csv_path}",
        identity=identity,
        identity_names=identity_names,
        valence=torch.tensor(valence, dtype=torch.float32) if has_va else None,
        arousal=torch.tensor(arousal, dtype=torch.float32) if has_va else None,
        meta={"file_names": [str(p) for p in paths]},
    )


# ----------------------------------------------------------------------------------------------
# AffectNet-mini (NeuroGaze-Distill Sec. 3.2) and AffectNet
# ----------------------------------------------------------------------------------------------


def _read_class_map(path: Path) -> dict[int, int]:
    """``class_map.json`` ({name: index} or {index: name} or [names]) -> {dataset index: FERPlus index}."""
    if not path.is_file():
        raise DatasetValidationError(f"{path}: class map is missing")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetValidationError(f"{path}: not valid JSON: {exc}") from None
    if isinstance(raw, list):
        pairs = list(enumerate(raw))
    elif isinstance(raw, dict) and all(isinstance(v, int) for v in raw.values()):
        pairs = [(v, k) for k, v in raw.items()]
    elif isinstance(raw, dict) and all(str(k).isdigit() for k in raw):
        pairs = [(int(k), v) for k, v in raw.items()]
    else:
        raise DatasetValidationError(f"{path}: expected {{name: index}}, {{index: name}} or a list of names")
    out = {}
    for index, cname in pairs:
        mapped = CLASS_ALIASES.get(str(cname).lower(), str(cname).lower())
        if mapped not in FERPLUS_INDEX:
            raise DatasetValidationError(f"{path}: class {cname!r} has no FERPlus class (expected {FERPLUS_CLASSES})")
        out[int(index)] = FERPLUS_INDEX[mapped]
    return out


def load_affectnet_mini(dataset_dir: Path, split: str, manifest: dict) -> FaceSet:
    """AffectNet-mini (the reduced AffectNet split of NeuroGaze-Distill Sec. 3.2): ``labels_<split>.csv``
    with columns ``path,label[,valence,arousal]`` (label = index in ``class_map.json``), images under
    the dataset folder; splits train / valid / test. Column names are this project's definition (the
    paper names the files only)."""
    _check_split(manifest, split)
    select_layout(manifest, dataset_dir)
    class_map = _read_class_map(dataset_dir / "class_map.json")
    csv_path = dataset_dir / f"labels_{split}.csv"
    rows = _read_csv_dicts(csv_path, ("path", "label"))
    size = int(manifest.get("params", {}).get("image_size", 48))
    paths, labels, valence, arousal = [], [], [], []
    has_va = {"valence", "arousal"} <= set(rows[0])
    for line, row in enumerate(rows, start=2):
        label = _int_label(row["label"], csv_path, line, min(class_map), max(class_map))
        if label not in class_map:
            raise DatasetValidationError(f"{csv_path} line {line}: label {label} not in class_map.json")
        path = dataset_dir / row["path"].strip()
        if not path.is_file():
            raise DatasetValidationError(f"{path}: image listed in {csv_path} line {line} is missing")
        paths.append(path)
        labels.append(class_map[label])
        if has_va:
            valence.append(_float_in_range(row["valence"], csv_path, line, "valence"))
            arousal.append(_float_in_range(row["arousal"], csv_path, line, "arousal"))
    images = decode_images(paths, lambda p: decode_grey(p, size=size, square=True))
    return FaceSet(
        images=images, labels=torch.tensor(labels, dtype=torch.long), class_names=FERPLUS_CLASSES,
        name=manifest["name"], split=split, source=f"real: {csv_path}",
        valence=torch.tensor(valence, dtype=torch.float32) if has_va else None,
        arousal=torch.tensor(arousal, dtype=torch.float32) if has_va else None,
        meta={"file_names": [str(p.relative_to(dataset_dir)) for p in paths]},
    )


AFFECTNET_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "expression", "valence", "arousal")


def load_affectnet(dataset_dir: Path, split: str, manifest: dict) -> FaceSet:
    """AffectNet (Mollahosseini et al. 2019) manually annotated part: ``Manually_Annotated_file_lists/
    training.csv`` / ``validation.csv`` (splits train / valid; the test set is not released) and images
    under ``Manually_Annotated_Images/``. Rows with expression 8-10 (None, Uncertain, No-Face) are
    dropped; the face box is cropped, converted to greyscale and resized; valence/arousal kept."""
    _check_split(manifest, split)
    layout = select_layout(manifest, dataset_dir)
    lists = {f.get("split"): f["path"] for f in layout.get("files", [])}
    csv_path = dataset_dir / lists[split]
    rows = _read_csv_dicts(csv_path, AFFECTNET_COLUMNS)
    size = int(manifest.get("params", {}).get("image_size", 48))
    image_dir = dataset_dir / manifest.get("params", {}).get("image_dir", "Manually_Annotated_Images")
    paths, crops, codes, valence, arousal = [], [], [], [], []
    for line, row in enumerate(rows, start=2):
        code = _int_label(row["expression"], csv_path, line, 0, 10)
        if code > 7:
            continue
        try:
            x, y, w, h = (int(float(row[k])) for k in ("face_x", "face_y", "face_width", "face_height"))
        except ValueError:
            raise DatasetValidationError(f"{csv_path} line {line}: face box must be numbers") from None
        paths.append(image_dir / row["subDirectory_filePath"])
        crops.append((x, y, x + w, y + h))
        codes.append(code)
        valence.append(_float_in_range(row["valence"], csv_path, line, "valence"))
        arousal.append(_float_in_range(row["arousal"], csv_path, line, "arousal"))
    if not paths:
        raise DatasetValidationError(f"{csv_path}: no rows with an emotion label 0..7")
    images = torch.from_numpy(np.stack([decode_grey(p, size=size, crop=c) for p, c in zip(paths, crops)])[:, None])
    return FaceSet(
        images=images, labels=map_to_ferplus(codes, AFFECTNET_TO_FERPLUS), class_names=FERPLUS_CLASSES,
        name=manifest["name"], split=split, source=f"real: {csv_path}",
        valence=torch.tensor(valence, dtype=torch.float32), arousal=torch.tensor(arousal, dtype=torch.float32),
        meta={"file_names": [str(p.relative_to(image_dir)) for p in paths], "affectnet_expression": torch.tensor(codes)},
    )


# ----------------------------------------------------------------------------------------------
# RAF-DB basic
# ----------------------------------------------------------------------------------------------


def load_rafdb(dataset_dir: Path, split: str, manifest: dict) -> FaceSet:
    """RAF-DB basic (Li & Deng 2017): ``EmoLabel/list_patition_label.txt`` lines ``train_00001.jpg 5``
    (codes 1 surprise .. 7 neutral), aligned 100x100 images ``Image/aligned/train_00001_aligned.jpg``;
    splits train / test by the file-name prefix."""
    _check_split(manifest, split)
    layout = select_layout(manifest, dataset_dir)
    label_path = dataset_dir / "EmoLabel" / "list_patition_label.txt"
    if not label_path.is_file():
        raise DatasetValidationError(f"{label_path}: RAF-DB label list is missing")
    aligned = dataset_dir / "Image" / "aligned"
    size = int(manifest.get("params", {}).get("image_size", 48))
    expected = expected_folder_size(layout)
    paths, codes = [], []
    for line, text in enumerate(label_path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        parts = text.split()
        if len(parts) != 2 or not parts[0].endswith(".jpg"):
            raise DatasetValidationError(f"{label_path} line {line}: expected '<name>.jpg <label 1..7>', got {text!r}")
        code = _int_label(parts[1], label_path, line, 1, 7)
        if parts[0].split("_")[0] != split:
            continue
        paths.append(aligned / parts[0].replace(".jpg", "_aligned.jpg"))
        codes.append(code)
    if not paths:
        raise DatasetValidationError(f"{label_path}: no rows for split {split!r}")
    images = decode_images(paths, lambda p: decode_grey(p, expected_size=expected, size=size))
    return FaceSet(
        images=images, labels=map_to_ferplus(codes, RAFDB_TO_FERPLUS), class_names=FERPLUS_CLASSES,
        name=manifest["name"], split=split, source=f"real: {dataset_dir} (RAF-DB basic, aligned)",
        meta={"file_names": [p.name for p in paths], "rafdb_label": torch.tensor(codes)},
    )


def expected_folder_size(layout: dict) -> tuple[int, int] | None:
    for entry in layout.get("folders", []):
        if "image_size" in entry:
            return tuple(entry["image_size"])  # type: ignore[return-value]
    return None


# ----------------------------------------------------------------------------------------------
# KDEF
# ----------------------------------------------------------------------------------------------

KDEF_NAME = re.compile(r"^([AB])([FM])(\d{2})(AF|AN|DI|HA|NE|SA|SU)(FL|FR|HL|HR|S)\.jpe?g$", re.IGNORECASE)


def load_kdef(dataset_dir: Path, split: str, manifest: dict) -> FaceSet:
    """KDEF (Lundqvist, Flykt & Ohman 1998): ``KDEF/<AF01>/AF01ANS.JPG`` = session A, female 01,
    expression AN (angry), pose S (straight). Identity = gender + number (70 people); splits ``all``
    (every pose and session) and ``frontal`` (pose S only: 70 x 7 x 2 sessions = 980 images, the
    subset of Study 2 in "Face processing in humans and DNNs"). Images are centre-cropped to a
    square, greyscale, resized to ``params.image_size``."""
    _check_split(manifest, split)
    layout = select_layout(manifest, dataset_dir)
    root = dataset_dir / layout["marker"]
    size = int(manifest.get("params", {}).get("image_size", 48))
    files = [p for p in sorted(root.glob("*/*")) if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg")]
    if not files:
        raise DatasetValidationError(f"{root}: no KDEF images (expected <session+id>/<code>.JPG files)")
    paths, codes, people, sessions, poses = [], [], [], [], []
    for path in files:
        match = KDEF_NAME.match(path.name)
        if not match:
            raise DatasetValidationError(f"{path}: file name must follow the KDEF code, e.g. AF01ANS.JPG")
        session, gender, number, expr, pose = (g.upper() for g in match.groups())
        if split == "frontal" and pose != "S":
            continue
        paths.append(path)
        codes.append(expr)
        people.append(gender + number)
        sessions.append(session)
        poses.append(pose)
    identity_names = tuple(sorted(set(people)))
    lookup = {s: i for i, s in enumerate(identity_names)}
    expected = expected_folder_size(layout)
    images = decode_images(paths, lambda p: decode_grey(p, expected_size=expected, size=size, square=True))
    return FaceSet(
        images=images, labels=map_to_ferplus(codes, KDEF_TO_FERPLUS), class_names=FERPLUS_CLASSES,
        name=manifest["name"], split=split, source=f"real: {root} (KDEF)",
        identity=torch.tensor([lookup[s] for s in people], dtype=torch.long), identity_names=identity_names,
        meta={"file_names": [p.name for p in paths], "session": sessions, "pose": poses},
    )


# ----------------------------------------------------------------------------------------------
# DISFA (frames extracted from the videos + AU intensity labels)
# ----------------------------------------------------------------------------------------------

DISFA_AUS = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)


def _read_au_file(path: Path) -> dict[int, int]:
    if not path.is_file():
        raise DatasetValidationError(f"{path}: DISFA AU label file is missing")
    out = {}
    for line, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        parts = text.split(",")
        if len(parts) != 2:
            raise DatasetValidationError(f"{path} line {line}: expected 'frame,intensity', got {text!r}")
        frame, value = (_int_label(p, path, line, 0, 10**7) for p in parts)
        if value > 5:
            raise DatasetValidationError(f"{path} line {line}: AU intensity {value} out of range 0..5")
        out[frame] = value
    return out


def load_disfa(dataset_dir: Path, split: str, manifest: dict) -> FaceSet:
    """DISFA (Mavadati et al. 2013), from frames the user extracted from the left-camera videos into
    ``Frames/SN001/00001.png`` (1-based frame numbers; see the manifest's ``obtain.how``) plus the AU
    intensity files ``ActionUnit_Labels/SN001/SN001_au1.txt`` (``frame,intensity`` 0..5). Every
    ``params.frame_step``-th frame is loaded, centre-cropped to a square, greyscale, resized. DISFA
    has no emotion labels (labels are -1); identity = subject; ``meta["au_intensity"]`` (N, 12) for
    AUs 1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26. Split ``all``."""
    _check_split(manifest, split)
    select_layout(manifest, dataset_dir)
    params = manifest.get("params", {})
    step, size = int(params.get("frame_step", 20)), int(params.get("image_size", 48))
    frames_root, au_root = dataset_dir / "Frames", dataset_dir / "ActionUnit_Labels"
    subjects = sorted(p.name for p in frames_root.iterdir() if p.is_dir())
    if not subjects:
        raise DatasetValidationError(f"{frames_root}: no subject folders (expected Frames/SN001/...)")
    paths, people, frame_ids, aus = [], [], [], []
    for subject in subjects:
        au_tables = [_read_au_file(au_root / subject / f"{subject}_au{au}.txt") for au in DISFA_AUS]
        frames = [p for p in list_folder(frames_root / subject, "*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")]
        if not frames:
            raise DatasetValidationError(f"{frames_root / subject}: subject folder is empty (expected frame images)")
        for path in frames[::step]:
            if not path.stem.isdigit():
                raise DatasetValidationError(f"{path}: frame file name must be the frame number, e.g. 00001.png")
            frame = int(path.stem)
            missing = [au for au, table in zip(DISFA_AUS, au_tables) if frame not in table]
            if missing:
                raise DatasetValidationError(f"{path}: no AU label for frame {frame} (AUs {missing}) in {au_root / subject}")
            paths.append(path)
            people.append(subject)
            frame_ids.append(frame)
            aus.append([table[frame] for table in au_tables])
    identity_names = tuple(subjects)
    lookup = {s: i for i, s in enumerate(identity_names)}
    images = decode_images(paths, lambda p: decode_grey(p, size=size, square=True))
    return FaceSet(
        images=images, labels=torch.full((len(paths),), -1, dtype=torch.long), class_names=FERPLUS_CLASSES,
        name=manifest["name"], split=split, source=f"real: {dataset_dir} (DISFA frames, every {step}th)",
        identity=torch.tensor([lookup[s] for s in people], dtype=torch.long), identity_names=identity_names,
        meta={
            "frame": torch.tensor(frame_ids, dtype=torch.long),
            "au_intensity": torch.tensor(aus, dtype=torch.long),
            "au_numbers": list(DISFA_AUS),
        },
    )

