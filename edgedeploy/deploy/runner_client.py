"""The host side of the stand-alone runner: push it with a model, build its arguments, run it, read its JSON.

`edgedeploy run`, `edgedeploy profile`, `fleet profile` (through profile) and `convert --target`'s int8
timing all talk to the runner through this module. The runner itself (edgedeploy/runner/device/) is
the device side: shipped as one zipapp (edgedeploy_runner.pyz), never run in-process here, and it
imports nothing from edgedeploy.

`RunnerSettings.for_target` is the one place where what the user left unset (threads, runtime) is
filled in from the target's inventory variables.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgedeploy.deploy.inventory import Target, cache_dir
from edgedeploy.deploy.push import push_file
from edgedeploy.deploy.transports.base import Transport
from edgedeploy.errors import TargetError, UsageError
from edgedeploy.runner import write_zipapp

RUNNER_EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class RunnerSettings:
    """What one runner process is asked to do, with the target's defaults already filled in.

    `threads` None means the runtime's own default (the runner gets no --threads); `runtime` is a
    runtime name or "auto" (the runner picks by file type)."""

    runtime: str = "auto"
    threads: int | None = None
    runs: int = 1
    warmup: int = 0
    min_seconds: float = 0.0
    warmup_seconds: float = 0.0
    duration: float | None = None
    cores: str | None = None
    raw_samples: bool = False
    shapes: dict[str, list[int]] = field(default_factory=dict)
    # Inventory knobs for boards whose sysfs is elsewhere (containers) or whose sensor must be forced.
    sysfs_root: str | None = None
    power_sensor: str | None = None

    @classmethod
    def for_target(
        cls, target: Target, *, threads: int | None = None, runtime: str = "auto", **measure: Any
    ) -> RunnerSettings:
        """Settings for `target`: an unset `threads` or an "auto" `runtime` takes the target's
        edgedeploy_threads / edgedeploy_runtime; `measure` are the other fields (runs, warmup, ...)."""
        return cls(
            runtime=runtime if runtime != "auto" else target.runtime,
            threads=threads or target.threads,
            sysfs_root=_str_or_none(target.vars.get("edgedeploy_sysfs_root")),
            power_sensor=_str_or_none(target.vars.get("edgedeploy_power_sensor")),
            **measure,
        )

    def replace(self, **changes: Any) -> RunnerSettings:
        return dataclasses.replace(self, **changes)

    def profile_args(self) -> list[str]:
        """The runner's arguments for `--mode profile` (without --inputs, which are pushed files)."""
        args = ["--mode", "profile", "--runs", str(self.runs), "--warmup", str(self.warmup)]
        args += ["--runtime", self.runtime]
        if self.min_seconds:
            args += ["--min-seconds", str(self.min_seconds)]
        if self.warmup_seconds:
            args += ["--warmup-seconds", str(self.warmup_seconds)]
        if self.duration:
            args += ["--duration", str(self.duration)]
        if self.threads:
            args += ["--threads", str(self.threads)]
        if self.cores:
            args += ["--cores", self.cores]
        if self.raw_samples:
            args.append("--raw")
        if self.sysfs_root is not None:
            args += ["--sysfs-root", self.sysfs_root]
        if self.power_sensor is not None:
            args += ["--power-sensor", self.power_sensor]
        return args + _shape_args(self.shapes)

    def run_args(self, remote_out: str) -> list[str]:
        """The runner's arguments for `--mode run`, writing outputs under `remote_out` on the device."""
        args = ["--mode", "run", "--runtime", self.runtime, "--out-dir", remote_out]
        args += _shape_args(self.shapes)
        if self.threads:
            args += ["--threads", str(self.threads)]
        return args


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _shape_args(shapes: dict[str, list[int]]) -> list[str]:
    args: list[str] = []
    for name, dims in shapes.items():
        args += [
            "--shape",
            f"{name}={','.join(str(d) for d in dims)}" if name else ",".join(str(d) for d in dims),
        ]
    return args


def runner_zipapp() -> Path:
    """The device package as the zipapp that is pushed (built once per version, under the cache dir)."""
    return write_zipapp(cache_dir() / "runner")


def push_runner(transport: Transport, target: Target, *, checksum: bool = False) -> str:
    """Push the runner zipapp (skipped when the device has these bytes already); its remote path."""
    return push_file(transport, runner_zipapp(), "", python=target.python, checksum=checksum).remote_path


def deploy_runner(
    transport: Transport,
    target: Target,
    model: Path,
    remote_name: str | None = None,
    *,
    checksum: bool = False,
) -> list[str]:
    """Push runner and model (skipped when unchanged); the command that starts the runner on them.
    `checksum`: judge "unchanged" by the sha256 of the device's copies (push --checksum).

    Done once per model and connection: repeats and rounds reuse the command, so they do not hash
    the model again on both ends before every run."""
    runner = push_runner(transport, target, checksum=checksum)
    pushed = push_file(
        transport, model, "models", python=target.python, remote_name=remote_name, checksum=checksum
    )
    return [target.python, runner, pushed.remote_path]


