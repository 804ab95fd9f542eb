"""The fast CPU inference path agrees with the plain fp32 model."""
import pytest
import torch

from affectkit import create_model
from affectkit.deploy.fast import fold_batchnorm, prepare_fast

TINY = dict(depth=18, width=8, audio_width=8, audio_segments=4, seq_len=4, snippet_duration=8, sample_size=32,
            audio_frames=128, num_classes=4)


def _inputs(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, 4, 3, 8, 32, 32, generator=g) * 255, torch.randn(3, 128, 32, generator=g) * 40


def _trained_looking(model):
    # random BN statistics and a sharper head, so that probabilities are far from uniform
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    with torch.no_grad():
        model.classifier.weight.mul_(8)
    return model.eval()


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_fast_path_agrees_with_fp32(precision):
    torch.manual_seed(0)
    model = _trained_looking(create_model("vaanet", **TINY))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = prepare_fast(model, precision=precision, allocator=False)
    with torch.inference_mode():
        for seed in range(3):
            v, a = _inputs(seed)
            ref, out = model(video=v, audio=a), fast(video=v, audio=a)
            p_ref, p_out = torch.softmax(ref.logits, -1), torch.softmax(out.logits, -1)
            # int8 at this tiny width (8 channels) is the worst case for quantisation error;
            # the full-size agreement is measured by benchmarks/bench_vaanet.py
            tol = 1e-4 if precision == "fp32" else 0.1
            assert (p_ref - p_out).abs().max() < tol
            assert out.temporal_attention.shape == ref.temporal_attention.shape
            assert torch.equal(p_ref.argmax(-1), p_out.argmax(-1))
    # the original model is left as it was
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_batchnorm_folding_is_exact():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(3, 8, 3, padding=1, bias=False), torch.nn.BatchNorm3d(8), torch.nn.ReLU())
    net[1].running_mean.normal_()
    net[1].running_var.uniform_(0.5, 2)
    net.eval()
    x = torch.randn(2, 3, 4, 8, 8)
    ref = net(x)
    folded = fold_batchnorm(net)
    assert torch.allclose(folded(x), ref, atol=1e-5)
