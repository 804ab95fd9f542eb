"""The fast CPU inference path: channels-last 3D convolutions (run under bf16 autocast by the caller)."""
from __future__ import annotations

import torch


def prepare_fast(model: torch.nn.Module) -> torch.nn.Module:
    """Convert the 5-D (3D conv) weights to ``channels_last_3d``; other weights stay as they are."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv3d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last_3d)
    return model.eval()
