"""Evaluation of a trained checkpoint on a split of its dataset (or another dataset)."""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import apply_overrides, config_from_dict
from ..data.clips import collate_skip_none
from ..data.datasets import build_index
from ..errors import AffectkitError
from ..metrics import plot_confusion_matrix
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
    """Run ``model`` over ``dataset`` (sharded over ranks), return metrics and per-video outputs."""
    model.eval()
    n = len(dataset)
    shard = list(range(dist.rank, n, dist.world_size))
    loader = DataLoader(torch.utils.data.Subset(dataset, shard), batch_size=cfg.eval.batch_size, shuffle=False,
                        num_workers=cfg.data.num_workers, collate_fn=collate_skip_none)
    rows = []
    with torch.inference_mode():
        for batch in progress(loader, desc, dist.is_main):
            if batch is None:
                continue
            batch = to_device(batch, dist.device)
            with autocast(dist.device, cfg.train.bf16):  # the model only: data stays in float32
                out = task.predict(unwrap(model), batch)
            for i in range(len(batch["label"])):
                rows.append({"index": int(batch["index"][i]), "video_id": batch["video_id"][i],
                             "label": int(batch["label"][i]), "probs": [round(float(p), 6) for p in out["probs"][i]]})
    gathered = ddp.all_gather_objects(dist, rows)
    rows = sorted({r["index"]: r for part in gathered for r in part}.values(), key=lambda r: r["index"])
    y_true = [r["label"] for r in rows]
    y_pred = [int(np.argmax(r["probs"])) for r in rows]
    metrics = task.metrics(y_true, y_pred)
    metrics["skipped"] = (n - len(rows)) + len(getattr(dataset, "problems", []))
    return {"metrics": metrics, "predictions": rows}


def evaluate(checkpoint: str | os.PathLike, *, split: str = "test", overrides: list[str] | None = None,
             out_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint (folder, or run folder -> its best) on ``split`` of the data it was trained
    on, or of another dataset given by overrides (``data.path=...``). Writes ``metrics.json``,
    ``predictions.jsonl`` and ``confusion_matrix.png`` to ``out_dir`` (default ``<ckpt>/eval_<split>``)."""
    model = load_model(checkpoint)
    ckpt_cfg = model.affectkit_config
    cfg = config_from_dict(apply_overrides(ckpt_cfg["config"], overrides), where=f"{checkpoint}/config.json")
    index = build_index(cfg.data)
    if index.classes != ckpt_cfg["classes"]:
        raise AffectkitError(f"{cfg.data.path}: classes {index.classes} differ from the checkpoint's {ckpt_cfg['classes']}")
    records = index.split(split)
    if not records:
        have = sorted({r.split for r in index.records if r.split})
        raise AffectkitError(f"{cfg.data.path}: split {split!r} is empty (splits present: {', '.join(have) or 'none'})")
    task = build_task(cfg, index.classes, index.polarity)
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
    out = Path(out_dir) if out_dir else find_checkpoint(checkpoint) / f"eval_{split}"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "metrics.json", "w", encoding="utf-8") as fh:
        json.dump(metrics, fh, indent=2)
    with open(out / "predictions.jsonl", "w", encoding="utf-8") as fh:
        for r in result["predictions"]:
            fh.write(json.dumps({**r, "label_name": index.classes[r["label"]], "predicted": index.classes[int(np.argmax(r["probs"]))]}) + "\n")
    plot_confusion_matrix(metrics["confusion_matrix"], index.classes, str(out / "confusion_matrix.png"),
                          title=f"{split}: accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f}")
    metrics["out_dir"] = str(out)
    return metrics
