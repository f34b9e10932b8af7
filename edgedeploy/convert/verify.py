"""Verification of a conversion: source and result run on the same inputs, compared by a metric that
fits what the model outputs (class scores, a dense map, per-step scores, plain values)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

# Default tolerance on max abs error, as a fraction of the largest |output| of the source model: fp32
# must match to float round-off; fp16 keeps ~3 significant digits; int8 steps are 1/127 of a range,
# and errors add up over layers, so a quarter of the output range still catches broken graphs
# (a wrong weight or op gives errors of the order of the whole range) without failing honest int8.
RELATIVE_TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2, "int8-dynamic": 0.25, "int8": 0.25}

METRICS = ("auto", "abs", "classification", "dense", "sequence", "regression")

# Pass thresholds of the task metrics per precision. fp32 and fp16 change values by round-off only;
# int8 may flip a near-tie (top-1 of random or ambiguous inputs), move a map's edge by a pixel or a
# blank/character boundary in a sequence by a step, but not more than that on most of the outputs.
MIN_TOP1 = {"fp32": 1.0, "fp16": 0.95, "int8-dynamic": 0.75, "int8": 0.75}
MIN_IOU = {"fp32": 0.99, "fp16": 0.95, "int8-dynamic": 0.8, "int8": 0.8}
MIN_PSNR_DB = {"fp32": 60.0, "fp16": 40.0, "int8-dynamic": 20.0, "int8": 20.0}
MIN_STEP_AGREEMENT = {"fp32": 0.999, "fp16": 0.98, "int8-dynamic": 0.9, "int8": 0.9}
# int8 at 0.25, as RELATIVE_TOLERANCE: the raw [2304, 16] box regressors of MediaPipe's full-range face
# detector (mostly anchors with no face) differ by 0.19 relative L2 from fp32 after ai-edge-quantizer's
# int8, on scikit-image's photos as on random inputs, so 0.1 refused it.
MAX_RELATIVE_ERROR = {"fp32": 1e-4, "fp16": 1e-2, "int8-dynamic": 0.25, "int8": 0.25}

# Output names that say "values, not class scores", whatever the shape.
REGRESSION_NAMES = re.compile(r"box|bbox|coord|regress|embed|feat|landmark|depth|state", re.IGNORECASE)


def default_tolerance(precision: str, reference: np.ndarray) -> float:
    scale = float(np.max(np.abs(reference))) if reference.size else 1.0
    return RELATIVE_TOLERANCE[precision] * max(scale, 1e-6) + 1e-5


def choose_metric(
    requested: str,
    precision: str,
    tolerance_given: bool,
    sample_shape: tuple[int, ...],
    output_name: str = "",
    batched: bool = True,
    reference: np.ndarray | None = None,
) -> tuple[str, str]:
    """(metric, why). `sample_shape`: the first output of one sample, without the sample axis;
    `reference`: the source's outputs, when known (they tell class scores from plain values)."""
    if requested != "auto":
        return requested, "--verify-metric"
    if tolerance_given:
        return "abs", "--tolerance given (max abs error)"
    if precision == "fp32":
        return "abs", "fp32 must match the source to float round-off"
    return infer_metric(sample_shape, output_name, batched, reference)


def _rows_are_probabilities(reference: np.ndarray) -> bool:
    """Each row over the last axis is a probability distribution (a softmax's output)."""
    if reference.size == 0 or float(reference.min()) < 0.0 or float(reference.max()) > 1.0:
        return False
    return bool(np.allclose(reference.sum(axis=-1), 1.0, atol=1e-2))


def infer_metric(
    shape: tuple[int, ...],
    output_name: str = "",
    batched: bool = True,
    reference: np.ndarray | None = None,
) -> tuple[str, str]:
    """The task an output of `shape` (one sample's) serves. Unbatched models' samples are whole
    outputs: a leading 1 there is taken for a batch of one. A [steps, classes] output whose
    reference rows are not probabilities is taken for plain values (a detector's [anchors, 16] box
    regressors look like a sequence by shape alone, and per-row argmax means nothing there)."""
    dims = tuple(shape[1:]) if not batched and len(shape) >= 2 and shape[0] == 1 else tuple(shape)
    described = f"output {output_name!r} " if output_name else "output "
    described += f"[{', '.join(map(str, shape))}] per sample"
    if output_name and REGRESSION_NAMES.search(output_name):
        return "regression", f"{described}: its name says values"
    if len(dims) == 1 and dims[0] > 1:
        return "classification", f"{described}: one score per class"
    if len(dims) == 2 and dims[-1] > 1:
        if reference is not None and not _rows_are_probabilities(reference):
            return "regression", f"{described}: values per row (rows are not class probabilities)"
        return "sequence", f"{described}: class scores per step"
    if len(dims) >= 3 and dims[-1] > 1 and dims[-2] > 1:
        return "dense", f"{described}: a map over the input"
    return "regression", f"{described}: plain values"


def failed_check(problem: str, metric: str, tolerance: float, samples: int) -> dict[str, Any]:
    """The verification result of a candidate that could not be compared at all, and why."""
    return {
        "metric": metric,
        "max_abs_error": float("inf"),
        "mean_abs_error": float("inf"),
        "top1_agreement": None,
        "passed": False,
        "tolerance": tolerance,
        "samples": int(samples),
        "problem": problem,
    }


