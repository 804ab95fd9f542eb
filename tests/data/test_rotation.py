"""Rotated (phone) videos: the reader shows frames upright, as players do, and reports the turn."""
from __future__ import annotations

import av
import numpy as np
import pytest

from affectkit.data.media_writer import write_video
from affectkit.data.video import open_video, probe_video, read_frames

from .media_fixtures import corner_picture, stored_for_display, write_rotate_tagged

UPRIGHT = corner_picture(64, 32)  # portrait: 32 wide, 64 high, white square top-left, red bar at the bottom
N = 6

needs_matrix_writer = pytest.mark.skipif(
    not hasattr(av.video.stream.VideoStream, "set_display_rotation"),
    reason="this PyAV cannot write a display matrix")


def _close(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _white_corner(frame: np.ndarray) -> str:
    """Which quadrant holds the white square."""
    h, w = frame.shape[:2]
    white = (frame.min(axis=2) > 200).astype(np.float64)
    quads = {"top-left": white[: h // 2, : w // 2], "top-right": white[: h // 2, w // 2:],
             "bottom-left": white[h // 2:, : w // 2], "bottom-right": white[h // 2:, w // 2:]}
    return max(quads, key=lambda k: quads[k].mean())


def _raw_first_frame(path):
    with av.open(str(path)) as c:
        return next(c.decode(video=0))


@pytest.fixture(scope="module")
def rotated(tmp_path_factory):
    """rotation -> mp4 whose stored picture is UPRIGHT turned against ``rotation``."""
    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip("this PyAV cannot write a display matrix")
    out = tmp_path_factory.mktemp("rotated")
    files = {}
    for rotation in (0, 90, 180, 270):
        stored = stored_for_display(UPRIGHT, rotation)
        files[rotation] = str(out / f"rot{rotation}.mp4")
        write_video(files[rotation], np.stack([stored] * N), 10.0, rotation=rotation)
    return files


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_file_really_carries_the_display_matrix(rotated, rotation):
    """Independent of our reader: FFmpeg itself sees the stored picture on its side and the matrix
    (av_display_rotation_get is counter-clockwise, ffprobe prints it: minus our clockwise turn)."""
    frame = _raw_first_frame(rotated[rotation])
    stored_h, stored_w = stored_for_display(UPRIGHT, rotation).shape[:2]
    assert (frame.width, frame.height) == (stored_w, stored_h)
    assert frame.rotation % 360 == (-rotation) % 360
    if rotation in (90, 270):
        assert (frame.width, frame.height) == (64, 32)  # stored landscape


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_frames_decode_upright(rotated, rotation):
    with open_video(rotated[rotation]) as reader:
        info = reader.info
        frames = reader.read_frames([0, N - 1])
    assert info.rotation == rotation and info.mirrored is False
    assert (info.width, info.height) == (32, 64)  # displayed size: portrait for every rotation
    assert frames.shape == (2, 64, 32, 3)
    for frame in frames:
        assert _white_corner(frame) == "top-left"
        assert frame[-2:, :, 0].mean() > 150 and frame[-2:, :, 1].mean() < 90  # red bar at the bottom
        assert _close(frame, UPRIGHT) < 6.0
    if rotation:
        assert f"rotated {rotation}" in repr(reader)


@pytest.mark.parametrize("rotation", [90, 270])
def test_resize_uses_the_displayed_short_side(rotated, rotation):
    frames = read_frames(rotated[rotation], [1, 2], size=16)
    assert frames.shape == (2, 32, 16, 3)  # short side (the displayed width) is 16
    assert _white_corner(frames[0]) == "top-left"
    small = np.asarray(UPRIGHT[::2, ::2])
    assert _close(frames[0], small) < 20.0


@pytest.mark.parametrize("rotation", [90, 180])
def test_probe_reports_rotation(rotated, rotation):
    info = probe_video(rotated[rotation])
    assert (info.rotation, info.width, info.height) == (rotation, 32, 64)


@needs_matrix_writer
def test_mirror_after_turn(tmp_path):
    path = str(tmp_path / "mirror90.mp4")
    write_video(path, np.stack([stored_for_display(UPRIGHT, 90)] * N), 10.0, rotation=90, mirror=True)
    with open_video(path) as reader:
        assert (reader.info.rotation, reader.info.mirrored) == (90, True)
        frame = reader.read_frames([0])[0]
    assert frame.shape == (64, 32, 3)
    assert _white_corner(frame) == "top-right"  # the upright picture, mirrored left-right
    assert _close(frame, UPRIGHT[:, ::-1]) < 6.0


def test_unrotated_file_unchanged(tmp_path):
    path = str(tmp_path / "plain.mp4")
    landscape = corner_picture(32, 64)
    write_video(path, np.stack([landscape] * N), 10.0)
    with open_video(path) as reader:
        assert (reader.info.rotation, reader.info.mirrored) == (0, False)
        assert (reader.info.width, reader.info.height) == (64, 32)
        frame = reader.read_frames([0])[0]
    assert _white_corner(frame) == "top-left" and _close(frame, landscape) < 6.0


@pytest.mark.parametrize("tag,rotation", [("90", 90), ("270", 270), ("-90", 270), ("180", 180)])
def test_rotate_tag_without_matrix(tmp_path, tag, rotation):
    """A Matroska file carrying only a `rotate` stream tag (no display matrix) is turned the same way."""
    path = write_rotate_tagged(tmp_path / "tagged.mkv", np.stack([stored_for_display(UPRIGHT, rotation)] * N),
                               10.0, tag)
    raw = _raw_first_frame(path)
    assert raw.rotation == 0  # FFmpeg sees no matrix: the tag alone says it
    with open_video(path) as reader:
        assert reader.info.rotation == rotation
        assert (reader.info.width, reader.info.height) == (32, 64)
        frame = reader.read_frames([3])[0]
    assert _white_corner(frame) == "top-left" and _close(frame, UPRIGHT) < 6.0


def test_writer_rejects_odd_angle(tmp_path):
    with pytest.raises(ValueError, match="multiple of 90"):
        write_video(tmp_path / "x.mp4", np.stack([UPRIGHT] * 2), 10.0, rotation=45)
