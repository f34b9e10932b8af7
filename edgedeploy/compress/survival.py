"""Did sparsity and clusters survive into the exported file? Count them in the file's own weights.

Export goes through `torch.onnx.export` into a single self-contained file (no external data). The
counts come from the ONNX initializers and Constant nodes (or, for TFLite, the interpreter's constant
tensors), matched to our layers by element count, non-zeros and distinct values, which do not depend
on the layout (a converter may transpose a weight).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgedeploy.compress.layers import weight_layers
from edgedeploy.errors import UsageError


@dataclass
class TensorCount:
    name: str
    shape: list[int]
    numel: int
    nonzeros: int
    unique: int


def count_tensor(name: str, array: np.ndarray) -> TensorCount:
    return TensorCount(
        name, list(array.shape), int(array.size), int(np.count_nonzero(array)), int(np.unique(array).size)
    )


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Write `model` as one self-contained ONNX file with a dynamic batch axis."""
    model = model.eval()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            # The TorchScript-based exporter is much faster than dynamo for these small models.
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                external_data=False,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}},
            )
        except Exception:  # noqa: BLE001 - fall back to the default (dynamo) exporter
            torch.onnx.export(
                model,
                (example,),
                str(path),
                external_data=False,
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
            )
    return path


def onnx_weight_tensors(path: Path) -> list[TensorCount]:
    """Counts for every constant tensor of 2 or more dimensions in an ONNX file."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    arrays = [(t.name, numpy_helper.to_array(t)) for t in graph.initializer]
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    arrays.append((node.output[0], numpy_helper.to_array(attr.t)))
    return [count_tensor(name, a) for name, a in arrays if a.ndim >= 2]


def tflite_weight_tensors(path: Path) -> list[TensorCount]:
    """Counts for every constant tensor of 2 or more dimensions in a .tflite file."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    counts = []
    for detail in interpreter.get_tensor_details():
        if len(detail["shape"]) < 2:
            continue
        try:
            array = interpreter.get_tensor(detail["index"])
        except ValueError:  # activations have no data before an inference
            continue
        counts.append(count_tensor(detail["name"], np.asarray(array)))
    return counts


def check_survival(model: nn.Module, exported: list[TensorCount], file: Path) -> dict[str, Any]:
    """Match each weight layer of `model` to an exported tensor with the same counts."""
    rows = []
    unused = list(exported)
    for name, layer in weight_layers(model).items():
        ours = count_tensor(name, layer.weight.detach().cpu().numpy())
        match = next(
            (
                t
                for t in unused
                if t.numel == ours.numel and t.nonzeros == ours.nonzeros and t.unique == ours.unique
            ),
            None,
        )
        if match is not None:
            unused.remove(match)
        rows.append(
            {
                "layer": name,
                "nonzeros": ours.nonzeros,
                "unique": ours.unique,
                "exported_tensor": match.name if match else None,
                "survived": match is not None,
            }
        )
    survived = all(r["survived"] for r in rows)
    return {
        "file": str(file),
        "format": file.suffix.lstrip("."),
        "survived": survived,
        "layers": rows,
        "exported_tensors": [asdict(t) for t in exported],
        "verdict": (
            "sparsity and clusters survived: each layer's zeros and distinct values are in the exported file"
            if survived
            else "NOT all survived: "
            + ", ".join(r["layer"] for r in rows if not r["survived"])
            + " differ in the exported weights"
        ),
    }


def check_exported_file(model: nn.Module, path: Path) -> dict[str, Any]:
    """Survival check against an exported .onnx or .tflite file (e.g. one made by `convert`)."""
    counters = {".onnx": onnx_weight_tensors, ".tflite": tflite_weight_tensors}
    if path.suffix not in counters:
        raise UsageError(f"{path}: can count weights only in .onnx or .tflite files")
    return check_survival(model, counters[path.suffix](path), path)


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
    """Top-1 accuracy of an ONNX classifier run in onnxruntime."""
    import onnxruntime as ort

    from edgedeploy.runner.device.runtimes import open_ort_session

    try:
        session = open_ort_session(ort, str(path))[0]
    except Exception as err:  # noqa: BLE001 - onnxruntime raises several unrelated types
        raise UsageError(f"{path}: onnxruntime cannot load it ({err})") from err
    input_name = session.get_inputs()[0].name
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = session.run(None, {input_name: x[start : start + batch_size].astype(np.float32)})[0]
        correct += int((logits.argmax(axis=1) == y[start : start + batch_size]).sum())
    return correct / len(y)
