"""Text side of a video: subtitles and transcripts, and the emotion lexicon the synthetic set speaks.

- :func:`read_subtitles` reads ``.srt`` (SubRip), ``.vtt`` (WebVTT) and plain ``.txt`` transcripts into
  :class:`SubtitleCue` s ``(start_s, end_s, text)``; a transcript is one cue with times ``None``.
- :func:`text_in_window` / :func:`cues_in_window`: the cues that overlap a time window (e.g. a clip
  or a temporal segment of an untrimmed video).
- :func:`words_in_window`: word-level alignment: the words whose own time span overlaps a window (word
  times from speech recognition, else spread over their cue in proportion to their length:
  :func:`cue_words`); ``text_in_window(..., align="word")`` joins them.
- :func:`read_embedded_subtitles`: the text subtitle stream inside a video container (mkv, mp4, ...).
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


class TimedWord(NamedTuple):
    """One word of a cue with its time span in seconds (``None`` for an untimed transcript)."""

    start: float | None
    end: float | None
    word: str


class SubtitleCue(NamedTuple):
    """One cue: ``start``/``end`` in seconds (``None`` for an untimed transcript) and its ``text``.
    ``words``: the cue's :class:`TimedWord` s where the source timed them (:class:`RecognisedCue`), else None."""

    start: float | None
    end: float | None
    text: str

    @property
    def words(self) -> tuple[TimedWord, ...] | None:
        return None


class RecognisedCue(SubtitleCue):
    """A :class:`SubtitleCue` (equal to, and unpacking as, its ``(start, end, text)``) that also carries the
    time of each of its words (speech recognition): ``RecognisedCue(start, end, text, words)``."""

    def __new__(cls, start, end, text, words=()):
        self = super().__new__(cls, start, end, text)
        self._words = tuple(w if isinstance(w, TimedWord) else TimedWord(*w) for w in words)
        return self

    @property
    def words(self) -> tuple[TimedWord, ...] | None:
        return self._words or None

    def __repr__(self) -> str:
        return f"RecognisedCue(start={self.start!r}, end={self.end!r}, text={self.text!r}, words={len(self._words)})"


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
def _window(start, end) -> tuple[float, float]:
    if start is not None and end is not None and end < start:
        raise ValueError(f"time window ends ({end}) before it starts ({start})")
    return (float("-inf") if start is None else float(start)), (float("inf") if end is None else float(end))


def _overlaps(s, e, lo: float, hi: float) -> bool:
    """Whether the span ``[s, e)`` overlaps ``[lo, hi)``; an untimed span always does, a zero-length one
    when it lies in the window."""
    if s is None or e is None:
        return True
    if s == e:
        return lo <= s < hi or s == lo == hi
    return s < hi and e > lo


def cues_in_window(cues: Iterable[tuple], start: float | None = None, end: float | None = None) -> list[SubtitleCue]:
    """The cues overlapping ``[start, end)`` seconds (``None``: unbounded). Untimed cues (a transcript)
    cover the whole video and are always kept; a zero-length cue counts if it lies in the window."""
    lo, hi = _window(start, end)
    return [c if isinstance(c, SubtitleCue) else SubtitleCue(*c) for c in cues if _overlaps(c[0], c[1], lo, hi)]


def cue_words(cue: tuple) -> list[TimedWord]:
    """The words of a cue with their time spans: the cue's own ``words`` when it has them (speech
    recognition), else its whitespace-separated words spread over ``[start, end]`` in proportion to their
    length in characters (plus one for the space after each), consecutive and covering the cue. An
    untimed cue's words are untimed."""
    c = cue if isinstance(cue, SubtitleCue) else SubtitleCue(*cue)
    if c.words:
        return list(c.words)
    words = c.text.split()
    if c.start is None or c.end is None:
        return [TimedWord(None, None, w) for w in words]
    weights = [len(w) + 1 for w in words]
    total, acc, out = float(sum(weights)), 0.0, []
    span = float(c.end) - float(c.start)
    for w, k in zip(words, weights):
        a = float(c.start) + span * acc / total
        acc += k
        out.append(TimedWord(a, float(c.start) + span * acc / total, w))
    return out


