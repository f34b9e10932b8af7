"""Each compression technique on a tiny model and a few hundred MNIST samples: the property it promises."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgedeploy.compress.pipeline import CompressionData, compress_model, load_recipe
from edgedeploy.compress.stats import model_stats
from edgedeploy.compress.storage import model_storage
from edgedeploy.compress.survival import export_onnx, onnx_accuracy, onnx_weight_tensors
from edgedeploy.data.augment import random_shift
from edgedeploy.data.mnist import load_mnist
from edgedeploy.errors import UsageError
from edgedeploy.models.zoo import MLP, LeNet5
from edgedeploy.train import seed_everything, train


@pytest.fixture(scope="module")
def data() -> CompressionData:
    train_split, test_split = load_mnist()
    tr, te = train_split.subset(600, seed=1), test_split.subset(300, seed=1)
    return CompressionData(tr.as_float(), tr.labels, te.as_float(), te.labels)


@pytest.fixture(scope="module")
def trained_mlp(data: CompressionData) -> nn.Module:
    seed_everything(0)
    model = MLP(hidden=64)
    train(model, data.train_x, data.train_y, epochs=15)
    return model


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: m.weight.detach() for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)}


def sparsity(w: torch.Tensor) -> float:
    return 1 - float(torch.count_nonzero(w)) / w.numel()


def is_plain(model: nn.Module) -> bool:
    return not any(hasattr(m, "parametrizations") for m in model.modules()) and all(
        not m._forward_pre_hooks and not m._forward_hooks for m in model.modules()
    )


def test_gradual_pruning_reaches_sparsity_per_layer(data: CompressionData, trained_mlp: nn.Module) -> None:
    recipe = [
        {"stage": "prune", "sparsity": 0.8, "scope": "layer", "epochs": 1, "layer_sparsity": {"net.5": 0.5}}
    ]
    result = compress_model(trained_mlp, recipe, data=data)
    w = weights(result.model)
    assert sparsity(w["net.1"]) == pytest.approx(0.8, abs=0.002)
    assert sparsity(w["net.3"]) == pytest.approx(0.8, abs=0.002)
    assert sparsity(w["net.5"]) == pytest.approx(0.5, abs=0.002)
    schedule = result.reports[0].details["schedule"]
    assert schedule["end_step"] < schedule["steps"]  # recovers at full sparsity after the schedule
    assert sparsity(weights(trained_mlp)["net.1"]) == 0  # the input model is untouched


def test_global_pruning_reports_a_layer_it_empties(data: CompressionData, trained_mlp: nn.Module) -> None:
    model = copy.deepcopy(trained_mlp)
    with torch.no_grad():
        model.net[5].weight.mul_(1e-3)  # its weights now rank below every other layer's, as behind BN
    result = compress_model(model, [{"stage": "prune", "sparsity": 0.9, "epochs": 0}], data=data)
    assert result.reports[0].details["emptied_layers"] == ["net.5"]
    assert sparsity(weights(result.model)["net.5"]) >= 0.99
    kept = compress_model(
        model, [{"stage": "prune", "sparsity": 0.9, "epochs": 0, "layer_sparsity": {"net.5": 0.5}}], data=data
    )
    assert "emptied_layers" not in kept.reports[0].details  # its own target keeps it


def test_polynomial_schedule_rises_fast_then_slow() -> None:
    (stage,) = load_recipe([{"stage": "prune", "sparsity": 0.9, "initial_sparsity": 0.1, "power": 3}])
    values = [stage.target("x", p) for p in (0.0, 0.25, 0.5, 1.0)]
    assert values[0] == pytest.approx(0.1) and values[-1] == pytest.approx(0.9)
    assert values[1] - values[0] > values[3] - values[2]  # cubic: most pruning early


def test_global_pruning_masks_survive_later_training(data: CompressionData, trained_mlp: nn.Module) -> None:
    recipe = [
        {"stage": "prune", "sparsity": 0.9, "scope": "global", "epochs": 1},
        {"stage": "distill", "epochs": 1, "temperature": 3, "alpha": 0.5},
    ]
    result = compress_model(trained_mlp, recipe, data=data)
    w = weights(result.model)
    total = sum(x.numel() for x in w.values())
    nonzero = sum(int(torch.count_nonzero(x)) for x in w.values())
    assert 1 - nonzero / total == pytest.approx(0.9, abs=0.002)
    assert sparsity(w["net.5"]) < sparsity(w["net.1"])  # global ranking spares the small output layer
    assert result.reports[1].details["teacher"] == "input"
    assert result.reports[1].nonzeros_after == result.reports[0].nonzeros_after


def test_random_shift_translates_each_image_by_at_most_max_shift(data: CompressionData) -> None:
    images = torch.as_tensor(data.train_x[:64])
    shifted = random_shift(images, 2, torch.Generator().manual_seed(0))
    padded = nn.functional.pad(images, (2, 2, 2, 2))  # what a translation shifts in is background
    offsets = set()
    for image, after in zip(padded, shifted, strict=True):
        matches = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(image[:, dy : dy + 28, dx : dx + 28], after)
        ]
        assert matches, "every output is its input translated by up to 2 px"
        offsets.add(matches[0])
    assert len(offsets) > 10  # each image draws its own shift


def test_distillation_on_a_jittered_transfer_set(data: CompressionData, trained_mlp: nn.Module) -> None:
    recipe = [{"stage": "distill", "epochs": 1, "temperature": 4, "alpha": 0.9, "jitter": 2}]
    (report,) = compress_model(trained_mlp, recipe, data=data).reports
    assert "shifted by up to 2 px" in report.details["transfer_set"]
    assert report.accuracy_after > report.accuracy_before - 0.05


class AlwaysZero(nn.Module):
    """A teacher that is sure every input is a 0, whatever it sees."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), 10)
        logits[:, 0] = 10.0
        return logits


