"""A small vectorised (torch) triangle rasterizer: mesh -> greyscale face image, no OpenGL.

It stands in for the renderers the papers' pipelines use (EMOCA/DECA render FLAME meshes for the
EEG2Face figures, Kabidenova 2025 Sec. 4; generated FER training faces elsewhere in the book).

Pipeline (all batched over B meshes):

1. Pose: rotate the mesh about the centroid of its framing points by ``R = Rz(roll) Rx(pitch)
   Ry(yaw)`` (degrees). Conventions: camera looks down -z at the face (+z towards the viewer),
   +x image right, +y image up. ``yaw > 0`` turns the nose towards image right (the subject turns
   to their left); ``pitch > 0`` lifts the nose; ``roll > 0`` rotates the face counter-clockwise in
   the image.
2. Projection (:func:`fit_camera`): orthographic rays; the framing points (e.g. landmarks plus a
   forehead point) are fitted into ``fill`` of the image. ``"weak_perspective"`` scales each image
   to its own face (what a face-detector crop does: the scale is the weak-perspective f / Z);
   ``"orthographic"`` uses one scale for the whole batch (``pixels_per_mm``, else fitted to the
   largest face) so relative face sizes survive.
3. Rasterization (:func:`rasterize`): each triangle tests the pixel centres in its bounding box
   (triangles grouped by box size so work stays proportional to their area), back faces are
   culled, and a z-buffer keeps the nearest triangle per pixel (``scatter_reduce`` of a key that
   packs quantised depth and the triangle id).
4. Shading (Gouraud): Lambertian ``I = albedo * (ambient + (1 - ambient) * max(0, n . l)) *
   brightness`` at each vertex (area-weighted vertex normals, ``l`` the light direction in camera
   space), interpolated with the pixel's barycentric weights, times an optional per-triangle
   albedo factor; uncovered pixels take ``background``. Supersampling (render at
   ``supersample`` x size, average-pool) anti-aliases the edges.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import torch

from affectlab.facemodel import vertex_normals

PROJECTIONS = ("weak_perspective", "orthographic")
FACE_FILL = 0.95  # share of the image the face crop (landmarks + forehead) spans in render_face
_FACE_BITS = 22  # triangle id bits in the z-buffer key (up to 4M triangles)
_DEPTH_LEVELS = 2**36


class RenderError(ValueError):
    """A rendering parameter is wrong; the message names it."""


def _per_image(value: Any, batch: int, name: str, device: torch.device, width: int | None = None) -> torch.Tensor:
    """Broadcast a scalar / (B,) (or (w,) / (B, w)) parameter to a float tensor with batch B."""
    t = torch.as_tensor(value, dtype=torch.float32, device=device)
    if width is None:
        t = t.reshape(-1)
        if t.numel() == 1:
            return t.expand(batch)
        if t.numel() != batch:
            raise RenderError(f"parameter {name} must be a scalar or have {batch} values; got shape {tuple(t.shape)}")
        return t
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[1] != width or t.shape[0] not in (1, batch):
        raise RenderError(f"parameter {name} must be ({width},) or ({batch}, {width}); got shape {tuple(t.shape)}")
    return t.expand(batch, width)


def rotation_matrices(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) rotations ``Rz(roll) @ Rx(-pitch) @ Ry(yaw)`` from angles in degrees (see module doc)."""
    y, p, r = (torch.deg2rad(a) for a in (yaw, pitch, roll))
    one, zero = torch.ones_like(y), torch.zeros_like(y)

    def mat(rows: list[list[torch.Tensor]]) -> torch.Tensor:
        return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)

    ry = mat([[torch.cos(y), zero, torch.sin(y)], [zero, one, zero], [-torch.sin(y), zero, torch.cos(y)]])
    rx = mat([[one, zero, zero], [zero, torch.cos(p), torch.sin(p)], [zero, -torch.sin(p), torch.cos(p)]])
    rz = mat([[torch.cos(r), -torch.sin(r), zero], [torch.sin(r), torch.cos(r), zero], [zero, zero, one]])
    return rz @ rx @ ry


