"""Where the work runs."""

from __future__ import annotations

from enum import Enum

import torch

from asr.errors import UserError


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def resolve_device(name: Device | str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; asking for CUDA without one is a user error."""
    name = Device(name)
    if name is Device.auto:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name is Device.cuda and not torch.cuda.is_available():
        raise UserError("device=cuda was asked for, but torch sees no CUDA GPU")
    return torch.device(name.value)
