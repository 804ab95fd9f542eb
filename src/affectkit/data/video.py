"""Video readers: frame-exact random access into video files (PyAV) and JPEG frame folders.

The main entry points are :func:`probe_video`, :func:`open_video` and :func:`read_frames`.
Every reader has the same interface: ``.info`` (a :class:`VideoInfo`), ``.read_frames(indices,
size=None)`` returning ``(N, H, W, 3)`` uint8 RGB frames in the order asked, ``close()``, and the
context-manager protocol.

How :class:`VideoReader` finds frames
-------------------------------------
Samplers ask for a few snippets of consecutive frames spread over a video. The reader sorts the
distinct indices and walks them in order with one forward decoder. Before each wanted frame it
decides whether to keep decoding forward or to seek:

* When the container has a seek index (mp4, mkv with cues, ...), it looks up the last keyframe at
  or before the wanted frame. Seeking there is worth it only when that keyframe lies ahead of the
  current decode position (otherwise a seek would land behind us and decode the same frames
  again); and we require it to save at least ``_MIN_SKIP`` frames, since a seek also flushes the
  decoder and its threads.
* Without an index it seeks when the gap is larger than ``max(2 * fps, largest GOP seen so far)``
  frames. Two seconds covers the common keyframe interval of 1-2 s, so a seek usually lands on a
  keyframe past the current position; decoding forward over a shorter gap costs at most ~2 s of
  video, which is about what the seek would cost. If a seek ever lands behind the current
  position the threshold grows to that distance, so a long-GOP file stops seeking needlessly.

Each decoded frame gets its index from its timestamp, ``round((pts * time_base - start) * fps)``,
so seeks are exact. The frame shown at index ``i`` is the last decoded frame whose index is
``<= i`` (this also handles variable frame rate files). Indices past the real end of the video
(the frame count in the header is sometimes an estimate) return the last frame. A file that is
truncated or corrupt returns what decodes, clamped to the last good frame, and raises
:class:`~affectkit.errors.MediaError` only when nothing decodes at all.

Rotated videos
--------------
Phones store a portrait recording as a landscape picture plus a display matrix (the stream's
``DISPLAYMATRIX`` side data, which FFmpeg hands to every decoded frame) saying how a player turns
it. The reader applies it: frames come out upright as players show them, and ``info.width`` /
``info.height`` are the displayed size (swapped for 90 and 270 degrees). ``info.rotation`` is the
clockwise turn in degrees (0, 90, 180, 270; the old ``rotate`` tag's convention, ffprobe prints the
display matrix's rotation as minus this), ``info.mirrored`` a left-right mirror applied after it.
Without a display matrix, a ``rotate`` stream tag (e.g. in Matroska files remuxed from old
FFmpeg output) is used the same way. A matrix that is not a multiple of 90 degrees is ignored.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Iterator, Sequence

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from affectkit.errors import MediaError

__all__ = [
    "VideoInfo",
    "VideoReader",
    "FrameFolderReader",
    "probe_video",
    "open_video",
    "read_frames",
]

# Seek only when it skips at least this many frames (a seek flushes the decoder and its threads).
_MIN_SKIP = 8
# Give up on a stream after this many packets in a row fail to decode.
_MAX_BAD_PACKETS = 64
# How often a seek may land after the wanted frame before we restart from the beginning.
_SEEK_RETRIES = 3


@dataclass
class VideoInfo:
    """What :func:`probe_video` learns about a video (or a frame folder)."""

    path: str
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    has_audio: bool
    audio_sample_rate: int | None
    # display orientation applied by the reader: clockwise degrees, then a left-right mirror
    rotation: int = 0
    mirrored: bool = False


# ----------------------------------------------------------------------------------------------
# helpers


def _short_reason(err: BaseException) -> str:
    """A one-line reason for an FFmpeg / OS error, without the repeated file name."""
    reason = getattr(err, "strerror", None) or ""
    if not reason:
        reason = str(err) or type(err).__name__
    return reason.strip().splitlines()[0][:200]


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise MediaError(path, "file not found")
    if os.path.isdir(path):
        raise MediaError(path, "is a directory, not a video file")
    try:
        size = os.path.getsize(path)
    except OSError as err:
        raise MediaError(path, f"cannot be read ({_short_reason(err)})") from err
    if size == 0:
        raise MediaError(path, "file is empty (0 bytes)")


def _open_container(path: str) -> av.container.InputContainer:
    _check_file(path)
    try:
        return av.open(path, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as err:
        raise MediaError(path, f"not a readable video file ({_short_reason(err)})") from err


def _positive(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if value > 0 and math.isfinite(value) else None


def _resize_dims(width: int, height: int, size: int | None) -> tuple[int, int]:
    """Output (width, height): the short side becomes ``size``, keeping the aspect ratio."""
    if size is None:
        return width, height
    size = int(size)
    if size <= 0:
        raise ValueError(f"size must be a positive int, got {size}")
    if width <= height:
        return size, max(1, int(round(height * size / width)))
    return max(1, int(round(width * size / height))), size


def _as_indices(indices: Sequence[int]) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    if idx.dtype.kind not in "iu":
        if idx.dtype.kind == "f" and np.all(np.floor(idx) == idx):
            idx = idx.astype(np.int64)
        else:
            raise TypeError(f"frame indices must be integers, got dtype {idx.dtype}")
    idx = idx.astype(np.int64).reshape(-1)
    if (idx < 0).any():
        raise ValueError(f"frame indices must be >= 0, got {int(idx.min())}")
    return idx


# ----------------------------------------------------------------------------------------------
# display orientation

# (transpose, flip_rows, flip_cols) applied to the decoded (H, W, 3) picture to show it upright
_Orientation = tuple[bool, bool, bool]
_UPRIGHT: _Orientation = (False, False, False)


def _matrix_orientation(a: float, b: float, c: float, d: float) -> _Orientation | None:
    """The array operations for a display matrix's 2x2 part, or None when it is not a multiple of
    90 degrees. FFmpeg's matrix maps a picture point (x, y) (y down) to (a x + c y, b x + d y)."""
    scale = max(abs(a), abs(b), abs(c), abs(d))
    if not scale > 0:
        return None
    a, b, c, d = (0 if abs(v) < 0.5 * scale else (1 if v > 0 else -1) for v in (a, b, c, d))
    if a and d and not b and not c:  # x stays x: flips only
        return False, d < 0, a < 0
    if b and c and not a and not d:  # x becomes y: a transpose, then flips
        return True, b < 0, c < 0
    return None


