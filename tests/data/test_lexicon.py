"""Emotion lexicons (affectkit.data.lexicon): multi-word concepts before words, lemmas, neutral words, the
synthetic word list, NRC, the mood-tag tables against the installed SenticNet data, label sets, and the
error when an optional package is missing. Expected entries are copied by hand from the data files."""
from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time

import pytest

from affectkit.data import lexicon as L
from affectkit.data.datasets import EK6_CLASSES, VE8_CLASSES
from affectkit.data.text import EMOTION_TEMPLATES, LEXICON, NEUTRAL_LINES
from affectkit.errors import ConfigError


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@pytest.fixture(scope="module")
def senticnet():
    if not _installed("sentic"):
        pytest.importorskip("sentic")
    return L.get_lexicon("senticnet")


@pytest.fixture(scope="module")
def nrc():
    if not _installed("nrclex"):
        pytest.importorskip("nrclex")
    return L.get_lexicon("nrc")


@pytest.fixture()
def fresh_cache(monkeypatch):
    """An empty load cache (restored afterwards), so a loader runs again."""
    monkeypatch.setattr(L, "_CACHE", {})


# ---------------------------------------------------------------------------------------------
def test_tokenize_offsets_case_and_punctuation():
    text = "WOW!! Heart-broken, don\u2019t...cry_me"
    toks = L.tokenize(text)
    assert [t.word for t in toks] == ["wow", "heart", "broken", "don't", "cry", "me"]
    assert [text[t.start:t.end] for t in toks] == ["WOW", "Heart", "broken", "don\u2019t", "cry", "me"]


def test_multi_word_concept_preferred_over_its_words(senticnet):
    # data: broken_heart = [-0.999, 0, 0, 0, '#grief', None, 'negative', -0.999, ...];
    #       broken = (-0.831, #grief #loathing), heart = (+0.844, #ecstasy #delight)
    assert "broken" in senticnet and "heart" in senticnet and "broken heart" in senticnet
    text = "My broken heart!"
    hits = senticnet.find(text)
    assert len(hits) == 1
    h = hits[0]
    assert (h.text, h.start_word, h.end_word, h.char_span, h.concept) == ("broken heart", 1, 3, (3, 15), "broken_heart")
    assert (h.sentiment, h.polarity, h.degree, h.mood_tags, h.emotion) == ("negative", -0.999, 0.999, ("grief",), "Sadness")
    rec = senticnet.record("broken_heart")
    assert (rec["polarity_label"], rec["polarity_value"], rec["mood_tags"]) == ("negative", -0.999, ["grief"])
    assert senticnet.lookup_word("broken heart") == senticnet.lookup_word("broken_heart")._replace(text="broken heart")
    # a 3-word concept beats "fall" (negative, #sadness) and "love" (positive, #joy)
    (h,) = senticnet.find("we Fall in LOVE")
    assert (h.text, h.concept, h.start_word, h.end_word, h.polarity, h.mood_tags) == (
        "Fall in LOVE", "fall_in_love", 1, 4, 0.971, ("ecstasy",))
    # two single words where no concept joins them
    assert [(x.concept, x.polarity) for x in senticnet.find("gloomy river")] == [("gloomy", -0.999), ("river", -0.142)]


def test_hyphenated_words_match_the_underscore_concept(senticnet):
    # data: heart_broken = [0.924, 0, 0.763, 0, '#ecstasy', '#delight', 'positive', 0.844, ...] (sic)
    (h,) = senticnet.find("so heart-broken")
    assert (h.text, h.concept, h.char_span, h.polarity, h.mood_tags) == (
        "heart-broken", "heart_broken", (3, 15), 0.844, ("ecstasy", "delight"))


@pytest.mark.parametrize("lemmatizer", ["simplemma", "rules"])
def test_inflected_word_found_through_its_lemma(senticnet, lemmatizer):
    if lemmatizer == "simplemma" and not _installed("simplemma"):
        pytest.importorskip("simplemma")
    lex = L.get_lexicon("senticnet", lemmatizer=lemmatizer)
    assert lex.lemmatizer == lemmatizer
    assert "cried" not in lex and "cry" in lex  # data: cry = [-0.659, 0, 0, 0, '#sadness', None, 'negative', -0.659, ...]
    (h,) = lex.find("She CRIED.")
    assert (h.text, h.concept, h.char_span, h.sentiment, h.polarity, h.degree, h.mood_tags, h.emotion) == (
        "CRIED", "cry", (4, 9), "negative", -0.659, 0.659, ("sadness",), "Sadness")
    assert lex.lookup_word("cried")[4:] == lex.lookup_word("cry")[4:]  # concept, sentiment, emotion, tags, degree, polarity
    # the surface form comes first: "hated" has its own entry (the same values as "hate")
    assert lex.lookup_word("hated").concept == "hated"


