"""Training tasks: what a trainer needs to know about a kind of problem, independent of the model.

``classify`` (clip classification: VAANet now, CTEN next) is the first; temporal localisation and
masked pretraining will be further entries of :data:`TASKS`.
"""
from __future__ import annotations

from typing import Any

import torch

from ..config import Config
from ..data.clips import ClipDataset, feature_bins
from ..data.datasets import DatasetIndex
from ..errors import ConfigError
from ..losses import build_loss
from ..metrics import classification_metrics
from ..registry import get_model_entry, model_config


def model_inputs(model: torch.nn.Module, batch: dict) -> dict[str, Any]:
    """The keyword arguments of ``model.forward`` taken from a batch, by the model's ``input_keys``."""
    inner = model.module if hasattr(model, "module") else model  # DistributedDataParallel wraps the model
    keys = list(getattr(inner, "input_keys", ("video",)))
    if "video_features" in batch and "video" not in batch:  # cached trunk features (feature_cache.py)
        keys = ["video_features" if k == "video" else k for k in keys]
    missing = [k for k in keys if k not in batch]
    if missing:
        raise KeyError(f"batch lacks {missing} needed by {type(model).__name__}")
    return {k: batch[k] for k in keys}


class ClassificationTask:
    """Single-label clip classification."""

    name = "classify"

    def __init__(self, cfg: Config, classes: list[str], polarity: dict[str, str] | None):
        self.cfg, self.classes, self.polarity = cfg, list(classes), polarity
        pol = [1 if polarity[c] == "positive" else 0 for c in classes] if polarity else None
        if cfg.train.loss == "pcce" and pol is None:
            raise ConfigError("train.loss=pcce needs a polarity map (data.polarity: ve8, ek6 or {class: positive|negative}); or use train.loss=ce")
        self.loss_fn = build_loss(cfg.train.loss, polarity=pol, lambda_=cfg.train.pcce_lambda)

    # -- model -----------------------------------------------------------------------------
    def model_args(self) -> dict[str, Any]:
        """The model's full argument dict: its registered defaults, the config's ``model.args``,
        and the values that follow from the data and input sections."""
        cfg = self.cfg
        entry = get_model_entry(cfg.model.name)
        derived = {
            "num_classes": len(self.classes),
            "seq_len": cfg.input.seq_len,
            "snippet_duration": cfg.input.snippet_duration,
            "sample_size": cfg.input.sample_size,
            "audio_frames": cfg.input.audio.num_frames,
            "audio_bins": feature_bins(cfg.input),
        }
        args = dict(cfg.model.args)
        for key, value in derived.items():
            if key not in entry.default_config:
                continue
            if key in args and args[key] != value:
                raise ConfigError(f"model.args.{key}={args[key]} disagrees with the data/input config ({value}); "
                                  f"set it through the input section (e.g. input.seq_len) instead")
            args[key] = value
        return model_config(cfg.model.name, **args)

    # -- data ------------------------------------------------------------------------------
    def dataset(self, index: DatasetIndex, split: str, *, train: bool):
        cfg = self.cfg
        records = index.split(split)
        keys = get_model_entry(cfg.model.name).input_keys
        return ClipDataset(records, cfg.input, train=train, augment=cfg.train.augment if train else None,
                           skip_bad=cfg.data.skip_bad, input_keys=keys)

    # -- steps -----------------------------------------------------------------------------
    def loss(self, model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, Any]:
        out = model(**model_inputs(model, batch))
        return self.loss_fn(out.logits.float(), batch["label"]), out

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, batch: dict) -> dict[str, Any]:
        out = model(**model_inputs(model, batch))
        probs = torch.softmax(out.logits.float(), dim=-1)
        return {"probs": probs.cpu(), "temporal_attention": None if out.temporal_attention is None else out.temporal_attention.float().cpu()}

    def metrics(self, y_true, y_pred) -> dict[str, Any]:
        return classification_metrics(y_true, y_pred, self.classes, self.polarity)


TASKS = {"classify": ClassificationTask}


def build_task(cfg: Config, classes, polarity):
    if cfg.task not in TASKS:
        raise ConfigError(f"task {cfg.task!r} unknown; tasks: {', '.join(TASKS)}")
    return TASKS[cfg.task](cfg, classes, polarity)
