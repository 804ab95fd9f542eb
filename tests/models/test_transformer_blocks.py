"""Transformer blocks (DropPath, masked self-attention, ViT/AST encoders), position-grid resizing, the
VideoMAE / AST / DeiT converters (files in the public key layouts, written here), and MODA's alignment."""
from __future__ import annotations

import pytest
import torch

from affectkit.errors import CheckpointError
from affectkit.models.blocks.moda import ModaAlignment, ModaFusionLayer, modality_template, moda_pairs
from affectkit.models.blocks.transformer import (AudioSpectrogramTransformer, DropPath, MultiHeadSelfAttention,
                                                 TransformerBlock, VideoViT, load_ast_checkpoint,
                                                 load_videomae_checkpoint, resize_position_grid,
                                                 sinusoid_position_table)

D, H = 16, 2


def test_drop_path_drops_whole_samples_and_rescales():
    torch.manual_seed(0)
    dp = DropPath(0.5)
    x = torch.ones(64, 3, 4)
    assert torch.equal(dp.eval()(x), x)
    y = dp.train()(x)
    per_sample = y.reshape(64, -1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert (per_sample.min(1).values == per_sample.max(1).values).all()  # all or nothing per sample
    assert 0 < (per_sample[:, 0] == 0).sum() < 64


def test_key_padding_equals_attention_over_the_valid_tokens_only():
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(D, H).eval()
    x = torch.randn(2, 6, D)
    pad = torch.tensor([[False] * 4 + [True] * 2, [False] * 6])
    out = attn(x, key_padding_mask=pad)
    assert torch.allclose(out[0, :4], attn(x[:1, :4])[0], atol=1e-6)
    assert torch.allclose(out[1], attn(x[1:])[0], atol=1e-6)
    x2 = x.clone()
    x2[0, 4:] = 100.0  # padded content must not matter
    assert torch.allclose(attn(x2, key_padding_mask=pad)[0, :4], out[0, :4], atol=1e-6)
    o, w = attn(x, key_padding_mask=pad, need_weights=True)
    assert torch.allclose(o, out, atol=1e-5) and w.shape == (2, H, 6, 6)
    assert torch.all(w[0, :, :4, 4:] == 0) and torch.allclose(w.sum(-1), torch.ones(2, H, 6))


def test_block_is_pre_ln_residual():
    torch.manual_seed(0)
    block = TransformerBlock(D, H).eval()
    x = torch.randn(1, 5, D)
    h = x + block.attn(block.norm1(x))
    assert torch.allclose(block(x), h + block.mlp(block.norm2(h)), atol=1e-6)


def test_sinusoid_table():
    t = sinusoid_position_table(5, 8)
    assert t.shape == (5, 8)
    assert torch.allclose(t[0], torch.tensor([0.0, 1.0] * 4))
    assert torch.isclose(t[3, 2], torch.sin(torch.tensor(3.0 / 10000 ** (2 / 8))))
    assert torch.isclose(t[3, 3], torch.cos(torch.tensor(3.0 / 10000 ** (2 / 8))))


def test_encoder_token_grids_match_the_spec():
    with torch.device("meta"):
        vit = VideoViT(frames=16, image_size=112, dim=768, depth=1, heads=12)  # MART: 8x7x7 + CLS
        ast = AudioSpectrogramTransformer(frames=100, bins=128, dim=768, depth=1, heads=12)  # 12x9 + CLS + DIST
        mbt_audio = AudioSpectrogramTransformer(frames=800, bins=128, patch_stride=16, dim=768, depth=1, heads=12,
                                                cls_token=False, dist_token=False)
        v = vit.embed(torch.empty(1, 3, 16, 112, 112))
        a = ast.embed(torch.empty(1, 100, 128))
    assert vit.grid == (8, 7, 7) and v.shape == (1, 393, 768) and vit.pos_embed.shape == (1, 393, 768)
    assert ast.grid == (12, 9) and a.shape == (1, 110, 768)
    assert mbt_audio.grid == (8, 50) and mbt_audio.n_patches == 400


def test_tubelet_token_order_is_time_height_width():
    vit = VideoViT(frames=4, image_size=32, dim=D, depth=0, heads=H, cls_token=False, pos_embed="sinusoid")
    with torch.no_grad():
        vit.patch_embed.proj.weight.zero_()
        vit.patch_embed.proj.bias.zero_()
        vit.patch_embed.proj.weight[0, 0, 0, 0, 0] = 1.0  # channel 0 reads the tubelet's first pixel
    video = torch.zeros(1, 3, 4, 32, 32)
    video[0, 0, 2, 16, 0] = 7.0  # time step 1 (frames 2-3), row 1, column 0 -> token 1*4 + 1*2 + 0 = 6
    tokens = vit.embed(video) - vit.pos_embed
    assert tokens[0, :, 0].nonzero().flatten().tolist() == [6]


def test_resize_position_grid_crops_centre_and_interpolates():
    grid = torch.arange(12 * 101, dtype=torch.float32).reshape(12, 101, 1)
    cut = resize_position_grid(grid, (12, 9))
    assert torch.equal(cut[0, :, 0], torch.arange(46, 55, dtype=torch.float32))  # AST: time positions 46..54
    lin = torch.arange(4, dtype=torch.float32).reshape(1, 4, 1)
    up = resize_position_grid(lin, (1, 8))
    assert up.shape == (1, 8, 1) and up[0, 0, 0] == 0 and up[0, -1, 0] == 3
    assert torch.all(up[0, 1:, 0] >= up[0, :-1, 0])


# ---------------------------------------------------------------------------------------------
# converters: files in the public layouts
def _block_keys(prefix: str, i: int, g: torch.Generator, *, videomae: bool) -> dict:
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    p = f"{prefix}blocks.{i}."
    out = {p + "norm1.weight": r(D), p + "norm1.bias": r(D), p + "attn.qkv.weight": r(3 * D, D),
           p + "attn.proj.weight": r(D, D), p + "attn.proj.bias": r(D), p + "norm2.weight": r(D),
           p + "norm2.bias": r(D), p + "mlp.fc1.weight": r(4 * D, D), p + "mlp.fc1.bias": r(4 * D),
           p + "mlp.fc2.weight": r(D, 4 * D), p + "mlp.fc2.bias": r(D)}
    if videomae:
        out[p + "attn.q_bias"], out[p + "attn.v_bias"] = r(D), r(D)
    else:
        out[p + "attn.qkv.bias"] = r(3 * D)
    return out


def _copy_blocks(model, sd: dict, prefix: str, depth: int, *, videomae: bool) -> None:
    """Copy by hand, written from the public layouts' meaning (not through the converter)."""
    with torch.no_grad():
        for i in range(depth):
            b, p = model.blocks[i], f"{prefix}blocks.{i}."
            b.norm1.weight.copy_(sd[p + "norm1.weight"]), b.norm1.bias.copy_(sd[p + "norm1.bias"])
            b.attn.qkv.weight.copy_(sd[p + "attn.qkv.weight"])
            if videomae:  # VideoMAE: q and v biases, no key bias
                b.attn.qkv.bias[:D].copy_(sd[p + "attn.q_bias"])
                b.attn.qkv.bias[D:2 * D].zero_()
                b.attn.qkv.bias[2 * D:].copy_(sd[p + "attn.v_bias"])
            else:
                b.attn.qkv.bias.copy_(sd[p + "attn.qkv.bias"])
            b.attn.proj.weight.copy_(sd[p + "attn.proj.weight"]), b.attn.proj.bias.copy_(sd[p + "attn.proj.bias"])
            b.norm2.weight.copy_(sd[p + "norm2.weight"]), b.norm2.bias.copy_(sd[p + "norm2.bias"])
            for fc in ("fc1", "fc2"):
                getattr(b.mlp, fc).weight.copy_(sd[p + f"mlp.{fc}.weight"])
                getattr(b.mlp, fc).bias.copy_(sd[p + f"mlp.{fc}.bias"])


def _videomae_pretrain_file(tmp_path, depth=2):
    g = torch.Generator().manual_seed(1)
    sd = {"encoder.patch_embed.proj.weight": torch.randn(D, 3, 2, 16, 16, generator=g),
          "encoder.patch_embed.proj.bias": torch.randn(D, generator=g),
          "encoder.norm.weight": torch.randn(D, generator=g), "encoder.norm.bias": torch.randn(D, generator=g),
          "decoder.blocks.0.norm1.weight": torch.randn(8, generator=g), "encoder_to_decoder.weight": torch.randn(8, D),
          "mask_token": torch.zeros(1, 1, 8)}
    for i in range(depth):
        sd.update(_block_keys("encoder.", i, g, videomae=True))
    path = tmp_path / "videomae_base_patch16_224.pth"
    torch.save({"model": sd}, path)
    return path, sd


def _tiny_vit(**kw):
    return VideoViT(frames=4, image_size=32, dim=D, depth=2, heads=H, cls_token=True, **kw).eval()


def test_videomae_pretraining_file_loads_exactly(tmp_path):
    path, sd = _videomae_pretrain_file(tmp_path)
    torch.manual_seed(0)
    model = _tiny_vit()
    report = load_videomae_checkpoint(model, path)
    torch.manual_seed(0)
    ref = _tiny_vit()  # same cls token init
    _copy_blocks(ref, sd, "encoder.", 2, videomae=True)
    with torch.no_grad():
        ref.patch_embed.proj.weight.copy_(sd["encoder.patch_embed.proj.weight"])
        ref.patch_embed.proj.bias.copy_(sd["encoder.patch_embed.proj.bias"])
        ref.norm.weight.copy_(sd["encoder.norm.weight"]), ref.norm.bias.copy_(sd["encoder.norm.bias"])
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    assert set(report.unused) == {"decoder.blocks.0.norm1.weight", "encoder_to_decoder.weight", "mask_token"}
    assert report.missing == ["cls_token"]  # VideoMAE has no CLS (MART takes DeiT's)


def test_videomae_unmapped_deeper_and_position_mismatch_are_errors(tmp_path):
    path, sd = _videomae_pretrain_file(tmp_path)
    bad = dict(sd, **{"encoder.blocks.0.attn.rel_pos_bias": torch.zeros(3)})
    torch.save({"model": bad}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"bad\.pth.*blocks\.0\.attn\.rel_pos_bias"):
        load_videomae_checkpoint(_tiny_vit(), tmp_path / "bad.pth")
    deep, _ = _videomae_pretrain_file(tmp_path / "..", depth=3)
    with pytest.raises(CheckpointError, match=r"no place for.*blocks\.2\."):
        load_videomae_checkpoint(_tiny_vit(), deep)
    torch.save({"model": dict(sd, pos_embed=torch.zeros(1, 8, D))}, tmp_path / "pos.pth")
    with pytest.raises(CheckpointError, match=r"pos\.pth.*pos_embed='learned'"):
        load_videomae_checkpoint(_tiny_vit(pos_embed="sinusoid"), tmp_path / "pos.pth")
    model = _tiny_vit()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError):
        load_videomae_checkpoint(model, deep)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # all or nothing
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_videomae_checkpoint(model, tmp_path / "missing.pth")


