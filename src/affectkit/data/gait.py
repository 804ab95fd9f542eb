"""Gait (3D walking skeleton) data: the Emotion-Gait HDF5 reader, BPM-GCN's preprocessing, the
derived movement and affective posture features, coordinate augmentation and the split protocols.

Emotion-Gait stores one HDF5 dataset per gait (``T x 48`` = 16 joints x xyz, joint order
:data:`JOINTS`) in a features file and one integer per gait, under the same key, in a labels file
(``features.h5`` + ``labels.h5``; the sample release spells it ``sample_lables.h5``). The labels use the
STEP coding :data:`EGAIT_NATIVE` (0 Angry, 1 Neutral, 2 Happy, 3 Sad); the kit uses BPM-GCN's class
order :data:`GAIT_CLASSES` (Happy, Sad, Angry, Neutral) and remaps by name. The emotion word inside a
key (``001_Angry_positions.csv``) names the actor's recording prompt, **not** the label: the label is
only what the labels file says (the 342 real gaits count 112 / 33 / 78 / 119 in the native coding).

- :func:`preprocess_gait`: every gait becomes ``FRAMES`` = 48 frames: a sequence of at least 96
  frames is sub-sampled with step ``T // 48`` (ELMD: 240 frames, every 5th), a shorter one keeps its
  first 48 frames and is zero-padded at the end (the 342 real gaits, 27..75 frames).
- :func:`movement_features`: per joint and frame velocity ``v_t = p_t - p_{t-1}`` and acceleration
  ``a_t = v_t - v_{t-1}`` with their magnitudes (8 channels); ``v_0 = 0``, ``a_0 = a_1 = 0`` and a
  difference touching a padded frame is 0, so padded frames stay 0.
- :func:`affective_features`: the 31 hand-crafted posture features per frame (14 angles in radians,
  9 distances, 8 triangle areas, order :data:`AFFECTIVE_NAMES`), flattened frame-major
  (``T x 31`` -> ``31 * T``: all 31 features of frame 0, then frame 1 ...); standardised per feature
  with statistics of the training split (:func:`affective_stats`).
- :func:`random_move`: 2s-AGCN's random similarity transform of (x, y), applied to the coordinates
  *before* the derived features are computed (the original augments the posture and movement arrays
  independently, which makes them disagree).
- :func:`stratified_split` (9:1 test split, following STEP) and :func:`kfold_splits` (5-fold); the
  validation split is carved from training (``data.val_fraction``), never from test.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DatasetError, MediaError

JOINTS = ("root", "spine", "neck", "head", "l_shoulder", "l_elbow", "l_hand", "r_shoulder", "r_elbow", "r_hand",
          "l_hip", "l_knee", "l_foot", "r_hip", "r_knee", "r_foot")
J = {name: i for i, name in enumerate(JOINTS)}
NUM_JOINTS = 16
FRAMES = 48
UP_AXIS = 1  # Emotion-Gait: y is vertical (head above root), z forward-ish, x lateral

EGAIT_NATIVE = ("Angry", "Neutral", "Happy", "Sad")  # the label values 0..3 of labels.h5 (STEP coding)
GAIT_CLASSES = ["Happy", "Sad", "Angry", "Neutral"]  # BPM-GCN's index order, the kit's default

_ANGLES = [("l_shoulder", "neck", "r_shoulder"), ("neck", "r_shoulder", "l_shoulder"),
           ("r_shoulder", "l_shoulder", "neck"), ("neck", "r_shoulder", "r_elbow"), ("neck", "l_shoulder", "l_elbow"),
           ("r_shoulder", "r_elbow", "r_hand"), ("l_shoulder", "l_elbow", "l_hand"), ("neck", "spine", "root"),
           ("head", "neck", "spine"), ("root", "r_hip", "r_knee"), ("root", "l_hip", "l_knee"),
           ("r_hip", "r_knee", "r_foot"), ("l_hip", "l_knee", "l_foot"), ("head", "root", "up")]
_DISTANCES = [("r_hand", "root"), ("l_hand", "root"), ("r_hand", "r_shoulder"), ("l_hand", "l_shoulder"),
              ("r_elbow", "root"), ("l_elbow", "root"), ("r_foot", "root"), ("l_foot", "root"), ("r_foot", "l_foot")]
_AREAS = [("l_hand", "neck", "r_hand"), ("l_shoulder", "neck", "r_shoulder"), ("l_hand", "root", "r_hand"),
          ("l_elbow", "neck", "r_elbow"), ("l_foot", "neck", "r_foot"), ("l_hip", "neck", "r_hip"),
          ("l_foot", "root", "r_foot"), ("l_knee", "neck", "r_knee")]
AFFECTIVE_NAMES = ([f"angle:{a}-{b}-{c}" for a, b, c in _ANGLES] + [f"dist:{a}-{b}" for a, b in _DISTANCES]
                   + [f"area:{a}-{b}-{c}" for a, b, c in _AREAS])
NUM_AFFECTIVE = len(AFFECTIVE_NAMES)  # 31


# ---------------------------------------------------------------------------------------------
# reading
def _h5py(path):
    try:
        import h5py
    except ImportError:  # pragma: no cover - a dependency
        raise MediaError(path, "reading HDF5 files needs h5py (pip install h5py)") from None
    return h5py


def find_labels_file(features: str | os.PathLike) -> Path:
    """The labels file of an Emotion-Gait features file: ``features*.h5`` -> ``labels*.h5`` (or the
    release's misspelling ``lables``) in the same folder; a folder -> its ``features.h5`` pair."""
    p = Path(features)
    if p.is_dir():
        cands = sorted(p.glob("*features*.h5"))
        if len(cands) != 1:
            raise DatasetError(f"{p}: expected one *features*.h5 in the folder (found {len(cands)}); "
                               f"give data.path as the features file")
        p = cands[0]
    if "features" not in p.name:
        raise DatasetError(f"{p}: an Emotion-Gait features file has 'features' in its name "
                           f"(its labels file is the same name with 'labels')")
    for word in ("labels", "lables"):
        cand = p.with_name(p.name.replace("features", word))
        if cand.is_file():
            return cand
    raise DatasetError(f"{p}: no labels file beside it ({p.name.replace('features', 'labels')} or "
                       f"{p.name.replace('features', 'lables')})")


def read_gait_labels(path: str | os.PathLike) -> dict[str, int]:
    """``{key: native label}`` of an Emotion-Gait labels file (one integer 0..3 per key)."""
    path = os.fspath(path)
    h5py = _h5py(path)
    if not os.path.isfile(path):
        raise MediaError(path, "labels file not found")
    out: dict[str, int] = {}
    try:
        with h5py.File(path, "r") as f:
            for key in f.keys():
                value = np.asarray(f[key][()]).reshape(-1)
                if value.size != 1 or value.dtype.kind not in "biuf" or value[0] != int(value[0]):
                    raise MediaError(path, f"label {key!r} is {value[:4].tolist()}, expected one integer 0..3")
                lab = int(value[0])
                if not 0 <= lab < len(EGAIT_NATIVE):
                    raise MediaError(path, f"label {key!r} is {lab}, expected 0..3 ({', '.join(EGAIT_NATIVE)})")
                out[key] = lab
    except MediaError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise MediaError(path, f"not a readable HDF5 file ({str(err).splitlines()[0][:160]})") from None
    if not out:
        raise MediaError(path, "labels file holds no labels")
    return out


def read_gait_features(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{key: (T, 16, 3) float32}`` of an Emotion-Gait features file (each dataset ``T x 48``)."""
    path = os.fspath(path)
    h5py = _h5py(path)
    if not os.path.isfile(path):
        raise MediaError(path, "features file not found")
    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:
            for key in f.keys():
                arr = np.asarray(f[key][()])
                if arr.ndim != 2 or arr.shape[1] != NUM_JOINTS * 3 or arr.shape[0] < 1:
                    raise MediaError(path, f"gait {key!r} has shape {arr.shape}, expected (T, 48) = 16 joints x xyz")
                if arr.dtype.kind not in "biuf":
                    raise MediaError(path, f"gait {key!r} holds {arr.dtype} values, not numbers")
                arr = arr.astype(np.float32).reshape(-1, NUM_JOINTS, 3)
                if not np.isfinite(arr).all():
                    raise MediaError(path, f"gait {key!r} holds NaN or infinite values")
                out[key] = arr
    except MediaError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise MediaError(path, f"not a readable HDF5 file ({str(err).splitlines()[0][:160]})") from None
    if not out:
        raise MediaError(path, "features file holds no gaits")
    return out


def native_to_classes(native: int, classes: list[str]) -> int:
    """The index in ``classes`` of a native Emotion-Gait label (remapped by name)."""
    return classes.index(EGAIT_NATIVE[native])


# ---------------------------------------------------------------------------------------------
# preprocessing and derived features
def preprocess_gait(x: np.ndarray, frames: int = FRAMES) -> tuple[np.ndarray, int]:
    """``(T, J, 3)`` -> ``((frames, J, 3), real frames)``: sub-sample with step ``T // frames`` when
    ``T >= 2 * frames``, else keep the first ``frames``; zero-pad at the end."""
    x = np.asarray(x, dtype=np.float32)
    t = x.shape[0]
    step = t // frames
    if step >= 2:
        x = x[::step]
    x = x[:frames]
    n = x.shape[0]
    out = np.zeros((frames,) + x.shape[1:], dtype=np.float32)
    out[:n] = x
    return out, n


def frame_mask(coords: torch.Tensor) -> torch.Tensor:
    """``(N, C, T, V)`` -> ``(N, T)`` True where a frame holds any non-zero coordinate (padding is 0)."""
    return coords.abs().amax(dim=(1, 3)) > 0


def movement_features(coords: torch.Tensor | np.ndarray, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``(C=3, T, V)`` or ``(N, 3, T, V)`` coordinates -> 8 movement channels (vx, vy, vz, |v|, ax, ay,
    az, |a|) of the same layout. ``mask`` ``(T,)`` / ``(N, T)``: real frames (default: non-zero frames)."""
    x = torch.as_tensor(coords, dtype=torch.float32)
    single = x.dim() == 3
    if single:
        x = x.unsqueeze(0)
    m = frame_mask(x) if mask is None else torch.as_tensor(mask).reshape(x.shape[0], x.shape[2]).bool()
    m = m.to(x.dtype)[:, None, :, None]  # (N, 1, T, 1)
    v = torch.zeros_like(x)
    v[:, :, 1:] = (x[:, :, 1:] - x[:, :, :-1]) * m[:, :, 1:] * m[:, :, :-1]
    vm = torch.zeros_like(m)
    vm[:, :, 1:] = m[:, :, 1:] * m[:, :, :-1]  # frames with a real velocity
    a = torch.zeros_like(x)
    a[:, :, 2:] = (v[:, :, 2:] - v[:, :, 1:-1]) * vm[:, :, 2:] * vm[:, :, 1:-1]
    out = torch.cat([v, v.norm(dim=1, keepdim=True), a, a.norm(dim=1, keepdim=True)], dim=1)
    return out[0] if single else out


def _angle(a, b, c):
    u, w = a - b, c - b
    cos = (u * w).sum(-1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(w, axis=-1), 1e-8)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def affective_features(x: np.ndarray, length: int | None = None, up_axis: int = UP_AXIS) -> np.ndarray:
    """``(T, 16, 3)`` coordinates -> ``(T, 31)`` posture features (:data:`AFFECTIVE_NAMES`), raw
    (radians and coordinate units); frames at or after ``length`` are 0."""
    x = np.asarray(x, dtype=np.float64)
    up = x[:, J["root"]].copy()
    up[:, up_axis] += 1.0  # a point vertically above the root
    pts = {name: x[:, i] for name, i in J.items()}
    pts["up"] = up
    feats = [_angle(pts[a], pts[b], pts[c]) for a, b, c in _ANGLES]
    feats += [np.linalg.norm(pts[a] - pts[b], axis=-1) for a, b in _DISTANCES]
    feats += [0.5 * np.linalg.norm(np.cross(pts[a] - pts[b], pts[c] - pts[b]), axis=-1) for a, b, c in _AREAS]
    out = np.stack(feats, axis=-1).astype(np.float32)
    if length is not None:
        out[length:] = 0.0
    return out


def affective_stats(gaits: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std (31,) over the real frames of preprocessed ``(coords, length)`` gaits."""
    rows = [affective_features(x, n)[:n] for x, n in gaits if n > 0]
    if not rows:
        raise DatasetError("no gait frames to compute the affective-feature statistics from")
    allf = np.concatenate(rows, 0)
    return allf.mean(0).astype(np.float32), np.maximum(allf.std(0), 1e-6).astype(np.float32)


def random_move(x: np.ndarray, length: int, rng: np.random.Generator, *, angles=(-10., -5., 0., 5., 10.),
                scales=(0.9, 1.0, 1.1), shifts=(-0.2, -0.1, 0.0, 0.1, 0.2)) -> np.ndarray:
    """2s-AGCN's ``random_move`` on ``(T, J, 3)``: a rotation (degrees), scale and translation of the
    (x, y) channels, drawn twice and interpolated linearly from the first to the last real frame
    (``move_time=1``); z and padded frames are unchanged."""
    x = np.array(x, dtype=np.float32, copy=True)
    if length < 1:
        return x
    draw = lambda vals: rng.choice(np.asarray(vals, dtype=np.float64), 2)  # noqa: E731
    th, s, tx, ty = (np.linspace(*draw(v), length) for v in (angles, scales, shifts, shifts))
    th = np.deg2rad(th)
    cos, sin = np.cos(th) * s, np.sin(th) * s
    px, py = x[:length, :, 0].copy(), x[:length, :, 1].copy()
    x[:length, :, 0] = cos[:, None] * px - sin[:, None] * py + tx[:, None]
    x[:length, :, 1] = sin[:, None] * px + cos[:, None] * py + ty[:, None]
    return x


# ---------------------------------------------------------------------------------------------
# splits
def stratified_split(labels, test_fraction: float = 0.1, seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices (train, test): in every class a seeded shuffle, the first ``round(n * test_fraction)``
    (at least 1 when the class has 2 or more) to test."""
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"test fraction {test_fraction!r}: expected a fraction in (0, 1)")
    rng = random.Random(seed)
    train, test = [], []
    by_class: dict[Any, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    for _, idx in sorted(by_class.items(), key=lambda kv: str(kv[0])):
        idx = list(idx)
        rng.shuffle(idx)
        n = int(round(len(idx) * test_fraction))
        if len(idx) >= 2:
            n = min(max(n, 1), len(idx) - 1)
        test += idx[:n]
        train += idx[n:]
    return sorted(train), sorted(test)


def kfold_splits(labels, k: int = 5, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """Stratified k-fold: ``k`` (train, test) index pairs; every sample is in exactly one test fold
    (each class dealt round-robin over the folds after a seeded shuffle)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise DatasetError(f"folds {k!r}: expected an integer >= 2")
    rng = random.Random(seed)
    fold_of: dict[int, int] = {}
    by_class: dict[Any, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    offset = 0
    for _, idx in sorted(by_class.items(), key=lambda kv: str(kv[0])):
        idx = list(idx)
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            fold_of[i] = (j + offset) % k
        offset += len(idx)  # spreads the remainders of small classes over different folds
    n = len(fold_of)
    return [([i for i in range(n) if fold_of[i] != f], [i for i in range(n) if fold_of[i] == f]) for f in range(k)]


# ---------------------------------------------------------------------------------------------
# the dataset index (data.format: gait)
def load_gait_index(path, *, val_fraction: float = 0.0, split_seed: int = 0, classes=None, polarity=None,
                    test_fraction: float = 0.1, fold: int | None = None, folds: int = 5):
    """An Emotion-Gait features/labels pair -> a :class:`~affectkit.data.datasets.DatasetIndex` of one
    record per gait (``video_id`` = the key, ``path`` = the features file, ``extra["key"]``).

    Splits: a stratified ``test_fraction`` test split (default 9:1), or with ``fold`` the test fold
    ``fold`` of :func:`kfold_splits` (``folds`` folds); then ``val_fraction`` of train (per class) to val."""
    from .datasets import DatasetIndex, VideoRecord, _assign_splits, polarity_map
    from ..engine import gait as _gait_task  # noqa: F401  (registers task "gait": build_task runs before any model is built)

    features = Path(path)
    labels_file = find_labels_file(features)
    if features.is_dir():
        features = labels_file.with_name(labels_file.name.replace("lables", "features").replace("labels", "features"))
    classes = list(classes) if classes else list(GAIT_CLASSES)
    if sorted(classes) != sorted(EGAIT_NATIVE):
        raise DatasetError(f"{features}: data.classes {classes} must name the four Emotion-Gait emotions "
                           f"{sorted(EGAIT_NATIVE)} (in any order)")
    labels = read_gait_labels(labels_file)
    feats = read_gait_features(features)
    missing = [k for k in feats if k not in labels]
    if missing:
        raise DatasetError(f"{labels_file}: no label for {len(missing)} gait(s) of {features.name} "
                           f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
    keys = sorted(feats)
    y = [native_to_classes(labels[k], classes) for k in keys]
    if fold is not None:
        if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < folds:
            raise DatasetError(f"data.fold {fold!r}: expected 0..{folds - 1}")
        _, test_idx = kfold_splits(y, folds, split_seed)[fold]
    else:
        _, test_idx = stratified_split(y, test_fraction, split_seed)
    test_set = set(test_idx)
    records = [VideoRecord(video_id=k, label_name=classes[y[i]], subset="test" if i in test_set else "train",
                           label=y[i], path=str(features),
                           extra={"key": k, "native_label": labels[k], "frames": int(feats[k].shape[0]),
                                  "labels_file": str(labels_file)})
               for i, k in enumerate(keys)]
    _assign_splits(records, {"train": "train", "val": "val", "test": "test"}, val_fraction, split_seed)
    return DatasetIndex(source=str(features), classes=classes, records=records,
                        polarity=polarity_map(polarity, classes), kind="clips")


class GaitStore:
    """The preprocessed gaits of the features files named by records, read once per file."""

    def __init__(self, frames: int = FRAMES):
        self.frames = frames
        self._files: dict[str, dict[str, tuple[np.ndarray, int]]] = {}

    def get(self, path: str, key: str) -> tuple[np.ndarray, int]:
        if path not in self._files:
            self._files[path] = {k: preprocess_gait(v, self.frames) for k, v in read_gait_features(path).items()}
        gaits = self._files[path]
        if key not in gaits:
            raise MediaError(path, f"has no gait {key!r}")
        return gaits[key]
