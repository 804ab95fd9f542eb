"""Emotion lexicons: the emotional words of a text, each with (sentiment, emotion, degree), as MART needs.

MART (spec A.4) keeps, for every word of a subtitle window, its *sentiment category* c_s
(positive/negative), *emotion category* c_e and *degree* i_e; the lexicon verification (spec A.6)
then compares them with the video's class, its polarity and a normalised score, so ``emotion`` is
spelt as the dataset's class names (:data:`affectkit.data.datasets.DATASET_PRESETS`: ``"Joy"`` for
VE-8, ``"joy"`` for Ekman-6) and ``degree`` lies in ``[0, 1]`` for SenticNet.

>>> lex = get_lexicon("synthetic")
>>> [(h.text, h.emotion, h.sentiment) for h in lex.find("Wow... I am SO happy!")]
[('Wow', 'Surprise', 'positive'), ('happy', 'Joy', 'positive')]

Backends (one interface, :class:`Lexicon`: ``find(text) -> list[LexiconHit]``, ``lookup_word(word)``):

- :class:`SenticNetLexicon` (the default, what the paper uses): SenticNet 9 as shipped by the PyPI
  package ``sentic==0.0.9`` (293,413 English concepts, 1-5 words, each with four sentic values, one
  or two mood tags, a polarity label and a polarity value in [-1, 1]; **non-commercial licence**).
  The package stores the knowledge base as a Python module (``sentic.babel.data_en``, a dict
  ``concept -> [pleasantness, attention, sensitivity, aptitude, mood1, mood2, label, value, 5 semantics]``);
  we import that dict directly (about 0.6 s from its ``.pyc``; without a ``.pyc``, e.g. after
  ``pip install --no-compile``, the file is parsed as text instead, about 5 s, rather than compiled,
  about 20 s and 4 GB) and cache it for the process (about 110 MB). The package's own classes
  are not used.
- :class:`NRCLexicon`: the NRC Word-Emotion Association Lexicon (6,468 words) as the JSON file inside
  the package ``nrclex`` (read directly; the package's text helpers need NLTK data from the network).
  NRC associations are binary, so **every hit has degree 1.0** (polarity +1 / -1, 0 when neutral).
- :class:`WordListLexicon`: a dict ``class -> words`` with no dependency; :meth:`WordListLexicon.synthetic`
  is built from :data:`affectkit.data.text.LEXICON`, the words the synthetic set's subtitles use.
  Degree 1.0; sentiment from the kit's VE-8 / Ekman-6 polarity groups (:data:`CLASS_POLARITY`).

Matching (:meth:`Lexicon.find`): the text is split into words (letters and digits, with inner
apostrophes: ``don't``; everything else, hyphens included, separates words), lower-cased, and
lemmatised. At each word the longest concept first (up to the longest concept of the lexicon,
``max_words``) is tried, as SenticNet stores multi-word concepts as ``a_b`` / ``a_b_c``: for an n-gram
the surface words joined by ``-`` (only when the text joined them by a hyphen), then by ``_``, then
the lemmas joined by ``_``; a single word is tried as written, then its lemma. Greedy: a match
consumes its words. Words not in the lexicon are neutral: they are not returned by ``find``, and
``lookup_word`` returns a neutral hit (``concept=None``, degree 0) for them.

Lemmatisation is offline: ``simplemma`` (its English dictionary ships in its wheel; about 0.2 s to
load once, under a microsecond a cached word) when it is installed, else a small rule-based
English suffix stripper (:func:`rule_lemmas`; it proposes candidates, e.g. ``hated -> hat, hate``,
and the first one the lexicon knows is taken). :func:`default_lemmatizer` says which one runs;
``lemmatizer=`` chooses (``"auto"``, ``"simplemma"``, ``"rules"``, ``"none"``).

Emotion categories: SenticNet 9's mood tags are the 24 emotions of the revised Hourglass of Emotions
(four dimensions, three positive and three negative levels each). Neither the paper nor its code maps
them to a dataset's classes; :data:`MOOD_TO_VE8` and :data:`MOOD_TO_EK6` are **OUR ASSUMPTION** (see
their comments). A hit's ``emotion`` is its first mood tag that maps (spec A.4 [REC]), ``None`` when
none does. ``label_set`` is ``"ve8"``, ``"ek6"``, ``None`` (the raw first tag) or a list of class names
(a tag is mapped through the VE-8 table, then kept if that class, or the raw tag, is in the list,
compared case-insensitively and returned as the list spells it).

Sentiment: SenticNet's polarity label (the sign of its polarity value when the label is missing);
degree = |polarity value|. ``min_degree`` drops weaker hits from ``find``; by default hits with a
non-zero degree are kept, as the original code's ``polarity_value != 0`` filter (SenticNet 9 has no
zero-polarity concept, so there every concept found is kept).

A missing optional package raises :class:`LexiconUnavailableError` (a :class:`~affectkit.errors.ConfigError`)
that names the package and the ``pip install`` line.
"""
from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import json
import os
import re
import sys
import threading
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

