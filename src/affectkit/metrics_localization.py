"""Temporal localisation metrics: ActivityNet-style detection AP, as the TSL-300 benchmark computes it.

Written from the definitions (numpy only), not copied from any implementation:

- **tIoU** of two segments ``[s, e]`` = overlap / union in seconds (no "+1").
- **AP per class and tIoU threshold θ**: the class's predictions over all videos, sorted by score
  (highest first; ties keep file order). Each prediction, in turn, is matched to the not-yet-matched
  ground-truth segment of the same class and video with the highest tIoU, provided that tIoU ≥ θ
  (greedy; a matched GT segment is locked for that θ); otherwise it is a false positive. A prediction for a
  video that has no ground truth in the subset is a false positive. Cumulative precision and recall over
  the ranked list give the all-point interpolated AP (VOC 2011 / ActivityNet): precision made monotone
  from the right, summed over the recall steps.
- **mAP@θ** = mean of the per-class APs; **average mAP** = mean of mAP@θ over the thresholds
  (default 0.10, 0.15, 0.20, 0.25, 0.30, the TSL-300 protocol).
- **per-class AP** = a class's AP averaged over the thresholds, under the class's *own* name. The original
  TSL-300 code prints these under swapped names ("average_nAP" is the AP of ``p``, the first class of
  ``gt.json``); ``legacy_swapped_class_ap`` gives the figures as that code labels them, for comparison.
- **TSL-300 recall / precision / F2** (non-standard; defined as the official TSL-300 evaluator does): for one
  class and θ, the *mean over the ranked list* of the cumulative recall (resp. precision) curve; then the mean
  over classes; ``F2@θ = 5·P·R / (4·P + R)`` from those two means; the ``*_avg`` values are means over θ.
- **standard recall / precision** (beside them): the final recall (matched GT / all GT) and precision
  (true positives / predictions) of all of a class's predictions, averaged over classes.

Defined edge cases (the original crashes on some of them): a class without predictions has AP 0, TSL-300
recall/precision 0 and standard recall 0; a GT video without predictions only adds missed segments; a
prediction whose video is not in the subset's ground truth is a false positive (``unknown_videos="error"``
makes it an error instead) and is counted in ``num_predictions_unknown_video``. A prediction label that is
not a ground-truth class, a malformed file or segment, and an empty subset raise
:class:`~affectkit.errors.DatasetError` naming the file and the problem.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import DatasetError

#: The TSL-300 thresholds: ``numpy.linspace(0.1, 0.3, 5)`` (exactly the values the original evaluator uses).
DEFAULT_TIOU_THRESHOLDS: tuple[float, ...] = tuple(float(t) for t in np.linspace(0.1, 0.3, 5))


@dataclass
class GroundTruth:
    """The ground-truth segments of one subset: ``videos[vid] = [(start, end, label), ...]``; ``classes``
    in order of first appearance (for TSL-300 ``gt.json``: ``p`` then ``n``)."""

    videos: dict[str, list[tuple[float, float, str]]]
    classes: list[str]
    source: str = "<ground truth>"


@dataclass
class Predictions:
    """``videos[vid] = [(start, end, label, score), ...]`` in file order."""

    videos: dict[str, list[tuple[float, float, str, float]]] = field(default_factory=dict)
    source: str = "<predictions>"


# ----------------------------------------------------------------------------------------- reading
def _read_json(path_or_data, what: str) -> tuple[Any, str]:
    if isinstance(path_or_data, (str, os.PathLike)):
        path = Path(path_or_data)
        if not path.is_file():
            raise DatasetError(f"{path}: {what} file not found")
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f), str(path)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DatasetError(f"{path}: not a valid JSON {what} file ({err})") from err
    return path_or_data, f"<{what}>"


def _segment(value, source: str, where: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise DatasetError(f"{source}: {where}: 'segment' must be [start, end], got {value!r}")
    try:
        start, end = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        raise DatasetError(f"{source}: {where}: 'segment' must hold two numbers (seconds), got {value!r}") from None
    if not (math.isfinite(start) and math.isfinite(end)):
        raise DatasetError(f"{source}: {where}: 'segment' must be finite, got {value!r}")
    if end < start:
        raise DatasetError(f"{source}: {where}: 'segment' ends before it starts: {value!r}")
    return start, end


def load_ground_truth(path_or_data, subset: str | None = "test") -> GroundTruth:
    """ActivityNet-style ground truth (``{"database": {vid: {"subset", "annotations": [{"segment",
    "label"}]}}}``; segment times may be strings), keeping the videos of ``subset`` (``None``: all)."""
    data, source = _read_json(path_or_data, "ground-truth")
    if isinstance(data, GroundTruth):
        return data
    if not isinstance(data, Mapping) or not isinstance(data.get("database"), Mapping):
        raise DatasetError(f"{source}: expected an object with a 'database' mapping of video ids (ActivityNet format)")
    videos: dict[str, list[tuple[float, float, str]]] = {}
    classes: list[str] = []
    subsets = set()
    for vid, entry in data["database"].items():
        if not isinstance(entry, Mapping):
            raise DatasetError(f"{source}: database[{vid!r}] must be an object with 'subset' and 'annotations'")
        subsets.add(str(entry.get("subset")))
        if subset is not None and entry.get("subset") != subset:
            continue
        anns = entry.get("annotations", [])
        if not isinstance(anns, list):
            raise DatasetError(f"{source}: database[{vid!r}]['annotations'] must be a list")
        segs = []
        for j, ann in enumerate(anns):
            where = f"database[{vid!r}]['annotations'][{j}]"
            if not isinstance(ann, Mapping) or "segment" not in ann or "label" not in ann:
                raise DatasetError(f"{source}: {where}: needs 'segment' and 'label'")
            start, end = _segment(ann["segment"], source, where)
            label = str(ann["label"])
            if label not in classes:
                classes.append(label)
            segs.append((start, end, label))
        videos[str(vid)] = segs
    if not videos:
        raise DatasetError(f"{source}: no video of subset {subset!r} (subsets present: {', '.join(sorted(subsets)) or 'none'})")
    if not classes:
        raise DatasetError(f"{source}: the {len(videos)} videos of subset {subset!r} have no annotated segment")
    return GroundTruth(videos, classes, source)


def load_predictions(path_or_data) -> Predictions:
    """ActivityNet result format: ``{"results": {vid: [{"label", "score", "segment": [s, e]}, ...]}}``."""
    data, source = _read_json(path_or_data, "prediction")
    if isinstance(data, Predictions):
        return data
    if not isinstance(data, Mapping) or not isinstance(data.get("results"), Mapping):
        raise DatasetError(f"{source}: expected an object with a 'results' mapping of video ids (ActivityNet result format)")
    out: dict[str, list[tuple[float, float, str, float]]] = {}
    for vid, items in data["results"].items():
        if not isinstance(items, list):
            raise DatasetError(f"{source}: results[{vid!r}] must be a list of predictions")
        rows = []
        for j, item in enumerate(items):
            where = f"results[{vid!r}][{j}]"
            if not isinstance(item, Mapping) or not {"segment", "label", "score"} <= set(item):
                raise DatasetError(f"{source}: {where}: needs 'segment', 'label' and 'score'")
            start, end = _segment(item["segment"], source, where)
            try:
                score = float(item["score"])
            except (TypeError, ValueError):
                raise DatasetError(f"{source}: {where}: 'score' must be a number, got {item['score']!r}") from None
            if not math.isfinite(score):
                raise DatasetError(f"{source}: {where}: 'score' must be finite, got {item['score']!r}")
            rows.append((start, end, str(item["label"]), score))
        out[str(vid)] = rows
    return Predictions(out, source)


# ------------------------------------------------------------------------------------------- maths
def segment_iou(segment: Sequence[float], segments: np.ndarray) -> np.ndarray:
    """tIoU of one ``[start, end]`` with each row of ``segments`` (N, 2); 0 where the union is 0."""
    segments = np.asarray(segments, dtype=float).reshape(-1, 2)
    inter = (np.minimum(segment[1], segments[:, 1]) - np.maximum(segment[0], segments[:, 0])).clip(0)
    union = (segments[:, 1] - segments[:, 0]) + (segment[1] - segment[0]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def interpolated_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """All-point interpolated AP of a precision/recall curve (ranked-list order)."""
    prec = np.concatenate([[0.0], np.asarray(precision, float), [0.0]])
    rec = np.concatenate([[0.0], np.asarray(recall, float), [1.0]])
    prec = np.maximum.accumulate(prec[::-1])[::-1]  # monotone from the right
    steps = np.flatnonzero(rec[1:] != rec[:-1]) + 1
    return float(np.sum((rec[steps] - rec[steps - 1]) * prec[steps]))


def _match_class(gt: dict[str, np.ndarray], preds: list[tuple[str, float, float, float]],
                 thresholds: np.ndarray) -> tuple[np.ndarray, int]:
    """True positives (n_thr, n_pred) of one class's predictions (already ranked) and the GT count."""
    npos = sum(len(v) for v in gt.values())
    tp = np.zeros((len(thresholds), len(preds)), dtype=bool)
    locked = {vid: np.zeros((len(thresholds), len(v)), dtype=bool) for vid, v in gt.items()}
    for i, (vid, start, end, _) in enumerate(preds):
        segs = gt.get(vid)
        if segs is None or len(segs) == 0:
            continue  # a false positive at every threshold
        iou = segment_iou((start, end), segs)
        order = np.argsort(-iou, kind="stable")  # highest tIoU first
        for k, thr in enumerate(thresholds):
            for j in order:
                if iou[j] < thr:
                    break
                if not locked[vid][k, j]:
                    locked[vid][k, j] = True
                    tp[k, i] = True
                    break
    return tp, npos


