"""Models with two inputs: convert (torch factory, .pt2, ONNX with dynamic dims), inspect, and run on
the local target with one .npy per input, outputs written as DIR/<output-name>.npy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgedeploy.convert.api import convert_source, convert_torch
from edgedeploy.convert.runtimes import open_runner
from edgedeploy.convert.sources import load_source
from edgedeploy.errors import NotYetSupported, UsageError
from tests.support.cli import REPO, run_cli
from tests.support.onnx_models import onnx_model

FACTORY = "tests.test_convert_multi_input:two_input_net"
ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


class TwoInputNet(nn.Module):
    """An image and a vector of side features -> 10 scores."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.side = nn.Linear(5, 8)
        self.fc = nn.Linear(4 * 6 * 6 + 8, 10)

    def forward(self, image: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.conv(image)).flatten(1)
        return self.fc(torch.cat([features, torch.relu(self.side(extra))], 1))


def two_input_net() -> TwoInputNet:
    torch.manual_seed(0)
    return TwoInputNet().eval()


def inputs(count: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "image": rng.random((count, 1, 8, 8), dtype=np.float32),
        "extra": rng.random((count, 5), dtype=np.float32),
    }


def test_factory_to_int8_then_inspect_and_run(tmp_path: Path) -> None:
    np.savez(tmp_path / "calibration.npz", **inputs(48, 1))  # arrays named after the inputs
    out = tmp_path / "two-int8.onnx"
    proc = run_cli("convert", FACTORY, "--precision", "int8", "--shape", "extra=1,5",
                   "--shape", "image=1,1,8,8", "--calibration", str(tmp_path / "calibration.npz"),
                   "-o", str(out), "--json", cwd=tmp_path, env=ENV)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["inputs"] == [{"name": "image", "shape": [1, 1, 8, 8]}, {"name": "extra", "shape": [1, 5]}]
    assert result["verification"]["passed"] and "held out" in result["verification"]["inputs"]

    proc = run_cli("inspect", str(out), "--json", cwd=tmp_path, env=ENV)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert [(i["name"], i["shape"][1:], i["dtype"]) for i in info["inputs"]] == [
        ("image", [1, 8, 8], "float32"),
        ("extra", [5], "float32"),
    ]

    x = inputs(1, 2)
    for name, array in x.items():
        np.save(tmp_path / f"{name}.npy", array)
    proc = run_cli("run", str(out), "--target", "local", "--inputs", str(tmp_path / "image.npy"),
                   str(tmp_path / "extra.npy"), "--out", str(tmp_path / "outs"),
                   cwd=tmp_path, env=ENV)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (written,) = (tmp_path / "outs").glob("*.npy")
    assert written.stem == info["outputs"][0]["name"]
    np.testing.assert_array_equal(np.load(written), open_runner(out).predict([x["image"], x["extra"]]))
    expected = two_input_net()(torch.from_numpy(x["image"]), torch.from_numpy(x["extra"])).detach().numpy()
    assert np.abs(np.load(written) - expected).max() <= result["verification"]["tolerance"]


def test_pt2_file_and_onnx_with_dynamic_dims(tmp_path: Path) -> None:
    x = inputs(1, 0)
    program = torch.export.export(
        two_input_net(), (torch.from_numpy(x["image"]), torch.from_numpy(x["extra"]))
    )
    torch.export.save(program, str(tmp_path / "two.pt2"))
    source = load_source(str(tmp_path / "two.pt2"))
    assert source.input_names == ["image", "extra"] and source.input_shapes == [(1, 1, 8, 8), (1, 5)]
    assert convert_source(source, "onnx", "fp32", tmp_path / "from-pt2.onnx")["verification"]["passed"]

    # From the module, the export has a dynamic batch: an ONNX source whose first dimensions are free.
    fp32 = tmp_path / "two.onnx"
    assert convert_torch(two_input_net(), [x["image"], x["extra"]], "onnx", "fp32", fp32)["verification"][
        "passed"
    ]
    source = load_source(str(fp32))
    assert source.input_names == ["image", "extra"] and source.input_shapes == [(1, 1, 8, 8), (1, 5)]
    source = load_source(str(fp32), input_shape=[("extra", (4, 5)), ("image", (4, 1, 8, 8))])
    result = convert_source(source, "onnx", "int8-dynamic", tmp_path / "two-dyn.onnx")
    assert result["inputs"][1] == {"name": "extra", "shape": [4, 5]} and result["verification"]["passed"]
    with pytest.raises(UsageError, match=r"--shape image=1,1,9,9 does not fit its shape \?,1,8,8"):
        load_source(str(fp32), input_shape=[("image", (1, 1, 9, 9))])
    with pytest.raises(NotYetSupported, match="models with several inputs convert to ONNX only"):
        convert_source(load_source(str(fp32)), "tflite", "fp32", tmp_path / "two.tflite")


def test_dynamic_dimensions_per_input_in_convert_and_run(tmp_path: Path) -> None:
    dims = ["N", 4, "L"]
    path = onnx_model(
        tmp_path / "add.onnx", [("Add", ["a", "b"], ["y"])], {"a": dims, "b": dims}, {"y": dims}
    )
    with pytest.raises(UsageError, match=r"need a shape: --shape a=1,4,\? --shape b=1,4,\?"):
        load_source(str(path))
    source = load_source(str(path), input_shape=[("", (2, 4, 7)), ("", (2, 4, 7))])  # in input order
    result = convert_source(source, "onnx", "fp16", tmp_path / "add-fp16.onnx")
    assert [i["shape"] for i in result["inputs"]] == [[2, 4, 7], [2, 4, 7]]
    assert result["verification"]["passed"]

    # The runner takes the same per-input shapes for dynamic dimensions, and names them when missing.
    proc = run_cli("run", str(path), "--shape", "a=2,4,7", "--shape", "b=2,4,7",
                   "--out", str(tmp_path / "outs"), cwd=tmp_path, env=ENV)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "outs" / "y.npy").shape == (2, 4, 7)
    proc = run_cli("run", str(path), "--shape", "a=2,4,7", cwd=tmp_path, env=ENV)
    assert proc.returncode == 2 and "input 'b' has dynamic dimensions" in proc.stderr