def words_in_window(cues: Iterable[tuple], start: float | None = None, end: float | None = None) -> list[TimedWord]:
    """Word-level alignment: the words (:func:`cue_words`) whose time span overlaps ``[start, end)``, in
    time order (cue order, then word order). A word spanning a window edge belongs to both windows."""
    lo, hi = _window(start, end)
    out = []
    for c in cues_in_window(cues, start, end):
        out.extend(w for w in cue_words(c) if _overlaps(w.start, w.end, lo, hi))
    return out


def text_in_window(cues: Iterable[tuple], start: float | None = None, end: float | None = None, sep: str = " ",
                   *, align: str = "cue") -> str:
    """The text overlapping ``[start, end)`` seconds; ``""`` when none does. ``align="cue"``: the whole text
    of every cue overlapping the window, joined by ``sep`` (line breaks inside a cue become spaces);
    ``align="word"``: only the words that overlap it (:func:`words_in_window`), joined by spaces."""
    if align == "word":
        return " ".join(w.word for w in words_in_window(cues, start, end))
    if align != "cue":
        raise ValueError(f"align must be 'cue' or 'word', got {align!r}")
    parts = (" ".join(c.text.split()) for c in cues_in_window(cues, start, end))
    return sep.join(p for p in parts if p)


# ---------------------------------------------------------------------------------------------
# subtitle streams inside a video container
_BITMAP_SUBTITLES = ("dvd_subtitle", "dvdsub", "hdmv_pgs_subtitle", "pgssub", "dvb_subtitle", "dvbsub", "xsub")


def read_embedded_subtitles(path: str | os.PathLike, *, stream: int | None = None) -> list[SubtitleCue] | None:
    """The cues of a text subtitle stream inside a video container (SubRip, ASS/SSA, WebVTT or mov_text
    in mkv, mp4, mov, webm ...), markup removed, in time order; ``None`` when the file has no text
    subtitle stream (bitmap subtitles such as DVD or PGS carry no text and are passed over).

    ``stream``: the index among the file's subtitle streams (default: the first text one, preferring one
    tagged English when there are several). A file that cannot be opened raises
    :class:`~affectkit.errors.MediaError` naming it."""
    import av

    path = Path(path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise MediaError(path, f"cannot open the container to read its subtitles ({err})") from None
    with container:
        subs = [s for s in container.streams.subtitles if s.codec_context.name not in _BITMAP_SUBTITLES]
        if not subs:
            return None
        if stream is not None:
            if not 0 <= stream < len(container.streams.subtitles):
                raise MediaError(path, f"subtitle stream {stream} requested; the file has {len(container.streams.subtitles)}")
            chosen = container.streams.subtitles[stream]
            if chosen not in subs:
                raise MediaError(path, f"subtitle stream {stream} is a bitmap stream ({chosen.codec_context.name}): no text")
        else:
            english = [s for s in subs if str(s.metadata.get("language", "")).lower() in ("en", "eng")]
            chosen = (english or subs)[0]
        cues = []
        try:
            for packet in container.demux(chosen):
                if packet.pts is None:
                    continue
                tb = packet.time_base or chosen.time_base
                start = float(packet.pts * tb)
                end = start + float((packet.duration or 0) * tb)
                texts = []
                for sub in chosen.codec_context.decode(packet):
                    raw = getattr(sub, "dialogue", None)
                    if raw is None:  # older PyAV: the ASS event line, text after the 8th comma
                        raw = getattr(sub, "ass", b"").split(b",", 8)[-1]
                    if isinstance(raw, bytes):
                        raw = raw.decode("utf-8", "replace")
                    texts.append(raw.replace("\\N", "\n").replace("\\n", "\n"))
                text = _clean("\n".join(t for t in texts if t.strip()))
                if text:
                    cues.append(SubtitleCue(round(start, 3), round(max(end, start), 3), text))
        except av.FFmpegError as err:
            raise MediaError(path, f"subtitle stream {chosen.index} cannot be decoded ({err})") from None
    cues.sort(key=lambda c: (c.start, c.end))
    return cues
