"""Audio-only prediction over time: the model's window slid over the whole recording (issue 15, item 2)."""
import math

import numpy as np
import pytest
import torch

from affectkit.cli import main
from affectkit.config import load_config
from affectkit.data.media_writer import write_wav
from affectkit.deploy.predictor import Predictor, plot_timeline

from ..conftest import untrained_checkpoint

from ..data.audio_fixtures import tone

CLASSES = ["neutral", "happy", "sad", "angry"]
SR = 16000


def _checkpoint(root, name: str, overrides: list[str]):
    return untrained_checkpoint(root, name, overrides, CLASSES)


@pytest.fixture(scope="module")
def cnn_ckpt(tmp_path_factory):
    # the shipped recipe's input (4.0 s windows at 16 kHz), a narrow CNN
    return _checkpoint(tmp_path_factory.mktemp("cnn"), "audio/ravdess_cnn_logmel.yaml", ["model.args.channels=[4,8,8,8]"])


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    d = tmp_path_factory.mktemp("wavs")
    # 20 s whose pitch changes every 5 s, so windows differ
    long = np.concatenate([tone(5.0, SR, freq=f, seed=i) for i, f in enumerate((110.0, 330.0, 180.0, 500.0))])
    write_wav(d / "long.wav", long, SR)
    write_wav(d / "short.wav", tone(2.0, SR), SR)
    return d


def _spans(result):
    return [(e["start"], e["end"]) for e in result["timeline"]]


def test_long_recording_is_analysed_in_sliding_windows(cnn_ckpt, wavs):
    pred = Predictor(cnn_ckpt)
    window = pred.loader.window_seconds
    assert window == pytest.approx(4.0)
    r = pred.predict(wavs / "long.wav")
    hop = window / 2  # the default hop
    expected = 1 + math.ceil((20.0 - window) / hop)
    assert r["windows"] == len(r["timeline"]) == expected == 9
    spans = _spans(r)
    assert spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(20.0, abs=1e-3)  # the file is covered
    for (a0, b0), (a1, b1) in zip(spans, spans[1:]):
        assert b1 - a1 == pytest.approx(window, abs=1e-3)
        assert a1 > a0 and a1 <= b0 + 1e-6  # contiguous or overlapping, moving forward
    assert spans[1][0] - spans[0][0] == pytest.approx(hop, abs=1e-3)
    # whole-file probabilities: the mean of the window probabilities; the label is their argmax
    win = np.array([[e["probabilities"][c] for c in CLASSES] for e in r["timeline"]])
    assert np.allclose(win.sum(1), 1.0, atol=1e-4)
    whole = np.array([r["probabilities"][c] for c in CLASSES])
    assert np.allclose(whole, win.mean(0), atol=1e-5)
    assert r["label"] == CLASSES[int(whole.argmax())] and r["confidence"] == pytest.approx(whole.max(), abs=1e-6)
    assert all(e["label"] == max(e["probabilities"], key=e["probabilities"].get) for e in r["timeline"])
    assert np.ptp(win, axis=0).max() > 1e-4  # the windows really see different audio
    # the input is named `media` (`video` kept as an alias); no fps for audio
    assert r["media"] == r["video"] == str(wavs / "long.wav")
    assert "fps" not in r and r["duration"] == pytest.approx(20.0, abs=1e-3)


def test_window_probabilities_are_those_of_each_window_alone(cnn_ckpt, wavs):
    """A window's timeline entry is what the model says on that span alone (the batch changes nothing)."""
    pred = Predictor(cnn_ckpt)
    sample = pred.load(wavs / "long.wav")
    assert sample["audio"].shape[0] == sample["windows"] == sample["snippet_times"].shape[0]
    r = pred.run(sample)
    pred.window_batch = 4  # chunked forward passes give the same result
    assert pred.run(sample)["probabilities"] == pytest.approx(r["probabilities"], abs=1e-6)
    j = 3
    with torch.inference_mode():
        logits = pred.model(audio=sample["audio"][j:j + 1]).logits
    alone = torch.softmax(logits.float(), -1)[0].tolist()
    assert [r["timeline"][j]["probabilities"][c] for c in CLASSES] == pytest.approx(alone, abs=1e-5)


