"""On-the-fly augmentation: speed perturbation and additive noise on the waveform (in the dataset),
SpecAugment masks on the log-mel features (between the frontend and the network).

Waveform augmentation draws from a generator seeded by ``(seed, epoch, utterance)``: the same
utterance in the same epoch is augmented the same way in any worker process, after any resume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr
import torch
from torch import nn

from asr.audio import load_audio
from asr.data.manifest import Utterance


@dataclass
class WaveformAugment:
    sample_rate: int
    speed_factors: list[float]
    noises: list[Utterance]
    noise_probability: float
    snr_db: tuple[float, float]
    pad_seconds: float = 0.0

    @property
    def enabled(self) -> bool:
        return self.speed_factors != [1.0] or bool(self.noises) or self.pad_seconds > 0

    def __call__(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        factor = self.speed_factors[rng.integers(len(self.speed_factors))]
        if factor != 1.0:
            audio = speed_perturb(audio, factor, self.sample_rate)
        if self.noises and rng.random() < self.noise_probability:
            noise = self.noise_segment(len(audio), rng)
            audio = add_noise(audio, noise, rng.uniform(*self.snr_db))
        if self.pad_seconds > 0:
            audio = pad_with_silence(audio, self.pad_seconds, self.sample_rate, rng)
        return audio

    def noise_segment(self, samples: int, rng: np.random.Generator) -> np.ndarray:
        """``samples`` of a random noise file from a random offset, repeated if the file is short."""
        noise = self.noises[rng.integers(len(self.noises))]
        seconds = samples / self.sample_rate
        offset = rng.uniform(0.0, max(0.0, noise.duration - seconds))
        audio = load_audio(
            noise.audio_filepath, self.sample_rate, noise.offset + offset, min(seconds, noise.duration)
        )
        return np.resize(audio, samples)


def speed_perturb(audio: np.ndarray, factor: float, sample_rate: int) -> np.ndarray:
    """Play ``factor`` times faster (pitch moves with it, as Kaldi's and sox's ``speed``): the
    samples are read as if recorded at ``sample_rate * factor`` and resampled to ``sample_rate``."""
    return soxr.resample(audio, sample_rate * factor, sample_rate).astype(np.float32)


def pad_with_silence(
    audio: np.ndarray, seconds: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Up to ``seconds`` of near-silence before and after ``audio``: a noise floor 30 to 60 dB below
    the speech, as in a pause of a longer recording."""
    before, after = (round(rng.uniform(0.0, seconds) * sample_rate) for _ in range(2))
    level = float(np.sqrt(np.mean(audio**2))) * 10 ** (-rng.uniform(30.0, 60.0) / 20)
    floor = rng.normal(0.0, level, before + after).astype(np.float32)
    return np.concatenate([floor[:before], audio, floor[before:]])


def add_noise(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``audio + noise`` with the noise scaled to ``snr_db`` below the speech's power."""
    speech_power, noise_power = float(np.mean(audio**2)), float(np.mean(noise**2))
    if noise_power == 0.0:
        return audio
    scale = np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    return (audio + scale * noise).astype(np.float32)


class SpecAugment(nn.Module):
    """Frequency and time masks (Park et al., 2019) set to 0, the per-utterance feature mean, in
    training mode only. Time masks stay within each utterance's own frames."""

    def __init__(self, freq_masks: int, freq_width: int, time_masks: int, time_width: float) -> None:
        super().__init__()
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``features``: ``(batch, frames, mels)``; ``lengths``: valid frames per utterance."""
        if not self.training or self.freq_masks + self.time_masks == 0:
            return features
        batch, frames, mels = features.shape
        device = features.device
        mask = torch.zeros(batch, frames, mels, dtype=torch.bool, device=device)
        max_width = torch.full((batch,), float(self.freq_width), device=device)
        for _ in range(self.freq_masks):
            band = _random_span(torch.full((batch,), float(mels), device=device), max_width, mels)
            mask |= band[:, None, :]
        time_limit = lengths.to(device).float()
        for _ in range(self.time_masks):
            span = _random_span(time_limit, (time_limit * self.time_width).floor(), frames)
            mask |= span[:, :, None]
        return features.masked_fill(mask, 0.0)


def _random_span(limit: torch.Tensor, max_width: torch.Tensor, size: int) -> torch.Tensor:
    """Per row, a mask of ``size`` positions holding one span of width ``0..max_width`` inside
    ``0..limit``."""
    width = (torch.rand_like(limit) * (max_width + 1)).floor().clamp(max=limit)
    start = (torch.rand_like(limit) * (limit - width + 1)).floor()
    position = torch.arange(size, device=limit.device)
    return (position >= start[:, None]) & (position < (start + width)[:, None])
