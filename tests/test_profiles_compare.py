"""`profiles compare A B`: deltas, with differences inside the measured spread flagged as noise."""

from __future__ import annotations

import json
from pathlib import Path

from edgedeploy.profiles.compare import compare_docs, compare_profiles
from edgedeploy.profiles.store import write_profile
from tests.support.cli import run_cli
from tests.support.fleet import profile_doc


def _metric(rows: list[dict], name: str) -> dict:
    return next(r for r in rows if r["metric"] == name)


def test_difference_inside_the_spread_is_noise_outside_is_real() -> None:
    a = profile_doc("2026-01-01T00:00:00.000000Z", p50=1.00, std=0.10)
    close = profile_doc("2026-01-02T00:00:00.000000Z", p50=1.05, std=0.08)
    far = profile_doc("2026-01-03T00:00:00.000000Z", p50=0.60, std=0.05)

    noisy = _metric(compare_docs(a, close), "latency p50")
    assert noisy["delta"] == noisy["b"] - noisy["a"]
    assert noisy["spread"] == 0.10 and noisy["noise"] is True and noisy["better"] is None

    real = _metric(compare_docs(a, far), "latency p50")
    assert real["noise"] is False and real["better"] == "b"
    assert real["delta_pct"] == (0.60 - 1.00) / 1.00 * 100
    # Measured once: the delta is shown but never called noise or significant by spread.
    init = _metric(compare_docs(a, far), "init")
    assert init["spread"] is None and init["noise"] is None


def test_repeat_spread_is_preferred_and_accuracy_higher_is_better() -> None:
    a = profile_doc("2026-01-01T00:00:00.000000Z", p50=1.0, std=0.5, quality={"accuracy": 0.98})
    b = profile_doc("2026-01-02T00:00:00.000000Z", p50=1.2, std=0.5, model={"accuracy": 0.97})
    a["repeat_spread"] = {"p50_std_ms": 0.05}
    b["repeat_spread"] = {"p50_std_ms": 0.04}
    rows = compare_docs(a, b)
    p50 = _metric(rows, "latency p50")
    assert p50["spread"] == 0.05 and p50["noise"] is False and p50["better"] == "a"
    assert _metric(rows, "accuracy")["better"] == "a"
    assert _metric(rows, "model size")["noise"] is False and _metric(rows, "model size")["better"] is None


def test_compare_from_the_store_and_cli(tmp_path: Path) -> None:
    root = tmp_path / "profiles"
    write_profile(profile_doc("2026-01-01T00:00:00.000000Z", "pi5", "fp32", p50=2.0), root)
    write_profile(profile_doc("2026-01-02T00:00:00.000000Z", "qemu", "int8", p50=0.5, emulated=True), root)
    doc = compare_profiles(root, "pi5/", "qemu/")
    assert any("different target" in n for n in doc["notes"])
    assert any("emulated" in n for n in doc["notes"])
    proc = run_cli("profiles", "compare", "pi5/", "qemu/", "--dir", str(root), "--json")
    assert proc.returncode == 0, proc.stderr
    assert _metric(json.loads(proc.stdout)["metrics"], "latency p50")["better"] == "b"
    table = run_cli("profiles", "compare", "pi5/", "qemu/", "--dir", str(root), env={"COLUMNS": "160"})
    assert table.returncode == 0 and "B better" in table.stdout
    bad = run_cli("profiles", "compare", "pi5/", "nope", "--dir", str(root))
    assert bad.returncode == 2 and "no profile 'nope'" in bad.stderr
