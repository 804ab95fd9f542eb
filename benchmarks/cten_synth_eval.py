"""CTEN against small VAANet on the synthetic affective video set, and the keyframes CTEN finds.

    affectkit data synth --out /tmp/cten_synth --num-classes 4 --train-per-class 16 --val-per-class 4 \\
        --test-per-class 8 --workers 2
    python benchmarks/cten_synth_eval.py --data /tmp/cten_synth/synth.json --out /tmp/cten_runs --seeds 0 1 2

Variants (same data, epochs, seeds and the ``--set`` overrides for all; each keeps its own config's recipe
otherwise):

- ``vaanet``: ``vaanet/vaanet_synth.yaml`` (task ``classify``);
- ``cten``: ``cten/cten_synth.yaml`` (task ``temporal_erasing``: three views per step);
- ``cten_classify``: the same CTEN trained with the plain ``classify`` task (one view per step), to see
  whether erasing helps.

Each run: the best epoch on the validation split (accuracy), then accuracy and macro F1 on the test split
(``affectkit.evaluate``). Keyframes: each test video through ``Predictor`` (deterministic centre
snippets), the temporal attention turned into keyframe segments by the kit's rule
(:func:`affectkit.engine.erasing.keyframe_segments`: min-max normalised attention >= 0.7, consecutive
snippets merged, each snippet standing for its 1/S segment of the video), compared with the video's
annotated ``episodes`` (synth.json):

- ``tiou``: |K & E| / |K | E| of the union K of the keyframe segments and the union E of the episodes
  (a video without keyframes scores 0), mean over videos;
- ``hit_rate``: the share of keyframe segments whose centre lies inside an episode (pooled);
  ``top_hit_rate``: the same for the highest-scoring segment of each video;
- ``coverage``: the share of the video the keyframes cover (the episodes cover ``episode_coverage``);
- ``random``: the same metrics for segments of the same lengths placed uniformly at random in the same
  video (independently, start ~ U(0, duration - length)), averaged over ``--draws`` draws.

Prints one JSON document (also written to ``<out>/cten_synth_eval.json``).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np

VARIANTS = {
    "vaanet": ("vaanet/vaanet_synth.yaml", []),
    "cten": ("cten/cten_synth.yaml", []),
    "cten_classify": ("cten/cten_synth.yaml", ["task=classify"]),
    "cten_faithful": ("cten/cten_synth.yaml", ["model.args.erase_views=faithful"]),  # not run by default
}


# ---------------------------------------------------------------------------------------------- intervals
def union(segments):
    """Sorted, merged [start, end) intervals."""
    out = []
    for s, e in sorted((float(a), float(b)) for a, b in segments if b > a):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def length(intervals) -> float:
    return sum(e - s for s, e in intervals)


def intersection(a, b) -> float:
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        total += max(0.0, hi - lo)
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def tiou(pred, gt) -> float:
    p, g = union(pred), union(gt)
    inter = intersection(p, g)
    uni = length(p) + length(g) - inter
    return inter / uni if uni > 0 else 0.0


def inside(t: float, episodes) -> bool:
    return any(s <= t <= e for s, e in episodes)


def keyframe_scores(videos):
    """videos: [{"keyframes": [{start, end, score}], "episodes": [[s, e]], "duration": d}] -> metrics."""
    ious, hits, tops, cover, none = [], [], [], [], 0
    for v in videos:
        kf, ep, d = v["keyframes"], v["episodes"], v["duration"]
        segs = [(k["start"], k["end"]) for k in kf]
        ious.append(tiou(segs, ep))
        hits += [inside((s + e) / 2, ep) for s, e in segs]
        if kf:
            best = max(kf, key=lambda k: k["score"])
            tops.append(inside((best["start"] + best["end"]) / 2, ep))
        else:
            none += 1
        cover.append(length(union(segs)) / d if d > 0 else 0.0)
    return {"tiou": float(np.mean(ious)), "hit_rate": float(np.mean(hits)) if hits else 0.0,
            "top_hit_rate": float(np.mean(tops)) if tops else 0.0, "coverage": float(np.mean(cover)),
            "segments": len(hits), "videos_without_keyframes": none}


def random_baseline(videos, draws: int, seed: int = 0):
    """The same segment lengths placed uniformly at random in each video, ``draws`` times."""
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(draws):
        placed = []
        for v in videos:
            d = v["duration"]
            kf = []
            for k in v["keyframes"]:
                ln = min(k["end"] - k["start"], d)
                s = float(rng.uniform(0.0, d - ln))
                kf.append({"start": s, "end": s + ln, "score": k["score"]})
            placed.append({**v, "keyframes": kf})
        runs.append(keyframe_scores(placed))
    return {k: float(np.mean([r[k] for r in runs])) for k in ("tiou", "hit_rate", "top_hit_rate", "coverage")}


# ---------------------------------------------------------------------------------------------- runs
def attention_keyframes(result: dict, seq_len: int, snippet_duration: int, theta: float = 0.7):
    """The kit's keyframe rule on a Predictor result's timeline attention (for any model with one)."""
    from affectkit.engine.erasing import _segment_spans, keyframe_segments

    tl = result["timeline"]
    gamma = [float(t.get("attention", 0.0)) for t in tl]
    spans = _segment_spans({"duration": result.get("duration"), "fps": result.get("fps")}, len(gamma), snippet_duration)
    if spans is None:
        spans = [(t["start"], t["end"]) for t in tl]
    return keyframe_segments(gamma, spans, theta)


def run_one(variant: str, seed: int, args, db: dict, root: Path) -> dict:
    from affectkit import evaluate, train
    from affectkit.deploy.predictor import Predictor

    config, extra = VARIANTS[variant]
    name = f"{variant}_s{seed}"
    run_dir = Path(args.out) / name
    overrides = [f"data.path={args.data}", f"output.root={args.out}", f"output.run_name={name}",
                 "output.tensorboard=false", *([f"train.epochs={args.epochs}"] if args.epochs else []), f"train.seed={seed}",
                 f"data.num_workers={args.workers}", *extra, *args.set]
    t0 = time.perf_counter()
    if args.reuse and (run_dir / "best").is_dir():
        best_dir, trained = run_dir / "best", False
    else:
        result = train(config, overrides)
        best_dir, trained = result.best_dir, True
    train_s = time.perf_counter() - t0
    meta = json.loads((Path(best_dir) / "meta.json").read_text()) if (Path(best_dir) / "meta.json").is_file() else {}
    test = evaluate(best_dir, split="test", out_dir=run_dir / "test_eval")
    t1 = time.perf_counter()
    pred = Predictor(best_dir)
    cfg = pred.input_cfg
    videos = []
    for vid, entry in db.items():
        if entry["subset"] != "testing":
            continue
        res = pred.predict(root / entry["video"])
        videos.append({"video_id": vid, "episodes": entry.get("episodes") or [],
                       "duration": float(res.get("duration") or entry.get("duration")),
                       "keyframes": attention_keyframes(res, cfg.seq_len, cfg.snippet_duration)})
    ep_cover = float(np.mean([length(union(v["episodes"])) / v["duration"] for v in videos]))
    out = {"variant": variant, "seed": seed, "config": config, "overrides": overrides, "trained_here": trained,
           "train_seconds": round(train_s, 1), "best_epoch": meta.get("best_epoch"),
           "val_accuracy": meta.get("best_metric"),
           "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"], "test_samples": test.get("num_samples"),
           "keyframes": keyframe_scores(videos), "random": random_baseline(videos, args.draws, seed),
           "episode_coverage": ep_cover, "keyframe_seconds": round(time.perf_counter() - t1, 1)}
    print(json.dumps({k: out[k] for k in ("variant", "seed", "test_accuracy", "test_macro_f1", "train_seconds")}), flush=True)
    return out


def time_views(args, steps: int) -> dict:
    """Seconds per training step (three views, forward + backward) of ``cten_synth`` with
    ``erase_views`` fast and faithful, on the same ``steps`` training batches (data loading excluded)."""
    import torch
    from torch.utils.data import DataLoader

    from affectkit.config import load_config
    from affectkit.data.clips import collate_samples
    from affectkit.data.datasets import build_index
    from affectkit.engine import erasing as _erasing  # noqa: F401  (registers task temporal_erasing)
    from affectkit.engine.tasks import build_task
    from affectkit.registry import create_model, derive_model_args

    cfg = load_config("cten/cten_synth.yaml", [f"data.path={args.data}", *args.set])
    index = build_index(cfg.data)
    task = build_task(cfg, index.classes, index.polarity)
    torch.manual_seed(0)
    ds = task.dataset(index, "train", train=True)
    batches = [b for _, b in zip(range(steps), DataLoader(ds, batch_size=cfg.train.batch_size, shuffle=True,
                                                          collate_fn=collate_samples, num_workers=0))]
    out = {}
    for mode in ("fast", "faithful"):
        torch.manual_seed(0)
        model = create_model(cfg.model.name, **{**derive_model_args(cfg, index.classes), "erase_views": mode}).train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.train.lr)
        times = []
        for b in batches:
            t0 = time.perf_counter()
            step = task.train_step(model, b)
            opt.zero_grad()
            step.loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        out[mode] = {"seconds_per_step": [round(t, 3) for t in times], "median": round(statistics.median(times), 3)}
    out["batch_size"], out["steps"] = cfg.train.batch_size, len(batches)
    return out


def spread(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return None
    return {"mean": round(statistics.fmean(values), 4), "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
            "min": round(min(values), 4), "max": round(max(values), 4), "n": len(values)}


def summarise(runs):
    out = {}
    for variant in dict.fromkeys(r["variant"] for r in runs):
        rs = [r for r in runs if r["variant"] == variant]
        out[variant] = {
            "test_accuracy": spread([r["test_accuracy"] for r in rs]),
            "test_macro_f1": spread([r["test_macro_f1"] for r in rs]),
            "val_accuracy": spread([r["val_accuracy"] for r in rs]),
            "train_seconds": spread([r["train_seconds"] for r in rs]),
            **{f"keyframes_{k}": spread([r["keyframes"][k] for r in rs]) for k in ("tiou", "hit_rate", "top_hit_rate", "coverage")},
            **{f"random_{k}": spread([r["random"][k] for r in rs]) for k in ("tiou", "hit_rate", "top_hit_rate")},
        }
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="synth.json of `affectkit data synth`")
    ap.add_argument("--out", default="/tmp/cten_runs")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="default: each config's own (12 for both synth configs)")
    ap.add_argument("--variants", nargs="+", default=["vaanet", "cten", "cten_classify"], choices=list(VARIANTS))
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides for every run (e.g. model.args.width=8)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--draws", type=int, default=100, help="random-baseline draws per video")
    ap.add_argument("--reuse", action="store_true", help="evaluate a run folder's best checkpoint instead of training again")
    ap.add_argument("--time-views", type=int, default=0, metavar="STEPS",
                    help="only time STEPS training steps with erase_views fast and faithful, print, exit")
    args = ap.parse_args(argv)
    args.data = str(Path(args.data).resolve())
    import torch

    if args.time_views:
        report = {"time_views": time_views(args, args.time_views), "threads": torch.get_num_threads(), "set": args.set}
        print(json.dumps(report, indent=2))
        return report

    data = json.loads(Path(args.data).read_text())
    db, root = data["database"], Path(args.data).parent
    counts = {s: sum(1 for v in db.values() if v["subset"] == s) for s in ("training", "validation", "testing")}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    runs = []
    for s in args.seeds:
        for v in args.variants:
            runs.append(run_one(v, s, args, db, root))
            (Path(args.out) / "cten_synth_eval.partial.json").write_text(json.dumps(runs, indent=2))  # after each run
    from affectkit.deploy.accel import cpu_model

    cpu = cpu_model()
    report = {"data": args.data, "classes": data["labels"], "videos": counts, "epochs": args.epochs, "seeds": args.seeds,
              "set": args.set, "cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
              "summary": summarise(runs), "runs": runs}
    (Path(args.out) / "cten_synth_eval.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
