"""The ``gait`` task: skeleton (walking gait) emotion classification with BPM-GCN's auxiliary
affective-feature regression.

Samples (:class:`GaitDataset`, records of ``data.format: gait``): ``skeleton`` (3, T, 16) joint
coordinates preprocessed to ``T = input.skeleton.max_frames`` (48) frames
(:func:`~affectkit.data.gait.preprocess_gait`), ``skeleton_mask`` / ``skeleton_length``, the derived
``movement`` (8, T, 16), and the regression target ``affective`` (31 * T, frame-major, standardised with
training-split statistics) with ``affective_mask`` (31 * T, True on real frames). In training, with
``"move"`` in ``train.augment.ops``, 2s-AGCN's ``random_move`` transforms the coordinates with
probability ``train.augment.p`` *before* the movement and affective features are derived (so the
streams and the target stay consistent; the original augments them independently).

Loss (spec D.7): ``CE(posture logits) + CE(movement logits) + w * MSE(affective)`` for a model whose
output ``extras`` hold ``logits_posture`` / ``logits_movement`` / ``affective`` (BPM-GCN); a
single-stream model (2s-AGCN) trains with ``CE(logits)``. The MSE is over real frames only. Evaluation
uses the averaged logits (``out.logits``), per-class accuracy among the classification metrics, and
also reports each stream's accuracy (``accuracy_posture``, ``accuracy_movement``).

Model selection: the best epoch is chosen on the **validation** split carved from training
(``data.val_fraction``); the original BPM-GCN code picks the best epoch on the test split, so its
reported numbers are optimistic relative to ours.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.gait import GaitStore, affective_features, affective_stats, movement_features, random_move
from ..errors import ConfigError, MediaError
from .tasks import ClassificationTask, StepOutput, model_inputs, register_task


class GaitDataset(torch.utils.data.Dataset):
    """The samples of gait records (see the module docstring)."""

    def __init__(self, records, *, frames: int, train: bool, stats: tuple[np.ndarray, np.ndarray],
                 augment_p: float = 0.0, store: GaitStore | None = None):
        self.records, self.frames, self.train = list(records), frames, train
        self.mean, self.std = stats
        self.augment_p = augment_p if train else 0.0
        self.store = store or GaitStore(frames)
        self.problems: list[tuple[str, str]] = []  # (file, why) of skipped samples: none (bad files are errors)

    def __len__(self) -> int:
        return len(self.records)

    def coords(self, i: int) -> tuple[np.ndarray, int]:
        r = self.records[i]
        if not r.path or "key" not in r.extra:
            raise MediaError(r.video_id, "a gait record needs its features file (path) and extra['key']")
        return self.store.get(r.path, r.extra["key"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        r = self.records[i]
        x, n = self.coords(i)
        if self.augment_p > 0:
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)).item()))
            if rng.random() < self.augment_p:
                x = random_move(x, n, rng)
        skeleton = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))  # (3, T, J)
        mask = torch.zeros(self.frames, dtype=torch.bool)
        mask[:n] = True
        aff = (affective_features(x, n) - self.mean) / self.std
        aff[n:] = 0.0
        aff_mask = np.zeros_like(aff, dtype=bool)
        aff_mask[:n] = True
        return {"skeleton": skeleton, "skeleton_mask": mask, "skeleton_length": int(n),
                "movement": movement_features(skeleton, mask), "affective": torch.from_numpy(aff.reshape(-1)),
                "affective_mask": torch.from_numpy(aff_mask.reshape(-1)),
                "label": int(r.label) if r.label is not None else -1, "video_id": r.video_id, "index": i}


@register_task
class GaitTask(ClassificationTask):
    """Gait emotion classification with the affective regression loss (see the module docstring)."""

    name = "gait"
    select_metric = "accuracy"
    select_mode = "max"
    affective_weight = 1.0

    def __init__(self, cfg, classes, polarity=None):
        super().__init__(cfg, classes, polarity)
        if cfg.train.loss != "ce":
            raise ConfigError(f"task gait trains with cross-entropy (+ the affective MSE); train.loss={cfg.train.loss!r}")
        self._stats: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._store: GaitStore | None = None

    @property
    def frames(self) -> int:
        frames = self.cfg.input.skeleton.max_frames
        if frames is None:
            raise ConfigError("input.skeleton.max_frames: the gait task pads or sub-samples to a fixed length; set it (48)")
        return frames

    def stats(self, index) -> tuple[np.ndarray, np.ndarray]:
        """Affective-feature mean/std of the training split (computed once per index)."""
        key = id(index)
        if key not in self._stats:
            train = GaitDataset(index.split("train"), frames=self.frames, train=False,
                                stats=(np.zeros(31, np.float32), np.ones(31, np.float32)), store=self._get_store())
            if not len(train):
                raise ConfigError(f"{index.source}: no training gaits to compute the affective-feature statistics from")
            self._stats[key] = affective_stats([train.coords(i) for i in range(len(train))])
        return self._stats[key]

    def _get_store(self) -> GaitStore:
        if self._store is None:
            self._store = GaitStore(self.frames)
        return self._store

    def dataset(self, index, split: str, *, train: bool):
        aug = self.cfg.train.augment
        p = float(aug.p) if train and "move" in (aug.ops or []) else 0.0
        return GaitDataset(index.split(split), frames=self.frames, train=train, stats=self.stats(index), augment_p=p,
                           store=self._get_store())

    def losses(self, out, batch) -> dict[str, torch.Tensor]:
        y = batch["label"]
        ex = out.extras or {}
        if "logits_posture" in ex and "logits_movement" in ex:
            parts = {"ce_posture": F.cross_entropy(ex["logits_posture"].float(), y),
                     "ce_movement": F.cross_entropy(ex["logits_movement"].float(), y)}
        else:
            parts = {"ce": F.cross_entropy(out.logits.float(), y)}
        if "affective" in ex and "affective" in batch:
            pred, target = ex["affective"].float(), batch["affective"].float()
            if pred.shape != target.shape:
                raise ConfigError(f"affective head gives {tuple(pred.shape[1:])} values, the target has "
                                  f"{tuple(target.shape[1:])}: model frames and input.skeleton.max_frames differ")
            m = batch["affective_mask"].to(pred.dtype)
            parts["mse_affective"] = self.affective_weight * (((pred - target) ** 2) * m).sum() / m.sum().clamp(min=1)
        return parts

    def train_step(self, model, batch):
        out = model(**model_inputs(model, batch))
        parts = self.losses(out, batch)
        loss = sum(parts.values())
        correct = (out.logits.detach().argmax(-1) == batch["label"]).float().mean()
        logs = {"loss": float(loss.detach()), "accuracy": float(correct)}
        logs.update({k: float(v.detach()) for k, v in parts.items()})
        return StepOutput(loss, len(batch["label"]), logs)

    @torch.no_grad()
    def eval_batch(self, model, batch):
        out = model(**model_inputs(model, batch))
        probs = torch.softmax(out.logits.float(), dim=-1).cpu()
        ex = out.extras or {}
        rows = []
        for i in range(probs.shape[0]):
            row = {"index": int(batch["index"][i]), "video_id": batch["video_id"][i], "label": int(batch["label"][i]),
                   "probs": probs[i].tolist()}
            for key, name in (("logits_posture", "pred_posture"), ("logits_movement", "pred_movement")):
                if key in ex:
                    row[name] = int(ex[key][i].argmax())
            rows.append(row)
        return rows

    def compute_metrics(self, rows):
        metrics = super().compute_metrics(rows)
        for name in ("posture", "movement"):
            if rows and f"pred_{name}" in rows[0]:
                metrics[f"accuracy_{name}"] = float(np.mean([r[f"pred_{name}"] == r["label"] for r in rows]))
        return metrics

    def summary(self, metrics):
        out = super().summary(metrics)
        out.update({k: metrics[k] for k in ("accuracy_posture", "accuracy_movement") if k in metrics})
        return out

    def format_prediction(self, sample, out, i=0):
        """Label, confidence and probabilities of the averaged logits, plus each stream's label."""
        result = super().format_prediction(sample, out, i)
        for key, name in (("logits_posture", "posture"), ("logits_movement", "movement")):
            if key in (out.extras or {}):
                result[f"label_{name}"] = self.classes[int(out.extras[key][i].argmax())]
        return result


