"""TSL-Net costs: feature extraction speed (I3D-RGB at full size, log-mel) and full-size TSL-Net forward and
training-step time for one 450-step video.

    python benchmarks/bench_tsl.py --original-repo DIR --out benchmarks/results/bench_tsl.json

What is timed (median and minimum of ``--repeats`` after one warm-up, this process's torch threads):

- ``i3d_rgb``: a ``--seconds`` long 30 fps 480x360 H.264 video written here, decoded, resized (short side 224),
  centre-cropped and run through the full-size Inception-3D (12.3 M parameters; randomly initialised weights,
  which cost the same as Kinetics ones) 16 frames a feature, ``batch_steps`` 4 chunks at a time: the kit's
  extractor (:class:`affectkit.data.tsl_features.TSLFeatureExtractor`). Reported as seconds of video per second
  of compute, and seconds per 16-frame step;
- ``logmel``: the same video's audio decoded at sr = 2 x 1024 x 30 = 61440 Hz and turned into 60-band log-mel
  (n_fft 2048, hop 1024) by the streamed path (:func:`affectkit.data.audio.stream_log_mel`): seconds of audio
  per second;
- ``tsl_net``: the full-size model (91.34 M parameters) on random inputs of T = ``--steps`` (450: about 4 min of
  30 fps video): ``forward_eval`` (no reverse mapping, no grad), ``forward_train`` (with the reverse mapping /
  CPC) and ``train_step`` (forward, the full TSL loss with pseudo labels, backward, one Adam step with the
  original's settings: lr 1e-5, audio CNN 1e-4, weight decay 5e-4), as the kit trains by default (fp32, fused
  Adam); ``train_step_unfused_adam`` (PyTorch's per-tensor Adam loop, as the original); where the CPU computes
  bf16 natively, ``forward_eval_bf16`` / ``train_step_bf16`` (bf16 autocast, ``train.bf16: true``).
  With ``--original-repo DIR`` (a checkout of github nku-zhichengzhang/TSL300), the original model and loss
  are imported from there and timed on the same inputs, interleaved with ours, and ``speedup_vs_original``
  gives median(original) / median(ours) per variant.

Prints one JSON document (also written to ``--out``), with the CPU model from /proc/cpuinfo.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from affectkit.deploy.accel import cpu_model


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_extraction(seconds: float, repeats: int, device: str) -> dict:
    from affectkit.data.audio import iter_audio, stream_log_mel
    from affectkit.data.media_writer import write_video
    from affectkit.data.tsl_features import ExtractorSpec, TSLFeatureExtractor, file_sha256, write_random_i3d

    fps, sr_src = 30.0, 44100
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = int(seconds * fps)
        rng = np.random.default_rng(0)
        t = np.arange(n)[:, None, None, None]
        base = rng.integers(0, 256, size=(1, 360, 480, 3)).astype(np.int32)
        frames = ((base + 3 * t) % 256).astype(np.uint8)  # moving texture
        wave = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * sr_src)) / sr_src)).astype(np.float32)
        video = tmp / "bench.mp4"
        write_video(video, frames, fps, wave, sr_src)
        del frames
        w = write_random_i3d(tmp / "i3d.pt", width=1.0, seed=0)
        spec = ExtractorSpec(i3d_weights=str(w), i3d_sha256=file_sha256(w), random_init=True)
        ex = TSLFeatureExtractor(spec, device=device)
        steps = int(np.ceil(n / 16))
        rgb_t = timed(lambda: ex.rgb(video), repeats)
        sr = spec.sample_rate(fps)
        mel_t = timed(lambda: stream_log_mel(iter_audio(video, sr), sr, n_mels=60, n_fft=2048, hop_length=1024), repeats)
        rows = len(stream_log_mel(iter_audio(video, sr), sr, n_mels=60, n_fft=2048, hop_length=1024))
    rgb_s, mel_s = statistics.median(rgb_t), statistics.median(mel_t)
    return {
        "video": {"seconds": seconds, "fps": fps, "size": [480, 360], "frames": n},
        "i3d_rgb": {"width": 1.0, "feature_dim": 1024, "steps": steps, "batch_steps": spec.batch_steps,
                    "seconds": rgb_t, "video_seconds_per_second": round(seconds / rgb_s, 3),
                    "seconds_per_step": round(rgb_s / steps, 4), "max_frames_in_memory": ex.max_frames_per_read},
        "logmel": {"sample_rate": sr, "rows": rows, "rows_per_step": 32, "seconds": mel_t,
                   "audio_seconds_per_second": round(seconds / mel_s, 2)},
    }


def _original_model(repo: str):
    """The original TSL-Net (``model_tsl.Model`` and ``train.Total_loss`` of github nku-zhichengzhang/TSL300)
    imported from a checkout the user gives, for timing only: nothing of it is copied into the kit. Its unused
    ``import torchvision`` is stubbed and its ``.cuda()`` calls made no-ops so that it runs on the CPU."""
    import types

    missing = [f for f in ("model_tsl.py", "train.py", "utils.py") if not (Path(repo) / f).is_file()]
    if missing:
        raise SystemExit(f"--original-repo {repo}: not a checkout of nku-zhichengzhang/TSL300 "
                         f"(missing {', '.join(missing)})")
    sys.modules.setdefault("torchvision", types.ModuleType("torchvision"))
    torch.Tensor.cuda = lambda self, *a, **k: self  # the original's loss moves tensors with .cuda()
    sys.path.insert(0, str(Path(repo).resolve()))
    import model_tsl  # noqa: E402  (the original's files)
    import train as original_train  # noqa: E402

    return model_tsl.Model(1024, 2, 8), original_train.Total_loss([2, 1, 0.5, 1])


def _adam(model, audio_prefix: str, fused: bool):
    """The original's optimiser: Adam, lr 1e-5, the audio CNN at 10x, weight decay 5e-4."""
    audio = [p for n, p in model.named_parameters() if n.startswith(audio_prefix)]
    rest = [p for n, p in model.named_parameters() if not n.startswith(audio_prefix)]
    return torch.optim.Adam([{"params": rest, "lr": 1e-5}, {"params": audio, "lr": 1e-4}], weight_decay=5e-4,
                            fused=fused or None)


