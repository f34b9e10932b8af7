"""The emulator image for the `qemu` tests: built once, reused by later runs, or a clear skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgedeploy.deploy.emulator import image as emulator_image
from edgedeploy.deploy.emulator import instances as emulator
from edgedeploy.errors import UsageError

# Where the user's real cache is (read at import, before the tests isolate XDG dirs), so a second
# `make test` reuses the image instead of spending minutes on debootstrap.
IMAGES = emulator_image.images_root()
# The fleet test's arm64 stand-ins (unpacked rootfs ~300 MB each, runtime ~140 MB) stay here between
# runs like the image: unpacking costs ~4 s a host, but deleting it again ~30 s on these disks.
FLEET_HOSTS = emulator.instances_root().parent / "test-fleet-hosts"


def image_or_skip(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Build (or reuse) the bookworm image; skip when this machine cannot."""
    monkeypatch.setenv("EDGEDEPLOY_EMULATOR_IMAGES", str(IMAGES))
    if os.geteuid() != 0:
        pytest.skip("building the arm64 image needs root (debootstrap, binfmt_misc)")
    try:
        image = emulator_image.build_image(suite="bookworm")
        emulator_image.ensure_host_tools(emulator_image.RUN_TOOLS)
    except emulator_image.EmulatorUnavailable as err:
        pytest.skip(f"this machine cannot build the arm64 image: {err}")
    except UsageError as err:  # missing Debian packages that could not be installed
        pytest.skip(str(err))
    return image
