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


@dataclass(frozen=True)
class ClusterIndex:
    """Where a layer's cluster members sit (computed once per labels tensor: every training step
    uses it twice, and boolean masking of the whole weight each time costs as much as the step)."""

    positions: torch.Tensor
    """Flat positions of the weights that belong to a cluster (label >= 0), in order."""
    members: torch.Tensor
    """Their cluster labels."""
    counts: torch.Tensor
    shape: torch.Size

    @classmethod
    def of(cls, labels: torch.Tensor) -> ClusterIndex:
        flat = labels.flatten()
        positions = torch.nonzero(flat >= 0).flatten()
        members = flat[positions]
        k = int(members.max()) + 1 if members.numel() else 0
        counts = torch.bincount(members, minlength=k).to(torch.float32)
        return cls(positions, members, counts, labels.shape)

    def sums(self, values: torch.Tensor) -> torch.Tensor:
        per_cluster = torch.zeros(self.counts.numel(), dtype=values.dtype)
        return per_cluster.index_add_(0, self.members, values.flatten()[self.positions])

    def broadcast(self, per_cluster: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(self.shape.numel(), dtype=per_cluster.dtype)
        out[self.positions] = per_cluster[self.members]
        return out.view(self.shape)

    def snap(self, weight: torch.Tensor) -> torch.Tensor:
        """Every member set to its cluster's mean; non-members to zero."""
        return self.broadcast(self.sums(weight.detach()) / self.counts.clamp(min=1))


@dataclass
class Constraints:
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    """Layer name -> bool tensor, True where the weight is kept."""
    clusters: dict[str, torch.Tensor] = field(default_factory=dict)
    """Layer name -> long tensor of cluster labels, -1 for weights fixed at zero."""
    _indexes: dict[str, tuple[torch.Tensor, ClusterIndex]] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        return bool(self.masks or self.clusters)

    def cluster_index(self, name: str) -> ClusterIndex:
        labels = self.clusters[name]
        cached = self._indexes.get(name)
        if cached is None or cached[0] is not labels:
            cached = (labels, ClusterIndex.of(labels))
            self._indexes[name] = cached
        return cached[1]

    @torch.no_grad()
    def enforce(self, model: nn.Module) -> None:
        for name, mask in self.masks.items():
            latent_weight(model.get_submodule(name)).mul_(mask)
        for name in self.clusters:
            weight = latent_weight(model.get_submodule(name))
            weight.copy_(self.cluster_index(name).snap(weight))

    @contextmanager
    def training(self, model: nn.Module) -> Iterator[None]:
        """Gradient hooks for the duration of one stage's training (removed after, so copies stay clean)."""
        handles = []
        for name in set(self.masks) | set(self.clusters):
            mask = self.masks.get(name)
            index = self.cluster_index(name) if name in self.clusters else None
            handles.append(latent_weight(model.get_submodule(name)).register_hook(_grad_hook(mask, index)))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


def _grad_hook(mask: torch.Tensor | None, index: ClusterIndex | None):  # noqa: ANN202 - torch hook signature
    def hook(grad: torch.Tensor) -> torch.Tensor:
        if index is not None:
            grad = index.broadcast(index.sums(grad))
        if mask is not None:
            grad = grad * mask
        return grad

    return hook
