"""Gait data: the Emotion-Gait reader and label remapping (real files), preprocessing, derived
features, augmentation, splits, the ``data.format: gait`` index and the synthetic gait generator."""
import collections

import h5py
import numpy as np
import pytest
import torch

from affectkit.config import DataSection
from affectkit.data import gait
from affectkit.data.datasets import build_index
from affectkit.data.synth_gait import SynthGaitConfig, generate_gait
from affectkit.errors import DatasetError, MediaError


# -- real Emotion-Gait files -----------------------------------------------------------------
def test_real_labels_load_with_the_native_counts_and_remap_by_name(shared_data):
    labels = gait.read_gait_labels(shared_data / "egait_samples" / "labels.h5")
    assert len(labels) == 342
    counts = collections.Counter(labels.values())
    assert [counts[i] for i in range(4)] == [112, 33, 78, 119]  # 0 Angry, 1 Neutral, 2 Happy, 3 Sad
    kit = collections.Counter(gait.GAIT_CLASSES[gait.native_to_classes(v, gait.GAIT_CLASSES)] for v in labels.values())
    assert kit == {"Angry": 112, "Neutral": 33, "Happy": 78, "Sad": 119}
    assert min(kit, key=kit.get) == "Neutral"  # the minority class, as the paper says
    # the emotion word in a key is the recording prompt, not the label
    assert labels["001_Angry_positions.csv"] == 1 and gait.EGAIT_NATIVE[1] == "Neutral"


def test_real_sample_pair_reads_into_gait_records(shared_data):
    feats = shared_data / "egait_samples" / "sample_features.h5"
    assert gait.find_labels_file(feats).name == "sample_lables.h5"  # the release's spelling
    x = gait.read_gait_features(feats)
    assert {k: v.shape for k, v in x.items()} == {"002_Sad_positions.csv": (32, 16, 3),
                                                  "004_Angry_positions.csv": (26, 16, 3),
                                                  "008_Happy_positions.csv": (30, 16, 3)}
    head_above_root = np.mean([v[:, gait.J["head"], gait.UP_AXIS].mean() for v in x.values()])
    assert head_above_root > 0.3  # y is up: the joint order and the axis are read right


def test_real_sample_labels_follow_the_labels_file(shared_data):
    feats = shared_data / "egait_samples" / "sample_features.h5"
    index = build_index(DataSection(format="gait", path=str(feats), test_fraction=0.34))
    names = {r.video_id: r.label_name for r in index.records}
    # sample_lables.h5 holds 3, 1, 1: Sad, Neutral, Neutral (not the words in the keys)
    assert names == {"002_Sad_positions.csv": "Sad", "004_Angry_positions.csv": "Neutral",
                     "008_Happy_positions.csv": "Neutral"}
    assert index.classes == ["Happy", "Sad", "Angry", "Neutral"]
    assert all(r.label == index.classes.index(r.label_name) for r in index.records)


# -- preprocessing and features --------------------------------------------------------------
def test_preprocess_subsamples_long_and_pads_short_gaits():
    long = np.arange(240 * 16 * 3, dtype=np.float32).reshape(240, 16, 3)
    out, n = gait.preprocess_gait(long)
    assert out.shape == (48, 16, 3) and n == 48
    assert np.array_equal(out, long[::5])  # ELMD: every 5th frame
    mid = long[:75]
    out, n = gait.preprocess_gait(mid)
    assert n == 48 and np.array_equal(out, mid[:48])  # the 342 real gaits: the first 48 frames
    short = long[:30] + 1
    out, n = gait.preprocess_gait(short)
    assert n == 30 and np.array_equal(out[:30], short) and not out[30:].any()


