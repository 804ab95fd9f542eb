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
single-stream model (2s-AGCN) trains with ``CE(logits)``. The MSE is over real frames only. ``w`` is
the model's ``affective_weight`` (``model.args.affective_weight``, stored with the checkpoint;
default 1.0 as in the paper and the released code, weights 1:1:1). Evaluation
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
    default_affective_weight = 1.0  # for a model without its own ``affective_weight`` (spec D.7: 1:1:1)

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

    def affective_weight(self, model) -> float:
        """The weight of the affective MSE: the model's ``affective_weight`` (``model.args``)."""
        inner = getattr(model, "module", model)  # DistributedDataParallel
        return float(getattr(inner, "affective_weight", self.default_affective_weight))

    def losses(self, out, batch, affective_weight: float | None = None) -> dict[str, torch.Tensor]:
        """The loss terms (their sum is the loss); ``mse_affective`` already carries its weight."""
        w = self.default_affective_weight if affective_weight is None else float(affective_weight)
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
            parts["mse_affective"] = w * (((pred - target) ** 2) * m).sum() / m.sum().clamp(min=1)
        return parts

    def train_step(self, model, batch):
        out = model(**model_inputs(model, batch))
        parts = self.losses(out, batch, self.affective_weight(model))
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

    def sample_loader(self, input_cfg, **_):
        """What ``predict`` (:class:`~affectkit.deploy.predictor.Predictor`) reads for a gait model:
        :class:`GaitFileLoader` (skeleton files and videos)."""
        return GaitFileLoader(input_cfg, frames=self.frames)

    def format_prediction(self, sample, out, i=0):
        """Label, confidence and probabilities of the averaged logits, plus each stream's label. A long
        walk (``sample["windows"]``, see :class:`GaitFileLoader`): the mean of the windows'
        probabilities (:meth:`pool_windows`), each stream's label from the mean of its windows'
        probabilities, and each timeline entry with its frames (``start_frame``, ``end_frame``).

        Where the model computes a per-frame attention (``out.temporal_attention`` (B, T): BPM-GCN with PM
        fusion), ``frame_attention`` lists it for the gait's real frames, ``[{frame, time, attention}]``
        (``frame``: the frame of the input file, ``time``: its seconds); for a long walk each timeline
        entry holds its window's ``frame_attention`` (``frames`` values)."""
        result = super().format_prediction(sample, out, i)
        ex = out.extras or {}
        windows = int(sample.get("windows") or 0)
        for key, name in (("logits_posture", "posture"), ("logits_movement", "movement")):
            if key not in ex:
                continue
            if windows:
                if ex[key].shape[0] == windows:
                    result[f"label_{name}"] = self.classes[int(torch.softmax(ex[key].float(), -1).mean(0).argmax())]
            else:
                result[f"label_{name}"] = self.classes[int(ex[key][i].argmax())]
        if windows and "window_frames" in sample:
            for entry, (a, b) in zip(result["timeline"], sample["window_frames"]):
                entry["start_frame"], entry["end_frame"] = int(a), int(b)
        att = out.temporal_attention
        if att is not None:
            att = att.float().cpu()
            if windows:
                if att.shape[0] == windows:
                    for entry, row in zip(result["timeline"], att):
                        entry["frame_attention"] = [round(float(a), 6) for a in row]
            elif "frame_index" in sample:
                row = att[i].tolist()
                result["frame_attention"] = [{"frame": int(f), "time": round(float(t), 4), "attention": round(float(row[j]), 6)}
                                             for j, (f, t) in enumerate(zip(sample["frame_index"], sample["frame_times"]))
                                             if j < len(row)]
        for key in ("skeleton_frames", "frame_step", "pose"):
            if key in sample:
                result[key] = sample[key]
        return result


SKELETON_FPS = 30.0  # assumed frame rate of a skeleton file (for the seconds of the timeline): the synthetic set's


