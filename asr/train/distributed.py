"""Data parallelism with torch's own engine: one process per device, started by ``torchrun``.

    torchrun --nproc_per_node=2 -m asr.train trainer.device=cpu     # gloo on CPUs
    torchrun --nproc_per_node=8 -m asr.train trainer.device=cuda    # NCCL on GPUs

Every rank runs the same loop; rank 0 alone writes checkpoints and logs. Under ``torchrun`` the
process group and DDP are used even for one process (so ``--nproc_per_node=1`` runs the same
NCCL path as eight); without it (no ``WORLD_SIZE`` in the environment) the helpers below are
no-ops of a world of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from asr.runtime import resolve_device


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    launched: bool = False
    """Started by ``torchrun``: a process group and DDP, whatever the size."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.launched or self.size > 1


def init(device_name: str) -> tuple[World, torch.device]:
    """Join the process group ``torchrun`` describes (if any) and pick this rank's device."""
    world = World(
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
        "WORLD_SIZE" in os.environ,
    )
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if world.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world, device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum over ranks (float64)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast(obj: object) -> object:
    """Rank 0's ``obj`` on every rank."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: object) -> list[object]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not dist.is_initialized():
        return [obj]
    objects = [None] * dist.get_world_size()
    dist.all_gather_object(objects, obj)
    return objects
