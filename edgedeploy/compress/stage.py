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
from torch.utils.data import DataLoader, Dataset, Subset

from edgedeploy.compress.constraints import Constraints
from edgedeploy.data.sources import ArrayDataset, DataSplits, first_input
from edgedeploy.errors import UsageError
from edgedeploy.train import LossFn, accuracy


class CompressionData:
    """Training and evaluation data of a compression run.

    Built from arrays, `CompressionData(train_x, train_y, eval_x, eval_y)` (float32 inputs, int64
    class labels), or from any data source, `CompressionData.from_splits(load_data(spec))`, whose
    Datasets stream through DataLoaders. `train` and `eval` are torch Datasets either way.
    """

    def __init__(
        self,
        train_x: np.ndarray | None = None,
        train_y: np.ndarray | None = None,
        eval_x: np.ndarray | None = None,
        eval_y: np.ndarray | None = None,
        *,
        splits: DataSplits | None = None,
    ) -> None:
        if splits is None:
            arrays = {"train_x": train_x, "train_y": train_y, "eval_x": eval_x, "eval_y": eval_y}
            for name, value in arrays.items():
                if value is None or np.asarray(value).size == 0:
                    raise UsageError(f"compression data: {name} is empty")
            if len(train_x) != len(train_y) or len(eval_x) != len(eval_y):  # type: ignore[arg-type]
                raise UsageError("compression data: inputs and labels differ in length")
            train = ArrayDataset(np.asarray(train_x), np.asarray(train_y))
            val = ArrayDataset(np.asarray(eval_x), np.asarray(eval_y))
            classes = int(max(train.labels().max(), val.labels().max())) + 1
            splits = DataSplits(
                train=train,
                val=val,
                num_classes=classes,
                input_shape=tuple(train.x.shape[1:]),
                source="arrays",
            )
        self.splits = splits

    @classmethod
    def from_splits(cls, splits: DataSplits) -> CompressionData:
        return cls(splits=splits)

    @property
    def train(self) -> Dataset | DataLoader:
        """What training iterates: the Dataset, or the DataLoader a module:factory built."""
        return self.splits.loaders.get("train") or self.splits.train

    @property
    def eval(self) -> Dataset | DataLoader:
        return self.splits.loaders.get("val") or self.splits.val

    @property
    def labelled(self) -> bool:
        return self.splits.labelled

    @property
    def batch_size(self) -> int:
        return self.splits.batch_size

    @property
    def train_samples(self) -> int:
        return len(self.splits.train)  # type: ignore[arg-type]

    @property
    def eval_samples(self) -> int:
        return len(self.splits.val)  # type: ignore[arg-type]

    def _arrays(self, which: str) -> ArrayDataset:
        dataset = self.splits.train if which == "train" else self.splits.val
        if not isinstance(dataset, ArrayDataset):
            raise UsageError(f"compression data from {self.splits.source} streams: it has no {which} arrays")
        return dataset

    # Arrays of in-memory data (benchmarks and tests built on them).
    @property
    def train_x(self) -> np.ndarray:
        return self._arrays("train").x

    @property
    def train_y(self) -> np.ndarray:
        return self._arrays("train").labels()

    @property
    def eval_x(self) -> np.ndarray:
        return self._arrays("eval").x

    @property
    def eval_y(self) -> np.ndarray:
        return self._arrays("eval").labels()

    def example(self) -> torch.Tensor:
        """One evaluation input with its batch dimension, [1, ...]."""
        return first_input(self.splits.val)[None]

    def train_inputs(self, n: int) -> torch.Tensor:
        """The first n training inputs (unshuffled): calibration data."""
        train = self.splits.train
        if isinstance(train, ArrayDataset):
            return torch.as_tensor(train.x[:n])
        batches, count = [], 0
        for xb, _ in iterate_inputs(train, min(n, 128)):
            batches.append(xb)
            count += len(xb)
            if count >= n:
                break
        return torch.cat(batches)[:n]

    def eval_subset(self, n: int) -> Dataset:
        """The first n evaluation samples."""
        val = self.splits.val
        if isinstance(val, ArrayDataset):
            return val.subset(np.arange(min(n, len(val))))
        return Subset(val, range(min(n, len(val))))  # type: ignore[arg-type]

    def training_data(self, seed: int) -> Dataset | DataLoader:
        """What `train` iterates: in-memory arrays directly (seeded by train itself, as before
        DataLoaders), anything else through a DataLoader with the source's workers."""
        if isinstance(self.splits.train, ArrayDataset) and "train" not in self.splits.loaders:
            return self.splits.train
        return self.splits.train_loader(seed=seed)

    def eval_data(self) -> Dataset | DataLoader:
        if isinstance(self.splits.val, ArrayDataset) and "val" not in self.splits.loaders:
            return self.splits.val
        return self.splits.val_loader(batch_size=max(self.batch_size, 256))

    def accuracy(self, model: nn.Module) -> float | None:
        """Top-1 accuracy on the evaluation data; None for unlabelled data."""
        return accuracy(model, self.eval_data()) if self.labelled else None


def iterate_inputs(dataset: Dataset, batch_size: int) -> Any:
    from torch.utils.data import DataLoader as _Loader

    from edgedeploy.data.sources import iterate
    from edgedeploy.train import split_batch

    for batch in iterate(_Loader(dataset, batch_size=batch_size)):
        yield split_batch(batch)


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
    accuracy_before: float | None
    accuracy_after: float | None
    params_before: int
    params_after: int
    nonzeros_after: int
    macs_after: int
    nonzero_macs_after: int
    fp32_bytes: int
    deep_compression_bytes: int
    layers: list[dict[str, Any]]
    details: dict[str, Any]
    file: str | None = None
    """The stage's model exported to ONNX (kept under the output's stages/ by `compress`)."""
    file_bytes: int | None = None
    file_deep_compression_bytes: int | None = None
    """Deep-Compression size of the exported file's weights (what deploys, BatchNorm folded)."""
    file_accuracy: float | None = None
    """Top-1 accuracy of the exported file on the validation data (onnxruntime)."""
    latency_ms_p50: float | None = None
    """Median latency of the exported file on the target, by the runner (set by `compress`)."""

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
