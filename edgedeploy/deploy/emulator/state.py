"""What the emulator's two kinds of instance (the qemu VM in instances.py, the chroot stand-in in
chroot.py) share: the instance's state file and the loopback SSH endpoint it answers on.

Both modules import this one and neither imports the other's internals back, so the VM can start
or stop a stand-in without the two modules importing each other.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from edgedeploy.errors import TargetError
from edgedeploy.fileinfo import write_json_atomic

STATE_FILE = "instance.json"


def read_state(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def write_state(directory: Path, state: dict[str, Any]) -> None:
    write_json_atomic(directory / STATE_FILE, state)


def free_loopback_port() -> int:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    except OSError as exc:
        raise TargetError(f"no free loopback port for the emulator's SSH forward ({exc.strerror})") from exc


def ssh_banner(port: int, timeout: float = 3.0, host: str = "127.0.0.1") -> bool:
    """True once the guest's sshd answers (slirp accepts the TCP connection before the guest does,
    so only the banner proves that sshd is up)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False
