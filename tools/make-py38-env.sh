#!/usr/bin/env bash
# A Python 3.8 environment for the runner's "runs on Jetson's Python 3.8" test, when this machine has
# a python3.8 (PATH or pyenv). Best effort: without one, or without network, the test skips and says why.
# numpy 1.24.4 and onnxruntime 1.19.2 are the last releases for Python 3.8 (what JetPack 5 boards run).
set -u
venv=${1:-.venv-py38}
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import numpy, onnxruntime" 2>/dev/null; then
    exit 0
fi
# pyenv's own copy first: its `python3.8` shim on PATH fails unless 3.8 is a selected version.
py38=$(ls -d "$HOME"/.pyenv/versions/3.8.*/bin/python 2>/dev/null | tail -n 1)
py38=${py38:-$(command -v python3.8)}
if [ -z "$py38" ] || ! "$py38" -c "import venv" 2>/dev/null; then
    echo "make-py38-env: no python3.8 here; the Python 3.8 runner test will skip" >&2
    exit 0
fi
rm -rf "$venv"
if ! { "$py38" -m venv "$venv" && "$venv/bin/python" -m pip install -q "numpy==1.24.4" "onnxruntime==1.19.2"; }; then
    echo "make-py38-env: could not install numpy/onnxruntime for Python 3.8; that test will skip" >&2
    rm -rf "$venv"
fi
exit 0
