"""Dataset definitions: class lists, polarity maps, and readers of the layouts users already have.

- ``annotation``: the ActivityNet-like JSON of VideoEmotion-8 / Ekman-6 (``{"labels": [...],
  "database": {id: {"subset": ..., "annotations": {"label": ...}}}}``), with videos as files
  (``<video_root>/<Class>/<id>.mp4``) or JPEG frame folders (``<video_root>/<Class>/<id>/000001.jpg``)
  and optional sidecar audio (``<audio_root>/<Class>/<id>.mp3``), the layout of the original code.
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


def build_index(data_cfg) -> DatasetIndex:
    """Build a :class:`DatasetIndex` with media resolved from a :class:`~affectkit.config.DataSection`."""
    fmt = data_cfg.format
    group_by = getattr(data_cfg, "group_by", None)
    # with group_by, validation holds out whole groups (assign_group_splits), never clips of a train group
    common = dict(val_fraction=0.0 if group_by else data_cfg.val_fraction, split_seed=data_cfg.split_seed,
                  classes=data_cfg.classes, polarity=data_cfg.polarity)
    if not data_cfg.path:
        raise DatasetError("data.path is empty: give the annotation JSON, the folder or the CSV (e.g. -o data.path=demo_data/synth.json)")
    if fmt == "annotation":
        index = load_annotation_index(data_cfg.path, subsets=data_cfg.subsets, **common)
        base = Path(data_cfg.path).parent
        video_root = data_cfg.video_root or (base / "img" if (base / "img").is_dir() else base)
        audio_root = data_cfg.audio_root or (base / "mp3" if (base / "mp3").is_dir() else None)
        index = resolve_media(index, video_root, audio_root)
    elif fmt == "folder":
        index = load_folder_index(data_cfg.path, **common)
    elif fmt == "csv":
        index = load_csv_index(data_cfg.path, label_column=getattr(data_cfg, "label_column", None), **common)
    elif fmt == "audio":
        index = load_audio_index(data_cfg.path, label_column=getattr(data_cfg, "label_column", None), **common)
    else:
        raise DatasetError(f"data.format {fmt!r} unknown; expected annotation, folder, csv or audio")
    if group_by:
        assign_group_splits(index, group_by, getattr(data_cfg, "splits", None),
                            val_fraction=data_cfg.val_fraction, seed=data_cfg.split_seed)
    return index


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """What a dataset holds (annotation JSON, folder, CSV, or a folder of RAVDESS recordings), without
    reading any media. A RAVDESS folder is counted per actor (``Actor_01`` ...)."""
    path = Path(path)
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
        "layout": layout,
        "classes": index.classes,
        "num_videos": len(index.records),
        "per_split": {k: sum(v.values()) for k, v in per_split.items()},
        "per_split_per_class": per_split,
        "per_class": dict(Counter(r.label_name for r in index.records)),
        "problems": [f"{a}: {b}" for a, b in index.problems],
    }