def evaluate_localization(ground_truth, predictions, subset: str | None = "test",
                          thresholds: Sequence[float] | None = None,
                          unknown_videos: str = "false_positive") -> dict[str, Any]:
    """Evaluate ``predictions`` (path, loaded JSON or :class:`Predictions`) against ``ground_truth`` (path,
    loaded JSON or :class:`GroundTruth`) on ``subset``. Returns a JSON-ready dict (see the module doc):
    ``average_mAP``, ``mAP`` (per threshold), ``ap`` (per class, per threshold), ``per_class_ap``,
    ``tsl300_recall`` / ``tsl300_precision`` / ``tsl300_f2`` (per threshold, and ``*_avg``),
    ``recall`` / ``precision`` (standard, per threshold) and counts."""
    if unknown_videos not in ("false_positive", "error"):
        raise ValueError(f"unknown_videos must be 'false_positive' or 'error', got {unknown_videos!r}")
    gt = load_ground_truth(ground_truth, subset)
    pred = load_predictions(predictions)
    thr = np.asarray(DEFAULT_TIOU_THRESHOLDS if thresholds is None else list(thresholds), dtype=float)
    if thr.ndim != 1 or thr.size == 0 or not np.all((thr > 0) & (thr <= 1)):
        raise ValueError(f"tIoU thresholds must be a non-empty list of values in (0, 1], got {list(thr)}")

    unknown = [v for v in pred.videos if v not in gt.videos and pred.videos[v]]
    if unknown and unknown_videos == "error":
        raise DatasetError(f"{pred.source}: {len(unknown)} video(s) not in the {subset!r} ground truth of "
                           f"{gt.source}, e.g. {unknown[0]!r}")
    by_class: dict[str, list[tuple[str, float, float, float]]] = {c: [] for c in gt.classes}
    for vid, rows in pred.videos.items():
        for start, end, label, score in rows:
            if label not in by_class:
                raise DatasetError(f"{pred.source}: results[{vid!r}] has label {label!r}, not a class of the "
                                   f"ground truth ({', '.join(gt.classes)})")
            by_class[label].append((vid, start, end, score))

    n_thr, n_cls = len(thr), len(gt.classes)
    ap = np.zeros((n_cls, n_thr))
    tsl_rec = np.zeros((n_cls, n_thr))
    tsl_prec = np.zeros((n_cls, n_thr))
    std_rec = np.zeros((n_cls, n_thr))
    std_prec = np.zeros((n_cls, n_thr))
    counts = {}
    for c, name in enumerate(gt.classes):
        gt_c = {vid: np.array([(s, e) for s, e, lab in segs if lab == name], dtype=float).reshape(-1, 2)
                for vid, segs in gt.videos.items()}
        preds = by_class[name]
        scores = np.array([p[3] for p in preds], dtype=float)
        ranked = [preds[i] for i in np.argsort(-scores, kind="stable")]
        tp, npos = _match_class(gt_c, ranked, thr)
        counts[name] = {"ground_truth": npos, "predictions": len(ranked)}
        if not ranked:
            continue  # AP, recall and precision 0
        tp_cum = np.cumsum(tp, axis=1, dtype=float)
        fp_cum = np.cumsum(~tp, axis=1, dtype=float)
        rec = tp_cum / npos
        prec = tp_cum / (tp_cum + fp_cum)
        for k in range(n_thr):
            ap[c, k] = interpolated_average_precision(prec[k], rec[k])
        tsl_rec[c] = rec.mean(axis=1)
        tsl_prec[c] = prec.mean(axis=1)
        std_rec[c] = rec[:, -1]
        std_prec[c] = prec[:, -1]

    mean_rec, mean_prec = tsl_rec.mean(axis=0), tsl_prec.mean(axis=0)
    den = 4 * mean_prec + mean_rec
    f2 = np.divide(5 * mean_prec * mean_rec, den, out=np.zeros_like(den), where=den > 0)
    keys = [_thr_key(t) for t in thr]
    per_thr = lambda arr: {k: float(v) for k, v in zip(keys, arr)}  # noqa: E731
    class_ap = ap.mean(axis=1)
    result = {
        "subset": subset,
        "thresholds": [float(t) for t in thr],
        "classes": list(gt.classes),
        "average_mAP": float(ap.mean(axis=0).mean()),
        "mAP": per_thr(ap.mean(axis=0)),
        "per_class_ap": {name: float(class_ap[c]) for c, name in enumerate(gt.classes)},
        "ap": {name: per_thr(ap[c]) for c, name in enumerate(gt.classes)},
        "tsl300_recall": per_thr(mean_rec),
        "tsl300_precision": per_thr(mean_prec),
        "tsl300_f2": per_thr(f2),
        "tsl300_recall_avg": float(mean_rec.mean()),
        "tsl300_f2_avg": float(f2.mean()),
        "recall": per_thr(std_rec.mean(axis=0)),
        "precision": per_thr(std_prec.mean(axis=0)),
        "counts": counts,
        "num_videos": len(gt.videos),
        "num_videos_without_predictions": sum(1 for v in gt.videos if not pred.videos.get(v)),
        "num_predictions_unknown_video": sum(len(pred.videos[v]) for v in unknown),
    }
    if n_cls >= 2:
        # What the original TSL-300 code prints: the first GT class's AP as "average_nAP", the second's as "average_pAP".
        result["legacy_swapped_class_ap"] = {"average_nAP": float(class_ap[0]), "average_pAP": float(class_ap[1])}
    return result