def test_image_vit_file_inflates_central_frame_and_tiles_positions(tmp_path):
    g = torch.Generator().manual_seed(2)
    sd = {"patch_embed.proj.weight": torch.randn(D, 3, 16, 16, generator=g), "patch_embed.proj.bias": torch.zeros(D),
          "cls_token": torch.randn(1, 1, D, generator=g), "pos_embed": torch.randn(1, 1 + 4, D, generator=g),
          "norm.weight": torch.ones(D), "norm.bias": torch.zeros(D), "head.weight": torch.zeros(5, D),
          "head.bias": torch.zeros(5)}
    for i in range(2):
        sd.update(_block_keys("", i, g, videomae=False))
    torch.save(sd, tmp_path / "vit.pth")
    model = _tiny_vit(pos_embed="learned")  # grid (2, 2, 2); the file's is 2x2
    load_videomae_checkpoint(model, tmp_path / "vit.pth")
    w = model.patch_embed.proj.weight
    assert torch.equal(w[:, :, 1], sd["patch_embed.proj.weight"]) and torch.all(w[:, :, 0] == 0)
    pos = model.pos_embed[0]
    assert torch.equal(pos[0], sd["pos_embed"][0, 0])  # CLS row
    assert torch.equal(pos[1:5], sd["pos_embed"][0, 1:]) and torch.equal(pos[5:9], sd["pos_embed"][0, 1:])
    assert torch.equal(model.cls_token, sd["cls_token"])


