"""Dataset definitions: class lists, polarity maps, and readers of the layouts users already have.

- ``annotation``: the ActivityNet-like JSON of VideoEmotion-8 / Ekman-6 (``{"labels": [...],
  "database": {id: {"subset": ..., "annotations": {"label": ...}}}}``), with videos as files
  (``<video_root>/<Class>/<id>.mp4``) or JPEG frame folders (``<video_root>/<Class>/<id>/000001.jpg``)
  and optional sidecar audio (``<audio_root>/<Class>/<id>.mp3``), the layout of the original code.
  Untrimmed videos (TSL-300, ``affectkit data synth --untrimmed``): ``"annotations": [{"segment":
  [start, end], "label": "p"}, ...]`` (times may be strings) gives records with ``segments`` and no clip
  label, an index of ``kind`` ``"segments"``; ``fps_dict.json`` / ``len_duration_dict.json`` beside the
  JSON (TSL-300) give fps and durations. Point labels (one frame or time per instance) come from a
  CSV (:func:`read_points`, :func:`attach_points`; ``data.points``).
- ``folder``: ``<root>/<Class>/<video files>`` (optionally under ``train/``, ``val/``, ``test/``).
- ``csv``: a CSV with columns ``path,label`` and optionally ``split`` (paths relative to the CSV);
  further columns (e.g. ``actor``) are kept as record metadata.
- ``audio``: labelled audio files (or the audio track of videos), as a folder or a CSV. A folder whose
  files follow the RAVDESS naming convention (``03-01-05-01-02-01-12.wav``) is labelled from the
  names, no list needed; any other folder is read as ``<root>/<Class>/<files>``; a CSV as ``csv``.

Speaker-independent splits: ``data.group_by`` names a metadata field (RAVDESS: ``actor``; a CSV:
any column) and ``data.splits`` lists the groups of each split (:func:`assign_group_splits`), so a
speaker is never in two splits.

Reading an index never touches the media: :func:`resolve_media` then finds each file and reports
what is missing, so ``affectkit data info`` works on an annotation file alone.
"""
from __future__ import annotations

import csv
import json
import os
import random
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DatasetError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".flv", ".m4v", ".mpg", ".mpeg", ".wmv", ".3gp")
AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".m4a", ".aac", ".ogg", ".opus", ".wma", ".aiff", ".aif")
MEDIA_EXTENSIONS = AUDIO_EXTENSIONS + VIDEO_EXTENSIONS  # what an audio dataset reads (a video's audio track too)

# Class lists in the index order of the original code, and emotion -> sentiment polarity maps.
VE8_CLASSES = ["Anger", "Anticipation", "Disgust", "Fear", "Joy", "Sadness", "Surprise", "Trust"]
EK6_CLASSES = ["anger", "disgust", "fear", "joy", "sadness", "surprise"]
POLARITY_PRESETS: dict[str, dict[str, str]] = {
    # VAANet's PCCE groups (spec 1.4): positive = Anticipation, Joy, Surprise, Trust.
    "ve8": {c: ("positive" if c in ("Anticipation", "Joy", "Surprise", "Trust") else "negative") for c in VE8_CLASSES},
    # The natural Ekman-6 grouping; the paper's exact E-6 map is unpublished (spec 1.4 [U]).
    "ek6": {c: ("positive" if c in ("joy", "surprise") else "negative") for c in EK6_CLASSES},
}
DATASET_PRESETS = {"ve8": VE8_CLASSES, "ek6": EK6_CLASSES}
SPLITS = ("train", "val", "test")

# RAVDESS (Livingstone and Russo 2018): 7 two-digit fields in every file name,
# modality-vocal_channel-emotion-intensity-statement-repetition-actor, e.g. 03-01-05-01-02-01-12.wav.
RAVDESS_EMOTIONS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]  # codes 01..08
RAVDESS_FIELDS = ("modality", "vocal_channel", "emotion_id", "intensity", "statement", "repetition", "actor")
_RAVDESS_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
# the largest valid code of each field (all start at 01); 24 actors in the full set
_RAVDESS_MAX = {"modality": 3, "vocal_channel": 2, "emotion_id": 8, "intensity": 2, "statement": 2, "repetition": 2, "actor": 99}


@dataclass
class VideoRecord:
    """One labelled video of a dataset index."""

    video_id: str
    label_name: str | None
    subset: str  # the subset name as written in the source (e.g. "training")
    split: str | None = None  # the kit's split: train | val | test (None: not used)
    label: int | None = None
    path: str | None = None  # video file or frame folder, once resolved
    audio_path: str | None = None  # sidecar audio; None means the video file's own audio
    subtitles: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # untrimmed videos: segments [{"start": s, "end": s, "label": str, "label_index": int, ...}] and
    # point labels [{"time": s | None, "label": str, "label_index": int, "frame": int (when given), ...}]
    segments: list[dict[str, Any]] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)
    duration: float | None = None  # seconds, when the source gives it
    fps: float | None = None


@dataclass
class DatasetIndex:
    """What a dataset holds: its classes, its records, and what had to be skipped and why."""

    source: str
    classes: list[str]
    records: list[VideoRecord]
    polarity: dict[str, str] | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)  # (what, why) of skipped entries
    group_by: str | None = None  # the metadata field the splits were made by (e.g. "actor")
    groups: dict[str, list[str]] = field(default_factory=dict)  # split -> its groups, when grouped
    kind: str = "clips"  # "clips": one label a record; "segments": untrimmed videos with temporal segments

    @property
    def untrimmed(self) -> bool:
        return self.kind == "segments"

    def split(self, name: str) -> list[VideoRecord]:
        return [r for r in self.records if r.split == name]

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = OrderedDict()
        for r in self.records:
            key = r.split or f"({r.subset})"
            out.setdefault(key, Counter())[r.label_name] += 1
        return {k: dict(v) for k, v in out.items()}


