"""The devices of a `tune` target as a pool: one measurement per device at a time.

Two runners on one board spoil both timings, so every measurement holds the device's lock: a
thread lock (trials of this process) and an exclusive `fcntl` lock on a file under the tune
directory (other processes measuring into the same directory: a second `tune`, Ray tasks on this
host). A device that fails (unreachable, runner error) is set aside for the rest of the study and
the measurement moves to the next free device; with none left the measurement fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import threading
from collections.abc import Iterator
from pathlib import Path

from edgedeploy.deploy.inventory import Target


class NoDeviceLeft(Exception):
    """Every device of the pool failed; the message lists why."""


class DevicePool:
    def __init__(self, targets: list[Target], lock_dir: Path) -> None:
        self.targets = list(targets)
        self.lock_dir = lock_dir
        self.failed: dict[str, str] = {}
        self.used: dict[str, int] = {t.name: 0 for t in targets}
        self._locks = {t.name: threading.Lock() for t in targets}
        self._state = threading.Condition()
        self._next = 0

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.targets]

    def healthy(self) -> list[Target]:
        return [t for t in self.targets if t.name not in self.failed]

    def mark_failed(self, target: Target, reason: str) -> None:
        with self._state:
            self.failed[target.name] = reason
            self._state.notify_all()

    @contextlib.contextmanager
    def device(self, skip: frozenset[str] = frozenset()) -> Iterator[Target]:
        """Hold a free healthy device (waiting for one), rotating so every device gets used; devices
        named in `skip` (e.g. lacking the runtime asked for) are not taken."""
        target = self._acquire(skip)
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        lock_file = self.lock_dir / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', target.name)}.lock"
        try:
            with open(lock_file, "a+") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield target
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            with self._state:
                self.used[target.name] += 1
                self._locks[target.name].release()
                self._state.notify_all()

    def _acquire(self, skip: frozenset[str]) -> Target:
        with self._state:
            while True:
                healthy = [t for t in self.healthy() if t.name not in skip]
                if not healthy:
                    reasons = "; ".join(f"{n}: {r}" for n, r in self.failed.items())
                    raise NoDeviceLeft(f"no device of the pool is left ({reasons or 'all skipped'})")
                for offset in range(len(self.targets)):
                    candidate = self.targets[(self._next + offset) % len(self.targets)]
                    if candidate.name in self.failed or candidate.name in skip:
                        continue
                    if self._locks[candidate.name].acquire(blocking=False):
                        self._next = (self.targets.index(candidate) + 1) % len(self.targets)
                        return candidate
                self._state.wait()
