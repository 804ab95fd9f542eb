"""TSL-Net's inputs computed from a video file (spec section 3.2): I3D-RGB features and aligned log-mel.

- **visual** ``rgb`` (T_v, D): one Inception-3D RGB feature (:mod:`affectkit.models.i3d`, D = 1024 at full
  width) per non-overlapping chunk of ``frames_per_step`` = 16 native frames. Frames are decoded with the short
  side resized to ``size`` = 224 (inside FFmpeg), centre-cropped to 224 x 224 and scaled to [-1, 1]
  (``x / 127.5 - 1``, as the public I3D ports take them). The last, partial chunk is zero-padded to 16 frames
  (zeros of the scaled input, i.e. mid-grey; the paper: "clips are zero-padded to 16 frames"), so
  T_v = ceil(frames / 16). A video of F frames is decoded ``batch_steps`` chunks at a time: memory is bounded
  by ``batch_steps x 16`` frames whatever the video's length (:meth:`TSLFeatureExtractor.iter_rgb`).
- **audio** ``logmfcc`` (N, 60): the log-mel of the original's script (n_fft 2048, hop 1024, 60 mel bands,
  ``power_to_db`` with top_db 80 over the whole file) at the sample rate the spec recommends for exact
  alignment, ``sr = mel_frames_per_step / frames_per_step x hop x fps = 2 x 1024 x fps`` (32 mel frames per
  16-frame step; the original's hard-coded rate drifts about 17 %). Decoded and transformed in blocks
  (:func:`~affectkit.data.audio.iter_audio`, :func:`~affectkit.data.audio.stream_log_mel`): only the
  (N, 60) result is held. The loader keeps T = min(T_v, N // 32) steps.

:func:`cache_features` writes them per video as the TSL-300 tree that the ``localize`` task reads:
``<out>/rgb/<id>.npy`` and ``<out>/logmfcc/<id>.npy`` (or ``<out>/<subset>/{rgb,logmfcc}/<id>.npy``), plus
``<out>/extractor.json`` (how they were made: the localize task copies it into its checkpoints, so that
``affectkit predict`` computes the same features from a new video). ``affectkit features`` is its command.

Weights: a local I3D weights file (``--i3d-weights``; e.g. a public port's Kinetics-400 RGB checkpoint), or,
only when asked for explicitly (``--random-init``: tests and the synthetic set), a randomly initialised I3D
whose weights are written beside the features (so the same random network serves training and prediction).
Random features are not I3D features: results on them say nothing about TSL-300.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..errors import AffectkitError, MediaError

log = logging.getLogger(__name__)

EXTRACTOR_FILE = "extractor.json"
KIND = "i3d_rgb+logmel"


@dataclass
class ExtractorSpec:
    """How TSL-Net's features are computed (what ``extractor.json`` holds)."""

    i3d_weights: str  # local weights file (absolute path)
    i3d_sha256: str = ""  # of that file, checked before use ("" = not checked)
    i3d_width: float = 1.0
    random_init: bool = False  # the weights are a random initialisation (not Kinetics-trained)
    feature_dim: int = 1024
    frames_per_step: int = 16
    size: int = 224
    batch_steps: int = 4  # chunks of frames_per_step frames through I3D at once (bounds memory)
    n_mels: int = 60
    n_fft: int = 2048
    hop_length: int = 1024
    mel_frames_per_step: int = 32  # sr = mel_frames_per_step / frames_per_step * hop_length * fps
    top_db: float = 80.0
    kind: str = KIND
    extra: dict[str, Any] = field(default_factory=dict)

    def sample_rate(self, fps: float) -> int:
        return int(round(self.mel_frames_per_step / self.frames_per_step * self.hop_length * float(fps)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "extractor") -> "ExtractorSpec":
        if not isinstance(d, dict) or d.get("kind", KIND) != KIND:
            raise AffectkitError(f"{where}: not a TSL feature extractor record (expected kind {KIND!r})")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise AffectkitError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        if not d.get("i3d_weights"):
            raise AffectkitError(f"{where}: no i3d_weights file named")
        return cls(**d)

    def same_features(self, other: "ExtractorSpec") -> bool:
        """Whether two specs give the same features (the batch size does not matter)."""
        a, b = self.to_dict(), other.to_dict()
        for d in (a, b):
            d.pop("batch_steps")
            d.pop("extra")
            if d["i3d_sha256"]:
                d.pop("i3d_weights")  # the same file may have moved
        if not (a["i3d_sha256"] and b["i3d_sha256"]):
            a.pop("i3d_sha256", None), b.pop("i3d_sha256", None)
        return a == b


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_random_i3d(path: str | os.PathLike, *, width: float, seed: int = 0) -> Path:
    """A randomly initialised I3D (He-normal convolutions, identity BatchNorm), seeded, written to ``path``."""
    from ..models.i3d import I3D, save_i3d_weights

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = I3D(width=width)
    return save_i3d_weights(model, path)


def read_extractor(root: str | os.PathLike) -> ExtractorSpec | None:
    """The ``extractor.json`` of a features folder, or None when it has none."""
    path = Path(root) / EXTRACTOR_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise AffectkitError(f"{path}: not a readable JSON file ({err})") from None
    return ExtractorSpec.from_dict(data, where=str(path))


# ------------------------------------------------------------------------------------------ extractor
def aligned_log_mel(path: str | os.PathLike, fps: float, num_frames: int | None = None, *, n_mels: int = 60,
                    n_fft: int = 2048, hop_length: int = 1024, mel_frames_per_step: int = 32, frames_per_step: int = 16,
                    top_db: float | None = 80.0, allow_silent: bool = False) -> np.ndarray:
    """TSL-Net's audio input of a media file: (N, n_mels) dB log-mel (librosa's melspectrogram + power_to_db
    conventions, :mod:`affectkit.data.audio`) at ``sr = mel_frames_per_step / frames_per_step x hop x fps``
    (= 2 x 1024 x fps: exactly 32 mel frames per 16 video frames, the spec's recommended alignment), decoded
    and transformed in blocks (bounded memory). ``allow_silent``: a file without an audio stream gives -100 dB
    (the floor of silence) for ``1 + 2 num_frames`` rows instead of a :class:`MediaError`."""
    from .audio import iter_audio, stream_log_mel

    sr = int(round(mel_frames_per_step / frames_per_step * hop_length * float(fps)))
    try:
        chunks = iter_audio(path, sr)
    except MediaError as err:
        if not (allow_silent and "no audio stream" in err.problem) or num_frames is None:
            raise
        log.warning("%s: no audio stream; using silence", path)
        return np.full((1 + num_frames * mel_frames_per_step // frames_per_step, n_mels), -100.0, dtype=np.float32)
    return stream_log_mel(chunks, sr, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, top_db=top_db)


class TSLFeatureExtractor:
    """I3D-RGB + aligned log-mel of a video file (see the module doc)."""

    def __init__(self, spec: ExtractorSpec, *, device: str | torch.device = "cpu", check_hash: bool = True):
        from ..models.i3d import load_i3d_weights

        self.spec = spec
        self.device = torch.device(device)
        weights = spec.i3d_weights
        if not os.path.isfile(weights):
            raise AffectkitError(f"{weights}: I3D weights file not found (named by the feature extractor record; "
                                 f"the features were made with it)")
        if check_hash and spec.i3d_sha256 and file_sha256(weights) != spec.i3d_sha256:
            raise AffectkitError(f"{weights}: I3D weights file changed since the features were made "
                                 f"(sha256 differs from the extractor record's {spec.i3d_sha256[:12]}...)")
        self.model = load_i3d_weights(weights, width=spec.i3d_width).to(self.device).eval()
        if self.model.feature_dim != spec.feature_dim:
            raise AffectkitError(f"{weights}: gives {self.model.feature_dim}-d features, the record says {spec.feature_dim}")
        self.network = inference_copy(self.model)  # what runs: BN folded, channels-last (same features to ~1e-5)
        self.max_frames_per_read = 0  # the largest number of frames decoded at once (memory bound check)

    # -- visual --------------------------------------------------------------------------------
    def _crop(self, frames: np.ndarray) -> np.ndarray:
        s = self.spec.size
        h, w = frames.shape[1:3]
        if h < s or w < s:  # a tiny video: its short side was resized to size, so this is rounding only
            frames = np.pad(frames, ((0, 0), (0, max(0, s - h)), (0, max(0, s - w)), (0, 0)), mode="edge")
            h, w = frames.shape[1:3]
        top, left = (h - s) // 2, (w - s) // 2
        return frames[:, top:top + s, left:left + s]

    def iter_rgb(self, path: str | os.PathLike) -> Iterator[np.ndarray]:
        """(n, D) float32 blocks of the video's I3D features, in order, ``batch_steps`` chunks at a time."""
        from .video import open_video
        from ..models.i3d import scale_pixels

        fps_step, batch = self.spec.frames_per_step, max(1, int(self.spec.batch_steps))
        with open_video(path) as reader:
            total = int(reader.info.num_frames)
            if total < 1:
                raise MediaError(path, "video has no frames")
            steps = math.ceil(total / fps_step)
            for first in range(0, steps, batch):
                last = min(steps, first + batch)
                a, b = first * fps_step, min(total, last * fps_step)
                frames = reader.read_frames(list(range(a, b)), size=self.spec.size)
                self.max_frames_per_read = max(self.max_frames_per_read, b - a)
                x = scale_pixels(torch.from_numpy(np.ascontiguousarray(self._crop(frames))))  # (n, S, S, 3)
                pad = (last - first) * fps_step - x.shape[0]
                if pad:  # the last chunk: zero-padded to frames_per_step frames
                    x = torch.cat([x, x.new_zeros(pad, *x.shape[1:])])
                x = x.reshape(last - first, fps_step, *x.shape[1:]).permute(0, 4, 1, 2, 3)  # (B, 3, 16, S, S)
                with torch.inference_mode():
                    x = x.to(self.device).contiguous(memory_format=torch.channels_last_3d)
                    yield self.network.features(x).float().cpu().numpy()

    def rgb(self, path: str | os.PathLike) -> np.ndarray:
        return np.concatenate(list(self.iter_rgb(path)), axis=0).astype(np.float32)

    # -- audio ---------------------------------------------------------------------------------
    def logmel(self, path: str | os.PathLike, fps: float, num_frames: int, *, allow_silent: bool = False) -> np.ndarray:
        """(N, n_mels) dB log-mel at ``sr = 2 x hop x fps`` (:func:`aligned_log_mel` with this spec's settings)."""
        s = self.spec
        return aligned_log_mel(path, fps, num_frames, n_mels=s.n_mels, n_fft=s.n_fft, hop_length=s.hop_length,
                               mel_frames_per_step=s.mel_frames_per_step, frames_per_step=s.frames_per_step,
                               top_db=s.top_db, allow_silent=allow_silent)

    def extract(self, path: str | os.PathLike, *, allow_silent: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
        """(rgb (T_v, D), logmel (N, n_mels), info {fps, num_frames, duration}) of one video."""
        from .video import probe_video

        path = os.fspath(path)
        info = probe_video(path)
        fps = info.fps if info.fps and info.fps > 0 else None
        if fps is None:
            raise MediaError(path, "frame rate unknown: cannot align the audio to the 16-frame steps")
        if info.num_frames < 1:
            raise MediaError(path, "video has no frames")
        mel = self.logmel(path, fps, info.num_frames, allow_silent=allow_silent)
        rgb = self.rgb(path)
        return rgb, mel, {"fps": float(fps), "num_frames": int(info.num_frames), "duration": float(info.duration)}


def inference_copy(model: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy of an I3D for feature extraction: every BatchNorm folded into its convolution and the
    convolution weights channels-last (oneDNN's direct layout), about 1.5x faster on a CPU than the module as
    loaded (``benchmarks/bench_tsl.py``); the features agree with the plain module's to float rounding (a test)."""
    import copy

    from ..deploy.fast import fold_batchnorm

    fast = fold_batchnorm(copy.deepcopy(model).eval())
    for m in fast.modules():
        if isinstance(m, torch.nn.Conv3d):
            m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last_3d)
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast


# ------------------------------------------------------------------------------------------ predict
class UntrimmedVideoLoader:
    """The sample of a ``localize`` model from a plain video file (``affectkit predict``): the features
    computed on the fly by the checkpoint's recorded extractor, cut and reshaped as the training loader does."""

    input_keys = ("features", "logmel")

    def __init__(self, spec: ExtractorSpec, *, rows: int, bins: int, frames_per_step: int,
                 device: str = "cpu", allow_silent_audio: bool = False):
        if spec.n_mels != bins or spec.frames_per_step != frames_per_step or spec.mel_frames_per_step != rows:
            raise AffectkitError(f"feature extractor ({spec.n_mels} mels, {spec.mel_frames_per_step} rows per "
                                 f"{spec.frames_per_step} frames) does not match the model ({bins} mels, {rows} rows "
                                 f"per {frames_per_step} frames)")
        self.rows, self.bins, self.allow_silent = rows, bins, allow_silent_audio
        self.spec, self.device = spec, device
        self._extractor: TSLFeatureExtractor | None = None

    @property
    def extractor(self) -> TSLFeatureExtractor:
        if self._extractor is None:  # built on first use (the I3D weights are read then)
            self._extractor = TSLFeatureExtractor(self.spec, device=self.device)
        return self._extractor

    def check(self, source, audio_path: str | None = None) -> None:
        from .video import probe_video

        probe_video(os.fspath(getattr(source, "path", source)))

    def load(self, source, *, audio_path: str | None = None, rng=None) -> dict[str, Any]:
        path = os.fspath(getattr(source, "path", source))
        rgb, mel, info = self.extractor.extract(path, allow_silent=self.allow_silent)
        steps = min(len(rgb), len(mel) // self.rows)
        if steps < 1:
            raise MediaError(path, f"too short: {len(mel)} log-mel frames, fewer than one step of {self.rows}")
        mel = mel[: steps * self.rows].reshape(steps, self.rows, self.bins)
        return {"features": torch.from_numpy(np.ascontiguousarray(rgb[:steps])),
                "logmel": torch.from_numpy(np.ascontiguousarray(mel)),
                "features_mask": torch.ones(steps, dtype=torch.bool),
                "seconds_per_step": self.spec.frames_per_step / info["fps"], "fps": info["fps"],
                "duration": info["duration"], "path": path}


# ------------------------------------------------------------------------------------------- cache
def _save_npy(path: Path, arr: np.ndarray) -> None:
    """Atomic: written to a temporary file beside, then renamed (an interrupted run leaves no half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(arr, dtype=np.float32))
    os.replace(tmp, path)


def _complete(rgb: Path, mel: Path, spec: ExtractorSpec) -> bool:
    """Both files there and readable with the expected widths (a previous run finished this video)."""
    try:
        a = np.load(rgb, mmap_mode="r")
        b = np.load(mel, mmap_mode="r")
    except (OSError, ValueError, EOFError):
        return False
    return a.ndim == 2 and a.shape[1] == spec.feature_dim and b.ndim == 2 and b.shape[1] == spec.n_mels and len(a) > 0


def feature_paths(out: Path, video_id: str, subset: str | None, by_subset: bool) -> tuple[Path, Path]:
    base = out / str(subset) if by_subset and subset else out
    return base / "rgb" / f"{video_id}.npy", base / "logmfcc" / f"{video_id}.npy"


def prepare_output(out: str | os.PathLike, spec: ExtractorSpec) -> Path:
    """Create ``out`` and its ``extractor.json``; a folder made by another extractor is an error
    (resuming it would mix features of two networks)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    old = read_extractor(out)
    if old is not None and not old.same_features(spec):
        raise AffectkitError(f"{out / EXTRACTOR_FILE}: this folder holds features of another extractor "
                             f"({old.i3d_weights}, width {old.i3d_width:g}); use another --out or delete it")
    (out / EXTRACTOR_FILE).write_text(json.dumps(spec.to_dict(), indent=2) + "\n", encoding="utf-8")
    return out


def cache_features(videos: list[tuple[str, str, str | None]], out: str | os.PathLike, spec: ExtractorSpec, *,
                   by_subset: bool = False, device: str = "cpu", allow_silent_audio: bool = False,
                   progress: bool | None = None) -> dict[str, Any]:
    """Features of ``videos`` ((video_id, path, subset) triples) into ``out`` (see the module doc).
    Resumable: videos whose two files are complete are skipped; each file is written atomically. A broken
    video is reported (its file and the problem) and skipped. Returns {done, already_done, failed, ...}."""
    from tqdm import tqdm

    out = prepare_output(out, spec)
    extractor = TSLFeatureExtractor(spec, device=device)
    todo, already = [], 0
    for vid, path, subset in videos:
        rgb_p, mel_p = feature_paths(out, vid, subset, by_subset)
        if rgb_p.is_file() and mel_p.is_file() and _complete(rgb_p, mel_p, spec):
            already += 1
        else:
            todo.append((vid, path, rgb_p, mel_p))
    failed: list[dict[str, str]] = []
    seconds_video = seconds_spent = 0.0
    bar = tqdm(total=len(todo), unit="video", disable=None if progress is None else not progress, file=sys.stderr)
    try:
        for vid, path, rgb_p, mel_p in todo:
            t0 = time.perf_counter()
            try:
                rgb, mel, info = extractor.extract(path, allow_silent=allow_silent_audio)
            except (MediaError, OSError, RuntimeError) as err:
                problem = str(err) if isinstance(err, MediaError) else f"{path}: {type(err).__name__}: {err}"
                failed.append({"video_id": vid, "file": str(path), "problem": problem})
                bar.write(f"skipped: {problem}", file=sys.stderr)
                bar.update(1)
                continue
            _save_npy(mel_p, mel)
            _save_npy(rgb_p, rgb)  # the visual file last: the pair counts as done once both exist
            seconds_spent += time.perf_counter() - t0
            seconds_video += info["duration"]
            bar.update(1)
            bar.set_postfix(skipped=len(failed), refresh=False)
    finally:
        bar.close()
    report = {"out": str(out), "videos": len(videos), "done": len(todo) - len(failed), "already_done": already,
              "failed": failed, "seconds_of_video": round(seconds_video, 2), "seconds": round(seconds_spent, 2),
              "video_seconds_per_second": round(seconds_video / seconds_spent, 3) if seconds_spent else None,
              "extractor": spec.to_dict()}
    (out / "features_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


# ------------------------------------------------------------------------------------------- dataset
def dataset_videos(dataset: str | os.PathLike, video_root: str | os.PathLike | None = None) -> tuple[list[tuple[str, str, str | None]], list[tuple[str, str]]]:
    """(video_id, path, subset) of every video of ``dataset`` and the (what, why) problems: an annotation JSON
    (ActivityNet-style gt.json; videos from its entries' ``video`` or ``<video_root>/<id>.<ext>``), a folder
    holding ``gt.json`` or ``untrimmed/gt.json`` (the synthetic set), a folder of video files, or one video."""
    from .datasets import VIDEO_EXTENSIONS, DatasetIndex, read_annotation, resolve_media

    p = Path(dataset)
    if p.is_dir():
        for cand in (p / "gt.json", p / "untrimmed" / "gt.json", p / "VideoSenti" / "gt.json"):
            if cand.is_file():
                p = cand
                break
    if p.is_file() and p.suffix.lower() == ".json":
        classes, records, _ = read_annotation(p)
        index = DatasetIndex(source=str(p), classes=classes, records=records)
        base = p.parent
        index = resolve_media(index, video_root or (base / "videos" if (base / "videos").is_dir() and not any(
            r.extra.get("video") for r in records) else base))
        return [(r.video_id, r.path, r.subset) for r in index.records if r.path], list(index.problems)
    if p.is_file():
        return [(p.stem, str(p), None)], []
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
        if not files:
            raise AffectkitError(f"{p}: no gt.json and no video files in this folder")
        return [(f.stem, str(f), None) for f in files], []
    raise AffectkitError(f"{dataset}: not found (give an annotation JSON, a folder or a video file)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="gt.json (ActivityNet style), a folder holding one (e.g. the synthetic set's "
                        "untrimmed/), a folder of videos, or one video")
    parser.add_argument("--out", required=True, help="features folder: <out>/rgb/<id>.npy and <out>/logmfcc/<id>.npy "
                        "(input.features.root of a localize config)")
    parser.add_argument("--i3d-weights", metavar="PATH", help="local Inception-3D RGB weights file (the public ports' "
                        "key format, e.g. Conv3d_1a_7x7.conv3d.weight); Kinetics-400 RGB for TSL-300")
    parser.add_argument("--random-init", action="store_true", help="no weights file: a randomly initialised I3D "
                        "(tests, synthetic data only; the weights are written into --out so predict uses the same)")
    parser.add_argument("--i3d-width", type=float, default=None, help="channel width multiplier of I3D (default 1; "
                        "with --random-init e.g. 0.25 for a small CPU run; with weights: inferred from the file)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --random-init (default 0)")
    parser.add_argument("--by-subset", action="store_true", help="write <out>/<subset>/{rgb,logmfcc}/ (the TSL-300 tree)")
    parser.add_argument("--video-root", default=None, help="where the videos are (default: beside the annotation)")
    parser.add_argument("--batch-steps", type=int, default=4, help="16-frame chunks through I3D at once (memory bound)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--allow-silent-audio", action="store_true", help="videos without audio get silence (default: skipped)")
    parser.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is not a terminal")


def spec_from_args(args, out: Path) -> ExtractorSpec:
    if bool(args.i3d_weights) == bool(args.random_init):
        raise AffectkitError("features: give --i3d-weights PATH (a local I3D RGB weights file, e.g. Kinetics-400) or, "
                             "for tests and synthetic data only, --random-init (random I3D weights; not I3D features)"
                             if not args.i3d_weights else "features: --i3d-weights and --random-init exclude each other")
    if args.random_init:
        width = 1.0 if args.i3d_width is None else float(args.i3d_width)
        weights = out / f"i3d_random_w{width:g}_seed{args.seed}.pt"
        if not weights.is_file():
            write_random_i3d(weights, width=width, seed=args.seed)
        print(f"WARNING: --random-init: a randomly initialised I3D (width {width:g}, seed {args.seed}) is used, "
              f"written to {weights}; these are not Kinetics I3D features", file=sys.stderr)
    else:
        weights = Path(args.i3d_weights).resolve()
    from ..models.i3d import load_i3d_weights

    model = load_i3d_weights(weights, width=args.i3d_width if not args.random_init else None)  # fails loudly
    return ExtractorSpec(i3d_weights=str(Path(weights).resolve()), i3d_sha256=file_sha256(weights),
                         i3d_width=model.width, random_init=bool(args.random_init), feature_dim=model.feature_dim,
                         batch_steps=max(1, int(args.batch_steps)))


def run_from_args(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = spec_from_args(args, out)
    videos, problems = dataset_videos(args.dataset, args.video_root)
    for what, why in problems:
        print(f"skipped: {what}: {why}", file=sys.stderr)
    report = cache_features(videos, out, spec, by_subset=args.by_subset, device=args.device,
                            allow_silent_audio=args.allow_silent_audio, progress=True if args.progress else None)
    n_bad = len(report["failed"]) + len(problems)
    speed = f", {report['video_seconds_per_second']} s of video per second" if report["video_seconds_per_second"] else ""
    print(f"{out}: {report['done']} videos extracted, {report['already_done']} already done, {n_bad} skipped{speed}"
          + (" (random I3D weights)" if spec.random_init else ""))
    return 1 if n_bad else 0
