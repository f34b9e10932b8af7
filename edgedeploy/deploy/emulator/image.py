"""`edgedeploy emulator build`: a bootable Debian arm64 disk image made only from Debian's packages.

Steps (timed, recorded in image.json):
1. debootstrap --arch=arm64 --variant=minbase, both stages at once, through qemu-user-static
   registered in binfmt_misc for the duration of the build (the registration we add is removed after);
2. the kernel stays OUT of the rootfs (building Debian's initramfs under emulation takes ~26 min):
   linux-image-*-arm64 and busybox-static are fetched with apt using a private arm64 configuration,
   unpacked with dpkg-deb -x, modules indexed with depmod -b;
3. a small busybox initrd loads virtio_pci, virtio_blk, ext4, virtio_net and switches root;
4. the rootfs is configured from the host (systemd-networkd DHCP, root's authorized key, fstab) and
   packed with mkfs.ext4 -d.
The image directory is assembled under a temporary name and renamed into place, so a failed build
never leaves a half image behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedeploy.deploy.inventory import cache_dir
from edgedeploy.errors import TargetError, UsageError

DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Packages beyond minbase: an init, networking, sshd, and Python with venv (provisioning needs it).
GUEST_PACKAGES = [
    "systemd",
    "systemd-sysv",
    "udev",
    "kmod",
    "iproute2",
    "openssh-server",
    "python3",
    "python3-venv",
    "ca-certificates",
]
# Loaded by the initrd, in this order (plus their modules.dep dependencies first). crc32c_generic is
# requested by ext4 through the crypto API, not a symbol, so modules.dep does not list it.
INITRD_MODULES = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "virtio_net", "virtio_rng"]
# Room left in the image for the provisioned venv, wheels and models.
FREE_SPACE_MB = 2048
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
# program -> Debian package that provides it
HOST_TOOLS = {
    "debootstrap": "debootstrap",
    "qemu-aarch64-static": "qemu-user-static",
    "qemu-system-aarch64": "qemu-system-arm",
    "qemu-img": "qemu-utils",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "depmod": "kmod",
    "chroot": "coreutils",
    "ssh-keygen": "openssh-client",
    "dpkg-deb": "dpkg",
    "apt-get": "apt",
}
RUN_TOOLS = ["qemu-system-aarch64", "qemu-img"]


class EmulatorUnavailable(TargetError):
    """This machine cannot build or boot the emulator (no binfmt_misc, no mirror, too slow): an
    environment limit rather than a bug, which tests report as a skip."""


def images_root() -> Path:
    """Where built images live: the user's cache, or $EDGEDEPLOY_EMULATOR_IMAGES (e.g. shared by CI)."""
    override = os.environ.get("EDGEDEPLOY_EMULATOR_IMAGES")
    return Path(override) if override else cache_dir() / "emulator" / "images"


def image_dir(suite: str) -> Path:
    return images_root() / suite


def _log(msg: str) -> None:
    # Progress of a build that takes minutes: on stderr, so that stdout stays the verb's result
    # (`emulator start` prints its instance as JSON there, after a build it may have started).
    sys.stderr.write(f"[emulator] {msg}\n")
    sys.stderr.flush()


def _which(prog: str) -> str | None:
    return shutil.which(prog) or shutil.which(prog, path="/usr/sbin:/sbin:/usr/bin:/bin")


