"""The synthetic affective video set: layout and format, determinism, no shallow shortcut, untrimmed videos."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import av
import numpy as np
import pytest

from affectkit.data.synth import EMOTIONS, LEXICON, POLARITY, SynthConfig, generate, read_srt
from affectkit.errors import ConfigError, DatasetError


# ---------------------------------------------------------------------------------------------
def decode(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(frames (T, H, W, 3) float32, mono audio float32, sample rate) of an mp4, via PyAV."""
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(np.float32)
    with av.open(str(path)) as c:
        sr = c.streams.audio[0].rate
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]).astype(np.float32)
    return frames, audio, sr


def shallow_features(frames: np.ndarray, audio: np.ndarray) -> np.ndarray:
    """Per-video mean R, G, B and loudness (RMS of the whole track)."""
    return np.array([*frames.reshape(-1, 3).mean(axis=0), np.sqrt(np.mean(audio**2))])


def _band_profile(x: np.ndarray, n_bands: int) -> np.ndarray:
    """Log relative power of a 1-D series in ``n_bands`` equal frequency bands (DC removed)."""
    x = x - x.mean()
    power = np.abs(np.fft.rfft(x * np.hanning(len(x))))[1:] ** 2
    edges = np.linspace(0, len(power), n_bands + 1).astype(int)
    bands = np.array([power[edges[i]:max(edges[i] + 1, edges[i + 1])].sum() for i in range(n_bands)])
    return np.log(bands / (bands.sum() + 1e-9) + 1e-6)


def dynamic_features(frames: np.ndarray, audio: np.ndarray, sr: int) -> np.ndarray:
    """A few per-video temporal statistics: frame-difference and brightness spectra, audio modulation,
    zero-crossing, spectral centroid and pitch-glide statistics."""
    grey = frames.mean(axis=-1)
    bright = grey.mean(axis=(1, 2))
    motion = np.abs(np.diff(grey, axis=0)).mean(axis=(1, 2))
    feats = [*_band_profile(bright, 6), *_band_profile(motion, 6), np.log(motion.mean() + 1e-6),
             np.log(motion.max() + 1e-6), np.log(bright.std() / (bright.mean() + 1e-6) + 1e-6)]
    hop, win = 256, 1024
    n = len(audio) // hop
    blocks = audio[: n * hop].reshape(n, hop)
    env = np.sqrt((blocks**2).mean(axis=1)) + 1e-6
    zcr = (np.abs(np.diff(np.sign(blocks), axis=1)) > 0).mean(axis=1)
    spec = np.abs(np.fft.rfft(np.stack([audio[i:i + win] * np.hanning(win) for i in range(0, len(audio) - win, hop)]), axis=1))
    freqs = np.fft.rfftfreq(win, 1.0 / sr)
    centroid = (spec * freqs).sum(axis=1) / (spec.sum(axis=1) + 1e-9)
    peak = freqs[np.argmax(spec[:, 3:], axis=1) + 3]
    loud = env[: len(peak)] > np.percentile(env, 60)
    slope = np.diff(np.log2(peak + 1.0))
    both = loud[1:] & loud[:-1]
    feats += [*_band_profile(np.log(env), 8), zcr.mean(), zcr.std(), np.percentile(zcr, 90), np.log(centroid.mean()),
              centroid.std() / centroid.mean(), np.mean(slope[both] > 0.01) if both.any() else 0.0,
              np.mean(slope[both] < -0.01) if both.any() else 0.0, env.std() / env.mean()]
    return np.array(feats)


