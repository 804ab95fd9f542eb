"""Transformer blocks shared by the token-based models (MBT, MART, MODA fusion).

Blocks (pre-LN, timm/VideoMAE naming so public checkpoints map key by key)::

    TransformerBlock:  x = x + DropPath(attn(norm1(x)));  x = x + DropPath(mlp(norm2(x)))
    MultiHeadSelfAttention: qkv Linear(D, 3D), scaled dot-product softmax over the keys, proj Linear(D, D);
        ``key_padding_mask`` (B, N) True = padding (PyTorch's convention); ``attn_mask`` (N, N) or
        (B, N, N) True = may attend. A token may always attend to itself, so no row is empty.
    Mlp: fc1 Linear(D, r*D) -> GELU -> fc2 Linear(r*D, D)

Encoders (both expose ``embed``, ``blocks``, ``norm`` so a fusion model can interleave their layers)::

    VideoViT (VideoMAE-style): video (N, 3, T, H, W) -> Conv3d tubelets (t x p x p, stride the same)
        -> (N, T/t * H/p * W/p, D) in (t, h, w) order, [CLS] first if ``cls_token``;
        position embedding "sinusoid" (fixed table, VideoMAE; one row per token incl. CLS) or
        "learned" (normal std 0.02, ViT / scenic MBT).
    AudioSpectrogramTransformer (AST): features (N, frames, bins) -> (N, 1, bins, frames)
        -> Conv2d 16x16 stride ``patch_stride`` (10: AST's overlapping patches; 16: MBT's)
        -> f x t patches in (f, t) order, [CLS] and [DIST] first when enabled; learned position embedding.
        bins=128, frames=100, stride 10 -> f=12, t=9: 108 patches (+2).

Checkpoint converters (local files only; ``torch.load(weights_only=True)`` or ``.safetensors``):

* :func:`load_videomae_checkpoint` into a :class:`VideoViT`. Accepted layouts: VideoMAE pre-training
  (``{'model': {...}}``, keys ``encoder.patch_embed.proj.weight``, ``encoder.blocks.N.attn.qkv.weight``
  with ``encoder.blocks.N.attn.q_bias`` / ``v_bias`` (no key bias: the qkv bias becomes
  ``[q_bias, 0, v_bias]``), ``encoder.norm.*``; ``decoder.*``, ``encoder_to_decoder.*`` and
  ``mask_token`` are dropped), VideoMAE fine-tuning (the same without ``encoder.``; ``fc_norm.*``
  (mean-pooling variant) maps to ``norm.*``; ``head.*`` dropped), and timm ViT
  (``blocks.N.attn.qkv.bias``, ``cls_token``, ``pos_embed``; ``head.*`` dropped). Wrappers
  ``model`` / ``module`` / ``state_dict`` and a ``module.`` prefix are removed. A 2D patch kernel
  (D, 3, p, p) (an image ViT) is inflated to the tubelet by "central frame" initialisation
  (scenic's: the 2D kernel at the middle time step, zeros elsewhere). A ``pos_embed`` in the file
  is resized to the model's grid (below) when the model's is learned; into a fixed-sinusoid model
  it is an error (build with ``pos_embed="learned"``).
* :func:`load_ast_checkpoint` into an :class:`AudioSpectrogramTransformer`. Accepted: AST's own
  release (``audioset_10_10_0.4593.pth``: keys ``module.v.*`` (a timm DeiT), ``module.mlp_head.*``
  dropped) and timm DeiT / DeiT-distilled (``cls_token``, ``dist_token``, ``pos_embed``,
  ``patch_embed.proj.weight`` (D, 3, 16, 16) summed over the colour channels to (D, 1, 16, 16), as
  AST does; ``head.*`` / ``head_dist.*`` dropped). The file's ``pos_embed`` is cut into its special
  rows (one per token among cls/dist the file has) and its patch grid (DeiT-384: 24x24; AST: 12x101),
  then resized per axis to the model's (f, t) grid by AST's rule: a centre crop where the model's axis
  is shorter (start = src//2 - dst//2; AST 12x101 -> 12x9 keeps time positions 46..54), bilinear
  interpolation where it is longer.

Every file key must be mapped or be one of the dropped heads/decoders listed above; special tokens
the model does not have (e.g. ``dist_token`` into an encoder without one) are reported as unused.
Any other key, a model key the file lacks (besides ``cls_token`` / ``dist_token`` / ``pos_embed``,
which keep their initialisation and are reported missing) and any shape that cannot be made to fit
raise :class:`~affectkit.errors.CheckpointError` naming the file and the keys; nothing is loaded then.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import CheckpointError, ConfigError
from .resnet3d import LoadReport

__all__ = ["DropPath", "MultiHeadSelfAttention", "Mlp", "TransformerBlock", "sinusoid_position_table",
           "VideoViT", "AudioSpectrogramTransformer", "resize_position_grid", "read_weight_file",
           "convert_videomae_state_dict", "load_videomae_checkpoint", "convert_ast_state_dict",
           "load_ast_checkpoint", "attention_mask"]


# ----------------------------------------------------------------------------------------------
# blocks
# ----------------------------------------------------------------------------------------------
class DropPath(nn.Module):
    """Stochastic depth: in training, zero a whole sample's residual branch with probability ``p``
    and scale the kept ones by ``1 / (1 - p)``; the identity in eval mode."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ConfigError(f"drop path rate must be in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def attention_mask(n: int, key_padding_mask: Tensor | None, attn_mask: Tensor | None,
                   device) -> Tensor | None:
    """The boolean "may attend" mask (B or 1, 1, N, N) from a key padding mask (B, N) (True = pad)
    and an allowed-pairs mask (N, N) or (B, N, N) (True = allowed), or None when both are None.
    The diagonal is always allowed, so no query row is empty (a padded query then reads itself)."""
    if key_padding_mask is None and attn_mask is None:
        return None
    allowed = torch.ones(1, 1, n, n, dtype=torch.bool, device=device)
    if key_padding_mask is not None:
        allowed = allowed & ~key_padding_mask.bool()[:, None, None, :]
    if attn_mask is not None:
        m = attn_mask.bool()
        allowed = allowed & (m[None, None] if m.dim() == 2 else m[:, None])
    return allowed | torch.eye(n, dtype=torch.bool, device=device)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention, ``(B, N, D) -> (B, N, D)`` (timm names: ``qkv``, ``proj``).

    ``forward(x, key_padding_mask=None, attn_mask=None, need_weights=False)``; with
    ``need_weights`` returns ``(out, weights (B, heads, N, N))`` (computed explicitly)."""

    def __init__(self, dim: int, heads: int, *, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"attention: dim {dim} must be a multiple of heads ({heads})")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = float(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def qkv_heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # (B, N, D) -> 3 x (B, h, N, d)
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def attend(self, q: Tensor, k: Tensor, v: Tensor, allowed: Tensor | None,
               need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """Softmax attention of (B, h, N, d) heads -> merged, projected (B, N, D) (and the weights)."""
        b, _, n, _ = q.shape
        if need_weights:
            scores = (q @ k.transpose(-1, -2)) * self.scale
            if allowed is not None:
                scores = scores.masked_fill(~allowed, float("-inf"))
            weights = scores.softmax(dim=-1)
            z = F.dropout(weights, self.attn_drop, self.training) @ v
        else:
            weights = None
            z = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                               dropout_p=self.attn_drop if self.training else 0.0)
        z = z.transpose(1, 2).reshape(b, n, self.dim)
        return self.proj_drop(self.proj(z)), weights

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None, attn_mask: Tensor | None = None,
                need_weights: bool = False):
        q, k, v = self.qkv_heads(x)
        out, weights = self.attend(q, k, v, attention_mask(x.shape[1], key_padding_mask, attn_mask, x.device),
                                   need_weights)
        return (out, weights) if need_weights else out

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}"


class Mlp(nn.Module):
    """``fc1`` Linear(D, hidden) -> GELU -> dropout -> ``fc2`` Linear(hidden, D) -> dropout."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class TransformerBlock(nn.Module):
    """Pre-LN transformer block with stochastic depth (see the module docstring); ``(B, N, D)``."""

    def __init__(self, dim: int, heads: int, *, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = MultiHeadSelfAttention(dim, heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None, attn_mask: Tensor | None = None) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), key_padding_mask, attn_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def feed_forward(self, x: Tensor, attn_out: Tensor) -> Tensor:
        """The block's residual updates given its attention output (for fusion layers that compute
        the attention jointly over several modalities)."""
        x = x + self.drop_path(attn_out)
        return x + self.drop_path(self.mlp(self.norm2(x)))


