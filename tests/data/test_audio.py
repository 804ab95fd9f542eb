"""Tests of affectkit.data.audio: decoding any media file, MFCC / log-mel parity with librosa."""
from __future__ import annotations

import glob
import os
import warnings

import numpy as np
import pytest

from affectkit.data import audio as audio_mod
from affectkit.data.audio import (
    AudioFeatureSpec,
    audio_features,
    fit_length,
    load_audio,
    log_mel,
    mfcc,
    resample_audio,
    segment_audio_features,
)
from affectkit.data.media_writer import write_video, write_wav
from affectkit.errors import MediaError

from ..conftest import SHARED
from .media_fixtures import make_index_video, remux, truncate

# librosa's audio backends import modules deprecated in Python 3.11+
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SPEECH = sorted(glob.glob(str(SHARED / "ravdess_dev" / "Actor_01" / "*.wav")))


def sine(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def chirp_noise(sr: int = 44100, seconds: float = 3.3, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    y = 0.5 * np.sin(2 * np.pi * (100 * t + 2000 * t ** 2)) + 0.05 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def assert_media_error(excinfo, path, *words):
    message = str(excinfo.value)
    assert os.fspath(path) in message
    for word in words:
        assert word in message


def librosa_mfcc(y, sr, **kw):
    librosa = pytest.importorskip("librosa")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_fft larger than the input, empty mel filters
        return librosa.feature.mfcc(y=y, sr=sr, **kw).T


# ---------------------------------------------------------------------------------------------
# loading


@pytest.mark.parametrize("source_sr", [8000, 16000, 48000])
def test_resampling_from_any_rate(tmp_path, source_sr):
    path = tmp_path / f"tone_{source_sr}.wav"
    write_wav(path, sine(440.0, 1.0, source_sr), source_sr)
    wave = load_audio(path, 22050)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(wave.size - 22050) <= 64
    expected = sine(440.0, wave.size / 22050, 22050)
    # same tone, same phase (skip the resampler's edges)
    assert np.abs(wave[300:-300] - expected[300:wave.size - 300]).max() < 0.01


def test_stereo_is_averaged(tmp_path):
    tone = sine(440.0, 1.0, 16000)
    path = tmp_path / "stereo.wav"
    write_wav(path, np.stack([tone, tone]), 16000)
    wave = load_audio(path, 16000)
    assert wave.shape == (16000,)
    assert np.abs(wave - tone).max() < 1e-3  # (L + R) / 2, like librosa's mono
    left_only = tmp_path / "left.wav"
    write_wav(left_only, np.stack([tone, np.zeros_like(tone)]), 16000)
    assert np.abs(load_audio(left_only, 16000) - tone / 2).max() < 1e-3
    both = load_audio(path, 8000, mono=False)
    assert both.shape[0] == 2 and abs(both.shape[1] - 8000) <= 32


def test_very_short_file(tmp_path):
    path = tmp_path / "short.wav"
    write_wav(path, sine(300.0, 0.1, 16000), 16000)
    wave = load_audio(path, 44100)
    assert abs(wave.size - 4410) <= 32
    feats = mfcc(wave, 44100)
    assert feats.shape == (1 + wave.size // 512, 32)
    assert np.isfinite(feats).all()


def test_silence(tmp_path):
    path = tmp_path / "silence.wav"
    write_wav(path, np.zeros(16000, dtype=np.float32), 16000)
    wave = load_audio(path, 44100)
    assert np.abs(wave).max() == 0.0
    for feats in (mfcc(wave, 44100), log_mel(wave, 44100), audio_features(path)):
        assert np.isfinite(feats).all()


def test_audio_of_an_mp4_and_max_seconds(tmp_path):
    path = make_index_video(tmp_path / "clip.mp4", 50, fps=25, audio_seconds=2.0, sample_rate=22050)
    wave = load_audio(path, 16000)
    assert abs(wave.size - 32000) < 1600  # AAC pads a little
    assert 0.2 < np.abs(wave).max() < 0.4  # the 0.3 amplitude tone survived the codec
    short = load_audio(path, 16000, max_seconds=0.5)
    assert short.size == 8000
    assert load_audio(path, 16000, max_seconds=0).size == 0


def test_mp4_audio_at_48k(tmp_path):
    frames = np.full((10, 32, 32, 3), 128, dtype=np.uint8)
    path = tmp_path / "clip48.mp4"
    write_video(path, frames, 25, audio=sine(1000.0, 0.4, 48000), sample_rate=48000)
    wave = load_audio(path, 44100)
    assert abs(wave.size - 0.4 * 44100) < 2048


def test_no_audio_stream(tmp_path):
    path = make_index_video(tmp_path / "silent_movie.mp4", 10, fps=25)
    with pytest.raises(MediaError) as excinfo:
        load_audio(path)
    assert_media_error(excinfo, path, "has no audio stream")
    with pytest.raises(MediaError):
        audio_features(path)


def test_missing_empty_and_not_media(tmp_path):
    missing = tmp_path / "missing.wav"
    with pytest.raises(MediaError) as excinfo:
        load_audio(missing)
    assert_media_error(excinfo, missing, "file not found")
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    with pytest.raises(MediaError) as excinfo:
        load_audio(empty)
    assert_media_error(excinfo, empty, "file is empty (0 bytes)")
    text = tmp_path / "readme.mp4"
    text.write_text("hello, this is text and not audio\n" * 20)
    with pytest.raises(MediaError) as excinfo:
        load_audio(text)
    assert_media_error(excinfo, text)


def test_truncated_files(tmp_path):
    wav = tmp_path / "cut.wav"
    write_wav(wav, sine(440.0, 1.0, 16000), 16000)
    truncate(wav, 0.4)
    wave = load_audio(wav, 16000)  # what is there decodes
    assert 0 < wave.size < 16000
    mp4 = make_index_video(tmp_path / "cut.mp4", 50, fps=25, audio_seconds=2.0)
    truncate(mp4, 0.4)
    with pytest.raises(MediaError) as excinfo:  # our writer puts the moov atom at the end: the cut file does not open
        load_audio(mp4, 16000)
    assert_media_error(excinfo, mp4, "not a decodable media file")


def test_header_only_wav_raises(tmp_path):
    wav = tmp_path / "header.wav"
    write_wav(wav, sine(440.0, 1.0, 16000), 16000)
    with open(wav, "r+b") as fh:
        fh.truncate(44)  # just the RIFF header
    with pytest.raises(MediaError) as excinfo:
        load_audio(wav)
    assert_media_error(excinfo, wav)


def test_resample_audio_matches_tone():
    out = resample_audio(sine(440.0, 1.0, 48000), 48000, 16000)
    assert abs(out.size - 16000) <= 32
    assert np.abs(out[200:-200] - sine(440.0, 1.0, 16000)[200:out.size - 200]).max() < 0.01
    same = sine(440.0, 0.1, 16000)
    assert np.array_equal(resample_audio(same, 16000, 16000), same)


# ---------------------------------------------------------------------------------------------
# features vs librosa


def assert_parity(ours: np.ndarray, ref: np.ndarray):
    assert ours.shape == ref.shape
    assert ours.dtype == np.float32
    err = np.abs(ours - ref).max()
    span = ref.max() - ref.min()
    # measured: ~1.5e-3 absolute on a ~1100 dB-unit range (float32 rounding on both sides)
    assert err < 1e-2, err
    assert err / max(span, 1.0) < 1e-4, err / span


def test_mfcc_matches_librosa_on_chirp_and_noise():
    y = chirp_noise()
    assert_parity(mfcc(y, 44100, n_mfcc=32), librosa_mfcc(y, 44100, n_mfcc=32))
    assert_parity(mfcc(y, 22050, n_mfcc=40, n_mels=64), librosa_mfcc(y, 22050, n_mfcc=40, n_mels=64))


@pytest.mark.skipif(not SPEECH, reason="RAVDESS dev speech files not available")
def test_mfcc_matches_librosa_on_speech():
    librosa = pytest.importorskip("librosa")
    y, sr = librosa.load(SPEECH[0], sr=None)
    assert_parity(mfcc(y, sr, n_mfcc=32), librosa_mfcc(y, sr, n_mfcc=32))
    # the kit's own path: decode + resample to 44.1 kHz with PyAV, then MFCC
    wave = load_audio(SPEECH[0], 44100)
    assert_parity(mfcc(wave, 44100), librosa_mfcc(wave, 44100, n_mfcc=32))


def test_log_mel_matches_librosa():
    librosa = pytest.importorskip("librosa")
    y = chirp_noise(seconds=1.5)
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=44100)).T
    ours = log_mel(y, 44100)
    assert ours.shape == ref.shape == (1 + y.size // 512, 128)
    assert np.abs(ours - ref).max() < 1e-2


def test_mfcc_silence_and_tiny_inputs():
    for y in (np.zeros(44100, np.float32), np.zeros(300, np.float32)):
        feats = mfcc(y, 44100)
        assert np.isfinite(feats).all()
        assert_parity(feats, librosa_mfcc(y, 44100, n_mfcc=32))
    short = chirp_noise()[:300]  # shorter than n_fft
    assert_parity(mfcc(short, 44100), librosa_mfcc(short, 44100, n_mfcc=32))
    assert mfcc(np.zeros(0, np.float32), 44100).shape == (1, 32)
    with pytest.raises(ValueError):
        mfcc(np.zeros((2, 100)), 44100)
    with pytest.raises(ValueError):
        mfcc(np.zeros(100), 44100, n_mfcc=200)


# ---------------------------------------------------------------------------------------------
# fixed-length features


def test_fit_length_tiles_and_truncates():
    feats = np.arange(10, dtype=np.float32).reshape(5, 2)
    tiled = fit_length(feats, 12)
    assert tiled.shape == (12, 2)
    assert tiled[:, 0].tolist() == [0, 2, 4, 6, 8, 0, 2, 4, 6, 8, 0, 2]
    assert np.array_equal(fit_length(feats, 3), feats[:3])
    assert np.array_equal(fit_length(feats, 5), feats)
    empty = fit_length(np.zeros((0, 7), np.float32), 4)
    assert empty.shape == (4, 7) and not empty.any()
    with pytest.raises(ValueError):
        fit_length(np.zeros(5), 3)


def test_audio_features_vaanet_preset(tmp_path):
    spec = AudioFeatureSpec()
    assert (spec.kind, spec.sample_rate, spec.n_mfcc, spec.num_frames) == ("mfcc", 44100, 32, 4096)
    path = tmp_path / "speech_like.wav"
    y = chirp_noise(sr=16000, seconds=2.0)
    write_wav(path, y, 16000)
    feats = audio_features(path, spec)
    assert feats.shape == (4096, 32) and feats.dtype == np.float32
    # a waveform gives the same features as the file it came from
    wave = load_audio(path, 44100)
    assert np.allclose(audio_features(wave, spec), feats, atol=1e-3)
    # and a waveform at another rate is resampled first
    from_16k = audio_features(load_audio(path, 16000), spec, sample_rate=16000)
    assert from_16k.shape == (4096, 32)
    assert np.abs(from_16k - feats).max() < 5.0


def test_audio_features_reads_only_what_it_needs(tmp_path, monkeypatch):
    spec = AudioFeatureSpec(kind="log_mel", sample_rate=16000, n_mels=40, n_fft=512,
                            hop_length=160, num_frames=50)
    path = tmp_path / "long.wav"
    write_wav(path, chirp_noise(sr=16000, seconds=6.0), 16000)
    calls = []
    real = audio_mod.load_audio

    def spy(*args, **kwargs):
        calls.append(kwargs.get("max_seconds"))
        return real(*args, **kwargs)

    monkeypatch.setattr(audio_mod, "load_audio", spy)
    feats = audio_features(path, spec)
    assert feats.shape == (50, 40)
    assert calls and calls[0] is not None and calls[0] < 1.5  # 50 * 10 ms + margin, not 6 s
    # the first frames equal those of the whole file (the loudness is uniform)
    full = log_mel(real(path, 16000), 16000, n_mels=40, n_fft=512, hop_length=160)
    assert np.abs(full[:50] - feats).max() < 1e-3


def _tone_per_second(freqs, sr=16000):
    t = np.arange(sr) / sr
    return np.concatenate([0.5 * np.sin(2 * np.pi * f * t) for f in freqs]).astype(np.float32)


def test_segment_audio_windows_lie_in_their_segments():
    """4 s, second j a pure tone f_j; 4 windows of 10 frames (10 ms hop): window j is read inside segment j
    (its loudest mel bin is f_j's), centred in evaluation (frames 45..54 of segment 0), and at random
    offsets that stay inside the segment in training."""
    freqs = [300.0, 1200.0, 2500.0, 5000.0]
    spec = AudioFeatureSpec(kind="log_mel", sample_rate=16000, n_mels=40, n_fft=400, hop_length=160, num_frames=40)
    wave = _tone_per_second(freqs)
    segs = [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0)]
    full = log_mel(wave, 16000, n_mels=40, n_fft=400, hop_length=160)
    bins = [int(full[50 + 100 * j].argmax()) for j in range(4)]
    assert len(set(bins)) == 4
    ev = segment_audio_features(wave, spec, segs)
    assert ev.shape == (40, 40) and ev.dtype == np.float32
    assert [int(ev[10 * j:10 * j + 10].mean(0).argmax()) for j in range(4)] == bins
    assert np.allclose(ev[:10], full[45:55])  # centred: (100 - 10) // 2 = 45
    rng = np.random.default_rng(0)
    for _ in range(5):
        tr = segment_audio_features(wave, spec, segs, train=True, rng=rng)
        for j in range(4):
            win = tr[10 * j:10 * j + 10]
            starts = [o for o in range(100 * j, 100 * j + 91) if np.allclose(full[o:o + 10], win)]
            assert starts, f"window {j} is not a 10-frame run of segment {j}"
    # the windows follow the segments, not the start of the track: two later segments, in order
    late = segment_audio_features(wave, AudioFeatureSpec(kind="log_mel", sample_rate=16000, n_mels=40, n_fft=400,
                                                         hop_length=160, num_frames=20), [(2.0, 3.0), (3.0, 4.0)])
    assert [int(late[:10].mean(0).argmax()), int(late[10:].mean(0).argmax())] == bins[2:]


def test_segment_audio_short_segments_and_short_tracks():
    spec = AudioFeatureSpec(kind="log_mel", sample_rate=16000, n_mels=40, n_fft=400, hop_length=160, num_frames=40)
    wave = _tone_per_second([300.0, 1200.0])
    full = log_mel(wave, 16000, n_mels=40, n_fft=400, hop_length=160)  # 201 frames
    # a segment shorter than a window: the window is centred on it (frames 100 + (4 - 20) // 2 = 92 .. 111)
    short = segment_audio_features(wave, AudioFeatureSpec(kind="log_mel", sample_rate=16000, n_mels=40, n_fft=400,
                                                          hop_length=160, num_frames=20), [(1.0, 1.04)])
    assert np.allclose(short, full[92:112])
    # a segment at the end of the track: clamped to the last full window
    end = segment_audio_features(wave, AudioFeatureSpec(kind="log_mel", sample_rate=16000, n_mels=40, n_fft=400,
                                                        hop_length=160, num_frames=20), [(1.99, 2.0)])
    assert np.allclose(end, full[-20:])
    # a track shorter than one window: tiled from its start (VAANet's / MART's rule)
    tiny = np.zeros(800, np.float32)
    assert segment_audio_features(tiny, spec, [(0.0, 0.05)] * 4).shape == (40, 40)
    with pytest.raises(ValueError, match="3 segments cannot share 40 frames"):
        segment_audio_features(wave, spec, [(0.0, 0.5), (0.5, 1.0), (1.0, 2.0)])


def test_audio_features_rejects_unknown_kind():
    with pytest.raises(ValueError):
        audio_features(np.zeros(1000, np.float32), AudioFeatureSpec(kind="wav2vec"))


def test_module_exports():
    for name in audio_mod.__all__:
        assert hasattr(audio_mod, name)


def test_speech_file_in_other_containers(tmp_path):
    """Any container: the speech wav copied into mkv, or re-encoded to flac, decodes the same."""
    if not SPEECH:
        pytest.skip("RAVDESS dev speech files not available")
    import av

    src = SPEECH[0]
    mkv = remux(src, tmp_path / "speech.mkv", "matroska")
    flac = tmp_path / "speech.flac"
    with av.open(src) as inp, av.open(os.fspath(flac), "w") as out:
        rate = inp.streams.audio[0].codec_context.sample_rate
        stream = out.add_stream("flac", rate=rate)
        stream.layout = "mono"
        done = 0
        for frame in inp.decode(audio=0):
            frame.pts = done
            done += frame.samples
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    a = load_audio(src, 16000)
    for other in (mkv, flac):
        b = load_audio(other, 16000)
        assert a.size == b.size
        assert np.abs(a - b).max() < 1e-4
