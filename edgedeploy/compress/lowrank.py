"""Low-rank factorization: replace a layer by two thinner ones from a truncated SVD, then fine-tune.

Linear (out x in) -> Linear(in -> r) then Linear(r -> out). Conv2d, `conv_mode: channel`: the weight
as an (out) x (in*kh*kw) matrix -> a kh x kw conv to r channels then a 1x1 conv; `conv_mode: spatial`
(Jaderberg et al. 2014): the weight as an (in*kh) x (out*kw) matrix -> a kh x 1 conv to r channels then
a 1 x kw conv. The rank keeps `energy` of the squared singular values, or fits `budget` (a fraction
of the layer's weights). A layer is factorized only when that makes it smaller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from edgedeploy.compress.layers import replace_module
from edgedeploy.compress.prune import select_layers
from edgedeploy.compress.stage import Stage, StageContext, require
from edgedeploy.compress.tuning import fine_tune


@dataclass
class LowRankStage(Stage):
    name: ClassVar[str] = "lowrank"
    energy: float | None = 0.9
    budget: float | None = None
    conv_mode: str = "channel"
    layers: list | None = None
    epochs: float = 1.0
    lr: float = 5e-4

    def check(self) -> None:
        if self.budget is not None:
            self.energy = None
        require(self.energy is not None or self.budget is not None, self.name, "set energy or budget")
        require(
            self.energy is None or 0 < self.energy <= 1, self.name, f"energy {self.energy} is outside (0, 1]"
        )
        require(
            self.budget is None or 0 < self.budget < 1, self.name, f"budget {self.budget} is outside (0, 1)"
        )
        require(self.conv_mode in ("channel", "spatial"), self.name, "conv_mode must be channel or spatial")
        require(self.epochs >= 0 and self.lr > 0, self.name, "epochs must be >= 0 and lr > 0")

    def apply(self, model: nn.Module, ctx: StageContext) -> nn.Module:
        require(not ctx.constraints, self.name, "must come before prune, cluster, qat (it replaces layers)")
        ranks: dict[str, Any] = {}
        for name, layer in select_layers(model, self.layers, self.name).items():
            if isinstance(layer, nn.Linear) or (isinstance(layer, nn.Conv2d) and layer.groups == 1):
                factorized = self.factorize(layer)
                if factorized is not None:
                    replace_module(model, name, factorized[0])
                    ranks[name] = {"rank": factorized[1], "full_rank": factorized[2]}
        fine_tune(model, ctx, label="lowrank", epochs=self.epochs, lr=self.lr)
        ctx.notes["ranks"] = ranks
        return model

    @torch.no_grad()
    def factorize(self, layer: nn.Module) -> tuple[nn.Module, int, int] | None:
        weight = layer.weight.detach()
        spatial = isinstance(layer, nn.Conv2d) and self.conv_mode == "spatial"
        if spatial:
            out_c, in_c, kh, kw = weight.shape
            matrix = weight.permute(1, 2, 0, 3).reshape(in_c * kh, out_c * kw)
        else:
            matrix = weight.flatten(1)
        u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
        rank = self.rank(s, matrix.shape)
        if rank * sum(matrix.shape) >= weight.numel():
            return None
        root = s[:rank].sqrt()
        left, right = u[:, :rank] * root, root[:, None] * vh[:rank]  # matrix ~ left @ right
        bias = layer.bias is not None
        if isinstance(layer, nn.Linear):
            first, second = (
                nn.Linear(layer.in_features, rank, bias=False),
                nn.Linear(rank, layer.out_features, bias=bias),
            )
            first.weight.copy_(right)
            second.weight.copy_(left)
        elif spatial:
            first = nn.Conv2d(
                in_c, rank, (kh, 1), stride=(layer.stride[0], 1), padding=(layer.padding[0], 0), bias=False
            )
            second = nn.Conv2d(
                rank, out_c, (1, kw), stride=(1, layer.stride[1]), padding=(0, layer.padding[1]), bias=bias
            )
            first.weight.copy_(left.T.reshape(rank, in_c, kh, 1))
            second.weight.copy_(right.reshape(rank, out_c, 1, kw).permute(1, 0, 2, 3))
        else:
            first = nn.Conv2d(
                layer.in_channels,
                rank,
                layer.kernel_size,
                stride=layer.stride,
                padding=layer.padding,
                dilation=layer.dilation,
                bias=False,
            )
            second = nn.Conv2d(rank, layer.out_channels, 1, bias=bias)
            first.weight.copy_(right.reshape(rank, *weight.shape[1:]))
            second.weight.copy_(left[:, :, None, None])
        if bias:
            second.bias.copy_(layer.bias.detach())
        return nn.Sequential(first, second), rank, min(matrix.shape)

    def rank(self, singular: torch.Tensor, shape: tuple[int, ...]) -> int:
        if self.budget is not None:
            return max(1, int(self.budget * shape[0] * shape[1] / sum(shape)))
        energy = torch.cumsum(singular**2, 0) / (singular**2).sum()
        return int(torch.searchsorted(energy, torch.tensor(self.energy * (1 - 1e-6)))) + 1
