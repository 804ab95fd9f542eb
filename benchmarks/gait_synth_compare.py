"""Paired comparison of two gait models from ``gait_synth_eval.py`` result files, seed by seed.

    python benchmarks/gait_synth_compare.py \
        --a bpm_gcn benchmarks/results/gait_synth/hard_lr005.json benchmarks/results/gait_synth/hard_bpm_lr005_s5-9.json \
        --b agcn benchmarks/results/gait_synth/hard_agcn_lr001.json benchmarks/results/gait_synth/hard_agcn_lr001_s5-9.json

``--a`` / ``--b``: a model name, then the result files whose runs of that model to take (several files
may hold different seeds; a seed found twice is an error). Every file must describe the same data (the
same synthetic set: gaits per class, difficulty, cues and data seed, which the deterministic generator turns into
the same gaits, and the same ``data_digest`` where both files record one) and the same test fraction, so that
both models are tested on the same gaits. Only seeds that both sides ran are compared.

Prints (and with ``--out`` writes) one JSON document: per side the test accuracy's mean, sample standard
deviation, min and max and the settings of its files (``set`` overrides, e.g. the learning rate); the
per-seed difference a - b with its mean and standard deviation, the counts of wins, ties and losses, the
two-sided exact sign test over the non-tied seeds and, when SciPy is installed, the paired t-test.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gait_synth_eval import _stats  # noqa: E402  (mean, sample std, min, max, n)

SAME = ("per_class", "difficulty", "cues", "data_seed", "test_fraction")


def _side(spec: list[str]) -> tuple[str, dict[int, dict], list[dict]]:
    if len(spec) < 2:
        raise SystemExit(f"expected a model name then one or more result files, got {spec}")
    model, files = spec[0], spec[1:]
    runs, settings = {}, []
    for f in files:
        try:
            doc = json.loads(Path(f).read_text())
            doc["runs"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"{f}: not a gait_synth_eval.py result file ({type(e).__name__}: {e})") from None
        doc.setdefault("cues", "crossed")  # files written before the cues option
        settings.append({"file": f, **{k: doc.get(k) for k in SAME + ("data", "data_digest", "set", "val_fraction", "cpu")}})
        for r in doc["runs"]:
            if r["model"] != model:
                continue
            if r["seed"] in runs:
                raise SystemExit(f"{f}: seed {r['seed']} of {model} is already in another file")
            runs[r["seed"]] = r
    if not runs:
        raise SystemExit(f"no run of {model} in {files}")
    return model, runs, settings


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial sign test (p = 1/2) over the non-tied pairs."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", nargs="+", required=True, metavar="MODEL FILE", help="model name, then result files")
    ap.add_argument("--b", nargs="+", required=True, metavar="MODEL FILE", help="model name, then result files")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    (ma, ra, sa), (mb, rb, sb) = _side(args.a), _side(args.b)
    ref = sa[0]
    for s in sa + sb:
        keys = SAME + (("data_digest",) if ref["data_digest"] and s["data_digest"] else ())
        diff = {k: (ref[k], s[k]) for k in keys if s[k] != ref[k]}
        if diff:
            raise SystemExit(f"{s['file']} differs from {ref['file']} in {diff}: not the same test gaits")
    seeds = sorted(set(ra) & set(rb))
    if not seeds:
        raise SystemExit("no seed that both sides ran")
    acc_a = [ra[s]["test_accuracy"] for s in seeds]
    acc_b = [rb[s]["test_accuracy"] for s in seeds]
    d = [x - y for x, y in zip(acc_a, acc_b)]
    wins, losses = sum(x > 0 for x in d), sum(x < 0 for x in d)
    report = {"a": {"model": ma, "files": sa, "test_accuracy": _stats(acc_a)},
              "b": {"model": mb, "files": sb, "test_accuracy": _stats(acc_b)},
              "seeds": seeds, "a_minus_b": {**_stats(d), "per_seed": dict(zip(map(str, seeds), d)), "wins": wins,
                                            "ties": len(d) - wins - losses, "losses": losses,
                                            "sign_test_p": sign_test(wins, losses)}}
    try:
        from scipy.stats import ttest_rel

        report["a_minus_b"]["paired_t_p"] = float(ttest_rel(acc_a, acc_b).pvalue) if len(seeds) > 1 else None
    except ImportError:
        pass
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return report


if __name__ == "__main__":
    main()
