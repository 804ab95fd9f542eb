"""Typed outputs shared by the models of the kit."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

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


@dataclass
class FeatureCacheHook:
    """What a model offers for training from cached features (``train.cache_trunk_features``).

    When part of a model is frozen and training uses no augmentation, that part's output for a
    sample never changes: the trainer computes it once with ``compute(batch) -> {alias: tensor}``
    (batched, first dim = samples) and trains later epochs from the cache, with the modules in
    ``frozen`` kept in eval mode. ``replaces`` names the inputs the cached tensors stand for; the
    model's ``forward`` accepts each alias in place of its input (its ``input_aliases``).
    """

    compute: Callable[[dict], dict[str, Tensor]]
    replaces: tuple[str, ...]
    frozen: list = field(default_factory=list)
