"""Shared building blocks: 3D ResNet (+ Kinetics checkpoint loading), 2D ResNet-18, attention."""
from __future__ import annotations

import collections
import math

import pytest
import torch
import torch.nn.functional as F

from affectkit.errors import CheckpointError, ConfigError
from affectkit.models.blocks.attention import AxisAttention
from affectkit.models.blocks.resnet2d import ResNet2d, load_torchvision_resnet18
from affectkit.models.blocks.resnet3d import (
    ResNet3d,
    ZeroPadShortcut3d,
    load_kinetics_checkpoint,
    read_state_dict,
)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------
# 3D ResNet
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth, expansion", [(10, 1), (18, 1), (34, 1), (50, 4)])
def test_resnet3d_feature_shapes(depth, expansion):
    torch.manual_seed(0)
    model = ResNet3d(depth=depth, width=4).eval()
    x = torch.randn(2, 3, 8, 48, 40)
    with torch.no_grad():
        f = model.forward_features(x)
    assert model.out_channels == 4 * 8 * expansion
    # T' = ceil(T/16), H' = ceil(H/32), W' = ceil(W/32)
    assert f.shape == (2, model.out_channels, 1, math.ceil(48 / 32), math.ceil(40 / 32))
    assert model(x).shape == f.shape  # no head: forward returns the feature map


def test_resnet3d_head_and_temporal_extent():
    model = ResNet3d(depth=18, width=4, num_classes=7).eval()
    x = torch.randn(1, 3, 32, 64, 64)
    with torch.no_grad():
        assert model.forward_features(x).shape == (1, 32, 2, 2, 2)
        assert model(x).shape == (1, 7)


def test_resnet3d_shortcut_types_and_names():
    a = ResNet3d(depth=18, width=4)  # auto: 'A' like Hara's released ResNet-18
    assert a.shortcut == "A"
    assert not any("downsample" in k for k in a.state_dict())
    assert isinstance(a.layer2[0].downsample, ZeroPadShortcut3d)
    b = ResNet3d(depth=18, width=4, shortcut="B")
    keys = set(b.state_dict())
    assert {"layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var"} <= keys
    assert "layer1.0.downsample.0.weight" not in keys  # same width at stride 1: identity
    with pytest.raises(ConfigError):
        ResNet3d(depth=42)
    with pytest.raises(ConfigError):
        ResNet3d(depth=18, shortcut="C")


def test_zero_pad_shortcut_matches_original_definition():
    # The 2017 release: avg_pool3d(kernel 1, stride) then zero channels concatenated
    x = torch.randn(2, 4, 5, 7, 6)
    ref = F.avg_pool3d(x, kernel_size=1, stride=2)
    ref = torch.cat([ref, torch.zeros(2, 4, *ref.shape[2:])], dim=1)
    assert torch.equal(ZeroPadShortcut3d(8, 2)(x), ref)


def test_resnet101_full_size_layout_matches_kinetics_release():
    model = ResNet3d(depth=101, num_classes=400)
    sd = model.state_dict()
    names = [k for k in sd if not k.endswith("num_batches_tracked")]
    # the original resnet-101-kinetics.pth holds 522 tensors (after stripping 'module.')
    assert len(names) == 522
    for key in ("conv1.weight", "bn1.running_mean", "layer1.0.downsample.0.weight", "layer1.0.downsample.1.bias",
                "layer3.22.conv3.weight", "layer4.2.bn3.running_var", "fc.weight", "fc.bias"):
        assert key in sd
    assert sd["conv1.weight"].shape == (64, 3, 7, 7, 7)
    assert sd["fc.weight"].shape == (400, 2048)
    trunk = n_params(model) - 400 * 2048 - 400
    assert trunk == 85_245_120  # the frozen 85.25 M of VAANet


def _kinetics_file(tmp_path, model: ResNet3d, name="kin.pth", prefix="module.", wrap=True):
    sd = collections.OrderedDict((prefix + k, v) for k, v in model.state_dict().items()
                                 if not k.endswith("num_batches_tracked"))  # 2017 files predate the counter
    obj = {"epoch": 200, "arch": "resnet-50", "state_dict": sd, "optimizer": {"state": {}, "param_groups": []}} if wrap else sd
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_load_kinetics_checkpoint_original_format(tmp_path):
    torch.manual_seed(0)
    source = ResNet3d(depth=50, width=4, num_classes=400)
    for p in source.parameters():
        torch.nn.init.normal_(p)
    path = _kinetics_file(tmp_path, source)

    model = ResNet3d(depth=50, width=4)  # trunk only
    report = load_kinetics_checkpoint(model, path)
    assert sorted(report.unused) == ["fc.bias", "fc.weight"]
    assert report.missing == [] and report.skipped == []
    assert len(report.loaded) == len(source.state_dict()) - 2 - sum(k.endswith("num_batches_tracked") for k in source.state_dict())
    src = source.state_dict()
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, src[key]), key
    assert str(path) in report.summary() and "fc.weight" in report.summary()

    # raw state dict, no prefix, into a model with a 400-way head: fc is loaded too
    raw = _kinetics_file(tmp_path, source, name="raw.pth", prefix="", wrap=False)
    with_head = ResNet3d(depth=50, width=4, num_classes=400)
    report = load_kinetics_checkpoint(with_head, raw)
    assert report.unused == [] and "fc.weight" in report.loaded
    assert torch.equal(with_head.fc.weight, source.fc.weight)


