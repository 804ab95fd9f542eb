"""Pose front end: a walking video -> an Emotion-Gait skeleton sequence ``(T, 16, 3)`` for the gait
models (``affectkit predict walk.mp4 --checkpoint GAIT_CKPT``).

The video is decoded with the kit's own PyAV reader (:func:`affectkit.data.video.open_video`), every
frame goes through MediaPipe Pose (the legacy ``mediapipe.solutions.pose`` API of ``mediapipe==0.10.21``,
``model_complexity=1`` only: its landmark model ships inside the wheel, the other complexities are
downloaded at run time, which the kit never does), and the 33 3D *world* landmarks of each frame (metres,
origin between the hips) become the 16 joints of :data:`affectkit.data.gait.JOINTS`. MediaPipe is the
optional extra ``pose`` (``pip install affectkit[pose]``); it pins numpy 1.26, so it is never a main or
test dependency. Without it, a clear :class:`~affectkit.errors.MediaError` names the file.

Joint mapping (MediaPipe landmark indices; "mid" is the midpoint):

============  =====================================================
root          mid(23 left hip, 24 right hip)
spine         mid(root, neck)
neck          mid(11 left shoulder, 12 right shoulder)
head          mid(7 left ear, 8 right ear)
l_shoulder    11 left shoulder      r_shoulder   12 right shoulder
l_elbow       13 left elbow         r_elbow      14 right elbow
l_hand        15 left wrist         r_hand       16 right wrist
l_hip         23 left hip           r_hip        24 right hip
l_knee        25 left knee          r_knee       26 right knee
l_foot        27 left ankle         r_foot       28 right ankle
============  =====================================================

"left" is the person's left (MediaPipe's convention). In the real Emotion-Gait files the root is the
midpoint of the hips (checked on ``sample_features.h5``: within 3 mm), the neck sits a little (about
0.05) above the shoulders' midpoint, which this mapping does not add.

Axes and scale, to match the real files (y up, the walker facing -z with its left side at -x,
root-centred, a body about :data:`EGAIT_HEIGHT` = 1.14 units from head to the lower foot):

1. MediaPipe world axes (x to the image's right, y down, z away from the camera) are turned 180 degrees
   about x: ``(x, -y, -z)`` (a rotation, so left and right are kept);
2. ``facing="egait"``: one rotation about the vertical axis per sequence (not per frame, so the body's
   twist while walking is kept) brings the mean hip line (right hip -> left hip) to -x; a walker crossing
   the view and one coming towards the camera give the same skeleton. ``facing=None`` keeps the
   camera's heading;
3. every frame centred on the root;
4. ``height``: the whole sequence scaled so that the mean over frames of (head height - lower foot
   height) is ``height`` (``None`` keeps metres).

Frames where MediaPipe finds no person are filled by linear interpolation between the nearest frames
with one; missing frames at the start and end are dropped. No person in any frame, or in fewer than
:data:`MIN_POSE_FRAMES` frames, is a :class:`~affectkit.errors.MediaError` naming the file.

The landmark source is :func:`make_estimator` (a callable ``rgb uint8 (H, W, 3) -> (33, 3) world
landmarks or None``); tests replace it, so the test suite needs no MediaPipe.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from ..errors import MediaError
from .gait import J, NUM_JOINTS, UP_AXIS

NUM_LANDMARKS = 33
EGAIT_HEIGHT = 1.14  # head to lower foot in the real Emotion-Gait files (sample_features.h5: 1.13, 1.14, 1.16)
MIN_POSE_FRAMES = 8
MEDIAPIPE_VERSION = "0.10.21"
MODEL_COMPLEXITY = 1  # the only complexity whose model ships in the wheel

# MediaPipe Pose landmark indices used by the mapping
LM = {"l_ear": 7, "r_ear": 8, "l_shoulder": 11, "r_shoulder": 12, "l_elbow": 13, "r_elbow": 14, "l_wrist": 15,
      "r_wrist": 16, "l_hip": 23, "r_hip": 24, "l_knee": 25, "r_knee": 26, "l_ankle": 27, "r_ankle": 28}
DIRECT = {"l_shoulder": "l_shoulder", "l_elbow": "l_elbow", "l_hand": "l_wrist", "r_shoulder": "r_shoulder",
          "r_elbow": "r_elbow", "r_hand": "r_wrist", "l_hip": "l_hip", "l_knee": "l_knee", "l_foot": "l_ankle",
          "r_hip": "r_hip", "r_knee": "r_knee", "r_foot": "r_ankle"}  # Emotion-Gait joint -> landmark

Estimator = Callable[[np.ndarray], "np.ndarray | None"]


# ---------------------------------------------------------------------------------------------
# the mapping
def landmarks_to_joints(world: np.ndarray) -> np.ndarray:
    """MediaPipe world landmarks ``(T, 33, 3)`` (or ``(33, 3)``) -> the 16 Emotion-Gait joints in
    MediaPipe's axes (the table of the module docstring; no axis change, no scaling)."""
    w = np.asarray(world, dtype=np.float64)
    single = w.ndim == 2
    if single:
        w = w[None]
    if w.ndim != 3 or w.shape[1:] != (NUM_LANDMARKS, 3):
        raise ValueError(f"world landmarks of shape {tuple(np.shape(world))}: expected (T, 33, 3)")
    x = np.zeros((w.shape[0], NUM_JOINTS, 3))
    for joint, lm in DIRECT.items():
        x[:, J[joint]] = w[:, LM[lm]]
    x[:, J["root"]] = 0.5 * (w[:, LM["l_hip"]] + w[:, LM["r_hip"]])
    x[:, J["neck"]] = 0.5 * (w[:, LM["l_shoulder"]] + w[:, LM["r_shoulder"]])
    x[:, J["spine"]] = 0.5 * (x[:, J["root"]] + x[:, J["neck"]])
    x[:, J["head"]] = 0.5 * (w[:, LM["l_ear"]] + w[:, LM["r_ear"]])
    return x[0] if single else x


