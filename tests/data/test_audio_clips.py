"""Audio-only samples (AudioClipLoader): any rate, channels and container; short, silent and bad files."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from affectkit.config import AudioSection, DataSection, InputSection
from affectkit.data.audio_clips import AudioClipLoader
from affectkit.data.clips import ClipDataset, collate_skip_none, make_loader
from affectkit.data.datasets import build_index
from affectkit.data.media_writer import write_video, write_wav
from affectkit.errors import ConfigError, MediaError

from .audio_fixtures import encode_audio, make_ravdess_folder, tone

SR = 16000
HOP = 256
FRAMES = 126  # (126 - 1) * 256 samples = 2.0 s at 16 kHz


def _input_cfg(kind="log_mel", **kw):
    return InputSection(audio=AudioSection(kind=kind, sample_rate=SR, n_mels=40, n_mfcc=20, n_fft=512,
                                           hop_length=HOP, num_frames=FRAMES, **kw))


def _bins(kind):
    return 40 if kind == "log_mel" else 20


def test_make_loader_picks_the_audio_loader_for_audio_only_models():
    assert isinstance(make_loader(_input_cfg(), ("audio",), train=False), AudioClipLoader)
    assert not isinstance(make_loader(_input_cfg(), ("video", "audio"), train=False), AudioClipLoader)
    with pytest.raises(ConfigError, match="input.audio.kind is 'none'"):
        make_loader(_input_cfg(kind="none"), ("audio",), train=False)


@pytest.mark.parametrize("kind", ["log_mel", "mfcc"])
@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_any_sample_rate_gives_the_same_features(tmp_path, kind, rate):
    loader = AudioClipLoader(_input_cfg(kind), train=False)
    ref = loader.load(str(_wav(tmp_path / "ref.wav", 3.0, SR, noise=0.0)))
    path = _wav(tmp_path / f"x{rate}.wav", 3.0, rate, noise=0.0)
    s = loader.load(str(path))
    assert s["audio"].shape == (FRAMES, _bins(kind)) and s["audio"].dtype == torch.float32
    assert s["fps"] == 0.0 and s["path"] == str(path) and s["duration"] == pytest.approx(3.0, abs=0.01)
    assert s["snippet_times"].shape == (1, 2) and s["snippet_times"].dtype == torch.float32
    assert s["snippet_times"].tolist()[0] == pytest.approx([0.5, 2.5], abs=1e-3)  # the centred 2 s window
    # the same sound recorded at another rate gives nearly the same features where it has energy
    if kind == "log_mel":
        loud = ref["audio"] > ref["audio"].max() - 30
        diff = (s["audio"] - ref["audio"])[loud].abs().median()
        assert float(diff) < 1.0, float(diff)  # dB


def _wav(path, seconds, rate, channels=1, seed=0, noise=0.02):
    wave = tone(seconds, rate, seed=seed, noise=noise)
    if channels == 2:
        wave = np.stack([wave, wave])
    write_wav(path, wave, rate)
    return path


def test_stereo_is_downmixed(tmp_path):
    loader = AudioClipLoader(_input_cfg(), train=False)
    mono = loader.load(str(_wav(tmp_path / "m.wav", 2.5, 44100)))["audio"]
    stereo = loader.load(str(_wav(tmp_path / "s.wav", 2.5, 44100, channels=2)))["audio"]
    assert stereo.shape == mono.shape and float((stereo - mono).abs().max()) < 0.05


def test_compressed_formats_and_a_videos_audio_track(tmp_path):
    loader = AudioClipLoader(_input_cfg(), train=False)
    files = [encode_audio(tmp_path / "a.mp3", np.stack([tone(2.5, 44100)] * 2), 44100, "mp3"),
             encode_audio(tmp_path / "a.flac", tone(2.5, 8000), 8000, "flac"),
             encode_audio(tmp_path / "a.m4a", tone(2.5, 48000), 48000, "aac", fmt="ipod"),
             encode_audio(tmp_path / "a.ogg", tone(2.5, 48000), 48000, "libopus", fmt="ogg")]
    frames = np.full((30, 32, 32, 3), 128, np.uint8)
    write_video(tmp_path / "v.mp4", frames, 12, tone(2.5, 22050), 22050)
    files.append(str(tmp_path / "v.mp4"))
    for f in files:
        loader.check(f)
        s = loader.load(f)
        assert s["audio"].shape == (FRAMES, 40) and torch.isfinite(s["audio"]).all(), f
        assert s["duration"] == pytest.approx(2.5, abs=0.1), f


def test_short_file_is_padded_with_silence_and_its_span_reported(tmp_path):
    path = _wav(tmp_path / "short.wav", 0.3, 22050)
    ev = AudioClipLoader(_input_cfg(), train=False).load(str(path))
    assert ev["audio"].shape == (FRAMES, 40) and torch.isfinite(ev["audio"]).all()
    assert ev["snippet_times"].tolist()[0] == pytest.approx([0.0, 0.3], abs=1e-3)
    energy = ev["audio"].mean(dim=1)
    assert float(energy[FRAMES // 2]) > float(energy[0]) + 20  # centred: sound in the middle, floor at the edges
    one = _wav(tmp_path / "one.wav", 1 / 16000, 16000)  # a single sample
    assert AudioClipLoader(_input_cfg(), train=True).load(str(one))["audio"].shape == (FRAMES, 40)


def test_training_crops_at_random_evaluation_is_deterministic(tmp_path):
    path = str(_wav(tmp_path / "long.wav", 5.0, SR, seed=3))
    ev = AudioClipLoader(_input_cfg(), train=False)
    assert torch.equal(ev.load(path)["audio"], ev.load(path)["audio"])
    tr = AudioClipLoader(_input_cfg(), train=True)
    starts = {float(tr.load(path, rng=np.random.default_rng(i))["snippet_times"][0, 0]) for i in range(8)}
    assert len(starts) > 4 and all(0.0 <= s <= 3.0 for s in starts)
    a = tr.load(path, rng=np.random.default_rng(1))["audio"]
    assert torch.equal(a, tr.load(path, rng=np.random.default_rng(1))["audio"])  # the rng decides


@pytest.mark.parametrize("kind", ["log_mel", "mfcc"])
def test_silent_file_gives_finite_features(tmp_path, kind):
    path = tmp_path / "silent.wav"
    write_wav(path, np.zeros(SR * 2, np.float32), SR)
    s = AudioClipLoader(_input_cfg(kind), train=True).load(str(path), rng=np.random.default_rng(0))
    assert torch.isfinite(s["audio"]).all()
    assert float(s["audio"].std(dim=0).max()) == pytest.approx(0.0, abs=1e-4)  # constant over time


def test_bad_files_raise_media_errors_naming_the_file(tmp_path):
    loader = AudioClipLoader(_input_cfg(), train=False)
    header_only = _wav(tmp_path / "header.wav", 1.0, SR)
    with open(header_only, "r+b") as fh:
        fh.truncate(44)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio at all\n" * 40)
    write_video(tmp_path / "mute.mp4", np.full((12, 32, 32, 3), 90, np.uint8), 12)  # no audio stream
    cases = {"header.wav": "no sample could be decoded", "empty.wav": "empty", "text.wav": "not a decodable",
             "mute.mp4": "no audio stream", "missing.wav": "not found"}
    for name, words in cases.items():
        path = str(tmp_path / name)
        for call in (lambda: loader.check(path), lambda: loader.load(path)):
            with pytest.raises(MediaError) as err:
                call()
            assert path in str(err.value) and words in str(err.value), str(err.value)


def test_clip_dataset_with_the_audio_loader_skips_bad_files(tmp_path):
    make_ravdess_folder(tmp_path, actors=(1, 2), emotions=(1, 5))
    (tmp_path / "Actor_01" / "03-01-03-01-01-01-01.wav").write_bytes(b"")  # empty
    (tmp_path / "Actor_01" / "03-01-04-01-01-01-01.wav").write_text("garbage\n" * 30)
    write_wav(tmp_path / "Actor_02" / "03-01-06-01-01-01-02.wav", np.zeros(8000, np.float32), SR)  # silent: kept
    index = build_index(DataSection(format="audio", path=str(tmp_path), group_by="actor", splits={"test": [2]}))
    ds = ClipDataset(index.split("train"), _input_cfg(), train=True, input_keys=("audio",))
    assert isinstance(ds.loader, AudioClipLoader) and len(ds) == 4
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in ds.problems) == ["03-01-03-01-01-01-01.wav", "03-01-04-01-01-01-01.wav"]
    test = ClipDataset(index.split("test"), _input_cfg(), train=False, input_keys=("audio",))
    assert len(test) == 5  # the silent recording is accepted
    batch = collate_skip_none([test[i] for i in range(len(test))])
    assert batch["audio"].shape == (5, FRAMES, 40) and batch["snippet_times"].shape == (5, 1, 2)
    assert batch["label"].tolist() == [r.label for r in test.records] and torch.isfinite(batch["audio"]).all()
    # a file that breaks after the up-front check is skipped at load time (None), not raised
    unchecked = ClipDataset(index.split("train"), _input_cfg(), train=False, input_keys=("audio",), check=False)
    bad = [i for i, r in enumerate(unchecked.records) if r.video_id.startswith("03-01-03")][0]
    assert unchecked[bad] is None
    strict = ClipDataset(index.split("train"), _input_cfg(), train=False, input_keys=("audio",), check=False, skip_bad=False)
    with pytest.raises(MediaError, match="03-01-03-01-01-01-01.wav"):
        strict[bad]


def test_speed_perturbation_in_training_only(tmp_path):
    from affectkit.config import AugmentSection

    sr = SR
    t = np.arange(3 * sr) / sr
    write_wav(tmp_path / "beep.wav", (0.3 * np.sin(2 * np.pi * 2000.0 * t)).astype(np.float32), sr)
    path = str(tmp_path / "beep.wav")
    slow = AugmentSection(speed=[0.5, 0.5])  # half speed: an octave lower, twice as long
    plain = AudioClipLoader(_input_cfg(), train=True).load(path, rng=np.random.default_rng(0))
    slowed = AudioClipLoader(_input_cfg(), train=True, augment=slow).load(path, rng=np.random.default_rng(0))
    peak = lambda s: int(s["audio"].mean(dim=0).argmax())  # noqa: E731  (the loudest mel bin)
    assert peak(slowed) < peak(plain) - 4
    start, end = slowed["snippet_times"][0].tolist()
    assert end - start == pytest.approx(1.0, abs=0.02)  # the 2 s window covers 1 s of the original recording
    evaluated = AudioClipLoader(_input_cfg(), train=False, augment=slow).load(path)
    assert peak(evaluated) == peak(plain)  # never in evaluation
    with pytest.raises(ConfigError, match="train.augment.speed"):
        AugmentSection(speed=[1.2, 0.8])
