"""MBT (bottleneck / MODA fusion), both presets: full-size parameter counts and shapes on the meta
device, the fusion's information flow, segment-wise logits, the frozen AST layers, the loss, errors."""
from __future__ import annotations

import pytest
import torch

from affectkit.config import load_config
from affectkit.errors import ConfigError
from affectkit.losses import PolarityConsistentCE
from affectkit.registry import create_model, derive_model_args, get_model_entry

# ViT-B block: qkv 768x2304+2304, proj 768x768+768, 2 LayerNorms, MLP 768x3072+3072 and 3072x768+768
BLOCK = (768 * 2304 + 2304) + (768 * 768 + 768) + 2 * 2 * 768 + (768 * 3072 + 3072) + (3072 * 768 + 768)
TUBELET = 3 * 2 * 16 * 16 * 768 + 768
AUDIO_PATCH = 16 * 16 * 768 + 768
NORM = 2 * 768


def _tiny(name, **kw):
    torch.manual_seed(0)
    return create_model(name, **{**get_model_entry(name).tiny_args, "num_classes": 3, **kw}).eval()


def _count(model, trainable=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def test_full_size_parameter_counts():
    assert BLOCK == 7_087_872
    with torch.device("meta"):
        mbt = create_model("mbt", num_classes=8)
        mart = create_model("mbt_mart", num_classes=8)
    # mbt: learned positions for 16x14x14 video and 8x50 audio tokens, 4 bottlenecks, one shared head
    video = 12 * BLOCK + NORM + TUBELET + 3136 * 768
    audio = 12 * BLOCK + NORM + AUDIO_PATCH + 400 * 768
    assert _count(mbt) == video + audio + 4 * 768 + (768 * 8 + 8) == 174_214_664
    # mbt_mart: fixed sinusoid video table, CLS; AST 110 learned positions, CLS + DIST; 32 bottlenecks; two heads
    video = 12 * BLOCK + NORM + TUBELET + 768
    audio = 12 * BLOCK + NORM + AUDIO_PATCH + 110 * 768 + 2 * 768
    assert _count(mart) == video + audio + 32 * 768 + 2 * (768 * 8 + 8) == 171_613_456
    frozen = 8 * BLOCK + AUDIO_PATCH + 110 * 768 + 2 * 768  # AST embedding + layers 0-7
    assert _count(mart, trainable=True) == 171_613_456 - frozen == 114_627_088


def test_full_size_shapes_on_the_meta_device():
    with torch.device("meta"):
        mart = create_model("mbt_mart", num_classes=8)
        out = mart(video=torch.empty(1, 2, 3, 16, 112, 112), audio=torch.empty(1, 200, 128))  # 2 segments
        mbt = create_model("mbt", num_classes=8)
        clip = mbt(**{k: v.to("meta") for k, v in {"video": torch.empty(1, 4, 3, 8, 224, 224),
                                                  "audio": torch.empty(1, 800, 128)}.items()})
    assert out.logits.shape == (1, 8) and out.extras["snippet_logits"].shape == (1, 2, 8)
    assert out.extras["segment_video_tokens"].shape == (1, 2, 393, 768)
    assert out.extras["segment_audio_tokens"].shape == (1, 2, 110, 768)
    assert clip.logits.shape == (1, 8) and clip.extras["snippet_logits"].shape == (1, 4, 8)
    assert mbt.video_encoder.n_patches == 3136 and mbt.audio_encoder.n_patches == 400


def test_segment_mode_logits_are_the_mean_of_independent_segments():
    model = _tiny("mbt_mart")
    x = model.example_inputs(2)
    out = model(**x)
    snip = out.extras["snippet_logits"]
    assert snip.shape == (2, 2, 3)
    assert torch.allclose(snip.mean(1), out.logits, atol=1e-5)
    assert torch.allclose(out.extras["modality_logits"].sum(1), out.logits, atol=1e-5)  # MART: sum of heads
    y = {k: v.clone() for k, v in x.items()}
    y["video"][:, 1] = 255 - y["video"][:, 1]
    y["audio"][:, 32:] += 3.0  # snippet 1's audio window
    again = model(**y).extras["snippet_logits"]
    assert torch.allclose(again[:, 0], snip[:, 0], atol=1e-5) and not torch.allclose(again[:, 1], snip[:, 1])
    five = model(video=x["video"].transpose(1, 2).reshape(2, 3, 8, 32, 32), audio=x["audio"])
    assert torch.allclose(five.logits, out.logits, atol=1e-6)  # (B, 3, S*T, H, W) is the same clip
    # any number of segments (MART: 12 in training, 16 in evaluation)
    assert model(video=x["video"][:, :1], audio=x["audio"][:, :32]).extras["snippet_logits"].shape == (2, 1, 3)


def test_bottlenecks_are_the_only_cross_modal_path():
    x = _tiny("mbt").example_inputs(1)
    y = dict(x, audio=x["audio"] + 5.0)
    # depth 3: no fusion layer; one (the bottlenecks it reads are still the initial ones: no exchange yet);
    # two (the second reads the bottlenecks the first averaged over both modalities)
    for fusion_layer, crosses in ((3, False), (2, False), (1, True)):
        model = _tiny("mbt", depth=3, fusion_layer=fusion_layer, head_init="default")
        a = model(**x).extras["modality_logits"][:, 0]  # the video head
        b = model(**y).extras["modality_logits"][:, 0]
        assert torch.allclose(a, b, atol=1e-6) != crosses
    model = _tiny("mbt", fusion_layer=1, head_init="default", classifier="token")
    model.bottleneck.data.zero_()
    tokens = model.encode(model.normalize_video(x["video"]).transpose(1, 2).reshape(1, 3, 8, 32, 32), x["audio"])
    assert tokens["video"].shape == (1, 1 + 16, 32) and tokens["audio"].shape == (1, 1 + 4, 32)


def test_clip_mode_gap_head_is_zero_initialised_and_windows_are_per_snippet():
    model = _tiny("mbt")
    out = model(**model.example_inputs(2))
    assert torch.equal(out.logits, torch.zeros(2, 3))  # MBT: zero-initialised shared Dense
    model = _tiny("mbt", head_init="default")
    x = model.example_inputs(1)
    w = model._window_features(model.encode(model.normalize_video(x["video"]).transpose(1, 2).reshape(1, 3, 8, 32, 32),
                                            (x["audio"] - model.audio_norm[0]) / model.audio_norm[1]), 2)
    assert w["video"].shape == (1, 2, 32) and w["audio"].shape == (1, 2, 32)
    assert model.audio_windows.tolist() == [[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]]  # patch centres 8, 24 | 40, 56


def test_frozen_ast_layers_get_no_gradient():
    model = _tiny("mbt_mart", depth=3, fusion_layer=2, audio_frozen_layers=1).train()
    out = model(**model.example_inputs(2))
    model.classification_loss(out, torch.tensor([0, 2]), torch.nn.CrossEntropyLoss()).backward()
    enc = model.audio_encoder
    assert all(p.grad is None and not p.requires_grad for p in enc.blocks[0].parameters())
    assert enc.patch_embed.proj.weight.grad is None and enc.pos_embed.grad is None
    assert all(p.grad is not None for p in enc.blocks[1].parameters())
    assert model.bottleneck.grad is not None and model.video_encoder.patch_embed.proj.weight.grad is not None
    with pytest.raises(ConfigError, match="audio_frozen_layers"):
        _tiny("mbt_mart", audio_frozen_layers=2)  # beyond the fusion layer


def test_classification_loss_per_head():
    model = _tiny("mbt_mart")
    out = model(**model.example_inputs(2))
    target = torch.tensor([1, 2])
    pcce = PolarityConsistentCE([0, 1, 1], 0.5)
    ml = out.extras["modality_logits"]
    expected = pcce(ml[:, 0], target) + pcce(ml[:, 1], target)  # MART: each head's PCCE, summed
    assert torch.allclose(model.classification_loss(out, target, pcce), expected)
    token = _tiny("mbt", classifier="token", head_init="default")
    o = token(**token.example_inputs(2))
    ce = torch.nn.CrossEntropyLoss()
    m = o.extras["modality_logits"]
    assert torch.allclose(token.classification_loss(o, target, ce), (ce(m[:, 0], target) + ce(m[:, 1], target)) / 2)
    assert torch.allclose(o.logits, m.mean(1))  # MBT: logits averaged over modalities


def test_moda_fusion_with_text_tokens():
    model = _tiny("mbt_mart", fusion="moda", text_tokens=True)
    x = model.example_inputs(2)
    plain = _tiny("mbt_mart", fusion="moda")
    text = torch.randn(2, 5, 32)
    pad = torch.tensor([[False, False, True, True, True], [False] * 5])
    out = model(**x, text_tokens=text, text_padding_mask=pad)
    t2 = text.clone()
    t2[0, 2:] = 100.0
    again = model(**x, text_tokens=t2, text_padding_mask=pad)
    assert torch.allclose(out.logits, again.logits, atol=1e-5)  # padded text does not matter
    with torch.no_grad():
        for layer in model.moda:
            layer.align.ratio.fill_(1.0)
    t3 = text.clone()
    t3[0, 0] = torch.randn(32)  # a valid text token (a constant shift would vanish in the LayerNorm)
    assert not torch.allclose(model(**x, text_tokens=t3, text_padding_mask=pad).logits[0],
                              model(**x, text_tokens=text, text_padding_mask=pad).logits[0])
    per_window = model(**x, text_tokens=torch.randn(2, 2, 3, 32))  # (B, S, L, D): one text per window
    assert per_window.logits.shape == (2, 3)
    with pytest.raises(ValueError, match="without text_tokens=True"):
        plain(**x, text_tokens=text)
    with pytest.raises(ConfigError, match="needs fusion='moda'"):
        _tiny("mbt", text_tokens=True)


def test_bad_inputs_and_options_are_clear_errors():
    model = _tiny("mbt_mart")
    x = model.example_inputs(1)
    with pytest.raises(ValueError, match=r"audio must be \(B, 64, 16\)"):
        model(video=x["video"], audio=x["audio"][:, :50])
    with pytest.raises(ValueError, match=r"video must be \(B, S, 3, 4, 32, 32\)"):
        model(video=x["video"][..., :16], audio=x["audio"])
    with pytest.raises(ValueError, match="clip mode takes seq_len=2"):
        _tiny("mbt")(video=x["video"][:, :1], audio=x["audio"])
    with pytest.raises(ConfigError, match="fusion must be one of"):
        _tiny("mbt", fusion="concat")
    with pytest.raises(ConfigError, match="moda_mask lists 2 masks for 1 fusion layers"):
        _tiny("mbt", fusion="moda", moda_mask=["full", "full"])
    with pytest.raises(ConfigError, match="multiple of seq_len"):
        _tiny("mbt", audio_frames=63)


def test_pretrained_paths_load_into_the_encoders(tmp_path):
    donor = _tiny("mbt_mart")
    torch.save({"model": {f"encoder.{k}": v for k, v in donor.video_encoder.state_dict().items() if k != "cls_token"}},
               tmp_path / "videomae.pth")
    torch.save({f"module.v.{k}": v for k, v in donor.audio_encoder.state_dict().items()}, tmp_path / "ast.pth")
    model = _tiny("mbt_mart", pretrained_video=str(tmp_path / "videomae.pth"), pretrained_audio=str(tmp_path / "ast.pth"))
    assert torch.equal(model.video_encoder.blocks[1].mlp.fc2.weight, donor.video_encoder.blocks[1].mlp.fc2.weight)
    assert torch.equal(model.audio_encoder.pos_embed, donor.audio_encoder.pos_embed)
    assert model.pretrained_video_report.missing == ["cls_token"]
    assert not model.audio_encoder.blocks[0].norm1.weight.requires_grad  # frozen after loading


def test_synthetic_config_derives_the_model():
    cfg = load_config("mbt/mbt_synth.yaml")
    args = derive_model_args(cfg, ["a", "b", "c", "d"])
    assert (args["seq_len"], args["snippet_duration"], args["sample_size"]) == (4, 8, 64)
    assert (args["audio_frames"], args["audio_bins"], args["num_classes"]) == (400, 64, 4)
    model = create_model("mbt", **args).eval()
    assert model.audio_encoder.grid == (5, 9) and model.video_encoder.grid == (4, 4, 4)


def test_the_classification_task_trains_mbt_heads_through_its_loss_hook():
    """The shared task calls a model's own classification_loss (per-modality heads) when it has one."""
    from affectkit.config import load_config
    from affectkit.engine.tasks import build_task
    from affectkit.registry import create_model, get_model_entry

    torch.manual_seed(0)
    model = create_model("mbt_mart", **{**get_model_entry("mbt_mart").tiny_args, "num_classes": 2}).train()
    calls = []
    original = model.classification_loss
    model.classification_loss = lambda out, target, fn: calls.append(1) or original(out, target, fn)
    cfg = load_config("mbt/mbt_synth.yaml", ["train.loss=ce"])
    task = build_task(cfg, ["a", "b"])
    batch = {**model.example_inputs(2), "label": torch.tensor([0, 1])}
    out = task.train_step(model, batch)
    out.loss.backward()
    assert calls == [1] and torch.isfinite(out.loss)


# ------------------------------------------------------------------------------------------------
# text stream (text_encoder: word | hf)
TEXT = [["so happy to see you", ""], ["why would this happen again", "sad"]]


def _text_model(name="mbt_mart", **kw):
    return _tiny(name, text_encoder="word", text_max_len=8, **kw)


@pytest.mark.parametrize("fusion", ["bottleneck", "moda"])
@pytest.mark.parametrize("name", ["mbt_mart", "mbt"])
def test_text_stream_shapes_and_heads(fusion, name):
    model = _text_model(name, fusion=fusion, head_init="default")
    assert model.input_keys == ("video", "audio", "text")
    assert list(model.head) == (["shared"] if name == "mbt" else ["video", "audio", "text"])
    x = model.example_inputs(2)
    assert len(x["text"]) == 2 and len(x["text"][0]) == 2  # per-window strings
    out = model(**x)
    ml = out.extras["modality_logits"]
    assert out.logits.shape == (2, 3) and ml.shape == (2, 3, 3) and out.extras["snippet_logits"].shape == (2, 2, 3)
    assert torch.allclose(model._combine(ml), out.logits, atol=1e-5)  # combined over the three modalities
    if model.segment_mode:
        assert torch.allclose(out.extras["snippet_logits"].mean(1), out.logits, atol=1e-5)
        assert out.extras["segment_text_tokens"].shape[:2] == (2, 2)
    ids, mask = model.tokenize_text(x["text"])
    again = model(video=x["video"], audio=x["audio"], text_ids=ids, text_mask=mask)  # pre-tokenised
    assert torch.allclose(again.logits, out.logits, atol=1e-6)
    one = model(video=x["video"], audio=x["audio"], text=[["so happy"], ["sad"]])  # one text for all windows
    assert torch.isfinite(one.logits).all()
    with pytest.raises(ValueError, match="text has 3 windows"):
        model(video=x["video"], audio=x["audio"], text=[["a", "b", "c"]] * 2)
    with pytest.raises(ValueError, match="has a text encoder"):
        model(video=x["video"], audio=x["audio"])


@pytest.mark.parametrize("fusion", ["bottleneck", "moda"])
def test_text_reaches_other_heads_only_through_fusion(fusion):
    x = _text_model(fusion=fusion).example_inputs(1)
    a_text, b_text = [["so happy to see you", "so happy"]], [["why would this happen again", "sad sad"]]
    for fusion_layer, crosses in ((3, False), (1, True)):
        model = _text_model(fusion=fusion, depth=3, fusion_layer=fusion_layer)
        if fusion == "moda":
            with torch.no_grad():
                for layer in model.moda or []:
                    layer.align.ratio.fill_(1.0)
        a = model(video=x["video"], audio=x["audio"], text=a_text).extras["modality_logits"][0]
        b = model(video=x["video"], audio=x["audio"], text=b_text).extras["modality_logits"][0]
        assert not torch.allclose(a[2], b[2])  # the text head always sees the text
        assert torch.allclose(a[0], b[0], atol=1e-6) != crosses  # the video head only through fusion
        assert torch.allclose(a[1], b[1], atol=1e-6) != crosses  # and the audio head


@pytest.mark.parametrize("fusion", ["bottleneck", "moda"])
def test_empty_windows_and_padded_positions(fusion):
    model = _text_model(fusion=fusion, head_init="default", depth=3, fusion_layer=1)
    if fusion == "moda":
        with torch.no_grad():
            for layer in model.moda:
                layer.align.ratio.fill_(1.0)
    x = model.example_inputs(2)
    empty = model(video=x["video"], audio=x["audio"], text=[["", ""], ["", ""]])
    assert torch.isfinite(empty.logits).all() and torch.isfinite(empty.extras["segment_text_tokens"]).all()
    text_head = empty.extras["modality_logits"][:, 2]  # no valid text token: a zero feature, the head's bias
    assert torch.allclose(text_head, model.head["text"].bias.expand(2, -1), atol=1e-6)
    # an empty window is as if there were no text for the other modalities (bottleneck: it does not enter
    # the bottleneck average; moda: padded keys are masked and left out of the alignment)
    v = model.normalize_video(x["video"]).reshape(4, 3, 4, 32, 32)
    a = ((x["audio"] - model.audio_norm[0]) / model.audio_norm[1]).reshape(4, 32, 16)
    alone = model.encode(v, a)
    with_empty = model.encode(v, a, torch.randn(4, 3, 32), torch.ones(4, 3, dtype=torch.bool))
    assert torch.allclose(alone["video"], with_empty["video"], atol=1e-5)
    assert torch.allclose(alone["audio"], with_empty["audio"], atol=1e-5)
    with_text = model.encode(v, a, torch.randn(4, 3, 32), torch.zeros(4, 3, dtype=torch.bool))
    assert not torch.allclose(alone["video"], with_text["video"], atol=1e-3)  # (valid text does cross)
    ids, mask = model.tokenize_text(TEXT)
    assert mask.any()  # some padding to vary
    out = model(video=x["video"], audio=x["audio"], text_ids=ids, text_mask=mask)
    other = ids.masked_fill(mask, 123)
    again = model(video=x["video"], audio=x["audio"], text_ids=other, text_mask=mask)
    assert torch.equal(again.logits, out.logits)
    assert torch.allclose(model(video=x["video"], audio=x["audio"], text=TEXT).logits, out.logits, atol=1e-6)
    clip = _text_model("mbt", fusion=fusion, head_init="default")
    cx = clip.example_inputs(2)
    ids, mask = clip.tokenize_text(TEXT)
    base = clip(video=cx["video"], audio=cx["audio"], text_ids=ids, text_mask=mask)
    assert torch.equal(clip(video=cx["video"], audio=cx["audio"], text_ids=ids.masked_fill(mask, 9),
                            text_mask=mask).logits, base.logits)
    assert torch.isfinite(clip(video=cx["video"], audio=cx["audio"], text=[[""], [""]]).logits).all()


@pytest.mark.parametrize("fusion", ["bottleneck", "moda"])
def test_gradients_reach_the_text_encoder(fusion):
    model = _text_model(fusion=fusion).train()
    x = model.example_inputs(2)
    out = model(**x)
    loss = model.classification_loss(out, torch.tensor([0, 2]), torch.nn.CrossEntropyLoss())
    ml = out.extras["modality_logits"]
    ce = torch.nn.CrossEntropyLoss()
    assert torch.allclose(loss, sum(ce(ml[:, m], torch.tensor([0, 2])) for m in range(3)))  # text's loss too
    loss.backward()
    enc = model.text_encoder
    assert enc.embed.weight.grad is not None and enc.embed.weight.grad.abs().sum() > 0
    assert enc.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert model.head["text"].weight.grad.abs().sum() > 0
    assert enc.embed.weight.grad[0].abs().sum() == 0  # the pad row never learns
    fused = model.text_blocks[0]
    assert fused.attn.qkv.weight.grad.abs().sum() > 0


def test_text_options_keys_and_parameter_count():
    entry = get_model_entry("mbt")
    assert entry.input_keys == ("video", "audio") and get_model_entry("mbt_mart").input_keys == ("video", "audio")
    assert entry.keys_for(entry.default_config) == ("video", "audio")
    assert entry.keys_for({**entry.default_config, "text_encoder": "word"}) == ("video", "audio", "text")
    plain, text = _tiny("mbt_mart"), _text_model(text_layers=0, text_buckets=100)
    assert plain.input_keys == ("video", "audio") and plain.text_encoder is None
    d, k = 32, 3
    block = 4 * d * d + 4 * d + 2 * 2 * d + 2 * 4 * d * d + 4 * d + d
    # embedding (101 ids) + encoder norm, the fusion layer's text block, the text norm, the text head
    assert _count(text) - _count(plain) == 101 * d + 2 * d + block + 2 * d + d * k + k
    with pytest.raises(ConfigError, match="text_encoder must be one of"):
        _tiny("mbt", text_encoder="bert")
    with pytest.raises(ConfigError, match="not a model folder"):
        _tiny("mbt", text_encoder="hf", text_model_dir="/no/such/bert")
    with pytest.raises(ValueError, match="no text_encoder"):
        plain(**plain.example_inputs(1), text=[["hello", "world"]])


def test_text_configs_derive_text_models():
    from affectkit.engine.tasks import model_inputs

    for name, fusion in (("mbt/mbt_synth_text.yaml", "bottleneck"), ("mbt/mbt_synth_moda.yaml", "moda")):
        cfg = load_config(name)
        args = derive_model_args(cfg, ["a", "b", "c", "d"])
        assert args["text_encoder"] == "word" and args["fusion"] == fusion and args["segment_mode"]
        assert get_model_entry("mbt").keys_for(args) == ("video", "audio", "text")
        model = create_model("mbt", **{**args, "depth": 3, "fusion_layer": 2}).eval()
        assert model.input_keys == ("video", "audio", "text")
        batch = {**model.example_inputs(1), "label": torch.tensor([0])}
        assert set(model_inputs(model, batch)) == {"video", "audio", "text"}
        ids, _ = model.tokenize_text(batch["text"])
        tokenised = {k: v for k, v in batch.items() if k != "text"} | {"text_ids": ids}
        inputs = model_inputs(model, tokenised)  # pre-tokenised ids stand in for the strings
        assert set(inputs) == {"video", "audio", "text_ids"}
        assert torch.allclose(model(**inputs).logits, model(**model_inputs(model, batch)).logits, atol=1e-6)


def test_hf_text_encoder_in_mbt(tmp_path):
    from .test_text_encoder import _bert_folder

    folder, _, _ = _bert_folder(tmp_path / "bert")
    for fusion in ("bottleneck", "moda"):
        model = _tiny("mbt_mart", fusion=fusion, text_encoder="hf", text_model_dir=str(folder), text_max_len=8,
                      head_init="default")
        assert not any(p.requires_grad for p in model.text_encoder.model.parameters())
        x = model.example_inputs(2)
        out = model(**x)
        assert out.extras["modality_logits"].shape == (2, 3, 3) and torch.isfinite(out.logits).all()
        empty = model(video=x["video"], audio=x["audio"], text=[["", ""], ["", ""]])
        assert torch.isfinite(empty.logits).all()
        again = _tiny("mbt_mart", fusion=fusion, text_encoder="hf", text_model_dir=str(folder), text_max_len=8,
                      head_init="default")
        again.load_state_dict(model.state_dict())
        assert torch.allclose(again(**x).logits, out.logits, atol=1e-6)


@pytest.mark.parametrize("fusion", ["bottleneck", "moda"])
def test_collated_batch_with_text_runs_through_the_task_inputs(fusion):
    """The kit's data path: per-sample dicts (text: one string per snippet window, or absent for a sample
    without subtitles) -> collate_samples -> model_inputs -> forward, in both fusions."""
    from affectkit.data.clips import collate_samples
    from affectkit.engine.tasks import model_inputs

    model = _text_model(fusion=fusion, head_init="default")
    x = model.example_inputs(3)
    samples = [{"video": x["video"][i], "audio": x["audio"][i], "text": list(x["text"][i]), "label": i}
               for i in range(3)]
    del samples[2]["text"]  # a sample without text: collated as None, read as empty windows
    batch = collate_samples(samples)
    assert batch["text"][:2] == [x["text"][0], x["text"][1]] and batch["text"][2] is None
    inputs = model_inputs(model, batch)
    assert set(inputs) == {"video", "audio", "text"}
    out = model(**inputs)
    assert out.logits.shape == (3, 3) and torch.isfinite(out.logits).all()
    alone = model(video=x["video"][:2], audio=x["audio"][:2], text=x["text"][:2])
    assert torch.allclose(out.logits[:2], alone.logits, atol=1e-5)  # samples stay independent
    empty = model(video=x["video"][2:], audio=x["audio"][2:], text=[["", ""]])
    assert torch.allclose(out.logits[2:], empty.logits, atol=1e-5)
