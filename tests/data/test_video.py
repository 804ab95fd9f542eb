"""Tests of affectkit.data.video: frame-exact reads, seeking, resizing, frame folders, bad files."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from affectkit.data import video as video_mod
from affectkit.data.media_writer import write_wav
from affectkit.data.video import (
    FrameFolderReader,
    VideoInfo,
    VideoReader,
    open_video,
    probe_video,
    read_frames,
)
from affectkit.errors import MediaError

from .media_fixtures import decode_indices, index_frame, make_index_video, remux, truncate

N_LONG = 600  # 24 s at 25 fps, a keyframe every 25 frames


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("video_media")


@pytest.fixture(scope="module")
def long_video(media_dir):
    return make_index_video(media_dir / "long.mp4", N_LONG, fps=25)


@pytest.fixture(scope="module")
def av_video(media_dir):
    return make_index_video(media_dir / "with_audio.mp4", 50, fps=25, audio_seconds=2.0,
                            sample_rate=22050)


def snippet_indices(num_frames: int, snippets: int = 12, length: int = 16) -> np.ndarray:
    starts = np.linspace(0, num_frames - length, snippets).astype(int)
    return np.concatenate([np.arange(s, s + length) for s in starts])


# ---------------------------------------------------------------------------------------------
# probing


def test_probe_values(long_video):
    info = probe_video(long_video)
    assert isinstance(info, VideoInfo)
    assert info.path == long_video
    assert info.num_frames == N_LONG
    assert info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(24.0, abs=0.05)
    assert (info.width, info.height) == (96, 64)
    assert info.has_audio is False
    assert info.audio_sample_rate is None


def test_probe_with_audio(av_video):
    info = probe_video(av_video)
    assert info.num_frames == 50
    assert info.has_audio is True
    assert info.audio_sample_rate == 22050


def test_probe_without_frame_count_in_header(long_video, media_dir):
    # mkv stores no frame count: the count comes from the duration
    mkv = remux(long_video, media_dir / "long.mkv", "matroska")
    info = probe_video(mkv)
    assert info.num_frames == N_LONG
    assert info.fps == pytest.approx(25.0)
    # a raw H.264 stream has neither count nor duration: packets are counted
    raw = remux(long_video, media_dir / "long.h264", "h264")
    info = probe_video(raw)
    assert info.num_frames == N_LONG
    assert (info.width, info.height) == (96, 64)


# ---------------------------------------------------------------------------------------------
# frame-exact reading


def test_read_every_frame_in_order(long_video):
    with VideoReader(long_video) as reader:
        frames = reader.read_frames(range(N_LONG))
    assert frames.shape == (N_LONG, 64, 96, 3)
    assert frames.dtype == np.uint8
    assert decode_indices(frames) == list(range(N_LONG))


def test_frames_match_what_was_written(long_video):
    frames = read_frames(long_video, [0, 123, 599])
    for frame, i in zip(frames, [0, 123, 599]):
        err = np.abs(frame.astype(int) - index_frame(i).astype(int))
        assert np.median(err) <= 3


def test_unsorted_and_repeated_indices(long_video):
    wanted = [5, 3, 3, 0, 599, 250, 251, 5, 42, 41]
    with VideoReader(long_video) as reader:
        frames = reader.read_frames(wanted)
    assert frames.shape[0] == len(wanted)
    assert decode_indices(frames) == wanted


def test_snippets_spread_over_the_video(long_video):
    wanted = snippet_indices(N_LONG)
    with VideoReader(long_video) as reader:
        assert decode_indices(reader.read_frames(wanted)) == wanted.tolist()
        # snippets in shuffled order, and more calls on the same reader (backward and forward)
        rng = np.random.default_rng(0)
        order = rng.permutation(12)
        shuffled = np.concatenate([wanted[16 * k: 16 * k + 16] for k in order])
        assert decode_indices(reader.read_frames(shuffled)) == shuffled.tolist()
        for _ in range(4):
            picks = rng.integers(0, N_LONG, size=25)
            assert decode_indices(reader.read_frames(picks)) == picks.tolist()


def test_far_reads_seek_instead_of_decoding_everything(long_video, monkeypatch):
    decoded = []
    original = VideoReader._next

    def counting_next(self):
        out = original(self)
        if out is not None:
            decoded.append(out[0])
        return out

    monkeypatch.setattr(VideoReader, "_next", counting_next)
    with VideoReader(long_video) as reader:
        decoded.clear()
        wanted = [10, 11, 300, 301, 302, 590, 591]
        assert decode_indices(reader.read_frames(wanted)) == wanted
    # seeking decodes from the keyframe before each far frame, not the whole file
    assert len(decoded) < 150
    assert max(decoded) <= 600


def test_backward_read_after_forward_read(long_video):
    with VideoReader(long_video) as reader:
        assert decode_indices(reader.read_frames([550, 551])) == [550, 551]
        assert decode_indices(reader.read_frames([7, 8, 9])) == [7, 8, 9]
        assert decode_indices(reader.read_frames([8])) == [8]


def test_indices_past_the_end_return_the_last_frame(long_video):
    with VideoReader(long_video) as reader:
        frames = reader.read_frames([598, 599, 650, 10_000])
        assert decode_indices(frames) == [598, 599, 599, 599]
        assert decode_indices(reader.read_frames([700, 3])) == [599, 3]


def test_empty_and_invalid_indices(long_video):
    with VideoReader(long_video) as reader:
        assert reader.read_frames([]).shape == (0, 64, 96, 3)
        assert reader.read_frames([], size=32).shape == (0, 32, 48, 3)
        with pytest.raises(ValueError):
            reader.read_frames([-1])
        with pytest.raises(ValueError):
            reader.read_frames([0], size=0)


def test_size_resizes_short_side(long_video, media_dir):
    wanted = [0, 77, 400]
    frames = read_frames(long_video, wanted, size=32)
    assert frames.shape == (3, 32, 48, 3)
    assert decode_indices(frames) == wanted
    frames = read_frames(long_video, wanted, size=128)  # upscaling too
    assert frames.shape == (3, 128, 192, 3)
    assert decode_indices(frames) == wanted
    portrait = make_index_video(media_dir / "portrait.mp4", 10, fps=25, height=96, width=64)
    frames = read_frames(portrait, [0, 9], size=32)
    assert frames.shape == (2, 48, 32, 3)


def test_other_containers_read_exactly(long_video, media_dir):
    mkv = remux(long_video, media_dir / "exact.mkv", "matroska")
    raw = remux(long_video, media_dir / "exact.h264", "h264")  # frames without timestamps
    wanted = [590, 0, 1, 250, 251, 252, 100, 599, 599]
    for path in (mkv, raw):
        with open_video(path) as reader:
            assert decode_indices(reader.read_frames(wanted)) == wanted
            assert decode_indices(reader.read_frames(snippet_indices(N_LONG, 6))) == \
                snippet_indices(N_LONG, 6).tolist()


def test_thread_type_none_and_closing(long_video):
    reader = VideoReader(long_video, thread_type=None)
    assert decode_indices(reader.read_frames([3, 300])) == [3, 300]
    reader.close()
    reader.close()  # idempotent
    with pytest.raises(MediaError):
        reader.read_frames([0])


def test_open_video_dispatch(long_video, tmp_path):
    with open_video(long_video) as reader:
        assert isinstance(reader, VideoReader)
        assert "600 frames" in repr(reader)
    folder = tmp_path / "Happy" / "vid1"
    write_frame_folder(folder, 3)
    with open_video(folder, fps=10.0) as reader:
        assert isinstance(reader, FrameFolderReader)
        assert reader.info.fps == 10.0


# ---------------------------------------------------------------------------------------------
# bad inputs


def assert_media_error(excinfo, path, *words):
    message = str(excinfo.value)
    assert os.fspath(path) in message
    for word in words:
        assert word in message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.mp4"
    with pytest.raises(MediaError) as excinfo:
        probe_video(path)
    assert_media_error(excinfo, path, "file not found")
    with pytest.raises(MediaError):
        VideoReader(path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(MediaError) as excinfo:
        VideoReader(path)
    assert_media_error(excinfo, path, "file is empty (0 bytes)")


def test_text_file_renamed_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are my notes, not a video\n" * 20)
    with pytest.raises(MediaError) as excinfo:
        probe_video(path)
    assert_media_error(excinfo, path)
    assert "not a readable video file" in str(excinfo.value)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "tone.wav"
    write_wav(path, 0.2 * np.sin(np.arange(8000) / 5.0), 8000)
    with pytest.raises(MediaError) as excinfo:
        VideoReader(path)
    assert_media_error(excinfo, path, "has no video stream")


def test_truncated_mp4(long_video, tmp_path):
    path = tmp_path / "cut.mp4"
    shutil.copy(long_video, path)
    truncate(path, 0.4)
    # our writer puts the moov atom at the end: the cut file has no index and cannot be opened
    with pytest.raises(MediaError) as excinfo:
        VideoReader(path)
    assert_media_error(excinfo, path, "not a readable video file")


def test_truncated_mkv_returns_what_decodes(long_video, tmp_path):
    path = remux(long_video, tmp_path / "cut.mkv", "matroska")
    truncate(path, 0.4)
    with VideoReader(path) as reader:
        frames = reader.read_frames([0, 50, 599, 598, 5])
        got = decode_indices(frames)
    assert got[0] == 0 and got[1] == 50 and got[4] == 5
    last = got[2]
    assert 50 < last < 599  # clamped to the last frame that decodes
    assert got[3] == last


def test_corrupt_bytes_mid_stream(long_video, tmp_path):
    path = remux(long_video, tmp_path / "corrupt.mkv", "matroska")
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    rng = np.random.default_rng(0)
    mid = len(data) // 3
    data[mid:mid + 3000] = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    with open(path, "wb") as fh:
        fh.write(data)
    wanted = list(range(0, N_LONG, 10))
    with VideoReader(path) as reader:
        frames = reader.read_frames(wanted)
    assert frames.shape == (len(wanted), 64, 96, 3)
    got = decode_indices(frames)
    assert got[:5] == wanted[:5]
    assert all(g <= w for g, w in zip(got, wanted))  # never a frame from the future


def test_nothing_decodes_raises(long_video, tmp_path, monkeypatch):
    reader = VideoReader(long_video)
    # simulate a stream whose frames stop decoding after the probe
    monkeypatch.setattr(VideoReader, "_frame_at", lambda self, want: None)
    reader._last_good = None
    with pytest.raises(MediaError) as excinfo:
        reader.read_frames([10])
    assert_media_error(excinfo, long_video, "truncated or corrupt")
    reader.close()


# ---------------------------------------------------------------------------------------------
# frame folders


def write_frame_folder(folder, count, height=64, width=96, n_frames_file=True):
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        Image.fromarray(index_frame(i, height, width)).save(
            os.path.join(folder, f"{i + 1:06d}.jpg"), quality=95)
    if n_frames_file:
        with open(os.path.join(folder, "n_frames"), "w") as fh:
            fh.write(f"{count}\n")
    return folder


def test_frame_folder_reader(tmp_path):
    folder = write_frame_folder(tmp_path / "Angry" / "clip01", 40)
    with FrameFolderReader(folder) as reader:
        info = reader.info
        assert (info.num_frames, info.width, info.height) == (40, 96, 64)
        assert info.fps == 30.0 and info.has_audio is False and info.audio_sample_rate is None
        assert info.duration == pytest.approx(40 / 30)
        wanted = [0, 39, 5, 5, 12, 45, 1000]
        frames = reader.read_frames(wanted)
        assert frames.shape == (7, 64, 96, 3) and frames.dtype == np.uint8
        assert decode_indices(frames) == [0, 39, 5, 5, 12, 39, 39]
        small = reader.read_frames([3, 4], size=32)
        assert small.shape == (2, 32, 48, 3)
        assert decode_indices(small) == [3, 4]
    assert probe_video(folder).num_frames == 40
    assert decode_indices(read_frames(folder, [7])) == [7]


def test_frame_folder_without_n_frames_counts_jpgs(tmp_path):
    folder = write_frame_folder(tmp_path / "clip", 12, n_frames_file=False)
    reader = FrameFolderReader(folder, fps=25.0)
    assert reader.info.num_frames == 12
    assert reader.info.duration == pytest.approx(12 / 25)
    assert decode_indices(reader.read_frames([11, 20])) == [11, 11]


def test_frame_folder_n_frames_file_wins(tmp_path):
    folder = write_frame_folder(tmp_path / "clip", 12, n_frames_file=False)
    with open(folder / "n_frames", "w") as fh:
        fh.write("10")
    reader = FrameFolderReader(folder)
    assert reader.info.num_frames == 10
    assert decode_indices(reader.read_frames([11])) == [9]


def test_frame_folder_errors(tmp_path):
    with pytest.raises(MediaError) as excinfo:
        FrameFolderReader(tmp_path / "missing")
    assert_media_error(excinfo, tmp_path / "missing", "not found")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MediaError) as excinfo:
        open_video(empty)
    assert_media_error(excinfo, empty, "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "000001.jpg").write_text("not a jpeg")
    with pytest.raises(MediaError) as excinfo:
        FrameFolderReader(bad)
    assert "000001.jpg" in str(excinfo.value)


def test_module_exports():
    for name in video_mod.__all__:
        assert hasattr(video_mod, name)
