"""The trainer end to end on tiny synthetic data: learning, checkpoints, resume, evaluate, predict."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from affectkit import evaluate, load_model, predict, train
from affectkit.engine.checkpoint import CONFIG, META, WEIGHTS

from ..conftest import tiny_overrides


def test_small_vaanet_learns_the_synthetic_set(trained):
    # Chance is 1/4; learning means at least twice chance on held-out test videos.
    metrics = evaluate(trained.best_dir, split="test")
    assert metrics["num_samples"] == 24
    assert metrics["accuracy"] >= 0.5, metrics
    out = Path(metrics["out_dir"])
    assert (out / "metrics.json").is_file() and (out / "confusion_matrix.png").is_file()
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 24


def test_run_folder_layout_and_checkpoint_format(trained, tiny_synth):
    run = trained.run_dir
    for sub in ("best", "last"):
        assert {WEIGHTS, CONFIG, META} <= {p.name for p in (run / sub).iterdir()}
    assert (run / "last" / "trainer_state.pt").is_file()
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == list(range(1, 9))
    assert all("val_accuracy" in r and "train_loss" in r for r in lines)
    meta = json.loads((run / "best" / META).read_text())
    assert meta["split"] == "val" and meta["epoch"] == trained.best_epoch
    assert not list(run.glob(".*tmp*")), "no temporary checkpoint folders left behind"
    model = load_model(run / "best")
    assert model.affectkit_config["classes"] == json.loads(Path(tiny_synth).read_text())["labels"]
    assert model.affectkit_config["model"]["args"]["seq_len"] == 4  # everything to rebuild the model
    sd = model.state_dict()
    model2 = load_model(run)  # a run folder resolves to its best checkpoint
    assert all(torch.equal(sd[k], v) for k, v in model2.state_dict().items())


def test_predict_gives_label_probabilities_and_timeline(trained, tiny_synth, tmp_path):
    db = json.loads(Path(tiny_synth).read_text())["database"]
    vid = next(v for v in db.values() if v["subset"] == "testing")
    res = predict(Path(tiny_synth).parent / vid["video"], checkpoint=trained.best_dir)
    assert res["label"] in res["probabilities"]
    assert sum(res["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert len(res["timeline"]) == 4
    spans = [(s["start"], s["end"]) for s in res["timeline"]]
    assert all(0 <= a < b <= res["duration"] + 0.2 for a, b in spans) and spans == sorted(spans)
    assert all(s["attention"] >= 0 for s in res["timeline"])  # VAANet's temporal attention is a ReLU


def _run_cli(args, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "affectkit", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def _cli_args(tiny_synth, root, *extra):
    return ["train", "vaanet/vaanet_synth.yaml", *sum((["-o", o] for o in tiny_overrides(tiny_synth, root, *extra)), [])]


def _weights(ckpt_dir):
    from safetensors.torch import load_file

    return load_file(str(Path(ckpt_dir) / WEIGHTS))


def test_killed_training_resumes_bit_identical_to_an_uninterrupted_run(tiny_synth, tmp_path):
    """SIGKILL during epoch 2 of 4, resume: the last weights equal, bit for bit, those of the same
    config and seed run without interruption (both in fresh processes, one math thread, inline data:
    a resumed epoch must replay its own shuffle and augmentation, not the first epoch's)."""
    extra = ("train.epochs=4", "train.max_steps_per_epoch=3", "train.seed=5", "train.optimizer=adamw",
             "train.scheduler=cosine")
    ref = _run_cli(_cli_args(tiny_synth, tmp_path / "ref", *extra, "output.run_name=run"))
    out, _ = ref.communicate(timeout=400)
    assert ref.returncode == 0, out[-3000:]

    proc = _run_cli(_cli_args(tiny_synth, tmp_path / "killed", *extra, "output.run_name=run"))
    run = tmp_path / "killed" / "run"
    meta = run / "last" / META
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if meta.is_file() and json.loads(meta.read_text())["epoch"] >= 1:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training ended before it could be interrupted: " + proc.stdout.read()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads(meta.read_text())["epoch"]
    assert 1 <= done < 4
    proc = _run_cli(["train", "--resume", str(run)])
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, out[-3000:]
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4]
    ref_lines = [json.loads(x) for x in (tmp_path / "ref" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_loss"] for r in lines] == [r["train_loss"] for r in ref_lines]
    a, b = _weights(tmp_path / "ref" / "run" / "last"), _weights(run / "last")
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed run differs from the uninterrupted one in {different[:5]}"


def test_resume_without_trainer_state_is_an_error(tiny_synth, tmp_path):
    from affectkit.errors import CheckpointError

    result = train("vaanet/vaanet_synth.yaml", tiny_overrides(
        tiny_synth, tmp_path, "train.epochs=1", "train.max_steps_per_epoch=1", "output.run_name=nostate"))
    (result.run_dir / "last" / "trainer_state.pt").unlink()
    with pytest.raises(CheckpointError, match="no trainer state to resume from"):
        train(resume=result.run_dir)


def test_torchrun_two_processes_keep_weights_in_sync(tiny_synth, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    import socket

    with socket.socket() as sock:  # a free loopback port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(port),
           "-m", "affectkit", "train", "vaanet/vaanet_synth.yaml"]
    # gradient accumulation 2 over an odd number of batches (3 per rank): the last window of each epoch
    # holds one micro-batch, which must be all-reduced like any other (it was not, and the ranks drifted)
    for o in tiny_overrides(tiny_synth, tmp_path, "train.epochs=2", "train.max_steps_per_epoch=3", "train.grad_accum=2",
                            "output.run_name=ddp"):
        cmd += ["-o", o]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "ddp"
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["world_size"] == 2
    assert len(summary["rank_weight_digests"]) == 2 and summary["ranks_in_sync"] is True
    assert len(set(summary["rank_weight_digests"])) == 1
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4]  # 2 optimiser steps an epoch: one full window, one partial
    # only rank 0 writes: one run folder, one best and one last checkpoint, nothing else
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["best", "last"]
    assert json.loads((run / "last" / META).read_text())["world_size"] == 2


def test_cached_trunk_features_train_the_heads_only(tiny_synth, tmp_path):
    from affectkit import create_model
    from affectkit.engine.checkpoint import load_state

    result = train("vaanet/vaanet_synth.yaml", tiny_overrides(
        tiny_synth, tmp_path, "model.args.frozen_trunk=true", "train.cache_trunk_features=true",
        "train.epochs=2", "output.run_name=cached", "train.seed=3"))
    lines = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_samples"] for r in lines] == [48, 48]
    state = load_state(result.run_dir / "last")
    torch.manual_seed(3)
    init = create_model("vaanet", **json.loads((result.run_dir / "last" / CONFIG).read_text())["model"]["args"]).state_dict()
    trunk = [k for k in state if k.startswith("trunk.")]
    heads = [k for k in state if k.startswith("classifier.")]
    assert trunk and heads
    assert all(torch.equal(state[k], init[k]) for k in trunk), "the frozen trunk (and its BN statistics) must not change"
    assert not all(torch.equal(state[k], init[k]) for k in heads)


def test_bf16_autocast_and_gradient_accumulation(tiny_synth, tmp_path):
    result = train("vaanet/vaanet_synth.yaml", tiny_overrides(
        tiny_synth, tmp_path, "train.bf16=true", "train.grad_accum=2", "train.epochs=1",
        "train.max_steps_per_epoch=3", "output.run_name=bf16", "train.scheduler=cosine", "train.warmup_epochs=0.5"))
    rec = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert rec["step"] == 2  # 3 batches, accumulation 2: one full step and the flushed remainder
    assert rec["train_samples"] == 24 and math.isfinite(rec["train_loss"])
    assert json.loads((result.run_dir / "last" / META).read_text())["global_step"] == 2


@pytest.mark.slow
def test_compiled_training_step(tiny_synth, tmp_path):
    result = train("vaanet/vaanet_synth.yaml", tiny_overrides(
        tiny_synth, tmp_path, "train.compile=true", "train.epochs=1", "train.max_steps_per_epoch=2",
        "output.run_name=compiled", "train.loss=ce"))
    rec = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert rec["step"] == 2 and rec["train_samples"] == 16 and math.isfinite(rec["train_loss"])
    assert "val_accuracy" in rec  # evaluation ran on the plain (uncompiled) model


def test_channels_last_training_matches_the_default_layout(tiny_synth, tmp_path, monkeypatch):
    import affectkit.engine.trainer as trainer_module

    laid_out = []
    real = trainer_module.to_channels_last
    monkeypatch.setattr(trainer_module, "to_channels_last", lambda m: laid_out.append(m) or real(m))
    losses = []
    for flag in ("false", "true"):
        result = train("vaanet/vaanet_synth.yaml", tiny_overrides(
            tiny_synth, tmp_path, f"train.channels_last={flag}", "train.epochs=1", "train.max_steps_per_epoch=2",
            f"output.run_name=cl_{flag}", "train.loss=ce"))
        losses.append(json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[0])["train_loss"])
        assert (result.run_dir / "last" / META).exists()
        assert len(laid_out) == (flag == "true")  # the option reaches the trainer's model, and only when set
    assert math.isfinite(losses[0]) and losses[1] == pytest.approx(losses[0], rel=1e-4, abs=1e-5)
