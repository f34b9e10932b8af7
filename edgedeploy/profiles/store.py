"""The profile store: JSON files under profiles/<target>/<model-stem>/<timestamp>.json.

The files are the source of truth. Writes are atomic (temp file + rename) so a crash never leaves
half a profile; a corrupt file is skipped with a warning naming it and is never deleted.

This module handles the files (write, read, walk, summarize one); the queries over them (list, find
by id, export) are in profiles/index.py, which imports this module and never the other way round.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgedeploy.fileinfo import write_json_atomic
from edgedeploy.profiles.schema import profile_problem

# Columns of `profiles list` / `export --csv`, in order. Every one is a column of the index too.
SUMMARY_FIELDS = (
    "id",
    "created",
    "target",
    "emulated",
    "model",
    "model_sha256",
    "format",
    "size_bytes",
    "accuracy",
    "runtime",
    "runtime_version",
    "threads",
    "n",
    "mean_ms",
    "std_ms",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "init_ms",
    "first_inference_ms",
    "peak_rss_mb",
    "energy_mj",
    "power_source",
    "throttled",
    "path",
)


def profiles_root(root: Path | None = None) -> Path:
    return root or Path(os.environ.get("EDGEDEPLOY_PROFILES", "profiles"))


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", part).strip("._") or "unnamed"


def profile_path(root: Path | None, profile: dict[str, Any]) -> Path:
    stamp = profile["created"].replace(":", "").replace("-", "")
    return (
        profiles_root(root)
        / _safe(profile["target"]["name"])
        / _safe(profile["model"]["name"])
        / f"{stamp}.json"
    )


def write_profile(profile: dict[str, Any], root: Path | None = None) -> Path:
    path = profile_path(root, profile)
    write_json_atomic(path, profile)
    return path


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------


def warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")


def iter_profile_files(root: Path) -> Iterator[Path]:
    """Every `*.json` under root, skipping hidden files and dirs (temp files, the index)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".json") and not name.startswith("."):
                yield Path(dirpath) / name


def read_profile_file(path: Path) -> dict[str, Any]:
    """Parse one profile file; raises ValueError saying why it is not a usable profile."""
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not valid JSON ({exc.__class__.__name__})") from exc
    # Valid JSON can still hold a wrong type (`"latency_ms": "fast"`): checked here, once, so every
    # reader can trust the fields and one bad file is skipped instead of failing the whole store.
    problem = profile_problem(doc)
    if problem:
        raise ValueError(problem)
    return doc


def profile_id(root: Path, path: Path) -> str:
    return path.relative_to(root).with_suffix("").as_posix()


def accuracy_of(doc: dict[str, Any]) -> float | None:
    """Accuracy of the profiled variant when known: `model.accuracy` or a top-level `quality` dict."""
    model = doc.get("model") or {}
    quality = doc.get("quality") if isinstance(doc.get("quality"), dict) else {}
    for value in (model.get("accuracy"), quality.get("accuracy"), quality.get("top1")):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def throttle_flags(doc: dict[str, Any]) -> list[str]:
    """Human-readable reasons this measurement may have run throttled (empty: none seen).

    The runner judges throttling itself (`thermal.throttled` with `reasons`, comparing the state
    before and after the runs, so sticky since-boot bits and cumulative counters do not count), and
    the top-level `throttled` covers every repeat: those are used when present. Otherwise any set
    value under a key naming throttling, and any listed flags, count.
    """
    thermal = doc.get("thermal")
    if isinstance(thermal, dict) and isinstance(thermal.get("throttled"), bool):
        reasons = [str(r) for r in thermal.get("reasons") or []]
        if thermal["throttled"] and not reasons:
            reasons = ["thermal.throttled"]
        if doc.get("throttled") is True and not reasons:
            reasons = ["throttled during another repeat"]
        return reasons
    flags: list[str] = ["throttled"] if doc.get("throttled") is True else []

    def is_set(value: Any) -> bool:
        if isinstance(value, str) and value.lower().startswith("0x"):
            try:  # vcgencmd get_throttled prints bits as hex: 0x0 means nothing happened
                return int(value, 16) != 0
            except ValueError:
                return True
        return bool(value)

    def visit(node: Any, where: str, throttle_context: bool) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                name = f"{where}.{key}"
                if str(key) == "flags" and isinstance(value, list):
                    flags.extend(f"{name}:{flag}" for flag in value)
                else:
                    visit(value, name, throttle_context or "throttl" in str(key).lower())
        elif throttle_context and not isinstance(node, list) and is_set(node):
            flags.append(f"{where}={node}")

    visit(thermal, "thermal", False)
    return flags


def summarize(root: Path, path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """The flat row the index stores and `list`/`export` print."""
    return {"id": profile_id(root, path), **summary_values(doc), "path": str(path)}


def summary_values(doc: dict[str, Any]) -> dict[str, Any]:
    """The row's columns that come from the profile itself (all but its `id` and `path`)."""
    latency = doc.get("latency_ms") or {}
    runtime = doc.get("runtime") or {}
    model = doc["model"]
    power = doc.get("power") or {}
    memory = doc.get("memory") or {}
    return {
        "created": doc["created"],
        "target": doc["target"]["name"],
        "emulated": bool(doc.get("emulated") or doc["target"].get("emulated")),
        "model": model["name"],
        "model_sha256": model.get("sha256"),
        "format": model.get("format"),
        "size_bytes": model.get("size_bytes"),
        "accuracy": accuracy_of(doc),
        "runtime": runtime.get("name"),
        "runtime_version": runtime.get("version"),
        "threads": runtime.get("threads"),
        "n": latency.get("n"),
        "mean_ms": latency.get("mean"),
        "std_ms": latency.get("std"),
        "p50_ms": latency.get("p50"),
        "p90_ms": latency.get("p90"),
        "p99_ms": latency.get("p99"),
        "init_ms": doc.get("init_ms"),
        "first_inference_ms": doc.get("first_inference_ms"),
        "peak_rss_mb": memory.get("peak_rss_mb"),
        "energy_mj": power.get("energy_per_inference_mj"),
        "power_source": power.get("source"),
        "throttled": bool(throttle_flags(doc)),
    }
