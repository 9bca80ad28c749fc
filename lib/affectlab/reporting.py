"""What every chapter reports, written once: "value [lo, hi]" cells, ours-beside-paper tables,
the deviations table, majority/chance reference rows, and :class:`ResultsRecorder`, which puts each
headline number into the text *and* into ``book/chapters/NN_name.results.json``.

The results file (one per chapter, rewritten atomically after every recorded number)::

    {"chapter": "01_neurogaze_distill", "profile": "quick", "seed": 0, "data": "data root ...",
     "minutes": 27.5,
     "numbers": {"b0.test.accuracy": {"value": 74.1, "ci": [72.6, 75.6], "unit": "%", "n": 3137,
                                      "seeds": [0, 1], "source": "real: ferplus/FER2013Test",
                                      "paper": 78.2}}}

Keys are lower-case dotted names; ``ci`` is null where none applies; ``paper`` (optional) is the
paper's own number for the same quantity, shown beside ours on the book's first page.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "ci_cell",
    "ci_text",
    "deviations_table",
    "ours_beside_paper",
    "reference_rows",
    "ResultsRecorder",
    "results_dir",
    "read_results",
    "RESULT_KEY",
]

RESULT_KEY = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
DEVIATION_COLUMNS = ("aspect", "paper", "here", "why")


def _finite(*values: Any) -> bool:
    try:
        return all(v is not None and math.isfinite(float(v)) for v in values)
    except (TypeError, ValueError):
        return False


def ci_text(low: float, high: float, digits: int = 2) -> str:
    """``"[lo, hi]"``, or ``"(no CI)"`` when either end is missing."""
    return f"[{low:.{digits}f}, {high:.{digits}f}]" if _finite(low, high) else "(no CI)"


def ci_cell(value: float, low: float = float("nan"), high: float = float("nan"), digits: int = 2,
            unit: str = "") -> str:
    """``"0.12 [0.08, 0.15]"`` (with ``unit`` after the value, e.g. ``" %"``); ``"-"`` for a missing
    value; the value alone when the interval is missing."""
    if not _finite(value):
        return "-"
    text = f"{value:.{digits}f}{unit}"
    return f"{text} {ci_text(low, high, digits)}" if _finite(low, high) else text


def deviations_table(rows: Sequence[Mapping[str, str] | Sequence[str]]) -> pd.DataFrame:
    """The chapter's deviations from its paper: one row per deviation with columns
    ``aspect`` (what), ``paper`` (what the paper does), ``here`` (what this run does), ``why``."""
    records = []
    for i, row in enumerate(rows):
        if isinstance(row, Mapping):
            missing = [c for c in DEVIATION_COLUMNS if c not in row]
            if missing:
                raise ValueError(f"deviation row {i} lacks {missing}; columns are {DEVIATION_COLUMNS}")
            records.append({c: str(row[c]) for c in DEVIATION_COLUMNS})
        else:
            if len(row) != len(DEVIATION_COLUMNS):
                raise ValueError(f"deviation row {i} has {len(row)} fields; expected {DEVIATION_COLUMNS}")
            records.append(dict(zip(DEVIATION_COLUMNS, map(str, row))))
    return pd.DataFrame(records, columns=list(DEVIATION_COLUMNS))


def ours_beside_paper(ours: Mapping[str, str], paper: Mapping[str, Any], ours_label: str = "ours",
                      paper_label: str = "paper", index_name: str = "row") -> pd.DataFrame:
    """One table, our cell beside the paper's for each row name (``"-"`` where the paper has none)."""
    names = list(ours) + [k for k in paper if k not in ours]
    frame = pd.DataFrame({ours_label: [ours.get(k, "-") for k in names],
                          paper_label: [paper.get(k, "-") for k in names]}, index=names)
    frame.index.name = index_name
    return frame


def reference_rows(y_true: Any, class_names: Sequence[str], scale: float = 100.0) -> pd.DataFrame:
    """The rows every accuracy table needs beside it: "always <majority class>" and uniform chance,
    with accuracy, macro-F1 and balanced accuracy (in % by default) on the same test labels."""
    from affectlab import metrics

    y = np.asarray(y_true.numpy() if hasattr(y_true, "numpy") else y_true).astype(np.int64)
    if len(y) == 0:
        raise ValueError("reference_rows: no test labels")
    present = np.unique(y)
    majority = int(np.bincount(y).argmax())
    always = np.full_like(y, majority)
    rows = {
        f"always '{class_names[majority]}' (majority)": {
            "accuracy": scale * metrics.accuracy(y, always),
            "macro_f1": scale * metrics.macro_f1(y, always, labels=present),
            "balanced_accuracy": scale * metrics.balanced_accuracy(y, always),
        },
        f"uniform chance ({len(present)} classes)": {
            "accuracy": scale / len(present),
            "macro_f1": float("nan"),
            "balanced_accuracy": scale / len(present),
        },
    }
    frame = pd.DataFrame(rows).T
    frame.index.name = "reference"
    return frame


