#!/usr/bin/env python
"""VAANet CPU benchmarks: decode throughput, forward latency (eager fp32 vs the fast path), training
samples per second (end to end and with cached trunk features) and peak memory. Prints one JSON object.

    python benchmarks/bench_vaanet.py                  # full size (takes about 10-15 minutes)
    python benchmarks/bench_vaanet.py --quick          # smoke run with small sizes (about a minute)
    python benchmarks/bench_vaanet.py --out bench.json --phases forward,train

Every phase runs in its own subprocess, so ``peak_rss_mb`` (``ru_maxrss``) is per phase. Before
each phase the script waits (up to ``--max-wait`` seconds) until the CPUs are idle, and each timed
section records ``background_cpu``: the share of the machine's CPU time used by *other* processes
while it ran (0 = nothing else ran; figures with a large value are not trustworthy). See README.md.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = ("decode", "forward", "train", "memory")
OPTIONAL_PHASES = ("compile",)


# ----------------------------------------------------------------------------------------------
# measurement helpers
# ----------------------------------------------------------------------------------------------
def _proc_stat() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    tck = os.sysconf("SC_CLK_TCK")
    idle = v[3] + v[4]
    return (sum(v) - idle) / tck, sum(v) / tck


def _own_cpu() -> float:
    r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def machine_busy(interval: float = 2.0) -> float:
    """Fraction of all CPUs busy over ``interval`` seconds (this process sleeps meanwhile)."""
    b0, t0 = _proc_stat()
    time.sleep(interval)
    b1, t1 = _proc_stat()
    return (b1 - b0) / max(1e-9, t1 - t0)


def wait_quiet(threshold: float, max_wait: float) -> dict:
    """Wait until the machine is idle (busy < threshold over 3 s), at most ``max_wait`` seconds."""
    t0 = time.time()
    busy = machine_busy(3.0)
    while busy >= threshold and time.time() - t0 < max_wait:
        busy = machine_busy(3.0)
    return {"waited_s": round(time.time() - t0, 1), "busy_before": round(busy, 3)}


class Background:
    """Measures the CPU time other processes used while the block ran, as a share of all CPUs."""

    def __enter__(self):
        self.b0, _ = _proc_stat()
        self.s0, self.t0 = _own_cpu(), time.time()
        return self

    def __exit__(self, *exc):
        wall = time.time() - self.t0
        b1, _ = _proc_stat()
        other = (b1 - self.b0) - (_own_cpu() - self.s0)
        self.fraction = max(0.0, other / max(1e-9, wall * (os.cpu_count() or 1)))


def timeit(fn, runs: int, warmup: int = 1) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    with Background() as bg:
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
            "runs_s": [round(t, 4) for t in times], "background_cpu": round(bg.fraction, 3)}


def rss_mb() -> dict:
    """Current and peak (since the last reset_peak) resident set size from /proc/self/status."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS", "VmHWM")):
                k, v = line.split(":")
                out[{"VmRSS": "rss_mb", "VmHWM": "peak_mb"}[k]] = round(int(v.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


def reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def emit_report(report: dict, out: str | None) -> None:
    """Print ``report`` as indented JSON and, with ``out``, write it there too (folders created)."""
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")


def maxrss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def machine_info() -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        flags = set()
        for line in text.splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
        info["cpu_flags"] = sorted(f for f in flags if f.startswith(("avx512", "amx", "avx_vnni")) or f in ("avx2", "fma"))
        mhz = [float(line.split(":")[1]) for line in text.splitlines() if line.startswith("cpu MHz")]
        if mhz:
            info["cpu_mhz"] = mhz[0]
    except OSError:
        pass
    info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    info["glibc"] = "-".join(platform.libc_ver())
    return info


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------
def sizes(quick: bool) -> dict:
    if quick:
        return dict(model=dict(depth=18, width=16, audio_width=16, audio_segments=4, seq_len=4, snippet_duration=8,
                               sample_size=56, audio_frames=512, num_classes=8),
                    overrides=["input.seq_len=4", "input.snippet_duration=8", "input.sample_size=56",
                               "input.audio.n_fft=1024", "input.audio.hop_length=256", "input.audio.num_frames=512"],
                    video=dict(width=160, height=120, fps=30.0, seconds=6.0, count=2),
                    synth=dict(num_classes=4, test_per_class=1),
                    runs=dict(decode=2, fwd=3, fwd_slow=2, train=2, train_cached=5, agree_bf16=2),
                    train_batch=2)
    return dict(model=dict(), overrides=[],
                video=dict(width=320, height=240, fps=30.0, seconds=60.0, count=3),
                synth=dict(num_classes=8, test_per_class=3),
                runs=dict(decode=3, fwd=12, fwd_slow=4, train=3, train_cached=20, agree_bf16=6),
                train_batch=4)


def input_config(quick: bool):
    from affectkit.config import load_config

    return load_config("vaanet/vaanet_ve8.yaml", overrides=sizes(quick)["overrides"]).input


def build_model(quick: bool, **extra):
    import torch

    import affectkit

    torch.manual_seed(0)
    return affectkit.create_model("vaanet", **{**sizes(quick)["model"], **extra})


def make_videos(folder: Path, quick: bool) -> list[Path]:
    """A few H.264 + AAC mp4 files with moving texture and noise (decoding work like real footage)."""
    import numpy as np

    from affectkit.data.media_writer import write_video

    spec = sizes(quick)["video"]
    w, h, fps, seconds = spec["width"], spec["height"], spec["fps"], spec["seconds"]
    n = int(round(fps * seconds))
    paths = []
    for k in range(spec["count"]):
        rng = np.random.default_rng(k)
        tex = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
        tex = np.kron(tex, np.ones((8, 8, 1), np.float32))  # blocky texture, (h+16, w+16, 3)
        frames = np.empty((n, h, w, 3), np.uint8)
        yy, xx = np.mgrid[0:h, 0:w]
        for i in range(n):
            dy, dx = int(8 + 7 * np.sin(i / 40)), int(8 + 7 * np.cos(i / 55))
            f = tex[dy:dy + h, dx:dx + w] * 0.8
            cy, cx = h / 2 + h / 3 * np.sin(i / 20), w / 2 + w / 3 * np.cos(i / 25)
            f += 60.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (h / 8) ** 2))[..., None]
            f += rng.normal(0, 4, (h, w, 1))
            frames[i] = np.clip(f, 0, 255)
        sr = 44100
        t = np.arange(int(seconds * sr)) / sr
        audio = 0.3 * np.sin(2 * np.pi * (220 + 40 * np.sin(t / 3)) * t) + 0.05 * rng.normal(size=t.shape)
        p = folder / f"bench_{k}.mp4"
        write_video(p, frames, fps, audio.astype(np.float32), sr)
        paths.append(p)
    return paths


