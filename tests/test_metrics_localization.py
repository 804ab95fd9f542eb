"""ActivityNet-style localisation metrics (affectkit.metrics_localization): the published TSL-300 figures
of a real prediction file, and hand-computed edge cases."""
import json

import numpy as np
import pytest

from affectkit.cli import main
from affectkit.errors import DatasetError
from affectkit.metrics_localization import (DEFAULT_TIOU_THRESHOLDS, evaluate_localization,
                                            interpolated_average_precision, parse_thresholds, segment_iou)


def gt_of(videos, subset="test"):
    return {"database": {v: {"subset": subset, "annotations": [{"segment": [str(s), str(e)], "label": lab}
                                                              for s, e, lab in anns]}
                         for v, anns in videos.items()}}


def pred_of(videos):
    return {"results": {v: [{"segment": [s, e], "label": lab, "score": sc} for s, e, lab, sc in rows]
                        for v, rows in videos.items()}}


# ------------------------------------------------------------------------------ the published figures
def test_reference_predictions_reproduce_published_tsl300_figures(shared_data):
    root = shared_data / "tsl300"
    r = evaluate_localization(root / "VideoSenti" / "gt.json", root / "reference_predictions.json", subset="test")
    assert r["thresholds"] == pytest.approx([0.1, 0.15, 0.2, 0.25, 0.3])
    assert round(r["average_mAP"], 4) == 0.1949
    assert [round(v, 4) for v in r["mAP"].values()] == [0.2709, 0.2323, 0.2012, 0.1538, 0.1163]
    assert [round(v, 4) for v in r["tsl300_recall"].values()] == [0.7980, 0.7604, 0.7194, 0.6494, 0.5787]
    assert [round(v, 4) for v in r["tsl300_f2"].values()] == [0.4183, 0.3917, 0.3674, 0.3261, 0.2849]
    # Published as "0.1803 (n)" and "0.2095 (p)": the original code's swapped names. Under the true class
    # names (AP of the segments labelled p / n) they are the other way round.
    assert r["classes"] == ["p", "n"]
    assert round(r["per_class_ap"]["p"], 4) == 0.1803
    assert round(r["per_class_ap"]["n"], 4) == 0.2095
    assert round(r["legacy_swapped_class_ap"]["average_nAP"], 4) == 0.1803
    assert round(r["legacy_swapped_class_ap"]["average_pAP"], 4) == 0.2095
    assert r["counts"] == {"p": {"ground_truth": 352, "predictions": 4576}, "n": {"ground_truth": 232, "predictions": 4794}}
    assert r["num_videos"] == 100 and r["num_predictions_unknown_video"] == 0
    # standard (final) recall is at least the ranked-list mean the TSL-300 evaluator reports
    assert all(r["recall"][k] >= r["tsl300_recall"][k] for k in r["recall"])


