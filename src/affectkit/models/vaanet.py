"""VAANet: Visual-Audio Attention Network (Zhao et al., AAAI 2020), faithful to the official code.

Reference: github.com/maysonma/VAANet at cc54211 (``models/vaanet.py``, ``models/visual_stream.py``);
spec: ``methods_vaanet_cten_tsl.md`` section 1. Shapes for the default config (B videos, S = 12
snippets of 16 frames at 112x112, 16 audio chunks of 256 MFCC frames x 32 coefficients)::

    video (B, S, 3, 16, 112, 112), floats in [0, 255]
      -> normalise: x/255 - 100/255 ("original") or x - Hara's RGB mean ("kinetics")
      -> frozen 3D ResNet-101 trunk, no head            (B*S, 2048, 1, 4, 4)
      -> mean over T' (a no-op when T' = 1), flatten    (B*S, 2048, P=16)       = trunk_features
      -> visual_proj: Conv1d 2048->512 + BN + ReLU      F  (B*S, 512, 16)
      -> spatial_attention over the P positions         alpha (B*S, 16)   softmax * P
         F_s = F * alpha
      -> channel_attention over the 512 channels        beta  (B*S, 512)  softmax * 512
         F_sc = mean_P(F_s * beta)                      (B, 512, S)
      -> temporal_attention over the S snippets         gamma (B, S)      ReLU(Linear S->S), bias init 1
         f_v = mean_S(F_sc * gamma)                     (B, 512)
    audio (B, 4096, 32) MFCC
      -> 16 chunks                                      (B*16, 1, 256, 32)
      -> audio_net: ResNet-18, conv1 1->64 (7,1)/(2,1)  (B*16, 512)
      -> audio_proj: Linear 512->256 + BN + tanh        (B, 256, 16)
      -> audio_attention over the 16 chunks             (B, 16)           ReLU(Linear 16->16)
         f_a = mean(audio * attention)                  (B, 256)
    classifier: Linear(512 + 256 -> num_classes) on [f_v, f_a]  -> logits (B, num_classes)

Deliberate differences from the original code (none changes the function computed):
  * The visual-only classifier ``fc`` (512->8) of the original's parent class is not built: the
    audio-visual forward pass never uses it (the original still hands it to the optimiser).
  * The input is not normalised in place (the original modifies the caller's tensor).
  * Snippets are flattened batch-major (b*S + s) instead of snippet-major; BatchNorm statistics
    are order-independent, so only float summation order differs.
  * If the trunk keeps a temporal extent T' > 1 (snippets longer than 16 frames), it is averaged;
    the original only supports T' = 1.
  * ``trunk_bn="frozen"`` (not the default) keeps the trunk's BatchNorm in eval mode; the original
    lets the frozen trunk's BatchNorm use batch statistics and update its running statistics in
    training mode (``trunk_bn="train"``, the default, replicates that).
"""
from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError
from ..registry import register_model
from .derive import AUDIO_DERIVED_ARGS, CLIP_DERIVED_ARGS
from .blocks.attention import AxisAttention
from .blocks.resnet2d import ResNet2d, load_torchvision_resnet18
from .blocks.resnet3d import (
    LoadReport,
    ResNet3d,
    default_shortcut,
    load_kinetics_checkpoint,
    load_matching_weights,
    read_state_dict,
)
from .outputs import ClassifierOutput, FeatureCacheHook

__all__ = ["VAANet", "DEFAULT_CONFIG", "convert_original_state_dict", "load_original_checkpoint"]

logger = logging.getLogger(__name__)

# Mean RGB on 0-255 input that Hara et al.'s Kinetics models were trained with (their default
# ``--mean_dataset activitynet``), no std division.
KINETICS_RGB_MEAN = (114.7748, 107.7354, 99.4750)
# The original VAANet: x / 255 - 100 / 255, one scalar for all channels.
ORIGINAL_NORM_VALUE = 255.0
ORIGINAL_MEAN = 100.0 / ORIGINAL_NORM_VALUE

DEFAULT_CONFIG: dict = {
    "num_classes": 8,
    "depth": 101,
    "width": 64,
    "shortcut": None,  # None: 'A' for depth <= 34, 'B' for 50+ (as Hara et al.'s released models)
    "frozen_trunk": True,
    "trunk_bn": "train",  # "train" (original) or "frozen" (trunk BatchNorm always in eval mode)
    "seq_len": 12,
    "snippet_duration": 16,
    "sample_size": 112,
    "audio_segments": 16,
    "audio_frames": 4096,
    "audio_bins": 32,
    "audio_embed": 256,
    "audio_width": 64,
    "input_norm": "original",  # "original" (x/255 - 100/255) or "kinetics" (x - RGB mean, 0-255)
    "pretrained_trunk": None,  # local path to e.g. resnet-101-kinetics.pth (Hara et al., 2017)
    "pretrained_audio": None,  # local path to a torchvision ImageNet resnet18 state dict
}


