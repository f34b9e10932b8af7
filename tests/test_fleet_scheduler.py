"""The fleet's scheduler on its own: which target runs what next, retries, the watchdog, a stopped
worker. Its job runner here is a plain function (the scheduler takes any callable of the job
runner's shape), so these tests need no device and run in well under a second each."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgedeploy.deploy.inventory import Target
from edgedeploy.errors import TargetError, UsageError
from edgedeploy.fleet_job import FleetScheduler, Job, JobRunner, Journal, TargetQueue, new_run_id
from edgedeploy.options import FleetProfileOptions


def queues(jobs: dict[str, list[str]]) -> list[TargetQueue]:
    return [
        TargetQueue(Target(name), [Job(name, Path(f"{model}.onnx"), f"sha-{model}") for model in models])
        for name, models in jobs.items()
    ]


def schedule(
    states: list[TargetQueue], run_job: Callable[[Job, Callable[[str], None]], dict[str, Any]], **kw: Any
) -> Journal:
    journal = Journal(new_run_id())
    settings = {"workers": 2, "timeout": 30.0, "retries": 1, **kw}
    FleetScheduler(run_job, journal, **settings).run(states)
    return journal


def test_device_errors_are_retried_and_usage_errors_are_not() -> None:
    calls: list[tuple[str, str]] = []
    lock = threading.Lock()

    def run_job(job: Job, status: Callable[[str], None]) -> dict[str, Any]:
        with lock:
            calls.append((job.target, job.model.stem))
            first = calls.count((job.target, job.model.stem)) == 1
        if job.target == "flaky" and job.model.stem == "m1" and first:
            raise TargetError("flaky: connection reset")
        if job.model.stem == "bad":
            raise UsageError("bad.onnx: not a model")
        status("measuring")
        return {"path": f"/store/{job.target}/{job.model.stem}.json", "latency_ms": {"p50": 1.5}}

    states = queues({"flaky": ["m1", "bad"], "steady": ["m1"]})
    journal = schedule(states, run_job)
    rows = {(r.target, r.model_name): r for s in states for r in s.rows}
    assert rows[("flaky", "m1")].status == "ok" and rows[("flaky", "m1")].attempts == 2
    assert rows[("flaky", "m1")].p50_ms == 1.5
    assert rows[("flaky", "bad")].error == "bad.onnx: not a model" and rows[("flaky", "bad")].attempts == 1
    assert rows[("steady", "m1")].profile_path == "/store/steady/m1.json"
    assert set(journal.finished()) == {("flaky", "sha-m1"), ("steady", "sha-m1")}


def test_a_hung_job_is_abandoned_and_its_target_runs_nothing_more() -> None:
    release = threading.Event()

    def run_job(job: Job, status: Callable[[str], None]) -> dict[str, Any]:
        if job.target == "stuck":
            release.wait(60)  # far past the watchdog; set at the end so the thread ends
        return {"path": "p", "latency_ms": {"p50": 1.0}}

    states = queues({"stuck": ["m1", "m2"], "fine": ["m1", "m2"]})
    try:
        schedule(states, run_job, timeout=0.2, retries=3)
    finally:
        release.set()
    stuck, fine = states
    assert stuck.hung and [r.attempts for r in stuck.rows] == [1, 0], "a timeout is not retried"
    assert "timed out after 0.2 s" in str(stuck.rows[0].error)
    assert str(stuck.rows[1].error).startswith("not attempted: stuck hung on m1.onnx")
    assert [r.status for r in fine.rows] == ["ok", "ok"]


def test_a_stopped_worker_says_why_on_its_target() -> None:
    class BrokenJournal(Journal):
        def append(self, event: dict[str, Any]) -> None:
            if event.get("target") == "doomed":
                raise OSError("disk full")
            super().append(event)

    states = queues({"doomed": ["m1", "m2"], "fine": ["m1"]})
    FleetScheduler(
        lambda job, status: {"path": "p"}, BrokenJournal(new_run_id()), workers=1, timeout=30.0, retries=0
    ).run(states)
    doomed, fine = states
    assert doomed.stopped == "OSError: disk full" and doomed.rows == []
    assert [r.status for r in fine.rows] == ["ok"]


def test_the_job_runner_profiles_a_fixed_count_with_the_fleet_settings(tmp_path: Path) -> None:
    options = FleetProfileOptions(runs=7, warmup=2, timeout=42.0, profiles_dir=str(tmp_path), checksum=True)
    profile = JobRunner.for_fleet(options).profile
    assert (profile.runs, profile.warmup, profile.timeout, profile.checksum) == (7, 2, 42.0, True)
    assert (profile.min_seconds, profile.warmup_seconds) == (0.0, 0.0)
    assert profile.profiles_dir == tmp_path
