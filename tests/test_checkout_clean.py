"""Tests never write into the checkout: a profile stored by a test (the CLI run from the repository
root, as tests/test_emulator_qemu.py does) lands in the test's own tmp_path, not in ./profiles where
a user's next `edgedeploy profiles report` would show it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.support.cli import REPO, run_cli
from tests.support.onnx_models import dense_onnx


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()


def test_a_profile_run_from_the_repo_root_stays_in_tmp(tmp_path: Path) -> None:
    model = dense_onnx(tmp_path / "checkout-probe.onnx")
    before = _files(REPO / "profiles")
    out = run_cli("profile", str(model), "--runs", "3", "--warmup", "1", "--min-seconds", "0",
                  "--warmup-seconds", "0", "--json", cwd=REPO)  # fmt: skip
    assert out.returncode == 0, out.stderr
    stored = Path(json.loads(out.stdout)["path"])
    assert stored.is_absolute() and stored.is_relative_to(tmp_path / "profiles"), stored
    assert Path(os.environ["EDGEDEPLOY_PROFILES"]) == tmp_path / "profiles"
    assert _files(REPO / "profiles") == before, "a test wrote into the checkout's profiles/"
