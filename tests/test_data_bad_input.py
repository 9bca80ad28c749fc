"""Bad input: every error must name the offending file (or parameter) and what was expected."""

from __future__ import annotations

import csv
import json
import re

import pytest

from affectlab.config import ConfigError
from affectlab.data import faces, load
from affectlab.data.manifest import (
    DatasetNotFoundError,
    DatasetValidationError,
    ManifestError,
    read_manifest,
)
from affectlab.data.registry import UnknownDatasetError, asset_path

from fixtures_faces import (
    ferplus_rows,
    install_manifests,
    make_affectnet_mini,
    make_ckplus,
    make_disfa,
    make_ferplus_kaggle,
    make_ferplus_png,
    make_image_csv,
    make_kdef,
    make_rafdb,
    write_png,
)


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv("AFFECTLAB_DATA", raising=False)


@pytest.fixture
def ferplus_dir(tmp_path):
    return make_ferplus_png(tmp_path, ferplus_rows((4, 2, 2)))


def _names(exc_info, path) -> None:
    assert str(path) in str(exc_info.value), f"message does not name {path}: {exc_info.value}"


def test_truncated_png(ferplus_dir):
    png = ferplus_dir / "FER2013Train" / "fer0000001.png"
    png.write_bytes(png.read_bytes()[:60])
    with pytest.raises(DatasetValidationError, match="truncated or corrupt") as info:
        faces.load_ferplus(ferplus_dir, "train", read_manifest("ferplus"))
    _names(info, png)


def test_wrong_image_size(ferplus_dir):
    png = ferplus_dir / "FER2013Valid" / "fer0000004.png"
    write_png(png, size=(40, 40))
    with pytest.raises(DatasetValidationError, match="40x40, expected 48x48") as info:
        faces.load_ferplus(ferplus_dir, "valid", read_manifest("ferplus"))
    _names(info, png)


def test_missing_label_csv(ferplus_dir):
    label = ferplus_dir / "FER2013Test" / "label.csv"
    label.unlink()
    with pytest.raises(DatasetValidationError, match="label file is missing") as info:
        faces.load_ferplus(ferplus_dir, "test", read_manifest("ferplus"))
    _names(info, label)


def test_wrong_vote_count_columns(ferplus_dir):
    label = ferplus_dir / "FER2013Train" / "label.csv"
    lines = label.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0]  # 9 vote counts
    label.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetValidationError, match="line 3: expected 12 columns") as info:
        faces.load_ferplus(ferplus_dir, "train", read_manifest("ferplus"))
    _names(info, label)


def test_non_integer_vote(ferplus_dir):
    label = ferplus_dir / "FER2013Valid" / "label.csv"
    label.write_text(re.sub(r'"\(0, 0, 48, 48\)",\d+', '"(0, 0, 48, 48)",six', label.read_text(), count=1))
    with pytest.raises(DatasetValidationError, match="vote counts must be integers") as info:
        faces.load_ferplus(ferplus_dir, "valid", read_manifest("ferplus"))
    _names(info, label)


def test_image_named_in_label_csv_is_missing(ferplus_dir):
    png = ferplus_dir / "FER2013Train" / "fer0000002.png"
    png.unlink()
    with pytest.raises(DatasetValidationError, match="is missing") as info:
        faces.load_ferplus(ferplus_dir, "train", read_manifest("ferplus"))
    _names(info, png)


def test_checksum_mismatch(monkeypatch, tmp_path, ferplus_dir):
    install_manifests(monkeypatch, tmp_path, {"ferplus": ferplus_dir})
    label = ferplus_dir / "FER2013Train" / "label.csv"
    content = label.read_bytes()
    label.write_bytes(content.replace(b",6,", b",5,", 1))  # one vote changed, same size
    assert label.stat().st_size == len(content) and label.read_bytes() != content
    with pytest.raises(DatasetValidationError, match="expected [0-9a-f]{64}, found [0-9a-f]{64}") as info:
        load("ferplus", root=tmp_path, split="train")
    _names(info, label)


def test_key_file_size_mismatch(monkeypatch, tmp_path, ferplus_dir):
    install_manifests(monkeypatch, tmp_path, {"ferplus": ferplus_dir})
    label = ferplus_dir / "FER2013Valid" / "label.csv"
    label.write_text(label.read_text()[:-10])
    with pytest.raises(DatasetValidationError, match=r"expected \d+ bytes, found \d+ bytes") as info:
        load("ferplus", root=tmp_path, split="valid")
    _names(info, label)


