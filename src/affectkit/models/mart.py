"""MART: Masked Affective RepresenTation learning (Zhang et al., CVPR 2024), a pretraining plug-in over MBT.

Spec: ``methods_mart_mbt_moda_gait.md`` section A (A.1 and A.13 list where the released code differs from
the paper) and the paper (``mart_paper.txt``). The paper's method is the default; switches give the
released code's behaviour.

One pretraining step on a batch of B videos of S windows (segment-mode MBT: a window is a snippet with
its audio), each window with the emotional words of its subtitles (``words``: :class:`WindowWords`, from
the task's lexicon: sentiment, emotion class and degree of each word)::

    pass 1 (no grad with mask_where="input")   backbone(video, audio) -> per-window features z (B, S, M, D),
                                               video tokens (B, S, Pv, D), audio tokens (B, S, Pa, D)
    Eq. 3  temporal emotion score              D_tcam = softmax(fc(maxpool_S z)) * fc(z)      (B, S, C)
    A.6    verification (verify_level 0..3)    E1 sentiment, E2 + emotion, E3 + |degree - i_bar| < tau
    Eq. 4  word-query cross-attention          words (B, S, K, D) -> x^{v->l}, x^{a->l} + attention maps
    Eq. 7  emotion-oriented masking            token score = mean over the verified words of the head-mean
                                               attention; rank; hints = top S, masked = the next
                                               ceil(r(progress) * Pv)
    pass 2 (mask_where="input")                backbone(video with masked patch embeddings, audio)
    Eq. 5  TACL InfoNCE                        positive (x_s^{v->l}[t], x^l[t]); negatives x_s^{a->l} of the
                                               other windows of the same video; and symmetric for audio
    A.9    recovery                            decoder(video tokens) -> normalised tubelet pixels (L2 on the
                                               masked tokens) and a per-window class distribution (KL to
                                               softmax(D_tcam), detached)
    loss = loss_cls * L_cls + loss_tacl * L_tacl + loss_pix * L_pix + loss_kl * L_kl (+ loss_aux * L_aux)

Switches (defaults first; ``*`` marks the released code's choice):

* ``tacl_mode``: ``paper`` (Eq. 5, L2-normalised features, ``tacl_temperature`` 0.07 [assumption]) |
  ``code``* (a 4-layer Conv1d predictor along the word axis of the other modality, cosine, temperature 1,
  every other (window, word) of the batch a negative); ``tacl_code_sign``: ``fixed`` (minimise the InfoNCE
  loss) | ``released``* (the code adds mean(pos - logsumexp), i.e. maximises it).
* ``tacl_aux_heads``: False | True* (class heads on the mean lexicon-aware features, trained with the task loss).
* ``mask_rank``: ``paper`` (Eq. 7: deterministic hints, a progressive count) | ``code``* (score 0.9 x the
  [CLS] -> patch attention of the last video block + 0.1 x the lexicon attention; mask the top
  floor(r * Pv) with r = 0.1 + 0.8 min(0.5, progress); cancel a window's whole mask with
  ``mask_drop_prob`` (code 0.5); reveal floor(0.1 r Pv) tokens drawn from the top floor(0.1 Pv)).
* ``mask_where``: ``input`` (masked patch embeddings replaced by the mask token before layer 0; costs one
  extra forward without gradients to rank the tokens) | ``output``* (one forward; the masked output tokens
  are replaced by the mask token before the decoder).
* ``recover``: ``pix+kl`` | ``pix``* ; ``verify_level``: 3 (E3) .. 0* (every emotional word).
* ``train_plugin``: True | False* (the released optimiser holds the backbone only: every MART module stays
  at its initial weights; the trainer then leaves them out of the optimiser).

Not in the paper and chosen here [assumptions]: hints S = floor(``mask_hint_ratio`` 0.05 x Pv); masked count
from ``mask_ratio`` [0.1, 0.5] of Pv over training (Table 4: "10~50 %"); the token score aggregates the words
by their mean; a window without a verified word is ranked at random (and has no TACL term); the video's
degree i_bar(t) is the softmax over classes of D_tcam[t] at its argmax; the classification loss of pass 2
sees the masked video; the per-word features are the masked mean of the word encoder's tokens of the word
alone; only video is masked (the code's choice; the paper leaves audio open).

Another backbone plugs in by giving what :class:`MART` reads from :class:`~affectkit.models.mbt.MBT`: a
segment-mode forward returning ``extras`` ``segment_features`` (B, S, M, D), ``segment_video_tokens`` and
``segment_audio_tokens`` (B, S, special + P, D), ``modality_logits``; ``features_to_logits`` (the linear
``fc`` of Eq. 3); ``classification_loss``; ``video_encoder`` with ``num_special``, ``grid``,
``patch_size``, ``tubelet_size``, ``blocks`` (code ranking) and ``pos_embed``; and a forward taking
``video_patch_mask`` / ``mask_token`` (input masking). VAANet's trunk would need its per-snippet feature
maps exposed as tokens (H x W positions per snippet) and a mask at its first convolution's output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import register_model
from .blocks.text_encoder import build_text_encoder
from .blocks.transformer import TransformerBlock, sinusoid_position_table
from .mbt import _DERIVED, _TINY, MBT, MBT_MART_CONFIG
from .outputs import ClassifierOutput

__all__ = ["MART", "MART_PLUGIN_CONFIG", "WindowWords", "temporal_emotion_score", "verify_words", "verify_hit_dicts",
           "tacl_infonce", "cpc_nce", "mask_count", "emotion_oriented_mask", "code_mask_ratio", "code_attention_mask",
           "tubelet_targets", "distribution_kl"]

MART_PLUGIN_CONFIG: dict[str, Any] = {
    "verify_level": 3,  # 0: every emotional word | 1: E1 sentiment | 2: E2 + emotion | 3: E3 + degree
    "verify_tau": 0.3,  # E3: |i_e - i_bar_e| < tau [assumption: not given]
    "tacl_mode": "paper",  # paper (Eq. 5) | code (released CPC contrast)
    "tacl_temperature": 0.07,  # Eq. 5 tau [assumption]
    "tacl_heads": 8,
    "tacl_code_sign": "fixed",  # code mode: fixed | released (adds -InfoNCE to the loss)
    "tacl_aux_heads": False,  # the code's class heads on the lexicon-aware features
    "mask_rank": "paper",  # paper (Eq. 7) | code
    "mask_where": "input",  # input (paper) | output (code)
    "mask_ratio": [0.1, 0.5],  # masked share of the video tokens at the start and at the end of training
    "mask_hint_ratio": 0.05,  # paper: S = floor(ratio * tokens) top tokens left visible as hints [assumption]
    "mask_drop_prob": 0.0,  # code: 0.5 (a window's whole mask cancelled)
    "recover": "pix+kl",  # pix+kl (paper) | pix (code)
    "decoder_dim": 512,
    "decoder_depth": 8,
    "decoder_heads": 16,
    "loss_cls": 1.0,
    "loss_tacl": 1.0,
    "loss_pix": 0.05,  # the code's weight
    "loss_kl": 1.0,  # [assumption]
    "loss_aux": 1.0,  # tacl_aux_heads
    "word_encoder": "word",  # word (built-in hashed words) | hf (a local BERT-family folder)
    "word_model_dir": None,
    "word_max_len": 8,  # tokens per emotional word (concept)
    "word_buckets": 4096,
    "max_words": 16,  # emotional words kept per window (the first ones)
    "train_plugin": True,  # False: the released code's optimiser scope (MART modules never updated)
}
MART_CONFIG: dict[str, Any] = {**MBT_MART_CONFIG, **MART_PLUGIN_CONFIG}
_CHOICES = {"tacl_mode": ("paper", "code"), "tacl_code_sign": ("fixed", "released"), "mask_rank": ("paper", "code"),
            "mask_where": ("input", "output"), "recover": ("pix+kl", "pix"), "word_encoder": ("word", "hf")}
SENTIMENT_SIGN = {"positive": 1, "negative": -1}


# -------------------------------------------------------------------------------------------------
# words
@dataclass
class WindowWords:
    """The emotional words of each window of a batch, padded to K per window.

    ``texts``: B lists of S lists of K strings ("" = padding); ``sentiment`` (B, S, K) +1 / -1 / 0 (neutral);
    ``emotion`` (B, S, K) class index (-1: none of the classes); ``degree`` (B, S, K) in [0, 1];
    ``valid`` (B, S, K) bool (False = padding)."""

    texts: list
    sentiment: Tensor
    emotion: Tensor
    degree: Tensor
    valid: Tensor
    hits: list = field(default_factory=list)  # B x S lists of the lexicon hits (predict)

    @classmethod
    def from_texts(cls, texts: Sequence[Sequence[str]], lexicon, classes: Sequence[str],
                   max_words: int = 16) -> "WindowWords":
        """Per-window strings (B lists of S) -> the lexicon's emotional words (``lexicon.find``)."""
        rows = [[list(lexicon.find(str(t)))[:max_words] if lexicon is not None else [] for t in sample]
                for sample in texts]
        return cls.from_hits(rows, classes)

    @classmethod
    def from_hits(cls, rows: Sequence[Sequence[Sequence[Any]]], classes: Sequence[str]) -> "WindowWords":
        """B lists of S lists of lexicon hits (:class:`~affectkit.data.lexicon.LexiconHit`, or dicts with
        ``word``/``text``, ``sentiment``, ``emotion``, ``degree``) -> padded tensors."""
        index = {c: i for i, c in enumerate(classes)}
        get = lambda h, k: h.get(k) if isinstance(h, dict) else getattr(h, k)  # noqa: E731
        b = len(rows)
        s = max((len(r) for r in rows), default=0)
        k = max(1, max((len(w) for r in rows for w in r), default=0))
        sent = torch.zeros(b, s, k, dtype=torch.long)
        emo = torch.full((b, s, k), -1, dtype=torch.long)
        deg = torch.zeros(b, s, k)
        valid = torch.zeros(b, s, k, dtype=torch.bool)
        strings = [[[""] * k for _ in range(s)] for _ in range(b)]
        for i, r in enumerate(rows):
            for j, hits in enumerate(r):
                for m, h in enumerate(hits):
                    strings[i][j][m] = h["word"] if isinstance(h, dict) and "word" in h else get(h, "text")
                    sent[i, j, m] = SENTIMENT_SIGN.get(get(h, "sentiment"), 0)
                    emo[i, j, m] = index.get(get(h, "emotion"), -1)
                    deg[i, j, m] = float(min(max(float(get(h, "degree")), 0.0), 1.0))
                    valid[i, j, m] = True
        return cls(strings, sent, emo, deg, valid, rows)

    def to(self, device) -> "WindowWords":
        return WindowWords(self.texts, self.sentiment.to(device), self.emotion.to(device), self.degree.to(device),
                           self.valid.to(device), self.hits)


