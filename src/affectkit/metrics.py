"""Classification metrics: accuracy, weighted and macro F1, per-class precision, recall, F1 and accuracy,
sentiment metrics through a polarity map, and a confusion-matrix image. Plain numpy; definitions as
scikit-learn's ``f1_score(..., labels=list(range(K)), zero_division=0)``: every class of the label set
counts, including one absent from both truth and predictions (its precision, recall and F1 are 0);
weighted averages weight by true-class support."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import AffectkitError


class LabelError(AffectkitError, ValueError):
    """A true or predicted label is not a class index ``0..K-1`` (or truth and predictions disagree in length)."""


def _labels(values, name: str, num_classes: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise LabelError(f"{name} must be a 1-D sequence of class indices, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iub":
        if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise LabelError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= num_classes)
    if bad.any():
        vals = sorted(set(arr[bad].tolist()))
        shown = ", ".join(map(str, vals[:10])) + (", ..." if len(vals) > 10 else "")
        raise LabelError(f"{name} has labels outside 0..{num_classes - 1} (K={num_classes}): {shown}")
    return arr


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """``cm[i, j]`` = number of samples of true class ``i`` predicted as ``j``; raises :class:`LabelError`
    on a label outside ``0..num_classes-1`` or on lengths that differ."""
    t = _labels(y_true, "y_true", num_classes)
    p = _labels(y_pred, "y_pred", num_classes)
    if len(t) != len(p):
        raise LabelError(f"y_true has {len(t)} labels but y_pred has {len(p)}")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def predictions_from_probs(probs) -> list[int]:
    """Predicted class of each row of ``probs`` (shape ``(N, K)``): the argmax of the values as given
    (pass them unrounded); on a tie the lowest index wins, as ``numpy.argmax``."""
    arr = np.asarray(probs, dtype=float)
    if arr.size == 0 and arr.ndim <= 2:
        return []
    if arr.ndim != 2:
        raise ValueError(f"probs must have shape (N, K), got {arr.shape}")
    return [int(i) for i in np.argmax(arr, axis=1)]


def negative_log_likelihood(y_true, probs, eps: float = 1e-12) -> float:
    """Mean ``-log p(true class)`` over the rows of ``probs`` ``(N, K)`` (probabilities clamped to ``eps``
    so that a confident miss costs ``-log eps``, not infinity); 0.0 for no rows."""
    arr = np.asarray(probs, dtype=float)
    if arr.size == 0:
        return 0.0
    y = np.asarray(y_true, dtype=np.int64)
    if arr.ndim != 2 or y.shape != (arr.shape[0],):
        raise ValueError(f"probs of shape {arr.shape} and {y.shape[0] if y.ndim else 0} labels: expected (N, K) and N")
    if y.min() < 0 or y.max() >= arr.shape[1]:
        raise LabelError(f"labels must be class indices in 0..{arr.shape[1] - 1}, got {y.min()}..{y.max()}")
    return float(-np.log(np.clip(arr[np.arange(len(y)), y], eps, None)).mean())


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = num.astype(float)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _prf(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall, F1 (0 where undefined) and true support."""
    tp = np.diag(cm)
    pred = cm.sum(axis=0)
    true = cm.sum(axis=1)
    return _div(tp, pred), _div(tp, true), _div(2 * tp, pred + true), true


def _weighted(values: np.ndarray, support: np.ndarray) -> float:
    total = support.sum()
    return float((values * support).sum() / total) if total > 0 else 0.0


def classification_metrics(y_true, y_pred, classes: Sequence[str], polarity: dict[str, str] | None = None) -> dict:
    """All metrics of a set of predictions, as a JSON-ready dict. Labels are class indices into
    ``classes``; one outside ``0..len(classes)-1`` raises :class:`LabelError`."""
    k = len(classes)
    cm = confusion_matrix(y_true, y_pred, k)
    y_true = _labels(y_true, "y_true", k)
    y_pred = _labels(y_pred, "y_pred", k)
    n = len(y_true)
    precision, recall, f1, support = _prf(cm)
    per_class_acc = {c: (float(cm[i, i] / support[i]) if support[i] else None) for i, c in enumerate(classes)}
    out = {
        "num_samples": int(n),
        "accuracy": float((y_true == y_pred).mean()) if n else 0.0,
        "macro_f1": float(f1.mean()) if k else 0.0,
        "weighted_f1": _weighted(f1, support),
        "macro_precision": float(precision.mean()) if k else 0.0,
        "macro_recall": float(recall.mean()) if k else 0.0,
        "per_class_accuracy": per_class_acc,
        "per_class_precision": {c: float(precision[i]) for i, c in enumerate(classes)},
        "per_class_recall": {c: float(recall[i]) for i, c in enumerate(classes)},
        "per_class_f1": {c: float(f1[i]) for i, c in enumerate(classes)},
        "confusion_matrix": cm.tolist(),
        "classes": list(classes),
    }
    if polarity:
        pol = np.array([1 if polarity[c] == "positive" else 0 for c in classes], dtype=np.int64)
        st, sp = pol[y_true], pol[y_pred]
        scm = confusion_matrix(st, sp, 2)
        _, _, sf1, _ = _prf(scm)
        out["sentiment_accuracy"] = float((st == sp).mean()) if n else 0.0
        out["sentiment_macro_f1"] = float(sf1.mean())  # over both polarities, as labels=[0, 1]
        out["sentiment_confusion_matrix"] = scm.tolist()  # rows/cols: negative, positive
    return out


def plot_confusion_matrix(cm, classes: Sequence[str], path: str, title: str = "Confusion matrix") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    size = max(4.0, 0.6 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="row-normalised")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
