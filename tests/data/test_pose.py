"""The pose front end (video -> Emotion-Gait skeleton) with a fake landmark source: the 33 -> 16 joint
mapping, the axes, heading and scale, gaps, and predict on a video. MediaPipe is not needed (nor
installed in the test environment): the landmark source is replaced."""
import numpy as np
import pytest

from affectkit.data import gait, pose
from affectkit.data.media_writer import write_video
from affectkit.data.synth_gait import _subject, animate
from affectkit.errors import MediaError
from tests.conftest import untrained_checkpoint

J = gait.J
REAL_ESTIMATOR = pose.make_estimator


def _walk(frames=60, seed=0):
    rng = np.random.default_rng(seed)
    return animate("Happy", _subject(rng), rng, frames, 30.0, 1.0, 0.0).astype(np.float64)  # (T, 16, 3), E-Gait axes


def _landmarks_of(x, heading=0.0, scale=1.0):
    """MediaPipe-style world landmarks (x right, y down, z away; metres) of an E-Gait-axes skeleton
    turned by ``heading`` about the vertical: the inverse of the documented mapping for the direct
    joints; the ears either side of the head; every other landmark at the head."""
    y = pose._rotate_y(x * scale, heading) * np.array([1.0, -1.0, -1.0])
    lm = np.repeat(y[:, J["head"]][:, None], 33, axis=1).copy()
    for joint, name in pose.DIRECT.items():
        lm[:, pose.LM[name]] = y[:, J[joint]]
    side = np.zeros(3)
    side[0] = 0.07
    lm[:, pose.LM["l_ear"]] = y[:, J["head"]] + side
    lm[:, pose.LM["r_ear"]] = y[:, J["head"]] - side
    return lm


def test_mapping_takes_direct_joints_and_documented_midpoints():
    x = _walk()
    lm = _landmarks_of(x)
    g = pose.landmarks_to_joints(lm) * np.array([1.0, -1.0, -1.0])  # back to y up
    for joint in pose.DIRECT:
        assert np.allclose(g[:, J[joint]], x[:, J[joint]]), joint
    assert np.allclose(g[:, J["head"]], x[:, J["head"]])
    assert np.allclose(g[:, J["root"]], 0.5 * (x[:, J["l_hip"]] + x[:, J["r_hip"]]))
    assert np.allclose(g[:, J["neck"]], 0.5 * (x[:, J["l_shoulder"]] + x[:, J["r_shoulder"]]))
    assert np.allclose(g[:, J["spine"]], 0.5 * (g[:, J["root"]] + g[:, J["neck"]]))
    with pytest.raises(ValueError, match=r"\(T, 33, 3\)"):
        pose.landmarks_to_joints(np.zeros((5, 17, 3)))


def test_gait_has_the_real_files_axes_heading_and_height_whatever_the_camera():
    x = _walk()
    ref = pose.world_to_gait(_landmarks_of(x))
    assert ref.shape == (60, 16, 3) and ref.dtype == np.float32
    assert not ref[:, J["root"]].any()  # root-centred
    assert pose.body_height(ref) == pytest.approx(pose.EGAIT_HEIGHT, rel=1e-5)
    # the real files' axes: y up, left side at -x, facing -z (head ahead of the root when leaning)
    assert (ref[:, J["head"], 1] > 0.3).all()
    assert ref[:, J["l_hip"], 0].mean() < 0 < ref[:, J["r_hip"], 0].mean()
    assert ref[:, J["l_shoulder"], 0].mean() < ref[:, J["r_shoulder"], 0].mean()
    # a walker crossing the view (90 degrees), seen from behind (180), in centimetres: the same gait
    for heading, scale in ((np.pi / 2, 1.0), (np.pi, 1.0), (0.7, 100.0)):
        g = pose.world_to_gait(_landmarks_of(x, heading, scale))
        assert np.allclose(g, ref, atol=1e-4), (heading, scale)
    # without the heading fix the camera's heading stays; without height, metres stay
    turned = pose.world_to_gait(_landmarks_of(x, np.pi / 2), facing=None, height=None)
    assert not np.allclose(turned, ref, atol=1e-2)
    assert pose.body_height(turned) == pytest.approx(pose.body_height(pose.world_to_gait(_landmarks_of(x), height=None)))


def test_frames_without_a_person_are_interpolated_and_the_ends_trimmed():
    a, b = np.zeros((33, 3)), np.ones((33, 3))
    out, first, last = pose.fill_missing([None, a, None, None, b, None])
    assert (first, last) == (1, 4) and out.shape == (4, 33, 3)
    assert np.allclose(out[:, 0, 0], [0, 1 / 3, 2 / 3, 1])
    with pytest.raises(ValueError):
        pose.fill_missing([None, None])


