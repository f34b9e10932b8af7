"""`push` with two writers on one target, `--checksum`, and file systems out of space or inodes: real
processes against the local target and the real sshd fixture."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgedeploy.deploy.inventory import load_inventory
from edgedeploy.deploy.push import PART_SUFFIX, push_file
from edgedeploy.deploy.transports.local import LocalTransport
from edgedeploy.deploy.transports.ssh import SSHTransport
from edgedeploy.errors import TargetError
from edgedeploy.fileinfo import sha256_file
from tests.support.cli import run_cli
from tests.support.onnx_models import dense_onnx
from tests.support.sshd import SSHServer


def _start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edgedeploy", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*edgedeploy-*"))


def test_two_profiles_at_once_on_a_fresh_local_target(tmp_path: Path) -> None:
    """The issue's repro: both used to write `edgedeploy_runner.py.edgedeploy-part` and one failed with
    FileNotFoundError (4 times in 4). Now the second waits for the file's lock and finds it in place."""
    model = dense_onnx(tmp_path / "m.onnx")
    for round_ in range(2):  # each round on a fresh cache: both push runner and model at once
        env_cache = tmp_path / f"cache{round_}"
        env = {"XDG_CACHE_HOME": str(env_cache), "EDGEDEPLOY_PROFILES": str(tmp_path / "profiles")}
        procs = [
            _start_cli("profile", str(model), "--target", "local", "--runs", "20", "--json", env=env)
            for _ in range(2)
        ]
        results = [_finish(p) for p in procs]
        for code, out, err in results:
            assert code == 0, err
            assert json.loads(out)["latency_ms"]["p50"] > 0
        workdir = env_cache / "edgedeploy" / "targets" / "local"
        assert sha256_file(workdir / "models" / "m.onnx") == sha256_file(model)
        assert _leftovers(workdir) == []  # no part files, no lock files


def test_pushes_of_one_file_at_once_over_ssh(sshd: SSHServer, tmp_path: Path) -> None:
    """Two CI jobs sharing a board: the same changed file, then two different files under one name,
    pushed by two processes at once. Every push ends verified; the final file is one writer's whole
    file, never a mix; nothing is left behind."""
    inventory = tmp_path / "inv.yml"
    inventory.write_text(sshd.inventory_yaml("box"))
    final = sshd.root / "device-workdir" / "models" / "big.onnx"
    a, b = tmp_path / "a" / "big.onnx", tmp_path / "b" / "big.onnx"
    a.parent.mkdir()
    b.parent.mkdir()
    for case in ("first push", "same change", "different files"):
        a.write_bytes(os.urandom(6 << 20))
        b.write_bytes(a.read_bytes() if case != "different files" else os.urandom(6 << 20))
        procs = [_start_cli("push", str(f), "-t", "box", "-i", str(inventory), "--json") for f in (a, b)]
        results = [_finish(p) for p in procs]
        for code, _out, err in results:
            assert code == 0, f"{case}: {err}"
        docs = [json.loads(out) for _, out, _ in results]
        assert sha256_file(final) in {d["sha256"] for d in docs}, case
        manifest = json.loads((sshd.root / "device-workdir" / "manifest.json").read_text())
        assert manifest["files"]["models/big.onnx"]["sha256"] == sha256_file(final)
        assert _leftovers(sshd.root / "device-workdir") == [], case


def test_a_push_waits_for_the_file_lock_of_another_writer(tmp_path: Path) -> None:
    """Hold the lock as another writer would; the push waits (it does not write the shared part) and
    completes once the lock is released."""
    model = tmp_path / "m.onnx"
    model.write_bytes(os.urandom(100_000))
    models = tmp_path / "device" / "models"
    models.mkdir(parents=True)
    lock = models / ("m.onnx" + ".edgedeploy-lock")
    holder = lock.open("a")
    fcntl.flock(holder, fcntl.LOCK_EX)
    inventory = tmp_path / "inv.yml"
    inventory.write_text(
        "all:\n  hosts:\n    dev:\n      ansible_connection: local\n"
        f"      edgedeploy_workdir_local: {tmp_path / 'device'}\n"
    )
    proc = _start_cli("push", str(model), "-t", "dev", "-i", str(inventory), "--json")
    try:
        time.sleep(1.5)  # plenty for a 100 kB push; the assertion holds however slow the machine is
        assert proc.poll() is None and not (models / "m.onnx").exists()
        assert not (models / ("m.onnx" + PART_SUFFIX)).exists()
    finally:
        holder.close()  # releases the flock
    code, out, err = _finish(proc)
    assert code == 0, err
    assert json.loads(out)["sent_bytes"] == 100_000 and sha256_file(models / "m.onnx") == sha256_file(model)
    assert _leftovers(tmp_path / "device") == []


