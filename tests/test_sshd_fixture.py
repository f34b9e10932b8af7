"""The sshd fixture itself must be a real server the real OpenSSH client can log into."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.sshd import SSHServer


def test_real_ssh_client_logs_in_with_key(sshd: SSHServer) -> None:
    if not shutil.which("ssh"):
        pytest.skip("OpenSSH client not installed")
    out = subprocess.run(
        [
            "ssh", "-p", str(sshd.port), "-i", str(sshd.client_key),
            "-o", f"UserKnownHostsFile={sshd.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", f"{sshd.user}@{sshd.host}", "echo", "hello",
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hello"
