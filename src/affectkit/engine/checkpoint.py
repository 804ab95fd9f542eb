"""Checkpoints: a folder with ``model.safetensors`` + ``config.json`` + ``meta.json`` (+ ``trainer_state.pt``
for resuming) + ``manifest.json``.

Writing is atomic and durable: every file goes to a hidden temporary folder ``.NAME.tmp-PID`` and is
fsynced; ``manifest.json`` (the name and size of every other file) is written and fsynced last, so a
folder is *complete* exactly when its manifest exists and every file it lists has the listed size.
Then the old folder is renamed aside (``.NAME.old-PID``), the new one renamed into place, the parent
folder fsynced, and the old copy removed. A failure while writing removes the temporary folder and
leaves the previous checkpoint untouched. A crash between the two renames leaves no folder under the
final name: :func:`recover_checkpoint_dir` (used by :func:`find_checkpoint`) puts the newest complete
copy back.

``config.json`` holds everything needed to rebuild the model and its preprocessing (model name and
arguments, input section, class names, polarity map); ``meta.json`` holds versions, data, split,
metrics, seed. Loading fills model arguments added after the checkpoint was written with their
registered defaults, so checkpoints survive upgrades of the kit.

``trainer_state.pt`` loads with ``torch.load(..., weights_only=True)``: it holds only tensors, numbers,
strings, lists, tuples and dicts (:func:`capture_rng_state` gives the RNG states in that form).
"""
from __future__ import annotations

import collections
import fnmatch
import json
import os
import random
import re
import shutil
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError

FORMAT_VERSION = 1
WEIGHTS, CONFIG, META, TRAINER_STATE = "model.safetensors", "config.json", "meta.json", "trainer_state.pt"
MANIFEST = "manifest.json"  # written last: its presence (with matching file sizes) marks a complete folder
TRAINER_STATE_VERSION = 1
_TRAINER_MARK = "affectkit_trainer_state"  # key added to the saved trainer state (its format version)
RNG_STATE_VERSION = 1


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written; the previous one (if any) is unchanged.

    Also an ``OSError``, so callers that catch I/O errors while saving keep working.
    """


# ------------------------------------------------------------------------------------------------
# durable file operations

def _fsync_fd(fd: int) -> None:
    os.fsync(fd)


def _fsync_file(path: Path) -> None:
    """fsync a file written by someone else (safetensors): reopen it for writing (Windows needs that)."""
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        _fsync_fd(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """fsync a folder so that the names in it (new files, renames) are durable; a no-op where the
    platform cannot open or sync folders (Windows, some network file systems)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        _fsync_fd(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False, default=str)
        fh.flush()
        _fsync_fd(fh.fileno())


