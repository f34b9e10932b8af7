"""The Python API (edgedeploy.api): docs/api.md's fleet script, run as written against real OpenSSH
servers on loopback; typed results from every core verb on the local target; the package's errors;
and importing it loads no framework."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgedeploy import api
from edgedeploy.errors import EdgeDeployError, UsageError
from edgedeploy.profiles.store import SUMMARY_FIELDS
from edgedeploy.results import FleetResult, FleetRow, Profile, ProfileSummary
from tests.support.cli import REPO
from tests.support.fleet import local_inventory, ssh_inventory
from tests.support.onnx_models import dense_onnx
from tests.support.sshd import SSHServer, keygen, make_server, sshd_available

SCRIPT_HEADER = "# fleet_compare.py"


def fleet_script() -> str:
    """The fleet script exactly as docs/api.md shows it (the ```python block that starts with its name)."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "api.md").read_text(), re.S)
    scripts = [b for b in blocks if b.startswith(SCRIPT_HEADER)]
    assert len(scripts) == 1, f"docs/api.md should hold one block starting {SCRIPT_HEADER!r}"
    return scripts[0]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[SSHServer]]:
    if not sshd_available():
        pytest.skip("OpenSSH server not installed (make test installs Debian's openssh-server)")
    client_key = keygen(tmp_path / "client_key")
    with contextlib.ExitStack() as stack:
        started = []
        for i in range(3):
            server = make_server(tmp_path / f"sshd{i}", client_key=client_key)
            stack.callback(server.stop)
            started.append(server.start())
            server.write_known_hosts()
        yield started


def _run_script(script: Path, *args: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,  # a hang guard sized for a loaded machine, not a timing assertion
    )


def test_the_documented_fleet_script_runs_against_real_sshd(tmp_path: Path, servers: list[SSHServer]) -> None:
    script = tmp_path / "fleet_compare.py"
    script.write_text(fleet_script())
    code = [line for line in fleet_script().splitlines() if line.strip() and not line.startswith("#")]
    assert len(code) <= 25, f"the doc promises a short script; it has {len(code)} lines of code"
    model = dense_onnx(tmp_path / "tiny.onnx", 32)
    inventory = ssh_inventory(tmp_path / "lab.yml", servers, "lab")
    store = tmp_path / "store"

    done = _run_script(script, model, "lab", inventory, store)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["target", "p50", "ms", "p99", "ms", "RSS", "MB", "vs", "best"], done.stdout
    table = {line.split()[0]: line.split() for line in lines[1:4]}
    assert sorted(table) == ["box0", "box1", "box2"], done.stdout
    assert lines[1].split()[-1] == "1.00x"  # ranked by p50, the fastest first
    assert all(float(row[-1].rstrip("x")) >= 1.0 for row in table.values())
    assert re.fullmatch(r"box\d vs box\d: p50 \+\d+\.\d%( \(within the measured spread: noise\))?", lines[4])
    assert len(lines) == 5, done.stdout
    stored = sorted(p.relative_to(store).parts[:2] for p in store.rglob("*.json"))
    assert stored == [(f"box{i}", "tiny") for i in range(3)]  # one profile per device, in the store
    for profile in api.list_profiles(store):  # and the rows printed are the stored ones
        assert f"{profile.p50_ms:.3f}" == table[profile.target][1]

    # A device that stops answering fails its own row; the others are still compared; exit 1.
    servers[1].stop()
    again = _run_script(script, model, "lab", inventory, store)
    assert again.returncode == 1, again.stdout + again.stderr
    assert again.stdout.startswith("box1: failed: box1: "), again.stdout
    # Bad input: one line naming the problem, no traceback.
    missing = _run_script(script, tmp_path / "nope.onnx", "lab", inventory, store)
    assert missing.returncode == 1 and missing.stderr == f"error: {tmp_path / 'nope.onnx'}: no such file\n"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return dense_onnx(tmp_path / "tiny.onnx", 16, features=64, bias=False)


def test_core_verbs_return_typed_results_on_the_local_target(tmp_path: Path, model: Path) -> None:
    info = api.inspect(str(model))
    assert (info.format, info.parameters, info.file) == ("onnx", 64 * 16, model)
    assert [(t.name, t.shape) for t in info.inputs] == [("x", [1, 64])]
    assert [t.name for t in info.outputs] == ["y"]

    pushed = api.push(model, "local")
    assert pushed.ok and pushed.group is None and [t.target for t in pushed.targets] == ["local"]
    assert pushed.targets[0].remote_path and pushed.targets[0].remote_path.endswith("models/tiny.onnx")
    again = api.push(model, "local")
    assert again.targets[0].skipped and again.targets[0].sent_bytes == 0

    x = tmp_path / "x.npy"
    np.save(x, np.ones((1, 64), np.float32))
    ran = api.run(model, inputs=[x], out_dir=tmp_path / "outs")
    assert ran.target == "local" and [o.name for o in ran.outputs] == ["y"]
    assert ran.outputs[0].shape == [1, 16] and ran.outputs[0].file == (tmp_path / "outs" / "y.npy").resolve()
    assert np.load(ran.outputs[0].file).shape == (1, 16)

    store = tmp_path / "store"
    profile = api.profile(model, runs=5, warmup=1, min_seconds=0, warmup_seconds=0, profiles_dir=store)
    assert isinstance(profile, Profile) and Path(profile.path).is_file()
    assert (profile.target, profile.model, profile.n) == ("local", "tiny", 5)
    assert profile.p50_ms is not None and profile.p50_ms > 0 and profile.peak_rss_mb
    assert profile.to_dict() == json.loads(Path(profile.path).read_text()) | {"path": profile.path}

    (row,) = api.list_profiles(store, target="local")
    assert isinstance(row, ProfileSummary) and row.id == profile.id and row.p50_ms == profile.p50_ms
    assert tuple(row.to_dict()) == SUMMARY_FIELDS  # `profiles list --json` keeps its columns
    assert ProfileSummary.from_row(row.to_dict()) == row
    assert api.load_profile(row.id, store) == profile  # equal on every field but the document
    assert api.load_profile(profile.path).id == Path(profile.path).with_suffix("").as_posix()
    same = api.compare_profiles(row.id, profile.path, store)
    p50 = same.metric("latency p50")
    assert p50 is not None and p50.delta == 0 and p50.better is None

    converted = api.convert(model, "onnx", "fp32", tmp_path / "copy.onnx")
    assert converted.output == tmp_path / "copy.onnx" and converted.output.is_file()
    assert (converted.format, converted.precision) == ("onnx", "fp32")
    assert converted.verified_max_abs_error is not None and converted.verified_max_abs_error < 1e-4


def test_fleet_profile_rows_are_typed_and_failures_are_rows(tmp_path: Path, model: Path) -> None:
    inventory = local_inventory(
        tmp_path / "inv.yml", {"a": {}, "off": {"ansible_python_interpreter": "/bin/false"}}
    )
    fleet = api.fleet_profile([model], "lab", inventory=inventory, runs=5, warmup=1, retries=0)
    assert isinstance(fleet, FleetResult) and (fleet.succeeded, fleet.failed) == (1, 1)
    ok, failed = fleet.rows
    assert ok.ok and ok.p50_ms and ok.profile_path and Path(ok.profile_path).is_file()
    assert fleet.failures == [failed] and failed.error and failed.error.startswith("off: ")
    assert fleet.to_dict()["rows"][0] == ok.to_dict()


def test_fleet_rows_keep_the_json_key_order() -> None:
    """`fleet profile --json` and the journal print rows as before the rows were typed."""
    base = ["target", "model", "model_name", "model_sha256", "status", "error", "profile_path"]
    base += ["attempts", "seconds", "resumed", "emulated"]
    row = FleetRow("t", "m.onnx", "m", "ab" * 32)
    assert list(row.to_dict()) == base  # not attempted
    row.started, row.finished = "s", "f"
    assert list(row.to_dict()) == [*base, "started", "finished"]  # failed
    row.status, row.p50_ms = "ok", 1.5
    assert list(row.to_dict()) == [*base, "started", "p50_ms", "finished"]
    journal_line = {"event": "job", **row.to_dict(), "at": "x"}
    assert FleetRow.from_dict(journal_line) == row


def test_errors_are_the_packages_one_line_errors(tmp_path: Path, model: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        api.profile(tmp_path / "missing.onnx")
    with pytest.raises(UsageError, match="unknown target 'ghost'"):
        api.fleet_profile([model], "ghost")
    with pytest.raises(UsageError, match="no profile 'zzz'"):
        api.load_profile("zzz", tmp_path)
    with pytest.raises(UsageError, match="--since"):
        api.list_profiles(tmp_path, since="last tuesday")
    # Without torch: the one line naming the [compress] extra; with it: the bad option, before training.
    with pytest.raises(EdgeDeployError, match=r"\[compress\] extra|--repeats"):
        api.compress("edgedeploy.models.zoo:lenet300", tmp_path / "out", repeats=0)


def test_importing_the_api_loads_no_framework() -> None:
    heavy = ("torch", "onnx", "onnxruntime", "numpy", "typer", "rich", "yaml", "paramiko")
    code = f"import edgedeploy, edgedeploy.api, sys; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
