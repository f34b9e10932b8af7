"""Tiny real ONNX models built with onnx.helper: no torch import, so they are fast and serve the core
(torch-free) suite. `onnx_model` is the one builder; `dense_onnx` is the MLP most tests time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Shape = Sequence[int | str]  # a str is a dynamic dimension
# (op_type, inputs, outputs) or (op_type, inputs, outputs, attributes)
Node = tuple[str, Sequence[str], Sequence[str]] | tuple[str, Sequence[str], Sequence[str], Mapping[str, Any]]


def onnx_model(
    path: Path,
    nodes: Sequence[Node],
    inputs: Mapping[str, Shape],
    outputs: Mapping[str, Shape],
    weights: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Save a float32 graph of `nodes` (opset 17, IR version 8: what every runtime here loads) to `path`.
    `inputs`/`outputs` name the graph's tensors and their shapes; `weights` become initializers (an
    attribute value that is an array becomes a tensor, as a Constant node's `value`)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def attribute(value: Any) -> Any:
        return numpy_helper.from_array(value) if isinstance(value, np.ndarray) else value

    graph = helper.make_graph(
        [
            helper.make_node(
                op, list(ins), list(outs), **{k: attribute(v) for k, v in (rest[0] if rest else {}).items()}
            )
            for op, ins, outs, *rest in nodes
        ],
        path.stem,
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))
            for name, shape in inputs.items()
        ],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))
            for name, shape in outputs.items()
        ],
        initializer=[numpy_helper.from_array(array, name) for name, array in (weights or {}).items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def dense_onnx(
    path: Path,
    hidden: int = 8,
    *,
    features: int | str = 16,
    batch: int | str = 1,
    bias: bool = True,
    seed: int = 0,
) -> Path:
    """y = relu(x @ W [+ b]), x of shape [batch, features], y of [batch, hidden]; a str dimension is
    dynamic (a dynamic `features` still gets 16 weight rows). `hidden` sets the model's size and work."""
    rng = np.random.default_rng(seed)
    weights = {
        "W": rng.standard_normal((features if isinstance(features, int) else 16, hidden)).astype(np.float32)
    }
    nodes: list[Node] = [("MatMul", ["x", "W"], ["xw"])]
    if bias:
        weights["b"] = rng.standard_normal(hidden).astype(np.float32)
        nodes.append(("Add", ["xw", "b"], ["pre"]))
    nodes.append(("Relu", [nodes[-1][2][0]], ["y"]))
    return onnx_model(path, nodes, {"x": [batch, features]}, {"y": [batch, hidden]}, weights)
