"""`edgedeploy run` and `edgedeploy profile`: push model + runner, run the runner there, store a profile.

The runner is always a separate process on the target (for `local` too), so the numbers come from
the same code path as on real devices.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgedeploy.deploy.inventory import Target, load_inventory
from edgedeploy.deploy.push import push_file, remote_join
from edgedeploy.deploy.transport import Transport
from edgedeploy.errors import TargetError, UsageError
from edgedeploy.fileinfo import sha256_file
from edgedeploy.profiles.power import estimate_power, profile_power
from edgedeploy.profiles.schema import build_profile
from edgedeploy.profiles.store import write_profile
from edgedeploy.runner import RUNNER_PATH

RUNNER_EXIT_BAD_INPUT = 2
__all__ = ["estimate_power", "print_profile", "print_run", "profile_model", "run_model"]


def _check_model(model: Path) -> None:
    if not model.is_file():
        raise UsageError(f"{model}: no such file")
    if model.suffix.lower() not in (".onnx", ".tflite"):
        raise UsageError(f"{model}: the runner runs .onnx or .tflite models (convert it first)")


def _shape_args(shapes: dict[str, list[int]]) -> list[str]:
    args: list[str] = []
    for name, dims in shapes.items():
        args += [
            "--shape",
            f"{name}={','.join(str(d) for d in dims)}" if name else ",".join(str(d) for d in dims),
        ]
    return args


def _deploy_runner(
    transport: Transport, target: Target, model: Path, remote_name: str | None = None
) -> list[str]:
    """Push runner and model (skipped when unchanged); the command that starts the runner on them.

    Done once per model and connection: repeats and rounds reuse the command, so they do not hash
    the model again on both ends before every run."""
    runner = push_file(transport, RUNNER_PATH, "", python=target.python)
    pushed = push_file(transport, model, "models", python=target.python, remote_name=remote_name)
    return [target.python, runner.remote_path, pushed.remote_path]


def _invoke_runner(
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
            raise UsageError(f"{model}: {doc['error']}")
        raise TargetError(f"{target.name}: {doc['error']}")
    return doc


def _target_summary(target: Target, runner_doc: dict[str, Any]) -> dict[str, Any]:
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


def profile_model(
    model: Path,
    target_name: str,
    *,
    runs: int = 100,
    warmup: int = 10,
    min_seconds: float = 0.0,
    warmup_seconds: float = 0.0,
    duration: float | None = None,
    threads: int | None = None,
    runtime: str = "auto",
    repeats: int = 1,
    cores: str | None = None,
    cooldown: float = 0.0,
    inputs: list[Path] | None = None,
    shapes: dict[str, list[int]] | None = None,
    raw_samples: bool = False,
    inventory: Path | None = None,
    trust_new: bool = False,
    progress: bool = True,
    timeout: float = 900.0,
    store_root: Path | None = None,
    on_status: Callable[[str], None] | None = None,
    accuracy: float | None = None,
    tags: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Measure `model` on one target and store the profile; returns the profile with its `path`.

    `accuracy` (measured by the caller on this very file) is recorded as `model.accuracy`, which
    `profiles report` plots; `tags` (e.g. which tune trial measured what) are stored as `tags`.

    Each repeat is a fresh runner process (load, warm-up, timed runs), so the spread across repeats
    includes what changes between processes, not only between loops. The timed runs go on past
    `runs` until `min_seconds` have passed, the warm-up past `warmup` until `warmup_seconds` (the
    CLI's defaults, 1 s and 0.5 s, are TFLite benchmark_model's); `cores` pins the runner.
    """
    from edgedeploy.deploy.connect import open_transport

    _check_model(model)
    if (
        runs < 1
        or repeats < 1
        or min(warmup, warmup_seconds, min_seconds, cooldown) < 0
        or (duration is not None and duration <= 0)
    ):
        raise UsageError(
            "--runs and --repeats must be >= 1, --warmup, --warmup-seconds, --min-seconds and --cooldown "
            ">= 0, --duration > 0"
        )
    target = load_inventory(inventory).get(target_name)
    threads = threads or target.threads
    runtime = runtime if runtime != "auto" else target.runtime
    args = _runner_profile_args(
        target, runs, warmup, min_seconds, warmup_seconds, duration, threads, runtime, cores, raw_samples
    )
    args += _shape_args(shapes or {})
    if duration or min_seconds or warmup_seconds:
        timeout = max(timeout, ((duration or min_seconds) + warmup_seconds) * 2 + 120)
    status = on_status or (lambda _msg: None)
    docs: list[dict[str, Any]] = []
    with open_transport(target, trust_new=trust_new) as transport:
        input_args = _push_inputs(transport, target, inputs or [])
        command = _deploy_runner(transport, target, model)
        for i in range(repeats):
            status(f"{target.name}: {model.name} run {i + 1}/{repeats}")
            if i and cooldown:
                transport.run(["sleep", str(cooldown)], timeout=cooldown + 30)
            docs.append(_invoke_runner(transport, target, model, command, [*args, *input_args], timeout))
    # The representative repeat is the one with the median p50; the others are summarised.
    representative = sorted(docs, key=lambda d: d["latency_ms"]["p50"])[(len(docs) - 1) // 2]
    profile = build_profile(
        model_path=model,
        model_sha256=sha256_file(model),
        target=_target_summary(target, representative),
        runner_doc=representative,
        power=profile_power(target, representative),
        settings={
            "runs": runs,
            "warmup": warmup,
            "min_seconds": min_seconds,
            "warmup_seconds": warmup_seconds,
            "duration_s": duration,
            "threads": threads,
            "requested_runtime": runtime,
            "cores": cores,
            "repeats": repeats,
            "cooldown_s": cooldown,
            "inputs": "user" if inputs else "random",
        },
        repeats=[_repeat_summary(d) for d in docs] if repeats > 1 else None,
        repeat_spread=_spread(docs) if repeats > 1 else None,
    )
    if accuracy is not None:
        profile["model"]["accuracy"] = accuracy
    if tags:
        profile["tags"] = tags
    profile["path"] = str(write_profile(profile, store_root))
    return profile


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
) -> dict[str, Any]:
    """Median latency of each model on `target` by the runner, at the same thread count, for choosing
    between candidate files (convert's int8 auto); stores no profile.

    The models take turns for `rounds` rounds (one runner process each) and each keeps the median of
    its per-round p50s, so a background burst on the device lands on all of them, not on one.
    """
    threads = threads or target.threads
    args = _runner_profile_args(
        target, runs=1, warmup=warmup, min_seconds=0.0, warmup_seconds=0.0, duration=seconds,
        threads=threads, runtime=target.runtime, cores=None, raw_samples=False,
    )  # fmt: skip
    args += ["--power-sensor", "none"]  # no sampling thread beside the timed runs; power is not asked
    commands = {
        name: _deploy_runner(transport, target, path, remote_name=remote_prefix + path.name)
        for name, path in models.items()
    }
    p50s: dict[str, list[float]] = {name: [] for name in models}
    doc: dict[str, Any] = {}
    for _ in range(rounds):
        for name, path in models.items():
            doc = _invoke_runner(transport, target, path, commands[name], args, timeout)
            p50s[name].append(doc["latency_ms"]["p50"])
    return {
        "p50_ms": {name: statistics.median(values) for name, values in p50s.items()},
        "target": _target_summary(target, doc),
        "runtime": doc["runtime"],
    }


