"""What a model holds: parameters, non-zeros, unique values and MACs per weight layer."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from edgedeploy.compress.layers import weight_layers


@dataclass
class LayerStats:
    name: str
    kind: str
    shape: list[int]
    params: int
    nonzeros: int
    unique: int
    macs: int
    """Multiply-accumulates of one sample through the dense layer."""
    nonzero_macs: int
    """MACs that a sparse kernel would still do (zero weights skipped)."""

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzeros / self.params if self.params else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sparsity": round(self.sparsity, 4)}


@dataclass
class ModelStats:
    params: int
    nonzeros: int
    macs: int
    nonzero_macs: int
    layers: list[LayerStats]

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "nonzeros": self.nonzeros,
            "macs": self.macs,
            "nonzero_macs": self.nonzero_macs,
            "layers": [layer.to_dict() for layer in self.layers],
        }


@torch.no_grad()
def model_stats(model: nn.Module, example: torch.Tensor) -> ModelStats:
    """Count per layer; MACs come from one forward pass of `example` (one sample) with hooks."""
    layers = weight_layers(model)
    positions: dict[str, int] = {}
    handles = [
        layer.register_forward_hook(_count_positions(positions, name)) for name, layer in layers.items()
    ]
    was_training = model.training
    model.eval()
    try:
        model(example[:1])
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    rows = []
    for name, layer in layers.items():
        weight = layer.weight.detach()
        per_output = weight[0].numel()  # MACs for one output element (dense)
        out_positions = positions.get(name, 0)
        nonzeros = int(torch.count_nonzero(weight))
        rows.append(
            LayerStats(
                name=name,
                kind=type(layer).__name__,
                shape=list(weight.shape),
                params=weight.numel(),
                nonzeros=nonzeros,
                unique=int(torch.unique(weight).numel()),
                macs=out_positions * weight.shape[0] * per_output,
                nonzero_macs=out_positions * nonzeros,
            )
        )
    params = sum(p.numel() for p in model.parameters())
    nonzeros = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    return ModelStats(
        params=params,
        nonzeros=nonzeros,
        macs=sum(r.macs for r in rows),
        nonzero_macs=sum(r.nonzero_macs for r in rows),
        layers=rows,
    )


def _count_positions(positions: dict[str, int], name: str):  # noqa: ANN202 - torch hook signature
    """Spatial output positions per sample (1 for Linear, H*W for Conv2d)."""

    def hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        channels = output.shape[-1] if isinstance(module, nn.Linear) else output.shape[1]
        positions[name] = output[0].numel() // channels

    return hook
