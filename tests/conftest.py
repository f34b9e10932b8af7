"""Shared fixtures. Real servers only: `sshd` starts Debian's OpenSSH on a loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sshd import SSHServer, make_server, sshd_available

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests away from the user's ~/.config and ~/.cache (inventory, local work dir, facts)."""
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.delenv("EDGEDEPLOY_INVENTORY", raising=False)


@pytest.fixture(autouse=True)
def _profiles_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Profiles a test stores go to its own tmp_path/profiles, never to the checkout's ./profiles
    (which a user's next `profiles report` would show). Tests that run the CLI with cwd=tmp_path
    find them where the default ./profiles would have put them."""
    monkeypatch.setenv("EDGEDEPLOY_PROFILES", str(tmp_path / "profiles"))


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SSHServer]:
    """A started sshd on 127.0.0.1 whose host key is already in its known_hosts file."""
    if not sshd_available():
        pytest.skip("OpenSSH server not installed (make test installs Debian's openssh-server)")
    server = make_server(tmp_path / "sshd").start()
    server.write_known_hosts()
    try:
        yield server
    finally:
        server.stop()


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600):
    """Run `python -m edgedeploy ARGS` as a user would; returns the CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, "-m", "edgedeploy", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
