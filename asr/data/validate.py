"""Bad data caught before it costs a run: ``asr-validate`` and the same check at training start.

    asr-validate manifest=data/synthetic/manifests/train.jsonl [model_config=small | model=best.pt] \
        [output=clean.jsonl]

Each utterance is checked for: a missing, unreadable, empty, NaN or silent audio file; a manifest
duration that disagrees with the audio; characters outside the tokenizer; and audio too short for
its transcript after the model's subsampling (fewer output frames than labels plus repeated
labels: CTC then has no path, the cause of most inf / NaN losses).
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import MISSING
from tqdm import tqdm

from asr.audio import AudioError, load_audio
from asr.cli import run_tool
from asr.ctc.alignment import ctc_frames_needed
from asr.data.manifest import Utterance, read_manifest, write_manifest
from asr.errors import UserError
from asr.text import CharTokenizer, Tokenizer, UnknownCharacterError, normalize_text

log = logging.getLogger(__name__)

SILENCE_PEAK = 1e-4
"""Audio whose absolute peak stays below this (-80 dBFS) is silent."""
DURATION_TOLERANCE = 0.1
"""Seconds by which a manifest duration may differ from its audio."""
SHOWN_PROBLEMS = 20


@dataclass(frozen=True)
class Problem:
    index: int
    """Position of the utterance in its manifest's list."""
    utterance: Utterance
    kind: str
    """One word, for counts: missing, unreadable, empty, non-finite, silent, duration, characters,
    too-short."""
    message: str

    def __str__(self) -> str:
        return f"{self.utterance.source}: {self.utterance.audio_filepath.name}: {self.message}"


def check_utterance(
    index: int, utt: Utterance, tokenizer: Tokenizer, sample_rate: int,
    output_frames: Callable[[int], int] | None,
) -> Problem | None:  # fmt: skip
    """The first problem of one utterance, or None. ``output_frames(samples)``: the model's frames;
    None skips the length check (evaluation data need not be alignable)."""
    if not utt.duration > 0:  # a bad line like any other (skipped with data.on_bad_sample=skip)
        return Problem(index, utt, "duration", f"the manifest says {utt.duration} s: not positive")
    try:
        ids = tokenizer.encode(normalize_text(utt.text))
    except UnknownCharacterError as error:
        return Problem(index, utt, "characters", str(error))
    try:
        audio = load_audio(utt.audio_filepath, sample_rate, utt.offset, utt.duration if utt.offset else None)
    except AudioError as error:
        return Problem(index, utt, error.kind, error.problem)
    seconds = len(audio) / sample_rate
    if abs(seconds - utt.duration) > DURATION_TOLERANCE:
        message = f"the manifest says {utt.duration:.2f} s but the audio has {seconds:.2f} s"
        return Problem(index, utt, "duration", message)
    peak = float(np.abs(audio).max())
    if peak < SILENCE_PEAK:
        return Problem(index, utt, "silent", f"audio is silent (peak {peak:.1e})")
    if output_frames is None:
        return None
    needed, frames = ctc_frames_needed(ids), output_frames(len(audio))
    if frames < needed:
        message = f"too short for its transcript: {frames} output frames, CTC needs {needed}"
        return Problem(index, utt, "too-short", message)
    return None


def find_problems(
    utterances: list[Utterance], tokenizer: Tokenizer, model: torch.nn.Module, *,
    check_length: bool = True, progress: bool = True, desc: str = "validating",
    share: tuple[int, int] = (0, 1),
) -> list[Problem]:  # fmt: skip
    """Check every utterance (4 threads: decoding releases the GIL), or with ``share=(k, n)`` every
    n-th from the k-th; problems in manifest order."""
    sample_rate = model.dims.sample_rate

    def output_frames(samples: int) -> int:
        return int(model.output_lengths(torch.tensor([samples]))[0])

    def check(item: tuple[int, Utterance]) -> Problem | None:
        return check_utterance(*item, tokenizer, sample_rate, output_frames if check_length else None)

    first, step = share
    mine = list(enumerate(utterances))[first::step]
    with ThreadPoolExecutor(4) as pool:
        results = pool.map(check, mine)
        results = list(tqdm(results, desc, len(mine), unit="utt", disable=not progress, leave=False))
    return [problem for problem in results if problem is not None]


def summarize(problems: list[Problem]) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in Counter(p.kind for p in problems).most_common())


def screen(utterances: list[Utterance], problems: list[Problem], skip: bool, name: str) -> list[Utterance]:
    """Apply ``data.on_bad_sample``: stop, listing the problems, or leave the bad utterances out."""
    if not problems:
        return utterances
    if not skip:
        for problem in problems[:SHOWN_PROBLEMS]:
            print(f"bad utterance: {problem}", file=sys.stderr)
        more = len(problems) - SHOWN_PROBLEMS
        if more > 0:
            print(f"... and {more} more (asr-validate manifest=... lists them all)", file=sys.stderr)
        raise UserError(
            f"{name}: {len(problems)} bad utterance(s) of {len(utterances)} ({summarize(problems)}); "
            "fix them, or set data.on_bad_sample=skip to leave them out"
        )
    log.warning(
        "%s: skipping %d bad utterance(s) of %d (%s)",
        name,
        len(problems),
        len(utterances),
        summarize(problems),
    )
    bad = {problem.index for problem in problems}
    return [utt for index, utt in enumerate(utterances) if index not in bad]


@dataclass
class ValidateConfig:
    manifest: str = MISSING
    model: str | None = None
    """A trained model (checkpoint or ``asr-export`` artifact) whose tokenizer and subsampling
    decide; None: the model config ``model_config`` with the character tokenizer."""
    model_config: str = "small"
    """Model config (``asr/configs/model/<name>.yaml``) whose subsampling decides "too short"."""
    output: str | None = None
    """Write the good utterances to this manifest."""


def model_for(cfg: ValidateConfig) -> tuple[torch.nn.Module, Tokenizer]:
    from asr.configs import configured_model
    from asr.inference import load_any

    if cfg.model is not None:
        return load_any(cfg.model, torch.device("cpu"))
    tokenizer = CharTokenizer()
    return configured_model(cfg.model_config, len(tokenizer)), tokenizer


def validate(cfg: ValidateConfig) -> None:
    utterances = read_manifest(cfg.manifest)
    model, tokenizer = model_for(cfg)
    problems = find_problems(utterances, tokenizer, model)
    for problem in problems:
        print(problem)
    good = len(utterances) - len(problems)
    print(f"{cfg.manifest}: {good} of {len(utterances)} utterances good", end="")
    print(f"; bad: {summarize(problems)}" if problems else "")
    if cfg.output is not None:
        write_manifest(cfg.output, screen(utterances, problems, skip=True, name=cfg.manifest))
        print(f"good utterances -> {cfg.output}")
    sys.exit(1 if problems else 0)


def main(argv: list[str] | None = None) -> None:
    run_tool("asr-validate", ValidateConfig, validate, argv)


if __name__ == "__main__":
    main()
