"""Long recordings against single utterances: one long file made of the built-in corpus's test
utterances (speakers the model never heard), each followed by a pause of 0.2 to 1.0 s, recognised
as one file, against the same utterances recognised one by one.

    python scripts/bench_longform.py --checkpoint runs/demo/checkpoints/best.pt [--minutes 60]

The long file and its transcript go to ``runs/longform/`` (made once per manifest, length and
seed). Methods: ``windows``, the overlapping 30 s windows alone, and ``pauses``, those windows'
blank runs of ``--min-pauses`` seconds or more used to cut the file into utterance-like
segments, each cut ``--margins`` seconds around its emitted tokens, its ends quieter than
``--trims`` dB below its loudest trimmed off, and recognised alone (the default of
``asr-transcribe``); tune them on ``--manifest data/synthetic/manifests/dev.jsonl``. ``--pads``
measures what silence around single utterances costs the model, ``--single-trims`` what the trim
costs them. Prints a table, writes
``benchmarks/longform_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import jiwer
import numpy as np
import soundfile
import torch

from asr import Recognizer
from asr.audio import load_audio
from asr.data.manifest import read_manifest
from asr.recognizer import SEGMENT_MARGIN, SEGMENT_MIN_PAUSE, SEGMENT_TRIM_DB, trim_quiet_ends

ROOT = Path(__file__).resolve().parents[1]


def build_long_file(manifest: str, minutes: float, seed: int, folder: Path) -> tuple[Path, list[str]]:
    """The manifest's utterances in a shuffled order (cycling) with pauses, to ``minutes`` of audio."""
    stem = f"{Path(manifest).stem}_{minutes:g}min_seed{seed}"
    path, text_path = folder / f"{stem}.flac", folder / f"{stem}.json"
    if path.is_file() and text_path.is_file():
        return path, json.loads(text_path.read_text())["utterances"]
    utterances, draw = read_manifest(manifest), random.Random(seed)
    noise = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    chosen, total = [], 0.0
    with soundfile.SoundFile(path, "w", samplerate=16000, channels=1, format="FLAC") as out:
        while total < 60 * minutes:
            order = list(range(len(utterances)))
            draw.shuffle(order)
            for i in order:
                if total >= 60 * minutes:
                    break
                audio = load_audio(utterances[i].audio_filepath, 16000)
                pause = noise.normal(0, 1e-4, round(draw.uniform(0.2, 1.0) * 16000)).astype(np.float32)
                out.write(np.concatenate([audio, pause]))
                total += (len(audio) + len(pause)) / 16000
                chosen.append(str(utterances[i].audio_filepath))
    by_path = {str(utt.audio_filepath): utt.text for utt in utterances}
    text_path.write_text(json.dumps({"utterances": chosen, "texts": [by_path[p] for p in chosen]}))
    return path, chosen


def padded(pad: float, seed: int):
    """Each utterance with ``pad`` seconds of near-silence (the long file's pauses) before and after:
    how much surrounding silence costs the model."""
    noise = np.random.default_rng(seed)

    def alter(audio: np.ndarray, rate: int) -> np.ndarray:
        silence = [noise.normal(0, 1e-4, round(pad * rate)).astype(np.float32) for _ in range(2)]
        return np.concatenate([silence[0], audio, silence[1]])

    return alter


def trimmed(top_db: float):
    """Each utterance with its ends trimmed as the long file's pieces are (``trim_quiet_ends``):
    what the trim costs where there was no silence to remove."""
    return lambda audio, rate: trim_quiet_ends(audio, rate, top_db)[0]


