"""Samples for the models: a record (or a plain file path) -> a sample dict, one loader per modality.

A model names the inputs it takes (``input_keys``, e.g. ``("video", "audio")``, ``("audio",)``,
``("features",)``, ``("skeleton",)``, ``("video", "audio", "text")``); :func:`make_loader` composes
one loader per key (:mod:`affectkit.data.modalities`) into a :class:`SampleLoader`. What each key
writes into the sample:

=============  ==========================================================================================
``video``      ``video`` (S, 3, T, H, W) float in [0, 255], ``snippet_times`` (S, 2) seconds (the span
               each snippet really shows, :func:`~affectkit.data.sampling.snippet_spans`), ``fps``,
               ``duration``, ``path``
``audio``      with video: ``audio`` (frames, bins) float, the clip's MFCC / log-mel; audio-only
               models: :class:`~affectkit.data.audio_clips.AudioClipLoader`'s sample (``audio``,
               ``snippet_times`` (1, 2), ``duration``, ``fps`` 0.0, ``path``)
``text``       ``text``: list of str, one per snippet window when snippet times are known, else one
``skeleton``   ``skeleton`` (C, T, J) float, ``skeleton_length`` (real frames), ``skeleton_mask`` (T,)
``features``   ``features`` (T, D) float (T varies), ``features_length``, ``features_mask`` (T,)
=============  ==========================================================================================

A record also gives ``segments`` and ``points`` (its temporal labels, lists of dicts) and
:class:`ClipDataset` adds ``label``, ``video_id`` and ``index``. Training samples snippet offsets,
crops and windows at random; evaluation is deterministic. Bad input raises
:class:`~affectkit.errors.MediaError` naming the file. Batch with :func:`collate_samples`.
"""
from __future__ import annotations

import logging
import numbers
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from ..errors import ConfigError, MediaError
from .audio import AudioFeatureSpec
from .datasets import VideoRecord

log = logging.getLogger(__name__)

# The modality keys a model may take, in the order their loaders run (text reads the snippet times
# that video writes). ``video_features`` (cached trunk features, engine/feature_cache.py) loads as video.
MODALITY_KEYS = ("video", "audio", "features", "skeleton", "text")
_ALIASES = {"video_features": "video"}


def audio_spec(input_cfg) -> AudioFeatureSpec | None:
    a = input_cfg.audio
    if a.kind == "none":
        return None
    return AudioFeatureSpec(kind=a.kind, sample_rate=a.sample_rate, n_mfcc=a.n_mfcc, n_mels=a.n_mels,
                            n_fft=a.n_fft, hop_length=a.hop_length, num_frames=a.num_frames)


def feature_bins(input_cfg) -> int:
    a = input_cfg.audio
    if a.kind == "whisper":
        return a.encoder_dim
    return a.n_mfcc if a.kind == "mfcc" else a.n_mels


# ---------------------------------------------------------------------------------------------
@dataclass
class SampleSource:
    """What a loader reads: a dataset record's fields, or just a file path (``predict``)."""

    path: str | None
    audio_path: str | None = None
    subtitles: str | None = None
    video_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    segments: list | None = None
    points: list | None = None
    duration: float | None = None
    fps: float | None = None
    is_record: bool = False

    @property
    def name(self) -> str:
        """How errors name this source when no file is involved."""
        return self.path or self.video_id or "<sample>"


def as_source(source, audio_path: str | os.PathLike | None = None) -> SampleSource:
    """A :class:`VideoRecord` (or any object with its fields), a file path or a :class:`SampleSource`
    -> a :class:`SampleSource`; ``audio_path``, when given, replaces the source's sidecar audio."""
    audio = None if audio_path is None else os.fspath(audio_path)
    if isinstance(source, SampleSource):
        return source if audio is None else replace(source, audio_path=audio)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        return SampleSource(path=path, audio_path=audio, video_id=Path(path).stem)
    if hasattr(source, "video_id") or hasattr(source, "path"):
        path = getattr(source, "path", None)
        segments, points = getattr(source, "segments", None), getattr(source, "points", None)
        return SampleSource(
            path=None if path is None else os.fspath(path),
            audio_path=audio if audio is not None else getattr(source, "audio_path", None),
            subtitles=getattr(source, "subtitles", None),
            video_id=getattr(source, "video_id", None),
            extra=dict(getattr(source, "extra", None) or {}),
            segments=None if segments is None else list(segments),
            points=None if points is None else list(points),
            duration=getattr(source, "duration", None),
            fps=getattr(source, "fps", None),
            is_record=True,
        )
    raise TypeError(f"a sample source is a VideoRecord or a file path, got {type(source).__name__}")


