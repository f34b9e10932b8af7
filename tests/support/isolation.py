"""Emulated independent devices for the fleet tests and bench/fleet.py: a real sshd in its own network
namespace (a veth pair; the device is 10.77.N.2, the host's side 10.77.N.1) and, optionally, in its
own cgroup-v1 CPU cgroup with a fixed CFS quota, so that each device has a CPU capacity of its own
the way a board does, instead of every "device" contending for the host's cores.

Needs root, iproute2's `ip netns`, and for the CPU cap the cgroup-v1 cpu controller mounted at
/sys/fs/cgroup/cpu. Everything created is removed on the way out, also after an exception or Ctrl-C
(processes left in the namespace or cgroup, i.e. the device's own sessions, are killed first).
`IsolationUnavailable` says why a machine cannot; callers skip or fall back with that reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.sshd import SSHServer, keygen, make_server

CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
CFS_PERIOD_US = 100_000
# A board's CPU is its own: the quota caps a device, and 8x the default weight lets it take that
# quota ahead of other work on the host (a ceiling alone is no capacity on a busy host).
DEVICE_CPU_SHARES = 8192
NAME_PREFIX = "edgedeploy-dev"


class IsolationUnavailable(RuntimeError):
    """This machine cannot create network namespaces or CPU cgroups (the message says why)."""


@dataclass(frozen=True)
class NetNamespace:
    name: str
    index: int  # N of the device's 10.77.N.0/24

    @property
    def host_veth(self) -> str:
        return f"eddev{self.index}h"  # interface names are at most 15 characters

    @property
    def device_veth(self) -> str:
        return f"eddev{self.index}d"

    @property
    def host_address(self) -> str:
        return f"10.77.{self.index}.1"

    @property
    def address(self) -> str:
        return f"10.77.{self.index}.2"


def _ip(*args: str, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    prefix = ["ip", "netns", "exec", netns, "ip"] if netns else ["ip"]
    return subprocess.run([*prefix, *args], capture_output=True, text=True, check=False)


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _subnets_in_use() -> set[int]:
    listing = _ip("-o", "-4", "addr", "show").stdout
    return {int(n) for n in re.findall(r"inet 10\.77\.(\d+)\.", listing)}


@contextlib.contextmanager
def network_namespace() -> Iterator[NetNamespace]:
    """A fresh network namespace joined to the host by a veth pair, each end addressed and up."""
    if os.geteuid() != 0:
        raise IsolationUnavailable("network namespaces need root")
    if shutil.which("ip") is None:
        raise IsolationUnavailable("iproute2's `ip` is not installed")
    in_use = _subnets_in_use()
    for index in range(1, 255):
        if index in in_use:
            continue
        ns = NetNamespace(f"{NAME_PREFIX}{index}", index)
        # The namespace name is the lock: a concurrent run (or a stale one) holding it makes this fail.
        added = _ip("netns", "add", ns.name)
        if added.returncode == 0:
            break
        if "exists" not in added.stderr:
            raise IsolationUnavailable(f"ip netns add: {added.stderr.strip()}")
    else:
        raise IsolationUnavailable("no free 10.77.N.0/24 subnet and namespace name")
    try:
        _ip("link", "del", ns.host_veth)  # a stale pair of a killed run; ours holds the name now
        steps: list[tuple[list[str], str | None]] = [
            (["link", "add", ns.host_veth, "type", "veth", "peer", "name", ns.device_veth], None),
            (["link", "set", ns.device_veth, "netns", ns.name], None),
            (["addr", "add", f"{ns.host_address}/24", "dev", ns.host_veth], None),
            (["link", "set", ns.host_veth, "up"], None),
            (["addr", "add", f"{ns.address}/24", "dev", ns.device_veth], ns.name),
            (["link", "set", ns.device_veth, "up"], ns.name),
            (["link", "set", "lo", "up"], ns.name),
        ]
        for args, netns in steps:
            done = _ip(*args, netns=netns)
            if done.returncode != 0:
                raise IsolationUnavailable(f"ip {' '.join(args)}: {done.stderr.strip()}")
        yield ns
    finally:
        _kill([int(pid) for pid in _ip("netns", "pids", ns.name).stdout.split()])
        _ip("link", "del", ns.host_veth)  # takes its peer with it
        _ip("netns", "del", ns.name)


def _cgroup_pids(path: Path) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(pid) for pid in (path / "cgroup.procs").read_text().split()]
    return []


@contextlib.contextmanager
def cpu_cgroup(name: str, cpus: float) -> Iterator[Path]:
    """A cgroup-v1 CPU cgroup capped at `cpus` CPUs (CFS quota per 100 ms period), weighted to get them
    ahead of other work (DEVICE_CPU_SHARES)."""
    if not (CGROUP_CPU / "cpu.cfs_quota_us").exists():
        raise IsolationUnavailable(f"no cgroup-v1 cpu controller with CFS quotas at {CGROUP_CPU}")
    path = CGROUP_CPU / name
    if path.is_dir() and not _cgroup_pids(path):
        path.rmdir()  # left empty by a killed run
    try:
        path.mkdir()
    except OSError as exc:
        raise IsolationUnavailable(f"cannot create CPU cgroup {path}: {exc}") from exc
    try:
        try:
            (path / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
            (path / "cpu.cfs_quota_us").write_text(str(round(cpus * CFS_PERIOD_US)))
            (path / "cpu.shares").write_text(str(DEVICE_CPU_SHARES))
        except OSError as exc:
            raise IsolationUnavailable(f"cannot set a CPU quota on {path}: {exc}") from exc
        yield path
    finally:
        deadline = time.monotonic() + 5
        while True:
            _kill(_cgroup_pids(path))
            try:
                path.rmdir()
                break
            except OSError:  # killed processes leave the cgroup once they are reaped
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def throttled_seconds(cgroup: Path) -> float:
    """How long the CFS quota has held this cgroup's processes back (cpu.stat throttled_time)."""
    for line in (cgroup / "cpu.stat").read_text().splitlines():
        key, value = line.split()
        if key == "throttled_time":
            return int(value) / 1e9
    return 0.0


