"""CTEN: Cross-modal Temporal Erasing Network (Zhang, Wang, Yang, CVPR 2023).

Reference: github.com/nku-zhichengzhang/CTEN at ad70918 (``models/vaanet_erase.py``: the
audio-visual network, ``models/visual_stream_w_Erase.py``: the visual-only network that the
official ``main.py`` trains); spec: ``methods_vaanet_cten_tsl.md`` section 2. The temporal erasing
training algorithm is a task: :mod:`affectkit.engine.erasing` (``task: temporal_erasing``).

Two registered models:

``cten`` (:class:`CTEN`, the original ``VAANetErase``; the paper's full model). Shapes for the
default config (B videos, S = 16 snippets of 16 frames at 112x112, 16 one-second audio windows of
100 fbank frames x 128 mel bins; C = 2048)::

    video (B, S, 3, 16, 112, 112), floats in [0, 255]
      -> normalise (x/255 - 100/255, as VAANet)
      -> frozen 3D ResNet-101 trunk + global average pool          (B, S, C)   = trunk_features
      -> visual_nonlocal: non-local block over the S snippets      v (B, S, C)
    audio (B, 1600, 128) log-mel fbank (data/fbank.py)
      -> S windows                                                 (B*S, 1, 100, 128)
      -> audio_net: ResNet-18, conv1 1->64 (7,1)/(2,1), avg pool   (B*S, 512)
      -> audio_proj: Linear 512->C + BN + tanh                     (B, S, C)
      -> audio_nonlocal                                            a (B, S, C)
    cross-modal attention (8 heads, ReLU after every projection), original query assignment:
      v' = v + visual_cross(query=a, key=v, value=v);  a' = a + audio_cross(query=v, key=a, value=a)
    X = [v', a']                                                   (B, 2C, S)
      -> temporal_attention (joint, over both modalities)          gamma (B, S)  ReLU(Linear S->S)
      -> mean over S of X * gamma -> Dropout(0.2) -> Linear(2C -> num_classes)   logits (B, K)

``cten_visual`` (:class:`CTENVisual`, the original ``VisualErase``)::

    trunk (B, S, C) -> visual_nonlocal -> temporal_attention (C -> 1 per snippet)  gamma (B, S)
      -> mean over S of v * gamma -> Dropout(0.2) -> Linear(C -> num_classes)

Code versus paper (spec 2.3), and the switches (defaults are the original code's, whose parameter
counts, 135.28 M / 50.04 M trainable and 87.37 M / 2.12 M, and checkpoints they reproduce):

* ``nonlocal_residual``: ``"scaled"`` (default, the original): ``y = BN(W_z z) + alpha * x`` with a
  learnable scalar ``alpha`` initialised to 0 (the identity path starts switched off);
  ``"paper"`` (Eq. 4): ``y = x + BN(W_z z)`` (the BN kept so the weights of both forms match).
* ``cross_query`` (``cten`` only): ``"original"`` (default): the visual update takes audio
  queries over visual keys/values and vice versa; ``"paper"`` (Eq. 5): visual queries over audio
  keys/values for the visual update, audio queries over visual ones for the audio update.
* The paper computes separate visual and audio temporal attentions and erases where both are high;
  the code (and this implementation) has one joint attention over the concatenated features.
  The separate-attention variant is not implemented.
* Paper: 10 segments, Kinetics-400 trunk, ResNet-50 audio on MFCC; code (and defaults here): 16
  segments, the 1039-way Kinetics-700 + Moments-in-Time ``r3d101_KM`` trunk, ResNet-18 audio on a
  Kaldi fbank.

Further differences from the original code (none changes the function computed): the attention
nets use PyTorch's default initialisation, as the original (which never calls its init helper);
snippets are flattened batch-major; the input is not normalised in place.

Checkpoints: ``pretrained_trunk`` takes either of Hara et al.'s releases (the 1039-way ``r3d101_KM``
file the original expects, or VAANet's 400-way ``module.``-prefixed one). The original CTEN
*training* checkpoints (``save_<epoch>_<acc>.pth``: ``{'epoch', 'state_dict', 'optimizer'}``, keys
with or without DataParallel's ``module.``, or a bare state dict) load by key name:
``pretrained_cten`` (a local path; the whole network, read after ``pretrained_trunk`` /
``pretrained_audio``, which it then replaces), or in Python :func:`load_original_cten_checkpoint`
``(model, path) -> LoadReport`` and :func:`convert_original_cten_state_dict` ``(state_dict, *,
visual_only) -> {kit key: tensor}``. The map (:func:`original_cten_key`): ``resnet.{0,1,4-7}`` ->
``trunk.{conv1,bn1,layer1-4}``, ``a_resnet.*`` -> ``audio_net.*``, ``a_fc.{0,1}`` ->
``audio_proj.{0,1}``, ``ta_net.conv.{0,1}`` / ``ta_net.fc`` -> ``temporal_attention.{proj,norm,fc}``
(these four shared with VAANet's converter, :mod:`affectkit.models.vaanet`), ``nl.0`` / ``nl_a.0``
-> ``visual_nonlocal`` / ``audio_nonlocal`` (``bn`` -> ``norm``), ``v2a_attn`` (query audio, keys
and values visual: the visual update) -> ``visual_cross``, ``a2v_attn`` -> ``audio_cross``
(``linear_{q,k,v,o}`` -> ``query, key, value, out``), ``fc`` -> ``classifier``. Every key of the
file must map to a key of the model, every model key must be in the file (BatchNorm's
``num_batches_tracked`` may be absent) and every shape must match; else :class:`CheckpointError`
lists the keys. The model must be built with the file's config (``depth=101``, ``seq_len``,
``num_classes``; the defaults ``nonlocal_residual="scaled"`` and ``cross_query="original"`` compute
the original's function).

Temporal erasing options live with the model (``erase_threshold``, ``erase_audio``,
``erase_on``, ``erase_views``): the task reads them, and a checkpoint records them (see
:mod:`affectkit.engine.erasing`).
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError
from ..registry import register_model
from .blocks.attention import AxisAttention
from .blocks.resnet2d import ResNet2d, load_torchvision_resnet18
from .blocks.resnet3d import LoadReport, ResNet3d, default_shortcut, load_kinetics_checkpoint, read_state_dict
from .derive import AUDIO_DERIVED_ARGS, CLIP_DERIVED_ARGS
from .outputs import ClassifierOutput, FeatureCacheHook
from .vaanet import KINETICS_RGB_MEAN, _map_original_key, normalize_pixels

__all__ = ["CTEN", "CTENVisual", "NonLocalBlock", "CrossModalAttention", "DEFAULT_CONFIG", "VISUAL_DEFAULT_CONFIG",
           "original_cten_key", "convert_original_cten_state_dict", "load_original_cten_checkpoint"]

logger = logging.getLogger(__name__)

ERASE_ON = ("features", "video")
ERASE_VIEWS = ("fast", "faithful")
NONLOCAL_RESIDUALS = ("scaled", "paper")
CROSS_QUERIES = ("original", "paper")

# options shared by both networks
_COMMON: dict = {
    "num_classes": 8,
    "depth": 101,
    "width": 64,
    "shortcut": None,  # None: 'A' for depth <= 34, 'B' for 50+ (Hara et al.'s released models)
    "frozen_trunk": True,
    "trunk_bn": "train",  # "train" (original: the frozen trunk's BN uses batch statistics) | "frozen"
    "seq_len": 16,
    "snippet_duration": 16,
    "sample_size": 112,
    "input_norm": "original",  # "original" (x/255 - 100/255) | "kinetics" (x - RGB mean on 0-255)
    "nonlocal_dim": 256,
    "nonlocal_residual": "scaled",  # "scaled" (original: BN(Wz) + alpha*x, alpha=0 at init) | "paper" (x + BN(Wz))
    "dropout": 0.2,
    "pretrained_trunk": None,  # e.g. Hara et al.'s r3d101_KM_200ep.pth (1039-way head, no prefix)
    # temporal erasing (read by task temporal_erasing, engine/erasing.py)
    "erase_threshold": 0.7,  # theta: key snippets have gamma > theta*max + (1-theta)*min
    "erase_audio": False,  # False: the original code (audio never erased); True: the paper (audio erased too)
    "erase_on": "features",  # build the erased views from the trunk features ("features") or the pixels ("video")
    "erase_views": "fast",  # "fast": re-order the decoded snippets | "faithful": re-sample and decode (the original)
    "pretrained_cten": None,  # an original CTEN training checkpoint (save_<epoch>_<acc>.pth): the whole network
}
DEFAULT_CONFIG: dict = {
    **_COMMON,
    "audio_frames": 1600,
    "audio_bins": 128,
    "audio_width": 64,
    "heads": 8,
    "cross_query": "original",  # "original" (visual update: audio queries) | "paper" (Eq. 5)
    "pretrained_audio": None,  # local torchvision ImageNet resnet18 state dict
}
VISUAL_DEFAULT_CONFIG: dict = dict(_COMMON)


def _choice(name: str, value, options) -> None:
    if value not in options:
        raise ConfigError(f"cten: {name} must be one of {', '.join(map(repr, options))}, got {value!r}")


def _positive(**values) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"cten: {key} must be a positive integer, got {value!r}")


# ----------------------------------------------------------------------------------------------
# blocks
# ----------------------------------------------------------------------------------------------
class NonLocalBlock(nn.Module):
    """Non-local (self-attention) block over the S steps of a ``(B, S, D)`` sequence.

    ``theta``, ``phi``, ``g``: Linear D->inner; ``P = softmax(theta(x) phi(x)^T / sqrt(inner))`` over
    the keys; ``z = P g(x)``; ``out``: Linear inner->D, then ``norm`` (BatchNorm1d over D).
    ``residual="scaled"``: ``y = norm(out(z)) + alpha * x`` with ``alpha`` a learnable scalar
    initialised to 0 (the original CTEN); ``"paper"``: ``y = x + norm(out(z))``.
    """

    def __init__(self, dim: int, inner: int = 256, residual: str = "scaled"):
        super().__init__()
        _choice("nonlocal_residual", residual, NONLOCAL_RESIDUALS)
        self.dim, self.inner, self.residual = dim, inner, residual
        self.theta = nn.Linear(dim, inner)
        self.phi = nn.Linear(dim, inner)
        self.g = nn.Linear(dim, inner)
        self.out = nn.Linear(inner, dim)
        self.norm = nn.BatchNorm1d(dim)
        self.alpha = nn.Parameter(torch.zeros(1)) if residual == "scaled" else None

    def forward(self, x: Tensor) -> Tensor:  # (B, S, D) -> (B, S, D)
        b, s, d = x.shape
        scores = self.theta(x) @ self.phi(x).transpose(1, 2) / math.sqrt(self.inner)  # (B, S, S)
        z = scores.softmax(dim=-1) @ self.g(x)  # (B, S, inner)
        y = self.norm(self.out(z).reshape(b * s, d)).reshape(b, s, d)
        return y + self.alpha * x if self.alpha is not None else x + y

    def extra_repr(self) -> str:
        return f"dim={self.dim}, inner={self.inner}, residual={self.residual!r}"


class CrossModalAttention(nn.Module):
    """Multi-head attention with a ReLU after each of the q/k/v/out projections (as the original).

    ``forward(query, key, value)``: ``(B, Sq, D)``, ``(B, Sk, D)``, ``(B, Sk, D)`` -> ``(B, Sq, D)``;
    ``heads`` heads of ``D / heads`` channels, scaled dot-product softmax over the keys. The
    residual connection is the caller's.
    """

    def __init__(self, dim: int, heads: int = 8):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"cten: the feature size {dim} must be a multiple of heads ({heads})")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def _split(self, x: Tensor) -> Tensor:  # (B, S, D) -> (B, h, S, D/h)
        b, s, _ = x.shape
        return x.reshape(b, s, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        q = self._split(self.query(query).relu())
        k = self._split(self.key(key).relu())
        v = self._split(self.value(value).relu())
        weights = (q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)).softmax(dim=-1)  # (B, h, Sq, Sk)
        z = (weights @ v).transpose(1, 2).reshape(query.shape[0], query.shape[1], self.dim)  # (B, Sq, D)
        return self.out(z).relu()

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}"


# ----------------------------------------------------------------------------------------------
# the networks
# ----------------------------------------------------------------------------------------------
class _CTENBase(nn.Module):
    """The visual part both CTEN networks share: the frozen 3D ResNet trunk (with its average pool)
    and the visual non-local block; the temporal attention pooling and the head."""

    input_keys: tuple[str, ...] = ("video",)
    input_aliases = {"video": "video_features"}  # forward(video_features=...) takes (B, S, C) trunk features

    def _init_visual(self, *, num_classes, depth, width, shortcut, frozen_trunk, trunk_bn, seq_len,
                     snippet_duration, sample_size, input_norm, nonlocal_dim, nonlocal_residual, dropout,
                     erase_threshold, erase_audio, erase_on, erase_views="fast") -> None:
        _positive(num_classes=num_classes, seq_len=seq_len, snippet_duration=snippet_duration,
                  sample_size=sample_size, nonlocal_dim=nonlocal_dim)
        _choice("trunk_bn", trunk_bn, ("train", "frozen"))
        _choice("input_norm", input_norm, ("original", "kinetics"))
        _choice("erase_on", erase_on, ERASE_ON)
        _choice("erase_views", erase_views, ERASE_VIEWS)
        if not 0.0 <= float(erase_threshold) <= 1.0:
            raise ConfigError(f"cten: erase_threshold must be in [0, 1], got {erase_threshold!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"cten: dropout must be in [0, 1), got {dropout!r}")
        self.num_classes, self.seq_len = num_classes, seq_len
        self.snippet_duration, self.sample_size = snippet_duration, sample_size
        self.frozen_trunk, self.trunk_bn, self.input_norm = bool(frozen_trunk), trunk_bn, input_norm
        self.erase_threshold, self.erase_audio, self.erase_on = float(erase_threshold), bool(erase_audio), erase_on
        self.erase_views = erase_views
        self.trunk = ResNet3d(depth=depth, width=width, shortcut=shortcut or default_shortcut(depth), num_classes=None)
        self.trunk_channels = self.trunk.out_channels  # C = 2048 for ResNet-50/101 at width 64
        if input_norm == "kinetics":
            self.register_buffer("pixel_mean", torch.tensor(KINETICS_RGB_MEAN).view(1, 3, 1, 1, 1), persistent=False)
        else:
            self.pixel_mean = None
        self.visual_nonlocal = NonLocalBlock(self.trunk_channels, nonlocal_dim, nonlocal_residual)
        self.dropout = nn.Dropout(float(dropout))

    def _finish_init(self, pretrained_trunk, pretrained_cten=None) -> None:
        self.pretrained_report: LoadReport | None = None
        self.pretrained_cten_report: LoadReport | None = None
        if pretrained_trunk:
            self.pretrained_report = load_kinetics_checkpoint(self.trunk, pretrained_trunk)
            logger.info("cten trunk: %s", self.pretrained_report.summary())
        if pretrained_cten:  # the whole network: replaces what pretrained_trunk / pretrained_audio loaded
            self.pretrained_cten_report = load_original_cten_checkpoint(self, pretrained_cten)
            logger.info("cten (original checkpoint): %s", self.pretrained_cten_report.summary())
        if self.frozen_trunk:
            for param in self.trunk.parameters():
                param.requires_grad_(False)
        if self.trunk_bn == "frozen":
            self.trunk.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.trunk_bn == "frozen":
            self.trunk.eval()
        return self

    def feature_cache_hook(self) -> FeatureCacheHook | None:
        """Cached trunk features for training the heads only (needs ``frozen_trunk``)."""
        if not self.frozen_trunk:
            return None
        return FeatureCacheHook(compute=lambda batch: {"video_features": self.trunk_features(batch["video"])},
                                replaces=("video",), frozen=[self.trunk])

    def normalize_video(self, video: Tensor) -> Tensor:
        return normalize_pixels(video, self.pixel_mean)

    def trunk_features(self, video: Tensor) -> Tensor:
        """``video`` (B, S, 3, T, H, W) in [0, 255] -> pooled trunk features (B, S, C); under
        ``torch.no_grad()`` when the trunk is frozen. Can be cached and passed as ``video_features``."""
        if video.dim() != 6 or video.shape[2] != 3:
            raise ValueError(f"cten: video must be (B, S, 3, T, H, W), got {tuple(video.shape)}")
        b, s = video.shape[:2]
        x = self.normalize_video(video.reshape(b * s, *video.shape[2:]))
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen_trunk):
            f = self.trunk.forward_features(x).mean(dim=(2, 3, 4))  # the original's average pool: (B*S, C)
        return f.reshape(b, s, -1)

    def _visual(self, video: Tensor | None, video_features: Tensor | None) -> Tensor:
        if video_features is None:
            if video is None:
                raise ValueError("cten: pass `video` (B, S, 3, T, H, W) or `video_features` (B, S, C)")
            video_features = self.trunk_features(video)
        if video_features.dim() != 3 or video_features.shape[1:] != (self.seq_len, self.trunk_channels):
            raise ValueError(f"cten: video features must be (B, {self.seq_len}, {self.trunk_channels}) "
                             f"(seq_len, trunk channels), got {tuple(video_features.shape)}")
        return self.visual_nonlocal(video_features.float())  # (B, S, C)

    def _pool(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x`` (B, D, S) -> logits (B, K), gamma (B, S), snippet logits (B, S, K).

        ``snippet_logits[:, s] = W (gamma_s x_s) + b``: their mean over the snippets is the video's
        logits (exactly so in eval mode, where dropout is the identity)."""
        gamma = self.temporal_attention(x)  # (B, S)
        weighted = x * gamma.unsqueeze(1)  # (B, D, S)
        logits = self.classifier(self.dropout(weighted.mean(dim=2)))
        snippet_logits = torch.einsum("bds,kd->bsk", weighted, self.classifier.weight) + self.classifier.bias
        return logits, gamma, snippet_logits

    def example_video(self, batch_size: int, g: torch.Generator) -> Tensor:
        s, t, z = self.seq_len, self.snippet_duration, self.sample_size
        return torch.randint(0, 256, (batch_size, s, 3, t, z, z), generator=g).float()


