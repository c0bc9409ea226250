"""Per-speaker feature statistics: Kaldi's per-speaker mean and variance normalisation, at each
utterance's level.

A few seconds of one voice say little about where its formants and spectral tilt sit; all of
that speaker's utterances say much more. With ``model.speaker_statistics``, recognition of a
manifest whose lines name speakers normalises each utterance by its speaker's statistics (the
average of its speaker's utterances' own, as ``asr.frontend.functional.speech_statistics`` takes
them), moved to its own level so that its gain does not matter. Training is unchanged: each
utterance by its own statistics, so the model also serves a recording whose speaker is unknown.
"""

from __future__ import annotations

from collections import defaultdict

import torch

from asr.data.dataset import SpeechDataset, collate
from asr.errors import UserError
from asr.frontend import LogMelFrontend
from asr.frontend import functional as F
from asr.models.base import CTCModel
from asr.recognizer import Recognizer


@torch.no_grad()
def speaker_statistics(
    frontend: LogMelFrontend, dataset: SpeechDataset, device: torch.device, batch_size: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each utterance of ``dataset``, its speaker's ``(mean, variance)`` ``(utterances,
    channels)`` (on the CPU): the average of the speech statistics of that speaker's utterances,
    without augmentation. An utterance with no speaker has its own."""
    own_means, own_variances = [None] * len(dataset), [None] * len(dataset)
    order = sorted(range(len(dataset)), key=dataset.durations.__getitem__)
    no_target = torch.zeros(0, dtype=torch.long)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        batch = collate([(torch.from_numpy(dataset.audio(i)), no_target) for i in indices]).to(device)
        features, lengths = frontend.log_mel(batch.waveforms, batch.sample_lengths)
        mean, variance, _ = F.speech_statistics(features, lengths, frontend.speech_range_db)
        for j, i in enumerate(indices):
            own_means[i], own_variances[i] = mean[j, 0].cpu(), variance[j, 0].cpu()
    means, variances = torch.stack(own_means), torch.stack(own_variances)
    groups = defaultdict(list)
    for i, speaker in enumerate(dataset.speakers):
        if speaker:
            groups[speaker].append(i)
    for members in groups.values():
        means[members] = means[members].mean(0)
        variances[members] = variances[members].mean(0)
    return means, variances


def for_recognizer(
    recognizer: Recognizer, dataset: SpeechDataset, use: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The speaker statistics ``recognizer.batches`` takes for ``dataset``, or None (each
    utterance by its own): ``use`` True or False, else as the model's ``speaker_statistics`` says.
    An exported artifact has no frontend to take them: True is an error there."""
    model = recognizer.model
    if use is None:
        use = isinstance(model, CTCModel) and model.dims.speaker_statistics
    if not use:
        return None
    if not isinstance(model, CTCModel):
        raise UserError("speakers=true: an exported model normalises each utterance by its own statistics")
    if model.normalization != "utterance":
        raise UserError(f"speakers=true: {model.name} normalises frame by frame, not by statistics")
    return speaker_statistics(model.frontend, dataset, recognizer.device)
