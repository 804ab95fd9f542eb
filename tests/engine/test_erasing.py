"""CTEN's temporal erasing: the threshold rule (the spec's worked example), the erased views, the
keyframes output, and a tiny three-view training run through the shared trainer."""
from __future__ import annotations

import math

import numpy as np

import pytest
import torch

from affectkit import train
from affectkit.config import apply_overrides, load_config
from affectkit.engine.erasing import (
    TemporalErasingTask,
    erase_masks,
    erase_threshold,
    gather_audio,
    gather_snippets,
    keyframe_segments,
    segment_frames,
    view_indices,
)
from affectkit.engine.tasks import TASKS, build_task
from affectkit.models.cten import CTEN
from affectkit.errors import ConfigError
from affectkit.models.outputs import ClassifierOutput

WORKED = [0.0, 0.8, 0.7, 0.2, 1.0, 0.75, 0.3, 0.1]  # spec 2.4, S = 8


def _sets(mask):
    return set(torch.nonzero(mask).flatten().tolist())


def test_threshold_rule_on_the_spec_worked_example():
    gamma = torch.tensor([WORKED], dtype=torch.float32)
    assert erase_threshold(gamma).item() == pytest.approx(0.7)
    context, key = erase_masks(gamma)
    assert _sets(context[0]) == {0, 3, 6, 7} and _sets(key[0]) == {1, 4, 5}
    assert not context[0, 2] and not key[0, 2]  # gamma == tau exactly: in neither set
    # n_frames = 100, S = 8: L = 12, segment t = 1-based frames 12t+1 .. 12t+12
    key_frames = segment_frames(sorted(_sets(key[0])), 100, 8)
    assert key_frames == list(range(13, 25)) + list(range(49, 61)) + list(range(61, 73))
    assert segment_frames(sorted(_sets(context[0])), 100, 8) == (
        list(range(1, 13)) + list(range(37, 49)) + list(range(73, 85)) + list(range(85, 97)))
    # the spec's second check: tau = 0.73, context {0, 1, 4}, key {2, 3}
    g2 = torch.tensor([[0.1, 0.5, 0.9, 1.0, 0.2]])
    assert erase_threshold(g2).item() == pytest.approx(0.73)
    c2, k2 = erase_masks(g2)
    assert _sets(c2[0]) == {0, 1, 4} and _sets(k2[0]) == {2, 3}
    # theta is a parameter: theta = 0.5 -> tau = 0.55 here
    assert erase_threshold(g2, 0.5).item() == pytest.approx(0.55)


def test_constant_attention_falls_back_to_all_frames():
    gamma = torch.zeros(2, 8)  # e.g. an all-zero ReLU attention
    context, key = erase_masks(gamma)
    assert not context.any() and not key.any()
    assert torch.equal(view_indices(context), torch.arange(8).repeat(2, 1))
    assert torch.equal(view_indices(key), torch.arange(8).repeat(2, 1))
    assert segment_frames([], 100, 8) == list(range(1, 101))


def test_views_stretch_the_selected_segments_in_order():
    gamma = torch.tensor([WORKED, WORKED[::-1]])
    context, key = erase_masks(gamma)
    idx = view_indices(key)
    assert idx[0].tolist() == [1, 1, 1, 4, 4, 4, 5, 5]  # key segments {1, 4, 5} over 8 positions
    assert idx[1].tolist() == [2, 2, 2, 3, 3, 3, 6, 6]  # reversed: {2, 3, 6}
    assert view_indices(context)[0].tolist() == [0, 0, 3, 3, 6, 6, 7, 7]
    video = torch.arange(2 * 8).reshape(2, 8, 1, 1).float() * torch.ones(2, 8, 3, 5)
    out = gather_snippets(video, idx)
    assert out.shape == video.shape and torch.equal(out[1, :, 0, 0], video[1, idx[1], 0, 0])
    audio = torch.arange(2 * 16 * 3).reshape(2, 16, 3).float()  # 8 windows of 2 frames
    a = gather_audio(audio, idx)
    assert torch.equal(a[0, :2], audio[0, 2:4]) and torch.equal(a[0, 6:8], audio[0, 8:10])  # window 1 then 4


def test_keyframe_segments_rule():
    spans = [(i * 1.0, i * 1.0 + 1.0) for i in range(8)]
    kf = keyframe_segments(WORKED, spans)
    # normalised attention >= 0.7: snippets 1, 2 (0.7 exactly) and 4, 5; consecutive ones merged
    assert kf == [{"start": 1.0, "end": 3.0, "score": pytest.approx(0.75)},
                  {"start": 4.0, "end": 6.0, "score": pytest.approx(0.875)}]
    assert keyframe_segments([0.3] * 8, spans) == []  # a constant attention locates nothing
    assert keyframe_segments([0.0, 2.0], [(0, 1), (1, 2)], theta=0.5) == [{"start": 1.0, "end": 2.0, "score": 1.0}]


