"""`edgedeploy inspect`: describe an .onnx, .tflite or torch file without trusting its name.

The JSON keys `inputs`, `outputs` (name, shape, dtype), `parameters`, `nonzero_parameters`,
`size_bytes`, `zipped_bytes` and `ops` are an interface scripts depend on: keep them.
"""

from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.convert.files import LAYOUT_KEY, first_line, guess_layout
from edgedeploy.errors import UsageError
from edgedeploy.fileinfo import zipped_size

# Operator inputs that hold quantization scales / zero points (or Clip's bounds, e.g. ReLU6), not weights.
_QUANT_PARAM_INPUTS = {
    "Clip": {1, 2},
    "QuantizeLinear": {1, 2},
    "DequantizeLinear": {1, 2},
    "QLinearConv": {1, 2, 4, 5, 6, 7},
    "QLinearMatMul": {1, 2, 4, 5, 6, 7},
    "MatMulInteger": {2, 3},
    "QGemm": {1, 2, 4, 5, 7, 8},
    "ConvInteger": {2, 3},
    "DynamicQuantizeMatMul": {2, 3},
}
_WEIGHT_DTYPES = {"float32", "float16", "bfloat16", "float64", "int8", "uint8", "int4", "uint4"}


Shapes = dict[str, list[int]]
"""`--shape NAME=dims` (a bare "" key for a one-input model): fixes dynamic dimensions for MAC counts."""


def inspect_model(path: Path, shapes: Shapes | None = None) -> dict[str, Any]:
    path = Path(path)
    shapes = shapes or {}
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{path}: a directory; inspect takes a .onnx, .tflite or torch file")
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix == ".tflite" or data[4:8] == b"TFL3":
        info = _inspect_tflite(path, data, shapes)
    elif suffix == ".onnx":
        info = _inspect_onnx(path, shapes)
    elif zipfile.is_zipfile(path):
        if shapes:
            raise UsageError(
                f"{path}: --shape applies to .onnx and .tflite files (torch files keep no graph)"
            )
        info = _inspect_torch(path)
    elif suffix in {".pt", ".pth", ".pt2"}:
        raise UsageError(f"{path}: truncated or corrupt torch file (not a zip archive)")
    else:
        raise UsageError(
            f"{path}: unknown model format (expected .onnx, .tflite or a torch .pt/.pth/.pt2 file)"
        )
    return {"file": str(path), "size_bytes": len(data), "zipped_bytes": zipped_size(path)} | info


def _weight_stats(weights: list[np.ndarray]) -> dict[str, Any]:
    flat = [w.reshape(-1) for w in weights if w.size]
    uniques = [len(np.unique(w)) for w in flat]
    return {
        "parameters": int(sum(w.size for w in flat)),
        "nonzero_parameters": int(sum(np.count_nonzero(w) for w in flat)),
        "sparsity": float(1 - sum(np.count_nonzero(w) for w in flat) / max(1, sum(w.size for w in flat))),
        "unique_values": int(len(np.unique(np.concatenate([w.astype(np.float64) for w in flat]))))
        if flat
        else 0,
        "max_unique_values_per_tensor": max(uniques, default=0),
        "weight_tensors": len(flat),
        "weight_dtypes": dict(Counter(str(w.dtype) for w in flat)),
    }


def _guessed_layout(shape: list[Any]) -> str:
    if len(shape) != 4:
        return "N/A"
    dims = tuple(d if isinstance(d, int) else 0 for d in shape)
    return f"{guess_layout(dims)} (guessed from the shape)"


def _given_shapes(path: Path, names: list[str], shapes: Shapes) -> dict[str, list[int]]:
    """--shape values by input name; a name the model does not have is an error, not ignored."""
    if "" in shapes and len(names) != 1:
        raise UsageError(
            f"{path}: --shape without a name fits one-input models; this one has {len(names)}: "
            f"give NAME=dims for {', '.join(names)}"
        )
    unknown = sorted(name for name in shapes if name and name not in names)
    if unknown:
        raise UsageError(f"{path}: --shape {', '.join(unknown)}: no such input (inputs: {', '.join(names)})")
    return {(name or names[0]): dims for name, dims in shapes.items()}


