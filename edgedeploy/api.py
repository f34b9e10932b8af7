"""The Python API: the verbs of the `edgedeploy` command as functions, for scripts.

    from edgedeploy import api

    profile = api.profile("model.onnx", "pi5", runs=200)
    print(profile.target, profile.p50_ms, profile.peak_rss_mb)

Every function does what the verb of the same name does (same defaults, same checks, same files
written) and returns a typed result from `edgedeploy.results` instead of printing; `to_dict()` on a
result is the document the CLI prints with `--json`. A failure the caller can act on (a bad file or
option, an unreachable or refusing device) raises `edgedeploy.errors.EdgeDeployError`: `UsageError`
for bad input, `TargetError` for a device, `NotYetSupported` for what cannot be done yet; `str(err)`
is the one line the CLI would print. A fleet run does not raise for a failed device: its rows say
which failed and why (`FleetResult.failures`).

Importing this module is cheap: each function imports its job (and torch, onnx, ... behind it) when
called. Paths may be given as `str` or `Path`. Nothing here prints to stdout; on stderr there are
progress bars where a function is given `progress=True`, and a `warning:` line for each corrupt
profile file the store skips. See docs/api.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from edgedeploy.results import (
    Comparison,
    CompressResult,
    ConvertResult,
    FleetResult,
    ModelInfo,
    Profile,
    ProfileSummary,
    PushResult,
    RunResult,
)

__all__ = [
    "compare_profiles",
    "compress",
    "convert",
    "fleet_profile",
    "inspect",
    "list_profiles",
    "load_profile",
    "profile",
    "push",
    "run",
]

PathLike = str | os.PathLike[str]
Shapes = dict[str, list[int]]
"""Fixed input shapes by input name, e.g. {"x": [1, 3, 224, 224]}; the key "" for a one-input model."""


def _path(value: PathLike | None) -> Path | None:
    return None if value is None else Path(value)


def _paths(values: Sequence[PathLike] | PathLike) -> list[Path]:
    """A list of paths; one path given alone is a list of one (a str is not a list of letters)."""
    if isinstance(values, str | os.PathLike):
        return [Path(values)]
    return [Path(v) for v in values]


def compress(
    model: str,
    output: PathLike = "out/compressed",
    *,
    recipe: PathLike | None = None,
    data: str = "mnist",
    arch: str | None = None,
    train_samples: int | None = None,
    seed: int = 0,
    repeats: int = 1,
    teacher: str | None = None,
    teacher_arch: str | None = None,
    batch_size: int = 128,
    workers: int = 0,
    input_size: tuple[int, int] | None = None,
    channels: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    val_fraction: float = 0.1,
    latency_target: str | None = "local",
    inventory: PathLike | None = None,
    trust_new: bool = False,
    progress: bool = False,
) -> CompressResult:
    """Compress a torch model by a recipe (`edgedeploy compress`); needs the [compress] extra.

    `model` and `teacher` are module:factory, a TorchScript/.pt2 file or a state_dict (with
    `arch`); `data` as the CLI's --data. `latency_target=None` skips timing the stage files."""
    from edgedeploy import compress_job

    options = compress_job.DataOptions(
        batch_size=batch_size,
        workers=workers,
        input_size=input_size,
        channels=channels,
        mean=tuple(mean) if mean is not None else None,
        std=tuple(std) if std is not None else None,
        val_fraction=val_fraction,
    )
    doc = compress_job.run(
        model=model,
        recipe=_path(recipe),
        output=Path(output),
        arch=arch,
        dataset=data,
        train_samples=train_samples,
        seed=seed,
        repeats=repeats,
        show_progress=progress,
        teacher=teacher,
        teacher_arch=teacher_arch,
        data_options=options,
        latency_target=latency_target,
        inventory=_path(inventory),
        trust_new=trust_new,
    )
    return CompressResult.from_doc(doc)


def convert(
    model: PathLike,
    to: str = "onnx",
    precision: str = "fp32",
    output: PathLike | None = None,
    *,
    calibration: PathLike | None = None,
    int8_format: str = "auto",
    arch: str | None = None,
    input_shape: Sequence[str] | str | None = None,
    tolerance: float | None = None,
    verify_metric: str = "auto",
    verify_samples: int = 16,
    threads: int | None = None,
    target: str | None = None,
    inventory: PathLike | None = None,
    trust_new: bool = False,
) -> ConvertResult:
    """Convert to ONNX or TFLite and verify against the source (`edgedeploy convert`).

    `input_shape` as the CLI's --input-shape ("1,3,224,224" or "NAME=1,3,224,224", one per input).
    A conversion that fails verification raises UsageError; `target` times the int8 candidates there."""
    from edgedeploy import convert_job

    doc = convert_job.run(
        model=str(model),
        to=to,
        precision=precision,
        output=_path(output),
        calibration=_path(calibration),
        int8_format=int8_format,
        arch=arch,
        input_shape=list(input_shape) if isinstance(input_shape, list | tuple) else input_shape,
        tolerance=tolerance,
        verify_samples=verify_samples,
        threads=threads,
        target=target,
        inventory=_path(inventory),
        trust_new=trust_new,
        verify_metric=verify_metric,
    )
    return ConvertResult.from_doc(doc)


def inspect(model: PathLike, shapes: Shapes | None = None) -> ModelInfo:
    """Describe a .onnx, .tflite or torch file (`edgedeploy inspect`); `shapes` fix dynamic inputs
    for the MAC counts."""
    from edgedeploy import inspect_job

    return inspect_job.inspect(Path(model), shapes)


