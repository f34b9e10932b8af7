"""`fleet profile --timeout N` bounds the whole process, not only the rows: a device that hangs in the
push phase (a real OpenSSH server whose "Python" never answers) must not keep the process alive after
the result is printed, waiting out the push's own 120 s device-answer timeout."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.cli import run_cli
from tests.support.fleet import hanging_python, kill_recorded
from tests.support.onnx_models import dense_onnx
from tests.support.sshd import SSHServer

TIMEOUT_S = 4
# The hung push waits 120 s for the device before giving up on its own: an exit well before that
# shows the timeout ended the process. The margin is generous for a loaded 2-core CI machine.
EXIT_BOUND_S = 60


@pytest.fixture
def hang_pids(tmp_path: Path) -> Iterator[Path]:
    pid_file = tmp_path / "hung.pids"
    yield pid_file
    kill_recorded(pid_file)


def test_process_exits_soon_after_a_push_hangs_past_the_timeout(
    sshd: SSHServer, tmp_path: Path, hang_pids: Path
) -> None:
    model = dense_onnx(tmp_path / "m.onnx", 16)
    body = yaml.safe_load(sshd.inventory_yaml("hangs", workdir=str(tmp_path / "dev-hangs")))
    hangs = body["all"]["hosts"]["hangs"]
    hangs["ansible_python_interpreter"] = str(hanging_python(tmp_path / "py-hang", hang_pids))
    hosts = {"hangs": hangs}
    inventory = tmp_path / "inv.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"lab": {"hosts": hosts}}}}))
    args = ["fleet", "profile", str(model), "--target", "lab", "--inventory", str(inventory), "--runs", "3",
            "--warmup", "1", "--dir", str(tmp_path / "store"), "--retries", "0",
            "--timeout", str(TIMEOUT_S)]  # fmt: skip
    start = time.monotonic()
    proc = run_cli(*args, "--json", timeout=300)
    elapsed = time.monotonic() - start
    doc = json.loads(proc.stdout)
    rows = {r["target"]: r for r in doc["rows"]}
    assert rows["hangs"]["status"] == "error" and f"timed out after {TIMEOUT_S} s" in rows["hangs"]["error"]
    assert proc.returncode == 1, proc.stderr
    assert elapsed < EXIT_BOUND_S, f"the process lived {elapsed:.0f} s after a {TIMEOUT_S} s timeout"