def _fixed_dims(path: Path, name: str, declared: list[Any], given: list[int] | None) -> list[int] | str:
    """Concrete dims of one input, or why they are unknown. A dynamic leading axis counts as batch 1
    unless its name says it is a sequence; any other dynamic axis needs --shape."""
    if given is not None:
        if len(given) != len(declared) or any(
            isinstance(d, int) and d >= 0 and d != g for d, g in zip(declared, given, strict=False)
        ):
            shown = ",".join(str(d) if isinstance(d, int) and d >= 0 else "?" for d in declared)
            raise UsageError(
                f"{path}: --shape {name}={','.join(map(str, given))} does not fit its shape {shown}"
            )
        return list(given)
    dims: list[int] = []
    for axis, dim in enumerate(declared):
        if isinstance(dim, int) and dim >= 0:
            dims.append(dim)
        elif (
            axis == 0
            and len(declared) > 1
            and not any(word in str(dim or "").lower() for word in ("seq", "len", "time", "step"))
        ):
            dims.append(1)
        else:
            want = ",".join(str(d) if isinstance(d, int) and d >= 0 else "N" for d in declared)
            return f"input {name!r} has dynamic dimensions; pass --shape {name}={want}"
    return dims


# --- ONNX ------------------------------------------------------------------------------------------


def _onnx_graphs(graph: Any) -> list[Any]:
    """The graph and every subgraph under it (If branches, Loop/Scan bodies), depth first."""
    found = [graph]
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                found += _onnx_graphs(sub)
    return found


def _inspect_onnx(path: Path, given_shapes: Shapes) -> dict[str, Any]:
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as err:  # noqa: BLE001 - protobuf DecodeError, ValidationError, missing data, ...
        raise UsageError(f"{path}: truncated or corrupt ONNX file ({first_line(err)})") from err
    graph = model.graph
    # Weights of If branches and Loop/Scan bodies live in those subgraphs (silero-vad keeps all of
    # them there): count every graph's initializers and constants.
    graphs = _onnx_graphs(graph)
    nodes = [node for g in graphs for node in g.node]
    initializers = {t.name: t for t in graph.initializer}
    tensors = {t.name: t for g in graphs for t in g.initializer} | {
        node.output[0]: attr.t
        for node in nodes
        if node.op_type == "Constant"
        for attr in node.attribute
        if attr.name == "value"
    }
    quant_params = {
        name
        for node in nodes
        for index, name in enumerate(node.input)
        if index in _QUANT_PARAM_INPUTS.get(node.op_type, _generic_qlinear_params(node.op_type))
    }
    if {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger"} & {n.op_type for n in nodes}:
        # Dynamic quantization rescales with plain Mul nodes; ORT's quantizer names those inputs.
        quant_params |= {name for name in tensors if name.endswith(("_scale", "_zero_point"))}
    arrays = {name: numpy_helper.to_array(t) for name, t in tensors.items()}
    # int32 constants in ONNX come from the quantizers (biases); shapes and axes are int64.
    weights = [
        a
        for name, a in arrays.items()
        if name not in quant_params and str(a.dtype) in _WEIGHT_DTYPES | {"int32"}
    ]
    ops = Counter(
        node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}" for node in nodes
    )
    inputs = [_onnx_io(v) for v in graph.input if v.name not in initializers]
    macs, macs_note = _onnx_macs_or_why(path, model, inputs, given_shapes, graphs)
    metadata = {p.key: p.value for p in model.metadata_props}
    layout = metadata.get(LAYOUT_KEY) or (_guessed_layout(inputs[0]["shape"]) if inputs else "N/A")
    if any(op.split("::")[-1].startswith(("QLinear", "QGemm")) for op in ops):
        scheme = "QOperator"
    elif "DequantizeLinear" in ops:
        scheme = "QDQ"
    elif any(op in ops for op in ("DynamicQuantizeLinear", "MatMulInteger", "ConvInteger")):
        scheme = "dynamic (int8 weights, activations quantized at run time)"
    else:
        scheme = "none"
    stats = _weight_stats(weights)
    return {
        "format": "onnx",
        "opset": {imp.domain or "ai.onnx": imp.version for imp in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": inputs,
        "outputs": [_onnx_io(v) for v in graph.output],
        "layout": layout,
        "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
        **stats,
        "macs": macs,
        "flops": 2 * macs if macs is not None else None,
        "macs_note": macs_note,
        "quantization": {
            "scheme": scheme,
            "per_channel": any(arrays[n].size > 1 for n in quant_params if n in arrays),
            "weight_dtypes": stats["weight_dtypes"],
        },
        "metadata": metadata,
        "runtimes": _onnx_runtimes(path),
    }


def _onnx_macs_or_why(
    path: Path, model: Any, inputs: list[dict[str, Any]], given: Shapes, graphs: list[Any]
) -> tuple[int | None, str]:
    """MACs at the input shapes (given, or declared with a dynamic batch of 1), or None and why:
    a number from guessed dimensions would be wrong, not approximate."""
    import onnx

    by_name = _given_shapes(path, [i["name"] for i in inputs], given)
    if any(n.op_type in _MAC_OPS for g in graphs[1:] for n in g.node):
        return None, "unknown: matrix products inside If/Loop subgraphs run per branch or iteration"
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    described = []
    for value, spec in zip(
        [v for v in fixed.graph.input if v.name in {i["name"] for i in inputs}], inputs, strict=True
    ):
        dims = _fixed_dims(path, spec["name"], spec["shape"], by_name.get(spec["name"]))
        if isinstance(dims, str):
            return None, f"unknown: {dims}"
        for proto, size in zip(value.type.tensor_type.shape.dim, dims, strict=True):
            proto.Clear()
            proto.dim_value = size
        described.append(f"{spec['name']}={','.join(map(str, dims))}")
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed)
    except Exception:  # noqa: BLE001 - inference is only needed for MAC counts
        inferred = fixed
    shapes = _onnx_shapes(inferred)
    mac_tensors = [
        name for n in fixed.graph.node if n.op_type in _MAC_OPS for name in (*n.input, n.output[0])
    ]
    if any(min(shapes.get(name, [-1]) or [0]) < 0 for name in mac_tensors):
        shapes |= _runtime_shapes(fixed)  # contrib ops stop inference; one run on zeros fills it in
    if any(min(shapes.get(name, [0]) or [0]) < 0 for name in mac_tensors if name):
        return None, "unknown: the shapes of some matrix products are not known before running"
    macs = _onnx_macs(inferred.graph, shapes)
    return macs, f"conv + matmul at {' '.join(described) or 'the declared shapes'}"