from ..errors import ConfigError
from .datasets import DATASET_PRESETS, EK6_CLASSES, POLARITY_PRESETS, VE8_CLASSES

__all__ = [
    "LexiconHit", "Lexicon", "SenticNetLexicon", "NRCLexicon", "WordListLexicon", "LexiconUnavailableError",
    "get_lexicon", "resolve_lexicon", "window_words", "LEXICON_NAMES", "MOOD_TO_VE8", "MOOD_TO_EK6", "UNMAPPED", "SENTICNET_MOOD_TAGS",
    "NRC_TO_VE8", "NRC_TO_EK6", "NRC_PRIORITY", "CLASS_POLARITY", "REQUIREMENTS", "tokenize", "rule_lemmas",
    "default_lemmatizer", "senticnet_mood_tags", "parse_senticnet_source", "Token",
]

# pip requirement of each optional package (the error message prints these)
REQUIREMENTS = {"sentic": "sentic==0.0.9", "nrclex": "nrclex==4.1.0", "simplemma": "simplemma==2.0.0"}
LEXICON_NAMES = ("senticnet", "nrc", "synthetic")

# ---------------------------------------------------------------------------------------------
# Mood tags -> label sets. OUR ASSUMPTION: neither the paper nor its code gives a mapping.
# SenticNet 9 (sentic 0.0.9) has exactly these 24 tags, the revised Hourglass of Emotions
# (Susanto et al. 2020), per dimension  positive levels (strong -> weak) | negative levels (weak -> strong):
#   Introspection: ecstasy, joy, contentment     | melancholy, sadness, grief
#   Temper:        bliss, calmness, serenity     | annoyance, anger, rage
#   Attitude:      delight, pleasantness, acceptance | dislike, disgust, loathing
#   Sensitivity:   enthusiasm, eagerness, responsiveness | anxiety, fear, terror
# Each half-dimension goes to one Plutchik (VE-8) class: introspection -> Joy / Sadness; temper ->
# Joy (Plutchik's serenity is mild joy; he has no "calm") / Anger; attitude -> Trust (acceptance is
# Plutchik's mild trust, delight ~ admiration) / Disgust; sensitivity -> Anticipation (eagerness,
# interest) / Fear. No SenticNet 9 tag means surprise, so SenticNet never yields Surprise.
# The last three keys are SenticNet 5's tags (the paper's KB, spec A.4), absent from sentic 0.0.9.
SENTICNET_MOOD_TAGS = frozenset({
    "ecstasy", "joy", "contentment", "melancholy", "sadness", "grief",
    "bliss", "calmness", "serenity", "annoyance", "anger", "rage",
    "delight", "pleasantness", "acceptance", "dislike", "disgust", "loathing",
    "enthusiasm", "eagerness", "responsiveness", "anxiety", "fear", "terror",
})
MOOD_TO_VE8: dict[str, str] = {
    "ecstasy": "Joy", "joy": "Joy", "contentment": "Joy",
    "melancholy": "Sadness", "sadness": "Sadness", "grief": "Sadness",
    "bliss": "Joy", "calmness": "Joy", "serenity": "Joy",
    "annoyance": "Anger", "anger": "Anger", "rage": "Anger",
    "delight": "Trust", "pleasantness": "Trust", "acceptance": "Trust",
    "dislike": "Disgust", "disgust": "Disgust", "loathing": "Disgust",
    "enthusiasm": "Anticipation", "eagerness": "Anticipation", "responsiveness": "Anticipation",
    "anxiety": "Fear", "fear": "Fear", "terror": "Fear",
    "surprise": "Surprise", "interest": "Anticipation", "admiration": "Trust",  # SenticNet 5 tags
}
# Ekman-6 (the kit's class names, lower-case): the negative half-dimensions as in VE-8; every positive
# tag -> joy, Ekman's only pleasant class (so Trust / Anticipation-like tags become joy).
MOOD_TO_EK6: dict[str, str] = {
    tag: ("joy" if POLARITY_PRESETS["ve8"][cls] == "positive" and cls != "Surprise" else cls.lower())
    for tag, cls in MOOD_TO_VE8.items()
}
# Tags found in the data that are deliberately left unmapped (none in SenticNet 9). The tests check
# that every tag of the installed data is mapped or listed here, so new tags fail loudly.
UNMAPPED: frozenset[str] = frozenset()

