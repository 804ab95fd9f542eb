"""The fast CPU inference path for VAANet (measurements: ``benchmarks/README.md``).

``prepare_fast(model)`` returns an inference-only model with the same call signature and output
(:class:`~affectkit.models.outputs.ClassifierOutput`) as ``model``; ``model`` itself is not changed.
For a :class:`~affectkit.models.vaanet.VAANet` in eval mode it builds a :class:`FastVAANet`:

* **BatchNorm folding** (:func:`fold_conv_bn`, :func:`fold_batchnorm`): every Conv+BN pair of the
  frozen 3D trunk and of the audio ResNet becomes one convolution with a bias (exact in eval mode).
* **int8 trunk** (``precision="int8"``, the default where the CPU has VNNI): the 3D ResNet runs on
  oneDNN's u8 x s8 convolutions, which these CPUs compute 4x faster than fp32 (AVX-512 VNNI; their
  bf16 dot product issues at half the fp32 FMA rate, so bf16 is *slower* than fp32 here). Weights are
  quantised per output channel (symmetric, from the folded fp32 weights); every convolution input is
  quantised per tensor, per call, from its actual maximum (dynamic: no calibration data needed); the
  convolutions accumulate in int32 and write fp32; the residual stream stays fp32. The first
  convolution sees the raw 0-255 pixels, which uint8 holds exactly, with the input normalisation
  folded into its bias and padding value, and its stride-2 kernel rewritten on a 2x2 space-to-depth
  view (same result, faster). 1x1x1 convolutions run as 2D ones on a ``(N, C, T*H, W)`` view.
* **int8 audio network**: the audio ResNet-18 likewise, except its stem and first stage, which stay
  fp32 (MFCC activations there have outliers a per-tensor uint8 scale resolves poorly).
* ``precision="mixed"``: int8 stem + stages 1-2 of the trunk, fp32 stages 3-4: a quarter of the int8
  trunk's feature error, about 0.3 s slower per video. ``"fp32"``: folded fp32 weights,
  ``channels_last_3d`` (exact up to rounding; the fallback when int8 is unavailable). ``"bf16"``: folded
  bf16 weights, for CPUs with AMX.
* The attention heads and the classifier run in fp32, unchanged.
* :func:`tune_allocator` keeps glibc from returning freed large blocks to the kernel, so the big
  activation tensors are not page-faulted in again on every call (a process-wide setting).

The returned module disables autocast inside its forward pass: it manages its own precision, so
callers need no ``torch.autocast`` (an outer one changes nothing). Typical use::

    fast = prepare_fast(model.eval())
    with torch.inference_mode():
        out = fast(video=video, audio=audio)      # or fast(video_features=..., audio=...)
"""
from __future__ import annotations

import copy
import ctypes
import ctypes.util
import functools
import logging
import math
import warnings
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import model_input_keys

log = logging.getLogger(__name__)

__all__ = [
    "FastTrunkModel",
    "FastVAANet",
    "Int8ResNet3d",
    "PRECISIONS",
    "cpu_flags",
    "fold_batchnorm",
    "fold_conv_bn",
    "int8_available",
    "prepare_fast",
    "trunk_int8_supported",
    "tune_allocator",
]

PRECISIONS = ("auto", "int8", "mixed", "fp32", "bf16")
_CL3D = torch.channels_last_3d


# ----------------------------------------------------------------------------------------------
# environment
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where there is no such file)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


_allocator_tuned = False


