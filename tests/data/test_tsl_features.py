"""TSL-Net's inputs from video files (affectkit.data.tsl_features) and the streamed audio they use
(affectkit.data.audio.iter_audio / stream_log_mel): alignment, bounded-memory chunking, the features cache
(resumable, atomic, broken videos reported) and the ``affectkit features`` command's weights rule."""
import json

import numpy as np
import pytest

from affectkit.cli import main as cli_main
from affectkit.data.audio import iter_audio, load_audio, log_mel, stream_log_mel
from affectkit.data.media_writer import write_video
from affectkit.data.tsl_features import (ExtractorSpec, TSLFeatureExtractor, cache_features, dataset_videos,
                                         file_sha256, write_random_i3d)
from affectkit.errors import AffectkitError


def _video(path, frames: int, fps: float = 16.0, size: int = 40, seed: int = 0, audio: bool = True):
    rng = np.random.default_rng(seed)
    pix = rng.integers(0, 256, size=(frames, size, size + 8, 3), dtype=np.uint8)
    sr = 16000
    wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(frames / fps * sr)) / sr)).astype(np.float32) if audio else None
    write_video(path, pix, fps, wave, sr)
    return str(path)


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    d = tmp_path_factory.mktemp("i3d")
    w = write_random_i3d(d / "i3d.pt", width=1 / 16, seed=0)
    return ExtractorSpec(i3d_weights=str(w), i3d_sha256=file_sha256(w), i3d_width=1 / 16, random_init=True,
                         feature_dim=64, size=64, batch_steps=2)