def polarity_map(spec: str | dict[str, str] | None, classes: list[str]) -> dict[str, str] | None:
    """Resolve a polarity preset name or mapping against ``classes``; every class must be covered."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec not in POLARITY_PRESETS:
            raise DatasetError(f"unknown polarity preset {spec!r}; presets: {', '.join(POLARITY_PRESETS)}")
        spec = POLARITY_PRESETS[spec]
    out = {}
    for c in classes:
        v = spec.get(c)
        if v not in ("positive", "negative"):
            raise DatasetError(f"polarity map: class {c!r} has {v!r}, expected 'positive' or 'negative'")
        out[c] = v
    return out


# ---------------------------------------------------------------------------------------------
def parse_ravdess_name(name: str | os.PathLike) -> dict[str, Any] | None:
    """Metadata of a RAVDESS file name (``03-01-05-01-02-01-12.wav``), or ``None`` if the name does
    not have the 7 two-digit fields.

    Returns the columns of RAVDESS' ``labels.csv``: ``modality`` (1 audio-video, 2 video-only,
    3 audio-only), ``vocal_channel`` (1 speech, 2 song), ``emotion_id`` (1..8), ``emotion`` (name),
    ``intensity`` (1 normal, 2 strong), ``statement`` (1 "Kids ...", 2 "Dogs ..."), ``repetition``
    (1, 2), ``actor`` (1..24) and ``gender`` (odd actors male, even female). Raises ``ValueError``
    when the name has the form but a code is out of range.
    """
    stem = Path(name).name.split(".")[0]
    m = _RAVDESS_NAME.match(stem)
    if m is None:
        return None
    meta: dict[str, Any] = {}
    for key, text in zip(RAVDESS_FIELDS, m.groups()):
        value = int(text)
        if not 1 <= value <= _RAVDESS_MAX[key]:
            raise ValueError(f"RAVDESS file name {Path(name).name!r}: {key} code {text} is out of range 01..{_RAVDESS_MAX[key]:02d}")
        meta[key] = value
    meta["emotion"] = RAVDESS_EMOTIONS[meta["emotion_id"] - 1]
    meta["gender"] = "male" if meta["actor"] % 2 else "female"
    return {k: meta[k] for k in ("modality", "vocal_channel", "emotion_id", "emotion", "intensity", "statement",
                                  "repetition", "actor", "gender")}


def _media_files(root: Path, extensions: tuple[str, ...]) -> list[Path]:
    """Media files under ``root`` (recursively, hidden files and folders left out), sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath) / f for f in filenames if not f.startswith(".") and Path(f).suffix.lower() in extensions]
    return sorted(out)


def is_ravdess_folder(root: str | os.PathLike) -> bool:
    """True if a media file under ``root`` is named by the RAVDESS convention."""
    for f in _media_files(Path(root), MEDIA_EXTENSIONS):
        if _RAVDESS_NAME.match(f.name.split(".")[0]):
            return True
    return False


def load_ravdess_index(root, *, classes=None, polarity=None) -> DatasetIndex:
    """A folder of RAVDESS recordings (any depth, e.g. ``Actor_01/03-01-05-01-02-01-01.wav``), labelled
    from the file names: the classes are the 8 RAVDESS emotions in code order, each record's ``extra``
    holds the name's fields (``actor``, ``gender``, ``intensity`` ...). Audio and video files are
    read (the full-AV ``.mp4`` of RAVDESS too; video-only recordings are rejected by the audio loader
    as having no audio stream). Other files are reported in ``problems``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    records, problems = [], []
    for f in _media_files(root, MEDIA_EXTENSIONS):
        try:
            meta = parse_ravdess_name(f.name)
        except ValueError as err:
            problems.append((str(f), str(err)))
            continue
        if meta is None:
            problems.append((str(f), "file name does not follow the RAVDESS convention (modality-vocal_channel-emotion-intensity-statement-repetition-actor, e.g. 03-01-05-01-02-01-12.wav)"))
            continue
        records.append(VideoRecord(video_id=f.stem, label_name=meta["emotion"], subset=f"Actor_{meta['actor']:02d}",
                                   path=str(f), extra=meta))
    if not records:
        raise DatasetError(f"{root}: no RAVDESS recordings found (expected files named like 03-01-05-01-02-01-12.wav)")
    seen: dict[str, str] = {}
    for r in records:  # the same recording as .wav and .mp4: keep both, but ids must differ
        if r.video_id in seen:
            r.video_id = f"{r.video_id}{Path(r.path).suffix.lower()}"
        seen[r.video_id] = r.path
    index = DatasetIndex(str(root), list(classes) if classes else list(RAVDESS_EMOTIONS), records, problems=problems)
    _check_labels(index)
    index.polarity = polarity_map(polarity, index.classes)
    return index


def _number(value: Any) -> float | None:
    """A finite float from a number or a numeric string, else ``None``."""
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if x == x and abs(x) != float("inf") else None


def _read_segments(path: Path, vid: str, ann: list, problems: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The segments of one entry's annotation list; malformed ones are reported and left out."""
    out = []
    for i, a in enumerate(ann):
        where = f"{path}: video {vid!r} annotation {i}"
        seg = a.get("segment") if isinstance(a, dict) else None
        if not isinstance(seg, (list, tuple)) or len(seg) != 2:
            problems.append((vid, f"{where}: expected {{'segment': [start, end], 'label': ...}}, got {a!r:.80}"))
            continue
        start, end = _number(seg[0]), _number(seg[1])
        if start is None or end is None:
            problems.append((vid, f"{where}: segment {list(seg)!r} is not two numbers (seconds)"))
            continue
        if end <= start:
            problems.append((vid, f"{where}: segment [{start}, {end}] ends before it starts"))
            continue
        if not isinstance(a.get("label"), str):
            problems.append((vid, f"{where}: segment [{start}, {end}] has no label"))
            continue
        extra = {k: v for k, v in a.items() if k not in ("segment", "label", "start", "end", "label_index")}
        out.append({"start": start, "end": end, "label": a["label"], "label_index": -1, **extra})
    return out


