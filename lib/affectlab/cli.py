"""Command line: ``python -m affectlab data check [NAME] [--root DIR] [--deep] [--verbose]``.

``data check`` validates the data root against the manifests in ``data_manifests/`` and prints, per
dataset, whether it was found, the file counts against the expected ones and the checksum status.
A dataset folder that exists but matches none of its manifest's layouts is INVALID, with the layouts
that were expected (chapters stop on it too; only an absent folder falls back to generated data).
``--deep`` also decodes every image/recording of each valid dataset (every split, through its
loader, bypassing the cache) and reports the first bad file by name.
Exit code 0 when every dataset found is valid (absent ones are fine: the book then uses its embedded
default), 1 when any found dataset is invalid, 2 for a usage error (unknown name, bad root).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence, TextIO

from affectlab.config import ConfigError, resolve_data_root
from affectlab.data.manifest import CheckReport, ManifestError
from affectlab.data.registry import UnknownDatasetError, check, known_names


def _print_report(report: CheckReport, verbose: bool, out: TextIO) -> None:
    if not report.found:
        why = " (no manifest)" if report.note.startswith("no manifest") else ""
        out.write(f"{report.name:<18} not found{why}" + (f"   {report.note}\n" if verbose else "\n"))
        return
    status = "valid" if report.ok else "INVALID"
    layout = f"layout {report.layout}" if report.layout else "no known layout"
    out.write(f"{report.name:<18} found       {status} ({layout}, {report.dataset_dir})\n")
    for item in report.items:
        if item.ok and not verbose and item.what.startswith(("present", "sha256", "size")):
            continue
        mark = "ok " if item.ok else "BAD"
        rel = item.path.relative_to(report.dataset_dir) if report.dataset_dir else item.path
        if item.what == "layout":
            out.write(f"    BAD {report.dataset_dir}: matches no layout; expected {item.expected}\n")
            continue
        if item.what.startswith("deep decode"):
            out.write(f"    {mark} {item.what}: {item.found}\n")
            continue
        if item.what == "sha256":
            detail = "sha256 matches" if item.ok else f"sha256 {item.found}, expected {item.expected}"
        else:
            detail = f"{item.what}: {item.found}" + ("" if item.ok else f", expected {item.expected}")
        out.write(f"    {mark} {rel}: {detail}\n")
    if report.ok and not verbose:
        hashed = sum(1 for item in report.items if item.what == "sha256")
        if hashed:
            out.write(f"    ok  {hashed} key file(s): sha256 matches\n")


def data_check(
    name: str | None, root: str | None, verbose: bool, out: TextIO | None = None, deep: bool = False
) -> int:
    """Run ``data check``, printing to ``out`` (default stdout; usage errors to stderr then); return
    the exit code."""
    err = out or sys.stderr
    out = out or sys.stdout
    try:
        data_root = resolve_data_root(root)
        if data_root is None:
            out.write(
                "no data root (give --root DIR or set AFFECTLAB_DATA): every dataset uses the embedded "
                "generated default\n"
            )
            return 0
        reports = check(name, data_root, deep=deep)
    except (ConfigError, UnknownDatasetError, ManifestError) as exc:
        err.write(f"error: {exc}\n")
        return 2
    out.write(f"data root: {data_root}\n")
    for report in reports:
        _print_report(report, verbose, out)
    found = [r for r in reports if r.found]
    invalid = [r.name for r in found if not r.ok]
    out.write(
        f"{len(found)} of {len(reports)} found{' (deep: every file decoded)' if deep else ''}; "
        + (f"INVALID: {', '.join(invalid)}\n" if invalid else "all found are valid\n")
    )
    return 1 if invalid else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m affectlab", description="affectlab command line")
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="dataset tools")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    chk = data_sub.add_parser("check", help="validate datasets under the data root against their manifests")
    chk.add_argument("name", nargs="?", default=None, help=f"one dataset ({', '.join(known_names())}); default all")
    chk.add_argument("--root", default=None, help="data root (default: $AFFECTLAB_DATA)")
    chk.add_argument("--deep", action="store_true",
                     help="also decode every image/recording of each valid dataset; report the first bad file")
    chk.add_argument("--verbose", "-v", action="store_true", help="print every check and where to obtain missing data")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "data" and args.data_command == "check":
        return data_check(args.name, args.root, args.verbose, deep=args.deep)
    return 2  # unreachable: argparse requires the sub-commands


if __name__ == "__main__":
    sys.exit(main())
