"""MBT: Attention Bottlenecks for Multimodal Fusion (Nagrani et al., NeurIPS 2021), and the MBT
variant that MART (Zhang et al., CVPR 2024) builds on.

Spec: ``methods_mart_mbt_moda_gait.md`` sections B (MBT), A.3 (MART's variant) and C (MODA fusion).
Blocks: :mod:`affectkit.models.blocks.transformer` (ViT, AST, converters), :mod:`~affectkit.models.blocks.moda`.

Shapes (B videos, S snippets of T frames at HxW, audio features (frames, bins))::

    video (B, S, 3, T, H, W) in [0, 255] (or (B, 3, S*T, H, W)) -> normalise (``video_norm``)
    audio (B, audio_frames, bins) -> (x - audio_norm_mean) / audio_norm_std
    segment_mode=True (MART): every snippet is a sample (B*S): its T frames and its audio window of
        audio_frames/S frames; segment_mode=False (MBT): one clip of S*T frames and all the audio.
    video_encoder (VideoViT, tubelets)   -> (N, [CLS] + Pv, D)
    audio_encoder (AST)                  -> (N, [CLS][DIST] + Pa, D)
    layers 0 .. fusion_layer-1: each modality alone (the first ``audio_frozen_layers`` AST layers
        and its embedding frozen and run under no_grad: MART's code)
    layers fusion_layer .. depth-1:
      fusion="bottleneck": [z_v | b_v] = Block_v([z_v | b]); [z_a | b_a] = Block_a([z_a | b]);
                           b = (b_v + b_a) / 2   (``num_bottlenecks`` tokens, shared over the batch)
      fusion="moda":       one joint attention over [z_v ; z_a (; text)] with MODA's alignment and a
                           modality mask (blocks/moda.py), each modality keeping its own block weights;
                           ``text_tokens`` (B, L, D) or (B, S, L, D) (+ ``text_padding_mask`` True = pad)
                           join when the model is built with ``text_tokens=True`` (per-layer text blocks)
    text stream (``text_encoder``: "word" (built-in hashed words + ``text_layers`` blocks) or "hf" (a local
        BERT-family folder ``text_model_dir``, frozen unless ``text_finetune``), blocks/text_encoder.py):
        ``text`` (B lists of S per-window strings; one string per sample serves every window) is tokenised
        by the encoder (``text_max_len`` tokens per window) or arrives as ``text_ids`` / ``text_mask``
        (B, S, L) (:meth:`MBT.tokenize_text`; what an exported graph would take) -> tokens (B, S, L, D) +
        padding (True = pad). Segment mode: each window's tokens go with its snippet's sample; clip mode:
        the S windows' tokens are one sequence. From the fusion layer on, the text joins the fusion:
        bottleneck: [z_t | b_t] = Block_t([z_t | b]) (its own blocks, text padding masked, bottlenecks
        never), b = (b_v + b_a + b_t) / 3, or / 2 without b_t for a sample whose text is all padding (an
        empty window); moda: the tokens are ``text_tokens``. Then a final LayerNorm, the text feature is
        the mean of the valid text tokens (zeros for an empty window) with its own head (``head.text``
        with per-modality heads), and ``text`` is the third modality of ``modality_logits`` and of
        ``combine``. ``input_keys`` then include ``text`` (the registry's ``input_keys_for``).
    final LayerNorm per encoder -> per modality feature: ``classifier="token"``: mean of its special
        tokens ([CLS] or [CLS]+[DIST], as MART's audio head); ``"gap"``: mean of its patch tokens
    heads: ``head_layout="shared"`` (MBT: one Linear for all modalities, zero-initialised) or
        ``"per_modality"`` (MART: ``v_fc`` / ``a_fc``) -> modality logits, combined by
        ``combine="mean"`` (MBT at test) or ``"sum"`` (MART: logits_a + logits_v)

Output (:class:`~affectkit.models.outputs.ClassifierOutput`): ``logits`` (B, K);
``temporal_attention`` None (segments are averaged uniformly); ``extras``:
``snippet_logits`` (B, S, K) (segment mode: each segment's logits, whose mean over S is ``logits``
exactly; clip mode: the head on the mean of each window's tokens: the video tokens of its frames and
the audio patches centred in its time span), ``modality_logits`` (B, M, K) (M = video, audio (, text with a
text encoder)), and in segment mode ``segment_video_tokens``
(B, S, Lv, D) and ``segment_audio_tokens`` (B, S, La, D) (MART's per-window tokens, after the final norms;
``segment_text_tokens`` (B, S, Lt, D) with a text encoder), and ``segment_features`` (B, S, M, D) (each
window's pooled feature per modality, whose :meth:`MBT.features_to_logits` are ``snippet_logits``). :meth:`MBT.classification_loss` is the
training loss of the original methods: per-modality losses (mean over modalities for MBT's token
classifier, the sum for MART's two PCCE heads), or the loss of ``logits`` (MBT's gap classifier).

Registered presets (defaults):

* ``mbt``: the original (scenic ``balanced_audioset_base``): ViT-B per modality, 32 frames
  (``seq_len`` 4 x 8) at 224 in 2x16x16 tubelets (3,136 tokens), learned position embeddings, audio
  800 x 128 log-mel in 16x16 non-overlapping patches (400 tokens), fusion from layer 8 with 4
  bottlenecks (normal std 0.02), ``gap`` classifier, one zero-initialised shared head, stochastic
  depth 0.3, video scaled to [-1, 1] ([U] scenic's ViViT default), audio (x - 1.102) / 2.762 (scenic's
  statistics, on its log-mel scale: the kit's ``log_mel`` is in dB, set the statistics to your data).
  The paper's RGB input (8 frames, 2D 16x16 patches, 1,568 tokens) is ``tubelet_size=1``,
  ``seq_len*snippet_duration=8``. scenic adds one bottleneck with the token classifier; not done here.
* ``mbt_mart``: MART's code: segment mode, 16 frames at 112 per segment (392 tokens + [CLS]), fixed
  sinusoid position table (VideoMAE), AST on 100 x 128 fbank windows with 16x16 patches at stride 10
  (108 + [CLS] + [DIST]), 32 bottlenecks (trunc-normal 0.02), ``token`` classifier, per-modality heads
  (PyTorch's default init), predicting with the sum, AST embedding + layers 0-7 frozen, video
  ``x/255 - 100/255``; the kit's ``fbank`` features are already normalised (AST ESC-50 statistics),
  so the audio statistics are the identity. Train with ``train.loss: pcce``; MART's heads are trained
  with :meth:`MBT.classification_loss` (each head's PCCE, summed).

Not in the code here: MART's "pretrain path" without ``fc_norm``, its unused sentiment heads, and the
DeiT [CLS] it copies into the video encoder (load a DeiT file with :func:`load_ast_checkpoint`
semantics by hand if needed). Checkpoints: ``pretrained_video`` (VideoMAE ViT-B/16 or a timm ViT,
:func:`~affectkit.models.blocks.transformer.load_videomae_checkpoint`), ``pretrained_audio`` (AST or
timm DeiT, :func:`~affectkit.models.blocks.transformer.load_ast_checkpoint`): local files, strict.
"""
from __future__ import annotations

