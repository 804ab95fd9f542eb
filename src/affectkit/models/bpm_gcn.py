"""BPM-GCN (Bilateral Posture and Movement GCN, IEEE TAC 2024) and the 2s-AGCN single-stream baseline,
for emotion recognition from 3D walking skeletons (Emotion-Gait: 16 joints, 48 frames).

BPM-GCN (spec D.5): two 10-block adaptive GCN streams (:class:`~affectkit.models.blocks.gcn.AGCNStream`)
on the posture (joint coordinates, 3 channels) and the movement (velocity and acceleration with their
magnitudes, 8 channels, derived inside ``forward`` from the coordinates by
:func:`affectkit.data.gait.movement_features`); optionally the PM-interacted fusion
(:class:`~affectkit.models.blocks.gcn.PMFusion`) after blocks 4, 7 and 10 (T = 48, 24, 12); mean (the
code) or max (the paper) pooling over time and joints; a classifier per stream and, on the posture
stream, the affective regression head (256 -> 31 * T hand-crafted posture features). The logits are
the average of the two streams' logits (the code's inference); ``extras`` hold ``logits_posture``,
``logits_movement`` and ``affective`` (B, 31 * T), which :class:`affectkit.engine.gait.GaitTask` trains
with ``CE + CE + affective_weight * MSE`` (``affective_weight``, a model argument stored with the
checkpoint like CTEN's erasing options: ``model.args.affective_weight`` in the YAML or ``-o
model.args.affective_weight=0.5``; default 1.0, the spec's and the released code's weights 1:1:1; 0
trains without the affective constraint, the paper's Table VI ablation).

Sizes at the full width (base 64, 4 classes, T = 48), counted with ``sum(p.numel())`` of the built
model (``tests/models/test_bpm_gcn.py`` checks them, :data:`FULL_SIZE`): BPM-GCN 7,272,024 parameters
(paper: 7.26M), with PM fusion 7,287,192 (paper: 7.27M), the 2s-AGCN single stream 3,443,844. Forward
cost per sample measured with ``torch.utils.flop_counter.FlopCounterMode``: 3.91 GFLOPs counting a
multiply-add as 2, i.e. 1.96 G multiply-adds (paper: "1.91 GFLOPs", evidently multiply-adds); the
2s-AGCN stream 1.96 GFLOPs. Stream shapes: (B, 64, 48, 16) after block 1, (B, 128, 24, 16) after block
5, (B, 256, 12, 16) after block 10.

Fusion variants (``fusion_mode``): ``code`` (default: the released code, which produced the reported
numbers) and ``paper``; see :class:`~affectkit.models.blocks.gcn.PMFusion`. In the code variant the
movement update uses the temporal attention of the *updated* posture features (our reading of the
sequential update). ``pm_fusion`` defaults to off (BPM-GCN, 88.99 % in the paper); on is BPM-GCN*.

Per-frame attention: with PM fusion, ``temporal_attention`` (B, T) is the mean of the two per-frame
gates (sigmoid, in [0, 1]) of the first fusion, the one at the input's frame rate (after block 4, T =
48): ``tatt_m`` (which frames of the movement features flow into the posture stream) and ``tatt_p``
(which frames of the posture features flow into the movement stream). ``predict`` reports it per
frame (``frame_attention``). Without fusion (and for 2s-AGCN) the model computes none: ``None``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..data.gait import FRAMES, NUM_AFFECTIVE, NUM_JOINTS, frame_mask, movement_features
from ..errors import ConfigError
from ..registry import NUM_CLASSES, register_model
from .blocks.gcn import AGCNStream, PMFusion, spatial_graph
from .outputs import ClassifierOutput

__all__ = ["BPMGCN", "AGCN", "EGAIT_EDGES", "egait_graph"]

# (child, parent) bones of the Emotion-Gait skeleton (spec D.2)
EGAIT_EDGES = [(9, 8), (8, 7), (7, 2), (3, 2), (4, 2), (5, 4), (6, 5), (2, 1), (1, 0), (13, 0), (10, 0), (15, 14),
               (14, 13), (12, 11), (11, 10)]
FUSION_AFTER = (4, 7, 10)  # PM fusion after these blocks (1-based)
# measured on the built models (tests/models/test_bpm_gcn.py); FLOPs with FlopCounterMode, per sample
FULL_SIZE = {"bpm_gcn": 7_272_024, "bpm_gcn_fusion": 7_287_192, "agcn": 3_443_844}
FULL_FLOPS = {"bpm_gcn": 3.9145e9, "agcn": 1.9553e9}  # FlopCounterMode (a multiply-add = 2 FLOPs)


def egait_graph():
    return spatial_graph(NUM_JOINTS, EGAIT_EDGES)


def _fc_init(fc: nn.Linear, fan: int) -> None:
    nn.init.normal_(fc.weight, 0.0, math.sqrt(2.0 / fan))
    nn.init.zeros_(fc.bias)


def _pool(x: Tensor, how: str) -> Tensor:
    return x.mean(dim=(2, 3)) if how == "mean" else x.amax(dim=(2, 3))


def _check_input(skeleton: Tensor, channels: int, joints: int, frames: int | None) -> None:
    if skeleton.dim() != 4 or skeleton.shape[1] != channels or skeleton.shape[3] != joints:
        raise ValueError(f"skeleton of shape {tuple(skeleton.shape)}: expected (B, {channels}, T, {joints})")
    if frames is not None and skeleton.shape[2] != frames:
        raise ValueError(f"skeleton of {skeleton.shape[2]} frames: this model is built for {frames} "
                         f"(input.skeleton.max_frames)")


class BPMGCN(nn.Module):
    """Two-stream posture/movement adaptive GCN with optional PM fusion and affective regression."""

    input_keys = ("skeleton",)
    export_extras = ("logits_posture", "logits_movement")  # carried by the ONNX export (each stream's label)

    def __init__(self, num_classes: int = 4, num_joints: int = NUM_JOINTS, frames: int = FRAMES, base_width: int = 64,
                 pm_fusion: bool = False, fusion_mode: str = "code", pool: str = "mean", affective_head: bool = True,
                 adaptive: bool = True, affective_weight: float = 1.0):
        super().__init__()
        if pool not in ("mean", "max"):
            raise ValueError(f"pool {pool!r}: expected mean or max")
        if num_joints != NUM_JOINTS:
            raise ValueError(f"num_joints {num_joints}: BPM-GCN's graph is the 16-joint Emotion-Gait skeleton")
        if isinstance(affective_weight, bool) or not isinstance(affective_weight, (int, float)) \
                or not math.isfinite(affective_weight) or affective_weight < 0:
            raise ConfigError(f"bpm_gcn: affective_weight (the weight of the affective-feature MSE in the loss) "
                              f"must be a number >= 0, got {affective_weight!r}")
        self.affective_weight = float(affective_weight)  # read by the gait task's loss (not used in forward)
        A = egait_graph()
        self.num_classes, self.num_joints, self.frames, self.pool = num_classes, num_joints, frames, pool
        self.posture = AGCNStream(3, A, base=base_width, adaptive=adaptive)
        self.movement = AGCNStream(8, A, base=base_width, adaptive=adaptive)
        self.fusion = None
        if pm_fusion:
            t = [frames, -(-frames // 2), -(-frames // 4)]
            self.fusion = nn.ModuleList(PMFusion(ti, num_joints, fusion_mode) for ti in t)
        c = self.posture.out_channels
        self.fc_cls_p = nn.Linear(c, num_classes)
        self.fc_cls_m = nn.Linear(c, num_classes)
        for fc in (self.fc_cls_p, self.fc_cls_m):
            _fc_init(fc, num_classes)
        self.affective_dim = NUM_AFFECTIVE * frames
        self.fc_aff = nn.Linear(c, self.affective_dim) if affective_head else None
        if self.fc_aff is not None:
            _fc_init(self.fc_aff, self.affective_dim)

    def example_inputs(self, batch_size: int = 1) -> dict[str, Tensor]:
        """A walking-like skeleton batch (coordinates about +-0.7, root at the origin)."""
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch_size, 3, self.frames, self.num_joints, generator=g) * 0.3
        x[:, :, :, 0] = 0.0
        return {"skeleton": x}

    def forward(self, skeleton: Tensor) -> ClassifierOutput:
        _check_input(skeleton, 3, self.num_joints, self.frames)
        x = skeleton.float()
        mask = frame_mask(x)
        xm = self.movement.normalize(movement_features(x, mask))
        xp = self.posture.normalize(x)
        start = 0
        attention = None
        for i, stop in enumerate(FUSION_AFTER):
            xp = self.posture.forward_blocks(xp, start, stop)
            xm = self.movement.forward_blocks(xm, start, stop)
            if self.fusion is not None:
                xp, xm, (tp, tm) = self.fusion[i].forward_with_attention(xp, xm)
                if i == 0:  # the first fusion runs at the input's frame rate (T = 48): one weight per frame
                    attention = (tp + tm) / 2
            start = stop
        fp, fm = _pool(xp, self.pool), _pool(xm, self.pool)
        lp, lm = self.fc_cls_p(fp), self.fc_cls_m(fm)
        extras = {"logits_posture": lp, "logits_movement": lm}
        if self.fc_aff is not None:
            extras["affective"] = self.fc_aff(fp)
        return ClassifierOutput(logits=(lp + lm) / 2, temporal_attention=attention, extras=extras)


class AGCN(nn.Module):
    """2s-AGCN single stream (the joint stream of the baseline): the same 10 adaptive GCN blocks on the
    joint coordinates, mean pooling, one classifier."""

    input_keys = ("skeleton",)

    def __init__(self, num_classes: int = 4, num_joints: int = NUM_JOINTS, frames: int = FRAMES, base_width: int = 64,
                 in_channels: int = 3, pool: str = "mean", adaptive: bool = True):
        super().__init__()
        if num_joints != NUM_JOINTS:
            raise ValueError(f"num_joints {num_joints}: the graph is the 16-joint Emotion-Gait skeleton")
        if pool not in ("mean", "max"):
            raise ValueError(f"pool {pool!r}: expected mean or max")
        self.num_classes, self.num_joints, self.frames, self.pool = num_classes, num_joints, frames, pool
        self.in_channels = in_channels
        self.stream = AGCNStream(in_channels, egait_graph(), base=base_width, adaptive=adaptive)
        self.fc = nn.Linear(self.stream.out_channels, num_classes)
        _fc_init(self.fc, num_classes)

    def example_inputs(self, batch_size: int = 1) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch_size, self.in_channels, self.frames, self.num_joints, generator=g) * 0.3
        return {"skeleton": x}

    def forward(self, skeleton: Tensor) -> ClassifierOutput:
        _check_input(skeleton, self.in_channels, self.num_joints, None)
        return ClassifierOutput(logits=self.fc(_pool(self.stream(skeleton.float()), self.pool)))


def skeleton_frames(cfg, classes) -> int:
    """The model's T: ``input.skeleton.max_frames`` (the gait preprocessing pads or sub-samples to it)."""
    frames = cfg.input.skeleton.max_frames
    if frames is None:
        raise ConfigError("input.skeleton.max_frames: the gait models are built for a fixed length (48); set it")
    return frames


