"""A fleet over real OpenSSH servers, one of which is stopped mid-run: on loopback ports, and each in
its own network namespace with its own address (created and removed by the fixture; that variant
skips with the reason where `ip netns` cannot run, e.g. without root).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgedeploy.fleet_job import Journal, run_fleet
from edgedeploy.options import FleetProfileOptions
from tests.support.fleet import ssh_inventory
from tests.support.isolation import IsolationUnavailable, isolated_server
from tests.support.onnx_models import dense_onnx
from tests.support.sshd import SSHServer, keygen, make_server, sshd_available


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


def test_ssh_fleet_with_a_server_stopped_mid_run(
    tmp_path: Path, servers: list[SSHServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    models = [dense_onnx(tmp_path / f"m{i}.onnx", 16 * (i + 1)) for i in range(2)]
    inv = ssh_inventory(tmp_path / "inv.yml", servers, "boxes")
    victim = servers[1]

    # Crash box1 (listener and live sessions) when the first job of any box is written to the journal,
    # inside the fleet's own thread: drain() appends a target's job before starting its next one, so
    # box1's second job always starts after the crash, however loaded the machine (a thread polling the
    # journal could be starved long enough for box1 to finish both jobs).
    append = Journal.append
    crashed = threading.Event()

    def append_then_crash(journal: Journal, event: dict[str, Any]) -> None:
        append(journal, event)
        if event.get("event") == "job" and not crashed.is_set():
            crashed.set()
            victim.crash()

    monkeypatch.setattr(Journal, "append", append_then_crash)
    options = FleetProfileOptions(
        inventory=inv, runs=5, warmup=1, timeout=60, retries=1, profiles_dir=tmp_path / "store"
    )
    result = run_fleet(models, "boxes", options)
    assert crashed.is_set()
    rows = {(r.target, Path(r.model).name): r for r in result.rows}
    for box in ("box0", "box2"):
        assert [rows[(box, m.name)].status for m in models] == ["ok", "ok"], result.rows
        assert all(Path(str(rows[(box, m.name)].profile_path)).is_file() for m in models)
    second = rows[("box1", "m1.onnx")]
    assert second.status == "error" and second.error, result.rows
    assert second.attempts == 2
    assert 1 <= result.failed <= 2
    if servers[0].netns:  # every device answered on its own address, none on loopback
        assert len({s.host for s in servers}) == 3 and not any(s.host.startswith("127.") for s in servers)
