"""Pure feature functions: STFT power, log-mel, per-utterance normalisation, frame arithmetic."""

from __future__ import annotations

import math

import torch
import torchaudio


def num_frames(num_samples: torch.Tensor | int, hop_length: int) -> torch.Tensor | int:
    """Frames of a centred STFT: one per hop plus the one centred on the first sample."""
    return num_samples // hop_length + 1


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None):
    """Slaney-style mel filterbank ``(n_fft // 2 + 1, n_mels)``, librosa's default."""
    return torchaudio.functional.melscale_fbanks(
        n_freqs=n_fft // 2 + 1, f_min=f_min, f_max=f_max or sample_rate / 2, n_mels=n_mels,
        sample_rate=sample_rate, norm="slaney", mel_scale="slaney",
    )  # fmt: skip


def dft_basis(n_fft: int, window: torch.Tensor) -> torch.Tensor:
    """Windowed real-DFT kernels ``(2 * (n_fft // 2 + 1), 1, n_fft)``: cosines then sines.

    A strided conv1d with them is the STFT in plain real arithmetic, which exports to ONNX and
    TorchScript as it is (``torch.stft`` returns complex numbers, which the ONNX exporter cannot
    take). A window shorter than ``n_fft`` is centred, as ``torch.stft`` does.
    """
    pad = (n_fft - window.shape[0]) // 2
    window = torch.nn.functional.pad(window, (pad, n_fft - window.shape[0] - pad))
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    angle = 2 * math.pi * k * n / n_fft
    basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window.double()
    return basis.float().unsqueeze(1)


