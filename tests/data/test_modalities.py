"""Per-modality sample loaders (video, audio, text, skeleton, features), their composition from a
model's input keys, batching of variable-length samples, and the time spans of loop-padded snippets."""
import numpy as np
import pytest
import torch

from affectkit.config import AudioSection, FeaturesSection, InputSection, SkeletonSection, TextSection, config_from_dict
from affectkit.data.clips import ClipDataset, collate_samples, collate_skip_none, make_loader
from affectkit.data.datasets import VideoRecord
from affectkit.data.modalities import read_features, read_skeleton
from affectkit.data.sampling import row_indices, snippet_indices, snippet_spans
from affectkit.data.text import write_srt
from affectkit.errors import ConfigError, MediaError

from .media_fixtures import make_index_video

SR = 16000
J, C = 16, 3


def _cfg(**kw):
    kw.setdefault("audio", AudioSection(sample_rate=SR, n_fft=512, hop_length=256, num_frames=32))
    return InputSection(seq_len=3, snippet_duration=4, sample_size=32, **kw)


def _record(vid="v1", **kw):
    return VideoRecord(video_id=vid, label_name="Joy", subset="training", split="train", label=0, **kw)


def _gait(t, seed=0):
    return np.random.default_rng(seed).normal(size=(t, J, C)).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# snippet time spans
def test_snippet_spans_of_wrapped_rows_are_their_longest_run():
    fps = 10.0
    rows = np.array([list(range(16, 20)) + list(range(0, 12)),  # wraps after 4 frames: 0..11 is the longer run
                     [19] + list(range(0, 15)),
                     list(range(0, 8)) + list(range(0, 8)),  # equal runs: the first
                     list(range(4, 20))])  # no wrap: unchanged
    assert snippet_spans(rows, fps) == [(0.0, 1.2), (0.0, 1.5), (0.0, 0.8), (0.4, 2.0)]
    assert snippet_spans(np.zeros((2, 4), int), fps) == [(0.0, 0.1), (0.0, 0.1)]  # a one-frame video
    assert snippet_spans(np.array([[0, 2, 4, 0, 2]]), fps) == [(0.0, 0.5)]  # frame_step 2


def test_loop_padded_video_snippet_spans_lie_in_the_video(tmp_path):
    fps, n = 25.0, 20
    path = make_index_video(tmp_path / "short.mp4", n, fps=fps)
    cfg = InputSection(seq_len=4, snippet_duration=16, sample_size=32)
    for train in (False, True):
        loader = make_loader(cfg, ("video",), train=train)
        s = loader.load(path, rng=np.random.default_rng(3))
        spans = s["snippet_times"]
        assert s["video"].shape == (4, 3, 16, 32, 32) and spans.shape == (4, 2)
        assert (spans[:, 0] >= 0).all() and (spans[:, 1] <= s["duration"] + 1e-4).all()
        assert (spans[:, 1] > spans[:, 0]).all()
        assert (spans[:, 1] - spans[:, 0] <= 16 / fps + 1e-4).all()  # at most one snippet's frames
        whole = (spans[:, 0] == 0) & (spans[:, 1] >= n / fps - 1e-4)
        assert not whole.any()  # 16 frames never show all 20
    idx = snippet_indices(n, 4, 16)
    expected = torch.tensor(snippet_spans(idx, fps), dtype=torch.float32)
    assert torch.allclose(make_loader(cfg, ("video",), train=False).load(path)["snippet_times"], expected)


def test_a_video_long_enough_keeps_its_plain_spans(tmp_path):
    path = make_index_video(tmp_path / "long.mp4", 40, fps=20.0)
    s = make_loader(_cfg(), ("video",), train=False).load(path)
    idx = snippet_indices(40, 3, 4)
    want = [[r[0] / 20.0, (r[-1] + 1) / 20.0] for r in idx.tolist()]
    np.testing.assert_allclose(s["snippet_times"].numpy(), np.array(want), rtol=1e-6)


# ------------------------------------------------------------------------------------------------
# skeleton
def _write_h5(path, datasets):
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f[k] = v
    return path


