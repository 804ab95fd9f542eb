"""One sample loader per modality key; :func:`affectkit.data.clips.make_loader` composes them.

Each part has ``key``, ``check(src, ctx)`` and ``load(src, sample, rng, ctx)``: it reads its own
file(s) of a :class:`~affectkit.data.clips.SampleSource`, applies its own transforms to its own
keys and writes them into ``sample``; ``ctx`` passes what one part learnt to the next (the video's
:class:`~affectkit.data.video.VideoInfo`). Bad input raises :class:`~affectkit.errors.MediaError`
naming the file and the problem.

- ``video``: snippets of the video (:class:`VideoModality`).
- ``audio``: with video, the clip's audio features (:class:`TrackAudioModality`); without, an audio
  file or a video's audio track (:class:`~affectkit.data.audio_clips.AudioClipLoader`).
- ``text`` (:class:`TextModality`): the record's subtitles (``record.subtitles``: ``.srt``, ``.vtt``,
  ``.txt``) or transcript (``record.extra["text"]``, a string); a plain path (predict) uses the
  ``.srt`` beside it (``input.text.sidecar``), or the path itself when it is a subtitle file.
  ``text`` is a list of strings: one per snippet window when the sample has ``segment_times`` (the S
  equal segments of a video, as MART's srt2seg) or ``snippet_times`` (the
  text of the cues overlapping each window; an untimed transcript is the whole text in every
  window), else one string (all the text). No text gives empty strings (``input.text.on_missing:
  empty``) or an error (``error``).
- ``skeleton`` (:class:`SkeletonModality`): a pose sequence (:func:`read_skeleton`) from
  ``record.extra["skeleton"]`` or the record's path; an HDF5 dataset is named by
  ``extra["skeleton_key"]`` or ``extra["key"]`` (needed when the file holds several).
- ``features`` (:class:`FeaturesModality`): pre-extracted (T, D) features (:func:`read_features`)
  from ``record.extra["features"]`` (relative paths under ``input.features.root``), the path itself
  when it is a ``.npy`` / ``.npz``, or ``<input.features.root>/<video_id>.npy`` (``.npz``).
"""
from __future__ import annotations

import csv
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, MediaError
from .audio import audio_features, segment_audio_features
from .audio_clips import AudioClipLoader
from .clips import SampleLoader, SampleSource, audio_spec, feature_bins
from .sampling import row_indices, snippet_indices, snippet_spans
from .transforms import VideoSpatialTransform
from .video import open_video, probe_video

log = logging.getLogger(__name__)

ARRAY_EXTENSIONS = (".npy", ".npz", ".csv", ".h5", ".hdf5")
FEATURE_EXTENSIONS = (".npy", ".npz")
SKELETON_EXTENSIONS = ARRAY_EXTENSIONS
_SUBTITLE_EXTENSIONS = (".srt", ".vtt")


def build_modality(key: str, input_cfg, input_keys: tuple[str, ...], *, train: bool, augment=None):
    """The loader of one modality ``key`` of a model taking ``input_keys`` (None: nothing to load)."""
    if key == "video":
        return VideoModality(input_cfg, train=train, augment=augment)
    if key == "audio":
        if "video" in input_keys:
            return TrackAudioModality(input_cfg, train=train) if audio_spec(input_cfg) is not None else None
        return AudioFileModality(AudioClipLoader(input_cfg, train=train, augment=augment))
    if key == "text":
        return TextModality(input_cfg)
    if key == "skeleton":
        return SkeletonModality(input_cfg, train=train)
    if key == "features":
        return FeaturesModality(input_cfg, train=train)
    raise KeyError(key)


# ---------------------------------------------------------------------------------------------
# video and audio
def _video_path(src: SampleSource) -> str:
    if not src.path:
        raise MediaError(src.name, "no video file (the model takes video)")
    return src.path


