"""``asr-transcribe``: transcripts (and word timestamps) of audio files with a trained checkpoint.

asr-transcribe runs/demo/checkpoints/best.pt a.wav b.flac        # path<TAB>text per file
asr-transcribe runs/demo/checkpoints/best.pt a.wav --json        # JSON lines
asr-transcribe runs/demo/checkpoints/best.pt a.wav --timestamps  # JSON lines with word start / end
asr-transcribe runs/demo/checkpoints/best.pt a.wav --srt subs/   # and subs/a.srt
asr-transcribe runs/demo/model.onnx hour.flac                    # an exported model; long files in chunks
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from asr.align import WordTime, align_words, seconds_per_frame, srt
from asr.audio import audio_info, load_audio, stream_audio
from asr.ctc.decoding import GreedyDecoder
from asr.errors import UserError, exit_on_user_error
from asr.evaluate import batched_log_probs
from asr.fileio import write_text
from asr.inference import load_recognizer
from asr.models import DeepSpeech2
from asr.runtime import Device, resolve_device
from asr.text import Tokenizer


def transcribe_files(
    model: DeepSpeech2, tokenizer: Tokenizer, paths: list[str], device: torch.device,
    batch_size: int = 8, timestamps: bool = False, chunk_seconds: float = 30.0,
) -> list[dict]:  # fmt: skip
    """``{"audio_filepath", "text"[, "words"]}`` in the order of ``paths``; files of any rate and
    channel count, batched by length. ``words``: ``{"word", "start", "end"}`` in seconds, from
    forced alignment of the transcript. Files longer than ``chunk_seconds`` go through
    ``chunked_log_probs`` one at a time, in bounded memory."""
    decode, frame_seconds = GreedyDecoder(tokenizer), seconds_per_frame(model)

    def result(path: str, log_probs: torch.Tensor, text: str) -> dict:
        row: dict = {"audio_filepath": path, "text": text}
        if timestamps:
            words = align_words(log_probs, tokenizer.encode(text), tokenizer, frame_seconds) or []
            row["words"] = [asdict(word) for word in words]
        return row

    results: list[dict] = [{} for _ in paths]
    long = [i for i, path in enumerate(paths) if audio_info(path)[0] > chunk_seconds]
    short = sorted(set(range(len(paths))) - set(long))
    for i in long:
        log_probs = chunked_log_probs(model, paths[i], device, chunk_seconds)
        results[i] = result(paths[i], log_probs, decode(log_probs[None], torch.tensor([len(log_probs)]))[0])
    audio = [torch.from_numpy(load_audio(paths[i], model.dims.sample_rate)) for i in short]
    lengths = [len(a) for a in audio]
    for indices, log_probs, frames in batched_log_probs(
        model, device, lengths, audio.__getitem__, batch_size
    ):
        for j, text, emissions, n in zip(
            indices, decode(log_probs, frames), log_probs, frames.tolist(), strict=True
        ):
            results[short[j]] = result(paths[short[j]], emissions[:n], text)
    return results


@torch.inference_mode()
def chunked_log_probs(
    model: DeepSpeech2,
    path: str,
    device: torch.device,
    chunk_seconds: float = 30.0,
    overlap_seconds: float = 4.0,
) -> torch.Tensor:
    """Log-probs ``(frames, vocab)`` of a long file from overlapping windows.

    Windows of ``chunk_seconds`` start every ``chunk_seconds - overlap_seconds``; of each, the
    frames within half the overlap of an edge it shares with a neighbour are dropped, so every
    output frame comes from exactly one window, seen with at least ``overlap_seconds / 2`` of
    context on both sides: a word at a seam is neither lost nor doubled. Audio is read a block
    at a time; memory holds one window and the log-probs (about 10 MB an hour).
    """
    stride = round(seconds_per_frame(model) * model.dims.sample_rate)  # samples per output frame
    margin = max(1, round(overlap_seconds / 2 * model.dims.sample_rate / stride)) * stride
    chunk = max(4 * margin, round(chunk_seconds * model.dims.sample_rate / stride) * stride)
    pieces = []
    for number, (window, is_last) in enumerate(
        _windows(stream_audio(path, model.dims.sample_rate), chunk, margin)
    ):
        audio = torch.from_numpy(window)[None].to(device)
        log_probs, frames = model(audio, torch.tensor([audio.shape[1]], device=device))
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


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="asr-transcribe", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a checkpoint written by asr-train (best.pt or last.pt)")
    parser.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg; any rate, any channels)")
    parser.add_argument("--json", action="store_true", help='JSON lines {"audio_filepath", "text"}')
    parser.add_argument("--timestamps", action="store_true", help="JSON lines with each word's start and end")
    parser.add_argument("--srt", type=Path, metavar="DIR", help="also write DIR/<audio stem>.srt subtitles")
    parser.add_argument(
        "--chunk-seconds", type=float, default=30.0, help="longer files go in overlapping chunks"
    )
    parser.add_argument("--device", choices=[d.value for d in Device], default="auto")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    model, tokenizer = load_recognizer(args.checkpoint, device)
    timestamps = args.timestamps or args.srt is not None
    if args.chunk_seconds <= 4:
        raise UserError(f"--chunk-seconds {args.chunk_seconds}: must be longer than the 4 s overlap")
    results = transcribe_files(
        model, tokenizer, args.audio, device, timestamps=timestamps, chunk_seconds=args.chunk_seconds
    )
    for result in results:
        if args.srt is not None:
            words = [WordTime(**word) for word in result["words"]]
            write_text(args.srt / f"{Path(result['audio_filepath']).stem}.srt", srt(words))
            if not args.timestamps:
                del result["words"]
        if args.json or args.timestamps:
            print(json.dumps(result))
        else:
            print(f"{result['audio_filepath']}\t{result['text']}")


if __name__ == "__main__":
    main()
