# affectlab: two commands on a fresh machine (Python 3.11 and pip only).
#   make book   set up .venv, execute every chapter (quick profile), build book/_build/html
#   make test   set up .venv, run unit tests, every chapter in the smoke profile, book with -W
#   make lab    JupyterLab rooted at the repository (so jupytext.toml pairs NN_name.py <-> .ipynb), opened on notebooks/
#   make clean  remove the executed book, runs/ and the dataset and generated-data caches
# The data root: AFFECTLAB_DATA=/path/to/datasets (unset = the embedded, generated default).

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.affectlab-installed
PROFILE ?= quick

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MNE_DONTWRITE_HOME := true
export PYDEVD_DISABLE_FILE_VALIDATION := 1
export AFFECTLAB_RUNS ?= $(CURDIR)/runs
export JUPYTER_PLATFORM_DIRS := 1
# Tensor caches (decoded datasets, generated data): affectlab.config.default_cache_dir().
CACHE_DIR := $(or $(AFFECTLAB_CACHE),$(HOME)/.cache/affectlab)

# Batch runs draw figures off-screen; the lab keeps matplotlib's inline backend (no Agg there).
book test benchmark time-to-accuracy chapter-times: export MPLBACKEND := Agg

.PHONY: setup book test lab benchmark time-to-accuracy chapter-times clean

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

# Rooted at the repository: jupytext's contents manager only reads the jupytext.toml at or below
# its root, so --notebook-dir=notebooks would save .ipynb without the paired .py (tests/test_lab.py).
lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks

benchmark: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py --candidates --out benchmarks/results.json

time-to-accuracy: $(STAMP)
	$(BIN)/python benchmarks/time_to_accuracy.py --budget-s $(or $(BUDGET_S),480) --seeds $(or $(SEEDS),1) --out benchmarks/time_to_accuracy.json

chapter-times: $(STAMP)
	$(BIN)/python benchmarks/chapter_times.py --profile $(PROFILE) --out benchmarks/chapter_times_$(PROFILE).json

clean:
	rm -rf book/_build book/chapters book/results.md book/_toc.yml runs
	rm -rf "$(CACHE_DIR)/datasets" "$(CACHE_DIR)/generated"
