"""Training with a frozen trunk's features computed once.

When the visual trunk is frozen and training uses no augmentation (deterministic centre snippets,
centre crop), the trunk's output for a video never changes: it is computed on the first pass and
kept in memory, with the audio features, and later epochs train only the heads and the audio
network from the cache. This trades augmentation (random snippets and crops) for speed; it also
runs the trunk in eval mode (its BatchNorm uses its running statistics).
"""
from __future__ import annotations

import logging
from typing import Iterator

import torch

from .evaluate import progress, to_device

log = logging.getLogger(__name__)


class TrunkFeatureCache:
    def __init__(self, model: torch.nn.Module, loader, device: torch.device, *, dtype: torch.dtype = torch.float32):
        if not getattr(model, "frozen_trunk", False) or not hasattr(model, "trunk_features"):
            raise ValueError(f"{type(model).__name__}: feature caching needs a model with a frozen trunk and trunk_features()")
        self.model, self.loader, self.device, self.dtype = model, loader, device, dtype
        self.items: list[dict] = []

    def build(self, main: bool = True) -> None:
        trunk = self.model.trunk
        was_training = trunk.training
        trunk.eval()
        with torch.inference_mode():
            for batch in progress(self.loader, "caching trunk features", main):
                if batch is None:
                    continue
                batch = to_device(batch, self.device)
                feats = self.model.trunk_features(batch["video"]).to(self.dtype).cpu()
                for i in range(feats.shape[0]):
                    self.items.append({"video_features": feats[i].clone(), "audio": batch["audio"][i].cpu().clone(),
                                       "label": int(batch["label"][i]), "index": int(batch["index"][i])})
        trunk.train(was_training)
        mb = sum(it["video_features"].numel() * it["video_features"].element_size() for it in self.items) / 2**20
        log.info("cached trunk features of %d videos (%.1f MiB)", len(self.items), mb)

    def __len__(self) -> int:
        return len(self.items)

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[dict]:
        order = torch.randperm(len(self.items), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            chunk = [self.items[j] for j in order[start:start + batch_size]]
            yield {
                "video_features": torch.stack([c["video_features"] for c in chunk]).float().to(self.device),
                "audio": torch.stack([c["audio"] for c in chunk]).to(self.device),
                "label": torch.tensor([c["label"] for c in chunk], device=self.device),
                "index": torch.tensor([c["index"] for c in chunk]),
            }
