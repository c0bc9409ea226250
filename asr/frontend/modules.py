"""Frontend modules: hold the DFT kernels and mel filterbank as buffers, call ``functional``."""

from __future__ import annotations

import torch
from torch import nn

from asr.frontend import functional as F


@torch.no_grad()
def update_running(
    averages: list[tuple[torch.Tensor, torch.Tensor]], updates: torch.Tensor, momentum: float
) -> None:
    """Move each ``(average, value)`` buffer towards its value: the first update sets them, later
    ones move them by ``momentum``, as batch normalisation's running statistics."""
    rate = max(momentum, 1.0 / float(updates + 1))
    for average, value in averages:
        average.lerp_(value.detach(), rate)
    updates += 1


class RunningNorm(nn.Module):
    """Per-channel normalisation of ``(batch, frames, channels)`` features by fixed statistics, so
    that each frame is normalised on its own (streaming): in training, by the statistics of the
    batch's valid frames (padding left out), which also update running averages, as batch
    normalisation does; in evaluation, by those running averages."""

    def __init__(self, channels: int, momentum: float = 0.01, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)
        mask = (torch.arange(x.shape[1], device=x.device) < lengths[:, None]).unsqueeze(-1)
        count = mask.sum().clamp(min=1)
        mean = (x * mask).sum((0, 1)) / count
        var = ((x - mean).square() * mask).sum((0, 1)) / count
        update_running([(self.running_mean, mean), (self.running_var, var)], self.updates, self.momentum)
        return ((x - mean) / torch.sqrt(var + self.eps)) * mask


class LogMelFrontend(nn.Module):
    """Raw audio ``(batch, samples)`` to normalised log-mel ``(batch, frames, n_mels)``.

    ``normalization``: ``utterance`` (zero mean, unit variance per utterance and channel: needs the
    whole utterance; statistics from the frames within ``speech_range_db`` dB of the loudest, 0:
    all) or ``running`` (``RunningNorm``: fixed statistics, frame by frame). ``prior_seconds``
    (utterance only): in evaluation, each utterance's statistics pooled with those of the training
    set's average utterance (running averages kept as buffers, updated in training, which
    normalises by each utterance's own) as if that many seconds of it were added, so a short
    utterance is not normalised by the few frames of its own alone; 0: its own alone.

    ``forward``'s ``speaker`` (utterance only), ``(mean, variance)`` ``(batch, channels)``: each
    utterance's speaker's statistics (per-speaker normalisation), moved to its own level, replace
    its own (and the prior).
    """

    def __init__(
        self, sample_rate: int, n_fft: int, win_length: int, hop_length: int, n_mels: int,
        normalization: str = "utterance", speech_range_db: float = 0.0, prior_seconds: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.hop_length, self.speech_range_db = hop_length, speech_range_db
        self.prior_frames = prior_seconds * sample_rate / hop_length
        self.register_buffer("basis", F.dft_basis(n_fft, torch.hann_window(win_length)), persistent=False)
        self.register_buffer("filterbank", F.mel_filterbank(sample_rate, n_fft, n_mels), persistent=False)
        if normalization not in ("utterance", "running"):
            raise ValueError(f"normalization={normalization!r}: expected utterance or running")
        if speech_range_db < 0 or (normalization == "running" and speech_range_db):
            raise ValueError(f"speech_range_db={speech_range_db}: expected >= 0 (0 with running statistics)")
        if prior_seconds < 0 or (normalization == "running" and prior_seconds):
            raise ValueError(
                f"stats_prior_seconds={prior_seconds}: expected >= 0 (0 with running statistics)"
            )
        self.norm = RunningNorm(n_mels) if normalization == "running" else None
        if prior_seconds:
            self.register_buffer("prior_mean", torch.zeros(n_mels))
            self.register_buffer("prior_variance", torch.ones(n_mels))
            self.register_buffer("prior_updates", torch.zeros((), dtype=torch.long))

    def output_lengths(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        return F.num_frames(sample_lengths, self.hop_length)

    def forward(
        self, waveform: torch.Tensor, sample_lengths: torch.Tensor, warp: torch.Tensor | None = None,
        speaker: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """``warp``: per-utterance frequency-warp factors (vocal tract length perturbation), in
        training; ``speaker``: per-speaker statistics (above)."""
        features, lengths = self.log_mel(waveform, sample_lengths, warp)
        features = features.float()  # statistics in float32, also under bf16 / fp16 autocast
        if self.norm is not None:
            if speaker is not None:
                raise ValueError("per-speaker statistics need utterance normalisation, not running")
            return self.norm(features, lengths), lengths
        mean, variance, count = F.speech_statistics(features, lengths, self.speech_range_db)
        if self.prior_frames and self.training:  # the averages of the utterances' own statistics
            averages = [(self.prior_mean, mean.mean((0, 1))), (self.prior_variance, variance.mean((0, 1)))]
            update_running(averages, self.prior_updates, momentum=0.01)
        if speaker is not None:
            mean, variance = F.at_level(speaker[0][:, None], mean), speaker[1][:, None]
        elif self.prior_frames and not self.training:
            prior = (self.prior_mean, self.prior_variance, self.prior_frames)
            mean, variance = F.pool_with_prior(mean, variance, count, prior)
        return F.standardize(features, lengths, mean, variance), lengths

    def log_mel(
        self, waveform: torch.Tensor, sample_lengths: torch.Tensor, warp: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The log-mel features before normalisation, and their lengths."""
        features = F.log_mel_spectrogram(waveform, self.basis, self.filterbank, self.hop_length, warp=warp)
        return features, self.output_lengths(sample_lengths)

    def frames(self, padded: torch.Tensor) -> torch.Tensor:
        """Normalised frames of a piece of the centred-padded sample stream (``n_fft + (k - 1) *
        hop`` samples make ``k`` frames), in evaluation with running statistics only."""
        if self.norm is None or self.norm.training:
            raise RuntimeError("frame-by-frame features need running statistics, in evaluation mode")
        features = F.log_mel_spectrogram(padded, self.basis, self.filterbank, self.hop_length, centered=False)
        return self.norm(features, None)
