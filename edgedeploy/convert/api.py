"""Convert a model to ONNX or TFLite, verify the result against the source, keep it only if it passes.

`convert_torch` is the stable entry point for Python callers (quickstart, compress);
`convert_source` serves the CLI, which may start from any source format.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.convert import onnx_export, preflight, tflite_export
from edgedeploy.convert.files import first_line, match_inputs, native_stdout_to_stderr, work_dir_beside
from edgedeploy.convert.runtimes import Batch, OnnxRunner, as_list, open_runner
from edgedeploy.convert.sources import SourceModel, from_torch_module
from edgedeploy.convert.timing import HostTimer, LatencyTimer
from edgedeploy.convert.verify import (
    METRICS,
    choose_metric,
    compare,
    default_tolerance,
    describe_failure,
    failed_check,
)
from edgedeploy.errors import NotYetSupported, UsageError
from edgedeploy.runner.device.runtimes import int8_saturates

# "auto": int8 when an int8 encoding passing verification is faster than fp32 where timed, else fp32.
PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8", "auto")
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
    verify_metric: str = "auto",
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
        verify_metric=verify_metric,
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
    verify_metric: str = "auto",
) -> dict[str, Any]:
    """Pre-flight, convert, verify on the same inputs, (for int8 auto) profile, then move into place.

    Inputs and calibration data are one array per model input (a bare array for one input).
    `timer` times the int8 auto candidates: this host by default, a target with TargetTimer.
    `verify_metric`: one of verify.METRICS ("auto" infers it from the output; see choose_metric)."""
    _check_options(source, to, precision, int8_format, verify_metric)
    requested = precision
    precision = "int8" if precision == "auto" else precision  # auto quantizes, then may keep fp32
    names = source.input_names
    if source.input_shapes is None:
        wanted = f"NAME=dims for each input ({', '.join(names)})" if len(names) > 1 else "e.g. 1,3,224,224"
        raise UsageError(f"{source.name}: input shape unknown; pass --shape {wanted}")
    shapes = [tuple(shape) for shape in source.input_shapes]
    notes = list(source.notes)
    batched = source.batched
    if verify_inputs is None:
        if source.integer_inputs:  # a sample rate, token ids: random values mean nothing (or fail)
            raise UsageError(
                f"{source.name}: integer input(s) {', '.join(source.integer_inputs)} need real values for "
                "verification: pass --calibration data.npz with one array per input, named after the "
                f"inputs ({', '.join(names)})"
            )
        rng = np.random.default_rng(0)
        verify_inputs = [
            rng.random((verify_samples, *(shape[1:] if batched else shape)), dtype=np.float32)
            for shape in shapes
        ]
        inputs_origin = inputs_origin or "generated uniform [0, 1) from the input shape"
    verify_inputs = match_inputs(verify_inputs, shapes, names, "verification data", source.name, batched)
    count = len(verify_inputs[0])
    if labels is not None and len(labels) != count:
        raise UsageError(f"{source.name}: {len(labels)} labels for {count} verification inputs")
    if precision == "int8":
        if calibration is None:
            calibration = verify_inputs
            notes.append("int8 calibrated on the verification inputs (no calibration data given)")
        calibration = match_inputs(calibration, shapes, names, "calibration data", source.name, batched)
    else:
        calibration = None  # only full int8 calibrates
    if to == "onnx" and precision == "int8-dynamic":
        notes.append(
            "dynamic int8 makes the file small, not fast: quantizing activations at run time left "
            "EfficientNet-Lite0 at 0.7-0.8x the speed of fp32 in onnxruntime on an x86-64 CPU "
            "(docs/convert.md); for speed use --precision int8"
        )
    if batched:
        example = [
            x[: shape[0]] if count >= shape[0] else np.zeros(shape, np.float32)
            for x, shape in zip(verify_inputs, shapes, strict=True)
        ]
    else:  # one whole feed: no axis of these inputs is a batch to cut
        example = [x[0] for x in verify_inputs]
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

            try:
                reference = source.predict(verify_inputs)
            except UsageError:
                raise
            except Exception as err:  # noqa: BLE001 - runtimes raise their own types on bad values
                raise UsageError(
                    f"{source.name}: the source model fails on the verification inputs ({first_line(err)})"
                ) from err

            started = time.perf_counter()
            upgraded_from = None
            try:
                base = quantize_from = _fp32_base(source, example, to, precision, calibration, work, notes)
                if source.kind == "onnx" and precision in ("int8", "int8-dynamic"):
                    # On a copy: fp32 (kept by --precision auto) stays the user's own graph.
                    quantize_from = work / "fp32-upgraded.onnx"
                    shutil.copyfile(base, quantize_from)
                    upgraded_from = onnx_export.upgrade_opset(quantize_from)
                if source.kind == "keras":  # TensorFlow's converter already applied the precision
                    candidates, dropped = {precision: base}, {}
                else:
                    may_drop = precision == "int8" and (int8_format == "auto" or requested == "auto")
                    candidates, dropped = _candidates(
                        quantize_from, to, precision, calibration, int8_format, work, may_drop, batched
                    )
                    if not candidates and requested != "auto":
                        raise UsageError(
                            "no int8 encoding could be built: "
                            + "; ".join(f"{onnx_export.INT8_FORMATS[n]}: {why}" for n, why in dropped.items())
                        )
            except UsageError as err:  # converters know no file names: name the source for the user
                raise UsageError(f"{source.name}: {err}") from err
            fp32_size = base.stat().st_size if source.kind != "keras" else None
            timings["conversion_s"] = time.perf_counter() - started

            started = time.perf_counter()
            sample_shape = tuple(reference.shape[1:])
            metric, metric_reason = choose_metric(
                verify_metric,
                precision,
                tolerance is not None,
                sample_shape,
                source.output_name,
                batched,
                reference,
            )
            tol = float(tolerance) if tolerance is not None else default_tolerance(precision, reference)
            checks = {
                name: _verify_candidate(
                    path, source, to, reference, verify_inputs, labels, tol, metric, precision, name
                )
                for name, path in candidates.items()
            }
            if requested == "auto":  # fp32 is a candidate too: verified as any fp32 conversion is
                fp32_metric, _ = choose_metric(verify_metric, "fp32", tolerance is not None, sample_shape)
                fp32_tol = float(tolerance) if tolerance is not None else default_tolerance("fp32", reference)
                checks["fp32"] = _verify_candidate(
                    base, source, to, reference, verify_inputs, labels, fp32_tol, fp32_metric, "fp32", "fp32"
                )
            timings["verification_s"] = time.perf_counter() - started

            selection = None
            if to == "onnx" and precision == "int8" and (int8_format == "auto" or requested == "auto"):
                started = time.perf_counter()
                selection = _select_int8(
                    base, candidates, checks, dropped, example, threads, timer or HostTimer(), requested
                )
                chosen = selection["chosen"]
                timings["int8_selection_s"] = time.perf_counter() - started
            else:
                chosen = next(iter(candidates))
            if chosen == "fp32":
                candidates = {"fp32": base}
                precision = "fp32"
                upgraded_from = None  # the fp32 file is the source graph, not the upgraded copy
            if upgraded_from is not None:
                notes.append(
                    f"upgraded from opset {upgraded_from} to {onnx_export.QUANTIZATION_MIN_OPSET} with "
                    "onnx's version converter before quantizing (per-channel int8 needs opset 13)"
                )
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
    if chosen == "fp32" and requested == "auto":
        verification["metric_reason"] = "fp32 must match the source to float round-off"
    else:
        verification["metric_reason"] = metric_reason
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
        "batched": batched,
        "verification": verification,
        "preflight": report,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "notes": notes,
    }
    if requested == "auto":
        result["precision_requested"] = "auto"
    if upgraded_from is not None:
        result["opset_upgrade"] = {"from": upgraded_from, "to": onnx_export.QUANTIZATION_MIN_OPSET}
    if to == "onnx" and precision == "int8":
        result["int8_format"] = onnx_export.INT8_FORMATS[chosen]
    if to == "onnx" and precision.startswith("int8") and int8_saturates():
        how = (
            f"verified with onnxruntime's default int8 kernels: {verification['session_options_dropped']}"
            if verification.get("session_options_dropped")
            else "verified with onnxruntime's session.x64quantprecision=1, as the runner times it on such "
            "CPUs; set that session option wherever you run this file on an x86-64 CPU without VNNI"
        )
        notes.append(
            "this x86-64 CPU has no VNNI, where onnxruntime's default int8 kernels saturate and lose "
            f"accuracy: {how}"
        )
    if selection is not None:
        result["int8_selection"] = selection
        if selection.get("warning"):
            result["warnings"] = [selection["warning"]]
    nested = onnx_export.subgraph_weights(output) if to == "onnx" and precision.startswith("int8") else 0
    if nested and fp32_size and size > 0.8 * fp32_size:
        # ORT's quantizers leave weights inside If/Loop bodies in float (Silero VAD: all of them).
        result.setdefault("warnings", []).append(
            f"the {precision} file is {size / 1024:.0f} KiB against fp32's {fp32_size / 1024:.0f} KiB: "
            f"{nested:,} weights live in If/Loop subgraphs, which onnxruntime's quantizer leaves float, "
            "so this is not an int8 model in size or speed"
        )
    return result


def _check_options(source: SourceModel, to: str, precision: str, int8_format: str, metric: str) -> None:
    if to not in TARGET_FORMATS:
        raise UsageError(f"--to {to!r}: expected one of {', '.join(TARGET_FORMATS)}")
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if metric not in METRICS:
        raise UsageError(f"--verify-metric {metric!r}: expected one of {', '.join(METRICS)}")
    if precision == "auto" and (to != "onnx" or source.kind == "keras"):
        raise NotYetSupported(
            f"{source.name}: --precision auto times int8 against fp32 in onnxruntime: it needs --to onnx"
        )
    if not source.batched and to != "onnx":
        raise NotYetSupported(f"{source.name}: inputs without a shared batch axis convert to ONNX only")
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
    base: Path,
    to: str,
    precision: str,
    calibration: list[np.ndarray] | None,
    int8_format: str,
    work: Path,
    may_drop: bool = False,
    batched: bool = True,
) -> tuple[dict[str, Path], dict[str, str]]:
    """(converted files by name, dropped candidates with the reason). More than one file only for
    ONNX int8 with --int8-format auto; with `may_drop`, a candidate whose conversion fails is dropped
    (auto picks among the rest) instead of failing the whole conversion."""
    if precision == "fp32":
        return {precision: base}, {}
    if to == "tflite":
        out = work / f"{precision}.tflite"
        tflite_export.quantize(base, out, precision, calibration[0] if calibration else None)
        return {precision: out}, {}
    formats = ("qdq", "qoperator") if int8_format == "auto" else (int8_format,)
    names = formats if precision == "int8" else (precision,)
    out = {
        name: work / f"{precision}-{name}.onnx" if precision == "int8" else work / f"{name}.onnx"
        for name in names
    }
    dropped: dict[str, str] = {}
    for name, path in list(out.items()):
        try:
            if precision == "fp16":
                onnx_export.to_fp16(base, path)
            elif precision == "int8-dynamic":
                onnx_export.quantize_int8_dynamic(base, path)
            else:
                assert calibration is not None
                onnx_export.quantize_int8_static(base, path, calibration, name, batched=batched)
        except OSError:
            raise
        except Exception as err:  # noqa: BLE001 - ORT's tools raise many types on odd (or quantized) graphs
            reason = f"conversion failed: {first_line(err)}".replace(str(work), "").replace(
                f"{base.name}: ", ""
            )
            # ORT's pre-processing runs in a temporary directory of its own: no temp names to the user.
            reason = re.sub(r"\S*edgedeploy-quant-\S*", "the pre-processed model", reason)
            if not may_drop:
                raise UsageError(f"ONNX {precision} conversion ({name}) {reason}") from err
            dropped[name] = reason
            del out[name]
    return out, dropped


def _verify_candidate(
    path: Path,
    source: SourceModel,
    to: str,
    reference: np.ndarray,
    inputs: list[np.ndarray],
    labels: np.ndarray | None,
    tolerance: float,
    metric: str,
    precision: str,
    name: str,
) -> dict[str, Any]:
    """Stamp the layout into the candidate, then run exactly those bytes and compare. A candidate
    that does not load or run fails verification with the runtime's reason, named after the
    candidate (its file is a temporary one the user never sees)."""
    (onnx_export.set_layout if to == "onnx" else tflite_export.set_layout)(path, source.layout)
    label = f"the {onnx_export.INT8_FORMATS.get(name, name)} model"
    try:
        runner = open_runner(path)
        outputs = (
            runner.predict_each(inputs)
            if not source.batched and isinstance(runner, OnnxRunner)
            else runner.predict(inputs)
        )
    except Exception as err:  # noqa: BLE001 - ORT/LiteRT raise their own types for bad graphs
        from edgedeploy.convert.files import ort_error

        cause = err.__cause__ if isinstance(err, UsageError) and err.__cause__ else err
        verb = "load" if isinstance(err, UsageError) else "run"
        problem = f"{label} does not {verb} in the runtime: {ort_error(cause, path, label)}"
        return failed_check(problem, metric, tolerance, len(reference))
    check = compare(reference, outputs, labels, tolerance, metric, precision)
    # How onnxruntime was set up for these outputs (the runner sets it up the same way).
    if getattr(runner, "session_options", None):
        check["session_options"] = runner.session_options
    if getattr(runner, "session_options_dropped", None):
        check["session_options_dropped"] = runner.session_options_dropped
    return check


def _select_int8(
    base: Path,
    candidates: dict[str, Path],
    checks: dict[str, dict[str, Any]],
    dropped: dict[str, str],
    sample: list[np.ndarray],
    threads: int | None,
    timer: LatencyTimer,
    requested: str = "int8",
) -> dict[str, Any]:
    """Time fp32 and each int8 encoding that passed verification (same threads); keep the fastest
    int8 (`requested` "int8") or the fastest of all, fp32 included (`requested` "auto").

    Candidates that could not be built (`dropped`), loaded, run or timed are left out, with the reason
    in their row; when every int8 encoding is slower than fp32, the reason and a warning say so."""
    formats = onnx_export.INT8_FORMATS
    passing = [name for name in candidates if checks[name]["passed"]]
    problems = dict(dropped)
    problems |= {
        n: checks[n].get("problem") or f"failed verification (needs {checks[n].get('criterion', '?')})"
        for n in candidates
        if n not in passing
    }
    latency: dict[str, float] = {}
    timed = None
    if passing:
        try:
            timed = timer.latencies({"fp32": base} | {n: candidates[n] for n in passing}, sample, threads)
        except UsageError as failure:
            if len(passing) == 1:
                raise
            # One candidate may break the timing run (a runtime too old for an op): time each alone.
            for name in list(passing):
                try:
                    timed = timer.latencies({"fp32": base, name: candidates[name]}, sample, threads)
                    latency[name] = timed["p50_ms"][name]
                    latency["fp32"] = timed["p50_ms"]["fp32"]
                except UsageError as err:
                    problems[name] = f"timing failed: {first_line(err)}"
                    passing.remove(name)
            if not passing:  # nothing times there (fp32 neither): the target's own problem
                raise failure from None
        else:
            latency = dict(timed["p50_ms"])
    rows = [
        {
            "format": formats[name],
            "p50_ms": round(latency[name], 4) if name in latency else None,
            "speedup_vs_fp32": round(latency["fp32"] / latency[name], 3) if name in latency else None,
            "max_abs_error": checks[name]["max_abs_error"] if name in checks else None,
            "top1_agreement": checks[name]["top1_agreement"] if name in checks else None,
            "passed": name in passing,
            **({"dropped": problems[name]} if name in problems else {}),
        }
        for name in [*candidates, *dropped]
    ]
    left_out = "; ".join(f"{formats[n]} left out: {why}" for n, why in problems.items())
    fp32_ok = requested == "auto" and checks.get("fp32", {}).get("passed", False)
    if timed is None:
        if fp32_ok or not candidates:  # (no candidates: --precision auto, every int8 build failed)
            reason = "no int8 encoding passed verification: fp32 kept (--precision auto)"
            return {"candidates": rows, "chosen": "fp32", "reason": f"{reason}; {left_out}"}
        chosen = min(candidates, key=lambda name: checks[name]["max_abs_error"])
        reason = "no int8 encoding passed verification" + (f"; {left_out}" if left_out else "")
        return {"candidates": rows, "chosen": chosen, "reason": reason}
    fastest = min(passing, key=lambda name: latency[name])
    others = [n for n in passing if n != fastest]
    slower = latency[fastest] > latency["fp32"]  # every passing int8 encoding is slower than fp32
    where = f"({timed['statistic']}, {timed['where']})"
    figures = ", ".join(f"{formats[n]} {latency[n]:.3g} ms" for n in (fastest, *others))
    figures += f", fp32 {latency['fp32']:.3g} ms {where}"
    warning = None
    if slower and requested == "auto" and fp32_ok:
        chosen = "fp32"
        reason = (
            f"every int8 encoding is slower than fp32 here (the fastest, {formats[fastest]}, runs at "
            f"{latency['fp32'] / latency[fastest]:.2f}x fp32's speed): fp32 kept (--precision auto): "
            + figures
        )
    elif slower:
        chosen = fastest
        reason = f"{formats[fastest]} is the fastest int8 encoding passing verification: {figures}"
        warning = (
            f"every int8 encoding is SLOWER than fp32 here: {formats[fastest]} runs at "
            f"{latency['fp32'] / latency[fastest]:.2f}x fp32's speed; int8 kept (smaller file) because "
            "--precision int8 asks for it: --precision auto keeps fp32 then"
        )
        reason += f"; {warning}"
    else:
        chosen = fastest
        reason = f"{formats[fastest]} is fastest among those passing verification: {figures}"
    if left_out:
        reason += f"; {left_out}"
    return {
        "timed_on": timed["timed_on"],
        "threads": timed["timed_on"]["runtime"]["threads"],
        "fp32_p50_ms": round(latency["fp32"], 4),
        "candidates": rows,
        "chosen": chosen,
        "int8_slower_than_fp32": slower,
        "reason": reason,
        **({"warning": warning} if warning else {}),
    }
