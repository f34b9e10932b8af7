"""Measured latency of candidate models, for stages that stop at a speed goal (NetAdapt-style).

Each model is exported to ONNX and timed by the stand-alone runner on a target from the inventory
(`local` by default), the same way `edgedeploy profile` and convert's int8 choice time files, taking
turns so that a background burst lands on every candidate alike. `time_files` is the one call into the
runner client, so moving that client (profile_job.time_models) changes one line here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn


def time_files(
    models: dict[str, Path], target: str = "local", threads: int = 1, rounds: int = 3
) -> dict[str, float]:
    """Median p50 latency (ms) of each model file on `target`, timed by the runner at `threads`."""
    from edgedeploy.deploy.connect import open_transport
    from edgedeploy.deploy.inventory import load_inventory
    from edgedeploy.profile_job import time_models

    device = load_inventory().get(target)
    with open_transport(device) as transport:
        timed = time_models(transport, device, models, threads=threads, rounds=rounds)
    return {name: float(ms) for name, ms in timed["p50_ms"].items()}


def time_modules(
    models: dict[str, nn.Module],
    example: torch.Tensor,
    target: str = "local",
    threads: int = 1,
    rounds: int = 3,
) -> dict[str, float]:
    """Export each module to ONNX (batch 1) and time the files with `time_files`."""
    from edgedeploy.compress.survival import export_onnx

    with tempfile.TemporaryDirectory(prefix="edgedeploy-latency-") as tmp:
        files = {
            name: export_onnx(model, example[:1], Path(tmp) / f"{name}.onnx")
            for name, model in models.items()
        }
        return time_files(files, target, threads, rounds)
