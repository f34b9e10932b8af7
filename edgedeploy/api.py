"""The Python API: the verbs of the `edgedeploy` command as functions, for scripts.

    from edgedeploy import api

    profile = api.profile("model.onnx", "pi5", runs=200)
    print(profile.target, profile.p50_ms, profile.peak_rss_mb)

    settings = api.ProfileOptions(runs=200, threads=1)  # settings as one typed, reusable object
    profile = api.profile("model.onnx", "pi5", settings)

Every function does what the verb of the same name does (same defaults, same checks, same files
written) and returns a typed result from `edgedeploy.results` instead of printing; `to_dict()` on a
result is the document the CLI prints with `--json`. A failure the caller can act on (a bad file or
option, an unreachable or refusing device) raises `edgedeploy.errors.EdgeDeployError`: `UsageError`
for bad input, `TargetError` for a device, `NotYetSupported` for what cannot be done yet; `str(err)`
is the one line the CLI would print. A fleet run does not raise for a failed device: its rows say
which failed and why (`FleetResult.failures`).

Each verb's settings are one frozen dataclass of `edgedeploy.options` (`ProfileOptions`, ...), the
one place their defaults are stated: pass it as `options`, or pass its fields as keywords, which are
applied over `options` (or over the defaults) to build one.

Importing this module is cheap: each function imports its job (and torch, onnx, ... behind it) when
called. Paths may be given as `str` or `Path`. Nothing here prints to stdout; on stderr there are
progress bars where a function is given `progress=True`, and a `warning:` line for each corrupt
profile file the store skips. See docs/api.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from edgedeploy.options import (
    CompressOptions,
    ConvertOptions,
    FleetProfileOptions,
    ProfileOptions,
    PushOptions,
    RunOptions,
    Shapes,
    TargetAccess,
)
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
    "CompressOptions",
    "ConvertOptions",
    "FleetProfileOptions",
    "ProfileOptions",
    "PushOptions",
    "RunOptions",
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


def _path(value: PathLike | None) -> Path | None:
    return None if value is None else Path(value)


Options = TypeVar("Options", bound=TargetAccess)


def _options(kind: type[Options], options: Options | None, changes: dict[str, Any]) -> Options:
    """`options` (default: the verb's defaults) with the keyword arguments applied over it: one
    options object whichever way a caller spells its settings (a misspelt name is a TypeError)."""
    base = kind() if options is None else options
    return replace(base, **changes) if changes else base


def compress(
    model: str,
    output: PathLike | None = None,
    options: CompressOptions | None = None,
    **changes: Any,
) -> CompressResult:
    """Compress a torch model by a recipe (`edgedeploy compress`); needs the [compress] extra.

    `model` and `teacher` are module:factory, a TorchScript/.pt2 file or a state_dict (with
    `arch`); `data` as the CLI's --data. `latency_target=None` skips timing the stage files.
    Settings: `CompressOptions` fields, as `options` or as keywords (`output` may come second)."""
    from edgedeploy import compress_job

    if output is not None:
        changes["output"] = output
    return compress_job.run(model, _options(CompressOptions, options, changes))


def convert(
    model: PathLike,
    to: str | None = None,
    precision: str | None = None,
    output: PathLike | None = None,
    options: ConvertOptions | None = None,
    **changes: Any,
) -> ConvertResult:
    """Convert to ONNX or TFLite and verify against the source (`edgedeploy convert`).

    `input_shape` as the CLI's --shape ("1,3,224,224" or "NAME=1,3,224,224", one per input).
    A conversion that fails verification raises UsageError; `target` times the int8 candidates there.
    Settings: `ConvertOptions` fields, as `options` or as keywords (`to`, `precision`, `output` may
    come positionally)."""
    from edgedeploy import convert_job

    given = {"to": to, "precision": precision, "output": output}
    changes.update({name: value for name, value in given.items() if value is not None})
    return convert_job.run(str(model), _options(ConvertOptions, options, changes))


def inspect(model: PathLike, shapes: Shapes | None = None) -> ModelInfo:
    """Describe a .onnx, .tflite or torch file (`edgedeploy inspect`); `shapes` fix dynamic inputs
    for the MAC counts."""
    from edgedeploy import inspect_job

    return inspect_job.inspect(Path(model), shapes)


def push(
    model: PathLike, target: str = "local", options: PushOptions | None = None, **changes: Any
) -> PushResult:
    """Send a model and the runner to a target's work dir, sha256-verified (`edgedeploy push`).

    A group name pushes to each host: a host that fails is a `Pushed` with `error` (see
    `PushResult.ok`), the others are still pushed. Settings: `PushOptions` fields."""
    from edgedeploy.push_job import push_to_target

    return push_to_target(Path(model), target, _options(PushOptions, options, changes))


def run(
    model: PathLike, target: str = "local", options: RunOptions | None = None, **changes: Any
) -> RunResult:
    """Run a model once on a target (`edgedeploy run`); with `out_dir`, fetch each output there as
    <output-name>.npy. `inputs` are .npy files in the model's input order (default: random).
    Settings: `RunOptions` fields."""
    from edgedeploy import profile_job

    return profile_job.run_model(Path(model), target, _options(RunOptions, options, changes))


def profile(
    model: PathLike, target: str = "local", options: ProfileOptions | None = None, **changes: Any
) -> Profile:
    """Measure a model on a target and store the profile (`edgedeploy profile`, same defaults).

    The profile is written under `profiles_dir` (default: ./profiles or $EDGEDEPLOY_PROFILES);
    `Profile.path` is its file. Settings: `ProfileOptions` fields."""
    from edgedeploy import profile_job

    return profile_job.profile_model(Path(model), target, _options(ProfileOptions, options, changes))


def fleet_profile(
    models: Sequence[PathLike] | PathLike,
    target: str = "all",
    options: FleetProfileOptions | None = None,
    **changes: Any,
) -> FleetResult:
    """Profile every model on every target of a group at once (`edgedeploy fleet profile`).

    Each (target, model) success stores a profile under `profiles_dir`; a failing device gives
    error rows and never stops the others. `resume=run_id` skips the pairs that already succeeded.
    Settings: `FleetProfileOptions` fields."""
    from edgedeploy import fleet_job

    paths = [Path(models)] if isinstance(models, str | os.PathLike) else [Path(m) for m in models]
    return fleet_job.run_fleet(paths, target, _options(FleetProfileOptions, options, changes))


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