def cv_accuracy(X: np.ndarray, y: np.ndarray) -> float:
    """5-fold stratified cross-validated accuracy of a standardised logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(cross_val_score(clf, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean())


def featurise(ann_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = json.loads(ann_path.read_text())
    shallow, dynamic, y = [], [], []
    for entry in data["database"].values():
        frames, audio, sr = decode(ann_path.parent / entry["video"])
        shallow.append(shallow_features(frames, audio))
        dynamic.append(dynamic_features(frames, audio, sr))
        y.append(data["labels"].index(entry["annotations"]["label"]))
    return np.array(shallow), np.array(dynamic), np.array(y)


# ---------------------------------------------------------------------------------------------
SMALL = SynthConfig(num_classes=4, train_per_class=2, val_per_class=1, test_per_class=1, duration=(2.0, 3.0),
                    size=(48, 48), untrimmed=3, untrimmed_duration=(12.0, 16.0), seed=3)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth_small"), SMALL)


def test_layout_and_annotation_format(small_set: Path):
    root = small_set.parent
    data = json.loads(small_set.read_text())
    classes = SMALL.class_names()
    assert classes == ["Anger", "Joy", "Sadness", "Surprise"]
    assert data["labels"] == classes
    assert data["polarity"] == {c: POLARITY[c] for c in classes}
    assert set(data["polarity"].values()) == {"positive", "negative"}
    assert data["generator"]["config"] == SMALL.to_dict()
    assert SynthConfig.from_dict(data["generator"]["config"]) == SMALL

    counts: dict[tuple[str, str], int] = {}
    for vid, e in data["database"].items():
        assert re.fullmatch(r"synth_\d{5}", vid)
        assert e["subset"] in ("training", "validation", "testing")
        label = e["annotations"]["label"]
        counts[(e["subset"], label)] = counts.get((e["subset"], label), 0) + 1
        assert e["video"] == f"videos/{label}/{vid}.mp4" and (root / e["video"]).is_file()
        assert e["subtitles"] == f"subtitles/{label}/{vid}.srt" and (root / e["subtitles"]).is_file()
        assert 2.0 - 1e-6 <= e["duration"] <= 3.0 + 0.1
        assert 1 <= len(e["episodes"]) <= 2
        for s, t in e["episodes"]:
            assert 0.0 <= s < t <= e["duration"]
    for c in classes:
        assert counts[("training", c)] == 2 and counts[("validation", c)] == 1 and counts[("testing", c)] == 1
    assert len(data["database"]) == 16

    # real mp4 files: one video and one audio stream, the configured size and rates
    for e in list(data["database"].values())[:6]:
        with av.open(str(root / e["video"])) as c:
            assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
            v, a = c.streams.video[0], c.streams.audio[0]
            assert (v.codec_context.width, v.codec_context.height) == (48, 48)
            assert a.rate == 16000 and a.codec_context.name == "aac"
        frames, audio, sr = decode(root / e["video"])
        assert len(frames) == e["num_frames"] and abs(len(frames) / 12.0 - e["duration"]) < 1e-5
        assert abs(len(audio) / sr - e["duration"]) < 0.15
        assert frames.std() > 1.0 and audio.std() > 1e-3

    # subtitles parse, are ordered and lie inside the video; emotion words are mostly the class's own
    own = other = with_own = 0
    for e in data["database"].values():
        label = e["annotations"]["label"]
        cues = read_srt(root / e["subtitles"])
        assert cues
        prev_end, n_own = 0.0, 0
        for s, t, text in cues:
            assert prev_end <= s < t <= e["duration"] + 1e-3 and text.strip()
            prev_end = t
            words = set(re.findall(r"[a-z]+", text.lower()))
            n_own += bool(words & set(LEXICON[label]))
            other += bool(words & {w for c in EMOTIONS if c != label for w in LEXICON[c]})
        own += n_own
        with_own += n_own > 0
    assert own > 2 * other and with_own >= 10

    # VE-8 style lists for the old tooling
    assert (root / "classInd.txt").read_text().splitlines() == [f"{i} {c}" for i, c in enumerate(classes, 1)]
    train = (root / "trainlist01.txt").read_text().splitlines()
    test = (root / "testlist01.txt").read_text().splitlines()
    assert len(train) == 8 and len(test) == 4 and len((root / "vallist01.txt").read_text().splitlines()) == 4
    for line in train + test:
        path, idx = line.split()
        cls, vid = path.split("/")
        assert classes[int(idx) - 1] == cls and data["database"][vid]["annotations"]["label"] == cls

    # same config again: nothing is rewritten
    mtime = (root / "synth.json").stat().st_mtime_ns
    assert generate(root, SMALL) == small_set
    assert (root / "synth.json").stat().st_mtime_ns == mtime


def test_untrimmed_segments_and_points(small_set: Path):
    uroot = small_set.parent / "untrimmed"
    gt = json.loads((uroot / "gt.json").read_text())
    db = gt["database"]
    assert sorted(db) == ["synthu_00001", "synthu_00002", "synthu_00003"]
    assert {e["subset"] for e in db.values()} == {"train", "test"}
    labels = set()
    for vid, e in db.items():
        assert 12.0 - 1e-6 <= e["duration"] <= 16.1
        segs = e["annotations"]
        assert len(segs) >= 2
        assert {a["label"] for a in segs} == {"p", "n"}  # each video has both polarities
        prev = 0.0
        for a in segs:
            s, t = a["segment"]
            assert prev <= s < t <= e["duration"]
            assert t - s >= 1.0
            assert a["label"] == ("p" if POLARITY[a["emotion"]] == "positive" else "n")
            labels.add(a["label"])
            prev = t
        path = uroot / e["video"]
        with av.open(str(path)) as c:
            assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
            n_frames = sum(1 for _ in c.decode(video=0))
        assert n_frames == e["num_frames"] and abs(n_frames / 12.0 - e["duration"]) < 1e-5
        assert read_srt(uroot / e["subtitles"])
    assert labels == {"p", "n"}

    with open(uroot / "point_labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"video_id", "class", "point_time", "point_frame"} <= set(rows[0])
    assert len(rows) == sum(len(e["annotations"]) for e in db.values())
    for vid, e in db.items():
        points = [r for r in rows if r["video_id"] == vid]
        assert len(points) == len(e["annotations"])
        for r, a in zip(points, e["annotations"]):
            t = float(r["point_time"])
            s, end = a["segment"]
            assert s <= t <= end and r["class"] == a["label"]
            assert int(r["point_frame"]) == int(t * 12.0)


def test_deterministic_from_seed(tmp_path: Path):
    cfg = SynthConfig(num_classes=2, train_per_class=2, val_per_class=0, test_per_class=1, duration=(2.0, 3.0),
                      size=(48, 48), untrimmed=1, untrimmed_duration=(10.0, 11.0), seed=7)
    a = generate(tmp_path / "a", cfg).parent
    b = generate(tmp_path / "b", cfg).parent
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) > 10
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    data = json.loads((a / "synth.json").read_text())
    first = next(iter(data["database"].values()))["video"]
    fa, aa, _ = decode(a / first)
    fb, ab, _ = decode(b / first)
    assert np.array_equal(fa, fb) and np.array_equal(aa, ab)

    other = generate(tmp_path / "c", SynthConfig(**{**cfg.to_dict(), "seed": 8, "duration": (2.0, 3.0), "size": (48, 48),
                                                     "untrimmed_duration": (10.0, 11.0)})).parent
    assert (other / first).read_bytes() != (a / first).read_bytes()
    assert json.loads((other / "synth.json").read_text())["database"] != data["database"]


def test_regenerating_with_another_config_replaces_the_old_files(tmp_path: Path):
    first = SynthConfig(num_classes=3, train_per_class=1, val_per_class=0, test_per_class=0, duration=(1.0, 1.5),
                        size=(32, 32), untrimmed=1, untrimmed_duration=(10.0, 10.0))
    generate(tmp_path, first)
    assert (tmp_path / "videos" / "Sadness").is_dir() and (tmp_path / "untrimmed" / "gt.json").is_file()
    second = SynthConfig(num_classes=2, train_per_class=1, val_per_class=0, test_per_class=0, duration=(1.0, 1.5), size=(32, 32))
    data = json.loads(generate(tmp_path, second).read_text())
    assert data["labels"] == ["Anger", "Joy"]
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(["synth.json", "classInd.txt", "trainlist01.txt", "vallist01.txt", "testlist01.txt",
                            "videos/Anger/synth_00001.mp4", "videos/Joy/synth_00002.mp4",
                            "subtitles/Anger/synth_00001.srt", "subtitles/Joy/synth_00002.srt"])
    # a synth.json this generator did not write is never touched
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "synth.json").write_text(json.dumps({"labels": ["a"], "database": {}}))
    with pytest.raises(DatasetError):
        generate(foreign, second)


def test_config_validation():
    with pytest.raises(ConfigError):
        SynthConfig(num_classes=9)
    with pytest.raises(ConfigError):
        SynthConfig(size=(47, 48))
    with pytest.raises(ConfigError):
        SynthConfig(difficulty="brutal")
    with pytest.raises(ConfigError):
        SynthConfig(classes=("Anger", "Boredom"))
    assert SynthConfig(difficulty="0.25").noise_level() == 0.25
    assert SynthConfig(num_classes=2).class_names() == ["Anger", "Joy"]
    assert len(SynthConfig(num_classes=8).class_names()) == 8


# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_no_shallow_shortcut_but_dynamics_carry_the_class(tmp_path_factory):
    """Default difficulty: per-video mean colour + loudness stay near chance; at easy difficulty a few
    temporal statistics (positive control) read the class far above chance."""
    base = dict(num_classes=4, val_per_class=0, test_per_class=0, duration=(3.0, 5.0), size=(48, 48))
    chance = 0.25
    default = generate(tmp_path_factory.mktemp("synth_default"), SynthConfig(train_per_class=40, difficulty="default", **base))
    X_shallow, X_dyn, y = featurise(default)
    assert np.bincount(y).tolist() == [40, 40, 40, 40]
    shallow_acc = cv_accuracy(X_shallow, y)
    dyn_default_acc = cv_accuracy(X_dyn, y)

    easy = generate(tmp_path_factory.mktemp("synth_easy"), SynthConfig(train_per_class=20, difficulty="easy", seed=1, **base))
    _, X_dyn_easy, y_easy = featurise(easy)
    dyn_easy_acc = cv_accuracy(X_dyn_easy, y_easy)
    print(f"\nshallow (mean RGB + RMS), default difficulty: {shallow_acc:.3f} (chance {chance:.2f}); "
          f"dynamic statistics: default {dyn_default_acc:.3f}, easy {dyn_easy_acc:.3f}")
    assert shallow_acc <= chance + 0.15
    assert dyn_easy_acc >= 2 * chance
    assert dyn_default_acc >= shallow_acc + 0.3  # the default set is learnable, from its dynamics
