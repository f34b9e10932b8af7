"""Offline provisioning: wheel tags per device, bad input, and a real install on the local target."""

from __future__ import annotations

import json
import subprocess

import pytest

from edgedeploy.deploy.inventory import load_inventory
from edgedeploy.deploy.provision import wheel_platform
from edgedeploy.errors import UsageError
from tests.support.cli import run_cli
from tests.support.netcheck import pypi_reachable


def test_wheel_tags_follow_the_device() -> None:
    bookworm = wheel_platform("aarch64", "3.11", "2.36")
    assert bookworm.platforms == ["manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux2014_aarch64"]
    args = bookworm.pip_args()
    for expected in (
        "--python-version=3.11",
        "--implementation=cp",
        "--abi=cp311",
        "--abi=abi3",
        "--abi=none",
    ):
        assert expected in args
    assert "--only-binary=:all:" in args
    # An older glibc (Ubuntu 18.04 on a Jetson Nano: 2.27) must not get manylinux_2_28 wheels.
    assert wheel_platform("aarch64", "3.8", "2.27").platforms == [
        "manylinux_2_27_aarch64",
        "manylinux2014_aarch64",
    ]
    with pytest.raises(UsageError, match="armv7l"):
        wheel_platform("armv7l", "3.11", "2.36")
    with pytest.raises(UsageError, match="no glibc"):
        wheel_platform("aarch64", "3.11", "")


def test_bad_runtime_and_unknown_target_are_one_line_errors() -> None:
    done = run_cli("provision", "--target", "local", "--runtime", "tensorflow-gpu")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: unknown runtime 'tensorflow-gpu'")
    done = run_cli("provision", "--target", "nosuchdevice")
    assert done.returncode == 2 and "unknown target 'nosuchdevice'" in done.stderr


@pytest.mark.slow
def test_provision_local_target_installs_and_records_the_venv() -> None:
    if not pypi_reachable():
        pytest.skip("PyPI is not reachable from this machine")
    done = run_cli("provision", "--target", "local", "--runtime", "ai-edge-litert", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["installed"]["ai-edge-litert"] == "2.3.0" and result["installed"]["numpy"] == "2.4.6"
    assert "onnxruntime" not in result["installed"]
    assert result["sent_bytes"] == sum(w["bytes"] for w in result["wheels"]) > 0
    target = load_inventory().get("local")
    assert target.python == result["interpreter"]
    assert target.vars["edgedeploy_provisioned"]["runtimes"] == {"ai-edge-litert": "2.3.0"}
    # The venv is real and isolated: the runtime imports there, and it is not the host's environment.
    check = [target.python, "-c", "import sys, ai_edge_litert.interpreter; print(sys.prefix)"]
    prefix = subprocess.run(check, capture_output=True, text=True, check=True).stdout.strip()
    assert prefix.endswith("/venv")
