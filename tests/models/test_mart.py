"""MART (models/mart.py): the paper's equations on hand-made numbers (Eq. 3, E1/E2/E3, Eq. 5, Eq. 7, the KL
target, the ratio schedules, the tubelet target), the plug-in's added parameters on full-size MBT, and one
pretraining forward per switch (gradients reach every MART module; input masking reaches the encoder)."""
from __future__ import annotations

import math

import pytest
import torch

from affectkit.errors import ConfigError
from affectkit.losses import build_loss
from affectkit.models.mart import (WindowWords, code_attention_mask, code_mask_ratio, distribution_kl,
                                   emotion_oriented_mask, mask_count, tacl_infonce, temporal_emotion_score,
                                   tubelet_targets, verify_words)
from affectkit.registry import create_model, get_model_entry

CLASSES = ["Anger", "Joy", "Sadness", "Surprise"]
SIGN = torch.tensor([-1, 1, -1, 1])


def _tiny(**kw):
    torch.manual_seed(0)
    return create_model("mart", **{**get_model_entry("mart").tiny_args, "num_classes": 4, **kw})


def _words(sent, emo, deg, valid=None):
    sent, emo, deg = torch.tensor(sent), torch.tensor(emo), torch.tensor(deg, dtype=torch.float)
    valid = torch.ones_like(sent, dtype=torch.bool) if valid is None else torch.tensor(valid)
    texts = [[[f"w{i}{j}{k}" for k in range(sent.shape[2])] for j in range(sent.shape[1])] for i in range(sent.shape[0])]
    return WindowWords(texts, sent, emo, deg, valid)


def test_eq3_temporal_emotion_score_by_hand():
    z = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]]])  # (B=1, T=3, D=2)
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])  # fc: 3 classes, no bias
    dtcam, clip = temporal_emotion_score(z, lambda x: x @ w.T)
    zmax = torch.tensor([3.0, 2.0])  # temporal max-pool
    expect_clip = torch.softmax(zmax @ w.T, -1)
    assert torch.allclose(clip[0], expect_clip)
    for t in range(3):
        assert torch.allclose(dtcam[0, t], expect_clip * (z[0, t] @ w.T))


def test_e1_e2_e3_on_a_constructed_example():
    # two windows; window 0: the video says Joy (positive) with softmax(D) at Joy = p0; window 1: Anger (negative)
    dtcam = torch.tensor([[[0.0, 2.0, 0.0, 0.0], [3.0, 0.0, 0.0, 1.0]]])
    p0 = math.exp(2) / (math.exp(2) + 3)
    p1 = math.exp(3) / (math.exp(3) + math.exp(1) + 2)
    # window 0 words: Joy word degree p0 (E3), Surprise word (positive: E1 only), Anger word (negative: none),
    #                 Joy word of degree 0 (E2, fails degree)
    # window 1 words: Anger word of degree p1 (E3), Sadness word (negative: E1), neutral word, padding
    words = _words([[[1, 1, -1, 1], [-1, -1, 0, -1]]], [[[1, 3, 0, 1], [0, 2, -1, 0]]],
                   [[[p0, 1.0, 1.0, 0.0], [p1, 1.0, 0.0, p1]]],
                   [[[True, True, True, True], [True, True, True, False]]])
    v = verify_words(dtcam, words, SIGN, level=3, tau=0.3)
    assert v["video_emotion"].tolist() == [[1, 0]]
    assert torch.allclose(v["video_degree"], torch.tensor([[p0, p1]]))
    assert v["E1"].tolist() == [[[True, True, False, True], [True, True, False, False]]]
    assert v["E2"].tolist() == [[[True, False, False, True], [True, False, False, False]]]
    assert v["E3"].tolist() == [[[True, False, False, False], [True, False, False, False]]]
    assert verify_words(dtcam, words, SIGN, 0, 0.3)["verified"].tolist() == words.valid.tolist()
    assert verify_words(dtcam, words, SIGN, 2, 0.3)["verified"].tolist() == v["E2"].tolist()
    # tau decides E3: p0 ~ 0.711, the Joy word of degree 0 passes only with tau > p0
    assert verify_words(dtcam, words, SIGN, 3, 0.72)["E3"][0, 0, 3]
    with pytest.raises(ConfigError):
        verify_words(dtcam, words, SIGN, 4, 0.3)


