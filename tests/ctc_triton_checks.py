"""The Triton GPU kernels against the float64 reference. Not collected on its own: test_ctc_triton.py
runs this file in a child pytest, compiled on a CUDA GPU when there is one, else on CPU tensors
through Triton's interpreter (TRITON_INTERPRET=1 must be set before triton is first imported, and
must not reach other tests)."""

import pytest
import torch
from hypothesis import given, settings

from tests.ctc_cases import SHAPES, make_log_probs, pad, reference_on, training_like

gpu = pytest.importorskip("asr.ctc.gpu")
CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"


def run(log_probs, targets, lengths, blank):
    target_lengths = torch.tensor([len(t) for t in targets], device=DEVICE)
    return gpu.ctc_loss_gpu(
        log_probs.to(DEVICE).contiguous(), pad(targets).to(DEVICE), torch.tensor(lengths, device=DEVICE),
        target_lengths, blank, True,
    )  # fmt: skip


def torch_error(log_probs, targets, lengths, blank, reference_grad) -> float:
    """How far torch's own float32 CTC gradient is from the reference (its NaNs, on -inf blanks, aside)."""
    x = log_probs.clone().requires_grad_()
    target_lengths = torch.tensor([len(t) for t in targets])
    losses = torch.nn.functional.ctc_loss(
        x, pad(targets), torch.tensor(lengths), target_lengths, blank=blank, reduction="sum",
        zero_infinity=True,
    )  # fmt: skip
    (grad,) = torch.autograd.grad(losses, x)
    return (grad.double() - reference_grad).abs().nan_to_num(0.0).max().item()


def assert_matches_the_reference(log_probs, targets, lengths, blank) -> torch.Tensor:
    """The kernels' losses within 1e-5 relative of the float64 reference (infinite where it is),
    gradients within the largest of 1e-5, 1.25 times torch's own float32 error, and float32's
    rounding of the sums: each step's exponents are as large as the largest log-prob ``M``, so
    their rounding is ``eps * M`` relative, over up to ``T`` frames (Hypothesis found 1.3 times
    torch's error at M = 60, T = 10; a wrong recursion is off by orders more). Returns the gradient."""
    reference, reference_grad = reference_on(log_probs, targets, lengths, blank)
    losses, grad = run(log_probs, targets, lengths, blank)
    feasible = torch.isfinite(reference)
    assert torch.equal(torch.isfinite(losses).cpu(), feasible)
    torch.testing.assert_close(losses.cpu()[feasible].double(), reference[feasible], rtol=1e-5, atol=1e-6)
    error = (grad.cpu().double() - reference_grad).abs().max().item()
    largest = log_probs[torch.isfinite(log_probs)].abs().max().item() if log_probs.isfinite().any() else 0.0
    rounding = torch.finfo(torch.float32).eps * max(lengths) * largest
    torch_float32 = torch_error(log_probs, targets, lengths, blank, reference_grad)
    assert error <= max(1e-5, 1.25 * torch_float32, rounding)
    return grad


@settings(max_examples=25, deadline=None)
@given(training_like(max_batch=3, max_vocab=6, max_target=5, max_frames=12))
def test_kernels_match_the_reference_on_training_like_log_probs(case):
    # Peaky, blank-dominant and masked log-probs at logit scales up to 100, zero lengths: losses
    # within 1e-5 relative, gradients within 1e-5 or torch's own float32 error if that is larger.
    (_, _, blank, targets, lengths), log_probs = case
    grad = assert_matches_the_reference(log_probs, targets, lengths, blank)
    for b, length in enumerate(lengths):
        assert torch.count_nonzero(grad[length:, b]) == 0


@pytest.mark.parametrize("shape", SHAPES)
def test_long_utterances(shape):
    # 256 frames (the interpreter's cost grows with frames; training sizes run on a GPU only): row
    # shifting has to hold over many frames of peaky, blank-dominant and masked log-probs alike.
    targets, lengths = [[1, 2, 2, 3, 1, 4, 4, 4], [3], []], [256, 200, 120]
    problem = (256, 5, 0, targets, lengths)
    assert_matches_the_reference(make_log_probs(problem, shape, 30.0, seed=7), targets, lengths, 0)


def test_nan_log_probs_give_nan_and_leave_the_others_alone():
    log_probs = torch.randn(6, 2, 5, generator=torch.Generator().manual_seed(0)).log_softmax(-1)
    log_probs[2, 0, 1] = float("nan")  # a label utterance 0 needs
    losses, grad = run(log_probs, [[1, 2], [1, 2]], [6, 6], 0)
    reference, _ = reference_on(log_probs[:, 1:], [[1, 2]], [6], 0)
    assert losses[0].isnan() and grad[:, 0].isnan().all() and not grad[:, 1].isnan().any()
    torch.testing.assert_close(losses[1:].cpu().double(), reference, rtol=1e-5, atol=1e-6)


