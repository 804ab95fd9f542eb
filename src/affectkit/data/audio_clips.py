"""Audio-only samples: an audio file (or the audio track of a video) -> a sample dict.

The sample loader of models that take ``("audio",)`` only (speech emotion recognition), with the
interface of :class:`~affectkit.data.clips.ClipLoader` so :class:`~affectkit.data.clips.ClipDataset`,
the trainer and the predictor use it unchanged. A sample holds::

    audio          (frames, bins) float32   MFCC or log-mel of the analysed window (input.audio)
    snippet_times  (1, 2) float32           the analysed span of the file, in seconds
    duration       float                    seconds of audio in the file
    fps            0.0                      no video frames
    path           str

With sliding windows on (:meth:`AudioClipLoader.set_windows`, the predict path; evaluation only),
``audio`` is ``(W, num_frames, bins)``, ``snippet_times`` ``(W, 2)`` and ``windows`` = W (see
:meth:`AudioClipLoader.sliding_features`). Training and evaluation on datasets keep one window.

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

Decoding cache (:class:`WaveCache`, ``data.cache_mb`` / ``data.cache_dir``; attached to the dataset
loaders by :func:`attach_wave_cache`): the decoded, resampled mono waveform of each file, before
any crop or augmentation, kept in memory (per process, least recently used first out beyond
``cache_mb``) and optionally in ``cache_dir`` (``.npy`` files, written atomically, shared by
processes and runs). The key is the file's real path, size, modification time (ns) and the decode
settings (sample rate, decode cap), so a changed file or a changed ``input.audio.sample_rate`` misses.
"""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections import OrderedDict
from typing import Any, Callable

import av
import numpy as np
import torch

from ..errors import ConfigError, MediaError
from .audio import audio_features, load_audio, resample_audio
from .clips import audio_spec

