"""Writes to the user's inventory (~/.config/edgedeploy/inventory.yml): emulator instances and the
results of provisioning are recorded there as host variables, so every later command sees them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from edgedeploy.deploy.inventory import user_inventory_path
from edgedeploy.errors import UsageError


def _load(path: Path) -> dict[str, Any]:
    import yaml

    if not path.exists():
        return {"all": {}}
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"inventory {path}: not valid YAML ({exc.__class__.__name__})") from exc
    if not isinstance(doc, dict):
        raise UsageError(f"inventory {path}: expected a top-level 'all:' mapping")
    doc.setdefault("all", {})
    if doc["all"] is None:
        doc["all"] = {}
    return doc


def _save(path: Path, doc: dict[str, Any]) -> None:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".inventory-", suffix=".yml")
    with os.fdopen(fd, "w") as fh:
        fh.write("# Written by edgedeploy (emulator instances, provisioning results); edits are kept.\n")
        yaml.safe_dump(doc, fh, sort_keys=False)
    os.replace(tmp, path)


def _find_host(node: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The host-variable mapping of `name` anywhere in this group tree, or None."""
    hosts = node.get("hosts") or {}
    if name in hosts:
        if hosts[name] is None:
            hosts[name] = {}
        return hosts[name]
    for child in (node.get("children") or {}).values():
        if isinstance(child, dict) and (found := _find_host(child, name)) is not None:
            return found
    return None


def set_host_vars(name: str, updates: dict[str, Any], *, group: str | None = None) -> Path:
    """Merge `updates` into host `name`'s variables in the user inventory (creating the host under
    `group`, or directly under `all`, when it is not there yet). Returns the inventory path."""
    path = user_inventory_path()
    doc = _load(path)
    host_vars = _find_host(doc["all"], name)
    if host_vars is None:
        parent = doc["all"]
        if group:
            parent = parent.setdefault("children", {}) or {}
            doc["all"]["children"] = parent
            parent = parent.setdefault(group, {}) or {}
            doc["all"]["children"][group] = parent
        hosts = parent.get("hosts") or {}
        parent["hosts"] = hosts
        host_vars = hosts.setdefault(name, {})
    host_vars.update(updates)
    _save(path, doc)
    return path
