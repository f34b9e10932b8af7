"""What a compressed model is as a file: its size, its Deep-Compression size and its accuracy, all
measured on the exported ONNX file (not on the torch model, which an exporter may change: it folds
BatchNorm into convolutions, for one)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgedeploy.compress.storage import StorageReport, deep_compression_size
from edgedeploy.errors import UsageError

if TYPE_CHECKING:
    from edgedeploy.compress.stage import CompressionData


def onnx_file_storage(path: Path) -> StorageReport:
    """Deep-Compression size of an ONNX file's float weights: tensors of 2 or more dimensions coded
    (sparse index, codebook, Huffman), the rest (biases, scales) as 32-bit floats."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    arrays = [(t.name, numpy_helper.to_array(t)) for t in graph.initializer]
    for node in graph.node:
        if node.op_type == "Constant":
            arrays.extend(
                (node.output[0], numpy_helper.to_array(attr.t))
                for attr in node.attribute
                if attr.name == "value"
            )
    floats = [(name, a) for name, a in arrays if np.issubdtype(a.dtype, np.floating)]
    weights = {name: a for name, a in floats if a.ndim >= 2}
    others = sum(int(a.size) for name, a in floats if a.ndim < 2)
    return deep_compression_size(weights, others)


def onnx_file_accuracy(path: Path, data: CompressionData) -> float | None:
    """Top-1 accuracy of the ONNX file on the evaluation data, run by onnxruntime; None when the
    data has no labels."""
    if not data.labelled:
        return None
    import onnxruntime as ort

    from edgedeploy.runner.device.runtimes import open_ort_session
    from edgedeploy.train import ordered_batches

    try:
        session = open_ort_session(ort, str(path))[0]
    except Exception as err:  # noqa: BLE001 - onnxruntime raises several unrelated types
        raise UsageError(f"{path}: onnxruntime cannot load it ({err})") from err
    name = session.get_inputs()[0].name
    correct = total = 0
    for xb, yb in ordered_batches(data.eval_data(), 500):
        logits = session.run(None, {name: xb.numpy().astype(np.float32, copy=False)})[0]
        correct += int((logits.argmax(axis=1) == yb.numpy()).sum())
        total += len(yb)
    return correct / total if total else None
