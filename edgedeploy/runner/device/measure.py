"""Measuring a model: pin cores, load it, feed it, time the runs (warm-up, wall clock, CPU time,
run-queue waits, thermal state and power around them) and build the ONE JSON document the host reads.

`python3 edgedeploy_runner.pyz MODEL [options]` runs `main` (see cli.py)."""

import argparse
import gc
import glob
import json
import os
import resource
import sys
import time

from . import RUNNER_VERSION, RunnerError, check_python, now_iso
from .host import host_facts, peak_rss_mb, rss_mb, thread_count
from .inputs import make_inputs, parse_shapes, safe_name, save_output
from .power import NO_POWER, PowerSampler, discover_power_sensor, measured_power, sample_idle_power
from .runtimes import choose_runtime, load_model
from .sysfs import judge_throttling, read, system_snapshot


def parse_cores(text):
    cores = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            cores.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise RunnerError("--cores %r: expected a list like 0,1 or 2-3" % text)
    return cores


def pin_cores(text):
    """Pin this process (and the runtime threads it starts later) to `text` cores; returns them."""
    if not text:
        return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    if not hasattr(os, "sched_setaffinity"):
        raise RunnerError("--cores: this platform cannot pin threads to cores")
    cores = parse_cores(text)
    try:
        os.sched_setaffinity(0, cores)
    except OSError as exc:
        raise RunnerError("--cores %s: %s (this device has %s cores)" % (text, exc.strerror, os.cpu_count()))
    # On Linux this pinned the calling thread only: threads started before it (an OpenBLAS pool that
    # `import numpy` starts) keep their old mask, so pin every thread of the process.
    for tid in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else []:
        try:
            os.sched_setaffinity(int(tid), cores)
        except OSError:  # the thread ended meanwhile
            continue
    return sorted(os.sched_getaffinity(0))


def threads_cpus():
    """The cores any thread of this process may run on (the union over /proc/self/task), which shows
    whether --cores held for the runtime's worker threads too; None where /proc is missing."""
    cpus = set()
    for status in glob.glob("/proc/self/task/*/status"):
        for line in (read(status) or "").splitlines():
            if line.startswith("Cpus_allowed_list:"):
                cpus.update(parse_cores(line.split(":", 1)[1].strip()))
    return sorted(cpus) or None


def build_parser():
    parser = argparse.ArgumentParser(
        prog="edgedeploy_runner.pyz",
        description="loads a .onnx/.tflite model, runs it, prints ONE JSON document",
    )
    parser.add_argument("model")
    parser.add_argument("--mode", choices=["profile", "run"], default="profile")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--warmup-seconds", type=float, default=0.0, help="warm up for at least this long")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument(
        "--min-seconds", type=float, default=0.0, help="keep timing past --runs until this long has passed"
    )
    parser.add_argument("--duration", type=float, default=None, help="time for this many seconds instead")
    parser.add_argument("--inputs", nargs="*", default=[])
    parser.add_argument("--shape", action="append", default=[])
    parser.add_argument("--out-dir", default=None, help="run mode: write outputs as <name>.npy here")
    parser.add_argument("--raw", action="store_true", help="include every latency sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cores", default=None, help="pin to these cores, e.g. 0,1 or 2-3")
    parser.add_argument("--sysfs-root", default="/sys", help="where sysfs is (a fake tree in tests)")
    parser.add_argument("--power-sensor", default="auto", help="auto, none, ina3221, pmic_read_adc, ...")
    parser.add_argument("--power-interval", type=float, default=0.05, help="seconds between power samples")
    parser.add_argument("--idle-seconds", type=float, default=1.0, help="idle power baseline (sensors only)")
    parser.add_argument("--result", default=None, help="also write the JSON here (atomically)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        check_python(sys.version_info)
        doc = measure(args)
        code = 0
    except RunnerError as exc:
        doc = {"error": str(exc), "kind": exc.kind}
        code = exc.code
    except MemoryError:
        doc = {"error": "out of memory while running the model", "kind": "resource"}
        code = 2
    except Exception as exc:  # a bug or a runtime crash: still one JSON line, never half a profile
        doc = {"error": "runner failed: %s: %s" % (type(exc).__name__, exc), "kind": "internal"}
        code = 1
    text = json.dumps(doc)
    if args.result:
        tmp = args.result + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, args.result)
    sys.stdout.write(text + "\n")
    return code


