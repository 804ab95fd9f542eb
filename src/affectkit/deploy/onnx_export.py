"""``affectkit export onnx CKPT -o model.onnx``: a checkpoint as one self-describing ONNX file.

Any registered clip classifier exports the same way: the model names its inputs (``input_keys``)
and gives example inputs (``example_inputs(batch_size)``); the graph takes those tensors (batch
size dynamic) and returns ``logits`` plus, where the model has them, ``temporal_attention`` and
``snippet_logits``. The graph starts *after* decoding: the file's metadata records everything
that happens before it (the checkpoint's whole config, the classes, and a readable summary of the
preprocessing), which is what ``Predictor(engine="onnx")`` / ``affectkit predict --engine onnx``
read to turn a video into the graph's inputs exactly as the PyTorch engine does.

Metadata keys (``onnx.ModelProto.metadata_props``, strings): ``affectkit.format_version``,
``affectkit.version``, ``affectkit.config`` (JSON: the checkpoint's ``config.json``),
``affectkit.inputs`` / ``affectkit.outputs`` (JSON lists), ``affectkit.preprocessing`` (JSON) and
``affectkit.verification`` (JSON: the largest differences from PyTorch measured at export).

The exporter is PyTorch's own (``torch.onnx.export(..., dynamo=True)``; needs ``onnx`` and
``onnxscript``, the ``onnx`` extra); the file is written atomically.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import AffectkitError, CheckpointError

EXPORTER_LOGGERS = ("torch.onnx", "torch.export", "onnx_ir", "onnxscript")  # quieted during `export onnx`

log = logging.getLogger(__name__)

ONNX_FORMAT_VERSION = 1
OUTPUTS = ("logits", "temporal_attention", "snippet_logits")


class _ExportGraph(nn.Module):
    """Tensor-in, tuple-out view of a kit model (what the exporter traces)."""

    def __init__(self, model: nn.Module, input_keys: tuple[str, ...], outputs: tuple[str, ...]):
        super().__init__()
        self.model, self.input_keys, self.outputs = model, input_keys, outputs

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(**dict(zip(self.input_keys, tensors)))
        found = {"logits": out.logits, "temporal_attention": out.temporal_attention, **(out.extras or {})}
        return tuple(found[name] for name in self.outputs)


def preprocessing_summary(config: dict, input_keys: tuple[str, ...]) -> dict[str, Any]:
    """What happens to a file before the graph (readable; the full config is in ``affectkit.config``)."""
    inp = config.get("config", {}).get("input", {})
    audio = dict(inp.get("audio", {}))
    summary: dict[str, Any] = {"inputs": list(input_keys)}
    if "video" in input_keys:
        summary["video"] = {
            "shape": ["batch", inp.get("seq_len"), 3, inp.get("snippet_duration"), inp.get("sample_size"), inp.get("sample_size")],
            "layout": "batch, snippet, RGB, frame, height, width",
            "values": "RGB pixels as float32 in [0, 255]; the model normalises",
            "sampling": f"{inp.get('seq_len')} snippets of {inp.get('snippet_duration')} frames "
                        f"(frame step {inp.get('frame_step', 1)}) at the centres of equal parts of the video",
            "spatial": f"short side resized to {inp.get('sample_size')}, centre square crop",
        }
    if "audio" in input_keys:
        summary["audio"] = {
            "shape": ["batch", audio.get("num_frames"), audio.get("n_mfcc") if audio.get("kind") == "mfcc" else audio.get("n_mels")],
            "features": audio,
            "source": "the file's first audio stream, mixed to mono and resampled",
        }
    return summary


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, *, opset: int = 18,
                verify: bool = True) -> dict[str, Any]:
    """Export a checkpoint (folder or run folder) to ``out``; returns a report (outputs, sizes,
    the max |ONNX Runtime - PyTorch| differences when ``verify``)."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise AffectkitError(f"ONNX export needs the onnx and onnxscript packages (pip install 'affectkit[onnx]'): {err}") from None
    from .. import __version__
    from ..engine.checkpoint import load_model

    model = load_model(checkpoint)
    config = model.affectkit_config
    keys = tuple(getattr(model, "input_keys", ()))
    if not keys or not hasattr(model, "example_inputs"):
        raise CheckpointError(f"{checkpoint}: model {config['model']['name']!r} does not declare input_keys/example_inputs; "
                              "it cannot be exported yet")
    example = model.example_inputs(batch_size=2)  # batch 2: a batch of 1 would be specialised as a constant
    with torch.inference_mode():
        probe = model(**example)
    available = {"logits": probe.logits, "temporal_attention": probe.temporal_attention, **(probe.extras or {})}
    outputs = tuple(n for n in OUTPUTS if available.get(n) is not None)
    graph = _ExportGraph(model, keys, outputs).eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    t0 = time.perf_counter()
    try:
        program = torch.onnx.export(
            graph, tuple(example[k] for k in keys), dynamo=True, opset_version=opset, verbose=False,
            input_names=list(keys), output_names=list(outputs),
            dynamic_shapes=(tuple({0: batch} for _ in keys),),
        )
    except Exception as err:  # the exporter's own errors are long; keep the cause
        raise AffectkitError(f"ONNX export of {config['model']['name']!r} failed: {type(err).__name__}: {err}") from err
    export_s = time.perf_counter() - t0
    meta = {
        "affectkit.format_version": str(ONNX_FORMAT_VERSION),
        "affectkit.version": __version__,
        "affectkit.config": json.dumps(config),
        "affectkit.inputs": json.dumps(list(keys)),
        "affectkit.outputs": json.dumps(list(outputs)),
        "affectkit.preprocessing": json.dumps(preprocessing_summary(config, keys)),
    }
    report: dict[str, Any] = {"checkpoint": str(checkpoint), "out": str(out), "opset": opset, "inputs": list(keys),
                              "outputs": list(outputs), "export_seconds": round(export_s, 2)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        if verify:
            for k, v in meta.items():
                program.model.metadata_props[k] = v
            program.save(str(tmp))
            report["verification"] = verify_onnx(tmp, model, keys, outputs)
            meta["affectkit.verification"] = json.dumps(report["verification"])
        for k, v in meta.items():
            program.model.metadata_props[k] = v
        program.save(str(tmp))
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    report["size_mb"] = round(out.stat().st_size / 2**20, 2)
    return report


def verify_onnx(path: str | os.PathLike, model: nn.Module, keys: tuple[str, ...], outputs: tuple[str, ...],
                batch_sizes: tuple[int, ...] = (1, 3)) -> dict[str, Any]:
    """Max |ONNX Runtime - PyTorch| per output (and on the probabilities) on example inputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst: dict[str, float] = {}
    for bs in batch_sizes:
        example = model.example_inputs(batch_size=bs)
        got = session.run(list(outputs), {k: example[k].numpy() for k in keys})
        with torch.inference_mode():
            ref = _ExportGraph(model, keys, outputs)(*(example[k] for k in keys))
        for name, a, b in zip(outputs, got, ref):
            worst[name] = max(worst.get(name, 0.0), float((torch.from_numpy(a) - b.float()).abs().max()))
        probs = (torch.softmax(torch.from_numpy(got[0]), -1) - torch.softmax(ref[0].float(), -1)).abs().max()
        worst["probabilities"] = max(worst.get("probabilities", 0.0), float(probs))
    return {"max_abs_diff": worst, "batch_sizes": list(batch_sizes), "inputs": "model.example_inputs"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint folder or run folder")
    p.add_argument("-o", "--out", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--no-verify", action="store_true", help="skip the comparison with PyTorch on example inputs")


@contextlib.contextmanager
def quiet_exporter():
    """During an export only: drop the exporter's chatter (progress logs, "torchvision is not installed.
    Skipping ..." from its op registry, its FutureWarnings and UserWarnings); errors still show, and
    the loggers' levels and the warning filters are restored afterwards."""
    loggers = [logging.getLogger(n) for n in EXPORTER_LOGGERS]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"(torch\.onnx|torch\.export|onnxscript|onnx_ir).*")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def run_from_args(args) -> int:
    with quiet_exporter():
            report = export_onnx(args.checkpoint, args.out, opset=args.opset, verify=not args.no_verify)
    print(json.dumps(report, indent=2))
    return 0
