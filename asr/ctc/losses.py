"""CTC loss backends, chosen by name (``ctc.backend=native``).

Every backend has the signature of ``torch.nn.functional.ctc_loss``: ``log_probs`` is
``(time, batch, vocab)``, ``targets`` padded ``(batch, max_target)`` or concatenated.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from asr.errors import UserError

CTCLoss = Callable[..., torch.Tensor]
_BACKENDS: dict[str, CTCLoss] = {}


def register_backend(name: str) -> Callable[[CTCLoss], CTCLoss]:
    def register(loss: CTCLoss) -> CTCLoss:
        _BACKENDS[name] = loss
        return loss

    return register


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def get_backend(name: str) -> CTCLoss:
    if name not in _BACKENDS:
        raise UserError(f"ctc.backend={name!r} is unknown; choose one of {', '.join(available_backends())}")
    return _BACKENDS[name]


@register_backend("native")
def native_ctc_loss(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> torch.Tensor:
    """torch's own CTC, always in float32 or wider (half precision loses the log-space sums)."""
    if log_probs.dtype in (torch.float16, torch.bfloat16):
        log_probs = log_probs.float()
    return torch.nn.functional.ctc_loss(
        log_probs, targets, input_lengths, target_lengths, blank=blank, reduction=reduction,
        zero_infinity=zero_infinity,
    )  # fmt: skip


@register_backend("custom")
def custom_ctc_loss(*args, **kwargs) -> torch.Tensor:
    """Our CPU kernel (``asr.ctc.custom``), built on first use."""
    from asr.ctc.custom import ctc_loss

    return ctc_loss(*args, **kwargs)
