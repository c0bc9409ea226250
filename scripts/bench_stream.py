"""Latency of live transcription with a streaming model: the model's algorithmic latency, the
compute per chunk at one thread, and how long after the end of each word its last letter is
emitted, on the built-in corpus's test speakers (their word times are espeak-ng's).

    python scripts/bench_stream.py --checkpoint runs/stream_demo/checkpoints/best.pt [--chunk-ms 160]

The audio is fed chunk by chunk as a microphone would deliver it; a letter emitted while
processing the chunk that ends at audio time t is out at t plus that chunk's compute time. A
word's end is the start of the next word of the transcript (espeak-ng gives word starts; words it
gives no event for are skipped), the last word's end the last sample above -40 dB of the peak.
Hypothesis words are matched to reference words by difflib; delays are over matched words.
Prints a table, writes ``benchmarks/stream_cpu.json``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import platform
import statistics
import time
from pathlib import Path

import jiwer
import numpy as np
import torch

from asr import Recognizer
from asr.audio import load_audio
from asr.data.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[1]


def word_ends(audio: np.ndarray, rate: int, text: str, starts: list) -> dict[int, float]:
    """End time of each word of ``text`` (by index) that espeak-ng timed and whose successor it
    timed too."""
    words, start_of, j = text.split(), {}, 0
    for i, word in enumerate(words):  # transcript index -> its start, matching the words in order
        if j < len(starts) and starts[j][0] == word:
            start_of[i] = starts[j][1]
            j += 1
    loud = np.flatnonzero(np.abs(audio) > 0.01 * np.abs(audio).max())
    ends = {i: start_of[i + 1] for i in start_of if i + 1 in start_of}
    if len(words) - 1 in start_of:
        ends[len(words) - 1] = (loud[-1] + 1) / rate if len(loud) else len(audio) / rate
    return ends


def stream_one(recognizer: Recognizer, audio: np.ndarray, chunk: int) -> tuple[str, list[float], list[float]]:
    """Final text, each character's emission time, and each chunk's compute time."""
    rate, stream = recognizer.sample_rate, recognizer.stream()
    emitted, computes = [], []
    for start in range(0, len(audio), chunk):
        piece = audio[start : start + chunk]
        began = time.perf_counter()
        text = stream.accept(piece)
        spent = time.perf_counter() - began
        computes.append(spent)
        emitted += [(start + len(piece)) / rate + spent] * (len(text) - len(emitted))
    began = time.perf_counter()
    text = stream.finish()
    spent = time.perf_counter() - began
    emitted += [len(audio) / rate + spent] * (len(text) - len(emitted))
    return text, emitted, computes


def word_delays(hypothesis: str, emitted: list[float], reference: str, ends: dict[int, float]) -> list[float]:
    hyp_words, last_char, position = hypothesis.split(), [], 0
    for word in hyp_words:
        position = hypothesis.index(word, position) + len(word)
        last_char.append(emitted[position - 1])
    matcher = difflib.SequenceMatcher(a=reference.split(), b=hyp_words, autojunk=False)
    delays = []
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            if block.a + k in ends:
                delays.append(last_char[block.b + k] - ends[block.a + k])
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default="runs/stream/checkpoints/best.pt", help="a streaming model")
    parser.add_argument("--manifest", default="data/synthetic/manifests/test.jsonl")
    parser.add_argument("--alignments", default="data/synthetic/alignments/test.jsonl")
    parser.add_argument("--chunk-ms", type=float, default=160.0)
    parser.add_argument("--limit", type=int, default=200, help="utterances (the first ones)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "stream_cpu.json"))
    args = parser.parse_args()
    if not Path(args.checkpoint).is_file():
        raise SystemExit(
            f"{args.checkpoint}: no such checkpoint (STREAMING=1 recipes/synthetic/run.sh trains one)"
        )
    torch.set_num_threads(1)
    recognizer = Recognizer.load(args.checkpoint, device="cpu", threads=1)
    rate = recognizer.sample_rate
    chunk = round(args.chunk_ms / 1000 * rate)
    timings = {
        row["id"]: row["words"] for row in map(json.loads, Path(args.alignments).read_text().splitlines())
    }
    utterances = read_manifest(args.manifest)[: args.limit]
    recognizer.stream().accept(np.zeros(chunk, np.float32))  # warm-up
    references, hypotheses, delays, computes, seconds = [], [], [], [], 0.0
    for utt in utterances:
        audio = load_audio(utt.audio_filepath, rate)
        text, emitted, spent = stream_one(recognizer, audio, chunk)
        references.append(utt.text)
        hypotheses.append(text)
        computes += spent
        seconds += len(audio) / rate
        starts = timings.get(Path(utt.audio_filepath).name.split(".")[0])
        if starts:
            delays += word_delays(text, emitted, utt.text, word_ends(audio, rate, utt.text, starts))
    model = recognizer.model
    dims = model.dims
    algorithmic = args.chunk_ms / 1000 + dims.lookahead * model.frame_shift_seconds + dims.n_fft / 2 / rate
    result = {
        "machine": platform.processor() or platform.machine(), "threads": 1, "chunk_ms": args.chunk_ms,
        "utterances": len(utterances), "audio_seconds": round(seconds, 1),
        "algorithmic_latency_ms": round(1000 * algorithmic, 1),
        "compute_per_chunk_ms_mean": round(1000 * statistics.mean(computes), 2),
        "compute_per_chunk_ms_p90": round(1000 * float(np.percentile(computes, 90)), 2),
        "rtf": round(sum(computes) / seconds, 4),
        "words_timed": len(delays),
        "word_delay_ms_median": round(1000 * statistics.median(delays), 1),
        "word_delay_ms_p90": round(1000 * float(np.percentile(delays, 90)), 1),
        "wer": round(jiwer.wer(references, hypotheses), 4),
        "checkpoint": args.checkpoint,
    }  # fmt: skip
    print(
        "| chunk | algorithmic latency | compute / chunk (mean, p90) | RTF | word delay median | p90 | WER |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    r = result
    print(
        f"| {args.chunk_ms:g} ms | {r['algorithmic_latency_ms']} ms | {r['compute_per_chunk_ms_mean']} / "
        f"{r['compute_per_chunk_ms_p90']} ms | {r['rtf']} | {r['word_delay_ms_median']} ms | "
        f"{r['word_delay_ms_p90']} ms | {100 * r['wer']:.1f}% |"
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
