"""`convert --int8-format auto --target T`: the int8 candidates and fp32 are timed on the target by the
runner (the local target and a real OpenSSH server on loopback); a target that cannot time them is one
error line and no output. (Timing on the host without --target: tests/test_convert_cli.py.)"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from tests.support.cli import one_error_line, run_cli
from tests.support.onnx_models import dense_onnx
from tests.test_profile import target_for


def convert_int8(model: Path, out: Path, *extra: str):  # noqa: ANN201 - a CompletedProcess
    return run_cli("convert", str(model), "--precision", "int8", "-o", str(out), "--json", *extra,
                   cwd=out.parent)  # fmt: skip


@pytest.mark.parametrize("kind", ["local", "ssh"])
def test_int8_candidates_are_timed_on_the_target(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    model = dense_onnx(tmp_path / "tiny.onnx")
    out = tmp_path / "tiny-int8.onnx"
    proc = convert_int8(model, out, "--threads", "1", *target_for(kind, request, tmp_path))
    assert proc.returncode == 0, proc.stderr
    selection = json.loads(proc.stdout)["int8_selection"]
    where = selection["timed_on"]
    name = "local" if kind == "local" else "board"
    assert where["target"] == name and where["arch"] == platform.machine() and where["emulated"] is False
    assert where["runtime"]["name"] == "onnxruntime" and selection["threads"] == 1
    assert f"timed on target '{name}'" in selection["reason"] and "by the runner" in selection["reason"]
    timed = [row for row in selection["candidates"] if row["passed"]]
    assert timed and all(row["p50_ms"] > 0 and row["speedup_vs_fp32"] > 0 for row in timed)
    assert selection["fp32_p50_ms"] > 0 and out.exists()


def test_a_target_that_cannot_time_is_one_error_line_and_no_output(tmp_path: Path) -> None:
    model = dense_onnx(tmp_path / "tiny.onnx")
    out = tmp_path / "tiny-int8.onnx"
    inventory = tmp_path / "inventory.yml"
    hosts = {
        # The system Python has neither numpy nor onnxruntime: a device not provisioned yet.
        "bare": {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"},
        "gone": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 9},
    }
    inventory.write_text(json.dumps({"all": {"hosts": hosts}}))
    line = one_error_line(convert_int8(model, out, "--target", "bare", "--inventory", str(inventory)))
    assert "bare" in line and "edgedeploy provision" in line
    line = one_error_line(convert_int8(model, out, "--target", "gone", "--inventory", str(inventory)))
    assert "gone" in line
    line = one_error_line(convert_int8(model, out, "--target", "nosuch", "--inventory", str(inventory)))
    assert "unknown target 'nosuch'" in line
    proc = run_cli("convert", str(model), "--precision", "fp16", "-o", str(out), "--target", "local")
    assert "--target times the int8 candidates" in one_error_line(proc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inventory.yml", "tiny.onnx"]  # nothing written
