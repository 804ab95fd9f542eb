"""Subtitles and transcripts: SRT / WebVTT / plain text reading, bad files, cues in a time window, and the
synthetic set's subtitles read back."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from affectkit.data import synth
from affectkit.data.text import (EMOTION_WORDS, LEXICON, SubtitleCue, SubtitleError, format_srt_time, read_srt,
                                 read_subtitles, text_in_window, write_srt)
from affectkit.errors import DatasetError, MediaError

SRT = """1
00:00:01,000 --> 00:00:02,500
<i>Hello</i> there

2
00:00:03,000 --> 00:00:04,000
I am so happy
right now

"""

VTT = """WEBVTT - a test

NOTE this is a comment
spanning two lines

intro
00:01.000 --> 00:02.500 align:start position:10%
<v Ann>Hello</v> &amp; welcome

00:00:03.000 --> 00:00:04.000
so sad
"""


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def test_srt_vtt_and_txt(tmp_path):
    srt = read_subtitles(write(tmp_path / "a.srt", SRT))
    assert srt == [SubtitleCue(1.0, 2.5, "Hello there"), SubtitleCue(3.0, 4.0, "I am so happy\nright now")]
    assert read_srt(tmp_path / "a.srt")[0] == (1.0, 2.5, "<i>Hello</i> there")  # as written
    assert read_subtitles(tmp_path / "a.srt", strip_markup=False)[0].text == "<i>Hello</i> there"
    # CRLF line ends and a byte order mark
    crlf = read_subtitles(write(tmp_path / "b.srt", "\ufeff" + SRT.replace("\n", "\r\n")))
    assert crlf == srt
    vtt = read_subtitles(write(tmp_path / "a.vtt", VTT))
    assert vtt == [(1.0, 2.5, "Hello & welcome"), (3.0, 4.0, "so sad")]
    txt = read_subtitles(write(tmp_path / "a.txt", "  A whole transcript.\nTwo lines.\n"))
    assert txt == [SubtitleCue(None, None, "A whole transcript.\nTwo lines.")]
    assert read_subtitles(write(tmp_path / "empty.txt", "\n")) == []
    assert read_subtitles(write(tmp_path / "empty.srt", "")) == []


def test_bad_subtitle_files_name_the_file_and_line(tmp_path):
    with pytest.raises(SubtitleError, match=r"nope.srt: subtitle file not found"):
        read_subtitles(tmp_path / "nope.srt")
    bad_time = write(tmp_path / "t.srt", "1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:xx,000 --> 00:00:03,000\nbad\n")
    with pytest.raises(SubtitleError, match=r"t.srt: line 6: bad time '00:00:xx,000'"):
        read_subtitles(bad_time)
    no_timing = write(tmp_path / "n.srt", "1\nhello\n")
    with pytest.raises(SubtitleError, match=r"n.srt: line 1: malformed SRT block"):
        read_subtitles(no_timing)
    backwards = write(tmp_path / "r.srt", "1\n00:00:05,000 --> 00:00:02,000\nx\n")
    with pytest.raises(SubtitleError, match=r"r.srt: line 2: cue ends before it starts"):
        read_subtitles(backwards)
    not_vtt = write(tmp_path / "x.vtt", "1\n00:00:01.000 --> 00:00:02.000\nx\n")
    with pytest.raises(SubtitleError, match=r"x.vtt: line 1: not a WebVTT file"):
        read_subtitles(not_vtt)
    (tmp_path / "latin.srt").write_bytes(b"1\n00:00:01,000 --> 00:00:02,000\ncaf\xe9\n")
    with pytest.raises(SubtitleError, match=r"latin.srt: not UTF-8"):
        read_subtitles(tmp_path / "latin.srt")
    with pytest.raises(SubtitleError, match=r"a.ass: unsupported subtitle format '.ass'"):
        read_subtitles(write(tmp_path / "a.ass", "x"))
    # both a media error (a record's sidecar file) and a dataset error
    with pytest.raises(MediaError):
        read_subtitles(backwards)
    with pytest.raises(DatasetError):
        read_srt(no_timing)


def test_text_in_window(tmp_path):
    cues = read_subtitles(write(tmp_path / "a.srt", SRT))
    assert text_in_window(cues, 0.0, 1.0) == ""  # ends where the first cue starts
    assert text_in_window(cues, 0.0, 1.5) == "Hello there"
    assert text_in_window(cues, 2.0, 3.5) == "Hello there I am so happy right now"
    assert text_in_window(cues, 2.5, 3.0) == ""
    assert text_in_window(cues, 3.5, None) == "I am so happy right now"
    assert text_in_window(cues) == text_in_window(cues, 0, 100)
    assert text_in_window(cues, 0, 10, sep=" | ") == "Hello there | I am so happy right now"
    transcript = [SubtitleCue(None, None, "all of it")]
    assert text_in_window(transcript, 50, 60) == "all of it"
    assert text_in_window([(2.0, 2.0, "blink")], 1.0, 3.0) == "blink"
    with pytest.raises(ValueError, match="ends"):
        text_in_window(cues, 5, 1)


def test_lexicon_and_synth_compatibility(tmp_path):
    assert set(EMOTION_WORDS) == set(synth.EMOTIONS)
    assert all(EMOTION_WORDS[c] == list(LEXICON[c]) and len(EMOTION_WORDS[c]) == 8 for c in synth.EMOTIONS)
    # the old names still come from synth
    assert synth.LEXICON is LEXICON and synth.read_srt is read_srt and synth.write_srt is write_srt
    assert synth.format_srt_time(3723.0456) == format_srt_time(3723.0456) == "01:02:03,046"
    assert synth._parse_srt_time("01:02:03,046") == pytest.approx(3723.046)
    cues = [(0.0, 1.25, "first line"), (1.5, 2.0, "second\nline")]
    write_srt(tmp_path / "w.srt", cues)
    assert read_srt(tmp_path / "w.srt") == cues and read_subtitles(tmp_path / "w.srt") == cues


def test_synth_subtitles_read_back(tmp_path):
    cfg = synth.SynthConfig(num_classes=2, train_per_class=2, val_per_class=0, test_per_class=0, duration=(3.0, 4.0),
                            fps=4, size=(32, 32), difficulty="easy", seed=2)
    ann = synth.generate(tmp_path, cfg)
    import json

    db = json.loads(ann.read_text())["database"]
    found_own = 0
    for e in db.values():
        cues = read_subtitles(tmp_path / e["subtitles"])
        assert cues and all(0 <= c.start < c.end <= e["duration"] + 1e-3 and c.text for c in cues)
        assert cues == read_srt(tmp_path / e["subtitles"])
        words = set(re.findall(r"[a-z]+", text_in_window(cues, *e["episodes"][0]).lower()))
        found_own += bool(words & set(EMOTION_WORDS[e["annotations"]["label"]]))
    assert found_own >= len(db) // 2
