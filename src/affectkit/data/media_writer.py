"""Write small mp4 files (H.264 video + AAC audio) with PyAV: used by the synthetic set and the tests."""
from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 22050,
    *,
    codec: str = "libx264",
    crf: int = 23,
    audio_codec: str = "aac",
    rotation: int = 0,
    mirror: bool = False,
) -> None:
    """Write ``frames`` (T, H, W, 3) uint8 RGB at ``fps``, and ``audio`` (N,) float in [-1, 1] if given.

    H and W must be even (yuv420p). The file is written to ``path + '.part'`` and renamed, so a crash
    never leaves a half-written file under the final name.

    ``rotation`` (0, 90, 180, 270: clockwise degrees) and ``mirror`` (left-right, after the turn)
    write a display matrix as phones do: ``frames`` are stored as given and a player turns them.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"frame size must be even for yuv420p, got {w}x{h}")
    rotation = int(rotation)
    if rotation % 90:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {rotation}")
    rotation %= 360
    path = os.fspath(path)
    tmp = path + ".part"
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(tmp, mode="w", format="mp4") as container:
        vstream = container.add_stream(codec, rate=rate)
        vstream.width, vstream.height, vstream.pix_fmt = w, h, "yuv420p"
        if rotation or mirror:
            if not hasattr(vstream, "set_display_rotation"):
                raise RuntimeError(f"PyAV {av.__version__} cannot write a display matrix "
                                   "(VideoStream.set_display_rotation is missing)")
            # PyAV takes counter-clockwise degrees (as VideoFrame.rotation reads them back)
            vstream.set_display_rotation(-rotation, hflip=bool(mirror))
        if codec == "libx264":
            # One thread and no macroblock tree: x264 is then deterministic (same frames, same bytes);
            # with mb-tree on, small frames encoded differently from run to run. For such frames one
            # thread is no slower.
            vstream.codec_context.thread_count = 1
            vstream.options = {"crf": str(crf), "preset": "veryfast", "g": str(max(1, int(round(fps)))),
                               "threads": "1", "x264-params": "mbtree=0"}
        astream = None
        if audio is not None:
            astream = container.add_stream(audio_codec, rate=sample_rate)
            astream.layout = "mono"
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            for packet in vstream.encode(vf):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            samples = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
            chunk = 1024
            for start in range(0, len(samples), chunk):
                piece = samples[start:start + chunk][None, :]
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece), format="fltp", layout="mono")
                af.sample_rate = sample_rate
                af.pts = start
                for packet in astream.encode(af):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    os.replace(tmp, path)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono or (channels, N) float audio as 16-bit PCM WAV."""
    import wave

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").T.copy()
    with wave.open(os.fspath(path), "wb") as wf:
        wf.setnchannels(audio.shape[0])
        wf.setsampwidth(2)
        wf.setframerate(sample_rate)
        wf.writeframes(pcm.tobytes())
