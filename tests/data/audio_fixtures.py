"""Helpers for the audio dataset tests: synthetic speech-like tones in any container and codec."""
from __future__ import annotations

import os

import av
import numpy as np

from affectkit.data.media_writer import write_wav


def tone(seconds: float, sr: int, freq: float = 220.0, amp: float = 0.3, seed: int = 0, noise: float = 0.02) -> np.ndarray:
    """A harmonic tone with a little noise and a slow amplitude envelope (speech-like), float32 (N,)."""
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    y = sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 2, 3))
    y = y * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t)) + noise * rng.standard_normal(n)
    return (amp * y / 1.8).astype(np.float32)


def encode_audio(path, wave: np.ndarray, sr: int, codec: str, fmt: str | None = None) -> str:
    """Encode ``wave`` (N,) or (channels, N) with PyAV (``mp3``, ``flac``, ``aac`` in ``ipod``, ...)."""
    wave = np.asarray(wave, np.float32)
    if wave.ndim == 1:
        wave = wave[None]
    layout = "mono" if wave.shape[0] == 1 else "stereo"
    with av.open(os.fspath(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=sr)
        stream.layout = layout
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=sr,
                                      frame_size=stream.codec_context.frame_size or 1024)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave), format="fltp", layout=layout)
        frame.sample_rate = sr
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return os.fspath(path)


def ravdess_name(emotion: int, actor: int, statement: int = 1, repetition: int = 1, intensity: int = 1,
                 modality: int = 3, channel: int = 1, ext: str = ".wav") -> str:
    return f"{modality:02d}-{channel:02d}-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}{ext}"


def make_ravdess_folder(root, actors=(1, 2, 3), emotions=(1, 3, 5), sr: int = 16000, seconds: float = 0.6) -> list[str]:
    """A tiny RAVDESS-like tree ``Actor_NN/<name>.wav``: one tone per (actor, emotion, statement)."""
    paths = []
    for a in actors:
        d = os.path.join(os.fspath(root), f"Actor_{a:02d}")
        os.makedirs(d, exist_ok=True)
        for e in emotions:
            for s in (1, 2):
                p = os.path.join(d, ravdess_name(e, a, statement=s))
                write_wav(p, tone(seconds, sr, freq=110.0 * e, seed=a * 100 + e * 10 + s), sr)
                paths.append(p)
    return paths
