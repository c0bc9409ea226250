"""Greedy test WER of an FSDD run's fold models with their feature-statistics prior at several
weights (``model.stats_prior_seconds``), the same checkpoints each time: what the prior does,
measured without the run-to-run spread of training.

python recipes/fsdd/prior_sweep.py EXP --seconds 0 1 2 4 [--data data/fsdd] [--folds ...]
    -> a table with a row per weight: mean greedy test WER over the folds and each fold's
       (the fold models must have been trained with a prior, which keeps its statistics; each
       utterance is recognised with its own statistics and the prior, never its speaker's)
    --speaker: the prior's statistics are the held-out speaker's own (the average over the fold's
       test utterances, as per-speaker normalisation would have them) instead of the training
       utterances'; an upper bound for adapting to a speaker, not something the recipe does
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from asr.data.dataset import SpeechDataset
from asr.data.manifest import read_manifest
from asr.errors import UserError, exit_on_user_error
from asr.evaluate import error_rates, transcribe_dataset
from asr.recognizer import Recognizer
from asr.speakers import speaker_statistics

SPEAKERS = ["george", "jackson", "lucas", "yweweler"]


def fold_wers(exp: Path, data: Path, fold: str, seconds: list[float], speaker: bool) -> list[float]:
    recognizer = Recognizer.load(exp / fold / "checkpoints" / "best.pt", device="cpu")
    frontend, dims = recognizer.model.frontend, recognizer.model.dims
    if not hasattr(frontend, "prior_mean"):
        raise UserError(f"{exp / fold}: trained without model.stats_prior_seconds, so it has no prior")
    manifest = read_manifest(data / "folds" / fold / "test.jsonl")
    dataset = SpeechDataset(manifest, recognizer.tokenizer, recognizer.sample_rate)
    if speaker:  # the average of the test utterances' own statistics, as training keeps them
        means, variances = speaker_statistics(frontend, dataset, torch.device("cpu"))
        frontend.prior_mean[:], frontend.prior_variance[:] = means.mean(0), variances.mean(0)
    wers = []
    for weight in seconds:
        frontend.prior_frames = weight * dims.sample_rate / dims.hop_length
        hypotheses = transcribe_dataset(recognizer, dataset, recognizer.decoder("greedy"))
        wers.append(error_rates(dataset.texts, hypotheses)["wer"])
    return wers


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exp", type=Path)
    parser.add_argument("--seconds", type=float, nargs="+", required=True)
    parser.add_argument("--data", type=Path, default=Path("data/fsdd"))
    parser.add_argument("--folds", nargs="+", default=SPEAKERS)
    parser.add_argument("--speaker", action="store_true", help="the held-out speaker's own statistics")
    args = parser.parse_args()
    by_fold = {fold: fold_wers(args.exp, args.data, fold, args.seconds, args.speaker) for fold in args.folds}
    print("| prior (seconds) | mean test WER (greedy) | " + " | ".join(args.folds) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in args.folds) + " |")
    for i, weight in enumerate(args.seconds):
        wers = [by_fold[fold][i] for fold in args.folds]
        cells = " | ".join(f"{100 * w:.1f}%" for w in wers)
        print(f"| {weight:g} | **{100 * statistics.fmean(wers):.1f}%** | {cells} |")


if __name__ == "__main__":
    main()