def tune_allocator(threshold_bytes: int = 1 << 30) -> bool:
    """Serve large allocations from glibc's heap and keep freed memory, instead of mmap/munmap.

    PyTorch's CPU tensors come from ``malloc``; glibc serves large blocks (above its mmap threshold:
    128 KB, raised dynamically up to 32 MB) with ``mmap`` and unmaps them on free, so every forward
    pass page-faults its big activations in again (for an elementwise op on a fresh 77 MB tensor this
    costs about 3x the arithmetic). Raising ``M_MMAP_THRESHOLD`` and
    ``M_TRIM_THRESHOLD`` keeps that memory in the process for reuse. Process-wide and not undone;
    the resident size stays near its peak. A no-op (returns False) where glibc is not available.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = bool(mallopt(m_mmap_threshold, ctypes.c_int(min(threshold_bytes, 2**31 - 1))))
    ok = bool(mallopt(m_trim_threshold, ctypes.c_int(2**31 - 1))) and ok
    _allocator_tuned = ok
    return ok


# ----------------------------------------------------------------------------------------------
# BatchNorm folding
# ----------------------------------------------------------------------------------------------
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BNS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def fold_conv_bn(conv: nn.Module, bn: nn.Module | None) -> tuple[Tensor, Tensor]:
    """Weight and bias (fp32) of the convolution ``conv`` followed by ``bn`` in eval mode."""
    w = conv.weight.detach().float()
    b = conv.bias.detach().float() if conv.bias is not None else torch.zeros(w.shape[0])
    if bn is not None:
        if bn.running_mean is None or bn.running_var is None:
            raise ValueError("cannot fold a BatchNorm without running statistics")
        scale = torch.rsqrt(bn.running_var.detach().float() + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.detach().float()
        shift = -bn.running_mean.detach().float() * scale
        if bn.bias is not None:
            shift = shift + bn.bias.detach().float()
        w = w * scale.reshape(-1, *([1] * (w.dim() - 1)))
        b = b * scale + shift
    return w.contiguous(), b.contiguous()


def _fold_into(conv: nn.Module, bn: nn.Module) -> None:
    w, b = fold_conv_bn(conv, bn)
    with torch.no_grad():
        conv.weight = nn.Parameter(w.to(conv.weight.dtype), requires_grad=False)
        conv.bias = nn.Parameter(b.to(conv.weight.dtype), requires_grad=False)


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold, in place, every BatchNorm that directly follows a convolution into that convolution.

    Recognised pairs: ``convN``/``bnN`` attributes of one module (the ResNet blocks and stems of the
    kit), a Conv directly followed by a BatchNorm in an ``nn.Sequential`` (downsample shortcuts,
    projections), and the (conv, bn) attribute names a module lists in ``bn_fold_pairs`` (I3D's units).
    The BatchNorm becomes ``nn.Identity``. Only valid for inference: every folded
    BatchNorm must be in eval mode (raises ``ValueError`` otherwise).
    """
    for parent in list(module.modules()):
        children = dict(parent.named_children())
        pairs: list[tuple[str, str]] = []
        if isinstance(parent, nn.Sequential):
            names = list(children)
            pairs += [(a, b) for a, b in zip(names, names[1:])]
        for name in children:
            if name.startswith("bn") and ("conv" + name[2:]) in children:
                pairs.append(("conv" + name[2:], name))
        pairs += [tuple(p) for p in getattr(parent, "bn_fold_pairs", ()) if tuple(p) not in pairs]  # a module's own pairs
        for cname, bname in pairs:
            conv, bn = children.get(cname), children.get(bname)
            if not (isinstance(conv, _CONVS) and isinstance(bn, _BNS)):
                continue
            if bn.training:
                raise ValueError(f"fold_batchnorm: {type(parent).__name__}.{bname} is in training mode")
            _fold_into(conv, bn)
            setattr(parent, bname, nn.Identity())
            children[bname] = getattr(parent, bname)
    return module


# ----------------------------------------------------------------------------------------------
# int8 building blocks (oneDNN u8 x s8 convolutions)
# ----------------------------------------------------------------------------------------------
def int8_available() -> bool:
    """Whether this PyTorch build has the oneDNN int8 convolution ops and the CPU has VNNI/AMX-int8."""
    ops = getattr(torch.ops, "onednn", None)
    try:
        have_ops = all(hasattr(ops, n) for n in ("qconv_prepack", "qconv_pointwise", "qconv2d_pointwise"))
    except Exception:  # pragma: no cover - odd builds
        have_ops = False
    if not (have_ops and torch.backends.mkldnn.is_available()):
        return False
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def _as_2d(x: Tensor) -> Tensor:
    """(N, C, T, H, W) channels_last_3d -> the (N, C, T*H, W) channels_last view of the same memory."""
    n, c, t, h, w = x.shape
    return x.as_strided((n, c, t * h, w), (c * t * h * w, 1, w * c, c))


def _as_3d(y: Tensor, t: int, h: int) -> Tensor:
    """Inverse of :func:`_as_2d` for an (N, C, T*H, W) channels_last tensor."""
    n, c, _, w = y.shape
    return y.as_strided((n, c, t, h, w), (c * t * h * w, 1, h * w * c, w * c, c))


def _quantize_q(h: Tensor) -> tuple[Tensor, float]:
    """fp32 ``h`` -> (uint8 tensor of the same shape and layout, scale), zero point 0.

    The scale maps the tensor's maximum to 255; negative values become 0 (a free ReLU). Uses
    ``torch.quantize_per_tensor`` (one fused pass) and views its storage as plain uint8.
    """
    amax = float(h.amax())
    scale = amax / 255.0 if amax > 0.0 and math.isfinite(amax) else 1.0
    q = torch.quantize_per_tensor(h, scale, 0, torch.quint8)
    u = torch.empty(0, dtype=torch.uint8).set_(q.untyped_storage(), q.storage_offset(), q.size(), q.stride())
    return u, scale


def _quantize_plain(h: Tensor) -> tuple[Tensor, float]:
    """Same as :func:`_quantize_q` with plain tensor ops (slower; used if the fused op is missing)."""
    amax = float(h.amax())
    scale = amax / 255.0 if amax > 0.0 and math.isfinite(amax) else 1.0
    u = torch.clamp(torch.round(h * (1.0 / scale)), 0, 255).to(torch.uint8)
    return u, scale


_quantize: Callable[[Tensor], tuple[Tensor, float]] = _quantize_q


def _add_relu_plain(h: Tensor, res: Tensor) -> Tensor:
    return h.add_(res).relu_()


def _add_relu_fused(h: Tensor, res: Tensor) -> Tensor:
    return torch.ops.aten._add_relu_(h, res)  # one pass instead of two