def cross_validate(config, overrides: list[str] | None = None, *, folds: int = 5) -> dict[str, Any]:
    """The k-fold protocol of the paper (Table III): train one run per test fold (``data.fold``), each
    choosing its epoch on its own validation split, and return every fold's test metrics with the mean
    and standard deviation of the test accuracy. Run names get a ``-fold<k>`` suffix."""
    from .evaluate import evaluate
    from .trainer import train

    overrides = list(overrides or [])
    name = next((o.split("=", 1)[1] for o in overrides if o.startswith("output.run_name=")), None)
    runs = []
    for k in range(folds):
        extra = [f"data.fold={k}", f"data.folds={folds}"] + ([f"output.run_name={name}-fold{k}"] if name else [])
        result = train(config, [o for o in overrides if not o.startswith("output.run_name=")] + extra)
        test = evaluate(result.best_dir, split="test")
        runs.append({"fold": k, "run_dir": str(result.run_dir), "best_epoch": result.best_epoch,
                     "test": {m: v for m, v in test.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
                     "per_class_accuracy": test.get("per_class_accuracy")})
    acc = np.array([r["test"].get("accuracy", np.nan) for r in runs], dtype=np.float64)
    return {"folds": runs, "accuracy_mean": float(np.nanmean(acc)), "accuracy_std": float(np.nanstd(acc))}
