"""CTC loss: torch's native implementation vs our custom kernel (and cuDNN on a GPU), forward and
forward + backward, on soft and on peaky log-probs.

    python scripts/bench_ctc.py [--repeats 7] [--threads 2] [--device cpu|cuda] [--inputs soft peaky]
        [--profile]

Inputs: ``soft`` are log-softmaxed unit-scale random logits (an untrained model); ``peaky`` put
nearly all of each frame's mass on one token along a random alignment of the target, one frame in
ten on a wrong token (a trained model: where a probability-space kernel loses the paths). Before
timing, every backend's losses and gradients are checked against torch's CTC in float64 on the same
inputs: the table's error columns are the largest relative loss error and absolute gradient error.
Each backend runs interleaved in one process (median of the repeats after a warm-up), so the
speed-up is a ratio measured under the same load. Peak memory is what one forward + backward needs
beyond its inputs: on the CPU the rise of the peak resident set, in a fresh child process per
backend and shape; on CUDA torch's peak allocation, in this process. Prints a table and writes
benchmarks/ctc_<device>.json; ``--profile`` then prints each backend's top kernels (CUDA) or
operators (CPU) on the first shape, from torch's profiler.
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
INPUTS = ("soft", "peaky")


def make_inputs(batch: int, frames: int, vocab: int, target: int, device: str, inputs: str = "soft", seed=0):
    """Log-probs, padded targets and lengths; on CUDA every input is ``frames`` long, as cuDNN
    requires, so that all three backends time the same inputs (on the CPU half are padded)."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(frames, batch, vocab, generator=generator)
    targets = torch.randint(1, vocab, (batch, target), generator=generator)
    input_lengths = torch.full((batch,), frames, dtype=torch.long)
    if device != "cuda":
        input_lengths[1::2] = frames - frames // 10  # some padded frames
    target_lengths = torch.full((batch,), target, dtype=torch.long)
    target_lengths[1::2] = target - target // 10
    if inputs == "peaky":
        for b in range(batch):
            path = alignment(targets[b, : target_lengths[b]], int(input_lengths[b]), generator)
            wrong = torch.rand(len(path), generator=generator) < 0.1
            path = torch.where(wrong, torch.randint(vocab, (len(path),), generator=generator), path)
            logits[torch.arange(len(path)), b, path] += 30.0
    log_probs = logits.log_softmax(-1).to(device).requires_grad_()
    return log_probs, targets.to(device), input_lengths.to(device), target_lengths.to(device)


def alignment(target: torch.Tensor, frames: int, generator: torch.Generator) -> torch.Tensor:
    """Frame tokens that collapse to ``target``: blank (0) before each label and at the end, every
    unit stretched over a random share of the frames."""
    units = torch.zeros(2 * len(target) + 1, dtype=torch.long)
    units[1::2] = target
    extra = torch.randint(len(units), (frames - len(units),), generator=generator)
    return torch.repeat_interleave(units, 1 + torch.bincount(extra, minlength=len(units)))


def cudnn_ctc_loss(log_probs, targets, input_lengths, target_lengths, reduction="mean", zero_infinity=False):
    """torch's CTC through cuDNN: int32 targets concatenated on the CPU, lengths as integers, blank
    0, every input length equal to the frames, targets shorter than 256 (else torch silently runs
    its own kernel instead: refused here)."""
    flat = torch.cat([t[:n] for t, n in zip(targets.cpu(), target_lengths.cpu(), strict=True)]).int()
    frames, lengths = input_lengths.tolist(), target_lengths.tolist()
    if not torch._use_cudnn_ctc_loss(log_probs, flat, frames, lengths, 0):
        raise RuntimeError("cuDNN's CTC does not take these inputs")
    return torch.nn.functional.ctc_loss(
        log_probs, flat, frames, lengths, reduction=reduction, zero_infinity=zero_infinity
    )


def loss_fn(backend: str):
    return cudnn_ctc_loss if backend == "cudnn" else get_backend(backend)


def run_once(backend: str, inputs, backward: bool, device: str) -> float:
    """Seconds for the loss, and its gradient if ``backward`` (else on inputs that need none)."""
    log_probs = inputs[0] if backward else inputs[0].detach()
    start = time.perf_counter()
    loss = loss_fn(backend)(log_probs, *inputs[1:], reduction="mean", zero_infinity=True)
    if backward:
        (grad,) = torch.autograd.grad(loss, log_probs)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def errors(backend: str, inputs) -> tuple[float, float]:
    """Largest relative loss error and absolute gradient error against torch's CTC in float64."""
    log_probs, *rest = inputs
    results = []
    for name, x in (("native", log_probs.detach().double().cpu()), (backend, log_probs.detach())):
        x.requires_grad_()
        args = [r.cpu() for r in rest] if name == "native" else rest
        losses = loss_fn(name)(x, *args, reduction="none", zero_infinity=True)
        (grad,) = torch.autograd.grad(losses.sum(), x)
        results.append((losses.detach().double().cpu(), grad.double().cpu()))
    (reference, reference_grad), (losses, grad) = results
    loss_error = ((losses - reference).abs() / reference.abs().clamp(min=1e-6)).max().item()
    return loss_error, (grad - reference_grad).abs().max().item()


