"""Every chapter runs top to bottom on a fresh kernel in the smoke profile, the paired files agree,
and the book built from the executed chapters has no warnings (``-W``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import jupytext
import pytest

from affectlab.book import build_book, chapter_sources, execute_chapter, write_toc

REPO = Path(__file__).resolve().parents[1]
SOURCES = chapter_sources(REPO / "notebooks")


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory) -> Path:
    """A copy of the book source with every chapter executed in the smoke profile."""
    book = tmp_path_factory.mktemp("book")
    for item in ("_config.yml", "intro.md"):
        shutil.copy(REPO / "book" / item, book / item)
    return book


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_paired_notebook_matches_source(source):
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.exists(), f"{source.name} has no paired {ipynb.name}: run jupytext --sync {source}"
    from_ipynb = jupytext.writes(jupytext.read(ipynb), fmt="py:percent")
    from_py = jupytext.writes(jupytext.read(source), fmt="py:percent")
    assert from_ipynb == from_py, f"{ipynb.name} and {source.name} differ: run jupytext --sync {source}"


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_chapter_runs_in_smoke_profile(source, smoke_book):
    data_root = os.environ.get("AFFECTLAB_DATA", "")
    output, seconds = execute_chapter(source, smoke_book / "chapters", "smoke", data_root or None)
    assert output.is_file()
    print(f"{source.stem}: {seconds:.1f} s in the smoke profile")


def test_book_builds_without_warnings(smoke_book):
    executed = sorted((smoke_book / "chapters").glob("*.ipynb"))
    if len(executed) != len(SOURCES):
        pytest.skip("a chapter failed to execute (see its test); the book build needs every chapter")
    write_toc(smoke_book, executed)
    index = build_book(smoke_book, warnings_as_errors=True)
    assert index.is_file()
