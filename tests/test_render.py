"""The torch rasterizer: coverage, z-buffer, shading, pose, framing, landmarks, speed, bad input."""

from __future__ import annotations

import time

import pytest
import torch

from affectlab.facemodel import FaceModel
from affectlab.render import (
    RenderError,
    fit_camera,
    project_landmarks,
    project_points,
    rasterize,
    render_face,
    render_greyscale,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Rendering is many small memory-bound ops: one thread is fastest on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> FaceModel:
    return FaceModel.packaged()


def square(z: float = 0.0, half: float = 1.0, centre=(0.0, 0.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """A square in the z plane facing the viewer (+z), two counter-clockwise triangles."""
    cx, cy = centre
    v = torch.tensor([[cx - half, cy - half, z], [cx + half, cy - half, z], [cx + half, cy + half, z],
                      [cx - half, cy + half, z]])
    return v, torch.tensor([[0, 1, 2], [0, 2, 3]])


def test_square_covers_the_expected_pixels():
    v, f = square()
    frame = torch.tensor([[[-2.0, -2.0, 0.0], [2.0, 2.0, 0.0]]])  # square spans half the frame
    img = render_greyscale(v[None], f, size=64, albedo=1.0, ambient=1.0, background=0.0, frame_points=frame,
                           fill=1.0, supersample=1)
    covered = (img > 0).float().mean().item()
    assert covered == pytest.approx(0.25, abs=0.02)
    assert img.dtype == torch.uint8 and img.shape == (1, 1, 64, 64)
    assert int(img[0, 0, 32, 32]) == 255 and int(img[0, 0, 2, 2]) == 0


def test_backfaces_are_culled_and_can_be_kept():
    v, f = square()
    flipped = f[:, [0, 2, 1]]
    frame = torch.tensor([[[-2.0, -2.0, 0.0], [2.0, 2.0, 0.0]]])
    kw = dict(size=32, albedo=1.0, ambient=1.0, frame_points=frame, fill=1.0, supersample=1)
    assert int(render_greyscale(v[None], flipped, **kw).max()) == 0
    assert int(render_greyscale(v[None], flipped, cull_backfaces=False, **kw).max()) == 255


def test_zbuffer_keeps_the_nearest_surface():
    far, f = square(z=0.0, half=1.0)
    near, _ = square(z=1.0, half=0.5)
    verts = torch.cat([far, near])[None]
    faces = torch.cat([f, f + 4])
    albedo = torch.tensor([1.0] * 4 + [0.4] * 4)  # near square darker
    frame = torch.tensor([[[-1.0, -1.0, 0.0], [1.0, 1.0, 0.0]]])
    for order in (faces, faces.flip(0)):
        img = render_greyscale(verts, order, size=40, albedo=albedo, ambient=1.0, frame_points=frame, fill=1.0,
                               supersample=1)
        assert int(img[0, 0, 20, 20]) == round(0.4 * 255)  # centre: the near square
        assert int(img[0, 0, 3, 3]) == 255  # corner: only the far square


def test_lambertian_shading_matches_the_formula():
    v, f = square()
    frame = torch.tensor([[[-2.0, -2.0, 0.0], [2.0, 2.0, 0.0]]])
    light = torch.tensor([1.0, 0.0, 1.0])  # 45 degrees from the normal
    img = render_greyscale(v[None], f, size=32, light=light, ambient=0.2, albedo=0.8, brightness=1.1,
                           frame_points=frame, fill=1.0, supersample=1)
    expected = 0.8 * (0.2 + 0.8 * (2**-0.5)) * 1.1
    assert int(img[0, 0, 16, 16]) == round(expected * 255)


def test_rasterize_returns_barycentrics_that_sum_to_one():
    v, f = square()
    cam = fit_camera(torch.tensor([[[-2.0, -2.0, 0.0], [2.0, 2.0, 0.0]]]), 16, fill=1.0)
    face_id, bary = rasterize(cam.to_screen(v[None]), f, 16)
    covered = face_id >= 0
    assert covered.any() and set(face_id[covered].unique().tolist()) == {0, 1}
    assert torch.allclose(bary[covered].sum(-1), torch.ones(int(covered.sum())), atol=1e-5)
    assert (bary[covered] >= -1e-6).all()


def test_face_render_is_a_face_and_deterministic(model):
    verts = model.vertices(torch.zeros(2, 30), torch.stack([torch.zeros(53), model.expression_vector(jawOpen=1.0)]))
    a = render_face(model, verts, size=48, background=0.0)
    b = render_face(model, verts, size=48, background=0.0)
    assert torch.equal(a, b)
    assert a.shape == (2, 1, 48, 48) and a.dtype == torch.uint8
    assert float((a > 0).float().mean()) > 0.6  # the face fills most of the crop
    assert float((a[0] != a[1]).float().mean()) > 0.02  # an open mouth changes the image
    # eyes (dark caps) are darker than the cheeks, at the projected landmarks
    lm = project_landmarks(model, verts, size=48)[0]
    eye = lm[36:42].mean(0).long()
    cheek = (lm[2] * 0.4 + lm[30] * 0.6).long()
    assert int(a[0, 0, eye[1], eye[0]]) < int(a[0, 0, cheek[1], cheek[0]]) - 30


def test_pose_changes_the_image_with_documented_signs(model):
    verts = model.vertices()
    base = render_face(model, verts, size=48)
    for kwargs in ({"yaw": 25.0}, {"pitch": 15.0}, {"roll": 20.0}):
        assert float((render_face(model, verts, size=48, **kwargs).float() - base.float()).abs().mean()) > 5, kwargs
    frame = model.frame_points(verts)
    nose = model.landmarks(verts)[:, 30:31]
    chin = model.landmarks(verts)[:, 8:9]
    x0 = project_points(nose, frame, size=48)[0, 0]
    assert float(project_points(nose, frame, size=48, yaw=30.0)[0, 0, 0]) > float(x0[0]) + 2  # nose to image right
    assert float(project_points(nose, frame, size=48, pitch=20.0)[0, 0, 1]) < float(x0[1]) - 1  # nose up
    c0 = project_points(chin, frame, size=48)[0, 0]
    assert float(project_points(chin, frame, size=48, roll=30.0)[0, 0, 0]) > float(c0[0]) + 2  # counter-clockwise


def test_landmarks_land_inside_the_crop_for_every_size(model):
    verts = model.vertices(torch.randn(3, 30, generator=torch.Generator().manual_seed(1)))
    for size in (48, 112):
        lm = project_landmarks(model, verts, size=size, yaw=torch.tensor([0.0, 20.0, -20.0]))
        assert lm.shape == (3, 68, 2)
        assert float(lm.min()) >= 0 and float(lm.max()) <= size


def test_224_px_full_detail(model):
    img = render_face(model, model.vertices(), size=224, supersample=1)
    assert img.shape == (1, 1, 224, 224)
    assert float((img > 0).float().mean()) > 0.6


def test_weak_perspective_normalises_size_orthographic_keeps_it(model):
    verts = model.vertices().expand(2, -1, -1) * torch.tensor([1.0, 0.7]).view(2, 1, 1)
    faces, albedo, face_albedo = model.render_mesh(detail="low")
    kw = dict(faces=faces, size=48, albedo=albedo, face_albedo=face_albedo, background=0.0, supersample=1)
    weak = render_greyscale(verts, projection="weak_perspective", **kw)
    ortho = render_greyscale(verts, projection="orthographic", **kw)
    area = lambda img: (img > 0).float().flatten(1).mean(1)  # noqa: E731
    assert float(area(weak)[1]) == pytest.approx(float(area(weak)[0]), rel=0.05)
    assert float(area(ortho)[1]) < 0.7 * float(area(ortho)[0])


def test_rendering_speed_48px(model):
    n = 32
    verts = model.vertices(torch.randn(n, 30), torch.rand(n, 53) * 0.3)
    start = time.process_time()
    render_face(model, verts, size=48, yaw=torch.linspace(-20, 20, n))
    per_image_ms = (time.process_time() - start) / n * 1000
    assert per_image_ms < 150  # measured ~12 ms of CPU per image on the development machine


def test_bad_input_names_the_parameter(model):
    v, f = square()
    with pytest.raises(RenderError, match="size"):
        render_greyscale(v[None], f, size=4)
    with pytest.raises(RenderError, match="faces index"):
        render_greyscale(v[None], f + 10)
    with pytest.raises(RenderError, match="NaN"):
        render_greyscale(torch.full((1, 4, 3), float("nan")), f)
    with pytest.raises(RenderError, match="albedo"):
        render_greyscale(v[None], f, albedo=torch.ones(5))
    with pytest.raises(RenderError, match="yaw"):
        render_greyscale(v[None].expand(2, -1, -1), f, yaw=torch.zeros(3))
    with pytest.raises(RenderError, match="projection"):
        render_greyscale(v[None], f, projection="perspective")
    with pytest.raises(RenderError, match="vertices"):
        render_greyscale(v, f)