def measure(args):
    try:
        import numpy as np
    except ImportError:
        raise RunnerError(
            "numpy is not installed on this device: pip install numpy there, "
            "or run `edgedeploy provision --target T` for devices without internet",
            kind="no-runtime",
            code=3,
        )
    if (
        args.runs < 1
        or args.warmup < 0
        or args.warmup_seconds < 0
        or args.min_seconds < 0
        or (args.duration is not None and args.duration <= 0)
    ):
        raise RunnerError(
            "--runs must be >= 1, --warmup, --warmup-seconds and --min-seconds >= 0, --duration > 0"
        )
    started = now_iso()
    runtime = choose_runtime(args.model, args.runtime)
    affinity = pin_cores(args.cores)
    rss_before = rss_mb()
    t0 = time.perf_counter()
    model = load_model(args.model, runtime, args.threads)
    init_ms = (time.perf_counter() - t0) * 1e3
    specs = model.input_specs()
    notes = []
    feeds = make_inputs(np, specs, args.inputs, parse_shapes(args.shape), args.seed, notes)
    model.prepare(feeds)
    t0 = time.perf_counter()
    try:
        outputs = model.invoke()
    except Exception as exc:
        raise RunnerError("inference failed: %s" % str(exc).splitlines()[0])
    first_ms = (time.perf_counter() - t0) * 1e3
    doc = {
        "runner_version": RUNNER_VERSION,
        "started": started,
        "model": {"path": args.model, "size_bytes": os.path.getsize(args.model)},
        "runtime": runtime_doc(model),
        "inputs": [
            {
                "name": s["name"],
                "shape": list(feeds[s["name"]].shape),
                "declared_shape": [d if isinstance(d, int) else None for d in s["shape"]],
                "dtype": s["dtype"],
            }
            for s in specs
        ],
        "notes": notes,
        "outputs": [
            {"name": n, "file": safe_name(n), "shape": list(o.shape), "dtype": o.dtype.name}
            for n, o in zip(model.output_names(), outputs)
        ],
        "init_ms": init_ms,
        "first_inference_ms": first_ms,
        "host": host_facts(),
    }
    if args.mode == "run":
        if args.out_dir:
            os.makedirs(args.out_dir, exist_ok=True)
            for entry, arr in zip(doc["outputs"], outputs):
                save_output(np, arr, os.path.join(args.out_dir, entry["file"] + ".npy"))
        doc["memory"] = {"peak_rss_mb": peak_rss_mb(), "rss_delta_mb": _delta(rss_mb(), rss_before)}
        doc["finished"] = now_iso()
        return doc
    doc.update(time_inferences(model, args, affinity))
    doc["memory"] = {
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_load_mb": rss_before,
        "rss_delta_mb": _delta(rss_mb(), rss_before),
    }
    doc["finished"] = now_iso()
    return doc


def runtime_doc(model):
    """The profile's `runtime`: name, version, threads, and the session options set beyond threads
    (ORT's x64quantprecision on x86-64 CPUs without VNNI), so a profile says how it was measured."""
    doc = {"name": model.name, "version": model.version, "threads": model.threads}
    if getattr(model, "session_options", None):
        doc["session_options"] = dict(model.session_options)
    if getattr(model, "session_options_dropped", None):
        doc["session_options_dropped"] = model.session_options_dropped
    return doc


