"""Shared by the benchmark scripts: MNIST and Fashion-MNIST arrays, the CNN benchmarks' models, and
baseline training with a decayed learning rate."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgedeploy.data.augment import shift_images
from edgedeploy.data.mnist import load_mnist
from edgedeploy.train import train

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# The Fashion-MNIST CNNs of bench/cnn_compression.py and bench/tune.py: factory keyword arguments per
# model (1 input channel, 10 classes, stride-2 stem). Baseline epochs per model are in cnn_compression's
# `config` (MobileNetV2's depthwise layers train ~3x slower per image on this CPU than ResNet-20's, at
# fewer MACs).
MODELS: dict[str, dict[str, Any]] = {
    "mobilenetv2": {"width_mult": 0.5, "stem_stride": 2},
    "resnet20": {"width_mult": 1.0, "stem_stride": 2},
}


def mnist(train_samples: int | None, test_samples: int | None, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(train_x, train_y, test_x, test_y); the test set is the full 10k unless test_samples is set."""
    train_split, test_split = load_mnist()
    tr, te = train_split.subset(train_samples, seed), test_split.subset(test_samples, seed)
    return tr.as_float(), tr.labels, te.as_float(), te.labels


def fashion_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Debian's dataset-fashion-mnist (IDX gz): float32 [N, 1, 28, 28] in [0, 1] and int64 labels."""

    def read(name: str, offset: int) -> np.ndarray:
        path = FASHION_MNIST / name
        if not path.exists():
            sys.exit(f"error: {path} not found: apt-get install dataset-fashion-mnist")
        return np.frombuffer(gzip.decompress(path.read_bytes()), dtype=np.uint8, offset=offset)

    def images(name: str) -> np.ndarray:
        return (read(name, 16).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0).copy()

    return (
        images("train-images-idx3-ubyte.gz"),
        read("train-labels-idx1-ubyte.gz", 8).astype(np.int64),
        images("t10k-images-idx3-ubyte.gz"),
        read("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64),
    )


def train_baseline(
    model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: float, seed: int, lr: float = 1e-3
) -> None:
    """Adam; the learning rate drops to 1/3 after 60% and to 1/10 after 85% of the epochs."""
    for index, (share, phase_lr) in enumerate([(0.6, lr), (0.25, lr / 3), (0.15, lr / 10)]):
        train(model, x, y, epochs=epochs * share, lr=phase_lr, seed=seed + index)


def jittered(
    x: np.ndarray, y: np.ndarray, copies: int, seed: int, max_shift: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """x plus `copies` copies shifted by up to `max_shift` pixels each way (Hinton's teacher jitter),
    made once up front by the training loop's own shift (edgedeploy.data.augment.shift_images). The
    offsets come from NumPy's generator seeded with `seed`, as in the runs saved under bench/results/,
    so those runs' training sets are reproduced image for image."""
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(x)
    shifted = []
    for _ in range(copies):
        dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, len(x)))
        shifted.append(shift_images(images, torch.from_numpy(dy), torch.from_numpy(dx), max_shift).numpy())
    return np.concatenate([x, *shifted]), np.concatenate([y] * (copies + 1))
