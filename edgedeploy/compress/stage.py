"""The one interface every technique implements, and what a stage gets and gives back.

A stage is a dataclass whose fields are its recipe parameters (with defaults); `from_params` builds
it from a recipe entry and rejects unknown or out-of-range parameters with a `UsageError`. `apply`
takes the model and returns the (possibly new) model; it may record masks and clusters in
`ctx.constraints` for later stages to keep, and notes for its report.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from edgedeploy.compress.constraints import Constraints
from edgedeploy.errors import UsageError
from edgedeploy.train import LossFn


@dataclass
class CompressionData:
    """Training and evaluation data: float32 NCHW inputs and int64 class labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray

    def __post_init__(self) -> None:
        for name in ("train_x", "train_y", "eval_x", "eval_y"):
            value = np.asarray(getattr(self, name))
            if value.size == 0:
                raise UsageError(f"compression data: {name} is empty")
            setattr(self, name, value)
        self.train_x = self.train_x.astype(np.float32, copy=False)
        self.eval_x = self.eval_x.astype(np.float32, copy=False)
        self.train_y = self.train_y.astype(np.int64, copy=False)
        self.eval_y = self.eval_y.astype(np.int64, copy=False)
        if len(self.train_x) != len(self.train_y) or len(self.eval_x) != len(self.eval_y):
            raise UsageError("compression data: inputs and labels differ in length")

    def example(self) -> torch.Tensor:
        return torch.as_tensor(self.eval_x[:1])


@dataclass
class StageContext:
    data: CompressionData
    seed: int
    constraints: Constraints
    input_model: nn.Module
    """The model as given to compress_model (a frozen copy): the default distillation teacher."""
    teacher: nn.Module | None = None
    progress: Callable[[str], None] = lambda _msg: None
    notes: dict[str, Any] = field(default_factory=dict)
    """Filled by the running stage; becomes its report's `details`."""
    quantization: dict[str, Any] = field(default_factory=dict)
    """Per-layer scales recorded by PTQ/QAT, for an int8 export to reuse."""
    loss_fn: LossFn | None = None
    """The fine-tuning loss of the stages still to run (None: cross-entropy); distill with carry sets it."""


@dataclass
class StageReport:
    stage: str
    params: dict[str, Any]
    seconds: float
    accuracy_before: float
    accuracy_after: float
    params_before: int
    params_after: int
    nonzeros_after: int
    macs_after: int
    nonzero_macs_after: int
    fp32_bytes: int
    deep_compression_bytes: int
    layers: list[dict[str, Any]]
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Stage(ABC):
    """Base of every technique. Subclasses are dataclasses; their fields are the recipe parameters."""

    name: ClassVar[str]

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Stage:
        known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise UsageError(
                f"stage {cls.name!r}: unknown parameter(s) {', '.join(unknown)} (known: {', '.join(known)})"
            )
        hints = typing.get_type_hints(cls)
        values = {key: _coerce(cls.name, key, value, hints[key]) for key, value in params.items()}
        stage = cls(**values)
        stage.check()
        return stage

    def check(self) -> None:  # noqa: B027 - optional hook: most stages override it
        """Raise UsageError for out-of-range parameters."""

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @abstractmethod
    def apply(self, model: nn.Module, ctx: StageContext) -> nn.Module:
        """Compress `model` (in place or by building a new one) and return it."""


def require(ok: bool, stage: str, message: str) -> None:
    if not ok:
        raise UsageError(f"stage {stage!r}: {message}")


def _coerce(stage: str, key: str, value: Any, hint: Any) -> Any:
    """Check a YAML value against the field's type; ints are accepted for floats."""
    options = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else (hint,)
    )
    for option in options:
        if option is type(None) and value is None:
            return None
        origin = typing.get_origin(option) or option
        if origin is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin in (str, bool, dict, list) and isinstance(value, origin):
            return value
    wanted = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise UsageError(f"stage {stage!r}: parameter {key!r} must be {wanted}, got {value!r}")
