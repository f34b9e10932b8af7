"""The device-profile document: what one measurement of one model on one target says.

A profile is plain JSON so it can be diffed and committed. Bump SCHEMA_VERSION when a field changes
meaning; readers accept older versions they know.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from edgedeploy import __version__
from edgedeploy.fileinfo import sha256_file  # noqa: F401 - re-exported for profile readers

SCHEMA_VERSION = 1


def model_format(path: Path) -> str:
    return {".onnx": "onnx", ".tflite": "tflite"}.get(
        path.suffix.lower(), path.suffix.lstrip(".") or "unknown"
    )


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_profile(
    *,
    model_path: Path,
    model_sha256: str,
    target: dict[str, Any],
    runner_doc: dict[str, Any],
    power: dict[str, Any],
    settings: dict[str, Any],
    repeats: list[dict[str, Any]] | None = None,
    repeat_spread: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a profile from the runner's JSON and what the host knows about model and target.

    With several repeats, `runner_doc` is the representative one (median p50) and `repeats` holds a
    summary of each; `throttled` is true when ANY repeat ran while the device throttled, `contended`
    when in any repeat other processes kept the runner waiting for a CPU over 5 % of the time.
    """
    thermal = runner_doc.get("thermal") or {}
    throttled = bool(thermal.get("throttled")) or any(r.get("throttled") for r in repeats or [])
    scheduler = (runner_doc.get("cpu") or {}).get("scheduler") or {}
    contended = bool(scheduler.get("contended")) or any(r.get("contended") for r in repeats or [])
    return {
        "schema_version": SCHEMA_VERSION,
        "edgedeploy_version": __version__,
        "created": utc_now(),
        "target": target,
        "emulated": bool(target.get("emulated", False)),
        "model": {
            "path": str(model_path),
            "name": model_path.stem,
            "sha256": model_sha256,
            "format": model_format(model_path),
            "size_bytes": model_path.stat().st_size,
        },
        "runtime": runner_doc.get("runtime", {}),
        "settings": settings,
        "inputs": runner_doc.get("inputs", []),
        "notes": runner_doc.get("notes", []),
        "outputs": runner_doc.get("outputs", []),
        "init_ms": runner_doc.get("init_ms"),
        "first_inference_ms": runner_doc.get("first_inference_ms"),
        "latency_ms": runner_doc.get("latency_ms"),
        "cpu_time_ms": runner_doc.get("cpu_time_ms"),
        "uncontended_latency_ms": runner_doc.get("uncontended_latency_ms"),
        "throughput_ips": runner_doc.get("throughput_ips"),
        "timed_seconds": runner_doc.get("timed_seconds"),
        "memory": runner_doc.get("memory"),
        "cpu": runner_doc.get("cpu"),
        "thermal": thermal,
        "throttled": throttled,
        "contended": contended,
        "power": power,
        "repeats": repeats or [],
        "repeat_spread": repeat_spread,
        "runner_version": runner_doc.get("runner_version"),
        "started": runner_doc.get("started"),
        "finished": runner_doc.get("finished"),
    }
