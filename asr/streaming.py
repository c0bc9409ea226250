"""Transcription while the audio arrives: ``Stream`` feeds a streaming model (one whose ``step``
carries its context as explicit state, ``asr.models.streaming_conv_lstm``) any amount of audio at a time,
and decodes greedily as frames complete.

The stream keeps the samples that do not yet make a whole group of ``subsampling`` STFT frames;
every output frame is computed once, with the same context as over the whole utterance, so the
log-probs over any chunking equal one forward pass, and a partial transcript only grows: a token
once emitted is never taken back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from asr.ctc.alignment import WordTime
from asr.ctc.decoding import FrameChoices
from asr.text import Tokenizer

Step = Callable[[np.ndarray, list], tuple[np.ndarray, np.ndarray, list]]
"""``(padded samples (1, n), state) -> (ready log-probs (1, t, V), ending log-probs, new state)``."""


@dataclass(frozen=True)
class StreamSpec:
    """The frame arithmetic a stream needs, from the model's dims."""

    n_fft: int
    hop_length: int
    subsampling: int
    lookahead: int
    sample_rate: int

    @property
    def frame_seconds(self) -> float:
        return self.hop_length * self.subsampling / self.sample_rate


def torch_step(model: torch.nn.Module) -> tuple[Step, list]:
    """``model.step`` (a ``StreamingConvLSTM`` in eval mode) as a ``Step`` on numpy, and its
    initial state."""
    device = next(model.parameters()).device

    @torch.inference_mode()
    def step(samples: np.ndarray, state: list) -> tuple[np.ndarray, np.ndarray, list]:
        ready, ending, *state = model.step(torch.from_numpy(samples).to(device), *state)
        return ready.float().cpu().numpy(), ending.float().cpu().numpy(), state

    return step, model.initial_state()


class FrameStream:
    """The model side of a stream: audio in, any amount at a time; log-probs of the output frames
    completed by it out."""

    def __init__(self, step: Step, state: list, spec: StreamSpec) -> None:
        self.step, self.state, self.spec = step, state, spec
        self.pending = np.zeros(spec.n_fft // 2, dtype=np.float32)  # the stream is centre-padded
        self.received = 0
        self.frames_done = 0
        """STFT frames computed."""
        self.to_drop = spec.lookahead  # the look-ahead's first outputs lie before the start
        self.ending: np.ndarray | None = None
        self.finished = False

    def accept(self, samples: np.ndarray) -> np.ndarray:
        if self.finished:
            raise RuntimeError("the stream is finished")
        self.pending = np.concatenate([self.pending, np.asarray(samples, dtype=np.float32).reshape(-1)])
        self.received += np.size(samples)
        n_fft, hop, group = self.spec.n_fft, self.spec.hop_length, self.spec.subsampling
        available = (len(self.pending) - n_fft) // hop + 1 if len(self.pending) >= n_fft else 0
        return self._run(available // group * group)

    def finish(self) -> np.ndarray:
        """The rest of the audio (with the end padding), and the last frames, which the
        look-ahead held back."""
        self.finished = True
        self.pending = np.concatenate([self.pending, np.zeros(self.spec.n_fft // 2, np.float32)])
        ready = self._run(self.received // self.spec.hop_length + 1 - self.frames_done)
        return np.concatenate([ready, self.ending[self.to_drop :]])

    def _run(self, frames: int) -> np.ndarray:
        if frames <= 0:
            return np.zeros((0, 0), np.float32) if self.ending is None else self.ending[:0]
        hop = self.spec.hop_length
        piece = self.pending[: self.spec.n_fft + (frames - 1) * hop]
        self.pending = self.pending[frames * hop :]
        self.frames_done += frames
        ready, ending, self.state = self.step(piece[None], self.state)
        ready, self.ending = ready[0], ending[0]
        dropped = min(self.to_drop, len(ready))
        self.to_drop -= dropped
        return ready[dropped:]


def stream_log_probs(step: Step, state: list, spec: StreamSpec, samples: np.ndarray) -> np.ndarray:
    """One utterance's log-probs ``(frames, vocab)``, streamed in one piece."""
    frames = FrameStream(step, state, spec)
    return np.concatenate([frames.accept(samples), frames.finish()])


class Stream:
    """``accept(samples) -> partial text``, then ``finish() -> final text``. ``samples``: float
    audio at the model's sample rate, any number at a time."""

    def __init__(
        self, step: Step, state: list, spec: StreamSpec, tokenizer: Tokenizer, blank_penalty: float = 0.0
    ) -> None:
        self.spec, self.tokenizer, self.blank_penalty = spec, tokenizer, blank_penalty
        self.frame_stream = FrameStream(step, state, spec)
        self.emissions: list[np.ndarray] = []
        self.frames = 0
        """Output frames decoded."""
        self.ids: list[int] = []
        self.text = ""
        """The transcript so far (it only grows)."""
        self.char_frames: list[int] = []
        """The output frame that emitted each character of ``text``."""
        self.previous = tokenizer.blank

    @property
    def seconds(self) -> float:
        """Audio received so far."""
        return self.frame_stream.received / self.spec.sample_rate

    @property
    def finished(self) -> bool:
        return self.frame_stream.finished

    def accept(self, samples: np.ndarray | Sequence[float]) -> str:
        self._emit(self.frame_stream.accept(np.asarray(samples, dtype=np.float32)))
        return self.text

    def finish(self) -> str:
        if not self.finished:
            self._emit(self.frame_stream.finish())
        return self.text

    def _emit(self, log_probs: np.ndarray) -> None:
        """Greedy CTC over new frames (the blank's log-prob lowered by ``blank_penalty``): a token
        when the best label changes to a non-blank."""
        if not len(log_probs):
            return
        self.emissions.append(log_probs)
        frames = torch.from_numpy(log_probs)[None]
        choices = FrameChoices.of(frames, torch.tensor([len(log_probs)]), self.tokenizer.blank)
        for offset, best in enumerate(choices.paths(self.blank_penalty)[0].tolist()):
            if best != self.tokenizer.blank and best != self.previous:
                self.ids.append(best)
                text = self.tokenizer.decode(self.ids)
                # Each new character belongs to the frame that emitted this token.
                self.char_frames = self.char_frames[: len(text)]
                self.char_frames += [self.frames + offset] * (len(text) - len(self.char_frames))
                self.text = text
            self.previous = best
        self.frames += len(log_probs)

    def log_probs(self) -> np.ndarray:
        """Every output frame's log-probs so far ``(frames, vocab)``."""
        if not self.emissions:
            return np.zeros((0, len(self.tokenizer)), dtype=np.float32)
        return np.concatenate(self.emissions)

    def words(self) -> list[WordTime]:
        """The words so far, each from the output frame of its first character's token to that
        of its last."""
        shift, words, start = self.spec.frame_seconds, [], None
        for i, char in enumerate(self.text + " "):
            if char != " " and start is None:
                start = i
            elif char == " " and start is not None:
                first, last = self.char_frames[start], self.char_frames[i - 1]
                words.append(
                    WordTime(self.text[start:i], round(first * shift, 3), round((last + 1) * shift, 3))
                )
                start = None
        return words
