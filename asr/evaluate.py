"""``asr-eval``: word and character error rates of a model on a manifest, with any decoder.

    asr-eval model=runs/demo/checkpoints/best.pt manifest=data/synthetic/manifests/test.jsonl \
        output=runs/demo/test.json
    asr-eval ... decoder=beam_lm lm=lm.arpa          # or the weights asr-tune-lm chose
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import jiwer
import torch
from omegaconf import MISSING

from asr import speakers
from asr.cli import run_tool
from asr.ctc.decoding import FrameChoices, GreedyDecoder
from asr.data.dataset import SpeechDataset
from asr.data.manifest import read_manifest
from asr.errors import UserError
from asr.fileio import write_json, write_jsonl
from asr.recognizer import Decoder, Recognizer, decode_batches
from asr.runtime import Device


def transcribe_dataset(
    recognizer: Recognizer,
    dataset: SpeechDataset,
    decode: Decoder,
    batch_size: int = 16,
    progress: bool = False,
    speaker: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> list[str]:
    """Transcripts of every utterance, in dataset order; ``speaker``: each utterance's speaker's
    feature statistics (``asr.speakers.for_recognizer``), None for each utterance's own."""
    batches = recognizer.batches(dataset.durations, lambda i: dataset[i][0], batch_size, progress, speaker)
    return decode_batches(batches, decode, len(dataset))


BLANK_PENALTIES = tuple(i / 4 for i in range(13))
"""What ``tune_blank_penalty`` tries: 0 to 3 in steps of 0.25."""


def tune_blank_penalty(
    recognizer: Recognizer, dataset: SpeechDataset, speaker: tuple[torch.Tensor, torch.Tensor] | None = None,
    penalties: tuple[float, ...] = BLANK_PENALTIES,
) -> tuple[float, dict[float, float]]:  # fmt: skip
    """The greedy decoder's blank penalty of lowest WER on ``dataset`` (the smallest of equals),
    and each penalty's WER; the model runs once."""
    blank, count = recognizer.tokenizer.blank, len(dataset)
    choices = [
        (indices, FrameChoices.of(log_probs, frames, blank))
        for indices, log_probs, frames in recognizer.batches(
            dataset.durations, lambda i: dataset[i][0], speaker=speaker
        )
    ]
    wers = {}
    for penalty in penalties:
        decoder, texts = GreedyDecoder(recognizer.tokenizer, penalty), [""] * count
        for indices, frame_choices in choices:
            for i, text in zip(indices, decoder.texts(frame_choices), strict=True):
                texts[i] = text
        wers[penalty] = error_rates(dataset.texts, texts)["wer"]
    return min(penalties, key=lambda p: (wers[p], p)), wers


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
    model: str = MISSING
    """A checkpoint (``.pt``), or an ``asr-export`` artifact (``.onnx``, ``.ts``)."""
    manifest: str = MISSING
    output: str = MISSING
    """Summary JSON; per-utterance results go beside it as ``<stem>.utterances.jsonl``."""
    decoder: DecoderKind = DecoderKind.greedy
    lm: str | None = None
    """ARPA n-gram model (``.arpa`` or ``.arpa.gz``) for ``beam_lm``; default: the one ``asr-tune-lm``
    chose for the model."""
    tuned: str | None = None
    """``asr-tune-lm``'s choice of LM and weights; default: ``<model>.lm.json`` if it exists."""
    lm_weight: float | None = None
    """alpha; default: the tuned value, else 1.0."""
    word_score: float | None = None
    """beta; default: the tuned value, else 0.0."""
    beam_size: int = 50
    beam_threshold: float = 25.0
    blank_penalty: float | None = None
    """greedy: taken from the blank's log-prob before each frame's choice; default: the model's,
    tuned on dev when it was trained (0 for models trained before)."""
    batch_size: int = 16
    speakers: bool | None = None
    """true: normalise each utterance by its speaker's feature statistics, from the manifest's
    utterances of that speaker (``asr/speakers.py``); false: by its own, as when files are
    transcribed one at a time; default: as the model's ``speaker_statistics`` says."""
    device: Device = Device.auto
    threads: int | None = None
    """CPU threads for torch and onnxruntime; None: their defaults."""


