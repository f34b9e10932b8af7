"""Knowledge distillation (Hinton, Vinyals & Dean 2015): match the teacher's softened outputs.

loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, y).
The T^2 factor keeps the soft-target gradients on the scale of the hard ones when T changes.
Teacher: `auto` (the teacher given to compress_model, else the input model), `input` (the model as
given to compress_model), `previous` (the model before this stage) or `self` (self-distillation: a
snapshot of the student taken at the start of each epoch teaches the next one).
`jitter: N` enlarges the transfer set: each batch is shifted by up to N pixels (image inputs), and the
teacher's soft targets are computed on the shifted images.
`carry: true` keeps the teacher teaching after this stage: every later stage that fine-tunes (prune,
cluster, QAT, ...) uses the same distillation loss instead of plain cross-entropy, as NNCF applies
distillation over the whole compression run, until a later distill stage without carry ends it.
`epochs: 0` with `carry: true` only sets the loss for the stages that follow (e.g. distil while pruning).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from edgedeploy.compress.stage import Stage, StageContext, require
from edgedeploy.compress.tuning import fine_tune
from edgedeploy.data.augment import shift_augment
from edgedeploy.train import LR_SCHEDULES, LossFn

TEACHERS = ("auto", "input", "previous", "given", "self")


@dataclass
class DistillStage(Stage):
    name: ClassVar[str] = "distill"
    temperature: float = 4.0
    alpha: float = 0.7
    """Weight of the soft-target term; 1 - alpha goes to the true labels."""
    teacher: str = "auto"
    epochs: float = 2.0
    lr: float = 5e-4
    jitter: int = 0
    """Shift each training batch by up to this many pixels (0: the transfer set is the data as is)."""
    carry: bool = False
    """Later stages fine-tune with this stage's distillation loss too."""
    schedule: str = "constant"
    """Learning rate over the stage: constant, or cosine (annealed to zero; for longer runs)."""

    def check(self) -> None:
        require(self.temperature > 0, self.name, "temperature must be > 0")
        require(0 <= self.alpha <= 1, self.name, f"alpha {self.alpha} is outside [0, 1]")
        require(self.teacher in TEACHERS, self.name, f"teacher must be one of {', '.join(TEACHERS)}")
        require(self.epochs >= 0 and self.lr > 0, self.name, "epochs must be >= 0 and lr > 0")
        require(self.jitter >= 0, self.name, "jitter must be >= 0 pixels")
        require(
            self.schedule in LR_SCHEDULES, self.name, f"schedule must be one of {', '.join(LR_SCHEDULES)}"
        )

    def apply(self, model: nn.Module, ctx: StageContext) -> nn.Module:
        require(
            ctx.data.labelled or self.alpha == 1,
            self.name,
            f"alpha {self.alpha} weighs in the labels, but the data is unlabelled: use alpha: 1",
        )
        augment = None
        if self.jitter:
            require(
                len(ctx.data.splits.input_shape) == 3, self.name, "jitter needs image inputs [N, C, H, W]"
            )
            augment = shift_augment(self.jitter)
            ctx.notes["transfer_set"] = f"training data shifted by up to {self.jitter} px per batch"
        if self.teacher == "self":
            # One epoch (or the remaining fraction) per teacher snapshot.
            for epoch in range(math.ceil(self.epochs)):
                teacher = frozen_copy(model)
                fine_tune(
                    model,
                    ctx,
                    label=f"distill (self, round {epoch + 1})",
                    epochs=min(1.0, self.epochs - epoch),
                    lr=self.lr,
                    loss_fn=self.loss(teacher),
                    seed_offset=epoch,
                    augment=augment,
                    channels_last=True,
                )
            ctx.notes["teacher"] = "self"
            self.carry_loss(ctx, frozen_copy(model))
            return model
        if self.teacher == "given":
            require(ctx.teacher is not None, self.name, "teacher: given, but no teacher model was given")
        use_given = self.teacher == "given" or (self.teacher == "auto" and ctx.teacher is not None)
        if use_given:
            teacher, which = ctx.teacher, "given"
        elif self.teacher == "previous":
            teacher, which = frozen_copy(model), "previous"
        else:
            teacher, which = ctx.input_model, "input"
        assert teacher is not None
        teacher.eval()
        fine_tune(
            model,
            ctx,
            label="distill",
            epochs=self.epochs,
            lr=self.lr,
            loss_fn=self.loss(teacher),
            augment=augment,
            lr_schedule=self.schedule,
            channels_last=True,
        )
        ctx.notes["teacher"] = which
        self.carry_loss(ctx, teacher)
        return model

    def carry_loss(self, ctx: StageContext, teacher: nn.Module) -> None:
        # The latest distill stage decides: without carry, later stages go back to the labels.
        ctx.loss_fn = self.loss(teacher) if self.carry else None
        if self.carry:
            ctx.notes["carried"] = "later stages fine-tune with this distillation loss"

    def loss(self, teacher: nn.Module) -> LossFn:
        return hinton_loss(teacher, self.temperature, self.alpha)


def hinton_loss(teacher: nn.Module, temperature: float, alpha: float) -> LossFn:
    def loss_fn(logits: torch.Tensor, labels: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            soft_targets = torch.softmax(teacher(inputs) / temperature, dim=1)
        soft = nn.functional.kl_div(
            torch.log_softmax(logits / temperature, dim=1), soft_targets, reduction="batchmean"
        )
        if alpha == 1:  # the teacher alone: unlabelled data (labels -1) has no hard term to add
            return temperature**2 * soft
        hard = nn.functional.cross_entropy(logits, labels)
        return alpha * temperature**2 * soft + (1 - alpha) * hard

    return loss_fn


def frozen_copy(model: nn.Module) -> nn.Module:
    teacher = copy.deepcopy(model).eval()
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher
