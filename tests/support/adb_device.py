"""A small adb DEVICE for tests: speaks the adb wire protocol over TCP so the real `adb` client can drive it.

No Android emulator can be installed here, so the adb transport is tested by the real adb client and
server (Debian's `adb`) talking to this daemon, as they would to `adbd` on a phone reached with
`adb connect HOST:PORT`. It implements what adb's push/pull/shell use:
- transport messages CNXN / OPEN / OKAY / WRTE / CLSE (24-byte header; one WRTE in flight per stream,
  as adb without the delayed_ack feature); AUTH is skipped: we answer the host's CNXN directly, which
  adb accepts from a device that does not ask for authentication;
- `shell,v2,...:COMMAND`: the shell protocol v2 (stdin/stdout/stderr/exit packets), so exit codes
  reach the client; commands run with /bin/sh in the served directory;
- `sync:`: STAT (v1), SEND (DATA.../DONE -> OKAY|FAIL), RECV (DATA.../DONE|FAIL), LIST, QUIT.
Sync paths must lie inside the served directory (absolute paths under it, or relative to it).
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import stat
import struct
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

A_CNXN, A_OPEN, A_OKAY, A_CLSE, A_WRTE, A_AUTH = (
    int.from_bytes(name, "little") for name in (b"CNXN", b"OPEN", b"OKAY", b"CLSE", b"WRTE", b"AUTH")
)
A_VERSION = 0x01000001
MAX_PAYLOAD = 256 * 1024
SYNC_DATA_MAX = 64 * 1024
BANNER = (
    b"device::ro.product.name=edgedeploy_test;ro.product.model=adb_device_py;ro.product.device=test;"
    b"features=shell_v2,cmd"
)
Service = Callable[["_Stream", str], None]
"""A device service (shell, sync) serving one stream."""
SHELL_STDIN, SHELL_STDOUT, SHELL_STDERR, SHELL_EXIT, SHELL_CLOSE_STDIN = 0, 1, 2, 3, 4


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


class _Stream:
    """One adb stream: host writes arrive in `inbox`; our writes wait for the host's OKAY."""

    def __init__(self, conn: _Connection, local_id: int, remote_id: int) -> None:
        self.conn, self.local_id, self.remote_id = conn, local_id, remote_id
        self.inbox: queue.Queue[bytes] = queue.Queue()
        self.acked = threading.Event()
        self.acked.set()
        self.closed = False
        self._buffer = bytearray()
        self._write_lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._write_lock:
            for start in range(0, len(data), self.conn.max_payload):
                if not self.acked.wait(30) or self.closed:
                    raise EOFError
                self.acked.clear()
                self.conn.send(
                    A_WRTE, self.local_id, self.remote_id, data[start : start + self.conn.max_payload]
                )

    def read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.inbox.get()
            if not chunk:
                raise EOFError
            self._buffer += chunk
        out, self._buffer = bytes(self._buffer[:n]), self._buffer[n:]
        return out

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.send(A_CLSE, self.local_id, self.remote_id)
            self.conn.streams.pop(self.local_id, None)


