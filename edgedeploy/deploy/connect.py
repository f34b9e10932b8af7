"""Pick the transport for a target from its `ansible_connection`."""

from __future__ import annotations

from pathlib import Path

from edgedeploy.deploy.inventory import Target, cache_dir
from edgedeploy.deploy.transport import Transport
from edgedeploy.errors import UsageError


def open_transport(target: Target, *, trust_new: bool = False) -> Transport:
    """An unconnected transport for `target` (use it as a context manager)."""
    kind = target.connection
    if kind == "local":
        from edgedeploy.deploy.local import LocalTransport

        workdir = Path(target.vars.get("edgedeploy_workdir_local") or cache_dir() / "targets" / target.name)
        return LocalTransport(target.name, workdir)
    if kind == "ssh":
        from edgedeploy.deploy.ssh import SSHTransport

        return SSHTransport(target, trust_new=trust_new)
    if kind == "adb":
        from edgedeploy.deploy.adb import ADBTransport

        return ADBTransport(target)
    raise UsageError(f"target {target.name!r}: unknown ansible_connection {kind!r} (local, ssh or adb)")
