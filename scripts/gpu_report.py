"""The figures of ``scripts/gpu_check.sh``, read from what its steps wrote: prints them and writes
``<out>/gpu_<device>.json``.

    python scripts/gpu_report.py --device cuda --out runs/gpu_check --run runs/gpu_check_train \\
        --eval runs/gpu_check_logs/eval.json --triton runs/gpu_check_logs/triton.log [--failed STEP...]

- Triton: the last line of the kernel tests' pytest run.
- CTC: per input kind and shape, fwd+bwd milliseconds of each backend, custom's speed-up over
  native and cuDNN, and the largest errors against float64 (``ctc_<device>.json``).
- Training: ``bench_train``'s audio seconds per second, steps/s and peak memory per CTC backend
  (``train_<device>.json``), the resumed torchrun run's own speed (its ``metrics.jsonl``), and the
  hours one epoch of LibriSpeech 960 h and 100 h would take at that speed on one device (an
  estimate: LibriSpeech's utterances are longer than the built-in corpus's, which changes padding
  and the LSTM's cost per second).
- Resume: every step's loss logged exactly once after the kill and rerun, and how far the rerun's
  losses are from the killed run's on the steps both computed (bitwise equality is not expected
  with cuDNN).
- Inference: ``asr-eval``'s WER and real-time factor.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

LIBRISPEECH_HOURS = {"960h": 960.0, "100h": 100.6}


def rows(path: Path) -> list[dict]:
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    )


def ctc_figures(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    figures = []
    for row in json.loads(path.read_text())["results"]:
        timed = row["fwd+bwd"]
        figure = {key: row[key] for key in ("inputs", "batch", "frames", "vocab", "target")}
        figure.update({key: round(value, 3) for key, value in timed.items() if key.endswith("_ms")})
        figure["custom_vs_native"] = round(timed["native_ms"] / timed["custom_ms"], 2)
        if "cudnn_ms" in timed:
            figure["custom_vs_cudnn"] = round(timed["cudnn_ms"] / timed["custom_ms"], 2)
        figure["custom_loss_error"] = row["custom_loss_error"]
        figure["custom_grad_error"] = row["custom_grad_error"]
        figures.append(figure)
    return figures


def resume_figures(run: Path) -> dict:
    """Steps logged once, in order, and the loss difference on the steps that the rerun computed
    again (those after the checkpoint it resumed from, up to the kill)."""
    log = run / "train.log"
    resumed = re.findall(r"resuming from .* at step (\d+)", log.read_text()) if log.is_file() else []
    after = int(resumed[-1]) if resumed else None
    killed = {
        row["step"]: row["train/loss"] for row in rows(run / "metrics.killed.jsonl") if "train/loss" in row
    }
    final = [row for row in rows(run / "metrics.jsonl") if "train/loss" in row]
    steps = [row["step"] for row in final]
    repeated = [row for row in final if row["step"] in killed and after is not None and row["step"] > after]
    differences = [abs(row["train/loss"] - killed[row["step"]]) for row in repeated]
    return {
        "resumed_after_step": after,
        "steps_killed_run": len(killed),
        "steps_final": len(steps),
        "each_step_once": steps == list(range(1, len(steps) + 1)),
        "steps_compared": len(repeated),
        "max_loss_difference": max(differences, default=None),
    }


def speed_figures(run: Path) -> dict:
    speeds = [row for row in rows(run / "metrics.jsonl") if "train/audio_seconds_per_second" in row]
    if not speeds:
        return {}
    speed = {key.removeprefix("train/"): value for key, value in speeds[-1].items()}
    audio = speed["audio_seconds_per_second"]
    # hours of audio over audio seconds per second: hours of training
    speed["librispeech_hours_per_epoch"] = {
        name: round(hours / audio, 2) for name, hours in LIBRISPEECH_HOURS.items()
    }
    return speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--run", type=Path, required=True, help="the torchrun run directory")
    parser.add_argument("--eval", type=Path, required=True, help="asr-eval's summary")
    parser.add_argument("--triton", type=Path, required=True, help="the Triton tests' log")
    parser.add_argument("--failed", nargs="*", default=[], help="steps that failed")
    args = parser.parse_args()

    lines = args.triton.read_text().splitlines() if args.triton.is_file() else []
    train_bench = args.out / f"train_{args.device}.json"
    evaluation = json.loads(args.eval.read_text()) if args.eval.is_file() else {}
    report = {
        "device": args.device,
        "failed_steps": args.failed,
        "triton_tests": lines[-1].strip("= ") if lines else None,
        "ctc": ctc_figures(args.out / f"ctc_{args.device}.json"),
        "train_bench": json.loads(train_bench.read_text()) if train_bench.is_file() else None,
        "torchrun": speed_figures(args.run),
        "resume": resume_figures(args.run),
        "eval": {key: evaluation.get(key) for key in ("wer", "cer", "rtf", "num_utterances", "model")},
    }
    output = args.out / f"gpu_{args.device}.json"
    output.write_text(json.dumps(report, indent=2) + "\n")

    print(f"\nGPU check on {args.device}: failed steps: {', '.join(args.failed) or 'none'}")
    print(f"Triton kernel tests: {report['triton_tests']}")
    columns = ("native ms", "custom ms", "cudnn ms", "vs native")
    print(f"{'CTC fwd+bwd':<28}" + "".join(f"{name:>10}" for name in columns) + f"{'vs cudnn':>9}")
    for f in report["ctc"]:
        shape = f"{f['inputs']} B{f['batch']} T{f['frames']} V{f['vocab']} L{f['target']}"
        cudnn = f"{f['cudnn_ms']:>10.2f}" if "cudnn_ms" in f else f"{'-':>10}"
        versus = f"{f['custom_vs_cudnn']:>8.2f}x" if "custom_vs_cudnn" in f else f"{'-':>9}"
        print(
            f"{shape:<28}{f['native_ms']:>10.2f}{f['custom_ms']:>10.2f}{cudnn}{f['custom_vs_native']:>9.2f}x{versus}"
        )
    for row in (report["train_bench"] or {}).get("results", []):
        print(f"train bench, {row['sampler']:<21} {row['audio_seconds_per_second']:>9.1f} audio s/s, "
              f"{row['steps_per_second']:.2f} steps/s, GPU peak {row['gpu_peak_gib']:.2f} GiB")  # fmt: skip
    print(f"torchrun run: {json.dumps(report['torchrun'])}")
    print(f"resume: {json.dumps(report['resume'])}")
    print(f"eval: {json.dumps(report['eval'])}")
    print(f"-> {output}")


if __name__ == "__main__":
    main()