def synthetic_samples(folder: Path, quick: bool) -> tuple:
    """The synthetic test set (affectkit.data.synth) decoded at the benchmark's input config."""
    import torch

    from affectkit.data import synth
    from affectkit.data.clips import ClipLoader

    s = sizes(quick)["synth"]
    cfg = synth.SynthConfig(num_classes=s["num_classes"], train_per_class=0, val_per_class=0,
                            test_per_class=s["test_per_class"], duration=(6.0, 8.0), fps=25.0, size=(160, 120),
                            sample_rate=22050, seed=3, subtitles=False)
    ann = synth.generate(folder / "synth", cfg)
    loader = ClipLoader(input_config(quick), train=False)
    videos, audios = [], []
    for p in sorted((Path(ann).parent / "videos").glob("*/*.mp4")):
        sample = loader.load(str(p))
        videos.append(sample["video"])
        audios.append(sample["audio"])
    return torch.stack(videos), torch.stack(audios)


# ----------------------------------------------------------------------------------------------
# phases (each runs in a child process)
# ----------------------------------------------------------------------------------------------
def phase_decode(args, tmp: Path) -> dict:
    import numpy as np

    from affectkit.data.audio import audio_features
    from affectkit.data.clips import ClipLoader, audio_spec
    from affectkit.data.sampling import snippet_indices
    from affectkit.data.video import open_video

    t0 = time.perf_counter()
    paths = make_videos(tmp, args.quick)
    gen_s = time.perf_counter() - t0
    cfg = input_config(args.quick)
    runs = sizes(args.quick)["runs"]["decode"]
    s = cfg.seq_len
    out = {"files": len(paths), "video": sizes(args.quick)["video"], "generate_s": round(gen_s, 1),
           "snippet": f"{cfg.snippet_duration}x{cfg.sample_size}x{cfg.sample_size}", "snippets_per_video": s}

    def per_video(fn):
        def run():
            for p in paths:
                fn(str(p))
        r = timeit(run, runs)
        r["seconds_per_video"] = round(r["median_s"] / len(paths), 4)
        r["snippets_per_s"] = round(s * len(paths) / r["median_s"], 2)
        return r

    eval_loader = ClipLoader(cfg, train=False)
    out["clip_loader_eval"] = per_video(lambda p: eval_loader.load(p))
    video_only = ClipLoader(cfg, train=False, with_audio=False)
    out["clip_loader_eval_video_only"] = per_video(lambda p: video_only.load(p))
    train_loader = ClipLoader(cfg, train=True, with_audio=False)
    rng = np.random.default_rng(0)
    out["clip_loader_train_video_only"] = per_video(lambda p: train_loader.load(p, rng=rng))

    def raw(p):
        with open_video(p) as reader:
            info = reader.info
            idx = snippet_indices(info.num_frames, cfg.seq_len, cfg.snippet_duration, frame_step=cfg.frame_step)
            size = cfg.sample_size if min(info.width, info.height) > cfg.sample_size else None
            reader.read_frames(idx.reshape(-1).tolist(), size=size)
    out["read_frames_resized"] = per_video(raw)

    def raw_full(p):
        with open_video(p) as reader:
            idx = snippet_indices(reader.info.num_frames, cfg.seq_len, cfg.snippet_duration, frame_step=cfg.frame_step)
            reader.read_frames(idx.reshape(-1).tolist())
    out["read_frames_full_size"] = per_video(raw_full)
    spec = audio_spec(cfg)
    r = timeit(lambda: [audio_features(str(p), spec) for p in paths], runs)
    out["audio_features"] = {**r, "seconds_per_video": round(r["median_s"] / len(paths), 4)}
    return out


