"""Fold BatchNorm into the convolution (or Linear) that feeds it, as every exporter does at deploy time.

Quantizing the weights before folding is wasted work: the exporter then multiplies each output channel
by gamma / sqrt(var + eps), so the int8 grid (and any shared-value codebook) seen in training is not the
one in the file. Folding first makes the trained, quantized weights the deployed ones.
"""

from __future__ import annotations

import torch
from torch import nn

from edgedeploy.compress.layers import replace_module

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)


def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(layer, batch norm) names where the layer's output is read only by the batch norm (torch.fx)."""
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - an untraceable model has no pairs we can prove
        return []
    modules = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), BATCH_NORMS):
            continue
        source = node.args[0] if node.args else None
        if (
            isinstance(source, torch.fx.Node)
            and source.op == "call_module"
            and isinstance(modules.get(source.target), FOLDABLE)
            and len(source.users) == 1
        ):
            pairs.append((str(source.target), str(node.target)))
    return pairs


@torch.no_grad()
def fold_batch_norms(model: nn.Module, keep: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Fold each foldable BatchNorm into its producer (in place, BN becomes Identity); returns the names.

    Layers named in `keep` are left alone (clustered: per-channel scaling would break the codebook)."""
    folded = []
    for layer_name, norm_name in conv_bn_pairs(model):
        if layer_name in keep:
            continue
        layer, norm = model.get_submodule(layer_name), model.get_submodule(norm_name)
        if not norm.track_running_stats or norm.running_var is None:
            continue
        scale = (
            norm.weight / torch.sqrt(norm.running_var + norm.eps)
            if norm.affine
            else 1 / torch.sqrt(norm.running_var + norm.eps)
        )
        shift = norm.bias if norm.affine else torch.zeros_like(norm.running_mean)
        bias = layer.bias if layer.bias is not None else torch.zeros_like(norm.running_mean)
        shape = (-1,) + (1,) * (layer.weight.dim() - 1)
        layer.weight.mul_(scale.reshape(shape))
        new_bias = (bias - norm.running_mean) * scale + shift
        if layer.bias is None:
            layer.bias = nn.Parameter(new_bias.clone())
        else:
            layer.bias.copy_(new_bias)
        replace_module(model, norm_name, nn.Identity())
        folded.append(norm_name)
    return folded