def time_inferences(model, args, affinity):
    """Warm-up (untimed), then the timed runs with thermal state before/after and power sampled."""
    sensor = discover_power_sensor(args.sysfs_root, args.power_sensor)
    # Sensors read through a tool (vcgencmd, dumpsys) start a process per reading: sample them slower.
    interval = max(args.power_interval, getattr(sensor, "min_interval", 0.0))
    idle_w = None
    if sensor is not None and args.idle_seconds > 0:
        idle_w = sample_idle_power(sensor, args.idle_seconds, interval)
    # Like TFLite's benchmark_model (warmup_runs + warmup_min_secs, num_runs + min_secs): at least N
    # runs AND at least S seconds. Time, not a count, is what makes a fast model's p50 stable: 100 runs
    # of a 2 ms model are 0.2 s, short enough for one scheduler hiccup or frequency step to move it.
    warmup_count = repeat_until(model.invoke, args.warmup, args.warmup_seconds)
    before = system_snapshot(args.sysfs_root)
    sampler = PowerSampler(sensor, interval) if sensor is not None else None
    recorder = Recorder()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)  # finer-grained than os.times() clock ticks
    sched0 = schedstat()
    if sampler:
        sampler.start()
    # Python's cyclic GC must not pause inside a timed run (the runtime's outputs are fresh objects).
    gc.collect()
    gc.disable()
    wall0 = time.perf_counter()
    try:
        if args.duration:
            repeat_until(model.invoke, 0, args.duration, recorder)
        else:
            repeat_until(model.invoke, args.runs, args.min_seconds, recorder)
    finally:
        gc.enable()
    wall = time.perf_counter() - wall0
    sched = scheduler_delta(sched0, schedstat())
    if sampler:
        sampler.stop()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    threads = thread_count()
    after = system_snapshot(args.sysfs_root)
    throttled, reasons = judge_throttling(before, after)
    samples = recorder.wall_ms
    latency = latency_stats(samples)
    if args.raw:
        latency["samples"] = samples
    user_s = cpu1.ru_utime - cpu0.ru_utime
    sys_s = cpu1.ru_stime - cpu0.ru_stime
    power = measured_power(sensor, sampler, idle_w, len(samples), interval) if sampler else None
    cpu_time = latency_stats(recorder.cpu_ms)
    uncontended = recorder.uncontended_ms()
    return {
        "latency_ms": latency,
        # CPU time per inference (all threads): what the model costs, whatever else runs beside it.
        "cpu_time_ms": dict((k, cpu_time[k]) for k in ("n", "mean", "min", "p50", "p90", "max")),
        # Wall-clock latency of the inferences during which no thread waited for a CPU: the model's
        # latency on the cores it had, without other processes' turns. Slightly optimistic under load
        # (a long inference is likelier to be interrupted); equal to latency_ms on an idle device.
        # None where the kernel has no schedstat.
        "uncontended_latency_ms": uncontended_stats(uncontended, len(samples))
        if uncontended and recorder.schedstat_files
        else None,
        "timed_seconds": wall,
        "throughput_ips": len(samples) / wall if wall > 0 else None,
        "cpu": {
            "user_s": user_s,
            "sys_s": sys_s,
            # Average busy cores during the timed runs: the input of the estimated power model.
            "utilization_cores": (user_s + sys_s) / wall if wall > 0 else None,
            "process_threads": threads,
            "affinity": affinity,
            "threads_affinity": threads_cpus(),
            # Time the threads were runnable but waited for a CPU (other processes had it).
            "scheduler": sched,
            "governors": sorted(set(c["governor"] for c in after["cpufreq"] if c["governor"])),
        },
        "thermal": {"before": before, "after": after, "throttled": throttled, "reasons": reasons},
        "power": power or {"source": "none", "method": NO_POWER[args.power_sensor == "none"]},
        "settings": {
            "warmup": args.warmup,
            "warmup_seconds": args.warmup_seconds,
            "warmup_runs_done": warmup_count,
            "runs": args.runs if not args.duration else None,
            "min_seconds": args.min_seconds if not args.duration else None,
            "duration_s": args.duration,
            "cores": args.cores,
            "power_sensor": args.power_sensor,
        },
    }


