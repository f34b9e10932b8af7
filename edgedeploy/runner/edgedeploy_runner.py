#!/usr/bin/env python3
"""edgedeploy's on-device runner: loads a .onnx/.tflite model, runs it, prints ONE JSON document.

Stand-alone on purpose: it is copied to the device and run there with the device's Python (3.8+),
so it imports only the standard library, numpy and the inference runtime it uses. Exit codes:
0 ok, 1 runner failure, 2 bad input (model, inputs, shapes), 3 no usable runtime on this device,
4 the device's Python is too old.
Errors are printed as JSON too: {"error": "...", "kind": "..."} so the host can show one clear line.
"""

import argparse
import gc
import glob
import json
import os
import platform
import re
import resource
import subprocess
import sys
import threading
import time

RUNNER_VERSION = "2"
MIN_PYTHON = (3, 8)
# The supported runtimes, declared once. The host reads this table from this file (without running it:
# edgedeploy.runner.supported_runtimes) for the facts probe, `provision` and the CLI's help, so adding
# a runtime is one entry here plus its adapter class below. Keep it a literal that starts at
# "RUNTIMES = {" and ends at the first "}" alone on a line. Per runtime (named by its pip distribution):
#   formats    the model suffixes it runs; for one suffix, earlier runtimes are preferred
#   module     what must import on the device for it to be usable
#   provision  the pinned wheel `edgedeploy provision` installs (the pins of pyproject.toml and
#              Dockerfile.arm64), or None where the device has to bring it itself
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


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------


def parse_shapes(specs):
    shapes = {}
    for spec in specs or []:
        name, _, dims = spec.rpartition("=")
        shapes[name] = [int(d) for d in dims.split(",") if d]
    return shapes


def make_inputs(np, specs, files, shapes, seed, notes):
    """Feeds keyed by input name: from .npy files (in order) or random from the input spec.
    What was assumed (a dynamic batch set to 1) is appended to `notes`."""
    if files and len(files) != len(specs):
        raise RunnerError("model has %d inputs but %d .npy files were given" % (len(specs), len(files)))
    names = [spec["name"] for spec in specs]
    unknown = sorted(name for name in shapes if name and name not in names)
    if unknown:
        raise RunnerError("--shape %s: no such input (inputs: %s)" % (", ".join(unknown), ", ".join(names)))
    if "" in shapes and len(specs) > 1:
        raise RunnerError(
            "--shape without a name fits one-input models; give NAME=dims for %s" % ", ".join(names)
        )
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
                if arr.dtype.kind == "f" and dtype.kind in "iu" and spec.get("quantization"):
                    # Float data for a quantised input: quantise it as the converter's scale says.
                    scale, zero_point = spec["quantization"]
                    info = np.iinfo(dtype)
                    arr = np.clip(np.round(arr / scale + zero_point), info.min, info.max).astype(dtype)
                else:  # never cast silently: float64 or int32 data changes what the model computes
                    raise RunnerError(
                        "input %r wants %s but %s holds %s"
                        % (spec["name"], dtype.name, files[i], arr.dtype.name)
                    )
            feeds[spec["name"]] = arr
            continue
        shape = shapes.get(spec["name"]) or (shapes.get("") if len(specs) == 1 else None)
        if shape is None:
            dynamic = [j for j, d in enumerate(spec["shape"]) if not isinstance(d, int) or d is None or d < 0]
            if dynamic == [0] and len(spec["shape"]) > 1:
                # Only the leading (batch) axis is free, as exporters make it: one sample per inference.
                notes.append("input %r: dynamic batch dimension set to 1 (--shape to choose)" % spec["name"])
                dynamic = []
                spec = dict(spec, shape=[1] + list(spec["shape"][1:]))
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
# System state: cpufreq, thermal zones, throttling. Every sysfs path is under `sysfs` (normally
# /sys) so the readers can be checked against a fake tree.
# ------------------------------------------------------------------------------------------------