@pytest.mark.parametrize(
    ("distill_stages", "teaches_later"),
    [
        ([{"carry": True}], True),  # the pruning below fine-tunes on the teacher's targets
        ([{"carry": False}], False),  # on the labels
        ([{"carry": True}, {"carry": False}], False),  # a later distill stage without carry ends it
    ],
)
def test_distillation_carried_into_later_stages(
    data: CompressionData, trained_mlp: nn.Module, distill_stages: list, teaches_later: bool
) -> None:
    recipe = [{"stage": "distill", "epochs": 0, "alpha": 1.0, "temperature": 1, **d} for d in distill_stages]
    recipe.append({"stage": "prune", "sparsity": 0.5, "epochs": 3, "lr": 0.003})
    result = compress_model(trained_mlp, recipe, data=data, teacher=AlwaysZero())
    prune = result.reports[-1]
    assert prune.accuracy_before > 0.8
    if teaches_later:
        assert result.reports[0].details["carried"]
        # Taught that everything is a 0, the pruned model says 0 for nearly everything.
        predictions = result.model(torch.from_numpy(data.eval_x)).argmax(1)
        assert float((predictions == 0).float().mean()) > 0.9
    else:
        assert prune.accuracy_after > 0.8


@pytest.mark.parametrize("init", ["forgy", "density", "linear", "kmeans++"])
def test_clustering_keeps_k_values_and_zeros(
    data: CompressionData, trained_mlp: nn.Module, init: str
) -> None:
    recipe = [
        {"stage": "prune", "sparsity": 0.5, "scope": "layer", "epochs": 0.5},
        {
            "stage": "cluster",
            "clusters": 8,
            "init": init,
            "epochs": 1,
            "lr": 1e-3,
            "layer_clusters": {"net.5": 4},
        },
    ]
    result = compress_model(trained_mlp, recipe, data=data)
    pruned = result.reports[0]
    for name, w in weights(result.model).items():
        nonzero_values = torch.unique(w[w != 0])
        assert len(nonzero_values) <= (4 if name == "net.5" else 8)
        assert len(nonzero_values) >= (3 if name == "net.5" else 6)  # centroids tuned, not collapsed
        assert sparsity(w) == pytest.approx(0.5, abs=0.01)
    assert pruned.nonzeros_after == result.reports[1].nonzeros_after
    assert result.reports[1].accuracy_after > 0.6


