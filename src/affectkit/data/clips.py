"""Clip samples for the clip classifiers: a video file (or frame folder) -> a sample dict.

A sample holds ``video`` (S, 3, T, H, W) float in [0, 255], ``audio`` (frames, bins) float,
``label``, ``video_id``, ``path``, ``snippet_times`` (S, 2) seconds, ``fps`` and ``duration``.
Training samples snippet offsets and crops at random; evaluation is deterministic (centre snippets,
centre crop).
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from ..errors import MediaError
from .audio import AudioFeatureSpec, audio_features
from .datasets import VideoRecord
from .sampling import snippet_indices
from .transforms import VideoSpatialTransform
from .video import open_video

log = logging.getLogger(__name__)


def audio_spec(input_cfg) -> AudioFeatureSpec | None:
    a = input_cfg.audio
    if a.kind == "none":
        return None
    return AudioFeatureSpec(kind=a.kind, sample_rate=a.sample_rate, n_mfcc=a.n_mfcc, n_mels=a.n_mels,
                            n_fft=a.n_fft, hop_length=a.hop_length, num_frames=a.num_frames)


def feature_bins(input_cfg) -> int:
    a = input_cfg.audio
    return a.n_mfcc if a.kind == "mfcc" else a.n_mels


class ClipLoader:
    """Turns one video (and its audio) into a sample dict; raises :class:`MediaError` on bad media."""

    def __init__(self, input_cfg, *, train: bool, augment=None, with_audio: bool = True):
        self.cfg = input_cfg
        self.train = train
        aug = augment
        self.spatial = VideoSpatialTransform(
            input_cfg.sample_size, input_cfg.seq_len, train,
            **({} if aug is None else dict(crop=aug.crop, p=aug.p, ops=aug.ops, rotate_degrees=aug.rotate_degrees, brightness=aug.brightness)),
        )
        self.audio_spec = audio_spec(input_cfg) if with_audio else None

    def check(self, path: str, audio_path: str | None = None) -> None:
        """Cheap validity check of a record's media (probe only), raising MediaError on a problem."""
        with open_video(path) as reader:
            info = reader.info
        if info.num_frames < self.cfg.snippet_duration:
            raise MediaError(path, f"video too short: {info.num_frames} frames, fewer than one snippet ({self.cfg.snippet_duration} frames)")
        if self.audio_spec is not None and audio_path is None and not info.has_audio and self.cfg.audio.on_missing == "error":
            raise MediaError(path, "has no audio stream (the model needs audio; set input.audio.on_missing=silence to use silence)")

    def load(self, path: str, *, audio_path: str | None = None, rng: np.random.Generator | None = None) -> dict[str, Any]:
        cfg = self.cfg
        rng = rng or np.random.default_rng()
        with open_video(path) as reader:
            info = reader.info
            if info.num_frames < cfg.snippet_duration:
                raise MediaError(path, f"video too short: {info.num_frames} frames, fewer than one snippet ({cfg.snippet_duration} frames)")
            idx = snippet_indices(info.num_frames, cfg.seq_len, cfg.snippet_duration, frame_step=cfg.frame_step, random=self.train, rng=rng)
            # Decode with the short side already at the crop size: the crop is a square of the short side.
            decode_size = cfg.sample_size if min(info.width, info.height) > cfg.sample_size else None
            frames = reader.read_frames(idx.reshape(-1).tolist(), size=decode_size)
        sample: dict[str, Any] = {"video": frames}
        sample = self.spatial(sample, rng=rng)
        fps = info.fps if info.fps and info.fps > 0 else 30.0
        times = np.stack([idx.min(axis=1) / fps, (idx.max(axis=1) + 1) / fps], axis=1)
        sample["snippet_times"] = torch.from_numpy(times.astype(np.float32))
        sample["fps"] = float(fps)
        sample["duration"] = float(info.duration)
        sample["path"] = str(path)
        if self.audio_spec is not None:
            sample["audio"] = torch.from_numpy(self._audio(path, audio_path, info))
        return sample

    def _audio(self, path: str, audio_path: str | None, info) -> np.ndarray:
        spec = self.audio_spec
        source = audio_path or path
        if audio_path is None and not info.has_audio:
            if self.cfg.audio.on_missing == "silence":
                log.warning("%s: no audio stream; using silence", path)
                return np.zeros((spec.num_frames, feature_bins(self.cfg)), dtype=np.float32)
            raise MediaError(path, "has no audio stream (the model needs audio; set input.audio.on_missing=silence to use silence)")
        return np.ascontiguousarray(audio_features(source, spec), dtype=np.float32)


def make_loader(input_cfg, input_keys=("video", "audio"), *, train: bool, augment=None):
    """The sample loader for a model taking ``input_keys``: one place that both training and
    prediction (``deploy/predictor.py``) go through, so a file is preprocessed the same way in both."""
    keys = tuple(input_keys)
    if keys == ("audio",):  # audio-only models: an audio file or a video's audio track
        from .audio_clips import AudioClipLoader

        return AudioClipLoader(input_cfg, train=train, augment=augment)
    if "video" not in keys and "video_features" not in keys:
        raise NotImplementedError(f"no sample loader for a model taking {keys}")
    return ClipLoader(input_cfg, train=train, augment=augment,
                      with_audio="audio" in keys and input_cfg.audio.kind != "none")


class ClipDataset(Dataset):
    """Samples of a list of :class:`VideoRecord`; a broken video yields ``None`` (reported, skipped).

    Use :func:`collate_skip_none` as the DataLoader's ``collate_fn``.
    """

    def __init__(self, records: Sequence[VideoRecord], input_cfg, *, train: bool, augment=None,
                 skip_bad: bool = True, with_audio: bool = True, check: bool = True, input_keys=None):
        if input_keys is not None:
            self.loader = make_loader(input_cfg, input_keys, train=train, augment=augment)
        else:
            self.loader = ClipLoader(input_cfg, train=train, augment=augment, with_audio=with_audio)
        self.skip_bad = skip_bad
        self.problems: list[tuple[str, str]] = []
        records = list(records)
        if check:
            kept = []
            for r in records:
                try:
                    self.loader.check(r.path, r.audio_path)
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
            sample = self.loader.load(r.path, audio_path=r.audio_path, rng=rng)
        except MediaError as err:
            if not self.skip_bad:
                raise
            log.warning("skipping %s", err)
            return None
        sample["label"] = int(r.label) if r.label is not None else -1
        sample["video_id"] = r.video_id
        sample["index"] = i
        return sample


def collate_skip_none(batch: list[dict | None]) -> dict | None:
    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    return default_collate(batch)
