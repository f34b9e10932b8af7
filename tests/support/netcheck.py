"""Whether this machine can reach PyPI (tests that download wheels skip with that reason otherwise)."""

from __future__ import annotations

import functools
import urllib.request


@functools.cache
def pypi_reachable() -> bool:
    try:
        with urllib.request.urlopen("https://pypi.org/simple/numpy/", timeout=15):
            return True
    except OSError:
        return False
