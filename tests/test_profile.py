"""`edgedeploy run` and `edgedeploy profile` through the CLI, on the local target and on a real OpenSSH
server on loopback, for ONNX and TFLite models; measured power through the inventory's sysfs root;
bad input as one clear line."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from edgedeploy.runner.device.runtimes import X64_QUANT_PRECISION, int8_saturates
from tests.support.cli import one_error_line, run_cli
from tests.support.onnx_models import dense_onnx, onnx_model
from tests.support.sshd import SSHServer
from tests.test_runner import BOARD, JETSON_ORIN_INA3221, interpreters, write_tree

HAVE_SSH_TRANSPORT = importlib.util.find_spec("edgedeploy.deploy.transports.ssh") is not None
POWER_MODEL = {"idle_w": 2.0, "busy_w": 6.0, "note": "test board"}
RUNTIME_OF = {"onnx": "onnxruntime", "tflite": "ai-edge-litert"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same tiny MLP as ONNX (onnx.helper) and as TFLite (litert-torch, no TensorFlow needed)."""
    import litert_torch
    import torch

    folder = tmp_path_factory.mktemp("profile-models")
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(16, 12), torch.nn.ReLU(), torch.nn.Linear(12, 8)).eval()
    example = (torch.zeros(1, 16),)
    litert_torch.convert(mlp, example).export(str(folder / "tiny.tflite"))
    return {
        "onnx": dense_onnx(folder / "tiny.onnx"),
        "tflite": folder / "tiny.tflite",
        "tflite-int8": int8_tflite(mlp, example, folder / "tiny-int8.tflite"),
    }