class GaitFileLoader:
    """``predict``'s reader for the gait models: one file -> one sample.

    - a skeleton file (``.npy``, ``.npz``, ``.csv``, ``.h5``: whatever
      :func:`~affectkit.data.modalities.read_skeleton` reads, ``(T, 16, 3)`` or ``(T, 48)``) goes straight
      in; a video (any other extension) goes through the pose front end
      (:func:`affectkit.data.pose.video_to_gait`, needs ``affectkit[pose]``);
    - the sequence is centred on the root joint (the Emotion-Gait files already are) and, with
      ``frame_step`` > 1, every ``frame_step``-th frame is kept (5 for a model trained on ELMD's
      240-frame clips, which the training preprocessing sub-samples to 48 frames with step 5);
    - up to ``2 * frames - 1`` frames (95) it is one gait, preprocessed exactly as in training and
      evaluation (:func:`~affectkit.data.gait.preprocess_gait`: the first 48 frames, zero-padded);
    - a longer sequence is a long walk: it is cut into windows of ``frames`` (48) frames with a hop of
      ``hop`` frames (default 24; the last window aligned to the end), each window classified, and the
      result is the mean of the windows' probabilities with one timeline entry per window (its seconds
      at the video's frame rate, or :data:`SKELETON_FPS` for a skeleton file, and its frames);
      ``set_windows(enabled=False)`` (the Predictor's ``set_audio_hop(enabled=False)``) reads a long
      file as training does instead: one gait sub-sampled with step ``T // 48``.

    Why not the training preprocessing's sub-sampling (step ``T // 48`` for ``T >= 96``) on a long
    walk: it squeezes any length into 48 frames, so the speed the movement stream sees would change
    with the file's length (a 10-second walk at 30 fps would be read every 6th frame); the windows keep
    the frame rate the model was trained at."""

    def __init__(self, input_cfg, *, frames: int, hop: int | None = None, frame_step: int = 1):
        self.cfg = input_cfg.skeleton
        self.frames = int(frames)
        self.hop = int(hop) if hop else max(1, self.frames // 2)
        self.frame_step = int(frame_step)
        if self.frame_step < 1 or self.hop < 1:
            raise ConfigError(f"gait predict: frame_step {frame_step!r} and hop {hop!r} must be integers >= 1")
        self.skeleton_fps = SKELETON_FPS

    def set_windows(self, hop_seconds: float | None = None, *, enabled: bool = True) -> None:
        """The Predictor's window setter: ``hop_seconds`` at :data:`SKELETON_FPS` (None: half a window)."""
        self.hop = max(1, int(round(hop_seconds * self.skeleton_fps))) if hop_seconds else max(1, self.frames // 2)
        self.windowed = enabled

    windowed = True

    @property
    def accepts(self) -> dict[str, tuple[str, ...]]:
        """What this loader reads, by kind -> file extensions: skeleton files and videos (the pose front
        end). ``predict`` on a folder keeps these files; the service accepts uploads of these kinds."""
        from ..data.datasets import VIDEO_EXTENSIONS
        from ..data.modalities import SKELETON_EXTENSIONS

        return {"skeleton": tuple(SKELETON_EXTENSIONS), "video": tuple(VIDEO_EXTENSIONS)}

    def read(self, path: str) -> tuple[np.ndarray, float, dict | None]:
        """``((T, 16, 3), fps, pose info or None)`` of a skeleton file or a video."""
        from pathlib import Path

        from ..data.modalities import SKELETON_EXTENSIONS, read_skeleton

        if Path(path).suffix.lower() in SKELETON_EXTENSIONS:
            return read_skeleton(path, num_joints=self.cfg.num_joints, channels=self.cfg.channels), self.skeleton_fps, None
        from ..data.pose import video_to_gait

        x, info = video_to_gait(path)
        return x, info["fps"] or self.skeleton_fps, info

    def load(self, path: str, audio_path: str | None = None) -> dict[str, Any]:
        from ..data.gait import NUM_JOINTS, preprocess_gait

        x, fps, pose = self.read(path)
        if x.shape[1] != NUM_JOINTS:
            raise MediaError(path, f"skeleton of {x.shape[1]} joints: the gait models take the 16 Emotion-Gait joints")
        x = x - x[:, :1]  # root-centred, as the Emotion-Gait files
        if self.frame_step > 1:
            x = x[::self.frame_step]
        t = x.shape[0]
        step_fps = fps / self.frame_step
        sample: dict[str, Any] = {"path": path, "duration": t / step_fps, "skeleton_frames": int(t * self.frame_step),
                                  "frame_step": self.frame_step}
        if pose is not None:
            sample["fps"] = fps
            sample["pose"] = {k: pose[k] for k in ("num_frames", "pose_frames", "first_frame", "last_frame")}
        if t < 2 * self.frames or not self.windowed:
            coords, n = preprocess_gait(x, self.frames)  # as training: < 96 frames: the first 48, else step T // 48
            skel = torch.from_numpy(np.ascontiguousarray(coords.transpose(2, 0, 1)))
            mask = torch.zeros(self.frames, dtype=torch.bool)
            mask[:n] = True
            sub = t // self.frames if t // self.frames >= 2 else 1  # preprocess_gait's sub-sampling step
            sample.update({"skeleton": skel, "skeleton_mask": mask, "skeleton_length": int(n),
                           "frame_index": [j * sub * self.frame_step for j in range(n)],  # file frame of model frame j
                           "frame_times": [j * sub / step_fps for j in range(n)]})
            return sample
        starts = list(range(0, t - self.frames + 1, self.hop))
        if starts[-1] != t - self.frames:
            starts.append(t - self.frames)
        wins = np.stack([x[a:a + self.frames] for a in starts])  # (W, frames, 16, 3)
        sample.update({"skeleton": torch.from_numpy(np.ascontiguousarray(wins.transpose(0, 3, 1, 2))),
                       "skeleton_mask": torch.ones(len(starts), self.frames, dtype=torch.bool),
                       "skeleton_length": torch.full((len(starts),), self.frames, dtype=torch.long),
                       "windows": len(starts),
                       "snippet_times": torch.tensor([[a / step_fps, (a + self.frames) / step_fps] for a in starts],
                                                     dtype=torch.float64),
                       "window_frames": [(a * self.frame_step, (a + self.frames) * self.frame_step) for a in starts]})
        return sample


def cross_validate(config, overrides: list[str] | None = None, *, folds: int = 5) -> dict[str, Any]:
    """The k-fold protocol of the paper (Table III): train one run per test fold (``data.fold``), each
    choosing its epoch on its own validation split (carved from that fold's training part), and return
    every fold's test metrics with the mean and spread of the test accuracy (and of macro F1 and the
    per-stream accuracies where the model has them): ``accuracy_std`` is the population standard
    deviation over the folds, ``accuracy_sample_std`` the sample one (n - 1). Run names get a
    ``-fold<k>`` suffix (``output.run_name``, default ``<config>-cv-<time>``). ``affectkit gait-cv``
    is this function on the command line."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"folds {folds!r}: expected an integer >= 2")
    from .cv import run_folds

    return run_folds(config, overrides, [[f"data.fold={k}", f"data.folds={folds}"] for k in range(folds)],
                     drop=("data.fold=", "data.folds="))


def format_cross_validation(result: dict[str, Any]) -> str:
    """A small table of :func:`cross_validate`'s result: one line per fold, then mean +- std."""
    lines = [f"{'fold':>4}  {'test acc':>8}  {'macro F1':>8}  {'samples':>7}  best epoch  run"]
    for r in result["folds"]:
        t = r["test"]
        f1 = t.get("macro_f1")
        lines.append(f"{r['fold']:>4}  {t.get('accuracy', float('nan')):8.4f}  "
                     f"{f1 if f1 is not None else float('nan'):8.4f}  {int(t.get('num_samples', 0)):>7}  "
                     f"{str(r['best_epoch']):>10}  {r['run_dir']}")
    lines.append(f"{result['num_folds']}-fold test accuracy: {result['accuracy_mean']:.4f} +- {result['accuracy_std']:.4f} "
                 f"(std over folds; sample std {result['accuracy_sample_std']:.4f})")
    for m in ("macro_f1", "accuracy_posture", "accuracy_movement"):
        if f"{m}_mean" in result:
            lines.append(f"  {m}: {result[f'{m}_mean']:.4f} +- {result[f'{m}_std']:.4f}")
    return "\n".join(lines)
