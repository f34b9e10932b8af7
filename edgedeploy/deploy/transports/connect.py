"""Pick the transport for a target from its `ansible_connection`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgedeploy.deploy.inventory import Target, cache_dir
from edgedeploy.deploy.transports.base import Transport
from edgedeploy.errors import UsageError

_recording = threading.local()


@contextmanager
def record_opened_transports(into: list[Transport]) -> Iterator[list[Transport]]:
    """Append every transport `open_transport` makes in this thread, inside the block, to `into`.

    fleet's watchdog closes them when it abandons a hung job: a Python thread cannot be killed, but
    closing its link ends the device commands it and its helper threads wait on, so they cannot keep
    the process alive after the run (a push waits up to 120 s for a device's answer)."""
    previous = getattr(_recording, "into", None)
    _recording.into = into
    try:
        yield into
    finally:
        _recording.into = previous


def open_transport(target: Target, *, trust_new: bool = False) -> Transport:
    """An unconnected transport for `target` (use it as a context manager)."""
    transport = _make_transport(target, trust_new=trust_new)
    recorded = getattr(_recording, "into", None)
    if recorded is not None:
        recorded.append(transport)
    return transport


def _make_transport(target: Target, *, trust_new: bool) -> Transport:
    kind = target.connection
    if kind == "local":
        from edgedeploy.deploy.transports.local import LocalTransport

        workdir = Path(target.vars.get("edgedeploy_workdir_local") or cache_dir() / "targets" / target.name)
        return LocalTransport(target.name, workdir)
    if kind == "ssh":
        from edgedeploy.deploy.transports.ssh import SSHTransport

        return SSHTransport(target, trust_new=trust_new)
    if kind == "adb":
        from edgedeploy.deploy.transports.adb import ADBTransport

        return ADBTransport(target)
    raise UsageError(f"target {target.name!r}: unknown ansible_connection {kind!r} (local, ssh or adb)")