class VideoModality:
    """``video`` (S, 3, T, H, W) float in [0, 255], ``snippet_times`` (S, 2), ``fps``, ``duration``,
    ``path``, ``frame_indices`` (S, T) int64 (the 0-based frames decoded) and ``num_frames`` (the
    video's frame count; with ``path``, what CTEN's faithful erased views re-sample and decode
    from, :mod:`affectkit.engine.erasing`): ``input.seq_len`` snippets of ``input.snippet_duration`` frames (TSN-style sampling,
    :func:`~affectkit.data.sampling.snippet_indices`) through the spatial transform. A snippet's
    time span is what it really shows (:func:`~affectkit.data.sampling.snippet_spans`: for a
    loop-padded snippet of a short video, its longest run of frames before or after the wrap)."""

    key = "video"

    def __init__(self, input_cfg, *, train: bool, augment=None):
        self.cfg, self.train = input_cfg, train
        aug = augment
        self.spatial = VideoSpatialTransform(
            input_cfg.sample_size, input_cfg.seq_len, train, key="video",
            **({} if aug is None else dict(crop=aug.crop, p=aug.p, ops=aug.ops, rotate_degrees=aug.rotate_degrees, brightness=aug.brightness)),
        )

    def _check_length(self, path: str, info) -> None:
        if info.num_frames < self.cfg.snippet_duration:
            raise MediaError(path, f"video too short: {info.num_frames} frames, fewer than one snippet ({self.cfg.snippet_duration} frames)")

    def check(self, src: SampleSource, ctx: dict) -> None:
        path = _video_path(src)
        with open_video(path) as reader:
            info = reader.info
        self._check_length(path, info)
        ctx["video_info"] = info

    def load(self, src: SampleSource, sample: dict, rng: np.random.Generator, ctx: dict) -> None:
        cfg, path = self.cfg, _video_path(src)
        with open_video(path) as reader:
            info = reader.info
            self._check_length(path, info)
            idx = snippet_indices(info.num_frames, cfg.seq_len, cfg.snippet_duration, frame_step=cfg.frame_step, random=self.train, rng=rng)
            # Decode with the short side already at the crop size: the crop is a square of the short side.
            decode_size = cfg.sample_size if min(info.width, info.height) > cfg.sample_size else None
            frames = reader.read_frames(idx.reshape(-1).tolist(), size=decode_size)
        ctx["video_info"] = info
        part = self.spatial({"video": frames}, rng=rng)
        fps = info.fps if info.fps and info.fps > 0 else 30.0
        sample["video"] = part["video"]
        sample["snippet_times"] = torch.tensor(snippet_spans(idx, fps), dtype=torch.float32).reshape(-1, 2)
        # the S equal segments of the video the snippets stand for (TSN); text windows (MART's srt2seg)
        edges = np.linspace(0.0, float(info.duration), cfg.seq_len + 1)
        sample["segment_times"] = torch.tensor(np.stack([edges[:-1], edges[1:]], 1), dtype=torch.float32)
        sample["fps"] = float(fps)
        sample["duration"] = float(info.duration)
        sample["path"] = str(path)
        sample["frame_indices"] = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64))
        sample["num_frames"] = int(info.num_frames)


_NO_AUDIO = "has no audio stream (the model needs audio; set input.audio.on_missing=silence to use silence)"


class TrackAudioModality:
    """``audio`` (num_frames, bins) of a video's clip: its sidecar audio file, else its own audio
    track; a video without one is an error, or silence with ``input.audio.on_missing=silence``.
    ``input.audio.kind: fbank`` is CTEN's front end (:func:`~affectkit.data.fbank.cten_audio_features`:
    the whole track, ``windows`` windows at random offsets in training, centred in evaluation)."""

    key = "audio"

    def __init__(self, input_cfg, *, train: bool = False):
        self.cfg = input_cfg
        self.spec = audio_spec(input_cfg)
        self.train = train
        a = input_cfg.audio
        if a.align == "segments" and (a.kind not in ("mfcc", "log_mel") or a.num_frames % input_cfg.seq_len):
            raise ConfigError(f"input.audio.align: segments needs kind mfcc or log_mel and num_frames ({a.num_frames}) "
                              f"a multiple of input.seq_len ({input_cfg.seq_len}), got kind {a.kind!r}")

    @staticmethod
    def _info(src: SampleSource, ctx: dict):
        info = ctx.get("video_info")
        return info if info is not None else probe_video(_video_path(src))

    def check(self, src: SampleSource, ctx: dict) -> None:
        if src.audio_path is None and self.cfg.audio.on_missing == "error" and not self._info(src, ctx).has_audio:
            raise MediaError(_video_path(src), _NO_AUDIO)

    def load(self, src: SampleSource, sample: dict, rng: np.random.Generator, ctx: dict) -> None:
        path = _video_path(src)
        if src.audio_path is None and not self._info(src, ctx).has_audio:
            if self.cfg.audio.on_missing != "silence":
                raise MediaError(path, _NO_AUDIO)
            log.warning("%s: no audio stream; using silence", path)
            feats = np.zeros((self.spec.num_frames, feature_bins(self.cfg)), dtype=np.float32)
        elif self.cfg.audio.kind == "fbank":
            from .fbank import cten_audio_features

            a = self.cfg.audio
            feats = cten_audio_features(src.audio_path or path, a.sample_rate, num_frames=a.num_frames, windows=a.windows,
                                        num_mel_bins=a.n_mels, train=self.train, rng=rng)
        elif self.cfg.audio.align == "segments" and "segment_times" in sample:
            feats = segment_audio_features(src.audio_path or path, self.spec, sample["segment_times"].tolist(),
                                           train=self.train, rng=rng)
        else:
            feats = np.ascontiguousarray(audio_features(src.audio_path or path, self.spec), dtype=np.float32)
        sample["audio"] = torch.from_numpy(feats)


class AudioFileModality:
    """The sample of :class:`AudioClipLoader` (audio-only models), from a source's audio file."""

    key = "audio"

    def __init__(self, clip: AudioClipLoader):
        self.clip = clip

    @staticmethod
    def _path(src: SampleSource) -> str:
        path = src.path or src.audio_path
        if not path:
            raise MediaError(src.name, "no audio file (the model takes audio)")
        return path

    def check(self, src: SampleSource, ctx: dict) -> None:
        AudioClipLoader.check(self.clip, self._path(src), src.audio_path)

    def load(self, src: SampleSource, sample: dict, rng: np.random.Generator, ctx: dict) -> None:
        sample.update(AudioClipLoader.load(self.clip, self._path(src), audio_path=src.audio_path, rng=rng))


class AudioOnlyLoader(SampleLoader, AudioClipLoader):
    """The loader of ``("audio",)`` models: an :class:`AudioClipLoader` (same samples, same
    methods) whose ``check`` and ``load`` also take a record."""

    def __init__(self, input_cfg, *, train: bool, augment=None):
        AudioClipLoader.__init__(self, input_cfg, train=train, augment=augment)
        SampleLoader.__init__(self, [AudioFileModality(self)], ("audio",))


# ---------------------------------------------------------------------------------------------
# text
class TextModality:
    """``text``: list of str (see the module docstring)."""

    key = "text"

    def __init__(self, input_cfg):
        self.cfg = input_cfg.text

    def _subtitle_path(self, src: SampleSource) -> str | None:
        if src.subtitles:
            return str(src.subtitles)
        if not src.is_record and src.path:
            p = Path(src.path)
            if p.suffix.lower() in _SUBTITLE_EXTENSIONS + (".txt",):
                return str(p)
            if self.cfg.sidecar:
                side = p.with_suffix(".srt")
                if side.is_file():
                    return str(side)
        return None

    def _read(self, src: SampleSource):
        """``(text, source)``: the cues (a list) or the transcript (a str) or None when there is no text,
        and where it came from (subtitles, embedded, transcript, asr, or None)."""
        from .text import read_embedded_subtitles, read_subtitles

        path = self._subtitle_path(src)
        if path is not None:
            if not os.path.isfile(path):
                if self.cfg.on_missing == "error":
                    raise MediaError(path, "subtitle file not found (the model takes text; set input.text.on_missing=empty to use empty text)")
                return None, None
            return read_subtitles(path), "subtitles"  # SubtitleError (a MediaError naming the file) on a bad file
        text = src.extra.get("text")
        if isinstance(text, str):
            return text, "transcript"
        media = src.path if src.path and os.path.isfile(src.path) and Path(src.path).suffix.lower() not in _SUBTITLE_EXTENSIONS else None
        if media and self.cfg.embedded:
            st = os.stat(media)
            key = (media, st.st_size, st.st_mtime_ns)
            cache = self.__dict__.setdefault("_embedded", {})  # epochs re-read a file: open its container once
            if key not in cache:
                if len(cache) >= 4096:
                    cache.clear()
                cache[key] = read_embedded_subtitles(media)
            if cache[key] is not None:
                return cache[key], "embedded"
        asr = self.cfg.asr
        if media and (asr == "whisper" or (asr == "auto" and not src.is_record and self._asr_ok())):
            from .asr import transcribe

            return transcribe(media, model=self.cfg.asr_model, language=self.cfg.asr_language), "asr"
        if self.cfg.on_missing == "error":
            raise MediaError(src.name, "no subtitles or transcript (record.subtitles or extra['text']; "
                                       "set input.text.on_missing=empty to use empty text)")
        return None, None

    def _asr_ok(self) -> bool:
        if not hasattr(self, "_asr_state"):
            from .asr import asr_available

            ok, why = asr_available() if not self.cfg.asr_model else (True, "")
            if not ok:
                log.info("text: no speech recognition for files without subtitles (%s)", why)
            self._asr_state = ok
        return self._asr_state

    def check(self, src: SampleSource, ctx: dict) -> None:
        self._read(src)

    def load(self, src: SampleSource, sample: dict, rng: np.random.Generator, ctx: dict) -> None:
        from .text import text_in_window

        text, source = self._read(src)
        align = self.cfg.align
        # one text window per snippet: the video's segment it was sampled from (MART: duration / S each),
        # or the snippet's own span when there is no segment (e.g. audio windows)
        times = sample.get("segment_times", sample.get("snippet_times"))
        windows = [tuple(map(float, w)) for w in times.tolist()] if times is not None else None
        if isinstance(text, list):
            sample["text"] = ([text_in_window(text, a, b, align=align) for a, b in windows] if windows
                              else [text_in_window(text, align=align)])
        else:
            whole = "" if text is None else " ".join(text.split())
            sample["text"] = [whole] * len(windows) if windows else [whole]
        sample["text_source"] = source or "none"