def normalize_pixels(video: Tensor, pixel_mean: Tensor | None) -> Tensor:
    """Pixels in [0, 255] -> a 3D ResNet trunk's input: the original ``x / 255 - 100 / 255`` when
    ``pixel_mean`` is None, else ``x - pixel_mean`` (Kinetics RGB mean, 0-255). Not in place."""
    video = video.float()
    if pixel_mean is None:
        return video / ORIGINAL_NORM_VALUE - ORIGINAL_MEAN
    return video - pixel_mean


class VAANet(nn.Module):
    """VAANet (see the module docstring for the architecture and the config keys in ``DEFAULT_CONFIG``).

    ``forward(video, audio)`` takes ``video`` ``(B, S, 3, T, H, W)`` with pixel values in [0, 255]
    and ``audio`` ``(B, audio_frames, audio_bins)`` MFCCs, and returns a :class:`ClassifierOutput`
    with ``logits`` ``(B, num_classes)``, ``temporal_attention`` ``(B, S)`` (the original's
    ``gamma``) and ``extras``: ``"spatial_attention"`` ``(B, S, P)``, ``"channel_attention"``
    ``(B, S, 8*width)``, ``"audio_attention"`` ``(B, audio_segments)`` and ``"snippet_logits"``
    ``(B, S, num_classes)``: the video's logits split over its snippets. The classifier is linear
    and the visual feature is the mean of the attention-weighted snippet features, so with
    ``snippet_logits[:, s] = W_v (gamma_s f_s) + W_a f_a + b`` their mean over snippets is exactly
    ``logits``; the softmax of each is the emotion over time (the audio term is shared by all
    snippets: the original pools audio over the whole clip).
    """

    input_keys = ("video", "audio")
    input_aliases = {"video": "video_features"}  # forward(video_features=...) takes cached trunk features

    def feature_cache_hook(self) -> FeatureCacheHook | None:
        """Cached trunk features for training the heads only (needs ``frozen_trunk``)."""
        if not self.frozen_trunk:
            return None
        return FeatureCacheHook(compute=lambda batch: {"video_features": self.trunk_features(batch["video"])},
                                replaces=("video",), frozen=[self.trunk])

    def example_inputs(self, batch_size: int = 1) -> dict[str, Tensor]:
        """Inputs of the right shapes and ranges (pixels in [0, 255], MFCC-like audio), for export."""
        g = torch.Generator().manual_seed(0)
        s, t, z = self.seq_len, self.snippet_duration, self.sample_size
        return {"video": torch.randint(0, 256, (batch_size, s, 3, t, z, z), generator=g).float(),
                "audio": torch.randn(batch_size, self.audio_frames, self.audio_bins, generator=g) * 20}

    def __init__(
        self,
        num_classes: int = 8,
        depth: int = 101,
        width: int = 64,
        shortcut: str | None = None,
        frozen_trunk: bool = True,
        trunk_bn: str = "train",
        seq_len: int = 12,
        snippet_duration: int = 16,
        sample_size: int = 112,
        audio_segments: int = 16,
        audio_frames: int = 4096,
        audio_bins: int = 32,
        audio_embed: int = 256,
        audio_width: int = 64,
        input_norm: str = "original",
        pretrained_trunk: str | os.PathLike | None = None,
        pretrained_audio: str | os.PathLike | None = None,
    ):
        super().__init__()
        if trunk_bn not in ("train", "frozen"):
            raise ConfigError(f"vaanet: trunk_bn must be 'train' or 'frozen', got {trunk_bn!r}")
        if input_norm not in ("original", "kinetics"):
            raise ConfigError(f"vaanet: input_norm must be 'original' or 'kinetics', got {input_norm!r}")
        for key, value in (("num_classes", num_classes), ("seq_len", seq_len), ("snippet_duration", snippet_duration),
                           ("sample_size", sample_size), ("audio_segments", audio_segments),
                           ("audio_frames", audio_frames), ("audio_bins", audio_bins), ("audio_embed", audio_embed)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"vaanet: {key} must be a positive integer, got {value!r}")
        if audio_frames % audio_segments:
            raise ConfigError(
                f"vaanet: audio_frames ({audio_frames}) must be a multiple of audio_segments ({audio_segments})"
            )
        self.num_classes = num_classes
        self.seq_len = seq_len
        self.snippet_duration = snippet_duration
        self.sample_size = sample_size
        self.frozen_trunk = bool(frozen_trunk)
        self.trunk_bn = trunk_bn
        self.input_norm = input_norm
        self.audio_segments = audio_segments
        self.audio_frames = audio_frames
        self.audio_bins = audio_bins
        self.audio_embed = audio_embed

        # ---- visual stream ---------------------------------------------------------------
        self.trunk = ResNet3d(depth=depth, width=width, shortcut=shortcut or default_shortcut(depth), num_classes=None)
        self.trunk_channels = self.trunk.out_channels  # 2048 for ResNet-50/101 at width 64
        self.visual_channels = 8 * int(width)  # the original's k = 512
        self.positions = math.ceil(sample_size / 32) ** 2  # the original's m = 16 at 112x112
        if input_norm == "kinetics":
            self.register_buffer("pixel_mean", torch.tensor(KINETICS_RGB_MEAN).view(1, 3, 1, 1, 1), persistent=False)
        else:
            self.pixel_mean = None

        k, p = self.visual_channels, self.positions
        self.visual_proj = nn.Sequential(nn.Conv1d(self.trunk_channels, k, 1, bias=True), nn.BatchNorm1d(k), nn.ReLU())
        self.spatial_attention = AxisAttention(k, p, fc_bias=False, normalize="softmax")
        self.channel_attention = AxisAttention(p, k, fc_bias=False, normalize="softmax")
        self.temporal_attention = AxisAttention(k, seq_len, fc_bias=True, normalize="relu")

        # ---- audio stream ----------------------------------------------------------------
        self.audio_net = ResNet2d(
            layers=(2, 2, 2, 2), in_channels=1, conv1_kernel=(7, 1), conv1_stride=(2, 1), conv1_padding=(3, 0),
            width=audio_width,
        )
        self.audio_proj = nn.Sequential(nn.Linear(self.audio_net.out_channels, audio_embed), nn.BatchNorm1d(audio_embed), nn.Tanh())
        self.audio_attention = AxisAttention(audio_embed, audio_segments, fc_bias=True, normalize="relu")

        # ---- fusion ----------------------------------------------------------------------
        self.classifier = nn.Linear(k + audio_embed, num_classes)

        self._init_weights()

        self.pretrained_report: LoadReport | None = None
        self.pretrained_audio_report: LoadReport | None = None
        if pretrained_trunk:
            self.pretrained_report = load_kinetics_checkpoint(self.trunk, pretrained_trunk)
            logger.info("vaanet trunk: %s", self.pretrained_report.summary())
        if pretrained_audio:
            self.pretrained_audio_report = load_torchvision_resnet18(self.audio_net, pretrained_audio)
            logger.info("vaanet audio net: %s", self.pretrained_audio_report.summary())

        if self.frozen_trunk:
            for param in self.trunk.parameters():
                param.requires_grad_(False)
        if self.trunk_bn == "frozen":
            self.trunk.eval()

    def _init_weights(self) -> None:
        # As the original: 1x1 convs of the visual head and attentions kaiming-normal (fan_out),
        # their BatchNorms weight 1 / bias 0, the temporal mixing bias 1.0. The audio attention,
        # audio projection, classifier and the audio stem conv keep PyTorch's default init
        # (the original replaces torchvision's conv1 by a fresh nn.Conv2d).
        for module in (self.visual_proj, self.spatial_attention, self.channel_attention, self.temporal_attention):
            for m in module.modules():
                if isinstance(m, nn.Conv1d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out")
                elif isinstance(m, nn.BatchNorm1d):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.temporal_attention.fc.bias.fill_(1.0)
        self.audio_net.conv1.reset_parameters()

    def train(self, mode: bool = True) -> "VAANet":
        super().train(mode)
        if self.trunk_bn == "frozen":
            self.trunk.eval()
        return self

    # ------------------------------------------------------------------------------------
    def normalize_video(self, video: Tensor) -> Tensor:
        """Pixels in [0, 255] -> the trunk's input range (``input_norm``). Not in place."""
        return normalize_pixels(video, self.pixel_mean)

    def trunk_features(self, video: Tensor) -> Tensor:
        """``video`` (B, S, 3, T, H, W) in [0, 255] -> trunk features (B, S, C, P).

        Runs under ``torch.no_grad()`` when the trunk is frozen. The result can be cached and fed
        back through ``forward(video_features=...)``.
        """
        if video.dim() != 6 or video.shape[2] != 3:
            raise ValueError(f"vaanet: video must be (B, S, 3, T, H, W), got {tuple(video.shape)}")
        b, s = video.shape[:2]
        x = self.normalize_video(video.reshape(b * s, *video.shape[2:]))
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen_trunk):
            f = self.trunk.forward_features(x)  # (B*S, C, T', H', W')
            f = f.mean(dim=2).flatten(2)  # (B*S, C, P)
        return f.reshape(b, s, f.shape[1], f.shape[2])

    def forward(
        self, video: Tensor | None = None, audio: Tensor | None = None, *, video_features: Tensor | None = None
    ) -> ClassifierOutput:
        if video_features is None:
            if video is None:
                raise ValueError("vaanet: pass `video` (B, S, 3, T, H, W) or `video_features` (B, S, C, P)")
            video_features = self.trunk_features(video)
        if audio is None:
            raise ValueError("vaanet: `audio` (B, audio_frames, audio_bins) is required")
        f_v, alpha, beta, gamma, snippets = self._visual_head(video_features)
        f_a, audio_weights = self._audio_stream(audio)
        logits = self.classifier(torch.cat([f_v, f_a], dim=1))  # (B, K)
        b, s = gamma.shape
        return ClassifierOutput(
            logits=logits,
            temporal_attention=gamma,
            extras={
                "spatial_attention": alpha.reshape(b, s, -1),
                "channel_attention": beta.reshape(b, s, -1),
                "audio_attention": audio_weights,
                "snippet_logits": self._snippet_logits(snippets, gamma, f_a),
            },
        )

    def _snippet_logits(self, snippets: Tensor, gamma: Tensor, f_a: Tensor) -> Tensor:
        """(B, S, K) per-snippet logits whose mean over S equals the video's logits (see the class doc)."""
        k = self.visual_channels
        w_v, w_a = self.classifier.weight[:, :k], self.classifier.weight[:, k:]
        visual = torch.einsum("bks,nk->bsn", snippets * gamma.unsqueeze(1), w_v)  # (B, S, K)
        shared = f_a @ w_a.t() + self.classifier.bias  # (B, K)
        return visual + shared.unsqueeze(1)

    def forward_export(self, video: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        """Tensor-only path (for ONNX/TorchScript export): returns ``(logits, temporal_attention)``."""
        f_v, _, _, gamma, _ = self._visual_head(self.trunk_features(video))
        f_a, _ = self._audio_stream(audio)
        return self.classifier(torch.cat([f_v, f_a], dim=1)), gamma

    # ------------------------------------------------------------------------------------
    def _visual_head(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        if features.dim() != 4 or features.shape[1:] != (self.seq_len, self.trunk_channels, self.positions):
            raise ValueError(
                f"vaanet: video features must be (B, {self.seq_len}, {self.trunk_channels}, {self.positions}) "
                f"(seq_len, trunk channels, positions), got {tuple(features.shape)}"
            )
        b, s, c, p = features.shape
        f = self.visual_proj(features.reshape(b * s, c, p))  # (B*S, k, P)
        alpha = self.spatial_attention(f)  # (B*S, P)
        f = f * alpha.unsqueeze(1)
        beta = self.channel_attention(f.transpose(1, 2))  # (B*S, k)
        f = (f * beta.unsqueeze(2)).mean(dim=2)  # (B*S, k)
        f = f.reshape(b, s, -1).transpose(1, 2)  # (B, k, S)
        gamma = self.temporal_attention(f)  # (B, S)
        f_v = (f * gamma.unsqueeze(1)).mean(dim=2)  # (B, k)
        return f_v, alpha, beta, gamma, f

    def _audio_stream(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        if audio.dim() != 3 or audio.shape[1:] != (self.audio_frames, self.audio_bins):
            raise ValueError(
                f"vaanet: audio must be (B, {self.audio_frames}, {self.audio_bins}) "
                f"(audio_frames, audio_bins), got {tuple(audio.shape)}"
            )
        b = audio.shape[0]
        n = self.audio_segments
        a = audio.float().reshape(b * n, 1, self.audio_frames // n, self.audio_bins)  # (B*n, 1, L, bins)
        a = self.audio_proj(self.audio_net(a))  # (B*n, E)
        a = a.reshape(b, n, -1).transpose(1, 2)  # (B, E, n)
        weights = self.audio_attention(a)  # (B, n)
        return (a * weights.unsqueeze(1)).mean(dim=2), weights  # (B, E), (B, n)


@register_model(
    "vaanet",
    default_config=DEFAULT_CONFIG,
    input_keys=VAANet.input_keys,
    derived_args={**CLIP_DERIVED_ARGS, **AUDIO_DERIVED_ARGS},
    pretrained_args=("pretrained_trunk", "pretrained_audio"),
    tiny_args={"depth": 10, "width": 4, "audio_width": 4, "audio_embed": 16, "audio_segments": 2, "seq_len": 2,
               "snippet_duration": 4, "sample_size": 32, "audio_frames": 32, "audio_bins": 8, "frozen_trunk": False},
    description="VAANet (AAAI'20): frozen 3D ResNet-101 + spatial/channel/temporal attention, ResNet-18 MFCC audio stream",
)
def vaanet(**cfg) -> VAANet:
    """Build :class:`VAANet` from a config (see ``DEFAULT_CONFIG``)."""
    return VAANet(**cfg)


# ------------------------------------------------------------------------------------------
# checkpoints written by the original code
# ------------------------------------------------------------------------------------------
# (pattern on the original key, replacement); the first match wins. The original names the
# 3D trunk / audio ResNet as nn.Sequential of the torchvision-like children, so the indices map to
# conv1 (0), bn1 (1), layer1..layer4 (4..7); relu (2), maxpool (3) and avgpool have no weights.
_ORIGINAL_KEY_RULES: list[tuple[str, str]] = [
    (r"^resnet\.0\.", "trunk.conv1."),
    (r"^resnet\.1\.", "trunk.bn1."),
    (r"^resnet\.([4-7])\.", "trunk.layer{n}."),
    (r"^a_resnet\.0\.", "audio_net.conv1."),
    (r"^a_resnet\.1\.", "audio_net.bn1."),
    (r"^a_resnet\.([4-7])\.", "audio_net.layer{n}."),
    (r"^conv0\.([01])\.", r"visual_proj.\1."),
    (r"^a_fc\.([01])\.", r"audio_proj.\1."),
    (r"^av_fc\.", "classifier."),
]
_ORIGINAL_ATTENTION = {"sa_net": "spatial_attention", "cwa_net": "channel_attention",
                       "ta_net": "temporal_attention", "aa_net": "audio_attention"}
# the original's visual-only classifier, unused by the audio-visual forward pass
_ORIGINAL_DROPPED = re.compile(r"^fc\.(weight|bias)$")


def _map_original_key(key: str) -> str | None:
    for pattern, repl in _ORIGINAL_KEY_RULES:
        m = re.match(pattern, key)
        if m:
            if "{n}" in repl:
                return repl.format(n=int(m.group(1)) - 3) + key[m.end():]
            return re.sub(pattern, repl, key, count=1)
    m = re.match(r"^(sa_net|cwa_net|ta_net|aa_net)\.(conv\.0|conv\.1|fc)\.(.+)$", key)
    if m:
        part = {"conv.0": "proj", "conv.1": "norm", "fc": "fc"}[m.group(2)]
        return f"{_ORIGINAL_ATTENTION[m.group(1)]}.{part}.{m.group(3)}"
    return None


def convert_original_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map a state dict of the original VAANet code (``save_<epoch>.pth``) to this implementation.

    Accepts the raw ``model.state_dict()`` or the whole checkpoint dict (``{"state_dict": ...}``),
    with or without ``nn.DataParallel``'s ``module.`` prefix. The original's unused visual-only
    ``fc`` is dropped. Raises :class:`CheckpointError` listing every key it cannot map.
    """
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], Mapping):
        state_dict = state_dict["state_dict"]
    out: dict[str, Tensor] = {}
    unmapped = []
    for key, value in state_dict.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if _ORIGINAL_DROPPED.match(key):
            continue
        new = _map_original_key(key)
        if new is None:
            unmapped.append(key)
        else:
            out[new] = value
    if unmapped:
        raise CheckpointError(
            f"original VAANet state dict: {len(unmapped)} key(s) cannot be mapped: {', '.join(unmapped[:10])}"
            + (" ..." if len(unmapped) > 10 else "")
        )
    return out


def load_original_checkpoint(model: VAANet, path: str | os.PathLike) -> LoadReport:
    """Load a checkpoint written by the original VAANet training code into ``model`` (strict).

    The model must be built with the matching config (``depth=101``, ``seq_len``, ``num_classes``
    ...). Any unmapped, unused or missing key, or a shape mismatch, raises :class:`CheckpointError`.
    """
    state_dict = convert_original_state_dict(read_state_dict(path))
    own = model.state_dict()
    unused = [k for k in state_dict if k not in own]
    missing = [k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")]
    if unused or missing:
        raise CheckpointError(
            f"{path}: does not match this VAANet config; checkpoint keys the model lacks: {unused[:5]}, "
            f"model keys the checkpoint lacks: {missing[:5]}"
        )
    return load_matching_weights(model, state_dict, source=str(path))
