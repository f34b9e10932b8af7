"""A fleet over several arm64 hosts: chroot stand-ins of the emulator image (qemu-user), each with its
own sshd on port 22 of its own network namespace and address.

The hosts get the runtime by unpacking the pinned aarch64 wheels on the host side into their
/usr/local (what a provisioned board holds; `provision` itself, which installs under emulation in
~2 min a device, is covered by the VM test in test_emulator_qemu.py). Reuses the image that test
builds and skips when none is cached, or when namespaces or qemu-user cannot run here. The hosts'
unpacked rootfs and the runtime are kept in the user's cache (tests/emulator_env.FLEET_HOSTS) and
reused by the next run.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgedeploy.deploy import provision
from edgedeploy.deploy.emulator import image as emulator_image
from edgedeploy.deploy.emulator import instances as emulator
from edgedeploy.deploy.inventory import load_inventory
from edgedeploy.errors import TargetError, UsageError
from edgedeploy.fleet_job import run_fleet
from edgedeploy.options import FleetProfileOptions
from tests.support.emulator_env import FLEET_HOSTS, IMAGES
from tests.support.isolation import IsolationUnavailable, network_namespace
from tests.support.onnx_models import dense_onnx

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

HOSTS = 3
SITE_PACKAGES = "usr/local/lib/python3.11/dist-packages"  # on Debian python3's sys.path
RUNTIME_MARKER = f"{provision.RUNTIME_REQUIREMENTS['onnxruntime'].replace('==', '-')}.dist-info"


def _aarch64_runtime(dest: Path) -> Path:
    """onnxruntime and numpy for the image's Python 3.11 (bookworm, glibc 2.36), unpacked into `dest`."""
    if (dest / RUNTIME_MARKER).is_dir():
        return dest
    platform = provision.wheel_platform("aarch64", "3.11", "2.36")
    requirements = [provision.RUNTIME_REQUIREMENTS["onnxruntime"], *provision.BASE_REQUIREMENTS]
    try:
        wheels = provision.download_wheels(requirements, platform, provision.wheel_cache(platform))
    except TargetError as exc:
        pytest.skip(f"aarch64 wheels not cached and not downloadable: {exc}")
    partial = Path(f"{dest}.partial")
    shutil.rmtree(partial, ignore_errors=True)  # an install interrupted earlier
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
         f"--target={partial}", *platform.pip_args(), *map(str, wheels)],
        check=True, capture_output=True,
    )  # fmt: skip
    partial.replace(dest)
    return dest


def _mounted_under(path: Path) -> bool:
    mounts = Path("/proc/mounts").read_text().splitlines()
    return any(f" {path}/" in line or f" {path} " in line for line in mounts)


def _group_inventory(path: Path, names: list[str]) -> Path:
    """Just these hosts (as `emulator start` recorded them) in group `arm64`."""
    recorded = load_inventory()
    hosts = {name: recorded.get(name).vars for name in names}
    path.write_text(yaml.safe_dump({"all": {"children": {"arm64": {"hosts": hosts}}}}))
    return path


def test_fleet_over_arm64_chroot_hosts_each_in_its_own_namespace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EDGEDEPLOY_EMULATOR_IMAGES", str(IMAGES))
    try:
        emulator_image.verify_image("bookworm")
    except UsageError as exc:
        pytest.skip(f"no cached arm64 image (the qemu VM test builds it): {exc}")
    monkeypatch.setattr(emulator, "instances_root", lambda: FLEET_HOSTS)
    runtime = _aarch64_runtime(FLEET_HOSTS / "aarch64-runtime")
    model = dense_onnx(tmp_path / "m.onnx", 32)
    names = [f"arm{i}" for i in range(HOSTS)]
    states = []
    with contextlib.ExitStack() as stack:
        for name in names:
            try:
                ns = stack.enter_context(network_namespace())
                state = emulator.start_instance(name=name, kind="chroot", netns=(ns.name, ns.address))
            except IsolationUnavailable as exc:
                pytest.skip(f"no network namespaces here: {exc}")
            except emulator_image.EmulatorUnavailable as exc:
                pytest.skip(f"qemu-user cannot run here: {exc}")
            stack.callback(emulator.stop_instance, name)
            states.append(state)
            site = Path(state["directory"]) / "rootfs" / SITE_PACKAGES
            if not (site / RUNTIME_MARKER).is_dir():
                shutil.copytree(runtime, site, dirs_exist_ok=True)
        inventory = _group_inventory(tmp_path / "arm64.yml", names)
        options = FleetProfileOptions(
            inventory=inventory, runs=5, warmup=1, timeout=300, profiles_dir=tmp_path / "store"
        )
        result = run_fleet([model], "arm64", options)
    assert [r.status for r in result.rows] == ["ok"] * HOSTS, result.rows
    assert sorted(r.target for r in result.rows) == names
    addresses = [s["address"] for s in states]
    assert len(set(addresses)) == HOSTS and all(a.startswith("10.77.") for a in addresses)
    for row in result.rows:
        profile = json.loads(Path(str(row.profile_path)).read_text())
        assert profile["emulated"] is True and profile["target"]["arch"] == "aarch64", profile["target"]
    for state in states:  # stopped and unmounted (the rootfs stays for the next run)
        assert not _mounted_under(Path(state["directory"]) / "rootfs")