__all__ = ["AudioClipLoader", "MAX_DECODE_SECONDS", "WaveCache", "attach_wave_cache"]

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
        self.hop_seconds: float | None = None  # sliding windows (set_windows); None: one window
        self.cache: WaveCache | None = None  # decoded waveforms (attach_wave_cache); None: decode every time
        # kind whisper: the frozen encoder's states (T, D), one per 20 ms; num_frames states a window
        self.whisper = spec.kind == "whisper"
        self.state_cache = None  # EncoderStateCache, made on first use (per process)
        self.state_cache_dir: str | None = None  # data.cache_dir (attach_wave_cache)
        if self.whisper:
            from .speech_encoder import SAMPLE_RATE

            if spec.sample_rate != SAMPLE_RATE:
                raise ConfigError(f"input.audio.kind whisper: sample_rate must be {SAMPLE_RATE} (Whisper's), got {spec.sample_rate}")
            self.window = spec.num_frames

    def set_windows(self, hop_seconds: float | None = None, *, enabled: bool = True) -> None:
        """Slide the window over the whole recording in evaluation (the predict path): a hop of
        ``hop_seconds`` (default: half the window). ``enabled=False`` goes back to one window."""
        if not enabled:
            self.hop_seconds = None
            return
        hop = self.window_seconds / 2 if hop_seconds is None else float(hop_seconds)
        if not hop > 0 or not math.isfinite(hop):
            raise ConfigError(f"audio window hop must be > 0 seconds, got {hop_seconds!r}")
        self.hop_seconds = hop

    @property
    def window_seconds(self) -> float:
        if self.whisper:
            from .speech_encoder import STATE_SECONDS

            return self.window * STATE_SECONDS
        return self.window / self.spec.sample_rate

    def check(self, path: str, audio_path: str | None = None) -> None:
        """Cheap validity check: the file opens, has an audio stream and its first samples decode."""
        load_audio(audio_path or path, self.spec.sample_rate, max_seconds=_CHECK_SECONDS)

    def load(self, path: str, *, audio_path: str | None = None, rng: np.random.Generator | None = None) -> dict[str, Any]:
        source = str(audio_path or path)
        if self.whisper:
            return self._load_states(path, source, rng)
        sr = self.spec.sample_rate
        wave = self.decode(source)  # (N,) float32, N > 0
        duration = wave.size / sr
        if wave.size >= int(MAX_DECODE_SECONDS * sr):  # cut at the cap: ask the container for the length
            duration = max(duration, _container_seconds(source))
        windowed = self.hop_seconds is not None and not self.train
        feats, times = self.sliding_features(wave) if windowed else self.features(wave, rng)
        if not torch.isfinite(feats).all():  # pragma: no cover - the dB floor makes this impossible
            raise MediaError(source, "audio features are not finite")
        sample = {"audio": feats, "snippet_times": times, "duration": float(duration), "fps": 0.0, "path": str(path)}
        if windowed:
            sample["windows"] = int(feats.shape[0])
        return sample

    # ------------------------------------------------------------------ kind whisper
    def encoder_states(self, source: str) -> np.ndarray:
        """The file's encoder states (T, D) (first :data:`MAX_DECODE_SECONDS`), through the state cache."""
        from .speech_encoder import EncoderStateCache, encoder_tag, get_encoder

        a = self.cfg.audio
        if self.state_cache is None:
            cache_dir = os.path.join(self.state_cache_dir, "whisper_states") if self.state_cache_dir else None
            self.state_cache = EncoderStateCache(encoder_tag(a.encoder_model, pad_to_30s=a.encoder_pad), cache_dir=cache_dir)

        def compute():
            states = get_encoder(a.encoder_model, pad_to_30s=bool(a.encoder_pad)).encode(self.decode(source))
            if states.shape[1] != a.encoder_dim:
                raise ConfigError(f"input.audio.encoder_dim is {a.encoder_dim}, but the encoder gives {states.shape[1]}-d states")
            return states
        return self.state_cache.get(source, compute)

    def _load_states(self, path: str, source: str, rng) -> dict[str, Any]:
        from .speech_encoder import STATE_SECONDS

        states = self.encoder_states(source)  # (T, D), read-only
        n, w = int(states.shape[0]), self.window
        duration = n * STATE_SECONDS
        if self.hop_seconds is not None and not self.train:
            hop = max(1, int(round(self.hop_seconds / STATE_SECONDS)))
            starts = [0] if n <= w else [min(k * hop, n - w) for k in range(1 + math.ceil((n - w) / hop))]
            feats = torch.from_numpy(np.stack([_fit(states[s:s + w], w) for s in starts]))
            spans = torch.tensor([[s * STATE_SECONDS, min(s + w, n) * STATE_SECONDS] for s in starts], dtype=torch.float32)
            return {"audio": feats, "snippet_times": spans, "duration": duration, "fps": 0.0, "path": str(path),
                    "windows": len(starts)}
        start = 0
        if n > w:
            start = int(_rng(rng).integers(0, n - w + 1)) if self.train else (n - w) // 2
        feats = torch.from_numpy(_fit(states[start:start + w], w))
        times = torch.tensor([[start * STATE_SECONDS, min(start + w, n) * STATE_SECONDS]], dtype=torch.float32)
        return {"audio": feats, "snippet_times": times, "duration": duration, "fps": 0.0, "path": str(path)}

    def decode(self, source: str) -> np.ndarray:
        """The file's mono waveform at ``input.audio.sample_rate`` (first :data:`MAX_DECODE_SECONDS`),
        through the cache when one is attached (a copy: the cached array itself is read-only)."""
        sr = self.spec.sample_rate
        if self.cache is None:
            return load_audio(source, sr, max_seconds=MAX_DECODE_SECONDS)
        return self.cache.get(source, sr, MAX_DECODE_SECONDS,
                              lambda: load_audio(source, sr, max_seconds=MAX_DECODE_SECONDS)).copy()

    def sliding_features(self, wave: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """A mono waveform (N,) -> (features (W, num_frames, bins), spans (W, 2) in seconds): the
        window slid over the whole waveform by ``hop_seconds``. ``W = 1 + ceil((N - window) / hop)``;
        the last window is aligned to the end of the recording (it overlaps its neighbour more
        than the others do, and no window holds padding), so the spans cover the file. A recording
        no longer than one window gives one window, silence-padded around it (centred, as in
        evaluation), whose span is the recording, ``[0, N / sr]``."""
        sr, w = self.spec.sample_rate, self.window
        wave = np.asarray(wave, dtype=np.float32).reshape(-1)
        if wave.size == 0:
            raise ValueError("empty waveform")
        n = int(wave.size)
        if w <= 0 or n <= w:
            segment, _ = self._window(wave, None)
            starts, segments = [0], [segment]
            spans = [[0.0, min(n, w) / sr if w > 0 else n / sr]]
        else:
            hop = max(1, int(round(float(self.hop_seconds or self.window_seconds / 2) * sr)))
            count = 1 + math.ceil((n - w) / hop)
            starts = [min(k * hop, n - w) for k in range(count)]
            segments = [wave[s:s + w] for s in starts]
            spans = [[s / sr, (s + w) / sr] for s in starts]
        feats = np.stack([audio_features(seg, self.spec, sample_rate=sr) for seg in segments]).astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(feats)), torch.tensor(spans, dtype=torch.float32)

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


class _MemoryStore:
    """Waveforms by key, least recently used evicted first beyond ``limit`` bytes (one per process
    and limit: every loader of a run with the same ``data.cache_mb`` shares it)."""

    def __init__(self, limit: int):
        self.limit, self.used = int(limit), 0
        self.items: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, key: str) -> np.ndarray | None:
        wave = self.items.get(key)
        if wave is not None:
            self.items.move_to_end(key)
        return wave

    def put(self, key: str, wave: np.ndarray) -> None:
        size = int(wave.nbytes)
        if size > self.limit or key in self.items:
            return
        while self.items and self.used + size > self.limit:
            _, old = self.items.popitem(last=False)
            self.used -= int(old.nbytes)
        self.items[key] = wave
        self.used += size

    def clear(self) -> None:
        self.items.clear()
        self.used = 0


