"""Greedy decoding of a manifest and its word / character error rates (``asr-eval``).

    asr-eval checkpoint=runs/demo/checkpoints/best.pt manifest=data/synthetic/manifests/test.jsonl \
        output=runs/demo/test.json
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

import jiwer
import torch
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from tqdm import tqdm

from asr.ctc.decoding import BeamSearchDecoder, BeamSettings, GreedyDecoder
from asr.data.dataset import SpeechDataset, collate
from asr.data.manifest import read_manifest
from asr.errors import UserError, exit_on_user_error
from asr.fileio import write_json, write_jsonl
from asr.inference import load_recognizer
from asr.models import DeepSpeech2
from asr.runtime import Device, resolve_device
from asr.text import Tokenizer


def sorted_batches(durations: list[float], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar duration (less padding), longest first."""
    order = sorted(range(len(durations)), key=durations.__getitem__, reverse=True)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


Decoder = Callable[[torch.Tensor, torch.Tensor], list[str]]
"""``(log_probs (batch, time, vocab), frames (batch,))`` to one text per utterance."""


@torch.no_grad()
def batched_log_probs(
    model: DeepSpeech2, device: torch.device, lengths: Sequence[float], load: Callable[[int], torch.Tensor],
    batch_size: int = 16, progress: bool = False,
) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:  # fmt: skip
    """``(indices, log_probs, frames)`` for batches of utterances ``0 .. len(lengths) - 1``.

    ``load(i)`` gives utterance i's audio ``(samples,)``; ``lengths`` (durations or sample counts)
    group utterances of similar length into batches, so there is little padding.
    """
    was_training = model.training
    model.eval()
    no_target = torch.zeros(0, dtype=torch.long)
    batches = sorted_batches(lengths, batch_size)
    try:
        for indices in tqdm(batches, desc="decoding", unit="batch", disable=not progress, leave=False):
            batch = collate([(load(i), no_target) for i in indices]).to(device)
            yield indices, *model(batch.waveforms, batch.sample_lengths)
    finally:
        model.train(was_training)


def transcripts(
    model: DeepSpeech2, decode: Decoder, device: torch.device, lengths: Sequence[float],
    load: Callable[[int], torch.Tensor], batch_size: int = 16, progress: bool = False,
) -> list[str]:  # fmt: skip
    """Transcripts of utterances ``0 .. len(lengths) - 1``, in that order (see ``batched_log_probs``)."""
    batches = batched_log_probs(model, device, lengths, load, batch_size, progress)
    return decode_batches(batches, decode, len(lengths))


def decode_batches(
    batches: Iterable[tuple[list[int], torch.Tensor, torch.Tensor]], decode: Decoder, count: int
) -> list[str]:
    """Texts of utterances ``0 .. count - 1`` from ``(indices, log_probs, frames)`` batches."""
    texts = [""] * count
    for indices, log_probs, frames in batches:
        for i, text in zip(indices, decode(log_probs, frames), strict=True):
            texts[i] = text
    return texts


def transcribe_dataset(
    model: DeepSpeech2, dataset: SpeechDataset, decode: Decoder, device: torch.device,
    batch_size: int = 16, progress: bool = False,
) -> list[str]:  # fmt: skip
    """Transcripts of every utterance, in dataset order."""
    load = lambda i: dataset[i][0]  # noqa: E731
    return transcripts(model, decode, device, dataset.durations, load, batch_size, progress)


def error_rates(references: list[str], hypotheses: list[str]) -> dict[str, float]:
    words = jiwer.process_words(references, hypotheses)
    return {"wer": words.wer, "cer": jiwer.cer(references, hypotheses)}


def utterance_errors(reference: str, hypothesis: str) -> dict[str, int]:
    words = jiwer.process_words(reference, hypothesis)
    return {
        "words": len(reference.split()), "substitutions": words.substitutions,
        "deletions": words.deletions, "insertions": words.insertions,
    }  # fmt: skip


class DecoderKind(str, Enum):
    greedy = "greedy"
    beam = "beam"
    """CTC prefix beam search over tokens, no language model."""
    beam_lm = "beam_lm"
    """Beam search over the LM's words with n-gram shallow fusion."""


