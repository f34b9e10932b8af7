"""The supported runtimes are declared once, in the runner (it needs them on the device); the host's
readers (provision, the facts probe, the CLI's help) read that declaration and agree with it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from edgedeploy.deploy import provision
from edgedeploy.deploy.facts import PROBE_SCRIPT
from edgedeploy.runner import RUNNER_PATH, provisionable_runtimes, supported_runtimes
from tests.support.cli import run_cli


def _runner_module() -> ModuleType:
    """The runner as the device runs it (its own file), to compare with what the host reads."""
    spec = importlib.util.spec_from_file_location("edgedeploy_runner_under_test", RUNNER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_host_reads_exactly_the_runners_declaration() -> None:
    runner = _runner_module()
    assert supported_runtimes() == runner.RUNTIMES
    assert runner.RUNTIMES_FOR == {
        ".onnx": ["onnxruntime"],
        ".tflite": ["ai-edge-litert", "tflite-runtime", "tensorflow"],
    }
    assert runner.MODULE_OF["ai-edge-litert"] == "ai_edge_litert.interpreter"
    assert "pip install onnxruntime / ai-edge-litert" in runner.INSTALL_HINT


def test_provision_and_the_cli_take_their_runtimes_from_it() -> None:
    assert provisionable_runtimes() == provision.RUNTIME_REQUIREMENTS
    assert provision.RUNTIME_REQUIREMENTS == {
        "onnxruntime": "onnxruntime==1.31.1",
        "ai-edge-litert": "ai-edge-litert==2.3.0",
    }
    assert provision.RUNTIME_MODULES == {
        "onnxruntime": "onnxruntime",
        "ai-edge-litert": "ai_edge_litert.interpreter",
    }
    helps = run_cli("run", "--help").stdout + run_cli("provision", "--help").stdout
    assert all(name in helps for name in supported_runtimes())


def test_the_probe_checks_the_runtimes_it_is_given(tmp_path: Path) -> None:
    runtimes = {"onnxruntime": "onnxruntime", "no-such-runtime": "no_such_module_xyz.interpreter"}
    out = subprocess.run(
        [sys.executable, str(PROBE_SCRIPT), str(tmp_path), "/", json.dumps(runtimes)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    found = json.loads(out.stdout)["runtimes"]
    assert list(found) == ["onnxruntime", "no-such-runtime", "numpy"]
    assert found["onnxruntime"]["available"] and not found["no-such-runtime"]["available"]
