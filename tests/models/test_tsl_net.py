"""TSL-Net (affectkit.models.tsl_net): the original's size and shapes, masking, top-k pooling, pseudo
labels and the loss terms."""
import math

import pytest
import torch

from affectkit.models.tsl_net import (TSLNet, cpc_nce, masked_topk_mean, select_pseudo_labels, tsl_loss)
from affectkit.registry import create_model, get_model_entry


def tiny(**kw):
    torch.manual_seed(0)
    return create_model("tsl_net", **{**get_model_entry("tsl_net").tiny_args, **kw})


def test_full_size_parameter_count_is_the_originals():
    with torch.device("meta"):
        m = TSLNet()
    count = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
    assert count(m) == 91_342_592  # 91.34 M, as the original model_tsl.py
    assert count(m.reverse_visual) == count(m.reverse_audio) == 40_901_120
    assert count(m.audio_net) == 1_661_184 and count(m.fusion) == 6_293_504


def test_full_size_shapes():
    torch.manual_seed(0)
    m = TSLNet().eval()
    a = m.audio_net
    x = torch.zeros(3, 1, 96, 60)  # three context windows of 3 x 32 mel frames
    assert a.block1(x).shape == (3, 64, 8, 7)
    assert a.block2(a.block1(x)).shape == (3, 256, 4, 3)
    assert a(x).shape == (3, 512)
    inputs = m.example_inputs(1, steps=20)
    with torch.no_grad():
        out = m(**inputs)
    ex = out.extras
    assert out.logits.shape == (1, 2) and out.temporal_attention.shape == (1, 20)
    assert ex["cas"].shape == ex["cas_fused"].shape == (1, 20, 3) and ex["fused"].shape == (1, 20, 2048)
    assert "cpc" not in ex  # the reverse mapping runs in training only
    # fused class scores = s_c (1 - s_bg); the background channel kept; video score = top-k mean of s (k = 20 // 8)
    s = torch.sigmoid(ex["cas"])
    assert torch.allclose(ex["cas_fused"][..., :2], s[..., :2] * (1 - s[..., 2:]))
    top = s[0, :, :2].topk(2, dim=0).values.mean(0)
    assert torch.allclose(ex["video_score"][0], top, atol=1e-6)
    assert torch.allclose(torch.sigmoid(out.logits), ex["video_score"], atol=1e-5)


def test_padded_batch_equals_each_video_alone():
    m = tiny().eval()
    a, b = m.example_inputs(1, steps=11), m.example_inputs(1, steps=16)
    batch = {k: torch.cat([torch.nn.functional.pad(a[k], (0,) * (2 * (a[k].dim() - 2)) + (0, 5)), b[k]]) for k in a}
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, :11] = True
    mask[1] = True
    with torch.no_grad():
        both = m(**batch, features_mask=mask)
        alone = m(**a)
    assert torch.allclose(both.extras["cas"][0, :11], alone.extras["cas"][0], atol=1e-5)
    assert torch.allclose(both.extras["video_score"][0], alone.extras["video_score"][0], atol=1e-6)
    assert (both.temporal_attention[0, 11:] == 0).all()


def test_masked_topk_mean_uses_floor_t_over_r_and_at_least_one():
    x = torch.arange(16, dtype=torch.float32).view(1, 16, 1).repeat(2, 1, 1)
    mask = torch.ones(2, 16, dtype=torch.bool)
    mask[1, 5:] = False  # 5 steps: k = max(1, 5 // 8) = 1 -> the largest real value, 4
    out = masked_topk_mean(x, mask, 8)
    assert out[0, 0] == pytest.approx((15 + 14) / 2) and out[1, 0] == pytest.approx(4.0)


