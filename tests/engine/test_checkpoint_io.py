"""Checkpoint I/O: durable atomic writes, recovery after a crash between the renames, trainer state
that loads with weights_only=True, exact RNG round trips, and initialising a model from another
checkpoint."""
import json
import os
import random
import stat

import numpy as np
import pytest
import torch
from torch import nn

from affectkit.engine import checkpoint as ck
from affectkit.errors import CheckpointError

CFG = {"task": "classify", "model": {"name": "tiny", "args": {}}, "classes": ["a", "b", "c"]}


class Net(nn.Module):
    def __init__(self, classes=3, prefix="encoder"):
        super().__init__()
        setattr(self, prefix, nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8)))
        self.classifier = nn.Linear(8, classes)


def _save(path, model=None, epoch=1, trainer_state=None):
    return ck.save_checkpoint(path, model or Net(), CFG, {"epoch": epoch}, trainer_state=trainer_state)


def _epoch(folder):
    return json.loads((folder / ck.META).read_text())["epoch"]


def _hidden(parent, name):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def _leftover(run, hidden, epoch):
    """A checkpoint folder under a hidden leftover name (written elsewhere, then moved)."""
    _save(run.parent / "scratch", epoch=epoch)
    os.rename(run.parent / "scratch", run / hidden)
    return run / hidden


def _dead_pid():
    if os.name != "posix":
        pytest.skip("process liveness is checked with os.kill on POSIX only")
    for pid in range(3_999_999, 3_000_000, -1):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            continue
    pytest.skip("no free process id found")