# -------------------------------------------------------------------------------------------------
# the pieces (pure functions: unit-tested with hand-made numbers)
def temporal_emotion_score(z: Tensor, fc) -> tuple[Tensor, Tensor]:
    """Eq. 3: ``z`` (B, T, ...) per-window features, ``fc`` a linear classifier on (..., *z.shape[2:]) ->
    (D_tcam (B, T, C) = repeat_T(softmax(fc(maxpool_T z))) * fc(z), the clip probabilities (B, C))."""
    clip = torch.softmax(fc(z.max(dim=1).values).float(), dim=-1)  # (B, C)
    return clip[:, None, :] * fc(z).float(), clip


def verify_hit_dicts(dtcam: Tensor, windows: list[list[dict]], classes: Sequence[str],
                     polarity: dict[str, str], model_args: dict | None = None) -> tuple[int, list[dict]]:
    """Predict's view of A.6 for one video: ``dtcam`` (S, C) and per window its emotional words (dicts of
    :func:`~affectkit.data.lexicon.window_words`) -> per window ``{"video_emotion", "video_degree"}``, and each
    word dict gains ``E1``, ``E2``, ``E3`` and ``verified`` (at the model's ``verify_level``, ``verify_tau``:
    ``model_args`` over :data:`MART_PLUGIN_CONFIG`), in place. Returns (the level, the per-window list)."""
    args = {**MART_PLUGIN_CONFIG, **(model_args or {})}
    level, tau = int(args["verify_level"]), float(args["verify_tau"])
    s = min(dtcam.shape[0], len(windows))
    words = WindowWords.from_hits([windows[:s]], classes)
    sign = torch.tensor([SENTIMENT_SIGN.get(polarity.get(c, ""), 0) for c in classes])
    ver = verify_words(dtcam[None, :s], words, sign, level, tau)
    out = []
    for j in range(s):
        for k, word in enumerate(windows[j]):
            word.update({n: bool(ver[n][0, j, k]) for n in ("E1", "E2", "E3")})
            word["verified"] = bool(ver["verified"][0, j, k])
        out.append({"video_emotion": classes[int(ver["video_emotion"][0, j])],
                    "video_degree": round(float(ver["video_degree"][0, j]), 6)})
    return level, out


