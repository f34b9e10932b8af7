"""The one small protocol every transport implements (like pyinfra's connectors).

A transport moves files and runs commands on ONE target. Commands are argument lists, never shell
strings: each transport quotes them itself (shlex for ssh/adb) so a file name can never execute.
Remote paths are POSIX strings; a relative path is relative to the login/work directory of the target.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, runtime_checkable

from edgedeploy.errors import TargetError, UsageError

ProgressFn = Callable[[int, int], None]
"""progress(bytes_done, bytes_total), called while a file moves."""


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def last_error_line(self) -> str:
        """The last non-empty stderr (or stdout) line: what a one-line error message should quote."""
        for text in (self.stderr, self.stdout):
            lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
            if lines:
                return lines[-1]
        return f"exit code {self.exit_code}"


@runtime_checkable
class Transport(Protocol):
    """Connect, run a command (timeout, exit code), put a file, get a file, close."""

    target_name: str
    workdir: str
    """The target's work directory (absolute or relative to the login directory)."""

    def connect(self) -> None: ...

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run argv on the target. Raises TargetError on timeout or a lost link; a non-zero exit is
        returned, not raised."""
        ...

    def put(self, local: Path, remote: str, *, progress: ProgressFn | None = None) -> None:
        """Copy a local file to `remote` (written as-is: callers wanting atomicity upload to a temp name
        and rename, see deploy/push.py)."""
        ...

    def get(self, remote: str, local: Path) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Transport: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


@runtime_checkable
class ResumablePut(Protocol):
    """A transport that can continue an interrupted upload (push.py uses it after a dropped link)."""

    def put_from(self, local: Path, remote: str, offset: int, *, progress: ProgressFn | None = None) -> None:
        """Keep the remote file's first `offset` bytes and write the rest of `local` after them."""
        ...


class Process(Protocol):
    """A command started by `Spawner.spawn`, running while the caller does other work."""

    def send(self, data: bytes) -> None:
        """Write to the command's stdin."""
        ...

    def read_line(self, timeout: float | None = None) -> str:
        """The next line of stdout without its newline; "" when the command exited first."""
        ...

    def wait(self, timeout: float | None = None) -> CommandResult:
        """Close stdin, wait for the exit, return the result (stdout not yet read by read_line)."""
        ...

    def kill(self) -> None:
        """Abandon the command (closing its stdin tells a well-behaved one to give up)."""
        ...


@runtime_checkable
class Spawner(Protocol):
    """A transport that can start a command and keep talking to it (push.py verifies the sha256 on the
    device WHILE the upload runs, instead of re-reading the file afterwards)."""

    def spawn(self, argv: Sequence[str]) -> Process: ...


@dataclass(frozen=True)
class RemoteStat:
    size: int
    mtime: int
    """Modification time, whole seconds (SFTP's resolution)."""


@runtime_checkable
class QuickStat(Protocol):
    """A transport that can look at remote files without starting a command (SFTP)."""

    def stat(self, remote: str) -> RemoteStat | None:
        """None when the path does not exist."""
        ...

    def read_bytes(self, remote: str) -> bytes | None:
        """A small file's content; None when it does not exist."""
        ...

    def list_dir(self, remote: str) -> list[str] | None:
        """The names in a directory; None when it does not exist."""
        ...


class LinkLost(TargetError):
    """The connection dropped mid-operation: reconnecting (and resuming) may succeed."""


class TransportBase:
    """Context-manager plumbing shared by the concrete transports."""

    target_name: str = ""

    def connect(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> TransportBase:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def quote_command(
    argv: Sequence[str],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    make_cwd: bool = False,
) -> str:
    """One POSIX shell command line from an argument list: every element shlex-quoted.
    `make_cwd` creates `cwd` first when it is missing (the work dir on a fresh device)."""
    if not argv:
        raise UsageError("empty command")
    parts: list[str] = []
    for key, value in (env or {}).items():
        if not key.isidentifier():
            raise UsageError(f"environment variable name {key!r} is not valid")
        parts.append(shlex.quote(f"{key}={value}"))
    command = " ".join(shlex.quote(str(a)) for a in argv)
    if parts:
        command = "env " + " ".join(parts) + " " + command
    if not cwd:
        return command
    where = shlex.quote(cwd)
    if make_cwd:
        return f"{{ cd -- {where} 2>/dev/null || {{ mkdir -p -- {where} && cd -- {where}; }}; }} && {command}"
    return f"cd -- {where} && {command}"


def workdir_command(workdir: str) -> str:
    """Shell command that creates the work dir and prints its absolute path (a leading `~/` means the
    login directory, where remote shells start)."""
    path = workdir[2:] if workdir.startswith("~/") else workdir
    return f"{quote_command(['mkdir', '-p', '--', path])} && cd -- {shlex.quote(path)} && pwd -P"
