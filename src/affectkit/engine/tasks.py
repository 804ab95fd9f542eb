"""Training tasks: what differs between kinds of problem, independent of the model and of the loop.

A task owns, for its kind of problem (clip classification now; temporal localisation, masked
pretraining and skeleton classification come with their methods):

- the model arguments it derives from the data (:meth:`Task.model_args`, through the model's registry entry);
- its datasets and their collate function (:meth:`Task.dataset`, :meth:`Task.collate`);
- the training step (:meth:`Task.train_step`): any number of forward passes over one batch, one loss,
  and the values to log;
- evaluation (:meth:`Task.eval_batch` per batch, :meth:`Task.compute_metrics` over all rows),
  the metric that selects the best checkpoint and its direction (:attr:`Task.select_metric`,
  :attr:`Task.select_mode`), and its report files (:meth:`Task.write_report`);
- the formatting of a prediction result (:meth:`Task.format_prediction`), which the predictor, the
  batch runner, the ONNX engine and the service all use.

The trainer (:mod:`affectkit.engine.trainer`) owns only the loop. Register a task with
:func:`register_task`; a config names it in ``task:``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..config import Config
from ..errors import ConfigError
from ..losses import build_loss
from ..metrics import classification_metrics, negative_log_likelihood, plot_confusion_matrix, predictions_from_probs
from ..registry import derive_model_args, get_model_entry, model_input_keys


def model_inputs(model: torch.nn.Module, batch: dict) -> dict[str, Any]:
    """The keyword arguments of ``model.forward`` taken from a batch, by the model's ``input_keys``.

    A model may accept an input in a precomputed form (``input_aliases``, e.g. VAANet's
    ``{"video": "video_features"}`` for cached trunk features): a batch holding the alias instead of
    the key passes the alias."""
    inner = getattr(model, "module", model)  # DistributedDataParallel wraps the model
    aliases = getattr(inner, "input_aliases", {})
    out, missing = {}, []
    for k in model_input_keys(inner):
        if k in batch:
            out[k] = batch[k]
        elif aliases.get(k) in batch:
            out[aliases[k]] = batch[aliases[k]]
        else:
            missing.append(k)
    if missing:
        raise KeyError(f"batch lacks {missing} needed by {type(inner).__name__} (batch keys: {sorted(batch)})")
    return out


@dataclass
class StepOutput:
    """What a training step returns: the loss to backpropagate, the batch size it averages over, and
    named scalars to log (averaged over samples across the epoch and the ranks)."""

    loss: torch.Tensor
    batch_size: int
    logs: dict[str, float] = field(default_factory=dict)


class Task:
    """The interface every task implements (see the module docstring)."""

    name = ""
    select_metric = ""  # the default metric that picks the best checkpoint on validation
    select_mode = "max"  # max | min
    select_tie_break = "first"  # first | last | nll: which of two epochs tying on the select metric is kept
    reports_nll = False  # compute_metrics gives "nll" (the validation NLL that select_tie_break nll reads)
    # the loader that predict, the batch runner and the service use on one input file, when the task reads
    # files its own way: a callable (input_cfg, *, device=..., allow_silent_audio=...) -> loader, as
    # localize (features computed from a video) and gait (skeleton files, pose from video) define it;
    # None: the shared make_loader over the model's input_keys
    sample_loader = None

    def __init__(self, cfg: Config, classes: list[str], polarity: dict[str, str] | None = None):
        self.cfg, self.classes, self.polarity = cfg, list(classes), polarity
        entry = get_model_entry(cfg.model.name)
        if self.name not in entry.tasks:
            raise ConfigError(f"task {self.name!r} does not fit model {cfg.model.name!r}, which is registered for "
                              f"task(s) {', '.join(entry.tasks)}; set `task:` to one of them or choose another model")
        if cfg.train.select_metric:
            self.select_metric = cfg.train.select_metric
        if cfg.train.select_mode:
            self.select_mode = cfg.train.select_mode
        self.select_tie_break = cfg.train.select_tie_break
        if self.select_tie_break == "nll" and not self.reports_nll:
            raise ConfigError(self._no_nll())

    # -- model --------------------------------------------------------------------------------
    def model_args(self) -> dict[str, Any]:
        return derive_model_args(self.cfg, self.classes)

    @property
    def input_keys(self) -> tuple[str, ...]:
        return get_model_entry(self.cfg.model.name).keys_for(self.model_args())

    # -- data ---------------------------------------------------------------------------------
    def dataset(self, index, split: str, *, train: bool):
        raise NotImplementedError

    def collate(self) -> Callable:
        from ..data.clips import collate_skip_none

        return collate_skip_none

    # -- steps --------------------------------------------------------------------------------
    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called by the trainer before each training epoch (0-based ``epoch`` of ``epochs``): a task whose
        step depends on the training progress (MART's masking ratio) reads it here."""

    def train_step(self, model: torch.nn.Module, batch: dict) -> StepOutput:
        raise NotImplementedError

    def eval_batch(self, model: torch.nn.Module, batch: dict) -> list[dict]:
        """Per-sample result rows of one batch (JSON-ready; ``index`` identifies the sample)."""
        raise NotImplementedError

    def compute_metrics(self, rows: list[dict]) -> dict[str, Any]:
        raise NotImplementedError

    def write_report(self, metrics: dict, rows: list[dict], out_dir, *, title: str = "") -> None:
        """Files beside ``metrics.json`` and ``predictions.jsonl`` (e.g. a confusion matrix)."""

    def prediction_row(self, row: dict) -> dict:
        """A row as written to ``predictions.jsonl`` (names added where useful)."""
        return row

    def summary(self, metrics: dict) -> dict:
        """The few metrics a command line prints."""
        return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}

    # -- prediction ---------------------------------------------------------------------------
    def format_prediction(self, sample: dict, out, i: int = 0) -> dict[str, Any]:
        """The task's part of a ``predict`` result for sample ``i`` of a model output."""
        raise NotImplementedError

    def better(self, score: float, best: float | None) -> bool:
        if best is None:
            return True
        return score > best if self.select_mode == "max" else score < best

    def _no_nll(self) -> str:
        return f"train.select_tie_break nll: task {self.name!r} reports no nll metric; use first or last"

    def tie_better(self, metrics: dict, best: float | None, best_tie: float | None) -> tuple[bool, float | None]:
        """Whether validation ``metrics`` beat the best epoch's (``best``: its select metric; ``best_tie``: its
        tie-break value), and this epoch's tie-break value. ``train.select_tie_break`` decides a tie on the select
        metric: ``first`` (default) keeps the earlier epoch, ``last`` takes the later one, ``nll`` the one with the
        lower validation negative log-likelihood (a metric of the classification tasks)."""
        score = float(metrics[self.select_metric])
        rule = self.select_tie_break
        tie = metrics.get("nll") if rule == "nll" else None
        if rule == "nll" and not isinstance(tie, (int, float)):
            raise ConfigError(self._no_nll())
        if self.better(score, best):
            return True, tie
        if best is None or score != best:
            return False, tie
        if rule == "last":
            return True, tie
        if rule == "nll":
            return best_tie is None or tie < best_tie, tie
        return False, tie


