"""`push` over the real sshd: unchanged re-push, dry run, a link killed mid-transfer, a full disk."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import psutil
import pytest
import yaml

from edgedeploy.deploy.inventory import Target, load_inventory
from edgedeploy.deploy.push import PART_SUFFIX, push_file
from edgedeploy.deploy.transports.ssh import SSHTransport
from edgedeploy.errors import TargetError
from edgedeploy.fileinfo import sha256_file
from edgedeploy.runner.device.pushfile import ORPHAN_AGE_S
from tests.support.cli import run_bench, run_cli
from tests.support.sshd import SSHServer, free_port


def _target(tmp_path: Path, server: SSHServer, **extra: object) -> tuple[Path, Target]:
    inventory = tmp_path / "inv.yml"
    inventory.write_text(server.inventory_yaml("box", **extra))
    return inventory, load_inventory(inventory).get("box")


def _kill_sshd(server: SSHServer) -> None:
    """Kill the listener AND its per-connection children: the link drops like a pulled cable."""
    assert server.proc is not None
    parent = psutil.Process(server.proc.pid)
    for proc in [*parent.children(recursive=True), parent]:
        with contextlib.suppress(psutil.NoSuchProcess):  # a session child may just have ended
            proc.kill()
    server.proc.wait()
    server.proc = None


def test_unchanged_repush_sends_zero_bytes_and_dry_run_moves_nothing(sshd: SSHServer, tmp_path: Path) -> None:
    model = tmp_path / "net.tflite"
    model.write_bytes(os.urandom(300_000))
    inventory, _ = _target(tmp_path, sshd)
    first = json.loads(run_cli("push", str(model), "-t", "box", "-i", str(inventory), "--json").stdout)
    assert first["sent_bytes"] == 300_000 and first["skipped"] is False
    second = json.loads(run_cli("push", str(model), "-t", "box", "-i", str(inventory), "--json").stdout)
    assert second["sent_bytes"] == 0 and second["skipped"] is True and second["sha256"] == first["sha256"]
    assert set(first) >= {"remote_path", "sha256", "sent_bytes", "skipped"}

    # The quick check (size + mtime, no device command) must not hide a same-size rewrite on the device.
    remote = Path(first["remote_path"])
    remote.write_bytes(os.urandom(300_000))
    third = json.loads(run_cli("push", str(model), "-t", "box", "-i", str(inventory), "--json").stdout)
    assert (
        third["sent_bytes"] == 300_000 and not third["skipped"] and remote.read_bytes() == model.read_bytes()
    )

    model.write_bytes(os.urandom(1000))
    dry = run_cli("push", str(model), "-t", "box", "-i", str(inventory), "--dry-run")
    assert dry.returncode == 0 and "would send 1000 bytes" in dry.stdout
    assert sha256_file(Path(first["remote_path"])) == first["sha256"]  # untouched
    manifest = json.loads((sshd.root / "device-workdir" / "manifest.json").read_text())
    assert manifest["files"]["models/net.tflite"]["sha256"] == first["sha256"]
    assert "edgedeploy_runner.pyz" in manifest["files"]


@pytest.mark.parametrize("replacing", [True, False], ids=["replacing-a-model", "first-push"])
def test_killed_link_mid_transfer_never_corrupts_and_next_push_resumes(
    sshd: SSHServer, tmp_path: Path, replacing: bool
) -> None:
    _, target = _target(tmp_path, sshd, edgedeploy_connect_retries=0, edgedeploy_io_timeout=10)
    model = tmp_path / "model.onnx"
    final = sshd.root / "device-workdir" / "models" / "model.onnx"
    if replacing:
        model.write_bytes(b"old model")
        with SSHTransport(target) as ssh:
            assert push_file(ssh, model, "models", python="python3").remote_path == str(final)
    model.write_bytes(os.urandom(24 << 20))
    killed_at: list[int] = []

    def pull_the_cable(done: int, total: int) -> None:
        if done >= 6 << 20 and not killed_at:
            killed_at.append(done)
            _kill_sshd(sshd)

    ssh = SSHTransport(target)
    ssh.connect()
    try:
        with pytest.raises(TargetError, match="run push again to resume"):
            push_file(ssh, model, "models", python="python3", progress=pull_the_cable)
    finally:
        ssh.close()
    if replacing:  # the final name still holds the previous, intact file
        assert final.read_bytes() == b"old model"
    else:
        assert not final.exists()
    # A replacing push wrote the shared part under the file's lock; a first push started uploading
    # before its device script held the lock, so under a name of its own (its device process died with
    # the link here: nothing parked it under the shared name). Either way it is partial and resumable.
    (part_file,) = final.parent.glob(final.name + PART_SUFFIX + "*")
    assert 0 < part_file.stat().st_size < model.stat().st_size
    part = Path(str(final) + PART_SUFFIX)
    if part_file != part:  # an own part is adopted only once untouched for ORPHAN_AGE_S (the run died)
        aged = part_file.stat().st_mtime - ORPHAN_AGE_S - 1
        os.utime(part_file, (aged, aged))

    sshd.start()
    with SSHTransport(target) as ssh:
        resumed = push_file(ssh, model, "models", python="python3")
    assert resumed.resumed_from > 0 and resumed.sent_bytes == model.stat().st_size - resumed.resumed_from
    assert sha256_file(final) == sha256_file(model)
    assert list(final.parent.glob(final.name + ".edgedeploy-*")) == []  # no part, no lock left


def test_full_disk_on_the_target_is_a_clear_error(sshd: SSHServer, tmp_path: Path) -> None:
    models = sshd.root / "device-workdir" / "models"
    models.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(models)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        inventory, target = _target(tmp_path, sshd)
        model = tmp_path / "big.onnx"
        model.write_bytes(os.urandom(3 << 20))
        out = run_cli("push", str(model), "-t", "box", "-i", str(inventory))
        assert out.returncode == 1
        # Found up front, or (a fresh push starts uploading while the device reports its free space)
        # when the upload hits the wall: either way one clear line and nothing left behind.
        assert re.search("not enough free space|no space left on the device", out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and list(models.iterdir()) == []
        # The disk fills up DURING the upload (past the up-front check): a clean error, no leftovers.
        model.write_bytes(os.urandom(900_000))
        filler = models / "other-process.bin"

        def fill_disk(done: int, total: int) -> None:
            if not filler.exists():
                filler.write_bytes(b"\0" * 300_000)

        with SSHTransport(target) as ssh, pytest.raises(TargetError, match="(?i)no space left on"):
            push_file(ssh, model, "models", python="python3", progress=fill_disk)
        assert sorted(p.name for p in models.iterdir()) == ["other-process.bin"]  # no part, no model
    finally:
        subprocess.run(["umount", str(models)], check=False)


def test_push_benchmark_quick_smoke() -> None:
    """bench/push.py --quick: a 2 MB push vs scp on its own sshd, JSON with both throughputs."""
    if shutil.which("scp") is None:
        pytest.skip("OpenSSH client (scp) not installed")
    out = run_bench("push", "--quick", timeout=900)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["push_mb_per_s"] > 0 and doc["scp_mb_per_s"] > 0 and doc["unchanged_repush_median_s"] > 0


def test_push_to_a_group_isolates_a_dead_host(sshd: SSHServer, tmp_path: Path) -> None:
    good = yaml.safe_load(sshd.inventory_yaml("box"))["all"]["hosts"]["box"]
    dead = {**good, "ansible_port": free_port(), "edgedeploy_connect_retries": 0}
    inventory = tmp_path / "group.yml"
    inventory.write_text(
        yaml.safe_dump({"all": {"children": {"lab": {"hosts": {"box": good, "dead": dead}}}}})
    )
    model = tmp_path / "m.onnx"
    model.write_bytes(b"weights")
    out = run_cli("push", str(model), "-t", "lab", "-i", str(inventory), "--json")
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert doc["group"] == "lab" and doc["ok"] is False
    rows = {row["target"]: row for row in doc["targets"]}
    assert rows["box"]["sent_bytes"] == 7 and "cannot reach" in rows["dead"]["error"]