def test_movement_is_velocity_and_acceleration_and_zero_on_padding():
    t = np.arange(48, dtype=np.float32)
    x = np.zeros((3, 48, 16), np.float32)
    x[0, :, 1:] = (0.5 * 0.01 * t ** 2)[:, None]  # constant acceleration 0.01 along x
    x[1, :, 1:] = 1.0
    x[:, 40:] = 0.0  # padding
    m = gait.movement_features(x)
    assert m.shape == (8, 48, 16)
    vx, speed, ax, amag = m[0], m[3], m[4], m[7]
    assert torch.allclose(vx[1:40, 1], torch.tensor(0.01 * (t[1:40] - 0.5)), atol=1e-5)
    assert torch.allclose(speed[1:40], vx[1:40].abs(), atol=1e-6)
    assert torch.allclose(ax[2:40, 1], torch.full((38,), 0.01), atol=1e-5)
    assert torch.allclose(amag[2:40, 1:], torch.full((38, 15), 0.01), atol=1e-5)
    assert not m[:, 0].any() and not m[4:, 1].any()  # v_0 = 0, a_0 = a_1 = 0
    assert not m[:, 40:].any()  # padded frames (and the jump into them) stay 0
    assert not m[:, :, 0].any()  # the root does not move


def test_affective_features_have_the_spec_definitions():
    x = np.zeros((2, 16, 3), np.float32)
    J = gait.J
    x[:, J["neck"]] = [0, 1, 0]
    x[:, J["l_shoulder"]] = [1, 1, 0]
    x[:, J["r_shoulder"]] = [-1, 1, 0]
    x[:, J["head"]] = [0, 2, 0]
    x[:, J["l_hand"]] = [3, 0, 0]
    x[:, J["r_hand"]] = [-4, 0, 0]
    f = gait.affective_features(x, length=1)
    assert f.shape == (2, 31) and len(gait.AFFECTIVE_NAMES) == 31
    col = {n: i for i, n in enumerate(gait.AFFECTIVE_NAMES)}
    assert f[0, col["angle:l_shoulder-neck-r_shoulder"]] == pytest.approx(np.pi)
    assert f[0, col["angle:head-root-up"]] == pytest.approx(0.0, abs=1e-3)  # head straight above the root
    assert f[0, col["dist:l_hand-root"]] == pytest.approx(3.0)
    assert f[0, col["dist:r_hand-root"]] == pytest.approx(4.0)
    assert f[0, col["area:l_hand-root-r_hand"]] == pytest.approx(0.0)  # collinear
    assert f[0, col["area:l_hand-neck-r_hand"]] == pytest.approx(0.5 * 7 * 1)
    assert not f[1].any()  # beyond length


def test_random_move_transforms_xy_of_real_frames_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 16, 3)).astype(np.float32)
    x[40:] = 0
    moved = [gait.random_move(x, 40, np.random.default_rng(s)) for s in range(5)]
    assert any(not np.allclose(m[:40, :, :2], x[:40, :, :2]) for m in moved)
    for m in moved:
        assert np.array_equal(m[:, :, 2], x[:, :, 2]) and not m[40:].any()
        # a similarity transform: the distance ratios between joints in a frame are kept
        d = np.linalg.norm(m[0, :, None, :2] - m[0, None, :, :2], axis=-1)
        d0 = np.linalg.norm(x[0, :, None, :2] - x[0, None, :, :2], axis=-1)
        ratio = d[d0 > 1e-3] / d0[d0 > 1e-3]
        assert ratio.std() < 1e-4 and 0.89 < ratio.mean() < 1.11


def test_splits_are_stratified_and_folds_cover_every_sample_once():
    y = [0] * 50 + [1] * 30 + [2] * 12 + [3] * 8
    train, test = gait.stratified_split(y, 0.1, seed=3)
    assert sorted(train + test) == list(range(100)) and not set(train) & set(test)
    assert collections.Counter(y[i] for i in test) == {0: 5, 1: 3, 2: 1, 3: 1}
    assert gait.stratified_split(y, 0.1, seed=3) == (train, test)
    folds = gait.kfold_splits(y, 5, seed=0)
    assert len(folds) == 5
    tests = [i for _, te in folds for i in te]
    assert sorted(tests) == list(range(100))
    for tr, te in folds:
        assert not set(tr) & set(te)
        assert collections.Counter(y[i] for i in te)[0] == 10 and len(te) == 20


# -- the index, bad files -----------------------------------------------------------------------
def _pair(tmp_path, gaits: dict, labels: dict, name="features.h5"):
    f = tmp_path / name
    with h5py.File(f, "w") as h:
        for k, v in gaits.items():
            h.create_dataset(k, data=v)
    with h5py.File(tmp_path / name.replace("features", "labels"), "w") as h:
        for k, v in labels.items():
            h.create_dataset(k, data=v)
    return f


