"""VAANet: config, parameter counts, shapes, frozen trunk, BN modes, checkpoint conversion."""
from __future__ import annotations

import collections
import logging

import pytest
import torch

from affectkit.errors import CheckpointError, ConfigError
from affectkit.models.blocks.resnet3d import ResNet3d
from affectkit.models.outputs import ClassifierOutput
from affectkit.models.vaanet import (
    DEFAULT_CONFIG,
    VAANet,
    convert_original_state_dict,
    load_original_checkpoint,
)
from affectkit.registry import create_model, get_model_entry, list_models

TINY = dict(depth=18, width=8, audio_width=8, seq_len=4, snippet_duration=8, sample_size=64,
            audio_frames=512, audio_segments=4, audio_bins=32, audio_embed=16, num_classes=5)


def tiny_inputs(b=2, cfg=TINY, seed=0):
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(b, cfg["seq_len"], 3, cfg["snippet_duration"], cfg["sample_size"], cfg["sample_size"], generator=g) * 255
    audio = torch.randn(b, cfg["audio_frames"], cfg["audio_bins"], generator=g) * 10
    return video, audio


def count(model, trainable=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


@pytest.fixture(scope="module")
def full_model():
    torch.manual_seed(0)
    return create_model("vaanet").eval()


def test_registered_with_faithful_defaults():
    assert "vaanet" in list_models()
    entry = get_model_entry("vaanet")
    assert entry.default_config == DEFAULT_CONFIG
    cfg = entry.default_config
    assert (cfg["depth"], cfg["width"], cfg["seq_len"], cfg["snippet_duration"], cfg["sample_size"]) == (101, 64, 12, 16, 112)
    assert (cfg["audio_segments"], cfg["audio_frames"], cfg["audio_bins"], cfg["audio_embed"]) == (16, 4096, 32, 256)
    assert cfg["frozen_trunk"] is True and cfg["trunk_bn"] == "train" and cfg["input_norm"] == "original"
    assert VAANet.input_keys == ("video", "audio")


def test_full_size_parameter_counts_and_shapes(full_model):
    m = full_model
    total, trainable = count(m), count(m, trainable=True)
    # spec: 97.87 M total, 12.62 M trainable; the original also counts an unused 512->8 fc (4,104)
    assert abs(total / 1e6 - 97.87) < 0.05 and abs(trainable / 1e6 - 12.62) < 0.05
    assert total == 97_864_908 and trainable == 12_619_788
    assert count(m.trunk) == 85_245_120 and count(m.audio_net) == 11_167_552
    assert (m.trunk_channels, m.visual_channels, m.positions) == (2048, 512, 16)
    assert m.trunk.shortcut == "B"
    assert m.temporal_attention.fc.weight.shape == (12, 12)
    assert torch.all(m.temporal_attention.fc.bias == 1.0)
    assert m.classifier.weight.shape == (8, 768)
    assert not hasattr(m, "fc")  # the original's unused visual-only classifier is dropped

    with torch.no_grad():
        # the trunk on two real-size snippets
        feats = m.trunk_features(torch.rand(1, 2, 3, 16, 112, 112) * 255)
        assert feats.shape == (1, 2, 2048, 16)
        # the rest of the network at full size, from cached trunk features
        out = m(audio=torch.randn(2, 4096, 32), video_features=torch.randn(2, 12, 2048, 16).relu())
    assert isinstance(out, ClassifierOutput)
    assert out.logits.shape == (2, 8) and out.temporal_attention.shape == (2, 12)
    assert out.extras["spatial_attention"].shape == (2, 12, 16)
    assert out.extras["channel_attention"].shape == (2, 12, 512)
    assert out.extras["audio_attention"].shape == (2, 16)
    assert torch.allclose(out.extras["spatial_attention"].sum(-1), torch.full((2, 12), 16.0), atol=1e-4)
    assert torch.allclose(out.extras["channel_attention"].sum(-1), torch.full((2, 12), 512.0), atol=1e-2)


def test_tiny_forward_backward_and_frozen_trunk():
    torch.manual_seed(0)
    model = create_model("vaanet", **TINY).train()
    video, audio = tiny_inputs()
    video_copy = video.clone()
    out = model(video, audio)
    assert torch.equal(video, video_copy)  # not normalised in place
    assert out.logits.shape == (2, 5) and out.temporal_attention.shape == (2, 4)
    assert out.extras["spatial_attention"].shape == (2, 4, 4)  # (64/32)^2 positions
    assert out.extras["channel_attention"].shape == (2, 4, 64)  # 8 * width
    assert out.extras["audio_attention"].shape == (2, 4)
    assert (out.temporal_attention >= 0).all()
    out.logits.sum().backward()
    assert all(not p.requires_grad and p.grad is None for p in model.trunk.parameters())
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for _, p in trainable)
    assert model.classifier.weight.grad.abs().sum() > 0 and model.audio_net.conv1.weight.grad.abs().sum() > 0

    unfrozen = create_model("vaanet", **{**TINY, "frozen_trunk": False}).train()
    unfrozen(video, audio).logits.sum().backward()
    assert unfrozen.trunk.conv1.weight.grad is not None


