"""Torch -> ONNX export and ONNX Runtime quantization (fp16, int8 dynamic, int8 static QDQ/QOperator)."""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.convert.files import LAYOUT_KEY, first_line
from edgedeploy.errors import UsageError

# The two static int8 encodings of ONNX Runtime: signed activations in QuantizeLinear/DequantizeLinear
# pairs (QDQ, S8S8), and fused integer operators (QLinearConv, ...) with unsigned activations (U8S8).
INT8_FORMATS = {"qdq": "QDQ S8S8", "qoperator": "QOperator U8S8"}


def export_torch(
    module: Any, example: np.ndarray | list[np.ndarray], out: Path, input_names: list[str] | None = None
) -> None:
    """Single-file ONNX via the dynamo exporter, with a dynamic batch axis when the model allows it.

    `example`: one batch per forward() argument (a bare array for one); `input_names` name them."""
    import torch

    examples = example if isinstance(example, (list, tuple)) else [example]
    args = tuple(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in examples)
    common: dict[str, Any] = {
        "input_names": input_names or ["input"],
        "output_names": ["output"],
        "dynamo": True,
        "external_data": False,
        "verbose": False,
        "optimize": True,
    }
    errors: list[str] = []
    # A fixed batch is the fallback: models that reshape with a literal batch size export only so.
    batch = torch.export.Dim("batch", max=4096)  # one batch size shared by all inputs
    for shapes in (tuple({0: batch} for _ in args), None):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, args, str(out), dynamic_shapes=shapes, **common)
            _fold_weight_arithmetic_and_strip_debug_info(out)
            return
        except Exception as err:  # noqa: BLE001 - the exporter raises many internal types
            errors.append(first_line(err))
    raise UsageError(f"torch.onnx.export failed: {errors[-1]}")


def _fold_weight_arithmetic_and_strip_debug_info(path: Path) -> None:
    """Fold computations on weights (pruning masks: weight_orig * mask) into plain initializers.

    The exporter's optimizer skips tensors over 8192 elements; without folding, a pruned model ships
    both dense weight and mask, twice its size, and its sparsity is invisible to zip and to inspect.

    The exporter also tags every node with its Python stack trace and FX node: about 1 KB per node,
    which dominates small models' files and ships the build machine's file paths to every device.
    """
    import onnx
    import onnxscript.optimizer

    limit = 1 << 28
    model = onnx.load(str(path))
    model = onnxscript.optimizer.optimize(model, input_size_limit=limit, output_size_limit=limit)
    for graph in _graphs(model.graph):
        for node in graph.node:
            del node.metadata_props[:]
    onnx.save(model, str(path))


def _graphs(graph: Any) -> Iterator[Any]:
    """A graph and every subgraph (If/Loop/Scan bodies) inside it."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.g.node:
                yield from _graphs(attribute.g)
            for sub in attribute.graphs:
                yield from _graphs(sub)


# ORT's static quantizer writes per-channel DequantizeLinear (its `axis` attribute exists from opset 13
# on) whatever the model's opset: an opset 11/12 model (PaddlePaddle's exports) gets an invalid graph.
QUANTIZATION_MIN_OPSET = 13


def opset(path: Path) -> int | None:
    """The model's ai.onnx opset version (None when it imports none)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def upgrade_opset(path: Path, minimum: int = QUANTIZATION_MIN_OPSET) -> int | None:
    """Rewrite `path` to opset `minimum` with onnx's version converter when it is older; returns the
    old opset when it upgraded, else None. Raises UsageError when the converter cannot."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(path))
    old = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if old is None or old >= minimum:
        return None
    try:
        upgraded = version_converter.convert_version(model, minimum)
        onnx.checker.check_model(upgraded)
    except Exception as err:  # noqa: BLE001 - the converter raises its own C++ error types
        raise UsageError(
            f"cannot upgrade opset {old} to {minimum} for quantization ({first_line(err)})"
        ) from err
    onnx.save(upgraded, str(path))
    return old


def subgraph_weights(path: Path) -> int:
    """How many weight values live inside If/Loop/Scan bodies (0 without any)."""
    import numpy as np
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    nested = list(_graphs(model.graph))[1:]
    constants = [  # exporters also store weights as Constant nodes
        a.t
        for graph in nested
        for n in graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.name == "value"
    ]
    tensors = [t for graph in nested for t in graph.initializer] + constants
    return sum(int(np.prod(t.dims)) for t in tensors)


def set_layout(path: Path, layout: str) -> None:
    """Record the input layout (NCHW/NHWC) in the model's metadata_props."""
    import onnx

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props[LAYOUT_KEY] = layout
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def to_fp16(src: Path, out: Path) -> None:
    """fp16 weights and compute, fp32 inputs/outputs (so runners and users feed the same arrays)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    _sort_topologically(model.graph)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))


def _sort_topologically(graph: Any) -> None:
    """Put nodes in dependency order: the fp16 converter appends its input Casts at the end, which
    ONNX Runtime tolerates but the ONNX checker (and so other tools) rejects."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:  # a cycle or a dangling input: leave the rest as it was, the checker will say
            ordered += pending
            break
        for node in ready:
            available.update(node.output)
        ordered += ready
        done = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in done]
    del graph.node[:]
    graph.node.extend(ordered)


