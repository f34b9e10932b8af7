"""`edgedeploy emulator build|start|stop|status`: emulated arm64 devices as targets
(`deploy/emulator/` builds the image and runs the instances)."""

from __future__ import annotations

from pathlib import Path

from edgedeploy.results import EmulatorInstance, EmulatorStopped


def build(suite: str = "bookworm", force: bool = False) -> Path:
    from edgedeploy.deploy.emulator.image import build_image

    return build_image(suite=suite, force=force)


def start(name: str, *, cpus: int, memory: int, suite: str, kind: str) -> EmulatorInstance:
    from edgedeploy.deploy.emulator.instances import start_instance

    return EmulatorInstance.from_doc(
        start_instance(name=name, cpus=cpus, memory=memory, suite=suite, kind=kind)
    )


def stop(name: str) -> EmulatorStopped:
    from edgedeploy.deploy.emulator.instances import stop_instance

    return EmulatorStopped(**stop_instance(name))


def status() -> list[EmulatorInstance]:
    from edgedeploy.deploy.emulator.instances import list_instances

    return [EmulatorInstance.from_doc(row) for row in list_instances()]
