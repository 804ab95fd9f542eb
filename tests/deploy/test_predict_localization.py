"""``affectkit predict`` with a localisation (TSL-Net) checkpoint on an untrimmed video: features computed on
the fly by the extractor the training features came from; positive / negative segments with start, end, score."""
import json

import numpy as np
import pytest

from affectkit.cli import main as cli_main
from affectkit.config import config_from_dict
from affectkit.data.media_writer import write_video
from affectkit.data.tsl_features import (ExtractorSpec, cache_features, dataset_videos, file_sha256,
                                         write_random_i3d)
from affectkit.deploy.predictor import Predictor
from affectkit.engine.trainer import train
from affectkit.errors import ConfigError
from affectkit.registry import get_model_entry

FPS = 16.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("tsl_predict")
    rng = np.random.default_rng(0)
    (root / "videos").mkdir()
    db, points = {}, ["video_id,class,point_frame"]
    for i in range(4):
        vid, frames = f"u{i}", 64 + 16 * i  # 4 to 7 steps of 16 frames
        pix = rng.integers(0, 256, size=(frames, 32, 32, 3), dtype=np.uint8)
        sr = 16000
        wave = (0.2 * rng.standard_normal(int(frames / FPS * sr))).astype(np.float32)
        write_video(root / "videos" / f"{vid}.mp4", pix, FPS, wave, sr)
        db[vid] = {"subset": "test" if i == 3 else "train", "fps": FPS, "video": f"videos/{vid}.mp4",
                   "annotations": [{"segment": [0.5, 1.5], "label": "p"}, {"segment": [2.5, 3.5], "label": "n"}]}
        points += [f"{vid},p,16", f"{vid},n,48"]
    (root / "gt.json").write_text(json.dumps({"database": db}))
    (root / "points.csv").write_text("\n".join(points) + "\n")
    w = write_random_i3d(root / "i3d.pt", width=1 / 16, seed=0)
    spec = ExtractorSpec(i3d_weights=str(w), i3d_sha256=file_sha256(w), i3d_width=1 / 16, random_init=True,
                         feature_dim=64, size=32)
    videos, problems = dataset_videos(root / "gt.json")
    assert problems == [] and len(videos) == 4
    assert cache_features(videos, root / "feat", spec)["done"] == 4
    tiny = {k: v for k, v in get_model_entry("tsl_net").tiny_args.items() if k != "visual_dim"}
    cfg = config_from_dict({
        "task": "localize", "model": {"name": "tsl_net", "args": tiny},
        "input": {"features": {"root": str(root / "feat")}},  # dim and extractor: from feat/extractor.json
        "data": {"path": str(root / "gt.json"), "points": str(root / "points.csv"),
                 "subsets": {"train": "train", "test": "test"}, "num_workers": 0},
        "train": {"epochs": 1, "batch_size": 2}, "output": {"root": str(root / "runs"), "tensorboard": False}})
    res = train(cfg)
    return root, res.best_dir


def test_predict_untrimmed_video_gives_sentiment_segments(trained, tmp_path):
    root, best = trained
    pred = Predictor(best)
    assert pred.config["config"]["input"]["features"]["extractor"]["random_init"] is True  # recorded in the checkpoint
    video = root / "videos" / "u3.mp4"  # 112 frames: 7 steps of 16 frames = 1 s each
    res = pred.predict(video)
    assert res["model"] == "tsl_net" and res["fps"] == pytest.approx(FPS) and res["seconds_per_step"] == pytest.approx(1.0)
    assert len(res["timeline"]) == 7 and res["segments"]
    for seg in res["segments"]:
        assert set(seg) == {"start", "end", "label", "score", "sentiment"}
        assert seg["sentiment"] == {"p": "positive", "n": "negative"}[seg["label"]]
        assert 0.0 <= seg["start"] < seg["end"] <= 7.0 + 1e-6 and np.isfinite(seg["score"])
    assert [s["score"] for s in res["segments"]] == sorted((s["score"] for s in res["segments"]), reverse=True)
    # the features computed on the fly equal the cached ones the model was trained on
    sample = pred.load(video)
    assert np.allclose(sample["features"].numpy(), np.load(root / "feat" / "rgb" / "u3.npy")[:7], atol=1e-5)

    out = tmp_path / "p.json"
    assert cli_main(["predict", str(video), "-c", str(best), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["segments"]


def test_checkpoint_without_extractor_record_is_a_clear_error(trained, tmp_path):
    root, best = trained
    from affectkit.engine.tasks import build_task

    cfg = config_from_dict(json.loads((best / "config.json").read_text())["config"])
    cfg.input.features.extractor = None
    cfg.input.features.root = str(tmp_path)  # no extractor.json there
    task = build_task(cfg, ["n", "p"])
    with pytest.raises(ConfigError, match="does not record how its features were made"):
        task.sample_loader(cfg.input)


def test_fast_path_onnx_engine_and_service_give_the_same_segments(trained, tmp_path):
    """The localisation checkpoint through the three other ways in: ``--fast``, the ONNX engine and the service."""
    from affectkit.deploy.onnx_export import export_onnx

    from .serve_helpers import ServerProcess, post_file

    root, best = trained
    video = root / "videos" / "u3.mp4"
    ref = Predictor(best).predict(video)

    fast = Predictor(best, fast="inductor").predict(video)  # compiled fp32: the same segments
    assert fast["fast_path"]["backend"] == "inductor" and "runtime_fallback" not in fast["fast_path"]
    assert [s["label"] for s in fast["segments"]] == [s["label"] for s in ref["segments"]]
    assert fast["label"] == ref["label"]
    assert fast["confidence"] == pytest.approx(ref["confidence"], abs=1e-4)

    out = tmp_path / "tsl.onnx"
    report = export_onnx(best, out)
    assert max(report["verification"]["max_abs_diff"].values()) < 1e-3
    onnx = Predictor(out, engine="onnx").predict(video)
    assert onnx["label"] == ref["label"] and len(onnx["timeline"]) == len(ref["timeline"])
    assert onnx["confidence"] == pytest.approx(ref["confidence"], abs=1e-4)
    assert [s["label"] for s in onnx["segments"]] == [s["label"] for s in ref["segments"]]
    for a, b in zip(onnx["segments"], ref["segments"]):
        assert a["start"] == pytest.approx(b["start"], abs=1e-6) and a["score"] == pytest.approx(b["score"], abs=1e-3)

    with ServerProcess(best, tmp_path / "srv_tmp", tmp_path / "server.log") as srv:
        r = post_file(srv.url, "u3.mp4", video.read_bytes(), timeout=120)
        assert r.status == 200, r.body
        res = r.json
        assert res["label"] == ref["label"] and res["segments"] == ref["segments"]
