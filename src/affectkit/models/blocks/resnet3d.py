"""3D ResNet of Hara et al. (3D-ResNets-PyTorch, 2017 Kinetics release) and a checkpoint loader.

The module and parameter names follow the original checkpoints once their ``module.`` prefix
(from ``nn.DataParallel``) is stripped: ``conv1``, ``bn1``, ``layer{1..4}.{i}.conv1`` / ``bn1`` /
... / ``downsample.0`` (1x1x1 conv) / ``downsample.1`` (BN) and ``fc``. Loading is therefore a direct
name-to-name mapping (:func:`load_kinetics_checkpoint`).

Architecture (for width ``w``, 64 in the released models)::

    conv1 7x7x7 stride (1,2,2) pad 3 -> BN -> ReLU -> MaxPool3d(3, stride 2, pad 1)
    layer1 (w, stride 1) -> layer2 (2w, stride 2) -> layer3 (4w, stride 2) -> layer4 (8w, stride 2)
    [optional head: global average pool -> fc]

Strides apply to time as well, so a 16x112x112 clip gives a (8w*expansion, 1, 4, 4) map.
Shortcut 'A' subsamples the input and zero-pads the extra channels (no parameters; the released
ResNet-10/18/34 use it); shortcut 'B' is a 1x1x1 conv + BN (ResNet-50 and deeper).

``LoadReport``, :func:`read_state_dict` and :func:`load_matching_weights` are shared with the 2D
ResNet (:mod:`affectkit.models.blocks.resnet2d`).
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import CheckpointError, ConfigError

__all__ = [
    "BasicBlock3d",
    "Bottleneck3d",
    "LoadReport",
    "ResNet3d",
    "ZeroPadShortcut3d",
    "checkpoint_head_classes",
    "default_shortcut",
    "load_kinetics_checkpoint",
    "load_matching_weights",
    "read_state_dict",
]


# ----------------------------------------------------------------------------------------------
# blocks
# ----------------------------------------------------------------------------------------------
def _conv3x3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class ZeroPadShortcut3d(nn.Module):
    """Shortcut type 'A': subsample by ``stride`` in (T, H, W) and zero-pad the new channels.

    Same output as the original ``avg_pool3d(kernel 1, stride)`` + concatenated zeros, but
    differentiable and without in-place tricks. Has no parameters or buffers.
    """

    def __init__(self, out_planes: int, stride: int):
        super().__init__()
        self.out_planes = out_planes
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:  # (N, C, T, H, W) -> (N, out_planes, T', H', W')
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride, :: self.stride]
        extra = self.out_planes - x.shape[1]
        if extra > 0:
            x = F.pad(x, (0, 0, 0, 0, 0, 0, 0, extra))
        return x

    def extra_repr(self) -> str:
        return f"out_planes={self.out_planes}, stride={self.stride}"


class BasicBlock3d(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3x3(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck3d(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv3d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3x3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


# depth -> (block, blocks per stage); the layouts of the original release
_LAYOUTS: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    10: (BasicBlock3d, (1, 1, 1, 1)),
    18: (BasicBlock3d, (2, 2, 2, 2)),
    34: (BasicBlock3d, (3, 4, 6, 3)),
    50: (Bottleneck3d, (3, 4, 6, 3)),
    101: (Bottleneck3d, (3, 4, 23, 3)),
    152: (Bottleneck3d, (3, 8, 36, 3)),
    200: (Bottleneck3d, (3, 24, 36, 3)),
}


def default_shortcut(depth: int) -> str:
    """The shortcut type of Hara et al.'s released Kinetics models: 'A' up to 34 layers, else 'B'."""
    return "A" if depth <= 34 else "B"


