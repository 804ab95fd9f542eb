"""The fast CPU inference path (affectkit.deploy.fast) agrees with the plain fp32 model."""
import pytest
import torch
import torch.nn.functional as F

from affectkit import create_model
from affectkit.deploy import fast as fastmod
from affectkit.deploy.fast import FastVAANet, fold_batchnorm, fold_conv_bn, int8_available, prepare_fast
from affectkit.models.outputs import ClassifierOutput
from affectkit.models.vaanet import KINETICS_RGB_MEAN

TINY = dict(depth=18, width=8, audio_width=8, audio_segments=4, seq_len=4, snippet_duration=8, sample_size=32,
            audio_frames=128, num_classes=4)
needs_int8 = pytest.mark.skipif(not int8_available(), reason="no oneDNN int8 convolutions / VNNI on this machine")


def _inputs(seed, n=3, t=8, size=32):
    g = torch.Generator().manual_seed(seed)
    video = torch.randint(0, 256, (n, 4, 3, t, size, size), generator=g).float()  # 8-bit pixels, as decoded
    return video, torch.randn(n, 128, 32, generator=g) * 40


def _trained_looking(model):
    """Random BN statistics and a sharper head, so that probabilities are far from uniform."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    with torch.no_grad():
        model.classifier.weight.mul_(8)
    return model.eval()


# precision -> largest probability difference allowed at this tiny width (8 channels: the worst
# case for int8; the full-size figures are measured by benchmarks/bench_vaanet.py)
TOLERANCE = {"fp32": 1e-5, "bf16": 0.01, "int8": 0.1, "mixed": 0.1}


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8", "mixed"])
def test_fast_path_agrees_with_fp32(precision):
    if precision in ("int8", "mixed") and not int8_available():
        pytest.skip("no int8 support here")
    torch.manual_seed(0)
    model = _trained_looking(create_model("vaanet", **TINY))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.inference_mode():
        ref0 = [model(video=v, audio=a) for v, a in map(_inputs, range(3))]
    fast = prepare_fast(model, precision=precision, allocator=False)
    assert isinstance(fast, FastVAANet) and fast.precision == precision
    with torch.inference_mode():
        for seed, r0 in enumerate(ref0):
            v, a = _inputs(seed)
            out = fast(video=v, audio=a)
            ref = model(video=v, audio=a)
            assert isinstance(out, ClassifierOutput)
            assert torch.equal(ref.logits, r0.logits)  # the original model computes what it did before
            p_ref, p_out = ref.logits.softmax(-1), out.logits.softmax(-1)
            assert torch.equal(p_ref.argmax(-1), p_out.argmax(-1))
            assert (p_ref - p_out).abs().max() < TOLERANCE[precision]
            assert out.logits.dtype == torch.float32
            assert out.temporal_attention.shape == ref.temporal_attention.shape
            assert set(out.extras) == set(ref.extras)
            assert all(out.extras[k].shape == ref.extras[k].shape for k in ref.extras)
    # the original model's weights are untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fast_model_interface():
    model = create_model("vaanet", **TINY).eval()
    fast = prepare_fast(model, precision="fp32", allocator=False)
    assert fast.input_keys == ("video", "audio")
    assert fast.num_classes == 4 and fast.seq_len == 4  # attributes of the original are readable
    assert fast.eval() is fast
    with pytest.raises(RuntimeError, match="inference-only"):
        fast.train()
    with pytest.raises(ValueError, match="eval mode"):
        prepare_fast(create_model("vaanet", **TINY).train(), allocator=False)
    with pytest.raises(ValueError, match="precision"):
        prepare_fast(model, precision="int4", allocator=False)
    v, a = _inputs(0, n=2)
    with torch.inference_mode():
        feats = fast.trunk_features(v)
        assert feats.shape == model.trunk_features(v).shape
        full = fast(video=v, audio=a)
        torch.testing.assert_close(fast(video_features=feats, audio=a).logits, full.logits)
        # the fast model manages its own precision: an outer autocast changes nothing
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under = fast(video=v, audio=a)
        torch.testing.assert_close(under.logits, full.logits)
        with pytest.raises(ValueError):
            fast(audio=a)


def test_fold_batchnorm_is_exact():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(3, 8, 3, padding=1, bias=True), torch.nn.BatchNorm3d(8), torch.nn.ReLU())
    net[1].running_mean.normal_()
    net[1].running_var.uniform_(0.5, 2)
    net[1].weight.data.uniform_(0.5, 1.5)
    net[1].bias.data.normal_()
    net.eval()
    x = torch.randn(2, 3, 4, 8, 8)
    ref = net(x)
    w, b = fold_conv_bn(net[0], net[1])
    torch.testing.assert_close(F.relu(F.conv3d(x, w, b, padding=1)), ref, atol=1e-5, rtol=1e-5)
    folded = fold_batchnorm(net)
    assert isinstance(folded[1], torch.nn.Identity)
    torch.testing.assert_close(folded(x), ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="training mode"):
        fold_batchnorm(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2)).train())


def test_prepare_fast_on_another_model_folds_a_copy():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3, padding=1), torch.nn.BatchNorm3d(4), torch.nn.ReLU()).eval()
    net[1].running_var.uniform_(0.5, 2)
    x = torch.randn(1, 3, 4, 8, 8)
    fast = prepare_fast(net, allocator=False)
    assert isinstance(net[1], torch.nn.BatchNorm3d)  # the original keeps its BatchNorm
    torch.testing.assert_close(fast(x), net(x), atol=1e-5, rtol=1e-5)


@needs_int8
@pytest.mark.parametrize("size", [32, 33])  # even: space-to-depth stem; odd: direct stem
@pytest.mark.parametrize("norm", ["original", "kinetics"])
def test_int8_stem_computes_the_normalisation(size, norm):
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(3, 16, 7, stride=(1, 2, 2), padding=3, bias=False)
    bn = torch.nn.BatchNorm3d(16).eval()
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    video = torch.randint(0, 256, (2, 3, 8, size, size)).float()
    if norm == "original":
        scale, offset = 1 / 255, torch.full((3,), 100 / 255)
    else:
        scale, offset = 1.0, torch.tensor(KINETICS_RGB_MEAN)
    w, b = fold_conv_bn(conv, bn)
    ref = F.conv3d(video * scale - offset.view(1, 3, 1, 1, 1), w, b, stride=(1, 2, 2), padding=3)
    stem = fastmod._PixelStem(conv, bn, video.shape, pixel_scale=scale, pad_raw=offset / scale)
    assert stem.s2d == (size % 2 == 0)
    out = stem(video, torch.float32)
    assert out.shape == ref.shape
    # only the int8 weights approximate (and, for "kinetics", the rounded padding value)
    assert (out - ref).abs().max() / ref.abs().max() < 0.01


@needs_int8
@pytest.mark.parametrize("dims,kernel,stride,padding", [(3, 3, 1, 1), (3, 1, 1, 0), (3, 1, 2, 0), (2, 3, 2, 1)])
def test_int8_convolution_matches_fp32(dims, kernel, stride, padding):
    torch.manual_seed(0)
    shape = (2, 16, 4, 6, 6) if dims == 3 else (2, 16, 8, 8)
    fmt = torch.channels_last_3d if dims == 3 else torch.channels_last
    x = torch.rand(shape).contiguous(memory_format=fmt)
    w = torch.randn(24, 16, *([kernel] * dims)) * 0.1
    b = torch.randn(24)
    conv = fastmod._QConv(w, b, (stride,) * dims, (padding,) * dims, shape)
    q, s = fastmod._quantize(x)
    assert q.dtype == torch.uint8 and q.shape == x.shape
    ref = (F.conv3d if dims == 3 else F.conv2d)(x, w, b, stride=stride, padding=padding)
    out = conv(q, s)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() / ref.abs().max() < 0.03


@needs_int8
def test_int8_network_blocks_match_fp32_features():
    torch.manual_seed(0)
    model = _trained_looking(create_model("vaanet", depth=50, width=8, audio_width=8, audio_segments=4, seq_len=2,
                                          snippet_duration=16, sample_size=32, audio_frames=128, num_classes=4))
    fast = prepare_fast(model, allocator=False)
    assert fast.precision == "int8" and fast.int8_audio
    v, a = _inputs(0, n=1, t=16)
    v = v[:, :2]
    with torch.inference_mode():
        ref, out = model.trunk_features(v), fast.trunk_features(v)
        assert (out - ref).norm() / ref.norm() < 0.05
        ra, oa = model.audio_net(a[:, None, :32]), fast.base.audio_net(a[:, None, :32])
        assert (oa - ra).norm() / ra.norm() < 0.05


CTEN_SMALL = dict(depth=18, width=8, seq_len=4, snippet_duration=8, sample_size=32, num_classes=4,
                  audio_width=8, audio_frames=128, audio_bins=32, nonlocal_dim=16)


@needs_int8
@pytest.mark.parametrize("name", ["cten", "cten_visual"])
def test_int8_trunk_backend_for_cten_agrees_with_fp32(name):
    from affectkit.deploy.fast import FastTrunkModel, trunk_int8_supported

    args = dict(CTEN_SMALL) if name == "cten" else {k: v for k, v in CTEN_SMALL.items() if not k.startswith("audio")}
    torch.manual_seed(0)
    model = create_model(name, **args).eval()
    assert trunk_int8_supported(model)[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = FastTrunkModel(model).eval()
    assert fast.int8_audio is (name == "cten")
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        video = torch.randint(0, 256, (2, 4, 3, 8, 32, 32), generator=g).float()
        inputs = {"video": video}
        if name == "cten":
            inputs["audio"] = torch.randn(2, 128, 32, generator=g) * 3
        with torch.inference_mode():
            ref, out = model(**inputs), fast(**inputs)
            feats_ref = model.trunk_features(video)
            feats = fast.trunk_features(video)
        # the int8 trunk's pooled features: close to fp32 at this tiny width (8 channels, the worst case)
        assert (feats - feats_ref).norm() / feats_ref.norm() < 0.05
        p_ref, p_out = ref.logits.softmax(-1), out.logits.softmax(-1)
        assert (p_ref - p_out).abs().max() < 0.1
        assert out.temporal_attention.shape == ref.temporal_attention.shape
        assert (out.temporal_attention - ref.temporal_attention).abs().max() < 0.1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(RuntimeError, match="inference-only"):
        fast.train()


def test_int8_trunk_backend_refuses_models_without_a_3d_trunk():
    from affectkit.deploy.fast import FastTrunkModel, trunk_int8_supported

    model = create_model("audio_cnn", num_classes=3).eval()
    ok, why = trunk_int8_supported(model)
    assert not ok and "ResNet3d" in why
    with pytest.raises(ValueError, match="ResNet3d"):
        FastTrunkModel(model)
