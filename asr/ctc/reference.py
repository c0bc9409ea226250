"""The specification of CTC: a direct, readable float64 transcription of the forward recursion.

Slow (a Python loop over frames) and meant for tests only. Its gradient comes from autograd.

For a target ``y`` of length ``L`` the extended sequence ``z`` interleaves blanks:
``z = (blank, y1, blank, y2, ..., yL, blank)``, ``S = 2L + 1`` states. With ``p_t(k)`` the log-prob of
token ``k`` at frame ``t``::

    alpha_0(0) = p_0(blank),  alpha_0(1) = p_0(y1)
    alpha_t(s) = p_t(z_s) + logsumexp(alpha_{t-1}(s), alpha_{t-1}(s-1), alpha_{t-1}(s-2))

where the ``s-2`` term is allowed only if ``z_s`` is a label different from ``z_{s-2}`` (a blank
must separate repeated labels). The loss is ``-logsumexp(alpha_{T-1}(S-1), alpha_{T-1}(S-2))``:
the negative log of the summed probability of every frame alignment that collapses to ``y``.
"""

from __future__ import annotations

import torch


def _logsumexp(values: list[torch.Tensor]) -> torch.Tensor:
    """log(sum(exp(values))) whose gradient stays finite when every value is -inf (unreachable)."""
    stacked = torch.stack(values)
    peak = stacked.max().detach()
    if torch.isinf(peak):
        return peak
    return peak + torch.log(torch.exp(stacked - peak).sum())


def ctc_loss_reference(
    log_probs: torch.Tensor,
    targets: list[list[int]],
    input_lengths: list[int],
    blank: int = 0,
) -> torch.Tensor:
    """Per-utterance negative log-likelihood ``(batch,)`` in float64; ``inf`` when infeasible.

    ``log_probs`` is ``(time, batch, vocab)``; ``targets`` one list of ids per utterance.
    """
    losses = []
    for b, target in enumerate(targets):
        if input_lengths[b] == 0:  # no frames: only the empty target has an alignment, the empty one
            losses.append(torch.tensor(0.0 if not target else float("inf"), dtype=torch.float64))
            continue
        lp = log_probs[: input_lengths[b], b].double()
        extended = [blank]
        for label in target:
            extended += [label, blank]
        states = len(extended)
        neg_inf = torch.tensor(float("-inf"), dtype=torch.float64)
        alpha = [neg_inf] * states
        alpha[0] = lp[0, blank]
        if states > 1:
            alpha[1] = lp[0, extended[1]]
        for t in range(1, lp.shape[0]):
            previous = alpha
            alpha = []
            for s in range(states):
                paths = [previous[s]]
                if s >= 1:
                    paths.append(previous[s - 1])
                if s >= 2 and extended[s] != blank and extended[s] != extended[s - 2]:
                    paths.append(previous[s - 2])
                alpha.append(lp[t, extended[s]] + _logsumexp(paths))
        losses.append(-_logsumexp(alpha[-2:]))
    return torch.stack(losses)
