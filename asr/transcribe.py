"""``asr-transcribe``: transcripts (and word timestamps) of audio files with a trained checkpoint.

asr-transcribe runs/demo/checkpoints/best.pt a.wav b.flac        # path<TAB>text per file
asr-transcribe runs/demo/checkpoints/best.pt a.wav --json        # JSON lines
asr-transcribe runs/demo/checkpoints/best.pt a.wav --timestamps  # JSON lines with word start / end
asr-transcribe runs/demo/checkpoints/best.pt a.wav --srt subs/   # and subs/a.srt
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch

from asr.align import WordTime, align_words, seconds_per_frame, srt
from asr.audio import load_audio
from asr.ctc.decoding import GreedyDecoder
from asr.errors import exit_on_user_error
from asr.evaluate import batched_log_probs
from asr.fileio import write_text
from asr.inference import load_recognizer
from asr.models import DeepSpeech2
from asr.runtime import Device, resolve_device
from asr.text import Tokenizer


def transcribe_files(
    model: DeepSpeech2, tokenizer: Tokenizer, paths: list[str], device: torch.device,
    batch_size: int = 8, timestamps: bool = False,
) -> list[dict]:  # fmt: skip
    """``{"audio_filepath", "text"[, "words"]}`` in the order of ``paths``; files of any rate and
    channel count, batched by length. ``words``: ``{"word", "start", "end"}`` in seconds, from
    forced alignment of the transcript."""
    audio = [torch.from_numpy(load_audio(path, model.dims.sample_rate)) for path in paths]
    decode, frame_seconds = GreedyDecoder(tokenizer), seconds_per_frame(model)
    results: list[dict] = [{} for _ in paths]
    lengths = [len(a) for a in audio]
    for indices, log_probs, frames in batched_log_probs(
        model, device, lengths, audio.__getitem__, batch_size
    ):
        for i, text, emissions, n in zip(
            indices, decode(log_probs, frames), log_probs, frames.tolist(), strict=True
        ):
            results[i] = {"audio_filepath": paths[i], "text": text}
            if timestamps:
                words = align_words(emissions[:n], tokenizer.encode(text), tokenizer, frame_seconds) or []
                results[i]["words"] = [asdict(word) for word in words]
    return results


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="asr-transcribe", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a checkpoint written by asr-train (best.pt or last.pt)")
    parser.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg; any rate, any channels)")
    parser.add_argument("--json", action="store_true", help='JSON lines {"audio_filepath", "text"}')
    parser.add_argument("--timestamps", action="store_true", help="JSON lines with each word's start and end")
    parser.add_argument("--srt", type=Path, metavar="DIR", help="also write DIR/<audio stem>.srt subtitles")
    parser.add_argument("--device", choices=[d.value for d in Device], default="auto")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    model, tokenizer = load_recognizer(args.checkpoint, device)
    timestamps = args.timestamps or args.srt is not None
    for result in transcribe_files(model, tokenizer, args.audio, device, timestamps=timestamps):
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
