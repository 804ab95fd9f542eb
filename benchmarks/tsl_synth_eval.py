"""TSL-Net on the synthetic untrimmed videos, end to end from the mp4 files, against two trivial baselines.

    OMP_NUM_THREADS=1 python benchmarks/tsl_synth_eval.py --work /tmp/tsl_synth --untrimmed 32 --seeds 0 1 2 \\
        --out benchmarks/results/tsl_synth_eval.json

Steps (all through the kit's own code):

1. ``affectkit.data.synth.generate``: ``--untrimmed`` untrimmed videos (30-60 s at 12 fps, 96x96, several
   2.5-5 s episodes of a positive or a negative emotion each; 30 % in the ``test`` subset) with one point label
   per episode (``untrimmed/point_labels.csv``).
2. ``affectkit.data.tsl_features.cache_features`` (what ``affectkit features`` runs): I3D-RGB features, one per
   16 frames at 224x224, and log-mel at sr = 2 x 1024 x fps. **The I3D is randomly initialised** (``--i3d-width``,
   default 0.25: 256-d features, He-normal weights, seed 0): there are no Kinetics weights on this machine and
   none may be downloaded; a random I3D still passes on colour, texture and motion statistics. The figures are
   therefore about the pipeline on synthetic data, not about TSL-300.
3. For each seed: ``affectkit.train("tsl/tsl_synth.yaml")`` (small TSL-Net, point labels, the checkpoint chosen
   on a validation split carved from ``train``), then ``affectkit.evaluate(best, split="test")``.
4. Baselines on the same test ground truth, scored by the same evaluator
   (:func:`affectkit.metrics_localization.evaluate_localization`, tIoU 0.1:0.05:0.3, average mAP):

   - ``random``: per test video and class, ``--random-segments`` segments with lengths drawn from the training
     ground-truth lengths, start ~ U(0, duration - length), score ~ U(0, 1); the mean over ``--draws`` draws;
   - ``uniform``: per test video and class, windows of the median training ground-truth length tiled with a
     stride of half that length over the whole video, all with the same score (1.0); also ``whole_video``:
     one segment per class covering the whole video.

Prints one JSON document (also written to ``--out``) with the per-seed and mean figures, the baselines, the
data sizes, the timings and the CPU model (from /proc/cpuinfo).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from affectkit.deploy.accel import cpu_model


def load_gt(path: Path) -> dict:
    return json.loads(path.read_text())["database"]


def train_lengths(db: dict) -> list[float]:
    return [float(a["segment"][1]) - float(a["segment"][0]) for e in db.values() if e["subset"] == "train"
            for a in e["annotations"]]


def classes_of(db: dict) -> list[str]:
    return sorted({a["label"] for e in db.values() for a in e["annotations"]})


def score(db: dict, results: dict) -> dict:
    from affectkit.metrics_localization import evaluate_localization

    m = evaluate_localization({"database": db}, {"results": results}, subset="test")
    return {"average_mAP": m["average_mAP"], "mAP": m["mAP"], "per_class_ap": m["per_class_ap"],
            "tsl300_recall_avg": m.get("tsl300_recall_avg"), "tsl300_f2_avg": m.get("tsl300_f2_avg")}


def random_baseline(db: dict, draws: int, per_class: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    lengths = np.asarray(train_lengths(db))
    classes = classes_of(db)
    runs = []
    for _ in range(draws):
        results = {}
        for vid, e in db.items():
            if e["subset"] != "test":
                continue
            dur = float(e["duration"])
            rows = []
            for c in classes:
                for length in rng.choice(lengths, size=per_class):
                    length = min(float(length), dur)
                    s = float(rng.uniform(0, dur - length))
                    rows.append({"segment": [s, s + length], "label": c, "score": float(rng.uniform())})
            results[vid] = rows
        runs.append(score(db, results))
    mean = float(np.mean([r["average_mAP"] for r in runs]))
    return {"average_mAP": mean, "std_over_draws": float(np.std([r["average_mAP"] for r in runs])), "draws": draws,
            "segments_per_class_and_video": per_class,
            "mAP": {k: float(np.mean([r["mAP"][k] for r in runs])) for k in runs[0]["mAP"]}}


def uniform_baseline(db: dict) -> dict:
    length = float(np.median(train_lengths(db)))
    classes = classes_of(db)
    tiles, whole = {}, {}
    for vid, e in db.items():
        if e["subset"] != "test":
            continue
        dur = float(e["duration"])
        starts = np.arange(0.0, max(dur - length, 0.0) + 1e-9, length / 2)
        tiles[vid] = [{"segment": [float(s), float(min(dur, s + length))], "label": c, "score": 1.0}
                      for c in classes for s in starts]
        whole[vid] = [{"segment": [0.0, dur], "label": c, "score": 1.0} for c in classes]
    return {"uniform": {"window_seconds": round(length, 3), "stride_seconds": round(length / 2, 3), **score(db, tiles)},
            "whole_video": score(db, whole)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/tsl_synth", help="data, features and runs go here")
    ap.add_argument("--untrimmed", type=int, default=32)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="default: the config's")
    ap.add_argument("--i3d-width", type=float, default=0.25)
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--random-segments", type=int, default=10)
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides for every training run")
    ap.add_argument("--out", default=None, help="JSON result file (default <work>/tsl_synth_eval.json)")
    args = ap.parse_args(argv)

    import torch

    from affectkit.data.synth import SynthConfig, generate
    from affectkit.data.tsl_features import ExtractorSpec, cache_features, dataset_videos, file_sha256, write_random_i3d
    from affectkit.engine.evaluate import evaluate
    from affectkit.engine.trainer import train

    work = Path(args.work)
    timings = {}
    t0 = time.perf_counter()
    cfg = SynthConfig(untrimmed=args.untrimmed, train_per_class=1, val_per_class=0, test_per_class=0, subtitles=False)
    generate(work / "data", cfg, workers=1)
    timings["synth_seconds"] = round(time.perf_counter() - t0, 1)
    gt_path = work / "data" / "untrimmed" / "gt.json"
    db = load_gt(gt_path)

    feat = work / "features"
    weights = feat / f"i3d_random_w{args.i3d_width:g}_seed0.pt"
    if not weights.is_file():
        write_random_i3d(weights, width=args.i3d_width, seed=0)
    from affectkit.models.i3d import load_i3d_weights

    dim = load_i3d_weights(weights).feature_dim
    spec = ExtractorSpec(i3d_weights=str(weights.resolve()), i3d_sha256=file_sha256(weights), i3d_width=args.i3d_width,
                         random_init=True, feature_dim=dim)
    videos, problems = dataset_videos(gt_path)
    t0 = time.perf_counter()
    feat_report = cache_features(videos, feat, spec, progress=False)
    timings["features_seconds"] = round(time.perf_counter() - t0, 1)

    runs = []
    for seed in args.seeds:
        over = [f"data.path={gt_path}", f"input.features.root={feat}", f"train.seed={seed}",
                f"output.root={work / 'runs'}", f"output.run_name=tsl_synth_seed{seed}"] + list(args.set)
        if args.epochs:
            over.append(f"train.epochs={args.epochs}")
        t0 = time.perf_counter()
        res = train("tsl/tsl_synth.yaml", over)
        train_s = time.perf_counter() - t0
        m = evaluate(res.best_dir, split="test")
        runs.append({"seed": seed, "best_epoch": res.best_epoch, "val_average_mAP": res.best_metric,
                     "test_average_mAP": m["average_mAP"], "test_mAP": m["mAP"], "test_per_class_ap": m.get("per_class_ap"),
                     "test_tsl300_recall_avg": m.get("tsl300_recall_avg"), "test_tsl300_f2_avg": m.get("tsl300_f2_avg"),
                     "num_segments_predicted": m.get("num_segments_predicted"), "train_seconds": round(train_s, 1),
                     "run_dir": str(res.run_dir)})
    vals = [r["test_average_mAP"] for r in runs]
    n_test = sum(e["subset"] == "test" for e in db.values())
    out = {
        "what": "TSL-Net (tsl/tsl_synth.yaml) on synthetic untrimmed videos, features computed by the kit from the mp4 "
                "files with a RANDOMLY INITIALISED I3D (not Kinetics weights)",
        "command": "OMP_NUM_THREADS=1 python benchmarks/tsl_synth_eval.py " + " ".join(argv if argv is not None else os.sys.argv[1:]),
        "cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
        "data": {"untrimmed_videos": len(db), "test_videos": n_test, "train_videos_incl_val": len(db) - n_test,
                 "test_segments": sum(len(e["annotations"]) for e in db.values() if e["subset"] == "test"),
                 "fps": cfg.fps, "seconds_per_step": 16 / cfg.fps, "skipped": problems + feat_report["failed"]},
        "features": {"i3d_width": args.i3d_width, "feature_dim": dim, "random_init": True,
                     "video_seconds_per_second": feat_report["video_seconds_per_second"]},
        "tsl_net": {"average_mAP_mean": statistics.mean(vals), "average_mAP_std": statistics.pstdev(vals),
                    "seeds": args.seeds, "runs": runs},
        "baselines": {"random": random_baseline(db, args.draws, args.random_segments), **uniform_baseline(db)},
        "timings": timings,
    }
    text = json.dumps(out, indent=2)
    print(text)
    dest = Path(args.out) if args.out else work / "tsl_synth_eval.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text + "\n")
    return out


if __name__ == "__main__":
    main()