# NRC: its eight Plutchik emotions map to themselves; "positive" / "negative" are sentiment only.
NRC_EMOTIONS = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust")
NRC_TO_VE8 = {e: e.capitalize() for e in NRC_EMOTIONS}
NRC_TO_EK6 = {e: e for e in NRC_EMOTIONS if e in EK6_CLASSES}
# NRC lists a word's emotions alphabetically, without rank; we order them (OUR ASSUMPTION) by agreement
# with the word's sentiment, then by this priority, so "hate" -> anger, "happy" -> joy, "surprise" -> surprise.
NRC_PRIORITY = ("anger", "disgust", "fear", "sadness", "surprise", "joy", "trust", "anticipation")

# Class -> sentiment of the word-list backend: the kit's PCCE groups (VE-8: Anticipation, Joy, Surprise,
# Trust positive; Ekman-6: joy, surprise positive), keyed lower-case.
CLASS_POLARITY: dict[str, str] = {c.lower(): p for preset in POLARITY_PRESETS.values() for c, p in preset.items()}


class LexiconUnavailableError(ConfigError):
    """An optional package a lexicon (or lemmatiser) needs is not installed; the message has the pip line."""

    def __init__(self, what: str, package: str, note: str = ""):
        self.package = package
        self.requirement = REQUIREMENTS.get(package, package)
        super().__init__(f"{what} needs the Python package {package!r}{note}, which is not installed: "
                         f"pip install {self.requirement}")


