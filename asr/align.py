"""``asr-align``: word times of a manifest's known transcripts, as a NIST CTM file (forced
alignment, ``asr.ctc.alignment``), optionally measured against true word times and drawn.

    asr-align model=runs/demo/checkpoints/best.pt manifest=data/synthetic/manifests/test.jsonl \
        output=runs/demo/test.ctm [reference=data/synthetic/alignments/test.jsonl] [plot=true]
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import MISSING

from asr import speakers
from asr.cli import run_tool
from asr.ctc.alignment import WordTime, align_words, boundary_errors, ctm_lines
from asr.data.dataset import SpeechDataset
from asr.data.manifest import read_manifest
from asr.errors import UserError
from asr.fileio import write_json, write_text
from asr.recognizer import Recognizer
from asr.runtime import Device


def plot_alignment(path: Path, waveform: torch.Tensor, features: torch.Tensor, words: list[WordTime],
                   sample_rate: int, title: str) -> None:  # fmt: skip
    """Waveform and log-mel spectrogram with the aligned words marked (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = len(waveform) / sample_rate
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(12, 5), sharex=True, height_ratios=[1, 2])
    top.plot(torch.arange(len(waveform)) / sample_rate, waveform, linewidth=0.4, color="0.3")
    top.set_title(title, fontsize=10)
    top.set_yticks([])
    bottom.imshow(
        features.T, origin="lower", aspect="auto", extent=(0, seconds, 0, features.shape[1]), cmap="magma"
    )
    bottom.set_ylabel("mel bin")
    bottom.set_xlabel("seconds")
    for n, word in enumerate(words):
        for axis in (top, bottom):
            axis.axvspan(word.start, word.end, color="tab:cyan" if n % 2 else "tab:green", alpha=0.18)
        bottom.text((word.start + word.end) / 2, features.shape[1] * (0.9 - 0.08 * (n % 2)), word.word,
                    ha="center", fontsize=9, color="white", weight="bold")  # fmt: skip
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


@dataclass
class AlignConfig:
    model: str = MISSING
    """A checkpoint (``.pt``), or an ``asr-export`` artifact (``.onnx``, ``.ts``)."""
    manifest: str = MISSING
    output: str = MISSING
    """CTM file; a summary (and the boundary errors, with ``reference``) goes to ``<stem>.alignment.json``."""
    reference: str | None = None
    """True word start times (the built-in corpus's ``alignments/<split>.jsonl``) to measure against."""
    plot: bool = False
    """Also draw the first ``plot_limit`` utterances to ``<stem>.plots/<utterance>.png``."""
    plot_limit: int = 5
    batch_size: int = 16
    device: Device = Device.auto
    threads: int | None = None
    """CPU threads for torch and onnxruntime; None: their defaults."""


def align(cfg: AlignConfig) -> dict:
    recognizer = Recognizer.load(cfg.model, cfg.device.value, cfg.threads)
    tokenizer, model, device = recognizer.tokenizer, recognizer.model, recognizer.device
    dataset = SpeechDataset(read_manifest(cfg.manifest), tokenizer, recognizer.sample_rate)
    frame_seconds = recognizer.frame_seconds
    aligned: list[list[WordTime] | None] = [None] * len(dataset)
    for indices, log_probs, frames in recognizer.batches(
        dataset.durations, lambda i: dataset[i][0], cfg.batch_size, True,
        speakers.for_recognizer(recognizer, dataset),
    ):  # fmt: skip
        for i, lp, n in zip(indices, log_probs, frames.tolist(), strict=True):
            aligned[i] = align_words(lp[:n], dataset.targets[i].tolist(), tokenizer, frame_seconds)
    ids = [Path(utt.audio_filepath).stem for utt in dataset.utterances]
    output = Path(cfg.output)
    write_text(
        output, "".join(ctm_lines(utt_id, words) for utt_id, words in zip(ids, aligned, strict=True) if words)
    )
    summary: dict = {
        "utterances": len(dataset), "unaligned": sum(words is None for words in aligned),
        "frame_seconds": frame_seconds, "model": cfg.model, "manifest": cfg.manifest,
    }  # fmt: skip
    if cfg.reference is not None:
        summary |= compare(ids, aligned, cfg.reference)
    write_json(output.with_name(f"{output.stem}.alignment.json"), summary)
    if cfg.plot:
        for i in range(min(cfg.plot_limit, len(dataset))):
            if aligned[i]:
                waveform = dataset[i][0]
                with torch.no_grad():
                    features, _ = model.frontend(
                        waveform[None].to(device), torch.tensor([len(waveform)], device=device)
                    )
                plot_path = output.with_name(f"{output.stem}.plots") / f"{ids[i]}.png"
                plot_alignment(
                    plot_path,
                    waveform,
                    features[0].cpu(),
                    aligned[i],
                    model.dims.sample_rate,
                    dataset.texts[i],
                )
    return summary


def compare(ids: list[str], aligned: list[list[WordTime] | None], reference: str) -> dict:
    """Median / 90th-percentile / mean word-start error against true times."""
    try:
        truth = {row["id"]: row["words"] for row in map(json.loads, Path(reference).read_text().splitlines())}
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"{reference}: not a word-time reference ({error})") from None
    errors, skipped = [], 0
    for utt_id, words in zip(ids, aligned, strict=True):
        found = boundary_errors(words, truth[utt_id]) if words and truth.get(utt_id) else []
        skipped += not found
        errors += found
    if not errors:
        raise UserError(f"{reference}: no utterance of the manifest has matching reference words")
    errors.sort()
    return {
        "words_compared": len(errors), "utterances_skipped": skipped,
        "start_error_median_ms": 1000 * statistics.median(errors),
        "start_error_p90_ms": 1000 * errors[int(0.9 * (len(errors) - 1))],
        "start_error_mean_ms": 1000 * statistics.fmean(errors),
    }  # fmt: skip


def run(cfg: AlignConfig) -> dict:
    summary = align(cfg)
    done = summary["utterances"] - summary["unaligned"]
    line = f"{done} of {summary['utterances']} utterances aligned -> {cfg.output}"
    if "start_error_median_ms" in summary:
        line += (f"; word-start error median {summary['start_error_median_ms']:.0f} ms,"
                 f" 90th percentile {summary['start_error_p90_ms']:.0f} ms")  # fmt: skip
    print(line)
    return summary


def main(argv: list[str] | None = None) -> None:
    run_tool("asr-align", AlignConfig, run, argv)


if __name__ == "__main__":
    main()
