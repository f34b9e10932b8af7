"""Structure that later stages must keep: pruning masks and weight-sharing clusters.

Pruning and clustering record their result here; every later training stage (distillation, QAT, more
fine-tuning) trains under these constraints, so sparsity and clusters reach the exported weights:
- gradient hooks zero the gradient of pruned weights and sum the gradient over each cluster (Deep
  Compression's centroid fine-tuning: all members of a cluster receive the same update), and
- `enforce` re-applies masks and snaps each cluster to its mean after every optimizer step (Adam's
  momentum would otherwise revive pruned weights).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from edgedeploy.compress.layers import latent_weight


@dataclass
class Constraints:
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    """Layer name -> bool tensor, True where the weight is kept."""
    clusters: dict[str, torch.Tensor] = field(default_factory=dict)
    """Layer name -> long tensor of cluster labels, -1 for weights fixed at zero."""

    def forget(self, name: str) -> None:
        self.masks.pop(name, None)
        self.clusters.pop(name, None)

    def __bool__(self) -> bool:
        return bool(self.masks or self.clusters)

    @torch.no_grad()
    def enforce(self, model: nn.Module) -> None:
        for name, mask in self.masks.items():
            latent_weight(model.get_submodule(name)).mul_(mask)
        for name, labels in self.clusters.items():
            weight = latent_weight(model.get_submodule(name))
            weight.copy_(snap_to_clusters(weight, labels))

    @contextmanager
    def training(self, model: nn.Module) -> Iterator[None]:
        """Gradient hooks for the duration of one stage's training (removed after, so copies stay clean)."""
        handles = []
        for name in set(self.masks) | set(self.clusters):
            mask = self.masks.get(name)
            labels = self.clusters.get(name)
            handles.append(latent_weight(model.get_submodule(name)).register_hook(_grad_hook(mask, labels)))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


def cluster_sums(values: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of values per cluster, member count per cluster) over labels >= 0."""
    flat_labels = labels.flatten()
    valid = flat_labels >= 0
    k = int(flat_labels.max()) + 1 if valid.any() else 0
    sums = torch.zeros(k, dtype=values.dtype).index_add_(0, flat_labels[valid], values.flatten()[valid])
    ones = torch.ones(int(valid.sum()), dtype=values.dtype)
    counts = torch.zeros(k, dtype=values.dtype).index_add_(0, flat_labels[valid], ones)
    return sums, counts


def broadcast_clusters(per_cluster: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """A tensor shaped like labels holding per_cluster[label], and 0 where label is -1."""
    flat_labels = labels.flatten()
    valid = flat_labels >= 0
    out = torch.zeros(flat_labels.shape, dtype=per_cluster.dtype)
    out[valid] = per_cluster[flat_labels[valid]]
    return out.view(labels.shape)


def snap_to_clusters(weight: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    sums, counts = cluster_sums(weight.detach(), labels)
    return broadcast_clusters(sums / counts.clamp(min=1), labels)


def _grad_hook(mask: torch.Tensor | None, labels: torch.Tensor | None):  # noqa: ANN202 - torch hook signature
    def hook(grad: torch.Tensor) -> torch.Tensor:
        if labels is not None:
            sums, _ = cluster_sums(grad, labels)
            grad = broadcast_clusters(sums, labels)
        if mask is not None:
            grad = grad * mask
        return grad

    return hook