# ---------------------------------------------------------------------------------------------
# arrays: skeleton and features
def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise MediaError(path, "file not found")
    if os.path.isdir(path):
        raise MediaError(path, "is a folder, not a file")
    if os.path.getsize(path) == 0:
        raise MediaError(path, "empty file (0 bytes)")


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:200]


def _read_csv(path: str) -> np.ndarray:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error, OSError) as err:
        raise MediaError(path, f"not a readable CSV file ({_reason(err)})") from None
    if not rows:
        raise MediaError(path, "CSV file has no rows")

    def numbers(row):
        try:
            return [float(c) for c in row]
        except ValueError:
            return None

    if numbers(rows[0]) is None:  # a header row
        rows = rows[1:]
    out = []
    for i, row in enumerate(rows, start=1):
        values = numbers(row)
        if values is None:
            bad = next(c for c in row if numbers([c]) is None)
            raise MediaError(path, f"data row {i}: {bad.strip()[:40]!r} is not a number")
        if out and len(values) != len(out[0]):
            raise MediaError(path, f"data row {i}: {len(values)} values, the rows before have {len(out[0])}")
        out.append(values)
    if not out:
        raise MediaError(path, "CSV file has a header but no data rows")
    return np.asarray(out, dtype=np.float64)


def _read_h5(path: str, key: str | None):
    try:
        import h5py
    except ImportError:  # pragma: no cover - a dependency
        raise MediaError(path, "reading HDF5 files needs h5py (pip install h5py)") from None
    try:
        with h5py.File(path, "r") as f:
            names: list[str] = []
            f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
            if key is not None:
                if key not in names:
                    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                    raise MediaError(path, f"has no dataset {key!r} (it holds {len(names)}: {shown})")
                name = key
            elif len(names) == 1:
                name = names[0]
            else:
                shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                raise MediaError(path, f"holds {len(names)} datasets ({shown or 'none'}); name one with the record's extra['key']")
            return np.asarray(f[name][()])
    except MediaError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise MediaError(path, f"not a readable HDF5 file ({_reason(err)})") from None


def read_array(path: str | os.PathLike, *, key: str | None = None, npz_names: tuple[str, ...] = (),
               header_only: bool = False):
    """A numeric array from ``.npy``, ``.npz`` (array ``key``, else the first of ``npz_names``
    present, else the only one), ``.csv`` (rows of numbers, an optional header row) or ``.h5`` /
    ``.hdf5`` (dataset ``key``, else the only one). ``header_only`` (``.npy``): memory-mapped, not
    read. Raises :class:`MediaError` naming the file (missing, empty, corrupt, ambiguous, not numeric)."""
    path = os.fspath(path)
    _check_file(path)
    ext = Path(path).suffix.lower()
    if ext not in ARRAY_EXTENSIONS:
        raise MediaError(path, f"unsupported file type {ext or '(no extension)'!r}; expected {', '.join(ARRAY_EXTENSIONS)}")
    if ext == ".csv":
        arr = _read_csv(path)
    elif ext in (".h5", ".hdf5"):
        arr = _read_h5(path, key)
    else:
        try:
            loaded = np.load(path, allow_pickle=False, mmap_mode="r" if header_only and ext == ".npy" else None)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            raise MediaError(path, f"not a readable {ext} file ({_reason(err)})") from None
        if ext == ".npz" or isinstance(loaded, np.lib.npyio.NpzFile):
            try:
                with loaded as z:
                    files = list(z.files)
                    name = key if key is not None else next((n for n in npz_names if n in files), None)
                    if name is None:
                        if len(files) != 1:
                            raise MediaError(path, f"holds {len(files)} arrays ({', '.join(files[:5]) or 'none'}); "
                                                   f"expected one, or one named {' or '.join(npz_names) or 'by key'}")
                        name = files[0]
                    if name not in files:
                        raise MediaError(path, f"has no array {name!r} (it holds {', '.join(files[:5])})")
                    arr = z[name]
            except MediaError:
                raise
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
                raise MediaError(path, f"not a readable .npz file ({_reason(err)})") from None
        else:
            arr = loaded
    if arr.dtype.kind not in "biuf":
        raise MediaError(path, f"holds {arr.dtype} values, not numbers")
    return arr


