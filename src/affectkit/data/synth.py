"""Synthetic affective video set: real mp4 files (H.264 + AAC) with SRT subtitles, deterministic from a seed.

This is the kit's built-in default data (demo, quick training runs, tests). ``generate(out_dir, config)``
writes a VideoEmotion-8-style dataset whose K classes (emotion names, 2 <= K <= 8) are carried by
*dynamic* cues in every modality, so a model has to use temporal and audio-visual structure to learn it.

Layout written under ``out_dir``::

    synth.json                       annotation, same format as the real VideoEmotion-8 file (below)
    classInd.txt                     "1 Anger" ... (VE-8 style, 1-based)
    trainlist01.txt / vallist01.txt / testlist01.txt     "Anger/synth_00001 1"
    videos/<Class>/<video_id>.mp4    H.264 video + AAC mono audio
    subtitles/<Class>/<video_id>.srt (if ``subtitles``)
    untrimmed/videos/<id>.mp4        (if ``untrimmed > 0``) long videos with several episodes
    untrimmed/subtitles/<id>.srt
    untrimmed/gt.json                ActivityNet/TSL-300 style: {"database": {id: {"subset": "train"|"test",
                                     "duration": s, "annotations": [{"segment": [s, e], "label": "p"|"n",
                                     "emotion": class}, ...], "video": ..., "fps": ..., "num_frames": ...}}}
    untrimmed/point_labels.csv       video_id,class,point_time,point_frame,emotion (one point per segment)

``synth.json``::

    {"labels": [classes],
     "database": {"synth_00001": {"subset": "training"|"validation"|"testing",
                                  "annotations": {"label": "Anger"},
                                  "video": "videos/Anger/synth_00001.mp4",
                                  "subtitles": "subtitles/Anger/synth_00001.srt",
                                  "episodes": [[start_s, end_s], ...],   # annotated emotional episodes
                                  "duration": s, "num_frames": T}},
     "polarity": {class: "positive"|"negative"},
     "generator": {"name": "affectkit.data.synth", "version": 1, "config": {...SynthConfig...}}}

Paths are relative to the folder of ``synth.json`` (those in gt.json to ``untrimmed/``). Video ids are ``synth_00001`` ... (trimmed, numbered
split by split, class by class) and ``synthu_00001`` ... (untrimmed).

Scene
-----
Each video shows a static textured background of a random colour, a soft disc (the "actor") of another
random colour drifting slowly, and a small distractor disc moving on a random smooth path; the sound track
is a drone at a random pitch plus shaped noise and (with noise) random distractor tones. Every one of these
base properties (colours, sizes, drone pitch, the video's base pitch, loudness, durations, episode timing
and peak intensity) is drawn from a per-video RNG *before and independently of* the class.

Cues (only inside the emotional episodes)
-----------------------------------------
Each video has one (easy) or one-two emotional episodes (total about 60% of the video at "easy", 40% at
"default", 25% at "hard"); elsewhere only the class-independent neutral dynamics play. Inside an episode
an intensity envelope (Tukey window: rise, plateau, fall; peak drawn per episode) scales the class cues:

============  ==================================  =======================================================
class         vision                              audio (tone bursts relative to the video's base pitch)
============  ==================================  =======================================================
Anger         fast random jitter, 5 Hz flicker,   6 bursts/s, flat pitch, sawtooth (harsh, many harmonics)
              fast hue wobble
Anticipation  actor grows (approach), hue drifts  accelerating bursts 2 -> 6/s, small up-glides, +7 st drift
Disgust       actor shrinks + slow wobble,        1.5 bursts/s, -3 st, falling glides, odd harmonics (nasal)
              slow flicker, hue drifts away
Fear          small fast trembling, shrinks,      3.5 bursts/s, +7 st, 9 Hz vibrato
              3 Hz flicker
Joy           bouncing (1.5 Hz), hue cycling      4 bursts/s, +3 st, rising glides (+5 st), bright
Sadness       sinks down, scene dims, slow hue    0.8 long tones/s, -5 st, falling glides, pure sine
Surprise      sudden expansions with a flash,     a sharp +12 st up-sweep synchronised with each expansion
              repeated every ~1.1 s
Trust         smooth slow orbit                   2 bursts/s, flat, soft tone with a fifth (consonant)
============  ==================================  =======================================================

Subtitles: one line every 1-2 s; lines during an episode carry words of the class lexicon, the others are
neutral sentences (with noise: some episode lines are neutral or use another class's words, and a few
neutral-time lines carry stray emotion words).

No shallow shortcut: after rendering, each video's per-channel mean colour is shifted (before clipping and
encoding, iterated so clipping does not undo it) to the mean of the same video rendered *without* any
episode, and its audio is scaled to a per-video random RMS, so per-video mean colour and loudness carry no
class information (``tests/data/test_synth.py`` checks a logistic regression on them stays near chance).

Difficulty
----------
``difficulty`` is "easy" (0.1), "default" (0.4), "hard" (0.7) or a float noise level in [0, 1]. The level
scales: cue strength (1 - 0.45 level), pixel noise (std 30 level), audio noise (0.6 level x signal RMS),
distractor motion, distractor flicker and distractor tones, the episode coverage, the probability of a weak
"decoy" episode of another class in one modality during neutral time (1.2 level), the probability that one
modality's cue is weakened to 30% in a video (0.5 level), and subtitle noise (wrong-class words 0.35 level,
neutral lines inside episodes 0.4 level, stray words outside 0.2 level).

Untrimmed videos (``untrimmed > 0``): 30-60 s, several episodes (2.5-5 s, at least one positive- and one
negative-polarity class each, >= 2 s of neutral background between), no decoys; gt.json segments are the
episodes with "label" "p"/"n" (and the emotion under "emotion"); subsets "train"/"test".

API: ``generate(out_dir, config=SynthConfig(), *, workers=1, overwrite=False, progress=None) -> synth.json``
(re-running with the same config is a no-op; a different config replaces the files the old one wrote);
``render_video`` renders one video in memory; ``read_srt`` / ``write_srt`` (from :mod:`affectkit.data.text`); ``add_arguments`` /
``config_from_args`` / ``run_from_args`` for the ``affectkit data synth`` command. ``workers > 1`` uses
spawned processes (same output). The default set (160 videos of 4-8 s at 96x96) takes about 20 s on one
core (about 10 s with ``workers=2``).

Determinism: each video uses RNG streams derived from ``(seed, kind, index)`` only, and the mp4 writer here
runs x264 single-threaded with mb-tree off (see ``media_writer.write_video``), so the same config gives byte-identical
files (hence identical decoded frames and audio) regardless of ``workers``.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ConfigError, DatasetError
# subtitle I/O and the emotion lexicon live in .text; re-exported here for compatibility
from .text import EMOTION_TEMPLATES as _EMOTION_TEMPLATES, EMOTION_WORDS, LEXICON, NEUTRAL_LINES  # noqa: F401
from .text import _parse_srt_time, format_srt_time, read_srt, write_srt  # noqa: F401

GENERATOR_NAME = "affectkit.data.synth"
GENERATOR_VERSION = 1

EMOTIONS = ("Anger", "Anticipation", "Disgust", "Fear", "Joy", "Sadness", "Surprise", "Trust")
POLARITY = {
    "Anger": "negative", "Anticipation": "positive", "Disgust": "negative", "Fear": "negative",
    "Joy": "positive", "Sadness": "negative", "Surprise": "positive", "Trust": "positive",
}
# Which classes a K-class set uses: the first K of this list (both polarities from K = 2), in VE-8 order.
_PREFERENCE = ("Anger", "Joy", "Sadness", "Surprise", "Fear", "Trust", "Disgust", "Anticipation")
DIFFICULTY_LEVELS = {"easy": 0.1, "default": 0.4, "hard": 0.7}

# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cue:
    """The dynamics one class adds during its episodes (at full intensity)."""

    # vision; distances in fractions of the frame, scale as relative size change, hue in radians
    motion: str
    motion_amp: float
    motion_hz: float = 0.0
    flicker_hz: float = 0.0
    flicker_amp: float = 0.0
    brightness_ramp: float = 0.0
    flash: float = 0.0
    hue_hz: float = 0.0
    hue_amp: float = 0.0
    hue_drift: float = 0.0
    shrink: float = 0.0
    # audio; pitch in semitones relative to the video's base pitch
    tempo: float = 2.0
    tempo_end: float | None = None
    duty: float = 0.5
    pitch: float = 0.0
    glide: float = 0.0
    drift: float = 0.0
    vibrato_hz: float = 0.0
    vibrato_st: float = 0.0
    harmonics: tuple[float, ...] = (1.0,)
    fifth: float = 0.0


CUES: dict[str, Cue] = {
    "Anger": Cue("jitter", 0.10, flicker_hz=5.0, flicker_amp=0.16, hue_hz=3.0, hue_amp=0.35,
                 tempo=6.0, duty=0.5, harmonics=tuple(1.0 / k for k in range(1, 11))),
    "Anticipation": Cue("approach", 0.9, hue_drift=0.7,
                        tempo=2.0, tempo_end=6.0, duty=0.4, glide=2.0, drift=7.0, harmonics=(1.0, 0.5, 0.25)),
    "Disgust": Cue("withdraw", 0.07, motion_hz=0.7, shrink=0.5, flicker_hz=0.8, flicker_amp=0.10, hue_drift=-0.9,
                   tempo=1.5, duty=0.7, pitch=-3.0, glide=-3.0,
                   harmonics=(1.0, 0.0, 0.33, 0.0, 0.2, 0.0, 0.14, 0.0, 0.11)),
    "Fear": Cue("jitter", 0.035, shrink=0.25, flicker_hz=3.0, flicker_amp=0.12,
                tempo=3.5, duty=0.6, pitch=7.0, vibrato_hz=9.0, vibrato_st=1.2, harmonics=(1.0, 0.0, 0.3)),
    "Joy": Cue("bounce", 0.2, motion_hz=1.5, hue_hz=1.0, hue_amp=1.2,
               tempo=4.0, duty=0.45, pitch=3.0, glide=5.0, harmonics=(1.0, 0.45, 0.2)),
    "Sadness": Cue("sink", 0.25, brightness_ramp=-0.3, hue_hz=0.25, hue_amp=0.2, shrink=0.15,
                   tempo=0.8, duty=0.85, pitch=-5.0, glide=-4.0, harmonics=(1.0,)),
    "Surprise": Cue("burst", 1.4, motion_hz=0.9, flash=0.4,
                    tempo=0.9, duty=0.25, pitch=2.0, glide=12.0, harmonics=(1.0, 0.5, 0.3, 0.2)),
    "Trust": Cue("orbit", 0.18, motion_hz=0.5,
                 tempo=2.0, duty=0.6, harmonics=(1.0, 0.2), fifth=0.6),
}


# ---------------------------------------------------------------------------------------------
@dataclass
class SynthConfig:
    """What to generate. ``size`` is (W, H), both even. See the module docstring for the design."""

    num_classes: int = 4
    classes: tuple[str, ...] | None = None  # explicit class names (subset of EMOTIONS); overrides num_classes
    # 64 training videos a class: with fewer (24 was tried), small VAANet memorises the videos of the
    # default difficulty instead of learning their dynamics (val accuracy stayed at chance).
    train_per_class: int = 64
    val_per_class: int = 16
    test_per_class: int = 20
    duration: tuple[float, float] = (4.0, 8.0)
    fps: float = 12.0
    size: tuple[int, int] = (96, 96)
    sample_rate: int = 16000
    difficulty: str | float = "default"
    seed: int = 0
    untrimmed: int = 0
    untrimmed_duration: tuple[float, float] = (30.0, 60.0)
    untrimmed_test_fraction: float = 0.3
    subtitles: bool = True
    crf: int = 23

    def __post_init__(self) -> None:
        self.duration = tuple(float(x) for x in self.duration)  # type: ignore[assignment]
        self.untrimmed_duration = tuple(float(x) for x in self.untrimmed_duration)  # type: ignore[assignment]
        self.size = tuple(int(x) for x in self.size)  # type: ignore[assignment]
        if self.classes is not None:
            self.classes = tuple(str(c) for c in self.classes)
        self.validate()

    def validate(self) -> None:
        if self.classes is not None:
            bad = [c for c in self.classes if c not in EMOTIONS]
            if bad or len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
                raise ConfigError(f"synth.classes {list(self.classes)!r}: need >= 2 distinct names from {list(EMOTIONS)}")
        elif not 2 <= int(self.num_classes) <= len(EMOTIONS):
            raise ConfigError(f"synth.num_classes={self.num_classes}: must be between 2 and {len(EMOTIONS)}")
        for name in ("train_per_class", "val_per_class", "test_per_class", "untrimmed"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"synth.{name}={getattr(self, name)}: must be >= 0")
        lo, hi = self.duration
        if not (0.5 <= lo <= hi):
            raise ConfigError(f"synth.duration={self.duration}: need 0.5 <= min <= max seconds")
        ulo, uhi = self.untrimmed_duration
        if not (10.0 <= ulo <= uhi):
            raise ConfigError(f"synth.untrimmed_duration={self.untrimmed_duration}: need 10 <= min <= max seconds")
        w, h = self.size
        if w < 16 or h < 16 or w % 2 or h % 2:
            raise ConfigError(f"synth.size={self.size}: (W, H) must be even and >= 16")
        if not 1.0 <= float(self.fps) <= 60.0:
            raise ConfigError(f"synth.fps={self.fps}: must be in [1, 60]")
        if int(self.sample_rate) not in (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000):
            raise ConfigError(f"synth.sample_rate={self.sample_rate}: use a standard AAC rate (e.g. 16000)")
        if int(self.seed) < 0:
            raise ConfigError(f"synth.seed={self.seed}: must be >= 0")
        if not 0.0 <= float(self.untrimmed_test_fraction) <= 1.0:
            raise ConfigError("synth.untrimmed_test_fraction must be in [0, 1]")
        self.noise_level()

    def class_names(self) -> list[str]:
        if self.classes is not None:
            chosen = set(self.classes)
        else:
            chosen = set(_PREFERENCE[: int(self.num_classes)])
        return [c for c in EMOTIONS if c in chosen]

    def noise_level(self) -> float:
        d = self.difficulty
        if isinstance(d, str):
            if d in DIFFICULTY_LEVELS:
                return DIFFICULTY_LEVELS[d]
            try:
                d = float(d)
            except ValueError:
                raise ConfigError(f"synth.difficulty={d!r}: use easy, default, hard or a float in [0, 1]") from None
        d = float(d)
        if not 0.0 <= d <= 1.0:
            raise ConfigError(f"synth.difficulty={d}: a float level must be in [0, 1]")
        return d

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return json.loads(json.dumps(d))  # tuples -> lists, as stored in the annotation

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SynthConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"synth config: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**d)


@dataclass(frozen=True)
class _Knobs:
    level: float
    strength: float
    pixel_noise: float
    audio_noise: float
    distract_motion: float
    distract_flicker: float
    distract_tones: float
    coverage: float
    p_decoy: float
    decoy_peak: float
    p_weak: float
    p_wrong: float
    p_neutral: float
    p_stray: float


def difficulty_knobs(level: float) -> _Knobs:
    """All the noise / cue-strength settings derived from one noise level in [0, 1]."""
    level = float(level)
    return _Knobs(
        level=level,
        strength=1.0 - 0.45 * level,
        pixel_noise=30.0 * level,
        audio_noise=0.6 * level,
        distract_motion=0.03 + 0.25 * level,
        distract_flicker=0.1 * level,
        distract_tones=0.6 * level,
        coverage=float(np.clip(0.65 - 0.6 * level, 0.2, 0.7)),
        p_decoy=min(0.9, 1.2 * level),
        decoy_peak=0.45,
        p_weak=0.5 * level,
        p_wrong=0.35 * level,
        p_neutral=0.4 * level,
        p_stray=0.2 * level,
    )


# ---------------------------------------------------------------------------------------------
# Episodes: [start, end) in seconds, class, peak intensity, per-modality weights (vis, aud, txt)
@dataclass
class Episode:
    start: float
    end: float
    cls: str
    peak: float
    vis: float = 1.0
    aud: float = 1.0
    txt: float = 1.0
    annotated: bool = True
    seed: int = 0


def _tukey(u: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Rise-plateau-fall window on u in [0, 1]; 0 outside."""
    w = np.ones_like(u)
    edge = alpha / 2.0
    lo = u < edge
    w[lo] = 0.5 * (1.0 - np.cos(np.pi * u[lo] / edge))
    hi = u > 1.0 - edge
    w[hi] = 0.5 * (1.0 - np.cos(np.pi * (1.0 - u[hi]) / edge))
    w[(u < 0.0) | (u > 1.0)] = 0.0
    return w


