"""The command line: each subcommand on real inputs, and clean errors (no tracebacks) on bad ones."""
import json
import subprocess
import sys
from pathlib import Path


from affectkit.cli import main
from affectkit.data.media_writer import write_video


def test_models_lists_vaanet_and_its_configs(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "vaanet" in out and "vaanet/vaanet_synth.yaml" in out and "vaanet/vaanet_ve8.yaml" in out


def test_data_info_prints_counts_per_split_and_class(shared_data, capsys):
    assert main(["data", "info", str(shared_data / "ve8_ek6" / "ve8" / "ve8_01.json")]) == 0
    out = capsys.readouterr().out
    assert "1098 videos, 8 classes" in out
    total = [l for l in out.splitlines() if l.startswith("total")][0].split()
    assert total[1:] == ["731", "367", "1098"]
    assert main(["data", "info", "--json", str(shared_data / "ve8_ek6" / "ek6" / "ek6_01.json")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["per_split"] == {"training": 819, "validation": 818}


def test_doctor(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "av" in out and "vaanet" in out
    assert "extra asr" in out and "extra lexicon" in out and "speech_head" in out


def test_errors_are_one_line_and_name_the_file(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope.json" in err and "Traceback" not in err
    assert main(["train", "vaanet/vaanet_synth.yaml", "-o", f"data.path={tmp_path / 'missing.json'}"]) == 2
    assert "missing.json" in capsys.readouterr().err
    assert main(["train", "vaanet/vaanet_synth.yaml", "-o", "train.epochz=1"]) == 2
    assert "epochz" in capsys.readouterr().err
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a checkpoint" in capsys.readouterr().err


def test_predict_single_video_writes_json_and_plot(trained, tiny_synth, tmp_path, capsys):
    db = json.loads(Path(tiny_synth).read_text())["database"]
    vid = Path(tiny_synth).parent / next(v["video"] for v in db.values() if v["subset"] == "testing")
    out, plot = tmp_path / "r.json", tmp_path / "c.png"
    assert main(["predict", str(vid), "--checkpoint", str(trained.best_dir), "--out", str(out), "--plot", str(plot)]) == 0
    res = json.loads(out.read_text())
    assert res["label"] in res["probabilities"] and len(res["timeline"]) == 4
    assert plot.read_bytes()[:4] == b"\x89PNG"
    said = capsys.readouterr().out
    assert f"wrote {out} and {plot}" in said and "timeline" not in said  # says what it wrote, not the whole JSON
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"")
    assert main(["predict", str(bad), "--checkpoint", str(trained.best_dir)]) == 2
    err = capsys.readouterr().err
    assert "bad.mp4" in err and "empty" in err


def test_predict_folder_reports_and_skips_broken_files(trained, tiny_synth, tmp_path, capsys):
    import numpy as np

    folder = tmp_path / "in"
    folder.mkdir()
    db = json.loads(Path(tiny_synth).read_text())["database"]
    good = [Path(tiny_synth).parent / v["video"] for v in db.values() if v["subset"] == "testing"][:2]
    for g in good:
        (folder / g.name).write_bytes(g.read_bytes())
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "notvideo.mp4").write_text("hello")
    write_video(folder / "noaudio.mp4", np.zeros((40, 32, 32, 3), np.uint8), 12)
    write_video(folder / "short.mp4", np.zeros((2, 32, 32, 3), np.uint8), 12, np.zeros(2000, np.float32), 16000)
    out = tmp_path / "res.jsonl"
    assert main(["predict", str(folder), "--checkpoint", str(trained.best_dir), "--out", str(out)]) == 0
    rows = {Path(r["video"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    assert len(rows) == 6
    assert all("label" in rows[g.name] for g in good)
    assert "empty" in rows["zero.mp4"]["error"]
    assert "not a readable video" in rows["notvideo.mp4"]["error"]
    assert "no audio stream" in rows["noaudio.mp4"]["error"]
    assert "too short" in rows["short.mp4"]["error"]
    assert "2 predicted, 4 skipped" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "affectkit", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("affectkit ")


def test_eval_writes_beside_the_checkpoint_not_inside_it(trained, capsys):
    assert main(["eval", str(trained.run_dir), "--split", "val"]) == 0
    shown = json.loads(capsys.readouterr().out)
    out = Path(shown["out_dir"])
    assert out == (trained.run_dir / "eval_best_val").resolve()
    assert (out / "metrics.json").is_file() and not (trained.best_dir / "eval_val").exists()
