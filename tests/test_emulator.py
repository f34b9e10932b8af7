"""Emulator plumbing without booting Debian: errors users can hit, and no qemu left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgedeploy.deploy.emulator import image as emulator_image
from edgedeploy.deploy.emulator import instances as emulator
from edgedeploy.deploy.inventory import load_inventory
from edgedeploy.deploy.user_inventory import set_host_vars
from edgedeploy.errors import EdgeDeployError, TargetError, UsageError
from tests.support.cli import run_cli

MODULES_DEP = """\
kernel/fs/ext4/ext4.ko: kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko kernel/lib/crc16.ko
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/lib/crc16.ko:
kernel/drivers/block/virtio_blk.ko:
kernel/drivers/char/hw_random/virtio-rng.ko:
"""


def test_module_load_order_puts_dependencies_first() -> None:
    order = emulator_image.module_load_order(MODULES_DEP, ["virtio_blk", "ext4", "crc16", "virtio_rng"])
    assert order[0] == "kernel/drivers/block/virtio_blk.ko"
    assert order.index("kernel/fs/ext4/ext4.ko") > max(
        order.index(dep) for dep in ("kernel/fs/mbcache.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/lib/crc16.ko")
    )
    assert len(order) == len(set(order)) == 6  # crc16 asked twice, loaded once
    with pytest.raises(TargetError, match="virtio_gpu"):
        emulator_image.module_load_order(MODULES_DEP, ["virtio_gpu"])


def test_missing_tools_give_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(emulator_image.HOST_TOOLS, "no-such-program-xyz", "no-such-package-xyz")
    monkeypatch.setenv("EDGEDEPLOY_NO_AUTO_INSTALL", "1")
    with pytest.raises(UsageError, match="apt-get install --no-install-recommends no-such-package-xyz"):
        emulator_image.ensure_host_tools(["no-such-program-xyz", "qemu-img"])


def test_start_without_image_and_unknown_instance_are_one_line_errors() -> None:
    started = run_cli("emulator", "start", "--name", "t1")
    assert started.returncode == 2
    assert started.stderr.strip() == (
        "error: no emulator image for 'bookworm'; run: edgedeploy emulator build --suite bookworm"
    )
    stopped = run_cli("emulator", "stop", "--name", "nope")
    assert stopped.returncode == 2 and "no emulator instance named 'nope'" in stopped.stderr
    status = run_cli("emulator", "status")
    assert status.returncode == 0 and "no emulator instances" in status.stdout
    bad = run_cli("emulator", "start", "--name", "../x")
    assert bad.returncode == 2 and "invalid instance name" in bad.stderr


def _fake_image(kernel: bytes, suite: str = "bookworm") -> Path:
    """An image directory with a consistent manifest around a kernel of our choosing."""
    directory = emulator_image.image_dir(suite)
    directory.mkdir(parents=True)
    (directory / "vmlinuz").write_bytes(kernel)
    (directory / "initrd.img").write_bytes(
        emulator_image.newc_archive([("init", 0o100755, b"#!/bin/sh\n", 0)])
    )
    with (directory / "rootfs.img").open("wb") as fh:
        fh.truncate(1024 * 1024)
    for name in ("id_ed25519", "ssh_host_ed25519_key.pub"):
        (directory / name).write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake test\n")
    manifest = {
        "suite": suite,
        "rootfs_size_mb": 1,
        "build_id": "test",
        "sha256": {n: emulator_image.sha256_path(directory / n) for n in ("vmlinuz", "initrd.img")},
    }
    (directory / "image.json").write_text(json.dumps(manifest))
    return directory


def test_corrupt_image_is_refused() -> None:
    directory = _fake_image(b"\0" * 4096)
    (directory / "initrd.img").write_bytes(b"garbage")
    with pytest.raises(UsageError, match=r"initrd.img is corrupt .*--force"):
        emulator.start_instance(name="corrupt")
    (directory / "rootfs.img").unlink()
    with pytest.raises(UsageError, match="rootfs.img is missing"):
        emulator.start_instance(name="corrupt")


@pytest.fixture
def qemu_tools() -> None:
    try:
        emulator_image.ensure_host_tools(emulator_image.RUN_TOOLS)
    except EdgeDeployError as err:
        pytest.skip(str(err))


def _qemu_processes_of(name: str) -> list[int]:
    marker = str(emulator.instances_root() / name).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu-system-aarch64" in cmdline and marker in cmdline:
                pids.append(int(entry.name))
    return pids


@pytest.mark.usefixtures("qemu_tools")
def test_guest_that_never_boots_times_out_with_console_and_no_stray_qemu() -> None:
    # A kernel of zeros: qemu runs it (undefined instructions forever), sshd never answers.
    _fake_image(b"\0" * 65536)
    with pytest.raises(TargetError, match="no SSH after 4 s") as err:
        emulator.start_instance(name="hang", boot_timeout=4)
    assert "last console lines:" in str(err.value)
    assert _qemu_processes_of("hang") == []
    assert emulator.list_instances()[0]["state"] == "stopped"


@pytest.mark.usefixtures("qemu_tools")
def test_qemu_that_exits_at_once_is_reported_with_its_reason() -> None:
    # A raw arm64 "kernel" that asks the firmware (PSCI over HVC) to power off: qemu exits at once.
    psci_system_off = (0x52800100, 0x72B08000, 0xD4000002)  # mov w0, #0x84000008; hvc #0
    _fake_image(b"".join(word.to_bytes(4, "little") for word in psci_system_off))
    with pytest.raises(TargetError, match=r"qemu exited \(code 0\) before SSH came up"):
        emulator.start_instance(name="bad", boot_timeout=60)
    assert _qemu_processes_of("bad") == []


def test_instances_are_recorded_as_emulated_ssh_targets() -> None:
    state = {"port": 40123, "cpus": 2, "known_hosts": "/tmp/kh"}
    set_host_vars("vm1", emulator._target_vars(state, Path("/img")), group=emulator.INVENTORY_GROUP)
    set_host_vars("vm1", {"ansible_port": 40124})  # a restart moves the port; the rest stays
    target = load_inventory().get("vm1")
    assert target.emulated and target.connection == "ssh" and target.port == 40124
    assert target.vars["edgedeploy_known_hosts"] == "/tmp/kh"
    assert "vm1" in load_inventory().groups["emulators"]
    assert target.vars["ansible_ssh_private_key_file"] == "/img/id_ed25519"


def test_cli_emulator_verbs_are_wired() -> None:
    done = run_cli("emulator", "--help")
    assert done.returncode == 0
    for verb in ("build", "start", "stop", "status"):
        assert verb in done.stdout


def test_unreachable_mirror_is_an_environment_limit_not_a_bug(tmp_path: Path) -> None:
    dead = "http://127.0.0.1:9/debian"  # discard port: nothing listens
    with pytest.raises(emulator_image.EmulatorUnavailable, match="cannot reach Debian's mirror"):
        emulator_image.check_mirror(dead, "bookworm")
    apt = emulator_image.PrivateApt(tmp_path / "apt", dead, "bookworm")
    with pytest.raises(emulator_image.EmulatorUnavailable, match="mirror could not be reached"):
        apt.update(tmp_path / "log")
