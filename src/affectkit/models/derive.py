"""Model arguments that follow from the data and the input config, shared by the registry entries
(see :mod:`affectkit.registry`: ``derived_args``)."""
from __future__ import annotations

from ..registry import NUM_CLASSES


def audio_bins(cfg, classes) -> int:
    """Feature bins of the configured audio features: MFCC coefficients, mel bands or encoder state width."""
    a = cfg.input.audio
    if a.kind == "whisper":
        return a.encoder_dim
    return a.n_mfcc if a.kind == "mfcc" else a.n_mels


# a clip classifier on snippets of video
CLIP_DERIVED_ARGS = {
    "num_classes": NUM_CLASSES,
    "seq_len": "input.seq_len",
    "snippet_duration": "input.snippet_duration",
    "sample_size": "input.sample_size",
}
# a model on audio features (frames, bins)
AUDIO_DERIVED_ARGS = {
    "num_classes": NUM_CLASSES,
    "audio_frames": "input.audio.num_frames",
    "audio_bins": audio_bins,
}
