"""FSDD connected digits: real voices for training and leave-one-speaker-out evaluation.

The Free Spoken Digit Dataset (github.com/Jakobovski/free-spoken-digit-dataset, CC BY-SA 4.0)
holds 8 kHz recordings of single digits, ``{digit}_{speaker}_{index}.wav``, 50 per digit and
speaker. We use four speakers (george, jackson, lucas, yweweler) and join their recordings into
utterances of 1 to 7 digits ("four one nine"), one speaker each, with short random pauses, a
random level and a little noise. No recording is in two splits, and folds are speaker-disjoint:

- a speaker's recordings with index 0-4 feed its dev pool, 5-49 its train pool; its test pool
  draws on all 50 (a speaker is only ever tested when held out);
- fold ``<speaker>`` trains on the other three speakers' train pools, selects on their dev pools
  and tests on ``<speaker>``'s test pool: ``<out>/folds/<speaker>/{train,dev,test}.jsonl``.

Three speakers are few to learn digits from rather than voices, so ``--synthetic-voices N`` adds
N espeak-ng voices (those of the built-in corpus) saying each digit a few times, each voice's
recordings joined the same way into utterances of its own, to every fold's training set (never to
dev or test).

    python -m asr.data.fsdd download DEST [--url URL]        # the pinned release, then verified
    python -m asr.data.fsdd prepare RECORDINGS OUT [--seed 0] [--synthetic-voices 0]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

import librosa
import numpy as np
import soxr

from asr.audio import load_audio, save_audio
from asr.data.download import download, sha256sum
from asr.data.espeak import Synthesizer, Voice
from asr.data.manifest import Utterance, write_manifest
from asr.data.synthetic import LANGUAGE_VOICES, VARIANTS
from asr.errors import UserError, exit_on_user_error
from asr.fileio import write_json

RELEASE = "v1.0.10"
URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/{RELEASE}.tar.gz"
SPEAKERS = ("george", "jackson", "lucas", "yweweler")
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
INDICES = 50
DEV_INDICES = range(0, 5)
SAMPLE_RATE = 8000
RECORDINGS_SHA256 = "a35dd23c02d7d6a2597d85595e9b20b6f6856c6cc0617beee4341bc745fe8a7f"
"""sha256 of the ``sha256sum``-style lines (``<sha256>  <name>``, sorted by name) of the 2,000
recordings of the four speakers: what ``download`` and ``prepare`` check a folder against."""
_NAME = re.compile(r"^([0-9])_([a-z]+)_([0-9]+)\.wav$")


@dataclass(frozen=True)
class Recording:
    digit: int
    speaker: str
    index: int
    path: Path


def find_recordings(folder: Path, expected_sha256: str = RECORDINGS_SHA256) -> list[Recording]:
    """The four speakers' 2,000 recordings in ``folder`` (or its ``recordings/``, as in FSDD's
    repository), checked against ``expected_sha256``."""
    if (folder / "recordings").is_dir():
        folder = folder / "recordings"
    found = {}
    for path in sorted(folder.glob("*.wav")) if folder.is_dir() else []:
        match = _NAME.match(path.name)
        if match and match[2] in SPEAKERS:
            found[path.name] = Recording(int(match[1]), match[2], int(match[3]), path)
    expected = {f"{d}_{s}_{i}.wav" for d in range(10) for s in SPEAKERS for i in range(INDICES)}
    if missing := sorted(expected - found.keys()):
        raise UserError(
            f"{folder}: {len(missing)} of the 2,000 FSDD recordings are missing (e.g. {missing[0]}); "
            "point at FSDD's recordings/ folder"
        )
    lines = "".join(f"{sha256sum(found[name].path)}  {name}\n" for name in sorted(expected))
    if hashlib.sha256(lines.encode()).hexdigest() != expected_sha256:
        raise UserError(f"{folder}: the recordings differ from FSDD {RELEASE}'s (sha256 mismatch)")
    return [found[name] for name in sorted(expected)]


def fetch(destination: Path, url: str = URL, expected_sha256: str = RECORDINGS_SHA256) -> Path:
    """Download the release archive, extract the four speakers' recordings into
    ``destination/recordings`` and verify them; returns that folder."""
    recordings = destination / "recordings"
    if recordings.is_dir():
        try:
            find_recordings(recordings, expected_sha256)
            return recordings
        except UserError:
            shutil.rmtree(recordings)  # a broken earlier attempt: start over
    archive = download(url, destination / f"free-spoken-digit-dataset-{RELEASE}.tar.gz", None)
    staging = destination / ".recordings"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                match = _NAME.match(Path(member.name).name)
                if member.isfile() and "/recordings/" in member.name and match and match[2] in SPEAKERS:
                    (staging / Path(member.name).name).write_bytes(tar.extractfile(member).read())
    except (tarfile.TarError, OSError, EOFError) as error:
        archive.unlink()
        raise UserError(
            f"{archive}: cannot read the archive ({error}); run again to download it anew"
        ) from None
    find_recordings(staging, expected_sha256)
    staging.rename(recordings)
    return recordings


@dataclass(frozen=True)
class Mixing:
    """How recordings become utterances."""

    max_digits: int = 7
    pause_seconds: tuple[float, float] = (0.05, 0.4)
    edge_seconds: tuple[float, float] = (0.05, 0.3)
    level_db: tuple[float, float] = (-6.0, 6.0)
    snr_db: tuple[float, float] = (25.0, 45.0)


def connect(recordings: list[Recording], rng: np.random.Generator, mixing: Mixing) -> tuple[np.ndarray, str]:
    """One utterance: 1 to ``max_digits`` of ``recordings`` (drawn at random), with pauses, a
    random level and white noise at a random SNR; 8 kHz samples and the words."""
    count = rng.integers(1, mixing.max_digits + 1)
    chosen = [recordings[i] for i in rng.integers(len(recordings), size=count)]
    digits = [load_audio(recording.path, SAMPLE_RATE) for recording in chosen]

    def silence(seconds: tuple[float, float]) -> np.ndarray:
        return np.zeros(round(rng.uniform(*seconds) * SAMPLE_RATE), np.float32)

    pieces = [silence(mixing.edge_seconds)]
    for number, digit in enumerate(digits):
        pieces += [silence(mixing.pause_seconds), digit] if number else [digit]
    gain = 10 ** (rng.uniform(*mixing.level_db) / 20)
    audio = np.concatenate([*pieces, silence(mixing.edge_seconds)]) * gain
    noise_power = np.mean(np.concatenate(digits) ** 2) * gain**2 / 10 ** (rng.uniform(*mixing.snr_db) / 10)
    audio = audio + rng.standard_normal(len(audio)).astype(np.float32) * np.sqrt(noise_power)
    return np.clip(audio, -1.0, 1.0).astype(np.float32), " ".join(WORDS[r.digit] for r in chosen)


POOLS = {"train": 500, "dev": 50, "test": 300}
"""Utterances per speaker and pool."""


def pool_sources(recordings: list[Recording], speaker: str) -> dict[str, list[Recording]]:
    """The recordings each of a speaker's pools draws on: dev and train share none; test, used
    only when the speaker is held out, draws on all of them."""
    own = [r for r in recordings if r.speaker == speaker]
    return {"train": [r for r in own if r.index not in DEV_INDICES],
            "dev": [r for r in own if r.index in DEV_INDICES], "test": own}  # fmt: skip


VOICE_PAIRS = [(name, variant) for name in LANGUAGE_VOICES for variant in VARIANTS]
"""The espeak-ng voices (language voice, variant) synthetic speakers are drawn from."""
SYNTHETIC_REPEATS = 5
"""Times each synthetic voice says each digit."""
SYNTHETIC_UTTERANCES = 20
"""Synthetic utterances per synthetic voice, each from that voice's recordings alone, as a real
speaker's are."""
LAYOUT = 3
"""Version of what ``prepare`` writes, in its marker ``fsdd.json``."""


