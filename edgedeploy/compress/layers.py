"""Which modules hold compressible weights, and where their trainable weight tensor lives."""

from __future__ import annotations

from torch import nn

WEIGHT_LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Linear and convolution layers by qualified name, in module order."""
    return {name: mod for name, mod in model.named_modules() if isinstance(mod, WEIGHT_LAYER_TYPES)}


def latent_weight(layer: nn.Module) -> nn.Parameter:
    """The parameter the optimizer updates: the original under a parametrization (QAT), else `weight`."""
    parametrizations = getattr(layer, "parametrizations", None)
    if parametrizations is not None and "weight" in parametrizations:
        return parametrizations["weight"].original
    return layer.weight


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put `new` where the submodule `name` was (structured pruning and low-rank change layer types)."""
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)
