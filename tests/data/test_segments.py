"""Untrimmed annotations: ActivityNet-style segment lists (TSL-300, the synthetic untrimmed set), point
labels, timing sidecars, ``describe`` and ``affectkit data info`` on them."""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from affectkit.cli import main
from affectkit.config import DataSection
from affectkit.data.datasets import (attach_points, build_index, describe, load_annotation_index, read_annotation,
                                     read_points)
from affectkit.data.synth import SynthConfig, generate
from affectkit.errors import DatasetError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TSL = SHARED / "tsl300" / "VideoSenti"


@pytest.fixture(scope="module")
def tsl() -> Path:
    if not (TSL / "gt.json").is_file():
        pytest.skip(f"TSL-300 annotations not found at {TSL} (the shared data folder ../shared/data is absent)")
    return TSL


@pytest.fixture(scope="module")
def untrimmed(tmp_path_factory) -> Path:
    """A tiny synthetic set: 2 trimmed videos and 3 untrimmed ones of 10-12 s at 4 fps, 32x32 (about a second)."""
    out = tmp_path_factory.mktemp("synth_untrimmed")
    generate(out, SynthConfig(num_classes=2, train_per_class=1, val_per_class=0, test_per_class=0, duration=(1.0, 1.0),
                              fps=4, size=(32, 32), untrimmed=3, untrimmed_duration=(10.0, 12.0), seed=5))
    return out


def raw_segment_counts(gt: Path) -> tuple[Counter, Counter]:
    """(segments per label, segments per (subset, label)) counted straight from the JSON."""
    db = json.loads(gt.read_text())["database"]
    per_label = Counter(a["label"] for e in db.values() for a in e["annotations"])
    per_split = Counter((e["subset"], a["label"]) for e in db.values() for a in e["annotations"])
    return per_label, per_split


# ---------------------------------------------------------------------------------------------
def test_tsl300_gt_loads_all_videos_and_segments(tsl):
    index = load_annotation_index(tsl / "gt.json")
    assert index.kind == "segments" and index.untrimmed
    assert index.classes == ["n", "p"]
    assert len(index.records) == 300
    assert len(index.split("train")) == 200 and len(index.split("test")) == 100
    assert index.problems == []
    per_label, per_split = raw_segment_counts(tsl / "gt.json")
    got = Counter(s["label"] for r in index.records for s in r.segments)
    assert got == per_label and sum(got.values()) == 584
    assert Counter((r.subset, s["label"]) for r in index.records for s in r.segments) == per_split
    for r in index.records:
        assert r.label_name is None and r.label is None
        for s in r.segments:
            assert isinstance(s["start"], float) and s["start"] < s["end"]
            assert s["label_index"] == index.classes.index(s["label"])
    # the string times are parsed as numbers
    rec = next(r for r in index.records if r.video_id == "102_Ekman6_surprise_408")
    assert rec.segments[0]["start"] == pytest.approx(18.44) and rec.segments[0]["end"] == pytest.approx(31.199)
    # fps_dict.json and len_duration_dict.json beside gt.json give every video's fps and duration (seconds)
    fps = json.loads((tsl / "fps_dict.json").read_text())
    dur = json.loads((tsl / "len_duration_dict.json").read_text())
    assert rec.fps == pytest.approx(fps[rec.video_id]) and rec.duration == pytest.approx(dur[rec.video_id])
    assert all(r.fps and r.duration for r in index.records)
    # the train/test split files agree
    train_ids = (tsl / "split_train.txt").read_text().split()
    assert sorted(train_ids) == sorted(r.video_id for r in index.split("train"))


