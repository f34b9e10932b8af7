"""Conv+BatchNorm models (third-party CNNs): clustering survives export, and rates come from the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgedeploy.compress.bnfold import fold_batchnorm
from edgedeploy.compress.filereport import onnx_file_storage
from edgedeploy.compress.pipeline import CompressionData, compress_model
from edgedeploy.compress.survival import onnx_weight_tensors
from edgedeploy.data.sources import load_data
from edgedeploy.train import seed_everything, train


class ConvBN(nn.Module):
    """A published-MNIST-CNN shape: conv -> BN -> ReLU twice, then a Linear head."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.head = nn.Linear(16 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = nn.functional.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return self.head(x.flatten(1))


@pytest.fixture(scope="module")
def data() -> CompressionData:
    return CompressionData.from_splits(load_data("digits", train_samples=600, val_fraction=0.2))


@pytest.fixture(scope="module")
def trained(data: CompressionData) -> nn.Module:
    seed_everything(0)
    model = ConvBN()
    train(model, data.train, epochs=4, batch_size=32, lr=3e-3)
    return model.eval()


def test_fold_batchnorm_keeps_outputs_and_removes_the_norms(
    trained: nn.Module, data: CompressionData
) -> None:
    import copy

    folded = copy.deepcopy(trained)
    assert fold_batchnorm(folded) == ["bn1", "bn2"]
    assert isinstance(folded.bn1, nn.Identity) and folded.conv1.bias is not None
    x = torch.as_tensor(data.eval_x[:64])
    with torch.no_grad():
        torch.testing.assert_close(folded(x), trained(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("fold", [True, False])
def test_clusters_survive_export_only_with_batchnorm_folded(
    trained: nn.Module, data: CompressionData, fold: bool, tmp_path: Path
) -> None:
    recipe = [{"stage": "cluster", "clusters": 8, "epochs": 0.5, "fold_batchnorm": fold}]
    path = tmp_path / "model.onnx"
    result = compress_model(trained, recipe, data=data, onnx_path=path)
    summary = result.summary
    conv_tensors = [t for t in onnx_weight_tensors(path) if len(t.shape) == 4]
    assert len(conv_tensors) == 2
    if fold:
        assert summary["survival"]["onnx"]["survived"]
        assert max(t.unique for t in conv_tensors) <= 8
        assert result.reports[0].details["folded_batchnorm"] == ["bn1", "bn2"]
    else:
        # The exporter folds BatchNorm itself and scales each output channel: 8 values become many.
        assert not summary["survival"]["onnx"]["survived"]
        assert min(t.unique for t in conv_tensors) > 8
    # The reported rate is the file's, whatever the torch model says.
    assert summary["deep_compression_bytes"] == onnx_file_storage(path).total_bytes
    assert summary["rate"] == pytest.approx(summary["fp32_bytes"] / onnx_file_storage(path).total_bytes)
    # Accuracy measured on the exported file, per stage and overall.
    report = result.reports[0]
    assert report.file_accuracy is not None and report.file_bytes and report.file_bytes > 0
    assert summary["accuracy_exported_file"] == pytest.approx(summary["accuracy_after"], abs=0.01)
    assert summary["accuracy_exported_file"] > 0.8
    assert np.isfinite(summary["input_file"]["file_accuracy"])
