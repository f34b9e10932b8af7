"""train()'s channels-last weights and cosine schedule, and the distill stage's `schedule` key."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgedeploy.compress.distill import DistillStage
from edgedeploy.errors import UsageError
from edgedeploy.models import zoo
from edgedeploy.train import train


def small_data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n)


def conv_net() -> torch.nn.Module:
    # No BatchNorm: train-mode BN's gradient on small maps is ill-conditioned enough that fp32 rounding
    # alone (either layout) moves it ~1%, which would hide what this test compares.
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, 1, 1, groups=8),
        torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 14 * 14, 10),
    )  # fmt: skip


def test_channels_last_training_learns_the_same_and_puts_the_layout_back() -> None:
    x, y = small_data()
    torch.manual_seed(0)
    plain, nhwc = conv_net(), conv_net()
    nhwc.load_state_dict(plain.state_dict())
    for model, channels_last in ((plain, False), (nhwc, True)):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        train(model, x, y, epochs=2, batch_size=16, seed=0, optimizer=optimizer, channels_last=channels_last)
    for name, weight in nhwc.named_parameters():
        assert weight.is_contiguous(), f"{name} left in channels-last order"
        # Same steps on the same batches: only the kernels' summation order differs.
        torch.testing.assert_close(weight, dict(plain.named_parameters())[name], atol=1e-5, rtol=1e-4)
    mobilenet = zoo.mobilenetv2(width_mult=0.25, stem_stride=2)
    train(mobilenet, x, y, epochs=1, batch_size=16, channels_last=True)
    assert all(weight.is_contiguous() for weight in mobilenet.parameters())


def test_cosine_schedule_anneals_to_zero() -> None:
    x, y = small_data(32)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert train(model, x, y, epochs=2, batch_size=8, optimizer=optimizer, lr_schedule="cosine") == 8
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="one of constant, cosine"):
        train(model, x, y, lr_schedule="linear")


def test_distill_schedule_is_checked() -> None:
    DistillStage(schedule="cosine").check()
    with pytest.raises(UsageError, match="schedule must be one of constant, cosine"):
        DistillStage(schedule="step").check()
