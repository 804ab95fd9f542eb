"""One trainer for every method: the task says what a step and a metric are, the trainer does the rest
(optimiser and schedule, seed, gradient accumulation, bf16 autocast, best-on-validation checkpoints,
resume, JSONL/TensorBoard logs, and DistributedDataParallel when launched by ``torchrun``)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, DistributedSampler

from .. import __version__
from ..config import Config, apply_overrides, config_from_dict, load_config
from ..data.clips import collate_skip_none
from ..data.datasets import build_index
from ..errors import AffectkitError, CheckpointError, ConfigError
from ..registry import create_model
from . import distributed as ddp
from .checkpoint import TRAINER_STATE, load_state, read_checkpoint_config, save_checkpoint
from .feature_cache import TrunkFeatureCache
from .evaluate import autocast, progress, run_evaluation, to_device
from .tasks import build_task

log = logging.getLogger(__name__)
RUN_CONFIG = "config.yaml"  # the run's resolved config (resume reads it)


@dataclass
class TrainResult:
    run_dir: Path
    best_dir: Path
    best_metric: float | None
    best_epoch: int | None
    history: list[dict] = field(default_factory=list)
    test_metrics: dict | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(cfg: Config, params):
    t = cfg.train
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters")
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    raise ConfigError(f"train.optimizer {t.optimizer!r} unknown; expected adam, adamw or sgd")


def build_scheduler(cfg: Config, optimizer, steps_per_epoch: int):
    """A per-optimiser-step LambdaLR: linear warm-up, then constant, cosine or step decay."""
    t = cfg.train
    total = max(1, t.epochs * steps_per_epoch)
    warm = int(t.warmup_epochs * steps_per_epoch)
    if t.scheduler not in ("constant", "cosine", "step"):
        raise ConfigError(f"train.scheduler {t.scheduler!r} unknown; expected constant, cosine or step")

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if t.scheduler == "cosine":
            prog = min(1.0, (step - warm) / max(1, total - warm))
            return 0.5 * (1 + math.cos(math.pi * prog))
        if t.scheduler == "step":
            return t.gamma ** ((step // max(1, steps_per_epoch)) // max(1, t.step_size))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _param_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        if p.dtype.is_floating_point:
            h.update(name.encode())
            h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class Trainer:
    def __init__(self, cfg: Config, *, run_dir: str | os.PathLike | None = None, resume: bool = False):
        self.cfg = cfg
        self.dist = ddp.setup(cfg.train.device)
        self.device = self.dist.device
        self.resume = resume
        name = cfg.output.run_name or f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = Path(run_dir) if run_dir else Path(cfg.output.root) / name
        # every rank must agree on the run folder (timestamps can differ between processes)
        self.run_dir = Path(ddp.broadcast_object(self.dist, str(run_dir)))
        self._tb = None

    # ---------------------------------------------------------------------------------------
    def _loader(self, dataset, *, shuffle: bool, batch_size: int, drop_last: bool = False) -> DataLoader:
        sampler = None
        if self.dist.enabled:
            sampler = DistributedSampler(dataset, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                         shuffle=shuffle, seed=self.cfg.train.seed, drop_last=drop_last)
        gen = torch.Generator()
        gen.manual_seed(self.cfg.train.seed + 1000 * self.dist.rank)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                          num_workers=self.cfg.data.num_workers, collate_fn=collate_skip_none, drop_last=drop_last,
                          generator=gen, persistent_workers=self.cfg.data.num_workers > 0)

    def _log(self, record: dict) -> None:
        if not self.dist.is_main:
            return
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step"):
                    self._tb.add_scalar(k.replace("_", "/", 1), v, record.get("epoch", 0))
            self._tb.flush()

    def _open_tensorboard(self) -> None:
        if not (self.dist.is_main and self.cfg.output.tensorboard):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard is an optional extra
            log.info("tensorboard not installed; logging to metrics.jsonl only")
            return
        self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))

    # ---------------------------------------------------------------------------------------
    def evaluate_split(self, task, model, dataset, *, desc: str = "eval") -> dict[str, Any]:
        return run_evaluation(task, model, dataset, self.cfg, self.dist, desc=desc)

    # ---------------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        cfg, dist = self.cfg, self.dist
        seed_everything(cfg.train.seed)
        index = build_index(cfg.data)
        for what, why in index.problems:
            log.warning("dataset: skipping %s: %s", what, why)
        task = build_task(cfg, index.classes, index.polarity)
        cache_features = cfg.train.cache_trunk_features
        # a cache of trunk outputs is only valid when the input never changes: no augmentation
        train_set = task.dataset(index, "train", train=not cache_features)
        if len(train_set) == 0:
            raise AffectkitError(f"{cfg.data.path}: the train split is empty (subsets map: {cfg.data.subsets})")
        val_set = task.dataset(index, "val", train=False) if index.split("val") else None
        if val_set is None and dist.is_main:
            log.warning("no validation split: the last epoch is kept as 'best' (set data.val_fraction to carve one out of train; the test split is never used for selection)")
        model_args = task.model_args()
        model = create_model(cfg.model.name, **model_args).to(self.device)
        if dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        ddp.barrier(dist)

        problems = [{"file": a, "problem": b} for a, b in index.problems + train_set.problems + (val_set.problems if val_set else [])]
        ckpt_config = {
            "task": cfg.task,
            "model": {"name": cfg.model.name, "args": model_args},
            "classes": index.classes,
            "polarity": index.polarity,
            "input": cfg.to_dict()["input"],
            "config": cfg.to_dict(),
        }
        optimizer = build_optimizer(cfg, model.parameters())
        batches = math.ceil(len(train_set) / (cfg.train.batch_size * dist.world_size))
        if cfg.train.max_steps_per_epoch:
            batches = min(batches, cfg.train.max_steps_per_epoch)
        opt_steps_per_epoch = max(1, batches // max(1, cfg.train.grad_accum))
        scheduler = build_scheduler(cfg, optimizer, opt_steps_per_epoch)

        start_epoch, global_step = 0, 0
        best_metric, best_epoch, history = None, None, []
        if self.resume:
            state = self._load_resume_state(model)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start_epoch, global_step = state["epoch"], state["global_step"]
            best_metric, best_epoch, history = state["best_metric"], state["best_epoch"], state["history"]
            _set_rng_state(state.get("rng"))
            if dist.is_main:
                log.info("resuming %s after epoch %d", self.run_dir, start_epoch)
                with open(self.run_dir / "metrics.jsonl", "w", encoding="utf-8") as fh:
                    fh.writelines(json.dumps(r) + "\n" for r in history)
        if dist.is_main:
            with open(self.run_dir / RUN_CONFIG, "w", encoding="utf-8") as fh:
                yaml.safe_dump(ckpt_config["config"], fh, sort_keys=False)
            if problems:
                with open(self.run_dir / "skipped.jsonl", "w", encoding="utf-8") as fh:
                    for p in problems:
                        fh.write(json.dumps(p) + "\n")
        self._open_tensorboard()

        train_model = model
        if dist.enabled:
            train_model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        loader = self._loader(train_set, shuffle=True, batch_size=cfg.train.batch_size)
        cache = None
        if cache_features:
            if dist.is_main:
                log.warning("train.cache_trunk_features: training on fixed centre snippets without augmentation, trunk in eval mode")
            cache = TrunkFeatureCache(model, self._loader(train_set, shuffle=False, batch_size=cfg.train.batch_size), self.device)
            cache.build(main=dist.is_main)
            cache_gen = torch.Generator()
            cache_gen.manual_seed(cfg.train.seed + 1000 * dist.rank)
        data_meta = {"source": index.source, "train": len(train_set), "val": len(val_set) if val_set else 0}
        if index.group_by:  # speaker-independent splits: which groups (e.g. actors) each split holds
            data_meta.update(group_by=index.group_by, groups=index.groups)
        meta_base = {"affectkit_version": __version__, "torch_version": torch.__version__,
                     "data": data_meta,
                     "seed": cfg.train.seed, "world_size": dist.world_size}

        for epoch in range(start_epoch, cfg.train.epochs):
            if isinstance(loader.sampler, DistributedSampler):
                loader.sampler.set_epoch(epoch)
            torch.manual_seed(cfg.train.seed + epoch * 7919 + dist.rank)
            train_model.train()
            t0, loss_sum, seen, correct = time.time(), 0.0, 0, 0
            optimizer.zero_grad(set_to_none=True)
            accum = 0
            if cache is not None:
                model.trunk.eval()
                cache_gen.manual_seed(cfg.train.seed + 1000 * dist.rank + epoch)
                batch_iter = cache.batches(cfg.train.batch_size, cache_gen)
            else:
                batch_iter = loader
            for step, batch in enumerate(progress(batch_iter, f"epoch {epoch + 1}/{cfg.train.epochs}", dist.is_main, total=batches)):
                if cfg.train.max_steps_per_epoch and step >= cfg.train.max_steps_per_epoch:
                    break
                if batch is None:
                    continue
                batch = to_device(batch, self.device)
                sync = (accum + 1) % cfg.train.grad_accum == 0
                ctx = train_model.no_sync() if (dist.enabled and not sync) else contextlib.nullcontext()
                with ctx:
                    with autocast(self.device, cfg.train.bf16):
                        loss, out = task.loss(train_model, batch)
                    if not torch.isfinite(loss):
                        raise AffectkitError(f"loss is {loss.item()} at epoch {epoch + 1} step {step}; lower train.lr or check the data")
                    (loss / cfg.train.grad_accum).backward()
                accum += 1
                if sync:
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    global_step += 1
                bs = len(batch["label"])
                loss_sum += float(loss.detach()) * bs
                seen += bs
                correct += int((out.logits.argmax(-1) == batch["label"]).sum())
            if accum % cfg.train.grad_accum:  # flush a partial accumulation at the end of the epoch
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                global_step += 1
            if dist.enabled:
                # DDP syncs gradients, not BatchNorm statistics updated by the last forward of each rank:
                # take rank 0's, so that evaluation shards and the checkpoint see one model
                for buf in model.buffers():
                    torch.distributed.broadcast(buf, src=0)
            tot = torch.tensor([loss_sum, seen, correct], dtype=torch.float64)
            if dist.enabled:
                torch.distributed.all_reduce(tot)
            record = {"epoch": epoch + 1, "step": global_step, "lr": optimizer.param_groups[0]["lr"],
                      "train_loss": float(tot[0] / max(1, tot[1])), "train_accuracy": float(tot[2] / max(1, tot[1])),
                      "train_samples": int(tot[1]), "epoch_seconds": round(time.time() - t0, 2),
                      "train_samples_per_second": round(float(tot[1]) / max(1e-9, time.time() - t0), 3)}
            improved = True
            if val_set is not None:
                res = self.evaluate_split(task, model, val_set, desc="val")
                vm = res["metrics"]
                for k in ("accuracy", "macro_f1", "weighted_f1", "sentiment_accuracy"):
                    if k in vm:
                        record[f"val_{k}"] = vm[k]
                if cfg.train.select_metric not in vm:
                    raise ConfigError(f"train.select_metric {cfg.train.select_metric!r} is not a metric; choose from {', '.join(k for k, v in vm.items() if isinstance(v, float))}")
                score = vm[cfg.train.select_metric]
                improved = best_metric is None or score > best_metric
                if improved:
                    best_metric, best_epoch = score, epoch + 1
            else:
                best_epoch = epoch + 1
            history.append(record)
            if dist.is_main:
                meta = {**meta_base, "epoch": epoch + 1, "global_step": global_step, "metrics": record,
                        "selected_on": "val" if val_set is not None else "last epoch (no validation split)",
                        "select_metric": cfg.train.select_metric, "best_metric": best_metric, "best_epoch": best_epoch}
                state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch + 1,
                         "global_step": global_step, "best_metric": best_metric, "best_epoch": best_epoch,
                         "history": history, "rng": _get_rng_state()}
                if improved:
                    save_checkpoint(self.run_dir / "best", model, ckpt_config, {**meta, "split": "val"})
                save_checkpoint(self.run_dir / "last", model, ckpt_config, meta, trainer_state=state)
            self._log(record)  # after the checkpoint: a resumed run never logs an epoch twice
            ddp.barrier(dist)

        digests = ddp.all_gather_objects(dist, _param_digest(model))
        result = TrainResult(self.run_dir, self.run_dir / "best", best_metric, best_epoch, history)
        if dist.is_main:
            summary = {"run_dir": str(self.run_dir), "best_epoch": best_epoch, "best_metric": best_metric,
                       "select_metric": cfg.train.select_metric, "world_size": dist.world_size,
                       "rank_weight_digests": digests, "ranks_in_sync": len(set(digests)) == 1,
                       "skipped_files": len(problems)}
            with open(self.run_dir / "train_summary.json", "w", encoding="utf-8") as fh:
                json.dump(summary, fh, indent=2)
        if self._tb is not None:
            self._tb.close()
        return result

    def _load_resume_state(self, model) -> dict:
        last = self.run_dir / "last"
        if not (last / TRAINER_STATE).is_file():
            raise CheckpointError(f"{last}: no trainer state to resume from (was the run started with this kit?)")
        ckpt, _, _ = read_checkpoint_config(last)
        model.load_state_dict(load_state(ckpt))
        return torch.load(last / TRAINER_STATE, map_location="cpu", weights_only=False)


def _get_rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict | None) -> None:
    if not state:
        return
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def train(config: Config | str | os.PathLike | None = None, overrides: list[str] | None = None, *,
          resume: str | os.PathLike | None = None) -> TrainResult:
    """Train from a config (a path, a shipped config name, or a :class:`Config`).

    ``resume``: a run folder; training continues after its last completed epoch with the run's own
    config (``overrides`` still apply, e.g. ``train.epochs`` to train longer).
    """
    if resume is not None:
        run_dir = Path(resume)
        cfg_file = run_dir / RUN_CONFIG
        if not cfg_file.is_file():
            raise CheckpointError(f"{run_dir}: not a run folder to resume (no {RUN_CONFIG})")
        data = apply_overrides(yaml.safe_load(cfg_file.read_text(encoding="utf-8")), overrides)
        cfg = config_from_dict(data, where=str(cfg_file))
        return Trainer(cfg, run_dir=run_dir, resume=(run_dir / "last" / TRAINER_STATE).is_file()).fit()
    if config is None:
        raise ConfigError("train needs a config (or resume=<run folder>)")
    cfg = config if isinstance(config, Config) else load_config(config, overrides)
    return Trainer(cfg).fit()