def _tiny_ast(**kw):
    return AudioSpectrogramTransformer(frames=40, bins=32, dim=D, depth=2, heads=H, **kw).eval()  # grid (2, 3)


def test_ast_release_file_loads_exactly_with_the_time_crop(tmp_path):
    g = torch.Generator().manual_seed(3)
    sd = {"module.v.cls_token": torch.randn(1, 1, D, generator=g), "module.v.dist_token": torch.randn(1, 1, D, generator=g),
          "module.v.pos_embed": torch.randn(1, 2 + 2 * 11, D, generator=g),  # a 2 x 11 grid (as AST's 12 x 101)
          "module.v.patch_embed.proj.weight": torch.randn(D, 1, 16, 16, generator=g),
          "module.v.patch_embed.proj.bias": torch.randn(D, generator=g),
          "module.v.norm.weight": torch.randn(D, generator=g), "module.v.norm.bias": torch.randn(D, generator=g),
          "module.v.head.weight": torch.zeros(7, D), "module.v.head.bias": torch.zeros(7),
          "module.v.head_dist.weight": torch.zeros(7, D), "module.v.head_dist.bias": torch.zeros(7),
          "module.mlp_head.0.weight": torch.ones(D), "module.mlp_head.0.bias": torch.zeros(D),
          "module.mlp_head.1.weight": torch.zeros(527, D), "module.mlp_head.1.bias": torch.zeros(527)}
    for i in range(2):
        sd.update(_block_keys("module.v.", i, g, videomae=False))
    path = tmp_path / "audioset_10_10_0.4593.pth"
    torch.save(sd, path)
    model = _tiny_ast()
    report = load_ast_checkpoint(model, path)
    ref = _tiny_ast()
    _copy_blocks(ref, sd, "module.v.", 2, videomae=False)
    with torch.no_grad():
        ref.cls_token.copy_(sd["module.v.cls_token"]), ref.dist_token.copy_(sd["module.v.dist_token"])
        ref.patch_embed.proj.weight.copy_(sd["module.v.patch_embed.proj.weight"])
        ref.patch_embed.proj.bias.copy_(sd["module.v.patch_embed.proj.bias"])
        ref.norm.weight.copy_(sd["module.v.norm.weight"]), ref.norm.bias.copy_(sd["module.v.norm.bias"])
        grid = sd["module.v.pos_embed"][0, 2:].reshape(2, 11, D)[:, 4:7]  # start 11//2 - 3//2 = 4
        ref.pos_embed.copy_(torch.cat([sd["module.v.pos_embed"][0, :2], grid.reshape(6, D)])[None])
    x = torch.randn(2, 40, 32)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    assert {"mlp_head.1.weight", "head.weight", "head_dist.weight"} <= set(report.unused)  # names after module.[v.]
    assert report.missing == []


