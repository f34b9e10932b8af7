"""Send a file to a target's work dir so that the device never holds a corrupt copy (the mechanism
behind `edgedeploy push`, whose verb is push_job.py; provisioning and the runner client use it too).

Order of operations, in as few round trips and device processes as possible:
1. hash locally while finding out what the device holds: over SSH, SFTP's stat plus the manifest
   tell an unchanged file without any device command; otherwise the device script reports, as JSON,
   the hash of what is there, the size and hash of an interrupted upload (`NAME.edgedeploy-part`),
   the free space and the manifest entry;
2. unchanged -> skip (0 bytes sent); a partial upload whose bytes match ours -> resume after them;
   otherwise start over; too little free space -> a clear error and nothing left behind;
3. upload under the temporary name (a dropped link: reconnect with backoff and resume, a few times);
4. the device verifies the sha256, renames into place (atomic on POSIX) and records the file in the
   work dir's `manifest.json`.
All device-side work is ONE stdlib-only script run by the device's Python (every target has one for
the runner). Where the transport can keep a command running (ssh), one process does the whole push:
it answers step 1, then hashes the temporary file AS IT GROWS and commits when told the upload is
complete, so verification costs no second read of the file and no second process start. When the
device has nothing of the file yet, the upload starts without waiting for that process to start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import posixpath
import secrets
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from edgedeploy.deploy.transports.base import (
    CommandResult,
    LinkLost,
    Process,
    QuickStat,
    RemoteStat,
    ResumablePut,
    Spawner,
    Transport,
)
from edgedeploy.errors import TargetError, UsageError
from edgedeploy.fileinfo import sha256_file
from edgedeploy.runner.device import pushfile
from edgedeploy.runner.device.pushfile import LOCK_WAIT_S

PART_SUFFIX = ".edgedeploy-part"
MANIFEST = "manifest.json"
# Free space kept beyond the file itself (file system metadata, the manifest rewrite).
SPACE_MARGIN = 64 << 10
# Seconds allowed for the device's answers, and for its final hashing/rename after the upload.
STATE_TIMEOUT_S = 120.0
COMMIT_TIMEOUT_S = 600.0

# The device side. argv: mode final manifest key size source part flags [sha256]
#   part: the temporary file this run writes: NAME.edgedeploy-part (shared: resumable by the next run,
#         written only while holding NAME's lock) or NAME.edgedeploy-part-TOKEN (this run's own)
#   flags: `c` = --checksum (hash the final file even when the manifest's size+mtime match), `a` =
#         adopt the shared part as this run's own part (after a reconnect: the dying session parked
#         it there), `-` = neither
#   state / state-mkdir   print the state JSON (state-mkdir first creates the directory)
#   commit SHA            verify the finished part, rename it over the final name, record it
#   record SHA            record a final file already in place
#   discard               remove the part
#   session               print the state JSON, then read ONE command from stdin: `done`,
#                         `record SHA`, or `follow SHA fresh|keep`: (fresh: remove a stale part) print
#                         `ready`, hash the part as it grows, and on the line `go` (upload complete)
#                         verify + rename + record; `abort`: remove the part; EOF: give up, and park an
#                         own part under the shared name (the link went: the next run resumes it).
# Two writers of one file (two CI jobs sharing a board): every mode but `state` first takes an
# exclusive flock on NAME.edgedeploy-lock and holds it until it exits (a session: for the whole
# upload), waiting up to LOCK_WAIT seconds; the manifest's read-modify-write takes the work dir's
# manifest lock. A writer's own part needs no lock; it adopts the shared part (or an own part left by
# a run that died with its device process, untouched for ORPHAN_AGE seconds) only under the lock.
# The final file's sha256 comes from the manifest while its size and mtime are those recorded right
# after its verified commit, which sets the mtime to a whole second 2 s in the past: any later rewrite
# stamps "now" and no longer matches, even at the 1 s resolution of SFTP's stat (rsync's quick check,
# made exact). So an unchanged re-push reads nothing on the device, over SSH not even a command;
# --checksum hashes the final file anyway (a rewrite that kept size and mtime).
# The device script is runner/device/pushfile.py, sent as source (it installs the zipapp, so it cannot
# come from it); its lock and idle limits are also the host's timeouts.
_DEVICE_SCRIPT = Path(pushfile.__file__).read_text(encoding="utf-8")


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
    free_inodes: int | None = None


def remote_join(*parts: str) -> str:
    return posixpath.join(*[p for p in parts if p])


def manifest_path(transport: Transport) -> str:
    return remote_join(transport.workdir, MANIFEST)


def _mib(n: int, digits: int = 1) -> str:
    return f"{n / (1 << 20):.{digits}f} MiB"


def _two_sizes(free: int, need: int) -> tuple[str, str]:
    """Both sizes with as many digits as it takes to see that they differ (1.0 MiB vs 1.0 MiB says
    nothing); past 3 decimals, exact bytes."""
    for digits in (1, 2, 3):
        a, b = _mib(free, digits), _mib(need, digits)
        if a != b:
            return a, b
    return f"{free} bytes", f"{need} bytes"


class _DeviceFile:
    """The device end of one destination path: the device script, step by step or as a session.
    `part` is the shared resumable part file unless `use_own_part` gave this run its own."""

    def __init__(
        self,
        transport: Transport,
        python: str,
        remote_path: str,
        size: int = 0,
        source: str = "",
        *,
        checksum: bool = False,
    ) -> None:
        self.transport, self.python, self.remote_path, self.size = transport, python, remote_path, size
        prefix = transport.workdir.rstrip("/") + "/"
        key = remote_path[len(prefix) :] if remote_path.startswith(prefix) else remote_path
        self.part = remote_path + PART_SUFFIX
        self.checksum = checksum
        self.adopt = False
        self.manifest_args = [remote_path, manifest_path(transport), key, str(size), source]

    @property
    def args(self) -> list[str]:
        flags = ("c" if self.checksum else "") + ("a" if self.adopt else "")
        return [*self.manifest_args, self.part, flags or "-"]

    def use_own_part(self) -> None:
        """Write under a name no other writer uses (for an upload that starts before the lock is held)."""
        self.part = f"{self.remote_path}{PART_SUFFIX}-{secrets.token_hex(6)}"

    def _fail(self, result: CommandResult) -> TargetError:
        name = self.transport.target_name
        if result.exit_code == 127:
            return TargetError(f"{name}: {self.python} not found on the device (ansible_python_interpreter)")
        return TargetError(f"{name}: {result.last_error_line()}")

    def run(self, mode: str, *extra: str) -> str:
        """One step; the script goes on stdin (no command-line length limits). -S: no site-packages
        scan at start-up, the script needs only the standard library."""
        argv = [self.python, "-S", "-", mode, *self.args, *extra]
        timeout = STATE_TIMEOUT_S + LOCK_WAIT_S  # it may first wait for another writer's lock
        result = self.transport.run(argv, timeout=timeout, stdin=_DEVICE_SCRIPT.encode())
        if not result.ok:
            raise self._fail(result)
        return result.stdout

    def parse_state(self, line: str) -> RemoteState:
        try:
            return RemoteState(**json.loads(line.strip().splitlines()[-1]))
        except (ValueError, IndexError, TypeError) as exc:
            answer = line[:200]
            raise TargetError(
                f"{self.transport.target_name}: unexpected answer from the device: {answer!r}"
            ) from exc

    def state(self, *, mkdir: bool = False) -> RemoteState:
        return self.parse_state(self.run("state-mkdir" if mkdir else "state"))

    def start_session(self) -> Process | None:
        if not isinstance(self.transport, Spawner):
            return None
        return self.transport.spawn([self.python, "-S", "-c", _DEVICE_SCRIPT, "session", *self.args])

    def expect_line(self, session: Process, *, first: bool = False) -> str:
        """The session's next line (the `first`, its state, may wait for another writer's lock)."""
        line = session.read_line(STATE_TIMEOUT_S + (LOCK_WAIT_S if first else 0))
        if not line:  # exited early: report why
            raise self._fail(session.wait(STATE_TIMEOUT_S))
        return line

    def finish(self, session: Process, command: str) -> None:
        session.send(command.encode() + b"\n")
        result = session.wait(COMMIT_TIMEOUT_S)
        if not result.ok:
            raise self._fail(result)


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
    if state.free_inodes == 0:
        raise TargetError(f"{transport.target_name}: no free inodes on the device in {remote_dir}")
    if state.free is not None and state.free < need + SPACE_MARGIN:
        free, needed = _two_sizes(state.free, need + SPACE_MARGIN)
        raise TargetError(
            f"{transport.target_name}: not enough free space in {remote_dir}: "
            f"{free} free, the upload needs {needed} (the file and {SPACE_MARGIN >> 10} KiB of headroom)"
        )


def plan_push(
    transport: Transport, local: Path, remote_dir: str, *, python: str, checksum: bool = False
) -> dict[str, Any]:
    """What `push_file` would do, without changing anything on the device (for --dry-run)."""
    sha = sha256_file(local)
    size = local.stat().st_size
    remote_path = remote_join(transport.workdir, remote_dir, local.name)
    state = _DeviceFile(transport, python, remote_path, checksum=checksum).state()
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
    checksum: bool = False,
) -> PushResult:
    """Push `local` into `remote_dir` (relative to the target's work dir); skip when unchanged.
    `checksum`: decide "unchanged" by the sha256 of the device's copy, never by its size and mtime.

    A dropped link is survived up to `reconnects` times (reconnect, then resume); after that the
    partial upload stays on the device under the temporary name and the next push resumes it."""
    if not local.is_file():
        raise UsageError(f"{local}: no such file")
    size = local.stat().st_size
    remote_dir = remote_join(transport.workdir, remote_dir)
    device = _DeviceFile(
        transport,
        python,
        remote_join(remote_dir, remote_name or local.name),
        size,
        local.name,
        checksum=checksum,
    )
    session: Process | None = None
    uploaded = False
    with ThreadPoolExecutor(2) as pool:
        try:
            local_sha = pool.submit(sha256_file, local)
            seen = _look(transport, device)
            if seen is not None and not checksum and seen.unchanged(local_sha.result()):
                uploaded = True  # nothing to do, and no device command was needed to know it
                return PushResult(device.remote_path, local_sha.result(), 0, True)
            # Nothing of this file on the device: no skip or resume is possible, so the upload starts at
            # once while the device script starts up (on a fast link that start-up costs as much as the
            # upload) and reports the free space; too little stops the upload and removes the part.
            # That upload runs before the script holds the file's lock, so it goes to a part file of its
            # own: another writer starting at the same moment cannot write into it.
            fresh = seen is not None and seen.final is None and not seen.part_exists
            if fresh and isinstance(transport, Spawner):
                device.use_own_part()
            session = device.start_session()
            if session and fresh:
                prepared = pool.submit(
                    _prepare_session, device, session, local_sha, 0, remote_dir, fresh=True
                )
                sent, live = _upload(
                    transport, device, local, 0, progress, reconnects, session, local_sha, prepared
                )
                if live:  # the device's verdict (free space...) may come after a small file's upload
                    try:
                        prepared.result()
                    except TargetError as exc:
                        _abort(live)
                        raise _upload_failed(device, size, exc) from exc
                session, sha, first_offset = live, local_sha.result(), 0
            else:
                state = (
                    device.parse_state(device.expect_line(session, first=True))
                    if session
                    else device.state(mkdir=True)
                )
                sha = local_sha.result()
                if state.sha256 == sha:
                    record = state.manifest_sha256 != sha  # there already, but put there by someone else
                    if session:
                        device.finish(session, f"record {sha}" if record else "done")
                    elif record:
                        device.run("record", sha)
                    uploaded = True
                    return PushResult(device.remote_path, sha, 0, True)
                first_offset = _resume_offset(transport, local, size, state)
                _check_space(transport, state, size - first_offset, remote_dir)
                if session:
                    _prepare_session(device, session, local_sha, first_offset, remote_dir, fresh=False)
                sent, session = _upload(
                    transport, device, local, first_offset, progress, reconnects, session, local_sha
                )
            uploaded = True
        finally:
            if session and not uploaded:  # EOF: it gives up, keeping the part for a resume
                session.kill()
    if session:
        device.finish(session, "go")
    else:
        device.run("commit", sha)
    return PushResult(device.remote_path, sha, sent, False, resumed_from=first_offset)


@dataclass(frozen=True)
class _Seen:
    """What the transport's file listing shows (no device command): the final file, the part, and the
    manifest's record of the final file."""

    final: RemoteStat | None
    part_exists: bool
    entry: dict[str, Any] | None

    def unchanged(self, sha: str) -> bool:
        """rsync's quick check, made exact by the commit: it sets the verified file's mtime to a whole
        second in the past and records it, so any later rewrite (mtime = now) no longer matches."""
        entry = self.entry or {}
        return (
            self.final is not None
            and entry.get("sha256") == sha
            and entry.get("size") == self.final.size
            and entry.get("mtime") == self.final.mtime
        )


def _look(transport: Transport, device: _DeviceFile) -> _Seen | None:
    if not isinstance(transport, QuickStat):
        return None
    final = transport.stat(device.remote_path)
    entry = None
    if final is not None:
        try:
            manifest = json.loads(transport.read_bytes(device.manifest_args[1]) or b"{}")
            entry = manifest.get("files", {}).get(device.manifest_args[2])
        except (ValueError, AttributeError):
            entry = None  # unreadable manifest: the device script will hash the file
    # Any part file, the shared one or one a run left under its own name, may be resumable.
    names = transport.list_dir(posixpath.dirname(device.remote_path)) or []
    part_prefix = posixpath.basename(device.remote_path) + PART_SUFFIX
    return _Seen(final, any(n.startswith(part_prefix) for n in names), entry)


def _prepare_session(
    device: _DeviceFile,
    session: Process,
    local_sha: Future[str],
    offset: int,
    remote_dir: str,
    *,
    fresh: bool,
) -> None:
    """Tell the device script to follow the upload from `offset` (for a fresh push: after checking the
    state it reports, while the upload already runs)."""
    if fresh:
        state = device.parse_state(device.expect_line(session, first=True))
        # The part is our own and already growing: its bytes count as free for this check.
        free = None if state.free is None else state.free + (state.part_size or 0)
        _check_space(device.transport, replace(state, free=free), device.size, remote_dir)
    mode = "keep" if fresh or offset else "fresh"  # `fresh` there: remove a stale part first
    session.send(f"follow {local_sha.result()} {mode}\n".encode())
    if device.expect_line(session) != "ready":
        raise TargetError(f"{device.transport.target_name}: the device script did not get ready")


def _upload(
    transport: Transport,
    device: _DeviceFile,
    local: Path,
    offset: int,
    progress: Callable[[int, int], None] | None,
    reconnects: int,
    session: Process | None,
    local_sha: Future[str],
    prepared: Future[None] | None = None,
) -> tuple[int, Process | None]:
    """Upload into the part file from `offset`, reconnecting and resuming after a dropped link.
    Returns the bytes sent and the session if it survived. `prepared`: a concurrent preparation whose
    failure (e.g. not enough space) stops the upload. After a reconnect a new session (where the
    transport has them) holds the file's lock for the rest of the upload."""
    size = device.size
    sent = 0
    for attempt in range(reconnects + 1):
        reached = offset

        def count(done: int, total: int, watch: Future[None] | None = prepared) -> None:
            nonlocal reached
            reached = done
            if watch is not None and watch.done() and (failure := watch.exception()) is not None:
                raise failure
            if progress:
                progress(done, total)

        try:
            if offset and isinstance(transport, ResumablePut):  # always true when offset > 0
                transport.put_from(local, device.part, offset, progress=count)
            else:
                transport.put(local, device.part, progress=count)
            return sent + size - offset, session
        except LinkLost as exc:
            session = prepared = None  # they went with the link; verify after the upload instead
            sent += max(0, reached - offset)
            where = f"the upload stopped near {reached} of {size} bytes; run push again to resume"
            if attempt == reconnects:
                raise TargetError(f"{exc}; {where}") from exc
            try:
                transport.close()
                transport.connect()
                device.adopt = True  # our part may have been parked under the shared name
                session = device.start_session()
                state = (
                    device.parse_state(device.expect_line(session, first=True)) if session else device.state()
                )
                offset = _resume_offset(transport, local, size, state)
                if session:
                    _prepare_session(
                        device, session, local_sha, offset, posixpath.dirname(device.remote_path), fresh=False
                    )
            except TargetError as again:
                if session is not None:
                    session.kill()
                raise TargetError(f"{again}; {where}") from again
        except TargetError as exc:
            if session is not None:
                _abort(session)
            raise _upload_failed(device, size, exc) from exc
    raise AssertionError("unreachable: the loop returns or raises")


def _abort(session: Process) -> None:
    """Tell the device script to give up and remove the part (EOF alone would keep it for a resume)."""
    with contextlib.suppress(TargetError):  # link gone: it gets EOF and keeps the part for a resume
        session.send(b"abort\n")
    session.kill()


def _upload_failed(device: _DeviceFile, size: int, exc: TargetError) -> TargetError:
    """Not a lost link (e.g. the disk filled up): remove the part file and say why if we can tell.
    The state is read first, without the lock (a disk without free inodes cannot even create it)."""
    try:
        state = device.state()
    except TargetError:
        state = None
    with contextlib.suppress(TargetError):
        device.run("discard")
    if state is None:
        return exc
    if state.free is not None:
        state = replace(state, free=state.free + (state.part_size or 0))  # the part is discarded
    where = posixpath.dirname(device.remote_path)
    name = device.transport.target_name
    if state.free_inodes == 0:
        return TargetError(f"{name}: no free inodes on the device in {where}; nothing was changed")
    if state.free is not None and state.free < size:
        free, need = _two_sizes(state.free, size)
        return TargetError(
            f"{name}: no space left on the device in {where} ({free} free, the file is {need}); "
            "nothing was changed"
        )
    return exc