def test_pcqat_preserves_sparsity_and_clusters_and_bakes_int8(
    data: CompressionData, trained_mlp: nn.Module
) -> None:
    recipe = [
        {"stage": "prune", "sparsity": 0.7, "scope": "layer", "epochs": 0.5},
        {"stage": "cluster", "clusters": 16, "epochs": 0.5, "layers": ["net.1", "net.3"]},
        {"stage": "qat", "epochs": 1, "lr": 1e-3},
    ]
    result = compress_model(trained_mlp, recipe, data=data)
    model = result.model
    assert is_plain(model)
    scales = result.summary["quantization"]
    for name, w in weights(model).items():
        assert sparsity(w) == pytest.approx(0.7, abs=0.01)
        entry = scales[name]
        scale = torch.tensor(entry["weight_scale"]).view(-1, *([1] * (w.dim() - 1)))
        q = w / scale
        assert torch.allclose(q, q.round(), atol=1e-3) and q.abs().max() <= 127.001  # int8-representable
        assert entry["input_scale"] > 0 and 0 <= entry["input_zero_point"] <= 255
    assert len(torch.unique(weights(model)["net.1"])) <= 17  # 16 clusters + zero
    assert scales["net.5"]["weight_per_channel"] and not scales["net.1"]["weight_per_channel"]
    assert result.summary["survival"]["onnx"]["survived"]
    assert "accuracy_int8_simulated" in result.reports[2].details


@pytest.mark.parametrize("mode", ["fp16", "int8_dynamic", "int8_static"])
def test_post_training_quantization(data: CompressionData, trained_mlp: nn.Module, mode: str) -> None:
    result = compress_model(trained_mlp, [{"stage": "quantize", "mode": mode}], data=data)
    w = weights(result.model)["net.1"]
    if mode == "fp16":
        assert torch.equal(w, w.half().float())
    else:
        scale = torch.tensor(result.summary["quantization"]["net.1"]["weight_scale"])[:, None]
        assert torch.allclose(w / scale, (w / scale).round(), atol=1e-3)
    assert result.summary["accuracy_after"] >= result.summary["accuracy_before"] - 0.03


def test_structured_pruning_physically_removes_filters_and_neurons(data: CompressionData) -> None:
    seed_everything(0)
    model = LeNet5()
    recipe = [{"stage": "prune_structured", "amount": 0.5, "epochs": 0.5, "norm": "l2", "round_to": 1}]
    result = compress_model(model, recipe, data=data)
    m = result.model
    assert m.conv1.out_channels == 10 and m.conv2.in_channels == 10 and m.conv2.out_channels == 25
    assert m.fc1.in_features == 25 * 16 and m.fc1.out_features == 250 and m.fc2.in_features == 250
    assert m.fc2.out_features == 10  # the output layer is never cut
    assert result.summary["params"] < 0.3 * sum(p.numel() for p in model.parameters())
    dense_macs = model_stats(model, data.example()).macs
    assert result.reports[0].macs_after < 0.5 * dense_macs  # the cut model does less work


def test_structured_pruning_drops_a_square_layer(data: CompressionData, trained_mlp: nn.Module) -> None:
    recipe = [{"stage": "prune_structured", "amount": 0.25, "drop_layers": 1, "epochs": 0.5, "round_to": 1}]
    result = compress_model(trained_mlp, recipe, data=data)
    assert result.reports[0].details["dropped_layers"] == ["net.3"]
    assert isinstance(result.model.net[3], nn.Identity)
    assert result.model.net[1].out_features == 48 and result.model.net[5].in_features == 48


