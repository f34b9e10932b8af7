"""Target inventory in Ansible's YAML format: `all:` with `hosts`, `vars` and `children` groups.

Sources, later ones winning: the built-in `targets/inventory.yml`, the user's
`~/.config/edgedeploy/inventory.yml` (emulator instances are recorded there), `$EDGEDEPLOY_INVENTORY`,
then `--inventory FILE`. Variable precedence follows Ansible: all < parent group < child group < host.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgedeploy.errors import UsageError

REPO_TARGETS = Path(__file__).resolve().parents[2] / "targets" / "inventory.yml"


def config_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "edgedeploy"


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgedeploy"


def user_inventory_path() -> Path:
    return config_dir() / "inventory.yml"


@dataclass
class Target:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)

    @property
    def connection(self) -> str:
        return str(self.vars.get("ansible_connection", "ssh"))

    @property
    def host(self) -> str:
        return str(self.vars.get("ansible_host", self.name))

    @property
    def port(self) -> int | None:
        port = self.vars.get("ansible_port")
        return int(port) if port not in (None, "") else None

    @property
    def user(self) -> str | None:
        user = self.vars.get("ansible_user")
        return str(user) if user else None

    @property
    def key_file(self) -> str | None:
        key = self.vars.get("ansible_ssh_private_key_file")
        return os.path.expanduser(str(key)) if key else None

    @property
    def python(self) -> str:
        """The device's Python (Ansible's variable). For `local` it defaults to the Python running
        edgedeploy, whose environment has the runtimes; elsewhere to `python3` as in Ansible."""
        if "ansible_python_interpreter" in self.vars:
            return str(self.vars["ansible_python_interpreter"])
        return sys.executable if self.connection == "local" else "python3"

    @property
    def workdir(self) -> str:
        return str(self.vars.get("edgedeploy_workdir", ".edgedeploy"))

    @property
    def threads(self) -> int | None:
        threads = self.vars.get("edgedeploy_threads")
        return int(threads) if threads else None

    @property
    def runtime(self) -> str:
        return str(self.vars.get("edgedeploy_runtime", "auto"))

    @property
    def emulated(self) -> bool:
        return bool(self.vars.get("edgedeploy_emulated", False))

    @property
    def power_model(self) -> dict[str, Any] | None:
        model = self.vars.get("edgedeploy_power_model")
        return dict(model) if isinstance(model, dict) else None


@dataclass
class Inventory:
    hosts: dict[str, Target] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)

    def resolve(self, name: str) -> list[Target]:
        """A host name gives that host; a group name gives its hosts (children included)."""
        if name in self.hosts:
            return [self.hosts[name]]
        if name in self.groups:
            members = self.groups[name]
            if not members:
                raise UsageError(f"target group {name!r} is empty")
            return [self.hosts[h] for h in members]
        known = ", ".join(sorted(set(self.hosts) | set(self.groups)))
        raise UsageError(f"unknown target {name!r} (known: {known})")

    def get(self, name: str) -> Target:
        if name not in self.hosts:
            if name in self.groups:
                raise UsageError(f"{name!r} is a group; this command needs one host")
            self.resolve(name)  # raises with the list of known names
        return self.hosts[name]


class _VaultValue:
    """Stands in for an Ansible Vault value (`!vault |`) so the error can name the key holding it."""

    def __init__(self, line: int) -> None:
        self.line = line


def _vault_key(node: Any, where: str) -> tuple[str, int] | None:
    """The dotted key of the first vault value in the parsed inventory, and its line."""
    if isinstance(node, _VaultValue):
        return where, node.line
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in children:
        found = _vault_key(value, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    class Loader(yaml.SafeLoader):  # a subclass: the vault constructor stays out of yaml's global one
        pass

    Loader.add_constructor("!vault", lambda _loader, node: _VaultValue(node.start_mark.line + 1))
    try:
        doc = yaml.load(path.read_text(), Loader=Loader)  # noqa: S506 - SafeLoader plus one tag
    except FileNotFoundError as exc:
        raise UsageError(f"inventory {path}: file not found") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UsageError(f"inventory {path}: not valid YAML ({exc.__class__.__name__})") from exc
    vault = _vault_key(doc, "")
    if vault:
        # edgedeploy cannot decrypt vault values (it is not Ansible); saying so beats a YAML error.
        raise UsageError(
            f"inventory {path}: {vault[0]} (line {vault[1]}) holds an Ansible Vault value (!vault), "
            "which edgedeploy does not support: use an SSH key, or give edgedeploy an inventory "
            "without vault values"
        )
    if doc is None:
        return {}
    if not isinstance(doc, dict) or ("all" not in doc and doc):
        raise UsageError(f"inventory {path}: expected a top-level 'all:' mapping (Ansible YAML inventory)")
    return doc


def _walk(
    name: str,
    node: dict[str, Any] | None,
    inherited: dict[str, Any],
    lineage: list[str],
    inv: Inventory,
    source: Path,
) -> list[str]:
    """Merge one group (and its children) into `inv`; returns the hosts under this group."""
    node = node or {}
    if not isinstance(node, dict):
        raise UsageError(f"inventory {source}: group {name!r} must be a mapping")
    group_vars = {**inherited, **(node.get("vars") or {})}
    members: list[str] = []
    for host, host_vars in (node.get("hosts") or {}).items():
        host = str(host)
        target = inv.hosts.get(host) or Target(host)
        # Ansible: group vars fill in, host vars win; a host redefined in a later file keeps the rest.
        target.vars = {**group_vars, **target.vars, **(host_vars or {})}
        for group in [*lineage, name]:
            if group not in target.groups:
                target.groups.append(group)
        inv.hosts[host] = target
        members.append(host)
    for child, child_node in (node.get("children") or {}).items():
        members += _walk(str(child), child_node, group_vars, [*lineage, name], inv, source)
    existing = inv.groups.setdefault(name, [])
    existing += [m for m in members if m not in existing]
    return members


def load_inventory(extra: Path | None = None) -> Inventory:
    inv = Inventory()
    paths = [REPO_TARGETS, user_inventory_path()]
    if env_path := os.environ.get("EDGEDEPLOY_INVENTORY"):
        paths.append(Path(env_path))
    for path in paths:
        if path.exists():
            _merge(inv, path)
    if extra is not None:
        _merge(inv, extra)
    return inv


def _merge(inv: Inventory, path: Path) -> None:
    doc = _read_yaml(path)
    if doc:
        _walk("all", doc.get("all"), {}, [], inv, path)
    inv.sources.append(path)
