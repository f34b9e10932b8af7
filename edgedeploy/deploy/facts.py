"""Device facts: run the runner zipapp's `probe` on a connected target and cache what it reports.

The probe is part of the device package (runner/device/probe.py): the same sysfs and /proc readers
as the runner's profiles, and the runtimes the runner would load. Its JSON document is cached per
target under the cache dir so `targets show`, `targets list` and the profiles can use the facts
without reconnecting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgedeploy.deploy.inventory import Target, cache_dir
from edgedeploy.deploy.runner_client import push_runner
from edgedeploy.errors import TargetError

PROBE_TIMEOUT_S = 120.0


def facts_path(target_name: str) -> Path:
    return cache_dir() / "facts" / f"{target_name}.json"


def cached_facts(target_name: str) -> dict[str, Any] | None:
    try:
        return json.loads(facts_path(target_name).read_text())
    except (OSError, ValueError):
        return None


def probe(transport: Any, target: Target) -> dict[str, Any]:
    """Push the runner (skipped when unchanged) and run its facts probe; returns its JSON document."""
    runner = push_runner(transport, target)
    result = transport.run([target.python, runner, "probe", transport.workdir], timeout=PROBE_TIMEOUT_S)
    lines = [line for line in result.stdout.strip().splitlines() if line.startswith("{")]
    doc: dict[str, Any] | None = None
    if lines:
        try:
            doc = json.loads(lines[-1])
        except ValueError:
            doc = None
    if doc is not None and "error" in doc:  # e.g. the device's Python is too old for the runner
        raise TargetError(f"{target.name}: {doc['error']}")
    if not result.ok:
        if result.exit_code == 127:
            raise TargetError(
                f"{target.name}: {target.python} not found on the device (set ansible_python_interpreter)"
            )
        raise TargetError(f"{target.name}: facts probe failed: {result.last_error_line()}")
    if doc is None:
        raise TargetError(f"{target.name}: facts probe printed no JSON: {result.stdout[-200:]!r}")
    return doc
