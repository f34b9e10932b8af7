"""Shared by the benchmark scripts: MNIST arrays and baseline training with a decayed learning rate."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from torch import nn

# Run from a checkout without installing: the repository's package comes first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgedeploy.data.mnist import load_mnist  # noqa: E402
from edgedeploy.train import train  # noqa: E402


def mnist(train_samples: int | None, test_samples: int | None, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(train_x, train_y, test_x, test_y); the test set is the full 10k unless test_samples is set."""
    train_split, test_split = load_mnist()
    tr, te = train_split.subset(train_samples, seed), test_split.subset(test_samples, seed)
    return tr.as_float(), tr.labels, te.as_float(), te.labels


def train_baseline(
    model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: float, seed: int, lr: float = 1e-3
) -> None:
    """Adam; the learning rate drops to 1/3 after 60% and to 1/10 after 85% of the epochs."""
    for index, (share, phase_lr) in enumerate([(0.6, lr), (0.25, lr / 3), (0.15, lr / 10)]):
        train(model, x, y, epochs=epochs * share, lr=phase_lr, seed=seed + index)


def jittered(
    x: np.ndarray, y: np.ndarray, copies: int, seed: int, max_shift: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """x plus `copies` copies shifted by up to `max_shift` pixels each way (Hinton's teacher jitter)."""
    rng = np.random.default_rng(seed)
    n, _, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    xs, ys = [x], [y]
    for _ in range(copies):
        dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
        out = np.empty_like(x)
        for oy in range(2 * max_shift + 1):
            for ox in range(2 * max_shift + 1):
                idx = np.flatnonzero((dy == oy) & (dx == ox))
                out[idx] = padded[idx, :, oy : oy + h, ox : ox + w]
        xs.append(out)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)