@dataclass
class EvalConfig:
    checkpoint: str = MISSING
    """A checkpoint, or an ``asr-export`` artifact (``.onnx``, ``.ts``)."""
    manifest: str = MISSING
    output: str = MISSING
    """Summary JSON; per-utterance results go beside it as ``<stem>.utterances.jsonl``."""
    decoder: DecoderKind = DecoderKind.greedy
    lm: str | None = None
    """ARPA n-gram model for ``beam_lm``; default: the one ``asr-tune-lm`` chose for the checkpoint."""
    tuned: str | None = None
    """``asr-tune-lm``'s choice of LM and weights; default: ``<checkpoint>.lm.json`` if it exists."""
    lm_weight: float | None = None
    """alpha; default: the tuned value, else 1.0."""
    word_score: float | None = None
    """beta; default: the tuned value, else 0.0."""
    beam_size: int = 50
    beam_threshold: float = 25.0
    batch_size: int = 16
    device: Device = Device.auto
    threads: int | None = None
    """CPU threads for torch and onnxruntime; None: their defaults."""


def tuned_lm_path(checkpoint: str | Path) -> Path:
    """Where ``asr-tune-lm`` writes the LM and weights it chose: ``<checkpoint>.lm.json``."""
    return Path(checkpoint).with_suffix(".lm.json")


def make_decoder(cfg: EvalConfig, tokenizer: Tokenizer) -> tuple[Decoder, dict]:
    """The decoder ``cfg`` asks for, and its settings for the summary."""
    kind = DecoderKind(cfg.decoder)
    if kind is DecoderKind.greedy:
        return GreedyDecoder(tokenizer), {"decoder": kind.value}
    tuned_path = Path(cfg.tuned) if cfg.tuned is not None else tuned_lm_path(cfg.checkpoint)
    if cfg.tuned is not None and not tuned_path.is_file():
        raise UserError(f"tuned={tuned_path}: no such file (asr-tune-lm ... output={tuned_path} writes it)")
    tuned = json.loads(tuned_path.read_text()) if kind is DecoderKind.beam_lm and tuned_path.is_file() else {}
    lm = cfg.lm if cfg.lm is not None else tuned.get("lm")
    if kind is DecoderKind.beam_lm and lm is None:
        raise UserError(f"decoder=beam_lm needs lm=PATH (an ARPA file), or asr-tune-lm's {tuned_path}")
    settings = BeamSettings(
        cfg.beam_size, cfg.beam_threshold,
        cfg.lm_weight if cfg.lm_weight is not None else tuned.get("lm_weight", 1.0),
        cfg.word_score if cfg.word_score is not None else tuned.get("word_score", 0.0),
    )  # fmt: skip
    if kind is DecoderKind.beam:
        return BeamSearchDecoder(tokenizer, None, settings), {"decoder": "beam", "beam_size": cfg.beam_size}
    decoder = BeamSearchDecoder(tokenizer, lm, settings)
    return decoder, {"decoder": "beam_lm", "lm": str(lm), **asdict(settings)}


def evaluate(cfg: EvalConfig) -> dict:
    device = resolve_device(cfg.device)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    model, tokenizer = load_recognizer(cfg.checkpoint, device, cfg.threads)
    dataset = SpeechDataset(read_manifest(cfg.manifest), tokenizer, model.dims.sample_rate)
    decoder, settings = make_decoder(cfg, tokenizer)
    decode_seconds = 0.0

    def timed_decoder(log_probs: torch.Tensor, frames: torch.Tensor) -> list[str]:
        nonlocal decode_seconds
        start = time.perf_counter()
        texts = decoder(log_probs, frames)
        decode_seconds += time.perf_counter() - start
        return texts

    start = time.perf_counter()
    hypotheses = transcribe_dataset(model, dataset, timed_decoder, device, cfg.batch_size, progress=True)
    seconds, audio_seconds = time.perf_counter() - start, sum(dataset.durations)
    summary = {
        **error_rates(dataset.texts, hypotheses),
        "num_utterances": len(dataset),
        "num_words": sum(len(text.split()) for text in dataset.texts),
        **settings,
        "rtf": seconds / audio_seconds,
        "decoder_rtf": decode_seconds / audio_seconds,
        "threads": torch.get_num_threads(),
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
        f"WER {summary['wer']:.2%}  CER {summary['cer']:.2%}  on {summary['num_utterances']} utterances,"
        f" {summary['decoder']} decoding, RTF {summary['rtf']:.4f}  -> {cfg.output}"
    )


if __name__ == "__main__":
    main()
