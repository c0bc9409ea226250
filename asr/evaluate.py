"""Greedy decoding of a manifest and its word / character error rates (``asr-eval``).

    asr-eval checkpoint=runs/demo/checkpoints/best.pt manifest=data/synthetic/manifests/test.jsonl \
        output=runs/demo/test.json
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jiwer
import torch
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from tqdm import tqdm

from asr.ctc import greedy_decode
from asr.data.dataset import SpeechDataset, collate
from asr.data.manifest import read_manifest
from asr.errors import UserError, exit_on_user_error
from asr.fileio import write_json, write_jsonl
from asr.models import DeepSpeech2
from asr.runtime import Device, resolve_device
from asr.text import CharTokenizer
from asr.train.checkpoint import load_model


def sorted_batches(durations: list[float], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar duration (less padding), longest first."""
    order = sorted(range(len(durations)), key=durations.__getitem__, reverse=True)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.no_grad()
def greedy_transcripts(
    model: DeepSpeech2, tokenizer: CharTokenizer, device: torch.device, lengths: Sequence[float],
    load: Callable[[int], torch.Tensor], batch_size: int = 16, progress: bool = False,
) -> list[str]:  # fmt: skip
    """Greedy transcripts of utterances ``0 .. len(lengths) - 1``, in that order.

    ``load(i)`` gives utterance i's audio ``(samples,)``; ``lengths`` (durations or sample counts)
    group utterances of similar length into batches, so there is little padding.
    """
    was_training = model.training
    model.eval()
    texts = [""] * len(lengths)
    no_target = torch.zeros(0, dtype=torch.long)
    batches = sorted_batches(lengths, batch_size)
    for indices in tqdm(batches, desc="decoding", unit="batch", disable=not progress, leave=False):
        batch = collate([(load(i), no_target) for i in indices]).to(device)
        log_probs, frames = model(batch.waveforms, batch.sample_lengths)
        for i, ids in zip(indices, greedy_decode(log_probs, frames, tokenizer.blank), strict=True):
            texts[i] = tokenizer.decode(ids)
    model.train(was_training)
    return texts


def transcribe_dataset(
    model: DeepSpeech2, dataset: SpeechDataset, tokenizer: CharTokenizer, device: torch.device,
    batch_size: int = 16, progress: bool = False,
) -> list[str]:  # fmt: skip
    """Greedy transcripts of every utterance, in dataset order."""
    load = lambda i: dataset[i][0]  # noqa: E731
    return greedy_transcripts(model, tokenizer, device, dataset.durations, load, batch_size, progress)


def error_rates(references: list[str], hypotheses: list[str]) -> dict[str, float]:
    words = jiwer.process_words(references, hypotheses)
    return {"wer": words.wer, "cer": jiwer.cer(references, hypotheses)}


def utterance_errors(reference: str, hypothesis: str) -> dict[str, int]:
    words = jiwer.process_words(reference, hypothesis)
    return {
        "words": len(reference.split()), "substitutions": words.substitutions,
        "deletions": words.deletions, "insertions": words.insertions,
    }  # fmt: skip


@dataclass
class EvalConfig:
    checkpoint: str = MISSING
    manifest: str = MISSING
    output: str = MISSING
    """Summary JSON; per-utterance results go beside it as ``<stem>.utterances.jsonl``."""
    batch_size: int = 16
    device: Device = Device.auto


def evaluate(cfg: EvalConfig) -> dict:
    device = resolve_device(cfg.device)
    model, tokenizer = load_model(cfg.checkpoint, device)
    dataset = SpeechDataset(read_manifest(cfg.manifest), tokenizer, model.dims.sample_rate)
    hypotheses = transcribe_dataset(model, dataset, tokenizer, device, cfg.batch_size, progress=True)
    summary = {
        **error_rates(dataset.texts, hypotheses),
        "num_utterances": len(dataset),
        "num_words": sum(len(text.split()) for text in dataset.texts),
        "checkpoint": str(cfg.checkpoint),
        "manifest": str(cfg.manifest),
    }
    output = Path(cfg.output)
    rows = (
        {"audio_filepath": str(utt.audio_filepath), "ref": ref, "hyp": hyp, **utterance_errors(ref, hyp)}
        for utt, ref, hyp in zip(dataset.utterances, dataset.texts, hypotheses, strict=True)
    )
    write_jsonl(output.with_name(f"{output.stem}.utterances.jsonl"), rows)
    write_json(output, summary)
    return summary


def parse_cli(schema: type, argv: list[str]):
    """``key=value`` arguments checked against a dataclass schema, with one-line errors."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(argv))
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise UserError(f"missing required argument(s): {', '.join(f'{key}=...' for key in missing)}")
        return cfg
    except OmegaConfBaseException as error:
        raise UserError(str(error).splitlines()[0]) from None


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    cfg = parse_cli(EvalConfig, sys.argv[1:] if argv is None else argv)
    summary = evaluate(cfg)
    print(
        f"WER {summary['wer']:.2%}  CER {summary['cer']:.2%}  on {summary['num_utterances']} utterances"
        f"  -> {cfg.output}"
    )


if __name__ == "__main__":
    main()
