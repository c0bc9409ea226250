"""The custom CTC backend against the float64 specification (asr/ctc/reference.py) and torch."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.ctc import get_backend
from asr.ctc.custom import ctc_loss
from asr.ctc.reference import ctc_loss_reference
from tests.ctc_cases import ctc_problems, pad, random_case


@settings(max_examples=150, deadline=None)
@given(ctc_problems(), st.integers(0, 2**16), st.floats(0.5, 4.0))
def test_matches_the_float64_reference(problem, seed, sharpness):
    _, _, blank, targets, lengths = problem
    logits, reference, reference_grad, feasible = random_case(problem, seed, sharpness)

    logits = logits.requires_grad_()
    args = (pad(targets), torch.tensor(lengths), torch.tensor([len(t) for t in targets]))
    ours = ctc_loss(logits.log_softmax(-1), *args, blank=blank, reduction="none")
    assert torch.equal(torch.isfinite(ours), feasible)
    torch.testing.assert_close(ours[feasible].double(), reference[feasible], rtol=1e-5, atol=1e-5)
    summed = ctc_loss(logits.log_softmax(-1), *args, blank=blank, reduction="sum", zero_infinity=True)
    (grad,) = torch.autograd.grad(summed, logits)
    assert (grad.double() - reference_grad).abs().max() <= 1e-5


@settings(max_examples=40, deadline=None)
@given(ctc_problems(), st.integers(0, 2**16))
def test_padded_frames_and_infeasible_utterances_get_zero_gradient(problem, seed):
    frames, vocab, blank, targets, lengths = problem
    log_probs = torch.randn(frames, len(targets), vocab, generator=torch.Generator().manual_seed(seed))
    log_probs = log_probs.log_softmax(-1).requires_grad_()
    args = (pad(targets), torch.tensor(lengths), torch.tensor([len(t) for t in targets]))
    losses = ctc_loss(log_probs, *args, blank=blank, reduction="none", zero_infinity=True)
    (grad,) = torch.autograd.grad(losses.sum(), log_probs)
    for b, length in enumerate(lengths):
        assert torch.count_nonzero(grad[length:, b]) == 0
        if losses[b] == 0 and len(targets[b]) > 0:  # infeasible, zeroed
            assert torch.count_nonzero(grad[:, b]) == 0
    plain = ctc_loss(log_probs, *args, blank=blank, reduction="none")
    assert torch.equal(torch.isinf(plain), (losses == 0) & torch.isinf(plain))


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("layout", ["padded", "concatenated", "int32"])
def test_same_results_as_torch_native(reduction, layout):
    generator = torch.Generator().manual_seed(1)
    T, B, V = 60, 6, 29
    log_probs = torch.randn(T, B, V, generator=generator).log_softmax(-1).requires_grad_()
    input_lengths = torch.tensor([60, 55, 41, 60, 30, 12])
    target_lengths = torch.tensor([20, 0, 15, 25, 9, 8])
    targets = torch.randint(1, V, (B, 25), generator=generator)
    targets[0, 1] = targets[0, 0]  # a repeat
    if layout == "concatenated":
        targets = torch.cat([targets[b, :n] for b, n in enumerate(target_lengths)])
    elif layout == "int32":
        targets = targets.int()
    native = get_backend("native")(log_probs, targets, input_lengths, target_lengths, reduction=reduction)
    ours = get_backend("custom")(log_probs, targets, input_lengths, target_lengths, reduction=reduction)
    torch.testing.assert_close(ours, native, rtol=1e-5, atol=1e-4)
    (grad_native,) = torch.autograd.grad(native.sum(), log_probs)
    (grad_ours,) = torch.autograd.grad(ours.sum(), log_probs)
    torch.testing.assert_close(grad_ours, grad_native, rtol=1e-4, atol=1e-5)


def test_confident_wrong_predictions_stay_finite():
    # Every frame is sure of a token the target does not have: each target state's emission is
    # about exp(-200), which underflows float32 in probability space; the log-space path takes over.
    T, V = 40, 5
    logits = torch.full((T, 1, V), -200.0)
    logits[:, :, 4] = 0.0
    log_probs = logits.log_softmax(-1)
    targets, lengths = torch.tensor([[1, 2, 3, 1]]), (torch.tensor([T]), torch.tensor([4]))
    ours = ctc_loss(log_probs, targets, *lengths, reduction="none")
    reference = ctc_loss_reference(log_probs.double(), [[1, 2, 3, 1]], [T])
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours.double(), reference, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_types_are_computed_in_float32(dtype):
    log_probs = torch.randn(30, 2, 7, generator=torch.Generator().manual_seed(0)).log_softmax(-1)
    args = (torch.tensor([[1, 2, 3], [4, 4, 0]]), torch.tensor([30, 20]), torch.tensor([3, 2]))
    expected = ctc_loss(log_probs.to(dtype).float(), *args, reduction="none")
    converted = log_probs.to(dtype).requires_grad_()
    got = ctc_loss(converted, *args, reduction="none")
    torch.testing.assert_close(got.float(), expected, rtol=1e-6, atol=1e-5)
    got.sum().backward()
    assert converted.grad.dtype == dtype and torch.isfinite(converted.grad.float()).all()


@pytest.mark.parametrize("change, message", [
    (dict(targets=torch.tensor([[1, 7]])), "outside the vocabulary"),
    (dict(targets=torch.tensor([[1, 0]])), "the blank"),
    (dict(input_lengths=torch.tensor([11])), "exceeds the 10 frames"),
    (dict(target_lengths=torch.tensor([3])), "exceeds the padded targets' width"),
    (dict(target_lengths=torch.tensor([-1])), "must not be negative"),
    (dict(input_lengths=torch.tensor([5, 5])), "2 entries for a batch of 1"),
    (dict(targets=torch.tensor([1, 2, 3])), "add up to 2"),
    (dict(blank=5), "blank=5"),
    (dict(reduction="avg"), "reduction"),
])  # fmt: skip
def test_bad_arguments_get_clear_errors(change, message):
    arguments = dict(log_probs=torch.randn(10, 1, 5).log_softmax(-1), targets=torch.tensor([[1, 2]]),
                     input_lengths=torch.tensor([10]), target_lengths=torch.tensor([2]))  # fmt: skip
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        ctc_loss(**arguments)


def test_a_second_backward_is_refused_not_wrong():
    log_probs = torch.randn(12, 1, 5).log_softmax(-1).requires_grad_()
    loss = ctc_loss(log_probs, torch.tensor([[1, 2]]), torch.tensor([12]), torch.tensor([2]))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="only once"):
        loss.backward()