def _rotate_y(x: np.ndarray, theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    out = x.copy()
    out[..., 0] = c * x[..., 0] + s * x[..., 2]
    out[..., 2] = -s * x[..., 0] + c * x[..., 2]
    return out


def canonical_facing(x: np.ndarray) -> np.ndarray:
    """Turn a ``(T, 16, 3)`` y-up sequence about y so its mean hip line (right -> left hip) points to
    -x, the real Emotion-Gait files' heading (the walker then faces -z)."""
    hip = (x[:, J["l_hip"]] - x[:, J["r_hip"]]).mean(0)
    if np.hypot(hip[0], hip[2]) < 1e-9:
        return x
    theta = np.arctan2(hip[2], hip[0]) - np.pi  # the hip line's angle in the x-z plane, brought to pi (-x)
    return _rotate_y(x, theta)


def body_height(x: np.ndarray) -> float:
    """Mean over frames of the head's height above the lower foot (y up)."""
    feet = np.minimum(x[:, J["l_foot"], UP_AXIS], x[:, J["r_foot"], UP_AXIS])
    return float(np.mean(x[:, J["head"], UP_AXIS] - feet))


def world_to_gait(world: np.ndarray, *, facing: str | None = "egait", height: float | None = EGAIT_HEIGHT) -> np.ndarray:
    """MediaPipe world landmarks ``(T, 33, 3)`` -> an Emotion-Gait sequence ``(T, 16, 3)`` float32
    (mapping, axes, heading, root centring and scale of the module docstring)."""
    x = landmarks_to_joints(world)
    if x.ndim == 2:
        x = x[None]
    x = x * np.array([1.0, -1.0, -1.0])  # MediaPipe (x right, y down, z away) -> y up
    if facing == "egait":
        x = canonical_facing(x)
    elif facing is not None:
        raise ValueError(f"facing {facing!r}: expected 'egait' or None")
    x = x - x[:, J["root"]:J["root"] + 1]
    if height is not None:
        h = body_height(x)
        if h <= 1e-6:
            raise ValueError("the pose has no height (head not above the feet): cannot scale it")
        x = x * (height / h)
    return x.astype(np.float32)


def fill_missing(frames: list[np.ndarray | None]) -> tuple[np.ndarray, int, int]:
    """Per-frame landmarks (None where no person) -> ``((T', 33, 3), first, last)``: the span from the
    first to the last frame with a person, gaps filled by linear interpolation."""
    found = [i for i, f in enumerate(frames) if f is not None]
    if not found:
        raise ValueError("no person")
    a, b = found[0], found[-1]
    out = np.zeros((b - a + 1, NUM_LANDMARKS, 3))
    t = np.array(found)
    vals = np.stack([np.asarray(frames[i], dtype=np.float64) for i in found])  # (K, 33, 3)
    grid = np.arange(a, b + 1)
    flat = vals.reshape(len(found), -1)
    for k in range(flat.shape[1]):
        out.reshape(len(grid), -1)[:, k] = np.interp(grid, t, flat[:, k])
    return out, a, b


# ---------------------------------------------------------------------------------------------
# MediaPipe
def mediapipe_available() -> bool:
    try:
        import mediapipe  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means unavailable
        return False
    return True


class MediapipePose:
    """``MediapipePose()(rgb)`` -> ``(33, 3)`` world landmarks of the person in an RGB frame, or None.
    Tracking mode (``static_image_mode=False``): frames must come in order, one video per instance."""

    def __init__(self, *, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 path: str = "video"):
        try:
            import mediapipe as mp
        except Exception as err:  # noqa: BLE001 - missing, or broken (e.g. a numpy mismatch)
            raise MediaError(path, f"the pose front end needs MediaPipe, which is not importable ({type(err).__name__}: "
                                   f"{str(err).splitlines()[0][:120] if str(err) else ''}); install affectkit[pose] "
                                   f"(mediapipe=={MEDIAPIPE_VERSION}), or give a skeleton file (.npy, .csv, .h5)") from None
        solutions = getattr(mp, "solutions", None)
        if solutions is None or not hasattr(solutions, "pose"):
            raise MediaError(path, f"mediapipe {getattr(mp, '__version__', '?')} has no legacy solutions.pose API; "
                                   f"install affectkit[pose] (mediapipe=={MEDIAPIPE_VERSION})")
        self._pose = solutions.pose.Pose(static_image_mode=False, model_complexity=MODEL_COMPLEXITY,
                                         smooth_landmarks=True, enable_segmentation=False,
                                         min_detection_confidence=min_detection_confidence,
                                         min_tracking_confidence=min_tracking_confidence)

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        res = self._pose.process(np.ascontiguousarray(rgb))
        world = getattr(res, "pose_world_landmarks", None)
        if world is None:
            return None
        return np.array([[p.x, p.y, p.z] for p in world.landmark], dtype=np.float64)

    def close(self) -> None:
        self._pose.close()


def make_estimator(path: str = "video") -> Estimator:
    """The landmark source for one video (MediaPipe Pose; tests replace this function)."""
    return MediapipePose(path=path)


# ---------------------------------------------------------------------------------------------
# video -> gait
def video_to_gait(path: str | os.PathLike, *, facing: str | None = "egait", height: float | None = EGAIT_HEIGHT,
                  chunk: int = 32, estimator: Estimator | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Run the pose front end on every frame of a video -> ``((T, 16, 3) float32, info)``; ``info``:
    ``fps``, ``num_frames`` (decoded), ``pose_frames`` (frames with a person), ``first_frame`` /
    ``last_frame`` (the span kept), ``duration`` (seconds of the video)."""
    from .video import open_video

    path = os.fspath(path)
    with open_video(path) as reader:
        info = reader.info
        est = estimator if estimator is not None else make_estimator(path)
        frames: list[np.ndarray | None] = []
        try:
            for a in range(0, info.num_frames, chunk):
                rgb = reader.read_frames(list(range(a, min(a + chunk, info.num_frames))))
                for f in rgb:
                    lm = est(f)
                    if lm is not None:
                        lm = np.asarray(lm, dtype=np.float64)
                        if lm.shape != (NUM_LANDMARKS, 3) or not np.isfinite(lm).all():
                            raise MediaError(path, f"pose estimator gave landmarks of shape {lm.shape} "
                                                   f"(or non-finite), expected (33, 3)")
                    frames.append(lm)
        finally:
            close = getattr(est, "close", None)
            if estimator is None and close is not None:
                close()
    found = sum(f is not None for f in frames)
    if found == 0:
        raise MediaError(path, f"no person found in any of its {len(frames)} frames (MediaPipe Pose); "
                               f"the gait models need a walking person seen whole")
    if found < MIN_POSE_FRAMES:
        raise MediaError(path, f"a person found in only {found} of its {len(frames)} frames; a gait needs at least "
                               f"{MIN_POSE_FRAMES}")
    world, first, last = fill_missing(frames)
    try:
        gait = world_to_gait(world, facing=facing, height=height)
    except ValueError as err:
        raise MediaError(path, f"pose front end: {err}") from None
    return gait, {"fps": float(info.fps), "num_frames": len(frames), "pose_frames": int(found),
                  "first_frame": int(first), "last_frame": int(last), "duration": float(info.duration)}