def test_tsl300_dense_annotation_and_point_labels(tsl):
    points_csv = tsl / "point_gaussian" / "point_labels.csv"
    index = load_annotation_index(tsl / "videosenti_gt.json", points=points_csv)
    per_label, _ = raw_segment_counts(tsl / "videosenti_gt.json")
    assert Counter(s["label"] for r in index.records for s in r.segments) == per_label
    with open(points_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1227
    assert sum(len(r.points) for r in index.records) == len(rows)
    assert sum(bool(r.points) for r in index.records) == 200 and all(not r.points for r in index.split("test"))
    assert index.problems == []
    # frames become seconds with the video's fps; label indices follow the classes (n 0, p 1, as the CSV's class_index)
    row = rows[0]
    rec = next(r for r in index.records if r.video_id == row["video_id"])
    first = rec.points[0]
    assert first["frame"] == int(row["point"]) and first["label"] == row["class"]
    assert first["time"] == pytest.approx(int(row["point"]) / rec.fps)
    assert first["label_index"] == int(row["class_index"])
    assert all(0 <= p["time"] <= r.duration for r in index.records for p in r.points)


def test_tsl300_without_media(tsl):
    """build_index reports every missing video; describe needs no media."""
    index = build_index(DataSection(path=str(tsl / "gt.json")))
    assert index.records == [] and len(index.problems) == 300
    assert "no file or frame folder" in index.problems[0][1]
    info = describe(tsl / "gt.json")
    assert info["num_videos"] == 300 and info["per_split"] == {"train": 200, "test": 100}


def test_tsl300_describe_and_cli(tsl, capsys):
    per_label, per_split = raw_segment_counts(tsl / "gt.json")
    info = describe(tsl / "gt.json")
    assert info["kind"] == "segments" and info["classes"] == ["n", "p"]
    assert info["num_segments"] == sum(per_label.values()) == 584
    assert info["segments_per_label"] == dict(per_label)
    assert info["segments_per_split_per_label"] == {"train": {"n": 0, "p": 0},
                                                    "test": {"n": per_split["test", "n"], "p": per_split["test", "p"]}}
    # the point labels beside it (point_gaussian/point_labels.csv) are found and counted
    assert info["num_points"] == 1227 and info["videos_with_points"] == 200
    assert info["points_per_label"] == {"n": 457, "p": 770}
    assert info["points_per_split_per_label"]["test"] == {"n": 0, "p": 0}
    assert describe(tsl / "gt.json", points=False).get("num_points") is None

    assert main(["data", "info", str(tsl / "gt.json")]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert "300 untrimmed videos" in out and "584 segments" in out
    assert rows["videos"] == ["200", "100", "300"]
    assert rows["segments"] == ["0", "584", "584"]
    lines = [line.split() for line in out.splitlines()]
    assert ["n", "0", str(per_split["test", "n"]), str(per_label["n"])] in lines
    assert ["p", "0", str(per_split["test", "p"]), str(per_label["p"])] in lines
    assert rows["points"] == ["1227", "0", "1227"] and ["p", "770", "0", "770"] in lines
    assert "problem" not in out
    assert main(["data", "info", "--json", str(tsl / "gt.json")]) == 0
    assert json.loads(capsys.readouterr().out)["segments_per_label"] == dict(per_label)


# ---------------------------------------------------------------------------------------------
def test_synthetic_untrimmed_set_loads(untrimmed):
    gt = untrimmed / "untrimmed" / "gt.json"
    db = json.loads(gt.read_text())["database"]
    index = build_index(DataSection(path=str(gt), points="point_labels.csv"))  # relative to the annotation's folder
    assert index.kind == "segments" and index.problems == []
    assert len(index.records) == len(db) == 3
    assert {r.split for r in index.records} == {"train", "test"}  # subsets "train"/"test" are the kit's splits
    assert sum(len(r.segments) for r in index.records) == sum(len(e["annotations"]) for e in db.values())
    for r in index.records:
        e = db[r.video_id]
        assert Path(r.path) == gt.parent / e["video"] and Path(r.path).is_file()
        assert Path(r.subtitles) == gt.parent / e["subtitles"]
        assert r.duration == pytest.approx(e["duration"]) and r.fps == 4.0
        assert [(s["start"], s["end"], s["label"], s["emotion"]) for s in r.segments] == \
               [(a["segment"][0], a["segment"][1], a["label"], a["emotion"]) for a in e["annotations"]]
        # one point a segment, inside it, with its time and frame
        assert len(r.points) == len(r.segments)
        for p, s in zip(r.points, r.segments):
            assert s["start"] <= p["time"] <= s["end"] and p["label"] == s["label"] and p["frame"] == int(p["time"] * 4)
            assert p["label_index"] == index.classes.index(p["label"])
    # the same through describe (the folder data synth wrote: synth.json, with the untrimmed part)
    info = describe(untrimmed)
    assert info["kind"] == "clips" and info["num_videos"] == 2
    u = info["untrimmed"]
    labels = Counter(a["label"] for e in db.values() for a in e["annotations"])
    assert u["num_videos"] == 3 and u["segments_per_label"] == dict(labels) and u["num_points"] == sum(labels.values())
    assert sum(u["per_split"].values()) == 3


def test_synthetic_missing_video_is_reported(untrimmed, tmp_path):
    gt = json.loads((untrimmed / "untrimmed" / "gt.json").read_text())
    missing = dict(gt["database"]["synthu_00001"], video="videos/nope.mp4")
    gt["database"]["synthu_00001"] = missing
    path = untrimmed / "untrimmed" / "gt_missing.json"
    path.write_text(json.dumps(gt))
    index = build_index(DataSection(path=str(path)))
    assert len(index.records) == 2
    assert [p[0] for p in index.problems] == ["synthu_00001"] and "no file or frame folder" in index.problems[0][1]


def test_cli_data_info_on_synth_folder(untrimmed, capsys):
    assert main(["data", "info", str(untrimmed)]) == 0
    out = capsys.readouterr().out
    assert "synth.json: 2 videos, 2 classes" in out
    assert "gt.json: 3 untrimmed videos" in out and "points" in out
    assert main(["data", "info", str(untrimmed / "untrimmed")]) == 0  # the folder holding gt.json
    assert "3 untrimmed videos" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
def test_unknown_and_malformed_segments_are_reported(tmp_path):
    ann = {"labels": ["n", "p"], "database": {
        "a": {"subset": "train", "duration": 20, "annotations": [
            {"segment": ["1.0", "2.5"], "label": "p"},
            {"segment": [3, 4], "label": "x"},  # not a class
            {"segment": [6, 5], "label": "n"},  # ends before it starts
            {"segment": ["a", 7], "label": "n"},  # not a number
        ]},
        "b": {"subset": "test", "annotations": []},  # no segments: kept
        "c": {"subset": "test", "annotations": {"label": "p"}},  # a clip label in the same file
    }}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(ann))
    index = load_annotation_index(path)
    assert index.kind == "segments" and [r.video_id for r in index.records] == ["a", "b", "c"]
    a = index.records[0]
    assert a.segments == [{"start": 1.0, "end": 2.5, "label": "p", "label_index": 1}] and a.duration == 20.0
    text = "\n".join(f"{w}: {why}" for w, why in index.problems)
    assert "unknown label 'x'" in text and "ends before it starts" in text and "not two numbers" in text
    assert all(w == "a" for w, _ in index.problems) and len(index.problems) == 3
    assert index.records[2].label == 1 and index.records[1].label is None
    info = describe(path)
    assert info["num_segments"] == 1 and len(info["problems"]) == 3
    # without a labels list the classes are the sorted labels of the well-formed segments and clips
    del ann["labels"]
    path.write_text(json.dumps(ann))
    labels, records, _ = read_annotation(path)
    assert labels == ["p", "x"] and len(records[0].segments) == 2


def test_point_labels_files(tmp_path):
    ann = {"database": {"v1": {"subset": "train", "fps": 10, "annotations": [{"segment": [1, 3], "label": "p"}]},
                        "v2": {"subset": "train", "annotations": [{"segment": [1, 3], "label": "n"}]}}}
    (tmp_path / "gt.json").write_text(json.dumps(ann))
    (tmp_path / "frames.csv").write_text("class,class_index,start_frame,stop_frame,video_id,point\n"
                                         "p,1,10,30,v1,20\nn,0,10,30,v2,15\nq,2,1,2,v1,1\np,1,1,2,v9,1\n")
    index = attach_points(load_annotation_index(tmp_path / "gt.json"), tmp_path / "frames.csv")
    v1, v2 = index.records
    assert v1.points == [{"time": 2.0, "label": "p", "label_index": 1, "frame": 20, "start_frame": 10, "stop_frame": 30}]
    assert v2.points[0]["time"] is None and v2.points[0]["frame"] == 15  # no fps known for v2
    text = " | ".join(why for _, why in index.problems)
    assert "unknown label 'q'" in text and "v9" in text and "fps is unknown" in text and "v2" in text
    (tmp_path / "times.csv").write_text("video_id,class,point_time\nv2,n,1.5\nv1,p,2.25\n")
    assert read_points(tmp_path / "times.csv") == {"v2": [{"time": 1.5, "label": "n", "label_index": -1}],
                                                   "v1": [{"time": 2.25, "label": "p", "label_index": -1}]}
    (tmp_path / "bad.csv").write_text("video_id,class,point_time\nv1,p,soon\n")
    with pytest.raises(DatasetError, match=r"bad.csv:2: point_time 'soon'"):
        read_points(tmp_path / "bad.csv")
    (tmp_path / "cols.csv").write_text("id,label\nv1,p\n")
    with pytest.raises(DatasetError, match="cols.csv: point labels need columns"):
        read_points(tmp_path / "cols.csv")
    with pytest.raises(DatasetError, match="nope.csv: point label file not found"):
        read_points(tmp_path / "nope.csv")