@pytest.mark.parametrize("trunk_bn, trunk_changes", [("train", True), ("frozen", False)])
def test_trunk_bn_modes(trunk_bn, trunk_changes):
    torch.manual_seed(0)
    model = create_model("vaanet", **{**TINY, "trunk_bn": trunk_bn})
    model.train()
    assert model.trunk.training is (trunk_bn == "train")
    assert model.visual_proj.training
    trunk_before = model.trunk.bn1.running_mean.clone()
    head_before = model.visual_proj[1].running_mean.clone()
    with torch.no_grad():
        model(*tiny_inputs())
    assert (not torch.equal(model.trunk.bn1.running_mean, trunk_before)) is trunk_changes
    assert not torch.equal(model.visual_proj[1].running_mean, head_before)  # the head always trains
    model.eval()
    assert not model.trunk.training and not model.training


def test_feature_path_export_path_and_norms():
    torch.manual_seed(0)
    model = create_model("vaanet", **TINY).eval()
    video, audio = tiny_inputs()
    with torch.no_grad():
        out = model(video, audio)
        feats = model.trunk_features(video)
        assert feats.shape == (2, 4, 64, 4)
        cached = model(audio=audio, video_features=feats)
        logits, gamma = model.forward_export(video, audio)
    assert torch.allclose(out.logits, cached.logits, atol=1e-6)
    assert torch.allclose(out.logits, logits, atol=1e-6) and torch.allclose(out.temporal_attention, gamma)
    # uint8 video works the same as float
    with torch.no_grad():
        as_uint8 = model(video.round().to(torch.uint8), audio).logits
        as_float = model(video.round(), audio).logits
    assert torch.allclose(as_uint8, as_float)

    x = torch.full((1, 1, 3, 1, 1, 1), 100.0)
    assert torch.allclose(model.normalize_video(x), torch.zeros_like(x))  # x/255 - 100/255
    kin = create_model("vaanet", **{**TINY, "input_norm": "kinetics"})
    y = kin.normalize_video(torch.tensor([114.7748, 107.7354, 99.4750]).view(1, 3, 1, 1, 1))
    assert torch.allclose(y, torch.zeros_like(y), atol=1e-5)
    assert "pixel_mean" not in kin.state_dict()


def test_long_snippets_average_trunk_time():
    model = create_model("vaanet", **{**TINY, "snippet_duration": 32}).eval()
    video, audio = tiny_inputs(b=1, cfg={**TINY, "snippet_duration": 32})
    with torch.no_grad():
        raw = model.trunk.forward_features(model.normalize_video(video[0]))
        assert raw.shape[2] == 2  # T' = 2
        assert model(video, audio).logits.shape == (1, 5)


def test_bad_config_and_inputs():
    with pytest.raises(ConfigError):
        create_model("vaanet", trunk_bn="eval")
    with pytest.raises(ConfigError):
        create_model("vaanet", input_norm="imagenet")
    with pytest.raises(ConfigError):
        create_model("vaanet", **{**TINY, "audio_frames": 510})
    with pytest.raises(ConfigError):
        create_model("vaanet", not_an_option=1)
    model = create_model("vaanet", **TINY).eval()
    video, audio = tiny_inputs(b=1)
    with pytest.raises(ValueError, match="audio"):
        model(video, audio[:, :100])
    with pytest.raises(ValueError, match="audio"):
        model(video)
    with pytest.raises(ValueError, match="video"):
        model(video[:, :3], audio)  # wrong seq_len
    with pytest.raises(ValueError):
        model(audio=audio)