@pytest.mark.parametrize("fmt", ["npy3", "npy2", "npz", "csv", "csv_header", "h5"])
def test_skeleton_readers_agree(tmp_path, fmt):
    x = _gait(10)
    flat = x.reshape(10, J * C)
    p = tmp_path / f"g.{fmt.split('_')[0].rstrip('23')}"
    if fmt == "npy3":
        np.save(p, x)
    elif fmt == "npy2":
        np.save(p, flat)
    elif fmt == "npz":
        np.savez(p, skeleton=x, other=np.zeros(3))
    elif fmt.startswith("csv"):
        rows = "\n".join(",".join(f"{v:.9g}" for v in r) for r in flat)
        header = ",".join(f"j{i // C}_{'xyz'[i % C]}" for i in range(J * C)) + "\n" if fmt == "csv_header" else ""
        p.write_text(header + rows + "\n")
    else:
        _write_h5(p, {"walk": flat.astype(np.float64)})
    got = read_skeleton(p, num_joints=J, channels=C)
    assert got.shape == (10, J, C) and got.dtype == np.float32
    np.testing.assert_allclose(got, x, rtol=1e-6)


def test_skeleton_crop_pad_mask_and_centring(tmp_path):
    x = _gait(50)
    np.save(tmp_path / "g.npy", x)
    path = str(tmp_path / "g.npy")
    cfg = _cfg(skeleton=SkeletonSection(max_frames=20))
    s = make_loader(cfg, ("skeleton",), train=False).load(path)
    assert s["skeleton"].shape == (C, 20, J) and s["skeleton_length"] == 20
    np.testing.assert_allclose(s["skeleton"].numpy(), x[:20].transpose(2, 0, 1))  # evaluation: the start
    assert s["skeleton_mask"].all() and s["path"] == path
    train = make_loader(cfg, ("skeleton",), train=True)
    starts = set()
    for seed in range(6):
        t = train.load(path, rng=np.random.default_rng(seed))["skeleton"].numpy()
        start = int(np.argmin([np.abs(x[i:i + 20].transpose(2, 0, 1) - t).max() for i in range(31)]))
        np.testing.assert_allclose(t, x[start:start + 20].transpose(2, 0, 1))  # a real window
        starts.add(start)
    assert len(starts) > 1  # random in training
    long = make_loader(_cfg(skeleton=SkeletonSection(max_frames=80, root_joint=0)), ("skeleton",), train=False).load(path)
    sk = long["skeleton"]
    assert sk.shape == (C, 80, J) and long["skeleton_length"] == 50
    assert long["skeleton_mask"].tolist() == [True] * 50 + [False] * 30
    assert float(sk[:, 50:].abs().max()) == 0.0  # zero padding
    assert float(sk[:, :50, 0].abs().max()) == 0.0  # the root joint at the origin in every frame
    np.testing.assert_allclose(sk[:, :50, 5].numpy(), (x[:, 5] - x[:, 0]).T, rtol=1e-5, atol=1e-6)


def test_real_emotion_gait_sample(shared_data):
    pytest.importorskip("h5py")
    import h5py

    path = shared_data / "egait_samples" / "sample_features.h5"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    with h5py.File(path, "r") as f:
        keys = list(f.keys())
        raw = {k: np.asarray(f[k]) for k in keys}
    loader = make_loader(_cfg(), ("skeleton",), train=False)  # defaults: 16 joints x 3, 240 frames
    for k in keys:
        rec = _record(k, path=str(path), extra={"key": k})
        loader.check(rec)
        s = loader.load(rec)
        t = raw[k].shape[0]
        assert s["skeleton"].shape == (3, 240, 16) and s["skeleton_length"] == t
        np.testing.assert_allclose(s["skeleton"][:, :t].numpy(), raw[k].reshape(t, 16, 3).transpose(2, 0, 1), rtol=1e-6)
    batch = collate_samples([loader.load(_record(k, path=str(path), extra={"key": k})) for k in keys])
    assert batch["skeleton"].shape == (3, 3, 240, 16)
    assert batch["skeleton_mask"].sum(1).tolist() == [raw[k].shape[0] for k in keys]
    with pytest.raises(MediaError, match=r"sample_features\.h5: holds 3 datasets"):
        loader.load(str(path))  # no key: ambiguous
    with pytest.raises(MediaError, match=r"sample_features\.h5: has no dataset 'nope'"):
        loader.load(_record("x", path=str(path), extra={"key": "nope"}))