def _flip_a_byte_keeping_mtime(path: Path) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_checksum_finds_a_byte_flipped_on_the_device_with_its_mtime_kept(
    sshd: SSHServer, tmp_path: Path
) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text(sshd.inventory_yaml("box"))
    model = tmp_path / "net.onnx"
    model.write_bytes(os.urandom(200_000))
    first = json.loads(run_cli("push", str(model), "-t", "box", "-i", str(inventory), "--json").stdout)
    remote = Path(first["remote_path"])
    _flip_a_byte_keeping_mtime(remote)
    plain = json.loads(run_cli("push", str(model), "-t", "box", "-i", str(inventory), "--json").stdout)
    assert plain["skipped"] is True  # size and mtime match: the quick check cannot see it
    out = run_cli("push", str(model), "-t", "box", "-i", str(inventory), "--json", "--checksum")
    assert out.returncode == 0, out.stderr
    checked = json.loads(out.stdout)
    assert checked["skipped"] is False and checked["sent_bytes"] == 200_000
    assert sha256_file(remote) == sha256_file(model)
    again = json.loads(
        run_cli("push", str(model), "-t", "box", "-i", str(inventory), "--checksum", "--json").stdout
    )
    assert again["skipped"] is True and again["sent_bytes"] == 0

    # The local transport (and the runner beside the model) the same way, through the library.
    with LocalTransport("local", tmp_path / "device") as local:
        pushed = push_file(local, model, "models", python="python3")
        _flip_a_byte_keeping_mtime(Path(pushed.remote_path))
        assert push_file(local, model, "models", python="python3").skipped
        resent = push_file(local, model, "models", python="python3", checksum=True)
    assert not resent.skipped and sha256_file(Path(pushed.remote_path)) == sha256_file(model)


@contextlib.contextmanager
def _small_tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def test_out_of_space_and_out_of_inodes_are_named_exactly(sshd: SSHServer, tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text(sshd.inventory_yaml("box"))
    models = sshd.root / "device-workdir" / "models"
    model = tmp_path / "m.onnx"

    # 0.95 MiB (+ 64 KiB headroom) into 1 MiB said "1.0 MiB free, the upload needs 1.0 MiB": useless.
    # (The local target: its free-space check comes before any byte moves.)
    local_inventory = tmp_path / "local.yml"
    local_inventory.write_text(
        f"all:\n  hosts:\n    dev:\n      ansible_connection: local\n"
        f"      edgedeploy_workdir_local: {tmp_path / 'device'}\n"
    )
    with _small_tmpfs(tmp_path / "device" / "models", "size=1m") as small:
        model.write_bytes(os.urandom(1_000_000))
        out = run_cli("push", str(model), "-t", "dev", "-i", str(local_inventory))
        assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1
        assert "1.00 MiB free, the upload needs 1.02 MiB" in out.stderr, out.stderr
        assert list(small.iterdir()) == []

    # Plenty of bytes, no inodes: was "...edgedeploy-part failed: Failure".
    with _small_tmpfs(models, "size=4m,nr_inodes=16"):
        filled = 0
        with contextlib.suppress(OSError):
            while True:
                (models / f"f{filled}").write_bytes(b"")
                filled += 1
        model.write_bytes(os.urandom(1000))
        out = run_cli("push", str(model), "-t", "box", "-i", str(inventory))
        assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1
        assert "no free inodes" in out.stderr and "Failure" not in out.stderr, out.stderr
        target = load_inventory(inventory).get("box")
        with SSHTransport(target) as ssh, pytest.raises(TargetError, match="no free inodes"):
            push_file(ssh, model, "models", python="python3")
        assert len(list(models.iterdir())) == filled  # nothing of ours left


def test_fleet_checksum_replaces_a_device_copy_altered_with_its_mtime_kept(
    sshd: SSHServer, tmp_path: Path
) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text(sshd.inventory_yaml("box", ansible_python_interpreter=sys.executable))  # has ORT
    model = dense_onnx(tmp_path / "m.onnx")
    first = run_cli("push", str(model), "-t", "box", "-i", str(inventory), "--json")
    assert first.returncode == 0, first.stderr
    remote = Path(json.loads(first.stdout)["remote_path"])
    _flip_a_byte_keeping_mtime(remote)
    fleet = [
        "fleet",
        "profile",
        str(model),
        "-t",
        "box",
        "-i",
        str(inventory),
        "--runs",
        "3",
        "--warmup",
        "1",
    ]
    fleet += ["--dir", str(tmp_path / "profiles"), "--json"]
    run_cli(*fleet)  # may fail or not on the altered model; it must not notice the change either way
    assert sha256_file(remote) != sha256_file(model)
    checked = run_cli(*fleet, "--checksum")
    assert checked.returncode == 0, checked.stdout[-2000:]
    assert sha256_file(remote) == sha256_file(model)
