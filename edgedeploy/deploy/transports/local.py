"""The `local` transport: the host itself, through subprocesses in a work directory.

It goes through the same path as real devices (runner shipped as a file and started as a separate
process), so what `local` measures is what a device would measure, minus the link.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from edgedeploy.deploy.transports.base import CommandResult, ProgressFn, TransportBase
from edgedeploy.errors import TargetError

CHUNK = 1 << 20


class LocalTransport(TransportBase):
    def __init__(self, target_name: str, workdir: Path) -> None:
        self.target_name = target_name
        self.workdir = str(workdir)
        self._running: set[subprocess.Popen[bytes]] = set()

    def _resolve(self, path: str) -> Path:
        p = Path(os.path.expanduser(path))
        return p if p.is_absolute() else Path(self.workdir) / p

    def connect(self) -> None:
        try:
            Path(self.workdir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TargetError(
                f"{self.target_name}: cannot create work dir {self.workdir}: {exc.strerror}"
            ) from exc

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        start = time.perf_counter()
        full_env = {**os.environ, **(env or {})}
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=self._resolve(cwd) if cwd else self.workdir,
                env=full_env,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except FileNotFoundError:
            return CommandResult(127, "", f"{argv[0]}: command not found", time.perf_counter() - start)
        self._running.add(proc)  # close() from another thread (fleet's watchdog) ends it
        try:
            stdout, stderr = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.communicate()
            raise TargetError(
                f"{self.target_name}: command timed out after {timeout:g} s: {argv[0]}"
            ) from exc
        finally:
            self._running.discard(proc)
        return CommandResult(
            proc.returncode,
            stdout.decode(errors="replace"),
            stderr.decode(errors="replace"),
            time.perf_counter() - start,
        )

    def spawn(self, argv: Sequence[str]) -> LocalProcess:
        """A command that keeps running while we talk to it (push's device script holds the file's lock
        for the whole upload this way, as it does over ssh)."""
        Path(self.workdir).mkdir(parents=True, exist_ok=True)
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=self.workdir,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except FileNotFoundError:
            return LocalProcess(self.target_name, None, str(argv[0]), self._running)  # exit 127, as `run`
        self._running.add(proc)  # close() from another thread (fleet's watchdog) ends it, as for run
        return LocalProcess(self.target_name, proc, str(argv[0]), self._running)

    def put(self, local: Path, remote: str, *, progress: ProgressFn | None = None) -> None:
        dest = self._resolve(remote)
        total = local.stat().st_size
        done = 0
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with local.open("rb") as src, dest.open("wb") as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        except OSError as exc:
            raise TargetError(f"{self.target_name}: cannot write {dest}: {exc.strerror}") from exc

    def get(self, remote: str, local: Path) -> None:
        src = self._resolve(remote)
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, local)
        except OSError as exc:
            raise TargetError(f"{self.target_name}: cannot fetch {src}: {exc.strerror}") from exc

    def close(self) -> None:
        for proc in list(self._running):  # only while a hung command is abandoned
            with contextlib.suppress(OSError):
                proc.kill()


class LocalProcess:
    """One local command started by `LocalTransport.spawn` (see transport.Process)."""

    def __init__(
        self,
        target_name: str,
        proc: subprocess.Popen[bytes] | None,
        label: str,
        running: set[subprocess.Popen[bytes]],
    ) -> None:
        self.target_name, self.proc, self.label = target_name, proc, label
        self._running = running  # the transport's set of live commands: leave it once reaped
        self.started = time.perf_counter()
        self._out = bytearray()  # stdout received but not yet returned by read_line

    def send(self, data: bytes) -> None:
        if self.proc is None:
            raise TargetError(f"{self.target_name}: {self.label}: command not found")
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise TargetError(f"{self.target_name}: {self.label} exited early") from exc

    def read_line(self, timeout: float | None = None) -> str:
        if self.proc is None:
            return ""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._out:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                self.proc.kill()
                raise TargetError(f"{self.target_name}: command timed out after {timeout:g} s: {self.label}")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, CHUNK)
                if not chunk:
                    return ""
                self._out += chunk
        line, _, rest = bytes(self._out).partition(b"\n")
        self._out = bytearray(rest)
        return line.decode(errors="replace")

    def wait(self, timeout: float | None = None) -> CommandResult:
        if self.proc is None:
            return CommandResult(127, "", f"{self.label}: command not found", 0.0)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.proc.kill()
            self.proc.communicate()
            raise TargetError(
                f"{self.target_name}: command timed out after {timeout:g} s: {self.label}"
            ) from exc
        finally:
            self._running.discard(self.proc)
        return CommandResult(
            self.proc.returncode,
            (bytes(self._out) + out).decode(errors="replace"),
            err.decode(errors="replace"),
            time.perf_counter() - self.started,
        )

    def kill(self) -> None:
        """Close its stdin (communicate does): a well-behaved command gives up; reap it, no zombie stays."""
        if self.proc is None:
            return
        try:
            self.proc.communicate(timeout=10)
        except (subprocess.TimeoutExpired, ValueError):
            self.proc.kill()
            self.proc.wait()
        self._running.discard(self.proc)
