"""Helpers for the fleet and profile-store tests: local-target and sshd inventories, a device Python
that hangs, and profile documents in the store's schema."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from edgedeploy.profiles.schema import SCHEMA_VERSION
from tests.support.sshd import SSHServer


def hanging_python(path: Path, pid_file: Path) -> Path:
    """A stand-in for the device's Python that hangs (records its PID so the test can end it)."""
    path.write_text(f"#!/bin/sh\necho $$ >> '{pid_file}'\nexec sleep 120\n")
    path.chmod(0o755)
    return path


def kill_recorded(pid_file: Path) -> None:
    if not pid_file.exists():
        return
    for line in pid_file.read_text().split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(line), signal.SIGKILL)


def local_inventory(path: Path, hosts: dict[str, dict[str, Any]], group: str = "lab") -> Path:
    """An inventory whose `group` holds local-connection hosts, each with its own work dir."""
    body = {
        name: {
            "ansible_connection": "local",
            "edgedeploy_workdir_local": str(path.parent / f"device-{name}"),
            **extra,
        }
        for name, extra in hosts.items()
    }
    path.write_text(yaml.safe_dump({"all": {"children": {group: {"hosts": body}, "nobody": {}}}}))
    return path


def ssh_inventory(path: Path, servers: list[SSHServer], group: str) -> Path:
    """An inventory whose `group` holds the running sshd `servers` as hosts box0, box1, ...; the
    device's Python is this one (it has the runtimes); an unreachable box fails at once."""
    hosts = {}
    for i, server in enumerate(servers):
        host = yaml.safe_load(server.inventory_yaml(f"box{i}"))["all"]["hosts"][f"box{i}"]
        host["ansible_python_interpreter"] = sys.executable
        host["edgedeploy_connect_retries"] = 0
        host["edgedeploy_connect_timeout"] = 5
        hosts[f"box{i}"] = host
    path.write_text(yaml.safe_dump({"all": {"children": {group: {"hosts": hosts}}}}))
    return path


_BASE: dict[str, Any] = {
    "schema_version": SCHEMA_VERSION,
    "edgedeploy_version": "0.1.0",
    "target": {"name": "pi5", "connection": "ssh", "arch": "aarch64", "emulated": False},
    "emulated": False,
    "model": {"path": "m.onnx", "name": "m", "sha256": "ab" * 32, "format": "onnx", "size_bytes": 1000},
    "runtime": {"name": "onnxruntime", "version": "1.31.1", "threads": 4},
    "init_ms": 10.0,
    "first_inference_ms": 2.0,
    "latency_ms": {"n": 100, "mean": 1.0, "std": 0.1, "min": 0.8, "p50": 1.0, "p90": 1.1, "p95": 1.15,
                   "p99": 1.3, "max": 1.5},
    "memory": {"peak_rss_mb": 50.0},
    "power": {"source": "estimated", "method": "power model", "energy_per_inference_mj": 5.0},
    "thermal": None,
}  # fmt: skip


def profile_doc(
    created: str, target: str = "pi5", variant: str = "m", *, p50: float = 1.0, std: float = 0.1, **top: Any
) -> dict[str, Any]:
    """A profile of model `variant` in the store's schema, latency scaled around `p50`; `top` entries
    replace top-level fields (dicts are merged into the existing ones)."""
    doc = copy.deepcopy(_BASE)
    doc["created"] = created
    doc["target"]["name"] = target
    doc["model"]["name"] = variant
    doc["model"]["sha256"] = hashlib.sha256(variant.encode()).hexdigest()
    scale = p50 / doc["latency_ms"]["p50"]
    doc["latency_ms"] = {k: v if k == "n" else v * scale for k, v in doc["latency_ms"].items()}
    doc["latency_ms"]["std"] = std
    for key, value in top.items():
        if key in doc and isinstance(doc[key], dict) and isinstance(value, dict):
            doc[key].update(value)
        else:
            doc[key] = value
    return doc
