"""bench/tune.py --quick (and --quick --group): the tune benchmark runs end to end and prints the
issue's JSON fields. A smoke run: its figures mean nothing and nothing here checks them."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import run_bench

pytestmark = pytest.mark.torch  # the bench trains and exports a torch model ([compress] extra)

ENTRY = {"accuracy", "p50_ms", "size_bytes"}


def quick_tune_bench(*args: str) -> dict:
    # A hang guard sized for a loaded 2-core machine, not a timing assertion.
    proc = run_bench("tune", "--quick", *args, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_tune_bench_quick_prints_the_issue_fields() -> None:
    doc = quick_tune_bench()
    assert doc["quick"] is True and doc["trials"] == doc["config"]["trials"] == 2
    assert doc["config"]["train_samples"] == 256 and doc["config"]["target"] == "local"
    assert set(doc["baselines"]) == {"fp32", "int8_ptq", "default_recipe", "structured_only"}
    for entry in doc["baselines"].values():
        assert set(entry) >= ENTRY and entry["p50_ms"] > 0, entry
    # The input model is the first trial of each study, within the floor: both have a best.
    for key in ("best_under_1pt", "random_search_best_under_1pt"):
        assert ENTRY | {"settings"} <= set(doc[key]) and doc[key]["p50_ms"] > 0
    assert doc["pareto"] and all(set(p) >= ENTRY for p in doc["pareto"])
    # Both studies trained the same number of candidates; every contender was timed side by side.
    studies = doc["studies"]
    assert len(studies["tuned"]["candidates"]) == len(studies["random"]["candidates"]) == 2
    assert set(doc["side_by_side"]["p50_ms"]) == set(doc["baselines"]) | {"tuned", "random"}
    assert set(doc["goals"]) >= {"speedup_met", "beats_random_search", "seconds_met"}
    assert "group" not in doc


def test_tune_bench_quick_on_a_group_of_two_emulated_devices() -> None:
    from tests.support.sshd import sshd_available

    if not sshd_available():
        pytest.skip("needs sshd (openssh-server) for the emulated devices")
    doc = quick_tune_bench("--group")
    group = doc["group"]
    assert doc["config"]["target"] == "pair" and len(group["devices"]) == 2
    assert group["both_devices_used"] is True
    assert sorted(group["measurements_per_device"]) == group["devices"]
    assert all(n > 0 for n in group["measurements_per_device"].values())
    assert "NOT device timings" in group["emulation"] or "without a CPU cap" in group["emulation"]