def _label_kind(label: Any) -> str | None:
    """"name" (a string), "number" (an int or float, not a bool), else None (not a usable label)."""
    if isinstance(label, str):
        return "name"
    if isinstance(label, (int, float)) and not isinstance(label, bool):
        return "number"
    return None


def _read_annotation(path) -> tuple[list[str], list[VideoRecord], dict[str, Any], str, list[tuple[str, str]]]:
    """(labels, records, top-level extras, kind, problems) of an annotation JSON."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a valid JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        raise DatasetError(f"{path}: expected a JSON object with a 'database' mapping (ActivityNet-style)")
    labels = data.get("labels")
    if labels is not None and (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)):
        raise DatasetError(f"{path}: 'labels' must be a list of class names")
    records, problems, kind = [], [], "clips"
    first_of_kind: dict[str, tuple[str, Any]] = {}  # "name" / "number" -> (where, label), for mixes
    for vid, entry in data["database"].items():
        if not isinstance(entry, dict) or "subset" not in entry:
            raise DatasetError(f"{path}: database entry {vid!r} has no 'subset'")
        ann = entry.get("annotations")
        label = ann.get("label") if isinstance(ann, dict) else None
        if label is not None:
            what = _label_kind(label)
            if what is None:
                raise DatasetError(f"{path}: database entry {vid!r} has label {label!r:.80} "
                                   f"({type(label).__name__}); a label must be a class name (a string)")
            first_of_kind.setdefault(what, (f"entry {str(vid)!r}", label))
        extra = {k: v for k, v in entry.items() if k not in ("subset", "annotations")}
        rec = VideoRecord(video_id=str(vid), label_name=label, subset=str(entry["subset"]), extra=extra,
                          duration=_number(entry.get("duration")), fps=_number(entry.get("fps")))
        if isinstance(ann, list):
            kind = "segments"
            rec.segments = _read_segments(path, str(vid), ann, problems)
        records.append(rec)
    if labels is None:
        seg = next(((r.video_id, i, sg["label"]) for r in records for i, sg in enumerate(r.segments)), None)
        if seg is not None:  # segment labels are always names
            first_of_kind.setdefault("name", (f"entry {seg[0]!r} segment {seg[1]}", seg[2]))
        if "name" in first_of_kind and "number" in first_of_kind:
            (num_at, num), (name_at, name) = first_of_kind["number"], first_of_kind["name"]
            raise DatasetError(
                f"{path}: labels mix numbers and names and the file has no 'labels' list: {num_at} has "
                f"label {num!r} (a number), {name_at} has {name!r} (a name); write every label as a "
                f"string (e.g. \"{num}\") or give the class names in 'labels'")
        names = {r.label_name for r in records if r.label_name is not None}
        labels = sorted(names | {s["label"] for r in records for s in r.segments})
    top = {k: v for k, v in data.items() if k not in ("labels", "database")}
    return list(labels), records, top, kind, problems


def read_annotation(path: str | os.PathLike) -> tuple[list[str], list[VideoRecord], dict[str, Any]]:
    """Parse an ActivityNet-like JSON (clip labels or segment lists). Returns (labels, records, top-level
    extras); the labels are the file's ``labels`` list, else the sorted clip and segment labels."""
    labels, records, top, _, _ = _read_annotation(path)
    return labels, records, top


def _read_number_map(path: Path, what: str) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a valid JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object video id -> {what}")
    out = {}
    for vid, v in data.items():
        x = _number(v)
        if x is None or x <= 0:
            raise DatasetError(f"{path}: video {vid!r} has {what} {v!r}; expected a positive number")
        out[str(vid)] = x
    return out


TIMING_SIDECARS = {"fps": "fps_dict.json", "duration": "len_duration_dict.json"}  # TSL-300: id -> fps / seconds


def attach_timing(index: DatasetIndex, folder: str | os.PathLike) -> DatasetIndex:
    """Fill records' ``fps`` / ``duration`` (where the annotation gave none) from TSL-300's
    ``fps_dict.json`` (frames per second) and ``len_duration_dict.json`` (seconds) in ``folder``."""
    for attr, name in TIMING_SIDECARS.items():
        f = Path(folder) / name
        if not f.is_file():
            continue
        values = _read_number_map(f, attr)
        for r in index.records:
            if getattr(r, attr) is None and r.video_id in values:
                setattr(r, attr, values[r.video_id])
    return index


