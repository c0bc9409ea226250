"""``asr-transcribe``: greedy transcripts of audio files with a trained checkpoint.

asr-transcribe runs/demo/checkpoints/best.pt a.wav b.flac        # path<TAB>text per file
asr-transcribe runs/demo/checkpoints/best.pt a.wav --json        # JSON lines
"""

from __future__ import annotations

import argparse
import json

import torch

from asr.audio import load_audio
from asr.errors import exit_on_user_error
from asr.evaluate import greedy_transcripts
from asr.models import DeepSpeech2
from asr.runtime import Device, resolve_device
from asr.text import CharTokenizer
from asr.train.checkpoint import load_model


def transcribe_files(
    model: DeepSpeech2, tokenizer: CharTokenizer, paths: list[str], device: torch.device, batch_size: int = 8
) -> list[str]:
    """Transcripts in the order of ``paths``; files of any rate and channel count, batched by length."""
    audio = [torch.from_numpy(load_audio(path, model.dims.sample_rate)) for path in paths]
    return greedy_transcripts(
        model, tokenizer, device, [len(a) for a in audio], audio.__getitem__, batch_size
    )


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="asr-transcribe", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a checkpoint written by asr-train (best.pt or last.pt)")
    parser.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg; any rate, any channels)")
    parser.add_argument("--json", action="store_true", help='JSON lines {"audio_filepath", "text"}')
    parser.add_argument("--device", choices=[d.value for d in Device], default="auto")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    model, tokenizer = load_model(args.checkpoint, device)
    for path, text in zip(args.audio, transcribe_files(model, tokenizer, args.audio, device), strict=True):
        print(json.dumps({"audio_filepath": path, "text": text}) if args.json else f"{path}\t{text}")


if __name__ == "__main__":
    main()
