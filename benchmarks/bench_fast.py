"""Every registered model, full size, on the plain eager fp32 path and on the fast path, timed in one
process and interleaved (plain, fast, plain, fast, ...), so the ratio is measured under the same load.

    python benchmarks/bench_fast.py --out fast.json                  # all models, the `auto` fast path
    python benchmarks/bench_fast.py --models vaanet --backends all   # every backend this CPU offers
    python benchmarks/bench_fast.py --train --models audio_cnn       # + training samples/s, eager vs torch.compile
    python benchmarks/bench_fast.py --markdown fast.json             # the README table from a JSON file

Prints (and writes with --out) a JSON object: the machine (CPU model and flags, torch, threads) and one
row per (model, backend): inputs, plain and fast median seconds per call, their ratio, the backend
chosen and why, its first-call seconds (compilation and check), and its agreement with fp32 on
random inputs (top-1 equal count, largest class-probability difference).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from affectkit import list_models  # noqa: E402
from affectkit.deploy.accel import BACKENDS, accelerate, cpu_summary  # noqa: E402
from affectkit.registry import create_model, get_model_entry  # noqa: E402


def _probs(model, inputs):
    with torch.inference_mode():
        return torch.softmax(model(**inputs).logits.float(), -1)


def _call(model, inputs) -> float:
    t0 = time.perf_counter()
    with torch.inference_mode():
        model(**inputs)
    return time.perf_counter() - t0


def _random_inputs(model, n: int, seed: int):
    base = model.example_inputs(1)
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        out.append({k: (v * torch.rand((), generator=g) * 2 if k != "video" else
                        torch.randint(0, 256, v.shape, generator=g).float()) for k, v in base.items()})
    return out


def bench_inference(name: str, backends: list[str], repeats: int, agree_n: int, args_over: dict) -> list[dict]:
    torch.manual_seed(0)
    model = create_model(name, **args_over).eval()
    inputs = model.example_inputs(1)
    rows = []
    for backend in backends:
        row = {"model": name, "inputs": {k: list(v.shape) for k, v in inputs.items()},
               "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2), "requested": backend}
        if backend in BACKENDS:
            ok, why = BACKENDS[backend].available(model)
            if not ok:  # e.g. vaanet-int8 for another model, bf16 on a CPU without it
                row.update(skipped=why)
                rows.append(row)
                continue
        try:
            fast = accelerate(model, backend=backend)
        except Exception as err:  # noqa: BLE001 - reported in the table
            row["error"] = f"{type(err).__name__}: {err}"
            rows.append(row)
            continue
        info = fast.fast_info
        row.update(backend=info["backend"], reason=info["reason"], first_call_seconds=info["first_call_seconds"])
        _call(model, inputs), _call(fast, inputs)  # warm both
        plain, quick = [], []
        for _ in range(repeats):  # interleaved: the same background load for both
            plain.append(_call(model, inputs))
            quick.append(_call(fast, inputs))
        row.update(plain_s=round(statistics.median(plain), 4), fast_s=round(statistics.median(quick), 4),
                   plain_runs=[round(x, 4) for x in plain], fast_runs=[round(x, 4) for x in quick])
        row["ratio"] = round(row["plain_s"] / row["fast_s"], 2)
        same, worst = 0, 0.0
        for x in _random_inputs(model, agree_n, seed=1):
            a, b = _probs(model, x), _probs(fast, x)
            same += int(torch.equal(a.argmax(-1), b.argmax(-1)))
            worst = max(worst, float((a - b).abs().max()))
        row["agreement"] = {"inputs": agree_n, "top1_equal": same, "max_prob_diff": round(worst, 6)}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        del fast
    return rows


def bench_train(name: str, repeats: int, batch: int, args_over: dict) -> dict:
    """Samples/s of a training step (forward, loss, backward, optimiser): eager, torch.compile, and eager with
    the trainer's ``train.channels_last`` and ``train.bf16`` (apart and together)."""
    from affectkit.engine.evaluate import autocast
    from affectkit.models.layout import to_channels_last

    torch.manual_seed(0)
    model = create_model(name, **args_over).train()
    inputs = model.example_inputs(batch)
    labels = torch.zeros(batch, dtype=torch.long)
    row = {"model": name, "batch": batch}
    for mode in ("eager", "compiled", "channels_last", "bf16", "channels_last_bf16"):
        m = copy.deepcopy(model)
        if mode.startswith("channels_last"):
            to_channels_last(m)
        fwd = torch.compile(m) if mode == "compiled" else m
        opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)

        def step():
            with autocast(torch.device("cpu"), mode.endswith("bf16")):
                out = fwd(**inputs)
            loss = torch.nn.functional.cross_entropy(out.logits.float(), labels)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        try:
            t0 = time.perf_counter()
            step()
            first = time.perf_counter() - t0
            runs = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                step()
                runs.append(time.perf_counter() - t0)
            s = statistics.median(runs)
            row[mode] = {"first_step_s": round(first, 3), "step_s": round(s, 4), "samples_per_s": round(batch / s, 3)}
        except Exception as err:  # noqa: BLE001
            row[mode] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
    if "samples_per_s" in row.get("eager", {}) and "samples_per_s" in row.get("compiled", {}):
        row["compiled_over_eager"] = round(row["compiled"]["samples_per_s"] / row["eager"]["samples_per_s"], 2)
    for mode in ("channels_last", "bf16", "channels_last_bf16"):
        if "samples_per_s" in row.get("eager", {}) and "samples_per_s" in row.get(mode, {}):
            row[f"{mode}_over_eager"] = round(row[mode]["samples_per_s"] / row["eager"]["samples_per_s"], 2)
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"CPU: {m['cpu']['model']} ({', '.join(m['cpu']['flags'])}), {m['threads']} threads, torch {m['torch']}, "
             f"{m['date']}.", "",
             "| model | inputs | backend | plain s | fast s | ratio | first call s | top-1 equal | max prob diff |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["inference"]:
        if "skipped" in r:
            continue
        if "error" in r:
            lines.append(f"| {r['model']} | | {r['requested']} | | | | | | {r['error'][:60]} |")
            continue
        shapes = ", ".join(f"{k} {'x'.join(map(str, v[1:]))}" for k, v in r["inputs"].items())
        a = r["agreement"]
        lines.append(f"| {r['model']} | {shapes} | {r['backend']} | {r['plain_s']} | {r['fast_s']} | **{r['ratio']}x** | "
                     f"{r['first_call_seconds']} | {a['top1_equal']}/{a['inputs']} | {a['max_prob_diff']} |")
    if report.get("train"):
        lines += ["", "| model | batch | eager samples/s | compiled samples/s | ratio | first compiled step s |", "|---|---|---|---|---|---|"]
        for r in report["train"]:
            e, c = r.get("eager", {}), r.get("compiled", {})
            lines.append(f"| {r['model']} | {r['batch']} | {e.get('samples_per_s', e.get('error', ''))} | "
                         f"{c.get('samples_per_s', c.get('error', ''))} | {r.get('compiled_over_eager', '')} | {c.get('first_step_s', '')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(list_models()), help="comma-separated registered models (default: all)")
    p.add_argument("--backends", default="auto", help="auto, all, or a comma-separated list of backends")
    p.add_argument("--repeats", type=int, default=5, help="interleaved timed calls per path")
    p.add_argument("--agreement", type=int, default=5, help="random inputs for the agreement check")
    p.add_argument("--train", action="store_true", help="also time training steps, eager vs torch.compile")
    p.add_argument("--train-batch", type=int, default=2)
    p.add_argument("--tiny", action="store_true", help="the registry's tiny sizes (a smoke run, not a measurement)")
    p.add_argument("--out", help="write the JSON here too")
    p.add_argument("--markdown", metavar="JSON", help="print the README table of an earlier --out file and exit")
    args = p.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    backends = list(BACKENDS) if args.backends == "all" else args.backends.split(",")
    report = {"machine": {"cpu": cpu_summary(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "date": time.strftime("%Y-%m-%d"), "load_average": os.getloadavg()},
              "inference": [], "train": []}
    for name in args.models.split(","):
        over = get_model_entry(name).tiny_args if args.tiny else {}
        report["inference"] += bench_inference(name, backends, args.repeats, args.agreement, over)
        if args.train:
            report["train"].append(bench_train(name, max(2, args.repeats // 2), args.train_batch, over))
    report["machine"]["load_average_after"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
