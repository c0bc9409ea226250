"""Audio I/O: the one place that reads and writes sound files (soundfile + soxr)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile
import soxr

from asr.errors import UserError
from asr.fileio import atomic_path


class AudioError(UserError):
    """A missing, empty, corrupt or otherwise unusable audio file; ``kind`` names the problem
    in one word (for counts), ``problem`` describes it."""

    def __init__(self, path: Path, problem: str, kind: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.problem, self.kind = problem, kind


def load_audio(
    path: str | os.PathLike,
    sample_rate: int,
    offset: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """Read ``path`` as mono float32 at ``sample_rate``.

    Any format soundfile reads (wav, flac, ogg, ...), int or float PCM, any channel count (mixed
    to mono by averaging) and any sample rate (resampled with soxr). ``offset`` and ``duration``
    are in seconds. Returns shape ``(samples,)``.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such audio file", "missing")
    try:
        with soundfile.SoundFile(path) as sound:
            source_rate = sound.samplerate
            start = round(offset * source_rate)
            frames = -1 if duration is None else round(duration * source_rate)
            if start:
                sound.seek(start)
            samples = sound.read(frames, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
        raise AudioError(path, f"cannot read audio ({error})", "unreadable") from None
    if samples.shape[0] == 0:
        raise AudioError(path, "audio is empty" + (f" at offset {offset}s" if offset else ""), "empty")
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if source_rate != sample_rate:
        mono = soxr.resample(mono, source_rate, sample_rate)
    if not np.isfinite(mono).all():
        raise AudioError(path, "audio contains NaN or infinite samples", "non-finite")
    return np.ascontiguousarray(mono, dtype=np.float32)


def save_audio(path: str | os.PathLike, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono ``samples`` (float in [-1, 1]) atomically; the format follows the suffix."""
    with atomic_path(path) as temp:
        soundfile.write(temp, samples, sample_rate)


def audio_info(path: str | os.PathLike) -> tuple[float, int]:
    """Duration in seconds and sample rate, from the file's header."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such audio file", "missing")
    try:
        info = soundfile.info(path)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
        raise AudioError(path, f"cannot read audio ({error})", "unreadable") from None
    return info.frames / info.samplerate, info.samplerate


def stream_audio(
    path: str | os.PathLike, sample_rate: int, block_seconds: float = 10.0
) -> Iterator[np.ndarray]:
    """``path`` as consecutive mono float32 blocks at ``sample_rate``, read (and resampled) a block
    at a time: memory stays bounded however long the file."""
    path = Path(path)
    audio_info(path)  # a missing or unreadable file: the usual one-line error
    with soundfile.SoundFile(path) as sound:
        resampler = (
            None if sound.samplerate == sample_rate else soxr.ResampleStream(sound.samplerate, sample_rate, 1)
        )
        while True:
            block = sound.read(round(block_seconds * sound.samplerate), dtype="float32", always_2d=True)
            last = len(block) < round(block_seconds * sound.samplerate)
            mono = block.mean(axis=1)
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
            if not np.isfinite(mono).all():
                raise AudioError(path, "audio contains NaN or infinite samples", "non-finite")
            if len(mono):
                yield np.ascontiguousarray(mono, dtype=np.float32)
            if last:
                return


def frame_levels_db(path: str, sample_rate: int, frame: int) -> np.ndarray:
    """Mean power in dB of each ``frame`` samples of ``path``, read a block at a time."""
    levels, rest = [], np.zeros(0, np.float32)
    for block in stream_audio(path, sample_rate):
        buffer = np.concatenate([rest, block])
        whole = len(buffer) // frame * frame
        levels.append(np.square(buffer[:whole]).reshape(-1, frame).mean(1))
        rest = buffer[whole:]
    if len(rest):
        levels.append(np.square(rest).mean(keepdims=True))
    return 10 * np.log10(np.concatenate(levels) + 1e-10)