@dataclasses.dataclass
class Camera:
    """Pose + framing of a batch: model space (mm) -> image pixels.

    ``screen = ((p - pivot) @ R^T - [cx, cy, 0]) * scale``, then image ``u = size/2 + x``,
    ``v = size/2 - y`` (pixel centres at integer + 0.5), depth = z (larger = nearer).
    """

    rotation: torch.Tensor  # (B, 3, 3)
    pivot: torch.Tensor  # (B, 3) rotation centre, model space
    center: torch.Tensor  # (B, 2) rotated-space point mapped to the image centre
    scale: torch.Tensor  # (B,) pixels per mm
    size: int

    def rotate(self, points: torch.Tensor) -> torch.Tensor:
        """Points (B, K, 3) in camera orientation (mm, origin at the pivot)."""
        return (points - self.pivot[:, None]) @ self.rotation.transpose(1, 2)

    def to_screen(self, points: torch.Tensor) -> torch.Tensor:
        """Points (B, K, 3) -> (B, K, 3): pixel u (right), pixel v (down), depth in pixels."""
        p = self.rotate(points)
        s = self.scale[:, None]
        u = self.size / 2 + (p[..., 0] - self.center[:, None, 0]) * s
        v = self.size / 2 - (p[..., 1] - self.center[:, None, 1]) * s
        return torch.stack([u, v, p[..., 2] * s], dim=-1)


def fit_camera(frame_points: torch.Tensor, size: int = 48, yaw: Any = 0.0, pitch: Any = 0.0, roll: Any = 0.0,
               fill: float = 0.9, projection: str = "weak_perspective", pixels_per_mm: float | None = None,
               shift: Sequence[float] = (0.0, 0.0)) -> Camera:
    """The camera that poses the mesh and fits ``frame_points`` (B, K, 3) into ``fill`` of the image.

    ``shift`` moves the face by a fraction of the image size (x right, y down), e.g. crop jitter.
    """
    if frame_points.ndim != 3 or frame_points.shape[-1] != 3:
        raise RenderError(f"frame_points must be (B, K, 3); got {tuple(frame_points.shape)}")
    if projection not in PROJECTIONS:
        raise RenderError(f"parameter projection={projection!r} is unknown; choose one of {PROJECTIONS}")
    if not 0.05 <= fill <= 4.0:
        raise RenderError(f"parameter fill must be in [0.05, 4]; got {fill}")
    _check_size(size)
    b, dev = frame_points.shape[0], frame_points.device
    rot = rotation_matrices(*(_per_image(a, b, n, dev) for a, n in ((yaw, "yaw"), (pitch, "pitch"), (roll, "roll"))))
    pivot = frame_points.mean(dim=1)
    rotated = (frame_points - pivot[:, None]) @ rot.transpose(1, 2)
    lo, hi = rotated[..., :2].amin(dim=1), rotated[..., :2].amax(dim=1)
    extent = (hi - lo).amax(dim=1).clamp(min=1e-6)
    if pixels_per_mm is not None:
        if pixels_per_mm <= 0:
            raise RenderError(f"parameter pixels_per_mm must be > 0; got {pixels_per_mm}")
        scale = torch.full((b,), float(pixels_per_mm), device=dev)
    elif projection == "weak_perspective":
        scale = fill * size / extent
    else:
        scale = (fill * size / extent.max()).expand(b)
    sh = _per_image(shift, b, "shift", dev, width=2)
    center = (lo + hi) / 2 - torch.stack([sh[:, 0], -sh[:, 1]], dim=1) * size / scale[:, None]
    return Camera(rotation=rot, pivot=pivot, center=center, scale=scale, size=size)


def project_points(points: torch.Tensor, frame_points: torch.Tensor | None = None, size: int = 48, yaw: Any = 0.0,
                   pitch: Any = 0.0, roll: Any = 0.0, fill: float = 0.9, projection: str = "weak_perspective",
                   pixels_per_mm: float | None = None, shift: Sequence[float] = (0.0, 0.0)) -> torch.Tensor:
    """2-D pixel coordinates (B, K, 2) (x right, y down; pixel centres at i + 0.5) of ``points``.

    Give the same ``frame_points`` and pose as to :func:`render_greyscale` (its default framing is
    the vertices themselves) and the coordinates land on the rendered image.
    """
    frame = points if frame_points is None else frame_points
    cam = fit_camera(frame, size, yaw, pitch, roll, fill, projection, pixels_per_mm, shift)
    return cam.to_screen(points)[..., :2]


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= 1024:
        raise RenderError(f"parameter size must be an int in [8, 1024] (48 to 224 typical); got {size!r}")


