"""Execute the chapters with papermill and build the Jupyter Book (which never re-executes).

``python -m affectlab.book --profile quick --build`` runs every ``notebooks/NN_name.ipynb`` on a fresh
kernel with the parameters ``PROFILE``, ``DATA_ROOT`` and ``SEED`` injected, writes the executed copies
into ``book/chapters/``, writes ``book/results.md`` (one table of every chapter's recorded headline
numbers, read from ``book/chapters/NN_name.results.json``) and ``book/_toc.yml`` (the introduction, the
results page, then the chapters that exist), and builds the HTML book into ``book/_build/html``.
``make book`` and the notebook tests call this module.

While a chapter runs, ``AFFECTLAB_RESULTS_DIR`` points at the output folder, so
:class:`affectlab.reporting.ResultsRecorder` writes the results file beside the executed notebook,
and a progress bar on stderr shows the chapter, the cell of how many, the elapsed time and an ETA.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from affectlab.config import PROFILES, ConfigError, check_profile
from affectlab.reporting import _atomic_write_text, ci_cell, read_results

REPO = Path(__file__).resolve().parents[2]
KERNEL = "affectlab"
RESULTS_ENV = "AFFECTLAB_RESULTS_DIR"
RESULTS_PAGE = "results"


def chapter_sources(notebooks_dir: Path = REPO / "notebooks") -> list[Path]:
    """The paired ``NN_name.py`` chapter sources, in chapter order."""
    sources = sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.py"))
    if not sources:
        raise FileNotFoundError(f"no chapters (NN_name.py) found in {notebooks_dir}")
    return sources


def _notebook_from_source(source: Path, work_dir: Path) -> Path:
    """The chapter's ``.py`` (the paired source of truth) as an ``.ipynb`` in ``work_dir``.

    The user's paired ``notebooks/NN_name.ipynb`` is never rewritten by a batch run.
    """
    import jupytext

    ipynb = work_dir / f"{source.stem}.ipynb"
    jupytext.write(jupytext.read(source), ipynb)
    return ipynb


def execute_chapter(
    source: Path,
    out_dir: Path,
    profile: str,
    data_root: str | None = None,
    seed: int = 0,
    kernel: str = KERNEL,
    progress: bool = True,
) -> tuple[Path, float]:
    """Run one chapter with papermill; returns the executed notebook path and seconds taken.

    The kernel runs with ``AFFECTLAB_RESULTS_DIR=out_dir`` (the chapter's results file lands beside
    its executed notebook). With ``progress``, a bar on stderr shows ``<chapter>: cell i/N``, the
    elapsed time and an ETA (papermill's tqdm over cells; stdout and the notebook stay clean).
    """
    import papermill

    check_profile(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{source.stem}.ipynb"
    parameters = {"PROFILE": profile, "DATA_ROOT": data_root or "", "SEED": seed}
    bar = {"desc": source.stem, "file": sys.stderr, "mininterval": 1.0, "dynamic_ncols": True}
    previous = os.environ.get(RESULTS_ENV)
    os.environ[RESULTS_ENV] = str(out_dir.resolve())  # the kernel inherits the environment
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as work_dir:
            papermill.execute_notebook(
                str(_notebook_from_source(source, Path(work_dir))),
                str(output),
                parameters=parameters,
                kernel_name=kernel,
                cwd=str(REPO),
                progress_bar=bar if progress else False,
                log_output=False,
                request_save_on_cell_execute=False,
            )
    finally:
        if previous is None:
            os.environ.pop(RESULTS_ENV, None)
        else:
            os.environ[RESULTS_ENV] = previous
    return output, time.perf_counter() - start


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip() or "-"


def _digits(value: float) -> int:
    magnitude = abs(value)
    return 1 if magnitude >= 10 else 2 if magnitude >= 1 else 3


def _ours(number: dict[str, Any]) -> str:
    value, ci, unit = number["value"], number["ci"], number.get("unit") or ""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return _cell(value)
    low, high = ci if ci else (float("nan"), float("nan"))
    return ci_cell(value, low, high, digits=_digits(value), unit=f" {unit}" if unit else "")


def _paper_within(number: dict[str, Any]) -> str:
    """Whether the paper's number lies inside our CI: "yes", "no (ours lower)", "no (ours higher)",
    or "-" when either is missing (a non-numeric paper value is not compared)."""
    paper, ci = number.get("paper"), number["ci"]
    if not ci or not isinstance(paper, (int, float)) or isinstance(paper, bool):
        return "-"
    if ci[0] <= paper <= ci[1]:
        return "yes"
    return "no (ours lower)" if ci[1] < paper else "no (ours higher)"


def results_page(chapters_dir: Path, chapters: list[str]) -> str:
    """The Markdown of the book's results page: ONE table of every chapter's recorded headline
    numbers (ours with CI and unit, n, seeds, data source, the paper's number where given, whether
    it lies in our CI), read with :func:`affectlab.reporting.read_results` from
    ``<chapters_dir>/<chapter>.results.json``; a chapter without a results file is listed as not run.
    A malformed results file raises (naming it) rather than being left out."""
    header = ("| chapter | number | ours [95 % CI] | n | seeds | data | paper | paper in our CI |\n"
              "|---|---|---|---|---|---|---|---|")
    rows, runs = [], []
    for chapter in chapters:
        path = chapters_dir / f"{chapter}.results.json"
        if not path.is_file():
            rows.append(f"| {_cell(chapter)} | - | not run | - | - | - | - | - |")
            runs.append(f"- `{chapter}`: not run (no `{path.name}`)")
            continue
        results = read_results(path)
        runs.append(f"- `{chapter}`: profile `{results['profile']}`, seed {results['seed']}, "
                    f"{results['minutes']} min, data: {_cell(results['data'])}")
        if not results["numbers"]:
            rows.append(f"| {_cell(chapter)} | - | no numbers recorded | - | - | - | - | - |")
        for key, number in results["numbers"].items():
            seeds = ", ".join(str(s) for s in number.get("seeds") or []) or "-"
            n = number.get("n")
            paper = number.get("paper")
            rows.append(
                f"| {_cell(chapter)} | `{key}` | {_cell(_ours(number))} | {'-' if n is None else n} | {seeds} | "
                f"{_cell(number.get('source') or results['data'])} | {'-' if paper is None else _cell(paper)} | "
                f"{_paper_within(number)} |"
            )
    intro = (
        "# Recorded results\n\n"
        "Every headline number the chapters recorded in this build, in one table, read from the "
        "`book/chapters/NN_name.results.json` file each chapter writes beside its executed notebook "
        "(the format is in the README, *Recorded results*). \"ours\" is our value with its 95 % "
        "confidence interval where one applies; \"paper\" is the paper's own number for the same "
        "quantity where the chapter gives one. Numbers from the `smoke` profile only prove the code "
        "runs; read each chapter for what its numbers can and cannot show.\n"
    )
    return "\n".join([intro, header, *rows, "", "Runs:", "", *runs, ""])


def write_results_page(book_dir: Path, chapters: list[str]) -> Path:
    """Write ``<book_dir>/results.md`` (see :func:`results_page`) atomically; returns its path."""
    page = book_dir / f"{RESULTS_PAGE}.md"
    _atomic_write_text(page, results_page(book_dir / "chapters", chapters))
    return page


def write_toc(book_dir: Path, chapters: list[Path]) -> Path:
    """Write ``_toc.yml``: the introduction, the results page (when ``results.md`` exists), then
    every executed chapter present."""
    lines = ["format: jb-book", "root: intro", "chapters:"]
    if (book_dir / f"{RESULTS_PAGE}.md").is_file():
        lines.append(f"  - file: {RESULTS_PAGE}")
    lines += [f"  - file: chapters/{c.stem}" for c in chapters]
    toc = book_dir / "_toc.yml"
    toc.write_text("\n".join(lines) + "\n")
    return toc


def prepare_book(book_dir: Path, chapters: list[str] | None = None) -> Path:
    """Write the results page (over ``chapters``, default every chapter source) and the TOC (over the
    executed notebooks in ``<book_dir>/chapters``); returns the TOC path."""
    chapters = chapters if chapters is not None else [s.stem for s in chapter_sources()]
    write_results_page(book_dir, chapters)
    return write_toc(book_dir, sorted((book_dir / "chapters").glob("[0-9][0-9]_*.ipynb")))


def build_book(book_dir: Path, warnings_as_errors: bool = True) -> Path:
    """Build the HTML book with Jupyter Book 1.x; returns the path of ``index.html``."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe), "build", str(book_dir), "--builder", "html"]
    if warnings_as_errors:
        cmd += ["-W", "-n", "--keep-going"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"jupyter-book build {book_dir} failed (exit {result.returncode}):\n"
            f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
        )
    index = book_dir / "_build" / "html" / "index.html"
    if not index.is_file():
        raise RuntimeError(f"jupyter-book build finished but {index} is missing")
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m affectlab.book", description=__doc__)
    parser.add_argument("--profile", default="quick", help=f"one of {PROFILES}")
    parser.add_argument("--data-root", default=os.environ.get("AFFECTLAB_DATA", ""))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None, help="chapter stems to run, e.g. 00_data")
    parser.add_argument("--book-dir", type=Path, default=REPO / "book")
    parser.add_argument("--build", action="store_true", help="build the HTML book afterwards")
    parser.add_argument("--no-execute", action="store_true",
                        help="execute nothing; build from the executed chapters already in BOOK_DIR/chapters")
    args = parser.parse_args(argv)
    try:
        check_profile(args.profile)
    except ConfigError as exc:
        parser.error(str(exc))
    out_dir = args.book_dir / "chapters"
    sources = chapter_sources()
    if args.only:
        unknown = sorted(set(args.only) - {s.stem for s in sources})
        if unknown:
            parser.error(f"--only: no chapter named {unknown}; chapters: {[s.stem for s in sources]}")
        sources = [s for s in sources if s.stem in set(args.only)]
    if args.no_execute:
        sources = []
    for number, source in enumerate(sources, 1):
        print(f"[{number}/{len(sources)}] executing {source.name} (profile {args.profile}) ...", flush=True)
        _, seconds = execute_chapter(source, out_dir, args.profile, args.data_root or None, args.seed)
        print(f"  done in {seconds / 60:.1f} min", flush=True)
    prepare_book(args.book_dir, [s.stem for s in chapter_sources()])
    if args.build:
        shutil.rmtree(args.book_dir / "_build", ignore_errors=True)
        index = build_book(args.book_dir)
        print(f"book built: {index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
