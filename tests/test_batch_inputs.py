"""Batch prediction accounts for every input: named paths always get a line, folder scans say what
they left out and why (issue 15, item 8)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from affectkit.cli import ScanReport, main, media_files
from affectkit.data.datasets import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS
from affectkit.data.media_writer import write_video, write_wav

from .conftest import TINY_OVERRIDES, untrained_checkpoint
from .data.audio_fixtures import tone

CLASSES = ["neutral", "happy", "sad", "angry"]
SR = 16000


def _checkpoint(root, name: str, overrides: list[str]):
    return untrained_checkpoint(root, name, overrides, CLASSES)


@pytest.fixture(scope="module")
def video_ckpt(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("vaanet"), "vaanet/vaanet_synth.yaml",
                       [o for o in TINY_OVERRIDES if o.startswith(("model.", "input."))] + ["train.loss=ce"])


@pytest.fixture(scope="module")
def audio_ckpt(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("cnn"), "audio/ravdess_cnn_logmel.yaml", ["model.args.channels=[4,8,8,8]"])


def _video(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (36, 32, 32, 3), dtype=np.uint8)
    write_video(path, frames, 12, tone(3.0, SR, seed=seed), SR)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder with 2 videos, a wav, an m4a-named wav, 2 text files, a hidden file; a folder named
    like a video holding only a text file; an empty folder; a loose m4a."""
    root = tmp_path_factory.mktemp("inputs")
    scan = root / "scan"
    (scan / "sub").mkdir(parents=True)
    _video(scan / "a.mp4", 1)
    _video(scan / "sub" / "b.mkv.mp4", 2)
    write_wav(scan / "voice.wav", tone(2.0, SR), SR)
    (scan / "notes.txt").write_text("x")
    (scan / "sub" / "list.txt").write_text("y")
    (scan / ".DS_Store").write_bytes(b"\x00\x01")
    fake = root / "clip.mp4"  # a folder whose name ends in .mp4
    fake.mkdir()
    (fake / "readme.md").write_text("not a video")
    (root / "empty").mkdir()
    write_wav(root / "speech.m4a", tone(1.0, SR), SR)  # wav bytes, m4a name
    _video(root / "named.mp4", 3)
    return root


def _rows(path: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    by = {r["video"]: r for r in rows}
    assert len(by) == len(rows)  # one line per input
    return by


def test_media_files_counts_what_a_scan_leaves_out(inputs):
    report = ScanReport()
    got = media_files([str(inputs / "scan")], set(VIDEO_EXTENSIONS), report)
    assert [Path(p).name for p in got] == ["a.mp4", "b.mkv.mp4"]
    assert report.skipped == {"not media": {".txt": 2}, "audio file for a video model": {"": 1},
                              "hidden file": {"": 1}}
    assert report.describe() == "2 not media (.txt), 1 audio file for a video model, 1 hidden file"
    audio = ScanReport()
    got = media_files([str(inputs / "scan")], set(VIDEO_EXTENSIONS) | set(AUDIO_EXTENSIONS), audio)
    assert sorted(Path(p).name for p in got) == ["a.mp4", "b.mkv.mp4", "voice.wav"]
    assert audio.describe() == "2 not media (.txt), 1 hidden file"


def test_named_paths_always_get_a_line(video_ckpt, inputs, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    named = [inputs / "speech.m4a", inputs / "clip.mp4", inputs / "empty", inputs / "named.mp4",
             inputs / "missing.avi", inputs / "scan"]
    assert main(["predict", *map(str, named), "--checkpoint", str(video_ckpt), "--out", str(out), "--workers", "0"]) == 0
    rows = _rows(out)
    assert set(rows) == {str(inputs / n) for n in ("speech.m4a", "clip.mp4", "empty", "named.mp4", "missing.avi")} | {
        str(inputs / "scan" / "a.mp4"), str(inputs / "scan" / "sub" / "b.mkv.mp4")}
    assert "has no video stream" in rows[str(inputs / "speech.m4a")]["error"]
    fake = rows[str(inputs / "clip.mp4")]["error"]
    assert fake.startswith(f"{inputs / 'clip.mp4'}: is a folder with no video files") and "1 not media (.md)" in fake
    assert "it is empty" in rows[str(inputs / "empty")]["error"]
    assert "file not found" in rows[str(inputs / "missing.avi")]["error"]
    for name in ("named.mp4", "scan/a.mp4", "scan/sub/b.mkv.mp4"):
        assert rows[str(inputs / name)]["label"] in CLASSES
    err = capsys.readouterr().err
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("3 predicted, 4 skipped")
    # the md inside clip.mp4 is counted with the scan's files
    assert "skipped 5 files in folders: 3 not media (.txt, .md), 1 audio file for a video model, 1 hidden file" in summary


def test_audio_model_scans_audio_files(audio_ckpt, inputs, tmp_path, capsys):
    out = tmp_path / "a.jsonl"
    assert main(["predict", str(inputs / "scan"), str(inputs / "speech.m4a"), "--checkpoint", str(audio_ckpt),
                 "--out", str(out), "--workers", "0"]) == 0
    rows = _rows(out)
    assert set(rows) == {str(inputs / "scan" / n) for n in ("a.mp4", "sub/b.mkv.mp4", "voice.wav")} | {str(inputs / "speech.m4a")}
    assert all("label" in r for r in rows.values()), rows  # audio tracks of the videos, the wav, the named m4a
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert summary == "4 predicted, 0 skipped; skipped 3 files in folders: 2 not media (.txt), 1 hidden file"


def test_resume_keeps_folder_lines(video_ckpt, inputs, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    args = ["predict", str(inputs / "clip.mp4"), str(inputs / "named.mp4"), "--checkpoint", str(video_ckpt),
            "--out", str(out), "--workers", "0"]
    assert main(args) == 0
    first = out.read_text()
    assert main(args) == 0  # everything already done: nothing is run or written again
    assert out.read_text() == first and len(first.splitlines()) == 2
    assert "2 of 2 files already done" in capsys.readouterr().err


def test_glob_folders_are_counted(video_ckpt, inputs, tmp_path, capsys):
    out = tmp_path / "g.jsonl"
    assert main(["predict", str(inputs / "scan" / "*"), "--checkpoint", str(video_ckpt), "--out", str(out),
                 "--workers", "0"]) == 0
    rows = _rows(out)
    # a pattern keeps every file it matches (the user chose them): the txt and the wav get error lines
    assert set(rows) == {str(inputs / "scan" / n) for n in ("a.mp4", "voice.wav", "notes.txt")}
    assert "error" in rows[str(inputs / "scan" / "notes.txt")]
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert summary.startswith("1 predicted, 2 skipped") and "1 folder matched by patterns not searched" in summary
