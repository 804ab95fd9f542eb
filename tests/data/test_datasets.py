import json

import pytest

from affectkit.data.datasets import (EK6_CLASSES, VE8_CLASSES, build_index, describe, load_annotation_index,
                                     polarity_map)
from affectkit.config import DataSection
from affectkit.errors import DatasetError


def test_ve8_annotation_true_counts(shared_data):
    info = describe(shared_data / "ve8_ek6" / "ve8" / "ve8_01.json")
    assert info["num_videos"] == 1098
    assert info["per_split"] == {"training": 731, "validation": 367}
    assert info["classes"] == VE8_CLASSES
    # 3527012618_7ceb8fb27b_700 sits in both Disgust and Fear lists; the JSON keeps one (spec 1.6)
    per_class_total = info["per_class"]
    assert sum(per_class_total.values()) == 1098


def test_ek6_annotation_true_counts(shared_data):
    info = describe(shared_data / "ve8_ek6" / "ek6" / "ek6_01.json")
    assert info["num_videos"] == 1637
    assert info["per_split"] == {"training": 819, "validation": 818}
    assert info["classes"] == EK6_CLASSES


def test_ve8_splits_with_validation_carved_from_train(shared_data):
    idx = load_annotation_index(shared_data / "ve8_ek6" / "ve8" / "ve8_01.json",
                                subsets={"train": "training", "test": "validation"}, val_fraction=0.1, polarity="ve8")
    n = {s: len(idx.split(s)) for s in ("train", "val", "test")}
    assert n["test"] == 367 and n["train"] + n["val"] == 731
    assert 65 <= n["val"] <= 80
    test_ids = {r.video_id for r in idx.split("test")}
    assert not test_ids & {r.video_id for r in idx.split("val")}
    assert idx.polarity["Joy"] == "positive" and idx.polarity["Fear"] == "negative"
    again = load_annotation_index(shared_data / "ve8_ek6" / "ve8" / "ve8_01.json",
                                  subsets={"train": "training", "test": "validation"}, val_fraction=0.1)
    assert [r.video_id for r in again.split("val")] == [r.video_id for r in idx.split("val")]


def _write_ann(path, entries, labels=("Joy", "Anger")):
    path.write_text(json.dumps({"labels": list(labels), "database": entries}))
    return path


def test_frame_folder_layout_and_missing_files(tmp_path):
    # JACK/original layout: img/<Class>/<id>/000001.jpg and mp3/<Class>/<id>.mp3
    (tmp_path / "img" / "Joy" / "v1").mkdir(parents=True)
    (tmp_path / "img" / "Joy" / "v1" / "000001.jpg").write_bytes(b"x")
    (tmp_path / "mp3" / "Joy").mkdir(parents=True)
    (tmp_path / "mp3" / "Joy" / "v1.mp3").write_bytes(b"x")
    ann = _write_ann(tmp_path / "ann.json", {
        "v1": {"subset": "training", "annotations": {"label": "Joy"}},
        "v2": {"subset": "training", "annotations": {"label": "Anger"}},  # no media: reported
        "v3": {"subset": "training", "annotations": {"label": "Boredom"}},  # unknown label: reported
    })
    idx = build_index(DataSection(path=str(ann)))
    assert [r.video_id for r in idx.records] == ["v1"]
    assert idx.records[0].path.endswith("img/Joy/v1")
    assert idx.records[0].audio_path.endswith("mp3/Joy/v1.mp3")
    problems = dict(idx.problems)
    assert "unknown label 'Boredom'" in " ".join(problems.values())
    assert any("v2" in why and "no file" in why for why in problems.values())


def test_bad_annotation_files(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        describe(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="bad.json: not a valid JSON"):
        describe(bad)
    bad.write_text(json.dumps({"labels": ["a"]}))
    with pytest.raises(DatasetError, match="database"):
        describe(bad)


def test_polarity_map_must_cover_classes():
    assert polarity_map("ek6", EK6_CLASSES)["surprise"] == "positive"
    with pytest.raises(DatasetError, match="class 'Calm'"):
        polarity_map({"Joy": "positive"}, ["Joy", "Calm"])
    with pytest.raises(DatasetError, match="unknown polarity preset"):
        polarity_map("xyz", ["a"])


def test_folder_and_csv_layouts(tmp_path):
    for split, cls, name in [("train", "Joy", "a"), ("train", "Anger", "b"), ("test", "Joy", "c")]:
        d = tmp_path / "f" / split / cls
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.mp4").write_bytes(b"x")
    info = describe(tmp_path / "f")
    assert info["per_split"] == {"train": 2, "test": 1}
    assert info["classes"] == ["Anger", "Joy"]
    csv = tmp_path / "list.csv"
    csv.write_text("path,label,split\nf/train/Joy/a.mp4,Joy,train\nf/test/Joy/c.mp4,Joy,test\nmissing.mp4,Joy,train\n")
    idx = build_index(DataSection(format="csv", path=str(csv)))
    assert len(idx.records) == 2 and len(idx.problems) == 1 and "missing.mp4" in idx.problems[0][0]
