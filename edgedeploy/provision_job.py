"""`edgedeploy provision`: runtimes installed on a device without internet (`deploy/provision.py`
does the work: probe, download wheels here, push, offline install, record the interpreter)."""

from __future__ import annotations

from pathlib import Path

from edgedeploy.results import ProvisionResult


def provision(
    target: str, runtimes: list[str], *, inventory: Path | None = None, trust_new: bool = False
) -> ProvisionResult:
    from edgedeploy.deploy.provision import provision_target

    return ProvisionResult.from_doc(
        provision_target(target, runtimes=runtimes, inventory=inventory, trust_new=trust_new)
    )