_add_relu: Callable[[Tensor, Tensor], Tensor] = _add_relu_fused if hasattr(torch.ops.aten, "_add_relu_") else _add_relu_plain


class _QConv:
    """One int8 convolution (2D or 3D): per-output-channel symmetric int8 weights (prepacked by
    oneDNN), fp32 bias, uint8 input with a per-tensor scale and zero point 0, fp32 (or bf16) output.

    ``in_shape`` is a hint for the weight layout; other input shapes work.
    """

    def __init__(self, weight: Tensor, bias: Tensor, stride, padding, in_shape, *, x_scale_hint: float = 0.02):
        w = weight.detach().float()
        self.dims = w.dim() - 2
        if self.dims not in (2, 3):
            raise ValueError("int8 convolution: 2D or 3D weights only")
        self.out_channels = w.shape[0]
        self.stride, self.padding = [int(v) for v in stride], [int(v) for v in padding]
        spatial = tuple(range(1, w.dim()))
        self.w_scale = (w.abs().amax(dim=spatial) / 127.0).clamp_min(1e-12)
        qw = torch.clamp(torch.round(w / self.w_scale.reshape(-1, *[1] * (w.dim() - 1))), -127, 127).to(torch.int8)
        self.qweight_sum = qw.sum(dim=tuple(range(2, w.dim()))).float()  # (O, C), for bias corrections
        self.w_zp = torch.zeros(self.out_channels, dtype=torch.int64)
        self.bias = bias.detach().float().contiguous()
        shape = [int(v) for v in in_shape]
        # a 1x1x1 stride-1 3D convolution is a 1x1 2D convolution on the (N, C, T*H, W) view
        self.as2d = self.dims == 3 and w.shape[2:] == (1, 1, 1) and self.stride == [1, 1, 1] and self.padding == [0, 0, 0]
        if self.as2d:
            qw, shape = qw.reshape(qw.shape[0], qw.shape[1], 1, 1), [shape[0], shape[1], shape[2] * shape[3], shape[4]]
            self.stride, self.padding = [1, 1], [0, 0]
        self.conv = torch.ops.onednn.qconv2d_pointwise if qw.dim() == 4 else torch.ops.onednn.qconv_pointwise
        self.dilation = [1] * (qw.dim() - 2)
        self.packed = torch.ops.onednn.qconv_prepack(qw, self.w_scale, x_scale_hint, 0, self.stride, self.padding,
                                                     self.dilation, 1, shape)

    def __call__(self, qx: Tensor, x_scale: float, out_dtype: torch.dtype = torch.float32) -> Tensor:
        x = _as_2d(qx) if self.as2d else qx
        y = self.conv(x, x_scale, 0, self.packed, self.w_scale, self.w_zp, self.bias, self.stride, self.padding,
                      self.dilation, 1, 1.0, 0, out_dtype, "none", [], "")
        return _as_3d(y, qx.shape[2], qx.shape[3]) if self.as2d else y


