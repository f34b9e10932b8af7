"""Rewrites of third-party .tflite files before quantization, through LiteRT's flatbuffer schema.

Files as vision SDKs ship them (MediaPipe's, for one) keep weights in fp16 behind DEQUANTIZE ops and
carry no signature. Google's ai-edge-quantizer quantizes fp32 weights and calibrates through a
signature, so such a file is first made fp32 (each constant DEQUANTIZE folded into an fp32 weight:
fp16 -> fp32 is exact) and given a signature naming the graph's own inputs and outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SIGNATURE_KEY = "serving_default"


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated as schema

    return schema


def load(path: Path) -> tuple[Any, bytes]:
    """The unpacked model with every buffer inline (quantizer output stores big ones after the
    flatbuffer at offset/size, which re-packing would drop)."""
    raw = path.read_bytes()
    model = _schema().ModelT.InitFromPackedBuf(bytearray(raw), 0)
    for buffer in model.buffers:
        if buffer.offset > 1:
            buffer.data = np.frombuffer(raw, dtype=np.uint8, count=buffer.size, offset=buffer.offset)
            buffer.offset = buffer.size = 0
    return model, raw


def save(model: Any, path: Path, size_hint: int) -> None:
    import flatbuffers

    builder = flatbuffers.Builder(size_hint + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))


def constant_weight_dtypes(path: Path) -> set[str]:
    """dtypes of the constant float/int8 tensors: what a precision change must change."""
    schema = _schema()
    model, _ = load(path)
    names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    return {
        names[tensor.type]
        for sub in model.subgraphs
        for tensor in sub.tensors or []
        if model.buffers[tensor.buffer].data is not None
        and names[tensor.type] in ("float32", "float16", "int8", "int4", "uint8")
    }


def dequantize_fp16_weights(src: Path, out: Path) -> tuple[int, int]:
    """Fold every DEQUANTIZE of a constant fp16 tensor into an fp32 constant; returns how many, and
    how many sparse weights were made dense.

    Constant sparse weights (DENSIFY ops) are made dense first, so that they fold too. The folded ops
    go; their inputs are dropped where nothing else reads them."""
    schema = _schema()
    model, raw = load(src)
    for code in model.operatorCodes:
        # Files from before schema 3a keep the op in deprecated_builtin_code only (builtin_code 0, ADD);
        # the runtime reads the larger of the two, the quantizer reads builtin_code alone.
        code.builtinCode = max(code.builtinCode, code.deprecatedBuiltinCode)
    dequantize = {
        index
        for index, code in enumerate(model.operatorCodes)
        if code.builtinCode == schema.BuiltinOperator.DEQUANTIZE
    }
    densify = {
        index
        for index, code in enumerate(model.operatorCodes)
        if code.builtinCode == schema.BuiltinOperator.DENSIFY
    }
    dense_values = _densified_constants(src, model, densify)
    folded = 0
    for sub_index, sub in enumerate(model.subgraphs):
        kept = []
        dropped_inputs = set()
        for op in sub.operators or []:
            if sub_index == 0 and op.opcodeIndex in densify and int(op.outputs[0]) in dense_values:
                # A constant sparse weight made dense once here, as the runtime does at every load.
                model.buffers.append(schema.BufferT())
                model.buffers[-1].data = np.frombuffer(dense_values[int(op.outputs[0])].tobytes(), np.uint8)
                sub.tensors[op.outputs[0]].buffer = len(model.buffers) - 1
                dropped_inputs.add(int(op.inputs[0]))
                continue
            source = sub.tensors[op.inputs[0]] if op.opcodeIndex in dequantize else None
            if (
                source is None
                or source.type != schema.TensorType.FLOAT16
                or source.sparsity is not None  # sparse weights go through DENSIFY first
                or model.buffers[source.buffer].data is None
            ):
                kept.append(op)
                continue
            weights = np.frombuffer(np.asarray(model.buffers[source.buffer].data, np.uint8).tobytes(), "<f2")
            model.buffers.append(schema.BufferT())
            model.buffers[-1].data = np.frombuffer(weights.astype("<f4").tobytes(), dtype=np.uint8)
            sub.tensors[op.outputs[0]].buffer = len(model.buffers) - 1
            dropped_inputs.add(int(op.inputs[0]))
            folded += 1
        sub.operators = kept
        if dropped_inputs:
            renumber = _drop_unused_tensors(sub)
            for signature in model.signatureDefs or []:
                if signature.subgraphIndex == sub_index:
                    for entry in [*(signature.inputs or []), *(signature.outputs or [])]:
                        entry.tensorIndex = renumber[entry.tensorIndex]
    used = {tensor.buffer for sub in model.subgraphs for tensor in sub.tensors or []}
    for index, buffer in enumerate(model.buffers):
        if index and index not in used and buffer.data is not None:
            buffer.data = None  # fp16 copies nobody reads any more
    save(model, out, len(raw) * 2 + sum(v.nbytes for v in dense_values.values()))
    return folded, len(dense_values)


def _densified_constants(src: Path, model: Any, densify: set[int]) -> dict[int, np.ndarray]:
    """Dense values of the main graph's DENSIFY outputs (of constant sparse weights), by tensor index.

    The sparse formats (block maps, CSR segments per dimension) are LiteRT's to decode: one run with
    every tensor kept reads what its DENSIFY kernels produced; the values do not depend on the input."""
    main = model.subgraphs[0]
    wanted = [
        int(op.outputs[0])
        for op in main.operators or []
        if op.opcodeIndex in densify and model.buffers[main.tensors[op.inputs[0]].buffer].data is not None
    ]
    if not wanted:
        return {}
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Without the default (XNNPACK) delegate, which takes DENSIFY over and leaves its outputs unset.
    interpreter = Interpreter(
        model_path=str(src),
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interpreter.invoke()
    return {index: np.array(interpreter.get_tensor(index)) for index in wanted}


def _indices(values: Any) -> list[int]:
    return [] if values is None else [int(i) for i in values]


def _drop_unused_tensors(sub: Any) -> dict[int, int]:
    """Remove tensors no op or graph input/output names, renumbering the references: tools that walk
    every tensor (the quantizer's calibrator) fail on a constant left without its data."""
    fields = ("inputs", "outputs", "intermediates")
    used = {int(i) for op in sub.operators for f in fields for i in _indices(getattr(op, f, None)) if i >= 0}
    used |= {int(i) for i in [*_indices(sub.inputs), *_indices(sub.outputs)]}
    renumber = {old: new for new, old in enumerate(sorted(used))}
    sub.tensors = [sub.tensors[old] for old in sorted(used)]

    def remap(indices: Any) -> Any:
        if indices is None:
            return None
        return np.asarray([renumber[int(i)] if i >= 0 else -1 for i in indices], dtype=np.int32)

    for op in sub.operators:
        for f in fields:
            setattr(op, f, remap(getattr(op, f, None)))
    sub.inputs, sub.outputs = remap(sub.inputs), remap(sub.outputs)
    return renumber


def signature_inputs(path: Path) -> dict[str, Any] | None:
    """The first signature (key, input names), or None when the file has none."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_path=str(path)).get_signature_list()
    if not signatures:
        return None
    key, spec = next(iter(signatures.items()))
    return {"key": key, "inputs": list(spec["inputs"])}


def add_signature(path: Path) -> None:
    """Give a file without signatures one (serving_default) over subgraph 0's inputs and outputs."""
    schema = _schema()
    model, raw = load(path)
    if model.signatureDefs:
        return
    main = model.subgraphs[0]

    def tensor_map(index: int) -> Any:
        entry = schema.TensorMapT()
        name = main.tensors[index].name
        entry.name = name.decode() if isinstance(name, bytes) else str(name)
        entry.tensorIndex = int(index)
        return entry

    signature = schema.SignatureDefT()
    signature.inputs = [tensor_map(i) for i in main.inputs]
    signature.outputs = [tensor_map(i) for i in main.outputs]
    signature.signatureKey = SIGNATURE_KEY
    signature.subgraphIndex = 0
    model.signatureDefs = [signature]
    save(model, path, len(raw))
