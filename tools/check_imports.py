#!/usr/bin/env python3
"""Check edgedeploy's import graph: no circles, no package importing a job, a self-contained runner.

Usage: python tools/check_imports.py [--graph]   (exit 1 and one line per problem when a rule breaks)

The graph is read from the source with `ast` (nothing is imported, no third-party dependency):
an edge A -> B for every `import B` / `from B import x` in module A that names an edgedeploy module
(`from edgedeploy.pkg import name` points at `edgedeploy.pkg.name` when that is a module, else at
`edgedeploy.pkg`; relative imports are resolved against A's package).

Lazy imports count. An import inside a function runs later than one at the top of the file, but it
is still a dependency: two modules that import each other only lazily are still one piece of code
that cannot be understood, tested or moved apart, so they count for cycles and for the layer rules
exactly as module-level imports do. Imports under `if TYPE_CHECKING:` are the one exception: they
never run and only name types for the type checker, so they are left out of the graph.

Rules:
1. No cycles between edgedeploy modules (a package's `__init__` that a submodule import runs
   implicitly is not an edge: only the modules named in import statements are).
2. The jobs layer is `edgedeploy.cli`, `edgedeploy.api` (the Python API, the CLI's twin for
   scripts), `edgedeploy.__main__`, every `*_job` module and `edgedeploy.quickstart` (the
   quickstart verb's job). Only the jobs layer may import a `*_job`
   module: dependencies point from the CLI to jobs to packages, never back up.
3. The device package (`edgedeploy.runner.device`) imports nothing from edgedeploy outside itself:
   it is shipped to devices as one zipapp and must run there alone.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "edgedeploy"
JOB_MODULES_EXTRA = {"edgedeploy.cli", "edgedeploy.api", "edgedeploy.__main__", "edgedeploy.quickstart"}
DEVICE_PACKAGE = "edgedeploy.runner.device"


def module_files(root: Path) -> dict[str, Path]:
    """Every edgedeploy module name -> its file (packages by their __init__.py)."""
    modules: dict[str, Path] = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement in the tree, at any depth, except those under `if TYPE_CHECKING:`."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)  # the else branch does run
            continue
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The edgedeploy modules that `module` (file `path`) imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
            found.update(_owning_module(name, modules) for name in names)
            continue
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, base] if base else package)
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            found.add(candidate if candidate in modules else _owning_module(base, modules))
    found.discard("")
    found.discard(module)
    return found


def _owning_module(name: str, modules: dict[str, Path]) -> str:
    """`name` itself when it is an edgedeploy module, else its nearest enclosing one ("" if none)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return ""


def build_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = module_files(root)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return sorted(cycles)


def is_job(module: str) -> bool:
    return module.rpartition(".")[2].endswith("_job")


def in_jobs_layer(module: str) -> bool:
    return is_job(module) or module in JOB_MODULES_EXTRA


def problems(graph: dict[str, set[str]]) -> list[str]:
    found = [f"import cycle: {' <-> '.join(cycle)}" for cycle in find_cycles(graph)]
    for module in sorted(graph):
        for target in sorted(graph[module]):
            if is_job(target) and not in_jobs_layer(module):
                found.append(f"{module} imports the job {target} (only the CLI and jobs may)")
            if (module == DEVICE_PACKAGE or module.startswith(DEVICE_PACKAGE + ".")) and not (
                target == DEVICE_PACKAGE or target.startswith(DEVICE_PACKAGE + ".")
            ):
                found.append(f"{module} imports {target} (the device-side runner must stand alone)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", action="store_true", help="print every module's edgedeploy imports")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout holding edgedeploy/")
    args = parser.parse_args(argv)
    graph = build_graph(args.root)
    if args.graph:
        for module in sorted(graph):
            print(f"{module}: {', '.join(sorted(graph[module])) or '-'}")
    found = problems(graph)
    for line in found:
        print(f"error: {line}", file=sys.stderr)
    if not found:
        edges = sum(len(targets) for targets in graph.values())
        print(f"import graph ok: {len(graph)} modules, {edges} edges, no cycles, no package imports a job")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
