"""The stand-alone runner, run as the separate process it is on devices: its Python 3.8 contract,
its measurements, and its sensor readers against a FAKE sysfs tree (and fake vcgencmd/dumpsys tools
on PATH), since this host has no power sensors or thermal zones of its own."""

from __future__ import annotations

import ast
import glob
import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.runner import DEVICE_DIR, build_zipapp, write_zipapp
from edgedeploy.runner.device import RunnerError, check_python
from edgedeploy.runner.device.power import PowerSampler
from edgedeploy.runner.device.sysfs import judge_throttling
from tests.support.cli import runner_pyz
from tests.support.onnx_models import dense_onnx

ALLOWED_THIRD_PARTY = {"numpy", "psutil", "onnxruntime", "ai_edge_litert", "tflite_runtime", "tensorflow"}


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dense_onnx(tmp_path_factory.mktemp("runner-models") / "tiny.onnx")


def run_runner(model: Path, *args: str, path_dirs: list[Path] | None = None) -> tuple[int, dict]:
    env = dict(os.environ)
    if path_dirs:
        env["PATH"] = os.pathsep.join([*map(str, path_dirs), env.get("PATH", "")])
    proc = subprocess.run(
        [sys.executable, str(runner_pyz()), str(model), *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"runner must print exactly one JSON line: {proc.stdout!r} {proc.stderr!r}"
    return proc.returncode, json.loads(lines[0])


def write_tree(root: Path, files: dict[str, str | int]) -> Path:
    for rel, value in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    return root


def fake_tool(bin_dir: Path, name: str, script: str) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    tool = bin_dir / name
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(0o755)
    return tool


BOARD = {  # thermal zone, two cores of cpufreq, as a Pi or Jetson kernel shows them
    "class/thermal/thermal_zone0/type": "cpu-thermal",
    "class/thermal/thermal_zone0/temp": 47250,
    "class/thermal/thermal_zone0/trip_point_0_type": "passive",
    "class/thermal/thermal_zone0/trip_point_0_temp": 85000,
    "class/thermal/thermal_zone0/trip_point_1_type": "critical",
    "class/thermal/thermal_zone0/trip_point_1_temp": 110000,
    **{
        f"devices/system/cpu/cpu{i}/cpufreq/{name}": value
        for i in (0, 1)
        for name, value in (
            ("scaling_cur_freq", 1500000),
            ("scaling_min_freq", 600000),
            ("scaling_max_freq", 1800000),
            ("scaling_governor", "ondemand"),
        )
    },  # fmt: skip
}
JETSON_ORIN_INA3221 = {  # hwmon driver: inN_input mV, currN_input mA, inN_label
    "class/hwmon/hwmon1/name": "ina3221",
    "class/hwmon/hwmon1/in1_label": "VDD_IN", "class/hwmon/hwmon1/in1_input": 5000,
    "class/hwmon/hwmon1/curr1_input": 1200,
    "class/hwmon/hwmon1/in2_label": "VDD_CPU_GPU_CV", "class/hwmon/hwmon1/in2_input": 5000,
    "class/hwmon/hwmon1/curr2_input": 400,
    "class/hwmon/hwmon1/in3_label": "VDD_SOC", "class/hwmon/hwmon1/in3_input": 5000,
    "class/hwmon/hwmon1/curr3_input": 300,
    "class/hwmon/hwmon0/name": "soc_thermal",
}  # fmt: skip
QUICK = ["--runs", "20", "--warmup", "2", "--idle-seconds", "0.05", "--power-interval", "0.01"]


def test_runner_is_python38_and_imports_only_stdlib_numpy_runtimes() -> None:
    sources = sorted(DEVICE_DIR.glob("*.py"))
    assert {p.stem for p in sources} >= {"runtimes", "inputs", "sysfs", "power", "measure", "probe"}
    for path in sources:
        source = path.read_text()
        tree = ast.parse(source, feature_version=(3, 8))  # rejects walrus, match, X | Y in syntax...
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
        third_party = {m for m in imported if m not in sys.stdlib_module_names}
        assert third_party <= ALLOWED_THIRD_PARTY, (path.name, third_party)
        assert "from __future__" not in source and " := " not in source, path.name


def test_too_old_python_is_refused_with_one_clear_message() -> None:
    with pytest.raises(RunnerError, match=r"Python 3\.7 .* too old; the runner needs 3\.8\+") as err:
        check_python((3, 7, 9))
    assert err.value.code == 4
    check_python((3, 8, 0))


def interpreters(version: str, needs: str = "") -> list[str]:
    """Working `python<version>` interpreters on this machine (PATH, pyenv), optionally ones that
    can import `needs`; CI images usually have none, and the tests using them skip."""
    candidates = [
        os.environ.get(f"EDGEDEPLOY_TEST_PY{version.replace('.', '')}"),
        shutil.which(f"python{version}"),
        *glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python")),
    ]
    found = []
    for candidate in dict.fromkeys(c for c in candidates if c and os.path.exists(c)):
        probe = subprocess.run([candidate, "-c", f"import sys{', ' + needs if needs else ''}"],
                               capture_output=True, timeout=60, check=False)  # fmt: skip
        if probe.returncode == 0:
            found.append(candidate)
    return found


@pytest.mark.parametrize("version", ["2.7", "3.6", "3.7"])
def test_real_old_python_gets_one_clear_error(version: str, tiny_onnx: Path) -> None:
    found = interpreters(version)
    if not found:
        pytest.skip(f"no python{version} on this machine")
    proc = subprocess.run([found[0], str(runner_pyz()), str(tiny_onnx)], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    assert json.loads(proc.stdout)["error"].startswith(f"Python {version} on the device is too old")


def test_runs_on_a_real_python38(tiny_onnx: Path, tmp_path: Path) -> None:
    found = interpreters("3.8", needs="numpy, onnxruntime")
    if not found:
        pytest.skip("no python3.8 with numpy and onnxruntime here (set EDGEDEPLOY_TEST_PY38 to one)")
    np.save(tmp_path / "x.npy", np.ones((1, 16), np.float32))
    proc = subprocess.run(
        [found[0], str(runner_pyz()), str(tiny_onnx), "--mode", "run", "--inputs", str(tmp_path / "x.npy"),
         "--out-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["host"]["python"].startswith("3.8.") and doc["outputs"][0]["name"] == "y"
    w, b = weights(tiny_onnx)
    np.testing.assert_allclose(
        np.load(tmp_path / "out" / "y.npy"), np.maximum(np.ones((1, 16)) @ w + b, 0), rtol=1e-5
    )


def weights(model: Path) -> tuple[np.ndarray, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    init = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(model)).graph.initializer}
    return init["W"], init["b"]


def test_profile_measures_latency_cpu_memory_and_estimates_nothing_without_sensors(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    empty_sysfs = tmp_path / "sys"
    empty_sysfs.mkdir()
    code, doc = run_runner(
        tiny_onnx, "--runs", "40", "--warmup", "3", "--raw", "--sysfs-root", str(empty_sysfs)
    )
    assert code == 0, doc
    lat = doc["latency_ms"]
    assert lat["n"] == 40 and len(lat["samples"]) == 40
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert abs(lat["mean"] - sum(lat["samples"]) / 40) < 1e-9
    assert doc["init_ms"] > 0 and doc["first_inference_ms"] > 0
    assert doc["memory"]["peak_rss_mb"] >= doc["memory"]["rss_before_load_mb"] > 0
    assert doc["cpu"]["process_threads"] >= 1 and doc["cpu"]["user_s"] >= 0
    cpu_time = doc["cpu_time_ms"]
    assert cpu_time["n"] == 40 and 0 < cpu_time["min"] <= cpu_time["p50"] <= cpu_time["max"]
    assert 0 <= doc["cpu"]["scheduler"]["waiting_fraction"] <= 1
    uncontended = doc["uncontended_latency_ms"]  # None only if every inference was interrupted
    assert uncontended is None or 0 < uncontended["share"] <= 1 and uncontended["n"] <= 40
    host = doc["host"]
    assert host["cpu_count"] >= 1 and host["python"].startswith("3.") and isinstance(host["isa"], list)
    # No sensors: the runner says so; the host side (profiles/power.py) then estimates.
    assert doc["power"]["source"] == "none"
    assert doc["thermal"]["throttled"] is False and doc["thermal"]["before"]["zones"] == []


def test_duration_mode_and_core_pinning(tiny_onnx: Path) -> None:
    code, doc = run_runner(tiny_onnx, "--duration", "0.3", "--warmup", "1", "--cores", "0", "--threads", "2")
    assert code == 0, doc
    assert doc["timed_seconds"] >= 0.3 and doc["latency_ms"]["n"] > 1
    # Every thread is pinned: the runtime's workers and the ones `import numpy` started before pinning.
    assert doc["cpu"]["affinity"] == doc["cpu"]["threads_affinity"] == [0]
    code, doc = run_runner(tiny_onnx, "--cores", "999")
    assert code == 2 and "--cores 999" in doc["error"]


def test_runs_and_warmup_are_minimums_extended_to_min_seconds(tiny_onnx: Path) -> None:
    """As TFLite's benchmark_model: at least --runs AND at least --min-seconds of timed runs (same for
    the warm-up), so a fast model is timed long enough for a stable median."""
    code, doc = run_runner(tiny_onnx, "--runs", "5", "--min-seconds", "0.3", "--warmup", "2",
                           "--warmup-seconds", "0.1")  # fmt: skip
    assert code == 0, doc
    assert doc["timed_seconds"] >= 0.3 and doc["latency_ms"]["n"] > 5
    assert doc["settings"]["warmup_runs_done"] > 2 and doc["settings"]["min_seconds"] == 0.3
    code, doc = run_runner(tiny_onnx, "--runs", "7", "--warmup", "0")  # no minimum time: exactly --runs
    assert code == 0, doc
    assert doc["latency_ms"]["n"] == 7 and doc["settings"]["warmup_runs_done"] == 0
    code, doc = run_runner(tiny_onnx, "--min-seconds", "-1")
    assert code == 2 and "--min-seconds" in doc["error"]


def test_a_run_sharing_its_core_with_a_busy_process_is_flagged_contended(tiny_onnx: Path) -> None:
    """Another process on the runner's core makes the wall-clock latency include waiting for the CPU:
    the runner sees it in the scheduler's run-queue time and says so."""
    spinner = subprocess.Popen(
        [sys.executable, "-c", "import os\nos.sched_setaffinity(0, {0})\nwhile True: pass"]
    )  # fmt: skip
    try:
        time.sleep(0.2)  # the spinner is running on core 0
        code, doc = run_runner(tiny_onnx, "--cores", "0", "--runs", "20", "--min-seconds", "0.5")
    finally:
        spinner.kill()
        spinner.wait()
    assert code == 0, doc
    scheduler = doc["cpu"]["scheduler"]
    assert scheduler["contended"] is True and scheduler["waiting_fraction"] > 0.2, scheduler
    assert scheduler["runqueue_wait_ms"] > 0 and scheduler["on_cpu_ms"] > 0
    # Some inferences were interrupted by the spinner; the rest are reported on their own.
    uncontended = doc["uncontended_latency_ms"]
    assert uncontended is None or (uncontended["share"] < 1 and uncontended["n"] < doc["latency_ms"]["n"])


def test_jetson_ina3221_hwmon_rails_measured_on_a_thread(tiny_onnx: Path, tmp_path: Path) -> None:
    sysfs = write_tree(tmp_path / "sys", {**BOARD, **JETSON_ORIN_INA3221})
    code, doc = run_runner(tiny_onnx, *QUICK, "--sysfs-root", str(sysfs))
    assert code == 0, doc
    power = doc["power"]
    assert power["source"] == "measured" and power["sensor"] == "ina3221"
    assert "VDD_IN" in power["method"]
    assert power["avg_power_w"] == pytest.approx(6.0)  # 5000 mV x 1200 mA on the board input rail
    assert power["rails_w"] == pytest.approx({"VDD_IN": 6.0, "VDD_CPU_GPU_CV": 2.0, "VDD_SOC": 1.5})
    assert power["samples"] >= 2 and power["idle_power_w"] == pytest.approx(6.0)
    per_inference_s = power["window_s"] / doc["latency_ms"]["n"]
    assert power["energy_per_inference_mj"] == pytest.approx(6.0 * per_inference_s * 1e3)
    assert power["dynamic_energy_per_inference_mj"] == pytest.approx(0.0)
    before = doc["thermal"]["before"]
    assert before["zones"] == [
        {"zone": "thermal_zone0", "type": "cpu-thermal", "temp_c": 47.25, "passive_trip_c": 85.0}
    ]
    assert [c["cur_mhz"] for c in before["cpufreq"]] == [1500.0, 1500.0]
    assert doc["cpu"]["governors"] == ["ondemand"]
    assert doc["thermal"]["throttled"] is False


def test_jetson_nano_iio_ina3221x_prefers_board_input_rail(tiny_onnx: Path, tmp_path: Path) -> None:
    iio = "bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    sysfs = write_tree(
        tmp_path / "sys",
        {
            f"{iio}/rail_name_0": "POM_5V_IN", f"{iio}/in_power0_input": 3500,
            f"{iio}/rail_name_1": "POM_5V_GPU", f"{iio}/in_power1_input": 250,
            f"{iio}/rail_name_2": "POM_5V_CPU", f"{iio}/in_power2_input": 900,
        },
    )  # fmt: skip
    code, doc = run_runner(tiny_onnx, *QUICK, "--sysfs-root", str(sysfs))
    assert code == 0, doc
    assert doc["power"]["avg_power_w"] == pytest.approx(3.5)
    assert "POM_5V_IN" in doc["power"]["method"]


@pytest.mark.parametrize(
    ("supply", "files", "watts"),
    [
        ("BAT0", {"type": "Battery", "status": "Discharging", "voltage_now": 11400000, "current_now": 900000},
         10.26),
        ("bms", {"type": "Battery", "status": "Discharging", "voltage_now": 3900000, "current_now": -512000},
         1.9968),
        ("usb", {"type": "USB", "online": 1, "power_now": 4500000}, 4.5),
        ("BAT0", {"type": "Battery", "status": "Charging", "voltage_now": 12000000, "current_now": 2000000},
         None),
    ],
    ids=["laptop-battery", "negative-discharge-current", "usb-input-power_now", "charging-is-not-load"],
)  # fmt: skip
def test_power_supply_reader(
    tiny_onnx: Path, tmp_path: Path, supply: str, files: dict[str, object], watts: float | None
) -> None:
    sysfs = write_tree(
        tmp_path / "sys",
        {"class/power_supply/AC/type": "Mains", "class/power_supply/AC/online": 0,
         **{f"class/power_supply/{supply}/{k}": v for k, v in files.items()}},
    )  # fmt: skip
    code, doc = run_runner(tiny_onnx, *QUICK, "--sysfs-root", str(sysfs))
    assert code == 0, doc
    if watts is None:
        assert doc["power"]["source"] == "none"
    else:
        assert doc["power"]["source"] == "measured" and doc["power"]["sensor"] == "power_supply"
        assert doc["power"]["avg_power_w"] == pytest.approx(watts)
        assert supply in doc["power"]["method"]


PI5_PMIC = """\
     3V7_WL_SW_A current(0)=0.10000000A
     3V3_SYS_A current(1)=0.20000000A
     VDD_CORE_A current(7)=2.00000000A
     3V7_WL_SW_V volt(8)=3.70000000V
     3V3_SYS_V volt(9)=3.30000000V
     VDD_CORE_V volt(15)=0.80000000V
     EXT5V_V volt(24)=5.10000000V
"""


def test_pi5_pmic_and_vcgencmd_throttling_flag_the_run(tiny_onnx: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_tool(
        bin_dir,
        "vcgencmd",
        'case "$1" in\n'
        f"  pmic_read_adc) cat <<'EOF'\n{PI5_PMIC}EOF\n;;\n"
        "  get_throttled) echo throttled=0x50005 ;;\n"  # under-voltage + throttled now, both occurred
        '  measure_temp) echo "temp=71.5\'C" ;;\n'
        "  *) exit 1 ;;\nesac\n",
    )
    sysfs = write_tree(tmp_path / "sys", BOARD)
    code, doc = run_runner(tiny_onnx, *QUICK, "--sysfs-root", str(sysfs), path_dirs=[bin_dir])
    assert code == 0, doc
    power = doc["power"]
    assert power["source"] == "measured" and power["sensor"] == "pmic_read_adc"
    assert power["avg_power_w"] == pytest.approx(0.37 + 0.66 + 1.6)  # EXT5V_V has no current: not a rail
    vc = doc["thermal"]["after"]["vcgencmd"]
    assert vc["temp_c"] == 71.5 and "under-voltage now" in vc["flags"]
    assert doc["thermal"]["throttled"] is True
    assert any("throttled now" in reason for reason in doc["thermal"]["reasons"])


def test_android_dumpsys_battery_only_when_unplugged(tiny_onnx: Path, tmp_path: Path) -> None:
    def dumpsys(usb_powered: str) -> Path:
        bin_dir = tmp_path / f"bin-{usb_powered}"
        return fake_tool(
            bin_dir,
            "dumpsys",
            'if [ "$3" = current_now ]; then echo -250000; exit 0; fi\n'
            f"printf 'Current Battery Service state:\\n  AC powered: false\\n  USB powered: {usb_powered}\\n"
            "  level: 80\\n  voltage: 4000\\n  temperature: 301\\n'\n",
        ).parent

    empty = tmp_path / "sys"
    empty.mkdir()
    code, doc = run_runner(tiny_onnx, *QUICK, "--sysfs-root", str(empty), path_dirs=[dumpsys("false")])
    assert code == 0, doc
    assert doc["power"]["sensor"] == "dumpsys_battery"
    assert doc["power"]["avg_power_w"] == pytest.approx(1.0)  # 4.000 V x 0.25 A
    code, doc = run_runner(tiny_onnx, *QUICK, "--sysfs-root", str(empty), path_dirs=[dumpsys("true")])
    assert doc["power"]["source"] == "none", "on USB power the battery current is charge current"


def test_hot_zone_or_rising_throttle_counter_flags_the_run() -> None:
    cool = {"zones": [{"zone": "z0", "type": "cpu", "temp_c": 60.0, "passive_trip_c": 85.0}]}
    hot = {"zones": [{"zone": "z0", "type": "cpu", "temp_c": 86.0, "passive_trip_c": 85.0}]}
    assert judge_throttling(cool, cool) == (False, [])
    flagged, reasons = judge_throttling(cool, hot)
    assert flagged and "passive trip point" in reasons[0]
    counts = judge_throttling(
        {"throttle_counters": {"core_throttle_count": 3}}, {"throttle_counters": {"core_throttle_count": 5}}
    )
    assert counts == (True, ["core_throttle_count rose by 2 during the run"])
    sticky = judge_throttling({"vcgencmd": {"throttled": 0}}, {"vcgencmd": {"throttled": 0x40000}})
    assert sticky == (True, ["vcgencmd: throttling occurred during the run"])


def test_power_sampler_integrates_a_changing_reading() -> None:
    class Ramp:
        def __init__(self) -> None:
            self.watts = iter([1.0, 3.0])

        def read(self) -> tuple[float, None]:
            return next(self.watts), None

    sampler = PowerSampler(Ramp(), interval=10.0)  # the thread never fires: two end samples
    sampler.start()
    sampler.stop()
    summary = sampler.summary()
    assert summary["samples"] == 2 and summary["avg_power_w"] == pytest.approx(2.0)


def test_bad_inputs_are_one_json_error(tiny_onnx: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "text.npy", np.array(["a"] * 16).reshape(1, 16))
    code, doc = run_runner(tiny_onnx, "--mode", "run", "--inputs", str(tmp_path / "text.npy"))
    assert code == 2 and "wants float32" in doc["error"]
    code, doc = run_runner(tmp_path / "text.npy")
    assert code == 2 and "unknown model format" in doc["error"]
    dynamic = dense_onnx(tmp_path / "dyn.onnx", batch="batch", features="features")
    code, doc = run_runner(dynamic, "--runs", "2")
    assert code == 2 and "dynamic dimensions [0, 1]" in doc["error"] and "--shape x=N,N" in doc["error"]
    code, doc = run_runner(dynamic, "--runs", "2", "--shape", "x=4,16")
    assert code == 0 and doc["inputs"][0]["shape"] == [4, 16] and doc["outputs"][0]["shape"] == [4, 8]
    assert doc["inputs"][0]["declared_shape"] == [None, None] and doc["notes"] == []


def test_a_dynamic_batch_alone_defaults_to_one(tmp_path: Path) -> None:
    code, doc = run_runner(dense_onnx(tmp_path / "batch.onnx", batch="N"), "--runs", "2")
    assert code == 0, doc
    assert doc["inputs"][0]["shape"] == [1, 16] and doc["inputs"][0]["declared_shape"] == [None, 16]
    assert doc["notes"] == ["input 'x': dynamic batch dimension set to 1 (--shape to choose)"]


def test_the_zipapp_is_reproducible(tmp_path: Path) -> None:
    """Same code, same bytes: whatever the files' mtimes and modes (a fresh clone, another umask),
    so an unchanged runner keeps its sha256 and its push is skipped."""
    first = build_zipapp(DEVICE_DIR)
    assert build_zipapp(DEVICE_DIR) == first
    copy = tmp_path / "device"
    shutil.copytree(DEVICE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for path in copy.iterdir():
        path.chmod(0o600)
        os.utime(path, (time.time() + 3600, time.time() + 3600))
    assert build_zipapp(copy) == first
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names) and "__main__.py" in names and "edgedeploy_device/measure.py" in names
    assert {(i.date_time, i.external_attr >> 16, i.compress_type) for i in infos} == {
        ((1980, 1, 1, 0, 0, 0), 0o100644, zipfile.ZIP_STORED)
    }
    assert write_zipapp(tmp_path / "a").read_bytes() == write_zipapp(tmp_path / "b").read_bytes() == first


def test_the_probe_and_the_runner_read_temperatures_alike(tiny_onnx: Path, tmp_path: Path) -> None:
    """One reader: millidegrees (the kernel ABI) and the whole degrees of a few vendor kernels give the
    same Celsius in `targets check`'s facts and in a profile's thermal state."""
    root = tmp_path / "root"
    write_tree(
        root / "sys",
        {
            "class/thermal/thermal_zone0/type": "cpu-thermal",
            "class/thermal/thermal_zone0/temp": 47250,  # millidegrees
            "class/thermal/thermal_zone1/type": "vendor-soc",
            "class/thermal/thermal_zone1/temp": 52,  # whole degrees
        },
    )
    probe = subprocess.run(
        [sys.executable, str(runner_pyz()), "probe", str(tmp_path / "work"), str(root)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    probed = {z["zone"]: z["temp_c"] for z in json.loads(probe.stdout)["thermal_zones"]}
    code, doc = run_runner(tiny_onnx, *QUICK, "--sysfs-root", str(root / "sys"), "--power-sensor", "none")
    assert code == 0, doc
    profiled = {z["zone"]: z["temp_c"] for z in doc["thermal"]["before"]["zones"]}
    assert probed == profiled == {"thermal_zone0": 47.25, "thermal_zone1": 52.0}
