"""``Recognizer``: a trained model with its tokenizer, whatever it was saved as — what every tool
runs, and the Python API.

    from asr import Recognizer

    recognizer = Recognizer.load("runs/demo/checkpoints/best.pt")   # or model.onnx, model.ts
    for result in recognizer.transcribe(["a.wav", "b.flac"], timestamps=True):
        print(result.text, [(w.word, w.start) for w in result.words])
    log_probs = recognizer.log_probs([samples])                     # (frames, vocab) per utterance
    words = recognizer.align(samples, "the words said")             # forced alignment

Audio may be at any rate and have any number of channels; files longer than ``chunk_seconds``
are read and recognised in overlapping windows, in bounded memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from asr.audio import audio_info, frame_levels_db, load_audio, stream_audio
from asr.ctc.alignment import WordTime, align_words, silent_tokens, speech_spans
from asr.ctc.decoding import BeamSearchDecoder, BeamSettings, GreedyDecoder
from asr.data.dataset import collate
from asr.errors import UserError
from asr.inference import load_any
from asr.runtime import resolve_device
from asr.streaming import Stream, StreamSpec, torch_step
from asr.text import Tokenizer

# How a long file is cut before its pieces are recognised (``Recognizer.transcribe``; asr-transcribe
# shows the same settings): tuned on the dev speakers' long file (scripts/bench_longform.py).
SEGMENT_MIN_PAUSE, SEGMENT_MARGIN, SEGMENT_TRIM_DB = 0.15, 1.0, 40.0

Decoder = Callable[[torch.Tensor, torch.Tensor], list[str]]
"""``(log_probs (batch, time, vocab), frames (batch,))`` to one text per utterance."""


@dataclass
class Transcript:
    audio_filepath: str
    text: str
    words: list[WordTime] | None = None
    """Each word's start and end in seconds (``timestamps=True``)."""

    def to_dict(self) -> dict:
        row = {"audio_filepath": self.audio_filepath, "text": self.text}
        if self.words is not None:
            row["words"] = [asdict(word) for word in self.words]
        return row


def sorted_batches(lengths: Sequence[float], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (less padding), longest first."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def decode_batches(
    batches: Iterable[tuple[list[int], torch.Tensor, torch.Tensor]], decode: Decoder, count: int
):
    """Texts of utterances ``0 .. count - 1`` from ``(indices, log_probs, frames)`` batches."""
    texts = [""] * count
    for indices, log_probs, frames in batches:
        for i, text in zip(indices, decode(log_probs, frames), strict=True):
            texts[i] = text
    return texts


