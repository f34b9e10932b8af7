"""`edgedeploy provision`: install inference runtimes on a device that has NO internet.

The host asks the device for its architecture, Python and glibc, downloads matching wheels with
`pip download` and explicit tags (cached per platform under the user's cache dir), pushes exactly the
files the resolution needs (sha256-verified, unchanged ones skipped), creates a venv in the device's
work dir, installs with `pip --no-index`, imports each runtime there, and records the venv's Python as
the target's `ansible_python_interpreter` with the versions as `edgedeploy_provisioned` in the user
inventory, so every later push/run/profile uses it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedeploy.deploy.inventory import cache_dir
from edgedeploy.deploy.push import push_file, remote_join
from edgedeploy.deploy.runner_client import runner_zipapp
from edgedeploy.deploy.transports.base import Transport
from edgedeploy.errors import TargetError, UsageError
from edgedeploy.runner import provisionable_runtimes, supported_runtimes

# The runtimes provisioning installs and their pins, from the runner's declaration (the same pins as
# pyproject.toml and Dockerfile.arm64: tests/test_dockerfile_arm64.py checks they agree).
RUNTIME_REQUIREMENTS = provisionable_runtimes()
# What `import` proves each runtime works (ai-edge-litert's interpreter loads its native library).
RUNTIME_MODULES = {name: supported_runtimes()[name]["module"] for name in RUNTIME_REQUIREMENTS}
# numpy for the runtimes and the runner; psutil for the runner's memory readings.
BASE_REQUIREMENTS = ["numpy==2.4.6", "psutil==7.2.2"]
# manylinux levels tried, newest first, as (glibc minor, tag); each needs that glibc on the device.
MANYLINUX_LEVELS = [(28, "manylinux_2_28"), (27, "manylinux_2_27"), (17, "manylinux2014")]
VENV_DIR = "venv"
# Runs from its wheel on the device (not installed in the venv); the last pip line for Python 3.8.
PIP_REQUIREMENT = "pip==24.3.1"
INSTALL_TIMEOUT_S = 1800.0  # pip under emulation byte-compiles slowly


@dataclass(frozen=True)
class WheelPlatform:
    """The pip tags that select wheels for one device."""

    arch: str
    python: str  # "3.11"
    platforms: list[str]

    @property
    def key(self) -> str:
        return f"cp{self.python.replace('.', '')}-{self.platforms[0]}"

    def pip_args(self) -> list[str]:
        abi = f"cp{self.python.replace('.', '')}"
        args = [f"--platform={p}" for p in self.platforms]
        return [*args, f"--python-version={self.python}", "--implementation=cp", f"--abi={abi}"] + [
            "--abi=abi3",
            "--abi=none",
            "--only-binary=:all:",
        ]


def wheel_platform(arch: str, python: str, glibc: str) -> WheelPlatform:
    """Tags for a Linux device from its `platform.machine()`, Python X.Y and glibc version."""
    if arch not in ("aarch64", "x86_64"):
        raise UsageError(f"provisioning supports aarch64 and x86_64 Linux devices, not {arch!r}")
    try:
        major, minor = (int(x) for x in glibc.split(".")[:2])
    except ValueError as exc:
        raise UsageError(f"device has no glibc (libc {glibc!r}): manylinux wheels need one") from exc
    tags = [f"{tag}_{arch}" for need, tag in MANYLINUX_LEVELS if (major, minor) >= (2, need)]
    if not tags:
        raise UsageError(f"device glibc {glibc} is older than 2.17: no manylinux wheels fit")
    return WheelPlatform(arch, python, tags)


def wheel_cache(platform: WheelPlatform) -> Path:
    return cache_dir() / "wheels" / platform.key


def _pip(args: list[str], *, timeout: float = 900.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _pip_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("ERROR")] or done.stderr.splitlines()
    return lines[-1].removeprefix("ERROR: ") if lines else f"exit code {done.returncode}"


def download_wheels(requirements: list[str], platform: WheelPlatform, dest: Path) -> list[Path]:
    """The wheels (dependencies included) that install `requirements` on `platform`, downloaded into
    `dest` unless already there. Returns exactly the files the resolution picked."""
    dest.mkdir(parents=True, exist_ok=True)
    tags = platform.pip_args()
    local = ["--no-index", f"--find-links={dest}"]
    # Offline first: a warm cache needs no network at all.
    if _pip(["download", "-q", *local, f"--dest={dest}", *tags, *requirements]).returncode != 0:
        done = _pip(["download", "-q", f"--dest={dest}", *tags, *requirements])
        if done.returncode != 0:
            raise TargetError(
                f"pip download for {platform.arch} Python {platform.python} failed: {_pip_error(done)}"
            )
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        done = _pip(
            ["install", "-q", "--dry-run", "--ignore-installed", *local, *tags]
            + [f"--target={tmp}/t", f"--report={report}", *requirements]
        )
        if done.returncode != 0:
            raise TargetError(f"resolving the cached wheels failed: {_pip_error(done)}")
        items = json.loads(report.read_text())["install"]
    from urllib.parse import unquote, urlparse

    return [Path(unquote(urlparse(item["download_info"]["url"]).path)) for item in items]


def _run_checked(transport: Transport, argv: list[str], what: str, timeout: float = 120.0) -> str:
    result = transport.run(argv, timeout=timeout)
    if not result.ok:
        raise TargetError(f"{transport.target_name}: {what} failed: {result.last_error_line()}")
    return result.stdout


def probe_device(transport: Transport, python: str, runner: str) -> dict[str, Any]:
    """The device's machine, Python X.Y and libc, from the runner zipapp's `platform` (at `runner`)."""
    result = transport.run([python, runner, "platform"], timeout=120)
    if result.exit_code == 127:
        raise TargetError(f"{transport.target_name}: {python} not found on the device; install python3")
    if not result.ok:
        raise TargetError(f"{transport.target_name}: probing the device failed: {result.last_error_line()}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _system_python(target_python: str) -> str:
    """The interpreter that creates the venv: the device's own, not a venv made by an earlier run."""
    return "python3" if target_python.endswith(f"/{VENV_DIR}/bin/python") else target_python


