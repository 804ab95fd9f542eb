"""`affectkit` starts without importing what a command does not need (item: start-up time)."""
import json
import subprocess
import sys

HEAVY = ("torch", "matplotlib", "fastapi", "uvicorn", "onnx", "onnxruntime", "librosa")


def _imported_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_cli_imports_nothing_heavy():
    assert _imported_after("import affectkit.cli") == []
    assert _imported_after("import affectkit") == []


def test_building_the_parser_imports_nothing_heavy():
    # what `affectkit --help` does; `export onnx` adds its options (and imports torch) only when used
    assert _imported_after("import affectkit.cli as c; c.build_parser()") == []


def test_help_works_and_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "affectkit", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for command in ("train", "eval", "predict", "serve", "export", "data", "doctor", "demo"):
        assert command in out.stdout


def test_deferred_subcommand_options_are_complete():
    # the lazily added options still parse and show in the sub-command's help
    out = subprocess.run([sys.executable, "-m", "affectkit", "export", "onnx", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--opset" in out.stdout and "checkpoint" in out.stdout
    out = subprocess.run([sys.executable, "-m", "affectkit", "data", "synth", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--num-classes" in out.stdout
    from affectkit.cli import build_parser

    args = build_parser().parse_args(["export", "onnx", "ckpt", "-o", "m.onnx", "--opset", "17"])
    assert (args.checkpoint, args.out, args.opset) == ("ckpt", "m.onnx", 17) and callable(args.func)
    args = build_parser().parse_args(["data", "synth", "--out", "d", "--num-classes", "3"])
    assert args.out == "d" and args.num_classes == 3
