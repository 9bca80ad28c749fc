"""Small face-dataset fixtures written in each dataset's real on-disk format.

Every ``make_*`` function writes a tiny copy of a dataset's layout under ``root`` (a pytest
``tmp_path``) with random-noise images, and returns the dataset folder. :func:`install_manifests`
points ``AFFECTLAB_MANIFESTS`` at a temporary copy of the repository's manifests in which the given
datasets' expected counts, sizes and SHA-256 are replaced by the fixture's own, so the registry's
validation runs unchanged on fixtures.
"""

from __future__ import annotations

import csv
import json
import shutil
import tomllib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from affectlab.data.manifest import MANIFESTS_ENV, manifests_dir, scan_folder, sha256_file

# Votes with a known outcome under FERPlus majority voting (see affectlab.data.faces docstring):
# (votes, MV label, plurality label)
VOTE_CASES: list[tuple[list[int], int, int]] = [
    ([6, 0, 1, 1, 0, 0, 0, 0, 2, 0], 0, 0),  # singles dropped: 6 of 8 -> neutral
    ([4, 0, 0, 1, 3, 2, 0, 0, 0, 0], -1, 0),  # 4 of 9 kept votes is no majority
    ([0, 0, 0, 0, 0, 0, 0, 0, 10, 0], -1, -1),  # all unknown: no emotion votes at all
    ([0, 9, 0, 0, 0, 0, 0, 0, 0, 1], 1, 1),  # happiness
    ([0, 0, 0, 0, 0, 0, 2, 0, 6, 2], -1, -1),  # unknown majority
    ([0, 0, 0, 0, 0, 0, 0, 8, 1, 1], 7, 7),  # contempt
]