# ------------------------------------------------------------------------------------------------
# features
def test_features_files_root_and_record_paths(tmp_path):
    f = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    np.save(tmp_path / "a.npy", f)
    np.savez(tmp_path / "b.npz", features=f, labels=np.arange(7))
    np.savez(tmp_path / "c.npz", whatever=f)
    for name in ("a.npy", "b.npz", "c.npz"):
        np.testing.assert_array_equal(read_features(tmp_path / name, dim=5), f)
    root = tmp_path / "feats"
    root.mkdir()
    np.save(root / "vid7.npy", f[:3])
    np.save(root / "given.npy", f[:4])
    loader = make_loader(_cfg(features=FeaturesSection(root=str(root))), ("features",), train=False)
    s = loader.load(_record("vid7", path=str(tmp_path / "vid7.mp4")))  # <root>/<video_id>.npy
    assert s["features"].shape == (3, 5) and s["features_length"] == 3 and s["features_mask"].all()
    assert s["path"] == str(tmp_path / "vid7.mp4")
    assert loader.load(_record("x", extra={"features": "given.npy"}))["features"].shape == (4, 5)  # relative to root
    assert loader.load(str(tmp_path / "a.npy"))["features"].shape == (7, 5)  # a plain path
    with pytest.raises(MediaError, match=r"vid8\.npy: file not found"):
        loader.check(_record("vid8"))


