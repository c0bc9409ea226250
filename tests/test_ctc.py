import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.ctc import available_backends, get_backend, greedy_decode
from asr.ctc.reference import ctc_loss_reference
from asr.errors import UserError


@st.composite
def ctc_problems(draw):
    batch = draw(st.integers(1, 3))
    vocab = draw(st.integers(2, 6))
    blank = draw(st.integers(0, vocab - 1))
    labels = [k for k in range(vocab) if k != blank]
    targets = [draw(st.lists(st.sampled_from(labels), max_size=5)) for _ in range(batch)]
    lengths = [draw(st.integers(1, 9)) for _ in range(batch)]
    return vocab, blank, targets, lengths


@settings(max_examples=40, deadline=None)
@given(ctc_problems(), st.integers(0, 2**16))
def test_native_matches_float64_reference(problem, seed):
    vocab, blank, targets, lengths = problem
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(max(lengths), len(targets), vocab, generator=generator, dtype=torch.float64)
    logits.requires_grad_()
    # torch's CTC backward returns the gradient as seen through log_softmax: compare w.r.t. logits.
    log_probs = logits.log_softmax(-1)
    reference = ctc_loss_reference(log_probs, targets, lengths, blank)
    feasible = torch.isfinite(reference)
    padded = torch.zeros(len(targets), max(1, max(map(len, targets))), dtype=torch.long)
    for b, target in enumerate(targets):
        padded[b, : len(target)] = torch.tensor(target, dtype=torch.long)
    native_ctc = get_backend("native")
    args = (padded, torch.tensor(lengths), torch.tensor([len(t) for t in targets]))
    native = native_ctc(log_probs, *args, blank=blank, reduction="none")
    assert torch.equal(torch.isfinite(native), feasible)
    torch.testing.assert_close(native[feasible], reference[feasible], rtol=1e-9, atol=1e-9)

    # Gradients: infeasible utterances contribute none (zero_infinity), the others as the reference.
    loss = native_ctc(log_probs, *args, blank=blank, reduction="sum", zero_infinity=True)
    (grad_native,) = torch.autograd.grad(loss, logits, retain_graph=True)
    keep = [b for b in range(len(targets)) if feasible[b]]
    grad_reference = torch.zeros_like(logits)
    if keep:
        reference_feasible = ctc_loss_reference(
            log_probs[:, keep], [targets[b] for b in keep], [lengths[b] for b in keep], blank
        )
        (grad_reference,) = torch.autograd.grad(reference_feasible.sum(), logits)
    torch.testing.assert_close(grad_native, grad_reference, rtol=1e-7, atol=1e-9)


def test_reference_on_a_hand_computed_case():
    # Two frames, target "a" (id 1): alignments "a a", "a -", "- a" collapse to "a".
    p = torch.tensor([[0.6, 0.4], [0.3, 0.7]], dtype=torch.float64)  # (time, vocab) probabilities
    loss = ctc_loss_reference(p.log()[:, None, :], [[1]], [2])
    expected = p[0, 1] * p[1, 1] + p[0, 1] * p[1, 0] + p[0, 0] * p[1, 1]
    torch.testing.assert_close(loss, -expected.log()[None])


def test_unknown_backend_is_a_user_error():
    assert "native" in available_backends()
    with pytest.raises(UserError, match="ctc.backend='warp'"):
        get_backend("warp")


def test_greedy_decode_merges_repeats_and_drops_blanks():
    path = torch.tensor([[1, 1, 0, 1, 2, 2, 0, 0, 3]])
    log_probs = torch.nn.functional.one_hot(path, 4).float().log()
    assert greedy_decode(log_probs, torch.tensor([9])) == [[1, 1, 2, 3]]
    assert greedy_decode(log_probs, torch.tensor([4])) == [[1, 1]]
