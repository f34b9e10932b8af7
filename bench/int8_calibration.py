"""Which ONNX Runtime calibration method gives the int8 model closest to fp32 on real photos?

EfficientNet-Lite0 (ImageNet weights, offline) exported to ONNX fp32 by edgedeploy's converter, then
quantised static int8 (per-channel weights) with each of ONNX Runtime's calibrators - MinMax (the
default), Percentile (99.999 %, asymmetric) and Entropy - in both formats (QOperator U8S8 and QDQ
S8S8). Calibrated on crops of the calibration photos, judged on crops of the OTHER photos
(bench/support/photos.py): top-1 agreement with fp32 overall and where fp32 is confident (top-1 prob > 0.5),
fp32's top-1 within int8's top 5, and the logits' SQNR.

    python -m bench.int8_calibration           # EfficientNet-Lite0 (minutes: Entropy and Percentile are slow)
    python -m bench.int8_calibration --quick   # LeNet-5 with random weights (seconds), used by the tests

Prints one JSON document (and writes it to --out when given). Numbers are measured, never set here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.support.photos import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, agreement, random_crops
from edgedeploy.fileinfo import write_json_atomic


def main(argv: list[str] | None = None) -> int:
    import torch

    from edgedeploy.convert import onnx_export
    from edgedeploy.convert.api import convert_torch
    from edgedeploy.convert.runtimes import open_runner
    from edgedeploy.models import zoo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="LeNet-5 smoke run in seconds")
    parser.add_argument("--calibration-images", type=int, default=None)
    parser.add_argument("--eval-images", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    shape = (1, 1, 28, 28) if args.quick else (1, 3, 224, 224)
    n_calibration = args.calibration_images or (16 if args.quick else 64)
    n_eval = args.eval_images or (32 if args.quick else 500)
    formats = ("qoperator",) if args.quick else ("qoperator", "qdq")

    started, load_at_start = time.perf_counter(), os.getloadavg()
    calibration = random_crops(CALIBRATION_PHOTOS, n_calibration, shape, seed=1)
    images = random_crops(EVALUATION_PHOTOS, n_eval, shape, seed=2)
    torch.manual_seed(0)
    model = zoo.lenet5().eval() if args.quick else zoo.efficientnet_lite0().eval()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="int8-calibration-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        with contextlib.redirect_stdout(sys.stderr):  # converters print progress; stdout is the JSON
            convert_torch(model, calibration[:1], to="onnx", precision="fp32", output=fp32,
                          verify_inputs=images[:8])  # fmt: skip
        reference = open_runner(fp32, args.threads).predict(images)
        for int8_format in formats:
            for method in onnx_export.CALIBRATION_METHODS:
                out = Path(tmp) / f"int8-{int8_format}-{method}.onnx"
                t = time.perf_counter()
                with contextlib.redirect_stdout(sys.stderr):  # ORT's calibrators print progress
                    onnx_export.quantize_int8_static(fp32, out, calibration, int8_format, method)
                seconds = time.perf_counter() - t
                quantised = open_runner(out, args.threads).predict(images)
                results[f"{int8_format}-{method}"] = {
                    **agreement(reference, quantised),
                    "calibration_seconds": seconds,
                    "size_bytes": out.stat().st_size,
                }
                print(f"{int8_format}-{method}: {results[f'{int8_format}-{method}']}", file=sys.stderr)
    doc = {
        "benchmark": "int8_calibration",
        "model": "lenet5 (random weights, smoke run)"
        if args.quick
        else "efficientnet_lite0 (ImageNet weights)",
        "quick": args.quick,
        "calibration": {"photos": CALIBRATION_PHOTOS, "crops": n_calibration},
        "evaluation": {"photos": EVALUATION_PHOTOS, "crops": n_eval},
        "loadavg_at_start": load_at_start,
        "int8_vs_fp32": results,
        "total_seconds": time.perf_counter() - started,
    }
    if args.out:
        write_json_atomic(args.out, doc)
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
