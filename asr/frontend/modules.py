"""Frontend modules: hold the DFT kernels and mel filterbank as buffers, call ``functional``."""

from __future__ import annotations

import torch
from torch import nn

from asr.frontend import functional as F


class LogMelFrontend(nn.Module):
    """Raw audio ``(batch, samples)`` to normalised log-mel ``(batch, frames, n_mels)``."""

    def __init__(self, sample_rate: int, n_fft: int, win_length: int, hop_length: int, n_mels: int) -> None:
        super().__init__()
        self.hop_length = hop_length
        self.register_buffer("basis", F.dft_basis(n_fft, torch.hann_window(win_length)), persistent=False)
        self.register_buffer("filterbank", F.mel_filterbank(sample_rate, n_fft, n_mels), persistent=False)

    def output_lengths(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        return F.num_frames(sample_lengths, self.hop_length)

    def forward(
        self, waveform: torch.Tensor, sample_lengths: torch.Tensor, warp: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``warp``: per-utterance frequency-warp factors (vocal tract length perturbation), in training."""
        features = F.log_mel_spectrogram(waveform, self.basis, self.filterbank, self.hop_length, warp=warp)
        lengths = self.output_lengths(sample_lengths)
        return F.normalize_per_utterance(features, lengths), lengths
