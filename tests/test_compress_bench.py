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
        [sys.executable, str(BENCH / script), "--quick"], capture_output=True, text=True, timeout=600, env=env
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
