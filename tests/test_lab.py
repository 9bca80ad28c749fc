"""JupyterLab and conda (issue 12, item 6).

``make lab`` pairs notebooks: saving an ``.ipynb`` through jupytext's contents manager, rooted where
``make lab`` roots JupyterLab, rewrites the paired ``.py`` too (issue 12 measured that a lab rooted at
``notebooks/`` did not: the contents manager never read the repository's ``jupytext.toml``). The lab
keeps matplotlib's inline backend, and ``environment.yml`` installs the package as well."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from pathlib import Path

import jupytext
import pytest
from jupytext import AsyncTextFileContentsManager  # what jupyterlab_jupytext gives Jupyter Server 2

REPO = Path(__file__).resolve().parents[1]
STAMP = ".venv/.affectlab-installed"


def make_lab_command() -> str:
    """The command ``make lab`` runs (dry run; the set-up stamp is taken as up to date)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(["make", "-s", "-n", "-o", STAMP, "lab"], cwd=REPO, capture_output=True, text=True,
                            check=True)
    lines = [line for line in result.stdout.splitlines() if "jupyter lab" in line]
    assert len(lines) == 1, f"make -n lab printed no single 'jupyter lab' command:\n{result.stdout}"
    return lines[0]


def lab_root(command: str) -> Path:
    """The server root of a ``jupyter lab`` command line (``--ServerApp.root_dir``/``--notebook-dir``;
    the working directory, i.e. the repository, when neither is given)."""
    match = re.search(r"--(?:ServerApp\.root_dir|notebook-dir|ServerApp\.notebook_dir)[= ](\S+)", command)
    if match is None:
        return REPO
    root = Path(match.group(1).strip("'\""))
    return root if root.is_absolute() else REPO / root


def test_make_lab_does_not_force_agg():
    assert "MPLBACKEND" not in make_lab_command()
    # make test itself exports MPLBACKEND=Agg to its recipes: read the Makefile without that environment
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    result = subprocess.run(["make", "-s", "-p", "-n", "-o", STAMP, "lab"], cwd=REPO, capture_output=True, text=True,
                            env=env)
    exported = [line for line in result.stdout.splitlines() if re.match(r"^(export )?MPLBACKEND :?= *Agg", line)]
    assert exported == [], "MPLBACKEND=Agg is set globally; scope it to the batch targets"


def test_saving_in_make_lab_writes_the_paired_py(tmp_path):
    root = lab_root(make_lab_command())
    relative_root = root.resolve().relative_to(REPO)  # where make lab roots the server, inside the repo
    shutil.copy(REPO / "jupytext.toml", tmp_path / "jupytext.toml")
    (tmp_path / "notebooks").mkdir()
    for suffix in (".py", ".ipynb"):
        shutil.copy(REPO / "notebooks" / f"00_data{suffix}", tmp_path / "notebooks" / f"00_data{suffix}")
    manager = AsyncTextFileContentsManager(root_dir=str(tmp_path / relative_root))
    path = (Path("notebooks") / "00_data.ipynb").relative_to(relative_root).as_posix()
    model = asyncio.run(manager.get(path))
    marker = "# saved from the lab: pairing test"
    model["content"].cells.append(jupytext.reads(f"# %%\n{marker}\n", fmt="py:percent").cells[0])
    asyncio.run(manager.save(model, path))
    assert marker in (tmp_path / "notebooks" / "00_data.ipynb").read_text()
    assert marker in (tmp_path / "notebooks" / "00_data.py").read_text(), (
        f"saving through the lab rooted at {relative_root}/ left 00_data.py unchanged: no pairing"
    )


def test_conda_environment_installs_the_package_and_names_the_kernel_step():
    import yaml

    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict) and "pip" in item)
    assert "-r requirements.txt" in pip and "-e ./lib" in pip
    assert (REPO / "requirements.txt").is_file() and (REPO / "lib" / "pyproject.toml").is_file()
    readme = (REPO / "README.md").read_text()
    assert "python -m ipykernel install --sys-prefix --name affectlab" in readme  # the one extra command
