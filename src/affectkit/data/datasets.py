"""Dataset definitions: class lists, polarity maps, and readers of the layouts users already have.

- ``annotation``: the ActivityNet-like JSON of VideoEmotion-8 / Ekman-6 (``{"labels": [...],
  "database": {id: {"subset": ..., "annotations": {"label": ...}}}}``), with videos as files
  (``<video_root>/<Class>/<id>.mp4``) or JPEG frame folders (``<video_root>/<Class>/<id>/000001.jpg``)
  and optional sidecar audio (``<audio_root>/<Class>/<id>.mp3``), the layout of the original code.
- ``folder``: ``<root>/<Class>/<video files>`` (optionally under ``train/``, ``val/``, ``test/``).
- ``csv``: a CSV with columns ``path,label`` and optionally ``split`` (paths relative to the CSV).

Reading an index never touches the media: :func:`resolve_media` then finds each file and reports
what is missing, so ``affectkit data info`` works on an annotation file alone.
"""
from __future__ import annotations

import csv
import json
import os
import random
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DatasetError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".flv", ".m4v", ".mpg", ".mpeg", ".wmv", ".3gp")
AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".m4a", ".aac", ".ogg")

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


@dataclass
class DatasetIndex:
    """What a dataset holds: its classes, its records, and what had to be skipped and why."""

    source: str
    classes: list[str]
    records: list[VideoRecord]
    polarity: dict[str, str] | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)  # (what, why) of skipped entries

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
def read_annotation(path: str | os.PathLike) -> tuple[list[str], list[VideoRecord], dict[str, Any]]:
    """Parse an ActivityNet-like classification JSON. Returns (labels, records, top-level extras)."""
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
    records = []
    for vid, entry in data["database"].items():
        if not isinstance(entry, dict) or "subset" not in entry:
            raise DatasetError(f"{path}: database entry {vid!r} has no 'subset'")
        ann = entry.get("annotations")
        label = ann.get("label") if isinstance(ann, dict) else None
        extra = {k: v for k, v in entry.items() if k not in ("subset", "annotations")}
        records.append(VideoRecord(video_id=str(vid), label_name=label, subset=str(entry["subset"]), extra=extra))
    if labels is None:
        labels = sorted({r.label_name for r in records if r.label_name is not None})
    top = {k: v for k, v in data.items() if k not in ("labels", "database")}
    return list(labels), records, top


def _assign_splits(records: list[VideoRecord], subsets: dict[str, str], val_fraction: float, seed: int) -> None:
    reverse = {v: k for k, v in subsets.items() if v}
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
                index.problems.append((r.video_id, f"annotation names video {r.video_id!r} (label {r.label_name!r}) but no file or frame folder was found under {video_root}"))
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
    pos = {c: i for i, c in enumerate(index.classes)}
    kept = []
    for r in index.records:
        if r.label_name is None or r.label_name not in pos:
            index.problems.append((r.path or r.video_id, f"unknown label {r.label_name!r}; the classes are {', '.join(index.classes)}"))
            continue
        r.label = pos[r.label_name]
        kept.append(r)
    index.records = kept


def load_annotation_index(path, *, subsets=None, val_fraction=0.0, split_seed=0, classes=None, polarity=None) -> DatasetIndex:
    labels, records, top = read_annotation(path)
    classes = list(classes) if classes else labels
    if polarity is None and isinstance(top.get("polarity"), dict):
        polarity = top["polarity"]
    index = DatasetIndex(str(path), classes, records)
    _check_labels(index)
    _assign_splits(index.records, subsets or {"train": "training", "val": "validation", "test": "testing"}, val_fraction, split_seed)
    index.polarity = polarity_map(polarity, classes)
    return index


