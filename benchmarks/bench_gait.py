"""Gait throughput: skeletons per second for training and inference of the full-size BPM-GCN (with and
without PM fusion) and the 2s-AGCN single stream, their parameters and FLOPs per skeleton, and the pose
front end's frames per second on a 640x480 video (when MediaPipe is importable; otherwise recorded as
unavailable).

    OMP_NUM_THREADS=1 python benchmarks/bench_gait.py --threads 1 --out bench_gait.json

- training: SGD steps (forward, the gait task's losses: CE + CE + MSE for BPM-GCN, CE for AGCN,
  backward, update) on batches of ``--batch`` (32, the paper's) random walking-like skeletons
  (3 x 48 x 16); skeletons per second = batch x steps / seconds, after ``--warmup`` steps;
- inference: ``model.eval()`` under ``torch.inference_mode`` at batch 32 and batch 1;
- FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` on one skeleton (a multiply-add counts 2; the
  paper's "1.91 GFLOPs" are multiply-adds, see ``affectkit.models.bpm_gcn``);
- pose: ``affectkit.data.pose.video_to_gait`` (PyAV decoding + MediaPipe Pose, model_complexity 1 +
  the joint mapping) on a rendered 640x480 walking figure (:func:`render_walk`, a synthetic gait drawn
  as a filled, shaded figure); frames per second = decoded frames / seconds, and how many frames had a
  person. Run it with the interpreter of an environment that has ``affectkit[pose]``.

Prints one JSON document (``--out`` also writes it) with the CPU model (``/proc/cpuinfo``) and the
thread count.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from affectkit.deploy.accel import cpu_model  # the CPU model name, as affectkit doctor reports it


# ---------------------------------------------------------------------------------------------- models
def bench_model(name: str, kwargs: dict, *, batch: int, steps: int, warmup: int, infer_steps: int) -> dict:
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from affectkit.data.gait import NUM_AFFECTIVE
    from affectkit.registry import create_model

    torch.manual_seed(0)
    model = create_model(name, **kwargs)
    params = sum(p.numel() for p in model.parameters())
    x = model.example_inputs(batch)["skeleton"]
    y = torch.arange(batch) % 4
    aff = torch.randn(batch, NUM_AFFECTIVE * 48)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-3)

    def step():
        out = model(skeleton=x)
        ex = out.extras or {}
        if "logits_posture" in ex:
            loss = F.cross_entropy(ex["logits_posture"], y) + F.cross_entropy(ex["logits_movement"], y)
            if "affective" in ex:
                loss = loss + F.mse_loss(ex["affective"], aff)
        else:
            loss = F.cross_entropy(out.logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    train_s = time.perf_counter() - t0
    model.eval()
    res = {"model": name, "args": kwargs, "parameters": params}
    with torch.inference_mode():
        for b in (batch, 1):
            xb = x[:b]
            for _ in range(max(1, warmup)):
                model(skeleton=xb)
            n = infer_steps if b > 1 else infer_steps * 4
            t0 = time.perf_counter()
            for _ in range(n):
                model(skeleton=xb)
            dt = time.perf_counter() - t0
            res[f"inference_skeletons_per_second_batch{b}"] = round(b * n / dt, 2)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(skeleton=x[:1])
    flops = fc.get_total_flops()
    res.update({"train_skeletons_per_second": round(batch * steps / train_s, 2), "train_batch": batch,
                "train_steps": steps, "flops_per_skeleton": flops, "gflops_per_skeleton": round(flops / 1e9, 4),
                "gmacs_per_skeleton": round(flops / 2e9, 4)})
    return res


# ------------------------------------------------------------------------------------------------ pose
BONES = [(0, 1), (1, 2), (2, 3), (2, 4), (4, 5), (5, 6), (2, 7), (7, 8), (8, 9), (0, 10), (10, 11), (11, 12),
         (0, 13), (13, 14), (14, 15)]


def render_walk(path: str, frames: int = 90, size: tuple[int, int] = (640, 480), fps: float = 30.0, seed: int = 0,
                yaw_deg: float = 30.0) -> str:
    """A 640x480 H.264 video of a synthetic walking gait (``affectkit.data.synth_gait``) drawn as a
    filled figure: skin-coloured limbs of human thickness, a torso polygon, a head with a face, on a
    floor-and-wall background, seen in perspective from ``yaw_deg`` off the walker's front."""
    from PIL import Image, ImageDraw

    from affectkit.data.media_writer import write_video
    from affectkit.data.synth_gait import _subject, animate

    rng = np.random.default_rng(seed)
    x = animate("Happy", _subject(rng), rng, frames, fps, 1.0, 0.0).astype(np.float64)  # (T, 16, 3), y up, facing -z
    yaw = np.deg2rad(180.0 + yaw_deg)  # turn the walker towards the camera (the camera looks along -z)
    c, s = np.cos(yaw), np.sin(yaw)
    rx = x.copy()
    rx[..., 0], rx[..., 2] = c * x[..., 0] + s * x[..., 2], -s * x[..., 0] + c * x[..., 2]
    w, h = size
    scale = h * 0.62  # the ~1.2-unit body fills ~75 % of the height
    out = np.zeros((frames, h, w, 3), dtype=np.uint8)
    for t in range(frames):
        img = Image.new("RGB", (w, h), (196, 205, 214))
        d = ImageDraw.Draw(img)
        d.rectangle([0, int(h * 0.78), w, h], fill=(120, 110, 95))
        depth = 4.0 - rx[t, :, 2]
        px = w / 2 + scale * rx[t, :, 0] * 4.0 / depth
        py = h * 0.45 - scale * rx[t, :, 1] * 4.0 / depth
        pts = list(zip(px, py))
        order = sorted(range(len(BONES)), key=lambda b: -(depth[BONES[b][0]] + depth[BONES[b][1]]))
        torso = [pts[4], pts[7], pts[13], pts[10]]
        d.polygon(torso, fill=(40, 70, 140))
        for b in order:
            i, j = BONES[b]
            legs = i >= 10 or j >= 10 or (i == 0 and j in (10, 13))
            width = int(scale * (0.11 if legs else 0.08))
            skin = (i, j) in ((2, 3), (5, 6), (8, 9))  # neck and forearms; trunk and upper arms dressed
            color = (50, 50, 60) if legs else (224, 172, 140) if skin else (40, 70, 140)
            d.line([pts[i], pts[j]], fill=color, width=width, joint="curve")
            for k in (i, j):
                r = width / 2
                d.ellipse([pts[k][0] - r, pts[k][1] - r, pts[k][0] + r, pts[k][1] + r], fill=color)
        hx, hy = pts[3]
        hr = scale * 0.075
        d.ellipse([hx - hr, hy - hr * 1.25, hx + hr, hy + hr * 1.05], fill=(224, 172, 140))
        d.ellipse([hx - hr, hy - hr * 1.3, hx + hr, hy - hr * 0.2], fill=(60, 40, 30))  # hair
        for ex in (-0.35, 0.35):
            d.ellipse([hx + ex * hr - 3, hy - 2, hx + ex * hr + 3, hy + 4], fill=(30, 30, 30))
        d.line([hx - hr * 0.3, hy + hr * 0.5, hx + hr * 0.3, hy + hr * 0.5], fill=(150, 60, 60), width=2)
        out[t] = np.asarray(img)
    write_video(path, out, fps)
    return path


