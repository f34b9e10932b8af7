"""Third-party torch models: a class that needs constructor arguments, and normalised inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from edgedeploy.data.sources import load_data
from edgedeploy.train import seed_everything, train
from tests.test_compress_data_cli import compress

MYNET = """
from torch import nn


class Net(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):
        return self.body(x)
"""

NO_TRAINING = "stages: [{stage: prune, sparsity: 0.2, epochs: 0}]\n"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("third-party")
    (root / "mynet.py").write_text(MYNET)
    (root / "none.yaml").write_text(NO_TRAINING)
    return root


def test_state_dict_of_a_class_with_constructor_arguments_needs_a_factory_file(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(workdir))
    import mynet  # type: ignore[import-not-found]

    torch.save(mynet.Net(hidden=32).state_dict(), workdir / "net.pt")
    code, _, err = compress(workdir, monkeypatch, capsys, "net.pt", "--data", "digits", "-o", "o1")
    assert code == 2 and err.count("\n") == 1 and "def build(): return Net(num_classes=10)" in err
    code, _, err = compress(
        workdir, monkeypatch, capsys, "net.pt", "--arch", "mynet:Net", "--data", "digits", "-o", "o2"
    )
    assert code == 2 and err.count("\n") == 1
    assert "calling Net() failed" in err and "factory file" in err and "net_factory.py:build" in err
    # The fix the message gives: a factory file beside the model.
    (workdir / "net_factory.py").write_text(
        "from mynet import Net\n\n\ndef build():\n    return Net(hidden=32)\n"
    )
    code, out, err = compress(
        workdir, monkeypatch, capsys, "net.pt", "--arch", "net_factory.py:build", "--data", "digits",
        "-r", "none.yaml", "--latency-target", "none", "-o", "o3", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["stages"][0]["stage"] == "prune"


def test_mean_std_feed_a_model_trained_on_normalised_inputs(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model trained on normalised digits loses accuracy on raw [0, 1] pixels; --mean/--std fix it."""
    splits = load_data("digits", mean=[0.5], std=[0.05])
    seed_everything(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    train(model, splits.train, epochs=5, batch_size=32)
    torch.save(model, workdir / "normalised.pt")
    accuracy = {}
    for name, extra in (("raw", []), ("normalised", ["--mean", "0.5", "--std", "0.05"])):
        code, out, err = compress(
            workdir, monkeypatch, capsys, "normalised.pt", "--data", "digits", *extra, "-r", "none.yaml",
            "--latency-target", "none", "-o", f"o-{name}", "--json",
        )  # fmt: skip
        assert code == 0, err
        doc = json.loads(out)
        accuracy[name] = doc["summary"]["input_file"]["file_accuracy"]
    assert doc["data"]["normalisation"] == {"mean": [0.5], "std": [0.05]} and not doc["warnings"]
    assert accuracy["normalised"] > 0.9 and accuracy["raw"] < accuracy["normalised"] - 0.1
