#!/usr/bin/env python
"""CTEN CPU benchmark: full-size forward latency per video on the plain path and the fast path
(``affectkit.deploy.accel.accelerate``), the same for full-size VAANet beside it, and one full-size
CTEN training step with its three views (the ``temporal_erasing`` task's ``train_step`` and the
backward, on a synthetic batch). Prints one JSON object.

    python benchmarks/bench_cten.py --out benchmarks/results/bench_cten.json   # full size (several minutes)
    python benchmarks/bench_cten.py --quick                                    # smoke run, small sizes
    python benchmarks/bench_cten.py --phases train --train-batch 2 --runs 3
    python benchmarks/bench_cten.py --phases original_forward --original-repo DIR   # DIR: nku-zhichengzhang/CTEN

Phases (each in its own subprocess, so the allocator tuning the fast path does and the peak RSS are
per phase): ``cten_forward`` and ``vaanet_forward`` (batch 1, the model's ``example_inputs``: CTEN 16
snippets of 16 x 112 x 112 + 1600 x 128 fbank, VAANet 12 snippets + 4096 x 32 MFCC; the plain eager
fp32 model first on the untouched allocator, then the fast path and the plain model interleaved, so
the ratio is measured under the same load), ``cten_train`` (full-size CTEN as the shipped
``cten_ve8`` config trains it: frozen ResNet-101 trunk with train-mode BatchNorm, features gathered
for the erased views, audio not erased; ``train_step`` + backward + Adam step per batch of
``--train-batch`` videos, interleaved with the same step when each view runs its own audio stream,
the way the step was computed before the audio was shared), and with ``--original-repo DIR``
``original_forward``: the original code's ``VAANetErase`` forward (imported from the checkout at run time)
beside ours with the same weights (converted by the kit's converter of original CTEN checkpoints) on the plain
and the fast path, the same inputs, interleaved, with the largest logit and attention differences. Timings record ``background_cpu``: the
share of the machine's CPU time other processes used meanwhile (see ``bench_vaanet.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_vaanet import (Background, _summary, clock_reference, emit_report, machine_info,  # noqa: E402
                          maxrss_mb, run_phase, wait_quiet)

PHASES = ("cten_forward", "vaanet_forward", "cten_train", "original_forward")

QUICK = {"cten": dict(depth=18, width=16, audio_width=16, nonlocal_dim=32, seq_len=4, snippet_duration=8,
                      sample_size=56, audio_frames=400, audio_bins=64),
         "vaanet": dict(depth=18, width=16, audio_width=16, seq_len=4, snippet_duration=8, sample_size=56,
                        audio_frames=512)}


def _model(name: str, quick: bool, **extra):
    import torch

    from affectkit.registry import create_model

    torch.manual_seed(0)
    return create_model(name, **{**(QUICK[name] if quick else {}), **extra})


def _params(model) -> dict:
    return {"parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "trainable_m": round(sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6, 2)}


# ----------------------------------------------------------------------------------------------
# forward latency: plain eager fp32 vs the fast path, batch 1
# ----------------------------------------------------------------------------------------------
def phase_forward(name: str, args, model=None) -> dict:
    """Plain vs fast forward of ``model`` (default: the registered ``name`` at full size, or QUICK)."""
    import torch

    from affectkit.deploy.accel import accelerate

    model = (model if model is not None else _model(name, args.quick)).eval()
    inputs = model.example_inputs(1)
    out: dict = {"model": name, **_params(model), "inputs": {k: list(v.shape) for k, v in inputs.items()},
                 "clock_start": clock_reference()}

    def plain():
        with torch.inference_mode():
            model(**inputs)

    plain()  # warm-up (first-call allocations, oneDNN primitive creation)
    times = []
    with Background() as bg:
        for _ in range(args.runs):
            t = time.perf_counter()
            plain()
            times.append(time.perf_counter() - t)
    out["plain_fp32"] = _summary(times, bg.fraction)
    t0 = time.perf_counter()
    fast = accelerate(model)  # tunes the allocator process-wide, builds, checks against fp32
    out["fast_prepare_s"] = round(time.perf_counter() - t0, 2)
    info = fast.fast_info
    out["fast_backend"] = {k: info.get(k) for k in ("backend", "reason", "tolerance", "agreement", "first_call_seconds")}
    fast(**inputs)
    fast_t, plain_t = [], []
    with Background() as bg:  # interleaved: the same background load for both
        for _ in range(args.runs):
            t = time.perf_counter()
            fast(**inputs)
            fast_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            plain()
            plain_t.append(time.perf_counter() - t)
    out["fast"] = _summary(fast_t, bg.fraction)
    out["plain_fp32_tuned_allocator"] = _summary(plain_t, bg.fraction)
    out["speedup_fast_vs_plain"] = round(out["plain_fp32"]["median_s"] / out["fast"]["median_s"], 2)
    out["speedup_fast_vs_plain_interleaved"] = round(
        out["plain_fp32_tuned_allocator"]["median_s"] / out["fast"]["median_s"], 2)
    out["clock_end"] = clock_reference()
    return out


# ----------------------------------------------------------------------------------------------
# one full-size CTEN training step with its three views
# ----------------------------------------------------------------------------------------------
def phase_cten_train(args) -> dict:
    import torch

    from affectkit.config import load_config
    from affectkit.engine.erasing import TemporalErasingTask
    from affectkit.engine.tasks import build_task

    cfg = load_config("cten/cten_ve8.yaml")  # frozen trunk (train-mode BN), erase_on: features, erase_audio: false
    classes = [f"c{i}" for i in range(8)]
    task = build_task(cfg, classes, None)
    model = _model("cten", args.quick, **{k: v for k, v in task.model_args().items() if k not in QUICK["cten"] or not args.quick})
    model.train()
    b = args.train_batch
    s, t, z = model.seq_len, model.snippet_duration, model.sample_size
    g = torch.Generator().manual_seed(0)
    batch = {"video": torch.randint(0, 256, (b, s, 3, t, z, z), generator=g).float(),
             "audio": torch.randn(b, model.audio_frames, model.audio_bins, generator=g) * 5,
             "label": torch.randint(0, model.num_classes, (b,), generator=g)}
    with torch.no_grad():  # a non-constant attention, so that the erased views differ from the original
        model.temporal_attention.fc.bias.copy_(torch.linspace(0.0, 1.0, s))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=2e-4)
    out: dict = {"model": "cten", **_params(model), "config": "cten/cten_ve8.yaml (frozen trunk, trunk_bn train, "
                 "erase_on features, erase_audio false)", "batch": b,
                 "inputs": {k: list(v.shape) for k, v in batch.items()}, "clock_start": clock_reference()}
    shared = TemporalErasingTask.__dict__["_shares_audio"]
    unshared = staticmethod(lambda model, inner: False)
    logs = {}

    def step(share: bool) -> float:
        TemporalErasingTask._shares_audio = shared if share else unshared
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        res = task.train_step(model, batch)
        res.loss.backward()
        opt.step()
        logs.update(res.logs)
        return time.perf_counter() - t0

    def parts() -> dict:  # the step's stages alone: the frozen trunk once, one audio pass, the heads
        feats = model.trunk_features(batch["video"])
        t0 = time.perf_counter()
        model.trunk_features(batch["video"])
        t1 = time.perf_counter()
        a = model.audio_stream(batch["audio"])
        a.backward(torch.ones_like(a) / a.numel())
        t2 = time.perf_counter()
        af = model.audio_stream(batch["audio"]).detach().requires_grad_()
        t3 = time.perf_counter()
        task.loss_fn(model(video_features=feats, audio_features=af).logits, batch["label"]).backward()
        t4 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        return {"trunk_features_no_grad_s": round(t1 - t0, 4), "audio_stream_fwd_bwd_s": round(t2 - t1, 4),
                "heads_one_view_fwd_bwd_s": round(t4 - t3, 4)}

    step(True)  # warm-up
    shared_t, unshared_t = [], []
    with Background() as bg:
        for _ in range(args.runs):
            shared_t.append(step(True))
            unshared_t.append(step(False))
    TemporalErasingTask._shares_audio = shared
    out["train_step"] = _summary(shared_t, bg.fraction)
    out["train_step_three_audio_passes"] = _summary(unshared_t, bg.fraction)
    out["speedup_shared_audio"] = round(out["train_step_three_audio_passes"]["median_s"] / out["train_step"]["median_s"], 2)
    out["samples_per_s"] = round(b / out["train_step"]["median_s"], 3)
    out["stages"] = parts()
    out["last_step_logs"] = {k: round(float(v), 4) for k, v in logs.items()}
    out["clock_end"] = clock_reference()
    return out


# ----------------------------------------------------------------------------------------------
# the original code's forward beside ours: same weights, same inputs
# ----------------------------------------------------------------------------------------------
def _original_cten(repo: str, ckpt_dir: str):
    """The original ``VAANetErase`` (nku-zhichengzhang/CTEN ``models/vaanet_erase.py``), imported from a
    checkout at run time (never copied), at its full size (16 snippets of 16 x 112 x 112, 1600 x 128 audio in 16
    segments, audio embedding 2048, 8 classes). Two stand-ins, as torchvision does not pair with this torch
    wheel and the code calls ``.cuda()``: ``torchvision.models.resnet18`` builds the kit's ResNet2d, which has
    torchvision's modules in torchvision's order (the original keeps its children, replacing the stem and the
    pool), and ``.cuda()`` is the identity; the 3D ResNet-101 file it loads is a random one written here in
    its layout (``{"state_dict": ...}``, 1039-way head)."""
    import types

    import torch
    from torch import nn

    from affectkit.models.blocks.resnet2d import ResNet2d

    if not (Path(repo) / "models" / "vaanet_erase.py").is_file():
        raise SystemExit(f"--original-repo {repo}: not a checkout of nku-zhichengzhang/CTEN (no models/vaanet_erase.py)")
    tv = types.ModuleType("torchvision")
    tv.models = types.SimpleNamespace(resnet18=lambda pretrained=False, **kw: ResNet2d(num_classes=1000))
    sys.modules.setdefault("torchvision", tv)
    nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    sys.path.insert(0, str(Path(repo).resolve()))
    from models.resnet import resnet101  # noqa: E402  (the original's 3D ResNet-101)
    from models.vaanet_erase import VAANetErase  # noqa: E402

    path = Path(ckpt_dir) / "r3d101_random.pth"
    torch.manual_seed(1)
    torch.save({"state_dict": resnet101(1039, 16, 112).state_dict()}, path)
    torch.manual_seed(2)
    return VAANetErase(snippet_duration=16, sample_size=112, n_classes=8, seq_len=16, audio_embed_size=2048,
                       audio_n_segments=16, pretrained_resnet101_path=str(path))


def phase_original_forward(args) -> dict:
    """The original CTEN's forward, ours with the same weights (the kit's converter of original CTEN checkpoints)
    on the plain and the fast path, the same inputs, interleaved; the logits' and attentions' largest difference."""
    import torch

    from affectkit.deploy.accel import accelerate
    from affectkit.models.cten import convert_original_cten_state_dict

    with tempfile.TemporaryDirectory(prefix="affectkit-cten-original-") as tmp:
        orig = _original_cten(args.original_repo, tmp).eval()
    ours = _model("cten", False).eval()
    ours.load_state_dict(convert_original_cten_state_dict(orig.state_dict(), visual_only=False), strict=True)
    inputs = ours.example_inputs(1)

    def run_orig():
        with torch.inference_mode():  # the original divides its video input in place: give it a copy
            return orig([inputs["video"].clone(), inputs["audio"].clone()])

    def run_ours():
        with torch.inference_mode():
            return ours(**inputs)

    o_logits, o_att = run_orig()
    mine = run_ours()
    out: dict = {"model": "cten (original VAANetErase vs kit CTEN, same weights)", **_params(ours),
                 "inputs": {k: list(v.shape) for k, v in inputs.items()}, "clock_start": clock_reference(),
                 "max_abs_diff_logits": float((o_logits - mine.logits).abs().max()),
                 "max_abs_diff_attention": float((o_att - mine.temporal_attention).abs().max()),
                 "logits_scale": float(o_logits.abs().max())}
    fast = accelerate(ours)
    out["fast_backend"] = {k: fast.fast_info.get(k) for k in ("backend", "reason", "tolerance", "agreement", "tried")}
    fast(**inputs)
    t_orig, t_plain, t_fast = [], [], []
    with Background() as bg:  # interleaved round by round: the same background load for the three
        for _ in range(args.runs):
            for fn, acc in ((run_orig, t_orig), (run_ours, t_plain), (lambda: fast(**inputs), t_fast)):
                t = time.perf_counter()
                fn()
                acc.append(time.perf_counter() - t)
    out["original"] = _summary(t_orig, bg.fraction)
    out["ours_plain_fp32"] = _summary(t_plain, bg.fraction)
    out["ours_fast"] = _summary(t_fast, bg.fraction)
    out["speedup_plain_vs_original"] = round(out["original"]["median_s"] / out["ours_plain_fp32"]["median_s"], 2)
    out["speedup_fast_vs_original"] = round(out["original"]["median_s"] / out["ours_fast"]["median_s"], 2)
    out["clock_end"] = clock_reference()
    return out


CHILD = {"cten_forward": lambda a: phase_forward("cten", a), "vaanet_forward": lambda a: phase_forward("vaanet", a),
         "cten_train": phase_cten_train, "original_forward": phase_original_forward}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run with small sizes")
    ap.add_argument("--out", help="also write the JSON to this file")
    ap.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, from {PHASES} (default: all)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per measurement (default: %(default)s)")
    ap.add_argument("--train-batch", type=int, default=2, help="videos per training step (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    ap.add_argument("--max-wait", type=float, default=60.0,
                    help="seconds to wait for an idle machine before each phase (default: %(default)s)")
    ap.add_argument("--quiet-threshold", type=float, default=0.1, help="machine CPU share counted as idle")
    ap.add_argument("--original-repo", metavar="DIR",
                    help="a checkout of nku-zhichengzhang/CTEN: adds the phase original_forward (its forward beside ours)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.child:
        result = CHILD[args.child](args)
        result["peak_rss_mb"] = maxrss_mb()
        print(json.dumps(result))
        return 0

    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if args.original_repo and "original_forward" not in phases:
        phases.append("original_forward")
    if "original_forward" in phases and not args.original_repo:
        phases.remove("original_forward")  # needs --original-repo
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        ap.error(f"unknown phases {unknown}")
    from affectkit.deploy.accel import cpu_model

    report: dict = {"benchmark": "cten", "quick": args.quick,
                    "command": " ".join(["python", "benchmarks/bench_cten.py"] + sys.argv[1:]),
                    "cpu": cpu_model(), "threads": args.threads, "machine": machine_info(),
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "loadavg_start": list(os.getloadavg()), "phases": {}}
    with tempfile.TemporaryDirectory(prefix="affectkit-bench-cten-"):
        for phase in phases:
            quiet = wait_quiet(args.quiet_threshold, args.max_wait)
            cmd = [sys.executable, __file__, "--child", phase, "--runs", str(args.runs),
                   "--train-batch", str(args.train_batch), "--threads", str(args.threads)]
            if args.quick:
                cmd.append("--quick")
            if args.original_repo:
                cmd += ["--original-repo", str(Path(args.original_repo).resolve())]
            report["phases"][phase] = run_phase(phase, cmd, quiet)
    c, v = report["phases"].get("cten_forward", {}), report["phases"].get("vaanet_forward", {})
    if "plain_fp32" in c and "plain_fp32" in v:
        report["cten_vs_vaanet_plain_forward"] = round(c["plain_fp32"]["median_s"] / v["plain_fp32"]["median_s"], 2)
    report["loadavg_end"] = list(os.getloadavg())
    emit_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
