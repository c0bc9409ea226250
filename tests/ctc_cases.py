"""Shared CTC test inputs: a hypothesis strategy and the float64 reference's losses and gradients."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from asr.ctc.reference import ctc_loss_reference


@st.composite
def ctc_problems(draw, max_batch: int = 4, max_vocab: int = 8, max_target: int = 7, max_frames: int = 16):
    """(frames, vocab, blank, targets, input_lengths): any blank position, repeated labels, empty
    targets, padded frames (lengths below ``frames``) and infeasible utterances (too few frames)."""
    batch = draw(st.integers(1, max_batch))
    vocab = draw(st.integers(2, max_vocab))
    blank = draw(st.integers(0, vocab - 1))
    labels = [k for k in range(vocab) if k != blank]
    targets = [draw(st.lists(st.sampled_from(labels), max_size=max_target)) for _ in range(batch)]
    frames = draw(st.integers(1, max_frames))
    lengths = [draw(st.integers(1, frames)) for _ in range(batch)]
    return frames, vocab, blank, targets, lengths


def pad(targets: list[list[int]]) -> torch.Tensor:
    out = torch.zeros(len(targets), max(1, max(map(len, targets))), dtype=torch.long)
    for b, target in enumerate(targets):
        out[b, : len(target)] = torch.tensor(target, dtype=torch.long)
    return out


def reference_losses_and_grad(logits: torch.Tensor, targets, lengths, blank: int):
    """Reference losses ``(batch,)`` and the gradient of the summed feasible losses with respect to
    ``logits`` (through log_softmax: torch's convention); infeasible utterances contribute nothing."""
    logits = logits.detach().double().requires_grad_()
    log_probs = logits.log_softmax(-1)
    with torch.no_grad():
        losses = ctc_loss_reference(log_probs, targets, lengths, blank)
    keep = [b for b in range(len(targets)) if torch.isfinite(losses[b])]
    if not keep:
        return losses, torch.zeros_like(logits)
    subset = ctc_loss_reference(
        log_probs[:, keep], [targets[b] for b in keep], [lengths[b] for b in keep], blank
    )
    (grad,) = torch.autograd.grad(subset.sum(), logits)
    return losses, grad


def random_case(problem, seed: int, scale: float = 1.0):
    """Random logits ``(frames, batch, vocab)`` for a ``ctc_problems`` draw, the reference losses and
    gradient, and which utterances are feasible."""
    frames, vocab, blank, targets, lengths = problem
    logits = scale * torch.randn(frames, len(targets), vocab, generator=torch.Generator().manual_seed(seed))
    reference, reference_grad = reference_losses_and_grad(logits, targets, lengths, blank)
    return logits, reference, reference_grad, torch.isfinite(reference)
