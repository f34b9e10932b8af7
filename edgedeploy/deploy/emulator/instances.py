"""`edgedeploy emulator build|start|stop|status`: an emulated arm64 Debian device as an SSH target.

Each instance is qemu-system-aarch64 (`-M virt -cpu cortex-a72`, the Pi 4's core) booting the cached
image's kernel and initrd on a qcow2 overlay of its own (so several can run, and what is provisioned
survives a stop), with user networking (`restrict=on`: the guest reaches nothing) and one hostfwd of a
free loopback port to the guest's sshd. The instance is recorded in the user inventory as an ssh
target with `edgedeploy_emulated: true`, its known_hosts holding the image's host key (read from the
image at build time, so the first connection is already verified).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from edgedeploy.deploy.emulator.chroot import is_running, start_chroot, stop_chroot
from edgedeploy.deploy.emulator.image import (
    RUN_TOOLS,
    EmulatorUnavailable,
    build_image,
    ensure_host_tools,
    image_dir,
    verify_image,
)
from edgedeploy.deploy.emulator.state import free_loopback_port, read_state, ssh_banner, write_state
from edgedeploy.deploy.inventory import cache_dir
from edgedeploy.deploy.user_inventory import set_host_vars
from edgedeploy.errors import EdgeDeployError, TargetError, UsageError

__all__ = ["build_image", "list_instances", "start_instance", "stop_instance"]

INVENTORY_GROUP = "emulators"
GUEST_WORKDIR = "/root/edgedeploy"
# Typical boot to SSH is ~17-35 s; a loaded machine without KVM can need much more.
DEFAULT_BOOT_TIMEOUT_S = 600.0
POWEROFF_TIMEOUT_S = 60.0
CONSOLE_TAIL_LINES = 12
# Console lines that mean the guest itself failed (a bug), not that it was merely slow.
BOOT_FAILURE_MARKERS = ("Kernel panic", "initrd:", "emergency mode", "Failed to start OpenBSD Secure Shell")


def instances_root() -> Path:
    return cache_dir() / "emulator" / "instances"


def _instance_dir(name: str) -> Path:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise UsageError(f"invalid instance name {name!r} (letters, digits, '-', '_', '.')")
    return instances_root() / name


def _is_our_qemu(pid: int | None, directory: Path) -> bool:
    """True when `pid` is alive AND is this instance's qemu (a recycled PID must never be killed)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return (
        bool(cmdline)
        and b"qemu-system-aarch64" in cmdline[0]
        and str(directory).encode() in b" ".join(cmdline)
    )


def _is_running(state: dict[str, Any], directory: Path) -> bool:
    if state.get("kind") == "chroot":
        return is_running(state, directory)
    return _is_our_qemu(state.get("pid"), directory)


def console_tail(directory: Path, lines: int = CONSOLE_TAIL_LINES) -> str:
    try:
        text = (directory / "console.log").read_text(errors="replace")
    except OSError:
        return "(no console output)"
    # The serial console carries colour codes and carriage returns; keep the words.
    clean = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]|\r", "", line).rstrip() for line in text.splitlines()]
    kept = [line for line in clean if line.strip()][-lines:]
    return "\n".join(kept) or "(no console output)"


def _qemu_argv(directory: Path, image: Path, port: int, cpus: int, memory: int) -> list[str]:
    return [
        "qemu-system-aarch64",
        "-name", f"edgedeploy-{directory.name}",
        "-M", "virt",
        "-cpu", "cortex-a72",
        "-smp", str(cpus),
        "-m", str(memory),
        "-kernel", str(image / "vmlinuz"),
        "-initrd", str(image / "initrd.img"),
        "-append", "console=ttyAMA0 panic=-1",
        "-no-reboot",  # a guest panic or a poweroff ends the process
        "-drive", f"file={directory / 'disk.qcow2'},if=none,id=disk0,format=qcow2",
        "-device", "virtio-blk-pci,drive=disk0",
        "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
        "-device", "virtio-net-pci,netdev=net0,romfile=",  # no PXE ROM: Debian ships it separately
        "-device", "virtio-rng-pci",
        "-display", "none",
        "-monitor", "none",
        "-serial", f"file:{directory / 'console.log'}",
    ]  # fmt: skip


