"""Deep Compression's MNIST results, re-run: LeNet-300-100 and LeNet-5, fp32 -> compressed.

    python -m bench.deep_compression [--quick] [--only lenet300|lenet5] [--seed N]

Trains each fp32 baseline on the 60k MNIST training set plus `--jitter` copies shifted by up to two
pixels (the same data for every stage), compresses it with bench/recipes/<arch>.yaml (structured
pruning -> magnitude pruning while distilling -> distill -> cluster -> QAT; LeNet-300-100's teacher is
the LeNet-5 fp32 baseline, trained on the same data; LeNet-5 distils from itself), exports ONNX and
measures every error on the 10k test set by running the EXPORTED file in onnxruntime. The rate is
fp32 bytes / Deep-Compression-format bytes (sparse relative index + codebook + Huffman, see
edgedeploy/compress/storage.py). With the [tf] extra installed, TF-MOT's prune + cluster + PCQAT runs
twice on the same architecture and data: at its reference settings (bench/recipes/tfmot/<arch>.yaml,
the same-settings counterpart of our earlier unstructured recipes, the same total epochs as ours) and
with the same number of non-zero weights and shared values per layer as our result; its final weights
go through the same size accounting. Prints one JSON document. `--quick` is a smoke run on a few
thousand samples with scaled-down epochs (its figures mean nothing).

Goals (issue 3): LeNet-300-100 >= 45x at <= 1.60% error; LeNet-5 >= 45x at <= 0.80% error.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from bench.support.training import jittered, mnist, train_baseline
from edgedeploy.compress.layers import weight_layers
from edgedeploy.compress.pipeline import CompressionData, compress_model
from edgedeploy.compress.storage import model_storage
from edgedeploy.compress.survival import export_onnx, onnx_accuracy
from edgedeploy.models.zoo import LeNet5, LeNet300
from edgedeploy.train import seed_everything

RECIPES = Path(__file__).resolve().parent / "recipes"
# Factory and fp32 baseline epochs (passes over the 60k + jittered training set).
ARCHS = {"lenet300": (LeNet300, 5), "lenet5": (LeNet5, 4)}
# The distillation teacher's architecture (its fp32 baseline); absent: the input model teaches.
TEACHERS = {"lenet300": "lenet5"}
GOALS = {"lenet300": {"rate": 45.0, "error_pct": 1.60}, "lenet5": {"rate": 45.0, "error_pct": 0.80}}
# Issue 3: our rate >= 1.3x TF-MOT's at an error no higher than TF-MOT's.
TFMOT_RATE_RATIO = 1.3
TFMOT_COMPARISONS = {
    "tfmot_pcqat": "TF-MOT at its reference settings (bench/recipes/tfmot/<arch>.yaml: per-layer sparsities, "
    "shared values, init, learning rates, weight decay, and as many training epochs as our recipe), "
    "on the same data (bench/support/tfmot.py)",
    "tfmot_same_nonzeros": "TF-MOT with the reference settings but our result's number of non-zero weights "
    "and of shared values in every layer (counted against the layer's original shape)",
}
# Which TF-MOT run the ">= 1.3x at equal or lower error" goal is judged against, and why.
TFMOT_GOAL_AGAINST = (
    "TF-MOT at its reference settings: those tuned for a prune -> cluster -> PCQAT pipeline like its own "
    "(stop 10's same-settings comparison); tfmot_same_nonzeros, beside it, is TF-MOT at our result's "
    "non-zero weights and shared values per layer, for the rate gap at equal sparsity"
)


def scaled_recipe(arch: str, epoch_scale: float) -> list[dict[str, Any]]:
    stages = yaml.safe_load((RECIPES / f"{arch}.yaml").read_text())["stages"]
    for stage in stages:
        if "epochs" in stage:
            stage["epochs"] = stage["epochs"] * epoch_scale
    return stages


class Baselines:
    """fp32 baselines trained once per run: LeNet-5's is also LeNet-300-100's teacher."""

    def __init__(self, data: CompressionData, epoch_scale: float, seed: int) -> None:
        self.data, self.epoch_scale, self.seed = data, epoch_scale, seed
        self.models: dict[str, nn.Module] = {}
        self.seconds: dict[str, float] = {}
        self.errors: dict[str, float] = {}

    def get(self, arch: str) -> nn.Module:
        if arch not in self.models:
            started = time.perf_counter()
            factory, epochs = ARCHS[arch]
            seed_everything(self.seed)
            model = factory()
            train_baseline(model, self.data.train_x, self.data.train_y, epochs * self.epoch_scale, self.seed)
            self.models[arch] = model.eval()
            self.seconds[arch] = time.perf_counter() - started
        return self.models[arch]

    def error_pct(self, arch: str) -> float:
        """Test error of the baseline, from its exported ONNX file."""
        if arch not in self.errors:
            with tempfile.TemporaryDirectory(prefix="bench-dc-") as tmp:
                path = export_onnx(self.get(arch), self.data.example(), Path(tmp) / f"{arch}-fp32.onnx")
                self.errors[arch] = 100 * (1 - onnx_accuracy(path, self.data.eval_x, self.data.eval_y))
        return self.errors[arch]


def run_arch(
    arch: str, data: CompressionData, baselines: Baselines, epoch_scale: float, seed: int
) -> dict[str, Any]:
    started = time.perf_counter()
    model = baselines.get(arch)
    teacher_arch = TEACHERS.get(arch)
    teacher = baselines.get(teacher_arch) if teacher_arch else None
    fp32_error = baselines.error_pct(arch)
    with tempfile.TemporaryDirectory(prefix="bench-dc-") as tmp:
        onnx_path = Path(tmp) / f"{arch}-compressed.onnx"
        progress = lambda msg: print(f"  {arch} {msg}", file=sys.stderr)  # noqa: E731
        result = compress_model(
            model,
            scaled_recipe(arch, epoch_scale),
            data=data,
            seed=seed,
            progress=progress,
            teacher=teacher,
            onnx_path=onnx_path,
        )
        error = 100 * (1 - onnx_accuracy(onnx_path, data.eval_x, data.eval_y))
    s = result.summary
    original_sizes = {name: layer.weight.numel() for name, layer in weight_layers(model).items()}
    goal = GOALS[arch]
    return {
        "fp32_error_pct": round(fp32_error, 2),
        "error_pct": round(error, 2),
        "rate": round(s["rate"], 2),
        "rate_definition": s["rate_definition"],
        "fp32_bytes": s["fp32_bytes"],
        "deep_compression_bytes": s["deep_compression_bytes"],
        "deployable_bytes": s["deployable_bytes"],
        "zipped_bytes": s["zipped_bytes"],
        "weight_sparsity": round(s["weight_sparsity"], 4),
        "sparsity_per_layer": s["sparsity_per_layer"],
        "unique_per_layer": s["unique_per_layer"],
        "nonzeros_per_layer": {layer.name: layer.nonzeros for layer in model_storage(result.model).layers},
        "weights_per_layer_before": original_sizes,
        "shape_per_layer": {
            name: list(layer.weight.shape) for name, layer in weight_layers(result.model).items()
        },
        "teacher": {"arch": teacher_arch, "error_pct": round(baselines.error_pct(teacher_arch), 2)}
        if teacher_arch
        else "input model",
        "survived_in_onnx": s["survival"]["onnx"]["survived"],
        "stage_seconds": [[r.stage, r.seconds] for r in result.reports],
        "goal": {**goal, "met": s["rate"] >= goal["rate"] and error <= goal["error_pct"]},
        "baseline_seconds": round(baselines.seconds.get(arch, 0.0), 1),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Tiny smoke run (figures mean nothing).")
    parser.add_argument("--only", choices=sorted(ARCHS), action="append", help="Run only this model.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epoch-scale", type=float, default=1.0, help="Multiply every epoch count.")
    parser.add_argument(
        "--jitter", type=int, default=1, help="Copies of the training set shifted by <= 2 px."
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)."
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    train_x, train_y, test_x, test_y = mnist(
        600 if args.quick else None, 300 if args.quick else None, args.seed
    )
    train_x, train_y = jittered(train_x, train_y, args.jitter, args.seed)
    data = CompressionData(train_x, train_y, test_x, test_y)
    epoch_scale = args.epoch_scale * (0.1 if args.quick else 1.0)
    baselines = Baselines(data, epoch_scale, args.seed)
    doc: dict[str, Any] = {}
    for arch in args.only or list(ARCHS):
        doc[arch] = result = run_arch(arch, data, baselines, epoch_scale, args.seed)
        # Logged at once: the TF-MOT comparisons that follow can take long.
        print(f"  {arch} result: {json.dumps(result)}", file=sys.stderr)
        if importlib.util.find_spec("tensorflow_model_optimization") is None:
            continue
        reference = run_tfmot_for(arch, data, epoch_scale, args.seed, None)
        overrides = same_nonzeros(arch, result)
        if same_settings(arch, overrides):
            # Our result already has the reference settings' non-zeros and shared values per layer.
            same = {**reference, "same_run_as": "tfmot_pcqat"}
        else:
            same = run_tfmot_for(arch, data, epoch_scale, args.seed, overrides)
        for key, tfmot in (("tfmot_pcqat", reference), ("tfmot_same_nonzeros", same)):
            result[key] = {
                **tfmot,
                "comparison": TFMOT_COMPARISONS[key],
                "rate_vs_tfmot": round(result["rate"] / tfmot["rate"], 2),
                "error_pct_vs_tfmot": round(result["error_pct"] - tfmot["error_pct"], 2),
            }
            print(f"  {arch} {key}: {json.dumps(result[key])}", file=sys.stderr)
        result["tfmot_goal"] = {
            "rate_ratio": TFMOT_RATE_RATIO,
            "against": "tfmot_pcqat",
            "why": TFMOT_GOAL_AGAINST,
            "met": result["rate"] >= TFMOT_RATE_RATIO * reference["rate"]
            and result["error_pct"] <= reference["error_pct"],
        }
    doc["quick"] = args.quick
    doc["train_samples"] = len(train_y)
    doc["jitter_copies"] = args.jitter
    doc["epoch_scale"] = epoch_scale
    doc["test_samples"] = len(test_y)
    doc["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(doc, indent=2))


def same_nonzeros(arch: str, result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """TF-MOT settings with our result's non-zero weights and shared values in every layer: its
    sparsity is counted against the layer's original (uncut) shape."""
    ours = yaml.safe_load((RECIPES / f"{arch}.yaml").read_text())["stages"]
    cluster = next(stage for stage in ours if stage["stage"] == "cluster")
    before = result["weights_per_layer_before"]
    return {
        "prune": {
            "layer_sparsity": {
                name: round(1 - result["nonzeros_per_layer"][name] / before[name], 4) for name in before
            }
        },
        "cluster": {
            "layer_clusters": {
                name: cluster.get("layer_clusters", {}).get(name, cluster["clusters"]) for name in before
            }
        },
    }


def same_settings(arch: str, overrides: dict[str, dict[str, Any]]) -> bool:
    """Whether `overrides` give every layer the TF-MOT reference recipe's sparsity and clusters."""
    reference = {
        s["stage"]: s for s in yaml.safe_load((RECIPES / "tfmot" / f"{arch}.yaml").read_text())["stages"]
    }
    for stage, key, default in [
        ("prune", "layer_sparsity", "sparsity"),
        ("cluster", "layer_clusters", "clusters"),
    ]:
        for name, value in overrides[stage][key].items():
            ref = reference[stage].get(key, {}).get(name, reference[stage][default])
            if abs(value - ref) > 1e-3:
                return False
    return True


def run_tfmot_for(
    arch: str, data: CompressionData, epoch_scale: float, seed: int, overrides: dict[str, Any] | None
) -> dict[str, Any]:
    """TF-MOT prune + cluster + PCQAT on the same model and data (needs the [tf] extra)."""
    from bench.support.tfmot import run_tfmot

    return run_tfmot(arch, data, epoch_scale, seed, ARCHS[arch][1], overrides)


if __name__ == "__main__":
    main()
