"""The static V/A prototype bank of NeuroGaze-Distill (paper 000 Sec. 4.1, Algorithm 1).

Teacher features of the EEG validation set are L2-normalised, binned on a G x G grid of
valence/arousal centres (``linspace(-0.8, 0.8, G)`` on each axis, Sec. 3.3) by nearest centre, and
averaged per bin; empty bins take the mean of the nearest non-empty bin; the prior is the
Laplace-smoothed bin occupancy ``(N_uv + eps) / sum_ab (N_ab + eps)``.

Conventions (the paper leaves them implicit; fixed here):

- Bin order: ``k = u * G + v`` with ``u`` the valence index (rows) and ``v`` the arousal index
  (columns), both increasing from -0.8 to 0.8, i.e. ``P = {p_uv}_{u,v}`` flattened row-major.
- Ties in binning (a value exactly half-way between two centres, e.g. V = -0.6 for G = 5) go to the
  lower centre, the first arg-min of ``|v - C_j|``; a 1e-9 tolerance makes this immune to float
  rounding.
- Prototypes are the plain per-bin means of the normalised features and are NOT re-normalised:
  Algorithm 1 line 9 does not, and Proto-KD uses cosine similarity, which ignores the norm. A bin
  mean's norm (<= 1) tells how concentrated the bin's features are.
- "Nearest non-empty bin" is measured in grid index space with the Euclidean distance; ties go to
  the lowest flat bin index ``k``. The filled bin copies that bin's mean (one pass, not iterated).

:func:`save_prototype_bank` / :func:`load_prototype_bank` version the bank with SHA-256 as the paper
does (Table 1: the bank's digest is published) plus a fingerprint of how it was made.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "bin_centres",
    "bin_index",
    "coverage",
    "build_prototype_bank",
    "PrototypeBank",
    "save_prototype_bank",
    "load_prototype_bank",
    "REQUIRED_FINGERPRINT_KEYS",
]

CENTRE_LIMIT = 0.8
_TIE_TOLERANCE = 1e-9
REQUIRED_FINGERPRINT_KEYS = ("grid", "eps", "teacher_config_hash", "data_source")


def _check_grid(grid: Any) -> int:
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 1:
        raise ValueError(f"parameter grid must be a positive int (5 in the paper); got {grid!r}")
    return int(grid)


def _as_array(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _check_va(va: Any) -> np.ndarray:
    arr = _as_array(va, "va")
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"parameter va must be (N, 2) valence/arousal; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("parameter va has NaN/inf values")
    if arr.size and (arr.min() < -1 - 1e-6 or arr.max() > 1 + 1e-6):
        raise ValueError(
            f"parameter va must be mapped to [-1, 1] (paper 000 Sec. 3.3); got range "
            f"[{arr.min():.3g}, {arr.max():.3g}]"
        )
    return arr


def bin_centres(grid: int = 5) -> np.ndarray:
    """Centres of the V/A grid on each axis: ``linspace(-0.8, 0.8, grid)`` (paper 000 Sec. 3.3)."""
    grid = _check_grid(grid)
    if grid == 1:
        return np.zeros(1)
    return np.linspace(-CENTRE_LIMIT, CENTRE_LIMIT, grid)


def _nearest_centre(values: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Algorithm 1 BINVA on one axis: arg-min_j |value - C_j|, ties to the lower j."""
    dist = np.abs(values[:, None] - centres[None, :])
    best = dist.min(axis=1, keepdims=True)
    return np.argmax(dist <= best + _TIE_TOLERANCE, axis=1)


def bin_index(va: Any, grid: int = 5) -> np.ndarray:
    """Flat bin index ``k = u * grid + v`` of each (valence, arousal) row (Algorithm 1 BINVA)."""
    arr = _check_va(va)
    centres = bin_centres(grid)
    u = _nearest_centre(arr[:, 0], centres)
    v = _nearest_centre(arr[:, 1], centres)
    return (u * len(centres) + v).astype(np.int64)


def coverage(va: Any, grid: int = 5) -> np.ndarray:
    """Samples per bin as a (grid, grid) array, rows = valence, columns = arousal (paper 000 Fig. 2)."""
    grid = _check_grid(grid)
    return np.bincount(bin_index(va, grid), minlength=grid * grid).reshape(grid, grid)


