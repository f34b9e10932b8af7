"""A fleet over real OpenSSH servers, one of which is stopped mid-run: on loopback ports, and each in
its own network namespace with its own address (created and removed by the fixture; that variant
skips with the reason where `ip netns` cannot run, e.g. without root).

Needs the ssh transport (edgedeploy.deploy.transports.ssh); skips until it is importable.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edgedeploy.fleet_job import journal_dir, run_fleet
from tests.fleet_support import make_onnx
from tests.isolation import IsolationUnavailable, isolated_server
from tests.sshd import SSHServer, keygen, make_server, sshd_available

pytest.importorskip("edgedeploy.deploy.transports.ssh", reason="ssh transport not in this branch yet")


@pytest.fixture(params=["loopback", "netns"])
def servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[SSHServer]]:
    if not sshd_available():
        pytest.skip("OpenSSH server not installed (make test installs Debian's openssh-server)")
    client_key = keygen(tmp_path / "client_key")
    with contextlib.ExitStack() as stack:
        started: list[SSHServer] = []
        for i in range(3):
            root = tmp_path / f"sshd{i}"
            if request.param == "netns":
                try:
                    started.append(stack.enter_context(isolated_server(root, client_key)))
                except IsolationUnavailable as exc:
                    pytest.skip(f"no network namespaces here: {exc}")
            else:
                server = make_server(root, client_key=client_key)
                stack.callback(server.stop)
                started.append(server.start())
                server.write_known_hosts()
        yield started


def _fleet_inventory(path: Path, servers: list[SSHServer]) -> Path:
    hosts = {}
    for i, server in enumerate(servers):
        host = yaml.safe_load(server.inventory_yaml(f"box{i}"))["all"]["hosts"][f"box{i}"]
        host["ansible_python_interpreter"] = sys.executable  # the device's Python has the runtimes
        host["edgedeploy_connect_retries"] = 0
        host["edgedeploy_connect_timeout"] = 5
        hosts[f"box{i}"] = host
    path.write_text(yaml.safe_dump({"all": {"children": {"boxes": {"hosts": hosts}}}}))
    return path


def test_ssh_fleet_with_a_server_stopped_mid_run(tmp_path: Path, servers: list[SSHServer]) -> None:
    models = [make_onnx(tmp_path / f"m{i}.onnx", 16 * (i + 1)) for i in range(2)]
    inv = _fleet_inventory(tmp_path / "inv.yml", servers)
    victim = servers[1]

    def stop_after_first_job() -> None:
        # Crash box1 (listener and live sessions) as soon as any job has finished: box1 then loses
        # its remaining work whether or not its next job had already connected.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any('"event": "job"' in p.read_text() for p in journal_dir().glob("*.jsonl")):
                victim.crash()
                return
            time.sleep(0.05)

    stopper = threading.Thread(target=stop_after_first_job, daemon=True)
    stopper.start()
    result = run_fleet(
        models, "boxes", inventory=inv, runs=5, warmup=1, timeout=60, retries=1,
        progress=False, store_root=tmp_path / "store",
    )  # fmt: skip
    stopper.join(5)
    rows = {(r["target"], Path(r["model"]).name): r for r in result["rows"]}
    for box in ("box0", "box2"):
        assert [rows[(box, m.name)]["status"] for m in models] == ["ok", "ok"], result["rows"]
        assert all(Path(rows[(box, m.name)]["profile_path"]).is_file() for m in models)
    second = rows[("box1", "m1.onnx")]
    assert second["status"] == "error" and second["error"], result["rows"]
    assert second["attempts"] == 2
    assert 1 <= result["failed"] <= 2
    if servers[0].netns:  # every device answered on its own address, none on loopback
        assert len({s.host for s in servers}) == 3 and not any(s.host.startswith("127.") for s in servers)
