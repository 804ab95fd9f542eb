"""Audio ResNet-18: VAANet's audio network as an audio-only emotion classifier.

VAANet (Zhao et al., AAAI 2020) hears a clip through a ResNet-18 whose stem is a ``(7, 1)``
convolution with stride ``(2, 1)`` (time is halved, the MFCC axis kept), followed by
``Linear(512 -> 256) + BatchNorm + tanh`` (``audio_proj``). This model builds that network with the
same block (:class:`~affectkit.models.blocks.resnet2d.ResNet2d`, exactly VAANet's arguments), runs it
on the whole analysed window instead of VAANet's 16 chunks (VAANet's chunk attention only weighs the
chunks against each other), and adds a classifier. Shapes for the default config::

    audio (B, 256, 32)  MFCC frames x coefficients (or log-mel bins)
      -> optional per-utterance normalisation (input_norm; "none" as VAANet)
      -> optional SpecAugment masking (training only; off by default)
      -> (B, 1, 256, 32)
      -> audio_net: ResNet-18, conv1 1->64 (7,1)/(2,1), global average pool   (B, 512)
      -> audio_proj: Linear 512->256 + BN + tanh (VAANet's)                    (B, 256)
      -> dropout, classifier Linear 256->num_classes                          logits (B, K)
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import register_model
from .derive import AUDIO_DERIVED_ARGS
from .blocks.audio import SpecAugment, UtteranceNorm
from .blocks.resnet2d import ResNet2d
from .outputs import ClassifierOutput

__all__ = ["AudioResNet", "DEFAULT_CONFIG"]

DEFAULT_CONFIG: dict = {
    "num_classes": 8,
    "audio_frames": 256,  # from input.audio.num_frames
    "audio_bins": 32,  # from input.audio (n_mfcc, or n_mels for log-mel)
    "audio_width": 64,  # ResNet-18 base width (VAANet: 64)
    "audio_embed": 256,  # VAANet's audio projection size
    "input_norm": "none",  # none (VAANet) | utterance | cmvn
    "dropout": 0.0,
    "freq_masks": 0,  # SpecAugment (training only); 0 = off, as VAANet
    "freq_mask_width": 8,
    "time_masks": 0,
    "time_mask_width": 25,
}


class AudioResNet(nn.Module):
    """VAANet's audio ResNet-18 + classifier on ``audio`` ``(B, frames, bins)``; see the module
    docstring. ``forward(audio)`` returns :class:`ClassifierOutput` with ``logits`` ``(B, K)``,
    ``temporal_attention=None`` and ``extras["embedding"]`` ``(B, audio_embed)``."""

    input_keys = ("audio",)

    def __init__(self, num_classes: int = 8, audio_frames: int = 256, audio_bins: int = 32, audio_width: int = 64,
                 audio_embed: int = 256, input_norm: str = "none", dropout: float = 0.0, freq_masks: int = 0,
                 freq_mask_width: int = 8, time_masks: int = 0, time_mask_width: int = 25):
        super().__init__()
        for key, value in (("num_classes", num_classes), ("audio_frames", audio_frames), ("audio_bins", audio_bins),
                           ("audio_width", audio_width), ("audio_embed", audio_embed)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"audio_resnet18: {key} must be a positive integer, got {value!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"audio_resnet18: dropout must be in [0, 1), got {dropout!r}")
        self.num_classes, self.audio_frames, self.audio_bins = num_classes, audio_frames, audio_bins
        self.norm = UtteranceNorm(input_norm)
        self.spec_augment = SpecAugment(freq_masks, freq_mask_width, time_masks, time_mask_width)
        # exactly VAANet's audio branch (models/vaanet.py)
        self.audio_net = ResNet2d(layers=(2, 2, 2, 2), in_channels=1, conv1_kernel=(7, 1), conv1_stride=(2, 1),
                                  conv1_padding=(3, 0), width=audio_width)
        self.audio_proj = nn.Sequential(nn.Linear(self.audio_net.out_channels, audio_embed), nn.BatchNorm1d(audio_embed),
                                        nn.Tanh())
        self.dropout = nn.Dropout(float(dropout))
        self.classifier = nn.Linear(audio_embed, num_classes)
        self.audio_net.conv1.reset_parameters()  # as VAANet: a fresh default-initialised stem

    def example_inputs(self, batch_size: int = 1) -> dict[str, Tensor]:
        """A valid input dict (for export and smoke tests): MFCC-like values ``(batch_size, frames, bins)``."""
        g = torch.Generator().manual_seed(0)
        return {"audio": torch.randn(batch_size, self.audio_frames, self.audio_bins, generator=g) * 10.0}

    def forward(self, audio: Tensor) -> ClassifierOutput:
        if audio.dim() != 3 or audio.shape[2] != self.audio_bins:
            raise ValueError(f"audio_resnet18: audio must be (B, frames, {self.audio_bins}) (frames, bins), got {tuple(audio.shape)}")
        x = self.spec_augment(self.norm(audio.float()))  # (B, T, F)
        x = self.audio_net(x.unsqueeze(1))  # (B, 512)
        embedding = self.audio_proj(x)  # (B, E)
        logits = self.classifier(self.dropout(embedding))  # (B, K)
        return ClassifierOutput(logits=logits, temporal_attention=None, extras={"embedding": embedding})


@register_model(
    "audio_resnet18",
    default_config=DEFAULT_CONFIG,
    input_keys=AudioResNet.input_keys,
    derived_args=AUDIO_DERIVED_ARGS,
    tiny_args={"audio_width": 4, "audio_embed": 16, "audio_frames": 32, "audio_bins": 16},
    description="Audio-only: VAANet's audio ResNet-18 ((7,1) stem) + projection + classifier on MFCC or log-mel",
)
def audio_resnet18(**cfg) -> AudioResNet:
    """Build :class:`AudioResNet` from a config (see ``DEFAULT_CONFIG``)."""
    return AudioResNet(**cfg)
