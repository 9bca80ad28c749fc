"""Dataset manifests: read, check their schema, and validate a dataset folder against one.

The format is documented in ``data_manifests/README.md``. A manifest lists the alternative on-disk
layouts of a dataset; :func:`select_layout` picks the one present, :func:`check_dataset` verifies
key files (existence, size, SHA-256) and folder counts, and returns a :class:`CheckReport` whose
problems name the file and what was expected.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import affectlab
from affectlab.config import config_hash
from affectlab.data.taxonomy import FERPLUS_CLASSES

MANIFESTS_ENV = "AFFECTLAB_MANIFESTS"
SCHEMA_VERSION = 1
KINDS = ("face", "eeg", "asset")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(ValueError):
    """A manifest file is missing or malformed; the message names the file and the key."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset (or asset) is not under the data root; the message says where and how to obtain it."""


class DatasetValidationError(ValueError):
    """Files of a dataset are missing, truncated, corrupt or mismatched; the message names them."""


def manifests_dir() -> Path:
    """The manifest folder: ``$AFFECTLAB_MANIFESTS``, else ``<repo>/data_manifests`` (editable install)."""
    env = os.environ.get(MANIFESTS_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise ManifestError(f"environment variable {MANIFESTS_ENV}={env!r} is not an existing directory")
        return path
    path = Path(affectlab.__file__).resolve().parents[2] / "data_manifests"
    if not path.is_dir():
        raise ManifestError(
            f"manifest folder {path} not found (affectlab is expected as an editable install of the "
            f"repository, with data_manifests/ at its top level); set {MANIFESTS_ENV} to the folder"
        )
    return path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _require(table: dict, key: str, types: type | tuple, where: str) -> Any:
    if key not in table:
        raise ManifestError(f"{where}: missing required key {key!r}")
    value = table[key]
    if not isinstance(value, types) or isinstance(value, bool) and types is not bool:
        names = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        raise ManifestError(f"{where}: key {key!r} must be {names}, got {type(value).__name__} {value!r}")
    return value


def _check_relpath(value: str, where: str) -> None:
    parts = Path(value).parts
    if Path(value).is_absolute() or ".." in parts or not parts:
        raise ManifestError(f"{where}: path {value!r} must be relative, non-empty and without '..'")


def _check_count(table: dict, key: str, where: str) -> None:
    if key in table:
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ManifestError(f"{where}: {key} must be a non-negative int, got {value!r}")


def validate_manifest(manifest: dict, source: str | Path) -> dict:
    """Check a parsed manifest against the format of ``data_manifests/README.md``; return it."""
    where = str(source)
    version = _require(manifest, "schema_version", int, where)
    if version != SCHEMA_VERSION:
        raise ManifestError(f"{where}: schema_version {version} unsupported (this affectlab reads {SCHEMA_VERSION})")
    name = _require(manifest, "name", str, where)
    if isinstance(source, Path) and source.stem != name:
        raise ManifestError(f"{where}: name {name!r} must equal the file stem {source.stem!r}")
    kind = _require(manifest, "kind", str, where)
    if kind not in KINDS:
        raise ManifestError(f"{where}: kind {kind!r} unknown; expected one of {KINDS}")
    _require(manifest, "title", str, where)
    _check_relpath(_require(manifest, "folder", str, where), f"{where}: folder")
    _require(manifest, "checksums", str, where)
    for table in ("citation", "licence", "obtain"):
        _require(manifest, table, dict, where)
    _require(manifest["citation"], "text", str, f"{where} [citation]")
    _require(manifest["licence"], "name", str, f"{where} [licence]")
    _require(manifest["obtain"], "how", str, f"{where} [obtain]")
    if kind == "asset":
        _check_relpath(_require(manifest, "asset_file", str, where), f"{where}: asset_file")
    else:
        splits = _require(manifest, "splits", list, where)
        if not splits or not all(isinstance(s, str) for s in splits):
            raise ManifestError(f"{where}: splits must be a non-empty list of strings, got {splits!r}")
        default = manifest.get("default_split", splits[0])
        if default not in splits:
            raise ManifestError(f"{where}: default_split {default!r} is not one of splits {splits}")
    layouts = _require(manifest, "layouts", list, where)
    if not layouts:
        raise ManifestError(f"{where}: at least one [[layouts]] entry is required")
    seen: set[str] = set()
    for i, layout in enumerate(layouts):
        lwhere = f"{where} [[layouts]] #{i + 1}"
        lname = _require(layout, "name", str, lwhere)
        if lname in seen:
            raise ManifestError(f"{lwhere}: duplicate layout name {lname!r}")
        seen.add(lname)
        _check_relpath(_require(layout, "marker", str, lwhere), f"{lwhere}: marker")
        for j, entry in enumerate(layout.get("files", [])):
            fwhere = f"{lwhere} files #{j + 1}"
            _check_relpath(_require(entry, "path", str, fwhere), fwhere)
            if "sha256" in entry and not (isinstance(entry["sha256"], str) and _SHA256.match(entry["sha256"])):
                raise ManifestError(f"{fwhere}: sha256 must be 64 lowercase hex digits, got {entry['sha256']!r}")
            _check_count(entry, "bytes", fwhere)
        for j, entry in enumerate(layout.get("folders", [])):
            fwhere = f"{lwhere} folders #{j + 1}"
            _check_relpath(_require(entry, "path", str, fwhere), fwhere)
            _require(entry, "glob", str, fwhere)
            _check_count(entry, "count", fwhere)
            _check_count(entry, "min_count", fwhere)
            if "image_size" in entry:
                size = entry["image_size"]
                if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
                    raise ManifestError(f"{fwhere}: image_size must be [width, height] positive ints, got {size!r}")
    labels = manifest.get("labels")
    if labels is not None:
        to_ferplus = labels.get("to_ferplus", {})
        if not isinstance(to_ferplus, dict):
            raise ManifestError(f"{where} [labels.to_ferplus] must be a table")
        for code, target in to_ferplus.items():
            if target != "" and target not in FERPLUS_CLASSES:
                raise ManifestError(
                    f"{where} [labels.to_ferplus]: {code!r} -> {target!r} is not a FERPlus class "
                    f"{FERPLUS_CLASSES} or \"\""
                )
        if "" in to_ferplus.values() and not labels.get("unmapped_note"):
            raise ManifestError(f"{where} [labels]: unmapped_note is required when a to_ferplus value is \"\"")
    return manifest


def read_manifest(name_or_path: str | Path) -> dict:
    """Parse and check ``<manifests_dir>/<name>.toml`` (or a path to a .toml file)."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = manifests_dir() / f"{name_or_path}.toml"
    if not path.is_file():
        raise ManifestError(f"manifest {path} not found")
    try:
        with open(path, "rb") as handle:
            manifest = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"manifest {path} is not valid TOML: {exc}") from None
    return validate_manifest(manifest, path)


def manifest_hash(manifest: dict) -> str:
    """Short hash of the manifest's content (keys caches)."""
    return config_hash(manifest, length=16)


def expected_layouts(manifest: dict, dataset_dir: Path) -> str:
    """What a dataset folder must contain, one alternative per layout: ``layout 'x' (marker <path>)``."""
    return "; or ".join(f"layout {layout['name']!r} (marker {dataset_dir / layout['marker']})"
                        for layout in manifest["layouts"])


def find_layout(manifest: dict, dataset_dir: Path) -> dict | None:
    """The first layout whose ``marker`` exists under ``dataset_dir``, else None."""
    for layout in manifest["layouts"]:
        if (dataset_dir / layout["marker"]).exists():
            return layout
    return None


def no_layout_message(manifest: dict, dataset_dir: Path) -> str:
    """The error for a dataset folder that exists but matches none of the manifest's layouts."""
    return (
        f"{manifest['name']}: no known layout found in {dataset_dir}: the folder exists but holds none of "
        f"the expected layouts ({expected_layouts(manifest, dataset_dir)}). Fix or remove the folder "
        f"(an absent folder falls back to the embedded default; a misplaced copy does not). "
        f"How to obtain it: {manifest['obtain']['how'].strip()}"
    )


def select_layout(manifest: dict, dataset_dir: Path) -> dict:
    """The first layout whose ``marker`` exists under ``dataset_dir``; else
    :class:`DatasetValidationError` (:func:`no_layout_message`: what was expected, where)."""
    layout = find_layout(manifest, dataset_dir)
    if layout is None:
        raise DatasetValidationError(no_layout_message(manifest, dataset_dir))
    return layout


def _applies(entry: dict, split: str | None) -> bool:
    return split is None or "split" not in entry or entry["split"] == split


def scan_folder(folder: Path, pattern: str) -> list[tuple[str, int, int]]:
    """(path relative to ``folder``, size in bytes, mtime in ns) of the files matching ``pattern``,
    sorted.

    Single-level patterns use ``os.scandir`` (one stat per file, fast on 30k-file folders); patterns
    with ``/`` fall back to ``Path.glob``. Matching is case-sensitive on every platform.
    """
    if "/" not in pattern:
        found = []
        with os.scandir(folder) as entries:
            for entry in entries:
                if fnmatch.fnmatchcase(entry.name, pattern) and entry.is_file():
                    stat = entry.stat()
                    found.append((entry.name, stat.st_size, stat.st_mtime_ns))
        return sorted(found)
    found = []
    for path in folder.glob(pattern):
        if path.is_file():
            stat = path.stat()
            found.append((path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns))
    return sorted(found)


def list_folder(folder: Path, pattern: str) -> list[Path]:
    """Files under ``folder`` matching ``pattern`` (sorted); non-files ignored."""
    return [folder / entry[0] for entry in scan_folder(folder, pattern)]


@dataclasses.dataclass
class CheckItem:
    """One check: what was checked, the file, expected vs found, and whether it passed."""

    what: str
    path: Path
    expected: str
    found: str
    ok: bool


@dataclasses.dataclass
class CheckReport:
    """Result of validating one dataset folder against its manifest."""

    name: str
    dataset_dir: Path | None
    found: bool
    """The dataset folder exists under the data root (valid or not: see :attr:`ok`)."""
    layout: str | None = None
    """The layout found; None with ``found`` True means the folder matches no layout (invalid)."""
    items: list[CheckItem] = dataclasses.field(default_factory=list)
    note: str = ""
    listings: dict[str, list[tuple[str, int, int]]] = dataclasses.field(default_factory=dict)
    """Per checked folder entry (``"<path>|<glob>"``): (name, size, mtime_ns) of its files."""

    @property
    def ok(self) -> bool:
        return self.found and all(item.ok for item in self.items)

    @property
    def problems(self) -> list[CheckItem]:
        return [item for item in self.items if not item.ok]

    def raise_if_invalid(self) -> None:
        if not self.found:
            raise DatasetNotFoundError(self.note)
        if self.layout is None:  # the folder exists but matches no layout of the manifest
            raise DatasetValidationError(self.note)
        if self.problems:
            lines = [f"{p.path}: {p.what}: expected {p.expected}, found {p.found}" for p in self.problems]
            raise DatasetValidationError(
                f"{self.name} in {self.dataset_dir} (layout {self.layout}) is invalid:\n  " + "\n  ".join(lines)
            )


def check_layout_files(
    dataset_dir: Path,
    layout: dict,
    split: str | None = None,
    hash_files: bool = True,
    listings: dict[str, list[tuple[str, int, int]]] | None = None,
) -> list[CheckItem]:
    """Existence, size and SHA-256 of the layout's key files; counts of its folders (the folder
    listings are stored in ``listings`` when given)."""
    items: list[CheckItem] = []
    for entry in layout.get("files", []):
        if not _applies(entry, split):
            continue
        path = dataset_dir / entry["path"]
        if not path.is_file():
            items.append(CheckItem("key file", path, "a file", "missing", False))
            continue
        size = path.stat().st_size
        if "bytes" in entry:
            ok = size == entry["bytes"]
            items.append(CheckItem("size", path, f"{entry['bytes']} bytes", f"{size} bytes", ok))
            if not ok:
                continue
        if "sha256" in entry and hash_files:
            digest = sha256_file(path)
            items.append(CheckItem("sha256", path, entry["sha256"], digest, digest == entry["sha256"]))
        elif "sha256" not in entry:
            items.append(CheckItem("present (no sha256 in manifest)", path, "a file", f"{size} bytes", True))
    for entry in layout.get("folders", []):
        if not _applies(entry, split):
            continue
        folder = dataset_dir / entry["path"]
        if not folder.is_dir():
            items.append(CheckItem("folder", folder, f"a folder of {entry['glob']}", "missing", False))
            continue
        listing = scan_folder(folder, entry["glob"])
        if listings is not None:
            listings[f"{entry['path']}|{entry['glob']}"] = listing
        count = len(listing)
        if "count" in entry:
            items.append(
                CheckItem(f"count of {entry['glob']}", folder, str(entry["count"]), str(count), count == entry["count"])
            )
        elif "min_count" in entry:
            items.append(
                CheckItem(
                    f"count of {entry['glob']}", folder, f">= {entry['min_count']}", str(count), count >= entry["min_count"]
                )
            )
        else:
            items.append(CheckItem(f"count of {entry['glob']}", folder, ">= 1", str(count), count >= 1))
    return items


def check_dataset(manifest: dict, dataset_dir: Path | None, split: str | None = None) -> CheckReport:
    """Validate ``dataset_dir`` against ``manifest`` (``split`` None = every split). Never raises for
    bad data: problems are in the report (call :meth:`CheckReport.raise_if_invalid`).

    An absent folder is "not found" (``found`` False). A folder that exists but matches none of the
    manifest's layouts is found and INVALID (``layout`` None, one failing "layout" item saying what
    was expected), so it can never pass for an absent dataset."""
    name = manifest["name"]
    how = manifest["obtain"]["how"].strip()
    if dataset_dir is None:
        return CheckReport(name, None, False, note=f"{name}: no data root given. How to obtain it: {how}")
    if not dataset_dir.is_dir():
        return CheckReport(
            name, dataset_dir, False, note=f"{name}: expected folder {dataset_dir} does not exist. How to obtain it: {how}"
        )
    layout = find_layout(manifest, dataset_dir)
    if layout is None:  # present but unrecognisable: invalid, never "not found"
        item = CheckItem("layout", dataset_dir, expected_layouts(manifest, dataset_dir), "none of these markers", False)
        return CheckReport(name, dataset_dir, True, None, [item], note=no_layout_message(manifest, dataset_dir))
    report = CheckReport(name, dataset_dir, True, layout=layout["name"])
    report.items = check_layout_files(dataset_dir, layout, split, listings=report.listings)
    return report
