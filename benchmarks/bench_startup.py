"""Start-up cost of the ``affectkit`` command: wall time of ``affectkit --help`` and of a one-file
``affectkit predict``, the import time of each (``python -X importtime``), and the model's own time.

    python benchmarks/bench_startup.py --checkpoint runs/<run>/best --video clip.mp4 [--repeat 5]

Each command runs in a fresh process ``--repeat`` times; the median is printed.
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time

LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def wall(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def import_time(args: list[str]) -> tuple[float, list[tuple[str, float]]]:
    """Seconds spent importing (sum over the top-level imports) and the three largest top-level modules."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "affectkit", *args], check=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    top: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        m = LINE.match(line)
        if m and len(m.group(3)) == 1:  # one space: imported by the command itself, not by another module
            top[m.group(4)] = top.get(m.group(4), 0.0) + int(m.group(2)) / 1e6
    largest = sorted(top.items(), key=lambda kv: -kv[1])[:3]
    return sum(top.values()), largest


MODEL_TIME = """
import sys, time
from affectkit.deploy.predictor import Predictor
t0 = time.perf_counter(); p = Predictor(sys.argv[1]); t1 = time.perf_counter(); p.predict(sys.argv[2]); t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f}")
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--video", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    exe = [sys.executable, "-m", "affectkit"]
    for name, args in (("--help", ["--help"]), ("predict", ["predict", a.video, "--checkpoint", a.checkpoint])):
        seconds = wall(exe + args, a.repeat)
        imports, largest = import_time(args)
        shown = ", ".join(f"{m} {s:.2f} s" for m, s in largest)
        print(f"affectkit {name:8s} wall {seconds:.2f} s (median of {a.repeat}); imports {imports:.2f} s ({shown})")
    out = subprocess.run([sys.executable, "-c", MODEL_TIME, a.checkpoint, a.video], check=True,
                         capture_output=True, text=True).stdout.split()
    print(f"model: load {float(out[0]):.2f} s, predict one video {float(out[1]):.2f} s (in one process, after its imports)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