def _task(*overrides):
    cfg = load_config("cten/cten_synth.yaml")
    apply_overrides(cfg, list(overrides)) if overrides else None
    return build_task(cfg, ["a", "b", "c"], None)


def test_task_is_registered_and_formats_keyframes():
    assert TASKS["temporal_erasing"] is TemporalErasingTask
    task = _task()
    assert isinstance(task, TemporalErasingTask)
    logits = torch.tensor([[0.1, 2.0, -1.0]])
    out = ClassifierOutput(logits=logits, temporal_attention=torch.tensor([[0.0, 1.0, 0.9, 0.0]]))
    times = torch.tensor([[0.0, 0.8], [2.5, 3.3], [5.0, 5.8], [7.5, 8.3]])
    # a 10 s video at 10 fps (100 frames >= 4 x 8): each snippet stands for its 2.5 s segment
    res = task.format_prediction({"snippet_times": times, "duration": 10.0, "fps": 10.0}, out)
    assert res["label"] == "b" and len(res["timeline"]) == 4
    assert res["keyframes"] == [{"start": 2.5, "end": 7.5, "score": pytest.approx(0.95)}]
    # too short for whole segments: the snippets' own spans
    res = task.format_prediction({"snippet_times": times, "duration": 2.0, "fps": 10.0}, out)
    assert res["keyframes"] == [{"start": 2.5, "end": 5.8, "score": pytest.approx(0.95)}]


def _tiny_batch(model, b=3):
    torch.manual_seed(0)
    x = model.example_inputs(batch_size=b)
    return {**x, "label": torch.tensor([0, 1, 2][:b])}


@pytest.mark.parametrize("erase_on,erase_audio", [("features", False), ("video", True)])
def test_train_step_runs_three_views_with_gradients(erase_on, erase_audio):
    torch.manual_seed(0)
    model = CTEN(depth=10, width=4, seq_len=4, snippet_duration=4, sample_size=32, nonlocal_dim=8, num_classes=3,
                 audio_width=4, audio_frames=16, audio_bins=8, heads=2, erase_on=erase_on, erase_audio=erase_audio)
    with torch.no_grad():
        model.temporal_attention.fc.bias.copy_(torch.tensor([0.1, 2.0, 0.2, 0.1]))  # a non-constant attention
    calls = []
    forward = model.forward

    def spy(*args, **kw):
        calls.append(kw)
        return forward(*args, **kw)

    model.forward = spy
    batch = _tiny_batch(model)
    out = _task().train_step(model.train(), batch)
    assert len(calls) == 3 and math.isfinite(float(out.loss.detach()))
    key = "video_features" if erase_on == "features" else "video"
    assert all(key in c for c in calls)
    assert not torch.equal(calls[0][key], calls[2][key])  # the key view differs from the original
    if erase_audio:  # the views' audio windows re-ordered, each pass runs the audio stream
        assert all("audio" in c for c in calls) and not torch.equal(calls[0]["audio"], calls[2]["audio"])
    else:  # one audio stream pass feeds the three views
        assert all("audio" not in c and c["audio_features"] is calls[0]["audio_features"] for c in calls)
    assert out.logs["loss"] == pytest.approx((out.logs["loss_original"] + out.logs["loss_context"] + out.logs["loss_key"]) / 3)
    out.loss.backward()
    assert all(p.grad is None for p in model.trunk.parameters())
    assert model.classifier.weight.grad is not None and model.visual_nonlocal.theta.weight.grad.abs().sum() > 0