def test_deit_file_sums_colour_channels_and_unknown_keys_fail(tmp_path):
    g = torch.Generator().manual_seed(4)
    sd = {"cls_token": torch.randn(1, 1, D, generator=g), "dist_token": torch.randn(1, 1, D, generator=g),
          "pos_embed": torch.randn(1, 2 + 16, D, generator=g), "patch_embed.proj.weight": torch.randn(D, 3, 16, 16, generator=g),
          "patch_embed.proj.bias": torch.zeros(D), "norm.weight": torch.ones(D), "norm.bias": torch.zeros(D)}
    for i in range(2):
        sd.update(_block_keys("", i, g, videomae=False))
    torch.save({"model": sd}, tmp_path / "deit.pth")
    model = _tiny_ast()
    load_ast_checkpoint(model, tmp_path / "deit.pth")
    assert torch.allclose(model.patch_embed.proj.weight, sd["patch_embed.proj.weight"].sum(1, keepdim=True))
    grid = sd["pos_embed"][0, 2:].reshape(4, 4, D)[1:3, 1:4]  # 4 -> 2: start 1; 4 -> 3: start 1
    assert torch.equal(model.pos_embed[0, 2:], grid.reshape(6, D))
    no_dist = _tiny_ast(dist_token=False)
    assert "dist_token" in load_ast_checkpoint(no_dist, tmp_path / "deit.pth").unused
    torch.save(dict(sd, **{"blocks.0.ls1.gamma": torch.ones(D)}), tmp_path / "ls.pth")
    with pytest.raises(CheckpointError, match=r"ls\.pth.*blocks\.0\.ls1\.gamma"):
        load_ast_checkpoint(_tiny_ast(), tmp_path / "ls.pth")


