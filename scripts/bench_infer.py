"""Inference speed: real-time factor of the eager model, TorchScript, ONNX and ONNX int8, on one
and two threads, side by side in one run (greedy decoding included, one file at a time).

    python scripts/bench_infer.py [--checkpoint runs/demo/checkpoints/best.pt] [--utterances 40]

Without a checkpoint, a freshly initialised `small` model (speed does not depend on the weights).
Audio: the built-in corpus's test split (made if missing). Writes benchmarks/infer_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from asr.audio import load_audio
from asr.checkpoint import model_payload, save_checkpoint
from asr.configs import configured_model
from asr.ctc.decoding import GreedyDecoder
from asr.data.manifest import read_manifest
from asr.data.synthetic import CorpusSpec, generate_corpus
from asr.export import ExportConfig, export
from asr.inference import load_any
from asr.text import CharTokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="default: a freshly initialised small model")
    parser.add_argument("--corpus", default="data/synthetic")
    parser.add_argument("--utterances", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    generate_corpus(Path(args.corpus), CorpusSpec())
    utterances = read_manifest(Path(args.corpus) / "manifests" / "test.jsonl")[: args.utterances]
    audio = [torch.from_numpy(load_audio(utt.audio_filepath, 16000)) for utt in utterances]
    seconds = sum(len(a) for a in audio) / 16000
    folder = Path(tempfile.mkdtemp(prefix="bench-infer-"))
    checkpoint = args.checkpoint
    if checkpoint is None:
        torch.manual_seed(0)
        checkpoint = folder / "small.pt"
        save_checkpoint(
            checkpoint, model_payload(configured_model("small", len(CharTokenizer())), CharTokenizer())
        )
    paths = {"eager": Path(checkpoint)}
    variants = [("torchscript", "torchscript", "none", ".ts"), ("onnx", "onnx", "none", ".onnx"),
                ("onnx int8", "onnx", "int8", ".onnx")]  # fmt: skip
    for name, fmt, quantize, suffix in variants:
        paths[name] = folder / f"{name.replace(' ', '_')}{suffix}"
        export(ExportConfig(str(checkpoint), fmt, str(paths[name]), quantize))

    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, path in paths.items():
            model, tokenizer = load_any(path, torch.device("cpu"), threads)
            decode = GreedyDecoder(tokenizer)
            best = float("inf")
            with torch.inference_mode():
                for _ in range(args.repeats + 1):  # the first round warms up
                    start = time.perf_counter()
                    for waveform in audio:
                        decode(*model(waveform[None], torch.tensor([len(waveform)])))
                    best = min(best, time.perf_counter() - start)
            rows.append({"variant": name, "threads": threads, "rtf": round(best / seconds, 5),
                         "size_mb": round(path.stat().st_size / 1e6, 1)})  # fmt: skip
    print(f"{len(audio)} utterances, {seconds:.0f} s of audio, one at a time, best of {args.repeats}")
    print(f"{'variant':<14}{'threads':>8}{'RTF':>10}{'x real time':>13}{'MB':>7}")
    for row in rows:
        speed = f"{1 / row['rtf']:>12.0f}x"
        print(f"{row['variant']:<14}{row['threads']:>8}{row['rtf']:>10.4f}{speed}{row['size_mb']:>7}")
    output = Path("benchmarks") / "infer_cpu.json"
    output.parent.mkdir(exist_ok=True)
    settings = {
        "checkpoint": str(args.checkpoint),
        "utterances": len(audio),
        "audio_seconds": round(seconds, 1),
    }
    output.write_text(json.dumps({"settings": settings, "results": rows}, indent=2) + "\n")
    print(f"-> {output}")


if __name__ == "__main__":
    main()