def _agreement(ref_logits, logits) -> dict:
    import torch

    ref_logits, logits = torch.cat(ref_logits).float(), torch.cat(logits).float()
    pr, po = ref_logits.softmax(-1), logits.softmax(-1)
    return {"samples": int(pr.shape[0]),
            "top1_agreement": round(float((pr.argmax(-1) == po.argmax(-1)).float().mean()), 4),
            "max_abs_prob_diff": round(float((pr - po).abs().max()), 5),
            "mean_abs_prob_diff": round(float((pr - po).abs().mean()), 6),
            "max_abs_logit_diff": round(float((ref_logits - logits).abs().max()), 5),
            "reference_logit_std": round(float(ref_logits.std(0).mean()), 3),
            "reference_mean_top_prob": round(float(pr.max(-1).values.mean()), 4)}


def clock_reference(seconds: float = 1.0) -> dict:
    """fp32 GEMM throughput right now (1 and all threads): the VM's speed drifts with its host, so
    each phase records it next to its timings."""
    import torch

    out = {}
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    threads = torch.get_num_threads()
    for name, n in (("gemm_fp32_gflops_1thread", 1), ("gemm_fp32_gflops", threads)):
        torch.set_num_threads(n)
        a @ b
        best, t_end = 1e9, time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
        out[name] = round(2 * 512 ** 3 / best / 1e9, 1)
    torch.set_num_threads(threads)
    return out


