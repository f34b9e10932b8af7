"""Deep Compression's MNIST results, re-run: LeNet-300-100 and LeNet-5, fp32 -> compressed.

    python bench/deep_compression.py [--quick] [--only lenet300|lenet5] [--seed N]

Trains each fp32 baseline on the 60k MNIST training set plus `--jitter` copies shifted by up to two
pixels (the same data for every stage), compresses it with bench/recipes/<arch>.yaml
(prune -> distill -> cluster -> QAT), exports ONNX and measures every error on the 10k test set by
running the EXPORTED file in onnxruntime. The rate is fp32 bytes / Deep-Compression-format bytes
(sparse relative index + codebook + Huffman, see edgedeploy/compress/storage.py). With the [tf] extra
installed, TF-MOT's prune + cluster + PCQAT runs on the same architecture and data, and its final
weights go through the same size accounting. Prints one JSON document. `--quick` is a smoke run on a
few thousand samples with scaled-down epochs (its figures mean nothing).

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
from common import jittered, mnist, train_baseline

from edgedeploy.compress.pipeline import CompressionData, compress_model
from edgedeploy.compress.survival import export_onnx, onnx_accuracy
from edgedeploy.models.zoo import LeNet5, LeNet300
from edgedeploy.train import seed_everything

RECIPES = Path(__file__).resolve().parent / "recipes"
# Factory and fp32 baseline epochs (passes over the 60k + jittered training set).
ARCHS = {"lenet300": (LeNet300, 5), "lenet5": (LeNet5, 4)}
GOALS = {"lenet300": {"rate": 45.0, "error_pct": 1.60}, "lenet5": {"rate": 45.0, "error_pct": 0.80}}
# Issue 3: our rate >= 1.3x TF-MOT's at an error no higher than TF-MOT's.
TFMOT_RATE_RATIO = 1.3
TFMOT_COMPARISON = (
    "each tool at the same settings: TF-MOT gets our recipe's per-layer sparsities, the same number of "
    "distinct non-zero values per layer, centroid init, epochs (the distill stage's as plain "
    "fine-tuning), learning rates and weight decay, on the same data (bench/tfmot_pipeline.py)"
)


def scaled_recipe(arch: str, epoch_scale: float) -> list[dict[str, Any]]:
    stages = yaml.safe_load((RECIPES / f"{arch}.yaml").read_text())["stages"]
    for stage in stages:
        if "epochs" in stage:
            stage["epochs"] = stage["epochs"] * epoch_scale
    return stages


def run_arch(arch: str, data: CompressionData, epoch_scale: float, seed: int) -> dict[str, Any]:
    factory, baseline_epochs = ARCHS[arch]
    started = time.perf_counter()
    seed_everything(seed)
    model = factory()
    train_baseline(model, data.train_x, data.train_y, baseline_epochs * epoch_scale, seed)
    with tempfile.TemporaryDirectory(prefix="bench-dc-") as tmp:
        fp32_path = export_onnx(model, data.example(), Path(tmp) / f"{arch}-fp32.onnx")
        fp32_error = 100 * (1 - onnx_accuracy(fp32_path, data.eval_x, data.eval_y))
        onnx_path = Path(tmp) / f"{arch}-compressed.onnx"
        progress = lambda msg: print(f"  {arch} {msg}", file=sys.stderr)  # noqa: E731
        result = compress_model(
            model,
            scaled_recipe(arch, epoch_scale),
            data=data,
            seed=seed,
            progress=progress,
            onnx_path=onnx_path,
        )
        error = 100 * (1 - onnx_accuracy(onnx_path, data.eval_x, data.eval_y))
    s = result.summary
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
        "survived_in_onnx": s["survival"]["onnx"]["survived"],
        "stage_seconds": {r.stage: r.seconds for r in result.reports},
        "goal": {**goal, "met": s["rate"] >= goal["rate"] and error <= goal["error_pct"]},
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
    doc: dict[str, Any] = {}
    for arch in args.only or list(ARCHS):
        doc[arch] = run_arch(arch, data, epoch_scale, args.seed)
        # Logged at once: the TF-MOT comparison that follows can take long.
        print(f"  {arch} result: {json.dumps(doc[arch])}", file=sys.stderr)
        tfmot = tfmot_pcqat(arch, data, epoch_scale, args.seed)
        if tfmot is not None:
            doc[arch]["tfmot_pcqat"] = tfmot
            doc[arch]["rate_vs_tfmot"] = round(doc[arch]["rate"] / tfmot["rate"], 2)
            doc[arch]["tfmot_goal"] = {
                "comparison": TFMOT_COMPARISON,
                "rate_ratio": TFMOT_RATE_RATIO,
                "met": doc[arch]["rate"] >= TFMOT_RATE_RATIO * tfmot["rate"]
                and doc[arch]["error_pct"] <= tfmot["error_pct"],
            }
    doc["quick"] = args.quick
    doc["train_samples"] = len(train_y)
    doc["jitter_copies"] = args.jitter
    doc["epoch_scale"] = epoch_scale
    doc["test_samples"] = len(test_y)
    doc["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(doc, indent=2))


def tfmot_pcqat(arch: str, data: CompressionData, epoch_scale: float, seed: int) -> dict[str, Any] | None:
    """TF-MOT prune + cluster + PCQAT on the same model and data, or None without the [tf] extra."""
    if importlib.util.find_spec("tensorflow_model_optimization") is None:
        return None
    from tfmot_pipeline import run_tfmot

    return run_tfmot(arch, data, epoch_scale, seed, ARCHS[arch][1])


if __name__ == "__main__":
    main()
