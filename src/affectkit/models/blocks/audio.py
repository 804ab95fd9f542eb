"""Blocks for models on spectral features (B, T, F): per-utterance normalisation and SpecAugment.

Both are export-friendly: no data-dependent Python control flow, and the masking runs only in
training mode (``self.training``), so an eval-mode model traces to a plain graph.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ...errors import ConfigError

__all__ = ["UtteranceNorm", "SpecAugment", "INPUT_NORMS"]

INPUT_NORMS = ("none", "utterance", "cmvn")


class UtteranceNorm(nn.Module):
    """Normalise each example's feature map ``(B, T, F)`` by its own statistics.

    ``"utterance"``: subtract the example's mean over T and F and divide by its standard deviation
    (removes recording gain and level, keeps the spectral shape). ``"cmvn"``: per feature bin, mean
    and standard deviation over time (cepstral mean and variance normalisation; also removes the
    speaker's and channel's average spectrum). ``"none"``: identity. A constant map (silence)
    becomes zeros: the variance has a floor ``eps``, so the output is always finite.
    """

    def __init__(self, mode: str = "utterance", eps: float = 1e-5):
        super().__init__()
        if mode not in INPUT_NORMS:
            raise ConfigError(f"input_norm must be one of {', '.join(INPUT_NORMS)}, got {mode!r}")
        self.mode = mode
        self.eps = float(eps)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, F) -> (B, T, F)
        if self.mode == "none":
            return x
        dims = (1, 2) if self.mode == "utterance" else (1,)
        x = x - x.mean(dim=dims, keepdim=True)
        return x * torch.rsqrt(x.square().mean(dim=dims, keepdim=True) + self.eps)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


def _bands(batch: int, size: int, max_width: int, device: torch.device) -> Tensor:
    """One random band per example: a (batch, size) bool mask of ``[start, start + width)`` with
    ``width`` uniform in ``0..max_width`` and the band inside ``0..size``."""
    max_width = min(int(max_width), size)
    width = torch.randint(0, max_width + 1, (batch, 1), device=device)
    start = torch.floor(torch.rand(batch, 1, device=device) * (size - width + 1))
    pos = torch.arange(size, device=device).unsqueeze(0)
    return (pos >= start) & (pos < start + width)


class SpecAugment(nn.Module):
    """SpecAugment-style masking (Park et al., Interspeech 2019) of ``(B, T, F)`` features, in
    training only: ``freq_masks`` bands of up to ``freq_width`` bins and ``time_masks`` spans of up
    to ``time_width`` frames (and at most ``max_time_ratio`` of T) per example, set to ``value``
    (0: the mean after :class:`UtteranceNorm`). No time warping. Identity in eval mode."""

    def __init__(self, freq_masks: int = 2, freq_width: int = 8, time_masks: int = 2, time_width: int = 25,
                 max_time_ratio: float = 0.2, value: float = 0.0):
        super().__init__()
        for key, v in (("freq_masks", freq_masks), ("freq_width", freq_width), ("time_masks", time_masks),
                       ("time_width", time_width)):
            if not isinstance(v, int) or v < 0:
                raise ConfigError(f"SpecAugment: {key} must be an integer >= 0, got {v!r}")
        if not 0.0 <= max_time_ratio <= 1.0:
            raise ConfigError(f"SpecAugment: max_time_ratio must be in [0, 1], got {max_time_ratio!r}")
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width
        self.max_time_ratio = float(max_time_ratio)
        self.value = float(value)

    @property
    def active(self) -> bool:
        return (self.freq_masks > 0 and self.freq_width > 0) or (self.time_masks > 0 and self.time_width > 0)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, F) -> (B, T, F)
        if not self.training or not self.active:
            return x
        b, t, f = x.shape
        for _ in range(self.freq_masks):
            x = x.masked_fill(_bands(b, f, self.freq_width, x.device).unsqueeze(1), self.value)
        time_width = min(self.time_width, int(t * self.max_time_ratio))
        for _ in range(self.time_masks):
            x = x.masked_fill(_bands(b, t, time_width, x.device).unsqueeze(2), self.value)
        return x

    def extra_repr(self) -> str:
        return (f"freq_masks={self.freq_masks}, freq_width={self.freq_width}, time_masks={self.time_masks}, "
                f"time_width={self.time_width}, max_time_ratio={self.max_time_ratio}")
