"""BPM-GCN against the single-stream 2s-AGCN baseline on the synthetic gaits, over several seeds.

    python benchmarks/gait_synth_eval.py --out /tmp/gait_eval --seeds 0 1 2 --jobs 2

Both models train on the same synthetic Emotion-Gait-format set (``affectkit.data.synth_gait``, written
once under ``<out>/data``), with the same split (``data.split_seed`` fixed, ``--test-fraction`` of every
class to test, ``--val-fraction`` of training to validation), the same epochs, batch, optimiser and schedule (their
shipped configs ``gait/bpm_gcn_synth.yaml`` and ``gait/agcn_synth.yaml`` share them) and, per run, the
same training seed. Each run picks its best epoch on the validation split; the figure is the test
accuracy at that epoch (``affectkit.evaluate``), with BPM-GCN's single-stream accuracies beside it and, for
reference only, the last epoch's test accuracy.

Prints one JSON document (also written to ``<out>/gait_synth_eval.json``): the options, every run, and
per model the mean, sample standard deviation, min and max of the test accuracy, plus the per-seed
difference BPM-GCN - AGCN. Each worker runs torch with one thread (``--threads``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from affectkit.deploy.accel import cpu_model  # the CPU model name, as affectkit doctor reports it

MODELS = {"bpm_gcn": "gait/bpm_gcn_synth.yaml", "agcn": "gait/agcn_synth.yaml"}


def _run(job: dict) -> dict:
    os.environ["OMP_NUM_THREADS"] = str(job["threads"])
    import torch

    torch.set_num_threads(job["threads"])
    from affectkit import train
    from affectkit.engine.evaluate import evaluate

    t0 = time.perf_counter()
    overrides = [f"data.path={job['data']}", f"output.root={job['root']}", f"train.seed={job['seed']}",
                 f"output.run_name={job['model']}-seed{job['seed']}", f"data.test_fraction={job['test_fraction']}",
                 f"data.val_fraction={job['val_fraction']}",
                 "output.tensorboard=false", "data.num_workers=0"]
    if job["epochs"] is not None:
        overrides.append(f"train.epochs={job['epochs']}")
    if job["base_width"] is not None:
        overrides.append(f"model.args.base_width={job['base_width']}")
    overrides += job["set"]
    result = train(MODELS[job["model"]], overrides)
    test = evaluate(result.best_dir, split="test")
    last = evaluate(result.run_dir / "last", split="test")  # the last epoch, for reference (not the selected one)
    row = {"model": job["model"], "seed": job["seed"], "best_epoch": result.best_epoch,
           "val_accuracy": result.best_metric, "test_accuracy": test["accuracy"], "test_macro_f1": test.get("macro_f1"),
           "test_samples": test["num_samples"], "per_class_accuracy": test.get("per_class_accuracy"),
           "last_epoch_test_accuracy": last["accuracy"], "seconds": round(time.perf_counter() - t0, 1),
           "run_dir": str(result.run_dir)}
    for k in ("accuracy_posture", "accuracy_movement"):
        if k in test:
            row[f"test_{k}"] = test[k]
    return row


def data_digest(features: str) -> str:
    """SHA-1 over the gaits (names, arrays) and labels of an Emotion-Gait-format pair: the identity of a data set."""
    import hashlib

    from affectkit.data import gait

    h = hashlib.sha1()
    feats = gait.read_gait_features(features)
    labels = gait.read_gait_labels(gait.find_labels_file(features))
    for k in sorted(feats):
        h.update(k.encode())
        h.update(feats[k].astype("<f8").tobytes())
        h.update(str(labels.get(k)).encode())
    return h.hexdigest()


def _stats(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gait_synth_eval", help="folder for the data, the runs and the JSON")
    ap.add_argument("--data", default=None, help="an existing features.h5 (default: write <out>/data)")
    ap.add_argument("--per-class", type=int, default=60, help="synthetic gaits per class (default 60)")
    ap.add_argument("--difficulty", default="default", help="easy, default, hard or a number in [0, 1]")
    ap.add_argument("--cues", default="crossed", choices=["crossed", "dynamic"],
                    help="the generator's style cues (affectkit.data.synth_gait; default crossed)")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--epochs", type=int, default=None, help="default: the configs' (30)")
    ap.add_argument("--base-width", type=int, default=None, help="default: the configs' (16)")
    ap.add_argument("--test-fraction", type=float, default=0.25, help="share of every class to test (default 0.25)")
    ap.add_argument("--val-fraction", type=float, default=0.2,
                    help="share of the training gaits for validation (model selection; default 0.2)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    args = ap.parse_args(argv)

    from affectkit.data.synth_gait import SynthGaitConfig, generate_gait

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = args.data or str(generate_gait(out / "data", SynthGaitConfig(per_class=args.per_class,
                                                                          difficulty=args.difficulty, cues=args.cues,
                                                                          seed=args.data_seed)))
    jobs = [{"model": m, "seed": s, "data": data, "root": str(out / "runs"), "epochs": args.epochs,
             "base_width": args.base_width, "test_fraction": args.test_fraction,
             "val_fraction": args.val_fraction, "set": list(args.set),
             "threads": args.threads} for s in args.seeds for m in args.models]
    t0 = time.perf_counter()
    if args.jobs > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            runs = list(pool.map(_run, jobs))
    else:
        runs = [_run(j) for j in jobs]
    summary = {}
    for m in args.models:
        rows = [r for r in runs if r["model"] == m]
        summary[m] = {"test_accuracy": _stats([r["test_accuracy"] for r in rows]),
                      "last_epoch_test_accuracy": _stats([r["last_epoch_test_accuracy"] for r in rows])}
        for k in ("test_accuracy_posture", "test_accuracy_movement"):
            if rows and k in rows[0]:
                summary[m][k.replace("test_", "")] = _stats([r[k] for r in rows])
    if {"bpm_gcn", "agcn"} <= set(args.models):
        acc = {(r["model"], r["seed"]): r["test_accuracy"] for r in runs}
        diff = [acc["bpm_gcn", s] - acc["agcn", s] for s in args.seeds]
        summary["bpm_gcn_minus_agcn"] = {**_stats(diff), "per_seed": dict(zip(map(str, args.seeds), diff)),
                                         "bpm_gcn_wins": sum(d > 0 for d in diff), "ties": sum(d == 0 for d in diff)}
    import torch

    report = {"benchmark": "gait_synth_eval", "cpu": cpu_model(), "threads_per_run": args.threads, "jobs": args.jobs,
              "torch": torch.__version__, "data": data, "data_digest": data_digest(data),
              "per_class": args.per_class, "difficulty": args.difficulty,
              "cues": args.cues,
              "data_seed": args.data_seed, "seeds": args.seeds, "epochs": args.epochs or "config (30)",
              "base_width": args.base_width or "config (16)", "test_fraction": args.test_fraction, "val_fraction": args.val_fraction, "set": args.set,
              "chance": 0.25, "summary": summary, "runs": runs, "wall_seconds": round(time.perf_counter() - t0, 1)}
    (out / "gait_synth_eval.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
