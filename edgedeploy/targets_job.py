"""`edgedeploy targets list|show|check`: the inventory, one target's variables, and probed device facts.

`check` connects, pushes the runner zipapp (skipped when unchanged) and runs its `probe` with the
device's Python (runner/device/probe.py, by deploy/facts.py), then caches the facts per target under
the cache dir so `show`, `list` and the profiles can use them without reconnecting.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgedeploy.deploy.facts import cached_facts, facts_path, probe
from edgedeploy.deploy.inventory import Inventory, Target, load_inventory
from edgedeploy.fileinfo import write_json_atomic
from edgedeploy.results import TargetFacts, TargetInfo, TargetRow


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


def list_targets(inventory: Path | None) -> list[TargetRow]:
    inv = load_inventory(inventory)
    rows = []
    for name, target in sorted(inv.hosts.items()):
        facts = cached_facts(name)
        rows.append(
            TargetRow(
                name=name,
                connection=target.connection,
                address=describe_address(target),
                groups=[g for g in target.groups if g != "all"],
                arch=(facts or {}).get("arch") or target.vars.get("edgedeploy_arch"),
                runtime=target.runtime,
                threads=target.threads,
                emulated=target.emulated,
                checked_at=(facts or {}).get("checked_at"),
            )
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


def show_target(name: str, inventory: Path | None) -> TargetInfo:
    inv = load_inventory(inventory)
    target = inv.get(name)
    return TargetInfo.from_doc(
        {
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
    )


def check_target(name: str, inventory: Path | None, *, trust_new: bool = False) -> TargetFacts:
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
    return TargetFacts.from_doc(doc)