_STORES: dict[int, _MemoryStore] = {}


class WaveCache:
    """Decoded waveforms of files (see the module docstring): in memory up to ``cache_mb`` MiB
    (0: none) and in ``cache_dir`` when given. Picklable (DataLoader workers): only the settings
    travel, each process keeps its own memory store; the disk folder is shared. ``hits``,
    ``disk_hits`` and ``misses`` count this process's look-ups."""

    VERSION = 1  # bump when the decoder's output changes: old disk entries then miss

    def __init__(self, cache_mb: float = 2048.0, cache_dir: str | os.PathLike | None = None):
        if cache_mb is None or not float(cache_mb) >= 0:
            raise ConfigError(f"data.cache_mb must be >= 0 (0: no in-memory cache), got {cache_mb!r}")
        self.limit = int(float(cache_mb) * 2**20)
        self.cache_dir = os.fspath(cache_dir) if cache_dir else None
        self.hits = self.disk_hits = self.misses = 0

    def __getstate__(self):
        return {"limit": self.limit, "cache_dir": self.cache_dir, "hits": 0, "disk_hits": 0, "misses": 0}

    def _memory(self) -> _MemoryStore | None:
        if self.limit <= 0:
            return None
        store = _STORES.get(self.limit)  # a forked worker starts from a copy of its parent's
        if store is None:
            store = _STORES[self.limit] = _MemoryStore(self.limit)
        return store

    def clear_memory(self) -> None:
        store = self._memory()
        if store is not None:
            store.clear()

    @staticmethod
    def key(path: str, sample_rate: int, max_seconds: float) -> str:
        """The cache key of ``path`` decoded at ``sample_rate``: changes with the file (size, mtime)."""
        real = os.path.realpath(path)
        st = os.stat(real)
        text = f"v{WaveCache.VERSION}|{real}|{st.st_size}|{st.st_mtime_ns}|{int(sample_rate)}|{float(max_seconds)}|mono"
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]

    def get(self, path: str, sample_rate: int, max_seconds: float, decode: Callable[[], np.ndarray]) -> np.ndarray:
        """The waveform of ``path``: from memory, else from disk, else ``decode()`` (then stored)."""
        try:
            key = self.key(path, sample_rate, max_seconds)
        except OSError:  # missing file: let the decoder report it
            return decode()
        memory = self._memory()
        wave = memory.get(key) if memory is not None else None
        if wave is not None:
            self.hits += 1
            return wave
        wave = self._read_disk(key)
        if wave is not None:
            self.disk_hits += 1
        else:
            self.misses += 1
            wave = np.ascontiguousarray(decode(), dtype=np.float32)
            self._write_disk(key, wave)
        wave.setflags(write=False)  # shared by every later hit
        if memory is not None:
            memory.put(key, wave)
        return wave

    def _disk_path(self, key: str) -> str:
        return os.path.join(self.cache_dir, key[:2], key + ".npy")

    def _read_disk(self, key: str) -> np.ndarray | None:
        if self.cache_dir is None:
            return None
        try:
            wave = np.load(self._disk_path(key), allow_pickle=False)
        except (OSError, ValueError, EOFError):  # absent, or unreadable: decode again
            return None
        return wave if wave.dtype == np.float32 and wave.ndim == 1 and wave.size > 0 else None

    def _write_disk(self, key: str, wave: np.ndarray) -> None:
        if self.cache_dir is None:
            return
        final = self._disk_path(key)
        try:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=os.path.dirname(final))
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.save(fh, wave, allow_pickle=False)
                os.replace(tmp, final)  # atomic: readers see the old state or the whole file
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError:  # a full or read-only disk: the run goes on without the disk entry
            pass


def attach_wave_cache(loader, data_cfg) -> None:
    """Give an audio-only loader (:class:`AudioClipLoader`) the cache of ``data.cache_mb`` /
    ``data.cache_dir``; other loaders are left as they are."""
    if isinstance(loader, AudioClipLoader):
        mb = getattr(data_cfg, "cache_mb", 2048.0)
        cache_dir = getattr(data_cfg, "cache_dir", None)
        loader.cache = WaveCache(mb, cache_dir) if (mb or cache_dir) else None
        loader.state_cache_dir = str(cache_dir) if cache_dir else None


def _fit(states: np.ndarray, length: int) -> np.ndarray:
    """``states`` (t, D), t <= length -> (length, D) float32, zero rows after the states (padding: encoder
    states are never all zero, so the models find the padding as the all-zero rows)."""
    out = np.zeros((length, states.shape[1]), dtype=np.float32)
    out[:states.shape[0]] = states
    return out


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

