"""The general fast path: every registered model runs on it, each backend is checked against fp32
before it is used, and the choice and its reason are recorded."""
import json
from pathlib import Path

import pytest
import torch

from affectkit import list_models
from affectkit.deploy import accel
from affectkit.deploy.accel import BACKENDS, FastModel, accelerate, backend_order, machine_report
from affectkit.errors import AffectkitError
from affectkit.registry import create_model, get_model_entry


def _tiny(name):
    torch.manual_seed(0)
    return create_model(name, **{**get_model_entry(name).tiny_args, "num_classes": 3}).eval()


def _probs(model, inputs):
    with torch.inference_mode():
        return torch.softmax(model(**inputs).logits.float(), -1)


@pytest.mark.parametrize("name", list_models())
def test_every_model_runs_compiled_and_agrees_with_fp32(name):
    model = _tiny(name)
    fast = accelerate(model, backend="inductor", batch_size=2)
    info = fast.fast_info
    assert isinstance(fast, FastModel) and info["backend"] == "inductor" and info["checked"] is True
    assert info["agreement"]["top1_equal"] and info["agreement"]["max_prob_diff"] <= accel.EXACT_TOLERANCE
    # fresh inputs, not the ones it was checked on
    g = torch.Generator().manual_seed(7)
    inputs = {k: v + torch.rand(v.shape, generator=g) if torch.is_tensor(v) else v  # text stays text
              for k, v in model.example_inputs(2).items()}
    ref, got = _probs(model, inputs), _probs(fast, inputs)
    assert torch.equal(ref.argmax(-1), got.argmax(-1))
    assert (ref - got).abs().max() <= accel.EXACT_TOLERANCE
    assert fast.input_keys == model.input_keys  # the model's attributes read through


@pytest.mark.parametrize("name", list_models())
def test_eager_folded_fallback_is_exact(name):
    model = _tiny(name)
    fast = accelerate(model, backend="eager-folded", batch_size=2)
    assert fast.fast_info["agreement"]["max_prob_diff"] <= accel.EXACT_TOLERANCE


def test_auto_tries_the_machine_order_and_records_why(monkeypatch):
    monkeypatch.delenv("AFFECTKIT_FAST_BACKEND", raising=False)
    fast = accelerate(_tiny("audio_cnn"))
    info = fast.fast_info
    order = backend_order()
    assert [t["backend"] for t in info["tried"]] == order[:len(info["tried"])]
    assert info["tried"][0]["backend"] == "vaanet-int8" and info["tried"][0]["available"] is False  # not a VAANet
    assert info["tried"][1]["backend"] == "trunk-int8" and info["tried"][1]["available"] is False  # no 3D trunk
    assert info["backend"] in ("inductor-bf16", "inductor", "eager-folded") and info["reason"]
    assert info["cpu"]["model"] and isinstance(info["cpu"]["flags"], list)


def test_a_backend_that_disagrees_is_passed_over(monkeypatch):
    class Wrong(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, **kw):
            out = self.m(**kw)
            out.logits = out.logits.flip(-1) * 5  # another top-1
            return out

    broken = accel.Backend("inductor", accel.EXACT_TOLERANCE, lambda m: Wrong(m), lambda m: (True, "test"))
    monkeypatch.setitem(BACKENDS, "inductor", broken)
    monkeypatch.setattr(accel, "backend_order", lambda: ["inductor", "eager-folded"])
    fast = accelerate(_tiny("audio_resnet18"), batch_size=2)
    assert fast.fast_info["backend"] == "eager-folded"
    first = fast.fast_info["tried"][0]
    assert first["backend"] == "inductor" and first["ok"] is False and first["top1_equal"] is False


def test_no_compiler_means_no_inductor(monkeypatch):
    accel.inductor_available.cache_clear()
    monkeypatch.setattr(accel.shutil, "which", lambda name: None)
    try:
        ok, why = accel.inductor_available()
        assert not ok and "C++ compiler" in why
        fast = accelerate(_tiny("audio_cnn"), backend="auto")
        assert fast.fast_info["backend"] == "eager-folded"
        assert any(t["backend"] == "inductor" and not t["available"] for t in fast.fast_info["tried"])
    finally:
        accel.inductor_available.cache_clear()


def test_bad_requests_are_clear_errors(monkeypatch):
    with pytest.raises(AffectkitError, match="eval mode"):
        accelerate(_tiny("audio_cnn").train())
    with pytest.raises(AffectkitError, match="unknown; backends"):
        accelerate(_tiny("audio_cnn"), backend="tensorrt")
    monkeypatch.setenv("AFFECTKIT_FAST_BACKEND", "nope")
    with pytest.raises(AffectkitError, match="AFFECTKIT_FAST_BACKEND"):
        backend_order()
    with pytest.raises(RuntimeError, match="inference-only"):
        accelerate(_tiny("audio_cnn"), backend="eager-folded").train()


def test_machine_report_lists_every_backend():
    rep = machine_report()
    assert set(rep["backends"]) == set(BACKENDS) and rep["order"][-1] == "eager-folded"
    assert rep["backends"]["eager-folded"]["available"] is True


def test_predictor_fast_records_the_backend_in_each_result(trained, tiny_synth):
    from affectkit.deploy.predictor import Predictor

    db = json.loads(Path(tiny_synth).read_text())["database"]
    vid = next(v for v in db.values() if v["subset"] == "testing")
    path = Path(tiny_synth).parent / vid["video"]
    plain = Predictor(trained.best_dir).predict(path)
    fast = Predictor(trained.best_dir, fast="eager-folded").predict(path)  # compiled backends: the tests above
    assert fast["fast_path"]["backend"] == "eager-folded" and fast["engine"] == "torch-fast"
    assert fast["fast_path"]["agreement"]["top1_equal"] is True
    assert fast["label"] == plain["label"]
    assert max(abs(fast["probabilities"][c] - plain["probabilities"][c]) for c in plain["probabilities"]) < 1e-3
    assert "fast_path" not in plain
