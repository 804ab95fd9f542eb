"""CTEN's audio front end: a Kaldi-compatible log-mel filterbank and its one-second windows.

:func:`kaldi_fbank` computes Kaldi's ``compute-fbank-feats`` (as ``torchaudio.compliance.kaldi.fbank``
with the options the original CTEN passes: 128 mel bins, 25 ms frames every 10 ms, Hanning window,
no energy, dither 0; ``htk_compat`` only moves the energy, which is off): per frame (``snip_edges``:
only whole frames, ``1 + (N - win) // shift`` of them), the DC offset removed, pre-emphasis 0.97,
a symmetric Hanning window, zero-padded to a power of two, the power spectrum, triangular filters
equally spaced on the mel scale ``1127 ln(1 + f / 700)`` between 20 Hz and the Nyquist frequency
(defined in mel, without area normalisation), and ``log(max(energy, float32 eps))``. The waveform
is used on the scale it is given ([-1, 1] floats, as ``torchaudio.load`` returns; Kaldi itself
reads 16-bit integers, a constant ``2 ln 32768`` higher in every bin). Like torchaudio (which the
original uses) and unlike Kaldi, filters that cover no FFT bin are allowed (e.g. 128 bins at 16 kHz,
512-point FFT): they give ``log(eps)``. Tested against kaldi-native-fbank on real speech
(``tests/data/test_fbank.py``: max abs difference <= 1e-3 on the log energies).

:func:`cten_audio_features` is the original dataset's rule (spec section 2.2): the waveform minus
its mean -> fbank (N, 128) -> exactly ``num_frames`` = ``windows`` x window frames (16 x 100 = 16
one-second windows): a shorter sequence is tiled from its start and cut; a longer one is split
into ``windows`` equal blocks and one window is taken in each, at a uniformly random offset in
training or at the block's centre in evaluation (the original draws random offsets in evaluation
too) -> normalised ``(x - (-6.6268077)) / (2 * 5.358466)`` (the AST ESC-50 statistics the original
uses).

Differences from the original: the kit decodes with PyAV and resamples to
``input.audio.sample_rate`` (the original uses the file's native rate: set ``sample_rate`` to it,
e.g. 44100 for VE-8's mp3s, to match; the filters reach the Nyquist frequency, so the rate matters),
and stereo is downmixed (the original uses the first channel).
"""
from __future__ import annotations

import functools
import os

import numpy as np
import torch

__all__ = ["FBANK_MEAN", "FBANK_STD", "kaldi_fbank", "kaldi_mel_banks", "fbank_windows", "cten_audio_features"]

FBANK_MEAN = -6.6268077  # the original's normalisation: (x - FBANK_MEAN) / (2 * FBANK_STD)
FBANK_STD = 5.358466
_EPS = float(np.finfo(np.float32).eps)  # Kaldi's log floor


