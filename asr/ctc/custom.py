"""``ctc_loss``: our CTC, a drop-in for ``torch.nn.functional.ctc_loss`` (``ctc.backend=custom``).

Same arguments, same results, same gradient convention (torch returns, for ``log_probs``, the
gradient as seen through ``log_softmax``: ``exp(log_probs) - posterior``). Half-precision inputs
are computed in float32. The CPU kernel is ``csrc/ctc_cpu.c``, the GPU one ``gpu.py`` (Triton);
how they work is in docs/ctc.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from asr.ctc.cpu import ctc_loss_cpu

REDUCTIONS = ("none", "sum", "mean")


def _as_lengths(lengths: torch.Tensor | Sequence[int], name: str, batch: int) -> torch.Tensor:
    lengths = torch.as_tensor(lengths).detach().to("cpu", torch.int64).reshape(-1)
    if lengths.numel() != batch:
        raise ValueError(f"ctc_loss: {name} has {lengths.numel()} entries for a batch of {batch}")
    if (lengths < 0).any():
        raise ValueError(f"ctc_loss: {name} must not be negative, got {lengths.min().item()}")
    return lengths


def _padded_targets(targets: torch.Tensor, target_lengths: torch.Tensor, batch: int) -> torch.Tensor:
    """``(batch, max_target)`` int64 on the CPU, from padded or concatenated targets."""
    targets = targets.detach().to("cpu", torch.int64)
    if targets.dim() == 2:
        if targets.shape[0] != batch:
            raise ValueError(f"ctc_loss: targets has {targets.shape[0]} rows for a batch of {batch}")
        if batch and target_lengths.max() > targets.shape[1]:
            raise ValueError(f"ctc_loss: a target length {target_lengths.max().item()} exceeds the "
                             f"padded targets' width {targets.shape[1]}")  # fmt: skip
        return targets.contiguous()
    if targets.dim() != 1:
        raise ValueError(
            f"ctc_loss: targets must be (batch, max_target) or concatenated, got {tuple(targets.shape)}"
        )
    if target_lengths.sum() != targets.numel():
        raise ValueError(f"ctc_loss: concatenated targets hold {targets.numel()} labels, "
                         f"target_lengths add up to {target_lengths.sum().item()}")  # fmt: skip
    width = int(target_lengths.max()) if batch else 0
    padded = torch.zeros(batch, max(width, 1), dtype=torch.int64)
    positions = torch.arange(padded.shape[1])
    mask = positions < target_lengths[:, None]
    padded[mask] = targets
    return padded


class _CTCLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, log_probs, targets, input_lengths, target_lengths, blank, zero_infinity):
        single = log_probs.detach().to(torch.float32).contiguous()
        if log_probs.is_cuda:
            from asr.ctc.gpu import ctc_loss_gpu as kernel
        else:
            kernel = ctc_loss_cpu
        losses, grad = kernel(single, targets, input_lengths, target_lengths, blank, log_probs.requires_grad)
        # An infeasible utterance (too few frames) as torch treats it: loss inf and a NaN gradient
        # over its frames, or with zero_infinity loss 0 and gradient 0 (the kernels return 0).
        infeasible = torch.isinf(losses)
        if zero_infinity:
            losses = losses.masked_fill(infeasible, 0.0)
        elif grad is not None and infeasible.any():
            frames = torch.arange(grad.shape[0], device=grad.device)[:, None] < input_lengths.to(grad.device)
            grad[frames & infeasible[None, :]] = float("nan")
        ctx.save_for_backward(grad)
        ctx.input_dtype, ctx.backward_done = log_probs.dtype, False
        return losses

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_losses):
        if ctx.backward_done:  # with retain_graph=True: the buffer below was already scaled
            raise RuntimeError("ctc_loss (custom backend): backward can run only once per forward")
        ctx.backward_done = True
        (grad,) = ctx.saved_tensors
        grad.mul_(grad_losses.to(grad.dtype)[None, :, None])  # in place: the buffer is ours, used once
        return grad.to(ctx.input_dtype), None, None, None, None, None


def ctc_loss(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: torch.Tensor | Sequence[int],
    target_lengths: torch.Tensor | Sequence[int],
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> torch.Tensor:
    """CTC negative log-likelihood of ``targets`` given ``log_probs`` ``(time, batch, vocab)``.

    ``targets`` is padded ``(batch, max_target)`` or concatenated ``(sum(target_lengths),)``, int32
    or int64. ``reduction="mean"`` divides each loss by its target length (at least 1), then
    averages over the batch, as torch does. An utterance with too few frames for its target
    (fewer than labels plus repeats) has an infinite loss and a NaN gradient, as in torch;
    ``zero_infinity`` makes both 0. One whose blank or label log-probs hold a NaN gets a NaN loss
    and gradient; no frames and an empty target is a loss of 0.
    """
    if log_probs.dim() != 3 or not log_probs.is_floating_point():
        raise ValueError(
            f"ctc_loss: log_probs must be a float (time, batch, vocab) tensor, got {log_probs.shape}"
        )
    if reduction not in REDUCTIONS:
        raise ValueError(f"ctc_loss: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if log_probs.device.type not in ("cpu", "cuda"):
        raise ValueError(f"ctc_loss: the custom backend runs on cpu or cuda, not {log_probs.device.type}")
    T, B, V = log_probs.shape
    if not 0 <= blank < V:
        raise ValueError(f"ctc_loss: blank={blank} is outside the vocabulary of {V}")
    input_lengths = _as_lengths(input_lengths, "input_lengths", B)
    target_lengths = _as_lengths(target_lengths, "target_lengths", B)
    if B and input_lengths.max() > T:
        raise ValueError(f"ctc_loss: an input length {input_lengths.max().item()} exceeds the {T} frames")
    padded = _padded_targets(targets, target_lengths, B)
    valid = torch.arange(padded.shape[1]) < target_lengths[:, None]
    labels = padded[valid]
    bad = (labels < 0) | (labels >= V) | (labels == blank)
    if bad.any():
        raise ValueError(
            f"ctc_loss: label {labels[bad][0].item()} is the blank or outside the vocabulary of {V}"
        )

    losses = _CTCLoss.apply(log_probs, padded, input_lengths, target_lengths, blank, zero_infinity)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return (losses / target_lengths.clamp(min=1).to(losses)).mean()
