"""Smoke runs of the compression benchmarks (`--quick`): they run end to end and print their JSON."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch  # the benches train and export torch models ([compress] extra)

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_bench(script: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_deep_compression_quick_prints_both_models() -> None:
    doc = run_bench("deep_compression.py")
    assert doc["quick"] is True
    for arch in ("lenet300", "lenet5"):
        result = doc[arch]
        assert {"fp32_error_pct", "error_pct", "rate", "deployable_bytes", "seconds"} <= set(result)
        assert 0 <= result["error_pct"] <= 100 and result["rate"] > 10
        assert result["deep_compression_bytes"] * result["rate"] == pytest.approx(
            result["fp32_bytes"], rel=1e-3
        )
        assert result["survived_in_onnx"] is True
        has_tf = importlib.util.find_spec("tensorflow_model_optimization") is not None
        assert ("tfmot_pcqat" in result) == has_tf


def test_distillation_quick_counts_errors() -> None:
    doc = run_bench("distillation.py")
    assert {"teacher_errors", "student_errors", "student_kd_errors", "seconds"} <= set(doc)
    assert all(
        0 <= doc[k] <= doc["test_samples"] for k in ("teacher_errors", "student_errors", "student_kd_errors")
    )


def test_cnn_compression_quick_prints_the_issue_fields() -> None:
    # One model keeps the smoke run short (its TFLite conversions dominate); the full run does both.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(BENCH / "cnn_compression.py"), "--quick", "--only", "resnet20"],
        capture_output=True, text=True, timeout=1500, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    result = doc["resnet20"]
    fields = {"dataset", "fp32_accuracy", "pruned_accuracy", "final_accuracy", "macs_ratio", "params_ratio",
              "size_ratio", "speedup_pruned_fp32_onnx", "speedup_pruned_fp32_tflite", "speedup_final_onnx",
              "speedup_final_tflite", "seconds"}  # fmt: skip
    assert fields <= set(result)
    assert result["macs_ratio"] > 1 and result["speedup_pruned_fp32_onnx"] > 0
    assert not result["errors"]
    assert doc["quick"] is True and doc["config"]["train_samples"] == 256
