"""Generated faces, the embedded default per registry name, and paired EEG + face sequences."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from affectlab.data import generate as gen
from affectlab.data.generate import embedded, load_set, save_set
from affectlab.data.generate.faces import (
    AU_BLENDSHAPES,
    EMOTION_AUS,
    GenerationError,
    au_intensity,
    expression_recipe,
    generate_disfa_like,
    generate_faces,
    generate_kdef_like,
    identity_splits,
    packaged_model,
    split_by_identity,
)
from affectlab.data.generate.paired import TASKS, generate_paired
from affectlab.data.sets import EEGSet, FaceSet
from affectlab.data.taxonomy import CIRCUMPLEX_VA, EAV_CLASSES, FER2013_CLASSES, FERPLUS_CLASSES


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Rendering is many small memory-bound ops: one thread is fastest on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small() -> FaceSet:
    return generate_faces(n_identities=4, intensities=(0.5, 1.0), size=32, seed=3)


def test_recipes_use_real_blendshapes_and_cover_the_classes():
    model = packaged_model()
    for shapes in AU_BLENDSHAPES.values():
        for name in shapes:
            model.expression_index(name)
    assert set(FERPLUS_CLASSES) | {"calmness"} <= set(EMOTION_AUS)
    idx = model.expression_index
    happy = expression_recipe("happiness")
    assert happy[idx("mouthSmile_L")] > 0.5 and happy[idx("cheekSquint_R")] > 0.5
    surprise = expression_recipe("surprise")
    assert surprise[idx("browInnerUp_L")] > 0.5 and surprise[idx("eyeWide_R")] > 0.5 and surprise[idx("jawOpen")] > 0.3
    assert float(expression_recipe("neutral").abs().sum()) == 0
    left, right = expression_recipe("contempt", side="L"), expression_recipe("contempt", side="R")
    assert left[idx("mouthSmile_L")] > 0 and left[idx("mouthSmile_R")] == 0
    assert right[idx("mouthSmile_R")] > 0 and right[idx("mouthSmile_L")] == 0
    assert float(au_intensity(surprise, aus=("AU1",))[0]) == pytest.approx(5.0)
    with pytest.raises(GenerationError, match="unknown expression"):
        expression_recipe("boredom")


def test_generated_set_fields_and_ground_truth(small):
    n = 4 * 8 * 2
    assert len(small) == n and small.images.shape == (n, 1, 32, 32) and small.images.dtype == torch.uint8
    assert small.name == "generated_faces" and small.source.startswith("generated:")
    assert small.class_names == FERPLUS_CLASSES
    assert set(small.class_counts().values()) == {8}
    assert torch.allclose(small.soft_labels.sum(1), torch.ones(n))
    assert set(small.identity.tolist()) == {0, 1, 2, 3} and len(small.identity_names) == 4
    va = torch.tensor([CIRCUMPLEX_VA[FERPLUS_CLASSES[c]] for c in small.labels.tolist()])
    intensity = torch.as_tensor(small.meta["intensity"])
    assert torch.allclose(small.valence, va[:, 0] * intensity) and torch.allclose(small.arousal, va[:, 1] * intensity)
    for key, shape in (("blendshapes", (n, 53)), ("beta", (n, 30)), ("pose", (n, 3)), ("landmarks", (n, 68, 2)),
                       ("landmarks_3d", (n, 68, 3)), ("light", (n, 3))):
        assert small.meta[key].shape == shape, key
    lm = small.meta["landmarks"]  # crop jitter may push a chin point just outside the image
    assert lm.min() > -3 and lm.max() < 35 and ((lm >= 0) & (lm <= 32)).all(-1).mean() > 0.98
    neutral = small.labels == 0
    assert float(np.abs(small.meta["blendshapes"][neutral.numpy()]).max()) < 0.2  # only residual activity
    assert float(small.meta["intensity"].min()) == 0.5


def test_same_seed_same_pixels_other_seed_differs(small):
    again = generate_faces(n_identities=4, intensities=(0.5, 1.0), size=32, seed=3)
    assert torch.equal(again.images, small.images)
    assert np.array_equal(again.meta["blendshapes"], small.meta["blendshapes"])
    other = generate_faces(n_identities=4, intensities=(0.5, 1.0), size=32, seed=4)
    assert not torch.equal(other.images, small.images)


def test_classes_are_distinguishable_from_pixels():
    faces = generate_faces(n_identities=9, intensities=(0.7, 1.0), size=48, seed=0, pose_jitter_deg=0.0,
                           vary_lighting=False, noise_sd=0.0)
    parts = split_by_identity(faces, fractions=(2, 1, 0.01), names=("train", "test", "spare"))
    train, test = parts["train"], parts["test"]

    def features(f: FaceSet) -> torch.Tensor:
        x = f.images.float().flatten(1)
        return (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True)

    centroids = torch.stack([features(train)[train.labels == k].mean(0) for k in range(8)])
    predicted = torch.cdist(features(test), centroids).argmin(1)
    accuracy = float((predicted == test.labels).float().mean())
    assert accuracy > 0.4  # chance is 1/8; measured ~0.7


def test_identity_splits_are_disjoint_and_deterministic(small):
    parts = split_by_identity(small)
    ids = [set(p.identity.tolist()) for p in parts.values()]
    assert all(ids) and not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert sum(len(p) for p in parts.values()) == len(small)
    assert [p.split for p in parts.values()] == ["train", "valid", "test"]
    a, b = identity_splits(40, seed=1), identity_splits(40, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert [len(a[k]) for k in ("train", "valid", "test")] == [28, 6, 6]
    with pytest.raises(GenerationError, match="identities"):
        identity_splits(2)


def test_bad_generator_parameters():
    with pytest.raises(GenerationError, match="n_identities"):
        generate_faces(n_identities=0)
    with pytest.raises(GenerationError, match="intensities"):
        generate_faces(n_identities=1, intensities=(2.0,))
    with pytest.raises(GenerationError, match="class_names"):
        generate_faces(n_identities=1, class_names=("neutral", "boredom"))
    with pytest.raises(GenerationError, match="pose_jitter_deg"):
        generate_faces(n_identities=1, intensities=(1.0,), pose_jitter_deg=90.0)


def test_kdef_and_disfa_variants():
    kdef = generate_kdef_like(n_identities=2, size=32, yaw_views=(-45.0, 0.0, 45.0))
    assert len(kdef) == 2 * 7 * 3 and "contempt" not in [kdef.class_names[i] for i in kdef.labels.tolist()]
    assert sorted(set(np.round(kdef.meta["pose"][:, 0]).tolist())) == [-45.0, 0.0, 45.0]
    disfa = generate_disfa_like(n_identities=2, seconds=6.0, fps=1.0, size=32)
    assert len(disfa) == 12 and disfa.meta["au_intensity"].shape == (12, 12)
    assert disfa.meta["au_intensity"].min() >= 0 and disfa.meta["au_intensity"].max() <= 5
    assert disfa.labels.min() >= 0 and disfa.meta["frame"].tolist() == list(range(6)) * 2


@pytest.fixture
def tiny_embedded(monkeypatch):
    """Shrink the embedded sizes so tests stay fast (the cache lives under the test's tmp dir)."""
    for name in ("ferplus", "ckplus", "rafdb"):
        monkeypatch.setitem(gen.FACE_SETS, name, {**gen.FACE_SETS[name], "n_identities": 5, "intensities": (1.0,)})
    monkeypatch.setitem(gen.EEG_SETS, "eav", {**gen.EEG_SETS["eav"], "n_subjects": 1, "trials_per_emotion": 1,
                                              "seconds": 2.0})


def test_embedded_faces_for_registry_names(tiny_embedded):
    train, valid, test = (embedded("ferplus", s) for s in ("train", "valid", "test"))
    assert train.split == "train" and train.name == "ferplus" and train.source.startswith("generated")
    ids = [set(p.identity.tolist()) for p in (train, valid, test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert train.soft_labels is not None and train.class_names == FERPLUS_CLASSES
    fer = embedded("fer2013", "public_test")
    assert fer.class_names == FER2013_CLASSES and len(fer) == len(valid) - int((valid.labels == 7).sum())
    for label, ferplus in zip(fer.labels.tolist(), fer.meta["ferplus_label"].tolist()):
        assert {"angry": "anger", "happy": "happiness", "sad": "sadness"}.get(
            FER2013_CLASSES[label], FER2013_CLASSES[label]) == FERPLUS_CLASSES[ferplus]
    ck = embedded("ckplus", "all")
    assert ck.class_names == FERPLUS_CLASSES and 0 not in ck.labels.tolist() and 7 in ck.labels.tolist()
    raf = embedded("rafdb", "test")
    assert 7 not in raf.labels.tolist()
    start = time.perf_counter()
    again = embedded("ferplus", "train")
    assert time.perf_counter() - start < 5.0  # from the cache
    assert torch.equal(again.images, train.images)


def test_embedded_eeg_for_registry_names(tiny_embedded):
    deap = embedded("deap", "all")
    assert isinstance(deap, EEGSet) and deap.kind == "band_power" and deap.data.shape[1:] == (5, 32)
    assert deap.name == "deap" and deap.source.startswith("generated")
    eav = embedded("eav", "speaking")
    assert eav.data.shape == (5, 30, 200) and eav.sfreq == 100.0
    assert set(eav.labels) >= {"emotion", "task", "valence", "arousal"}
    assert (eav.labels["task"] == TASKS.index("speaking")).all()
    assert eav.meta["blendshapes"].shape == (5, 20, 53) and eav.meta["jaw"].shape == (5, 20, 3)
    sample = embedded("eeglab_sample", "all")
    assert sample.data.shape[:2] == (1, 30) and sample.sfreq == 128.0


def test_embedded_rejects_unknown_names_and_splits():
    with pytest.raises(ValueError, match="no embedded default"):
        embedded("imagenet", "train")
    with pytest.raises(ValueError, match="split"):
        embedded("ferplus", "all")


def test_cache_round_trip_and_corrupt_file(tmp_path, small):
    path = tmp_path / "set.pt"
    save_set(small, path)
    back = load_set(path)
    assert torch.equal(back.images, small.images) and back.class_names == small.class_names
    assert np.array_equal(back.meta["landmarks"], small.meta["landmarks"])
    assert back.meta["blendshape_names"] == small.meta["blendshape_names"]
    calls = []

    def build():
        calls.append(1)
        return small

    gen.cached("unit", {"a": 1}, build)
    cache_file = next((gen.default_cache_dir() / "generated").glob("unit-*.pt"))
    cache_file.write_bytes(b"truncated")
    gen.cached("unit", {"a": 1}, build)
    assert len(calls) == 2  # the corrupt cache was rebuilt, not trusted


def test_paired_sequences_share_one_trajectory():
    p = generate_paired(n_subjects=1, trials_per_emotion=1, seconds=1.0, size=32, seed=1)
    n = len(EAV_CLASSES)
    assert p.eeg.shape == (n, 30, 100) and p.frames.shape == (n, 10, 1, 32, 32) and p.frames.dtype == np.uint8
    assert p.blendshapes.shape == (n, 10, 53) and p.jaw.shape == (n, 10, 3)
    jaw_cols = [p.blendshape_names.index(s) for s in ("jawOpen", "jawLeft", "jawRight", "jawForward")]
    assert np.abs(p.blendshapes[..., jaw_cols]).max() == 0
    assert list(p.emotion) == [0, 1, 2, 3, 4] and (p.task == TASKS.index("speaking")).all()
    assert np.allclose(p.valence, [CIRCUMPLEX_VA[EAV_CLASSES[e]][0] for e in p.emotion])
    # frames follow the trajectory: frames differ where the jaw moves
    frame_change = np.abs(np.diff(p.frames.astype(float), axis=1)).mean(axis=(2, 3, 4))
    jaw_change = np.abs(np.diff(p.jaw[..., 0], axis=1))
    assert np.corrcoef(frame_change.ravel(), jaw_change.ravel())[0, 1] > 0.5
    eegset = p.to_eegset("eav", "all")
    assert eegset.meta["frames"] is p.frames and len(eegset) == n
    both = generate_paired(n_subjects=1, trials_per_emotion=1, seconds=2.0, tasks=TASKS, render=False, seed=1)
    speaking, listening = both.task == 1, both.task == 0
    assert both.frames is None
    assert both.jaw[speaking, :, 0].std() > 2 * both.jaw[listening, :, 0].std()  # talking only when speaking


def test_coupling_controls_emg_to_face_locking():
    from scipy.signal import butter, sosfiltfilt

    def locking(coupling: float) -> float:
        p = generate_paired(n_subjects=1, trials_per_emotion=2, seconds=4.0, render=False, coupling=coupling, seed=2)
        temporal = [p.ch_names.index(c) for c in ("T7", "T8", "FC5", "FC6", "F7", "F8")]
        sos = butter(4, [20, 45], btype="band", fs=p.sfreq, output="sos")
        envelope = np.abs(sosfiltfilt(sos, p.eeg[:, temporal], axis=-1)).mean(1)
        kernel = np.ones(20) / 20
        envelope = np.stack([np.convolve(e, kernel, mode="same") for e in envelope])
        return float(np.corrcoef(envelope.ravel(), p.face_actions[..., 0].ravel())[0, 1])

    assert locking(5.0) > 0.5
    assert locking(0.0) < 0.3


def test_paired_real_background_and_bad_input():
    p = generate_paired(n_subjects=1, trials_per_emotion=1, seconds=1.0, render=False,
                        background=np.zeros((5, 30, 100)), coupling=1.0, seed=0)
    assert p.eeg.shape == (5, 30, 100) and "background given" in p.source
    with pytest.raises(GenerationError, match="background"):
        generate_paired(n_subjects=1, trials_per_emotion=1, seconds=1.0, render=False,
                        background=np.zeros((4, 30, 100)))
    with pytest.raises(GenerationError, match="sfreq / fps"):
        generate_paired(sfreq=100.0, fps=30.0, render=False)
    with pytest.raises(GenerationError, match="coupling"):
        generate_paired(coupling=-1.0, render=False)
    with pytest.raises(GenerationError, match="tasks"):
        generate_paired(tasks=("singing",), render=False)
