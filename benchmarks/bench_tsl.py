"""TSL-Net costs: feature extraction speed (I3D-RGB at full size, log-mel) and full-size TSL-Net forward and
training-step time for one 450-step video.

    OMP_NUM_THREADS=1 python benchmarks/bench_tsl.py --out benchmarks/results/bench_tsl.json

What is timed (median of ``--repeats`` after one warm-up, this process's torch threads):

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
  original's settings: lr 1e-5, audio CNN 1e-4, weight decay 5e-4).

Prints one JSON document (also written to ``--out``), with the CPU model from /proc/cpuinfo.
"""
from __future__ import annotations

import argparse
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


def bench_tsl(steps: int, repeats: int, device: str) -> dict:
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
    audio = [p for n, p in model.named_parameters() if n.startswith("audio_net.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("audio_net.")]
    opt = torch.optim.Adam([{"params": rest, "lr": 1e-5}, {"params": audio, "lr": 1e-4}], weight_decay=5e-4)
    sync = (lambda: torch.cuda.synchronize()) if str(device).startswith("cuda") else (lambda: None)

    def fwd_eval():
        model.eval()
        with torch.no_grad():
            model(**x)
        sync()

    def fwd_train():
        model.train()
        with torch.no_grad():
            model(**x)
        sync()

    def step():
        model.train()
        opt.zero_grad(set_to_none=True)
        loss, _ = tsl_loss(model(**x), y, d)
        loss.backward()
        opt.step()
        sync()

    out = {"parameters": params, "steps": steps}
    for name, fn in (("forward_eval", fwd_eval), ("forward_train", fwd_train), ("train_step", step)):
        ts = timed(fn, repeats)
        out[name] = {"median_seconds": round(statistics.median(ts), 4), "seconds": [round(s, 4) for s in ts]}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="length of the extraction test video")
    ap.add_argument("--steps", type=int, default=450)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-extraction", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    res = {"command": "python benchmarks/bench_tsl.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "cpu": cpu_model(), "device": args.device,
           "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
           "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version()}
    if not args.skip_extraction:
        res["extraction"] = bench_extraction(args.seconds, args.repeats, args.device)
    res["tsl_net"] = bench_tsl(args.steps, args.repeats, args.device)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return res


if __name__ == "__main__":
    main()
