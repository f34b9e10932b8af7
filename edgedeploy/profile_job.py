"""`edgedeploy run` and `edgedeploy profile`: push model + runner, run the runner there, store a profile.

The runner is always a separate process on the target (for `local` too), so the numbers come from
the same code path as on real devices.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgedeploy.deploy.inventory import Target, load_inventory
from edgedeploy.deploy.push import remote_join
from edgedeploy.deploy.runner_client import (
    RunnerSettings,
    deploy_runner,
    invoke_runner,
    push_inputs,
    target_summary,
    time_models,
)
from edgedeploy.deploy.transports.base import Transport
from edgedeploy.errors import TargetError, UsageError
from edgedeploy.fileinfo import sha256_file
from edgedeploy.options import ProfileOptions, RunOptions
from edgedeploy.profiles.power import estimate_power, profile_power
from edgedeploy.profiles.schema import build_profile
from edgedeploy.profiles.store import write_profile
from edgedeploy.results import Profile, RunResult
from edgedeploy.runner_inputs import check_inputs

# time_models is re-exported for callers that imported it from here before the runner client moved out.
__all__ = ["estimate_power", "profile_model", "run_model", "time_models"]


def _check_model(model: Path) -> None:
    if not model.is_file():
        raise UsageError(f"{model}: no such file")
    if model.suffix.lower() not in (".onnx", ".tflite"):
        raise UsageError(f"{model}: the runner runs .onnx or .tflite models (convert it first)")


def profile_model(
    model: Path,
    target_name: str,
    options: ProfileOptions | None = None,
    *,
    on_status: Callable[[str], None] | None = None,
    accuracy: float | None = None,
    tags: dict[str, Any] | None = None,
) -> Profile:
    """Measure `model` on one target and store the profile; returns it (`Profile.path` is its file,
    `to_dict()` the stored document with its `path`).

    `accuracy` (measured by the caller on this very file) is recorded as `model.accuracy`, which
    `profiles report` plots; `tags` (e.g. which tune trial measured what) are stored as `tags`;
    `on_status` hears which repeat starts.

    Each repeat is a fresh runner process (load, warm-up, timed runs), so the spread across repeats
    includes what changes between processes, not only between loops. The timed runs go on past
    `runs` until `min_seconds` have passed, the warm-up past `warmup` until `warmup_seconds`
    (see `ProfileOptions`); `cores` pins the runner.
    """
    from edgedeploy.deploy.transports.connect import open_transport

    opts = options or ProfileOptions()
    _check_model(model)
    check_inputs(model, list(opts.inputs), opts.shapes)
    if (
        opts.runs < 1
        or opts.repeats < 1
        or min(opts.warmup, opts.warmup_seconds, opts.min_seconds, opts.cooldown) < 0
        or (opts.duration is not None and opts.duration <= 0)
    ):
        raise UsageError(
            "--runs and --repeats must be >= 1, --warmup, --warmup-seconds, --min-seconds and --cooldown "
            ">= 0, --duration > 0"
        )
    target = load_inventory(opts.inventory).get(target_name)
    settings = RunnerSettings.for_target(
        target,
        threads=opts.threads,
        runtime=opts.runtime,
        runs=opts.runs,
        warmup=opts.warmup,
        min_seconds=opts.min_seconds,
        warmup_seconds=opts.warmup_seconds,
        duration=opts.duration,
        cores=opts.cores,
        raw_samples=opts.raw_samples,
        shapes=opts.shapes,
    )
    args = settings.profile_args()
    timeout = opts.timeout
    if opts.duration or opts.min_seconds or opts.warmup_seconds:
        timeout = max(timeout, ((opts.duration or opts.min_seconds) + opts.warmup_seconds) * 2 + 120)
    status = on_status or (lambda _msg: None)
    docs: list[dict[str, Any]] = []
    with open_transport(target, trust_new=opts.trust_new) as transport:
        input_args = push_inputs(transport, target, list(opts.inputs))
        command = deploy_runner(transport, target, model, checksum=opts.checksum)
        for i in range(opts.repeats):
            status(f"{target.name}: {model.name} run {i + 1}/{opts.repeats}")
            if i and opts.cooldown:
                transport.run(["sleep", str(opts.cooldown)], timeout=opts.cooldown + 30)
            docs.append(invoke_runner(transport, target, model, command, [*args, *input_args], timeout))
    # The representative repeat is the one with the median p50; the others are summarised.
    representative = sorted(docs, key=lambda d: d["latency_ms"]["p50"])[(len(docs) - 1) // 2]
    profile = build_profile(
        model_path=model,
        model_sha256=sha256_file(model),
        target=target_summary(target, representative),
        runner_doc=representative,
        power=profile_power(target, representative),
        settings={
            "runs": opts.runs,
            "warmup": opts.warmup,
            "min_seconds": opts.min_seconds,
            "warmup_seconds": opts.warmup_seconds,
            "duration_s": opts.duration,
            "threads": settings.threads,
            "requested_runtime": settings.runtime,
            "cores": opts.cores,
            "repeats": opts.repeats,
            "cooldown_s": opts.cooldown,
            "inputs": "user" if opts.inputs else "random",
        },
        repeats=[_repeat_summary(d) for d in docs] if opts.repeats > 1 else None,
        repeat_spread=_spread(docs) if opts.repeats > 1 else None,
    )
    if accuracy is not None:
        profile["model"]["accuracy"] = accuracy
    if tags:
        profile["tags"] = tags
    profile["path"] = str(write_profile(profile, opts.profiles_dir))
    return Profile.from_doc(profile, opts.profiles_dir)


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


def run_model(model: Path, target_name: str, options: RunOptions | None = None) -> RunResult:
    """Run once and fetch outputs as DIR/<output-name>.npy."""
    from edgedeploy.deploy.transports.connect import open_transport

    opts = options or RunOptions()
    _check_model(model)
    check_inputs(model, list(opts.inputs), opts.shapes)
    target = load_inventory(opts.inventory).get(target_name)
    settings = RunnerSettings.for_target(
        target, threads=opts.threads, runtime=opts.runtime, shapes=opts.shapes
    )
    with open_transport(target, trust_new=opts.trust_new) as transport:
        remote_out = remote_join(transport.workdir, "outputs", model.stem)
        args = settings.run_args(remote_out)
        args += push_inputs(transport, target, list(opts.inputs))
        command = deploy_runner(transport, target, model)
        doc = invoke_runner(transport, target, model, command, args, opts.timeout)
        written: dict[str, str] = {}
        if opts.out_dir is not None:
            # Every destination is checked before the first fetch: a refused name leaves no files.
            destinations = _output_destinations(target, doc.get("outputs"), opts.out_dir)
            for out, local in zip(doc["outputs"], destinations, strict=True):
                _fetch_atomic(transport, remote_join(remote_out, local.name), local)
                written[str(out.get("name"))] = str(local)
    doc["target"] = {"name": target.name, "emulated": target.emulated}
    doc["written"] = written
    return RunResult.from_doc(doc)


def _output_destinations(target: Target, outputs: object, out_dir: Path) -> list[Path]:
    """Where each output the device names goes on this host: OUT_DIR/<file>.npy, nothing else.

    The device's answer is untrusted input: a `file` such as `../x` or `/etc/x` would otherwise make
    the host write outside --out. Only plain names (what the runner's safe_name makes) are taken."""
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise TargetError(f"{target.name}: the runner's answer has no readable list of outputs")
    folder = out_dir.resolve()
    destinations: list[Path] = []
    for out in outputs:
        name = out.get("file")
        plain = (
            isinstance(name, str)
            and 0 < len(name) <= 200
            and not name.startswith(".")
            and not any(c in name for c in "/\\\0")
            and Path(name).name == name
        )
        local = folder / f"{name}.npy"
        if not plain or local.parent != folder:
            raise TargetError(
                f"{target.name}: refused output file name {name!r} from the device: "
                f"it is not a plain file name inside {out_dir}"
            )
        if local in destinations:
            raise TargetError(f"{target.name}: the device named output file {name!r} twice")
        destinations.append(local)
    return destinations


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
