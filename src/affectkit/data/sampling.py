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
    """(start, end) seconds of each snippet row of ``indices``: the time the snippet really shows.

    A row of consecutive frames spans [first frame, last frame + one frame). The snippets of a
    video shorter than the sampled span are loop-padded (:func:`snippet_indices` repeats the frame
    list from its start), so a row may wrap from the end of the video back to its start, e.g.
    ``16 17 18 19 0 1 ... 11`` of a 20-frame video. Such a row is cut into runs of increasing
    indices at each wrap, and its span is that of its longest run (the earliest one on a tie):
    [0, 12) frames in the example, never the whole clip that ``[min, max + 1)`` would give. A span
    therefore always lies within the video and covers at most ``snippet_duration * frame_step``
    frames. ``fps`` <= 0 (unknown) counts as 30.
    """
    fps = fps if fps and fps > 0 else 30.0
    out = []
    for row in np.atleast_2d(np.asarray(indices)):
        row = row.astype(np.int64)
        cuts = np.flatnonzero(np.diff(row) <= 0) + 1  # a wrap: the next index is not after this one
        bounds = np.concatenate([[0], cuts, [len(row)]])
        k = int(np.argmax(np.diff(bounds)))  # the longest run, the first of equals
        first, last = row[bounds[k]], row[bounds[k + 1] - 1]
        out.append((float(first) / fps, float(last + 1) / fps))
    return out


def row_indices(num_rows: int, max_len: int | None, *, random: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """Which rows of a (num_rows, D) feature sequence to keep, at most ``max_len`` (TSL-style).

    ``num_rows <= max_len`` (or ``max_len`` None) keeps every row. Otherwise the rows are cut into
    ``max_len`` equal parts and one row of each is kept, in order: the middle one (uniform
    sampling, evaluation) or one drawn at random (``random``, training).
    """
    if num_rows < 0:
        raise ValueError("num_rows must be >= 0")
    if max_len is None or num_rows <= max_len:
        return np.arange(num_rows)
    edges = np.floor(np.linspace(0, num_rows, max_len + 1)).astype(np.int64)
    lo, hi = edges[:-1], edges[1:]  # every part holds >= 1 row, since num_rows > max_len
    if random:
        rng = rng or np.random.default_rng()
        return lo + np.floor(rng.random(max_len) * (hi - lo)).astype(np.int64)
    return (lo + hi - 1) // 2
