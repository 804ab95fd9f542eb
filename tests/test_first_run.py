"""What a new user meets in the first hour: every option explained, errors that say what to do next,
commands that say what they did."""
import argparse
import json
import logging
import re
import warnings
from pathlib import Path

from affectkit.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"


def _walk(parser, path=("affectkit",)):
    if hasattr(parser, "_add_deferred"):  # sub-commands whose options are added on first use
        parser._add_deferred()
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, path + (name,))


def test_every_cli_option_and_positional_has_help():
    missing, seen = [], 0
    for path, parser in _walk(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            seen += 1
            if not (action.help or "").strip():
                missing.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    assert seen > 60  # the walk reached every subcommand (models ... data synth, export onnx)
    assert not missing, missing


def test_models_pattern_lists_shipped_configs_aligned_and_says_when_nothing_matches(capsys):
    assert main(["models", "audio*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [l.split()[0] for l in lines if not l.startswith(" ")] == ["audio_cnn", "audio_resnet18"]
    assert any("config: audio/ravdess_cnn_logmel.yaml" in l for l in lines)
    assert any("config: audio/ravdess_resnet18_mfcc.yaml" in l for l in lines)
    model_lines = [l for l in lines if not l.startswith(" ")]
    assert len({l.index("task=") for l in model_lines}) == 1 and len({l.index("inputs=") for l in model_lines}) == 1
    assert main(["models", "nothing*"]) == 1
    out = capsys.readouterr().out
    assert "no registered model matches 'nothing*'" in out and "vaanet" in out


def test_train_without_data_suggests_data_synth_or_data_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no demo_data/ here
    assert main(["train", "vaanet/vaanet_synth.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "demo_data/synth.json" in err
    assert "affectkit data synth --out demo_data" in err and "-o data.path=" in err
    assert main(["train", "vaanet/vaanet_synth.yaml", "-o", f"data.path={tmp_path / 'mine.json'}"]) == 2
    err = capsys.readouterr().err
    assert "mine.json" in err and "-o data.path=" in err


def test_model_option_error_comes_before_data_error(tmp_path, capsys):
    assert main(["train", "vaanet/vaanet_synth.yaml", "-o", "model.args.nope=1", "-o", f"data.path={tmp_path / 'missing.json'}"]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "options:" in err and "missing.json" not in err


def test_predict_onnx_file_without_engine_suggests_engine_onnx(tmp_path, capsys):
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"\0")
    assert main(["predict", str(tmp_path / "clip.mp4"), "--checkpoint", str(onnx_file)]) == 2
    err = capsys.readouterr().err
    assert "model.onnx" in err and "--engine onnx" in err


def test_train_names_the_selection_metric_in_its_last_line(monkeypatch, tmp_path, capsys):
    from affectkit.engine import trainer

    fake = trainer.TrainResult(run_dir=tmp_path / "run", best_dir=tmp_path / "run" / "best", best_metric=0.75,
                               best_epoch=3, select_metric="accuracy")
    monkeypatch.setattr(trainer, "train", lambda *a, **k: fake)
    assert main(["train", "vaanet/vaanet_synth.yaml"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert "validation accuracy 0.75" in last and "epoch 3" in last


def test_data_synth_rerun_says_it_reused_the_set_and_info_reads_the_folder(tmp_path, capsys):
    out = tmp_path / "demo_data"
    args = ["data", "synth", "--out", str(out), "--num-classes", "2", "--train-per-class", "1", "--val-per-class", "1",
            "--test-per-class", "1", "--duration", "1", "1.2", "--size", "32", "32", "--workers", "1", "--untrimmed", "0"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "reused" not in first and "6 videos" in first
    assert main(args) == 0
    second = capsys.readouterr().out
    assert "reused the existing set" in second and "--overwrite" in second
    assert main(["data", "info", str(out)]) == 0  # the folder `data synth` wrote: its synth.json is read
    info = capsys.readouterr().out
    assert "6 videos, 2 classes" in info


def test_quiet_exporter_drops_exporter_chatter_only_during_the_export(caplog):
    from affectkit.deploy.onnx_export import quiet_exporter

    registry_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    with caplog.at_level(logging.INFO):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with quiet_exporter():
                registry_log.warning("torchvision is not installed. Skipping %s", "torchvision::nms")
                warnings.warn("exporter future", FutureWarning)
                registry_log.error("a real export error")
            warnings.warn("after the export", FutureWarning)
        assert "torchvision" not in caplog.text and "a real export error" in caplog.text
        assert [str(w.message) for w in caught if issubclass(w.category, FutureWarning)] == ["after the export"]
        registry_log.warning("torchvision is not installed. Skipping %s", "x")  # after the export: as before
        assert "torchvision" in caplog.text


def test_readme_list_models_example_matches_its_output():
    import affectkit

    line = next(l for l in README.read_text().splitlines() if l.startswith("affectkit.list_models()"))
    shown = re.search(r"#\s*(\[.*\])", line).group(1)
    assert json.loads(shown.replace("'", '"')) == affectkit.list_models()


def test_dev_script_says_what_it_installs_before_each_step():
    lines = (README.parent / "dev").read_text().splitlines()
    installs = [i for i, l in enumerate(lines) if "pip install" in l and not l.strip().startswith("#")]
    assert len(installs) == 3
    for i in installs:
        said = [l for l in lines[max(0, i - 2):i] if l.strip().startswith("echo ")]
        assert said, lines[i]
    text = "\n".join(lines)
    assert "installing torch 2.13.0 (CPU wheel" in text and "installing affectkit with its test extras..." in text


def test_readme_states_demo_times_per_cpu_class_and_first_session_expectations():
    text = README.read_text()
    assert "AVX-512" in text and "79 s" in text and "--epochs 3" in text
    assert "smoke run" in text and "near chance" in text
