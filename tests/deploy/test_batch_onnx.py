"""Batch prediction (resume, globs, broken files) and ONNX export + the ONNX Runtime engine."""
import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch

from affectkit.cli import main
from affectkit.deploy.predictor import Predictor
from affectkit.errors import CheckpointError


def _videos(tiny_synth: Path) -> list[Path]:
    return sorted((tiny_synth.parent / "videos").rglob("*.mp4"))


@pytest.fixture(scope="module")
def onnx_file(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    assert main(["export", "onnx", str(trained.run_dir), "-o", str(out)]) == 0
    return out


@pytest.fixture()
def batch_dir(tiny_synth, tmp_path):
    """Six real videos, a broken one and a text file in nested folders."""
    vids = _videos(tiny_synth)[:6]
    root = tmp_path / "in"
    for i, v in enumerate(vids):
        d = root / ("a" if i % 2 else "b/c")
        d.mkdir(parents=True, exist_ok=True)
        (d / v.name).write_bytes(v.read_bytes())
    (root / "a" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    (root / "a" / "notes.txt").write_text("not a video")
    return root


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_onnx_file_carries_preprocessing_metadata(onnx_file, trained):
    meta = {p.key: p.value for p in onnx.load(str(onnx_file), load_external_data=False).metadata_props}
    config = json.loads(meta["affectkit.config"])
    ckpt_config = json.loads((Path(trained.best_dir) / "config.json").read_text())
    assert config["classes"] == ckpt_config["classes"]
    assert config["config"]["input"] == ckpt_config["config"]["input"]
    assert json.loads(meta["affectkit.inputs"]) == ["video", "audio"]
    assert json.loads(meta["affectkit.outputs"]) == ["logits", "temporal_attention", "snippet_logits"]
    pre = json.loads(meta["affectkit.preprocessing"])
    assert pre["video"]["shape"][1:] == [4, 3, 8, 32, 32]
    assert pre["audio"]["shape"][1:] == [128, 32]
    worst = json.loads(meta["affectkit.verification"])["max_abs_diff"]
    assert worst["logits"] < 1e-4 and worst["probabilities"] < 1e-5


def test_onnx_engine_agrees_with_torch_on_real_videos(onnx_file, trained, tiny_synth):
    torch_pred = Predictor(trained.run_dir)
    onnx_pred = Predictor(onnx_file, engine="onnx")
    assert onnx_pred.classes == torch_pred.classes and onnx_pred.input_keys == torch_pred.input_keys
    worst = 0.0
    for v in _videos(tiny_synth)[:4]:
        sample = torch_pred.load(v)
        a, b = torch_pred.run(sample), onnx_pred.run(sample)
        assert a["label"] == b["label"]
        worst = max(worst, max(abs(a["probabilities"][c] - b["probabilities"][c]) for c in a["probabilities"]))
        for ta, tb in zip(a["timeline"], b["timeline"]):
            assert ta["start"] == tb["start"] and abs(ta["attention"] - tb["attention"]) < 1e-4
            assert ta["label"] == tb["label"]
        assert b["engine"] == "onnx"
    assert worst < 1e-5  # probabilities are rounded to 1e-6 in the result


def test_snippet_probabilities_average_back_to_the_video(trained, tiny_synth):
    pred = Predictor(trained.run_dir)
    sample = pred.load(_videos(tiny_synth)[0])
    batch = {k: v.unsqueeze(0) for k, v in sample.items() if torch.is_tensor(v)}
    out = pred.forward(batch)
    assert torch.allclose(out.extras["snippet_logits"].mean(1), out.logits, atol=1e-5)
    result = pred.run(sample)
    assert len(result["timeline"]) == 4
    assert all(abs(sum(t["probabilities"].values()) - 1) < 1e-4 for t in result["timeline"])


def test_onnx_engine_rejects_bad_files(tmp_path, trained):
    with pytest.raises(CheckpointError, match="not a loadable ONNX model"):
        (tmp_path / "x.onnx").write_bytes(b"garbage")
        Predictor(tmp_path / "x.onnx", engine="onnx")
    with pytest.raises(CheckpointError, match="no such ONNX file"):
        Predictor(tmp_path / "missing.onnx", engine="onnx")
    with pytest.raises(CheckpointError, match="takes a .onnx file"):
        Predictor(trained.run_dir, engine="onnx")
    # an ONNX model that affectkit did not write
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "foreign.onnx"))
    with pytest.raises(CheckpointError, match="without affectkit metadata"):
        Predictor(tmp_path / "foreign.onnx", engine="onnx")