def _video(path, frames=60):
    rng = np.random.default_rng(0)
    write_video(path, rng.integers(0, 255, (frames, 48, 64, 3), dtype=np.uint8), 30.0)
    return str(path)


class FakePose:
    """Landmarks of a synthetic walk, frame after frame; None on the frames in ``missing``."""

    def __init__(self, x, missing=()):
        self.lm, self.missing, self.i = _landmarks_of(x, heading=0.4), set(missing), 0

    def __call__(self, rgb):
        assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8
        i, self.i = self.i, self.i + 1
        return None if i in self.missing or i >= len(self.lm) else self.lm[i]


def test_video_to_gait_runs_every_frame_through_the_landmark_source(tmp_path, monkeypatch):
    x = _walk(60)
    monkeypatch.setattr(pose, "make_estimator", lambda path: FakePose(x, missing={0, 1, 30}))
    g, info = pose.video_to_gait(_video(tmp_path / "walk.mp4"))
    assert info["num_frames"] == 60 and info["pose_frames"] == 57 and (info["first_frame"], info["last_frame"]) == (2, 59)
    assert g.shape == (58, 16, 3) and info["fps"] == pytest.approx(30.0)
    want = pose.world_to_gait(_landmarks_of(x, 0.4)[2:])
    assert np.allclose(g[:28], want[:28], atol=1e-4)  # frame 30 (index 28) is interpolated
    assert np.allclose(g[29:], want[29:], atol=1e-4)


def test_no_person_and_no_mediapipe_are_clear_errors_naming_the_file(tmp_path, monkeypatch):
    video = _video(tmp_path / "empty_street.mp4", frames=12)
    monkeypatch.setattr(pose, "make_estimator", lambda path: (lambda rgb: None))
    with pytest.raises(MediaError, match=r"empty_street\.mp4: no person found in any of its 12 frames"):
        pose.video_to_gait(video)
    monkeypatch.setattr(pose, "make_estimator", lambda path: FakePose(_walk(12), missing=set(range(5, 12))))
    with pytest.raises(MediaError, match=r"empty_street\.mp4: a person found in only 5 of its 12 frames"):
        pose.video_to_gait(video)
    import builtins

    real_import = builtins.__import__

    def no_mediapipe(name, *args, **kwargs):
        if name == "mediapipe" or name.startswith("mediapipe."):
            raise ImportError("No module named 'mediapipe'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(pose, "make_estimator", REAL_ESTIMATOR)  # the real landmark source ...
    monkeypatch.setattr(builtins, "__import__", no_mediapipe)  # ... without MediaPipe
    assert not pose.mediapipe_available()
    with pytest.raises(MediaError, match=r"empty_street\.mp4: the pose front end needs MediaPipe.*install affectkit\[pose\]"):
        pose.video_to_gait(video)


def test_predict_on_a_walking_video_goes_through_the_pose_front_end(tmp_path, monkeypatch):
    from affectkit.deploy.predictor import Predictor

    ckpt = untrained_checkpoint(tmp_path, "gait/bpm_gcn_synth.yaml", ["model.args.base_width=4"], gait.GAIT_CLASSES)
    x = _walk(120, seed=3)
    monkeypatch.setattr(pose, "make_estimator", lambda path: FakePose(x))
    video = _video(tmp_path / "walk.mp4", frames=120)
    p = Predictor(ckpt)
    out = p.predict(video)
    assert out["label"] in gait.GAIT_CLASSES and out["fps"] == pytest.approx(30.0)
    assert out["pose"] == {"num_frames": 120, "pose_frames": 120, "first_frame": 0, "last_frame": 119}
    assert out["windows"] == 4 and [e["start_frame"] for e in out["timeline"]] == [0, 24, 48, 72]  # 120 frames: a long walk
    # the same as predicting on the skeleton the front end made, saved as a file
    g, _ = pose.video_to_gait(video, estimator=FakePose(x))
    np.save(tmp_path / "walk.npy", g)
    same = p.predict(tmp_path / "walk.npy")
    assert same["probabilities"] == pytest.approx(out["probabilities"], abs=1e-5)
    monkeypatch.setattr(pose, "make_estimator", lambda path: (lambda rgb: None))
    with pytest.raises(MediaError, match=r"walk\.mp4: no person found"):
        p.predict(video)
