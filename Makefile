# The two commands of the README:
#   make demo   builds .venv, then runs the NeuMF scenario on the bundled MovieLens-100K end to end
#   make test   builds .venv, then runs ruff and the test suite
#   make test-cluster   the Ray tests: a head and a worker node on this machine, a localhost head (CI runs it too)
# Both are idempotent: .venv is rebuilt only when pyproject.toml or poetry.lock change.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Offline by construction: no model hub, no dataset download at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test test-cluster lint venv clean lock-check

venv: $(STAMP)

$(STAMP): pyproject.toml poetry.lock tools/lockfile.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PYTHON) tools/lockfile.py constraints > $(VENV)/constraints.txt
	$(PYTHON) tools/lockfile.py requirements > $(VENV)/requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c $(VENV)/constraints.txt -r $(VENV)/requirements.txt
	# UMAP's first import and first fit have numba compile and cache pynndescent's and umap's functions (~30 s on 2
	# cores): once here, not in the first experiment that reduces with UMAP (or in every test process at once)
	$(BIN)/python -c "import torch; from utils.embeddings import reduce_matrix; reduce_matrix(torch.randn(300, 48), 16)"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python run_exps.py experiments/neumf/neumf_ml100k.yaml

test: $(STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest -q -n auto --dist loadgroup -m "not cluster"

test-cluster: $(STAMP)
	$(BIN)/python -m pytest -q -m cluster

# ruff's linter only: the code is not auto-formatted (the rules and the 120-character lines are in pyproject.toml)
lint: $(STAMP)
	$(BIN)/python -m ruff check .

# Needs poetry (not installed by the Makefile): checks that poetry.lock matches pyproject.toml.
lock-check:
	poetry check --lock

clean:
	rm -rf $(VENV) log log_tensorboard saved .pytest_cache
