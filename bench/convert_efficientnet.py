"""Convert EfficientNet-Lite0 (offline ImageNet weights) to every output kind, verify each, and measure
sizes, agreement with the torch model, conversion times and int8 ONNX latency (QDQ S8S8 vs QOperator
U8S8 vs dynamic int8 vs fp32, onnxruntime at 1 and 2 threads). Prints one JSON document.

    python -m bench.convert_efficientnet            # EfficientNet-Lite0, 224x224 (several minutes)
    python -m bench.convert_efficientnet --quick    # LeNet-5 on MNIST digits (under a minute)

No ImageNet images ship offline, so EfficientNet is verified on smooth synthetic images in the model's
input range [-1, 1] (low-frequency noise): agreement figures are between torch and the converted
model, not accuracy. Numbers on a shared, busy CPU are noisy: the latency rows are interleaved medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.support.photos import smooth_images

KINDS = [
    ("onnx", "fp32", "auto"),
    ("onnx", "fp16", "auto"),
    ("onnx", "int8-dynamic", "auto"),
    ("onnx", "int8", "qdq"),
    ("onnx", "int8", "qoperator"),
    ("onnx", "int8", "auto"),
    ("tflite", "fp32", "auto"),
    ("tflite", "fp16", "auto"),
    ("tflite", "int8-dynamic", "auto"),
    ("tflite", "int8", "auto"),
]


def workload(quick: bool, samples: int) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray | None, str]:
    """(model, verification inputs, calibration inputs, labels, description)."""
    from edgedeploy.models import zoo

    if quick:
        from edgedeploy.data.mnist import load_mnist
        from edgedeploy.train import seed_everything, train

        seed_everything(0)
        train_split, test_split = load_mnist()
        part = train_split.subset(2000, seed=0)
        model = zoo.lenet5()
        train(model, part.as_float(), part.labels, epochs=1)
        test_part = test_split.subset(samples, seed=1)
        calibration = train_split.subset(128, seed=2).as_float()
        return (
            model.eval(),
            test_part.as_float(),
            calibration,
            test_part.labels,
            "LeNet-5, 1 epoch on 2k MNIST",
        )
    model = zoo.efficientnet_lite0()
    return (
        model,
        smooth_images(samples, 224, 1),
        smooth_images(64, 224, 2),
        None,
        "EfficientNet-Lite0 (ImageNet)",
    )


def int8_latency(files: dict[str, Path], sample: np.ndarray, threads: int, seconds: float) -> dict[str, Any]:
    from edgedeploy.convert.runtimes import OnnxRunner, profile_latencies

    runners = {name: OnnxRunner(path, threads) for name, path in files.items()}
    p50 = profile_latencies(runners, sample, min_seconds=seconds)
    return {
        "threads": threads,
        "p50_ms": {k: round(v, 3) for k, v in p50.items()},
        "speedup_vs_fp32": {k: round(p50["fp32"] / v, 3) for k, v in p50.items() if k != "fp32"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="LeNet-5 on MNIST instead of EfficientNet-Lite0")
    parser.add_argument(
        "--samples", type=int, default=None, help="verification inputs (default 32, quick 16)"
    )
    parser.add_argument("--out", type=Path, default=None, help="keep the converted models here")
    args = parser.parse_args()

    from edgedeploy.convert.api import convert_torch
    from edgedeploy.convert.inspect import inspect_model
    from edgedeploy.errors import UsageError

    samples = args.samples or (16 if args.quick else 32)
    model, inputs, calibration, labels, description = workload(args.quick, samples)
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="edgedeploy-bench-"))
    rows: list[dict[str, Any]] = []
    files: dict[str, Path] = {}
    for to, precision, int8_format in KINDS:
        if precision != "int8" or to == "tflite":
            label = f"{to}-{precision}"
        else:
            label = f"{to}-{precision}-{int8_format}"
        output = out_dir / f"{label}.{to}"
        started = time.perf_counter()
        try:
            result = convert_torch(
                model,
                inputs[:1],
                to=to,
                precision=precision,
                output=output,
                calibration=calibration if precision == "int8" else None,
                verify_inputs=inputs,
                labels=labels,
                int8_format=int8_format,
            )
        except UsageError as err:  # a conversion failing verification is a result, not a crash
            rows.append(
                {"kind": label, "error": str(err), "total_s": round(time.perf_counter() - started, 2)}
            )
            print(f"{label}: FAILED {err}", file=sys.stderr)
            continue
        info = inspect_model(output)
        rows.append(
            {
                "kind": label,
                "size_bytes": result["size_bytes"],
                "zipped_bytes": info["zipped_bytes"],
                "total_s": round(time.perf_counter() - started, 2),
                "seconds": result["seconds"],
                "verification": result["verification"],
                "int8_format": result.get("int8_format"),
                "int8_selection": result.get("int8_selection"),
            }
        )
        files[label] = output
        print(f"{label}: {result['size_bytes']} bytes, {rows[-1]['total_s']} s", file=sys.stderr)
    # Only the files that passed verification are timed; a failed one is a row with its error above.
    latency_kinds = {
        "fp32": "onnx-fp32",
        "qdq": "onnx-int8-qdq",
        "qoperator": "onnx-int8-qoperator",
        "int8-dynamic": "onnx-int8-dynamic",
    }
    latency_files = {name: files[kind] for name, kind in latency_kinds.items() if kind in files}
    report = {
        "model": description,
        "host": {
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_avg_1min": round(os.getloadavg()[0], 2),
        },
        "verification_inputs": len(inputs),
        "conversions": rows,
        "onnx_int8_latency": [
            int8_latency(latency_files, inputs[:1], t, 0.3 if args.quick else 3.0) for t in (1, 2)
        ]
        if "fp32" in latency_files and len(latency_files) > 1
        else [],
        "models_dir": str(out_dir),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
