"""The ``custom`` CTC backend on the GPU: Triton kernels, one program per utterance.

Each program holds its utterance's extended target (up to ``BLOCK_S`` states, a power of two)
in registers and walks the frames in log space: the forward kernel writes ``log_alpha``
``(batch, time, states)`` and the loss; the backward kernel keeps one beta column, turns each
frame's ``alpha + beta`` into state posteriors in place, and the gradient
``exp(log_probs) - posterior @ one_hot(targets)`` is one batched matrix product. No atomics: the
result is the same on every run. Blank and label states differ only in the skip mask, which is
loaded once per utterance. Neighbouring states (``s - 1``, ``s - 2``) are read back from the row
just written, after a barrier, as Triton has no register shift.

Every alpha and beta row is stored minus its largest entry, the maxima summed in float64 per
frame: a trained model's peaky log-probs make unnormalised log-alphas grow to thousands of nats,
where float32 keeps only about 1e-4 of them and the posteriors ``exp(alpha + beta - log P)`` would
be that far off.

Tested compiled on an H100 (``scripts/gpu_check.sh``, docs/ctc.md) and, in CI, on CPU tensors
through Triton's interpreter (``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

LOG_ZERO = -1.0e30  # stands in for log(0)
NEG = tl.constexpr(LOG_ZERO)  # the kernels' copy: compiled Triton reads module globals only as constexpr
INFEASIBLE = -1.0e29  # kernels mark an infeasible utterance with a log P below this; Python makes it inf


@triton.jit
def _logsumexp3(a, b, c):
    m = tl.maximum(tl.maximum(a, b), c)
    return m + tl.log(tl.exp(a - m) + tl.exp(b - m) + tl.exp(c - m))


@triton.jit
def _shift_out_peak(row):
    """``row`` minus its largest entry (NEG stays NEG), and that entry (0 if the row is all NEG)."""
    peak = tl.max(row, axis=0)
    peak = tl.where(peak > 0.5 * NEG, peak, 0.0)
    return tl.maximum(row - peak, NEG), peak


@triton.jit
def _alpha_kernel(lp_ptr, z_ptr, skip_ptr, input_len_ptr, target_len_ptr, alpha_ptr, offset_ptr, log_p_ptr,
                  stride_t, stride_b, max_states, max_frames, BLOCK_S: tl.constexpr):  # fmt: skip
    b = tl.program_id(0)
    frames = tl.load(input_len_ptr + b).to(tl.int32)
    states = 2 * tl.load(target_len_ptr + b).to(tl.int32) + 1
    s = tl.arange(0, BLOCK_S)
    valid = s < states
    z = tl.load(z_ptr + b * max_states + s, mask=valid, other=0)
    skip = tl.load(skip_ptr + b * max_states + s, mask=valid, other=0) != 0
    lp_row = lp_ptr + b * stride_b
    row = alpha_ptr + b * max_frames * max_states
    offsets = offset_ptr + b * max_frames
    start = valid & (s < 2) & (frames > 0)
    first = tl.where(start, tl.maximum(tl.load(lp_row + z, mask=start, other=NEG), NEG), NEG)
    alpha, peak = _shift_out_peak(first)
    offset = peak.to(tl.float64)
    tl.store(row + s, alpha, mask=valid)
    tl.store(offsets, offset)
    # Each frame's emissions are loaded a frame ahead, so that their trip to memory overlaps the
    # previous frame's work instead of stalling the recursion.
    emission = tl.load(lp_row + stride_t + z, mask=valid & (frames > 1), other=NEG)
    for t in range(1, frames):
        current = tl.maximum(emission, NEG)
        emission = tl.load(lp_row + (t + 1) * stride_t + z, mask=valid & (t + 1 < frames), other=NEG)
        tl.debug_barrier()
        previous = row + (t - 1) * max_states
        stay = tl.load(previous + s, mask=valid, other=NEG)
        step = tl.load(previous + s - 1, mask=valid & (s >= 1), other=NEG)
        jump = tl.load(previous + s - 2, mask=valid & (s >= 2) & skip, other=NEG)
        alpha, peak = _shift_out_peak(tl.maximum(current + _logsumexp3(stay, step, jump), NEG))
        offset += peak.to(tl.float64)
        tl.store(row + t * max_states + s, alpha, mask=valid)
        tl.store(offsets + t, offset)
    tl.debug_barrier()
    last = row + (frames - 1) * max_states
    end = tl.load(last + s, mask=valid & (s >= states - 2) & (frames > 0), other=NEG)
    top = tl.max(end, axis=0)
    tl.store(log_p_ptr + b, offset + (top + tl.log(tl.sum(tl.exp(end - top), axis=0))).to(tl.float64))


@triton.jit
def _posterior_kernel(lp_ptr, z_ptr, skip_ptr, input_len_ptr, target_len_ptr, alpha_ptr, offset_ptr,
                      log_p_ptr, scratch_ptr, stride_t, stride_b, max_states, max_frames,
                      BLOCK_S: tl.constexpr):  # fmt: skip
    """Overwrite log_alpha with the state posteriors exp(alpha + beta - log P)."""
    b = tl.program_id(0)
    frames = tl.load(input_len_ptr + b).to(tl.int32)
    states = 2 * tl.load(target_len_ptr + b).to(tl.int32) + 1
    log_p = tl.load(log_p_ptr + b)
    s = tl.arange(0, BLOCK_S)
    valid = s < states
    z = tl.load(z_ptr + b * max_states + s, mask=valid, other=0)
    skip_next = tl.load(skip_ptr + b * max_states + s + 2, mask=s + 2 < states, other=0) != 0
    lp_row = lp_ptr + b * stride_b
    row = alpha_ptr + b * max_frames * max_states
    offsets = offset_ptr + b * max_frames
    scratch = scratch_ptr + b * max_states
    beta = tl.where(valid & (s >= states - 2), 0.0, NEG)  # log 1 at the two final states
    beta_offset = log_p * 0.0  # float64 zero
    emission = tl.zeros([BLOCK_S], dtype=tl.float32)
    for step in range(0, frames):
        t = frames - 1 - step
        current = tl.maximum(emission, NEG)  # frame t + 1's, loaded the step before
        emission = tl.load(lp_row + t * stride_t + z, mask=valid, other=NEG)  # for the next step
        if step > 0:
            tl.store(scratch + s, current + beta, mask=valid)
            tl.debug_barrier()
            stay = tl.load(scratch + s, mask=valid, other=NEG)
            step1 = tl.load(scratch + s + 1, mask=s + 1 < states, other=NEG)
            step2 = tl.load(scratch + s + 2, mask=skip_next, other=NEG)
            beta, peak = _shift_out_peak(tl.maximum(_logsumexp3(stay, step1, step2), NEG))
            beta_offset += peak.to(tl.float64)
            tl.debug_barrier()
        alpha = tl.load(row + t * max_states + s, mask=valid, other=NEG)
        shift = (tl.load(offsets + t) + beta_offset - log_p).to(tl.float32)
        # A posterior is at most 1; the cap also keeps infeasible utterances (masked later) finite.
        posterior = tl.where(valid, tl.exp(tl.minimum(alpha + beta + shift, 0.0)), 0.0)
        tl.store(row + t * max_states + s, posterior, mask=valid)


def extended_targets(targets: torch.Tensor, target_lengths: torch.Tensor, blank: int):
    """``z`` (blanks interleaved) and the skip mask, both ``(batch, 2 * max_target + 1)``."""
    batch, width = targets.shape
    z = torch.full((batch, 2 * width + 1), blank, dtype=torch.int32, device=targets.device)
    z[:, 1::2] = targets.to(torch.int32)
    skip = torch.zeros_like(z)
    skip[:, 3::2] = (z[:, 3::2] != z[:, 1:-2:2]).to(torch.int32)
    states = 2 * target_lengths[:, None] + 1
    z = torch.where(torch.arange(z.shape[1], device=z.device) < states, z, blank)
    return z.contiguous(), skip.contiguous()


def ctc_loss_gpu(
    log_probs: torch.Tensor, targets: torch.Tensor, input_lengths: torch.Tensor, target_lengths: torch.Tensor,
    blank: int, want_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """Per-utterance losses ``(batch,)`` and, if ``want_grad``, the gradient ``(time, batch, vocab)``.

    Inputs and results as for ``asr.ctc.cpu.ctc_loss_cpu``, on the device the kernels run on.
    """
    T, B, V = log_probs.shape
    device = log_probs.device
    input_lengths, target_lengths = input_lengths.to(device), target_lengths.to(device)
    z, skip = extended_targets(targets.to(device), target_lengths, blank)
    max_states = z.shape[1]
    block = triton.next_power_of_2(max_states)
    # Zeros: rows past an utterance's length and states past its target stay 0 in the posterior.
    alpha = torch.zeros(B, max(T, 1), max_states, dtype=torch.float32, device=device)
    offsets = torch.zeros(B, max(T, 1), dtype=torch.float64, device=device)
    log_p = torch.empty(B, dtype=torch.float64, device=device)
    strides = (log_probs.stride(0), log_probs.stride(1), max_states, max(T, 1))
    warps = 4 if block <= 512 else 8
    _alpha_kernel[(B,)](log_probs, z, skip, input_lengths, target_lengths, alpha, offsets, log_p, *strides,
                        BLOCK_S=block, num_warps=warps)  # fmt: skip
    # No frames: the empty target has probability 1, any other none.
    empty = input_lengths == 0
    log_p = torch.where(empty, torch.where(target_lengths == 0, 0.0, LOG_ZERO), log_p)
    feasible = log_p > INFEASIBLE
    # NaN in a log-prob the recursion reads (the blank's or a label's, within the utterance).
    frames = torch.arange(T, device=device)[:, None] < input_lengths[None, :]  # (time, batch)
    used = log_probs.gather(2, z.long()[None].expand(T, -1, -1))  # (time, batch, states)
    nan = (used.isnan().any(2) & frames).any(0)
    losses = torch.where(feasible, -log_p, torch.inf).to(torch.float32).masked_fill(nan, torch.nan)
    if not want_grad:
        return losses, None
    scratch = torch.empty(B, max_states, dtype=torch.float32, device=device)
    _posterior_kernel[(B,)](log_probs, z, skip, input_lengths, target_lengths, alpha, offsets, log_p, scratch,
                            *strides, BLOCK_S=block, num_warps=warps)  # fmt: skip
    one_hot = torch.nn.functional.one_hot(z.long(), V).to(torch.float32)  # (batch, states, vocab)
    occupancy = torch.bmm(alpha, one_hot)  # (batch, time, vocab)
    keep = (frames & feasible[None, :])[..., None]
    grad = torch.where(keep, log_probs.exp() - occupancy.transpose(0, 1)[:T], torch.zeros((), device=device))
    grad.masked_fill_((frames & nan[None, :])[..., None], torch.nan)  # a mask, not indexing: no wait
    return losses, grad