def phase_forward(args, tmp: Path) -> dict:
    import torch

    from affectkit.deploy.fast import prepare_fast

    q = args.quick
    runs = sizes(q)["runs"]
    model = build_model(q).eval()
    s, t, size = model.seq_len, model.snippet_duration, model.sample_size
    g = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (1, s, 3, t, size, size), generator=g).float()
    audio = torch.randn(1, model.audio_frames, model.audio_bins, generator=g) * 30
    trunk_flops = _trunk_flops(model, (s, 3, t, size, size))
    out: dict = {"input": {"video": list(video.shape), "audio": list(audio.shape)},
                 "trunk_gflops_per_video": round(trunk_flops / 1e9, 1), "clock_start": clock_reference()}

    with torch.inference_mode():
        # 1. the plain eager fp32 model, default allocator (nothing tuned yet)
        out["eager_fp32"] = timeit(lambda: model(video=video, audio=audio), runs["fwd_slow"] + 1)
        out["eager_fp32_trunk"] = timeit(lambda: model.trunk_features(video), runs["fwd_slow"])
        # 2. the predictor's old fast path: channels_last_3d + bf16 autocast
        cl = _channels_last_copy(model)

        def cl_bf16():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return cl(video=video, audio=audio)
        out["channels_last_bf16_autocast"] = timeit(cl_bf16, runs["fwd_slow"])
        cl = None  # free it before the fast path is timed
        # 3. the fast path (prepare_fast also tunes the allocator, process-wide)
        t0 = time.perf_counter()
        fast = prepare_fast(model)
        out["prepare_fast_s"] = round(time.perf_counter() - t0, 2)
        out["fast_precision"] = fast.precision
        out["fast_int8_audio"] = bool(getattr(fast, "int8_audio", False))
        fast(video=video, audio=audio)
        # fast and eager (now with the tuned allocator) interleaved, so host speed drift hits both alike
        fast_t, eager_t = [], []
        with Background() as bg:
            for i in range(runs["fwd"]):
                t1 = time.perf_counter()
                fast(video=video, audio=audio)
                fast_t.append(time.perf_counter() - t1)
                if i < runs["fwd_slow"]:
                    t1 = time.perf_counter()
                    model(video=video, audio=audio)
                    eager_t.append(time.perf_counter() - t1)
        out["fast"] = _summary(fast_t, bg.fraction)
        out["eager_fp32_tuned_allocator"] = _summary(eager_t, bg.fraction)
        out["fast_trunk"] = timeit(lambda: fast.trunk_features(video), runs["fwd"] // 2)
        feats = fast.trunk_features(video)
        out["fast_heads_and_audio"] = timeit(lambda: fast(video_features=feats, audio=audio), runs["fwd"] // 2)
        fast32 = prepare_fast(model, precision="fp32")
        out["fast_fp32"] = timeit(lambda: fast32(video=video, audio=audio), runs["fwd_slow"])
        fast32 = None
    out["clock_end"] = clock_reference()
    out["speedup_fast_vs_eager_fp32"] = round(out["eager_fp32"]["median_s"] / out["fast"]["median_s"], 2)
    out["speedup_fast_vs_eager_fp32_tuned_allocator"] = round(
        out["eager_fp32_tuned_allocator"]["median_s"] / out["fast"]["median_s"], 2)
    out["fast_trunk_gops_per_s"] = round(trunk_flops / 1e9 / out["fast_trunk"]["median_s"], 1)
    out["eager_trunk_gflops_per_s"] = round(trunk_flops / 1e9 / out["eager_fp32_trunk"]["median_s"], 1)
    fast = None

    if not args.no_agreement:
        out["agreement"] = _forward_agreement(args, tmp, model)
    return out


def _summary(times: list, background: float) -> dict:
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
            "runs_s": [round(t, 4) for t in times], "background_cpu": round(background, 3)}


def _channels_last_copy(model):
    """A copy with channels_last_3d Conv3d weights (what the predictor's fast path used to be)."""
    import copy

    import torch

    cl = copy.deepcopy(model)
    for m in cl.modules():
        if isinstance(m, torch.nn.Conv3d):
            m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last_3d)
    return cl


def _trunk_flops(model, clip_shape) -> float:
    """Multiply-adds x 2 of the trunk's convolutions for one video (S clips)."""
    import torch

    total = 0

    def hook(mod, inp, outp):
        nonlocal total
        k = mod.weight[0].numel()  # C_in/groups * kT * kH * kW
        total += 2 * k * outp.numel()
    hooks = [m.register_forward_hook(hook) for m in model.trunk.modules() if isinstance(m, torch.nn.Conv3d)]
    with torch.inference_mode():
        model.trunk.forward_features(torch.zeros(1, *clip_shape[1:]))
    for h in hooks:
        h.remove()
    return total * clip_shape[0]


