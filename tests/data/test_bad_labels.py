"""Bad labels in an annotation JSON, and ``affectkit data info --check`` (every listed file decodes)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from affectkit.cli import main
from affectkit.config import DataSection
from affectkit.data.datasets import build_index, describe, load_annotation_index, read_annotation
from affectkit.data.media_writer import write_wav
from affectkit.errors import DatasetError

from .media_fixtures import make_index_video, truncate


def _annotation(path, labels: dict, label_list=None, segments: dict | None = None):
    db = {vid: {"subset": "training", "annotations": {"label": lab}} for vid, lab in labels.items()}
    for vid, segs in (segments or {}).items():
        db[vid] = {"subset": "testing", "annotations": [{"segment": s, "label": lab} for s, lab in segs]}
    data = {"database": db}
    if label_list is not None:
        data["labels"] = label_list
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------ bad labels
def test_mixed_numbers_and_names_is_a_clear_error(tmp_path):
    ann = _annotation(tmp_path / "mixed.json", {"v1": 1, "v2": "2", "v3": "joy"})
    for load in (read_annotation, describe, load_annotation_index):
        with pytest.raises(DatasetError) as err:
            load(ann)
        msg = str(err.value)
        assert str(ann) in msg and "mix numbers and names" in msg
        assert "entry 'v1'" in msg and "label 1 (a number)" in msg  # the numeric entry
        assert "entry 'v2'" in msg and "'2' (a name)" in msg  # the first named entry
    with pytest.raises(DatasetError, match="mix numbers and names"):  # what `train` goes through
        build_index(DataSection(format="annotation", path=str(ann)))


def test_mixed_labels_through_the_cli(tmp_path, capsys):
    ann = _annotation(tmp_path / "mixed.json", {"a": "joy", "b": 3})
    assert main(["data", "info", str(ann)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(ann) in err and "entry 'b' has label 3" in err
    assert "Traceback" not in err and "TypeError" not in err


def test_number_clip_label_with_named_segments_is_mixed(tmp_path):
    ann = _annotation(tmp_path / "seg.json", {"c1": 0}, segments={"u1": [([0.0, 2.0], "p")]})
    with pytest.raises(DatasetError, match=r"entry 'c1' has label 0 \(a number\), entry 'u1' segment 0 has 'p'"):
        read_annotation(ann)


def test_label_of_wrong_type_is_named(tmp_path):
    ann = _annotation(tmp_path / "dict.json", {"ok": "joy", "bad": {"name": "joy"}})
    with pytest.raises(DatasetError, match=r"database entry 'bad' has label \{'name': 'joy'\} \(dict\)"):
        read_annotation(ann)
    ann = _annotation(tmp_path / "bool.json", {"b": True}, label_list=["joy"])
    with pytest.raises(DatasetError, match=r"entry 'b' has label True \(bool\)"):
        load_annotation_index(ann)


def test_consistent_labels_still_load(tmp_path):
    names = read_annotation(_annotation(tmp_path / "names.json", {"a": "joy", "b": "anger", "c": "joy"}))[0]
    assert names == ["anger", "joy"]
    numbers = read_annotation(_annotation(tmp_path / "nums.json", {"a": 2, "b": 0, "c": 1}))[0]
    assert numbers == [0, 1, 2]  # all numbers: sorted as numbers, as before


def test_number_label_against_a_name_list_is_reported_with_a_hint(tmp_path):
    ann = _annotation(tmp_path / "listed.json", {"a": "1", "b": 2, "c": "x"}, label_list=["1", "2"])
    index = load_annotation_index(ann)
    assert [r.video_id for r in index.records] == ["a"]
    problems = dict(index.problems)
    assert "unknown label 2 (a number: the class is the name '2'" in problems["b"]
    assert "unknown label 'x'; the classes are 1, 2" in problems["c"]


# -------------------------------------------------------------------------------- data info --check
@pytest.fixture()
def small_set(tmp_path):
    """<root>/<Class>/<id>.mp4 with an annotation of 4 videos: 2 good, 1 truncated, 1 missing."""
    root = tmp_path / "set"
    for cls, vid in (("joy", "g1"), ("anger", "g2"), ("joy", "cut")):
        (root / cls).mkdir(parents=True, exist_ok=True)
        make_index_video(root / cls / f"{vid}.mp4", 12, fps=12.0, height=32, width=32)
    truncate(root / "joy" / "cut.mp4", 0.05)  # the header is gone: nothing decodes
    ann = _annotation(root / "ann.json", {"g1": "joy", "g2": "anger", "cut": "joy", "gone": "anger"},
                      label_list=["anger", "joy"])
    return root, ann


def test_check_reports_missing_and_broken(small_set, capsys):
    root, ann = small_set
    assert main(["data", "info", str(ann), "--check"]) == 1
    out = capsys.readouterr().out
    broken = [line for line in out.splitlines() if line.startswith("broken: ")]
    assert len(broken) == 2
    assert any("gone" in b and "no file or frame folder was found" in b for b in broken)
    assert any(str(root / "joy" / "cut.mp4") in b for b in broken)
    assert "checked 3 media files: 2 missing or broken" in out
    assert "4 videos" in out  # the usual description comes first


def test_check_json_and_clean_set(small_set, capsys):
    root, ann = small_set
    assert main(["data", "info", str(ann), "--check", "--json"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert info["check"]["checked"] == 3
    assert sorted(b["file"] for b in info["check"]["broken"]) == sorted(["gone", str(root / "joy" / "cut.mp4")])
    (root / "joy" / "cut.mp4").unlink()
    make_index_video(root / "anger" / "gone.mp4", 12, fps=12.0, height=32, width=32)
    make_index_video(root / "joy" / "cut.mp4", 12, fps=12.0, height=32, width=32)
    assert main(["data", "info", str(ann), "--check"]) == 0
    assert "checked 4 media files: all decode" in capsys.readouterr().out
    assert main(["data", "info", str(ann)]) == 0  # without --check nothing is opened
    assert "checked" not in capsys.readouterr().out


def test_check_audio_csv(tmp_path, capsys):
    t = np.arange(1600) / 16000
    write_wav(tmp_path / "a.wav", 0.2 * np.sin(2 * np.pi * 300 * t), 16000)
    (tmp_path / "b.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)  # a header and nothing usable
    (tmp_path / "list.csv").write_text("path,label\na.wav,calm\nb.wav,sad\nc.wav,sad\n", encoding="utf-8")
    assert main(["data", "info", str(tmp_path / "list.csv"), "--check"]) == 1
    out = capsys.readouterr().out
    assert f"broken: {tmp_path / 'b.wav'}:" in out
    assert f"broken: {tmp_path / 'c.wav'}: listed at" in out and "not found" in out
    assert "a.wav:" not in out.replace(str(tmp_path / "list.csv"), "")
    assert "checked 2 media files: 2 missing or broken" in out
