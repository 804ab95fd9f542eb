"""Audio datasets: RAVDESS names, folders and CSV lists of audio files, splits by speaker."""
from __future__ import annotations

import pytest

from affectkit.config import DataSection, load_config
from affectkit.data.datasets import (
    RAVDESS_EMOTIONS,
    DatasetIndex,
    VideoRecord,
    assign_group_splits,
    build_index,
    describe,
    group_key,
    is_ravdess_folder,
    load_csv_index,
    load_ravdess_index,
    parse_ravdess_name,
)
from affectkit.errors import ConfigError, DatasetError

from .audio_fixtures import encode_audio, make_ravdess_folder, ravdess_name, tone


# ---------------------------------------------------------------------------------------------
# RAVDESS file names
def test_parse_ravdess_name():
    meta = parse_ravdess_name("03-01-05-01-02-01-12.wav")
    assert meta == {"modality": 3, "vocal_channel": 1, "emotion_id": 5, "emotion": "angry", "intensity": 1,
                    "statement": 2, "repetition": 1, "actor": 12, "gender": "female"}
    assert parse_ravdess_name("/x/Actor_07/01-02-08-02-01-02-07.mp4")["emotion"] == "surprised"
    assert parse_ravdess_name("01-02-08-02-01-02-07.mp4")["gender"] == "male"  # odd actors are male
    assert [parse_ravdess_name(ravdess_name(e, 1))["emotion"] for e in range(1, 9)] == RAVDESS_EMOTIONS
    for name in ("speech.wav", "03-01-05-01-02-01.wav", "3-1-5-1-2-1-12.wav", "03-01-05-01-02-01-12-x.wav"):
        assert parse_ravdess_name(name) is None, name
    with pytest.raises(ValueError, match="emotion_id code 09"):
        parse_ravdess_name("03-01-09-01-02-01-12.wav")
    with pytest.raises(ValueError, match="actor code 00"):
        parse_ravdess_name("03-01-01-01-02-01-00.wav")


def test_ravdess_dev_folder_is_read_from_the_names(shared_data):
    root = shared_data / "ravdess_dev"
    assert is_ravdess_folder(root)
    index = load_ravdess_index(root)
    assert index.classes == RAVDESS_EMOTIONS and len(index.records) == 240 and not index.problems
    per_actor = {}
    for r in index.records:
        per_actor.setdefault(r.extra["actor"], []).append(r)
        assert r.label == RAVDESS_EMOTIONS.index(r.label_name) and r.path.endswith(".wav")
    assert sorted(per_actor) == [1, 2, 3, 4] and all(len(v) == 60 for v in per_actor.values())
    # 8 emotions; neutral has no strong intensity: 4 + 7 * 8 = 60 per actor
    counts = {c: sum(r.label_name == c for r in per_actor[4]) for c in RAVDESS_EMOTIONS}
    assert counts == {"neutral": 4, **{c: 8 for c in RAVDESS_EMOTIONS[1:]}}


def test_labels_csv_agrees_with_the_file_names(shared_data):
    root = shared_data / "ravdess_dev"
    index = load_csv_index(root / "labels.csv")  # label column found: "emotion"
    assert len(index.records) == 240 and sorted(index.classes) == sorted(RAVDESS_EMOTIONS)
    for r in index.records:
        meta = parse_ravdess_name(r.path)
        assert r.label_name == meta["emotion"]
        assert int(r.extra["actor"]) == meta["actor"] and r.extra["gender"] == meta["gender"]
        assert int(r.extra["statement"]) == meta["statement"] and int(r.extra["intensity"]) == meta["intensity"]


def test_data_info_on_the_ravdess_folder(shared_data):
    info = describe(shared_data / "ravdess_dev")
    assert info["layout"] == "ravdess" and info["num_videos"] == 240
    assert info["per_split"] == {"Actor_01": 60, "Actor_02": 60, "Actor_03": 60, "Actor_04": 60}
    assert info["per_split_per_class"]["Actor_02"]["calm"] == 8 and info["problems"] == []
    from affectkit.cli import main

    assert main(["data", "info", str(shared_data / "ravdess_dev")]) == 0


