"""Audio-only samples: an audio file (or the audio track of a video) -> a sample dict.

The sample loader of models that take ``("audio",)`` only (speech emotion recognition), with the
interface of :class:`~affectkit.data.clips.ClipLoader` so :class:`~affectkit.data.clips.ClipDataset`,
the trainer and the predictor use it unchanged. A sample holds::

    audio          (frames, bins) float32   MFCC or log-mel of the analysed window (input.audio)
    snippet_times  (1, 2) float32           the analysed span of the file, in seconds
    duration       float                    seconds of audio in the file
    fps            0.0                      no video frames
    path           str

The analysed window is ``input.audio.num_frames`` feature frames: ``(num_frames - 1) * hop_length``
samples at ``input.audio.sample_rate`` (any input rate and channel count is resampled and downmixed
by FFmpeg). A longer recording is cropped (at random in training, around its centre in evaluation);
a shorter one is padded with silence (placed at random in training, centred in evaluation), so the
features never repeat speech. Only the first :data:`MAX_DECODE_SECONDS` of a file are decoded.
In training, ``train.augment.speed: [low, high]`` also plays each recording at a random speed in
that range (resampling: tempo and pitch change together, Kaldi-style speed perturbation), which
varies the voice as more speakers would.

Bad input raises :class:`~affectkit.errors.MediaError` naming the file: missing, empty (0 bytes),
not decodable, no audio stream (an audio-only model has nothing else to analyse, so
``input.audio.on_missing=silence`` does not apply), or no decodable sample (a header-only WAV, a
truncated file). Silent recordings (all zeros) are accepted: the dB features are floored
(``amin``/``top_db``), so they are finite, and the models' per-utterance normalisation maps a
constant input to zeros; whether silence means anything is the dataset's business, and dropping
such files would silently change a dataset's size.
"""
from __future__ import annotations

from typing import Any

import av
import numpy as np
import torch

from ..errors import ConfigError, MediaError
from .audio import audio_features, load_audio, resample_audio
from .clips import audio_spec

__all__ = ["AudioClipLoader", "MAX_DECODE_SECONDS"]

# Decode at most this much of a file (a long video's audio track); the window is taken from it.
MAX_DECODE_SECONDS = 600.0
# check(): decode this much to know that a file has decodable audio samples.
_CHECK_SECONDS = 0.05


class AudioClipLoader:
    """One audio file -> a sample dict (see the module docstring); raises :class:`MediaError`."""

    def __init__(self, input_cfg, *, train: bool, augment=None):
        spec = audio_spec(input_cfg)
        if spec is None:
            raise ConfigError("input.audio.kind is 'none', but the model takes audio; use mfcc or log_mel")
        if spec.num_frames < 1:
            raise ConfigError(f"input.audio.num_frames must be >= 1, got {spec.num_frames}")
        self.cfg = input_cfg
        self.spec = spec
        self.train = train
        speed = getattr(augment, "speed", None) if train else None
        self.speed = None if speed is None or tuple(speed) == (1.0, 1.0) else (float(speed[0]), float(speed[1]))
        # a centred STFT gives 1 + N // hop frames: this many samples give exactly num_frames
        self.window = (spec.num_frames - 1) * spec.hop_length

    @property
    def window_seconds(self) -> float:
        return self.window / self.spec.sample_rate

    def check(self, path: str, audio_path: str | None = None) -> None:
        """Cheap validity check: the file opens, has an audio stream and its first samples decode."""
        load_audio(audio_path or path, self.spec.sample_rate, max_seconds=_CHECK_SECONDS)

    def load(self, path: str, *, audio_path: str | None = None, rng: np.random.Generator | None = None) -> dict[str, Any]:
        source = str(audio_path or path)
        sr = self.spec.sample_rate
        wave = load_audio(source, sr, max_seconds=MAX_DECODE_SECONDS)  # (N,) float32, N > 0
        duration = wave.size / sr
        if wave.size >= int(MAX_DECODE_SECONDS * sr):  # cut at the cap: ask the container for the length
            duration = max(duration, _container_seconds(source))
        feats, times = self.features(wave, rng)
        if not torch.isfinite(feats).all():  # pragma: no cover - the dB floor makes this impossible
            raise MediaError(source, "audio features are not finite")
        return {"audio": feats, "snippet_times": times, "duration": float(duration), "fps": 0.0, "path": str(path)}

    def features(self, wave: np.ndarray, rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A mono waveform (N,) at ``input.audio.sample_rate`` -> (features (num_frames, bins),
        the analysed span (1, 2) in seconds of the waveform), with the training-time speed
        perturbation and random window, or the deterministic centred window in evaluation."""
        sr = self.spec.sample_rate
        wave = np.asarray(wave, dtype=np.float32).reshape(-1)
        if wave.size == 0:
            raise ValueError("empty waveform")
        n, scale = int(wave.size), 1.0
        if self.speed is not None:  # played at speed s: n / s samples; spans are given in the original's time
            factor = float(_rng(rng).uniform(*self.speed))
            if abs(factor - 1.0) > 1e-3:
                played = resample_audio(wave, int(round(sr * factor)), sr)
                if played.size > 0:
                    wave, scale = played, n / played.size
        segment, start = self._window(wave, rng)
        feats = audio_features(segment, self.spec, sample_rate=sr)  # (num_frames, bins)
        used = min(int(wave.size), self.window) if self.window > 0 else int(wave.size)
        times = np.array([[start * scale / sr, (start + used) * scale / sr]], dtype=np.float32)
        return torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32)), torch.from_numpy(times)

    def _window(self, wave: np.ndarray, rng: np.random.Generator | None) -> tuple[np.ndarray, int]:
        """Crop or pad ``wave`` to the window; returns it and the file offset (samples) it starts at."""
        n, w = int(wave.size), self.window
        if w <= 0:
            return wave[:1], 0
        if n >= w:
            slack = n - w
            start = int(_rng(rng).integers(0, slack + 1)) if self.train else slack // 2
            return wave[start:start + w], start
        pad = w - n
        left = int(_rng(rng).integers(0, pad + 1)) if self.train else pad // 2
        out = np.zeros(w, dtype=np.float32)
        out[left:left + n] = wave
        return out, 0


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng()


def _container_seconds(path: str) -> float:
    try:
        with av.open(path, metadata_errors="ignore") as c:
            if c.duration:
                return float(c.duration) / 1e6
            stream = c.streams.audio[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
    except (av.FFmpegError, OSError, IndexError, ValueError):
        pass
    return 0.0

