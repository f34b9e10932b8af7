"""Facts about a file that several verbs report: its sha256 and its size inside a zip.

Kept here, below every verb's module, so push, profiles, compress and convert all hash and measure
files the same way (one zip setting, so "zipped bytes" agree wherever they are printed).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path


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
