"""`edgedeploy fleet profile` on several real local-connection targets (each its own work dir, its
runner a separate process), plus dead ones: a device whose Python hangs and one whose Python exits 1.
SSH fleets over real sshd on loopback are in test_fleet_ssh.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgedeploy.errors import UsageError
from edgedeploy.fleet_job import Journal, run_fleet
from edgedeploy.options import FleetProfileOptions
from edgedeploy.results import FleetResult, FleetRow
from tests.support.cli import run_bench, run_cli
from tests.support.fleet import hanging_python, kill_recorded, local_inventory
from tests.support.onnx_models import dense_onnx

FAST = {"runs": 5, "warmup": 1}
OFF = {"ansible_python_interpreter": "/bin/false"}  # a device whose Python exits 1 at once


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("models")
    return [dense_onnx(root / "small.onnx", 16), dense_onnx(root / "wide.onnx", 256)]


@pytest.fixture
def hang_pids(tmp_path: Path) -> Iterator[Path]:
    pid_file = tmp_path / "hung.pids"
    yield pid_file
    kill_recorded(pid_file)


def fleet(models: list[Path], group: str, **options: Any) -> FleetResult:
    return run_fleet(models, group, FleetProfileOptions(**options))


def _overlaps(a: FleetRow, b: FleetRow) -> bool:
    return a.started < b.finished and b.started < a.finished


def test_targets_run_concurrently_one_job_per_device(tmp_path: Path, models: list[Path]) -> None:
    inv = local_inventory(tmp_path / "inv.yml", {"a": {}, "b": {}, "c": {}})
    result = fleet(models, "lab", inventory=inv, workers=3, profiles_dir=tmp_path / "store", **FAST)

    assert [r.status for r in result.rows] == ["ok"] * 6, result.rows
    assert {(r.target, r.model_name) for r in result.rows} == {
        (t, m) for t in "abc" for m in ("small", "wide")
    }
    for row in result.rows:
        profile = json.loads(Path(row.profile_path).read_text())
        assert profile["target"]["name"] == row.target
        assert profile["model"]["sha256"] == row.model_sha256
    by_target: dict[str, list[FleetRow]] = {}
    for row in result.rows:
        by_target.setdefault(row.target, []).append(row)
    for rows in by_target.values():  # a device never runs two jobs at once
        assert not _overlaps(rows[0], rows[1])
    firsts = [rows[0] for rows in by_target.values()]
    assert any(_overlaps(x, y) for i, x in enumerate(firsts) for y in firsts[i + 1 :]), "no concurrency"
    # each target used its own work dir (isolated devices)
    for name in "abc":
        assert sorted(p.name for p in (tmp_path / f"device-{name}" / "models").iterdir()) == [
            "small.onnx",
            "wide.onnx",
        ]


def test_workers_bound_how_many_targets_run_at_once(tmp_path: Path, models: list[Path]) -> None:
    inv = local_inventory(tmp_path / "inv.yml", {"a": {}, "b": {}})
    result = fleet(models[:1], "lab", inventory=inv, workers=1, profiles_dir=tmp_path / "s", **FAST)
    a, b = result.rows
    assert a.status == b.status == "ok"
    assert not _overlaps(a, b)


def test_dead_and_hanging_devices_give_error_rows_while_others_finish(
    tmp_path: Path, models: list[Path], hang_pids: Path
) -> None:
    hosts = {
        "good": {},
        "hangs": {"ansible_python_interpreter": str(hanging_python(tmp_path / "py-hang", hang_pids))},
        "broken": OFF,
    }
    inv = local_inventory(tmp_path / "inv.yml", hosts)
    result = fleet(
        # the timeout leaves a loaded 2-core CI machine room for the good device's two jobs
        models,
        "lab",
        inventory=inv,
        timeout=12,
        retries=1,
        profiles_dir=tmp_path / "store",
        **FAST,
    )
    rows = {(r.target, r.model_name): r for r in result.rows}
    assert rows[("good", "small")].status == rows[("good", "wide")].status == "ok"
    hung_first, hung_second = rows[("hangs", "small")], rows[("hangs", "wide")]
    assert hung_first.status == "error" and "timed out after 12 s" in hung_first.error
    assert hung_first.attempts == 1, "a timeout is not retried"
    assert hung_second.status == "error" and hung_second.error.startswith("not attempted: hangs hung")
    broken = rows[("broken", "small")]
    assert broken.status == "error" and broken.error.startswith("broken:")
    assert broken.attempts == 2, "a device error is retried"
    assert result.succeeded == 2 and result.failed == 4
    assert result.wall_s < 30, "the hung device must not hold up the others for long"


def test_resume_skips_finished_pairs_and_redoes_failed_ones(tmp_path: Path, models: list[Path]) -> None:
    inv = local_inventory(tmp_path / "inv.yml", {"a": {}, "flaky": OFF})
    store = tmp_path / "store"
    first = fleet(models, "lab", inventory=inv, retries=0, profiles_dir=store, **FAST)
    assert [r.status for r in first.rows] == ["ok", "ok", "error", "error"]

    # The device comes back; resuming redoes only its two jobs.
    local_inventory(tmp_path / "inv.yml", {"a": {}, "flaky": {}})
    second = fleet(models, "lab", inventory=inv, resume=first.run_id, profiles_dir=store, **FAST)
    assert second.run_id == first.run_id
    assert [r.status for r in second.rows] == ["ok"] * 4
    assert [r.resumed for r in second.rows] == [True, True, False, False]
    assert [r.profile_path for r in second.rows[:2]] == [r.profile_path for r in first.rows[:2]]
    assert len(list(store.glob("a/*/*.json"))) == 2, "finished pairs were not profiled again"

    events = [json.loads(line) for line in Path(first.journal).read_text().splitlines()]
    assert [e["event"] for e in events] == ["start", "job", "job", "job", "job", "resume", "job", "job"]
    finished = Journal(first.run_id).finished()
    assert finished.keys() == {(r.target, r.model_sha256) for r in second.rows}


def test_resume_of_an_unknown_run_is_a_usage_error(tmp_path: Path, models: list[Path]) -> None:
    inv = local_inventory(tmp_path / "inv.yml", {"a": {}})
    with pytest.raises(UsageError, match="no fleet run 'nope'"):
        fleet(models, "lab", inventory=inv, resume="nope", **FAST)


def test_cli_json_rows_and_exit_codes(tmp_path: Path, models: list[Path]) -> None:
    inv = local_inventory(tmp_path / "inv.yml", {"a": {}, "off": OFF})
    store = tmp_path / "store"
    common = ["--inventory", str(inv), "--runs", "5", "--warmup", "1", "--dir", str(store)]
    proc = run_cli("fleet", "profile", str(models[0]), "--target", "lab", "--retries", "0", "--json", *common)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    rows = {r["target"]: r for r in doc["rows"]}
    assert rows["a"]["status"] == "ok" and Path(rows["a"]["profile_path"]).is_file()
    assert rows["a"]["error"] is None
    assert rows["off"]["status"] == "error" and rows["off"]["error"]

    ok = run_cli("fleet", "profile", str(models[0]), "--target", "a", "--json", *common)
    assert ok.returncode == 0, ok.stderr
    # The store now feeds `profiles list`, and the report renders from it.
    listed = run_cli("profiles", "list", "--dir", str(store), "--target", "a", "--json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 2

    for bad, message in (
        (["--target", "nobody"], "target group 'nobody' is empty"),
        (["--target", "ghost"], "unknown target 'ghost'"),
    ):
        proc = run_cli("fleet", "profile", str(models[0]), *bad, *common)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    missing = run_cli("fleet", "profile", str(tmp_path / "nope.onnx"), "--target", "lab", *common)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_bench_quick_smoke() -> None:
    proc = run_bench("fleet", "--quick", timeout=180)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    for fleet in ("independent_devices", "host_shared"):
        measured = doc[fleet]
        if measured["emulation"].startswith("unavailable: "):  # no root, `ip netns` or cgroup v1 here
            assert fleet == "independent_devices" and doc["goal_met"] is None and doc["wall_ratio"] is None
            continue
        assert measured["one_target"]["targets"] == 1 and measured["many_targets"]["targets"] == 2
        walls = measured["many_targets"]["wall_s"], measured["one_target"]["wall_s"]
        assert measured["wall_ratio"] == pytest.approx(walls[0] / walls[1], abs=0.01)
    independent = doc["independent_devices"]
    if "wall_ratio" in independent:
        assert independent["emulation"].startswith("netns + cgroup cpu quota per device")
        assert independent["cfs_quota_us"] == 80_000 and independent["device_cpus"] == 0.8
        assert doc["wall_ratio"] == independent["wall_ratio"]
        assert doc["goal_met"] == (independent["wall_ratio"] <= doc["goal_ratio_max"])


def test_interrupted_run_resumes_without_redoing_finished_pairs(
    tmp_path: Path, models: list[Path], hang_pids: Path
) -> None:
    """The interrupt lands at a known point, whatever the machine's load: target `b`'s Python waits
    for a release file, so with one worker the run is certainly inside b's first job (a's two are
    journaled) when SIGINT is sent. Racing the run against a polling loop failed on a busy CI."""
    release = tmp_path / "release"
    gated = tmp_path / "py-gated"
    gated.write_text(
        f"#!/bin/sh\necho $$ >> '{hang_pids}'\n"
        f"while [ ! -e '{release}' ]; do sleep 0.05; done\nexec '{sys.executable}' \"$@\"\n"
    )
    gated.chmod(0o755)
    inv = local_inventory(tmp_path / "inv.yml", {"a": {}, "b": {"ansible_python_interpreter": str(gated)}})
    store = tmp_path / "store"
    args = ["fleet", "profile", *map(str, models), "--target", "lab", "--inventory", str(inv)]
    args += ["--runs", "5", "--warmup", "1", "--dir", str(store), "--workers", "1"]
    # SIGINT back to its default in the child: a test run started in the background (`make test &`)
    # inherits SIGINT ignored, and Python then never raises KeyboardInterrupt for it.
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgedeploy", *args, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    journals = Path(os.environ["XDG_CACHE_HOME"]) / "edgedeploy" / "fleet"
    deadline = time.monotonic() + 300  # only a bound on a broken run; the normal wait is a's two jobs
    while not hang_pids.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hang_pids.exists(), f"b never started: {proc.poll()} {proc.stderr.read() if proc.stderr else ''}"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    kill_recorded(hang_pids)
    assert proc.returncode == 130 and "interrupted; finished jobs are in" in err, err
    (journal,) = journals.glob("*.jsonl")
    done_before = [json.loads(line) for line in journal.read_text().splitlines()][1:]
    assert [(d["target"], d["status"]) for d in done_before] == [("a", "ok"), ("a", "ok")]

    release.touch()
    resumed = run_cli(*args, "--resume", journal.stem, "--json")
    assert resumed.returncode == 0, resumed.stderr
    rows = json.loads(resumed.stdout)["rows"]
    assert [r["status"] for r in rows] == ["ok"] * 4
    assert sum(r["resumed"] for r in rows) == len(done_before)
    assert len(list(store.rglob("*.json"))) == 4, "no pair was profiled twice"
