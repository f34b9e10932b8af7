"""Each verb's options as one frozen dataclass: the one place their defaults are stated.

The CLI builds one from its flags (its flags' defaults are these classes' defaults), the Python API
takes one (or keywords that fill one), and the verb's job takes one. This module imports nothing of
edgedeploy and nothing heavy, so the CLI, the API, the jobs and the packages may all import it.

Paths may be given as `str` or `Path` and sequences as lists: each class stores them as `Path`
and tuples, so an options object compares and prints the same however it was built.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CompressOptions",
    "ConvertOptions",
    "DataOptions",
    "FleetProfileOptions",
    "ProfileOptions",
    "PushOptions",
    "RunOptions",
    "TargetAccess",
]

Shapes = dict[str, list[int]]
"""Fixed input shapes by input name, e.g. {"x": [1, 3, 224, 224]}; the key "" for a one-input model."""


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # the documented way to normalise a frozen dataclass's field


def _as_path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


def _as_paths(value: Sequence[str | os.PathLike[str]] | str | os.PathLike[str] | None) -> tuple[Path, ...]:
    """A tuple of paths; one path given alone is a tuple of one (a str is not a sequence of letters)."""
    if value is None:
        return ()
    if isinstance(value, str | os.PathLike):
        return (Path(value),)
    return tuple(Path(v) for v in value)


@dataclass(frozen=True, kw_only=True)
class TargetAccess:
    """How a verb reaches its target: which inventory, and whether an unknown SSH host key is accepted."""

    inventory: Path | None = None
    """Inventory YAML (Ansible style) merged over targets/ (None: the default inventory)."""
    trust_new: bool = False
    """Accept and record an unknown SSH host key (refused otherwise)."""

    def __post_init__(self) -> None:
        _set(self, "inventory", _as_path(self.inventory))


@dataclass(frozen=True, kw_only=True)
class DataOptions:
    """How `--data` is read (see edgedeploy.data.sources.load_data)."""

    batch_size: int = 128
    workers: int = 0
    input_size: tuple[int, int] | None = None
    channels: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.input_size is not None:
            _set(self, "input_size", tuple(self.input_size))
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None:
                _set(self, name, tuple(value))


@dataclass(frozen=True, kw_only=True)
class CompressOptions(DataOptions, TargetAccess):
    """`edgedeploy compress`: the recipe, the data (the `DataOptions` fields) and where stages are timed."""

    output: Path = Path("out/compressed")
    recipe: Path | None = None
    data: str = "mnist"
    arch: str | None = None
    train_samples: int | None = None
    seed: int = 0
    repeats: int = 1
    teacher: str | None = None
    teacher_arch: str | None = None
    latency_target: str | None = "local"
    """Time the input's and each stage's ONNX file on this target; None skips timing."""
    progress: bool = False

    def __post_init__(self) -> None:
        DataOptions.__post_init__(self)
        TargetAccess.__post_init__(self)
        _set(self, "output", Path(self.output))
        _set(self, "recipe", _as_path(self.recipe))


@dataclass(frozen=True, kw_only=True)
class ConvertOptions(TargetAccess):
    """`edgedeploy convert`. `input_shape` as --shape: "1,3,224,224" or "NAME=1,3,224,224" per input."""

    to: str = "onnx"
    precision: str = "fp32"
    output: Path | None = None
    calibration: Path | None = None
    int8_format: str = "auto"
    arch: str | None = None
    input_shape: tuple[str, ...] = ()
    tolerance: float | None = None
    verify_metric: str = "auto"
    verify_samples: int = 16
    threads: int | None = None
    target: str | None = None
    """Time the int8 auto candidates on this target (None: here)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "output", _as_path(self.output))
        _set(self, "calibration", _as_path(self.calibration))
        shapes = self.input_shape
        _set(self, "input_shape", (shapes,) if isinstance(shapes, str) else tuple(shapes or ()))


@dataclass(frozen=True, kw_only=True)
class PushOptions(TargetAccess):
    """`edgedeploy push`."""

    dry_run: bool = False
    checksum: bool = False
    """Hash the device's copy to decide it is unchanged (as rsync -c), not its size and mtime."""
    progress: bool = False


@dataclass(frozen=True, kw_only=True)
class RunOptions(TargetAccess):
    """`edgedeploy run`: `inputs` are .npy files in the model's input order (none: random inputs);
    with `out_dir`, each output is fetched there as <output-name>.npy."""

    inputs: tuple[Path, ...] = ()
    out_dir: Path | None = None
    runtime: str = "auto"
    threads: int | None = None
    shapes: Shapes = field(default_factory=dict)
    timeout: float = 600.0
    """Seconds the runner may take on the device."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "inputs", _as_paths(self.inputs))
        _set(self, "out_dir", _as_path(self.out_dir))
        _set(self, "shapes", dict(self.shapes or {}))


@dataclass(frozen=True, kw_only=True)
class ProfileOptions(TargetAccess):
    """`edgedeploy profile`. The timed runs go on past `runs` until `min_seconds` have passed, the
    warm-up past `warmup` until `warmup_seconds` (1 s and 0.5 s, as TFLite's benchmark_model);
    `counted()` gives exactly `runs` after `warmup`, as fleet, tune and quickstart measure."""

    runs: int = 100
    warmup: int = 10
    min_seconds: float = 1.0
    warmup_seconds: float = 0.5
    duration: float | None = None
    threads: int | None = None
    runtime: str = "auto"
    repeats: int = 1
    cores: str | None = None
    cooldown: float = 0.0
    inputs: tuple[Path, ...] = ()
    shapes: Shapes = field(default_factory=dict)
    raw_samples: bool = False
    profiles_dir: Path | None = None
    """Profile store root (None: ./profiles or $EDGEDEPLOY_PROFILES)."""
    checksum: bool = False
    timeout: float = 900.0
    """Seconds one runner process may take on the device (raised to fit `duration`/`min_seconds`)."""
    progress: bool = False
    """Accepted for symmetry with the other verbs; one profile shows no progress display."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "inputs", _as_paths(self.inputs))
        _set(self, "shapes", dict(self.shapes or {}))
        _set(self, "profiles_dir", _as_path(self.profiles_dir))

    @classmethod
    def counted(cls, **fields: Any) -> ProfileOptions:
        """Exactly `runs` timed inferences after `warmup` ones, with no time floors: what a caller
        that sets the run count itself (fleet, tune, quickstart) measures."""
        return cls(**{"min_seconds": 0.0, "warmup_seconds": 0.0, **fields})


@dataclass(frozen=True, kw_only=True)
class FleetProfileOptions(TargetAccess):
    """`edgedeploy fleet profile`: each (target, model) job is a profile of `runs` timed inferences
    after `warmup` (no time floors), under a watchdog of `timeout` seconds, retried `retries` times on
    device errors; up to `workers` targets at once; `resume` is an earlier run's id."""

    workers: int = 8
    runs: int = 50
    warmup: int = 5
    timeout: float = 600.0
    retries: int = 1
    resume: str | None = None
    profiles_dir: Path | None = None
    checksum: bool = False
    progress: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "profiles_dir", _as_path(self.profiles_dir))