def test_cli_eval_localization_json(shared_data, capsys):
    root = shared_data / "tsl300"
    rc = main(["eval-localization", str(root / "VideoSenti" / "gt.json"), str(root / "reference_predictions.json"),
               "--subset", "test", "--json", "--thresholds", "0.1,0.3"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert list(r["mAP"]) == ["0.1", "0.3"]
    assert round(r["mAP"]["0.1"], 4) == 0.2709 and round(r["mAP"]["0.3"], 4) == 0.1163


# ---------------------------------------------------------------------------------- hand-made cases
def test_ap_recall_precision_f2_by_hand():
    gt = gt_of({"v": [(0, 10, "a"), (20, 30, "a")]})
    pred = pred_of({"v": [(50, 60, "a", 0.9), (0, 10, "a", 0.8), (20, 30, "a", 0.7)]})
    r = evaluate_localization(gt, pred, thresholds=[0.5])
    # ranked: FP, TP, TP -> precision 0, 1/2, 2/3; recall 0, 1/2, 1; interpolated AP = 2/3
    assert r["ap"]["a"]["0.5"] == pytest.approx(2 / 3)
    assert r["tsl300_recall"]["0.5"] == pytest.approx(0.5)
    assert r["tsl300_precision"]["0.5"] == pytest.approx((0 + 1 / 2 + 2 / 3) / 3)
    p, rc = (0 + 1 / 2 + 2 / 3) / 3, 0.5
    assert r["tsl300_f2"]["0.5"] == pytest.approx(5 * p * rc / (4 * p + rc))
    assert r["recall"]["0.5"] == pytest.approx(1.0) and r["precision"]["0.5"] == pytest.approx(2 / 3)


def test_greedy_matching_locks_gt_and_depends_on_threshold():
    gt = gt_of({"v": [(0, 10, "a")]})
    # two predictions on the same GT: only the higher-scored one matches; [0, 5] has tIoU 0.5 exactly
    pred = pred_of({"v": [(0, 10, "a", 0.9), (0, 9, "a", 0.8)]})
    r = evaluate_localization(gt, pred, thresholds=[0.5])
    assert r["ap"]["a"]["0.5"] == pytest.approx(1.0)
    assert r["precision"]["0.5"] == pytest.approx(0.5)
    r = evaluate_localization(gt, pred_of({"v": [(0, 5, "a", 0.9)]}), thresholds=[0.5, 0.6])
    assert r["ap"]["a"]["0.5"] == pytest.approx(1.0) and r["ap"]["a"]["0.6"] == 0.0
    # a prediction takes the unlocked GT of highest tIoU: the second GT goes to the second prediction
    gt2 = gt_of({"v": [(0, 10, "a"), (8, 20, "a")]})
    r = evaluate_localization(gt2, pred_of({"v": [(0, 10, "a", 0.9), (2, 12, "a", 0.8)]}), thresholds=[0.2])
    assert r["ap"]["a"]["0.2"] == pytest.approx(1.0)


def test_class_without_predictions_and_video_without_predictions():
    gt = gt_of({"v1": [(0, 10, "a"), (20, 30, "b")], "v2": [(0, 10, "a")]})
    r = evaluate_localization(gt, pred_of({"v1": [(0, 10, "a", 0.5)]}), thresholds=[0.5])
    assert r["ap"]["b"]["0.5"] == 0.0 and r["tsl300_recall"]["0.5"] == pytest.approx(0.25)  # (1/2 + 0) / 2
    assert r["ap"]["a"]["0.5"] == pytest.approx(0.5)  # one of the two GT of class a (v2 has no prediction)
    assert r["mAP"]["0.5"] == pytest.approx(0.25)
    assert r["num_videos_without_predictions"] == 1
    r = evaluate_localization(gt, pred_of({}), thresholds=[0.5])
    assert r["average_mAP"] == 0.0 and r["tsl300_f2"]["0.5"] == 0.0


def test_predictions_for_unknown_videos_are_false_positives_or_an_error():
    gt = gt_of({"v": [(0, 10, "a")]})
    pred = pred_of({"other": [(0, 10, "a", 0.9)], "v": [(0, 10, "a", 0.8)]})
    r = evaluate_localization(gt, pred, thresholds=[0.5])
    assert r["num_predictions_unknown_video"] == 1
    assert r["ap"]["a"]["0.5"] == pytest.approx(0.5) and r["precision"]["0.5"] == pytest.approx(0.5)
    with pytest.raises(DatasetError, match="'other'"):
        evaluate_localization(gt, pred, thresholds=[0.5], unknown_videos="error")


def test_subset_filter_and_first_appearance_class_order():
    gt = {"database": {"t": {"subset": "train", "annotations": [{"segment": [0, 1], "label": "z"}]},
                       "v": {"subset": "test", "annotations": [{"segment": [0, 1], "label": "b"},
                                                                {"segment": [2, 3], "label": "a"}]}}}
    r = evaluate_localization(gt, pred_of({"v": [(0, 1, "b", 1.0), (2, 3, "a", 1.0)]}))
    assert r["classes"] == ["b", "a"] and r["average_mAP"] == pytest.approx(1.0)
    assert list(r["mAP"]) == ["0.1", "0.15", "0.2", "0.25", "0.3"]
    with pytest.raises(DatasetError, match="not a class"):  # z is only in the train subset
        evaluate_localization(gt, pred_of({"v": [(0, 1, "z", 1.0)]}))


@pytest.mark.parametrize("data,match", [
    ({"results": {"v": [{"segment": [3, 1], "label": "a", "score": 1}]}}, "ends before it starts"),
    ({"results": {"v": [{"segment": [0, "x"], "label": "a", "score": 1}]}}, "two numbers"),
    ({"results": {"v": [{"segment": [0, 1], "label": "a"}]}}, "needs 'segment', 'label' and 'score'"),
    ({"results": {"v": [{"segment": [0, 1], "label": "a", "score": "nan"}]}}, "finite"),
    ({"results": {"v": {"segment": [0, 1]}}}, "must be a list"),
    ({"database": {}}, "'results' mapping"),
])
def test_malformed_predictions_raise_clear_errors(tmp_path, data, match):
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=match) as err:
        evaluate_localization(gt_of({"v": [(0, 10, "a")]}), path)
    assert str(path) in str(err.value)


def test_malformed_ground_truth_and_files(tmp_path):
    bad = tmp_path / "gt.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="not a valid JSON"):
        evaluate_localization(bad, pred_of({}))
    with pytest.raises(DatasetError, match="not found"):
        evaluate_localization(tmp_path / "missing.json", pred_of({}))
    with pytest.raises(DatasetError, match="no video of subset 'val'"):
        evaluate_localization(gt_of({"v": [(0, 1, "a")]}), pred_of({}), subset="val")
    with pytest.raises(DatasetError, match="no annotated segment"):
        evaluate_localization(gt_of({"v": []}), pred_of({}))
    with pytest.raises(DatasetError, match="'database'"):
        evaluate_localization({"results": {}}, pred_of({}))


def test_cli_errors_exit_2(tmp_path, capsys):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(gt_of({"v": [(0, 1, "a")]})))
    assert main(["eval-localization", str(gt), str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in capsys.readouterr().err
    assert main(["eval-localization", str(gt), str(gt), "--thresholds", "0.1,abc"]) == 2


def test_building_blocks():
    assert segment_iou([0, 10], np.array([[0, 5], [5, 15], [20, 30], [3, 3]])) == pytest.approx([0.5, 1 / 3, 0, 0])
    assert interpolated_average_precision(np.array([1.0, 0.5]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert DEFAULT_TIOU_THRESHOLDS == tuple(np.linspace(0.1, 0.3, 5))
    assert parse_thresholds("0.1, 0.2") == [0.1, 0.2]
    with pytest.raises(ValueError):
        parse_thresholds("0,1.5")
