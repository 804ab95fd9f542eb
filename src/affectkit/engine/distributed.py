"""PyTorch's own distributed engine, as set up by ``torchrun``: nothing here launches processes.

Under ``torchrun --nproc-per-node N`` (or across machines) the environment carries RANK,
WORLD_SIZE, LOCAL_RANK and the rendezvous address; :func:`setup` joins the process group (gloo on
CPU, nccl on GPUs). Without that environment everything runs in one process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this process joined the group in setup() and leaves it in teardown()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(pref: str, local_rank: int = 0) -> torch.device:
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(pref)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    return dev


def setup(device_pref: str = "auto") -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_pref, local)
    owns = False
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        owns = True
    return DistInfo(rank, world, local, device, owns)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_gather_objects(info: DistInfo, obj):
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(info: DistInfo, obj):
    if not info.enabled:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_true(info: DistInfo, flag: bool) -> bool:
    """True on every rank when ``flag`` is true on every rank: ranks decide together (one of them
    skipping a batch or seeing a non-finite loss must not leave the others waiting in a collective)."""
    if not info.enabled:
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=_collective_device(info))
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def flags_of_ranks(info: DistInfo, flag: bool) -> list[bool]:
    """``flag`` of every rank, in rank order (for error messages that name the rank)."""
    return [bool(x) for x in all_gather_objects(info, bool(flag))]


def average_gradients(info: DistInfo, params) -> None:
    """Average ``.grad`` over the ranks by hand (a missing gradient counts as zero), as DDP does in its
    backward; used when an accumulation window ends on a batch all ranks skipped."""
    if not info.enabled:
        return
    for p in params:
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad.div_(info.world_size)


def _collective_device(info: DistInfo) -> torch.device:
    return info.device if info.device.type == "cuda" else torch.device("cpu")


def teardown(info: DistInfo) -> None:
    """Leave the process group this process joined in :func:`setup` (a group that the caller set up
    is left alone). Left to interpreter exit, gloo's threads are destroyed while still running and
    the process can abort ("terminate called without an active exception") after a finished run."""
    if info.enabled and info.owns_group and dist.is_initialized():
        dist.destroy_process_group()
        info.owns_group = False
