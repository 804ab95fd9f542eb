"""YAML configs -> typed config objects.

A config file has the sections ``model``, ``input``, ``data``, ``train``, ``eval`` and ``output``
(see ``configs/vaanet/vaanet_synth.yaml``). A file may name one ``base:`` file whose values it
overrides (one level, no chains). Command-line overrides are dotted: ``train.epochs=3``,
``model.args.depth=50``; values are parsed as YAML (``true``, ``1e-4``, ``[1, 2]``).
"""
from __future__ import annotations

import copy
import dataclasses
import os
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


@dataclass
class ModelSection:
    name: str = "vaanet"
    args: dict[str, Any] = field(default_factory=dict)  # overrides of the registered default config


@dataclass
class AudioSection:
    # mfcc | log_mel | fbank (CTEN: Kaldi log-mel, n_mels bins, data/fbank.py) | whisper (the frozen Whisper
    # encoder's states, one per 20 ms: num_frames states of encoder_dim; data/speech_encoder.py) | none
    kind: str = "mfcc"
    sample_rate: int = 44100
    n_mfcc: int = 32
    n_mels: int = 128
    n_fft: int = 2048
    hop_length: int = 512
    num_frames: int = 4096
    windows: int = 16  # fbank: num_frames = windows x equal windows (CTEN: 16 x 100 frames, one second each)
    on_missing: str = "error"  # error (report and skip) | silence (zeros, with a warning)
    encoder_model: str | None = None  # whisper: a local CTranslate2 Whisper folder (default: the bundled tiny.en)
    encoder_dim: int = 384  # whisper: the encoder's state width (tiny 384, base 512, small 768)
    encoder_pad: bool = False  # whisper: encode in zero-padded 30 s windows as Whisper was trained (slower)
    # mfcc / log_mel of a video: how num_frames are read from the track. start: the first num_frames frames
    # (VAANet's rule); segments: input.seq_len equal windows of num_frames / seq_len frames, one inside each
    # of the video's seq_len equal segments (the segments the snippets stand for), at a random offset in
    # training and centred in evaluation (MART's rule: window j's audio plays while snippet j's frames do)
    align: str = "start"

    def __post_init__(self) -> None:
        if self.align not in ("start", "segments"):
            raise ConfigError(f"input.audio.align: expected start or segments, got {self.align!r}")


@dataclass
class TextSection:
    """Models taking ``text``: a record's subtitles (``record.subtitles``) or transcript (``extra['text']``)."""

    on_missing: str = "empty"  # empty (empty strings) | error (report and skip the sample)
    sidecar: bool = True  # a plain file path (predict): use <file stem>.srt beside it when there is one
    # the emotion lexicon for the emotional words of each window (predict; MART's verification):
    # auto (SenticNet if installed, else NRC, else none) | senticnet | nrc | synthetic | none
    lexicon: str = "auto"
    # how subtitles map to the time windows: cue (every cue overlapping a window, whole) | word (only the
    # words overlapping it: ASR word times, else spread over their cue by length)
    align: str = "cue"
    embedded: bool = True  # no subtitle file: read a text subtitle stream inside the video container
    # no subtitles at all: offline speech recognition (pip install affectkit[asr]): auto (plain media
    # files, i.e. predict/batch/service, when installed; never dataset records) | whisper (always; an
    # error when not installed) | none
    asr: str = "auto"
    asr_model: str | None = None  # a local CTranslate2 Whisper folder (default: the bundled tiny.en)
    asr_language: str | None = "en"  # null: detect (multilingual models only)

    def __post_init__(self) -> None:
        if self.on_missing not in ("empty", "error"):
            raise ConfigError(f"input.text.on_missing: expected empty or error, got {self.on_missing!r}")
        if self.align not in ("cue", "word"):
            raise ConfigError(f"input.text.align: expected cue or word, got {self.align!r}")
        if str(self.asr).lower() not in ("auto", "whisper", "none"):
            raise ConfigError(f"input.text.asr: expected auto, whisper or none, got {self.asr!r}")
        self.asr = str(self.asr).lower()
        if str(self.lexicon).lower() not in ("auto", "senticnet", "nrc", "synthetic", "none"):
            raise ConfigError(f"input.text.lexicon: expected auto, senticnet, nrc, synthetic or none, got {self.lexicon!r}")


