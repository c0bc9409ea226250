"""Word timestamps by CTC forced alignment, and ``asr-align`` (known transcripts to CTM).

    asr-align checkpoint=runs/demo/checkpoints/best.pt manifest=data/synthetic/manifests/test.jsonl \
        output=runs/demo/test.ctm [reference=data/synthetic/alignments/test.jsonl] [--plot]

The Viterbi path through the CTC topology of a transcript (``torchaudio.functional.forced_align``)
gives every token a span of output frames. A word starts where the model emits the word boundary
before it (the space token; its first character comes about 70 ms after the true onset on the
built-in corpus's dev set, the space about 20 ms) and ends with the last frame of its last token.
Output frame ``t`` is centred on ``t * seconds_per_frame`` (the STFT is centred and every conv is
padded "same"), so it covers from half a frame before that to half a frame after.
"""

from __future__ import annotations

import difflib
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torchaudio.functional as AF
from omegaconf import MISSING

from asr.data.dataset import SpeechDataset
from asr.data.manifest import read_manifest
from asr.data.validate import ctc_frames_needed
from asr.errors import UserError, exit_on_user_error
from asr.evaluate import batched_log_probs, parse_cli
from asr.fileio import write_json, write_text
from asr.models import DeepSpeech2
from asr.runtime import Device, resolve_device
from asr.text import Tokenizer
from asr.text.sentencepiece import WORD_START
from asr.train.checkpoint import load_model


@dataclass(frozen=True)
class WordTime:
    word: str
    start: float
    end: float
    """Seconds from the start of the audio."""


def seconds_per_frame(model: DeepSpeech2) -> float:
    stride = 1
    for _, time_stride in model.dims.conv_strides:
        stride *= time_stride
    return model.dims.hop_length * stride / model.dims.sample_rate


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


def plot_alignment(path: Path, waveform: torch.Tensor, features: torch.Tensor, words: list[WordTime],
                   sample_rate: int, title: str) -> None:  # fmt: skip
    """Waveform and log-mel spectrogram with the aligned words marked (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = len(waveform) / sample_rate
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(12, 5), sharex=True, height_ratios=[1, 2])
    top.plot(torch.arange(len(waveform)) / sample_rate, waveform, linewidth=0.4, color="0.3")
    top.set_title(title, fontsize=10)
    top.set_yticks([])
    bottom.imshow(
        features.T, origin="lower", aspect="auto", extent=(0, seconds, 0, features.shape[1]), cmap="magma"
    )
    bottom.set_ylabel("mel bin")
    bottom.set_xlabel("seconds")
    for n, word in enumerate(words):
        for axis in (top, bottom):
            axis.axvspan(word.start, word.end, color="tab:cyan" if n % 2 else "tab:green", alpha=0.18)
        bottom.text((word.start + word.end) / 2, features.shape[1] * (0.9 - 0.08 * (n % 2)), word.word,
                    ha="center", fontsize=9, color="white", weight="bold")  # fmt: skip
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


@dataclass
class AlignConfig:
    checkpoint: str = MISSING
    manifest: str = MISSING
    output: str = MISSING
    """CTM file; a summary (and the boundary errors, with ``reference``) goes to ``<stem>.alignment.json``."""
    reference: str | None = None
    """True word start times (the built-in corpus's ``alignments/<split>.jsonl``) to measure against."""
    plot: bool = False
    """Also draw the first ``plot_limit`` utterances to ``<stem>.plots/<utterance>.png``."""
    plot_limit: int = 5
    batch_size: int = 16
    device: Device = Device.auto


def align(cfg: AlignConfig) -> dict:
    device = resolve_device(cfg.device)
    model, tokenizer = load_model(cfg.checkpoint, device)
    dataset = SpeechDataset(read_manifest(cfg.manifest), tokenizer, model.dims.sample_rate)
    frame_seconds = seconds_per_frame(model)
    aligned: list[list[WordTime] | None] = [None] * len(dataset)
    load = lambda i: dataset[i][0]  # noqa: E731
    for indices, log_probs, frames in batched_log_probs(
        model, device, dataset.durations, load, cfg.batch_size, True
    ):
        for i, lp, n in zip(indices, log_probs, frames.tolist(), strict=True):
            aligned[i] = align_words(lp[:n], dataset.targets[i].tolist(), tokenizer, frame_seconds)
    ids = [utt.audio_filepath.stem for utt in dataset.utterances]
    output = Path(cfg.output)
    write_text(
        output, "".join(ctm_lines(utt_id, words) for utt_id, words in zip(ids, aligned, strict=True) if words)
    )
    summary: dict = {
        "utterances": len(dataset), "unaligned": sum(words is None for words in aligned),
        "seconds_per_frame": frame_seconds, "checkpoint": cfg.checkpoint, "manifest": cfg.manifest,
    }  # fmt: skip
    if cfg.reference is not None:
        summary |= compare(ids, aligned, cfg.reference)
    write_json(output.with_name(f"{output.stem}.alignment.json"), summary)
    if cfg.plot:
        for i in range(min(cfg.plot_limit, len(dataset))):
            if aligned[i]:
                waveform = dataset[i][0]
                with torch.no_grad():
                    features, _ = model.frontend(
                        waveform[None].to(device), torch.tensor([len(waveform)], device=device)
                    )
                plot_path = output.with_name(f"{output.stem}.plots") / f"{ids[i]}.png"
                plot_alignment(
                    plot_path,
                    waveform,
                    features[0].cpu(),
                    aligned[i],
                    model.dims.sample_rate,
                    dataset.texts[i],
                )
    return summary


def compare(ids: list[str], aligned: list[list[WordTime] | None], reference: str) -> dict:
    """Median / 90th-percentile / mean word-start error against true times."""
    import json

    try:
        truth = {row["id"]: row["words"] for row in map(json.loads, Path(reference).read_text().splitlines())}
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"{reference}: not a word-time reference ({error})") from None
    errors, skipped = [], 0
    for utt_id, words in zip(ids, aligned, strict=True):
        found = boundary_errors(words, truth[utt_id]) if words and truth.get(utt_id) else []
        skipped += not found
        errors += found
    if not errors:
        raise UserError(f"{reference}: no utterance of the manifest has matching reference words")
    errors.sort()
    return {
        "words_compared": len(errors), "utterances_skipped": skipped,
        "start_error_median_ms": 1000 * statistics.median(errors),
        "start_error_p90_ms": 1000 * errors[int(0.9 * (len(errors) - 1))],
        "start_error_mean_ms": 1000 * statistics.fmean(errors),
    }  # fmt: skip


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    argv = [("plot=true" if arg == "--plot" else arg) for arg in (sys.argv[1:] if argv is None else argv)]
    cfg = parse_cli(AlignConfig, argv)
    summary = align(cfg)
    done = summary["utterances"] - summary["unaligned"]
    line = f"{done} of {summary['utterances']} utterances aligned -> {cfg.output}"
    if "start_error_median_ms" in summary:
        line += (f"; word-start error median {summary['start_error_median_ms']:.0f} ms,"
                 f" 90th percentile {summary['start_error_p90_ms']:.0f} ms")  # fmt: skip
    print(line)


if __name__ == "__main__":
    main()
