"""bench/int8_calibration.py --quick: every ONNX Runtime calibrator quantises LeNet-5 and is judged on
photos disjoint from its calibration photos; the full run is EfficientNet-Lite0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_bench

pytestmark = pytest.mark.torch  # the bench exports torch models ([compress] extra)


def test_quick_calibration_bench_compares_every_method(tmp_path: Path) -> None:
    out_file = tmp_path / "calibration.json"
    proc = run_bench("int8_calibration", "--quick", "--out", out_file, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert json.loads(out_file.read_text()) == doc
    assert not set(doc["calibration"]["photos"]) & set(doc["evaluation"]["photos"]), "disjoint photo sets"
    assert set(doc["int8_vs_fp32"]) == {"qoperator-minmax", "qoperator-percentile", "qoperator-entropy"}
    for result in doc["int8_vs_fp32"].values():
        assert result["inputs"] == doc["evaluation"]["crops"]
        assert 0.5 <= result["top1_agreement"] <= result["reference_top1_in_top5"] <= 1.0, result
        assert result["logit_sqnr_db"] > 10, result  # int8 tracks fp32 logits closely, not by chance
