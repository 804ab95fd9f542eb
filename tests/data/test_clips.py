"""Clip samples from real mp4 files, and every kind of bad input reported and skipped by a dataset."""
import json

import numpy as np
import pytest
import torch

from affectkit.config import DataSection, InputSection, AudioSection
from affectkit.data.clips import ClipDataset, ClipLoader, collate_skip_none
from affectkit.data.datasets import build_index
from affectkit.data.media_writer import write_video
from affectkit.errors import MediaError

SR = 16000


def _input_cfg(**kw):
    return InputSection(seq_len=3, snippet_duration=4, sample_size=32,
                        audio=AudioSection(sample_rate=SR, n_fft=512, hop_length=256, num_frames=64), **kw)


def _video(path, n=36, size=(64, 48), audio=True, fps=12):
    rng = np.random.default_rng(n)
    frames = (rng.random((n, size[1], size[0], 3)) * 255).astype(np.uint8)
    wave = (0.2 * np.sin(np.arange(int(SR * n / fps)) * 0.03)).astype(np.float32) if audio else None
    write_video(path, frames, fps, wave, SR)
    return path


def test_clip_sample_shapes_and_determinism(tmp_path):
    v = _video(tmp_path / "a.mp4")
    loader = ClipLoader(_input_cfg(), train=False)
    s1, s2 = loader.load(str(v)), loader.load(str(v))
    assert s1["video"].shape == (3, 3, 4, 32, 32) and s1["video"].dtype == torch.float32
    assert 0 <= float(s1["video"].min()) and float(s1["video"].max()) <= 255
    assert s1["audio"].shape == (64, 32)
    assert torch.equal(s1["video"], s2["video"]) and torch.equal(s1["audio"], s2["audio"])
    assert s1["snippet_times"].shape == (3, 2) and float(s1["snippet_times"][-1, 1]) <= 3.0 + 1e-6


def _bad_media(tmp_path):
    d = tmp_path / "videos" / "Joy"
    d.mkdir(parents=True)
    _video(d / "good1.mp4")
    _video(d / "good2.mp4")
    (d / "empty.mp4").write_bytes(b"")
    data = _video(tmp_path / "full.mp4", n=60).read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 3])
    _video(d / "silent.mp4", audio=False)
    _video(d / "short.mp4", n=2)
    (d / "text.mp4").write_text("this is not a video\n" * 50)
    names = ["good1", "good2", "empty", "truncated", "silent", "short", "text", "missing"]
    db = {n: {"subset": "training", "annotations": {"label": "Joy"}} for n in names}
    db["alien"] = {"subset": "training", "annotations": {"label": "Boredom"}}
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"labels": ["Joy", "Anger"], "database": db}))
    return ann


def test_dataset_reports_and_skips_every_bad_input(tmp_path):
    ann = _bad_media(tmp_path)
    index = build_index(DataSection(path=str(ann), video_root=str(tmp_path / "videos")))
    idx_problems = dict(index.problems)
    assert any("missing" in k or "missing" in v for k, v in idx_problems.items())
    assert any("unknown label 'Boredom'" in v for v in idx_problems.values())
    ds = ClipDataset(index.split("train"), _input_cfg(), train=True)
    probs = {p.split("/")[-1]: why for p, why in ds.problems}
    assert sorted(r.video_id for r in ds.records) == ["good1", "good2"]
    assert "not a readable video" in probs["truncated.mp4"]  # moov atom at the end: the cut mp4 does not open
    assert "empty" in probs["empty.mp4"]
    assert "no audio stream" in probs["silent.mp4"]
    assert "too short" in probs["short.mp4"]
    assert "text.mp4" in probs and "not a readable video" in probs["text.mp4"]
    batch = collate_skip_none([ds[i] for i in range(len(ds))])
    assert batch["video"].shape[0] == len(ds.records)


def test_getitem_failure_is_skipped_not_raised(tmp_path):
    ann = _bad_media(tmp_path)
    index = build_index(DataSection(path=str(ann), video_root=str(tmp_path / "videos")))
    ds = ClipDataset(index.split("train"), _input_cfg(), train=False, check=False)  # no up-front scan
    items = [ds[i] for i in range(len(ds))]
    kept = {it["video_id"] for it in items if it is not None}
    assert {"good1", "good2"} <= kept and not kept & {"empty", "silent", "short", "text"}
    assert collate_skip_none([None, None]) is None


def test_strict_mode_raises_with_file_name(tmp_path):
    ann = _bad_media(tmp_path)
    index = build_index(DataSection(path=str(ann), video_root=str(tmp_path / "videos")))
    with pytest.raises(MediaError, match=r"\.mp4"):
        ClipDataset(index.split("train"), _input_cfg(), train=False, skip_bad=False)


def test_missing_audio_can_be_silence(tmp_path):
    v = _video(tmp_path / "silent.mp4", audio=False)
    cfg = _input_cfg()
    cfg.audio.on_missing = "silence"
    s = ClipLoader(cfg, train=False).load(str(v))
    assert s["audio"].shape == (64, 32) and float(s["audio"].abs().sum()) == 0.0
