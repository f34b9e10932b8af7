"""What device this is (CPU, ISA features, memory, OS) and this process's memory and threads.

The /proc and /etc parsers are shared by the runner's `host_facts` (in every profile) and the facts
probe (`targets check`), which takes a root prefix so it can be checked against a fake tree."""

import os
import platform
import resource
import sys

from .sysfs import read

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


def cpuinfo(path="/proc/cpuinfo"):
    """(fields, flags) of /proc/cpuinfo: each key's first value, in file order, and the ISA flags
    (x86 `flags`, Arm `Features`) of all cores."""
    fields = {}
    flags = set()
    for line in (read(path) or "").splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("flags", "Features"):
            flags.update(value.split())
        elif key and key not in fields:
            fields[key] = value
    return fields, flags


def meminfo_kb(path="/proc/meminfo"):
    """/proc/meminfo's values in kB (MemTotal, MemAvailable, ...)."""
    out = {}
    for line in (read(path) or "").splitlines():
        key, _, value = line.partition(":")
        if value.split() and value.split()[0].isdigit():
            out[key] = int(value.split()[0])
    return out


def os_pretty_name(path="/etc/os-release"):
    for line in (read(path) or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return None


def host_facts():
    """What the profile needs to say which device this was (the probe facts that matter for speed)."""
    facts = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "kernel": platform.release(),
    }
    fields, flags = cpuinfo()
    model = next((value for key, value in fields.items() if key in ("model name", "Hardware", "Model")), None)
    if model is not None:
        facts["cpu_model"] = model
    facts["isa"] = [flag for flag in ISA_FLAGS if flag in flags]
    memory = meminfo_kb()
    if "MemTotal" in memory:
        facts["mem_total_mb"] = memory["MemTotal"] / 1024.0
    name = os_pretty_name()
    if name is not None:
        facts["os"] = name
    return facts


# ------------------------------------------------------------------------------------------------
# Memory, threads
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
