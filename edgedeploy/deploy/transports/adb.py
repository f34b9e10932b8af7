"""The `adb` transport: Android devices through the real `adb` client (Debian package `adb`).

A device is named by its serial (`edgedeploy_adb_serial`, as `adb devices` lists it) or reached over
the network as HOST:PORT (`adb connect`; also taken from ansible_host/ansible_port). Commands run
through `adb shell` with the shell protocol v2, which carries the remote exit code (Android 7+);
every argument is shlex-quoted. Files move with `adb push` / `adb pull`.

Host variables:
  edgedeploy_adb_serial      device serial or HOST:PORT ("" = the only attached device)
  edgedeploy_adb_server      adb server socket, e.g. tcp:localhost:5037 (default: adb's own,
                             which also honours $ADB_SERVER_SOCKET)
  edgedeploy_connect_timeout seconds allowed for `adb connect` / state queries (default 10)
"""

from __future__ import annotations

import os
import pty
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from edgedeploy.deploy.inventory import Target
from edgedeploy.deploy.transports.base import (
    CommandResult,
    LinkLost,
    ProgressFn,
    TransportBase,
    quote_command,
    workdir_command,
)
from edgedeploy.errors import TargetError

# adb's own failures (as opposed to the remote command's exit status) that mean the device went away.
_LINK_LOST = re.compile(r"error: (device .*not found|device offline|closed|no devices|protocol fault)")
_PUSH_PERCENT = re.compile(rb"\[\s*(\d{1,3})%\]")
_ANSI_OR_REDRAW = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]|\r")


def _read_pty(fd: int) -> bytes:
    """Next output from a pseudo-terminal; b"" once the writer has exited (Linux raises EIO then)."""
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