# ---------------------------------------------------------------------------------------------
# point labels (one time or frame per instance, e.g. TSL-300's point_gaussian/point_labels.csv)
POINT_LABEL_COLUMNS = ("class", "label")
POINT_TIME_COLUMNS = ("point_time", "time")
POINT_FRAME_COLUMNS = ("point_frame", "point", "frame")


def read_points(path: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
    """Point labels of a CSV, by video id, in file order: ``{"time": s | None, "label": str,
    "frame": int (when given), ...}``.

    Columns: ``video_id``; the label (``class`` or ``label``); the time in seconds (``point_time`` or
    ``time``) and/or the frame (``point_frame``, ``point`` or ``frame``). TSL-300 gives frames only
    (``class,class_index,start_frame,stop_frame,video_id,point``), the synthetic set both
    (``video_id,class,point_time,point_frame,emotion``). Other columns are kept (numbers as numbers)
    except ``class_index``: :func:`attach_points` numbers labels by the index's classes.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: point label file not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot be read as a CSV ({exc})") from None
    lab = next((c for c in POINT_LABEL_COLUMNS if c in cols), None)
    tcol = next((c for c in POINT_TIME_COLUMNS if c in cols), None)
    fcol = next((c for c in POINT_FRAME_COLUMNS if c in cols), None)
    if "video_id" not in cols or lab is None or (tcol is None and fcol is None):
        raise DatasetError(f"{path}: point labels need columns video_id, class (or label) and point_time (or a frame: "
                           f"point_frame, point); columns: {', '.join(cols) or 'none'}")
    used = {"video_id", lab, tcol, fcol, "class_index"}
    out: dict[str, list[dict[str, Any]]] = {}
    for line, row in enumerate(rows, start=2):
        vid, label = (row.get("video_id") or "").strip(), (row.get(lab) or "").strip()
        if not vid or not label:
            raise DatasetError(f"{path}:{line}: empty video_id or {lab}")
        point: dict[str, Any] = {"time": None, "label": label, "label_index": -1}
        if tcol is not None:
            t = _number(row.get(tcol))
            if t is None or t < 0:
                raise DatasetError(f"{path}:{line}: {tcol} {row.get(tcol)!r} is not a time in seconds")
            point["time"] = t
        if fcol is not None:
            f = _number(row.get(fcol))
            if f is None or f < 0 or f != int(f):
                raise DatasetError(f"{path}:{line}: {fcol} {row.get(fcol)!r} is not a frame number")
            point["frame"] = int(f)
        for k, v in row.items():
            if k is not None and k not in used and v not in (None, ""):
                x = _number(v)
                point[k] = (int(x) if x == int(x) and "." not in v else x) if x is not None else v
        out.setdefault(vid, []).append(point)
    return out


def attach_points(index: DatasetIndex, path: str | os.PathLike) -> DatasetIndex:
    """Set the records' ``points`` from a point label CSV (:func:`read_points`), sorted by time.

    ``label_index`` follows ``index.classes``; a point given by frame only gets ``time = frame / fps``
    when the record's fps is known, else ``None`` (reported). Points of unknown labels or of videos the
    index does not hold are reported in ``problems`` and left out.
    """
    by_video = read_points(path)
    pos = {c: i for i, c in enumerate(index.classes)}
    ids = {r.video_id for r in index.records}

    def some(names: list[str]) -> str:
        return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")

    unknown_videos = [v for v in by_video if v not in ids]
    if unknown_videos:
        n = sum(len(by_video[v]) for v in unknown_videos)
        index.problems.append((str(path), f"{n} point(s) of {len(unknown_videos)} video(s) the index does not hold "
                                          f"({some(unknown_videos)}): left out"))
    bad_labels: Counter = Counter()
    untimed: list[str] = []
    for r in index.records:
        kept = []
        for p in by_video.get(r.video_id, []):
            if p["label"] not in pos:
                bad_labels[p["label"]] += 1
                continue
            p = dict(p, label_index=pos[p["label"]])
            if p["time"] is None and "frame" in p:
                if r.fps:
                    p["time"] = p["frame"] / r.fps
                elif not untimed or untimed[-1] != r.video_id:
                    untimed.append(r.video_id)
            kept.append(p)
        r.points = sorted(kept, key=lambda p: (p["time"] is None, p["time"] or 0.0, p.get("frame", 0)))
    for label, n in bad_labels.items():
        index.problems.append((str(path), f"{n} point(s) with unknown label {label!r} (the classes are "
                                          f"{', '.join(index.classes)}): left out"))
    if untimed:
        index.problems.append((str(path), f"points of {len(untimed)} video(s) ({some(untimed)}) are given by frame only and "
                                          f"the video's fps is unknown: their time is None"))
    return index


def _assign_splits(records: list[VideoRecord], subsets: dict[str, str], val_fraction: float, seed: int) -> None:
    reverse = {v: k for k, v in subsets.items() if v}
    for sp in SPLITS:  # a subset already named train/val/test (TSL-300) is that split unless mapped otherwise
        reverse.setdefault(sp, sp)
    for r in records:
        r.split = reverse.get(r.subset)
    if val_fraction > 0 and not any(r.split == "val" for r in records):
        # Stratified, deterministic carve-out of a validation split from train (never from test).
        rng = random.Random(seed)
        by_class: dict[str | None, list[VideoRecord]] = {}
        for r in records:
            if r.split == "train":
                by_class.setdefault(r.label_name, []).append(r)
        for _, group in sorted(by_class.items(), key=lambda kv: str(kv[0])):
            group = sorted(group, key=lambda r: r.video_id)
            rng.shuffle(group)
            n_val = int(round(len(group) * val_fraction))
            for r in group[:n_val]:
                r.split = "val"


def _find_media(root: Path, label: str | None, vid: str, extensions: tuple[str, ...], allow_dir: bool) -> Path | None:
    bases = [root / label / vid] if label else []
    bases.append(root / vid)
    for base in bases:
        if allow_dir and base.is_dir():
            return base
        for ext in extensions:
            cand = base.with_name(base.name + ext)
            if cand.is_file():
                return cand
    return None


def resolve_media(index: DatasetIndex, video_root: str | os.PathLike, audio_root: str | os.PathLike | None = None) -> DatasetIndex:
    """Find each record's video (file or frame folder) and sidecar audio; drop and report the missing."""
    video_root = Path(video_root)
    audio_root = Path(audio_root) if audio_root else None
    kept = []
    for r in index.records:
        if r.path is None:
            given = r.extra.get("video")
            if given:
                p = Path(given) if Path(given).is_absolute() else video_root / given
                found = p if p.exists() else None
            else:
                found = _find_media(video_root, r.label_name, r.video_id, VIDEO_EXTENSIONS, allow_dir=True)
            if found is None:
                what = f" (label {r.label_name!r})" if r.label_name is not None else ""
                index.problems.append((r.video_id, f"annotation names video {r.video_id!r}{what} but no file or frame folder was found under {video_root}"))
                continue
            r.path = str(found)
        if audio_root is not None and r.audio_path is None:
            a = _find_media(audio_root, r.label_name, r.video_id, AUDIO_EXTENSIONS, allow_dir=False)
            if a is not None:
                r.audio_path = str(a)
        if r.subtitles is None and r.extra.get("subtitles"):
            s = Path(r.extra["subtitles"])
            r.subtitles = str(s if s.is_absolute() else video_root / s)
        kept.append(r)
    index.records = kept
    return index


def _check_labels(index: DatasetIndex) -> None:
    """Number clip and segment labels by ``index.classes``; report and drop records (or segments) whose
    label is not a class. Records without a clip label are kept when untrimmed (segments, points or a
    segment index)."""
    pos = {c: i for i, c in enumerate(index.classes)}
    kept = []
    for r in index.records:
        segs = []
        for sg in r.segments:
            if sg["label"] in pos:
                segs.append(dict(sg, label_index=pos[sg["label"]]))
            else:
                index.problems.append((r.video_id, f"segment [{sg['start']}, {sg['end']}] has unknown label {sg['label']!r}; "
                                                   f"the classes are {', '.join(map(str, index.classes))}; segment left out"))
        r.segments = segs
        if r.label_name is None and (r.segments or r.points or index.kind == "segments"):
            kept.append(r)
            continue
        if r.label_name is None or r.label_name not in pos:
            hint = ""
            if _label_kind(r.label_name) == "number" and str(r.label_name) in pos:
                hint = f" (a number: the class is the name {str(r.label_name)!r}, write the label as a string)"
            index.problems.append((r.path or r.video_id, f"unknown label {r.label_name!r}{hint}; the classes are "
                                                         f"{', '.join(map(str, index.classes))}"))
            continue
        r.label = pos[r.label_name]
        kept.append(r)
    index.records = kept


def load_annotation_index(path, *, subsets=None, val_fraction=0.0, split_seed=0, classes=None, polarity=None,
                          points: str | os.PathLike | None = None) -> DatasetIndex:
    """An annotation JSON as an index (clips, or segments: ``kind == "segments"``), splits assigned;
    TSL-300 timing sidecars beside it are read, and point labels attached when ``points`` is given."""
    labels, records, top, kind, problems = _read_annotation(path)
    classes = list(classes) if classes else labels
    if polarity is None and isinstance(top.get("polarity"), dict):
        polarity = top["polarity"]
    index = DatasetIndex(str(path), classes, records, problems=problems, kind=kind)
    if kind == "segments":
        attach_timing(index, Path(path).parent)
    _check_labels(index)
    if points:
        attach_points(index, points)
    _assign_splits(index.records, subsets or {"train": "training", "val": "validation", "test": "testing"}, val_fraction, split_seed)
    index.polarity = polarity_map(polarity, classes)
    return index


def load_folder_index(root, *, val_fraction=0.0, split_seed=0, classes=None, polarity=None,
                      extensions: tuple[str, ...] = VIDEO_EXTENSIONS) -> DatasetIndex:
    """``root/<Class>/*.mp4`` or ``root/{train,val,test}/<Class>/*.mp4`` (files with ``extensions``)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    split_dirs = {s: root / s for s in SPLITS if (root / s).is_dir()}
    if not split_dirs:
        split_dirs = {"train": root}
    records = []
    found_classes = set()
    for split, d in split_dirs.items():
        for cdir in sorted(p for p in d.iterdir() if p.is_dir()):
            for f in sorted(cdir.iterdir()):
                if f.is_file() and f.suffix.lower() in extensions and not f.name.startswith("."):
                    found_classes.add(cdir.name)
                    records.append(VideoRecord(video_id=f.stem, label_name=cdir.name, subset=split, split=split, path=str(f)))
    if not records:
        what = "videos" if extensions == VIDEO_EXTENSIONS else "media files"
        raise DatasetError(f"{root}: no {what} found (expected <Class>/<file>{'|'.join(extensions[:3])}... sub-folders)")
    index = DatasetIndex(str(root), list(classes) if classes else sorted(found_classes), records)
    _check_labels(index)
    if val_fraction > 0:
        _assign_splits(index.records, {"train": "train", "val": "val", "test": "test"}, val_fraction, split_seed)
    index.polarity = polarity_map(polarity, index.classes)
    return index


LABEL_COLUMNS = ("label", "emotion", "class")  # tried in this order when data.label_column is not given


def load_csv_index(path, *, val_fraction=0.0, split_seed=0, classes=None, polarity=None,
                   label_column: str | None = None) -> DatasetIndex:
    """CSV with columns ``path`` and a label (``label_column``; by default the first of ``label``,
    ``emotion``, ``class``), optionally ``split`` (train|val|test) and ``video_id``. Every other
    column is kept in the records' ``extra`` (e.g. ``actor`` for ``data.group_by``)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: CSV file not found")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        if "path" not in cols:
            raise DatasetError(f"{path}: missing column 'path' (columns: {', '.join(cols) or 'none'})")
        if label_column is None:
            label_column = next((c for c in LABEL_COLUMNS if c in cols), None)
            if label_column is None:
                raise DatasetError(f"{path}: no label column (looked for {', '.join(LABEL_COLUMNS)}; columns: "
                                   f"{', '.join(cols) or 'none'}); set data.label_column")
        elif label_column not in cols:
            raise DatasetError(f"{path}: missing column {label_column!r} (data.label_column; columns: {', '.join(cols) or 'none'})")
        rows = list(reader)
    records, problems = [], []
    for i, row in enumerate(rows, start=2):
        if not (row.get("path") or "").strip():
            problems.append((f"{path}:{i}", "empty path"))
            continue
        p = Path(row["path"].strip())
        p = p if p.is_absolute() else path.parent / p
        split = (row.get("split") or "train").strip()
        if split not in SPLITS:
            raise DatasetError(f"{path}:{i}: split {split!r} is not one of {', '.join(SPLITS)}")
        if not p.exists():
            problems.append((str(p), f"listed at {path}:{i} but not found"))
            continue
        extra = {k: v for k, v in row.items() if k is not None and k not in ("path", label_column, "split", "video_id")}
        records.append(VideoRecord(video_id=row.get("video_id") or p.stem, label_name=row[label_column], subset=split,
                                   split=split, path=str(p), extra=extra))
    index = DatasetIndex(str(path), list(classes) if classes else sorted({r.label_name for r in records if r.label_name}), records, problems=problems)
    _check_labels(index)
    if val_fraction > 0:
        _assign_splits(index.records, {"train": "train", "val": "val", "test": "test"}, val_fraction, split_seed)
    index.polarity = polarity_map(polarity, index.classes)
    return index


def load_audio_index(path, *, val_fraction=0.0, split_seed=0, classes=None, polarity=None,
                     label_column: str | None = None) -> DatasetIndex:
    """An audio dataset (``data.format: audio``): a CSV list (see :func:`load_csv_index`), a folder
    of RAVDESS-named recordings (:func:`load_ravdess_index`), or ``<root>/<Class>/<files>``
    (optionally under ``train/``, ``val/``, ``test/``) of audio files and videos (their audio track).
    Records without a split of their own are ``train``."""
    path = Path(path)
    common = dict(val_fraction=val_fraction, split_seed=split_seed, classes=classes, polarity=polarity)
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DatasetError(f"{path}: an audio dataset is a folder or a CSV list (columns path,label[,split,...]), not a {path.suffix or 'plain'} file")
        return load_csv_index(path, label_column=label_column, **common)
    if not path.is_dir():
        raise DatasetError(f"{path}: dataset folder or CSV not found")
    if not is_ravdess_folder(path):
        return load_folder_index(path, extensions=MEDIA_EXTENSIONS, **common)
    index = load_ravdess_index(path, classes=classes, polarity=polarity)
    for r in index.records:
        r.split = "train"
    if val_fraction > 0:
        _assign_splits(index.records, {"train": "train"}, val_fraction, split_seed)
    return index


# ---------------------------------------------------------------------------------------------
# splits by group (speaker-independent evaluation)
def group_key(value: Any) -> str:
    """A group value as splits compare it: ``1``, ``"1"`` and ``"01"`` are the same actor."""
    text = str(value).strip()
    return str(int(text)) if text.isascii() and text.isdigit() else text


def _group_order(g: str):
    return (0, int(g), "") if g.isdigit() else (1, 0, g)


def assign_group_splits(index: DatasetIndex, group_by: str, splits: dict[str, list] | None = None, *,
                        val_fraction: float = 0.0, seed: int = 0) -> DatasetIndex:
    """Give every record the split of its group (the metadata field ``group_by``, e.g. ``actor``),
    so that no group is in two splits.

    ``splits`` maps ``train``/``val``/``test`` to lists of groups. When it has no ``train`` entry,
    every group it does not name is train; when it has one, unnamed groups are left out (split
    ``None``). Without ``splits`` every group is train. With ``val_fraction`` > 0 and no ``val``
    groups, ``round(val_fraction * n)`` (at least one) of the n train groups, drawn with ``seed``,
    become the validation split. Records without a ``group_by`` value are reported and dropped.
    """
    kept: list[tuple[VideoRecord, str]] = []
    for r in index.records:
        value = r.extra.get(group_by)
        if value is None or str(value).strip() == "":
            continue
        kept.append((r, group_key(value)))
    if not kept:
        fields = sorted({k for r in index.records for k in r.extra})
        raise DatasetError(f"{index.source}: data.group_by={group_by!r}: no record has this field "
                           f"(the records have: {', '.join(fields) or 'no metadata'})")
    for r in index.records:
        if r.extra.get(group_by) is None or str(r.extra.get(group_by)).strip() == "":
            index.problems.append((r.path or r.video_id, f"no {group_by!r} value (data.group_by): left out"))
    index.records = [r for r, _ in kept]
    present = sorted({g for _, g in kept}, key=_group_order)
    assignment: dict[str, str] = {}
    for split, groups in (splits or {}).items():
        if isinstance(groups, (str, int)):
            groups = [groups]
        for g in groups or []:
            key = group_key(g)
            if key not in present:
                raise DatasetError(f"{index.source}: data.splits.{split} names {group_by} {g!r}, which the data does not have "
                                   f"({group_by}: {', '.join(present)})")
            if assignment.get(key, split) != split:
                raise DatasetError(f"{index.source}: {group_by} {g!r} is in both data.splits.{assignment[key]} and data.splits.{split}")
            assignment[key] = split
    if not splits or "train" not in splits:
        for g in present:
            assignment.setdefault(g, "train")
    if val_fraction > 0 and "val" not in assignment.values():
        train_groups = [g for g in present if assignment.get(g) == "train"]
        n_val = max(1, int(round(len(train_groups) * val_fraction)))
        if n_val >= len(train_groups):
            raise DatasetError(f"{index.source}: data.val_fraction={val_fraction} would hold out all {len(train_groups)} training "
                               f"{group_by} group(s) for validation; name the validation groups in data.splits.val")
        chosen = list(train_groups)
        random.Random(seed).shuffle(chosen)
        for g in chosen[:n_val]:
            assignment[g] = "val"
    for r, g in kept:
        r.split = assignment.get(g)
    index.group_by = group_by
    index.groups = {s: [g for g in present if assignment.get(g) == s] for s in SPLITS if s in assignment.values()}
    return index


MEDIA_KEYS = frozenset({"video", "audio", "text"})  # sample keys read from the media files an index names


def build_index(data_cfg, *, media: bool = True) -> DatasetIndex:
    """Build a :class:`DatasetIndex` with media resolved from a :class:`~affectkit.config.DataSection`.

    ``media=False``: the model reads no media file (pre-extracted features: TSL-300's ``rgb``/``logmfcc``
    tree), so an annotation's videos are not looked for (their absence is not a problem)."""
    fmt = data_cfg.format
    group_by = getattr(data_cfg, "group_by", None)
    # with group_by, validation holds out whole groups (assign_group_splits), never clips of a train group
    common = dict(val_fraction=0.0 if group_by else data_cfg.val_fraction, split_seed=data_cfg.split_seed,
                  classes=data_cfg.classes, polarity=data_cfg.polarity)
    if not data_cfg.path:
        raise DatasetError("data.path is empty: give the annotation JSON, the folder or the CSV (e.g. -o data.path=demo_data/synth.json)")
    points = getattr(data_cfg, "points", None)
    if points and not Path(points).is_file() and not Path(points).is_absolute():
        beside = Path(data_cfg.path).parent / points  # also relative to the annotation's folder
        points = str(beside) if beside.is_file() else points
    if fmt == "annotation":
        index = load_annotation_index(data_cfg.path, subsets=data_cfg.subsets, points=points, **common)
        base = Path(data_cfg.path).parent
        video_root = data_cfg.video_root or (base / "img" if (base / "img").is_dir() else base)
        audio_root = data_cfg.audio_root or (base / "mp3" if (base / "mp3").is_dir() else None)
        if media:
            index = resolve_media(index, video_root, audio_root)
    elif fmt == "folder":
        index = load_folder_index(data_cfg.path, **common)
    elif fmt == "csv":
        index = load_csv_index(data_cfg.path, label_column=getattr(data_cfg, "label_column", None), **common)
    elif fmt == "audio":
        index = load_audio_index(data_cfg.path, label_column=getattr(data_cfg, "label_column", None), **common)
    elif fmt == "gait":  # Emotion-Gait features/labels h5 pair (affectkit.data.gait)
        from .gait import load_gait_index

        index = load_gait_index(data_cfg.path, test_fraction=getattr(data_cfg, "test_fraction", 0.1),
                                fold=getattr(data_cfg, "fold", None), folds=getattr(data_cfg, "folds", 5), **common)
    else:
        raise DatasetError(f"data.format {fmt!r} unknown; expected annotation, folder, csv, audio or gait")
    if points and fmt != "annotation":
        attach_points(index, points)
    if group_by:
        assign_group_splits(index, group_by, getattr(data_cfg, "splits", None),
                            val_fraction=data_cfg.val_fraction, seed=data_cfg.split_seed)
    return index


POINT_FILES = ("point_labels.csv", "point_gaussian/point_labels.csv")  # looked for beside a segment annotation
_SPLIT_ORDER = ("train", "training", "val", "validation", "test", "testing")


def _split_order(names) -> list[str]:
    names = list(dict.fromkeys(names))
    return sorted(names, key=lambda n: (_SPLIT_ORDER.index(n) if n in _SPLIT_ORDER else len(_SPLIT_ORDER), names.index(n)))


def _describe_segments(path: Path, labels: list[str], records: list[VideoRecord], kind: str,
                       problems: list[tuple[str, str]], points) -> dict[str, Any]:
    """:func:`describe` of a segment annotation: videos per subset, segments and points per label."""
    index = DatasetIndex(str(path), labels, records, problems=problems, kind=kind)
    attach_timing(index, path.parent)
    _check_labels(index)
    if points is None:
        points = next((path.parent / f for f in POINT_FILES if (path.parent / f).is_file()), None)
    if points:
        attach_points(index, points)
    splits = _split_order(r.subset for r in index.records)
    zero = lambda: OrderedDict((c, 0) for c in index.classes)  # noqa: E731
    seg_split = OrderedDict((s, zero()) for s in splits)
    vid_split = OrderedDict((s, zero()) for s in splits)
    pt_split = OrderedDict((s, zero()) for s in splits)
    for r in index.records:
        for sg in r.segments:
            seg_split[r.subset][sg["label"]] += 1
        for c in {sg["label"] for sg in r.segments}:
            vid_split[r.subset][c] += 1
        for p in r.points:
            pt_split[r.subset][p["label"]] += 1
    total = lambda table: OrderedDict((c, sum(t[c] for t in table.values())) for c in index.classes)  # noqa: E731
    info = {
        "source": str(path),
        "layout": "annotation",
        "kind": "segments",
        "classes": index.classes,
        "num_videos": len(index.records),
        "per_split": OrderedDict((s, sum(r.subset == s for r in index.records)) for s in splits),
        "per_split_per_class": vid_split,  # videos with at least one segment of the class
        "per_class": total(vid_split),
        "num_segments": sum(len(r.segments) for r in index.records),
        "segments_per_split": OrderedDict((s, sum(t.values())) for s, t in seg_split.items()),
        "segments_per_label": total(seg_split),
        "segments_per_split_per_label": seg_split,
        "videos_with_segments": sum(bool(r.segments) for r in index.records),
        "videos_with_duration": sum(r.duration is not None for r in index.records),
    }
    if points:
        info.update({
            "points_source": str(points),
            "num_points": sum(len(r.points) for r in index.records),
            "points_per_split": OrderedDict((s, sum(t.values())) for s, t in pt_split.items()),
            "points_per_label": total(pt_split),
            "points_per_split_per_label": pt_split,
            "videos_with_points": sum(bool(r.points) for r in index.records),
        })
    info["problems"] = [f"{a}: {b}" for a, b in index.problems]
    return info


def describe(path: str | os.PathLike, points: str | os.PathLike | bool | None = None) -> dict[str, Any]:
    """What a dataset holds (annotation JSON, folder, CSV, or a folder of RAVDESS recordings), without
    reading any media. A RAVDESS folder is counted per actor (``Actor_01`` ...). A folder that holds
    ``synth.json`` or ``gt.json`` (what ``affectkit data synth`` writes) is described by that file, its
    untrimmed part (``untrimmed/gt.json``) under ``"untrimmed"``.

    A segment annotation (``kind`` ``"segments"``) also gives ``num_segments``, ``segments_per_split``,
    ``segments_per_label``, ``segments_per_split_per_label`` ({subset: {label: n}}) and, with point
    labels (``points``: a CSV; ``None``: ``point_labels.csv`` or ``point_gaussian/point_labels.csv``
    beside the JSON if there; ``False``: none), ``num_points``, ``points_per_label``,
    ``points_per_split_per_label`` and ``videos_with_points``; its ``per_split_per_class`` counts
    videos with a segment of each class.
    """
    path = Path(path)
    if path.is_dir():
        for name in ("synth.json", "gt.json"):
            if (path / name).is_file():
                info = describe(path / name, points)
                if name == "synth.json" and (path / "untrimmed" / "gt.json").is_file():
                    info["untrimmed"] = describe(path / "untrimmed" / "gt.json", points)
                return info
    layout = "annotation"
    if path.is_dir():
        if is_ravdess_folder(path):
            index, layout = load_ravdess_index(path), "ravdess"
        else:
            layout = "folder"
            try:
                index = load_folder_index(path)
            except DatasetError:  # no videos: class folders of audio files
                index = load_folder_index(path, extensions=MEDIA_EXTENSIONS)
    elif path.suffix.lower() == ".csv":
        index, layout = load_csv_index(path), "csv"
    else:
        labels, records, top, kind, problems = _read_annotation(path)
        if kind == "segments":
            return _describe_segments(path, labels, records, kind, problems, None if points is True else points)
        index = DatasetIndex(str(path), labels, records, problems=problems)
        _check_labels(index)
        for r in index.records:
            r.split = None
    per_split: dict[str, dict[str, int]] = OrderedDict()
    for r in index.records:
        key = r.split or r.subset
        per_split.setdefault(key, OrderedDict((c, 0) for c in index.classes))[r.label_name] += 1
    return {
        "source": str(path),
        "layout": layout,
        "kind": "clips",
        "classes": index.classes,
        "num_videos": len(index.records),
        "per_split": {k: sum(v.values()) for k, v in per_split.items()},
        "per_split_per_class": per_split,
        "per_class": dict(Counter(r.label_name for r in index.records)),
        "problems": [f"{a}: {b}" for a, b in index.problems],
    }
