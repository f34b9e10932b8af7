"""tools/check_imports.py: edgedeploy's import graph has no circles, no package imports a job, and
the device-side runner imports nothing from edgedeploy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECKER = REPO / "tools" / "check_imports.py"


def _check(root: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--root", str(root)] if root else []
    return subprocess.run([sys.executable, str(CHECKER), *extra], capture_output=True, text=True, timeout=60)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in {"edgedeploy/__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_repository_graph_is_clean() -> None:
    result = _check()
    assert result.returncode == 0, result.stderr
    assert "no cycles" in result.stdout


def test_lazy_imports_count_type_checking_imports_do_not(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "edgedeploy/pkg/__init__.py": "",
            "edgedeploy/pkg/a.py": "from edgedeploy.pkg.b import thing\n",
            # A lazy import back is still a circle.
            "edgedeploy/pkg/b.py": "def f():\n    from edgedeploy.pkg import a\n",
            # A type-only import back is not (it never runs).
            "edgedeploy/pkg/c.py": "import typing\nif typing.TYPE_CHECKING:\n    from . import d\n",
            "edgedeploy/pkg/d.py": "from edgedeploy.pkg import c\n",
        },
    )
    result = _check(root)
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["error: import cycle: edgedeploy.pkg.a <-> edgedeploy.pkg.b"]


def test_packages_must_not_import_jobs_and_the_runner_stands_alone(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "edgedeploy/cli.py": "def main():\n    from edgedeploy import thing_job\n",
            "edgedeploy/thing_job.py": "from edgedeploy.convert import timing\n",
            "edgedeploy/other_job.py": "from edgedeploy import thing_job\n",  # a job may use a job
            "edgedeploy/convert/__init__.py": "",
            "edgedeploy/convert/timing.py": "def f():\n    from edgedeploy.thing_job import run\n",
            "edgedeploy/runner/__init__.py": "",
            "edgedeploy/runner/device.py": "from edgedeploy.errors import UsageError\n",
            "edgedeploy/errors.py": "",
        },
    )
    result = _check(root)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: import cycle: edgedeploy.convert.timing <-> edgedeploy.thing_job",
        "error: edgedeploy.convert.timing imports the job edgedeploy.thing_job (only the CLI and jobs may)",
        "error: edgedeploy.runner.device imports edgedeploy.errors (the device-side runner must stand alone)",
    ]
