"""CTEN (audio-visual) and CTEN visual-only: registry, parameter counts, shapes, switches, frozen
trunk, feature path, pretrained trunk formats."""
from __future__ import annotations

import pytest
import torch

from affectkit.errors import CheckpointError, ConfigError
from affectkit.models.blocks.resnet3d import ResNet3d, checkpoint_head_classes, load_kinetics_checkpoint
from affectkit.models.cten import CTEN, CTENVisual, DEFAULT_CONFIG, CrossModalAttention, NonLocalBlock
from affectkit.models.outputs import ClassifierOutput
from affectkit.registry import create_model, get_model_entry, list_models

TINY = dict(depth=10, width=4, seq_len=4, snippet_duration=4, sample_size=32, nonlocal_dim=8, num_classes=5)
TINY_AV = dict(TINY, audio_width=4, audio_frames=64, audio_bins=8, heads=2)


def count(model, trainable=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def inputs(model, b=2, seed=0):
    torch.manual_seed(seed)
    return model.example_inputs(batch_size=b)


def test_registered_as_two_models_with_the_original_defaults():
    assert {"cten", "cten_visual"} <= set(list_models())
    av, vis = get_model_entry("cten"), get_model_entry("cten_visual")
    assert av.input_keys == ("video", "audio") and vis.input_keys == ("video",)
    assert av.task == "temporal_erasing" and "classify" in av.tasks
    cfg = av.default_config
    assert (cfg["seq_len"], cfg["snippet_duration"], cfg["sample_size"], cfg["audio_frames"], cfg["audio_bins"]) == (16, 16, 112, 1600, 128)
    assert (cfg["nonlocal_residual"], cfg["cross_query"], cfg["erase_audio"], cfg["erase_threshold"]) == ("scaled", "original", False, 0.7)
    assert cfg["dropout"] == 0.2 and cfg["heads"] == 8 and cfg["frozen_trunk"] is True
    assert cfg == DEFAULT_CONFIG


@pytest.mark.parametrize("name,total,trainable,total_m,trainable_m", [
    ("cten", 135_283_484, 50_038_364, 135.28, 50.04),
    ("cten_visual", 87_367_899, 2_122_779, 87.37, 2.12),
])
def test_full_size_parameter_counts_equal_the_original(name, total, trainable, total_m, trainable_m):
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = create_model(name)
    assert round(count(model) / 1e6, 2) == total_m and round(count(model, True) / 1e6, 2) == trainable_m
    assert count(model) == total and count(model, True) == trainable
    assert count(model.trunk) == 85_245_120 and count(model.trunk, True) == 0  # R3D-101 without fc, frozen
    assert count(model.visual_nonlocal) == 3 * (2048 * 256 + 256) + (256 * 2048 + 2048) + 2 * 2048 + 1


def test_full_size_output_shapes():
    with torch.device("meta"):
        for model, k in ((create_model("cten"), 8), (create_model("cten_visual", num_classes=6), 6)):
            model.eval()
            out = model(**_meta_inputs(model))
            assert out.logits.shape == (2, k) and out.temporal_attention.shape == (2, 16)
            assert out.extras["snippet_logits"].shape == (2, 16, k)
            assert model.trunk_features(torch.empty(2, 16, 3, 16, 112, 112)).shape == (2, 16, 2048)


def _meta_inputs(model):
    x = {"video": torch.empty(2, 16, 3, 16, 112, 112)}
    if "audio" in model.input_keys:
        x["audio"] = torch.empty(2, 1600, 128)
    return x


@pytest.mark.parametrize("cls,cfg", [(CTEN, TINY_AV), (CTENVisual, TINY)])
def test_tiny_forward_snippet_logits_and_feature_path(cls, cfg):
    torch.manual_seed(0)
    model = cls(**cfg).eval()
    x = inputs(model)
    with torch.no_grad():
        out = model(**x)
        assert isinstance(out, ClassifierOutput)
        assert out.logits.shape == (2, 5) and out.temporal_attention.shape == (2, 4)
        assert (out.temporal_attention >= 0).all()  # ReLU attention
        # the video's logits are the mean of the per-snippet logits (eval: dropout is the identity)
        assert torch.allclose(out.extras["snippet_logits"].mean(1), out.logits, atol=1e-5)
        feats = model.trunk_features(x["video"])
        assert feats.shape == (2, 4, model.trunk_channels)
        again = model(**{**x, "video": None}, video_features=feats) if "audio" in x else model(video_features=feats)
        assert torch.allclose(again.logits, out.logits, atol=1e-6)
        logits, gamma, snip = model.forward_export(**x)
        assert torch.allclose(logits, out.logits) and torch.allclose(gamma, out.temporal_attention)
        if "audio" in x:  # precomputed audio stream output in place of the audio (temporal erasing shares it)
            shared = model(video=x["video"], audio_features=model.audio_stream(x["audio"]))
            assert torch.equal(shared.logits, out.logits)
            with pytest.raises(ValueError, match="audio features must be"):
                model(video=x["video"], audio_features=torch.zeros(2, 3, model.trunk_channels))


def test_frozen_trunk_gets_no_gradient_heads_do():
    torch.manual_seed(0)
    model = CTEN(**TINY_AV).train()
    out = model(**inputs(model))
    out.logits.sum().backward()
    assert all(p.grad is None for p in model.trunk.parameters())
    for part in (model.visual_nonlocal, model.audio_nonlocal, model.visual_cross, model.audio_cross,
                 model.audio_net, model.temporal_attention, model.classifier):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), part
    model.trunk_bn = "frozen"
    model.train()
    assert not model.trunk.training and model.classifier.training


