"""The Triton GPU kernels, run on CPU tensors by Triton's interpreter (TRITON_INTERPRET=1),
against the float64 reference. On a machine with a GPU, scripts/bench_ctc.py --device cuda runs
them for real."""

import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton compiles anything in this process

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from asr.ctc.reference import ctc_loss_reference  # noqa: E402

gpu = pytest.importorskip("asr.ctc.gpu")


@st.composite
def problems(draw):
    batch = draw(st.integers(1, 3))
    vocab = draw(st.integers(2, 6))
    blank = draw(st.integers(0, vocab - 1))
    labels = [k for k in range(vocab) if k != blank]
    targets = [draw(st.lists(st.sampled_from(labels), max_size=5)) for _ in range(batch)]
    frames = draw(st.integers(1, 10))
    lengths = [draw(st.integers(1, frames)) for _ in range(batch)]
    return frames, vocab, blank, targets, lengths


@settings(max_examples=15, deadline=None)
@given(problems(), st.integers(0, 2**16))
def test_triton_kernels_match_the_reference(problem, seed):
    frames, vocab, blank, targets, lengths = problem
    logits = torch.randn(frames, len(targets), vocab, generator=torch.Generator().manual_seed(seed)).double()
    logits.requires_grad_()
    log_probs = logits.log_softmax(-1)
    reference = ctc_loss_reference(log_probs, targets, lengths, blank)
    feasible = torch.isfinite(reference)

    padded = torch.zeros(len(targets), max(1, max(map(len, targets))), dtype=torch.long)
    for b, target in enumerate(targets):
        padded[b, : len(target)] = torch.tensor(target)
    target_lengths = torch.tensor([len(t) for t in targets])
    losses, grad = gpu.ctc_loss_gpu(
        log_probs.detach().float().contiguous(), padded, torch.tensor(lengths), target_lengths, blank, True
    )
    assert torch.equal(torch.isfinite(losses), feasible)
    torch.testing.assert_close(losses[feasible].double(), reference[feasible], rtol=1e-5, atol=1e-5)

    keep = [b for b in range(len(targets)) if feasible[b]]
    expected = torch.zeros_like(log_probs)
    if keep:  # torch's convention: the gradient through log_softmax, i.e. w.r.t. the logits
        subset = ctc_loss_reference(
            log_probs[:, keep], [targets[b] for b in keep], [lengths[b] for b in keep], blank
        )
        (expected,) = torch.autograd.grad(subset.sum(), logits)
    assert (grad.double() - expected).abs().max() <= 1e-5
    for b, length in enumerate(lengths):
        assert torch.count_nonzero(grad[length:, b]) == 0


def test_extended_targets_and_skips():
    z, skip = gpu.extended_targets(torch.tensor([[3, 3, 5], [2, 0, 0]]), torch.tensor([3, 1]), blank=0)
    assert z.tolist() == [[0, 3, 0, 3, 0, 5, 0], [0, 2, 0, 0, 0, 0, 0]]
    assert skip[0].tolist() == [0, 0, 0, 0, 0, 1, 0]  # 3 -> 3 needs the blank between; 3 -> 5 may skip it