def test_extended_targets_and_skips():
    z, skip = gpu.extended_targets(torch.tensor([[3, 3, 5], [2, 0, 0]]), torch.tensor([3, 1]), blank=0)
    assert z.tolist() == [[0, 3, 0, 3, 0, 5, 0], [0, 2, 0, 0, 0, 0, 0]]
    assert skip[0].tolist() == [0, 0, 0, 0, 0, 1, 0]  # 3 -> 3 needs the blank between; 3 -> 5 may skip it


@pytest.mark.skipif(not CUDA, reason="training sizes need a GPU; the interpreter takes minutes")
@pytest.mark.parametrize("shape", ["soft", "peaky"])
@pytest.mark.parametrize(
    "batch, frames, vocab, target, blank",
    [(32, 800, 29, 200, 0), (8, 1500, 29, 400, 0), (16, 400, 1000, 60, 0), (8, 300, 50, 60, 7)],
)
def test_training_sizes_on_cuda(shape, batch, frames, vocab, target, blank):
    # Against torch's CTC in float64 (on the CPU): losses within 1e-5, gradients within 1e-5 or
    # torch's own float32 error, whichever is larger; half-precision inputs as float32. (On the
    # first H100 run the kernels' gradient errors were 7-10 times below torch's where they exceeded
    # 1e-5: float32 log-space sums over hundreds of frames, for states far below a frame's peak.)
    generator = torch.Generator().manual_seed(batch + frames)
    labels = torch.tensor([k for k in range(vocab) if k != blank])
    targets = labels[torch.randint(len(labels), (batch, target), generator=generator)]
    lengths = torch.full((batch,), frames) - torch.randint(frames // 10, (batch,), generator=generator)
    target_lengths = torch.full((batch,), target) - torch.randint(target // 10, (batch,), generator=generator)
    target_lengths[0] = 0  # an empty target
    target_lengths[1], lengths[1] = target, target - 1  # an infeasible utterance: fewer frames than labels
    kept = [t[:n].tolist() for t, n in zip(targets, target_lengths, strict=True)]
    problem = (frames, vocab, blank, kept, lengths.tolist())
    for dtype in (torch.float32, torch.float16):  # half inputs are computed in float32
        log_probs = make_log_probs(problem, shape, 30.0, seed=1).to(dtype)
        wide = log_probs.double().requires_grad_()
        reference = torch.nn.functional.ctc_loss(wide, targets, lengths, target_lengths, blank=blank,
                                                 reduction="none", zero_infinity=True)  # fmt: skip
        (reference_grad,) = torch.autograd.grad(reference.sum(), wide)
        losses, grad = gpu.ctc_loss_gpu(log_probs.cuda().float(), targets.cuda(), lengths.cuda(),
                                        target_lengths.cuda(), blank, True)  # fmt: skip
        feasible = torch.isfinite(losses).cpu()
        assert feasible[0] and not feasible[1]
        torch.testing.assert_close(losses.cpu()[feasible].double(), reference.detach()[feasible], rtol=1e-5,
                                   atol=1e-6)  # fmt: skip
        x = log_probs.float().requires_grad_()
        native = torch.nn.functional.ctc_loss(x, targets, lengths, target_lengths, blank=blank,
                                              reduction="sum", zero_infinity=True)  # fmt: skip
        torch_err = (torch.autograd.grad(native, x)[0].double() - reference_grad).abs().max().item()
        assert (grad.cpu().double() - reference_grad).abs().max().item() <= max(1e-5, torch_err)


@pytest.mark.skipif(not CUDA, reason="the custom backend sends only CUDA tensors to the Triton kernels")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_custom_backend_on_cuda_tensors_uses_the_kernels(dtype):
    # What training calls: get_backend("custom") on CUDA log-probs, concatenated int32 targets,
    # reduction="mean" and autograd; against torch's CTC in float64 on the same (rounded) inputs.
    from asr.ctc import get_backend

    generator = torch.Generator().manual_seed(3)
    targets = [torch.randint(1, 29, (n,), generator=generator).tolist() for n in (40, 0, 25, 60)]
    lengths = [300, 120, 80, 290]
    log_probs = torch.randn(300, 4, 29, generator=generator).mul(5).log_softmax(-1).to(dtype)
    flat = torch.tensor([k for t in targets for k in t], dtype=torch.int32)
    target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.int32)
    x = log_probs.cuda().requires_grad_()
    loss = get_backend("custom")(x, flat.cuda(), torch.tensor(lengths).cuda(), target_lengths.cuda(),
                                 reduction="mean", zero_infinity=True)  # fmt: skip
    (grad,) = torch.autograd.grad(loss, x)
    wide = log_probs.double().requires_grad_()
    reference = torch.nn.functional.ctc_loss(wide, pad(targets), torch.tensor(lengths), target_lengths.long(),
                                             reduction="mean", zero_infinity=True)  # fmt: skip
    (reference_grad,) = torch.autograd.grad(reference, wide)
    assert grad.dtype == dtype and grad.is_cuda
    torch.testing.assert_close(loss.double().cpu(), reference.detach(), rtol=1e-5, atol=1e-6)
    tolerance = 1e-5 if dtype == torch.float32 else 4e-3  # the gradient is rounded back to the input's type
    assert (grad.double().cpu() - reference_grad).abs().max().item() <= tolerance