@contextlib.contextmanager
def isolated_server(root: Path, client_key: Path, cpus: float | None = None) -> Iterator[SSHServer]:
    """A started sshd on port 22 of its own network namespace, its host key in its known_hosts file;
    with `cpus`, it and every session it forks run under that CPU cap."""
    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(network_namespace())
        server = make_server(root, host=ns.address, client_key=client_key, port=22)
        server.netns = ns.name
        if cpus is not None:
            # A capped device stands for a board with its own login scripts, not this host's: root's
            # ~/.bashrc here runs `pyenv init`, whose rehash lock on the one shared ~/.pyenv serialized
            # the capped devices' sessions (0.09 s alone; 1.3 s for eight at 0.2 CPU). bash skips
            # ~/.bashrc for an ssh command when SHLVL says it is not the top-level shell.
            server.session_env = ("SHLVL=1",)
            server.cpu_cgroup = stack.enter_context(cpu_cgroup(ns.name, cpus))
        stack.callback(server.stop)
        server.start()
        server.write_known_hosts()
        yield server


@contextlib.contextmanager
def ssh_servers(root: Path, count: int, device_cpus: float | None) -> Iterator[list[SSHServer]]:
    """`count` started sshd (the emulated devices of bench/fleet.py and bench/tune.py): on loopback
    ports, or with `device_cpus` each in its own network namespace and CPU cgroup (raises
    IsolationUnavailable where this machine cannot)."""
    root.mkdir(parents=True, exist_ok=True)
    client_key = keygen(root / "client_key")
    with contextlib.ExitStack() as stack:
        servers = []
        for i in range(count):
            if device_cpus is None:
                server = make_server(root / f"sshd{i}", client_key=client_key)
                stack.callback(server.stop)
                server.start().write_known_hosts()
            else:
                server = stack.enter_context(isolated_server(root / f"sshd{i}", client_key, cpus=device_cpus))
            servers.append(server)
        yield servers


def ssh_hosts(servers: list[SSHServer]) -> dict[str, dict[str, Any]]:
    """Inventory hosts dev0, dev1, ... for `servers`; the device's Python is this one."""
    hosts = {}
    for i, server in enumerate(servers):
        name = f"dev{i}"
        hosts[name] = {
            **yaml.safe_load(server.inventory_yaml(name))["all"]["hosts"][name],
            "ansible_python_interpreter": sys.executable,
        }
    return hosts