def verify_words(dtcam: Tensor, words: WindowWords, class_sign: Tensor, level: int, tau: float) -> dict[str, Tensor]:
    """A.6: which words agree with the video at their window. ``class_sign`` (C,): +1 positive, -1 negative,
    0 unknown. Video at window t: c_e = argmax D_tcam[t], c_s = class_sign[c_e], i_e = softmax(D_tcam[t])[c_e].
    Returns ``E1`` = 1[word sentiment == c_s] (a neutral word never agrees), ``E2`` = E1 * 1[word emotion ==
    c_e], ``E3`` = E2 * 1[|degree - i_e| < tau] and ``verified`` (the words kept at ``level``: 0 every word,
    1..3 E1..E3), all (B, S, K) bool and padding False; ``video_emotion`` (B, S), ``video_degree`` (B, S)."""
    if level not in (0, 1, 2, 3):
        raise ConfigError(f"mart: verify_level must be 0, 1, 2 or 3, got {level!r}")
    probs = torch.softmax(dtcam.float(), dim=-1)
    ce = probs.argmax(-1)  # (B, S)
    cs = class_sign.to(ce.device)[ce]
    ie = probs.gather(-1, ce[..., None])[..., 0]
    valid = words.valid
    e1 = valid & (words.sentiment != 0) & (words.sentiment == cs[..., None])
    e2 = e1 & (words.emotion == ce[..., None])
    e3 = e2 & ((words.degree - ie[..., None]).abs() < tau)
    verified = (valid, e1, e2, e3)[level]
    return {"E1": e1, "E2": e2, "E3": e3, "verified": verified, "video_emotion": ce, "video_degree": ie}


