"""Input shapes as the user types them: the one parser behind every verb's `--shape` (convert,
inspect, run, profile).

Stdlib only: the CLI imports it while parsing options.
"""

from __future__ import annotations

from collections.abc import Sequence

Shape = tuple[int, ...]
ShapeSpec = list[tuple[str, Shape]]
"""Shapes as given, in order: (input name, or "" for a bare shape, dims)."""


def parse_shapes(texts: Sequence[str], option: str = "--shape") -> ShapeSpec:
    """`1,3,224,224` (or `1x3x224x224`) or `NAME=1,3,224,224`, one text per input; a bare shape
    names no input (for a one-input model, or several given in the model's input order).

    A dimension that is not a positive integer is a UsageError naming `option` and the text."""
    from edgedeploy.errors import UsageError

    spec: ShapeSpec = []
    for text in texts:
        name, _, dims = text.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
        except ValueError:
            shape = ()
        if not shape:
            raise UsageError(f"{option} {text!r}: expected NAME=1,3,224,224 or 1,3,224,224")
        if min(shape) < 1:
            raise UsageError(f"{option} {text!r}: dimensions must be positive integers, e.g. 1,3,224,224")
        spec.append((name, shape))
    return spec


def shapes_by_name(texts: Sequence[str], option: str = "--shape") -> dict[str, list[int]]:
    """The shapes by input name ("" for a bare one), as inspect, run and profile take them."""
    return {name: list(shape) for name, shape in parse_shapes(texts, option)}