def _runner_profile_args(
    target: Target,
    runs: int,
    warmup: int,
    min_seconds: float,
    warmup_seconds: float,
    duration: float | None,
    threads: int | None,
    runtime: str,
    cores: str | None,
    raw_samples: bool,
) -> list[str]:
    args = ["--mode", "profile", "--runs", str(runs), "--warmup", str(warmup), "--runtime", runtime]
    if min_seconds:
        args += ["--min-seconds", str(min_seconds)]
    if warmup_seconds:
        args += ["--warmup-seconds", str(warmup_seconds)]
    if duration:
        args += ["--duration", str(duration)]
    if threads:
        args += ["--threads", str(threads)]
    if cores:
        args += ["--cores", cores]
    if raw_samples:
        args.append("--raw")
    # Inventory knobs for boards whose sysfs is elsewhere (containers) or whose sensor must be forced.
    if "edgedeploy_sysfs_root" in target.vars:
        args += ["--sysfs-root", str(target.vars["edgedeploy_sysfs_root"])]
    if "edgedeploy_power_sensor" in target.vars:
        args += ["--power-sensor", str(target.vars["edgedeploy_power_sensor"])]
    return args


def _scheduler(doc: dict[str, Any]) -> dict[str, Any]:
    return (doc.get("cpu") or {}).get("scheduler") or {}


def _repeat_summary(doc: dict[str, Any]) -> dict[str, Any]:
    power = doc.get("power") or {}
    return {
        "latency_ms": {k: v for k, v in doc["latency_ms"].items() if k != "samples"},
        "cpu_time_p50_ms": (doc.get("cpu_time_ms") or {}).get("p50"),
        "uncontended_p50_ms": (doc.get("uncontended_latency_ms") or {}).get("p50"),
        "waiting_fraction": _scheduler(doc).get("waiting_fraction"),
        "contended": bool(_scheduler(doc).get("contended")),
        "init_ms": doc.get("init_ms"),
        "throttled": bool((doc.get("thermal") or {}).get("throttled")),
        "energy_per_inference_mj": power.get("energy_per_inference_mj"),
        "started": doc["started"],
    }


