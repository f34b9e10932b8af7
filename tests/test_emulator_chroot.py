"""The cheaper arm64 stand-in: the image's rootfs as a chroot under qemu-user with its own sshd."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgedeploy.deploy.emulator import chroot as emulator_chroot
from edgedeploy.deploy.emulator import image as emulator_image
from edgedeploy.deploy.emulator import instances as emulator
from edgedeploy.deploy.inventory import load_inventory
from edgedeploy.deploy.transports.connect import open_transport
from tests.support.emulator_env import image_or_skip

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


def _binfmt_state() -> tuple[bool, bool]:
    binfmt = emulator_image.BINFMT_DIR
    return (binfmt / "register").exists(), (binfmt / "qemu-aarch64").exists()


def test_chroot_stand_in_is_an_arm64_ssh_target_and_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image_or_skip(monkeypatch)
    binfmt_before = _binfmt_state()
    try:
        info = emulator.start_instance(name="stand-in", kind="chroot")
    except emulator_image.EmulatorUnavailable as err:
        pytest.skip(f"qemu-user cannot run here: {err}")
    rootfs = Path(info["directory"]) / "rootfs"
    try:
        assert info["boot_seconds"] > 0  # recorded; not bounded here: a loaded host must not fail the test
        target = load_inventory().get("stand-in")
        assert target.emulated and target.vars["edgedeploy_emulator"] == "chroot"
        with open_transport(target) as transport:  # verified against the recorded host key
            result = transport.run(
                ["python3", "-c", "import platform; print(platform.machine())"], timeout=120
            )
        assert result.ok and result.stdout.strip() == "aarch64"
        assert [r["state"] for r in emulator.list_instances()] == ["running"]
    finally:
        stopped = emulator.stop_instance("stand-in")
    assert stopped["how"] == "killed"
    assert emulator_chroot.chroot_pids(rootfs) == []
    assert not any(str(rootfs) in line for line in Path("/proc/mounts").read_text().splitlines())
    assert _binfmt_state() == binfmt_before