def sinusoid_position_table(n: int, dim: int) -> Tensor:
    """Fixed sinusoid table (n, dim): position p, channel i -> p / 10000^(2*(i//2)/dim), sine on
    even channels, cosine on odd ones (the transformer / VideoMAE table)."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, 2 * torch.div(i, 2, rounding_mode="floor") / dim)
    table = torch.where(i.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float()


def _drop_rates(rate: float, depth: int) -> list[float]:
    """Stochastic depth linearly increasing from 0 to ``rate`` over the blocks."""
    return [rate * i / max(depth - 1, 1) for i in range(depth)]


class _TokenEncoder(nn.Module):
    """What both encoders share: special tokens, position embedding, blocks, final norm."""

    def _init_trunk(self, *, dim, depth, heads, mlp_ratio, qkv_bias, drop_path, n_patches, special, pos_embed):
        if pos_embed not in ("learned", "sinusoid"):
            raise ConfigError(f"pos_embed must be 'learned' or 'sinusoid', got {pos_embed!r}")
        self.dim, self.depth, self.n_patches, self.pos_embed_kind = dim, depth, n_patches, pos_embed
        self.special = tuple(special)  # e.g. ("cls", "dist")
        for name in self.special:
            token = nn.Parameter(torch.zeros(1, 1, dim))
            nn.init.trunc_normal_(token, std=0.02)
            setattr(self, f"{name}_token", token)
        n = len(self.special) + n_patches
        if pos_embed == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, n, dim))
            nn.init.normal_(self.pos_embed, std=0.02)
        else:
            self.register_buffer("pos_embed", sinusoid_position_table(n, dim)[None], persistent=False)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=r)
                                    for r in _drop_rates(drop_path, depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    @property
    def num_special(self) -> int:
        return len(self.special)

    def _tokens(self, patches: Tensor) -> Tensor:  # (N, P, D) -> (N, special + P, D)
        n = patches.shape[0]
        extra = [getattr(self, f"{name}_token").expand(n, -1, -1) for name in self.special]
        return torch.cat([*extra, patches], dim=1) + self.pos_embed.to(patches.dtype)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """All tokens after the blocks and the final norm: (N, special + patches, D)."""
        x = self.embed(x)
        for block in self.blocks:
            x = block(x, key_padding_mask)
        return self.norm(x)


class VideoViT(_TokenEncoder):
    """Video ViT with tubelet patches (see the module docstring). ``embed(video (N, 3, T, H, W))`` ->
    tokens (N, [CLS] + T/t*H/p*W/p, D) with the position embedding added."""

    def __init__(self, *, frames: int = 16, image_size: int = 224, patch_size: int = 16, tubelet_size: int = 2,
                 in_chans: int = 3, dim: int = 768, depth: int = 12, heads: int = 12, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop_path: float = 0.0, pos_embed: str = "sinusoid", cls_token: bool = True):
        super().__init__()
        if frames % tubelet_size or image_size % patch_size:
            raise ConfigError(f"video ViT: frames ({frames}) must be a multiple of tubelet_size ({tubelet_size}) and "
                              f"image_size ({image_size}) of patch_size ({patch_size})")
        self.frames, self.image_size, self.patch_size, self.tubelet_size = frames, image_size, patch_size, tubelet_size
        self.grid = (frames // tubelet_size, image_size // patch_size, image_size // patch_size)
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv3d(in_chans, dim, kernel_size=(tubelet_size, patch_size, patch_size),
                                          stride=(tubelet_size, patch_size, patch_size))
        self._init_trunk(dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                         drop_path=drop_path, n_patches=math.prod(self.grid),
                         special=("cls",) if cls_token else (), pos_embed=pos_embed)

    def embed(self, video: Tensor) -> Tensor:
        expected = (self.frames, self.image_size, self.image_size)
        if video.dim() != 5 or tuple(video.shape[2:]) != expected:
            raise ValueError(f"video ViT: input must be (N, C, {expected[0]}, {expected[1]}, {expected[2]}), "
                             f"got {tuple(video.shape)}")
        patches = self.patch_embed.proj(video).flatten(2).transpose(1, 2)  # (N, t*h*w, D)
        return self._tokens(patches)


class AudioSpectrogramTransformer(_TokenEncoder):
    """AST (see the module docstring). ``embed(features (N, frames, bins))`` -> tokens
    (N, [CLS] [DIST] + f*t, D) with the position embedding added."""

    def __init__(self, *, frames: int = 100, bins: int = 128, patch_size: int = 16, patch_stride: int = 10,
                 dim: int = 768, depth: int = 12, heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, cls_token: bool = True, dist_token: bool = True):
        super().__init__()
        if frames < patch_size or bins < patch_size:
            raise ConfigError(f"AST: the spectrogram ({frames} frames x {bins} bins) is smaller than one "
                              f"{patch_size}x{patch_size} patch")
        self.frames, self.bins, self.patch_size, self.patch_stride = frames, bins, patch_size, patch_stride
        self.grid = ((bins - patch_size) // patch_stride + 1, (frames - patch_size) // patch_stride + 1)  # (f, t)
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(1, dim, kernel_size=patch_size, stride=patch_stride)
        special = (("cls",) if cls_token else ()) + (("dist",) if dist_token else ())
        self._init_trunk(dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                         drop_path=drop_path, n_patches=math.prod(self.grid), special=special, pos_embed="learned")
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def patch_time_centers(self) -> Tensor:
        """The centre frame of each patch, in token order (f, t): (f*t,)."""
        t = torch.arange(self.grid[1]) * self.patch_stride + self.patch_size / 2
        return t.repeat(self.grid[0])

    def embed(self, features: Tensor) -> Tensor:
        if features.dim() != 3 or tuple(features.shape[1:]) != (self.frames, self.bins):
            raise ValueError(f"AST: input must be (N, {self.frames}, {self.bins}) (frames, bins), "
                             f"got {tuple(features.shape)}")
        x = features.transpose(1, 2).unsqueeze(1)  # (N, 1, bins, frames)
        patches = self.patch_embed.proj(x).flatten(2).transpose(1, 2)  # (N, f*t, D)
        return self._tokens(patches)


# ----------------------------------------------------------------------------------------------
# checkpoint conversion
# ----------------------------------------------------------------------------------------------
def read_weight_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """A flat ``{name: tensor}`` from a ``.pth``/``.pt``/``.bin`` (safe unpickling) or ``.safetensors``
    file; the wrappers ``model``, ``module``, ``state_dict`` are unwrapped. CheckpointError names the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, pickled objects, ...
        raise CheckpointError(f"{path}: not a readable weight file ({type(err).__name__}: {err})") from err
    for wrapper in ("model", "module", "state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a state dict, got {type(obj).__name__}")
    bad = [str(k) for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entries that are not tensors: {_few(bad)}")
    return {str(k): v for k, v in obj.items()}


def _few(keys, n: int = 12) -> str:
    keys = list(keys)
    return ", ".join(keys[:n]) + (f", ... (+{len(keys) - n} more)" if len(keys) > n else "")


def _axis_resize(x: Tensor, dim: int, size: int) -> Tensor:
    """Centre crop (start = src//2 - size//2) when shorter, linear interpolation when longer."""
    src = x.shape[dim]
    if size == src:
        return x
    if size < src:
        start = src // 2 - size // 2
        return x.narrow(dim, start, size)
    moved = x.movedim(dim, -1)
    shape = moved.shape
    out = F.interpolate(moved.reshape(1, -1, src), size=size, mode="linear", align_corners=False)
    return out.reshape(*shape[:-1], size).movedim(-1, dim)


def resize_position_grid(grid: Tensor, size: tuple[int, ...]) -> Tensor:
    """Resize a position-embedding grid ``(*src_grid, D)`` to ``(*size, D)`` axis by axis (AST's rule:
    centre crop on a shorter axis, linear interpolation on a longer one; both axes of a 2D grid that
    grows are interpolated separably, i.e. bilinearly)."""
    if grid.dim() - 1 != len(size):
        raise ValueError(f"grid {tuple(grid.shape)} and target size {size} differ in rank")
    out = grid.float()
    for axis, n in enumerate(size):
        out = _axis_resize(out, axis, n)
    return out.to(grid.dtype)


def _split_pos_embed(pos: Tensor, n_special_file: int, path, key: str) -> tuple[Tensor, Tensor]:
    if pos.dim() != 3 or pos.shape[0] != 1:
        raise CheckpointError(f"{path}: {key} must be (1, tokens, D), got {tuple(pos.shape)}")
    return pos[0, :n_special_file], pos[0, n_special_file:]


def _fit_pos_embed(pos: Tensor, special_file: tuple[str, ...], model: _TokenEncoder, src_grid: tuple[int, ...],
                   path) -> Tensor:
    """The model's (1, special + patches, D) position embedding from the file's."""
    special_rows, patch_rows = _split_pos_embed(pos, len(special_file), path, "pos_embed")
    d = pos.shape[-1]
    if d != model.dim:
        raise CheckpointError(f"{path}: pos_embed has width {d}, the model {model.dim}")
    grid = patch_rows.reshape(*src_grid, d)
    target = model.grid
    if len(src_grid) == 2 and len(target) == 3:  # an image ViT's grid: resize spatially, repeat over time
        grid = resize_position_grid(grid, target[1:]).unsqueeze(0).expand(target[0], -1, -1, -1)
    else:
        grid = resize_position_grid(grid, target)
    rows = []
    for name in model.special:
        if name in special_file:
            rows.append(special_rows[special_file.index(name)])
        else:  # a special token the file has no position for: the model's own initial row
            rows.append(model.pos_embed[0, model.special.index(name)].detach())
    return torch.cat([torch.stack(rows) if rows else grid.new_zeros(0, d), grid.reshape(-1, d)])[None]


def _infer_grid(n: int, target: tuple[int, ...], path) -> tuple[int, ...]:
    """The file's patch grid from its row count: the model's own, a square (image ViT / DeiT), the model's
    first axis times the rest (AST: 12 x 101), or (t, s, s) for a video ViT."""
    if n == math.prod(target):
        return tuple(target)
    side = math.isqrt(n)
    if side * side == n:
        return (side, side)
    if len(target) == 2 and n % target[0] == 0:
        return (target[0], n // target[0])
    if len(target) == 3:
        for t in (target[0], 8, 16, 4, 2, 1):
            s = math.isqrt(n // t) if n % t == 0 else 0
            if s and t * s * s == n:
                return (t, s, s)
    raise CheckpointError(f"{path}: cannot tell the patch grid of a pos_embed with {n} patch rows "
                          f"(the model's grid is {tuple(target)})")


_BLOCK_PARTS = ("norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
                "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                "mlp.fc2.weight", "mlp.fc2.bias")
_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")


def _convert_common(sd: Mapping[str, Tensor], model: _TokenEncoder, *, path, dropped: tuple[str, ...],
                    special_file: tuple[str, ...], patch_fn, grid_fn) -> tuple[dict[str, Tensor], list[str], list[str]]:
    """Map timm-style keys (``blocks.N.*``, ``patch_embed.proj.*``, ``norm``/``fc_norm``, special tokens,
    ``pos_embed``) onto ``model``; returns (state, unused file keys, unmapped file keys)."""
    out: dict[str, Tensor] = {}
    unused, unmapped, q_v_bias = [], [], {}
    for key, value in sd.items():
        if key.startswith(dropped) or key in dropped:
            unused.append(key)
            continue
        m = _BLOCK_RE.match(key)
        if m:
            idx, part = int(m.group(1)), m.group(2)
            if part in ("attn.q_bias", "attn.v_bias"):
                q_v_bias.setdefault(idx, {})[part[5]] = value
            elif part in _BLOCK_PARTS:
                out[f"blocks.{idx}.{part}"] = value
            else:
                unmapped.append(key)
        elif key in ("patch_embed.proj.weight", "patch_embed.proj.bias"):
            out[key] = patch_fn(value) if key.endswith("weight") else value
        elif key in ("norm.weight", "norm.bias", "fc_norm.weight", "fc_norm.bias"):
            new = "norm." + key.split(".")[-1]
            if new in out:
                raise CheckpointError(f"{path}: both norm.* and fc_norm.* hold a final norm ({key}); "
                                      f"remove one of them")
            out[new] = value
        elif key in ("cls_token", "dist_token"):
            name = key[:-len("_token")]
            (out.__setitem__(key, value) if name in model.special else unused.append(key))
        elif key == "pos_embed":
            if model.pos_embed_kind != "learned":
                raise CheckpointError(f"{path}: the file has a learned pos_embed {tuple(value.shape)} but the model's "
                                      f"position embedding is a fixed sinusoid; build it with pos_embed='learned'")
            n_patch = value.shape[1] - len(special_file)
            out[key] = _fit_pos_embed(value, special_file, model, grid_fn(n_patch), path)
        else:
            unmapped.append(key)
    for idx, parts in q_v_bias.items():
        if set(parts) != {"q", "v"}:
            unmapped.append(f"blocks.{idx}.attn.{next(iter(parts))}_bias (without its pair)")
            continue
        if f"blocks.{idx}.attn.qkv.bias" in out:
            raise CheckpointError(f"{path}: block {idx} has both attn.qkv.bias and attn.q_bias/v_bias")
        q = parts["q"]
        out[f"blocks.{idx}.attn.qkv.bias"] = torch.cat([q, torch.zeros_like(q), parts["v"]])
    return out, unused, unmapped


def _finish_load(model: _TokenEncoder, state: dict[str, Tensor], unused: list[str], unmapped: list[str], path,
                 what: str) -> LoadReport:
    own = model.state_dict()
    extra = [k for k in state if k not in own]  # e.g. blocks beyond the model's depth
    optional = {"cls_token", "dist_token", "pos_embed"}
    missing = [k for k in own if k not in state]
    hard_missing = [k for k in missing if k not in optional]
    wrong = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
             for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if unmapped or extra or hard_missing or wrong:
        parts = []
        if unmapped:
            parts.append(f"{len(unmapped)} file key(s) with no place in a {what}: {_few(unmapped)}")
        if extra:
            parts.append(f"{len(extra)} file key(s) the model has no place for (a deeper network?): {_few(extra)}")
        if hard_missing:
            parts.append(f"{len(hard_missing)} model key(s) the file lacks: {_few(hard_missing)}")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatch(es): {_few(wrong, 6)}")
        raise CheckpointError(f"{path}: not a {what} checkpoint for this model: " + "; ".join(parts))
    model.load_state_dict(state, strict=False)
    return LoadReport(loaded=sorted(state), unused=unused, missing=missing, source=str(path))


def _strip(sd: Mapping[str, Tensor], prefixes: tuple[str, ...]) -> dict[str, Tensor]:
    out = {}
    for key, value in sd.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def convert_videomae_state_dict(sd: Mapping[str, Tensor], model: VideoViT, *, path: str = "<state dict>"
                                ) -> tuple[dict[str, Tensor], list[str]]:
    """Map a VideoMAE (pre-training or fine-tuning) or timm ViT state dict onto ``model``'s keys;
    returns (state, dropped file keys). Raises CheckpointError on keys it cannot map."""
    sd = _strip(sd, ("module.", "encoder."))

    def patch(w: Tensor) -> Tensor:
        if w.dim() == 4:  # (D, C, p, p) image kernel -> central-frame tubelet
            full = w.new_zeros(w.shape[0], w.shape[1], model.tubelet_size, *w.shape[2:])
            full[:, :, model.tubelet_size // 2] = w
            return full
        return w

    special_file = ("cls",) if "cls_token" in sd else ()
    state, unused, unmapped = _convert_common(
        sd, model, path=path, dropped=("decoder.", "encoder_to_decoder.", "mask_token", "head."),
        special_file=special_file, patch_fn=patch, grid_fn=lambda n: _infer_grid(n, model.grid, path))
    if unmapped:
        raise CheckpointError(f"{path}: {len(unmapped)} key(s) of the file cannot be mapped onto a video ViT: "
                              f"{_few(unmapped)}")
    return state, unused


def load_videomae_checkpoint(model: VideoViT, path: str | os.PathLike) -> LoadReport:
    """Load a VideoMAE / timm ViT weight file into ``model`` (see the module docstring), all or nothing."""
    state, unused = convert_videomae_state_dict(read_weight_file(path), model, path=str(path))
    return _finish_load(model, state, unused, [], path, "VideoMAE / ViT")


def convert_ast_state_dict(sd: Mapping[str, Tensor], model: AudioSpectrogramTransformer, *,
                           path: str = "<state dict>") -> tuple[dict[str, Tensor], list[str]]:
    """Map an AST release or a timm DeiT state dict onto ``model``'s keys; returns (state, dropped keys)."""
    sd = _strip(sd, ("module.",))
    sd = {k: v for k, v in sd.items()}
    dropped_outer = [k for k in sd if k.startswith("mlp_head.")]
    sd = {(k[2:] if k.startswith("v.") else k): v for k, v in sd.items() if not k.startswith("mlp_head.")}

    def patch(w: Tensor) -> Tensor:
        return w.sum(dim=1, keepdim=True) if w.dim() == 4 and w.shape[1] == 3 else w

    special_file = tuple(n for n in ("cls", "dist") if f"{n}_token" in sd)
    state, unused, unmapped = _convert_common(
        sd, model, path=path, dropped=("head.", "head_dist."), special_file=special_file, patch_fn=patch,
        grid_fn=lambda n: _infer_grid(n, model.grid, path))
    if unmapped:
        raise CheckpointError(f"{path}: {len(unmapped)} key(s) of the file cannot be mapped onto an AST: "
                              f"{_few(unmapped)}")
    return state, dropped_outer + unused


def load_ast_checkpoint(model: AudioSpectrogramTransformer, path: str | os.PathLike) -> LoadReport:
    """Load an AST release or a timm DeiT weight file into ``model`` (see the module docstring), all or nothing."""
    state, unused = convert_ast_state_dict(read_weight_file(path), model, path=str(path))
    return _finish_load(model, state, unused, [], path, "AST / DeiT")
