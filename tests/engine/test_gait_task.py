"""The gait task: its samples (augmentation before the derived features), its losses, a CI-sized
learning run of BPM-GCN on synthetic gaits, and prediction on a skeleton .npy file."""
import json

import numpy as np
import pytest
import torch

from affectkit import train
from affectkit.engine.evaluate import evaluate
from affectkit.config import load_config
from affectkit.data.datasets import build_index
from affectkit.data.gait import GAIT_CLASSES, affective_features, movement_features
from affectkit.data.synth_gait import SynthGaitConfig, generate_gait
from affectkit.engine.gait import GaitTask
from affectkit.engine.tasks import TASKS, build_task

TINY = ["model.args.base_width=8", "train.batch_size=16", "eval.batch_size=64", "output.tensorboard=false",
        "data.num_workers=0"]


@pytest.fixture(scope="module")
def gaits(tmp_path_factory):
    return generate_gait(tmp_path_factory.mktemp("gaits"), SynthGaitConfig(per_class=40, seed=2, difficulty="easy"))


def _cfg(name, path, *extra):
    return load_config(name, [f"data.path={path}", *TINY, *extra])


def test_gait_task_is_registered_and_builds_consistent_samples(gaits):
    assert TASKS["gait"] is GaitTask
    cfg = _cfg("gait/bpm_gcn_synth.yaml", gaits, "train.augment.p=1.0")
    index = build_index(cfg.data)
    task = build_task(cfg, index.classes)
    assert index.classes == GAIT_CLASSES
    ds = task.dataset(index, "train", train=True)
    torch.manual_seed(0)
    s = ds[0]
    n = s["skeleton_length"]
    assert s["skeleton"].shape == (3, 48, 16) and s["movement"].shape == (8, 48, 16) and s["affective"].shape == (1488,)
    assert s["skeleton_mask"].sum() == n and not s["skeleton"][:, n:].any()
    # augmentation moved the coordinates, and the derived features follow the moved coordinates
    plain = task.dataset(index, "train", train=False)[0]
    assert not torch.allclose(s["skeleton"][:, :n], plain["skeleton"][:, :n])
    assert torch.allclose(s["movement"], movement_features(s["skeleton"], s["skeleton_mask"]))
    mean, std = task.stats(index)
    aff = (affective_features(s["skeleton"].numpy().transpose(1, 2, 0), n) - mean) / std
    aff[n:] = 0
    assert np.allclose(s["affective"].numpy(), aff.reshape(-1), atol=1e-5)
    assert s["affective_mask"].sum() == 31 * n
    # the targets are standardised with training-split statistics
    tr = torch.stack([task.dataset(index, "train", train=False)[i]["affective"] for i in range(len(ds))]).reshape(len(ds), 48, 31)
    m = torch.stack([task.dataset(index, "train", train=False)[i]["skeleton_mask"] for i in range(len(ds))])
    assert tr[m].mean(0).abs().max() < 1e-3 and (tr[m].std(0) - 1).abs().max() < 1e-2


def test_losses_are_two_cross_entropies_and_the_masked_affective_mse(gaits):
    cfg = _cfg("gait/bpm_gcn_synth.yaml", gaits)
    index = build_index(cfg.data)
    task = build_task(cfg, index.classes)
    ds = task.dataset(index, "train", train=False)
    batch = task.collate()([ds[i] for i in range(4)])
    from affectkit.registry import create_model

    torch.manual_seed(0)
    model = create_model("bpm_gcn", **task.model_args())
    step = task.train_step(model, batch)
    assert set(step.logs) >= {"ce_posture", "ce_movement", "mse_affective", "loss", "accuracy"}
    assert step.logs["loss"] == pytest.approx(step.logs["ce_posture"] + step.logs["ce_movement"] + step.logs["mse_affective"], rel=1e-5)
    out = model(skeleton=batch["skeleton"])
    m = batch["affective_mask"]
    want = ((out.extras["affective"] - batch["affective"])[m] ** 2).mean()
    assert step.logs["mse_affective"] == pytest.approx(float(want.detach()), rel=1e-4)
    # a single-stream model trains with one cross-entropy
    agcn_cfg = _cfg("gait/agcn_synth.yaml", gaits)
    agcn_task = build_task(agcn_cfg, index.classes)
    step = agcn_task.train_step(create_model("agcn", **agcn_task.model_args()), batch)
    assert set(step.logs) == {"ce", "loss", "accuracy"}


