"""The custom CTC backend against the float64 specification (asr/ctc/reference.py) and torch."""

import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.ctc import cpu, get_backend
from asr.ctc.custom import ctc_loss
from asr.ctc.reference import ctc_loss_reference
from tests.ctc_cases import ctc_problems, make_log_probs, pad, random_case, reference_on, training_like


def lengths_of(targets, lengths):
    return pad(targets), torch.tensor(lengths), torch.tensor([len(t) for t in targets])


@settings(max_examples=200, deadline=None)
@given(training_like())
def test_exact_on_log_probs_shaped_like_training(case):
    # Peaky, blank-dominant and masked log-probs at logit scales up to 100 (where the probability-
    # space kernel this replaced was up to 22% off, with non-finite gradients), against the float64
    # reference on the same float32 values: losses within 1e-5 relative (1e-6 nats absolute, for
    # the losses of ~0 a sure, right frame makes), gradients within 1e-5 or within torch's own
    # float32 error on the same inputs where that is larger (a 6-token vocabulary at scale ~100:
    # ours 1.3e-5 off, torch's 5e-5, both through exp(log-prob) - posterior cancelling).
    (_, _, blank, targets, lengths), log_probs = case
    reference, reference_grad = reference_on(log_probs, targets, lengths, blank)
    args = lengths_of(targets, lengths)
    ours = ctc_loss(log_probs, *args, blank=blank, reduction="none")
    feasible = torch.isfinite(reference)
    assert torch.equal(torch.isfinite(ours), feasible)
    torch.testing.assert_close(ours[feasible].double(), reference[feasible], rtol=1e-5, atol=1e-6)
    log_probs = log_probs.requires_grad_()
    summed = ctc_loss(log_probs, *args, blank=blank, reduction="sum", zero_infinity=True)
    (grad,) = torch.autograd.grad(summed, log_probs)
    torchs = torch.nn.functional.ctc_loss(log_probs, *args, blank=blank, reduction="sum", zero_infinity=True)
    (torch_grad,) = torch.autograd.grad(torchs, log_probs)
    allowed = max(1e-5, (torch_grad.double() - reference_grad).abs().max().item())
    assert (grad.double() - reference_grad).abs().max() <= allowed


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


def test_exact_on_a_trained_models_log_probs():
    # Six test utterances of the built-in corpus through a trained small model (written by
    # scripts/make_ctc_fixture.py from `make demo`'s best.pt): peaky, as training makes them.
    fixture = torch.load(Path(__file__).with_name("fixtures") / "trained_log_probs.pt", weights_only=True)
    log_probs, lengths = fixture["log_probs"], fixture["input_lengths"]
    targets = [row[:n].tolist() for row, n in zip(fixture["targets"], fixture["target_lengths"], strict=True)]
    blank = int(fixture["blank"])
    reference, reference_grad = reference_on(log_probs, targets, lengths.tolist(), blank)
    log_probs = log_probs.clone().requires_grad_()
    ours = ctc_loss(
        log_probs, fixture["targets"], lengths, fixture["target_lengths"], blank=blank, reduction="none"
    )
    (grad,) = torch.autograd.grad(ours.sum(), log_probs)
    torch.testing.assert_close(ours.double(), reference, rtol=1e-5, atol=1e-6)
    assert (grad.double() - reference_grad).abs().max() <= 1e-5