def test_features_max_len_uniform_and_random():
    assert row_indices(5, 8).tolist() == list(range(5))
    assert row_indices(10, 5).tolist() == [0, 2, 4, 6, 8]
    rng = np.random.default_rng(0)
    draws = {tuple(row_indices(100, 10, random=True, rng=rng)) for _ in range(5)}
    assert len(draws) > 1
    for d in draws:
        assert [i // 10 for i in d] == list(range(10))  # one row of each tenth, in order


def test_features_subsampling_in_the_loader(tmp_path):
    f = np.arange(40 * 2, dtype=np.float32).reshape(40, 2)
    np.save(tmp_path / "f.npy", f)
    path = str(tmp_path / "f.npy")
    cfg = _cfg(features=FeaturesSection(max_len=8))
    ev = make_loader(cfg, ("features",), train=False).load(path)
    np.testing.assert_array_equal(ev["features"].numpy(), f[row_indices(40, 8)])
    tr = make_loader(cfg, ("features",), train=True)
    rows = {tuple(tr.load(path, rng=np.random.default_rng(s))["features"][:, 0].tolist()) for s in range(5)}
    assert len(rows) > 1 and all(len(r) == 8 for r in rows)
    uni = make_loader(_cfg(features=FeaturesSection(max_len=8, sampling="uniform")), ("features",), train=True)
    np.testing.assert_array_equal(uni.load(path)["features"].numpy(), ev["features"].numpy())


# ------------------------------------------------------------------------------------------------
# text
def test_text_per_snippet_window_and_whole(tmp_path):
    video = make_index_video(tmp_path / "v.mp4", 36, fps=12.0)  # 3 s; 3 snippets of 4 frames, centred
    srt = tmp_path / "v.srt"
    write_srt(srt, [(0.0, 0.6, "hello there"), (1.0, 1.4, "I am <i>so</i> happy"), (2.5, 2.9, "bye")])
    rec = _record("v", path=video, subtitles=str(srt))
    s = make_loader(_cfg(), ("video", "text"), train=False).load(rec)
    spans = s["snippet_times"].tolist()
    assert len(s["text"]) == 3
    cues = [(0.0, 0.6, "hello there"), (1.0, 1.4, "I am so happy"), (2.5, 2.9, "bye")]
    for (a, b), text in zip(spans, s["text"]):
        assert text == " ".join(t for cs, ce, t in cues if cs < b and ce > a)
    assert any(s["text"])
    only = make_loader(_cfg(), ("text",), train=False).load(rec)
    assert only["text"] == ["hello there I am so happy bye"]
    plain = make_loader(_cfg(), ("video", "text"), train=False).load(video)  # predict: the .srt beside the video
    assert plain["text"] == s["text"]
    typed = make_loader(_cfg(), ("video", "text"), train=False).load(_record("v", path=video, extra={"text": "just  words"}))
    assert typed["text"] == ["just words"] * 3


def test_missing_text_is_empty_or_an_error(tmp_path):
    video = make_index_video(tmp_path / "v.mp4", 36, fps=12.0)
    rec = _record("v", path=video)
    assert make_loader(_cfg(), ("video", "text"), train=False).load(rec)["text"] == ["", "", ""]
    assert make_loader(_cfg(), ("text",), train=False).load(_record("v", subtitles=str(tmp_path / "gone.srt")))["text"] == [""]
    strict = make_loader(_cfg(text=TextSection(on_missing="error")), ("video", "text"), train=False)
    with pytest.raises(MediaError, match="no subtitles or transcript"):
        strict.check(rec)
    with pytest.raises(MediaError, match=r"gone\.srt: subtitle file not found"):
        strict.load(_record("v", path=video, subtitles=str(tmp_path / "gone.srt")))
    bad = tmp_path / "bad.srt"
    bad.write_text("1\nnot a time line\nhello\n")
    with pytest.raises(MediaError, match=r"bad\.srt"):
        make_loader(_cfg(), ("text",), train=False).load(_record("v", subtitles=str(bad)))


# ------------------------------------------------------------------------------------------------
# composition, batching, datasets
def test_composed_loader_from_input_keys(tmp_path):
    video = make_index_video(tmp_path / "v.mp4", 36, fps=12.0, audio_seconds=3.0)
    write_srt(tmp_path / "v.srt", [(0.0, 3.0, "all along")])
    rec = _record("v", path=video, subtitles=str(tmp_path / "v.srt"), segments=[{"start": 0.5, "end": 1.5, "label": "p"}],
                  points=[{"time": 1.0, "label": "p"}])
    loader = make_loader(_cfg(), ("video", "audio", "text"), train=False)
    loader.check(rec)
    s = loader.load(rec)
    assert s["video"].shape == (3, 3, 4, 32, 32) and s["audio"].shape == (32, 32)
    assert s["text"] == ["all along"] * 3 and s["snippet_times"].shape == (3, 2)
    assert s["segments"] == rec.segments and s["points"] == rec.points
    old = loader.load(video, audio_path=None, rng=np.random.default_rng(0))  # the older call
    assert torch.equal(old["video"], s["video"]) and torch.equal(old["audio"], s["audio"]) and "segments" not in old
    loader.check(video, None)
    np.save(tmp_path / "v.npy", np.ones((6, 4), np.float32))
    both = make_loader(_cfg(), ("features", "text"), train=False).load(_record("v", extra={"features": str(tmp_path / "v.npy"), "text": "hi"}))
    assert both["features"].shape == (6, 4) and both["text"] == ["hi"] and both["path"] == str(tmp_path / "v.npy")


def test_audio_windows_follow_the_video_segments(tmp_path):
    """input.audio.align: segments: window j of the audio is read inside the video's segment j (3 s, seq_len 3:
    one 1-s segment per snippet); start (the default) reads the first frames of the track."""
    video = make_index_video(tmp_path / "v.mp4", 36, fps=12.0, audio_seconds=3.0)
    a = AudioSection(kind="log_mel", sample_rate=SR, n_mels=32, n_fft=400, hop_length=160, num_frames=30)
    s = make_loader(_cfg(audio=a), ("video", "audio"), train=False).load(video)
    aligned = AudioSection(kind="log_mel", sample_rate=SR, n_mels=32, n_fft=400, hop_length=160, num_frames=30,
                           align="segments")
    t = make_loader(_cfg(audio=aligned), ("video", "audio"), train=False).load(video)
    from affectkit.data.audio import AudioFeatureSpec, segment_audio_features

    spec = AudioFeatureSpec(kind="log_mel", sample_rate=SR, n_mels=32, n_fft=400, hop_length=160, num_frames=30)
    assert s["audio"].shape == t["audio"].shape == (30, 32)
    want = segment_audio_features(video, spec, t["segment_times"].tolist())
    assert np.allclose(t["audio"].numpy(), want)
    assert t["segment_times"].tolist() == [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]
    assert not np.allclose(s["audio"].numpy(), t["audio"].numpy())  # the first 0.3 s vs one window per second
    with pytest.raises(ConfigError, match="input.audio.align: expected start or segments"):
        AudioSection(align="middle")
    with pytest.raises(ConfigError, match=r"num_frames \(32\) a multiple of input.seq_len \(3\)"):
        make_loader(_cfg(audio=AudioSection(kind="log_mel", num_frames=32, align="segments")), ("video", "audio"),
                    train=False)


def test_unknown_input_key_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"'pose'.*known modality keys are: video, audio, features, skeleton, text"):
        make_loader(_cfg(), ("video", "pose"), train=False)


