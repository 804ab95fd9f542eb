"""MART on the synthetic affective video set with subtitles: MBT alone against MBT pretrained with MART.

    affectkit data synth --out /tmp/mbt_synth --workers 2
    python benchmarks/mart_synth_eval.py --data /tmp/mbt_synth/synth.json --out /tmp/mart_runs --seeds 0 1 2

Variants, all with the same backbone (``mbt/mbt_synth.yaml``: video + audio at test time), the same data and
seeds, and the same total budget of ``--pretrain-epochs + --finetune-epochs`` epochs:

- ``mbt``: MBT alone, ``mbt/mbt_synth.yaml`` trained for the whole budget (task ``classify``);
- ``mart``: MART at the paper's defaults (``models/mart.py``): phase 1 ``mart/mart_synth_pretrain.yaml`` (task
  ``mart_pretrain``: lexicon-verified words E3, Eq. 4/5 TACL, Eq. 7 masking at the input, pixel + KL recovery)
  for ``--pretrain-epochs``, then phase 2 ``mart/mart_synth_finetune.yaml`` (task ``classify``,
  ``train.init_from`` the phase-1 run's best checkpoint) for ``--finetune-epochs``;
- ``mart_noverify``: the same with ``verify_level: 0`` (every emotional word kept, no E1/E2/E3 check);
- ``mart_code``: the same with the released code's switches: CPC contrast with its sign
  (``tacl_mode: code``, ``tacl_code_sign: released``, ``tacl_aux_heads``), the code's ranking and output-side
  masking (``mask_rank: code``, ``mask_where: output``, ``mask_drop_prob: 0.5``), pixel recovery only, no
  verification, and the optimiser scope bug (``train_plugin: false``: MART's modules never train).

Each phase keeps its best epoch on the validation split (accuracy); the test split is read once, by
``affectkit.evaluate`` on phase 2's best checkpoint (accuracy, macro and weighted F1). Prints one JSON document
(also ``<out>/mart_synth_eval.json``; ``<out>/mart_synth_eval.partial.json`` after each run).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mbt_synth_eval import summarise  # noqa: E402

CODE_SWITCHES = ["tacl_mode=code", "tacl_code_sign=released", "tacl_aux_heads=true", "mask_rank=code",
                 "mask_where=output", "mask_drop_prob=0.5", "recover=pix", "verify_level=0", "train_plugin=false"]
VARIANTS = {
    "mbt": None,
    "mart": [],
    "mart_noverify": ["verify_level=0"],
    "mart_code": CODE_SWITCHES,
}


def _train(config: str, overrides: list[str]):
    from affectkit import train

    return train(config, overrides)


def pretrain_diagnostics(run_dir) -> dict:
    """Per pretraining epoch, from the run's metrics.jsonl: the verified emotional words per step
    (``train_verified_words``), the TACL loss and the masked share of the video tokens."""
    path = Path(run_dir) / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    keys = {"verified_words": "train_verified_words", "loss_tacl": "train_loss_tacl", "mask_ratio": "train_mask_ratio",
            "loss_pix": "train_loss_pix", "loss_kl": "train_loss_kl"}
    return {name: [round(r[key], 4) for r in rows if key in r] for name, key in keys.items()}


def run_one(variant: str, seed: int, args) -> dict:
    from affectkit import evaluate

    name = f"{variant}_s{seed}"
    common = [f"data.path={args.data}", f"output.root={args.out}", "output.tensorboard=false", f"train.seed={seed}",
              f"data.num_workers={args.workers}", *args.set]
    t0 = time.perf_counter()
    budget = args.pretrain_epochs + args.finetune_epochs
    switches = VARIANTS[variant]
    phases = []
    if switches is None:
        res = _train("mbt/mbt_synth.yaml", [*common, f"output.run_name={name}", f"train.epochs={budget}"])
        phases.append({"phase": "classify", "epochs": budget, "best_epoch": res.best_epoch, "val_accuracy": res.best_metric})
    else:
        model_args = [f"model.args.{s}" for s in switches]
        pre = _train("mart/mart_synth_pretrain.yaml", [*common, *model_args, f"output.run_name={name}_pretrain",
                                                       f"train.epochs={args.pretrain_epochs}"])
        phases.append({"phase": "mart_pretrain", "epochs": args.pretrain_epochs, "best_epoch": pre.best_epoch,
                       "val_accuracy": pre.best_metric, "per_epoch": pretrain_diagnostics(pre.run_dir)})
        res = _train("mart/mart_synth_finetune.yaml", [*common, *model_args, f"output.run_name={name}",
                                                       f"train.epochs={args.finetune_epochs}",
                                                       f"train.init_from={pre.best_dir}"])
        phases.append({"phase": "finetune", "epochs": args.finetune_epochs, "best_epoch": res.best_epoch,
                       "val_accuracy": res.best_metric})
    train_s = time.perf_counter() - t0
    test = evaluate(res.best_dir, split="test", out_dir=Path(args.out) / name / "test_eval")
    out = {"variant": variant, "seed": seed, "switches": switches, "phases": phases, "train_seconds": round(train_s, 1),
           "val_accuracy": res.best_metric, "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"],
           "test_weighted_f1": test["weighted_f1"], "test_samples": test.get("num_samples")}
    print(json.dumps({k: out[k] for k in ("variant", "seed", "val_accuracy", "test_accuracy", "test_weighted_f1",
                                          "train_seconds")}), flush=True)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="synth.json of `affectkit data synth` (with subtitles)")
    ap.add_argument("--out", default="/tmp/mart_runs")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--pretrain-epochs", type=int, default=6)
    ap.add_argument("--finetune-epochs", type=int, default=6)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides for every run and phase")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    args.data = str(Path(args.data).resolve())
    import torch

    from affectkit.deploy.accel import cpu_model

    Path(args.out).mkdir(parents=True, exist_ok=True)
    runs = []
    for s in args.seeds:
        for v in args.variants:
            runs.append(run_one(v, s, args))
            (Path(args.out) / "mart_synth_eval.partial.json").write_text(json.dumps(runs, indent=2))
    report = {"data": args.data, "pretrain_epochs": args.pretrain_epochs, "finetune_epochs": args.finetune_epochs,
              "seeds": args.seeds, "set": args.set, "cpu": cpu_model(), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "summary": summarise(runs), "runs": runs}
    (Path(args.out) / "mart_synth_eval.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
