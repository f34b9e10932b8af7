"""Run a recipe of compression stages on a model and account for what each stage did.

data = CompressionData(train_x, train_y, eval_x, eval_y)
result = compress_model(model, recipe=None, data=data, seed=0)
result.model    # a plain nn.Module: sparsity, clusters and quantization baked into its weights
result.reports  # one StageReport per stage
result.summary  # sizes (fp32, deployable ONNX, zipped, Deep-Compression format), rate, accuracy
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from edgedeploy.compress.cluster import ClusterStage
from edgedeploy.compress.constraints import Constraints
from edgedeploy.compress.distill import DistillStage
from edgedeploy.compress.filereport import onnx_file_accuracy, onnx_file_storage
from edgedeploy.compress.lowrank import LowRankStage
from edgedeploy.compress.prune import PruneStage
from edgedeploy.compress.quantize import QATStage, QuantizeStage
from edgedeploy.compress.stage import CompressionData, Stage, StageContext, StageReport
from edgedeploy.compress.stats import model_stats
from edgedeploy.compress.storage import model_storage
from edgedeploy.compress.structured import StructuredPruneStage
from edgedeploy.compress.survival import check_survival, export_onnx, onnx_weight_tensors
from edgedeploy.errors import UsageError
from edgedeploy.fileinfo import zipped_size
from edgedeploy.train import LossFn, seed_everything

__all__ = [
    "CompressionData",
    "CompressionResult",
    "compress_model",
    "load_recipe",
    "STAGES",
    "DEFAULT_RECIPE",
]

STAGES: dict[str, type[Stage]] = {
    cls.name: cls
    for cls in (
        PruneStage,
        StructuredPruneStage,
        LowRankStage,
        DistillStage,
        ClusterStage,
        QuantizeStage,
        QATStage,
    )
}
DEFAULT_RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "default.yaml"

RecipeSpec = Path | str | list[dict[str, Any]] | None


@dataclass
class CompressionResult:
    model: nn.Module
    reports: list[StageReport]
    summary: dict[str, Any]


def load_recipe(recipe: RecipeSpec) -> list[Stage]:
    """Stages from a YAML file (a list, or a mapping with `stages:`), or from a list of dicts, each
    `{"stage": name, **params}`. None is the default recipe. Bad recipes raise UsageError."""
    source = "recipe"
    if recipe is None or isinstance(recipe, str | Path):
        path = Path(recipe) if recipe is not None else DEFAULT_RECIPE
        source = str(path)
        try:
            doc = yaml.safe_load(path.read_text())
        except OSError as err:
            raise UsageError(f"recipe {path}: cannot read it ({err.strerror or err})") from err
        except yaml.YAMLError as err:
            raise UsageError(f"recipe {path}: not valid YAML ({str(err).splitlines()[0]})") from err
        entries = doc.get("stages") if isinstance(doc, dict) else doc
    else:
        entries = recipe
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{source}: expected a non-empty list of stages (or a mapping with 'stages:')")
    stages = []
    for position, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("stage"), str):
            raise UsageError(f"{source}: stage {position} must be a mapping with a 'stage:' name")
        params = {key: value for key, value in entry.items() if key != "stage"}
        cls = STAGES.get(entry["stage"])
        if cls is None:
            raise UsageError(
                f"{source}: unknown stage {entry['stage']!r} (known: {', '.join(sorted(STAGES))})"
            )
        stages.append(cls.from_params(params))
    return stages


def compress_model(
    model: nn.Module,
    recipe: RecipeSpec = None,
    *,
    data: CompressionData,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    teacher: nn.Module | None = None,
    onnx_path: Path | None = None,
    stage_dir: Path | None = None,
) -> CompressionResult:
    """Apply the recipe's stages in order to a copy of `model` (the input is left untouched).

    `onnx_path`, when given, keeps the exported ONNX file that the summary's sizes and the survival
    check were measured on. Each stage's model is exported to ONNX too, and its report's file size,
    Deep-Compression size and accuracy are measured on that file; `stage_dir`, when given, keeps
    those files (`00-input.onnx`, `01-<stage>.onnx`, ...).
    """
    if not isinstance(model, nn.Module):
        raise UsageError(f"expected a torch nn.Module, got {type(model).__name__}")
    stages = load_recipe(recipe)
    if not data.labelled:
        check_unlabelled(stages)
    say = progress or (lambda _msg: None)
    seed_everything(seed)
    started = time.perf_counter()
    input_model = copy.deepcopy(model).eval()
    for param in input_model.parameters():
        param.requires_grad_(False)
    work = copy.deepcopy(model).float()
    for param in work.parameters():
        param.requires_grad_(True)
    example = data.example()
    logits = check_classifier(work, data)
    if teacher is not None:
        teacher = teacher.eval()
        teacher_logits = check_classifier(teacher, data, "the teacher")
        if teacher_logits != logits:
            raise UsageError(f"the teacher gives {teacher_logits} logits per input, the model {logits}")
    constraints = Constraints()
    files = FileMeasure(data, stage_dir)
    input_file = files.measure(input_model, example, "00-input")
    fp32_bytes = sum(p.numel() for p in model.parameters()) * 4
    accuracy_before = data.accuracy(work)
    say(f"input model: accuracy {_fmt(accuracy_before)}, {fp32_bytes / 1024:.1f} KiB fp32")
    reports = []
    quantization: dict[str, Any] = {}
    carried_loss: LossFn | None = None  # a distill stage's loss that later stages keep using
    current_accuracy = accuracy_before
    for index, stage in enumerate(stages):
        ctx = StageContext(
            data=data,
            seed=seed + 1000 * (index + 1),
            constraints=constraints,
            input_model=input_model,
            teacher=teacher,
            progress=lambda msg, i=index, s=stage: say(f"[{i + 1}/{len(stages)}] {s.name}: {msg}"),
            quantization=quantization,
            loss_fn=carried_loss,
        )
        params_before = sum(p.numel() for p in work.parameters())
        stage_start = time.perf_counter()
        ctx.progress("start")
        work = stage.apply(work, ctx)
        carried_loss = ctx.loss_fn
        seconds = time.perf_counter() - stage_start
        accuracy_after = data.accuracy(work)
        stats = model_stats(work, example)
        reports.append(
            StageReport(
                stage=stage.name,
                params=stage.params(),
                seconds=round(seconds, 2),
                accuracy_before=current_accuracy,
                accuracy_after=accuracy_after,
                params_before=params_before,
                params_after=stats.params,
                nonzeros_after=stats.nonzeros,
                macs_after=stats.macs,
                nonzero_macs_after=stats.nonzero_macs,
                fp32_bytes=stats.params * 4,
                deep_compression_bytes=model_storage(work).total_bytes,
                layers=[layer.to_dict() for layer in stats.layers],
                details=ctx.notes,
                **files.measure(work, example, f"{index + 1:02d}-{stage.name}"),
            )
        )
        ctx.progress(f"done in {seconds:.1f}s, accuracy {_fmt(current_accuracy)} -> {_fmt(accuracy_after)}")
        current_accuracy = accuracy_after
    work.eval()
    for param in work.parameters():
        param.requires_grad_(False)
    summary = summarize(
        work, example, fp32_bytes, accuracy_before, current_accuracy, quantization, onnx_path, data
    )
    summary["input_file"] = input_file
    summary["seconds"] = round(time.perf_counter() - started, 2)
    files.close()
    say(
        f"done: {summary['rate']:.1f}x smaller ({summary['rate_definition']}), "
        f"accuracy {_fmt(accuracy_before)} -> {_fmt(current_accuracy)}"
    )
    return CompressionResult(model=work, reports=reports, summary=summary)


def check_unlabelled(stages: list[Stage]) -> None:
    """Unlabelled data trains only through a teacher: every stage that fine-tunes must come after a
    distill stage with alpha 1 and carry (or be one with alpha 1). Checked before any training."""
    carried = False
    for stage in stages:
        if isinstance(stage, DistillStage):
            if stage.alpha != 1:
                raise UsageError(
                    f"stage 'distill': alpha {stage.alpha} weighs in the labels, but the data is "
                    "unlabelled: use alpha: 1"
                )
            carried = stage.carry
        elif getattr(stage, "epochs", 0) > 0 and not carried:
            raise UsageError(
                f"stage {stage.name!r}: the data has no labels to fine-tune on; put a distill stage with "
                "alpha: 1 and carry: true before it, give it epochs: 0, or give labelled data"
            )


def _fmt(value: float | None) -> str:
    return "n/a (unlabelled data)" if value is None else f"{value:.4f}"


def check_classifier(model: nn.Module, data: CompressionData, what: str = "the model") -> int:
    """The model must take the data's inputs and give one logit per class; returns its logit count."""
    try:
        with torch.no_grad():
            out = model.eval()(data.example())
    except Exception as err:  # noqa: BLE001 - any failure here means the model does not fit the data
        shape = list(data.splits.input_shape)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(
            f"{what} cannot run on inputs of shape {shape} from {data.splits.source} ({first}); "
            "resize with --input-size H,W or set --channels"
        ) from err
    classes = data.splits.num_classes or 1
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] < classes:
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UsageError(f"{what} must output [batch, {classes}] class logits, got {got}")
    return int(out.shape[1])


