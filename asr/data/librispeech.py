"""LibriSpeech: download (resumable, checksummed), extraction and manifests.

The same manifest builder reads the built-in synthetic corpus, which uses LibriSpeech's layout:
``<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` plus ``<speaker>-<chapter>.trans.txt``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import soundfile

from asr.data.download import download, extract
from asr.data.manifest import Utterance, write_manifest
from asr.errors import UserError, exit_on_user_error
from asr.text import normalize_text

BASE_URL = "https://www.openslr.org/resources/12"
SHA256 = {
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
    "train-other-500": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
}


def read_checksums(path: Path, suffix: str = ".tar.gz") -> dict[str, str]:
    """``<sha256>  <split>.tar.gz`` lines (the output of ``sha256sum``) as ``{split: sha256}``
    (the file name less ``suffix``)."""
    try:
        lines = path.read_text().split("\n")
    except OSError as error:
        raise UserError(f"{path}: cannot read checksums ({error})") from None
    pairs = (line.split() for line in lines if line.strip())
    return {Path(name).name.removesuffix(suffix): digest for digest, name in pairs}


def split_utterances(split_dir: Path) -> list[Utterance]:
    """Utterances of one LibriSpeech-layout split, sorted by id, with normalised text."""
    transcripts = sorted(split_dir.glob("*/*/*.trans.txt"))
    if not transcripts:
        raise UserError(f"{split_dir}: no */*/*.trans.txt transcripts (not a LibriSpeech split)")
    utterances = []
    for transcript in transcripts:
        for number, line in enumerate(transcript.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utt_id, _, text = line.partition(" ")
            audio = transcript.parent / f"{utt_id}.flac"
            try:
                info = soundfile.info(audio)
            except (soundfile.LibsndfileError, RuntimeError) as error:
                raise UserError(f"{transcript}:{number}: cannot read {audio.name} ({error})") from None
            speaker = utt_id.split("-")[0]
            utterances.append(
                Utterance(audio, info.frames / info.samplerate, normalize_text(text), speaker=speaker)
            )
    return utterances


def write_split_manifest(split_dir: Path, manifest: Path) -> int:
    """Write the manifest of one split; returns its number of utterances."""
    utterances = split_utterances(split_dir)
    write_manifest(manifest, utterances)
    return len(utterances)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m asr.data.librispeech", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("download", help="download split archives (resumable, checksummed)")
    fetch.add_argument("splits", nargs="+", choices=sorted(SHA256))
    fetch.add_argument("--dest", type=Path, required=True, help="folder for the .tar.gz archives")
    fetch.add_argument("--base-url", default=BASE_URL, help="a mirror, or a file:// folder")
    fetch.add_argument("--checksums", type=Path, help="sha256sum-style list for a mirror's archives")
    unpack = commands.add_parser("extract", help="extract split archives")
    unpack.add_argument("archives", nargs="+", type=Path)
    unpack.add_argument("--dest", type=Path, required=True)
    fetch_one = commands.add_parser("fetch", help="download one file, e.g. an LM (resumable)")
    fetch_one.add_argument("url")
    fetch_one.add_argument("--dest", type=Path, required=True, help="the file to write")
    fetch_one.add_argument("--checksums", type=Path, help="sha256sum-style list, used if it names the file")
    manifests = commands.add_parser("manifest", help="write one manifest per split folder")
    manifests.add_argument("split_dirs", nargs="+", type=Path)
    manifests.add_argument("--out", type=Path, required=True, help="folder for <split>.jsonl")
    args = parser.parse_args(argv)

    if args.command == "download":
        checksums = read_checksums(args.checksums) if args.checksums else SHA256
        for split in args.splits:
            if split not in checksums:
                raise UserError(f"{args.checksums}: no checksum for {split}.tar.gz")
            download(f"{args.base_url}/{split}.tar.gz", args.dest / f"{split}.tar.gz", checksums[split])
    elif args.command == "fetch":
        name = args.url.rsplit("/", 1)[-1]
        listed = read_checksums(args.checksums, suffix="") if args.checksums else {}
        if name not in listed:
            print(f"{name}: no checksum to check it against", file=sys.stderr)
        download(args.url, args.dest, listed.get(name))
    elif args.command == "extract":
        for archive in args.archives:
            extract(archive, args.dest)
    else:
        for split_dir in args.split_dirs:
            count = write_split_manifest(split_dir, args.out / f"{split_dir.name}.jsonl")
            print(f"{split_dir.name}: {count} utterances")


if __name__ == "__main__":
    main()