def _ident(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino


# ------------------------------------------------------------------------------------------------ writing

def test_every_file_and_both_folders_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def record(fd):
        st = os.fstat(fd)
        synced.append((st.st_dev, st.st_ino))
        return real(fd)

    monkeypatch.setattr(os, "fsync", record)
    out = _save(tmp_path / "run" / "last", trainer_state={"epoch": 1, "history": []})
    for name in (ck.WEIGHTS, ck.CONFIG, ck.META, ck.TRAINER_STATE, ck.MANIFEST):
        assert _ident(out / name) in synced, f"{name} not fsynced"
    assert _ident(out) in synced, "checkpoint (temporary) folder not fsynced"
    assert _ident(out.parent) in synced, "parent folder not fsynced after the renames"
    assert _hidden(out.parent, "last") == []


def test_folder_fsync_failure_is_tolerated(tmp_path, monkeypatch):
    real = os.fsync

    def no_dirs(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")
        return real(fd)

    monkeypatch.setattr(os, "fsync", no_dirs)
    assert (_save(tmp_path / "c") / ck.MANIFEST).is_file()


def test_failed_write_midway_removes_the_temporary_folder(tmp_path, monkeypatch):
    _save(tmp_path / "c", epoch=1)
    before = (tmp_path / "c" / ck.WEIGHTS).read_bytes()

    def half_then_fail(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"\0" * 100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck, "save_file", half_then_fail)
    with pytest.raises(CheckpointError, match=r"c: cannot save checkpoint.*No space left") as info:
        _save(tmp_path / "c", epoch=2)
    assert isinstance(info.value, OSError) and info.value.__cause__.errno == 28
    assert _hidden(tmp_path, "c") == []
    assert (tmp_path / "c" / ck.WEIGHTS).read_bytes() == before and _epoch(tmp_path / "c") == 1


def test_unsaveable_model_and_trainer_state_leave_the_old_checkpoint(tmp_path):
    _save(tmp_path / "c", epoch=1)
    tied = Net()
    tied.register_buffer("alias", tied.classifier.weight)  # two names for one storage: safetensors refuses
    with pytest.raises(CheckpointError, match="cannot save checkpoint"):
        _save(tmp_path / "c", tied, epoch=2)
    with pytest.raises(CheckpointError, match=r"state\['sampler'\].*weights_only"):
        _save(tmp_path / "c", epoch=3, trainer_state={"epoch": 3, "sampler": object()})
    assert _hidden(tmp_path, "c") == [] and _epoch(tmp_path / "c") == 1


def test_failed_second_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    _save(tmp_path / "c", epoch=1)
    real, calls = os.replace, []

    def flaky(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(CheckpointError, match="renaming"):
        _save(tmp_path / "c", epoch=2)
    monkeypatch.setattr(os, "replace", real)
    assert _epoch(tmp_path / "c") == 1 and _hidden(tmp_path, "c") == []


# ------------------------------------------------------------------------------------------------ recovery

def test_crash_after_moving_aside_recovers_the_old_copy(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _leftover(run, ".last.old-123", 4)
    assert ck.recover_checkpoint_dir(run / "last") == run / "last"
    assert _epoch(run / "last") == 4 and _hidden(run, "last") == []
    os.rename(run / "last", run / ".last.old-123")
    (run / ".last.old-123" / ck.MANIFEST).unlink()  # written before manifests existed: still complete
    assert ck.find_checkpoint(run) == run / "last" and _epoch(run / "last") == 4
    assert _hidden(run, "last") == []


def test_a_complete_temporary_folder_wins_over_the_old_copy(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _leftover(run, ".last.old-123", 4)
    _leftover(run, ".last.tmp-123", 5)
    assert _hidden(run, "last") == [".last.old-123", ".last.tmp-123"]
    assert ck.recover_checkpoint_dir(run / "last") == run / "last"
    assert _epoch(run / "last") == 5 and _hidden(run, "last") == []


def test_an_incomplete_temporary_folder_is_not_used_and_is_removed(tmp_path):
    run, pid = tmp_path / "run", _dead_pid()
    run.mkdir()
    _leftover(run, ".last.old-123", 4)
    (_leftover(run, f".last.tmp-{pid}", 5) / ck.MANIFEST).unlink()  # crashed before the marker was written
    assert ck.recover_checkpoint_dir(run / "last") == run / "last"
    assert _epoch(run / "last") == 4 and _hidden(run, "last") == []
    # truncated weights under a manifest: not complete either; find_checkpoint recovers the old copy
    _leftover(run, ".best.old-7", 6)
    with open(_leftover(run, f".best.tmp-{pid}", 7) / ck.WEIGHTS, "r+b") as fh:
        fh.truncate(10)
    assert ck.find_checkpoint(run / "best") == run / "best" and _epoch(run / "best") == 6
    assert _hidden(run, "best") == []


def test_stale_temporary_folders_are_cleaned_but_not_a_running_writers(tmp_path):
    run = tmp_path / "run"
    _save(run / "last", epoch=1)
    dead, alive = _dead_pid(), os.getppid()
    for pid in (dead, alive):
        (run / f".last.tmp-{pid}").mkdir()
        (run / f".last.tmp-{pid}" / ck.CONFIG).write_text("{")
    (run / ".last.old-55").mkdir()
    assert ck.recover_checkpoint_dir(run / "last") == run / "last"
    assert _hidden(run, "last") == [f".last.tmp-{alive}"]
    assert ck.recover_checkpoint_dir(run / "nothing") is None
    with pytest.raises(CheckpointError, match="not found"):
        ck.find_checkpoint(run / "nothing")


# ------------------------------------------------------------------------------------------------ trainer state

def _draw(gen):
    return (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), np.random.randn(),
            torch.rand(3).tolist(), torch.rand(2, generator=gen).tolist())


def _trainer_state(model):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 ** step)
    loss = model.classifier(model.encoder(torch.randn(2, 4))).sum()
    loss.backward()
    opt.step()
    sched.step()
    history = [{"epoch": 1, "train_loss": np.float64(0.25), "lr": 1e-3, "steps": np.int64(3), "note": "ok"}]
    return opt, sched, {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": 1,
                        "global_step": 3, "best_metric": None, "best_epoch": 1, "history": history}


def test_trainer_state_loads_with_weights_only_and_rng_round_trips(tmp_path):
    model, gen = Net(), torch.Generator().manual_seed(3)
    opt, sched, state = _trainer_state(model)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.gauss(0, 1), np.random.randn()  # leave cached gaussians in both states
    state["rng"] = ck.capture_rng_state({"loader": gen})
    _save(tmp_path / "last", model, trainer_state=state)
    first = _draw(gen)

    raw = torch.load(tmp_path / "last" / ck.TRAINER_STATE, weights_only=True)
    assert raw["epoch"] == 1
    got = ck.load_trainer_state(tmp_path / "last")
    assert got.keys() == ck.load_trainer_state(tmp_path / "last" / ck.TRAINER_STATE).keys() == raw.keys() - {ck._TRAINER_MARK}
    assert got["history"] == [{"epoch": 1, "train_loss": 0.25, "lr": 1e-3, "steps": 3, "note": "ok"}]
    assert type(got["history"][0]["train_loss"]) is float
    opt2 = torch.optim.AdamW(Net().parameters(), lr=1e-3)
    opt2.load_state_dict(got["optimizer"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    torch.optim.lr_scheduler.LambdaLR(opt2, lambda step: 0.5 ** step).load_state_dict(got["scheduler"])

    random.seed(99), np.random.seed(99), torch.manual_seed(99), gen.manual_seed(99)
    restored = ck.restore_rng_state(got["rng"], {"loader": gen})
    assert set(restored) >= {"python", "numpy", "torch", "generator:loader"}
    assert _draw(gen) == first


def test_raw_rng_states_are_converted_and_restorable(tmp_path):
    random.seed(5), np.random.seed(6), torch.manual_seed(7)
    raw = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    f = ck.save_trainer_state(tmp_path / "state.pt", {"epoch": 2, "rng": raw})
    gen = torch.Generator()
    first = _draw(gen)[:5]
    torch.load(f, weights_only=True)
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    ck.restore_rng_state(ck.load_trainer_state(f)["rng"])
    assert _draw(gen)[:5] == first
    (tmp_path / "ck").mkdir()
    assert ck.save_trainer_state(tmp_path / "ck", {"epoch": 1}) == tmp_path / "ck" / ck.TRAINER_STATE


def test_bad_trainer_state_files_give_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="missing"):
        ck.load_trainer_state(tmp_path)
    good = ck.save_trainer_state(tmp_path / "good.pt", {"epoch": 1, "x": torch.zeros(1000)})
    data = good.read_bytes()
    cases = {
        "empty.pt": (b"", "empty"),
        "cut.pt": (data[: len(data) // 2], "truncated"),
        "text.pt": (b"hello, this is not a checkpoint\n", "truncated or not a torch file|not a trainer state"),
    }
    for name, (content, pattern) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=pattern) as info:
            ck.load_trainer_state(tmp_path / name)
        assert name in str(info.value)
    torch.save({"x": np.arange(3)}, tmp_path / "numpy.pt")
    with pytest.raises(CheckpointError, match=r"numpy\.pt: .*weights_only=True.*numpy"):
        ck.load_trainer_state(tmp_path / "numpy.pt")
    torch.save(Net().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="not an affectkit trainer state"):
        ck.load_trainer_state(tmp_path / "weights.pt")
    torch.save(torch.zeros(2), tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match="expected a dict"):
        ck.load_trainer_state(tmp_path / "tensor.pt")
    torch.save({ck._TRAINER_MARK: 99, "epoch": 1}, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match="newer affectkit"):
        ck.load_trainer_state(tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match=r"state\['fn'\]"):
        ck.save_trainer_state(tmp_path / "bad.pt", {"epoch": 1, "fn": len})
    assert not (tmp_path / "bad.pt").exists()


# ------------------------------------------------------------------------------------------------ load_weights_into

def _params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_strict_mismatch_lists_keys_and_changes_nothing(tmp_path):
    _save(tmp_path / "run" / "best", Net())
    target = Net(classes=5, prefix="backbone")
    before = _params(target)
    with pytest.raises(CheckpointError) as info:
        ck.load_weights_into(target, tmp_path / "run")
    msg = str(info.value)
    assert "model.safetensors" in msg and "missing in checkpoint (4)" in msg and "backbone.0.weight" in msg
    assert "not in model (4)" in msg and "encoder.2.bias" in msg and "classifier.weight checkpoint (3, 8) vs model (5, 8)" in msg
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())


def test_rename_and_exclude_load_a_backbone_into_a_new_head(tmp_path):
    src = Net()
    _save(tmp_path / "pre", src)
    target = Net(classes=5, prefix="backbone")
    head = target.classifier.weight.detach().clone()
    report = ck.load_weights_into(target, tmp_path / "pre", rename={"encoder.": "backbone."}, exclude=["classifier.*"])
    assert sorted(report["loaded"]) == ["backbone.0.bias", "backbone.0.weight", "backbone.2.bias", "backbone.2.weight"]
    assert report["missing"] == report["unexpected"] == report["shape_mismatch"] == []
    assert sorted(report["skipped"]) == ["classifier.bias", "classifier.weight"]
    assert torch.equal(target.backbone[0].weight, src.encoder[0].weight)
    assert torch.equal(target.classifier.weight, head)


def test_non_strict_loads_what_matches_and_reports_shape_mismatch(tmp_path):
    src = Net()
    _save(tmp_path / "pre", src)
    target = Net(classes=5)
    head = target.classifier.weight.detach().clone()
    report = ck.load_weights_into(target, tmp_path / "pre" / ck.WEIGHTS, strict=False)
    assert report["source"] == str(tmp_path / "pre" / ck.WEIGHTS)
    assert len(report["loaded"]) == 4 and report["missing"] == [] and report["unexpected"] == []
    assert report["shape_mismatch"][0] == {"key": "classifier.weight", "checkpoint": [3, 8], "model": [5, 8]}
    assert torch.equal(target.encoder[2].bias, src.encoder[2].bias) and torch.equal(target.classifier.weight, head)
    text = ck.format_load_report(report)
    assert "loaded 4/6" in text and "shape mismatch (2)" in text and "classifier.weight (3, 8)->(5, 8)" in text


def test_include_limits_what_is_loaded(tmp_path):
    src = Net()
    _save(tmp_path / "pre", src)
    target = Net(prefix="backbone")
    report = ck.load_weights_into(target, tmp_path / "pre", include=["backbone.0.*"], rename={"encoder.": "backbone."})
    assert sorted(report["loaded"]) == ["backbone.0.bias", "backbone.0.weight"]
    assert torch.equal(target.backbone[0].weight, src.encoder[0].weight)
    assert not torch.equal(target.backbone[2].weight, src.encoder[2].weight)


def test_load_weights_into_errors(tmp_path):
    class Wide(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(2, 2) for _ in range(7))

    _save(tmp_path / "pre", Net())
    with pytest.raises(CheckpointError, match=r"missing in checkpoint \(14\): .*and 4 more"):
        ck.load_weights_into(Wide(), tmp_path / "pre")
    with pytest.raises(CheckpointError, match="no weight matches"):
        ck.load_weights_into(Wide(), tmp_path / "pre", strict=False)
    with pytest.raises(CheckpointError, match="maps both"):
        ck.load_weights_into(Net(), tmp_path / "pre", rename={"encoder.0.": "z.", "encoder.2.": "z."}, strict=False)
    with pytest.raises(CheckpointError, match="not found"):
        ck.load_weights_into(Net(), tmp_path / "nowhere.safetensors")