def test_file_count_mismatch(monkeypatch, tmp_path, ferplus_dir):
    install_manifests(monkeypatch, tmp_path, {"ferplus": ferplus_dir})
    write_png(ferplus_dir / "FER2013Test" / "fer9999999.png")
    with pytest.raises(DatasetValidationError, match="count of \\*.png: expected 2, found 3") as info:
        load("ferplus", root=tmp_path, split="test")
    _names(info, ferplus_dir / "FER2013Test")


def test_dataset_folder_missing_under_root(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="How to obtain it: .*Kaggle") as info:
        load("ferplus", root=tmp_path)
    _names(info, tmp_path / "ferplus")


def test_dataset_folder_without_known_layout(tmp_path):
    """Present but unrecognisable is invalid (never "not found", which would fall back)."""
    (tmp_path / "rafdb").mkdir()
    with pytest.raises(DatasetValidationError, match="no known layout") as info:
        load("rafdb", root=tmp_path, split="test")
    _names(info, tmp_path / "rafdb" / "EmoLabel" / "list_patition_label.txt")


def test_missing_data_root(tmp_path):
    missing = tmp_path / "no_such_root"
    with pytest.raises(ConfigError, match="not an existing directory") as info:
        load("ckplus", root=missing)
    _names(info, missing)


def test_unknown_dataset():
    with pytest.raises(UnknownDatasetError, match="unknown dataset 'fer2014'; known datasets: ferplus, fer2013"):
        load("fer2014")


def test_empty_emotion_folder(tmp_path):
    base = make_ckplus(tmp_path)
    for png in (base / "fear").glob("*.png"):
        png.unlink()
    with pytest.raises(DatasetValidationError, match="emotion folder is empty") as info:
        faces.load_ckplus(base, "all", read_manifest("ckplus"))
    _names(info, base / "fear")


def test_ckplus_bad_file_name(tmp_path):
    base = make_ckplus(tmp_path)
    bad = base / "anger" / "subject10.png"
    write_png(bad)
    with pytest.raises(DatasetValidationError, match="S010_004_00000017.png") as info:
        faces.load_ckplus(base, "all", read_manifest("ckplus"))
    _names(info, bad)


