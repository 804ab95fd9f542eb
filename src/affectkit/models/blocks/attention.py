"""Attention blocks shared by the video emotion models.

:class:`AxisAttention` is the "score, mix, normalise" attention used by VAANet (spatial, channel,
temporal and audio-temporal attention) and by CTEN (joint temporal attention):

    x (N, C, L) --Conv1d(C->1, k=1, no bias) -> BN1d(1) -> tanh--> (N, L)
                --Linear(L->L) across the L positions--> (N, L)
                --softmax over L, times L ("softmax")  or  ReLU ("relu")--> weights (N, L)

With softmax the weights average to 1; with ReLU they are unnormalised and may all be zero.
"""
from __future__ import annotations

from torch import Tensor, nn

__all__ = ["AxisAttention"]


class AxisAttention(nn.Module):
    """Weights for the L positions of a ``(N, C, L)`` map (see the module docstring).

    Args:
        channels: C, the feature size scored by the 1x1 convolution.
        length: L, the number of positions (fixed: the mixing layer is a Linear L->L).
        fc_bias: whether the L->L layer has a bias.
        normalize: "softmax" (weights = L * softmax) or "relu".

    Submodules: ``proj`` (Conv1d), ``norm`` (BatchNorm1d(1)), ``fc`` (Linear).
    ``forward(x)`` returns the weights ``(N, L)``; apply them with ``x * w[:, None, :]``.
    """

    def __init__(self, channels: int, length: int, *, fc_bias: bool, normalize: str = "softmax"):
        super().__init__()
        if normalize not in ("softmax", "relu"):
            raise ValueError(f"normalize must be 'softmax' or 'relu', got {normalize!r}")
        self.channels, self.length, self.normalize = channels, length, normalize
        self.proj = nn.Conv1d(channels, 1, kernel_size=1, bias=False)
        self.norm = nn.BatchNorm1d(1)
        self.fc = nn.Linear(length, length, bias=fc_bias)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, L) -> (N, L)
        scores = self.norm(self.proj(x)).tanh().squeeze(1)  # (N, L)
        scores = self.fc(scores)
        if self.normalize == "softmax":
            return scores.softmax(dim=1) * self.length
        return scores.relu()

    def extra_repr(self) -> str:
        return f"channels={self.channels}, length={self.length}, normalize={self.normalize!r}"