def cuda_peak_bytes(backend: str, data) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    run_once(backend, data, True, "cuda")
    return torch.cuda.max_memory_allocated() - before


def peak_memory_child(backend: str, shape: tuple[int, ...], device: str, inputs: str) -> None:
    """Print the memory one forward + backward needed beyond its inputs, in bytes (CPU)."""
    data = make_inputs(*shape, device, inputs)
    run_once(backend, make_inputs(2, 20, shape[2], 5, device), True, device)  # load libraries, build once

    def status(field: str) -> int:
        line = next(
            line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field)
        )
        return int(line.split()[1]) * 1024

    before = status("VmRSS:")
    run_once(backend, data, True, device)
    print(max(0, status("VmHWM:") - before))


def profile(backends: list[str], data, device: str) -> None:
    """Print where one forward + backward of each backend spends its time: the top kernels
    (CUDA) or operators (CPU) by self time, from torch's profiler, after a warm-up run."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    sort = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
    for backend in backends:
        run_once(backend, data, True, device)
        with torch.profiler.profile(activities=activities) as profiler:
            run_once(backend, data, True, device)
        print(f"profile of {backend}, one forward + backward:")
        print(profiler.key_averages().table(sort_by=sort, row_limit=8, max_name_column_width=60))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--inputs", nargs="+", default=list(INPUTS), choices=INPUTS)
    parser.add_argument("--output", type=Path, help="default: benchmarks/ctc_<device>.json")
    parser.add_argument("--profile", action="store_true", help="then profile each backend on the first shape")
    parser.add_argument(
        "--memory-child", nargs=6, metavar=("BACKEND", "INPUTS", "B", "T", "V", "L"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        backend, inputs, *shape = args.memory_child
        peak_memory_child(backend, tuple(map(int, shape)), args.device, inputs)
        return

    results = []
    names = ("native", "custom", "cudnn") if args.device == "cuda" else ("native", "custom")
    columns = " ".join(f"{name + ' ms':>10}" for name in names)
    header = f"{'inputs':<6} {'B':>3} {'T':>5} {'V':>5} {'L':>4} | {'pass':<7}| {columns} {'speed-up':>9}"
    print(f"CTC loss on {args.device}, {args.threads} threads, median of {args.repeats}")
    print(f"{header}\n{'-' * len(header)}")
    for inputs in args.inputs:
        for shape in SHAPES:
            data = make_inputs(*shape, args.device, inputs)
            backends = ["native", "custom"]
            if args.device == "cuda" and shape[3] < 256:  # cuDNN takes targets shorter than 256
                backends.append("cudnn")
            row = {"inputs": inputs, **dict(zip(("batch", "frames", "vocab", "target"), shape, strict=True))}
            for backend in backends:
                row[f"{backend}_loss_error"], row[f"{backend}_grad_error"] = errors(backend, data)
            for backward in (False, True):
                times: dict[str, list[float]] = {backend: [] for backend in backends}
                for repeat in range(args.repeats + 1):
                    for backend in backends:
                        elapsed = run_once(backend, data, backward, args.device)
                        if repeat:  # the first round is warm-up
                            times[backend].append(elapsed)
                medians = {backend: statistics.median(times[backend]) for backend in backends}
                name = "fwd+bwd" if backward else "fwd"
                row[name] = {f"{b}_ms": 1e3 * m for b, m in medians.items()}
                row[name]["speedup"] = medians["native"] / medians["custom"]
                timings = " ".join(f"{1e3 * medians[b]:>10.2f}" for b in backends)
                print(
                    f"{inputs:<6} {shape[0]:>3} {shape[1]:>5} {shape[2]:>5} {shape[3]:>4} | {name:<7}| "
                    f"{timings} {row[name]['speedup']:>8.1f}x"
                )
            for backend in ("native", "custom"):
                if args.device == "cuda":
                    row[f"{backend}_peak_mb"] = cuda_peak_bytes(backend, data) / 2**20
                    continue
                child = subprocess.run(
                    [sys.executable, __file__, "--device", args.device, "--threads", str(args.threads),
                     "--memory-child", backend, inputs, *map(str, shape)], capture_output=True, text=True,
                    check=True,
                )  # fmt: skip
                row[f"{backend}_peak_mb"] = int(child.stdout.strip()) / 2**20
            print(
                f"{'':>27}| peak MB | {row['native_peak_mb']:>10.1f} {row['custom_peak_mb']:>10.1f}   "
                + "  ".join(
                    f"{b} error: loss {row[f'{b}_loss_error']:.1e} grad {row[f'{b}_grad_error']:.1e}"
                    for b in backends
                )  # fmt: skip
            )
            results.append(row)
    if args.profile:
        profile(list(names), make_inputs(*SHAPES[0], args.device, args.inputs[0]), args.device)
    output = args.output or Path("benchmarks") / f"ctc_{args.device}.json"
    output.parent.mkdir(exist_ok=True)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    report = {"device": device_name, "threads": args.threads, "repeats": args.repeats,
              "torch": torch.__version__, "results": results}  # fmt: skip
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {output}")


if __name__ == "__main__":
    main()
