"""Torch -> TFLite through litert-torch, Keras -> TFLite through TensorFlow's converter, and TFLite
quantization (fp16 weights, dynamic-range int8, full int8 with representative data) through Google's
ai-edge-quantizer, which works on the fp32 .tflite whatever produced it."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.convert.files import LAYOUT_KEY, first_line
from edgedeploy.errors import UsageError


def require_litert_torch() -> Any:
    """The litert_torch module, or one clear error: it is the optional [litert] extra (x86_64 only)."""
    try:
        import litert_torch
    except ImportError as err:
        raise UsageError(
            'TFLite from torch needs litert-torch (x86_64 only): pip install "edgedeploy[litert]"'
        ) from err
    return litert_torch


def export_torch(module: Any, example: np.ndarray, out: Path) -> None:
    import torch

    litert_torch = require_litert_torch()
    args = (torch.from_numpy(np.ascontiguousarray(example, dtype=np.float32)),)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            litert_torch.convert(module, args).export(str(out))
    except Exception as err:  # noqa: BLE001 - the converter raises many internal types
        raise UsageError(f"litert-torch conversion failed: {first_line(err)}") from err


def export_keras(model: Any, out: Path, precision: str, calibration: np.ndarray | None) -> None:
    """TensorFlow's own converter for Keras models and SavedModel directories (precision handled there,
    as TF documents it; int8 keeps float inputs/outputs)."""
    import tensorflow as tf

    if isinstance(model, Path):  # a SavedModel directory
        converter = tf.lite.TFLiteConverter.from_saved_model(str(model))
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8-dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision == "int8":
        assert calibration is not None
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(len(calibration)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    out.write_bytes(converter.convert())


def fp32_from_tflite(src: Path, out: Path) -> list[str]:
    """The fp32 base of a .tflite source, and notes saying what changed.

    Files as SDKs ship them keep fp16 weights behind DEQUANTIZE ops and have no signature; the
    quantizer needs fp32 weights and calibrates through a signature, and --precision fp32 must give
    fp32 weights (never the fp16 file unchanged)."""
    from edgedeploy.convert import tflite_rewrite

    notes = []
    folded, densified = tflite_rewrite.dequantize_fp16_weights(src, out)
    if densified:
        notes.append(
            f"{densified} sparse weight tensors made dense (the quantizer takes dense weights; "
            "the fp32 file is larger than the sparse source)"
        )
    if folded:
        notes.append(f"{folded} fp16 weight tensors dequantized to fp32 (their DEQUANTIZE ops removed)")
    if tflite_rewrite.signature_inputs(out) is None:
        tflite_rewrite.add_signature(out)
        notes.append(
            f"the file has no signature: added '{tflite_rewrite.SIGNATURE_KEY}' over its inputs and outputs"
        )
    return notes


# What the weights of each precision must hold afterwards: a quantizer that covers none of a model's
# ops returns it unchanged, which must not pass for a conversion.
_EXPECTED_WEIGHTS = {"fp16": "float16", "int8-dynamic": "int8", "int8": "int8"}


def quantize(src: Path, out: Path, precision: str, calibration: np.ndarray | None) -> None:
    """Quantize an fp32 .tflite. int8 is full integer (int8 input/output too) from the calibration set."""
    try:
        from ai_edge_quantizer import qtyping, quantizer, recipe, recipe_manager
        from ai_edge_quantizer.algorithm_manager import AlgorithmName
    except ImportError as err:
        raise UsageError(
            "TFLite quantization needs Google's ai-edge-quantizer: pip install ai-edge-quantizer==0.10.0"
        ) from err

    if precision == "fp16":
        manager = recipe_manager.RecipeManager()
        manager.add_weight_only_config(
            regex=".*",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            num_bits=16,
            algorithm_key=AlgorithmName.FLOAT_CASTING,
        )
        chosen = manager.get_quantization_recipe()
    elif precision == "int8-dynamic":
        chosen = recipe.dynamic_wi8_afp32()
    else:
        chosen = recipe.static_wi8_ai8()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant = quantizer.Quantizer(str(src), chosen)
            calibration_result = None
            if quant.need_calibration:
                assert calibration is not None
                calibration_result = _calibrate(src, chosen, calibration)
            result = quant.quantize(calibration_result, enable_progress_report=False)
    except (ValueError, RuntimeError, KeyError) as err:
        raise UsageError(f"ai-edge-quantizer failed: {first_line(err)}") from err
    out.write_bytes(bytes(result.quantized_model))
    from ai_edge_litert.interpreter import Interpreter

    from edgedeploy.convert.tflite_rewrite import constant_weight_dtypes

    try:  # named here: verification would name only a temporary file
        Interpreter(model_path=str(out)).allocate_tensors()
    except (ValueError, RuntimeError) as err:
        raise UsageError(
            f"ai-edge-quantizer wrote a {precision} file LiteRT cannot load ({first_line(err)}); "
            "nothing written"
        ) from err

    if _EXPECTED_WEIGHTS[precision] not in constant_weight_dtypes(out):
        raise UsageError(
            f"ai-edge-quantizer left every weight in float32 (it quantizes none of this model's ops to "
            f"{precision}); nothing written"
        )


def _calibrate(src: Path, chosen: Any, calibration: np.ndarray) -> dict[str, Any]:
    """Ranges from the global min/max over the calibration set, like ONNX Runtime's MinMax calibrator.

    The quantizer's default is a moving average of per-sample ranges, which clips the largest outputs
    (on LeNet-5 logits it cut the output range by half: max abs error 5.2 on logits of magnitude 11).
    """
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(chosen)
    calib = calibrator.Calibrator(src.read_bytes(), num_threads=1, qsv_update_func=qsv_utils.min_max_update)
    calib.calibrate(_signature_samples(src, calibration), manager)
    return calib.get_model_qsvs()


def _signature_samples(src: Path, calibration: np.ndarray) -> dict[str, list[dict[str, np.ndarray]]]:
    """Calibration rows fed one batch at a time through the model's (single) signature."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(src))
    signatures = interpreter.get_signature_list()
    if not signatures:  # fp32_from_tflite adds one; a file without would otherwise stop here
        raise UsageError("int8 calibration needs a signature and the model has none")
    key, spec = next(iter(signatures.items()))
    input_name = spec["inputs"][0]
    batch = int(interpreter.get_input_details()[0]["shape"][0]) or 1
    rows = [calibration[i : i + batch] for i in range(0, len(calibration) - batch + 1, batch)]
    return {key: [{input_name: row} for row in rows]}


def set_layout(path: Path, layout: str) -> None:
    """Record the input layout as a TFLite metadata entry (the schema's name -> buffer map).

    Re-packing drops data stored after the flatbuffer (buffers with offset/size, which the quantizer
    writes), so such buffers are moved inline first; models under 2 GB fit inline.
    """
    from ai_edge_litert import schema_py_generated as schema

    from edgedeploy.convert import tflite_rewrite

    model, raw = tflite_rewrite.load(path)
    model.metadata = [m for m in (model.metadata or []) if m.name not in (LAYOUT_KEY, LAYOUT_KEY.encode())]
    model.buffers.append(schema.BufferT(data=np.frombuffer(layout.encode(), dtype=np.uint8)))
    entry = schema.MetadataT()
    entry.name = LAYOUT_KEY
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    tflite_rewrite.save(model, path, len(raw))
