"""Text encoders: per-window strings -> tokens for the fusion models (MBT's text stream, MODA fusion).

A batch of text is B samples of S windows each (``sample["text"]`` is one string per snippet window;
the collate function keeps it a list of lists). Every encoder owns its tokenizer and works in two
steps, so that the string handling stays outside a traced graph::

    ids, mask = encoder.tokenize(texts)   # texts: B lists of S str (or B str: S = 1)
                                          # -> ids LongTensor (B, S, L), mask BoolTensor (B, S, L) True = pad
    tokens, mask = encoder(ids, mask)     # -> tokens (B, S, L, D), mask (B, S, L)

``L`` is the longest window of the batch (at least 1), cut at ``max_length``. A window without
words is all padding (``mask`` True on its whole row); the tokens at padded positions are zeros and
do not depend on the ids there (they are replaced by the pad id before the embedding).

ONNX export: strings cannot enter a graph, so an exported model takes ``text_ids`` (B, S, L) int64 and
``text_mask`` (B, S, L) bool (``L`` a dynamic axis) and the caller runs :meth:`TextEncoder.tokenize`
in Python (or a port of it) before feeding the graph; ``forward(ids, mask)`` is tensor-only.

Two implementations:

* :class:`WordTextEncoder` (built in, no dependency): lower-cased regex words, each hashed with
  CRC-32 into ``buckets`` ids (stable across processes and machines, unlike Python's ``hash``; no
  vocabulary file, any word has an id; distinct words may share a bucket), a learned embedding
  (id 0 = padding), sinusoid or learned positions, ``layers`` (0-2 are typical) of the kit's
  :class:`~affectkit.models.blocks.transformer.TransformerBlock` with key padding, a final LayerNorm.
  Its tokenizer has no state beyond its arguments (stored in the model config).
* :class:`HFTextEncoder`: a BERT-family model and its tokenizer from a LOCAL folder (``transformers``'
  ``AutoModel`` / ``AutoTokenizer`` with ``local_files_only=True``; nothing is downloaded; hub kernels
  are disabled), frozen by default (``finetune=True`` trains it), its ``last_hidden_state`` projected to
  ``dim`` by a Linear. The model's weights travel in the checkpoint's state dict; its tokenizer is
  read from the folder and a fingerprint of it (``tokenizer_digest``, SHA-256 of the tokenizer's
  serialisation, a persistent uint8 buffer) travels in the checkpoint: loading weights saved with
  another tokenizer is an error naming the folder. An empty window is tokenised as usual
  ([CLS] [SEP]: BERT sees a valid row) and then marked all padding for the fusion.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from .transformer import TransformerBlock, sinusoid_position_table

__all__ = ["TextEncoder", "WordTextEncoder", "HFTextEncoder", "normalize_text_batch", "word_tokens", "word_id",
           "hf_tokenize", "pad_tokens", "tokenizer_spec", "tokenizer_from_spec",
           "build_text_encoder", "TEXT_ENCODERS"]

logger = logging.getLogger(__name__)

TEXT_ENCODERS = ("word", "hf")
_WORD = re.compile(r"\w+(?:'\w+)*")


def normalize_text_batch(texts: Any) -> list[list[str]]:
    """B samples of text -> B lists of S strings: a sample may be a string (S = 1), a list of strings
    or None (""); samples with fewer windows than the longest are padded with empty windows."""
    if isinstance(texts, str):
        raise ValueError("text must be a batch: a list with one entry (a list of per-window strings) per sample")
    rows: list[list[str]] = []
    for sample in texts:
        if sample is None:
            rows.append([""])
        elif isinstance(sample, str):
            rows.append([sample])
        else:
            windows = ["" if w is None else w for w in sample]
            if not all(isinstance(w, str) for w in windows):
                raise ValueError(f"text: a sample must be a list of strings, got {[type(w).__name__ for w in windows]}")
            rows.append(windows or [""])
    s = max((len(r) for r in rows), default=1)
    return [r + [""] * (s - len(r)) for r in rows]


def word_tokens(text: str) -> list[str]:
    """Lower-cased words (runs of letters/digits/underscore, inner apostrophes kept: "don't")."""
    return _WORD.findall(text.lower())


def word_id(word: str, buckets: int) -> int:
    """The id of a word in ``1 .. buckets`` (0 is padding): CRC-32 of its UTF-8 bytes modulo ``buckets``."""
    return 1 + zlib.crc32(word.encode("utf-8")) % buckets


def _pack(rows: list[list[list[int]]], max_length: int, pad_id: int) -> tuple[Tensor, Tensor]:
    """B x S lists of ids -> ids (B, S, L) and mask (B, S, L) True = pad, L = longest (<= max_length, >= 1)."""
    b, s = len(rows), len(rows[0]) if rows else 1
    length = max(1, min(max_length, max((len(w) for r in rows for w in r), default=1)))
    ids = torch.full((b, s, length), pad_id, dtype=torch.long)
    mask = torch.ones(b, s, length, dtype=torch.bool)
    for i, r in enumerate(rows):
        for j, w in enumerate(r):
            w = w[:length]
            if w:
                ids[i, j, :len(w)] = torch.tensor(w, dtype=torch.long)
                mask[i, j, :len(w)] = False
    return ids, mask


class TextEncoder(nn.Module):
    """The interface (see the module docstring): ``dim`` (output width), ``max_length``, ``pad_id``,
    :meth:`tokenize`, ``forward(ids, mask)``, :meth:`encode_text` (both steps)."""

    dim: int
    max_length: int
    pad_id: int = 0

    def tokenize(self, texts) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def encode_text(self, texts) -> tuple[Tensor, Tensor]:
        """Strings -> (tokens (B, S, L, D), mask (B, S, L)) on the encoder's device."""
        ids, mask = self.tokenize(texts)
        device = next(self.parameters()).device
        return self(ids.to(device), mask.to(device))

    def _check(self, ids: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        if ids.dim() == 2:  # (B, L): one window per sample
            ids = ids[:, None]
            mask = None if mask is None else mask[:, None]
        if ids.dim() != 3:
            raise ValueError(f"text ids must be (B, S, L) (or (B, L)), got {tuple(ids.shape)}")
        if mask is None:
            mask = ids == self.pad_id
        if tuple(mask.shape) != tuple(ids.shape):
            raise ValueError(f"text mask {tuple(mask.shape)} does not match the ids {tuple(ids.shape)}")
        mask = mask.bool()
        return ids.long().masked_fill(mask, self.pad_id), mask


class WordTextEncoder(TextEncoder):
    """Hashed words -> embedding + positions -> ``layers`` transformer blocks -> LayerNorm (module docstring)."""

    def __init__(self, dim: int, *, heads: int = 4, layers: int = 1, max_length: int = 32, buckets: int = 4096,
                 mlp_ratio: float = 4.0, pos_embed: str = "sinusoid", drop_path: float = 0.0):
        super().__init__()
        for name, value in (("dim", dim), ("max_length", max_length), ("buckets", buckets)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"word text encoder: {name} must be a positive integer, got {value!r}")
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 0:
            raise ConfigError(f"word text encoder: layers must be an integer >= 0, got {layers!r}")
        if pos_embed not in ("sinusoid", "learned"):
            raise ConfigError(f"word text encoder: pos_embed must be 'sinusoid' or 'learned', got {pos_embed!r}")
        self.dim, self.max_length, self.buckets, self.pad_id = dim, max_length, buckets, 0
        self.embed = nn.Embedding(buckets + 1, dim, padding_idx=0)
        # N(0, 1) words (the transformer's sqrt(dim)-scaled embedding): at std 0.02 the sinusoid positions
        # (amplitude 1) drowned the words and MBT's text stream did not learn the synthetic set (stayed at
        # chance for 100 steps where N(0, 1) reached 0.6 train accuracy)
        nn.init.normal_(self.embed.weight, std=1.0)
        with torch.no_grad():
            self.embed.weight[0].zero_()
        if pos_embed == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, max_length, dim))
            nn.init.normal_(self.pos_embed, std=0.02)
        else:
            self.register_buffer("pos_embed", sinusoid_position_table(max_length, dim)[None], persistent=False)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio=mlp_ratio, drop_path=drop_path)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def tokenize(self, texts) -> tuple[Tensor, Tensor]:
        rows = [[[word_id(w, self.buckets) for w in word_tokens(t)] for t in sample]
                for sample in normalize_text_batch(texts)]
        return _pack(rows, self.max_length, self.pad_id)

    def forward(self, ids: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        ids, mask = self._check(ids, mask)
        b, s, length = ids.shape
        if length > self.max_length:
            raise ValueError(f"word text encoder: {length} tokens per window, max_length is {self.max_length}")
        flat, pad = ids.reshape(b * s, length), mask.reshape(b * s, length)
        x = self.embed(flat) + self.pos_embed[:, :length].to(self.embed.weight.dtype)
        for block in self.blocks:
            x = block(x, pad)  # an all-pad row: every token reads itself only (no NaN)
        x = self.norm(x).masked_fill(pad[..., None], 0.0)
        return x.reshape(b, s, length, self.dim), mask

    def extra_repr(self) -> str:
        return f"dim={self.dim}, buckets={self.buckets}, max_length={self.max_length}, layers={len(self.blocks)}"


def _missing_transformers(err: Exception) -> ConfigError:
    return ConfigError(f"the 'hf' text encoder needs the transformers package (pip install 'affectkit[text]'): {err}")


def _fingerprint(tokenizer) -> bytes:
    """SHA-256 of a ``transformers`` tokenizer's full definition (vocabulary and rules)."""
    if getattr(tokenizer, "backend_tokenizer", None) is not None:
        text = tokenizer.backend_tokenizer.to_str()
    else:
        text = repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode("utf-8")).digest()