def tuned_lm_path(model: str | Path) -> Path:
    """Where ``asr-tune-lm`` writes the LM and weights it chose: ``<model>.lm.json``."""
    return Path(model).with_suffix(".lm.json")


def make_decoder(cfg: EvalConfig, recognizer: Recognizer) -> tuple[Decoder, dict]:
    """The decoder ``cfg`` asks for, and its settings for the summary."""
    kind = DecoderKind(cfg.decoder)
    if kind is DecoderKind.greedy:
        decoder = recognizer.decoder("greedy", blank_penalty=cfg.blank_penalty)
        return decoder, {"decoder": kind.value, "blank_penalty": decoder.blank_penalty}
    tuned_path = Path(cfg.tuned) if cfg.tuned is not None else tuned_lm_path(cfg.model)
    if cfg.tuned is not None and not tuned_path.is_file():
        raise UserError(f"tuned={tuned_path}: no such file (asr-tune-lm ... output={tuned_path} writes it)")
    tuned = json.loads(tuned_path.read_text()) if kind is DecoderKind.beam_lm and tuned_path.is_file() else {}
    lm = cfg.lm if cfg.lm is not None else tuned.get("lm")
    if kind is DecoderKind.beam_lm and lm is None:
        raise UserError(f"decoder=beam_lm needs lm=PATH (an ARPA file), or asr-tune-lm's {tuned_path}")
    settings = {
        "lm_weight": cfg.lm_weight if cfg.lm_weight is not None else tuned.get("lm_weight", 1.0),
        "word_score": cfg.word_score if cfg.word_score is not None else tuned.get("word_score", 0.0),
        "beam_size": cfg.beam_size, "beam_threshold": cfg.beam_threshold,
    }  # fmt: skip
    decoder = recognizer.decoder(kind.value, lm, **settings)
    if kind is DecoderKind.beam:
        return decoder, {"decoder": "beam", "beam_size": cfg.beam_size}
    return decoder, {"decoder": "beam_lm", "lm": str(lm), **settings}


def evaluate(cfg: EvalConfig) -> dict:
    recognizer = Recognizer.load(cfg.model, cfg.device.value, cfg.threads)
    dataset = SpeechDataset(read_manifest(cfg.manifest), recognizer.tokenizer, recognizer.sample_rate)
    decoder, settings = make_decoder(cfg, recognizer)
    decode_seconds = 0.0

    def timed_decoder(log_probs: torch.Tensor, frames: torch.Tensor) -> list[str]:
        nonlocal decode_seconds
        start = time.perf_counter()
        texts = decoder(log_probs, frames)
        decode_seconds += time.perf_counter() - start
        return texts

    start = time.perf_counter()
    speaker = speakers.for_recognizer(recognizer, dataset, cfg.speakers)
    hypotheses = transcribe_dataset(recognizer, dataset, timed_decoder, cfg.batch_size, True, speaker)
    seconds, audio_seconds = time.perf_counter() - start, sum(dataset.durations)
    summary = {
        **error_rates(dataset.texts, hypotheses),
        "num_utterances": len(dataset),
        "num_words": sum(len(text.split()) for text in dataset.texts),
        **settings,
        "rtf": seconds / audio_seconds,
        "decoder_rtf": decode_seconds / audio_seconds,
        "threads": torch.get_num_threads(),
        "model": str(cfg.model),
        "manifest": str(cfg.manifest),
    }
    output = Path(cfg.output)
    rows = (
        {"audio_filepath": str(utt.audio_filepath), "ref": ref, "hyp": hyp, **utterance_errors(ref, hyp)}
        for utt, ref, hyp in zip(dataset.utterances, dataset.texts, hypotheses, strict=True)
    )
    write_jsonl(output.with_name(f"{output.stem}.utterances.jsonl"), rows)
    write_json(output, summary)
    print(
        f"WER {summary['wer']:.2%}  CER {summary['cer']:.2%}  on {summary['num_utterances']} utterances,"
        f" {summary['decoder']} decoding, RTF {summary['rtf']:.4f}  -> {cfg.output}"
    )
    return summary


def main(argv: list[str] | None = None) -> None:
    run_tool("asr-eval", EvalConfig, evaluate, argv)


if __name__ == "__main__":
    main()
