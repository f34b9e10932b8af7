"""The cheaper arm64 stand-in: the emulator image's rootfs as a chroot under qemu-user, running its own
sshd on a loopback port, or on port 22 of a given network namespace (SSH in ~2 s instead of a 30-60 s
boot).

It has no kernel of its own: it shares the host's kernel, clock and (unless given one) network
namespace, and every arm64 program in it runs through qemu-user-static (binfmt_misc stays
registered while a stand-in runs). Use it where many arm64 hosts are needed (fleet tests, one per
network namespace), with the VM as the reference. Needs root (debugfs extraction, chroot, mounts,
binfmt_misc).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from edgedeploy.deploy.emulator.image import (
    BinfmtChange,
    EmulatorUnavailable,
    ensure_host_tools,
    register_aarch64_binfmt,
    undo_binfmt,
    verify_image,
)
from edgedeploy.deploy.emulator.state import free_loopback_port, ssh_banner, write_state
from edgedeploy.errors import TargetError, UsageError

# (mount point inside the rootfs, mount arguments); unmounted in reverse order.
MOUNTS = [
    ("proc", ["-t", "proc", "proc"]),
    ("dev", ["--bind", "/dev"]),
    ("run", ["-t", "tmpfs", "tmpfs"]),
]
SSHD_TIMEOUT_S = 120.0


def chroot_pids(rootfs: Path) -> list[int]:
    """Processes whose root directory is this rootfs (sshd and every session it started)."""
    want = os.path.realpath(rootfs)
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "root") == want:
                    pids.append(int(entry.name))
    return pids


def is_running(state: dict[str, Any], directory: Path) -> bool:
    return int(state.get("pid") or 0) in chroot_pids(directory / "rootfs")


def _extract_rootfs(directory: Path, image: Path, build_id: str) -> Path:
    """The image's files, unpacked with debugfs (no loop device needed); reused while the image is."""
    rootfs = directory / "rootfs"
    stamp = directory / "image-build-id"
    if rootfs.is_dir() and stamp.exists() and stamp.read_text().strip() == build_id:
        return rootfs
    shutil.rmtree(rootfs, ignore_errors=True)
    staging = directory / "rootfs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    done = subprocess.run(
        ["debugfs", "-R", f"rdump / {staging}", str(image / "rootfs.img")], capture_output=True, text=True
    )
    if done.returncode != 0 or not (staging / "usr/sbin/sshd").exists():
        shutil.rmtree(staging, ignore_errors=True)
        raise TargetError(f"could not unpack {image / 'rootfs.img'}: {done.stderr.strip()[-200:]}")
    os.replace(staging, rootfs)
    stamp.write_text(build_id + "\n")
    return rootfs


def _unmount_all(rootfs: Path) -> None:
    for point, _ in reversed(MOUNTS):
        target = rootfs / point
        if os.path.ismount(target):
            done = subprocess.run(["umount", str(target)], capture_output=True)
            if done.returncode != 0:  # still busy: detach now, the kernel finishes when it is free
                subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _kill_all(rootfs: Path) -> None:
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        for pid in chroot_pids(rootfs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and chroot_pids(rootfs):
            for pid in chroot_pids(rootfs):
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)


def start_chroot(
    directory: Path, suite: str, *, netns: str | None = None, address: str = "127.0.0.1"
) -> dict[str, Any]:
    """Start the stand-in in `directory`; returns its state (the caller records it). With `netns` (an
    `ip netns` name), its sshd listens on port 22 of `address`, an address inside that namespace."""
    if os.geteuid() != 0:
        raise UsageError("the chroot stand-in needs root (chroot, mounts, binfmt_misc)")
    image, manifest = verify_image(suite)
    ensure_host_tools(["qemu-aarch64-static", "debugfs"])
    directory.mkdir(parents=True, exist_ok=True)
    rootfs = _extract_rootfs(directory, image, manifest["build_id"])
    change = register_aarch64_binfmt()
    proc: subprocess.Popen[bytes] | None = None
    try:
        for point, args in MOUNTS:
            if not os.path.ismount(rootfs / point):
                subprocess.run(["mount", *args, str(rootfs / point)], check=True, capture_output=True)
        (rootfs / "run/sshd").mkdir(mode=0o755, exist_ok=True)
        port = 22 if netns else free_loopback_port()
        sshd = ["/usr/sbin/sshd", "-D", "-e", "-p", str(port), "-o", f"ListenAddress={address}"]
        enter = ["ip", "netns", "exec", netns] if netns else []
        with (directory / "sshd.log").open("wb") as log:
            proc = subprocess.Popen(
                [*enter, "chroot", str(rootfs), *sshd, "-o", "PidFile=none"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = time.monotonic()
        while not ssh_banner(port, host=address):
            if proc.poll() is not None or time.monotonic() - started > SSHD_TIMEOUT_S:
                tail = (directory / "sshd.log").read_text(errors="replace").strip().splitlines()[-3:]
                raise TargetError(f"chroot stand-in: sshd did not come up: {' | '.join(tail) or 'no output'}")
            time.sleep(0.2)
        host_key = (rootfs / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2]
        known_as = address if port == 22 else f"[{address}]:{port}"  # OpenSSH's known_hosts names
        (directory / "known_hosts").write_text(f"{known_as} {' '.join(host_key)}\n")
        return {
            "kind": "chroot",
            "pid": proc.pid,
            "address": address,
            "port": port,
            "cpus": os.cpu_count() or 1,
            "boot_seconds": round(time.monotonic() - started, 1),
            "binfmt": {"registered": change.registered, "mounted": change.mounted},
        }
    except BaseException as exc:
        _kill_all(rootfs)
        if proc is not None:
            proc.wait()
        _unmount_all(rootfs)
        undo_binfmt(change)
        if isinstance(exc, subprocess.CalledProcessError):  # e.g. a container without CAP_SYS_ADMIN
            detail = exc.stderr.decode().strip()
            raise EmulatorUnavailable(f"chroot stand-in: mount failed: {detail}") from exc
        raise


def stop_chroot(directory: Path, state: dict[str, Any], others: list[tuple[Path, dict[str, Any]]]) -> str:
    """Kill every process of the stand-in, unmount, and undo our binfmt registration unless another
    running stand-in still needs it (then that one inherits the duty). Returns how it stopped."""
    rootfs = directory / "rootfs"
    how = "killed" if chroot_pids(rootfs) else "already stopped"
    _kill_all(rootfs)
    _unmount_all(rootfs)
    change = BinfmtChange(**state.get("binfmt", {"registered": False, "mounted": False}))
    if others:
        heir_dir, heir = others[0]
        heir["binfmt"] = {
            "registered": change.registered or heir["binfmt"]["registered"],
            "mounted": change.mounted or heir["binfmt"]["mounted"],
        }
        write_state(heir_dir, heir)
    else:
        undo_binfmt(change)
    state["binfmt"] = {"registered": False, "mounted": False}
    return how