def _describe(a: int, b: int, c: int, d: int) -> tuple[int, bool]:
    """(clockwise rotation, mirrored) of a right-angle matrix given by its signs."""
    mirrored = a * d - b * c < 0
    if mirrored:  # the matrix is a mirror after a rotation: undo the mirror (negate x')
        a, c = -a, -c
    return int(round(math.degrees(math.atan2(b, a)))) % 360, mirrored


def _frame_display_matrix(frame: av.VideoFrame) -> tuple[float, float, float, float] | None:
    """(a, b, c, d) of the frame's DISPLAYMATRIX side data (16.16 fixed point), if it has one."""
    try:
        container = frame.side_data
        # PyAV 18 made the container a mapping (iteration yields the types); older ones iterate the entries
        entries = container.values() if hasattr(container, "values") else container
        for sd in entries:
            if getattr(getattr(sd, "type", None), "name", "") == "DISPLAYMATRIX":
                raw = bytes(sd)
                if len(raw) < 36:
                    return None
                m = np.frombuffer(raw[:36], dtype="<i4").astype(np.float64)
                return float(m[0]), float(m[1]), float(m[3]), float(m[4])
    except Exception:  # noqa: BLE001 - side data not exposed by this PyAV
        return None
    return None


def _tag_rotation(metadata) -> int | None:
    """Clockwise degrees from a ``rotate`` stream tag (any case), if it is a multiple of 90."""
    for key, value in dict(metadata or {}).items():
        if str(key).lower() == "rotate":
            try:
                deg = float(str(value).strip())
            except ValueError:
                return None
            deg = int(round(deg)) % 360
            return deg if deg % 90 == 0 else None
    return None