class Recorder(object):
    """Per timed call: wall ms, process CPU ms (all threads) and whether any thread of the process
    waited for a CPU during it (its run-queue time rose: another process held the core)."""

    def __init__(self):
        self.wall_ms = []
        self.cpu_ms = []
        self.waited = []
        # The runtime's threads exist by now (started with the session); read their counters directly.
        self.schedstat_files = glob.glob("/proc/self/task/*/schedstat")

    def run_queue_ns(self):
        total = 0
        for path in self.schedstat_files:
            fields = (read(path) or "0 0").split()
            total += int(fields[1]) if len(fields) > 1 else 0
        return total

    def uncontended_ms(self):
        return [ms for ms, waited in zip(self.wall_ms, self.waited) if not waited]


def uncontended_stats(uncontended, total):
    stats = latency_stats(uncontended)
    stats["share"] = len(uncontended) / float(total)  # of the timed inferences
    return stats


def repeat_until(invoke, min_runs, min_seconds, recorder=None):
    """Call `invoke` at least `min_runs` times AND until `min_seconds` have passed, recording each
    call in `recorder` when given (its reads stay outside the wall-clock window). Returns the count."""
    start = time.perf_counter()
    deadline = start + min_seconds
    count = 0
    now = start
    while count < min_runs or now < deadline:
        if recorder is not None:
            queued = recorder.run_queue_ns()
            cpu = time.process_time()
        t = time.perf_counter()
        invoke()
        now = time.perf_counter()
        if recorder is not None:
            recorder.cpu_ms.append((time.process_time() - cpu) * 1e3)
            recorder.waited.append(recorder.run_queue_ns() > queued)
            recorder.wall_ms.append((now - t) * 1e3)
        count += 1
    return count


# Above this share of its runnable time spent waiting for a CPU, a run measured the other load on the
# device as much as the model: its wall-clock latency is flagged, like a throttled run.
CONTENDED_WAITING_FRACTION = 0.05


def schedstat():
    """(ns on a CPU, ns runnable but waiting for one) summed over this process's threads, from
    /proc/<pid>/task/*/schedstat (Linux with schedstats); None where it is not available."""
    run_ns = wait_ns = 0
    found = False
    for path in glob.glob("/proc/self/task/*/schedstat"):
        fields = (read(path) or "").split()
        if len(fields) >= 2:
            run_ns += int(fields[0])
            wait_ns += int(fields[1])
            found = True
    return (run_ns, wait_ns) if found else None


def scheduler_delta(before, after):
    if before is None or after is None:
        return None
    run_ms = (after[0] - before[0]) / 1e6
    wait_ms = (after[1] - before[1]) / 1e6
    fraction = wait_ms / (run_ms + wait_ms) if run_ms + wait_ms > 0 else 0.0
    return {
        "on_cpu_ms": run_ms,
        "runqueue_wait_ms": wait_ms,
        "waiting_fraction": fraction,
        "contended": fraction > CONTENDED_WAITING_FRACTION,
    }


def _delta(a, b):
    return a - b if a is not None and b is not None else None


def percentile(sorted_vals, q):
    if not sorted_vals:
        return None
    pos = (len(sorted_vals) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def latency_stats(samples_ms):
    vals = sorted(samples_ms)
    n = len(vals)
    mean = sum(vals) / n
    std = (sum((v - mean) ** 2 for v in vals) / (n - 1)) ** 0.5 if n > 1 else 0.0
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "min": vals[0],
        "p50": percentile(vals, 50),
        "p90": percentile(vals, 90),
        "p95": percentile(vals, 95),
        "p99": percentile(vals, 99),
        "max": vals[-1],
    }
