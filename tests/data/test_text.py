"""Subtitles and transcripts: SRT / WebVTT / plain text reading, bad files, cues in a time window, and the
synthetic set's subtitles read back."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from affectkit.data import synth
from affectkit.data.text import (EMOTION_WORDS, LEXICON, RecognisedCue, SubtitleCue, SubtitleError, TimedWord, cue_words,
                                 format_srt_time, read_embedded_subtitles, read_srt, read_subtitles, text_in_window,
                                 words_in_window, write_srt)
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


# ---------------------------------------------------------------------------------------------
# alignment at window edges (hand-made numbers)
def test_words_spread_over_their_cue_by_length():
    # "aa" and "bbbbb" weigh 3 and 6 (characters + the space after): 1/3 and 2/3 of the 3 s cue
    assert cue_words(SubtitleCue(1.0, 4.0, "aa bbbbb")) == [TimedWord(1.0, 2.0, "aa"), TimedWord(2.0, 4.0, "bbbbb")]
    # recognised words keep their own times
    asr = RecognisedCue(0.0, 9.0, "x y", (TimedWord(0.5, 0.7, "x"), TimedWord(8.0, 8.5, "y")))
    assert cue_words(asr) == [TimedWord(0.5, 0.7, "x"), TimedWord(8.0, 8.5, "y")]
    assert asr == (0.0, 9.0, "x y") and tuple(asr) == (0.0, 9.0, "x y")  # still a (start, end, text) cue
    assert words_in_window([asr], 7.0, 9.0) == [TimedWord(8.0, 8.5, "y")]
    assert cue_words(SubtitleCue(None, None, "all of it")) == [TimedWord(None, None, w) for w in ("all", "of", "it")]


def test_a_word_spanning_two_windows_belongs_to_both():
    cues = [SubtitleCue(0.0, 3.0, "one two three")]  # 4 + 4 + 6 = 14 parts: one [0, 6/7), two [6/7, 12/7), three [12/7, 3)
    windows = [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    got = [text_in_window(cues, a, b, align="word") for a, b in windows]
    assert got == ["one two", "two three", "three"]
    # cue alignment gives the whole cue to every window it touches
    assert [text_in_window(cues, a, b) for a, b in windows] == ["one two three"] * 3
    # a word ending exactly at a window's start does not reach into it (half-open spans)
    asr = [RecognisedCue(0.0, 2.0, "a b", (TimedWord(0.0, 1.0, "a"), TimedWord(1.0, 2.0, "b")))]
    assert text_in_window(asr, 1.0, 2.0, align="word") == "b"
    assert text_in_window(asr, 0.5, 1.5, align="word") == "a b"


def test_an_empty_window_has_empty_text():
    cues = [SubtitleCue(0.0, 1.0, "early words"), SubtitleCue(5.0, 6.0, "late words")]
    for align in ("cue", "word"):
        assert text_in_window(cues, 2.0, 4.0, align=align) == ""
        assert words_in_window(cues, 2.0, 4.0) == []
    # a gap between the words of one recognised cue: a window inside the gap is empty in word mode only
    asr = [RecognisedCue(0.0, 6.0, "hi bye", (TimedWord(0.0, 0.5, "hi"), TimedWord(5.5, 6.0, "bye")))]
    assert text_in_window(asr, 2.0, 4.0, align="word") == ""
    assert text_in_window(asr, 2.0, 4.0, align="cue") == "hi bye"


def test_overlapping_cues_keep_cue_order():
    cues = [SubtitleCue(0.0, 4.0, "speaker one talks"), SubtitleCue(1.0, 2.0, "two interrupts")]
    # cue mode: both cues, in cue order
    assert text_in_window(cues, 1.5, 1.8) == "speaker one talks two interrupts"
    # word mode: the words of each cue that overlap the window, cue by cue. Weights "speaker" 8, "one" 4,
    # "talks" 6 over 4 s: speaker [0, 16/9), one [16/9, 8/3), talks [8/3, 4); "two" 4, "interrupts" 11
    # over [1, 2]: two [1, 19/15), interrupts [19/15, 2)
    words = words_in_window(cues, 1.5, 1.8)
    assert [w.word for w in words] == ["speaker", "one", "interrupts"]
    assert words[2].start == pytest.approx(19 / 15)
    assert words[0].end == pytest.approx(16 / 9) and words[1].start == pytest.approx(16 / 9)
    with pytest.raises(ValueError, match="align"):
        text_in_window(cues, 0, 1, align="sentence")


# ---------------------------------------------------------------------------------------------
# subtitle streams inside a container
def _video_with_subtitle_stream(tmp_path: Path, cues, *, language: str | None = "eng") -> Path:
    """An mkv with a tiny video stream and the SRT of ``cues`` muxed in as a subtitle stream (no encoder
    needed: the SRT demuxer's packets are copied)."""
    import av
    import numpy as np

    plain = tmp_path / "plain.mp4"
    with av.open(str(plain), "w") as out:
        s = out.add_stream("mpeg4", rate=10)
        s.width = s.height = 32
        s.pix_fmt = "yuv420p"
        for i in range(30):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 8, np.uint8), format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    srt = tmp_path / "cues.srt"
    write_srt(srt, cues)
    path = tmp_path / "with_subs.mkv"
    with av.open(str(plain)) as vin, av.open(str(srt)) as sin, av.open(str(path), "w", format="matroska") as out:
        vs = out.add_stream_from_template(vin.streams.video[0])
        ss = out.add_stream_from_template(sin.streams[0])
        if language:
            ss.metadata["language"] = language
        for src, dst in ((vin, vs), (sin, ss)):
            for p in src.demux(src.streams[0]):
                if p.dts is None:
                    continue
                p.stream = dst
                out.mux(p)
    return path


