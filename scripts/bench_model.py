"""Training-step throughput of the BiLSTM stack: our exact padded-batch BiLSTM vs torch's LSTM
over packed sequences (the usual way to keep padding out of the backward direction).

    python scripts/bench_model.py [--batch 16] [--seconds 4.5] [--repeats 5]

Prints a table and writes benchmarks/model_<device>.json. Both variants run in the same process,
interleaved, so the ratio is meaningful on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr.models.conv_bilstm import BiLSTM


class PackedBiLSTM(torch.nn.Module):
    def __init__(self, input_size: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(input_size, hidden, layers, bidirectional=True, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=x.shape[1])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=4.5, help="longest utterance in the batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    input_size, hidden, layers, frames_per_second = 512, 256, 3, 25  # the `small` model after subsampling
    frames = int(args.seconds * frames_per_second)
    x = torch.randn(args.batch, frames, input_size, device=device, requires_grad=True)
    lengths = torch.randint(int(frames * 0.85), frames + 1, (args.batch,), device=device)
    lengths[0] = frames
    variants = {"exact padded (ours)": BiLSTM(input_size, hidden, layers, 0.0),
                "packed sequences": PackedBiLSTM(input_size, hidden, layers)}  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(args.repeats + 1):
        for name, module in variants.items():
            module.to(device)
            start = time.perf_counter()
            module(x, lengths).sum().backward()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if repeat:  # the first round is warm-up
                times[name].append(time.perf_counter() - start)
    audio_seconds = float(lengths.sum()) / frames_per_second
    rows = []
    baseline = statistics.median(times["packed sequences"])
    print(f"BiLSTM forward + backward, batch {args.batch}, {args.seconds}s max, {device.type}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print(f"{'variant':<22}{'median ms':>10}{'audio s/s':>11}{'speed-up':>10}")
    for name, samples in times.items():
        median = statistics.median(samples)
        rows.append({"variant": name, "median_s": median, "audio_seconds_per_second": audio_seconds / median,
                     "speedup_vs_packed": baseline / median})  # fmt: skip
        print(f"{name:<22}{median * 1e3:>10.1f}{audio_seconds / median:>11.0f}{baseline / median:>9.2f}x")
    output = Path("benchmarks") / f"model_{device.type}.json"
    output.parent.mkdir(exist_ok=True)
    output.write_text(
        json.dumps({"args": vars(args), "threads": torch.get_num_threads(), "results": rows}, indent=2)
    )
    print(f"-> {output}")


if __name__ == "__main__":
    main()