class SampleLoader:
    """One loader per modality key, run in turn on one source: ``check(source)`` (cheap validity
    check) and ``load(source, rng=None) -> dict``; both raise :class:`MediaError` on bad input.

    ``source`` is a :class:`VideoRecord` or a file path; the older calls ``check(path, audio_path)``
    and ``load(path, audio_path=..., rng=...)`` still work. Each part reads its own files and
    applies its own transforms to its own keys only.
    """

    def __init__(self, parts: Sequence[Any], input_keys: Sequence[str]):
        self.parts = list(parts)
        self.input_keys = tuple(input_keys)

    def check(self, source, audio_path: str | None = None) -> None:
        src = as_source(source, audio_path)
        ctx: dict[str, Any] = {}
        for part in self.parts:
            part.check(src, ctx)

    def load(self, source, *, audio_path: str | None = None, rng: np.random.Generator | None = None) -> dict[str, Any]:
        src = as_source(source, audio_path)
        rng = rng if rng is not None else np.random.default_rng()
        sample: dict[str, Any] = {}
        ctx: dict[str, Any] = {}
        for part in self.parts:
            part.load(src, sample, rng, ctx)
        if "path" not in sample:
            sample["path"] = str(src.path or ctx.get("file") or src.video_id or "")
        if "duration" not in sample and src.duration is not None:
            sample["duration"] = float(src.duration)
        if "fps" not in sample and src.fps is not None:
            sample["fps"] = float(src.fps)
        for key in ("segments", "points"):  # temporal labels, for the temporal tasks' targets
            value = getattr(src, key)
            if value is not None:
                sample[key] = list(value)
        return sample


class ClipLoader(SampleLoader):
    """Video (and its audio) -> a sample dict: the loader of ``("video", "audio")`` models, kept
    under its old name and signature (``with_audio=False``: video only)."""

    def __init__(self, input_cfg, *, train: bool, augment=None, with_audio: bool = True):
        from .modalities import TrackAudioModality, VideoModality

        self.cfg = input_cfg
        self.train = train
        video = VideoModality(input_cfg, train=train, augment=augment)
        self.spatial = video.spatial
        self.audio_spec = audio_spec(input_cfg) if with_audio else None
        parts: list[Any] = [video]
        if self.audio_spec is not None:
            parts.append(TrackAudioModality(input_cfg))
        super().__init__(parts, ("video", "audio") if self.audio_spec is not None else ("video",))


def make_loader(input_cfg, input_keys=("video", "audio"), *, train: bool, augment=None):
    """The sample loader of a model taking ``input_keys``: one place that both training and
    prediction (``deploy/predictor.py``) go through, so a file is preprocessed the same way in both.

    ``("audio",)`` gives an :class:`~affectkit.data.audio_clips.AudioClipLoader` (that also takes
    records); with video, ``audio`` is the clip's own audio track (or sidecar file), skipped when
    ``input.audio.kind`` is ``none``. An unknown key raises :class:`ConfigError`.
    """
    from . import modalities

    keys = tuple(dict.fromkeys(_ALIASES.get(str(k), str(k)) for k in input_keys))
    unknown = [k for k in keys if k not in MODALITY_KEYS]
    if unknown:
        raise ConfigError(f"no sample loader for input key(s) {', '.join(map(repr, unknown))} (model inputs {tuple(input_keys)}); "
                          f"the known modality keys are: {', '.join(MODALITY_KEYS)}")
    if not keys:
        raise ConfigError(f"a model must take at least one input; the known modality keys are: {', '.join(MODALITY_KEYS)}")
    if keys == ("audio",):  # audio-only models: an audio file or a video's audio track
        return modalities.AudioOnlyLoader(input_cfg, train=train, augment=augment)
    parts = [modalities.build_modality(k, input_cfg, keys, train=train, augment=augment)
             for k in MODALITY_KEYS if k in keys]
    return SampleLoader([p for p in parts if p is not None], keys)


