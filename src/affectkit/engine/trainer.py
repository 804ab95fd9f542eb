"""One trainer for every method. The task (:mod:`affectkit.engine.tasks`) says what a dataset, a
training step, an evaluation and a metric are; the trainer owns only the loop: optimiser and
schedule, seeds, gradient accumulation and clipping, bf16 autocast, best-on-validation checkpoints,
exact resume, JSONL/TensorBoard logs, and DistributedDataParallel when launched by ``torchrun``.

``Trainer.fit`` in order: :meth:`Trainer._prepare` (data, task, model, optimiser, schedule, resume
state), then per epoch :meth:`Trainer._train_epoch`, :meth:`Trainer._validate`,
:meth:`Trainer._save_epoch`, and at the end :meth:`Trainer._finish`.

Determinism: every epoch reseeds Python, NumPy, torch and the data loader's generator from
(seed, epoch, rank), so an epoch's shuffle, augmentation and dropout do not depend on what ran before
it in the same process, and a run resumed after a kill replays the interrupted epoch exactly.
"""
from __future__ import annotations

import contextlib
import fnmatch
import gc
import hashlib
import inspect
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
from ..data.datasets import build_index
from ..errors import AffectkitError, CheckpointError, ConfigError
from ..models.layout import to_channels_last
from ..registry import create_model, model_config, reads_media
from . import distributed as ddp
from .checkpoint import (TRAINER_STATE, capture_rng_state, format_load_report, load_state, load_trainer_state,
                         load_weights_into, read_checkpoint_config, recover_checkpoint_dir, save_checkpoint)