# ---------------------------------------------------------------------------------------------
class LexiconHit(NamedTuple):
    """One emotional word or concept of a text (or a :meth:`Lexicon.lookup_word` answer).

    ``text``: the words as written; ``start_word`` / ``end_word``: their word indices (end exclusive,
    as a slice of :func:`tokenize`); ``char_span``: ``(start, end)`` characters (end exclusive);
    ``concept``: the lexicon key that matched (``None`` when not in the lexicon); ``sentiment``:
    ``positive`` / ``negative`` / ``neutral``; ``emotion``: the class of the chosen label set or ``None``;
    ``mood_tags``: the raw tags (SenticNet mood tags without ``#``, NRC emotions, word-list classes);
    ``degree``: ``|polarity|`` (1.0 for NRC and word lists); ``polarity``: signed.
    """

    text: str
    start_word: int
    end_word: int
    char_span: tuple[int, int]
    concept: str | None
    sentiment: str
    emotion: str | None
    mood_tags: tuple[str, ...]
    degree: float
    polarity: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples as lists)."""
        return {"text": self.text, "start_word": self.start_word, "end_word": self.end_word,
                "char_span": list(self.char_span), "concept": self.concept, "sentiment": self.sentiment,
                "emotion": self.emotion, "mood_tags": list(self.mood_tags), "degree": float(self.degree),
                "polarity": float(self.polarity)}


class _Entry(NamedTuple):
    sentiment: str
    polarity: float
    degree: float
    tags: tuple[str, ...]


class Token(NamedTuple):
    """A word of a text: lower-cased ``word`` and its ``(start, end)`` characters in the text."""

    word: str
    start: int
    end: int


_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")


def tokenize(text: str) -> list[Token]:
    """The words of ``text``, lower-cased (curly apostrophes become ``'``), with character offsets."""
    return [Token(m.group().lower().replace("\u2019", "'"), m.start(), m.end()) for m in _WORD.finditer(text)]


# ---------------------------------------------------------------------------------------------
# Lemmatisers: a function word -> tuple of candidate lemmas (the word itself excluded), cached.
_VOWELS = set("aeiou")


def rule_lemmas(word: str) -> tuple[str, ...]:
    """Candidate lemmas of an English word by suffix stripping (the fallback when simplemma is absent).

    Covers plurals and 3rd person (``parties -> party``, ``boxes -> box``, ``hates -> hate``), past
    and participles (``cried -> cry``, ``hated -> hat, hate``, ``stopped -> stop``, ``crying -> cry``,
    ``running -> run``, ``making -> make``), comparatives (``happier -> happy``), adverbs (``sadly -> sad``)
    and ``'s`` / ``n't``. Irregular forms (``ran``, ``better``) are not handled.
    """
    w = word
    out: list[str] = []

    def add(c: str) -> None:
        if len(c) >= 2 and c != word and c not in out:
            out.append(c)

    if w.endswith("'s"):
        add(w[:-2])
        return tuple(out)
    if w.endswith("n't"):
        add(w[:-3])
        return tuple(out)
    if len(w) <= 3:
        return ()

    def undouble(stem: str) -> None:
        if len(stem) >= 3 and stem[-1] == stem[-2] and stem[-1] not in _VOWELS and stem[-1] not in "lsz":
            add(stem[:-1])

    if w.endswith("ies") or w.endswith("ied"):
        add(w[:-3] + "y")
        add(w[:-1])
    elif w.endswith("ing") and len(w) >= 5:
        stem = w[:-3]
        undouble(stem)
        add(stem)
        add(stem + "e")
    elif w.endswith("ed") and len(w) >= 4:
        stem = w[:-2]
        undouble(stem)
        add(w[:-1])  # hated -> hate
        add(stem)    # wanted -> want
    elif w.endswith(("ches", "shes", "sses", "xes", "zes", "oes")):
        add(w[:-2])
        add(w[:-1])
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        add(w[:-1])
    elif w.endswith(("ier", "iest")):
        add(w[: -3 if w.endswith("ier") else -4] + "y")
    elif w.endswith("ily"):
        add(w[:-3] + "y")
    elif w.endswith("ly") and len(w) >= 5:
        add(w[:-2])
        add(w[:-2] + "e")
    elif w.endswith("est") and len(w) >= 6:
        undouble(w[:-3])
        add(w[:-3])
        add(w[:-2])
    elif w.endswith("er") and len(w) >= 5:
        undouble(w[:-2])
        add(w[:-2])
        add(w[:-1])
    return tuple(out)


_cached_rules = functools.lru_cache(maxsize=1 << 16)(rule_lemmas)


def _no_lemmas(word: str) -> tuple[str, ...]:
    return ()


@functools.lru_cache(maxsize=1)
def _simplemma_fn() -> Callable[[str], tuple[str, ...]] | None:
    try:
        simplemma = importlib.import_module("simplemma")
    except ImportError:
        return None

    @functools.lru_cache(maxsize=1 << 16)
    def lemmas(word: str) -> tuple[str, ...]:
        try:
            lemma = simplemma.lemmatize(word, lang="en").lower()
        except Exception:  # a lemmatiser failure must not stop the look-up: the word is tried as written
            return ()
        return (lemma,) if lemma and lemma != word else ()

    lemmas("crying")  # loads the English dictionary now, not at the first look-up
    return lemmas


def default_lemmatizer() -> str:
    """``"simplemma"`` when that package is installed, else ``"rules"`` (:func:`rule_lemmas`)."""
    return "simplemma" if _simplemma_fn() is not None else "rules"


def _lemmatizer(name: str) -> tuple[str, Callable[[str], tuple[str, ...]]]:
    key = (name or "none").lower()
    if key == "auto":
        key = default_lemmatizer()
    if key == "simplemma":
        fn = _simplemma_fn()
        if fn is None:
            raise LexiconUnavailableError("lemmatizer 'simplemma'", "simplemma")
        return key, fn
    if key == "rules":
        return key, _cached_rules
    if key == "none":
        return key, _no_lemmas
    raise ConfigError(f"unknown lemmatizer {name!r}; expected auto, simplemma, rules or none")


# ---------------------------------------------------------------------------------------------
class Lexicon:
    """Base class of the lexicons: subclasses give ``name``, ``max_words`` and ``_entry(concept)``.

    ``label_set``: ``"ve8"`` (default), ``"ek6"``, ``None`` (raw first tag) or a list of class names.
    ``min_degree``: :meth:`find` keeps hits with ``degree > 0`` and ``degree >= min_degree``.
    ``lemmatizer``: ``"auto"`` (simplemma if installed, else rules), ``"simplemma"``, ``"rules"``, ``"none"``.
    Instances are read-only after construction and can be shared between threads.
    """

    name = "lexicon"
    max_words = 1
    _tables: Mapping[str, Mapping[str, str]] = {"ve8": {}, "ek6": {}}

    def __init__(self, label_set: str | Sequence[str] | None = "ve8", *, min_degree: float = 0.0,
                 lemmatizer: str = "auto"):
        if min_degree < 0:
            raise ConfigError(f"lexicon min_degree must be >= 0, got {min_degree}")
        self.min_degree = float(min_degree)
        self.lemmatizer, self._lemmas = _lemmatizer(lemmatizer)
        self.label_set, self.classes, self._resolve = self._label_resolver(label_set)
        self._emotion_cache: dict[tuple[str, ...], str | None] = {}

    # --- subclass interface -------------------------------------------------------------------
    def _entry(self, concept: str) -> _Entry | None:
        """The entry of a lexicon key (lower-case, words joined by ``_``), ``None`` when absent."""
        raise NotImplementedError

    def __contains__(self, concept: object) -> bool:
        return isinstance(concept, str) and self._entry(concept.lower().replace(" ", "_")) is not None

    # --- label sets ---------------------------------------------------------------------------
    def _label_resolver(self, label_set):
        if label_set is None:
            return None, None, lambda tag: tag
        if isinstance(label_set, str):
            key = label_set.lower()
            if key not in self._tables:
                raise ConfigError(f"unknown lexicon label_set {label_set!r}; expected one of "
                                  f"{', '.join(sorted(self._tables))}, None or a list of class names")
            table = self._tables[key]
            return key, list(DATASET_PRESETS[key]), table.get
        classes = [str(c) for c in label_set]
        if not classes:
            raise ConfigError("lexicon label_set is an empty class list")
        by_lower = {c.lower(): c for c in classes}
        ve8 = self._tables["ve8"]

        def resolve(tag: str) -> str | None:
            mapped = ve8.get(tag)
            if mapped is not None and mapped.lower() in by_lower:
                return by_lower[mapped.lower()]
            return by_lower.get(tag.lower())

        return "custom", classes, resolve

    def _emotion(self, tags: tuple[str, ...]) -> str | None:
        try:
            return self._emotion_cache[tags]
        except KeyError:
            pass
        emotion = next((c for c in map(self._resolve, tags) if c is not None), None)
        if len(self._emotion_cache) < 100_000:
            self._emotion_cache[tags] = emotion
        return emotion

    # --- look-ups -----------------------------------------------------------------------------
    def _hit(self, text: str, i: int, j: int, span: tuple[int, int], concept: str | None,
             entry: _Entry | None) -> LexiconHit:
        if entry is None:
            return LexiconHit(text, i, j, span, None, "neutral", None, (), 0.0, 0.0)
        return LexiconHit(text, i, j, span, concept, entry.sentiment, self._emotion(entry.tags), entry.tags,
                          entry.degree, entry.polarity)

    def _lemma(self, word: str) -> str:
        """The lemma used in multi-word keys: the first candidate the lexicon knows, else the first one."""
        cands = self._lemmas(word)
        if not cands:
            return word
        return next((c for c in cands if self._entry(c) is not None), cands[0])

    def _match(self, words: Sequence[str], lemmas: list[str | None], hyphen: Sequence[bool], i: int,
               k: int) -> tuple[str, _Entry] | None:
        """The entry of words[i:i+k]: surface (hyphenated, then ``_``), then lemmas."""
        entry = self._entry
        if k == 1:
            w = words[i]
            e = entry(w)
            if e is not None:
                return w, e
            for c in self._lemmas(w):
                e = entry(c)
                if e is not None:
                    return c, e
            return None
        span = words[i:i + k]
        if all(hyphen[i:i + k - 1]):
            key = "-".join(span)
            e = entry(key)
            if e is not None:
                return key, e
        key = "_".join(span)
        e = entry(key)
        if e is not None:
            return key, e
        for m in range(i, i + k):
            if lemmas[m] is None:
                lemmas[m] = self._lemma(words[m])
        lkey = "_".join(lemmas[i:i + k])  # type: ignore[arg-type]
        if lkey != key:
            e = entry(lkey)
            if e is not None:
                return lkey, e
        return None

    def _scan(self, text: str, tokens: Sequence[Token]) -> Iterable[LexiconHit]:
        words = [t.word for t in tokens]
        n = len(words)
        hyphen = [text[tokens[m].end:tokens[m + 1].start] == "-" for m in range(n - 1)]
        lemmas: list[str | None] = [None] * n
        i = 0
        while i < n:
            for k in range(min(self.max_words, n - i), 0, -1):
                found = self._match(words, lemmas, hyphen, i, k)
                if found is not None:
                    span = (tokens[i].start, tokens[i + k - 1].end)
                    yield self._hit(text[span[0]:span[1]], i, i + k, span, found[0], found[1])
                    i += k
                    break
            else:
                i += 1

    def find(self, text: str) -> list[LexiconHit]:
        """The emotional words / concepts of ``text``, in text order (neutral words left out)."""
        lo = self.min_degree
        return [h for h in self._scan(text, tokenize(text)) if h.degree > 0 and h.degree >= lo]

    def emotional_text(self, text: str) -> str:
        """The emotional words of ``text`` joined by spaces (the string the original code feeds on)."""
        return " ".join(h.text for h in self.find(text))

    def lookup_word(self, word: str) -> LexiconHit:
        """The entry of one word or concept (``"cried"``, ``"broken heart"``, ``"broken_heart"``): as
        written, then lemmatised; a neutral hit (``concept=None``, degree 0) when unknown. Not filtered
        by ``min_degree``."""
        tokens = tokenize(word.replace("_", " "))
        span = (0, len(word))
        if not tokens:
            return self._hit(word, 0, 0, span, None, None)
        words = [t.word for t in tokens]
        hyphen = [word[tokens[m].end:tokens[m + 1].start] == "-" for m in range(len(tokens) - 1)]
        found = self._match(words, [None] * len(words), hyphen, 0, len(words))
        return self._hit(word, 0, len(words), span, *(found if found is not None else (None, None)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(label_set={self.label_set!r}, lemmatizer={self.lemmatizer!r})"


# ---------------------------------------------------------------------------------------------
_LOCK = threading.Lock()
_CACHE: dict[str, Any] = {}


def _cached(key: str, load: Callable[[], Any]) -> Any:
    """Load once per process (double-checked under a lock, so threads share one copy)."""
    try:
        return _CACHE[key]
    except KeyError:
        pass
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = load()
        return _CACHE[key]


_SENTIC_MODULE = "sentic.babel.data_en"
_ITEM = re.compile(r"""'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|(None)|(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)""")


def parse_senticnet_source(path: str | os.PathLike) -> dict[str, list]:
    """The dict of a ``sentic.babel.data_<lang>.py`` file (``senticnet['key'] = [...]`` lines), read as
    text: about 5 s for English, where compiling the 42 MB module (no ``.pyc``) takes about 20 s and 4 GB."""
    data: dict[str, list] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith("senticnet["):
                continue
            if "\\" in line:  # escapes: rare, let Python read them
                key, _, value = line.partition("] = ")
                data[ast.literal_eval(key[len("senticnet["):])] = ast.literal_eval(value)
                continue
            vals: list[Any] = []
            for m in _ITEM.finditer(line, len("senticnet[")):
                s1, s2, none, num = m.groups()
                if none:
                    vals.append(None)
                elif num is not None:
                    vals.append(float(num) if any(c in num for c in ".eE") else int(num))
                else:
                    vals.append(s1 if s1 is not None else s2)
            if vals:
                data[vals[0]] = vals[1:]
    return data


def _load_senticnet() -> tuple[dict[str, list], int]:
    """The SenticNet 9 dict: the imported module when it is already imported or byte-compiled, else
    the source parsed as text (:func:`parse_senticnet_source`), so a missing ``.pyc`` costs 5 s, not 20 s
    and 4 GB of compiling."""
    module = sys.modules.get(_SENTIC_MODULE)
    if module is None:
        try:
            spec = importlib.util.find_spec(_SENTIC_MODULE)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin:
            raise LexiconUnavailableError("lexicon 'senticnet'", "sentic", " (SenticNet 9; non-commercial licence)")
        cached = spec.cached
        if cached and os.path.isfile(cached) and os.path.getmtime(cached) >= os.path.getmtime(spec.origin):
            module = importlib.import_module(_SENTIC_MODULE)
    data = module.senticnet if module is not None else parse_senticnet_source(spec.origin)
    return data, max(k.count("_") for k in data) + 1


def senticnet_mood_tags() -> set[str]:
    """Every mood tag (without ``#``) in the installed SenticNet data."""
    data, _ = _cached("senticnet", _load_senticnet)
    return {t.lstrip("#") for rec in data.values() for t in rec[4:6] if t}


class SenticNetLexicon(Lexicon):
    """SenticNet 9 from ``sentic==0.0.9`` (loaded once per process; see the module docstring)."""

    name = "senticnet"
    _tables = {"ve8": MOOD_TO_VE8, "ek6": MOOD_TO_EK6}

    def __init__(self, label_set: str | Sequence[str] | None = "ve8", *, min_degree: float = 0.0,
                 lemmatizer: str = "auto", max_words: int | None = None):
        self._data, longest = _cached("senticnet", _load_senticnet)
        self.max_words = longest if max_words is None else max(1, int(max_words))
        super().__init__(label_set, min_degree=min_degree, lemmatizer=lemmatizer)

    def _entry(self, concept: str) -> _Entry | None:
        rec = self._data.get(concept)
        if rec is None:
            return None
        value = float(rec[7]) if isinstance(rec[7], (int, float)) else 0.0
        label = rec[6] if rec[6] in ("positive", "negative") else (
            "positive" if value > 0 else "negative" if value < 0 else "neutral")
        tags = tuple(dict.fromkeys(t.lstrip("#") for t in rec[4:6] if t))
        return _Entry(label, value, abs(value), tags)

    def record(self, concept: str) -> dict[str, Any] | None:
        """The full SenticNet record of a concept (``"a_b"`` or ``"a b"``), ``None`` when absent."""
        rec = self._data.get(concept.lower().replace(" ", "_"))
        if rec is None:
            return None
        return {"pleasantness": rec[0], "attention": rec[1], "sensitivity": rec[2], "aptitude": rec[3],
                "mood_tags": [t.lstrip("#") for t in rec[4:6] if t], "polarity_label": rec[6],
                "polarity_value": rec[7], "semantics": list(rec[8:])}

    def __len__(self) -> int:
        return len(self._data)


def _load_nrc() -> dict[str, list[str]]:
    try:
        from importlib import resources
        path = resources.files(importlib.import_module("nrclex.data")).joinpath("nrc_en.json")
        with path.open("r", encoding="utf-8") as fh:
            return json.load(fh)
    except (ImportError, FileNotFoundError):
        raise LexiconUnavailableError("lexicon 'nrc'", "nrclex", " (the NRC emotion lexicon)") from None


class NRCLexicon(Lexicon):
    """The NRC Word-Emotion Association Lexicon from ``nrclex`` (its bundled JSON, read directly).

    Associations are binary: every hit has **degree 1.0**. Sentiment is NRC's positive / negative tag;
    when a word has both or neither, the majority polarity of its emotions (VE-8 groups), neutral on a
    tie (polarity then 0.0, degree still 1.0). ``mood_tags`` are its emotions ordered as in
    :data:`NRC_PRIORITY` (those agreeing with the sentiment first); a word with only positive/negative
    has no tags and ``emotion=None``.
    """

    name = "nrc"
    _tables = {"ve8": NRC_TO_VE8, "ek6": NRC_TO_EK6}

    def __init__(self, label_set: str | Sequence[str] | None = "ve8", *, min_degree: float = 0.0,
                 lemmatizer: str = "auto"):
        self._data = _cached("nrc", lambda: {k: self._convert(v) for k, v in _load_nrc().items()})
        super().__init__(label_set, min_degree=min_degree, lemmatizer=lemmatizer)

    @staticmethod
    def _convert(labels: list[str]) -> _Entry:
        emotions = [e for e in labels if e in NRC_TO_VE8]
        pos, neg = "positive" in labels, "negative" in labels
        if pos != neg:
            sentiment = "positive" if pos else "negative"
        else:
            votes = sum(1 if POLARITY_PRESETS["ve8"][NRC_TO_VE8[e]] == "positive" else -1 for e in emotions)
            sentiment = "positive" if votes > 0 else "negative" if votes < 0 else "neutral"
        rank = {e: r for r, e in enumerate(NRC_PRIORITY)}
        tags = sorted(emotions, key=lambda e: (POLARITY_PRESETS["ve8"][NRC_TO_VE8[e]] != sentiment, rank[e]))
        polarity = {"positive": 1.0, "negative": -1.0}.get(sentiment, 0.0)
        return _Entry(sentiment, polarity, 1.0, tuple(tags))

    def _entry(self, concept: str) -> _Entry | None:
        return self._data.get(concept)

    def __len__(self) -> int:
        return len(self._data)


class WordListLexicon(Lexicon):
    """A lexicon from ``{class: words}`` (no dependency). Each word's tags are its classes (in dict
    order); degree 1.0; sentiment from ``polarity`` (``{class: positive|negative}``), by default
    :data:`CLASS_POLARITY` (the kit's VE-8 / Ekman-6 groups; an unknown class is neutral, polarity 0).
    Phrases (``"so sad"``) are allowed and matched as multi-word concepts. With ``label_set="ve8"`` /
    ``"ek6"`` a class maps to the preset class of the same name (case-insensitive), else ``None``.
    """

    name = "wordlist"

    def __init__(self, words: Mapping[str, Iterable[str]], label_set: str | Sequence[str] | None = "ve8", *,
                 polarity: Mapping[str, str] | None = None, min_degree: float = 0.0, lemmatizer: str = "auto"):
        pol = {str(c).lower(): str(p).lower() for c, p in (polarity or CLASS_POLARITY).items()}
        tags: dict[str, list[str]] = {}
        for cls, ws in words.items():
            for w in ws:
                key = "_".join(t.word for t in tokenize(str(w).replace("_", " ")))
                if key and cls not in tags.setdefault(key, []):
                    tags[key].append(cls)
        self._data: dict[str, _Entry] = {}
        for key, classes in tags.items():
            s = pol.get(classes[0].lower(), "neutral")
            s = s if s in ("positive", "negative") else "neutral"
            self._data[key] = _Entry(s, {"positive": 1.0, "negative": -1.0}.get(s, 0.0), 1.0, tuple(classes))
        self.max_words = max((k.count("_") + 1 for k in self._data), default=1)
        names = {str(c) for c in words}
        self._tables = {key: {c: by_lower[c.lower()] for c in names if c.lower() in by_lower}
                        for key, by_lower in (("ve8", {c.lower(): c for c in VE8_CLASSES}),
                                              ("ek6", {c.lower(): c for c in EK6_CLASSES}))}
        super().__init__(label_set, min_degree=min_degree, lemmatizer=lemmatizer)

    @classmethod
    def synthetic(cls, label_set: str | Sequence[str] | None = "ve8", **kwargs) -> "WordListLexicon":
        """The lexicon of the synthetic set's subtitles (:data:`affectkit.data.text.LEXICON`, VE-8 classes)."""
        from .text import LEXICON
        lex = cls(LEXICON, label_set, **kwargs)
        lex.name = "synthetic"
        return lex

    def _entry(self, concept: str) -> _Entry | None:
        return self._data.get(concept)

    def __len__(self) -> int:
        return len(self._data)


def get_lexicon(name: str = "senticnet", label_set: str | Sequence[str] | None = "ve8", **kwargs) -> Lexicon:
    """A lexicon by name: ``senticnet`` (default; needs ``sentic``), ``nrc`` (needs ``nrclex``) or
    ``synthetic`` (the synthetic set's word list). ``kwargs`` go to the backend (``min_degree``,
    ``lemmatizer``, SenticNet's ``max_words``). The data is loaded once per process."""
    key = str(name).lower()
    if key == "senticnet":
        return SenticNetLexicon(label_set, **kwargs)
    if key == "nrc":
        return NRCLexicon(label_set, **kwargs)
    if key == "synthetic":
        return WordListLexicon.synthetic(label_set, **kwargs)
    raise ConfigError(f"unknown lexicon {name!r}; expected one of {', '.join(LEXICON_NAMES)}")


def resolve_lexicon(name: str | None, label_set: str | Sequence[str] | None = "ve8") -> Lexicon | None:
    """The lexicon a config names (``input.text.lexicon``): ``auto`` is SenticNet when ``sentic`` is
    installed, else NRC when ``nrclex`` is, else none; ``none`` / ``None`` is no lexicon; any other
    name as :func:`get_lexicon` (a missing package is then a :class:`LexiconUnavailableError`)."""
    key = "none" if name is None else str(name).lower()
    if key == "none":
        return None
    if key == "auto":
        for candidate, package in (("senticnet", "sentic"), ("nrc", "nrclex")):
            if importlib.util.find_spec(package) is not None:
                return get_lexicon(candidate, label_set)
        return None
    return get_lexicon(key, label_set)


def window_words(texts: Sequence[str], lexicon: Lexicon) -> list[list[dict[str, Any]]]:
    """Per window of text, its emotional words as JSON-ready dicts (``word``, ``concept``,
    ``sentiment``, ``emotion``, ``degree``, ``polarity``, ``mood_tags``), in text order."""
    out = []
    for text in texts:
        out.append([{"word": h.text, "concept": h.concept, "sentiment": h.sentiment, "emotion": h.emotion,
                     "degree": round(float(h.degree), 4), "polarity": round(float(h.polarity), 4),
                     "mood_tags": list(h.mood_tags)} for h in lexicon.find(text or "")])
    return out
