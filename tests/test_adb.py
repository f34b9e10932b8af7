"""The adb transport: the real `adb` client and server (Debian's adb) against tests/adb_device.py,
a device-side daemon speaking the adb wire protocol on loopback (no Android emulator can run here)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from edgedeploy.deploy.inventory import load_inventory
from edgedeploy.deploy.transports.adb import ADBTransport
from edgedeploy.errors import TargetError
from tests.support.adb_device import ADBDevice
from tests.support.cli import run_cli
from tests.support.sshd import free_port

ADB = shutil.which("adb")


@dataclass
class ADBSetup:
    device: ADBDevice
    server: str
    inventory: Path

    @property
    def workdir(self) -> Path:
        return self.device.root / "data" / "local" / "tmp" / "edgedeploy"


@pytest.fixture
def adb_device(tmp_path: Path) -> Iterator[ADBSetup]:
    """A private adb server (`adb nodaemon server`, own HOME for its ~/.android/adbkey) and a device."""
    if ADB is None:
        pytest.skip("adb not installed (make test installs Debian's adb)")
    home = tmp_path / "adb-home"
    home.mkdir()
    port = free_port()
    server = subprocess.Popen(
        [ADB, "-L", f"tcp:localhost:{port}", "nodaemon", "server"],
        env={**os.environ, "HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (tmp_path / "device-root").mkdir()
    device = ADBDevice(tmp_path / "device-root").start()
    try:
        deadline = time.monotonic() + 10
        while True:  # never let a client auto-start a (daemon) server: wait for ours to listen
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("adb server did not start")
                time.sleep(0.05)
        spec = f"tcp:localhost:{port}"
        inventory = tmp_path / "adb.yml"
        host_vars = {
            "ansible_connection": "adb",
            "edgedeploy_adb_serial": device.serial,
            "edgedeploy_adb_server": spec,
            "edgedeploy_workdir": str(device.root / "data/local/tmp/edgedeploy"),
            "ansible_python_interpreter": sys.executable,
        }
        inventory.write_text(
            yaml.safe_dump({"all": {"children": {"phones": {"hosts": {"phone": host_vars}}}}})
        )
        yield ADBSetup(device, spec, inventory)
    finally:
        device.stop()
        server.terminate()
        try:
            server.wait(timeout=1)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_push_skip_and_manifest_over_adb(adb_device: ADBSetup, tmp_path: Path) -> None:
    model = tmp_path / 'it\'s a "model" $(touch PWNED).tflite'
    model.write_bytes(os.urandom(200_000))
    args = ("push", str(model), "-t", "phone", "-i", str(adb_device.inventory), "--json")
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["sent_bytes"] == 200_000 and not doc["skipped"]
    assert Path(doc["remote_path"]).read_bytes() == model.read_bytes()
    assert Path(doc["remote_path"]).parent == adb_device.workdir / "models"
    again = json.loads(run_cli(*args).stdout)
    assert again["skipped"] and again["sent_bytes"] == 0
    manifest = json.loads((adb_device.workdir / "manifest.json").read_text())
    assert manifest["files"][f"models/{model.name}"]["sha256"] == doc["sha256"]
    assert list(adb_device.device.root.rglob("PWNED")) == []


def test_run_exit_codes_stdin_and_get_over_adb(adb_device: ADBSetup, tmp_path: Path) -> None:
    target = load_inventory(adb_device.inventory).get("phone")
    with ADBTransport(target) as adb:
        assert adb.workdir == str(adb_device.workdir)
        assert adb.run(["sh", "-c", "echo out; echo err >&2; exit 7"]).exit_code == 7
        result = adb.run(["sh", "-c", 'cat > "$NAME"; pwd'], env={"NAME": "a b;c"}, stdin=b"payload")
        assert result.ok and result.stdout.strip() == str(adb_device.workdir)
        assert (adb_device.workdir / "a b;c").read_bytes() == b"payload"
        adb.get("a b;c", tmp_path / "fetched")
        assert (tmp_path / "fetched").read_bytes() == b"payload"


def test_put_reports_progress_and_errors_over_adb(adb_device: ADBSetup, tmp_path: Path) -> None:
    model = tmp_path / "big.onnx"
    model.write_bytes(os.urandom(8_000_000))
    seen: list[tuple[int, int]] = []
    target = load_inventory(adb_device.inventory).get("phone")
    with ADBTransport(target) as adb:
        adb.put(model, "big.onnx", progress=lambda done, total: seen.append((done, total)))
        assert (adb_device.workdir / "big.onnx").read_bytes() == model.read_bytes()
        # adb's own per-percent progress, not one report at the end
        assert any(0 < done < model.stat().st_size for done, _ in seen)
        assert [done for done, _ in seen] == sorted(done for done, _ in seen)
        assert seen[-1] == (model.stat().st_size, model.stat().st_size)
        (adb_device.workdir / "blocked").write_text("a file where a directory should be")
        with pytest.raises(TargetError, match=r"writing .*blocked/big.onnx failed: .*\S") as failure:
            adb.put(model, "blocked/big.onnx", progress=lambda done, total: None)
        assert "\x1b" not in str(failure.value) and "%]" not in str(failure.value)


def test_targets_check_over_adb(adb_device: ADBSetup) -> None:
    out = run_cli("targets", "check", "phone", "-i", str(adb_device.inventory), "--json")
    assert out.returncode == 0, out.stderr
    facts = json.loads(out.stdout)
    assert (
        facts["connection"] == "adb" and facts["cores"] >= 1 and facts["workdir"] == str(adb_device.workdir)
    )


def test_unreachable_adb_device_is_one_line(adb_device: ADBSetup, tmp_path: Path) -> None:
    doc = yaml.safe_load(adb_device.inventory.read_text())
    doc["all"]["children"]["phones"]["hosts"]["phone"]["edgedeploy_adb_serial"] = f"127.0.0.1:{free_port()}"
    inventory = tmp_path / "gone.yml"
    inventory.write_text(yaml.safe_dump(doc))
    out = run_cli("targets", "check", "phone", "-i", str(inventory))
    assert out.returncode == 1 and "cannot reach 127.0.0.1:" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_missing_adb_binary_is_one_line(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    out = run_cli("push", str(model), "-t", "android-arm64", env={"PATH": str(tmp_path)})
    assert out.returncode == 1
    assert "adb client is not installed" in out.stderr and "apt-get install adb" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