def _generic_qlinear_params(op_type: str) -> set[int]:
    """Other QLinear* ops (Add, Mul, Sigmoid, pooling...) take (tensor, scale, zero point) triples."""
    return {i for i in range(12) if i % 3} if op_type.startswith("QLinear") else set()


def _onnx_io(value: Any) -> dict[str, Any]:
    from onnx import helper

    tensor = value.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim]
    return {
        "name": value.name,
        "shape": shape,
        "dtype": str(np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type))),
    }


def _onnx_shapes(model: Any) -> dict[str, list[int]]:
    """Static shapes of every known tensor; a symbolic dimension is -1 (unknown)."""
    graph = model.graph
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    for value in [*graph.input, *graph.output, *graph.value_info]:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = list(attr.t.dims)
    return shapes


_MAC_OPS = {
    "Conv",
    "ConvInteger",
    "QLinearConv",
    "MatMul",
    "Gemm",
    "MatMulInteger",
    "QLinearMatMul",
    "FusedMatMul",
    "QGemm",
}


def _runtime_shapes(model: Any) -> dict[str, list[int]]:
    """Shapes of every intermediate tensor from one onnxruntime run on zeros (batch 1).

    ONNX shape inference stops at contrib ops (QLinearAdd, QLinearGlobalAveragePool...), which leaves
    QOperator models without shapes; exposing every tensor as an output and running once fills them in.
    """
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    exposed = {o.name for o in probe.graph.output}
    for node in probe.graph.node:
        for name in node.output:
            if name and name not in exposed:
                probe.graph.output.append(onnx.ValueInfoProto(name=name))
                exposed.add(name)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
        feeds = {
            i.name: np.zeros(
                [d if isinstance(d, int) else 1 for d in i.shape], dtype=_ORT_DTYPES.get(i.type, np.float32)
            )
            for i in session.get_inputs()
        }
        values = session.run(None, feeds)
    except Exception:  # noqa: BLE001 - shapes are only needed for MAC counts; inspect goes on without
        return {}
    return {out.name: list(value.shape) for out, value in zip(session.get_outputs(), values, strict=True)}


_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}


def _onnx_macs(graph: Any, shapes: dict[str, list[int]]) -> int | None:
    """Multiply-accumulates of convolutions and matrix products (the ops that dominate CNNs/MLPs)."""
    weight_input = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
    total = 0
    for node in graph.node:
        out = shapes.get(node.output[0]) if node.output else None
        if not out:
            continue
        if node.op_type in weight_input:
            weight = shapes.get(node.input[weight_input[node.op_type]])
            if weight:
                total += int(np.prod(out)) * int(np.prod(weight[1:]))
        elif node.op_type in _MAC_OPS:
            first = shapes.get(node.input[0])
            if first:
                transposed = node.op_type == "Gemm" and any(
                    a.name == "transA" and a.i for a in node.attribute
                )
                total += int(np.prod(out)) * int(first[0] if transposed else first[-1])
    return total


