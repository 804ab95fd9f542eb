"""ONNX export of models that take text (MBT with the word or a BERT-family encoder): the graph takes token
ids and a mask, the ONNX engine tokenises strings as the model does, and both agree with PyTorch."""
from __future__ import annotations

import json

import pytest
import torch

from ..conftest import untrained_checkpoint

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

CLASSES = ["Anger", "Joy", "Sadness", "Surprise"]
TINY = ["model.args.dim=32", "model.args.depth=2", "model.args.heads=2", "model.args.fusion_layer=1",
        "input.seq_len=2", "input.snippet_duration=4", "input.sample_size=32", "input.audio.num_frames=200",
        "input.audio.n_mels=32", "model.args.text_max_len=8"]
TEXTS = [["so happy to see you", ""], ["why would this happen again and again and again", "furious"]]


def _export(tmp_path, config, extra=()):
    from affectkit.deploy.onnx_export import export_onnx
    from affectkit.engine.checkpoint import load_model

    ckpt = untrained_checkpoint(tmp_path, config, TINY + list(extra), CLASSES)
    out = tmp_path / "m.onnx"
    report = export_onnx(ckpt, out)
    return load_model(ckpt), out, report


@pytest.mark.parametrize("config", ["mbt/mbt_synth_text.yaml", "mbt/mbt_synth_moda.yaml"])
def test_word_text_model_exports_and_the_engine_tokenises(tmp_path, config):
    from affectkit.deploy.onnx_runtime import OnnxModel

    model, out, report = _export(tmp_path, config)
    assert report["inputs"] == ["video", "audio", "text_ids", "text_mask"]
    assert report["verification"]["max_abs_diff"]["probabilities"] < 1e-4
    engine = OnnxModel(out)
    assert engine.input_keys == ("video", "audio", "text")  # what the predictor feeds: strings
    assert json.loads(engine.metadata["affectkit.text_tokenizer"])["kind"] == "word"
    g = torch.Generator().manual_seed(3)
    x = {k: v for k, v in model.example_inputs(2).items() if k != "text"}
    x["video"] = torch.randint(0, 256, x["video"].shape, generator=g).float()
    for texts in (TEXTS, [["", ""], ["", ""]]):  # a window longer than text_max_len is cut; empty windows
        with torch.inference_mode():
            ref = torch.softmax(model(**x, text=texts).logits, -1)
        got = torch.softmax(engine(**x, text=texts).logits, -1)
        assert (ref - got).abs().max() < 1e-4
    # the words change the output (the text reaches the graph)
    other = torch.softmax(engine(**x, text=[["", ""], ["", ""]]).logits, -1)
    assert (other - torch.softmax(engine(**x, text=TEXTS).logits, -1)).abs().max() > 1e-6


def test_hf_text_model_exports_with_its_tokenizer(tmp_path):
    from affectkit.deploy.onnx_runtime import OnnxModel
    from affectkit.errors import ConfigError

    from ..models.test_text_encoder import _bert_folder

    folder, _, _ = _bert_folder(tmp_path / "bert")
    model, out, report = _export(tmp_path, "mbt/mbt_synth_text.yaml",
                                 ["model.args.text_encoder=hf", f"model.args.text_model_dir={folder}"])
    assert report["verification"]["max_abs_diff"]["probabilities"] < 1e-4
    engine = OnnxModel(out)
    spec = json.loads(engine.metadata["affectkit.text_tokenizer"])
    assert spec["kind"] == "hf" and spec["model_dir"] == str(folder)
    x = {k: v for k, v in model.example_inputs(2).items() if k != "text"}
    with torch.inference_mode():
        ref = torch.softmax(model(**x, text=TEXTS).logits, -1)
    assert (ref - torch.softmax(engine(**x, text=TEXTS).logits, -1)).abs().max() < 1e-4
    # another tokenizer in that folder: refused, naming the file
    _bert_folder(folder, vocab=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "other", "words"])
    with pytest.raises(ConfigError, match="m.onnx"):
        OnnxModel(out)


def test_mart_over_a_video_audio_mbt_exports_without_text_in_the_graph(tmp_path):
    """MART reads ``text`` for its words (predict) but its classifier is the video + audio MBT: the graph takes
    video and audio only, and the engine gives PyTorch's probabilities."""
    from affectkit.deploy.onnx_runtime import OnnxModel

    model, out, report = _export(tmp_path, "mart/mart_synth_finetune.yaml", ["model.args.text_max_len=32"])
    assert type(model).__name__ == "MART" and model.text_encoder is None
    assert report["inputs"] == ["video", "audio"]
    assert report["verification"]["max_abs_diff"]["probabilities"] < 1e-4
    engine = OnnxModel(out)
    assert engine.input_keys == ("video", "audio", "text")  # the predictor still loads the words it shows
    x = {k: v for k, v in model.example_inputs(2).items() if k != "text"}
    with torch.inference_mode():
        ref = torch.softmax(model(**x).logits, -1)
    got = torch.softmax(engine(**x, text=TEXTS).logits, -1)
    assert (ref - got).abs().max() < 1e-4