def quantize_int8_dynamic(src: Path, out: Path) -> None:
    """Int8 weights, activations quantized at run time: Conv per output channel (our own rewrite, see
    onnx_dynamic), MatMul/Gemm per channel through ORT's quantize_dynamic."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgedeploy.convert.onnx_dynamic import quantize_convs_per_channel

    with _preprocessed(src) as pre:
        convs = pre.with_name("convs-int8.onnx")
        quantize_convs_per_channel(pre, convs)
        quantize_dynamic(
            str(convs),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Gemm"],
        )


# ONNX Runtime's activation-range calibrators. MinMax stays the default: on EfficientNet-Lite0 and real
# photos (bench/int8_calibration.py) Percentile was within 0.1 dB logit SQNR and 0.2 points of top-1
# agreement, at 3-4x the calibration time; Entropy with ORT's defaults (128 histogram bins searched
# for 128 quantised bins, not settable through quantize_static) keeps the full range, i.e. the very
# same model as MinMax. Percentile gets asymmetric ranges: ORT's symmetric default would waste half of
# uint8's range on ReLU6 outputs, which are never negative.
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


def quantize_int8_static(
    src: Path,
    out: Path,
    calibration: np.ndarray | list[np.ndarray],
    int8_format: str,
    calibration_method: str = "minmax",
    batched: bool = True,
) -> None:
    """Static int8, per-channel weights, activation ranges calibrated on `calibration` (one array per
    input; after ORT's pre-processing) by `calibration_method`, one of CALIBRATION_METHODS."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from edgedeploy.convert.runtimes import OnnxRunner

    runner = OnnxRunner(src)
    arrays = calibration if isinstance(calibration, (list, tuple)) else [calibration]
    count = len(arrays[0])
    batch = runner.fixed_batch or min(8, count)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.starts = iter(range(0, count - batch + 1, batch) if batched else range(count))

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self.starts, None)
            if start is None:
                return None
            if not batched:  # one whole feed per sample (scalars, a batch on another axis)
                return {
                    name: a[start].astype(dtype, copy=False)
                    for name, a, dtype in zip(runner.input_names, arrays, runner.input_dtypes, strict=True)
                }
            return {
                name: a[start : start + batch] for name, a in zip(runner.input_names, arrays, strict=True)
            }

    if int8_format == "qdq":
        quant_format, activation_type = QuantFormat.QDQ, QuantType.QInt8
    else:
        quant_format, activation_type = QuantFormat.QOperator, QuantType.QUInt8
    asymmetric = {"CalibTensorRangeSymmetric": False}
    with _preprocessed(src) as pre:
        quantize_static(
            str(pre),
            str(out),
            Reader(),
            quant_format=quant_format,
            activation_type=activation_type,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "percentile": CalibrationMethod.Percentile,
                "entropy": CalibrationMethod.Entropy,
            }[calibration_method],
            extra_options=asymmetric if calibration_method == "percentile" else None,
        )


@contextlib.contextmanager
def _preprocessed(src: Path) -> Iterator[Path]:
    """ORT's recommended pre-processing (symbolic shape inference, graph optimisation) in a temp dir."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="edgedeploy-quant-") as tmp:
        pre = Path(tmp) / "preprocessed.onnx"
        # When symbolic shape inference stops early, ORT dumps `sym_shape_infer_temp.onnx` (+ external
        # data) into the CURRENT directory; run it inside the temp dir so the user's cwd stays clean.
        source = str(src.resolve())
        with contextlib.chdir(tmp):
            try:
                quant_pre_process(source, str(pre))
            except Exception:  # noqa: BLE001 - some graphs defeat symbolic shape inference; ONNX's suffices
                quant_pre_process(source, str(pre), skip_symbolic_shape=True)
        yield pre
