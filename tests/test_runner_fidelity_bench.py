"""bench/runner_fidelity.py --quick: the whole benchmark path (four conversions, runner vs bare loop,
repeats, int8 speed, top-1 agreement) on LeNet-5 in seconds; the full run is EfficientNet-Lite0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_bench

pytestmark = pytest.mark.torch  # the bench exports torch models ([compress] extra)


def test_quick_fidelity_bench_measures_every_variant(tmp_path: Path) -> None:
    out_file = tmp_path / "fidelity.json"
    proc = run_bench("runner_fidelity", "--quick", "--compare-legacy", "--out", out_file, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert json.loads(out_file.read_text()) == doc
    assert set(doc["variants"]) == {"onnx-fp32", "onnx-int8", "tflite-fp32", "tflite-int8"}
    robust = doc["settings"]["timing"]["robust"]
    assert robust["cores"] is not None and robust["min_seconds"] > 0  # pinned and timed by duration
    for variant in doc["variants"].values():
        for timing in (variant, variant["legacy"]):  # the new settings, and the old ones beside them
            assert len(timing["runner_p50_ms"]) == len(timing["bare_p50_ms"]) == doc["settings"]["repeats"]
            assert timing["runner_median_ms"] > 0 and timing["bare_median_ms"] > 0
            assert timing["runner_cv_pct"] >= 0
        # At least --runs, and more when the minimum time needs it; the legacy runs exactly --runs.
        assert min(variant["runner_n"]) >= robust["runs"]
        assert variant["legacy"]["runner_n"] == [robust["runs"]] * doc["settings"]["repeats"]
        assert 0 <= variant["runner_contended_repeats"] <= doc["settings"]["repeats"]
    summary = doc["summary"]
    assert set(summary["goals_met"]) == {
        "runner_within_5pct_of_bare", "cv_at_most_3pct", "onnx_int8_2x", "tflite_int8_2x"
    }  # fmt: skip
    assert set(summary["worst_runner_cv_pct_by_settings"]) == {"robust", "legacy"}
    assert summary["int8_speedup"]["onnx"]["bare"] > 0
    # int8 of the same network must mostly pick the same class as fp32, even with random weights.
    top1 = summary["top1_agreement"]
    assert 0.5 <= top1["tflite_fp32_vs_onnx_fp32"] <= 1.0
    for fmt in ("onnx", "tflite"):
        result = top1[f"{fmt}_int8_vs_fp32"]
        assert 0.5 <= result["top1_agreement"] <= result["reference_top1_in_top5"] <= 1.0, result
        assert result["inputs"] == doc["settings"]["agreement_images"]
