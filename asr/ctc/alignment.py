"""CTC forced alignment: word times of a known transcript in a model's log-probs.

The Viterbi path through the CTC topology of a transcript (``torchaudio.functional.forced_align``)
gives every token a span of output frames. A word starts where the model emits the word boundary
before it (the space token; its first character comes about 70 ms after the true onset on the
built-in corpus's dev set, the space about 20 ms) and ends with the last frame of its last token.
Output frame ``t`` is centred on ``t * frame_seconds`` (the STFT is centred and every conv is
padded "same"), so it covers from half a frame before that to half a frame after.
"""

from __future__ import annotations

import bisect
import difflib
from dataclasses import dataclass

import torch
import torchaudio.functional as AF

from asr.text import Tokenizer
from asr.text.sentencepiece import WORD_START


def ctc_frames_needed(ids: list[int]) -> int:
    """Fewest frames a CTC alignment of ``ids`` needs: one per label, plus a blank between repeats."""
    return len(ids) + sum(a == b for a, b in zip(ids, ids[1:], strict=False))


@dataclass(frozen=True)
class WordTime:
    word: str
    start: float
    end: float
    """Seconds from the start of the audio."""


def align_words(
    log_probs: torch.Tensor, ids: list[int], tokenizer: Tokenizer, frame_seconds: float
) -> list[WordTime] | None:
    """Word times of transcript ``ids`` in ``log_probs`` ``(frames, vocab)``; None when the audio is
    too short for the transcript (no CTC path)."""
    ids = list(ids)
    space = tokenizer.tokens.index(" ") if " " in tokenizer.tokens else None
    while ids and ids[0] == space:
        ids.pop(0)
    while ids and ids[-1] == space:
        ids.pop()
    if not ids:
        return []
    if len(log_probs) < ctc_frames_needed(ids):
        return None
    path, _ = AF.forced_align(
        log_probs[None].float().cpu(), torch.tensor([ids], dtype=torch.int32), blank=tokenizer.blank
    )
    spans = AF.merge_tokens(path[0], torch.zeros(len(path[0])))
    words: list[list[tuple[int, AF.TokenSpan]]] = [[]]
    boundaries: list[AF.TokenSpan | None] = [None]
    for token, span in zip(ids, spans, strict=True):
        if token == space:  # characters: a space ends the word, and marks where the next begins
            words.append([])
            boundaries.append(span)
            continue
        if space is None and tokenizer.tokens[token].startswith(WORD_START) and words[-1]:
            words.append([])  # subwords: a marked piece starts a word
            boundaries.append(None)
        words[-1].append((token, span))

    def seconds(frame: int) -> float:  # frame t spans [t - 1/2, t + 1/2) frames
        return round(max(0.0, (frame - 0.5) * frame_seconds), 3)

    return [
        WordTime(
            tokenizer.decode([token for token, _ in word]).strip(),
            seconds(boundary.start if boundary is not None else word[0][1].start),
            seconds(word[-1][1].end),
        )  # fmt: skip
        for word, boundary in zip(words, boundaries, strict=True)
        if word
    ]


def ctm_lines(utt_id: str, words: list[WordTime]) -> str:
    """NIST CTM: ``utterance channel start duration word``."""
    return "".join(f"{utt_id} 1 {w.start:.3f} {w.end - w.start:.3f} {w.word}\n" for w in words)


def srt(words: list[WordTime], max_words: int = 8, max_gap: float = 0.6) -> str:
    """Subtitles: a cue every ``max_words`` words or at a pause longer than ``max_gap`` seconds."""
    cues: list[list[WordTime]] = []
    for word in words:
        if not cues or len(cues[-1]) >= max_words or word.start - cues[-1][-1].end > max_gap:
            cues.append([])
        cues[-1].append(word)
    blocks = [
        f"{n}\n{_srt_time(cue[0].start)} --> {_srt_time(cue[-1].end)}\n{' '.join(w.word for w in cue)}\n"
        for n, cue in enumerate(cues, 1)
    ]
    return "\n".join(blocks)


