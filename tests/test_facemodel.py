"""The ICT-FaceKit face model: packaged asset, shapes, units, landmarks, regions, caps, the full copy."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from affectlab.facemodel import (
    ASSET_DIR,
    LANDMARK_GROUPS,
    PACKAGED_FILE,
    FaceModel,
    FaceModelError,
    boundary_loops,
    read_ict_source,
)

REPO = Path(__file__).resolve().parents[1]


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


def _centroid(model: FaceModel, region: str) -> torch.Tensor:
    return model.template[model.regions[region]].mean(0)


def test_packaged_asset_is_small_and_licensed():
    assert PACKAGED_FILE.is_file()
    assert PACKAGED_FILE.stat().st_size <= 5 * 1024 * 1024
    licence = (ASSET_DIR / "LICENSE").read_text()
    assert "MIT License" in licence and "USC Institute for Creative Technologies" in licence
    readme = (ASSET_DIR / "README.md").read_text()
    assert "make_reduced_facemodel.py" in readme and "9408" in readme


def test_shapes_and_template(model):
    v = model.n_vertices
    assert v == 9409 and model.n_expression == 53 and model.n_identity == 30
    assert model.faces.shape[1] == 3 and int(model.faces.max()) < v and int(model.faces.min()) >= 0
    assert len(model.expression_names) == 53 and "jawOpen" in model.expression_names
    assert torch.equal(model.vertices()[0], model.template)
    assert torch.equal(model.vertices(psi=torch.zeros(53))[0], model.template)
    zeros = model.vertices(beta=torch.zeros(3, 30), psi=torch.zeros(3, 53))
    assert torch.equal(zeros, model.template.expand(3, -1, -1))
    out = model.vertices(torch.randn(4, 10), torch.rand(4, 53), torch.rand(4, 3))
    assert out.shape == (4, v, 3) and out.dtype == torch.float32


def test_linear_in_each_parameter(model):
    k = model.expression_index("mouthSmile_L")
    psi = torch.zeros(53)
    psi[k] = 1.0
    assert torch.allclose(model.vertices(psi=psi)[0] - model.template, model.expression_basis[k], atol=1e-4)
    beta = torch.zeros(30)
    beta[2] = 2.0
    assert torch.allclose(model.vertices(beta=beta)[0] - model.template, 2 * model.identity_basis[2], atol=1e-4)


def test_jaw_maps_onto_jaw_blendshapes(model):
    def psi_of(**named):
        return model.expression_vector(**named)

    pairs = [
        ((0.6, 0.0, 0.0), psi_of(jawOpen=0.6)),
        ((0.0, 0.4, 0.0), psi_of(jawLeft=0.4)),
        ((0.0, -0.3, 0.0), psi_of(jawRight=0.3)),
        ((0.0, 0.0, 0.5), psi_of(jawForward=0.5)),
    ]
    for jaw, psi in pairs:
        assert torch.allclose(model.vertices(jaw=torch.tensor(jaw)), model.vertices(psi=psi), atol=1e-4)
    # jaw adds onto psi's own jaw coefficients
    both = model.effective_expression(psi_of(jawOpen=0.2), torch.tensor([0.3, 0.0, 0.0]))
    assert float(both[0, model.expression_index("jawOpen")]) == pytest.approx(0.5)
    # jawLeft moves the chin towards +x (the subject's left)
    chin = model.landmark_vertex_ids[8]
    assert float(model.vertices(jaw=torch.tensor([0.0, 1.0, 0.0]))[0, chin, 0]) > float(model.template[chin, 0]) + 3


def test_units_are_millimetres(model):
    lm = model.landmarks(model.vertices())[0]
    face_width = float((lm[0] - lm[16]).norm())
    outer_eyes = float((lm[36] - lm[45]).norm())
    assert 130 <= face_width <= 160
    assert 80 <= outer_eyes <= 100
    # the ARKit "_L" shapes move the subject's left side (+x)
    moved = model.expression_basis[model.expression_index("mouthSmile_L")].norm(dim=1)
    assert float(model.template[moved > 0.5 * moved.max(), 0].mean()) > 10


def test_landmarks_follow_ibug_order(model):
    lm = model.landmarks(model.vertices(torch.randn(1, 30, generator=torch.Generator().manual_seed(0)) * 0.5))[0]
    x, y, z = lm[:, 0], lm[:, 1], lm[:, 2]
    assert (x[:8] < 0).all() and (x[9:17] > 0).all() and abs(float(x[8])) < 2.0  # jaw: right -> chin -> left
    assert float(y[8]) == float(y[:17].min())  # chin lowest jaw point
    assert float(x[36]) < float(x[39]) < 0 < float(x[42]) < float(x[45])  # eye corners
    assert float(y[37]) > float(y[41]) and float(y[43]) > float(y[47])  # upper lid above lower lid
    assert int(torch.argmax(z)) == 30  # nose tip is the most forward landmark
    assert float(y[19]) > float(y[37]) > float(y[30]) > float(y[51]) > float(y[57]) > float(y[8])
    assert float(x[48]) < float(x[51]) < float(x[54])  # mouth corners around the upper lip centre
    assert float(y[62]) > float(y[66]) - 1.0  # inner lips: top above (or at) bottom
    template_lm = model.template[model.landmark_vertex_ids]  # the template is left-right symmetric
    mirror = [16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
              27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
              54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65]
    assert torch.allclose(template_lm[:, 0], -template_lm[mirror, 0], atol=0.01)
    assert torch.allclose(template_lm[:, 1:], template_lm[mirror, 1:], atol=0.01)
    assert model.landmarks(model.vertices()).shape == (1, 68, 3)
    assert torch.equal(model.landmarks(model.vertices()), model.vertices()[:, model.landmark_vertex_ids])


def test_regions_are_nonempty_and_in_place(model):
    for name in ("lips", "mouth_corners", "eyes", "forehead", "cheeks", "brows", "nose", "chin"):
        assert len(model.regions[name]) > 20, name
    y = {name: float(_centroid(model, name)[1]) for name in model.regions}
    assert y["forehead"] > y["brows"] > y["eyes"] > y["nose"] > y["lips"] > y["chin"]
    assert y["eyes"] > y["cheeks"] > y["lips"]
    lm = model.template[model.landmark_vertex_ids]
    cheek_x = model.template[model.regions["cheeks"], 0].abs()
    assert float(cheek_x.min()) > float(lm[31:36, 0].abs().max())  # lateral to the nostrils
    eyes_x = model.template[model.regions["eyes"], 0]
    assert (eyes_x < 0).any() and (eyes_x > 0).any()  # both eyes
    corners = model.template[model.regions["mouth_corners"]]
    near = torch.minimum((corners - lm[48]).norm(dim=1), (corners - lm[54]).norm(dim=1))
    assert float(near.max()) <= 6.0


def test_caps_close_the_eye_and_mouth_openings(model):
    surface = model.faces.numpy()
    assert len(boundary_loops(surface)) == 4  # outer rim, two eyes, mouth
    closed = np.concatenate([surface, model.cap_faces.numpy()])
    assert len(boundary_loops(closed)) == 1
    assert set(model.cap_kind.tolist()) == {0, 1}


def test_low_detail_mesh_keeps_landmarks_and_openings(model):
    low = model.faces_low.numpy()
    assert len(low) < len(model.faces) / 2
    used = set(np.unique(low).tolist())
    assert set(model.landmark_vertex_ids.tolist()) <= used
    loops_full = sorted(len(lp) for lp in boundary_loops(model.faces.numpy()))
    assert sorted(len(lp) for lp in boundary_loops(low)) == loops_full
    # outward winding kept: low triangles face the way the full surface does at their corners
    from affectlab.facemodel import vertex_normals

    t = model.template.numpy()
    n = np.cross(t[low[:, 1]] - t[low[:, 0]], t[low[:, 2]] - t[low[:, 0]])
    surface = vertex_normals(model.template[None], model.faces)[0].numpy()[low].mean(1)
    assert ((n * surface).sum(1) > 0).mean() > 0.99


def test_bad_parameters_raise_clear_errors(model):
    with pytest.raises(FaceModelError, match="psi"):
        model.vertices(psi=torch.zeros(52))
    with pytest.raises(FaceModelError, match="beta"):
        model.vertices(beta=torch.zeros(31))
    with pytest.raises(FaceModelError, match="NaN"):
        model.vertices(jaw=torch.tensor([float("nan"), 0, 0]))
    with pytest.raises(FaceModelError, match="batch"):
        model.vertices(beta=torch.zeros(2, 30), psi=torch.zeros(3, 53))
    with pytest.raises(FaceModelError, match="unknown blendshape"):
        model.expression_vector(mouthGrin=1.0)


def test_bad_source_files_are_named(tmp_path):
    with pytest.raises(FaceModelError, match="ict_face_model_light.npz"):
        read_ict_source(tmp_path)
    (tmp_path / "vertex_indices.json").write_text(json.dumps({"expressions": [], "idx_to_landmark_verts": [],
                                                               "idx_to_rigid_landmark_idx": []}))
    np.savez(tmp_path / "ict_face_model_light.npz", neutral=np.zeros((10, 3), np.float32))
    with pytest.raises(FaceModelError, match=r"ict_face_model_light.npz.*faces_quads"):
        read_ict_source(tmp_path)
    (tmp_path / "vertex_indices.json").write_text("{not json")
    with pytest.raises(FaceModelError, match="vertex_indices.json"):
        read_ict_source(tmp_path)


def _load_build_script():
    path = REPO / "scripts" / "make_reduced_facemodel.py"
    spec = importlib.util.spec_from_file_location("make_reduced_facemodel", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_decimation_of_a_grid_keeps_protected_vertices_and_winding():
    script = _load_build_script()
    n = 12
    xs, ys = np.meshgrid(np.arange(n, dtype=float), np.arange(n, dtype=float))
    points = np.stack([xs.ravel(), ys.ravel(), 0.05 * np.sin(xs.ravel())], axis=1)
    tris = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1
            tris += [(a, b, e), (a, e, d)]
    tris = np.array(tris)
    protected = np.concatenate(boundary_loops(tris) + [np.array([5 * n + 5])])
    out = script.decimate(points[None], tris, target=len(tris) // 3, protected=protected)
    assert len(out) <= len(tris) // 3 + 2
    assert set(protected.tolist()) <= set(np.unique(out).tolist())
    normals = np.cross(points[out[:, 1]] - points[out[:, 0]], points[out[:, 2]] - points[out[:, 0]])
    assert (normals[:, 2] > 0).all()
    edges = np.sort(np.concatenate([out[:, [0, 1]], out[:, [1, 2]], out[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert counts.max() <= 2  # still a manifold
    assert len(boundary_loops(out)) == 1


def test_full_ict_copy_matches_the_packaged_one(shared_root):
    full = FaceModel.load(shared_root)
    packaged = FaceModel.packaged()
    assert full.source.startswith("ict_facekit") and full.n_identity == 100
    assert torch.equal(full.template, packaged.template)
    assert torch.equal(full.faces, packaged.faces)
    assert torch.equal(full.landmark_vertex_ids, packaged.landmark_vertex_ids)
    assert full.expression_names == packaged.expression_names
    assert float((full.expression_basis - packaged.expression_basis).abs().max()) < 0.05  # float16, mm
    assert float((full.identity_basis[:30] - packaged.identity_basis).abs().max()) < 0.05
    for name, ids in full.regions.items():
        assert torch.equal(ids, packaged.regions[name])
    assert full.landmark_vertex_ids.tolist()[:3] == [1225, 1888, 1052]  # ICT README's Multi-PIE list


def test_load_without_a_face_model_in_the_root_uses_the_packaged_copy(tmp_path):
    assert FaceModel.load(tmp_path).source.startswith("packaged")


def test_landmark_groups_cover_68_points():
    ids = sorted(i for group in LANDMARK_GROUPS.values() for i in group)
    assert ids == list(range(68))
