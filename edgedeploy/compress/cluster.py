"""Weight clustering (Deep Compression's weight sharing): per-layer 1-D k-means, then centroid tuning.

Centroid initialisation: `forgy` (k random weights), `density` (equal steps on the weights' CDF),
`linear` (equally spaced between min and max; Deep Compression found it best, as it keeps the rare
large weights) or `kmeans++`. With `preserve_sparsity` the pruned zeros are left out of clustering and
stay zero. Fine-tuning sums the gradients of each cluster's members, so every member moves together
and the layer keeps exactly k distinct non-zero values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from edgedeploy.compress.bnfold import NORMS, fold_batchnorm
from edgedeploy.compress.constraints import ClusterIndex
from edgedeploy.compress.layers import latent_weight
from edgedeploy.compress.prune import select_layers
from edgedeploy.compress.stage import Stage, StageContext, require
from edgedeploy.compress.tuning import fine_tune

INITS = ("forgy", "density", "linear", "kmeans++")


@dataclass
class ClusterStage(Stage):
    name: ClassVar[str] = "cluster"
    clusters: int = 32
    layer_clusters: dict = field(default_factory=dict)
    """Per-layer k overriding `clusters` (e.g. fewer for the big layer)."""
    init: str = "linear"
    iterations: int = 30
    preserve_sparsity: bool = True
    layers: list | None = None
    epochs: float = 1.0
    lr: float = 1e-4
    fold_batchnorm: bool = True
    """Fold each conv's BatchNorm into it first, so the shared values are the ones export keeps."""

    def check(self) -> None:
        for k in [self.clusters, *self.layer_clusters.values()]:
            require(
                isinstance(k, int) and not isinstance(k, bool) and k >= 2,
                self.name,
                f"clusters must be an integer >= 2, got {k!r}",
            )
        require(self.init in INITS, self.name, f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        require(self.iterations >= 1, self.name, "iterations must be >= 1")
        require(self.epochs >= 0 and self.lr > 0, self.name, "epochs must be >= 0 and lr > 0")

    def apply(self, model: nn.Module, ctx: StageContext) -> nn.Module:
        if self.fold_batchnorm and any(isinstance(m, NORMS) for m in model.modules()):
            folded = fold_batchnorm(model)
            ctx.notes["folded_batchnorm"] = (
                folded
                if folded is not None
                else "not folded: torch.fx cannot trace the model; an exporter folding BatchNorm "
                "will scale the shared values per channel (see the survival check)"
            )
        layers = select_layers(model, self.layers, self.name)
        unknown = sorted(set(self.layer_clusters) - set(layers))
        require(not unknown, self.name, f"layer_clusters names unknown layers: {', '.join(unknown)}")
        gen = torch.Generator().manual_seed(ctx.seed)
        details = {}
        for name, layer in layers.items():
            weight = latent_weight(layer)
            k = self.layer_clusters.get(name, self.clusters)
            with torch.no_grad():
                flat = weight.detach().flatten()
                members = flat != 0 if self.preserve_sparsity else torch.ones_like(flat, dtype=torch.bool)
                centroids, member_labels = kmeans_1d(flat[members], k, self.init, self.iterations, gen)
                labels = torch.full_like(flat, -1, dtype=torch.long)
                labels[members] = member_labels
                labels = labels.view_as(weight)
                weight.copy_(ClusterIndex.of(labels).broadcast(centroids))
            ctx.constraints.clusters[name] = labels
            if not self.preserve_sparsity:
                ctx.constraints.masks.pop(name, None)
            details[name] = {"k": k, "init": self.init}
        fine_tune(model, ctx, label="cluster", epochs=self.epochs, lr=self.lr)
        ctx.notes["layers"] = details
        return model


def kmeans_1d(
    values: torch.Tensor, k: int, init: str, iterations: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(centroids, label per value) of Lloyd's k-means on scalars. Fewer distinct values than k:
    each distinct value is its own centroid."""
    distinct = torch.unique(values)
    if distinct.numel() <= k:
        return distinct, torch.searchsorted(distinct, values)
    centroids = initial_centroids(values, k, init, gen).sort().values
    labels = assign(values, centroids)
    for _ in range(iterations):
        sums = torch.zeros(k, dtype=values.dtype).index_add_(0, labels, values)
        counts = torch.bincount(labels, minlength=k).to(values.dtype)
        # An empty cluster keeps its centroid rather than collapsing to 0.
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids).sort().values
        new_labels = assign(values, centroids)
        if torch.equal(new_labels, labels):
            break
        labels = new_labels
    return centroids, labels


def assign(values: torch.Tensor, sorted_centroids: torch.Tensor) -> torch.Tensor:
    """Nearest centroid in 1-D: bucket by the midpoints between sorted centroids."""
    midpoints = (sorted_centroids[1:] + sorted_centroids[:-1]) / 2
    return torch.bucketize(values, midpoints)


def initial_centroids(values: torch.Tensor, k: int, init: str, gen: torch.Generator) -> torch.Tensor:
    if init == "forgy":
        return values[torch.randperm(values.numel(), generator=gen)[:k]].clone()
    if init == "linear":
        return torch.linspace(float(values.min()), float(values.max()), k)
    if init == "density":
        ordered = values.sort().values
        quantiles = (torch.arange(k, dtype=torch.float64) + 0.5) / k
        return ordered[(quantiles * (ordered.numel() - 1)).round().long()].clone()
    return kmeans_plus_plus(values, k, gen)


def kmeans_plus_plus(values: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """Arthur & Vassilvitskii 2007: each next centroid drawn with probability ~ squared distance."""
    sample = values[torch.randperm(values.numel(), generator=gen)[:20000]]
    centroids = [sample[torch.randint(sample.numel(), (1,), generator=gen)]]
    dist = (sample - centroids[0]) ** 2
    for _ in range(k - 1):
        pick = torch.multinomial(dist + 1e-12, 1, generator=gen)
        centroids.append(sample[pick])
        dist = torch.minimum(dist, (sample - sample[pick]) ** 2)
    return torch.cat(centroids)
