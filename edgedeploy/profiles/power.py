"""Power in a profile: MEASURED by the runner when the board has sensors, otherwise ESTIMATED here.

The estimate is deliberately simple and says so: the target's `edgedeploy_power_model` (board power
idle and with every core busy, from vendors' published figures) interpolated by the CPU busy fraction
the runner observed, times the mean latency. It is a planning figure, not a measurement.
"""

from __future__ import annotations

from typing import Any

from edgedeploy.deploy.inventory import Target


def estimate_power(target: Target, runner_doc: dict[str, Any]) -> dict[str, Any]:
    """Energy per inference from CPU utilisation and the target's power model: an ESTIMATE, labelled so."""
    model = target.power_model
    latency = runner_doc.get("latency_ms") or {}
    cpu = runner_doc.get("cpu") or {}
    if not model or not latency or cpu.get("utilization_cores") is None:
        return {
            "source": "unavailable",
            "method": "no power sensor on the device and no edgedeploy_power_model for this target",
        }
    cores = len(cpu.get("affinity") or []) or (runner_doc.get("host") or {}).get("cpu_count") or 1
    busy_fraction = min(1.0, cpu["utilization_cores"] / cores)
    watts = model["idle_w"] + (model["busy_w"] - model["idle_w"]) * busy_fraction
    return {
        "source": "estimated",
        "method": (
            "board power model (idle_w + (busy_w - idle_w) x CPU busy fraction) x mean latency; "
            f"{model.get('note', 'power model from the inventory')}"
        ),
        "avg_power_w": watts,
        "energy_per_inference_mj": watts * latency["mean"],  # W x ms = mJ
        "model": {"idle_w": model["idle_w"], "busy_w": model["busy_w"]},
        "cpu_busy_fraction": busy_fraction,
    }


def profile_power(target: Target, runner_doc: dict[str, Any]) -> dict[str, Any]:
    """The runner's measurement when it had a sensor, else the estimate (with the reason why)."""
    measured = runner_doc.get("power") or {}
    if measured.get("source") == "measured":
        return measured
    estimate = estimate_power(target, runner_doc)
    if measured.get("method"):
        estimate["why_not_measured"] = measured["method"]
    return estimate