class ResNet3d(nn.Module):
    """Hara et al.'s 3D ResNet.

    Args:
        depth: 10, 18, 34 (BasicBlock) or 50, 101, 152, 200 (Bottleneck).
        width: base number of planes (64 in the released models; e.g. 8 for tiny tests).
        shortcut: 'A' (zero-pad identity) or 'B' (1x1x1 conv + BN); ``None`` = :func:`default_shortcut`.
        num_classes: if given, add the head (global average pool + ``fc``); ``None`` = trunk only.
        in_channels: input channels (3 for RGB).

    ``forward_features(x)`` maps ``(N, in_channels, T, H, W)`` to ``(N, C, T', H', W')`` with
    ``C = out_channels = 8 * width * expansion`` and T', H', W' = ceil(T/16), ceil(H/32), ceil(W/32).
    ``forward(x)`` returns the head's logits ``(N, num_classes)``, or the feature map if there is no head.
    """

    def __init__(
        self,
        depth: int = 101,
        width: int = 64,
        shortcut: str | None = None,
        num_classes: int | None = None,
        in_channels: int = 3,
    ):
        super().__init__()
        if depth not in _LAYOUTS:
            raise ConfigError(f"3D ResNet depth must be one of {sorted(_LAYOUTS)}, got {depth!r}")
        shortcut = default_shortcut(depth) if shortcut is None else str(shortcut).upper()
        if shortcut not in ("A", "B"):
            raise ConfigError(f"3D ResNet shortcut must be 'A' or 'B', got {shortcut!r}")
        if int(width) < 1:
            raise ConfigError(f"3D ResNet width must be a positive integer, got {width!r}")
        block, layers = _LAYOUTS[depth]
        self.depth, self.width, self.shortcut = depth, int(width), shortcut
        self.in_planes = self.width

        self.conv1 = nn.Conv3d(in_channels, self.width, kernel_size=7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(self.width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, self.width, layers[0], stride=1)
        self.layer2 = self._make_layer(block, self.width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, self.width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, self.width * 8, layers[3], stride=2)
        self.out_channels = self.width * 8 * block.expansion
        del self.in_planes

        self.num_classes = num_classes
        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool3d(1)
            self.fc = nn.Linear(self.out_channels, int(num_classes))

        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample: nn.Module | None = None
        if stride != 1 or self.in_planes != planes * block.expansion:
            if self.shortcut == "A":
                downsample = ZeroPadShortcut3d(planes * block.expansion, stride)
            else:
                downsample = nn.Sequential(
                    nn.Conv3d(self.in_planes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm3d(planes * block.expansion),
                )
        layers = [block(self.in_planes, planes, stride, downsample)]
        self.in_planes = planes * block.expansion
        layers += [block(self.in_planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> Tensor:  # (N, 3, T, H, W) -> (N, C, T', H', W')
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_head(self, features: Tensor) -> Tensor:  # (N, C, T', H', W') -> (N, num_classes)
        if self.num_classes is None:
            raise RuntimeError("this ResNet3d was built without a head (num_classes=None)")
        return self.fc(torch.flatten(self.avgpool(features), 1))

    def forward(self, x: Tensor) -> Tensor:
        features = self.forward_features(x)
        return features if self.num_classes is None else self.forward_head(features)


# ----------------------------------------------------------------------------------------------
# checkpoint loading (shared with resnet2d)
# ----------------------------------------------------------------------------------------------
@dataclass
class LoadReport:
    """What a by-name weight load did.

    Attributes:
        loaded: model keys filled from the file.
        unused: file keys the model has no use for (e.g. ``fc.*`` of a 400-way head on a trunk).
        missing: model keys the file did not provide (they keep their initial values). BatchNorm's
            ``num_batches_tracked`` counters are not listed: old checkpoints predate them.
        skipped: keys present on both sides but left alone on purpose (shape differs and the caller
            allowed it, e.g. a 3-channel conv1 into a 1-channel audio network).
        source: the file read.
    """

    loaded: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    source: str = ""

    def summary(self) -> str:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (f", ... (+{len(keys) - 6})" if len(keys) > 6 else "")

        parts = [f"{len(self.loaded)} tensors loaded from {self.source or '<state dict>'}"]
        for name in ("unused", "missing", "skipped"):
            keys = getattr(self, name)
            if keys:
                parts.append(f"{len(keys)} {name}: {few(keys)}")
        return "; ".join(parts)


def read_state_dict(path: str | os.PathLike, *, strip_prefix: str = "module.") -> dict[str, Tensor]:
    """Read a ``.pth``/``.pt`` weight file safely and return a flat ``{name: tensor}`` dict.

    Accepts ``{"state_dict": {...}, ...}`` (e.g. Hara et al.'s and VAANet's training checkpoints)
    or a raw state dict. Uses ``torch.load(weights_only=True)``: nothing but tensors and plain
    containers is unpickled. A leading ``strip_prefix`` (``nn.DataParallel``'s ``module.``) is removed.

    Raises:
        CheckpointError: naming the file, if it is missing, unreadable, refused by the safe
            unpickler, or does not contain a state dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only load failed" in str(err).lower():
            raise CheckpointError(
                f"{path}: the file contains pickled Python objects other than tensors, so it cannot be read "
                "with torch.load(weights_only=True). If (and only if) you trust its source, convert it once: "
                "ckpt = torch.load(path, map_location='cpu', weights_only=False); "
                "torch.save({'state_dict': ckpt['state_dict']}, 'clean.pth'), then load 'clean.pth'."
            ) from err
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({err})") from err
    except Exception as err:  # corrupt zip, truncated file, random bytes, permission problems ...
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from err

    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a state dict (or a dict with 'state_dict'), got {type(obj).__name__}")
    out: dict[str, Tensor] = {}
    for key, value in obj.items():
        if not isinstance(value, Tensor):
            top = ", ".join(map(str, list(obj)[:8]))
            raise CheckpointError(
                f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor; expected a state dict "
                f"or a dict with a 'state_dict' entry (top-level keys: {top})"
            )
        key = str(key)
        if strip_prefix and key.startswith(strip_prefix):
            key = key[len(strip_prefix):]
        out[key] = value
    return out


def load_matching_weights(
    model: nn.Module,
    state_dict: Mapping[str, Tensor],
    *,
    source: str = "<state dict>",
    skip_mismatched: Iterable[str] = (),
) -> LoadReport:
    """Copy ``state_dict`` into ``model`` by name, checking every shape first (all or nothing).

    Keys listed in ``skip_mismatched`` may differ in shape: they are then left alone and reported
    as ``skipped``. Any other shape mismatch raises :class:`CheckpointError` naming the key and
    both shapes; nothing is copied in that case.
    """
    own = model.state_dict()
    allowed = set(skip_mismatched)
    report = LoadReport(source=source)
    to_load: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key not in own:
            report.unused.append(key)
            continue
        if tuple(value.shape) != tuple(own[key].shape):
            if key in allowed:
                report.skipped.append(key)
                continue
            raise CheckpointError(
                f"{source}: shape mismatch for {key!r}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}"
            )
        to_load[key] = value
        report.loaded.append(key)
    report.missing = [k for k in own if k not in to_load and k not in report.skipped and not k.endswith("num_batches_tracked")]
    model.load_state_dict(to_load, strict=False)
    return report


def checkpoint_head_classes(state_dict: Mapping[str, Tensor]) -> int | None:
    """The number of classes of the ``fc`` head in a 3D ResNet state dict (None if it has none):
    400 for the 2017 Kinetics-400 release (``resnet-101-kinetics.pth``, VAANet), 1039 for the 2020
    Kinetics-700 + Moments-in-Time release (``r3d101_KM_200ep.pth``, CTEN)."""
    fc = state_dict.get("fc.weight")
    return int(fc.shape[0]) if isinstance(fc, Tensor) and fc.dim() == 2 else None


def load_kinetics_checkpoint(model: ResNet3d, path: str | os.PathLike, *,
                             expected_classes: int | Iterable[int] | None = None) -> LoadReport:
    """Load one of Hara et al.'s released 3D ResNet checkpoints.

    Both releases load: the 2017 one (e.g. ``resnet-101-kinetics.pth``: ``{"state_dict": ...}``,
    keys prefixed with ``module.``, a 400-way ``fc``) and the 2020 one that CTEN expects (e.g.
    ``r3d101_KM_200ep.pth``: no prefix, a 1039-way ``fc`` for Kinetics-700 + Moments-in-Time), or
    a raw state dict. Keys are mapped by name; the ``fc`` head shows up in ``report.unused`` when
    ``model`` has no head (and is loaded when the model has a head of that size). The model must be
    built with the checkpoint's depth, shortcut type and ``width=64``: a shape mismatch raises
    :class:`CheckpointError` naming the key. ``expected_classes`` (one size or several; default:
    no check): the file's head must have that many classes, else :class:`CheckpointError`.
    """
    state_dict = read_state_dict(path)
    if expected_classes is not None:
        allowed = {int(expected_classes)} if isinstance(expected_classes, int) else {int(c) for c in expected_classes}
        found = checkpoint_head_classes(state_dict)
        if found not in allowed:
            raise CheckpointError(
                f"{path}: expected a 3D ResNet checkpoint with a {' or '.join(map(str, sorted(allowed)))}-way fc head, "
                f"found {'no head' if found is None else f'a {found}-way head'}"
            )
    report = load_matching_weights(model, state_dict, source=str(path))
    report = load_matching_weights(model, state_dict, source=str(path))
    if not report.loaded:
        raise CheckpointError(
            f"{path}: no tensor matches this {type(model).__name__}; first keys in the file: "
            + ", ".join(list(state_dict)[:5])
        )
    return report