def tacl_infonce(anchor: Tensor, positive: Tensor, negative: Tensor, valid: Tensor, temperature: float,
                 normalize: bool = True) -> Tensor:
    """Eq. 5 for one side: ``anchor`` x_s^{v->l}, ``positive`` x^l, ``negative`` x_s^{a->l}, all (B, S, K, D),
    ``valid`` (B, S, K). For each valid (b, s, k): -log(D(a, p) / (D(a, p) + sum over the valid (b, s' != s, k')
    of D(a, n[b, s', k']))), D(z, z') = exp(z.z' / temperature) (on L2-normalised features with ``normalize``);
    the mean over the valid positions (0 when there is none)."""
    b, s, k, d = anchor.shape
    if normalize:
        anchor, positive, negative = (F.normalize(x.float(), dim=-1) for x in (anchor, positive, negative))
    a = anchor.reshape(b, s * k, d)
    n = negative.reshape(b, s * k, d)
    v = valid.reshape(b, s * k)
    pos = (a * positive.reshape(b, s * k, d)).sum(-1) / temperature  # (B, SK)
    neg = a @ n.transpose(1, 2) / temperature  # (B, SK, SK)
    window = torch.arange(s, device=a.device).repeat_interleave(k)
    allowed = (window[:, None] != window[None, :])[None] & v[:, None, :]
    neg = neg.masked_fill(~allowed, float("-inf"))
    loss = torch.logsumexp(torch.cat([pos[..., None], neg], -1), -1) - pos
    if not bool(v.any()):
        return anchor.sum() * 0.0
    return loss[v].mean()


def cpc_nce(x: Tensor, y: Tensor, valid: Tensor, predictor: nn.Module) -> Tensor:
    """The released code's contrast (its ``CPC``): predict ``y`` (N, K, D) from ``x`` (N, K, D) with ``predictor``
    along the word axis; cosine similarity of every valid (window, word) prediction with every valid target of
    the batch, temperature 1; returns mean(pos - logsumexp) (minus an InfoNCE loss, as the code does)."""
    pred = predictor(x.transpose(1, 2)).transpose(1, 2)
    p = F.normalize(pred[valid].float(), dim=-1)
    t = F.normalize(y[valid].float(), dim=-1)
    if p.shape[0] == 0:
        return x.sum() * 0.0
    sim = p @ t.T
    return (sim.diagonal() - torch.logsumexp(sim, dim=-1)).mean()


def mask_count(progress: float, num_tokens: int, ratio: Sequence[float] = (0.1, 0.5)) -> int:
    """Eq. 7's ceil(alpha M): the tokens masked at training ``progress`` alpha in [0, 1], growing linearly from
    ``ratio[0]`` to ``ratio[1]`` of ``num_tokens`` (ratio[0] = 0 is Eq. 7 with M = ratio[1] * tokens)."""
    r0, r1 = float(ratio[0]), float(ratio[1])
    alpha = min(max(float(progress), 0.0), 1.0)
    return int(math.ceil(round((r0 + (r1 - r0) * alpha) * num_tokens, 9)))


def emotion_oriented_mask(scores: Tensor, progress: float, ratio: Sequence[float] = (0.1, 0.5),
                          hint_ratio: float = 0.05) -> tuple[Tensor, Tensor]:
    """Eq. 7: ``scores`` (N, P) -> (masked, hints) (N, P) bool. Tokens sorted by score, descending (ties: the
    lower index first); rank idx (1-based) is masked iff S < idx <= ceil(alpha M) + S, a hint iff idx <= S,
    S = floor(hint_ratio * P)."""
    n, p = scores.shape
    s = int(math.floor(hint_ratio * p + 1e-9))
    m = min(mask_count(progress, p, ratio), p - s)
    order = torch.sort(scores.float(), dim=-1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(1, p + 1, device=scores.device).expand(n, -1))
    return (rank > s) & (rank <= m + s), rank <= s


def code_mask_ratio(progress: float) -> float:
    """The released code's ratio: 0.1 + 0.8 min(0.5, epoch / epochs) (0.108 after epoch 1 of 100; 0.5 from 50)."""
    return 0.1 + 0.8 * min(0.5, float(progress))