# ---------------------------------------------------------------------------------------------
# splits by group
def test_shipped_ravdess_split_never_shares_an_actor(shared_data):
    cfg = load_config("audio/ravdess_cnn_logmel.yaml", [f"data.path={shared_data / 'ravdess_dev'}"])
    index = build_index(cfg.data)
    actors = {s: {r.extra["actor"] for r in index.split(s)} for s in ("train", "val", "test")}
    assert actors == {"train": {1, 2}, "val": {3}, "test": {4}}
    assert index.group_by == "actor" and index.groups == {"train": ["1", "2"], "val": ["3"], "test": ["4"]}
    assert sum(len(index.split(s)) for s in actors) == 240


def test_group_splits_rest_val_fraction_and_errors(tmp_path):
    make_ravdess_folder(tmp_path / "rav", actors=(1, 2, 3, 4, 5))
    base = dict(format="audio", path=str(tmp_path / "rav"), group_by="actor")
    # no "train" entry: every actor not named elsewhere trains; "01" == 1 == "1"
    index = build_index(DataSection(**base, splits={"test": ["05"], "val": 4}))
    assert index.groups == {"train": ["1", "2", "3"], "val": ["4"], "test": ["5"]}
    # a "train" entry: actors named nowhere are left out (split None)
    index = build_index(DataSection(**base, splits={"train": [1], "test": [5]}))
    assert (len(index.split("train")), len(index.split("test")), len(index.split(None))) == (6, 6, 18)
    assert {r.extra["actor"] for r in index.split(None)} == {2, 3, 4}
    # val_fraction with group_by holds out whole actors, the same ones for the same seed
    a = build_index(DataSection(**base, splits={"test": [5]}, val_fraction=0.5, split_seed=3))
    b = build_index(DataSection(**base, splits={"test": [5]}, val_fraction=0.5, split_seed=3))
    assert a.groups == b.groups and len(a.groups["val"]) == 2 and len(a.groups["train"]) == 2
    for split in ("train", "val", "test"):
        others = {r.extra["actor"] for r in a.records if r.split not in (split, None)}
        assert not ({r.extra["actor"] for r in a.split(split)} & others)
    # no splits at all: everything trains
    assert {r.split for r in build_index(DataSection(**base)).records} == {"train"}
    with pytest.raises(DatasetError, match=r"data.splits.test names actor 9.*actor: 1, 2, 3, 4, 5"):
        build_index(DataSection(**base, splits={"test": [9]}))
    with pytest.raises(DatasetError, match="no record has this field.*actor"):
        build_index(DataSection(format="audio", path=str(tmp_path / "rav"), group_by="speaker"))
    with pytest.raises(DatasetError, match="would hold out all"):
        build_index(DataSection(**base, splits={"train": [1], "test": [5]}, val_fraction=0.5))


def test_records_without_a_group_are_reported_and_left_out():
    records = [VideoRecord(video_id=f"r{i}", label_name="a", subset="train", split="train", label=0, path=f"r{i}.wav",
                           extra={"speaker": s}) for i, s in enumerate(["x", "y", "", None, "y", "zed"])]
    index = assign_group_splits(DatasetIndex("list.csv", ["a"], records), "speaker", {"val": ["y"], "test": "zed"})
    assert [(r.video_id, r.split) for r in index.records] == [("r0", "train"), ("r1", "val"), ("r4", "val"), ("r5", "test")]
    assert sorted(p for p, _ in index.problems) == ["r2.wav", "r3.wav"]
    assert all("no 'speaker' value" in why for _, why in index.problems)


def test_group_split_config_errors():
    with pytest.raises(ConfigError, match="actor 3.*in both train and test"):
        DataSection(format="audio", path="x", group_by="actor", splits={"train": [1, "03"], "test": [3]})
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        DataSection(format="audio", path="x", group_by="actor", splits={"dev": [1]})
    with pytest.raises(ConfigError, match="needs data.group_by"):
        DataSection(format="audio", path="x", splits={"test": [1]})
    with pytest.raises(ConfigError, match="data.splits.test: expected a list"):
        DataSection(format="audio", path="x", group_by="actor", splits={"test": {"a": 1}})
    with pytest.raises(ConfigError, match="val_fraction"):
        DataSection(val_fraction=1.5)
    # the same errors through a config file and dotted overrides, prefixed with the config's name
    with pytest.raises(ConfigError, match="ravdess_cnn_logmel.yaml: data.splits: actor 4 is in both"):
        load_config("audio/ravdess_cnn_logmel.yaml", ["data.splits.val=[4]"])
    cfg = load_config("audio/ravdess_cnn_logmel.yaml", ["data.splits={train: [1, 2, 3], test: [4]}"])
    assert cfg.data.splits == {"train": [1, 2, 3], "test": [4]}
    assert group_key(" 07 ") == "7" and group_key("M") == "M" and group_key(3) == "3"