def test_nonlocal_residual_forms():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 16)
    scaled, paper = NonLocalBlock(16, 4, "scaled").eval(), NonLocalBlock(16, 4, "paper").eval()
    paper.load_state_dict({k: v for k, v in scaled.state_dict().items()}, strict=False)
    assert scaled.alpha.item() == 0.0 and paper.alpha is None
    # at init the original switches the identity path off: y = BN(W z), the paper adds x
    assert torch.allclose(paper(x) - scaled(x), x, atol=1e-6)
    with torch.no_grad():
        scaled.alpha.fill_(1.0)
    assert torch.allclose(paper(x), scaled(x), atol=1e-6)
    with pytest.raises(ConfigError, match="nonlocal_residual"):
        NonLocalBlock(16, 4, "sum")


def test_cross_modal_attention_and_query_switch():
    torch.manual_seed(0)
    att = CrossModalAttention(16, heads=4)
    q, kv = torch.randn(2, 3, 16), torch.randn(2, 5, 16)
    y = att(q, kv, kv)
    assert y.shape == (2, 3, 16) and (y >= 0).all()  # ReLU after the output projection
    # the result depends on the keys/values only through their set: permuting them changes nothing
    perm = torch.randperm(5)
    assert torch.allclose(att(q, kv[:, perm], kv[:, perm]), y, atol=1e-6)
    torch.manual_seed(1)
    original = CTEN(**TINY_AV).eval()
    paper = CTEN(**TINY_AV, cross_query="paper").eval()
    with torch.no_grad():  # a fresh ReLU attention may be all zero (logits = bias): make it positive
        original.temporal_attention.fc.bias.fill_(1.0)
    paper.load_state_dict(original.state_dict())
    x = inputs(original)
    with torch.no_grad():
        assert not torch.allclose(original(**x).logits, paper(**x).logits)
    assert count(original) == count(paper)
    with pytest.raises(ConfigError, match="heads"):
        CrossModalAttention(10, heads=4)


def test_bad_config_and_inputs():
    with pytest.raises(ConfigError, match="multiple of seq_len"):
        CTEN(**{**TINY_AV, "audio_frames": 30})
    with pytest.raises(ConfigError, match="cross_query"):
        CTEN(**TINY_AV, cross_query="swap")
    with pytest.raises(ConfigError, match="erase_on"):
        CTENVisual(**TINY, erase_on="pixels")
    with pytest.raises(ConfigError, match="erase_threshold"):
        CTENVisual(**TINY, erase_threshold=1.5)
    model = CTEN(**TINY_AV).eval()
    x = inputs(model)
    with pytest.raises(ValueError, match="audio must be"):
        model(x["video"], x["audio"][:, :10])
    with pytest.raises(ValueError, match="video features must be"):
        model(video_features=torch.zeros(2, 3, model.trunk_channels), audio=x["audio"])


def _hara_file(path, *, classes, prefix, depth=10, width=4):
    torch.manual_seed(3)
    ref = ResNet3d(depth=depth, width=width, num_classes=classes)
    sd = {prefix + k: v for k, v in ref.state_dict().items()}
    torch.save({"state_dict": sd, "epoch": 200} if prefix else sd, path)
    return ref


@pytest.mark.parametrize("classes,prefix", [(1039, ""), (400, "module.")])
def test_pretrained_trunk_both_hara_releases(tmp_path, classes, prefix):
    """CTEN's r3d101_KM format (1039-way, no prefix, a raw state dict) and VAANet's 2017 format
    (400-way, module. prefix, {"state_dict": ...}) both load into the trunk by name."""
    path = tmp_path / "r3d.pth"
    ref = _hara_file(path, classes=classes, prefix=prefix)
    model = CTENVisual(**TINY, pretrained_trunk=str(path))
    rep = model.pretrained_report
    assert sorted(rep.unused) == ["fc.bias", "fc.weight"] and not rep.missing
    for k, v in model.trunk.state_dict().items():
        assert torch.equal(v, ref.state_dict()[k]), k
    assert not any(p.requires_grad for p in model.trunk.parameters())
    # the head size identifies the release; a check can be asked for
    from affectkit.models.blocks.resnet3d import read_state_dict
    assert checkpoint_head_classes(read_state_dict(path)) == classes
    load_kinetics_checkpoint(ResNet3d(depth=10, width=4), path, expected_classes=(400, 1039))
    with pytest.raises(CheckpointError, match="expected a 3D ResNet checkpoint with a 700-way"):
        load_kinetics_checkpoint(ResNet3d(depth=10, width=4), path, expected_classes=700)


def test_pretrained_trunk_wrong_depth_fails_loudly(tmp_path):
    path = tmp_path / "r3d.pth"
    _hara_file(path, classes=1039, prefix="", width=8)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        CTENVisual(**TINY, pretrained_trunk=str(path))


def test_pretrained_cten_and_erase_views_options():
    """``pretrained_cten`` (an original CTEN training checkpoint, tests/models/test_cten_convert.py) is
    a pretrained arg of both networks (a kit checkpoint's own weights replace it on load);
    ``erase_views`` is fast by default and checked."""
    for name in ("cten", "cten_visual"):
        entry = get_model_entry(name)
        assert "pretrained_cten" in entry.pretrained_args and entry.default_config["pretrained_cten"] is None
        assert entry.default_config["erase_views"] == "fast"
    assert CTENVisual(**TINY, erase_views="faithful").erase_views == "faithful"
    with pytest.raises(ConfigError, match="erase_views"):
        CTEN(**TINY_AV, erase_views="decode")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        CTENVisual(**TINY, pretrained_cten="/nonexistent/save_1_0.5.pth")
