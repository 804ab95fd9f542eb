"""Temporal erasing (CTEN, CVPR 2023; spec ``methods_vaanet_cten_tsl.md`` section 2.4) as a task.

``task: temporal_erasing`` trains a clip classifier that returns a temporal attention ``(B, S)``
(CTEN, CTEN visual-only) on three views of each batch and evaluates it like ``classify``, on the
original view only (the paper's protocol; the original code's max-of-three "History Acc" is
optimistic test-set selection and is not offered).

The training step, for each batch:

1. **original** view: ``logits_1, gamma = model(batch)``, ``L_1 = loss(logits_1, y)``.
2. threshold per video (:func:`erase_threshold`): ``tau = theta * max_t gamma + (1 - theta) * min_t
   gamma`` (theta = 0.7: min-max normalised gamma >= theta, the paper's rule);
   :func:`erase_masks`: **context** = ``gamma < tau`` (keyframes erased), **key** = ``gamma > tau``
   (keyframes only); a snippet exactly at ``tau`` is in neither; an empty set (a constant gamma,
   e.g. an all-zero ReLU attention) falls back to all snippets.
3. **context** view and **key** view: the same videos rebuilt from the selected segments only
   (:func:`view_indices`), ``L_2``, ``L_3``.
4. ``loss = (L_1 + L_2 + L_3) / 3`` (the original code; the paper's unweighted sum differs by a
   factor absorbed by the learning rate). Gradients flow through all three passes; gamma is used
   detached to choose the views; a frozen trunk runs without gradients. When the audio is not
   erased (``erase_audio: false``) the three views share it: a model with ``audio_stream(audio,
   passes=)`` and ``forward(audio_features=)`` (CTEN) runs its audio stream once per step and feeds
   the result to the three passes (the same loss, gradients (summed over the views, to float
   rounding) and BatchNorm running statistics as three audio passes, at a third of their cost; not
   under DistributedDataParallel, which broadcasts buffers before each forward call).

How the erased views are built (model option ``erase_views``): the original runs its TSN sampler
again on the frame list of the selected segments (segment t = 1-based frames ``t*L+1 .. (t+1)*L``,
``L = n_frames // S``, :func:`segment_frames`) and decodes those frames from disk. When the
selected frames fill S snippets without loop padding (every real-length video), that puts the
selected segments, in temporal order, stretched over the S positions.

* ``"fast"`` (default): the same with the snippets already decoded for the batch: position ``j``
  takes the snippet of selected segment ``k(j) = floor(j * n_selected / S)``
  (:func:`view_indices`). It differs from the original in that a segment chosen for several
  positions repeats its one decoded snippet instead of showing other frames of the segment.
* ``"faithful"``: the original's way. :func:`faithful_frame_indices` re-runs the kit's TSN sampler
  (:func:`~affectkit.data.sampling.snippet_indices`, random offsets, loop padding, ``frame_step``)
  on the reduced frame list, and :class:`FaithfulViews` decodes those frames from the sample's file
  (``batch["path"]``, ``batch["num_frames"]``, which the video loader keeps) with the kit's reader
  (:func:`~affectkit.data.video.open_video`, the loader's decode size) and applies the *training*
  spatial transform (a fresh random crop and augmentation draw, ``train.augment``), in the main
  process as the original. The trunk then runs on the new pixels (with ``erase_on: features`` too:
  there are no features to gather). Costs two extra decodes of S*T frames per video per step.

Options, read from the model (its config records them, so a checkpoint keeps them):
``erase_threshold`` (theta, default 0.7); ``erase_audio`` (default False, the original code: the
audio of every view is the original's; True, the paper: the audio windows are re-sampled with the
same indices, :func:`view_indices`, with either ``erase_views``; needs one audio window per
snippet); ``erase_views`` (default ``"fast"``, above); ``erase_on`` (default ``"features"``: with a
frozen trunk, the trunk runs once on the decoded snippets and the views gather its per-snippet
features, which is what re-running it would compute when its BatchNorm is frozen, at a third of
the cost; ``"video"``: the views gather the pixel snippets and each pass runs the trunk, as the
original, whose trunk BatchNorm in train mode then sees each view's own batch statistics).

:meth:`TemporalErasingTask.format_prediction` adds ``keyframes`` (:func:`keyframe_segments`).
"""
from __future__ import annotations

import inspect
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..data.sampling import snippet_indices
from ..errors import ConfigError
from .tasks import ClassificationTask, StepOutput, model_inputs, register_task