def _onnx_runtimes(path: Path) -> dict[str, str]:
    from edgedeploy.convert.runtimes import OnnxRunner

    try:
        OnnxRunner(path)
    except UsageError as err:
        return {"onnxruntime": f"cannot run: {err}"}
    return {"onnxruntime": "ok (loaded here)"}


# --- TFLite ----------------------------------------------------------------------------------------


def _tflite_model(path: Path, data: bytes | None = None) -> Any:
    from ai_edge_litert import schema_py_generated as schema

    data = path.read_bytes() if data is None else data
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UsageError(f"{path}: truncated or corrupt TFLite file (no TFL3 identifier)")
    try:
        return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as err:  # noqa: BLE001 - the flatbuffer reader raises struct/index errors
        raise UsageError(f"{path}: truncated or corrupt TFLite file ({first_line(err)})") from err


def _builtin_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def _op_name(code: Any, names: dict[int, str]) -> str:
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    name = names.get(builtin, f"BUILTIN_{builtin}")
    if name == "CUSTOM":
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
        return custom if custom.startswith("Flex") else f"CUSTOM:{custom}"
    return name


def tflite_op_names(path: Path) -> list[str]:
    """One op name per operator of every subgraph (builtins by name, CUSTOM:x, Flex ops)."""
    model = _tflite_model(path)
    names = _builtin_names()
    return [
        _op_name(model.operatorCodes[op.opcodeIndex], names)
        for sub in model.subgraphs
        for op in sub.operators or []
    ]


def _tflite_dtype(tensor_type: int) -> str:
    from ai_edge_litert import schema_py_generated as schema

    name = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}[tensor_type].lower()
    return {"float32": "float32", "float16": "float16", "int8": "int8", "uint8": "uint8"}.get(name, name)


def _inspect_tflite(path: Path, data: bytes, given_shapes: Shapes) -> dict[str, Any]:
    model = _tflite_model(path, data)
    names = _builtin_names()
    ops: Counter[str] = Counter()
    weights: list[np.ndarray] = []
    per_channel = False
    macs: int | None = 0
    main = model.subgraphs[0]
    main_shapes, macs_note = _tflite_main_shapes(path, main, given_shapes)
    for sub_index, sub in enumerate(model.subgraphs):
        consumers: dict[int, list[tuple[str, int]]] = {}
        for op in sub.operators or []:
            name = _op_name(model.operatorCodes[op.opcodeIndex], names)
            ops[name] += 1
            for index, tensor in enumerate(op.inputs if op.inputs is not None else []):
                consumers.setdefault(int(tensor), []).append((name, index))
            if macs is not None and main_shapes is not None:
                shape_of = main_shapes.get if sub_index == 0 else _static_shape(sub)
                count = _tflite_op_macs(name, op, shape_of)
                macs = None if count is None else macs + count
        for index, tensor in enumerate(sub.tensors or []):
            content = _buffer_bytes(model, tensor.buffer, data)
            if not content:
                continue
            dtype = _tflite_dtype(tensor.type)
            is_bias = dtype == "int32" and any(
                i == 2 and n in _TFLITE_MAC_OPS for n, i in consumers.get(index, [])
            )
            if dtype in _WEIGHT_DTYPES or is_bias:
                values = np.frombuffer(content, dtype=np.dtype(dtype))
                if tensor.sparsity is not None and tensor.shape is not None:
                    # A sparse tensor stores only its non-zero blocks: count the dense weights it
                    # stands for, the left-out ones being zeros.
                    dense = int(np.prod(tensor.shape))
                    values = np.concatenate([values, np.zeros(max(0, dense - values.size), values.dtype)])
                weights.append(values)
            quant = tensor.quantization
            if quant is not None and quant.scale is not None and len(quant.scale) > 1:
                per_channel = True
    metadata = {
        _text(m.name): _buffer_bytes(model, m.buffer, data).decode(errors="replace")
        for m in model.metadata or []
    }
    inputs = [_tflite_io(main, i) for i in main.inputs]
    stats = _weight_stats(weights)
    io_dtypes = {d["dtype"] for d in inputs} | {
        d["dtype"] for d in [_tflite_io(main, i) for i in main.outputs]
    }
    quantized_weights = any(k in stats["weight_dtypes"] for k in ("int8", "uint8"))
    if quantized_weights and io_dtypes <= {"int8", "uint8"}:
        scheme = "full integer (int8 inputs/outputs)"
    elif quantized_weights and "DEQUANTIZE" not in ops:
        scheme = "int8 (dynamic range or mixed)"
    elif "float16" in stats["weight_dtypes"]:
        scheme = "fp16 weights"
    else:
        scheme = "int8 weights" if quantized_weights else "none"
    return {
        "format": "tflite",
        "schema_version": model.version,
        "inputs": inputs,
        "outputs": [_tflite_io(main, i) for i in main.outputs],
        "layout": metadata.get(LAYOUT_KEY) or (_guessed_layout(inputs[0]["shape"]) if inputs else "N/A"),
        "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
        **stats,
        "macs": macs,
        "flops": 2 * macs if macs is not None else None,
        "macs_note": macs_note
        if macs is not None or main_shapes is None
        else "unknown: the shapes of some matrix products are not known before running",
        "quantization": {
            "scheme": scheme,
            "per_channel": per_channel,
            "weight_dtypes": stats["weight_dtypes"],
        },
        "metadata": {k: v for k, v in metadata.items() if len(v) < 200},
        "runtimes": _tflite_runtimes(path, ops),
    }