def _box_group(span: torch.Tensor) -> torch.Tensor:
    """Candidate box side per triangle: the exact span up to 4 pixels, then the next power of 2."""
    return torch.where(span <= 4, span, 2 ** torch.ceil(torch.log2(span.float())).long())


def rasterize(screen: torch.Tensor, faces: torch.Tensor, size: int,
              cull_backfaces: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest triangle per pixel: ids (B, size, size) (-1 = background) and barycentrics (B, size, size, 3).

    ``screen`` (B, V, 3) holds pixel u, v and depth (larger = nearer), e.g. :meth:`Camera.to_screen`.
    Triangles whose bounding box holds no pixel centre, or that face away, are dropped first; the
    rest are sorted into groups of equal box width x height and each group tests its boxes' pixel
    centres with the triangles' edge functions (barycentric weights and depth are linear in the
    pixel position, so each is a base value plus steps per pixel column and row).
    """
    b, dev = screen.shape[0], screen.device
    n_faces = faces.shape[0]
    if n_faces >= 2**_FACE_BITS:
        raise RenderError(f"too many triangles ({n_faces}); at most {2**_FACE_BITS - 1}")
    tri = torch.index_select(screen, 1, faces.reshape(-1)).reshape(-1, 3, 3)  # (B*F, corner, uvz)
    x, y = tri[..., 0], tri[..., 1]
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    # Image v points down, so counter-clockwise (outward) triangles have negative area here.
    facing = area < -1e-9 if cull_backfaces else area.abs() > 1e-9
    col0 = torch.ceil(x.amin(-1) - 0.5).clamp_(min=0)
    col1 = torch.floor(x.amax(-1) - 0.5).clamp_(max=size - 1)
    row0 = torch.ceil(y.amin(-1) - 0.5).clamp_(min=0)
    row1 = torch.floor(y.amax(-1) - 0.5).clamp_(max=size - 1)
    keep = torch.nonzero(facing & (col1 >= col0) & (row1 >= row0)).squeeze(1)
    zbuf = torch.full((b * size * size,), -1, dtype=torch.long, device=dev)
    bary = torch.zeros(b * size * size, 3, dtype=screen.dtype, device=dev)
    if keep.numel() == 0:
        return zbuf.reshape(b, size, size), bary.reshape(b, size, size, 3)
    width = (col1[keep] - col0[keep]).long() + 1
    height = (row1[keep] - row0[keep]).long() + 1
    group = _box_group(width) * (size + 1) + _box_group(height)
    order = torch.argsort(group)
    keep, width, height, group = keep[order], width[order], height[order], group[order]
    tri, area, col0, row0 = tri[keep], area[keep], col0[keep], row0[keep]
    # w_i(px, py) = ((x_j - px)(y_k - py) - (x_k - px)(y_j - py)) / area for (i, j, k) cyclic,
    # written as base (at the box's first pixel centre) + dx * column offset + dy * row offset.
    cx, cy = col0 + 0.5, row0 + 0.5
    coef = []
    for j, k in ((1, 2), (2, 0)):
        xj, yj, xk, yk = tri[:, j, 0], tri[:, j, 1], tri[:, k, 0], tri[:, k, 1]
        coef += [((xj - cx) * (yk - cy) - (xk - cx) * (yj - cy)) / area, (yj - yk) / area, (xk - xj) / area]
    z0, z1, z2 = tri[:, 0, 2], tri[:, 1, 2], tri[:, 2, 2]
    b0, dx0, dy0, b1, dx1, dy1 = coef
    coef += [z2 + b0 * (z0 - z2) + b1 * (z1 - z2), dx0 * (z0 - z2) + dx1 * (z1 - z2), dy0 * (z0 - z2) + dy1 * (z1 - z2)]
    coef = torch.stack(coef, dim=1)  # (N, 9): w0 (base, dx, dy), w1 (...), depth (...)
    image = keep // n_faces
    origin = image * size * size + row0.long() * size + col0.long()  # first pixel of each box
    depth_lo = tri[..., 2].amin()
    depth_step = (_DEPTH_LEVELS - 1) / (tri[..., 2].amax() - depth_lo).clamp(min=1e-6)
    uniq, counts = torch.unique_consecutive(group, return_counts=True)
    pixels, keys, weights, start = [], [], [], 0
    for key, count in zip(uniq.tolist(), counts.tolist()):
        c = coef[start:start + count]
        side_x, side_y = divmod(key, size + 1)
        oy, ox = torch.meshgrid(torch.arange(side_y, device=dev, dtype=c.dtype),
                                torch.arange(side_x, device=dev, dtype=c.dtype), indexing="ij")
        ox, oy = ox.reshape(1, -1), oy.reshape(1, -1)
        w0 = c[:, 0:1] + c[:, 1:2] * ox + c[:, 2:3] * oy
        w1 = c[:, 3:4] + c[:, 4:5] * ox + c[:, 5:6] * oy
        inside = (w0 >= 0) & (w1 >= 0) & (w0 + w1 <= 1)
        if side_x > 1 or side_y > 1:
            inside &= (ox < width[start:start + count, None]) & (oy < height[start:start + count, None])
        hit = torch.nonzero(inside.reshape(-1)).squeeze(1)
        n_box = side_x * side_y
        hit_tri, hit_pix = hit // n_box, hit % n_box
        ox_hit, oy_hit = ox[0, hit_pix], oy[0, hit_pix]
        ch = c[hit_tri]
        depth = ch[:, 6] + ch[:, 7] * ox_hit + ch[:, 8] * oy_hit
        pixels.append(origin[start + hit_tri] + oy_hit.long() * size + ox_hit.long())
        q = ((depth - depth_lo) * depth_step).round().long()
        keys.append((q << _FACE_BITS) | (keep[start + hit_tri] % n_faces))
        weights.append(torch.stack([w0.reshape(-1)[hit], w1.reshape(-1)[hit]], dim=1))
        start += count
    pix, key = torch.cat(pixels), torch.cat(keys)
    zbuf.scatter_reduce_(0, pix, key, reduce="amax", include_self=True)
    won = torch.nonzero(zbuf[pix] == key).squeeze(1)  # a triangle covers a pixel centre once
    w01 = torch.cat(weights)[won]
    bary[pix[won]] = torch.cat([w01, 1 - w01.sum(1, keepdim=True)], dim=1)
    face_id = torch.where(zbuf >= 0, zbuf & (2**_FACE_BITS - 1), zbuf)
    return face_id.reshape(b, size, size), bary.reshape(b, size, size, 3)


def shade(faces: torch.Tensor, face_id: torch.Tensor, bary: torch.Tensor, vertex_intensity: torch.Tensor,
          face_albedo: torch.Tensor | None, background: torch.Tensor) -> torch.Tensor:
    """Image (B, H, W) in [0, 1]: vertex intensities interpolated over the visible triangles."""
    b, h, w = face_id.shape
    bi, yi, xi = torch.nonzero(face_id >= 0, as_tuple=True)
    fid = face_id[bi, yi, xi]
    corners = faces[fid]  # (P, 3)
    value = (vertex_intensity[bi[:, None], corners] * bary[bi, yi, xi]).sum(-1)
    if face_albedo is not None:
        value = value * face_albedo[fid]
    image = background[:, None, None].expand(b, h, w).clone()
    image[bi, yi, xi] = value.to(image.dtype)
    return image


def lambert(normals: torch.Tensor, albedo: torch.Tensor, light: torch.Tensor, ambient: torch.Tensor,
            brightness: torch.Tensor) -> torch.Tensor:
    """Per-vertex ``albedo * (ambient + (1 - ambient) * max(0, n . l)) * brightness`` (B, V)."""
    diffuse = (normals * light[:, None]).sum(-1).clamp(min=0)
    amb = ambient[:, None]
    return albedo * (amb + (1 - amb) * diffuse) * brightness[:, None]


def render_greyscale(vertices: torch.Tensor, faces: torch.Tensor, size: int = 48, yaw: Any = 0.0, pitch: Any = 0.0,
                     roll: Any = 0.0, light: Any = (0.0, 0.0, 1.0), ambient: Any = 0.3, brightness: Any = 1.0,
                     albedo: torch.Tensor | float = 0.8, face_albedo: torch.Tensor | None = None,
                     background: Any = 0.0, frame_points: torch.Tensor | None = None, fill: float = 0.9,
                     projection: str = "weak_perspective", pixels_per_mm: float | None = None,
                     shift: Any = (0.0, 0.0), supersample: int = 2, cull_backfaces: bool = True,
                     chunk: int = 64) -> torch.Tensor:
    """Render meshes (B, V, 3) with triangles ``faces`` (F, 3) to uint8 images (B, 1, size, size).

    Args:
        yaw, pitch, roll: degrees, scalar or (B,) (conventions in the module docstring).
        light: direction towards the light in camera space, (3,) or (B, 3); (0, 0, 1) = frontal.
        ambient: ambient term in [0, 1]; brightness: per-image gain; background: value in [0, 1].
        albedo: per-vertex albedo, float, (V,) or (B, V); face_albedo: optional (F,) factor.
        frame_points: (B, K, 3) points fitted into ``fill`` of the image (default: the vertices).
        projection, pixels_per_mm, shift: see :func:`fit_camera`.
        supersample: render at this multiple of ``size`` and average-pool (1 = off).
        chunk: images rasterized at a time (memory bound).
    """
    _check_size(size)
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise RenderError(f"vertices must be (B, V, 3); got {tuple(vertices.shape)}")
    faces = torch.as_tensor(faces, device=vertices.device).long()
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise RenderError(f"faces must be (F, 3) triangle vertex ids; got {tuple(faces.shape)}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= vertices.shape[1]):
        raise RenderError(f"faces index vertices outside 0..{vertices.shape[1] - 1}")
    if not isinstance(supersample, int) or not 1 <= supersample <= 8:
        raise RenderError(f"parameter supersample must be an int in 1..8; got {supersample!r}")
    if not torch.isfinite(vertices).all():
        raise RenderError("vertices contain NaN or inf")
    b, v, dev = vertices.shape[0], vertices.shape[1], vertices.device
    vertices = vertices.float()
    params = {
        "yaw": _per_image(yaw, b, "yaw", dev), "pitch": _per_image(pitch, b, "pitch", dev),
        "roll": _per_image(roll, b, "roll", dev), "ambient": _per_image(ambient, b, "ambient", dev),
        "brightness": _per_image(brightness, b, "brightness", dev),
        "background": _per_image(background, b, "background", dev),
        "light": torch.nn.functional.normalize(_per_image(light, b, "light", dev, width=3), dim=-1),
        "shift": _per_image(shift, b, "shift", dev, width=2),
    }
    alb = torch.as_tensor(albedo, dtype=torch.float32, device=dev)
    alb = alb.reshape(1, 1).expand(1, v) if alb.numel() == 1 else (alb[None] if alb.ndim == 1 else alb)
    if alb.ndim != 2 or alb.shape[1] != v or alb.shape[0] not in (1, b):
        raise RenderError(f"parameter albedo must be a float, ({v},) or ({b}, {v}); got shape {tuple(alb.shape)}")
    if face_albedo is not None:
        face_albedo = torch.as_tensor(face_albedo, dtype=torch.float32, device=dev)
        if face_albedo.shape != (faces.shape[0],):
            raise RenderError(f"parameter face_albedo must be ({faces.shape[0]},); got {tuple(face_albedo.shape)}")
    if frame_points is not None and (frame_points.ndim != 3 or frame_points.shape[0] not in (1, b)):
        raise RenderError(f"frame_points must be (B, K, 3) with B = {b} or 1; got {tuple(frame_points.shape)}")
    frame_all = vertices if frame_points is None else frame_points.float().expand(b, -1, -1)
    used = torch.unique(faces)
    if len(used) < 0.9 * v:  # e.g. a decimated mesh: drop the vertices no triangle uses
        remap = torch.full((v,), -1, dtype=torch.long, device=dev)
        remap[used] = torch.arange(len(used), device=dev)
        vertices, faces, alb = vertices[:, used], remap[faces], alb[:, used]
    big = size * supersample
    cam_all = fit_camera(frame_all, big, params["yaw"], params["pitch"], params["roll"], fill, projection,
                         None if pixels_per_mm is None else pixels_per_mm * supersample, params["shift"])
    out = torch.empty(b, 1, size, size, dtype=torch.uint8, device=dev)
    for start in range(0, b, chunk):
        sl = slice(start, min(start + chunk, b))
        cam = Camera(cam_all.rotation[sl], cam_all.pivot[sl], cam_all.center[sl], cam_all.scale[sl], big)
        screen = cam.to_screen(vertices[sl])
        face_id, bary = rasterize(screen, faces, big, cull_backfaces)
        normals = vertex_normals(cam.rotate(vertices[sl]), faces)
        intensity = lambert(normals, alb if alb.shape[0] == 1 else alb[sl], params["light"][sl],
                            params["ambient"][sl], params["brightness"][sl])
        img = shade(faces, face_id, bary, intensity, face_albedo, params["background"][sl])
        if supersample > 1:
            img = torch.nn.functional.avg_pool2d(img[:, None], supersample)[:, 0]
        out[sl, 0] = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return out


def image_grid(images: torch.Tensor, columns: int = 8, pad: int = 2) -> torch.Tensor:
    """Tile uint8 images (N, 1, H, W) into one (H', W') uint8 image for figures and inspection."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise RenderError(f"images must be (N, 1, H, W); got {tuple(images.shape)}")
    n, _, h, w = images.shape
    rows = math.ceil(n / columns)
    grid = torch.full((rows * (h + pad) + pad, columns * (w + pad) + pad), 255, dtype=torch.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top:top + h, left:left + w] = images[i, 0].cpu()
    return grid