def _orientation(frame: av.VideoFrame, metadata) -> tuple[_Orientation, int, bool]:
    """How to show ``frame`` upright: (array operations, clockwise rotation, mirrored)."""
    matrix = _frame_display_matrix(frame)
    if matrix is None:
        deg = _tag_rotation(metadata)
        if not deg:
            return _UPRIGHT, 0, False
        rad = math.radians(deg)  # a clockwise turn: the matrix of av_display_rotation_set(-deg)
        matrix = (math.cos(rad), math.sin(rad), -math.sin(rad), math.cos(rad))
    orient = _matrix_orientation(*matrix)
    if orient is None or orient == _UPRIGHT:
        return _UPRIGHT, 0, False
    scale = max(abs(v) for v in matrix)
    signs = [0 if abs(v) < 0.5 * scale else (1 if v > 0 else -1) for v in matrix]
    rotation, mirrored = _describe(*signs)
    return orient, rotation, mirrored


def _apply_orientation(arr: np.ndarray, orient: _Orientation) -> np.ndarray:
    transpose, flip_rows, flip_cols = orient
    if transpose:
        arr = arr.transpose(1, 0, 2)
    if flip_rows:
        arr = arr[::-1]
    if flip_cols:
        arr = arr[:, ::-1]
    return np.ascontiguousarray(arr)


# ----------------------------------------------------------------------------------------------
# video files


