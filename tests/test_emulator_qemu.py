"""The real arm64 device in CI: build (or reuse) the Debian image, boot it under qemu-system-aarch64,
provision onnxruntime and ai-edge-litert offline, run and profile an ONNX and a TFLite model there and
compare the outputs with the host's, then power it off. Selected alone with `pytest -m qemu`.

Skips (never fails) when this machine cannot do it: not root, binfmt_misc not mountable, Debian's
mirror unreachable, or a guest still booting when the (generous) timeout ends.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.deploy.emulator import image as emulator_image
from edgedeploy.deploy.emulator import instances as emulator
from tests.support.cli import run_cli
from tests.support.emulator_env import image_or_skip
from tests.support.netcheck import pypi_reachable

# torch: the models are exported with torch and litert-torch ([compress] extra).
pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.torch]

INSTANCE = "ci-arm64"
# Step durations of the last run, printed at the end (they go into the CI log).
STEP_SECONDS: dict[str, float] = {}


def _timed(step: str, started: float) -> None:
    STEP_SECONDS[step] = round(time.monotonic() - started, 1)


def _models(directory: Path) -> tuple[Path, Path, np.ndarray]:
    """A small conv net exported to ONNX and TFLite, and one input for it."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10)
    ).eval()
    example = torch.rand(1, 1, 8, 8)
    onnx_path = directory / "tiny.onnx"
    torch.onnx.export(model, (example,), str(onnx_path), input_names=["x"], output_names=["y"], dynamo=False)
    try:
        import litert_torch
    except ImportError:
        pytest.skip("litert-torch (torch -> TFLite) is only installed on x86_64 hosts")
    tflite_path = directory / "tiny.tflite"
    litert_torch.convert(model, (example,)).export(str(tflite_path))
    return onnx_path, tflite_path, example.numpy()


def _host_output(model: Path, x: np.ndarray) -> np.ndarray:
    if model.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_arm64_vm_provision_run_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not pypi_reachable():
        pytest.skip("PyPI is not reachable: provisioning downloads the aarch64 wheels on this host")
    onnx_path, tflite_path, x = _models(tmp_path)
    np.save(tmp_path / "x.npy", x)

    started = time.monotonic()
    image = image_or_skip(monkeypatch)
    _timed("build_or_reuse_image", started)
    built = json.loads((image / "image.json").read_text())["build_seconds"]

    started = time.monotonic()
    try:
        vm = emulator.start_instance(name=INSTANCE, cpus=2, memory=2048)
    except emulator_image.EmulatorUnavailable as err:
        pytest.skip(f"the emulated guest is too slow to boot here: {err}")
    _timed("boot_to_ssh", started)
    try:
        assert vm["state"] == "running"
        status = run_cli("emulator", "status", "--json")
        assert [r["name"] for r in json.loads(status.stdout) if r["state"] == "running"] == [INSTANCE]

        started = time.monotonic()
        done = run_cli("provision", "--target", INSTANCE, "--json", timeout=2400)
        assert done.returncode == 0, done.stderr
        provisioned = json.loads(done.stdout)
        _timed("provision", started)
        assert provisioned["arch"] == "aarch64" and provisioned["python"] == "3.11"
        assert provisioned["installed"]["onnxruntime"] == "1.31.1"
        assert provisioned["installed"]["ai-edge-litert"] == "2.3.0"
        assert all("aarch64" in w["file"] or "none-any" in w["file"] for w in provisioned["wheels"])

        for model in (onnx_path, tflite_path):
            started = time.monotonic()
            out_dir = tmp_path / f"out-{model.suffix[1:]}"
            ran = run_cli("run", str(model), "--target", INSTANCE, "--inputs", str(tmp_path / "x.npy"),
                          "--out", str(out_dir), timeout=900)  # fmt: skip
            assert ran.returncode == 0, ran.stderr
            (output,) = list(out_dir.glob("*.npy"))
            np.testing.assert_allclose(np.load(output), _host_output(model, x), rtol=1e-4, atol=1e-5)
            _timed(f"run_{model.suffix[1:]}", started)

            started = time.monotonic()
            prof = run_cli("profile", str(model), "--target", INSTANCE, "--runs", "20", "--warmup", "3",
                           "--min-seconds", "0", "--warmup-seconds", "0", "--json", timeout=900)  # fmt: skip
            assert prof.returncode == 0, prof.stderr
            doc = json.loads(prof.stdout)
            assert doc["target"]["arch"] == "aarch64"
            assert doc["target"]["emulated"] is True
            assert doc["latency_ms"]["n"] == 20 and doc["latency_ms"]["p50"] > 0
            assert doc["power"]["source"] == "estimated"
            _timed(f"profile_{model.suffix[1:]}", started)
    finally:
        started = time.monotonic()
        stopped = emulator.stop_instance(INSTANCE)
        _timed("stop", started)
        print(f"\nemulator image build steps (s): {built}\nqemu test steps (s): {STEP_SECONDS}")
    # "killed" only when the guest outlasts the poweroff grace period (a very loaded machine)
    assert stopped["how"] in ("powered off", "killed")
    assert emulator.list_instances()[0]["state"] == "stopped"
    assert not emulator._is_our_qemu(vm["pid"], Path(vm["directory"]))
