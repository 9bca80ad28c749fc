"""A FLAME-like linear face model over the ICT-FaceKit "light" model (MIT licence).

The EEG2Face thesis (Kabidenova 2025, Sec. 3.2, "FLAME") decodes EEG into FLAME expression
coefficients psi and a 3-parameter jaw pose. FLAME cannot be shipped, so the book uses the ICT Face
Model Light (Li et al. 2020, "Learning Formation of Physically-Based Face Attributes") with the same
call shape::

    vertices = template + sum_k beta_k * identity_k + sum_e psi_e' * expression_e       (mm)

- ``template``: ICT's generic neutral mesh, face area only (vertices 0..9408, polygons 0..9229 of
  ICT's topology table: the skin of the face, ears and upper neck; no eyeballs, teeth or mouth socket).
- ``identity_k``: ICT's PCA identity shape modes (100 in ICT, 30 in the packaged copy). ICT samples
  identities with ``beta ~ N(0, 1)`` (``FaceModel.randomize_identity`` in ICT's scripts), so
  ``beta`` has unit scale.
- ``expression_e``: the 53 ARKit-style blendshapes of ICT (``vertex_indices.json["expressions"]``;
  ICT's extra shapes PupilDilate_L/R and cheekRaiser_L/R are left out), coefficients in [0, 1].
- ``jaw`` (FLAME has a jaw *rotation*; ICT has jaw *blendshapes*): a 3-vector (open, lateral,
  forward) added onto the coefficients of ICT's jaw blendshapes: ``open -> jawOpen``,
  ``lateral > 0 -> jawLeft`` (jaw moves towards the subject's left, +x), ``lateral < 0 -> jawRight``
  (by ``-lateral``), ``forward -> jawForward``. So ``psi' = psi + J(jaw)``; a jaw motion can be
  given either way, and :meth:`FaceModel.effective_expression` returns ``psi'``.

Coordinates: millimetres (ICT stores centimetres: its outer eye corners are 8.9 units apart and the
jaw-line landmarks 0 and 16 are 14.7 units apart, i.e. 89 mm and 147 mm in an adult face; the
loader multiplies by 10). Axes: +x towards the subject's left (``_L`` shapes move +x vertices),
+y up, +z out of the face towards a frontal viewer.

Landmarks: the 68 points of the iBUG / Multi-PIE markup are ICT's own list (``vertex_indices.json``
``idx_to_landmark_verts``, also printed in ICT-FaceKit's README "Multi-PIE 68 point facial landmarks
indices", the list ICT's landmark fitting uses). They are fixed vertices, as FLAME's static
landmark embedding; the jaw-line points 0-16 of a 2-D annotation slide along the silhouette when the
head turns, fixed vertices do not (ICT's README gives alternative jaw-line vertex lists for that).
The test suite checks the iBUG ordering geometrically (left/right, eye and lip contours).

Regions (:attr:`FaceModel.regions`): ICT names no regions besides landmarks and fitting sets, so they
are computed geometrically from the template and its landmarks; see :func:`compute_regions`.

Sources: ``FaceModel.load(root)`` reads ``<root>/ict_facekit/ict_face_model_light.npz`` (a user's
ICT-FaceKit copy, packed as described in ``data_manifests/ict_facekit.toml``) when present, else the
reduced copy packaged in ``affectlab/data/assets/`` (built by ``scripts/make_reduced_facemodel.py``:
face area only, 30 identity modes, float16 deltas).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

FACE_AREA_VERTICES = 9409  # ICT topology: face area = vertices 0..9408
FACE_AREA_POLYGONS = 9230  # ICT topology: face area = polygons 0..9229
CM_TO_MM = 10.0
SOURCE_FILE = "ict_face_model_light.npz"
INDEX_FILE = "vertex_indices.json"
FOLDER = "ict_facekit"
ASSET_DIR = Path(__file__).resolve().parent / "data" / "assets"
PACKAGED_FILE = ASSET_DIR / "ict_face_area_reduced.npz"
JAW_PARAMETERS: tuple[str, ...] = ("open", "lateral", "forward")
N_LANDMARKS = 68
FOREHEAD_RATIO = 0.5

# iBUG 68 landmark groups (0-based), used by regions, framing and tests.
LANDMARK_GROUPS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "brow_right": tuple(range(17, 22)),  # subject's right = image left in a frontal view
    "brow_left": tuple(range(22, 27)),
    "nose_bridge": tuple(range(27, 31)),
    "nostrils": tuple(range(31, 36)),
    "eye_right": tuple(range(36, 42)),
    "eye_left": tuple(range(42, 48)),
    "lips_outer": tuple(range(48, 60)),
    "lips_inner": tuple(range(60, 68)),
}


class FaceModelError(ValueError):
    """A face-model file or parameter is wrong; the message names which."""


# --------------------------------------------------------------------------------------------
# Reading the ICT source and the packaged copy
# --------------------------------------------------------------------------------------------


def quads_to_triangles(quads: np.ndarray) -> np.ndarray:
    """Split ICT polygons (F, 4) into triangles; a polygon whose last index repeats is a triangle.

    ``(a, b, c, d) -> (a, b, c), (a, c, d)`` keeps ICT's counter-clockwise (outward) winding.
    """
    quads = np.asarray(quads)
    if quads.ndim != 2 or quads.shape[1] != 4:
        raise FaceModelError(f"faces_quads must have shape (F, 4); got {quads.shape}")
    first = quads[:, :3]
    is_quad = quads[:, 3] != quads[:, 2]
    second = quads[is_quad][:, [0, 2, 3]]
    return np.concatenate([first, second], axis=0).astype(np.int64)


def _require(npz: Any, path: Path, key: str, shape_tail: tuple[int, ...] | None = None) -> np.ndarray:
    if key not in npz.files:
        raise FaceModelError(f"{path}: missing array {key!r} (has {sorted(npz.files)})")
    value = npz[key]
    if shape_tail is not None and tuple(value.shape[-len(shape_tail):]) != shape_tail:
        raise FaceModelError(f"{path}: array {key!r} has shape {value.shape}, expected (..., {shape_tail})")
    return value


def read_ict_source(folder: Path, n_identity: int | None = None) -> dict[str, Any]:
    """Read a user's ICT-FaceKit copy (``ict_face_model_light.npz`` + ``vertex_indices.json``).

    Returns the face-area arrays in ICT's units (cm): ``neutral`` (V, 3), ``triangles`` (F, 3),
    ``identity_deltas`` (K, V, 3), ``expression_deltas`` (53, V, 3), ``expression_names`` (53,),
    ``landmark_vertex_ids`` (68,), ``rigid_landmarks`` (9,) and ``source_sha256``.
    """
    folder = Path(folder)
    path, index_path = folder / SOURCE_FILE, folder / INDEX_FILE
    for p in (path, index_path):
        if not p.is_file():
            raise FaceModelError(f"ICT-FaceKit file not found: {p} (expected {SOURCE_FILE} and {INDEX_FILE})")
    try:
        indices = json.loads(index_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FaceModelError(f"{index_path}: not valid JSON ({exc})") from None
    for key in ("expressions", "idx_to_landmark_verts", "idx_to_rigid_landmark_idx"):
        if key not in indices:
            raise FaceModelError(f"{index_path}: missing key {key!r}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FaceModelError(f"{path}: cannot read as .npz ({exc})") from None
    with npz:
        neutral = _require(npz, path, "neutral", (3,))
        quads = _require(npz, path, "faces_quads", (4,))
        identity = _require(npz, path, "identity_deltas", (3,))
        expression = _require(npz, path, "expression_deltas", (3,))
        all_names = [str(n) for n in _require(npz, path, "expression_names")]
        if neutral.shape[0] < FACE_AREA_VERTICES or quads.shape[0] < FACE_AREA_POLYGONS:
            raise FaceModelError(
                f"{path}: neutral has {neutral.shape[0]} vertices and faces_quads {quads.shape[0]} polygons;"
                f" expected at least {FACE_AREA_VERTICES} and {FACE_AREA_POLYGONS} (ICT topology)"
            )
        names = [str(n) for n in indices["expressions"]]
        missing = [n for n in names if n not in all_names]
        if missing:
            raise FaceModelError(f"{path}: expression_names lacks {missing} listed in {index_path}")
        order = [all_names.index(n) for n in names]
        k = identity.shape[0] if n_identity is None else min(int(n_identity), identity.shape[0])
        v = FACE_AREA_VERTICES
        face_quads = quads[:FACE_AREA_POLYGONS]
        if face_quads.max() >= v:
            raise FaceModelError(f"{path}: face-area polygons index vertices beyond {v - 1}")
        out = {
            "neutral": neutral[:v].astype(np.float32),
            "triangles": quads_to_triangles(face_quads),
            "identity_deltas": identity[:k, :v].astype(np.float32),
            "expression_deltas": expression[order, :v].astype(np.float32),
            "expression_names": np.array(names),
            "landmark_vertex_ids": np.asarray(indices["idx_to_landmark_verts"], dtype=np.int64),
            "rigid_landmarks": np.asarray(indices["idx_to_rigid_landmark_idx"], dtype=np.int64),
            "source_sha256": digest,
        }
    return out


def read_packaged(path: Path = PACKAGED_FILE) -> dict[str, Any]:
    """Read the reduced copy written by ``scripts/make_reduced_facemodel.py`` (units: cm)."""
    path = Path(path)
    if not path.is_file():
        raise FaceModelError(
            f"packaged face model not found: {path} (rebuild it with scripts/make_reduced_facemodel.py)"
        )
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FaceModelError(f"{path}: cannot read as .npz ({exc})") from None
    with npz:
        out = {
            "neutral": _require(npz, path, "neutral", (3,)).astype(np.float32),
            "triangles": _require(npz, path, "triangles", (3,)).astype(np.int64),
            "triangles_low": _require(npz, path, "triangles_low", (3,)).astype(np.int64),
            "identity_deltas": _require(npz, path, "identity_deltas", (3,)).astype(np.float32),
            "expression_deltas": _require(npz, path, "expression_deltas", (3,)).astype(np.float32),
            "expression_names": _require(npz, path, "expression_names").astype(str),
            "landmark_vertex_ids": _require(npz, path, "landmark_vertex_ids").astype(np.int64),
            "rigid_landmarks": _require(npz, path, "rigid_landmarks").astype(np.int64),
            "source_sha256": str(_require(npz, path, "source_sha256")),
        }
    return out


def _check_arrays(arrays: Mapping[str, Any], origin: str) -> None:
    v = arrays["neutral"].shape[0]
    checks = [
        (arrays["identity_deltas"].shape[1:] == (v, 3), "identity_deltas must be (K, V, 3)"),
        (arrays["expression_deltas"].shape == (53, v, 3), "expression_deltas must be (53, V, 3)"),
        (len(arrays["expression_names"]) == 53, "expression_names must list 53 names"),
        (arrays["landmark_vertex_ids"].shape == (N_LANDMARKS,), "landmark_vertex_ids must be (68,)"),
        (int(arrays["triangles"].min()) >= 0 and int(arrays["triangles"].max()) < v, "triangles index outside V"),
        (
            int(arrays["triangles_low"].min()) >= 0 and int(arrays["triangles_low"].max()) < v,
            "triangles_low index outside V",
        ),
        (int(arrays["landmark_vertex_ids"].max()) < v, "landmark_vertex_ids index outside V"),
    ]
    for ok, what in checks:
        if not ok:
            raise FaceModelError(f"{origin}: {what} (V = {v})")
    for key in ("neutral", "identity_deltas", "expression_deltas"):
        if not np.isfinite(arrays[key]).all():
            raise FaceModelError(f"{origin}: {key} contains NaN or inf")


# --------------------------------------------------------------------------------------------
# Geometry derived from the template: regions, hole caps, albedo masks
# --------------------------------------------------------------------------------------------


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals of (B, V, 3) vertices for (F, 3) triangles."""
    tri = vertices[:, faces]  # (B, F, 3, 3)
    face_n = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    normals = torch.zeros_like(vertices)
    for corner in range(3):
        normals.index_add_(1, faces[:, corner], face_n)
    return torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule: which 2-D ``points`` (N, 2) lie inside ``polygon`` (M, 2)."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return ((crosses & (x < x_at)).sum(axis=1) % 2) == 1