def test_eq5_infonce_against_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    b, s, k, d, tau = 2, 3, 2, 4, 0.5
    zv, xl, za = (torch.randn(b, s, k, d, generator=g) for _ in range(3))
    valid = torch.ones(b, s, k, dtype=torch.bool)
    valid[0, 1, 1] = False
    valid[1, 2] = False

    def direct(normalize):
        n = (lambda x: x / x.norm()) if normalize else (lambda x: x)  # noqa: E731
        terms = []
        for i in range(b):
            for t in range(s):
                for w in range(k):
                    if not valid[i, t, w]:
                        continue
                    pos = math.exp(float(n(zv[i, t, w]) @ n(xl[i, t, w])) / tau)
                    neg = sum(math.exp(float(n(zv[i, t, w]) @ n(za[i, u, x])) / tau)
                              for u in range(s) if u != t for x in range(k) if valid[i, u, x])
                    terms.append(-math.log(pos / (pos + neg)))
        return sum(terms) / len(terms)

    assert float(tacl_infonce(zv, xl, za, valid, tau)) == pytest.approx(direct(True), rel=1e-5)
    # unnormalised dot products (D as printed in the paper)
    assert float(tacl_infonce(zv, xl, za, valid, tau, normalize=False)) == pytest.approx(direct(False), rel=1e-4)
    assert float(tacl_infonce(zv, xl, za, torch.zeros_like(valid), tau)) == 0.0
    # one window only: no negative, the loss is 0
    assert float(tacl_infonce(zv[:, :1], xl[:, :1], za[:, :1], valid[:, :1], tau)) == pytest.approx(0.0, abs=1e-6)


def test_eq7_masking_indices_and_hints_at_a_given_progress():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0]])
    # P = 10, S = floor(0.1 * 10) = 1 hint (token 1, score 0.9); progress 0.5 -> ratio 0.1 + 0.4 * 0.5 = 0.3 -> 3 masked
    masked, hints = emotion_oriented_mask(scores, 0.5, (0.1, 0.5), hint_ratio=0.1)
    assert hints[0].nonzero().flatten().tolist() == [1]
    assert masked[0].nonzero().flatten().tolist() == [4, 6, 8]  # ranks 2..4: scores 0.8, 0.7, 0.6
    # the start and the end of training: ceil(0.1 * 10) = 1 and ceil(0.5 * 10) = 5 masked after the hint
    assert emotion_oriented_mask(scores, 0.0, (0.1, 0.5), 0.1)[0][0].nonzero().flatten().tolist() == [6]
    assert emotion_oriented_mask(scores, 1.0, (0.1, 0.5), 0.1)[0][0].nonzero().flatten().tolist() == [2, 4, 6, 7, 8]
    # Eq. 7 as printed (ratio from 0): alpha M with M = 0.5 P, no hint
    assert emotion_oriented_mask(scores, 0.4, (0.0, 0.5), 0.0)[0][0].nonzero().flatten().tolist() == [1, 6]
    assert [mask_count(p, 392) for p in (0.0, 0.25, 1.0)] == [40, 79, 196]  # ceil(392 x 0.1, 0.2, 0.5)


def test_code_masking_schedule_drop_and_hints():
    assert code_mask_ratio(1 / 100) == pytest.approx(0.108)
    assert code_mask_ratio(0.5) == code_mask_ratio(0.9) == pytest.approx(0.5)
    scores = torch.arange(392, dtype=torch.float).flip(0).expand(4, -1)  # token i has rank i + 1
    g = torch.Generator().manual_seed(0)
    masked, hints = code_attention_mask(scores, 0.5, drop_prob=0.0, generator=g)
    # r = 0.5: the top 196 masked, then floor(0.1 * 0.5 * 392) = 19 of the top 39 revealed as hints
    assert hints.sum(1).tolist() == [19] * 4 and masked.sum(1).tolist() == [196 - 19] * 4
    assert bool((hints.nonzero()[:, 1] < 39).all()) and not bool((masked | hints)[:, 196:].any())
    dropped, _ = code_attention_mask(scores[:1].expand(400, -1), 0.5, drop_prob=0.5, generator=g)
    kept = dropped.any(1).float().mean()
    assert 0.4 < float(kept) < 0.6  # a whole window's mask cancelled with probability 0.5


def test_kl_target_and_tubelet_target():
    target = torch.tensor([[2.0, 0.0, -1.0]])
    pred = torch.tensor([[0.5, 0.5, 0.0]])
    t, p = torch.softmax(target, -1), torch.softmax(pred, -1)
    assert float(distribution_kl(target, pred)) == pytest.approx(float((t * (t / p).log()).sum()), rel=1e-6)
    assert float(distribution_kl(target, target)) == pytest.approx(0.0, abs=1e-7)
    g = torch.Generator().manual_seed(0)
    video = torch.rand(2, 3, 4, 8, 8, generator=g) * 255  # tubelet 2, patch 4 -> 2 x 2 x 2 = 8 tokens of 96
    out = tubelet_targets(video, 2, 4)
    assert out.shape == (2, 8, 96)
    token = 1 * 4 + 0 * 2 + 1  # (t=1, h=0, w=1) in the patch embedding's (t, h, w) order
    block = video[0, :, 2:4, 0:4, 4:8]  # (3, 2, 4, 4)
    pix = block.permute(1, 2, 3, 0).reshape(-1, 3)
    expect = (pix - pix.mean(0)) / (pix.std(0, unbiased=True) + 1e-6)
    assert torch.allclose(out[0, token], expect.reshape(-1), atol=1e-5)
    conv = torch.nn.Conv3d(3, 1, (2, 4, 4), stride=(2, 4, 4))  # same token order as the patch embedding
    assert conv(video).flatten(2).shape[-1] == out.shape[1]


