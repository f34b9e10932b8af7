"""Convert a model to ONNX or TFLite, verify the result against the source, keep it only if it passes.

`convert_torch` is the stable entry point for Python callers (quickstart, compress);
`convert_source` serves the CLI, which may start from any source format.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.convert import onnx_export, preflight, tflite_export
from edgedeploy.convert.files import first_line, match_inputs, native_stdout_to_stderr, work_dir_beside
from edgedeploy.convert.runtimes import Batch, as_list, open_runner
from edgedeploy.convert.sources import SourceModel, from_torch_module
from edgedeploy.convert.timing import HostTimer, LatencyTimer
from edgedeploy.convert.verify import compare, default_tolerance, describe_failure
from edgedeploy.errors import NotYetSupported, UsageError

PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8")
TARGET_FORMATS = ("onnx", "tflite")
INT8_FORMAT_CHOICES = ("auto", "qdq", "qoperator")


def convert_torch(
    model: Any,
    example: Batch,
    to: str,
    precision: str,
    output: Path,
    calibration: Batch | None = None,
    verify_inputs: Batch | None = None,
    labels: np.ndarray | None = None,
    tolerance: float | None = None,
    int8_format: str = "auto",
) -> dict[str, Any]:
    """Convert a torch.nn.Module; `example` is a float32 batch fixing the input shape (one per input).

    Raises UsageError (naming the file and the figures) when verification fails; nothing is written then.
    """
    shapes = [tuple(np.shape(x)) for x in as_list(example)]  # one example batch per forward() argument
    source = from_torch_module(model, type(model).__name__, shapes)
    return convert_source(
        source,
        to=to,
        precision=precision,
        output=Path(output),
        calibration=calibration,
        verify_inputs=verify_inputs,
        labels=labels,
        tolerance=tolerance,
        int8_format=int8_format,
    )


def convert_source(
    source: SourceModel,
    to: str,
    precision: str,
    output: Path,
    calibration: Batch | None = None,
    verify_inputs: Batch | None = None,
    labels: np.ndarray | None = None,
    tolerance: float | None = None,
    int8_format: str = "auto",
    threads: int | None = None,
    inputs_origin: str | None = None,
    verify_samples: int = 16,
    timer: LatencyTimer | None = None,
) -> dict[str, Any]:
    """Pre-flight, convert, verify on the same inputs, (for int8 auto) profile, then move into place.

    Inputs and calibration data are one array per model input (a bare array for one input).
    `timer` times the int8 auto candidates: this host by default, a target with TargetTimer."""
    _check_options(source, to, precision, int8_format)
    names = source.input_names
    if source.input_shapes is None:
        wanted = f"NAME=dims for each input ({', '.join(names)})" if len(names) > 1 else "e.g. 1,3,224,224"
        raise UsageError(f"{source.name}: input shape unknown; pass --input-shape {wanted}")
    shapes = [tuple(shape) for shape in source.input_shapes]
    notes = list(source.notes)
    if verify_inputs is None:
        rng = np.random.default_rng(0)
        verify_inputs = [rng.random((verify_samples, *shape[1:]), dtype=np.float32) for shape in shapes]
        inputs_origin = inputs_origin or "generated uniform [0, 1) from the input shape"
    verify_inputs = match_inputs(verify_inputs, shapes, names, "verification data", source.name)
    count = len(verify_inputs[0])
    if labels is not None and len(labels) != count:
        raise UsageError(f"{source.name}: {len(labels)} labels for {count} verification inputs")
    if precision == "int8":
        if calibration is None:
            calibration = verify_inputs
            notes.append("int8 calibrated on the verification inputs (no calibration data given)")
        calibration = match_inputs(calibration, shapes, names, "calibration data", source.name)
    else:
        calibration = None  # only full int8 calibrates
    if to == "onnx" and precision == "int8-dynamic":
        notes.append(
            "dynamic int8 makes the file small, not fast: quantizing activations at run time left "
            "EfficientNet-Lite0 at 0.7-0.8x the speed of fp32 in onnxruntime on an x86-64 CPU "
            "(docs/convert.md); for speed use --precision int8"
        )
    example = [
        x[: shape[0]] if count >= shape[0] else np.zeros(shape, np.float32)
        for x, shape in zip(verify_inputs, shapes, strict=True)
    ]
    output = Path(output)
    timings: dict[str, float] = {}

    if output.is_dir():
        raise UsageError(f"{output}: is a directory; give the output file name")
    try:
        with native_stdout_to_stderr(), work_dir_beside(output) as work:
            started = time.perf_counter()
            report = _preflight(source, example, to)
            preflight.refuse_unsupported(source.name, report)
            timings["preflight_s"] = time.perf_counter() - started

            reference = source.predict(verify_inputs)
            tol = float(tolerance) if tolerance is not None else default_tolerance(precision, reference)

            started = time.perf_counter()
            try:
                base = _fp32_base(source, example, to, precision, calibration, work, notes)
                if source.kind == "keras":  # TensorFlow's converter already applied the precision
                    candidates = {precision: base}
                else:
                    candidates = _candidates(base, to, precision, calibration, int8_format, work)
            except UsageError as err:  # converters know no file names: name the source for the user
                raise UsageError(f"{source.name}: {err}") from err
            fp32_size = base.stat().st_size if source.kind != "keras" else None
            timings["conversion_s"] = time.perf_counter() - started

            started = time.perf_counter()
            checks = {
                name: _verify(path, source.layout, to, reference, verify_inputs, labels, tol)
                for name, path in candidates.items()
            }
            timings["verification_s"] = time.perf_counter() - started

            selection = None
            if to == "onnx" and precision == "int8" and int8_format == "auto":
                started = time.perf_counter()
                selection = _select_int8(base, candidates, checks, example, threads, timer or HostTimer())
                chosen = selection["chosen"]
                timings["int8_selection_s"] = time.perf_counter() - started
            else:
                chosen = next(iter(candidates))
            verification = checks[chosen]
            if not verification["passed"]:
                # Dynamic int8 sets each activation's range from one tensor at run time; static int8
                # calibrates every range on data, which holds up where run-time ranges do not.
                hint = (
                    "; try --precision int8 with --calibration (static, calibrated activations)"
                    if precision == "int8-dynamic"
                    else ""
                )
                raise UsageError(describe_failure(str(output), verification, hint))
            size = candidates[chosen].stat().st_size
            os.replace(candidates[chosen], output)
    except OSError as err:  # full disk, read-only directory, ...: no traceback, nothing left behind
        raise UsageError(f"{output}: cannot write the converted model ({err.strerror or err})") from err

    verification["inputs"] = inputs_origin or "given by the caller"
    result: dict[str, Any] = {
        "source": source.name,
        "source_format": source.kind,
        "format": to,
        "precision": precision,
        "output": str(output),
        "size_bytes": size,
        "fp32_size_bytes": fp32_size,
        "layout": source.layout,
        "input_shape": list(shapes[0]),
        "inputs": [{"name": n, "shape": list(s)} for n, s in zip(names, shapes, strict=True)],
        "verification": verification,
        "preflight": report,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "notes": notes,
    }
    if to == "onnx" and precision == "int8":
        result["int8_format"] = onnx_export.INT8_FORMATS[chosen]
    if selection is not None:
        result["int8_selection"] = selection
    return result


def _check_options(source: SourceModel, to: str, precision: str, int8_format: str) -> None:
    if to not in TARGET_FORMATS:
        raise UsageError(f"--to {to!r}: expected one of {', '.join(TARGET_FORMATS)}")
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if int8_format not in INT8_FORMAT_CHOICES:
        raise UsageError(f"--int8-format {int8_format!r}: expected one of {', '.join(INT8_FORMAT_CHOICES)}")
    if to == "tflite" and len(source.input_names) > 1:
        raise NotYetSupported(
            f"{source.name}: {len(source.input_names)} inputs ({', '.join(source.input_names)}): "
            "models with several inputs convert to ONNX only (--to onnx)"
        )
    reachable = {"torch": TARGET_FORMATS, "onnx": ("onnx",), "tflite": ("tflite",), "keras": ("tflite",)}
    if to not in reachable[source.kind]:
        raise NotYetSupported(
            f"{source.name}: {source.kind} -> {to} is not supported; convert from the torch "
            f"{'or Keras ' if to == 'tflite' else ''}source instead"
        )


def _preflight(source: SourceModel, example: list[np.ndarray], to: str) -> dict[str, Any]:
    if source.kind == "torch":
        return preflight.check_torch(source.module, example, to)
    if source.kind == "onnx":
        return preflight.check_onnx(source.file)
    if source.kind == "tflite":
        return preflight.check_tflite(source.file)
    return {
        "converter": "tensorflow",
        "ops_checked": 0,
        "unsupported": [],
        "note": "checked by TF's converter",
    }


def _fp32_base(
    source: SourceModel,
    example: list[np.ndarray],
    to: str,
    precision: str,
    calibration: list[np.ndarray] | None,
    work: Path,
    notes: list[str],
) -> Path:
    """The fp32 model in the target format, from which the other precisions derive."""
    base = work / (f"keras-{precision}.tflite" if source.kind == "keras" else f"fp32.{to}")
    if source.kind == "torch" and to == "onnx":
        onnx_export.export_torch(source.module, example, base, source.input_names)
    elif source.kind == "torch":
        tflite_export.export_torch(source.module, example[0], base)
    elif source.kind == "keras":
        tflite_export.export_keras(source.module, base, precision, calibration[0] if calibration else None)
    elif source.kind == "tflite":
        notes += tflite_export.fp32_from_tflite(source.file, base)
    else:
        shutil.copyfile(source.file, base)
    return base


def _candidates(
    base: Path, to: str, precision: str, calibration: list[np.ndarray] | None, int8_format: str, work: Path
) -> dict[str, Path]:
    """Converted files by name; more than one only for ONNX int8 with --int8-format auto."""
    if precision == "fp32":
        return {precision: base}
    if to == "tflite":
        out = work / f"{precision}.tflite"
        tflite_export.quantize(base, out, precision, calibration[0] if calibration else None)
        return {precision: out}
    formats = ("qdq", "qoperator") if int8_format == "auto" else (int8_format,)
    names = formats if precision == "int8" else (precision,)
    out = {
        name: work / f"{precision}-{name}.onnx" if precision == "int8" else work / f"{name}.onnx"
        for name in names
    }
    for name, path in out.items():
        try:
            if precision == "fp16":
                onnx_export.to_fp16(base, path)
            elif precision == "int8-dynamic":
                onnx_export.quantize_int8_dynamic(base, path)
            else:
                assert calibration is not None
                onnx_export.quantize_int8_static(base, path, calibration, name)
        except (UsageError, OSError):
            raise
        except Exception as err:  # noqa: BLE001 - ORT's tools raise many types on odd (or quantized) graphs
            raise UsageError(
                f"{base.name}: ONNX {precision} conversion ({name}) failed: {first_line(err)}"
            ) from err
    return out


def _verify(
    path: Path,
    layout: str,
    to: str,
    reference: np.ndarray,
    inputs: list[np.ndarray],
    labels: np.ndarray | None,
    tolerance: float,
) -> dict[str, Any]:
    """Stamp the layout into the candidate, then run exactly those bytes and compare."""
    (onnx_export.set_layout if to == "onnx" else tflite_export.set_layout)(path, layout)
    return compare(reference, open_runner(path).predict(inputs), labels, tolerance)


def _select_int8(
    base: Path,
    candidates: dict[str, Path],
    checks: dict[str, dict[str, Any]],
    sample: list[np.ndarray],
    threads: int | None,
    timer: LatencyTimer,
) -> dict[str, Any]:
    """Time fp32 and each int8 encoding that passed verification (same threads); keep the fastest."""
    passing = [name for name in candidates if checks[name]["passed"]]
    timed = (
        timer.latencies({"fp32": base} | {n: candidates[n] for n in passing}, sample, threads)
        if passing
        else None
    )
    latency = timed["p50_ms"] if timed else {}
    rows = [
        {
            "format": onnx_export.INT8_FORMATS[name],
            "p50_ms": round(latency[name], 4) if name in latency else None,
            "speedup_vs_fp32": round(latency["fp32"] / latency[name], 3) if name in latency else None,
            "max_abs_error": checks[name]["max_abs_error"],
            "top1_agreement": checks[name]["top1_agreement"],
            "passed": checks[name]["passed"],
        }
        for name in candidates
    ]
    if not timed:
        chosen = min(candidates, key=lambda name: checks[name]["max_abs_error"])
        return {"candidates": rows, "chosen": chosen, "reason": "no int8 encoding passed verification"}
    chosen = min(passing, key=lambda name: latency[name])
    others = [n for n in passing if n != chosen]
    reason = (
        f"{onnx_export.INT8_FORMATS[chosen]} is fastest among those passing verification: "
        + ", ".join(f"{onnx_export.INT8_FORMATS[n]} {latency[n]:.3g} ms" for n in (chosen, *others))
        + f", fp32 {latency['fp32']:.3g} ms (median p50, {timed['where']})"
    )
    failed = [onnx_export.INT8_FORMATS[n] for n in candidates if n not in passing]
    if failed:
        reason += f"; {', '.join(failed)} failed verification (not timed)"
    return {
        "timed_on": timed["timed_on"],
        "threads": timed["timed_on"]["runtime"]["threads"],
        "fp32_p50_ms": round(latency["fp32"], 4),
        "candidates": rows,
        "chosen": chosen,
        "reason": reason,
    }
