"""The profile store: files are the truth, the SQLite index follows them, corrupt files are skipped
with a warning and never deleted; list filters, show by id/prefix/path, CSV export."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

import pytest

from edgedeploy.errors import UsageError
from edgedeploy.profiles.index import INDEX_NAME, list_profiles, load_profile
from edgedeploy.profiles.store import throttle_flags, write_profile
from tests.support.cli import run_cli
from tests.support.fleet import profile_doc


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "profiles"
    write_profile(profile_doc("2026-01-01T10:00:00.000000Z", "pi5", "lenet_fp32", p50=2.0), root)
    write_profile(profile_doc("2026-02-01T10:00:00.000000Z", "pi5", "lenet_int8", p50=0.7), root)
    write_profile(
        profile_doc("2026-03-01T10:00:00.000000Z", "jetson", "lenet_int8", runtime={"name": "tflite"}), root
    )
    return root


def test_list_filters(store: Path) -> None:
    assert [r["model"] for r in list_profiles(store)] == ["lenet_fp32", "lenet_int8", "lenet_int8"]
    assert [r["target"] for r in list_profiles(store, target="jetson")] == ["jetson"]
    assert [r["created"][:7] for r in list_profiles(store, model="lenet_int8")] == ["2026-02", "2026-03"]
    sha_prefix = list_profiles(store, model="lenet_fp32")[0]["model_sha256"][:10]
    assert len(list_profiles(store, model=sha_prefix)) == 1
    assert [r["target"] for r in list_profiles(store, runtime="tflite")] == ["jetson"]
    assert len(list_profiles(store, since="2026-02-01")) == 2
    assert len(list_profiles(store, since="2026-02-01T12:00+02:00")) == 2  # 10:00 UTC, inclusive
    with pytest.raises(UsageError, match="--since"):
        list_profiles(store, since="last tuesday")


def test_index_follows_the_files(store: Path) -> None:
    assert len(list_profiles(store)) == 3
    index = store / INDEX_NAME
    assert index.is_file()

    new = write_profile(profile_doc("2026-04-01T10:00:00.000000Z", "pi5", "lenet_pruned"), store)
    assert len(list_profiles(store)) == 4  # a new file is indexed
    changed = profile_doc("2026-04-01T10:00:00.000000Z", "pi5", "lenet_pruned", p50=9.0)
    new.write_text(json.dumps(changed))
    stat = new.stat()
    os.utime(new, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert [r["p50_ms"] for r in list_profiles(store, model="lenet_pruned")] == [9.0]  # a change too
    new.unlink()
    assert len(list_profiles(store)) == 3  # and a removal

    index.unlink()  # the index is a cache: deleting it only costs a rebuild
    assert len(list_profiles(store)) == 3
    index.write_bytes(b"this is not a sqlite database" * 100)
    assert len(list_profiles(store)) == 3


def test_corrupt_files_are_skipped_with_a_warning_and_kept(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = store / "pi5" / "lenet_fp32" / "20260105T000000.000000Z.json"
    bad.write_text('{"created": "2026-01-05", "target": ')
    not_a_profile = store / "pi5" / "notes.json"
    not_a_profile.write_text("[1, 2, 3]")
    rows = list_profiles(store)
    assert len(rows) == 3
    err = capsys.readouterr().err
    assert f"skipped corrupt profile {bad}" in err and f"skipped corrupt profile {not_a_profile}" in err
    assert bad.exists() and not_a_profile.exists()
    list_profiles(store)  # the warning repeats while the file stays corrupt
    assert str(bad) in capsys.readouterr().err


def test_show_by_id_prefix_and_path(store: Path) -> None:
    rows = list_profiles(store)
    assert load_profile(store, rows[0]["id"])["model"]["name"] == "lenet_fp32"
    assert load_profile(store, "jetson/")["target"]["name"] == "jetson"
    assert load_profile(store, "20260201")["model"]["name"] == "lenet_int8"  # unique stem prefix
    assert load_profile(store, rows[2]["path"])["path"] == rows[2]["path"]
    with pytest.raises(UsageError, match="ambiguous"):
        load_profile(store, "2026")
    with pytest.raises(UsageError, match="no profile 'zzz'"):
        load_profile(store, "zzz")


def test_many_profiles_query_fast_after_the_first_index(tmp_path: Path) -> None:
    root = tmp_path / "profiles"
    for i in range(1500):
        created = f"2026-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}Z"
        write_profile(profile_doc(created, f"t{i % 10}", f"m{i % 7}"), root)
    assert len(list_profiles(root)) == 1500
    # This process's CPU time, not wall time: the bound holds however busy the machine is.
    start = time.process_time()
    rows = list_profiles(root, target="t3", model="m2")
    elapsed = time.process_time() - start
    assert len(rows) == len([i for i in range(1500) if i % 10 == 3 and i % 7 == 2])
    assert elapsed < 1.0, f"indexed query took {elapsed:.2f} CPU-seconds"


def test_cli_list_show_export(store: Path, tmp_path: Path) -> None:
    listed = run_cli("profiles", "list", "--dir", str(store), "--json", "--target", "pi5")
    assert listed.returncode == 0, listed.stderr
    ids = [r["id"] for r in json.loads(listed.stdout)]
    assert len(ids) == 2
    shown = run_cli("profiles", "show", ids[1], "--dir", str(store), "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["model"]["name"] == "lenet_int8"
    table = run_cli("profiles", "list", "--dir", str(store), env={"COLUMNS": "200"})
    assert table.returncode == 0 and "lenet_fp32" in table.stdout

    out = tmp_path / "export" / "all.csv"
    exported = run_cli("profiles", "export", "--csv", str(out), "--dir", str(store))
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["model"] for r in rows] == ["lenet_fp32", "lenet_int8", "lenet_int8"]
    assert float(rows[1]["p50_ms"]) == pytest.approx(0.7)

    missing = run_cli("profiles", "show", "nothing-like-this", "--dir", str(store))
    assert missing.returncode == 2 and missing.stderr.startswith("error: no profile")


@pytest.mark.parametrize(
    ("thermal", "flags"),
    [
        (None, []),
        ({"zones": {"cpu": 71.5}}, []),
        ({"throttled_now": True}, ["thermal.throttled_now=True"]),
        ({"vcgencmd": {"throttled": "0x0"}}, []),  # vcgencmd's "nothing happened"
        ({"vcgencmd": {"throttled": "0x50005"}}, ["thermal.vcgencmd.throttled=0x50005"]),
        ({"throttling": {"now": False, "since_boot": True}}, ["thermal.throttling.since_boot=True"]),
        ({"after": {"flags": ["soft_temp_limit"]}}, ["thermal.after.flags:soft_temp_limit"]),
    ],
)
def test_throttle_flags(thermal: object, flags: list[str]) -> None:
    assert throttle_flags({"thermal": thermal}) == flags


def test_throttle_flags_trust_the_runners_judgement() -> None:
    sticky = {
        "vcgencmd": {"throttled": 0x50000, "flags": ["throttling occurred"]},
        "throttle_counters": {"core_throttle_count": 9},
    }
    judged = {"before": sticky, "after": sticky, "throttled": False, "reasons": []}
    assert throttle_flags({"thermal": judged}) == []  # since-boot bits and old counts are not this run
    hot = {**judged, "throttled": True, "reasons": ["vcgencmd after: throttled now"]}
    assert throttle_flags({"thermal": hot}) == ["vcgencmd after: throttled now"]
    assert throttle_flags({"thermal": judged, "throttled": True}) == ["throttled during another repeat"]


def test_concurrent_queries_share_the_index(store: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    (store / INDEX_NAME).unlink(missing_ok=True)
    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda _: len(list_profiles(store)), range(8)))
    assert counts == [3] * 8


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("latency_ms", "fast", "field latency_ms is a string"),
        ("runtime", "onnxruntime", "field runtime is a string"),
        ("model", {"name": 5}, "field model.name is a number"),
        ("latency_ms", {"n": 10, "p50": "1.2"}, "field latency_ms.p50 is a string"),
        ("power", {"energy_per_inference_mj": [1]}, "field power.energy_per_inference_mj is a list"),
        ("target", {"name": "pi5", "emulated": "no"}, "field target.emulated is a string"),
    ],
)
def test_wrong_typed_profile_is_skipped_by_list_show_and_report(
    field: str, value: object, named: str, store: Path, tmp_path: Path
) -> None:
    """Valid JSON with a wrong type in one field: list, export and report skip that one file with a
    warning naming it and the field; the other profiles still come out; the file is left in place."""
    doc = profile_doc("2026-01-05T10:00:00.000000Z", "pi5", "lenet_fp32")
    doc[field] = value
    if field == "model":
        doc["model"]["name"] = 5
    bad = store / "pi5" / "lenet_fp32" / "20260105T100000.000000Z.json"
    bad.write_text(json.dumps(doc))
    warning = f"warning: skipped corrupt profile {bad}: {named}"

    listed = run_cli("profiles", "list", "--dir", str(store), "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 3 and warning in listed.stderr
    report = tmp_path / "r.html"
    reported = run_cli("profiles", "report", "--dir", str(store), "-o", str(report))
    assert reported.returncode == 0, reported.stderr
    assert warning in reported.stderr and "lenet_int8" in report.read_text()
    exported = run_cli("profiles", "export", "--dir", str(store), "--csv", "-")
    assert exported.returncode == 0 and len(exported.stdout.strip().splitlines()) == 4, exported.stderr
    assert bad.exists()
    shown = run_cli("profiles", "show", str(bad))
    assert shown.returncode == 2 and shown.stderr.strip().startswith(
        f"error: {bad}: corrupt profile: {named}"
    )
