"""Measured latency of candidate models, for stages that stop at a speed goal (NetAdapt-style).

Each model file is timed by the stand-alone runner on a target from the inventory
(`local` by default), the same way `edgedeploy profile` and convert's int8 choice time files, taking
turns so that a background burst lands on every candidate alike. `time_files` is the one call into the
runner client (deploy/runner_client.time_models).
"""

from __future__ import annotations

from pathlib import Path


def time_files(
    models: dict[str, Path], target_name: str = "local", threads: int = 1, rounds: int = 3
) -> dict[str, float]:
    """p50 latency (ms) of each model file on the target named `target_name`, timed by the runner at
    `threads`: the p50 of its fastest round (runner_client.time_models says why)."""
    from edgedeploy.deploy.inventory import load_inventory
    from edgedeploy.deploy.runner_client import time_models
    from edgedeploy.deploy.transports.connect import open_transport

    target = load_inventory().get(target_name)
    with open_transport(target) as transport:
        timed = time_models(transport, target, models, threads=threads, rounds=rounds)
    return {name: float(ms) for name, ms in timed["p50_ms"].items()}