def test_batch_predict_skips_broken_and_resumes(batch_dir, trained, tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    ckpt = str(trained.run_dir)
    assert main(["predict", str(batch_dir), "-c", ckpt, "--out", str(out), "--workers", "1"]) == 0
    rows = _rows(out)
    assert len(rows) == 7  # 6 videos + the broken one; the .txt is not a video extension
    errors = [r for r in rows if "error" in r]
    assert len(errors) == 1 and "broken.mp4" in errors[0]["error"]
    good = [r for r in rows if "error" not in r]
    assert all(r["label"] in r["probabilities"] for r in good)
    assert "6 predicted, 1 skipped" in capsys.readouterr().err

    # an interrupted run: the last two results lost, the one before cut off mid-line
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:4]) + lines[4][:25])
    assert main(["predict", str(batch_dir), "-c", ckpt, "--out", str(out), "--workers", "0"]) == 0
    err = capsys.readouterr().err
    assert "4 of 7 files already done" in err
    again = _rows(out)
    assert len(again) == 7 and sorted(r["video"] for r in again) == sorted(r["video"] for r in rows)

    # nothing left to do; then --retry-errors runs the broken file again (and only it)
    assert main(["predict", str(batch_dir), "-c", ckpt, "--out", str(out)]) == 0
    assert "0 predicted, 0 skipped, 7 already done" in capsys.readouterr().err
    assert main(["predict", str(batch_dir), "-c", ckpt, "--out", str(out), "--retry-errors"]) == 0
    assert "0 predicted, 1 skipped, 6 already done" in capsys.readouterr().err
    assert len(_rows(out)) == 7


def test_batch_predict_glob_and_onnx_engine_match_torch(batch_dir, trained, onnx_file, tmp_path):
    pattern = str(batch_dir / "**" / "*.mp4")
    a, b = tmp_path / "torch.jsonl", tmp_path / "onnx.jsonl"
    assert main(["predict", pattern, "-c", str(trained.run_dir), "--out", str(a)]) == 0
    assert main(["predict", pattern, "-c", str(onnx_file), "--engine", "onnx", "--out", str(b), "--workers", "2"]) == 0
    ra, rb = _rows(a), _rows(b)
    assert [r["video"] for r in ra] == [r["video"] for r in rb] and len(ra) == 7
    for x, y in zip(ra, rb):
        assert ("error" in x) == ("error" in y)
        if "error" not in x:
            assert x["label"] == y["label"]
            assert max(abs(x["probabilities"][c] - y["probabilities"][c]) for c in x["probabilities"]) < 1e-5


def test_batch_predict_errors_are_clear(trained, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "affectkit", "predict", str(tmp_path / "nothing" / "*.mp4"),
                           "-c", str(trained.run_dir), "--out", str(tmp_path / "r.jsonl")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no files match this pattern" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_int8_export_records_its_calibration_and_runs(trained, tiny_synth, tmp_path):
    from affectkit.deploy.onnx_export import export_onnx

    out = tmp_path / "model.int8.onnx"
    report = export_onnx(trained.best_dir, out, int8=True, calibration_samples=4)
    q = report["quantization"]
    assert q["calibration"]["split"] == "val" and q["calibration"]["samples"] == 4
    assert q["calibration"]["source"] == str(tiny_synth)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["affectkit.quantization"])["calibration"]["samples"] == 4
    assert "affectkit.config" in meta and "affectkit.preprocessing" in meta  # the fp32 file's metadata kept
    graph = onnx.load(str(out)).graph
    assert any(n.op_type in ("QuantizeLinear", "QLinearConv") for n in graph.node)  # really quantised
    pred = Predictor(out, engine="onnx")
    res = pred.predict(_videos(tiny_synth)[0])
    assert res["label"] in pred.classes and abs(sum(res["probabilities"].values()) - 1) < 1e-4