def log_mel_spectrogram(
    waveform: torch.Tensor,
    basis: torch.Tensor,
    filterbank: torch.Tensor,
    hop_length: int,
    eps: float = 1e-6,
    warp: torch.Tensor | None = None,
    centered: bool = True,
) -> torch.Tensor:
    """``(batch, samples)`` audio to ``(batch, frames, n_mels)`` natural-log mel power of a centred,
    zero-padded STFT (``basis`` from ``dft_basis``); ``warp``: per-utterance factors for
    ``warp_frequencies`` (training augmentation). ``centered=False``: ``waveform`` is already
    padded (a piece of the padded stream, for streaming)."""
    n_fft = basis.shape[-1]
    padded = torch.nn.functional.pad(waveform, (n_fft // 2, n_fft // 2)) if centered else waveform
    spectrum = torch.nn.functional.conv1d(padded.unsqueeze(1), basis, stride=hop_length)
    real, imaginary = spectrum.chunk(2, dim=1)  # (batch, freq, frames) each
    power = (real.square() + imaginary.square()).transpose(1, 2)
    if warp is not None:
        power = warp_frequencies(power, warp)
    return torch.log(power @ filterbank + eps)


def warp_frequencies(power: torch.Tensor, factors: torch.Tensor, knee: float = 0.8) -> torch.Tensor:
    """Vocal tract length perturbation (Jaitly and Hinton, 2013), with Kaldi's piecewise-linear
    warp: each utterance's power spectrum ``(batch, frames, bins)`` is read at frequency ``f /
    factor`` up to a knee at ``knee * min(1, factor)`` of the band, then along a line that keeps
    the Nyquist bin in place; between bins, by linear interpolation. A factor above 1 moves the
    formants up, as a shorter vocal tract does."""
    bins = power.shape[-1]
    top = float(bins - 1)
    alpha = factors.to(power.dtype)[:, None]  # (batch, 1)
    frequency = torch.arange(bins, device=power.device, dtype=power.dtype)[None, :]
    bend = knee * top * alpha.clamp(max=1.0)
    above = bend / alpha + (frequency - bend) * (top - bend / alpha) / (top - bend)
    source = torch.where(frequency <= bend, frequency / alpha, above).clamp(0.0, top)
    lower = source.floor().clamp(max=top - 1)
    weight = (source - lower)[:, None, :]
    index = lower.long()[:, None, :].expand(-1, power.shape[1], -1)
    return power.gather(-1, index) * (1 - weight) + power.gather(-1, index + 1) * weight


def speech_statistics(
    features: torch.Tensor, lengths: torch.Tensor, speech_range_db: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per utterance and channel, the mean and variance ``(batch, 1, channels)`` of the valid
    frames whose mel power is within ``speech_range_db`` dB of the utterance's loudest frame (0:
    all valid frames), and how many frames that is ``(batch, 1, 1)``."""
    valid = torch.arange(features.shape[1], device=features.device) < lengths[:, None]
    used = valid
    if speech_range_db > 0:
        energy = torch.logsumexp(features, dim=-1).masked_fill(~valid, -math.inf)  # log mel power
        peak = energy.amax(1, keepdim=True)
        used = valid & (energy >= peak - speech_range_db * math.log(10) / 10)
    used = used.unsqueeze(-1)
    count = used.sum(1, keepdim=True).clamp(min=1).to(features.dtype)
    mean = (features * used).sum(1, keepdim=True) / count
    variance = ((features - mean).square() * used).sum(1, keepdim=True) / count
    return mean, variance, count


def at_level(mean: torch.Tensor, utterance_mean: torch.Tensor) -> torch.Tensor:
    """``mean`` (per channel, or per utterance and channel) moved to the level of each utterance's
    ``utterance_mean`` ``(batch, 1, channels)``: the same mean over channels, so that statistics
    taken from other recordings keep the utterance's gain."""
    return mean - mean.mean(-1, keepdim=True) + utterance_mean.mean(-1, keepdim=True)


def pool_with_prior(
    mean: torch.Tensor, variance: torch.Tensor, count: torch.Tensor,
    prior: tuple[torch.Tensor, torch.Tensor, float],
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``speech_statistics`` pooled with ``prior``, ``(mean, variance, frames)`` per channel, as if
    ``frames`` frames of it, moved to each utterance's level (its mean over channels), were added
    to the utterance's own: a short utterance's statistics lean on the prior, a long one's on its
    own frames, and the result stays independent of the recording's gain."""
    prior_mean, prior_variance, weight = prior
    prior_mean = at_level(prior_mean, mean)
    pooled = (count * mean + weight * prior_mean) / (count + weight)
    variance = (
        count * (variance + (mean - pooled).square())
        + weight * (prior_variance + (prior_mean - pooled).square())
    ) / (count + weight)
    return pooled, variance


def standardize(
    features: torch.Tensor,
    lengths: torch.Tensor,
    mean: torch.Tensor,
    variance: torch.Tensor,
    eps: float = 1e-5,
) -> torch.Tensor:
    """``(features - mean) / sqrt(variance + eps)`` with per-utterance statistics; padding set to 0."""
    valid = torch.arange(features.shape[1], device=features.device) < lengths[:, None]
    return ((features - mean) / torch.sqrt(variance + eps)) * valid.unsqueeze(-1)


def normalize_per_utterance(
    features: torch.Tensor, lengths: torch.Tensor, speech_range_db: float = 0.0, eps: float = 1e-5,
    prior: tuple[torch.Tensor, torch.Tensor, float] | None = None,
) -> torch.Tensor:  # fmt: skip
    """Zero mean, unit variance per utterance and channel; padding set to 0.

    ``features`` is ``(batch, frames, channels)`` log-mel; ``lengths`` ``(batch,)`` counts valid
    frames. The statistics come from the valid frames whose mel power is within
    ``speech_range_db`` dB of the utterance's loudest frame (0: from all valid frames), so that
    silence before, between or after the speech does not move them: the same words give the same
    features with or without a pause around them (a long recording cut at its pauses). ``prior``:
    statistics to pool them with (``pool_with_prior``).
    """
    mean, variance, count = speech_statistics(features, lengths, speech_range_db)
    if prior is not None:
        mean, variance = pool_with_prior(mean, variance, count, prior)
    return standardize(features, lengths, mean, variance, eps)