def results_dir() -> Path:
    """Where results files go: ``$AFFECTLAB_RESULTS_DIR`` (set by ``affectlab.book``), else the
    repository's ``book/chapters`` when the package runs from a checkout, else ``./results``."""
    env = os.environ.get("AFFECTLAB_RESULTS_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    if (repo / "book" / "_config.yml").exists():
        return repo / "book" / "chapters"
    return Path.cwd() / "results"


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a results file is for every reader
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    return value


class ResultsRecorder:
    """Records a chapter's headline numbers (value, CI, unit, n, seeds, data source) and returns the
    sentence fragment for the text, so the number a reader sees is the number in the results file.

    >>> results = ResultsRecorder("01_neurogaze_distill", profile="quick", seed=0, data="real: ...")
    >>> results.record("b0.test.accuracy", 74.1, ci=(72.6, 75.6), unit="%", n=3137, seeds=[0, 1],
    ...                source="real: ferplus/FER2013Test", paper=78.2)
    '74.1 % [72.6, 75.6]'
    """

    def __init__(self, chapter: str, profile: str, seed: int, data: str,
                 out_dir: str | os.PathLike | None = None) -> None:
        if not re.fullmatch(r"\d\d_[a-z0-9_]+", chapter):
            raise ValueError(f"parameter chapter must look like 'NN_name'; got {chapter!r}")
        self.chapter = chapter
        self.profile = str(profile)
        self.seed = int(seed)
        self.data = str(data)
        self.path = Path(out_dir if out_dir is not None else results_dir()) / f"{chapter}.results.json"
        self.numbers: dict[str, dict[str, Any]] = {}
        self._started = time.monotonic()
        self._write()

    def record(self, key: str, value: float, ci: Sequence[float] | None = None, unit: str = "",
               n: int | None = None, seeds: Sequence[int] | None = None, source: str = "",
               paper: float | str | None = None, digits: int = 1) -> str:
        """Store one number under ``key`` (lower-case dotted) and return ``"value unit [lo, hi]"``."""
        if not isinstance(key, str) or not RESULT_KEY.match(key):
            raise ValueError(f"result key {key!r} must be lower-case dotted names (e.g. 'b0.test.accuracy')")
        if ci is not None:
            if len(ci) != 2:
                raise ValueError(f"result {key!r}: ci must be (low, high); got {ci!r}")
            ci = None if not _finite(*ci) else [float(ci[0]), float(ci[1])]
        self.numbers[key] = {
            "value": _plain(value),
            "ci": ci,
            "unit": unit,
            "n": None if n is None else int(n),
            "seeds": [int(s) for s in (seeds if seeds is not None else [self.seed])],
            "source": source or self.data,
            "paper": _plain(paper),
        }
        self._write()
        unit_text = f" {unit}" if unit else ""
        low, high = (ci if ci is not None else (float("nan"), float("nan")))
        return ci_cell(value, low, high, digits=digits, unit=unit_text)

    def as_dict(self) -> dict[str, Any]:
        return {"chapter": self.chapter, "profile": self.profile, "seed": self.seed, "data": self.data,
                "minutes": round((time.monotonic() - self._started) / 60.0, 2), "numbers": self.numbers}

    def _write(self) -> None:
        _atomic_write_text(self.path, json.dumps(self.as_dict(), indent=1, sort_keys=False) + "\n")


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check one ``NN_name.results.json`` (raises ValueError naming the file when malformed)."""
    p = Path(path)
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{p}: not a readable results file ({err})") from err
    for field in ("chapter", "profile", "seed", "data", "minutes", "numbers"):
        if field not in obj:
            raise ValueError(f"{p}: results file lacks the field {field!r}")
    for key, number in obj["numbers"].items():
        if not RESULT_KEY.match(key) or "value" not in number or "ci" not in number:
            raise ValueError(f"{p}: malformed number {key!r}")
    return obj


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` (UTF-8) through a temporary file and a rename, so a reader never
    sees a half-written file; creates the parent folder. Returns the path."""
    target = Path(path)
    _atomic_write_text(target, text)
    return target
