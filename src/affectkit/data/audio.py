"""Audio loading (any media file, via PyAV) and spectral features (MFCC, log-mel) in torch.

:func:`mfcc` reproduces ``librosa.feature.mfcc`` with librosa 0.11 defaults (centered
constant-padded STFT with a periodic Hann window, power spectrum, Slaney mel filterbank with
Slaney area normalisation, ``power_to_db(ref=1, amin=1e-10, top_db=80)``, orthonormal DCT-II) but
returns ``(frames, n_mfcc)`` as the VAANet code uses it. :func:`audio_features` is the one-call
path from a file (or a waveform) to a fixed-length feature matrix.
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import av
import numpy as np
import torch

from affectkit.errors import MediaError

__all__ = [
    "load_audio",
    "iter_audio",
    "resample_audio",
    "mfcc",
    "log_mel",
    "stream_log_mel",
    "mel_filterbank",
    "fit_length",
    "AudioFeatureSpec",
    "audio_features",
    "segment_audio_features",
]

# Give up on a stream after this many packets in a row fail to decode.
_MAX_BAD_PACKETS = 64


# ----------------------------------------------------------------------------------------------
# loading


def _short_reason(err: BaseException) -> str:
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return reason.strip().splitlines()[0][:200]


def _new_resampler(rate: int, mono: bool) -> av.AudioResampler:
    if mono:
        # rematrix_maxval=1 normalises the downmix: stereo becomes (L + R) / 2 like librosa's
        # mean over channels (FFmpeg's default gives (L + R) / sqrt(2))
        return av.AudioResampler(format="flt", layout="mono", rate=rate,
                                 options={"rematrix_maxval": "1.0"})
    return av.AudioResampler(format="fltp", layout=None, rate=rate)  # keep the channel layout


def iter_audio(
    path: str | os.PathLike,
    sample_rate: int = 44100,
    *,
    mono: bool = True,
    max_seconds: float | None = None,
) -> Iterator[np.ndarray]:
    """Decode the first audio stream of a media file chunk by chunk (what FFmpeg's resampler hands
    out, a few thousand samples each): float32 ``(n,)`` (``mono``) or ``(channels, n)`` arrays in
    [-1, 1] at ``sample_rate``, so a long recording never has to be in memory at once. Same
    decoding, errors and ``max_seconds`` rule as :func:`load_audio` (which concatenates them);
    the errors about the file itself are raised before the first chunk."""
    path = os.fspath(path)
    sample_rate = int(sample_rate)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    if not os.path.exists(path):
        raise MediaError(path, "file not found")
    if os.path.isdir(path):
        raise MediaError(path, "is a directory, not a media file")
    if os.path.getsize(path) == 0:
        raise MediaError(path, "file is empty (0 bytes)")
    try:
        container = av.open(path, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as err:
        raise MediaError(path, f"not a decodable media file ({_short_reason(err)})") from err
    if not container.streams.audio:
        container.close()
        raise MediaError(path, "has no audio stream")
    return _iter_audio(container, path, sample_rate, mono, max_seconds)


def _iter_audio(container, path: str, sample_rate: int, mono: bool, max_seconds: float | None) -> Iterator[np.ndarray]:
    limit = None if max_seconds is None else max(0, int(math.ceil(max_seconds * sample_rate)))
    total = 0
    error: BaseException | None = None
    with container:
        stream = container.streams.audio[0]
        resampler = _new_resampler(sample_rate, mono)

        def take(frames) -> Iterator[np.ndarray]:
            nonlocal total
            for out in frames:
                arr = out.to_ndarray().astype(np.float32, copy=False)
                if mono:
                    arr = arr.reshape(-1)
                n = arr.shape[-1]
                if limit is not None:
                    arr = arr[..., : max(0, limit - total)]
                total += n
                if arr.shape[-1]:
                    yield np.ascontiguousarray(arr)

        if limit != 0:
            bad = 0
            try:
                for packet in container.demux(stream):
                    try:
                        frames = packet.decode()
                    except av.FFmpegError as err:  # a corrupt packet: skip it
                        error, bad = err, bad + 1
                        if bad > _MAX_BAD_PACKETS:
                            break
                        continue
                    bad = 0
                    for frame in frames:
                        frame.pts = None  # let the resampler count samples (no gap filling)
                        try:
                            out = resampler.resample(frame)
                        except ValueError:
                            # the input format changed mid-stream: flush, start a new resampler
                            yield from take(resampler.resample(None))
                            resampler = _new_resampler(sample_rate, mono)
                            out = resampler.resample(frame)
                        yield from take(out)
                    if limit is not None and total >= limit:
                        break
            except (av.FFmpegError, OSError) as err:  # the demuxer gave up: truncated file
                error = err
            try:
                yield from take(resampler.resample(None))  # flush what the resampler holds back
            except (av.FFmpegError, ValueError) as err:  # pragma: no cover - defensive
                error = error or err
    if total == 0:
        if limit == 0:
            return
        why = f" ({_short_reason(error)})" if error is not None else ""
        raise MediaError(path, f"audio is truncated or corrupt: no sample could be decoded{why}")


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = 44100,
    *,
    mono: bool = True,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Decode the first audio stream of any media file (mp4, mkv, avi, mp3, wav, flac, ogg, ...).

    Returns float32 samples in [-1, 1] at ``sample_rate``: shape ``(N,)`` when ``mono`` (channels
    are downmixed by FFmpeg), else ``(channels, N)``. Decoding stops after ``max_seconds``.
    (:func:`iter_audio` gives the same samples chunk by chunk.)

    Raises :class:`~affectkit.errors.MediaError` when the file is missing, empty, not decodable,
    has no audio stream, or is truncated/corrupt so badly that no sample decodes (a partly
    decodable file returns what decoded).
    """
    chunks = list(iter_audio(path, sample_rate, mono=mono, max_seconds=max_seconds))
    if not chunks:  # max_seconds == 0
        if mono:
            return np.zeros((0,), dtype=np.float32)
        with av.open(os.fspath(path), mode="r", metadata_errors="ignore") as c:
            channels = max(1, c.streams.audio[0].codec_context.channels or 1)
        return np.zeros((channels, 0), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(chunks, axis=-1), dtype=np.float32)


