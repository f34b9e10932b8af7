"""Shared fixtures. Real servers only: `sshd` starts Debian's OpenSSH on a loopback port."""

from __future__ import annotations

import ast
import functools
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import REPO
from tests.support.sshd import SSHServer, make_server, sshd_available


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests away from the user's ~/.config and ~/.cache (inventory, local work dir, facts)."""
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.delenv("EDGEDEPLOY_INVENTORY", raising=False)


@pytest.fixture(autouse=True)
def _profiles_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Profiles a test stores go to its own tmp_path/profiles, never to the checkout's ./profiles
    (which a user's next `profiles report` would show). Tests that run the CLI with cwd=tmp_path
    find them where the default ./profiles would have put them."""
    monkeypatch.setenv("EDGEDEPLOY_PROFILES", str(tmp_path / "profiles"))


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SSHServer]:
    """A started sshd on 127.0.0.1 whose host key is already in its known_hosts file."""
    if not sshd_available():
        pytest.skip("OpenSSH server not installed (make test installs Debian's openssh-server)")
    server = make_server(tmp_path / "sshd").start()
    server.write_known_hosts()
    try:
        yield server
    finally:
        server.stop()


# --- the `torch` marker: tests that need the [compress] extra ----------------------------------------
# A test file needs it when it imports, at module level, torch or another [compress] package, or a
# module of this repository that does (followed through edgedeploy/, tests/ and bench/). Such files'
# tests are marked `torch`, and so are the tests using a fixture of their file whose body imports one.
# Where torch is not installed (the core-only venvs of `make test-core`) those files are not collected
# at all, since importing them would fail, and `-m "not torch"` deselects the marked tests of the
# other files (and those marked by hand: benches and CLI runs that need torch in a subprocess), so
# nothing shows up as skipped.
# The [compress] extra's packages, plus ray ([ray] extra), which only serves torch training.
COMPRESS_EXTRA_PACKAGES = frozenset(
    {"torch", "torchvision", "onnxscript", "litert_torch", "zarr", "pureml", "torch_pruning", "optuna", "ray"}
)
REPO_PACKAGES = frozenset({"edgedeploy", "tests", "bench"})
TORCH_INSTALLED = importlib.util.find_spec("torch") is not None
_needs_torch: dict[str, bool] = {}


def _repo_file(module: str) -> Path | None:
    base = REPO.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_level_imports(path: Path, module: str) -> Iterator[str]:
    """Names imported when `path` is imported: not inside functions, not under `if TYPE_CHECKING:`."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    stack: list[ast.AST] = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))


def needs_torch(module: str) -> bool:
    """True when importing `module` imports torch or another package of the [compress] extra."""
    if module.partition(".")[0] not in REPO_PACKAGES:
        return module.partition(".")[0] in COMPRESS_EXTRA_PACKAGES
    if module not in _needs_torch:
        _needs_torch[module] = False  # a circle of imports ends here
        path = _repo_file(module)
        _needs_torch[module] = path is not None and any(
            needs_torch(name) for name in _module_level_imports(path, module)
        )
    return _needs_torch[module]


def _imports_compress_package(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Import) and any(
            a.name.partition(".")[0] in COMPRESS_EXTRA_PACKAGES for a in sub.names
        ):
            return True
        if (
            isinstance(sub, ast.ImportFrom)
            and (sub.module or "").partition(".")[0] in COMPRESS_EXTRA_PACKAGES
        ):
            return True
    return False


@functools.cache
def torch_fixtures(path: Path) -> frozenset[str]:
    """The fixtures defined in test file `path` that import a [compress] package, or use one that does."""
    fixtures = {
        node.name: node
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.FunctionDef) and any("fixture" in ast.unparse(d) for d in node.decorator_list)
    }
    found = {name for name, node in fixtures.items() if _imports_compress_package(node)}
    while True:
        more = {
            name
            for name, node in fixtures.items()
            if name not in found and any(arg.arg in found for arg in node.args.args)
        }
        if not more:
            return frozenset(found)
        found |= more


def _module_name(path: Path) -> str:
    return ".".join(path.resolve().relative_to(REPO).with_suffix("").parts)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if TORCH_INSTALLED or collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    return True if needs_torch(_module_name(collection_path)) else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if needs_torch(_module_name(item.path)) or set(item.fixturenames) & torch_fixtures(item.path):
            item.add_marker(pytest.mark.torch)
