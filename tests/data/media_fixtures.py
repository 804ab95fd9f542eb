"""Helpers for the media reader tests: videos whose frames encode their own index, remuxing."""
from __future__ import annotations

import os

import av
import numpy as np

from affectkit.data.media_writer import write_video

# Frame i shows its index as NUM_DIGITS flat vertical stripes, one base-BASE digit each, drawn
# with gray LEVELS far apart so H.264 (and resizing) keeps every stripe readable.
BASE = 6
NUM_DIGITS = 4
LEVELS = np.array([16, 60, 104, 148, 192, 236], dtype=np.uint8)


def index_frame(i: int, height: int = 64, width: int = 96) -> np.ndarray:
    """An RGB frame encoding ``i`` (0 <= i < BASE ** NUM_DIGITS), most significant digit left."""
    frame = np.empty((height, width, 3), dtype=np.uint8)
    edges = np.linspace(0, width, NUM_DIGITS + 1).astype(int)
    for d in range(NUM_DIGITS):
        digit = (i // BASE ** (NUM_DIGITS - 1 - d)) % BASE
        frame[:, edges[d]:edges[d + 1]] = LEVELS[digit]
    return frame


def decode_index(frame: np.ndarray) -> int:
    """Read back the index drawn by :func:`index_frame` (works on resized frames too)."""
    height, width = frame.shape[:2]
    edges = np.linspace(0, width, NUM_DIGITS + 1).astype(int)
    value = 0
    for d in range(NUM_DIGITS):
        lo, hi = edges[d], edges[d + 1]
        pad = max(1, (hi - lo) // 4)
        patch = frame[height // 4: 3 * height // 4 + 1, lo + pad: hi - pad].astype(np.float64)
        digit = int(np.argmin(np.abs(LEVELS.astype(np.float64) - patch.mean())))
        value = value * BASE + digit
    return value


def decode_indices(frames: np.ndarray) -> list[int]:
    return [decode_index(f) for f in frames]


def make_index_video(path, num_frames: int, fps: float = 25.0, height: int = 64, width: int = 96,
                     audio_seconds: float | None = None, sample_rate: int = 22050) -> str:
    """Write an H.264 mp4 whose frame i encodes i (keyframe every round(fps) frames)."""
    frames = np.stack([index_frame(i, height, width) for i in range(num_frames)])
    audio = None
    if audio_seconds is not None:
        t = np.arange(int(audio_seconds * sample_rate)) / sample_rate
        audio = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    write_video(path, frames, fps, audio=audio, sample_rate=sample_rate)
    return os.fspath(path)


def remux(src, dst, fmt: str, video_only: bool = False) -> str:
    """Copy the packets of ``src`` into a ``fmt`` container (e.g. "matroska", raw "h264")."""
    with av.open(os.fspath(src)) as inp, av.open(os.fspath(dst), "w", format=fmt) as out:
        streams = [s for s in inp.streams if s.type == "video" or (s.type == "audio" and not video_only)]
        mapping = {s.index: out.add_stream_from_template(s) for s in streams}
        for packet in inp.demux(*streams):
            if packet.dts is None:  # the flush packets at the end
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
    return os.fspath(dst)


def truncate(path, fraction: float) -> int:
    """Cut the file at ``path`` to ``fraction`` of its bytes; returns the new size."""
    size = int(os.path.getsize(path) * fraction)
    with open(path, "r+b") as fh:
        fh.truncate(size)
    return size


def corner_picture(height: int = 64, width: int = 32) -> np.ndarray:
    """An asymmetric RGB picture: a white square in the top-left corner, a red bar along the
    bottom edge, the rest dark gray. Shows at once whether a frame is turned or mirrored."""
    pic = np.full((height, width, 3), 40, dtype=np.uint8)
    pic[: height // 4, : width // 2] = 255
    pic[-height // 8:, :] = (220, 30, 30)
    return pic


def stored_for_display(upright: np.ndarray, rotation: int) -> np.ndarray:
    """The picture a camera stores so that a player turning it ``rotation`` degrees clockwise
    shows ``upright`` (i.e. ``upright`` turned counter-clockwise)."""
    return np.ascontiguousarray(np.rot90(upright, k=(rotation // 90) % 4))


def write_rotate_tagged(path, frames: np.ndarray, fps: float, rotate: str, fmt: str = "matroska") -> str:
    """Write H.264 ``frames`` with a plain ``rotate`` stream tag and no display matrix (how old
    FFmpeg output remuxed to Matroska carries the rotation)."""
    path = os.fspath(path)
    t, h, w, _ = frames.shape
    with av.open(path, "w", format=fmt) as out:
        stream = out.add_stream("libx264", rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.metadata["rotate"] = rotate
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