def _srt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    return (
        f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d},{millis % 1000:03d}"
    )


def boundary_errors(predicted: list[WordTime], reference: list[tuple[str, float]]) -> list[float]:
    """|predicted - true| start times in seconds of the words both lists hold, matched in order
    (espeak-ng reports no event for a few words, e.g. the "not" of "did not")."""
    ours, theirs = [w.word for w in predicted], [word.lower() for word, _ in reference]
    matcher = difflib.SequenceMatcher(a=ours, b=theirs, autojunk=False)
    return [
        abs(predicted[block.a + k].start - reference[block.b + k][1])
        for block in matcher.get_matching_blocks()
        for k in range(block.size)
    ]


def silent_tokens(tokenizer: Tokenizer) -> list[int]:
    """The blank and the tokens that are only a word break (a character model's space): what a
    model emits during a pause."""
    return [
        i
        for i, token in enumerate(tokenizer.tokens)
        if i == tokenizer.blank or not token.replace(WORD_START, " ").strip()
    ]


def pause_cuts(
    log_probs: torch.Tensor, silent: list[int], min_pause: int, max_length: int,
    quiet: torch.Tensor | None = None,
) -> list[int]:  # fmt: skip
    """Frames at which to cut a long recording into utterance-like segments: the middle of every
    run of at least ``min_pause`` frames whose best label is ``silent`` and that are ``quiet``
    (a pause; a subword model also emits blanks for a while inside words, where the audio is
    loud); a segment still longer than ``max_length`` frames is cut at the middle of its longest
    such run."""
    is_pause = torch.isin(log_probs.argmax(-1), torch.tensor(silent))
    is_blank = (is_pause if quiet is None else is_pause & quiet).tolist()
    runs, start = [], None  # (length, middle) of each blank run
    for i, value in enumerate([*is_blank, False]):
        if value and start is None:
            start = i
        elif not value and start is not None:
            runs.append((i - start, (start + i) // 2))
            start = None
    cuts = sorted(middle for length, middle in runs if length >= min_pause and 0 < middle < len(is_blank))
    bounds, result = [0, *cuts, len(is_blank)], []
    for a, b in zip(bounds, bounds[1:], strict=False):
        result += _split_long(a, b, [r for r in runs if a < r[1] < b], max_length)
        result.append(b)
    return result[:-1]


def speech_spans(
    log_probs: torch.Tensor, silent: list[int], min_pause: int, max_length: int, margin: int,
    quiet: torch.Tensor | None = None,
) -> list[tuple[int, int]]:  # fmt: skip
    """Utterance-like ``(start, end)`` frame spans of a long recording: the pieces between
    ``pause_cuts`` (``quiet``: which frames may be pauses), each trimmed to its speech (frames
    whose best label is not ``silent``) with ``margin`` frames of the pauses around it, as a
    corpus cuts its utterances; pieces without speech are left out."""
    speech = torch.nonzero(~torch.isin(log_probs.argmax(-1), torch.tensor(silent))).flatten().tolist()
    bounds, spans = [0, *pause_cuts(log_probs, silent, min_pause, max_length, quiet), len(log_probs)], []
    for a, b in zip(bounds, bounds[1:], strict=False):
        first, last = bisect.bisect_left(speech, a), bisect.bisect_left(speech, b) - 1
        if first <= last:
            spans.append((max(a, speech[first] - margin), min(b, speech[last] + 1 + margin)))
    return spans


def _split_long(a: int, b: int, runs: list[tuple[int, int]], max_length: int) -> list[int]:
    if b - a <= max_length:
        return []
    inside = [r for r in runs if a < r[1] < b]
    cut = max(inside)[1] if inside else (a + b) // 2
    return [*_split_long(a, cut, inside, max_length), cut, *_split_long(cut, b, inside, max_length)]