def _write_torch(path: Path, obj: Any) -> None:
    with open(path, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        _fsync_fd(fh.fileno())


def _write_manifest(folder: Path) -> None:
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    _write_json(folder / MANIFEST, {"format_version": FORMAT_VERSION, "files": files})


def _is_complete(folder: Path, *, legacy_ok: bool) -> bool:
    """Complete: ``manifest.json`` parses and every file it lists exists with the listed size, and
    weights, config and meta are among them. ``legacy_ok``: a folder without manifest (written before
    manifests existed) counts as complete when weights, config and meta are present and not empty."""
    try:
        if not folder.is_dir():
            return False
        man = folder / MANIFEST
        if not man.is_file():
            return legacy_ok and all((folder / f).is_file() and (folder / f).stat().st_size > 0 for f in (WEIGHTS, CONFIG, META))
        files = json.loads(man.read_text(encoding="utf-8")).get("files")
        if not isinstance(files, dict) or not {WEIGHTS, CONFIG, META} <= set(files):
            return False
        return all((folder / n).is_file() and (folder / n).stat().st_size == size for n, size in files.items())
    except (OSError, ValueError, AttributeError):
        return False


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# writing

def save_checkpoint(directory: str | os.PathLike, model: torch.nn.Module, config: dict, meta: dict,
                    trainer_state: dict | None = None) -> Path:
    """Write a checkpoint folder atomically and durably (see the module docstring); returns its path.

    Raises :class:`CheckpointWriteError` (a :class:`CheckpointError` and an ``OSError``) naming the
    folder and the cause; the previous checkpoint under ``directory`` is then unchanged.
    """
    directory = Path(directory)
    parent, name, pid = directory.parent, directory.name, os.getpid()
    tmp, old = parent / f".{name}.tmp-{pid}", parent / f".{name}.old-{pid}"

    def fail(exc: BaseException, what: str):  # the cause stays as __cause__ (errno and all)
        return CheckpointWriteError(f"{directory}: cannot save checkpoint ({what}: {type(exc).__name__}: {exc}); "
                                    f"the previous checkpoint, if any, is unchanged")

    try:
        if trainer_state is not None:
            trainer_state = _trainer_state_payload(trainer_state)
        parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt", "affectkit_format_version": str(FORMAT_VERSION)})
        _fsync_file(tmp / WEIGHTS)
        _write_json(tmp / CONFIG, {"format_version": FORMAT_VERSION, **config})
        _write_json(tmp / META, {"format_version": FORMAT_VERSION, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **meta})
        if trainer_state is not None:
            _write_torch(tmp / TRAINER_STATE, trainer_state)
        _write_manifest(tmp)
        _fsync_dir(tmp)
    except BaseException as exc:
        _rmtree(tmp)
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit
            raise
        raise fail(exc, "writing") from exc

    moved_aside = False
    try:
        if directory.exists():
            if old.exists():  # a leftover of an earlier process with our PID; 'directory' is the good copy
                shutil.rmtree(old)
            os.replace(directory, old)
            moved_aside = True
        os.replace(tmp, directory)
    except BaseException as exc:
        if moved_aside and not directory.exists():
            try:
                os.replace(old, directory)
            except OSError:
                pass  # recover_checkpoint_dir() finds it under the .old name
        _rmtree(tmp)
        if not isinstance(exc, Exception):
            raise
        raise fail(exc, "renaming into place") from exc
    _fsync_dir(parent)
    _rmtree(old)
    _clean_leftovers(directory)
    return directory


# ------------------------------------------------------------------------------------------------
# recovery

def _leftovers(directory: Path) -> list[tuple[str, int, Path]]:
    """The ``.NAME.tmp-PID`` / ``.NAME.old-PID`` folders next to ``directory``: (kind, pid, path)."""
    out = []
    prefix = f".{directory.name}."
    try:
        entries = list(directory.parent.iterdir())
    except OSError:
        return out
    for p in entries:
        if not p.name.startswith(prefix):
            continue
        m = re.fullmatch(r"(tmp|old)-(\d+)", p.name[len(prefix):])
        if m and p.is_dir():
            out.append((m.group(1), int(m.group(2)), p))
    return out


def _writer_alive(pid: int, path: Path) -> bool:
    """Whether the process that wrote a temporary folder may still be writing it (this host only)."""
    if pid == os.getpid():
        return False
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows: go by age
        try:
            return time.time() - path.stat().st_mtime < 600
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _clean_leftovers(directory: Path, keep: Path | None = None) -> None:
    """Remove ``.old`` copies and temporary folders whose writer is gone (not ``keep``)."""
    for kind, pid, p in _leftovers(directory):
        if p == keep or (kind == "tmp" and _writer_alive(pid, p)):
            continue
        _rmtree(p)


def _mtime(folder: Path) -> int:
    f = folder / MANIFEST
    try:
        return (f if f.is_file() else folder).stat().st_mtime_ns
    except OSError:
        return 0


def _best_leftover(directory: Path) -> Path | None:
    """The complete leftover to restore: the newest complete ``.tmp`` (a finished write that was not
    renamed yet), else the newest complete ``.old`` (the previous checkpoint, moved aside)."""
    found = _leftovers(directory)
    tmps = [p for kind, _, p in found if kind == "tmp" and _is_complete(p, legacy_ok=False)]
    olds = [p for kind, _, p in found if kind == "old" and _is_complete(p, legacy_ok=True)]
    for group in (tmps, olds):
        if group:
            return max(group, key=_mtime)
    return None


def recover_checkpoint_dir(directory: str | os.PathLike) -> Path | None:
    """Repair what a crash inside :func:`save_checkpoint` can leave next to ``directory``.

    When ``directory`` is missing (a crash between moving the old folder aside and renaming the new one
    into place), the newest complete ``.NAME.tmp-*`` (the newer write), else the newest complete
    ``.NAME.old-*``, is renamed to ``directory``. Other leftovers are removed: ``.old`` copies, and
    ``.tmp`` folders unless their writer is still running on this host. Returns ``directory`` when it
    exists afterwards, else ``None`` (nothing to recover). Call it (e.g. on ``run_dir / "last"``) before
    resuming; it is not meant to run while another process saves the same checkpoint.
    """
    directory = Path(directory)
    if directory.exists():
        _clean_leftovers(directory)
        return directory if directory.is_dir() else None
    chosen = _best_leftover(directory)
    if chosen is None:
        _clean_leftovers(directory)
        return None
    try:
        os.replace(chosen, directory)
    except OSError as exc:
        raise CheckpointError(f"{directory}: missing; cannot restore it from {chosen.name} ({exc})") from None
    _fsync_dir(directory.parent)
    _clean_leftovers(directory)
    return directory


def find_checkpoint(path: str | os.PathLike) -> Path:
    """Accept a checkpoint folder, or a run folder (its ``best``, else its ``last``).

    A folder left missing by a crash between the two renames of :func:`save_checkpoint` is recovered
    first (:func:`recover_checkpoint_dir`).
    """
    p = Path(path)
    if (p / CONFIG).is_file():
        return p
    candidates = [p / "best", p / "last"] if p.is_dir() else [p]
    for c in candidates:
        if (c / CONFIG).is_file():
            return c
        if c.name and not c.exists():
            try:
                got = recover_checkpoint_dir(c)
            except (OSError, CheckpointError):  # e.g. a read-only folder: use the complete copy where it is
                got = _best_leftover(c)
            if got is not None and (got / CONFIG).is_file():
                return got
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
    for key in entry.pretrained_args:  # the checkpoint's weights replace the pretrained files it started from
        if key in args:
            args[key] = None
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


# ------------------------------------------------------------------------------------------------
# trainer state (resuming): loadable with torch.load(weights_only=True)

def _weights_only_safe(obj: Any, where: str) -> Any:
    """``obj`` with numpy arrays/scalars and container subclasses turned into what
    ``torch.load(weights_only=True)`` accepts; a CheckpointError naming the entry for anything else."""
    if isinstance(obj, torch.Tensor) or obj is None:
        return obj
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise CheckpointError(f"trainer state {where}: a numpy array of Python objects cannot be saved for weights_only loading")
        return torch.from_numpy(np.array(obj, copy=True))
    if isinstance(obj, np.generic):
        return _weights_only_safe(obj.item(), where)
    for base in (bool, int, float, complex, str, bytes):
        if isinstance(obj, base):
            return obj if type(obj) is base else base(obj)
    if isinstance(obj, (torch.dtype, torch.device, torch.Size)):
        return obj
    if isinstance(obj, Mapping):
        out = collections.OrderedDict() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[_weights_only_safe(k, f"{where} key {k!r}")] = _weights_only_safe(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        items = [_weights_only_safe(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, (set, frozenset)):
        return {_weights_only_safe(v, f"{where} item") for v in obj}
    raise CheckpointError(f"trainer state {where}: a {type(obj).__module__}.{type(obj).__qualname__} cannot be loaded back "
                          f"with torch.load(weights_only=True); store tensors, numbers, strings, lists or dicts "
                          f"(RNG states: capture_rng_state())")


def _trainer_state_payload(state: dict) -> dict:
    if not isinstance(state, Mapping):
        raise CheckpointError(f"trainer state: expected a dict, got {type(state).__name__}")
    safe = _weights_only_safe(dict(state), "state")
    safe[_TRAINER_MARK] = TRAINER_STATE_VERSION
    return safe


def _trainer_state_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p / TRAINER_STATE if p.is_dir() else p


def save_trainer_state(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` (optimiser/scheduler state dicts, counters, history, :func:`capture_rng_state`)
    atomically to ``path`` (a checkpoint folder: its ``trainer_state.pt``; or a file). Numpy arrays and
    scalars become tensors and Python numbers; anything ``torch.load(weights_only=True)`` would refuse
    raises a CheckpointError naming the entry, before anything is written. Returns the file.

    Inside a checkpoint folder prefer ``save_checkpoint(..., trainer_state=state)``, which writes the
    whole folder atomically; this function does not update the folder's manifest.
    """
    f = _trainer_state_file(path)
    payload = _trainer_state_payload(state)
    tmp = f.with_name(f".{f.name}.tmp-{os.getpid()}")
    try:
        f.parent.mkdir(parents=True, exist_ok=True)
        _write_torch(tmp, payload)
        os.replace(tmp, f)
    except Exception as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise CheckpointWriteError(f"{f}: cannot save trainer state ({type(exc).__name__}: {exc})") from exc
    _fsync_dir(f.parent)
    return f


def load_trainer_state(path: str | os.PathLike) -> dict:
    """Read a trainer state written by :func:`save_trainer_state` / :func:`save_checkpoint` with
    ``torch.load(weights_only=True)`` (tensors on the CPU). ``path``: a checkpoint folder or the file.
    A missing, truncated, foreign or unsafe file raises a CheckpointError saying which."""
    f = _trainer_state_file(path)
    if not f.is_file():
        raise CheckpointError(f"{f}: no trainer state (missing file)")
    if f.stat().st_size == 0:
        raise CheckpointError(f"{f}: trainer state is empty (truncated write?)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Detected pickle protocol ..." on foreign pickles
            state = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as exc:
        msg = str(exc)
        if "Weights only load failed" in msg or "WeightsUnpickler" in msg:
            m = re.search(r"WeightsUnpickler error: ([^\n]*)", msg)
            why = m.group(1).strip() if m else msg.splitlines()[0]
            g = re.search(r"GLOBAL (\S+)", why)
            what = f"it contains {g.group(1)} objects" if g else why
            raise CheckpointError(f"{f}: trainer state refused by torch.load(weights_only=True): {what}. It was written by "
                                  f"an older affectkit or another program; it can only be loaded by trusting it "
                                  f"(torch.load(weights_only=False))") from None
        if isinstance(exc, (EOFError, RuntimeError)) or "zip archive" in msg:
            raise CheckpointError(f"{f}: trainer state is truncated or not a torch file ({type(exc).__name__}: {msg.splitlines()[0] if msg else 'end of file'})") from None
        raise CheckpointError(f"{f}: not a trainer state file ({type(exc).__name__}: {msg.splitlines()[0] if msg else ''})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{f}: not a trainer state (holds a {type(state).__name__}, expected a dict)")
    version = state.pop(_TRAINER_MARK, None)
    if version is None and "epoch" not in state:
        raise CheckpointError(f"{f}: not an affectkit trainer state (keys: {', '.join(map(str, list(state)[:8]))})")
    if isinstance(version, int) and version > TRAINER_STATE_VERSION:
        raise CheckpointError(f"{f}: trainer state written by a newer affectkit (format {version}, this one reads up to "
                              f"{TRAINER_STATE_VERSION}); upgrade affectkit")
    return state


# ------------------------------------------------------------------------------------------------
# RNG states in weights_only-safe form

def capture_rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict:
    """The states of Python's ``random``, numpy's global generator, torch's CPU generator, the CUDA
    generators (when CUDA is initialised) and the given ``generators`` (e.g. a DataLoader's), as
    tensors, lists and numbers. :func:`restore_rng_state` puts them back exactly."""
    version, internal, gauss_next = random.getstate()
    np_state = np.random.get_state(legacy=False)  # {'bit_generator', 'state': {...arrays}, 'has_gauss', 'gauss'}
    out: dict[str, Any] = {
        "version": RNG_STATE_VERSION,
        "python": {"version": int(version), "internal": [int(x) for x in internal], "gauss_next": gauss_next},
        "numpy": _np_to_safe(np_state),
        "torch": torch.get_rng_state().clone(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = [s.cpu().clone() for s in torch.cuda.get_rng_state_all()]
    if generators:
        out["generators"] = {str(k): g.get_state().clone() for k, g in generators.items()}
    return out


def _np_to_safe(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _np_to_safe(v) for k, v in obj.items()}
    return obj


def _np_from_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
        return {k: _np_from_safe(v) for k, v in obj.items()}
    return obj


def restore_rng_state(state: Mapping | None, generators: Mapping[str, torch.Generator] | None = None) -> list[str]:
    """Put back RNG states from :func:`capture_rng_state` (also the raw ``{"python": random.getstate(),
    "numpy": np.random.get_state(), "torch": ...}`` form older trainers saved). ``generators``: the
    generators to restore, by the names used when capturing; names missing from ``state`` are left
    alone. Returns the names of what was restored ("python", "numpy", "torch", "cuda", "generator:NAME")."""
    if not state:
        return []
    done: list[str] = []
    try:
        py = state.get("python")
        if isinstance(py, Mapping):
            random.setstate((int(py["version"]), tuple(int(x) for x in py["internal"]), py["gauss_next"]))
            done.append("python")
        elif py is not None:  # raw tuple (version, tuple_of_625_ints, gauss_next)
            random.setstate((int(py[0]), tuple(int(x) for x in py[1]), py[2]))
            done.append("python")
        nps = state.get("numpy")
        if isinstance(nps, Mapping):
            np.random.set_state(_np_from_safe(dict(nps)))
            done.append("numpy")
        elif nps is not None:  # raw legacy tuple ('MT19937', keys, pos, has_gauss, cached_gaussian)
            keys = nps[1].numpy() if isinstance(nps[1], torch.Tensor) else nps[1]
            np.random.set_state((str(nps[0]), np.asarray(keys, dtype=np.uint32), int(nps[2]), int(nps[3]), float(nps[4])))
            done.append("numpy")
        if state.get("torch") is not None:
            torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
            done.append("torch")
        if state.get("cuda") and torch.cuda.is_available():
            for i, s in enumerate(list(state["cuda"])[: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(torch.as_tensor(s, dtype=torch.uint8).cpu(), i)
            done.append("cuda")
        saved = state.get("generators") or {}
        for name, g in (generators or {}).items():
            if name in saved:
                g.set_state(torch.as_tensor(saved[name], dtype=torch.uint8).cpu())
                done.append(f"generator:{name}")
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"rng state: cannot restore ({type(exc).__name__}: {exc})") from None
    return done


# ------------------------------------------------------------------------------------------------
# initialising a model from another checkpoint (fine-tuning)

def _matches(key: str, patterns: list[str] | None) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns or ())


def _rename_key(key: str, rename: Mapping[str, str] | None) -> str:
    for old in sorted(rename or {}, key=len, reverse=True):  # the longest matching prefix wins
        if key.startswith(old):
            return rename[old] + key[len(old):]
    return key


def load_weights_into(model: torch.nn.Module, source: str | os.PathLike, *, strict: bool = True,
                      include: list[str] | None = None, exclude: list[str] | None = None,
                      rename: dict[str, str] | None = None) -> dict:
    """Copy weights from ``source`` (a checkpoint folder, a run folder, or a ``.safetensors`` file) into
    ``model``, e.g. to fine-tune after pretraining.

    ``rename`` maps key prefixes of the checkpoint to the model's (``{"encoder.": "backbone."}``);
    ``include``/``exclude`` are fnmatch patterns on the (renamed) names, applied to both sides
    (``exclude=["classifier.*"]`` drops a head). Returns ``{"loaded", "missing", "unexpected",
    "shape_mismatch": [{"key", "checkpoint", "model"}], "skipped", "source"}``: ``missing`` are model
    entries the checkpoint lacks, ``unexpected`` checkpoint entries the model lacks, ``skipped``
    checkpoint entries left out by include/exclude. ``strict=True`` raises a CheckpointError listing
    what did not match before any weight changes; ``strict=False`` loads what matches. Loading nothing
    at all is always an error.
    """
    src = Path(source)
    if src.is_file() or src.suffix == ".safetensors":
        if not src.is_file():
            raise CheckpointError(f"{src}: weights file not found")
        try:
            raw = load_file(str(src))
        except Exception as exc:
            raise CheckpointError(f"{src}: cannot read weights ({exc})") from None
        where = src
    else:
        ckpt = find_checkpoint(src)
        raw = load_state(ckpt)
        where = ckpt / WEIGHTS

    state: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    skipped = []
    for key, tensor in raw.items():
        new = _rename_key(key, rename)
        if (include is not None and not _matches(new, include)) or _matches(new, exclude):
            skipped.append(new)
            continue
        if new in state:
            raise CheckpointError(f"{where}: rename maps both {origin[new]!r} and {key!r} to {new!r}")
        state[new], origin[new] = tensor, key
    own = {k: v for k, v in model.state_dict().items()
           if (include is None or _matches(k, include)) and not _matches(k, exclude)}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatch = [{"key": k, "checkpoint": list(state[k].shape), "model": list(own[k].shape)}
                for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    bad = {m["key"] for m in mismatch}
    loaded = [k for k in own if k in state and k not in bad]
    report = {"loaded": loaded, "missing": missing, "unexpected": unexpected, "shape_mismatch": mismatch,
              "skipped": skipped, "source": str(where)}
    if strict and (missing or unexpected or mismatch):
        parts = []
        if missing:
            parts.append(f"missing in checkpoint ({len(missing)}): {_first(missing)}")
        if unexpected:
            parts.append(f"not in model ({len(unexpected)}): {_first(unexpected)}")
        if mismatch:
            parts.append(f"shape mismatch ({len(mismatch)}): " + _first(
                [f"{m['key']} checkpoint {tuple(m['checkpoint'])} vs model {tuple(m['model'])}" for m in mismatch]))
        raise CheckpointError(f"{where}: weights do not match the model (strict); " + "; ".join(parts)
                              + ". Use include/exclude/rename, or strict=False to load what matches")
    if not loaded:
        raise CheckpointError(f"{where}: no weight matches the model ({len(state)} in the checkpoint after "
                              f"include/exclude, {len(own)} in the model); check rename/include")
    with torch.no_grad():
        result = model.load_state_dict({k: state[k] for k in loaded}, strict=False)
    if result.unexpected_keys:  # cannot happen: every key is one of the model's
        raise CheckpointError(f"{where}: model refused {_first(list(result.unexpected_keys))}")
    return report


def _first(items: list[str], n: int = 10) -> str:
    more = f", … and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def format_load_report(report: dict) -> str:
    """A few readable lines about a :func:`load_weights_into` report, for logs."""
    loaded, missing, unexpected = report.get("loaded", []), report.get("missing", []), report.get("unexpected", [])
    mismatch, skipped = report.get("shape_mismatch", []), report.get("skipped", [])
    total = len(loaded) + len(missing) + len(mismatch)
    lines = [f"loaded {len(loaded)}/{total} model tensors from {report.get('source', '?')}"]
    if missing:
        lines.append(f"  kept as initialised, not in checkpoint ({len(missing)}): {_first(missing)}")
    if mismatch:
        lines.append(f"  kept as initialised, shape mismatch ({len(mismatch)}): " + _first(
            [f"{m['key']} {tuple(m['checkpoint'])}->{tuple(m['model'])}" for m in mismatch]))
    if unexpected:
        lines.append(f"  ignored, not in model ({len(unexpected)}): {_first(unexpected)}")
    if skipped:
        lines.append(f"  skipped by include/exclude ({len(skipped)}): {_first(skipped)}")
    return "\n".join(lines)