def test_collate_pads_variable_lengths_with_a_mask():
    a = {"features": torch.ones(3, 2), "text": ["a", "b"], "label": 1, "fps": 25.0, "segments": [{"start": 0.0}], "path": "a"}
    b = {"features": torch.full((5, 2), 2.0), "text": ["c", "d"], "label": 0, "fps": 30.0, "segments": [], "path": "b"}
    batch = collate_samples([a, None, b])
    assert batch["features"].shape == (2, 5, 2)
    assert batch["features_mask"].tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert float(batch["features"][0, 3:].abs().sum()) == 0.0 and float(batch["features"][0, :3].min()) == 1.0
    assert batch["text"] == [["a", "b"], ["c", "d"]] and batch["segments"] == [[{"start": 0.0}], []]
    assert batch["label"].dtype == torch.int64 and batch["fps"].dtype == torch.float64 and batch["path"] == ["a", "b"]
    same = collate_samples([{"features": torch.ones(3, 2)}, {"features": torch.ones(3, 2)}])
    assert same["features"].shape == (2, 3, 2) and "features_mask" not in same  # nothing padded
    # a loader's own mask is padded with False, no second mask is made
    own = collate_samples([{"x": torch.ones(2), "x_mask": torch.ones(2, dtype=torch.bool)},
                           {"x": torch.ones(4), "x_mask": torch.ones(4, dtype=torch.bool)}])
    assert own["x_mask"].tolist() == [[True, True, False, False], [True] * 4] and "x_mask_mask" not in own
    # skeleton (C, T, J) without max_frames: padded along T (dim 1)
    sk = collate_samples([{"skeleton": torch.ones(3, 4, 16)}, {"skeleton": torch.ones(3, 6, 16)}])
    assert sk["skeleton"].shape == (2, 3, 6, 16) and sk["skeleton_mask"].sum(1).tolist() == [4, 6]
    assert float(sk["skeleton"][0, :, 4:].abs().sum()) == 0.0
    with pytest.raises(ValueError, match="'v'.*more than one dimension"):
        collate_samples([{"v": torch.ones(2, 3)}, {"v": torch.ones(3, 4)}])
    assert collate_samples([None]) is None and collate_skip_none is collate_samples


def test_variable_skeletons_through_the_loader_and_collate(tmp_path):
    for i, t in enumerate((7, 12)):
        np.save(tmp_path / f"g{i}.npy", _gait(t, i))
    loader = make_loader(_cfg(skeleton=SkeletonSection(max_frames=None)), ("skeleton",), train=True)
    batch = collate_samples([loader.load(str(tmp_path / f"g{i}.npy")) for i in range(2)])
    assert batch["skeleton"].shape == (2, C, 12, J) and batch["skeleton_length"].tolist() == [7, 12]
    assert batch["skeleton_mask"].sum(1).tolist() == [7, 12]


def test_dataset_of_feature_records_skips_bad_files(tmp_path):
    recs = []
    for i, t in enumerate((4, 9)):
        np.save(tmp_path / f"f{i}.npy", np.ones((t, 3), np.float32) * (i + 1))
        recs.append(_record(f"f{i}", extra={"features": str(tmp_path / f"f{i}.npy")}, segments=[{"start": 0.0, "end": 1.0, "label": "p"}]))
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    recs.append(_record("bad", extra={"features": str(tmp_path / "bad.npy")}))
    ds = ClipDataset(recs, _cfg(features=FeaturesSection(dim=3)), train=True, input_keys=("features",))
    assert len(ds) == 2 and ds.problems[0][0].endswith("bad.npy")
    batch = collate_samples([ds[i] for i in range(len(ds))])
    assert batch["features"].shape == (2, 9, 3) and batch["features_mask"].sum(1).tolist() == [4, 9]
    assert batch["video_id"] == ["f0", "f1"] and batch["segments"][0][0]["label"] == "p"