class ADBTransport(TransportBase):
    def __init__(self, target: Target) -> None:
        self.target = target
        self.target_name = target.name
        self.workdir = target.workdir
        tv = target.vars
        serial = str(tv.get("edgedeploy_adb_serial") or "")
        if not serial and tv.get("ansible_host"):
            serial = f"{tv['ansible_host']}:{target.port or 5555}"
        self.serial = serial
        self.server = str(tv.get("edgedeploy_adb_server") or "")
        self.connect_timeout = float(tv.get("edgedeploy_connect_timeout", 10))
        self._adb_path: str | None = None

    def _argv(self, *args: str) -> list[str]:
        argv = [self._adb_path or "adb"]
        if self.server:
            argv += ["-L", self.server]
        if self.serial:
            argv += ["-s", self.serial]
        return [*argv, *args]

    def _adb(
        self, *args: str, timeout: float | None, stdin: bytes | None = None, what: str = "adb"
    ) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                self._argv(*args),
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise TargetError(f"{self.target_name}: {what} timed out after {timeout:g} s") from exc
        except FileNotFoundError as exc:
            raise self._missing_adb() from exc

    def _missing_adb(self) -> TargetError:
        return TargetError(
            f"{self.target_name}: the adb client is not installed "
            "(Debian/Ubuntu: apt-get install adb; elsewhere: Android SDK platform-tools)"
        )

    def _failure(self, proc: subprocess.CompletedProcess[bytes], what: str) -> TargetError:
        lines = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        # adb ends a failed push with a "0 files pushed" summary; the cause is its error line.
        errors = [line for line in lines if "error:" in line]
        line = (errors or lines or [f"adb exit code {proc.returncode}"])[-1]
        error_type = LinkLost if _LINK_LOST.search(line) else TargetError
        line = line.removeprefix("adb: ").removeprefix("error: ")
        return error_type(f"{self.target_name}: {what} failed: {line}")

    # ------------------------------------------------------------------ connection

    def connect(self) -> None:
        self._adb_path = shutil.which("adb")
        if self._adb_path is None:
            raise self._missing_adb()
        if ":" in self.serial:
            self._adb_connect()
        proc = self._adb("get-state", timeout=self.connect_timeout, what="adb get-state")
        state = proc.stdout.decode().strip()
        if proc.returncode != 0 or state != "device":
            detail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
            hint = (
                " (unlock the phone and accept the USB debugging prompt)"
                if "unauthorized" in str(detail)
                else ""
            )
            raise TargetError(
                f"{self.target_name}: device {self.serial or '(default)'} not ready: "
                f"{detail[-1] if detail else state}{hint}"
            )
        features = self._adb("features", timeout=self.connect_timeout, what="adb features").stdout.decode()
        if "shell_v2" not in features.split():
            raise TargetError(
                f"{self.target_name}: the device's adbd lacks shell_v2 (Android < 7): exit codes cannot be "
                "read, so edgedeploy does not use it"
            )
        result = self._shell(workdir_command(self.workdir), timeout=30, what="creating the work dir")
        if not result.ok:
            raise TargetError(
                f"{self.target_name}: cannot create work dir {self.workdir}: {result.last_error_line()}"
            )
        self.workdir = result.stdout.strip().splitlines()[-1]

    def _adb_connect(self) -> None:
        """`adb connect HOST:PORT`, retried with backoff: a phone's adbd may be restarting."""
        assert self._adb_path is not None
        serial, self.serial = self.serial, ""  # `adb connect` takes no -s
        try:
            for attempt in range(3):
                if attempt:
                    time.sleep(0.5 * 2 ** (attempt - 1))
                proc = self._adb(
                    "connect", serial, timeout=self.connect_timeout, what=f"adb connect {serial}"
                )
                out = proc.stdout.decode(errors="replace").strip()
                if proc.returncode == 0 and ("connected to" in out and "failed" not in out):
                    return
        finally:
            self.serial = serial
        raise TargetError(f"{self.target_name}: cannot reach {serial} ({out or 'adb connect failed'})")

    def close(self) -> None:
        pass  # the adb server keeps the device connection; nothing of ours is open

    # ------------------------------------------------------------------ commands

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        where = self._resolve(cwd) if cwd else self.workdir
        return self._shell(quote_command(argv, cwd=where, env=env), timeout, stdin=stdin, what=str(argv[0]))

    def _shell(
        self, command: str, timeout: float | None, *, stdin: bytes | None = None, what: str = "command"
    ) -> CommandResult:
        start = time.perf_counter()
        # One argument: adb joins its arguments with spaces and hands them to the device's shell.
        proc = self._adb("shell", command, timeout=timeout, stdin=stdin, what=what)
        stderr = proc.stderr.decode(errors="replace")
        if proc.returncode != 0 and _LINK_LOST.search(
            stderr.strip().splitlines()[-1] if stderr.strip() else ""
        ):
            raise self._failure(proc, what)
        return CommandResult(
            proc.returncode, proc.stdout.decode(errors="replace"), stderr, time.perf_counter() - start
        )

    # ------------------------------------------------------------------ files

    def _resolve(self, path: str) -> str:
        return path if path.startswith("/") else f"{self.workdir}/{path}"

    def put(self, local: Path, remote: str, *, progress: ProgressFn | None = None) -> None:
        dest = self._resolve(remote)
        if progress is None:
            proc = self._adb("push", str(local), dest, timeout=None, what=f"adb push {local.name}")
        else:
            proc = self._push_reporting_progress(local, dest, progress)
        if proc.returncode != 0:
            raise self._failure(proc, f"writing {dest}")

    def _push_reporting_progress(
        self, local: Path, dest: str, progress: ProgressFn
    ) -> subprocess.CompletedProcess[bytes]:
        """`adb push` on a pseudo-terminal: adb prints its "[ 42%] path" progress only to a tty."""
        size = local.stat().st_size
        controller, terminal = pty.openpty()
        try:
            proc = subprocess.Popen(
                self._argv("push", str(local), dest),
                stdin=subprocess.DEVNULL,
                stdout=terminal,
                stderr=terminal,
            )
        except FileNotFoundError as exc:
            os.close(controller)
            raise self._missing_adb() from exc
        finally:
            os.close(terminal)
        output = bytearray()
        try:
            while chunk := _read_pty(controller):
                output += chunk
                if percents := _PUSH_PERCENT.findall(chunk):
                    progress(size * int(percents[-1]) // 100, size)
        finally:
            os.close(controller)
        proc.wait()
        if proc.returncode == 0:
            progress(size, size)
        # adb redraws its progress line with \r and ESC[K; keep only the final text for error messages.
        text = _ANSI_OR_REDRAW.sub(b"\n", bytes(output))
        return subprocess.CompletedProcess(proc.args, proc.returncode, b"", text)

    def get(self, remote: str, local: Path) -> None:
        """Pull into a temp file next to `local`, then rename: never a partial local file."""
        src = self._resolve(remote)
        tmp = local.with_name(f".{local.name}.edgedeploy-part")
        local.parent.mkdir(parents=True, exist_ok=True)
        proc = self._adb("pull", src, str(tmp), timeout=None, what=f"adb pull {src}")
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise self._failure(proc, f"fetching {src}")
        os.replace(tmp, local)
