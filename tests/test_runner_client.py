"""The host-side runner client: one settings object fills in the target's defaults and builds the
runner's arguments (run, profile, convert's target timing all go through it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from edgedeploy.deploy.inventory import Target
from edgedeploy.deploy.runner_client import (
    RunnerSettings,
    distinct_remote_names,
    push_inputs,
    time_models,
)
from edgedeploy.deploy.transports.local import LocalTransport
from tests.support.cli import runner_pyz
from tests.support.onnx_models import onnx_model

BOARD = Target(
    "board",
    vars={
        "edgedeploy_threads": 4,
        "edgedeploy_runtime": "tflite",
        "edgedeploy_sysfs_root": "/host/sys",
        "edgedeploy_power_sensor": "ina219",
    },
)


def test_unset_threads_and_auto_runtime_take_the_targets_defaults() -> None:
    settings = RunnerSettings.for_target(BOARD)
    assert (settings.threads, settings.runtime) == (4, "tflite")
    assert (settings.sysfs_root, settings.power_sensor) == ("/host/sys", "ina219")
    explicit = RunnerSettings.for_target(BOARD, threads=1, runtime="onnxruntime")
    assert (explicit.threads, explicit.runtime) == (1, "onnxruntime")
    bare = RunnerSettings.for_target(Target("plain"))
    assert (bare.threads, bare.runtime, bare.sysfs_root, bare.power_sensor) == (None, "auto", None, None)


def test_profile_args_carry_every_setting_once() -> None:
    settings = RunnerSettings.for_target(
        BOARD, runs=7, warmup=2, min_seconds=1.0, duration=3.0, cores="0-1", raw_samples=True,
        shapes={"": [1, 3], "mask": [1, 5]},
    )  # fmt: skip
    args = settings.profile_args()
    assert args == [
        "--mode", "profile", "--runs", "7", "--warmup", "2", "--runtime", "tflite",
        "--min-seconds", "1.0", "--duration", "3.0", "--threads", "4", "--cores", "0-1", "--raw",
        "--sysfs-root", "/host/sys", "--power-sensor", "ina219", "--shape", "1,3", "--shape", "mask=1,5",
    ]  # fmt: skip
    # Timing candidates (convert --target) turns the power sensor off: one flag, not two.
    quiet = settings.replace(power_sensor="none").profile_args()
    assert quiet.count("--power-sensor") == 1 and quiet[quiet.index("--power-sensor") + 1] == "none"


def test_run_args_and_the_runner_accepts_them() -> None:
    args = RunnerSettings.for_target(Target("plain"), threads=2, shapes={"x": [1, 4]}).run_args("/tmp/o")
    assert args == [
        "--mode", "run", "--runtime", "auto", "--out-dir", "/tmp/o", "--shape", "x=1,4", "--threads", "2",
    ]  # fmt: skip
    # The device-side runner's own parser knows every flag the client builds (no model needed for --help).
    help_text = subprocess.run(
        [sys.executable, str(runner_pyz()), "--help"], capture_output=True, text=True, check=True
    ).stdout
    every_flag = {*args, *RunnerSettings.for_target(BOARD, raw_samples=True, cores="0").profile_args()}
    for flag in sorted(a for a in every_flag if a.startswith("--")):
        assert flag in help_text, flag


def test_files_sharing_a_name_are_timed_as_themselves(tmp_path: Path) -> None:
    """`a/model.onnx` and `b/model.onnx` pushed under one name: the second overwrote the first on the
    device, and both were timed as the second (found timing two untrained copies' fp32.onnx side by
    side). A model's .npy inputs sharing a name were fed as the last one the same way."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    first = onnx_model(tmp_path / "a" / "model.onnx", [("Relu", ["x"], ["y"])], {"x": [1, 4]}, {"y": [1, 4]})
    second = onnx_model(tmp_path / "b" / "model.onnx", [("Neg", ["x"], ["y"])], {"x": [1, 4]}, {"y": [1, 4]})
    assert distinct_remote_names([first, second, first, tmp_path / "c.onnx"], "t-") == {
        first: "t-0-model.onnx",
        second: "t-1-model.onnx",
        tmp_path / "c.onnx": "t-c.onnx",
    }
    device = tmp_path / "device"
    target = Target(
        "local", vars={"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    )
    with LocalTransport("local", device) as local:
        timed = time_models(local, target, {"a": first, "b": second}, threads=1, seconds=0.05, rounds=1)
    assert set(timed["p50_ms"]) == {"a", "b"}
    assert (device / "models" / "0-model.onnx").read_bytes() == first.read_bytes()
    assert (device / "models" / "1-model.onnx").read_bytes() == second.read_bytes()
    # The same for a model's input files: each remote path holds its own array, in the order given.
    arrays = {folder: np.full((1, 4), i, np.float32) for i, folder in enumerate("ab")}
    for folder, array in arrays.items():
        np.save(tmp_path / folder / "x.npy", array)
    with LocalTransport("local", device) as local:
        args = push_inputs(local, target, [tmp_path / "a" / "x.npy", tmp_path / "b" / "x.npy"])
    assert args[0] == "--inputs" and len(set(args[1:])) == 2
    for remote, array in zip(args[1:], arrays.values(), strict=True):
        assert np.array_equal(np.load(remote), array)
