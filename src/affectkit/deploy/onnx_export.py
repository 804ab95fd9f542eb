"""``affectkit export onnx CKPT -o model.onnx``: a checkpoint as one self-describing ONNX file.

Any registered clip classifier exports the same way: the model names its inputs (``input_keys``)
and gives example inputs (``example_inputs(batch_size)``); the graph takes those tensors (batch
size dynamic) and returns ``logits`` plus, where the model has them, ``temporal_attention`` and
``snippet_logits``, and the ``extras`` the model names in ``export_extras`` (BPM-GCN: each stream's
logits, ``logits_posture`` and ``logits_movement``; the ONNX engine returns them in ``extras``, so
the results match the PyTorch engine's). The graph starts *after* decoding: the file's metadata records everything
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


def graph_keys(model: nn.Module, keys: tuple[str, ...]) -> tuple[str, ...]:
    """The graph's inputs for a model's sample ``keys``: strings cannot enter a graph, so a text model's
    ``text`` becomes ``text_ids`` and ``text_mask`` (B, S, L) with L its text encoder's ``max_length``; a model
    that reads ``text`` without a text encoder (MART over a video + audio MBT: the words it shows in predict)
    leaves it out of the graph."""
    out: list[str] = []
    for k in keys:
        if k == "text":
            out.extend(("text_ids", "text_mask") if getattr(model, "text_encoder", None) is not None else ())
        else:
            out.append(k)
    return tuple(out)


def text_tokenizer_spec(model: nn.Module) -> dict[str, Any] | None:
    from ..models.blocks.text_encoder import tokenizer_spec

    enc = getattr(model, "text_encoder", None)
    return tokenizer_spec(enc) if enc is not None else None


def graph_feed(model: nn.Module, example: dict[str, Any], keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """A sample batch (``text`` as strings) -> the graph's input tensors (``text_ids``/``text_mask`` padded to
    the encoder's ``max_length``, a static axis of the graph)."""
    from ..models.blocks.text_encoder import pad_tokens

    feed = {k: v for k, v in example.items() if k in keys}
    if "text_ids" in keys and "text_ids" not in example:
        enc = model.text_encoder
        ids, mask = pad_tokens(*model.tokenize_text(example["text"]), enc.max_length, enc.pad_id)
        feed["text_ids"], feed["text_mask"] = ids, mask
    return feed


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
    if "skeleton" in input_keys:
        skel = dict(inp.get("skeleton", {}))
        summary["skeleton"] = {
            "shape": ["batch", skel.get("channels"), skel.get("max_frames"), skel.get("num_joints")],
            "layout": "batch, coordinate (x, y, z), frame, joint",
            "values": "joint coordinates as float32; frames past the sequence's end are zeros",
            "source": "a skeleton file (.npy, .npz, .csv, .h5) or, through the task's pose front end, a video; "
                      "the checkpoint's task loader (gait: root-centred, the first frames or sub-sampled, zero-padded)",
        }
    if "audio" in input_keys:
        summary["audio"] = {
            "shape": ["batch", audio.get("num_frames"), audio.get("n_mfcc") if audio.get("kind") == "mfcc" else audio.get("n_mels")],
            "features": audio,
            "source": "the file's first audio stream, mixed to mono and resampled",
        }
    return summary


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, *, opset: int = 18,
                verify: bool = True, int8: bool = False, calibration_samples: int = 16,
                calibration_data: str | None = None) -> dict[str, Any]:
    """Export a checkpoint (folder or run folder) to ``out``; returns a report (outputs, sizes,
    the max |ONNX Runtime - PyTorch| differences when ``verify``).

    ``int8=True`` writes the graph quantised by ONNX Runtime (static, QDQ: weights int8 per output
    channel, activations uint8 per tensor, MinMax ranges) from ``calibration_samples`` samples of
    the checkpoint's own data (its validation split, else train; ``calibration_data`` names another
    ``data.path``), through the same preprocessing as training; where that data cannot be read, the
    model's random ``example_inputs`` calibrate it and the metadata says so. The calibration
    (source, split, samples, method) is recorded in ``affectkit.quantization``."""
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
    sample_keys, keys = keys, graph_keys(model, keys)
    example = graph_feed(model, example, keys)
    available = {"logits": probe.logits, "temporal_attention": probe.temporal_attention, **(probe.extras or {})}
    wanted = OUTPUTS + tuple(n for n in getattr(model, "export_extras", ()) if n not in OUTPUTS)
    outputs = tuple(n for n in wanted if available.get(n) is not None)
    graph = _ExportGraph(model, keys, outputs).eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    dims = _dynamic_dims(model, keys, batch)
    t0 = time.perf_counter()
    try:
        program = torch.onnx.export(
            graph, tuple(example[k] for k in keys), dynamo=True, opset_version=opset, verbose=False,
            input_names=list(keys), output_names=list(outputs),
            dynamic_shapes=(dims,),
        )
    except Exception as err:  # the exporter's own errors are long; keep the cause
        raise AffectkitError(f"ONNX export of {config['model']['name']!r} failed: {type(err).__name__}: {err}") from err
    export_s = time.perf_counter() - t0
    meta = {
        "affectkit.format_version": str(ONNX_FORMAT_VERSION),
        "affectkit.version": __version__,
        "affectkit.config": json.dumps(config),
        "affectkit.inputs": json.dumps(list(sample_keys)),
        "affectkit.graph_inputs": json.dumps(list(keys)),
        "affectkit.outputs": json.dumps(list(outputs)),
        "affectkit.preprocessing": json.dumps(preprocessing_summary(config, sample_keys)),
    }
    spec = text_tokenizer_spec(model) if "text_ids" in keys else None
    if spec is not None:
        meta["affectkit.text_tokenizer"] = json.dumps(spec)
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
        if int8:
            report["quantization"] = quantize_int8(tmp, model, keys, outputs, checkpoint=checkpoint,
                                                   samples=calibration_samples, data_path=calibration_data)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    report["size_mb"] = round(out.stat().st_size / 2**20, 2)
    return report


