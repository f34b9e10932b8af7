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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedeploy.errors import UsageError

OUTPUT_FILES = ("model.onnx", "model.pt", "model.pt2", "report.json")


def run(
    *,
    model: str,
    recipe: Path | None,
    output: Path,
    arch: str | None,
    dataset: str,
    train_samples: int | None,
    seed: int,
    repeats: int,
    show_progress: bool,
    teacher: str | None = None,
    teacher_arch: str | None = None,
    data_options: DataOptions | None = None,
) -> dict[str, Any]:
    from edgedeploy.compress.pipeline import DEFAULT_RECIPE, load_recipe

    # Everything the user can get wrong is checked before any training starts.
    if repeats < 1:
        raise UsageError("--repeats must be >= 1")
    if train_samples is not None and train_samples < 1:
        raise UsageError("--train-samples must be >= 1")
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output {output} exists and is not a directory")
    load_recipe(recipe)
    torch_model = load_torch_model(model, arch)
    teacher_model = (
        load_torch_model(teacher, teacher_arch, what="teacher", arch_option="--teacher-arch")
        if teacher
        else None
    )
    data = load_compression_data(dataset, data_options or DataOptions(), train_samples, seed)

    from edgedeploy.compress.pipeline import compress_model

    say = _printer() if show_progress else None
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        runs = []
        for repeat in range(repeats):
            if say and repeats > 1:
                say(f"run {repeat + 1}/{repeats} (seed {seed + repeat})")
            onnx_path = staging / "model.onnx" if repeat == 0 else None
            runs.append(
                compress_model(
                    torch_model,
                    recipe,
                    data=data,
                    seed=seed + repeat,
                    progress=say,
                    teacher=teacher_model,
                    onnx_path=onnx_path,
                )
            )
        first = runs[0]
        accuracies = [r.summary["accuracy_after"] for r in runs]
        result: dict[str, Any] = {
            "model": model,
            "recipe": str(recipe or DEFAULT_RECIPE),
            "teacher": teacher,
            "dataset": dataset,
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
        }
        import torch

        torch.save(first.model, staging / "model.pt")
        example = data.example()
        torch.export.save(torch.export.export(first.model.eval(), (example,)), str(staging / "model.pt2"))
        (staging / "report.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        output.mkdir(exist_ok=True)
        for name in OUTPUT_FILES:
            os.replace(staging / name, output / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


@dataclass(frozen=True)
class DataOptions:
    """How `--data` is read (see edgedeploy.data.sources.load_data)."""

    batch_size: int = 128
    workers: int = 0
    input_size: tuple[int, int] | None = None
    channels: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    val_fraction: float = 0.1


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


def load_torch_model(spec: str, arch: str | None, what: str = "model", arch_option: str = "--arch") -> Any:
    """An eager nn.Module from `module:factory`, a pickled module file, or a state_dict file + its
    architecture (`arch`, given by the user as `arch_option`); errors name the file as `what`."""
    import torch
    from torch import nn

    from edgedeploy.models.loading import build_from_factory, build_from_state_dict

    path = Path(spec)
    if not path.exists():
        if ":" in spec:
            return build_from_factory(spec)
        raise UsageError(f"{what} {spec}: no such file (give a file or module:factory)")
    if path.is_dir():
        raise UsageError(f"{what} {spec}: is a directory, not a torch model file")
    if path.suffix == ".pt2":
        raise UsageError(
            f"{what} {spec}: a .pt2 ExportedProgram has no Linear/Conv modules left to compress; "
            f"give module:factory or a state_dict file with {arch_option}"
        )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch.load raises many types for foreign files
        raise UsageError(f"{what} {spec}: not a torch model file ({type(err).__name__})") from err
    if isinstance(loaded, torch.jit.ScriptModule):
        raise UsageError(
            f"{what} {spec}: TorchScript has no Linear/Conv modules to compress; "
            f"give module:factory or a state_dict file with {arch_option}"
        )
    if isinstance(loaded, nn.Module):
        return loaded
    if isinstance(loaded, dict):
        state = loaded.get("state_dict", loaded.get("model", loaded))
        if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
            return build_from_state_dict(f"{what} {spec}", state, arch, arch_option)
    raise UsageError(f"{what} {spec}: holds a {type(loaded).__name__}, not a torch module or state_dict")


def _printer() -> Any:
    from rich.console import Console

    console = Console(stderr=True)
    return lambda message: console.print(f"[dim]{message}[/dim]", highlight=False)


def print_report(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"compress {result['model']}")
    for column in ("stage", "seconds", "accuracy", "params", "non-zeros", "unique (max)", "DC bytes"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for report in result["stages"]:
        table.add_row(
            report["stage"],
            f"{report['seconds']:.1f}",
            f"{_acc(report['accuracy_before'])} -> {_acc(report['accuracy_after'])}",
            f"{report['params_after']:,}",
            f"{report['nonzeros_after']:,}",
            str(max((layer["unique"] for layer in report["layers"]), default=0)),
            f"{report['deep_compression_bytes']:,}",
        )
    console.print(table)
    s = result["summary"]
    console.print(
        f"fp32 {s['fp32_bytes']:,} B -> Deep-Compression format {s['deep_compression_bytes']:,} B: "
        f"[bold]{s['rate']:.1f}x[/bold] ({s['rate_definition']})"
    )
    console.print(
        f"deployable ONNX {s['deployable_bytes']:,} B, zipped {s['zipped_bytes']:,} B "
        f"({s['zipped_rate']:.1f}x); weight sparsity {s['weight_sparsity']:.1%}"
    )
    console.print(f"exported ONNX: {s['survival']['onnx']['verdict']}")
    r = result["repeats"]
    if r["n"] > 1 and r["accuracy_mean"] is not None:
        console.print(
            f"final accuracy over {r['n']} runs: {r['accuracy_mean']:.4f} +- {r['accuracy_std']:.4f}"
        )
    else:
        console.print(f"accuracy {_acc(s['accuracy_before'])} -> {_acc(s['accuracy_after'])}")
    console.print("files: " + ", ".join(result["files"].values()))


def _acc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