def altered_texts(recognizer: Recognizer, paths: list[str], alter) -> list[str]:
    """Greedy transcripts of ``paths``, each utterance's audio passed through ``alter`` first."""
    rate = recognizer.sample_rate
    log_probs = recognizer.log_probs([alter(load_audio(path, rate), rate) for path in paths])
    return recognizer.decoder()(
        torch.nn.utils.rnn.pad_sequence(log_probs, batch_first=True),
        torch.tensor([len(x) for x in log_probs]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default="runs/demo/checkpoints/best.pt")
    parser.add_argument("--manifest", default="data/synthetic/manifests/test.jsonl")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pads", type=float, nargs="*", default=[],
        help="also each utterance alone with this many seconds of near-silence before and after",
    )  # fmt: skip
    parser.add_argument(
        "--single-trims", type=float, nargs="*", default=[],
        help="also each utterance alone with its ends trimmed at this many dB, as the pieces are",
    )  # fmt: skip
    parser.add_argument(
        "--margins", type=float, nargs="+", default=[SEGMENT_MARGIN],
        help="seconds of pause kept around each segment (transcribe's segment_margin); one row each",
    )  # fmt: skip
    parser.add_argument(
        "--min-pauses", type=float, nargs="+", default=[SEGMENT_MIN_PAUSE],
        help="shortest pause (seconds) the file is cut at (transcribe's segment_min_pause)",
    )  # fmt: skip
    parser.add_argument(
        "--trims", type=float, nargs="+", default=[SEGMENT_TRIM_DB],
        help="dB below its loudest at which each segment's ends are trimmed (segment_trim_db; 0: none)",
    )  # fmt: skip
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "longform_cpu.json"))
    args = parser.parse_args()
    if not Path(args.checkpoint).is_file():
        raise SystemExit(f"{args.checkpoint}: no such checkpoint (make demo trains one)")
    recognizer = Recognizer.load(args.checkpoint, device="cpu")
    long_file, sources = build_long_file(args.manifest, args.minutes, args.seed, ROOT / "runs" / "longform")
    by_path = {str(utt.audio_filepath): utt.text for utt in read_manifest(args.manifest)}
    references = [by_path[p] for p in sources]
    unique = sorted(set(sources))
    began = time.perf_counter()
    single = dict(zip(unique, (r.text for r in recognizer.transcribe(unique)), strict=True))
    rows = {"utterances": (jiwer.wer(references, [single[p] for p in sources]), time.perf_counter() - began)}
    alterations = [(f"utterances, {pad:g} s of silence around", padded(pad, args.seed)) for pad in args.pads]
    alterations += [(f"utterances, ends trimmed at {db:g} dB", trimmed(db)) for db in args.single_trims]
    for name, alter in alterations:
        began = time.perf_counter()
        texts = dict(zip(unique, altered_texts(recognizer, unique, alter), strict=True))
        rows[name] = (jiwer.wer(references, [texts[p] for p in sources]), time.perf_counter() - began)
    reference = " ".join(references)
    methods = [("windows", False, SEGMENT_MIN_PAUSE, SEGMENT_MARGIN, SEGMENT_TRIM_DB)] + [
        (f"pauses of {p:g} s or more, margin {m:g} s, trim {t:g} dB", True, p, m, t)
        for p in args.min_pauses
        for m in args.margins
        for t in args.trims
    ]
    for method, segment, pause, margin, trim in methods:
        began = time.perf_counter()
        (result,) = recognizer.transcribe(
            [long_file], segment=segment, segment_min_pause=pause, segment_margin=margin, segment_trim_db=trim
        )
        rows[method] = (jiwer.wer(reference, result.text), time.perf_counter() - began)
    hours = soundfile.info(long_file).duration / 3600
    print(f"{hours * 60:.1f} min of test speech: {len(sources)} utterances, {len(unique)} distinct")
    print("| recognised as | WER | seconds |")
    print("| --- | --- | --- |")
    for name, (wer, seconds) in rows.items():
        print(f"| {name} | {100 * wer:.2f}% | {seconds:.1f} |")
    result = {
        "checkpoint": args.checkpoint, "manifest": args.manifest, "minutes": round(hours * 60, 1),
        "utterances": len(sources), "threads": torch.get_num_threads(),
        "rows": [{"method": k, "wer": round(v[0], 4), "seconds": round(v[1], 1)} for k, v in rows.items()],
    }  # fmt: skip
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
