"""Fine-tuning under the constraints of earlier stages, shared by every stage that trains."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader

from edgedeploy.compress.stage import StageContext
from edgedeploy.errors import UsageError
from edgedeploy.train import Augment, LossFn, cross_entropy, train


def fine_tune(
    model: nn.Module,
    ctx: StageContext,
    *,
    label: str,
    epochs: float,
    lr: float,
    loss_fn: LossFn | None = None,
    weight_decay: float = 0.0,
    seed_offset: int = 0,
    on_step: Callable[[int], None] | None = None,
    augment: Augment | None = None,
    lr_schedule: str = "constant",
    channels_last: bool = False,
) -> int:
    """Train `model` on the training data while keeping masks and clusters; returns steps taken.

    The loss is `loss_fn`, else the one an earlier stage carried forward (ctx.loss_fn), else
    cross-entropy on the labels. `channels_last` (faster CNN training on CPU, see `train`) is honoured
    only for a model with no masks, clusters or parametrizations, which index weights as laid out."""
    if epochs <= 0:
        return 0
    data = ctx.data
    loss = loss_fn or ctx.loss_fn
    if loss is None and not data.labelled:
        raise UsageError(
            f"{label}: the data has no labels to fine-tune on; put a distill stage with alpha: 1 and "
            "carry: true before this stage, or give labelled data"
        )

    def after_step(_step: int) -> None:
        ctx.constraints.enforce(model)

    def on_epoch(epoch: int, loss: float) -> None:
        ctx.progress(f"{label}: epoch {epoch} loss {loss:.4f}")

    with ctx.constraints.training(model):
        steps = train(
            model,
            data.training_data(ctx.seed + seed_offset),
            epochs=epochs,
            batch_size=data.batch_size,
            lr=lr,
            weight_decay=weight_decay,
            seed=ctx.seed + seed_offset,
            loss_fn=loss or cross_entropy,
            on_step=on_step,
            after_step=after_step,
            on_epoch=on_epoch,
            augment=augment,
            lr_schedule=lr_schedule,
            channels_last=channels_last and not ctx.constraints and not _parametrized(model),
        )
    ctx.constraints.enforce(model)
    return steps


def _parametrized(model: nn.Module) -> bool:
    return any(parametrize.is_parametrized(m) for m in model.modules())


def steps_for(ctx: StageContext, epochs: float) -> int:
    """Optimizer steps that `train` takes for `epochs` over the training data."""
    train = ctx.data.training_data(ctx.seed)
    if isinstance(train, DataLoader):  # as `train` counts: whole batches per epoch
        return max(1, int(round(epochs * len(train))))
    return max(1, int(round(epochs * ctx.data.train_samples / ctx.data.batch_size)))
