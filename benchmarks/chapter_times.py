"""Wall time of each chapter in one profile, on a fresh kernel and an empty runs folder.

This is how the budgets in the README are checked (smoke < 2 min, quick <= 30 min per chapter): a
benchmark, not a timed test. Every chapter runs through :func:`affectlab.book.execute_chapter` (the
same papermill path as ``make book``) with ``AFFECTLAB_RUNS`` pointed at a new temporary folder, so
nothing is loaded from an earlier run; decoded-dataset tensor caches are kept (they are built once per
machine). The load average before and after each chapter is recorded: other jobs on the machine
slow the chapters down and the numbers are only comparable at similar load. The executed notebooks
and their results files are kept (``--chapters-dir``, default ``book/chapters``, the folder ``make
book`` writes; both are git-ignored), so a timing run's numbers can be read afterwards.

Usage::

    python benchmarks/chapter_times.py --profile smoke --out benchmarks/chapter_times_smoke.json
    python benchmarks/chapter_times.py --profile quick --only 02_dcnn_hierarchy --out /tmp/t.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from affectlab.book import REPO, chapter_sources, execute_chapter
from affectlab.config import PROFILES, check_profile
from affectlab.train import cpu_info

BUDGET_SECONDS = {"smoke": 120.0, "quick": 1800.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke", help=f"one of {PROFILES}")
    parser.add_argument("--only", nargs="*", default=None, help="chapter stems, e.g. 01_neurogaze_distill")
    parser.add_argument("--data-root", default=os.environ.get("AFFECTLAB_DATA", ""))
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    parser.add_argument("--chapters-dir", type=Path, default=REPO / "book" / "chapters",
                        help="where the executed notebooks and results files go (default: book/chapters)")
    return parser.parse_args(argv)


def load_average() -> float:
    """The 1-minute load average (number of runnable processes), or NaN where unavailable."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = check_profile(args.profile)
    sources = chapter_sources()
    if args.only:
        unknown = sorted(set(args.only) - {s.stem for s in sources})
        if unknown:
            raise SystemExit(f"--only: no chapter named {unknown}; chapters: {[s.stem for s in sources]}")
        sources = [s for s in sources if s.stem in args.only]
    budget = BUDGET_SECONDS.get(profile)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for source in sources:
            runs = Path(scratch) / f"runs_{source.stem}"
            os.environ["AFFECTLAB_RUNS"] = str(runs)
            before = load_average()
            _, seconds = execute_chapter(source, args.chapters_dir, profile, args.data_root or None)
            row = {"chapter": source.stem, "seconds": round(seconds, 1), "load_before": before,
                   "load_after": load_average(), "within_budget": None if budget is None else seconds <= budget}
            rows.append(row)
            print(f"{source.stem}: {seconds:.1f} s ({profile}; load {before:.2f} -> {row['load_after']:.2f})",
                  flush=True)
    result = {
        "profile": profile,
        "data_root": args.data_root or "(embedded default)",
        "budget_seconds": budget,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    **cpu_info()},
        "chapters": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