import contextlib
import logging
import os

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import register_model
from .blocks.moda import MASK_TEMPLATES, PAIR_MODES, ModaFusionLayer
from .blocks.resnet3d import LoadReport
from .blocks.text_encoder import TEXT_ENCODERS, TextEncoder, build_text_encoder
from .blocks.transformer import (AudioSpectrogramTransformer, TransformerBlock, VideoViT, load_ast_checkpoint,
                                 load_videomae_checkpoint)
from .derive import AUDIO_DERIVED_ARGS, CLIP_DERIVED_ARGS
from .outputs import ClassifierOutput

__all__ = ["MBT", "MBT_CONFIG", "MBT_MART_CONFIG", "mbt_input_keys"]

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VIDEO_NORMS = ("centered", "mart", "imagenet")
MODALITIES = ("video", "audio")

MBT_CONFIG: dict = {
    "num_classes": 8,
    "seq_len": 4,
    "snippet_duration": 8,
    "sample_size": 224,
    "audio_frames": 800,
    "audio_bins": 128,
    "segment_mode": False,
    "dim": 768,
    "depth": 12,
    "heads": 12,
    "mlp_ratio": 4.0,
    "patch_size": 16,
    "tubelet_size": 2,
    "video_pos_embed": "learned",  # learned | sinusoid
    "audio_patch_size": 16,
    "audio_patch_stride": 16,  # 16: MBT's non-overlapping patches; 10: AST's overlapping ones
    "audio_dist_token": False,  # AST's [DIST] token (token classifier only)
    "fusion": "bottleneck",  # bottleneck | moda
    "fusion_layer": 8,
    "num_bottlenecks": 4,
    "bottleneck_init": "normal",  # normal (scenic) | trunc_normal (MART)
    "classifier": "gap",  # gap | token
    "head_layout": "shared",  # shared (MBT) | per_modality (MART)
    "combine": "mean",  # mean (MBT) | sum (MART)
    "head_init": "zeros",  # zeros (MBT) | default (PyTorch Linear init, MART)
    "drop_path": 0.3,
    "video_norm": "centered",  # centered ([-1, 1]) | mart (x/255 - 100/255) | imagenet (VideoMAE)
    "audio_norm_mean": 1.102,
    "audio_norm_std": 2.762,
    "audio_frozen_layers": 0,
    "moda_pairs": "duplex",  # duplex (paper) | simplex (released code: into video only)
    "moda_mask": "full",  # full | intra_only | cross_only, or a list with one per fusion layer
    "moda_proj_init": "identity",  # identity (spec's recommendation) | random (the code's effect)
    "text_tokens": False,  # moda fusion: build per-layer text blocks so text tokens can join
    "text_encoder": None,  # None | word (built-in hashed words) | hf (local BERT-family folder): a text stream
    "text_model_dir": None,  # hf: the local folder (save_pretrained of a model and its tokenizer)
    "text_max_len": 32,  # tokens per window
    "text_layers": 1,  # word: transformer blocks of the text encoder (before fusion)
    "text_buckets": 4096,  # word: hashed vocabulary size
    "text_finetune": False,  # hf: train the pretrained text model too (frozen by default)
    "pretrained_video": None,
    "pretrained_audio": None,
}
MBT_MART_CONFIG: dict = {
    **MBT_CONFIG,
    "seq_len": 12,
    "snippet_duration": 16,
    "sample_size": 112,
    "audio_frames": 1200,
    "segment_mode": True,
    "video_pos_embed": "sinusoid",
    "audio_patch_stride": 10,
    "audio_dist_token": True,
    "num_bottlenecks": 32,
    "bottleneck_init": "trunc_normal",
    "classifier": "token",
    "head_layout": "per_modality",
    "combine": "sum",
    "head_init": "default",
    "drop_path": 0.0,  # not stated by MART [assumption]
    "video_norm": "mart",
    "audio_norm_mean": 0.0,  # the kit's fbank features arrive normalised with AST's statistics
    "audio_norm_std": 1.0,
    "audio_frozen_layers": 8,
}