def _is_video(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS


def load_folder_index(root, *, val_fraction=0.0, split_seed=0, classes=None, polarity=None) -> DatasetIndex:
    """``root/<Class>/*.mp4`` or ``root/{train,val,test}/<Class>/*.mp4``."""
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
                if _is_video(f):
                    found_classes.add(cdir.name)
                    records.append(VideoRecord(video_id=f.stem, label_name=cdir.name, subset=split, split=split, path=str(f)))
    if not records:
        raise DatasetError(f"{root}: no videos found (expected <Class>/<video>{'|'.join(VIDEO_EXTENSIONS[:3])}... sub-folders)")
    index = DatasetIndex(str(root), list(classes) if classes else sorted(found_classes), records)
    _check_labels(index)
    if val_fraction > 0:
        _assign_splits(index.records, {"train": "train", "val": "val", "test": "test"}, val_fraction, split_seed)
    index.polarity = polarity_map(polarity, index.classes)
    return index


def load_csv_index(path, *, val_fraction=0.0, split_seed=0, classes=None, polarity=None) -> DatasetIndex:
    """CSV with columns ``path,label`` and optional ``split`` (train|val|test) and ``video_id``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: CSV file not found")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        for need in ("path", "label"):
            if need not in cols:
                raise DatasetError(f"{path}: missing column {need!r} (columns: {', '.join(cols) or 'none'})")
        rows = list(reader)
    records, problems = [], []
    for i, row in enumerate(rows, start=2):
        p = Path(row["path"])
        p = p if p.is_absolute() else path.parent / p
        split = (row.get("split") or "train").strip()
        if split not in SPLITS:
            raise DatasetError(f"{path}:{i}: split {split!r} is not one of {', '.join(SPLITS)}")
        if not p.exists():
            problems.append((str(p), f"listed at {path}:{i} but not found"))
            continue
        records.append(VideoRecord(video_id=row.get("video_id") or p.stem, label_name=row["label"], subset=split, split=split, path=str(p)))
    index = DatasetIndex(str(path), list(classes) if classes else sorted({r.label_name for r in records}), records, problems=problems)
    _check_labels(index)
    if val_fraction > 0:
        _assign_splits(index.records, {"train": "train", "val": "val", "test": "test"}, val_fraction, split_seed)
    index.polarity = polarity_map(polarity, index.classes)
    return index


def build_index(data_cfg) -> DatasetIndex:
    """Build a :class:`DatasetIndex` with media resolved from a :class:`~affectkit.config.DataSection`."""
    fmt = data_cfg.format
    common = dict(val_fraction=data_cfg.val_fraction, split_seed=data_cfg.split_seed, classes=data_cfg.classes, polarity=data_cfg.polarity)
    if not data_cfg.path:
        raise DatasetError("data.path is empty: give the annotation JSON, the folder or the CSV (e.g. -o data.path=demo_data/synth.json)")
    if fmt == "annotation":
        index = load_annotation_index(data_cfg.path, subsets=data_cfg.subsets, **common)
        base = Path(data_cfg.path).parent
        video_root = data_cfg.video_root or (base / "img" if (base / "img").is_dir() else base)
        audio_root = data_cfg.audio_root or (base / "mp3" if (base / "mp3").is_dir() else None)
        return resolve_media(index, video_root, audio_root)
    if fmt == "folder":
        return load_folder_index(data_cfg.path, **common)
    if fmt == "csv":
        return load_csv_index(data_cfg.path, **common)
    raise DatasetError(f"data.format {fmt!r} unknown; expected annotation, folder or csv")


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """What a dataset holds (annotation JSON, folder or CSV), without reading any media."""
    path = Path(path)
    if path.is_dir():
        index = load_folder_index(path)
    elif path.suffix.lower() == ".csv":
        index = load_csv_index(path)
    else:
        labels, records, top = read_annotation(path)
        index = DatasetIndex(str(path), labels, records)
        _check_labels(index)
        for r in index.records:
            r.split = None
    per_split: dict[str, dict[str, int]] = OrderedDict()
    for r in index.records:
        key = r.split or r.subset
        per_split.setdefault(key, OrderedDict((c, 0) for c in index.classes))[r.label_name] += 1
    return {
        "source": str(path),
        "classes": index.classes,
        "num_videos": len(index.records),
        "per_split": {k: sum(v.values()) for k, v in per_split.items()},
        "per_split_per_class": per_split,
        "per_class": dict(Counter(r.label_name for r in index.records)),
        "problems": [f"{a}: {b}" for a, b in index.problems],
    }