def calibration_inputs(model: nn.Module, keys: tuple[str, ...], *, checkpoint, samples: int,
                       data_path: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Model inputs for int8 calibration: samples of the checkpoint's data (validation split, else
    train) through the task's dataset, or the model's example inputs when the data cannot be read."""
    from ..config import apply_overrides, config_from_dict
    from ..data.datasets import build_index
    from ..engine.tasks import build_task

    config = model.affectkit_config
    overrides = [f"data.path={data_path}"] if data_path else []
    try:
        cfg = config_from_dict(apply_overrides(config["config"], overrides), where=f"{checkpoint}/config.json")
        index = build_index(cfg.data)
        split = "val" if index.split("val") else "train"
        task = build_task(cfg, config["classes"], config.get("polarity"))
        dataset = task.dataset(index, split, train=False)
        picked = [dataset[i] for i in range(min(samples, len(dataset)))]
        sample_keys = tuple(getattr(model, "input_keys", keys))
        rows = [_calibration_row(model, {k: (s[k].unsqueeze(0) if torch.is_tensor(s[k]) else [s[k]]) for k in sample_keys}, keys)
                for s in picked if s is not None]
        if not rows:
            raise AffectkitError(f"{cfg.data.path}: no usable sample in the {split} split")
        return rows, {"source": str(cfg.data.path), "split": split, "samples": len(rows)}
    except Exception as err:  # noqa: BLE001 - calibration falls back, and says so
        log.warning("int8 calibration: the checkpoint's data is not readable (%s); calibrating on random example inputs", err)
        rows = []
        for i in range(samples):
            torch.manual_seed(i)
            rows.append(_calibration_row(model, model.example_inputs(batch_size=1), keys))
        return rows, {"source": "example_inputs (random: the checkpoint's data was not found)", "split": None,
                      "samples": len(rows), "why": str(err)[:300]}


def _calibration_row(model: nn.Module, sample: dict[str, Any], keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    feed = graph_feed(model, sample, keys)
    return {k: (feed[k].numpy() if feed[k].dtype in (torch.int64, torch.bool) else feed[k].float().numpy()) for k in keys}


def quantize_int8(path: Path, model: nn.Module, keys: tuple[str, ...], outputs: tuple[str, ...], *, checkpoint,
                  samples: int = 16, data_path: str | None = None) -> dict[str, Any]:
    """Quantise the ONNX file at ``path`` in place (static int8, QDQ), record the calibration in its
    metadata and check it against PyTorch on the calibration inputs."""
    try:
        import onnx
        import onnxruntime as ort
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    except ImportError as err:
        raise AffectkitError(f"--int8 needs onnxruntime with its quantization tools: {err}") from None
    rows, calib = calibration_inputs(model, keys, checkpoint=checkpoint, samples=samples, data_path=data_path)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(rows)

        def get_next(self):
            return next(self._it, None)

    qpath = path.with_name(path.name + ".int8")
    t0 = time.perf_counter()
    try:
        quantize_static(str(path), str(qpath), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        seconds = time.perf_counter() - t0
        session = ort.InferenceSession(str(qpath), providers=["CPUExecutionProvider"])
        worst, same = 0.0, 0
        for row in rows:
            got = torch.from_numpy(session.run([outputs[0]], row)[0])
            with torch.inference_mode():
                ref = model(**{k: torch.from_numpy(v) for k, v in row.items()}).logits.float()
            a, b = torch.softmax(ref, -1), torch.softmax(got, -1)
            worst = max(worst, float((a - b).abs().max()))
            same += int(torch.equal(a.argmax(-1), b.argmax(-1)))
        info = {"method": "onnxruntime static int8, QDQ, weights int8 per channel, activations uint8 per tensor, MinMax",
                "onnxruntime": ort.__version__, "calibration": calib, "seconds": round(seconds, 2),
                "check_on_calibration_inputs": {"top1_equal": same, "inputs": len(rows), "max_prob_diff": round(worst, 6)}}
        qmodel = onnx.load(str(qpath))
        props = {p.key: p.value for p in qmodel.metadata_props}
        props.update({p.key: p.value for p in onnx.load(str(path)).metadata_props})  # the affectkit.* entries
        props["affectkit.quantization"] = json.dumps(info)
        del qmodel.metadata_props[:]
        for k, v in props.items():
            entry = qmodel.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(qmodel, str(path))
    finally:
        if qpath.exists():
            qpath.unlink()
    return info


def _dynamic_dims(model: nn.Module, keys: tuple[str, ...], batch) -> tuple[dict, ...]:
    """Per input, its dynamic axes: the batch (axis 0) and those the model declares in ``export_dynamic_axes``
    ({input key: {axis: name}}; one name is one dimension across inputs, e.g. TSL-Net's ``steps``, bounded by
    the model's ``max_len`` where it has one)."""
    declared = getattr(model, "export_dynamic_axes", {}) or {}
    named: dict[str, Any] = {}
    out = []
    for k in keys:
        axes = {0: batch}
        for axis, name in declared.get(k, {}).items():
            if name not in named:
                named[name] = torch.export.Dim(name, min=2, max=int(getattr(model, "max_len", 65536)))
            axes[int(axis)] = named[name]
        out.append(axes)
    return tuple(out)


def _verification_inputs(model: nn.Module, batch_sizes: tuple[int, ...]) -> list[dict[str, torch.Tensor]]:
    """Example inputs at each batch size and, for a model with a dynamic axis that ``example_inputs`` takes as a
    keyword (TSL-Net's ``steps``), also at an odd length (the graph must not have kept the example's length)."""
    from ..registry import other_length_kwargs

    other = other_length_kwargs(model)
    variants = [{}] + ([other] if other else [])
    return [model.example_inputs(batch_size=bs, **v) for bs in batch_sizes for v in variants]


def _graph_examples(model: nn.Module, keys: tuple[str, ...], batch_sizes: tuple[int, ...]) -> list[dict[str, torch.Tensor]]:
    return [graph_feed(model, ex, keys) for ex in _verification_inputs(model, batch_sizes)]


def verify_onnx(path: str | os.PathLike, model: nn.Module, keys: tuple[str, ...], outputs: tuple[str, ...],
                batch_sizes: tuple[int, ...] = (1, 3)) -> dict[str, Any]:
    """Max |ONNX Runtime - PyTorch| per output (and on the probabilities) on example inputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst: dict[str, float] = {}
    for example in _graph_examples(model, keys, batch_sizes):
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
    p.add_argument("--int8", action="store_true", help="write the graph quantised to int8 by ONNX Runtime (static; calibration recorded in the file)")
    p.add_argument("--calibration-samples", type=int, default=16, help="with --int8: samples of the checkpoint's validation data used to calibrate (default 16)")
    p.add_argument("--calibration-data", default=None, metavar="DATA_PATH", help="with --int8: calibrate on another dataset (a data.path)")


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
            report = export_onnx(args.checkpoint, args.out, opset=args.opset, verify=not args.no_verify,
                                 int8=args.int8, calibration_samples=args.calibration_samples,
                                 calibration_data=args.calibration_data)
    print(json.dumps(report, indent=2))
    return 0
