"""CTC decoding."""

from __future__ import annotations

import torch


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> list[list[int]]:
    """Best token per frame, repeats merged, blanks dropped.

    ``log_probs``: ``(batch, time, vocab)``; ``lengths``: ``(batch,)`` valid frames.
    """
    best = log_probs.argmax(dim=-1).cpu()
    hypotheses = []
    for path, length in zip(best, lengths.tolist(), strict=True):
        path = torch.unique_consecutive(path[:length])
        hypotheses.append(path[path != blank].tolist())
    return hypotheses
