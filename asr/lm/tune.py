"""``asr-tune-lm``: grid search of the LM weight (alpha) and word score (beta) on a dev manifest.

    asr-tune-lm checkpoint=runs/demo/checkpoints/best.pt manifest=data/synthetic/manifests/dev.jsonl \
        lm=data/synthetic/lm/3gram.arpa

The acoustic model runs once; each (alpha, beta) pair only decodes again. The best pair (lowest
dev WER) is written next to the checkpoint as ``<checkpoint>.lm.json``, where
``asr-eval decoder=beam_lm`` finds it, or to ``output=`` (then ``asr-eval tuned=``: e.g. one per
dev set).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import MISSING

from asr.ctc.decoding import BeamSearchDecoder, BeamSettings
from asr.data.dataset import SpeechDataset
from asr.data.manifest import read_manifest
from asr.errors import UserError, exit_on_user_error
from asr.evaluate import batched_log_probs, decode_batches, error_rates, parse_cli, tuned_lm_path
from asr.fileio import write_json
from asr.runtime import Device, resolve_device
from asr.train.checkpoint import load_model


@dataclass
class TuneConfig:
    checkpoint: str = MISSING
    manifest: str = MISSING
    lm: str = MISSING
    lm_weights: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0])
    word_scores: list[float] = field(default_factory=lambda: [-1.0, 0.0, 1.0, 2.0])
    beam_size: int = 50
    beam_threshold: float = 25.0
    batch_size: int = 16
    device: Device = Device.auto
    output: str | None = None
    """Where the chosen LM and weights go; default: ``<checkpoint>.lm.json``."""


def tune(cfg: TuneConfig) -> dict:
    if not cfg.lm_weights or not cfg.word_scores:
        raise UserError("lm_weights and word_scores need at least one value each")
    device = resolve_device(cfg.device)
    model, tokenizer = load_model(cfg.checkpoint, device)
    dataset = SpeechDataset(read_manifest(cfg.manifest), tokenizer, model.dims.sample_rate)
    load = lambda i: dataset[i][0]  # noqa: E731
    emissions = [
        (indices, log_probs.float().cpu(), frames.cpu())
        for indices, log_probs, frames in batched_log_probs(
            model, device, dataset.durations, load, cfg.batch_size, progress=True
        )
    ]
    grid = []
    for lm_weight in cfg.lm_weights:
        for word_score in cfg.word_scores:
            settings = BeamSettings(cfg.beam_size, cfg.beam_threshold, lm_weight, word_score)
            hypotheses = decode_batches(
                emissions, BeamSearchDecoder(tokenizer, cfg.lm, settings), len(dataset)
            )
            wer = error_rates(dataset.texts, hypotheses)["wer"]
            grid.append({"lm_weight": lm_weight, "word_score": word_score, "wer": wer})
            print(f"alpha {lm_weight:5.2f}  beta {word_score:5.2f}  dev WER {wer:.2%}", flush=True)
    best = min(grid, key=lambda row: row["wer"])
    result = {
        "lm": str(Path(cfg.lm).resolve()), "lm_weight": best["lm_weight"], "word_score": best["word_score"],
        "dev_wer": best["wer"], "manifest": str(cfg.manifest), "grid": grid,
    }  # fmt: skip
    write_json(cfg.output or tuned_lm_path(cfg.checkpoint), result)
    return result


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    cfg = parse_cli(TuneConfig, sys.argv[1:] if argv is None else argv)
    with torch.inference_mode():
        result = tune(cfg)
    print(
        f"best: alpha {result['lm_weight']}, beta {result['word_score']}: dev WER {result['dev_wer']:.2%}"
        f" -> {cfg.output or tuned_lm_path(cfg.checkpoint)}"
    )


if __name__ == "__main__":
    main()
