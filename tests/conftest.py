import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder {SHARED} is absent")
    return SHARED


os.environ.setdefault("OMP_NUM_THREADS", "2")


# Tiny VAANet on a tiny synthetic set: the model and input sizes every training test uses.
TINY_OVERRIDES = [
    "model.args.depth=18", "model.args.width=8", "model.args.audio_width=8", "model.args.audio_segments=4",
    "input.seq_len=4", "input.snippet_duration=8", "input.sample_size=32",
    "input.audio.n_fft=512", "input.audio.hop_length=256", "input.audio.num_frames=128",
    "data.num_workers=0", "train.batch_size=8", "eval.batch_size=16", "output.tensorboard=false",
]


def tiny_overrides(data_json, out_root, *extra):
    return [f"data.path={data_json}", f"output.root={out_root}"] + TINY_OVERRIDES + list(extra)


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """An easy synthetic set: 4 classes, 12 train / 4 val / 6 test videos per class, 48x48, 12 fps."""
    from affectkit.data import synth

    out = tmp_path_factory.mktemp("synth_easy")
    cfg = synth.SynthConfig(num_classes=4, train_per_class=12, val_per_class=4, test_per_class=6,
                            duration=(3.0, 5.0), size=(48, 48), difficulty="easy", seed=1)
    return Path(synth.generate(out, cfg))


@pytest.fixture(scope="session")
def trained(tiny_synth, tmp_path_factory):
    """Tiny VAANet trained 8 epochs on ``tiny_synth`` (about a minute on 2 cores)."""
    from affectkit import train

    root = tmp_path_factory.mktemp("runs")
    return train("vaanet/vaanet_synth.yaml", tiny_overrides(tiny_synth, root, "train.epochs=8", "train.lr=3e-3",
                                                            "output.run_name=tiny", "train.seed=0"))


def untrained_checkpoint(root, config: str, overrides: list[str], classes: list[str]):
    """A seeded, untrained checkpoint of a shipped config (enough to run predict, batch and service paths)."""
    import torch

    from affectkit import create_model
    from affectkit.config import load_config
    from affectkit.engine.checkpoint import save_checkpoint
    from affectkit.engine.tasks import build_task

    cfg = load_config(config, overrides)
    args = build_task(cfg, classes, None).model_args()
    torch.manual_seed(0)
    model = create_model(cfg.model.name, **args).eval()
    return save_checkpoint(root / cfg.model.name, model, {
        "task": cfg.task, "model": {"name": cfg.model.name, "args": args}, "classes": classes, "polarity": None,
        "input": cfg.to_dict()["input"], "config": cfg.to_dict()}, {})
