import numpy as np
import pytest

from affectkit.data.sampling import snippet_indices, snippet_spans
from affectkit.data.transforms import VideoSpatialTransform


def test_centre_snippets_are_deterministic_and_spread():
    idx = snippet_indices(300, 12, 16)
    assert idx.shape == (12, 16)
    assert (np.diff(idx, axis=1) == 1).all()
    seg = 300 // 12
    assert idx[0, 0] == (seg - 16) // 2 and idx[1, 0] == seg + (seg - 16) // 2
    np.testing.assert_array_equal(idx, snippet_indices(300, 12, 16))


def test_short_video_is_loop_padded_like_the_original():
    idx = snippet_indices(50, 12, 16)  # 50 < 192 frames: the list repeats from the start
    assert idx.max() < 50 and idx.shape == (12, 16)
    assert idx[0].tolist() == list(range(0, 16))


def test_random_offsets_stay_in_segments():
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = snippet_indices(1000, 4, 8, random=True, rng=rng)
        seg = 1000 // 4
        assert ((idx[:, 0] // seg) == np.arange(4)).all() and ((idx[:, -1] // seg) == np.arange(4)).all()


def test_frame_step_and_spans():
    idx = snippet_indices(400, 2, 4, frame_step=2)
    assert (idx % 2 == 0).all()
    assert snippet_spans(np.array([[10, 11], [20, 21]]), 10.0) == [(1.0, 1.2), (2.0, 2.2)]


def test_spatial_transform_shapes_and_eval_centre_crop():
    frames = np.zeros((2 * 4, 60, 80, 3), np.uint8)
    frames[:, :, 10:70] = 200  # the centre square of side 60
    t = VideoSpatialTransform(32, seq_len=2, train=False)
    out = t({"video": frames})["video"]
    assert out.shape == (2, 3, 4, 32, 32)
    assert float(out.min()) == pytest.approx(200, abs=1e-3)
    tt = VideoSpatialTransform(32, seq_len=2, train=True, p=1.0, ops=["flip"])
    out2 = tt({"video": frames}, rng=np.random.default_rng(1))["video"]
    assert out2.shape == (2, 3, 4, 32, 32) and float(out2.max()) <= 255
