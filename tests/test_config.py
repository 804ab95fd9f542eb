import pytest

from affectkit.config import load_config, packaged_configs, Config
from affectkit.errors import ConfigError


# config folder -> the model-name prefixes it may hold
CONFIG_FAMILIES = {"vaanet": ("vaanet",), "audio": ("audio_", "speech_"), "cten": ("cten",), "tsl": ("tsl",), "mart": ("mart",),
                   "gait": ("bpm_gcn", "agcn"), "mbt": ("mbt",)}


def test_shipped_configs_load_and_validate():
    from affectkit.registry import list_models

    names = packaged_configs()
    assert "vaanet/vaanet_synth.yaml" in names and "vaanet/vaanet_ve8.yaml" in names
    assert "audio/ravdess_resnet18_mfcc.yaml" in names and "audio/ravdess_cnn_logmel.yaml" in names
    for name in names:
        cfg = load_config(name)
        assert isinstance(cfg, Config) and cfg.model.name in list_models()
        family = name.split("/")[0]  # configs/<family>/: the folder names the method family it trains
        assert family in CONFIG_FAMILIES, f"{name}: config folder {family!r} is not a known method family"
        assert cfg.model.name.startswith(CONFIG_FAMILIES[family]), (name, cfg.model.name)


def test_base_and_dotted_overrides():
    cfg = load_config("vaanet/vaanet_ek6.yaml", ["train.epochs=3", "train.lr=1e-3", "model.args.depth=50", "data.subsets={train: a, test: b}"])
    assert cfg.data.polarity == "ek6" and cfg.train.batch_size == 32  # from the base file
    assert cfg.train.epochs == 3 and cfg.train.lr == pytest.approx(1e-3)
    assert cfg.model.args["depth"] == 50 and cfg.data.subsets == {"train": "a", "test": "b"}
    assert load_config("vaanet_synth").name == "vaanet_synth"


def test_bad_configs_give_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown key.*epoch"):
        load_config("vaanet/vaanet_synth.yaml", ["train.epoch=3"])
    with pytest.raises(ConfigError, match="train.epochs: expected int"):
        load_config("vaanet/vaanet_synth.yaml", ["train.epochs=three"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config("vaanet/vaanet_synth.yaml", ["train.epochs"])
    with pytest.raises(ConfigError, match="not found"):
        load_config("no_such_config.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
