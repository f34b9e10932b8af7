"""Printing lives in edgedeploy/present.py: no other host module writes to stdout, and the verbs'
shapes are parsed by one parser (edgedeploy/shapes.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from edgedeploy.errors import UsageError
from edgedeploy.shapes import parse_shapes, shapes_by_name

PACKAGE = Path(__file__).resolve().parents[1] / "edgedeploy"

# Modules allowed to write to stdout, and why: the presentation layer itself; the device side (its
# stdout is the JSON document the host reads); quickstart, whose step-by-step narrative is its output.
STDOUT_ALLOWED = {"present.py", "quickstart.py", "deploy/probe_facts.py"}


def _stdout_writes(tree: ast.AST) -> list[int]:
    """Lines with print(...), sys.stdout.write(...), typer.echo(...) without err=True, or a rich
    Console(...) not built with stderr=True."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        keywords = {k.arg: k.value for k in node.keywords}
        flag = keywords.get("err") or keywords.get("stderr")
        to_stderr = isinstance(flag, ast.Constant) and bool(flag.value)
        if isinstance(func, ast.Name) and func.id == "print" and "file" not in keywords:
            lines.append(node.lineno)
        elif isinstance(func, ast.Name | ast.Attribute) and (
            getattr(func, "id", None) == "Console" or getattr(func, "attr", None) == "Console"
        ):
            if not to_stderr:
                lines.append(node.lineno)
        elif isinstance(func, ast.Attribute) and func.attr in ("write", "echo"):
            target = ast.unparse(func.value)
            if target == "sys.stdout" or (target == "typer" and func.attr == "echo" and not to_stderr):
                lines.append(node.lineno)
    return lines


def test_only_present_writes_to_stdout() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in STDOUT_ALLOWED or relative.startswith("runner/"):
            continue
        found += [f"{relative}:{n}" for n in _stdout_writes(ast.parse(path.read_text()))]
    assert not found, f"stdout written outside edgedeploy/present.py: {found}"


def test_the_check_sees_a_print() -> None:
    tree = ast.parse(
        "import sys\nprint('x')\nsys.stdout.write('y')\nfrom rich.console import Console\nConsole()\n"
    )
    assert _stdout_writes(tree) == [2, 3, 5]
    assert _stdout_writes(ast.parse("Console(stderr=True)\ntyper.echo('x', err=True)\n")) == []


def test_one_shape_parser_for_every_verb() -> None:
    assert parse_shapes(["1,3,224,224"]) == [("", (1, 3, 224, 224))]
    assert parse_shapes(["x=1x8", "mask=1,8"]) == [("x", (1, 8)), ("mask", (1, 8))]
    assert shapes_by_name(["x=2,8"]) == {"x": [2, 8]}
    # Several bare shapes stay in order (convert gives them to the inputs in order).
    assert [s for _, s in parse_shapes(["1,2", "3,4"])] == [(1, 2), (3, 4)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x=a,8", r"^--shape 'x=a,8': expected NAME=1,3,224,224 or 1,3,224,224$"),
        ("x=", r"^--shape 'x=': expected NAME="),
        ("1,0,8", r"^--shape '1,0,8': dimensions must be positive integers"),
    ],
)
def test_a_bad_shape_is_one_usage_error_naming_the_option(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_shapes([text])
    with pytest.raises(UsageError, match=r"^--shape "):
        parse_shapes([text], "--shape")
