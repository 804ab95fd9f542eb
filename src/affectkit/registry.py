"""One small registry of model builders, each with its default config (timm-style).

A registry entry is the one place where a model declares what the rest of the kit reads about it:

- ``default_config``: every argument of the builder with its default;
- ``tasks``: the training tasks it fits (``classify``, ...; a config whose ``task`` is not one of them
  is an error);
- ``input_keys``: the sample keys its ``forward`` takes (data loading in training and prediction
  reads only those modalities); ``input_keys_for``, optional: ``(args) -> keys`` for a model whose
  keys depend on its arguments (MBT with a text encoder adds ``text``), read by
  :meth:`ModelEntry.keys_for`; ``input_keys`` is then its value on the default config;
- ``derived_args``: the arguments that follow from the data and the input config, as
  ``{arg: source}`` where a source is a dotted config path (``"input.seq_len"``), :data:`NUM_CLASSES`,
  or a callable ``(cfg, classes) -> value``;
- ``pretrained_args``: the arguments that name local pretrained-weight files (a checkpoint's own
  weights replace them when it is loaded);
- ``tiny_args``: overrides that make a tiny instance (registry-wide tests, benchmarks' smoke runs).
"""
from __future__ import annotations

import copy
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .errors import ConfigError

NUM_CLASSES = "num_classes"  # a derived-argument source: the number of classes of the data


@dataclass
class ModelEntry:
    name: str
    builder: Callable[..., Any]
    default_config: dict[str, Any]
    tasks: tuple[str, ...] = ("classify",)
    description: str = ""
    input_keys: tuple[str, ...] = ()
    derived_args: dict[str, Any] = field(default_factory=dict)
    pretrained_args: tuple[str, ...] = ()
    tiny_args: dict[str, Any] = field(default_factory=dict)
    input_keys_for: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None

    def keys_for(self, args: Mapping[str, Any]) -> tuple[str, ...]:
        """The sample keys of the model built with ``args`` (its full argument dict)."""
        return self.input_keys if self.input_keys_for is None else tuple(self.input_keys_for(args))

    @property
    def task(self) -> str:  # the first (default) task
        return self.tasks[0]

    @property
    def configs(self) -> list[str]:
        """Shipped YAML configs that use this model."""
        from .config import packaged_config_models

        return [c for c, m in packaged_config_models().items() if m == self.name]


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, *, default_config: dict[str, Any], input_keys: tuple[str, ...],
                   tasks: tuple[str, ...] | str = ("classify",), description: str = "",
                   derived_args: Mapping[str, Any] | None = None, pretrained_args: tuple[str, ...] = (),
                   tiny_args: Mapping[str, Any] | None = None,
                   input_keys_for: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None):
    """Decorator: ``@register_model("vaanet", default_config={...}, input_keys=("video", "audio"))``
    on ``builder(**cfg) -> nn.Module``; see the module docstring for the other fields."""
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    if not input_keys:
        raise ValueError(f"model {name!r}: input_keys must name the sample keys its forward takes")
    for key in list(derived_args or {}) + list(pretrained_args) + list(tiny_args or {}):
        if key not in default_config:
            raise ValueError(f"model {name!r}: {key!r} is declared but not in its default_config")
    if input_keys_for is not None and tuple(input_keys_for(default_config)) != tuple(input_keys):
        raise ValueError(f"model {name!r}: input_keys_for(default_config) must equal input_keys {tuple(input_keys)}")

    def wrap(builder):
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelEntry(name, builder, dict(default_config), tasks,
                                   description or (builder.__doc__ or "").strip().split("\n")[0],
                                   input_keys=tuple(input_keys), derived_args=dict(derived_args or {}),
                                   pretrained_args=tuple(pretrained_args), tiny_args=dict(tiny_args or {}),
                                   input_keys_for=input_keys_for)
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


def _config_value(cfg, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def derive_model_args(cfg, classes: list[str]) -> dict[str, Any]:
    """The model's full argument dict for a run: its registered defaults, the config's ``model.args``,
    and the values its entry derives from the data and the input config. A ``model.args`` value that
    disagrees with a derived one is an error (set it through the input section instead)."""
    entry = get_model_entry(cfg.model.name)
    args = dict(cfg.model.args)
    for key, source in entry.derived_args.items():
        if source == NUM_CLASSES:
            value = len(classes)
        elif callable(source):
            value = source(cfg, classes)
        else:
            value = _config_value(cfg, source)
        if key in args and args[key] != value:
            where = "the number of classes of the data" if source == NUM_CLASSES else (source if isinstance(source, str) else "the data/input config")
            raise ConfigError(f"model.args.{key}={args[key]} disagrees with {where} ({value}); "
                              f"set it there instead of in model.args")
        args[key] = value
    return model_config(cfg.model.name, **args)


def other_length_kwargs(model, length: int = 23) -> dict[str, int]:
    """``example_inputs`` keywords giving another input length, for a model declaring dynamic axes
    (``export_dynamic_axes``, e.g. TSL-Net's ``steps``) that ``example_inputs`` takes by name; {} otherwise.
    Used to check that an exported or compiled graph did not keep the example's length."""
    import inspect

    names = {n for axes in (getattr(model, "export_dynamic_axes", {}) or {}).values() for n in axes.values()}
    if not names or not hasattr(model, "example_inputs"):
        return {}
    params = inspect.signature(model.example_inputs).parameters
    return {n: length for n in sorted(names) if n in params}


def reads_media(name: str) -> bool:
    """Whether the registered model ``name`` reads media files (video, audio, text beside them), as opposed
    to pre-extracted features or skeletons only."""
    from .data.datasets import MEDIA_KEYS

    return bool(set(get_model_entry(name).input_keys) & MEDIA_KEYS)


def model_input_keys(model) -> tuple[str, ...]:
    """The sample keys a built model takes: its class's ``input_keys`` (the registry's, for a model
    built through it), unwrapping DistributedDataParallel."""
    inner = getattr(model, "module", model)
    keys = getattr(inner, "input_keys", None)
    if not keys:
        raise ConfigError(f"{type(inner).__name__} declares no input_keys (the sample keys its forward takes)")
    return tuple(keys)
