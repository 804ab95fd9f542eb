"""MBT on the synthetic affective video set with subtitles: video+audio, video+audio+text, and MODA fusion.

    affectkit data synth --out /tmp/mbt_synth --workers 2
    python benchmarks/mbt_synth_eval.py --data /tmp/mbt_synth/synth.json --out /tmp/mbt_runs --seeds 0 1 2

Variants (same data, epochs, seeds and ``--set`` overrides for all; each is a shipped config):

- ``mbt_va``: ``mbt/mbt_synth.yaml`` (bottleneck fusion, video + audio);
- ``mbt_vat``: ``mbt/mbt_synth_text.yaml`` (the same + the subtitles through the built-in word encoder, a text
  stream joining the bottleneck fusion);
- ``mbt_moda``: ``mbt/mbt_synth_moda.yaml`` (MODA's duplex attention over video, audio and text tokens in place
  of the bottlenecks).

Each run: the best epoch on the validation split (accuracy), then accuracy, macro and weighted F1 on the test
split (``affectkit.evaluate``). Prints one JSON document (also written to ``<out>/mbt_synth_eval.json``; after each
run the runs so far go to ``<out>/mbt_synth_eval.partial.json``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cten_synth_eval import spread  # noqa: E402

VARIANTS = {
    "mbt_va": "mbt/mbt_synth.yaml",
    "mbt_vat": "mbt/mbt_synth_text.yaml",
    "mbt_moda": "mbt/mbt_synth_moda.yaml",
}


def run_one(variant: str, seed: int, args) -> dict:
    from affectkit import evaluate, train

    name = f"{variant}_s{seed}"
    run_dir = Path(args.out) / name
    overrides = [f"data.path={args.data}", f"output.root={args.out}", f"output.run_name={name}",
                 "output.tensorboard=false", *([f"train.epochs={args.epochs}"] if args.epochs else []), f"train.seed={seed}",
                 f"data.num_workers={args.workers}", *args.set]
    t0 = time.perf_counter()
    if args.reuse and (run_dir / "best").is_dir():
        best_dir, trained = run_dir / "best", False
    else:
        best_dir, trained = train(VARIANTS[variant], overrides).best_dir, True
    train_s = time.perf_counter() - t0
    meta_path = Path(best_dir) / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    test = evaluate(best_dir, split="test", out_dir=run_dir / "test_eval")
    out = {"variant": variant, "seed": seed, "config": VARIANTS[variant], "overrides": overrides, "trained_here": trained,
           "train_seconds": round(train_s, 1), "best_epoch": meta.get("best_epoch"), "val_accuracy": meta.get("best_metric"),
           "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"], "test_weighted_f1": test["weighted_f1"],
           "test_samples": test.get("num_samples")}
    print(json.dumps({k: out[k] for k in ("variant", "seed", "test_accuracy", "test_weighted_f1", "train_seconds")}), flush=True)
    return out


def summarise(runs):
    out = {}
    for variant in dict.fromkeys(r["variant"] for r in runs):
        rs = [r for r in runs if r["variant"] == variant]
        out[variant] = {k: spread([r[k] for r in rs]) for k in
                        ("test_accuracy", "test_weighted_f1", "test_macro_f1", "val_accuracy", "train_seconds")}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="synth.json of `affectkit data synth`")
    ap.add_argument("--out", default="/tmp/mbt_runs")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="default: each config's own (the same for the three)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides for every run (e.g. train.batch_size=4)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="evaluate a run folder's best checkpoint instead of training again")
    args = ap.parse_args(argv)
    args.data = str(Path(args.data).resolve())
    import torch

    from affectkit.deploy.accel import cpu_model

    data = json.loads(Path(args.data).read_text())
    counts = {s: sum(1 for v in data["database"].values() if v["subset"] == s) for s in ("training", "validation", "testing")}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    runs = []
    for s in args.seeds:
        for v in args.variants:
            runs.append(run_one(v, s, args))
            (Path(args.out) / "mbt_synth_eval.partial.json").write_text(json.dumps(runs, indent=2))
    report = {"data": args.data, "classes": data["labels"], "videos": counts, "epochs": args.epochs, "seeds": args.seeds,
              "set": args.set, "cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "summary": summarise(runs), "runs": runs}
    (Path(args.out) / "mbt_synth_eval.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
