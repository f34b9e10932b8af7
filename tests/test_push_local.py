"""`push` semantics on the local transport: skip, manifest, stale partial uploads, missing file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgedeploy.deploy.inventory import cache_dir
from edgedeploy.deploy.push import PART_SUFFIX, push_file
from edgedeploy.deploy.transports.local import LocalTransport
from tests.support.cli import run_cli


def test_stale_partial_upload_is_replaced_and_manifest_records_files(tmp_path: Path) -> None:
    workdir = tmp_path / "device"
    model = tmp_path / "m.onnx"
    model.write_bytes(os.urandom(50_000))
    (workdir / "models").mkdir(parents=True)
    (workdir / "models" / ("m.onnx" + PART_SUFFIX)).write_bytes(b"garbage from an older upload")
    with LocalTransport("local", workdir) as local:
        first = push_file(local, model, "models", python="python3")
        second = push_file(local, model, "models", python="python3")
    assert first.sent_bytes == 50_000 and first.resumed_from == 0 and not first.skipped
    assert second.skipped and second.sent_bytes == 0
    assert Path(first.remote_path).read_bytes() == model.read_bytes()
    assert not (workdir / "models" / ("m.onnx" + PART_SUFFIX)).exists()
    entry = json.loads((workdir / "manifest.json").read_text())["files"]["models/m.onnx"]
    assert entry["sha256"] == first.sha256 and entry["size"] == 50_000 and entry["source"] == "m.onnx"


def test_push_cli_on_local_target_and_missing_file(tmp_path: Path) -> None:
    model = tmp_path / "net.onnx"
    model.write_bytes(b"onnx bytes")
    out = run_cli("push", str(model), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["remote_path"] == str(cache_dir() / "targets" / "local" / "models" / "net.onnx")
    assert doc["runner"]["remote_path"].endswith("edgedeploy_runner.pyz")
    # The zipapp is rebuilt by each CLI process from the same sources: the same bytes, so not resent.
    again = json.loads(run_cli("push", str(model), "--json").stdout)
    assert again["runner"]["skipped"] and again["runner"]["sha256"] == doc["runner"]["sha256"]
    missing = run_cli("push", str(tmp_path / "nope.onnx"))
    assert (
        missing.returncode == 2 and missing.stderr.strip() == f"error: {tmp_path / 'nope.onnx'}: no such file"
    )


def test_a_file_changed_on_the_device_is_pushed_again(tmp_path: Path) -> None:
    """The manifest's quick check (size + mtime) must not hide a rewrite of the same size."""
    model = tmp_path / "m.onnx"
    model.write_bytes(os.urandom(4096))
    with LocalTransport("local", tmp_path / "device") as local:
        first = push_file(local, model, "models", python="python3")
        Path(first.remote_path).write_bytes(os.urandom(4096))
        again = push_file(local, model, "models", python="python3")
    assert not again.skipped and again.sent_bytes == 4096
    assert Path(first.remote_path).read_bytes() == model.read_bytes()