def test_unknown_words_are_neutral(senticnet):
    assert senticnet.find("qwertyzz blorf") == []
    h = senticnet.lookup_word("qwertyzz")
    assert (h.concept, h.sentiment, h.emotion, h.mood_tags, h.degree, h.polarity) == (None, "neutral", None, (), 0.0, 0.0)
    assert senticnet.find("") == [] and senticnet.find("...!?") == []
    assert senticnet.lookup_word("").concept is None


def test_min_degree_filter(senticnet):
    lex = L.get_lexicon("senticnet", min_degree=0.5)
    assert [h.concept for h in lex.find("gloomy river")] == ["gloomy"]  # river: |-0.142| < 0.5
    assert lex.lookup_word("river").degree == 0.142  # lookup_word is not filtered
    with pytest.raises(ConfigError):
        L.get_lexicon("synthetic", min_degree=-1)


def test_label_sets(senticnet):
    text = "wow, I hated the gloomy countdown"
    # data: wow (#ecstasy #delight +0.826), hated (#sadness #disgust -0.659), gloomy (#grief -0.999),
    #       countdown (#ecstasy #delight +0.87)
    assert [h.emotion for h in senticnet.find(text)] == ["Joy", "Sadness", "Sadness", "Joy"]
    assert [h.emotion for h in L.get_lexicon("senticnet", "ek6").find(text)] == ["joy", "sadness", "sadness", "joy"]
    assert [h.emotion for h in L.get_lexicon("senticnet", None).find(text)] == ["ecstasy", "sadness", "grief", "ecstasy"]
    custom = L.get_lexicon("senticnet", ["joy", "Disgust"])
    assert [h.emotion for h in custom.find(text)] == ["joy", "Disgust", None, "joy"]  # hated: 2nd tag maps
    assert custom.classes == ["joy", "Disgust"] and senticnet.classes == VE8_CLASSES
    # a delight-only / eagerness-only concept under VE-8 (our table): Trust / Anticipation
    assert L.MOOD_TO_VE8["delight"] == "Trust" and L.MOOD_TO_VE8["eagerness"] == "Anticipation"
    with pytest.raises(ConfigError, match="label_set"):
        L.get_lexicon("senticnet", "ve9")


def test_mood_tag_tables_cover_the_data(senticnet):
    found = L.senticnet_mood_tags()
    assert found == {
        "ecstasy", "joy", "contentment", "melancholy", "sadness", "grief", "bliss", "calmness", "serenity",
        "annoyance", "anger", "rage", "delight", "pleasantness", "acceptance", "dislike", "disgust", "loathing",
        "enthusiasm", "eagerness", "responsiveness", "anxiety", "fear", "terror"}
    assert found == L.SENTICNET_MOOD_TAGS
    for table, classes in ((L.MOOD_TO_VE8, VE8_CLASSES), (L.MOOD_TO_EK6, EK6_CLASSES)):
        missing = found - set(table) - L.UNMAPPED
        assert not missing, f"SenticNet mood tags neither mapped nor in UNMAPPED: {sorted(missing)}"
        assert set(table.values()) <= set(classes)
    # the mapped class agrees with the tag's polarity (the kit's groups) for every tag of the data
    from affectkit.data.datasets import POLARITY_PRESETS
    neg = {"melancholy", "sadness", "grief", "annoyance", "anger", "rage", "dislike", "disgust", "loathing",
           "anxiety", "fear", "terror"}
    for tag in found:
        assert (POLARITY_PRESETS["ve8"][L.MOOD_TO_VE8[tag]] == "negative") == (tag in neg), tag
        assert (POLARITY_PRESETS["ek6"][L.MOOD_TO_EK6[tag]] == "negative") == (tag in neg), tag


