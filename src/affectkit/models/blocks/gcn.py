"""Skeleton graph convolution blocks (2s-AGCN style), shared by the skeleton models of the kit.

- :func:`spatial_graph`: ST-GCN's "spatial" partition of a bone list: ``A`` (3, V, V) = identity,
  inward and outward adjacencies, each column-normalised by its in-degree (``A D^-1``).
- :class:`AdaptiveGraphConv` (``unit_gcn``): per subset k, a data-dependent graph
  ``S_k = softmax_{dim -2}(theta_k(x)^T phi_k(x) / (inter * T))`` plus the fixed ``A_k`` plus a
  learnt ``PA_k`` (initialised to the constant 1e-6), then a 1x1 conv; summed, BatchNorm (gamma
  initialised to 1e-6), a down-projection residual, ReLU.
- :class:`TemporalConv` (``unit_tcn``): a (9, 1) convolution with stride over time + BatchNorm.
- :class:`AGCNBlock` (``TCN_GCN_unit``): ``ReLU(tcn(gcn(x)) + residual(x))``.
- :class:`AGCNStream`: input BatchNorm over (V * C) per frame, then a stack of blocks
  (2s-AGCN's 10: widths ``b, b, b, b, 2b, 2b, 2b, 4b, 4b, 4b`` with stride 2 at the 5th and 8th).
- :class:`PMFusion`: BPM-GCN's posture/movement interaction after a stage, in the released code's
  form (``mode="code"``: node attention shapes a temporal attention; sequential update) or the
  paper's (``mode="paper"``: temporal x node attention, both streams updated from the old features).

All tensors are ``(N, C, T, V)``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn


def spatial_graph(num_nodes: int, edges: list[tuple[int, int]]) -> np.ndarray:
    """``(3, V, V)`` float32: identity, normalised inward (child -> parent) and outward adjacency.
    ``edges`` are (child, parent) pairs; ``A[k][i, j]`` weights node j's contribution to node i after
    the ``x @ A`` product used by :class:`AdaptiveGraphConv` (column normalisation)."""
    def normalize(a):
        deg = a.sum(0)
        inv = np.zeros_like(deg)
        inv[deg > 0] = 1.0 / deg[deg > 0]
        return a @ np.diag(inv)

    for i, j in edges:
        if not (0 <= i < num_nodes and 0 <= j < num_nodes) or i == j:
            raise ValueError(f"edge {(i, j)} is not between two distinct nodes of 0..{num_nodes - 1}")
    inward = np.zeros((num_nodes, num_nodes), dtype=np.float64)
    for i, j in edges:
        inward[j, i] = 1.0
    outward = inward.T.copy()
    return np.stack([np.eye(num_nodes), normalize(inward), normalize(outward)]).astype(np.float32)


def _conv_init(conv: nn.Conv2d) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _bn(channels: int, gamma: float = 1.0) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels)
    nn.init.constant_(bn.weight, gamma)
    nn.init.zeros_(bn.bias)
    return bn


class TemporalConv(nn.Module):
    """``unit_tcn``: Conv2d (k, 1) over time, padding k // 2, stride (s, 1), then BatchNorm."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 9, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, (kernel, 1), padding=(kernel // 2, 0), stride=(stride, 1))
        self.bn = _bn(c_out)
        _conv_init(self.conv)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class AdaptiveGraphConv(nn.Module):
    """``unit_gcn`` of 2s-AGCN (see the module docstring); ``A`` (K, V, V) is a fixed buffer."""

    def __init__(self, c_in: int, c_out: int, A: np.ndarray, coff_embedding: int = 4, adaptive: bool = True):
        super().__init__()
        k, v, _ = A.shape
        self.inter = max(1, c_out // coff_embedding)
        self.subsets, self.adaptive = k, adaptive
        self.register_buffer("A", torch.tensor(A, dtype=torch.float32), persistent=False)  # fixed: rebuilt from the graph
        self.PA = nn.Parameter(torch.full((k, v, v), 1e-6))
        self.conv_a = nn.ModuleList(nn.Conv2d(c_in, self.inter, 1) for _ in range(k))
        self.conv_b = nn.ModuleList(nn.Conv2d(c_in, self.inter, 1) for _ in range(k))
        self.conv_d = nn.ModuleList(nn.Conv2d(c_in, c_out, 1) for _ in range(k))
        for conv in list(self.conv_a) + list(self.conv_b):
            _conv_init(conv)
        for conv in self.conv_d:  # the branch init of the original
            nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / (c_out * c_in * 1 * k)))
            nn.init.zeros_(conv.bias)
        if c_in != c_out:
            self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1), _bn(c_out))
            _conv_init(self.down[0])
        else:
            self.down = nn.Identity()
        self.bn = _bn(c_out, gamma=1e-6)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        n, c, t, v = x.shape
        graph = self.A + self.PA
        flat = x.reshape(n, c * t, v)
        y = None
        for i in range(self.subsets):
            adj = graph[i]
            if self.adaptive:
                a1 = self.conv_a[i](x).permute(0, 3, 1, 2).reshape(n, v, self.inter * t)
                a2 = self.conv_b[i](x).reshape(n, self.inter * t, v)
                adj = torch.softmax(torch.matmul(a1, a2) / a1.shape[-1], dim=-2) + adj
            z = self.conv_d[i](torch.matmul(flat, adj).reshape(n, c, t, v))
            y = z if y is None else y + z
        return self.relu(self.bn(y) + self.down(x))