def test_the_affective_weight_is_a_model_argument_of_the_config(gaits):
    """``model.args.affective_weight`` (YAML or override; default 1.0, spec D.7) scales the affective MSE
    in the loss, is stored with the model's arguments, and is checked when the model is built."""
    from affectkit.errors import ConfigError
    from affectkit.registry import create_model

    cfg = _cfg("gait/bpm_gcn_synth.yaml", gaits)
    index = build_index(cfg.data)
    task = build_task(cfg, index.classes)
    assert cfg.model.args["affective_weight"] == 1.0 and task.model_args()["affective_weight"] == 1.0
    ds = task.dataset(index, "train", train=False)
    batch = task.collate()([ds[i] for i in range(4)])
    steps = {}
    for w in (1.0, 0.25, 0.0):
        wcfg = _cfg("gait/bpm_gcn_synth.yaml", gaits, f"model.args.affective_weight={w}")
        wtask = build_task(wcfg, index.classes)
        args = wtask.model_args()
        assert args["affective_weight"] == w
        torch.manual_seed(0)
        model = create_model("bpm_gcn", **args)
        assert model.affective_weight == w
        steps[w] = wtask.train_step(model, batch).logs
    base = steps[1.0]
    assert base["mse_affective"] > 0.1
    for w in (0.25, 0.0):  # same model and batch: only the affective term changes, by the weight
        assert steps[w]["mse_affective"] == pytest.approx(w * base["mse_affective"], rel=1e-5, abs=1e-7)
        assert steps[w]["ce_posture"] == pytest.approx(base["ce_posture"], rel=1e-6)
        assert steps[w]["loss"] == pytest.approx(base["ce_posture"] + base["ce_movement"] + w * base["mse_affective"], rel=1e-5)
    # a model without the argument (a checkpoint of before it existed) gets the default
    assert task.affective_weight(torch.nn.Linear(1, 1)) == 1.0
    for bad in (-1, "x", True):
        with pytest.raises(ConfigError, match="affective_weight"):
            create_model("bpm_gcn", **{**task.model_args(), "affective_weight": bad})


def test_bpm_gcn_learns_the_synthetic_gaits(gaits, tmp_path):
    """CI-sized learning run: BPM-GCN* (width 8) on 16-frame gaits (``input.skeleton.max_frames=16``),
    10 epochs of 4 steps of 32 gaits (lr 0.1, /10 after 8), no augmentation; 40 test gaits. Over
    training seeds 0, 1, 2 the test accuracy was 0.75, 0.85, 0.95 with two threads, 0.70, 0.90, 0.725
    with one (chance 0.25; 20 of 40 right by chance has p = 5e-4). Training takes 11-13 s on two cores
    against 26 s for the 48-frame, width-4, 12-epoch run it replaces (measured back to back)."""
    result = train("gait/bpm_gcn_synth.yaml", [f"data.path={gaits}", f"output.root={tmp_path}", *TINY,
                                               "input.skeleton.max_frames=16", "train.batch_size=32", "train.epochs=10",
                                               "train.lr=0.1", "train.step_size=8", "train.augment.p=0.0", "train.seed=0",
                                               "data.test_fraction=0.25", "output.run_name=learn"])
    test = evaluate(result.best_dir, split="test")
    assert test["num_samples"] == 40
    assert test["accuracy"] >= 0.5, test  # chance is 0.25
    assert set(test["per_class_accuracy"]) == set(GAIT_CLASSES)
    assert "accuracy_posture" in test and "accuracy_movement" in test
    assert result.best_epoch is not None


@pytest.fixture(scope="module")
def one_epoch(gaits, tmp_path_factory):
    return train("gait/bpm_gcn_synth.yaml", [f"data.path={gaits}", f"output.root={tmp_path_factory.mktemp('runs')}",
                                             *TINY, "train.epochs=1", "output.run_name=one"])


