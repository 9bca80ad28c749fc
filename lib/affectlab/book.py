"""Execute the chapters with papermill and build the Jupyter Book (which never re-executes).

``python -m affectlab.book --profile quick --build`` runs every ``notebooks/NN_name.ipynb`` on a fresh
kernel with the parameters ``PROFILE``, ``DATA_ROOT`` and ``SEED`` injected, writes the executed copies
into ``book/chapters/``, writes ``book/_toc.yml`` listing the chapters that exist, and builds the HTML
book into ``book/_build/html``. ``make book`` and the notebook tests call this module.
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

from affectlab.config import PROFILES, ConfigError, check_profile

REPO = Path(__file__).resolve().parents[2]
KERNEL = "affectlab"


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
) -> tuple[Path, float]:
    """Run one chapter with papermill; returns the executed notebook path and seconds taken."""
    import papermill

    check_profile(profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{source.stem}.ipynb"
    parameters = {"PROFILE": profile, "DATA_ROOT": data_root or "", "SEED": seed}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work_dir:
        papermill.execute_notebook(
            str(_notebook_from_source(source, Path(work_dir))),
            str(output),
            parameters=parameters,
            kernel_name=kernel,
            cwd=str(REPO),
            progress_bar=False,
            log_output=False,
            request_save_on_cell_execute=False,
        )
    return output, time.perf_counter() - start


def write_toc(book_dir: Path, chapters: list[Path]) -> Path:
    """Write ``_toc.yml``: the introduction, then every executed chapter present."""
    lines = ["format: jb-book", "root: intro", "chapters:"]
    lines += [f"  - file: chapters/{c.stem}" for c in chapters]
    toc = book_dir / "_toc.yml"
    toc.write_text("\n".join(lines) + "\n")
    return toc


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
    for source in sources:
        print(f"executing {source.name} (profile {args.profile}) ...", flush=True)
        _, seconds = execute_chapter(source, out_dir, args.profile, args.data_root or None, args.seed)
        print(f"  done in {seconds / 60:.1f} min", flush=True)
    executed = sorted(out_dir.glob("[0-9][0-9]_*.ipynb"))
    write_toc(args.book_dir, executed)
    if args.build:
        shutil.rmtree(args.book_dir / "_build", ignore_errors=True)
        index = build_book(args.book_dir)
        print(f"book built: {index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
