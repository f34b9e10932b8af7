"""The emulated independent devices of the fleet tests and bench/fleet.py (tests/isolation.py): a real
sshd in its own network namespace and CPU cgroup, and nothing of either left behind afterwards."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edgedeploy.deploy.inventory import load_inventory
from edgedeploy.deploy.transports.connect import open_transport
from tests.support.isolation import CGROUP_CPU, NAME_PREFIX, IsolationUnavailable, isolated_server
from tests.support.sshd import keygen, sshd_available


def _leftovers(name: str) -> list[str]:
    """What is left of the device whose namespace (and cgroup) is `name`."""
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    host_veth = f"eddev{name.removeprefix(NAME_PREFIX)}h"
    found = [f"namespace {name}"] if name in namespaces else []
    found += [f"veth {host_veth}"] if f" {host_veth}@" in links else []
    found += [f"cgroup {name}"] if (CGROUP_CPU / name).exists() else []
    return found


def test_isolated_server_runs_sessions_in_its_namespace_and_cpu_cap_and_cleans_up(tmp_path: Path) -> None:
    if not sshd_available():
        pytest.skip("OpenSSH server not installed (make test installs Debian's openssh-server)")
    client_key = keygen(tmp_path / "client_key")
    names = []
    try:
        with isolated_server(tmp_path / "dev", client_key, cpus=0.3) as server:
            assert server.netns and server.cpu_cgroup
            names.append(server.netns)
            assert (server.cpu_cgroup / "cpu.cfs_quota_us").read_text().strip() == "30000"
            inventory = tmp_path / "inv.yml"
            inventory.write_text(server.inventory_yaml("dev"))
            with open_transport(load_inventory(inventory).get("dev")) as transport:
                seen = transport.run(["sh", "-c", "ip -o -4 addr show; cat /proc/self/cgroup"], timeout=30)
            assert seen.ok, seen.stderr
            # its own network: its address and loopback, none of the host's interfaces
            assert f"inet {server.host}/24" in seen.stdout and "127.0.0.1" in seen.stdout
            assert sum(" inet " in line for line in seen.stdout.splitlines()) == 2
            assert f":cpu:/{server.netns}\n" in seen.stdout  # the session inherited sshd's CPU cgroup
            second_device = isolated_server(tmp_path / "dev2", client_key, cpus=0.3)
            with pytest.raises(RuntimeError, match="on purpose"), second_device as second:
                names.append(second.netns)
                assert second.host != server.host
                raise RuntimeError("on purpose")  # an error inside: its device is removed all the same
    except IsolationUnavailable as exc:
        pytest.skip(f"no network namespaces or CPU cgroups here: {exc}")
    assert len(names) == 2
    assert [_leftovers(name) for name in names] == [[], []]