# ---------------------------------------------------------------------------------------------
# folders and CSV lists of audio files
def test_class_folders_of_audio_in_any_format(tmp_path):
    root = tmp_path / "emo"
    (root / "happy").mkdir(parents=True)
    (root / "sad").mkdir(parents=True)
    encode_audio(root / "happy" / "a.mp3", tone(1.0, 44100), 44100, "mp3")
    encode_audio(root / "happy" / "b.flac", tone(1.0, 8000), 8000, "flac")
    encode_audio(root / "sad" / "c.m4a", tone(1.0, 48000), 48000, "aac", fmt="ipod")
    from affectkit.data.media_writer import write_wav

    write_wav(root / "sad" / "d.wav", tone(1.0, 22050), 22050)
    (root / "sad" / "notes.txt").write_text("not media")
    index = build_index(DataSection(format="audio", path=str(root)))
    assert index.classes == ["happy", "sad"]
    assert sorted((r.label_name, r.video_id) for r in index.records) == [("happy", "a"), ("happy", "b"), ("sad", "c"), ("sad", "d")]
    assert all(r.split == "train" for r in index.records)
    info = describe(root)  # no videos: read as class folders of audio
    assert info["layout"] == "folder" and info["num_videos"] == 4
    with pytest.raises(DatasetError, match="no media files found"):
        build_index(DataSection(format="audio", path=str(tmp_path)))  # tmp_path/emo is not a class of files
    with pytest.raises(DatasetError, match="a folder or a CSV list"):
        build_index(DataSection(format="audio", path=str(root / "sad" / "d.wav")))


def test_csv_list_with_speakers_and_label_column(tmp_path):
    from affectkit.data.media_writer import write_wav

    for i in range(6):
        write_wav(tmp_path / f"u{i}.wav", tone(0.5, 16000, seed=i), 16000)
    rows = [f"u{i}.wav,{'pos' if i % 2 else 'neg'},spk{i // 2}" for i in range(6)] + ["gone.wav,pos,spk0"]
    (tmp_path / "list.csv").write_text("path,mood,speaker\n" + "\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match="no label column.*set data.label_column"):
        build_index(DataSection(format="audio", path=str(tmp_path / "list.csv")))
    cfg = DataSection(format="audio", path=str(tmp_path / "list.csv"), label_column="mood", group_by="speaker",
                      splits={"val": ["spk1"], "test": ["spk2"]})
    index = build_index(cfg)
    assert index.classes == ["neg", "pos"] and len(index.problems) == 1 and "gone.wav" in index.problems[0][0]
    assert {s: sorted(r.video_id for r in index.split(s)) for s in ("train", "val", "test")} == {
        "train": ["u0", "u1"], "val": ["u2", "u3"], "test": ["u4", "u5"]}
    # the same CSV with format csv (video lists use it too) gives the same split
    index2 = build_index(DataSection(**{**cfg.__dict__, "format": "csv"}))
    assert [(r.video_id, r.split) for r in index2.records] == [(r.video_id, r.split) for r in index.records]
    with pytest.raises(DatasetError, match="missing column 'emotion'"):
        build_index(DataSection(format="csv", path=str(tmp_path / "list.csv"), label_column="emotion"))


def test_ravdess_folder_with_stray_and_bad_names(tmp_path):
    make_ravdess_folder(tmp_path, actors=(1,), emotions=(2,))
    from affectkit.data.media_writer import write_wav

    write_wav(tmp_path / "Actor_01" / "readme_take.wav", tone(0.2, 16000), 16000)
    write_wav(tmp_path / "Actor_01" / "03-01-11-01-01-01-01.wav", tone(0.2, 16000), 16000)
    (tmp_path / "labels.csv").write_text("not read: the names carry the labels\n")
    index = build_index(DataSection(format="audio", path=str(tmp_path)))
    assert [r.label_name for r in index.records] == ["calm", "calm"]
    problems = dict(index.problems)
    assert any("readme_take.wav" in k and "RAVDESS convention" in v for k, v in problems.items())
    assert any("03-01-11" in k and "emotion_id code 11" in v for k, v in problems.items())
