"""Training from cached features of a model's frozen part (``train.cache_trunk_features``).

A model offers it through ``feature_cache_hook()`` (:class:`~affectkit.models.outputs.FeatureCacheHook`):
when its frozen part's output never changes (no augmentation: deterministic centre snippets, centre
crop), that output is computed on one pass and kept in memory with the rest of each sample, and the
epochs train the other modules from the cache. This trades augmentation for speed; the frozen
modules run in eval mode (their BatchNorm uses its running statistics).
"""
from __future__ import annotations

import logging
from typing import Iterator

import torch

from ..errors import ConfigError
from .evaluate import progress, to_device

log = logging.getLogger(__name__)


def feature_cache_hook(model: torch.nn.Module):
    hook_fn = getattr(model, "feature_cache_hook", None)
    hook = hook_fn() if callable(hook_fn) else None
    if hook is None:
        raise ConfigError(f"train.cache_trunk_features: {type(model).__name__} offers no feature cache in this configuration "
                          f"(VAANet: set model.args.frozen_trunk=true)")
    return hook


class FeatureCache:
    def __init__(self, model: torch.nn.Module, loader, device: torch.device, *, dtype: torch.dtype = torch.float32):
        self.hook = feature_cache_hook(model)
        self.loader, self.device, self.dtype = loader, device, dtype
        self.items: list[dict] = []

    def freeze(self) -> None:
        """Put the frozen modules in eval mode (call after ``model.train()``)."""
        for m in self.hook.frozen:
            m.eval()

    def build(self, main: bool = True) -> None:
        modes = [m.training for m in self.hook.frozen]
        self.freeze()
        with torch.inference_mode():
            for batch in progress(self.loader, "caching features", main):
                if batch is None:
                    continue
                batch = to_device(batch, self.device)
                cached = {k: v.to(self.dtype).cpu() for k, v in self.hook.compute(batch).items()}
                n = next(iter(cached.values())).shape[0]
                for i in range(n):
                    item = {k: v[i].clone() for k, v in cached.items()}
                    for k, v in batch.items():
                        if k in self.hook.replaces or k in item:
                            continue
                        item[k] = v[i].cpu().clone() if torch.is_tensor(v) else v[i]
                    self.items.append(item)
        for m, mode in zip(self.hook.frozen, modes):
            m.train(mode)
        mb = sum(v.numel() * v.element_size() for it in self.items for v in it.values() if torch.is_tensor(v)) / 2**20
        log.info("cached features of %d samples (%.1f MiB)", len(self.items), mb)

    def __len__(self) -> int:
        return len(self.items)

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self.items) // batch_size)

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[dict]:
        order = torch.randperm(len(self.items), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            chunk = [self.items[j] for j in order[start:start + batch_size]]
            out = {}
            for k, v in chunk[0].items():
                vals = [c[k] for c in chunk]
                out[k] = torch.stack(vals).to(self.device) if torch.is_tensor(v) else vals
            yield out
