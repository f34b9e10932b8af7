"""`edgedeploy push`: send a file to a target's work dir so that the device never holds a corrupt copy.

Order of operations: hash locally; ask the device for the hash of what it already has (skip when
equal: 0 bytes sent); upload under a temporary name; verify the hash ON the device; rename into place
(atomic on POSIX). Hashing and renaming run through the device's Python, which every target has since
the runner needs it.
"""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgedeploy.deploy.transport import Transport
from edgedeploy.errors import TargetError, UsageError
from edgedeploy.profiles.schema import sha256_file

# Runs on the device: prints the sha256 of each existing path (or "-" when missing).
_REMOTE_SHA = (
    "import hashlib,sys\n"
    "for p in sys.argv[1:]:\n"
    "    try:\n"
    "        h=hashlib.sha256()\n"
    "        with open(p,'rb') as f:\n"
    "            for c in iter(lambda:f.read(1<<20),b''): h.update(c)\n"
    "        print(h.hexdigest())\n"
    "    except OSError: print('-')\n"
)
# Runs on the device: verify the temp file's hash, then rename it over the final name.
_REMOTE_COMMIT = (
    "import hashlib,os,sys\n"
    "tmp,final,want=sys.argv[1:4]\n"
    "h=hashlib.sha256()\n"
    "with open(tmp,'rb') as f:\n"
    "    for c in iter(lambda:f.read(1<<20),b''): h.update(c)\n"
    "if h.hexdigest()!=want:\n"
    "    os.remove(tmp); sys.exit('sha256 mismatch after upload: got %s' % h.hexdigest())\n"
    "os.replace(tmp,final)\n"
)
_REMOTE_MKDIR = "import os,sys\nos.makedirs(sys.argv[1],exist_ok=True)\n"


@dataclass(frozen=True)
class PushResult:
    remote_path: str
    sha256: str
    sent_bytes: int
    skipped: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def remote_join(*parts: str) -> str:
    return posixpath.join(*[p for p in parts if p])


def _python(transport: Transport, python: str, script: str, *args: str, timeout: float = 60.0) -> str:
    result = transport.run([python, "-c", script, *args], timeout=timeout)
    if not result.ok:
        if result.exit_code == 127:
            raise TargetError(
                f"{transport.target_name}: {python} not found on the device (ansible_python_interpreter)"
            )
        raise TargetError(f"{transport.target_name}: {result.last_error_line()}")
    return result.stdout


def remote_sha256(transport: Transport, python: str, remote_path: str) -> str | None:
    out = _python(transport, python, _REMOTE_SHA, remote_path).strip()
    return None if out in ("", "-") else out


def push_file(
    transport: Transport,
    local: Path,
    remote_dir: str,
    *,
    python: str,
    remote_name: str | None = None,
    progress: Any = None,
) -> PushResult:
    """Push `local` into `remote_dir` (relative to the target's work dir); skip when unchanged."""
    if not local.is_file():
        raise UsageError(f"{local}: no such file")
    sha = sha256_file(local)
    remote_dir = remote_join(transport.workdir, remote_dir)
    remote_path = remote_join(remote_dir, remote_name or local.name)
    if remote_sha256(transport, python, remote_path) == sha:
        return PushResult(remote_path, sha, 0, True)
    _python(transport, python, _REMOTE_MKDIR, remote_dir)
    tmp = remote_path + ".edgedeploy-part"
    transport.put(local, tmp, progress=progress)
    _python(transport, python, _REMOTE_COMMIT, tmp, remote_path, sha)
    return PushResult(remote_path, sha, local.stat().st_size, False)


def push_to_target(
    file: Path,
    target_name: str,
    *,
    inventory: Path | None = None,
    trust_new: bool = False,
    dry_run: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    from edgedeploy.deploy.connect import open_transport
    from edgedeploy.deploy.inventory import load_inventory

    target = load_inventory(inventory).get(target_name)
    with open_transport(target, trust_new=trust_new) as transport:
        if dry_run:
            sha = sha256_file(file)
            remote_path = remote_join(transport.workdir, "models", file.name)
            same = remote_sha256(transport, target.python, remote_path) == sha
            return {
                "remote_path": remote_path,
                "sha256": sha,
                "sent_bytes": 0,
                "skipped": same,
                "dry_run": True,
            }
        return push_file(transport, file, "models", python=target.python).to_dict()


def print_result(result: dict[str, Any]) -> None:
    if result.get("dry_run"):
        verb = "unchanged, would skip" if result["skipped"] else "would send"
        print(f"{verb}: {result['remote_path']} (sha256 {result['sha256'][:12]})")
    elif result["skipped"]:
        print(f"unchanged: {result['remote_path']} (0 bytes sent)")
    else:
        print(
            f"pushed {result['sent_bytes']} bytes -> {result['remote_path']} (sha256 {result['sha256'][:12]})"
        )
