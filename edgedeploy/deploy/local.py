"""The `local` transport: the host itself, through subprocesses in a work directory.

It goes through the same path as real devices (runner shipped as a file and started as a separate
process), so what `local` measures is what a device would measure, minus the link.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from edgedeploy.deploy.transport import CommandResult, ProgressFn, TransportBase
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
