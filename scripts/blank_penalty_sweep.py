"""Greedy WER of a checkpoint at each blank penalty that training tries (``asr.evaluate``'s grid),
on dev and test, the model run once per set; the penalty dev chooses is marked.

    python scripts/blank_penalty_sweep.py runs/demo_f32/checkpoints/best.pt
    python scripts/blank_penalty_sweep.py CHECKPOINT --dev DEV.jsonl --test TEST.jsonl
"""

from __future__ import annotations

import argparse

from asr import Recognizer, speakers
from asr.data.dataset import SpeechDataset
from asr.data.manifest import read_manifest
from asr.evaluate import tune_blank_penalty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--dev", default="data/synthetic/manifests/dev.jsonl")
    parser.add_argument("--test", default="data/synthetic/manifests/test.jsonl")
    args = parser.parse_args()
    recognizer = Recognizer.load(args.checkpoint, "cpu")
    wers = {}
    for name, manifest in (("dev", args.dev), ("test", args.test)):
        dataset = SpeechDataset(read_manifest(manifest), recognizer.tokenizer, recognizer.sample_rate)
        wers[name] = tune_blank_penalty(recognizer, dataset, speakers.for_recognizer(recognizer, dataset))
    chosen = wers["dev"][0]
    print(f"{args.checkpoint} (saved penalty {recognizer.blank_penalty:g})")
    print("| blank penalty | dev WER | test WER |\n| --- | --- | --- |")
    for penalty, dev_wer in wers["dev"][1].items():
        mark = " (dev's choice)" if penalty == chosen else ""
        print(f"| {penalty:g}{mark} | {dev_wer:.2%} | {wers['test'][1][penalty]:.2%} |")


if __name__ == "__main__":
    main()
