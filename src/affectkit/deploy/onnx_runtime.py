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


_NP_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_,
             "tensor(int32)": np.int32, "tensor(double)": np.float64}


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
        self.graph_inputs = tuple(json.loads(meta.get("affectkit.graph_inputs", meta["affectkit.inputs"])))
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._dtypes = {i.name: _NP_TYPES.get(i.type, np.float32) for i in self.session.get_inputs()}
        self._tokenize = None
        if "text_ids" in self.graph_inputs:
            from ..models.blocks.text_encoder import tokenizer_from_spec

            spec = meta.get("affectkit.text_tokenizer")
            if spec is None:
                raise CheckpointError(f"{path}: a text graph without its tokenizer (affectkit.text_tokenizer); export it again")
            self._tokenize = tokenizer_from_spec(json.loads(spec), where=str(path))

    def __call__(self, **inputs: torch.Tensor) -> ClassifierOutput:
        missing = [k for k in self.input_keys if k not in inputs]
        if missing:
            raise ValueError(f"{self.path.name}: missing inputs {missing}")
        tensors_in = {k: v for k, v in inputs.items() if k != "text"}
        if self._tokenize is not None:  # strings -> ids and mask (B, S, L), as the model's own text encoder
            tensors_in["text_ids"], tensors_in["text_mask"] = self._tokenize(inputs["text"])
        feeds = {k: np.ascontiguousarray(tensors_in[k].detach().cpu().numpy().astype(self._dtypes.get(k, np.float32), copy=False))
                 for k in self.graph_inputs}
        outs = dict(zip(self.output_names, self.session.run(self.output_names, feeds)))
        tensors = {k: torch.from_numpy(v) for k, v in outs.items()}
        logits = tensors.pop("logits")
        attention = tensors.pop("temporal_attention", None)
        return ClassifierOutput(logits=logits, temporal_attention=attention, extras=tensors)

    def eval(self) -> "OnnxModel":  # parity with nn.Module for callers that set eval mode
        return self
