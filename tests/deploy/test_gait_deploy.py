"""Gait checkpoints in the deployment paths: batch predict over folders of skeleton files (a broken one
among them), ONNX export and the ONNX engine, the HTTP service and ``predict --fast``; and the
affective-loss weight stored with the checkpoint. A tiny BPM-GCN* (width 4, PM fusion: it has a
per-frame attention) trained one epoch on a small synthetic gait set (``affectkit data synth --kind gait``)."""
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from affectkit import train
from affectkit.cli import main
from affectkit.data.gait import GAIT_CLASSES, preprocess_gait, read_gait_features
from affectkit.deploy.predictor import Predictor

from .serve_helpers import ServerProcess, get_json, post_file


@pytest.fixture(scope="module")
def gait_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("gait_data") / "gaits"
    assert main(["data", "synth", "--kind", "gait", "--per-class", "8", "--seed", "3", "--out", str(out)]) == 0
    return out / "features.h5"


@pytest.fixture(scope="module")
def gait_ckpt(gait_data, tmp_path_factory):
    result = train("gait/bpm_gcn_synth.yaml", [
        f"data.path={gait_data}", f"output.root={tmp_path_factory.mktemp('gait_runs')}", "output.run_name=deploy",
        "model.args.base_width=4", "model.args.affective_weight=0.5", "train.epochs=1", "train.batch_size=8",
        "eval.batch_size=32", "output.tensorboard=false", "data.num_workers=0"])
    return Path(result.best_dir)


@pytest.fixture(scope="module")
def gaits(gait_data):
    """Three synthetic gaits ``(T, 16, 3)``."""
    return list(read_gait_features(gait_data).values())[:3]


