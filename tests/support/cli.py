"""Run this checkout's CLI (`python -m edgedeploy`) or a benchmark (`python -m bench.NAME`) in a subprocess,
as a user would, and check its one-line errors."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def checkout_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ plus `env`, with this checkout first on PYTHONPATH: commands run in temporary
    directories still import this tree's edgedeploy (and bench), not an installed copy."""
    merged = {**os.environ, **(env or {})}
    merged["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), merged.get("PYTHONPATH")]))
    return merged


def run_cli(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    """`python -m edgedeploy ARGS` with text output captured. `timeout` is a hang guard, not a speed
    check: compress and convert train and export, and a loaded machine takes several times longer."""
    return subprocess.run(
        [sys.executable, "-m", "edgedeploy", *map(str, args)],
        cwd=cwd,
        env=checkout_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_bench(
    name: str,
    *args: str | Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 3600,
) -> subprocess.CompletedProcess[str]:
    """`python -m bench.NAME ARGS` as the docs tell a user to run it (from the repository root unless
    `cwd` says otherwise; this checkout is first on PYTHONPATH either way)."""
    return subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *map(str, args)],
        cwd=cwd or REPO,
        env=checkout_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    """The one `error: ...` line of a failed command (and nothing else on stderr)."""
    assert out.returncode != 0, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """A usage error (exit 2): one `error:` line holding every fragment, no traceback."""
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@functools.cache
def runner_pyz() -> Path:
    """The runner zipapp as pushed to devices, built once per test process (a temp dir removed at exit)."""
    from edgedeploy.runner import write_zipapp

    folder = Path(tempfile.mkdtemp(prefix="edgedeploy-runner-"))
    atexit.register(shutil.rmtree, folder, True)
    return write_zipapp(folder)
