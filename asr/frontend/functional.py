"""Pure feature functions: STFT power, log-mel, per-utterance normalisation, frame arithmetic."""

from __future__ import annotations

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


def log_mel_spectrogram(
    waveform: torch.Tensor, window: torch.Tensor, filterbank: torch.Tensor, hop_length: int, eps: float = 1e-6
) -> torch.Tensor:
    """``(batch, samples)`` audio to ``(batch, frames, n_mels)`` natural-log mel power."""
    n_fft = (filterbank.shape[0] - 1) * 2
    spectrum = torch.stft(
        waveform, n_fft=n_fft, hop_length=hop_length, win_length=window.shape[0], window=window,
        center=True, pad_mode="constant", return_complex=True,
    )  # fmt: skip
    power = spectrum.real.square() + spectrum.imag.square()  # (batch, freq, frames)
    return torch.log(power.transpose(1, 2) @ filterbank + eps)


def normalize_per_utterance(features: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Zero mean, unit variance per utterance and channel over its valid frames; padding set to 0.

    ``features`` is ``(batch, frames, channels)``; ``lengths`` ``(batch,)`` counts valid frames.
    """
    mask = (torch.arange(features.shape[1], device=features.device) < lengths[:, None]).unsqueeze(-1)
    count = lengths.clamp(min=1).to(features.dtype)[:, None, None]
    mean = (features * mask).sum(1, keepdim=True) / count
    variance = ((features - mean).square() * mask).sum(1, keepdim=True) / count
    return ((features - mean) / torch.sqrt(variance + eps)) * mask
