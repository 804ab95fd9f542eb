"""Epoch time of audio-only training with and without the decoded-waveform cache (``data.cache_mb``).

Generates a RAVDESS-named folder of native-rate recordings (default 64 files of 3 s, 48 kHz stereo
16-bit WAV, 4 actors x 8 emotions x 2 statements: harmonic tones with noise, so decoding and
resampling cost what real speech costs) and trains the shipped log-mel CNN recipe
(``audio/ravdess_cnn_logmel.yaml``, its split: train on actors 1-2, validate on 3, test on 4) for
3 epochs twice in this one process, same seed: ``data.cache_mb=0`` (decode every file every epoch)
and the default in-memory cache. Prints JSON: per run the trainer's ``epoch_seconds`` (the training
loop of each epoch; validation not included), the wall time of the whole run (validation every
epoch and the final test included), the loss of each epoch (identical in both runs) and the
machine. ``--profile`` adds cProfile of one uncached epoch (where the time goes) and the
torch.profiler top operators of the training step of audio_cnn and audio_resnet18.

    python benchmarks/bench_audio_cache.py --out audio_cache.json
    python benchmarks/bench_audio_cache.py --files 16 --epochs 2          # quick
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_vaanet import machine_info  # noqa: E402

RECIPE = "audio/ravdess_cnn_logmel.yaml"


def make_corpus(root: Path, files: int, seconds: float, sr: int, channels: int) -> list[Path]:
    from affectkit.data.media_writer import write_wav

    root.mkdir(parents=True, exist_ok=True)
    out, rng = [], np.random.default_rng(0)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    for k in range(files):
        actor, emotion, statement, rep = 1 + k % 4, 1 + (k // 4) % 8, 1 + (k // 32) % 2, 1 + k // 64
        f0 = 100.0 + 20.0 * emotion + 5.0 * actor
        wave = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3, 4)) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t))
        chans = np.stack([0.25 * wave / 2.1 + 0.02 * rng.standard_normal(n) for _ in range(channels)])
        d = root / f"Actor_{actor:02d}"
        d.mkdir(exist_ok=True)
        p = d / f"03-01-{emotion:02d}-01-{statement:02d}-{rep:02d}-{actor:02d}.wav"
        write_wav(p, chans.astype(np.float32), sr)
        out.append(p)
    return out


def run_training(data: Path, runs: Path, name: str, epochs: int, extra: list[str]) -> dict:
    from affectkit.engine.trainer import train

    overrides = [f"data.path={data}", "data.format=audio", f"train.epochs={epochs}", "train.seed=0",
                 f"output.root={runs}", f"output.run_name={name}", *extra]
    t0 = time.perf_counter()
    result = train(RECIPE, overrides)
    wall = time.perf_counter() - t0
    hist = result.history
    return {"overrides": extra, "epoch_seconds": [r["epoch_seconds"] for r in hist],
            "train_loss": [round(r["train_loss"], 6) for r in hist], "run_seconds": round(wall, 2)}


def profile_epoch(data: Path, runs: Path) -> dict:
    """cProfile of one uncached epoch (a 1-epoch run): the share of decoding, features and the model."""
    prof = cProfile.Profile()
    prof.enable()
    run_training(data, runs, "profile", 1, ["data.cache_mb=0"])
    prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt
    want = {"load_audio": "decode + resample (load_audio)", "audio_features": "log-mel features",
            "train_step": "model forward + loss (train_step)", "backward": "backward",
            "_optimizer_step": "optimizer step", "_validate": "validation (every epoch)"}
    out = {}
    for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
        if func in want and ("affectkit" in file or func == "backward"):
            label = want[func]
            out[label] = max(out.get(label, 0.0), ct)
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
    return {"total_seconds": round(total, 2), "cumulative_seconds": {k: round(v, 2) for k, v in out.items()},
            "share": {k: round(v / total, 3) for k, v in out.items()}}


def profile_step(model_name: str, recipe: str, steps: int = 5) -> dict:
    """torch.profiler over training steps (batch 16, the recipe's input) of one audio model."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from affectkit import create_model
    from affectkit.config import load_config
    from affectkit.engine.tasks import build_task

    cfg = load_config(recipe)
    classes = [str(i) for i in range(8)]
    task = build_task(cfg, classes, None)
    model = create_model(cfg.model.name, **task.model_args()).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    bins = cfg.input.audio.n_mels if cfg.input.audio.kind == "log_mel" else cfg.input.audio.n_mfcc
    batch = {"audio": torch.randn(16, cfg.input.audio.num_frames, bins), "label": torch.randint(0, 8, (16,))}
    for _ in range(2):  # warm-up
        task.train_step(model, batch).loss.backward()
        opt.step()
        opt.zero_grad()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            task.train_step(model, batch).loss.backward()
            opt.step()
            opt.zero_grad()
    per_step = (time.perf_counter() - t0) / steps
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    top = [{"op": e.key, "self_share": round(e.self_cpu_time_total / total, 3)} for e in events[:6]]
    return {"model": model_name, "step_seconds_batch16": round(per_step, 4), "top_ops": top}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="also profile an epoch and the models' training step")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench_audio_cache_") as tmp:
        tmp = Path(tmp)
        data = tmp / "ravdess48k"
        make_corpus(data, args.files, args.seconds, args.rate, args.channels)
        report = {"corpus": {"files": args.files, "seconds": args.seconds, "sample_rate": args.rate,
                             "channels": args.channels, "format": "16-bit PCM WAV"},
                  "recipe": RECIPE, "epochs": args.epochs}
        report["no_cache"] = run_training(data, tmp / "runs", "nocache", args.epochs, ["data.cache_mb=0"])
        report["memory_cache"] = run_training(data, tmp / "runs", "cached", args.epochs, [])
        a, b = report["no_cache"]["epoch_seconds"], report["memory_cache"]["epoch_seconds"]
        if len(a) > 1:
            report["later_epochs_mean_seconds"] = {"no_cache": round(float(np.mean(a[1:])), 3),
                                                   "memory_cache": round(float(np.mean(b[1:])), 3)}
            report["speedup_later_epochs"] = round(float(np.mean(a[1:]) / max(1e-9, np.mean(b[1:]))), 2)
        report["same_losses"] = report["no_cache"]["train_loss"] == report["memory_cache"]["train_loss"]
        if args.profile:
            report["profile_uncached_epoch"] = profile_epoch(data, tmp / "runs")
            report["profile_step"] = [profile_step("audio_cnn", RECIPE),
                                      profile_step("audio_resnet18", "audio/ravdess_resnet18_mfcc.yaml")]
    report["machine"] = machine_info()
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