def hf_tokenize(tokenizer, texts, max_length: int) -> tuple[Tensor, Tensor]:
    """:meth:`HFTextEncoder.tokenize` with a given ``transformers`` tokenizer (ids and mask (B, S, L))."""
    rows = normalize_text_batch(texts)
    b, s = len(rows), len(rows[0]) if rows else 1
    flat = [t for r in rows for t in r]
    enc = tokenizer(flat, padding="longest", truncation=True, max_length=max_length, return_tensors="pt")
    ids = enc["input_ids"].long()
    mask = enc["attention_mask"] == 0
    empty = torch.tensor([not t.strip() for t in flat], dtype=torch.bool)
    mask = mask | empty[:, None]  # a window without text is all padding for the fusion
    length = ids.shape[1]
    return ids.reshape(b, s, length), mask.reshape(b, s, length)


def pad_tokens(ids: Tensor, mask: Tensor, length: int, pad_id: int) -> tuple[Tensor, Tensor]:
    """Ids and mask (B, S, L) padded (``pad_id``, mask True) or cut to ``L = length`` tokens per window."""
    cur = ids.shape[-1]
    if cur >= length:
        return ids[..., :length], mask[..., :length]
    extra = length - cur
    return (torch.cat([ids, ids.new_full((*ids.shape[:-1], extra), pad_id)], -1),
            torch.cat([mask, mask.new_ones((*mask.shape[:-1], extra))], -1))


