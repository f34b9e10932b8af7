"""One trained candidate of `tune`: train the recipe, export to every format of the space, score each
exported file. A plain function of picklable inputs, so it runs in the tune process or as a Ray task
on another machine alike; the files come back as bytes (the driver, which measures them on the
devices, may not share a file system with the worker)."""

from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.errors import EdgeDeployError, UsageError


@dataclass
class CandidateJob:
    model: Any
    data: Any
    recipe: list[dict[str, Any]]
    seed: int
    exports: list[str]
    example: np.ndarray
    calibration: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray
    stem: str
    """File names are STEM-EXPORT.EXT: the profile store and `profiles report` tell variants apart by stem."""
    log: Path | None = None
    """Where the converters' chatter goes (None: a temporary file, dropped)."""


def build_candidate(job: CandidateJob) -> dict[str, Any]:
    """{"train_seconds", "error" (training failed) or "exports": {export: {"name", "data", "size_bytes",
    "accuracy"} or {"error"}}}. User-facing failures are returned as messages, never raised."""
    from edgedeploy.convert.files import native_output_to

    with tempfile.TemporaryDirectory(prefix="edgedeploy-tune-") as tmp:
        log = job.log or Path(tmp) / "convert.log"
        started = time.perf_counter()
        try:
            if job.recipe:
                from edgedeploy.compress.pipeline import compress_model

                with native_output_to(log):
                    model = compress_model(job.model, job.recipe, data=job.data, seed=job.seed).model
            else:
                model = copy.deepcopy(job.model)
        except EdgeDeployError as err:
            return {"error": str(err), "train_seconds": time.perf_counter() - started}
        train_seconds = time.perf_counter() - started
        exports: dict[str, dict[str, Any]] = {}
        for export, built in export_files(model.eval(), job, Path(tmp), log).items():
            if isinstance(built, EdgeDeployError):
                exports[export] = {"error": str(built)}
                continue
            path, accuracy = built
            exports[export] = {
                "name": path.name,
                "data": path.read_bytes(),
                "size_bytes": path.stat().st_size,
                "accuracy": accuracy,
            }
    # Which process built it: with Ray, a worker's (the tests check trials really ran there).
    return {"train_seconds": train_seconds, "exports": exports, "built_by": _process()}


def _process() -> dict[str, Any]:
    import os
    import socket

    return {"host": socket.gethostname(), "pid": os.getpid()}


def export_files(
    model: Any, job: CandidateJob, folder: Path, log: Path
) -> dict[str, tuple[Path, float] | EdgeDeployError]:
    """Every export of `job`: (file, accuracy of the file) or the error that stopped it.

    The torch model is traced once per format (its fp32 file, ~20 s for a small MobileNetV2 on this
    2-core host); the other precisions of that format quantize the fp32 file (1-2 s each), as
    `edgedeploy convert` does for a user's ONNX/TFLite file. Tracing for each export took six times
    as long for a six-export space and produced the same graphs."""
    from edgedeploy.tune.space import EXPORTS

    built: dict[str, tuple[Path, float] | EdgeDeployError] = {}
    bases: dict[str, Path | EdgeDeployError] = {}
    for fmt in dict.fromkeys(EXPORTS[e][0] for e in job.exports):
        fp32 = f"{fmt}-fp32"
        try:
            built_fp32 = export_file(model, fp32, job, folder, log)
        except EdgeDeployError as err:
            bases[fmt] = err
            continue
        bases[fmt] = built_fp32[0]
        if fp32 in job.exports:
            built[fp32] = built_fp32
    for export in job.exports:
        if export in built:
            continue
        base = bases[EXPORTS[export][0]]
        if isinstance(base, EdgeDeployError):
            built[export] = base
            continue
        try:
            built[export] = export_file(model, export, job, folder, log, base=base)
        except EdgeDeployError as err:
            built[export] = err
    return {export: built[export] for export in job.exports}


def export_file(
    model: Any, export: str, job: CandidateJob, folder: Path, log: Path, base: Path | None = None
) -> tuple[Path, float]:
    """Convert (verified) and measure top-1 accuracy of the exported file on the validation inputs.
    With `base` (the model's fp32 file in the export's format), the file is quantized from it
    instead of tracing the torch model again."""
    from edgedeploy.convert.api import convert_source, convert_torch
    from edgedeploy.convert.files import native_output_to
    from edgedeploy.convert.sources import load_source
    from edgedeploy.tune.space import EXPORTS

    to, precision, int8_format = EXPORTS[export]
    path = folder / f"{job.stem}-{export}.{to}"
    options: dict[str, Any] = {
        "to": to,
        "precision": precision,
        "output": path,
        "calibration": job.calibration if precision == "int8" else None,
        "verify_inputs": job.eval_x,
        "labels": job.eval_y,
        "int8_format": int8_format,
    }
    # The converters' own chatter goes to the log (as quickstart does), the trial lines stay readable.
    with native_output_to(log):
        if base is None:
            conversion = convert_torch(model, example=job.example, **options)
        else:
            conversion = convert_source(load_source(str(base)), **options)
    accuracy = conversion["verification"].get("accuracy")
    if accuracy is None:
        raise UsageError(f"{path}: the conversion measured no accuracy (are the labels class indices?)")
    return path, float(accuracy)
