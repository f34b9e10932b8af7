"""`edgedeploy compress`: load a torch model and data, run a recipe (N times), write the results.

Outputs (written to a temporary directory next to the output first, then moved in, so a failure
leaves no partial files): `model.onnx` (fp32 ONNX holding the sparse, clustered, int8-representable
weights), `model.pt` (the compressed torch module, `torch.save`), `model.pt2` (the same as a
`torch.export` program: loadable without unpickling code, and the input `edgedeploy convert` takes
for TFLite), `report.json` (this result).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.errors import UsageError
from edgedeploy.options import CompressOptions, DataOptions
from edgedeploy.results import CompressResult

OUTPUT_FILES = ("model.onnx", "model.pt", "model.pt2", "report.json", "calibration.npy")
CALIBRATION_BYTES = 16 * 2**20
"""Budget of calibration.npy: training inputs for `convert --precision int8 --calibration`."""
STAGES_DIR = "stages"
"""Each stage's model as ONNX (00-input.onnx, 01-<stage>.onnx, ...): what the per-stage sizes,
accuracies and latencies of the report were measured on."""


def run(model: str, options: CompressOptions | None = None) -> CompressResult:
    """Compress `model` (module:factory or a torch file) by `options.recipe`; returns the result,
    whose document is report.json."""
    from edgedeploy.extras import MNIST_PACKAGES, require_compress

    require_compress("compress", ("torch", "onnxscript", *MNIST_PACKAGES))
    from edgedeploy.compress.pipeline import DEFAULT_RECIPE, load_recipe
    from edgedeploy.models.loading import load_torch_model

    opts = options or CompressOptions()
    recipe, output, seed, repeats, teacher = opts.recipe, opts.output, opts.seed, opts.repeats, opts.teacher
    # Everything the user can get wrong is checked before any training starts.
    if repeats < 1:
        raise UsageError("--repeats must be >= 1")
    if opts.train_samples is not None and opts.train_samples < 1:
        raise UsageError("--train-samples must be >= 1")
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output {output} exists and is not a directory")
    load_recipe(recipe)
    torch_model = load_torch_model(model, opts.arch)
    teacher_model = (
        load_torch_model(teacher, opts.teacher_arch, what="teacher", arch_option="--teacher-arch")
        if teacher
        else None
    )
    data = load_compression_data(opts.data, opts, opts.train_samples, seed)

    from edgedeploy.compress.pipeline import compress_model
    from edgedeploy.present import dim_lines

    say = dim_lines() if opts.progress else None
    warnings = []
    if data.splits.mean is None and not data.splits.source.endswith("(module:factory)"):
        # Whether a model expects normalised inputs cannot be read off its weights: say what it got.
        warnings.append(
            "inputs were [0, 1] pixels, not normalised: if the model was trained on normalised inputs "
            "(e.g. torchvision's Normalize), give the same --mean/--std"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        runs = []
        for repeat in range(repeats):
            if say and repeats > 1:
                say(f"run {repeat + 1}/{repeats} (seed {seed + repeat})")
            onnx_path = staging / "model.onnx" if repeat == 0 else None
            stage_dir = staging / STAGES_DIR if repeat == 0 else None
            runs.append(
                compress_model(
                    torch_model,
                    recipe,
                    data=data,
                    seed=seed + repeat,
                    progress=say,
                    teacher=teacher_model,
                    onnx_path=onnx_path,
                    stage_dir=stage_dir,
                )
            )
        first = runs[0]
        for report in first.reports:
            emptied = (report.details or {}).get("emptied_layers")
            if emptied:
                warnings.append(
                    f"stage {report.stage}: layer(s) {', '.join(emptied)} lost >= 99% of their weights "
                    "(a global ranking compares weight scales across layers): give them layer_sparsity "
                    "or use scope: layer"
                )
        accuracies = [r.summary["accuracy_after"] for r in runs]
        result: dict[str, Any] = {
            "model": model,
            "recipe": str(recipe or DEFAULT_RECIPE),
            "teacher": teacher,
            "dataset": opts.data,
            "data": data.splits.describe(),
            "train_samples": data.train_samples,
            "eval_samples": data.eval_samples,
            "seed": seed,
            "stages": [report.to_dict() for report in first.reports],
            "summary": first.summary,
            "repeats": {
                "n": repeats,
                "seeds": [seed + i for i in range(repeats)],
                "accuracy": accuracies,
                "accuracy_mean": statistics.fmean(accuracies) if data.labelled else None,
                "accuracy_std": statistics.stdev(accuracies) if repeats > 1 and data.labelled else 0.0,
            },
            "files": {name: str(output / name) for name in OUTPUT_FILES},
            "warnings": warnings,
        }
        # The stage files move to output/stages/ with the rest.
        for entry in [*result["stages"], result["summary"]["input_file"]]:
            if entry.get("file"):
                entry["file"] = str(output / STAGES_DIR / Path(entry["file"]).name)
        if opts.latency_target:
            if say:
                say(f"timing the input and each stage's ONNX file on target {opts.latency_target!r}")
            result["latency"] = time_stage_files(
                staging / STAGES_DIR, result, opts.latency_target, opts.inventory, opts.trust_new
            )
        import torch

        torch.save(first.model, staging / "model.pt")
        example = data.example()
        torch.export.save(torch.export.export(first.model.eval(), (example,)), str(staging / "model.pt2"))
        sample_bytes = 4 * max(1, int(example.numel()))
        calibration_n = max(8, min(256, CALIBRATION_BYTES // sample_bytes))
        np.save(staging / "calibration.npy", data.train_inputs(calibration_n).numpy())
        (staging / "report.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        output.mkdir(exist_ok=True)
        for name in OUTPUT_FILES:
            os.replace(staging / name, output / name)
        if (output / STAGES_DIR).is_dir():
            shutil.rmtree(output / STAGES_DIR)  # the stage files of an earlier run into this output
        os.replace(staging / STAGES_DIR, output / STAGES_DIR)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return CompressResult.from_doc(result)


def time_stage_files(
    folder: Path, result: dict[str, Any], target_name: str, inventory: Path | None, trust_new: bool
) -> dict[str, Any]:
    """p50 latency of the input's and each stage's ONNX file on the target, by the stand-alone
    runner (as `convert --int8-format auto` times its candidates: in turns, same threads); fills
    each stage's `latency_ms_p50` and returns where and how it was timed."""
    from edgedeploy.convert.timing import TargetTimer
    from edgedeploy.deploy.inventory import load_inventory
    from edgedeploy.deploy.transports.connect import open_transport

    files = {path.stem: path for path in sorted(folder.glob("*.onnx"))}
    target = load_inventory(inventory).get(target_name)
    with open_transport(target, trust_new=trust_new) as transport:
        timed = TargetTimer(transport, target, remote_prefix="compress-").latencies(files, None, None)  # type: ignore[arg-type]
    p50 = timed["p50_ms"]
    base = p50.get("00-input")
    for index, stage in enumerate(result["stages"], 1):
        stage["latency_ms_p50"] = p50.get(f"{index:02d}-{stage['stage']}")
    return {
        "input_ms_p50": base,
        "final_ms_p50": result["stages"][-1]["latency_ms_p50"] if result["stages"] else base,
        "timed_on": timed["timed_on"],
        "where": timed["where"],
    }


def load_compression_data(spec: str, options: DataOptions, train_samples: int | None, seed: int) -> Any:
    from edgedeploy.compress.pipeline import CompressionData
    from edgedeploy.data.sources import load_data

    splits = load_data(
        spec,
        batch_size=options.batch_size,
        workers=options.workers,
        input_size=options.input_size,
        channels=options.channels,
        mean=options.mean,
        std=options.std,
        val_fraction=options.val_fraction,
        train_samples=train_samples,
        seed=seed,
    )
    return CompressionData.from_splits(splits)


def parse_floats(text: str | None, option: str) -> tuple[float, ...] | None:
    """`0.485,0.456,0.406` -> a tuple; a value that is not a number is a UsageError naming `option`."""
    if text is None:
        return None
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError as err:
        raise UsageError(
            f"{option} {text!r}: give numbers separated by commas (e.g. 0.5 or 0.5,0.5,0.5)"
        ) from err
    return values


def parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.replace("x", ",").split(",")
    try:
        size = tuple(int(part) for part in parts)
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise UsageError(f"--input-size {text!r}: give H,W in pixels (e.g. 224,224)")
    return size[0], size[1]
