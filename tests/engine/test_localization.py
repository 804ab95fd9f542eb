"""The localize task (affectkit.engine.localization): post-processing, the dataset's point targets, and a
train step / evaluation round on a tiny hand-made untrimmed set."""
import json

import numpy as np
import pytest
import torch

from affectkit.config import config_from_dict
from affectkit.data.clips import collate_samples
from affectkit.data.datasets import load_annotation_index
from affectkit.engine.localization import nms_1d, segments_from_scores, upsample_linear
from affectkit.engine.tasks import build_task
from affectkit.models.tsl_net import DEFAULT_CONFIG, OPTION_KEYS
from affectkit.registry import create_model, get_model_entry

OPTS = {k: DEFAULT_CONFIG[k] for k in OPTION_KEYS}


def test_upsample_linear_extrapolates_the_last_interval():
    up = upsample_linear(np.array([0.0, 1.0, 3.0]), 2)
    assert up.tolist() == pytest.approx([0.0, 0.5, 1.0, 2.0, 3.0, 4.0])
    assert upsample_linear(np.ones((1, 2)), 3).shape == (3, 2)


def test_nms_keeps_the_best_of_overlapping_segments():
    segs = [{"start": 0, "end": 10, "score": 0.9}, {"start": 1, "end": 10, "score": 0.8},
            {"start": 20, "end": 30, "score": 0.7}]
    assert [s["score"] for s in nms_1d(segs, 0.5)] == [0.9, 0.7]
    assert len(nms_1d(segs, 0.95)) == 3


def test_segments_from_a_clear_cas_block():
    t = 40
    cas = np.zeros((t, 2))
    cas[10:20, 1] = 0.9  # class p active on steps 10..19
    act = cas.max(1)
    segs = segments_from_scores(cas, act, np.array([0.1, 0.9]), ["n", "p"], seconds_per_step=0.5, options=OPTS)
    assert segs and all(s["label"] == "p" for s in segs)  # only the class over the video threshold
    best = segs[0]
    # up-sampled by 24, linear between steps 9 -> 10 and 19 -> 20: the strict run is [10, 19] steps = [5 s, 10 s]
    assert best["start"] == pytest.approx(5.0, abs=0.5) and best["end"] == pytest.approx(10.0, abs=0.5)
    assert best["score"] == pytest.approx(0.9 + 0.3 * 0.9, abs=0.1)
    assert all(b["score"] <= a["score"] for a, b in zip(segs, segs[1:]))


@pytest.fixture()
def tiny_set(tmp_path):
    rng = np.random.default_rng(0)
    db, points = {}, ["video_id,class,point_frame"]
    fps = {}
    for i in range(4):
        vid = f"v{i}"
        subset = "train" if i < 3 else "test"
        steps = 20 + 4 * i
        (tmp_path / "feat" / "rgb").mkdir(parents=True, exist_ok=True)
        (tmp_path / "feat" / "logmfcc").mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / "feat" / "rgb" / f"{vid}.npy", rng.normal(size=(steps, 16)).astype(np.float32))
        np.save(tmp_path / "feat" / "logmfcc" / f"{vid}.npy", rng.normal(-40, 10, size=(steps * 32 + 7, 60)).astype(np.float32))
        fps[vid] = 32.0  # 16 frames per step -> 0.5 s per step
        db[vid] = {"subset": subset, "annotations": [{"segment": ["2.0", "4.0"], "label": "p"},
                                                     {"segment": ["6.0", "7.5"], "label": "n"}]}
        points += [f"{vid},p,{int(3.0 * 32)}", f"{vid},n,{int(6.5 * 32)}"]
    (tmp_path / "gt.json").write_text(json.dumps({"database": db}))
    (tmp_path / "fps_dict.json").write_text(json.dumps(fps))
    (tmp_path / "points.csv").write_text("\n".join(points) + "\n")
    return tmp_path


def _cfg(root, **extra):
    tiny = {k: v for k, v in get_model_entry("tsl_net").tiny_args.items() if k != "visual_dim"}
    return config_from_dict({"task": "localize", "model": {"name": "tsl_net", "args": tiny},
                             "input": {"features": {"root": str(root / "feat"), "dim": 16}},
                             "data": {"path": str(root / "gt.json"), "points": str(root / "points.csv"),
                                      "subsets": {"train": "train", "test": "test"}, **extra}})