def _place(rng: np.random.Generator, duration: float, lengths: Sequence[float], gap: float, margin: float) -> list[tuple[float, float]]:
    """Non-overlapping intervals of the given lengths, in order, with random slack between them."""
    lengths = list(lengths)
    n = len(lengths)
    room = duration - 2 * margin - gap * (n - 1)
    if sum(lengths) > room:
        f = max(room, 0.1 * n) / sum(lengths)
        lengths = [x * f for x in lengths]
    free = max(0.0, room - sum(lengths))
    slack = rng.dirichlet(np.ones(n + 1)) * free
    out, t = [], margin + slack[0]
    for i, length in enumerate(lengths):
        out.append((t, min(duration, t + length)))
        t += length + gap + slack[i + 1]
    return out


def _hue_rotation(theta: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations of RGB about the grey axis by ``theta`` radians (Rodrigues)."""
    k = np.full(3, 1.0 / math.sqrt(3.0))
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    kk = np.outer(k, k)
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    return c * np.eye(3) + s * kx + (1 - c) * kk


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array([r, g, b]) * 255.0


# ---------------------------------------------------------------------------------------------
class _Scene:
    """Every class-independent random property of one video (drawn first, from its own stream)."""

    def __init__(self, rng: np.random.Generator, width: int, height: int, duration: float, knobs: _Knobs):
        self.W, self.H, self.duration = width, height, duration
        unit = min(width, height)
        # background: base colour + gradient + smooth static texture
        bg_hue = rng.random()
        bg = _hsv_to_rgb(bg_hue, rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.7))
        ang = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        grad = ((xx - width / 2) * np.cos(ang) + (yy - height / 2) * np.sin(ang)) / unit
        tex = rng.standard_normal((6, 6))
        tex = np.kron(tex, np.ones((int(math.ceil(height / 6)), int(math.ceil(width / 6)))))[:height, :width]
        # smooth the blocky texture a little (separable box blur)
        k = max(1, unit // 12)
        for axis in (0, 1):
            tex = sum(np.roll(tex, s, axis=axis) for s in range(-k, k + 1)) / (2 * k + 1)
        self.bg_img = (bg[None, None, :] + (18.0 * grad + 8.0 * tex)[:, :, None]).astype(np.float32)
        self.xs = np.arange(width, dtype=np.float32) + np.float32(0.5)
        self.ys = np.arange(height, dtype=np.float32) + np.float32(0.5)
        # actor disc
        hue_a = (bg_hue + rng.uniform(0.2, 0.8)) % 1.0
        self.actor_rgb = _hsv_to_rgb(hue_a, rng.uniform(0.5, 0.95), rng.uniform(0.55, 0.95))
        self.actor_r = rng.uniform(0.11, 0.17) * unit
        self.path_amp = rng.uniform(0.06, 0.16, size=2)
        self.path_hz = rng.uniform(0.05, 0.2, size=2)
        self.path_phase = rng.uniform(0, 2 * np.pi, size=2)
        # distractor disc: random smooth path (3 sinusoids per axis)
        self.dis_rgb = _hsv_to_rgb(rng.random(), rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.95))
        self.dis_r = rng.uniform(0.05, 0.08) * unit
        self.dis_centre = rng.uniform(0.25, 0.75, size=2)
        self.dis_hz = rng.uniform(0.1, 1.2, size=(2, 3))
        self.dis_phase = rng.uniform(0, 2 * np.pi, size=(2, 3))
        self.dis_amp = knobs.distract_motion * rng.dirichlet(np.ones(3), size=2)
        # global brightness: slow wander + a distractor flicker at a random frequency
        self.wander_hz = rng.uniform(0.05, 0.3, size=2)
        self.wander_phase = rng.uniform(0, 2 * np.pi, size=2)
        self.dflick_hz = rng.uniform(0.5, 5.5)
        self.dflick_phase = rng.uniform(0, 2 * np.pi)
        self.dflick_amp = knobs.distract_flicker * rng.uniform(0.5, 1.0)
        # audio
        self.f0 = 196.0 * 2.0 ** rng.uniform(0.0, 1.0)  # base pitch of the tone bursts
        self.drone_hz = rng.uniform(80.0, 180.0)
        self.drone_amp = rng.uniform(0.15, 0.45)
        self.drone_am_hz = rng.uniform(0.1, 0.5)
        self.drone_phase = rng.uniform(0, 2 * np.pi, size=2)
        self.bgnoise_amp = rng.uniform(0.03, 0.12)
        self.tone_amp = rng.uniform(0.6, 0.9)
        self.target_rms = rng.uniform(0.05, 0.16)
        n_tones = rng.poisson(knobs.distract_tones * duration)
        self.dis_tones = [
            (rng.uniform(0, max(0.0, duration - 0.5)), rng.uniform(0.15, 0.5), rng.uniform(150, 900), rng.uniform(0.2, 0.5))
            for _ in range(n_tones)
        ]
        self.noise_seed = int(rng.integers(0, 2**63 - 1))


def _episode_time(t: np.ndarray, ep: Episode) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local time tau, progress u in [0, 1] and envelope a(t) (0 outside the episode)."""
    tau = t - ep.start
    u = tau / max(ep.end - ep.start, 1e-6)
    return tau, u, ep.peak * _tukey(u)


def _render_frames(scene: _Scene, episodes: Sequence[Episode], t: np.ndarray, knobs: _Knobs, with_noise: bool) -> np.ndarray:
    """Float32 (T, H, W, 3) frames, not clipped."""
    T = len(t)
    two_pi = 2 * np.pi
    cx = 0.5 + scene.path_amp[0] * np.sin(two_pi * scene.path_hz[0] * t + scene.path_phase[0])
    cy = 0.5 + scene.path_amp[1] * np.sin(two_pi * scene.path_hz[1] * t + scene.path_phase[1])
    scale = np.ones(T)
    bright = 1.0 + 0.03 * sum(np.sin(two_pi * scene.wander_hz[i] * t + scene.wander_phase[i]) for i in range(2))
    bright = bright + scene.dflick_amp * np.sin(two_pi * scene.dflick_hz * t + scene.dflick_phase)
    hue = np.zeros(T)
    for ep in episodes:
        if ep.vis <= 0:
            continue
        c = CUES[ep.cls]
        tau, u, a = _episode_time(t, ep)
        a = a * ep.vis
        if not np.any(a > 0):
            continue
        uc = np.clip(u, 0.0, 1.0)
        erng = np.random.default_rng(ep.seed)
        dx = np.zeros(T)
        dy = np.zeros(T)
        ds = -c.shrink * uc
        if c.motion == "jitter":
            dx, dy = erng.uniform(-1.0, 1.0, size=(2, T)) * c.motion_amp
        elif c.motion == "approach":
            ds = ds + c.motion_amp * uc
            dx, dy = (0.5 - cx) * uc * 0.8, (0.5 - cy) * uc * 0.8
        elif c.motion == "withdraw":
            dx = c.motion_amp * np.sin(two_pi * c.motion_hz * tau)
            dy = -0.15 * uc
        elif c.motion == "bounce":
            dy = -c.motion_amp * np.abs(np.sin(np.pi * c.motion_hz * tau)) + 0.5 * c.motion_amp
        elif c.motion == "sink":
            dy = c.motion_amp * uc
        elif c.motion == "burst":
            ph = np.mod(tau, 1.0 / c.motion_hz)
            ds = ds + c.motion_amp * np.exp(-ph / 0.3)
        elif c.motion == "orbit":
            dx = c.motion_amp * np.cos(two_pi * c.motion_hz * tau)
            dy = c.motion_amp * np.sin(two_pi * c.motion_hz * tau)
        db = c.flicker_amp * np.sin(two_pi * c.flicker_hz * tau) + c.brightness_ramp * uc
        if c.flash:
            db = db + c.flash * np.exp(-np.mod(tau, 1.0 / c.motion_hz) / 0.2)
        dh = c.hue_amp * np.sin(two_pi * c.hue_hz * tau) + c.hue_drift * uc
        cx = cx + a * dx
        cy = cy + a * dy
        scale = scale * (1.0 + a * ds)
        bright = bright + a * db
        hue = hue + a * dh
    cx = np.clip(cx, 0.08, 0.92) * scene.W
    cy = np.clip(cy, 0.08, 0.92) * scene.H
    radius = scene.actor_r * np.clip(scale, 0.25, 3.5)
    bright = np.clip(bright, 0.3, 1.9)
    actor = np.einsum("tij,j->ti", _hue_rotation(hue), scene.actor_rgb)
    actor = np.clip(actor, 0.0, 255.0).astype(np.float32)
    # distractor path
    dpos = [scene.dis_centre[i] + sum(scene.dis_amp[i, j] * np.sin(two_pi * scene.dis_hz[i, j] * t + scene.dis_phase[i, j]) for j in range(3)) for i in range(2)]
    dxp = np.clip(dpos[0], 0.05, 0.95) * scene.W
    dyp = np.clip(dpos[1], 0.05, 0.95) * scene.H

    bank = None
    if with_noise and knobs.pixel_noise > 0:
        noise_rng = np.random.default_rng(scene.noise_seed)
        bank = noise_rng.standard_normal((8, scene.H, scene.W, 3), dtype=np.float32) * np.float32(knobs.pixel_noise)
        bank = np.tile(bank, (1, 2, 2, 1))  # a window of the 2x2 tiling is a circular shift
        picks = np.stack([noise_rng.integers(0, 8, T), noise_rng.integers(0, scene.H, T), noise_rng.integers(0, scene.W, T),
                          noise_rng.choice([-1, 1], T)], axis=1).tolist()
    f32 = np.float32
    bright = bright.astype(f32)
    out = scene.bg_img[None] * bright[:, None, None, None]
    xs, ys, W, H = scene.xs, scene.ys, scene.W, scene.H
    discs = ((cx, cy, radius, actor), (dxp, dyp, np.full(T, scene.dis_r), np.broadcast_to(scene.dis_rgb, (T, 3))))
    for i in range(T):
        fr = out[i]
        for px_, py_, r_, col_ in discs:
            px, py, r = float(px_[i]), float(py_[i]), float(r_[i])
            x0, x1 = max(0, int(px - r - 1)), min(W, int(px + r + 2))
            y0, y1 = max(0, int(py - r - 1)), min(H, int(py + r + 2))
            if x1 <= x0 or y1 <= y0:
                continue
            d = np.sqrt((xs[None, x0:x1] - f32(px)) ** 2 + (ys[y0:y1, None] - f32(py)) ** 2)
            m = np.clip(f32(r + 0.5) - d, f32(0.0), f32(1.0))[..., None]
            reg = fr[y0:y1, x0:x1]
            reg += ((col_[i] * bright[i]).astype(f32) - reg) * m
        if bank is not None:  # a bank frame, randomly shifted and sign-flipped
            k, oy, ox, sg = picks[i]
            if sg > 0:
                fr += bank[k, oy:oy + H, ox:ox + W]
            else:
                fr -= bank[k, oy:oy + H, ox:ox + W]
    return out


def _channel_mean(frames: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Per-channel mean of (..., 3) frames, optionally of the frames clipped to [lo, hi] (chunked, no full copy)."""
    flat = frames.reshape(-1, 3)
    total = np.zeros(3)
    step = 1 << 18
    for s in range(0, flat.shape[0], step):
        part = flat[s:s + step]
        if lo is not None:
            part = np.clip(part, lo, hi)
        total += [part[:, c].sum(dtype=np.float64) for c in range(3)]
    return total / flat.shape[0]


def _match_mean(frames: np.ndarray, target: np.ndarray, iters: int = 4) -> np.ndarray:
    """Shift each channel so the clipped frames' mean equals ``target``; returns uint8 frames (works in place)."""
    frames += (target - _channel_mean(frames)).astype(np.float32)
    for _ in range(iters):
        err = _channel_mean(frames, 0.0, 255.0) - target  # what clipping changes
        if np.max(np.abs(err)) < 0.02:
            break
        frames -= err.astype(np.float32)
    np.clip(frames, 0.0, 255.0, out=frames)
    np.rint(frames, out=frames)
    return frames.astype(np.uint8)


def _render_audio(scene: _Scene, episodes: Sequence[Episode], sr: int, n: int, knobs: _Knobs) -> np.ndarray:
    t = np.arange(n) / sr
    two_pi = 2 * np.pi
    am = 1.0 + 0.3 * np.sin(two_pi * scene.drone_am_hz * t + scene.drone_phase[0])
    drone = scene.drone_amp * am * (np.sin(two_pi * scene.drone_hz * t) + 0.3 * np.sin(2 * two_pi * scene.drone_hz * t + scene.drone_phase[1]))
    nrng = np.random.default_rng(scene.noise_seed + 1)
    # pinkish background noise (1/sqrt(f) spectrum, band-limited)
    n_fft = 1 << max(1, (n - 1).bit_length())
    spec = np.fft.rfft(nrng.standard_normal(n_fft))
    f = np.fft.rfftfreq(n_fft, 1.0 / sr)
    shape = 1.0 / np.sqrt(np.maximum(f, 50.0))
    shape[f > 0.4 * sr] = 0.0
    bg = np.fft.irfft(spec * shape, n_fft)[:n]
    bg *= scene.bgnoise_amp / (np.sqrt(np.mean(bg**2)) + 1e-12)
    sig = drone + bg
    for onset, length, freq, amp in scene.dis_tones:
        i0, i1 = int(onset * sr), min(n, int((onset + length) * sr))
        if i1 <= i0:
            continue
        tau = np.arange(i1 - i0) / sr
        gate = np.clip(tau / 0.01, 0, 1) * np.clip((length - tau) / 0.03, 0, 1)
        sig[i0:i1] += amp * scene.tone_amp * gate * (np.sin(two_pi * freq * tau) + 0.3 * np.sin(2 * two_pi * freq * tau))
    for ep in episodes:
        if ep.aud <= 0:
            continue
        c = CUES[ep.cls]
        i0, i1 = max(0, int(ep.start * sr)), min(n, int(math.ceil(ep.end * sr)))
        if i1 <= i0:
            continue
        tau = np.arange(i1 - i0) / sr + (i0 / sr - ep.start)
        u = np.clip(tau / (ep.end - ep.start), 0.0, 1.0)
        env = ep.peak * ep.aud * _tukey(u)
        tempo = c.tempo + ((c.tempo_end - c.tempo) * u if c.tempo_end is not None else 0.0)
        bph = np.cumsum(np.broadcast_to(tempo, u.shape)) / sr
        frac = np.mod(bph, 1.0)
        gate = np.clip(frac / (0.01 * tempo), 0, 1) * np.clip((c.duty - frac) / (0.03 * tempo), 0, 1)
        semis = c.pitch + c.glide * np.clip(frac / c.duty, 0, 1) + c.drift * u
        if c.vibrato_st:
            semis = semis + c.vibrato_st * np.sin(two_pi * c.vibrato_hz * tau)
        freq = scene.f0 * 2.0 ** (semis / 12.0)
        cyc = np.cumsum(freq) / sr  # phase in cycles; kept in [0, 2) so float32 sines stay exact enough
        phi = (two_pi * np.mod(cyc, 2.0)).astype(np.float32)
        tone = np.zeros(len(phi), dtype=np.float32)
        for k, w in enumerate(c.harmonics, start=1):
            if w:
                tone += np.float32(w) * np.sin(np.float32(k) * phi) * (k * freq < 0.45 * sr)
        if c.fifth:
            tone += np.float32(c.fifth) * np.sin(np.float32(1.5) * phi)
        tone /= math.sqrt(sum(w * w for w in c.harmonics) + c.fifth**2)
        sig[i0:i1] += scene.tone_amp * env * gate * tone
    rms = np.sqrt(np.mean(sig**2)) + 1e-12
    if knobs.audio_noise > 0:
        sig = sig + nrng.standard_normal(n) * knobs.audio_noise * rms
    sig *= scene.target_rms / (np.sqrt(np.mean(sig**2)) + 1e-12)
    return np.clip(sig, -1.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
def _emotion_line(rng: np.random.Generator, cls: str) -> str:
    a, b = rng.choice(LEXICON[cls], size=2, replace=False)
    text = str(rng.choice(_EMOTION_TEMPLATES)).format(a=a, b=b)
    return text[0].upper() + text[1:]


def _neutral_line(rng: np.random.Generator) -> str:
    text = str(rng.choice(NEUTRAL_LINES))
    return text[0].upper() + text[1:] + "."


def _make_subtitles(rng: np.random.Generator, duration: float, episodes: Sequence[Episode], classes: Sequence[str], knobs: _Knobs) -> list[tuple[float, float, str]]:
    """Lines every 1-2 s. A line is an episode line if it overlaps an episode by >= 40% of its length or
    covers >= 80% of the episode, and each episode gets at least its most-overlapping line."""
    spans = []
    t = rng.uniform(0.0, 0.4)
    while t < duration - 0.5:
        e = min(duration, t + rng.uniform(1.0, 2.0))
        spans.append((t, e))
        t = e + rng.uniform(0.1, 0.5)
    texted = [ep for ep in episodes if ep.txt > 0]
    owner: list[Episode | None] = [None] * len(spans)
    for i, (t, e) in enumerate(spans):
        best, best_ov = None, 0.0
        for ep in texted:
            ov = min(e, ep.end) - max(t, ep.start)
            if ov > best_ov:
                best, best_ov = ep, ov
        if best is not None and (best_ov >= 0.4 * (e - t) or best_ov >= 0.8 * (best.end - best.start)):
            owner[i] = best
    for ep in texted:
        if not any(o is ep for o in owner):
            ovs = [min(e, ep.end) - max(t, ep.start) for t, e in spans]
            if ovs and max(ovs) > 0:
                owner[int(np.argmax(ovs))] = ep
    cues = []
    for (t, e), ep in zip(spans, owner):
        if ep is not None:
            r = rng.random()
            others = [c for c in classes if c != ep.cls]
            if rng.random() > ep.txt or r < knobs.p_neutral:
                text = _neutral_line(rng)
            elif r < knobs.p_neutral + knobs.p_wrong and others:
                text = _emotion_line(rng, str(rng.choice(others)))
            else:
                text = _emotion_line(rng, ep.cls)
        elif rng.random() < knobs.p_stray:
            text = _emotion_line(rng, str(rng.choice(EMOTIONS)))
        else:
            text = _neutral_line(rng)
        cues.append((round(float(t), 3), round(float(e), 3), text))
    return cues


# ---------------------------------------------------------------------------------------------
def _plan_trimmed(rng: np.random.Generator, duration: float, cls: str, classes: Sequence[str], knobs: _Knobs) -> list[Episode]:
    """Annotated episodes of ``cls`` (+ maybe one unannotated single-modality decoy of another class)."""
    n_ep = 1 if (knobs.level < 0.25 or duration < 5.0) else int(rng.integers(1, 3))
    total = knobs.coverage * duration * rng.uniform(0.85, 1.15)
    lengths = [max(1.2, total / n_ep * rng.uniform(0.8, 1.2)) for _ in range(n_ep)]
    spans = _place(rng, duration, lengths, gap=0.5, margin=0.3)
    peaks = knobs.strength * rng.uniform(0.7, 1.0, size=n_ep)
    seeds = rng.integers(0, 2**63 - 1, size=n_ep + 1)
    weak = {"vis": 1.0, "aud": 1.0, "txt": 1.0}
    if rng.random() < knobs.p_weak:
        weak[str(rng.choice(["vis", "aud", "txt"]))] = 0.3
    episodes = [Episode(round(float(s), 3), round(float(e), 3), cls, float(p), seed=int(sd), **weak) for (s, e), p, sd in zip(spans, peaks, seeds)]
    # decoy: weak cue of another class, one modality, in the largest neutral gap
    want_decoy = rng.random() < knobs.p_decoy
    d_len = rng.uniform(0.8, 1.3)
    d_mod = str(rng.choice(["vis", "aud"]))
    d_pos = rng.random()
    others = [c for c in classes if c != cls]
    if want_decoy and others:
        d_cls = str(rng.choice(others))
        bounds = [0.0] + [x for ep in episodes for x in (ep.start, ep.end)] + [duration]
        gaps = [(bounds[i], bounds[i + 1]) for i in range(0, len(bounds), 2)]
        g0, g1 = max(gaps, key=lambda g: g[1] - g[0])
        if g1 - g0 >= d_len + 0.4:
            s = g0 + 0.2 + d_pos * (g1 - g0 - 0.4 - d_len)
            mods = {"vis": 0.0, "aud": 0.0, "txt": 0.0, d_mod: 1.0}
            episodes.append(Episode(round(float(s), 3), round(float(s + d_len), 3), d_cls, float(knobs.decoy_peak * knobs.strength),
                                    annotated=False, seed=int(seeds[-1]), **mods))
    return episodes


def _plan_untrimmed(rng: np.random.Generator, duration: float, classes: Sequence[str], knobs: _Knobs) -> list[Episode]:
    n_ep = max(2, int(duration / 12.0) + int(rng.integers(0, 2)))
    lengths = rng.uniform(2.5, 5.0, size=n_ep)
    spans = _place(rng, duration, lengths, gap=2.0, margin=1.0)
    picks = [str(c) for c in rng.choice(list(classes), size=n_ep)]
    pols = {POLARITY[c] for c in picks}
    if len(pols) < 2:
        missing = "negative" if "positive" in pols else "positive"
        cands = [c for c in classes if POLARITY[c] == missing]
        if cands:
            picks[int(rng.integers(0, n_ep))] = str(rng.choice(cands))
    peaks = knobs.strength * rng.uniform(0.7, 1.0, size=n_ep)
    seeds = rng.integers(0, 2**63 - 1, size=n_ep)
    return [Episode(round(float(s), 3), round(float(e), 3), c, float(p), seed=int(sd)) for (s, e), c, p, sd in zip(spans, picks, peaks, seeds)]


def render_video(
    seed_parts: Sequence[int],
    duration_range: tuple[float, float],
    config: SynthConfig,
    *,
    cls: str | None,
) -> tuple[np.ndarray, np.ndarray, list[Episode], list[tuple[float, float, str]], float]:
    """Render one video in memory: (frames uint8 (T,H,W,3), audio float32, episodes, subtitle cues, duration).

    ``cls`` None renders an untrimmed video with several episodes of random classes.
    """
    knobs = difficulty_knobs(config.noise_level())
    ss = np.random.SeedSequence([int(x) for x in seed_parts])
    r_scene, r_plan, r_text = (np.random.default_rng(s) for s in ss.spawn(3))
    fps = float(config.fps)
    n_frames = max(2, int(round(r_scene.uniform(*duration_range) * fps)))
    duration = n_frames / fps
    W, H = config.size
    scene = _Scene(r_scene, W, H, duration, knobs)
    classes = config.class_names()
    if cls is None:
        episodes = _plan_untrimmed(r_plan, duration, classes, knobs)
    else:
        episodes = _plan_trimmed(r_plan, duration, cls, classes, knobs)
    t = np.arange(n_frames) / fps
    raw = _render_frames(scene, episodes, t, knobs, with_noise=True)
    # the mean colour is set by the same scene without any episode (every 4th frame is plenty)
    neutral_mean = np.zeros(3)
    sub = t[::4]
    for s in range(0, len(sub), 64):
        neutral_mean += _channel_mean(_render_frames(scene, [], sub[s:s + 64], knobs, with_noise=False)) * len(sub[s:s + 64])
    neutral_mean /= len(sub)
    frames = _match_mean(raw, neutral_mean)
    sr = int(config.sample_rate)
    audio = _render_audio(scene, episodes, sr, int(round(duration * sr)), knobs)
    subs = _make_subtitles(r_text, duration, episodes, classes, knobs) if config.subtitles else []
    return frames, audio, episodes, subs, duration


# ---------------------------------------------------------------------------------------------
def _write_mp4(path: Path, frames: np.ndarray, fps: float, audio: np.ndarray, sample_rate: int, crf: int) -> None:
    """H.264 + AAC mp4, byte-for-byte reproducible (``write_video`` runs x264 single-threaded, mb-tree off)."""
    from .media_writer import write_video

    write_video(path, frames, fps, audio, sample_rate, crf=crf)


def _job_trimmed(job: dict[str, Any]) -> dict[str, Any]:
    config = SynthConfig.from_dict(job["config"])
    out = Path(job["out_dir"])
    frames, audio, episodes, subs, duration = render_video((config.seed, 0, job["index"]), config.duration, config, cls=job["cls"])
    _write_mp4(out / job["video"], frames, config.fps, audio, config.sample_rate, config.crf)
    if job.get("subtitles"):
        write_srt(out / job["subtitles"], subs)
    entry = {"subset": job["subset"], "annotations": {"label": job["cls"]}, "video": job["video"]}
    if job.get("subtitles"):
        entry["subtitles"] = job["subtitles"]
    entry["episodes"] = [[ep.start, ep.end] for ep in episodes if ep.annotated]
    entry["duration"] = round(duration, 6)
    entry["num_frames"] = int(frames.shape[0])
    return {"id": job["id"], "entry": entry}


def _job_untrimmed(job: dict[str, Any]) -> dict[str, Any]:
    config = SynthConfig.from_dict(job["config"])
    out = Path(job["out_dir"])
    frames, audio, episodes, subs, duration = render_video((config.seed, 1, job["index"]), config.untrimmed_duration, config, cls=None)
    _write_mp4(out / job["video"], frames, config.fps, audio, config.sample_rate, config.crf)
    if job.get("subtitles"):
        write_srt(out / job["subtitles"], subs)
    prng = np.random.default_rng([config.seed, 2, job["index"]])
    anns, points = [], []
    n_frames = frames.shape[0]
    for ep in episodes:
        label = "p" if POLARITY[ep.cls] == "positive" else "n"
        anns.append({"segment": [ep.start, ep.end], "label": label, "emotion": ep.cls})
        pt = round(float(ep.start + (ep.end - ep.start) * prng.uniform(0.2, 0.8)), 3)
        points.append([job["id"], label, pt, min(n_frames - 1, int(pt * config.fps)), ep.cls])
    entry = {"subset": job["subset"], "duration": round(duration, 6), "fps": config.fps, "num_frames": n_frames, "annotations": anns,
             "video": job["video"]}
    if job.get("subtitles"):
        entry["subtitles"] = job["subtitles"]
    return {"id": job["id"], "entry": entry, "points": points}


def _run_jobs(fn: Callable[[dict], dict], jobs: list[dict], workers: int, progress: Callable[[int, int], None] | None, done0: int, total: int) -> list[dict]:
    results: list[dict] = []
    if workers <= 1 or len(jobs) <= 1:
        for j in jobs:
            results.append(fn(j))
            if progress:
                progress(done0 + len(results), total)
        return results
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        for r in pool.map(fn, jobs, chunksize=max(1, len(jobs) // (workers * 8))):
            results.append(r)
            if progress:
                progress(done0 + len(results), total)
    return results


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _is_ours(rel: str) -> bool:
    parts = Path(rel).parts
    return (not os.path.isabs(rel) and ".." not in parts and len(parts) >= 2 and parts[0] in ("videos", "subtitles")
            and rel.endswith((".mp4", ".srt")))


def _remove_previous(out: Path, old: dict[str, Any]) -> None:
    """Remove the files a previous generation listed (and nothing else)."""
    for entry in (old.get("database") or {}).values():
        for key in ("video", "subtitles"):
            p = entry.get(key) if isinstance(entry, dict) else None
            if isinstance(p, str) and _is_ours(p):
                (out / p).unlink(missing_ok=True)
    gt = out / "untrimmed" / "gt.json"
    if gt.is_file():
        try:
            data = json.loads(gt.read_text(encoding="utf-8"))
            for entry in (data.get("database") or {}).values():
                for key in ("video", "subtitles"):
                    p = entry.get(key) if isinstance(entry, dict) else None
                    if isinstance(p, str) and _is_ours(p):
                        (out / "untrimmed" / p).unlink(missing_ok=True)
        except (OSError, ValueError):
            pass
        for name in ("gt.json", "point_labels.csv"):
            (out / "untrimmed" / name).unlink(missing_ok=True)
    # drop the folders this left empty (only ours: class folders and the untrimmed tree)
    dirs = [d for top in ("videos", "subtitles") if (out / top).is_dir() for d in (out / top).iterdir() if d.is_dir()]
    dirs += [out / "untrimmed" / "videos", out / "untrimmed" / "subtitles", out / "untrimmed"]
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            pass


def generate(
    out_dir: str | os.PathLike,
    config: SynthConfig | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the synthetic set under ``out_dir``; returns the path of ``synth.json``.

    If ``out_dir/synth.json`` already exists and was written with the same config (and its files are
    present), nothing is regenerated unless ``overwrite``. A different config regenerates the set (the
    files listed by the old annotation are removed first). The annotation is written last, so an
    interrupted run never looks complete.
    """
    config = config or SynthConfig()
    config.validate()
    out = Path(out_dir)
    ann_path = out / "synth.json"
    gen_info = {"name": GENERATOR_NAME, "version": GENERATOR_VERSION, "config": config.to_dict()}
    if ann_path.is_file():
        try:
            old = json.loads(ann_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        same = isinstance(old, dict) and old.get("generator") == gen_info
        complete = same and all((out / e["video"]).is_file() for e in old.get("database", {}).values())
        if complete and config.untrimmed:
            complete = (out / "untrimmed" / "gt.json").is_file()
        if complete and not overwrite:
            return ann_path
        ours = isinstance(old, dict) and isinstance(old.get("generator"), dict) and old["generator"].get("name") == GENERATOR_NAME
        if not ours:
            raise DatasetError(f"{ann_path} exists and was not written by {GENERATOR_NAME}; choose another folder")
        _remove_previous(out, old)
        ann_path.unlink(missing_ok=True)

    classes = config.class_names()
    cfg_dict = config.to_dict()
    jobs, index = [], 0
    for subset, n in (("training", config.train_per_class), ("validation", config.val_per_class), ("testing", config.test_per_class)):
        for c in classes:
            for _ in range(int(n)):
                index += 1
                vid = f"synth_{index:05d}"
                jobs.append({
                    "config": cfg_dict, "out_dir": str(out), "index": index, "id": vid, "cls": c, "subset": subset,
                    "video": f"videos/{c}/{vid}.mp4",
                    "subtitles": f"subtitles/{c}/{vid}.srt" if config.subtitles else None,
                })
    ujobs = []
    n_u = int(config.untrimmed)
    n_test = int(round(n_u * config.untrimmed_test_fraction))
    if n_u >= 2 and config.untrimmed_test_fraction > 0:
        n_test = min(n_u - 1, max(1, n_test))
    for i in range(1, n_u + 1):
        vid = f"synthu_{i:05d}"
        ujobs.append({
            "config": cfg_dict, "out_dir": str(out / "untrimmed"), "index": i, "id": vid,
            "subset": "test" if i > n_u - n_test else "train",
            "video": f"videos/{vid}.mp4", "subtitles": f"subtitles/{vid}.srt" if config.subtitles else None,
        })
    for c in classes:
        (out / "videos" / c).mkdir(parents=True, exist_ok=True)
        if config.subtitles:
            (out / "subtitles" / c).mkdir(parents=True, exist_ok=True)
    if ujobs:
        (out / "untrimmed" / "videos").mkdir(parents=True, exist_ok=True)
        if config.subtitles:
            (out / "untrimmed" / "subtitles").mkdir(parents=True, exist_ok=True)

    total = len(jobs) + len(ujobs)
    results = _run_jobs(_job_trimmed, jobs, int(workers), progress, 0, total)
    uresults = _run_jobs(_job_untrimmed, ujobs, int(workers), progress, len(jobs), total)

    if ujobs:
        gt = {"version": f"{GENERATOR_NAME} v{GENERATOR_VERSION}", "database": {r["id"]: r["entry"] for r in uresults}}
        _write_text(out / "untrimmed" / "gt.json", json.dumps(gt, indent=1))
        rows = ["video_id,class,point_time,point_frame,emotion"]
        rows += [f"{v},{lab},{pt:.3f},{fr},{emo}" for r in uresults for v, lab, pt, fr, emo in r["points"]]
        _write_text(out / "untrimmed" / "point_labels.csv", "\n".join(rows) + "\n")

    _write_text(out / "classInd.txt", "".join(f"{i} {c}\n" for i, c in enumerate(classes, start=1)))
    lists = {"training": "trainlist01.txt", "validation": "vallist01.txt", "testing": "testlist01.txt"}
    cidx = {c: i for i, c in enumerate(classes, start=1)}
    for subset, name in lists.items():
        _write_text(out / name, "".join(f"{j['cls']}/{j['id']} {cidx[j['cls']]}\n" for j in jobs if j["subset"] == subset))
    ann = {
        "labels": classes,
        "database": {r["id"]: r["entry"] for r in results},
        "polarity": {c: POLARITY[c] for c in classes},
        "generator": gen_info,
    }
    _write_text(ann_path, json.dumps(ann, indent=1))
    return ann_path


def load_untrimmed_points(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read ``untrimmed/point_labels.csv`` into dicts with typed values."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [
            {"video_id": r["video_id"], "class": r["class"], "point_time": float(r["point_time"]),
             "point_frame": int(r["point_frame"]), "emotion": r.get("emotion")}
            for r in csv.DictReader(fh)
        ]


# ---------------------------------------------------------------------------------------------
# CLI helpers (the `affectkit data synth` sub-command is wired in affectkit.cli)
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``affectkit data synth`` options to ``parser``."""
    d = SynthConfig()
    parser.add_argument("out_dir", nargs="?", default=None, help="output folder (default: demo_data)")
    parser.add_argument("--out", dest="out", default=None, help="output folder (same as the positional argument)")
    parser.add_argument("--num-classes", type=int, default=d.num_classes, help="K classes, 2..8 (default 4)")
    parser.add_argument("--classes", default=None, help="comma-separated class names (overrides --num-classes)")
    parser.add_argument("--train-per-class", type=int, default=d.train_per_class, help=f"training videos per class (default {d.train_per_class})")
    parser.add_argument("--val-per-class", type=int, default=d.val_per_class, help=f"validation videos per class (default {d.val_per_class})")
    parser.add_argument("--test-per-class", type=int, default=d.test_per_class, help=f"test videos per class (default {d.test_per_class})")
    parser.add_argument("--duration", type=float, nargs=2, default=list(d.duration), metavar=("MIN", "MAX"),
                        help=f"video length range in seconds (default {d.duration[0]:g} {d.duration[1]:g})")
    parser.add_argument("--fps", type=float, default=d.fps, help=f"frames per second (default {d.fps:g})")
    parser.add_argument("--size", type=int, nargs=2, default=list(d.size), metavar=("W", "H"), help=f"frame size in pixels (default {d.size[0]} {d.size[1]})")
    parser.add_argument("--sample-rate", type=int, default=d.sample_rate, help=f"audio sample rate in Hz (default {d.sample_rate})")
    parser.add_argument("--difficulty", default=d.difficulty, help="easy | default | hard | noise level in [0, 1]")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"random seed: the same seed writes the same set (default {d.seed})")
    parser.add_argument("--untrimmed", type=int, default=d.untrimmed, help="also write N untrimmed videos")
    parser.add_argument("--no-subtitles", action="store_true", help="do not write the SRT subtitle files")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes (output is the same for any number)")
    parser.add_argument("--overwrite", action="store_true", help="write the set again even if the folder already holds it")
    parser.add_argument("--kind", choices=("video", "gait"), default="video",
                        help="video (default) or gait: Emotion-Gait-format walking skeletons (features.h5 + labels.h5)")
    parser.add_argument("--per-class", type=int, default=60, help="--kind gait: gaits per class (default 60)")
    parser.add_argument("--cues", choices=("crossed", "dynamic"), default="crossed",
                        help="--kind gait: the style cues: crossed (tempo x carriage, default) or dynamic "
                             "(+ bounce, limb flexion, stomp; more individual carriage)")


def config_from_args(args: argparse.Namespace) -> SynthConfig:
    return SynthConfig(
        num_classes=args.num_classes,
        classes=tuple(c.strip() for c in args.classes.split(",") if c.strip()) if args.classes else None,
        train_per_class=args.train_per_class, val_per_class=args.val_per_class, test_per_class=args.test_per_class,
        duration=tuple(args.duration), fps=args.fps, size=tuple(args.size), sample_rate=args.sample_rate,
        difficulty=args.difficulty, seed=args.seed, untrimmed=args.untrimmed, subtitles=not args.no_subtitles,
    )


def run_from_args(args: argparse.Namespace) -> Path:
    """Generate from parsed ``add_arguments`` options; prints a one-line summary; returns synth.json."""
    if getattr(args, "kind", "video") == "gait":  # affectkit.data.synth_gait
        from .synth_gait import SynthGaitConfig, generate_gait

        out_dir = getattr(args, "out", None) or args.out_dir or "demo_gait"
        gcfg = SynthGaitConfig(per_class=args.per_class, difficulty=args.difficulty, seed=args.seed,
                               cues=getattr(args, "cues", "crossed"))
        path = generate_gait(out_dir, gcfg, overwrite=args.overwrite)
        print(f"synthetic gaits: {4 * gcfg.per_class} gaits, difficulty {gcfg.difficulty}, cues {gcfg.cues} -> {path} "
              f"(train with data.format=gait data.path={path})")
        return path
    config = config_from_args(args)
    t0 = time.perf_counter()
    out_dir = getattr(args, "out", None) or args.out_dir or "demo_data"
    ann = Path(out_dir) / "synth.json"
    before = ann.stat().st_mtime_ns if ann.is_file() else None
    path = generate(out_dir, config, workers=args.workers, overwrite=args.overwrite)
    n = len(json.loads(path.read_text(encoding="utf-8"))["database"])
    if before is not None and path.stat().st_mtime_ns == before:  # generate() found the same set complete
        print(f"synthetic set: reused the existing set in {out_dir} (written with the same options; "
              f"--overwrite writes it again): {n} videos, classes {', '.join(config.class_names())} -> {path}")
        return path
    print(f"synthetic set: {n} videos, classes {', '.join(config.class_names())}, difficulty {config.difficulty}"
          f"{f', {config.untrimmed} untrimmed' if config.untrimmed else ''} -> {path} ({time.perf_counter() - t0:.1f} s)")
    return path
