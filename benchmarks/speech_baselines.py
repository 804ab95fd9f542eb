"""MFCC-statistics logistic regression on RAVDESS under the speaker-independent folds of ``affectkit cv``.

    python benchmarks/speech_baselines.py --data DIR_WITH_ACTORS --folds 4 --val-groups 2 --out mfcc_lr.json

The baseline of the speech-encoder issue: per recording, 40 MFCCs (16 kHz, 25 ms window, 10 ms hop, 64 mel bands;
the kit's :func:`affectkit.data.audio.mfcc`) and their deltas summarised by mean and standard deviation over
time (160 numbers); standardised on the fold's training actors; scikit-learn's multinomial logistic regression
with the inverse regularisation ``C`` chosen on the fold's validation actors from a grid (never on test), then
refit on the training actors with that C. Folds are :func:`affectkit.engine.cv.group_folds` (the same as
``affectkit cv``). Prints per-fold and mean test accuracy and macro F1 (JSON).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speech_encoder import emit  # noqa: E402

GRID = (0.001, 0.01, 0.1, 1.0, 10.0)


def features(path: str) -> np.ndarray:
    from affectkit.data.audio import load_audio, mfcc

    wave = load_audio(path, 16000)
    m = mfcc(wave, 16000, n_mfcc=40, n_fft=400, hop_length=160, n_mels=64)  # (T, 40)
    d = np.diff(m, axis=0, prepend=m[:1])
    x = np.concatenate([m, d], 1)
    return np.concatenate([x.mean(0), x.std(0)]).astype(np.float64)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="a folder of RAVDESS recordings (any depth)")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--val-groups", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.preprocessing import StandardScaler

    from affectkit.data.datasets import load_ravdess_index
    from affectkit.engine.cv import group_folds

    index = load_ravdess_index(args.data)
    t0 = time.perf_counter()
    X = np.stack([features(r.path) for r in index.records])
    extract_s = time.perf_counter() - t0
    y = np.array([r.label for r in index.records])
    actor = np.array([int(r.extra["actor"]) for r in index.records])
    runs = []
    for k, plan in enumerate(group_folds(sorted(set(actor.tolist())), args.folds, args.val_groups)):
        tr, va, te = (np.isin(actor, plan[s]) for s in ("train", "val", "test"))
        scaler = StandardScaler().fit(X[tr])
        best = None
        for c in GRID:
            clf = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(X[tr]), y[tr])
            acc = accuracy_score(y[va], clf.predict(scaler.transform(X[va])))
            if best is None or acc > best[1]:
                best = (c, acc)
        clf = LogisticRegression(C=best[0], max_iter=5000).fit(scaler.transform(X[tr]), y[tr])
        pred = clf.predict(scaler.transform(X[te]))
        runs.append({"fold": k, "groups": plan, "C": best[0], "val_accuracy": best[1],
                     "test_accuracy": accuracy_score(y[te], pred), "test_macro_f1": f1_score(y[te], pred, average="macro"),
                     "test_samples": int(te.sum())})
    acc = np.array([r["test_accuracy"] for r in runs])
    f1 = np.array([r["test_macro_f1"] for r in runs])
    report = {"command": "python " + " ".join([sys.argv[0], *sys.argv[1:]]), "recordings": int(len(y)),
              "feature_seconds": round(extract_s, 1), "folds": runs,
              "accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std()),
              "macro_f1_mean": float(f1.mean()), "macro_f1_std": float(f1.std())}
    return emit(report, args.out)


if __name__ == "__main__":
    main()
