#!/usr/bin/env python
"""MART CPU benchmark: one pretraining step (forward, loss, backward) on full-size MBT (``mart``: the
``mbt_mart`` preset, ViT-B video + AST audio, 32 bottlenecks, with the plug-in at its paper defaults: a
no-grad ranking pass, masking at the input, TACL, the 8-block decoder) beside one plain MBT classification step
of the same backbone, both at batch 1 with ``--windows`` windows (MART's code trains 12; each window is a
16 x 112 x 112 snippet with its 100 x 128 fbank window) and 3 emotional words per window. Random weights.

    python benchmarks/bench_mart.py --out benchmarks/results/bench_mart.json   # full size, 2 windows
    python benchmarks/bench_mart.py --quick                                    # smoke run, tiny sizes
    python benchmarks/bench_mart.py --switches mask_where=output,mask_rank=code,tacl_mode=code,recover=pix

Prints one JSON object: seconds per step (the median of ``--runs`` after one warm-up), the ratio, peak RSS,
the parameter counts and the machine.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_vaanet import emit_report, machine_info, maxrss_mb  # noqa: E402


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    ap.add_argument("--windows", type=int, default=2, help="windows per video (default: %(default)s)")
    ap.add_argument("--runs", type=int, default=2, help="timed steps per measurement (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--switches", default="", help="MART options, comma-separated key=value")
    ap.add_argument("--out")
    args = ap.parse_args(argv)

    import torch

    from affectkit.data.lexicon import get_lexicon
    from affectkit.losses import build_loss
    from affectkit.models.mart import WindowWords
    from affectkit.registry import create_model, get_model_entry

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    switches = {k: _value(v) for k, v in (s.split("=", 1) for s in args.switches.split(",") if s)}
    classes = ["Anger", "Anticipation", "Disgust", "Fear", "Joy", "Sadness", "Surprise", "Trust"]
    base = dict(get_model_entry("mart").tiny_args) if args.quick else {}
    s = args.windows
    frames = (base.get("audio_frames", 1200) // base.get("seq_len", 12)) * s
    model = create_model("mart", **{**base, "num_classes": 8, "seq_len": s, "audio_frames": frames, **switches})
    model.train()
    bb = model.backbone
    z, t = bb.sample_size, bb.snippet_duration
    video = torch.randint(0, 256, (1, s, 3, t, z, z)).float()
    audio = torch.randn(1, bb.audio_frames, bb.audio_bins)
    texts = [["so happy and wonderful", "angry and furious", "sad tears grief"][j % 3] for j in range(s)]
    words = WindowWords.from_texts([texts], get_lexicon("synthetic", classes), classes)
    label, loss_fn = torch.tensor([4]), build_loss("ce")
    sign = torch.tensor([-1, 1, -1, -1, 1, -1, 1, 1])

    def mart_step():
        model.zero_grad(set_to_none=True)
        res = model(video=video, audio=audio, words=words, label=label, loss_fn=loss_fn, progress=0.5,
                    class_sign=sign, generator=torch.Generator().manual_seed(0))
        res.loss.backward()

    def mbt_step():
        model.zero_grad(set_to_none=True)
        out = bb(video=video, audio=audio)
        bb.classification_loss(out, label, loss_fn).backward()

    def timed(fn):
        fn()  # warm-up
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    t_mbt = timed(mbt_step)
    t_mart = timed(mart_step)
    n = lambda ps: sum(p.numel() for p in ps)  # noqa: E731
    result = {
        "benchmark": "mart_pretrain_step", "quick": args.quick, "windows": s, "batch": 1, "threads": args.threads,
        "switches": switches, "command": "python benchmarks/bench_mart.py " + " ".join(sys.argv[1:]),
        "mbt_train_step_s": round(t_mbt, 3), "mart_pretrain_step_s": round(t_mart, 3),
        "mart_over_mbt": round(t_mart / t_mbt, 3),
        "params": {"backbone": n(bb.parameters()), "plugin": n(model.plugin_parameters())},
        "peak_rss_mb": maxrss_mb(), "machine": machine_info(),
    }
    emit_report(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