def _finite(path: str, arr: np.ndarray) -> np.ndarray:
    out = np.asarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise MediaError(path, f"holds {int((~np.isfinite(out)).sum())} NaN or infinite value(s)")
    return out


def _skeleton_shape(path: str, shape: tuple[int, ...], joints: int, channels: int) -> tuple[int, int, int]:
    want = f"(T, {joints}, {channels}) or (T, {joints * channels}) ({joints} joints x {channels} channels)"
    if len(shape) == 2 and shape[1] == joints * channels:
        t = shape[0]
    elif len(shape) == 3 and tuple(shape[1:]) == (joints, channels):
        t = shape[0]
    else:
        raise MediaError(path, f"skeleton of shape {tuple(shape)}, expected {want}; see input.skeleton")
    if t < 1:
        raise MediaError(path, "skeleton has no frames")
    return t, joints, channels


def read_skeleton(path: str | os.PathLike, *, num_joints: int = 16, channels: int = 3, key: str | None = None) -> np.ndarray:
    """A pose sequence file -> (T, J, C) float32: ``.npy`` / ``.npz`` (T, J, C) or (T, J*C), ``.csv``
    (T rows of J*C numbers, joint after joint: x y z of joint 0, then joint 1 ...), ``.h5`` (one
    dataset, or ``key``; Emotion-Gait: T x 48 = 16 joints x xyz). :class:`MediaError` on a bad file."""
    path = os.fspath(path)
    arr = read_array(path, key=key, npz_names=("skeleton", "positions", "joints"))
    t, j, c = _skeleton_shape(path, arr.shape, num_joints, channels)
    return _finite(path, arr).reshape(t, j, c)


def read_features(path: str | os.PathLike, *, dim: int | None = None, key: str | None = None) -> np.ndarray:
    """Pre-extracted features -> (T, D) float32: ``.npy`` (T, D) (a (D,) vector is one row) or
    ``.npz`` (array ``features``, or the only one). :class:`MediaError` on a bad file."""
    path = os.fspath(path)
    arr = read_array(path, key=key, npz_names=("features", "feats"))
    return _finite(path, _feature_shape(path, arr, dim))


def _feature_shape(path: str, arr, dim: int | None):
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise MediaError(path, f"features of shape {tuple(arr.shape)}, expected (T, D)")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise MediaError(path, f"features of shape {tuple(arr.shape)} are empty")
    if dim is not None and arr.shape[1] != dim:
        raise MediaError(path, f"features of dimension {arr.shape[1]}, expected {dim} (input.features.dim)")
    return arr


class SkeletonTransform:
    """Keyed transform of ``skeleton`` (T, J, C) -> (C, T', J) float: centring on ``root_joint``
    (its position subtracted in every frame), then a crop to ``max_frames`` (random start in
    training, the first frame in evaluation) or zero padding at the end; writes ``skeleton_length``
    (real frames) and ``skeleton_mask`` (T',) bool. ``max_frames`` None keeps every frame."""

    def __init__(self, max_frames: int | None, root_joint: int | None, train: bool, key: str = "skeleton"):
        self.max_frames, self.root_joint, self.train, self.key = max_frames, root_joint, train, key

    def __call__(self, sample: dict, rng: np.random.Generator | None = None) -> dict:
        x = np.asarray(sample[self.key], dtype=np.float32)
        if self.root_joint is not None:
            x = x - x[:, self.root_joint:self.root_joint + 1, :]
        t = x.shape[0]
        size = self.max_frames or t
        if t > size:
            start = int((rng or np.random.default_rng()).integers(0, t - size + 1)) if self.train else 0
            x = x[start:start + size]
        n = x.shape[0]
        out = np.zeros((size, x.shape[1], x.shape[2]), dtype=np.float32)
        out[:n] = x
        sample[self.key] = torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))  # (C, T, J)
        sample[f"{self.key}_length"] = int(n)
        mask = torch.zeros(size, dtype=torch.bool)
        mask[:n] = True
        sample[f"{self.key}_mask"] = mask
        return sample


