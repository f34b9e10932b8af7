"""Where `tune` builds its candidates: in this process, or as Ray tasks on a Ray cluster.

Ray tasks driven by Optuna's ask/tell, not Ray Tune: the study, the accuracy floor and the device
pool stay in the driver, which asks the sampler for up to `parallel` trials, builds each candidate
(train + export + score, `build_candidate`) as a Ray task, and measures the returned files on the
devices itself, one measurement per device at a time. Ray Tune would own the trial loop and run the
measurement inside its trial actors too, where serialising them per device needs a lock across
processes and machines; the measurement is the part that must not be parallel on one board, and
training is the part that outgrows one machine, so only training goes to Ray.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from edgedeploy.errors import UsageError


class LocalExecutor:
    """Builds each candidate when it is submitted, in this process (one at a time)."""

    parallel = 1
    local = True

    def __init__(self) -> None:
        self._results: dict[int, dict[str, Any]] = {}
        self._next = 0

    def submit(self, job: Any) -> int:
        from edgedeploy.tune.candidate import build_candidate

        self._next += 1
        self._results[self._next] = build_candidate(job)
        return self._next

    def wait_one(self, handles: list[Any]) -> tuple[Any, dict[str, Any]]:
        handle = handles[0]
        return handle, self._results.pop(handle)

    def close(self) -> None:
        pass


class RayExecutor:
    """Builds candidates as Ray tasks (one CPU each by default) on the cluster at `address`."""

    local = False

    def __init__(self, address: str, parallel: int | None) -> None:
        try:
            import ray
        except ImportError as err:
            raise UsageError("--ray needs Ray: pip install 'edgedeploy[ray]'") from err
        from edgedeploy.tune.candidate import build_candidate

        # The workers must import the user's model module (pickled by reference) as this process does.
        path = os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p and os.path.isdir(p))
        runtime_env = {"env_vars": {"PYTHONPATH": path}}
        try:
            if address == "local":
                ray.init(runtime_env=runtime_env, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise UsageError(
                f"--ray {address}: cannot join the Ray cluster ({str(err).splitlines()[0]})"
            ) from err
        self._ray = ray
        self._remote = ray.remote(build_candidate)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.parallel = max(1, parallel or cpus)
        self.address = address

    def submit(self, job: Any) -> Any:
        return self._remote.remote(job)

    def wait_one(self, handles: list[Any]) -> tuple[Any, dict[str, Any]]:
        ready, _ = self._ray.wait(handles, num_returns=1)
        try:
            return ready[0], self._ray.get(ready[0])
        except self._ray.exceptions.RayError as err:
            # A worker died or the task raised something unexpected: that candidate fails, not the study.
            lines = str(err).strip().splitlines()
            return ready[0], {
                "error": f"Ray task failed: {lines[-1] if lines else type(err).__name__}",
                "train_seconds": 0.0,
            }

    def close(self) -> None:
        self._ray.shutdown()


def make_executor(ray_address: str | None, parallel: int | None) -> LocalExecutor | RayExecutor:
    return LocalExecutor() if not ray_address else RayExecutor(ray_address, parallel)
