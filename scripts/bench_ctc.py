"""CTC loss: torch's native implementation vs our custom kernel, forward and forward + backward.

    python scripts/bench_ctc.py [--repeats 7] [--threads 2] [--device cpu|cuda]

For each shape, both backends run interleaved in one process (median of the repeats after a
warm-up), so the speed-up is a ratio measured under the same load. Peak memory is measured in a
fresh child process per backend and shape: the rise of the peak resident set (CPU) or of
torch's peak allocation (CUDA) during one forward + backward. Prints a table and writes
benchmarks/ctc_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from asr.ctc import get_backend

SHAPES = [  # (batch, frames, vocab, target length)
    (32, 800, 29, 200),
    (8, 1500, 29, 400),
    (16, 400, 1000, 60),
    (32, 200, 29, 50),
    (4, 3000, 29, 600),
]
BACKENDS = ("native", "custom")


def make_inputs(batch: int, frames: int, vocab: int, target: int, device: str, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(frames, batch, vocab, generator=generator)
    log_probs = logits.log_softmax(-1).to(device).requires_grad_()
    targets = torch.randint(1, vocab, (batch, target), generator=generator).to(device)
    input_lengths = torch.full((batch,), frames, dtype=torch.long)
    input_lengths[1::2] = frames - frames // 10  # some padded frames
    target_lengths = torch.full((batch,), target, dtype=torch.long)
    target_lengths[1::2] = target - target // 10
    return log_probs, targets, input_lengths.to(device), target_lengths.to(device)


def run_once(backend: str, inputs, backward: bool, device: str) -> float:
    log_probs = inputs[0]
    start = time.perf_counter()
    loss = get_backend(backend)(*inputs, reduction="mean", zero_infinity=True)
    if backward:
        (grad,) = torch.autograd.grad(loss, log_probs)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def peak_memory_child(backend: str, shape: tuple[int, ...], device: str) -> None:
    """Print the memory one forward + backward needed beyond its inputs, in bytes."""
    inputs = make_inputs(*shape, device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        run_once(backend, inputs, True, device)
        print(torch.cuda.max_memory_allocated() - before)
        return
    run_once(backend, make_inputs(2, 20, shape[2], 5, device), True, device)  # load libraries, build once

    def status(field: str) -> int:
        line = next(
            line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field)
        )
        return int(line.split()[1]) * 1024

    before = status("VmRSS:")
    run_once(backend, inputs, True, device)
    print(max(0, status("VmHWM:") - before))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--memory-child", nargs=5, metavar=("BACKEND", "B", "T", "V", "L"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        backend, *shape = args.memory_child
        peak_memory_child(backend, tuple(map(int, shape)), args.device)
        return

    results = []
    columns = f"{'native ms':>10} {'custom ms':>10} {'speed-up':>9}"
    header = f"{'B':>3} {'T':>5} {'V':>5} {'L':>4} | {'pass':<7}| {columns}"
    print(f"CTC loss on {args.device}, {args.threads} threads, median of {args.repeats}")
    print(f"{header}\n{'-' * len(header)}")
    for shape in SHAPES:
        inputs = make_inputs(*shape, args.device)
        row = {"batch": shape[0], "frames": shape[1], "vocab": shape[2], "target": shape[3]}
        for backward in (False, True):
            times: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
            for repeat in range(args.repeats + 1):
                for backend in BACKENDS:
                    elapsed = run_once(backend, inputs, backward, args.device)
                    if repeat:  # the first round is warm-up
                        times[backend].append(elapsed)
            medians = {backend: statistics.median(times[backend]) for backend in BACKENDS}
            name = "fwd+bwd" if backward else "fwd"
            row[name] = {f"{b}_ms": 1e3 * m for b, m in medians.items()}
            row[name]["speedup"] = medians["native"] / medians["custom"]
            native_ms, custom_ms = 1e3 * medians["native"], 1e3 * medians["custom"]
            print(
                f"{shape[0]:>3} {shape[1]:>5} {shape[2]:>5} {shape[3]:>4} | {name:<7}| "
                f"{native_ms:>10.2f} {custom_ms:>10.2f} {row[name]['speedup']:>8.1f}x"
            )
        for backend in BACKENDS:
            child = subprocess.run(
                [sys.executable, __file__, "--device", args.device, "--threads", str(args.threads),
                 "--memory-child", backend, *map(str, shape)], capture_output=True, text=True, check=True,
            )  # fmt: skip
            row[f"{backend}_peak_mb"] = int(child.stdout.strip()) / 2**20
        print(f"{'':>20}| peak MB | {row['native_peak_mb']:>10.1f} {row['custom_peak_mb']:>10.1f}")
        results.append(row)
    output = Path("benchmarks") / f"ctc_{args.device}.json"
    output.parent.mkdir(exist_ok=True)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    report = {"device": device_name, "threads": args.threads, "repeats": args.repeats,
              "torch": torch.__version__, "results": results}  # fmt: skip
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {output}")


if __name__ == "__main__":
    main()
