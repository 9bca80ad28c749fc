"""Face loaders on fixtures in each dataset's real format, and on the real data root."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affectlab.data import faces, taxonomy
from affectlab.data.manifest import read_manifest
from affectlab.data.registry import load

from fixtures_faces import (
    CKPLUS_FIXTURE,
    VOTE_CASES,
    ferplus_rows,
    make_affectnet,
    make_affectnet_mini,
    make_ckplus,
    make_disfa,
    make_fer2013_labels,
    make_ferplus_kaggle,
    make_ferplus_png,
    make_image_csv,
    make_kdef,
    make_rafdb,
)


# --- FERPlus votes -> labels -------------------------------------------------------------------


def test_ferplus_targets_follow_majority_voting_rules():
    votes = np.array([case[0] for case in VOTE_CASES])
    out = faces.ferplus_targets(votes)
    assert out["labels"].tolist() == [case[1] for case in VOTE_CASES]
    assert out["plurality_labels"].tolist() == [case[2] for case in VOTE_CASES]
    soft = out["soft_labels"]
    assert soft.shape == (len(VOTE_CASES), 8)
    torch.testing.assert_close(soft.sum(1), torch.ones(len(VOTE_CASES)))
    # first case: 6 neutral, 1 surprise, 1 sadness of 8 emotion votes (the 2 unknown dropped)
    torch.testing.assert_close(soft[0], torch.tensor([6, 0, 1, 1, 0, 0, 0, 0]) / 8.0)
    # all-unknown image: uniform row, flagged
    assert out["no_emotion_votes"].tolist() == [False, False, True, False, False, False]
    torch.testing.assert_close(soft[2], torch.full((8,), 1 / 8))


def test_ferplus_png_layout(tmp_path):
    rows = ferplus_rows((6, 3, 3))
    base = make_ferplus_png(tmp_path, rows)
    manifest = read_manifest("ferplus")
    train = faces.load_ferplus(base, "train", manifest)
    assert train.images.shape == (6, 1, 48, 48) and train.images.dtype == torch.uint8
    assert train.class_names == taxonomy.FERPLUS_CLASSES
    expected = [row for row in rows if row["split"] == "train"]
    assert train.meta["file_names"] == [row["name"] for row in expected]
    assert np.array_equal(train.images[2, 0].numpy(), expected[2]["pixels"])
    assert train.labels.tolist() == [VOTE_CASES[i % len(VOTE_CASES)][1] for i in range(6)]
    assert train.meta["votes"].shape == (6, 10)
    valid = faces.load_ferplus(base, "valid", manifest)
    assert len(valid) == 3 and valid.split == "valid" and valid.source.startswith("real:")
    kept = faces.labelled_only(train)
    assert (kept.labels >= 0).all() and len(kept) == int((train.labels >= 0).sum())


def test_ferplus_kaggle_layout_matches_png_layout(tmp_path):
    rows = ferplus_rows((6, 3, 3))
    png = faces.load_ferplus(make_ferplus_png(tmp_path / "a", rows), "train", read_manifest("ferplus"))
    kaggle = faces.load_ferplus(make_ferplus_kaggle(tmp_path / "b", rows), "train", read_manifest("ferplus"))
    # the row without image name and the repeated name are skipped
    assert kaggle.meta["file_names"] == png.meta["file_names"]
    assert torch.equal(kaggle.images, png.images)
    assert torch.equal(kaggle.labels, png.labels)
    torch.testing.assert_close(kaggle.soft_labels, png.soft_labels)
    test = faces.load_ferplus(tmp_path / "b" / "ferplus", "test", read_manifest("ferplus"))
    assert len(test) == 3


def test_fer2013_png_layout_keeps_reliable_rows(tmp_path):
    rows = ferplus_rows((6, 3, 3))
    base = make_ferplus_png(tmp_path, rows)
    statuses = ["ok"] * len(rows)
    statuses[1] = "dup_same_label"
    statuses[2] = "dup_conflict:2/4"
    rows[3] = {**rows[3], "emotion": -1}
    make_fer2013_labels(base, rows, statuses)
    out = faces.load_fer2013(base, "train", read_manifest("fer2013"))
    assert out.class_names == taxonomy.FER2013_CLASSES
    assert out.meta["file_names"] == [rows[i]["name"] for i in (0, 1, 4, 5)]
    assert out.labels.tolist() == [rows[i]["emotion"] for i in (0, 1, 4, 5)]
    assert out.meta["ferplus_labels"].tolist() == [
        taxonomy.FERPLUS_INDEX[taxonomy.FER2013_TO_FERPLUS[rows[i]["emotion"]]] for i in (0, 1, 4, 5)
    ]
    assert np.array_equal(out.images[2, 0].numpy(), rows[4]["pixels"])
    assert len(faces.load_fer2013(base, "private_test", read_manifest("fer2013"))) == 3


def test_fer2013_kaggle_layout(tmp_path):
    rows = ferplus_rows((4, 2, 2))
    base = make_ferplus_kaggle(tmp_path, rows, extra_rows=False)
    out = faces.load_fer2013(base, "public_test", read_manifest("fer2013"))
    expected = [r for r in rows if r["usage"] == "PublicTest"]
    assert out.labels.tolist() == [r["emotion"] for r in expected]
    assert np.array_equal(out.images[1, 0].numpy(), expected[1]["pixels"])


def test_ckplus_identity_and_labels(tmp_path):
    base = make_ckplus(tmp_path)
    out = faces.load_ckplus(base, "all", read_manifest("ckplus"))
    n = sum(len(v) for v in CKPLUS_FIXTURE.values())
    assert out.images.shape == (n, 1, 48, 48)
    assert out.identity_names == ("S010", "S011", "S012")
    first = out.meta["file_names"].index("anger/S010_004_00000017.png")
    assert out.labels[first] == taxonomy.FERPLUS_INDEX["anger"]
    assert out.identity_names[out.identity[first]] == "S010"
    assert out.meta["sequence"][first] == 4 and out.meta["frame"][first] == 17
    happy = [i for i, f in enumerate(out.meta["file_names"]) if f.startswith("happy/")]
    assert all(out.labels[i] == taxonomy.FERPLUS_INDEX["happiness"] for i in happy)
    assert out.class_counts()["neutral"] == 0


def test_generic_image_csv(tmp_path):
    csv_path = make_image_csv(tmp_path)
    out = faces.load_image_csv(csv_path, size=32)
    assert out.images.shape == (3, 1, 32, 32)
    assert out.labels.tolist() == [1, 3, 7]  # happy -> happiness, int 3, contempt
    assert out.identity_names == ("p1", "p2") and out.identity.tolist() == [0, 1, 0]
    torch.testing.assert_close(out.valence, torch.tensor([0.8, -0.6, -0.5]))
    assert out.arousal is not None


def test_affectnet_mini_layout(tmp_path):
    base = make_affectnet_mini(tmp_path)
    out = faces.load_affectnet_mini(base, "valid", read_manifest("affectnet_mini"))
    assert out.images.shape == (3, 1, 48, 48)
    # labels 1, 2, 3 in class_map (happy, sad, surprise) -> FERPlus indices
    assert out.labels.tolist() == [taxonomy.FERPLUS_INDEX[c] for c in ("happiness", "sadness", "surprise")]
    torch.testing.assert_close(out.valence, torch.tensor([0.0, 0.1, 0.2]))


def test_affectnet_layout_drops_non_emotions(tmp_path):
    base = make_affectnet(tmp_path)
    out = faces.load_affectnet(base, "train", read_manifest("affectnet"))
    assert out.labels.tolist() == [taxonomy.FERPLUS_INDEX[c] for c in ("happiness", "contempt", "anger")]
    assert out.meta["affectnet_expression"].tolist() == [1, 7, 6]
    torch.testing.assert_close(out.valence, torch.tensor([-0.25, 0.0, 0.5]))
    assert out.images.shape == (3, 1, 48, 48)


def test_rafdb_layout(tmp_path):
    base = make_rafdb(tmp_path, n_train=4, n_test=2)
    manifest = read_manifest("rafdb")
    train = faces.load_rafdb(base, "train", manifest)
    test = faces.load_rafdb(base, "test", manifest)
    assert len(train) == 4 and len(test) == 2
    codes = [(k % 7) + 1 for k in range(1, 5)]
    assert train.labels.tolist() == [taxonomy.FERPLUS_INDEX[taxonomy.RAFDB_TO_FERPLUS[c]] for c in codes]


def test_kdef_frontal_split(tmp_path):
    base = make_kdef(tmp_path, people=("F01", "M02"), poses=("S", "HL"))
    manifest = read_manifest("kdef")
    frontal = faces.load_kdef(base, "frontal", manifest)
    everything = faces.load_kdef(base, "all", manifest)
    assert len(frontal) == 2 * 2 * 7 and len(everything) == 2 * len(frontal)
    assert set(frontal.meta["pose"]) == {"S"}
    assert frontal.identity_names == ("F01", "M02")
    assert frontal.class_counts()["contempt"] == 0 and frontal.class_counts()["fear"] == 4


def test_disfa_frames_and_aus(tmp_path):
    base = make_disfa(tmp_path, frames=6)
    manifest = read_manifest("disfa")
    manifest["params"]["frame_step"] = 2
    out = faces.load_disfa(base, "all", manifest)
    assert len(out) == 2 * 3 and (out.labels == -1).all()
    assert out.meta["frame"].tolist() == [1, 3, 5, 1, 3, 5]
    assert out.meta["au_intensity"].shape == (6, 12)
    assert out.meta["au_intensity"][1, 0] == (3 + 1) % 6  # frame 3, AU1


# --- real data ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ferplus_real(shared_root, tmp_path_factory):
    """All three FERPlus splits loaded once per session, cached as tensors in the session's temporary
    cache (a session fixture runs before the per-test cache isolation of conftest, so set it here)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AFFECTLAB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield {split: load("ferplus", root=shared_root, split=split) for split in ("train", "valid", "test")}