def test_stream_log_mel_equals_log_mel_for_any_chunking():
    rng = np.random.default_rng(1)
    for n in (0, 700, 2048, 37_001):
        wave = (rng.standard_normal(n) * np.linspace(0.01, 1, n)).astype(np.float32)
        whole = log_mel(wave, 32768, n_mels=60, n_fft=2048, hop_length=1024)
        pieces = np.split(wave, np.sort(rng.integers(0, max(n, 1), size=9)))
        streamed = stream_log_mel(pieces, 32768, n_mels=60, n_fft=2048, hop_length=1024, block_frames=4)
        assert streamed.shape == whole.shape == (1 + n // 1024, 60)
        assert np.abs(streamed - whole).max() < 1e-3  # the top_db floor is global, as in one piece


def test_iter_audio_chunks_concatenate_to_load_audio(tmp_path):
    path = _video(tmp_path / "a.mp4", 24)
    chunks = list(iter_audio(path, 32768))
    assert len(chunks) > 1 and all(c.ndim == 1 for c in chunks)
    assert np.array_equal(np.concatenate(chunks), load_audio(path, 32768))
    assert sum(len(c) for c in iter_audio(path, 8000, max_seconds=0.5)) == 4000


def test_features_are_aligned_one_step_per_16_frames(tmp_path, spec):
    path = _video(tmp_path / "v.mp4", 40, fps=16.0)
    ex = TSLFeatureExtractor(spec)
    rgb, mel, info = ex.extract(path)
    assert info["num_frames"] == 40 and info["fps"] == pytest.approx(16.0)
    assert rgb.shape == (3, 64) and rgb.dtype == np.float32  # ceil(40 / 16): the last chunk zero-padded
    # sr = 2 x hop x fps = 32768 Hz: 2 mel frames per video frame, 32 per 16-frame step (+1 centred frame, +AAC tail)
    assert spec.sample_rate(16.0) == 32768
    assert mel.shape[1] == 60 and 81 <= mel.shape[0] <= 85
    assert min(len(rgb), len(mel) // 32) == 2  # the loader's T: only complete audio steps
    # the streamed path equals the one-shot log-mel of the whole track at that rate
    whole = log_mel(load_audio(path, 32768), 32768, n_mels=60, n_fft=2048, hop_length=1024)
    assert mel.shape == whole.shape and np.abs(mel - whole).max() < 1e-3


def test_extractor_memory_is_bounded_by_fixed_size_chunks(tmp_path, spec, monkeypatch):
    """However long the video, frames are decoded batch_steps x 16 at a time, and the chunking does not
    change the features."""
    from affectkit.data import video as video_mod

    reads = []
    real = video_mod.VideoReader.read_frames

    def spy(self, indices, size=None):
        reads.append(len(list(indices)))
        return real(self, indices, size=size)

    monkeypatch.setattr(video_mod.VideoReader, "read_frames", spy)
    ex = TSLFeatureExtractor(spec)  # batch_steps 2: at most 32 frames in memory
    short = ex.rgb(_video(tmp_path / "short.mp4", 40, size=24))
    n_short = len(reads)
    long = ex.rgb(_video(tmp_path / "long.mp4", 200, size=24))
    assert max(reads) == 32 and ex.max_frames_per_read == 32
    assert len(reads) - n_short == 7  # ceil(ceil(200 / 16) / 2) reads of <= 32 frames for the long video
    assert short.shape == (3, 64) and long.shape == (13, 64)
    one = TSLFeatureExtractor(ExtractorSpec(**{**spec.to_dict(), "batch_steps": 1}))
    assert np.allclose(one.rgb(str(tmp_path / "long.mp4")), long, atol=1e-4)
    assert max(reads[-13:]) == 16


def test_cache_is_resumable_atomic_and_reports_broken_videos(tmp_path, spec):
    vids = tmp_path / "videos"
    vids.mkdir()
    for i in range(2):
        _video(vids / f"v{i}.mp4", 20 + 8 * i, seed=i)  # 20 and 28 frames: 2 steps each
    (vids / "broken.mp4").write_bytes(b"this is no video")
    mute = _video(vids / "mute.mp4", 20, audio=False)
    videos, problems = dataset_videos(vids)
    assert problems == [] and [v[0] for v in videos] == ["broken", "mute", "v0", "v1"]
    out = tmp_path / "feat"
    rep = cache_features(videos, out, spec)
    assert rep["done"] == 2 and rep["already_done"] == 0
    failed = {f["video_id"]: f["problem"] for f in rep["failed"]}
    assert set(failed) == {"broken", "mute"}
    assert "broken.mp4" in failed["broken"] and "has no audio stream" in failed["mute"] and mute in failed["mute"]
    assert np.load(out / "rgb" / "v1.npy").shape == (2, 64) and np.load(out / "logmfcc" / "v1.npy").shape[1] == 60
    assert not list(out.rglob(".*tmp*"))  # no temporary files left
    assert json.loads((out / "extractor.json").read_text())["i3d_sha256"] == spec.i3d_sha256
    stamp = (out / "rgb" / "v0.npy").stat().st_mtime_ns

    (out / "logmfcc" / "v1.npy").write_bytes(b"cut off")  # an interrupted write of an older tool
    rep2 = cache_features(videos, out, spec, allow_silent_audio=True)
    assert rep2["already_done"] == 1 and rep2["done"] == 2  # v1 redone, mute now with silence; v0 skipped
    assert (out / "rgb" / "v0.npy").stat().st_mtime_ns == stamp
    assert [f["video_id"] for f in rep2["failed"]] == ["broken"]
    assert np.all(np.load(out / "logmfcc" / "mute.npy") == -100.0)

    other = ExtractorSpec(**{**spec.to_dict(), "i3d_width": 0.125, "feature_dim": 128, "i3d_sha256": "x" * 64})
    with pytest.raises(AffectkitError, match="features of another extractor"):
        cache_features(videos, out, other)


def test_features_command_needs_weights_or_an_explicit_random_init(tmp_path, capsys):
    vids = tmp_path / "videos"
    vids.mkdir()
    _video(vids / "a.mp4", 20)
    assert cli_main(["features", str(vids), "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "--i3d-weights PATH" in err and "--random-init" in err
    (tmp_path / "w.pt").write_bytes(b"junk")
    assert cli_main(["features", str(vids), "--out", str(tmp_path / "f"), "--i3d-weights", str(tmp_path / "w.pt")]) == 2
    assert "w.pt: not a readable torch weights file" in capsys.readouterr().err

    code = cli_main(["features", str(vids), "--out", str(tmp_path / "f"), "--random-init", "--i3d-width", "0.0625"])
    captured = capsys.readouterr()
    assert code == 0 and "WARNING: --random-init" in captured.err and "1 videos extracted" in captured.out
    assert np.load(tmp_path / "f" / "rgb" / "a.npy").shape == (2, 64)  # default size 224: ceil(20 / 16) steps
    assert cli_main(["features", str(vids), "--out", str(tmp_path / "f"), "--random-init", "--i3d-width", "0.0625"]) == 0
    assert "0 videos extracted, 1 already done" in capsys.readouterr().out
