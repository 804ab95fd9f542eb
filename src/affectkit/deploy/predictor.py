"""Run a trained checkpoint on any video file: the label, class probabilities, and the temporal
attention of each snippet with its time span. One :class:`Predictor` serves the CLI, batch runs
and (later) the HTTP service, for every clip classifier of the kit."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from ..config import config_from_dict
from ..data.clips import make_loader
from ..engine.checkpoint import find_checkpoint, load_model
from ..engine.tasks import build_task, model_inputs
from ..registry import model_input_keys
from ..errors import AffectkitError, MediaError
from ..models.outputs import ClassifierOutput

log = logging.getLogger(__name__)


ENGINES = ("torch", "onnx")


class Predictor:
    """``Predictor(ckpt).predict("video.mp4")`` -> a JSON-ready dict.

    ``engine="torch"`` (default) runs a checkpoint folder (or a run folder: its best checkpoint);
    ``fast=True`` (or a backend name) runs it through :func:`affectkit.deploy.accel.accelerate` (the
    backend chosen for this CPU and checked against fp32; recorded in each result's ``fast_path``;
    see ``benchmarks/README.md``). ``engine="onnx"`` runs a
    file written by ``affectkit export onnx`` with ONNX Runtime; the preprocessing comes from the
    file's metadata, so the same samples reach both engines.

    The result: ``media`` (the input file; ``video``, the same, kept for older clients), ``model``, ``checkpoint``, ``engine``, ``label``, ``confidence``,
    ``probabilities`` ``{class: p}``, ``sentiment`` (where the classes have a polarity map),
    ``timeline`` (one entry per snippet: ``start``/``end`` seconds, ``attention`` where the model
    gives one, ``probabilities`` and ``label`` where it gives per-snippet logits), ``duration``,
    ``fps`` (only when the input has video frames), ``inference_seconds``.

    An audio-only model (``audio_cnn``, ``audio_resnet18``) analyses the whole recording: its window
    slides over the file (hop: :meth:`set_audio_hop`, default half the window; the last window
    aligned to the end of the file), the windows run as one batch (in chunks of
    :attr:`window_batch`), and the result is their mean probability with one timeline entry per
    window (``windows``: their number).
    """

    window_batch = 64  # windows of one recording per forward pass

    def __init__(self, checkpoint: str | os.PathLike, *, device: str = "cpu", fast: bool | str = False,
                 allow_silent_audio: bool = False, engine: str = "torch", threads: int | None = None):
        if engine not in ENGINES:
            raise AffectkitError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        self.engine = engine
        self.device = torch.device(device)
        if engine == "onnx":
            from .onnx_runtime import OnnxModel

            if fast:
                raise AffectkitError("--fast is a torch-engine option; the ONNX engine runs the exported graph as is")
            self.model = OnnxModel(checkpoint, threads=threads)
            self.checkpoint = Path(checkpoint)
        else:
            if str(checkpoint).lower().endswith(".onnx"):
                raise AffectkitError(f"{checkpoint}: an ONNX file runs on the ONNX engine: add --engine onnx "
                                     f"(the torch engine reads checkpoint or run folders)")
            self.checkpoint = find_checkpoint(checkpoint)
            self.model = load_model(self.checkpoint, device=self.device)
        self.config = self.model.affectkit_config
        where = str(self.checkpoint if engine == "onnx" else self.checkpoint / "config.json")
        cfg = config_from_dict(self.config["config"], where=where)
        if allow_silent_audio:
            cfg.input.audio.on_missing = "silence"
        self.input_cfg = cfg.input
        self.classes: list[str] = list(self.config["classes"])
        self.polarity: dict[str, str] | None = self.config.get("polarity")
        self.task = build_task(cfg, self.classes, self.polarity)  # formats the results
        self.input_keys = model_input_keys(self.model)
        own_loader = self.task.sample_loader  # a task that reads its files its own way (Task.sample_loader)
        self.loader = own_loader(cfg.input, device=device, allow_silent_audio=allow_silent_audio) if own_loader \
            else make_loader(cfg.input, self.input_keys, train=False)
        self.set_audio_hop(None)  # audio-only models: slide their window over the whole recording
        self.fast = bool(fast)
        self.fast_info = None
        if fast:
            from .accel import accelerate

            self.model = accelerate(self.model, backend=fast if isinstance(fast, str) else "auto")
            info = self.model.fast_info
            self.fast_info = {"backend": info["backend"], "reason": info["reason"], "agreement": info["agreement"],
                              "first_call_seconds": info["first_call_seconds"]}

    @property
    def model_name(self) -> str:
        return self.config["model"]["name"]

    def load(self, path: str | os.PathLike, *, audio_path: str | None = None) -> dict[str, Any]:
        """Decode and preprocess one file (raises :class:`MediaError` on bad media)."""
        return _load_sample(self.loader, str(path), audio_path)

    def forward(self, batch: dict[str, Any]):
        """The model on a batch of samples -> :class:`~affectkit.models.outputs.ClassifierOutput`."""
        with torch.inference_mode():  # the fast path manages its own precision
            return self.model(**model_inputs(self.model, batch))

    def set_audio_hop(self, hop_seconds: float | None = None, *, enabled: bool = True) -> None:
        """Audio-only models: the hop (seconds) of the window slid over a recording (None: half the
        window); ``enabled=False`` analyses one centred window, as evaluation does. Other loaders: no-op."""
        setter = getattr(self.loader, "set_windows", None)
        if setter is not None:
            setter(hop_seconds, enabled=enabled)

    def run(self, sample: dict[str, Any]) -> dict[str, Any]:
        """The model on one preprocessed sample -> the result dict."""
        if sample.get("windows"):
            return self.run_windows(sample)
        batch = self.task.collate()([sample])  # a batch of one, as in training (lists stay lists of one)
        batch = {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in batch.items()}
        t0 = time.perf_counter()
        out = self.forward(batch)
        return self._result(sample, out, time.perf_counter() - t0)

    def run_windows(self, sample: dict[str, Any]) -> dict[str, Any]:
        """A sample of W windows (``sample["windows"] == W``: each model input has a leading W
        dimension, one row per window): the windows run as a batch, the task pools them."""
        count = int(sample["windows"])
        inputs = model_inputs(self.model, sample)
        for key, value in inputs.items():
            if not torch.is_tensor(value) or value.ndim < 1 or value.shape[0] != count:
                raise ValueError(f"windowed sample: input {key!r} must have {count} rows (one per window), "
                                 f"got {tuple(value.shape) if torch.is_tensor(value) else type(value).__name__}")
        t0 = time.perf_counter()
        outs = []
        step = max(1, int(self.window_batch))
        for a in range(0, count, step):
            outs.append(self.forward({k: v[a:a + step].to(self.device) for k, v in inputs.items()}))
        out = outs[0] if len(outs) == 1 else ClassifierOutput(logits=torch.cat([o.logits for o in outs]))
        return self._result(sample, out, time.perf_counter() - t0)

    def _result(self, sample: dict[str, Any], out, seconds: float, i: int = 0) -> dict[str, Any]:
        path = sample.get("path")
        result = {"media": path, "video": path, "model": self.model_name, "checkpoint": str(self.checkpoint),
                  "engine": self.engine + ("-fast" if self.fast else "")}
        result.update(self.task.format_prediction(sample, out, i))  # the task's part: label, timeline, ...
        result["duration"] = round(float(sample.get("duration", 0.0)), 3)
        fps = float(sample.get("fps") or 0.0)
        if fps > 0:  # frames per second of the video; an audio file has none
            result["fps"] = round(fps, 3)
        result["inference_seconds"] = round(seconds, 4)
        if self.fast_info is not None:  # which fast backend ran, why, and its measured agreement
            result["fast_path"] = self.fast_info
        return result

    def predict(self, path: str | os.PathLike, *, audio_path: str | None = None) -> dict[str, Any]:
        return self.run(self.load(path, audio_path=audio_path))

    def predict_many(self, paths: Iterable[str | os.PathLike], *, workers: int = 1,
                     prefetch: int = 2) -> Iterator[tuple[str, dict | None, str | None]]:
        """Yield ``(path, result, None)`` or ``(path, None, error)`` in the order of ``paths``.

        A broken file never stops the run: its error (the file and the problem) is yielded instead.
        With ``workers >= 1``, that many processes decode and preprocess the next files while the
        model runs on the current one (decoding overlapped with inference); ``workers=0`` decodes
        in this process.
        """
        paths = [str(p) for p in paths]
        for path, sample, error in iter_samples(self.loader, paths, workers=workers, prefetch=prefetch):
            if error is not None:
                yield path, None, error
                continue
            try:
                yield path, self.run(sample), None
            except Exception as err:  # noqa: BLE001 - one bad file must not end a batch run
                log.debug("inference failed on %s", path, exc_info=True)
                yield path, None, _describe_error(path, err)


def _describe_error(path: str, err: BaseException) -> str:
    if isinstance(err, AffectkitError):
        return str(err)
    return f"{path}: {type(err).__name__}: {err}"


def _load_sample(loader, path: str, audio_path: str | None = None) -> dict[str, Any]:
    if not os.path.exists(path):
        raise MediaError(path, "file not found")
    if os.path.isdir(path):
        raise MediaError(path, "is a folder, not a media file")
    return loader.load(path, audio_path=audio_path)


class _SampleSource(torch.utils.data.Dataset):
    """Paths -> ``(path, sample, None)`` or ``(path, None, error)``; runs in DataLoader workers."""

    def __init__(self, loader, paths: list[str]):
        self.loader, self.paths = loader, paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        path = self.paths[i]
        try:
            return path, _load_sample(self.loader, path), None
        except Exception as err:  # noqa: BLE001 - reported per file, the run goes on
            return path, None, _describe_error(path, err)


def _first(batch):
    return batch[0]


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)  # decoding workers leave the cores' math threads to the model


def iter_samples(loader, paths: list[str], *, workers: int = 1, prefetch: int = 2):
    """Preprocessed samples of ``paths`` in order, decoded by ``workers`` background processes."""
    source = _SampleSource(loader, paths)
    if workers <= 0 or len(paths) <= 1:
        yield from (source[i] for i in range(len(source)))
        return
    dl = torch.utils.data.DataLoader(source, batch_size=1, shuffle=False, num_workers=workers,
                                     collate_fn=_first, prefetch_factor=max(1, prefetch),
                                     worker_init_fn=_worker_init)
    yield from dl


ATTENTION_LABEL = "temporal attention (model's weight per snippet)"


def plot_timeline(result: dict[str, Any], path: str | os.PathLike):
    """Emotion over time, in one PNG: the per-snippet class probabilities as one line per class (the
    video's label drawn thickest), annotated episodes (``result["true_episodes"]``, ``[start, end]``
    pairs) shaded when given, and below, smaller, the temporal attention (the model's weight per
    snippet); the emotional words of each window's text (``emotional_words``) are written at the top
    of its span; the title names the video, its label, confidence and sentiment. A result without
    per-snippet probabilities gets the attention alone. Returns the (closed) matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tl = result.get("timeline") or []
    with_probs = bool(tl) and all("probabilities" in s for s in tl)
    with_att = bool(tl) and all("attention" in s for s in tl)
    mids = [(s["start"] + s["end"]) / 2 for s in tl]
    if with_probs:
        fig, (ax, att_ax) = plt.subplots(2, 1, figsize=(10, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        names = list(result.get("probabilities") or tl[0]["probabilities"])
        for name in names:
            main = name == result.get("label")
            ax.plot(mids, [s["probabilities"].get(name, 0.0) for s in tl], "o-", ms=3, lw=2.6 if main else 1.3,
                    label=name, zorder=3 if main else 2)
        ax.set_ylim(0, 1)
        ax.set_ylabel("class probability per snippet")
    else:
        fig, ax = plt.subplots(1, 1, figsize=(10, 3.6))
        att_ax = None
    target = att_ax if att_ax is not None else ax  # the attention: a secondary view, or the only one
    if with_att:
        for seg in tl:
            target.bar(seg["start"], seg["attention"], width=max(1e-3, seg["end"] - seg["start"]), align="edge",
                       color="tab:orange", alpha=0.6, edgecolor="tab:red")
        target.plot(mids, [s["attention"] for s in tl], "o-", color="tab:red", lw=1.2, ms=2)
    if att_ax is not None:
        att_ax.set_title(ATTENTION_LABEL, fontsize=9, loc="left")
        att_ax.set_ylabel("attention", fontsize=8)
    else:
        ax.set_ylabel(ATTENTION_LABEL, fontsize=9)
    for axis in (ax, att_ax):
        if axis is None:
            continue
        for k, (a, b) in enumerate(result.get("true_episodes") or []):  # known emotional episodes, if given
            axis.axvspan(a, b, color="tab:blue", alpha=0.12, label="annotated episode" if k == 0 and axis is ax else None)
        for k, kf in enumerate(result.get("keyframes") or []):  # emotional keyframes the temporal attention located (CTEN)
            axis.axvspan(kf["start"], kf["end"], color="tab:green", alpha=0.15, label="keyframes" if k == 0 and axis is ax else None)
    for seg in tl:  # emotional words the lexicon found in each window's text (models taking text)
        words = [w["word"] for w in seg.get("emotional_words") or []]
        if words:
            label = ", ".join(words[:3]) + (" …" if len(words) > 3 else "")
            ax.annotate(label, ((seg["start"] + seg["end"]) / 2, 0.98), xycoords=("data", "axes fraction"), ha="center",
                        va="top", fontsize=7, rotation=90 if len(tl) > 8 else 0, color="0.25")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="class" if with_probs else None)
    ax.set_xlim(0, max(result.get("duration") or 0, tl[-1]["end"] if tl else 1))
    (att_ax if att_ax is not None else ax).set_xlabel("time (s)")
    title = f"{Path(str(result.get('video', ''))).name}: {result['label']} ({result['confidence']:.2f})"
    if result.get("sentiment"):
        title += f", sentiment {result['sentiment']}"
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)
    plt.close(fig)
    return fig