def bench_tsl(steps: int, repeats: int, device: str, original_repo: str | None = None) -> dict:
    """Forward and training-step times of ours (fp32 with fused Adam: the kit's default; bf16 autocast where
    the CPU computes bf16 natively, ``train.bf16: true``; fp32 with the per-tensor Adam loop) and, with
    ``original_repo``, of the original code on the same inputs, all interleaved round by round in this process
    so that the ratios share the machine's state. The original's training step is its ``train_all`` for one
    video: forward with the video labels, ``Total_loss``, backward, Adam step."""
    from affectkit.deploy.accel import native_bf16
    from affectkit.models.tsl_net import TSLNet, tsl_loss

    torch.manual_seed(0)
    model = TSLNet().to(device)
    params = sum(p.numel() for p in model.parameters())
    x = {k: v.to(device) for k, v in model.example_inputs(1, steps).items()}
    y = torch.zeros(1, steps, 2, device=device)
    for t, c in ((steps // 5, 1), (steps // 2, 0), (4 * steps // 5, 1)):
        y[0, t] = 0.1
        y[0, t, c] = 0.9
    d = torch.tensor([[1 / 3, 2 / 3]], device=device)
    opt_fused, opt_loop = _adam(model, "audio_net.", True), _adam(model, "audio_net.", False)
    sync = (lambda: torch.cuda.synchronize()) if str(device).startswith("cuda") else (lambda: None)
    bf16 = torch.autocast(device.split(":")[0], dtype=torch.bfloat16)

    def fwd_eval(low=False):
        model.eval()
        with torch.no_grad(), (bf16 if low else contextlib.nullcontext()):
            model(**x)
        sync()

    def fwd_train():
        model.train()
        with torch.no_grad():
            model(**x)
        sync()

    def step(opt, low=False):
        model.train()
        opt.zero_grad(set_to_none=True)
        with bf16 if low else contextlib.nullcontext():
            out = model(**x)
        loss, _ = tsl_loss(out, y, d)
        loss.backward()
        opt.step()
        sync()

    fns = {"forward_eval": fwd_eval, "forward_train": fwd_train, "train_step": lambda: step(opt_fused),
           "train_step_unfused_adam": lambda: step(opt_loop)}
    if native_bf16() or str(device).startswith("cuda"):
        fns["forward_eval_bf16"] = lambda: fwd_eval(True)
        fns["train_step_bf16"] = lambda: step(opt_fused, True)
    if original_repo:
        orig, criterion = _original_model(original_repo)
        orig.to(device)
        o_opt = _adam(orig, "cls_module.a_extractor.", False)
        o_in = [x["features"], (x["logmel"] + 50) / 80]  # the original's loader normalises the log-mel
        label = torch.ones(1, 2, device=device)

        def o_fwd():
            orig.eval()
            with torch.no_grad():
                orig(o_in)
            sync()

        def o_step():
            orig.train()
            o_opt.zero_grad()
            vs, fuse, dis, feat, vdist, cpc = orig(o_in, label)
            cost, _ = criterion(vs, fuse, dis, vdist, feat, None, d, label, y, cpc, 1)
            cost.backward()
            o_opt.step()
            sync()

        fns["original_forward_eval"], fns["original_train_step"] = o_fwd, o_step
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    out = {"parameters": params, "steps": steps, "bf16_native": native_bf16(),
           "note": "training steps: forward, the full TSL loss with pseudo labels, backward, one Adam step (lr 1e-5, "
                   "audio CNN 1e-4, weight decay 5e-4); all timings interleaved round by round"}
    for k, ts in times.items():
        out[k] = {"median_seconds": round(statistics.median(ts), 4), "min_seconds": round(min(ts), 4),
                  "seconds": [round(s, 4) for s in ts]}
    if original_repo:
        ratio = lambda a, b: round(statistics.median(times[a]) / statistics.median(times[b]), 2)  # noqa: E731
        out["speedup_vs_original"] = {k: ratio("original_" + ("forward_eval" if k.startswith("forward") else "train_step"), k)
                                      for k in times if not k.startswith("original") and k != "forward_train"}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="length of the extraction test video")
    ap.add_argument("--steps", type=int, default=450)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-extraction", action="store_true")
    ap.add_argument("--original-repo", default=None, metavar="DIR",
                    help="a checkout of github nku-zhichengzhang/TSL300: time its model beside ours in the same run")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    res = {"command": "python benchmarks/bench_tsl.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "cpu": cpu_model(), "device": args.device,
           "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
           "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version()}
    if not args.skip_extraction:
        res["extraction"] = bench_extraction(args.seconds, args.repeats, args.device)
    res["tsl_net"] = bench_tsl(args.steps, args.repeats, args.device, args.original_repo)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return res


if __name__ == "__main__":
    main()