class ClipDataset(Dataset):
    """Samples of a list of :class:`VideoRecord` for a model taking ``input_keys`` (default: video,
    with its audio unless ``with_audio=False``); a broken sample yields ``None`` (reported, skipped).

    Use :func:`collate_samples` as the DataLoader's ``collate_fn``.
    """

    def __init__(self, records: Sequence[VideoRecord], input_cfg, *, train: bool, augment=None,
                 skip_bad: bool = True, with_audio: bool = True, check: bool = True, input_keys=None):
        if input_keys is None:
            input_keys = ("video", "audio") if with_audio else ("video",)
        self.input_keys = tuple(input_keys)
        self.loader = make_loader(input_cfg, self.input_keys, train=train, augment=augment)
        self.skip_bad = skip_bad
        self.problems: list[tuple[str, str]] = []
        records = list(records)
        if check:
            kept = []
            for r in records:
                try:
                    self.loader.check(r)
                    kept.append(r)
                except MediaError as err:
                    if not skip_bad:
                        raise
                    self.problems.append((err.path, err.problem))
                    log.warning("skipping %s", err)
            records = kept
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        r = self.records[i]
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)).item()))
        try:
            sample = self.loader.load(r, rng=rng)
        except MediaError as err:
            if not self.skip_bad:
                raise
            log.warning("skipping %s", err)
            return None
        sample["label"] = int(r.label) if r.label is not None else -1
        sample["video_id"] = r.video_id
        sample["index"] = i
        return sample


# ---------------------------------------------------------------------------------------------
def collate_samples(batch: list[dict | None]) -> dict | None:
    """A list of sample dicts -> a batch dict; ``None`` samples (skipped media) are dropped, and an
    empty batch gives ``None``.

    - tensors (and numpy arrays) of one shape are stacked;
    - tensors of one rank whose shapes differ in exactly one dimension, the time axis (``features``
      (T, D): dim 0; ``skeleton`` (C, T, J): dim 1, when ``input.skeleton.max_frames`` is null), are
      zero-padded to the longest along it, and ``<key>_mask`` (B, T_max) bool, True on real steps,
      is added unless the samples carry their own ``<key>_mask`` (which is padded with False);
      shapes differing in more dimensions raise ``ValueError`` naming the key;
    - numbers become tensors (int64, float64, bool), as ``default_collate`` makes them;
    - strings, lists of strings (``text``), ``segments`` / ``points`` and anything else stay a list,
      one entry per sample; a key some samples lack is a list with ``None`` for those.
    """
    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    keys = list(dict.fromkeys(k for b in batch for k in b))
    out: dict[str, Any] = {}
    for key in keys:
        values = [b.get(key) for b in batch]
        if any(key not in b for b in batch):
            out[key] = values
            continue
        if all(isinstance(v, (torch.Tensor, np.ndarray)) for v in values):
            tensors = [torch.as_tensor(v) for v in values]
            if all(t.shape == tensors[0].shape for t in tensors):
                out[key] = default_collate(tensors)
            else:
                out[key], mask = _pad(key, tensors)
                if not key.endswith("_mask") and f"{key}_mask" not in keys:
                    out[f"{key}_mask"] = mask
        elif all(isinstance(v, (bool, np.bool_)) for v in values):
            out[key] = torch.tensor([bool(v) for v in values])
        elif all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in values):
            out[key] = torch.tensor([int(v) for v in values], dtype=torch.int64)
        elif all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in values):
            out[key] = torch.tensor([float(v) for v in values], dtype=torch.float64)
        else:
            out[key] = values
    return out


def _pad(key: str, tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad ``tensors`` along the one dimension their shapes differ in -> (batch, mask (B, T_max))."""
    shapes = [tuple(t.shape) for t in tensors]
    if len({len(s) for s in shapes}) != 1:
        raise ValueError(f"cannot batch {key!r}: tensors of different ranks {sorted(set(shapes))}")
    differ = [d for d in range(len(shapes[0])) if len({s[d] for s in shapes}) > 1]
    if len(differ) != 1:
        raise ValueError(f"cannot batch {key!r}: shapes {sorted(set(shapes))} differ in more than one dimension "
                         f"(only the time axis may vary)")
    dim = differ[0]
    lengths = [s[dim] for s in shapes]
    size = list(shapes[0])
    size[dim] = max(lengths)
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    out = torch.zeros((len(tensors), *size), dtype=dtype)
    mask = torch.zeros((len(tensors), size[dim]), dtype=torch.bool)
    for i, (t, n) in enumerate(zip(tensors, lengths)):
        out[i].narrow(dim, 0, n).copy_(t)
        mask[i, :n] = True
    return out, mask


collate_skip_none = collate_samples  # the older name