def _scaled(polygon: np.ndarray, factor: float) -> np.ndarray:
    centre = polygon.mean(axis=0)
    return centre + factor * (polygon - centre)


def _distance_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Euclidean distance of points (N, D) to a polyline (M, D)."""
    best = np.full(len(points), np.inf)
    for a, b in zip(line[:-1], line[1:]):
        ab = b - a
        t = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * ab), axis=1))
    return best


def compute_regions(template: np.ndarray, landmark_ids: np.ndarray, normals: np.ndarray) -> dict[str, np.ndarray]:
    """Named vertex regions of the template (mm), from its 68 landmarks ``L`` and vertex normals.

    "Frontal" means a vertex normal with z > 0.3 (faces the viewer), which keeps the back of the
    ears and the neck out. In the x-y plane of the frontal view:

    - ``lips``: inside the outer-lip contour L48-59 enlarged by 10 % about its centre, within
      12 mm behind the lip landmarks (so the inner lip roll counts).
    - ``mouth_corners``: within 6 mm (3-D) of the commissures L48 and L54.
    - ``eyes``: inside each eye contour L36-41 / L42-47 enlarged 1.6x about its centre (eyelids).
    - ``brows``: within 5 mm of the brow polylines L17-21 / L22-26, frontal.
    - ``forehead``: frontal, above the highest brow landmark + 8 mm, |x| inside the outer brow ends.
    - ``cheeks``: frontal, between the mouth-corner height and 4 mm below the lower eyelids, lateral
      to the nostril wings (|x| > |L31 x| + 6 mm), inside 85 % of the jaw-line half width at
      L2/L14, and not lips or mouth corners.
    - ``nose``: frontal, |x| < |L31 x| + 3 mm, between L33 y - 2 mm and L27 y, and not cheeks.
    - ``chin``: frontal, below the lower lip (L57 y - 4 mm), above the chin point L8 y - 6 mm,
      |x| < |L48 x| + 6 mm.
    """
    lm = template[landmark_ids]
    xy = template[:, :2]
    frontal = normals[:, 2] > 0.3
    g = LANDMARK_GROUPS

    def poly(name: str) -> np.ndarray:
        return lm[list(g[name]), :2]

    lip_z_min = lm[list(g["lips_outer"]), 2].min()
    lips = _inside_polygon(xy, _scaled(poly("lips_outer"), 1.1)) & (template[:, 2] > lip_z_min - 12.0)
    corners = (np.linalg.norm(template - lm[48], axis=1) < 6.0) | (np.linalg.norm(template - lm[54], axis=1) < 6.0)
    eye_z_min = lm[list(g["eye_right"] + g["eye_left"]), 2].min()
    eyes = (
        _inside_polygon(xy, _scaled(poly("eye_right"), 1.6)) | _inside_polygon(xy, _scaled(poly("eye_left"), 1.6))
    ) & (template[:, 2] > eye_z_min - 8.0)
    brow_d = np.minimum(_distance_to_polyline(xy, poly("brow_right")), _distance_to_polyline(xy, poly("brow_left")))
    brows = frontal & (brow_d < 5.0)
    brow_top = lm[list(g["brow_right"] + g["brow_left"]), 1].max()
    forehead = frontal & (xy[:, 1] > brow_top + 8.0) & (np.abs(xy[:, 0]) < abs(lm[17, 0]))
    lower_lid = min(lm[[40, 41, 46, 47], 1].min(), lm[[40, 41, 46, 47], 1].mean())
    nostril_x = abs(lm[31, 0])
    jaw_half = 0.5 * abs(lm[14, 0] - lm[2, 0])
    ax = np.abs(xy[:, 0])
    cheeks = (
        frontal
        & (xy[:, 1] < lower_lid - 4.0)
        & (xy[:, 1] > lm[[48, 54], 1].mean())
        & (ax > nostril_x + 6.0)
        & (ax < 0.85 * jaw_half)
        & ~lips
        & ~corners
    )
    nose = frontal & (ax < nostril_x + 3.0) & (xy[:, 1] > lm[33, 1] - 2.0) & (xy[:, 1] < lm[27, 1]) & ~cheeks & ~eyes
    chin = frontal & (xy[:, 1] < lm[57, 1] - 4.0) & (xy[:, 1] > lm[8, 1] - 6.0) & (ax < abs(lm[48, 0]) + 6.0)
    masks = {
        "lips": lips,
        "mouth_corners": corners,
        "eyes": eyes,
        "brows": brows,
        "forehead": forehead,
        "cheeks": cheeks,
        "nose": nose,
        "chin": chin,
    }
    return {name: np.flatnonzero(mask).astype(np.int64) for name, mask in masks.items()}


def boundary_loops(triangles: np.ndarray) -> list[np.ndarray]:
    """Ordered boundary loops of a consistently wound triangle mesh (each loop as vertex ids).

    A boundary edge (a -> b) appears once; following the edges of each loop in their triangle's
    direction gives the loop in order.
    """
    directed: dict[int, int] = {}
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    present = {(int(a), int(b)) for a, b in edges}
    for a, b in present:
        if (b, a) not in present:
            if a in directed:
                raise FaceModelError(f"mesh boundary is not a set of simple loops at vertex {a}")
            directed[a] = b
    loops, seen = [], set()
    for start in sorted(directed):
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen:
            seen.add(v)
            loop.append(v)
            v = directed[v]
        loops.append(np.asarray(loop, dtype=np.int64))
    return loops


def hole_caps(template: np.ndarray, triangles: np.ndarray, landmark_ids: np.ndarray) -> dict[str, np.ndarray]:
    """Triangles that close the eye and mouth openings of the face area (for rendering only).

    The face area has four boundary loops: the outer rim and the openings of the two eyes and the
    mouth (the eyeballs and mouth socket are not part of it). Each opening is closed by a fan of
    triangles from its first loop vertex, wound like the loop's own triangles so the cap faces the
    viewer; caps move with the lids and lips. Loops are named by the landmark centroid they contain.
    """
    lm = template[landmark_ids]
    targets = {
        "eye_right": lm[list(LANDMARK_GROUPS["eye_right"])].mean(0),
        "eye_left": lm[list(LANDMARK_GROUPS["eye_left"])].mean(0),
        "mouth": lm[list(LANDMARK_GROUPS["lips_inner"])].mean(0),
    }
    loops = sorted(boundary_loops(triangles), key=len)[:-1]  # drop the outer rim (longest)
    caps: dict[str, np.ndarray] = {}
    for name, target in targets.items():
        loop = min(loops, key=lambda lp: float(np.linalg.norm(template[lp].mean(0) - target)))
        # The loop runs along the hole opposite to its triangles' winding: reverse it for the cap.
        ring = loop[::-1]
        caps[name] = np.stack([np.full(len(ring) - 2, ring[0]), ring[1:-1], ring[2:]], axis=1)
    return caps


def albedo_masks(
    template: np.ndarray, landmark_ids: np.ndarray, regions: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Soft per-vertex weights in [0, 1] where a greyscale skin albedo darkens (rendering only).

    ``brows``: Gaussian falloff (sd 2.2 mm laterally to 3.2 mm medially) from the brow polylines
    moved 2 mm down (iBUG brow points mark the upper edge of the brow);
    ``lash_line``: within ~1.5 mm of the upper-lid contour (L36-39, L42-45);
    ``lips``: the lips region smoothed over 1.5 mm; ``nostrils``: near L31-35 below the nose tip.
    """
    lm = template[landmark_ids]
    xy = template[:, :2]
    out: dict[str, np.ndarray] = {}
    brow_lines = [lm[list(LANDMARK_GROUPS["brow_right"]), :2], lm[list(LANDMARK_GROUPS["brow_left"]), :2]]
    # iBUG brow points run along the upper edge of the brow: the hair band lies below them.
    brow_d = np.min([_distance_to_polyline(xy + np.array([0.0, 2.0]), line) for line in brow_lines], axis=0)
    medial = np.clip(1.0 - (np.abs(xy[:, 0]) - abs(lm[21, 0])) / max(abs(lm[17, 0]) - abs(lm[21, 0]), 1e-6), 0, 1)
    width = 2.2 + 1.0 * medial
    out["brows"] = np.exp(-0.5 * (brow_d / width) ** 2) * (template[:, 2] > lm[17, 2] - 10.0)
    lids = [lm[[36, 37, 38, 39], :2], lm[[42, 43, 44, 45], :2]]
    lid_d = np.min([_distance_to_polyline(xy, line) for line in lids], axis=0)
    out["lash_line"] = np.exp(-0.5 * (lid_d / 1.0) ** 2) * (template[:, 2] > lm[36, 2] - 6.0)
    lips = np.zeros(len(template))
    lips[regions["lips"]] = 1.0
    out["lips"] = lips
    nos_d = np.min(np.linalg.norm(template[:, None] - lm[None, [31, 32, 34, 35]], axis=-1), axis=1)
    out["nostrils"] = np.exp(-0.5 * (nos_d / 2.0) ** 2) * (template[:, 1] < lm[30, 1] - 6.0)
    return {k: np.clip(v, 0.0, 1.0).astype(np.float32) for k, v in out.items()}


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class FaceModel(torch.nn.Module):
    """Linear face model: ``vertices(beta, psi, jaw) -> (B, V, 3)`` in mm (see the module docstring).

    Attributes:
        template: (V, 3) neutral mesh; identity_basis: (K, V, 3); expression_basis: (53, V, 3).
        faces: (F, 3) int64 triangles of the face surface (outward, counter-clockwise).
        faces_low: (F_low, 3) a decimated surface over the same vertex ids (about F / 3 triangles,
            built by ``scripts/make_reduced_facemodel.py``), for rendering small images fast.
        cap_faces: (C, 3) triangles closing the eye and mouth openings (rendering only);
            ``cap_kind`` (C,) says which: 0 eye, 1 mouth.
        expression_names: the 53 blendshape names, the order of ``psi``.
        landmark_vertex_ids: (68,) iBUG landmark vertices; rigid_landmarks: (9,) indices into the
            68 that do not move with expressions (ICT's ``idx_to_rigid_landmark_idx``).
        regions: name -> vertex ids (see :func:`compute_regions`).
        source: "ict_facekit: <path>" or "packaged: <path>" (reduced copy).
    """

    def __init__(self, arrays: Mapping[str, Any], source: str) -> None:
        super().__init__()
        _check_arrays(arrays, source)
        self.source = source
        self.source_sha256 = str(arrays["source_sha256"])
        self.expression_names: tuple[str, ...] = tuple(str(n) for n in arrays["expression_names"])
        template = np.asarray(arrays["neutral"], dtype=np.float64) * CM_TO_MM
        triangles = np.asarray(arrays["triangles"], dtype=np.int64)
        landmarks = np.asarray(arrays["landmark_vertex_ids"], dtype=np.int64)
        self.register_buffer("template", torch.as_tensor(template, dtype=torch.float32))
        ident = torch.as_tensor(np.asarray(arrays["identity_deltas"], dtype=np.float32)) * CM_TO_MM
        expr = torch.as_tensor(np.asarray(arrays["expression_deltas"], dtype=np.float32)) * CM_TO_MM
        self.register_buffer("identity_basis", ident)
        self.register_buffer("expression_basis", expr)
        self.register_buffer("faces", torch.as_tensor(triangles))
        self.register_buffer("faces_low", torch.as_tensor(np.asarray(arrays["triangles_low"], dtype=np.int64)))
        self.register_buffer("landmark_vertex_ids", torch.as_tensor(landmarks))
        self.register_buffer("rigid_landmarks", torch.as_tensor(np.asarray(arrays["rigid_landmarks"], dtype=np.int64)))
        normals = vertex_normals(self.template[None].double(), self.faces)[0].numpy()
        self.regions: dict[str, torch.Tensor] = {
            k: torch.as_tensor(v) for k, v in compute_regions(template, landmarks, normals).items()
        }
        caps = hole_caps(template, triangles, landmarks)
        cap_faces = np.concatenate([caps["eye_right"], caps["eye_left"], caps["mouth"]])
        kind = np.concatenate([np.zeros(len(caps["eye_right"]) + len(caps["eye_left"])), np.ones(len(caps["mouth"]))])
        self.register_buffer("cap_faces", torch.as_tensor(cap_faces))
        self.register_buffer("cap_kind", torch.as_tensor(kind.astype(np.int64)))
        masks = albedo_masks(template, landmarks, {k: v.numpy() for k, v in self.regions.items()})
        self._albedo_masks = {k: torch.as_tensor(v) for k, v in masks.items()}
        jaw = torch.zeros(3, 2, 53)  # (parameter, sign (+, -), blendshape)
        idx = {n: i for i, n in enumerate(self.expression_names)}
        jaw[0, 0, idx["jawOpen"]] = 1.0
        jaw[1, 0, idx["jawLeft"]] = 1.0
        jaw[1, 1, idx["jawRight"]] = 1.0
        jaw[2, 0, idx["jawForward"]] = 1.0
        self.register_buffer("_jaw_map", jaw)
        lm = template[landmarks]
        target = np.array([0.0, lm[27, 1] + FOREHEAD_RATIO * (lm[27, 1] - lm[8, 1])])
        front = np.flatnonzero(normals[:, 2] > 0.5)
        self.forehead_vertex = int(front[np.argmin(np.linalg.norm(template[front, :2] - target, axis=1))])

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def load(cls, root: str | os.PathLike | None = None, n_identity: int | None = None) -> "FaceModel":
        """The model from ``<root>/ict_facekit`` when present, else the packaged reduced copy.

        ``root`` is a data root (``None``: ``$AFFECTLAB_DATA`` if set, as everywhere in the book).
        ``n_identity`` keeps only the first K identity modes.
        """
        from affectlab.config import resolve_data_root

        data_root = resolve_data_root(root)
        folder = None if data_root is None else data_root / FOLDER
        if folder is not None and (folder / SOURCE_FILE).is_file():
            arrays = read_ict_source(folder, n_identity)
            # The low-detail triangles index ICT's topology, shared by every copy of the model.
            arrays["triangles_low"] = read_packaged(PACKAGED_FILE)["triangles_low"]
            return cls(arrays, source=f"ict_facekit: {folder / SOURCE_FILE}")
        return cls.packaged(n_identity)

    @classmethod
    def packaged(cls, n_identity: int | None = None) -> "FaceModel":
        """The reduced copy shipped with the package (same for every user: generators use it)."""
        arrays = read_packaged(PACKAGED_FILE)
        if n_identity is not None:
            arrays["identity_deltas"] = arrays["identity_deltas"][: int(n_identity)]
        return cls(arrays, source=f"packaged: {PACKAGED_FILE.name} (reduced ICT-FaceKit, MIT)")

    # ---- sizes -----------------------------------------------------------------------------
    @property
    def n_identity(self) -> int:
        return int(self.identity_basis.shape[0])

    @property
    def n_expression(self) -> int:
        return int(self.expression_basis.shape[0])

    @property
    def n_vertices(self) -> int:
        return int(self.template.shape[0])

    # ---- parameters ------------------------------------------------------------------------
    def expression_index(self, name: str) -> int:
        """Position of blendshape ``name`` in ``psi``."""
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise FaceModelError(f"unknown blendshape {name!r}; known: {', '.join(self.expression_names)}") from None

    def expression_vector(self, coefficients: Mapping[str, float] | None = None, **named: float) -> torch.Tensor:
        """A (53,) psi from blendshape names, e.g. ``expression_vector(mouthSmile_L=0.8)``."""
        psi = torch.zeros(self.n_expression)
        for name, value in {**(coefficients or {}), **named}.items():
            psi[self.expression_index(name)] = float(value)
        return psi

    def _batch(self, value: Any, width: int | None, name: str, batch: int | None) -> torch.Tensor | None:
        if value is None:
            return None
        t = torch.as_tensor(value, dtype=torch.float32, device=self.template.device)
        if t.ndim == 1:
            t = t[None]
        if t.ndim != 2:
            raise FaceModelError(f"parameter {name} must be (B, n) or (n,); got shape {tuple(t.shape)}")
        if width is not None and t.shape[1] != width:
            raise FaceModelError(f"parameter {name} must have {width} columns; got {t.shape[1]}")
        if batch is not None and t.shape[0] not in (1, batch):
            raise FaceModelError(f"parameter {name} has batch {t.shape[0]}, other parameters {batch}")
        if not torch.isfinite(t).all():
            raise FaceModelError(f"parameter {name} contains NaN or inf")
        return t

    def jaw_to_expression(self, jaw: torch.Tensor) -> torch.Tensor:
        """(B, 3) jaw (open, lateral, forward) -> (B, 53) additions to the jaw blendshapes."""
        pos, neg = jaw.clamp(min=0), (-jaw).clamp(min=0)
        return pos @ self._jaw_map[:, 0] + neg @ self._jaw_map[:, 1]

    def effective_expression(self, psi: Any = None, jaw: Any = None) -> torch.Tensor:
        """``psi + J(jaw)``: the blendshape coefficients actually applied (B, 53)."""
        psi_t = self._batch(psi, self.n_expression, "psi", None)
        jaw_t = self._batch(jaw, 3, "jaw", None if psi_t is None else psi_t.shape[0])
        if psi_t is None and jaw_t is None:
            return torch.zeros(1, self.n_expression, device=self.template.device)
        if jaw_t is None:
            return psi_t
        add = self.jaw_to_expression(jaw_t)
        return add if psi_t is None else psi_t + add

    def vertices(self, beta: Any = None, psi: Any = None, jaw: Any = None) -> torch.Tensor:
        """Mesh vertices (B, V, 3) in mm.

        Args:
            beta: (B, k) or (k,) identity coefficients, k <= ``n_identity`` (missing modes are 0).
            psi: (B, 53) or (53,) blendshape coefficients in the order of ``expression_names``.
            jaw: (B, 3) or (3,) (open, lateral, forward), added onto the jaw blendshapes.
        A batch of 1 broadcasts against the others; all ``None`` gives the template (1, V, 3).
        """
        beta_t = self._batch(beta, None, "beta", None)
        if beta_t is not None and beta_t.shape[1] > self.n_identity:
            raise FaceModelError(
                f"parameter beta has {beta_t.shape[1]} columns; this model has {self.n_identity} identity modes"
            )
        expr = self.effective_expression(psi, jaw)
        batch = max(expr.shape[0], 1 if beta_t is None else beta_t.shape[0])
        if beta_t is not None and (expr.shape[0] not in (1, batch) or beta_t.shape[0] not in (1, batch)):
            raise FaceModelError(f"parameter beta has batch {beta_t.shape[0]}, psi/jaw {expr.shape[0]}")
        v3 = self.n_vertices * 3
        out = self.template.reshape(1, v3).expand(batch, v3)
        out = out + (expr @ self.expression_basis.reshape(self.n_expression, v3)).expand(batch, v3)
        if beta_t is not None:
            k = beta_t.shape[1]
            out = out + (beta_t @ self.identity_basis[:k].reshape(k, v3)).expand(batch, v3)
        return out.reshape(batch, self.n_vertices, 3)

    def forward(self, beta: Any = None, psi: Any = None, jaw: Any = None) -> torch.Tensor:
        return self.vertices(beta, psi, jaw)

    def landmarks(self, vertices: torch.Tensor) -> torch.Tensor:
        """The 68 iBUG landmarks (B, 68, 3) of vertices (B, V, 3)."""
        if vertices.ndim != 3 or vertices.shape[1:] != (self.n_vertices, 3):
            raise FaceModelError(f"vertices must be (B, {self.n_vertices}, 3); got {tuple(vertices.shape)}")
        return vertices[:, self.landmark_vertex_ids]

    # ---- rendering helpers -------------------------------------------------------------------
    def frame_points(self, vertices: torch.Tensor) -> torch.Tensor:
        """Points a face crop is fitted to (B, 69, 3): the 68 landmarks plus a forehead point.

        The forehead point (:attr:`forehead_vertex`) is the template's frontal vertex on the
        midline at height ``L27 + FOREHEAD_RATIO * (L27 - L8)`` (nasion plus half the nasion-chin
        distance), so crops span brow-top to chin as face-detector boxes do.
        """
        lm = self.landmarks(vertices)
        return torch.cat([lm, vertices[:, self.forehead_vertex][:, None]], dim=1)

    def render_mesh(self, skin: float | torch.Tensor = 0.8, brows: float | torch.Tensor = 0.6,
                    lips: float | torch.Tensor = 0.2, lash_line: float | torch.Tensor = 0.5,
                    nostrils: float | torch.Tensor = 0.5, eye: float = 0.22, mouth: float = 0.08,
                    detail: str = "full") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Triangles, per-vertex albedo and per-triangle albedo factor for :func:`render_greyscale`.

        Per-vertex albedo = ``skin * (1 - brows*m_brows - lips*m_lips - lash_line*m_lash -
        nostrils*m_nostrils)`` with the soft masks of :func:`albedo_masks` (each argument a float
        or a (B,) tensor for per-image variation, e.g. skin tone and brow darkness per identity);
        the triangle factor is 1 on the skin, ``eye`` on the eye caps and ``mouth`` on the mouth cap.
        ``detail``: "full" (``faces``) or "low" (``faces_low``, for images up to ~128 px).
        Returns ``(faces (F+C, 3), vertex_albedo (B or 1, V), face_albedo (F+C,))``.
        """
        if detail not in ("full", "low"):
            raise FaceModelError(f"parameter detail must be 'full' or 'low'; got {detail!r}")
        surface = self.faces if detail == "full" else self.faces_low
        dev = self.template.device

        def col(value: float | torch.Tensor) -> torch.Tensor:
            return torch.as_tensor(value, dtype=torch.float32, device=dev).reshape(-1, 1)

        m = {k: v.to(dev)[None] for k, v in self._albedo_masks.items()}
        darkening = col(brows) * m["brows"] + col(lips) * m["lips"] + col(lash_line) * m["lash_line"]
        darkening = darkening + col(nostrils) * m["nostrils"]
        vertex_albedo = col(skin) * (1.0 - darkening).clamp(0.05, 1.0)
        faces = torch.cat([surface, self.cap_faces])
        cap_factor = torch.where(self.cap_kind == 0, torch.tensor(eye, device=dev), torch.tensor(mouth, device=dev))
        face_albedo = torch.cat([torch.ones(len(surface), device=dev), cap_factor.float()])
        return faces, vertex_albedo, face_albedo

    def describe(self) -> str:
        return (
            f"FaceModel({self.source}; {self.n_vertices} vertices, {len(self.faces)} triangles, "
            f"{self.n_identity} identity modes, {self.n_expression} blendshapes + jaw(open, lateral, forward); mm)"
        )

    def extra_repr(self) -> str:
        return self.describe()

