"""Unstructured magnitude pruning with a gradual polynomial sparsity schedule (Zhu & Gupta 2017).

Sparsity rises from `initial_sparsity` to `sparsity` between `begin_step` and `end_step` as
s(t) = s_f + (s_i - s_f) * (1 - (t - t0) / (t1 - t0)) ** power, updated every `frequency` steps while
the model fine-tunes, so it can recover between pruning steps. `scope: global` ranks all weights of
all layers together (small layers keep more), `scope: layer` prunes each layer to the same level;
`layer_sparsity` overrides the target of named layers in either scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from edgedeploy.compress.layers import latent_weight, weight_layers
from edgedeploy.compress.stage import Stage, StageContext, require
from edgedeploy.compress.tuning import fine_tune, steps_for

# A layer with at least this share of its weights removed is reported as emptied (see apply).
EMPTIED = 0.99


@dataclass
class PruneStage(Stage):
    name: ClassVar[str] = "prune"
    sparsity: float = 0.9
    initial_sparsity: float = 0.0
    scope: str = "global"
    layer_sparsity: dict = field(default_factory=dict)
    layers: list | None = None
    """Names of the layers to prune (default: every Linear/Conv layer)."""
    epochs: float = 3.0
    lr: float = 1e-3
    weight_decay: float = 0.0
    begin_step: int = 0
    end_step: int | None = None
    """Default: two thirds of the training steps, leaving the rest to recover at full sparsity."""
    frequency: int | None = None
    """Default: 20 mask updates over the schedule."""
    power: float = 3.0

    def check(self) -> None:
        for value in [self.sparsity, self.initial_sparsity, *self.layer_sparsity.values()]:
            require(
                isinstance(value, int | float) and 0 <= value < 1,
                self.name,
                f"sparsity {value!r} is outside [0, 1)",
            )
        require(self.initial_sparsity <= self.sparsity, self.name, "initial_sparsity is above sparsity")
        require(
            self.scope in ("global", "layer"), self.name, f"scope must be global or layer, got {self.scope!r}"
        )
        require(self.epochs >= 0 and self.lr > 0, self.name, "epochs must be >= 0 and lr > 0")
        require(self.begin_step >= 0, self.name, "begin_step must be >= 0")
        require(
            self.end_step is None or self.end_step > self.begin_step,
            self.name,
            "end_step must be > begin_step",
        )
        require(self.frequency is None or self.frequency >= 1, self.name, "frequency must be >= 1")
        require(self.power > 0, self.name, "power must be > 0")

    def apply(self, model: nn.Module, ctx: StageContext) -> nn.Module:
        layers = select_layers(model, self.layers, self.name)
        unknown = sorted(set(self.layer_sparsity) - set(layers))
        require(not unknown, self.name, f"layer_sparsity names unknown layers: {', '.join(unknown)}")
        total = steps_for(ctx, self.epochs)
        end = self.end_step if self.end_step is not None else max(self.begin_step + 1, (2 * total) // 3)
        every = self.frequency or max(1, (end - self.begin_step) // 20)
        masks = ctx.constraints.masks
        for name, layer in layers.items():
            masks.setdefault(name, latent_weight(layer).detach() != 0)

        def progress_at(step: int) -> float:
            return min(1.0, max(0.0, (step - self.begin_step) / (end - self.begin_step)))

        def on_step(step: int) -> None:
            if self.begin_step <= step <= end and ((step - self.begin_step) % every == 0 or step == end):
                self.update_masks(layers, masks, progress_at(step))

        if self.epochs > 0:
            fine_tune(
                model,
                ctx,
                label="prune",
                epochs=self.epochs,
                lr=self.lr,
                weight_decay=self.weight_decay,
                on_step=on_step,
            )
        # The schedule may end after training does (few samples): land on the final sparsity exactly.
        self.update_masks(layers, masks, 1.0)
        ctx.constraints.enforce(model)
        reached = {name: 1 - float(masks[name].float().mean()) for name in layers}
        ctx.notes.update(
            schedule={"steps": total, "begin_step": self.begin_step, "end_step": end, "frequency": every},
            layer_sparsity={name: round(value, 4) for name, value in reached.items()},
        )
        # A global ranking compares magnitudes across layers; behind BatchNorm a layer's weight scale
        # says nothing about its importance, so one layer can lose (nearly) all of its weights and cut
        # the network (MobileNetV2 at 90% global fell to chance). Said, not silently kept.
        emptied = [
            name
            for name, value in reached.items()
            if value >= EMPTIED and self.layer_sparsity.get(name, self.sparsity) < EMPTIED
        ]
        if emptied:
            ctx.notes["emptied_layers"] = emptied
        return model

    def target(self, name: str, progress: float) -> float:
        final = self.layer_sparsity.get(name, self.sparsity)
        return final + (self.initial_sparsity - final) * (1 - progress) ** self.power

    @torch.no_grad()
    def update_masks(
        self, layers: dict[str, nn.Module], masks: dict[str, torch.Tensor], progress: float
    ) -> None:
        """Recompute masks in place (the gradient hooks hold references to them)."""
        magnitudes = {name: latent_weight(layer).detach().abs() for name, layer in layers.items()}
        pooled = [name for name in layers if self.scope == "global" and name not in self.layer_sparsity]
        for name in layers:
            if name not in pooled:
                masks[name].copy_(keep_largest(magnitudes[name], self.target(name, progress)))
        if pooled:
            flat = torch.cat([magnitudes[name].flatten() for name in pooled])
            keep = keep_largest(flat, self.target(pooled[0], progress))
            for name, chunk in zip(pooled, keep.split([magnitudes[n].numel() for n in pooled]), strict=True):
                masks[name].copy_(chunk.view_as(magnitudes[name]))


def keep_largest(magnitudes: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Bool mask keeping the round((1 - sparsity) * n) largest entries (at least one)."""
    flat = magnitudes.flatten()
    n_keep = max(1, int(round((1 - sparsity) * flat.numel())))
    mask = torch.zeros(flat.numel(), dtype=torch.bool)
    mask[torch.topk(flat, n_keep, sorted=False).indices] = True
    return mask.view_as(magnitudes)


def select_layers(model: nn.Module, names: list | None, stage: str) -> dict[str, nn.Module]:
    layers = weight_layers(model)
    require(bool(layers), stage, "the model has no Linear or Conv layers")
    if names is None:
        return layers
    unknown = sorted(set(map(str, names)) - set(layers))
    require(not unknown, stage, f"unknown layer(s) {', '.join(unknown)} (layers: {', '.join(layers)})")
    return {name: layers[name] for name in names}
