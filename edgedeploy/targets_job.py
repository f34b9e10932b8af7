"""`edgedeploy targets list|show|check`: the inventory, one target's variables, and probed device facts.

`check` connects, pushes the runner zipapp (skipped when unchanged) and runs its `probe` with the
device's Python (runner/device/probe.py, by deploy/facts.py), then caches the facts per target under
the cache dir so `show`, `list` and the profiles can use them without reconnecting.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from edgedeploy.deploy.facts import cached_facts, facts_path, probe
from edgedeploy.deploy.inventory import Inventory, Target, load_inventory
from edgedeploy.fileinfo import write_json_atomic


def describe_address(target: Target) -> str:
    if target.connection == "local":
        return "(this machine)"
    if target.connection == "adb":
        return str(
            target.vars.get("edgedeploy_adb_serial") or target.vars.get("ansible_host") or "(default device)"
        )
    user = f"{target.user}@" if target.user else ""
    port = f":{target.port}" if target.port else ""
    return f"{user}{target.host}{port}"


def list_targets(inventory: Path | None) -> list[dict[str, Any]]:
    inv = load_inventory(inventory)
    rows = []
    for name, target in sorted(inv.hosts.items()):
        facts = cached_facts(name)
        rows.append(
            {
                "name": name,
                "connection": target.connection,
                "address": describe_address(target),
                "groups": [g for g in target.groups if g != "all"],
                "arch": (facts or {}).get("arch") or target.vars.get("edgedeploy_arch"),
                "runtime": target.runtime,
                "threads": target.threads,
                "emulated": target.emulated,
                "checked_at": (facts or {}).get("checked_at"),
            }
        )
    return rows


# Variables whose values are secrets (ansible_password, ansible_become_pass, ansible_ssh_pass, a
# vault password file's contents...): `targets show` says they are set, never what they are.
SECRET_WORDS = ("pass", "secret", "token", "credential")
REDACTED = "<redacted>"


def redacted(key: str, value: Any) -> Any:
    """`value`, or REDACTED when the variable `key` holds a secret (nested values included)."""
    if any(word in key.lower() for word in SECRET_WORDS):
        return REDACTED if value not in (None, "") else value
    if isinstance(value, dict):
        return {k: redacted(str(k), v) for k, v in value.items()}
    return value


def show_target(name: str, inventory: Path | None) -> dict[str, Any]:
    inv = load_inventory(inventory)
    target = inv.get(name)
    return {
        "name": name,
        "connection": target.connection,
        "address": describe_address(target),
        "groups": [g for g in target.groups if g != "all"],
        "vars": {key: redacted(key, value) for key, value in sorted(target.vars.items())},
        "python": target.python,
        "workdir": target.workdir,
        "facts": cached_facts(name),
        "facts_path": str(facts_path(name)),
        "inventory_sources": [str(p) for p in inv.sources],
    }


def check_target(name: str, inventory: Path | None, *, trust_new: bool = False) -> dict[str, Any]:
    from edgedeploy.deploy.transports.connect import open_transport

    inv: Inventory = load_inventory(inventory)
    target = inv.get(name)
    start = time.perf_counter()
    with open_transport(target, trust_new=trust_new) as transport:
        facts = probe(transport, target)
    doc = {
        "target": name,
        "connection": target.connection,
        "address": describe_address(target),
        "emulated": target.emulated,
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "check_seconds": round(time.perf_counter() - start, 3),
        **facts,
    }
    write_json_atomic(facts_path(name), doc)
    return doc


# ------------------------------------------------------------------ printing


def print_list(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="targets")
    for column in ("name", "connection", "address", "groups", "arch", "runtime", "threads", "checked"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"] + (" (emulated)" if row["emulated"] else ""),
            row["connection"],
            row["address"],
            ", ".join(row["groups"]),
            row["arch"] or "?",
            row["runtime"],
            str(row["threads"] or "-"),
            row["checked_at"] or "never",
        )
    Console().print(table)


def print_show(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"target {doc['name']}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key in ("connection", "address", "python", "workdir"):
        table.add_row(key, str(doc[key]))
    table.add_row("groups", ", ".join(doc["groups"]))
    for key, value in doc["vars"].items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict | list) else str(value))
    Console().print(table)
    if doc["facts"]:
        print_facts(doc["facts"])
    else:
        print(f"no facts cached yet: run `edgedeploy targets check {doc['name']}`")


def print_facts(facts: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    isa = ", ".join(k for k, v in facts.get("isa", {}).items() if v) or "none of the tracked ones"
    runtimes = ", ".join(
        f"{name} {info['version']}"
        for name, info in facts.get("runtimes", {}).items()
        if info.get("available")
    )
    zones = facts.get("thermal_zones") or []
    thermal = ", ".join(f"{z['type']} {z['temp_c']:.0f}°C" for z in zones if z.get("temp_c") is not None)
    power = ", ".join(s.get("name") or s["kind"] for s in facts.get("power_sensors") or [])
    cpufreq = facts.get("cpufreq") or {}
    rows = [
        ("arch", facts.get("arch")),
        ("cpu", facts.get("cpu_model")),
        ("isa features", isa),
        ("cores", f"{facts.get('cores')} ({facts.get('cores_usable')} usable)"),
        ("ram", f"{facts.get('ram_mb')} MiB ({facts.get('ram_available_mb')} MiB available)"),
        ("free disk", f"{facts.get('disk_free_mb')} MiB in {facts.get('workdir')}"),
        ("os", f"{facts.get('os')} (kernel {facts.get('kernel')})"),
        ("python", f"{facts.get('python')} ({facts.get('python_path')})"),
        ("runtimes", runtimes or "none importable: see `edgedeploy provision`"),
        ("governor", ", ".join(cpufreq.get("governors") or []) or "n/a"),
        ("thermal", thermal or "no thermal zones"),
        ("power sensors", power or "none (power will be estimated)"),
    ]
    table = Table(title=f"facts: {facts.get('target')} ({facts.get('checked_at')})", show_header=False)
    table.add_column("fact", style="bold")
    table.add_column("value")
    for key, value in rows:
        table.add_row(key, str(value))
    Console().print(table)