class _Connection:
    def __init__(self, sock: socket.socket, device: ADBDevice) -> None:
        self.sock, self.device = sock, device
        self.streams: dict[int, _Stream] = {}
        self.max_payload = MAX_PAYLOAD
        self._send_lock = threading.Lock()
        self._next_id = 1

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        header = struct.pack(
            "<6I", command, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF, command ^ 0xFFFFFFFF
        )
        with self._send_lock:
            self.sock.sendall(header + data)

    def serve(self) -> None:
        try:
            while True:
                command, arg0, arg1, length, _check, magic = struct.unpack("<6I", _recv_exact(self.sock, 24))
                if magic != command ^ 0xFFFFFFFF:
                    return
                self._dispatch(command, arg0, arg1, _recv_exact(self.sock, length) if length else b"")
        except (EOFError, OSError):
            pass
        finally:
            for stream in list(self.streams.values()):
                stream.closed = True
                stream.acked.set()
                stream.inbox.put(b"")
            self.sock.close()

    def _dispatch(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        if command == A_CNXN:
            self.max_payload = min(MAX_PAYLOAD, arg1)
            self.send(A_CNXN, A_VERSION, MAX_PAYLOAD, BANNER)
        elif command == A_OPEN:
            service = data.rstrip(b"\0").decode()
            handler = self.device.handler_for(service)
            if handler is None:
                self.send(A_CLSE, 0, arg0)
                return
            local_id, self._next_id = self._next_id, self._next_id + 1
            stream = self.streams[local_id] = _Stream(self, local_id, arg0)
            self.send(A_OKAY, local_id, arg0)
            threading.Thread(target=self._run_service, args=(handler, stream, service), daemon=True).start()
        elif command == A_OKAY and (stream := self.streams.get(arg1)):
            stream.acked.set()
        elif command == A_WRTE and (stream := self.streams.get(arg1)):
            stream.inbox.put(data)
            self.send(A_OKAY, arg1, arg0)
        elif command == A_CLSE and (stream := self.streams.pop(arg1, None)):
            stream.closed = True
            stream.acked.set()
            stream.inbox.put(b"")

    @staticmethod
    def _run_service(handler: Service, stream: _Stream, service: str) -> None:
        try:
            handler(stream, service)
        except (EOFError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError):
                stream.close()


class ADBDevice:
    """Serve `root` as an adb device on `host:port` (loopback). start() / stop(), or a `with` block."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = root.resolve()
        self._listener = socket.create_server((host, port))
        self.host, self.port = host, self._listener.getsockname()[1]
        self._connections: list[_Connection] = []
        self._thread: threading.Thread | None = None

    @property
    def serial(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> ADBDevice:
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for conn in self._connections:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> ADBDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(sock, self)
            self._connections.append(conn)
            threading.Thread(target=conn.serve, daemon=True).start()

    def handler_for(self, service: str) -> Service | None:
        if service.startswith("shell,") and ",v2" in service.split(":", 1)[0] + ",":
            return self._shell_v2
        if service == "sync:":
            return self._sync
        return None

    def local_path(self, device_path: str) -> Path:
        path = (self.root / device_path).resolve()  # an absolute device_path replaces root: checked next
        if path != self.root and self.root not in path.parents:
            raise PermissionError(f"{device_path}: outside the served directory")
        return path

    # ------------------------------------------------------------------ shell protocol v2

    def _shell_v2(self, stream: _Stream, service: str) -> None:
        command = service.split(":", 1)[1]
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command] if command else ["/bin/sh"],
            cwd=self.root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

        def pump(pipe: IO[bytes], packet_id: int) -> None:
            while chunk := pipe.read1(SYNC_DATA_MAX):
                stream.write(struct.pack("<BI", packet_id, len(chunk)) + chunk)

        def feed_stdin() -> None:
            assert proc.stdin is not None
            try:
                while True:
                    packet_id, length = struct.unpack("<BI", stream.read_exact(5))
                    payload = stream.read_exact(length) if length else b""
                    if packet_id == SHELL_STDIN:
                        proc.stdin.write(payload)
                        proc.stdin.flush()
                    elif packet_id == SHELL_CLOSE_STDIN:
                        break
            except (EOFError, BrokenPipeError):
                pass
            finally:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()

        threading.Thread(target=feed_stdin, daemon=True).start()
        pumps = [
            threading.Thread(target=pump, args=(proc.stdout, SHELL_STDOUT), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, SHELL_STDERR), daemon=True),
        ]
        for thread in pumps:
            thread.start()
        for thread in pumps:
            thread.join()
        code = proc.wait()
        stream.write(struct.pack("<BI", SHELL_EXIT, 1) + bytes([code & 0xFF]))

    # ------------------------------------------------------------------ sync protocol

    def _sync(self, stream: _Stream, service: str) -> None:
        while True:
            request, length = struct.unpack("<4sI", stream.read_exact(8))
            if request == b"QUIT":
                return
            arg = stream.read_exact(length).decode() if length else ""
            if request == b"STAT":
                try:
                    st = os.stat(self.local_path(arg))
                    reply = (st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
                except OSError:
                    reply = (0, 0, 0)
                stream.write(struct.pack("<4s3I", b"STAT", *reply))
            elif request == b"SEND":
                self._receive_file(stream, arg)
            elif request == b"RECV":
                self._send_file(stream, arg)
            elif request == b"LIST":
                self._list(stream, arg)
            else:
                stream.write(self._fail(f"unsupported sync request {request!r}"))
                return

    @staticmethod
    def _fail(message: str) -> bytes:
        data = message.encode()
        return struct.pack("<4sI", b"FAIL", len(data)) + data

    def _receive_file(self, stream: _Stream, spec: str) -> None:
        """SEND path,mode then DATA chunks and DONE: write as adbd does, then OKAY or FAIL."""
        device_path, _, mode = spec.rpartition(",")
        error = None
        try:
            target = self.local_path(device_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            out = target.open("wb")
        except OSError as exc:
            error, out = f"{device_path}: {exc.strerror or exc}", None
        while True:
            kind, length = struct.unpack("<4sI", stream.read_exact(8))
            if kind == b"DONE":
                break
            data = stream.read_exact(length)
            if out is not None and error is None:
                try:
                    out.write(data)
                except OSError as exc:
                    error = f"{device_path}: {exc.strerror}"
        if out is not None:
            try:
                out.close()
                os.chmod(target, int(mode) & 0o777)
            except (OSError, ValueError) as exc:
                error = error or f"{device_path}: {getattr(exc, 'strerror', exc)}"
        stream.write(self._fail(error) if error else struct.pack("<4sI", b"OKAY", 0))

    def _send_file(self, stream: _Stream, device_path: str) -> None:
        try:
            with self.local_path(device_path).open("rb") as src:
                while chunk := src.read(SYNC_DATA_MAX):
                    stream.write(struct.pack("<4sI", b"DATA", len(chunk)) + chunk)
        except OSError as exc:
            stream.write(self._fail(f"{device_path}: {exc.strerror or exc}"))
            return
        stream.write(struct.pack("<4sI", b"DONE", 0))

    def _list(self, stream: _Stream, device_path: str) -> None:
        try:
            entries = list(os.scandir(self.local_path(device_path)))
        except OSError:
            entries = []
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            name = entry.name.encode()
            mode = st.st_mode if not stat.S_ISLNK(st.st_mode) else stat.S_IFLNK | 0o777
            stream.write(
                struct.pack("<4s4I", b"DENT", mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(name))
                + name
            )
        stream.write(struct.pack("<4s4I", b"DONE", 0, 0, 0, 0))
