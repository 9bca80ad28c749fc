"""The shared FERPlus teacher (affectlab.fer_teacher, issue 14 item 2): train-or-load, selection on
FERPlus valid, logits cached once per face set in row order, and its parameter checks. On the
embedded generated faces with a seconds-long budget (what is tested is the plumbing, not accuracy)."""

from __future__ import annotations

import pytest
import torch

from affectlab import fer_teacher
from affectlab.config import RunConfig
from affectlab.data.generate import embedded


def test_train_or_load_fer_teacher_and_cached_logits(monkeypatch, tmp_path):
    monkeypatch.setenv("AFFECTLAB_RUNS", str(tmp_path))
    run = RunConfig(profile="smoke", data_root=None, seed=0, device=torch.device("cpu"))
    teacher = fer_teacher.train_or_load_fer_teacher(run, budget_s=2.0, seed=0)
    assert teacher.fit.run_dir.name.startswith(fer_teacher.FER_TEACHER_NAME)
    assert teacher.fit.monitor == "macro_f1" and teacher.fit.best_epoch is not None  # chosen on FERPlus valid
    assert "val_macro_f1" in teacher.fit.history.columns
    assert "FERPlus valid" in teacher.description and "2 s budget" in teacher.description
    again = fer_teacher.train_or_load_fer_teacher(run, budget_s=2.0, seed=0)
    assert again.fit.loaded_from_cache and again.fit.run_dir == teacher.fit.run_dir

    faces = embedded("ferplus", "test")
    logits = fer_teacher.teacher_logits(again, faces)
    assert logits.shape == (len(faces), 8) and logits.dtype == torch.float32
    cached = list(again.fit.run_dir.glob("logits-*.pt"))
    assert len(cached) == 1
    # row order: the logits of a reversed face set are the reversed logits (computed, then cached again)
    reversed_faces = faces.subset(torch.arange(len(faces) - 1, -1, -1))
    torch.testing.assert_close(fer_teacher.teacher_logits(again, reversed_faces), logits.flip(0), rtol=1e-4, atol=1e-4)
    assert len(list(again.fit.run_dir.glob("logits-*.pt"))) == 2
    torch.testing.assert_close(fer_teacher.teacher_logits(again, faces), logits)  # read from the cache


@pytest.mark.parametrize("budget", [0, -5, True, "480"])
def test_fer_teacher_rejects_a_bad_budget(budget):
    run = RunConfig(profile="smoke", data_root=None, seed=0, device=torch.device("cpu"))
    with pytest.raises(ValueError, match="parameter budget_s"):
        fer_teacher.train_or_load_fer_teacher(run, budget_s=budget)