def test_gait_index_splits_test_then_validation_from_train(tmp_path):
    f = generate_gait(tmp_path / "g", SynthGaitConfig(per_class=20, seed=1))
    index = build_index(DataSection(format="gait", path=str(f), val_fraction=0.2, split_seed=0))
    counts = index.counts()
    assert set(counts) == {"train", "val", "test"}
    assert all(counts["test"][c] == 2 and counts["val"][c] == 4 and counts["train"][c] == 14 for c in gait.GAIT_CLASSES)
    fold = build_index(DataSection(format="gait", path=str(f), fold=2))
    assert sum(fold.counts()["test"].values()) == 16


def test_bad_gait_files_are_clear_errors(tmp_path):
    good = np.zeros((30, 48))
    with pytest.raises(MediaError, match=r"features\.h5: gait 'a' has shape \(30, 47\)"):
        build_index(DataSection(format="gait", path=str(_pair(tmp_path, {"a": np.zeros((30, 47))}, {"a": 1}))))
    (tmp_path / "b").mkdir()
    with pytest.raises(MediaError, match=r"labels\.h5: label 'a' is 7, expected 0\.\.3"):
        build_index(DataSection(format="gait", path=str(_pair(tmp_path / "b", {"a": good}, {"a": 7}))))
    (tmp_path / "c").mkdir()
    with pytest.raises(DatasetError, match=r"labels\.h5: no label for 1 gait\(s\) of features\.h5 \(b\)"):
        build_index(DataSection(format="gait", path=str(_pair(tmp_path / "c", {"a": good, "b": good}, {"a": 1}))))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "features.h5").write_bytes(b"not hdf5")
    with pytest.raises(DatasetError, match="no labels file beside it"):
        build_index(DataSection(format="gait", path=str(tmp_path / "d" / "features.h5")))
    (tmp_path / "d" / "labels.h5").write_bytes(b"not hdf5")
    with pytest.raises(MediaError, match=r"labels\.h5: not a readable HDF5 file"):
        build_index(DataSection(format="gait", path=str(tmp_path / "d" / "features.h5")))


# -- synthetic gaits ----------------------------------------------------------------------------
def _summary(x, n):
    x = x[:n]
    return [np.linalg.norm(np.diff(x, axis=0), axis=-1).mean(),  # mean joint speed
            x[:, gait.J["head"], gait.UP_AXIS].mean(),  # mean head height
            np.abs(x[:, gait.J["l_foot"], 2] - x[:, gait.J["r_foot"], 2]).max()]  # stride length


def _one_d_accuracy(s_tr, y_tr, s_te, y_te, bins=8):
    """A 1-D classifier: quantile bins of the statistic, each bin's majority class of train."""
    edges = np.quantile(s_tr, np.linspace(0, 1, bins + 1)[1:-1])
    b_tr, b_te = np.digitize(s_tr, edges), np.digitize(s_te, edges)
    major = {b: np.bincount(y_tr[b_tr == b], minlength=4).argmax() if (b_tr == b).any() else 0 for b in range(bins)}
    return float(np.mean([major[b] == y for b, y in zip(b_te, y_te)]))


def _synthetic_set(path, cues):
    f = generate_gait(path, SynthGaitConfig(per_class=60, seed=0, cues=cues))
    labels = gait.read_gait_labels(gait.find_labels_file(f))
    feats = gait.read_gait_features(f)
    keys = sorted(feats)
    assert len(keys) == 240 and collections.Counter(labels.values()) == {0: 60, 1: 60, 2: 60, 3: 60}
    assert all(36 <= feats[k].shape[0] <= 75 and not feats[k][:, 0].any() for k in keys)  # root-centred
    return [gait.preprocess_gait(feats[k]) for k in keys], np.array([labels[k] for k in keys])