_TFLITE_MAC_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}


def _static_shape(sub: Any) -> Any:
    def shape_of(index: int) -> list[int] | None:
        shape = sub.tensors[index].shape
        return None if shape is None else [int(d) for d in shape]

    return shape_of


def _tflite_main_shapes(path: Path, main: Any, given: Shapes) -> tuple[dict[int, list[int]] | None, str]:
    """Shapes of the main subgraph's tensors at the input shapes (given, or declared with a dynamic
    batch of 1) — resized in the interpreter when they differ from the stored ones — or None and why."""
    names = [_text(main.tensors[i].name) for i in main.inputs]
    by_name = _given_shapes(path, names, given)
    wanted: list[list[int]] = []
    for index, name in zip(main.inputs, names, strict=True):
        tensor = main.tensors[index]
        declared = tensor.shapeSignature if tensor.shapeSignature is not None else tensor.shape
        dims = _fixed_dims(
            path, name, [int(d) for d in (declared if declared is not None else [])], by_name.get(name)
        )
        if isinstance(dims, str):
            return None, f"unknown: {dims}"
        wanted.append(dims)
    described = " ".join(f"{n}={','.join(map(str, d))}" for n, d in zip(names, wanted, strict=True))
    stored = {i: [int(d) for d in t.shape] for i, t in enumerate(main.tensors) if t.shape is not None}
    if all(stored.get(int(i)) == dims for i, dims in zip(main.inputs, wanted, strict=True)):
        return stored, f"conv + matmul at {described}"
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path))
        for index, dims in zip(main.inputs, wanted, strict=True):
            interpreter.resize_tensor_input(int(index), dims)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        raise UsageError(f"{path}: LiteRT cannot run it at --shape {described} ({first_line(err)})") from err
    shapes = {int(d["index"]): [int(x) for x in d["shape"]] for d in interpreter.get_tensor_details()}
    return shapes, f"conv + matmul at {described}"


def _tflite_op_macs(name: str, op: Any, shape_of: Any) -> int | None:
    """MACs of one op; None when a shape it needs is unknown (negative: dynamic)."""
    if name not in _TFLITE_MAC_OPS and name != "BATCH_MATMUL":
        return 0
    out = shape_of(int(op.outputs[0]))
    weight = shape_of(int(op.inputs[1]))
    if out is None or weight is None:
        return 0
    if min([*out, *weight]) < 0:
        return None
    out_elems = int(np.prod(out))
    if name == "CONV_2D":
        return out_elems * int(np.prod(weight[1:]))
    if name == "DEPTHWISE_CONV_2D":
        return out_elems * int(weight[1] * weight[2])
    if name == "TRANSPOSE_CONV":
        return int(np.prod(shape_of(int(op.inputs[2])) or [0])) * int(np.prod(weight[:3]))
    return out_elems * int(weight[-1] if name == "FULLY_CONNECTED" else weight[-2])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _buffer_bytes(model: Any, index: int, raw: bytes) -> bytes:
    """A buffer's bytes, inline or (large-model layout) stored after the flatbuffer at offset/size."""
    buffer = model.buffers[index] if index < len(model.buffers) else None
    if buffer is None:
        return b""
    if buffer.offset > 1:
        return raw[buffer.offset : buffer.offset + buffer.size]
    return b"" if buffer.data is None else np.asarray(buffer.data, dtype=np.uint8).tobytes()