def synthesize_recordings(folder: Path, voices: int, seed: int) -> list[Recording]:
    """``voices`` espeak-ng voices, each saying every digit ``SYNTHETIC_REPEATS`` times (rate and
    pitch varied a little around its own), trimmed of silence and at 8 kHz: FSDD-like recordings
    ``folder/{digit}_synth{voice}_{index}.wav``."""
    rng = np.random.default_rng([seed, len(SPEAKERS), 0])
    jobs = [
        (number, Voice(*VOICE_PAIRS[i], rate=int(rng.integers(120, 190)), pitch=int(rng.integers(20, 80))),
         folder, seed)
        for number, i in enumerate(rng.permutation(len(VOICE_PAIRS))[:voices])
    ]  # fmt: skip
    # One fresh process per voice, as for the built-in corpus (asr.data.synthetic): espeak-ng keeps
    # noise-generator state between utterances, and the same seed must give the same audio.
    pool = multiprocessing.get_context("fork").Pool(processes=os.cpu_count() or 1, maxtasksperchild=1)
    with pool:
        return [recording for rows in pool.imap(_voice_recordings, jobs) for recording in rows]


def _voice_recordings(job: tuple[int, Voice, Path, int]) -> list[Recording]:
    number, voice, folder, seed = job
    rng = np.random.default_rng([seed, len(SPEAKERS), 1, number])
    synthesizer = Synthesizer(seed=seed * len(VOICE_PAIRS) + number)
    recordings = []
    for digit in range(10):
        for index in range(SYNTHETIC_REPEATS):
            rate, pitch = voice.rate + int(rng.integers(-15, 16)), voice.pitch + int(rng.integers(-8, 9))
            samples = synthesizer.synthesize(WORDS[digit], Voice(voice.name, voice.variant, rate, pitch))
            samples, _ = librosa.effects.trim(
                samples.astype(np.float32) / 32768.0, top_db=40, frame_length=512, hop_length=128
            )
            path = folder / f"{digit}_synth{number}_{index}.wav"
            save_audio(path, soxr.resample(samples, synthesizer.sample_rate, SAMPLE_RATE), SAMPLE_RATE)
            recordings.append(Recording(digit, f"synth{number}", index, path))
    return recordings