@pytest.mark.parametrize("kind", ["linear", "channel", "spatial"])
def test_lowrank_recovers_a_low_rank_layer_exactly(kind: str) -> None:
    from edgedeploy.compress.lowrank import LowRankStage

    torch.manual_seed(0)
    rank = 3
    if kind == "linear":
        layer: nn.Module = nn.Linear(40, 30)
        matrix_shape, x = (30, 40), torch.randn(4, 40)
    else:
        layer = nn.Conv2d(6, 8, 3, padding=1)
        matrix_shape = (8, 6 * 9) if kind == "channel" else (6 * 3, 8 * 3)
        x = torch.randn(2, 6, 10, 10)
    low_rank = torch.randn(matrix_shape[0], rank) @ torch.randn(rank, matrix_shape[1])
    with torch.no_grad():
        if kind == "spatial":  # rows (in, kh), columns (out, kw)
            layer.weight.copy_(low_rank.reshape(6, 3, 8, 3).permute(2, 0, 1, 3))
        else:
            layer.weight.copy_(low_rank.reshape(layer.weight.shape))
    stage = LowRankStage.from_params(
        {"energy": 0.9999, "conv_mode": "spatial" if kind == "spatial" else "channel"}
    )
    factorized, found_rank, _ = stage.factorize(layer)
    assert found_rank == rank
    assert torch.allclose(factorized(x), layer(x), atol=1e-4)


def test_lowrank_budget_sets_rank_and_fine_tunes(data: CompressionData) -> None:
    seed_everything(0)
    cut = compress_model(LeNet5(), [{"stage": "lowrank", "budget": 0.2, "epochs": 0.5}], data=data)
    assert cut.reports[0].details["ranks"]["fc1"]["rank"] == int(0.2 * 800 * 500 / 1300)
    assert isinstance(cut.model.fc1, nn.Sequential) and cut.model.fc1[0].out_features == 61
    assert cut.summary["params"] < 0.5 * 431_080


def test_default_recipe_exports_survive_to_onnx(
    data: CompressionData, trained_mlp: nn.Module, tmp_path: Path
) -> None:
    onnx_path = tmp_path / "m.onnx"
    result = compress_model(trained_mlp, None, data=data, seed=3, onnx_path=onnx_path)
    assert [r.stage for r in result.reports] == ["prune", "distill", "cluster", "qat"]
    assert is_plain(result.model)
    summary = result.summary
    assert summary["weight_sparsity"] == pytest.approx(0.9, abs=0.005)
    assert all(unique <= 33 for unique in summary["unique_per_layer"].values())
    assert summary["survival"]["onnx"]["survived"]
    assert summary["deep_compression_bytes"] == model_storage(result.model).total_bytes
    assert summary["rate"] == pytest.approx(summary["fp32_bytes"] / summary["deep_compression_bytes"])
    assert summary["zipped_bytes"] < summary["deployable_bytes"] == onnx_path.stat().st_size
    exported = {t.nonzeros for t in onnx_weight_tensors(onnx_path)}
    assert {int(torch.count_nonzero(w)) for w in weights(result.model).values()} <= exported
    onnx_acc = onnx_accuracy(onnx_path, data.eval_x, data.eval_y)
    assert onnx_acc == pytest.approx(summary["accuracy_after"], abs=0.005)
    # 600 samples give the default recipe only a few dozen steps: a sanity bound, not the goal.
    assert summary["accuracy_after"] > summary["accuracy_before"] - 0.1
    for report in result.reports:
        d = report.to_dict()
        assert {
            "accuracy_before",
            "accuracy_after",
            "params_after",
            "nonzeros_after",
            "macs_after",
            "layers",
        } <= set(d)


