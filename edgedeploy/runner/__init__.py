"""The device side (`runner/device/`, a package that imports nothing from edgedeploy) and what the
host needs of it: the runtimes it declares, and the zipapp that ships it.

The host never runs the device code in-process: it pushes `edgedeploy_runner.pyz` (built here) and
runs `python3 edgedeploy_runner.pyz MODEL ...` / `... probe` on the device. It does import the
device package's stdlib-only modules where it needs their declarations (the RUNTIMES table, push's
device script and its limits).
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Any

DEVICE_DIR = Path(__file__).with_name("device")
ZIPAPP_NAME = "edgedeploy_runner.pyz"
# The package's name inside the zipapp (on the device's sys.path it is the only one).
ZIPAPP_PACKAGE = "edgedeploy_device"
# The zipapp's entry. It checks the interpreter first, from the package's __init__ (which every
# Python parses), so 2.7-3.7 print one JSON error with exit code 4 instead of a SyntaxError.
_ZIPAPP_MAIN = f"""\
import json
import sys

import {ZIPAPP_PACKAGE}

try:
    {ZIPAPP_PACKAGE}.check_python()
except {ZIPAPP_PACKAGE}.RunnerError as exc:
    sys.stdout.write(json.dumps({{"error": str(exc), "kind": exc.kind}}) + "\\n")
    sys.exit(exc.code)

from {ZIPAPP_PACKAGE}.cli import main

sys.exit(main())
"""
# Fixed metadata for every entry, so the same code gives the same bytes: the zip's first valid date
# and rw-r--r-- (a checkout's mtimes and umask must not change what is pushed).
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ZIP_MODE = 0o100644 << 16


def supported_runtimes() -> dict[str, dict[str, Any]]:
    """The device package's RUNTIMES table: runtime name -> {"formats", "module", "provision"}
    (runtimes.py imports only the standard library; the runtimes themselves load lazily)."""
    from edgedeploy.runner.device.runtimes import RUNTIMES

    return RUNTIMES


def provisionable_runtimes() -> dict[str, str]:
    """Runtime name -> the pinned requirement `edgedeploy provision` installs, in declaration order."""
    return {name: rt["provision"] for name, rt in supported_runtimes().items() if rt["provision"]}


@functools.cache
def zipapp_bytes() -> bytes:
    """The device package's zipapp (built once per process)."""
    return build_zipapp(DEVICE_DIR)


def build_zipapp(source_dir: Path) -> bytes:
    """The package in `source_dir` as one zipapp, reproducibly: the same sources give the same bytes (so the
    push of an unchanged runner is skipped by its sha256, from any checkout or host).

    Written with zipfile rather than the stdlib `zipapp` module, which stamps each entry with its
    file's mtime (a fresh clone would push a "new" runner). Entries are sorted, dated 1980-01-01 and
    rw-r--r--, and STORED: deflate's output depends on the zlib build (zlib vs zlib-ng), so two hosts
    could compress the same code differently; the package is small (tens of KB) either way."""
    import io
    import zipfile

    sources = sorted(source_dir.glob("*.py"))
    entries = [("__main__.py", _ZIPAPP_MAIN.encode())]
    entries += [(f"{ZIPAPP_PACKAGE}/{p.name}", p.read_bytes()) for p in sources]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.external_attr = _ZIP_MODE
            info.create_system = 3  # Unix, whatever the host (the mode bits above are Unix's)
            archive.writestr(info, data)
    return buffer.getvalue()


def write_zipapp(folder: Path) -> Path:
    """The zipapp as `folder/<its sha256>/edgedeploy_runner.pyz` (written once, atomically), so a
    file there never changes under a concurrent push; returns its path."""
    import hashlib

    data = zipapp_bytes()
    path = folder / hashlib.sha256(data).hexdigest()[:16] / ZIPAPP_NAME
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{ZIPAPP_NAME}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path