def invoke_runner(
    transport: Transport,
    target: Target,
    model: Path,
    runner_command: list[str],
    runner_args: list[str],
    timeout: float,
) -> dict[str, Any]:
    """Run the deployed runner on `model`, return its JSON document (errors become exceptions)."""
    result = transport.run([*runner_command, *runner_args], timeout=timeout)
    lines = [line for line in result.stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        detail = result.last_error_line()
        if result.exit_code == 127:
            detail = f"{target.python} not found on the device (set ansible_python_interpreter)"
        elif "SyntaxError" in result.stderr:
            # The runner is written for 3.8+; an older interpreter fails to even parse it.
            detail = f"{target.python} on the device is too old (the runner needs Python 3.8+)"
        raise TargetError(f"{target.name}: runner failed: {detail}")
    try:
        doc = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise TargetError(f"{target.name}: runner printed unreadable output ({exc.msg})") from exc
    if "error" in doc:
        # Bad input (the model, the .npy files, a shape) is the user's to fix; the rest is the device's.
        if result.exit_code == RUNNER_EXIT_BAD_INPUT:
            # The runner knows only its cached copy of the model: the message names the user's file.
            raise UsageError(f"{model}: {str(doc['error']).replace(runner_command[-1], 'it')}")
        raise TargetError(f"{target.name}: {doc['error']}")
    return doc


def distinct_remote_names(paths: list[Path], prefix: str = "") -> dict[Path, str]:
    """The name each distinct file gets in the device folder it is pushed to: its own name, or `N-name`
    where two files share one (`a/model.onnx`, `b/model.onnx`): pushed under one name, the second would
    overwrite the first and both would be run (timed, fed) as the second."""
    distinct = list(dict.fromkeys(paths))
    uses = Counter(path.name for path in distinct)
    return {
        path: prefix + (f"{i}-{path.name}" if uses[path.name] > 1 else path.name)
        for i, path in enumerate(distinct)
    }


def push_inputs(transport: Transport, target: Target, inputs: list[Path]) -> list[str]:
    if not inputs:
        return []
    names = distinct_remote_names(inputs)
    remote = {
        p: push_file(transport, p, "inputs", python=target.python, remote_name=name).remote_path
        for p, name in names.items()
    }
    return ["--inputs", *(remote[p] for p in inputs)]


def target_summary(target: Target, runner_doc: dict[str, Any]) -> dict[str, Any]:
    host = runner_doc.get("host") or {}
    return {
        "name": target.name,
        "connection": target.connection,
        "arch": host.get("machine") or target.vars.get("edgedeploy_arch"),
        "python": host.get("python"),
        "cpu_count": host.get("cpu_count"),
        "cpu_model": host.get("cpu_model"),
        "isa": host.get("isa"),
        "mem_total_mb": host.get("mem_total_mb"),
        "os": host.get("os"),
        "kernel": host.get("kernel"),
        "emulated": target.emulated,
        "groups": [g for g in target.groups if g != "all"],
    }


def time_models(
    transport: Transport,
    target: Target,
    models: dict[str, Path],
    *,
    threads: int | None,
    seconds: float = 0.5,
    warmup: int = 5,
    rounds: int = 2,
    remote_prefix: str = "",
    timeout: float = 600.0,
    settings_of: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Latency of each model on `target` by the runner, at the same thread count, for choosing or
    comparing files (convert's int8 auto, NetAdapt steps, the benches' side-by-side); stores no profile.
    `settings_of`: name -> `threads` / `runtime` for that model alone (tune compares variants measured
    at different thread counts and runtimes in one interleaved session).

    The models take turns for `rounds` rounds (one runner process each, so a background burst lands on
    all of them, not on one). Each model's figure (`p50_ms`) is the p50 of its fastest round: what
    other work on a device does only adds time, and it comes in stretches of seconds. Measured on a
    2-core cloud VM: four copies of one TFLite file, 9 rounds of 0.5 s each, had per-round-p50 medians
    of 0.208-0.277 ms (one copy 1.33x "slower" than its twin) while their fastest rounds agreed within
    1.2% (0.202-0.205 ms). `p50_ms_median` (median of the rounds) and `p50_ms_rounds` are kept too.
    """
    args: dict[str, list[str]] = {}
    for name in models:
        own = (settings_of or {}).get(name, {})
        settings = RunnerSettings.for_target(
            target,
            threads=own.get("threads", threads),
            runtime=own.get("runtime", "auto"),
            warmup=warmup,
            duration=seconds,
        )
        # No sampling thread beside the timed runs; power is not asked.
        args[name] = settings.replace(power_sensor="none").profile_args()
    # One push per file: tune re-times one file at several thread counts under different names.
    pushed: dict[Path, list[str]] = {}
    for path, remote_name in distinct_remote_names(list(models.values()), remote_prefix).items():
        pushed[path] = deploy_runner(transport, target, path, remote_name=remote_name)
    commands = {name: pushed[path] for name, path in models.items()}
    p50s: dict[str, list[float]] = {name: [] for name in models}
    doc: dict[str, Any] = {}
    for _ in range(rounds):
        for name, path in models.items():
            doc = invoke_runner(transport, target, path, commands[name], args[name], timeout)
            p50s[name].append(doc["latency_ms"]["p50"])
    return {
        "p50_ms": {name: min(values) for name, values in p50s.items()},
        "p50_ms_median": {name: statistics.median(values) for name, values in p50s.items()},
        "p50_ms_rounds": p50s,
        "statistic": f"p50 of the fastest of {rounds} rounds",
        "target": target_summary(target, doc),
        "runtime": doc["runtime"],
    }
