"""Classification losses.

:class:`PolarityConsistentCE` is VAANet's polarity-consistent cross-entropy (PCCE, AAAI'20):
a sample whose predicted class (argmax of the logits) has the opposite polarity of its label
costs ``1 + lambda_`` times its cross-entropy::

    w_i = 1 + lambda_  if polarity[argmax z_i] != polarity[y_i]  else 1
    L   = mean_i( w_i * CE(z_i, y_i) )

The weights come from an argmax and carry no gradient. Note that this is the mean of the weighted
per-sample losses, not ``mean(w) * mean(CE)`` (a bug of the JACK port).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError

__all__ = ["PolarityConsistentCE", "build_loss", "VE8_POLARITY"]

# VE-8 class order (Anger, Anticipation, Disgust, Fear, Joy, Sadness, Surprise, Trust):
# 1 = positive (Anticipation, Joy, Surprise, Trust), 0 = negative (Anger, Disgust, Fear, Sadness).
VE8_POLARITY = (0, 1, 0, 0, 1, 0, 1, 1)


class PolarityConsistentCE(nn.Module):
    """Polarity-consistent cross-entropy (see the module docstring).

    Args:
        polarity: one polarity id per class (e.g. 1 positive / 0 negative), or ``None`` for plain
            cross-entropy.
        lambda_: the extra weight of a polarity flip (0.5 in VAANet).

    ``forward(logits (B, K), target (B,) class indices) -> scalar``.
    """

    def __init__(self, polarity: Sequence[int] | None = None, lambda_: float = 0.5):
        super().__init__()
        if lambda_ < 0:
            raise ConfigError(f"PCCE: lambda_ must be >= 0, got {lambda_!r}")
        self.lambda_ = float(lambda_)
        if polarity is None:
            self.register_buffer("polarity", None, persistent=False)
        else:
            pol = torch.as_tensor(list(polarity), dtype=torch.long)
            if pol.dim() != 1 or pol.numel() == 0:
                raise ConfigError(f"PCCE: polarity must be a non-empty list with one entry per class, got {polarity!r}")
            self.register_buffer("polarity", pol, persistent=False)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        ce = F.cross_entropy(logits, target, reduction="none")  # (B,)
        if self.polarity is None or self.lambda_ == 0:
            return ce.mean()
        if logits.shape[1] != self.polarity.numel():
            raise ValueError(
                f"PCCE: logits have {logits.shape[1]} classes but the polarity map has {self.polarity.numel()} entries"
            )
        with torch.no_grad():
            pred = logits.argmax(dim=1)
            flipped = self.polarity[pred] != self.polarity[target]
            weight = 1.0 + self.lambda_ * flipped.to(ce.dtype)  # (B,)
        return (weight * ce).mean()

    def extra_repr(self) -> str:
        pol = None if self.polarity is None else self.polarity.tolist()
        return f"polarity={pol}, lambda_={self.lambda_}"


def build_loss(name: str, polarity: Sequence[int] | None = None, lambda_: float = 0.5) -> nn.Module:
    """``"ce"``: plain cross-entropy; ``"pcce"``: :class:`PolarityConsistentCE` (needs ``polarity``)."""
    if name == "ce":
        return nn.CrossEntropyLoss()
    if name == "pcce":
        if polarity is None:
            raise ConfigError("loss 'pcce' needs a polarity map (one polarity id per class), e.g. VE8_POLARITY")
        return PolarityConsistentCE(polarity, lambda_)
    raise ConfigError(f"unknown loss {name!r}; choose 'ce' or 'pcce'")
