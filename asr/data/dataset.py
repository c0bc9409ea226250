"""Speech dataset over manifest utterances, and the collate that pads a batch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from asr.audio import load_audio
from asr.augment import WaveformAugment
from asr.data.manifest import Utterance
from asr.errors import UserError
from asr.text import Tokenizer, UnknownCharacterError, normalize_text


class SpeechDataset(torch.utils.data.Dataset):
    """Yields ``(waveform, token_ids)``; transcripts are normalised and checked up front, so a
    character the tokenizer lacks stops the run before training, naming the manifest line."""

    def __init__(
        self, utterances: list[Utterance], tokenizer: Tokenizer, sample_rate: int,
        augment: WaveformAugment | None = None, seed: int = 0,
    ) -> None:  # fmt: skip
        self.utterances = utterances
        self.sample_rate = sample_rate
        self.augment = augment if augment is not None and augment.enabled else None
        self.seed = seed
        self.epoch = 0
        self.texts = [normalize_text(utt.text) for utt in utterances]
        self.targets = []
        for utt, text in zip(utterances, self.texts, strict=True):
            try:
                self.targets.append(torch.tensor(tokenizer.encode(text), dtype=torch.long))
            except UnknownCharacterError as error:
                raise UserError(f"{utt.source or utt.audio_filepath}: {error}") from None

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def durations(self) -> list[float]:
        return [utt.duration for utt in self.utterances]

    @property
    def speakers(self) -> list[str]:
        return [utt.speaker for utt in self.utterances]

    def set_epoch(self, epoch: int) -> None:
        """Augmentation draws from ``(seed, epoch, index)``: new each epoch, the same after a resume."""
        self.epoch = epoch

    def audio(self, index: int) -> np.ndarray:
        """Utterance ``index``'s audio, without augmentation."""
        utt = self.utterances[index]
        duration = utt.duration if utt.offset else None
        return load_audio(utt.audio_filepath, self.sample_rate, utt.offset, duration)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        audio = self.audio(index)
        if self.augment is not None:
            audio = self.augment(audio, np.random.default_rng([self.seed, self.epoch, index]))
        return torch.from_numpy(audio), self.targets[index]


@dataclass
class Batch:
    waveforms: torch.Tensor
    """``(batch, samples)`` zero-padded audio."""
    sample_lengths: torch.Tensor
    targets: torch.Tensor
    """``(batch, max_target)`` zero-padded token ids."""
    target_lengths: torch.Tensor

    def to(self, device: torch.device) -> Batch:
        return Batch(*(tensor.to(device, non_blocking=True) for tensor in vars(self).values()))


def collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> Batch:
    waveforms, targets = zip(*items, strict=True)
    return Batch(
        torch.nn.utils.rnn.pad_sequence(waveforms, batch_first=True),
        torch.tensor([len(w) for w in waveforms]),
        torch.nn.utils.rnn.pad_sequence(targets, batch_first=True),
        torch.tensor([len(t) for t in targets]),
    )
