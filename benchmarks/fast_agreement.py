"""Agreement of the fast path with the plain fp32 path on real samples: a trained checkpoint, every video
of a split of its dataset, both paths in one process (interleaved per video).

    python benchmarks/fast_agreement.py runs/<run>/best --split test [--backend auto] --out agree.json

Prints JSON: the backend chosen and why, top-1 equal count, largest class-probability difference, and
median seconds per video of the model call on each path (decoding excluded, the same sample for both).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from affectkit.config import config_from_dict  # noqa: E402
from affectkit.data.datasets import build_index  # noqa: E402
from affectkit.deploy.accel import cpu_summary  # noqa: E402
from affectkit.deploy.predictor import Predictor  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="checkpoint folder or run folder")
    p.add_argument("--split", default="test", help="split of the checkpoint's dataset (default test)")
    p.add_argument("--backend", default="auto", help="fast backend (default: auto)")
    p.add_argument("--limit", type=int, default=None, help="at most this many videos")
    p.add_argument("--out", help="write the JSON here too")
    args = p.parse_args(argv)
    plain = Predictor(args.checkpoint)
    t0 = time.perf_counter()
    fast = Predictor(args.checkpoint, fast=args.backend)
    prepare_s = time.perf_counter() - t0
    cfg = config_from_dict(plain.config["config"])
    records = build_index(cfg.data).split(args.split)[: args.limit]
    same, worst, tp, tf = 0, 0.0, [], []
    for r in records:
        sample = plain.load(r.path, audio_path=r.audio_path)
        t1 = time.perf_counter()
        a = plain.run(sample)
        t2 = time.perf_counter()
        b = fast.run(sample)
        t3 = time.perf_counter()
        tp.append(t2 - t1)
        tf.append(t3 - t2)
        same += int(a["label"] == b["label"])
        worst = max(worst, max(abs(a["probabilities"][c] - b["probabilities"][c]) for c in a["probabilities"]))
    out = {"checkpoint": str(args.checkpoint), "split": args.split, "videos": len(records),
           "fast_path": fast.fast_info, "prepare_seconds": round(prepare_s, 2),
           "top1_equal": same, "max_prob_diff": round(worst, 6),
           "plain_s_median": round(statistics.median(tp), 4), "fast_s_median": round(statistics.median(tf), 4),
           "ratio": round(statistics.median(tp) / statistics.median(tf), 2), "cpu": cpu_summary(),
           "torch": torch.__version__}
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