@dataclass
class Recognizer:
    model: torch.nn.Module
    """Raw audio ``(batch, samples)`` and lengths in; log-probs ``(batch, time, vocab)`` and frames out."""
    tokenizer: Tokenizer
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "auto", threads: int | None = None):
        """A checkpoint (``.pt``) or an ``asr-export`` artifact (``.onnx``, ``.ts``). ``threads``: for
        torch and onnxruntime (None: their defaults)."""
        device = resolve_device(device) if isinstance(device, str) else device
        if threads is not None:
            torch.set_num_threads(threads)
        model, tokenizer = load_any(path, device, threads)
        return cls(model, tokenizer, device)

    @property
    def sample_rate(self) -> int:
        return self.model.dims.sample_rate

    @property
    def blank_penalty(self) -> float:
        """Greedy decoding's blank penalty, tuned for the model on dev when it was trained."""
        return getattr(self.model, "blank_penalty", 0.0)  # 0 for a model of the caller's own

    @property
    def frame_seconds(self) -> float:
        """Seconds between two output frames."""
        return self.model.frame_shift_seconds

    @torch.no_grad()
    def batches(
        self, lengths: Sequence[float], load: Callable[[int], torch.Tensor], batch_size: int = 16,
        progress: bool = False, speaker: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:  # fmt: skip
        """``(indices, log_probs, frames)`` for batches of utterances ``0 .. len(lengths) - 1``:
        ``load(i)`` gives utterance i's audio ``(samples,)``, ``lengths`` (durations or sample
        counts) group utterances of similar length. ``speaker``: each utterance's speaker's feature
        statistics, ``(mean, variance)`` ``(utterances, channels)`` (``asr.speakers``)."""
        was_training = self.model.training
        self.model.eval()
        no_target = torch.zeros(0, dtype=torch.long)
        try:
            for indices in tqdm(sorted_batches(lengths, batch_size), desc="decoding", unit="batch",
                                disable=not progress, leave=False):  # fmt: skip
                batch = collate([(load(i), no_target) for i in indices]).to(self.device)
                if speaker is None:
                    yield indices, *self.model(batch.waveforms, batch.sample_lengths)
                else:
                    stats = tuple(s[indices].to(self.device) for s in speaker)
                    yield indices, *self.model(batch.waveforms, batch.sample_lengths, speaker=stats)
        finally:
            self.model.train(was_training)

    def log_probs(
        self, audio: Sequence[np.ndarray | torch.Tensor], batch_size: int = 16
    ) -> list[torch.Tensor]:
        """Log-probs ``(frames, vocab)`` (float32, CPU) of each utterance (mono samples at
        ``sample_rate``)."""
        tensors = [torch.as_tensor(samples, dtype=torch.float32) for samples in audio]
        results: list[torch.Tensor] = [torch.empty(0)] * len(tensors)
        for indices, log_probs, frames in self.batches(
            [len(t) for t in tensors], tensors.__getitem__, batch_size
        ):
            for i, emissions, n in zip(indices, log_probs, frames.tolist(), strict=True):
                results[i] = emissions[:n].float().cpu()
        return results

    def decoder(
        self, kind: str = "greedy", lm: str | os.PathLike | None = None, lm_weight: float = 1.0,
        word_score: float = 0.0, beam_size: int = 50, beam_threshold: float = 25.0,
        blank_penalty: float | None = None,
    ) -> Decoder:  # fmt: skip
        """``greedy``; ``beam`` (CTC prefix beam search); ``beam_lm`` (over ``lm``'s words).
        ``blank_penalty``: greedy's (None: the one tuned for the model, ``model.blank_penalty``)."""
        if kind == "greedy":
            penalty = self.blank_penalty if blank_penalty is None else blank_penalty
            return GreedyDecoder(self.tokenizer, penalty)
        if kind not in ("beam", "beam_lm"):
            raise UserError(f"decoder={kind}: choose greedy, beam or beam_lm")
        if kind == "beam_lm" and lm is None:
            raise UserError("decoder=beam_lm needs an ARPA language model (lm=PATH)")
        settings = BeamSettings(beam_size, beam_threshold, lm_weight, word_score)
        return BeamSearchDecoder(self.tokenizer, lm if kind == "beam_lm" else None, settings)

    def align(self, audio: np.ndarray | torch.Tensor, text: str) -> list[WordTime] | None:
        """Each word of ``text`` with its start and end in ``audio``; None if the audio is too short
        for the text."""
        (log_probs,) = self.log_probs([audio])
        return align_words(log_probs, self.tokenizer.encode(text), self.tokenizer, self.frame_seconds)

    def transcribe(
        self, paths: Sequence[str | os.PathLike], decoder: str | Decoder = "greedy", timestamps: bool = False,
        chunk_seconds: float = 30.0, batch_size: int = 8, segment: bool = True,
        segment_min_pause: float = SEGMENT_MIN_PAUSE, segment_margin: float = SEGMENT_MARGIN,
        segment_trim_db: float = SEGMENT_TRIM_DB,
    ) -> list[Transcript]:  # fmt: skip
        """One ``Transcript`` per file, in order. ``decoder``: a name for ``decoder()`` or a decoder;
        ``timestamps``: word times by forced alignment of the transcript. Files longer than
        ``chunk_seconds`` are first recognised in overlapping windows (``long_log_probs``); with
        ``segment``, they are then cut at the pauses of ``segment_min_pause`` seconds or more
        found there, each piece cut ``segment_margin`` seconds before its first emitted token and
        after its last (a model emits a letter some tens of milliseconds after its sound begins: 0
        would clip words), then trimmed at both ends to the audio within ``segment_trim_db`` dB of
        its loudest (0: not trimmed), and recognised alone, as the model learnt from single,
        tightly cut utterances."""
        if chunk_seconds <= 4:
            raise UserError(f"chunk_seconds={chunk_seconds}: must be longer than the 4 s overlap")
        if segment_min_pause <= 0 or min(segment_margin, segment_trim_db) < 0:
            raise UserError(
                f"segment_min_pause={segment_min_pause}, segment_margin={segment_margin}, "
                f"segment_trim_db={segment_trim_db}: the pause must be over 0 s, the others 0 or more"
            )
        decode = self.decoder(decoder) if isinstance(decoder, str) else decoder
        paths = [str(path) for path in paths]

        def result(path: str, log_probs: torch.Tensor, text: str) -> Transcript:
            return Transcript(path, text, self._word_times(log_probs, text) if timestamps else None)

        results: list[Transcript | None] = [None] * len(paths)
        long = [i for i, path in enumerate(paths) if audio_info(path)[0] > chunk_seconds]
        for i in long:
            log_probs = self.long_log_probs(paths[i], chunk_seconds)
            if segment:
                results[i] = self._segmented(
                    paths[i], log_probs, decode, timestamps, batch_size,
                    segment_min_pause, segment_margin, segment_trim_db,
                )  # fmt: skip
            else:
                text = decode(log_probs[None], torch.tensor([len(log_probs)]))[0]
                results[i] = result(paths[i], log_probs, text)
        short = [i for i in range(len(paths)) if results[i] is None]
        audio = [torch.from_numpy(load_audio(paths[i], self.sample_rate)) for i in short]
        for indices, log_probs, frames in self.batches(
            [len(a) for a in audio], audio.__getitem__, batch_size
        ):
            texts = decode(log_probs, frames)
            for j, text, emissions, n in zip(indices, texts, log_probs, frames.tolist(), strict=True):
                results[short[j]] = result(paths[short[j]], emissions[:n].float().cpu(), text)
        return results  # type: ignore[return-value]

    def _word_times(self, log_probs: torch.Tensor, text: str, offset: float = 0.0) -> list[WordTime]:
        """Word times of ``text`` by forced alignment in ``log_probs`` ``(frames, vocab)``, shifted by
        ``offset`` seconds; none where the audio is too short for the text."""
        found = align_words(log_probs, self.tokenizer.encode(text), self.tokenizer, self.frame_seconds) or []
        return [WordTime(w.word, round(w.start + offset, 3), round(w.end + offset, 3)) for w in found]

    def _segmented(
        self, path: str, log_probs: torch.Tensor, decode: Decoder, timestamps: bool, batch_size: int,
        min_pause: float, margin: float, trim_db: float, max_seconds: float = 20.0,
    ) -> Transcript:  # fmt: skip
        """``path`` cut at pauses of ``min_pause`` seconds (runs of blank or word break in
        ``log_probs``) into segments of at most ``max_seconds``, each cut to ``margin`` seconds
        around its emitted tokens, trimmed to its audio within ``trim_db`` dB of its loudest, and
        recognised alone; texts joined, word times shifted to the file's clock. Segments are read
        a batch at a time."""
        shift = self.frame_seconds
        silent, quiet = silent_tokens(self.tokenizer), None
        if trim_db > 0:  # pauses are also quiet: the frames over trim_db below the file's loud ones
            levels = frame_levels_db(path, self.sample_rate, round(shift * self.sample_rate))
            quiet = torch.ones(len(log_probs), dtype=torch.bool)
            n = min(len(levels), len(quiet))
            quiet[:n] = torch.from_numpy(levels[:n] < np.percentile(levels, 99) - trim_db)
        frames = (round(seconds / shift) for seconds in (min_pause, max_seconds, margin))
        pieces = speech_spans(log_probs, silent, *frames, quiet)
        spans = [(a * shift, (b - a) * shift) for a, b in pieces]
        texts, words = [""] * len(spans), []
        for group in range(0, len(spans), 64):
            audio, starts = [], []
            for start, seconds in spans[group : group + 64]:
                samples, skipped = trim_quiet_ends(
                    load_audio(path, self.sample_rate, start, seconds), self.sample_rate, trim_db
                )
                audio.append(torch.from_numpy(samples))
                starts.append(start + skipped)
            for indices, batch, frames in self.batches(
                [len(a) for a in audio], audio.__getitem__, batch_size
            ):
                for j, text, emissions, n in zip(
                    indices, decode(batch, frames), batch, frames.tolist(), strict=True
                ):
                    texts[group + j] = text
                    if timestamps and text:
                        words += self._word_times(emissions[:n].float().cpu(), text, starts[j])
        text = " ".join(t for t in texts if t)
        return Transcript(path, text, sorted(words, key=lambda w: w.start) if timestamps else None)

    def stream(self) -> Stream:
        """A live ``Stream``: ``accept(samples) -> partial text``, ``finish() -> final text``, for a
        streaming model (``model=streaming``), as a checkpoint or an ONNX export."""
        if getattr(self.model, "stepper", None) is not None:
            step, state = self.model.stepper()
        elif hasattr(self.model, "step"):
            step, state = torch_step(self.model.eval())
        else:
            raise UserError(
                f"a {self.model.name} model needs whole utterances; streaming needs a streaming model "
                "(train one with model=streaming; a .ts export does not stream)"
            )
        dims = self.model.dims
        spec = StreamSpec(
            dims.n_fft, dims.hop_length, self.model.time_subsampling, dims.lookahead, dims.sample_rate
        )
        return Stream(step, state, spec, self.tokenizer, self.blank_penalty)

    @torch.inference_mode()
    def long_log_probs(
        self, path: str | os.PathLike, chunk_seconds: float = 30.0, overlap_seconds: float = 4.0
    ) -> torch.Tensor:
        """Log-probs ``(frames, vocab)`` of a long file from overlapping windows.

        Windows of ``chunk_seconds`` start every ``chunk_seconds - overlap_seconds``; of each, the
        frames within half the overlap of an edge it shares with a neighbour are dropped, so every
        output frame comes from exactly one window, seen with at least ``overlap_seconds / 2`` of
        context on both sides: a word at a seam is neither lost nor doubled. Audio is read a block
        at a time; memory holds one window and the log-probs (about 10 MB an hour).
        """
        rate = self.sample_rate
        stride = round(self.frame_seconds * rate)  # samples per output frame
        margin = max(1, round(overlap_seconds / 2 * rate / stride)) * stride
        chunk = max(4 * margin, round(chunk_seconds * rate / stride) * stride)
        pieces = []
        for number, (window, is_last) in enumerate(_windows(stream_audio(path, rate), chunk, margin)):
            audio = torch.from_numpy(window)[None].to(self.device)
            log_probs, frames = self.model(audio, torch.tensor([audio.shape[1]], device=self.device))
            first = 0 if number == 0 else margin // stride
            last = int(frames[0]) if is_last else (chunk - margin) // stride
            pieces.append(log_probs[0, first:last].float().cpu())
        return torch.cat(pieces)


def _windows(blocks: Iterator[np.ndarray], chunk: int, margin: int) -> Iterator[tuple[np.ndarray, bool]]:
    """``(window, is_last)``: windows of ``chunk`` samples every ``chunk - 2 * margin``."""
    buffer, exhausted = np.zeros(0, np.float32), False
    while True:
        while len(buffer) < chunk and not exhausted:
            block = next(blocks, None)
            exhausted = block is None
            if block is not None:
                buffer = np.concatenate([buffer, block])
        is_last = exhausted and len(buffer) <= chunk
        yield buffer[:chunk], is_last
        if is_last:
            return
        buffer = buffer[chunk - 2 * margin :]


def trim_quiet_ends(audio: np.ndarray, sample_rate: int, top_db: float) -> tuple[np.ndarray, float]:
    """``audio`` without its ends quieter than ``top_db`` dB below its loudest 25 ms frame
    (librosa's ``trim``, 10 ms hops), and the seconds cut from its start; unchanged where
    ``top_db`` is 0 or the rest would be under 0.1 s."""
    if top_db <= 0:
        return audio, 0.0
    import librosa  # here, not at the top: long files alone need it, and it loads slowly

    frame, hop = round(0.025 * sample_rate), round(0.01 * sample_rate)
    trimmed, (start, _) = librosa.effects.trim(audio, top_db=top_db, frame_length=frame, hop_length=hop)
    if len(trimmed) < 0.1 * sample_rate:
        return audio, 0.0
    return trimmed, start / sample_rate
