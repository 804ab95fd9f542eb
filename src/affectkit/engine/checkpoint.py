"""Checkpoints: a folder with ``model.safetensors`` + ``config.json`` + ``meta.json`` (+ ``trainer_state.pt``
for resuming). Folders are written to a temporary name and renamed, so a crash never leaves a
half-written checkpoint under the final name.

``config.json`` holds everything needed to rebuild the model and its preprocessing (model name and
arguments, input section, class names, polarity map); ``meta.json`` holds versions, data, split,
metrics, seed. Loading fills model arguments added after the checkpoint was written with their
registered defaults, so checkpoints survive upgrades of the kit.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError

FORMAT_VERSION = 1
WEIGHTS, CONFIG, META, TRAINER_STATE = "model.safetensors", "config.json", "meta.json", "trainer_state.pt"


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False, default=str)
        fh.flush()
        os.fsync(fh.fileno())


def save_checkpoint(directory: str | os.PathLike, model: torch.nn.Module, config: dict, meta: dict,
                    trainer_state: dict | None = None) -> Path:
    """Write a checkpoint folder atomically (temporary folder, then rename over the old one)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt", "affectkit_format_version": str(FORMAT_VERSION)})
    _write_json(tmp / CONFIG, {"format_version": FORMAT_VERSION, **config})
    _write_json(tmp / META, {"format_version": FORMAT_VERSION, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **meta})
    if trainer_state is not None:
        torch.save(trainer_state, tmp / TRAINER_STATE)
    old = directory.parent / f".{directory.name}.old-{os.getpid()}"
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
    return directory


def find_checkpoint(path: str | os.PathLike) -> Path:
    """Accept a checkpoint folder, or a run folder (its ``best``, else its ``last``)."""
    p = Path(path)
    if (p / CONFIG).is_file():
        return p
    for sub in ("best", "last"):
        if (p / sub / CONFIG).is_file():
            return p / sub
    # A crash between the two renames of save_checkpoint leaves only the '.old' copy.
    olds = sorted(p.parent.glob(f".{p.name}.old-*")) if p.name else []
    if olds and (olds[-1] / CONFIG).is_file():
        return olds[-1]
    if not p.exists():
        raise CheckpointError(f"{p}: checkpoint not found")
    raise CheckpointError(f"{p}: not a checkpoint folder (expected {WEIGHTS}, {CONFIG} and {META})")


def read_checkpoint_config(path: str | os.PathLike) -> tuple[Path, dict, dict]:
    ckpt = find_checkpoint(path)
    try:
        config = json.loads((ckpt / CONFIG).read_text(encoding="utf-8"))
        meta = json.loads((ckpt / META).read_text(encoding="utf-8")) if (ckpt / META).is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{ckpt}: unreadable config/meta JSON ({exc})") from None
    version = config.get("format_version", 0)
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{ckpt}: written by a newer affectkit (format {version}, this one reads up to {FORMAT_VERSION}); upgrade affectkit")
    for key in ("model", "classes"):
        if key not in config:
            raise CheckpointError(f"{ckpt}/{CONFIG}: missing {key!r}")
    return ckpt, config, meta


def load_state(ckpt: Path) -> dict[str, torch.Tensor]:
    f = ckpt / WEIGHTS
    if not f.is_file():
        raise CheckpointError(f"{f}: weights file missing")
    try:
        return load_file(str(f))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{f}: cannot read weights ({exc})") from None


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu"):
    """Rebuild a model from a checkpoint folder (or run folder) and load its weights, in eval mode.

    Returns the model; ``model.affectkit_config`` and ``model.affectkit_meta`` hold the JSON files.
    """
    from ..registry import create_model, get_model_entry

    ckpt, config, meta = read_checkpoint_config(path)
    name = config["model"]["name"]
    entry = get_model_entry(name)
    args = dict(config["model"].get("args", {}))
    unknown = set(args) - set(entry.default_config)
    if unknown:
        raise CheckpointError(f"{ckpt}: model {name!r} no longer has option(s) {', '.join(sorted(unknown))}")
    for key in ("pretrained_trunk", "pretrained_audio"):
        if key in args:
            args[key] = None  # the checkpoint's weights replace them
    model = create_model(name, **args)
    state = load_state(ckpt)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise CheckpointError(f"{ckpt}/{WEIGHTS}: weights do not match model {name!r} built from {CONFIG}: "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong[:5]}")
    model.load_state_dict(state)
    model.to(device).eval()
    model.affectkit_config = config
    model.affectkit_meta = meta
    return model
