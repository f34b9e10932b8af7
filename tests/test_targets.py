"""`targets list|show|check`: the built-in inventory, cached facts, and the device probe script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edgedeploy.deploy.facts import facts_path
from edgedeploy.deploy.inventory import load_inventory
from tests.support.cli import run_cli, runner_pyz

BUILT_IN = {"local", "pi4", "pi5", "jetson-nano", "jetson-orin-nano", "android-arm64", "qemu-arm64"}


def test_list_and_show_the_built_in_targets() -> None:
    rows = json.loads(run_cli("targets", "list", "--json").stdout)
    by_name = {row["name"]: row for row in rows}
    assert set(by_name) >= BUILT_IN
    assert by_name["android-arm64"]["connection"] == "adb" and by_name["pi5"]["groups"] == ["raspberry_pi"]
    assert by_name["qemu-arm64"]["emulated"] is True
    shown = json.loads(run_cli("targets", "show", "pi5", "--json").stdout)
    assert (
        shown["vars"]["edgedeploy_power_model"]["busy_w"] > shown["vars"]["edgedeploy_power_model"]["idle_w"]
    )
    assert shown["python"] == "python3" and shown["facts"] is None
    for name in BUILT_IN:  # every built-in target says what it runs and how it estimates power
        target = load_inventory().get(name)
        assert "edgedeploy_runtime" in target.vars and target.power_model is not None


def test_unknown_target_is_one_line() -> None:
    out = run_cli("targets", "check", "no-such-board")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("error: unknown target 'no-such-board' (known: ")
    assert len(out.stderr.strip().splitlines()) == 1


def test_check_local_probes_and_caches_facts() -> None:
    out = run_cli("targets", "check", "local", "--json")
    assert out.returncode == 0, out.stderr
    facts = json.loads(out.stdout)
    assert facts["arch"] and facts["cores"] >= 1 and facts["ram_mb"] > 0 and facts["disk_free_mb"] > 0
    assert set(facts["isa"]) >= {"neon", "asimd", "dotprod", "i8mm", "avx2", "avx512_vnni"}
    assert facts["runtimes"]["onnxruntime"]["available"] is True
    assert facts["python"] == ".".join(map(str, sys.version_info[:3]))
    assert json.loads(facts_path("local").read_text())["checked_at"] == facts["checked_at"]
    shown = json.loads(run_cli("targets", "show", "local", "--json").stdout)
    assert shown["facts"]["checked_at"] == facts["checked_at"]
    table = run_cli("targets", "check", "local")
    assert table.returncode == 0 and "isa features" in table.stdout and "onnxruntime" in table.stdout


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_probe_reads_arm_features_thermal_and_power_sensors_from_sysfs(tmp_path: Path) -> None:
    """The probe takes its /proc and /sys root as a parameter: a Jetson-like fake tree."""
    root = tmp_path / "fake"
    _write(
        root, "proc/cpuinfo", "processor\t: 0\nFeatures\t: fp asimd asimdhp asimddp i8mm\nCPU part\t: 0xd42\n"
    )
    _write(root, "proc/meminfo", "MemTotal:        8000000 kB\nMemAvailable:    6000000 kB\n")
    _write(root, "sys/class/thermal/thermal_zone0/type", "cpu-thermal\n")
    _write(root, "sys/class/thermal/thermal_zone0/temp", "45500\n")
    _write(root, "sys/class/hwmon/hwmon1/name", "ina3221\n")
    _write(root, "sys/class/power_supply/battery/voltage_now", "4000000\n")
    _write(root, "sys/class/power_supply/battery/current_now", "500000\n")
    _write(root, "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "schedutil\n")
    _write(root, "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "1510400\n")
    out = subprocess.run(
        [sys.executable, str(runner_pyz()), "probe", str(tmp_path / "work"), str(root)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    facts = json.loads(out.stdout)
    assert facts["isa"]["neon"] and facts["isa"]["dotprod"] and facts["isa"]["i8mm"] and facts["isa"]["fp16"]
    assert not facts["isa"]["avx2"] and not facts["isa"]["avx512_vnni"]
    assert facts["cpu_model"] == "ARM implementer ? part 0xd42"
    assert facts["ram_mb"] == 8000000 // 1024
    assert facts["thermal_zones"] == [{"zone": "thermal_zone0", "type": "cpu-thermal", "temp_c": 45.5}]
    assert facts["cpufreq"] == {"governors": ["schedutil"], "max_mhz": 1510}
    kinds = {(s["kind"], s.get("name")) for s in facts["power_sensors"]}
    assert ("hwmon", "ina3221") in kinds and ("power_supply", "battery") in kinds
