"""bench/runner_fidelity.py --quick: the whole benchmark path (four conversions, runner vs bare loop,
repeats, int8 speed, top-1 agreement) on LeNet-5 in seconds; the full run is EfficientNet-Lite0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quick_fidelity_bench_measures_every_variant(tmp_path: Path) -> None:
    out_file = tmp_path / "fidelity.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "runner_fidelity.py"), "--quick", "--out", str(out_file)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert json.loads(out_file.read_text()) == doc
    assert set(doc["variants"]) == {"onnx-fp32", "onnx-int8", "tflite-fp32", "tflite-int8"}
    for variant in doc["variants"].values():
        assert len(variant["runner_p50_ms"]) == len(variant["bare_p50_ms"]) == doc["settings"]["repeats"]
        assert variant["runner_median_ms"] > 0 and variant["bare_median_ms"] > 0
        assert variant["runner_cv_pct"] >= 0
    summary = doc["summary"]
    assert set(summary["goals_met"]) == {
        "runner_within_5pct_of_bare", "cv_at_most_3pct", "onnx_int8_2x", "tflite_int8_2x"
    }  # fmt: skip
    assert summary["int8_speedup"]["onnx"]["bare"] > 0
    # int8 of the same network must mostly pick the same class as fp32, even with random weights.
    for key, value in summary["top1_agreement"].items():
        assert 0.5 <= value <= 1.0, (key, value)