def test_plugin_parameters_on_full_size_mbt():
    with torch.device("meta"):
        paper = create_model("mart", num_classes=8)
        code = create_model("mart", num_classes=8, tacl_mode="code", tacl_aux_heads=True, recover="pix")
    n = lambda ps: sum(p.numel() for p in ps)  # noqa: E731
    assert n(paper.backbone.parameters()) == 171_613_456  # mbt_mart (tests/models/test_mbt.py)
    mha = (768 * 2304 + 2304) + (768 * 768 + 768)
    proj = 2 * (768 * 768 + 768)
    assert n(paper.tacl.parameters()) == 3 * 2 * 768 + 2 * mha + 2 * proj == 7_091_712
    block512 = (512 * 1536 + 1536) + (512 * 512 + 512) + 4 * 512 + (512 * 2048 + 2048) + (2048 * 512 + 512)
    decoder = (768 * 512 + 512) + 8 * block512 + 2 * 512 + (512 * 1536 + 1536)
    assert n(code.decoder.parameters()) == decoder == 26_401_792  # spec A.14: ~25M
    assert n(paper.decoder.parameters()) == decoder + 512 * 8 + 8
    # the code's TACL (CPC predictors: 4 Conv1d(768, 768, 3) per modality; class heads): spec A.14 ~20M
    assert n(code.tacl.parameters()) == 7_091_712 + 2 * 4 * (768 * 768 * 3 + 768) + 2 * ((768 * 768 + 768) + (768 * 8 + 8))
    assert n(code.tacl.parameters()) == 22_447_120
    assert n(paper.plugin_parameters()) == 43_734_280 and n(code.plugin_parameters()) == 59_085_584


TEXTS = [["so happy and wonderful", "angry hate"], ["sad tears", ""]]


@pytest.mark.parametrize("switches", [
    {},  # the paper: input masking, Eq. 7, Eq. 5, pixels + KL
    {"verify_level": 0, "mask_where": "output", "mask_rank": "code", "tacl_mode": "code", "recover": "pix",
     "tacl_aux_heads": True, "mask_drop_prob": 0.5, "tacl_code_sign": "released"},  # the released code
    {"verify_level": 1, "mask_where": "input", "mask_rank": "code"},
])
def test_pretraining_step_trains_every_mart_module(switches):
    from affectkit.data.lexicon import get_lexicon

    model = _tiny(**switches).train()
    x = model.example_inputs(2)
    words = WindowWords.from_texts(TEXTS, get_lexicon("synthetic", CLASSES), CLASSES)
    assert words.texts[0][0][:2] == ["happy", "wonderful"] and not words.valid[1, 1].any()
    res = model(**x, words=words, label=torch.tensor([1, 2]), loss_fn=build_loss("ce"), progress=0.5,
                class_sign=SIGN, generator=torch.Generator().manual_seed(0))
    expected = {"cls", "tacl", "pix"} | ({"kl"} if "recover" not in switches else set()) \
        | ({"aux"} if switches.get("tacl_aux_heads") else set())
    assert expected <= set(res.losses) and math.isfinite(float(res.loss))
    weights = model.cfg
    total = sum(float(weights[f"loss_{k}"]) * res.losses[k] for k in expected)
    assert float(res.loss) == pytest.approx(total, rel=1e-5)
    res.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    for p in model.plugin_parameters():
        assert p.grad is not None
    assert res.info["masked"].shape == (2, 2, model.backbone.video_encoder.n_patches)


def test_input_masking_reaches_the_encoder_and_the_released_scope_freezes_the_plugin():
    model = _tiny().eval()
    x = model.example_inputs(1)
    p = model.backbone.video_encoder.n_patches
    mask = torch.zeros(1, 2, p, dtype=torch.bool)
    plain = model(**x).logits
    assert torch.allclose(model.backbone(**{k: x[k] for k in ("video", "audio")}, video_patch_mask=mask,
                                         mask_token=model.mask_token).logits, plain, atol=1e-6)
    mask[:, :, :p // 2] = True
    assert not torch.allclose(model.backbone(video=x["video"], audio=x["audio"], video_patch_mask=mask,
                                             mask_token=model.mask_token).logits, plain, atol=1e-4)
    frozen = _tiny(train_plugin=False)
    assert all(not q.requires_grad for q in frozen.plugin_parameters())
    assert all(q.requires_grad for q in frozen.backbone.video_encoder.parameters())


def test_bad_options_are_clear_errors():
    with pytest.raises(ConfigError, match="tacl_mode"):
        _tiny(tacl_mode="cpc")
    with pytest.raises(ConfigError, match="mask_ratio"):
        _tiny(mask_ratio=[0.6, 0.2])
    with pytest.raises(ConfigError, match="segment mode"):
        _tiny(segment_mode=False)
    with pytest.raises(ConfigError, match="unknown option"):
        from affectkit.models.mart import MART

        MART(_tiny().backbone, num_classes=4, mask_ratioo=[0.1, 0.5])
    model = _tiny().train()
    words = WindowWords.from_texts(TEXTS, None, CLASSES)
    with pytest.raises(ConfigError, match="polarity"):
        model(**model.example_inputs(2), words=words, label=torch.tensor([0, 1]), loss_fn=build_loss("ce"))
