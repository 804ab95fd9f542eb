"""Text encoders (blocks/text_encoder.py): the hashed word tokenizer (stable ids, padding, truncation),
the word encoder's padding semantics, and the transformers-backed encoder from a local folder (a tiny
random BERT written by the test), its errors and its tokenizer fingerprint."""
from __future__ import annotations

import inspect
import sys
import zlib

import pytest
import torch

from affectkit.errors import ConfigError
from affectkit.models.blocks.text_encoder import (HFTextEncoder, WordTextEncoder, normalize_text_batch, word_id,
                                                  word_tokens)

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "i", "am", "so", "happy", "sad", "why", "this", "again",
         "you", "see", "to", "##s", "##ly", "the", "a"]


def test_word_ids_are_stable_and_words_are_lowercased():
    assert word_tokens("Hello, WORLD! Don't   stop_it 42") == ["hello", "world", "don't", "stop_it", "42"]
    # CRC-32 of the UTF-8 bytes: the same id in every process (no PYTHONHASHSEED dependence)
    assert word_id("happy", 4096) == 1 + zlib.crc32(b"happy") % 4096 == 970
    assert word_id("so", 4096) == 1028
    assert all(1 <= word_id(w, 7) <= 7 for w in ("a", "b", "émotion", "悲しい"))
    enc = WordTextEncoder(16, heads=2, layers=0, max_length=8, buckets=4096)
    ids1, _ = enc.tokenize([["So HAPPY", "sad"]])
    ids2, _ = enc.tokenize([["so happy!", "Sad."]])
    assert torch.equal(ids1, ids2)
    assert ids1[0, 0, :2].tolist() == [word_id("so", 4096), word_id("happy", 4096)]


def test_word_tokenizer_pads_windows_and_samples_and_truncates():
    enc = WordTextEncoder(16, heads=2, layers=1, max_length=4)
    ids, mask = enc.tokenize([["one two", ""], ["a b c d e f"]])  # sample 2: one window, padded with ""
    assert ids.shape == mask.shape == (2, 2, 4) and ids.dtype == torch.long and mask.dtype == torch.bool
    assert mask[0, 0].tolist() == [False, False, True, True]
    assert mask[0, 1].all() and mask[1, 1].all()  # empty windows: all padding
    assert not mask[1, 0].any()  # cut at max_length
    assert (ids[mask] == 0).all() and (ids[~mask] > 0).all()
    ids, mask = enc.tokenize(["just one string", None])  # a string per sample: S = 1; None: empty
    assert ids.shape == (2, 1, 3) and mask[1].all()
    ids, mask = enc.tokenize([[""], [""]])
    assert ids.shape == (2, 1, 1) and mask.all()  # L >= 1 even when nothing is said
    assert normalize_text_batch([["a"], ["b", "c"]]) == [["a", ""], ["b", "c"]]
    with pytest.raises(ValueError, match="must be a batch"):
        enc.tokenize("not a batch")


def test_word_encoder_outputs_ignore_padding_and_survive_empty_windows():
    torch.manual_seed(0)
    enc = WordTextEncoder(16, heads=2, layers=2, max_length=6).eval()
    ids, mask = enc.tokenize([["why would this happen", ""], ["so happy", "to see you"]])
    tokens, out_mask = enc(ids, mask)
    assert tokens.shape == (2, 2, 4, 16) and torch.equal(out_mask, mask)
    assert torch.isfinite(tokens).all()
    assert (tokens[mask] == 0).all()  # padded positions (and the empty window) are zeros
    other = ids.clone()
    other[mask] = 77  # ids at padded positions do not matter
    assert torch.equal(enc(other, mask)[0], tokens)
    assert torch.allclose(enc(ids)[0], tokens)  # no mask: padding is where the id is 0
    # the text of one window does not reach another (windows are encoded independently)
    ids2 = ids.clone()
    ids2[1, 1, 0] = 5
    again = enc(ids2, mask)[0]
    assert torch.equal(again[1, 0], tokens[1, 0]) and not torch.equal(again[1, 1], tokens[1, 1])


# ------------------------------------------------------------------------------------------------
# transformers (a tiny random BERT written into a folder)
def _bert_folder(path, vocab=VOCAB, seed=0):
    transformers = pytest.importorskip("transformers")
    path.mkdir(parents=True, exist_ok=True)
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n")
    # transformers 5 takes the vocabulary as ``vocab`` (and ignores ``vocab_file``); 4.x as ``vocab_file``
    if "vocab" in inspect.signature(transformers.BertTokenizerFast.__init__).parameters:
        tok = transformers.BertTokenizerFast(vocab=str(vocab_file))
    else:
        tok = transformers.BertTokenizerFast(vocab_file=str(vocab_file))
    assert len(tok) == len(vocab)
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                  vocab_size=len(vocab), max_position_embeddings=64)
    model = transformers.BertModel(cfg).eval()
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path, model, tok