class SkeletonModality:
    key = "skeleton"

    def __init__(self, input_cfg, *, train: bool):
        self.cfg = input_cfg.skeleton
        self.transform = SkeletonTransform(self.cfg.max_frames, self.cfg.root_joint, train)

    @staticmethod
    def _path(src: SampleSource) -> tuple[str, str | None]:
        path = src.extra.get("skeleton") or src.path
        if not path:
            raise MediaError(src.name, "no skeleton file (the record's extra['skeleton'] or its path)")
        return os.fspath(path), src.extra.get("skeleton_key", src.extra.get("key"))

    def check(self, src: SampleSource, ctx: dict) -> None:
        path, key = self._path(src)
        arr = read_array(path, key=key, npz_names=("skeleton", "positions", "joints"), header_only=True)
        _skeleton_shape(path, arr.shape, self.cfg.num_joints, self.cfg.channels)

    def load(self, src: SampleSource, sample: dict, rng: np.random.Generator, ctx: dict) -> None:
        path, key = self._path(src)
        part = {"skeleton": read_skeleton(path, num_joints=self.cfg.num_joints, channels=self.cfg.channels, key=key)}
        sample.update(self.transform(part, rng=rng))
        ctx.setdefault("file", path)


class FeatureSubsample:
    """Keyed transform of ``features`` (T, D) -> at most ``max_len`` rows
    (:func:`~affectkit.data.sampling.row_indices`: random in training with ``sampling='random'``,
    uniform otherwise); writes ``features_length`` and ``features_mask`` (T',) all True."""

    def __init__(self, max_len: int | None, sampling: str, train: bool, key: str = "features"):
        self.max_len, self.random, self.key = max_len, sampling == "random" and train, key

    def __call__(self, sample: dict, rng: np.random.Generator | None = None) -> dict:
        x = np.asarray(sample[self.key], dtype=np.float32)
        keep = row_indices(x.shape[0], self.max_len, random=self.random, rng=rng)
        x = torch.from_numpy(np.ascontiguousarray(x[keep]))
        sample[self.key] = x
        sample[f"{self.key}_length"] = int(x.shape[0])
        sample[f"{self.key}_mask"] = torch.ones(x.shape[0], dtype=torch.bool)
        return sample


class FeaturesModality:
    key = "features"

    def __init__(self, input_cfg, *, train: bool):
        self.cfg = input_cfg.features
        self.transform = FeatureSubsample(self.cfg.max_len, self.cfg.sampling, train)

    def _path(self, src: SampleSource) -> tuple[str, str | None]:
        key = src.extra.get("features_key")
        root = self.cfg.root
        given = src.extra.get("features")
        if given:
            p = Path(os.fspath(given))
            return str(p if p.is_absolute() or root is None else Path(root) / p), key
        if src.path and Path(src.path).suffix.lower() in FEATURE_EXTENSIONS:
            return src.path, key
        if root is not None and src.video_id:
            for ext in FEATURE_EXTENSIONS:
                cand = Path(root) / f"{src.video_id}{ext}"
                if cand.is_file():
                    return str(cand), key
            return str(Path(root) / f"{src.video_id}.npy"), key  # reported as not found
        raise MediaError(src.name, "no features file: give the record's extra['features'], a .npy/.npz path, "
                                   "or input.features.root (<root>/<video_id>.npy)")

    def check(self, src: SampleSource, ctx: dict) -> None:
        path, key = self._path(src)
        arr = read_array(path, key=key, npz_names=("features", "feats"), header_only=True)
        _feature_shape(path, arr, self.cfg.dim)

    def load(self, src: SampleSource, sample: dict, rng: np.random.Generator, ctx: dict) -> None:
        path, key = self._path(src)
        part = {"features": read_features(path, dim=self.cfg.dim, key=key)}
        sample.update(self.transform(part, rng=rng))
        ctx.setdefault("file", path)
