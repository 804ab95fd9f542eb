"""A ResNet-18-style 2D CNN with torchvision's ``resnet18`` layout and parameter names.

Used as the audio network of VAANet and CTEN (one input channel, a (7, 1) first convolution that
keeps the frequency resolution). Names match torchvision (``conv1``, ``bn1``,
``layer{1..4}.{0,1}.conv1/bn1/conv2/bn2``, ``layer{2,3,4}.0.downsample.0/.1``, ``fc``), so an
ImageNet ``resnet18`` state dict loads by name (:func:`load_torchvision_resnet18`), without
torchvision being installed.

The network ends with an adaptive average pool to 1x1. At VAANet's full size (a 256x32 MFCC chunk
-> an 8x2 map) it equals the original ``AvgPool2d((8, 2))``; it also works for smaller inputs.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from .resnet3d import LoadReport, load_matching_weights, read_state_dict

__all__ = ["BasicBlock2d", "ResNet2d", "load_torchvision_resnet18"]


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


class BasicBlock2d(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class ResNet2d(nn.Module):
    """ResNet with BasicBlocks (ResNet-18 by default) in torchvision's layout.

    Args:
        layers: blocks per stage, (2, 2, 2, 2) for ResNet-18, (3, 4, 6, 3) for ResNet-34.
        in_channels: input channels (1 for a spectrogram/MFCC map, 3 for images).
        conv1_kernel, conv1_stride, conv1_padding: the stem convolution; torchvision's are 7, 2, 3;
            VAANet's audio network uses (7, 1), (2, 1), (3, 0).
        width: base planes (64 in the standard network).
        num_classes: add ``fc`` (after the pool) if given; ``None`` = trunk only.

    ``forward_features(x)``: ``(N, in_channels, H, W)`` -> ``(N, 8*width, H', W')``;
    ``forward(x)``: pooled ``(N, 8*width)`` features, or ``(N, num_classes)`` logits with a head.
    """

    def __init__(
        self,
        layers: Sequence[int] = (2, 2, 2, 2),
        in_channels: int = 3,
        conv1_kernel: int | Sequence[int] = 7,
        conv1_stride: int | Sequence[int] = 2,
        conv1_padding: int | Sequence[int] = 3,
        width: int = 64,
        num_classes: int | None = None,
    ):
        super().__init__()
        if len(layers) != 4 or int(width) < 1:
            raise ConfigError(f"ResNet2d needs 4 stage sizes and a positive width, got layers={layers!r}, width={width!r}")
        width = int(width)
        self.conv1 = nn.Conv2d(
            in_channels, width, kernel_size=_pair(conv1_kernel), stride=_pair(conv1_stride),
            padding=_pair(conv1_padding), bias=False,
        )
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        planes = [width, width * 2, width * 4, width * 8]
        in_planes = width
        stages = []
        for i, (p, n) in enumerate(zip(planes, layers)):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock2d(in_planes, p, stride)] + [BasicBlock2d(p, p) for _ in range(1, n)]
            stages.append(nn.Sequential(*blocks))
            in_planes = p
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_channels = planes[-1]
        self.num_classes = num_classes
        if num_classes is not None:
            self.fc = nn.Linear(self.out_channels, int(num_classes))

        # torchvision's initialisation
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:  # (N, C_in, H, W) -> (N, 8w, H', W')
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.avgpool(self.forward_features(x)), 1)  # (N, 8w)
        return x if self.num_classes is None else self.fc(x)


def load_torchvision_resnet18(model: ResNet2d, path: str | os.PathLike) -> LoadReport:
    """Load a local torchvision ImageNet ``resnet18`` state dict (e.g. ``resnet18-f37072fd.pth``).

    ``conv1.weight`` is skipped (and reported in ``skipped``) when its shape differs, e.g. for a
    1-channel audio network. The ImageNet classifier ``fc.*`` is never loaded (reported in
    ``unused``). Any other shape mismatch raises :class:`~affectkit.errors.CheckpointError`.
    """
    state_dict = read_state_dict(path)
    head = {k: v for k, v in state_dict.items() if k.startswith("fc.")}
    trunk = {k: v for k, v in state_dict.items() if k not in head}
    report = load_matching_weights(model, trunk, source=str(path), skip_mismatched=("conv1.weight",))
    report.unused += list(head)
    return report
