"""Run a file written by ``affectkit export onnx`` with ONNX Runtime, behind the same call as a
kit model: ``OnnxModel(path)(video=..., audio=...) -> ClassifierOutput``. The predictor uses it for
``engine="onnx"``; its preprocessing comes from the file's metadata (see ``onnx_export.py``)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import AffectkitError, CheckpointError
from ..models.outputs import ClassifierOutput


class OnnxModel:
    """An exported kit model on ONNX Runtime's CPU provider.

    Attributes match what the predictor reads from a PyTorch model: ``input_keys`` and
    ``affectkit_config`` (the checkpoint's ``config.json``); ``metadata`` holds all of the file's
    ``affectkit.*`` entries. ``threads`` sets ONNX Runtime's intra-op threads (default: its own).
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise AffectkitError("the ONNX engine needs onnxruntime (pip install 'affectkit[onnx]')") from None
        path = Path(path)
        if path.is_dir():
            raise CheckpointError(f"{path}: the ONNX engine takes a .onnx file (write one with `affectkit export onnx`), not a folder")
        if not path.is_file():
            raise CheckpointError(f"{path}: no such ONNX file")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise CheckpointError(f"{path}: not a loadable ONNX model ({type(err).__name__}: {err})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "affectkit.config" not in meta:
            raise CheckpointError(f"{path}: an ONNX model without affectkit metadata; export it with `affectkit export onnx`")
        self.path = path
        self.metadata = {k: v for k, v in meta.items() if k.startswith("affectkit.")}
        self.affectkit_config = json.loads(meta["affectkit.config"])
        self.input_keys = tuple(json.loads(meta["affectkit.inputs"]))
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, **inputs: torch.Tensor) -> ClassifierOutput:
        missing = [k for k in self.input_keys if k not in inputs]
        if missing:
            raise ValueError(f"{self.path.name}: missing inputs {missing}")
        feeds = {k: np.ascontiguousarray(inputs[k].detach().to("cpu", torch.float32).numpy()) for k in self.input_keys}
        outs = dict(zip(self.output_names, self.session.run(self.output_names, feeds)))
        tensors = {k: torch.from_numpy(v) for k, v in outs.items()}
        logits = tensors.pop("logits")
        attention = tensors.pop("temporal_attention", None)
        return ClassifierOutput(logits=logits, temporal_attention=attention, extras=tensors)

    def eval(self) -> "OnnxModel":  # parity with nn.Module for callers that set eval mode
        return self
