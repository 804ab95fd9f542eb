"""Run a trained checkpoint on any video file: the label, class probabilities, and the temporal
attention of each snippet with its time span. One :class:`Predictor` serves the CLI, batch runs
and (later) the HTTP service, for every clip classifier of the kit."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from ..config import config_from_dict
from ..data.clips import make_loader
from ..engine.checkpoint import find_checkpoint, load_model
from ..engine.tasks import model_inputs
from ..errors import AffectkitError, MediaError


class Predictor:
    """``Predictor(ckpt).predict("video.mp4")`` -> a JSON-ready dict.

    ``fast=True`` runs the model through :func:`affectkit.deploy.fast.prepare_fast` (BatchNorm
    folded, and an int8 trunk where the CPU supports it; see ``benchmarks/README.md`` for speed and
    agreement with fp32); the default is the plain fp32 path.
    """

    def __init__(self, checkpoint: str | os.PathLike, *, device: str = "cpu", fast: bool = False,
                 allow_silent_audio: bool = False):
        self.checkpoint = find_checkpoint(checkpoint)
        self.device = torch.device(device)
        self.model = load_model(self.checkpoint, device=self.device)
        self.config = self.model.affectkit_config
        cfg = config_from_dict(self.config["config"], where=str(self.checkpoint / "config.json"))
        if allow_silent_audio:
            cfg.input.audio.on_missing = "silence"
        self.input_cfg = cfg.input
        self.classes: list[str] = list(self.config["classes"])
        self.polarity: dict[str, str] | None = self.config.get("polarity")
        self.input_keys = tuple(getattr(self.model, "input_keys", ("video", "audio")))
        self.loader = make_loader(cfg.input, self.input_keys, train=False)
        self.fast = fast
        if fast:
            from .fast import prepare_fast

            self.model = prepare_fast(self.model)

    @property
    def model_name(self) -> str:
        return self.config["model"]["name"]

    def load(self, path: str | os.PathLike, *, audio_path: str | None = None) -> dict[str, Any]:
        """Decode and preprocess one video (raises :class:`MediaError` on bad media)."""
        path = str(path)
        if not os.path.exists(path):
            raise MediaError(path, "file not found")
        return self.loader.load(path, audio_path=audio_path)

    def run(self, sample: dict[str, Any]) -> dict[str, Any]:
        """The model on one preprocessed sample -> the result dict."""
        batch = {k: (v.unsqueeze(0).to(self.device) if torch.is_tensor(v) else v) for k, v in sample.items()}
        t0 = time.perf_counter()
        with torch.inference_mode():  # the fast path manages its own precision
            out = self.model(**model_inputs(self.model, batch))
        probs = torch.softmax(out.logits.float(), -1)[0].cpu()
        top = int(probs.argmax())
        att = out.temporal_attention[0].float().cpu().tolist() if out.temporal_attention is not None else None
        times = sample["snippet_times"].tolist()
        timeline = [{"snippet": i, "start": round(s, 3), "end": round(e, 3),
                     **({"attention": round(float(att[i]), 6)} if att is not None else {})}
                    for i, (s, e) in enumerate(times)]
        result = {
            "video": sample.get("path"),
            "model": self.model_name,
            "checkpoint": str(self.checkpoint),
            "label": self.classes[top],
            "confidence": round(float(probs[top]), 6),
            "probabilities": {c: round(float(p), 6) for c, p in zip(self.classes, probs)},
            "timeline": timeline,
            "duration": round(float(sample.get("duration", 0.0)), 3),
            "fps": round(float(sample.get("fps", 0.0)), 3),
            "inference_seconds": round(time.perf_counter() - t0, 4),
        }
        if self.polarity:
            result["sentiment"] = self.polarity[self.classes[top]]
        return result

    def predict(self, path: str | os.PathLike, *, audio_path: str | None = None) -> dict[str, Any]:
        return self.run(self.load(path, audio_path=audio_path))

    def predict_many(self, paths: Iterable[str | os.PathLike]) -> Iterator[tuple[str, dict | None, str | None]]:
        """Yield ``(path, result, None)`` or ``(path, None, error)``; a broken file never stops the run."""
        for p in paths:
            try:
                yield str(p), self.predict(p), None
            except AffectkitError as err:
                yield str(p), None, str(err)


def plot_timeline(result: dict[str, Any], path: str | os.PathLike) -> None:
    """Emotion over time: the temporal attention of each snippet over its time span, and the
    class probabilities of the video, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 1.2]})
    tl = result["timeline"]
    if tl and "attention" in tl[0]:
        for seg in tl:
            ax.bar(seg["start"], seg["attention"], width=max(1e-3, seg["end"] - seg["start"]), align="edge",
                   color="tab:orange", alpha=0.75, edgecolor="tab:red")
        mids = [(s["start"] + s["end"]) / 2 for s in tl]
        ax.plot(mids, [s["attention"] for s in tl], "o-", color="tab:red", lw=1.5, ms=3)
        ax.set_ylabel("temporal attention")
    for k, (a, b) in enumerate(result.get("true_episodes") or []):  # known emotional episodes, if given
        ax.axvspan(a, b, color="tab:blue", alpha=0.12, label="annotated episode" if k == 0 else None)
    if result.get("true_episodes"):
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlim(0, max(result.get("duration") or 0, tl[-1]["end"] if tl else 1))
    ax.set_xlabel("time (s)")
    title = f"{Path(str(result.get('video', ''))).name}: {result['label']} ({result['confidence']:.2f})"
    if result.get("sentiment"):
        title += f", {result['sentiment']}"
    ax.set_title(title)
    names = list(result["probabilities"])
    vals = [result["probabilities"][n] for n in names]
    colors = ["tab:red" if n == result["label"] else "tab:gray" for n in names]
    bx.barh(range(len(names)), vals, color=colors)
    bx.set_yticks(range(len(names)), names)
    bx.invert_yaxis()
    bx.set_xlim(0, 1)
    bx.set_xlabel("probability")
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)
    plt.close(fig)
