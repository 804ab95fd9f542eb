import numpy as np
import pytest

from affectkit.errors import AffectkitError
from affectkit.metrics import (LabelError, classification_metrics, confusion_matrix, negative_log_likelihood,
                               plot_confusion_matrix, predictions_from_probs)

sk = pytest.importorskip("sklearn.metrics")


def _names(k):
    return [f"c{i}" for i in range(k)]


def _check_against_sklearn(y, p, k):
    """Every averaged and per-class figure equals scikit-learn's with labels=all, zero_division=0."""
    labels = list(range(k))
    m = classification_metrics(y, p, _names(k))
    kw = dict(labels=labels, zero_division=0)
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, p))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y, p, average="macro", **kw))
    assert m["weighted_f1"] == pytest.approx(sk.f1_score(y, p, average="weighted", **kw))
    assert m["macro_precision"] == pytest.approx(sk.precision_score(y, p, average="macro", **kw))
    assert m["macro_recall"] == pytest.approx(sk.recall_score(y, p, average="macro", **kw))
    for key, fn in (("per_class_f1", sk.f1_score), ("per_class_precision", sk.precision_score),
                    ("per_class_recall", sk.recall_score)):
        np.testing.assert_allclose([m[key][c] for c in _names(k)], fn(y, p, average=None, **kw))
    np.testing.assert_array_equal(m["confusion_matrix"], sk.confusion_matrix(y, p, labels=labels))
    return m


def test_metrics_agree_with_sklearn_random():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 5, 200))
    p[p == 4] = 3  # class 4 never predicted
    classes = list("abcde")
    m = classification_metrics(y, p, classes, {c: ("positive" if c in "ab" else "negative") for c in classes})
    _check_against_sklearn(y, p, 5)
    assert m["per_class_accuracy"]["b"] == pytest.approx(sk.recall_score(y, p, average=None, zero_division=0)[1])
    pol = np.isin(y, [0, 1]).astype(int), np.isin(p, [0, 1]).astype(int)
    assert m["sentiment_accuracy"] == pytest.approx(sk.accuracy_score(*pol))
    assert m["sentiment_macro_f1"] == pytest.approx(sk.f1_score(*pol, labels=[0, 1], average="macro", zero_division=0))


def test_absent_class_counts_in_macro_average():
    # class 3 of K=4 is in neither truth nor predictions: sklearn averages over 4 classes, not 3
    y, p = [0, 1, 2, 0, 1, 2], [0, 1, 2, 0, 2, 2]
    m = _check_against_sklearn(y, p, 4)
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 0.8 + 0) / 4)
    assert m["per_class_f1"]["c3"] == 0.0 and m["per_class_precision"]["c3"] == 0.0
    assert m["macro_precision"] == pytest.approx((1 + 1 + 2 / 3 + 0) / 4)
    assert m["macro_recall"] == pytest.approx((1 + 0.5 + 1 + 0) / 4)


def test_several_absent_classes_k8():
    y, p = [0, 0, 1, 1, 5, 5], [0, 1, 1, 1, 5, 0]  # classes 2, 3, 4, 6, 7 absent
    _check_against_sklearn(y, p, 8)


def test_class_only_predicted_and_class_only_true():
    # class 2 only predicted (precision 0, recall undefined -> 0); class 3 only true (recall 0)
    y, p = [0, 0, 1, 1, 3, 3], [0, 2, 1, 1, 0, 1]
    m = _check_against_sklearn(y, p, 4)
    assert m["per_class_f1"]["c2"] == 0.0 and m["per_class_recall"]["c2"] == 0.0
    assert m["per_class_recall"]["c3"] == 0.0 and m["per_class_accuracy"]["c3"] == 0.0
    assert m["per_class_accuracy"]["c2"] is None  # no true sample of class 2


def test_all_correct_with_absent_class():
    y = [0, 1, 2, 1, 0]
    m = _check_against_sklearn(y, y, 4)
    assert m["accuracy"] == 1.0 and m["weighted_f1"] == 1.0
    assert m["macro_f1"] == pytest.approx(0.75)  # the absent class counts as 0


def test_all_wrong():
    m = _check_against_sklearn([0, 1, 2, 0], [1, 2, 0, 2], 3)
    assert m["accuracy"] == 0.0 and m["macro_f1"] == 0.0 and m["weighted_f1"] == 0.0