def _bad_files(tmp_path):
    p = tmp_path
    np.save(p / "wrong.npy", np.zeros((5, 7)))
    np.save(p / "nan.npy", np.full((5, J * C), np.nan))
    np.save(p / "text.npy", np.array(["a", "b"]))
    (p / "empty.npy").write_bytes(b"")
    (p / "junk.npy").write_bytes(b"not an array at all" * 10)
    np.save(p / "trunc.npy", np.zeros((50, J * C)))
    data = (p / "trunc.npy").read_bytes()
    (p / "trunc.npy").write_bytes(data[: len(data) // 2])
    np.savez(p / "two.npz", a=np.zeros((3, J * C)), b=np.zeros((3, J * C)))
    (p / "junk.npz").write_bytes(b"PK\x03\x04 broken zip")
    (p / "junk.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 40)
    (p / "words.csv").write_text("1,2,3\n4,five,6\n")
    (p / "ragged.csv").write_text(",".join(["1"] * (J * C)) + "\n1,2\n")
    (p / "pose.txt").write_text("1 2 3\n")
    return {
        "missing.npy": "file not found", "empty.npy": "empty file", "wrong.npy": "shape (5, 7)", "nan.npy": "NaN",
        "text.npy": "not numbers", "junk.npy": "not a readable .npy", "trunc.npy": "not a readable .npy",
        "two.npz": "holds 2 arrays", "junk.npz": "not a readable .npz", "junk.h5": "not a readable HDF5",
        "words.csv": "'five' is not a number", "ragged.csv": "2 values", "pose.txt": "unsupported file type",
    }


def test_bad_skeleton_files_name_the_file(tmp_path):
    pytest.importorskip("h5py")
    cases = _bad_files(tmp_path)
    loader = make_loader(_cfg(), ("skeleton",), train=False)
    for name, why in cases.items():
        with pytest.raises(MediaError) as err:
            loader.load(str(tmp_path / name))
        assert err.value.path == str(tmp_path / name) and why in err.value.problem, (name, str(err.value))
    with pytest.raises(MediaError, match=r"wrong\.npy: skeleton of shape"):
        loader.check(str(tmp_path / "wrong.npy"))  # the cheap check reads the header


def test_bad_feature_files_name_the_file(tmp_path):
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    np.save(tmp_path / "d5.npy", np.zeros((4, 5)))
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 broken zip")
    loader = make_loader(_cfg(features=FeaturesSection(dim=4)), ("features",), train=False)
    for name, why in {"cube.npy": "expected (T, D)", "d5.npy": "dimension 5, expected 4", "junk.npz": "not a readable .npz",
                      "missing.npy": "file not found"}.items():
        with pytest.raises(MediaError) as err:
            loader.load(str(tmp_path / name))
        assert err.value.path == str(tmp_path / name) and why in err.value.problem
    with pytest.raises(MediaError, match="no features file"):
        loader.load(_record("nothing"))


def test_config_subsections_defaults_and_validation():
    cfg = config_from_dict({"input": {"skeleton": {"max_frames": 120, "root_joint": 0}, "features": {"root": "/f", "max_len": 750},
                                      "text": {"on_missing": "error"}}})
    assert cfg.input.skeleton == SkeletonSection(num_joints=16, channels=3, max_frames=120, root_joint=0)
    assert cfg.input.features.sampling == "random" and cfg.input.text.on_missing == "error"
    d = InputSection()
    assert (d.text.on_missing, d.skeleton.max_frames, d.skeleton.root_joint, d.features.root, d.features.max_len) == ("empty", 240, None, None, None)
    for bad in ({"text": {"on_missing": "skip"}}, {"skeleton": {"root_joint": 16}}, {"skeleton": {"max_frames": 0}},
                {"features": {"sampling": "dense"}}, {"features": {"max_len": -1}}):
        with pytest.raises(ConfigError, match="input."):
            config_from_dict({"input": bad})