@dataclass
class SkeletonSection:
    """Models taking ``skeleton``: a pose/gait sequence file (.npy, .npz, .csv, .h5) of T frames."""

    num_joints: int = 16  # J (Emotion-Gait: 16 joints)
    channels: int = 3  # C per joint (x, y, z)
    max_frames: int | None = 240  # crop (random start in training, the start in evaluation) or zero-pad to this; null: as is
    root_joint: int | None = None  # subtract this joint's position in every frame (centring); null: raw coordinates

    def __post_init__(self) -> None:
        for name in ("num_joints", "channels", "max_frames"):
            value = getattr(self, name)
            if (value is not None or name != "max_frames") and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"input.skeleton.{name}: expected an integer >= 1{' or null' if name == 'max_frames' else ''}, got {value!r}")
        if self.root_joint is not None and (isinstance(self.root_joint, bool) or not isinstance(self.root_joint, int)
                                            or not 0 <= self.root_joint < self.num_joints):
            raise ConfigError(f"input.skeleton.root_joint: expected a joint index in 0..{self.num_joints - 1} or null, got {self.root_joint!r}")


@dataclass
class FeaturesSection:
    """Models taking ``features``: pre-extracted (T, D) features, .npy or .npz, one file per video."""

    root: str | None = None  # <root>/<video_id>.npy (or .npz) when a record names no file (extra['features'])
    dim: int | None = None  # expected D (a file with another is reported); null: any
    max_len: int | None = None  # at most this many rows (subsampled); null: all rows
    sampling: str = "random"  # random: random row in each of max_len equal parts in training, uniform in evaluation; uniform: always uniform
    # how the features were made (localize: the <root>/extractor.json of `affectkit features`, copied into the
    # checkpoint so that predict computes them from a video); null: unknown
    extractor: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("dim", "max_len"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"input.features.{name}: expected an integer >= 1 or null, got {value!r}")
        if self.sampling not in ("uniform", "random"):
            raise ConfigError(f"input.features.sampling: expected uniform or random, got {self.sampling!r}")


@dataclass
class InputSection:
    seq_len: int = 12  # snippets per video
    snippet_duration: int = 16  # consecutive frames per snippet
    sample_size: int = 112  # square crop side fed to the model
    frame_step: int = 1  # take every n-th native frame (the original: 30 // fps)
    audio: AudioSection = field(default_factory=AudioSection)
    text: TextSection = field(default_factory=TextSection)
    skeleton: SkeletonSection = field(default_factory=SkeletonSection)
    features: FeaturesSection = field(default_factory=FeaturesSection)


@dataclass
class AugmentSection:
    crop: str = "corner"  # corner: random square crop at centre or a corner (original); center
    p: float = 0.3  # probability of one photometric/geometric op per video
    ops: list[str] = field(default_factory=lambda: ["flip", "rotate", "brightness"])
    rotate_degrees: float = 20.0
    brightness: list[float] = field(default_factory=lambda: [0.5, 1.0])
    speed: list[float] | None = None  # audio-only models: speed perturbation range, e.g. [0.9, 1.1] (tempo and pitch)

    def __post_init__(self) -> None:
        if self.speed is not None:
            ok = (len(self.speed) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.speed)
                  and 0 < self.speed[0] <= self.speed[1])
            if not ok:
                raise ConfigError(f"train.augment.speed: expected [low, high] with 0 < low <= high (e.g. [0.9, 1.1]), got {self.speed!r}")
            self.speed = [float(v) for v in self.speed]


