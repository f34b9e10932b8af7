"""`edgedeploy compress --data SPEC` through the CLI entry point on small real data (one epoch)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_data_sources import fashion_images, needs_fashion, write_image_folder

MODELS = """
import torch
from torch import nn


def small_cnn(in_channels: int = 1, num_classes: int = 3) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, num_classes),
    )


def gray3() -> nn.Module:
    torch.manual_seed(0)
    return small_cnn(1, 3)


def rgb3() -> nn.Module:
    torch.manual_seed(0)
    return small_cnn(3, 3)


def vector4() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))
"""

RECIPE = """
stages:
  - {stage: prune, sparsity: 0.5, epochs: 2, lr: 0.005}
  - {stage: qat, epochs: 0.5, calibration_samples: 32}
"""

DISTILL_ONLY = "stages: [{stage: distill, alpha: 1.0, epochs: 1}]\n"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compress-data")
    (root / "usermodels.py").write_text(MODELS)
    (root / "recipe.yaml").write_text(RECIPE)
    (root / "distill.yaml").write_text(DISTILL_ONLY)
    return root


def compress(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    from edgedeploy import cli

    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(workdir))
    monkeypatch.setattr(sys, "argv", ["edgedeploy", "compress", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@needs_fashion
def test_compress_on_an_image_folder(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    classes = {0: "tshirt", 1: "trouser", 7: "sneaker"}
    write_image_folder(
        workdir / "photos" / "train", {classes[c]: x for c, x in fashion_images(60, (0, 1, 7)).items()}
    )
    val = fashion_images(20, (0, 1, 7), offset=60)
    write_image_folder(workdir / "photos" / "val", {classes[c]: x for c, x in val.items()})
    code, out, err = compress(
        workdir,
        monkeypatch,
        capsys,
        "usermodels:gray3",
        "--data",
        "photos",
        "--batch-size",
        "16",
        "--workers",
        "1",
        "--mean",
        "0.5",
        "--std",
        "0.5",
        "-r",
        "recipe.yaml",
        "-o",
        "out-folder",
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["data"]["classes"] == ["sneaker", "trouser", "tshirt"]
    assert doc["data"]["normalisation"] == {"mean": [0.5], "std": [0.5]} and not doc["warnings"]
    assert doc["train_samples"] == 180 and doc["eval_samples"] == 60
    assert [s["stage"] for s in doc["stages"]] == ["prune", "qat"]
    # Trained for real on the folder: better than the 1/3 of guessing.
    assert doc["summary"]["accuracy_after"] > 0.5
    assert (workdir / "out-folder" / "model.onnx").exists()
    # Per stage: params, MACs, the exported file's size and accuracy on the folder's val images, and
    # its latency on the local target through the runner.
    for stage in doc["stages"]:
        assert stage["params_after"] > 0 and stage["macs_after"] > 0
        assert Path(stage["file"]).is_file() and Path(stage["file"]).stat().st_size == stage["file_bytes"]
        assert 0 <= stage["file_accuracy"] <= 1 and stage["latency_ms_p50"] > 0
    assert doc["stages"][-1]["file_accuracy"] == pytest.approx(doc["summary"]["accuracy_after"], abs=0.02)
    assert doc["latency"]["input_ms_p50"] > 0 and doc["latency"]["timed_on"]["target"] == "local"


def test_compress_on_an_npz_and_the_old_dataset_option(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    y = np.argmax(x[:, :4], axis=1)
    np.savez(workdir / "vectors.npz", x_train=x[:300], y_train=y[:300], x_val=x[300:], y_val=y[300:])
    code, out, err = compress(
        workdir, monkeypatch, capsys, "usermodels:vector4", "--dataset", "vectors.npz", "-r", "recipe.yaml",
        "--latency-target", "none",
        "--batch-size", "16",
        "-o", "out-npz", "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["data"]["input_shape"] == [6] and doc["eval_samples"] == 100
    assert "not normalised" in doc["warnings"][0]
    assert doc["summary"]["accuracy_after"] > 0.4  # 4 classes: chance is 0.25


def test_compress_on_a_factory(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "userdata.py").write_text(
        "import torch\n"
        "from torch.utils.data import TensorDataset\n"
        "def splits():\n"
        "    g = torch.Generator().manual_seed(1)\n"
        "    x = torch.randn(300, 6, generator=g)\n"
        "    y = x[:, :4].argmax(1)\n"
        "    return {'train': TensorDataset(x[:240], y[:240]), 'val': TensorDataset(x[240:], y[240:])}\n"
    )
    code, out, err = compress(
        workdir, monkeypatch, capsys, "usermodels:vector4", "--data", "userdata:splits", "-r", "recipe.yaml",
        "--latency-target", "none",
        "--batch-size", "16",
        "-o", "out-factory", "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["data"]["source"].endswith("(module:factory)") and doc["train_samples"] == 240


@needs_fashion
def test_unlabelled_folder_distils_and_refuses_label_stages(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    loose = workdir / "unlabelled"
    loose.mkdir()
    from PIL import Image

    for i, pixels in enumerate(np.concatenate(list(fashion_images(30, (0, 1, 7)).values()))):
        Image.fromarray(pixels).save(loose / f"{i:03d}.png")
    code, out, err = compress(
        workdir, monkeypatch, capsys, "usermodels:gray3", "--data", "unlabelled", "-r", "distill.yaml",
        "--latency-target", "none",
        "-o", "out-unlabelled", "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["data"]["labelled"] is False and doc["summary"]["accuracy_after"] is None
    code, _, err = compress(
        workdir, monkeypatch, capsys, "usermodels:gray3", "--data", "unlabelled", "-r", "recipe.yaml",
        "-o", "out-unlabelled-2",
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "no labels to fine-tune on" in err


@needs_fashion
def test_shapes_the_model_rejects_are_one_line(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image_folder(
        workdir / "rgbphotos", {"a": fashion_images(5, (0,))[0], "b": fashion_images(5, (1,))[1]}
    )
    code, _, err = compress(
        workdir, monkeypatch, capsys, "usermodels:rgb3", "--data", "rgbphotos", "--channels", "1",
        "-o", "out-shape",
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1
    assert "cannot run on inputs of shape [1, 28, 28]" in err and "--channels" in err
    code, _, err = compress(workdir, monkeypatch, capsys, "usermodels:gray3", "--data", "nowhere", "-o", "x")
    assert code == 2 and "no such file or folder" in err
