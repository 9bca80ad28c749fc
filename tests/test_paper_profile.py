"""The paper profile must not rot (foundation issue, item 7): each chapter's *paper* configuration
(true model sizes) runs one optimiser step on a handful of generated items on the CPU, through the
same code path the chapter uses (``paper_dry_run`` in each chapter package)."""

from __future__ import annotations

import importlib
import math

import pytest

CHAPTERS = {
    "01_neurogaze_distill": "affectlab.chapters.neurogaze",
    "02_dcnn_hierarchy": "affectlab.chapters.hierarchy",
    "03_eeg2face": "affectlab.chapters.eeg2face",
    "04_poster_var": "affectlab.chapters.poster_var",
}


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_paper_profile_dry_run(chapter, tmp_path, monkeypatch):
    monkeypatch.setenv("AFFECTLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("AFFECTLAB_CACHE", str(tmp_path / "cache"))
    module = importlib.import_module(CHAPTERS[chapter])
    report = module.paper_dry_run(max_steps=1, max_items=4)
    assert report["profile"] == "paper"
    assert report["steps"] >= 1, report
    assert report["losses"], report
    assert all(math.isfinite(v) for v in report["losses"].values()), report
    assert report["models"], "the dry run names the paper-size models it built"
