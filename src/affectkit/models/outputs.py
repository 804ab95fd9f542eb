"""Typed outputs shared by the models of the kit."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class ClassifierOutput:
    """What every clip classifier of the kit returns.

    Attributes:
        logits: ``(B, K)`` unnormalised class scores.
        temporal_attention: ``(B, S)`` one weight per snippet (``None`` if the model has none).
            It is the curve used for keyframe localisation and plots.
        extras: further named tensors, documented by each model (e.g. VAANet's
            ``"spatial_attention"`` ``(B, S, P)``).
    """

    logits: Tensor
    temporal_attention: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)