def _make_overlay(directory: Path, image: Path, manifest: dict[str, Any]) -> None:
    """A qcow2 overlay over the image; kept across stop/start unless the image was rebuilt."""
    overlay = directory / "disk.qcow2"
    stamp = directory / "image-build-id"
    if overlay.exists() and stamp.exists() and stamp.read_text().strip() == manifest["build_id"]:
        return
    overlay.unlink(missing_ok=True)
    done = subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            str(image / "rootfs.img"),
            str(overlay),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise TargetError(f"qemu-img create failed: {done.stderr.strip()}")
    stamp.write_text(manifest["build_id"] + "\n")


def _kill(proc_pid: int, directory: Path) -> None:
    """SIGTERM, then SIGKILL, this instance's qemu; waits until it is gone."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        if not _is_our_qemu(proc_pid, directory):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc_pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _is_our_qemu(proc_pid, directory):
            _reap(proc_pid)
            time.sleep(0.1)


def _reap(pid: int) -> None:
    """Collect our own child's exit status so that it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _wait_for_ssh(proc: subprocess.Popen[bytes], directory: Path, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            qemu_err = (directory / "qemu.log").read_text(errors="replace").strip()
            raise TargetError(
                f"emulator {directory.name}: qemu exited (code {proc.returncode}) before SSH came up"
                + (f": {qemu_err.splitlines()[-1]}" if qemu_err else "")
                + f"\nlast console lines:\n{console_tail(directory)}"
            )
        if ssh_banner(port):
            return
        time.sleep(1.0)
    tail = console_tail(directory)
    message = f"emulator {directory.name}: no SSH after {timeout:.0f} s\nlast console lines:\n{tail}"
    if any(marker in tail for marker in BOOT_FAILURE_MARKERS):
        raise TargetError(message)
    raise EmulatorUnavailable(
        message + "\n(the guest was still booting: this machine is too slow for the emulator without KVM;"
        " raise EDGEDEPLOY_EMULATOR_BOOT_TIMEOUT)"
    )


def _target_vars(state: dict[str, Any], image: Path) -> dict[str, Any]:
    return {
        "ansible_connection": "ssh",
        "ansible_host": state.get("address", "127.0.0.1"),
        "ansible_port": state["port"],
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(image / "id_ed25519"),
        "edgedeploy_known_hosts": state["known_hosts"],
        "edgedeploy_emulated": True,
        "edgedeploy_arch": "aarch64",
        "edgedeploy_workdir": GUEST_WORKDIR,
        "edgedeploy_threads": state["cpus"],
        "edgedeploy_power_model": {
            "idle_w": 2.7,
            "busy_w": 6.4,
            "note": "emulated Cortex-A72 (Pi 4 model); emulator timings are not device timings",
        },
    }


