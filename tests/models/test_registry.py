"""Every registered model, at its tiny size: declared once in the registry, builds, runs a forward on
its example inputs, and round-trips a checkpoint with identical outputs."""
import pytest
import torch

from affectkit import list_models
from affectkit.engine.checkpoint import load_model, save_checkpoint
from affectkit.engine.tasks import TASKS
from affectkit.models.outputs import ClassifierOutput
from affectkit.registry import create_model, get_model_entry, model_input_keys

MODELS = list_models()


def test_the_registry_lists_the_built_in_models():
    assert {"vaanet", "audio_resnet18", "audio_cnn"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_entry_declares_what_the_kit_reads(name):
    entry = get_model_entry(name)
    assert entry.tasks and all(t in TASKS for t in entry.tasks)
    assert entry.input_keys and entry.tiny_args
    for key in list(entry.derived_args) + list(entry.pretrained_args) + list(entry.tiny_args):
        assert key in entry.default_config
    assert "num_classes" in entry.derived_args  # every classifier takes its classes from the data


@pytest.mark.parametrize("name", MODELS)
def test_tiny_model_forward_and_checkpoint_round_trip(name, tmp_path):
    entry = get_model_entry(name)
    torch.manual_seed(0)
    args = {**entry.tiny_args, "num_classes": 3}
    model = create_model(name, **args).eval()
    assert model_input_keys(model) == entry.input_keys
    inputs = model.example_inputs(batch_size=2)
    assert tuple(inputs) == entry.input_keys
    with torch.no_grad():
        out = model(**inputs)
    assert isinstance(out, ClassifierOutput)
    assert out.logits.shape == (2, 3) and torch.isfinite(out.logits).all()
    if out.temporal_attention is not None:
        assert out.temporal_attention.shape[0] == 2
    config = {"task": entry.task, "model": {"name": name, "args": args}, "classes": ["a", "b", "c"], "polarity": None}
    save_checkpoint(tmp_path / "ckpt", model, config, {"epoch": 0})
    loaded = load_model(tmp_path / "ckpt")
    with torch.no_grad():
        again = loaded(**inputs)
    assert torch.equal(out.logits, again.logits)
