"""Dockerfile.arm64 cannot be built here (no Docker engine): check what it names instead."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from edgedeploy.deploy.provision import (
    BASE_REQUIREMENTS,
    RUNTIME_REQUIREMENTS,
    download_wheels,
    wheel_platform,
)
from tests.support.netcheck import pypi_reachable

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile.arm64"


def _logical_lines(text: str) -> list[str]:
    """Dockerfile instructions with their backslash continuations joined."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    )
    return [ln.strip() for ln in joined.splitlines() if ln.strip()]


def _pip_requirements(text: str) -> list[str]:
    reqs: list[str] = []
    for line in _logical_lines(text):
        for command in line.split("&&"):
            words = command.split()
            if "pip" in " ".join(words[:2]) and "install" in words:
                after = words[words.index("install") + 1 :]
                reqs += [w for w in after if not w.startswith("-")]
    return reqs


def test_dockerfile_is_arm64_bookworm_and_copies_the_runner() -> None:
    lines = _logical_lines(DOCKERFILE.read_text())
    base = [ln for ln in lines if ln.startswith("FROM")]
    assert base == ["FROM --platform=linux/arm64 debian:bookworm-slim"]
    copies = [ln.split()[1] for ln in lines if ln.startswith("COPY")]
    assert copies and all((REPO / src).exists() for src in copies)


def test_dockerfile_pins_match_the_project() -> None:
    reqs = _pip_requirements(DOCKERFILE.read_text())
    assert reqs, "no pip install found in Dockerfile.arm64"
    unpinned = [r for r in reqs if not re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", r)]
    assert not unpinned, f"unpinned requirements: {unpinned}"
    # The image holds what provisioning installs on a device, at the same versions.
    assert sorted(reqs) == sorted([*RUNTIME_REQUIREMENTS.values(), *BASE_REQUIREMENTS])
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    project_pins = dict(re.match(r"([A-Za-z0-9_.-]+)==(.+)", d).groups() for d in project if "==" in d)
    for req in reqs:
        name, version = req.split("==")
        if name in project_pins:
            assert re.fullmatch(project_pins[name].replace(".", r"\.").replace("*", ".*"), version), req


@pytest.mark.slow
def test_dockerfile_pins_resolve_for_aarch64(tmp_path: Path) -> None:
    if not pypi_reachable():
        pytest.skip("PyPI is not reachable from this machine")
    reqs = _pip_requirements(DOCKERFILE.read_text())
    # bookworm: glibc 2.36, Python 3.11
    wheels = download_wheels(reqs, wheel_platform("aarch64", "3.11", "2.36"), tmp_path)
    names = {w.name.split("-")[0].lower().replace("_", "-") for w in wheels}
    assert {r.split("==")[0] for r in reqs} <= names
    assert all(w.suffix == ".whl" and ("aarch64" in w.name or "-none-any" in w.name) for w in wheels)