class ClassificationTask(Task):
    """Single-label clip classification (VAANet, the audio models; CTEN next)."""

    name = "classify"
    select_metric = "accuracy"
    select_mode = "max"
    reports_nll = True

    def __init__(self, cfg: Config, classes: list[str], polarity: dict[str, str] | None = None):
        super().__init__(cfg, classes, polarity)
        pol = [1 if polarity[c] == "positive" else 0 for c in classes] if polarity else None
        if cfg.train.loss == "pcce" and pol is None:
            raise ConfigError("train.loss=pcce needs a polarity map (data.polarity: ve8, ek6 or {class: positive|negative}); or use train.loss=ce")
        self.loss_fn = build_loss(cfg.train.loss, polarity=pol, lambda_=cfg.train.pcce_lambda)

    def dataset(self, index, split: str, *, train: bool):
        from ..data.clips import ClipDataset

        from ..data.audio_clips import attach_wave_cache

        cfg = self.cfg
        ds = ClipDataset(index.split(split), cfg.input, train=train, augment=cfg.train.augment if train else None,
                         skip_bad=cfg.data.skip_bad, input_keys=self.input_keys)
        attach_wave_cache(ds.loader, cfg.data)  # audio-only models: decoded waveforms cached (data.cache_mb/cache_dir)
        return ds

    def train_step(self, model, batch):
        out = model(**model_inputs(model, batch))
        inner = getattr(model, "module", model)
        if hasattr(inner, "classification_loss"):  # a model whose method trains several heads (MBT, MART)
            loss = inner.classification_loss(out, batch["label"], self.loss_fn)
        else:
            loss = self.loss_fn(out.logits.float(), batch["label"])
        correct = (out.logits.detach().argmax(-1) == batch["label"]).float().mean()
        return StepOutput(loss, len(batch["label"]), {"loss": float(loss.detach()), "accuracy": float(correct)})

    @torch.no_grad()
    def eval_batch(self, model, batch):
        out = model(**model_inputs(model, batch))
        probs = torch.softmax(out.logits.float(), dim=-1).cpu()
        return [{"index": int(batch["index"][i]), "video_id": batch["video_id"][i], "label": int(batch["label"][i]),
                 "probs": probs[i].tolist()} for i in range(probs.shape[0])]

    def compute_metrics(self, rows):
        y_true = [r["label"] for r in rows]
        probs = [r["probs"] for r in rows]
        y_pred = predictions_from_probs(probs)  # unrounded probabilities
        metrics = classification_metrics(y_true, y_pred, self.classes, self.polarity)
        metrics["nll"] = negative_log_likelihood(y_true, probs)
        return metrics

    def prediction_row(self, row):
        probs = row["probs"]
        return {**row, "probs": [round(float(p), 6) for p in probs], "label_name": self.classes[row["label"]],
                "predicted": self.classes[int(np.argmax(probs))]}

    def write_report(self, metrics, rows, out_dir, *, title=""):
        plot_confusion_matrix(metrics["confusion_matrix"], self.classes, str(out_dir / "confusion_matrix.png"),
                              title=f"{title}: accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f}")

    def summary(self, metrics):
        keys = ["split", "num_samples", "accuracy", "macro_f1", "weighted_f1", "sentiment_accuracy", "sentiment_macro_f1", "skipped"]
        return {k: metrics[k] for k in keys if k in metrics}

    def format_prediction(self, sample, out, i=0):
        """Label, confidence, probabilities, sentiment and the emotion over time (``timeline``: per snippet
        its time span, the temporal attention and, where the model gives per-snippet logits, the
        per-snippet class probabilities). A sample of sliding windows (``sample["windows"]``: the
        model ran on its W windows as a batch, ``out`` holds W rows) goes to :meth:`pool_windows`."""
        if sample.get("windows"):
            return self.pool_windows(sample, out)
        classes = self.classes
        probs = torch.softmax(out.logits[i].float(), -1).cpu()
        top = int(probs.argmax())
        att = out.temporal_attention[i].float().cpu().tolist() if out.temporal_attention is not None else None
        snippet_logits = (out.extras or {}).get("snippet_logits")
        snip_probs = torch.softmax(snippet_logits[i].float(), -1).cpu() if snippet_logits is not None else None
        times = sample["snippet_times"].tolist() if "snippet_times" in sample else []
        timeline = []
        for j, (a, b) in enumerate(times):
            entry: dict[str, Any] = {"snippet": j, "start": round(a, 3), "end": round(b, 3)}
            if att is not None and j < len(att):
                entry["attention"] = round(float(att[j]), 6)
            if snip_probs is not None and j < len(snip_probs):
                entry["label"] = classes[int(snip_probs[j].argmax())]
                entry["probabilities"] = {c: round(float(p), 6) for c, p in zip(classes, snip_probs[j])}
            timeline.append(entry)
        result = {"label": classes[top], "confidence": round(float(probs[top]), 6),
                  "probabilities": {c: round(float(p), 6) for c, p in zip(classes, probs)}, "timeline": timeline}
        if self.polarity:
            result["sentiment"] = self.polarity[classes[top]]
        texts = sample.get("text")
        if isinstance(texts, (list, tuple)) and timeline and len(texts) == len(timeline):
            dtcam = (out.extras or {}).get("temporal_emotion_score")
            self._add_words(result, [str(t) for t in texts], sample.get("segment_times"), source=sample.get("text_source"),
                            dtcam=None if dtcam is None else dtcam[i].float().cpu())
        return result

    def _add_words(self, result: dict, texts: list[str], spans=None, source: str | None = None,
                   dtcam: torch.Tensor | None = None) -> None:
        """Each timeline window's text (``text``; ``text_span``: the video segment it was read from, when
        the sample has one) and, where a lexicon is configured (``input.text.lexicon``), its emotional
        words with their lexicon entries; ``result["lexicon"]`` names the lexicon (None: none),
        ``result["text_source"]`` where the text came from (subtitles, embedded, transcript, asr, none).
        With a MART model's per-window temporal emotion score (``dtcam`` (S, C)) and a polarity map, each
        window also gets the video's emotion and degree there (``video_emotion``, ``video_degree``) and each
        word its checks ``E1`` / ``E2`` / ``E3`` and ``verified`` (at ``model.args.verify_level``)."""
        from ..data.lexicon import resolve_lexicon, window_words

        if not hasattr(self, "_lexicon"):
            name = getattr(self.cfg.input.text, "lexicon", "auto")
            self._lexicon = resolve_lexicon(name, self.classes)
        spans = spans.tolist() if torch.is_tensor(spans) else spans
        for j, (entry, text) in enumerate(zip(result["timeline"], texts)):
            entry["text"] = text
            if spans is not None and j < len(spans):
                entry["text_span"] = [round(float(spans[j][0]), 3), round(float(spans[j][1]), 3)]
        if source is not None:
            result["text_source"] = source if isinstance(source, str) else str(source)
        result["lexicon"] = None
        if self._lexicon is not None:
            result["lexicon"] = self._lexicon.name
            found = window_words(texts, self._lexicon)
            for entry, words in zip(result["timeline"], found):
                entry["emotional_words"] = words
            if dtcam is not None and self.polarity:  # a temporal emotion score: each word checked against it
                from ..models.mart import verify_hit_dicts

                result["verify_level"], checked = verify_hit_dicts(dtcam, found, self.classes, self.polarity,
                                                                   dict(self.cfg.model.args))
                for entry, video in zip(result["timeline"], checked):
                    entry.update(video)

    def pool_windows(self, sample, out):
        """The result of a recording analysed in W windows (``out.logits`` (W, K), one row per window,
        ``sample["snippet_times"]`` (W, 2)): the whole-file probabilities are the mean of the W
        windows' softmax probabilities (each window counts the same), its label their argmax; the
        timeline has one entry per window with its span, label and probabilities."""
        classes = self.classes
        win = torch.softmax(out.logits.float(), -1).cpu()  # (W, K)
        probs = win.mean(0)
        top = int(probs.argmax())
        times = sample["snippet_times"].tolist()
        if len(times) != win.shape[0]:
            raise ValueError(f"{win.shape[0]} window outputs for {len(times)} window spans")
        timeline = [{"snippet": j, "start": round(a, 3), "end": round(b, 3), "label": classes[int(win[j].argmax())],
                     "probabilities": {c: round(float(p), 6) for c, p in zip(classes, win[j])}}
                    for j, (a, b) in enumerate(times)]
        result = {"label": classes[top], "confidence": round(float(probs[top]), 6),
                  "probabilities": {c: round(float(p), 6) for c, p in zip(classes, probs)}, "timeline": timeline,
                  "windows": len(timeline)}
        if self.polarity:
            result["sentiment"] = self.polarity[classes[top]]
        return result


TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator (or call): make ``cls`` available as ``task: <cls.name>`` in configs."""
    if not cls.name:
        raise ValueError(f"{cls.__name__}: a task needs a name")
    TASKS[cls.name] = cls
    return cls


register_task(ClassificationTask)


def build_task(cfg: Config, classes, polarity=None) -> Task:
    from ..registry import _ensure_loaded

    _ensure_loaded()  # method files register their tasks (temporal_erasing, localize, gait) beside their models
    if cfg.task not in TASKS:
        raise ConfigError(f"task {cfg.task!r} unknown; tasks: {', '.join(TASKS)}")
    return TASKS[cfg.task](cfg, classes, polarity)
