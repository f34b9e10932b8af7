"""`edgedeploy compress` end to end through the real CLI: outputs, JSON, repeats and bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from edgedeploy.models.zoo import LeNet300
from tests.support.cli import run_cli

TINY_RECIPE = """
stages:
  - {stage: prune, sparsity: 0.8, epochs: 0.5}
  - {stage: cluster, clusters: 8, epochs: 0.2}
  - {stage: qat, epochs: 0.2, calibration_samples: 64}
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compress-cli")
    torch.manual_seed(0)
    torch.save(LeNet300().state_dict(), root / "lenet300.pt")
    (root / "tiny.yaml").write_text(TINY_RECIPE)
    return root


def test_compress_state_dict_writes_model_onnx_and_report(workdir: Path) -> None:
    args = [
        "lenet300.pt",
        "--arch",
        "lenet300",
        "-r",
        "tiny.yaml",
        "--train-samples",
        "400",
        "-o",
        "out",
        "--json",
    ]
    proc = run_cli("compress", *args, "--repeats", "2", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [s["stage"] for s in doc["stages"]] == ["prune", "cluster", "qat"]
    assert doc["train_samples"] == 400 and doc["repeats"]["n"] == 2 and len(doc["repeats"]["accuracy"]) == 2
    assert doc["repeats"]["accuracy_std"] >= 0
    summary = doc["summary"]
    assert summary["weight_sparsity"] == pytest.approx(0.8, abs=0.005)
    assert summary["survival"]["onnx"]["survived"]
    out = workdir / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "calibration.npy",
        "model.onnx",
        "model.pt",
        "model.pt2",
        "report.json",
        "stages",
    ]
    assert (out / "model.onnx").stat().st_size == summary["deployable_bytes"]
    assert json.loads((out / "report.json").read_text())["summary"]["rate"] == summary["rate"]
    model = torch.load(out / "model.pt", weights_only=False)
    assert float((model.fc1.weight == 0).float().mean()) > 0.7
    # The .pt2 program loads without unpickling code and holds the same sparse weights.
    program = torch.export.load(str(out / "model.pt2"))
    assert torch.equal(program.state_dict["fc1.weight"], model.fc1.weight)
    assert not list(workdir.glob(".out.tmp-*"))  # the staging directory is gone


def test_compress_distils_from_a_given_teacher(workdir: Path) -> None:
    (workdir / "kd.yaml").write_text("stages: [{stage: distill, epochs: 0.3}]\n")
    proc = run_cli(
        "compress",
        "edgedeploy.models.zoo:lenet300",
        "--teacher",
        "edgedeploy.models.zoo:lenet5",
        *["-r", "kd.yaml", "--train-samples", "300", "-o", "kd", "--json"],
        cwd=workdir,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["teacher"] == "edgedeploy.models.zoo:lenet5"
    assert doc["stages"][0]["details"]["teacher"] == "given"


def test_compress_prints_a_table(workdir: Path) -> None:
    proc = run_cli(
        "compress",
        "edgedeploy.models.zoo:lenet300",
        "-r",
        "tiny.yaml",
        "--train-samples",
        "300",
        "-o",
        "table",
        cwd=workdir,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Deep-Compression format" in proc.stdout and "survived" in proc.stdout
    assert "[1/3] prune" in proc.stderr  # progress goes to stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.pt"], "no such file"),
        (["tiny.yaml"], "not a torch model file"),
        (["lenet300.pt"], "name its architecture with --arch"),
        (["lenet300.pt", "--arch", "lenet5"], "do not fit --arch lenet5"),
        (["nosuchmodule:factory"], "cannot import"),
        (["edgedeploy.models.zoo:lenet300", "-r", "missing.yaml"], "cannot read it"),
        (["edgedeploy.models.zoo:lenet300", "-r", "bad_stage.yaml"], "unknown stage 'squash'"),
        (["edgedeploy.models.zoo:lenet300", "-r", "bad_sparsity.yaml"], "outside [0, 1)"),
        (["edgedeploy.models.zoo:lenet300", "-r", "bad_k.yaml"], "clusters must be an integer >= 2"),
        (["edgedeploy.models.zoo:lenet300", "--dataset", "cifar"], "unknown dataset"),
        (
            ["edgedeploy.models.zoo:lenet300", "--teacher", "tiny.yaml"],
            "teacher tiny.yaml: not a torch model",
        ),
        (
            ["edgedeploy.models.zoo:lenet300", "--teacher", "lenet300.pt"],
            "teacher lenet300.pt: is a state_dict; name its architecture with --teacher-arch",
        ),
        (["edgedeploy.models.zoo:lenet300", "--teacher", "wide.pt"], "the teacher gives 12 logits"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(
    workdir: Path,
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In-process through cli.main (the console entry point) to spare a Python start-up per case."""
    from edgedeploy import cli

    (workdir / "bad_stage.yaml").write_text("- stage: squash\n")
    (workdir / "bad_sparsity.yaml").write_text("- {stage: prune, sparsity: 1.5}\n")
    (workdir / "bad_k.yaml").write_text("stages: [{stage: cluster, clusters: 1}]\n")
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(784, 12)), workdir / "wide.pt")
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(sys, "argv", ["edgedeploy", "compress", *args, "-o", "bad-out"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert not (workdir / "bad-out").exists()


def test_corrupt_model_file_via_subprocess(workdir: Path) -> None:
    (workdir / "corrupt.pt").write_bytes(b"PK\x03\x04 this is not a zip archive")
    proc = run_cli("compress", "corrupt.pt", "-o", "corrupt-out", cwd=workdir)
    assert proc.returncode == 2 and proc.stderr.startswith("error: model corrupt.pt: not a torch model file")
    assert proc.stderr.count("\n") == 1 and not (workdir / "corrupt-out").exists()
