"""Classification metrics: accuracy, weighted and macro F1, per-class accuracy, sentiment metrics
through a polarity map, and a confusion-matrix image. Plain numpy; definitions as scikit-learn's
(F1 of a class with no true and no predicted sample counts as 0, weights are true-class supports)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def _f1_per_class(cm: np.ndarray) -> np.ndarray:
    tp = np.diag(cm).astype(float)
    pred = cm.sum(axis=0).astype(float)
    true = cm.sum(axis=1).astype(float)
    denom = pred + true
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def classification_metrics(y_true, y_pred, classes: Sequence[str], polarity: dict[str, str] | None = None) -> dict:
    """All metrics of a set of predictions, as a JSON-ready dict."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    k = len(classes)
    n = len(y_true)
    cm = confusion_matrix(y_true, y_pred, k)
    f1 = _f1_per_class(cm)
    support = cm.sum(axis=1)
    present = support > 0
    per_class_acc = {c: (float(cm[i, i] / support[i]) if support[i] else None) for i, c in enumerate(classes)}
    out = {
        "num_samples": int(n),
        "accuracy": float((y_true == y_pred).mean()) if n else 0.0,
        "macro_f1": float(f1[present | (cm.sum(axis=0) > 0)].mean()) if n else 0.0,
        "weighted_f1": float((f1 * support).sum() / support.sum()) if n else 0.0,
        "per_class_accuracy": per_class_acc,
        "per_class_f1": {c: float(f1[i]) for i, c in enumerate(classes)},
        "confusion_matrix": cm.tolist(),
        "classes": list(classes),
    }
    if polarity:
        pol = np.array([1 if polarity[c] == "positive" else 0 for c in classes])
        st, sp = pol[y_true], pol[y_pred]
        scm = confusion_matrix(st, sp, 2)
        sf1 = _f1_per_class(scm)
        out["sentiment_accuracy"] = float((st == sp).mean()) if n else 0.0
        out["sentiment_macro_f1"] = float(sf1[(scm.sum(0) + scm.sum(1)) > 0].mean()) if n else 0.0
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
