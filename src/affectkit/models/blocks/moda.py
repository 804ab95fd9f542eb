"""MODA-style duplex attention (Zhang et al., ICML 2025) as a fusion block over modality tokens.

Spec: ``methods_mart_mbt_moda_gait.md`` section C. The released code (KwaiVGI/MODA ``aa627ae``)
modifies the keys of a LLaMA attention; this is the kit's batch-vectorised, encoder-side form (C.4).

Alignment ("align"), per head (head size d), for each ordered pair (src -> tgt) of modalities::

    Khat   = rownorm(K + 1e-6)                                   every token's key, unit L2 norm
    G_src  = rownorm_rows( sum_{n in src, valid} Khat_n^T V_n )  (d x d): src's key -> value basis
    A_tgt  = Khat_tgt G_src                                      tgt keys in src's basis
    K_tgt' = P_tgt( K_tgt + sum_src r_{src->tgt} * A_tgt )       r (d,) zero-initialised, P Linear(d, d, no bias)

``r`` and ``P`` are shared by the heads (as the code). Padded tokens (``key_padding_mask`` True) and
other modalities' tokens do not enter ``G_src`` (a masked einsum replaces the code's per-sample loop).
Queries, values and the keys of modalities that are no target are unchanged.

Options where the code and the paper differ (defaults first):

* ``pairs``: ``"duplex"`` (the paper: every ordered pair of the modalities present) or ``"simplex"``
  (the released code: only text -> vision, here every other modality -> ``video``; the text-side
  update is commented out there).
* ``proj_init``: ``"identity"`` (spec's recommendation: at initialisation the block is exactly the plain
  attention, since r = 0 and P = I) or ``"random"`` (the code's effect: a fresh Linear, N(0, 0.02), so
  the aligned keys start as a random projection).

Correction ("correct", the paper's adaptive masked attention; the exact rule is not in the released
code): a modality mask template added to the attention, chosen per fusion layer:
``"full"`` (every token sees every valid token), ``"intra_only"`` (block diagonal: a token sees its own
modality), ``"cross_only"`` (a token sees the other modalities, and itself). Key padding masks are
applied on top; a token always sees itself, so no row is empty.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError
from .transformer import TransformerBlock, attention_mask

__all__ = ["MASK_TEMPLATES", "PAIR_MODES", "modality_template", "ModaAlignment", "ModaFusionLayer", "moda_pairs"]

MASK_TEMPLATES = ("full", "intra_only", "cross_only")
PAIR_MODES = ("duplex", "simplex")
PROJ_INITS = ("identity", "random")


def moda_pairs(modalities: tuple[str, ...], mode: str, vision: str = "video") -> tuple[tuple[str, str], ...]:
    """Ordered (src, tgt) pairs: all of them (``duplex``) or every other modality into ``vision`` (``simplex``)."""
    if mode not in PAIR_MODES:
        raise ConfigError(f"moda: pairs must be one of {PAIR_MODES}, got {mode!r}")
    if mode == "duplex":
        return tuple(itertools.permutations(modalities, 2))
    return tuple((m, vision) for m in modalities if m != vision)


def modality_template(ids: Tensor, policy: str) -> Tensor:
    """(N, N) boolean "may attend" mask from per-token modality ids (N,)."""
    if policy not in MASK_TEMPLATES:
        raise ConfigError(f"moda: mask must be one of {MASK_TEMPLATES}, got {policy!r}")
    same = ids[:, None] == ids[None, :]
    if policy == "full":
        return torch.ones_like(same)
    return same if policy == "intra_only" else ~same


class ModaAlignment(nn.Module):
    """The alignment phase over the keys (see the module docstring).

    ``forward(k, v, ids, key_padding_mask)``: ``k``, ``v`` (B, h, N, d); ``ids`` (N,) the index into
    ``modalities`` of each token; ``key_padding_mask`` (B, N) True = padding, or None -> aligned ``k``.
    Parameters: ``ratio`` (pairs, d) zeros; ``proj.<tgt>`` Linear(d, d, bias=False) per target.
    """

    def __init__(self, head_dim: int, modalities: tuple[str, ...], pairs: tuple[tuple[str, str], ...], *,
                 proj_init: str = "identity", eps: float = 1e-6):
        super().__init__()
        if proj_init not in PROJ_INITS:
            raise ConfigError(f"moda: proj_init must be one of {PROJ_INITS}, got {proj_init!r}")
        for src, tgt in pairs:
            if src not in modalities or tgt not in modalities or src == tgt:
                raise ConfigError(f"moda: pair {src}->{tgt} is not between two of {modalities}")
        self.head_dim, self.modalities, self.pairs, self.eps = head_dim, tuple(modalities), tuple(pairs), eps
        self.ratio = nn.Parameter(torch.zeros(len(self.pairs), head_dim))
        self.targets = tuple(dict.fromkeys(t for _, t in self.pairs))
        self.proj = nn.ModuleDict({t: nn.Linear(head_dim, head_dim, bias=False) for t in self.targets})
        for lin in self.proj.values():
            if proj_init == "identity":
                with torch.no_grad():
                    lin.weight.copy_(torch.eye(head_dim))
            else:
                nn.init.normal_(lin.weight, std=0.02)

    def forward(self, k: Tensor, v: Tensor, ids: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        valid = torch.ones(k.shape[0], k.shape[2], dtype=k.dtype, device=k.device)
        if key_padding_mask is not None:
            valid = valid * (~key_padding_mask.bool()).to(k.dtype)
        khat = F.normalize(k + 1e-6, dim=-1, eps=self.eps)  # (B, h, N, d)
        delta = torch.zeros_like(k)
        grams: dict[str, Tensor] = {}  # one Gram matrix per source modality (shared by its pairs)
        for p, (src, tgt) in enumerate(self.pairs):
            t_idx = self.modalities.index(tgt)
            gram = grams.get(src)
            if gram is None:
                w = valid * (ids == self.modalities.index(src)).to(k.dtype)[None]  # (B, N): valid src tokens
                # sum_n w_n khat_n^T v_n as one batched matmul (a three-operand einsum formed the (B, h, N, d, d)
                # products and made MODA fusion about 5x slower than bottleneck fusion)
                gram = (khat * w[:, None, :, None]).transpose(-1, -2) @ v  # (B, h, d, d)
                gram = grams[src] = F.normalize(gram, dim=-1, eps=self.eps)
            aligned = khat @ gram  # (B, h, N, d)
            on_tgt = (ids == t_idx).to(k.dtype)[None, None, :, None]
            delta = delta + on_tgt * self.ratio[p] * aligned
        out = k
        for tgt in self.targets:
            on_tgt = (ids == self.modalities.index(tgt))[None, None, :, None]
            out = torch.where(on_tgt, self.proj[tgt](k + delta), out)
        return out

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, pairs={['->'.join(p) for p in self.pairs]}"


class ModaFusionLayer(nn.Module):
    """One fusion layer: joint attention over several modalities' tokens with MODA alignment and a mask
    template, each modality keeping its own transformer block (its norms, qkv, proj, MLP).

    The blocks are passed to ``forward`` (not owned: they are the encoders' layers, and owning them
    twice would store their weights twice). ``forward(tokens, padding, blocks)``: ``tokens`` {name:
    (B, N_m, D)} in a fixed order, ``padding`` {name: (B, N_m) bool True = pad, or None}, ``blocks``
    {name: TransformerBlock} -> {name: (B, N_m, D)}.
    """

    def __init__(self, dim: int, heads: int, modalities: tuple[str, ...], *, pairs: str = "duplex",
                 mask: str = "full", proj_init: str = "identity"):
        super().__init__()
        if mask not in MASK_TEMPLATES:
            raise ConfigError(f"moda: mask must be one of {MASK_TEMPLATES}, got {mask!r}")
        self.modalities, self.mask, self.heads = tuple(modalities), mask, heads
        self.align = ModaAlignment(dim // heads, self.modalities, moda_pairs(self.modalities, pairs),
                                   proj_init=proj_init)

    def forward(self, tokens: dict[str, Tensor], padding: dict[str, Tensor | None],
                blocks: dict[str, TransformerBlock]) -> dict[str, Tensor]:
        names = [m for m in self.modalities if m in tokens]
        qs, ks, vs, ids, pads = [], [], [], [], []
        for name in names:
            x = tokens[name]
            q, k, v = blocks[name].attn.qkv_heads(blocks[name].norm1(x))
            qs.append(q), ks.append(k), vs.append(v)
            ids.append(torch.full((x.shape[1],), self.modalities.index(name), dtype=torch.long, device=x.device))
            pad = padding.get(name)
            pads.append(torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device) if pad is None else pad.bool())
        q, k, v = torch.cat(qs, 2), torch.cat(ks, 2), torch.cat(vs, 2)
        ids_all, pad_all = torch.cat(ids), torch.cat(pads, 1)
        k = self.align(k, v, ids_all, pad_all)
        allowed = attention_mask(q.shape[2], pad_all, modality_template(ids_all, self.mask), q.device)
        attn = blocks[names[0]].attn  # one softmax over all tokens; each modality then applies its own proj
        z = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                           dropout_p=attn.attn_drop if self.training else 0.0)
        z = z.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)  # (B, N, D)
        out, start = {}, 0
        for name in names:
            n = tokens[name].shape[1]
            a = blocks[name].attn
            attn_out = a.proj_drop(a.proj(z[:, start:start + n]))
            out[name] = blocks[name].feed_forward(tokens[name], attn_out)
            start += n
        return out

    def extra_repr(self) -> str:
        return f"modalities={self.modalities}, mask={self.mask!r}"