def _out_shape(shape, kernel, stride, padding, out_channels):
    n, _, *sp = shape
    return (n, out_channels, *[(s + 2 * p - k) // st + 1 for s, k, st, p in zip(sp, kernel, stride, padding)])


class _QBlock:
    """A ResNet block of the kit (Bottleneck3d, BasicBlock3d, BasicBlock2d; BN folded) with int8
    convolutions and an fp32 residual stream."""

    def __init__(self, block: nn.Module, in_shape):
        from ..models.blocks.resnet3d import ZeroPadShortcut3d

        convs = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
        if hasattr(block, "conv3"):
            convs.append((block.conv3, block.bn3))
        self.convs = []
        shape = in_shape
        for conv, bn in convs:
            w, b = fold_conv_bn(conv, bn)
            self.convs.append(_QConv(w, b, conv.stride, conv.padding, shape))
            shape = _out_shape(shape, conv.kernel_size, conv.stride, conv.padding, conv.out_channels)
        self.out_shape = shape
        ds = block.downsample
        self.shortcut: Any = None  # None: identity; _QConv: int8 conv on the block input; module: on fp32
        if isinstance(ds, nn.Sequential) and len(ds) == 2 and isinstance(ds[0], _CONVS):
            w, b = fold_conv_bn(ds[0], ds[1] if isinstance(ds[1], _BNS) else None)
            self.shortcut = _QConv(w, b, ds[0].stride, ds[0].padding, in_shape)
        elif isinstance(ds, ZeroPadShortcut3d):
            self.shortcut = ds
        elif ds is not None:
            raise TypeError(f"int8 trunk: unsupported shortcut {type(ds).__name__}")

    def __call__(self, x: Tensor, q: Tensor, s: float) -> Tensor:
        h = self.convs[0](q, s)
        for conv in self.convs[1:]:
            hq, hs = _quantize(h)  # ReLU folded into the quantisation (zero point 0)
            h = conv(hq, hs)
        if self.shortcut is None:
            res = x
        elif isinstance(self.shortcut, _QConv):
            res = self.shortcut(q, s)
        else:
            res = self.shortcut(x)
        return _add_relu(h, res)


def _run_blocks(blocks: list, x: Tensor) -> Tensor:
    """The int8 blocks on fp32 ``x`` (non-negative: after a ReLU)."""
    q, s = _quantize(x)
    last = len(blocks) - 1
    for i, block in enumerate(blocks):
        x = block(x, q, s)
        if i < last:
            q, s = _quantize(x)
    return x


class Int8ResNet2d(nn.Module):
    """The kit's :class:`~affectkit.models.blocks.resnet2d.ResNet2d` (eval mode, BN folded, no head)
    with int8 blocks. The stem convolution (one input channel: too little work for int8) and the first
    ``fp32_layers`` stages stay fp32: on MFCC input the first stage's activations have outliers
    (max ~40x the RMS), which a per-tensor uint8 scale resolves poorly. ``forward(x)`` returns the
    pooled ``(N, 8*width)`` features, as ``ResNet2d.forward``."""

    def __init__(self, net: nn.Module, in_shape, *, fp32_layers: int = 1):
        super().__init__()
        if getattr(net, "num_classes", None) is not None:
            raise ValueError("Int8ResNet2d: networks with a classification head are not supported")
        w, b = fold_conv_bn(net.conv1, net.bn1)
        self.stem_weight = w.contiguous(memory_format=torch.channels_last)
        self.stem_bias = b
        self.stem = dict(stride=net.conv1.stride, padding=net.conv1.padding)
        self.maxpool = net.maxpool
        shape = _out_shape(in_shape, net.conv1.kernel_size, net.conv1.stride, net.conv1.padding, net.conv1.out_channels)
        mp = net.maxpool
        shape = _out_shape(shape, (mp.kernel_size,) * 2, (mp.stride,) * 2, (mp.padding,) * 2, shape[1])
        layers = [net.layer1, net.layer2, net.layer3, net.layer4]
        k = max(0, min(4, int(fp32_layers)))
        head = [fold_batchnorm(copy.deepcopy(layer).eval()) for layer in layers[:k]]
        self.fp32_head = nn.Sequential(*head).to(memory_format=torch.channels_last) if head else None
        if self.fp32_head is not None:
            for p in self.fp32_head.parameters():
                p.requires_grad_(False)
            for layer in layers[:k]:
                for block in layer:
                    shape = _out_shape(shape, block.conv1.kernel_size, block.conv1.stride, block.conv1.padding,
                                       block.conv2.out_channels)
        self.blocks = []
        for layer in layers[k:]:
            for block in layer:
                qb = _QBlock(block, shape)
                self.blocks.append(qb)
                shape = qb.out_shape

    def forward(self, x: Tensor) -> Tensor:
        x = F.conv2d(x.float(), self.stem_weight, self.stem_bias, **self.stem)
        # with one input channel the output's layout is ambiguous; max pooling is 10x faster channels-last
        x = self.maxpool(x.relu_().contiguous(memory_format=torch.channels_last))
        if self.fp32_head is not None:
            x = self.fp32_head(x)
        if self.blocks:
            x = _run_blocks(self.blocks, x)
        return x.mean(dim=(2, 3))


def _even(v: int) -> int:
    return v + (v % 2)


class _PixelStem:
    """The trunk's first convolution (BN folded) as an int8 convolution on the raw 0-255 pixels.

    The normalisation ``x * scale - offset[c]`` is folded in: the convolution sees the rounded pixels
    (exact for 8-bit video), pads with the pixel value that normalises to 0 (``offset / scale``,
    exact for the "original" normalisation's 100) and subtracts the offset's response from its bias.
    A stride-2 (H, W) kernel is rewritten as a stride-1 kernel on a 2x2 space-to-depth rearrangement
    of the pixels (3 -> 12 input channels; same result, the int8 kernels run it faster); the staging
    copy that rounds and pads the pixels writes that layout directly.
    """

    def __init__(self, conv: nn.Conv3d, bn: nn.Module, in_shape, *, pixel_scale: float, pad_raw: Tensor):
        w, bias = fold_conv_bn(conv, bn)
        n, c, t, h, wd = (int(v) for v in in_shape)
        (kt, kh, kw), (st, sh, sw), (pt, ph, pw) = conv.kernel_size, conv.stride, conv.padding
        self.scale = float(pixel_scale)
        self.pad_value = pad_raw.round().clamp(0, 255).to(torch.uint8)
        self.out_hw = ((h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1)
        self.s2d = (sh, sw) == (2, 2) and h % 2 == 0 and wd % 2 == 0
        self.pt = pt
        if self.s2d:
            # pad top/left to an even amount (shift the kernel by the difference), kernel to even size
            self.ph2, self.pw2 = _even(ph), _even(pw)
            kh2, kw2 = _even(kh + self.ph2 - ph), _even(kw + self.pw2 - pw)
            ho, wo = self.out_hw
            self.hp2 = _even(max(2 * (ho - 1) + kh2, self.ph2 + h))
            self.wp2 = _even(max(2 * (wo - 1) + kw2, self.pw2 + wd))
            w2 = w.new_zeros(w.shape[0], c, kt, kh2, kw2)
            w2[:, :, :, self.ph2 - ph:self.ph2 - ph + kh, self.pw2 - pw:self.pw2 - pw + kw] = w
            # (O, c, kt, kh2/2, dy, kw2/2, dx) -> (O, dy, dx, c, kt, kh2/2, kw2/2): channels (dy, dx, c)
            w2 = w2.reshape(w.shape[0], c, kt, kh2 // 2, 2, kw2 // 2, 2).permute(0, 4, 6, 1, 2, 3, 5)
            w2 = w2.reshape(w.shape[0], 4 * c, kt, kh2 // 2, kw2 // 2)
            staged = (n, 4 * c, t + 2 * pt, self.hp2 // 2, self.wp2 // 2)
            self.conv = _QConv(w2, bias, (st, 1, 1), (0, 0, 0), staged, x_scale_hint=self.scale)
            offset_sum = (self.conv.qweight_sum.reshape(w.shape[0], 4, c) * pad_raw.reshape(1, 1, c)).sum((1, 2))
        else:
            self.pad = (pt, ph, pw)
            staged = (n, c, t + 2 * pt, h + 2 * ph, wd + 2 * pw)
            self.conv = _QConv(w, bias, (st, sh, sw), (0, 0, 0), staged, x_scale_hint=self.scale)
            offset_sum = (self.conv.qweight_sum * pad_raw.reshape(1, c)).sum(1)
        # conv(scale * (raw - pad_raw)) = scale * conv(raw) - scale * sum_c pad_raw[c] * sum_k w[o, c, k]
        self.conv.bias = (bias - self.scale * self.conv.w_scale * offset_sum).contiguous()

    @staticmethod
    def _round(video: Tensor) -> Tensor:
        """Pixels -> uint8, rounding half up and saturating (a cast to uint8 alone truncates)."""
        if video.dtype == torch.uint8:
            return video
        return torch.add(video, 0.5).clamp_(0.0, 255.0).to(torch.uint8)

    def __call__(self, video: Tensor, out_dtype: torch.dtype = torch.bfloat16) -> Tensor:
        n, c, t, h, w = video.shape
        pt = self.pt
        if self.s2d:
            hh, wh = self.hp2 // 2, self.wp2 // 2
            buf = torch.empty((n, t + 2 * pt, hh, wh, 2, 2, c), dtype=torch.uint8)
            buf.copy_(self.pad_value)  # broadcast over the channel axis
            i0, j0 = self.ph2 // 2, self.pw2 // 2
            inner = buf.permute(0, 1, 2, 4, 3, 5, 6)[:, pt:pt + t, i0:i0 + h // 2, :, j0:j0 + w // 2]
            # round on the contiguous input, go channels-last, then scatter 2x2 blocks (fastest order)
            pixels = self._round(video).contiguous(memory_format=_CL3D).permute(0, 2, 3, 4, 1)
            inner.copy_(pixels.unflatten(3, (w // 2, 2)).unflatten(2, (h // 2, 2)))
            x = buf.view(n, t + 2 * pt, hh, wh, 4 * c).permute(0, 4, 1, 2, 3)
        else:
            _, ph, pw = self.pad
            buf = torch.empty((n, t + 2 * pt, h + 2 * ph, w + 2 * pw, c), dtype=torch.uint8)
            buf.copy_(self.pad_value)
            pixels = self._round(video).contiguous(memory_format=_CL3D).permute(0, 2, 3, 4, 1)
            buf[:, pt:pt + t, ph:ph + h, pw:pw + w].copy_(pixels)
            x = buf.permute(0, 4, 1, 2, 3)
        y = self.conv(x, self.scale, out_dtype)
        ho, wo = self.out_hw
        if y.shape[3] != ho or y.shape[4] != wo:
            y = y[:, :, :, :ho, :wo]
        return y


class Int8ResNet3d(nn.Module):
    """The kit's :class:`~affectkit.models.blocks.resnet3d.ResNet3d` (eval mode, BN folded) on int8
    convolutions, taking raw pixels: ``forward(video)`` maps ``(N, 3, T, H, W)`` floats in [0, 255]
    to the trunk's ``forward_features`` output ``(N, C, T', H', W')`` (fp32).

    ``pixel_scale`` and ``pixel_offset`` describe the model's input normalisation
    ``x * pixel_scale - pixel_offset[c]``, which the stem computes exactly (see ``_PixelStem``).
    """

    def __init__(self, trunk: nn.Module, in_shape, *, pixel_scale: float, pixel_offset, int8_layers: int = 4):
        super().__init__()
        conv1 = trunk.conv1
        offsets = torch.as_tensor(pixel_offset, dtype=torch.float32).reshape(-1)
        if offsets.numel() == 1:
            offsets = offsets.expand(conv1.in_channels)
        self.stem = _PixelStem(conv1, trunk.bn1, in_shape, pixel_scale=pixel_scale, pad_raw=offsets / pixel_scale)
        self.maxpool = trunk.maxpool
        shape = _out_shape(in_shape, conv1.kernel_size, conv1.stride, conv1.padding, conv1.out_channels)
        mp = trunk.maxpool
        shape = _out_shape(shape, (mp.kernel_size,) * 3, (mp.stride,) * 3, (mp.padding,) * 3, shape[1])
        self.blocks = []
        layers = [trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4]
        self.int8_layers = max(0, min(4, int(int8_layers)))
        for layer in layers[:self.int8_layers]:
            for block in layer:
                qb = _QBlock(block, shape)
                self.blocks.append(qb)
                shape = qb.out_shape
        # the remaining stages in fp32 (BN folded, channels-last): "mixed" precision
        tail = [fold_batchnorm(copy.deepcopy(layer).eval()) for layer in layers[self.int8_layers:]]
        self.fp32_tail = nn.Sequential(*tail).to(memory_format=_CL3D) if tail else None
        if self.fp32_tail is not None:
            for p in self.fp32_tail.parameters():
                p.requires_grad_(False)
        self.out_channels = trunk.out_channels

    def forward(self, video: Tensor) -> Tensor:
        h = self.stem(video, torch.bfloat16)  # bf16 halves the traffic of the largest activation
        x = self.maxpool(h).float().relu_()
        if self.blocks:
            x = _run_blocks(self.blocks, x)
        if self.fp32_tail is not None:
            x = self.fp32_tail(x.contiguous(memory_format=_CL3D))
        return x


class _FoldedResNet3d(nn.Module):
    """A BN-folded copy of a ResNet3d in ``channels_last_3d`` (fp32 or bf16 weights); takes normalised input."""

    def __init__(self, trunk: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.net = fold_batchnorm(copy.deepcopy(trunk).eval()).to(dtype=dtype, memory_format=_CL3D)
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.dtype = dtype

    def forward(self, x: Tensor) -> Tensor:
        y = self.net.forward_features(x.to(self.dtype).contiguous(memory_format=_CL3D))
        return y.float()


# ----------------------------------------------------------------------------------------------
# the fast model
# ----------------------------------------------------------------------------------------------
def _shell_copy(model: nn.Module) -> nn.Module:
    """A shallow copy of ``model`` whose submodule/parameter/buffer dicts can be changed independently."""
    shell = copy.copy(model)
    shell._modules = dict(model._modules)
    shell._parameters = dict(model._parameters)
    shell._buffers = dict(model._buffers)
    return shell


class _ReadsThroughBase(nn.Module):
    """Attributes this module lacks are read from its ``base`` submodule (the original model's shell)."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            base = self.__dict__.get("_modules", {}).get("base")
            if base is None or name.startswith("__"):
                raise
            return getattr(base, name)


class FastVAANet(_ReadsThroughBase):
    """Inference-only VAANet: a fast trunk (int8, fp32 or bf16, see the module docstring), the audio
    ResNet with BN folded, and the original heads. ``forward`` has VAANet's signature and output.

    Attributes of the original model (``num_classes``, ``seq_len``, ``affectkit_config`` ...) are
    readable through this object. ``precision`` tells which trunk was built.
    """

    def __init__(self, model: nn.Module, precision: str = "auto", *, int8_audio: bool = True):
        super().__init__()
        from ..models.vaanet import ORIGINAL_MEAN, ORIGINAL_NORM_VALUE

        if model.training:
            raise ValueError("prepare_fast: put the model in eval mode first (model.eval())")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        on_cpu = all(p.device.type == "cpu" for p in model.parameters())
        if precision == "auto":
            precision = "int8" if on_cpu and int8_available() else "fp32"
        elif precision in ("int8", "mixed") and not on_cpu:
            log.warning("prepare_fast: int8 runs on the CPU only; using fp32 for a model on another device")
            precision = "fp32"
        self.input_keys = model_input_keys(model)
        self.seq_len, self.trunk_channels = model.seq_len, model.trunk_channels
        in_shape = (model.seq_len, 3, model.snippet_duration, model.sample_size, model.sample_size)
        self.norm_scale, self.norm_offset = 1.0 / ORIGINAL_NORM_VALUE, torch.tensor([ORIGINAL_MEAN])
        if model.pixel_mean is not None:
            self.norm_scale, self.norm_offset = 1.0, model.pixel_mean.detach().float().reshape(-1).clone()

        trunk: nn.Module | None = None
        if precision in ("int8", "mixed"):
            try:
                trunk = Int8ResNet3d(model.trunk, in_shape, pixel_scale=self.norm_scale, pixel_offset=self.norm_offset,
                                     int8_layers=4 if precision == "int8" else 2)
                _self_check_int8()
            except Exception as err:  # missing/changed ops: fall back to the exact path
                log.warning("prepare_fast: int8 trunk unavailable (%s: %s); using fp32", type(err).__name__, err)
                trunk, precision = None, "fp32"
        if trunk is None:
            trunk = _FoldedResNet3d(model.trunk, torch.bfloat16 if precision == "bf16" else torch.float32)
        self.precision = precision
        self.trunk = trunk

        audio: nn.Module | None = None
        self.int8_audio = bool(int8_audio and precision in ("int8", "mixed"))
        if self.int8_audio:
            n = model.audio_segments
            audio_shape = (n, 1, model.audio_frames // n, model.audio_bins)
            try:
                audio = Int8ResNet2d(model.audio_net, audio_shape)
            except Exception as err:
                log.warning("prepare_fast: int8 audio network unavailable (%s: %s); using fp32", type(err).__name__, err)
                self.int8_audio = False
        if audio is None:
            audio = fold_batchnorm(copy.deepcopy(model.audio_net).eval()).to(memory_format=torch.channels_last)
            for p in audio.parameters():
                p.requires_grad_(False)
        base = _shell_copy(model)
        base._modules["trunk"] = nn.Identity()  # not used; drops the reference to the fp32 trunk
        base._modules["audio_net"] = audio
        self.base = base

    def train(self, mode: bool = True) -> "FastVAANet":
        if mode:
            raise RuntimeError("FastVAANet is inference-only (BatchNorm is folded, the trunk may be int8)")
        return super().train(False)

    def trunk_features(self, video: Tensor) -> Tensor:
        """``video`` (B, S, 3, T, H, W) in [0, 255] -> (B, S, C, P), as ``VAANet.trunk_features``."""
        if video.dim() != 6 or video.shape[2] != 3:
            raise ValueError(f"vaanet: video must be (B, S, 3, T, H, W), got {tuple(video.shape)}")
        b, s = video.shape[:2]
        x = video.reshape(b * s, *video.shape[2:])
        with torch.no_grad(), torch.autocast("cpu", enabled=False):
            if isinstance(self.trunk, Int8ResNet3d):
                f = self.trunk(x)
            else:
                x = x.float() * self.norm_scale - self.norm_offset.reshape(1, -1, 1, 1, 1)
                f = self.trunk(x)
            f = f.mean(dim=2).flatten(2)
        return f.reshape(b, s, f.shape[1], f.shape[2])

    def forward(self, video: Tensor | None = None, audio: Tensor | None = None, *,
                video_features: Tensor | None = None):
        with torch.no_grad(), torch.autocast("cpu", enabled=False):
            if video_features is None:
                if video is None:
                    raise ValueError("vaanet: pass `video` (B, S, 3, T, H, W) or `video_features` (B, S, C, P)")
                video_features = self.trunk_features(video)
            if audio is not None:
                audio = audio.float()
            return self.base(video_features=video_features.float(), audio=audio)


class _RawPixelTrunk(nn.Module):
    """Stands in for a model's ResNet3d ``trunk`` inside :class:`FastTrunkModel`: ``forward_features``
    takes the *normalised* input the model computes (``x * scale - offset``), recovers the raw pixels
    (the int8 stem rounds them to the integers they were) and runs :class:`Int8ResNet3d` on them."""

    def __init__(self, int8: Int8ResNet3d, scale: float, offset: Tensor, out_channels: int):
        super().__init__()
        self.int8 = int8
        self.scale = float(scale)
        self.register_buffer("offset", offset.reshape(1, -1, 1, 1, 1).clone(), persistent=False)
        self.out_channels = out_channels

    def forward_features(self, x: Tensor) -> Tensor:
        raw = (x.float() + self.offset) / self.scale
        return self.int8(raw)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)


def trunk_int8_supported(model: nn.Module) -> tuple[bool, str]:
    """Whether :class:`FastTrunkModel` can take ``model``: a frozen-BN ResNet3d ``trunk`` fed through the
    model's ``normalize_video`` (the kit's 3D-trunk models: CTEN, CTEN-visual, ...), on the CPU."""
    from ..models.blocks.resnet3d import ResNet3d

    if not isinstance(getattr(model, "trunk", None), ResNet3d) or not hasattr(model, "normalize_video"):
        return False, "no ResNet3d trunk fed through normalize_video"
    if not all(hasattr(model, a) for a in ("seq_len", "snippet_duration", "sample_size")):
        return False, "no seq_len / snippet_duration / sample_size to size the int8 trunk"
    if not all(p.device.type == "cpu" for p in model.parameters()):
        return False, "the model is not on the CPU"
    if not int8_available():
        return False, "no VNNI/AMX-int8 or no oneDNN int8 convolutions in this PyTorch"
    return True, "VNNI/AMX-int8 and oneDNN int8 convolutions"


class FastTrunkModel(_ReadsThroughBase):
    """Inference-only copy of a model with a 3D ResNet trunk (CTEN and the like): the trunk on int8
    convolutions (:class:`Int8ResNet3d`, raw pixels, BN folded), an audio ``ResNet2d`` (``audio_net``,
    where the model has one) on :class:`Int8ResNet2d`, everything else BN-folded fp32, eager. Same
    signature and outputs as the model; the model's own methods (``trunk_features``, pooling, heads)
    run unchanged on the swapped submodules."""

    def __init__(self, model: nn.Module, *, int8_audio: bool = True):
        super().__init__()
        from ..models.blocks.resnet2d import ResNet2d
        from ..models.vaanet import ORIGINAL_MEAN, ORIGINAL_NORM_VALUE

        if model.training:
            raise ValueError("FastTrunkModel: put the model in eval mode first (model.eval())")
        ok, why = trunk_int8_supported(model)
        if not ok:
            raise ValueError(f"FastTrunkModel: {type(model).__name__}: {why}")
        _self_check_int8()
        pixel_mean = getattr(model, "pixel_mean", None)
        if pixel_mean is not None:
            scale, offset = 1.0, pixel_mean.detach().float().reshape(-1).clone()
        else:
            scale, offset = 1.0 / ORIGINAL_NORM_VALUE, torch.tensor([float(ORIGINAL_MEAN)] * 3)
        in_shape = (model.seq_len, 3, model.snippet_duration, model.sample_size, model.sample_size)
        int8 = Int8ResNet3d(model.trunk, in_shape, pixel_scale=scale, pixel_offset=offset)
        trunk = _RawPixelTrunk(int8, scale, offset if offset.numel() == 3 else offset.expand(3), model.trunk.out_channels)
        shell = _shell_copy(model)
        shell._modules["trunk"] = nn.Identity()
        audio_net = shell._modules.get("audio_net")
        shell._modules["audio_net"] = nn.Identity() if audio_net is not None else None
        if audio_net is None:
            shell._modules.pop("audio_net")
        rest = fold_batchnorm(copy.deepcopy(shell).eval())  # the heads: BN folded, fp32
        for p in rest.parameters():
            p.requires_grad_(False)
        rest._modules["trunk"] = trunk
        self.int8_audio = False
        if audio_net is not None:
            audio: nn.Module | None = None
            frames, bins = getattr(model, "audio_frames", None), getattr(model, "audio_bins", None)
            if int8_audio and isinstance(audio_net, ResNet2d) and frames and bins:
                try:
                    audio = Int8ResNet2d(audio_net, (model.seq_len, 1, frames // model.seq_len, bins))
                    self.int8_audio = True
                except Exception as err:  # noqa: BLE001
                    log.warning("FastTrunkModel: int8 audio network unavailable (%s: %s); using fp32", type(err).__name__, err)
            if audio is None:
                audio = fold_batchnorm(copy.deepcopy(audio_net).eval()).to(memory_format=torch.channels_last)
                for p in audio.parameters():
                    p.requires_grad_(False)
            rest._modules["audio_net"] = audio
        self.base = rest
        self.input_keys = model_input_keys(model)

    def train(self, mode: bool = True) -> "FastTrunkModel":
        if mode:
            raise RuntimeError("FastTrunkModel is inference-only (BatchNorm is folded, the trunk is int8)")
        return super().train(False)

    def forward(self, *args, **kwargs):
        with torch.no_grad(), torch.autocast("cpu", enabled=False):
            return self.base(*args, **kwargs)


@functools.lru_cache(maxsize=1)
def _self_check_int8() -> None:
    """Run the int8 primitives once on small tensors against fp32 (catches missing or changed ops).

    Also consumes PyTorch's one-time deprecation warning of ``quantize_per_tensor``.
    """
    global _quantize
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 8, 4, 6, 6, generator=g).contiguous(memory_format=_CL3D)
    checks = []
    for kernel, stride, pad in ((3, 1, 1), (1, 1, 0), (1, 2, 0)):
        w = torch.randn(16, 8, kernel, kernel, kernel, generator=g) * 0.2
        b = torch.randn(16, generator=g) * 0.1
        conv = _QConv(w, b, (stride,) * 3, (pad,) * 3, x.shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                q, s = _quantize_q(x)
            except Exception:
                _quantize = _quantize_plain
                q, s = _quantize_plain(x)
        y = conv(q, s)
        ref = F.conv3d(x, w, b, stride=stride, padding=pad)
        checks.append(float((y - ref).abs().max() / ref.abs().max().clamp_min(1e-6)))
    if not all(math.isfinite(c) and c < 0.05 for c in checks):
        raise RuntimeError(f"int8 convolutions disagree with fp32 (relative errors {checks})")


def prepare_fast(model: nn.Module, *, precision: str = "auto", int8_audio: bool = True,
                 allocator: bool = True) -> nn.Module:
    """The fast inference version of ``model`` (in eval mode); ``model`` itself is not modified.

    For VAANet: a :class:`FastVAANet` (``precision``: "auto" = int8 where the CPU has VNNI and
    PyTorch has oneDNN's int8 convolutions, else fp32; or "int8", "fp32", "bf16"). Other models get
    a BN-folded ``channels_last`` copy. ``allocator=True`` also calls :func:`tune_allocator`.
    Call the result like the model, without autocast (it manages its own precision).
    """
    from ..models.vaanet import VAANet

    if allocator:
        tune_allocator()
    if isinstance(model, VAANet):
        return FastVAANet(model, precision=precision, int8_audio=int8_audio).eval()
    if model.training:
        raise ValueError("prepare_fast: put the model in eval mode first (model.eval())")
    fast = fold_batchnorm(copy.deepcopy(model))
    for m in fast.modules():
        if isinstance(m, nn.Conv3d):
            m.weight.data = m.weight.data.contiguous(memory_format=_CL3D)
        elif isinstance(m, nn.Conv2d):
            m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
    return fast.eval()
