"""Facts about the device, each printed as ONE JSON document:

probe WORKDIR [ROOT]    for `edgedeploy targets check`: CPU and ISA features, memory, disk, OS,
                        Python, the declared runtimes that import, cpufreq, thermal zones, power
                        sensors. ROOT prefixes /proc, /sys and /etc (tests point it at a fake tree).
platform                for `provision`: machine, Python X.Y, implementation, libc (the wheel tags)
verify DISTS MODULE...  for `provision`: import each module, print the versions of DISTS (comma list)
"""

import importlib
import json
import os
import platform
import shutil
import sys

from .host import cpuinfo, meminfo_kb, os_pretty_name
from .power import sensor_inventory
from .runtimes import runtime_versions
from .sysfs import natural_glob, read, run_tool, thermal_zones


def cpu_facts(root):
    fields, flags = cpuinfo(os.path.join(root, "proc/cpuinfo"))
    model = (
        fields.get("model name") or fields.get("Model") or fields.get("Hardware") or fields.get("Processor")
    )
    if not model and fields.get("CPU part"):
        model = "ARM implementer %s part %s" % (fields.get("CPU implementer", "?"), fields["CPU part"])
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


def os_name(root):
    name = os_pretty_name(os.path.join(root, "etc/os-release"))
    if name:
        return name
    version = run_tool(["getprop", "ro.build.version.release"])
    if version is not None:
        return "Android %s" % version.strip()
    return platform.system()


def cpufreq_summary(sysfs):
    """The governors in use and the top frequency any core reaches (cpuinfo_max_freq, not the
    current policy's limit: what the hardware can do)."""
    governors, max_khz = set(), []
    for cpu in natural_glob(os.path.join(sysfs, "devices/system/cpu/cpu[0-9]*/cpufreq")):
        gov = read(os.path.join(cpu, "scaling_governor"))
        if gov:
            governors.add(gov)
        top = read(os.path.join(cpu, "cpuinfo_max_freq"))
        if top and top.isdigit():
            max_khz.append(int(top))
    return {"governors": sorted(governors), "max_mhz": max(max_khz) // 1000 if max_khz else None}


def facts(workdir, root="/"):
    sysfs = os.path.join(root, "sys")
    model, isa = cpu_facts(root)
    memory = meminfo_kb(os.path.join(root, "proc/meminfo"))
    try:
        os.makedirs(workdir, exist_ok=True)
        disk = shutil.disk_usage(workdir)
        free_mb, disk_mb = disk.free // (1 << 20), disk.total // (1 << 20)
    except OSError:
        free_mb = disk_mb = None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "arch": platform.machine(),
        "cpu_model": model,
        "isa": isa,
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "ram_mb": memory["MemTotal"] // 1024 if "MemTotal" in memory else None,
        "ram_available_mb": memory["MemAvailable"] // 1024 if "MemAvailable" in memory else None,
        "disk_free_mb": free_mb,
        "disk_total_mb": disk_mb,
        "workdir": os.path.abspath(workdir),
        "os": os_name(root),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_path": sys.executable,
        "runtimes": runtime_versions(),
        "cpufreq": cpufreq_summary(sysfs),
        "thermal_zones": thermal_zones(sysfs),
        "power_sensors": sensor_inventory(sysfs),
    }


def platform_facts():
    return {
        "machine": platform.machine(),
        "python": "%d.%d" % sys.version_info[:2],
        "implementation": sys.implementation.name,
        "libc": list(platform.libc_ver()),
    }


def verify(dists, modules):
    """Import every module (a failure is the runtime not working), then the distributions' versions."""
    from importlib import metadata

    for module in modules:
        importlib.import_module(module)
    return {dist: metadata.version(dist) for dist in dists}


def main(command, argv):
    if command == "probe":
        doc = facts(argv[0] if argv else ".", argv[1] if len(argv) > 1 else "/")
    elif command == "platform":
        doc = platform_facts()
    else:
        doc = verify([d for d in argv[0].split(",") if d], argv[1:])
    print(json.dumps(doc))
    return 0
