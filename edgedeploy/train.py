"""Small, deterministic training and evaluation loops shared by compression stages and benchmarks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""loss(logits, labels, inputs) -> scalar; the inputs let distillation run its teacher."""

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""augment(batch, generator) -> batch, e.g. edgedeploy.data.augment.shift_augment(2)."""

LR_SCHEDULES = ("constant", "cosine")
"""What `train(lr_schedule=...)` accepts (the distill stage's `schedule` key too)."""


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, _inputs: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits, labels)


Inputs = np.ndarray | torch.Tensor | Dataset | DataLoader
"""Arrays (with labels given apart), or a torch Dataset / DataLoader yielding (input, label) pairs."""


def split_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of a DataLoader batch; a batch of inputs alone is unlabelled (labels -1)."""
    if isinstance(batch, tuple | list):
        x, y = batch[0], batch[1]
    else:
        x, y = batch, None
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.full((len(x),), -1, dtype=torch.long) if y is None else torch.as_tensor(y, dtype=torch.long)
    return x, y


def _arrays(x: Inputs, y: np.ndarray | torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Tensors for in-memory data (arrays, or an ArrayDataset), else None: such data is indexed
    directly, in the same order as before DataLoaders came in, so array results do not change."""
    from edgedeploy.data.sources import ArrayDataset

    if isinstance(x, ArrayDataset):
        return torch.as_tensor(x.x, dtype=torch.float32), torch.as_tensor(x.labels(), dtype=torch.long)
    if isinstance(x, Dataset | DataLoader):
        return None
    if y is None:
        raise TypeError("train/predict on arrays needs their labels")
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)


def train(
    model: nn.Module,
    x: Inputs,
    y: np.ndarray | torch.Tensor | None = None,
    *,
    epochs: float = 1.0,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    loss_fn: LossFn = cross_entropy,
    optimizer: torch.optim.Optimizer | None = None,
    on_step: Callable[[int], None] | None = None,
    after_step: Callable[[int], None] | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    augment: Augment | None = None,
    lr_schedule: str = "constant",
    channels_last: bool = False,
) -> int:
    """Train in place with Adam (unless given an optimizer); returns the number of steps taken.

    `epochs` may be fractional (e.g. 0.5 of an epoch). `on_step(step)` runs before each optimizer step
    (pruning schedules update masks there) and `after_step(step)` after it (to re-apply masks or
    cluster constraints that the update broke). `augment` transforms each batch (drawing from the
    run's seeded generator) before the model and `loss_fn` see it, so a distillation teacher scores the
    same augmented inputs as the student. `lr_schedule="cosine"` anneals the learning rate to zero over
    the steps taken (longer fine-tuning ends closer to a minimum than at a constant rate).

    `channels_last` trains a CNN with its weights in NHWC order (put back to the usual order after):
    oneDNN's CPU kernels run MobileNetV2's depthwise convolutions ~1.7x faster that way (measured,
    1 thread, batch 128). Only for plain models: masks, cluster hooks and fake-quant observers index
    their weights as laid out.
    """
    from edgedeploy.data.sources import iterate

    arrays = _arrays(x, y)
    gen = torch.Generator().manual_seed(seed)
    if arrays is not None:
        xt, yt = arrays
        n = len(yt)
        steps_per_epoch = max(1, (n + batch_size - 1) // batch_size)
    elif isinstance(x, DataLoader):
        loader = x  # ready-made by the user: its batch size and order stand
        steps_per_epoch = max(1, len(loader))
    else:
        loader = DataLoader(x, batch_size=batch_size, sampler=RandomSampler(x, generator=gen), generator=gen)
        steps_per_epoch = max(1, len(loader))
    total_steps = (
        max(1, int(round(epochs * n / batch_size)))
        if arrays is not None
        else max(1, int(round(epochs * steps_per_epoch)))
    )
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, not {lr_schedule!r}")
    schedule = None
    if lr_schedule == "cosine":
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    with _weights_channels_last(model, channels_last):
        model.train()
        step = 0
        epoch = 0
        while step < total_steps:
            if arrays is not None:
                perm = torch.randperm(n, generator=gen)
                batches: Any = ((xt[idx], yt[idx]) for idx in perm.split(batch_size))
            else:
                batches = (split_batch(batch) for batch in iterate(loader))
            running = 0.0
            for xb, yb in batches:
                if step >= total_steps:
                    break
                if on_step:
                    on_step(step)
                opt.zero_grad(set_to_none=True)
                xb = augment(xb, gen) if augment else xb
                loss = loss_fn(model(xb), yb, xb)
                loss.backward()
                opt.step()
                if schedule is not None:
                    schedule.step()
                if after_step:
                    after_step(step)
                running += float(loss.detach())
                step += 1
            epoch += 1
            if on_epoch:
                on_epoch(epoch, running / steps_per_epoch)
    model.eval()
    return step


@contextmanager
def _weights_channels_last(model: nn.Module, wanted: bool) -> Iterator[None]:
    """A CNN's weights in NHWC order for the block, then back to the usual order (in place: optimizers
    keep their parameters)."""
    if not wanted or not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        yield
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)


@torch.no_grad()
def predict(model: nn.Module, x: Inputs, batch_size: int = 1000) -> np.ndarray:
    """Logits for x (arrays, a Dataset or a DataLoader, in order) as a numpy array (model in eval mode)."""
    model.eval()
    return torch.cat([model(xb) for xb, _ in ordered_batches(x, batch_size)]).numpy()


@torch.no_grad()
def accuracy(model: nn.Module, x: Inputs, y: np.ndarray | torch.Tensor | None = None) -> float:
    """Top-1 accuracy in [0, 1] (labels from `y`, or from the Dataset/DataLoader's batches)."""
    model.eval()
    correct = total = 0
    for xb, yb in ordered_batches(x, 1000, y):
        correct += int((model(xb).argmax(dim=1) == yb).sum())
        total += len(yb)
    return correct / total if total else float("nan")


def ordered_batches(
    x: Inputs, batch_size: int, y: np.ndarray | torch.Tensor | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    from edgedeploy.data.sources import iterate

    if not isinstance(x, Dataset | DataLoader):
        xt = torch.as_tensor(x, dtype=torch.float32)
        yt = (
            torch.full((len(xt),), -1, dtype=torch.long)
            if y is None
            else torch.as_tensor(y, dtype=torch.long)
        )
        for i in range(0, len(xt), batch_size):
            yield xt[i : i + batch_size], yt[i : i + batch_size]
        return
    arrays = _arrays(x, None)
    if arrays is not None:
        yield from ordered_batches(arrays[0], batch_size, arrays[1])
        return
    loader = x if isinstance(x, DataLoader) else DataLoader(x, batch_size=batch_size)
    for batch in iterate(loader):
        yield split_batch(batch)
