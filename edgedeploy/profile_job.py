"""`edgedeploy run` and `edgedeploy profile`: push model + runner, run the runner there, store a profile.

The runner is always a separate process on the target (for `local` too), so the numbers come from
the same code path as on real devices.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgedeploy.deploy.inventory import Target, load_inventory
from edgedeploy.deploy.push import push_file, remote_join
from edgedeploy.deploy.transport import Transport
from edgedeploy.errors import TargetError, UsageError
from edgedeploy.profiles.schema import build_profile, sha256_file
from edgedeploy.profiles.store import write_profile
from edgedeploy.runner import RUNNER_PATH

RUNNER_EXIT_BAD_INPUT = 2
RUNNER_EXIT_NO_RUNTIME = 3


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


def _invoke_runner(
    transport: Transport, target: Target, model: Path, runner_args: list[str], timeout: float
) -> dict[str, Any]:
    """Push runner and model, run the runner, return its JSON document (errors become exceptions)."""
    runner = push_file(transport, RUNNER_PATH, "", python=target.python)
    pushed = push_file(transport, model, "models", python=target.python)
    argv = [target.python, runner.remote_path, pushed.remote_path, *runner_args]
    result = transport.run(argv, timeout=timeout)
    lines = [line for line in result.stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        detail = result.last_error_line()
        if result.exit_code == 127:
            detail = f"{target.python} not found on the device (set ansible_python_interpreter)"
        raise TargetError(f"{target.name}: runner failed: {detail}")
    doc = json.loads(lines[-1])
    if "error" in doc:
        if result.exit_code == RUNNER_EXIT_NO_RUNTIME:
            raise TargetError(f"{target.name}: {doc['error']}")
        raise UsageError(f"{model}: {doc['error']}")
    return doc


def estimate_power(target: Target, runner_doc: dict[str, Any]) -> dict[str, Any]:
    """Energy per inference from CPU utilisation and the target's power model: an ESTIMATE, labelled so."""
    model = target.power_model
    latency = runner_doc.get("latency_ms") or {}
    cpu = runner_doc.get("cpu") or {}
    cores = (runner_doc.get("host") or {}).get("cpu_count") or 1
    if not model or not latency or cpu.get("utilization_cores") is None:
        return {"source": "unavailable", "method": "no sensors and no power model for this target"}
    busy_fraction = min(1.0, cpu["utilization_cores"] / cores)
    watts = model["idle_w"] + (model["busy_w"] - model["idle_w"]) * busy_fraction
    return {
        "source": "estimated",
        "method": (
            "board power model (idle_w + (busy_w - idle_w) x CPU busy fraction) x mean latency; "
            f"{model.get('note', 'power model from the inventory')}"
        ),
        "avg_power_w": watts,
        "energy_per_inference_mj": watts * latency["mean"],
        "model": {"idle_w": model["idle_w"], "busy_w": model["busy_w"]},
        "cpu_busy_fraction": busy_fraction,
    }


def _target_summary(target: Target, runner_doc: dict[str, Any]) -> dict[str, Any]:
    host = runner_doc.get("host") or {}
    return {
        "name": target.name,
        "connection": target.connection,
        "arch": host.get("machine") or target.vars.get("edgedeploy_arch"),
        "python": host.get("python"),
        "cpu_count": host.get("cpu_count"),
        "emulated": target.emulated,
        "groups": [g for g in target.groups if g != "all"],
    }


def profile_model(
    model: Path,
    target_name: str,
    *,
    runs: int = 100,
    warmup: int = 10,
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
) -> dict[str, Any]:
    """Measure `model` on one target and store the profile; returns the profile with its `path`."""
    from edgedeploy.deploy.connect import open_transport

    _check_model(model)
    if runs < 1 or warmup < 0 or repeats < 1:
        raise UsageError("--runs and --repeats must be >= 1 and --warmup >= 0")
    target = load_inventory(inventory).get(target_name)
    threads = threads or target.threads
    runtime = runtime if runtime != "auto" else target.runtime
    args = ["--mode", "profile", "--runs", str(runs), "--warmup", str(warmup), "--runtime", runtime]
    if duration:
        args += ["--duration", str(duration)]
    if threads:
        args += ["--threads", str(threads)]
    if raw_samples:
        args.append("--raw")
    args += _shape_args(shapes or {})
    status = on_status or (lambda _msg: None)
    docs: list[dict[str, Any]] = []
    with open_transport(target, trust_new=trust_new) as transport:
        input_args = _push_inputs(transport, target, inputs or [])
        for i in range(repeats):
            status(f"{target.name}: {model.name} run {i + 1}/{repeats}")
            if i and cooldown:
                transport.run(["sleep", str(cooldown)], timeout=cooldown + 30)
            docs.append(_invoke_runner(transport, target, model, [*args, *input_args], timeout))
    final = docs[-1]
    profile = build_profile(
        model_path=model,
        model_sha256=sha256_file(model),
        target=_target_summary(target, final),
        runner_doc=final,
        power=estimate_power(target, final),
        settings={
            "runs": runs,
            "warmup": warmup,
            "duration_s": duration,
            "threads": threads,
            "requested_runtime": runtime,
            "cores": cores,
            "repeats": repeats,
            "inputs": "user" if inputs else "random",
        },
        repeats=[_repeat_summary(d) for d in docs] if repeats > 1 else None,
    )
    if repeats > 1:
        medians = [d["latency_ms"]["p50"] for d in docs]
        mean = statistics.fmean(medians)
        profile["repeat_spread"] = {
            "p50_mean_ms": mean,
            "p50_std_ms": statistics.stdev(medians),
            "p50_cv": statistics.stdev(medians) / mean if mean else None,
        }
    profile["path"] = str(write_profile(profile, store_root))
    return profile


def _repeat_summary(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "latency_ms": {k: v for k, v in doc["latency_ms"].items() if k != "samples"},
        "started": doc["started"],
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
        doc = _invoke_runner(transport, target, model, args, timeout)
        written: dict[str, str] = {}
        if out_dir is not None:
            for out in doc["outputs"]:
                local = out_dir / f"{out['file']}.npy"
                transport.get(remote_join(remote_out, f"{out['file']}.npy"), local)
                written[out["name"]] = str(local)
    doc["target"] = {"name": target.name, "emulated": target.emulated}
    doc["written"] = written
    return doc


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
    if doc.get("emulated"):
        console.print("[yellow]emulated target: these timings are NOT device timings[/]")
    console.print(f"profile: {doc['path']}")