def _spread(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Run-to-run spread of the median and the mean latency across repeats (and of the median CPU time
    per inference, which other load on the device moves far less than the wall-clock latency)."""
    medians = [d["latency_ms"]["p50"] for d in docs]
    means = [d["latency_ms"]["mean"] for d in docs]
    cpu_medians = [d["cpu_time_ms"]["p50"] for d in docs if d.get("cpu_time_ms")]
    p50_mean = statistics.fmean(medians)
    return {
        "repeats": len(docs),
        "p50_mean_ms": p50_mean,
        "p50_std_ms": statistics.stdev(medians),
        "p50_cv": statistics.stdev(medians) / p50_mean if p50_mean else None,
        "p50_min_ms": min(medians),
        "p50_max_ms": max(medians),
        "mean_cv": statistics.stdev(means) / statistics.fmean(means) if statistics.fmean(means) else None,
        "cpu_time_p50_cv": statistics.stdev(cpu_medians) / statistics.fmean(cpu_medians)
        if len(cpu_medians) > 1 and statistics.fmean(cpu_medians)
        else None,
        "throttled_repeats": sum(1 for d in docs if (d.get("thermal") or {}).get("throttled")),
        "contended_repeats": sum(1 for d in docs if _scheduler(d).get("contended")),
    }


def _push_inputs(transport: Transport, target: Target, inputs: list[Path]) -> list[str]:
    if not inputs:
        return []
    remote = [push_file(transport, p, "inputs", python=target.python).remote_path for p in inputs]
    return ["--inputs", *remote]


def run_model(
    model: Path,
    target_name: str,
    *,
    inputs: list[Path],
    out_dir: Path | None,
    runtime: str = "auto",
    threads: int | None = None,
    shapes: dict[str, list[int]] | None = None,
    inventory: Path | None = None,
    trust_new: bool = False,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Run once and fetch outputs as DIR/<output-name>.npy."""
    from edgedeploy.deploy.connect import open_transport

    _check_model(model)
    target = load_inventory(inventory).get(target_name)
    threads = threads or target.threads
    runtime = runtime if runtime != "auto" else target.runtime
    with open_transport(target, trust_new=trust_new) as transport:
        remote_out = remote_join(transport.workdir, "outputs", model.stem)
        args = ["--mode", "run", "--runtime", runtime, "--out-dir", remote_out, *_shape_args(shapes or {})]
        if threads:
            args += ["--threads", str(threads)]
        args += _push_inputs(transport, target, inputs)
        command = _deploy_runner(transport, target, model)
        doc = _invoke_runner(transport, target, model, command, args, timeout)
        written: dict[str, str] = {}
        if out_dir is not None:
            for out in doc["outputs"]:
                local = out_dir / f"{out['file']}.npy"
                _fetch_atomic(transport, remote_join(remote_out, f"{out['file']}.npy"), local)
                written[out["name"]] = str(local)
    doc["target"] = {"name": target.name, "emulated": target.emulated}
    doc["written"] = written
    return doc


def _fetch_atomic(transport: Transport, remote: str, local: Path) -> None:
    """Fetch into a temp file beside `local`, then rename: a dropped link never leaves half an array."""
    local.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{local.name}.", suffix=".part", dir=local.parent)
    os.close(fd)
    try:
        transport.get(remote, Path(tmp))
        os.replace(tmp, local)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def print_run(doc: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console()
    console.print(f"[bold]{doc['model']['path']}[/] on {doc['target']['name']} with {doc['runtime']['name']}")
    for out in doc["outputs"]:
        where = doc["written"].get(out["name"], "(not written; use --out DIR)")
        console.print(f"  {out['name']}: shape {out['shape']} {out['dtype']} -> {where}")


def print_profile(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    lat = doc["latency_ms"]
    table = Table(title=f"{doc['model']['name']} on {doc['target']['name']} ({doc['runtime'].get('name')})")
    for col in ("n", "mean", "std", "p50", "p90", "p99", "init", "first", "peak RSS", "energy/inf"):
        table.add_column(col, justify="right")
    power = doc["power"]
    energy = (
        f"{power['energy_per_inference_mj']:.3f} mJ ({power['source']})"
        if "energy_per_inference_mj" in power
        else "n/a"
    )
    table.add_row(
        str(lat["n"]),
        *(f"{lat[k]:.3f} ms" for k in ("mean", "std", "p50", "p90", "p99")),
        f"{doc['init_ms']:.1f} ms",
        f"{doc['first_inference_ms']:.2f} ms",
        f"{doc['memory']['peak_rss_mb']:.1f} MB",
        energy,
    )
    console = Console()
    console.print(table)
    spread = doc.get("repeat_spread")
    if spread:
        console.print(
            f"{spread['repeats']} repeats: p50 {spread['p50_mean_ms']:.3f} ms +- {spread['p50_std_ms']:.3f} "
            f"(CV {spread['p50_cv']:.1%}, range {spread['p50_min_ms']:.3f}-{spread['p50_max_ms']:.3f} ms)"
        )
    console.print(f"power: {power['source']} ({power['method']})")
    for note in doc.get("notes") or []:
        console.print(f"note: {note}")
    if doc.get("contended"):
        console.print(
            "[yellow]other processes held the CPU during the runs (waited "
            f"{_scheduler(doc).get('waiting_fraction', 0):.0%} of the time in the representative repeat): "
            "latency includes that wait; cpu_time_ms does not[/]"
        )
    if doc.get("throttled"):
        reasons = "; ".join((doc.get("thermal") or {}).get("reasons") or ["in another repeat"])
        console.print(f"[red]the device was throttling during the runs: {reasons}[/]")
    if doc.get("emulated"):
        console.print("[yellow]emulated target: these timings are NOT device timings[/]")
    console.print(f"profile: {doc['path']}")