def test_custom_hop_and_single_window_mode(cnn_ckpt, wavs):
    pred = Predictor(cnn_ckpt)
    pred.set_audio_hop(3.0)
    r = pred.predict(wavs / "long.wav")
    assert r["windows"] == 1 + math.ceil(16.0 / 3.0) == 7
    spans = _spans(r)
    assert [a for a, _ in spans[:-1]] == pytest.approx([0.0, 3.0, 6.0, 9.0, 12.0, 15.0])
    assert spans[-1] == pytest.approx((16.0, 20.0), abs=1e-3)  # the last window is aligned to the end
    pred.set_audio_hop(enabled=False)  # one centred window, as evaluation on a dataset
    one = pred.predict(wavs / "long.wav")
    assert "windows" not in one and _spans(one) == [pytest.approx((8.0, 12.0), abs=1e-3)]
    with pytest.raises(Exception, match="hop"):
        pred.set_audio_hop(0.0)


def test_short_recording_gives_one_padded_window(cnn_ckpt, wavs):
    pred = Predictor(cnn_ckpt)
    r = pred.predict(wavs / "short.wav")
    assert r["windows"] == 1 and _spans(r) == [pytest.approx((0.0, 2.0), abs=1e-3)]
    sample = pred.load(wavs / "short.wav")
    assert tuple(sample["audio"].shape[:2]) == (1, 251)  # one full window: silence-padded
    only = [r["timeline"][0]["probabilities"][c] for c in CLASSES]
    assert only == pytest.approx([r["probabilities"][c] for c in CLASSES], abs=1e-6)
    # the same features as the single centred window of evaluation
    pred.set_audio_hop(enabled=False)
    assert torch.allclose(pred.load(wavs / "short.wav")["audio"], sample["audio"][0])


def test_datasets_keep_one_window(cnn_ckpt, wavs):
    """Training and evaluation loaders never slide: one (frames, bins) window per sample."""
    from affectkit.data.clips import make_loader

    cfg = load_config("audio/ravdess_cnn_logmel.yaml")
    for train in (True, False):
        s = make_loader(cfg.input, ("audio",), train=train).load(str(wavs / "long.wav"), rng=np.random.default_rng(0))
        assert tuple(s["audio"].shape) == (251, 64) and tuple(s["snippet_times"].shape) == (1, 2) and "windows" not in s


def test_resnet_windows_and_timeline_plot(tmp_path, wavs):
    ckpt = _checkpoint(tmp_path, "audio/ravdess_resnet18_mfcc.yaml", ["model.args.audio_width=8", "model.args.audio_embed=16"])
    pred = Predictor(ckpt)
    r = pred.predict(wavs / "long.wav")
    assert pred.loader.window_seconds == pytest.approx(4.0)
    assert r["windows"] == 9 and _spans(r)[-1][1] == pytest.approx(20.0, abs=1e-3) and "fps" not in r
    assert all("probabilities" in e for e in r["timeline"])
    png = tmp_path / "t.png"
    plot_timeline(r, png)  # per-window probabilities drawn (no attention for audio models)
    assert png.stat().st_size > 1000


def test_onnx_engine_slides_windows_too(cnn_ckpt, wavs, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "audio.onnx"
    assert main(["export", "onnx", str(cnn_ckpt), "-o", str(out)]) == 0
    ref = Predictor(cnn_ckpt).predict(wavs / "long.wav")
    got = Predictor(out, engine="onnx").predict(wavs / "long.wav")
    assert got["engine"] == "onnx" and got["windows"] == ref["windows"] == 9 and _spans(got) == _spans(ref)
    assert [got["probabilities"][c] for c in CLASSES] == pytest.approx([ref["probabilities"][c] for c in CLASSES], abs=1e-4)
    assert "fps" not in got and got["media"] == str(wavs / "long.wav")