def test_embedded_subtitle_stream_is_read(tmp_path):
    path = _video_with_subtitle_stream(tmp_path, [(0.5, 1.5, "<i>hello</i> there"), (2.0, 3.0, "so happy\nreally")])
    cues = read_embedded_subtitles(path)
    assert cues == [SubtitleCue(0.5, 1.5, "hello there"), SubtitleCue(2.0, 3.0, "so happy\nreally")]
    assert text_in_window(cues, 1.9, 2.5) == "so happy really"
    # a file without a subtitle stream: None (the caller goes on to ASR or empty text)
    assert read_embedded_subtitles(tmp_path / "plain.mp4") is None
    with pytest.raises(MediaError, match="stream 3"):
        read_embedded_subtitles(path, stream=3)


def test_embedded_subtitles_of_a_broken_file_name_it(tmp_path):
    bad = write(tmp_path / "broken.mkv", "not a container at all")
    with pytest.raises(MediaError) as err:
        read_embedded_subtitles(bad)
    assert "broken.mkv" in str(err.value)


def test_text_modality_reads_the_embedded_stream_and_aligns_by_word(tmp_path):
    import torch

    from affectkit.config import InputSection, TextSection
    from affectkit.data.clips import SampleSource
    from affectkit.data.modalities import TextModality

    path = _video_with_subtitle_stream(tmp_path, [(0.0, 2.0, "good news")])
    for align, want in (("cue", ["good news", "good news"]), ("word", ["good", "news"])):
        mod = TextModality(InputSection(text=TextSection(align=align, asr="none")))
        sample = {"segment_times": torch.tensor([[0.0, 1.0], [1.0, 2.0]])}
        mod.load(SampleSource(path=str(path)), sample, None, {})
        assert sample["text"] == want and sample["text_source"] == "embedded"
    off = TextModality(InputSection(text=TextSection(embedded=False, asr="none")))
    sample = {"segment_times": torch.tensor([[0.0, 1.0]])}
    off.load(SampleSource(path=str(path)), sample, None, {})
    assert sample["text"] == [""] and sample["text_source"] == "none"