def _tflite_io(sub: Any, index: int) -> dict[str, Any]:
    tensor = sub.tensors[index]
    name = tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name
    shape = [int(d) for d in tensor.shape] if tensor.shape is not None else []
    doc: dict[str, Any] = {"name": name, "shape": shape, "dtype": _tflite_dtype(tensor.type)}
    quant = tensor.quantization
    if quant is not None and quant.scale is not None and len(quant.scale):
        doc["quantization"] = {"scale": float(quant.scale[0]), "zero_point": int(quant.zeroPoint[0])}
    return doc


def _tflite_runtimes(path: Path, ops: Counter[str]) -> dict[str, str]:
    from edgedeploy.convert.runtimes import TfliteRunner

    special = [op for op in ops if op.startswith(("CUSTOM:", "Flex"))]
    try:
        TfliteRunner(path)
    except UsageError as err:
        return {"ai-edge-litert": f"cannot run: {err}"}
    if special:
        return {
            "ai-edge-litert": f"ok (loaded here; it resolves {', '.join(special)})",
            "tflite-runtime": f"needs kernels for {', '.join(special)} (not checked here)",
        }
    return {
        "ai-edge-litert": "ok (loaded here)",
        "tflite-runtime": "should run: builtin ops only (not checked here)",
    }


# --- torch -----------------------------------------------------------------------------------------


def _inspect_torch(path: Path) -> dict[str, Any]:
    from edgedeploy.extras import require_compress

    require_compress(f"{path}: inspecting a torch file", ("torch",))
    import torch

    from edgedeploy.models.loading import load_torch_file

    loaded = load_torch_file(path, str(path))
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    ops: Counter[str] = Counter()
    try:
        if loaded.kind == "exported":
            kind = "torch.export program (.pt2)"
            program = loaded.value
            tensors = list(program.state_dict.values()) + list(program.constants.values())
            user_inputs = set(program.graph_signature.user_inputs)
            for node in program.graph.nodes:
                if node.op == "placeholder" and node.name in user_inputs:
                    inputs.append(_fake_io(node.name, node.meta.get("val")))
                elif node.op == "call_function":
                    ops[str(node.target)] += 1
                elif node.op == "output":
                    outputs = [
                        _fake_io(getattr(a, "name", str(a)), getattr(a, "meta", {}).get("val"))
                        for a in node.args[0]
                    ]
        elif loaded.kind == "torchscript":
            kind = "TorchScript"
            module = loaded.value
            tensors = list(module.state_dict().values())
            ops.update(
                node.kind() for node in module.inlined_graph.nodes() if node.kind().startswith("aten::")
            )
            inputs = [
                {"name": v.debugName(), "shape": None, "dtype": None} for v in list(module.graph.inputs())[1:]
            ]
        else:
            kind = "state_dict"
            tensors = [v for v in loaded.value.values() if isinstance(v, torch.Tensor)]
    except Exception as err:  # noqa: BLE001 - torch raises many types for programs it cannot read
        raise UsageError(f"{path}: cannot load the torch file ({first_line(err)})") from err
    weights = [t.detach().cpu().float().numpy() for t in tensors if t.is_floating_point()]
    stats = _weight_stats(weights)
    return {
        "format": "torch",
        "torch_kind": kind,
        "inputs": inputs,
        "outputs": outputs,
        "layout": _guessed_layout(inputs[0]["shape"])
        if inputs and inputs[0]["shape"]
        else "unknown (no input spec)",
        "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
        **stats,
        "macs": None,
        "flops": None,
        "quantization": {
            "scheme": "none (torch float tensors)",
            "per_channel": False,
            "weight_dtypes": stats["weight_dtypes"],
        },
        "metadata": {},
        "runtimes": {"torch": "ok (loaded here)"},
    }


def _fake_io(name: str, value: Any) -> dict[str, Any]:
    if value is None or not hasattr(value, "shape"):
        return {"name": name, "shape": None, "dtype": None}
    return {
        "name": name,
        "shape": [int(d) for d in value.shape],
        "dtype": str(value.dtype).removeprefix("torch."),
    }