from .evaluate import autocast, progress, run_evaluation, to_device
from .feature_cache import FeatureCache
from .tasks import Task, build_task

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
    select_metric: str | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of one epoch on one rank (independent of what ran before it)."""
    return (seed * 1_000_003 + epoch * 7919 + rank * 104_729) % 2**63


# ----------------------------------------------------------------------------------- optimiser
def _is_no_decay(name: str, p: torch.nn.Parameter) -> bool:
    """Biases and the weights of norm layers (1-D parameters), as timm filters them."""
    return p.ndim <= 1 or name.endswith(".bias")


def parameter_groups(cfg: Config, model: torch.nn.Module) -> list[dict]:
    """Trainable parameters in groups by learning-rate multiplier (``train.lr_mult``: the longest
    matching module prefix wins) and by weight decay (``train.weight_decay_norm_bias: false`` puts
    biases and norm weights in a group without decay)."""
    t = cfg.train
    prefixes = sorted(t.lr_mult, key=len, reverse=True)
    used: set[str] = set()
    groups: dict[tuple[float, float], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        pre = next((q for q in prefixes if name == q or name.startswith(q.rstrip(".") + ".") or fnmatch.fnmatch(name, q)), None)
        mult = 1.0 if pre is None else float(t.lr_mult[pre])
        if pre is not None:
            used.add(pre)
        wd = 0.0 if (not t.weight_decay_norm_bias and _is_no_decay(name, p)) else t.weight_decay
        g = groups.setdefault((mult, wd), {"params": [], "names": [], "lr": t.lr * mult, "weight_decay": wd,
                                           "lr_mult": mult})
        g["params"].append(p)
        g["names"].append(name)
    unused = [pre for pre in t.lr_mult if pre not in used]
    if unused:
        raise ConfigError(f"train.lr_mult: no trainable parameter is under {', '.join(unused)} "
                          f"(top-level modules: {', '.join(sorted({n.split('.')[0] for n, _ in model.named_parameters()}))})")
    if not groups:
        raise ConfigError("the model has no trainable parameters")
    return list(groups.values())


def _fusable(groups) -> bool:
    """Whether PyTorch's fused optimiser kernels take these parameters: floating point, all on one CPU or
    CUDA device. The fused step is the same update to float rounding; for TSL-Net's 91 M parameters it is
    about 5x cheaper on a 2-core CPU than the per-tensor loop (benchmarks/bench_tsl.py)."""
    params = [p for g in groups for p in g["params"]]
    devices = {p.device for p in params}
    return bool(params) and len(devices) == 1 and next(iter(devices)).type in ("cpu", "cuda") and all(
        p.is_floating_point() and p.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64) for p in params)


def build_optimizer(cfg: Config, model_or_params):
    t = cfg.train
    if isinstance(model_or_params, torch.nn.Module):
        groups = parameter_groups(cfg, model_or_params)
        for g in groups:
            g.pop("names")
    else:  # an iterable of parameters: one group
        params = [p for p in model_or_params if p.requires_grad]
        if not params:
            raise ConfigError("the model has no trainable parameters")
        groups = [{"params": params, "lr": t.lr, "weight_decay": t.weight_decay, "lr_mult": 1.0}]
    extra = {"fused": True} if t.fused_optimizer and _fusable(groups) else {}
    if t.optimizer == "adam":
        return torch.optim.Adam(groups, lr=t.lr, weight_decay=t.weight_decay, **extra)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=t.lr, weight_decay=t.weight_decay, **extra)
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, nesterov=t.nesterov,
                               **extra)
    raise ConfigError(f"train.optimizer {t.optimizer!r} unknown; expected adam, adamw or sgd")


def optimizer_steps_per_epoch(batches: int, grad_accum: int) -> int:
    """Optimiser steps of an epoch of ``batches`` micro-batches: a partial window at the end steps too."""
    return max(1, math.ceil(batches / max(1, grad_accum)))


def build_scheduler(cfg: Config, optimizer, steps_per_epoch: int):
    """A per-optimiser-step LambdaLR over exactly ``epochs * steps_per_epoch`` steps: linear warm-up,
    then constant, cosine (its factor reaches 0 after the last step) or step decay (every ``step_size`` epochs)."""
    t = cfg.train
    total = max(1, t.epochs * steps_per_epoch)
    warm = int(round(t.warmup_epochs * steps_per_epoch))
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


def param_digest(model: torch.nn.Module) -> str:
    """A short hash of every floating-point tensor of the state dict (weights and buffers)."""
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

    # ------------------------------------------------------------------------------ the loop
    def fit(self) -> TrainResult:
        self._prepare()
        for epoch in range(self.start_epoch, self.cfg.train.epochs):
            record = self._train_epoch(epoch)
            improved = self._validate(record)
            self.history.append(record)
            self._save_epoch(epoch, record, improved)
            self._log(record)  # after the checkpoint: a resumed run never logs an epoch twice
            ddp.barrier(self.dist)
        return self._finish()

    # ------------------------------------------------------------------------------ set-up
    def _prepare(self) -> None:
        cfg, dist = self.cfg, self.dist
        seed_everything(cfg.train.seed)
        model_config(cfg.model.name, **cfg.model.args)  # an unknown model or option: reported before any data error
        index = build_index(cfg.data, media=reads_media(cfg.model.name))
        for what, why in index.problems:
            log.warning("dataset: skipping %s: %s", what, why)
        self.task: Task = build_task(cfg, index.classes, index.polarity)
        self.cache_features = cfg.train.cache_trunk_features
        # a feature cache is only valid when the input never changes: no augmentation
        self.train_set = self.task.dataset(index, "train", train=not self.cache_features)
        if len(self.train_set) == 0:
            raise AffectkitError(f"{cfg.data.path}: the train split is empty (subsets map: {cfg.data.subsets})")
        self.val_set = self.task.dataset(index, "val", train=False) if index.split("val") else None
        if self.val_set is None and dist.is_main:
            log.warning("no validation split: the last epoch is kept as 'best' (set data.val_fraction to carve one out of train; the test split is never used for selection)")
        model_args = self.task.model_args()
        self.model = create_model(cfg.model.name, **model_args).to(self.device)
        if cfg.train.channels_last:
            to_channels_last(self.model)
        if dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        ddp.barrier(dist)
        self.problems = [{"file": a, "problem": b} for a, b in
                         index.problems + self.train_set.problems + (self.val_set.problems if self.val_set else [])]
        self.ckpt_config = {"task": cfg.task, "model": {"name": cfg.model.name, "args": model_args},
                            "classes": index.classes, "polarity": index.polarity,
                            "input": cfg.to_dict()["input"], "config": cfg.to_dict()}
        data_meta = {"source": index.source, "train": len(self.train_set), "val": len(self.val_set) if self.val_set else 0}
        if index.group_by:  # speaker-independent splits: which groups (e.g. actors) each split holds
            data_meta.update(group_by=index.group_by, groups=index.groups)
        self.meta_base = {"affectkit_version": __version__, "torch_version": torch.__version__, "data": data_meta,
                          "seed": cfg.train.seed, "world_size": dist.world_size}

        self.start_epoch, self.global_step = 0, 0
        self.best_metric, self.best_epoch, self.history = None, None, []
        self.best_tie = None  # the best epoch's tie-break value (train.select_tie_break nll: its val NLL)
        state = self._load_resume_state() if self.resume else None
        if state is None and cfg.train.init_from:
            self._init_from(cfg.train.init_from)

        self.optimizer = build_optimizer(cfg, self.model)
        self._build_batches()
        self.steps_per_epoch = optimizer_steps_per_epoch(self.batches_per_epoch, cfg.train.grad_accum)
        self.scheduler = build_scheduler(cfg, self.optimizer, self.steps_per_epoch)
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.start_epoch, self.global_step = state["epoch"], state["global_step"]
            self.best_metric, self.best_epoch, self.history = state["best_metric"], state["best_epoch"], state["history"]
            self.best_tie = state.get("best_tie")  # absent in states written before select_tie_break
            if dist.is_main:
                log.info("resuming %s after epoch %d", self.run_dir, self.start_epoch)
                with open(self.run_dir / "metrics.jsonl", "w", encoding="utf-8") as fh:
                    fh.writelines(json.dumps(r) + "\n" for r in self.history)
        if dist.is_main:
            with open(self.run_dir / RUN_CONFIG, "w", encoding="utf-8") as fh:
                yaml.safe_dump(self.ckpt_config["config"], fh, sort_keys=False)
            if self.problems:
                with open(self.run_dir / "skipped.jsonl", "w", encoding="utf-8") as fh:
                    fh.writelines(json.dumps(p) + "\n" for p in self.problems)
        self._open_tensorboard()
        self.train_model = self.model
        if dist.enabled:
            o = cfg.train.ddp
            kwargs = {"find_unused_parameters": o.find_unused_parameters, "static_graph": o.static_graph}
            if not o.broadcast_buffers:  # the default syncs them; newer torch renames the option
                params = inspect.signature(torch.nn.parallel.DistributedDataParallel).parameters
                kwargs["forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"] = False
            self.train_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None, **kwargs)
        if cfg.train.compile:  # the first steps compile (seconds to minutes); evaluation runs the plain model
            self.train_model = torch.compile(self.train_model)

    def _build_batches(self) -> None:
        """The training batches: a data loader, or the feature cache; and how many micro-batches an
        epoch has (the same on every rank)."""
        cfg, dist = self.cfg, self.dist
        self.loader_gen = torch.Generator()
        self.loader = self._loader(self.train_set, shuffle=True, generator=self.loader_gen)
        self.cache = None
        if self.cache_features:
            if dist.is_main:
                log.warning("train.cache_trunk_features: training on fixed centre snippets without augmentation, frozen modules in eval mode")
            self.cache = FeatureCache(self.model, self._loader(self.train_set, shuffle=False, generator=torch.Generator()), self.device)
            self.cache.build(main=dist.is_main)
            batches = self.cache.num_batches(cfg.train.batch_size)
        else:
            batches = len(self.loader)  # DistributedSampler pads: equal on every rank
        if dist.enabled:  # skipped samples can make the caches of the ranks differ in length
            batches = min(ddp.all_gather_objects(dist, batches))
        if cfg.train.max_steps_per_epoch:
            batches = min(batches, cfg.train.max_steps_per_epoch)
        self.batches_per_epoch = max(1, batches)

    def _loader(self, dataset, *, shuffle: bool, generator: torch.Generator) -> DataLoader:
        sampler = None
        if self.dist.enabled:
            sampler = DistributedSampler(dataset, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                         shuffle=shuffle, seed=self.cfg.train.seed)
        # workers are not persistent: each epoch starts them from the reseeded generator
        return DataLoader(dataset, batch_size=self.cfg.train.batch_size, shuffle=shuffle and sampler is None,
                          sampler=sampler, num_workers=self.cfg.data.num_workers, collate_fn=self.task.collate(),
                          generator=generator)

    def _init_from(self, source: str) -> None:
        report = load_weights_into(self.model, source, strict=self.cfg.train.init_strict,
                                   exclude=list(self.cfg.train.init_exclude) or None)
        if self.dist.is_main:
            log.info("initialised from %s\n%s", source, format_load_report(report))
            with open(self.run_dir / "init_report.json", "w", encoding="utf-8") as fh:
                json.dump(report, fh, indent=2, default=str)

    def _load_resume_state(self) -> dict:
        last = self.run_dir / "last"
        recover_checkpoint_dir(last)  # a kill between the two renames of a checkpoint write
        if not (last / TRAINER_STATE).is_file():
            raise CheckpointError(f"{last}: no trainer state to resume from ({TRAINER_STATE} is missing); "
                                  f"start a new run instead, or use train.init_from={last} to start from its weights")
        ckpt, _, _ = read_checkpoint_config(last)
        self.model.load_state_dict(load_state(ckpt))
        return load_trainer_state(last)

    # ------------------------------------------------------------------------------ one epoch
    def _seed_epoch(self, epoch: int) -> None:
        cfg, dist = self.cfg, self.dist
        seed = epoch_seed(cfg.train.seed, epoch, dist.rank)
        seed_everything(seed)
        self.loader_gen.manual_seed(seed)
        if isinstance(self.loader.sampler, DistributedSampler):
            self.loader.sampler.set_epoch(epoch)

    def _batches(self, epoch: int):
        if self.cache is None:
            return iter(self.loader)
        gen = torch.Generator()
        gen.manual_seed(epoch_seed(self.cfg.train.seed, epoch, self.dist.rank))
        return self.cache.batches(self.cfg.train.batch_size, gen)

    def _train_epoch(self, epoch: int) -> dict[str, Any]:
        cfg, dist = self.cfg, self.dist
        ga, n = cfg.train.grad_accum, self.batches_per_epoch
        self._seed_epoch(epoch)
        self.task.start_epoch(epoch, cfg.train.epochs)
        self.train_model.train()
        if self.cache is not None:
            self.cache.freeze()
        t0 = time.time()
        sums: dict[str, float] = {}
        seen = window = 0  # samples seen; micro-batches backpropagated in the current accumulation window
        self.optimizer.zero_grad(set_to_none=True)
        batches = self._batches(epoch)
        for step in progress(range(n), f"epoch {epoch + 1}/{cfg.train.epochs}", dist.is_main, total=n):
            batch = next(batches, None)
            boundary = (step + 1) % ga == 0 or step + 1 == n  # every rank has the same n: same boundaries
            usable = ddp.all_true(dist, batch is not None)  # all ranks skip a batch together
            if usable:
                out = self._micro_step(batch, sync=boundary, epoch=epoch, step=step)
                window += 1
                seen += out.batch_size
                for k, v in out.logs.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * out.batch_size
            elif dist.enabled and batch is not None:
                log.warning("rank %d: epoch %d step %d skipped (another rank had no usable sample in its batch)", dist.rank, epoch + 1, step)
            if boundary and window:
                if dist.enabled and not usable:
                    # the window's last batch was skipped everywhere: its gradients were never all-reduced
                    ddp.average_gradients(dist, self.model.parameters())
                self._optimizer_step()
                window = 0
        self._sync_buffers()
        self._check_ranks_agree(f"after epoch {epoch + 1}")
        totals = ddp.all_gather_objects(dist, (sums, seen))
        all_seen = sum(s for _, s in totals)
        logs = {k: sum(d.get(k, 0.0) for d, _ in totals) / max(1, all_seen) for k in sorted({k for d, _ in totals for k in d})}
        seconds = time.time() - t0
        record = {"epoch": epoch + 1, "step": self.global_step, "lr": self.optimizer.param_groups[0]["lr"]}
        record.update({f"train_{k}": v for k, v in logs.items()})
        record.update({"train_samples": int(all_seen), "epoch_seconds": round(seconds, 2),
                       "train_samples_per_second": round(all_seen / max(1e-9, seconds), 3)})
        return record

    def _micro_step(self, batch: dict, *, sync: bool, epoch: int, step: int):
        cfg, dist = self.cfg, self.dist
        batch = to_device(batch, self.device)
        # DDP all-reduces in the backward of the window's last micro-batch only
        ctx = self.train_model.no_sync() if (dist.enabled and not sync) else contextlib.nullcontext()
        with ctx:
            with autocast(self.device, cfg.train.bf16):
                out = self.task.train_step(self.train_model, batch)
            finite = bool(torch.isfinite(out.loss.detach()).all())
            if not ddp.all_true(dist, finite):  # every rank stops, none waits in a collective
                bad = [r for r, ok in enumerate(ddp.flags_of_ranks(dist, finite)) if not ok]
                raise AffectkitError(f"loss is not finite at epoch {epoch + 1} step {step + 1} (rank(s) {bad}); "
                                     f"lower train.lr, set train.clip_grad_norm, or check the data")
            (out.loss / cfg.train.grad_accum).backward()
        return out

    def _optimizer_step(self) -> None:
        if self.cfg.train.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.grad is not None],
                                           self.cfg.train.clip_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1

    def _sync_buffers(self) -> None:
        if self.dist.enabled:
            # DDP syncs gradients, not BatchNorm statistics updated by the last forward of each rank:
            # take rank 0's, so that evaluation shards and the checkpoint see one model
            for buf in self.model.buffers():
                torch.distributed.broadcast(buf, src=0)

    def _check_ranks_agree(self, when: str) -> list[str]:
        digests = ddp.all_gather_objects(self.dist, param_digest(self.model))
        if len(set(digests)) > 1:
            raise AffectkitError(f"the ranks' weights differ {when} (digests {digests}): distributed training went out of sync")
        return digests

    # ------------------------------------------------------------------------------ validation, saving
    def _validate(self, record: dict) -> bool:
        """Validation metrics into ``record``; True when this epoch is the best so far."""
        if self.val_set is None:
            self.best_epoch = record["epoch"]
            return True
        res = run_evaluation(self.task, self.model, self.val_set, self.cfg, self.dist, desc="val")
        vm = res["metrics"]
        record.update({f"val_{k}": v for k, v in vm.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        name = self.task.select_metric
        if not isinstance(vm.get(name), (int, float)):
            raise ConfigError(f"train.select_metric {name!r} is not a metric of task {self.task.name!r}; choose from "
                              f"{', '.join(k for k, v in vm.items() if isinstance(v, float))}")
        improved, tie = self.task.tie_better(vm, self.best_metric, self.best_tie)
        if improved:
            self.best_metric, self.best_epoch, self.best_tie = float(vm[name]), record["epoch"], tie
        return improved

    def _save_epoch(self, epoch: int, record: dict, improved: bool) -> None:
        if not self.dist.is_main:
            return
        meta = {**self.meta_base, "epoch": epoch + 1, "global_step": self.global_step, "metrics": record,
                "selected_on": "val" if self.val_set is not None else "last epoch (no validation split)",
                "select_metric": self.task.select_metric, "select_mode": self.task.select_mode,
                "select_tie_break": self.task.select_tie_break, "best_metric": self.best_metric,
                "best_epoch": self.best_epoch}
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "epoch": epoch + 1,
                 "global_step": self.global_step, "best_metric": self.best_metric, "best_epoch": self.best_epoch,
                 "best_tie": self.best_tie, "history": self.history, "rng": capture_rng_state()}
        if improved:
            save_checkpoint(self.run_dir / "best", self.model, self.ckpt_config, {**meta, "split": "val"})
        save_checkpoint(self.run_dir / "last", self.model, self.ckpt_config, meta, trainer_state=state)

    def _finish(self) -> TrainResult:
        dist = self.dist
        digests = self._check_ranks_agree("at the end of training")
        result = TrainResult(self.run_dir, self.run_dir / "best", self.best_metric, self.best_epoch, self.history,
                             select_metric=self.task.select_metric)
        if dist.is_main:
            summary = {"run_dir": str(self.run_dir), "best_epoch": self.best_epoch, "best_metric": self.best_metric,
                       "select_metric": self.task.select_metric, "select_mode": self.task.select_mode,
                       "world_size": dist.world_size, "rank_weight_digests": digests,
                       "ranks_in_sync": len(set(digests)) == 1, "skipped_files": len(self.problems)}
            with open(self.run_dir / "train_summary.json", "w", encoding="utf-8") as fh:
                json.dump(summary, fh, indent=2)
        if self._tb is not None:
            self._tb.close()
        return result

    # ------------------------------------------------------------------------------ logs
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
        # one line per epoch through the library's logger: progress in files, pipes and job logs too
        # (the bars only show on a terminal); the application decides where it goes
        name = self.task.select_metric
        parts = [f"epoch {record['epoch']}/{self.cfg.train.epochs}"]
        if isinstance(record.get("train_loss"), (int, float)):
            parts.append(f"train loss {record['train_loss']:.4f}")
        val = record.get(f"val_{name}")
        if isinstance(val, (int, float)):
            best = (f", best {self.best_metric:.4f} at epoch {self.best_epoch}"
                    if isinstance(self.best_metric, (int, float)) and self.best_epoch is not None else "")
            parts.append(f"val {name} {val:.4f}{best}")
        else:
            parts.append("no validation split")
        now = time.monotonic()
        since = getattr(self, "_last_log_time", None)
        self._last_log_time = now
        parts.append(f"train {record.get('epoch_seconds', 0.0):.1f} s" + (f", {now - since:.1f} s since the last epoch" if since else ""))
        log.info("%s", "; ".join(parts))

    def _open_tensorboard(self) -> None:
        if not (self.dist.is_main and self.cfg.output.tensorboard):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard is an optional extra
            log.info("tensorboard not installed; logging to metrics.jsonl only")
            return
        self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))


def train(config: Config | str | os.PathLike | None = None, overrides: list[str] | None = None, *,
          resume: str | os.PathLike | None = None) -> TrainResult:
    """Train from a config (a path, a shipped config name, or a :class:`Config`).

    ``resume``: a run folder; training continues after its last completed epoch with the run's own
    config (``overrides`` still apply, e.g. ``train.epochs`` to train longer). A folder without a
    trainer state to resume from is an error, never a silent fresh start.
    """
    if resume is not None:
        run_dir = Path(resume)
        cfg_file = run_dir / RUN_CONFIG
        if not cfg_file.is_file():
            raise CheckpointError(f"{run_dir}: not a run folder to resume (no {RUN_CONFIG})")
        data = apply_overrides(yaml.safe_load(cfg_file.read_text(encoding="utf-8")), overrides)
        cfg = config_from_dict(data, where=str(cfg_file))
        return _fit(Trainer(cfg, run_dir=run_dir, resume=True))
    if config is None:
        raise ConfigError("train needs a config (or resume=<run folder>)")
    cfg = config if isinstance(config, Config) else load_config(config, overrides)
    return _fit(Trainer(cfg))


def _fit(trainer: Trainer) -> TrainResult:
    info = trainer.dist
    try:
        return trainer.fit()
    finally:
        if info.enabled:
            # drop the DDP wrapper (its reducer holds the gloo group), loaders and optimiser first, so that
            # leaving the group stops gloo's threads now rather than at interpreter exit
            vars(trainer).clear()
            gc.collect()
        ddp.teardown(info)
