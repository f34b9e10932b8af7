#!/usr/bin/env python3
"""edgedeploy's on-device runner: loads a .onnx/.tflite model, runs it, prints ONE JSON document.

Stand-alone on purpose: it is copied to the device and run there with the device's Python (3.8+),
so it imports only the standard library, numpy and the inference runtime it uses. Exit codes:
0 ok, 2 bad input (model, inputs, shapes), 3 no usable runtime on this device.
Errors are printed as JSON too: {"error": "...", "kind": "..."} so the host can show one clear line.
"""

import argparse
import json
import os
import platform
import resource
import sys
import time

RUNNER_VERSION = "1"
RUNTIMES_FOR = {".onnx": ["onnxruntime"], ".tflite": ["ai-edge-litert", "tflite-runtime", "tensorflow"]}
INSTALL_HINT = (
    "install one on the device (pip install onnxruntime / ai-edge-litert), "
    "or run `edgedeploy provision --target T` for devices without internet"
)


class RunnerError(Exception):
    def __init__(self, message, kind="bad-input", code=2):
        Exception.__init__(self, message)
        self.kind = kind
        self.code = code


def _now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ------------------------------------------------------------------------------------------------
# Runtimes: one small adapter each, with the same four methods.
# ------------------------------------------------------------------------------------------------


class OnnxRuntimeModel(object):
    name = "onnxruntime"

    def __init__(self, path, threads):
        import onnxruntime as ort

        self.version = ort.__version__
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise RunnerError("onnxruntime cannot load %s: %s" % (path, str(exc).splitlines()[0]))
        self.threads = threads or 0

    def input_specs(self):
        return [
            {"name": i.name, "shape": list(i.shape), "dtype": _ort_dtype(i.type)}
            for i in self.session.get_inputs()
        ]

    def output_names(self):
        return [o.name for o in self.session.get_outputs()]

    def prepare(self, feeds):
        self.feeds = dict(feeds)

    def invoke(self):
        return self.session.run(None, self.feeds)


def _ort_dtype(type_str):
    table = {
        "tensor(float)": "float32",
        "tensor(float16)": "float16",
        "tensor(double)": "float64",
        "tensor(int8)": "int8",
        "tensor(uint8)": "uint8",
        "tensor(int32)": "int32",
        "tensor(int64)": "int64",
        "tensor(bool)": "bool",
    }
    return table.get(type_str, type_str)


class TFLiteModel(object):
    def __init__(self, path, threads, runtime):
        if runtime == "ai-edge-litert":
            import ai_edge_litert
            from ai_edge_litert.interpreter import Interpreter

            self.version = getattr(ai_edge_litert, "__version__", "unknown")
        elif runtime == "tflite-runtime":
            import tflite_runtime
            from tflite_runtime.interpreter import Interpreter

            self.version = getattr(tflite_runtime, "__version__", "unknown")
        else:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
            self.version = tf.__version__
        self.name = runtime
        try:
            self.interp = Interpreter(model_path=path, num_threads=threads or None)
            self.interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise RunnerError("%s cannot load %s: %s" % (runtime, path, str(exc).splitlines()[0]))
        self.threads = threads or 0
        self.inputs = self.interp.get_input_details()
        self.outputs = self.interp.get_output_details()

    def input_specs(self):
        specs = []
        for d in self.inputs:
            shape = list(d.get("shape_signature", d["shape"]))
            specs.append(
                {
                    "name": d["name"],
                    "shape": [s if s >= 0 else None for s in shape],
                    "dtype": d["dtype"].__name__ if hasattr(d["dtype"], "__name__") else str(d["dtype"]),
                }
            )
        return specs

    def output_names(self):
        return [d["name"] for d in self.outputs]

    def prepare(self, feeds):
        for d in self.inputs:
            arr = feeds[d["name"]]
            if list(arr.shape) != list(d["shape"]):
                self.interp.resize_tensor_input(d["index"], list(arr.shape))
                self.interp.allocate_tensors()
        for d in self.inputs:
            self.interp.set_tensor(d["index"], feeds[d["name"]])

    def invoke(self):
        self.interp.invoke()
        return [self.interp.get_tensor(d["index"]) for d in self.outputs]


