"""Which checkpoints to average: for a leave-one-speaker-out run that kept a checkpoint at every
evaluation (``recipes/fsdd/run.sh trainer.keep_best=25``), the greedy test WER of the average of
each rule's checkpoints, per fold and the mean.

    python recipes/fsdd/average_subsets.py runs/fsdd_k20 [--data data/fsdd_spk] [--folds george ...]
    python recipes/fsdd/average_subsets.py runs/fsdd_k20 --curve   # each checkpoint alone, by epoch

Rules: ``best N``, the N best by dev WER, ties to the earlier evaluation (what ``trainer.keep_best=N``
keeps, and ``averaged.pt`` averages); ``best N, ties later``; ``last N``, the last N evaluations.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from asr.checkpoint import average_checkpoints, save_checkpoint
from asr.data.fsdd import SPEAKERS
from asr.evaluate import EvalConfig, evaluate
from asr.train.checkpointer import best_first


def rules(evaluations: list[tuple[int, float]]) -> dict[str, list[int]]:
    """Each rule's steps, from ``(step, dev WER)`` of the evaluations whose checkpoint was kept."""
    earlier = [e["step"] for e in best_first([{"step": step, "wer": wer} for step, wer in evaluations])]
    later = [step for step, _ in sorted(evaluations, key=lambda e: (e[1], -e[0]))]
    last = sorted((step for step, _ in evaluations), reverse=True)
    chosen = {f"best {n}": earlier[:n] for n in (1, 3, 5, 8)}
    chosen |= {f"best {n}, ties later": later[:n] for n in (3, 5)}
    return chosen | {f"last {n}": last[:n] for n in (5, 10)}


def fold_rates(run: Path, test: Path, curve: bool = False) -> dict[str, float]:
    """Each rule's test WER for one fold; with ``curve``, each kept checkpoint's alone instead
    (named by its epoch: the evaluations are a training epoch apart)."""
    folder = run / "checkpoints"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    kept = {row["step"]: row["dev/wer"] for row in rows if "dev/wer" in row}
    kept = [(step, wer) for step, wer in kept.items() if (folder / f"best-step{step:07d}.pt").is_file()]
    chosen = {f"epoch {i + 1}": [step] for i, (step, _) in enumerate(sorted(kept))} if curve else rules(kept)
    rates = {}
    with tempfile.TemporaryDirectory() as scratch:
        model, output = Path(scratch) / "averaged.pt", Path(scratch) / "test.json"
        for name, steps in chosen.items():
            files = [folder / f"best-step{s:07d}.pt" for s in steps]
            if len(files) > 1:  # one checkpoint (a rule's first, --curve's every) is tested as it is
                save_checkpoint(model, average_checkpoints(files))
            tested = model if len(files) > 1 else files[0]
            config = EvalConfig(model=str(tested), manifest=str(test), output=str(output))
            rates[name] = evaluate(config)["wer"]
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exp", type=Path)
    parser.add_argument("--data", type=Path, default=Path("data/fsdd_spk"))
    parser.add_argument("--folds", nargs="+", default=SPEAKERS)
    parser.add_argument("--curve", action="store_true", help="each checkpoint alone, by epoch")
    args = parser.parse_args()
    tests = {fold: args.data / "folds" / fold / "test.jsonl" for fold in args.folds}
    table = {fold: fold_rates(args.exp / fold, test, args.curve) for fold, test in tests.items()}
    first = "checkpoint" if args.curve else "averaged"
    print(f"| {first} | mean test WER (greedy) | " + " | ".join(args.folds) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in args.folds) + " |")
    for name in table[args.folds[0]]:
        if not all(name in table[fold] for fold in args.folds):
            continue  # an epoch that not every fold reached
        rates = [table[fold][name] for fold in args.folds]
        cells = " | ".join(f"{100 * rate:.1f}%" for rate in rates)
        print(f"| {name} | **{100 * statistics.fmean(rates):.1f}%** | {cells} |")


if __name__ == "__main__":
    main()