def test_synthetic_word_list_finds_the_subtitle_words():
    lex = L.get_lexicon("synthetic")
    assert lex.name == "synthetic" and len(lex) == sum(len(ws) for ws in LEXICON.values())
    for k, (cls, words) in enumerate(LEXICON.items()):
        a, b = words[k % len(words)], words[(k + 3) % len(words)]
        template = EMOTION_TEMPLATES[k % len(EMOTION_TEMPLATES)]  # as the synthetic set builds its lines
        hits = lex.find(template.format(a=a, b=b))
        assert [h.concept for h in hits] == ([a, b] if "{b}" in template else [a])
        assert all(h.emotion == cls and h.mood_tags == (cls,) and h.degree == 1.0 for h in hits)
        # punctuation and case do not matter
        noisy = lex.find(f"«{a.upper()}»!!! ...{b.title()}?")
        assert [(h.concept, h.emotion) for h in noisy] == [(a, cls), (b, cls)]
    for line in NEUTRAL_LINES:
        assert lex.find(line) == []
    hits = lex.find("So FURIOUS!!! ...then: wow, safe.")
    assert [(h.text, h.emotion, h.sentiment, h.polarity) for h in hits] == [
        ("FURIOUS", "Anger", "negative", -1.0), ("wow", "Surprise", "positive", 1.0), ("safe", "Trust", "positive", 1.0)]
    assert hits[0].char_span == (3, 10)
    # Ekman-6 keeps the Ekman classes only; the raw label set keeps the class names
    ek = L.get_lexicon("synthetic", "ek6")
    assert [h.emotion for h in ek.find("furious, hopeful, safe, sad")] == ["anger", None, None, "sadness"]


def test_word_list_from_a_dict():
    lex = L.WordListLexicon({"calm": ["at peace", "serene"], "Sadness": ["blue"]}, label_set=None,
                            polarity={"calm": "positive", "sadness": "negative"})
    hits = lex.find("I am AT PEACE, not blue; serenely serene")
    assert [(h.concept, h.emotion, h.polarity, h.start_word, h.end_word) for h in hits] == [
        ("at_peace", "calm", 1.0, 2, 4), ("blue", "Sadness", -1.0, 5, 6), ("serene", "calm", 1.0, 7, 8)]
    assert L.WordListLexicon({"calm": ["serene"]}).find("serene")[0].emotion is None  # not a VE-8 class
    assert L.WordListLexicon({"calm": ["serene"]}).find("serene")[0].sentiment == "neutral"


def test_nrc_finds_a_known_word(nrc):
    # data (nrc_en.json): "hate": ["anger", "disgust", "fear", "negative", "sadness"]; "cry": ["negative", "sadness"]
    (h,) = nrc.find("I HATE this")
    assert (h.concept, h.sentiment, h.polarity, h.degree, h.mood_tags, h.emotion) == (
        "hate", "negative", -1.0, 1.0, ("anger", "disgust", "fear", "sadness"), "Anger")
    (h,) = nrc.find("she cried")
    assert (h.concept, h.sentiment, h.mood_tags, h.emotion) == ("cry", "negative", ("sadness",), "Sadness")
    # "surprise": ["fear", "joy", "positive", "surprise"] -> emotions agreeing with the sentiment first
    assert nrc.lookup_word("surprise").mood_tags == ("surprise", "joy", "fear")
    assert L.get_lexicon("nrc", "ek6").lookup_word("happy").emotion == "joy"  # anticipation, joy, trust
    assert nrc.find("qwertyzz") == [] and len(nrc) == 6468


def test_to_dict_is_json(senticnet):
    hits = senticnet.find("My broken heart, wow") + L.get_lexicon("synthetic").find("so happy")
    back = json.loads(json.dumps([h.to_dict() for h in hits]))
    assert back[0] == {"text": "broken heart", "start_word": 1, "end_word": 3, "char_span": [3, 15],
                       "concept": "broken_heart", "sentiment": "negative", "emotion": "Sadness",
                       "mood_tags": ["grief"], "degree": 0.999, "polarity": -0.999}
    assert [d["concept"] for d in back] == ["broken_heart", "wow", "happy"]
    assert senticnet.emotional_text("My broken heart, wow") == "broken heart wow"