def int8_tflite(model, example, path: Path) -> Path:  # noqa: ANN001 - torch objects
    """Fully int8 TFLite (int8 input and output tensors), as PT2E static quantisation makes it."""
    import litert_torch
    import torch
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True)
    )
    prepared = quantize_pt2e.prepare_pt2e(torch.export.export(model, example).module(), quantizer)
    prepared(torch.randn(8, 16)[:1])
    converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    litert_torch.convert(converted, example, quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(
        str(path)
    )
    return path


def target_for(kind: str, request: pytest.FixtureRequest, tmp_path: Path, **host_vars: object) -> list[str]:
    """CLI arguments naming the target: `local` (or a local board with `host_vars`), or the loopback
    sshd through an inventory file."""
    inventory = tmp_path / "inventory.yml"
    if kind == "local":
        if not host_vars:
            return ["--target", "local"]
        board = {"ansible_connection": "local", "edgedeploy_power_model": POWER_MODEL, **host_vars}
        inventory.write_text(json.dumps({"all": {"hosts": {"board": board}}}))  # JSON is YAML
        return ["--target", "board", "--inventory", str(inventory)]
    if not HAVE_SSH_TRANSPORT:
        pytest.skip("edgedeploy.deploy.transports.ssh is not importable")
    server: SSHServer = request.getfixturevalue("sshd")
    # The device's Python is this venv's, which has the runtimes (as a provisioned board would).
    inventory.write_text(
        server.inventory_yaml(
            "board",
            ansible_python_interpreter=sys.executable,
            edgedeploy_power_model=POWER_MODEL,
            **host_vars,
        )
    )
    return ["--target", "board", "--inventory", str(inventory)]


def reference_outputs(model: Path, x: np.ndarray) -> np.ndarray:
    if model.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
@pytest.mark.parametrize("kind", ["local", "ssh"])
def test_profile_json_interface(
    kind: str, fmt: str, models: dict[str, Path], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    target = target_for(kind, request, tmp_path)
    out = run_cli("profile", str(models[fmt]), *target, "--runs", "25", "--warmup", "3", "--threads", "1",
                  "--json", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    lat = doc["latency_ms"]
    # --runs and --warmup are minimums: by default the timed runs last >= 1 s and the warm-up >= 0.5 s.
    assert lat["n"] > 25 and doc["timed_seconds"] >= 1.0 and 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
    assert doc["settings"]["min_seconds"] == 1.0 and doc["settings"]["warmup_seconds"] == 0.5
    assert lat["mean"] > 0 and lat["std"] >= 0
    assert doc["init_ms"] > 0 and doc["first_inference_ms"] > 0
    assert doc["memory"]["peak_rss_mb"] > 10
    runtime = {"name": RUNTIME_OF[fmt], "version": doc["runtime"]["version"], "threads": 1}
    if fmt == "onnx" and int8_saturates():  # the targets here run on this host's CPU
        runtime["session_options"] = X64_QUANT_PRECISION
    assert doc["runtime"] == runtime
    assert doc["runtime"]["version"]
    assert doc["target"]["name"] == ("local" if kind == "local" else "board")
    assert doc["target"]["arch"] and doc["target"]["cpu_count"] >= 1 and "isa" in doc["target"]
    # This host has no power sensors: the figure is an estimate and says so.
    assert doc["power"]["source"] == "estimated" and "power model" in doc["power"]["method"]
    assert doc["power"]["energy_per_inference_mj"] > 0
    assert doc["power"]["why_not_measured"] == "no power sensor found on this device"
    assert doc["model"]["format"] == fmt and len(doc["model"]["sha256"]) == 64
    stored = Path(doc["path"])
    stored = stored if stored.is_absolute() else tmp_path / stored
    assert json.loads(stored.read_text())["latency_ms"] == lat


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
@pytest.mark.parametrize("kind", ["local", "ssh"])
def test_run_writes_each_output_as_npy(
    kind: str, fmt: str, models: dict[str, Path], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    target = target_for(kind, request, tmp_path)
    x = np.random.default_rng(3).standard_normal((1, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = run_cli("run", str(models[fmt]), *target, "--inputs", str(tmp_path / "x.npy"),
                  "--out", str(tmp_path / "outs"), "--json", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    (output,) = doc["outputs"]
    written = tmp_path / "outs" / f"{output['file']}.npy"
    assert doc["written"] == {output["name"]: str(written)}
    assert [p.name for p in (tmp_path / "outs").iterdir()] == [written.name], "no temp files left"
    np.testing.assert_allclose(np.load(written), reference_outputs(models[fmt], x), rtol=1e-5, atol=1e-5)


def test_repeats_report_spread_with_pinning_and_cooldown(models: dict[str, Path], tmp_path: Path) -> None:
    out = run_cli("profile", str(models["onnx"]), "--runs", "20", "--warmup", "2", "--repeats", "3",
                  "--min-seconds", "0.1", "--warmup-seconds", "0", "--cooldown", "0.1", "--cores", "0",
                  "--json", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    spread = doc["repeat_spread"]
    assert spread["repeats"] == 3 and len(doc["repeats"]) == 3
    medians = sorted(r["latency_ms"]["p50"] for r in doc["repeats"])
    assert doc["latency_ms"]["p50"] == medians[1], "the profile shows the median repeat"
    assert spread["p50_min_ms"] == medians[0] and spread["p50_max_ms"] == medians[2]
    assert spread["p50_cv"] >= 0 and spread["throttled_repeats"] == 0
    # CPU time per inference and run-queue waits, per repeat: what tells load on the device from noise.
    assert spread["cpu_time_p50_cv"] >= 0 and 0 <= spread["contended_repeats"] <= 3
    assert all(r["cpu_time_p50_ms"] > 0 and 0 <= r["waiting_fraction"] <= 1 for r in doc["repeats"])
    assert doc["cpu_time_ms"]["p50"] > 0 and isinstance(doc["contended"], bool)
    assert doc["cpu"]["affinity"] == [0] and doc["settings"]["cores"] == "0"


@pytest.mark.parametrize("kind", ["local", "ssh"])
def test_measured_power_from_the_boards_sensors(
    kind: str, models: dict[str, Path], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    sysfs = write_tree(tmp_path / "sys", {**BOARD, **JETSON_ORIN_INA3221})
    target = target_for(kind, request, tmp_path, edgedeploy_sysfs_root=str(sysfs))
    out = run_cli("profile", str(models["onnx"]), *target, "--runs", "30", "--min-seconds", "0.1",
                  cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "measured" in out.stdout and "VDD_IN" in out.stdout
    (stored,) = (tmp_path / "profiles" / "board" / "tiny").glob("*.json")
    doc = json.loads(stored.read_text())
    assert doc["power"]["source"] == "measured" and doc["power"]["avg_power_w"] == pytest.approx(6.0)
    assert doc["power"]["energy_per_inference_mj"] > 0
    assert doc["thermal"]["before"]["zones"][0]["temp_c"] == 47.25 and doc["throttled"] is False


def test_missing_runtime_says_what_to_install(models: dict[str, Path], tmp_path: Path) -> None:
    if importlib.util.find_spec("tflite_runtime") is not None:
        pytest.skip("tflite-runtime is installed here")
    line = one_error_line(
        run_cli("profile", str(models["tflite"]), "--runtime", "tflite-runtime", cwd=tmp_path)
    )
    assert "no runtime for .tflite" in line and "pip install" in line and "edgedeploy provision" in line
    line = one_error_line(run_cli("profile", str(models["tflite"]), "--runtime", "onnxruntime", cwd=tmp_path))
    assert "cannot run .tflite files" in line
    assert not (tmp_path / "profiles").exists(), "a failed profile must not leave a file behind"


def test_bad_tflite_inputs_and_missing_device_python(models: dict[str, Path], tmp_path: Path) -> None:
    np.save(tmp_path / "wide.npy", np.zeros((1, 17), np.float32))
    line = one_error_line(run_cli("run", str(models["tflite"]), "--inputs", str(tmp_path / "wide.npy")))
    assert "expects shape [1, 16]" in line
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(models["tflite"].read_bytes()[:300])
    assert "cannot load" in one_error_line(run_cli("profile", str(corrupt), cwd=tmp_path))
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        '{"all": {"hosts": {"nopy": {"ansible_connection": "local",'
        ' "ansible_python_interpreter": "/nonexistent/python3"}}}}'
    )
    line = one_error_line(run_cli("profile", str(models["onnx"]), "--target", "nopy",
                                  "--inventory", str(inventory), cwd=tmp_path))  # fmt: skip
    assert "/nonexistent/python3 not found on the device" in line
    assert not (tmp_path / "profiles").exists()


def test_float_npy_is_quantised_for_an_int8_tflite_input(models: dict[str, Path], tmp_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    x = np.random.default_rng(5).standard_normal((1, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = run_cli("run", str(models["tflite-int8"]), "--inputs", str(tmp_path / "x.npy"),
                  "--out", str(tmp_path / "outs"), "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["inputs"][0]["dtype"] == "int8" and doc["outputs"][0]["dtype"] == "int8"
    interp = Interpreter(model_path=str(models["tflite-int8"]))
    interp.allocate_tensors()
    detail = interp.get_input_details()[0]
    scale, zero_point = detail["quantization"]
    interp.set_tensor(detail["index"], np.clip(np.round(x / scale + zero_point), -128, 127).astype(np.int8))
    interp.invoke()
    want = interp.get_tensor(interp.get_output_details()[0]["index"])
    np.testing.assert_array_equal(np.load(tmp_path / "outs" / f"{doc['outputs'][0]['file']}.npy"), want)


def test_too_old_device_python_is_one_clear_line(models: dict[str, Path], tmp_path: Path) -> None:
    found = interpreters("3.7")
    if not found:
        pytest.skip("no python3.7 on this machine to play an old device")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        "oldpy": {"ansible_connection": "local", "ansible_python_interpreter": found[0]}
                    }
                }
            }
        )
    )
    line = one_error_line(run_cli("profile", str(models["onnx"]), "--target", "oldpy",
                                  "--inventory", str(inventory), cwd=tmp_path))  # fmt: skip
    assert "Python 3.7 on the device is too old; the runner needs 3.8+" in line
    assert not (tmp_path / "profiles").exists()


def test_run_matches_several_npy_inputs_to_the_inputs_in_order(tmp_path: Path) -> None:
    model = onnx_model(
        tmp_path / "two.onnx",
        [("Sub", ["a", "b"], ["a_minus_b"]), ("Mul", ["a", "b"], ["a_times_b"])],
        {"a": [1, 3], "b": [1, 3]},
        {"a_minus_b": [1, 3], "a_times_b": [1, 3]},
    )
    a, b = np.array([[1, 2, 3]], np.float32), np.array([[10, 20, 30]], np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    out = run_cli("run", str(model), "--inputs", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"),
                  "--out", str(tmp_path / "outs"), cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "outs" / "a_minus_b.npy"), a - b)
    np.testing.assert_array_equal(np.load(tmp_path / "outs" / "a_times_b.npy"), a * b)
    line = one_error_line(run_cli("run", str(model), "--inputs", str(tmp_path / "a.npy"), cwd=tmp_path))
    assert "model has 2 inputs but 1 .npy files were given" in line
