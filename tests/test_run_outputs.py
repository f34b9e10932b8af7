"""`edgedeploy run --out` treats the device's answer as untrusted: output file names that would land
outside the output folder are refused with one line, and nothing is written there. A full disk on
the device is one line too, and leaves no temporary output file there.

The hostile device is the real local target whose Python interpreter is a wrapper: it runs the real
runner, then moves each output file on the "device" and renames it in the JSON answer, as a
compromised board could."""

from __future__ import annotations

import contextlib
import json
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import run_cli
from tests.support.onnx_models import dense_onnx

TAMPERING_PYTHON = """#!{python}
import json, os, subprocess, sys

HOSTILE = {hostile!r}
args = sys.argv[1:]
if "--mode" not in args or args[args.index("--mode") + 1] != "run":
    os.execv(sys.executable, [sys.executable, *args])  # pushes and hashing stay honest
proc = subprocess.run([sys.executable, *args], stdout=subprocess.PIPE, text=True)
out_dir = args[args.index("--out-dir") + 1]
lines = proc.stdout.splitlines()
doc = json.loads(lines[-1])
for out in doc["outputs"]:
    moved = os.path.join(out_dir, HOSTILE + ".npy")
    os.makedirs(os.path.dirname(moved), exist_ok=True)
    os.replace(os.path.join(out_dir, out["file"] + ".npy"), moved)
    out["file"] = HOSTILE
print(json.dumps(doc))
sys.exit(proc.returncode)
"""


def hostile_target(tmp_path: Path, hostile: str) -> list[str]:
    wrapper = tmp_path / "device-python"
    wrapper.write_text(TAMPERING_PYTHON.format(python=sys.executable, hostile=hostile))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    inventory = tmp_path / "inventory.yml"
    board = {"ansible_connection": "local", "ansible_python_interpreter": str(wrapper)}
    inventory.write_text(json.dumps({"all": {"hosts": {"evil": board}}}))
    return ["--target", "evil", "--inventory", str(inventory)]


@pytest.mark.parametrize("hostile", ["../PWNED_out", "sub/../../PWNED_out", "ABSOLUTE", ".hidden", ".."])
def test_run_refuses_output_names_outside_the_out_folder(hostile: str, tmp_path: Path) -> None:
    if hostile == "ABSOLUTE":
        hostile = str(tmp_path / "elsewhere" / "PWNED_out")
    model = dense_onnx(tmp_path / "tiny.onnx")
    np.save(tmp_path / "x.npy", np.ones((1, 16), np.float32))
    outs = tmp_path / "work" / "outs"
    out = run_cli("run", str(model), *hostile_target(tmp_path, hostile), "--inputs", str(tmp_path / "x.npy"),
                  "--out", str(outs), cwd=tmp_path)  # fmt: skip
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1, out.stderr
    assert lines[0].startswith("error: evil: refused output file name ") and repr(hostile) in lines[0]
    assert "not a plain file name inside" in lines[0]
    # Nothing was written by the host beside the output folder or in it.
    assert not (tmp_path / "work" / "PWNED_out.npy").exists()
    assert not (tmp_path / "PWNED_out.npy").exists()
    assert not outs.exists() or not any(outs.iterdir())


def test_run_still_writes_plain_names_through_the_same_wrapper(tmp_path: Path) -> None:
    """The wrapper itself is not what fails: a plain name it reports is fetched as before."""
    model = dense_onnx(tmp_path / "tiny.onnx")
    np.save(tmp_path / "x.npy", np.ones((1, 16), np.float32))
    outs = tmp_path / "outs"
    out = run_cli("run", str(model), *hostile_target(tmp_path, "renamed-by-device"),
                  "--inputs", str(tmp_path / "x.npy"), "--out", str(outs), cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert [p.name for p in outs.iterdir()] == ["renamed-by-device.npy"]
    assert np.load(outs / "renamed-by-device.npy").shape == (1, 8)


@pytest.fixture
def full_outputs_dir(tmp_path: Path) -> Iterator[Path]:
    """A device work dir whose outputs/ is a tiny tmpfs filled to the last byte (a full disk)."""
    workdir = tmp_path / "device"
    mount = workdir / "outputs"
    mount.mkdir(parents=True)
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.decode().strip()}")
    try:
        with contextlib.suppress(OSError), (mount / "filler").open("wb") as fh:
            while True:
                fh.write(bytes(4096))
                fh.flush()
        yield workdir
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_run_on_a_full_device_disk_leaves_no_temp_output(full_outputs_dir: Path, tmp_path: Path) -> None:
    model = dense_onnx(tmp_path / "tiny.onnx")
    np.save(tmp_path / "x.npy", np.ones((1, 16), np.float32))
    inventory = tmp_path / "inventory.yml"
    board = {"ansible_connection": "local", "edgedeploy_workdir_local": str(full_outputs_dir)}
    inventory.write_text(json.dumps({"all": {"hosts": {"board": board}}}))
    out = run_cli("run", str(model), "--target", "board", "--inventory", str(inventory), "--inputs",
                  str(tmp_path / "x.npy"), "--out", str(tmp_path / "outs"), cwd=tmp_path)  # fmt: skip
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1, out.stderr
    assert lines[0].startswith("error: board: cannot write output ") and "No space left on device" in lines[0]
    leftovers = [p.name for p in (full_outputs_dir / "outputs").rglob("*") if p.name != "filler"]
    assert not [name for name in leftovers if name.endswith(".npy")], leftovers
    assert not (tmp_path / "outs").exists()
