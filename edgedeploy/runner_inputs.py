"""Host-side checks of `run` / `profile` inputs before anything is pushed to a device.

The runner checks again on the device, but there it sees only its cached copies
(~/.cache/edgedeploy/targets/NAME/inputs/...): checked here, errors name the user's own files and
nothing is copied for a run that cannot work. Only the model file's declared inputs are read (no
session), so this costs milliseconds even for big models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.errors import UsageError


@dataclass
class InputSpec:
    name: str
    shape: list[int | None]  # None: dynamic
    dtype: np.dtype
    quantized: bool = False  # an int8/uint8 TFLite input with a scale: float data is quantized for it


def model_inputs(model: Path) -> list[InputSpec]:
    """The inputs a model file declares; an unreadable file is left to the runner to report."""
    try:
        if model.suffix.lower() == ".onnx":
            return _onnx_inputs(model)
        return _tflite_inputs(model)
    except Exception:  # noqa: BLE001 - a corrupt model gets the runtime's own message on the device
        return []


def _onnx_inputs(model: Path) -> list[InputSpec]:
    import onnx
    from onnx import helper

    graph = onnx.load(str(model), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    specs = []
    for value in graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        specs.append(InputSpec(value.name, dims, np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type))))
    return specs


def _tflite_inputs(model: Path) -> list[InputSpec]:
    from ai_edge_litert import schema_py_generated as schema

    parsed = schema.ModelT.InitFromPackedBuf(bytearray(model.read_bytes()), 0)
    main = parsed.subgraphs[0]
    types = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    specs = []
    for index in main.inputs:
        tensor = main.tensors[index]
        declared = tensor.shapeSignature if tensor.shapeSignature is not None else tensor.shape
        dims = [int(d) if d >= 0 else None for d in (declared if declared is not None else [])]
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
        quant = tensor.quantization
        quantized = quant is not None and quant.scale is not None and len(quant.scale) > 0
        specs.append(InputSpec(name, dims, np.dtype(types[tensor.type]), quantized))
    return specs


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a .npy file from its header (the data is not read)."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _fortran, dtype = read(fh)
    except Exception as err:  # noqa: BLE001 - ValueError for a bad magic/header, and more
        raise UsageError(f"{path}: not a plain .npy array ({str(err).split('.')[0]})") from err
    if dtype.hasobject:
        raise UsageError(f"{path}: holds Python objects (pickled), not a plain .npy array")
    return tuple(shape), dtype


def _dims(shape: list[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def check_inputs(model: Path, inputs: list[Path], shapes: dict[str, list[int]]) -> None:
    """Refuse, naming the user's file, what the runner would refuse (or, before, silently cast)."""
    specs = model_inputs(model)
    if not specs:
        return
    names = [spec.name for spec in specs]
    unknown = sorted(name for name in shapes if name and name not in names)
    if unknown:
        raise UsageError(f"{model}: --shape {', '.join(unknown)}: no such input (inputs: {', '.join(names)})")
    if "" in shapes and len(specs) > 1:
        raise UsageError(
            f"{model}: --shape without a name fits one-input models; give NAME=dims for {', '.join(names)}"
        )
    if inputs and len(inputs) != len(specs):
        raise UsageError(
            f"{model}: model has {len(specs)} inputs but {len(inputs)} .npy files were given "
            f"(inputs, in order: {', '.join(names)})"
        )
    for spec, path in zip(specs, inputs, strict=False):
        shape, dtype = npy_header(path)
        fits = len(shape) == len(spec.shape) and all(
            w is None or w == s for w, s in zip(spec.shape, shape, strict=True)
        )
        if not fits:
            raise UsageError(
                f"{path}: input {spec.name!r} expects shape {_dims(spec.shape)} but it has {list(shape)}"
            )
        if dtype == spec.dtype or (spec.quantized and dtype.kind == "f"):
            continue
        raise UsageError(
            f"{path}: holds {dtype.name} but input {spec.name!r} expects {spec.dtype.name}; "
            f"save it as {spec.dtype.name} (np.save(path, array.astype(np.{spec.dtype.name})))"
        )