def test_cpc_is_a_log_probability_and_perfect_reconstruction_is_best():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 50, 8, generator=g)
    mask = torch.ones(1, 50, dtype=torch.bool)
    random_nce = cpc_nce(x, torch.randn(1, 50, 8, generator=g), mask)
    assert random_nce < 0 and random_nce == pytest.approx(-math.log(50), abs=1.0)
    assert cpc_nce(x, x, mask) > random_nce


def test_pseudo_labels_by_hand():
    # T = 8, one point at step 3; s_bg high at 0 and 7, low around the point
    s_bg = torch.tensor([0.97, 0.3, 0.2, 0.1, 0.2, 0.6, 0.96, 0.98])
    cls = torch.tensor([0.1, 0.5, 0.6, 0.8, 0.5, 0.3, 0.1, 0.1])
    p = torch.stack([cls, 0.5 * cls, s_bg], dim=1)
    y_plus = torch.zeros(8, 3)
    y_plus[3] = torch.tensor([0.9, 0.1, 0.0])
    act, bkg = select_pseudo_labels(p, [3], y_plus)
    # head [0, 2]: the last step with s_bg >= 0.95 is 0 -> background [0, 0], weight 0.97 (the stretch max)
    # tail [4, 7]: first strong step 6 -> background [6, 7], weight 0.98
    assert bkg.tolist() == pytest.approx([0.97, 0, 0, 0, 0, 0, 0.98, 0.98])
    # growth: left 2, 1 accepted (s_bg <= max class score), 0 fails; right 4 accepted, 5 fails (0.6 > 0.3)
    assert torch.equal(act[3], y_plus[3])
    for t in (1, 2, 4):
        assert torch.equal(act[t], p[t])
    for t in (0, 5, 6, 7):
        assert (act[t] == 0).all()
    act0, bkg0 = select_pseudo_labels(p, [], y_plus)
    assert act0.abs().sum() == 0 and bkg0.abs().sum() == 0


def _train_out(m, steps=16):
    inputs = m.example_inputs(2, steps=steps)
    labels = torch.zeros(2, steps, 2)
    labels[0, 3] = torch.tensor([0.9, 0.1])
    labels[0, 10] = torch.tensor([0.1, 0.9])
    labels[1, 5] = torch.tensor([0.1, 0.9])
    dist = torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    return m(**inputs), labels, dist


def test_loss_terms_finite_gradients_and_cpc_sign():
    m = tiny().train()
    torch.manual_seed(1)
    out, labels, dist = _train_out(m)
    loss, logs = tsl_loss(out, labels, dist)
    assert torch.isfinite(loss)
    assert logs["cpc_nce"] < 0 and all(logs[k] >= 0 for k in ("loss_video", "loss_frame", "loss_pseudo_action", "loss_background"))
    legacy, _ = tsl_loss(out, labels, dist, legacy_cpc_sign=True)
    # the paper's sign subtracts the log-probability, the original code adds it
    assert (legacy - loss).item() == pytest.approx(2 * logs["cpc_nce"], rel=1e-4)
    loss.backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if n.startswith(("reverse_", "cas_head", "audio_net")))
    # video-distribution term by hand: KL(d || D) / K, averaged over the batch
    D = out.extras["video_distribution"].detach()
    want = sum(float((torch.xlogy(d, d) - d * D[b].log()).sum() / 2) for b, d in enumerate(dist)) / 2
    assert logs["loss_video"] == pytest.approx(want, rel=1e-4)


def test_bad_inputs_are_clear_errors():
    m = tiny().eval()
    x = m.example_inputs(1, steps=8)
    with pytest.raises(ValueError, match="features must be"):
        m(features=x["features"][..., :3], logmel=x["logmel"])
    with pytest.raises(ValueError, match="logmel must be"):
        m(features=x["features"], logmel=x["logmel"][:, :4])
    with pytest.raises(ValueError, match="max_len"):
        m(**m.example_inputs(1, steps=65))
    with pytest.raises(TypeError, match="unknown option"):
        TSLNet(visual_dim=4, not_an_option=1)
