"""Device facts probe: run ON the target by `edgedeploy targets check` (sent on stdin to its Python).

Standard library only, Python 3.8+ (Jetson images still ship 3.8), no typing syntax newer than that.
argv: [workdir [root [runtimes]]] - `root` prefixes /proc and /sys (tests point it at a fake tree);
`runtimes` is a JSON object {pip distribution: module that must import}: the host passes the
runner's declaration (edgedeploy.runner.supported_runtimes), so the probe calls a runtime usable
exactly when the runner can load it. Prints one JSON document.
"""

import glob
import importlib
import json
import os
import platform
import shutil
import sys

WORKDIR = sys.argv[1] if len(sys.argv) > 1 else "."
ROOT = sys.argv[2] if len(sys.argv) > 2 else "/"
RUNTIMES = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
POWER_CHIPS = ("ina3221", "ina226", "ina219", "ina2xx", "ina209")


def path(p):
    return os.path.join(ROOT, p.lstrip("/"))


def read_real(real_path):
    try:
        with open(real_path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def read(p):
    return read_real(path(p))


def logical(real_path):
    """The device path of a file found under ROOT."""
    return "/" + os.path.relpath(real_path, ROOT)


def cpu_facts():
    info = read("/proc/cpuinfo") or ""
    fields = {}
    flags = set()
    for line in info.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("flags", "Features"):
            flags.update(value.split())
        elif key and key not in fields:
            fields[key] = value
    model = (
        fields.get("model name") or fields.get("Model") or fields.get("Hardware") or fields.get("Processor")
    )
    if not model and fields.get("CPU part"):
        model = f"ARM implementer {fields.get('CPU implementer', '?')} part {fields['CPU part']}"
    arm64 = platform.machine() in ("aarch64", "arm64")
    isa = {
        "neon": "neon" in flags or "asimd" in flags,
        "asimd": "asimd" in flags or (arm64 and not flags),
        "dotprod": "asimddp" in flags,
        "i8mm": "i8mm" in flags,
        "fp16": "asimdhp" in flags or "fphp" in flags,
        "avx2": "avx2" in flags,
        "avx512_vnni": "avx512_vnni" in flags,
        "avx_vnni": "avx_vnni" in flags,
    }
    return model or platform.processor() or None, isa


def meminfo():
    out = {}
    for line in (read("/proc/meminfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key in ("MemTotal", "MemAvailable") and value.split():
            out[key] = int(value.split()[0]) // 1024
    return out


def os_name():
    release = read("/etc/os-release") or ""
    for line in release.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    if shutil.which("getprop"):
        import subprocess

        version = subprocess.run(["getprop", "ro.build.version.release"], stdout=subprocess.PIPE).stdout
        return f"Android {version.decode().strip()}"
    return platform.system()


def runtimes():
    found = {}
    for dist, module in list(RUNTIMES.items()) + [("numpy", "numpy")]:
        try:
            mod = importlib.import_module(module)
            version = getattr(mod, "__version__", None)
            if version is None:  # e.g. ai_edge_litert.interpreter: the distribution knows it
                from importlib import metadata

                version = metadata.version(dist)
            found[dist] = {"available": True, "version": str(version)}
        except Exception as exc:  # noqa: BLE001 - any import failure means "not usable here"
            found[dist] = {"available": False, "error": f"{type(exc).__name__}: {exc}"}
    return found


def cpufreq():
    governors, max_khz = set(), []
    for cpu in sorted(glob.glob(path("/sys/devices/system/cpu/cpu[0-9]*/cpufreq"))):
        gov = read_real(os.path.join(cpu, "scaling_governor"))
        if gov:
            governors.add(gov)
        top = read_real(os.path.join(cpu, "cpuinfo_max_freq"))
        if top and top.isdigit():
            max_khz.append(int(top))
    return {"governors": sorted(governors), "max_mhz": max(max_khz) // 1000 if max_khz else None}


def thermal_zones():
    zones = []
    for zone in sorted(glob.glob(path("/sys/class/thermal/thermal_zone*"))):
        temp = read_real(os.path.join(zone, "temp"))
        kind = read_real(os.path.join(zone, "type"))
        try:
            celsius = int(temp) / 1000.0 if temp else None
        except ValueError:
            celsius = None
        zones.append({"zone": os.path.basename(zone), "type": kind, "temp_c": celsius})
    return zones


def power_sensors():
    sensors = []
    for hwmon in sorted(glob.glob(path("/sys/class/hwmon/hwmon*"))):
        name = read_real(os.path.join(hwmon, "name")) or ""
        if name.startswith(POWER_CHIPS):
            sensors.append({"kind": "hwmon", "name": name, "path": logical(hwmon)})
    for dev in sorted(glob.glob(path("/sys/bus/i2c/drivers/ina3221x/*/iio:device*"))):
        sensors.append({"kind": "ina3221x-iio", "path": logical(dev)})
    for supply in sorted(glob.glob(path("/sys/class/power_supply/*"))):
        if os.path.exists(os.path.join(supply, "voltage_now")) and os.path.exists(
            os.path.join(supply, "current_now")
        ):
            sensors.append({"kind": "power_supply", "name": os.path.basename(supply)})
    if shutil.which("vcgencmd"):
        sensors.append({"kind": "vcgencmd", "name": "pmic_read_adc (Raspberry Pi 5) / get_throttled"})
    if shutil.which("dumpsys"):
        sensors.append({"kind": "dumpsys", "name": "battery"})
    return sensors


def main():
    model, isa = cpu_facts()
    mem = meminfo()
    try:
        os.makedirs(WORKDIR, exist_ok=True)
        disk = shutil.disk_usage(WORKDIR)
        free_mb, disk_mb = disk.free // (1 << 20), disk.total // (1 << 20)
    except OSError:
        free_mb = disk_mb = None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    doc = {
        "arch": platform.machine(),
        "cpu_model": model,
        "isa": isa,
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "ram_mb": mem.get("MemTotal"),
        "ram_available_mb": mem.get("MemAvailable"),
        "disk_free_mb": free_mb,
        "disk_total_mb": disk_mb,
        "workdir": os.path.abspath(WORKDIR),
        "os": os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_path": sys.executable,
        "runtimes": runtimes(),
        "cpufreq": cpufreq(),
        "thermal_zones": thermal_zones(),
        "power_sensors": power_sensors(),
    }
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
