"""Which dynamic int8 configuration keeps a CNN? ONNX Runtime's `quantize_dynamic` variants against
edgedeploy's per-channel rewrite, on EfficientNet-Lite0: agreement with fp32 on the same inputs, max
and mean abs error against convert's default int8 tolerance, size, and latency (onnxruntime CPU, batch 1,
interleaved medians). Prints one JSON document.

    python -m bench.int8_dynamic_configs            # EfficientNet-Lite0, 224x224 (a few minutes)
    python -m bench.int8_dynamic_configs --quick    # a tiny CNN with a depthwise layer (seconds)

Verification inputs are the smooth synthetic images of bench/support/photos.py (no ImageNet
offline): agreement is with the fp32 model, not accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def ort_config(**options: Any) -> Any:
    def build(pre: Path, out: Path) -> None:
        from onnxruntime.quantization import quantize_dynamic

        quantize_dynamic(str(pre), str(out), **options)

    return build


def edgedeploy_config(include_grouped: bool) -> Any:
    def build(pre: Path, out: Path) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        from edgedeploy.convert.onnx_dynamic import quantize_convs_per_channel

        convs = out.with_suffix(".convs.onnx")
        quantize_convs_per_channel(pre, convs, include_grouped=include_grouped)
        quantize_dynamic(str(convs), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gemm"])  # fmt: skip

    return build


def signed_conv_weights(build: Any) -> Any:
    """The same int8 levels stored as int8 (zero point 0) instead of uint8 - 128: ORT's u8s8 kernel."""

    def signed(pre: Path, out: Path) -> None:
        import onnx
        from onnx import numpy_helper

        from edgedeploy.convert.onnx_dynamic import WEIGHT_ZERO_POINT

        build(pre, out)
        model = onnx.load(str(out))
        for tensor in model.graph.initializer:
            if tensor.name.endswith("_w_u8"):
                levels = (numpy_helper.to_array(tensor).astype(np.int16) - 128).astype(np.int8)
                tensor.CopyFrom(numpy_helper.from_array(levels, tensor.name))
        for node in model.graph.node:
            if node.op_type == "ConvInteger" and list(node.input[3:]) == [WEIGHT_ZERO_POINT]:
                del node.input[3]
        onnx.save(model, str(out))

    return signed


def configurations(pre: Path) -> dict[str, Any]:
    import onnx
    from onnxruntime.quantization import QuantType

    grouped = [
        node.name
        for node in onnx.load(str(pre)).graph.node
        if node.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in node.attribute)
    ]
    s8, u8 = QuantType.QInt8, QuantType.QUInt8
    return {
        "ort per_channel s8 (edgedeploy before)": ort_config(weight_type=s8, per_channel=True),
        "ort per-tensor s8": ort_config(weight_type=s8, per_channel=False),
        "ort per-tensor u8": ort_config(weight_type=u8, per_channel=False),
        "ort per_channel s8 reduce_range": ort_config(weight_type=s8, per_channel=True, reduce_range=True),
        "ort MatMul/Gemm only (convs float)": ort_config(
            weight_type=s8, per_channel=True, op_types_to_quantize=["MatMul", "Gemm"]
        ),
        "ort per-tensor u8, depthwise float": ort_config(weight_type=u8, nodes_to_exclude=grouped),
        "edgedeploy per-channel convs incl. depthwise": edgedeploy_config(include_grouped=True),
        "edgedeploy per-channel convs, depthwise float (int8-dynamic)": edgedeploy_config(False),
        "same, weights stored as int8 (ORT's u8s8 kernel)": signed_conv_weights(edgedeploy_config(False)),
    }


def workload(quick: bool, samples: int) -> tuple[Any, np.ndarray, str]:
    from torch import nn

    from bench.support.photos import smooth_images

    if quick:
        import torch

        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6(), nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU6(),
            nn.Conv2d(8, 16, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
        )  # fmt: skip
        return model.eval(), smooth_images(samples, 32, 1), "tiny CNN with a depthwise layer, 32x32"
    from edgedeploy.models import zoo

    return zoo.efficientnet_lite0(), smooth_images(samples, 224, 1), "EfficientNet-Lite0 (ImageNet)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny CNN instead of EfficientNet-Lite0")
    parser.add_argument("--samples", type=int, default=None, help="verification inputs (default 32, quick 8)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads for the latency rows")
    args = parser.parse_args()

    import torch
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgedeploy.convert import onnx_export
    from edgedeploy.convert.runtimes import OnnxRunner, profile_latencies
    from edgedeploy.convert.verify import compare, default_tolerance

    model, inputs, description = workload(args.quick, args.samples or (8 if args.quick else 32))
    with torch.no_grad():
        reference = model(torch.from_numpy(inputs)).numpy()
    tolerance = default_tolerance("int8-dynamic", reference)
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="edgedeploy-int8dyn-") as tmp:
        work = Path(tmp)
        fp32, pre = work / "fp32.onnx", work / "pre.onnx"
        onnx_export.export_torch(model, inputs[:1], fp32)
        quant_pre_process(str(fp32), str(pre))
        fp32_size = fp32.stat().st_size
        files = {"fp32": fp32}
        for index, (name, build) in enumerate(configurations(pre).items()):
            out = work / f"config{index}.onnx"
            build(pre, out)
            check = compare(reference, OnnxRunner(out).predict(inputs), None, tolerance)
            rows[name] = {
                "passed": check["passed"],
                "top1_agreement": check["top1_agreement"],
                "max_abs_error": round(check["max_abs_error"], 4),
                "mean_abs_error": round(check["mean_abs_error"], 4),
                "size_bytes": out.stat().st_size,
            }
            files[name] = out
            print(f"{name}: {rows[name]}", file=sys.stderr)
        runners = {name: OnnxRunner(path, args.threads) for name, path in files.items()}
        p50 = profile_latencies(runners, inputs[:1], min_seconds=0.2 if args.quick else 1.5)
    for name, row in rows.items():
        row["p50_ms"] = round(p50[name], 3)
        row["speedup_vs_fp32"] = round(p50["fp32"] / p50[name], 3)
    report = {
        "model": description,
        "host": {
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_avg_1min": os.getloadavg()[0],
        },
        "verification_inputs": len(inputs),
        "tolerance": round(tolerance, 4),
        "threads": args.threads,
        "fp32_p50_ms": round(p50["fp32"], 3),
        "fp32_size_bytes": fp32_size,
        "configurations": rows,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
