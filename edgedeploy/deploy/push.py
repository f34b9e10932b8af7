"""`edgedeploy push`: send a file to a target's work dir so that the device never holds a corrupt copy.

Order of operations, in as few round trips as possible:
1. hash locally; ONE device-side script reports the hash of what is already there, the size and hash
   of an interrupted upload (`NAME.edgedeploy-part`), the free space, and the manifest entry;
2. unchanged -> skip (0 bytes sent); a partial upload whose bytes match ours -> resume after them;
   otherwise start over; too little free space -> a clear error before sending anything;
3. upload under the temporary name (a dropped link: reconnect with backoff and resume, a few times);
4. ONE device-side script verifies the sha256, renames into place (atomic on POSIX) and records the
   file in the work dir's `manifest.json`.
The device-side scripts use the device's Python (stdlib only); every target has one for the runner.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgedeploy.deploy.transport import LinkLost, ResumablePut, Spawner, Transport
from edgedeploy.errors import TargetError, UsageError
from edgedeploy.profiles.schema import sha256_file

PART_SUFFIX = ".edgedeploy-part"
MANIFEST = "manifest.json"
# Free space kept beyond the file itself (file system metadata, the manifest rewrite).
SPACE_MARGIN = 64 << 10
# Seconds the device may take to finish hashing, rename and record after the upload.
COMMIT_TIMEOUT_S = 600.0

# Device side: state of one destination as JSON. argv: final part manifest key mkdir(0/1)
# The final file's sha256 comes from the manifest when its size and mtime (ns) are those recorded
# right after its verified commit (git's index does the same); any rewrite changes the mtime and
# makes us hash the file again. This keeps an unchanged re-push from reading the model on the device.
_REMOTE_STATE = """\
import hashlib,json,os,sys
final,part,manifest,key,mkdir=sys.argv[1:6]
def sha(p):
    h=hashlib.sha256()
    try:
        with open(p,'rb') as f:
            for c in iter(lambda:f.read(1<<20),b''): h.update(c)
    except OSError: return None
    return h.hexdigest()
d=os.path.dirname(final) or '.'
if mkdir=='1': os.makedirs(d,exist_ok=True)
try: part_size=os.path.getsize(part)
except OSError: part_size=None
try:
    st=os.statvfs(d if os.path.isdir(d) else os.path.dirname(d) or '.'); free=st.f_bavail*st.f_frsize
except OSError: free=None
try:
    with open(manifest) as f: entry=json.load(f).get('files',{}).get(key)
except (OSError,ValueError): entry=None
try:
    st=os.stat(final)
    same=entry and entry.get('size')==st.st_size and entry.get('mtime_ns')==st.st_mtime_ns
    final_sha=entry['sha256'] if same else sha(final)
except OSError: final_sha=None
print(json.dumps({'sha256':final_sha,'part_size':part_size,'part_sha256':sha(part) if part_size else None,
 'free':free,'manifest_sha256':(entry or {}).get('sha256')}))
"""
# Device side: verify the part's hash, rename it over the final name, record it in the manifest.
# argv: mode part final sha manifest key size source ; part '-' = the file is already in place.
# mode 'now': hash the finished part. mode 'follow': started BEFORE the upload, it hashes the part as
# it grows and waits for the host's verdict on stdin ('go' = upload complete; anything else or EOF =
# abandoned, touch nothing), so the device never re-reads the file and the verify costs no extra time.
_REMOTE_COMMIT = """\
import hashlib,json,os,select,sys,time
mode,part,final,want,manifest,key,size,source=sys.argv[1:9]
def digest_now():
    h=hashlib.sha256()
    with open(part,'rb') as f:
        for c in iter(lambda:f.read(1<<20),b''): h.update(c)
    return h.hexdigest()
def digest_following():
    h=hashlib.sha256(); f=None; verdict=None
    while True:
        if f is None:
            try: f=open(part,'rb',buffering=0)
            except OSError:
                if verdict=='go': raise
        c=f.read(1<<20) if f else b''
        if c:
            h.update(c); continue
        if verdict=='go': return h.hexdigest()
        if select.select([sys.stdin],[],[],0.05)[0]:
            verdict=sys.stdin.readline().strip()
            if verdict!='go': sys.exit('upload abandoned; nothing changed')
if part!='-':
    got=digest_following() if mode=='follow' else digest_now()
    if got!=want:
        os.remove(part)
        sys.exit('sha256 mismatch after upload (got %s); the upload was discarded' % got)
    os.replace(part,final)
try:
    with open(manifest) as f: doc=json.load(f)
except (OSError,ValueError): doc={}
doc.setdefault('files',{})[key]={'sha256':want,'size':int(size),'source':source,
 'mtime_ns':os.stat(final).st_mtime_ns,'pushed_at':time.strftime('%Y-%m-%dT%H:%M:%SZ',time.gmtime())}
