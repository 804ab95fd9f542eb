"""The decoded-waveform cache of the audio-only loader (issue 15, item 7)."""
import os
import pickle

import numpy as np
import torch
import pytest

from affectkit.config import load_config
from affectkit.errors import ConfigError
from affectkit.data import audio_clips
from affectkit.data.audio_clips import AudioClipLoader, WaveCache, attach_wave_cache
from affectkit.data.media_writer import write_wav

from .audio_fixtures import encode_audio, make_ravdess_folder, tone

RECIPE = "audio/ravdess_cnn_logmel.yaml"


def _loader(overrides=(), *, train=False, cache_mb=64.0, cache_dir=None):
    cfg = load_config(RECIPE, list(overrides))
    loader = AudioClipLoader(cfg.input, train=train, augment=cfg.train.augment)
    loader.cache = WaveCache(cache_mb, cache_dir)
    return loader


@pytest.fixture()
def counting(monkeypatch):
    """Counts the decoder's calls (the real decoder still runs)."""
    calls = []
    real = audio_clips.load_audio

    def spy(path, *a, **k):
        if k.get("max_seconds") == audio_clips.MAX_DECODE_SECONDS:  # full decodes, not check()'s first samples
            calls.append(os.fspath(path))
        return real(path, *a, **k)

    monkeypatch.setattr(audio_clips, "load_audio", spy)
    for store in audio_clips._STORES.values():
        store.clear()
    return calls


@pytest.fixture()
def stereo48(tmp_path):
    """A native-rate recording: 3 s, 48 kHz stereo (as the RAVDESS originals)."""
    wave = np.stack([tone(3.0, 48000, seed=1), tone(3.0, 48000, freq=330.0, seed=2)])
    return encode_audio(tmp_path / "voice.flac", wave, 48000, "flac")


def test_hit_returns_the_identical_waveform(stereo48, counting):
    loader = _loader()
    first = loader.decode(stereo48)
    second = loader.decode(stereo48)
    assert counting == [stereo48]  # decoded once
    assert loader.cache.misses == 1 and loader.cache.hits == 1
    assert first.dtype == np.float32 and first.shape == (48000,)  # 3 s, resampled to 16 kHz and downmixed
    assert np.array_equal(first, second)
    assert np.array_equal(first, _uncached().decode(stereo48))  # the same as decoding without a cache
    second[:] = 0  # callers get a copy: the cached waveform is unchanged
    assert np.array_equal(loader.decode(stereo48), first)
    # the features of a hit are those of a fresh decode (evaluation: deterministic window)
    a = loader.load(stereo48)["audio"]
    b = _uncached().load(stereo48)["audio"]
    assert np.array_equal(a.numpy(), b.numpy())


def _uncached():
    cfg = load_config(RECIPE)
    return AudioClipLoader(cfg.input, train=False)


def test_changed_file_misses(tmp_path, counting):
    path = tmp_path / "a.wav"
    write_wav(path, tone(1.0, 16000, freq=200.0), 16000)
    loader = _loader()
    before = loader.decode(str(path))
    write_wav(path, tone(1.0, 16000, freq=600.0, seed=5), 16000)  # same length, new content
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # as a later edit (a coarse clock may tie)
    after = loader.decode(str(path))
    assert len(counting) == 2 and loader.cache.misses == 2
    assert before.shape == after.shape and not np.array_equal(before, after)
    assert np.array_equal(after, _uncached().decode(str(path)))
    write_wav(path, tone(2.0, 16000), 16000)  # a plain rewrite (new size)
    assert loader.decode(str(path)).shape == (32000,) and loader.cache.misses == 3


def test_sample_rate_change_misses(stereo48, counting):
    cache = WaveCache(64.0)
    a = _loader()
    b = _loader(["input.audio.sample_rate=8000", "input.audio.n_fft=512", "input.audio.hop_length=128"])
    a.cache = b.cache = cache  # one cache, two decode settings
    wa, wb = a.decode(stereo48), b.decode(stereo48)
    assert cache.misses == 2 and cache.hits == 0 and len(counting) == 2
    assert wa.shape == (48000,) and wb.shape == (24000,)
    assert np.array_equal(a.decode(stereo48), wa) and np.array_equal(b.decode(stereo48), wb) and cache.hits == 2


