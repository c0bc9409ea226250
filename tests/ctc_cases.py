"""Shared CTC test inputs: hypothesis strategies, log-probs shaped like a model's in training, and
the float64 reference's losses and gradients."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from asr.ctc.reference import ctc_loss_reference


@st.composite
def ctc_problems(
    draw, max_batch: int = 4, max_vocab: int = 8, max_target: int = 7, max_frames: int = 16,
    zero_lengths: bool = False,
):  # fmt: skip
    """(frames, vocab, blank, targets, input_lengths): any blank position, repeated labels, empty
    targets, padded frames (lengths below ``frames``) and infeasible utterances (too few frames);
    input lengths of 0 too if ``zero_lengths``."""
    batch = draw(st.integers(1, max_batch))
    vocab = draw(st.integers(2, max_vocab))
    blank = draw(st.integers(0, vocab - 1))
    labels = [k for k in range(vocab) if k != blank]
    targets = [draw(st.lists(st.sampled_from(labels), max_size=max_target)) for _ in range(batch)]
    frames = draw(st.integers(1, max_frames))
    lengths = [draw(st.integers(0 if zero_lengths else 1, frames)) for _ in range(batch)]
    return frames, vocab, blank, targets, lengths


SHAPES = ("soft", "peaky", "blank", "masked")


@st.composite
def training_like(draw, **sizes):
    """``(problem, log_probs)``: a ``ctc_problems`` draw (zero lengths included) and float32
    log-probs ``(frames, batch, vocab)`` as a model makes them in training, at a logit scale from 1
    to 100. Shapes: ``soft`` (random logits), ``peaky`` (each frame sure of one token, along a
    random alignment of the target, one frame in ten sure of a wrong one), ``blank`` (the blank
    dominates) and ``masked`` (about a third of the logits -inf, the blank's among them)."""
    problem = draw(ctc_problems(zero_lengths=True, **sizes))
    shape = draw(st.sampled_from(SHAPES))
    scale = draw(st.floats(1.0, 100.0))
    return problem, make_log_probs(problem, shape, scale, draw(st.integers(0, 2**16)))


def make_log_probs(problem, shape: str, scale: float, seed: int) -> torch.Tensor:
    frames, vocab, blank, targets, lengths = problem
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(frames, len(targets), vocab, generator=generator)
    if shape == "soft":
        logits = scale * noise
    elif shape == "peaky":
        logits = noise.clone()
        for b, target in enumerate(targets):
            path = alignment(target, frames, blank, generator)
            wrong = torch.rand(frames, generator=generator) < 0.1
            path = torch.where(wrong, torch.randint(vocab, (frames,), generator=generator), path)
            logits[torch.arange(frames), b, path] += scale
    elif shape == "blank":
        logits = noise
        logits[..., blank] += scale
    elif shape == "masked":
        logits = scale * noise
        masked = torch.rand(logits.shape, generator=generator) < 0.35
        masked &= noise < noise.max(-1, keepdim=True).values  # each frame keeps its best token
        logits[masked] = float("-inf")
    else:
        raise ValueError(shape)
    return logits.log_softmax(-1)


def alignment(target: list[int], frames: int, blank: int, generator: torch.Generator) -> torch.Tensor:
    """One token per frame that collapses to ``target``: the target with the blanks that repeats
    need, some optional blanks, every unit stretched over random durations. Random tokens if
    ``frames`` is too few."""
    units = []
    for label in target:
        if units and units[-1] == label:
            units.append(blank)
        units.append(label)
    if len(units) > frames:
        return torch.randint(max(target) + 1, (frames,), generator=generator)
    spare = frames - len(units)
    for _ in range(int(torch.randint(spare + 1, (), generator=generator))):  # optional blanks
        units.insert(int(torch.randint(len(units) + 1, (), generator=generator)), blank)
    units = units or [blank]
    durations = torch.ones(len(units), dtype=torch.long)
    extra = torch.randint(len(units), (frames - len(units),), generator=generator)
    durations += torch.bincount(extra, minlength=len(units))
    return torch.repeat_interleave(torch.tensor(units), durations)


def pad(targets: list[list[int]]) -> torch.Tensor:
    out = torch.zeros(len(targets), max(1, max(map(len, targets))), dtype=torch.long)
    for b, target in enumerate(targets):
        out[b, : len(target)] = torch.tensor(target, dtype=torch.long)
    return out


def reference_on(log_probs: torch.Tensor, targets, lengths, blank: int):
    """The reference, in float64 on exactly these log-probs: losses ``(batch,)`` and the gradient of
    the summed feasible losses in torch's convention (``exp(log_probs) - posterior``, as seen
    through log_softmax), zero on padded frames and infeasible utterances."""
    log_probs = log_probs.detach().double().requires_grad_()
    losses = ctc_loss_reference(log_probs, targets, lengths, blank)
    feasible = torch.isfinite(losses)
    total, grad = losses[feasible].sum(), None
    if total.requires_grad:  # not when every feasible utterance has no frames
        (grad,) = torch.autograd.grad(total, log_probs, allow_unused=True)
    grad = torch.zeros_like(log_probs) if grad is None else grad
    frames = torch.arange(log_probs.shape[0])[:, None] < torch.tensor(lengths)[None, :]
    keep = (frames & feasible[None, :])[..., None]
    return losses.detach(), torch.where(keep, log_probs.detach().exp() + grad, torch.zeros(()).double())


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