def _forward_agreement(args, tmp: Path, model) -> dict:
    """fp32 eager vs the fast path on the synthetic test set. An untrained model's logits hardly
    depend on the input, so the classifier is replaced by a random one on the *centred* fused
    features, scaled to a logit std of 2: probabilities far from uniform, top-1 varying by video."""
    import torch

    from affectkit.deploy.fast import prepare_fast

    videos, audios = synthetic_samples(tmp, args.quick)
    n = videos.shape[0]
    fused = []
    hook = model.classifier.register_forward_hook(lambda mod, inp, outp: fused.append(inp[0].detach().clone()))
    with torch.inference_mode():
        feats = [model.trunk_features(videos[i:i + 1]) for i in range(n)]
        for i, f in enumerate(feats):
            model(video_features=f, audio=audios[i:i + 1])
    hook.remove()
    z = torch.cat(fused)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(model.classifier.out_features, z.shape[1], generator=g)
    mu = z.mean(0)
    w = w * (2.0 / float(((z - mu) @ w.T).std()))
    with torch.no_grad():
        model.classifier.weight.copy_(w)
        model.classifier.bias.copy_(-(w @ mu))
    with torch.inference_mode():
        ref = [model(video_features=f, audio=audios[i:i + 1]).logits for i, f in enumerate(feats)]
        fast = prepare_fast(model)
        got, ferr = [], []
        for i in range(n):
            got.append(fast(video=videos[i:i + 1], audio=audios[i:i + 1]).logits)
            ff = fast.trunk_features(videos[i:i + 1])
            ferr.append(float((ff - feats[i]).norm() / feats[i].norm()))
        res = {"model": "vaanet default init (seed 0); classifier: random weights on the centred fused features, "
                        "logit std 2 over the set",
               "inputs": f"synthetic test set: {n} videos (affectkit.data.synth, seed 3) through ClipLoader(eval)",
               "reference_top1_classes": torch.cat(ref).argmax(-1).tolist(),
               "fast_vs_fp32": _agreement(ref, got),
               "fast_trunk_feature_rel_err_max": round(max(ferr), 5)}
        # for scale: the same comparison for bf16 autocast (channels_last_3d) on a few samples
        cl = _channels_last_copy(model)
        k = min(n, sizes(args.quick)["runs"]["agree_bf16"])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf = [cl(video=videos[i:i + 1], audio=audios[i:i + 1]).logits.float() for i in range(k)]
        res["bf16_autocast_vs_fp32"] = _agreement(ref[:k], bf)
    return res


def phase_train(args, tmp: Path) -> dict:
    import torch

    q = args.quick
    runs = sizes(q)["runs"]
    b = sizes(q)["train_batch"]
    out: dict = {"batch": b}
    model = build_model(q)  # frozen trunk; trunk_bn="train" as the original
    model.train()
    s, t, size = model.seq_len, model.snippet_duration, model.sample_size
    g = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (b, s, 3, t, size, size), generator=g).float()
    audio = torch.randn(b, model.audio_frames, model.audio_bins, generator=g) * 30
    labels = torch.randint(0, model.num_classes, (b,), generator=g)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=2e-4)
    out["trainable_params"] = sum(p.numel() for p in params)
    out["frozen_params"] = sum(p.numel() for p in model.parameters() if not p.requires_grad)

    def step(**inputs):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(audio=audio, **inputs).logits, labels)
        loss.backward()
        opt.step()

    reset_peak()
    r = timeit(lambda: step(video=video), runs["train"])
    out["end_to_end"] = {**r, "samples_per_s": round(b / r["median_s"], 3), **rss_mb()}
    # the cache: trunk features of each sample, computed once (trunk BN in eval mode, see README)
    model.trunk.eval()
    with torch.no_grad():
        c = timeit(lambda: model.trunk_features(video), 1)
        feats = model.trunk_features(video)
    model.train()
    out["cache_build"] = {**c, "seconds_per_sample": round(c["median_s"] / b, 3),
                          "bytes_per_sample": int(feats[0].numel() * feats.element_size())}
    reset_peak()
    r = timeit(lambda: step(video_features=feats), runs["train_cached"])
    out["cached_features"] = {**r, "samples_per_s": round(b / r["median_s"], 3), **rss_mb()}
    out["speedup_cached"] = round(out["cached_features"]["samples_per_s"] / out["end_to_end"]["samples_per_s"], 1)
    return out


def phase_compile(args, tmp: Path) -> dict:
    """torch.compile (inductor, freezing) of the BN-folded fp32 channels-last trunk, for comparison."""
    import torch
    import torch._inductor.config as inductor_config

    from affectkit.deploy.fast import _FoldedResNet3d

    model = build_model(args.quick).eval()
    s, t, size = model.seq_len, model.snippet_duration, model.sample_size
    x = (torch.rand(s, 3, t, size, size) - 0.4).contiguous(memory_format=torch.channels_last_3d)
    trunk = _FoldedResNet3d(model.trunk, torch.float32)
    out = {}
    with torch.no_grad():
        out["eager_folded_fp32_trunk"] = timeit(lambda: trunk(x), sizes(args.quick)["runs"]["fwd_slow"])
        inductor_config.freezing = True
        compiled = torch.compile(trunk)
        t0 = time.perf_counter()
        try:
            compiled(x)
        except Exception as err:  # offline/toolchain problems: report, do not fail the run
            return {**out, "error": f"{type(err).__name__}: {err}"}
        out["first_call_s"] = round(time.perf_counter() - t0, 1)
        out["compiled_folded_fp32_trunk"] = timeit(lambda: compiled(x), sizes(args.quick)["runs"]["fwd_slow"])
    return out