def test_real_ferplus_counts(ferplus_real):
    counts = {split: len(fs) for split, fs in ferplus_real.items()}
    assert counts == {"train": 28558, "valid": 3579, "test": 3573}
    majority = {split: int((fs.labels >= 0).sum()) for split, fs in ferplus_real.items()}
    assert majority == {"train": 25045, "valid": 3191, "test": 3137}
    for fs in ferplus_real.values():
        assert fs.images.shape[1:] == (1, 48, 48)
        torch.testing.assert_close(fs.soft_labels.sum(1), torch.ones(len(fs)))
    assert ferplus_real["train"].meta["file_names"][0] == "fer0000000.png"


def test_real_ferplus_second_load_is_cached(shared_root, ferplus_real):
    again = load("ferplus", root=shared_root, split="valid")
    assert torch.equal(again.images, ferplus_real["valid"].images)
    assert again.meta["file_names"] == ferplus_real["valid"].meta["file_names"]


def test_real_ckplus(shared_root):
    out = load("ckplus", root=shared_root, split="all")
    assert len(out) == 981 and len(out.identity_names) == 118
    assert out.class_counts() == {
        "neutral": 0, "happiness": 207, "surprise": 249, "sadness": 84, "anger": 135, "disgust": 177,
        "fear": 75, "contempt": 54,
    }


def test_real_fer2013_private_test(shared_root):
    out = load("fer2013", root=shared_root, split="private_test")
    assert len(out) == 3563 and out.class_names == taxonomy.FER2013_CLASSES
    assert set(out.labels.unique().tolist()) == set(range(7))