def test_tiny_training_runs_three_views_and_keeps_the_trunk(tiny_synth, tmp_path, monkeypatch):
    """Through the shared trainer: finite loss, three forward passes per training step, the frozen
    trunk unchanged (weights and, with trunk_bn=frozen, BatchNorm statistics), the heads trained."""
    from affectkit.engine import trainer as trainer_mod

    built, calls = {}, {"n": 0}
    real_create = trainer_mod.create_model

    def create(name, **args):
        model = real_create(name, **args)
        built["model"] = model
        built["trunk"] = {k: v.clone() for k, v in model.trunk.state_dict().items()}
        built["head"] = model.classifier.weight.detach().clone()
        forward = model.forward

        def counted(*a, **kw):
            if model.training:
                calls["n"] += 1
            return forward(*a, **kw)

        model.forward = counted
        return model

    monkeypatch.setattr(trainer_mod, "create_model", create)
    overrides = [f"data.path={tiny_synth}", f"output.root={tmp_path}", "output.run_name=cten", "output.tensorboard=false",
                 "model.args.depth=10", "model.args.width=4", "model.args.audio_width=4", "model.args.nonlocal_dim=8",
                 "model.args.heads=2", "model.args.frozen_trunk=true", "model.args.trunk_bn=frozen",
                 "model.args.erase_on=video",
                 "input.seq_len=4", "input.snippet_duration=4", "input.sample_size=32",
                 "input.audio.n_mels=16", "input.audio.num_frames=80", "input.audio.windows=4",
                 "data.num_workers=0", "train.batch_size=8", "eval.batch_size=16", "train.epochs=1",
                 "train.max_steps_per_epoch=2", "train.seed=0"]
    result = train("cten/cten_synth.yaml", overrides)
    rec = result.history[-1]
    assert math.isfinite(rec["train_loss"]) and all(math.isfinite(rec[f"train_loss_{v}"]) for v in ("original", "context", "key"))
    assert calls["n"] == 3 * 2  # three views per step, two steps
    model = built["model"]
    assert all(torch.equal(v, built["trunk"][k]) for k, v in model.trunk.state_dict().items())
    assert not torch.equal(model.classifier.weight.detach(), built["head"])
    assert "val_accuracy" in rec  # evaluation: the original view only (ClassificationTask's)
    # predict: the classification result and the keyframes the temporal attention locates
    import json
    from affectkit import predict

    db = json.loads(tiny_synth.read_text())["database"]
    vid = next(v for v in db.values() if v["subset"] == "testing")
    res = predict(tiny_synth.parent / vid["video"], checkpoint=result.best_dir)
    assert res["label"] in res["probabilities"] and len(res["timeline"]) == 4
    assert isinstance(res["keyframes"], list)
    assert all(0 <= k["start"] < k["end"] <= res["duration"] + 0.5 and 0.7 <= k["score"] <= 1 for k in res["keyframes"])