def push(
    model: PathLike,
    target: str = "local",
    *,
    inventory: PathLike | None = None,
    trust_new: bool = False,
    dry_run: bool = False,
    checksum: bool = False,
    progress: bool = False,
) -> PushResult:
    """Send a model and the runner to a target's work dir, sha256-verified (`edgedeploy push`).

    A group name pushes to each host: a host that fails is a `Pushed` with `error` (see
    `PushResult.ok`), the others are still pushed."""
    # Until push has its own job module, the verb's one entry point is in deploy/push.py.
    from edgedeploy.push_job import push_to_target

    doc = push_to_target(
        Path(model),
        target,
        inventory=_path(inventory),
        trust_new=trust_new,
        dry_run=dry_run,
        progress=progress,
        checksum=checksum,
    )
    return PushResult.from_doc(doc, target, dry_run)


def run(
    model: PathLike,
    target: str = "local",
    *,
    inputs: Sequence[PathLike] | PathLike = (),
    out_dir: PathLike | None = None,
    runtime: str = "auto",
    threads: int | None = None,
    shapes: Shapes | None = None,
    inventory: PathLike | None = None,
    trust_new: bool = False,
) -> RunResult:
    """Run a model once on a target (`edgedeploy run`); with `out_dir`, fetch each output there as
    <output-name>.npy. `inputs` are .npy files in the model's input order (default: random)."""
    from edgedeploy import profile_job

    doc = profile_job.run_model(
        Path(model),
        target,
        inputs=_paths(inputs),
        out_dir=_path(out_dir),
        runtime=runtime,
        threads=threads,
        shapes=shapes or {},
        inventory=_path(inventory),
        trust_new=trust_new,
    )
    return RunResult.from_doc(doc)


def profile(
    model: PathLike,
    target: str = "local",
    *,
    runs: int = 100,
    warmup: int = 10,
    min_seconds: float = 1.0,
    warmup_seconds: float = 0.5,
    duration: float | None = None,
    threads: int | None = None,
    runtime: str = "auto",
    repeats: int = 1,
    cores: str | None = None,
    cooldown: float = 0.0,
    inputs: Sequence[PathLike] | PathLike = (),
    shapes: Shapes | None = None,
    raw_samples: bool = False,
    profiles_dir: PathLike | None = None,
    inventory: PathLike | None = None,
    trust_new: bool = False,
    progress: bool = False,
) -> Profile:
    """Measure a model on a target and store the profile (`edgedeploy profile`, same defaults).

    The profile is written under `profiles_dir` (default: ./profiles or $EDGEDEPLOY_PROFILES);
    `Profile.path` is its file."""
    from edgedeploy import profile_job

    doc = profile_job.profile_model(
        Path(model),
        target,
        runs=runs,
        warmup=warmup,
        min_seconds=min_seconds,
        warmup_seconds=warmup_seconds,
        duration=duration,
        threads=threads,
        runtime=runtime,
        repeats=repeats,
        cores=cores,
        cooldown=cooldown,
        inputs=_paths(inputs),
        shapes=shapes or {},
        raw_samples=raw_samples,
        inventory=_path(inventory),
        trust_new=trust_new,
        progress=progress,
        store_root=_path(profiles_dir),
    )
    return Profile.from_doc(doc, _path(profiles_dir))


def fleet_profile(
    models: Sequence[PathLike] | PathLike,
    target: str = "all",
    *,
    inventory: PathLike | None = None,
    workers: int = 8,
    runs: int = 50,
    warmup: int = 5,
    timeout: float = 600.0,
    retries: int = 1,
    resume: str | None = None,
    trust_new: bool = False,
    profiles_dir: PathLike | None = None,
    checksum: bool = False,
    progress: bool = False,
) -> FleetResult:
    """Profile every model on every target of a group at once (`edgedeploy fleet profile`).

    Each (target, model) success stores a profile under `profiles_dir`; a failing device gives
    error rows and never stops the others. `resume=run_id` skips the pairs that already succeeded."""
    from edgedeploy import fleet_job

    return fleet_job.run_fleet(
        _paths(models),
        target,
        inventory=_path(inventory),
        workers=workers,
        runs=runs,
        warmup=warmup,
        timeout=timeout,
        retries=retries,
        resume=resume,
        trust_new=trust_new,
        progress=progress,
        store_root=_path(profiles_dir),
        checksum=checksum,
    )


def list_profiles(
    profiles_dir: PathLike | None = None,
    *,
    target: str | None = None,
    model: str | None = None,
    runtime: str | None = None,
    since: str | None = None,
) -> list[ProfileSummary]:
    """The stored profiles matching every filter given, oldest first (`edgedeploy profiles list`).

    `model` matches the model's name (file stem) or a sha256 prefix; `since` is an ISO date/time."""
    from edgedeploy import profiles_job

    return profiles_job.list_profiles(
        _path(profiles_dir), target=target, model=model, runtime=runtime, since=since
    )


def load_profile(profile_id: PathLike, profiles_dir: PathLike | None = None) -> Profile:
    """One stored profile by id, file path, or a unique prefix of either (`profiles show`)."""
    from edgedeploy import profiles_job

    return profiles_job.load_profile(_path(profiles_dir), str(profile_id))


def compare_profiles(a: PathLike, b: PathLike, profiles_dir: PathLike | None = None) -> Comparison:
    """B relative to A, metric by metric, with differences inside the measured spread flagged as
    noise (`profiles compare`); `a` and `b` as `load_profile` takes them."""
    from edgedeploy import profiles_job

    return profiles_job.compare_profiles(_path(profiles_dir), str(a), str(b))
