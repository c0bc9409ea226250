"""The Triton GPU kernels, run on CPU tensors by Triton's interpreter (TRITON_INTERPRET=1),
against the float64 reference. On a machine with a GPU, scripts/bench_ctc.py --device cuda runs
them for real."""

import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton compiles anything in this process

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.ctc_cases import ctc_problems, pad, random_case  # noqa: E402

gpu = pytest.importorskip("asr.ctc.gpu")


@settings(max_examples=15, deadline=None)
@given(ctc_problems(max_batch=3, max_vocab=6, max_target=5, max_frames=10), st.integers(0, 2**16))
def test_triton_kernels_match_the_reference(problem, seed):
    _, _, blank, targets, lengths = problem
    logits, reference, reference_grad, feasible = random_case(problem, seed)
    target_lengths = torch.tensor([len(t) for t in targets])
    log_probs = logits.log_softmax(-1).contiguous()
    losses, grad = gpu.ctc_loss_gpu(
        log_probs, pad(targets), torch.tensor(lengths), target_lengths, blank, True
    )
    assert torch.equal(torch.isfinite(losses), feasible)
    torch.testing.assert_close(losses[feasible].double(), reference[feasible], rtol=1e-5, atol=1e-5)
    assert (grad.double() - reference_grad).abs().max() <= 1e-5
    for b, length in enumerate(lengths):
        assert torch.count_nonzero(grad[length:, b]) == 0


def test_extended_targets_and_skips():
    z, skip = gpu.extended_targets(torch.tensor([[3, 3, 5], [2, 0, 0]]), torch.tensor([3, 1]), blank=0)
    assert z.tolist() == [[0, 3, 0, 3, 0, 5, 0], [0, 2, 0, 0, 0, 0, 0]]
    assert skip[0].tolist() == [0, 0, 0, 0, 0, 1, 0]  # 3 -> 3 needs the blank between; 3 -> 5 may skip it