def bench_pose(frames: int) -> dict:
    from affectkit.data import pose

    if not pose.mediapipe_available():
        return {"available": False, "reason": "mediapipe is not importable in this environment (pip install affectkit[pose])"}
    import mediapipe

    with tempfile.TemporaryDirectory() as tmp:
        video = render_walk(os.path.join(tmp, "walk_640x480.mp4"), frames=frames)
        est = pose.make_estimator(video)
        rgb = np.zeros((480, 640, 3), np.uint8)
        est(rgb)  # model load + first call
        t0 = time.perf_counter()
        try:
            g, info = pose.video_to_gait(video, estimator=est)
            error = None
        except Exception as err:  # noqa: BLE001 - record why (e.g. no person found in the figure)
            g, info, error = None, None, str(err)
        dt = time.perf_counter() - t0
        est.close()
    res = {"available": True, "mediapipe": mediapipe.__version__, "model_complexity": pose.MODEL_COMPLEXITY,
           "video": "rendered walking figure, 640x480, H.264, 30 fps", "frames": frames, "seconds": round(dt, 3),
           "frames_per_second": round(frames / dt, 2)}
    if info is not None:
        res.update({"pose_frames": info["pose_frames"], "gait_frames": int(g.shape[0])})
    else:
        res["error"] = error
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5, help="timed training steps")
    ap.add_argument("--infer-steps", type=int, default=5, help="timed inference batches")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--pose-frames", type=int, default=90, help="frames of the 640x480 video")
    ap.add_argument("--skip-models", action="store_true", help="only the pose front end")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    report = {"benchmark": "bench_gait", "cpu": cpu_model(), "threads": torch.get_num_threads(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch": torch.__version__,
              "numpy": np.__version__, "load_average_at_start": list(os.getloadavg())}
    if not args.skip_models:
        report["models"] = [bench_model(n, kw, batch=args.batch, steps=args.steps, warmup=args.warmup,
                                        infer_steps=args.infer_steps)
                            for n, kw in (("bpm_gcn", {}), ("bpm_gcn", {"pm_fusion": True}), ("agcn", {}))]
    report["pose"] = bench_pose(args.pose_frames)
    report["load_average_at_end"] = list(os.getloadavg())
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return report


if __name__ == "__main__":
    main()