def _face_detail(size: int, supersample: int, detail: str) -> str:
    if detail == "auto":
        return "low" if size * supersample <= 128 else "full"
    return detail


def render_face(model: Any, vertices: torch.Tensor, size: int = 48, detail: str = "auto",
                appearance: dict[str, Any] | None = None, frame_points: torch.Tensor | None = None,
                supersample: int = 2, **kwargs: Any) -> torch.Tensor:
    """Render :class:`~affectlab.facemodel.FaceModel` meshes (B, V, 3) as face crops (B, 1, size, size).

    Framing: ``model.frame_points(vertices)`` (landmarks + forehead) unless ``frame_points`` is
    given, ``fill`` :data:`FACE_FILL` unless given. ``detail`` "auto" uses the decimated mesh when the rendered
    resolution (size x supersample) is <= 128 px. ``appearance`` goes to ``model.render_mesh``
    (skin, brows, lips, lash_line, nostrils: floats or (B,) tensors). Other keyword arguments go to
    :func:`render_greyscale` (pose, light, ambient, brightness, background, shift, ...).
    """
    faces, vertex_albedo, face_albedo = model.render_mesh(detail=_face_detail(size, supersample, detail),
                                                          **(appearance or {}))
    frame = model.frame_points(vertices) if frame_points is None else frame_points
    kwargs.setdefault("fill", FACE_FILL)
    return render_greyscale(vertices, faces, size=size, albedo=vertex_albedo, face_albedo=face_albedo,
                            frame_points=frame, supersample=supersample, **kwargs)


def project_landmarks(model: Any, vertices: torch.Tensor, size: int = 48, frame_points: torch.Tensor | None = None,
                      **kwargs: Any) -> torch.Tensor:
    """Pixel coordinates (B, 68, 2) of the iBUG landmarks in the framing :func:`render_face` uses.

    Keyword arguments: the pose / framing ones given to :func:`render_face` (yaw, pitch, roll,
    fill, projection, pixels_per_mm, shift); shading arguments are ignored.
    """
    frame = model.frame_points(vertices) if frame_points is None else frame_points
    pose_keys = ("yaw", "pitch", "roll", "fill", "projection", "pixels_per_mm", "shift")
    keep = {k: kwargs[k] for k in pose_keys if k in kwargs}
    keep.setdefault("fill", FACE_FILL)
    frame = frame.expand(vertices.shape[0], -1, -1)
    return project_points(model.landmarks(vertices), frame_points=frame, size=size, **keep)