def compare(
    reference: np.ndarray,
    outputs: np.ndarray,
    labels: np.ndarray | None,
    tolerance: float,
    metric: str = "abs",
    precision: str = "fp32",
) -> dict[str, Any]:
    """Error figures of `outputs` against `reference` (sample axis first), and whether `metric` passes
    at `precision`'s threshold ("abs": max abs error within `tolerance`)."""
    if reference.shape != outputs.shape:
        problem = f"output shape {outputs.shape} differs from the source's {reference.shape}"
        return failed_check(problem, metric, tolerance, len(reference))
    error = np.abs(reference.astype(np.float64) - outputs.astype(np.float64))
    finite = bool(np.all(np.isfinite(outputs)))
    if not error.size:
        error = np.zeros(1)
    result: dict[str, Any] = {
        "metric": metric,
        "max_abs_error": float(error.max()) if finite else float("inf"),
        "mean_abs_error": float(error.mean()) if finite else float("inf"),
        "top1_agreement": None,
    }
    is_classifier = reference.ndim == 2 and reference.shape[1] > 1
    if is_classifier:
        result["top1_agreement"] = float(np.mean(reference.argmax(1) == outputs.argmax(1)))
        if labels is not None:
            result["accuracy"] = float(np.mean(outputs.argmax(1) == labels))
            result["source_accuracy"] = float(np.mean(reference.argmax(1) == labels))
    if metric == "abs":
        passed = result["max_abs_error"] <= tolerance
        result["criterion"] = f"max abs error <= {tolerance:.4g}"
    else:
        figures, checks = TASK_METRICS[metric](
            reference.astype(np.float64), outputs.astype(np.float64), precision
        )
        result.update(figures)
        passed = all(ok for ok, _ in checks)
        result["criterion"] = " and ".join(text for _, text in checks)
    result["passed"] = finite and bool(passed)
    result["tolerance"] = float(tolerance)
    result["samples"] = int(len(reference))
    return result


def _classification(ref: np.ndarray, out: np.ndarray, precision: str) -> tuple[dict[str, Any], list]:
    scores_ref, scores_out = ref.reshape(-1, ref.shape[-1]), out.reshape(-1, out.shape[-1])
    top1 = float(np.mean(scores_ref.argmax(1) == scores_out.argmax(1)))
    k = min(5, scores_ref.shape[1])
    top5_out = np.argsort(-scores_out, axis=1)[:, :k]
    top5 = float(np.mean([a in row for a, row in zip(scores_ref.argmax(1), top5_out, strict=True)]))
    need = MIN_TOP1[precision]
    figures = {"top1_agreement": top1, f"top{k}_agreement": top5}
    return figures, [(top1 >= need, f"top-1 agreement {top1:.1%} >= {need:.0%}")]


def _dense(ref: np.ndarray, out: np.ndarray, precision: str) -> tuple[dict[str, Any], list]:
    low, high = float(ref.min()), float(ref.max())
    probabilities = low >= 0.0 and high <= 1.0
    # A probability map is cut where its task cuts it; other maps halfway through the source's range.
    threshold = 0.5 if probabilities else (low + high) / 2
    mask_ref, mask_out = ref > threshold, out > threshold
    union = int(np.logical_or(mask_ref, mask_out).sum())
    iou = float(np.logical_and(mask_ref, mask_out).sum() / union) if union else 1.0
    peak = 1.0 if probabilities else max(high - low, 1e-12)
    mse = float(np.mean((ref - out) ** 2))
    psnr = float("inf") if mse == 0 else float(10 * np.log10(peak**2 / mse))
    figures = {"iou": iou, "threshold": threshold, "psnr_db": psnr if np.isfinite(psnr) else None}
    need_iou, need_psnr = MIN_IOU[precision], MIN_PSNR_DB[precision]
    return figures, [
        (iou >= need_iou, f"IoU of map > {threshold:.3g} {iou:.3f} >= {need_iou}"),
        (psnr >= need_psnr, f"PSNR {psnr:.1f} dB >= {need_psnr:.0f} dB"),
    ]


def _sequence(ref: np.ndarray, out: np.ndarray, precision: str) -> tuple[dict[str, Any], list]:
    agreement = float(np.mean(ref.argmax(-1) == out.argmax(-1)))
    need = MIN_STEP_AGREEMENT[precision]
    steps = int(ref.size // ref.shape[-1])
    return {"step_agreement": agreement, "steps": steps}, [
        (agreement >= need, f"per-step argmax agreement {agreement:.1%} >= {need:.1%}")
    ]


def _regression(ref: np.ndarray, out: np.ndarray, precision: str) -> tuple[dict[str, Any], list]:
    norm = float(np.linalg.norm(ref))
    relative = float(np.linalg.norm(ref - out) / norm) if norm > 0 else float(np.linalg.norm(out))
    need = MAX_RELATIVE_ERROR[precision]
    return {"relative_error": relative}, [(relative <= need, f"relative error {relative:.3g} <= {need:g}")]


TASK_METRICS = {
    "classification": _classification,
    "dense": _dense,
    "sequence": _sequence,
    "regression": _regression,
}


def describe_failure(output: str, verification: dict[str, Any], hint: str = "") -> str:
    if "problem" in verification:
        return f"{output}: verification failed: {verification['problem']}; nothing written"
    if verification.get("metric", "abs") != "abs":
        figures = f"{verification['metric']} metric needs {verification['criterion']}"
    else:
        figures = (
            f"max abs error {verification['max_abs_error']:.4g} > tolerance {verification['tolerance']:.4g}"
        )
        figures += f", mean abs error {verification['mean_abs_error']:.4g}"
        agreement = verification.get("top1_agreement")
        if agreement is not None:
            figures += f", top-1 agreement {agreement:.1%}"
    return (
        f"{output}: verification failed: {figures} on {verification['samples']} inputs; nothing written{hint}"
    )
