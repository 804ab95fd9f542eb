import numpy as np
import pytest

from affectkit.metrics import classification_metrics, plot_confusion_matrix


def test_metrics_agree_with_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 5, 200))
    p[p == 4] = 3  # class 4 never predicted
    classes = list("abcde")
    m = classification_metrics(y, p, classes, {c: ("positive" if c in "ab" else "negative") for c in classes})
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, p))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y, p, average="macro", zero_division=0))
    assert m["weighted_f1"] == pytest.approx(sk.f1_score(y, p, average="weighted", zero_division=0))
    assert m["per_class_accuracy"]["b"] == pytest.approx(sk.recall_score(y, p, average=None, zero_division=0)[1])
    np.testing.assert_array_equal(m["confusion_matrix"], sk.confusion_matrix(y, p, labels=range(5)))
    pol = np.isin(y, [0, 1]).astype(int), np.isin(p, [0, 1]).astype(int)
    assert m["sentiment_accuracy"] == pytest.approx(sk.accuracy_score(*pol))
    assert m["sentiment_macro_f1"] == pytest.approx(sk.f1_score(*pol, average="macro"))


def test_confusion_png(tmp_path):
    out = tmp_path / "cm.png"
    plot_confusion_matrix([[3, 1], [0, 2]], ["x", "y"], str(out))
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
