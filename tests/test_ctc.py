import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.ctc import available_backends, get_backend, greedy_decode
from asr.ctc.reference import ctc_loss_reference
from asr.errors import UserError
from asr.evaluate import tune_blank_penalty
from asr.text import CharTokenizer
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


def lowered_blank_reference(log_probs: torch.Tensor, length: int, penalty: float) -> list[int]:
    """Greedy CTC written plainly: lower the blank's score, take each frame's best, merge, drop blanks."""
    scores = log_probs[:length].clone()
    scores[:, 0] -= penalty
    return [token for token, _ in itertools.groupby(scores.argmax(-1).tolist()) if token != 0]


@pytest.mark.parametrize("penalty", [0.0, 0.5, 2.0])
def test_greedy_decode_with_a_blank_penalty_lowers_the_blank(penalty):
    log_probs = torch.randn(3, 50, 6, generator=torch.Generator().manual_seed(0)).log_softmax(-1)
    log_probs[..., 0] += 1.0  # blank often best, sometimes by less than the penalty
    lengths = torch.tensor([50, 31, 7])
    pairs = zip(log_probs, lengths.tolist(), strict=True)
    expected = [lowered_blank_reference(lp, n, penalty) for lp, n in pairs]
    assert greedy_decode(log_probs, lengths, blank_penalty=penalty) == expected
    if penalty == 2.0:
        assert sum(map(len, expected)) > sum(map(len, greedy_decode(log_probs, lengths))), "the penalty bites"


def test_blank_penalty_on_a_hand_computed_frame():
    # p(blank) 0.6, p(a) 0.4: the blank wins by log(1.5) = 0.405; a penalty above that emits "a".
    log_probs = torch.tensor([[[0.6, 0.4]]]).log()
    assert greedy_decode(log_probs, torch.tensor([1]), blank_penalty=0.40) == [[]]
    assert greedy_decode(log_probs, torch.tensor([1]), blank_penalty=0.41) == [[1]]


class Utterances:
    """A stand-in dataset: texts and durations, no audio."""

    def __init__(self, texts: list[str]) -> None:
        self.texts, self.durations = texts, [1.0] * len(texts)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int):
        return torch.zeros(1), None


def test_tune_blank_penalty_picks_the_smallest_penalty_of_the_lowest_wer():
    """Each utterance spells its text with every letter's frame losing to the blank by a margin
    (0.3 or 1.2), blank frames between: penalties up to 0.25 recognise nothing (WER 1), 0.5 to 1.0
    the two utterances of margin 0.3 (WER 1/3), 1.25 and above all three (WER 0)."""
    tokenizer = CharTokenizer()
    texts, margins = ["ab", "cab", "bad"], [0.3, 1.2, 0.3]
    frames = []
    for text, margin in zip(texts, margins, strict=True):
        rows = []
        for token in tokenizer.encode(text):
            letter, gap = torch.full((len(tokenizer),), -20.0), torch.full((len(tokenizer),), -20.0)
            letter[0], letter[token], gap[0] = 0.0, -margin, 0.0
            rows += [letter, gap]
        frames.append(torch.stack(rows).log_softmax(-1))
    log_probs = torch.nn.utils.rnn.pad_sequence(frames, batch_first=True)
    lengths = torch.tensor([len(f) for f in frames])

    class Recognizer:
        def batches(self, durations, load, speaker=None):
            yield [2, 0, 1], log_probs[[2, 0, 1]], lengths[[2, 0, 1]]

    Recognizer.tokenizer = tokenizer
    penalty, wers = tune_blank_penalty(Recognizer(), Utterances(texts))
    assert penalty == 1.25
    assert wers[0.0] == wers[0.25] == 1.0
    assert wers[0.5] == wers[1.0] == pytest.approx(1 / 3)
    assert wers[1.25] == wers[3.0] == 0.0
