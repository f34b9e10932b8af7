"""The core install (no [compress] extra): the verbs that need no torch work without it, the ones that
do say which extra to install in one line, and `import edgedeploy` / `--help` import no framework.

Torch is hidden from the CLI process with `sys.modules[name] = None` (what `import` and
`importlib.util.find_spec` treat as "not installed"), so this runs the same in the dev venv, which has
torch, and in the core-only venvs of `make test-core`, which have not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import REPO, one_error_line
from tests.support.onnx_models import dense_onnx, onnx_model

HIDDEN = ("torch", "torchvision", "onnxscript", "litert_torch", "zarr", "pureml")
EXTRA_HINT = 'needs the [compress] extra: pip install "edgedeploy[compress]"'


def run_without_torch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`edgedeploy ARGS` in a process where the [compress] packages cannot be imported."""
    code = (
        "import sys\n"
        f"for name in {HIDDEN!r}:\n"
        "    sys.modules[name] = None\n"
        "from edgedeploy.cli import main\n"
        f"sys.argv = ['edgedeploy', *{list(args)!r}]\n"
        "main()\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["compress", "edgedeploy.models.zoo:lenet300"], "compress"),
        (["quickstart", "--epochs", "1"], "quickstart"),
        (["convert", "edgedeploy.models.zoo:lenet300"], "edgedeploy.models.zoo:lenet300: a torch model"),
        (["convert", "model.pt"], "model.pt: a torch model"),
        (["inspect", "model.pt"], "model.pt: inspecting a torch file"),
    ],
)
def test_torch_verbs_name_the_extra(tmp_path: Path, args: list[str], what: str) -> None:
    with zipfile.ZipFile(tmp_path / "model.pt", "w") as archive:  # a torch file is a zip archive
        archive.writestr("archive/data.pkl", b"")
    out = run_without_torch(*args, cwd=tmp_path)
    assert one_error_line(out) == f"error: {what} {EXTRA_HINT}"
    assert out.returncode == 2
    assert not (tmp_path / "out").exists()  # nothing written


def test_core_verbs_work_without_torch(tmp_path: Path) -> None:
    model = dense_onnx(tmp_path / "tiny.onnx")
    info = run_without_torch("inspect", str(model), "--json", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["format"] == "onnx"
    converted = run_without_torch(
        "convert", str(model), "--precision", "int8", "-o", "tiny-int8.onnx", "--json", cwd=tmp_path
    )
    assert converted.returncode == 0, converted.stderr
    assert (tmp_path / "tiny-int8.onnx").is_file()
    profiled = run_without_torch(
        "profile", "tiny-int8.onnx", "--target", "local", "--runs", "5", "--warmup", "1",
        "--min-seconds", "0", "--warmup-seconds", "0", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert profiled.returncode == 0, profiled.stderr
    assert json.loads(profiled.stdout)["latency_ms"]["n"] >= 5
    listed = run_without_torch("profiles", "list", "--dir", "profiles", "--json", cwd=tmp_path)
    assert [row["model"] for row in json.loads(listed.stdout)] == ["tiny-int8"]


def test_import_and_help_load_no_framework() -> None:
    code = (
        "import sys, subprocess\n"
        "import edgedeploy, edgedeploy.cli\n"
        "heavy = {'torch', 'onnxruntime', 'onnx', 'tensorflow', 'numpy', 'matplotlib', 'paramiko'}\n"
        "print(sorted(heavy & {name.partition('.')[0] for name in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stderr
    help_out = subprocess.run(
        [sys.executable, "-m", "edgedeploy", "--help"], capture_output=True, text=True, timeout=120
    )
    assert help_out.returncode == 0 and "compress" in help_out.stdout


def test_mnist_shaped_onnx_converts_without_the_mnist_data(tmp_path: Path) -> None:
    """MNIST digits come with the [compress] extra; without it the model is verified on generated inputs."""
    onnx_model(
        tmp_path / "m.onnx",
        [("Flatten", ["image"], ["flat"]), ("MatMul", ["flat", "W"], ["logits"])],
        {"image": [1, 1, 28, 28]},
        {"logits": [1, 10]},
        {"W": np.random.default_rng(0).standard_normal((784, 10)).astype(np.float32)},
    )
    out = run_without_torch("convert", "m.onnx", "-o", "m-fp32.onnx", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    verification = json.loads(out.stdout)["verification"]
    assert "MNIST" not in verification["inputs"] and "accuracy" not in verification