def resample_audio(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a mono float waveform (N,) with FFmpeg's resampler (same one :func:`load_audio` uses)."""
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    if int(orig_sr) == int(target_sr) or wave.size == 0:
        return wave.copy()
    resampler = av.AudioResampler(format="flt", layout="mono", rate=int(target_sr))
    out: list[np.ndarray] = []
    step = 1 << 16
    for start in range(0, wave.size, step):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(wave[None, start:start + step]), format="flt", layout="mono"
        )
        frame.sample_rate = int(orig_sr)
        out.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    out.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(out).astype(np.float32, copy=False) if out else np.zeros(0, np.float32)


# ----------------------------------------------------------------------------------------------
# spectral features


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above."""
    freq = np.asarray(freq, dtype=np.float64)
    mel = freq / (200.0 / 3.0)
    knee_mel = 1000.0 / (200.0 / 3.0)
    log_step = math.log(6.4) / 27.0
    above = freq >= 1000.0
    return np.where(above, knee_mel + np.log(np.maximum(freq, 1e-300) / 1000.0) / log_step, mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    knee_mel = 1000.0 / (200.0 / 3.0)
    log_step = math.log(6.4) / 27.0
    return np.where(mel >= knee_mel, 1000.0 * np.exp(log_step * (mel - knee_mel)), mel * (200.0 / 3.0))


@functools.lru_cache(maxsize=16)
def _mel_filterbank_cached(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    bins = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    # n_mels triangles need n_mels + 2 edge frequencies, evenly spaced in mel
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    weights = np.zeros((n_mels, bins.size), dtype=np.float64)
    for m in range(n_mels):
        rising = (bins - edges[m]) / widths[m]
        falling = (edges[m + 2] - bins) / widths[m + 1]
        weights[m] = np.maximum(0.0, np.minimum(rising, falling))
    # Slaney normalisation: every triangle has the same area
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    weights.setflags(write=False)
    return weights


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int = 128, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """Slaney-style mel filterbank (n_mels, 1 + n_fft // 2), area-normalised, float64."""
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax:
        raise ValueError(f"need 0 <= fmin < fmax, got fmin={fmin}, fmax={fmax}")
    return _mel_filterbank_cached(int(sample_rate), int(n_fft), int(n_mels), float(fmin), fmax)


@functools.lru_cache(maxsize=16)
def _dct_matrix(n_out: int, n_in: int) -> torch.Tensor:
    """Rows 0..n_out-1 of the orthonormal DCT-II matrix of size n_in."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2.0 * n_in)) * math.sqrt(2.0 / n_in)
    basis[0] /= math.sqrt(2.0)
    return torch.from_numpy(basis)


def _as_mono_wave(wave: np.ndarray) -> torch.Tensor:
    arr = np.asarray(wave)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"wave must be 1-D (N,), got shape {arr.shape}")
    if arr.size == 0:
        arr = np.zeros(1)
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


@torch.autocast("cpu", enabled=False)
@torch.no_grad()
def _mel_power(wave, sample_rate, n_fft, hop_length, n_mels, fmin, fmax, center: bool = True) -> torch.Tensor:
    """Mel power spectrogram (n_mels, frames), float32 (as librosa): centered, zero-padded,
    periodic Hann window. ``center=False``: no padding, frame i starts at sample i * hop (the
    caller has padded; :func:`stream_log_mel` feeds it consecutive pieces of one padded signal)."""
    if n_fft <= 0 or hop_length <= 0:
        raise ValueError(f"n_fft and hop_length must be > 0, got {n_fft}, {hop_length}")
    y = _as_mono_wave(wave)
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float32)
    spec = torch.stft(y, n_fft, hop_length=hop_length, win_length=n_fft, window=window,
                      center=center, pad_mode="constant", normalized=False, onesided=True,
                      return_complex=True)
    power = spec.real.square() + spec.imag.square()
    basis = torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax).astype(np.float32))
    return basis @ power


@torch.autocast("cpu", enabled=False)
@torch.no_grad()
def _power_to_db(power: torch.Tensor, amin: float = 1e-10, top_db: float | None = 80.0) -> torch.Tensor:
    """10 * log10(power) (ref = 1), floored at ``amin`` and at ``max - top_db``."""
    db = 10.0 * torch.log10(torch.clamp(power, min=amin))
    if top_db is not None:
        db = torch.maximum(db, db.max() - top_db)
    return db


def log_mel(
    wave: np.ndarray,
    sample_rate: int,
    n_mels: int = 128,
    n_fft: int = 2048,
    hop_length: int = 512,
    fmin: float = 0.0,
    fmax: float | None = None,
    top_db: float | None = 80.0,
) -> np.ndarray:
    """Log-mel spectrogram in dB, ``(frames, n_mels)`` float32 (same STFT/mel code as :func:`mfcc`).

    Equals ``librosa.power_to_db(librosa.feature.melspectrogram(...), top_db=top_db).T``.
    """
    power = _mel_power(wave, sample_rate, n_fft, hop_length, n_mels, fmin, fmax)
    return _power_to_db(power, top_db=top_db).T.contiguous().numpy().astype(np.float32)


def stream_log_mel(
    chunks: Iterable[np.ndarray],
    sample_rate: int,
    n_mels: int = 128,
    n_fft: int = 2048,
    hop_length: int = 512,
    fmin: float = 0.0,
    fmax: float | None = None,
    top_db: float | None = 80.0,
    block_frames: int = 512,
) -> np.ndarray:
    """:func:`log_mel` of the concatenation of ``chunks`` (mono float waveform pieces, e.g. from
    :func:`iter_audio`), computed block by block: only about ``block_frames`` hops of samples and
    the (frames, n_mels) mel powers are held, never the whole waveform. Same frames and values as
    ``log_mel(np.concatenate(chunks), ...)`` (the centred STFT's zero padding at both ends, and
    the ``top_db`` floor relative to the loudest frame of the whole signal)."""
    if n_fft <= 0 or hop_length <= 0:
        raise ValueError(f"n_fft and hop_length must be > 0, got {n_fft}, {hop_length}")
    half = n_fft // 2
    pending = [np.zeros(half, dtype=np.float32)]  # the centred STFT's left padding
    held = half
    powers: list[torch.Tensor] = []
    need = n_fft + max(1, int(block_frames) - 1) * hop_length  # samples of one block of frames

    def emit(buf: np.ndarray, frames: int) -> None:
        powers.append(_mel_power(buf[: n_fft + (frames - 1) * hop_length], sample_rate, n_fft, hop_length,
                                 n_mels, fmin, fmax, center=False))

    for chunk in chunks:
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if not chunk.size:
            continue
        pending.append(chunk)
        held += chunk.size
        if held < need:
            continue
        buf = np.concatenate(pending)
        frames = 1 + (buf.size - n_fft) // hop_length
        emit(buf, frames)
        rest = buf[frames * hop_length:]
        pending, held = [rest], rest.size
    pending.append(np.zeros(n_fft - half, dtype=np.float32))  # the right padding
    buf = np.concatenate(pending)
    if buf.size >= n_fft:
        emit(buf, 1 + (buf.size - n_fft) // hop_length)
    if not powers:  # no samples at all: one frame of silence, as log_mel of an empty wave
        return log_mel(np.zeros(1, np.float32), sample_rate, n_mels, n_fft, hop_length, fmin, fmax, top_db)
    power = torch.cat(powers, dim=1)
    return _power_to_db(power, top_db=top_db).T.contiguous().numpy().astype(np.float32)


def mfcc(
    wave: np.ndarray,
    sample_rate: int,
    n_mfcc: int = 32,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """MFCCs ``(frames, n_mfcc)`` float32, equal to ``librosa.feature.mfcc(y, sr, n_mfcc=...).T``.

    ``frames = 1 + len(wave) // hop_length``. Works for silence (finite values) and for input
    shorter than ``n_fft``.
    """
    if not 0 < n_mfcc <= n_mels:
        raise ValueError(f"need 0 < n_mfcc <= n_mels, got n_mfcc={n_mfcc}, n_mels={n_mels}")
    power = _mel_power(wave, sample_rate, n_fft, hop_length, n_mels, fmin, fmax)
    with torch.autocast("cpu", enabled=False), torch.no_grad():  # features in float32 whatever the caller runs under
        db = _power_to_db(power)
        coeffs = _dct_matrix(n_mfcc, n_mels).to(db.dtype) @ db  # (n_mfcc, frames)
    return coeffs.T.contiguous().numpy().astype(np.float32)


def fit_length(features: np.ndarray, length: int) -> np.ndarray:
    """Make ``features`` (N, F) exactly ``length`` frames: tile from the start if shorter,
    keep the first ``length`` frames if longer (VAANet's rule). No frames gives zeros."""
    feats = np.asarray(features)
    if feats.ndim != 2:
        raise ValueError(f"features must be 2-D (N, F), got shape {feats.shape}")
    length = int(length)
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    n, f = feats.shape
    if n == 0:
        dtype = feats.dtype if feats.dtype.kind == "f" else np.float32
        return np.zeros((length, f), dtype=dtype)
    if n >= length:
        return np.ascontiguousarray(feats[:length])
    return feats[np.arange(length) % n]


@dataclass
class AudioFeatureSpec:
    """Which audio features a method wants. The defaults are VAANet's (32 MFCCs at 44.1 kHz,
    4096 frames of 512 samples, about 47.5 s)."""

    kind: str = "mfcc"  # "mfcc" or "log_mel"
    sample_rate: int = 44100
    n_mfcc: int = 32
    n_mels: int = 128
    n_fft: int = 2048
    hop_length: int = 512
    num_frames: int = 4096

    @property
    def num_features(self) -> int:
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels

    @property
    def max_samples(self) -> int:
        """Samples that influence the first ``num_frames`` (centered) frames, plus a margin."""
        return self.num_frames * self.hop_length + self.n_fft


def audio_features(
    path_or_wave: str | os.PathLike | np.ndarray,
    spec: AudioFeatureSpec | None = None,
    *,
    sample_rate: int | None = None,
) -> np.ndarray:
    """Features ``(spec.num_frames, F)`` float32 of a media file or of a waveform.

    A path is decoded only as far as the first ``spec.num_frames`` frames need (plus a margin),
    so long videos are cheap. A waveform (N,) (or (C, N), averaged) at ``sample_rate`` (default
    ``spec.sample_rate``) is resampled if needed and cut the same way, so both give the same
    result. Note: top_db clipping is relative to the loudest frame of the part analysed.
    """
    spec = spec or AudioFeatureSpec()
    _check_kind(spec)
    wave = _mono_wave(path_or_wave, spec, sample_rate, max_seconds=spec.max_samples / spec.sample_rate + 0.5)
    wave = wave[: spec.max_samples]
    return fit_length(_wave_features(wave, spec), spec.num_frames)


def _mono_wave(path_or_wave, spec: AudioFeatureSpec, sample_rate: int | None, *, max_seconds: float) -> np.ndarray:
    """A mono waveform at ``spec.sample_rate``: a path decoded up to ``max_seconds``, or a waveform (N,) or
    (C, N) (channels averaged) at ``sample_rate`` (default ``spec.sample_rate``), resampled if needed."""
    if isinstance(path_or_wave, (str, os.PathLike)):
        return load_audio(path_or_wave, spec.sample_rate, max_seconds=max_seconds)
    wave = np.asarray(path_or_wave, dtype=np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=0)
    sr = spec.sample_rate if sample_rate is None else int(sample_rate)
    return resample_audio(wave, sr, spec.sample_rate) if sr != spec.sample_rate else wave


def _check_kind(spec: AudioFeatureSpec) -> None:
    if spec.kind not in ("mfcc", "log_mel"):
        raise ValueError(f"unknown audio feature kind {spec.kind!r} (expected 'mfcc' or 'log_mel')")


def _wave_features(wave: np.ndarray, spec: AudioFeatureSpec) -> np.ndarray:
    if spec.kind == "mfcc":
        return mfcc(wave, spec.sample_rate, n_mfcc=spec.n_mfcc, n_fft=spec.n_fft,
                    hop_length=spec.hop_length, n_mels=spec.n_mels)
    return log_mel(wave, spec.sample_rate, n_mels=spec.n_mels, n_fft=spec.n_fft, hop_length=spec.hop_length)


def segment_audio_features(
    path_or_wave: str | os.PathLike | np.ndarray,
    spec: AudioFeatureSpec,
    segments,
    *,
    train: bool = False,
    rng: np.random.Generator | None = None,
    sample_rate: int | None = None,
) -> np.ndarray:
    """Features ``(spec.num_frames, F)`` read as S = ``len(segments)`` windows of ``num_frames / S``
    frames, window j inside segment j = (start_s, end_s) of the track (MART's rule for its 1-s audio
    chunks): at a random offset within the segment in training (``rng``), centred in evaluation; a
    segment shorter than a window gets the window centred on it (clamped to the track). A track
    shorter than one window is tiled (:func:`fit_length`). Features are computed once over the track up
    to the last segment's end (top_db clipping is relative to the loudest frame of that part).
    """
    _check_kind(spec)
    segments = [(float(a), float(b)) for a, b in segments]
    if not segments or spec.num_frames % len(segments):
        raise ValueError(f"{len(segments)} segments cannot share {spec.num_frames} frames equally")
    per = spec.num_frames // len(segments)
    end = max(b for _, b in segments)
    frames_per_s = spec.sample_rate / spec.hop_length
    wave = _mono_wave(path_or_wave, spec, sample_rate, max_seconds=end + (per + 2) / frames_per_s + 0.5)
    feats = _wave_features(wave, spec)
    n = feats.shape[0]
    rng = rng if rng is not None else np.random.default_rng(0)
    out = []
    for a, b in segments:
        lo, hi = int(round(a * frames_per_s)), int(round(b * frames_per_s))
        room = hi - lo - per
        off = lo + (int(rng.integers(0, room + 1)) if train else room // 2) if room >= 0 else lo + room // 2
        off = min(max(off, 0), max(n - per, 0))
        out.append(fit_length(feats[off:off + per], per))
    return np.ascontiguousarray(np.concatenate(out, 0), dtype=np.float32)
