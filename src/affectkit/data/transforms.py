"""Keyed transforms: each acts on one key of a sample dict (``video``, ``audio``, ...).

Video tensors here are float (S, 3, T, H, W) in [0, 255] (the original ``ToTensor(norm_value=1)``);
the model normalises. Random parameters are drawn once per video, so every frame of a clip gets the
same crop and the same augmentation, as in the original code.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F


class Compose:
    def __init__(self, transforms: Sequence[Callable[[dict], dict]]):
        self.transforms = list(transforms)

    def __call__(self, sample: dict) -> dict:
        for t in self.transforms:
            sample = t(sample)
        return sample


def _square_crop(x: torch.Tensor, position: str) -> torch.Tensor:
    """Square crop of side min(H, W) of (N, C, H, W) at 'center', 'tl', 'tr', 'bl' or 'br'."""
    h, w = x.shape[-2:]
    s = min(h, w)
    top = {"center": (h - s) // 2, "tl": 0, "tr": 0, "bl": h - s, "br": h - s}[position]
    left = {"center": (w - s) // 2, "tl": 0, "tr": w - s, "bl": 0, "br": w - s}[position]
    return x[..., top:top + s, left:left + s]


def _rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=x.dtype)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class VideoSpatialTransform:
    """Frames (S*T, H, W, 3) uint8 -> (S, 3, T, size, size) float in [0, 255].

    train: a square crop at the centre or one corner, chosen at random (``crop='corner'``, the
    original), resized to ``size``; then with probability ``p`` one op of ``ops`` (horizontal flip,
    rotation by U(-deg, deg), brightness factor U(lo, hi)). eval: centre square crop, resized.
    """

    def __init__(self, size: int, seq_len: int, train: bool, *, crop: str = "corner", p: float = 0.3,
                 ops: Sequence[str] = ("flip", "rotate", "brightness"), rotate_degrees: float = 20.0,
                 brightness: Sequence[float] = (0.5, 1.0), key: str = "video"):
        self.size, self.seq_len, self.train = size, seq_len, train
        self.crop, self.p, self.ops = crop, p, list(ops)
        self.rotate_degrees, self.brightness, self.key = rotate_degrees, tuple(brightness), key

    def __call__(self, sample: dict, rng: np.random.Generator | None = None) -> dict:
        frames = sample[self.key]
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
        rng = rng or np.random.default_rng()
        position = "center"
        if self.train and self.crop == "corner":
            position = ("center", "tl", "tr", "bl", "br")[int(rng.integers(5))]
        x = _square_crop(x, position)
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=x.shape[-1] > self.size)
        if self.train and self.ops and rng.random() < self.p:
            op = self.ops[int(rng.integers(len(self.ops)))]
            if op == "flip":
                x = x.flip(-1)
            elif op == "rotate":
                x = _rotate(x, float(rng.uniform(-self.rotate_degrees, self.rotate_degrees)))
            elif op == "brightness":
                x = x * float(rng.uniform(*self.brightness))
            else:
                raise ValueError(f"unknown augmentation op {op!r}")
        x = x.clamp_(0, 255)
        n = x.shape[0]
        t = n // self.seq_len
        sample[self.key] = x.reshape(self.seq_len, t, 3, self.size, self.size).permute(0, 2, 1, 3, 4).contiguous()
        return sample