@pytest.fixture(scope="module")
def skeleton_dir(gaits, tmp_path_factory):
    """Skeleton files in three formats (one in a sub-folder), a broken .npy, a text file and a wav."""
    root = tmp_path_factory.mktemp("skeletons") / "walks"
    (root / "sub").mkdir(parents=True)
    np.save(root / "a.npy", gaits[0])
    np.savetxt(root / "b.csv", gaits[1].reshape(len(gaits[1]), 48), delimiter=",")
    with h5py.File(root / "sub" / "c.h5", "w") as f:
        f["gait"] = gaits[2].reshape(len(gaits[2]), 48)
    (root / "broken.npy").write_bytes(b"\x93NUMPY\x01\x00garbage, not an array")
    (root / "notes.txt").write_text("not a skeleton")
    (root / "voice.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    return root


def _rows(path: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {Path(r["video"]).name: r for r in rows}


def _probs(result) -> list[float]:
    return [result["probabilities"][c] for c in GAIT_CLASSES]


def _attention(result) -> list[float]:
    return [f["attention"] for f in result["frame_attention"]]


def _model_inputs(gaits) -> torch.Tensor:
    return torch.stack([torch.from_numpy(preprocess_gait(g - g[:, :1])[0].transpose(2, 0, 1).copy()) for g in gaits])


def test_the_affective_weight_is_stored_with_the_checkpoint(gait_ckpt):
    config = json.loads((gait_ckpt / "config.json").read_text())
    assert config["model"]["args"]["affective_weight"] == 0.5
    assert Predictor(gait_ckpt).model.affective_weight == 0.5


def test_predict_on_a_skeleton_file_gives_the_per_frame_attention(gait_ckpt, skeleton_dir, gaits):
    p = Predictor(gait_ckpt)
    out = p.predict(skeleton_dir / "a.npy")
    assert out["label"] in GAIT_CLASSES and sum(_probs(out)) == pytest.approx(1.0, abs=1e-4)
    n = min(len(gaits[0]), 48)
    assert [f["frame"] for f in out["frame_attention"]] == list(range(n))
    assert out["frame_attention"][1]["time"] == pytest.approx(1 / 30, abs=1e-4)
    with torch.no_grad():
        want = p.model(skeleton=_model_inputs(gaits[:1]))
    assert _attention(out) == pytest.approx(want.temporal_attention[0, :n].tolist(), abs=1e-5)
    assert all(0.0 <= a <= 1.0 for a in _attention(out))
    assert _probs(out) == pytest.approx(torch.softmax(want.logits[0], -1).tolist(), abs=1e-5)


def test_batch_predict_over_a_folder_of_skeleton_files(gait_ckpt, skeleton_dir, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    assert main(["predict", str(skeleton_dir), "--checkpoint", str(gait_ckpt), "--out", str(out), "--workers", "1"]) == 0
    rows = _rows(out)
    assert set(rows) == {"a.npy", "b.csv", "c.h5", "broken.npy"}
    assert "label" not in rows["broken.npy"] and rows["broken.npy"]["error"].startswith(str(skeleton_dir / "broken.npy"))
    single = Predictor(gait_ckpt)
    for name, path in (("a.npy", "a.npy"), ("b.csv", "b.csv"), ("c.h5", "sub/c.h5")):
        r = rows[name]
        assert r["label"] in GAIT_CLASSES and r["label_posture"] in GAIT_CLASSES and r["frame_attention"], r
        assert _probs(r) == pytest.approx(_probs(single.predict(skeleton_dir / path)), abs=1e-5)
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert summary == "3 predicted, 1 skipped; skipped 2 files in folders: 1 audio file for a skeleton/video model, 1 not media (.txt)"
    # a folder named on the command line with nothing the model reads gets its error line
    empty = tmp_path / "nothing"
    empty.mkdir()
    (empty / "readme.md").write_text("no skeletons here")
    out2 = tmp_path / "r2.jsonl"
    assert main(["predict", str(empty), str(skeleton_dir / "a.npy"), "--checkpoint", str(gait_ckpt), "--out", str(out2),
                 "--workers", "0"]) == 0
    rows = _rows(out2)
    assert rows["nothing"]["error"] == f"{empty}: is a folder with no skeleton or video files for this model (1 not media (.md)); name the files to run them anyway"
    assert rows["a.npy"]["label"] in GAIT_CLASSES


@pytest.fixture(scope="module")
def gait_onnx(gait_ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("gait_onnx") / "gait.onnx"
    assert main(["export", "onnx", str(gait_ckpt), "-o", str(out)]) == 0
    return out


def test_onnx_export_of_a_gait_model_agrees_with_pytorch(gait_onnx, gait_ckpt, skeleton_dir, gaits):
    from affectkit.deploy.onnx_runtime import OnnxModel
    from affectkit.engine.checkpoint import load_model

    onnx_model = OnnxModel(gait_onnx)
    assert onnx_model.input_keys == ("skeleton",)
    assert json.loads(onnx_model.metadata["affectkit.outputs"]) == ["logits", "temporal_attention", "logits_posture", "logits_movement"]
    pre = json.loads(onnx_model.metadata["affectkit.preprocessing"])
    assert pre["skeleton"]["shape"] == ["batch", 3, 48, 16]
    worst = json.loads(onnx_model.metadata["affectkit.verification"])["max_abs_diff"]
    assert max(worst.values()) < 1e-4, worst
    # the same real gaits through both engines
    model = load_model(gait_ckpt)
    x = _model_inputs(gaits)
    got = onnx_model(skeleton=x)
    with torch.no_grad():
        ref = model(skeleton=x)
    assert torch.allclose(got.logits, ref.logits, atol=1e-4, rtol=1e-4)
    assert torch.allclose(got.temporal_attention, ref.temporal_attention, atol=1e-5)
    for key in ("logits_posture", "logits_movement"):
        assert torch.allclose(got.extras[key], ref.extras[key], atol=1e-4, rtol=1e-4)
    # and the predictor's results on a skeleton file
    a = Predictor(gait_onnx, engine="onnx").predict(skeleton_dir / "b.csv")
    b = Predictor(gait_ckpt).predict(skeleton_dir / "b.csv")
    assert a["engine"] == "onnx" and a["label"] == b["label"]
    assert _probs(a) == pytest.approx(_probs(b), abs=1e-4)
    assert _attention(a) == pytest.approx(_attention(b), abs=1e-5)
    assert (a["label_posture"], a["label_movement"]) == (b["label_posture"], b["label_movement"])


def test_predict_fast_on_a_gait_checkpoint(gait_ckpt, skeleton_dir, tmp_path, capsys):
    """``predict --fast`` (the BN-folded eager backend: the compiled ones take minutes to compile here)."""
    out = tmp_path / "fast.json"
    assert main(["predict", str(skeleton_dir / "a.npy"), "--checkpoint", str(gait_ckpt), "--fast",
                 "--fast-backend", "eager-folded", "--out", str(out)]) == 0
    fast = json.loads(out.read_text())
    plain = Predictor(gait_ckpt).predict(skeleton_dir / "a.npy")
    assert fast["engine"] == "torch-fast" and fast["fast_path"]["backend"] == "eager-folded"
    assert fast["fast_path"]["agreement"]["top1_equal"]
    assert fast["label"] == plain["label"] and _probs(fast) == pytest.approx(_probs(plain), abs=1e-4)
    assert _attention(fast) == pytest.approx(_attention(plain), abs=1e-4)


def test_the_service_takes_skeleton_files(gait_ckpt, skeleton_dir, tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    plain = Predictor(gait_ckpt)
    with ServerProcess(gait_ckpt, tmp_path / "tmp", tmp_path / "server.log") as srv:
        info = get_json(srv.url, "/models")["loaded"]
        assert info["name"] == "bpm_gcn" and info["accepts"] == "skeleton or video"
        for name, path in (("walk one.npy", "a.npy"), ("b.csv", "b.csv"), ("c.h5", "sub/c.h5")):
            r = post_file(srv.url, name, (skeleton_dir / path).read_bytes())
            assert r.status == 200, (name, r.body)
            res = r.json
            assert res["video"] == name and res["label"] in GAIT_CLASSES and res["frame_attention"]
            assert _probs(res) == pytest.approx(_probs(plain.predict(skeleton_dir / path)), abs=1e-5)
        r = post_file(srv.url, "broken.npy", (skeleton_dir / "broken.npy").read_bytes())
        assert r.status == 422 and "broken.npy" in r.json["error"]["message"], r.body
        assert "upload-" not in r.json["error"]["message"]  # never the server's temporary path
        r = post_file(srv.url, "notes.txt", b"this is not a skeleton\n" * 20)
        assert r.status == 415 and "is not a skeleton or video file" in r.json["error"]["message"], r.body
        r = post_file(srv.url, "voice.wav", (skeleton_dir / "voice.wav").read_bytes() + bytes(64))
        assert r.status == 415, r.body
        assert not srv.files_left()


def test_sniff_array_recognises_skeleton_files(gaits, skeleton_dir, tmp_path):
    import io

    from affectkit.deploy.server import sniff_array, sniff_media

    buf = io.BytesIO()
    np.savez(buf, skeleton=gaits[0])
    for data, fmt in (((skeleton_dir / "a.npy").read_bytes(), "npy"), (buf.getvalue(), "npz"),
                      ((skeleton_dir / "b.csv").read_bytes(), "csv"), ((skeleton_dir / "sub" / "c.h5").read_bytes(), "hdf5"),
                      (b"x,y,z\n1.5,-2e-3,3\n4,5,6\n", "csv")):
        assert sniff_array(data) == (fmt, "skeleton")
        assert sniff_media(data) is None  # not media: a video model still refuses them
    for junk in (b"", b"hello world", b"PK\x03\x04" + bytes(40), b"hello, this is not a skeleton\n" * 20, b"1 2 3\n4 5 6\n"):
        assert sniff_array(junk) is None, junk
