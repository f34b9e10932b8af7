"""The task-aware verification metrics on small arrays: which one is inferred, and what each catches."""

from __future__ import annotations

import numpy as np
import pytest

from edgedeploy.convert.sources import shares_batch_axis_0
from edgedeploy.convert.verify import choose_metric, compare, infer_metric


@pytest.mark.parametrize(
    ("shape", "name", "metric"),
    [
        ((2,), "save_infer_model/scale_0.tmp_1", "classification"),  # PaddleOCR classifier
        ((1, 96, 192), "sigmoid_0.tmp_0", "dense"),  # PP-OCRv4 detector's map
        ((24, 6625), "softmax_11.tmp_0", "sequence"),  # PP-OCRv4 recognizer
        ((1,), "output", "regression"),  # Silero VAD's probability
        ((128,), "embedding", "regression"),  # named values, whatever the shape
    ],
)
def test_metric_inferred_from_output_shape_and_name(shape: tuple[int, ...], name: str, metric: str) -> None:
    assert infer_metric(shape, name)[0] == metric


def test_unbatched_outputs_drop_the_models_batch_of_one() -> None:
    assert infer_metric((1, 2), "x", batched=False)[0] == "classification"
    assert infer_metric((1, 2), "x", batched=True)[0] == "sequence"


def test_choose_metric_keeps_abs_for_fp32_and_a_given_tolerance() -> None:
    assert choose_metric("auto", "fp32", False, (10,))[0] == "abs"
    assert choose_metric("auto", "int8", True, (10,))[0] == "abs"
    assert choose_metric("auto", "int8", False, (10,))[0] == "classification"
    assert choose_metric("dense", "fp32", True, (10,)) == ("dense", "--verify-metric")


def test_dense_metric_judges_the_map_not_its_peak() -> None:
    rng = np.random.default_rng(0)
    reference = (0.35 + 0.3 * rng.random((4, 1, 32, 32))).astype(np.float32)  # soft map around 0.5
    # Every pixel 0.15 lower: within a quarter of the peak (the old rule passed it), yet no pixel is
    # above the threshold any more: every detection is gone.
    lowered = reference - 0.15
    tolerance = 0.25 * float(reference.max())
    assert compare(reference, lowered, None, tolerance, "abs", "int8")["passed"]
    dense = compare(reference, lowered, None, tolerance, "dense", "int8")
    assert not dense["passed"] and dense["iou"] == 0.0 and dense["psnr_db"] < 20
    crisp = np.where(reference > 0.5, 0.8, 0.2).astype(np.float32)  # far from the threshold
    close = compare(crisp, crisp + 0.01, None, tolerance, "dense", "int8")
    assert close["passed"] and close["iou"] == 1.0 and close["psnr_db"] == pytest.approx(40.0)


def test_sequence_and_classification_metrics() -> None:
    reference = np.zeros((2, 10, 5), np.float32)
    reference[..., 0] = 1.0  # blank everywhere
    outputs = reference.copy()
    outputs[0, 3, 2] = 2.0  # one step of 20 differs
    result = compare(reference, outputs, None, 1.0, "sequence", "int8")
    assert result["step_agreement"] == 0.95 and result["passed"] and result["steps"] == 20
    scores = np.eye(4, dtype=np.float32)
    flipped = scores[[0, 1, 3, 2]]
    result = compare(scores, flipped, None, 1.0, "classification", "int8")
    assert result["top1_agreement"] == 0.5 and not result["passed"] and result["top4_agreement"] == 1.0


@pytest.mark.parametrize(
    ("dims", "batched"),
    [
        ([["batch", 3, 48, 192]], True),
        ([["N", 4, "L"], ["N", 4, "L"]], True),
        ([[None, None], [2, None, 128], []], False),  # Silero VAD: a scalar sr
        ([["batch", "sequence"], [2, "batch", 128]], False),  # the state's batch is its axis 1
        ([[1, 576], [2, 1, 128]], False),  # fixed leading dimensions that differ
    ],
)
def test_batch_axis_detection(dims: list, batched: bool) -> None:
    assert shares_batch_axis_0(dims) == batched