# ---------------------------------------------------------------------------------------------
# MODA
def test_moda_alignment_is_the_identity_at_init_and_touches_only_targets():
    torch.manual_seed(0)
    mods = ("video", "audio", "text")
    align = ModaAlignment(8, mods, moda_pairs(mods, "simplex"))
    assert align.pairs == (("audio", "video"), ("text", "video"))
    k, v = torch.randn(2, 2, 7, 8), torch.randn(2, 2, 7, 8)
    ids = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    assert torch.equal(align(k, v, ids), k)
    with torch.no_grad():
        align.ratio.fill_(0.5)
    out = align(k, v, ids)
    assert torch.equal(out[:, :, 3:], k[:, :, 3:]) and not torch.allclose(out[:, :, :3], k[:, :, :3])
    random = ModaAlignment(8, mods, moda_pairs(mods, "duplex"), proj_init="random")
    assert len(random.pairs) == 6 and not torch.allclose(random(k, v, ids), k)


def test_moda_alignment_matches_the_per_sample_formula_with_padding():
    torch.manual_seed(1)
    mods = ("video", "text")
    align = ModaAlignment(4, mods, (("text", "video"),))
    with torch.no_grad():
        align.ratio.uniform_(0.5, 1.0)
        align.proj["video"].weight.add_(0.1 * torch.randn(4, 4))
    k, v = torch.randn(2, 1, 6, 4), torch.randn(2, 1, 6, 4)
    ids = torch.tensor([0, 0, 0, 1, 1, 1])
    pad = torch.tensor([[False] * 5 + [True], [False] * 6])
    out = align(k, v, ids, pad)
    for b in range(2):  # the per-sample loop of the spec (C.2), written out
        n_text = 2 if b == 0 else 3
        kt, vt = k[b, 0, 3:3 + n_text], v[b, 0, 3:3 + n_text]
        kt_hat = torch.nn.functional.normalize(kt + 1e-6, dim=-1)
        gram = torch.nn.functional.normalize(kt_hat.T @ vt, dim=-1)
        kv = k[b, 0, :3]
        kv_hat = torch.nn.functional.normalize(kv + 1e-6, dim=-1)
        expected = align.proj["video"](kv + align.ratio[0] * (kv_hat @ gram))
        assert torch.allclose(out[b, 0, :3], expected, atol=1e-5)
        assert torch.equal(out[b, 0, 3:], k[b, 0, 3:])


def test_mask_templates():
    ids = torch.tensor([0, 0, 1])
    assert modality_template(ids, "full").all()
    assert modality_template(ids, "intra_only").tolist() == [[True, True, False], [True, True, False], [False, False, True]]
    assert modality_template(ids, "cross_only").tolist() == [[False, False, True], [False, False, True], [True, True, False]]


def test_moda_fusion_layer_intra_only_keeps_modalities_apart_and_ignores_padding():
    torch.manual_seed(0)
    blocks = {m: TransformerBlock(D, H).eval() for m in ("video", "audio", "text")}
    x = {"video": torch.randn(2, 4, D), "audio": torch.randn(2, 3, D), "text": torch.randn(2, 5, D)}
    pad = {"text": torch.tensor([[False] * 3 + [True] * 2, [False] * 5])}
    intra = ModaFusionLayer(D, H, ("video", "audio", "text"), mask="intra_only").eval()
    out = intra(x, pad, blocks)
    assert torch.allclose(out["video"], blocks["video"](x["video"]), atol=1e-5)  # identity alignment at init
    full = ModaFusionLayer(D, H, ("video", "audio", "text"), mask="full").eval()
    a = full(x, pad, blocks)
    y = dict(x, text=x["text"].clone())
    y["text"][0, 3:] = 50.0  # padded text tokens
    b = full(y, pad, blocks)
    assert torch.allclose(a["video"], b["video"], atol=1e-5) and torch.allclose(a["audio"], b["audio"], atol=1e-5)
    y["text"][0, 0] = 50.0  # a valid one does matter
    assert not torch.allclose(full(y, pad, blocks)["video"][0], a["video"][0], atol=1e-3)
