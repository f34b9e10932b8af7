"""The foundation: CLI start-up stays light, every verb answers --help, and the local target works
end to end through the same runner/transport path as devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import run_cli

VERBS = [
    ["compress"], ["convert"], ["inspect"], ["targets"], ["targets", "list"], ["targets", "check"],
    ["push"], ["run"], ["profile"], ["fleet"], ["fleet", "profile"], ["profiles"], ["profiles", "report"],
    ["emulator"], ["emulator", "build"], ["provision"], ["quickstart"],
]  # fmt: skip
HEAVY = ("torch", "onnx", "onnxruntime", "tensorflow", "matplotlib", "paramiko", "ai_edge_litert", "numpy")


def test_help_imports_no_heavy_framework() -> None:
    code = (
        "import sys, time; t = time.perf_counter()\n"
        "from edgedeploy.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), time.perf_counter() - t, file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, _seconds = out.stderr.strip().rsplit(" ", 1)
    assert heavy == "[]", f"--help imported heavy modules: {heavy}"


def test_help_answers_quickly() -> None:
    # CPU time of that one process (os.wait4), not wall time: a busy machine stretches the wall clock
    # but not the work done, so the test does not race other processes for the CPU.
    proc = subprocess.Popen([sys.executable, "-m", "edgedeploy", "--help"], stdout=subprocess.PIPE, text=True)
    with proc.stdout as pipe:  # type: ignore[union-attr] - stdout=PIPE
        stdout = pipe.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu_seconds = usage.ru_utime + usage.ru_stime
    assert proc.returncode == 0 and "quickstart" in stdout
    # Interpreter start included; far below a torch import (several CPU-seconds).
    assert cpu_seconds < 2.0, cpu_seconds


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: " ".join(v))
def test_every_verb_has_help(verb: list[str]) -> None:
    out = run_cli(*verb, "--help")
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
    )
    torch.onnx.export(
        model.eval(), (torch.zeros(1, 1, 28, 28),), str(path), input_names=["image"], output_names=["logits"],
        external_data=False, dynamo=False,
    )  # fmt: skip
    return path


def test_profile_local_json_interface(tiny_onnx: Path, tmp_path: Path) -> None:
    out = run_cli("profile", str(tiny_onnx), "--target", "local", "--runs", "30", "--min-seconds", "0",
                  "--json", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["latency_ms"]["n"] == 30
    for key in ("mean", "std", "p50", "p90", "p99"):
        assert doc["latency_ms"][key] > 0
    assert doc["latency_ms"]["p50"] <= doc["latency_ms"]["p99"]
    assert doc["init_ms"] > 0 and doc["first_inference_ms"] > 0
    assert doc["memory"]["peak_rss_mb"] > 10
    assert doc["power"]["source"] == "estimated" and doc["power"]["method"]
    assert doc["runtime"]["name"] == "onnxruntime" and doc["runtime"]["version"]
    assert doc["target"]["name"] == "local" and doc["target"]["arch"]
    stored = Path(doc["path"])
    stored = stored if stored.is_absolute() else tmp_path / stored
    assert stored.is_relative_to(tmp_path / "profiles" / "local" / "tiny")
    assert json.loads(stored.read_text())["model"]["sha256"] == doc["model"]["sha256"]


def test_run_local_writes_outputs_matching_onnxruntime(tiny_onnx: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    x = np.random.default_rng(1).random((1, 1, 28, 28), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    out = run_cli("run", str(tiny_onnx), "--inputs", str(tmp_path / "x.npy"), "--out", str(tmp_path / "outs"))
    assert out.returncode == 0, out.stderr
    got = np.load(tmp_path / "outs" / "logits.npy")
    want = ort.InferenceSession(str(tiny_onnx)).run(None, {"image": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["profile", "missing.onnx"], "no such file"),
        (["profile", "{model}", "--target", "nowhere"], "unknown target"),
        (["run", "{model}", "--inputs", "{bad_shape}"], "expects shape"),
        (["profile", "{corrupt}"], "cannot load"),
        (["profile", "{model}", "--target", "raspberry_pi"], "is a group"),
    ],
)
def test_bad_input_is_one_clear_line(tiny_onnx: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    bad_shape = tmp_path / "bad.npy"
    np.save(bad_shape, np.zeros((1, 3, 28, 28), np.float32))
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(tiny_onnx.read_bytes()[:500])
    filled = [a.format(model=tiny_onnx, bad_shape=bad_shape, corrupt=corrupt) for a in args]
    out = run_cli(*filled, cwd=tmp_path)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert needle in lines[0]
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "profiles").exists(), "a failed profile must not leave a file behind"