def test_survival_check_notices_lost_sparsity(
    data: CompressionData, trained_mlp: nn.Module, tmp_path: Path
) -> None:
    from edgedeploy.compress.survival import check_survival

    pruned = compress_model(trained_mlp, [{"stage": "prune", "sparsity": 0.5, "epochs": 0}], data=data).model
    dense = copy.deepcopy(pruned)
    with torch.no_grad():
        dense.net[1].weight.add_(1e-3)  # what a converter that densified weights would give
    path = export_onnx(dense, data.example(), tmp_path / "dense.onnx")
    verdict = check_survival(pruned, onnx_weight_tensors(path), path)
    assert not verdict["survived"]
    assert [r["layer"] for r in verdict["layers"] if not r["survived"]] == ["net.1"]


def test_sparsity_and_clusters_survive_into_tflite(
    data: CompressionData, trained_mlp: nn.Module, tmp_path: Path
) -> None:
    pytest.importorskip("litert_torch", reason="TFLite export needs the [litert] extra (litert-torch)")
    from edgedeploy.compress.survival import check_exported_file, count_tensor, tflite_weight_tensors
    from edgedeploy.convert.tflite_export import export_torch

    recipe = [
        {"stage": "prune", "sparsity": 0.8, "scope": "layer", "epochs": 0},
        {"stage": "cluster", "clusters": 8, "layer_clusters": {"net.5": 4}, "epochs": 0.2},
    ]
    model = compress_model(trained_mlp, recipe, data=data).model
    path = tmp_path / "compressed.tflite"
    export_torch(model, data.eval_x[:1], path)
    verdict = check_exported_file(model, path)
    assert verdict["format"] == "tflite" and verdict["survived"], verdict["verdict"]
    # Counted again here, straight from the file: every layer's zeros and distinct values are there.
    in_file = {(t.numel, t.nonzeros, t.unique) for t in tflite_weight_tensors(path)}
    for name, w in weights(model).items():
        ours = count_tensor(name, w.numpy())
        assert ours.unique <= (5 if name == "net.5" else 9)
        assert (ours.numel, ours.nonzeros, ours.unique) in in_file, name


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ([{"stage": "shrink"}], "unknown stage 'shrink'"),
        ([{"stage": "prune", "sparsity": 1.0}], "outside [0, 1)"),
        ([{"stage": "prune", "sparsity": -0.1}], "outside [0, 1)"),
        ([{"stage": "cluster", "clusters": 1}], "clusters must be an integer >= 2"),
        ([{"stage": "cluster", "init": "magic"}], "init must be one of"),
        ([{"stage": "distill", "tempreature": 3}], "unknown parameter(s) tempreature"),
        ([{"stage": "distill", "jitter": -1}], "jitter must be >= 0"),
        ([{"stage": "distill", "carry": "yes"}], "parameter 'carry' must be bool"),
        ([{"stage": "qat", "bits": "eight"}], "parameter 'bits' must be int"),
        ([], "non-empty list"),
    ],
)
def test_bad_recipes_are_usage_errors(recipe: list, message: str) -> None:
    with pytest.raises(UsageError) as err:
        load_recipe(recipe)
    assert message in str(err.value)


def test_stage_order_and_model_checks(data: CompressionData, trained_mlp: nn.Module) -> None:
    with pytest.raises(UsageError, match="must come before"):
        compress_model(
            trained_mlp, [{"stage": "prune", "epochs": 0}, {"stage": "lowrank", "epochs": 0}], data=data
        )
    with pytest.raises(UsageError, match="class logits"):
        compress_model(nn.Sequential(nn.Flatten(), nn.Linear(784, 3)), [{"stage": "qat"}], data=data)
    with pytest.raises(UsageError, match="cannot run on inputs"):
        compress_model(nn.Linear(10, 10), [{"stage": "qat"}], data=data)
    with pytest.raises(UsageError, match="nn.Module"):
        compress_model(np.zeros(3), None, data=data)  # type: ignore[arg-type]