def _choice(name, value, options):
    if value not in options:
        raise ConfigError(f"mbt: {name} must be one of {', '.join(map(repr, options))}, got {value!r}")


def _fusion_drop_rates(rate: float, depth: int, start: int) -> list[float]:
    """Stochastic depth of layers ``start .. depth-1`` on the encoders' linear schedule (0 -> ``rate``)."""
    return [rate * i / max(depth - 1, 1) for i in range(start, depth)]


def _positive(**values):
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"mbt: {key} must be a positive integer, got {value!r}")


class MBT(nn.Module):
    """MBT with bottleneck or MODA fusion (see the module docstring for the arguments and shapes)."""

    input_keys = MODALITIES

    def __init__(self, num_classes: int = 8, seq_len: int = 4, snippet_duration: int = 8, sample_size: int = 224,
                 audio_frames: int = 800, audio_bins: int = 128, segment_mode: bool = False, dim: int = 768,
                 depth: int = 12, heads: int = 12, mlp_ratio: float = 4.0, patch_size: int = 16,
                 tubelet_size: int = 2, video_pos_embed: str = "learned", audio_patch_size: int = 16,
                 audio_patch_stride: int = 16, audio_dist_token: bool = False, fusion: str = "bottleneck",
                 fusion_layer: int = 8, num_bottlenecks: int = 4, bottleneck_init: str = "normal",
                 classifier: str = "gap", head_layout: str = "shared", combine: str = "mean",
                 head_init: str = "zeros", drop_path: float = 0.3, video_norm: str = "centered",
                 audio_norm_mean: float = 1.102, audio_norm_std: float = 2.762, audio_frozen_layers: int = 0,
                 moda_pairs: str = "duplex", moda_mask="full", moda_proj_init: str = "identity",
                 text_tokens: bool = False, text_encoder: str | None = None,
                 text_model_dir: str | os.PathLike | None = None, text_max_len: int = 32, text_layers: int = 1,
                 text_buckets: int = 4096, text_finetune: bool = False,
                 pretrained_video: str | os.PathLike | None = None,
                 pretrained_audio: str | os.PathLike | None = None):
        super().__init__()
        _positive(num_classes=num_classes, seq_len=seq_len, snippet_duration=snippet_duration,
                  sample_size=sample_size, audio_frames=audio_frames, audio_bins=audio_bins, dim=dim, depth=depth,
                  heads=heads, patch_size=patch_size, tubelet_size=tubelet_size, audio_patch_size=audio_patch_size,
                  audio_patch_stride=audio_patch_stride)
        for name, value, options in (("fusion", fusion, ("bottleneck", "moda")),
                                     ("bottleneck_init", bottleneck_init, ("normal", "trunc_normal")),
                                     ("classifier", classifier, ("gap", "token")),
                                     ("head_layout", head_layout, ("shared", "per_modality")),
                                     ("combine", combine, ("mean", "sum")), ("head_init", head_init, ("zeros", "default")),
                                     ("video_norm", video_norm, VIDEO_NORMS), ("moda_pairs", moda_pairs, PAIR_MODES),
                                     ("video_pos_embed", video_pos_embed, ("learned", "sinusoid"))):
            _choice(name, value, options)
        if not 0 <= fusion_layer <= depth:
            raise ConfigError(f"mbt: fusion_layer must be in [0, depth={depth}], got {fusion_layer!r}")
        if not 0 <= audio_frozen_layers <= fusion_layer:
            raise ConfigError(f"mbt: audio_frozen_layers ({audio_frozen_layers}) must be in [0, fusion_layer="
                              f"{fusion_layer}] (only modality-specific layers can be frozen)")
        if fusion == "bottleneck" and num_bottlenecks < 1 and fusion_layer < depth:
            raise ConfigError("mbt: bottleneck fusion needs num_bottlenecks >= 1")
        if float(audio_norm_std) <= 0:
            raise ConfigError(f"mbt: audio_norm_std must be > 0, got {audio_norm_std!r}")
        if audio_frames % seq_len:
            raise ConfigError(f"mbt: audio_frames ({audio_frames}) must be a multiple of seq_len ({seq_len}): "
                              f"one audio window per snippet")
        if text_encoder is not None:
            _choice("text_encoder", text_encoder, TEXT_ENCODERS)
            _positive(text_max_len=text_max_len)
        elif text_tokens and fusion != "moda":
            raise ConfigError("mbt: text_tokens needs fusion='moda' (bottleneck fusion takes text only through "
                              "text_encoder)")
        n_fusion = depth - fusion_layer
        masks = list(moda_mask) if isinstance(moda_mask, (list, tuple)) else [moda_mask] * n_fusion
        if len(masks) != n_fusion:
            raise ConfigError(f"mbt: moda_mask lists {len(masks)} masks for {n_fusion} fusion layers")
        for m in masks:
            _choice("moda_mask", m, MASK_TEMPLATES)

        self.num_classes, self.seq_len, self.snippet_duration = num_classes, seq_len, snippet_duration
        self.sample_size, self.audio_frames, self.audio_bins = sample_size, audio_frames, audio_bins
        self.segment_mode, self.fusion, self.fusion_layer, self.depth = bool(segment_mode), fusion, fusion_layer, depth
        self.classifier, self.head_layout, self.combine = classifier, head_layout, combine
        self.video_norm, self.audio_frozen_layers = video_norm, audio_frozen_layers
        self.has_text = bool(text_tokens) or text_encoder is not None  # text blocks in the fusion layers
        self.modalities = MODALITIES + (("text",) if text_encoder is not None else ())  # those with a head
        self.input_keys = self.modalities  # the sample keys (the instance's; the registry derives the same)
        if text_encoder is not None:
            self.input_aliases = {"text": "text_ids"}  # a batch may carry pre-tokenised ids instead of strings
        self.register_buffer("audio_norm", torch.tensor([float(audio_norm_mean), float(audio_norm_std)]),
                             persistent=False)
        if video_norm == "imagenet":
            self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1) * 255, persistent=False)
            self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1) * 255, persistent=False)

        frames = snippet_duration if self.segment_mode else seq_len * snippet_duration
        self.window_frames = audio_frames // seq_len
        token = classifier == "token"
        common = dict(dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio, drop_path=drop_path)
        self.video_encoder = VideoViT(frames=frames, image_size=sample_size, patch_size=patch_size,
                                      tubelet_size=tubelet_size, pos_embed=video_pos_embed, cls_token=token, **common)
        self.audio_encoder = AudioSpectrogramTransformer(
            frames=self.window_frames if self.segment_mode else audio_frames, bins=audio_bins,
            patch_size=audio_patch_size, patch_stride=audio_patch_stride, cls_token=token,
            dist_token=token and bool(audio_dist_token), **common)
        if fusion == "bottleneck" and n_fusion:
            self.bottleneck = nn.Parameter(torch.zeros(1, num_bottlenecks, dim))
            (nn.init.trunc_normal_ if bottleneck_init == "trunc_normal" else nn.init.normal_)(self.bottleneck, std=0.02)
        else:
            self.bottleneck = None
        self.moda = None
        self.text_blocks = None
        self.text_encoder: TextEncoder | None = None
        self.text_norm = None
        if text_encoder is not None:
            self.text_encoder = build_text_encoder(text_encoder, dim, heads=heads, layers=text_layers,
                                                   max_length=text_max_len, buckets=text_buckets,
                                                   model_dir=text_model_dir, finetune=text_finetune,
                                                   mlp_ratio=mlp_ratio)
            self.text_norm = nn.LayerNorm(dim, eps=1e-6)
            if fusion == "bottleneck" and n_fusion:
                self.text_blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio=mlp_ratio, drop_path=r)
                                                 for r in _fusion_drop_rates(drop_path, depth, fusion_layer))
        if fusion == "moda" and n_fusion:
            mods = MODALITIES + (("text",) if self.has_text else ())
            self.moda = nn.ModuleList(ModaFusionLayer(dim, heads, mods, pairs=moda_pairs, mask=m,
                                                      proj_init=moda_proj_init) for m in masks)
            if self.has_text:
                self.text_blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio=mlp_ratio)
                                                 for _ in range(n_fusion))
        names = ("shared",) if head_layout == "shared" else self.modalities
        self.head = nn.ModuleDict({n: nn.Linear(dim, num_classes) for n in names})
        if head_init == "zeros":
            for lin in self.head.values():
                nn.init.zeros_(lin.weight), nn.init.zeros_(lin.bias)
        if not self.segment_mode:  # which audio patches belong to which snippet window (clip mode)
            centers = self.audio_encoder.patch_time_centers()
            window = (centers * seq_len / audio_frames).floor().clamp(max=seq_len - 1).long()
            assign = torch.nn.functional.one_hot(window, seq_len).T.float()  # (S, Pa)
            self.register_buffer("audio_windows", assign / assign.sum(1, keepdim=True).clamp(min=1), persistent=False)

        self.pretrained_video_report: LoadReport | None = None
        self.pretrained_audio_report: LoadReport | None = None
        if pretrained_video:
            self.pretrained_video_report = load_videomae_checkpoint(self.video_encoder, pretrained_video)
            logger.info("mbt video encoder: %s", self.pretrained_video_report.summary())
        if pretrained_audio:
            self.pretrained_audio_report = load_ast_checkpoint(self.audio_encoder, pretrained_audio)
            logger.info("mbt audio encoder: %s", self.pretrained_audio_report.summary())
        for p in self._frozen_audio_parameters():
            p.requires_grad_(False)

    # -- parts ---------------------------------------------------------------------------------
    def _frozen_audio_parameters(self):
        if not self.audio_frozen_layers:
            return []
        enc = self.audio_encoder
        params = list(enc.patch_embed.parameters()) + [enc.pos_embed]
        params += [getattr(enc, f"{n}_token") for n in enc.special]
        for block in enc.blocks[:self.audio_frozen_layers]:
            params += list(block.parameters())
        return params

    def normalize_video(self, video: Tensor) -> Tensor:
        video = video.float()
        if self.video_norm == "centered":
            return video / 127.5 - 1.0
        if self.video_norm == "mart":
            return video / 255.0 - 100.0 / 255.0
        return (video - self.pixel_mean) / self.pixel_std

    def _video_input(self, video: Tensor) -> Tensor:  # -> (B, S, 3, T, H, W)
        t, z = self.snippet_duration, self.sample_size
        if video.dim() == 5 and video.shape[1] == 3 and video.shape[2] % t == 0:
            b, _, total, h, w = video.shape
            video = video.reshape(b, 3, total // t, t, h, w).transpose(1, 2)
        if video.dim() != 6 or video.shape[2] != 3 or tuple(video.shape[3:]) != (t, z, z):
            raise ValueError(f"mbt: video must be (B, S, 3, {t}, {z}, {z}) or (B, 3, S*{t}, {z}, {z}) "
                             f"(snippet_duration, sample_size), got {tuple(video.shape)}")
        if not self.segment_mode and video.shape[1] != self.seq_len:
            raise ValueError(f"mbt: clip mode takes seq_len={self.seq_len} snippets, got {video.shape[1]}")
        return video

    def _audio_input(self, audio: Tensor, s: int) -> Tensor:
        frames = self.window_frames * s if self.segment_mode else self.audio_frames
        if audio is None or audio.dim() != 3 or tuple(audio.shape[1:]) != (frames, self.audio_bins):
            got = None if audio is None else tuple(audio.shape)
            raise ValueError(f"mbt: audio must be (B, {frames}, {self.audio_bins}) (frames, bins: "
                             f"{self.window_frames} frames per snippet), got {got}")
        return (audio.float() - self.audio_norm[0]) / self.audio_norm[1]

    def _text_input(self, text: Tensor | None, pad: Tensor | None, b: int, s: int):
        if text is None:
            return None, None
        if not self.has_text:
            raise ValueError("mbt: text_tokens given but the model was built without text_tokens=True")
        if text.dim() == 3:  # (B, L, D): the same text for every snippet
            if self.segment_mode:
                text = text.repeat_interleave(s, dim=0)
                pad = None if pad is None else pad.repeat_interleave(s, dim=0)
        elif text.dim() == 4 and text.shape[1] == s:  # (B, S, L, D): per snippet window
            text = text.reshape(b * s, *text.shape[2:]) if self.segment_mode else text.reshape(b, -1, text.shape[-1])
            if pad is not None:
                pad = pad.reshape(b * s, -1) if self.segment_mode else pad.reshape(b, -1)
        else:
            raise ValueError(f"mbt: text_tokens must be (B, L, D) or (B, S={s}, L, D), got {tuple(text.shape)}")
        if text.shape[-1] != self.video_encoder.dim:
            raise ValueError(f"mbt: text tokens have width {text.shape[-1]}, the model {self.video_encoder.dim}")
        if pad is not None and tuple(pad.shape) != tuple(text.shape[:2]):
            raise ValueError(f"mbt: text_padding_mask {tuple(pad.shape)} does not match the text tokens "
                             f"{tuple(text.shape[:2])}")
        return text.float(), pad

    def encode(self, video: Tensor, audio: Tensor, text: Tensor | None = None,
               text_padding: Tensor | None = None, video_patch_mask: Tensor | None = None,
               mask_token: Tensor | None = None) -> dict[str, Tensor]:
        """Normalised ``video`` (N, 3, T, H, W) and ``audio`` (N, frames, bins) of N samples (and
        ``text`` tokens (N, Lt, D) with ``text_padding`` (N, Lt) True = pad) -> the tokens of each
        encoder after its final norm ({video: (N, Lv, D), audio: (N, La, D)}, and ``text``
        (N, Lt, D) when the model has a text encoder).

        ``video_patch_mask`` (N, Pv) True = masked, with ``mask_token`` (D,): masking at the encoder
        input (MART's paper): a masked patch's embedding is replaced by the mask token (plus its
        position embedding) before layer 0, as SimMIM does."""
        venc, aenc = self.video_encoder, self.audio_encoder
        xv = venc.embed(video)
        if video_patch_mask is not None:
            k = venc.num_special
            if mask_token is None or tuple(video_patch_mask.shape) != (xv.shape[0], xv.shape[1] - k):
                raise ValueError(f"mbt: video_patch_mask must be (N, {xv.shape[1] - k}) with a mask_token, got "
                                 f"{tuple(video_patch_mask.shape)}")
            filler = mask_token.reshape(1, 1, -1).to(xv.dtype) + venc.pos_embed[:, k:].to(xv.dtype)
            xv = torch.cat([xv[:, :k], torch.where(video_patch_mask[..., None].bool(), filler, xv[:, k:])], 1)
        frozen, bn = self.audio_frozen_layers, None
        ctx = torch.no_grad() if frozen else contextlib.nullcontext()
        with ctx:
            xa = aenc.embed(audio)
            for block in aenc.blocks[:frozen]:
                xa = block(xa)
        for i in range(self.depth):
            vb, ab = venc.blocks[i], aenc.blocks[i]
            if i < self.fusion_layer:
                xv = vb(xv)
                if i >= frozen:
                    xa = ab(xa)
            elif self.fusion == "bottleneck":
                nv, na = xv.shape[1], xa.shape[1]
                if bn is None:
                    bn = self.bottleneck.expand(xv.shape[0], -1, -1)  # (N, nb, D)
                yv = vb(torch.cat([xv, bn], 1))
                ya = ab(torch.cat([xa, bn], 1))
                xv, xa = yv[:, :nv], ya[:, :na]
                if text is None:
                    bn = (yv[:, nv:] + ya[:, na:]) / 2
                else:  # text: its own block on [text | bottlenecks] (text padding masked, bottlenecks never)
                    nt = text.shape[1]
                    kpm = None if text_padding is None else torch.cat(
                        [text_padding, text_padding.new_zeros(text_padding.shape[0], bn.shape[1])], 1)
                    yt = self.text_blocks[i - self.fusion_layer](torch.cat([text, bn], 1), kpm)
                    text = yt[:, :nt]
                    # the mean over the modalities present: a sample whose text is all padding averages
                    # video and audio only
                    w = torch.ones(bn.shape[0], 1, 1, dtype=bn.dtype, device=bn.device) if text_padding is None \
                        else (~text_padding.bool()).any(1).to(bn.dtype)[:, None, None]
                    bn = (yv[:, nv:] + ya[:, na:] + w * yt[:, nt:]) / (2 + w)
            else:
                j = i - self.fusion_layer
                tokens = {"video": xv, "audio": xa}
                blocks = {"video": vb, "audio": ab}
                if text is not None:
                    tokens["text"], blocks["text"] = text, self.text_blocks[j]
                out = self.moda[j](tokens, {"text": text_padding}, blocks)
                xv, xa, text = out["video"], out["audio"], out.get("text")
        out = {"video": venc.norm(xv), "audio": aenc.norm(xa)}
        if text is not None and self.text_norm is not None:
            out["text"] = self.text_norm(text)
        return out

    def _pool(self, tokens: Tensor, encoder) -> Tensor:  # (N, L, D) -> (N, D)
        k = encoder.num_special
        return tokens[:, :k].mean(1) if self.classifier == "token" else tokens[:, k:].mean(1)

    def _heads(self, feats: dict[str, Tensor]) -> Tensor:  # {m: (..., D)} -> (..., M, K)
        return torch.stack([self.head["shared" if self.head_layout == "shared" else m](feats[m])
                            for m in self.modalities], dim=-2)

    @staticmethod
    def _masked_mean(tokens: Tensor, pad: Tensor | None) -> Tensor:  # (N, L, D), (N, L) -> (N, D)
        """The mean of the valid tokens (zeros for a row that is all padding: an empty window)."""
        if pad is None:
            return tokens.mean(1)
        valid = (~pad.bool()).to(tokens.dtype)[..., None]
        return (tokens * valid).sum(1) / valid.sum(1).clamp(min=1.0)

    def tokenize_text(self, text) -> tuple[Tensor, Tensor]:
        """Per-window strings (B lists of S str) -> ``text_ids`` (B, S, L), ``text_mask`` (B, S, L) (True = pad)."""
        if self.text_encoder is None:
            raise ValueError("mbt: text given but the model has no text_encoder (set text_encoder: word | hf)")
        return self.text_encoder.tokenize(text)

    def _encode_text(self, text, text_ids: Tensor | None, text_mask: Tensor | None, device):
        """``text`` strings or ``text_ids``/``text_mask`` -> (tokens (B, S', L, D), pad (B, S', L)) or (None, None)."""
        if text is None and text_ids is None:
            return None, None
        if self.text_encoder is None:
            raise ValueError("mbt: text given but the model has no text_encoder (set text_encoder: word | hf)")
        if text is not None:
            if text_ids is not None:
                raise ValueError("mbt: give either text (strings) or text_ids, not both")
            text_ids, text_mask = self.text_encoder.tokenize(text)
        text_ids = text_ids.to(device)
        text_mask = None if text_mask is None else text_mask.to(device)
        return self.text_encoder(text_ids, text_mask)

    def _combine(self, modality_logits: Tensor) -> Tensor:  # (..., M, K) -> (..., K)
        return modality_logits.sum(-2) if self.combine == "sum" else modality_logits.mean(-2)

    def features_to_logits(self, features: Tensor) -> Tensor:
        """The classifier ``fc`` of MART's Eq. 3: per-modality features (..., M, D) (the order of
        ``modalities``, as ``extras["segment_features"]``) -> combined class logits (..., K). Linear."""
        return self._combine(self._heads({m: features[..., i, :] for i, m in enumerate(self.modalities)}))

    # -- forward -------------------------------------------------------------------------------
    def forward(self, video: Tensor, audio: Tensor, text=None, text_ids: Tensor | None = None,
                text_mask: Tensor | None = None, text_tokens: Tensor | None = None,
                text_padding_mask: Tensor | None = None, video_patch_mask: Tensor | None = None,
                mask_token: Tensor | None = None) -> ClassifierOutput:
        """``text``: B lists of S strings (one per snippet window; a single string per sample is used for
        every window), tokenised by the model's text encoder; or ``text_ids`` / ``text_mask`` (B, S, L)
        already tokenised (:meth:`tokenize_text`); or ``text_tokens`` / ``text_padding_mask`` (module docstring).
        ``video_patch_mask`` (B, S, Pv) + ``mask_token`` (D,): segment mode only, see :meth:`encode`."""
        if video_patch_mask is not None and not self.segment_mode:
            raise ValueError("mbt: video_patch_mask needs segment_mode=True (one window of patches per sample)")
        v = self._video_input(video)
        b, s = v.shape[:2]
        a = self._audio_input(audio, s)
        enc_tokens, enc_pad = self._encode_text(text, text_ids, text_mask, v.device)
        if enc_tokens is not None:
            if text_tokens is not None:
                raise ValueError("mbt: give either text / text_ids or text_tokens, not both")
            if enc_tokens.shape[1] == 1:  # one text for all windows
                enc_tokens, enc_pad = enc_tokens[:, 0], enc_pad[:, 0]
            elif enc_tokens.shape[1] != s:
                raise ValueError(f"mbt: text has {enc_tokens.shape[1]} windows per sample, the video {s} snippets")
            text_tokens, text_padding_mask = enc_tokens, enc_pad
        if self.text_encoder is not None and text_tokens is None:
            raise ValueError("mbt: the model has a text encoder: pass text (per-window strings) or text_ids/text_mask")
        text_windows = text_tokens is not None and text_tokens.dim() == 4  # (B, S, L, D)
        text_len = text_tokens.shape[-2] if text_tokens is not None else 0
        text, text_pad = self._text_input(text_tokens, text_padding_mask, b, s)
        v = self.normalize_video(v)
        extras: dict[str, Tensor] = {}
        if self.segment_mode:
            tokens = self.encode(v.reshape(b * s, *v.shape[2:]), a.reshape(b * s, self.window_frames, -1),
                                 text, text_pad,
                                 None if video_patch_mask is None else video_patch_mask.reshape(b * s, -1),
                                 mask_token)
            feats = {"video": self._pool(tokens["video"], self.video_encoder),
                     "audio": self._pool(tokens["audio"], self.audio_encoder)}
            if "text" in tokens:
                feats["text"] = self._masked_mean(tokens["text"], text_pad)
            seg_feats = {m: f.reshape(b, s, -1) for m, f in feats.items()}
            seg_modality = self._heads(seg_feats)  # (B, S, M, K)
            extras["segment_features"] = torch.stack([seg_feats[m] for m in self.modalities], 2)  # (B, S, M, D)
            modality_logits = seg_modality.mean(1)
            snippet_logits = self._combine(seg_modality)
            extras["segment_video_tokens"] = tokens["video"].reshape(b, s, *tokens["video"].shape[1:])
            extras["segment_audio_tokens"] = tokens["audio"].reshape(b, s, *tokens["audio"].shape[1:])
            if "text" in tokens:
                extras["segment_text_tokens"] = tokens["text"].reshape(b, s, *tokens["text"].shape[1:])
        else:
            clip = v.transpose(1, 2).reshape(b, 3, s * self.snippet_duration, *v.shape[4:])
            tokens = self.encode(clip, a, text, text_pad)
            feats = {"video": self._pool(tokens["video"], self.video_encoder),
                     "audio": self._pool(tokens["audio"], self.audio_encoder)}
            windows = self._window_features(tokens, s)
            if "text" in tokens:
                feats["text"] = self._masked_mean(tokens["text"], text_pad)
                if text_windows:  # each window's own text tokens
                    tw = tokens["text"].reshape(b * s, text_len, -1)
                    tp = None if text_pad is None else text_pad.reshape(b * s, text_len)
                    windows["text"] = self._masked_mean(tw, tp).reshape(b, s, -1)
                else:  # one text for the clip: every window reads all of it
                    windows["text"] = feats["text"][:, None].expand(-1, s, -1)
            modality_logits = self._heads(feats)  # (B, M, K)
            snippet_logits = self._combine(self._heads(windows))
        extras["snippet_logits"] = snippet_logits
        extras["modality_logits"] = modality_logits
        return ClassifierOutput(logits=self._combine(modality_logits), temporal_attention=None, extras=extras)

    def _window_features(self, tokens: dict[str, Tensor], s: int) -> dict[str, Tensor]:
        """Clip mode: per snippet window, the mean of its video patch tokens (its tubelet time steps)
        and of the audio patches centred in its span -> {m: (B, S, D)}."""
        venc, aenc = self.video_encoder, self.audio_encoder
        pv = tokens["video"][:, venc.num_special:]
        b, _, d = pv.shape
        t, h, w = venc.grid
        if t % s:
            raise ValueError(f"mbt: {t} tubelet steps cannot be split into {s} snippet windows")
        video = pv.reshape(b, s, (t // s) * h * w, d).mean(2)
        audio = torch.einsum("sp,bpd->bsd", self.audio_windows.to(pv.dtype), tokens["audio"][:, aenc.num_special:])
        return {"video": video, "audio": audio}

    def classification_loss(self, out: ClassifierOutput, target: Tensor, loss_fn) -> Tensor:
        """The original methods' training loss: each modality's logits through ``loss_fn`` (mean over
        modalities for MBT's token classifier, the sum for ``combine="sum"``, MART), or ``loss_fn`` on
        ``logits`` for the gap classifier with a shared head (MBT's gap)."""
        if self.classifier == "gap" and self.head_layout == "shared":
            return loss_fn(out.logits.float(), target)
        ml = out.extras["modality_logits"].float()
        losses = torch.stack([loss_fn(ml[:, m], target) for m in range(ml.shape[1])])
        return losses.sum() if self.combine == "sum" else losses.mean()

    def example_inputs(self, batch_size: int = 1) -> dict:
        """``video`` and ``audio`` tensors (and, with a text encoder, ``text``: per-window strings)."""
        g = torch.Generator().manual_seed(0)
        s, t, z = self.seq_len, self.snippet_duration, self.sample_size
        out = {"video": torch.randint(0, 256, (batch_size, s, 3, t, z, z), generator=g).float(),
               "audio": torch.randn(batch_size, self.audio_frames, self.audio_bins, generator=g)}
        if self.text_encoder is not None:
            words = ("so", "happy", "to", "see", "you", "why", "would", "this", "happen", "again")
            out["text"] = [[" ".join(words[(i * 3 + j * 2 + k) % len(words)] for k in range(2 + (i + j) % 3))
                            for j in range(s)] for i in range(batch_size)]
        return out

    def forward_export(self, video: Tensor, audio: Tensor, text_ids: Tensor | None = None,
                       text_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Tensor-only path: ``(logits, snippet_logits)``; a text model takes ``text_ids`` / ``text_mask``
        (B, S, L) from :meth:`tokenize_text` (strings cannot enter a graph)."""
        out = self.forward(video, audio, text_ids=text_ids, text_mask=text_mask)
        return out.logits, out.extras["snippet_logits"]


_DERIVED = {**CLIP_DERIVED_ARGS, **AUDIO_DERIVED_ARGS}


def mbt_input_keys(args) -> tuple[str, ...]:
    """The sample keys of an MBT built with ``args``: video, audio, and text with a text encoder."""
    return MODALITIES + (("text",) if args.get("text_encoder") else ())

_TINY = {"dim": 32, "depth": 2, "heads": 2, "fusion_layer": 1, "num_bottlenecks": 2, "seq_len": 2,
         "snippet_duration": 4, "sample_size": 32, "audio_frames": 64, "audio_bins": 16}


@register_model(
    "mbt",
    default_config=MBT_CONFIG,
    input_keys=MBT.input_keys,
    input_keys_for=mbt_input_keys,
    tasks=("classify",),
    derived_args=_DERIVED,
    pretrained_args=("pretrained_video", "pretrained_audio"),
    tiny_args=dict(_TINY),
    description="MBT (NeurIPS'21): a ViT per modality (video tubelets, log-mel patches) fused through 4 "
                "attention bottlenecks from layer 8; gap classifier (bottleneck or MODA fusion)",
)
def mbt(**cfg) -> MBT:
    """Build :class:`MBT` with the original preset (see ``MBT_CONFIG``)."""
    return MBT(**cfg)


@register_model(
    "mbt_mart",
    default_config=MBT_MART_CONFIG,
    input_keys=MBT.input_keys,
    input_keys_for=mbt_input_keys,
    tasks=("classify",),
    derived_args=_DERIVED,
    pretrained_args=("pretrained_video", "pretrained_audio"),
    tiny_args={**_TINY, "audio_frozen_layers": 1},
    description="MBT as in MART (CVPR'24): per-segment VideoMAE ViT + AST (first 8 layers frozen), 32 "
                "bottlenecks, per-modality heads summed",
)
def mbt_mart(**cfg) -> MBT:
    """Build :class:`MBT` with MART's preset (see ``MBT_MART_CONFIG``)."""
    return MBT(**cfg)
