"""Progress without a terminal: `train` logs one line per epoch, batch `predict` one line per N files."""
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from affectkit import cli

from .conftest import tiny_overrides

EPOCHS = 3


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """A very small synthetic set (4 classes, 3 train / 2 val / 2 test videos each, 32x32)."""
    from affectkit.data import synth

    cfg = synth.SynthConfig(num_classes=4, train_per_class=3, val_per_class=2, test_per_class=2,
                            duration=(2.0, 3.0), size=(32, 32), difficulty="easy", seed=3, subtitles=False)
    return Path(synth.generate(tmp_path_factory.mktemp("synth_small"), cfg))


@pytest.fixture(scope="module")
def cli_run(small_set, tmp_path_factory):
    """`affectkit train` in a subprocess, its stderr a pipe (not a terminal)."""
    root = tmp_path_factory.mktemp("runs_progress")
    cmd = [sys.executable, "-m", "affectkit", "train", "vaanet/vaanet_synth.yaml"]
    for o in tiny_overrides(small_set, root, f"train.epochs={EPOCHS}", "output.run_name=progress", "train.seed=0"):
        cmd += ["-o", o]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, root / "progress"


def test_train_logs_one_line_per_epoch_to_a_pipe(cli_run):
    proc, _ = cli_run
    metric = re.search(r"validation (\w+) ", proc.stdout).group(1)  # the run's selection metric, as the CLI reports it
    lines = [line for line in proc.stderr.splitlines() if re.search(r"affectkit\.engine\.trainer: epoch \d+/", line)]
    assert len(lines) == EPOCHS, proc.stderr
    for n, line in enumerate(lines, 1):
        assert f"epoch {n}/{EPOCHS}" in line
        assert re.search(r"train loss \d+\.\d{4}", line), line
        assert re.search(rf"val {metric} \d\.\d{{4}}, best \d\.\d{{4}} at epoch \d+", line), line
        assert re.search(r"train \d+\.\d s", line), line
    assert "since the last epoch" in lines[-1]
    assert "\r" not in proc.stderr  # no progress bar redraws in a log


def test_batch_predict_logs_every_n_files_without_a_terminal(cli_run, small_set, tmp_path, monkeypatch, caplog):
    _, run = cli_run
    videos = sorted(str(p) for p in (small_set.parent / "videos").rglob("*.mp4"))[:5]
    monkeypatch.setattr(cli, "BATCH_LOG_EVERY", 2)
    caplog.set_level(logging.INFO, logger="affectkit")
    out = tmp_path / "out.jsonl"
    assert cli.main(["predict", *videos, "--checkpoint", str(run), "--out", str(out), "--workers", "0"]) == 0
    assert len(out.read_text().splitlines()) == 5
    lines = [r.getMessage() for r in caplog.records if r.name == "affectkit.cli" and r.getMessage().startswith("predict:")]
    assert [line.split(" files")[0] for line in lines] == ["predict: 2 of 5", "predict: 4 of 5"], lines
    assert all("(0 skipped)" in line and "files/s" in line for line in lines)


def test_batch_predict_logs_after_the_time_bound(cli_run, small_set, tmp_path, monkeypatch, caplog):
    _, run = cli_run
    videos = sorted(str(p) for p in (small_set.parent / "videos").rglob("*.mp4"))[:3]
    monkeypatch.setattr(cli, "BATCH_LOG_SECONDS", 0.0)  # every file is "30 s later"
    caplog.set_level(logging.INFO, logger="affectkit")
    assert cli.main(["predict", *videos, "--checkpoint", str(run), "--out", str(tmp_path / "o.jsonl"), "--workers", "0"]) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "affectkit.cli" and r.getMessage().startswith("predict:")]
    assert [line.split(" files")[0] for line in lines] == ["predict: 1 of 3", "predict: 2 of 3"], lines


def test_no_progress_lines_with_the_bar(cli_run, small_set, tmp_path, caplog):
    _, run = cli_run
    videos = sorted(str(p) for p in (small_set.parent / "videos").rglob("*.mp4"))[:2]
    caplog.set_level(logging.INFO, logger="affectkit")
    old = cli.BATCH_LOG_EVERY
    cli.BATCH_LOG_EVERY = 1
    try:  # --progress forces the bar: no log lines on top of it
        assert cli.main(["predict", *videos, "--checkpoint", str(run), "--out", str(tmp_path / "o.jsonl"), "--progress", "--workers", "0"]) == 0
    finally:
        cli.BATCH_LOG_EVERY = old
    assert not [r for r in caplog.records if r.name == "affectkit.cli" and r.getMessage().startswith("predict:")]