def test_plot_timeline_shades_keyframes(tmp_path):
    from affectkit.deploy.predictor import plot_timeline

    tl = [{"snippet": j, "start": j * 1.0, "end": j + 1.0, "attention": a, "probabilities": {"a": 0.6, "b": 0.4}}
          for j, a in enumerate([0.1, 0.9, 1.0, 0.2])]
    result = {"video": "v.mp4", "label": "a", "confidence": 0.6, "probabilities": {"a": 0.6, "b": 0.4},
              "timeline": tl, "duration": 4.0, "keyframes": [{"start": 1.0, "end": 3.0, "score": 0.95}]}
    fig = plot_timeline(result, tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 0
    main = fig.axes[0]
    assert "keyframes" in main.get_legend_handles_labels()[1]
    spans = [p for ax in fig.axes for p in ax.patches if p.get_label() == "keyframes" or
             (hasattr(p, "get_facecolor") and abs(p.get_facecolor()[3] - 0.15) < 1e-6)]
    assert len(spans) == 2  # on the probability panel and on the attention panel


# ---------------------------------------------------------------------------------------------
# erase_views: faithful (re-sample the reduced frame list, decode from the file)
def test_faithful_frame_indices_follow_the_segment_rule():
    from affectkit.engine.erasing import faithful_frame_indices

    # the spec's worked example: key segments {1, 4, 5}, n_frames 100, S 8: 1-based frames 13-24, 49-72
    allowed = {f - 1 for f in segment_frames([1, 4, 5], 100, 8)}
    centred = faithful_frame_indices([1, 4, 5], 100, 8, 4, random=False)
    assert centred.shape == (8, 4)
    # 36 frames in 8 parts of 4: the TSN sampler takes the first 32 entries of the reduced list, in order
    assert centred.flatten().tolist() == sorted(allowed)[:32]
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = faithful_frame_indices([1, 4, 5], 100, 8, 4, rng=rng)
        assert set(idx.flatten().tolist()) <= allowed and (np.diff(idx, axis=1) == 1).all()
    # few frames selected: loop padding of the reduced list (segment 3 of 40 frames, S 4: frames 30-39)
    short = faithful_frame_indices([3], 40, 4, 8, random=False)
    assert set(short.flatten().tolist()) == set(range(30, 40))
    # nothing selected: the whole video
    assert faithful_frame_indices([], 48, 4, 4, random=False).tolist() == snippet_indices_all(48)


def snippet_indices_all(n):
    from affectkit.data.sampling import snippet_indices

    return snippet_indices(n, 4, 4, random=False).tolist()


def _gray_video(path, n=48, step=5):
    """A video whose frame i is uniformly grey at level step * i: a decoded frame shows its index."""
    from affectkit.data.media_writer import write_video

    frames = np.repeat((np.arange(n, dtype=np.uint8) * step)[:, None, None, None], 32 * 32 * 3).reshape(n, 32, 32, 3)
    write_video(path, frames, 12)
    return path


def _faithful_cfg():
    return load_config("cten/cten_synth.yaml", ["input.seq_len=4", "input.snippet_duration=4", "input.sample_size=32",
                                                "train.augment.p=0"])


def _video_batch(cfg, paths):
    from affectkit.data.clips import collate_samples
    from affectkit.data.modalities import VideoModality
    from affectkit.data.clips import as_source

    part = VideoModality(cfg.input, train=True, augment=cfg.train.augment)
    samples = []
    for i, p in enumerate(paths):
        sample = {}
        part.load(as_source(str(p)), sample, np.random.default_rng(i), {})
        samples.append({**sample, "label": i % 3})
    return collate_samples(samples)


def test_faithful_view_decodes_the_frames_the_rule_selects(tmp_path):
    from affectkit.engine.erasing import FaithfulViews, faithful_frame_indices

    cfg = _faithful_cfg()
    batch = _video_batch(cfg, [_gray_video(tmp_path / "a.mp4"), _gray_video(tmp_path / "b.mp4", n=40)])
    # the loader keeps what the faithful view needs
    assert batch["path"] == [str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]
    assert batch["num_frames"].tolist() == [48, 40] and batch["frame_indices"].shape == (2, 4, 4)
    level = batch["video"].mean(dim=(2, 4, 5)) / 5  # (B, S, T): the decoded frame numbers
    assert torch.allclose(level, batch["frame_indices"].float(), atol=0.6)
    mask = torch.tensor([[False, True, False, True], [True, False, False, False]])
    views = FaithfulViews(cfg.input, cfg.train.augment)
    video = views.views(batch, mask, np.random.default_rng(7))
    assert video.shape == batch["video"].shape
    # the frames drawn are the rule's: the same draws again, video by video
    rng = np.random.default_rng(7)
    for i, (segments, n) in enumerate((([1, 3], 48), ([0], 40))):
        want = faithful_frame_indices(segments, n, 4, 4, rng=rng)
        rng.integers(5)  # the spatial transform's crop draw (p=0: no augmentation draw)
        rng.random()
        assert np.array_equal(views.last_indices[i], want)
    allowed = [set(range(12, 24)) | set(range(36, 48)), set(range(0, 10))]  # L = 12 and L = 10
    decoded = (video.mean(dim=(2, 4, 5)) / 5).round().long()  # (B, S, T)
    for i in range(2):
        assert torch.equal(decoded[i], torch.from_numpy(views.last_indices[i]))
        assert set(decoded[i].flatten().tolist()) <= allowed[i]
    with pytest.raises(ConfigError, match="needs 'path' and 'num_frames'"):
        views.views({"video": batch["video"]}, mask, np.random.default_rng(0))


@pytest.mark.parametrize("erase_on", ["features", "video"])
def test_train_step_with_faithful_views(tmp_path, erase_on):
    from affectkit.models.cten import CTENVisual

    cfg = _faithful_cfg()
    batch = _video_batch(cfg, [_gray_video(tmp_path / f"{i}.mp4", n=48 + 8 * i) for i in range(3)])
    torch.manual_seed(0)
    model = CTENVisual(depth=10, width=4, seq_len=4, snippet_duration=4, sample_size=32, nonlocal_dim=8, num_classes=3,
                       erase_on=erase_on, erase_views="faithful")
    with torch.no_grad():
        model.temporal_attention.fc.bias.copy_(torch.tensor([0.1, 2.0, 0.2, 0.1]))  # a non-constant attention
    calls, forward = [], model.forward
    model.forward = lambda *a, **kw: calls.append(kw) or forward(*a, **kw)
    task = build_task(cfg, ["a", "b", "c"], None)
    out = task.train_step(model.train(), batch)
    assert len(calls) == 3 and math.isfinite(float(out.loss.detach()))
    key = "video_features" if erase_on == "features" else "video"
    assert all(key in c for c in calls) and not torch.equal(calls[0][key], calls[2][key])
    out.loss.backward()
    assert model.classifier.weight.grad is not None
    with pytest.raises(ConfigError, match="erase_views"):
        CTENVisual(depth=10, width=4, seq_len=4, snippet_duration=4, sample_size=32, nonlocal_dim=8, erase_views="slow")


# ---------------------------------------------------------------------------------------------
# the optimised step (the unerased audio computed once for the three views) against a plain one
def _reference_step(model, batch, loss_fn):
    """The training step written out the plain way: three full forward calls, each running the
    audio stream on its own audio (the erased one with erase_audio)."""
    inputs = {"video": batch["video"], "audio": batch["audio"]}
    if model.erase_on == "features" and model.frozen_trunk:
        inputs = {"video_features": model.trunk_features(batch["video"]), "audio": batch["audio"]}
    out = model(**inputs)
    losses = [loss_fn(out.logits.float(), batch["label"])]
    for mask in erase_masks(out.temporal_attention.detach().float(), model.erase_threshold):
        idx = view_indices(mask)
        view = {k: gather_snippets(v, idx) for k, v in inputs.items() if k in ("video", "video_features")}
        view["audio"] = gather_audio(batch["audio"], idx) if model.erase_audio else batch["audio"]
        losses.append(loss_fn(model(**view).logits.float(), batch["label"]))
    return (losses[0] + losses[1] + losses[2]) / 3.0


@pytest.mark.parametrize("args", [
    dict(erase_on="features"),  # the full-size default: frozen trunk (train-mode BatchNorm), features gathered
    dict(erase_on="features", frozen_trunk=False),  # the synthetic config: trainable trunk, pixel snippets re-run
    dict(erase_on="video", trunk_bn="frozen"),
    dict(erase_on="features", erase_audio=True),  # erased audio: three audio passes, as before
])
def test_optimised_step_equals_the_plain_computation(args):
    import copy

    torch.manual_seed(0)
    model = CTEN(depth=10, width=4, seq_len=4, snippet_duration=4, sample_size=32, nonlocal_dim=8, num_classes=3,
                 audio_width=4, audio_frames=16, audio_bins=8, heads=2, dropout=0.3, **args)
    with torch.no_grad():
        model.temporal_attention.fc.bias.copy_(torch.tensor([0.1, 2.0, 0.2, 0.1]))  # a non-constant attention
    ref = copy.deepcopy(model).train()
    model.train()
    batch = _tiny_batch(model)
    batch["audio"] = batch["audio"] * 3
    task = _task()
    audio_calls = []
    model.audio_net.register_forward_hook(lambda *a: audio_calls.append(1))
    torch.manual_seed(1)  # the same dropout draws for both
    out = task.train_step(model, batch)
    assert len(audio_calls) == (3 if model.erase_audio else 1)
    out.loss.backward()
    torch.manual_seed(1)
    want = _reference_step(ref, batch, task.loss_fn)
    want.backward()
    assert abs(float(out.loss.detach()) - float(want.detach())) <= 1e-6
    grads = dict(ref.named_parameters())
    for name, p in model.named_parameters():
        q = grads[name]
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            err = float((p.grad - q.grad).abs().max()) / max(1.0, float(q.grad.abs().max()))
            # the audio stream: float32 rounding of the views' gradients summed before (not after) its
            # backward (largest seen: 1.1e-6 of the largest gradient, in conv1's weight); the rest: 1e-6
            tol = 1e-5 if name.startswith(("audio_net.", "audio_proj.", "audio_nonlocal.")) else 1e-6
            assert err <= tol, (name, err)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.audio_net.parameters())
    bufs = dict(ref.named_buffers())
    for name, b in model.named_buffers():  # BatchNorm running statistics: as after three audio passes
        assert torch.allclose(b.float(), bufs[name].float(), rtol=1e-6, atol=1e-7), name
    assert int(model.audio_proj[1].num_batches_tracked) == int(ref.audio_proj[1].num_batches_tracked) == 3


def test_audio_stream_passes_update_the_statistics_as_repeated_calls():
    torch.manual_seed(0)
    import copy

    model = CTEN(depth=10, width=4, seq_len=4, snippet_duration=4, sample_size=32, nonlocal_dim=8, num_classes=3,
                 audio_width=4, audio_frames=16, audio_bins=8, heads=2).train()
    ref = copy.deepcopy(model)
    audio = torch.randn(3, 16, 8) * 5
    once = model.audio_stream(audio, passes=3)
    for _ in range(3):
        want = ref.audio_stream(audio)
    assert torch.equal(once, want)
    bufs = dict(ref.named_buffers())
    for name, b in model.named_buffers():
        assert torch.equal(b, bufs[name]), name
    model.eval()  # eval mode: the statistics are not touched
    before = {k: v.clone() for k, v in model.named_buffers()}
    model.audio_stream(audio, passes=3)
    assert all(torch.equal(v, before[k]) for k, v in model.named_buffers())