def test_disk_cache_survives_a_new_loader(stereo48, tmp_path, counting):
    folder = tmp_path / "cache"
    first = _loader(cache_mb=0, cache_dir=folder)  # disk only
    wave = first.decode(stereo48)
    files = list(folder.rglob("*.npy"))
    assert len(files) == 1 and not list(folder.rglob(".tmp-*"))  # written, no temporary left
    # a new loader (as in a new run or a DataLoader worker: pickled settings, no memory)
    second = pickle.loads(pickle.dumps(_loader(cache_mb=0, cache_dir=folder)))
    assert second.cache.cache_dir == str(folder) and second.cache.hits == 0
    again = second.decode(stereo48)
    assert counting == [stereo48] and second.cache.disk_hits == 1
    assert np.array_equal(wave, again)
    files[0].write_bytes(b"broken")  # an unreadable entry is decoded again and rewritten
    assert np.array_equal(second.decode(stereo48), wave) and len(counting) == 2
    assert np.array_equal(np.load(files[0]), wave)


def test_memory_limit_evicts_least_recently_used(tmp_path, counting):
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.wav"
        write_wav(p, tone(1.0, 16000, seed=i), 16000)  # 64 000 bytes each at 16 kHz float32
        paths.append(str(p))
    loader = _loader(cache_mb=0.15)  # room for two
    for p in paths + paths[1:]:
        loader.decode(p)
    assert loader.cache.misses == 3 and loader.cache.hits == 2
    loader.decode(paths[0])  # evicted by the third
    assert loader.cache.misses == 4
    store = audio_clips._STORES[loader.cache.limit]
    assert store.used <= loader.cache.limit and len(store.items) == 2


def test_config_fields_and_attach():
    cfg = load_config(RECIPE)
    assert cfg.data.cache_mb == 2048 and cfg.data.cache_dir is None
    with pytest.raises(ConfigError, match="cache_mb"):
        load_config(RECIPE, ["data.cache_mb=-1"])
    loader = AudioClipLoader(cfg.input, train=True)
    attach_wave_cache(loader, cfg.data)
    assert loader.cache is not None and loader.cache.limit == 2048 * 2**20
    off = load_config(RECIPE, ["data.cache_mb=0"])
    attach_wave_cache(loader, off.data)
    assert loader.cache is None


def test_training_with_the_cache_gives_the_same_losses(tmp_path, counting):
    """Same seed, cache on or off: identical losses (augmentation and random crops still happen
    after the cache), and with the cache each training file is decoded once, not once per epoch."""
    from affectkit.engine.trainer import train

    data = tmp_path / "ravdess"
    make_ravdess_folder(data, actors=(1, 2, 3), emotions=(1, 3, 5), sr=22050, seconds=1.2)
    common = [f"data.path={data}", "data.splits={train: [1, 2], val: [3]}", "train.epochs=2", "train.batch_size=4",
              "train.seed=0", "train.warmup_epochs=0", "model.args.channels=[4,8,8,8]", f"output.root={tmp_path / 'runs'}",
              "train.augment.speed=[0.9,1.1]"]
    off = train(RECIPE, common + ["data.cache_mb=0", "output.run_name=nocache"])
    decodes_off = len(counting)
    counting.clear()
    on = train(RECIPE, common + ["output.run_name=cached"])
    decodes_on = len(counting)
    assert len(on.history) == 2 and all(np.isfinite(r["train_loss"]) for r in on.history)
    assert [r["train_loss"] for r in off.history] == [r["train_loss"] for r in on.history]
    assert [r["val_accuracy"] for r in off.history] == [r["val_accuracy"] for r in on.history]
    files = 18  # 3 actors x 3 emotions x 2 statements: 12 train, 6 val
    assert decodes_off == 2 * files  # every epoch decodes every file again
    assert decodes_on == files  # once each, the second epoch is all hits


class _Files(torch.utils.data.Dataset):
    def __init__(self, loader, paths):
        self.loader, self.paths = loader, paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.loader.load(self.paths[i])["audio"]


def test_disk_cache_is_shared_by_dataloader_workers(tmp_path):
    paths = []
    for i in range(4):
        p = tmp_path / f"{i}.wav"
        write_wav(p, tone(1.5, 44100, seed=i), 44100)
        paths.append(str(p))
    folder = tmp_path / "cache"
    loader = _loader(cache_dir=folder)
    dl = torch.utils.data.DataLoader(_Files(loader, paths), batch_size=1, num_workers=2)
    first = [x[0] for x in dl]
    assert len(list(folder.rglob("*.npy"))) == 4 and not list(folder.rglob(".tmp-*"))
    expected = [_uncached().load(p)["audio"] for p in paths]
    assert all(torch.equal(a, b) for a, b in zip(first, expected))
    loader.cache.clear_memory()
    mtimes = sorted(f.stat().st_mtime_ns for f in folder.rglob("*.npy"))
    again = [x[0] for x in dl]  # new workers: every waveform read from the folder, none rewritten
    assert all(torch.equal(a, b) for a, b in zip(again, expected))
    assert sorted(f.stat().st_mtime_ns for f in folder.rglob("*.npy")) == mtimes
