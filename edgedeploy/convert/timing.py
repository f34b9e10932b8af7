"""Where `convert --int8-format auto` times its candidates: on this host (onnxruntime in this process)
or on a target (pushed and timed there by the stand-alone runner, as `edgedeploy profile` does)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from edgedeploy.deploy.inventory import Target
    from edgedeploy.deploy.transports.base import Transport


class LatencyTimer(Protocol):
    def latencies(self, models: dict[str, Path], sample: np.ndarray, threads: int | None) -> dict[str, Any]:
        """{"p50_ms": {name: ms}, "statistic": what p50_ms is, "timed_on": {...}, "where": a phrase
        for the reason}."""
        ...


class HostTimer:
    """Interleaved rounds in this process: the ratio holds on a busy host even when times do not."""

    def latencies(self, models: dict[str, Path], sample: np.ndarray, threads: int | None) -> dict[str, Any]:
        import onnxruntime

        from edgedeploy.convert.runtimes import OnnxRunner, profile_latencies

        threads = threads or os.cpu_count() or 1
        p50 = profile_latencies({name: OnnxRunner(path, threads) for name, path in models.items()}, sample)
        return {
            "p50_ms": p50,
            "statistic": "median p50",
            "timed_on": {
                "target": None,
                "host": platform.node(),
                "arch": platform.machine(),
                "emulated": False,
                "runtime": {"name": "onnxruntime", "version": onnxruntime.__version__, "threads": threads},
            },
            "where": f"threads {threads}, onnxruntime {onnxruntime.__version__}, "
            "timed on this host (no --target)",
        }


class TargetTimer:
    """Each model pushed to the target and timed there by the runner, at the requested threads."""

    def __init__(self, transport: Transport, target: Target, remote_prefix: str) -> None:
        self.transport = transport
        self.target = target
        self.remote_prefix = remote_prefix  # device file names say which conversion they came from

    def latencies(self, models: dict[str, Path], sample: np.ndarray, threads: int | None) -> dict[str, Any]:
        from edgedeploy.deploy.runner_client import time_models

        # `sample` stays here: the runner feeds random inputs drawn from each model's input spec, as
        # `edgedeploy profile` does (latency of these graphs does not depend on the values).
        timed = time_models(
            self.transport, self.target, models, threads=threads, remote_prefix=self.remote_prefix
        )
        target, runtime = timed["target"], timed["runtime"]
        emulated = ", EMULATED: not device timings" if target["emulated"] else ""
        where = (
            f"threads {runtime.get('threads') or 'default'}, {runtime['name']} {runtime.get('version')}, "
            f"timed on target {target['name']!r} ({target['arch']}{emulated}) by the runner"
        )
        return {
            "p50_ms": timed["p50_ms"],
            "statistic": timed["statistic"],
            "timed_on": {
                "target": target["name"],
                "connection": target["connection"],
                "arch": target["arch"],
                "emulated": target["emulated"],
                "cpu_model": target["cpu_model"],
                "runtime": runtime,
            },
            "where": where,
        }