def test_dataset_point_targets_and_a_train_eval_round(tiny_set):
    cfg = _cfg(tiny_set)
    index = load_annotation_index(tiny_set / "gt.json", subsets={"train": "train", "test": "test"},
                                  points=tiny_set / "points.csv")
    task = build_task(cfg, index.classes, index.polarity)
    ds = task.dataset(index, "train", train=True)
    assert len(ds) == 3 and ds.problems == []
    s = ds[0]
    assert s["features"].shape == (20, 16) and s["logmel"].shape == (20, 32, 60)  # T = min(20, (640 + 7) // 32)
    k_p, k_n = index.classes.index("p"), index.classes.index("n")
    y = s["point_labels"]
    assert y[6, k_p] == pytest.approx(0.9) and y[6, k_n] == pytest.approx(0.1)  # frame 96 // 16 = step 6
    assert y[13, k_n] == pytest.approx(0.9)  # frame 208 // 16 = 13
    assert float(y.sum()) == pytest.approx(2.0)
    assert s["video_distribution"].tolist() == pytest.approx([0.5, 0.5])
    assert s["seconds_per_step"] == pytest.approx(0.5)

    torch.manual_seed(0)
    model = create_model("tsl_net", **task.model_args()).train()
    batch = collate_samples([ds[0], ds[2]])  # 20 and 28 steps: padded with a mask
    assert batch["features_mask"].shape == (2, 28) and not batch["features_mask"][0, 20:].any()
    step = task.train_step(model, batch)
    assert torch.isfinite(step.loss) and step.batch_size == 2
    step.loss.backward()

    model.eval()
    test = task.dataset(index, "test", train=False)
    rows = task.eval_batch(model, collate_samples([test[0]]))
    assert rows[0]["video_id"] == "v3" and rows[0]["segments"]
    assert all(set(seg) == {"start", "end", "label", "score"} for seg in rows[0]["segments"])
    m = task.compute_metrics(rows)
    assert 0.0 <= m["average_mAP"] <= 1.0 and set(m["mAP"]) == {"0.1", "0.15", "0.2", "0.25", "0.3"}
    assert task.select_metric == "average_mAP" and task.select_mode == "max"

    with torch.no_grad():
        out = model(**{k: batch[k][:1, :20] for k in ("features", "logmel")})
    res = task.format_prediction({"seconds_per_step": 0.5}, out)
    assert res["segments"] and len(res["timeline"]) == 20 and res["label"] in index.classes
    assert not (tiny_set / "point_labels.csv").exists()  # nothing written into the data folder


def test_missing_logmel_is_reported_with_its_path(tiny_set):
    (tiny_set / "feat" / "logmfcc" / "v1.npy").unlink()
    cfg = _cfg(tiny_set)
    index = load_annotation_index(tiny_set / "gt.json", subsets={"train": "train", "test": "test"},
                                  points=tiny_set / "points.csv")
    ds = build_task(cfg, index.classes).dataset(index, "train", train=True)
    assert len(ds) == 2 and "logmfcc/v1.npy" in ds.problems[0][0] and "log-mel file not found" in ds.problems[0][1]


def test_training_run_with_bf16_autocast_and_fused_adam(tiny_set):
    """``train.bf16: true`` (the fast training setting on CPUs with native bf16) through the trainer: the run
    finishes with finite losses, the optimiser is the fused one, and the checkpoint evaluates."""
    from affectkit.engine.trainer import build_optimizer, train

    cfg = _cfg(tiny_set, num_workers=0)
    cfg.train.epochs, cfg.train.batch_size, cfg.train.bf16 = 1, 2, True
    cfg.output.root, cfg.output.tensorboard = str(tiny_set / "runs"), False
    res = train(cfg)
    losses = [e["train_loss"] for e in res.history]
    assert losses and all(np.isfinite(losses))
    model = create_model("tsl_net", **build_task(cfg, ["n", "p"]).model_args())
    assert build_optimizer(cfg, model).defaults.get("fused") is True
    cfg.train.fused_optimizer = False
    assert not build_optimizer(cfg, model).defaults.get("fused")


def test_nll_tie_break_is_refused_when_the_task_is_built():
    """Localisation reports no NLL: ``train.select_tie_break=nll`` fails before any training, not after an epoch."""
    from affectkit.config import load_config
    from affectkit.engine.tasks import build_task
    from affectkit.errors import ConfigError

    cfg = load_config("tsl/tsl_synth.yaml", ["train.select_tie_break=nll"])
    with pytest.raises(ConfigError, match="select_tie_break nll: task 'localize' reports no nll"):
        build_task(cfg, ["a", "b"])