def test_csv_missing_column(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("path,emotion\na.png,happy\n")
    with pytest.raises(DatasetValidationError, match=r"missing column\(s\) \['label'\]") as info:
        faces.load_image_csv(path)
    _names(info, path)


def test_csv_label_out_of_range(tmp_path):
    path = make_image_csv(tmp_path)
    path.write_text(path.read_text().replace(",3,p2,", ",9,p2,"))
    with pytest.raises(DatasetValidationError, match="line 3: label 9 out of range 0..7") as info:
        faces.load_image_csv(path)
    _names(info, path)


def test_csv_unknown_label_name(tmp_path):
    path = make_image_csv(tmp_path)
    path.write_text(path.read_text().replace("contempt", "smug"))
    with pytest.raises(DatasetValidationError, match="'smug' is not a FERPlus class") as info:
        faces.load_image_csv(path)
    _names(info, path)


def test_csv_valence_out_of_range(tmp_path):
    path = make_image_csv(tmp_path)
    path.write_text(path.read_text().replace(",0.8,", ",1.8,"))
    with pytest.raises(DatasetValidationError, match=r"valence 1.8 outside \[-1, 1\]") as info:
        faces.load_image_csv(path)
    _names(info, path)


def test_kaggle_pixels_wrong_length(tmp_path):
    base = make_ferplus_kaggle(tmp_path, ferplus_rows((3, 1, 1)), extra_rows=False)
    pixels_csv = base / "fer2013.csv"
    with open(pixels_csv) as handle:
        rows = list(csv.reader(handle))
    rows[2][1] = " ".join(rows[2][1].split()[:100])
    with open(pixels_csv, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    with pytest.raises(DatasetValidationError, match="line 3: pixels must be 2304 integers") as info:
        faces.load_ferplus(base, "train", read_manifest("ferplus"))
    _names(info, pixels_csv)


def test_kaggle_row_count_mismatch(tmp_path):
    base = make_ferplus_kaggle(tmp_path, ferplus_rows((3, 1, 1)), extra_rows=False)
    votes_csv = base / "fer2013new.csv"
    votes_csv.write_text("\n".join(votes_csv.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DatasetValidationError, match="must match row by row") as info:
        faces.load_ferplus(base, "train", read_manifest("ferplus"))
    _names(info, votes_csv)
    _names(info, base / "fer2013.csv")


def test_rafdb_malformed_label_line(tmp_path):
    base = make_rafdb(tmp_path)
    label = base / "EmoLabel" / "list_patition_label.txt"
    label.write_text(label.read_text() + "train_00009.jpg\n")
    with pytest.raises(DatasetValidationError, match="expected '<name>.jpg <label 1..7>'") as info:
        faces.load_rafdb(base, "train", read_manifest("rafdb"))
    _names(info, label)


def test_rafdb_label_out_of_range(tmp_path):
    base = make_rafdb(tmp_path)
    label = base / "EmoLabel" / "list_patition_label.txt"
    label.write_text(re.sub(r"train_00001.jpg \d", "train_00001.jpg 8", label.read_text()))
    with pytest.raises(DatasetValidationError, match="label 8 out of range 1..7") as info:
        faces.load_rafdb(base, "train", read_manifest("rafdb"))
    _names(info, label)


def test_class_map_not_json(tmp_path):
    base = make_affectnet_mini(tmp_path)
    (base / "class_map.json").write_text("{neutral: 0")
    with pytest.raises(DatasetValidationError, match="not valid JSON") as info:
        faces.load_affectnet_mini(base, "train", read_manifest("affectnet_mini"))
    _names(info, base / "class_map.json")


def test_class_map_unknown_class(tmp_path):
    base = make_affectnet_mini(tmp_path)
    (base / "class_map.json").write_text(json.dumps({"neutral": 0, "bored": 1}))
    with pytest.raises(DatasetValidationError, match="'bored' has no FERPlus class") as info:
        faces.load_affectnet_mini(base, "train", read_manifest("affectnet_mini"))
    _names(info, base / "class_map.json")


def test_kdef_bad_file_name(tmp_path):
    base = make_kdef(tmp_path, people=("F01",), poses=("S",))
    bad = base / "KDEF" / "AF01" / "AF01XXS.JPG"
    write_png(bad, size=(562, 762), mode="RGB")
    with pytest.raises(DatasetValidationError, match="KDEF code") as info:
        faces.load_kdef(base, "all", read_manifest("kdef"))
    _names(info, bad)


def test_disfa_missing_au_file(tmp_path):
    base = make_disfa(tmp_path, subjects=("SN001",), frames=3)
    au_file = base / "ActionUnit_Labels" / "SN001" / "SN001_au12.txt"
    au_file.unlink()
    with pytest.raises(DatasetValidationError, match="AU label file is missing") as info:
        faces.load_disfa(base, "all", read_manifest("disfa"))
    _names(info, au_file)


def test_malformed_manifest(monkeypatch, tmp_path):
    folder = install_manifests(monkeypatch, tmp_path, {})
    path = folder / "minixception.toml"
    path.write_text(path.read_text().replace('sha256 = "5953', 'sha256 = "XY53', 1))
    with pytest.raises(ManifestError, match="sha256 must be 64 lowercase hex digits") as info:
        read_manifest("minixception")
    _names(info, path)


def test_manifest_not_toml(monkeypatch, tmp_path):
    folder = install_manifests(monkeypatch, tmp_path, {})
    path = folder / "kdef.toml"
    path.write_text("name = \n")
    with pytest.raises(ManifestError, match="not valid TOML") as info:
        read_manifest("kdef")
    _names(info, path)


def test_asset_checksum_mismatch(monkeypatch, tmp_path):
    folder = tmp_path / "minixception"
    folder.mkdir()
    for name in ("fer2013_mini_XCEPTION.102-0.66.hdf5", "fer2013_big_XCEPTION.54-0.66.hdf5", "LICENSE"):
        (folder / name).write_bytes(b"x" * 32)
    install_manifests(monkeypatch, tmp_path, {"minixception": folder})
    weights = folder / "fer2013_mini_XCEPTION.102-0.66.hdf5"
    weights.write_bytes(b"y" * 32)
    with pytest.raises(DatasetValidationError, match="expected [0-9a-f]{64}") as info:
        asset_path("minixception", root=tmp_path)
    _names(info, weights)
