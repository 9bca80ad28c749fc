"""Caches keyed by the code that produced them: ``config.code_fingerprint`` and the generated-data
cache (``affectlab.data.generate.cached``), which must never serve data from an older generator."""

from __future__ import annotations

import sys

import pytest
import torch

import affectlab.data.generate as gen
from affectlab.config import ConfigError, code_files, code_fingerprint
from affectlab.data.sets import FaceSet
from affectlab.data.taxonomy import FERPLUS_CLASSES


@pytest.fixture
def toy_package(tmp_path, monkeypatch):
    """``toypkg`` with ``a`` importing ``b`` inside a function (relative import), ``b`` importing
    ``c.helper`` (a function: the module ``c`` counts), and ``unused`` imported by nobody."""
    pkg = tmp_path / "toypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import json\n\n\ndef f():\n    from . import b\n    return b.g()\n")
    (pkg / "b.py").write_text("from toypkg.c import helper\n\n\ndef g():\n    return helper()\n")
    (pkg / "c.py").write_text("def helper():\n    return 1\n")
    (pkg / "unused.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield pkg
    for name in [m for m in sys.modules if m == "toypkg" or m.startswith("toypkg.")]:
        del sys.modules[name]


def test_code_files_follow_package_imports_only(toy_package):
    assert sorted(code_files("toypkg.a")) == ["toypkg.a", "toypkg.b", "toypkg.c"]  # not json, not unused


def test_code_fingerprint_changes_with_imported_source_only(toy_package):
    before = code_fingerprint("toypkg.a")
    assert code_fingerprint("toypkg.a") == before  # stable
    (toy_package / "unused.py").write_text("X = 2  # edited\n")
    assert code_fingerprint("toypkg.a") == before  # not imported by a: no effect
    (toy_package / "c.py").write_text("def helper():\n    return 2  # a changed helper two imports away\n")
    assert code_fingerprint("toypkg.a") != before


def test_code_fingerprint_rejects_a_name_that_is_not_a_module():
    with pytest.raises(ConfigError, match="'affectlab.nope' is not an importable Python source module"):
        code_fingerprint("affectlab.nope")


def test_generator_fingerprint_covers_the_face_model_and_renderer():
    files = code_files(*(["affectlab.data.generate"]
                         + [f"affectlab.data.generate.{m}" for m in ("faces", "eeg", "paired")]))
    assert {"affectlab.facemodel", "affectlab.render", "affectlab.data.generate.paired"} <= set(files)
    assert len(gen.generator_fingerprint()) == 16


def test_generated_cache_is_rebuilt_when_the_generator_code_changes(monkeypatch):
    stand_in = FaceSet(images=torch.zeros(2, 1, 4, 4, dtype=torch.uint8), labels=torch.tensor([0, 1]),
                       class_names=FERPLUS_CLASSES, name="unit", split="all", source="generated: unit")
    calls = []

    def build():
        calls.append(1)
        return stand_in

    gen.cached("unit-code", {"a": 1}, build)
    gen.cached("unit-code", {"a": 1}, build)
    assert len(calls) == 1  # same parameters, same code: loaded from the cache
    monkeypatch.setattr(gen, "generator_fingerprint", lambda: "an edited generator")
    again = gen.cached("unit-code", {"a": 1}, build)
    assert len(calls) == 2  # same parameters, new code: built again, not the old file
    assert torch.equal(again.images, stand_in.images)
    assert len(list((gen.default_cache_dir() / "generated").glob("unit-code-*.pt"))) == 2
