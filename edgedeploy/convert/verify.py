"""Verification of a conversion: source and result run on the same inputs, compared number by number."""

from __future__ import annotations

from typing import Any

import numpy as np

# Default tolerance on max abs error, as a fraction of the largest |output| of the source model: fp32
# must match to float round-off; fp16 keeps ~3 significant digits; int8 steps are 1/127 of a range,
# and errors add up over layers, so a quarter of the output range still catches broken graphs
# (a wrong weight or op gives errors of the order of the whole range) without failing honest int8.
RELATIVE_TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2, "int8-dynamic": 0.25, "int8": 0.25}


def default_tolerance(precision: str, reference: np.ndarray) -> float:
    scale = float(np.max(np.abs(reference))) if reference.size else 1.0
    return RELATIVE_TOLERANCE[precision] * max(scale, 1e-6) + 1e-5


def compare(
    reference: np.ndarray, outputs: np.ndarray, labels: np.ndarray | None, tolerance: float
) -> dict[str, Any]:
    """Error figures of `outputs` against `reference`; top-1 figures when outputs look like class scores."""
    if reference.shape != outputs.shape:
        return {
            "max_abs_error": float("inf"),
            "mean_abs_error": float("inf"),
            "top1_agreement": None,
            "passed": False,
            "tolerance": tolerance,
            "samples": int(len(reference)),
            "problem": f"output shape {outputs.shape} differs from the source's {reference.shape}",
        }
    error = np.abs(reference.astype(np.float64) - outputs.astype(np.float64))
    finite = bool(np.all(np.isfinite(outputs)))
    result: dict[str, Any] = {
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
    result["passed"] = finite and result["max_abs_error"] <= tolerance
    result["tolerance"] = float(tolerance)
    result["samples"] = int(len(reference))
    return result


def describe_failure(output: str, verification: dict[str, Any], hint: str = "") -> str:
    if "problem" in verification:
        return f"{output}: verification failed: {verification['problem']}; nothing written"
    agreement = verification.get("top1_agreement")
    figures = f"max abs error {verification['max_abs_error']:.4g} > tolerance {verification['tolerance']:.4g}"
    figures += f", mean abs error {verification['mean_abs_error']:.4g}"
    if agreement is not None:
        figures += f", top-1 agreement {agreement:.1%}"
    return (
        f"{output}: verification failed: {figures} on {verification['samples']} inputs; nothing written{hint}"
    )
