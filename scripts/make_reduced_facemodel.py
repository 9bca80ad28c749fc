"""Build the reduced ICT-FaceKit copy that ships inside the package (MIT licence).

Usage::

    python scripts/make_reduced_facemodel.py --source <data_root>/ict_facekit [--n-identity 30]

Reads ``ict_face_model_light.npz`` and ``vertex_indices.json`` from the source folder (a user's
ICT-FaceKit "light" model packed as in ``data_manifests/ict_facekit.toml``) and writes
``lib/affectlab/data/assets/ict_face_area_reduced.npz`` with ``np.savez_compressed``:

- the face area only (vertices 0..9408 and ICT polygons 0..9229, split into triangles);
- ``neutral`` float32 (9409, 3); the first ``--n-identity`` PCA identity modes and the 53 ARKit-style
  expression blendshapes (order of ``vertex_indices.json["expressions"]``) as float16 deltas;
- the 68 landmark vertex ids, the 9 rigid-landmark indices and the source file's SHA-256;
- ``triangles_low``: a decimated triangle list over the same vertex ids (about a third of the
  triangles) that the renderer uses for small images (see :func:`decimate`). It indexes ICT's
  topology, so it serves a full ICT copy too.
Units stay ICT's centimetres; :class:`affectlab.facemodel.FaceModel` converts to mm on load.
The file must stay <= 5 MB; the script refuses to write a larger one. It also copies ICT's LICENSE.
"""

from __future__ import annotations

import argparse
import heapq
import io
import shutil
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

import torch

from affectlab.facemodel import (
    CM_TO_MM,
    PACKAGED_FILE,
    FaceModelError,
    albedo_masks,
    boundary_loops,
    compute_regions,
    read_ict_source,
    vertex_normals,
)

MAX_BYTES = 5 * 1024 * 1024
# Poses whose geometry the decimation must keep (quadric error summed over them).
DECIMATION_POSES: tuple[dict[str, float], ...] = (
    {},
    {"jawOpen": 1.0},
    {"mouthSmile_L": 1.0, "mouthSmile_R": 1.0, "cheekSquint_L": 1.0, "cheekSquint_R": 1.0},
    {"browInnerUp_L": 1.0, "browInnerUp_R": 1.0, "eyeWide_L": 1.0, "eyeWide_R": 1.0},
    {"browDown_L": 1.0, "browDown_R": 1.0, "noseSneer_L": 1.0, "noseSneer_R": 1.0,
     "eyeSquint_L": 1.0, "eyeSquint_R": 1.0},
    {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0, "mouthFrown_L": 1.0, "mouthFrown_R": 1.0, "mouthPucker": 1.0},
)