class AGCNBlock(nn.Module):
    """``TCN_GCN_unit``: ReLU(tcn(gcn(x)) + residual(x)); residual none / identity / 1x1 conv+BN."""

    def __init__(self, c_in: int, c_out: int, A: np.ndarray, stride: int = 1, residual: bool = True,
                 adaptive: bool = True):
        super().__init__()
        self.gcn = AdaptiveGraphConv(c_in, c_out, A, adaptive=adaptive)
        self.tcn = TemporalConv(c_out, c_out, stride=stride)
        self.relu = nn.ReLU(inplace=True)
        if not residual:
            self.residual = None
        elif c_in == c_out and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = TemporalConv(c_in, c_out, kernel=1, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        y = self.tcn(self.gcn(x))
        if self.residual is not None:
            y = y + self.residual(x)
        return self.relu(y)


def stream_widths(base: int = 64) -> list[tuple[int, int, int]]:
    """(c_out, stride, residual) of 2s-AGCN's 10 blocks at base width ``base``."""
    return [(base, 1, 0), (base, 1, 1), (base, 1, 1), (base, 1, 1), (2 * base, 2, 1), (2 * base, 1, 1),
            (2 * base, 1, 1), (4 * base, 2, 1), (4 * base, 1, 1), (4 * base, 1, 1)]


class AGCNStream(nn.Module):
    """Input BatchNorm1d over (V * C) per frame, then the 10 blocks of :func:`stream_widths`;
    ``forward_blocks(x, i, j)`` runs blocks i..j-1 (fusion hooks in between)."""

    def __init__(self, in_channels: int, A: np.ndarray, base: int = 64, adaptive: bool = True):
        super().__init__()
        v = A.shape[-1]
        self.data_bn = nn.BatchNorm1d(in_channels * v)
        nn.init.ones_(self.data_bn.weight)
        nn.init.zeros_(self.data_bn.bias)
        blocks, c = [], in_channels
        for c_out, stride, res in stream_widths(base):
            blocks.append(AGCNBlock(c, c_out, A, stride=stride, residual=bool(res), adaptive=adaptive))
            c = c_out
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = c

    def normalize(self, x: Tensor) -> Tensor:
        n, c, t, v = x.shape
        x = x.permute(0, 3, 1, 2).reshape(n, v * c, t)  # (N, V*C, T): the original's M*V*C order, M = 1
        return self.data_bn(x).reshape(n, v, c, t).permute(0, 2, 3, 1).contiguous()

    def forward_blocks(self, x: Tensor, start: int, stop: int) -> Tensor:
        for block in self.blocks[start:stop]:
            x = block(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_blocks(self.normalize(x), 0, len(self.blocks))


class _SqueezeGate(nn.Module):
    """sigmoid(W2 ReLU(W1 p)) over a pooled vector p of size ``n`` (no bias, no reduction)."""

    def __init__(self, n: int):
        super().__init__()
        self.fc1 = nn.Linear(n, n, bias=False)
        self.fc2 = nn.Linear(n, n, bias=False)

    def forward(self, p: Tensor) -> Tensor:
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(p))))


class PMFusion(nn.Module):
    """Posture/movement interaction of two ``(N, C, T, V)`` features with ``T`` frames, ``V`` joints.

    ``mode="code"`` (the released code; the default of BPM-GCN): per stream s, a node attention
    ``natt_s`` (pool over C, T -> V weights) reweights x_s, whose pool over C, V gives the temporal
    attention ``tatt_s`` (T weights); ``x_p <- x_p + x_m * tatt_m`` then ``x_m <- x_m + x_p * tatt_p``
    with ``tatt_p`` of the already updated ``x_p``.
    ``mode="paper"`` (Eq. of the paper): ``x_p <- x_p + x_m * Tatt(x_m) * Natt(x_m)`` and
    ``x_m <- x_m + x_p * Tatt(x_p) * Natt(x_p)``, both from the features before the update.
    Each stream has its own attention weights; they are sized by T and V (tied to the input length)."""

    def __init__(self, frames: int, joints: int, mode: str = "code"):
        super().__init__()
        if mode not in ("code", "paper"):
            raise ValueError(f"fusion mode {mode!r}: expected code or paper")
        self.mode = mode
        self.node = nn.ModuleList([_SqueezeGate(joints), _SqueezeGate(joints)])  # [posture, movement]
        self.time = nn.ModuleList([_SqueezeGate(frames), _SqueezeGate(frames)])

    def _natt(self, x: Tensor, s: int) -> Tensor:
        return self.node[s](x.mean(dim=(1, 2)))[:, None, None, :]  # (N, 1, 1, V)

    def _tatt(self, x: Tensor, s: int) -> Tensor:
        return self.time[s](x.mean(dim=(1, 3)))[:, None, :, None]  # (N, 1, T, 1)

    def forward(self, xp: Tensor, xm: Tensor) -> tuple[Tensor, Tensor]:
        xp, xm, _ = self.forward_with_attention(xp, xm)
        return xp, xm

    def forward_with_attention(self, xp: Tensor, xm: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """``(x_p, x_m, (tatt_p, tatt_m))``: the updated features and the two per-frame attentions
        ``(N, T)`` (``tatt_m`` gates the movement features added to the posture stream, ``tatt_p`` the
        posture features added to the movement stream)."""
        if self.mode == "code":
            tm = self._tatt(xm * self._natt(xm, 1), 1)
            xp = xp + xm * tm
            tp = self._tatt(xp * self._natt(xp, 0), 0)
            xm = xm + xp * tp
            return xp, xm, (tp[:, 0, :, 0], tm[:, 0, :, 0])
        tm, tp = self._tatt(xm, 1), self._tatt(xp, 0)
        new_p = xp + xm * tm * self._natt(xm, 1)
        new_m = xm + xp * tp * self._natt(xp, 0)
        return new_p, new_m, (tp[:, 0, :, 0], tm[:, 0, :, 0])