def test_predict_on_a_skeleton_npy_file(gaits, one_epoch, tmp_path):
    from affectkit.data.gait import read_gait_features
    from affectkit.deploy.predictor import Predictor

    x = next(iter(read_gait_features(gaits).values()))  # (T, 16, 3)
    npy = tmp_path / "walk.npy"
    np.save(npy, x.reshape(len(x), 48))
    p = Predictor(one_epoch.best_dir)
    assert p.input_keys == ("skeleton",)
    out = p.predict(npy)
    assert out["label"] in GAIT_CLASSES and set(out["probabilities"]) == set(GAIT_CLASSES)
    assert sum(out["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert out["label_posture"] in GAIT_CLASSES and out["label_movement"] in GAIT_CLASSES
    assert "windows" not in out and out["skeleton_frames"] == len(x)
    json.dumps(out)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((10, 47)))
    with pytest.raises(Exception, match=r"bad\.npy: skeleton of shape \(10, 47\)"):
        p.predict(bad)


def test_predict_on_a_long_walk_classifies_48_frame_windows(one_epoch, tmp_path):
    """A gait-length file (< 96 frames) is read exactly as in training; a long walk is cut into
    48-frame windows (hop 24, the last one aligned to the end) whose probabilities are averaged."""
    from affectkit.data.gait import preprocess_gait
    from affectkit.data.synth_gait import _subject, animate
    from affectkit.deploy.predictor import Predictor
    from affectkit.registry import create_model  # noqa: F401  (the model registry)

    rng = np.random.default_rng(0)
    walk = animate("Sad", _subject(rng), rng, 200, 30.0, 1.0, 0.004)  # 200 frames: 6.7 s at 30 fps
    walk = walk + np.array([0.0, 0.0, -0.5]) * np.arange(200)[:, None, None] / 30  # walking forward: not root-centred
    np.save(tmp_path / "long.npy", walk)
    p = Predictor(one_epoch.best_dir)
    out = p.predict(tmp_path / "long.npy")
    starts = [0, 24, 48, 72, 96, 120, 144, 152]
    assert out["windows"] == 8 and [e["start_frame"] for e in out["timeline"]] == starts
    assert [e["end_frame"] for e in out["timeline"]] == [a + 48 for a in starts]
    assert out["timeline"][1]["start"] == pytest.approx(24 / 30, abs=1e-3) and out["duration"] == pytest.approx(200 / 30, abs=1e-3)
    centred = walk - walk[:, :1]
    model = p.model
    with torch.no_grad():
        wins = torch.from_numpy(np.stack([centred[a:a + 48] for a in starts]).transpose(0, 3, 1, 2).copy())
        probs = torch.softmax(model(skeleton=wins).logits, -1)
    assert [out["timeline"][k]["probabilities"][c] for k in range(8) for c in GAIT_CLASSES] == pytest.approx(
        probs.reshape(-1).tolist(), abs=1e-5)
    assert [out["probabilities"][c] for c in GAIT_CLASSES] == pytest.approx(probs.mean(0).tolist(), abs=1e-5)
    # the training preprocessing instead (one gait, every 200 // 48 = 4th frame), on request
    p.set_audio_hop(enabled=False)
    one = p.predict(tmp_path / "long.npy")
    coords, _ = preprocess_gait(centred)
    with torch.no_grad():
        want = torch.softmax(model(skeleton=torch.from_numpy(coords.transpose(2, 0, 1).copy())[None]).logits, -1)[0]
    assert "windows" not in one and [one["probabilities"][c] for c in GAIT_CLASSES] == pytest.approx(want.tolist(), abs=1e-5)
    # a file of a gait's length (< 96 frames) is one gait, as in training: its first 48 frames
    np.save(tmp_path / "short.npy", walk[:80])
    short = Predictor(one_epoch.best_dir).predict(tmp_path / "short.npy")
    with torch.no_grad():
        want = torch.softmax(model(skeleton=torch.from_numpy(centred[:48].transpose(2, 0, 1).copy())[None]).logits, -1)[0]
    assert "windows" not in short and [short["probabilities"][c] for c in GAIT_CLASSES] == pytest.approx(want.tolist(), abs=1e-5)


def test_gait_cv_command_runs_the_k_fold_protocol(gaits, tmp_path, capsys):
    from affectkit.cli import main

    out = tmp_path / "cv.json"
    rc = main(["gait-cv", "gait/agcn_synth.yaml", "-o", f"data.path={gaits}", "-o", f"output.root={tmp_path}",
               *[a for o in TINY for a in ("-o", o)], "-o", "model.args.base_width=4", "-o", "train.epochs=1",
               "-o", "output.run_name=cv", "--folds", "2", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    cv = json.loads(out.read_text())
    assert [f["fold"] for f in cv["folds"]] == [0, 1]
    assert [f["test"]["num_samples"] for f in cv["folds"]] == [80, 80]  # each fold tests on half of the 160
    accs = [f["test"]["accuracy"] for f in cv["folds"]]
    assert cv["accuracy_mean"] == pytest.approx(np.mean(accs)) and cv["accuracy_std"] == pytest.approx(np.std(accs))
    assert all(f["run_dir"].endswith(f"cv-fold{f['fold']}") for f in cv["folds"])
    assert f"2-fold test accuracy: {cv['accuracy_mean']:.4f} +- {cv['accuracy_std']:.4f}" in text
    assert main(["gait-cv", "gait/agcn_synth.yaml", "-o", f"data.path={gaits}", "--folds", "1"]) == 2
    assert "folds 1: expected an integer >= 2" in capsys.readouterr().err


def test_a_fresh_process_finds_the_gait_task_from_the_data_format(gaits):
    """``affectkit train`` builds the task before any model: the gait format registers it."""
    import subprocess
    import sys

    code = ("from affectkit.config import load_config; from affectkit.data.datasets import build_index; "
            "from affectkit.engine.tasks import build_task; "
            f"cfg = load_config('gait/bpm_gcn_synth.yaml', ['data.path={gaits}']); "
            "print(build_task(cfg, build_index(cfg.data).classes).name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "gait"


def test_the_gait_configs_break_accuracy_ties_on_validation_nll(one_epoch):
    """``gait/*_synth.yaml`` set ``train.select_tie_break: nll``: the checkpoint says so, the validation NLL is
    logged, and the trainer state keeps the best epoch's NLL for a resumed run."""
    meta = json.loads((one_epoch.run_dir / "last" / "meta.json").read_text())
    assert meta["select_tie_break"] == "nll"
    nll = meta["metrics"]["val_nll"]
    assert isinstance(nll, float) and nll > 0
    state = torch.load(one_epoch.run_dir / "last" / "trainer_state.pt", weights_only=True)
    assert state["best_tie"] == pytest.approx(nll)