def test_pretrained_trunk_at_build_time(tmp_path, caplog):
    torch.manual_seed(1)
    source = ResNet3d(depth=18, width=8, shortcut="A", num_classes=400)
    sd = collections.OrderedDict(("module." + k, v) for k, v in source.state_dict().items())
    path = tmp_path / "resnet-18-kinetics.pth"
    torch.save({"arch": "resnet-18", "state_dict": sd}, path)
    with caplog.at_level(logging.INFO, logger="affectkit.models.vaanet"):
        model = create_model("vaanet", **{**TINY, "pretrained_trunk": str(path)})
    assert sorted(model.pretrained_report.unused) == ["fc.bias", "fc.weight"]
    assert model.pretrained_report.missing == []
    assert torch.equal(model.trunk.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert not model.trunk.conv1.weight.requires_grad
    assert "resnet-18-kinetics.pth" in caplog.text
    assert create_model("vaanet", **TINY).pretrained_report is None


# ---------------------------------------------------------------------------------------------
# checkpoints of the original code (maysonma/VAANet: save_<epoch>.pth = {'epoch', 'state_dict', 'optimizer'})
# ---------------------------------------------------------------------------------------------
def original_name(key: str) -> str:
    """Our key -> the attribute path of the original VAANet (written from models/vaanet.py and visual_stream.py)."""
    rules = [("trunk.conv1.", "resnet.0."), ("trunk.bn1.", "resnet.1.")]
    rules += [(f"trunk.layer{i}.", f"resnet.{i + 3}.") for i in range(1, 5)]
    rules += [("audio_net.conv1.", "a_resnet.0."), ("audio_net.bn1.", "a_resnet.1.")]
    rules += [(f"audio_net.layer{i}.", f"a_resnet.{i + 3}.") for i in range(1, 5)]
    rules += [("visual_proj.", "conv0."), ("audio_proj.", "a_fc."), ("classifier.", "av_fc.")]
    for ours, orig in [("spatial_attention", "sa_net"), ("channel_attention", "cwa_net"),
                       ("temporal_attention", "ta_net"), ("audio_attention", "aa_net")]:
        rules += [(f"{ours}.proj.", f"{orig}.conv.0."), (f"{ours}.norm.", f"{orig}.conv.1."), (f"{ours}.fc.", f"{orig}.fc.")]
    for prefix, repl in rules:
        if key.startswith(prefix):
            return repl + key[len(prefix):]
    raise AssertionError(f"no original name for {key}")


def synthetic_original_state_dict(model: VAANet, prefix: str = "") -> dict:
    g = torch.Generator().manual_seed(3)
    sd = collections.OrderedDict()
    for key, value in model.state_dict().items():
        if value.dtype == torch.long:
            fake = value.clone()
        elif key.endswith("running_var"):
            fake = 0.5 + torch.rand(value.shape, generator=g)
        else:
            fake = torch.randn(value.shape, generator=g)
        sd[prefix + original_name(key)] = fake
    k = model.visual_channels
    sd[prefix + "fc.weight"] = torch.randn(model.num_classes, k, generator=g)  # the unused visual-only classifier
    sd[prefix + "fc.bias"] = torch.randn(model.num_classes, generator=g)
    return sd


def test_convert_original_state_dict():
    model = create_model("vaanet", **TINY)
    sd = synthetic_original_state_dict(model, prefix="module.")
    for name in ("module.resnet.0.weight", "module.resnet.7.1.bn2.running_var", "module.conv0.0.bias",
                 "module.sa_net.conv.0.weight", "module.sa_net.fc.weight", "module.cwa_net.conv.1.weight",
                 "module.ta_net.fc.bias", "module.aa_net.conv.1.running_mean", "module.a_resnet.0.weight",
                 "module.a_resnet.5.0.downsample.0.weight", "module.a_fc.1.num_batches_tracked", "module.av_fc.weight"):
        assert name in sd
    converted = convert_original_state_dict({"state_dict": sd})
    assert set(converted) == set(model.state_dict())
    model.load_state_dict(converted, strict=True)
    assert torch.equal(model.trunk.layer4[1].bn2.running_var, sd["module.resnet.7.1.bn2.running_var"])
    assert torch.equal(model.spatial_attention.proj.weight, sd["module.sa_net.conv.0.weight"])
    assert torch.equal(model.temporal_attention.fc.bias, sd["module.ta_net.fc.bias"])
    assert torch.equal(model.audio_net.layer2[0].downsample[0].weight, sd["module.a_resnet.5.0.downsample.0.weight"])
    assert torch.equal(model.classifier.weight, sd["module.av_fc.weight"])
    with torch.no_grad():
        assert torch.isfinite(model.eval()(*tiny_inputs(b=1)).logits).all()

    bad = dict(sd, **{"module.mystery.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="mystery.weight"):
        convert_original_state_dict(bad)


def test_load_original_checkpoint_file(tmp_path):
    model = create_model("vaanet", **TINY)
    sd = synthetic_original_state_dict(model)
    path = tmp_path / "save_3.pth"
    opt_state = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(2)}}, "param_groups": [{"lr": 2e-4, "params": [0]}]}
    torch.save({"epoch": 4, "state_dict": sd, "optimizer": opt_state}, path)
    report = load_original_checkpoint(model, path)
    assert report.unused == [] and report.missing == []
    assert torch.equal(model.audio_proj[0].weight, sd["a_fc.0.weight"])

    other = create_model("vaanet", **{**TINY, "seq_len": 6})  # temporal fc is 6x6, the file's 4x4
    with pytest.raises(CheckpointError, match="ta_net|temporal_attention.fc"):
        load_original_checkpoint(other, path)
    del sd["av_fc.bias"]
    torch.save({"state_dict": sd}, path)
    with pytest.raises(CheckpointError, match="classifier.bias"):
        load_original_checkpoint(model, path)
