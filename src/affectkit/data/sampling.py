"""Temporal sampling: which frames of a video make up its snippets (TSN-style, as VAANet/CTEN)."""
from __future__ import annotations

import numpy as np


def snippet_indices(
    num_frames: int,
    seq_len: int,
    snippet_duration: int,
    *,
    frame_step: int = 1,
    random: bool = False,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Frame indices (seq_len, snippet_duration) of ``seq_len`` snippets of consecutive frames.

    The original rule: take every ``frame_step``-th frame, loop-pad the list from its start until it
    holds at least ``seq_len * snippet_duration`` entries, cut it into ``seq_len`` equal contiguous
    segments, and take ``snippet_duration`` consecutive entries of each segment, at a random offset
    (training) or centred (evaluation; the original code also used random offsets there).
    """
    if num_frames < 1:
        raise ValueError("num_frames must be >= 1")
    frames = np.arange(0, num_frames, max(1, frame_step))
    need = seq_len * snippet_duration
    if len(frames) < need:
        frames = np.resize(frames, need)  # np.resize repeats the sequence from its start
    seg = len(frames) // seq_len
    starts = np.arange(seq_len) * seg
    room = seg - snippet_duration
    if random:
        rng = rng or np.random.default_rng()
        offsets = rng.integers(0, room + 1, size=seq_len)
    else:
        offsets = np.full(seq_len, room // 2)
    idx = (starts + offsets)[:, None] + np.arange(snippet_duration)[None, :]
    return frames[idx]


def snippet_spans(indices: np.ndarray, fps: float) -> list[tuple[float, float]]:
    """(start, end) seconds of each snippet row of ``indices`` (end = last frame + one frame)."""
    fps = fps if fps and fps > 0 else 30.0
    return [(float(row.min()) / fps, float(row.max() + 1) / fps) for row in np.asarray(indices)]