def phase_memory(args, tmp: Path) -> dict:
    """Peak RSS of one forward pass, eager fp32 and fast, each in a fresh process."""
    results = {}
    for kind in ("eager_fp32", "fast"):
        cmd = [sys.executable, __file__, "--child", "memory_one", "--tmp", str(tmp), "--kind", kind]
        if args.quick:
            cmd.append("--quick")
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            results[kind] = {"error": p.stderr.strip().splitlines()[-1:] if p.stderr else "failed"}
        else:
            results[kind] = json.loads(p.stdout)
    return results


def phase_memory_one(args, tmp: Path) -> dict:
    import gc

    import torch

    from affectkit.deploy.fast import prepare_fast

    model = build_model(args.quick).eval()
    s, t, size = model.seq_len, model.snippet_duration, model.sample_size
    video = torch.randint(0, 256, (1, s, 3, t, size, size)).float()
    audio = torch.randn(1, model.audio_frames, model.audio_bins)
    out = {"after_build": rss_mb()}
    if args.kind == "fast":
        model = prepare_fast(model)
        gc.collect()
        out["after_prepare"] = rss_mb()
    reset_peak()
    with torch.inference_mode():
        model(video=video, audio=audio)
    out["forward"] = rss_mb()
    out["peak_rss_mb"] = maxrss_mb()
    return out


CHILD = {"decode": phase_decode, "forward": phase_forward, "train": phase_train, "memory": phase_memory,
         "compile": phase_compile, "memory_one": phase_memory_one}


# ----------------------------------------------------------------------------------------------
def run_phase(phase: str, cmd: list[str], quiet: dict) -> dict:
    """Run one benchmark phase in its own process (``cmd``); its last stdout line is its JSON result.
    Returns that result with the wall time and the load, or the last lines of stderr under ``error``."""
    t0 = time.time()
    print(f"[bench] {phase} ...", file=sys.stderr, flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    entry: dict = {"wall_s": round(time.time() - t0, 1), "loadavg_after": list(os.getloadavg()), **quiet}
    if p.returncode != 0:
        entry["error"] = (p.stderr or "").strip().splitlines()[-5:]
    else:
        entry.update(json.loads(p.stdout.strip().splitlines()[-1]))
    return entry


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run with small sizes")
    ap.add_argument("--out", help="also write the JSON to this file")
    ap.add_argument("--phases", default=",".join(PHASES),
                    help=f"comma-separated, from {PHASES + OPTIONAL_PHASES} (default: %(default)s)")
    ap.add_argument("--max-wait", type=float, default=900.0,
                    help="seconds to wait for an idle machine before each phase (default: %(default)s)")
    ap.add_argument("--quiet-threshold", type=float, default=0.1,
                    help="machine CPU share counted as idle (default: %(default)s)")
    ap.add_argument("--no-agreement", action="store_true", help="skip the fp32/fast agreement on the synthetic set")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    ap.add_argument("--kind", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        result = CHILD[args.child](args, Path(args.tmp))
        if args.child != "memory_one":
            result["peak_rss_mb"] = maxrss_mb()
        print(json.dumps(result))
        return 0

    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = [p for p in phases if p not in PHASES + OPTIONAL_PHASES]
    if unknown:
        ap.error(f"unknown phases {unknown}")
    report: dict = {"benchmark": "vaanet", "quick": args.quick, "command": " ".join([Path(sys.executable).name] + sys.argv),
                    "machine": machine_info(), "loadavg_start": list(os.getloadavg()), "phases": {}}
    with tempfile.TemporaryDirectory(prefix="affectkit-bench-") as tmp:
        for phase in phases:
            quiet = wait_quiet(args.quiet_threshold, args.max_wait)
            cmd = [sys.executable, __file__, "--child", phase, "--tmp", tmp]
            if args.quick:
                cmd.append("--quick")
            if args.no_agreement:
                cmd.append("--no-agreement")
            report["phases"][phase] = run_phase(phase, cmd, quiet)
    report["loadavg_end"] = list(os.getloadavg())
    emit_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