def test_single_sample():
    m = _check_against_sklearn([1], [1], 3)
    assert m["macro_f1"] == pytest.approx(1 / 3) and m["weighted_f1"] == 1.0
    m = _check_against_sklearn([1], [2], 3)
    assert m["macro_f1"] == 0.0


def test_binary():
    _check_against_sklearn([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], 2)
    m = _check_against_sklearn([0, 0, 0], [0, 0, 0], 2)  # class 1 absent
    assert m["macro_f1"] == pytest.approx(0.5)


def test_weighted_f1_uses_true_support():
    y, p = [0, 0, 0, 0, 1, 2], [0, 0, 0, 1, 1, 1]
    m = _check_against_sklearn(y, p, 4)
    # f1: class0 6/7, class1 0.5, class2 0; supports 4, 1, 1, 0
    assert m["weighted_f1"] == pytest.approx((4 * 6 / 7 + 0.5) / 6)


def test_sentiment_macro_f1_over_both_polarities():
    classes = ["happy", "calm", "sad", "angry"]
    polarity = {"happy": "positive", "calm": "positive", "sad": "negative", "angry": "negative"}
    # every true sample is negative; one prediction is positive
    y, p = [2, 3, 2, 3], [2, 3, 0, 3]
    m = classification_metrics(y, p, classes, polarity)
    st, sp = [0, 0, 0, 0], [0, 0, 1, 0]
    assert m["sentiment_macro_f1"] == pytest.approx(sk.f1_score(st, sp, labels=[0, 1], average="macro", zero_division=0))
    assert m["sentiment_accuracy"] == pytest.approx(0.75)
    assert m["sentiment_confusion_matrix"] == [[3, 1], [0, 0]]
    # only one polarity anywhere: the other still counts (as 0)
    m = classification_metrics([2, 3], [3, 2], classes, polarity)
    assert m["sentiment_macro_f1"] == pytest.approx(0.5)


@pytest.mark.parametrize("y, p, bad", [([0, 1, 3], [0, 1, 2], "3"), ([0, 1, 2], [0, -1, 2], "-1"),
                                       ([0, 1, 2], [0, 1, 7], "7"), ([-2, 1, 2], [0, 1, 2], "-2")])
def test_out_of_range_labels_raise(y, p, bad):
    with pytest.raises(LabelError) as err:
        classification_metrics(y, p, _names(3))
    assert isinstance(err.value, ValueError) and isinstance(err.value, AffectkitError)
    assert bad in str(err.value) and "K=3" in str(err.value)
    with pytest.raises(LabelError):
        confusion_matrix(y, p, 3)


def test_length_mismatch_raises():
    with pytest.raises(LabelError, match="2 labels"):
        classification_metrics([0, 1], [0, 1, 1], _names(2))


def test_predictions_from_probs_argmax_and_ties():
    probs = [[0.1, 0.7, 0.2], [0.4, 0.2, 0.4], [1 / 3, 1 / 3, 1 / 3], [0.2, 0.3, 0.3000001]]
    assert predictions_from_probs(probs) == [1, 0, 0, 2]  # tie -> lowest index; unrounded values decide
    assert predictions_from_probs(np.array(probs)) == [1, 0, 0, 2]
    assert all(type(i) is int for i in predictions_from_probs(probs))
    assert predictions_from_probs([]) == []


def test_confusion_png(tmp_path):
    out = tmp_path / "cm.png"
    plot_confusion_matrix([[3, 1], [0, 2]], ["x", "y"], str(out))
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"


def test_negative_log_likelihood_matches_sklearn_log_loss_and_survives_a_zero_probability():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4), size=50)
    y = rng.integers(0, 4, 50)
    assert negative_log_likelihood(y, probs) == pytest.approx(sk.log_loss(y, probs, labels=[0, 1, 2, 3]))
    assert negative_log_likelihood([1], [[1.0, 0.0]]) == pytest.approx(-np.log(1e-12))  # finite, not inf
    assert negative_log_likelihood([], []) == 0.0
    with pytest.raises(LabelError, match="0..1"):
        negative_log_likelihood([2], [[0.5, 0.5]])
