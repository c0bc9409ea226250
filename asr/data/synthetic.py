"""The built-in corpus: English sentences spoken by espeak-ng "speakers", in LibriSpeech's layout.

A speaker is an espeak-ng English voice with a voice variant, speaking rate and pitch; each of
its utterances varies rate and pitch a little around the speaker's own, as a person does. Train,
dev and test splits have disjoint speakers, so the test WER measures unseen voices. espeak-ng says
where each word starts, so ``alignments/<split>.jsonl`` holds true word times. The corpus is
deterministic in its seed; a finished corpus (``corpus.json`` present with the same parameters)
is not written again.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import soxr
from tqdm import tqdm

from asr.audio import save_audio
from asr.data.espeak import Synthesizer, Voice
from asr.data.librispeech import write_split_manifest
from asr.data.sentences import SentenceGenerator
from asr.errors import UserError
from asr.fileio import write_json, write_jsonl, write_text

LANGUAGE_VOICES = ["en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                   "en-029", "en-us-nyc"]  # fmt: skip
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "klatt",
            "klatt2", "klatt3", "Alex", "Andy", "Annie", "adam", "anika", "aunty", "belinda",
            "benjamin", "david", "ed", "edward", "grandpa", "ian", "john", "linda", "max", "michael",
            "paul", "quincy", "rob", "robert", "steph", "travis"]  # fmt: skip
SPLITS = ("train", "dev", "test")
LAYOUT = 4
"""Version of what a corpus folder holds; 2 added ``alignments/<split>.jsonl`` (word start times),
3 seeded espeak-ng's noise generator (breathy voices were not reproducible), 4 named each
utterance's speaker in the manifests."""


@dataclass
class CorpusSpec:
    """Everything that determines the corpus; saved as ``corpus.json``."""

    seed: int = 0
    train_speakers: int = 240
    dev_speakers: int = 8
    test_speakers: int = 16
    utterances_per_speaker: int = 25
    train_utterances_per_speaker: int | None = None
    """A training speaker's utterances (None: ``utterances_per_speaker``). Those beyond
    ``utterances_per_speaker`` come from sentence and prosody draws of their own, so that dev and
    test stay the same whatever this is."""
    sample_rate: int = 16000

    def speakers(self, split: str) -> int:
        return {"train": self.train_speakers, "dev": self.dev_speakers, "test": self.test_speakers}[split]


def assign_voices(spec: CorpusSpec) -> dict[str, list[Voice]]:
    """Disjoint voices per split: each (language voice, variant) pair is used by one speaker only."""
    pairs = [(name, variant) for name in LANGUAGE_VOICES for variant in VARIANTS]
    needed = sum(spec.speakers(split) for split in SPLITS)
    if needed > len(pairs):
        raise UserError(f"corpus asks for {needed} speakers; at most {len(pairs)} distinct voices exist")
    rng = random.Random(spec.seed)
    rng.shuffle(pairs)
    voices, start = {}, 0
    for split in SPLITS:
        chosen = pairs[start : start + spec.speakers(split)]
        voices[split] = [
            Voice(name, variant, rng.randint(135, 185), rng.randint(25, 75)) for name, variant in chosen
        ]
        start += len(chosen)
    return voices


@dataclass
class _Speaker:
    id: int
    split: str
    voice: Voice
    split_dir: Path
    sample_rate: int
    utterances: list[tuple[str, Voice]]
    """(text, voice with this utterance's rate and pitch)"""


def _synthesize_speaker(speaker: _Speaker) -> list[dict]:
    """Write one speaker's chapter (audio and ``.trans.txt``); returns each utterance's word start
    times (``{"id", "words": [[word, seconds], ...]}``, words None without the espeak library)."""
    synthesizer = Synthesizer(seed=speaker.id)
    chapter = speaker.id * 10
    folder = speaker.split_dir / str(speaker.id) / str(chapter)
    lines, alignments = [], []
    for index, (text, voice) in enumerate(speaker.utterances):
        samples, words = synthesizer.synthesize_words(text, voice)
        samples = soxr.resample(
            samples.astype(np.float32) / 32768.0, synthesizer.sample_rate, speaker.sample_rate
        )
        utt_id = f"{speaker.id}-{chapter}-{index:04d}"
        save_audio(folder / f"{utt_id}.flac", samples, speaker.sample_rate)
        lines.append(f"{utt_id} {text.upper()}\n")
        alignments.append(
            {"id": utt_id, "words": words and [[word, round(start, 4)] for word, start in words]}
        )
    write_text(folder / f"{speaker.id}-{chapter}.trans.txt", "".join(lines))
    return alignments


