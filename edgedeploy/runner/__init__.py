"""The on-device runner lives in `edgedeploy_runner.py`, a stand-alone script shipped to targets.

It is never imported in-process by the rest of the package: its path is used, and its declaration of
the supported runtimes (`RUNTIMES`) is read from its source by `supported_runtimes`.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import Any

RUNNER_PATH = Path(__file__).with_name("edgedeploy_runner.py")


@functools.cache
def supported_runtimes() -> dict[str, dict[str, Any]]:
    """The runner's RUNTIMES table: runtime name -> {"formats", "module", "provision"}.

    Read as a literal from the runner's source, not imported: the runner stays a program for the
    device, and only the table's lines are parsed (the whole file took ~0.1 s on a loaded 2-core
    machine, at every CLI start, which reads this table for its help)."""
    text = RUNNER_PATH.read_text(encoding="utf-8")
    start = text.index("\nRUNTIMES = {") + len("\nRUNTIMES = ")
    end = text.index("\n}\n", start) + 2
    return ast.literal_eval(text[start:end])


def provisionable_runtimes() -> dict[str, str]:
    """Runtime name -> the pinned requirement `edgedeploy provision` installs, in declaration order."""
    return {name: rt["provision"] for name, rt in supported_runtimes().items() if rt["provision"]}