class CTEN(_CTENBase):
    """CTEN, audio-visual (the original ``VAANetErase``; see the module docstring).

    ``forward(video, audio)`` takes ``video`` ``(B, S, 3, T, H, W)`` in [0, 255] (or
    ``video_features`` ``(B, S, C)``) and ``audio`` ``(B, audio_frames, audio_bins)`` fbank
    features (S windows), and returns a :class:`ClassifierOutput`: ``logits`` ``(B, K)``,
    ``temporal_attention`` ``(B, S)`` (the joint gamma) and ``extras["snippet_logits"]`` ``(B, S, K)``.
    """

    input_keys = ("video", "audio")

    def __init__(self, num_classes: int = 8, depth: int = 101, width: int = 64, shortcut: str | None = None,
                 frozen_trunk: bool = True, trunk_bn: str = "train", seq_len: int = 16, snippet_duration: int = 16,
                 sample_size: int = 112, input_norm: str = "original", nonlocal_dim: int = 256,
                 nonlocal_residual: str = "scaled", dropout: float = 0.2,
                 pretrained_trunk: str | os.PathLike | None = None, erase_threshold: float = 0.7,
                 erase_audio: bool = False, erase_on: str = "features", audio_frames: int = 1600,
                 audio_bins: int = 128, audio_width: int = 64, heads: int = 8, cross_query: str = "original",
                 pretrained_audio: str | os.PathLike | None = None, erase_views: str = "fast",
                 pretrained_cten: str | os.PathLike | None = None):
        super().__init__()
        self._init_visual(num_classes=num_classes, depth=depth, width=width, shortcut=shortcut,
                          frozen_trunk=frozen_trunk, trunk_bn=trunk_bn, seq_len=seq_len,
                          snippet_duration=snippet_duration, sample_size=sample_size, input_norm=input_norm,
                          nonlocal_dim=nonlocal_dim, nonlocal_residual=nonlocal_residual, dropout=dropout,
                          erase_threshold=erase_threshold, erase_audio=erase_audio, erase_on=erase_on,
                          erase_views=erase_views)
        _positive(audio_frames=audio_frames, audio_bins=audio_bins, audio_width=audio_width, heads=heads)
        _choice("cross_query", cross_query, CROSS_QUERIES)
        if audio_frames % seq_len:
            raise ConfigError(f"cten: audio_frames ({audio_frames}) must be a multiple of seq_len ({seq_len}): "
                              f"one audio window per snippet")
        self.audio_frames, self.audio_bins, self.cross_query = audio_frames, audio_bins, cross_query
        c = self.trunk_channels
        self.audio_net = ResNet2d(layers=(2, 2, 2, 2), in_channels=1, conv1_kernel=(7, 1), conv1_stride=(2, 1),
                                  conv1_padding=(3, 0), width=audio_width)
        self.audio_proj = nn.Sequential(nn.Linear(self.audio_net.out_channels, c), nn.BatchNorm1d(c), nn.Tanh())
        self.audio_nonlocal = NonLocalBlock(c, nonlocal_dim, nonlocal_residual)
        self.visual_cross = CrossModalAttention(c, heads)  # updates the visual stream
        self.audio_cross = CrossModalAttention(c, heads)  # updates the audio stream
        self.temporal_attention = AxisAttention(2 * c, seq_len, fc_bias=True, normalize="relu")
        self.classifier = nn.Linear(2 * c, num_classes)
        self.audio_net.conv1.reset_parameters()  # the original replaces torchvision's conv1 by a fresh one
        self.pretrained_audio_report: LoadReport | None = None
        if pretrained_audio:
            self.pretrained_audio_report = load_torchvision_resnet18(self.audio_net, pretrained_audio)
        self._finish_init(pretrained_trunk, pretrained_cten)

    def example_inputs(self, batch_size: int = 1) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(0)
        return {"video": self.example_video(batch_size, g),
                "audio": torch.randn(batch_size, self.audio_frames, self.audio_bins, generator=g)}

    def audio_stream(self, audio: Tensor, *, passes: int = 1) -> Tensor:
        """``audio`` (B, audio_frames, audio_bins) -> (B, S, C) after the audio non-local block; can be
        passed to :meth:`forward` as ``audio_features``.

        ``passes``: how many identical forward passes this one computation stands for (the temporal
        erasing task computes the unerased audio of its three views once and feeds the result to all
        three). In training mode each BatchNorm of the audio stream then updates its running
        statistics ``passes`` times on its input, as that many calls of the stream would (the output
        depends on the batch statistics only); the output and its gradient are one pass's."""
        if audio.dim() != 3 or audio.shape[1:] != (self.audio_frames, self.audio_bins):
            raise ValueError(f"cten: audio must be (B, {self.audio_frames}, {self.audio_bins}) "
                             f"(audio_frames, audio_bins), got {tuple(audio.shape)}")
        b, s = audio.shape[0], self.seq_len
        replay: list[tuple[nn.Module, Tensor]] = []
        hooks = []
        if passes > 1:
            for part in (self.audio_net, self.audio_proj, self.audio_nonlocal):
                for m in part.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats:
                        hooks.append(m.register_forward_pre_hook(lambda mod, args: replay.append((mod, args[0]))))
        try:
            a = audio.float().reshape(b * s, 1, self.audio_frames // s, self.audio_bins)  # (B*S, 1, L, bins)
            a = self.audio_proj(self.audio_net(a)).reshape(b, s, -1)  # (B, S, C)
            a = self.audio_nonlocal(a)
        finally:
            for h in hooks:
                h.remove()
        with torch.no_grad():  # the running-statistics updates of the passes - 1 further calls
            for m, x in replay:
                for _ in range(passes - 1):
                    m(x)
        return a

    def _audio(self, audio: Tensor | None, audio_features: Tensor | None) -> Tensor:
        if audio_features is None:
            if audio is None:
                raise ValueError("cten: `audio` (B, audio_frames, audio_bins) is required")
            return self.audio_stream(audio)
        if audio_features.dim() != 3 or audio_features.shape[1:] != (self.seq_len, self.trunk_channels):
            raise ValueError(f"cten: audio features must be (B, {self.seq_len}, {self.trunk_channels}) "
                             f"(the output of audio_stream), got {tuple(audio_features.shape)}")
        return audio_features

    def _fuse(self, v: Tensor, a: Tensor) -> Tensor:  # (B, S, C) x 2 -> (B, 2C, S)
        if self.cross_query == "original":
            v2 = v + self.visual_cross(a, v, v)
            a2 = a + self.audio_cross(v, a, a)
        else:
            v2 = v + self.visual_cross(v, a, a)
            a2 = a + self.audio_cross(a, v, v)
        return torch.cat([v2, a2], dim=2).transpose(1, 2)

    def forward(self, video: Tensor | None = None, audio: Tensor | None = None, *,
                video_features: Tensor | None = None, audio_features: Tensor | None = None) -> ClassifierOutput:
        """``audio_features``: the output of :meth:`audio_stream` (B, S, C), in place of ``audio``."""
        logits, gamma, snippet_logits = self._pool(self._fuse(self._visual(video, video_features),
                                                              self._audio(audio, audio_features)))
        return ClassifierOutput(logits=logits, temporal_attention=gamma, extras={"snippet_logits": snippet_logits})

    def forward_export(self, video: Tensor, audio: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Tensor-only path: ``(logits, temporal_attention, snippet_logits)``."""
        out = self.forward(video, audio)
        return out.logits, out.temporal_attention, out.extras["snippet_logits"]


class CTENVisual(_CTENBase):
    """CTEN, visual only (the original ``VisualErase``, which the official ``main.py`` trains).

    ``forward(video)`` (or ``video_features``) -> :class:`ClassifierOutput` as :class:`CTEN`."""

    input_keys = ("video",)

    def __init__(self, num_classes: int = 8, depth: int = 101, width: int = 64, shortcut: str | None = None,
                 frozen_trunk: bool = True, trunk_bn: str = "train", seq_len: int = 16, snippet_duration: int = 16,
                 sample_size: int = 112, input_norm: str = "original", nonlocal_dim: int = 256,
                 nonlocal_residual: str = "scaled", dropout: float = 0.2,
                 pretrained_trunk: str | os.PathLike | None = None, erase_threshold: float = 0.7,
                 erase_audio: bool = False, erase_on: str = "features", erase_views: str = "fast",
                 pretrained_cten: str | os.PathLike | None = None):
        super().__init__()
        self._init_visual(num_classes=num_classes, depth=depth, width=width, shortcut=shortcut,
                          frozen_trunk=frozen_trunk, trunk_bn=trunk_bn, seq_len=seq_len,
                          snippet_duration=snippet_duration, sample_size=sample_size, input_norm=input_norm,
                          nonlocal_dim=nonlocal_dim, nonlocal_residual=nonlocal_residual, dropout=dropout,
                          erase_threshold=erase_threshold, erase_audio=erase_audio, erase_on=erase_on,
                          erase_views=erase_views)
        c = self.trunk_channels
        self.temporal_attention = AxisAttention(c, seq_len, fc_bias=True, normalize="relu")
        self.classifier = nn.Linear(c, num_classes)
        self._finish_init(pretrained_trunk, pretrained_cten)

    def example_inputs(self, batch_size: int = 1) -> dict[str, Tensor]:
        return {"video": self.example_video(batch_size, torch.Generator().manual_seed(0))}

    def forward(self, video: Tensor | None = None, *, video_features: Tensor | None = None) -> ClassifierOutput:
        v = self._visual(video, video_features)  # (B, S, C)
        logits, gamma, snippet_logits = self._pool(v.transpose(1, 2))
        return ClassifierOutput(logits=logits, temporal_attention=gamma, extras={"snippet_logits": snippet_logits})

    def forward_export(self, video: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.forward(video)
        return out.logits, out.temporal_attention, out.extras["snippet_logits"]


# ----------------------------------------------------------------------------------------------
# checkpoints written by the original CTEN training code (see the module docstring)
# ----------------------------------------------------------------------------------------------
# keys whose layout is VAANet's (the 3D trunk, the audio ResNet-18, the audio projection and the
# temporal attention): mapped by VAANet's converter rules
_SHARED_WITH_VAANET = ("resnet.", "a_resnet.", "a_fc.", "ta_net.")
_AUDIO_ONLY = ("a_resnet.", "a_fc.", "nl_a.", "v2a_attn.", "a2v_attn.")
_NONLOCAL = {"nl.0.": "visual_nonlocal.", "nl_a.0.": "audio_nonlocal."}
_NONLOCAL_PARTS = {"theta": "theta", "phi": "phi", "g": "g", "out": "out", "bn": "norm"}
_CROSS = {"v2a_attn.": "visual_cross.", "a2v_attn.": "audio_cross."}  # v2a: q = audio, k = v = visual
_CROSS_PARTS = {"linear_q": "query", "linear_k": "key", "linear_v": "value", "linear_o": "out"}


def original_cten_key(key: str, *, visual_only: bool) -> str | None:
    """The kit's name for one key of an original CTEN state dict (``module.`` already removed), or
    None when it has none (e.g. an audio key for the visual-only network, ``resnet.9.*``)."""
    if visual_only and key.startswith(_AUDIO_ONLY):
        return None
    if key.startswith(_SHARED_WITH_VAANET):
        new = _map_original_key(key)
        ok = ("trunk.", "audio_net.", "audio_proj.", "temporal_attention.")
        return new if new is not None and new.startswith(ok) else None
    for old, new in _NONLOCAL.items():
        if key.startswith(old):
            rest = key[len(old):]
            if rest == "alpha":
                return new + "alpha"
            part, _, leaf = rest.partition(".")
            return f"{new}{_NONLOCAL_PARTS[part]}.{leaf}" if part in _NONLOCAL_PARTS and leaf else None
    for old, new in _CROSS.items():
        if key.startswith(old):
            part, _, leaf = key[len(old):].partition(".")
            return f"{new}{_CROSS_PARTS[part]}.{leaf}" if part in _CROSS_PARTS and leaf in ("weight", "bias") else None
    if key in ("fc.weight", "fc.bias"):
        return "classifier." + key[3:]
    return None


def _few(keys: list[str], n: int = 20) -> str:
    return ", ".join(keys[:n]) + (f", ... (+{len(keys) - n} more)" if len(keys) > n else "")


def convert_original_cten_state_dict(state_dict: Mapping[str, Tensor], *, visual_only: bool) -> dict[str, Tensor]:
    """Map a state dict of the original CTEN code to this implementation's names.

    ``visual_only``: True for the original ``VisualErase`` (the network the official ``main.py``
    trains; :class:`CTENVisual`), False for ``VAANetErase`` (:class:`CTEN`). Accepts the bare
    ``model.state_dict()`` or the training checkpoint ``{'epoch', 'state_dict', 'optimizer'}``, with
    or without ``module.``. Raises :class:`CheckpointError` listing every key it cannot map (and
    the keys two names would map onto)."""
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], Mapping):
        state_dict = state_dict["state_dict"]
    out: dict[str, Tensor] = {}
    unmapped, twice = [], []
    for key, value in state_dict.items():
        key = str(key)
        bare = key[len("module."):] if key.startswith("module.") else key
        new = original_cten_key(bare, visual_only=visual_only) if isinstance(value, Tensor) else None
        if new is None:
            unmapped.append(key)
        elif new in out:
            twice.append(key)
        else:
            out[new] = value
    if unmapped or twice:
        net = "VisualErase (visual_only=True)" if visual_only else "VAANetErase (visual_only=False)"
        hint = ""
        if visual_only and any(k.split("module.", 1)[-1].startswith(_AUDIO_ONLY) for k in unmapped):
            hint = " (audio keys: the file holds the audio-visual VAANetErase; load it into model cten)"
        raise CheckpointError(
            f"original CTEN state dict ({net}): {len(unmapped) + len(twice)} key(s) cannot be mapped{hint}: "
            + _few(unmapped + [f"{k} (duplicate)" for k in twice]))
    return out


def load_original_cten_checkpoint(model: "CTEN | CTENVisual", path: str | os.PathLike) -> LoadReport:
    """Load an original CTEN training checkpoint (``save_<epoch>_<acc>.pth``) into ``model``, strictly.

    :class:`CTENVisual` takes the original ``VisualErase`` file, :class:`CTEN` the ``VAANetErase``
    one. Every file key must map onto a model key of the same shape and every model key must be
    filled (``num_batches_tracked`` excepted), else :class:`CheckpointError` lists the keys (file
    names for unmapped or unused keys, model names for missing ones) and nothing is loaded.
    Returns a :class:`LoadReport` (``loaded``: the model keys filled)."""
    inner = getattr(model, "module", model)
    visual_only = not isinstance(inner, CTEN)
    raw = read_state_dict(path)  # safe unpickling; {'state_dict': ...} and module. handled there
    try:
        state = convert_original_cten_state_dict(raw, visual_only=visual_only)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
    back = {original_cten_key(k, visual_only=visual_only): k for k in raw}  # kit key -> file key
    own = inner.state_dict()
    unused = [back[k] for k in state if k not in own]
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    wrong = [f"{back[k]} -> {k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
             for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if unused or missing or wrong:
        parts = []
        if unused:
            parts.append(f"{len(unused)} file key(s) this {type(inner).__name__} has no place for: {_few(unused)}")
        if missing:
            parts.append(f"{len(missing)} model key(s) the file lacks: {_few(missing)}")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatch(es) (build the model with the file's config): {_few(wrong, 10)}")
        raise CheckpointError(f"{path}: not an original CTEN checkpoint of this model: " + "; ".join(parts))
    if getattr(inner, "cross_query", "original") != "original":
        logger.warning("%s: loaded into a CTEN with cross_query=%r; the original network uses 'original'",
                       path, inner.cross_query)
    inner.load_state_dict(state, strict=False)
    return LoadReport(loaded=list(state), source=str(path))


_TINY = {"depth": 10, "width": 4, "seq_len": 2, "snippet_duration": 4, "sample_size": 32, "nonlocal_dim": 8}


@register_model(
    "cten",
    default_config=DEFAULT_CONFIG,
    input_keys=CTEN.input_keys,
    tasks=("temporal_erasing", "classify"),
    derived_args={**CLIP_DERIVED_ARGS, **AUDIO_DERIVED_ARGS},
    pretrained_args=("pretrained_trunk", "pretrained_audio", "pretrained_cten"),
    tiny_args={**_TINY, "audio_width": 4, "audio_frames": 32, "audio_bins": 8, "heads": 2},
    description="CTEN (CVPR'23): frozen 3D ResNet-101 + non-local, cross-modal attention and a joint temporal "
                "attention over video and fbank audio; trained with temporal erasing",
)
def cten(**cfg) -> CTEN:
    """Build :class:`CTEN` (audio-visual) from a config (see ``DEFAULT_CONFIG``)."""
    return CTEN(**cfg)


@register_model(
    "cten_visual",
    default_config=VISUAL_DEFAULT_CONFIG,
    input_keys=CTENVisual.input_keys,
    tasks=("temporal_erasing", "classify"),
    derived_args=dict(CLIP_DERIVED_ARGS),
    pretrained_args=("pretrained_trunk", "pretrained_cten"),
    tiny_args=dict(_TINY),
    description="CTEN visual-only (the network the official CTEN main.py trains): frozen 3D ResNet-101 + "
                "non-local + temporal attention; trained with temporal erasing",
)
def cten_visual(**cfg) -> CTENVisual:
    """Build :class:`CTENVisual` from a config (see ``VISUAL_DEFAULT_CONFIG``)."""
    return CTENVisual(**cfg)


from ..engine import erasing as _erasing  # noqa: E402,F401  (registers task temporal_erasing)