def test_hf_encoder_loads_a_local_folder_frozen_and_projects(tmp_path):
    folder, bert, tok = _bert_folder(tmp_path / "bert")
    torch.manual_seed(1)
    enc = HFTextEncoder(folder, 24, max_length=6).eval()
    assert not any(p.requires_grad for p in enc.model.parameters())
    assert all(p.requires_grad for p in enc.proj.parameters())
    ids, mask = enc.tokenize([["I am so happy", ""], ["why this again again again again", "you see"]])
    assert ids.shape == (2, 2, 6) and mask.shape == (2, 2, 6)
    assert ids[0, 0, 0].item() == tok.cls_token_id and mask[0, 1].all()  # an empty window: all padding
    assert not mask[1, 0].any()  # truncated at max_length (with [SEP] last)
    tokens, out_mask = enc(ids, mask)
    assert tokens.shape == (2, 2, 6, 24) and torch.isfinite(tokens).all() and (tokens[mask] == 0).all()
    with torch.no_grad():  # the projection of the saved model's own hidden states
        ref = bert(input_ids=ids[1, 1:2], attention_mask=(~mask[1, 1:2]).long()).last_hidden_state
        ref = enc.proj(ref)[0][~mask[1, 1]]
    assert torch.allclose(tokens[1, 1][~mask[1, 1]], ref, atol=1e-5)
    other = ids.clone()
    other[mask] = 7
    assert torch.allclose(enc(other, mask)[0], tokens, atol=1e-6)  # padded ids do not matter
    enc.train()
    assert not enc.model.training  # frozen: dropout stays off
    tuned = HFTextEncoder(folder, 24, finetune=True)
    assert all(p.requires_grad for p in tuned.model.parameters())


def test_hf_encoder_round_trip_and_tokenizer_fingerprint(tmp_path):
    folder, _, _ = _bert_folder(tmp_path / "bert")
    torch.manual_seed(2)
    a = HFTextEncoder(folder, 16).eval()
    state = {k: v.clone() for k, v in a.state_dict().items()}
    assert "tokenizer_digest" in state and state["tokenizer_digest"].dtype == torch.uint8
    torch.manual_seed(3)
    b = HFTextEncoder(folder, 16).eval()
    b.load_state_dict(state)
    ids, mask = a.tokenize([["so happy to see you"]])
    assert torch.equal(a(ids, mask)[0], b(ids, mask)[0])
    other, _, _ = _bert_folder(tmp_path / "other", vocab=VOCAB[:-2] + ["zebra", "yak"])
    c = HFTextEncoder(other, 16)
    with pytest.raises(ConfigError, match="not the one these weights were trained with"):
        c.load_state_dict(state)


def test_hf_encoder_errors_name_the_folder(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"no_such_folder is not a model folder"):
        HFTextEncoder(tmp_path / "no_such_folder", 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"empty is not a model folder"):
        HFTextEncoder(tmp_path / "empty", 16)
    with pytest.raises(ConfigError, match="text_model_dir"):
        HFTextEncoder(None, 16)
    folder, _, _ = _bert_folder(tmp_path / "bert")
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'affectkit\[text\]'"):
        HFTextEncoder(folder, 16)


def _word_task(rng, n):
    """Sentences of 5 neutral words with one class word at a random place; the class is the label."""
    neutral = ["the", "box", "is", "on", "table", "train", "window", "chair", "four", "two", "platform", "opened"]
    cues = [["rage", "furious"], ["cheerful", "delight"], ["gloomy", "tears"], ["sudden", "astonished"]]
    texts, labels = [], []
    for _ in range(n):
        y = int(rng.integers(4))
        words = [neutral[int(i)] for i in rng.integers(len(neutral), size=5)]
        words.insert(int(rng.integers(6)), cues[y][int(rng.integers(2))])
        texts.append([" ".join(words)])
        labels.append(y)
    return texts, torch.tensor(labels)


def test_words_are_not_drowned_by_the_positions_and_a_word_cue_is_learned():
    """Word embeddings start N(0, 1), as large as the sinusoid positions (at std 0.02 the positions drowned the
    words and MBT's text stream stayed at chance on the synthetic set); a one-word cue is learned in 80 steps
    (0.99 held-out accuracy; 0.23 with the old std 0.02)."""
    import numpy as np

    torch.manual_seed(0)
    enc = WordTextEncoder(32, heads=2, layers=1, max_length=8)
    words = enc.embed.weight[1:].detach()
    assert 0.9 < float(words.std()) < 1.1 and float(enc.embed.weight[0].abs().max()) == 0.0
    assert float(words.pow(2).mean().sqrt()) > float(enc.pos_embed.pow(2).mean().sqrt())
    head = torch.nn.Linear(32, 4)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=1e-3)
    rng = np.random.default_rng(0)

    def logits(texts):
        tokens, mask = enc.encode_text(texts)
        valid = (~mask[:, 0])[..., None].float()
        return head((tokens[:, 0] * valid).sum(1) / valid.sum(1))

    for _ in range(80):
        texts, y = _word_task(rng, 16)
        loss = torch.nn.functional.cross_entropy(logits(texts), y)
        opt.zero_grad(), loss.backward(), opt.step()
    texts, y = _word_task(np.random.default_rng(1), 200)
    with torch.no_grad():
        acc = float((logits(texts).argmax(-1) == y).float().mean())
    assert acc > 0.9, acc
