"""The supported runtimes are declared once, in the device package (the runner needs them on the
device); the host's readers (provision, the facts probe, the CLI's help) read that declaration and
agree with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from edgedeploy.deploy import provision
from edgedeploy.runner import provisionable_runtimes, supported_runtimes
from tests.support.cli import run_cli, runner_pyz


def _runner_module() -> SimpleNamespace:
    """The runtimes module as the device imports it (from the zipapp, in its own Python process), to
    compare with what the host reads."""
    names = ["RUNTIMES", "RUNTIMES_FOR", "MODULE_OF", "INSTALL_HINT"]
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from edgedeploy_device import runtimes; "
        f"print(json.dumps({{n: getattr(runtimes, n) for n in {names!r}}}))"
    )
    argv = [sys.executable, "-c", code, str(runner_pyz())]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    return SimpleNamespace(**json.loads(out.stdout))


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


def test_the_probe_checks_the_declared_runtimes(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(runner_pyz()), "probe", str(tmp_path), "/"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    found = json.loads(out.stdout)["runtimes"]
    assert list(found) == [*supported_runtimes(), "numpy"]
    assert found["onnxruntime"]["available"] and found["onnxruntime"]["version"]
    # tensorflow is declared but not installed here: reported unusable, with the reason.
    assert not found["tensorflow"]["available"] and "tensorflow" in found["tensorflow"]["error"]