def _read(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except (IOError, OSError, UnicodeDecodeError):
        return None


def _read_int(path):
    text = _read(path)
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _natural_glob(pattern):
    """glob sorted so that cpu10 comes after cpu9."""

    def key(path):
        digits = "".join(c for c in os.path.basename(path) if c.isdigit())
        return (len(digits), digits, path)

    return sorted(glob.glob(pattern), key=key)


def _trailing_int(name):
    digits = ""
    for c in reversed(name):
        if not c.isdigit():
            break
        digits = c + digits
    return int(digits) if digits else None


def cpufreq_state(sysfs):
    """Per-core current/min/max frequency (MHz) and governor; [] where cpufreq is not exposed."""
    cores = []
    for cpu_dir in _natural_glob(os.path.join(sysfs, "devices/system/cpu/cpu[0-9]*")):
        freq_dir = os.path.join(cpu_dir, "cpufreq")
        cur = _read_int(os.path.join(freq_dir, "scaling_cur_freq"))
        governor = _read(os.path.join(freq_dir, "scaling_governor"))
        if cur is None and governor is None:
            continue
        entry = {"cpu": _trailing_int(cpu_dir), "governor": governor}
        for key, name in (("cur_mhz", "scaling_cur_freq"), ("min_mhz", "scaling_min_freq")):
            khz = _read_int(os.path.join(freq_dir, name))
            entry[key] = khz / 1000.0 if khz is not None else None
        khz = _read_int(os.path.join(freq_dir, "scaling_max_freq"))
        entry["max_mhz"] = khz / 1000.0 if khz is not None else None
        cores.append(entry)
    return cores


def _millicelsius(value):
    # The kernel ABI is millidegrees; a few old vendor kernels report whole degrees.
    return value / 1000.0 if abs(value) >= 1000 else float(value)


def thermal_zones(sysfs):
    zones = []
    for zone_dir in _natural_glob(os.path.join(sysfs, "class/thermal/thermal_zone*")):
        temp = _read_int(os.path.join(zone_dir, "temp"))
        if temp is None:
            continue
        zone = {
            "zone": os.path.basename(zone_dir),
            "type": _read(os.path.join(zone_dir, "type")),
            "temp_c": _millicelsius(temp),
        }
        passive = []
        for trip_type in glob.glob(os.path.join(zone_dir, "trip_point_*_type")):
            if _read(trip_type) in ("passive", "hot"):
                trip_temp = _read_int(trip_type[: -len("_type")] + "_temp")
                if trip_temp is not None and trip_temp > 0:
                    passive.append(_millicelsius(trip_temp))
        if passive:
            zone["passive_trip_c"] = min(passive)
        zones.append(zone)
    return zones


def throttle_counters(sysfs):
    """x86 thermal-throttle event counters summed over cores (None where not exposed)."""
    total = {}
    for cpu_dir in glob.glob(os.path.join(sysfs, "devices/system/cpu/cpu[0-9]*")):
        for name in ("core_throttle_count", "package_throttle_count"):
            value = _read_int(os.path.join(cpu_dir, "thermal_throttle", name))
            if value is not None:
                total[name] = total.get(name, 0) + value
    return total or None


def find_tool(name):
    for folder in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin", "/opt/vc/bin", "/system/bin"]:
        path = os.path.join(folder, name)
        if folder and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def run_tool(argv, timeout=5.0):
    """stdout of a device tool (vcgencmd, dumpsys), or None when it is missing or fails."""
    tool = find_tool(argv[0])
    if tool is None:
        return None
    try:
        proc = subprocess.run(
            [tool] + list(argv[1:]), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.decode("utf-8", "replace")


# Raspberry Pi firmware `vcgencmd get_throttled` bits.
THROTTLE_BITS = {
    0: "under-voltage now",
    1: "arm frequency capped now",
    2: "throttled now",
    3: "soft temperature limit now",
    16: "under-voltage occurred",
    17: "arm frequency capping occurred",
    18: "throttling occurred",
    19: "soft temperature limit occurred",
}
THROTTLE_NOW_MASK = 0xF


def vcgencmd_state():
    throttled = run_tool(["vcgencmd", "get_throttled"])
    if throttled is None:
        return None
    state = {}
    match = re.search(r"throttled=(0x[0-9a-fA-F]+|\d+)", throttled)
    if match:
        bits = int(match.group(1), 0)
        state["throttled"] = bits
        state["flags"] = [text for bit, text in sorted(THROTTLE_BITS.items()) if bits & (1 << bit)]
    temp = run_tool(["vcgencmd", "measure_temp"]) or ""
    match = re.search(r"temp=([-\d.]+)", temp)
    if match:
        state["temp_c"] = float(match.group(1))
    return state


def system_snapshot(sysfs):
    snap = {
        "time": _now_iso(),
        "zones": thermal_zones(sysfs),
        "cpufreq": cpufreq_state(sysfs),
        "throttle_counters": throttle_counters(sysfs),
    }
    vc = vcgencmd_state()
    if vc is not None:
        snap["vcgencmd"] = vc
    return snap


def judge_throttling(before, after):
    """Was the device throttling (or did it start to) around the timed runs? Returns (flag, reasons)."""
    reasons = []
    for when, snap in (("before", before), ("after", after)):
        vc = snap.get("vcgencmd") or {}
        if vc.get("throttled", 0) & THROTTLE_NOW_MASK:
            now_flags = [THROTTLE_BITS[b] for b in range(4) if vc["throttled"] & (1 << b)]
            reasons.append("vcgencmd %s: %s" % (when, ", ".join(now_flags)))
        for zone in snap.get("zones", []):
            if "passive_trip_c" in zone and zone["temp_c"] >= zone["passive_trip_c"]:
                reasons.append(
                    "%s %s: %.1f C at or above its passive trip point %.1f C"
                    % (zone["type"] or zone["zone"], when, zone["temp_c"], zone["passive_trip_c"])
                )
    sticky_before = (before.get("vcgencmd") or {}).get("throttled", 0) >> 16
    sticky_after = (after.get("vcgencmd") or {}).get("throttled", 0) >> 16
    if sticky_after & ~sticky_before:
        new = [THROTTLE_BITS[16 + b] for b in range(4) if (sticky_after & ~sticky_before) & (1 << b)]
        reasons.append("vcgencmd: %s during the run" % ", ".join(new))
    counts_before = before.get("throttle_counters") or {}
    for name, value in (after.get("throttle_counters") or {}).items():
        if value > counts_before.get(name, value):
            reasons.append("%s rose by %d during the run" % (name, value - counts_before[name]))
    return bool(reasons), reasons


# ------------------------------------------------------------------------------------------------
# Power sensors. Each has `method` (what is measured, said plainly) and read() -> (watts, rails)
# or None. discover_power_sensor() returns the first one this device has.
# ------------------------------------------------------------------------------------------------

# Rails that carry the whole board/module input; preferred over summing sub-rails.
BOARD_INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "VIN_SYS_5V0", "VIN")


class Ina3221Sensor(object):
    """Jetson's INA3221 monitors: hwmon (`name` = ina3221; inN_input mV, currN_input mA, inN_label)
    or the older L4T iio driver ina3221x (in_powerN_input mW, rail_name_N)."""

    name = "ina3221"

    def __init__(self, channels):
        self.channels = channels  # [(label, reader)] where reader() -> watts or None
        labels = [label for label, _ in channels]
        self.board_rail = next((r for r in BOARD_INPUT_RAILS if r in labels), None)
        if self.board_rail:
            self.method = "INA3221 rail %s (board input power)" % self.board_rail
        else:
            self.method = "sum of INA3221 rails %s" % ", ".join(labels)

    @classmethod
    def discover(cls, sysfs):
        channels = []
        for hwmon in _natural_glob(os.path.join(sysfs, "class/hwmon/hwmon*")):
            for base in (hwmon, os.path.join(hwmon, "device")):
                if _read(os.path.join(base, "name")) != "ina3221":
                    continue
                for label_file in _natural_glob(os.path.join(base, "in*_label")):
                    n = os.path.basename(label_file)[2:].split("_")[0]
                    label = _read(label_file)
                    volts = os.path.join(base, "in%s_input" % n)
                    amps = os.path.join(base, "curr%s_input" % n)
                    if label and label != "NC" and os.path.exists(volts) and os.path.exists(amps):
                        channels.append((label, _hwmon_reader(volts, amps)))
                break
        iio = os.path.join(sysfs, "bus/i2c/drivers/ina3221x/*/iio:device*")
        for device in _natural_glob(iio):
            for rail_file in _natural_glob(os.path.join(device, "rail_name_*")):
                n = rail_file.rsplit("_", 1)[1]
                power = os.path.join(device, "in_power%s_input" % n)
                if os.path.exists(power):
                    channels.append((_read(rail_file), _milliwatt_reader(power)))
        return cls(channels) if channels else None

    def read(self):
        rails = {}
        for label, reader in self.channels:
            watts = reader()
            if watts is not None:
                rails[label] = watts
        if not rails:
            return None
        total = rails.get(self.board_rail) if self.board_rail else sum(rails.values())
        return (total, rails) if total is not None else None


def _hwmon_reader(volts_file, amps_file):
    def read():
        mv, ma = _read_int(volts_file), _read_int(amps_file)
        return mv * ma / 1e6 if mv is not None and ma is not None else None

    return read


def _milliwatt_reader(power_file):
    def read():
        mw = _read_int(power_file)
        return mw / 1e3 if mw is not None else None

    return read


class PowerSupplySensor(object):
    """/sys/class/power_supply: a discharging battery (its draw is the load) or an online USB/mains
    input that reports its own voltage and current. power_now (uW) or voltage_now (uV) x current_now (uA)."""

    name = "power_supply"

    def __init__(self, supply_dir, kind):
        self.supply_dir = supply_dir
        self.method = "%s %s: %s" % (
            "/sys/class/power_supply",
            os.path.basename(supply_dir),
            "battery discharge power (voltage_now x current_now)" if kind == "Battery" else "input power",
        )

    @classmethod
    def discover(cls, sysfs):
        for supply in _natural_glob(os.path.join(sysfs, "class/power_supply/*")):
            kind = _read(os.path.join(supply, "type")) or ""
            if kind == "Battery":
                # While charging or full, current_now is the charge current, not what the board uses.
                if _read(os.path.join(supply, "status")) != "Discharging":
                    continue
            elif _read(os.path.join(supply, "online")) != "1":
                continue
            sensor = cls(supply, kind)
            if sensor.read() is not None:
                return sensor
        return None

    def read(self):
        microwatts = _read_int(os.path.join(self.supply_dir, "power_now"))
        if microwatts is None:
            uv = _read_int(os.path.join(self.supply_dir, "voltage_now"))
            ua = _read_int(os.path.join(self.supply_dir, "current_now"))
            if uv is None or ua is None:
                return None
            microwatts = uv * ua / 1e6
        watts = abs(microwatts) / 1e6  # discharge current is negative on some kernels
        return (watts, None) if watts > 0 else None


PMIC_CURRENT = re.compile(r"(\S+)_A\s+current\(\d+\)=([-\d.eE]+)A")
PMIC_VOLT = re.compile(r"(\S+)_V\s+volt\(\d+\)=([-\d.eE]+)V")


def parse_pmic_adc(text):
    """Rail powers (W) from `vcgencmd pmic_read_adc`: each NAME_A current paired with NAME_V volt."""
    amps = dict((m.group(1), float(m.group(2))) for m in PMIC_CURRENT.finditer(text))
    volts = dict((m.group(1), float(m.group(2))) for m in PMIC_VOLT.finditer(text))
    return dict((rail, volts[rail] * amps[rail]) for rail in sorted(amps) if rail in volts)


class Pi5PmicSensor(object):
    name = "pmic_read_adc"
    min_interval = 0.2  # each reading starts vcgencmd
    method = (
        "Raspberry Pi 5 PMIC rails (vcgencmd pmic_read_adc), sum of V x A; "
        "excludes the 5 V input converter's losses and USB peripherals"
    )

    @classmethod
    def discover(cls, sysfs):
        sensor = cls()
        return sensor if sensor.read() is not None else None

    def read(self):
        text = run_tool(["vcgencmd", "pmic_read_adc"], timeout=2.0)
        rails = parse_pmic_adc(text or "")
        return (sum(rails.values()), rails) if rails else None


class AndroidBatterySensor(object):
    """`dumpsys battery` voltage (mV) x battery current (`dumpsys battery get current_now`, uA, or the
    battery's current_now in sysfs). Only while unplugged: on a charger it is the charge current."""

    name = "dumpsys_battery"
    min_interval = 0.5  # each reading starts two dumpsys processes
    method = "Android battery discharge power (dumpsys battery voltage x current_now)"

    def __init__(self, sysfs):
        self.sysfs = sysfs

    @classmethod
    def discover(cls, sysfs):
        text = run_tool(["dumpsys", "battery"])
        if not text:
            return None
        for line in text.splitlines():
            key, _, value = line.strip().partition(":")
            plugged = key in ("AC powered", "USB powered", "Wireless powered", "Dock powered")
            if plugged and value.strip() == "true":
                return None
        sensor = cls(sysfs)
        return sensor if sensor.read() is not None else None

    def read(self):
        text = run_tool(["dumpsys", "battery"]) or ""
        match = re.search(r"^\s*voltage:\s*(\d+)", text, re.M)
        if not match:
            return None
        millivolts = int(match.group(1))
        current = (run_tool(["dumpsys", "battery", "get", "current_now"]) or "").strip()
        try:
            microamps = int(current)
        except ValueError:
            microamps = _read_int(os.path.join(self.sysfs, "class/power_supply/battery/current_now"))
        if microamps is None or microamps == 0:
            return None
        return (abs(millivolts * microamps) / 1e9, None)


POWER_SENSORS = (Ina3221Sensor, Pi5PmicSensor, PowerSupplySensor, AndroidBatterySensor)
NO_POWER = {
    False: "no power sensor found on this device",
    True: "power measurement off (--power-sensor none)",
}


def discover_power_sensor(sysfs, wanted):
    if wanted == "none":
        return None
    for cls in POWER_SENSORS:
        if wanted not in ("auto", cls.name):
            continue
        sensor = cls.discover(sysfs)
        if sensor is not None:
            return sensor
    if wanted != "auto":
        raise RunnerError("power sensor %r not found on this device" % wanted)
    return None


class PowerSampler(object):
    """Reads a sensor on a background thread while the timed runs go; sensor reads are file reads
    (or a short vcgencmd/dumpsys call) and release the GIL, so inference is barely disturbed."""

    def __init__(self, sensor, interval):
        self.sensor = sensor
        self.interval = interval
        self.samples = []  # (monotonic seconds, watts, rails)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edgedeploy-power")
        self._thread.daemon = True

    def _take(self):
        reading = self.sensor.read()
        if reading is not None:
            self.samples.append((time.perf_counter(), reading[0], reading[1]))

    def _loop(self):
        while not self._stop.wait(self.interval):
            self._take()

    def start(self):
        self._take()  # one sample at each end, so even a very short window has two
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()
        self._take()

    def summary(self):
        """Mean power (time-weighted) and energy over the sampled window."""
        if not self.samples:
            return None
        if len(self.samples) == 1:
            watts = self.samples[0][1]
            return {"avg_power_w": watts, "samples": 1, "window_s": 0.0, "rails_w": self.samples[0][2]}
        energy = 0.0
        for (t0, w0, _), (t1, w1, _) in zip(self.samples, self.samples[1:]):
            energy += (t1 - t0) * (w0 + w1) / 2.0
        window = self.samples[-1][0] - self.samples[0][0]
        rails = None
        if self.samples[0][2]:
            rails = dict(
                (name, sum(s[2].get(name, 0.0) for s in self.samples) / len(self.samples))
                for name in self.samples[0][2]
            )
        return {
            "avg_power_w": energy / window if window > 0 else self.samples[-1][1],
            "samples": len(self.samples),
            "window_s": window,
            "rails_w": rails,
        }


def sample_idle_power(sensor, seconds, interval):
    sampler = PowerSampler(sensor, interval)
    sampler.start()
    time.sleep(seconds)
    sampler.stop()
    summary = sampler.summary()
    return summary["avg_power_w"] if summary else None


def measured_power(sensor, sampler, idle_w, n_inferences, interval):
    summary = sampler.summary()
    if summary is None:
        return None
    per_inference_s = summary["window_s"] / n_inferences if n_inferences else 0.0
    doc = {
        "source": "measured",
        "method": sensor.method,
        "sensor": sensor.name,
        "avg_power_w": summary["avg_power_w"],
        "samples": summary["samples"],
        "sample_interval_s": interval,
        "window_s": summary["window_s"],
        "energy_per_inference_mj": summary["avg_power_w"] * per_inference_s * 1e3,
    }
    if summary["rails_w"]:
        doc["rails_w"] = summary["rails_w"]
    if idle_w is not None:
        doc["idle_power_w"] = idle_w
        # What the inference costs above what the board draws anyway.
        above_idle_w = max(0.0, summary["avg_power_w"] - idle_w)
        doc["dynamic_energy_per_inference_mj"] = above_idle_w * per_inference_s * 1e3
    return doc


# ISA features that decide int8 speed: Arm dot-product/i8mm, x86 AVX2/AVX-512 VNNI.
ISA_FLAGS = (
    "neon",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
)


def host_facts():
    """What the profile needs to say which device this was (the probe facts that matter for speed)."""
    facts = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "kernel": platform.release(),
    }
    cpuinfo = _read("/proc/cpuinfo") or ""
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Hardware", "Model") and "cpu_model" not in facts:
            facts["cpu_model"] = value.strip()
        elif key in ("flags", "Features"):
            flags.update(value.split())
    facts["isa"] = [flag for flag in ISA_FLAGS if flag in flags]
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            facts["mem_total_mb"] = int(line.split()[1]) / 1024.0
    for line in (_read("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            facts["os"] = line.split("=", 1)[1].strip().strip('"')
    return facts


# ------------------------------------------------------------------------------------------------
# Memory, threads, statistics
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


def thread_count():
    try:
        import psutil

        return psutil.Process().num_threads()
    except Exception:
        pass
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


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


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------


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
        for line in (_read(status) or "").splitlines():
            if line.startswith("Cpus_allowed_list:"):
                cpus.update(parse_cores(line.split(":", 1)[1].strip()))
    return sorted(cpus) or None


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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


def check_python(version_info):
    if tuple(version_info[:2]) < MIN_PYTHON:
        raise RunnerError(
            "Python %d.%d on the device is too old; the runner needs %d.%d+ "
            "(set ansible_python_interpreter to a newer one)" % (tuple(version_info[:2]) + MIN_PYTHON),
            kind="python",
            code=4,
        )


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
    started = _now_iso()
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
        "runtime": {"name": model.name, "version": model.version, "threads": model.threads},
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
        doc["finished"] = _now_iso()
        return doc
    doc.update(time_inferences(model, args, affinity))
    doc["memory"] = {
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_load_mb": rss_before,
        "rss_delta_mb": _delta(rss_mb(), rss_before),
    }
    doc["finished"] = _now_iso()
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
            fields = (_read(path) or "0 0").split()
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
        fields = (_read(path) or "").split()
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


def save_output(np, arr, path):
    """Write one output array atomically; on failure (a full disk) remove the partial temp file."""
    tmp = path + ".tmp.npy"
    try:
        np.save(tmp, arr)
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise RunnerError("cannot write output %s: %s" % (path, exc.strerror or exc), kind="resource", code=1)


def safe_name(name):
    """An output name usable as a file name (ONNX names may hold '/' or ':')."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip("._")
    return cleaned or "output"


def _delta(a, b):
    return a - b if a is not None and b is not None else None


if __name__ == "__main__":
    sys.exit(main())
