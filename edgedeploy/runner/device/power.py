"""Power sensors. Each has `method` (what is measured, said plainly) and read() -> (watts, rails)
or None. discover_power_sensor() returns the first one this device has; PowerSampler reads it
beside the timed runs; sensor_inventory() lists what the facts probe reports."""

import os
import re
import threading
import time

from . import RunnerError
from .sysfs import find_tool, natural_glob, read, read_int, run_tool

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
        for hwmon in natural_glob(os.path.join(sysfs, "class/hwmon/hwmon*")):
            for base in (hwmon, os.path.join(hwmon, "device")):
                if read(os.path.join(base, "name")) != "ina3221":
                    continue
                for label_file in natural_glob(os.path.join(base, "in*_label")):
                    n = os.path.basename(label_file)[2:].split("_")[0]
                    label = read(label_file)
                    volts = os.path.join(base, "in%s_input" % n)
                    amps = os.path.join(base, "curr%s_input" % n)
                    if label and label != "NC" and os.path.exists(volts) and os.path.exists(amps):
                        channels.append((label, _hwmon_reader(volts, amps)))
                break
        iio = os.path.join(sysfs, "bus/i2c/drivers/ina3221x/*/iio:device*")
        for device in natural_glob(iio):
            for rail_file in natural_glob(os.path.join(device, "rail_name_*")):
                n = rail_file.rsplit("_", 1)[1]
                power = os.path.join(device, "in_power%s_input" % n)
                if os.path.exists(power):
                    channels.append((read(rail_file), _milliwatt_reader(power)))
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
        mv, ma = read_int(volts_file), read_int(amps_file)
        return mv * ma / 1e6 if mv is not None and ma is not None else None

    return read


def _milliwatt_reader(power_file):
    def read():
        mw = read_int(power_file)
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
        for supply in natural_glob(os.path.join(sysfs, "class/power_supply/*")):
            kind = read(os.path.join(supply, "type")) or ""
            if kind == "Battery":
                # While charging or full, current_now is the charge current, not what the board uses.
                if read(os.path.join(supply, "status")) != "Discharging":
                    continue
            elif read(os.path.join(supply, "online")) != "1":
                continue
            sensor = cls(supply, kind)
            if sensor.read() is not None:
                return sensor
        return None

    def read(self):
        microwatts = read_int(os.path.join(self.supply_dir, "power_now"))
        if microwatts is None:
            uv = read_int(os.path.join(self.supply_dir, "voltage_now"))
            ua = read_int(os.path.join(self.supply_dir, "current_now"))
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
            microamps = read_int(os.path.join(self.sysfs, "class/power_supply/battery/current_now"))
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


# hwmon chips that measure power (the probe lists them; the runner reads the INA3221 ones).
POWER_CHIPS = ("ina3221", "ina226", "ina219", "ina2xx", "ina209")


def sensor_inventory(sysfs):
    """The power sensors this device exposes, for the facts probe (paths as the device names them)."""

    def device_path(real):
        return "/sys/" + os.path.relpath(real, sysfs)

    sensors = []
    for hwmon in natural_glob(os.path.join(sysfs, "class/hwmon/hwmon*")):
        name = read(os.path.join(hwmon, "name")) or ""
        if name.startswith(POWER_CHIPS):
            sensors.append({"kind": "hwmon", "name": name, "path": device_path(hwmon)})
    for dev in natural_glob(os.path.join(sysfs, "bus/i2c/drivers/ina3221x/*/iio:device*")):
        sensors.append({"kind": "ina3221x-iio", "path": device_path(dev)})
    for supply in natural_glob(os.path.join(sysfs, "class/power_supply/*")):
        if os.path.exists(os.path.join(supply, "voltage_now")) and os.path.exists(
            os.path.join(supply, "current_now")
        ):
            sensors.append({"kind": "power_supply", "name": os.path.basename(supply)})
    if find_tool("vcgencmd"):
        sensors.append({"kind": "vcgencmd", "name": "pmic_read_adc (Raspberry Pi 5) / get_throttled"})
    if find_tool("dumpsys"):
        sensors.append({"kind": "dumpsys", "name": "battery"})
    return sensors
