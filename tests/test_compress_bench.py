"""Smoke runs of the compression benchmarks (`--quick`): they run end to end and print their JSON."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.support.cli import run_bench

pytestmark = pytest.mark.torch  # the benches train and export torch models ([compress] extra)


def quick_bench(name: str) -> dict:
    proc = run_bench(name, "--quick", timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_deep_compression_quick_prints_both_models() -> None:
    doc = quick_bench("deep_compression")
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
    doc = quick_bench("distillation")
    assert {"teacher_errors", "student_errors", "student_kd_errors", "seconds"} <= set(doc)
    assert all(
        0 <= doc[k] <= doc["test_samples"] for k in ("teacher_errors", "student_errors", "student_kd_errors")
    )


def test_cnn_compression_quick_prints_the_issue_fields() -> None:
    # One model keeps the smoke run short (its TFLite conversions dominate); the full run does both.
    proc = run_bench("cnn_compression", "--quick", "--only", "resnet20", timeout=1500)
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