def tokenizer_spec(encoder: "TextEncoder") -> dict[str, Any]:
    """What rebuilds ``encoder``'s tokenizer without the model (:func:`tokenizer_from_spec`; the ONNX engine)."""
    if isinstance(encoder, WordTextEncoder):
        return {"kind": "word", "buckets": encoder.buckets, "max_length": encoder.max_length, "pad_id": encoder.pad_id}
    if isinstance(encoder, HFTextEncoder):
        digest = bytes(encoder.tokenizer_digest.tolist()).hex()
        return {"kind": "hf", "model_dir": encoder.model_dir, "max_length": encoder.max_length, "pad_id": encoder.pad_id,
                "tokenizer_sha256": digest}
    raise ValueError(f"no tokenizer spec for {type(encoder).__name__}")


def tokenizer_from_spec(spec: dict[str, Any], *, where: str = "model"):
    """``texts -> (ids, mask)`` (B, S, max_length) from :func:`tokenizer_spec`'s dict. An ``hf`` spec needs
    ``transformers`` and the tokenizer's local folder, the same tokenizer (fingerprint checked)."""
    kind, length, pad_id = spec.get("kind"), int(spec["max_length"]), int(spec.get("pad_id", 0))
    if kind == "word":
        buckets = int(spec["buckets"])

        def word(texts):
            rows = [[[word_id(w, buckets) for w in word_tokens(t)] for t in sample] for sample in normalize_text_batch(texts)]
            return pad_tokens(*_pack(rows, length, pad_id), length, pad_id)
        return word
    if kind == "hf":
        try:
            import transformers
        except ImportError as err:
            raise _missing_transformers(err) from None
        folder = spec["model_dir"]
        try:
            tok = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except Exception as err:
            raise ConfigError(f"{where}: its text tokenizer folder {folder} cannot be loaded ({type(err).__name__}: {err})") from None
        if spec.get("tokenizer_sha256") and _fingerprint(tok).hex() != spec["tokenizer_sha256"]:
            raise ConfigError(f"{where}: the tokenizer in {folder} is not the one the model was exported with (fingerprints differ)")

        def hf(texts):
            return pad_tokens(*hf_tokenize(tok, texts, length), length, pad_id)
        return hf
    raise ConfigError(f"{where}: unknown text tokenizer kind {kind!r}")