def start_instance(
    name: str = "qemu-arm64",
    cpus: int = 2,
    memory: int = 2048,
    suite: str = "bookworm",
    boot_timeout: float | None = None,
    kind: str = "vm",
    netns: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Boot an instance (or report the running one) and record it in the inventory. `kind` "vm" is
    qemu-system-aarch64; "chroot" is the cheaper stand-in (see emulator/chroot.py), which `netns`
    (an `ip netns` name and an address in it) puts on port 22 of its own network namespace."""
    if kind not in ("vm", "chroot"):
        raise UsageError(f"--kind must be vm or chroot (got {kind!r})")
    if not 1 <= cpus <= 64:
        raise UsageError(f"--cpus must be between 1 and 64 (got {cpus})")
    if not 256 <= memory <= 65536:
        raise UsageError(f"--memory must be between 256 and 65536 MiB (got {memory})")
    directory = _instance_dir(name)
    previous = read_state(directory)
    if previous and _is_running(previous, directory):
        return {**previous, "state": "running", "already_running": True}
    if kind == "chroot":
        return _start_chroot(name, directory, suite, netns)
    if netns:
        raise UsageError("only the chroot stand-in runs in a network namespace")
    image, manifest = verify_image(suite)
    ensure_host_tools(RUN_TOOLS)
    directory.mkdir(parents=True, exist_ok=True)
    _make_overlay(directory, image, manifest)
    if boot_timeout is None:
        boot_timeout = float(os.environ.get("EDGEDEPLOY_EMULATOR_BOOT_TIMEOUT", DEFAULT_BOOT_TIMEOUT_S))
    port = free_loopback_port()
    (directory / "console.log").write_text("")
    started = time.monotonic()
    with (directory / "qemu.log").open("wb") as qemu_log:
        proc = subprocess.Popen(
            _qemu_argv(directory, image, port, cpus, memory),
            stdin=subprocess.DEVNULL,
            stdout=qemu_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # keeps running after this command returns, and ignores its Ctrl-C
        )
    try:
        state: dict[str, Any] = {
            "name": name,
            "kind": "vm",
            "pid": proc.pid,
            "port": port,
            "cpus": cpus,
            "memory_mb": memory,
            "suite": suite,
            "image": str(image),
            "directory": str(directory),
            "known_hosts": str(directory / "known_hosts"),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_state(directory, state)
        _wait_for_ssh(proc, directory, port, boot_timeout)
        state["boot_seconds"] = round(time.monotonic() - started, 1)
        host_key = (image / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        (directory / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_key)}\n")
        write_state(directory, state)
        set_host_vars(name, _target_vars(state, image), group=INVENTORY_GROUP)
    except BaseException:
        # No stray qemu after a failure (including Ctrl-C).
        _kill(proc.pid, directory)
        proc.wait()
        raise
    return {**state, "state": "running", "target": name}


def _start_chroot(name: str, directory: Path, suite: str, netns: tuple[str, str] | None) -> dict[str, Any]:
    image = image_dir(suite)
    where = {"netns": netns[0], "address": netns[1]} if netns else {}
    state = {
        "name": name,
        **start_chroot(directory, suite, **where),
        "memory_mb": None,
        "suite": suite,
        "image": str(image),
        "directory": str(directory),
        "known_hosts": str(directory / "known_hosts"),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_state(directory, state)
    set_host_vars(
        name, {**_target_vars(state, image), "edgedeploy_emulator": "chroot"}, group=INVENTORY_GROUP
    )
    return {**state, "state": "running", "target": name}


def _running_chroots(besides: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for directory in sorted(instances_root().iterdir()):
        state = read_state(directory)
        if directory != besides and state and state.get("kind") == "chroot" and _is_running(state, directory):
            found.append((directory, state))
    return found


def stop_instance(name: str = "qemu-arm64") -> dict[str, Any]:
    """Power the guest off through SSH (the monitor's powerdown does not reach this guest), then
    kill qemu by PID if it is still there. A chroot stand-in is killed and unmounted."""
    directory = _instance_dir(name)
    state = read_state(directory)
    if state is None:
        raise UsageError(f"no emulator instance named {name!r} (see: edgedeploy emulator status)")
    if state.get("kind") == "chroot":
        how = stop_chroot(directory, state, _running_chroots(directory))
        state["pid"] = None
        write_state(directory, state)
        return {"name": name, "state": "stopped", "how": how}
    pid = state.get("pid")
    how = "already stopped"
    if _is_our_qemu(pid, directory):
        how = "killed"
        with contextlib.suppress(EdgeDeployError, OSError):
            _poweroff_over_ssh(name)
            deadline = time.monotonic() + POWEROFF_TIMEOUT_S
            while time.monotonic() < deadline and _is_our_qemu(pid, directory):
                _reap(pid)
                time.sleep(0.5)
            if not _is_our_qemu(pid, directory):
                how = "powered off"
        _kill(pid, directory)
    state["pid"] = None
    write_state(directory, state)
    return {"name": name, "state": "stopped", "how": how}


def _poweroff_over_ssh(name: str) -> None:
    from edgedeploy.deploy.inventory import load_inventory
    from edgedeploy.deploy.transports.connect import open_transport

    target = load_inventory().get(name)
    # The link drops as the guest goes down; whatever the command returns is fine.
    with open_transport(target) as transport, contextlib.suppress(EdgeDeployError):
        transport.run(["systemctl", "poweroff"], timeout=20)


def list_instances() -> list[dict[str, Any]]:
    rows = []
    root = instances_root()
    for directory in sorted(root.iterdir()) if root.is_dir() else []:
        state = read_state(directory)
        if state is None:
            continue
        running = _is_running(state, directory)
        rows.append(
            {
                "name": state["name"],
                "kind": state.get("kind", "vm"),
                "state": "running" if running else "stopped",
                "pid": state.get("pid") if running else None,
                "ssh": f"127.0.0.1:{state['port']}" if running else None,
                "cpus": state["cpus"],
                "memory_mb": state["memory_mb"],
                "suite": state["suite"],
                "started_at": state.get("started_at"),
                "boot_seconds": state.get("boot_seconds"),
            }
        )
    return rows
