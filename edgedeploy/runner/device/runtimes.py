"""The supported runtimes, declared once, and one small adapter per runtime (same four methods).

The host reads this table too (edgedeploy.runner.supported_runtimes imports this module: stdlib
only, the runtimes themselves are imported only when a model is loaded) for the facts probe,
`provision` and the CLI's help, so adding a runtime is one entry here plus its adapter class below.
Per runtime (named by its pip distribution):
  formats    the model suffixes it runs; for one suffix, earlier runtimes are preferred
  module     what must import on the device for it to be usable
  provision  the pinned wheel `edgedeploy provision` installs (the pins of pyproject.toml and
             Dockerfile.arm64), or None where the device has to bring it itself
"""

import importlib
import os
import platform

from . import RunnerError

RUNTIMES = {
    "onnxruntime": {"formats": [".onnx"], "module": "onnxruntime", "provision": "onnxruntime==1.31.1"},
    "ai-edge-litert": {
        "formats": [".tflite"],
        "module": "ai_edge_litert.interpreter",
        "provision": "ai-edge-litert==2.3.0",
    },
    "tflite-runtime": {"formats": [".tflite"], "module": "tflite_runtime.interpreter", "provision": None},
    "tensorflow": {"formats": [".tflite"], "module": "tensorflow", "provision": None},
}
RUNTIMES_FOR = {}
for _name, _runtime in RUNTIMES.items():
    for _suffix in _runtime["formats"]:
        RUNTIMES_FOR.setdefault(_suffix, []).append(_name)
MODULE_OF = {name: runtime["module"] for name, runtime in RUNTIMES.items()}
INSTALL_HINT = (
    "install one on the device (pip install %s), "
    "or run `edgedeploy provision --target T` for devices without internet"
    % " / ".join(name for name, runtime in RUNTIMES.items() if runtime["provision"])
)


# onnxruntime's int8 kernels on x86-64 CPUs without VNNI multiply uint8 x int8 pairs with AVX2's
# VPMADDUBSW, whose int16 pair sums saturate: a correct int8 EfficientNet-Lite0 then agreed with its
# fp32 model on 34-44% of top-1 labels (81% on a VNNI CPU and on TFLite; ORT's `reduce_range` did not
# help). This session option makes ORT widen the products to int16 first (slower, still faster than
# fp32 there: 11.0 vs 15.5 ms); the host's verification and the runner both set it on such CPUs, so
# the outputs checked are the outputs timed. VNNI CPUs and Arm use their exact dot-product kernels.
X64_QUANT_PRECISION = {"session.x64quantprecision": "1"}
_VNNI_FLAGS = frozenset(("avx512_vnni", "avx_vnni", "amx_int8"))
_saturates = []


def int8_saturates():
    """True when this process runs on an x86-64 CPU without VNNI (see X64_QUANT_PRECISION)."""
    if not _saturates:  # one read of /proc/cpuinfo per process
        from .host import cpuinfo

        _saturates.append(cpu_int8_saturates(platform.machine(), cpuinfo()[1]))
    return _saturates[0]


def cpu_int8_saturates(machine, flags):
    """True for an x86-64 `machine` whose CPU `flags` lack VNNI; False where /proc/cpuinfo gave no
    flags (another OS): onnxruntime's default stays."""
    if (machine or "").lower() not in ("x86_64", "amd64"):
        return False
    return bool(flags) and not (set(flags) & _VNNI_FLAGS)


def ort_session_options(ort, threads=None, exact_int8=None):
    """(SessionOptions, the config entries set beyond threads): how every ORT session of the runner and
    of the host's verification is set up. `exact_int8` None: X64_QUANT_PRECISION where int8_saturates()."""
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    applied = dict(X64_QUANT_PRECISION) if (int8_saturates() if exact_int8 is None else exact_int8) else {}
    for key, value in applied.items():
        opts.add_session_config_entry(key, value)
    return opts, applied


def open_ort_session(ort, model, threads=None, configure=None):
    """(InferenceSession, options applied, why they were dropped or None). onnxruntime 1.31.1 refuses
    some QDQ graphs with x64quantprecision set ("Attempt to replace the existing tensor", a PaddleOCR
    classifier upgraded to opset 13): such a graph is loaded again with ORT's default, and the caller
    says so. `configure(opts)` adjusts the options first (the host quiets ORT's log)."""
    dropped = None
    for exact_int8 in (None, False):  # as set up for this CPU, then ORT's default int8 kernels
        opts, applied = ort_session_options(ort, threads, exact_int8)
        if configure:
            configure(opts)
        try:
            session = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            if not applied:
                raise
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            dropped = (
                "onnxruntime could not load the graph with %s (%s): loaded with its default int8 "
                "kernels, whose products can saturate on this CPU"
                % (", ".join("%s=%s" % kv for kv in sorted(X64_QUANT_PRECISION.items())), reason[:300])
            )
            continue
        return session, applied, dropped


class OnnxRuntimeModel(object):
    name = "onnxruntime"

    def __init__(self, path, threads):
        import onnxruntime as ort

        self.version = ort.__version__
        try:
            self.session, self.session_options, self.session_options_dropped = open_ort_session(
                ort, path, threads
            )
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
                    # numpy ints from the interpreter; -1 marks a dynamic dimension
                    "shape": [int(s) if s >= 0 else None for s in shape],
                    "dtype": d["dtype"].__name__ if hasattr(d["dtype"], "__name__") else str(d["dtype"]),
                    # int8/uint8 inputs of fully quantised models: real = (q - zero_point) * scale
                    "quantization": list(d["quantization"]) if d["quantization"][0] else None,
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


def runtime_versions():
    """{distribution: {"available", "version" or "error"}} for every declared runtime and numpy: a
    runtime counts as usable exactly when its module imports, as `choose_runtime` decides."""
    found = {}
    for dist, module in list(MODULE_OF.items()) + [("numpy", "numpy")]:
        try:
            mod = importlib.import_module(module)
            version = getattr(mod, "__version__", None)
            if version is None:  # e.g. ai_edge_litert.interpreter: the distribution knows it
                from importlib import metadata

                version = metadata.version(dist)
            found[dist] = {"available": True, "version": str(version)}
        except Exception as exc:  # any import failure means "not usable here"
            found[dist] = {"available": False, "error": "%s: %s" % (type(exc).__name__, exc)}
    return found
