"""Evaluation of a trained checkpoint on a split of its dataset (or another dataset)."""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..config import apply_overrides, config_from_dict
from ..data.datasets import build_index
from ..errors import AffectkitError
from ..registry import reads_media
from . import distributed as ddp
from .checkpoint import find_checkpoint, load_model
from .tasks import build_task


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def unwrap(model):
    return model.module if hasattr(model, "module") else model


def to_device(batch: dict, device: torch.device) -> dict:
    if device.type == "cpu":
        return batch
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


def progress(iterable, desc: str, main: bool = True, total: int | None = None):
    """A tqdm bar on a terminal only (never in logs or CI)."""
    if not main or not sys.stderr.isatty():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)


def run_evaluation(task, model, dataset, cfg, dist: ddp.DistInfo, *, desc: str = "eval") -> dict[str, Any]:
    """Run ``model`` over ``dataset`` (sharded over ranks), return the task's metrics and its per-sample rows."""
    model.eval()
    n = len(dataset)
    shard = list(range(dist.rank, n, dist.world_size))
    loader = DataLoader(torch.utils.data.Subset(dataset, shard), batch_size=cfg.eval.batch_size, shuffle=False,
                        num_workers=cfg.data.num_workers, collate_fn=task.collate())
    rows = []
    with torch.inference_mode():
        for batch in progress(loader, desc, dist.is_main):
            if batch is None:
                continue
            batch = to_device(batch, dist.device)
            with autocast(dist.device, cfg.train.bf16):  # the model only: data stays in float32
                rows += task.eval_batch(unwrap(model), batch)
    gathered = ddp.all_gather_objects(dist, rows)
    rows = sorted({r["index"]: r for part in gathered for r in part}.values(), key=lambda r: r["index"])
    metrics = task.compute_metrics(rows)
    metrics["skipped"] = (n - len(rows)) + len(getattr(dataset, "problems", []))
    return {"metrics": metrics, "predictions": rows}


def evaluate(checkpoint: str | os.PathLike, *, split: str = "test", overrides: list[str] | None = None,
             out_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint (folder, or run folder -> its best) on ``split`` of the data it was trained
    on, or of another dataset given by overrides (``data.path=...``). Writes ``metrics.json``,
    ``predictions.jsonl`` and the task's report files (a confusion matrix for classification) to
    ``out_dir`` (default: a folder beside the checkpoint, ``<run>/eval_<ckpt name>_<split>``,
    e.g. ``runs/x/eval_best_test``, so the checkpoint folder holds only the checkpoint)."""
    model = load_model(checkpoint)
    ckpt_cfg = model.affectkit_config
    cfg = config_from_dict(apply_overrides(ckpt_cfg["config"], overrides), where=f"{checkpoint}/config.json")
    task = build_task(cfg, ckpt_cfg["classes"], ckpt_cfg.get("polarity"))  # config errors before data errors
    index = build_index(cfg.data, media=reads_media(cfg.model.name))
    if index.classes != ckpt_cfg["classes"]:
        raise AffectkitError(f"{cfg.data.path}: classes {index.classes} differ from the checkpoint's {ckpt_cfg['classes']}")
    task.polarity = index.polarity or task.polarity
    records = index.split(split)
    if not records:
        have = sorted({r.split for r in index.records if r.split})
        raise AffectkitError(f"{cfg.data.path}: split {split!r} is empty (splits present: {', '.join(have) or 'none'})")
    dataset = task.dataset(index, split, train=False)
    dist = ddp.DistInfo()
    result = run_evaluation(task, model, dataset, cfg, dist, desc=split)
    metrics = result["metrics"]
    metrics["split"] = split
    if index.group_by:  # e.g. {"actor": ["4"]}: the speakers this split holds
        metrics["groups"] = {index.group_by: index.groups.get(split, [])}
    metrics["checkpoint"] = str(checkpoint)
    skipped = index.problems + getattr(dataset, "problems", [])
    metrics["skipped_files"] = [{"file": a, "problem": b} for a, b in skipped]
    if out_dir:
        out = Path(out_dir)
    else:  # beside the checkpoint, never inside it: runs/x/best -> runs/x/eval_best_test
        ckpt_dir = find_checkpoint(checkpoint).resolve()
        out = ckpt_dir.parent / f"eval_{ckpt_dir.name}_{split}"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "metrics.json", "w", encoding="utf-8") as fh:
        json.dump(metrics, fh, indent=2)
    with open(out / "predictions.jsonl", "w", encoding="utf-8") as fh:
        for r in result["predictions"]:
            fh.write(json.dumps(task.prediction_row(r)) + "\n")
    task.write_report(metrics, result["predictions"], out, title=split)
    metrics["out_dir"] = str(out)
    metrics["summary"] = task.summary(metrics)
    return metrics