class HFTextEncoder(TextEncoder):
    """A local BERT-family model + tokenizer, frozen unless ``finetune``, projected to ``dim`` (module docstring)."""

    def __init__(self, model_dir: str | os.PathLike, dim: int, *, max_length: int = 32, finetune: bool = False):
        super().__init__()
        if not model_dir:
            raise ConfigError("hf text encoder: text_model_dir must name a local model folder (config.json, weights, "
                              "tokenizer files, e.g. written by save_pretrained)")
        folder = Path(model_dir).expanduser()
        if not folder.is_dir() or not (folder / "config.json").is_file():
            raise ConfigError(f"hf text encoder: {folder} is not a model folder (no config.json there; save a model "
                              f"and its tokenizer with save_pretrained into it)")
        try:
            import transformers
        except ImportError as err:
            raise _missing_transformers(err) from None
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except Exception as err:
            raise ConfigError(f"hf text encoder: {folder}: cannot load a tokenizer "
                              f"({type(err).__name__}: {err})") from err
        try:
            try:  # transformers >= 5 would fetch hub kernels by default
                model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True, use_kernels=False)
            except TypeError as err:
                if "use_kernels" not in str(err):
                    raise
                model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
        except Exception as err:
            raise ConfigError(f"hf text encoder: {folder}: cannot load a model ({type(err).__name__}: {err})") from err
        self.model = model.float()
        if not getattr(self.tokenizer, "is_fast", False):
            logger.info("hf text encoder: %s has a slow tokenizer", folder)
        if max_length < 1:
            raise ConfigError(f"hf text encoder: max_length must be >= 1, got {max_length!r}")
        model_max = getattr(self.model.config, "max_position_embeddings", None)
        if model_max and max_length > model_max:
            raise ConfigError(f"hf text encoder: max_length {max_length} exceeds the model's {model_max} positions")
        self.model_dir, self.dim, self.max_length, self.finetune = str(folder), dim, int(max_length), bool(finetune)
        self.pad_id = int(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0)
        hidden = int(self.model.config.hidden_size)
        self.proj = nn.Linear(hidden, dim)
        self.model.requires_grad_(self.finetune)
        self.register_buffer("tokenizer_digest", self._digest(), persistent=True)

    def _digest(self) -> Tensor:
        return torch.tensor(list(_fingerprint(self.tokenizer)), dtype=torch.uint8)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + "tokenizer_digest"
        if key in state_dict and not torch.equal(state_dict[key].to("cpu", torch.uint8), self._digest()):
            raise ConfigError(f"hf text encoder: the tokenizer in {self.model_dir} is not the one these weights were "
                              f"trained with (tokenizer fingerprints differ)")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.finetune:
            self.model.eval()  # a frozen model keeps its dropout off
        return self

    def tokenize(self, texts) -> tuple[Tensor, Tensor]:
        return hf_tokenize(self.tokenizer, texts, self.max_length)

    def forward(self, ids: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        ids, mask = self._check(ids, mask)
        b, s, length = ids.shape
        flat, pad = ids.reshape(b * s, length), mask.reshape(b * s, length)
        # an all-pad row (an empty window) still gives BERT one valid token, so no row is fully masked
        attn = (~pad).long()
        attn[:, 0] = 1
        ctx = contextlib.nullcontext() if self.finetune else torch.no_grad()
        with ctx:
            hidden = self.model(input_ids=flat, attention_mask=attn).last_hidden_state
        x = self.proj(hidden.float()).masked_fill(pad[..., None], 0.0)
        return x.reshape(b, s, length, self.dim), mask

    def extra_repr(self) -> str:
        return f"model_dir={self.model_dir!r}, dim={self.dim}, max_length={self.max_length}, finetune={self.finetune}"


def build_text_encoder(kind: str, dim: int, *, heads: int = 4, layers: int = 1, max_length: int = 32,
                       buckets: int = 4096, model_dir: str | os.PathLike | None = None,
                       finetune: bool = False, mlp_ratio: float = 4.0) -> TextEncoder:
    """``kind`` "word" -> :class:`WordTextEncoder`; "hf" -> :class:`HFTextEncoder` from ``model_dir``."""
    if kind == "word":
        return WordTextEncoder(dim, heads=heads, layers=layers, max_length=max_length, buckets=buckets,
                               mlp_ratio=mlp_ratio)
    if kind == "hf":
        return HFTextEncoder(model_dir, dim, max_length=max_length, finetune=finetune)
    raise ConfigError(f"text encoder must be one of {', '.join(map(repr, TEXT_ENCODERS))}, got {kind!r}")
