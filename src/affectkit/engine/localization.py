"""The ``localize`` task: temporal sentiment localisation from point labels (TSL-Net; spec section 3).

Data: an untrimmed-video index (``kind == "segments"``: ActivityNet-style ``gt.json``) with point labels
attached (``data.points``). Per video two feature files, both one row per ``frames_per_step`` native frames:

- visual ``features`` (T_v, D): ``record.extra["features"]``, else ``<input.features.root>/<id>.npy``
  (also ``<root>/rgb/<id>.npy`` and ``<root>/<subset>/rgb/<id>.npy``, the TSL-300 tree);
- log-mel ``logmel`` (N, bins) in dB: ``record.extra["logmel"]``, else the file of the same name in the
  sibling folder ``logmfcc`` of the visual file's folder (TSL-300: ``features/<split>/{rgb,logmfcc}/<id>.npy``).
  As the original loader: T = min(T_v, N // rows); the log-mel cut to ``rows·T`` rows and reshaped (T, rows, bins).

Labels (nothing is written into the data folder): the per-step point target (T, K) is 0 except at step
⌊frame / frames_per_step⌋ (frame = the point's frame, or its time × fps), which gets 0.1 for every class and
0.9 for the annotated one; the video target is the label-based distribution (per-class point counts / all).

Batches may hold several videos: variable lengths are padded by ``collate_samples`` with ``features_mask``.
Evaluation: the post-processing of :func:`segments_from_scores` (spec 3.7) and the evaluator of
:mod:`affectkit.metrics_localization` on the split's ground-truth segments; the checkpoint is selected on
``average_mAP`` of the validation split (``data.val_fraction`` carves it out of train; never test).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.modalities import read_features
from ..errors import ConfigError, DatasetError, MediaError
from ..metrics_localization import DEFAULT_TIOU_THRESHOLDS, evaluate_localization
from .tasks import StepOutput, Task, model_inputs, register_task

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- post-processing
def upsample_linear(x: np.ndarray, scale: int) -> np.ndarray:
    """(T, ...) -> (T·scale, ...) sampled at 0, 1/scale, ..., T - 1/scale by linear interpolation between
    steps, extrapolating the last interval past T - 1 (as the original's ``interp1d(..., 'extrapolate')``)."""
    t = x.shape[0]
    grid = np.arange(t * scale) / scale
    if t == 1:
        return np.repeat(x, scale, axis=0)
    left = np.minimum(np.floor(grid).astype(int), t - 2)
    frac = (grid - left).reshape((-1,) + (1,) * (x.ndim - 1))
    return x[left] * (1 - frac) + x[left + 1] * frac


def _runs(idx: np.ndarray) -> list[np.ndarray]:
    """Consecutive runs of sorted indices."""
    if idx.size == 0:
        return []
    return np.split(idx, np.flatnonzero(np.diff(idx) != 1) + 1)


def _contrast_score(run: np.ndarray, cas: np.ndarray, margin: float = 0.03) -> float:
    """Outer-inner contrast: mean CAS inside the run minus the mean in margins of ``margin``·length each side."""
    n = len(cas)
    width = len(run)
    lo = max(0, int(run[0] - margin * width))
    hi = min(n - 1, int(run[-1] + margin * width))
    outer = np.concatenate([cas[lo:run[0]], cas[run[-1] + 1:hi + 1]])
    return float(cas[run].mean() - (outer.mean() if outer.size else 0.0))


def nms_1d(segments: list[dict], iou: float, plus_one: bool = False) -> list[dict]:
    """Greedy NMS of ``[{start, end, score, ...}]`` by score: drop those overlapping a kept one by more than ``iou``."""
    if not segments:
        return []
    arr = np.array([[s["start"], s["end"], s["score"]] for s in segments], dtype=float)
    one = 1.0 if plus_one else 0.0
    order = np.argsort(-arr[:, 2], kind="stable")
    widths = arr[:, 1] - arr[:, 0] + one
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        inter = np.clip(np.minimum(arr[i, 1], arr[rest, 1]) - np.maximum(arr[i, 0], arr[rest, 0]) + one, 0, None)
        union = widths[i] + widths[rest] - inter
        ovr = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[ovr <= iou]
    return [segments[i] for i in keep]


def segments_from_scores(cas: np.ndarray, actionness: np.ndarray, video_score: np.ndarray, classes: list[str],
                         seconds_per_step: float, options: dict[str, Any]) -> list[dict[str, Any]]:
    """Segments ``[{start, end, label, score}]`` (seconds) of one video from its fused class CAS (T, K), its
    actionness 1 - s_bg (T) and its video scores (K) (spec 3.7): classes with a video score ≥ the class
    threshold (or the best one); the CAS up-sampled; runs above each class-CAS threshold and each actionness
    threshold; scored by outer-inner contrast + 0.3 × the video score; per-class NMS."""
    scale = int(options["upsample"])
    picked = [c for c in range(len(classes)) if video_score[c] >= options["class_threshold"]] or [int(np.argmax(video_score))]
    cas_up = upsample_linear(cas[:, picked], scale)  # (T·scale, |picked|)
    act_up = upsample_linear(actionness, scale)
    factor = seconds_per_step / scale
    out: list[dict[str, Any]] = []
    for j, c in enumerate(picked):
        found = []
        curves = [(cas_up[:, j], t) for t in np.arange(*options["cas_thresholds"])] + \
                 [(act_up, t) for t in np.arange(*options["actionness_thresholds"])]
        for curve, thr in curves:
            for run in _runs(np.flatnonzero((curve >= thr) & (curve > 0))):
                score = _contrast_score(run, cas_up[:, j]) + 0.3 * float(video_score[c])
                found.append({"start": float(run[0] * factor), "end": float((run[-1] + 1) * factor),
                              "label": classes[c], "score": score})
        out += nms_1d(found, float(options["nms_iou"]), bool(options["legacy_nms_plus_one"]))
    return sorted(out, key=lambda s: -s["score"])


# ------------------------------------------------------------------------------------------- data
class LocalizationDataset(torch.utils.data.Dataset):
    """Untrimmed videos as (features, logmel, point targets) samples; see the module doc."""

    def __init__(self, records, input_cfg, classes: list[str], *, rows: int, bins: int, frames_per_step: int,
                 skip_bad: bool = True):
        self.cfg, self.classes = input_cfg, list(classes)
        self.rows, self.bins, self.frames_per_step = rows, bins, frames_per_step
        self.records, self.problems = [], []
        for r in records:
            try:
                self._paths(r)
            except MediaError as err:
                if not skip_bad:
                    raise
                self.problems.append((err.path, err.problem))
                continue
            self.records.append(r)
        for what, why in self.problems:
            log.warning("localize: skipping %s: %s", what, why)

    def __len__(self) -> int:
        return len(self.records)

    def _paths(self, r) -> tuple[Path, Path]:
        root = self.cfg.features.root
        given = r.extra.get("features")
        if given:
            vis = Path(given) if Path(given).is_absolute() or root is None else Path(root) / given
        else:
            if root is None:
                raise MediaError(r.video_id, "no features file: set input.features.root or the record's extra['features']")
            cands = [Path(root) / f"{r.video_id}.npy", Path(root) / "rgb" / f"{r.video_id}.npy",
                     Path(root) / str(r.subset) / "rgb" / f"{r.video_id}.npy"]
            vis = next((c for c in cands if c.is_file()), cands[0])
        if not vis.is_file():
            raise MediaError(vis, "visual features file not found")
        mel = Path(r.extra["logmel"]) if r.extra.get("logmel") else vis.parent.parent / "logmfcc" / vis.name
        if not mel.is_file():
            raise MediaError(mel, f"log-mel file not found (expected beside the visual features {vis}: "
                                  "sibling folder logmfcc/ with the same file name)")
        return vis, mel

    def seconds_per_step(self, r, steps: int) -> float:
        if r.fps:
            return self.frames_per_step / float(r.fps)
        if r.duration:
            return float(r.duration) / steps
        raise DatasetError(f"{r.video_id}: neither fps nor duration known (fps_dict.json / len_duration_dict.json)")

    def __getitem__(self, i: int) -> dict[str, Any]:
        r = self.records[i]
        vis_path, mel_path = self._paths(r)
        vis = read_features(vis_path, dim=self.cfg.features.dim)
        mel = read_features(mel_path, dim=self.bins)
        steps = min(len(vis), len(mel) // self.rows)
        if steps < 1:
            raise MediaError(mel_path, f"{len(mel)} log-mel rows: fewer than one step of {self.rows}")
        vis = vis[:steps]
        mel = mel[: steps * self.rows].reshape(steps, self.rows, self.bins)
        sps = self.seconds_per_step(r, len(vis))
        k = len(self.classes)
        target = np.zeros((steps, k), dtype=np.float32)
        counts = np.zeros(k, dtype=np.float32)
        for p in r.points:
            c = p.get("label_index")
            if c is None or not 0 <= c < k:
                continue
            frame = p.get("frame")
            step = int(frame // self.frames_per_step) if frame is not None else int(math.floor(p["time"] / sps))
            if not 0 <= step < steps:
                continue
            target[step] = np.maximum(target[step], 0.1)
            target[step, c] = 0.9
            counts[c] += 1
        dist = counts / counts.sum() if counts.sum() > 0 else np.zeros(k, dtype=np.float32)
        segs = [{"start": float(s["start"]), "end": float(s["end"]), "label": s["label"]} for s in r.segments]
        return {"features": torch.from_numpy(np.ascontiguousarray(vis)), "logmel": torch.from_numpy(np.ascontiguousarray(mel)),
                "features_mask": torch.ones(steps, dtype=torch.bool), "point_labels": torch.from_numpy(target),
                "video_distribution": torch.from_numpy(dist), "seconds_per_step": sps, "index": i,
                "video_id": r.video_id, "segments": segs}


# ------------------------------------------------------------------------------------------- task
@register_task
class LocalizationTask(Task):
    """Point-supervised temporal localisation (TSL-Net)."""

    name = "localize"
    select_metric = "average_mAP"
    select_mode = "max"

    def __init__(self, cfg, classes, polarity=None):
        super().__init__(cfg, classes, polarity)
        feats = cfg.input.features
        if feats.extractor is None and feats.root:  # features made by `affectkit features`: remember how
            from ..data.tsl_features import read_extractor

            spec = read_extractor(feats.root)
            if spec is not None:
                feats.extractor = spec.to_dict()  # saved with the checkpoints: predict computes the same features
                if feats.dim is None:
                    feats.dim = int(spec.feature_dim)
                if spec.random_init:
                    log.warning("localize: the features in %s come from a randomly initialised I3D (%s), not a "
                                "Kinetics-trained one", feats.root, spec.i3d_weights)

    def sample_loader(self, input_cfg, *, device: str = "cpu", allow_silent_audio: bool = False):
        """The loader ``affectkit predict`` uses on a plain video: TSL features computed on the fly by the
        extractor the training features came from (``input.features.extractor``)."""
        from ..data.tsl_features import ExtractorSpec, UntrimmedVideoLoader

        spec = input_cfg.features.extractor
        if not spec:
            raise ConfigError("this localize checkpoint does not record how its features were made "
                              "(input.features.extractor is empty: its features folder had no extractor.json from "
                              "`affectkit features`), so it cannot compute them from a video; retrain on features "
                              "cached by `affectkit features`")
        a = self._options()
        return UntrimmedVideoLoader(ExtractorSpec.from_dict(dict(spec), where="input.features.extractor"),
                                    rows=a["audio_rows"], bins=a["audio_bins"], frames_per_step=a["frames_per_step"],
                                    device=device, allow_silent_audio=allow_silent_audio)

    def _options(self) -> dict[str, Any]:
        return self.model_args()

    def dataset(self, index, split: str, *, train: bool):
        a = self._options()
        return LocalizationDataset(index.split(split), self.cfg.input, self.classes, rows=a["audio_rows"],
                                   bins=a["audio_bins"], frames_per_step=a["frames_per_step"], skip_bad=self.cfg.data.skip_bad)

    def train_step(self, model, batch):
        from ..models.tsl_net import tsl_loss

        inner = getattr(model, "module", model)
        out = model(**model_inputs(model, batch), features_mask=batch["features_mask"])
        loss, logs = tsl_loss(out, batch["point_labels"], batch["video_distribution"],
                              lambdas=inner.options["loss_lambdas"], legacy_cpc_sign=inner.options["legacy_cpc_sign"])
        return StepOutput(loss, len(batch["video_id"]), logs)

    @torch.no_grad()
    def eval_batch(self, model, batch):
        out = model(**model_inputs(model, batch), features_mask=batch["features_mask"])
        return [{"index": int(batch["index"][i]), "video_id": batch["video_id"][i],
                 "ground_truth": batch["segments"][i], **self._segments(model, out, i, float(batch["seconds_per_step"][i]))}
                for i in range(len(batch["video_id"]))]

    def _segments(self, model, out, i: int, seconds_per_step: float) -> dict[str, Any]:
        opts = getattr(model, "module", model).options
        mask = out.extras.get("mask")  # absent from an exported graph's outputs: one unpadded video
        length = int(mask[i].sum()) if mask is not None else int(out.extras["cas_fused"].shape[1])
        k = len(self.classes)
        cas = out.extras["cas_fused"][i, :length, :k].float().cpu().numpy()
        act = out.temporal_attention[i, :length].float().cpu().numpy()
        vs = out.extras["video_score"][i].float().cpu().numpy()
        segs = segments_from_scores(cas, act, vs, self.classes, seconds_per_step, opts)
        return {"segments": segs, "video_score": {c: float(v) for c, v in zip(self.classes, vs)},
                "seconds_per_step": seconds_per_step, "steps": length}

    def compute_metrics(self, rows):
        gt = {"database": {r["video_id"]: {"subset": "eval", "annotations": [
            {"segment": [s["start"], s["end"]], "label": s["label"]} for s in r["ground_truth"]]} for r in rows}}
        pred = {"results": {r["video_id"]: [{"segment": [s["start"], s["end"]], "label": s["label"], "score": s["score"]}
                                            for s in r["segments"]] for r in rows}}
        if not rows or not any(r["ground_truth"] for r in rows):
            return {"average_mAP": 0.0, "num_videos": len(rows), "note": "no ground-truth segments in this split"}
        m = evaluate_localization(gt, pred, subset="eval", thresholds=DEFAULT_TIOU_THRESHOLDS)
        m.pop("subset")
        m["num_segments_predicted"] = sum(len(r["segments"]) for r in rows)
        return m

    def summary(self, metrics):
        keys = ["split", "num_videos", "average_mAP", "mAP", "per_class_ap", "tsl300_recall_avg", "tsl300_f2_avg", "skipped"]
        return {k: metrics[k] for k in keys if k in metrics}

    def format_prediction(self, sample, out, i=0):
        """``segments`` [{start, end, label, score}] (seconds), the video scores, and a per-step ``timeline``
        (span, actionness, fused class scores)."""
        sps = float(sample.get("seconds_per_step", 16 / 30))
        res = self._segments_from_output(out, i, sps)
        cas = out.extras["cas_fused"][i].float().cpu()
        act = out.temporal_attention[i].float().cpu()
        res["timeline"] = [{"snippet": t, "start": round(t * sps, 3), "end": round((t + 1) * sps, 3),
                            "attention": round(float(act[t]), 6),
                            "probabilities": {c: round(float(cas[t, k]), 6) for k, c in enumerate(self.classes)}}
                           for t in range(res.pop("steps"))]
        for seg in res["segments"]:
            pol = self._polarity_of(seg["label"])
            if pol:
                seg["sentiment"] = pol
        best = max(res["video_score"], key=res["video_score"].get)
        res.update(label=best, confidence=round(res["video_score"][best], 6), probabilities=res["video_score"])
        return res

    def _polarity_of(self, label: str) -> str | None:
        """positive / negative of a segment label: the dataset's polarity map, else TSL-300's p / n."""
        if self.polarity and label in self.polarity:
            return self.polarity[label]
        return {"p": "positive", "n": "negative", "positive": "positive", "negative": "negative"}.get(str(label).lower())

    def _segments_from_output(self, out, i, sps):
        from ..models.tsl_net import DEFAULT_CONFIG, OPTION_KEYS

        holder = type("Opts", (), {"options": {k: DEFAULT_CONFIG[k] for k in OPTION_KEYS} | {
            k: v for k, v in self._options().items() if k in OPTION_KEYS}})()
        return self._segments(holder, out, i, sps)