def test_missing_package_errors(monkeypatch, fresh_cache):
    for name in ("sentic", "sentic.babel", "sentic.babel.data_en"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(L.LexiconUnavailableError) as err:
        L.get_lexicon()
    assert isinstance(err.value, ConfigError)
    assert "'sentic'" in str(err.value) and "pip install sentic==0.0.9" in str(err.value)
    assert err.value.requirement == "sentic==0.0.9"
    for name in ("nrclex", "nrclex.data", "nrclex.core"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(L.LexiconUnavailableError, match=r"'nrclex'.*pip install nrclex==4\.1\.0"):
        L.get_lexicon("nrc")
    assert L.get_lexicon("synthetic").find("happy")[0].emotion == "Joy"  # needs nothing
    with pytest.raises(ConfigError, match="unknown lexicon 'wordnet'"):
        L.get_lexicon("wordnet")


def test_without_simplemma_the_rules_run(monkeypatch):
    L._simplemma_fn.cache_clear()
    try:
        monkeypatch.setitem(sys.modules, "simplemma", None)
        assert L.default_lemmatizer() == "rules"
        lex = L.get_lexicon("synthetic")
        assert lex.lemmatizer == "rules"
        assert [(h.text, h.concept) for h in lex.find("she missed me, hating it")] == [("missed", "miss"), ("hating", "hate")]
        with pytest.raises(L.LexiconUnavailableError, match="pip install simplemma==2.0.0"):
            L.get_lexicon("synthetic", lemmatizer="simplemma")
    finally:
        monkeypatch.undo()
        L._simplemma_fn.cache_clear()
    with pytest.raises(ConfigError, match="unknown lemmatizer"):
        L.get_lexicon("synthetic", lemmatizer="porter")


def test_rule_lemmas():
    assert L.rule_lemmas("cried")[0] == "cry" and L.rule_lemmas("parties")[0] == "party"
    assert L.rule_lemmas("running")[0] == "run" and "make" in L.rule_lemmas("making")
    assert "hate" in L.rule_lemmas("hated") and L.rule_lemmas("happier") == ("happy",)
    assert L.rule_lemmas("sad") == () and L.rule_lemmas("it's") == ("it",)


def test_loaded_once_across_threads(fresh_cache, nrc):
    out = []
    threads = [threading.Thread(target=lambda: out.append(L.get_lexicon("nrc")._data)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 4 and all(d is out[0] for d in out)


def test_find_is_fast(senticnet):
    text = "Honestly, I was so scared and nervous yesterday, but then the wonderful news arrived and we all cried with joy"
    assert len(L.tokenize(text)) == 20
    for lex, budget_ms in ((L.get_lexicon("synthetic"), 2.0), (senticnet, 10.0)):
        lex.find(text)
        t = time.perf_counter()
        for _ in range(100):
            lex.find(text)
        assert (time.perf_counter() - t) / 100 * 1e3 < budget_ms  # measured: 0.06 ms / 0.2 ms


FAKE_DATA = r'''# -*- coding: utf-8 -*-
senticnet = {}
senticnet['aah'] = [-0.52, 0, 0, 0, '#sadness', None, 'negative', -0.52, 'weep', 'cry_eye_out', 'cry_river', 'gah', 'cry']
senticnet["it's_great"] = [0.5, 1e-3, 0, 0, '#joy', '#delight', 'positive', 0.5, "don't", 'a,b', 'x', 'y', 'z']
senticnet['back\\slash'] = [-0.1, 0, 0, 0, '#anger', None, 'negative', -0.1, 'a\'b', 'b', 'c', 'd', 'e']
'''


def test_senticnet_source_parser_without_pyc(tmp_path, monkeypatch, fresh_cache):
    import ast
    from types import SimpleNamespace
    path = tmp_path / "data_en.py"
    path.write_text(FAKE_DATA, encoding="utf-8")
    expected = {}
    exec(compile(FAKE_DATA, str(path), "exec"), expected)
    assert L.parse_senticnet_source(path) == expected["senticnet"]
    # no .pyc -> the loader parses the text instead of importing (compiling) the 42 MB module
    monkeypatch.delitem(sys.modules, "sentic.babel.data_en", raising=False)
    monkeypatch.setattr(L.importlib.util, "find_spec", lambda name: SimpleNamespace(origin=str(path), cached=None))
    lex = L.SenticNetLexicon(lemmatizer="none")
    assert len(lex) == 3 and lex.max_words == 2
    (h,) = lex.find("It\u2019s great!")
    assert (h.concept, h.polarity, h.emotion) == ("it's_great", 0.5, "Joy")
    assert ast.literal_eval(repr(lex.record("aah")["semantics"])) == ["weep", "cry_eye_out", "cry_river", "gah", "cry"]


def test_senticnet_source_parser_on_the_real_file(tmp_path, senticnet):
    origin = importlib.util.find_spec("sentic.babel.data_en").origin
    with open(origin, encoding="utf-8") as fh:
        head = [next(fh) for _ in range(3000)]
    (tmp_path / "head.py").write_text("".join(head), encoding="utf-8")
    parsed = L.parse_senticnet_source(tmp_path / "head.py")
    assert len(parsed) > 2900
    assert all(senticnet._data[k] == v for k, v in parsed.items())
