"""Structured pruning: remove whole neurons (Linear) and filters (Conv) and, optionally, whole layers.

Unlike masking, the pruned rows are physically cut out: the layer gets fewer outputs and the layer
that consumes them fewer inputs, so the exported model is smaller and faster on any runtime. Neurons
and filters are ranked by the L1 or L2 norm of their weights. A layer can be cut only when its output
flows to exactly one other Linear/Conv layer through element-wise operations, pooling, dropout,
batch norm (cut too) or flatten (found by tracing the model with torch.fx); the output layer is never
cut. `drop_layers` removes that many square Linear layers (in = out features), replacing each with
an identity, those whose removal costs the least accuracy first.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from edgedeploy.compress.layers import replace_module, weight_layers
from edgedeploy.compress.stage import Stage, StageContext, require
from edgedeploy.compress.tuning import fine_tune
from edgedeploy.train import accuracy

PASS_THROUGH_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardswish,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Dropout,
    nn.Flatten,
    nn.Identity,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
)
PASS_THROUGH_FUNCTIONS = {
    torch.relu,
    torch.flatten,
    torch.tanh,
    torch.sigmoid,
    nn.functional.relu,
    nn.functional.max_pool2d,
    nn.functional.avg_pool2d,
    nn.functional.dropout,
    nn.functional.gelu,
    operator.getitem,
}
PASS_THROUGH_METHODS = {"relu", "flatten", "sigmoid", "tanh"}
CUTTABLE = (nn.Linear, nn.Conv2d)


@dataclass
class Link:
    """A producer layer whose outputs are read only by `consumer`, through `batch_norms`."""

    producer: str
    consumer: str
    batch_norms: list[str]


@dataclass
class StructuredPruneStage(Stage):
    name: ClassVar[str] = "prune_structured"
    amount: float = 0.5
    """Fraction of neurons/filters removed from each cuttable layer."""
    layer_amount: dict = field(default_factory=dict)
    norm: str = "l1"
    layers: list | None = None
    drop_layers: int = 0
    epochs: float = 1.0
    lr: float = 1e-3

    def check(self) -> None:
        for value in [self.amount, *self.layer_amount.values()]:
            require(
                isinstance(value, int | float) and 0 <= value < 1,
                self.name,
                f"amount {value!r} is outside [0, 1)",
            )
        require(self.norm in ("l1", "l2"), self.name, f"norm must be l1 or l2, got {self.norm!r}")
        require(self.drop_layers >= 0, self.name, "drop_layers must be >= 0")
        require(self.epochs >= 0 and self.lr > 0, self.name, "epochs must be >= 0 and lr > 0")

    def apply(self, model: nn.Module, ctx: StageContext) -> nn.Module:
        require(
            not ctx.constraints, self.name, "must come before prune, cluster, qat (it changes layer shapes)"
        )
        dropped = self.drop_square_layers(model, ctx) if self.drop_layers else []
        links = {link.producer: link for link in find_links(model)}
        chosen = list(links) if self.layers is None else [str(n) for n in self.layers]
        uncuttable = sorted(set(chosen) - set(links))
        require(
            not uncuttable,
            self.name,
            f"cannot cut layer(s) {', '.join(uncuttable)} (cuttable: {', '.join(links)})",
        )
        cut: dict[str, Any] = {}
        for name in chosen:
            amount = self.layer_amount.get(name, self.amount)
            producer = model.get_submodule(name)
            outputs = producer.weight.shape[0]
            n_keep = max(1, int(round((1 - amount) * outputs)))
            if n_keep < outputs:
                norms = producer.weight.detach().flatten(1).norm(p=1 if self.norm == "l1" else 2, dim=1)
                keep = torch.topk(norms, n_keep).indices.sort().values
                cut_link(model, links[name], keep)
            cut[name] = {"outputs_before": outputs, "outputs_after": n_keep}
        fine_tune(model, ctx, label="prune_structured", epochs=self.epochs, lr=self.lr)
        ctx.notes.update(cut=cut, dropped_layers=dropped)
        return model

    def drop_square_layers(self, model: nn.Module, ctx: StageContext) -> list[str]:
        """Greedily replace the square Linear layers whose removal hurts accuracy least."""
        subset = ctx.data.eval_subset(2000)
        dropped = []
        for _ in range(self.drop_layers):
            candidates = [
                name
                for name, layer in weight_layers(model).items()
                if isinstance(layer, nn.Linear) and layer.in_features == layer.out_features
            ]
            if not candidates:
                break
            scores = {}
            for name in candidates:
                layer = model.get_submodule(name)
                replace_module(model, name, nn.Identity())
                scores[name] = accuracy(model, subset)
                replace_module(model, name, layer)
            best = max(scores, key=scores.__getitem__)
            replace_module(model, best, nn.Identity())
            dropped.append(best)
        return dropped


def find_links(model: nn.Module) -> list[Link]:
    """Producer -> single consumer pairs of cuttable layers, from a torch.fx trace."""
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - untraceable models simply have no cuttable layers
        return []
    modules = dict(model.named_modules())
    links = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), CUTTABLE):
            continue
        if isinstance(modules[node.target], nn.Conv2d) and modules[node.target].groups != 1:
            continue
        current, norms = node, []
        while len(current.users) == 1:
            user = next(iter(current.users))
            target = modules.get(user.target) if user.op == "call_module" else None
            if isinstance(target, CUTTABLE):
                if not (isinstance(target, nn.Conv2d) and target.groups != 1):
                    links.append(Link(node.target, user.target, norms))
                break
            passes = (
                isinstance(target, PASS_THROUGH_MODULES)
                or (user.op == "call_function" and user.target in PASS_THROUGH_FUNCTIONS)
                or (user.op == "call_method" and user.target in PASS_THROUGH_METHODS)
            )
            if not passes:
                break
            if isinstance(target, nn.BatchNorm1d | nn.BatchNorm2d):
                norms.append(user.target)
            current = user
    return links


@torch.no_grad()
def cut_link(model: nn.Module, link: Link, keep: torch.Tensor) -> None:
    producer = model.get_submodule(link.producer)
    consumer = model.get_submodule(link.consumer)
    outputs = producer.weight.shape[0]
    replace_module(model, link.producer, sliced_layer(producer, rows=keep))
    for name in link.batch_norms:
        replace_module(model, name, sliced_batch_norm(model.get_submodule(name), keep))
    if isinstance(consumer, nn.Linear):
        # After a flatten each producer channel feeds `per_channel` consecutive features.
        per_channel = consumer.in_features // outputs
        columns = (keep[:, None] * per_channel + torch.arange(per_channel)).flatten()
    else:
        columns = keep
    replace_module(model, link.consumer, sliced_layer(consumer, columns=columns))


def sliced_layer(
    layer: nn.Module, rows: torch.Tensor | None = None, columns: torch.Tensor | None = None
) -> nn.Module:
    weight = layer.weight.detach()
    if rows is not None:
        weight = weight[rows]
    if columns is not None:
        weight = weight[:, columns]
    bias = layer.bias.detach() if layer.bias is not None else None
    if bias is not None and rows is not None:
        bias = bias[rows]
    if isinstance(layer, nn.Linear):
        new: nn.Module = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    else:
        new = nn.Conv2d(
            weight.shape[1],
            weight.shape[0],
            layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            bias=bias is not None,
            padding_mode=layer.padding_mode,
        )
    new.weight.copy_(weight)
    if bias is not None:
        new.bias.copy_(bias)
    return new


def sliced_batch_norm(norm: nn.Module, keep: torch.Tensor) -> nn.Module:
    new = type(norm)(
        len(keep),
        eps=norm.eps,
        momentum=norm.momentum,
        affine=norm.affine,
        track_running_stats=norm.track_running_stats,
    )
    state = {key: value[keep] if value.dim() == 1 else value for key, value in norm.state_dict().items()}
    new.load_state_dict(state)
    return new
