"""affectkit: train, evaluate and deploy video emotion analysis methods with PyTorch.

>>> import affectkit
>>> affectkit.list_models()
['vaanet']
>>> model = affectkit.create_model("vaanet", depth=18, width=8)
>>> result = affectkit.train("vaanet/vaanet_synth.yaml", ["train.epochs=3"])
>>> affectkit.predict("clip.mp4", checkpoint=result.best_dir)["label"]
"""
from __future__ import annotations

import logging as _logging

__version__ = "0.1.0"

_logging.getLogger(__name__).addHandler(_logging.NullHandler())


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered models matching a glob ``pattern``."""
    from .registry import list_models as _list

    return _list(pattern)


def create_model(name: str, **overrides):
    """Build a registered model from its default config with ``overrides`` (e.g. ``depth=18``)."""
    from .registry import create_model as _create

    return _create(name, **overrides)


def load_model(checkpoint, *, device: str = "cpu"):
    """Rebuild a model from a checkpoint folder (``model.safetensors`` + ``config.json`` + ``meta.json``)."""
    from .engine.checkpoint import load_model as _load

    return _load(checkpoint, device=device)


def train(config=None, overrides=None, *, resume=None):
    """Train from a config path / shipped config name / Config; returns a ``TrainResult``."""
    from .engine.trainer import train as _train

    return _train(config, overrides, resume=resume)


def evaluate(checkpoint, *, split: str = "test", overrides=None, out_dir=None) -> dict:
    """Evaluate a checkpoint on a split; returns the metrics dict (also written to ``out_dir``)."""
    from .engine.evaluate import evaluate as _eval

    return _eval(checkpoint, split=split, overrides=overrides, out_dir=out_dir)


def predict(video, *, checkpoint, device: str = "cpu", fast: bool = False) -> dict:
    """Label, class probabilities and per-snippet temporal attention of one video file."""
    from .deploy.predictor import Predictor

    return Predictor(checkpoint, device=device, fast=fast).predict(video)


__all__ = ["__version__", "list_models", "create_model", "load_model", "train", "evaluate", "predict"]
