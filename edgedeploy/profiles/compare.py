"""`profiles compare A B`: deltas between two profiles, with differences inside the noise flagged.

The noise band of a metric is the larger of the two profiles' measured spreads: the latency standard
deviation (or, when a profile was measured with `--repeats`, the spread of the per-repeat medians,
which is the run-to-run spread that matters here). A difference smaller than that band is reported
as noise, not as a speed-up or a slow-down. Metrics measured once (init time, peak RSS) have no
spread; their deltas are shown with `noise: null` ("no spread measured").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedeploy.profiles.index import load_profile
from edgedeploy.profiles.store import accuracy_of


def _latency(key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda doc: (doc.get("latency_ms") or {}).get(key)


def latency_spread(doc: dict[str, Any]) -> float | None:
    """Run-to-run spread of the median when repeats were measured, else the per-sample std."""
    repeat = (doc.get("repeat_spread") or {}).get("p50_std_ms")
    if isinstance(repeat, int | float):
        return float(repeat)
    return (doc.get("latency_ms") or {}).get("std")


def _energy(doc: dict[str, Any]) -> float | None:
    return (doc.get("power") or {}).get("energy_per_inference_mj")


def _energy_spread(doc: dict[str, Any]) -> float | None:
    # Energy per inference is power x mean latency, so it inherits latency's relative spread.
    energy, spread, mean = _energy(doc), latency_spread(doc), _latency("mean")(doc)
    if energy is None or spread is None or not mean:
        return None
    return energy * spread / mean


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    value: Callable[[dict[str, Any]], float | None]
    spread: Callable[[dict[str, Any]], float | None] | None
    higher_is_better: bool = False


METRICS = (
    Metric("latency p50", "ms", _latency("p50"), latency_spread),
    Metric("latency mean", "ms", _latency("mean"), latency_spread),
    Metric("latency p90", "ms", _latency("p90"), latency_spread),
    Metric("latency p99", "ms", _latency("p99"), latency_spread),
    Metric("init", "ms", lambda d: d.get("init_ms"), None),
    Metric("first inference", "ms", lambda d: d.get("first_inference_ms"), None),
    Metric("peak RSS", "MB", lambda d: (d.get("memory") or {}).get("peak_rss_mb"), None),
    Metric("energy/inference", "mJ", _energy, _energy_spread),
    Metric("model size", "B", lambda d: (d.get("model") or {}).get("size_bytes"), lambda _d: 0.0),
    Metric("accuracy", "", accuracy_of, None, higher_is_better=True),
)


def compare_docs(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric both profiles carry: values, delta (b - a), spread and the noise verdict."""
    rows = []
    for metric in METRICS:
        va, vb = metric.value(a), metric.value(b)
        if va is None or vb is None:
            continue
        delta = vb - va
        spreads = [s for s in (metric.spread(a), metric.spread(b)) if s is not None] if metric.spread else []
        band = max(spreads) if spreads else None
        # A zero delta is 'same', not noise; otherwise noise means inside the measured spread.
        noise = None if band is None else (delta != 0 and abs(delta) <= band)
        better = None
        if delta and noise is not True:
            b_better = (delta > 0) == metric.higher_is_better
            better = "b" if b_better else "a"
        rows.append(
            {
                "metric": metric.name,
                "unit": metric.unit,
                "a": va,
                "b": vb,
                "delta": delta,
                "delta_pct": 100.0 * delta / va if va else None,
                "spread": band,
                "noise": noise,
                "better": better,
            }
        )
    return rows


def _identity(doc: dict[str, Any]) -> dict[str, Any]:
    runtime = doc.get("runtime") or {}
    return {
        "path": doc.get("path"),
        "target": doc["target"]["name"],
        "model": doc["model"]["name"],
        "model_sha256": doc["model"].get("sha256"),
        "runtime": f"{runtime.get('name')} {runtime.get('version')}",
        "created": doc.get("created"),
        "emulated": bool(doc.get("emulated")),
    }


def compare_profiles(root: Path | None, a: str, b: str) -> dict[str, Any]:
    doc_a, doc_b = load_profile(root, a), load_profile(root, b)
    id_a, id_b = _identity(doc_a), _identity(doc_b)
    notes = [
        f"different {key}: {id_a[key]} vs {id_b[key]}"
        for key in ("target", "model_sha256", "runtime")
        if id_a[key] != id_b[key]
    ]
    if id_a["emulated"] or id_b["emulated"]:
        notes.append("an emulated target is involved: its timings are not device timings")
    return {"a": id_a, "b": id_b, "notes": notes, "metrics": compare_docs(doc_a, doc_b)}
