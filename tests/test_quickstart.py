"""The main job end to end on a small training subset: every variant converted, verified, profiled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_cli

pytestmark = pytest.mark.torch  # quickstart trains a torch model ([compress] extra)


def test_quickstart_small(tmp_path: Path) -> None:
    out = run_cli(
        "quickstart", "--train-samples", "3000", "--epochs", "2", "--runs", "20", "-o", "out/qs", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "comp-int8.onnx" in out.stdout and "Deep-Compression format" in out.stdout
    summary = json.loads((tmp_path / "out/qs/summary.json").read_text())
    rows = {row["variant"]: row for row in summary["variants"]}
    assert {"base-fp32.onnx", "comp-fp32.onnx", "comp-int8.onnx"} <= set(rows)
    for row in rows.values():
        assert row["accuracy"] > 0.80, row  # 3k training images still learn MNIST
        assert row["latency_p50_ms"] > 0 and row["peak_rss_mb"] > 0
        profile = json.loads((tmp_path / row["profile"]).read_text())
        assert profile["target"]["name"] == "local" and profile["latency_ms"]["n"] == 20
        # The accuracy measured on the exported file travels with its profile (the report plots it).
        assert profile["model"]["accuracy"] == row["accuracy"]
    assert rows["comp-int8.onnx"]["size_bytes"] < rows["base-fp32.onnx"]["size_bytes"] / 3
    assert rows["comp-fp32.onnx"]["zipped_bytes"] < rows["base-fp32.onnx"]["zipped_bytes"] / 5
    compression = summary["compression"]
    assert compression["weight_sparsity"] >= 0.85 and compression["rate"] > 10
    assert all(v["survived"] for v in compression["survival"].values())
    # The converters' own chatter goes to the log, and ORT's temp files never land in the cwd.
    assert (tmp_path / "out/qs/convert.log").exists()
    assert not list(tmp_path.glob("sym_shape_infer_temp*"))