def _importable(module):
    try:
        __import__(module)
        return True
    except Exception:
        return False


MODULE_OF = {
    "onnxruntime": "onnxruntime",
    "ai-edge-litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow",
}


def choose_runtime(model_path, wanted):
    ext = os.path.splitext(model_path)[1].lower()
    if ext not in RUNTIMES_FOR:
        raise RunnerError("%s: unknown model format %r (expected .onnx or .tflite)" % (model_path, ext))
    candidates = RUNTIMES_FOR[ext]
    if wanted and wanted != "auto":
        if wanted not in candidates:
            raise RunnerError(
                "runtime %s cannot run %s files (use one of: %s)" % (wanted, ext, ", ".join(candidates))
            )
        candidates = [wanted]
    for name in candidates:
        if _importable(MODULE_OF[name]):
            return name
    raise RunnerError(
        "no runtime for %s files on this device (tried %s); %s" % (ext, ", ".join(candidates), INSTALL_HINT),
        kind="no-runtime",
        code=3,
    )


def load_model(path, runtime, threads):
    if not os.path.isfile(path):
        raise RunnerError("model file not found: %s" % path)
    if runtime == "onnxruntime":
        return OnnxRuntimeModel(path, threads)
    return TFLiteModel(path, threads, runtime)


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------


def parse_shapes(specs):
    shapes = {}
    for spec in specs or []:
        name, _, dims = spec.rpartition("=")
        shapes[name] = [int(d) for d in dims.split(",") if d]
    return shapes


def make_inputs(np, specs, files, shapes, seed):
    """Feeds keyed by input name: from .npy files (in order) or random from the input spec."""
    if files and len(files) != len(specs):
        raise RunnerError("model has %d inputs but %d .npy files were given" % (len(specs), len(files)))
    rng = np.random.RandomState(seed)
    feeds = {}
    for i, spec in enumerate(specs):
        dtype = np.dtype(spec["dtype"])
        if files:
            try:
                arr = np.load(files[i], allow_pickle=False)
            except Exception as exc:
                raise RunnerError(
                    "cannot read input %s: not a plain .npy array (%s)" % (files[i], str(exc).split(".")[0])
                )
            _check_shape(spec, arr.shape, files[i])
            if arr.dtype != dtype:
                if np.can_cast(arr.dtype, dtype, casting="same_kind"):
                    arr = arr.astype(dtype)
                else:
                    raise RunnerError(
                        "input %r wants %s but %s holds %s"
                        % (spec["name"], dtype.name, files[i], arr.dtype.name)
                    )
            feeds[spec["name"]] = arr
            continue
        shape = shapes.get(spec["name"]) or (shapes.get("") if len(specs) == 1 else None)
        if shape is None:
            dynamic = [j for j, d in enumerate(spec["shape"]) if not isinstance(d, int) or d is None or d < 0]
            if dynamic:
                raise RunnerError(
                    "input %r has dynamic dimensions %s (shape %s); give --shape %s=%s"
                    % (
                        spec["name"],
                        dynamic,
                        spec["shape"],
                        spec["name"],
                        ",".join(str(d) if isinstance(d, int) and d >= 0 else "N" for d in spec["shape"]),
                    )
                )
            shape = spec["shape"]
        else:
            _check_shape(spec, shape, "--shape")
        if dtype.kind == "f":
            feeds[spec["name"]] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            feeds[spec["name"]] = rng.randint(max(info.min, -128), min(info.max, 127) + 1, size=shape).astype(
                dtype
            )
        else:
            feeds[spec["name"]] = np.zeros(shape, dtype=dtype)
    return feeds


def _check_shape(spec, shape, source):
    want = spec["shape"]
    ok = len(want) == len(shape) and all(
        (not isinstance(w, int)) or w is None or w < 0 or w == s for w, s in zip(want, shape)
    )
    if not ok:
        raise RunnerError(
            "input %r expects shape %s but %s has %s" % (spec["name"], want, source, list(shape))
        )


# ------------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------------


