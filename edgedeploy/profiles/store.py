"""The profile store: JSON files under profiles/<target>/<model-stem>/<timestamp>.json.

The files are the source of truth. Writes are atomic (temp file + rename) so a crash never leaves
half a profile.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any


def profiles_root(root: Path | None = None) -> Path:
    return root or Path(os.environ.get("EDGEDEPLOY_PROFILES", "profiles"))


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", part).strip("._") or "unnamed"


def profile_path(root: Path | None, profile: dict[str, Any]) -> Path:
    stamp = profile["created"].replace(":", "").replace("-", "")
    return (
        profiles_root(root)
        / _safe(profile["target"]["name"])
        / _safe(profile["model"]["name"])
        / f"{stamp}.json"
    )


def write_json_atomic(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_profile(profile: dict[str, Any], root: Path | None = None) -> Path:
    path = profile_path(root, profile)
    write_json_atomic(path, profile)
    return path