def write_utterances(
    sources: list[Recording], count: int, folder: Path, name: str, rng: np.random.Generator, mixing: Mixing
) -> list[Utterance]:
    """``count`` connected-digit utterances from ``sources`` (one speaker's),
    ``folder/<name>-NNNN.flac``."""
    utterances = []
    for n in range(count):
        audio, text = connect(sources, rng, mixing)
        path = folder / f"{name}-{n:04d}.flac"
        save_audio(path, audio, SAMPLE_RATE)
        duration, speaker = len(audio) / SAMPLE_RATE, sources[0].speaker
        utterances.append(Utterance(path.resolve(), duration, text, speaker=speaker))
    return utterances


def prepare(
    recordings_dir: Path, out: Path, seed: int = 0, mixing: Mixing = Mixing(),
    expected_sha256: str = RECORDINGS_SHA256, pools: dict[str, int] = POOLS, synthetic_voices: int = 0,
) -> None:  # fmt: skip
    """Write each speaker's pools of ``pools[pool]`` utterances (``out/audio/<speaker>/<pool>/*.flac``)
    and each fold's manifests (``out/folds/<speaker>/{train,dev,test}.jsonl``), the training sets
    with ``synthetic_voices`` espeak-ng voices' utterances (``out/audio/synthetic``). An ``out``
    finished with the same parameters is kept; one made with others is made anew."""
    if not 0 <= synthetic_voices <= len(VOICE_PAIRS):
        raise UserError(f"--synthetic-voices {synthetic_voices}: choose 0 to {len(VOICE_PAIRS)}")
    marker = out / "fsdd.json"
    parameters = json.loads(json.dumps({  # as the marker reads back (tuples become lists)
        "layout": LAYOUT, "seed": seed, "pools": pools, "mixing": asdict(mixing),
        "synthetic_voices": synthetic_voices, "synthetic_repeats": SYNTHETIC_REPEATS,
        "synthetic_utterances": SYNTHETIC_UTTERANCES,
    }))  # fmt: skip
    if marker.is_file() and json.loads(marker.read_text()) == parameters:
        return
    recordings = find_recordings(recordings_dir, expected_sha256)
    marker.unlink(missing_ok=True)
    for made_before in ("folds", "audio", "synthetic_recordings"):  # nothing of other parameters lingers
        shutil.rmtree(out / made_before, ignore_errors=True)
    made: dict[tuple[str, str], list[Utterance]] = {}
    for s, speaker in enumerate(SPEAKERS):
        sources = pool_sources(recordings, speaker)
        for p, (pool, count) in enumerate(pools.items()):
            rng = np.random.default_rng([seed, s, p])
            made[speaker, pool] = write_utterances(
                sources[pool], count, out / "audio" / speaker / pool, f"{speaker}-{pool}", rng, mixing
            )
    synthetic = []
    if synthetic_voices:
        recorded = synthesize_recordings(out / "synthetic_recordings", synthetic_voices, seed)
        for number in range(synthetic_voices):
            voice = f"synth{number}"
            rng = np.random.default_rng([seed, len(SPEAKERS), 2, number])
            synthetic += write_utterances(
                [r for r in recorded if r.speaker == voice], SYNTHETIC_UTTERANCES,
                out / "audio" / "synthetic" / "train", f"synthetic-{voice}", rng, mixing,
            )  # fmt: skip
    for held_out in SPEAKERS:
        others = [speaker for speaker in SPEAKERS if speaker != held_out]
        fold = out / "folds" / held_out
        write_manifest(fold / "train.jsonl", [u for s in others for u in made[s, "train"]] + synthetic)
        write_manifest(fold / "dev.jsonl", [u for s in others for u in made[s, "dev"]])
        write_manifest(fold / "test.jsonl", made[held_out, "test"])
    write_json(marker, parameters)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m asr.data.fsdd", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = commands.add_parser("download", help=f"download FSDD {RELEASE}, keep the four speakers")
    fetch_cmd.add_argument("dest", type=Path)
    fetch_cmd.add_argument("--url", default=URL, help="the release archive, or a mirror of it")
    make = commands.add_parser("prepare", help="utterances, folds and manifests from a recordings folder")
    make.add_argument("recordings", type=Path, help="FSDD's recordings/ folder")
    make.add_argument("out", type=Path)
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--synthetic-voices", type=int, default=0, metavar="N",
                      help="add N espeak-ng voices' utterances to every fold's training set")  # fmt: skip
    args = parser.parse_args(argv)
    if args.command == "download":
        print(fetch(args.dest, args.url))
    else:
        prepare(args.recordings, args.out, args.seed, synthetic_voices=args.synthetic_voices)
        print(f"{args.out}/folds/<speaker>/{{train,dev,test}}.jsonl for {', '.join(SPEAKERS)}")


if __name__ == "__main__":
    main()
