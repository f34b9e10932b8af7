"""A real OpenSSH server for tests: own config, host key and authorized client key, on loopback (or,
through tests/isolation.py, in its own network namespace and CPU cgroup).

Used by the fixtures in conftest.py. Debian's openssh-server provides /usr/sbin/sshd; tests skip
with a clear reason when it is missing (`make test` installs it).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"


def sshd_available() -> bool:
    return os.path.exists(SSHD) and os.path.exists(SSH_KEYGEN)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run([SSH_KEYGEN, "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
    return path


@dataclass
class SSHServer:
    """One running sshd. `client_key` is authorized; `known_hosts` holds this server's host key."""

    root: Path
    host: str
    port: int
    user: str
    client_key: Path
    host_key: Path
    known_hosts: Path
    extra_config: str = ""
    # More VAR=value pairs for sshd's SetEnv (sshd keeps only the first SetEnv line, so they share it).
    session_env: tuple[str, ...] = ()
    # Set by tests/isolation.py: the network namespace sshd listens in, and the cgroup-v1 CPU cgroup
    # it joins before it serves (every session it forks inherits both).
    netns: str | None = None
    cpu_cgroup: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def config_path(self) -> Path:
        return self.root / "sshd_config"

    def host_key_line(self) -> str:
        pub = (self.host_key.with_suffix(".pub")).read_text().split()
        name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"  # OpenSSH's convention
        return f"{name} {pub[0]} {pub[1]}\n"

    def write_known_hosts(self) -> Path:
        self.known_hosts.write_text(self.host_key_line())
        return self.known_hosts

    def start(self, timeout: float = 10.0) -> SSHServer:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation dir
        authorized = self.root / "authorized_keys"
        authorized.write_text(self.client_key.with_suffix(".pub").read_text())
        authorized.chmod(0o600)
        self.config_path.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {self.host}",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    "StrictModes no",
                    "UsePAM no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    "Subsystem sftp internal-sftp",
                    "LogLevel ERROR",
                    # The test user's shell rc may run `pyenv init` (root's does on these machines), whose
                    # `pyenv rehash` waits up to 60 s for a lock that a session killed mid-rehash (the
                    # dropped-link tests kill sessions) leaves behind; keep such a wait short.
                    " ".join(["SetEnv PYENV_REHASH_TIMEOUT=1", *self.session_env]),
                    self.extra_config,
                ]
            )
            + "\n"
        )
        command = [SSHD, "-D", "-e", "-f", str(self.config_path)]
        if self.netns:
            command = ["ip", "netns", "exec", self.netns, *command]
        if self.cpu_cgroup:
            # join the cgroup, then exec: the PID stays sshd's, so stop() and crash() still reach it
            join = 'echo $$ > "$0" && exec "$@"'
            command = ["sh", "-c", join, str(self.cpu_cgroup / "cgroup.procs"), *command]
        log = (self.root / "sshd.log").open("wb")
        self.proc = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()[-500:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("sshd did not listen in time")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        _clear_stale_pyenv_lock()

    def crash(self) -> None:
        """Like a device losing power: kill the listener AND every live session (SIGKILL)."""
        import psutil

        if self.proc and self.proc.poll() is None:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):  # a session that ended meanwhile
                    child.kill()
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        _clear_stale_pyenv_lock()

    def inventory_yaml(self, name: str = "sshbox", workdir: str | None = None, **extra: object) -> str:
        """An inventory file body naming this server as host `name`, with host key checking on."""
        import yaml

        host_vars: dict[str, object] = {
            "ansible_connection": "ssh",
            "ansible_host": self.host,
            "ansible_port": self.port,
            "ansible_user": self.user,
            "ansible_ssh_private_key_file": str(self.client_key),
            "edgedeploy_known_hosts": str(self.known_hosts),
            "edgedeploy_workdir": workdir or str(self.root / "device-workdir"),
            **extra,
        }
        return yaml.safe_dump({"all": {"hosts": {name: host_vars}}})


def make_server(
    root: Path, host: str = "127.0.0.1", client_key: Path | None = None, port: int | None = None
) -> SSHServer:
    """Create (not start) a server in `root` with fresh host key; reuse `client_key` when given.
    Without `port`, a free port on `host` (which must then be an address of this network namespace)."""
    root.mkdir(parents=True, exist_ok=True)
    host_key = keygen(root / "ssh_host_ed25519_key")
    client_key = client_key or keygen(root / "client_key")
    return SSHServer(
        root=root,
        host=host,
        port=port or free_port(host),
        user=getpass.getuser(),
        client_key=client_key,
        host_key=host_key,
        known_hosts=root / "known_hosts",
    )


def _clear_stale_pyenv_lock(min_age_s: float = 10.0) -> None:
    """Remove pyenv's rehash lock when a killed session left it behind (see the SetEnv above).

    A live rehash holds the lock for well under a second, so an older lock is stale.
    """
    lock = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "shims" / ".pyenv-shim"
    try:
        if time.time() - lock.stat().st_mtime > min_age_s:
            lock.unlink()
    except FileNotFoundError:
        pass
