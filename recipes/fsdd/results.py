"""Tables of FSDD leave-one-speaker-out runs, from their run directories.

python recipes/fsdd/results.py EXP[@TAG] [--folds george jackson lucas yweweler]
    -> EXP/RESULTS.md (EXP/RESULTS_TAG.md): each fold (test WER / CER greedy, the share of greedy
       word errors that are not digit words, WER with the digit LM, dev WER, steps, minutes) and
       the mean
python recipes/fsdd/results.py --ablation NAME=EXP [NAME=EXP ...] [--output FILE]
    -> a table with a row per experiment: mean greedy test WER over the folds (and each
       fold's), mean WER with the LM where evaluated, training minutes per fold; EXP@TAG reads
       the evaluations written as test_greedy_TAG.json and test_beam_lm_TAG.json (the same
       checkpoints recognised another way)
python recipes/fsdd/results.py --by-length NAME=EXP [NAME=EXP ...]
    -> greedy test WER by the number of digits in the utterance, over the folds' test sets
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

SPEAKERS = ["george", "jackson", "lucas", "yweweler"]


def split_tag(exp: str | Path) -> tuple[Path, str]:
    """``EXP@TAG`` to ``(EXP, "_TAG")``, the suffix of its evaluations' and table's names;
    ``EXP`` to ``(EXP, "")``."""
    path, _, tag = str(exp).partition("@")
    return Path(path), f"_{tag}" if tag else ""


def fold_summary(run: Path, suffix: str = "") -> dict:
    """What one fold's run directory says: test results (``test_<decoder><suffix>.json``), best dev
    WER, steps and minutes trained."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    summary = {
        "dev_wer": min((row["dev/wer"] for row in rows if "dev/wer" in row), default=float("nan")),
        "steps": max(row["step"] for row in rows),
        "minutes": float("nan"),
    }
    last = run / "checkpoints" / "last.pt"
    if last.is_file():
        import torch

        state = torch.load(last, weights_only=True)["train_state"]
        summary["minutes"] = state.get("elapsed", float("nan")) / 60
    for decoder in ("greedy", "beam_lm"):
        path = run / f"test_{decoder}{suffix}.json"
        if path.is_file():
            result = json.loads(path.read_text())
            summary[decoder] = {
                "wer": result["wer"],
                "cer": result["cer"],
                "utterances": result["num_utterances"],
            }
    utterances = run / f"test_greedy{suffix}.utterances.jsonl"
    if utterances.is_file() and "greedy" in summary:
        summary["greedy"]["non_words"] = non_word_share(utterances)
    return summary


def non_word_share(path: Path) -> float:
    """Of the greedy word errors in ``path`` (``asr-eval``'s per-utterance lines), the share that
    put a word in the transcript that no reference has (a misspelt digit)."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    vocabulary = {word for row in rows for word in row["ref"].split()}
    errors = sum(row["substitutions"] + row["deletions"] + row["insertions"] for row in rows)
    non_words = sum(word not in vocabulary for row in rows for word in row["hyp"].split())
    return non_words / errors if errors else 0.0


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def fold_table(exp: Path, folds: list[str], suffix: str = "") -> str:
    summaries = {fold: fold_summary(exp / fold, suffix) for fold in folds}

    def result(summary: dict, decoder: str, key: str) -> float | None:
        return summary.get(decoder, {}).get(key)

    def mean(decoder: str, key: str) -> float | None:
        values = [result(s, decoder, key) for s in summaries.values()]
        return None if None in values else statistics.fmean(values)

    lines = [
        "| held-out speaker | test WER greedy | CER greedy | errors that are non-words | WER + digit LM "
        "| dev WER (seen speakers) | steps | minutes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for fold, s in summaries.items():
        lines.append(
            f"| {fold} | {percent(result(s, 'greedy', 'wer'))} | {percent(result(s, 'greedy', 'cer'))} | "
            f"{percent(result(s, 'greedy', 'non_words'))} | {percent(result(s, 'beam_lm', 'wer'))} | "
            f"{percent(s['dev_wer'])} | {s['steps']} | {s['minutes']:.1f} |"
        )
    dev = statistics.fmean(s["dev_wer"] for s in summaries.values())
    lines.append(
        f"| **mean** | **{percent(mean('greedy', 'wer'))}** | {percent(mean('greedy', 'cer'))} | "
        f"{percent(mean('greedy', 'non_words'))} | **{percent(mean('beam_lm', 'wer'))}** | "
        f"{percent(dev)} | | |"
    )
    return "\n".join(lines) + "\n"


def ablation_table(experiments: dict[str, Path], folds: list[str]) -> str:
    lines = [
        "| experiment | mean test WER (greedy) | " + " | ".join(folds) + " | + digit LM | minutes per fold |",
        "| --- | --- | " + " | ".join("---" for _ in folds) + " | --- | --- |",
    ]
    for name, exp in experiments.items():
        exp, suffix = split_tag(exp)
        summaries = [fold_summary(exp / fold, suffix) for fold in folds]
        greedy = [s.get("greedy", {}).get("wer") for s in summaries]  # None: a fold still running
        with_lm = [s["beam_lm"]["wer"] for s in summaries if "beam_lm" in s]
        lines.append(
            f"| {name} | **{percent(None if None in greedy else statistics.fmean(greedy))}** | "
            + " | ".join(percent(w) for w in greedy)
            + f" | {percent(statistics.fmean(with_lm)) if len(with_lm) == len(folds) else '–'}"
            + f" | {statistics.fmean(s['minutes'] for s in summaries):.1f} |"
        )
    return "\n".join(lines) + "\n"


def length_table(experiments: dict[str, Path], folds: list[str]) -> str:
    """Greedy test WER of the utterances of 1, 2, 3 and 4 to 7 digits, pooled over ``folds``."""
    groups = ["1", "2", "3", "4-7"]
    lines = [
        "| experiment | " + " | ".join(f"{g} digits" for g in groups) + " |",
        "| --- | " + " | ".join("---" for _ in groups) + " |",
    ]
    for name, exp in experiments.items():
        words, errors = dict.fromkeys(groups, 0), dict.fromkeys(groups, 0)
        for fold in folds:
            for line in (exp / fold / "test_greedy.utterances.jsonl").read_text().splitlines():
                row = json.loads(line)
                group = groups[min(row["words"], 4) - 1]
                words[group] += row["words"]
                errors[group] += row["substitutions"] + row["deletions"] + row["insertions"]
        rates = [errors[g] / words[g] if words[g] else None for g in groups]
        lines.append(f"| {name} | " + " | ".join(percent(rate) for rate in rates) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exp", nargs="?", help="EXP, or EXP@TAG for the test_<decoder>_TAG.json")
    parser.add_argument("--folds", nargs="+", default=SPEAKERS)
    parser.add_argument("--ablation", nargs="+", metavar="NAME=EXP")
    parser.add_argument("--by-length", nargs="+", metavar="NAME=EXP")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.ablation or args.by_length:
        experiments = {
            name: Path(exp) for name, exp in (item.split("=", 1) for item in args.ablation or args.by_length)
        }
        tabulate = ablation_table if args.ablation else length_table
        table = tabulate(experiments, args.folds)
        print(table)
        if args.output:
            args.output.write_text(table)
        return
    exp, suffix = split_tag(args.exp)
    table = fold_table(exp, args.folds, suffix)
    output = args.output or exp / f"RESULTS{suffix}.md"
    output.write_text(f"# FSDD, leave one speaker out: {args.exp}\n\n{table}")
    print(table)


if __name__ == "__main__":
    main()
