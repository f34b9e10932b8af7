"""Files as several verbs handle them: sha256, size inside a zip, and atomic writes.

Kept here, below every verb's module, so push, profiles, compress and convert all hash and measure
files the same way (one zip setting, so "zipped bytes" agree wherever they are printed), and every
state, cache or output file is written the same way (never half a file, the usual permissions).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def zipped_size(path: Path) -> int:
    """Bytes of `path` in a deflate zip (what a download or an app bundle would carry)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.write(path, arcname=path.name)
    return buffer.tell()


@functools.cache
def _file_mode() -> int:
    # mkstemp creates 0600 files; outputs should get the usual mode (0666 less the umask).
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes_atomic(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write `data` to a temp file beside `path`, then rename over it: readers never see half a file.
    `mode`: the new file's permission bits (e.g. the replaced file's 0600), else the usual ones."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _file_mode() if mode is None else mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, doc: Any) -> None:
    write_bytes_atomic(path, (json.dumps(doc, indent=2, default=str) + "\n").encode())