tmp=manifest+'.tmp'
with open(tmp,'w') as f: json.dump(doc,f,indent=1,sort_keys=True)
os.replace(tmp,manifest)
"""
_REMOTE_DISCARD = "import os,sys\ntry: os.remove(sys.argv[1])\nexcept OSError: pass\n"


@dataclass(frozen=True)
class PushResult:
    remote_path: str
    sha256: str
    sent_bytes: int
    skipped: bool
    resumed_from: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RemoteState:
    sha256: str | None
    part_size: int | None
    part_sha256: str | None
    free: int | None
    manifest_sha256: str | None


def remote_join(*parts: str) -> str:
    return posixpath.join(*[p for p in parts if p])


def _python(transport: Transport, python: str, script: str, *args: str, timeout: float = 120.0) -> str:
    """Run a stdlib-only script on the device (sent on stdin: no command-line length limits)."""
    # -S: no site-packages scan at start-up (these scripts need only the standard library).
    result = transport.run([python, "-S", "-", *args], timeout=timeout, stdin=script.encode())
    if not result.ok:
        if result.exit_code == 127:
            raise TargetError(
                f"{transport.target_name}: {python} not found on the device (ansible_python_interpreter)"
            )
        raise TargetError(f"{transport.target_name}: {result.last_error_line()}")
    return result.stdout


def _remote_state(transport: Transport, python: str, remote_path: str, *, mkdir: bool = False) -> RemoteState:
    key = _manifest_key(transport, remote_path)
    part = remote_path + PART_SUFFIX
    flag = "1" if mkdir else "0"
    out = _python(transport, python, _REMOTE_STATE, remote_path, part, _manifest_path(transport), key, flag)
    try:
        return RemoteState(**json.loads(out.strip().splitlines()[-1]))
    except (ValueError, IndexError, TypeError) as exc:
        answer = out[:200]
        raise TargetError(f"{transport.target_name}: unexpected answer from the device: {answer!r}") from exc


def remote_sha256(transport: Transport, python: str, remote_path: str) -> str | None:
    return _remote_state(transport, python, remote_path).sha256


def _manifest_path(transport: Transport) -> str:
    return remote_join(transport.workdir, MANIFEST)


def _manifest_key(transport: Transport, remote_path: str) -> str:
    prefix = transport.workdir.rstrip("/") + "/"
    return remote_path[len(prefix) :] if remote_path.startswith(prefix) else remote_path


def _sha256_prefix(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        left = size
        while left and (chunk := fh.read(min(left, 1 << 20))):
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _resume_offset(transport: Transport, local: Path, size: int, state: RemoteState) -> int:
    """Bytes of a previous interrupted upload that match ours (0: start over, or cannot resume)."""
    part = state.part_size or 0
    resumable = isinstance(transport, ResumablePut)
    if resumable and 0 < part <= size and state.part_sha256 == _sha256_prefix(local, part):
        return part
    return 0


def _check_space(transport: Transport, state: RemoteState, need: int, remote_dir: str) -> None:
    if state.free is not None and state.free < need + SPACE_MARGIN:
        raise TargetError(
            f"{transport.target_name}: not enough free space in {remote_dir}: "
            f"{_mib(state.free)} free, the upload needs {_mib(need)}"
        )


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def plan_push(transport: Transport, local: Path, remote_dir: str, *, python: str) -> dict[str, Any]:
    """What `push_file` would do, without changing anything on the device (for --dry-run)."""
    sha = sha256_file(local)
    size = local.stat().st_size
    remote_path = remote_join(transport.workdir, remote_dir, local.name)
    state = _remote_state(transport, python, remote_path)
    skipped = state.sha256 == sha
    offset = 0 if skipped else _resume_offset(transport, local, size, state)
    return {
        "remote_path": remote_path,
        "sha256": sha,
        "sent_bytes": 0,
        "skipped": skipped,
        "dry_run": True,
        "would_send_bytes": 0 if skipped else size - offset,
        "resume_from": offset,
        "free_bytes": state.free,
    }


def push_file(
    transport: Transport,
    local: Path,
    remote_dir: str,
    *,
    python: str,
    remote_name: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    reconnects: int = 2,
) -> PushResult:
    """Push `local` into `remote_dir` (relative to the target's work dir); skip when unchanged.

    A dropped link is survived up to `reconnects` times (reconnect, then resume); after that the
    partial upload stays on the device under the temporary name and the next push resumes it."""
    if not local.is_file():
        raise UsageError(f"{local}: no such file")
    size = local.stat().st_size
    remote_dir = remote_join(transport.workdir, remote_dir)
    remote_path = remote_join(remote_dir, remote_name or local.name)
    part = remote_path + PART_SUFFIX
    manifest_args = (_manifest_path(transport), _manifest_key(transport, remote_path), str(size), local.name)

    with ThreadPoolExecutor(1) as pool:  # hash locally while the device hashes its copy
        local_sha = pool.submit(sha256_file, local)
        state = _remote_state(transport, python, remote_path, mkdir=True)
        sha = local_sha.result()
    if state.sha256 == sha:
        if state.manifest_sha256 != sha:  # there already, but put there by someone else
            _python(transport, python, _REMOTE_COMMIT, "now", "-", remote_path, sha, *manifest_args)
        return PushResult(remote_path, sha, 0, True)

    offset = first_offset = _resume_offset(transport, local, size, state)
    _check_space(transport, state, size - offset, remote_dir)
    verifier = None
    if isinstance(transport, Spawner):
        if state.part_size and not offset:  # a stale part the verifier must not read
            _python(transport, python, _REMOTE_DISCARD, part)
        commit = [python, "-S", "-c", _REMOTE_COMMIT, "follow", part, remote_path, sha, *manifest_args]
        verifier = transport.spawn(commit)
    sent = 0
    uploaded = False
    try:
        for attempt in range(reconnects + 1):
            reached = offset

            def count(done: int, total: int) -> None:
                nonlocal reached
                reached = done
                if progress:
                    progress(done, total)

            try:
                if offset and isinstance(transport, ResumablePut):  # always true when offset > 0
                    transport.put_from(local, part, offset, progress=count)
                else:
                    transport.put(local, part, progress=count)
                sent += size - offset
                uploaded = True
                break
            except LinkLost as exc:
                verifier = None  # it died with the link; verify after the upload instead
                sent += max(0, reached - offset)
                where = f"the upload stopped near {reached} of {size} bytes; run push again to resume"
                if attempt == reconnects:
                    raise TargetError(f"{exc}; {where}") from exc
                try:
                    transport.close()
                    transport.connect()
                    state = _remote_state(transport, python, remote_path)
                except TargetError as again:
                    raise TargetError(f"{again}; {where}") from again
                offset = _resume_offset(transport, local, size, state)
            except TargetError as exc:
                raise _upload_failed(transport, python, remote_path, size, exc) from exc
    finally:
        if verifier is not None and not uploaded:  # tells it to give up, touching nothing
            verifier.kill()
    if verifier is None:
        _python(transport, python, _REMOTE_COMMIT, "now", part, remote_path, sha, *manifest_args)
    else:
        verifier.send(b"go\n")
        result = verifier.wait(timeout=COMMIT_TIMEOUT_S)
        if not result.ok:
            raise TargetError(f"{transport.target_name}: {result.last_error_line()}")
    return PushResult(remote_path, sha, sent, False, resumed_from=first_offset)


def _upload_failed(
    transport: Transport, python: str, remote_path: str, size: int, exc: TargetError
) -> TargetError:
    """Not a lost link (e.g. the disk filled up): remove the part file and say why if we can tell."""
    try:
        _python(transport, python, _REMOTE_DISCARD, remote_path + PART_SUFFIX)
        state = _remote_state(transport, python, remote_path)
    except TargetError:
        return exc
    if state.free is not None and state.free < size:
        return TargetError(
            f"{transport.target_name}: no space left on the device in {posixpath.dirname(remote_path)} "
            f"({_mib(state.free)} free, the file is {_mib(size)}); nothing was changed"
        )
    return exc


def push_to_target(
    file: Path,
    target_name: str,
    *,
    inventory: Path | None = None,
    trust_new: bool = False,
    dry_run: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """The `push` verb: the model into `models/`, the runner beside it, each verified and recorded."""
    from edgedeploy.deploy.connect import open_transport
    from edgedeploy.deploy.inventory import load_inventory
    from edgedeploy.runner import RUNNER_PATH

    if not file.is_file():
        raise UsageError(f"{file}: no such file")
    target = load_inventory(inventory).get(target_name)
    with open_transport(target, trust_new=trust_new) as transport:
        if dry_run:
            doc = plan_push(transport, file, "models", python=target.python)
            doc["runner"] = plan_push(transport, RUNNER_PATH, "", python=target.python)
            return doc
        with _progress_bar(file, enabled=progress) as bar:
            result = push_file(transport, file, "models", python=target.python, progress=bar)
        runner = push_file(transport, RUNNER_PATH, "", python=target.python)
        return {**result.to_dict(), "runner": runner.to_dict(), "manifest": _manifest_path(transport)}


@contextmanager
def _progress_bar(file: Path, *, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar (bytes, throughput, time left) on stderr, fed by the transport's callback."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"push {file.name}", total=file.stat().st_size)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def print_result(result: dict[str, Any]) -> None:
    if result.get("dry_run"):
        if result["skipped"]:
            print(f"unchanged, would skip: {result['remote_path']} (sha256 {result['sha256'][:12]})")
        else:
            resume = f", resuming after {result['resume_from']} bytes" if result["resume_from"] else ""
            print(f"would send {result['would_send_bytes']} bytes -> {result['remote_path']}{resume}")
        runner = result.get("runner")
        if runner:
            print(f"runner: {'unchanged' if runner['skipped'] else 'would send'} {runner['remote_path']}")
        return
    if result["skipped"]:
        print(f"unchanged: {result['remote_path']} (0 bytes sent)")
    else:
        resumed = f", resumed after {result['resumed_from']} bytes" if result.get("resumed_from") else ""
        print(
            f"pushed {result['sent_bytes']} bytes -> {result['remote_path']} "
            f"(sha256 {result['sha256'][:12]} verified on the device{resumed})"
        )
    if "manifest" in result:
        print(f"manifest: {result['manifest']}")