def provision_target(
    target_name: str,
    runtimes: list[str],
    inventory: Path | None = None,
    trust_new: bool = False,
) -> dict[str, Any]:
    from edgedeploy.deploy.inventory import load_inventory
    from edgedeploy.deploy.transports.connect import open_transport
    from edgedeploy.deploy.user_inventory import set_host_vars

    unknown = sorted(set(runtimes) - set(RUNTIME_REQUIREMENTS))
    if unknown or not runtimes:
        raise UsageError(
            f"unknown runtime {', '.join(unknown)!r}; choose from {', '.join(RUNTIME_REQUIREMENTS)}"
        )
    runtimes = sorted(set(runtimes))
    requirements = [RUNTIME_REQUIREMENTS[r] for r in runtimes] + BASE_REQUIREMENTS
    target = load_inventory(inventory).get(target_name)
    seconds: dict[str, float] = {}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        seconds[name] = round(now - clock, 1)
        clock = now

    with open_transport(target, trust_new=trust_new) as transport:
        python = _system_python(target.python)
        # The runner's facts commands answer the probe and the import check; it is pushed first (or
        # found unchanged), and every later run uses it anyway.
        runner = push_file(transport, runner_zipapp(), "", python=python).remote_path
        facts = probe_device(transport, python, runner)
        platform = wheel_platform(facts["machine"], facts["python"], facts["libc"][1])
        lap("probe")
        wheels = download_wheels([*requirements, PIP_REQUIREMENT], platform, wheel_cache(platform))
        lap("download")
        pushed = [push_file(transport, wheel, "wheels", python=python) for wheel in wheels]
        lap("push")
        venv = _run_checked(
            transport,
            [
                python,
                "-c",
                "import os,sys; print(os.path.abspath(sys.argv[1]))",
                remote_join(transport.workdir, VENV_DIR),
            ],
            "locating the work dir",
        ).strip()
        venv_python = f"{venv}/bin/python"
        if not transport.run([venv_python, "-c", "pass"], timeout=120).ok:
            # --without-pip: ensurepip costs minutes under emulation and is missing on some images
            # (Debian's python3 without python3-venv); pip runs from its pushed wheel instead.
            result = transport.run([python, "-m", "venv", "--without-pip", venv], timeout=600)
            if not result.ok:
                raise TargetError(f"{target.name}: creating a venv failed: {result.last_error_line()}")
        lap("venv")
        pip_wheel = next(
            p.remote_path for w, p in zip(wheels, pushed, strict=True) if w.name.startswith("pip-")
        )
        wheel_dir = pip_wheel.rsplit("/", 1)[0]
        # --no-compile: byte-compiling every module of the runtimes takes minutes on a slow board;
        # Python compiles the few it imports on first use.
        install = [venv_python, f"{pip_wheel}/pip", "install", "-q", "--disable-pip-version-check"]
        _run_checked(
            transport,
            [*install, "--no-index", "--no-compile", f"--find-links={wheel_dir}", *requirements],
            "pip install",
            INSTALL_TIMEOUT_S,
        )
        lap("install")
        dists = [r.split("==")[0] for r in requirements]
        modules = [RUNTIME_MODULES[r] for r in runtimes]
        out = _run_checked(
            transport, [venv_python, runner, "verify", ",".join(dists), *modules], "import check", 600
        )
        versions = json.loads(out.strip().splitlines()[-1])
        lap("verify")
    # Runtimes provisioned earlier into the same venv are still there: keep them on the record.
    earlier = target.vars.get("edgedeploy_provisioned") or {}
    kept = dict(earlier.get("runtimes") or {}) if target.python == venv_python else {}
    record = {
        "python": facts["python"],
        "arch": facts["machine"],
        "runtimes": {**kept, **{r: versions[r] for r in runtimes}},
        "numpy": versions["numpy"],
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    set_host_vars(target.name, {"ansible_python_interpreter": venv_python, "edgedeploy_provisioned": record})
    return {
        "target": target.name,
        "arch": facts["machine"],
        "python": facts["python"],
        "platforms": platform.platforms,
        "interpreter": venv_python,
        "installed": versions,
        "wheels": [
            {"file": w.name, "bytes": w.stat().st_size, "skipped": p.skipped}
            for w, p in zip(wheels, pushed, strict=True)
        ],
        "sent_bytes": sum(p.sent_bytes for p in pushed),
        "seconds": seconds,
    }
