"""`edgedeploy inspect`: what a model file holds (`convert/inspect.py` reads it), as a typed result."""

from __future__ import annotations

from pathlib import Path

from edgedeploy.results import ModelInfo


def inspect(model: Path, shapes: dict[str, list[int]] | None = None) -> ModelInfo:
    """`shapes` fix dynamic inputs for the MAC counts (the key "" for a one-input model)."""
    from edgedeploy.convert.inspect import inspect_model

    return ModelInfo.from_doc(inspect_model(model, shapes or {}))