class VideoReader:
    """Frame-exact reader of one video file, opened once. See the module docstring.

    ``thread_type`` is handed to the codec context ("AUTO" = frame + slice threads; None keeps
    FFmpeg's default).
    """

    def __init__(self, path: str | os.PathLike, *, thread_type: str | None = "AUTO"):
        self.path = os.fspath(path)
        self._thread_type = thread_type
        self._container = None
        self._it = self._cur = self._ahead = None
        self._pts_missing = False  # frames carry no timestamps (raw streams): decode forward only
        self._gop_est = 0.0  # largest keyframe distance seen while decoding
        self._end: int | None = None  # index of the last frame that decodes, once known
        self._last_good: tuple[int, av.VideoFrame] | None = None
        self._error: BaseException | None = None
        self._reformatter: VideoReformatter | None = None
        self._orient: _Orientation = _UPRIGHT
        try:
            self._open()
            self.info = self._probe()
        except BaseException:
            self.close()
            raise

    # -- opening / probing ---------------------------------------------------------------------

    def _open(self) -> None:
        """(Re)open the container; the decoder starts at the beginning of the file."""
        if self._container is not None:
            self._container.close()
            self._container = None
        self._container = _open_container(self.path)
        if not self._container.streams.video:
            raise MediaError(self.path, "has no video stream")
        self._stream = self._container.streams.video[0]
        if self._thread_type:
            try:
                self._stream.thread_type = self._thread_type
            except (ValueError, AttributeError):  # pragma: no cover - unsupported
                pass
        self._start_iter(from_start=True)

    def _probe(self) -> VideoInfo:
        container, stream = self._container, self._stream
        self._tb = float(stream.time_base or 1)
        self._start_pts = stream.start_time if stream.start_time is not None else 0
        self.fps = 1.0  # replaced below; needed by the timestamp helpers

        fps = None
        for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate,
                     getattr(stream.codec_context, "framerate", None)):
            fps = _positive(rate)
            if fps is not None and fps < 1000:
                break
            fps = None

        duration = None
        if stream.duration is not None and stream.duration > 0:
            duration = stream.duration * self._tb
        elif container.duration is not None and container.duration > 0:
            duration = container.duration / av.time_base
            cstart = container.start_time
            if cstart is not None and stream.start_time is not None:
                # the container's duration runs from its earliest stream; ours may start later
                duration -= max(0.0, stream.start_time * self._tb - cstart / av.time_base)
        duration = _positive(duration)

        num_frames = int(stream.frames or 0)
        if fps is None and num_frames > 0 and duration:
            fps = num_frames / duration
        if fps is None:
            fps = 25.0  # FFmpeg's own fallback for streams without any rate
        self.fps = fps
        if num_frames <= 0 and duration:
            num_frames = int(round(duration * fps))
        if num_frames <= 0:
            num_frames = self._count_packets()
            self._open()  # back to the start (some demuxers cannot seek)
            container, stream = self._container, self._stream  # the old ones are closed

        # one frame must decode; it also gives the true picture size
        first = self._peek()
        if first is None:
            why = f" ({_short_reason(self._error)})" if self._error is not None else ""
            raise MediaError(self.path, f"has no decodable video frames{why}")
        frame = first[1]
        self._pts_missing = frame.pts is None
        num_frames = max(1, num_frames)
        if duration is None:
            duration = num_frames / fps

        # index entries of mp4/avi/mkv-with-cues are decode timestamps; with B-frames the first
        # frame is shown `shift` ticks after the first decode timestamp
        self._shift = 0
        try:
            entries = stream.index_entries
            if len(entries) > 0:
                self._shift = max(0, self._start_pts - entries[0].timestamp)
        except Exception:  # noqa: BLE001 - no index support
            pass

        audio = container.streams.audio
        sample_rate = None
        if audio:
            sample_rate = audio[0].codec_context.sample_rate or getattr(audio[0], "sample_rate", 0)
            sample_rate = int(sample_rate) if sample_rate else None

        # phone videos: the display matrix (or a `rotate` tag) says how to show the picture
        self._orient, rotation, mirrored = _orientation(frame, stream.metadata)
        width, height = int(frame.width), int(frame.height)
        if self._orient[0]:
            width, height = height, width

        return VideoInfo(
            path=self.path,
            num_frames=int(num_frames),
            fps=float(fps),
            duration=float(duration),
            width=width,
            height=height,
            has_audio=bool(audio),
            audio_sample_rate=sample_rate,
            rotation=rotation,
            mirrored=mirrored,
        )

    def _count_packets(self) -> int:
        """Last resort frame count: demux the video packets (no decoding)."""
        count = 0
        try:
            for packet in self._container.demux(self._stream):
                if packet.size:
                    count += 1
        except (av.FFmpegError, OSError):
            pass
        return count

    # -- timestamps ----------------------------------------------------------------------------

    def _ts_to_index(self, ts: int) -> int:
        return int(round((ts - self._start_pts) * self._tb * self.fps))

    def _seek_ts(self, index: int) -> int:
        """Decode timestamp to seek to for frame ``index``: half a frame past its start."""
        ts = self._start_pts + int(math.floor((index + 0.5) / self.fps / self._tb)) - self._shift
        return max(ts, self._start_pts - self._shift)

    def _index_keyframe(self, want: int) -> int | None:
        """Index of the keyframe a seek for ``want`` lands on, from the container's seek index.

        None when there is no index, or it does not yet reach ``want`` (demuxers such as mkv
        without cues build it while reading).
        """
        try:
            entries = self._stream.index_entries
            n = len(entries)
            if n < 2:
                return None
            last = self._ts_to_index(entries[n - 1].timestamp + self._shift)
            complete = n >= 0.5 * self.info.num_frames or last >= self.info.num_frames - max(
                10.0 * self.fps, 0.1 * self.info.num_frames)
            if not complete and want > last:
                return None
            k = entries.search_timestamp(self._seek_ts(want), backward=True)
            if k < 0:
                return None
            return self._ts_to_index(entries[k].timestamp + self._shift)
        except Exception:  # noqa: BLE001 - no index support in this PyAV / demuxer
            return None

    # -- the decode state ----------------------------------------------------------------------

    def _start_iter(self, from_start: bool) -> None:
        self._it = self._decode_iter()
        self._cur = None  # last frame taken: (index, frame)
        self._ahead = None  # decoded but not taken yet
        self._from_start = from_start
        self._last_key: int | None = None

    def _decode_iter(self) -> Iterator[av.VideoFrame]:
        bad = 0
        try:
            for packet in self._container.demux(self._stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError as err:  # a corrupt packet: skip it, keep going
                    self._error = err
                    bad += 1
                    if bad > _MAX_BAD_PACKETS:
                        return
                    continue
                bad = 0
                yield from frames
        except (av.FFmpegError, OSError) as err:  # the demuxer gave up (truncated file, I/O)
            self._error = err

    def _next(self) -> tuple[int, av.VideoFrame] | None:
        """Decode one more frame and give it its index; None at the end of what decodes."""
        if self._it is None:
            return None
        try:
            frame = next(self._it, None)
        except (av.FFmpegError, OSError) as err:
            self._error, frame = err, None
        if frame is None:
            self._it = None
            return None
        prev = self._ahead or self._cur
        if frame.pts is not None and not self._pts_missing:
            index = self._ts_to_index(frame.pts)
            if prev is not None and index <= prev[0]:
                index = prev[0] + 1  # broken timestamps: at least keep the order
        elif prev is not None:
            index = prev[0] + 1
        elif self._from_start:
            index = 0
        else:  # a frame without timestamp right after a seek cannot be placed
            self._it = None
            return None
        if frame.key_frame:
            if self._last_key is not None:
                self._gop_est = max(self._gop_est, float(index - self._last_key))
            self._last_key = index
        return index, frame

    def _peek(self) -> tuple[int, av.VideoFrame] | None:
        if self._ahead is None:
            self._ahead = self._next()
        return self._ahead

    def _take(self) -> None:
        self._cur, self._ahead = self._ahead, None

    def _want_seek(self, want: int) -> bool:
        """True when the decoder must jump (backward, or forward far enough to pay off)."""
        cur = self._cur
        if cur is not None and want < cur[0]:
            return True  # behind us
        if self._it is None:  # decoder at its end
            return cur is None or want > cur[0]
        if self._ahead is not None and want <= self._ahead[0]:
            return False
        if self._pts_missing:
            return False
        pos = cur[0] if cur is not None else -1
        key = self._index_keyframe(want)
        if key is not None:
            # the seek lands on `key`: pays off only when that is well ahead of us
            return key - pos >= _MIN_SKIP
        return want - pos > max(2.0 * self.fps, self._gop_est, float(_MIN_SKIP))

    def _seek(self, want: int) -> None:
        """Position the decoder so that its first frame is at or before ``want``."""
        if self._pts_missing:
            self._open()  # without timestamps only a restart from the beginning is exact
            return
        pos = self._cur[0] if self._cur is not None else -1
        target = want
        for attempt in range(_SEEK_RETRIES):
            try:
                self._container.seek(self._seek_ts(target), backward=True, any_frame=False,
                                     stream=self._stream)
            except (av.FFmpegError, OSError):
                break
            self._start_iter(from_start=False)
            first = self._peek()
            if first is not None and first[0] <= want:
                if 0 <= first[0] <= pos < want:
                    # landed behind where we were: keyframes are further apart than assumed
                    self._gop_est = max(self._gop_est, float(want - first[0] + 1))
                return
            if target <= 0:
                break
            step = max(2.0 * self.fps, self._gop_est, 1.0) * 2 ** attempt
            target = max(0, int(target - step))
        self._open()  # last resort: decode from the very beginning

    def _frame_at(self, want: int) -> tuple[int, av.VideoFrame] | None:
        """The frame shown at index ``want`` (clamped to the last frame that decodes)."""
        if self._want_seek(want):
            self._seek(want)
        while True:
            cur = self._cur
            if cur is not None and cur[0] == want:
                return cur
            nxt = self._peek()
            if nxt is None:  # end of what decodes
                if cur is not None and cur[0] < want:
                    self._end = cur[0]
                return cur
            if nxt[0] > want:
                if cur is None:  # the first frame (after a seek or of the file) is later
                    self._take()
                return self._cur
            self._take()

    # -- public API ----------------------------------------------------------------------------

    def read_frames(self, indices: Sequence[int], size: int | None = None) -> np.ndarray:
        """Frames at the 0-based ``indices`` (any order, repeats allowed) as (N, H, W, 3) uint8 RGB.

        ``size`` resizes so that the short side equals ``size`` (aspect ratio kept), inside FFmpeg.
        Indices past the end of the video give its last frame. Frames are upright as displayed
        (the display matrix applied; ``info.width`` x ``info.height`` before resizing).
        """
        if self._container is None:
            raise MediaError(self.path, "reader is closed")
        idx = _as_indices(indices)
        out_w, out_h = _resize_dims(self.info.width, self.info.height, size)
        if idx.size == 0:
            return np.zeros((0, out_h, out_w, 3), dtype=np.uint8)
        if self._end is not None:
            idx = np.minimum(idx, self._end)

        got: dict[int, tuple[int, av.VideoFrame]] = {}
        for want in np.unique(idx).tolist():
            if self._end is not None and want > self._end:
                got[want] = got.get(self._end) or self._last_good
                continue
            try:
                found = self._frame_at(want)
            except (av.FFmpegError, OSError) as err:
                self._error, found = err, None
            if found is None:
                found = self._last_good
            if found is None:
                why = f" ({_short_reason(self._error)})" if self._error is not None else ""
                raise MediaError(
                    self.path, f"video is truncated or corrupt: no frame could be decoded{why}"
                )
            if self._last_good is None or found[0] >= self._last_good[0]:
                self._last_good = found
            got[want] = found

        arrays: dict[int, np.ndarray] = {}  # one conversion per decoded frame
        out = np.empty((idx.size, out_h, out_w, 3), dtype=np.uint8)
        for i, want in enumerate(idx.tolist()):
            fidx, frame = got[want]
            arr = arrays.get(fidx)
            if arr is None:
                arr = self._to_rgb(frame, out_w, out_h)
                arrays[fidx] = arr
            out[i] = arr
        return out

    def _to_rgb(self, frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
        """Convert (and resize) inside FFmpeg, then turn upright: ``width`` x ``height`` is the
        displayed size. The reformatter is kept: building a new scaler for every frame costs more
        than the conversion itself. One scaler thread: decode threads and data-loader workers
        already use the cores."""
        if self._reformatter is None:
            self._reformatter = VideoReformatter()
        if self._orient[0]:  # the stored picture is on its side: scale it in its own axes
            width, height = height, width
        out = self._reformatter.reformat(frame, width=width, height=height, format="rgb24",
                                         threads=1)
        arr = out.to_ndarray()
        if self._orient != _UPRIGHT:
            arr = _apply_orientation(arr, self._orient)
        return arr

    def close(self) -> None:
        """Release the file. Idempotent."""
        if self._container is not None:
            self._container.close()
            self._container = None
        self._it = self._cur = self._ahead = None
        self._stream = None  # belongs to the closed container: never touch it again
        self._last_good = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def __repr__(self) -> str:
        i = self.info
        rot = f", rotated {i.rotation}" if i.rotation else ""
        return f"VideoReader({i.path!r}, {i.num_frames} frames, {i.fps:g} fps, {i.width}x{i.height}{rot})"


# ----------------------------------------------------------------------------------------------
# frame folders

_FRAME_NAME = re.compile(r"^(\d+)\.jpe?g$", re.IGNORECASE)


class FrameFolderReader:
    """Reader of a folder of JPEG frames ``000001.jpg, 000002.jpg, ...`` (1-based file names).

    Frame index ``i`` is the file ``{i+1:06d}.jpg``; indices past the last frame are clamped to
    it. The frame count comes from the text file ``n_frames`` when present, otherwise from the
    largest numbered ``.jpg`` in the folder.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0):
        self.path = os.fspath(path)
        if not os.path.isdir(self.path):
            what = "is not a folder" if os.path.exists(self.path) else "frame folder not found"
            raise MediaError(self.path, what)
        num = self._count_from_file()
        if num is None:
            num = self._count_jpgs()
        if num <= 0:
            raise MediaError(self.path, "frame folder is empty (no numbered .jpg frames)")
        self._num = num
        fps = float(fps)
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        first = self._resolve(0)
        try:
            from PIL import Image

            with Image.open(first) as img:
                width, height = img.size
        except (OSError, ValueError) as err:
            raise MediaError(first, f"not a readable image ({_short_reason(err)})") from err
        self.info = VideoInfo(
            path=self.path,
            num_frames=num,
            fps=fps,
            duration=num / fps,
            width=int(width),
            height=int(height),
            has_audio=False,
            audio_sample_rate=None,
        )

    def _count_from_file(self) -> int | None:
        f = os.path.join(self.path, "n_frames")
        if not os.path.isfile(f):
            return None
        try:
            with open(f, encoding="utf-8") as fh:
                value = int(float(fh.read().strip()))
        except (OSError, ValueError):
            return None  # unreadable count: fall back to counting
        return value if value > 0 else None

    def _count_jpgs(self) -> int:
        largest = 0
        with os.scandir(self.path) as it:
            for entry in it:
                m = _FRAME_NAME.match(entry.name)
                if m:
                    largest = max(largest, int(m.group(1)))
        return largest

    def _file(self, index: int) -> str:
        return os.path.join(self.path, f"{index + 1:06d}.jpg")

    def _resolve(self, index: int) -> str:
        """File of frame ``index``, clamped; a missing file falls back to the nearest earlier one."""
        index = min(index, self._num - 1)
        for i in range(index, -1, -1):
            f = self._file(i)
            if os.path.isfile(f):
                return f
        raise MediaError(self._file(index), "frame file not found")

    def read_frames(self, indices: Sequence[int], size: int | None = None) -> np.ndarray:
        """Frames at the 0-based ``indices`` as (N, H, W, 3) uint8 RGB; see :class:`VideoReader`."""
        from PIL import Image

        idx = _as_indices(indices)
        out_w, out_h = _resize_dims(self.info.width, self.info.height, size)
        out = np.empty((idx.size, out_h, out_w, 3), dtype=np.uint8)
        cache: dict[str, np.ndarray] = {}
        for i, want in enumerate(idx.tolist()):
            f = self._resolve(want)
            arr = cache.get(f)
            if arr is None:
                try:
                    with Image.open(f) as img:
                        if img.format == "JPEG" and (out_w, out_h) != img.size:
                            img.draft("RGB", (out_w, out_h))  # decode at a reduced scale: fast
                        img = img.convert("RGB")
                        if img.size != (out_w, out_h):
                            img = img.resize((out_w, out_h), Image.BILINEAR)
                        arr = np.asarray(img, dtype=np.uint8)
                except (OSError, ValueError) as err:
                    raise MediaError(f, f"not a readable image ({_short_reason(err)})") from err
                cache[f] = arr
            out[i] = arr
        return out

    def close(self) -> None:
        """Nothing to release (files are opened per frame); kept for the common interface."""

    def __enter__(self) -> "FrameFolderReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return f"FrameFolderReader({i.path!r}, {i.num_frames} frames, {i.width}x{i.height})"


# ----------------------------------------------------------------------------------------------
# convenience


def open_video(path: str | os.PathLike, **kwargs) -> VideoReader | FrameFolderReader:
    """A :class:`FrameFolderReader` if ``path`` is a folder, else a :class:`VideoReader`.

    ``kwargs`` go to the reader (``fps=`` for folders, ``thread_type=`` for files).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return FrameFolderReader(path, **kwargs)
    return VideoReader(path, **kwargs)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame count, fps, duration, size and audio facts of a video file (or frame folder).

    Raises :class:`~affectkit.errors.MediaError` when the file is missing, empty, not a video,
    has no video stream or no frame decodes.
    """
    with open_video(path) as reader:
        return reader.info


def read_frames(path: str | os.PathLike, indices: Sequence[int], size: int | None = None) -> np.ndarray:
    """Open ``path``, read the frames at ``indices`` (see :meth:`VideoReader.read_frames`), close."""
    with open_video(path) as reader:
        return reader.read_frames(indices, size=size)