@dataclass
class DataSection:
    format: str = "annotation"  # annotation (ActivityNet-style JSON) | folder | csv | audio
    path: str = ""  # annotation JSON, folder of class sub-folders (or of RAVDESS files: format audio), or CSV file
    video_root: str | None = None  # where <Class>/<id>(.mp4|/) live; default: the JSON's folder
    audio_root: str | None = None  # sidecar audio <Class>/<id>.mp3; default: the video file itself
    subsets: dict[str, str] = field(default_factory=lambda: {"train": "training", "val": "validation", "test": "testing"})
    val_fraction: float = 0.0  # carve a validation split out of train when there is none (whole groups with group_by)
    split_seed: int = 0
    classes: list[str] | None = None  # default: the annotation's label list / sorted folder names / RAVDESS emotions
    polarity: str | dict[str, str] | None = None  # preset name (ve8, ek6) or {class: positive|negative}
    skip_bad: bool = True  # report and skip broken or missing media instead of failing
    num_workers: int = 0
    label_column: str | None = None  # CSV label column; default: the first of label, emotion, class
    group_by: str | None = None  # split by whole groups of this metadata field (RAVDESS or a CSV column: actor)
    splits: dict[str, list] | None = None  # with group_by: {train: [1, 2], val: [3], test: [4]}; no train = the rest
    points: str | None = None  # point label CSV (video_id,class,point_time|point_frame...), attached to records by id
    cache_mb: float = 2048.0  # audio-only models: decoded waveforms kept in memory per process (MiB; 0: none)
    cache_dir: str | None = None  # audio-only models: also keep them in this folder (shared by workers and runs)
    test_fraction: float = 0.1  # format gait: the stratified test split (Emotion-Gait 9:1, following STEP)
    fold: int | None = None  # format gait: test on this fold of a stratified `folds`-fold protocol instead
    folds: int = 5

    def __post_init__(self) -> None:
        if isinstance(self.cache_mb, bool) or not isinstance(self.cache_mb, (int, float)) or not self.cache_mb >= 0:
            raise ConfigError(f"data.cache_mb: expected a size in MiB >= 0 (0: no in-memory cache), got {self.cache_mb!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction: expected a fraction in [0, 1), got {self.val_fraction!r}")
        if self.group_by is not None and (not isinstance(self.group_by, str) or not self.group_by.strip()):
            raise ConfigError(f"data.group_by: expected a metadata field name such as 'actor', got {self.group_by!r}")
        if self.splits is None:
            return
        if not self.group_by:
            raise ConfigError("data.splits lists groups per split and needs data.group_by (e.g. data.group_by: actor)")
        from .data.datasets import group_key

        where: dict[str, str] = {}
        checked: dict[str, list] = {}
        for split, groups in self.splits.items():
            if split not in ("train", "val", "test"):
                raise ConfigError(f"data.splits: unknown split {split!r}; expected train, val or test")
            if groups is None:
                groups = []
            elif isinstance(groups, (str, int)) and not isinstance(groups, bool):
                groups = [groups]
            if not isinstance(groups, (list, tuple)) or not all(isinstance(g, (str, int)) and not isinstance(g, bool) for g in groups):
                raise ConfigError(f"data.splits.{split}: expected a list of {self.group_by} values, e.g. [1, 2], got {groups!r}")
            checked[split] = list(groups)
            for g in groups:
                key = group_key(g)
                if key in where and where[key] != split:
                    raise ConfigError(f"data.splits: {self.group_by} {g!r} is in both {where[key]} and {split}; "
                                      f"a group must be in one split only")
                where[key] = split
        self.splits = checked


@dataclass
class DDPSection:
    """DistributedDataParallel options (under ``torchrun``)."""

    find_unused_parameters: bool = False  # a step leaves some parameters without a gradient
    static_graph: bool = False  # the same graph every step; allows several forward passes before one backward
    broadcast_buffers: bool = True  # rank 0's buffers (BatchNorm statistics) at each forward


@dataclass
class TrainSection:
    epochs: int = 10
    batch_size: int = 8
    lr: float = 2e-4
    optimizer: str = "adam"  # adam | adamw | sgd
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False  # sgd: Nesterov momentum (2s-AGCN's and BPM-GCN's optimiser)
    scheduler: str = "constant"  # constant | cosine | step
    step_size: int = 10
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    grad_accum: int = 1
    bf16: bool = False  # bf16 autocast (CPU with AVX-512 bf16, or GPU)
    channels_last: bool = False  # 4-D weights channels_last, 5-D channels_last_3d (faster convolutions on CPU; same results to float rounding)
    fused_optimizer: bool = True  # one fused kernel per optimiser step (same update to float rounding; far cheaper on CPU for large models)
    seed: int = 0
    loss: str = "pcce"  # ce | pcce
    pcce_lambda: float = 0.5
    select_metric: str | None = None  # chosen on the validation split, never on test; default: the task's
    select_mode: str | None = None  # max | min; default: the task's for its metric
    select_tie_break: str = "first"  # an epoch tying the best on select_metric: first (keep the earlier), last, nll (lower val NLL)
    max_steps_per_epoch: int | None = None
    cache_trunk_features: bool = False  # a model offering a feature cache (frozen trunk), no augmentation
    augment: AugmentSection = field(default_factory=AugmentSection)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    clip_grad_norm: float | None = None  # clip the global gradient norm before each optimiser step
    weight_decay_norm_bias: bool = True  # false: no weight decay on norm layers' weights and on biases
    lr_mult: dict[str, float] = field(default_factory=dict)  # {module prefix: lr multiplier}, e.g. {trunk: 0.1}
    init_from: str | None = None  # start from another run's/checkpoint's weights (fine-tuning)
    init_strict: bool = True  # init_from: every key must match (else: load what matches, report the rest)
    init_exclude: list[str] = field(default_factory=list)  # init_from: fnmatch patterns of keys not to load
    ddp: DDPSection = field(default_factory=DDPSection)
    compile: bool = False  # torch.compile the training forward (see benchmarks/bench_fast.py --train; off by default)

    def __post_init__(self) -> None:
        if self.grad_accum < 1:
            raise ConfigError(f"train.grad_accum: expected an integer >= 1, got {self.grad_accum!r}")
        if self.select_mode not in (None, "max", "min"):
            raise ConfigError(f"train.select_mode: expected max or min, got {self.select_mode!r}")
        if self.nesterov and (self.optimizer != "sgd" or not self.momentum > 0):
            raise ConfigError(f"train.nesterov needs optimizer sgd with momentum > 0 (optimizer {self.optimizer!r}, "
                              f"momentum {self.momentum!r})")
        if self.select_tie_break not in ("first", "last", "nll"):
            raise ConfigError(f"train.select_tie_break: expected first, last or nll, got {self.select_tie_break!r}")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ConfigError(f"train.clip_grad_norm: expected a positive number or null, got {self.clip_grad_norm!r}")
        for prefix, mult in self.lr_mult.items():
            if isinstance(mult, bool) or not isinstance(mult, (int, float)) or mult < 0:
                raise ConfigError(f"train.lr_mult.{prefix}: expected a non-negative number, got {mult!r}")