def _plane_quadrics(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Per-vertex sum of area-weighted plane quadrics (V, 4, 4) (Garland & Heckbert 1997)."""
    a, b, c = (points[triangles[:, i]] for i in range(3))
    n = np.cross(b - a, c - a)
    area = np.linalg.norm(n, axis=1, keepdims=True)
    n = n / np.maximum(area, 1e-12)
    plane = np.concatenate([n, -(n * a).sum(1, keepdims=True)], axis=1)
    k = area[:, :, None] * plane[:, :, None] * plane[:, None, :]
    q = np.zeros((len(points), 4, 4))
    for i in range(3):
        np.add.at(q, triangles[:, i], k)
    return q


def decimate(poses: np.ndarray, triangles: np.ndarray, target: int, protected: np.ndarray) -> np.ndarray:
    """Half-edge-collapse decimation to about ``target`` triangles; returns the kept triangles.

    A collapse u -> v removes vertex u and hands its triangles to v (the kept vertices are a subset
    of the originals, so the result indexes the same vertex ids and deforms with the model). Cost:
    the quadric error of v's position under u's planes, summed over ``poses`` (P, V, 3) (neutral and
    expressions, so folds that appear in expressions survive). Boundary loops and ``protected``
    vertices are never removed; a collapse is refused when it breaks the link condition (would make
    the mesh non-manifold) or turns any remaining triangle by more than ~70 degrees in any pose.
    """
    tris = [list(map(int, t)) for t in triangles]
    alive = [True] * len(tris)
    vert_tris: dict[int, set[int]] = defaultdict(set)
    for i, t in enumerate(tris):
        for v in t:
            vert_tris[v].add(i)
    quadric = sum(_plane_quadrics(p, triangles) for p in poses)
    homo = np.concatenate([poses, np.ones(poses.shape[:2] + (1,))], axis=2)  # (P, V, 4)
    fixed = set(map(int, protected))
    version: dict[int, int] = defaultdict(int)

    def neighbours(v: int) -> set[int]:
        return {w for i in vert_tris[v] for w in tris[i]} - {v}

    def cost(u: int, v: int) -> float:
        h = homo[:, v]
        return float(np.einsum("pi,ij,pj->", h, quadric[u], h))

    heap: list[tuple[float, int, int, int]] = []

    def push(u: int) -> None:
        version[u] += 1
        if u in fixed:
            return
        for v in neighbours(u):
            heapq.heappush(heap, (cost(u, v), u, v, version[u]))

    def collapse_ok(u: int, v: int) -> bool:
        common = neighbours(u) & neighbours(v)
        shared = [i for i in vert_tris[u] if v in tris[i]]
        if len(common) != len(shared):
            return False
        for i in vert_tris[u]:
            if v in tris[i]:
                continue
            t = tris[i]
            new = [v if w == u else w for w in t]
            a0, b0, c0 = poses[:, t[0]], poses[:, t[1]], poses[:, t[2]]
            a1, b1, c1 = poses[:, new[0]], poses[:, new[1]], poses[:, new[2]]
            n0 = np.cross(b0 - a0, c0 - a0)
            n1 = np.cross(b1 - a1, c1 - a1)
            cos = (n0 * n1).sum(1) / np.maximum(np.linalg.norm(n0, axis=1) * np.linalg.norm(n1, axis=1), 1e-12)
            if (cos < 0.35).any():
                return False
        return True

    for u in range(poses.shape[1]):
        push(u)
    n_alive = len(tris)
    while n_alive > target and heap:
        _, u, v, ver = heapq.heappop(heap)
        if ver != version[u] or not vert_tris[u] or not vert_tris[v] or v not in neighbours(u):
            continue
        if not collapse_ok(u, v):
            continue
        for i in list(vert_tris[u]):
            if v in tris[i]:
                alive[i] = False
                n_alive -= 1
                for w in tris[i]:
                    vert_tris[w].discard(i)
            else:
                tris[i] = [v if w == u else w for w in tris[i]]
                vert_tris[v].add(i)
        vert_tris[u].clear()
        quadric[v] += quadric[u]
        for w in neighbours(v) | {v}:
            push(w)
    return np.asarray([t for t, ok in zip(tris, alive) if ok], dtype=np.int64)


def low_detail_triangles(arrays: dict, target: int) -> np.ndarray:
    """The decimated triangles of the face area (see :func:`decimate`), in the source's units."""
    names = list(arrays["expression_names"])
    poses = []
    for pose in DECIMATION_POSES:
        p = arrays["neutral"].astype(np.float64).copy()
        for name, weight in pose.items():
            p += weight * arrays["expression_deltas"][names.index(name)]
        poses.append(p)
    loops = boundary_loops(arrays["triangles"])
    protected = np.concatenate(loops + [arrays["landmark_vertex_ids"], albedo_feature_vertices(arrays)])
    return decimate(np.stack(poses), arrays["triangles"], target, protected)


def albedo_feature_vertices(arrays: dict) -> np.ndarray:
    """Vertices carrying the renderer's albedo features (brows, lash line, nostrils, lip border).

    Albedo lives on vertices, so removing these would blur the brows and lash lines into dots.
    """
    template = arrays["neutral"].astype(np.float64) * CM_TO_MM
    triangles, landmarks = arrays["triangles"], arrays["landmark_vertex_ids"]
    normals = vertex_normals(torch.as_tensor(template)[None], torch.as_tensor(triangles))[0].numpy()
    regions = compute_regions(template, landmarks, normals)
    masks = albedo_masks(template, landmarks, regions)
    lips = np.zeros(len(template), dtype=bool)
    lips[regions["lips"]] = True
    border = np.zeros(len(template), dtype=bool)
    for i, j in ((0, 1), (1, 2), (2, 0)):
        cut = lips[triangles[:, i]] != lips[triangles[:, j]]
        border[triangles[cut, i]] = border[triangles[cut, j]] = True
    keep = (masks["brows"] > 0.15) | (masks["lash_line"] > 0.3) | (masks["nostrils"] > 0.3) | border
    return np.flatnonzero(keep)


def build(source: Path, out: Path, n_identity: int, low_triangles: int = 6000) -> int:
    """Write the reduced model to ``out``; returns its size in bytes."""
    arrays = read_ict_source(source, n_identity=n_identity)
    low = low_detail_triangles(arrays, low_triangles)
    if arrays["identity_deltas"].shape[0] < n_identity:
        raise FaceModelError(f"{source}: only {arrays['identity_deltas'].shape[0]} identity modes, asked {n_identity}")
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        neutral=arrays["neutral"].astype(np.float32),
        triangles=arrays["triangles"].astype(np.int32),
        triangles_low=low.astype(np.int32),
        identity_deltas=arrays["identity_deltas"].astype(np.float16),
        expression_deltas=arrays["expression_deltas"].astype(np.float16),
        expression_names=arrays["expression_names"].astype(str),
        landmark_vertex_ids=arrays["landmark_vertex_ids"].astype(np.int32),
        rigid_landmarks=arrays["rigid_landmarks"].astype(np.int32),
        source_sha256=np.array(arrays["source_sha256"]),
        units=np.array("cm"),
    )
    data = buffer.getvalue()
    if len(data) > MAX_BYTES:
        raise SystemExit(f"reduced model would be {len(data)} bytes > {MAX_BYTES}; use fewer identity modes")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    licence = source / "LICENSE"
    if licence.is_file():
        shutil.copyfile(licence, out.parent / "LICENSE")
    return len(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="folder with ict_face_model_light.npz")
    parser.add_argument("--out", type=Path, default=PACKAGED_FILE)
    parser.add_argument("--n-identity", type=int, default=30)
    parser.add_argument("--low-triangles", type=int, default=6000, help="triangles of the low-detail mesh")
    args = parser.parse_args(argv)
    size = build(args.source, args.out, args.n_identity, args.low_triangles)
    print(f"wrote {args.out} ({size / 1e6:.2f} MB, {args.n_identity} identity modes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