def _marker(spec: CorpusSpec) -> dict:
    """``corpus.json``: the spec and layout (a corpus made before ``train_utterances_per_speaker``
    existed, as one that leaves it unset, is the same corpus)."""
    settings = {key: value for key, value in asdict(spec).items() if value is not None}
    return {**settings, "layout": LAYOUT}


def _utterances(
    voice: Voice, count: int, sentences: SentenceGenerator, prosody: random.Random
) -> list[tuple[str, Voice]]:
    """``count`` sentences, each with the speaker's rate and pitch varied a little."""
    return [
        (sentences.sentence(), replace(voice, rate=voice.rate + prosody.randint(-12, 12),
                                       pitch=voice.pitch + prosody.randint(-8, 8)))
        for _ in range(count)
    ]  # fmt: skip


def generate_corpus(root: Path, spec: CorpusSpec) -> None:
    """Write the corpus under ``root`` and its manifests under ``root/manifests/<split>.jsonl``."""
    marker, made = root / "corpus.json", _marker(spec)
    if marker.is_file() and json.loads(marker.read_text()) == made:
        return
    marker.unlink(missing_ok=True)
    for split in SPLITS:  # a corpus of other parameters: its speakers must not linger in the manifests
        shutil.rmtree(root / split, ignore_errors=True)
    draws = (SentenceGenerator(spec.seed), random.Random(spec.seed + 1))
    extra_draws = (SentenceGenerator(spec.seed + 2), random.Random(spec.seed + 3))
    train_count = (
        spec.utterances_per_speaker
        if spec.train_utterances_per_speaker is None
        else spec.train_utterances_per_speaker
    )
    speakers = []
    for split, voices in assign_voices(spec).items():
        for number, voice in enumerate(voices):
            speaker = {"train": 1000, "dev": 2000, "test": 3000}[split] + number
            utterances = _utterances(voice, spec.utterances_per_speaker, *draws)
            if split == "train":
                extra = max(0, train_count - len(utterances))
                utterances = utterances[:train_count] + _utterances(voice, extra, *extra_draws)
            speakers.append(_Speaker(speaker, split, voice, root / split, spec.sample_rate, utterances))
    # espeak-ng keeps noise-generator state between utterances, so one speaker's audio would depend
    # on what was spoken before it. Each speaker is therefore synthesised in a fresh process forked
    # from this one (which never loads espeak-ng): the same seed gives the same corpus, byte for byte,
    # and the cores share the work. Fork, not spawn: a spawned worker re-imports the caller's main
    # module, torch included, which made synthesis five times slower.
    total = sum(len(s.utterances) for s in speakers)
    alignments: dict[str, list[dict]] = {split: [] for split in SPLITS}
    pool = multiprocessing.get_context("fork").Pool(processes=os.cpu_count() or 1, maxtasksperchild=1)
    with pool, tqdm(total=total, desc=f"synthesising {root}", unit="utt") as bar:
        for speaker, rows in zip(speakers, pool.imap(_synthesize_speaker, speakers), strict=True):
            alignments[speaker.split] += rows
            bar.update(len(rows))
    speaker_lines = [
        f"{s.id}|{s.split}|{s.voice.espeak_name}|{s.voice.rate}|{s.voice.pitch}\n" for s in speakers
    ]
    write_text(root / "SPEAKERS.TXT", "ID|SPLIT|VOICE|RATE|PITCH\n" + "".join(speaker_lines))
    for split in SPLITS:
        write_split_manifest(root / split, root / "manifests" / f"{split}.jsonl")
        write_jsonl(root / "alignments" / f"{split}.jsonl", alignments[split])
    write_json(marker, made)


@dataclass
class SynthConfig(CorpusSpec):
    root: str = "data/synthetic"
    """Output folder (a bare word on the command line)."""
    as_openslr: str | None = None
    """Also pack the corpus into this folder as OpenSLR publishes LibriSpeech (a rehearsal of its
    recipe, ``asr.data.rehearsal``)."""


def synthesize(cfg: SynthConfig) -> None:
    root = Path(cfg.root)
    generate_corpus(root, CorpusSpec(**{f.name: getattr(cfg, f.name) for f in fields(CorpusSpec)}))
    print(f"corpus in {root}, manifests in {root / 'manifests'}")
    if cfg.as_openslr is not None:
        from asr.data.rehearsal import write_openslr

        write_openslr(root, Path(cfg.as_openslr))
        print(
            f"LibriSpeech rehearsal in {cfg.as_openslr} (recipes/librispeech/rehearse.sh serves and runs one)"
        )


def main(argv: list[str] | None = None) -> None:
    from asr.cli import run_tool

    run_tool("asr-synth", SynthConfig, synthesize, argv, positional="root")


if __name__ == "__main__":
    main()