def summarize(
    model: nn.Module,
    example: torch.Tensor,
    fp32_bytes: int,
    accuracy_before: float | None,
    accuracy_after: float | None,
    quantization: dict[str, Any],
    onnx_path: Path | None,
    data: CompressionData,
) -> dict[str, Any]:
    stats = model_stats(model, example)
    with tempfile.TemporaryDirectory(prefix="edgedeploy-compress-") as tmp:
        path = onnx_path or Path(tmp) / "model.onnx"
        export_onnx(model, example, path)
        deployable_bytes = path.stat().st_size
        zipped_bytes = zipped_size(path)
        exported = onnx_weight_tensors(path)
        survival = check_survival(model, exported, path)
        # Every rate is measured on the file that deploys: an exporter may change the weights (it
        # folds BatchNorm into convolutions), so the torch model's counts are not the file's.
        storage = onnx_file_storage(path)
        file_accuracy = onnx_file_accuracy(path, data)
    weights = sum(layer.params for layer in stats.layers)
    weight_nonzeros = sum(layer.nonzeros for layer in stats.layers)
    return {
        "fp32_bytes": fp32_bytes,
        "deployable_bytes": deployable_bytes,
        "deployable_format": "onnx (fp32 tensors holding the compressed values)",
        "zipped_bytes": zipped_bytes,
        "deep_compression_bytes": storage.total_bytes,
        "rate": fp32_bytes / storage.total_bytes,
        "rate_definition": "fp32 bytes of the input model / Deep-Compression-format bytes of the "
        "exported ONNX file's weights",
        "accuracy_exported_file": file_accuracy,
        "zipped_rate": fp32_bytes / zipped_bytes,
        "accuracy_before": accuracy_before,
        "accuracy_after": accuracy_after,
        "params": stats.params,
        "nonzeros": stats.nonzeros,
        "weight_sparsity": 1 - weight_nonzeros / weights if weights else 0.0,
        "macs": stats.macs,
        "nonzero_macs": stats.nonzero_macs,
        "unique_per_layer": {layer.name: layer.unique for layer in stats.layers},
        "unique_per_exported_tensor": {t.name: t.unique for t in exported},
        "sparsity_per_layer": {layer.name: round(layer.sparsity, 4) for layer in stats.layers},
        "storage": storage.to_dict(),
        "quantization": quantization,
        "survival": {"onnx": survival},
    }


class FileMeasure:
    """Exports a model to ONNX and measures the file: size, Deep-Compression size, accuracy."""

    def __init__(self, data: CompressionData, keep_in: Path | None) -> None:
        self.data = data
        self._tmp = None if keep_in else tempfile.TemporaryDirectory(prefix="edgedeploy-stages-")
        self.folder = keep_in or Path(self._tmp.name)  # type: ignore[union-attr]
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep = keep_in is not None

    def measure(self, model: nn.Module, example: torch.Tensor, name: str) -> dict[str, Any]:
        path = self.folder / f"{name}.onnx"
        export_onnx(copy.deepcopy(model).eval(), example, path)
        return {
            "file": str(path) if self.keep else None,
            "file_bytes": path.stat().st_size,
            "file_deep_compression_bytes": onnx_file_storage(path).total_bytes,
            "file_accuracy": onnx_file_accuracy(path, self.data),
        }

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
