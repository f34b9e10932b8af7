"""`edgedeploy convert` / `inspect` through the real CLI: JSON contracts, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgedeploy.models.zoo import lenet300
from tests.support.cli import assert_one_line_error, checkout_env, run_bench, run_cli

ENV = checkout_env()


@pytest.fixture(scope="module")
def lenet_state_dict(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "lenet300.pt"
    torch.save(lenet300().state_dict(), path)
    return path


def test_convert_int8_json_then_inspect_json(tmp_path: Path, lenet_state_dict: Path):
    out = tmp_path / "lenet-int8.onnx"
    proc = run_cli(
        "convert",
        lenet_state_dict,
        "--arch",
        "lenet300",
        "--to",
        "onnx",
        "--precision",
        "int8",
        "-o",
        out,
        "--json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["output"] == str(out) and out.exists()
    verification = result["verification"]
    assert verification["passed"] and "MNIST" in verification["inputs"] and "accuracy" in verification
    assert (
        result["int8_format"] in ("QDQ S8S8", "QOperator U8S8") and "ms" in result["int8_selection"]["reason"]
    )
    assert "timed on this host (no --target)" in result["int8_selection"]["reason"]
    assert result["int8_selection"]["timed_on"]["target"] is None

    proc = run_cli("inspect", out, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["inputs"][0]["name"] == "input" and info["inputs"][0]["shape"][1:] == [1, 28, 28]
    assert info["inputs"][0]["dtype"] == "float32" and info["outputs"][0]["shape"][-1] == 10
    assert info["parameters"] == 266610 and 0 < info["nonzero_parameters"] <= info["parameters"]
    assert info["size_bytes"] == out.stat().st_size and info["zipped_bytes"] < info["size_bytes"]
    assert info["layout"] == "NCHW" and info["quantization"]["per_channel"]
    assert sum(info["ops"].values()) >= 3


def test_convert_tflite_json_stdout_is_clean(tmp_path: Path):
    out = tmp_path / "lenet.tflite"
    proc = run_cli(
        "convert",
        "edgedeploy.models.zoo:lenet300",
        "--to",
        "tflite",
        "--precision",
        "fp16",
        "-o",
        out,
        "--json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # converter progress lines must not leak into stdout
    assert result["format"] == "tflite" and result["verification"]["passed"] and out.exists()


def test_bad_inputs_exit_2_with_one_line(tmp_path: Path):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(b"\x08\x07\x12\x04")
    assert_one_line_error(run_cli("inspect", truncated, cwd=tmp_path), "truncated.onnx", "corrupt")

    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"garbage" * 20)
    out = tmp_path / "never.tflite"
    assert_one_line_error(
        run_cli("convert", garbage, "--to", "tflite", "-o", out, cwd=tmp_path), "garbage.tflite"
    )

    odd = tmp_path / "model.bin2"
    odd.write_bytes(b"?")
    assert_one_line_error(
        run_cli("convert", odd, "-o", out, cwd=tmp_path), "model.bin2", "unknown model format"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.tflite", "model.bin2", "truncated.onnx"]


def test_calibration_shape_mismatch_exit_2(tmp_path: Path):
    calibration = tmp_path / "calib.npy"
    np.save(calibration, np.zeros((8, 3, 32, 32), np.float32))
    out = tmp_path / "lenet.onnx"
    proc = run_cli(
        "convert",
        "edgedeploy.models.zoo:lenet300",
        "--precision",
        "int8",
        "--calibration",
        calibration,
        "-o",
        out,
        cwd=tmp_path,
    )
    assert_one_line_error(proc, "calibration data has shape (8, 3, 32, 32)", "(N, 1, 28, 28)")
    assert not out.exists()


def test_bench_quick(tmp_path: Path):
    proc = run_bench("convert_efficientnet", "--quick", "--samples", "8", "--out", tmp_path, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    kinds = {row["kind"] for row in report["conversions"]}
    assert {"onnx-fp32", "onnx-int8-auto", "tflite-int8", "tflite-fp16"} <= kinds and len(kinds) == 10
    assert all(row["verification"]["passed"] for row in report["conversions"])
    assert [row["threads"] for row in report["onnx_int8_latency"]] == [1, 2]
    sizes = {row["kind"]: row["size_bytes"] for row in report["conversions"]}
    assert sizes["tflite-int8"] < sizes["tflite-fp16"] < sizes["tflite-fp32"]


def test_int8_dynamic_bench_quick(tmp_path: Path):
    proc = run_bench("int8_dynamic_configs", "--quick", cwd=tmp_path, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    rows = report["configurations"]
    ours = rows["edgedeploy per-channel convs, depthwise float (int8-dynamic)"]
    assert ours["passed"] and ours["max_abs_error"] <= report["tolerance"] and ours["p50_ms"] > 0
    assert len(rows) == 9 and all(row["size_bytes"] > 0 for row in rows.values())
