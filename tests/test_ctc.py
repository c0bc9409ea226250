import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.ctc import available_backends, get_backend, greedy_decode
from asr.ctc.reference import ctc_loss_reference
from asr.errors import UserError
from tests.ctc_cases import ctc_problems, pad, random_case


@settings(max_examples=40, deadline=None)
@given(ctc_problems(max_batch=3, max_vocab=6, max_target=5, max_frames=9), st.integers(0, 2**16))
def test_native_matches_float64_reference(problem, seed):
    _, _, blank, targets, lengths = problem
    logits, reference, reference_grad, feasible = random_case(problem, seed)
    logits = logits.double().requires_grad_()
    args = (pad(targets), torch.tensor(lengths), torch.tensor([len(t) for t in targets]))
    native = get_backend("native")(logits.log_softmax(-1), *args, blank=blank, reduction="none")
    assert torch.equal(torch.isfinite(native), feasible)
    torch.testing.assert_close(native[feasible], reference[feasible], rtol=1e-9, atol=1e-9)
    # Gradients: infeasible utterances contribute none (zero_infinity), the others as the reference.
    summed = get_backend("native")(
        logits.log_softmax(-1), *args, blank=blank, reduction="sum", zero_infinity=True
    )
    (grad,) = torch.autograd.grad(summed, logits)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-7, atol=1e-9)


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
