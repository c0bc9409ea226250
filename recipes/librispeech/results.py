"""EXP/RESULTS.md of recipes/librispeech/run.sh: test-clean and test-other, greedy and beam + LM.

python recipes/librispeech/results.py EXP
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def table(exp: Path) -> str:
    lines = [
        "| test set | WER greedy | CER greedy | WER beam + LM | LM weights (tuned on) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for split, dev in (("test-clean", "dev-clean"), ("test-other", "dev-other")):
        greedy = json.loads((exp / f"{split}_greedy.json").read_text())
        beam = json.loads((exp / f"{split}_beam_lm.json").read_text())
        lines.append(
            f"| {split} | {100 * greedy['wer']:.1f}% | {100 * greedy['cer']:.1f}% | {100 * beam['wer']:.1f}% "
            f"| alpha {beam['lm_weight']}, beta {beam['word_score']} ({dev}) |"
        )
    state = torch.load(exp / "checkpoints" / "last.pt", weights_only=True)["train_state"]
    minutes = state.get("elapsed", float("nan")) / 60
    lines.append(f"\nTraining: {state['step']} steps, {minutes:.1f} minutes; LM: `{beam['lm']}`.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exp", type=Path)
    args = parser.parse_args()
    text = table(args.exp)
    (args.exp / "RESULTS.md").write_text(f"# LibriSpeech: {args.exp}\n\n{text}")
    print(text)


if __name__ == "__main__":
    main()
