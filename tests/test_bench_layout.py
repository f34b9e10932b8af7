"""bench/ is a package of benchmarks run as `python -m bench.NAME`: each imports only bench.support and
tests.support of this repository (never another benchmark, a test file or conftest), and none edits
sys.path. Read from the source with ast: nothing is imported, so this runs without torch."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.cli import REPO

BENCH = REPO / "bench"


def imported(path: Path) -> set[str]:
    """Every module name an import statement in `path` names (at any depth, lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (bench modules use absolute ones)"
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def repo_imports_allowed(name: str) -> bool:
    top = name.partition(".")[0]
    if top == "bench":
        return name.startswith("bench.support.") or name == "bench.support"
    if top == "tests":
        return name.startswith("tests.support.") or name == "tests.support"
    return True


def test_benches_import_only_the_support_packages_and_never_edit_sys_path() -> None:
    benches = sorted(p for p in BENCH.glob("*.py") if p.name != "__init__.py")
    assert len(benches) >= 10
    local_names = {p.stem for p in BENCH.glob("*.py")} | {"common", "photos", "tfmot_pipeline"}
    found = []
    for path in [*benches, *sorted((BENCH / "support").glob("*.py"))]:
        text = path.read_text(encoding="utf-8")
        if "sys.path" in text:
            found.append(f"{path.relative_to(REPO)} edits sys.path")
        for name in sorted(imported(path)):
            if not repo_imports_allowed(name) or name.partition(".")[0] in local_names:
                found.append(f"{path.relative_to(REPO)} imports {name}")
    assert not found, "\n".join(found)
    for path in benches:  # each one runs as `python -m bench.NAME`
        assert 'if __name__ == "__main__":' in path.read_text(encoding="utf-8"), path


def test_tests_support_imports_no_test_file() -> None:
    for path in sorted((REPO / "tests" / "support").glob("*.py")):
        bad = [n for n in imported(path) if n.startswith("tests.") and not n.startswith("tests.support.")]
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"
