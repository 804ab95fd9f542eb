"""Text side of a video: subtitles and transcripts, and the emotion lexicon the synthetic set speaks.

- :func:`read_subtitles` reads ``.srt`` (SubRip), ``.vtt`` (WebVTT) and plain ``.txt`` transcripts into
  :class:`SubtitleCue` s ``(start_s, end_s, text)``; a transcript is one cue with times ``None``.
- :func:`text_in_window` / :func:`cues_in_window`: the cues that overlap a time window (e.g. a clip
  or a temporal segment of an untrimmed video).
- :func:`read_srt` / :func:`write_srt`: the SRT reader and writer of :mod:`affectkit.data.synth`.
- ``EMOTION_WORDS``: class -> words (the words the synthetic subtitles use), for lexicon methods.

Errors are :class:`SubtitleError`, both a :class:`~affectkit.errors.MediaError` (a record's sidecar file)
and a :class:`~affectkit.errors.DatasetError`; ``str(err)`` reads ``"<path>: line <n>: <problem>"``.
"""
from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

from ..errors import DatasetError, MediaError

SUBTITLE_EXTENSIONS = (".srt", ".vtt", ".txt")

# The emotion lexicon of the synthetic subtitles (8 words a class), the templates of its emotion lines
# and its neutral sentences. Changing any of these changes the synthetic set.
LEXICON: dict[str, tuple[str, ...]] = {
    "Anger": ("furious", "angry", "outraged", "hate", "rage", "infuriating", "mad", "hostile"),
    "Anticipation": ("soon", "waiting", "eager", "expecting", "countdown", "ready", "hopeful", "tomorrow"),
    "Disgust": ("gross", "disgusting", "revolting", "nasty", "rotten", "vile", "sickening", "filthy"),
    "Fear": ("scared", "afraid", "terrified", "danger", "panic", "frightening", "nervous", "dread"),
    "Joy": ("wonderful", "happy", "delighted", "great", "love", "laughing", "fantastic", "cheerful"),
    "Sadness": ("sad", "lonely", "crying", "miss", "grief", "heartbroken", "gloomy", "sorrow"),
    "Surprise": ("wow", "unexpected", "suddenly", "unbelievable", "shocked", "amazing", "astonished", "whoa"),
    "Trust": ("reliable", "honest", "safe", "trust", "loyal", "depend", "faithful", "confident"),
}
EMOTION_WORDS: dict[str, list[str]] = {c: list(words) for c, words in LEXICON.items()}
EMOTION_TEMPLATES = (
    "{a}, really {b}", "this is {a}", "i feel {a} about it", "{a}! so {b}", "honestly, {a}",
    "it is {a} and {b}", "so {a} right now", "{a}... {b}",
)
NEUTRAL_LINES = (
    "the bus leaves at nine", "please pass the salt", "we walked to the station", "the report is on the desk",
    "it might rain later", "turn left at the corner", "the meeting starts at noon", "she bought some bread",
    "the box is on the table", "they painted the fence", "the train is on platform two", "he opened the window",
    "there are four chairs", "the shop closes at six", "we need more paper", "the road goes north",
)


class SubtitleError(MediaError, DatasetError):
    """A subtitle or transcript file is missing, unreadable or malformed (``"<path>: line <n>: <problem>"``)."""

    def __init__(self, path: str | os.PathLike, problem: str, line: int | None = None):
        self.line = line
        super().__init__(path, f"line {line}: {problem}" if line is not None else problem)


class SubtitleCue(NamedTuple):
    """One cue: ``start``/``end`` in seconds (``None`` for an untimed transcript) and its ``text``."""

    start: float | None
    end: float | None
    text: str


