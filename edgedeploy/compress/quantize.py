"""Quantization: post-training (fp16, dynamic int8, static int8) and quantization-aware training.

Weights are quantized symmetrically (zero stays exactly zero, so sparsity survives), per output
channel by default. A clustered layer is quantized per tensor instead: all channels share its
codebook, so quantizing the codebook once keeps at most k distinct values (PCQAT: sparsity- and
cluster-preserving QAT). QAT fake-quantizes weights in the forward pass with a straight-through
estimator and, optionally, the input activations of every weight layer (asymmetric uint8, ranges
from an exponential moving average). At the end the quantized-then-dequantized weights are baked into
plain float weights (int8-representable), and the scales are recorded for an int8 export.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn.utils import parametrize

from edgedeploy.compress.bnfold import fold_batchnorm
from edgedeploy.compress.layers import weight_layers
from edgedeploy.compress.stage import Stage, StageContext, require
from edgedeploy.compress.tuning import fine_tune

PTQ_MODES = ("fp16", "int8_dynamic", "int8_static")


def quantize_weight(weight: torch.Tensor, bits: int, per_channel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(dequantized weight, scale): symmetric, integers in [-(2^(b-1) - 1), 2^(b-1) - 1]."""
    qmax = 2 ** (bits - 1) - 1
    if per_channel:
        amax = weight.detach().abs().amax(dim=tuple(range(1, weight.dim())), keepdim=True)
    else:
        amax = weight.detach().abs().max()
    scale = amax.clamp(min=1e-12) / qmax
    return torch.clamp(torch.round(weight / scale), -qmax, qmax) * scale, scale


class FakeQuantWeight(nn.Module):
    """Parametrization: the forward pass sees quantized weights, the gradient passes straight through."""

    def __init__(self, bits: int, per_channel: bool) -> None:
        super().__init__()
        self.bits = bits
        self.per_channel = per_channel

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        quantized, _ = quantize_weight(weight, self.bits, self.per_channel)
        return weight + (quantized - weight).detach()