def rss_mb():
    """Current RSS in MB (psutil if present, else /proc)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 1e6
    except Exception:
        pass
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except Exception:
        return None


def peak_rss_mb():
    """Peak RSS over the process's life (VmHWM, else getrusage)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1e3
    except Exception:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1e3


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--mode", choices=["profile", "run"], default="profile")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--inputs", nargs="*", default=[])
    parser.add_argument("--shape", action="append", default=[])
    parser.add_argument("--out-dir", default=None, help="run mode: write outputs as <name>.npy here")
    parser.add_argument("--raw", action="store_true", help="include every latency sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--result", default=None, help="also write the JSON here (atomically)")
    args = parser.parse_args(argv)

    try:
        doc = measure(args)
        code = 0
    except RunnerError as exc:
        doc = {"error": str(exc), "kind": exc.kind}
        code = exc.code
    except MemoryError:
        doc = {"error": "out of memory while running the model", "kind": "resource"}
        code = 2
    text = json.dumps(doc)
    if args.result:
        tmp = args.result + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, args.result)
    sys.stdout.write(text + "\n")
    return code


def measure(args):
    if sys.version_info < (3, 8):
        raise RunnerError("Python %s is too old; the runner needs 3.8+" % platform.python_version(), "python")
    try:
        import numpy as np
    except ImportError:
        raise RunnerError("numpy is not installed on this device; " + INSTALL_HINT, kind="no-runtime", code=3)
    started = _now_iso()
    runtime = choose_runtime(args.model, args.runtime)
    rss_before = rss_mb()
    cpu0 = os.times()
    t0 = time.perf_counter()
    model = load_model(args.model, runtime, args.threads)
    init_ms = (time.perf_counter() - t0) * 1e3
    specs = model.input_specs()
    feeds = make_inputs(np, specs, args.inputs, parse_shapes(args.shape), args.seed)
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
        "runtime": {"name": model.name, "version": model.version, "threads": model.threads},
        "inputs": [
            {"name": s["name"], "shape": list(feeds[s["name"]].shape), "dtype": s["dtype"]} for s in specs
        ],
        "outputs": [
            {"name": n, "file": safe_name(n), "shape": list(o.shape), "dtype": o.dtype.name}
            for n, o in zip(model.output_names(), outputs)
        ],
        "init_ms": init_ms,
        "first_inference_ms": first_ms,
        "host": {
            "machine": platform.machine(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
        },
    }
    if args.mode == "run":
        if args.out_dir:
            os.makedirs(args.out_dir, exist_ok=True)
            for entry, arr in zip(doc["outputs"], outputs):
                path = os.path.join(args.out_dir, entry["file"] + ".npy")
                np.save(path + ".tmp.npy", arr)
                os.replace(path + ".tmp.npy", path)
        doc["memory"] = {"peak_rss_mb": peak_rss_mb(), "rss_delta_mb": _delta(rss_mb(), rss_before)}
        doc["finished"] = _now_iso()
        return doc

    for _ in range(args.warmup):
        model.invoke()
    samples = []
    cpu1 = os.times()
    wall0 = time.perf_counter()
    deadline = wall0 + args.duration if args.duration else None
    while True:
        t = time.perf_counter()
        model.invoke()
        samples.append((time.perf_counter() - t) * 1e3)
        if deadline is not None:
            if time.perf_counter() >= deadline:
                break
        elif len(samples) >= args.runs:
            break
    wall = time.perf_counter() - wall0
    cpu2 = os.times()
    latency = latency_stats(samples)
    if args.raw:
        latency["samples"] = samples
    doc["latency_ms"] = latency
    doc["timed_seconds"] = wall
    doc["cpu"] = {
        "user_s": cpu2.user - cpu1.user,
        "sys_s": cpu2.system - cpu1.system,
        # Average busy cores during the timed runs: the input of the estimated power model.
        "utilization_cores": ((cpu2.user - cpu1.user) + (cpu2.system - cpu1.system)) / wall
        if wall > 0
        else None,
        "total_user_s": cpu2.user - cpu0.user,
    }
    doc["memory"] = {"peak_rss_mb": peak_rss_mb(), "rss_delta_mb": _delta(rss_mb(), rss_before)}
    doc["finished"] = _now_iso()
    return doc


def safe_name(name):
    """An output name usable as a file name (ONNX names may hold '/' or ':')."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip("._")
    return cleaned or "output"


def _delta(a, b):
    return a - b if a is not None and b is not None else None


if __name__ == "__main__":
    sys.exit(main())
