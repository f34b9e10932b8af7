"""Device facts: probe a connected target with ONE stdlib-only script and cache what it reports.

The script (probe_facts.py, beside this module) is sent on stdin to the device's Python; its JSON
document is cached per target under the cache dir so `targets show`, `targets list` and the profiles
can use the facts without reconnecting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgedeploy.deploy.inventory import Target, cache_dir
from edgedeploy.errors import TargetError
from edgedeploy.runner import supported_runtimes

PROBE_SCRIPT = Path(__file__).with_name("probe_facts.py")
PROBE_TIMEOUT_S = 120.0


def facts_path(target_name: str) -> Path:
    return cache_dir() / "facts" / f"{target_name}.json"


def cached_facts(target_name: str) -> dict[str, Any] | None:
    try:
        return json.loads(facts_path(target_name).read_text())
    except (OSError, ValueError):
        return None


def probe(transport: Any, target: Target) -> dict[str, Any]:
    """Run the facts script on a connected transport; returns its JSON document."""
    runtimes = {name: runtime["module"] for name, runtime in supported_runtimes().items()}
    result = transport.run(
        [target.python, "-", transport.workdir, "/", json.dumps(runtimes)],
        timeout=PROBE_TIMEOUT_S,
        stdin=PROBE_SCRIPT.read_bytes(),
    )
    if not result.ok:
        if result.exit_code == 127:
            raise TargetError(
                f"{target.name}: {target.python} not found on the device (set ansible_python_interpreter)"
            )
        raise TargetError(f"{target.name}: facts probe failed: {result.last_error_line()}")
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise TargetError(f"{target.name}: facts probe printed no JSON: {result.stdout[-200:]!r}") from exc