@dataclass
class EvalSection:
    batch_size: int = 8
    split: str = "test"


@dataclass
class OutputSection:
    root: str = "runs"
    run_name: str | None = None  # default: <config name>-<timestamp>
    tensorboard: bool = True


@dataclass
class Config:
    task: str = "classify"
    name: str = "run"
    model: ModelSection = field(default_factory=ModelSection)
    input: InputSection = field(default_factory=InputSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    output: OutputSection = field(default_factory=OutputSection)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _build(cls, data: dict, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {', '.join(sorted(unknown))}; valid keys: {', '.join(sorted(names))}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, tp = data[f.name], hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build(tp, value, f"{where}.{f.name}".lstrip("."))
            continue
        if tp is float and isinstance(value, (int, str)) and not isinstance(value, bool):
            try:  # YAML 1.1 reads "1e-3" as a string
                value = float(value)
            except ValueError:
                pass
        if not _type_ok(value, tp):
            raise ConfigError(f"{where}.{f.name}".lstrip(".") + f": expected {getattr(tp, '__name__', tp)}, got {value!r}")
        kwargs[f.name] = value
    return cls(**kwargs)


def config_from_dict(data: dict, where: str = "config") -> Config:
    data = {k: v for k, v in data.items() if k != "base"}
    try:
        return _build(Config, data, "")
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def packaged_configs() -> list[str]:
    """Names of the YAML configs shipped in the package, e.g. ``vaanet/vaanet_synth.yaml``."""
    root = resources.files("affectkit") / "configs"
    out = []
    for sub in sorted(root.iterdir(), key=lambda p: p.name):
        if sub.is_dir():
            out += [f"{sub.name}/{f.name}" for f in sorted(sub.iterdir(), key=lambda p: p.name) if f.name.endswith(".yaml")]
    return out


def resolve_config_path(name: str | os.PathLike) -> Path:
    """A path on disk, or the name of a shipped config (``vaanet/vaanet_synth.yaml``, ``vaanet_synth``)."""
    p = Path(name)
    if p.is_file():
        return p
    root = Path(str(resources.files("affectkit") / "configs"))
    candidates = [root / str(name), root / f"{name}.yaml"]
    stem = p.name if p.name.endswith(".yaml") else f"{p.name}.yaml"
    candidates += list(root.glob(f"*/{stem}"))
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError(f"config {str(name)!r} not found (not a file, nor a shipped config); shipped: {', '.join(packaged_configs())}")


def _load_yaml(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. train.epochs=3")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: bad key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    data = copy.deepcopy(data)
    for text in overrides or []:
        parts, value = parse_override(text)
        node = data
        for part in parts[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
            node = nxt
        node[parts[-1]] = value
    return data


def load_config_dict(name: str | os.PathLike, overrides: list[str] | None = None) -> dict:
    path = resolve_config_path(name)
    data = _load_yaml(path)
    base = data.get("base")
    if base:
        base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
        if not base_path.is_file():
            base_path = resolve_config_path(base)
        base_data = _load_yaml(base_path)
        if base_data.get("base"):
            raise ConfigError(f"{base_path}: a base config may not name another base (one level only)")
        data = _deep_merge(base_data, {k: v for k, v in data.items() if k != "base"})
    data.setdefault("name", path.stem)
    return apply_overrides(data, overrides)


def load_config(name: str | os.PathLike, overrides: list[str] | None = None) -> Config:
    """Load a config file or shipped config, apply dotted ``overrides``, validate into a :class:`Config`."""
    data = load_config_dict(name, overrides)
    return config_from_dict(data, where=str(name))


def packaged_config_models() -> dict[str, str]:
    """Shipped config name -> the model it trains (read from the YAML, its ``base:`` included)."""
    out = {}
    for name in packaged_configs():
        try:
            out[name] = str((load_config_dict(name).get("model") or {}).get("name", ModelSection.name))
        except ConfigError:
            continue
    return out
