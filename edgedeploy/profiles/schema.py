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


# --------------------------------------------------------------------------------------------------
# reading: the types a stored profile's fields must have
# --------------------------------------------------------------------------------------------------

# What readers (list, show, report, compare, fleet) use from a stored profile. Each field may be
# absent or null; when present it must have this type, or the file is not a usable profile. A file
# from elsewhere (hand-edited, another tool, a bad merge) is input like any other.
_OBJECT, _TEXT, _NUMBER, _INT, _BOOL, _LIST = (
    "an object",
    "a string",
    "a number",
    "an integer",
    "true/false",
    "a list",
)
_FIELDS: dict[str, str] = {
    "target": _OBJECT,
    "target.name": _TEXT,
    "target.emulated": _BOOL,
    "model": _OBJECT,
    "model.name": _TEXT,
    "model.path": _TEXT,
    "model.sha256": _TEXT,
    "model.format": _TEXT,
    "model.size_bytes": _INT,
    "model.accuracy": _NUMBER,
    "created": _TEXT,
    "emulated": _BOOL,
    "throttled": _BOOL,
    "contended": _BOOL,
    "runtime": _OBJECT,
    "runtime.name": _TEXT,
    "runtime.version": _TEXT,
    "runtime.threads": _INT,
    "runtime.session_options": _OBJECT,
    "runtime.session_options_dropped": _TEXT,
    "settings": _OBJECT,
    "inputs": _LIST,
    "outputs": _LIST,
    "notes": _LIST,
    "repeats": _LIST,
    "init_ms": _NUMBER,
    "first_inference_ms": _NUMBER,
    "throughput_ips": _NUMBER,
    "timed_seconds": _NUMBER,
    "latency_ms": _OBJECT,
    **{f"latency_ms.{k}": _NUMBER for k in ("mean", "std", "min", "max", "p50", "p90", "p99")},
    "latency_ms.n": _INT,
    "cpu_time_ms": _OBJECT,
    "uncontended_latency_ms": _OBJECT,
    "memory": _OBJECT,
    "memory.peak_rss_mb": _NUMBER,
    "cpu": _OBJECT,
    "thermal": _OBJECT,
    "thermal.throttled": _BOOL,
    "thermal.reasons": _LIST,
    "power": _OBJECT,
    "power.source": _TEXT,
    "power.method": _TEXT,
    "power.energy_per_inference_mj": _NUMBER,
    "repeat_spread": _OBJECT,
    **{
        f"repeat_spread.{k}": _NUMBER
        for k in ("p50_mean_ms", "p50_std_ms", "p50_cv", "p50_min_ms", "p50_max_ms")
    },
    "quality": _OBJECT,
}
_REQUIRED = ("target", "target.name", "model", "model.name", "created")


def _has_type(value: Any, kind: str) -> bool:
    if kind == _OBJECT:
        return isinstance(value, dict)
    if kind == _TEXT:
        return isinstance(value, str)
    if kind == _LIST:
        return isinstance(value, list)
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool)  # _NUMBER


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number"}
    return names.get(type(value), "a number" if isinstance(value, float) else type(value).__name__)


def profile_problem(doc: Any) -> str | None:
    """Why `doc` is not a usable stored profile (naming the field), or None when it is.

    Checks the type of every field readers use; unknown fields are left alone (newer writers)."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    for field, kind in _FIELDS.items():
        parent_key, _, key = field.rpartition(".")
        parent = doc.get(parent_key) if parent_key else doc
        if not isinstance(parent, dict):
            continue  # a missing parent is reported for the parent itself
        value = parent.get(key)
        if value is None:
            if field in _REQUIRED:
                return f"missing {field}"
            continue
        if not _has_type(value, kind):
            return f"field {field} is {_type_name(value)} ({json_excerpt(value)}), expected {kind}"
        if field in _REQUIRED and kind == _TEXT and not value:
            return f"missing {field}"
    return None


def json_excerpt(value: Any, limit: int = 40) -> str:
    import json

    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
