# affectlab: two commands on a fresh machine (Python 3.11 and pip only).
#   make book   set up .venv, execute every chapter (quick profile), build book/_build/html
#   make test   set up .venv, run unit tests, every chapter in the smoke profile, book with -W
#   make lab    JupyterLab with jupytext pairing
# The data root: AFFECTLAB_DATA=/path/to/datasets (unset = the embedded, generated default).

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.affectlab-installed
PROFILE ?= quick

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MNE_DONTWRITE_HOME := true
export MPLBACKEND := Agg
export PYDEVD_DISABLE_FILE_VALIDATION := 1
export AFFECTLAB_RUNS ?= $(CURDIR)/runs
export JUPYTER_PLATFORM_DIRS := 1

.PHONY: setup book test lab benchmark chapter-times clean

setup: $(STAMP)

$(STAMP): requirements.txt lib/pyproject.toml scripts/fetch_minixception.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e lib
	$(BIN)/python -m ipykernel install --sys-prefix --name affectlab --display-name "affectlab (.venv)"
	$(BIN)/python scripts/fetch_minixception.py
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/python -m affectlab.book --profile $(PROFILE) --build

test: $(STAMP)
	$(BIN)/python -m pytest tests -q -p no:cacheprovider --durations=12

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks

benchmark: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py --out benchmarks/results.json

chapter-times: $(STAMP)
	$(BIN)/python benchmarks/chapter_times.py --profile $(PROFILE) --out benchmarks/chapter_times_$(PROFILE).json

clean:
	rm -rf book/_build book/chapters runs
