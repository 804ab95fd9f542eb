"""Task mart_pretrain in the shared trainer: phase 1 on the tiny synthetic set with subtitles (MART's losses
logged, the progress reaching the masking), phase 2 fine-tuning from its checkpoint (every weight loaded), and
predict showing per window the emotional words and whether each was verified."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from affectkit import predict, train
from affectkit.data.lexicon import get_lexicon

TINY_MART = [
    "model.args.dim=32", "model.args.depth=2", "model.args.heads=2", "model.args.fusion_layer=1",
    "model.args.num_bottlenecks=2", "model.args.decoder_dim=16", "model.args.decoder_depth=1",
    "model.args.decoder_heads=2", "model.args.tacl_heads=2", "model.args.verify_level=1",
    "input.seq_len=2", "input.snippet_duration=4", "input.sample_size=32",
    "input.audio.n_mels=16", "input.audio.num_frames=64",
    "data.num_workers=0", "train.batch_size=8", "eval.batch_size=16", "output.tensorboard=false",
    "train.epochs=2",
]


def test_pretrain_then_finetune_then_predict(tiny_synth, tmp_path):
    pre = train("mart/mart_synth_pretrain.yaml", [f"data.path={tiny_synth}", f"output.root={tmp_path}",
                                                  "output.run_name=pre", *TINY_MART])
    rows = [json.loads(line) for line in (pre.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for key in ("train_loss_cls", "train_loss_tacl", "train_loss_pix", "train_loss_kl", "train_mask_ratio",
                "train_verified_words", "val_accuracy"):
        assert key in rows[0], key
    # the masked share follows the progress: epoch 1 of 2 -> 30 % of the tokens, epoch 2 -> 50 %
    assert rows[0]["train_mask_ratio"] < rows[1]["train_mask_ratio"]
    assert rows[1]["train_mask_ratio"] == pytest.approx(0.5, abs=0.01)
    assert 0.0 <= rows[0]["train_verified_words"] <= 1.0
    fine = train("mart/mart_synth_finetune.yaml", [f"data.path={tiny_synth}", f"output.root={tmp_path}",
                                                   "output.run_name=fine", f"train.init_from={pre.run_dir}",
                                                   *TINY_MART[:-1], "train.epochs=1"])
    report = json.loads((fine.run_dir / "init_report.json").read_text())
    assert not report["missing"] and not report["unexpected"] and len(report["loaded"]) > 50
    # a video with its subtitles beside it (the sidecar <stem>.srt that predict reads)
    db = json.loads(tiny_synth.read_text())["database"]
    lexicon = get_lexicon("synthetic", ["Anger", "Joy", "Sadness", "Surprise"])
    entry = next(e for e in db.values()
                 if e.get("subtitles") and lexicon.find((tiny_synth.parent / e["subtitles"]).read_text()))
    video = tmp_path / "clip.mp4"
    shutil.copy(tiny_synth.parent / entry["video"], video)
    shutil.copy(tiny_synth.parent / entry["subtitles"], tmp_path / "clip.srt")
    res = predict(str(video), checkpoint=fine.run_dir)
    assert res["verify_level"] == 1 and res["lexicon"] == "synthetic" and res["text_source"] == "subtitles"
    words = [w for entry in res["timeline"] for w in entry.get("emotional_words", [])]
    assert words
    assert all({"E1", "E2", "E3", "verified"} <= set(w) for w in words)
    assert all(w["verified"] == w["E1"] for w in words)  # verify_level 1
    assert all("video_emotion" in entry for entry in res["timeline"])
