"""Batch augmentation applied inside the training loop, so every epoch sees fresh variations."""

from __future__ import annotations

import torch
from torch import nn

from edgedeploy.train import Augment


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of an [N, C, H, W] batch translated by its own random (dy, dx) in [-max_shift, max_shift].

    Pixels shifted in are zero (the MNIST background), as in Hinton et al.'s "jittered by up to two
    pixels in any direction".
    """
    if max_shift <= 0:
        return x
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, len(x)), generator=generator)
    return shift_images(x, dy, dx, max_shift)


def shift_images(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Image i of an [N, C, H, W] batch translated by (dy[i] - max_shift, dx[i] - max_shift) pixels, each
    offset in [0, 2 * max_shift]; zeros shifted in. random_shift draws the offsets; a caller with its
    own random stream (the benches' jittered copies, drawn by NumPy as in their saved runs) passes them."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (max_shift, max_shift, max_shift, max_shift))
    dy, dx = dy.long(), dx.long()
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    batch = torch.arange(n)[:, None, None, None]
    channels = torch.arange(x.shape[1])[None, :, None, None]
    return padded[batch, channels, rows, cols]


def shift_augment(max_shift: int) -> Augment:
    """For `train(augment=...)`: shift every batch by up to `max_shift` pixels."""
    return lambda x, generator: random_shift(x, max_shift, generator)