def _mel(freq):
    return 1127.0 * np.log(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


@functools.lru_cache(maxsize=16)
def kaldi_mel_banks(num_bins: int, padded_window: int, sample_rate: float, low_freq: float = 20.0,
                    high_freq: float = 0.0) -> np.ndarray:
    """Kaldi's mel filters ``(num_bins, padded_window // 2 + 1)`` float64 (the Nyquist column is
    zero: Kaldi uses the first ``padded_window // 2`` FFT bins). ``high_freq <= 0`` is an offset
    from the Nyquist frequency (0: up to Nyquist)."""
    nyquist = 0.5 * sample_rate
    high = high_freq if high_freq > 0 else nyquist + high_freq
    if not 0.0 <= low_freq < high <= nyquist:
        raise ValueError(f"kaldi fbank: need 0 <= low_freq < high_freq <= Nyquist ({nyquist}), got {low_freq}, {high}")
    n_fft_bins = padded_window // 2
    mel = _mel(np.arange(n_fft_bins) * (sample_rate / padded_window))  # (n_fft_bins,)
    lo, hi = _mel(low_freq), _mel(high)
    delta = (hi - lo) / (num_bins + 1)
    left = lo + np.arange(num_bins)[:, None] * delta
    center, right = left + delta, left + 2 * delta
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    weights = np.where((mel > left) & (mel < right), np.where(mel <= center, up, down), 0.0)
    out = np.zeros((num_bins, n_fft_bins + 1))
    out[:, :n_fft_bins] = weights
    out.setflags(write=False)
    return out


@torch.autocast("cpu", enabled=False)
@torch.no_grad()
def kaldi_fbank(wave: np.ndarray, sample_rate: int, num_mel_bins: int = 128, *, frame_length_ms: float = 25.0,
                frame_shift_ms: float = 10.0, low_freq: float = 20.0, high_freq: float = 0.0,
                preemphasis: float = 0.97) -> np.ndarray:
    """Log-mel filterbank ``(frames, num_mel_bins)`` float32 of a mono waveform (see the module doc).
    Fewer samples than one frame give ``(0, num_mel_bins)``."""
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(wave, dtype=np.float64).reshape(-1)))
    win = int(sample_rate * 0.001 * frame_length_ms)
    shift = int(sample_rate * 0.001 * frame_shift_ms)
    if win < 2 or shift < 1:
        raise ValueError(f"kaldi fbank: frames of {win} samples every {shift} at {sample_rate} Hz are too short")
    if x.numel() < win:
        return np.zeros((0, num_mel_bins), dtype=np.float32)
    padded = 1 << (win - 1).bit_length()
    frames = x.unfold(0, win, shift)  # (N, win)
    frames = frames - frames.mean(dim=1, keepdim=True)  # remove the DC offset
    first = frames[:, :1] * (1.0 - preemphasis)  # Kaldi: x[0] -= coeff * x[0]
    frames = torch.cat([first, frames[:, 1:] - preemphasis * frames[:, :-1]], dim=1)
    frames = frames * torch.hann_window(win, periodic=False, dtype=torch.float64)
    power = torch.fft.rfft(frames, n=padded).abs().square()  # (N, padded/2 + 1)
    banks = torch.from_numpy(kaldi_mel_banks(num_mel_bins, padded, float(sample_rate), low_freq, high_freq).copy())
    energies = power @ banks.T
    return torch.clamp(energies, min=_EPS).log().numpy().astype(np.float32)


def fbank_windows(feats: np.ndarray, num_frames: int, windows: int, *, train: bool,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """``feats`` (N, F) -> exactly (num_frames, F) by the original CTEN rule (see the module doc)."""
    feats = np.asarray(feats)
    if num_frames % windows:
        raise ValueError(f"fbank: num_frames ({num_frames}) must be a multiple of windows ({windows})")
    n, f = feats.shape
    if n == 0:
        return np.zeros((num_frames, f), dtype=np.float32)
    if n <= num_frames:
        return feats[np.arange(num_frames) % n]
    width = num_frames // windows
    block = n // windows  # > width, since n > num_frames
    if train:
        offsets = (rng or np.random.default_rng()).integers(0, block - width + 1, size=windows)
    else:
        offsets = np.full(windows, (block - width) // 2)
    starts = np.arange(windows) * block + offsets
    return feats[(starts[:, None] + np.arange(width)[None, :]).reshape(-1)]


def cten_audio_features(path_or_wave: str | os.PathLike | np.ndarray, sample_rate: int, *, num_frames: int = 1600,
                        windows: int = 16, num_mel_bins: int = 128, train: bool = False,
                        rng: np.random.Generator | None = None) -> np.ndarray:
    """CTEN's audio input ``(num_frames, num_mel_bins)`` float32 of a media file or a mono
    waveform at ``sample_rate`` (see the module doc)."""
    if isinstance(path_or_wave, (str, os.PathLike)):
        from .audio import load_audio

        wave = load_audio(path_or_wave, sample_rate)
    else:
        wave = np.asarray(path_or_wave, dtype=np.float32).reshape(-1)
    wave = wave.astype(np.float64) - (float(wave.mean()) if wave.size else 0.0)
    feats = kaldi_fbank(wave, sample_rate, num_mel_bins)
    feats = fbank_windows(feats, num_frames, windows, train=train, rng=rng)
    return ((feats - FBANK_MEAN) / (2.0 * FBANK_STD)).astype(np.float32)
