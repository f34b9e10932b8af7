"""System state: cpufreq, thermal zones, throttling, and the small readers the other modules share.

Every sysfs path is under `sysfs` (normally /sys) so the readers can be checked against a fake tree;
the runner's thermal state and the facts probe read temperatures through the same `thermal_zones`.
"""

import glob
import os
import re
import subprocess

from . import now_iso


def read(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except (IOError, OSError, UnicodeDecodeError):
        return None


def read_int(path):
    text = read(path)
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def natural_glob(pattern):
    """glob sorted so that cpu10 comes after cpu9."""

    def key(path):
        digits = "".join(c for c in os.path.basename(path) if c.isdigit())
        return (len(digits), digits, path)

    return sorted(glob.glob(pattern), key=key)


def trailing_int(name):
    digits = ""
    for c in reversed(name):
        if not c.isdigit():
            break
        digits = c + digits
    return int(digits) if digits else None


def cpufreq_state(sysfs):
    """Per-core current/min/max frequency (MHz) and governor; [] where cpufreq is not exposed."""
    cores = []
    for cpu_dir in natural_glob(os.path.join(sysfs, "devices/system/cpu/cpu[0-9]*")):
        freq_dir = os.path.join(cpu_dir, "cpufreq")
        cur = read_int(os.path.join(freq_dir, "scaling_cur_freq"))
        governor = read(os.path.join(freq_dir, "scaling_governor"))
        if cur is None and governor is None:
            continue
        entry = {"cpu": trailing_int(cpu_dir), "governor": governor}
        for key, name in (("cur_mhz", "scaling_cur_freq"), ("min_mhz", "scaling_min_freq")):
            khz = read_int(os.path.join(freq_dir, name))
            entry[key] = khz / 1000.0 if khz is not None else None
        khz = read_int(os.path.join(freq_dir, "scaling_max_freq"))
        entry["max_mhz"] = khz / 1000.0 if khz is not None else None
        cores.append(entry)
    return cores


def millicelsius(value):
    # The kernel ABI is millidegrees; a few old vendor kernels report whole degrees.
    return value / 1000.0 if abs(value) >= 1000 else float(value)


def thermal_zones(sysfs):
    zones = []
    for zone_dir in natural_glob(os.path.join(sysfs, "class/thermal/thermal_zone*")):
        temp = read_int(os.path.join(zone_dir, "temp"))
        if temp is None:
            continue
        zone = {
            "zone": os.path.basename(zone_dir),
            "type": read(os.path.join(zone_dir, "type")),
            "temp_c": millicelsius(temp),
        }
        passive = []
        for trip_type in glob.glob(os.path.join(zone_dir, "trip_point_*_type")):
            if read(trip_type) in ("passive", "hot"):
                trip_temp = read_int(trip_type[: -len("_type")] + "_temp")
                if trip_temp is not None and trip_temp > 0:
                    passive.append(millicelsius(trip_temp))
        if passive:
            zone["passive_trip_c"] = min(passive)
        zones.append(zone)
    return zones


def throttle_counters(sysfs):
    """x86 thermal-throttle event counters summed over cores (None where not exposed)."""
    total = {}
    for cpu_dir in glob.glob(os.path.join(sysfs, "devices/system/cpu/cpu[0-9]*")):
        for name in ("core_throttle_count", "package_throttle_count"):
            value = read_int(os.path.join(cpu_dir, "thermal_throttle", name))
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
        "time": now_iso(),
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
