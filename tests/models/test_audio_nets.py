"""Audio-only models (audio_resnet18, audio_cnn) and their blocks: registry, sizes, shapes, masking, export."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from affectkit.config import load_config
from affectkit.engine.tasks import ClassificationTask
from affectkit.errors import ConfigError
from affectkit.models.audio_cnn import AudioCNN
from affectkit.models.audio_resnet import AudioResNet
from affectkit.models.blocks.audio import SpecAugment, UtteranceNorm
from affectkit.models.blocks.resnet2d import ResNet2d
from affectkit.models.outputs import ClassifierOutput
from affectkit.registry import create_model, get_model_entry, list_models

AUDIO_MODELS = ["audio_resnet18", "audio_cnn"]


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", AUDIO_MODELS)
def test_registered_audio_only(name):
    assert name in list_models("audio_*")
    entry = get_model_entry(name)
    assert entry.input_keys == ("audio",) and entry.task == "classify"
    model = create_model(name)
    assert model.input_keys == ("audio",)
    # the keys the task derives from the config (input.audio, the classes)
    assert {"num_classes", "audio_frames", "audio_bins"} <= set(entry.default_config)


def test_audio_resnet18_full_size_is_vaanets_audio_network():
    model = create_model("audio_resnet18")
    cfg = get_model_entry("audio_resnet18").default_config
    assert (cfg["audio_width"], cfg["audio_embed"], cfg["audio_bins"], cfg["input_norm"]) == (64, 256, 32, "none")
    net = model.audio_net
    assert isinstance(net, ResNet2d) and net.conv1.weight.shape == (64, 1, 7, 1)
    assert net.conv1.stride == (2, 1) and net.conv1.padding == (3, 0)
    # torchvision resnet18 has 11,689,512 parameters: minus its 1000-way fc (513,000) and its
    # 3-channel 7x7 stem (9,408), plus the 1-channel (7, 1) stem (448)
    assert count(net) == 11_689_512 - 513_000 - 9_408 + 448 == 11_167_552
    assert count(model.audio_proj) == 512 * 256 + 256 + 2 * 256  # Linear + BatchNorm1d (VAANet's audio_proj)
    assert count(model.classifier) == 256 * 8 + 8
    assert count(model) == 11_301_448


def test_audio_cnn_full_size():
    model = create_model("audio_cnn")
    cfg = get_model_entry("audio_cnn").default_config
    assert cfg["channels"] == [16, 32, 64, 128] and cfg["audio_bins"] == 64 and cfg["input_norm"] == "utterance"
    assert (cfg["freq_masks"], cfg["time_masks"], cfg["dropout"]) == (2, 2, 0.1)

    def block(c_in, c):  # two 3x3 convs without bias, two BatchNorms
        return 9 * c_in * c + 9 * c * c + 4 * c

    convs = block(1, 16) + block(16, 32) + block(32, 64) + block(64, 128)
    assert count(model.blocks) == convs == 293_712
    assert count(model.head) == (256 * 256 + 256) + (256 * 8 + 8)  # [mean, max] of 128 channels -> 256 -> 8
    assert count(model) == 361_560
    wide = create_model("audio_cnn", channels=[32, 64, 128, 256])
    assert count(wide) == block(1, 32) + block(32, 64) + block(64, 128) + block(128, 256) + (512 * 256 + 256) + (256 * 8 + 8)


@pytest.mark.parametrize("name", AUDIO_MODELS)
def test_shapes_any_length_and_bad_input(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5).eval()
    example = model.example_inputs(batch_size=3)
    assert set(example) == {"audio"}
    assert example["audio"].shape == (3, model.audio_frames, model.audio_bins)
    with torch.no_grad():
        out = model(**example)
        assert isinstance(out, ClassifierOutput) and out.logits.shape == (3, 5) and out.temporal_attention is None
        assert torch.isfinite(out.logits).all()
        shorter = model(audio=example["audio"][:, :100])  # a shorter window works (global pooling)
        assert shorter.logits.shape == (3, 5)
        silent = model(audio=torch.full((2, model.audio_frames, model.audio_bins), -100.0))  # a silent recording
        assert torch.isfinite(silent.logits).all()
    with pytest.raises(ValueError, match=f"audio must be \\(B, frames, {model.audio_bins}\\)"):
        model(audio=torch.zeros(2, model.audio_frames, model.audio_bins + 1))
    with pytest.raises(ValueError, match="audio must be"):
        model(audio=torch.zeros(model.audio_frames, model.audio_bins))


@pytest.mark.parametrize("name", AUDIO_MODELS)
def test_masking_only_in_training_and_gradients_flow(name):
    torch.manual_seed(0)
    model = create_model(name, freq_masks=2, time_masks=2, dropout=0.0)
    x = model.example_inputs(4)["audio"]
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x).logits, model(x).logits)  # deterministic in eval mode
    model.train()
    seen = []
    model.spec_augment.register_forward_hook(lambda m, i, o: seen.append((o == 0).float().mean().item()))
    out = model(x)
    out.logits.sum().backward()
    assert seen and seen[0] > 0.01  # some features masked in training
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_spec_augment_bands():
    torch.manual_seed(0)
    aug = SpecAugment(freq_masks=1, freq_width=5, time_masks=1, time_width=10, max_time_ratio=0.1, value=-7.0)
    x = torch.zeros(64, 50, 20)
    assert aug.eval()(x) is x
    y = aug.train()(x)
    masked = y == -7.0
    freq_band = masked.all(dim=1)  # (B, F): whole frequency bins masked over time
    time_band = masked.all(dim=2)  # (B, T)
    assert int(freq_band.sum(dim=1).max()) <= 5 and int(time_band.sum(dim=1).max()) <= 5  # 10% of 50 frames
    assert int(freq_band.sum()) > 0 and int(time_band.sum()) > 0
    for row in freq_band:  # each mask is one contiguous band
        idx = torch.nonzero(row).flatten()
        assert len(idx) == 0 or int(idx[-1] - idx[0]) + 1 == len(idx)
    with pytest.raises(ConfigError, match="freq_masks"):
        SpecAugment(freq_masks=-1)


def test_utterance_norm():
    x = torch.randn(3, 40, 8) * 5 + torch.arange(8.0) * 3 + 20
    y = UtteranceNorm("utterance")(x)
    assert torch.allclose(y.mean(dim=(1, 2)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.std(dim=(1, 2), unbiased=False), torch.ones(3), atol=1e-3)
    assert float(y.mean(dim=1).std()) > 0.1  # keeps the spectral shape
    z = UtteranceNorm("cmvn")(x)
    assert torch.allclose(z.mean(dim=1), torch.zeros(3, 8), atol=1e-5)  # removes it
    assert torch.equal(UtteranceNorm("none")(x), x)
    const = UtteranceNorm("utterance")(torch.full((2, 10, 4), -80.0))
    assert torch.equal(const, torch.zeros_like(const))
    with pytest.raises(ConfigError, match="input_norm"):
        UtteranceNorm("global")


@pytest.mark.parametrize("config,model_cls,bins", [("audio/ravdess_resnet18_mfcc.yaml", AudioResNet, 32),
                                                   ("audio/ravdess_cnn_logmel.yaml", AudioCNN, 64)])
def test_shipped_configs_derive_the_model_arguments(config, model_cls, bins):
    cfg = load_config(config)
    assert cfg.task == "classify" and cfg.train.loss == "ce" and cfg.data.format == "audio"
    task = ClassificationTask(cfg, [f"c{i}" for i in range(8)], None)
    args = task.model_args()
    assert args["num_classes"] == 8 and args["audio_frames"] == cfg.input.audio.num_frames == 251
    assert args["audio_bins"] == bins
    model = create_model(cfg.model.name, **args)
    assert isinstance(model, model_cls) and model.example_inputs()["audio"].shape == (1, 251, bins)
    bad = load_config(config, ["model.args.audio_bins=13"])
    with pytest.raises(ConfigError, match="audio_bins=13 disagrees"):
        ClassificationTask(bad, ["a", "b"], None).model_args()


@pytest.mark.parametrize("name", AUDIO_MODELS)
def test_eval_forward_exports_to_onnx(name, tmp_path):
    onnx = pytest.importorskip("onnx")  # noqa: F841
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = create_model(name).eval()

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, audio):
            return self.inner(audio).logits

    wrapper = Logits(model).eval()
    example = model.example_inputs(2)
    program = torch.onnx.export(wrapper, (example["audio"],), dynamo=True, input_names=["audio"], output_names=["logits"],
                                dynamic_shapes={"audio": {0: torch.export.Dim("batch", min=1, max=64)}}, verbose=False)
    path = tmp_path / f"{name}.onnx"
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = model.example_inputs(3)["audio"]
    got = session.run(None, {"audio": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).logits.numpy()
    assert got.shape == (3, 8) and np.abs(got - want).max() < 1e-3
