"""``asr-tune-lm``: grid search of the LM weight (alpha) and word score (beta) on a dev manifest.

    asr-tune-lm model=runs/demo/checkpoints/best.pt manifest=data/synthetic/manifests/dev.jsonl \
        lm=data/synthetic/lm/3gram.arpa

The acoustic model runs once; each (alpha, beta) pair only decodes again. The best pair (lowest
dev WER) is written next to the model as ``<model>.lm.json``, where
``asr-eval decoder=beam_lm`` finds it, or to ``output=`` (then ``asr-eval tuned=``: e.g. one per
dev set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import MISSING

from asr import speakers
from asr.cli import run_tool
from asr.data.dataset import SpeechDataset
from asr.data.manifest import read_manifest
from asr.errors import UserError
from asr.evaluate import error_rates, tuned_lm_path
from asr.fileio import write_json
from asr.recognizer import Recognizer, decode_batches
from asr.runtime import Device


@dataclass
class TuneConfig:
    model: str = MISSING
    """A checkpoint (``.pt``), or an ``asr-export`` artifact (``.onnx``, ``.ts``)."""
    manifest: str = MISSING
    lm: str = MISSING
    """An ARPA n-gram model (``.arpa`` or ``.arpa.gz``)."""
    lm_weights: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0])
    word_scores: list[float] = field(default_factory=lambda: [-1.0, 0.0, 1.0, 2.0])
    beam_size: int = 50
    beam_threshold: float = 25.0
    batch_size: int = 16
    device: Device = Device.auto
    threads: int | None = None
    """CPU threads for torch and onnxruntime; None: their defaults."""
    output: str | None = None
    """Where the chosen LM and weights go; default: ``<model>.lm.json``."""


def tune(cfg: TuneConfig) -> dict:
    if not cfg.lm_weights or not cfg.word_scores:
        raise UserError("lm_weights and word_scores need at least one value each")
    recognizer = Recognizer.load(cfg.model, cfg.device.value, cfg.threads)
    dataset = SpeechDataset(read_manifest(cfg.manifest), recognizer.tokenizer, recognizer.sample_rate)
    with torch.inference_mode():  # the acoustic model runs once; each pair of weights only decodes
        emissions = [
            (indices, log_probs.float().cpu(), frames.cpu())
            for indices, log_probs, frames in recognizer.batches(
                dataset.durations,
                lambda i: dataset[i][0],
                cfg.batch_size,
                progress=True,
                speaker=speakers.for_recognizer(recognizer, dataset),
            )  # fmt: skip
        ]
    grid = []
    for lm_weight in cfg.lm_weights:
        for word_score in cfg.word_scores:
            decoder = recognizer.decoder(
                "beam_lm", cfg.lm, lm_weight, word_score, cfg.beam_size, cfg.beam_threshold
            )
            wer = error_rates(dataset.texts, decode_batches(emissions, decoder, len(dataset)))["wer"]
            grid.append({"lm_weight": lm_weight, "word_score": word_score, "wer": wer})
            print(f"alpha {lm_weight:5.2f}  beta {word_score:5.2f}  dev WER {wer:.2%}", flush=True)
    best = min(grid, key=lambda row: row["wer"])
    result = {
        "lm": str(Path(cfg.lm).resolve()), "lm_weight": best["lm_weight"], "word_score": best["word_score"],
        "dev_wer": best["wer"], "manifest": str(cfg.manifest), "grid": grid,
    }  # fmt: skip
    output = cfg.output or tuned_lm_path(cfg.model)
    write_json(output, result)
    alpha, beta = result["lm_weight"], result["word_score"]
    print(f"best: alpha {alpha}, beta {beta}: dev WER {result['dev_wer']:.2%} -> {output}")
    return result


def main(argv: list[str] | None = None) -> None:
    run_tool("asr-tune-lm", TuneConfig, tune, argv)


if __name__ == "__main__":
    main()