def code_attention_mask(scores: Tensor, progress: float, drop_prob: float = 0.5,
                        generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """The released code's ``attmask_hint``: mask the top floor(P r) tokens (r = :func:`code_mask_ratio`);
    cancel a row's whole mask with probability ``drop_prob``; then reveal floor(0.1 r P) tokens drawn without
    replacement from the top floor(0.1 P) (the hints). Returns (masked, hints)."""
    n, p = scores.shape
    r = code_mask_ratio(progress)
    order = torch.sort(scores.float(), dim=-1, descending=True, stable=True).indices
    masked = torch.zeros(n, p, dtype=torch.bool, device=scores.device)
    masked.scatter_(1, order[:, :int(math.floor(p * r + 1e-9))], True)
    keep = torch.rand(n, generator=generator) >= drop_prob
    masked &= keep.to(masked.device)[:, None]
    hints = torch.zeros_like(masked)
    pool, n_hint = int(math.floor(0.1 * p + 1e-9)), int(math.floor(0.1 * r * p + 1e-9))
    if n_hint:
        for i in range(n):
            pick = torch.randperm(pool, generator=generator)[:n_hint].to(order.device)
            hints[i, order[i, pick]] = True
    hints &= masked
    return masked & ~hints, hints


def tubelet_targets(video: Tensor, tubelet: int, patch: int, eps: float = 1e-6) -> Tensor:
    """A.9's patch target: ``video`` (N, 3, T, H, W) -> (N, P, tubelet * patch * patch * 3), the tokens in the
    patch embedding's (t, h, w) order, each normalised per channel over its pixels (mean, unbiased std)."""
    n, c, t, h, w = video.shape
    x = video.float().reshape(n, c, t // tubelet, tubelet, h // patch, patch, w // patch, patch)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(n, -1, tubelet * patch * patch, c)
    x = (x - x.mean(dim=2, keepdim=True)) / (x.var(dim=2, unbiased=True, keepdim=True).sqrt() + eps)
    return x.reshape(n, x.shape[1], -1)


def distribution_kl(target_logits: Tensor, pred_logits: Tensor) -> Tensor:
    """KL(softmax(target) || softmax(pred)), mean over rows; the target is detached."""
    t = torch.log_softmax(target_logits.detach().float(), -1)
    return (t.exp() * (t - torch.log_softmax(pred_logits.float(), -1))).sum(-1).mean()


# -------------------------------------------------------------------------------------------------
# modules
def _mlp(dim: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out))


class TACL(nn.Module):
    """Eq. 4 cross-attention from word queries into one window's video and audio tokens (standard multi-head
    attention with key-padding masks), the modality-aware projections and (code mode) the CPC predictors."""

    def __init__(self, dim: int, heads: int, num_classes: int, *, mode: str = "paper", aux_heads: bool = False):
        super().__init__()
        self.norm_words, self.norm_video, self.norm_audio = (nn.LayerNorm(dim) for _ in range(3))
        self.attn_video = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.attn_audio = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.proj_video, self.proj_audio = _mlp(dim, dim, dim), _mlp(dim, dim, dim)
        self.mode = mode
        if mode == "code":
            def predictor():
                layers = []
                for _ in range(4):
                    layers += [nn.Conv1d(dim, dim, 3, padding=1), nn.ReLU()]
                return nn.Sequential(*layers)
            self.pred_video, self.pred_audio = predictor(), predictor()
        self.aux = nn.ModuleDict({"video": _mlp(dim, dim, num_classes), "audio": _mlp(dim, dim, num_classes)}) \
            if aux_heads else None

    def attend(self, words: Tensor, video: Tensor, audio: Tensor, video_pad: Tensor | None = None,
               audio_pad: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``words`` (N, K, D), tokens (N, P, D) -> x^{v->l}, x^{a->l} (N, K, D) and the head-mean attention
        maps (N, K, Pv), (N, K, Pa) (Eq. 6's A)."""
        q = self.norm_words(words)
        kv, ka = self.norm_video(video), self.norm_audio(audio)
        v2l, wv = self.attn_video(q, kv, kv, key_padding_mask=video_pad, need_weights=True, average_attn_weights=True)
        a2l, wa = self.attn_audio(q, ka, ka, key_padding_mask=audio_pad, need_weights=True, average_attn_weights=True)
        return v2l, a2l, wv, wa

    def forward(self, words, video, audio, video_pad=None, audio_pad=None):
        v2l, a2l, wv, wa = self.attend(words, video, audio, video_pad, audio_pad)
        return self.proj_video(v2l), self.proj_audio(a2l), wv, wa


class RecoveryDecoder(nn.Module):
    """A.9's decoder (the code's): Linear(D -> d) + fixed sinusoid positions, ``depth`` blocks, LayerNorm,
    Linear(d -> tubelet pixels); a class head on the mean decoder feature of a window (the KL target)."""

    def __init__(self, dim: int, dec_dim: int, depth: int, heads: int, num_patches: int, patch_dim: int,
                 num_classes: int, kl_head: bool = True):
        super().__init__()
        self.embed = nn.Linear(dim, dec_dim)
        self.register_buffer("pos_embed", sinusoid_position_table(num_patches, dec_dim)[None], persistent=False)
        self.blocks = nn.ModuleList(TransformerBlock(dec_dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dec_dim, eps=1e-6)
        self.pixels = nn.Linear(dec_dim, patch_dim)
        self.cls = nn.Linear(dec_dim, num_classes) if kl_head else None
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor | None]:
        x = self.embed(tokens) + self.pos_embed.to(tokens.dtype)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return self.pixels(x), (self.cls(x.mean(1)) if self.cls is not None else None)


@dataclass
class MartOutput:
    """One pretraining forward: ``loss`` (weighted total), ``losses`` (each term, detached floats), ``out`` (the
    backbone's :class:`ClassifierOutput` of the pass with gradients), ``info`` (masks, verification: tensors)."""

    loss: Tensor
    losses: dict[str, float]
    out: ClassifierOutput
    info: dict[str, Any]


class MART(nn.Module):
    """The MART plug-in over an MBT backbone (module docstring). ``forward`` without ``words`` is the backbone's
    classification forward (evaluation, fine-tuning, predict); with ``words``, ``label`` and ``loss_fn`` it is
    one pretraining step and returns a :class:`MartOutput`."""

    def __init__(self, backbone: MBT, *, num_classes: int, **cfg):
        super().__init__()
        unknown = set(cfg) - set(MART_PLUGIN_CONFIG)
        if unknown:
            raise ConfigError(f"mart: unknown option(s) {', '.join(sorted(unknown))}")
        cfg = {**MART_PLUGIN_CONFIG, **cfg}
        for key, options in _CHOICES.items():
            if cfg[key] not in options:
                raise ConfigError(f"mart: {key} must be one of {', '.join(map(repr, options))}, got {cfg[key]!r}")
        if not backbone.segment_mode:
            raise ConfigError("mart: the backbone must be in segment mode (segment_mode: true): one window per sample")
        if int(cfg["verify_level"]) not in (0, 1, 2, 3):
            raise ConfigError(f"mart: verify_level must be 0, 1, 2 or 3, got {cfg['verify_level']!r}")
        r = cfg["mask_ratio"]
        if not (isinstance(r, (list, tuple)) and len(r) == 2 and 0 <= float(r[0]) <= float(r[1]) <= 1):
            raise ConfigError(f"mart: mask_ratio must be [start, end] with 0 <= start <= end <= 1, got {r!r}")
        if cfg["mask_rank"] == "code" and backbone.video_encoder.num_special == 0:
            raise ConfigError("mart: mask_rank='code' ranks by the [CLS] attention: the backbone needs "
                              "classifier: token")
        self.cfg = cfg
        self.backbone = backbone
        self.num_classes = num_classes
        self.input_keys = ("video", "audio", "text")
        venc = backbone.video_encoder
        dim = venc.dim
        self.mask_token = nn.Parameter(torch.zeros(dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.words = build_text_encoder(cfg["word_encoder"], dim, heads=int(cfg["tacl_heads"]), layers=1,
                                        max_length=int(cfg["word_max_len"]), buckets=int(cfg["word_buckets"]),
                                        model_dir=cfg["word_model_dir"])
        self.tacl = TACL(dim, int(cfg["tacl_heads"]), num_classes, mode=cfg["tacl_mode"],
                         aux_heads=bool(cfg["tacl_aux_heads"]))
        patch_dim = venc.tubelet_size * venc.patch_size ** 2 * 3
        self.decoder = RecoveryDecoder(dim, int(cfg["decoder_dim"]), int(cfg["decoder_depth"]),
                                       int(cfg["decoder_heads"]), venc.n_patches, patch_dim, num_classes,
                                       kl_head=cfg["recover"] == "pix+kl")
        if not cfg["train_plugin"]:  # the released code: the optimiser never sees the MART modules
            for p in self.plugin_parameters():
                p.requires_grad_(False)

    # ---------------------------------------------------------------------------------------------
    def plugin_parameters(self) -> list[nn.Parameter]:
        """Every parameter MART adds to the backbone."""
        return [self.mask_token, *self.words.parameters(), *self.tacl.parameters(), *self.decoder.parameters()]

    def classification_loss(self, out: ClassifierOutput, target: Tensor, loss_fn) -> Tensor:
        return self.backbone.classification_loss(out, target, loss_fn)

    @property
    def text_encoder(self):
        """The backbone's text encoder (None for a video + audio MBT): what ONNX export tokenises for."""
        return self.backbone.text_encoder

    def tokenize_text(self, text):
        return self.backbone.tokenize_text(text)

    def _backbone_kwargs(self, text, text_ids, text_mask) -> dict:
        if self.backbone.text_encoder is None:
            return {}
        return {"text": text, "text_ids": text_ids, "text_mask": text_mask}

    def encode_words(self, words: WindowWords) -> Tensor:
        """(B, S, K, D): each word alone through the word encoder, the mean of its tokens (0 for padding)."""
        b, s, k = words.valid.shape
        flat = [w for sample in words.texts for window in sample for w in window]
        ids, pad = self.words.tokenize([flat])  # (1, B*S*K, L)
        device = self.mask_token.device
        tokens, pad = self.words(ids.to(device), pad.to(device))
        tokens, pad = tokens[0], pad[0]
        valid = (~pad).to(tokens.dtype)[..., None]
        feats = (tokens * valid).sum(1) / valid.sum(1).clamp(min=1.0)
        return feats.reshape(b, s, k, -1)

    def _cls_attention(self, x: Tensor, block) -> Tensor:
        """The head-mean [CLS] -> patch attention of ``block`` on its input ``x`` (N, special + P (+ bottlenecks), D)."""
        venc = self.backbone.video_encoder
        q, k, _ = block.attn.qkv_heads(block.norm1(x))
        att = torch.softmax((q[:, :, :1] @ k.transpose(-1, -2)) * block.attn.scale, dim=-1)  # (N, h, 1, L)
        return att[:, :, 0, venc.num_special:venc.num_special + venc.n_patches].mean(1)

    def _scores(self, attn_v: Tensor, verified: Tensor, cls_att: Tensor | None, generator) -> Tensor:
        """Token scores (B, S, Pv): the mean over the verified words of the word -> patch attention; a window
        without a verified word gets random scores (random masking)."""
        w = verified.to(attn_v.dtype)[..., None]  # (B, S, K, 1)
        inter = (attn_v * w).sum(2) / w.sum(2).clamp(min=1.0)
        has = verified.any(-1, keepdim=True)
        if self.cfg["mask_rank"] == "code":
            inter = 0.9 * cls_att + 0.1 * inter
            return inter
        rand = torch.rand(inter.shape, generator=generator).to(inter.device)
        return torch.where(has, inter, rand)

    def _mask(self, scores: Tensor, progress: float, generator) -> tuple[Tensor, Tensor]:
        b, s, p = scores.shape
        flat = scores.reshape(b * s, p).detach()
        if self.cfg["mask_rank"] == "code":
            m, h = code_attention_mask(flat, progress, float(self.cfg["mask_drop_prob"]), generator)
        else:
            m, h = emotion_oriented_mask(flat, progress, self.cfg["mask_ratio"], float(self.cfg["mask_hint_ratio"]))
            if float(self.cfg["mask_drop_prob"]) > 0:
                keep = (torch.rand(b * s, generator=generator) >= float(self.cfg["mask_drop_prob"])).to(m.device)
                m = m & keep[:, None]
        return m.reshape(b, s, p), h.reshape(b, s, p)

    # ---------------------------------------------------------------------------------------------
    def forward(self, video: Tensor, audio: Tensor, text=None, text_ids: Tensor | None = None,
                text_mask: Tensor | None = None, *, words: WindowWords | None = None, label: Tensor | None = None,
                loss_fn=None, progress: float = 0.0, class_sign: Tensor | None = None,
                generator: torch.Generator | None = None):
        kwargs = self._backbone_kwargs(text, text_ids, text_mask)
        if words is None:
            out = self.backbone(video, audio, **kwargs)
            feats = out.extras.get("segment_features")
            if feats is not None:  # Eq. 3 per window: what predict verifies each window's words against
                out.extras["temporal_emotion_score"] = temporal_emotion_score(feats, self.backbone.features_to_logits)[0]
            return out
        if label is None or loss_fn is None:
            raise ValueError("mart: a pretraining forward needs label and loss_fn beside words")
        return self.pretrain(video, audio, kwargs, words, label, loss_fn, progress, class_sign, generator)

    def pretrain(self, video, audio, kwargs, words: WindowWords, label, loss_fn, progress, class_sign, generator):
        cfg, bb = self.cfg, self.backbone
        venc, aenc = bb.video_encoder, bb.audio_encoder
        kv, ka = venc.num_special, aenc.num_special
        device = self.mask_token.device
        words = words.to(device)
        level = int(cfg["verify_level"])
        if class_sign is None:
            if level >= 1:
                raise ConfigError("mart: verify_level >= 1 needs the classes' polarity (data.polarity: ve8, ek6 or "
                                  "{class: positive|negative}); or set model.args.verify_level: 0")
            class_sign = torch.zeros(self.num_classes, dtype=torch.long)
        want_cls_att = cfg["mask_rank"] == "code"
        captured: dict[str, Tensor] = {}
        last = venc.blocks[-1]

        def run(**extra):
            hook = last.register_forward_pre_hook(lambda m, a: captured.__setitem__("x", a[0])) if want_cls_att else None
            try:
                return bb(video, audio, **kwargs, **extra)
            finally:
                if hook is not None:
                    hook.remove()

        input_mask = cfg["mask_where"] == "input"
        if input_mask:
            with torch.no_grad():
                first = run()
        else:
            first = run()
        feats = first.extras["segment_features"]
        b, s = feats.shape[:2]
        dtcam, _ = temporal_emotion_score(feats.detach(), bb.features_to_logits)
        if words.valid.shape[:2] != (b, s):
            if words.valid.shape[0] != b or words.valid.shape[1] not in (0, 1):
                raise ValueError(f"mart: words for {tuple(words.valid.shape[:2])} windows, the video has ({b}, {s})")
            words = _broadcast_words(words, s)
        ver = verify_words(dtcam, words, class_sign, level, float(cfg["verify_tau"]))
        verified = ver["verified"]
        word_feats = self.encode_words(words)  # (B, S, K, D)
        k = word_feats.shape[2]
        flat_words = word_feats.reshape(b * s, k, -1)
        cls_att = None
        if input_mask:
            with torch.no_grad():
                vt0 = first.extras["segment_video_tokens"][:, :, kv:].reshape(b * s, -1, feats.shape[-1])
                at0 = first.extras["segment_audio_tokens"][:, :, ka:].reshape(b * s, -1, feats.shape[-1])
                _, _, wv0, _ = self.tacl.attend(flat_words, vt0, at0)
                if want_cls_att:
                    cls_att = self._cls_attention(captured["x"], last).reshape(b, s, -1)
                scores = self._scores(wv0.reshape(b, s, k, -1), verified, cls_att, generator)
            masked, hints = self._mask(scores, progress, generator)
            out = run(video_patch_mask=masked, mask_token=self.mask_token)
        else:
            out = first
        vt = out.extras["segment_video_tokens"][:, :, kv:].reshape(b * s, -1, feats.shape[-1])
        at = out.extras["segment_audio_tokens"][:, :, ka:].reshape(b * s, -1, feats.shape[-1])
        zv, za, wv, _ = self.tacl(flat_words, vt, at)
        if not input_mask:
            with torch.no_grad():
                if want_cls_att:
                    cls_att = self._cls_attention(captured["x"], last).reshape(b, s, -1)
                scores = self._scores(wv.detach().reshape(b, s, k, -1), verified, cls_att, generator)
            masked, hints = self._mask(scores, progress, generator)
            vt = torch.where(masked.reshape(b * s, -1, 1), self.mask_token.to(vt.dtype), vt)

        losses: dict[str, Tensor] = {"cls": bb.classification_loss(out, label, loss_fn)}
        zv4, za4 = zv.reshape(b, s, k, -1), za.reshape(b, s, k, -1)
        if cfg["tacl_mode"] == "paper":
            t = float(cfg["tacl_temperature"])
            losses["tacl"] = (tacl_infonce(zv4, word_feats, za4, verified, t)
                              + tacl_infonce(za4, word_feats, zv4, verified, t))
        else:
            flat_valid = verified.reshape(b * s, k)
            nce = (cpc_nce(za, zv, flat_valid, self.tacl.pred_video) + cpc_nce(zv, za, flat_valid, self.tacl.pred_audio))
            losses["tacl"] = nce if cfg["tacl_code_sign"] == "released" else -nce
        if self.tacl.aux is not None:
            w = verified.reshape(b, s * k).to(zv.dtype)[..., None]
            aux = 0.0
            for name, z in (("video", zv), ("audio", za)):
                pooled = (z.reshape(b, s * k, -1) * w).sum(1) / w.sum(1).clamp(min=1.0)
                aux = aux + loss_fn(self.tacl.aux[name](pooled).float(), label)
            losses["aux"] = aux
        pixels, dec_logits = self.decoder(vt)
        v = bb._video_input(video)
        target = tubelet_targets(v.reshape(b * s, *v.shape[2:]), venc.tubelet_size, venc.patch_size)
        per_token = ((pixels.float() - target) ** 2).mean(-1)
        m = masked.reshape(b * s, -1).to(per_token.dtype)
        losses["pix"] = (per_token * m).sum() / (m.sum() + 1e-5)
        if dec_logits is not None:
            losses["kl"] = distribution_kl(dtcam.reshape(b * s, -1), dec_logits)
        weights = {"cls": cfg["loss_cls"], "tacl": cfg["loss_tacl"], "pix": cfg["loss_pix"], "kl": cfg["loss_kl"],
                   "aux": cfg["loss_aux"]}
        total = sum(float(weights[n]) * v for n, v in losses.items())
        info = {"masked": masked, "hints": hints, "verified": verified, "E1": ver["E1"], "E2": ver["E2"],
                "E3": ver["E3"], "video_emotion": ver["video_emotion"], "dtcam": dtcam}
        logs = {n: float(v.detach()) for n, v in losses.items()}
        logs["mask_ratio"] = float(masked.float().mean())
        logs["verified_words"] = float(verified.sum()) / max(1, int(words.valid.sum()))
        return MartOutput(total, logs, out, info)

    def example_inputs(self, batch_size: int = 1) -> dict:
        """The backbone's, and ``text`` (per-window strings: the words MART verifies and predict shows)."""
        out = self.backbone.example_inputs(batch_size)
        if "text" not in out:
            words = ("so", "happy", "to", "see", "you", "why", "would", "this", "happen", "again")
            s = self.backbone.seq_len
            out["text"] = [[" ".join(words[(i + j + k) % len(words)] for k in range(3)) for j in range(s)]
                           for i in range(batch_size)]
        return out


def _broadcast_words(words: WindowWords, s: int) -> WindowWords:
    """Words of one (or no) window per sample -> the same words at every one of ``s`` windows."""
    b, s0, k = words.valid.shape
    if s0 == 0:
        z = torch.zeros(b, s, 1, dtype=torch.long, device=words.valid.device)
        return WindowWords([[[""] for _ in range(s)] for _ in range(b)], z, z - 1, z.float(), z.bool(), words.hits)
    rep = lambda t: t.expand(b, s, k).contiguous()  # noqa: E731
    return WindowWords([[list(sample[0]) for _ in range(s)] for sample in words.texts], rep(words.sentiment),
                       rep(words.emotion), rep(words.degree), rep(words.valid), words.hits)


def mart_input_keys(args) -> tuple[str, ...]:
    return ("video", "audio", "text")


def _split(cfg: dict) -> tuple[dict, dict]:
    plugin = {k: cfg.pop(k) for k in list(cfg) if k in MART_PLUGIN_CONFIG}
    return cfg, plugin


@register_model(
    "mart",
    default_config=MART_CONFIG,
    input_keys=("video", "audio", "text"),
    input_keys_for=mart_input_keys,
    tasks=("mart_pretrain", "classify"),
    derived_args=_DERIVED,
    pretrained_args=("pretrained_video", "pretrained_audio"),
    tiny_args={**_TINY, "audio_frozen_layers": 1, "decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2,
               "tacl_heads": 2},
    description="MART (CVPR'24): lexicon-verified cross-attention, emotion-oriented masking and emotion "
                "distribution recovery over MART's MBT (a pretraining plug-in; fine-tune the backbone after)",
)
def mart(**cfg) -> MART:
    """Build :class:`MART` over an ``mbt_mart`` backbone: MBT's arguments and MART's (``MART_PLUGIN_CONFIG``)."""
    mbt_args, plugin = _split(dict(cfg))
    return MART(MBT(**mbt_args), num_classes=mbt_args.get("num_classes", MBT_MART_CONFIG["num_classes"]), **plugin)


from ..engine import mart as _mart_task  # noqa: E402,F401  (registers the "mart_pretrain" task)