def ensure_host_tools(programs: list[str]) -> None:
    """Install the Debian packages for missing programs when root (unless EDGEDEPLOY_NO_AUTO_INSTALL
    is set); otherwise fail with the apt-get command that would."""
    missing = sorted({HOST_TOOLS[p] for p in programs if _which(p) is None})
    if not missing:
        return
    hint = "apt-get install --no-install-recommends " + " ".join(missing)
    if os.geteuid() != 0 or os.environ.get("EDGEDEPLOY_NO_AUTO_INSTALL"):
        raise UsageError(f"the emulator needs Debian packages that are missing; run: {hint}")
    _log(f"installing {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
            raise UsageError(f"could not install {' '.join(missing)} ({tail[0]}); run: {hint}")


def _run(argv: list[str], *, what: str, log: Path | None = None, timeout: float | None = None) -> str:
    """Run a build step; on failure raise with the last lines of its output."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise TargetError(f"{what}: timed out after {timeout:.0f} s") from exc
    if log is not None:
        with log.open("a") as fh:
            fh.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}\n")
    lines = (done.stderr + done.stdout).strip().splitlines()
    if done.returncode != 0 or any(m in ln for ln in lines for m in ("W: Failed to fetch", "W: Some index")):
        message = f"{what} failed: {' | '.join(lines[-3:]) or f'exit code {done.returncode}'}"
        raise _classify(message, done.stderr + done.stdout)
    return done.stdout


# Output of apt/debootstrap when the mirror, not edgedeploy, is at fault.
NETWORK_FAILURES = (
    "Couldn't download",
    "Failed getting release file",
    "Failed to fetch",
    "Temporary failure resolving",
    "Could not resolve",
    "Could not connect",
    "Connection failed",
    "Connection timed out",
    "Network is unreachable",
)


def _classify(message: str, output: str) -> TargetError:
    """A failed download is this machine's network (EmulatorUnavailable); anything else is an error."""
    if any(marker in output for marker in NETWORK_FAILURES):
        return EmulatorUnavailable(f"{message} (Debian's mirror could not be reached)")
    return TargetError(message)


@dataclass(frozen=True)
class BinfmtChange:
    """What register_aarch64_binfmt() changed, so that exactly that can be undone."""

    registered: bool
    mounted: bool


def register_aarch64_binfmt() -> BinfmtChange:
    """Make arm64 binaries run through qemu-user-static (mounting binfmt_misc if needed)."""
    if (BINFMT_DIR / "qemu-aarch64").exists():
        return BinfmtChange(False, False)  # binfmt-support/systemd registered it: leave theirs alone
    mounted = False
    if not (BINFMT_DIR / "register").exists():
        done = subprocess.run(
            ["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise EmulatorUnavailable(
                f"binfmt_misc cannot be mounted here ({done.stderr.strip() or 'mount failed'}); "
                "a container must run privileged to run arm64 programs through qemu-user"
            )
        mounted = True
    try:
        rule = BINFMT_CONF.read_text().strip().splitlines()[-1]
        (BINFMT_DIR / "register").write_text(rule + "\n")
    except OSError as exc:
        undo_binfmt(BinfmtChange(False, mounted))
        raise EmulatorUnavailable(f"cannot register qemu-aarch64 in binfmt_misc ({exc})") from exc
    return BinfmtChange(True, mounted)


def undo_binfmt(change: BinfmtChange) -> None:
    if change.registered:
        with contextlib.suppress(OSError):
            (BINFMT_DIR / "qemu-aarch64").write_text("-1\n")
    if change.mounted:
        subprocess.run(["umount", str(BINFMT_DIR)], capture_output=True)


@contextlib.contextmanager
def aarch64_binfmt() -> Iterator[None]:
    """arm64 binaries run through qemu-user-static inside the block; undone after."""
    change = register_aarch64_binfmt()
    try:
        yield
    finally:
        undo_binfmt(change)


def check_mirror(mirror: str, suite: str) -> None:
    url = f"{mirror.rstrip('/')}/dists/{suite}/Release"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=20):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise UsageError(f"Debian suite {suite!r} not found on {mirror}") from exc
        raise EmulatorUnavailable(f"cannot reach Debian's mirror {mirror} ({exc})") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise EmulatorUnavailable(f"cannot reach Debian's mirror {mirror} ({exc})") from exc


class PrivateApt:
    """apt for arm64 packages without touching the host's apt state (own lists, cache, sources)."""

    def __init__(self, root: Path, mirror: str, suite: str) -> None:
        for sub in ("lists/partial", "archives/partial"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "status").touch()
        sources = root / "sources.list"
        sources.write_text(
            "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]"
            f" {mirror} {suite} main\n"
        )
        self.root = root
        self.options = [
            "-o", "APT::Architecture=arm64",
            "-o", "APT::Architectures::=arm64",
            "-o", f"Dir::State={root}",
            "-o", f"Dir::State::Lists={root}/lists",
            "-o", f"Dir::State::status={root}/status",
            "-o", f"Dir::Cache={root}",
            "-o", f"Dir::Cache::Archives={root}/archives",
            "-o", f"Dir::Etc::SourceList={sources}",
            "-o", "Dir::Etc::SourceParts=/nonexistent",
            "-o", "APT::Sandbox::User=root",
            "-o", "Debug::NoLocking=1",
        ]  # fmt: skip

    def update(self, log: Path) -> None:
        _run(["apt-get", *self.options, "update"], what="apt-get update (arm64)", log=log, timeout=600)

    def kernel_package(self) -> str:
        """The versioned image package behind the linux-image-arm64 metapackage."""
        out = _run(["apt-cache", *self.options, "depends", "linux-image-arm64"], what="apt-cache depends")
        for line in out.splitlines():
            dep = line.strip().removeprefix("Depends:").strip()
            if line.strip().startswith("Depends:") and dep.startswith("linux-image-"):
                return dep
        raise TargetError("no linux-image-*-arm64 package found behind linux-image-arm64")

    def fetch_and_unpack(self, package: str, dest: Path, log: Path) -> None:
        work = self.root / "debs"
        work.mkdir(exist_ok=True)
        for old in work.glob(f"{package}_*.deb"):
            old.unlink()
        done = subprocess.run(
            ["apt-get", *self.options, "download", package], cwd=work, capture_output=True, text=True
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            raise _classify(f"apt-get download {package} failed: {last}", done.stderr)
        debs = list(work.glob(f"{package}_*.deb"))
        if len(debs) != 1:
            raise TargetError(f"apt-get download {package}: expected one .deb, found {len(debs)}")
        _run(["dpkg-deb", "-x", str(debs[0]), str(dest)], what=f"dpkg-deb -x {package}", log=log)


def module_load_order(modules_dep: str, wanted: list[str]) -> list[str]:
    """Module paths (as in modules.dep) to insmod in order: each module after its dependencies."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in modules_dep.splitlines():
        if ":" not in line:
            continue
        path, rest = line.split(":", 1)
        deps[path] = rest.split()
        stem = Path(path).name.split(".ko")[0]
        by_name[stem.replace("-", "_")] = path
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        # modules.dep lists every (transitive) dependency, the deepest last
        for dep in reversed(deps.get(path, [])):
            visit(dep)
        order.append(path)

    for name in wanted:
        path = by_name.get(name.replace("-", "_"))
        if path is None:
            raise TargetError(f"kernel module {name} not found in the kernel package")
        visit(path)
    return order


def newc_archive(entries: list[tuple[str, int, bytes, int]]) -> bytes:
    """A cpio 'newc' archive (what the kernel unpacks as initramfs). Entries: (path, mode, data, rdev)
    where rdev is (major << 8 | minor) for device nodes."""
    out = bytearray()

    def add(name: str, mode: int, data: bytes, rdev: int, ino: int) -> None:
        name_b = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev >> 8, rdev & 0xFF, len(name_b), 0]
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields) + name_b)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for ino, (name, mode, data, rdev) in enumerate(entries, start=1):
        add(name, mode, data, rdev, ino)
    add("TRAILER!!!", 0, b"", 0, 0)
    return bytes(out)


INIT_SCRIPT = """#!/bin/busybox sh
# edgedeploy initrd: load the few modules the virt machine needs, mount the root disk, switch to it.
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
for m in $($B cat /modules.order); do
  $B insmod /lib/modules/$m || echo "initrd: insmod $m failed"
done
n=0
while [ ! -b /dev/vda ] && [ $n -lt 300 ]; do $B sleep 0.1; n=$((n+1)); done
if ! $B mount -t ext4 -o rw /dev/vda /newroot; then
  echo "initrd: cannot mount the root disk /dev/vda; powering off"
  $B poweroff -f
fi
$B umount /proc /sys
$B mount --move /dev /newroot/dev
exec $B switch_root /newroot /sbin/init
"""


def build_initrd(kernel_root: Path, kernel_version: str, busybox: Path) -> bytes:
    moddir = kernel_root / "lib" / "modules" / kernel_version
    order = module_load_order((moddir / "modules.dep").read_text(), INITRD_MODULES)
    names = [Path(p).name for p in order]
    entries: list[tuple[str, int, bytes, int]] = [
        (d, 0o040755, b"", 0) for d in ("bin", "dev", "proc", "sys", "newroot", "lib", "lib/modules")
    ]
    entries += [
        ("dev/console", 0o020600, b"", 5 << 8 | 1),
        ("bin/busybox", 0o100755, busybox.read_bytes(), 0),
        ("init", 0o100755, INIT_SCRIPT.encode(), 0),
        ("modules.order", 0o100644, ("\n".join(names) + "\n").encode(), 0),
    ]
    entries += [(f"lib/modules/{Path(p).name}", 0o100644, (moddir / p).read_bytes(), 0) for p in order]
    return newc_archive(entries)


def _symlink(target: str, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def configure_rootfs(rootfs: Path, pubkey: str, kernel_root: Path, kernel_version: str) -> None:
    """Host-side edits of the guest's files: no command runs inside the guest here."""
    (rootfs / "etc/hostname").write_text("edgedeploy-arm64\n")
    (rootfs / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 edgedeploy-arm64\n")
    (rootfs / "etc/fstab").write_text("/dev/vda / ext4 defaults,noatime 0 1\n")
    # user networking with restrict=on: no DNS server to ask
    resolv = rootfs / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("")
    network = rootfs / "etc/systemd/network"
    network.mkdir(parents=True, exist_ok=True)
    (network / "20-wired.network").write_text("[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n")
    ssh_dir = rootfs / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(pubkey)
    (ssh_dir / "authorized_keys").chmod(0o600)
    # What `systemctl enable systemd-networkd` does, done by hand so that the host needs no systemd.
    units = rootfs / "etc/systemd/system"
    for wants, unit in (
        ("multi-user.target.wants", "systemd-networkd.service"),
        ("sockets.target.wants", "systemd-networkd.socket"),
        ("network-online.target.wants", "systemd-networkd-wait-online.service"),
    ):
        _symlink(f"/lib/systemd/system/{unit}", units / wants / unit)
    _symlink("/lib/systemd/system/systemd-networkd.service", units / "dbus-org.freedesktop.network1.service")
    # Periodic maintenance would steal emulated CPU from measurements: mask it.
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer"):
        _symlink("/dev/null", units / timer)
    # The modules loaded by the initrd, also in the guest so that modprobe finds them there.
    src = kernel_root / "lib" / "modules" / kernel_version
    dst = rootfs / "lib" / "modules" / kernel_version
    order = module_load_order((src / "modules.dep").read_text(), INITRD_MODULES)
    for rel in order:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dst / rel)
    for meta in src.glob("modules.builtin*"):
        shutil.copy2(meta, dst / meta.name)
    _run(["depmod", "-b", str(rootfs), kernel_version], what="depmod (guest)")
    # Downloaded packages and indexes are not needed on the device.
    for junk in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        junk.unlink()
    shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)


def _du_mb(path: Path) -> int:
    out = _run(["du", "-sm", "--apparent-size", str(path)], what="du")
    return int(out.split()[0])


def sha256_path(path: Path) -> str:
    from edgedeploy.fileinfo import sha256_file

    return sha256_file(path)


def load_manifest(suite: str) -> dict[str, Any] | None:
    try:
        return json.loads((image_dir(suite) / "image.json").read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _build_lock(suite: str) -> Iterator[None]:
    images_root().mkdir(parents=True, exist_ok=True)
    with (images_root() / f".{suite}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def build_image(suite: str = "bookworm", force: bool = False, mirror: str | None = None) -> Path:
    """Build (or reuse) the image for `suite`; returns its directory."""
    if not suite.replace("-", "").isalnum():
        raise UsageError(f"not a Debian suite name: {suite!r}")
    final = image_dir(suite)
    if not force and load_manifest(suite) is not None:
        return final
    ensure_host_tools(list(HOST_TOOLS))
    if os.geteuid() != 0:
        raise UsageError("building the emulator image needs root (debootstrap and binfmt_misc)")
    mirror = mirror or os.environ.get("EDGEDEPLOY_DEBIAN_MIRROR", DEFAULT_MIRROR)
    with _build_lock(suite):
        if not force and load_manifest(suite) is not None:
            return final  # built by another process while we waited for the lock
        check_mirror(mirror, suite)
        staging = Path(tempfile.mkdtemp(prefix=f".{suite}-build-", dir=images_root()))
        try:
            manifest = _build_into(staging, suite, mirror)
            (staging / "image.json").write_text(json.dumps(manifest, indent=2) + "\n")
            for scratch in ("rootfs", "kernel", "apt", "busybox"):
                shutil.rmtree(staging / scratch, ignore_errors=True)
            if final.exists():
                old = final.with_name(f".{suite}-old-{os.getpid()}")
                os.replace(final, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return final


def _build_into(out: Path, suite: str, mirror: str) -> dict[str, Any]:
    log = out / "build.log"
    steps: dict[str, float] = {}

    def step(name: str, started: float) -> None:
        steps[name] = round(time.monotonic() - started, 1)
        _log(f"{name}: {steps[name]:.0f} s")

    rootfs = out / "rootfs"
    t = time.monotonic()
    _log(f"debootstrap {suite} arm64 (minbase, through qemu-user; typically 5-10 min)")
    with aarch64_binfmt():
        argv = [
            "debootstrap", "--arch=arm64", "--variant=minbase", f"--include={','.join(GUEST_PACKAGES)}",
            suite, str(rootfs), mirror,
        ]  # fmt: skip
        try:
            _run(argv, what="debootstrap", log=log, timeout=3600)
        except TargetError as exc:
            detail = rootfs / "debootstrap" / "debootstrap.log"
            text = detail.read_text(errors="replace") if detail.exists() else ""
            tail = text.strip().splitlines()[-3:]
            raise _classify(f"{exc}{' | ' + ' | '.join(tail) if tail else ''}", f"{exc}\n{text}") from exc
        python = _run(
            ["chroot", str(rootfs), "python3", "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            what="python3 in the rootfs",
        ).strip()
    step("debootstrap", t)

    t = time.monotonic()
    apt = PrivateApt(out / "apt", mirror, suite)
    apt.update(log)
    kernel_pkg = apt.kernel_package()
    kernel_root = out / "kernel"
    apt.fetch_and_unpack(kernel_pkg, kernel_root, log)
    apt.fetch_and_unpack("busybox-static", out / "busybox", log)
    kernel_version = kernel_pkg.removeprefix("linux-image-")
    _run(["depmod", "-b", str(kernel_root), kernel_version], what="depmod (kernel)")
    shutil.copy2(kernel_root / "boot" / f"vmlinuz-{kernel_version}", out / "vmlinuz")
    (out / "initrd.img").write_bytes(build_initrd(kernel_root, kernel_version, out / "busybox/bin/busybox"))
    step("kernel_initrd", t)

    t = time.monotonic()
    keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgedeploy-emulator"]
    _run([*keygen, "-f", str(out / "id_ed25519")], what="ssh-keygen")
    _run(["ssh-keygen", "-A", "-f", str(rootfs)], what="ssh-keygen -A (guest host keys)")
    shutil.copy2(rootfs / "etc/ssh/ssh_host_ed25519_key.pub", out / "ssh_host_ed25519_key.pub")
    configure_rootfs(rootfs, (out / "id_ed25519.pub").read_text(), kernel_root, kernel_version)
    size_mb = _du_mb(rootfs) * 12 // 10 + FREE_SPACE_MB
    image = out / "rootfs.img"
    with image.open("wb") as fh:
        fh.truncate(size_mb * 1024 * 1024)
    _run(["mkfs.ext4", "-q", "-F", "-L", "edgedeploy-root", "-d", str(rootfs), str(image)],
         what="mkfs.ext4 -d", log=log)  # fmt: skip
    step("configure_mkfs", t)
    return {
        "suite": suite,
        "arch": "aarch64",
        "mirror": mirror,
        "kernel": kernel_version,
        "python": python,
        "packages": GUEST_PACKAGES,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": steps,
        "rootfs_size_mb": size_mb,
        "sha256": {name: sha256_path(out / name) for name in ("vmlinuz", "initrd.img")},
        "build_id": sha256_path(out / "initrd.img")[:12] + f"-{int(time.time())}",
    }


def verify_image(suite: str) -> tuple[Path, dict[str, Any]]:
    """The image directory and manifest, after checking that nothing is missing or damaged."""
    directory = image_dir(suite)
    manifest = load_manifest(suite)
    if manifest is None:
        raise UsageError(f"no emulator image for {suite!r}; run: edgedeploy emulator build --suite {suite}")
    rebuild = f"rebuild it: edgedeploy emulator build --suite {suite} --force"
    for name in ("rootfs.img", "id_ed25519", "ssh_host_ed25519_key.pub", *manifest["sha256"]):
        if not (directory / name).is_file():
            raise UsageError(f"emulator image {directory}: {name} is missing; {rebuild}")
    for name, want in manifest["sha256"].items():
        if sha256_path(directory / name) != want:
            raise UsageError(f"emulator image {directory}: {name} is corrupt (sha256 mismatch); {rebuild}")
    if (directory / "rootfs.img").stat().st_size != manifest["rootfs_size_mb"] * 1024 * 1024:
        raise UsageError(f"emulator image {directory}: rootfs.img has the wrong size (truncated?); {rebuild}")
    return directory, manifest