# ---------------------------------------------------------------------------------------------
def format_srt_time(seconds: float) -> str:
    """``HH:MM:SS,mmm`` (negative times clamp to 0)."""
    ms = int(round(max(0.0, seconds) * 1000))
    h, ms = divmod(ms, 3600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


_TIME = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?$")


def _parse_srt_time(text: str) -> float:
    """Seconds of ``HH:MM:SS,mmm`` / ``HH:MM:SS.mmm`` / ``MM:SS.mmm`` (WebVTT); ``ValueError`` if malformed."""
    m = _TIME.match(text.strip())
    if m is None:
        raise ValueError(f"bad time {text.strip()!r} (expected HH:MM:SS,mmm)")
    h, mi, s, frac = m.groups()
    if int(mi) > 59 or int(s) > 59:
        raise ValueError(f"bad time {text.strip()!r}: minutes and seconds must be below 60")
    return int(h or 0) * 3600 + int(mi) * 60 + int(s) + (int(frac.ljust(3, "0")) / 1000.0 if frac else 0.0)


def _timing(path, line: str, lineno: int) -> tuple[float, float]:
    """(start, end) of a ``start --> end [settings]`` line."""
    a, _, rest = line.partition("-->")
    z = rest.strip().split()[0] if rest.strip() else ""
    try:
        start, end = _parse_srt_time(a), _parse_srt_time(z)
    except ValueError as err:
        raise SubtitleError(path, f"{err} in timing line {line.strip()!r}", lineno) from None
    if end < start:
        raise SubtitleError(path, f"cue ends before it starts ({line.strip()!r})", lineno)
    return start, end


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise SubtitleError(path, "subtitle file not found")
    try:
        return path.read_text(encoding="utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as err:
        raise SubtitleError(path, f"not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise SubtitleError(path, f"cannot be read ({err.strerror or err})") from None


def _blocks(text: str) -> Iterable[tuple[int, list[str]]]:
    """Blank-line separated blocks as (1-based number of their first line, their lines)."""
    block: list[str] = []
    first = 0
    for i, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            if not block:
                first = i
            block.append(line.rstrip())
        elif block:
            yield first, block
            block = []
    if block:
        yield first, block


def _parse_srt(path, text: str) -> list[SubtitleCue]:
    cues = []
    for first, rows in _blocks(text):
        # "index" then "start --> end"; a block without the index line is accepted
        k = 0 if "-->" in rows[0] else 1
        if len(rows) <= k or "-->" not in rows[k]:
            raise SubtitleError(path, f"malformed SRT block {rows[0][:60]!r}: expected a cue number and a 'start --> end' line",
                                first)
        start, end = _timing(path, rows[k], first + k)
        cues.append(SubtitleCue(start, end, "\n".join(rows[k + 1:])))
    return cues


def _parse_vtt(path, text: str) -> list[SubtitleCue]:
    blocks = list(_blocks(text))
    if not blocks or not re.match(r"^WEBVTT(?:$|[ \t])", blocks[0][1][0]):
        raise SubtitleError(path, "not a WebVTT file (the first line must be 'WEBVTT')", blocks[0][0] if blocks else 1)
    cues = []
    for first, rows in blocks[1:]:
        if rows[0].startswith(("NOTE", "STYLE", "REGION")) and "-->" not in rows[0]:
            continue
        k = 0 if "-->" in rows[0] else 1  # an optional cue identifier line
        if len(rows) <= k or "-->" not in rows[k]:
            raise SubtitleError(path, f"malformed WebVTT cue {rows[0][:60]!r}: no 'start --> end' line", first)
        start, end = _timing(path, rows[k], first + k)
        cues.append(SubtitleCue(start, end, "\n".join(rows[k + 1:])))
    return cues


_TAG = re.compile(r"<[^>]*>")


def _clean(text: str) -> str:
    """Cue text without markup (``<i>``, ``<v Speaker>``, ``<00:01.000>``, ``{\\an8}``) or entities."""
    text = re.sub(r"\{\\[^}]*\}", "", _TAG.sub("", text))
    return html.unescape(text).replace("\u00a0", " ").strip()


def read_srt(path: str | os.PathLike) -> list[SubtitleCue]:
    """Parse an SRT file into (start_s, end_s, text) cues, text as written (markup kept)."""
    path = Path(path)
    return _parse_srt(path, _read_text(path))


def read_subtitles(path: str | os.PathLike, *, strip_markup: bool = True) -> list[SubtitleCue]:
    """Cues of a ``.srt``, ``.vtt`` or ``.txt`` file, in file order.

    A ``.txt`` transcript is one cue ``(None, None, text)`` covering the whole video (no cue when the
    file is blank). With ``strip_markup`` tags and HTML entities are removed from cue texts.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in SUBTITLE_EXTENSIONS:
        raise SubtitleError(path, f"unsupported subtitle format {ext or '(no extension)'!r}; expected {', '.join(SUBTITLE_EXTENSIONS)}")
    text = _read_text(path)
    if ext == ".txt":
        body = text.strip()
        return [SubtitleCue(None, None, body)] if body else []
    cues = _parse_srt(path, text) if ext == ".srt" else _parse_vtt(path, text)
    return [SubtitleCue(c.start, c.end, _clean(c.text)) for c in cues] if strip_markup else cues


def write_srt(path: str | os.PathLike, cues: Sequence[tuple[float, float, str]]) -> None:
    """Write (start_s, end_s, text) cues as an SRT file (atomically)."""
    lines = []
    for i, (s, e, text) in enumerate(cues, start=1):
        lines += [str(i), f"{format_srt_time(s)} --> {format_srt_time(e)}", text, ""]
    path = os.fspath(path)
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
def cues_in_window(cues: Iterable[tuple[float | None, float | None, str]], start: float | None = None,
                   end: float | None = None) -> list[SubtitleCue]:
    """The cues overlapping ``[start, end)`` seconds (``None``: unbounded). Untimed cues (a transcript)
    cover the whole video and are always kept; a zero-length cue counts if it lies in the window."""
    if start is not None and end is not None and end < start:
        raise ValueError(f"time window ends ({end}) before it starts ({start})")
    lo = float("-inf") if start is None else float(start)
    hi = float("inf") if end is None else float(end)
    out = []
    for s, e, text in cues:
        if s is None or e is None:
            keep = True
        elif s == e:
            keep = lo <= s < hi or s == lo == hi
        else:
            keep = s < hi and e > lo
        if keep:
            out.append(SubtitleCue(s, e, text))
    return out


def text_in_window(cues: Iterable[tuple[float | None, float | None, str]], start: float | None = None,
                   end: float | None = None, sep: str = " ") -> str:
    """The text of the cues overlapping ``[start, end)`` seconds, joined by ``sep`` (line breaks inside
    a cue become spaces); ``""`` when none does."""
    parts = (" ".join(c.text.split()) for c in cues_in_window(cues, start, end))
    return sep.join(p for p in parts if p)