def test_load_kinetics_checkpoint_reports_missing(tmp_path):
    source = ResNet3d(depth=18, width=4, shortcut="A", num_classes=400)
    path = _kinetics_file(tmp_path, source)
    model = ResNet3d(depth=18, width=4, shortcut="B")  # has downsample weights the file lacks
    report = load_kinetics_checkpoint(model, path)
    assert "layer2.0.downsample.0.weight" in report.missing
    assert sorted(report.unused) == ["fc.bias", "fc.weight"]


def test_load_kinetics_checkpoint_shape_mismatch_names_key(tmp_path):
    source = ResNet3d(depth=50, width=4, num_classes=400)
    path = _kinetics_file(tmp_path, source)
    model = ResNet3d(depth=50, width=8)
    before = model.conv1.weight.clone()
    with pytest.raises(CheckpointError) as err:
        load_kinetics_checkpoint(model, path)
    msg = str(err.value)
    assert "conv1.weight" in msg and "(4, 3, 7, 7, 7)" in msg and "(8, 3, 7, 7, 7)" in msg and str(path) in msg
    assert torch.equal(model.conv1.weight, before)  # nothing copied


class _NotAllowlisted:
    pass


def test_load_kinetics_checkpoint_bad_files(tmp_path):
    model = ResNet3d(depth=10, width=4)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth"):
        load_kinetics_checkpoint(model, garbage)
    with pytest.raises(CheckpointError, match="nothere.pth"):
        load_kinetics_checkpoint(model, tmp_path / "nothere.pth")

    pickled = tmp_path / "pickled.pth"
    torch.save({"state_dict": {}, "opt": _NotAllowlisted()}, pickled)  # a full pickle
    with pytest.raises(CheckpointError, match="weights_only") as err:
        load_kinetics_checkpoint(model, pickled)
    assert "pickled.pth" in str(err.value)

    not_tensors = tmp_path / "strings.pth"
    torch.save({"a": "b"}, not_tensors)
    with pytest.raises(CheckpointError, match="strings.pth"):
        read_state_dict(not_tensors)

    unrelated = tmp_path / "unrelated.pth"
    torch.save({"state_dict": {"module.encoder.weight": torch.zeros(2)}}, unrelated)
    with pytest.raises(CheckpointError, match="unrelated.pth"):
        load_kinetics_checkpoint(model, unrelated)


# ---------------------------------------------------------------------------------------------
# 2D ResNet-18 (audio network)
# ---------------------------------------------------------------------------------------------
def audio_resnet(width=64):
    return ResNet2d(in_channels=1, conv1_kernel=(7, 1), conv1_stride=(2, 1), conv1_padding=(3, 0), width=width)


def test_resnet2d_vaanet_audio_full_size():
    model = audio_resnet().eval()
    assert n_params(model) == 11_167_552  # "11.17 M" of the spec
    assert model.conv1.weight.shape == (64, 1, 7, 1)
    x = torch.randn(2, 1, 256, 32)  # one MFCC chunk: 256 frames x 32 coefficients
    with torch.no_grad():
        fmap = model.forward_features(x)
        assert fmap.shape == (2, 512, 8, 2)  # what the original's AvgPool2d((8, 2)) reduces
        assert torch.allclose(model(x), F.avg_pool2d(fmap, (8, 2)).flatten(1), atol=1e-6)


def test_resnet2d_torchvision_names_and_tiny_inputs():
    model = ResNet2d(width=8, num_classes=10)
    keys = set(model.state_dict())
    for key in ("conv1.weight", "bn1.running_var", "layer1.0.conv2.weight", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.running_mean", "layer4.1.bn2.bias", "fc.weight"):
        assert key in keys
    assert "layer1.0.downsample.0.weight" not in keys
    assert ResNet2d(num_classes=1000).fc.weight.shape == (1000, 512)
    assert n_params(ResNet2d(num_classes=1000)) == 11_689_512  # torchvision resnet18
    with torch.no_grad():
        assert model.eval()(torch.randn(3, 3, 20, 12)).shape == (3, 10)


def test_load_torchvision_resnet18_into_audio_net(tmp_path):
    torch.manual_seed(0)
    imagenet = ResNet2d(num_classes=1000, width=8)  # same layout and names as torchvision's resnet18
    path = tmp_path / "resnet18.pth"
    torch.save(imagenet.state_dict(), path)
    model = audio_resnet(width=8)
    report = load_torchvision_resnet18(model, path)
    assert report.skipped == ["conv1.weight"]
    assert sorted(report.unused) == ["fc.bias", "fc.weight"]
    assert report.missing == []  # conv1 is 'skipped' (kept at its own initialisation), not missing
    assert torch.equal(model.layer3[1].conv2.weight, imagenet.layer3[1].conv2.weight)
    assert torch.equal(model.bn1.running_var, imagenet.bn1.running_var)


# ---------------------------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------------------------
def test_axis_attention():
    x = torch.randn(5, 12, 7)
    soft = AxisAttention(12, 7, fc_bias=False, normalize="softmax")
    w = soft(x)
    assert w.shape == (5, 7) and torch.allclose(w.sum(1), torch.full((5,), 7.0))
    relu = AxisAttention(12, 7, fc_bias=True, normalize="relu")
    assert (relu(x) >= 0).all()
    assert set(relu.state_dict()) >= {"proj.weight", "norm.weight", "norm.running_mean", "fc.weight", "fc.bias"}
    with pytest.raises(ValueError):
        AxisAttention(3, 3, fc_bias=True, normalize="sigmoid")
