"""onnxruntime's int8 products on x86-64 CPUs without VNNI saturate (AVX2's VPMADDUBSW sums pairs of
uint8 x int8 products in int16); the runner and the host's verification set ORT's
session.x64quantprecision there, so the outputs checked and timed are the exact ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgedeploy.runner.device import runtimes
from edgedeploy.runner.device.measure import runtime_doc
from edgedeploy.runner.device.runtimes import (
    X64_QUANT_PRECISION,
    OnnxRuntimeModel,
    cpu_int8_saturates,
    int8_saturates,
)

K = 64


def _matmul_integer(path: Path) -> Path:
    """y = a @ b in int32, b all 127: with a all 255 every pair of products (2 x 32385) overflows int16."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])],
        "mmi",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, K])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 4])],
        [numpy_helper.from_array(np.full((K, 4), 127, np.int8), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(
    ("machine", "flags", "saturates"),
    [
        ("x86_64", {"avx2", "fma"}, True),  # AVX2 only (AMD Zen 2/3, Intel before Cascade Lake)
        ("x86_64", {"avx2", "avx512f", "avx512_vnni"}, False),
        ("x86_64", {"avx2", "avx_vnni"}, False),  # Alder Lake and later
        ("AMD64", {"avx2"}, True),
        ("aarch64", {"asimd", "asimddp"}, False),  # Arm's dot-product kernels are exact
        ("x86_64", set(), False),  # no /proc/cpuinfo (another OS): ORT's default stays
    ],
)
def test_which_cpus_get_the_exact_int8_products(machine: str, flags: set[str], saturates: bool) -> None:
    assert cpu_int8_saturates(machine, flags) is saturates


def test_the_runner_model_computes_exact_int8_products_on_this_cpu(tmp_path: Path) -> None:
    import onnxruntime as ort

    path = _matmul_integer(tmp_path / "mmi.onnx")
    feeds = {"a": np.full((1, K), 255, np.uint8)}
    model = OnnxRuntimeModel(str(path), 1)
    model.prepare(feeds)
    assert model.invoke()[0].tolist() == [[255 * 127 * K] * 4]
    if int8_saturates():
        # Why the option is there: ORT's default session on this CPU gets a saturated sum.
        plain = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert plain.run(None, feeds)[0][0, 0] < 255 * 127 * K
        assert runtime_doc(model)["session_options"] == X64_QUANT_PRECISION
    else:
        assert "session_options" not in runtime_doc(model)


def test_runner_and_host_verification_share_the_session_set_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forced to a CPU without VNNI (whatever this one is): the runner's profile says which session
    options it set, and the host's OnnxRunner (convert's verification, accuracy of exported files)
    sets the same ones."""
    from edgedeploy.convert.runtimes import OnnxRunner

    monkeypatch.setattr(runtimes, "_saturates", [True])
    path = _matmul_integer(tmp_path / "mmi.onnx")
    model = OnnxRuntimeModel(str(path), 2)
    assert runtime_doc(model) == {
        "name": "onnxruntime",
        "version": model.version,
        "threads": 2,
        "session_options": {"session.x64quantprecision": "1"},
    }
    assert OnnxRunner(path).session_options == X64_QUANT_PRECISION
    monkeypatch.setattr(runtimes, "_saturates", [False])
    assert OnnxRunner(path).session_options == {}
    assert "session_options" not in runtime_doc(OnnxRuntimeModel(str(path), 2))