@pytest.mark.parametrize("cues", ["crossed", "dynamic"])
def test_synthetic_gaits_need_more_than_one_summary_statistic(tmp_path, cues):
    gaits, y = _synthetic_set(tmp_path / "g", cues)
    S = np.array([_summary(*g) for g in gaits])
    tr, te = gait.stratified_split(y, 0.5, seed=0)
    for k, name in enumerate(["mean speed", "mean head height", "stride length"]):
        acc = _one_d_accuracy(S[tr, k], y[tr], S[te, k], y[te])
        assert acc < 0.6, f"{name} alone classifies {acc:.2f}"
    # but the style is there: the class means of speed and head height differ in the crossed way
    speed = {gait.EGAIT_NATIVE[c]: S[y == c, 0].mean() for c in range(4)}
    head = {gait.EGAIT_NATIVE[c]: S[y == c, 1].mean() for c in range(4)}
    assert min(speed["Happy"], speed["Angry"]) > max(speed["Sad"], speed["Neutral"])
    assert min(head["Happy"], head["Neutral"]) > max(head["Sad"], head["Angry"])


def _movement_summary(x, n):
    """Per joint, the mean and std over frames of the speed and of the acceleration magnitude."""
    v = np.diff(x[:n], axis=0)
    a = np.diff(v, axis=0)
    sv, sa = np.linalg.norm(v, axis=-1), np.linalg.norm(a, axis=-1)
    return np.concatenate([sv.mean(0), sv.std(0), sa.mean(0), sa.std(0)])


def test_dynamic_cues_put_sad_and_neutral_apart_in_movement(tmp_path):
    """``cues="dynamic"``: bounce (Happy), stomp (Angry) and reduced limb flexion (Sad) are in the movement,
    so speed and acceleration statistics tell Sad from Neutral; with the crossed cues they differ only in carriage."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sad_vs_neutral = {}
    for cues in ("crossed", "dynamic"):
        gaits, y = _synthetic_set(tmp_path / cues, cues)
        M = np.array([_movement_summary(*g) for g in gaits])
        keep = np.isin(y, [gait.EGAIT_NATIVE.index("Sad"), gait.EGAIT_NATIVE.index("Neutral")])
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        sad_vs_neutral[cues] = cross_val_score(clf, M[keep], y[keep], cv=5).mean()
        if cues == "dynamic":
            up, c = gait.UP_AXIS, {name: y == gait.EGAIT_NATIVE.index(name) for name in gait.EGAIT_NATIVE}
            lift = np.array([np.ptp(x[:n, gait.J["l_foot"], up]) for x, n in gaits])  # knee lift raises the foot
            jolt = np.array([np.abs(np.diff(x[:n, gait.J["neck"], up], 2)).max() for x, n in gaits])
            bob = np.array([np.diff(x[:n, gait.J["head"], up]).std() for x, n in gaits])
            assert lift[c["Sad"]].mean() < 0.85 * lift[c["Neutral"]].mean()
            assert jolt[c["Angry"]].mean() > 1.1 * max(jolt[c[k]].mean() for k in ("Happy", "Neutral", "Sad"))
            assert bob[c["Happy"]].mean() > 1.1 * max(bob[c["Neutral"]].mean(), bob[c["Sad"]].mean())
    assert sad_vs_neutral["crossed"] < 0.6 < 0.7 < sad_vs_neutral["dynamic"], sad_vs_neutral


def test_synthetic_gaits_are_reproducible_and_reused(tmp_path):
    a = generate_gait(tmp_path / "a", SynthGaitConfig(per_class=3, seed=5))
    b = generate_gait(tmp_path / "b", SynthGaitConfig(per_class=3, seed=5))
    fa, fb = gait.read_gait_features(a), gait.read_gait_features(b)
    assert fa.keys() == fb.keys() and all(np.array_equal(fa[k], fb[k]) for k in fa)
    stamp = a.stat().st_mtime_ns
    assert generate_gait(tmp_path / "a", SynthGaitConfig(per_class=3, seed=5)) == a and a.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="difficulty"):
        SynthGaitConfig(difficulty="medium").strength()
    with pytest.raises(ValueError, match="cues 'loud'"):
        generate_gait(tmp_path / "c", SynthGaitConfig(per_class=1, cues="loud"))
    assert SynthGaitConfig(difficulty="easy").strength() > SynthGaitConfig().strength() > SynthGaitConfig(difficulty=1.0).strength()


def test_data_synth_cli_writes_gaits(tmp_path, capsys):
    from affectkit.cli import main

    main(["data", "synth", "--kind", "gait", "--per-class", "2", "--out", str(tmp_path / "g")])
    assert "synthetic gaits: 8 gaits" in capsys.readouterr().out
    assert len(gait.read_gait_features(tmp_path / "g" / "features.h5")) == 8