GAIT_DERIVED_ARGS = {"num_classes": NUM_CLASSES, "frames": skeleton_frames,
                     "num_joints": "input.skeleton.num_joints"}
BPM_DEFAULTS = {"num_classes": 4, "num_joints": NUM_JOINTS, "frames": FRAMES, "base_width": 64, "pm_fusion": False,
                "fusion_mode": "code", "pool": "mean", "affective_head": True, "adaptive": True,
                "affective_weight": 1.0}  # the loss weight of the affective MSE (spec D.7: CE + CE + 1 * MSE)
AGCN_DEFAULTS = {"num_classes": 4, "num_joints": NUM_JOINTS, "frames": FRAMES, "base_width": 64, "in_channels": 3,
                 "pool": "mean", "adaptive": True}


@register_model("bpm_gcn", default_config=BPM_DEFAULTS, input_keys=BPMGCN.input_keys, tasks=("gait",),
                derived_args=GAIT_DERIVED_ARGS, tiny_args={"base_width": 4, "pm_fusion": True},
                description="Gait: BPM-GCN two-stream posture/movement AGCN + PM fusion + affective regression")
def bpm_gcn(**cfg) -> BPMGCN:
    """Build :class:`BPMGCN` from a config (see ``BPM_DEFAULTS``; ``pm_fusion: true`` is BPM-GCN*)."""
    return BPMGCN(**cfg)


@register_model("agcn", default_config=AGCN_DEFAULTS, input_keys=AGCN.input_keys, tasks=("gait",),
                derived_args=GAIT_DERIVED_ARGS, tiny_args={"base_width": 4},
                description="Gait: 2s-AGCN single (joint) stream baseline")
def agcn(**cfg) -> AGCN:
    """Build :class:`AGCN` from a config (see ``AGCN_DEFAULTS``)."""
    return AGCN(**cfg)


from ..engine import gait as _gait_task  # noqa: E402,F401  (registers the "gait" task the models name)