def _thr_key(t: float) -> str:
    return f"{t:.2f}".rstrip("0").rstrip(".") if round(t, 2) == round(t, 10) else repr(float(t))


def parse_thresholds(text: str) -> list[float]:
    """``"0.1,0.15,0.2"`` -> ``[0.1, 0.15, 0.2]`` (a clear ``ValueError`` otherwise)."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--thresholds must be comma-separated numbers, got {text!r}") from None
    if not values or any(not (0 < v <= 1) for v in values):
        raise ValueError(f"--thresholds must be numbers in (0, 1], got {text!r}")
    return values


def format_report(result: Mapping[str, Any]) -> str:
    """A plain-text table of an :func:`evaluate_localization` result."""
    keys = list(result["mAP"])
    lines = [f"subset {result['subset']}: {result['num_videos']} videos, classes {', '.join(result['classes'])}",
             "tIoU            " + " ".join(f"{k:>7s}" for k in keys) + "     avg"]

    def row(name, values, avg):
        lines.append(f"{name:15s} " + " ".join(f"{values[k]:7.4f}" for k in keys) + f" {avg:7.4f}")

    row("mAP", result["mAP"], result["average_mAP"])
    for c in result["classes"]:
        row(f"AP {c}", result["ap"][c], result["per_class_ap"][c])
    row("TSL-300 recall", result["tsl300_recall"], result["tsl300_recall_avg"])
    row("TSL-300 F2", result["tsl300_f2"], result["tsl300_f2_avg"])
    row("recall", result["recall"], float(np.mean(list(result["recall"].values()))))
    lines.append("(TSL-300 recall/F2: means over the ranked list, as the official TSL-300 evaluator; "
                 "recall: final recall of all predictions)")
    if result["num_predictions_unknown_video"]:
        lines.append(f"{result['num_predictions_unknown_video']} predictions for videos outside the ground truth "
                     "counted as false positives")
    return "\n".join(lines)
