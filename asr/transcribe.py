"""``asr-transcribe``: transcripts (and word timestamps) of audio files with a trained model.

asr-transcribe model=runs/demo/checkpoints/best.pt a.wav b.flac     # path<TAB>text per file
asr-transcribe model=best.pt a.wav format=json                      # JSON lines
asr-transcribe model=best.pt a.wav timestamps=true                  # JSON lines with word start / end
asr-transcribe model=best.pt a.wav srt=subs/                        # and subs/a.srt
asr-transcribe model=runs/demo/model.onnx hour.flac                 # an exported model; long files in chunks
asr-transcribe model=best.pt talk.wav segment_min_pause=0.5         # long files cut at pauses of 0.5 s+
asr-transcribe model=stream.pt stream=true realtime=true a.wav      # live: the transcript grows as it plays
arecord -f S16_LE -r 16000 | asr-transcribe model=stream.pt stream=true -   # from the microphone
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soxr
from omegaconf import MISSING

from asr.audio import stream_audio
from asr.cli import run_tool
from asr.ctc.alignment import srt
from asr.errors import UserError
from asr.fileio import write_text
from asr.recognizer import SEGMENT_MARGIN, SEGMENT_MIN_PAUSE, SEGMENT_TRIM_DB, Recognizer
from asr.runtime import Device


class OutputFormat(str, Enum):
    text = "text"
    """``path<TAB>text`` per file."""
    json = "json"
    """A JSON object per file (with ``words`` when ``timestamps=true``)."""


@dataclass
class TranscribeConfig:
    model: str = MISSING
    """A checkpoint (``.pt``), or an ``asr-export`` artifact (``.onnx``, ``.ts``)."""
    audio: list[str] = field(default_factory=list)
    """Audio files (wav, flac, ogg; any rate, any channels); bare words on the command line."""
    format: OutputFormat = OutputFormat.text
    timestamps: bool = False
    """Each word's start and end (forced alignment); implies format=json."""
    srt: str | None = None
    """Also write ``<srt>/<audio stem>.srt`` subtitles."""
    decoder: str = "greedy"
    """greedy or beam (beam_lm needs asr-eval's LM options)."""
    blank_penalty: float | None = None
    """greedy and live: taken from the blank's log-prob before each frame's choice; default: the
    model's, tuned on dev when it was trained."""
    chunk_seconds: float = 30.0
    """Longer files are recognised in overlapping windows of this length."""
    segment: bool = True
    """Files longer than chunk_seconds: cut at pauses, each piece recognised alone (false: the
    windows' output decoded as one)."""
    segment_min_pause: float = SEGMENT_MIN_PAUSE
    """Long files are cut at pauses of this many seconds or more (real recordings may want more)."""
    segment_margin: float = SEGMENT_MARGIN
    """Seconds kept around each piece's emitted tokens."""
    segment_trim_db: float = SEGMENT_TRIM_DB
    """Each piece's ends quieter than this many dB below its loudest are trimmed off (0: none)."""
    batch_size: int = 8
    device: Device = Device.auto
    stream: bool = False
    """Transcribe while reading, with a streaming model: the transcript grows as the audio comes."""
    realtime: bool = False
    """With stream=true: read files at the pace they were spoken (a live demo)."""
    block_seconds: float = 0.16
    """With stream=true: audio read and fed to the model at a time."""
    pcm_rate: int = 16000
    """Sample rate of the raw 16-bit mono PCM read from standard input (audio ``-``)."""
    threads: int | None = None
    """CPU threads for torch and onnxruntime; None: their defaults."""


def pcm_blocks(stream: BinaryIO, rate: int, target: int, block_seconds: float) -> Iterator[np.ndarray]:
    """Raw 16-bit little-endian mono PCM at ``rate`` (standard input) as float blocks at ``target``."""
    resampler = None if rate == target else soxr.ResampleStream(rate, target, 1)
    size, rest = 2 * max(1, round(block_seconds * rate)), b""
    while True:
        data = stream.read(size)
        last = not data
        data, rest = rest + data, b""
        if len(data) % 2:
            data, rest = data[:-1], data[-1:]
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        if resampler is not None:
            samples = resampler.resample_chunk(samples, last=last)
        if len(samples):
            yield samples
        if last:
            return


def transcribe_live(recognizer: Recognizer, source: str, cfg: TranscribeConfig) -> None:
    """Feed ``source`` (a file, or ``-``: PCM on standard input) to a stream block by block; the
    growing transcript on standard error (a terminal line rewritten in place), or as JSON lines
    on standard output with ``format=json``; the final result on standard output."""
    stream, rate = recognizer.stream(), recognizer.sample_rate
    if source == "-":
        blocks = pcm_blocks(sys.stdin.buffer, cfg.pcm_rate, rate, cfg.block_seconds)
    else:
        blocks = stream_audio(source, rate, cfg.block_seconds)
    started, shown = time.monotonic(), ""
    for block in blocks:
        if cfg.realtime:  # wait until this block would have been spoken
            time.sleep(max(0.0, started + stream.seconds + len(block) / rate - time.monotonic()))
        text = stream.accept(block)
        if text != shown:
            shown = text
            if cfg.format is OutputFormat.json:
                print(json.dumps({"type": "partial", "text": text}), flush=True)
            elif sys.stderr.isatty():
                print(f"\r{text}", end="", file=sys.stderr, flush=True)
    text = stream.finish()
    if cfg.format is OutputFormat.text and sys.stderr.isatty():
        print("\r\033[K", end="", file=sys.stderr, flush=True)
    words = [asdict(word) for word in stream.words()] if cfg.timestamps else None
    if cfg.format is OutputFormat.json or cfg.timestamps:
        print(json.dumps({"type": "final", "audio_filepath": source, "text": text,
                          **({"words": words} if words is not None else {})}))  # fmt: skip
    else:
        print(f"{source}\t{text}")


def transcribe(cfg: TranscribeConfig) -> None:
    if not cfg.audio:
        raise UserError("no audio files: name them after the options (asr-transcribe model=... a.wav b.flac)")
    recognizer = Recognizer.load(cfg.model, cfg.device.value, cfg.threads)
    if cfg.blank_penalty is not None:
        recognizer.model.blank_penalty = cfg.blank_penalty
    if cfg.stream:
        for source in cfg.audio:
            transcribe_live(recognizer, source, cfg)
        return
    if "-" in cfg.audio:
        raise UserError("audio - (standard input) is for stream=true")
    results = recognizer.transcribe(
        cfg.audio, cfg.decoder, timestamps=cfg.timestamps or cfg.srt is not None,
        chunk_seconds=cfg.chunk_seconds, batch_size=cfg.batch_size, segment=cfg.segment,
        segment_min_pause=cfg.segment_min_pause, segment_margin=cfg.segment_margin,
        segment_trim_db=cfg.segment_trim_db,
    )  # fmt: skip
    for result in results:
        if cfg.srt is not None:
            write_text(Path(cfg.srt) / f"{Path(result.audio_filepath).stem}.srt", srt(result.words or []))
            if not cfg.timestamps:
                result.words = None
        if cfg.format is OutputFormat.json or cfg.timestamps:
            print(json.dumps(result.to_dict()))
        else:
            print(f"{result.audio_filepath}\t{result.text}")


def main(argv: list[str] | None = None) -> None:
    run_tool("asr-transcribe", TranscribeConfig, transcribe, argv, positional="audio")


if __name__ == "__main__":
    main()
