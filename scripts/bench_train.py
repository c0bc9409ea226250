"""Training throughput (audio seconds per second) and padding, with and without length bucketing,
with either CTC backend.

    python scripts/bench_train.py [--corpus data/synthetic] [--steps 20] [--precision auto] [--model small]

Three samplers over the same training manifest, each training the model (``small``) for ``--steps``
steps from the same initial weights (audio loading included), interleaved in one process so the
ratios hold on a noisy machine:
- random: shuffled batches of ``--batch`` utterances, no sorting (what a plain DataLoader does);
- bucketed: the same batch size, utterances sorted within windows of 50 batches;
- dynamic: bucketed, filled up to ``--batch`` x the mean duration of padded audio;
all with ``ctc=native``, and bucketed again with ``ctc=custom`` (the same batches: the two CTC rows
differ only by the loss). Padding is measured over a whole epoch; on a GPU, the peak memory of
each run too. Writes benchmarks/train_<device>.json (train_<device>_<model>.json for another model).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from asr.configs import configured_model
from asr.ctc import get_backend
from asr.data.dataset import SpeechDataset, collate
from asr.data.manifest import read_manifest
from asr.data.sampler import BucketBatchSampler
from asr.data.synthetic import CorpusSpec, generate_corpus
from asr.runtime import autocast
from asr.text import CharTokenizer


def padding_fraction(batches: list[list[int]], durations: list[float]) -> float:
    padded = sum(len(batch) * max(durations[i] for i in batch) for batch in batches)
    return 1 - sum(durations[i] for batch in batches for i in batch) / padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="data/synthetic", help="built-in corpus root (made if missing)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="small", help="a model preset (asr/configs/model)")
    parser.add_argument("--output", type=Path, help="default: benchmarks/train_<device>[_<model>].json")
    args = parser.parse_args()
    device = torch.device(args.device)
    generate_corpus(Path(args.corpus), CorpusSpec())
    tokenizer = CharTokenizer()
    dataset = SpeechDataset(read_manifest(Path(args.corpus) / "manifests" / "train.jsonl"), tokenizer, 16000)
    durations = dataset.durations
    mean = statistics.fmean(durations)
    samplers = {
        "random": BucketBatchSampler(durations, batch_size=args.batch, window_batches=1),
        "bucketed": BucketBatchSampler(durations, batch_size=args.batch),
        "dynamic": BucketBatchSampler(durations, max_batch_seconds=args.batch * mean),
    }
    vocab = len(tokenizer)
    torch.manual_seed(0)
    initial = configured_model(args.model, vocab).state_dict()
    runs = {"random": ("random", "native"), "bucketed": ("bucketed", "native"),
            "dynamic": ("dynamic", "native"), "bucketed, custom CTC": ("bucketed", "custom")}  # fmt: skip

    def train(batches: list[list[int]], loss_fn) -> tuple[float, float, int]:
        """Seconds, audio seconds and steps of training on ``batches`` (after one warm-up batch)."""
        model = configured_model(args.model, vocab).to(device)
        model.load_state_dict(initial)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        elapsed = audio = 0.0
        for step, indices in enumerate(batches):
            start = time.perf_counter()
            batch = collate([dataset[i] for i in indices]).to(device)
            with autocast(device, args.precision):
                log_probs, lengths = model(batch.waveforms, batch.sample_lengths)
            loss = loss_fn(log_probs.float().transpose(0, 1), batch.targets, lengths, batch.target_lengths)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if step:
                elapsed += time.perf_counter() - start
                audio += sum(durations[i] for i in indices)
        return elapsed, audio, max(0, len(batches) - 1)

    totals = {name: [0.0, 0.0, 0] for name in runs}
    peaks = dict.fromkeys(runs, 0.0)
    epochs = {name: sampler.rank_batches(0) for name, sampler in samplers.items()}
    for chunk in range(0, args.steps, 5):  # interleaved, 5 steps (+1 warm-up) at a time
        for name, (sampler, ctc) in runs.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            for i, value in enumerate(train(epochs[sampler][chunk : chunk + 6], get_backend(ctc))):
                totals[name][i] += value
            if device.type == "cuda":
                peaks[name] = max(peaks[name], torch.cuda.max_memory_allocated(device) / 2**30)
    rows = []
    for name, (sampler, ctc) in runs.items():
        elapsed, audio, steps = totals[name]
        batches = epochs[sampler]
        rows.append({
            "sampler": name, "ctc": ctc, "batches_per_epoch": len(batches),
            "mean_batch_size": round(len(durations) / len(batches), 1),
            "padding_fraction": round(padding_fraction(batches, durations), 4),
            "audio_seconds_per_second": round(audio / elapsed, 2),
            "steps_per_second": round(steps / elapsed, 2), "gpu_peak_gib": round(peaks[name], 2),
        })  # fmt: skip
    base = rows[0]["audio_seconds_per_second"]
    print(
        f"{len(durations)} utterances, mean {mean:.2f} s; model {args.model}, {args.steps} steps each, "
        f"{args.precision}, {device}"
    )
    header = ("batches/epoch", 15), ("mean batch", 12), ("padding", 10), ("audio s/s", 11), ("speed-up", 10)
    print(f"{'sampler':<21}" + "".join(f"{name:>{width}}" for name, width in header))
    for row in rows:
        print(f"{row['sampler']:<21}{row['batches_per_epoch']:>15}{row['mean_batch_size']:>12}"
              f"{row['padding_fraction']:>10.1%}{row['audio_seconds_per_second']:>11.1f}"
              f"{row['audio_seconds_per_second'] / base:>9.2f}x")  # fmt: skip
    suffix = "" if args.model == "small" else f"_{args.model}"
    output = args.output or Path("benchmarks") / f"train_{device.type}{suffix}.json"
    output.parent.mkdir(exist_ok=True)
    settings = {"model": args.model, "batch": args.batch, "steps": args.steps, "precision": args.precision,
                "device": str(device)}  # fmt: skip
    output.write_text(json.dumps({"settings": settings, "results": rows}, indent=2) + "\n")
    print(f"-> {output}")


if __name__ == "__main__":
    main()
