"""What every model is: raw audio in, CTC log-probs out, and the frame arithmetic between them.

A model takes audio, not features: its frontend is inside, so a saved model needs no feature
code. Alignment, export, validation and streaming ask the model for ``output_lengths`` and
``frame_shift_seconds`` instead of recomputing strides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from asr.frontend import LogMelFrontend
from asr.frontend.functional import num_frames


@dataclass
class FrontendDims:
    """The log-mel frontend's settings, which every model's dims start with."""

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 80
    vocab_size: int = 29
    """Output tokens, blank included; training sets it from the tokenizer."""
    speech_range_db: float = 30.0
    """Per-utterance normalisation takes its statistics from the frames within this many dB of the
    loudest (speech, not the silence around it); 0: from all frames, as checkpoints written
    before this setting did."""
    stats_prior_seconds: float = 0.0
    """In recognition, each utterance's statistics are pooled with the training utterances'
    average (kept in the model; training normalises each utterance by its own) as if this many
    seconds of that speech were added: a short utterance leans on them, a long one on its own;
    0: its own alone."""
    speaker_statistics: bool = False
    """In recognition of a manifest that names speakers, each utterance is normalised by its
    speaker's statistics (the average of the speaker's utterances' own, moved to the utterance's
    level; ``asr.speakers``) instead of its own; training is unchanged."""


class CTCModel(nn.Module):
    """Subclasses set ``name`` (what configs and checkpoints call them) and ``Dims`` (their dims
    dataclass), and define ``classify`` and, as functions of the dims alone (so that an exported
    model's arithmetic needs no weights), ``subsampling`` and ``encoder_lengths``."""

    name: ClassVar[str]
    Dims: ClassVar[type]
    normalization: ClassVar[str] = "utterance"
    """The frontend's feature normalisation (``LogMelFrontend``): ``running`` for streaming."""

    def __init__(self, dims: FrontendDims) -> None:
        super().__init__()
        self.dims = dims
        self.blank_penalty = 0.0
        """Greedy decoding's blank penalty (``asr.ctc.decoding.FrameChoices``): not a weight; training
        tunes it on dev at the end, and checkpoints and exports keep it."""
        if dims.speaker_statistics and self.normalization != "utterance":
            raise ValueError(f"speaker_statistics: {self.name} normalises frame by frame, not by statistics")
        self.frontend = LogMelFrontend(
            dims.sample_rate, dims.n_fft, dims.win_length, dims.hop_length, dims.n_mels, self.normalization,
            dims.speech_range_db, dims.stats_prior_seconds,
        )  # fmt: skip

    @staticmethod
    def subsampling(dims) -> int:
        """Frontend frames per output frame."""
        raise NotImplementedError

    @staticmethod
    def encoder_lengths(dims, frame_lengths: torch.Tensor) -> torch.Tensor:
        """Output frames for ``frame_lengths`` frontend frames."""
        raise NotImplementedError

    @property
    def time_subsampling(self) -> int:
        return self.subsampling(self.dims)

    @property
    def frame_shift_seconds(self) -> float:
        """Seconds between two output frames."""
        return frame_shift_seconds(type(self), self.dims)

    def output_lengths(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        """Exact number of output frames for utterances of ``sample_lengths`` samples."""
        return output_lengths(type(self), self.dims, sample_lengths)

    def classify(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, frames, n_mels)`` features (the frontend's output) to ``(batch, time, vocab)``
        log-probs and ``(batch,)`` lengths."""
        raise NotImplementedError

    def forward(
        self, waveform: torch.Tensor, sample_lengths: torch.Tensor,
        speaker: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """``(batch, samples)`` audio to ``(batch, time, vocab)`` log-probs and ``(batch,)`` lengths;
        ``speaker``: each utterance's speaker's feature statistics (``LogMelFrontend``)."""
        return self.classify(*self.frontend(waveform, sample_lengths, speaker=speaker))


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Each model's last step: log-probs over the vocabulary, in float32 also under autocast (CPU
    autocast keeps ``log_softmax`` in bf16, whose 8 bits of precision CTC training suffers from;
    CUDA's moves it to float32 itself)."""
    return logits.float().log_softmax(dim=-1)


def output_lengths(cls: type[CTCModel], dims: FrontendDims, sample_lengths: torch.Tensor) -> torch.Tensor:
    """Output frames of a ``cls`` model with ``dims`` for utterances of ``sample_lengths`` samples."""
    return cls.encoder_lengths(dims, num_frames(sample_lengths, dims.hop_length))


def frame_shift_seconds(cls: type[CTCModel], dims: FrontendDims) -> float:
    return dims.hop_length * cls.subsampling(dims) / dims.sample_rate
