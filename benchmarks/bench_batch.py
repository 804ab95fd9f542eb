"""Batch prediction throughput: videos per second of ``affectkit predict`` over a folder, per engine.

Engines: ``torch`` (eager fp32), ``torch-fast`` (``--fast``: folded BN, int8 trunk where the CPU has
VNNI) and ``onnx`` (the ``affectkit export onnx`` file on ONNX Runtime), each with decoding in a
background process (``--workers 1``, the default) and, for torch, also without (``--workers 0``) to
show what the overlap buys. Each configuration runs in its own process, on the same files, one
after the other in one run of this script (compare the ratios, not absolute numbers, across runs).
Also reports the largest probability difference between the ONNX and torch engines on these videos.

    python benchmarks/bench_batch.py --out batch.json            # full-size VAANet (ResNet-101 trunk)
    python benchmarks/bench_batch.py --quick                      # smoke run, small model
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_vaanet import machine_info, make_videos, sizes, wait_quiet  # noqa: E402

CONFIGS = [("torch", 0), ("torch", 1), ("torch-fast", 1), ("onnx", 1)]


def make_checkpoint(folder: Path, quick: bool) -> Path:
    """A VAANet checkpoint of the VE-8 config (random weights, seed 0): speed does not depend on them."""
    import torch

    import affectkit
    from affectkit.config import load_config
    from affectkit.data.clips import feature_bins
    from affectkit.data.datasets import VE8_CLASSES
    from affectkit.engine.checkpoint import save_checkpoint
    from affectkit.registry import model_config

    cfg = load_config("vaanet/vaanet_ve8.yaml", overrides=sizes(quick)["overrides"])
    args = model_config("vaanet", **{**sizes(quick)["model"], "num_classes": len(VE8_CLASSES), "seq_len": cfg.input.seq_len,
                                     "snippet_duration": cfg.input.snippet_duration, "sample_size": cfg.input.sample_size,
                                     "audio_frames": cfg.input.audio.num_frames, "audio_bins": feature_bins(cfg.input)})
    torch.manual_seed(0)
    model = affectkit.create_model("vaanet", **args).eval()
    config = {"task": "classify", "model": {"name": "vaanet", "args": args}, "classes": list(VE8_CLASSES),
              "polarity": None, "input": cfg.to_dict()["input"], "config": cfg.to_dict()}
    return save_checkpoint(folder / "ckpt", model, config, {"note": "benchmark: random weights"})


def child(args) -> int:
    """One configuration: predict every file of the folder, time it, print a JSON line."""
    from affectkit.deploy.predictor import Predictor

    engine, workers = args.child, args.workers
    t0 = time.perf_counter()
    pred = Predictor(args.onnx if engine == "onnx" else args.checkpoint, engine="onnx" if engine == "onnx" else "torch",
                     fast=engine == "torch-fast")
    load_s = time.perf_counter() - t0
    files = sorted(str(p) for p in Path(args.folder).glob("*.mp4"))
    pred.predict(files[0])  # warm-up (first-call allocations, oneDNN primitive creation)
    results, t0 = [], time.perf_counter()
    for path, result, error in pred.predict_many(files, workers=workers):
        if error:
            raise SystemExit(f"{path}: {error}")
        results.append({"video": os.path.basename(path), "probabilities": result["probabilities"], "label": result["label"]})
    wall = time.perf_counter() - t0
    Path(args.results).write_text("\n".join(json.dumps(r) for r in results))
    print(json.dumps({"engine": engine, "workers": workers, "videos": len(files), "seconds": round(wall, 2),
                      "videos_per_s": round(len(files) / wall, 3), "model_load_s": round(load_s, 2)}))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run with a small model and few videos")
    ap.add_argument("--videos", type=int, default=None, help="files per run (default 12; 4 with --quick)")
    ap.add_argument("--out", help="also write the JSON report here")
    ap.add_argument("--max-wait", type=float, default=600.0, help="seconds to wait for an idle machine first")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint", help=argparse.SUPPRESS)
    ap.add_argument("--onnx", help=argparse.SUPPRESS)
    ap.add_argument("--results", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)

    n = args.videos or (4 if args.quick else 12)
    report: dict = {"machine": machine_info(), "quick": args.quick}
    with tempfile.TemporaryDirectory(prefix="affectkit-bench-batch-") as tmp:
        tmp = Path(tmp)
        src = tmp / "src"
        src.mkdir()
        originals = make_videos(src, args.quick)
        folder = tmp / "videos"
        folder.mkdir()
        for i in range(n):  # the same few clips under n names: decoding work per file is what counts
            os.link(originals[i % len(originals)], folder / f"v{i:03d}.mp4")
        spec = sizes(args.quick)["video"]
        report["videos"] = {"count": n, "width": spec["width"], "height": spec["height"], "fps": spec["fps"],
                            "seconds_each": spec["seconds"]}
        ckpt = make_checkpoint(tmp, args.quick)
        onnx_path = tmp / "model.onnx"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "affectkit", "export", "onnx", str(ckpt), "-o", str(onnx_path)],
                       check=True, capture_output=True, text=True)
        report["onnx_export_s"] = round(time.perf_counter() - t0, 1)
        report["onnx_size_mb"] = round(onnx_path.stat().st_size / 2**20, 1)
        report["quiet_wait"] = wait_quiet(0.1, args.max_wait)
        runs, outputs = [], {}
        for engine, workers in CONFIGS:
            res = tmp / f"{engine}-{workers}.jsonl"
            proc = subprocess.run([sys.executable, __file__, "--child", engine, "--workers", str(workers),
                                   "--checkpoint", str(ckpt), "--onnx", str(onnx_path), "--folder", str(folder),
                                   "--results", str(res)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{engine} (workers {workers}) failed:\n{proc.stderr[-3000:]}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            print(json.dumps(row), file=sys.stderr)
            runs.append(row)
            outputs[(engine, workers)] = [json.loads(line) for line in res.read_text().splitlines()]
        report["runs"] = runs
        base = next(r for r in runs if r["engine"] == "torch" and r["workers"] == 1)["videos_per_s"]
        report["speedup_vs_torch_workers1"] = {f"{r['engine']}/workers={r['workers']}": round(r["videos_per_s"] / base, 2) for r in runs}
        ref, other = outputs[("torch", 1)], outputs[("onnx", 1)]
        report["onnx_vs_torch"] = {
            "max_abs_prob_diff": max(abs(a["probabilities"][c] - b["probabilities"][c]) for a, b in zip(ref, other) for c in a["probabilities"]),
            "same_label": sum(a["label"] == b["label"] for a, b in zip(ref, other)), "of": len(ref)}
        fast = outputs[("torch-fast", 1)]
        report["fast_vs_torch"] = {
            "max_abs_prob_diff": max(abs(a["probabilities"][c] - b["probabilities"][c]) for a, b in zip(ref, fast) for c in a["probabilities"]),
            "same_label": sum(a["label"] == b["label"] for a, b in zip(ref, fast)), "of": len(ref)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
