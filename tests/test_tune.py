"""`edgedeploy tune` end to end on small real data (scikit-learn digits, a tiny MLP, short training):
compress -> convert (verified) -> accuracy of the exported file -> runner profile on real targets."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from edgedeploy.deploy.inventory import Target
from edgedeploy.errors import UsageError
from edgedeploy.tune.pool import DevicePool, NoDeviceLeft
from edgedeploy.tune.space import load_space, recipe_for

# tune is a [compress] verb: every run trains and exports a torch model, and the search is Optuna's.
pytestmark = pytest.mark.torch

# A 64-32-10 MLP trained for a moment on the digits (full batch) so accuracies mean something.
MODELS = """
import torch
from torch import nn


def digits_mlp() -> nn.Module:
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    digits = load_digits()  # trained on the first 600 only: below 100 % on the validation split
    x = torch.tensor(digits.images[:600] / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(digits.target[:600])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()
"""

SMALL_SPACE = {
    "training": {"structured_amount": [0.0, 0.25, 0.5], "epochs": [0.5]},
    "exports": ["onnx-fp32", "onnx-int8-dynamic"],
    "threads": [1],
}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "tunemodels.py").write_text(MODELS)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SMALL_SPACE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def tune(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str):
    from edgedeploy import cli

    monkeypatch.setattr(sys, "argv", ["edgedeploy", "tune", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


BASE = ["tunemodels:digits_mlp", "--data", "digits", "--runs", "5", "--space", "space.yaml", "-o", "out"]


def test_tune_on_local_measures_exports_and_resumes(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgedeploy import tune_job

    # Both variants re-timed side by side before one is recommended, however far apart their profiles.
    monkeypatch.setattr(tune_job, "RECHECK_MARGIN", 100.0)
    code, out, err = tune(monkeypatch, capsys, *BASE, "--trials", "1", "--max-accuracy-drop", "5")
    assert code == 0, err
    assert "Pareto front on local" in out and "recommended: trial" in out
    result = json.loads((workdir / "out/tune.json").read_text())
    # The first candidate is the input model as it is, exported twice and measured at one thread count.
    assert sorted(t["export"] for t in result["trials"]) == ["onnx-fp32", "onnx-int8-dynamic"]
    assert all(t["recipe"] == [] and t["state"] == "COMPLETE" for t in result["trials"])
    rec = result["recommended"]
    recheck = result["recheck"]
    assert sorted(recheck["variants"]) == sorted(t["number"] for t in result["trials"])
    assert recheck["chosen"] == rec["number"] and recheck["device"] == "local"
    assert set(recheck["p50_ms"]) == {str(n) for n in recheck["variants"]}
    assert recheck["p50_ms"][str(rec["number"])] == min(recheck["p50_ms"].values())
    assert "chosen after re-timing the 2 fastest variants side by side on local" in " ".join(out.split())
    assert rec["accuracy"] >= result["accuracy_floor"] > 0.5
    assert Path(result["recommended_files"]["model"]).read_bytes() == Path(rec["file"]).read_bytes()
    assert json.loads((workdir / "out/recommended.profile.json").read_text())["model"]["sha256"]

    # An interrupted tune leaves a RUNNING trial behind; the same command with --trials 2 marks it
    # failed and trains exactly one more candidate (a compressed one: the space's other recipes).
    import optuna

    stale = optuna.load_study(study_name="tune", storage=f"sqlite:///{workdir / 'out/study.db'}").ask()
    code, out, err = tune(monkeypatch, capsys, *BASE, "--trials", "2", "--max-accuracy-drop", "5")
    assert code == 0, err
    assert f"trials [{stale.number}] were interrupted" in err
    result = json.loads((workdir / "out/tune.json").read_text())
    variants = [t for t in result["trials"] if "export" in t]
    assert len({t["candidate"] for t in variants}) == 2 and len(variants) == 4
    assert result["study"]["interrupted_trials"] == [stale.number]
    second = [t for t in variants if t["recipe"]]
    assert {t["recipe"][0]["stage"] for t in second} == {"prune_structured"}
    # Each measured trial's profile carries the accuracy measured on the exported file and the trial.
    measured = [t for t in variants if t["state"] == "COMPLETE"]
    assert measured and result["pareto"]
    names = set()
    for t in measured:
        profile = json.loads(Path(t["profile"]).read_text())
        names.add(profile["model"]["name"])  # what `profiles report` tells variants apart by
        assert profile["model"]["accuracy"] == t["accuracy"]
        assert profile["tags"]["tune"]["device"] == "local" == t["device"]
        assert profile["settings"]["threads"] == t["threads"] and profile["latency_ms"]["n"] == 5
    assert len(names) == len(measured) == 4 and "tune-c000-onnx-fp32" in names
    # A pruned model is smaller on disk: size is measured, not assumed.
    sizes = {(bool(t["recipe"]), t["export"]): t["size_bytes"] for t in variants}
    assert sizes[(True, "onnx-fp32")] < sizes[(False, "onnx-fp32")]
    # The HTML report in -o DIR shows every measured trial as a point of the inline SVG chart.
    page = (workdir / "out/report.html").read_text()
    assert Path(result["report"]).resolve() == workdir / "out/report.html"
    assert sorted(int(n) for n in re.findall(r'<g id="trial-(\d+)"', page)) == sorted(
        t["number"] for t in measured
    )
    assert re.findall(r'<g id="recommended-(\d+)"', page) == [str(result["recommended"]["number"])]


def test_tune_on_a_group_uses_both_devices_and_survives_a_dead_one(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    local = {"ansible_connection": "local"}
    hosts = {
        # Sorted first, so the first measurement meets it: nothing listens on port 1.
        "dev-0dead": {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_user": "nobody"},
        "dev-a": {**local, "edgedeploy_workdir": str(workdir / "a")},
        "dev-b": {**local, "edgedeploy_workdir": str(workdir / "b")},
    }
    (workdir / "inv.yml").write_text(yaml.safe_dump({"all": {"children": {"pair": {"hosts": hosts}}}}))
    # One recipe (the input model), one export, two thread counts: two measurements.
    space = {"training": {"structured_amount": [0.0]}, "exports": ["onnx-fp32"], "threads": [1, 2]}
    (workdir / "space.yaml").write_text(yaml.safe_dump(space))
    args = ["--trials", "2", "--target", "pair", "--inventory", "inv.yml", "--max-accuracy-drop", "50"]
    code, out, err = tune(monkeypatch, capsys, *BASE, *args)
    assert code == 0, err
    result = json.loads((workdir / "out/tune.json").read_text())
    assert "dev-0dead" in result["devices"]["set_aside"]
    assert "device dev-0dead set aside" in err
    # The space holds one recipe: the study stops there instead of asking for a second forever.
    assert "the space holds 1 distinct recipes; all are trained" in out
    measured = [t for t in result["trials"] if t["state"] == "COMPLETE"]
    # One measurement per device at a time, both live devices used, each profile says which.
    assert sorted(t["device"] for t in measured) == ["dev-a", "dev-b"]
    for t in measured:
        assert json.loads(Path(t["profile"]).read_text())["target"]["name"] == t["device"]


def test_tune_says_the_best_found_when_nothing_meets_the_floor(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two shared values per layer ruins the MLP, and the input model itself is not in this space.
    (workdir / "space.yaml").write_text(
        yaml.safe_dump({"training": {"cluster": [2], "epochs": [0.1]}, "exports": ["onnx-fp32"]})
    )
    code, out, err = tune(monkeypatch, capsys, *BASE, "--trials", "1", "--max-accuracy-drop", "0")
    assert code == 3
    lines = err.strip().splitlines()
    assert (
        lines[-1].startswith("error: no model within --max-accuracy-drop 0")
        and "best found: accuracy" in lines[-1]
    )
    result = json.loads((workdir / "out/tune.json").read_text())
    assert result["counts"]["PRUNED"] == 1 and result["recommended"] is None  # never profiled


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--target", "nosuchboard"], "error: unknown target 'nosuchboard'"),
        (["--objectives", "accuracy,speed"], "error: --objectives 'accuracy,speed'"),
        (["--trials", "0"], "error: --trials must be >= 1"),
        (["--sampler", "grid"], "error: --sampler 'grid': expected one of auto, nsga2, tpe, random"),
    ],
)
def test_tune_bad_input_is_one_line(
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    expected: str,
) -> None:
    code, out, err = tune(monkeypatch, capsys, *BASE, *args)
    assert code == 2 and err.strip().startswith(expected) and len(err.strip().splitlines()) == 1, err
    assert not (workdir / "out").exists()  # refused before any work


def test_space_with_no_valid_point_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"training": {"sparsity": [1.5, -1]}}))
    with pytest.raises(UsageError, match=r"bad.yaml: no valid point for sparsity"):
        load_space(bad)
    bad.write_text(yaml.safe_dump({"exports": ["tflite-int8"]}))
    with pytest.raises(UsageError, match=r"no valid point: no exports left"):
        load_space(bad, tflite_ok=False)
    bad.write_text(yaml.safe_dump({"training": {"rank": [4]}}))
    with pytest.raises(UsageError, match=r"unknown training axis 'rank'"):
        load_space(bad)


def test_default_space_loads_and_builds_recipes() -> None:
    space = load_space(None, tflite_ok=True)
    assert set(space.training) == {"structured_amount", "sparsity", "cluster", "distill", "epochs"}
    assert "tflite-int8" in space.exports and space.threads == [1, 2]
    settings = {"structured_amount": 0.5, "sparsity": 0.8, "cluster": 16, "distill": True, "epochs": 2.0}
    stages = [s["stage"] for s in recipe_for(settings)]
    # distillation on: the pruning stages learn from the input model too (a carry stage first)
    assert stages == ["distill", "prune_structured", "prune", "distill", "cluster"]
    assert recipe_for(settings)[0] == {"stage": "distill", "epochs": 0, "carry": True}
    from edgedeploy.compress.pipeline import load_recipe

    assert len(load_recipe(recipe_for(settings))) == 5  # every built recipe is a valid recipe
    assert [s["stage"] for s in recipe_for({**settings, "structured_amount": 0.0, "sparsity": 0.0})] == [
        "distill",
        "cluster",
    ]
    off = {"structured_amount": 0.0, "sparsity": 0.0, "cluster": 0, "distill": False, "epochs": 1.0}
    assert recipe_for(off) == []


def test_guided_search_starts_from_each_structured_amount(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # 4 trials asked: the input model, then (half the trials) the smallest structured amount at its
    # best budget, then what TPE proposes (the space holds 3 recipes: all are trained).
    code, out, err = tune(monkeypatch, capsys, *BASE, "--trials", "4", "--max-accuracy-drop", "50")
    assert code == 0, err
    result = json.loads((workdir / "out/tune.json").read_text())
    assert any(m.startswith("start-up candidates") and "structured 0.25" in m for m in result["messages"])
    asked = sorted({t["candidate"]: t for t in result["trials"] if t.get("candidate")}.items())
    assert len(asked) == 3
    assert asked[0][1]["recipe"] == []
    assert asked[1][1]["settings"]["structured_amount"] == 0.25
    import optuna

    study = optuna.load_study(study_name="tune", storage=f"sqlite:///{workdir / 'out/study.db'}")
    enqueued = [t.params["structured_amount"] for t in study.trials if t.user_attrs.get("startup")]
    assert enqueued == [0.25]


def test_startup_points_cover_each_structured_amount_at_its_best_budget(tmp_path: Path) -> None:
    space = load_space(None, tflite_ok=True)  # structured 0 / 0.25 / 0.5, epochs 1 / 2 / 4
    points = space.startup_points(3)
    assert points == [
        {"structured_amount": 0.25, "sparsity": 0.0, "cluster": 0, "distill": True, "epochs": 4.0},
        {"structured_amount": 0.5, "sparsity": 0.0, "cluster": 0, "distill": True, "epochs": 4.0},
    ]
    assert space.startup_points(1) == points[:1] and space.startup_points(0) == []
    # A range: its grid (with a step) or evenly spaced amounts; no off value: the mildest one.
    ranged = tmp_path / "ranged.yaml"
    ranged.write_text(
        yaml.safe_dump(
            {
                "training": {
                    "structured_amount": {"low": 0.0, "high": 0.6, "step": 0.2},
                    "cluster": [16, 64],
                    "distill": [False],
                    "epochs": {"low": 1.0, "high": 3.0},
                },
                "exports": ["onnx-fp32"],
            }
        )
    )
    points = load_space(ranged).startup_points(2)
    assert [round(p["structured_amount"], 6) for p in points] == [0.2, 0.4]
    assert points[0] | {"structured_amount": 0} == {
        "structured_amount": 0,
        "cluster": 64,
        "distill": False,
        "epochs": 3.0,
    }
    no_structured = tmp_path / "dense.yaml"
    no_structured.write_text(yaml.safe_dump({"training": {"sparsity": [0.0, 0.5]}, "exports": ["onnx-fp32"]}))
    assert load_space(no_structured).startup_points(3) == []


def test_pool_holds_one_measurement_per_device(tmp_path: Path) -> None:
    pool = DevicePool([Target("a"), Target("b")], tmp_path / "locks")
    active: dict[str, int] = {"a": 0, "b": 0}
    overlap: list[str] = []
    guard = threading.Lock()

    def measure() -> None:
        with pool.device() as target:
            with guard:
                active[target.name] += 1
                if active[target.name] > 1:
                    overlap.append(target.name)
            time.sleep(0.01)
            with guard:
                active[target.name] -= 1

    threads = [threading.Thread(target=measure) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlap and pool.used == {"a": 4, "b": 4} or sum(pool.used.values()) == 8 and not overlap
    pool.mark_failed(Target("a"), "unreachable")
    with pool.device() as target:
        assert target.name == "b"
    pool.mark_failed(Target("b"), "unreachable")
    with pytest.raises(NoDeviceLeft, match="a: unreachable; b: unreachable"), pool.device():
        pass


def test_tune_on_an_ssh_target_with_json(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sshd
) -> None:
    # The device's Python is this venv's, which has the runtimes (as a provisioned board would).
    (workdir / "inv.yml").write_text(sshd.inventory_yaml("board", ansible_python_interpreter=sys.executable))
    space = {"training": {"structured_amount": [0.0]}, "exports": ["onnx-fp32"], "threads": [1]}
    (workdir / "space.yaml").write_text(yaml.safe_dump(space))
    args = ["--trials", "1", "--target", "board", "--inventory", "inv.yml", "--json"]
    code, out, err = tune(monkeypatch, capsys, *BASE, *args)
    assert code == 0, err
    result = json.loads(out)  # --json: one document on stdout, nothing else
    rec = result["recommended"]
    assert rec["device"] == "board" and rec["p50_ms"] > 0
    profile = json.loads(Path(rec["profile"]).read_text())
    assert profile["target"]["connection"] == "ssh" and profile["model"]["accuracy"] == rec["accuracy"]


@pytest.fixture
def ray_cluster(tmp_path: Path):
    """A real local Ray cluster (`ray start --head --block`, 2 CPUs, loopback), stopped after."""
    pytest.importorskip("ray")
    import os
    import shutil
    import signal
    import socket
    import subprocess

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent))
    # A short temp dir: Ray's socket paths must stay under the 107-byte AF_UNIX limit.
    temp = Path(f"/tmp/ray-{os.getpid()}-{port}")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", "--num-cpus", "2", "--node-ip-address", "127.0.0.1",
         "--port", str(port), "--include-dashboard", "false", "--temp-dir", str(temp)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
        import ray

        for _ in range(120):  # the head is up when a driver can join it
            try:
                ray.init(address=address, log_to_driver=False)
                ray.shutdown()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if head.poll() is not None:
                    pytest.fail("ray start --head exited")
                time.sleep(1)
        yield address
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # --block: stopping it stops the processes it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def test_tune_trains_candidates_as_ray_tasks(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], ray_cluster: str
) -> None:
    import os

    space = {"training": {"structured_amount": [0.0, 0.25]}, "exports": ["onnx-fp32"], "threads": [1]}
    (workdir / "space.yaml").write_text(yaml.safe_dump(space))
    code, out, err = tune(monkeypatch, capsys, *BASE, "--trials", "2", "--ray", ray_cluster, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["executor"] == {"kind": "ray", "address": ray_cluster, "parallel": 2}
    trials = json.loads((workdir / "out/tune.json").read_text())["trials"]
    measured = [t for t in trials if t["state"] == "COMPLETE"]
    assert len(measured) == 2 and {bool(t["recipe"]) for t in measured} == {False, True}
    # Built by Ray workers, measured here (the device pool stays in the driver).
    assert all(t["built_by"]["pid"] != os.getpid() for t in measured)
    assert all(Path(t["profile"]).is_file() for t in measured)


def test_tune_with_its_only_device_unreachable_is_one_line(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts = {"gone": {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_user": "nobody"}}
    (workdir / "inv.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    space = {"training": {"structured_amount": [0.0]}, "exports": ["onnx-fp32"], "threads": [1]}
    (workdir / "space.yaml").write_text(yaml.safe_dump(space))
    code, out, err = tune(
        monkeypatch, capsys, *BASE, "--trials", "1", "--target", "gone", "--inventory", "inv.yml"
    )
    assert code == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: no device of target 'gone' could measure (gone: ") and "resume" in last
    result = json.loads((workdir / "out/tune.json").read_text())
    assert result["counts"]["FAIL"] == 1 and "gone" in result["devices"]["set_aside"]


def test_space_runtimes_axis(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(
        yaml.safe_dump({"exports": ["onnx-fp32", "tflite-int8"], "runtimes": ["ai-edge-litert", "auto"]})
    )
    space = load_space(path, tflite_ok=True)
    assert space.runtimes_for("tflite-int8") == ["ai-edge-litert", "auto"]
    assert space.runtimes_for("onnx-fp32") == ["auto"]  # LiteRT cannot run .onnx files
    # An export no runtime of the space can run is dropped with a note; none left: no valid point.
    path.write_text(yaml.safe_dump({"exports": ["onnx-fp32", "tflite-int8"], "runtimes": ["onnxruntime"]}))
    space = load_space(path, tflite_ok=True)
    assert space.exports == ["onnx-fp32"] and "tflite-int8 skipped" in space.notes[0]
    path.write_text(yaml.safe_dump({"exports": ["tflite-int8"], "runtimes": ["onnxruntime"]}))
    with pytest.raises(UsageError, match=r"space.yaml: no valid point: no exports left"):
        load_space(path, tflite_ok=True)
    path.write_text(yaml.safe_dump({"runtimes": ["tensorrt"]}))
    with pytest.raises(
        UsageError, match=r"space.yaml: unknown runtime\(s\) tensorrt \(known: auto, onnxruntime"
    ):
        load_space(path)
    default = load_space(None, tflite_ok=True)
    # The precisions are all in the default space, and runtime is a cheap axis there.
    assert set(default.exports) >= {
        "onnx-fp32", "onnx-fp16", "onnx-int8-qdq", "onnx-int8-qoperator", "onnx-int8-dynamic",
        "tflite-fp32", "tflite-fp16", "tflite-int8",
    }  # fmt: skip
    assert len(default.runtimes) > 1


def test_tune_measures_each_runtime_and_skips_one_the_device_lacks(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    if importlib.util.find_spec("litert_torch") is None:
        pytest.skip("TFLite export needs litert-torch ([litert] extra)")
    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("this test needs a runtime the device lacks; tensorflow is installed here")
    # One candidate (the input model), exported to ONNX and TFLite, measured with every runtime of
    # the space that runs the file, at two thread counts, without retraining.
    space = {
        "training": {"structured_amount": [0.0]},
        "exports": ["onnx-fp32", "tflite-fp32"],
        "runtimes": ["onnxruntime", "ai-edge-litert", "tensorflow"],
        "threads": [1, 2],
    }
    (workdir / "space.yaml").write_text(yaml.safe_dump(space))
    code, out, err = tune(monkeypatch, capsys, *BASE, "--trials", "1", "--max-accuracy-drop", "5")
    assert code == 0, err
    result = json.loads((workdir / "out/tune.json").read_text())
    measured = sorted(
        (t["export"], t["requested_runtime"], t["threads"])
        for t in result["trials"]
        if t["state"] == "COMPLETE"
    )
    assert measured == [
        ("onnx-fp32", "onnxruntime", 1), ("onnx-fp32", "onnxruntime", 2),
        ("tflite-fp32", "ai-edge-litert", 1), ("tflite-fp32", "ai-edge-litert", 2),
    ]  # fmt: skip
    assert {t["runtime"] for t in result["trials"] if t["state"] == "COMPLETE"} == {
        "onnxruntime",
        "ai-edge-litert",
    }
    # The runtime this device lacks: one failed trial saying so, then skipped (the device is fine).
    failed = [t for t in result["trials"] if t["state"] == "FAIL"]
    assert len(failed) == 1 and "runtime tensorflow is on no device" in failed[0]["error"]
    assert "runtime tensorflow is on no device of the target" in err
    assert result["devices"]["set_aside"] == {}
    import optuna

    study = optuna.load_study(study_name="tune", storage=f"sqlite:///{workdir / 'out/study.db'}")
    assert {t.params.get("runtime") for t in study.trials if t.state.name == "COMPLETE"} == {
        "onnxruntime",
        "ai-edge-litert",
    }


def test_candidate_traces_the_model_once_per_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other precisions of a format are quantized from its fp32 file (as `convert` does a
    user's file), not traced again: tracing is the slow part (~20 s per export for MobileNetV2)."""
    import numpy as np
    import torch

    from edgedeploy.convert import onnx_export
    from edgedeploy.tune.candidate import CandidateJob, export_files

    traced: list[Path] = []
    real_export = onnx_export.export_torch

    def counting_export(*args: object, **kwargs: object) -> object:
        traced.append(Path(str(args[2])))
        return real_export(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(onnx_export, "export_torch", counting_export)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4)).eval()
    x = np.random.default_rng(0).random((32, 1, 4, 4), dtype=np.float32)
    y = model(torch.from_numpy(x)).argmax(1).numpy()
    exports = ["onnx-int8-dynamic", "onnx-fp32", "onnx-int8-qoperator"]
    job = CandidateJob(model, None, [], 0, exports, x[:1], x, x, y, stem="c000")
    built = export_files(model, job, tmp_path, tmp_path / "convert.log")
    assert list(built) == exports
    assert len(traced) == 1, traced
    for export, result in built.items():
        assert not isinstance(result, Exception), (export, result)
        path, accuracy = result
        assert path.name == f"c000-{export}.onnx" and path.exists()
        assert accuracy >= 0.9  # labels are the model's own predictions