__all__ = ["erase_threshold", "erase_masks", "view_indices", "gather_snippets", "segment_frames",
           "faithful_frame_indices", "FaithfulViews", "keyframe_segments", "TemporalErasingTask",
           "DEFAULT_THRESHOLD", "ERASE_VIEWS"]

DEFAULT_THRESHOLD = 0.7
ERASE_VIEWS = ("fast", "faithful")


def erase_threshold(gamma: Tensor, theta: float = DEFAULT_THRESHOLD) -> Tensor:
    """``tau = theta * max + (1 - theta) * min`` over the last axis: (B, S) -> (B, 1)."""
    hi = gamma.max(dim=-1, keepdim=True).values
    lo = gamma.min(dim=-1, keepdim=True).values
    return theta * hi + (1.0 - theta) * lo


def erase_masks(gamma: Tensor, theta: float = DEFAULT_THRESHOLD) -> tuple[Tensor, Tensor]:
    """(context, key) bool masks (B, S): ``gamma < tau`` and ``gamma > tau`` (see the module doc).
    Either may be empty (all False) for a video; :func:`view_indices` then uses every snippet."""
    tau = erase_threshold(gamma, theta)
    return gamma < tau, gamma > tau


def view_indices(mask: Tensor) -> Tensor:
    """Snippet indices (B, S) of the erased view of each video: position ``j`` takes selected
    segment ``sel[floor(j * len(sel) / S)]`` (the selected segments in order, stretched over S);
    a video with no selected segment keeps all (``0 .. S-1``)."""
    b, s = mask.shape
    out = torch.arange(s, device=mask.device).repeat(b, 1)
    pos = torch.arange(s, device=mask.device)
    for i in range(b):
        sel = torch.nonzero(mask[i], as_tuple=False).flatten()
        if sel.numel():
            out[i] = sel[(pos * sel.numel()) // s]
    return out


def gather_snippets(x: Tensor, idx: Tensor) -> Tensor:
    """``x`` (B, S, ...) -> (B, S, ...) with row ``i`` re-ordered by ``idx[i]`` (B, S)."""
    rows = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
    return x[rows, idx.to(x.device)]


def gather_audio(audio: Tensor, idx: Tensor) -> Tensor:
    """``audio`` (B, F, bins) of S equal windows -> the windows re-ordered by ``idx`` (B, S)."""
    b, f, bins = audio.shape
    s = idx.shape[1]
    if f % s:
        raise ConfigError(f"temporal_erasing with erase_audio: {f} audio frames do not split into {s} windows (one per snippet)")
    return gather_snippets(audio.reshape(b, s, f // s, bins), idx).reshape(b, f, bins)


def segment_frames(segments: Sequence[int], num_frames: int, seq_len: int) -> list[int]:
    """The 1-based frame numbers of the selected segments, as the original builds the frame list of
    an erased view: segment ``t`` covers frames ``t*L+1 .. (t+1)*L`` with ``L = num_frames // seq_len``.
    No segment selected: all frames ``1 .. num_frames`` (the empty-selection fallback)."""
    length = num_frames // seq_len
    frames = [f for t in sorted(int(t) for t in segments) for f in range(t * length + 1, (t + 1) * length + 1)]
    return frames or list(range(1, num_frames + 1))


def faithful_frame_indices(segments: Sequence[int], num_frames: int, seq_len: int, snippet_duration: int, *,
                           frame_step: int = 1, random: bool = True,
                           rng: np.random.Generator | None = None) -> np.ndarray:
    """The 0-based frames (seq_len, snippet_duration) of a faithful erased view: the TSN sampler
    (:func:`~affectkit.data.sampling.snippet_indices`: every ``frame_step``-th entry, loop padding,
    S equal parts, a random offset in each, or centred with ``random=False``) run on the reduced
    frame list :func:`segment_frames` ``(segments, num_frames, seq_len)`` (1-based, hence ``- 1``)."""
    frames = np.asarray(segment_frames(segments, num_frames, seq_len), dtype=np.int64) - 1
    pos = snippet_indices(len(frames), seq_len, snippet_duration, frame_step=frame_step, random=random, rng=rng)
    return frames[pos]


class FaithfulViews:
    """Erased views decoded from the files (``erase_views: faithful``; see the module docstring).

    ``FaithfulViews(input_cfg, augment)``; ``views(batch, mask, rng)`` -> video (B, S, 3, T, H, W)
    float in [0, 255]: for video ``i``, the frames :func:`faithful_frame_indices` selects for the
    segments where ``mask[i]`` is True (all frames when none is), decoded from ``batch["path"][i]``
    as the video loader decodes (same short-side size) and put through the training spatial
    transform. ``last_indices`` keeps the (B, S, T) frames of the latest call."""

    def __init__(self, input_cfg, augment=None):
        from ..data.transforms import VideoSpatialTransform

        self.cfg = input_cfg
        aug = {} if augment is None else dict(crop=augment.crop, p=augment.p, ops=augment.ops,
                                               rotate_degrees=augment.rotate_degrees, brightness=augment.brightness)
        self.spatial = VideoSpatialTransform(input_cfg.sample_size, input_cfg.seq_len, True, key="video", **aug)
        self.last_indices: np.ndarray | None = None

    def views(self, batch: dict, mask: Tensor, rng: np.random.Generator) -> Tensor:
        from ..data.video import open_video

        paths, counts = batch.get("path"), batch.get("num_frames")
        if paths is None or counts is None:
            raise ConfigError("erase_views=faithful re-decodes each video: the batch needs 'path' and 'num_frames' "
                              "(written by the video loader); use erase_views=fast on batches without them")
        cfg, out, used = self.cfg, [], []
        counts = counts.tolist() if torch.is_tensor(counts) else list(counts)
        for i in range(mask.shape[0]):
            segments = torch.nonzero(mask[i], as_tuple=False).flatten().tolist()
            idx = faithful_frame_indices(segments, int(counts[i]), cfg.seq_len, cfg.snippet_duration,
                                         frame_step=cfg.frame_step, random=True, rng=rng)
            with open_video(paths[i]) as reader:
                info = reader.info
                size = cfg.sample_size if min(info.width, info.height) > cfg.sample_size else None
                frames = reader.read_frames(idx.reshape(-1).tolist(), size=size)
            out.append(self.spatial({"video": frames}, rng=rng)["video"])
            used.append(idx)
        self.last_indices = np.stack(used)
        return torch.stack(out)


def keyframe_segments(attention: Sequence[float], spans: Sequence[Sequence[float]],
                      theta: float = DEFAULT_THRESHOLD) -> list[dict[str, float]]:
    """Emotional keyframes located by the temporal attention.

    Rule: the snippets whose min-max normalised attention is ``>= theta`` (the paper's keyframe
    rule, ``gamma >= tau`` of :func:`erase_threshold`); consecutive ones are merged into one
    segment ``{start, end, score}`` from the first one's start to the last one's end (``spans``:
    per snippet ``(start, end)`` seconds), ``score`` = the mean normalised attention over the
    merged snippets (in [theta, 1]). A constant attention locates nothing: ``[]``.
    """
    a = np.asarray(attention, dtype=np.float64)
    if a.size == 0 or len(spans) < a.size:
        return []
    lo, hi = float(a.min()), float(a.max())
    if not hi - lo > 1e-12 * max(1.0, abs(hi)):
        return []
    norm = (a - lo) / (hi - lo)
    keep = norm >= theta - 1e-9
    out, j = [], 0
    while j < a.size:
        if not keep[j]:
            j += 1
            continue
        k = j
        while k + 1 < a.size and keep[k + 1]:
            k += 1
        out.append({"start": round(float(spans[j][0]), 3), "end": round(float(spans[k][1]), 3),
                    "score": round(float(norm[j:k + 1].mean()), 6)})
        j = k + 1
    return out


def _segment_spans(sample: dict, seq_len: int, snippet_duration: int) -> list[tuple[float, float]] | None:
    """The time span of each of the S segments a snippet stands for (segment t: frames
    ``[t*L, (t+1)*L)``, ``L = n_frames // S``), when the video is long enough to need no loop
    padding; else None (the snippets' own spans are used)."""
    duration, fps = float(sample.get("duration") or 0.0), float(sample.get("fps") or 0.0)
    if duration <= 0 or fps <= 0:
        return None
    n = int(round(duration * fps))
    if n < seq_len * snippet_duration:
        return None
    length = n // seq_len
    return [(t * length / fps, (t + 1) * length / fps) for t in range(seq_len)]


@register_task
class TemporalErasingTask(ClassificationTask):
    """Clip classification trained with CTEN's temporal erasing (see the module docstring)."""

    name = "temporal_erasing"

    _faithful: FaithfulViews | None = None

    @staticmethod
    def _options(model) -> tuple[float, bool, str]:
        inner = getattr(model, "module", model)
        return (float(getattr(inner, "erase_threshold", DEFAULT_THRESHOLD)), bool(getattr(inner, "erase_audio", False)),
                str(getattr(inner, "erase_on", "video")))

    @staticmethod
    def _shares_audio(model, inner) -> bool:
        """Whether the views' unerased audio can be computed once (:meth:`CTEN.audio_stream` with
        ``passes``, fed as ``audio_features``): not under DistributedDataParallel, which broadcasts
        the BatchNorm buffers at the start of each of the three forward calls."""
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            return False
        stream = getattr(inner, "audio_stream", None)
        if not callable(stream):
            return False
        try:
            params = inspect.signature(inner.forward).parameters
            takes = "audio_features" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
            return takes and "passes" in inspect.signature(stream).parameters
        except (TypeError, ValueError):
            return False

    def _faithful_views(self) -> FaithfulViews:
        if self._faithful is None:
            self._faithful = FaithfulViews(self.cfg.input, self.cfg.train.augment)
        return self._faithful

    def train_step(self, model, batch) -> StepOutput:
        inner = getattr(model, "module", model)
        theta, erase_audio, erase_on = self._options(model)
        views_mode = str(getattr(inner, "erase_views", "fast"))
        if views_mode not in ERASE_VIEWS:
            raise ConfigError(f"erase_views must be one of {', '.join(ERASE_VIEWS)}, got {views_mode!r}")
        inputs = model_inputs(model, batch)
        y = batch["label"]
        if erase_on == "features" and "video" in inputs and getattr(inner, "frozen_trunk", False) \
                and hasattr(inner, "trunk_features"):
            inputs["video_features"] = inner.trunk_features(inputs.pop("video"))  # no_grad inside: frozen
        if "audio" in inputs and not erase_audio and self._shares_audio(model, inner):
            # the three views have the same audio: one audio stream pass (with gradient) feeds them all
            inputs["audio_features"] = inner.audio_stream(inputs.pop("audio"), passes=3)
        out = model(**inputs)
        if out.temporal_attention is None:
            raise ConfigError(f"task temporal_erasing needs a model with a temporal attention; "
                              f"{type(inner).__name__} returns none")
        losses = {"original": self.loss_fn(out.logits.float(), y)}
        context, key = erase_masks(out.temporal_attention.detach().float(), theta)
        logs: dict[str, float] = {"key_fraction": float(key.float().mean()),
                                  "accuracy": float((out.logits.detach().argmax(-1) == y).float().mean())}
        rng = None
        if views_mode == "faithful":  # the step's draws follow torch's seed (the trainer's)
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)).item()))
        for name, mask in (("context", context), ("key", key)):
            idx = view_indices(mask)
            view = {}
            for k, v in inputs.items():
                if k in ("video", "video_features") and views_mode == "faithful":
                    pixels = self._faithful_views().views(batch, mask.cpu(), rng).to(v.device)
                    view[k] = inner.trunk_features(pixels) if k == "video_features" else pixels
                elif k in ("video", "video_features"):
                    view[k] = gather_snippets(v, idx)
                elif k == "audio" and erase_audio:
                    view[k] = gather_audio(v, idx)
                else:
                    view[k] = v
            losses[name] = self.loss_fn(model(**view).logits.float(), y)
        loss = (losses["original"] + losses["context"] + losses["key"]) / 3.0
        logs.update({"loss": float(loss.detach()), **{f"loss_{k}": float(v.detach()) for k, v in losses.items()}})
        return StepOutput(loss, len(y), logs)

    def format_prediction(self, sample, out, i=0):
        """The classification result plus ``keyframes``: ``[{start, end, score}]``
        (:func:`keyframe_segments` on the temporal attention, with the model's ``erase_threshold``;
        each snippet stands for its segment of the video, ``[t*L, (t+1)*L)`` frames, when the video
        needs no loop padding, else for its own span)."""
        result = super().format_prediction(sample, out, i)
        att = out.temporal_attention
        if att is None or "windows" in result:
            return result
        theta = float(self.cfg.model.args.get("erase_threshold", DEFAULT_THRESHOLD)) if self.cfg.model.args else DEFAULT_THRESHOLD
        gamma = att[i].float().cpu().tolist()
        spans = _segment_spans(sample, len(gamma), int(self.cfg.input.snippet_duration))
        if spans is None:
            spans = [(s["start"], s["end"]) for s in result["timeline"]]
        result["keyframes"] = keyframe_segments(gamma, spans, theta)
        return result