def write_png(path: Path, size: tuple[int, int] = (48, 48), seed: int = 0, mode: str = "L") -> np.ndarray:
    """Write a random-noise image of ``size`` (width, height); return its greyscale pixels."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode=None).save(path)
    return pixels if mode == "L" else np.asarray(Image.fromarray(pixels).convert("L"))


FERPLUS_FOLDERS = {"train": ("FER2013Train", "Training"), "valid": ("FER2013Valid", "PublicTest"), "test": ("FER2013Test", "PrivateTest")}


def ferplus_rows(per_split: Sequence[int] = (6, 3, 3)) -> list[dict]:
    """Rows of a small FER2013/FERPlus: usage, name, votes, pixels, fer2013 emotion."""
    rows, index = [], 0
    for (split, (_, usage)), n in zip(FERPLUS_FOLDERS.items(), per_split):
        for k in range(n):
            votes = VOTE_CASES[(index) % len(VOTE_CASES)][0]
            rng = np.random.default_rng(index)
            rows.append(
                {
                    "usage": usage,
                    "split": split,
                    "name": f"fer{index:07d}.png",
                    "votes": votes,
                    "pixels": rng.integers(0, 256, (48, 48), dtype=np.uint8),
                    "emotion": index % 7,
                }
            )
            index += 1
    return rows


def make_ferplus_png(root: Path, rows: list[dict] | None = None) -> Path:
    """FERPlus PNG layout: ``ferplus/FER2013{Train,Valid,Test}/`` with ``label.csv`` + PNGs."""
    rows = rows if rows is not None else ferplus_rows()
    base = root / "ferplus"
    for split, (folder, _) in FERPLUS_FOLDERS.items():
        (base / folder).mkdir(parents=True, exist_ok=True)
        with open(base / folder / "label.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            for row in rows:
                if row["split"] == split:
                    Image.fromarray(row["pixels"]).save(base / folder / row["name"])
                    writer.writerow([row["name"], "(0, 0, 48, 48)", *row["votes"]])
    return base


def make_ferplus_kaggle(root: Path, rows: list[dict] | None = None, extra_rows: bool = True) -> Path:
    """Kaggle layout: ``ferplus/fer2013.csv`` + ``ferplus/fer2013new.csv``. With ``extra_rows`` also
    a row without image name and a repeated name (both must be skipped by the FERPlus loader)."""
    rows = list(rows if rows is not None else ferplus_rows())
    if extra_rows:
        first = rows[0]
        rows.append({**first, "name": "", "votes": [0] * 9 + [10], "emotion": 3})
        rows.append({**first, "pixels": 255 - first["pixels"], "votes": [0, 10] + [0] * 8, "emotion": 3})
    base = root / "ferplus"
    base.mkdir(parents=True, exist_ok=True)
    with open(base / "fer2013.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for row in rows:
            writer.writerow([row["emotion"], " ".join(str(v) for v in row["pixels"].ravel()), row["usage"]])
    with open(base / "fer2013new.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"])
        for row in rows:
            writer.writerow([row["usage"], row["name"], *row["votes"]])
    return base


def make_fer2013_labels(base: Path, rows: list[dict], statuses: Sequence[str] | None = None) -> Path:
    """``fer2013_original_labels.csv`` beside the FERPlus PNG folders."""
    statuses = statuses or ["ok"] * len(rows)
    with open(base / "fer2013_original_labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "usage", "image_name", "fer2013_emotion", "status", "match_rmse"])
        for i, (row, status) in enumerate(zip(rows, statuses)):
            writer.writerow([i, row["usage"], row["name"], row["emotion"], status, 2.5])
    return base / "fer2013_original_labels.csv"


CKPLUS_FIXTURE = {"anger": ["S010_004_00000017.png", "S011_001_00000010.png"], "contempt": ["S010_002_00000005.png"],
                  "disgust": ["S012_003_00000009.png"], "fear": ["S011_002_00000020.png"],
                  "happy": ["S010_006_00000014.png", "S012_001_00000008.png"], "sadness": ["S011_004_00000012.png"],
                  "surprise": ["S012_002_00000030.png"]}


def make_ckplus(root: Path, files: dict[str, list[str]] | None = None) -> Path:
    """CK+48 layout: ``ckplus/CK+48/<emotion>/S010_004_00000017.png``."""
    base = root / "ckplus" / "CK+48"
    for i, (emotion, names) in enumerate((files or CKPLUS_FIXTURE).items()):
        (base / emotion).mkdir(parents=True, exist_ok=True)
        for j, name in enumerate(names):
            write_png(base / emotion / name, seed=100 * i + j)
    return base


def make_image_csv(root: Path) -> Path:
    """A generic ``labels.csv`` (path,label,identity,valence,arousal) over RGB images of odd sizes."""
    base = root / "mine"
    rows = [("a.png", "happy", "p1", 0.8, 0.5), ("b.jpg", "3", "p2", -0.6, -0.2), ("sub/c.png", "contempt", "p1", -0.5, 0.4)]
    base.mkdir(parents=True, exist_ok=True)
    with open(base / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "identity", "valence", "arousal"])
        for i, (path, label, who, v, a) in enumerate(rows):
            write_png(base / path, size=(64 + 8 * i, 80), seed=i, mode="RGB")
            writer.writerow([path, label, who, v, a])
    return base / "labels.csv"


def make_affectnet_mini(root: Path) -> Path:
    """AffectNet-mini: ``labels_{train,valid,test}.csv`` (path,label,valence,arousal) + ``class_map.json``."""
    base = root / "affectnet_mini"
    base.mkdir(parents=True, exist_ok=True)
    names = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"]
    (base / "class_map.json").write_text(json.dumps({n: i for i, n in enumerate(names)}))
    for s, split in enumerate(("train", "valid", "test")):
        with open(base / f"labels_{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "valence", "arousal"])
            for k in range(3):
                rel = f"images/{split}/{k}.jpg"
                write_png(base / rel, size=(96, 96), seed=10 * s + k, mode="RGB")
                writer.writerow([rel, (k + s) % 8, 0.1 * k, -0.1 * k])
    return base


def make_affectnet(root: Path) -> Path:
    """AffectNet manually annotated layout (file lists + images); includes a code-8 row (dropped)."""
    base = root / "affectnet"
    lists = base / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True, exist_ok=True)
    header = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks", "expression", "valence", "arousal"]
    for s, (split, fname) in enumerate((("train", "training.csv"), ("valid", "validation.csv"))):
        with open(lists / fname, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for k, code in enumerate((1, 7, 8, 6)):
                rel = f"{100 + s}/{k}.jpg"
                write_png(base / "Manually_Annotated_Images" / rel, size=(120, 100), seed=20 * s + k, mode="RGB")
                writer.writerow([rel, 10, 5, 80, 80, "1;2;3", code, 0.25 * (k - 1), 0.5])
    return base


def make_rafdb(root: Path, n_train: int = 4, n_test: int = 2) -> Path:
    """RAF-DB basic: ``EmoLabel/list_patition_label.txt`` + ``Image/aligned/*_aligned.jpg`` (100x100)."""
    base = root / "rafdb"
    (base / "EmoLabel").mkdir(parents=True, exist_ok=True)
    lines = []
    for split, n in (("train", n_train), ("test", n_test)):
        for k in range(1, n + 1):
            name = f"{split}_{k:05d}.jpg" if split == "train" else f"{split}_{k:04d}.jpg"
            write_png(base / "Image" / "aligned" / name.replace(".jpg", "_aligned.jpg"), size=(100, 100), seed=k, mode="RGB")
            lines.append(f"{name} {(k % 7) + 1}")
    (base / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return base


def make_kdef(root: Path, people: Iterable[str] = ("F01", "M02"), poses: Iterable[str] = ("S", "HL")) -> Path:
    """KDEF: ``kdef/KDEF/AF01/AF01ANS.JPG`` for sessions A and B, 7 expressions, ``poses``."""
    base = root / "kdef"
    k = 0
    for session in "AB":
        for person in people:
            for expr in ("AF", "AN", "DI", "HA", "NE", "SA", "SU"):
                for pose in poses:
                    name = f"{session}{person}{expr}{pose}.JPG"
                    write_png(base / "KDEF" / f"{session}{person}" / name, size=(562, 762), seed=k, mode="RGB")
                    k += 1
    return base


def make_disfa(root: Path, subjects: Sequence[str] = ("SN001", "SN002"), frames: int = 6) -> Path:
    """DISFA: ``Frames/SN001/00001.png`` + ``ActionUnit_Labels/SN001/SN001_au<k>.txt``."""
    from affectlab.data.faces import DISFA_AUS

    base = root / "disfa"
    for s, subject in enumerate(subjects):
        for f in range(1, frames + 1):
            write_png(base / "Frames" / subject / f"{f:05d}.png", size=(64, 48), seed=10 * s + f, mode="RGB")
        (base / "ActionUnit_Labels" / subject).mkdir(parents=True, exist_ok=True)
        for au in DISFA_AUS:
            text = "\n".join(f"{f},{(f + au) % 6}" for f in range(1, frames + 1))
            (base / "ActionUnit_Labels" / subject / f"{subject}_au{au}.txt").write_text(text + "\n")
    return base


# ------------------------------------------------------------------------------------------------
# Manifests adapted to fixtures
# ------------------------------------------------------------------------------------------------


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _is_table_array(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def toml_lines(table: dict, prefix: tuple[str, ...] = ()) -> list[str]:
    """A minimal TOML writer for manifests (scalars, lists, tables, arrays of tables)."""
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict) and not _is_table_array(v)]
    for key, value in table.items():
        path = ".".join(json.dumps(p) for p in prefix + (key,))
        if isinstance(value, dict):
            lines += ["", f"[{path}]", *toml_lines(value, prefix + (key,))]
        elif _is_table_array(value):
            for item in value:
                lines += ["", f"[[{path}]]", *toml_lines(item, prefix + (key,))]
    return lines


def write_manifest(folder: Path, manifest: dict) -> Path:
    path = folder / f"{manifest['name']}.toml"
    path.write_text("\n".join(toml_lines(manifest)) + "\n")
    return path


def adapt_manifest(manifest: dict, dataset_dir: Path) -> dict:
    """The manifest with counts, sizes and sha256 replaced by those of the fixture in ``dataset_dir``."""
    adapted = json.loads(json.dumps(manifest))
    for layout in adapted["layouts"]:
        for entry in layout.get("files", []):
            path = dataset_dir / entry["path"]
            if path.is_file():
                entry["sha256"] = sha256_file(path)
                entry["bytes"] = path.stat().st_size
        for entry in layout.get("folders", []):
            folder = dataset_dir / entry["path"]
            if folder.is_dir() and "count" in entry:
                entry["count"] = len(scan_folder(folder, entry["glob"]))
    return adapted


def install_manifests(monkeypatch, tmp_path: Path, adapted: dict[str, Path]) -> Path:
    """Copy the repo's manifests to ``tmp_path/manifests``, adapt those in ``adapted`` (name ->
    fixture dataset folder) and set ``AFFECTLAB_MANIFESTS`` there; return the folder."""
    monkeypatch.delenv(MANIFESTS_ENV, raising=False)
    source = manifests_dir()
    target = tmp_path / "manifests"
    target.mkdir(exist_ok=True)
    for path in source.glob("*.toml"):
        shutil.copy(path, target / path.name)
    for name, dataset_dir in adapted.items():
        with open(source / f"{name}.toml", "rb") as handle:
            manifest = tomllib.load(handle)
        write_manifest(target, adapt_manifest(manifest, dataset_dir))
    monkeypatch.setenv(MANIFESTS_ENV, str(target))
    return target