class ActivationQuantizer:
    """Asymmetric uint8 fake quantization of a layer's input with an observed [min, max] range.

    `observe` is "minmax" while calibrating (the widest range seen), "ema" while training (a moving
    average follows the changing weights) and None once frozen.
    """

    def __init__(self, momentum: float = 0.01) -> None:
        self.momentum = momentum
        self.low: float | None = None
        self.high: float | None = None
        self.observe: str | None = "minmax"
        self.quantizing = False

    def update_range(self, x: torch.Tensor) -> None:
        low, high = min(0.0, float(x.min())), max(0.0, float(x.max()))
        if self.low is None or self.high is None:
            self.low, self.high = low, high
        elif self.observe == "minmax":
            self.low, self.high = min(self.low, low), max(self.high, high)
        else:
            self.low += self.momentum * (low - self.low)
            self.high += self.momentum * (high - self.high)

    def qparams(self) -> tuple[float, int]:
        assert self.low is not None and self.high is not None
        scale = max(self.high - self.low, 1e-8) / 255
        return scale, int(round(-self.low / scale))

    def __call__(self, _module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        x = args[0]
        if self.observe:
            self.update_range(x.detach())
        if not self.quantizing or self.low is None:
            return None
        scale, zero_point = self.qparams()
        quantized = (torch.clamp(torch.round(x / scale) + zero_point, 0, 255) - zero_point) * scale
        return (x + (quantized - x).detach(), *args[1:])


@contextmanager
def activation_quantizers(model: nn.Module) -> Iterator[dict[str, ActivationQuantizer]]:
    """Forward pre-hooks on every weight layer, removed on exit so the model stays plain."""
    layers = weight_layers(model)
    quantizers = {name: ActivationQuantizer() for name in layers}
    handles = [layer.register_forward_pre_hook(quantizers[name]) for name, layer in layers.items()]
    try:
        yield quantizers
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def calibrate(model: nn.Module, quantizers: dict[str, ActivationQuantizer], x: Any, samples: int) -> None:
    """Set activation ranges to the min/max seen on `samples` inputs, then quantize with them."""
    model.eval()
    for q in quantizers.values():
        q.observe, q.quantizing = "minmax", False
    inputs = torch.as_tensor(x[:samples])
    for start in range(0, len(inputs), 128):
        model(inputs[start : start + 128])
    for q in quantizers.values():
        q.observe, q.quantizing = None, True


def weight_per_channel(name: str, ctx: StageContext, per_channel: bool) -> bool:
    """Clustered layers share one codebook across channels: quantize it per tensor to keep k values."""
    return per_channel and name not in ctx.constraints.clusters


def record_scales(
    model: nn.Module,
    ctx: StageContext,
    bits: int,
    per_channel: bool,
    quantizers: dict[str, ActivationQuantizer] | None,
) -> None:
    for name, layer in weight_layers(model).items():
        channelwise = weight_per_channel(name, ctx, per_channel)
        _, scale = quantize_weight(layer.weight, bits, channelwise)
        entry: dict[str, Any] = {
            "bits": bits,
            "weight_per_channel": channelwise,
            "weight_scale": scale.flatten().tolist() if channelwise else float(scale),
        }
        if quantizers is not None and quantizers[name].low is not None:
            scale_in, zero_point = quantizers[name].qparams()
            entry.update(input_scale=scale_in, input_zero_point=zero_point, input_dtype="uint8")
        ctx.quantization[name] = entry


@torch.no_grad()
def bake_weights(model: nn.Module, ctx: StageContext, bits: int, per_channel: bool) -> None:
    for name, layer in weight_layers(model).items():
        quantized, _ = quantize_weight(layer.weight, bits, weight_per_channel(name, ctx, per_channel))
        layer.weight.copy_(quantized)


def fold(model: nn.Module, ctx: StageContext) -> None:
    """Fold BatchNorm first, so the int8 weights trained or rounded here are the ones exported."""
    folded = fold_batchnorm(model)  # cluster folds first by default, so no codebook is rescaled here
    if folded:
        ctx.notes["folded_batch_norms"] = folded


@dataclass
class QATStage(Stage):
    name: ClassVar[str] = "qat"
    bits: int = 8
    per_channel: bool = True
    activations: bool = True
    """Also fake-quantize each weight layer's input (as a static int8 model would run)."""
    epochs: float = 1.0
    lr: float = 1e-4
    calibration_samples: int = 512

    def check(self) -> None:
        require(2 <= self.bits <= 8, self.name, f"bits must be in 2..8, got {self.bits}")
        require(self.epochs >= 0 and self.lr > 0, self.name, "epochs must be >= 0 and lr > 0")
        require(self.calibration_samples >= 1, self.name, "calibration_samples must be >= 1")

    def apply(self, model: nn.Module, ctx: StageContext) -> nn.Module:
        fold(model, ctx)
        layers = weight_layers(model)
        for name, layer in layers.items():
            parametrize.register_parametrization(
                layer, "weight", FakeQuantWeight(self.bits, weight_per_channel(name, ctx, self.per_channel))
            )
        try:
            with activation_quantizers(model) as quantizers:
                if self.activations:
                    calibrate(
                        model,
                        quantizers,
                        ctx.data.train_inputs(self.calibration_samples),
                        self.calibration_samples,
                    )
                for q in quantizers.values():
                    q.observe = "ema" if self.activations else None  # ranges follow the training weights
                fine_tune(model, ctx, label="qat", epochs=self.epochs, lr=self.lr)
                for q in quantizers.values():
                    q.observe = None
                if self.activations:
                    ctx.notes["accuracy_int8_simulated"] = ctx.data.accuracy(model)
                # Bake: the plain weight becomes the quantized value of the latent weight.
                for layer in layers.values():
                    parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
                record_scales(
                    model, ctx, self.bits, self.per_channel, quantizers if self.activations else None
                )
        finally:
            for layer in layers.values():
                if parametrize.is_parametrized(layer, "weight"):
                    parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
        ctx.constraints.enforce(model)
        return model


@dataclass
class QuantizeStage(Stage):
    """Post-training quantization (no training): fp16, int8 weights (dynamic) or int8 weights and
    calibrated activation ranges (static)."""

    name: ClassVar[str] = "quantize"
    mode: str = "int8_static"
    per_channel: bool = True
    calibration_samples: int = 512

    def check(self) -> None:
        require(
            self.mode in PTQ_MODES,
            self.name,
            f"mode must be one of {', '.join(PTQ_MODES)}, got {self.mode!r}",
        )
        require(self.calibration_samples >= 1, self.name, "calibration_samples must be >= 1")

    @torch.no_grad()
    def apply(self, model: nn.Module, ctx: StageContext) -> nn.Module:
        if self.mode == "fp16":
            for param in model.parameters():
                param.copy_(param.half().float())
            ctx.notes["deploy"] = "weights rounded to float16: convert with --precision fp16"
            return model
        fold(model, ctx)
        bake_weights(model, ctx, 8, self.per_channel)
        if self.mode == "int8_dynamic":
            record_scales(model, ctx, 8, self.per_channel, None)
            ctx.notes["deploy"] = (
                "int8 weights, activations quantized at run time: convert with --precision int8-dynamic"
            )
            return model
        with activation_quantizers(model) as quantizers:
            calibrate(
                model, quantizers, ctx.data.train_inputs(self.calibration_samples), self.calibration_samples
            )
            ctx.notes["accuracy_int8_simulated"] = ctx.data.accuracy(model)
            record_scales(model, ctx, 8, self.per_channel, quantizers)
        ctx.notes["deploy"] = "int8 weights and calibrated activations: convert with --precision int8"
        return model
