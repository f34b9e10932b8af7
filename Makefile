# The README's two set-up commands. Both create or refresh .venv in the repo root first.
#   make demo  -> the main job (edgedeploy quickstart) on the local target
#   make test  -> the whole test suite (installs Debian test needs such as openssh-server when missing)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARCH   := $(shell uname -m)
comma  := ,
# litert-torch (torch -> TFLite) only ships x86_64 wheels.
EXTRAS := dev,models,ray$(if $(filter x86_64,$(ARCH)),$(comma)litert)
STAMP  := $(VENV)/.installed

.PHONY: demo test lint venv system-deps bench clean

venv: $(STAMP)

# torch==2.13.0 is named in the same pip command as the rest: alone, pip would pull a CUDA build.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0" -e ".[$(EXTRAS)]"
	@touch $@

demo: venv
	$(BIN)/edgedeploy quickstart

system-deps:
	@bash tools/install-system-deps.sh

test: venv system-deps
	@bash tools/make-py38-env.sh $(VENV)-py38
	EDGEDEPLOY_TEST_PY38=$(CURDIR)/$(VENV)-py38/bin/python $(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check edgedeploy tests bench
	$(BIN)/ruff format --check edgedeploy tests bench

bench: venv
	$(BIN)/python bench/deep_compression.py
	$(BIN)/python bench/distillation.py

clean:
	rm -rf $(VENV) $(VENV)-py38 out .pytest_cache
