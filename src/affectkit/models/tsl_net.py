"""TSL-Net (Zhang & Yang, ACM MM 2022): temporal sentiment localisation from single-frame (point) labels.

Spec: ``methods_vaanet_cten_tsl.md`` section 3. Written from the spec, not from the original code.

Inputs (one row per 16 native frames; B videos padded to T steps, ``features_mask`` (B, T) marks real steps):

- ``features`` (B, T, 1024): pre-extracted I3D-RGB features (the TSL-300 ``rgb/<video>.npy``).
- ``logmel`` (B, T, 32, 60): log-mel windows, 32 mel frames of 60 bins per step, in dB as
  ``librosa.power_to_db`` writes them (the TSL-300 ``logmfcc/<video>.npy`` (N, 60) reshaped to
  (T, 32, 60) after cutting to ``32 T`` rows). The model normalises them with ``(x + 50) / 80`` as the
  original loader does. The kit stores them as a second per-video features file beside the visual one
  (see :mod:`affectkit.engine.localization`).

Architecture (shapes for the full size):

- audio: fixed sinusoidal positional encoding (width 60, ``max_len`` 4000 steps) added to every row of step t;
  the windows of steps t-1, t, t+1 stacked along the rows (circular at the ends of each video) -> (B T, 1, 96, 60);
  a 3-block 2D CNN -> (B, T, 512);
- visual alignment: Conv1d 1024 -> 512, k3, ReLU -> (B, T, 512);
- fusion: concat -> Conv1d 1024 -> 2048, k3, ReLU -> ``fused`` (B, T, 2048);
- reverse mapping (training only): per modality 3 x [Conv1d 2048 -> 2048 k3, ReLU] + Conv1d 2048 -> 512 k3, ReLU,
  predicting the visual (resp. audio) embedding from the fused features (the CPC regulariser, :func:`cpc_nce`);
- heads after Dropout(0.7): CAS and distribution, Conv1d 2048 -> K + 1 (K sentiment classes + background), no bias;
- top-k video pooling with k = max(1, floor(T / r_act)) per video (the original's k = 0 for T < 8 gives NaN).

Full size: 91.34 M parameters, as the original (two reverse-mapping nets of 40.9 M each).

Deviations (deliberate, documented): the last audio pooling is a global average (identical to the original's
AvgPool(4, 3) on its (4, 3) map, and it admits other sizes); padded batches are supported by masking (the
original runs one video per forward); k >= 1.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import NUM_CLASSES, register_model
from .outputs import ClassifierOutput

__all__ = ["TSLNet", "DEFAULT_CONFIG", "cpc_nce", "masked_topk_mean", "select_pseudo_labels", "tsl_loss"]


def _visual_dim(cfg, classes) -> int:
    dim = cfg.input.features.dim
    return int(dim) if dim else int(cfg.model.args.get("visual_dim", DEFAULT_CONFIG["visual_dim"]))


DEFAULT_CONFIG: dict = {
    "num_classes": 2,  # sentiment classes (TSL-300: n, p); the heads add one background channel
    "visual_dim": 1024,  # I3D-RGB feature width
    "audio_rows": 32,  # mel frames per step
    "audio_bins": 60,  # mel bands
    "audio_channels": [64, 256, 512],  # the audio CNN's three blocks; the last is the audio embedding width
    "visual_embed": 512,  # visual alignment width
    "fusion_dim": 2048,
    "reverse_layers": 3,  # Conv1d fusion_dim -> fusion_dim layers of each reverse-mapping net
    "dropout": 0.7,
    "r_act": 8,  # top-k pooling: k = T // r_act
    "max_len": 4000,  # positional-encoding table length (steps)
    "audio_offset": 50.0,  # logmel normalisation (x + offset) / scale
    "audio_scale": 80.0,
    "audio_chunk": 600,  # audio CNN processes at most this many windows at once
    # training objective and post-processing (read by the localize task; stored with the checkpoint)
    "loss_lambdas": [2.0, 1.0, 0.5, 1.0],  # (λ_vid, λ_frame, μ, λ_cpc), the original --lambdas
    "legacy_cpc_sign": False,  # True: add +nce as the original code does (see tsl_loss)
    "class_threshold": 0.5,  # video-level threshold for the classes to localise
    "upsample": 24,  # linear up-sampling of the CAS before thresholding
    "cas_thresholds": [0.0, 0.25, 0.025],  # numpy.arange(start, stop, step) on the class CAS
    "actionness_thresholds": [0.4, 0.75, 0.025],  # on 1 - s_bg; JACK: [0.5, 0.725, 0.025]
    "nms_iou": 0.5,
    "legacy_nms_plus_one": False,  # True: the original's "+1" width in the NMS IoU (a frame-unit habit applied to seconds)
    "frames_per_step": 16,  # native frames per feature step (seconds per step = frames_per_step / fps)
}
OPTION_KEYS = ("loss_lambdas", "legacy_cpc_sign", "class_threshold", "upsample", "cas_thresholds",
               "actionness_thresholds", "nms_iou", "legacy_nms_plus_one", "frames_per_step")


def _tracing() -> bool:
    """Inside torch.compile, a JIT trace or an ONNX export (no data-dependent Python branches there)."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def sinusoidal_encoding(length: int, width: int) -> Tensor:
    """(length, width): sin on even, cos on odd columns, wavelengths 2π .. 10000·2π."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    pe = torch.zeros(length, width)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : width // 2]
    return pe


def masked_topk_mean(x: Tensor, mask: Tensor, r_act: int) -> Tensor:
    """Mean of the k largest values over time of ``x`` (B, T, C) among the real steps (``mask`` (B, T)),
    k = max(1, length // r_act) per video -> (B, C)."""
    lengths = mask.sum(1)  # (B,)
    k = torch.clamp(lengths // r_act, min=1)  # (B,)
    filled = x.masked_fill(~mask[..., None], float("-inf"))
    ranked = torch.sort(filled, dim=1, descending=True).values
    ranked = torch.where(torch.isfinite(ranked), ranked, torch.zeros_like(ranked))
    csum = ranked.cumsum(dim=1)  # (B, T, C)
    idx = (k - 1).view(-1, 1, 1).expand(-1, 1, x.shape[2])
    return csum.gather(1, idx).squeeze(1) / k[:, None].to(x.dtype)


def cpc_nce(target: Tensor, predicted: Tensor, mask: Tensor) -> Tensor:
    """The reverse-mapping term's log-probability (≤ 0): with x = normalise(target) and x̂ = normalise(predicted)
    flattened over the real steps of the batch, mean_t [cos(x_t, x̂_t) - logsumexp_j cos(x_t, x̂_j)]."""
    x = F.normalize(target[mask], dim=-1)  # (N, D)
    xh = F.normalize(predicted[mask], dim=-1)
    sim = x @ xh.t()  # (N, N) cosines, temperature 1
    return (sim.diagonal() - torch.logsumexp(sim, dim=1)).mean()


class AudioCNN(nn.Module):
    """(N, 1, 3·rows, bins) context windows -> (N, channels[-1])."""

    def __init__(self, channels: tuple[int, int, int]):
        super().__init__()
        c1, c2, c3 = channels
        self.block1 = nn.Sequential(nn.Conv2d(1, c1, 7, stride=(3, 2), padding=3), nn.ReLU(), nn.BatchNorm2d(c1),
                                    nn.MaxPool2d(4))  # (N, 64, 32, 30) -> (N, 64, 8, 7)
        self.block2 = nn.Sequential(nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.Conv2d(c2, c2, 1), nn.ReLU(),
                                    nn.BatchNorm2d(c2), nn.MaxPool2d(2))  # (N, 256, 4, 3)
        self.block3 = nn.Sequential(nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(), nn.Conv2d(c3, c3, 1), nn.ReLU(),
                                    nn.BatchNorm2d(c3), nn.AdaptiveAvgPool2d(1))  # (N, 512, 1, 1)

        # channels-last weights and activations: oneDNN's direct layout for these convolutions (about 1.25x on
        # the forward and backward of 450 windows on a 2-core CPU); the state dict is the same
        self.to(memory_format=torch.channels_last)

    # Run eagerly inside torch.compile: inductor (torch 2.13, CPU) miscompiles these convolutions when the number
    # of windows becomes dynamic (a wrong output-stride assertion on the second video length); the rest of the
    # network still compiles. ONNX export traces through (the decorator only concerns dynamo's compile).
    @torch.compiler.disable
    def forward(self, x: Tensor) -> Tensor:
        if not _tracing():  # an exported graph picks its own layouts
            x = x.contiguous(memory_format=torch.channels_last)
        return self.block3(self.block2(self.block1(x))).flatten(1)


class MaskedConv1dStack(nn.Module):
    """Conv1d (k3, padding 1) + ReLU layers over (B, C, T), padded steps zeroed before each layer so that
    a padded batch gives every video exactly what it gets alone (zero padding at its end)."""

    def __init__(self, dims: list[int]):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(a, b, 3, padding=1) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: Tensor, keep: Tensor | None) -> Tensor:  # keep (B, 1, T) float; None: no padded step
        for conv in self.convs:
            x = F.relu(conv(x if keep is None else x * keep))
        return x if keep is None else x * keep


class TSLNet(nn.Module):
    """TSL-Net: audio CNN + visual alignment + fusion + CAS/distribution heads (see the module doc)."""

    input_keys = ("features", "logmel")
    #: ONNX export: the number of steps is dynamic (one graph for videos of any length up to max_len)
    export_dynamic_axes = {"features": {1: "steps"}, "logmel": {1: "steps"}}
    #: and the outputs the localize task turns into segments
    export_extras = ("cas_fused", "video_score")

    def __init__(self, num_classes: int = 2, visual_dim: int = 1024, audio_rows: int = 32, audio_bins: int = 60,
                 audio_channels=(64, 256, 512), visual_embed: int = 512, fusion_dim: int = 2048,
                 reverse_layers: int = 3, dropout: float = 0.7, r_act: int = 8, max_len: int = 4000,
                 audio_offset: float = 50.0, audio_scale: float = 80.0, audio_chunk: int = 600, **options):
        super().__init__()
        unknown = set(options) - set(OPTION_KEYS)
        if unknown:
            raise TypeError(f"tsl_net: unknown option(s) {sorted(unknown)}")
        #: the objective's and the post-processing's settings (see DEFAULT_CONFIG), read by the localize task
        self.options = {k: DEFAULT_CONFIG[k] for k in OPTION_KEYS} | options
        if len(audio_channels) != 3:
            raise ValueError(f"tsl_net: audio_channels must list 3 widths, got {audio_channels!r}")
        self.num_classes, self.visual_dim = num_classes, visual_dim
        self.audio_rows, self.audio_bins = audio_rows, audio_bins
        self.r_act, self.max_len, self.audio_chunk = r_act, max_len, audio_chunk
        self.audio_offset, self.audio_scale = float(audio_offset), float(audio_scale)
        audio_embed = int(audio_channels[-1])
        self.register_buffer("positional_encoding", sinusoidal_encoding(max_len, audio_bins), persistent=False)
        self.audio_net = AudioCNN(tuple(int(c) for c in audio_channels))
        self.visual_align = MaskedConv1dStack([visual_dim, visual_embed])
        self.fusion = MaskedConv1dStack([visual_embed + audio_embed, fusion_dim])
        self.reverse_visual = MaskedConv1dStack([fusion_dim] * (reverse_layers + 1) + [visual_embed])
        self.reverse_audio = MaskedConv1dStack([fusion_dim] * (reverse_layers + 1) + [audio_embed])
        self.dropout = nn.Dropout(dropout)
        self.cas_head = nn.Conv1d(fusion_dim, num_classes + 1, 1, bias=False)
        self.distribution_head = nn.Conv1d(fusion_dim, num_classes + 1, 1, bias=False)

    # ------------------------------------------------------------------------------------------
    def example_inputs(self, batch_size: int = 1, steps: int = 16) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(0)
        return {"features": torch.randn(batch_size, steps, self.visual_dim, generator=g),
                "logmel": -50 + 20 * torch.randn(batch_size, steps, self.audio_rows, self.audio_bins, generator=g)}

    def _check(self, features: Tensor, logmel: Tensor, mask: Tensor | None) -> Tensor:
        if features.dim() != 3 or features.shape[2] != self.visual_dim:
            raise ValueError(f"tsl_net: features must be (B, T, {self.visual_dim}), got {tuple(features.shape)}")
        b, t = features.shape[:2]
        if logmel.shape != (b, t, self.audio_rows, self.audio_bins):
            raise ValueError(f"tsl_net: logmel must be (B, T, {self.audio_rows}, {self.audio_bins}) with the features' "
                             f"B, T = {b}, {t}; got {tuple(logmel.shape)}")
        if t > self.max_len:
            raise ValueError(f"tsl_net: {t} steps exceed max_len={self.max_len} (the positional-encoding table)")
        if mask is None:
            return torch.ones(b, t, dtype=torch.bool, device=features.device)
        if mask.shape != (b, t):
            raise ValueError(f"tsl_net: features_mask must be (B, T) = ({b}, {t}), got {tuple(mask.shape)}")
        return mask.bool()

    def audio_stream(self, logmel: Tensor, mask: Tensor) -> Tensor:
        """(B, T, rows, bins) dB log-mel -> (B, T, audio_embed); circular context within each video's length."""
        b, t = mask.shape
        x = (logmel.float() + self.audio_offset) / self.audio_scale
        x = x + self.positional_encoding[:t][None, :, None, :]
        lengths = mask.sum(1, keepdim=True).clamp(min=1)  # (B, 1)
        steps = torch.arange(t, device=mask.device)[None].expand(b, t)
        prev = torch.remainder(steps - 1, lengths)
        nxt = torch.remainder(steps + 1, lengths)
        pick = lambda idx: x.gather(1, idx[..., None, None].expand_as(x))  # noqa: E731
        context = torch.cat([pick(prev), x, pick(nxt)], dim=2)  # (B, T, 3 rows, bins)
        width = self.audio_net.block3[2].out_channels
        if not self.training:  # BN on running statistics: every window alone, so all B·T of them (static shapes)
            windows = context.reshape(b * t, 1, *context.shape[2:])
            if _tracing():  # an exported / compiled graph: one call (a chunk count would depend on the input)
                embedded = self.audio_net(windows)
            else:
                embedded = torch.cat([self.audio_net(c) for c in windows.split(self.audio_chunk)])
            return embedded.reshape(b, t, width) * mask[..., None].to(embedded.dtype)
        # training: BN takes batch statistics over the real steps only (what each video gets alone, as the original)
        windows = context[mask].unsqueeze(1)  # (N, 1, 3 rows, bins)
        embedded = torch.cat([self.audio_net(c) for c in windows.split(self.audio_chunk)]) if len(windows) else \
            windows.new_zeros(0, width)
        out = embedded.new_zeros(b, t, width)
        out[mask] = embedded
        return out

    def forward(self, features: Tensor, logmel: Tensor, features_mask: Tensor | None = None,
                reverse_mapping: bool | None = None) -> ClassifierOutput:
        """Returns ``logits`` (B, K) = logit of the video score, ``temporal_attention`` (B, T) = actionness
        1 - s_bg, and ``extras``: ``cas`` (B, T, K+1) raw CAS logits, ``cas_fused`` (B, T, K+1) (s_c (1 - s_bg)
        for the classes, s_bg last), ``video_score`` (B, K) top-k mean of sigmoid(cas) (unfused),
        ``video_distribution`` (B, K) softmax of the top-k mean of the distribution head, ``fused`` (B, T, 2048),
        ``mask`` (B, T); with the reverse mapping (default: in training) also ``cpc`` (scalar, ≤ 0)."""
        mask = self._check(features, logmel, features_mask)
        # (B, 1, T); None when nothing is padded (eager only: a traced or exported graph always masks)
        keep = None if not _tracing() and bool(mask.all()) else mask[:, None, :].float()
        a = self.audio_stream(logmel, mask)  # (B, T, 512)
        v = self.visual_align(features.float().transpose(1, 2), keep)  # (B, 512, T)
        fused = self.fusion(torch.cat([v, a.transpose(1, 2)], dim=1), keep)  # (B, 2048, T)
        h = self.dropout(fused)
        cas = self.cas_head(h).transpose(1, 2)  # (B, T, K+1)
        cas_dis = self.distribution_head(h).transpose(1, 2)
        s = torch.sigmoid(cas)
        bg = s[..., -1:]
        cas_fused = torch.cat([s[..., :-1] * (1 - bg), bg], dim=-1)
        video_score = masked_topk_mean(s[..., :-1], mask, self.r_act)  # (B, K)
        video_distribution = torch.softmax(masked_topk_mean(cas_dis[..., :-1], mask, self.r_act), dim=-1)
        actionness = (1 - bg.squeeze(-1)) * mask
        extras = {"cas": cas, "cas_fused": cas_fused, "video_score": video_score,
                  "video_distribution": video_distribution, "fused": fused.transpose(1, 2), "mask": mask}
        if self.training if reverse_mapping is None else reverse_mapping:
            rv = self.reverse_visual(fused, keep).transpose(1, 2)  # (B, T, 512)
            ra = self.reverse_audio(fused, keep).transpose(1, 2)
            extras["cpc"] = cpc_nce(v.transpose(1, 2), rv, mask) + cpc_nce(a, ra, mask)
        logits = torch.logit(video_score.clamp(1e-6, 1 - 1e-6))
        return ClassifierOutput(logits=logits, temporal_attention=actionness, extras=extras)


# ----------------------------------------------------------------------------------------------
# losses (spec 3.5): video distribution, focal BCE on points, pseudo-action and pseudo-background frames, CPC
# ----------------------------------------------------------------------------------------------
BG_THRESHOLD = 0.95  # s_bg at or above which an unlabelled step may be pseudo-background


def select_pseudo_labels(p: Tensor, point_steps: list[int], point_target: Tensor) -> tuple[Tensor, Tensor]:
    """Pseudo labels of one video from its (detached) fused predictions ``p`` (T, K+1), its sorted labelled
    steps and ``point_target`` (T, K+1) = [Y, 0]. Returns ``act_seed`` (T, K+1) (``point_target`` at the points,
    the prediction vector at pseudo-action steps, 0 elsewhere) and ``bkg_seed`` (T,) (the stretch's maximum
    s_bg at pseudo-background steps, 0 elsewhere). See spec 3.5 item 3; no points gives no seeds."""
    t_len = p.shape[0]
    s_bg = p[:, -1]
    act_seed = torch.zeros_like(p)
    bkg_seed = torch.zeros(t_len, dtype=p.dtype, device=p.device)
    points = sorted(set(int(q) for q in point_steps if 0 <= int(q) < t_len))
    if not points:
        return act_seed, bkg_seed
    # background, stretch by stretch: (kind, first step, last step) of the unlabelled stretches
    stretches = [("head", 0, points[0] - 1)] + [("gap", a + 1, b - 1) for a, b in zip(points[:-1], points[1:])] \
        + [("tail", points[-1] + 1, t_len - 1)]
    for kind, lo, hi in stretches:
        if hi < lo:
            continue
        seg = s_bg[lo:hi + 1]
        weight = seg.max()
        strong = torch.nonzero(seg >= BG_THRESHOLD).flatten() + lo
        top = int(seg.argmax()) + lo
        if kind == "head":
            lo_b, hi_b = lo, (int(strong[-1]) if len(strong) else top)
        elif kind == "tail":
            lo_b, hi_b = (int(strong[0]) if len(strong) else top), hi
        elif len(strong) >= 2:
            lo_b, hi_b = int(strong[0]), int(strong[-1])
        else:
            lo_b = hi_b = top
        bkg_seed[lo_b:hi_b + 1] = weight
    # pseudo-actions: grow outward from the points while s_bg <= max_c p[t, c] and the background weight < 1
    accept = (s_bg <= p[:, :-1].max(dim=1).values) & (bkg_seed < 1)

    def grow(start: int, stop: int, step: int) -> None:
        for t in range(start, stop, step):
            if not bool(accept[t]):
                break
            act_seed[t] = p[t]

    grow(points[0] - 1, -1, -1)
    grow(points[-1] + 1, t_len, 1)
    for a, b in zip(points[:-1], points[1:]):
        grow(a + 1, b, 1)
        grow(b - 1, a, -1)
    act_seed[points] = point_target[points]
    return act_seed, bkg_seed


def _focal_bce(p: Tensor, target: Tensor, hard: Tensor | None = None) -> Tensor:
    """Elementwise φ·BCE(p, target) with φ = ((1-p)·y + p·(1-y))², y = ``hard`` (default: the target)."""
    y = target if hard is None else hard
    phi = ((1 - p) * y + p * (1 - y)) ** 2
    return phi * F.binary_cross_entropy(p, target, reduction="none")


def tsl_loss(out: ClassifierOutput, point_labels: Tensor, video_distribution: Tensor, *,
             lambdas=(2.0, 1.0, 0.5, 1.0), legacy_cpc_sign: bool = False) -> tuple[Tensor, dict[str, float]]:
    """The TSL-Net objective averaged over the videos of a batch (spec 3.5).

    ``point_labels`` (B, T, K): 0 except at labelled steps (0.1 for every class, 0.9 for the annotated one);
    ``video_distribution`` (B, K): the label-based target d (per-class point counts / all points).
    ``lambdas`` = (λ_vid, λ_frame, μ, λ_cpc): total = λ_vid·L_vid + λ_frame·[(1-μ)·L_frame + μ·(L_bkg + L_pact)]
    + λ_cpc·C, where C = -nce (the paper's sign: minimising pulls each fused step towards its own modality
    embeddings) or, with ``legacy_cpc_sign``, +nce as the original code adds it (pushes them apart; the released
    numbers come from that). A video without points contributes only the CPC term."""
    lam_vid, lam_frame, mu, lam_cpc = (float(x) for x in lambdas)
    ex = out.extras
    fused, mask = ex["cas_fused"].float(), ex["mask"]
    dist = ex["video_distribution"].float()
    parts = {"video": [], "frame": [], "pseudo_action": [], "background": []}
    total_terms = []
    for b in range(fused.shape[0]):
        length = int(mask[b].sum())
        p = fused[b, :length].clamp(1e-7, 1 - 1e-7)  # (T, K+1)
        y = point_labels[b, :length].float()
        y_plus = torch.cat([y, torch.zeros_like(y[:, :1])], dim=1)  # (T, K+1)
        w = y_plus.max(dim=1).values  # 0.9 at points
        steps = torch.nonzero(w > 0).flatten().tolist()
        if not steps:
            continue
        d = video_distribution[b].float()
        l_vid = (torch.xlogy(d, d) - d * torch.log(dist[b].clamp_min(1e-12))).sum() / d.numel()
        l_frame = (_focal_bce(p, y_plus) * w[:, None]).sum() / w.sum()
        act_seed, bkg_seed = select_pseudo_labels(p.detach(), steps, y_plus)
        seed_w = act_seed.max(dim=1).values
        if seed_w.sum() > 0:
            hard = (act_seed > 0.5).float()
            phi = ((1 - p) * hard + p * (act_seed < 0.5).float()) ** 2
            l_pact = 0.5 * (phi * F.binary_cross_entropy(p, act_seed, reduction="none") * act_seed).sum() / seed_w.sum()
        else:
            l_pact = p.new_zeros(())
        if bkg_seed.sum() > 0:
            e_bg = torch.zeros_like(p)
            e_bg[:, -1] = 1
            l_bkg = (_focal_bce(p, e_bg) * bkg_seed[:, None]).sum() / bkg_seed.sum()
        else:
            l_bkg = p.new_zeros(())
        total_terms.append(lam_vid * l_vid + lam_frame * ((1 - mu) * l_frame + mu * (l_bkg + l_pact)))
        for k, v in zip(parts, (l_vid, l_frame, l_pact, l_bkg)):
            parts[k].append(float(v.detach()))
    b_size = fused.shape[0]
    loss = torch.stack(total_terms).sum() / b_size if total_terms else fused.new_zeros(())
    logs = {f"loss_{k}": (sum(v) / len(v) if v else 0.0) for k, v in parts.items()}
    if "cpc" in ex:
        nce = ex["cpc"].float()
        loss = loss + lam_cpc * (nce if legacy_cpc_sign else -nce)
        logs["cpc_nce"] = float(nce.detach())
    logs["loss"] = float(loss.detach())
    return loss, logs


@register_model(
    "tsl_net",
    default_config=DEFAULT_CONFIG,
    input_keys=TSLNet.input_keys,
    tasks=("localize",),
    derived_args={"num_classes": NUM_CLASSES, "visual_dim": _visual_dim},
    tiny_args={"visual_dim": 16, "audio_channels": [4, 8, 8], "visual_embed": 8, "fusion_dim": 16,
               "reverse_layers": 1, "max_len": 64},
    description="TSL-Net (MM'22): I3D-RGB + log-mel audio CNN, fusion, CAS/background heads, point-supervised localisation",
)
def tsl_net(**cfg) -> TSLNet:
    """Build :class:`TSLNet` from a config (see ``DEFAULT_CONFIG``)."""
    cfg = dict(cfg)
    cfg["audio_channels"] = tuple(cfg["audio_channels"])
    return TSLNet(**cfg)


from ..engine import localization as _localize_task  # noqa: E402,F401  (registers the "localize" task)
