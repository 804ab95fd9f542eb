"""The main job (`affectkit demo`) end to end at a tiny size: data -> train -> evaluate -> predict -> report."""
import json

from affectkit.demo import run_demo

from .conftest import TINY_OVERRIDES


def test_demo_writes_its_report(tiny_synth, tmp_path):
    out = run_demo(tmp_path / "report", epochs=1, data_dir=tiny_synth.parent,
                   extra_overrides=TINY_OVERRIDES + ["train.max_steps_per_epoch=2"])
    for name in ("README.md", "metrics.json", "confusion_matrix.png", "prediction.json", "emotion_over_time.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    classes = json.loads(tiny_synth.read_text())["labels"]
    assert metrics["classes"] == classes and metrics["chance_accuracy"] == 1 / len(classes)
    assert metrics["test"]["num_samples"] == 24  # 6 test videos of each of 4 classes
    assert metrics["best_epoch"] == 1
    pred = json.loads((out / "prediction.json").read_text())
    assert pred["label"] in classes and pred["true_label"] in classes and len(pred["timeline"]) == 4
    readme = (out / "README.md").read_text()
    assert f"test accuracy: **{metrics['test']['accuracy']:.3f}**" in readme
    assert (out / "runs" / "demo" / "best" / "model.safetensors").is_file()
