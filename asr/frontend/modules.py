"""Frontend modules: hold the DFT kernels and mel filterbank as buffers, call ``functional``."""

from __future__ import annotations

import torch
from torch import nn

from asr.frontend import functional as F


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
        with torch.no_grad():  # the first batch sets them, later ones move them slowly
            rate = max(self.momentum, 1.0 / float(self.updates + 1))
            self.running_mean.lerp_(mean.detach(), rate)
            self.running_var.lerp_(var.detach(), rate)
            self.updates += 1
        return ((x - mean) / torch.sqrt(var + self.eps)) * mask


class LogMelFrontend(nn.Module):
    """Raw audio ``(batch, samples)`` to normalised log-mel ``(batch, frames, n_mels)``.

    ``normalization``: ``utterance`` (zero mean, unit variance per utterance and channel: needs the
    whole utterance; statistics from the frames within ``speech_range_db`` dB of the loudest, 0:
    all) or ``running`` (``RunningNorm``: fixed statistics, frame by frame). ``prior_frames``
    (utterance only): in evaluation, each utterance's statistics pooled with those of the training
    set's average utterance (running averages kept as buffers, updated in training, which
    normalises by each utterance's own) as if that many frames of it were added, so a short
    utterance is not normalised by the few frames of its own alone; 0: its own alone.
    """

    def __init__(
        self, sample_rate: int, n_fft: int, win_length: int, hop_length: int, n_mels: int,
        normalization: str = "utterance", speech_range_db: float = 0.0, prior_frames: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.hop_length, self.speech_range_db, self.prior_frames = hop_length, speech_range_db, prior_frames
        self.register_buffer("basis", F.dft_basis(n_fft, torch.hann_window(win_length)), persistent=False)
        self.register_buffer("filterbank", F.mel_filterbank(sample_rate, n_fft, n_mels), persistent=False)
        if normalization not in ("utterance", "running"):
            raise ValueError(f"normalization={normalization!r}: expected utterance or running")
        if speech_range_db < 0 or (normalization == "running" and speech_range_db):
            raise ValueError(f"speech_range_db={speech_range_db}: expected >= 0 (0 with running statistics)")
        if prior_frames < 0 or (normalization == "running" and prior_frames):
            raise ValueError(f"prior_frames={prior_frames}: expected >= 0 (0 with running statistics)")
        self.norm = RunningNorm(n_mels) if normalization == "running" else None
        if prior_frames:
            self.register_buffer("prior_mean", torch.zeros(n_mels))
            self.register_buffer("prior_variance", torch.ones(n_mels))
            self.register_buffer("prior_updates", torch.zeros((), dtype=torch.long))

    def output_lengths(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        return F.num_frames(sample_lengths, self.hop_length)

    def forward(
        self, waveform: torch.Tensor, sample_lengths: torch.Tensor, warp: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``warp``: per-utterance frequency-warp factors (vocal tract length perturbation), in training."""
        features = F.log_mel_spectrogram(waveform, self.basis, self.filterbank, self.hop_length, warp=warp)
        lengths = self.output_lengths(sample_lengths)
        if self.norm is not None:
            return self.norm(features, lengths), lengths
        prior = None
        if self.prior_frames and self.training:
            self._update_prior(features, lengths)
        elif self.prior_frames:
            prior = (self.prior_mean, self.prior_variance, self.prior_frames)
        return F.normalize_per_utterance(features, lengths, self.speech_range_db, prior=prior), lengths

    @torch.no_grad()
    def _update_prior(self, features: torch.Tensor, lengths: torch.Tensor, momentum: float = 0.01) -> None:
        """Running averages of the utterances' own statistics: the first batch sets them, later
        ones move them slowly, as batch normalisation's do."""
        mean, variance, _ = F.speech_statistics(features.detach(), lengths, self.speech_range_db)
        rate = max(momentum, 1.0 / float(self.prior_updates + 1))
        self.prior_mean.lerp_(mean.mean((0, 1)), rate)
        self.prior_variance.lerp_(variance.mean((0, 1)), rate)
        self.prior_updates += 1

    def frames(self, padded: torch.Tensor) -> torch.Tensor:
        """Normalised frames of a piece of the centred-padded sample stream (``n_fft + (k - 1) *
        hop`` samples make ``k`` frames), in evaluation with running statistics only."""
        if self.norm is None or self.norm.training:
            raise RuntimeError("frame-by-frame features need running statistics, in evaluation mode")
        features = F.log_mel_spectrogram(padded, self.basis, self.filterbank, self.hop_length, centered=False)
        return self.norm(features, None)