def build_prototype_bank(
    features: Any, va: Any, grid: int = 5, eps: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Algorithm 1 of paper 000: static prototypes and their prior from teacher features.

    Args:
        features: (N, D) penultimate teacher features of the validation set (numpy or torch).
        va: (N, 2) valence/arousal of the same rows, mapped to [-1, 1].
        grid: G (5 in the paper); eps: Laplace smoothing (about 1 in the paper).

    Returns:
        ``prototypes`` (G*G, D) float32, the per-bin means of the L2-normalised features (empty bins
        filled from the nearest non-empty bin), and ``prior`` (G*G,) float64,
        ``(N_k + eps) / (N + eps * G^2)``. Bin order and tie rules: see the module docstring.

    Algorithm 1's "global mean fallback" (for a bank with no non-empty bin at all) cannot arise
    here: an empty input raises, and one sample already fills a bin that every empty bin can copy.
    """
    grid = _check_grid(grid)
    feats = _as_array(features, "features")
    if feats.ndim != 2:
        raise ValueError(f"parameter features must be (N, D); got shape {feats.shape}")
    if not np.all(np.isfinite(feats)):
        raise ValueError("parameter features has NaN/inf values")
    bins = bin_index(va, grid)
    if len(bins) != len(feats):
        raise ValueError(f"features has {len(feats)} rows but va has {len(bins)}; they must match")
    if len(feats) == 0:
        raise ValueError("build_prototype_bank: no samples; the bank needs at least one feature row")
    if not eps >= 0:
        raise ValueError(f"parameter eps must be >= 0; got {eps}")
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("parameter features has all-zero rows, which cannot be L2-normalised")
    unit = feats / norms

    k = grid * grid
    counts = np.bincount(bins, minlength=k).astype(np.float64)
    sums = np.zeros((k, feats.shape[1]))
    np.add.at(sums, bins, unit)
    filled = counts > 0
    prototypes = np.zeros_like(sums)
    prototypes[filled] = sums[filled] / counts[filled, None]

    coords = np.stack(np.divmod(np.arange(k), grid), axis=1).astype(np.float64)  # (u, v)
    donors = np.flatnonzero(filled)
    for empty in np.flatnonzero(~filled):
        dist = np.linalg.norm(coords[donors] - coords[empty], axis=1)
        nearest = donors[np.argmax(dist <= dist.min() + _TIE_TOLERANCE)]  # lowest k among ties
        prototypes[empty] = prototypes[nearest]

    prior = (counts + eps) / (counts.sum() + eps * k)
    return prototypes.astype(np.float32), prior


class PrototypeBank(NamedTuple):
    """A loaded bank: ``prototypes`` (K, D), ``prior`` (K,), its ``fingerprint`` and ``sha256``."""

    prototypes: np.ndarray
    prior: np.ndarray
    fingerprint: dict[str, Any]
    sha256: str


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write(path: Path, write: Any, suffix: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_prototype_bank(
    path: str | os.PathLike, prototypes: Any, prior: Any, fingerprint: dict[str, Any]
) -> Path:
    """Write the bank as ``.npz`` (keys ``prototypes``, ``prior``) atomically, plus a JSON sidecar
    ``<path>.json`` with the npz's SHA-256 and the ``fingerprint`` (paper 000 Sec. 7, Table 1).

    ``fingerprint`` must hold at least ``grid``, ``eps``, ``teacher_config_hash`` and
    ``data_source``; ``grid`` must agree with the number of prototypes. Returns the npz path.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"prototype bank path must end in .npz; got {str(path)!r}")
    protos = _as_array(prototypes, "prototypes").astype(np.float32)
    pri = _as_array(prior, "prior")
    if protos.ndim != 2 or pri.shape != (len(protos),):
        raise ValueError(
            f"prototypes must be (K, D) and prior (K,); got {protos.shape} and {pri.shape}"
        )
    if not isinstance(fingerprint, dict):
        raise ValueError(f"parameter fingerprint must be a dict; got {type(fingerprint).__name__}")
    missing = [key for key in REQUIRED_FINGERPRINT_KEYS if key not in fingerprint]
    if missing:
        raise ValueError(
            f"parameter fingerprint lacks {missing}; required: {list(REQUIRED_FINGERPRINT_KEYS)}"
        )
    if int(fingerprint["grid"]) ** 2 != len(protos):
        raise ValueError(
            f"fingerprint grid={fingerprint['grid']} implies {int(fingerprint['grid']) ** 2} bins but "
            f"there are {len(protos)} prototypes"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda fh: np.savez(fh, prototypes=protos, prior=pri), ".npz")
    sidecar = {
        "file": path.name,
        "sha256": file_sha256(path),
        "shape": list(protos.shape),
        "fingerprint": fingerprint,
    }
    text = json.dumps(sidecar, indent=2, sort_keys=True, default=str) + "\n"
    _atomic_write(_sidecar(path), lambda fh: fh.write(text.encode()), ".json")
    return path


def load_prototype_bank(path: str | os.PathLike) -> PrototypeBank:
    """Load a bank written by :func:`save_prototype_bank`, verifying its SHA-256 against the
    sidecar ``<path>.json``; a mismatch (a changed or corrupted file) raises ``ValueError`` naming
    the file and both digests.
    """
    path = Path(path)
    sidecar_path = _sidecar(path)
    if not path.is_file():
        raise FileNotFoundError(f"prototype bank {str(path)!r} does not exist")
    if not sidecar_path.is_file():
        raise FileNotFoundError(
            f"prototype bank {str(path)!r} has no checksum sidecar {str(sidecar_path)!r}; "
            "write banks with save_prototype_bank"
        )
    try:
        meta = json.loads(sidecar_path.read_text())
        expected = meta["sha256"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"sidecar {str(sidecar_path)!r} is not a valid bank sidecar: {exc}") from None
    actual = file_sha256(path)
    if actual != expected:
        raise ValueError(
            f"prototype bank {str(path)!r} fails its SHA-256 check: file has {actual}, sidecar "
            f"{str(sidecar_path)!r} expects {expected}; the file was changed or corrupted"
        )
    with np.load(path, allow_pickle=False) as data:
        if "prototypes" not in data or "prior" not in data:
            raise ValueError(
                f"prototype bank {str(path)!r} lacks 'prototypes' or 'prior'; has {list(data)}"
            )
        prototypes, prior = data["prototypes"], data["prior"]
    return PrototypeBank(prototypes, prior, dict(meta.get("fingerprint", {})), actual)
