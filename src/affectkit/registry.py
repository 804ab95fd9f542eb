"""One small registry of model builders, each with its default config (timm-style)."""
from __future__ import annotations

import copy
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ConfigError


@dataclass
class ModelEntry:
    name: str
    builder: Callable[..., Any]
    default_config: dict[str, Any]
    task: str = "classify"
    description: str = ""
    configs: list[str] = field(default_factory=list)  # shipped YAML configs using this model
    input_keys: tuple[str, ...] = ("video", "audio")  # the sample keys ``forward`` takes (data loading follows them)


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, *, default_config: dict[str, Any], task: str = "classify", description: str = "",
                   input_keys: tuple[str, ...] = ("video", "audio")):
    """Decorator: ``@register_model("vaanet", default_config={...})`` on ``builder(**cfg) -> nn.Module``.

    ``input_keys`` names the sample keys the model's ``forward`` takes (e.g. ``("audio",)`` for an
    audio-only model); data loading in training and prediction reads only those modalities."""

    def wrap(builder):
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelEntry(name, builder, dict(default_config), task,
                                   description or (builder.__doc__ or "").strip().split("\n")[0],
                                   input_keys=tuple(input_keys))
        return builder

    return wrap


def _ensure_loaded() -> None:
    from . import models  # noqa: F401  (importing registers the built-in models)


def get_model_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    if name not in _MODELS:
        raise ConfigError(f"unknown model {name!r}; registered models: {', '.join(sorted(_MODELS)) or '(none)'}")
    return _MODELS[name]


def list_models(pattern: str = "*") -> list[str]:
    _ensure_loaded()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def model_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The registered default config of ``name`` with ``overrides`` applied (unknown keys are an error)."""
    entry = get_model_entry(name)
    cfg = copy.deepcopy(entry.default_config)
    for key, value in overrides.items():
        if key not in cfg:
            raise ConfigError(f"model {name!r} has no option {key!r}; options: {', '.join(sorted(cfg))}")
        cfg[key] = value
    return cfg


def create_model(name: str, **overrides: Any):
    """Build a registered model from its default config plus ``overrides``."""
    entry = get_model_entry(name)
    return entry.builder(**model_config(name, **overrides))
