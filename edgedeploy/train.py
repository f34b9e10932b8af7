"""Small, deterministic training and evaluation loops shared by compression stages and benchmarks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""loss(logits, labels, inputs) -> scalar; the inputs let distillation run its teacher."""

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""augment(batch, generator) -> batch, e.g. edgedeploy.data.augment.shift_augment(2)."""


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, _inputs: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits, labels)


def train(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
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
) -> int:
    """Train in place with Adam (unless given an optimizer); returns the number of steps taken.

    `epochs` may be fractional (e.g. 0.5 of an epoch). `on_step(step)` runs before each optimizer step
    (pruning schedules update masks there) and `after_step(step)` after it (to re-apply masks or
    cluster constraints that the update broke). `augment` transforms each batch (drawing from the
    run's seeded generator) before the model and `loss_fn` see it, so a distillation teacher scores the
    same augmented inputs as the student.
    """
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    n = len(yt)
    gen = torch.Generator().manual_seed(seed)
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    total_steps = max(1, int(round(epochs * n / batch_size)))
    steps_per_epoch = max(1, (n + batch_size - 1) // batch_size)
    model.train()
    step = 0
    epoch = 0
    while step < total_steps:
        perm = torch.randperm(n, generator=gen)
        running = 0.0
        for start in range(0, n, batch_size):
            if step >= total_steps:
                break
            idx = perm[start : start + batch_size]
            if on_step:
                on_step(step)
            opt.zero_grad(set_to_none=True)
            xb = augment(xt[idx], gen) if augment else xt[idx]
            loss = loss_fn(model(xb), yt[idx], xb)
            loss.backward()
            opt.step()
            if after_step:
                after_step(step)
            running += float(loss.detach())
            step += 1
        epoch += 1
        if on_epoch:
            on_epoch(epoch, running / steps_per_epoch)
    model.eval()
    return step


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray | torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """Logits for x as a numpy array (model in eval mode)."""
    model.eval()
    xt = torch.as_tensor(x, dtype=torch.float32)
    outs = [model(xt[i : i + batch_size]) for i in range(0, len(xt), batch_size)]
    return torch.cat(outs).numpy()


def accuracy(model: nn.Module, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1]."""
    pred = predict(model, x).argmax(axis=1)
    return float((pred == np.asarray(y)).mean())
