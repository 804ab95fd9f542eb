"""Checkpoint folders: atomic writes, loading across upgrades, clear errors."""
import json

import pytest
import torch

from affectkit import create_model, load_model
from affectkit.engine import checkpoint as ck
from affectkit.errors import CheckpointError

TINY = dict(depth=18, width=8, audio_width=8, audio_segments=4, seq_len=4, snippet_duration=8, sample_size=32,
            audio_frames=128, num_classes=3)


def _save(path, model, args=None):
    cfg = {"task": "classify", "model": {"name": "vaanet", "args": args or dict(TINY)}, "classes": ["a", "b", "c"]}
    return ck.save_checkpoint(path, model, cfg, {"epoch": 1})


def test_roundtrip_is_exact(tmp_path):
    m = create_model("vaanet", **TINY)
    _save(tmp_path / "c", m)
    m2 = load_model(tmp_path / "c")
    assert all(torch.equal(v, m2.state_dict()[k]) for k, v in m.state_dict().items())
    assert not m2.training


def test_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    m = create_model("vaanet", **TINY)
    _save(tmp_path / "c", m)
    before = (tmp_path / "c" / ck.WEIGHTS).read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", boom)
    with torch.no_grad():
        next(m.parameters()).add_(1.0)
    with pytest.raises(OSError):
        _save(tmp_path / "c", m)
    assert (tmp_path / "c" / ck.WEIGHTS).read_bytes() == before
    load_model(tmp_path / "c")


def test_options_added_later_take_their_defaults(tmp_path):
    m = create_model("vaanet", **TINY)
    old_args = {k: v for k, v in TINY.items()}  # an older checkpoint without e.g. input_norm / trunk_bn
    _save(tmp_path / "c", m, old_args)
    cfg = json.loads((tmp_path / "c" / ck.CONFIG).read_text())
    assert "input_norm" not in cfg["model"]["args"]
    assert load_model(tmp_path / "c").input_norm == "original"


def test_clear_errors(tmp_path):
    m = create_model("vaanet", **TINY)
    _save(tmp_path / "c", m, {**TINY, "removed_option": 1})
    with pytest.raises(CheckpointError, match="removed_option"):
        load_model(tmp_path / "c")
    _save(tmp_path / "d", m)
    cfg = json.loads((tmp_path / "d" / ck.CONFIG).read_text())
    cfg["format_version"] = 99
    (tmp_path / "d" / ck.CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="newer affectkit"):
        load_model(tmp_path / "d")
    _save(tmp_path / "e", create_model("vaanet", **{**TINY, "num_classes": 5}))
    cfg = json.loads((tmp_path / "e" / ck.CONFIG).read_text())
    cfg["model"]["args"]["num_classes"] = 3
    (tmp_path / "e" / ck.CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="cannot read weights|do not match"):
        load_model(tmp_path / "e")
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / ck.CONFIG).write_text("{")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_model(tmp_path / "f")


def test_failed_write_is_a_checkpoint_error_and_leaves_no_temporary_folder(tmp_path, monkeypatch):
    m = create_model("vaanet", **TINY)
    _save(tmp_path / "c", m)
    assert (tmp_path / "c" / ck.MANIFEST).is_file()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", boom)
    with pytest.raises(CheckpointError, match=r"c: cannot save checkpoint.*disk full"):
        _save(tmp_path / "c", m)
    assert [p.name for p in tmp_path.iterdir()] == ["c"]
    load_model(tmp_path / "c")
