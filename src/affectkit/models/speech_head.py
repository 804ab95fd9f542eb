"""Speech emotion on a pretrained speech encoder: a light head over frozen encoder states.

``speech_head`` takes ``audio`` ``(B, T, D)``: the states of a frozen speech encoder, one per 20 ms, computed
by the data loader (``input.audio.kind: whisper``: Whisper tiny.en's encoder, D = 384,
:mod:`affectkit.data.speech_encoder`). Windows shorter than ``T`` are zero-padded at the end; the all-zero
rows are the padding (encoder states are never exactly zero), so the model needs no separate mask and one
tensor is the whole input (ONNX-friendly; ``predict --engine onnx`` runs the head in ONNX Runtime and the
encoder in CTranslate2 inside the loader, as the PyTorch engine does).

Architecture: LayerNorm(D) -> Linear(D, dim) -> GELU -> dropout -> ``layers`` pre-LN transformer blocks
(the kit's :class:`~affectkit.models.blocks.transformer.TransformerBlock`, key-padding masked, sinusoidal
positions) -> attentive statistics pooling (Okabe et al. 2018: a tanh attention over the valid frames, the
attention-weighted mean and standard deviation, ``2 * dim``) or the masked mean (``pooling: mean``) ->
dropout -> Linear(K). Training-time frame dropout (``frame_mask``: the share of valid frames zeroed per
utterance) regularises a head trained on few speakers.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import register_model
from .blocks.transformer import TransformerBlock, sinusoid_position_table
from .derive import AUDIO_DERIVED_ARGS
from .outputs import ClassifierOutput

__all__ = ["SpeechHead", "DEFAULT_CONFIG"]

DEFAULT_CONFIG: dict = {
    "num_classes": 8,
    "audio_frames": 250,  # from input.audio.num_frames: encoder states per window (20 ms each: 5 s)
    "audio_bins": 384,  # from input.audio.encoder_dim
    "dim": 128,
    "layers": 1,
    "heads": 4,
    "dropout": 0.2,
    "pooling": "attentive_stats",  # attentive_stats | mean
    "frame_mask": 0.1,
}


class SpeechHead(nn.Module):
    """See the module docstring. ``forward(audio)`` -> :class:`ClassifierOutput` with ``logits`` (B, K) and
    ``temporal_attention`` (B, T): the pooling's attention over the frames (uniform over the valid frames
    for ``mean``)."""

    input_keys = ("audio",)

    def __init__(self, num_classes: int = 8, audio_frames: int = 250, audio_bins: int = 384, dim: int = 128,
                 layers: int = 1, heads: int = 4, dropout: float = 0.2, pooling: str = "attentive_stats",
                 frame_mask: float = 0.1):
        super().__init__()
        for key, value in (("num_classes", num_classes), ("audio_frames", audio_frames), ("audio_bins", audio_bins),
                           ("dim", dim), ("heads", heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"speech_head: {key} must be a positive integer, got {value!r}")
        if not isinstance(layers, int) or layers < 0:
            raise ConfigError(f"speech_head: layers must be an integer >= 0, got {layers!r}")
        if dim % heads:
            raise ConfigError(f"speech_head: dim {dim} must be divisible by heads {heads}")
        if pooling not in ("attentive_stats", "mean"):
            raise ConfigError(f"speech_head: pooling must be attentive_stats or mean, got {pooling!r}")
        if not 0.0 <= float(dropout) < 1.0 or not 0.0 <= float(frame_mask) < 1.0:
            raise ConfigError("speech_head: dropout and frame_mask must be in [0, 1)")
        self.num_classes, self.audio_frames, self.audio_bins = num_classes, audio_frames, audio_bins
        self.pooling, self.frame_mask = pooling, float(frame_mask)
        self.proj = nn.Sequential(nn.LayerNorm(audio_bins), nn.Linear(audio_bins, dim), nn.GELU(), nn.Dropout(float(dropout)))
        self.register_buffer("pos", sinusoid_position_table(audio_frames, dim)[None], persistent=False)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim) if layers else nn.Identity()
        self.attn = nn.Sequential(nn.Linear(dim, dim // 2), nn.Tanh(), nn.Linear(dim // 2, 1)) if pooling == "attentive_stats" else None
        out = 2 * dim if pooling == "attentive_stats" else dim
        self.head = nn.Sequential(nn.Dropout(float(dropout)), nn.Linear(out, num_classes))

    def example_inputs(self, batch_size: int = 1) -> dict[str, Tensor]:
        """Encoder-state-like inputs ``(batch_size, frames, D)``, the last quarter of the second item padding."""
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch_size, self.audio_frames, self.audio_bins, generator=g)
        if batch_size > 1:
            x[1, self.audio_frames - self.audio_frames // 4:] = 0.0
        return {"audio": x}

    def forward(self, audio: Tensor) -> ClassifierOutput:
        if audio.dim() != 3 or audio.shape[2] != self.audio_bins or audio.shape[1] > self.audio_frames:
            raise ValueError(f"speech_head: audio must be (B, <= {self.audio_frames}, {self.audio_bins}) encoder states, "
                             f"got {tuple(audio.shape)}")
        audio = audio.float()
        valid = audio.abs().amax(dim=2) > 0  # (B, T): the zero rows are padding
        if self.training and self.frame_mask > 0:
            drop = torch.rand(valid.shape, device=audio.device) < self.frame_mask
            keep = valid & ~drop
            valid = torch.where(keep.any(dim=1, keepdim=True), keep, valid)  # never drop every frame
        # an all-padding item (silence cut to nothing) keeps its first frame, so no softmax is over nothing
        first = torch.zeros_like(valid)
        first[:, 0] = True
        valid = valid | (first & ~valid.any(dim=1, keepdim=True))
        t = audio.shape[1]
        x = self.proj(audio) + self.pos[:, :t]
        pad = ~valid
        for block in self.blocks:
            x = block(x, pad)
        x = self.norm(x)
        w = valid.to(x.dtype)
        if self.attn is not None:
            score = self.attn(x).squeeze(-1).masked_fill(pad, float("-inf"))
            alpha = torch.softmax(score, dim=1)  # (B, T)
            mean = (alpha[..., None] * x).sum(1)
            var = (alpha[..., None] * (x - mean[:, None]).square()).sum(1)
            pooled = torch.cat([mean, var.clamp(min=1e-6).sqrt()], dim=1)
        else:
            alpha = w / w.sum(1, keepdim=True)
            pooled = (alpha[..., None] * x).sum(1)
        return ClassifierOutput(logits=self.head(pooled), temporal_attention=alpha, extras={})


@register_model(
    "speech_head",
    default_config=DEFAULT_CONFIG,
    input_keys=SpeechHead.input_keys,
    derived_args=AUDIO_DERIVED_ARGS,
    tiny_args={"dim": 16, "heads": 2, "audio_frames": 20, "audio_bins": 24},
    description="Speech emotion on frozen Whisper encoder states (input.audio.kind: whisper): a transformer "
                "block and attentive statistics pooling",
)
def speech_head(**cfg) -> SpeechHead:
    """Build :class:`SpeechHead` from a config (see ``DEFAULT_CONFIG``)."""
    return SpeechHead(**cfg)