@pytest.mark.parametrize("shape", ["soft", "peaky"])
def test_exact_on_long_inputs(shape):
    # 1,600 frames, 300 labels: float32 in log space must not drift over long utterances. The
    # reference is torch's CTC in float64 on the same values (the Python one is too slow here).
    # Losses within 1e-5; gradients within 1e-5 or a tenth of torch's own float32 error, whichever
    # is larger (over so many frames float32 cannot give 1e-5: torch's is 2e-3 to 5e-2 here,
    # ours 2e-5 to 7e-5).
    generator = torch.Generator().manual_seed(7)
    T, B, V, L = 1600, 3, 29, 300
    targets = torch.randint(1, V, (B, L), generator=generator)
    lengths = (torch.tensor([T, T - 100, T - 700]), torch.tensor([L, L - 20, L - 50]))
    kept = [t[:n].tolist() for t, n in zip(targets, lengths[1], strict=True)]
    problem = (T, V, 0, kept, lengths[0].tolist())
    log_probs = make_log_probs(problem, shape, 30.0, seed=3)
    results = {}
    runs = {"reference": ("native", torch.float64), "native": ("native", torch.float32),
            "custom": ("custom", torch.float32)}  # fmt: skip
    for name, (backend, dtype) in runs.items():
        x = log_probs.to(dtype).requires_grad_()
        loss = get_backend(backend)(x, targets, *lengths, reduction="none")
        results[name] = (loss.detach().double(), torch.autograd.grad(loss.sum(), x)[0].double())
    (reference, reference_grad), (ours, grad) = results["reference"], results["custom"]
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    torch_error = (results["native"][1] - reference_grad).abs().max()
    assert (grad - reference_grad).abs().max() <= max(1e-5, torch_error / 10)


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_infeasible_empty_and_nan_utterances_as_torch(zero_infinity):
    # Utterances: infeasible (3 labels in 2 frames), no frames and no labels, no frames but a label,
    # a NaN log-prob of a label it needs, a normal one. Losses and gradients equal torch's: inf and
    # a NaN gradient over its frames for the infeasible one (zero_infinity: both 0), 0 for the
    # empty one, NaN for the NaN one.
    log_probs = torch.randn(5, 5, 6, generator=torch.Generator().manual_seed(0)).log_softmax(-1)
    log_probs[1, 3, 2] = float("nan")
    targets = torch.tensor([[1, 2, 3], [0, 0, 0], [4, 0, 0], [1, 2, 0], [5, 5, 0]])
    lengths = (torch.tensor([2, 0, 0, 5, 5]), torch.tensor([3, 0, 1, 2, 2]))
    results = {}
    for backend in ("native", "custom"):
        x = log_probs.clone().requires_grad_()
        losses = get_backend(backend)(x, targets, *lengths, reduction="none", zero_infinity=zero_infinity)
        (grad,) = torch.autograd.grad(losses.sum(), x)
        results[backend] = losses.detach(), grad
    (native_losses, native_grad), (losses, grad) = results["native"], results["custom"]
    assert torch.equal(losses.isnan(), native_losses.isnan()) and losses.isnan().tolist()[3]
    torch.testing.assert_close(losses[:3], native_losses[:3])
    torch.testing.assert_close(losses[4], native_losses[4], rtol=1e-5, atol=1e-5)
    assert torch.equal(grad.isnan(), native_grad.isnan()) and grad[:, 0].isnan().any() != zero_infinity
    finite = ~native_grad.isnan()
    torch.testing.assert_close(grad[finite], native_grad[finite], rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def filled_builds():
    """The kernel built to fill its scratch memory (malloc's, whose contents vary from call to call)
    with 1e30 and with NaN before use."""
    return [cpu._library((f"-DSCRATCH_FILL={fill}",)) for fill in ("1e30f", "NAN")]


def test_an_empty_target_is_the_blank_path_whatever_the_scratch_memory_holds(filled_builds, monkeypatch):
    # Hand-computable: the only path of an empty target is all blanks. (The first frame used to
    # read one float of scratch memory before writing it: a large leftover made the loss infinite.)
    log_probs = torch.randn(3, 1, 4, generator=torch.Generator().manual_seed(0)).log_softmax(-1)
    for build in filled_builds:
        monkeypatch.setattr(cpu, "_library", lambda build=build: build)
        loss = ctc_loss(log_probs, torch.zeros(1, 0, dtype=torch.long), [3], [0], reduction="none")
        torch.testing.assert_close(loss, -log_probs[:, 0, 0].sum().reshape(1))


@settings(max_examples=60, deadline=None)
@given(case=training_like())
def test_results_do_not_depend_on_what_scratch_memory_held(filled_builds, case):
    # Bit for bit the same losses and gradients from the normal build and the filled ones: the
    # kernel reads no scratch memory before writing it.
    (_, _, blank, targets, lengths), log_probs = case
    args = (pad(targets), torch.tensor(lengths), torch.tensor([len(t) for t in targets]), blank, True)
    results = []
    for build in (cpu._library(), *filled_builds):
        with mock.patch.object(cpu, "_library", lambda build=build: build):
            results.append(cpu.ctc_loss_cpu(log_probs.contiguous(), *args))
    for losses, grad in results[1:]:
        torch.testing.assert_close(losses, results[0][0], rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(grad, results[0][1], rtol=0, atol=0, equal_nan=True)


def test_loading_the_kernel_leaves_the_float_environment_alone():
    # gcc links -ffast-math shared libraries with crtfastmath.o, which turns on flush-to-zero for
    # the whole process when the library loads: torch's results would change with the backend.
    script = (
        "import torch; from asr.ctc.custom import ctc_loss; "
        "ctc_loss(torch.randn(4, 1, 3).log_softmax(-1), torch.tensor([[1]]), [4], [1]); "
        "print((torch.tensor(1e-40) * 1.0).item())"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert float(result.stdout) > 0.0  # a subnormal float32 survives


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
