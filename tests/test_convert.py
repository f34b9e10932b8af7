"""Conversion round trips, verification and bad input, through the Python API (no subprocess cost)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgedeploy.convert.api import convert_source, convert_torch
from edgedeploy.convert.inspect import inspect_model
from edgedeploy.convert.preflight import check_torch
from edgedeploy.convert.runtimes import open_runner
from edgedeploy.convert.sources import load_source
from edgedeploy.errors import UsageError
from tests.support.onnx_models import onnx_model


class TinyConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 13 * 13, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


class NoisyNet(TinyConvNet):
    """A deliberately broken conversion: its exported graph draws new noise on every run."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + torch.rand_like(super().forward(x)) * 10


class SvdNet(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.svdvals(x.flatten(2))


@pytest.fixture(scope="module")
def tiny() -> TinyConvNet:
    torch.manual_seed(0)
    return TinyConvNet().eval()


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.random.default_rng(0).random((12, 1, 28, 28), dtype=np.float32)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("to", ["onnx", "tflite"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8-dynamic", "int8"])
def test_round_trip_every_output_kind(
    tmp_path: Path, tiny: TinyConvNet, data: np.ndarray, to: str, precision: str
):
    output = tmp_path / f"tiny.{to}"
    result = convert_torch(
        tiny, data[:1], to=to, precision=precision, output=output, calibration=data, verify_inputs=data
    )
    assert result["output"] == str(output) and output.stat().st_size == result["size_bytes"]
    assert leftovers(tmp_path) == [output.name]  # no temporary files left behind
    assert b"test_convert.py" not in output.read_bytes()  # no exporter stack traces with host paths
    verification = result["verification"]
    assert verification["passed"] and verification["max_abs_error"] <= verification["tolerance"]
    assert verification["top1_agreement"] >= 0.75
    # The file runs on its own and gives the torch model's answers.
    expected = tiny(torch.from_numpy(data)).detach().numpy()
    assert np.abs(open_runner(output).predict(data) - expected).max() == pytest.approx(
        verification["max_abs_error"], rel=1e-3, abs=1e-6
    )
    info = inspect_model(output)
    assert info["layout"] == "NCHW"
    assert info["inputs"][0]["shape"][1:] == [1, 28, 28] and info["outputs"][0]["shape"][-1] == 10
    assert info["parameters"] == n_params(tiny)
    assert info["macs"] == 4 * 26 * 26 * 9 + 676 * 10  # conv + fc, whatever ops the converter chose
    if precision.startswith("int8"):
        assert result["size_bytes"] < result["fp32_size_bytes"] / 2.5
        assert info["quantization"]["per_channel"]
    if to == "onnx" and precision == "int8":
        selection = result["int8_selection"]
        assert {row["format"] for row in selection["candidates"]} == {"QDQ S8S8", "QOperator U8S8"}
        assert result["int8_format"] in selection["reason"] and "fastest" in selection["reason"]


def test_pruned_model_ships_sparse_weights_not_masks(tmp_path: Path, data: np.ndarray):
    from torch.nn.utils import prune

    torch.manual_seed(0)
    model = TinyConvNet().eval()
    prune.l1_unstructured(model.fc, "weight", amount=0.9)  # weight = weight_orig * weight_mask at run time
    output = tmp_path / "pruned.onnx"
    assert convert_torch(model, data[:1], "onnx", "fp32", output, verify_inputs=data)["verification"][
        "passed"
    ]
    info = inspect_model(output)
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert info["nonzero_parameters"] == info["parameters"] - int(0.9 * model.fc.weight.numel())
    assert info["zipped_bytes"] < info["size_bytes"] / 2


@pytest.mark.parametrize(
    ("int8_format", "scheme", "op"),
    [("qdq", "QDQ", "DequantizeLinear"), ("qoperator", "QOperator", "QLinearConv")],
)
def test_explicit_int8_formats(
    tmp_path: Path, tiny: TinyConvNet, data: np.ndarray, int8_format: str, scheme: str, op: str
):
    output = tmp_path / "tiny.onnx"
    result = convert_torch(tiny, data[:1], "onnx", "int8", output, calibration=data, int8_format=int8_format)
    assert "int8_selection" not in result
    info = inspect_model(output)
    assert info["quantization"]["scheme"] == scheme and op in info["ops"]


def test_broken_conversion_fails_verification(tmp_path: Path, data: np.ndarray):
    torch.manual_seed(0)
    output = tmp_path / "noisy.onnx"
    with pytest.raises(UsageError, match=r"noisy\.onnx: verification failed: max abs error .* > tolerance"):
        convert_torch(NoisyNet().eval(), data[:1], "onnx", "fp32", output, verify_inputs=data)
    assert leftovers(tmp_path) == []


def test_user_tolerance_is_enforced(tmp_path: Path, tiny: TinyConvNet, data: np.ndarray):
    with pytest.raises(UsageError, match="tolerance 1e-09"):
        convert_torch(tiny, data[:1], "tflite", "int8-dynamic", tmp_path / "t.tflite", tolerance=1e-9)
    assert leftovers(tmp_path) == []


def test_calibration_shape_mismatch(tmp_path: Path, tiny: TinyConvNet, data: np.ndarray):
    wrong = np.zeros((4, 3, 28, 28), np.float32)
    with pytest.raises(
        UsageError, match=r"calibration data has shape \(4, 3, 28, 28\) but the model takes \(N, 1, 28, 28\)"
    ):
        convert_torch(tiny, data[:1], "onnx", "int8", tmp_path / "t.onnx", calibration=wrong)
    assert leftovers(tmp_path) == []


def test_preflight_names_unsupported_ops(tmp_path: Path):
    example = np.zeros((1, 2, 4, 4), np.float32)
    report = check_torch(SvdNet(), example, "onnx")
    # The exporter decomposes svdvals into _linalg_svd, which torchlib does not implement.
    assert report["unsupported"] == ["aten._linalg_svd.default"]
    with pytest.raises(
        UsageError, match=r"ops not supported by torch.onnx \(dynamo, torchlib\): aten._linalg_svd"
    ):
        convert_torch(SvdNet(), example, "onnx", "fp32", tmp_path / "svd.onnx")
    assert leftovers(tmp_path) == []


def test_torch_file_sources(tmp_path: Path, tiny: TinyConvNet, data: np.ndarray):
    example = torch.from_numpy(data[:1])
    torch.jit.save(torch.jit.trace(tiny, example), tmp_path / "tiny.ts")
    torch.export.save(torch.export.export(tiny, (example,)), tmp_path / "tiny.pt2")
    torch.save(
        {"arch": "lenet300", "state_dict": torch.nn.Module.state_dict(_lenet300())}, tmp_path / "lenet.pt"
    )
    for name, shape in [("tiny.ts", (1, 1, 28, 28)), ("tiny.pt2", None), ("lenet.pt", None)]:
        source = load_source(str(tmp_path / name), input_shape=shape)
        assert source.kind == "torch" and source.input_shape == (1, 1, 28, 28)
        result = convert_source(source, "onnx", "fp32", tmp_path / f"{name}.onnx", verify_inputs=data)
        assert result["verification"]["passed"]
    assert inspect_model(tmp_path / "tiny.pt2")["parameters"] == n_params(tiny)
    assert inspect_model(tmp_path / "lenet.pt")["parameters"] == 266610


def _lenet300() -> nn.Module:
    from edgedeploy.models.zoo import lenet300

    return lenet300()


def test_state_dict_needs_arch(tmp_path: Path):
    torch.save(_lenet300().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(UsageError, match=r"weights\.pt: is a state_dict; name its architecture with --arch"):
        load_source(str(tmp_path / "weights.pt"))
    with pytest.raises(UsageError, match="weights do not fit --arch lenet5"):
        load_source(str(tmp_path / "weights.pt"), arch="lenet5")


def test_tflite_requantization(tmp_path: Path, tiny: TinyConvNet, data: np.ndarray):
    fp32 = tmp_path / "tiny.tflite"
    convert_torch(tiny, data[:1], "tflite", "fp32", fp32)
    result = convert_source(
        load_source(str(fp32)), "tflite", "int8", tmp_path / "tiny-int8.tflite", calibration=data
    )
    assert result["source_format"] == "tflite" and result["verification"]["passed"]
    assert inspect_model(tmp_path / "tiny-int8.tflite")["inputs"][0]["dtype"] == "int8"


@pytest.mark.parametrize("suffix", [".onnx", ".tflite", ".pt", ".pt2"])
def test_truncated_and_corrupt_files(tmp_path: Path, tiny: TinyConvNet, data: np.ndarray, suffix: str):
    good = tmp_path / f"good{suffix}"
    if suffix in (".onnx", ".tflite"):
        convert_torch(tiny, data[:1], suffix[1:], "fp32", good)
    elif suffix == ".pt":
        torch.save(tiny.state_dict(), good)
    else:
        torch.export.save(torch.export.export(tiny, (torch.from_numpy(data[:1]),)), good)
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / f"garbage{suffix}"
    garbage.write_bytes(b"\x00not a model\xff" * 64)
    for bad in (truncated, garbage):
        with pytest.raises(UsageError, match=rf"^{bad}: .*(truncated|corrupt|cannot load)"):
            load_source(str(bad), arch="lenet300")
        with pytest.raises(UsageError, match=rf"^{bad}: "):
            inspect_model(bad)


def test_unknown_format(tmp_path: Path):
    odd = tmp_path / "model.xyz"
    odd.write_bytes(b"hello")
    with pytest.raises(UsageError, match=r"model\.xyz: unknown model format"):
        load_source(str(odd))
    with pytest.raises(UsageError, match=r"model\.xyz: unknown model format"):
        inspect_model(odd)


def test_keras_without_tensorflow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    keras = tmp_path / "model.keras"
    keras.write_bytes(b"PK")
    monkeypatch.setitem(
        sys.modules, "tensorflow", None
    )  # makes `import tensorflow` fail like a missing package
    with pytest.raises(UsageError, match=r"model\.keras: .*TensorFlow.*edgedeploy\[tf\]"):
        load_source(str(keras))


def test_keras_and_saved_model_sources(tmp_path: Path):
    tf = pytest.importorskip("tensorflow", reason="the [tf] extra is not installed")
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((28, 28, 1)),
            tf.keras.layers.Conv2D(4, 3, activation="relu"),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(10),
        ]
    )
    model.save(tmp_path / "model.keras")
    model.export(str(tmp_path / "saved"))
    nhwc = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    for name, precision in [("model.keras", "int8"), ("saved", "fp32")]:
        source = load_source(str(tmp_path / name))
        assert source.kind == "keras" and source.input_shape == (1, 28, 28, 1)
        output = tmp_path / f"{name}.tflite"
        result = convert_source(source, "tflite", precision, output, calibration=nhwc, verify_inputs=nhwc)
        assert result["verification"]["passed"] and result["layout"] == "NHWC"
        assert inspect_model(output)["layout"] == "NHWC"


def test_inspect_counts_constant_node_weights(tmp_path: Path):
    weight = np.arange(12, dtype=np.float32).reshape(4, 3)  # one zero among 12 values
    nodes = [("Constant", [], ["w"], {"value": weight}), ("MatMul", ["x", "w"], ["y"])]
    path = onnx_model(tmp_path / "const.onnx", nodes, {"x": [1, 4]}, {"y": [1, 3]})
    info = inspect_model(path)
    assert (info["parameters"], info["nonzero_parameters"], info["unique_values"]) == (12, 11, 12)
    assert info["ops"] == {"Constant": 1, "MatMul": 1} and info["macs"] == 12
    assert info["inputs"] == [{"name": "x", "shape": [1, 4], "dtype": "float32"}]
    assert info["zipped_bytes"] > 0 and info["size_bytes"] == path.stat().st_size


def test_fixed_batch_models_take_any_number_of_inputs():
    from edgedeploy.convert.runtimes import predict_in_batches

    seen: list[int] = []

    def run_batch(x: np.ndarray) -> np.ndarray:
        seen.append(len(x))
        return x.sum(axis=(1, 2, 3))[:, None]

    x = np.arange(5 * 2 * 2 * 1, dtype=np.float32).reshape(5, 2, 2, 1)
    assert np.array_equal(predict_in_batches(run_batch, x, 4), x.sum(axis=(1, 2, 3))[:, None])
    assert seen == [4, 4]  # the last chunk (1 input) was padded to the model's batch of 4
