"""Fold BatchNorm layers into the convolution before them, in place.

Exporters fold an inference-mode BatchNorm into the preceding convolution (w' = w * gamma / sigma per
output channel), so a clustered conv with 31 shared values leaves the file with hundreds: each output
channel's values get their own scale. Folding first, and clustering the folded weights, makes the
shared values the ones the file holds. Zeros stay zeros under folding, so pruning masks still hold.

The pairs come from a torch.fx trace of the model (a conv whose output only feeds one BatchNorm,
each module called once); a model fx cannot trace is left as it is, and the caller says so.
"""

from __future__ import annotations

import torch
from torch import nn

from edgedeploy.compress.layers import latent_weight

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]] | None:
    """(conv name, batchnorm name) pairs that can be folded; None when fx cannot trace the model."""
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - data-dependent control flow and the like: no folding
        return None
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[str(node.target)] = calls.get(str(node.target), 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(str(node.target)), NORMS):
            continue
        source = node.args[0] if node.args else None
        if not isinstance(source, torch.fx.Node) or source.op != "call_module":
            continue
        conv, norm = str(source.target), str(node.target)
        if (
            isinstance(modules.get(conv), CONVS)
            and len(source.users) == 1
            and calls[conv] == calls[norm] == 1
        ):
            pairs.append((conv, norm))
    return pairs


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> list[str] | None:
    """Fold every foldable BatchNorm into its conv and replace it by nn.Identity; returns the folded
    BatchNorm names (None: the model could not be traced, nothing folded)."""
    pairs = conv_bn_pairs(model)
    if pairs is None:
        return None
    folded = []
    for conv_name, norm_name in pairs:
        conv = model.get_submodule(conv_name)
        norm = model.get_submodule(norm_name)
        if norm.running_mean is None or norm.running_var is None:
            continue  # batch statistics only: nothing fixed to fold
        scale = torch.rsqrt(norm.running_var + norm.eps)
        shift = -norm.running_mean * scale
        if norm.affine:
            scale, shift = scale * norm.weight, shift * norm.weight + norm.bias
        shape = (-1,) + (1,) * (conv.weight.dim() - 1)
        weight = latent_weight(conv)  # the stored weight, under any parametrization
        weight.mul_(scale.reshape(shape))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
        conv.bias = nn.Parameter(bias * scale + shift, requires_grad=weight.requires_grad)
        model.set_submodule(norm_name, nn.Identity())
        folded.append(norm_name)
    return folded
