#!/usr/bin/env python
"""HTTP service benchmark: start ``affectkit serve`` (through the CLI, in a subprocess), then run
concurrent clients that post synthetic videos to ``/predict``; prints (and writes with ``--out``)
latency percentiles and throughput as JSON.

    python benchmarks/bench_service.py                           # tiny VAANet trained here (~1 min)
    python benchmarks/bench_service.py --model full --requests 3 # full-size VAANet (untrained weights)
    python benchmarks/bench_service.py --checkpoint runs/x/best --clients 8 --requests 10 --out svc.json

``--model tiny`` trains the tests' tiny VAANet for one epoch on a small synthetic set; ``--model full``
writes an untrained full-size VAANet checkpoint (the VideoEmotion-8 config: 3D ResNet-101, 12 snippets
of 16 frames at 112x112, 8 classes): weights do not change the cost of a forward pass. The videos are
the synthetic set's own mp4 files (H.264 + AAC). Before the concurrent phase, a few requests are sent one
at a time (``sequential``: the latency of an idle server). Latencies are end to end as a client sees
them: upload, content check, probe, queueing, decoding, model, JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

TINY_OVERRIDES = [
    "model.args.depth=18", "model.args.width=8", "model.args.audio_width=8", "model.args.audio_segments=4",
    "input.seq_len=4", "input.snippet_duration=8", "input.sample_size=32",
    "input.audio.n_fft=512", "input.audio.hop_length=256", "input.audio.num_frames=128",
    "data.num_workers=0", "train.batch_size=8", "eval.batch_size=16", "output.tensorboard=false",
]


# ------------------------------------------------------------------------------------------ inputs
def make_videos(out: Path, args) -> Path:
    from affectkit.data import synth

    w, h = (int(x) for x in args.video_size.lower().split("x"))
    cfg = synth.SynthConfig(num_classes=4, train_per_class=6, val_per_class=2, test_per_class=2,
                            duration=(args.video_seconds, args.video_seconds * 1.25), size=(w, h),
                            difficulty="easy", seed=3, subtitles=False)
    return Path(synth.generate(out, cfg, workers=min(2, os.cpu_count() or 1)))


def tiny_checkpoint(data_json: Path, root: Path) -> Path:
    from affectkit import train

    result = train("vaanet/vaanet_synth.yaml", [f"data.path={data_json}", f"output.root={root}", *TINY_OVERRIDES,
                                                "train.epochs=1", "output.run_name=bench-tiny"])
    return Path(result.best_dir)


def full_checkpoint(root: Path) -> Path:
    """An untrained full-size VAANet checkpoint, written as training would write it."""
    from affectkit import create_model
    from affectkit.config import load_config
    from affectkit.data.datasets import POLARITY_PRESETS, VE8_CLASSES
    from affectkit.engine.checkpoint import save_checkpoint
    from affectkit.engine.tasks import build_task

    cfg = load_config("vaanet/vaanet_ve8.yaml")
    polarity = POLARITY_PRESETS.get("ve8")
    task = build_task(cfg, VE8_CLASSES, polarity)
    args = task.model_args()
    model = create_model(cfg.model.name, **args).eval()
    config = {"task": cfg.task, "model": {"name": cfg.model.name, "args": args}, "classes": list(VE8_CLASSES),
              "polarity": polarity, "input": cfg.to_dict()["input"], "config": cfg.to_dict()}
    return save_checkpoint(root / "full-vaanet", model, config, {"note": "untrained, for benchmarking"})


# ------------------------------------------------------------------------------------------ server
def start_server(checkpoint: Path, work: Path, args) -> tuple[subprocess.Popen, str, Path]:
    log = work / "server.log"
    (work / "tmp").mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "affectkit", "serve", "--checkpoint", str(checkpoint), "--port", "0",
           "--tmp-dir", str(work / "tmp"), "--queue-size", str(args.queue_size or args.clients),
           "--workers", str(args.workers), "--log-level", "warning"]
    if args.fast:
        cmd.append("--fast")
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        m = re.search(r"listening on (http://[^/\s]+)/", log.read_text(errors="replace"))
        if m:
            return proc, m.group(1), log
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start within 300 s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def post(url: str, name: str, data: bytes, timeout: float) -> tuple[int, float, dict]:
    boundary = f"bench-{uuid.uuid4().hex}"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{url}/predict", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            payload = json.loads(r.read())
            return r.status, time.perf_counter() - t0, payload
    except urllib.error.HTTPError as err:
        return err.code, time.perf_counter() - t0, {}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(latencies: list[float]) -> dict:
    r = lambda v: None if v is None else round(v, 4)  # noqa: E731
    return {"n": len(latencies), "p50_s": r(percentile(latencies, 0.5)), "p95_s": r(percentile(latencies, 0.95)),
            "max_s": r(max(latencies) if latencies else None), "mean_s": r(statistics.fmean(latencies) if latencies else None)}


# --------------------------------------------------------------------------------------------- run
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=("tiny", "full"), default="tiny", help="checkpoint made here (ignored with --checkpoint)")
    p.add_argument("--checkpoint", help="use this checkpoint instead")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=10, help="requests per client")
    p.add_argument("--workers", type=int, default=1, help="the server's --workers")
    p.add_argument("--queue-size", type=int, default=None, help="the server's --queue-size (default: --clients, so none is refused)")
    p.add_argument("--fast", action="store_true", help="serve with --fast")
    p.add_argument("--sequential", type=int, default=3, help="requests sent one at a time first (idle latency)")
    p.add_argument("--video-size", default="160x120", help="synthetic video size WxH")
    p.add_argument("--video-seconds", type=float, default=6.0, help="shortest synthetic video (longest: 1.25x)")
    p.add_argument("--timeout", type=float, default=600.0, help="client timeout per request, s")
    p.add_argument("--work-dir", help="keep data, checkpoint and server log here (default: a temporary folder)")
    p.add_argument("--out", help="write the JSON here too")
    args = p.parse_args(argv)

    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="affectkit-bench-service-"))
    work.mkdir(parents=True, exist_ok=True)
    t_setup = time.perf_counter()
    data_json = make_videos(work / "data", args)
    if args.checkpoint:
        checkpoint, model_desc = Path(args.checkpoint), "given checkpoint"
    elif args.model == "full":
        checkpoint, model_desc = full_checkpoint(work), "full-size VAANet (ResNet-101 trunk, 12x16x112x112, untrained weights)"
    else:
        checkpoint, model_desc = tiny_checkpoint(data_json, work / "runs"), "tiny VAANet (tests' size, 1 epoch)"
    db = json.loads(data_json.read_text())["database"]
    videos = [data_json.parent / v["video"] for v in db.values() if v["subset"] == "testing"]
    payloads = [(v.name, v.read_bytes()) for v in videos]
    setup_s = time.perf_counter() - t_setup

    proc, url, log = start_server(checkpoint, work, args)
    try:
        seq = []
        for i in range(max(1, args.sequential) + 1):  # the first one warms up (not counted)
            name, data = payloads[i % len(payloads)]
            status, dt, res = post(url, name, data, args.timeout)
            if status != 200:
                raise SystemExit(f"warm-up request failed with {status}; see {log}")
            if i:
                seq.append(dt)
        lat, statuses, model_s = [], {}, []
        lock = threading.Lock()
        barrier = threading.Barrier(args.clients)

        def client(k: int) -> None:
            barrier.wait()
            for j in range(args.requests):
                name, data = payloads[(k * args.requests + j) % len(payloads)]
                try:
                    status, dt, res = post(url, name, data, args.timeout)
                except Exception as err:  # noqa: BLE001 - counted
                    status, dt, res = type(err).__name__, 0.0, {}
                with lock:
                    statuses[str(status)] = statuses.get(str(status), 0) + 1
                    if status == 200:
                        lat.append(dt)
                        model_s.append(res.get("inference_seconds", 0.0))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        health = json.loads(urllib.request.urlopen(f"{url}/health", timeout=30).read())
    finally:
        stop_server(proc)

    import torch

    sizes = [len(d) for _, d in payloads]
    out = {
        "model": model_desc,
        "checkpoint": str(checkpoint),
        "server": {"workers": args.workers, "queue_size": args.queue_size or args.clients, "fast": args.fast, "engine": "torch"},
        "videos": {"count": len(payloads), "size": args.video_size, "seconds": [args.video_seconds, args.video_seconds * 1.25],
                   "mean_bytes": int(statistics.fmean(sizes)), "format": "mp4 (H.264 + AAC)"},
        "clients": args.clients,
        "requests_per_client": args.requests,
        "sequential": summary(seq),
        "concurrent": {**summary(lat), "statuses": statuses, "wall_s": round(wall, 3),
                       "requests_per_s": round(len(lat) / wall, 3) if wall > 0 else None,
                       "model_seconds_mean": round(statistics.fmean(model_s), 4) if model_s else None},
        "server_health_after": health["requests"],
        "setup_s": round(setup_s, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "platform": platform.platform()},
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
