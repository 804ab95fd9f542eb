#!/usr/bin/env python
"""MBT CPU benchmark: full-size forward latency per video on the plain and the fast path
(``affectkit.deploy.accel.accelerate``) for the MART preset (``mbt_mart``: 16 segments of 16 x 112 x 112 with
their 100 x 128 fbank windows, 32 bottlenecks) and the original preset (``mbt``: 32 frames at 224 in 2x16x16
tubelets, 800 x 128 log-mel). Batch 1, the model's ``example_inputs``, random weights (latency does not
depend on them). Prints one JSON object.

    python benchmarks/bench_mbt.py --out benchmarks/results/bench_mbt.json   # full size (several minutes)
    python benchmarks/bench_mbt.py --quick                                   # smoke run, tiny sizes
    python benchmarks/bench_mbt.py --phases mbt_mart_forward --runs 3

Each phase runs in its own subprocess (allocator tuning and peak RSS per phase); the plain eager fp32 model is
timed first on the untouched allocator, then the fast path and the plain model interleaved, so their ratio is
measured under the same load (see ``bench_cten.py``, whose forward phase this reuses). Timings record
``background_cpu``: the share of the machine's CPU time other processes used meanwhile.
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

from bench_cten import phase_forward  # noqa: E402
from bench_vaanet import emit_report, machine_info, maxrss_mb, run_phase, wait_quiet  # noqa: E402

PHASES = ("mbt_mart_forward", "mbt_forward")


def _model(name: str, quick: bool):
    import torch

    from affectkit.registry import create_model, get_model_entry

    torch.manual_seed(0)
    return create_model(name, **(dict(get_model_entry(name).tiny_args) if quick else {}))


CHILD = {p: (lambda a, n=p[: -len("_forward")]: phase_forward(n, a, _model(n, a.quick))) for p in PHASES}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run with the registry's tiny sizes")
    ap.add_argument("--out", help="also write the JSON to this file")
    ap.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, from {PHASES} (default: all)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per measurement (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    ap.add_argument("--max-wait", type=float, default=60.0,
                    help="seconds to wait for an idle machine before each phase (default: %(default)s)")
    ap.add_argument("--quiet-threshold", type=float, default=0.1, help="machine CPU share counted as idle")
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
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        ap.error(f"unknown phases {unknown}")
    from affectkit.deploy.accel import cpu_model

    report: dict = {"benchmark": "mbt", "quick": args.quick,
                    "command": " ".join(["python", "benchmarks/bench_mbt.py"] + sys.argv[1:]),
                    "cpu": cpu_model(), "threads": args.threads, "machine": machine_info(),
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "loadavg_start": list(os.getloadavg()), "phases": {}}
    with tempfile.TemporaryDirectory(prefix="affectkit-bench-mbt-"):
        for phase in phases:
            quiet = wait_quiet(args.quiet_threshold, args.max_wait)
            cmd = [sys.executable, __file__, "--child", phase, "--runs", str(args.runs), "--threads", str(args.threads)]
            if args.quick:
                cmd.append("--quick")
            report["phases"][phase] = run_phase(phase, cmd, quiet)
    report["loadavg_end"] = list(os.getloadavg())
    emit_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
